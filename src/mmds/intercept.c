/*
 * The MMDS frame interceptor: a net_backend wrapping the real one (see
 * intercept.h). The device sees only the wrapper. The libslirp endpoint
 * delivers through a sink of the wrapper's, which counts its frames and
 * passes them on to the device's sink; the wrapped backend does the same
 * until the device's sink is known (the first frame it is sent), then
 * delivers to the device's sink straight. Everything here runs on the
 * event-loop thread of the device.
 *
 * The TX test runs on every guest frame, so it reads at most the first 42
 * bytes (Ethernet + ARP, or the IPv4 header up to the destination) in
 * place, and copies them only when the frame starts in a short iovec.
 *
 * RX order: endpoint frames are delivered as libslirp makes them (while
 * the guest sends to it, or when its unix sockets have data). When the
 * guest has no RX buffers the endpoint holds them in its bounded queue,
 * and when buffers come back (rx_ready) the endpoint drains first, then
 * the wrapped backend resumes: MMDS replies go ahead of backend traffic.
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
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "mmds/intercept.h"

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

struct mmds_intercept {
	struct net_backend be;
	struct net_backend *inner;
	struct net_backend *endpoint;
	/* Their ways up: both pass frames on to be.sink (the device). */
	struct net_backend_sink inner_sink;
	struct net_backend_sink ep_sink;
	uint32_t addr;              /* MMDS address, network order */
	uint32_t ep_host;           /* libslirp's own address next to it */
	uint8_t ep_mac[6];          /* libslirp's MAC for ep_host */
	struct mmds *mmds;          /* counts frames; may be NULL */
	/* The guest station libslirp was last told about (see teach_endpoint). */
	uint32_t taught_ip;
	uint8_t taught_mac[6];
	/* The TCP cap: segments left this round; the eventfd ends the round. */
	unsigned tcp_budget;
	bool round_armed;
	int round_fd;
	struct event_source round_ev;
	/* Run after the endpoint is gone, before the wrapped backend goes. */
	void (*cleanup)(void *arg);
	void *cleanup_arg;
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

enum frame_kind { FRAME_BACKEND, FRAME_ENDPOINT, FRAME_ENDPOINT_TCP };

/*
 * classify - ARP for the MMDS address, IPv4 to it (TCP told apart), or an
 * ARP reply to libslirp's own ARP request (sent from ep_host with ep_mac)
 * are the endpoint's. The rest, VLAN-tagged frames included, is the
 * wrapped backend's.
 */
