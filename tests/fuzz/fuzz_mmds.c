/*
 * libFuzzer target: the metadata service from the guest's side.
 *
 * The first input byte picks a mode:
 *  - even: HTTP. The rest is fed, in input-sized chunks, to an HTTP
 *    connection (http_conn_*) whose handler is the MMDS's, V1 or V2, over
 *    a store prefilled (and PATCHed by the input as operator would), with
 *    a token issued first so that V2 reads get past the check at times.
 *  - odd: frames. A fresh interceptor (mmds_intercept_create: private
 *    directory, HTTP server, libslirp endpoint) around a recording backend
 *    takes a list of operations: raw frames, well-formed ARP and TCP frames
 *    to the MMDS address with fuzzed flags, numbers and payloads, loop
 *    turns (so libslirp and the HTTP server talk), RX buffers going and
 *    coming back; half of the runs with a wrapped backend that takes vnet
 *    headers, each frame then sent as the device sends it: the header in
 *    a piece of its own, then the frame.
 * Checked besides ASan/UBSan/LeakSanitizer: no frame naming the MMDS
 * address reaches the wrapped backend; everything else reaches it as sent;
 * every answer has a status the MMDS gives.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_net.h>

#include "core/event_loop.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "http/http.h"
#include "mmds/intercept.h"
#include "mmds/mmds.h"
#include "fuzz_input.h"
#include "netframe.h"

#define FAIL(...) FUZZ_FAIL("fuzz_mmds", __VA_ARGS__)

#define MAX_OPS 64
#define MAX_FRAME 2048

static const char store[] =
	"{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"list\":[1,\"two\",{\"a\":null}],"
	"\"n\":{\"m\":{\"o\":\"deep\"}}},\"user-data\":\"x\"},\"num\":4.5,\"t\":true}";

static uint32_t mmds_ip;
static const uint8_t guest_mac[6] = { 2, 0, 0, 0, 0, 1 };

/* ---- HTTP mode ---- */

static void check_response(const char *out, size_t len)
{
	static const char *const ok[] = {
		"HTTP/1.1 200", "HTTP/1.1 400", "HTTP/1.1 401", "HTTP/1.1 404", "HTTP/1.1 405",
		"HTTP/1.1 413", "HTTP/1.1 501", "HTTP/1.1 505", "HTTP/1.1 100", "HTTP/1.0 ",
	};
	for (size_t off = 0; off + 12 <= len;) {
		const char *p = memmem(out + off, len - off, "HTTP/1.", 7);
		if (!p)
			return;
		bool known = false;
		for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
			known |= (size_t)(out + len - p) >= strlen(ok[i]) &&
				 !memcmp(p, ok[i], strlen(ok[i]));
		/* A body may itself contain "HTTP/1." (a 404 echoes the path). */
		if (!known && (p == out || p[-1] == '\n'))
			FAIL("unexpected status line: %.20s", p);
		off = (size_t)(p - out) + 7;
	}
}

static void fuzz_http(struct fuzz_input *in)
{
	struct mmds_config cfg = { .version = fuzz_take(in, 1) & 1 ? MMDS_V2 : MMDS_V1,
				   .store_limit = 512 + fuzz_take(in, 1) * 8 };
	struct http_limits lim = { .max_header_bytes = 2048, .max_body_bytes = 512,
				   .max_connections = 1 };

	cfg.ipv4.s_addr = htonl(mmds_ip);
	struct mmds *m = mmds_new(&cfg);
	if (!m)
		FAIL("mmds_new");
	mmds_put(m, store, strlen(store));
	/* Operator input: a PATCH of fuzzed JSON. */
	size_t plen = fuzz_take(in, 1);
	char patch[256];
	fuzz_take_bytes(in, patch, plen);
	int r = mmds_patch(m, patch, plen);
	if (r && r != -EINVAL && r != -EFBIG)
		FAIL("mmds_patch returned %d", r);

	struct http_conn *c = http_conn_new(&lim, mmds_http_handler, mmds_http_error, m);
	char *out = NULL;
	size_t out_len = 0;
	/* A token request first, so V2 GETs can carry a valid token. */
	static const char tok[] = "PUT /latest/api/token HTTP/1.1\r\n"
				  "X-metadata-token-ttl-seconds: 60\r\n\r\n";
	http_conn_feed(c, tok, sizeof(tok) - 1, &out, &out_len);
	while (in->n) {
		size_t chunk = 1 + fuzz_take(in, 1) % 128;
		if (chunk > in->n)
			chunk = in->n;
		r = http_conn_feed(c, (const char *)in->p, chunk, &out, &out_len);
		in->p += chunk;
		in->n -= chunk;
		if (r != 0)
			break;
	}
	check_response(out, out_len);
	free(out);
	http_conn_free(c);
	mmds_free(m);
}

