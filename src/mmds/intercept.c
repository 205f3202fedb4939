/*
 * The MMDS frame interceptor: a net_backend wrapping the real one (see
 * intercept.h). The device sees only the wrapper. The libslirp endpoint is
 * attached to the wrapper's own way up (its calls are passed on to the
 * device's); the wrapped backend too until the device attaches the
 * wrapper, then to the device's (its calls would only pass through). The
 * device's RX drain takes both's frames through the wrapper's recv.
 * Everything here runs on the event-loop thread of the device.
 *
 * The TX test runs on every guest frame, so it reads at most the first 42
 * bytes (Ethernet + ARP, or the IPv4 header up to the destination) in
 * place, and copies them only when the frame starts in a short iovec.
 *
 * RX order: the endpoint queues frames as libslirp makes them (while the
 * guest sends to it, or when its unix sockets have data), and recv takes
 * the endpoint's first, then the wrapped backend's: MMDS replies go ahead
 * of backend traffic.
 *
 * A cap on guest TCP segments to the endpoint per event-loop round:
 * libslirp connects to the HTTP server's unix socket with a blocking
 * connect() when a guest handshake completes, on this thread, and that
 * connect would block forever once the server's listen backlog is full,
 * since the server accepts on this same thread. Each segment completes at
 * most one handshake, and the server drains its backlog every round, so
 * at most two rounds' worth (2 x MMDS_TCP_PER_ROUND) is ever waiting:
 * well under the backlog. Segments over the cap are dropped and counted;
 * the guest's TCP sends them again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "mmds/intercept.h"
#include "net/soft_tx.h"

#define ETH_HDR 14u
#define ETHERTYPE_IPV4 0x0800u
#define ETHERTYPE_ARP 0x0806u
#define ARP_OP_REPLY 2u
/* Offsets in the frame. */
#define IP_DST_OFF (ETH_HDR + 16u)
#define ARP_OP_OFF (ETH_HDR + 6u)
#define ARP_THA_OFF (ETH_HDR + 18u)
#define ARP_TIP_OFF (ETH_HDR + 24u)
#define PEEK_LEN (ETH_HDR + 28u)
#define IP_PROTO_OFF (ETH_HDR + 9u)
#define IPPROTO_TCP_NUM 6u
/* Guest TCP segments for the endpoint per loop round (see above). */
#define MMDS_TCP_PER_ROUND 24u
/* Pieces of a frame for the endpoint, its header skipped (a chain's most). */
#define EP_IOV_MAX 1024u

struct mmds_intercept {
	struct net_backend be;
	struct net_backend *inner;
	/* The wrapped backend's recv, or one that has nothing (a backend
	 * that only sends): taken once, called for nearly every frame. */
	ssize_t (*inner_recv)(struct net_backend *be, const struct iovec *iov, unsigned iovcnt);
	struct net_backend *endpoint;
	uint32_t addr;              /* MMDS address, network order */
	uint32_t ep_host;           /* libslirp's own address next to it */
	uint8_t ep_mac[6];          /* libslirp's MAC for ep_host */
	struct mmds *mmds;          /* counts frames; may be NULL */
	/* The endpoint may have frames: set by its rx_pending (which it
	 * raises whenever its queue stops being empty), cleared once it
	 * says it has none. Nearly every frame is the wrapped backend's, and
	 * this flag costs them less than a call into the endpoint. */
	bool ep_pending;
	/* The guest station libslirp was last told about (see teach_endpoint). */
	uint32_t taught_ip;
	uint8_t taught_mac[6];
	/* The TCP cap: segments left this round; deferred work, run after
	 * the round's ready sources, ends it. */
	unsigned tcp_budget;
	bool round_armed;
	struct event_deferred round_end;
	/* Run after the endpoint is gone, before the wrapped backend goes. */
	void (*cleanup)(void *arg);
	void *cleanup_arg;
	/* A wrapped backend with offloads: frames carry the vnet header
	 * (net/backend.h). The endpoint's frames are plain: hdr_len bytes
	 * are skipped on the way in (ep_iov), a zero header written in front
	 * on the way out, and offloads are finished in software first. */
	size_t hdr_len;
	struct iovec *ep_iov;       /* EP_IOV_MAX */
	struct net_soft_tx soft;
};

