/*
 * The MMDS frame interceptor and its libslirp endpoint, driven with crafted
 * guest frames: ARP for the MMDS address is answered, a TCP connection to
 * ADDR:80 is carried by libslirp to a unix socket (handshake, data both
 * ways, FIN), other ports are reset, every other frame reaches the wrapped
 * backend untouched, and no frame for the MMDS address ever does. The guest
 * uses an address outside 169.254.0.0/16 (only a route to the MMDS
 * address), as real guests do.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/event_loop.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "mmds/intercept.h"
#include "mmds/mmds.h"
#include "netframe.h"

#define MAX_FRAMES 512

static struct event_loop loop;
static const uint8_t guest_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static uint32_t guest_ip, mmds_ip;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- a fake device sink and a fake wrapped backend ------------------------ */

struct frames {
	unsigned n;
	uint8_t *f[MAX_FRAMES];
	size_t len[MAX_FRAMES];
};

static void frames_add(struct frames *fr, const struct iovec *iov, unsigned iovcnt)
{
	size_t len = 0;

	for (unsigned i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (fr->n == MAX_FRAMES)
		return;
	uint8_t *p = malloc(len ? len : 1);
	size_t off = 0;
	for (unsigned i = 0; i < iovcnt; i++) {
		memcpy(p + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	fr->f[fr->n] = p;
	fr->len[fr->n++] = len;
}

static void frames_clear(struct frames *fr)
{
	for (unsigned i = 0; i < fr->n; i++)
		free(fr->f[i]);
	fr->n = 0;
}

/* The device's side: told of waiting frames (rx_pending), it takes them
 * with recv() while it has "RX buffers" (can) when the test lets it run
 * (fs_take: after each frame sent and each loop turn), never from inside
 * the backend's call. */
struct fake_sink {
	struct net_backend *be;
	bool can;
	bool pending;
	unsigned flushes;          /* drains that took frames */
	struct frames got;
};

static void fs_rx_pending(void *ctx) { ((struct fake_sink *)ctx)->pending = true; }
static void fs_unblocked(void *ctx) { }
static void fs_tx_done(void *ctx, uint32_t token) { }

static const struct net_backend_events fs_events = {
	.rx_pending = fs_rx_pending, .tx_unblocked = fs_unblocked, .tx_done = fs_tx_done,
};

static void fs_attach(struct fake_sink *fs, struct net_backend *be)
{
	fs->be = be;
	fs->can = true;
	net_backend_attach(be, &fs_events, fs);
}

/* fs_take - the device's RX drain: every waiting frame, oldest first. */
static void fs_take(struct fake_sink *fs)
{
	static uint8_t buf[65600];
	struct iovec iov = { buf, sizeof(buf) };
	bool took = false;

	if (!fs->can)
		return;
	fs->pending = false;
	for (unsigned i = 0; i < 1024; i++) {
		ssize_t len = fs->be->ops->recv(fs->be, &iov, 1);
		if (len == 0)
			break;
		if (len > 0) {
			frames_add(&fs->got, &(struct iovec){ buf, (size_t)len }, 1);
			took = true;
		}
	}
	if (took)
		fs->flushes++;
}

/* The wrapped backend: records what it is given. */
struct fake_inner {
	struct net_backend be;
	struct frames sent;
	struct frames queued;      /* frames it makes for the guest */
	unsigned next;             /* the next of them recv gives */
	unsigned rx_ready_calls;
};

static int fi_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		   uint32_t token)
{
	frames_add(&((struct fake_inner *)be)->sent, iov, iovcnt);
	return 0;
}

static ssize_t fi_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct fake_inner *fi = (struct fake_inner *)be;

	if (fi->next == fi->queued.n)
		return 0;
	size_t len = fi->queued.len[fi->next];
	iov_from_buf(iov, iovcnt, 0, fi->queued.f[fi->next++], len);
	return (ssize_t)len;
}

static void fi_rx_ready(struct net_backend *be)
{
	struct fake_inner *fi = (struct fake_inner *)be;

	fi->rx_ready_calls++;
}

static void fi_destroy(struct net_backend *be)
{
	frames_clear(&((struct fake_inner *)be)->sent);
	frames_clear(&((struct fake_inner *)be)->queued);
	free(be);
}

static const struct net_backend_ops fake_inner_ops = {
	.name = "fake", .send = fi_send, .recv = fi_recv, .rx_ready = fi_rx_ready,
	.destroy = fi_destroy,
};

/* --- the rig: wrapper + endpoint + a unix listener standing for the server - */

struct rig {
	struct fake_sink fs;
	struct fake_inner *inner;
	struct net_backend *be;
	struct mmds *mmds;
	struct slirp_endpoint ep;
	char dir[64];
	char path[108];
	int listen_fd;
};

static bool rig_init(struct rig *r)
{
	struct errbuf eb = { 0 };
	struct mmds_config cfg = { .version = MMDS_V1 };

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/kvmini-test-mmds-XXXXXX");
	if (!mkdtemp(r->dir))
		return false;
	snprintf(r->path, sizeof(r->path), "%s/s", r->dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->path);
	r->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->listen_fd < 0 || bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(r->listen_fd, 16))
		return false;
	cfg.ipv4.s_addr = htonl(mmds_ip);
	r->mmds = mmds_new(&cfg);
	r->inner = calloc(1, sizeof(*r->inner));
	r->inner->be = (struct net_backend){ .ops = &fake_inner_ops, .loop = &loop, .rx_fd = -1 };
	r->ep = (struct slirp_endpoint){ .addr.s_addr = htonl(mmds_ip), .port = 80,
					 .unix_path = r->path };
	struct net_backend *ep = net_slirp_create_endpoint(&loop, &r->ep, &eb);
	if (!ep) {
		fprintf(stderr, "  endpoint: %s\n", eb.msg);
		return false;
	}
	r->be = mmds_intercept_wrap(&r->inner->be, ep, r->ep.addr, r->mmds, NULL, NULL);
	fs_attach(&r->fs, r->be);
	return true;
}