/* ---- frame mode ---- */

struct rec_backend {
	struct net_backend be;
	unsigned frames;
};

/* Bytes in front of each frame: a vnet header with a backend that takes
 * offloads, none otherwise. */
static size_t hdr_len;

static int rec_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		    uint32_t token)
{
	uint8_t f[64];
	size_t len = iov_to_buf(iov, iovcnt, hdr_len, f, sizeof(f));
	struct nf_pkt p;

	((struct rec_backend *)be)->frames++;
	if (len >= 14 && nf_parse(f, len, &p)) {
		if (p.type == 0x0806 && p.arp_tip == mmds_ip)
			FAIL("ARP for the MMDS address reached the backend");
		if (p.type == 0x0800 && len >= 34 && nf_get32(f + 30) == mmds_ip &&
		    (f[14] >> 4) == 4)
			FAIL("IPv4 to the MMDS address reached the backend");
	}
	return 0;
}

static void rec_destroy(struct net_backend *be)
{
	free(be);
}

static const struct net_backend_ops rec_ops = {
	.name = "rec", .send = rec_send, .destroy = rec_destroy,
};

/* The device's side: told of waiting frames, takes them while it has
 * RX buffers (as the device's RX drain does, after the loop's round). */
struct guest {
	bool can;
	bool pending;
	unsigned got;
	uint8_t buf[MAX_FRAME + 64];
};

static void guest_rx_pending(void *ctx) { ((struct guest *)ctx)->pending = true; }
static void guest_tx_unblocked(void *ctx) { }
static void guest_tx_done(void *ctx, uint32_t token) { }

static const struct net_backend_events guest_events = {
	guest_rx_pending, guest_tx_unblocked, guest_tx_done,
};

static void guest_drain(struct guest *g, struct net_backend *be)
{
	struct iovec iov = { g->buf, sizeof(g->buf) };

	g->pending = false;
	for (unsigned i = 0; g->can && i < 1024; i++) {
		ssize_t r = be->ops->recv(be, &iov, 1);
		if (r == 0)
			return;
		if (r > 0)
			g->got++;
	}
}

static void send_frame(struct net_backend *be, uint8_t *f, size_t len, unsigned split)
{
	static struct virtio_net_hdr_v1 plain;    /* as the device sends a plain frame */
	struct iovec iov[3] = { { &plain, hdr_len } };
	unsigned n = hdr_len ? 1 : 0;

	iov[n++] = (struct iovec){ f, len };
	if (split && split < len) {
		iov[n - 1].iov_len = split;
		iov[n++] = (struct iovec){ f + split, len - split };
	}
	be->ops->send(be, iov, n, 0);
}