static struct mmds_intercept *to_mi(struct net_backend *be)
{
	return container_of(be, struct mmds_intercept, be);
}

/* --- TX: which frames are the endpoint's ------------------------------------ */

static uint32_t load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The EtherType of the frame whose first 14 bytes are at @f. */
static inline unsigned ether_type(const uint8_t *f)
{
	return (unsigned)f[12] << 8 | f[13];
}

enum frame_kind { FRAME_BACKEND, FRAME_ENDPOINT, FRAME_ENDPOINT_TCP };

/*
 * classify - ARP for the MMDS address, IPv4 to it (TCP told apart),
 * or an ARP reply to libslirp's own ARP request (sent from ep_host with
 * ep_mac) are the endpoint's. The rest, VLAN-tagged frames included, is the
 * wrapped backend's. @f holds the frame's first @len bytes (at most
 * PEEK_LEN).
 */
static inline enum frame_kind classify(const struct mmds_intercept *mi, const uint8_t *f,
				       size_t len)
{
	if (len < ETH_HDR + 20u)
		return FRAME_BACKEND;
	unsigned type = ether_type(f);
	if (type == ETHERTYPE_IPV4) {
		/* The address first: it rules out nearly every frame. */
		if (load32(f + IP_DST_OFF) != mi->addr || (f[ETH_HDR] >> 4) != 4)
			return FRAME_BACKEND;
		return f[IP_PROTO_OFF] == IPPROTO_TCP_NUM ? FRAME_ENDPOINT_TCP : FRAME_ENDPOINT;
	}
	if (type != ETHERTYPE_ARP || len < PEEK_LEN)
		return FRAME_BACKEND;
	uint32_t tip = load32(f + ARP_TIP_OFF);
	if (tip == mi->addr)
		return FRAME_ENDPOINT;
	unsigned op = (unsigned)f[ARP_OP_OFF] << 8 | f[ARP_OP_OFF + 1];
	if (op == ARP_OP_REPLY && tip == mi->ep_host &&
	    !memcmp(f + ARP_THA_OFF, mi->ep_mac, sizeof(mi->ep_mac)))
		return FRAME_ENDPOINT;
	return FRAME_BACKEND;
}

/* Whether the frame's first PEEK_LEN bytes lie in place, at *@f. The
 * device sends the header as a piece of its own (an empty piece skipped
 * the same way is harmless). */
static inline bool frame_in_place(const struct mmds_intercept *mi, const struct iovec *iov,
				  unsigned iovcnt, const uint8_t **f)
{
	size_t off = mi->hdr_len;

	if (iovcnt && iov[0].iov_len == off) {
		iov++;
		iovcnt--;
		off = 0;
	}
	if (!iovcnt || iov[0].iov_len < off + PEEK_LEN)    /* off is a header's: no overflow */
		return false;
	*f = (const uint8_t *)iov[0].iov_base + off;
	return true;
}

/* tcp_allowed - take one segment from this round's TCP cap. */
static void on_round_end(struct event_deferred *d);

static bool tcp_allowed(struct mmds_intercept *mi)
{
	if (!mi->tcp_budget)
		return false;
	mi->tcp_budget--;
	if (!mi->round_armed) {
		event_loop_defer(mi->be.loop, &mi->round_end, on_round_end);
		mi->round_armed = true;
	}
	return true;
}

static void on_round_end(struct event_deferred *d)
{
	struct mmds_intercept *mi = container_of(d, struct mmds_intercept, round_end);

	mi->round_armed = false;
	mi->tcp_budget = MMDS_TCP_PER_ROUND;
}