static void rig_fini(struct rig *r)
{
	if (r->be)
		r->be->ops->destroy(r->be);
	frames_clear(&r->fs.got);
	if (r->listen_fd >= 0) {
		close(r->listen_fd);
		unlink(r->path);
		rmdir(r->dir);
	}
	mmds_free(r->mmds);
}

static int send_frame(struct rig *r, const uint8_t *f, size_t len)
{
	struct iovec iov = { (void *)f, len };
	int ret = r->be->ops->send(r->be, &iov, 1, 0);

	fs_take(&r->fs);
	return ret;
}

/* inner_saw_mmds - any frame the wrapped backend got that names the MMDS
 * address as IPv4 destination or ARP target. */
static bool inner_saw_mmds(struct rig *r)
{
	for (unsigned i = 0; i < r->inner->sent.n; i++) {
		struct nf_pkt p;
		if (!nf_parse(r->inner->sent.f[i], r->inner->sent.len[i], &p))
			continue;
		if ((p.type == 0x0806 && p.arp_tip == mmds_ip) ||
		    (p.type == 0x0800 && p.dst == mmds_ip))
			return true;
	}
	return false;
}

/* find - index of a delivered frame matching, from @from on; -1 if none. */
static int find_tcp(struct rig *r, unsigned from, uint8_t flags_set, bool with_payload)
{
	for (unsigned i = from; i < r->fs.got.n; i++) {
		struct nf_pkt p;
		if (nf_parse(r->fs.got.f[i], r->fs.got.len[i], &p) && p.proto == 6 &&
		    (p.flags & flags_set) == flags_set && (!with_payload || p.paylen))
			return (int)i;
	}
	return -1;
}

static void pump_until(struct rig *r, int ms, bool (*done)(struct rig *, void *), void *arg)
{
	int64_t end = now_ms() + ms;

	while (!done(r, arg) && now_ms() < end) {
		event_loop_once(&loop, 10);
		fs_take(&r->fs);
	}
}

/* --- cases ---------------------------------------------------------------- */

static void test_arp_answered(void)
{
	struct rig r;
	uint8_t f[64];
	struct nf_pkt p;

	CHECK(rig_init(&r));
	if (!r.be)
		return;
	CHECK_EQ(send_frame(&r, f, nf_arp_request(f, guest_mac, guest_ip, mmds_ip)), 0);
	CHECK_EQ(r.fs.got.n, 1);
	CHECK(r.fs.got.n && nf_parse(r.fs.got.f[0], r.fs.got.len[0], &p));
	CHECK_EQ(p.type, 0x0806);
	CHECK_EQ(p.arp_op, 2);
	CHECK_EQ(p.arp_sip, mmds_ip);
	CHECK_EQ(p.arp_tip, guest_ip);
	CHECK(r.fs.got.n && !memcmp(r.fs.got.f[0], guest_mac, 6));
	CHECK_EQ(r.inner->sent.n, 0);
	CHECK_EQ(mmds_counters(r.mmds)->frames_intercepted, 1);
	CHECK_EQ(mmds_counters(r.mmds)->frames_injected, 1);
	rig_fini(&r);
}