static void fuzz_frames(struct fuzz_input *in)
{
	struct event_loop loop;
	unsigned setup = (unsigned)fuzz_take(in, 1);
	struct mmds_config cfg = { .version = setup & 1 ? MMDS_V2 : MMDS_V1 };
	static struct guest guest;
	struct errbuf eb = { 0 };
	uint8_t f[MAX_FRAME + 64], payload[MAX_FRAME];
	uint8_t slirp_mac[6] = { 0x52, 0x55, 0xa9, 0xfe, 0xa9, 0xff };

	if (event_loop_init(&loop) < 0)
		FAIL("event loop");
	cfg.ipv4.s_addr = htonl(mmds_ip);
	struct mmds *m = mmds_new(&cfg);
	mmds_put(m, store, strlen(store));
	struct rec_backend *rb = calloc(1, sizeof(*rb));
	rb->be = (struct net_backend){ .ops = &rec_ops, .loop = &loop, .rx_fd = -1,
				       .offloads = setup & 2 ? 1ull << VIRTIO_NET_F_CSUM : 0 };
	hdr_len = setup & 2 ? sizeof(struct virtio_net_hdr_v1) : 0;
	struct net_backend *be = mmds_intercept_create(&loop, &rb->be, m, &eb);
	if (!be)
		FAIL("mmds_intercept_create: %s", eb.msg);
	guest = (struct guest){ .can = true };
	net_backend_attach(be, &guest_events, &guest);

	bool trace = getenv("FUZZ_MMDS_TRACE") != NULL;
	for (unsigned op = 0; op < MAX_OPS && in->n; op++) {
		unsigned kind = (unsigned)fuzz_take(in, 1);
		unsigned split = (unsigned)fuzz_take(in, 1);
		size_t len;
		if (trace)
			fprintf(stderr, "op %u: kind %u split %u\n", op, kind % 6, split);
		switch (kind % 6) {
		case 0:     /* raw frame */
			len = fuzz_take(in, 2) % MAX_FRAME;
			fuzz_take_bytes(in, f, len);
			/* Aim half of them at the MMDS address. */
			if ((kind & 0x80) && len >= 34) {
				nf_put16(f + 12, 0x0800);
				nf_put32(f + 30, mmds_ip);
			}
			send_frame(be, f, len, split);
			break;
		case 1:     /* ARP for the MMDS address from a fuzzed sender */
			len = nf_arp_request(f, guest_mac, (uint32_t)fuzz_take(in, 4), mmds_ip);
			send_frame(be, f, len, split);
			break;
		case 2: {   /* TCP to MMDS:80 (or another port) with fuzzed fields */
			uint16_t sport = (uint16_t)(40000 + fuzz_take(in, 1) % 4);
			uint16_t dport = kind & 0x80 ? (uint16_t)fuzz_take(in, 2) : 80;
			uint32_t seq = (uint32_t)fuzz_take(in, 4), ack = (uint32_t)fuzz_take(in, 4);
			uint8_t flags = (uint8_t)fuzz_take(in, 1);
			size_t plen = fuzz_take(in, 1) * 4;
			fuzz_take_bytes(in, payload, plen);
			len = nf_tcp(f, guest_mac, slirp_mac, nf_ip4("10.0.0.2"), mmds_ip, sport,
				     dport, seq, ack, flags, payload, plen);
			if (trace)
				fprintf(stderr, "  tcp %u->%u seq %u ack %u flags %#x len %zu\n",
					sport, dport, seq, ack, flags, plen);
			send_frame(be, f, len, split);
			break;
		}
		case 3:     /* a turn of the loop: libslirp and the server talk */
			event_loop_once(&loop, 0);
			if (guest.pending)
				guest_drain(&guest, be);
			break;
		case 4:     /* RX buffers go or come back */
			guest.can = !guest.can;
			if (guest.can) {
				be->ops->rx_ready(be);
				guest_drain(&guest, be);
			}
			break;
		case 5:     /* a frame for someone else */
			len = nf_tcp(f, guest_mac, slirp_mac, nf_ip4("10.0.0.2"),
				     (uint32_t)fuzz_take(in, 4) | 1, 1, 80, 1, 0, NF_TCP_SYN, NULL, 0);
			if (nf_get32(f + 30) == mmds_ip)
				break;
			send_frame(be, f, len, split);
			break;
		}
	}
	for (int i = 0; i < 4; i++) {
		event_loop_once(&loop, 0);
		guest_drain(&guest, be);
	}
	if (getenv("FUZZ_MMDS_SETTLE"))
		for (int i = 0; i < 30; i++) {
			event_loop_once(&loop, 100);
			guest_drain(&guest, be);
		}
	if (trace)
		mmds_dump_counters(m, stderr);
	be->ops->destroy(be);
	mmds_free(m);
	event_loop_destroy(&loop);
}

/* As kvmini's main does (cli/signals.c): libslirp writes to a connection's
 * socket without MSG_NOSIGNAL, and the server may have closed it; SIGPIPE
 * would end the fuzzer without a report (seen as exit 141 in CI). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };

	log_threshold = LOG_ERROR;
	mmds_ip = nf_ip4("169.254.169.254");
	if (fuzz_take(&in, 1) & 1)
		fuzz_frames(&in);
	else
		fuzz_http(&in);
	return 0;
}