/* A gratuitous ARP request of @sip at @mac, to libslirp. */
static void announce_station(struct mmds_intercept *mi, uint32_t sip, const uint8_t mac[6])
{
	static const uint8_t arp_hdr[8] = { 0, 1, 8, 0, 6, 4, 0, 1 };   /* Ethernet/IPv4 request */
	uint8_t arp[PEEK_LEN];

	memset(arp, 0xff, 6);
	memcpy(arp + 6, mac, 6);
	arp[12] = ETHERTYPE_ARP >> 8;
	arp[13] = ETHERTYPE_ARP & 0xff;
	memcpy(arp + ETH_HDR, arp_hdr, sizeof(arp_hdr));
	memcpy(arp + ETH_HDR + 8, mac, 6);
	memcpy(arp + ETH_HDR + 14, &sip, 4);
	memset(arp + ARP_THA_OFF, 0, 6);
	memcpy(arp + ARP_TIP_OFF, &sip, 4);
	struct iovec v = { arp, sizeof(arp) };
	mi->endpoint->ops->send(mi->endpoint, &v, 1, 0);
}

/*
 * teach_endpoint - before an IPv4 frame reaches libslirp, make sure it knows
 * the sender's MAC, with a gratuitous ARP of the sender's own. Otherwise
 * libslirp ARPs for the guest itself and holds its reply meanwhile (held
 * replies are what libslirp 4.7 leaks when it is torn down), and a guest
 * that never answers would see nothing at all.
 */
static void teach_endpoint(struct mmds_intercept *mi, const struct iovec *iov, unsigned iovcnt)
{
	uint8_t hdr[ETH_HDR + 16];
	uint32_t sip;

	if (iov_to_buf(iov, iovcnt, 0, hdr, sizeof(hdr)) < sizeof(hdr) ||
	    ether_type(hdr) != ETHERTYPE_IPV4)
		return;
	sip = load32(hdr + ETH_HDR + 12);
	if (sip == mi->taught_ip && !memcmp(hdr + 6, mi->taught_mac, 6))
		return;
	announce_station(mi, sip, hdr + 6);
	mi->taught_ip = sip;
	memcpy(mi->taught_mac, hdr + 6, 6);
}

/*
 * After an ARP frame of the guest's: libslirp adds its sender to an ARP
 * table of a few entries, taking the oldest one's place, so a guest that
 * ARPs from many addresses can push out the station it was taught, and a
 * reply libslirp makes later (an HTTP answer, a retransmission) would be
 * held for an ARP nobody answers. Teach that station again at once.
 */
static void reteach_after_arp(struct mmds_intercept *mi, const struct iovec *iov, unsigned iovcnt)
{
	uint8_t eth[ETH_HDR];

	if (!mi->taught_ip || iov_to_buf(iov, iovcnt, 0, eth, sizeof(eth)) < sizeof(eth) ||
	    ether_type(eth) != ETHERTYPE_ARP)
		return;
	announce_station(mi, mi->taught_ip, mi->taught_mac);
}

/*
 * A frame of the endpoint's, as a plain frame: the header skipped, and
 * what it asks for (a checksum, segments) done here first. Never -EAGAIN:
 * the endpoint takes or drops (TCP retransmits). It copies the frame:
 * never NET_SEND_KEPT.
 */
static int send_to_endpoint(struct mmds_intercept *mi, const struct iovec *iov, unsigned iovcnt)
{
	struct virtio_net_hdr_v1 h = { 0 };
	struct iovec *frame = mi->ep_iov;
	unsigned n = iov_skip(iov, iovcnt, mi->hdr_len, frame, EP_IOV_MAX);
	int r;

	if (mi->hdr_len)
		iov_to_buf(iov, iovcnt, 0, &h, sizeof(h));
	teach_endpoint(mi, frame, n);
	if (net_hdr_is_plain(&h)) {
		r = mi->endpoint->ops->send(mi->endpoint, frame, n, 0);
	} else {
		r = net_soft_tx_send(&mi->soft, mi->endpoint, &h, frame, n, iov_length(frame, n));
		mi->soft.next = 0;
	}
	reteach_after_arp(mi, frame, n);
	return r == -EAGAIN || r > 0 ? 0 : r;
}