/* Everything not for the MMDS address reaches the wrapped backend as sent. */
static void test_other_frames_pass(void)
{
	struct rig r;
	uint8_t f[8][128];
	size_t len[8];
	static const uint8_t other_mac[6] = { 0x02, 0, 0, 0, 0, 9 };

	CHECK(rig_init(&r));
	if (!r.be)
		return;
	len[0] = nf_arp_request(f[0], guest_mac, guest_ip, nf_ip4("10.0.0.1"));
	len[1] = nf_tcp(f[1], guest_mac, other_mac, guest_ip, nf_ip4("10.0.0.1"), 1, 80, 0, 0,
			NF_TCP_SYN, NULL, 0);
	len[2] = nf_tcp(f[2], guest_mac, other_mac, guest_ip, mmds_ip + 1, 1, 80, 0, 0,
			NF_TCP_SYN, NULL, 0);
	/* Source is the MMDS address, destination is not: not ours. */
	len[3] = nf_tcp(f[3], guest_mac, other_mac, mmds_ip, guest_ip, 80, 1, 0, 0,
			NF_TCP_SYN, NULL, 0);
	/* IPv6 and VLAN-tagged frames (even naming the address) pass. */
	len[4] = nf_tcp(f[4], guest_mac, other_mac, guest_ip, mmds_ip, 1, 80, 0, 0, NF_TCP_SYN,
			NULL, 0);
	nf_put16(f[4] + 12, 0x86dd);
	len[5] = nf_arp_request(f[5], guest_mac, guest_ip, mmds_ip);
	nf_put16(f[5] + 12, 0x8100);
	/* Runts. */
	memset(f[6], 0, 20);
	nf_put16(f[6] + 12, 0x0800);
	len[6] = 20;
	len[7] = 1;
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(send_frame(&r, f[i], len[i]), 0);
	CHECK_EQ(r.inner->sent.n, 8);
	for (unsigned i = 0; i < 8 && i < r.inner->sent.n; i++) {
		CHECK_EQ(r.inner->sent.len[i], len[i]);
		CHECK(!memcmp(r.inner->sent.f[i], f[i], len[i]));
	}
	CHECK_EQ(r.fs.got.n, 0);
	CHECK_EQ(mmds_counters(r.mmds)->frames_intercepted, 0);

	/* A frame split over iovecs in awkward places is still recognised. */
	uint8_t g[64];
	size_t glen = nf_arp_request(g, guest_mac, guest_ip, mmds_ip);
	struct iovec iov[4] = { { g, 3 }, { g + 3, 10 }, { g + 13, 27 }, { g + 40, glen - 40 } };
	CHECK_EQ(r.be->ops->send(r.be, iov, 4, 0), 0);
	fs_take(&r.fs);
	CHECK_EQ(r.inner->sent.n, 8);
	CHECK_EQ(r.fs.got.n, 1);
	rig_fini(&r);
}

struct conn_wait {
	int fd;
	char buf[512];
	size_t len;
};

static bool accepted(struct rig *r, void *arg)
{
	struct conn_wait *w = arg;

	if (w->fd < 0)
		w->fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	return w->fd >= 0;
}

static bool got_request(struct rig *r, void *arg)
{
	struct conn_wait *w = arg;
	ssize_t n = read(w->fd, w->buf + w->len, sizeof(w->buf) - 1 - w->len);

	if (n > 0)
		w->len += (size_t)n;
	w->buf[w->len] = '\0';
	return strstr(w->buf, "\r\n\r\n") != NULL;
}

static bool got_payload(struct rig *r, void *arg)
{
	return find_tcp(r, *(unsigned *)arg, NF_TCP_ACK, true) >= 0;
}

static bool got_fin(struct rig *r, void *arg)
{
	return find_tcp(r, *(unsigned *)arg, NF_TCP_FIN, false) >= 0;
}