static enum frame_kind classify(const struct mmds_intercept *mi, const struct iovec *iov,
				unsigned iovcnt)
{
	uint8_t copy[PEEK_LEN];
	const uint8_t *f;
	size_t len;

	if (iovcnt && iov[0].iov_len >= PEEK_LEN) {
		f = iov[0].iov_base;
		len = PEEK_LEN;
	} else {
		len = iov_to_buf(iov, iovcnt, 0, copy, sizeof(copy));
		f = copy;
	}
	if (len < ETH_HDR + 20u)
		return FRAME_BACKEND;
	unsigned type = (unsigned)f[12] << 8 | f[13];
	if (type == ETHERTYPE_IPV4) {
		if ((f[ETH_HDR] >> 4) != 4 || load32(f + IP_DST_OFF) != mi->addr)
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

/* tcp_allowed - take one segment from this round's TCP cap. */
static bool tcp_allowed(struct mmds_intercept *mi)
{
	if (!mi->tcp_budget)
		return false;
	mi->tcp_budget--;
	if (!mi->round_armed) {
		uint64_t one = 1;
		/* The eventfd is read next round: that ends this one. */
		if (write(mi->round_fd, &one, sizeof(one)) == sizeof(one))
			mi->round_armed = true;
	}
	return true;
}

static void on_round_end(struct event_source *src, uint32_t events)
{
	struct mmds_intercept *mi = container_of(src, struct mmds_intercept, round_ev);
	uint64_t v;

	if (read(mi->round_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("mmds: round eventfd: %s", strerror(errno));
	mi->round_armed = false;
	mi->tcp_budget = MMDS_TCP_PER_ROUND;
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
	uint8_t hdr[ETH_HDR + 16], arp[PEEK_LEN];
	uint32_t sip;

	if (iov_to_buf(iov, iovcnt, 0, hdr, sizeof(hdr)) < sizeof(hdr) ||
	    hdr[12] != (ETHERTYPE_IPV4 >> 8) || hdr[13] != (ETHERTYPE_IPV4 & 0xff))
		return;
	sip = load32(hdr + ETH_HDR + 12);
	if (sip == mi->taught_ip && !memcmp(hdr + 6, mi->taught_mac, 6))
		return;
	memset(arp, 0xff, 6);
	memcpy(arp + 6, hdr + 6, 6);
	arp[12] = ETHERTYPE_ARP >> 8;
	arp[13] = ETHERTYPE_ARP & 0xff;
	static const uint8_t arp_hdr[8] = { 0, 1, 8, 0, 6, 4, 0, 1 };   /* Ethernet/IPv4 request */
	memcpy(arp + ETH_HDR, arp_hdr, sizeof(arp_hdr));
	memcpy(arp + ETH_HDR + 8, hdr + 6, 6);
	memcpy(arp + ETH_HDR + 14, &sip, 4);
	memset(arp + ARP_THA_OFF, 0, 6);
	memcpy(arp + ARP_TIP_OFF, &sip, 4);
	struct iovec v = { arp, sizeof(arp) };
	mi->endpoint->ops->send(mi->endpoint, &v, 1);
	mi->taught_ip = sip;
	memcpy(mi->taught_mac, hdr + 6, 6);
}

static int mi_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct mmds_intercept *mi = to_mi(be);

	enum frame_kind kind = classify(mi, iov, iovcnt);

	if (likely(kind == FRAME_BACKEND)) {
		/* Once the device's sink is known, the wrapped backend delivers
		 * to it straight (no forwarding call per frame); the endpoint's
		 * precedence lives in mi_rx_ready, not in the sink. */
		if (unlikely(mi->inner->sink != mi->be.sink) && mi->be.sink)
			mi->inner->sink = mi->be.sink;
		return mi->inner->ops->send(mi->inner, iov, iovcnt);
	}
	if (kind == FRAME_ENDPOINT_TCP && !tcp_allowed(mi)) {
		if (mi->mmds)
			mmds_count_frames(mi->mmds, 0, 0, 1);
		return 0;
	}
	if (mi->mmds)
		mmds_count_frames(mi->mmds, 1, 0, 0);
	teach_endpoint(mi, iov, iovcnt);
	/* Never -EAGAIN: the endpoint takes or drops (TCP retransmits). */
	int r = mi->endpoint->ops->send(mi->endpoint, iov, iovcnt);
	return r == -EAGAIN ? 0 : r;
}

/* --- RX ------------------------------------------------------------------------ */

static ssize_t mi_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct mmds_intercept *mi = to_mi(be);

	return mi->inner->ops->recv ? mi->inner->ops->recv(mi->inner, iov, iovcnt) : 0;
}

static void mi_rx_ready(struct net_backend *be)
{
	struct mmds_intercept *mi = to_mi(be);

	/* The endpoint's held frames first. */
	if (mi->endpoint->ops->rx_ready)
		mi->endpoint->ops->rx_ready(mi->endpoint);
	if (mi->inner->ops->rx_ready)
		mi->inner->ops->rx_ready(mi->inner);
}

/* The sinks the two backends see: both lead to the device's. */
static enum net_deliver_result inner_deliver(struct net_backend_sink *s,
					     const struct iovec *iov, unsigned iovcnt)
{
	struct mmds_intercept *mi = container_of(s, struct mmds_intercept, inner_sink);

	return mi->be.sink->deliver(mi->be.sink, iov, iovcnt);
}

static bool inner_can_deliver(struct net_backend_sink *s)
{
	struct mmds_intercept *mi = container_of(s, struct mmds_intercept, inner_sink);

	return mi->be.sink->can_deliver(mi->be.sink);
}

static void inner_tx_unblocked(struct net_backend_sink *s)
{
	struct mmds_intercept *mi = container_of(s, struct mmds_intercept, inner_sink);

	mi->be.sink->tx_unblocked(mi->be.sink);
}

static void inner_flush(struct net_backend_sink *s)
{
	struct mmds_intercept *mi = container_of(s, struct mmds_intercept, inner_sink);

	mi->be.sink->flush(mi->be.sink);
}

static enum net_deliver_result ep_deliver(struct net_backend_sink *s,
					  const struct iovec *iov, unsigned iovcnt)
{
	struct mmds_intercept *mi = container_of(s, struct mmds_intercept, ep_sink);
	enum net_deliver_result r = mi->be.sink->deliver(mi->be.sink, iov, iovcnt);

	if (r == NET_DELIVERED && mi->mmds)
		mmds_count_frames(mi->mmds, 0, 1, 0);
	return r;
}

static bool ep_can_deliver(struct net_backend_sink *s)
{
	struct mmds_intercept *mi = container_of(s, struct mmds_intercept, ep_sink);

	return mi->be.sink->can_deliver(mi->be.sink);
}

static void ep_tx_unblocked(struct net_backend_sink *s)
{
	/* The endpoint never refuses a send, so it never unblocks one. */
}

static void ep_flush(struct net_backend_sink *s)
{
	struct mmds_intercept *mi = container_of(s, struct mmds_intercept, ep_sink);

	mi->be.sink->flush(mi->be.sink);
}

/* --- lifecycle ------------------------------------------------------------------- */

static void mi_dump_counters(struct net_backend *be, FILE *out)
{
	struct mmds_intercept *mi = to_mi(be);

	if (mi->inner->ops->dump_counters)
		mi->inner->ops->dump_counters(mi->inner, out);
	if (mi->mmds)
		mmds_dump_counters(mi->mmds, out);
}

static void mi_destroy(struct net_backend *be)
{
	struct mmds_intercept *mi = to_mi(be);

	if (mi->round_fd >= 0) {
		event_loop_unwatch(mi->be.loop, &mi->round_ev);
		close(mi->round_fd);
	}
	/* The endpoint's connections first, then what they lead to. */
	mi->endpoint->ops->destroy(mi->endpoint);
	if (mi->cleanup)
		mi->cleanup(mi->cleanup_arg);
	mi->inner->ops->destroy(mi->inner);
	free(mi);
}

static const struct net_backend_ops intercept_ops = {
	.name = "mmds",
	.send = mi_send,
	.recv = mi_recv,
	.rx_ready = mi_rx_ready,
	.destroy = mi_destroy,
	.dump_counters = mi_dump_counters,
};

struct net_backend *mmds_intercept_wrap(struct net_backend *inner, struct net_backend *endpoint,
					struct in_addr addr, struct mmds *m,
					void (*cleanup)(void *arg), void *cleanup_arg)
{
	struct mmds_intercept *mi = calloc(1, sizeof(*mi));
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (!mi || fd < 0) {
		free(mi);
		if (fd >= 0)
			close(fd);
		endpoint->ops->destroy(endpoint);
		if (cleanup)
			cleanup(cleanup_arg);
		inner->ops->destroy(inner);
		return NULL;
	}
	mi->round_fd = fd;
	mi->tcp_budget = MMDS_TCP_PER_ROUND;
	mi->be.ops = &intercept_ops;
	mi->be.loop = inner->loop;
	mi->addr = addr.s_addr;
	mi->mmds = m;
	mi->cleanup = cleanup;
	mi->cleanup_arg = cleanup_arg;
	mi->inner_sink = (struct net_backend_sink){
		.deliver = inner_deliver, .can_deliver = inner_can_deliver,
		.tx_unblocked = inner_tx_unblocked, .flush = inner_flush,
	};
	mi->ep_sink = (struct net_backend_sink){
		.deliver = ep_deliver, .can_deliver = ep_can_deliver,
		.tx_unblocked = ep_tx_unblocked, .flush = ep_flush,
	};
	/* The two backends now deliver through us; the device polls the
	 * wrapped backend's fd (pull backends) as before. */
	mi->inner = inner;
	mi->endpoint = endpoint;
	inner->sink = &mi->inner_sink;
	endpoint->sink = &mi->ep_sink;
	mi->be.rx_fd = inner->rx_fd;
	mi->ep_host = net_slirp_endpoint_host(endpoint).s_addr;
	mi->ep_mac[0] = 0x52;
	mi->ep_mac[1] = 0x55;
	memcpy(mi->ep_mac + 2, &mi->ep_host, 4);
	if (event_loop_watch(mi->be.loop, &mi->round_ev, fd, EPOLLIN, on_round_end,
			     "mmds round") < 0) {
		mi->round_fd = -1;
		close(fd);
		mi_destroy(&mi->be);
		return NULL;
	}
	return &mi->be;
}