/* A frame for the endpoint (TCP within this round's cap), counted. */
static cold_path int mi_send_endpoint(struct mmds_intercept *mi, const struct iovec *iov,
				      unsigned iovcnt, enum frame_kind kind)
{
	if (kind == FRAME_ENDPOINT_TCP && !tcp_allowed(mi)) {
		if (mi->mmds)
			mmds_count_frames(mi->mmds, 0, 0, 1);
		return 0;
	}
	if (mi->mmds)
		mmds_count_frames(mi->mmds, 1, 0, 0);
	return send_to_endpoint(mi, iov, iovcnt);
}

/* A frame whose first bytes are spread over short iovecs: copied, then
 * sent where it belongs. */
static cold_path int mi_send_copied(struct mmds_intercept *mi, const struct iovec *iov,
				    unsigned iovcnt, uint32_t token)
{
	uint8_t copy[PEEK_LEN];
	size_t len = iov_to_buf(iov, iovcnt, mi->hdr_len, copy, sizeof(copy));
	enum frame_kind kind = classify(mi, copy, len);

	if (kind == FRAME_BACKEND)
		return mi->inner->ops->send(mi->inner, iov, iovcnt, token);
	return mi_send_endpoint(mi, iov, iovcnt, kind);
}

/* The frame's first PEEK_LEN bytes as the device lays a frame with a vnet
 * header out: the header in a piece of its own, the frame from the next
 * one (tx_send). */
static inline bool frame_after_header(const struct mmds_intercept *mi, const struct iovec *iov,
				      unsigned iovcnt, const uint8_t **f)
{
	if (iovcnt < 2 || iov[0].iov_len != mi->hdr_len || iov[1].iov_len < PEEK_LEN)
		return false;
	*f = iov[1].iov_base;
	return true;
}

/* IPv4 to another address than the MMDS one: nearly every frame. */
static inline bool plainly_backend(const struct mmds_intercept *mi, const uint8_t *f)
{
	uint16_t type;

	memcpy(&type, f + 12, sizeof(type));
	return type == htons(ETHERTYPE_IPV4) && load32(f + IP_DST_OFF) != mi->addr;
}

/* Nearly every frame is the wrapped backend's: a few tests and a tail call
 * (every other path is out of line, so nothing here needs a frame). */
static int mi_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		   uint32_t token)
{
	struct mmds_intercept *mi = to_mi(be);
	const uint8_t *f;

	if (likely(frame_after_header(mi, iov, iovcnt, &f)) && likely(plainly_backend(mi, f)))
		return mi->inner->ops->send(mi->inner, iov, iovcnt, token);
	if (unlikely(!frame_in_place(mi, iov, iovcnt, &f)))
		return mi_send_copied(mi, iov, iovcnt, token);
	enum frame_kind kind = classify(mi, f, PEEK_LEN);
	if (likely(kind == FRAME_BACKEND))
		return mi->inner->ops->send(mi->inner, iov, iovcnt, token);
	return mi_send_endpoint(mi, iov, iovcnt, kind);
}

/* --- RX ------------------------------------------------------------------------ */

/* The endpoint's next frame, behind a zero header when frames carry one. */
static ssize_t recv_from_endpoint(struct mmds_intercept *mi, const struct iovec *iov,
				  unsigned iovcnt)
{
	static const struct virtio_net_hdr_v1 plain;

	if (!mi->hdr_len)
		return mi->endpoint->ops->recv(mi->endpoint, iov, iovcnt);
	/* Asked before the iovecs are rebuilt for it. */
	if (mi->endpoint->ops->peek_len && mi->endpoint->ops->peek_len(mi->endpoint) == 0)
		return 0;
	unsigned n = iov_skip(iov, iovcnt, mi->hdr_len, mi->ep_iov, EP_IOV_MAX);
	ssize_t r = mi->endpoint->ops->recv(mi->endpoint, mi->ep_iov, n);
	if (r <= 0)
		return r;
	iov_from_buf(iov, iovcnt, 0, &plain, sizeof(plain));
	return r + (ssize_t)mi->hdr_len;
}

/* The endpoint may have frames: its first, the wrapped backend's once it
 * has none left. */