/* The guest's TCP to MMDS:80 becomes a unix connection, both ways. */
static void test_tcp_through_endpoint(void)
{
	static const char req[] = "GET /latest HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	struct conn_wait w = { .fd = -1 };
	uint8_t f[256];
	uint8_t slirp_mac[6];
	struct nf_pkt p;
	struct rig r;
	uint32_t iss = 1000, srv;

	CHECK(rig_init(&r));
	if (!r.be)
		return;
	send_frame(&r, f, nf_arp_request(f, guest_mac, guest_ip, mmds_ip));
	CHECK(r.fs.got.n == 1 && nf_parse(r.fs.got.f[0], r.fs.got.len[0], &p));
	memcpy(slirp_mac, p.arp_sha, 6);

	send_frame(&r, f, nf_tcp(f, guest_mac, slirp_mac, guest_ip, mmds_ip, 40000, 80, iss, 0,
				 NF_TCP_SYN, NULL, 0));
	int i = find_tcp(&r, 1, NF_TCP_SYN | NF_TCP_ACK, false);
	CHECK(i >= 0);
	if (i < 0)
		goto out;
	nf_parse(r.fs.got.f[i], r.fs.got.len[i], &p);
	CHECK(p.csum_ok);
	CHECK_EQ(p.ack, iss + 1);
	CHECK_EQ(p.src, mmds_ip);
	CHECK_EQ(p.dst, guest_ip);
	srv = p.seq + 1;
	send_frame(&r, f, nf_tcp(f, guest_mac, slirp_mac, guest_ip, mmds_ip, 40000, 80, iss + 1,
				 srv, NF_TCP_ACK, NULL, 0));
	pump_until(&r, 2000, accepted, &w);
	CHECK(w.fd >= 0);
	if (w.fd < 0)
		goto out;
	send_frame(&r, f, nf_tcp(f, guest_mac, slirp_mac, guest_ip, mmds_ip, 40000, 80, iss + 1,
				 srv, NF_TCP_ACK | NF_TCP_PSH, req, strlen(req)));
	pump_until(&r, 2000, got_request, &w);
	CHECK(!strcmp(w.buf, req));

	unsigned from = r.fs.got.n;
	CHECK_EQ(write(w.fd, resp, strlen(resp)), (ssize_t)strlen(resp));
	pump_until(&r, 2000, got_payload, &from);
	i = find_tcp(&r, from, NF_TCP_ACK, true);
	CHECK(i >= 0);
	if (i >= 0) {
		nf_parse(r.fs.got.f[i], r.fs.got.len[i], &p);
		CHECK(p.csum_ok);
		CHECK_EQ(p.seq, srv);
		CHECK_EQ(p.ack, iss + 1 + strlen(req));
		CHECK(p.paylen == strlen(resp) && !memcmp(p.payload, resp, p.paylen));
	}
	/* The server closes: the guest sees a FIN. */
	close(w.fd);
	from = r.fs.got.n;
	pump_until(&r, 2000, got_fin, &from);
	CHECK(find_tcp(&r, from, NF_TCP_FIN, false) >= 0);
	CHECK(!inner_saw_mmds(&r));
	CHECK_EQ(r.inner->sent.n, 0);
out:
	rig_fini(&r);
}

/* Other ports and other protocols at the MMDS address: reset or dropped,
 * never forwarded anywhere. */
static void test_other_ports_refused(void)
{
	struct rig r;
	uint8_t f[128], slirp_mac[6] = { 0x52, 0x55, 0, 0, 0, 0 };
	struct conn_wait w = { .fd = -1 };

	CHECK(rig_init(&r));
	if (!r.be)
		return;
	send_frame(&r, f, nf_arp_request(f, guest_mac, guest_ip, mmds_ip));
	send_frame(&r, f, nf_tcp(f, guest_mac, slirp_mac, guest_ip, mmds_ip, 40001, 22, 5, 0,
				 NF_TCP_SYN, NULL, 0));
	CHECK(find_tcp(&r, 1, NF_TCP_RST, false) >= 0);
	pump_until(&r, 200, accepted, &w);
	CHECK(w.fd < 0);
	CHECK_EQ(r.inner->sent.n, 0);
	CHECK_EQ(mmds_counters(r.mmds)->frames_intercepted, 2);
	rig_fini(&r);
}

/* Without an ARP from the guest first, libslirp still answers at once:
 * the interceptor tells it the sender's MAC (gratuitous ARP), so it never
 * has to ask. An ARP reply to libslirp's own address and MAC is the
 * endpoint's too; the same reply to another MAC is not. */
static void test_unannounced_guest_answered(void)
{
	struct rig r;
	uint8_t f[128];
	static const uint8_t any_mac[6] = { 0x52, 0x55, 1, 2, 3, 4 };

	CHECK(rig_init(&r));
	if (!r.be)
		return;
	send_frame(&r, f, nf_tcp(f, guest_mac, any_mac, guest_ip, mmds_ip, 40002, 80, 5, 0,
				 NF_TCP_SYN, NULL, 0));
	int i = find_tcp(&r, 0, NF_TCP_SYN | NF_TCP_ACK, false);
	CHECK(i >= 0);
	for (unsigned k = 0; k < r.fs.got.n; k++) {
		struct nf_pkt p;
		CHECK(!(nf_parse(r.fs.got.f[k], r.fs.got.len[k], &p) && p.type == 0x0806));
	}
	if (i >= 0)
		CHECK(!memcmp(r.fs.got.f[i], guest_mac, 6));
	/* libslirp's own address next to 169.254.169.254 is .255, its MAC
	 * 52:55 and that address. */
	static const uint8_t ep_mac[6] = { 0x52, 0x55, 0xa9, 0xfe, 0xa9, 0xff };
	static const uint8_t other[6] = { 2, 2, 2, 2, 2, 2 };
	uint64_t before = mmds_counters(r.mmds)->frames_intercepted;
	send_frame(&r, f, nf_arp_reply(f, guest_mac, guest_ip, ep_mac, mmds_ip + 1));
	CHECK_EQ(mmds_counters(r.mmds)->frames_intercepted, before + 1);
	CHECK_EQ(r.inner->sent.n, 0);
	send_frame(&r, f, nf_arp_reply(f, guest_mac, guest_ip, other, mmds_ip + 1));
	CHECK_EQ(r.inner->sent.n, 1);
	rig_fini(&r);
}

/* No RX buffers: the endpoint holds its frames and the device takes them
 * when buffers come back; the wrapped backend hears rx_ready too. */
static void test_held_until_rx_ready(void)
{
	struct rig r;
	uint8_t f[64];

	CHECK(rig_init(&r));
	if (!r.be)
		return;
	r.fs.can = false;
	send_frame(&r, f, nf_arp_request(f, guest_mac, guest_ip, mmds_ip));
	CHECK_EQ(r.fs.got.n, 0);
	CHECK_EQ(mmds_counters(r.mmds)->frames_injected, 0);
	CHECK(r.fs.pending);
	r.fs.can = true;
	r.be->ops->rx_ready(r.be);
	fs_take(&r.fs);
	CHECK_EQ(r.fs.got.n, 1);
	CHECK_EQ(r.inner->rx_ready_calls, 1);
	CHECK_EQ(mmds_counters(r.mmds)->frames_injected, 1);
	CHECK(r.fs.flushes >= 1);
	rig_fini(&r);
}

/* A wrapped queue backend's frames reach the device: once the device has
 * attached the wrapper, the wrapped backend's rx_pending goes to the
 * device's way up directly (it would only pass through the wrapper), and
 * the wrapper's recv takes the endpoint's frames first, then the wrapped
 * backend's. */
static void test_wrapped_queue_backend_delivers(void)
{
	struct rig r;
	uint8_t f[64] = { 0 }, a[64];

	CHECK(rig_init(&r));
	if (!r.be)
		return;
	struct net_backend *inner = &r.inner->be;
	/* The device's way up, handed on when the device attached. */
	CHECK(inner->events == r.be->events && inner->events_ctx == r.be->events_ctx);
	r.fs.can = false;
	frames_add(&r.inner->queued, &(struct iovec){ f, 60 }, 1);
	net_backend_rx_pending(inner);
	CHECK(r.fs.pending);
	/* An MMDS reply waits too: it goes first. */
	send_frame(&r, a, nf_arp_request(a, guest_mac, guest_ip, mmds_ip));
	r.fs.can = true;
	fs_take(&r.fs);
	CHECK_EQ(r.fs.got.n, 2);
	CHECK(r.fs.got.n == 2 && nf_get16(r.fs.got.f[0] + 12) == 0x0806 &&
	      r.fs.got.len[1] == 60 && !memcmp(r.fs.got.f[1], f, 60));
	CHECK_EQ(mmds_counters(r.mmds)->frames_injected, 1);
	send_frame(&r, f, 60);               /* an ordinary frame: passes */
	CHECK_EQ(r.inner->sent.n, 1);
	/* No rewiring after a send. */
	CHECK(inner->events == r.be->events && inner->events_ctx == r.be->events_ctx);
	rig_fini(&r);
}

/* The per-round cap on TCP to the endpoint: within one loop round at most
 * 24 segments pass (each could complete a handshake and a blocking unix
 * connect); the rest are dropped and counted; the next round has room. */