static cold_path ssize_t recv_endpoint_first(struct mmds_intercept *mi, const struct iovec *iov,
					     unsigned iovcnt)
{
	ssize_t r = recv_from_endpoint(mi, iov, iovcnt);

	if (r == 0) {
		mi->ep_pending = false;
		return mi->inner_recv(mi->inner, iov, iovcnt);
	}
	if (r > 0 && mi->mmds)
		mmds_count_frames(mi->mmds, 0, 1, 0);
	return r;
}

static ssize_t recv_nothing(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	(void)be, (void)iov, (void)iovcnt;
	return 0;
}

/* The endpoint's frames first: MMDS replies go ahead of backend traffic. */
static ssize_t mi_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct mmds_intercept *mi = to_mi(be);

	if (likely(!mi->ep_pending))
		return mi->inner_recv(mi->inner, iov, iovcnt);
	return recv_endpoint_first(mi, iov, iovcnt);
}

/* The next frame mi_recv gives: the endpoint's first. -EOPNOTSUPP when
 * only the wrapped backend has frames and cannot tell their length (a
 * tap): the device then gathers room for the largest. */
static ssize_t mi_peek_len(struct net_backend *be)
{
	struct mmds_intercept *mi = to_mi(be);
	struct net_backend *ep = mi->endpoint, *inner = mi->inner;
	ssize_t n = !mi->ep_pending ? 0 : ep->ops->peek_len ? ep->ops->peek_len(ep) : -EOPNOTSUPP;

	if (n > 0)
		return n + (ssize_t)mi->hdr_len;
	if (n < 0 || !inner->ops->peek_len)
		return -EOPNOTSUPP;
	return inner->ops->peek_len(inner);
}

static void mi_rx_ready(struct net_backend *be)
{
	struct mmds_intercept *mi = to_mi(be);

	if (mi->endpoint->ops->rx_ready)
		mi->endpoint->ops->rx_ready(mi->endpoint);
	if (mi->inner->ops->rx_ready)
		mi->inner->ops->rx_ready(mi->inner);
}

static unsigned mi_drop_kept(struct net_backend *be)
{
	struct mmds_intercept *mi = to_mi(be);

	return mi->inner->ops->drop_kept ? mi->inner->ops->drop_kept(mi->inner) : 0;
}

/* The batch of a backend that keeps TX frames (stream) goes out. */
static void mi_flush(struct net_backend *be)
{
	struct mmds_intercept *mi = to_mi(be);

	if (mi->inner->ops->flush)
		mi->inner->ops->flush(mi->inner);
}

/* The way up of both backends: passed on to the device's. */
static void up_rx_pending(void *ctx)
{
	struct mmds_intercept *mi = ctx;

	net_backend_rx_pending(&mi->be);
}

/* The endpoint's frames wait: mi_recv asks it again. */
static void ep_rx_pending(void *ctx)
{
	struct mmds_intercept *mi = ctx;

	mi->ep_pending = true;
	net_backend_rx_pending(&mi->be);
}

static void up_tx_unblocked(void *ctx)
{
	struct mmds_intercept *mi = ctx;

	net_backend_tx_unblocked(&mi->be);
}

static void up_tx_done(void *ctx, uint32_t token)
{
	struct mmds_intercept *mi = ctx;

	net_backend_tx_done(&mi->be, token);
}

/* The device attached us: the wrapped backend's calls go to it directly
 * from now on (each of the above would only pass it on; tx_done comes
 * once per frame a loopback or a stream keeps). The endpoint's stay ours:
 * its rx_pending sets ep_pending. */
static void mi_attached(struct net_backend *be)
{
	struct mmds_intercept *mi = to_mi(be);

	net_backend_attach(mi->inner, be->events, be->events_ctx);
}

static const struct net_backend_events wrapped_events = {
	.rx_pending = up_rx_pending,
	.tx_unblocked = up_tx_unblocked,
	.tx_done = up_tx_done,
};

static const struct net_backend_events endpoint_events = {
	.rx_pending = ep_rx_pending,
	.tx_unblocked = up_tx_unblocked,
	.tx_done = up_tx_done,
};

/* --- lifecycle ------------------------------------------------------------------- */