static void test_tcp_cap_per_round(void)
{
	struct rig r;
	uint8_t f[128], any_mac[6] = { 0x52, 0x55, 0, 0, 0, 0 };

	CHECK(rig_init(&r));
	if (!r.be)
		return;
	for (unsigned i = 0; i < 40; i++)
		send_frame(&r, f, nf_tcp(f, guest_mac, any_mac, guest_ip, mmds_ip,
					 (uint16_t)(41000 + i), 80, 7, 0, NF_TCP_SYN, NULL, 0));
	const struct mmds_counters *c = mmds_counters(r.mmds);
	CHECK_EQ(c->frames_intercepted, 24);
	CHECK_EQ(c->frames_deferred, 16);
	/* ARP is not capped. */
	send_frame(&r, f, nf_arp_request(f, guest_mac, guest_ip, mmds_ip));
	CHECK_EQ(c->frames_intercepted, 25);
	event_loop_once(&loop, 100);
	fs_take(&r.fs);
	send_frame(&r, f, nf_tcp(f, guest_mac, any_mac, guest_ip, mmds_ip, 42000, 80, 7, 0,
				 NF_TCP_SYN, NULL, 0));
	CHECK_EQ(c->frames_intercepted, 26);
	CHECK_EQ(c->frames_deferred, 16);
	CHECK_EQ(r.inner->sent.n, 0);
	rig_fini(&r);
}

/* --- the whole path: interceptor, libslirp, HTTP server, MMDS ------------- */

/* A guest-side TCP flow to MMDS:80, scripted with crafted frames. */
struct flow {
	struct rig *r;
	uint16_t sport;
	uint32_t seq, ack;
	unsigned seen;            /* delivered frames already read */
	char in[4096];
	size_t in_len;
	bool fin;
};

static const uint8_t any_slirp_mac[6] = { 0x52, 0x55, 0xa9, 0xfe, 0xa9, 0xff };

/* flow_send - @data in segments of at most 1400 bytes (the link's MTU). */
static void flow_send(struct flow *fl, uint8_t flags, const char *data)
{
	uint8_t f[2048];
	size_t left = data ? strlen(data) : 0;

	do {
		size_t n = left < 1400 ? left : 1400;
		send_frame(fl->r, f, nf_tcp(f, guest_mac, any_slirp_mac, guest_ip, mmds_ip,
					    fl->sport, 80, fl->seq, fl->ack, flags, data, n));
		fl->seq += (uint32_t)n;
		data = n ? data + n : data;
		left -= n;
	} while (left);
}

/* flow_read - take this flow's new segments: payload in order, FIN. */
static void flow_read(struct flow *fl)
{
	for (; fl->seen < fl->r->fs.got.n; fl->seen++) {
		struct nf_pkt p;
		if (!nf_parse(fl->r->fs.got.f[fl->seen], fl->r->fs.got.len[fl->seen], &p) ||
		    p.proto != 6 || p.dport != fl->sport)
			continue;
		if (p.flags & NF_TCP_SYN) {
			fl->ack = p.seq + 1;
			continue;
		}
		if (p.paylen && p.seq == fl->ack && fl->in_len + p.paylen < sizeof(fl->in)) {
			memcpy(fl->in + fl->in_len, p.payload, p.paylen);
			fl->in_len += p.paylen;
			fl->ack += (uint32_t)p.paylen;
		}
		if ((p.flags & NF_TCP_FIN) && p.seq + p.paylen == fl->ack) {
			fl->ack++;
			fl->fin = true;
		}
	}
	fl->in[fl->in_len] = '\0';
}

static bool flow_open(struct rig *r, struct flow *fl, uint16_t sport)
{
	*fl = (struct flow){ .r = r, .sport = sport, .seq = 5000u * sport, .seen = r->fs.got.n };
	flow_send(fl, NF_TCP_SYN, NULL);
	fl->seq++;
	flow_read(fl);
	if (!fl->ack)
		return false;
	flow_send(fl, NF_TCP_ACK, NULL);
	return true;
}

/* A whole response (by Content-Length) is in. */
static bool response_in(struct rig *r, void *arg)
{
	struct flow *fl = arg;

	flow_read(fl);
	const char *end = strstr(fl->in, "\r\n\r\n");
	const char *cl = strcasestr(fl->in, "Content-Length:");
	return end && cl && fl->in_len >= (size_t)(end + 4 - fl->in) + strtoul(cl + 15, NULL, 10);
}

/* flow_request - send @req, wait for the response, ACK it. */
static bool flow_request(struct flow *fl, const char *req)
{
	fl->in_len = 0;
	fl->in[0] = '\0';
	flow_send(fl, NF_TCP_ACK | NF_TCP_PSH, req);
	pump_until(fl->r, 3000, response_in, fl);
	flow_send(fl, NF_TCP_ACK, NULL);
	return response_in(fl->r, fl);
}

static const char sample_store[] =
	"{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-12345678\",\"n\":{\"x\":\"y\"}}}}";

static bool full_rig_init(struct rig *r, enum mmds_version v)
{
	struct errbuf eb = { 0 };
	struct mmds_config cfg = { .version = v };

	memset(r, 0, sizeof(*r));
	r->listen_fd = -1;
	cfg.ipv4.s_addr = htonl(mmds_ip);
	r->mmds = mmds_new(&cfg);
	mmds_put(r->mmds, sample_store, strlen(sample_store));
	r->inner = calloc(1, sizeof(*r->inner));
	r->inner->be = (struct net_backend){ .ops = &fake_inner_ops, .loop = &loop, .rx_fd = -1 };
	r->be = mmds_intercept_create(&loop, &r->inner->be, r->mmds, &eb);
	if (!r->be) {
		fprintf(stderr, "  mmds_intercept_create: %s\n", eb.msg);
		return false;
	}
	fs_attach(&r->fs, r->be);
	uint8_t f[64];
	send_frame(r, f, nf_arp_request(f, guest_mac, guest_ip, mmds_ip));
	return true;
}

/* count_private_dirs - kvmini-mmds-* entries under $TMPDIR: this test's
 * own directory (main), so another process's services are not counted. */
static int count_private_dirs(void)
{
	FILE *p = popen("ls -d \"$TMPDIR\"/kvmini-mmds-* 2>/dev/null | wc -l", "r");
	int n = -1;

	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

/* V1 over real TCP through libslirp: keep-alive requests, a second
 * connection at the same time, the server's answers in both formats. */
static void test_http_over_tcp_v1(void)
{
	struct rig r;
	struct flow a, b;
	int dirs_before = count_private_dirs();

	CHECK(full_rig_init(&r, MMDS_V1));
	if (!r.be)
		return;
	CHECK_EQ(count_private_dirs(), dirs_before + 1);
	CHECK(flow_open(&r, &a, 40100));
	CHECK(flow_open(&r, &b, 40101));
	CHECK(flow_request(&a, "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: m\r\n\r\n"));
	CHECK(strstr(a.in, "HTTP/1.1 200") == a.in);
	CHECK(strstr(a.in, "\r\n\r\nami-12345678") != NULL);
	CHECK(flow_request(&b, "GET /latest/meta-data HTTP/1.1\r\nAccept: application/json\r\n\r\n"));
	CHECK(strstr(b.in, "{\"ami-id\":\"ami-12345678\",\"n\":{\"x\":\"y\"}}") != NULL);
	/* Same connection again (keep-alive), and a 404 and a 405. */
	CHECK(flow_request(&a, "GET /latest/meta-data/ HTTP/1.1\r\n\r\n"));
	CHECK(strstr(a.in, "\r\n\r\nami-id\nn/") != NULL);
	CHECK(flow_request(&a, "GET /nope HTTP/1.1\r\n\r\n"));
	CHECK(strstr(a.in, "HTTP/1.1 404") == a.in);
	CHECK(flow_request(&b, "DELETE / HTTP/1.1\r\n\r\n"));
	CHECK(strstr(b.in, "HTTP/1.1 405") == b.in && strstr(b.in, "Allow: GET, PUT"));
	/* Connection: close: the server closes, the guest sees FIN. */
	CHECK(flow_request(&b, "GET /latest HTTP/1.1\r\nConnection: close\r\n\r\n"));
	pump_until(&r, 2000, got_fin, &b.seen);
	flow_read(&b);
	CHECK(b.fin);
	/* A body announced and never sent (Firecracker's "MMDS hang" test):
	 * refused at once, not left to the request timeout. */
	struct flow d;
	CHECK(flow_open(&r, &d, 40102));
	CHECK(flow_request(&d, "GET / HTTP/1.1\r\nContent-Length: 100\r\n"
			   "Accept: application/json\r\n\r\nsome body"));
	CHECK(strstr(d.in, "HTTP/1.1 400") == d.in);
	CHECK(strstr(d.in, "\r\n\r\nInvalid request.") != NULL);
	const struct mmds_counters *c = mmds_counters(r.mmds);
	CHECK_EQ(c->rx_bad_request, 1);
	CHECK_EQ(c->rx_accepted, 4);
	CHECK_EQ(c->rx_not_found, 1);
	CHECK_EQ(c->rx_method_not_allowed, 1);
	CHECK(c->frames_injected > 10);
	CHECK_EQ(r.inner->sent.n, 0);
	/* The HTTP server's own counters show in the service's dump. */
	char dump[8192] = { 0 };
	FILE *f = fmemopen(dump, sizeof(dump) - 1, "w");
	mmds_dump_counters(r.mmds, f);
	fclose(f);
	CHECK(strstr(dump, "mmds rx_requests_timed_out 0\n"));
	CHECK(strstr(dump, "mmds rx_connections_refused 0\n"));
	rig_fini(&r);
	/* The private directory and its socket are gone. */
	CHECK_EQ(count_private_dirs(), dirs_before);
}

/* V2 over TCP: a token, then a GET with it; without it 401. */
static void test_http_over_tcp_v2(void)
{
	struct rig r;
	struct flow a;
	char req[512];

	CHECK(full_rig_init(&r, MMDS_V2));
	if (!r.be)
		return;
	CHECK(flow_open(&r, &a, 40200));
	CHECK(flow_request(&a, "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n"));
	CHECK(strstr(a.in, "HTTP/1.1 401") == a.in);
	CHECK(flow_request(&a, "PUT /latest/api/token HTTP/1.1\r\n"
			   "X-metadata-token-ttl-seconds: 30\r\n\r\n"));
	CHECK(strstr(a.in, "HTTP/1.1 200") == a.in);
	const char *tok = strstr(a.in, "\r\n\r\n");
	snprintf(req, sizeof(req), "GET /latest/meta-data/ami-id HTTP/1.1\r\n"
		 "X-aws-ec2-metadata-token: %s\r\n\r\n", tok ? tok + 4 : "");
	CHECK(flow_request(&a, req));
	CHECK(strstr(a.in, "HTTP/1.1 200") == a.in && strstr(a.in, "ami-12345678"));
	/* A request over the header limit: 413 through mmds_http_error. */
	char big[10000];
	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Pad: %09000d\r\n\r\n", 0);
	CHECK(flow_request(&a, big));
	CHECK(strstr(a.in, "HTTP/1.1 413") == a.in);
	CHECK_EQ(mmds_counters(r.mmds)->rx_too_large, 1);
	CHECK_EQ(mmds_counters(r.mmds)->tokens_issued, 1);
	CHECK_EQ(r.inner->sent.n, 0);
	rig_fini(&r);
}

static void test_endpoint_config_checked(void)
{
	struct errbuf eb = { 0 };
	struct slirp_endpoint ep = { .port = 80, .unix_path = "/nonexistent/x" };

	ep.addr.s_addr = htonl(nf_ip4("10.0.2.2"));
	CHECK(net_slirp_create_endpoint(&loop, &ep, &eb) == NULL);
	CHECK(strstr(eb.msg, "link-local") != NULL);
	ep.addr.s_addr = htonl(nf_ip4("169.254.255.255"));
	CHECK(net_slirp_create_endpoint(&loop, &ep, &eb) == NULL);
	ep.addr.s_addr = htonl(nf_ip4("169.254.255.254"));
	ep.port = 0;
	CHECK(net_slirp_create_endpoint(&loop, &ep, &eb) == NULL);
	/* The top of the range works (its neighbour below is libslirp's). */
	ep.port = 80;
	struct net_backend *be = net_slirp_create_endpoint(&loop, &ep, &eb);
	CHECK(be != NULL);
	if (be) {
		CHECK_EQ(ntohl(net_slirp_endpoint_host(be).s_addr), nf_ip4("169.254.255.253"));
		be->ops->destroy(be);
	}
}

int main(void)
{
	char tmpdir[] = "/tmp/kvmini-mmds-unit.XXXXXX";

	log_threshold = LOG_WARN;
	/* The services' private directories go here (service.c honours
	 * TMPDIR), where only this test makes them. */
	if (!mkdtemp(tmpdir) || setenv("TMPDIR", tmpdir, 1) < 0)
		return 1;
	if (event_loop_init(&loop) < 0)
		return 1;
	guest_ip = nf_ip4("10.0.0.2");
	mmds_ip = nf_ip4("169.254.169.254");
	RUN_TEST(test_arp_answered);
	RUN_TEST(test_other_frames_pass);
	RUN_TEST(test_tcp_through_endpoint);
	RUN_TEST(test_other_ports_refused);
	RUN_TEST(test_unannounced_guest_answered);
	RUN_TEST(test_held_until_rx_ready);
	RUN_TEST(test_wrapped_queue_backend_delivers);
	RUN_TEST(test_tcp_cap_per_round);
	RUN_TEST(test_http_over_tcp_v1);
	RUN_TEST(test_http_over_tcp_v2);
	RUN_TEST(test_endpoint_config_checked);
	event_loop_destroy(&loop);
	rmdir(tmpdir);
	return CHECK_DONE();
}