static void mi_visit_counters(struct net_backend *be, const struct counter_sink *sink)
{
	struct mmds_intercept *mi = to_mi(be);

	if (mi->inner->ops->visit_counters)
		mi->inner->ops->visit_counters(mi->inner, sink);
	if (mi->mmds)
		mmds_visit_counters(mi->mmds, sink);
}

static void mi_destroy(struct net_backend *be)
{
	struct mmds_intercept *mi = to_mi(be);

	event_loop_cancel(mi->be.loop, &mi->round_end);
	/* The endpoint's connections first, then what they lead to. */
	mi->endpoint->ops->destroy(mi->endpoint);
	if (mi->cleanup)
		mi->cleanup(mi->cleanup_arg);
	mi->inner->ops->destroy(mi->inner);
	net_soft_tx_destroy(&mi->soft);
	free(mi->ep_iov);
	free(mi);
}

static struct net_backend *mi_wrapped(struct net_backend *be)
{
	return to_mi(be)->inner;
}

/* The wrapped backend's RX offloads: the endpoint's frames are plain. */
static int mi_set_offloads(struct net_backend *be, uint64_t features)
{
	struct mmds_intercept *mi = to_mi(be);

	return mi->inner->ops->set_offloads ? mi->inner->ops->set_offloads(mi->inner, features) : 0;
}

static const struct net_backend_ops intercept_ops = {
	.name = "mmds",
	.host_sockets = true, /* the endpoint is libslirp */
	.send = mi_send,
	.recv = mi_recv,
	.peek_len = mi_peek_len,
	.rx_ready = mi_rx_ready,
	.drop_kept = mi_drop_kept,
	.flush = mi_flush,
	.destroy = mi_destroy,
	.visit_counters = mi_visit_counters,
	.wrapped = mi_wrapped,
	.set_offloads = mi_set_offloads,
	.attached = mi_attached,
};

struct net_backend *mmds_intercept_wrap(struct net_backend *inner, struct net_backend *endpoint,
					struct in_addr addr, struct mmds *m,
					void (*cleanup)(void *arg), void *cleanup_arg)
{
	struct mmds_intercept *mi = calloc(1, sizeof(*mi));

	if (mi && (net_soft_tx_init(&mi->soft) < 0 ||
		   !(mi->ep_iov = calloc(EP_IOV_MAX, sizeof(struct iovec))))) {
		net_soft_tx_destroy(&mi->soft);
		free(mi);
		mi = NULL;
	}
	if (!mi) {
		endpoint->ops->destroy(endpoint);
		if (cleanup)
			cleanup(cleanup_arg);
		inner->ops->destroy(inner);
		return NULL;
	}
	mi->tcp_budget = MMDS_TCP_PER_ROUND;
	mi->be.ops = &intercept_ops;
	mi->be.loop = inner->loop;
	mi->addr = addr.s_addr;
	mi->mmds = m;
	mi->cleanup = cleanup;
	mi->cleanup_arg = cleanup_arg;
	/* The two backends call up through us until the device attaches
	 * (mi_attached); the device polls the wrapped backend's fd (fd
	 * backends) as before. */
	mi->inner = inner;
	mi->inner_recv = inner->ops->recv ? inner->ops->recv : recv_nothing;
	mi->endpoint = endpoint;
	net_backend_attach(inner, &wrapped_events, mi);
	net_backend_attach(endpoint, &endpoint_events, mi);
	mi->ep_pending = true;      /* whatever it queued before it was attached */
	mi->be.rx_fd = inner->rx_fd;
	mi->be.host_mtu = inner->host_mtu;
	mi->be.offloads = inner->offloads;
	mi->hdr_len = net_backend_has_vnet_hdr(inner) ? sizeof(struct virtio_net_hdr_v1) : 0;
	mi->ep_host = net_slirp_endpoint_host(endpoint).s_addr;
	mi->ep_mac[0] = 0x52;
	mi->ep_mac[1] = 0x55;
	memcpy(mi->ep_mac + 2, &mi->ep_host, 4);
	return &mi->be;
}
