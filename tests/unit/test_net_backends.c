/*
 * Host network backends without a guest: the backend spelling, the user-mode
 * options, the stream framing against a peer socket the test holds (partial
 * reads and writes, back-pressure, hangup, framing errors, reconnects),
 * libslirp's answers (DHCP, ARP, TCP and UDP to the host, port forwards)
 * through a fake sink, several queue pairs per interface
 * (net_backend_create_queues), and, as root, a tap (single- and
 * multi-queue) and a real passt in a network namespace private to this
 * process.
 *
 * As root the whole test runs in its own network namespace (unshare), so the
 * taps, veths, ports and passt it uses are gone when it exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/ethtool.h>
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "netframe.h"
#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "net/backend.h"
#include "net/offload.h"
#include "net/slirp_opts.h"
#include "vu_frontend.h"

static struct event_loop loop;
static char tmpdir[64];
static bool have_netns;

/* --- helpers: time, loop, fake sink ---------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define MAX_FRAMES 256

/* The device's side of a backend: told of waiting frames (rx_pending), it
 * takes them with recv() as deferred work of the loop, as the device's RX
 * drain does, while it has "RX buffers" (can). */
struct fake_sink {
	struct net_backend *be;
	struct event_deferred work;
	bool can;                  /* the guest has RX buffers */
	unsigned n;                /* frames kept */
	uint8_t *frame[MAX_FRAMES];
	size_t len[MAX_FRAMES];
	unsigned unblocked;        /* tx_unblocked calls */
	unsigned flushes;          /* drains that took frames */
	unsigned done;             /* tx_done calls */
};

/* fs_pull - take every waiting frame while there is room. */
static void fs_pull(struct fake_sink *fs)
{
	static uint8_t buf[65600];
	struct iovec iov = { buf, sizeof(buf) };
	bool took = false;

	while (fs->can && fs->n < MAX_FRAMES) {
		ssize_t len = fs->be->ops->recv(fs->be, &iov, 1);
		if (len == 0)
			break;
		if (len < 0)
			continue;
		uint8_t *p = malloc((size_t)len + 1);
		memcpy(p, buf, (size_t)len);
		fs->frame[fs->n] = p;
		fs->len[fs->n++] = (size_t)len;
		took = true;
	}
	if (took)
		fs->flushes++;
}

static void fs_work(struct event_deferred *d)
{
	fs_pull(container_of(d, struct fake_sink, work));
}

static void fs_rx_pending(void *ctx)
{
	struct fake_sink *fs = ctx;

	event_loop_defer(&loop, &fs->work, fs_work);
}

static void fs_tx_unblocked(void *ctx)
{
	((struct fake_sink *)ctx)->unblocked++;
}

static void fs_tx_done(void *ctx, uint32_t token)
{
	((struct fake_sink *)ctx)->done++;
}

static const struct net_backend_events fs_events = {
	.rx_pending = fs_rx_pending, .tx_unblocked = fs_tx_unblocked, .tx_done = fs_tx_done,
};

static void fs_init(struct fake_sink *fs)
{
	memset(fs, 0, sizeof(*fs));
	fs->can = true;
}

/* The guest gives RX buffers back: rx_ready, then the device's drain. */
static void fs_refill(struct fake_sink *fs)
{
	fs->can = true;
	if (fs->be->ops->rx_ready)
		fs->be->ops->rx_ready(fs->be);
	fs_pull(fs);
}

/* Run the loop's deferred work (the fake device's drain among it). */
static void fs_settle(void)
{
	for (int i = 0; i < 8 && event_loop_once(&loop, 0) > 0; i++)
		;
}

static void fs_clear(struct fake_sink *fs)
{
	for (unsigned i = 0; i < fs->n; i++)
		free(fs->frame[i]);
	fs->n = 0;
}

static struct net_backend *create(const char *spec, struct fake_sink *fs)
{
	struct errbuf eb = { 0 };
	struct net_backend *be = net_backend_create(spec, &loop, &eb);

	if (!be) {
		fprintf(stderr, "  create \"%s\": %s\n", spec, eb.msg);
		return NULL;
	}
	if (fs) {
		fs->be = be;
		net_backend_attach(be, &fs_events, fs);
	}
	return be;
}

static void destroy(struct net_backend *be, struct fake_sink *fs)
{
	if (fs && fs->be)
		event_loop_cancel(&loop, &fs->work);
	if (be)
		be->ops->destroy(be);
	if (fs)
		fs_clear(fs);
}

/* Spin the loop for @ms, or until fs holds @n frames (when fs is given). */
static void pump(int ms, struct fake_sink *fs, unsigned n)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end && !(fs && fs->n >= n))
		event_loop_once(&loop, 5);
}

/* The value of backend counter @name from its text dump, or -1. */
static long long counter(struct net_backend *be, const char *name)
{
	char *text = NULL, key[80];
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	long long v = -1;

	be->ops->visit_counters(be, COUNTER_SINK_FILE(f));
	fclose(f);
	snprintf(key, sizeof(key), " %s ", name);
	char *p = strstr(text, key);
	if (p)
		v = strtoll(p + strlen(key), NULL, 10);
	free(text);
	return v;
}

/* The error text net_backend_create gives for @spec ("" when it worked). */
static const char *create_error(const char *spec)
{
	static struct errbuf eb;
	struct net_backend *be;

	eb.msg[0] = '\0';
	be = net_backend_create(spec, &loop, &eb);
	if (be) {
		be->ops->destroy(be);
		return "";
	}
	return eb.msg;
}

#define CHECK_ERR(spec, text) do { \
	const char *_s = (spec), *_e = create_error(_s); \
	if (!strstr(_e, text)) \
		fprintf(stderr, "  \"%s\" gave \"%s\", wanted \"%s\"\n", \
			_s ? _s : "(null)", _e, text); \
	CHECK(strstr(_e, text) != NULL); \
} while (0)

/* --- helpers: frames ---------------------------------------------------------- */

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

#define BOOTP_LEN 548    /* fixed part, cookie and a full options area */

static size_t build_dhcp_discover(uint8_t *f, uint32_t xid)
{
	size_t n = nf_eth(f, guest_mac, bcast_mac, 0x0800);
	uint8_t *ip = f + n, *udp = ip + 20, *bp = udp + 8;

	memset(bp, 0, BOOTP_LEN);
	bp[0] = 1;       /* BOOTREQUEST */
	bp[1] = 1;       /* Ethernet */
	bp[2] = 6;
	nf_put32(bp + 4, xid);
	nf_put16(bp + 10, 0x8000);   /* broadcast the answer */
	memcpy(bp + 28, guest_mac, 6);
	nf_put32(bp + 236, 0x63825363);
	uint8_t *o = bp + 240;
	*o++ = 53; *o++ = 1; *o++ = 1;            /* DHCPDISCOVER */
	*o++ = 55; *o++ = 3; *o++ = 1; *o++ = 3; *o++ = 6;
	*o++ = 255;
	nf_put16(udp, 68);
	nf_put16(udp + 2, 67);
	nf_put16(udp + 4, 8 + BOOTP_LEN);
	nf_put16(udp + 6, 0);        /* no checksum (allowed for UDP over IPv4) */
	nf_ipv4(ip, 17, 0, 0xffffffff, 8 + BOOTP_LEN, 0x1234);
	return n + 20 + 8 + BOOTP_LEN;
}

/* DHCP reply fields we check. */
struct dhcp_reply {
	int type;             /* option 53, -1 if absent */
	uint32_t yiaddr, server, router;
};

static bool parse_dhcp_reply(const uint8_t *f, size_t len, struct dhcp_reply *r)
{
	struct nf_pkt p;

	if (!nf_parse(f, len, &p) || p.proto != 17 || p.l4len < 8 + 240)
		return false;
	if (nf_get16(p.l4) != 67 || nf_get16(p.l4 + 2) != 68)
		return false;
	const uint8_t *bp = p.l4 + 8, *end = p.l4 + p.l4len;
	if (bp[0] != 2 || nf_get32(bp + 236) != 0x63825363)
		return false;
	*r = (struct dhcp_reply){ .type = -1, .yiaddr = nf_get32(bp + 16) };
	for (const uint8_t *o = bp + 240; o < end && *o != 255;) {
		if (*o == 0) {
			o++;
			continue;
		}
		if (o + 2 > end || o + 2 + o[1] > end)
			break;
		if (o[0] == 53 && o[1] == 1)
			r->type = o[2];
		if (o[0] == 54 && o[1] == 4)
			r->server = nf_get32(o + 2);
		if (o[0] == 3 && o[1] >= 4)
			r->router = nf_get32(o + 2);
		o += 2 + o[1];
	}
	return true;
}

/* Index of the first kept frame that is a DHCP reply, or -1. */
static int find_dhcp(struct fake_sink *fs, struct dhcp_reply *r)
{
	for (unsigned i = 0; i < fs->n; i++)
		if (parse_dhcp_reply(fs->frame[i], fs->len[i], r))
			return (int)i;
	return -1;
}

/* --- spec parsing --------------------------------------------------------- */

static void test_spec_errors(void)
{
	char longpath[200];

	CHECK_ERR(NULL, "no network backend given");
	CHECK_ERR("", "no network backend given");
	CHECK_ERR("bogus", "unknown network backend \"bogus\"");
	CHECK_ERR("taps:x", "unknown network backend \"taps\"");
	CHECK_ERR(":x", "unknown network backend");
	CHECK_ERR("tap", "needs an argument: tap:NAME");
	CHECK_ERR("tap:", "needs an argument: tap:NAME");
	CHECK_ERR("tap:0123456789abcdef", "too long");
	CHECK_ERR("stream", "needs an argument: stream:PATH");
	CHECK_ERR("stream:", "needs an argument");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	char spec[256];
	snprintf(spec, sizeof(spec), "stream:%s", longpath);
	CHECK_ERR(spec, "too long");
	CHECK_ERR("stream:/nonexistent/kvmini.sock", "cannot connect");
	CHECK_ERR("loopback:", "takes no argument");
	CHECK_ERR("loopback:x", "takes no argument");
	CHECK_ERR("user:bogus=1", "unknown user option \"bogus\"");
	CHECK_ERR("user:net=10.0.2.0/24,,dns=10.0.2.3", "empty item");
	CHECK_ERR("bogus", "expected tap:NAME, tap-fd:N, user[:OPTIONS]");
}

/* tap-fd's list, and descriptors that are no tap (no privilege needed);
 * test_tap_fd_errors has the refusals that need a tun device. */
static void test_tap_fd_spec_errors(void)
{
	char spec[200];
	size_t off = 0;

	CHECK_ERR("tap-fd", "needs an argument: tap-fd:N");
	CHECK_ERR("tap-fd:", "needs an argument: tap-fd:N");
	CHECK_ERR("tap-fd:x", "tap-fd:x: \"x\" is not a descriptor number");
	CHECK_ERR("tap-fd:3x", "\"3x\" is not a descriptor number");
	CHECK_ERR("tap-fd:+3", "\"+3\" is not a descriptor number");
	CHECK_ERR("tap-fd: 3", "\" 3\" is not a descriptor number");
	CHECK_ERR("tap-fd:-1", "descriptor numbers are not negative (-1)");
	CHECK_ERR("tap-fd:3,-4", "descriptor numbers are not negative (-4)");
	CHECK_ERR("tap-fd:-", "\"-\" is not a descriptor number");
	CHECK_ERR("tap-fd:2147483648", "descriptor 2147483648 is out of range");
	CHECK_ERR("tap-fd:99999999999999999999999", "out of range");
	CHECK_ERR("tap-fd:3,", "an empty item in the list");
	CHECK_ERR("tap-fd:,3", "an empty item in the list");
	CHECK_ERR("tap-fd:3,,4", "an empty item in the list");
	CHECK_ERR("tap-fd:,", "an empty item in the list");
	CHECK_ERR("tap-fd:3,4,3", "descriptor 3 is given twice");
	CHECK_ERR("tap-fd:03,3", "descriptor 3 is given twice");
	for (int i = 0; i < 17; i++)
		off += (size_t)snprintf(spec + off, sizeof(spec) - off, "%s%d", i ? "," : "tap-fd:",
					100 + i);
	CHECK_ERR(spec, "more than 16 descriptors");
	/* Several descriptors are a multi-queue tap's queues, one per pair. */
	CHECK_ERR("tap-fd:3,4", "tap-fd:3,4: 2 descriptors given for 1 queue pair: one "
		  "descriptor per queue pair");

	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "tap-fd:%d", fd);
	CHECK_ERR(spec, "is not open");
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	snprintf(spec, sizeof(spec), "tap-fd:%d", fd);
	CHECK_ERR(spec, "not a tun/tap device (TUNGETIFF: Inappropriate ioctl for device)");
	/* A refused descriptor stays open and the caller's. */
	CHECK(fcntl(fd, F_GETFD) >= 0);
	close(fd);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(spec, sizeof(spec), "tap-fd:%d", fd);
	CHECK_ERR(spec, "not a tun/tap device");
	close(fd);
}

static void test_spec_kinds(void)
{
	const char *ok[] = { "loopback", "user", "user:", "user:restrict=on" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct net_backend *be = create(ok[i], NULL);
		CHECK(be != NULL);
		if (be) {
			CHECK_EQ(be->rx_fd, -1);
			be->ops->destroy(be);
		}
	}
}

/* --- user: options ------------------------------------------------------------ */

static int parse_opts(const char *text, struct slirp_opts *o, struct errbuf *eb)
{
	eb->msg[0] = '\0';
	return slirp_opts_parse(o, text, eb);
}

static void test_user_opts_defaults(void)
{
	struct slirp_opts o;
	struct errbuf eb = { 0 };

	CHECK_EQ(parse_opts(NULL, &o, &eb), 0);
	CHECK_EQ(ntohl(o.net.s_addr), nf_ip4("10.0.2.0"));
	CHECK_EQ(ntohl(o.mask.s_addr), 0xffffff00u);
	CHECK_EQ(ntohl(o.host.s_addr), nf_ip4("10.0.2.2"));
	CHECK_EQ(ntohl(o.dhcp_start.s_addr), nf_ip4("10.0.2.15"));
	CHECK_EQ(ntohl(o.dns.s_addr), nf_ip4("10.0.2.3"));
	CHECK_EQ(o.restrict_guest, false);
	CHECK_EQ(o.nhostfwd, 0);
	CHECK_EQ(parse_opts("", &o, &eb), 0);
	CHECK_EQ(ntohl(o.host.s_addr), nf_ip4("10.0.2.2"));
}

static void test_user_opts_values(void)
{
	struct slirp_opts o;
	struct errbuf eb = { 0 };

	/* Unset addresses follow net=, whatever the order. */
	CHECK_EQ(parse_opts("dns=192.168.76.53,net=192.168.76.0/24,restrict=on", &o, &eb),
		 0);
	CHECK_EQ(ntohl(o.net.s_addr), nf_ip4("192.168.76.0"));
	CHECK_EQ(ntohl(o.host.s_addr), nf_ip4("192.168.76.2"));
	CHECK_EQ(ntohl(o.dhcp_start.s_addr), nf_ip4("192.168.76.15"));
	CHECK_EQ(ntohl(o.dns.s_addr), nf_ip4("192.168.76.53"));
	CHECK_EQ(o.restrict_guest, true);

	CHECK_EQ(parse_opts("net=172.16.0.0/12,host=172.16.0.1,dhcpstart=172.20.0.10,restrict=off",
			    &o, &eb), 0);
	CHECK_EQ(ntohl(o.mask.s_addr), 0xfff00000u);
	CHECK_EQ(ntohl(o.host.s_addr), nf_ip4("172.16.0.1"));
	CHECK_EQ(ntohl(o.dhcp_start.s_addr), nf_ip4("172.20.0.10"));
	CHECK_EQ(ntohl(o.dns.s_addr), nf_ip4("172.16.0.3"));
	CHECK_EQ(o.restrict_guest, false);
}

static void test_user_opts_hostfwd(void)
{
	struct slirp_opts o;
	struct errbuf eb = { 0 };

	CHECK_EQ(parse_opts("hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-10.0.2.20:53,"
			    "hostfwd=::8080-10.0.2.15:80,dhcpstart=10.0.2.100", &o, &eb), 0);
	CHECK_EQ(o.nhostfwd, 3);
	CHECK_EQ(o.hostfwd[0].udp, false);
	CHECK_EQ(ntohl(o.hostfwd[0].host_addr.s_addr), nf_ip4("127.0.0.1"));
	CHECK_EQ(o.hostfwd[0].host_port, 2222);
	/* No guest address: the first DHCP lease, even when given later. */
	CHECK_EQ(ntohl(o.hostfwd[0].guest_addr.s_addr), nf_ip4("10.0.2.100"));
	CHECK_EQ(o.hostfwd[0].guest_port, 22);
	CHECK_EQ(o.hostfwd[1].udp, true);
	CHECK_EQ(o.hostfwd[1].host_addr.s_addr, htonl(INADDR_ANY));
	CHECK_EQ(o.hostfwd[1].host_port, 5353);
	CHECK_EQ(ntohl(o.hostfwd[1].guest_addr.s_addr), nf_ip4("10.0.2.20"));
	CHECK_EQ(o.hostfwd[1].guest_port, 53);
	CHECK_EQ(o.hostfwd[2].udp, false);
	CHECK_EQ(o.hostfwd[2].host_port, 8080);
	CHECK_EQ(ntohl(o.hostfwd[2].guest_addr.s_addr), nf_ip4("10.0.2.15"));
}

static void test_user_opts_errors(void)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "bogus=1", "unknown user option \"bogus\"" },
		{ "net", "expected KEY=VALUE" },
		{ "net=", "expected KEY=VALUE" },
		{ "=1", "expected KEY=VALUE" },
		{ ",net=10.0.2.0/24", "empty item" },
		{ "net=10.0.2.0/24,", "empty item" },
		{ "net=10.0.2.0", "prefix length" },
		{ "net=10.0.2/24", "expected A.B.C.D/N" },
		{ "net=10.0.2.0/31", "N from 1 to 30" },
		{ "net=10.0.2.0/0", "N from 1 to 30" },
		{ "net=10.0.2.0/+24", "N from 1 to 30" },
		{ "net=10.0.2.1/24", "host bits are set" },
		{ "net=10.0.2.0/29", "too small for the default dhcpstart" },
		{ "host=10.0.3.2", "host 10.0.3.2 is not a usable address of the guest network 10.0.2.0/24" },
		{ "host=10.0.2.0", "is not a usable address" },
		{ "dhcpstart=10.0.2.255", "dhcpstart 10.0.2.255 is not a usable" },
		{ "dns=10.0.2.2", "host and dns must be different" },
		{ "dns=banana", "dns=banana: expected an IPv4 address" },
		{ "restrict=yes", "expected on or off" },
		{ "hostfwd=tcp:127.0.0.1:0-:22", "hostfwd=tcp:127.0.0.1:0-:22: expected" },
		{ "hostfwd=tcp:127.0.0.1:65536-:22", "expected" },
		{ "hostfwd=sctp::1-:2", "expected [tcp|udp]" },
		{ "hostfwd=tcp::22", "expected [tcp|udp]" },
		{ "hostfwd=tcp::22-:", "expected [tcp|udp]" },
		{ "hostfwd=tcp:1.2.3:22-:22", "expected [tcp|udp]" },
		{ "hostfwd=tcp::22-10.0.9.1:22", "hostfwd guest address 10.0.9.1 is not a usable" },
		{ "hostfwd=tcp::22-:22,hostfwd=tcp::22-:23", "tcp host port 22 is forwarded twice" },
	};
	struct slirp_opts o;
	struct errbuf eb = { 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse_opts(cases[i].text, &o, &eb);
		if (r != -EINVAL || !strstr(eb.msg, cases[i].want))
			fprintf(stderr, "  \"%s\" -> %d \"%s\"; wanted \"%s\"\n", cases[i].text, r,
				eb.msg, cases[i].want);
		CHECK_EQ(r, -EINVAL);
		CHECK(strstr(eb.msg, cases[i].want) != NULL);
	}
	/* Same port for tcp and udp is two different forwards. */
	CHECK_EQ(parse_opts("hostfwd=tcp::22-:22,hostfwd=udp::22-:22", &o, &eb), 0);

	char text[SLIRP_OPTS_MAX_LEN + 64] = "";
	for (int i = 0; i <= SLIRP_OPTS_MAX_HOSTFWD; i++) {
		char item[40];
		snprintf(item, sizeof(item), "%shostfwd=tcp::%d-:22", i ? "," : "", 1000 + i);
		strcat(text, item);
	}
	CHECK_EQ(parse_opts(text, &o, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "at most 16 forwards") != NULL);
	memset(text, 'x', SLIRP_OPTS_MAX_LEN + 1);
	text[SLIRP_OPTS_MAX_LEN + 1] = '\0';
	CHECK_EQ(parse_opts(text, &o, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "longer than") != NULL);
}

/* --- stream ----------------------------------------------------------------- */

static char stream_path[100];

static int listen_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	unlink(path);
	if (strlen(path) >= sizeof(a.sun_path))
		return -1;
	strcpy(a.sun_path, path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4)) {
		perror("listen_unix");
		return -1;
	}
	return fd;
}

/* Accept the backend's (re)connection, running the loop meanwhile. */
static int accept_peer(int lfd, int ms)
{
	int64_t end = now_ms() + ms;

	do {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		if (poll(&p, 1, 0) == 1)
			return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		event_loop_once(&loop, 10);
	} while (now_ms() < end);
	return -1;
}

/* Read exactly @len bytes from the peer, running the loop meanwhile. */
static bool peer_read(int fd, void *buf, size_t len, int ms)
{
	int64_t end = now_ms() + ms;
	size_t got = 0;

	while (got < len && now_ms() < end) {
		ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			return false;
		else
			event_loop_once(&loop, 5);
	}
	return got == len;
}

/* One record from the peer's side: returns the frame length or -1. */
static long peer_read_record(int fd, uint8_t *buf, size_t cap)
{
	uint8_t hdr[4];

	if (!peer_read(fd, hdr, 4, 3000))
		return -1;
	uint32_t len = nf_get32(hdr);
	if (len > cap || !peer_read(fd, buf, len, 3000))
		return -1;
	return (long)len;
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 8));
}

static bool has_pattern(const uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(i * 7 + seed * 13 + (i >> 8)))
			return false;
	return true;
}

/* Write @len bytes of records to the peer socket in ragged chunks, letting
 * the backend run between them: it sees every split a stream can make. */
static void peer_write_ragged(int fd, const uint8_t *buf, size_t len)
{
	static const size_t chunks[] = { 1, 2, 3, 1, 7, 1000, 4096, 3, 9000 };
	size_t off = 0;

	for (unsigned i = 0; off < len; i++) {
		size_t n = MIN(chunks[i % 9], len - off);
		ssize_t w = send(fd, buf + off, n, MSG_NOSIGNAL);
		if (w <= 0) {
			event_loop_once(&loop, 5);
			continue;
		}
		off += (size_t)w;
		event_loop_once(&loop, 0);
	}
}

/* One frame as one TX drain sends it: send, then the device's flush; a
 * kept frame that went out (or was copied) counts as sent: 0. */
static int stream_send1(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
			uint32_t token)
{
	int r = be->ops->send(be, iov, iovcnt, token);

	be->ops->flush(be);
	return r == NET_SEND_KEPT ? 0 : r;
}

struct stream_fixture {
	struct fake_sink fs;
	struct net_backend *be;
	int lfd, peer;
};

static bool stream_setup(struct stream_fixture *sf)
{
	fs_init(&sf->fs);
	sf->peer = -1;
	sf->lfd = listen_unix(stream_path);
	char spec[200];
	snprintf(spec, sizeof(spec), "stream:%s", stream_path);
	sf->be = sf->lfd >= 0 ? create(spec, &sf->fs) : NULL;
	if (sf->be)
		sf->peer = accept_peer(sf->lfd, 1000);
	return sf->be && sf->peer >= 0;
}

static void stream_teardown(struct stream_fixture *sf)
{
	destroy(sf->be, &sf->fs);
	if (sf->peer >= 0)
		close(sf->peer);
	if (sf->lfd >= 0)
		close(sf->lfd);
	unlink(stream_path);
}

/* Records of 1, 60, 1514 and 65550 bytes, sent in ragged pieces. */
static void test_stream_rx_reassembly(void)
{
	static const uint32_t sizes[] = { 1, 60, 1514, 65550, 42 };
	static uint8_t buf[4 * 5 + 1 + 60 + 1514 + 65550 + 42];
	struct stream_fixture sf;
	size_t off = 0;

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	for (unsigned i = 0; i < 5; i++) {
		nf_put32(buf + off, sizes[i]);
		fill_pattern(buf + off + 4, sizes[i], i);
		off += 4 + sizes[i];
	}
	peer_write_ragged(sf.peer, buf, off);
	pump(2000, &sf.fs, 5);
	CHECK_EQ(sf.fs.n, 5);
	for (unsigned i = 0; i < sf.fs.n && i < 5; i++) {
		CHECK_EQ(sf.fs.len[i], sizes[i]);
		CHECK(has_pattern(sf.fs.frame[i], sf.fs.len[i], i));
	}
	CHECK(sf.fs.flushes >= 1);
	CHECK_EQ(counter(sf.be, "rx_frames"), 5);
	CHECK_EQ(counter(sf.be, "rx_bytes"), 1 + 60 + 1514 + 65550 + 42);
	stream_teardown(&sf);
}

/* TX framing: a frame in three iovecs comes out as one record. */
static void test_stream_tx_framing(void)
{
	struct stream_fixture sf;
	uint8_t frame[1514], got[2000];

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	fill_pattern(frame, sizeof(frame), 3);
	struct iovec iov[3] = { { frame, 14 }, { frame + 14, 1 }, { frame + 15, 1499 } };
	CHECK_EQ(stream_send1(sf.be, iov, 3, 0), 0);
	CHECK_EQ(stream_send1(sf.be, iov, 1, 0), 0);
	CHECK_EQ(peer_read_record(sf.peer, got, sizeof(got)), 1514);
	CHECK(has_pattern(got, 1514, 3));
	CHECK_EQ(peer_read_record(sf.peer, got, sizeof(got)), 14);
	CHECK(!memcmp(got, frame, 14));
	/* Frames the framing cannot carry are refused, not truncated. */
	static uint8_t big[65551];
	struct iovec bigv = { big, sizeof(big) };
	CHECK_EQ(stream_send1(sf.be, &bigv, 1, 0), -EMSGSIZE);
	CHECK_EQ(stream_send1(sf.be, iov, 0, 0), -EMSGSIZE);
	CHECK_EQ(counter(sf.be, "tx_dropped_oversize"), 2);
	CHECK_EQ(counter(sf.be, "tx_frames"), 2);
	stream_teardown(&sf);
}

/* A peer that does not read: partial writes are buffered, the buffer fills,
 * send says -EAGAIN, and once the peer drains tx_unblocked comes; every
 * record arrives whole and in order. */
static void test_stream_tx_backpressure(void)
{
	enum { FRAME = 60000, MAXSENT = 64 };
	struct stream_fixture sf;
	static uint8_t frame[FRAME], got[FRAME];
	unsigned sent = 0;
	int r = 0;

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	while (sent < MAXSENT) {
		fill_pattern(frame, FRAME, sent);
		struct iovec iov = { frame, FRAME };
		r = stream_send1(sf.be, &iov, 1, 0);
		if (r)
			break;
		sent++;
	}
	CHECK_EQ(r, -EAGAIN);
	CHECK(sent >= 4);    /* socket buffer plus the backend's own */
	CHECK_EQ(counter(sf.be, "tx_blocked"), 1);
	CHECK_EQ(sf.fs.unblocked, 0);
	unsigned ok = 0;
	for (unsigned i = 0; i < sent; i++) {
		if (peer_read_record(sf.peer, got, sizeof(got)) == FRAME && has_pattern(got, FRAME, i))
			ok++;
	}
	CHECK_EQ(ok, sent);
	pump(200, NULL, 0);
	CHECK_EQ(sf.fs.unblocked, 1);
	/* And the refused frame goes through now. */
	struct iovec iov = { frame, FRAME };
	CHECK_EQ(stream_send1(sf.be, &iov, 1, 0), 0);
	CHECK_EQ(peer_read_record(sf.peer, got, sizeof(got)), FRAME);
	CHECK(has_pattern(got, FRAME, sent));
	stream_teardown(&sf);
}

/* The peer hangs up while the device waits for room: the device is
 * released (its frames now drop) rather than left waiting forever. */
static void test_stream_blocked_peer_hangup(void)
{
	enum { FRAME = 60000 };
	static uint8_t frame[FRAME];
	struct iovec iov = { frame, FRAME };
	struct stream_fixture sf;
	int r = 0;

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	for (unsigned i = 0; i < 64 && r == 0; i++)
		r = stream_send1(sf.be, &iov, 1, 0);
	CHECK_EQ(r, -EAGAIN);
	close(sf.peer);
	sf.peer = -1;
	pump(500, NULL, 0);
	CHECK_EQ(sf.fs.unblocked, 1);
	CHECK_EQ(counter(sf.be, "disconnects"), 1);
	CHECK_EQ(stream_send1(sf.be, &iov, 1, 0), 0);
	CHECK_EQ(counter(sf.be, "tx_dropped_disconnected"), 1);
	stream_teardown(&sf);
}

/* No RX buffers: nothing is read or dropped, and the loop stays quiet;
 * rx_ready delivers what waited, in order. */
static void test_stream_rx_flow_control(void)
{
	struct stream_fixture sf;
	uint8_t rec[3][4 + 100];

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	sf.fs.can = false;
	for (unsigned i = 0; i < 3; i++) {
		nf_put32(rec[i], 100);
		fill_pattern(rec[i] + 4, 100, i);
		CHECK_EQ(send(sf.peer, rec[i], sizeof(rec[i]), MSG_NOSIGNAL), (long)sizeof(rec[i]));
	}
	pump(50, NULL, 0);
	CHECK_EQ(sf.fs.n, 0);
	/* Paused on a readable socket: no busy loop. */
	CHECK_EQ(event_loop_once(&loop, 50), 0);
	unsigned flushes = sf.fs.flushes;
	fs_refill(&sf.fs);
	pump(500, &sf.fs, 3);
	CHECK_EQ(sf.fs.n, 3);
	for (unsigned i = 0; i < sf.fs.n; i++)
		CHECK(sf.fs.len[i] == 100 && has_pattern(sf.fs.frame[i], 100, i));
	CHECK(sf.fs.flushes > flushes);
	stream_teardown(&sf);
}

/* The peer goes away: TX is dropped and counted, the backend reconnects
 * within about a second, and frames flow again. */
static void test_stream_peer_disconnect(void)
{
	struct stream_fixture sf;
	uint8_t frame[64] = { 1, 2, 3 }, got[64];
	struct iovec iov = { frame, sizeof(frame) };

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	/* Half a record in flight when the peer dies: it must not linger. */
	uint8_t half[6] = { 0, 0, 0, 64, 9, 9 };
	CHECK_EQ(send(sf.peer, half, sizeof(half), MSG_NOSIGNAL), 6);
	pump(20, NULL, 0);
	close(sf.peer);
	sf.peer = -1;
	int64_t end = now_ms() + 1000;
	while (counter(sf.be, "disconnects") < 1 && now_ms() < end)
		event_loop_once(&loop, 10);
	CHECK_EQ(counter(sf.be, "disconnects"), 1);
	CHECK_EQ(stream_send1(sf.be, &iov, 1, 0), 0);
	CHECK_EQ(stream_send1(sf.be, &iov, 1, 0), 0);
	CHECK_EQ(counter(sf.be, "tx_dropped_disconnected"), 2);

	sf.peer = accept_peer(sf.lfd, 2500);
	CHECK(sf.peer >= 0);
	CHECK_EQ(counter(sf.be, "connects"), 2);
	CHECK_EQ(stream_send1(sf.be, &iov, 1, 0), 0);
	if (sf.peer >= 0) {
		CHECK_EQ(peer_read_record(sf.peer, got, sizeof(got)), 64);
		CHECK(!memcmp(got, frame, 64));
		uint8_t rec[4 + 10] = { 0, 0, 0, 10 };
		CHECK_EQ(send(sf.peer, rec, sizeof(rec), MSG_NOSIGNAL), (long)sizeof(rec));
		pump(500, &sf.fs, 1);
		CHECK_EQ(sf.fs.n, 1);
		CHECK_EQ(sf.fs.len[0], 10);
	}
	CHECK_EQ(counter(sf.be, "tx_dropped_disconnected"), 2);
	stream_teardown(&sf);
}

/* A length of 0 or over 65550 is a framing error: disconnect, reconnect. */
static void test_stream_framing_errors(void)
{
	static const uint32_t bad[] = { 0, 65551, 0xffffffffu };
	struct stream_fixture sf;

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	for (unsigned i = 0; i < 3; i++) {
		/* A good record first: it is delivered before the bad one. */
		uint8_t buf[4 + 20 + 4];
		nf_put32(buf, 20);
		fill_pattern(buf + 4, 20, i);
		nf_put32(buf + 24, bad[i]);
		CHECK_EQ(send(sf.peer, buf, sizeof(buf), MSG_NOSIGNAL), (long)sizeof(buf));
		int64_t end = now_ms() + 1000;
		while (counter(sf.be, "rx_framing_errors") < i + 1 && now_ms() < end)
			event_loop_once(&loop, 10);
		CHECK_EQ(counter(sf.be, "rx_framing_errors"), i + 1);
		CHECK_EQ(sf.fs.n, i + 1);
		/* The backend closed its end. */
		char c;
		CHECK_EQ(recv(sf.peer, &c, 1, 0), 0);
		close(sf.peer);
		sf.peer = accept_peer(sf.lfd, 2500);
		CHECK(sf.peer >= 0);
		if (sf.peer < 0)
			break;
	}
	CHECK_EQ(counter(sf.be, "connects"), 4);
	stream_teardown(&sf);
}


/* --- stream: TX batches ------------------------------------------------------ */

#define BATCH_FRAMES 40
static uint8_t batch_buf[BATCH_FRAMES][1514];

/* Frame @i of a batch: 60 to 1514 bytes in @pieces iovecs. */
static size_t batch_frame(unsigned i, struct iovec *iov, unsigned pieces)
{
	size_t len = 60 + (i * 397) % (1514 - 60 + 1);
	size_t per = len / pieces;

	fill_pattern(batch_buf[i], len, i);
	for (unsigned p = 0; p < pieces; p++)
		iov[p] = (struct iovec){ batch_buf[i] + p * per,
					 p + 1 < pieces ? per : len - p * per };
	return len;
}

/* Read @n records of batch frames @first.. from the peer, in order. */
static unsigned peer_check_batch(int peer, unsigned first, unsigned n)
{
	static uint8_t got[1514];
	unsigned ok = 0;

	for (unsigned i = first; i < first + n; i++) {
		struct iovec iov[1];
		size_t len = batch_frame(i, iov, 1);
		if (peer_read_record(peer, got, sizeof(got)) == (long)len &&
		    has_pattern(got, len, i))
			ok++;
	}
	return ok;
}

/* A drain's frames are kept, not written, until the flush, which writes
 * them all with one sendmsg and gives each back; frames in many iovecs
 * split the batch at IOV_MAX. */
static void test_stream_tx_batch(void)
{
	struct stream_fixture sf;
	struct iovec iov[30];

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	size_t bytes = 0;
	for (unsigned i = 0; i < 32; i++) {
		bytes += batch_frame(i, iov, 2);
		CHECK_EQ(sf.be->ops->send(sf.be, iov, 2, 100 + i), NET_SEND_KEPT);
	}
	CHECK_EQ(sf.fs.done, 0);
	CHECK_EQ(counter(sf.be, "tx_sendmsg_calls"), 0);
	sf.be->ops->flush(sf.be);
	CHECK_EQ(sf.fs.done, 32);
	CHECK_EQ(counter(sf.be, "tx_sendmsg_calls"), 1);
	CHECK_EQ(counter(sf.be, "tx_frames"), 32);
	CHECK_EQ(counter(sf.be, "tx_bytes"), (long long)bytes);
	CHECK_EQ(counter(sf.be, "tx_frames_copied"), 0);
	CHECK_EQ(peer_check_batch(sf.peer, 0, 32), 32);
	/* A flush with nothing kept writes nothing. */
	sf.be->ops->flush(sf.be);
	CHECK_EQ(counter(sf.be, "tx_sendmsg_calls"), 1);

	/* 40 frames of 30 iovecs (31 with the prefix): 33 fit in IOV_MAX. */
	for (unsigned i = 0; i < BATCH_FRAMES; i++) {
		batch_frame(i, iov, 30);
		CHECK_EQ(sf.be->ops->send(sf.be, iov, 30, i), NET_SEND_KEPT);
	}
	CHECK_EQ(sf.fs.done, 32 + 33);
	sf.be->ops->flush(sf.be);
	CHECK_EQ(sf.fs.done, 32 + BATCH_FRAMES);
	CHECK_EQ(counter(sf.be, "tx_sendmsg_calls"), 3);
	CHECK_EQ(peer_check_batch(sf.peer, 0, BATCH_FRAMES), BATCH_FRAMES);
	stream_teardown(&sf);
}

/* A frame in the caller's scratch memory (NET_TOKEN_COPY) is never kept:
 * it joins the batch as a copy, in order, and is not given back. */
static void test_stream_tx_batch_copy_token(void)
{
	struct stream_fixture sf;
	struct iovec iov[1];
	uint8_t scratch[1514];

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	for (unsigned i = 0; i < 2; i++) {
		batch_frame(i, iov, 1);
		CHECK_EQ(sf.be->ops->send(sf.be, iov, 1, i), NET_SEND_KEPT);
	}
	size_t len = batch_frame(2, iov, 1);
	memcpy(scratch, batch_buf[2], len);
	struct iovec sv = { scratch, len };
	CHECK_EQ(sf.be->ops->send(sf.be, &sv, 1, NET_TOKEN_COPY), 0);
	memset(scratch, 0xee, sizeof(scratch));    /* the caller's again */
	batch_frame(3, iov, 1);
	CHECK_EQ(sf.be->ops->send(sf.be, iov, 1, 3), NET_SEND_KEPT);
	CHECK_EQ(sf.fs.done, 0);
	sf.be->ops->flush(sf.be);
	CHECK_EQ(sf.fs.done, 3);    /* the copy has no token to give back */
	CHECK_EQ(counter(sf.be, "tx_sendmsg_calls"), 1);
	CHECK_EQ(counter(sf.be, "tx_frames"), 4);
	CHECK_EQ(peer_check_batch(sf.peer, 0, 4), 4);
	stream_teardown(&sf);
}

/* A peer that does not read: the batch's tail the socket did not take is
 * copied (each frame given back at the flush), later frames wait for
 * room, -EAGAIN once none is left, and every record arrives whole and in
 * order once the peer reads; tx_unblocked follows. */
static void test_stream_tx_batch_partial(void)
{
	enum { FRAME = 60000, MAXSENT = 48 };
	static uint8_t frames[MAXSENT][FRAME], got[FRAME];
	struct stream_fixture sf;
	unsigned kept = 0;
	int r = 0;

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	for (; kept < MAXSENT; kept++) {
		fill_pattern(frames[kept], FRAME, kept);
		struct iovec iov = { frames[kept], FRAME };
		r = sf.be->ops->send(sf.be, &iov, 1, kept);
		if (r != NET_SEND_KEPT)
			break;
	}
	CHECK_EQ(r, -EAGAIN);
	CHECK(kept >= 4);
	sf.be->ops->flush(sf.be);
	CHECK_EQ(sf.fs.done, kept);
	CHECK(counter(sf.be, "tx_frames_copied") >= 1);
	CHECK(counter(sf.be, "tx_sendmsg_calls") < kept);
	CHECK_EQ(counter(sf.be, "tx_frames"), kept);
	CHECK_EQ(counter(sf.be, "tx_blocked"), 1);
	unsigned ok = 0;
	for (unsigned i = 0; i < kept; i++)
		if (peer_read_record(sf.peer, got, sizeof(got)) == FRAME &&
		    has_pattern(got, FRAME, i))
			ok++;
	CHECK_EQ(ok, kept);
	pump(200, NULL, 0);
	CHECK_EQ(sf.fs.unblocked, 1);
	stream_teardown(&sf);
}

/* The peer is gone when the batch is flushed: its frames are dropped,
 * counted and given back. */
static void test_stream_tx_batch_disconnect(void)
{
	struct stream_fixture sf;
	struct iovec iov[1];

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	for (unsigned i = 0; i < 3; i++) {
		batch_frame(i, iov, 1);
		CHECK_EQ(sf.be->ops->send(sf.be, iov, 1, i), NET_SEND_KEPT);
	}
	close(sf.peer);
	sf.peer = -1;
	sf.be->ops->flush(sf.be);
	CHECK_EQ(sf.fs.done, 3);
	CHECK_EQ(counter(sf.be, "tx_dropped_disconnected"), 3);
	CHECK_EQ(counter(sf.be, "tx_frames"), 0);
	CHECK_EQ(counter(sf.be, "disconnects"), 1);
	/* Disconnected: nothing is kept. */
	CHECK_EQ(sf.be->ops->send(sf.be, iov, 1, 9), 0);
	CHECK_EQ(counter(sf.be, "tx_dropped_disconnected"), 4);
	stream_teardown(&sf);
}

/* drop_kept (device reset): the batch is given back unsent; the next one
 * goes out alone. */
static void test_stream_tx_batch_drop_kept(void)
{
	struct stream_fixture sf;
	struct iovec iov[1];

	if (!stream_setup(&sf)) {
		CHECK(0);
		stream_teardown(&sf);
		return;
	}
	for (unsigned i = 0; i < 3; i++) {
		batch_frame(i, iov, 1);
		CHECK_EQ(sf.be->ops->send(sf.be, iov, 1, i), NET_SEND_KEPT);
	}
	CHECK_EQ(sf.be->ops->drop_kept(sf.be), 3);
	CHECK_EQ(sf.fs.done, 3);
	sf.be->ops->flush(sf.be);
	CHECK_EQ(counter(sf.be, "tx_sendmsg_calls"), 0);
	CHECK_EQ(counter(sf.be, "tx_frames"), 0);
	batch_frame(5, iov, 1);
	CHECK_EQ(stream_send1(sf.be, iov, 1, 5), 0);
	CHECK_EQ(sf.fs.done, 4);
	CHECK_EQ(peer_check_batch(sf.peer, 5, 1), 1);
	stream_teardown(&sf);
}

/* --- user: libslirp through a fake sink ------------------------------------ */

static void test_user_dhcp_offer(void)
{
	struct fake_sink fs;
	uint8_t f[1024];
	struct dhcp_reply r;

	fs_init(&fs);
	struct net_backend *be = create("user", &fs);
	CHECK(be != NULL);
	if (!be)
		return;
	size_t len = build_dhcp_discover(f, 0xabcd1234);
	/* Fragmented the way a guest chain may be. */
	struct iovec iov[3] = { { f, 10 }, { f + 10, 300 }, { f + 310, len - 310 } };
	CHECK_EQ(be->ops->send(be, iov, 3, 0), 0);
	pump(200, &fs, 1);
	CHECK(find_dhcp(&fs, &r) >= 0);
	CHECK_EQ(r.type, 2);    /* DHCPOFFER */
	CHECK_EQ(r.yiaddr, nf_ip4("10.0.2.15"));
	CHECK_EQ(r.server, nf_ip4("10.0.2.2"));
	CHECK_EQ(r.router, nf_ip4("10.0.2.2"));
	destroy(be, &fs);

	be = create("user:net=192.168.76.0/24,dhcpstart=192.168.76.100", &fs);
	CHECK(be != NULL);
	if (!be)
		return;
	struct iovec one = { f, len };
	CHECK_EQ(be->ops->send(be, &one, 1, 0), 0);
	pump(200, &fs, 1);
	CHECK(find_dhcp(&fs, &r) >= 0);
	CHECK_EQ(r.type, 2);
	CHECK_EQ(r.yiaddr, nf_ip4("192.168.76.100"));
	CHECK_EQ(r.router, nf_ip4("192.168.76.2"));
	destroy(be, &fs);
}

/* The guest asks for 10.0.2.2's MAC; slirp answers and learns the guest's. */
static bool user_arp(struct net_backend *be, struct fake_sink *fs)
{
	uint8_t f[64];
	size_t len = nf_arp_request(f, guest_mac, nf_ip4("10.0.2.15"), nf_ip4("10.0.2.2"));
	struct iovec iov = { f, len };
	unsigned before = fs->n;

	if (be->ops->send(be, &iov, 1, 0))
		return false;
	pump(200, fs, before + 1);
	for (unsigned i = before; i < fs->n; i++) {
		const uint8_t *a = fs->frame[i] + 14;
		if (fs->len[i] >= 42 && nf_get16(fs->frame[i] + 12) == 0x0806 && nf_get16(a + 6) == 2 &&
		    nf_get32(a + 14) == nf_ip4("10.0.2.2") && !memcmp(a + 18, guest_mac, 6) &&
		    !memcmp(fs->frame[i], guest_mac, 6))
			return true;
	}
	return false;
}

/* Snapshots: "user" keeps libslirp's state (its tables: the guest's MAC
 * learnt from an ARP request) in its NBCK section and a new "user" backend
 * loads it; a libslirp version newer than this one's is refused by name;
 * another kind of backend takes nothing and still loads. */
static void test_user_state(void)
{
	struct fake_sink fs;
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };

	fs_init(&fs);
	struct net_backend *be = create("user", &fs);
	CHECK(be != NULL);
	if (!be)
		return;
	CHECK(user_arp(be, &fs));
	state_writer_init(&w);
	CHECK_EQ(net_backend_state_save(be, &w, &eb), 0);
	destroy(be, &fs);

	be = create("user", &fs);
	CHECK(be != NULL);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(be && net_backend_state_load(be, &r) && state_at_end(&r));
	if (be)
		destroy(be, &fs);

	/* Section: tag, length, name "user" (u32 + 4), has_state; then the version. */
	uint8_t *version = w.buf + 8 + 4 + 4 + 1;
	uint32_t saved = version[0] | (uint32_t)version[1] << 8;
	version[0] = 0xff;
	version[1] = 0xff;
	be = create("user", &fs);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(be && !net_backend_state_load(be, &r));
	CHECK(strstr(eb.msg, "section NBCK: libslirp state version 65535") != NULL);
	if (be)
		destroy(be, &fs);
	version[0] = (uint8_t)saved;
	version[1] = (uint8_t)(saved >> 8);

	be = create("loopback", &fs);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(be && net_backend_state_load(be, &r) && state_at_end(&r));
	if (be)
		destroy(be, &fs);
	state_writer_free(&w);
}

static void test_user_arp(void)
{
	struct fake_sink fs;

	fs_init(&fs);
	struct net_backend *be = create("user", &fs);
	CHECK(be != NULL);
	if (!be)
		return;
	CHECK(user_arp(be, &fs));
	destroy(be, &fs);
}

/* A TCP or UDP socket on 127.0.0.1 with an ephemeral port. */
static int loopback_socket(int type, uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) ||
	    (type == SOCK_STREAM && listen(fd, 4))) {
		perror("loopback_socket");
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static bool fd_readable(int fd, int ms)
{
	int64_t end = now_ms() + ms;

	do {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 0) == 1)
			return true;
		event_loop_once(&loop, 5);
	} while (now_ms() < end);
	return false;
}

/* Index of a TCP segment @sport -> @dport with exactly @flags, or -1. */
static int find_tcp(struct fake_sink *fs, uint16_t sport, uint16_t dport, uint8_t flags)
{
	for (unsigned i = 0; i < fs->n; i++) {
		struct nf_pkt p;
		if (nf_parse(fs->frame[i], fs->len[i], &p) && p.proto == 6 && p.l4len >= 20 &&
		    nf_get16(p.l4) == sport && nf_get16(p.l4 + 2) == dport && (p.l4[13] & 0x3f) == flags)
			return (int)i;
	}
	return -1;
}

/* Guest SYN to 10.0.2.2:port reaches a listener on the host's 127.0.0.1;
 * the SYN-ACK comes back once slirp's connect completes (epoll path). */
static void test_user_tcp_to_host(void)
{
	struct fake_sink fs;
	uint16_t port;
	uint8_t f[128];
	int lfd = loopback_socket(SOCK_STREAM, &port);

	fs_init(&fs);
	struct net_backend *be = create("user", &fs);
	CHECK(be != NULL && lfd >= 0);
	if (!be || lfd < 0)
		goto out;
	CHECK(user_arp(be, &fs));
	size_t len = nf_tcp(f, guest_mac, bcast_mac, nf_ip4("10.0.2.15"), nf_ip4("10.0.2.2"), 40000, port, 1000, 0,
			    NF_TCP_SYN, NULL, 0);
	struct iovec iov = { f, len };
	CHECK_EQ(be->ops->send(be, &iov, 1, 0), 0);
	CHECK(fd_readable(lfd, 2000));
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(c >= 0);
	int64_t end = now_ms() + 2000;
	while (find_tcp(&fs, port, 40000, NF_TCP_SYN | NF_TCP_ACK) < 0 && now_ms() < end)
		event_loop_once(&loop, 5);
	int i = find_tcp(&fs, port, 40000, NF_TCP_SYN | NF_TCP_ACK);
	CHECK(i >= 0);
	if (i >= 0) {
		struct nf_pkt p;
		nf_parse(fs.frame[i], fs.len[i], &p);
		CHECK_EQ(p.src, nf_ip4("10.0.2.2"));
		CHECK_EQ(p.dst, nf_ip4("10.0.2.15"));
		CHECK_EQ(nf_get32(p.l4 + 8), 1001);     /* acks our SYN */
		CHECK_EQ(nf_l4_csum(p.src, p.dst, 6, p.l4, p.l4len), 0);
	}
	if (c >= 0)
		close(c);
out:
	if (lfd >= 0)
		close(lfd);
	destroy(be, &fs);
}

/* A UDP datagram to 10.0.2.2 lands on the host's loopback, and the answer
 * comes back to the guest. */
static void test_user_udp_to_host(void)
{
	struct fake_sink fs;
	uint16_t port;
	uint8_t f[128], buf[64];
	int ufd = loopback_socket(SOCK_DGRAM, &port);

	fs_init(&fs);
	struct net_backend *be = create("user", &fs);
	CHECK(be != NULL && ufd >= 0);
	if (!be || ufd < 0)
		goto out;
	CHECK(user_arp(be, &fs));
	size_t len = nf_udp(f, guest_mac, bcast_mac, nf_ip4("10.0.2.15"), nf_ip4("10.0.2.2"), 5000, port, "ping", 4);
	struct iovec iov = { f, len };
	CHECK_EQ(be->ops->send(be, &iov, 1, 0), 0);
	CHECK(fd_readable(ufd, 2000));
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(ufd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
	CHECK_EQ(n, 4);
	CHECK(n == 4 && !memcmp(buf, "ping", 4));
	CHECK_EQ(sendto(ufd, "pong!", 5, 0, (struct sockaddr *)&from, flen), 5);
	int64_t end = now_ms() + 2000;
	bool got = false;
	while (!got && now_ms() < end) {
		event_loop_once(&loop, 5);
		for (unsigned i = 0; i < fs.n && !got; i++) {
			struct nf_pkt p;
			got = nf_parse(fs.frame[i], fs.len[i], &p) && p.proto == 17 &&
			      p.src == nf_ip4("10.0.2.2") && p.dst == nf_ip4("10.0.2.15") &&
			      nf_get16(p.l4) == port && nf_get16(p.l4 + 2) == 5000 && p.l4len == 13 &&
			      !memcmp(p.l4 + 8, "pong!", 5);
		}
	}
	CHECK(got);
out:
	if (ufd >= 0)
		close(ufd);
	destroy(be, &fs);
}

/* hostfwd: a host connect to 127.0.0.1:P becomes a SYN to the guest. */
static void test_user_hostfwd(void)
{
	struct fake_sink fs;
	uint16_t port;
	char spec[128];
	int tmp = loopback_socket(SOCK_STREAM, &port);

	/* Free the port for slirp (a reuse race here is harmless in a test). */
	if (tmp >= 0)
		close(tmp);
	fs_init(&fs);
	snprintf(spec, sizeof(spec), "user:hostfwd=tcp:127.0.0.1:%u-:8080", port);
	struct net_backend *be = create(spec, &fs);
	CHECK(be != NULL);
	if (!be)
		return;
	CHECK(user_arp(be, &fs));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(c >= 0);
	int r = connect(c, (struct sockaddr *)&a, sizeof(a));
	CHECK(r == 0 || errno == EINPROGRESS);
	int64_t end = now_ms() + 2000;
	int i = -1;
	while (now_ms() < end) {
		event_loop_once(&loop, 5);
		for (unsigned k = 0; k < fs.n && i < 0; k++) {
			struct nf_pkt p;
			if (nf_parse(fs.frame[k], fs.len[k], &p) && p.proto == 6 &&
			    p.dst == nf_ip4("10.0.2.15") && nf_get16(p.l4 + 2) == 8080 &&
			    (p.l4[13] & 0x3f) == NF_TCP_SYN)
				i = (int)k;
		}
		if (i >= 0)
			break;
	}
	CHECK(i >= 0);
	close(c);

	/* A second backend cannot take the same port: a clear error. */
	struct errbuf eb = { 0 };
	struct net_backend *be2 = net_backend_create(spec, &loop, &eb);
	CHECK(be2 == NULL);
	CHECK(strstr(eb.msg, "cannot listen") != NULL);
	if (be2)
		be2->ops->destroy(be2);
	destroy(be, &fs);
}

/* With no connection open, slirp needs no timer: an idle backend does not
 * wake the loop (curtime is refreshed on the next guest frame instead). */
static void test_user_idle_quiet(void)
{
	struct fake_sink fs;
	uint8_t f[1024];
	struct dhcp_reply r;

	fs_init(&fs);
	struct net_backend *be = create("user", &fs);
	CHECK(be != NULL);
	if (!be)
		return;
	pump(20, NULL, 0);
	CHECK_EQ(event_loop_once(&loop, 1200), 0);
	/* And after the quiet spell it still answers at once. */
	size_t len = build_dhcp_discover(f, 9);
	struct iovec iov = { f, len };
	CHECK_EQ(be->ops->send(be, &iov, 1, 0), 0);
	fs_settle();
	CHECK(find_dhcp(&fs, &r) >= 0 && r.type == 2);
	destroy(be, &fs);
}

/* No RX buffers: slirp's answers wait in the hold queue, in order. */
static void test_user_rx_flow_control(void)
{
	struct fake_sink fs;
	uint8_t f[1024];
	struct dhcp_reply r;

	fs_init(&fs);
	struct net_backend *be = create("user", &fs);
	CHECK(be != NULL);
	if (!be)
		return;
	fs.can = false;
	size_t len = build_dhcp_discover(f, 7);
	struct iovec iov = { f, len };
	CHECK_EQ(be->ops->send(be, &iov, 1, 0), 0);
	CHECK_EQ(be->ops->send(be, &iov, 1, 0), 0);
	pump(50, NULL, 0);
	CHECK_EQ(fs.n, 0);
	CHECK_EQ(counter(be, "rx_queued"), 2);
	fs_refill(&fs);
	CHECK_EQ(fs.n, 2);
	CHECK(find_dhcp(&fs, &r) == 0 && r.type == 2);
	CHECK(fs.flushes >= 1);
	CHECK_EQ(counter(be, "rx_dropped_queue_full"), 0);
	destroy(be, &fs);
}

/* --- root: tap and passt in this process's network namespace --------------- */

static bool sh(const char *cmd)
{
	int r = system(cmd);

	if (r != 0)
		fprintf(stderr, "  command failed (%d): %s\n", r, cmd);
	return r == 0;
}

#define VNET_HDR_LEN 12u

/* The header bytes in front of @be's frames. */
static size_t hdr_len(const struct net_backend *be)
{
	return net_backend_has_vnet_hdr(be) ? VNET_HDR_LEN : 0;
}

/* Send @f, split at @split, behind a zero vnet header when @be takes one. */
static int send_plain(struct net_backend *be, const uint8_t *f, size_t len, size_t split)
{
	static const struct virtio_net_hdr_v1 zero;
	struct iovec iov[3] = {
		{ (void *)&zero, VNET_HDR_LEN }, { (void *)f, split }, { (void *)(f + split), len - split },
	};
	unsigned skip = net_backend_has_vnet_hdr(be) ? 0 : 1;

	return be->ops->send(be, iov + skip, 3 - skip, 0);
}

/* Read frames from the tap until one matches @want (ARP reply or ICMP echo
 * reply from 10.9.0.1), with the guest buffer split in two; returns the
 * length recv() gave (the vnet header's included). */
static long tap_wait(struct net_backend *be, uint8_t *buf, size_t cap, bool icmp)
{
	int64_t end = now_ms() + 3000;
	size_t hl = hdr_len(be);

	while (now_ms() < end) {
		struct pollfd p = { .fd = be->rx_fd, .events = POLLIN };
		if (poll(&p, 1, 50) != 1)
			continue;
		struct iovec iov[2] = { { buf, 20 }, { buf + 20, cap - 20 } };
		ssize_t n = be->ops->recv(be, iov, 2);
		struct nf_pkt pk;
		if (n <= (ssize_t)hl)
			continue;
		const uint8_t *f = buf + hl;
		size_t len = (size_t)n - hl;
		if (!icmp && len >= 42 && nf_get16(f + 12) == 0x0806 && nf_get16(f + 20) == 2 &&
		    nf_get32(f + 28) == nf_ip4("10.9.0.1"))
			return n;
		if (icmp && nf_parse(f, len, &pk) && pk.proto == 1 && pk.l4[0] == 0)
			return n;
	}
	return -1;
}

static size_t build_icmp_echo(uint8_t *f, size_t payload)
{
	size_t n = nf_eth(f, guest_mac, bcast_mac, 0x0800);
	uint8_t *ic = f + n + 20;

	memset(ic, 0, 8);
	ic[0] = 8;
	nf_put16(ic + 4, 77);
	nf_put16(ic + 6, 1);
	fill_pattern(ic + 8, payload, 5);
	nf_put16(ic + 2, nf_csum(ic, 8 + payload));
	nf_ipv4(f + n, 1, nf_ip4("10.9.0.2"), nf_ip4("10.9.0.1"), 8 + payload, 0x1234);
	return n + 20 + 8 + payload;
}

/* ARP and ping through @be on the tap @name (10.9.0.1/24 on the host
 * side); a reply too big for the guest's buffer is dropped with -EMSGSIZE,
 * never truncated. Frames carry a zero vnet header when @be has one. */
static void tap_exchange(struct net_backend *be, const char *name)
{
	static uint8_t f[2048], buf[2048];
	char cmd[200];
	size_t hl = hdr_len(be);

	CHECK(be->rx_fd >= 0);
	/* Quiet the link: no IPv6 chatter among the frames we wait for. */
	snprintf(cmd, sizeof(cmd), "sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 2>/dev/null || true",
		 name);
	sh(cmd);
	snprintf(cmd, sizeof(cmd), "ip addr add 10.9.0.1/24 dev %s && ip link set %s up", name,
		 name);
	CHECK(sh(cmd));
	size_t len = nf_arp_request(f, guest_mac, nf_ip4("10.9.0.2"), nf_ip4("10.9.0.1"));
	CHECK_EQ(send_plain(be, f, len, 6), 0);
	CHECK(tap_wait(be, buf, sizeof(buf), false) >= (long)(42 + hl));

	len = build_icmp_echo(f, 1000);
	CHECK_EQ(send_plain(be, f, len, len), 0);
	struct pollfd p = { .fd = be->rx_fd, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 2000), 1);
	struct iovec small = { buf, 100 };
	CHECK_EQ(be->ops->recv(be, &small, 1), -EMSGSIZE);
	CHECK_EQ(counter(be, "rx_truncated"), 1);
	/* The oversized frame is gone; the next echo arrives whole. */
	CHECK_EQ(be->ops->recv(be, &small, 1), 0);
	CHECK_EQ(send_plain(be, f, len, len), 0);
	CHECK_EQ(tap_wait(be, buf, sizeof(buf), true), (long)(len + hl));
	CHECK(buf[hl + 14 + 20] == 0 && !memcmp(buf + hl + 14 + 28, f + 14 + 28, 1000));
}

static void test_tap_exchange(void)
{
	struct net_backend *be = create("tap:kvt0", NULL);

	CHECK(be != NULL);
	if (!be)
		return;
	CHECK(net_backend_has_vnet_hdr(be));
	tap_exchange(be, "kvt0");
	be->ops->destroy(be);
}

/* --- root: the tap's offloads ------------------------------------------------ */

/* The host side of a tap for the offload tests: @be on tap @name, the host
 * at 10.9.@net.1/24, the "guest" 10.9.@net.2 at guest_mac (a permanent
 * neighbour: nobody answers ARP for it), the tap's own MAC in @mac. */
static struct net_backend *tap_host(const char *name, unsigned net, uint8_t mac[6])
{
	char spec[32], cmd[300];
	struct ifreq ifr = { 0 };

	snprintf(spec, sizeof(spec), "tap:%s", name);
	struct net_backend *be = create(spec, NULL);
	if (!be)
		return NULL;
	snprintf(cmd, sizeof(cmd),
		 "sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 2>/dev/null; "
		 "ip addr add 10.9.%u.1/24 dev %s && ip link set %s up && "
		 "ip neigh replace 10.9.%u.2 lladdr 52:54:00:12:34:56 nud permanent dev %s",
		 name, net, name, name, net, name);
	CHECK(sh(cmd));
	CHECK_EQ(ioctl(be->rx_fd, SIOCGIFHWADDR, &ifr), 0);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return be;
}

/* A UDP socket on @ip:@port (non-blocking). */
static int udp_socket(const char *ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, ip, &a.sin_addr);
	CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	return s;
}

/* Datagrams waiting on @s within @ms: their count, the lengths in @lens. */
static unsigned udp_drain(int s, int ms, size_t *lens, unsigned max, uint8_t *last)
{
	static uint8_t buf[65536];
	int64_t end = now_ms() + ms;
	unsigned n = 0;

	while (now_ms() < end) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		if (poll(&p, 1, 20) != 1)
			continue;
		ssize_t r = recv(s, buf, sizeof(buf), 0);
		if (r < 0)
			continue;
		if (n < max)
			lens[n] = (size_t)r;
		if (last)
			memcpy(last, buf, (size_t)r);
		n++;
	}
	return n;
}

/* The IPv4 pseudo-header's sum for a NEEDS_CSUM header, as Linux leaves it
 * in the checksum field (folded, not inverted). */
static uint16_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, size_t len)
{
	uint32_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto +
		       (uint32_t)len;

	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* A UDP frame from the guest (10.9.@net.2:7000) to the host's port 7001
 * with @len payload bytes, its checksum the pseudo-header's partial sum. */
static size_t partial_udp(uint8_t *f, const uint8_t mac[6], unsigned net, size_t len)
{
	static uint8_t payload[4096];
	char src[20], dst[20];

	snprintf(src, sizeof(src), "10.9.%u.2", net);
	snprintf(dst, sizeof(dst), "10.9.%u.1", net);
	fill_pattern(payload, len, 9);
	size_t n = nf_udp(f, guest_mac, mac, nf_ip4(src), nf_ip4(dst), 7000, 7001, payload, len);
	nf_put16(f + 40, pseudo_sum(nf_ip4(src), nf_ip4(dst), 17, 8 + len));
	return n;
}

/* send() with header @h split across iovecs as a guest's chain may be. */
static int send_hdr(struct net_backend *be, const struct virtio_net_hdr_v1 *h, const uint8_t *f,
		    size_t len)
{
	struct iovec iov[4] = {
		{ (void *)h, 5 }, { (uint8_t *)h + 5, VNET_HDR_LEN - 5 },
		{ (void *)f, 20 }, { (void *)(f + 20), len - 20 },
	};

	return be->ops->send(be, iov, 4, 0);
}

/* What this kernel's tun takes, asked directly: USO came in Linux 6.2. */
static bool kernel_has_uso(int tap_fd)
{
	bool ok = ioctl(tap_fd, TUNSETOFFLOAD, 0x01UL | 0x20 | 0x40) == 0;

	CHECK_EQ(ioctl(tap_fd, TUNSETOFFLOAD, 0UL), 0);
	return ok;
}

#define GF(bit) NET_F(VIRTIO_NET_F_##bit)

/* What a tap with a vnet header says it takes: every host offload (USO
 * with the kernel's), the guest's but UFO (tun drops TUN_F_UFO). */
static void test_tap_offloads_probe(void)
{
	uint8_t mac[6];
	struct net_backend *be = tap_host("kvt3", 3, mac);

	CHECK(be != NULL);
	if (!be)
		return;
	bool uso = kernel_has_uso(be->rx_fd);
	uint64_t want = NET_HOST_OFFLOADS | GF(GUEST_CSUM) | GF(GUEST_TSO4) | GF(GUEST_TSO6) |
			GF(GUEST_ECN);
	if (uso)
		want |= GF(GUEST_USO4) | GF(GUEST_USO6);
	else
		want &= ~GF(HOST_USO);
	printf("  tap offloads %#llx (USO %s)\n", (unsigned long long)be->offloads,
	       uso ? "taken" : "not taken: a kernel before 6.2");
	CHECK_EQ(be->offloads, want);
	CHECK(!(be->offloads & GF(GUEST_UFO)));
	be->ops->destroy(be);
}

/* The guest's NEEDS_CSUM header crosses send() in-band: the kernel takes
 * the frame with its partial checksum (the host's UDP socket gets it),
 * where the same frame behind a zero header is dropped as corrupt. */
static void test_tap_tx_csum(void)
{
	static uint8_t f[2048], got[2048];
	uint8_t mac[6];
	size_t lens[4];
	struct net_backend *be = tap_host("kvt4", 4, mac);

	CHECK(be != NULL);
	if (!be)
		return;
	int s = udp_socket("10.9.4.1", 7001);
	size_t len = partial_udp(f, mac, 4, 1000);
	struct virtio_net_hdr_v1 h = { 0 };

	CHECK_EQ(send_hdr(be, &h, f, len), 0);
	CHECK_EQ(udp_drain(s, 300, lens, 4, NULL), 0);
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.csum_start = 34;
	h.csum_offset = 6;
	CHECK_EQ(send_hdr(be, &h, f, len), 0);
	CHECK_EQ(udp_drain(s, 300, lens, 4, got), 1);
	CHECK_EQ(lens[0], 1000);
	CHECK(!memcmp(got, f + 42, 1000));
	CHECK_EQ(counter(be, "tx_errors"), 0);
	close(s);
	be->ops->destroy(be);
}

/* GSO from the guest: a USO frame arrives as gso_size datagrams, a UFO
 * frame as one datagram (the kernel fragments and reassembles it). */
static void test_tap_tx_gso(void)
{
	static uint8_t f[4096], got[4096];
	uint8_t mac[6];
	size_t lens[8];
	struct net_backend *be = tap_host("kvt5", 5, mac);

	CHECK(be != NULL);
	if (!be)
		return;
	int s = udp_socket("10.9.5.1", 7001);
	size_t len = partial_udp(f, mac, 5, 1200);
	struct virtio_net_hdr_v1 h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_UDP,
		.hdr_len = 42, .gso_size = 400, .csum_start = 34, .csum_offset = 6,
	};

	CHECK(be->offloads & GF(HOST_UFO));
	CHECK_EQ(send_hdr(be, &h, f, len), 0);
	CHECK_EQ(udp_drain(s, 300, lens, 8, got), 1);
	CHECK_EQ(lens[0], 1200);
	CHECK(!memcmp(got, f + 42, 1200));
	if (be->offloads & GF(HOST_USO)) {
		h.gso_type = VIRTIO_NET_HDR_GSO_UDP_L4;
		CHECK_EQ(send_hdr(be, &h, f, len), 0);
		CHECK_EQ(udp_drain(s, 300, lens, 8, got), 3);
		CHECK(lens[0] == 400 && lens[1] == 400 && lens[2] == 400);
		CHECK(!memcmp(got, f + 42 + 800, 400));
	} else {
		printf("  SKIP: USO from the guest (this kernel's tun does not take it)\n");
	}
	CHECK_EQ(counter(be, "tx_errors"), 0);
	close(s);
	be->ops->destroy(be);
}

/* Wait for the next UDP frame the host sent to the guest's port 7002:
 * recv()'s length (header included), or -1. The buffer's num_buffers
 * bytes are 0xabab before each read. */
static long tap_wait_udp(struct net_backend *be, uint8_t *buf, size_t cap)
{
	int64_t end = now_ms() + 2000;

	while (now_ms() < end) {
		struct pollfd p = { .fd = be->rx_fd, .events = POLLIN };
		if (poll(&p, 1, 20) != 1)
			continue;
		memset(buf, 0xab, VNET_HDR_LEN);
		struct iovec iov[2] = { { buf, 7 }, { buf + 7, cap - 7 } };
		ssize_t n = be->ops->recv(be, iov, 2);
		const uint8_t *fr = buf + VNET_HDR_LEN;
		if (n >= (ssize_t)(VNET_HDR_LEN + 42) && nf_get16(fr + 12) == 0x0800 &&
		    fr[23] == 17 && nf_get16(fr + 36) == 7002)
			return n;
	}
	return -1;
}

/* The host sends @len bytes (with UDP_SEGMENT @seg when non-zero) to the
 * guest; the frames recv() hands over, their lengths in @lens. */
static unsigned host_udp_to_guest(struct net_backend *be, int s, size_t len, int seg,
				  struct virtio_net_hdr_v1 *last, size_t *lens, unsigned max)
{
	static uint8_t payload[4096], buf[70000];
	unsigned n = 0;
	long r;

	CHECK_EQ(setsockopt(s, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg)), 0);
	fill_pattern(payload, len, 4);
	CHECK_EQ(send(s, payload, len, 0), (long)len);
	while ((r = tap_wait_udp(be, buf, sizeof(buf))) > 0) {
		if (n < max)
			lens[n] = (size_t)r;
		memcpy(last, buf, VNET_HDR_LEN);
		n++;
		struct pollfd p = { .fd = be->rx_fd, .events = POLLIN };
		if (poll(&p, 1, 100) != 1)
			break;
	}
	return n;
}

/* recv() hands over the header the kernel wrote, in front of the frame:
 * none of its offloads before set_offloads; a partial checksum with
 * GUEST_CSUM; one UDP GSO frame with GUEST_USO4|6, three frames with only
 * one of them (tun takes the two together). */
static void test_tap_rx_hdr(void)
{
	uint8_t mac[6];
	size_t lens[8];
	struct virtio_net_hdr_v1 h;
	struct net_backend *be = tap_host("kvt6", 6, mac);

	CHECK(be != NULL);
	if (!be)
		return;
	int s = udp_socket("10.9.6.1", 0);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(7002) };
	inet_pton(AF_INET, "10.9.6.2", &to.sin_addr);
	CHECK_EQ(connect(s, (struct sockaddr *)&to, sizeof(to)), 0);

	CHECK_EQ(host_udp_to_guest(be, s, 1000, 0, &h, lens, 8), 1);
	CHECK_EQ(lens[0], VNET_HDR_LEN + 42 + 1000);
	CHECK(!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && h.gso_type == VIRTIO_NET_HDR_GSO_NONE);
	/* num_buffers: left as it was by older kernels, zeroed by newer ones. */
	CHECK(h.num_buffers == 0xabab || h.num_buffers == 0);
	printf("  num_buffers after the kernel's header: %#x (%s)\n", h.num_buffers,
	       h.num_buffers ? "left as it was" : "zeroed");

	CHECK_EQ(be->ops->set_offloads(be, GF(GUEST_CSUM)), 0);
	CHECK_EQ(host_udp_to_guest(be, s, 1000, 0, &h, lens, 8), 1);
	CHECK_EQ(lens[0], VNET_HDR_LEN + 42 + 1000);
	CHECK(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
	CHECK(h.csum_start == 34 && h.csum_offset == 6 && h.gso_type == VIRTIO_NET_HDR_GSO_NONE);

	if (be->offloads & GF(GUEST_USO4)) {
		CHECK_EQ(be->ops->set_offloads(be, GF(GUEST_CSUM) | GF(GUEST_USO4) | GF(GUEST_USO6)), 0);
		CHECK_EQ(host_udp_to_guest(be, s, 1200, 400, &h, lens, 8), 1);
		CHECK_EQ(lens[0], VNET_HDR_LEN + 42 + 1200);
		CHECK(h.gso_type == VIRTIO_NET_HDR_GSO_UDP_L4 && h.gso_size == 400);
		CHECK(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
		CHECK_EQ(be->ops->set_offloads(be, GF(GUEST_CSUM) | GF(GUEST_USO4)), 0);
		CHECK_EQ(host_udp_to_guest(be, s, 1200, 400, &h, lens, 8), 3);
		CHECK(lens[0] == VNET_HDR_LEN + 42 + 400 && lens[2] == VNET_HDR_LEN + 42 + 400);
		CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	} else {
		printf("  SKIP: UDP GSO to the guest (this kernel's tun does not take USO)\n");
	}
	CHECK_EQ(counter(be, "rx_offload_errors"), 0);
	close(s);
	be->ops->destroy(be);
}

static void test_tap_errors(void)
{
	struct net_backend *be = create("tap:kvt1", NULL);

	CHECK(be != NULL);
	CHECK_ERR("tap:kvt1", "tap kvt1 is busy: another process has it open");
	CHECK_ERR("tap:lo", "not usable as a tap");
	if (be)
		be->ops->destroy(be);
	/* Without CAP_NET_ADMIN. */
	pid_t pid = fork();
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		const char *e = create_error("tap:kvt2");
		if (!strstr(e, "permission denied"))
			fprintf(stderr, "  as nobody: %s\n", e);
		/* Refused at open(/dev/net/tun) or at TUNSETIFF, depending on
		 * the device node's mode: the message says so either way. */
		_exit(strstr(e, "tap kvt2: permission denied") ? 0 : 1);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* Root without CAP_NET_ADMIN: open works, TUNSETIFF does not. */
	pid = fork();
	if (pid == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d))
			_exit(2);
		d[0].effective &= ~(1u << CAP_NET_ADMIN);
		if (syscall(SYS_capset, &h, d))
			_exit(2);
		const char *e = create_error("tap:kvt2");
		if (!strstr(e, "CAP_NET_ADMIN"))
			fprintf(stderr, "  without CAP_NET_ADMIN: %s\n", e);
		_exit(strstr(e, "tap kvt2: permission denied") && strstr(e, "CAP_NET_ADMIN") ? 0 : 1);
	}
	status = -1;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Is the netdev feature ethtool calls @name active on @ifname? -1 when it
 * cannot be read. (ETHTOOL_GSSET_INFO, GSTRINGS, GFEATURES: ethtool -k.) */
static int feature_active(const char *ifname, const char *name)
{
	union {
		struct ethtool_sset_info i;
		uint8_t room[sizeof(struct ethtool_sset_info) + sizeof(uint32_t)];
	} ss = { .i = { .cmd = ETHTOOL_GSSET_INFO, .sset_mask = 1ull << ETH_SS_FEATURES } };
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ss;
	if (s < 0 || ioctl(s, SIOCETHTOOL, &ifr) || !ss.i.sset_mask) {
		if (s >= 0)
			close(s);
		return -1;
	}
	uint32_t n = ss.i.data[0], blocks = (n + 31) / 32;
	struct ethtool_gstrings *gs = calloc(1, sizeof(*gs) + (size_t)n * ETH_GSTRING_LEN);
	struct ethtool_gfeatures *gf = calloc(1, sizeof(*gf) + blocks * sizeof(gf->features[0]));
	*gs = (struct ethtool_gstrings){ .cmd = ETHTOOL_GSTRINGS, .string_set = ETH_SS_FEATURES,
					 .len = n };
	*gf = (struct ethtool_gfeatures){ .cmd = ETHTOOL_GFEATURES, .size = blocks };
	ifr.ifr_data = (void *)gs;
	bool ok = ioctl(s, SIOCETHTOOL, &ifr) == 0;
	ifr.ifr_data = (void *)gf;
	ok = ok && ioctl(s, SIOCETHTOOL, &ifr) == 0;
	for (uint32_t i = 0; ok && i < n; i++)
		if (!strncmp((char *)gs->data + (size_t)i * ETH_GSTRING_LEN, name, ETH_GSTRING_LEN))
			r = !!(gf->features[i / 32].active & (1u << (i % 32)));
	free(gs);
	free(gf);
	close(s);
	return r;
}

/* set_offloads programs TUNSETOFFLOAD with the acked guest offloads, as
 * the tap's netdev features show them (ethtool -k): TSO, ECN and USO only
 * with the checksum, ECN only with TSO, USO only with both of its bits;
 * a refusal (the tap deleted under the descriptor) is counted. */
static void test_tap_set_offloads(void)
{
	static const char *const feat[] = {
		"tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-tcp6-segmentation",
		"tx-tcp-ecn-segmentation", "tx-udp-segmentation",
	};
	static const struct {
		uint64_t acked;
		const char *on;      /* one letter per feat[]: 1 on, 0 off */
	} cases[] = {
		{ 0, "00000" },
		{ GF(GUEST_CSUM), "10000" },
		{ GF(GUEST_CSUM) | GF(GUEST_TSO4), "11000" },
		{ GF(GUEST_CSUM) | GF(GUEST_TSO6) | GF(GUEST_ECN), "10110" },
		{ GF(GUEST_CSUM) | GF(GUEST_ECN), "10000" },
		{ GF(GUEST_TSO4) | GF(GUEST_TSO6) | GF(GUEST_USO4) | GF(GUEST_USO6), "00000" },
		{ GF(GUEST_CSUM) | GF(GUEST_USO6), "10000" },
		{ GF(GUEST_CSUM) | GF(GUEST_USO4) | GF(GUEST_USO6), "10001" },
		{ GF(GUEST_CSUM) | GF(GUEST_UFO) | GF(HOST_TSO4) | NET_F(63), "10000" },
		{ NET_GUEST_OFFLOADS, "11111" },
	};
	uint8_t mac[6];
	struct net_backend *be = tap_host("kvt7", 7, mac);

	CHECK(be != NULL);
	if (!be)
		return;
	bool uso = be->offloads & GF(GUEST_USO4);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		CHECK_EQ(be->ops->set_offloads(be, cases[i].acked), 0);
		for (size_t k = 0; k < ARRAY_SIZE(feat); k++) {
			int want = cases[i].on[k] == '1' && (k != 4 || uso);
			int got = feature_active("kvt7", feat[k]);
			if (got != want)
				fprintf(stderr, "  acked %#llx: %s is %d, wanted %d\n",
					(unsigned long long)cases[i].acked, feat[k], got, want);
			CHECK_EQ(got, want);
		}
	}
	CHECK_EQ(counter(be, "rx_offload_errors"), 0);
	/* The tap deleted under the descriptor: tun refuses with EBADFD. */
	CHECK(sh("ip link del kvt7"));
	CHECK_EQ(be->ops->set_offloads(be, GF(GUEST_CSUM)), -EBADFD);
	CHECK_EQ(counter(be, "rx_offload_errors"), 1);
	be->ops->destroy(be);
}

/* A tap opened here with @flags, as a jailer would: blocking, inherited
 * (no CLOEXEC). The descriptor, or -1. */
static int open_tun(const char *name, short flags, int mode)
{
	struct ifreq ifr = { .ifr_flags = flags };
	int fd = open("/dev/net/tun", mode);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "  TUNSETIFF %s: %s\n", name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* tap-fd:N takes a tap another process opened, with or without a vnet
 * header: non-blocking and close-on-exec from then on, named by its
 * interface (counters, MTU), frames with the header or plain, offloads as
 * tap:NAME's or none; closed with the backend. */
static void tap_fd_case(const char *name, bool vnet)
{
	char spec[32], text[1024];
	short flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
	int fd = open_tun(name, flags, O_RDWR);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	snprintf(spec, sizeof(spec), "tap-fd:%d", fd);
	struct net_backend *be = create(spec, NULL);
	CHECK(be != NULL);
	if (!be) {
		close(fd);
		return;
	}
	CHECK_EQ(be->rx_fd, fd);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(be->host_mtu, 1500);
	CHECK_EQ(net_backend_has_vnet_hdr(be), vnet);
	if (vnet)
		CHECK(be->offloads & GF(GUEST_CSUM) && be->offloads & GF(HOST_TSO4));
	else
		CHECK_EQ(be->offloads, 0);
	FILE *f = fmemopen(text, sizeof(text), "w");
	be->ops->visit_counters(be, COUNTER_SINK_FILE(f));
	fclose(f);
	snprintf(spec, sizeof(spec), "tap %s tx_blocked ", name);
	CHECK(strstr(text, spec) != NULL);
	tap_exchange(be, name);
	be->ops->destroy(be);
	CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
}

static void test_tap_fd(void)
{
	tap_fd_case("kvt8", true);
	tap_fd_case("kvt9", false);
}

/* Descriptors tap-fd refuses, each left open as it was given. */
static void test_tap_fd_errors(void)
{
	char spec[48];
	enum { N = 8 };
	int fd[N] = {
		open("/dev/net/tun", O_RDWR),                              /* no TUNSETIFF */
		open_tun("kvu0", IFF_TUN | IFF_NO_PI, O_RDWR),             /* a tun */
		/* Packet information: tun answers TUNGETIFF with IFF_NOFILTER,
		 * IFF_NO_PI's bit, when no filter is attached. */
		open_tun("kvt10", IFF_TAP | IFF_VNET_HDR, O_RDWR),
		open_tun("kvt11", IFF_TAP | IFF_NO_PI, O_RDONLY),          /* read-only */
		open_tun("kvt12", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE, O_RDWR),
		open_tun("kvt13", IFF_TAP | IFF_NO_PI, O_RDWR),            /* deleted below */
		open_tun("kvt12", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE, O_RDWR),
		open_tun("kvt14", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, O_RDWR),
	};
	static const char *const why[N - 1] = {
		"a /dev/net/tun descriptor attached to no interface (no TUNSETIFF yet",
		"kvu0 is a tun (IFF_TUN: IP packets), not a tap (IFF_TAP: Ethernet frames)",
		"tap kvt10 puts packet information before each frame: open it with IFF_NO_PI",
		"tap kvt11 is not open for reading and writing",
		"a queue of tap kvt12 detached with TUNSETQUEUE: attach it first",
		"attached to no interface (no TUNSETIFF yet, or its interface was deleted)",
		NULL,
	};
	struct ifreq detach = { .ifr_flags = IFF_DETACH_QUEUE };

	for (int i = 0; i < N; i++)
		CHECK(fd[i] >= 0);
	CHECK_EQ(ioctl(fd[4], TUNSETQUEUE, &detach), 0);
	CHECK(sh("ip link del kvt13"));
	for (int i = 0; i < N - 1; i++) {
		if (!why[i])
			continue;
		snprintf(spec, sizeof(spec), "tap-fd:%d", fd[i]);
		CHECK_ERR(spec, why[i]);
		CHECK(fcntl(fd[i], F_GETFD) >= 0);
	}
	/* The packet information probe left no filter behind. */
	struct ifreq ifr = { 0 };
	CHECK_EQ(ioctl(fd[2], TUNGETIFF, &ifr), 0);
	CHECK(ifr.ifr_flags & IFF_NOFILTER);
	/* Two queues of one multi-queue tap are two queue pairs' worth. */
	snprintf(spec, sizeof(spec), "tap-fd:%d,%d", fd[6], fd[4]);
	CHECK_ERR(spec, "2 descriptors given for 1 queue pair");
	snprintf(spec, sizeof(spec), "tap-fd:%d,%d", fd[7], fd[7]);
	CHECK_ERR(spec, "is given twice");
	/* One queue of a multiqueue tap is a tap like any. */
	snprintf(spec, sizeof(spec), "tap-fd:%d", fd[6]);
	struct net_backend *be = create(spec, NULL);
	CHECK(be != NULL && be->offloads == 0);
	if (be)
		be->ops->destroy(be);
	for (int i = 0; i < N; i++)
		if (fd[i] >= 0 && i != 6)
			close(fd[i]);
}

/* A real passt on the stream framing: DHCP DISCOVER in, OFFER out with the
 * address of the namespace's interface. */
static void test_stream_passt(void)
{
	char sock[128], log[128], spec[160];
	struct fake_sink fs;
	uint8_t f[1024];
	struct dhcp_reply r;

	if (!sh("command -v passt >/dev/null")) {
		printf("SKIP: test_stream_passt (passt is not installed)\n");
		return;
	}
	CHECK(sh("ip link add kvp0 type veth peer name kvp1 && "
		 "ip addr add 192.0.2.2/24 dev kvp0 && ip link set kvp0 up && "
		 "ip link set kvp1 up && ip route add default via 192.0.2.1"));
	snprintf(sock, sizeof(sock), "%s/passt.sock", tmpdir);
	snprintf(log, sizeof(log), "%s/passt.log", tmpdir);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* -1: exit when we disconnect; --runas 0: our directory is 0700. */
		execlp("passt", "passt", "-f", "-e", "-4", "-1", "--runas", "0", "-s", sock,
		       (char *)NULL);
		_exit(127);
	}
	struct stat st;
	for (int i = 0; i < 100 && stat(sock, &st); i++)
		usleep(50 * 1000);
	fs_init(&fs);
	snprintf(spec, sizeof(spec), "stream:%s", sock);
	struct net_backend *be = create(spec, &fs);
	CHECK(be != NULL);
	if (be) {
		size_t len = build_dhcp_discover(f, 0x5a5a0001);
		struct iovec iov = { f, len };
		CHECK_EQ(stream_send1(be, &iov, 1, 0), 0);
		int64_t end = now_ms() + 3000;
		while (find_dhcp(&fs, &r) < 0 && now_ms() < end)
			event_loop_once(&loop, 10);
		CHECK(find_dhcp(&fs, &r) >= 0);
		CHECK_EQ(r.type, 2);
		CHECK_EQ(r.yiaddr, nf_ip4("192.0.2.2"));
		CHECK_EQ(r.router, nf_ip4("192.0.2.1"));
		destroy(be, &fs);
	}
	if (check_case_failed) {
		char cmd[200];
		snprintf(cmd, sizeof(cmd), "sed 's/^/    passt: /' %s >&2", log);
		sh(cmd);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	sh("ip link del kvp0");
}

/* --- several queue pairs (net_backend_create_queues) --------------------------- */

/* The backends of @spec for @n queue pairs, all on the test's loop. */
static int create_queues(const char *spec, unsigned n, struct net_backend **be,
			 struct errbuf *eb)
{
	struct event_loop *loops[NET_BACKEND_MAX_QUEUES + 1];

	for (unsigned i = 0; i < ARRAY_SIZE(loops); i++)
		loops[i] = &loop;
	return net_backend_create_queues(spec, loops, n, be, eb);
}

static void destroy_queues(struct net_backend **be, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (be[i])
			be[i]->ops->destroy(be[i]);
}

/* The error net_backend_create_queues gives for @spec and @n queue pairs
 * ("" when it worked): a refusal leaves no backend and nothing open. */
static const char *queues_error(const char *spec, unsigned n)
{
	static struct errbuf eb;
	struct net_backend *be[NET_BACKEND_MAX_QUEUES + 1];
	int fds = vfe_count_fds();

	memset(be, 0xa5, sizeof(be));
	eb.msg[0] = '\0';
	int r = create_queues(spec, n, be, &eb);
	if (r == 0) {
		destroy_queues(be, n);
		return "";
	}
	CHECK(r < 0);
	for (unsigned i = 0; i < MIN(n, NET_BACKEND_MAX_QUEUES); i++)
		CHECK(be[i] == NULL);
	CHECK_EQ(vfe_count_fds(), fds);
	return eb.msg;
}

#define CHECK_QERR(spec, n, text) do { \
	const char *_e = queues_error(spec, n); \
	if (!strstr(_e, text)) \
		fprintf(stderr, "  \"%s\" x%u gave \"%s\", wanted \"%s\"\n", spec, \
			(unsigned)(n), _e, text); \
	CHECK(strstr(_e, text) != NULL); \
} while (0)

/* Backends with one queue refuse more pairs before opening anything;
 * counts out of range and tap-fd lists of another length are refused. */
static void test_queues_refused(void)
{
	CHECK_QERR("user", 2, "network backend user has one queue: it cannot serve 2 queue pairs");
	CHECK_QERR("user:restrict=on", 16, "network backend user has one queue");
	CHECK_QERR("stream:/nonexistent/kvmini.sock", 2,
		   "network backend stream has one queue: it cannot serve 2 queue pairs");
	CHECK_QERR("loopback", 0, "network backend loopback: 0 queue pairs: between 1 and 16");
	CHECK_QERR("loopback", 17, "17 queue pairs: between 1 and 16");
	CHECK_QERR("tap:kvq0", 17, "between 1 and 16");
	CHECK_QERR("tap-fd:3", 2, "tap-fd:3: 1 descriptor given for 2 queue pairs");
	CHECK_QERR("tap-fd:3,4,5", 2, "3 descriptors given for 2 queue pairs");
	CHECK_QERR("bogus", 2, "unknown network backend \"bogus\"");
	CHECK_QERR("loopback:x", 2, "takes no argument");
	/* With one pair the one-queue kinds work, or fail as ever. */
	CHECK_QERR("stream:/nonexistent/kvmini.sock", 1, "cannot connect");
	CHECK_EQ(*queues_error("user", 1), '\0');
}

/* Two loopbacks: a frame sent on queue i comes back on queue i only. */
static void test_loopback_queues(void)
{
	struct net_backend *be[2] = { NULL, NULL };
	struct fake_sink fs[2];
	struct errbuf eb = { 0 };
	uint8_t f[2][64];

	CHECK_EQ(create_queues("loopback", 2, be, &eb), 0);
	if (!be[0] || !be[1])
		return;
	CHECK(be[0] != be[1]);
	for (unsigned i = 0; i < 2; i++) {
		fs_init(&fs[i]);
		fs[i].be = be[i];
		net_backend_attach(be[i], &fs_events, &fs[i]);
		CHECK(be[i]->ops->set_queue_enabled == NULL);
		size_t len = nf_eth(f[i], guest_mac, bcast_mac, 0x88b5);
		fill_pattern(f[i] + len, sizeof(f[i]) - len, i);
	}
	/* Queue 1 first: what comes back does not follow the order of sends. */
	CHECK_EQ(send_plain(be[1], f[1], sizeof(f[1]), 20), NET_SEND_KEPT);
	CHECK_EQ(send_plain(be[0], f[0], sizeof(f[0]), 20), NET_SEND_KEPT);
	CHECK_EQ(send_plain(be[1], f[1], sizeof(f[1]), 30), NET_SEND_KEPT);
	fs_settle();
	CHECK_EQ(fs[0].n, 1);
	CHECK_EQ(fs[1].n, 2);
	for (unsigned i = 0; i < 2; i++)
		for (unsigned k = 0; k < fs[i].n; k++)
			CHECK(fs[i].len[k] == VNET_HDR_LEN + sizeof(f[i]) &&
			      !memcmp(fs[i].frame[k] + VNET_HDR_LEN, f[i], sizeof(f[i])));
	CHECK_EQ(fs[0].done, 1);
	CHECK_EQ(fs[1].done, 2);
	for (unsigned i = 0; i < 2; i++)
		destroy(be[i], &fs[i]);
}

/* --- root: multi-queue taps --------------------------------------------------- */

/* An ethertype nothing else on the link sends (IEEE 802 local experimental). */
#define MQ_ETHERTYPE 0x88b5

static int if_index(const char *name)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (s >= 0 && ioctl(s, SIOCGIFINDEX, &ifr) == 0)
		r = ifr.ifr_ifindex;
	if (s >= 0)
		close(s);
	return r;
}

/* The host's side of tap @ifname: a packet socket that sends there and
 * receives the frames of ethertype @proto the tap hands the host (0: none). */
static int packet_socket(const char *ifname, uint16_t proto)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(proto),
				 .sll_ifindex = if_index(ifname) };
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(proto));

	CHECK(s >= 0 && a.sll_ifindex > 0);
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a))) {
		perror("  bind packet socket");
		close(s);
		s = -1;
	}
	return s;
}

/* Send an MQ_ETHERTYPE frame carrying @tag on @be (the guest's side). */
static int send_tagged(struct net_backend *be, uint8_t tag)
{
	uint8_t f[60] = { 0 };
	size_t n = nf_eth(f, guest_mac, bcast_mac, MQ_ETHERTYPE);

	f[n] = tag;
	return send_plain(be, f, sizeof(f), n);
}

/* The tags (a bit each) of the MQ_ETHERTYPE frames the host sees on @ps
 * within @ms, or as soon as all of @want came. */
static unsigned host_tags(int ps, unsigned want, int ms)
{
	int64_t end = now_ms() + ms;
	unsigned got = 0;
	uint8_t f[2048];

	while (got != want && now_ms() < end) {
		struct pollfd p = { .fd = ps, .events = POLLIN };
		if (poll(&p, 1, 20) != 1)
			continue;
		ssize_t n = recv(ps, f, sizeof(f), 0);
		if (n > 14 && nf_get16(f + 12) == MQ_ETHERTYPE && f[14] < 32)
			got |= 1u << f[14];
	}
	return got;
}

/* The host sends @n UDP frames to the guest (10.9.@net.2, guest_mac) from
 * the tap's MAC @mac, each its own flow (source ports @port0 on): tun
 * spreads flows over the attached queues by their hash. */
static void host_flows(int ps, const uint8_t mac[6], unsigned net, unsigned n, uint16_t port0)
{
	char src[20], dst[20];
	uint8_t f[64];

	snprintf(src, sizeof(src), "10.9.%u.1", net);
	snprintf(dst, sizeof(dst), "10.9.%u.2", net);
	for (unsigned i = 0; i < n; i++) {
		size_t len = nf_udp(f, mac, guest_mac, nf_ip4(src), nf_ip4(dst),
				    (uint16_t)(port0 + i), 7101, "flow", 4);
		CHECK_EQ(send(ps, f, len, 0), (ssize_t)len);
	}
}

/* Is @f (after @hl header bytes) one of host_flows' frames? */
static bool is_host_flow(const uint8_t *f, size_t len)
{
	struct nf_pkt pk;

	return nf_parse(f, len, &pk) && pk.proto == 17 && pk.l4len >= 8 &&
	       nf_get16(pk.l4 + 2) == 7101;
}

/* Read host_flows' frames from the @nq queues @be until @n came or 3 s
 * passed (and 100 ms more for strays): how many came on each, in @got. */
static void queue_flows(struct net_backend **be, unsigned nq, unsigned n, unsigned *got)
{
	static uint8_t buf[2048];
	int64_t end = now_ms() + 3000, quiet = 0;
	unsigned total = 0;

	memset(got, 0, nq * sizeof(*got));
	while (now_ms() < end && (total < n || now_ms() < quiet)) {
		usleep(1000);
		for (unsigned q = 0; q < nq; q++) {
			struct iovec iov = { buf, sizeof(buf) };
			ssize_t len;
			while ((len = be[q]->ops->recv(be[q], &iov, 1)) > 0) {
				size_t hl = hdr_len(be[q]);
				if ((size_t)len > hl && is_host_flow(buf + hl, (size_t)len - hl))
					got[q]++, total++;
			}
		}
		if (total >= n && !quiet)
			quiet = now_ms() + 100;
	}
}

/* tap:NAME with 2 queue pairs: two queues of one multi-queue tap, set up
 * alike; each sends to the host; set_offloads on each is the tap's. */
static void test_tap_mq_tx(void)
{
	struct net_backend *be[2] = { NULL, NULL };
	struct errbuf eb = { 0 };
	struct ifreq ifr = { 0 };

	CHECK_EQ(create_queues("tap:kvm0", 2, be, &eb), 0);
	if (!be[0] || !be[1]) {
		fprintf(stderr, "  %s\n", eb.msg);
		return;
	}
	CHECK(be[0]->rx_fd >= 0 && be[1]->rx_fd >= 0 && be[0]->rx_fd != be[1]->rx_fd);
	CHECK_EQ(ioctl(be[1]->rx_fd, TUNGETIFF, &ifr), 0);
	CHECK(!strcmp(ifr.ifr_name, "kvm0"));
	CHECK((ifr.ifr_flags & IFF_MULTI_QUEUE) && (ifr.ifr_flags & IFF_VNET_HDR));
	CHECK(be[0]->offloads & GF(GUEST_CSUM) && be[0]->offloads & GF(HOST_TSO4));
	CHECK_EQ(be[1]->offloads, be[0]->offloads);
	CHECK_EQ(be[1]->host_mtu, 1500);
	CHECK(be[0]->ops->set_queue_enabled && be[1]->ops->set_queue_enabled);
	CHECK(sh("sysctl -qw net.ipv6.conf.kvm0.disable_ipv6=1; ip link set kvm0 up"));
	int ps = packet_socket("kvm0", MQ_ETHERTYPE);
	CHECK_EQ(send_tagged(be[1], 1), 0);
	CHECK_EQ(send_tagged(be[0], 0), 0);
	CHECK_EQ(host_tags(ps, 3, 3000), 3);
	/* The guest's offloads, asked on each queue: the tap takes them once
	 * and the second asking changes nothing. */
	uint64_t acked = be[0]->offloads & NET_GUEST_OFFLOADS;
	CHECK_EQ(be[0]->ops->set_offloads(be[0], acked), 0);
	CHECK_EQ(be[1]->ops->set_offloads(be[1], acked), 0);
	CHECK_EQ(feature_active("kvm0", "tx-tcp-segmentation"), 1);
	for (unsigned q = 0; q < 2; q++)
		CHECK_EQ(counter(be[q], "rx_offload_errors"), 0);
	CHECK_EQ(send_tagged(be[1], 2), 0);
	CHECK_EQ(host_tags(ps, 4, 3000), 4);
	close(ps);
	destroy_queues(be, 2);
	/* Not persistent: the tap went with its last queue. */
	CHECK_EQ(if_index("kvm0"), -1);
}

/* The host's frames arrive on the attached queues, all on queue 0 once
 * queue 1 is detached (set_queue_enabled false), on both again after. */
static void test_tap_mq_steering(void)
{
	struct net_backend *be[2] = { NULL, NULL };
	struct errbuf eb = { 0 };
	struct ifreq ifr = { 0 };
	unsigned got[2];

	CHECK_EQ(create_queues("tap:kvm1", 2, be, &eb), 0);
	if (!be[0] || !be[1]) {
		fprintf(stderr, "  %s\n", eb.msg);
		return;
	}
	CHECK(sh("sysctl -qw net.ipv6.conf.kvm1.disable_ipv6=1; "
		 "ip addr add 10.9.31.1/24 dev kvm1 && ip link set kvm1 up"));
	CHECK_EQ(ioctl(be[0]->rx_fd, SIOCGIFHWADDR, &ifr), 0);
	const uint8_t *mac = (const uint8_t *)ifr.ifr_hwaddr.sa_data;
	int ps = packet_socket("kvm1", 0);
	/* 64 flows: all on one queue by chance is 1 in 2^63. */
	host_flows(ps, mac, 31, 64, 7200);
	queue_flows(be, 2, 64, got);
	CHECK_EQ(got[0] + got[1], 64);
	CHECK(got[0] > 0 && got[1] > 0);
	printf("  64 flows on 2 queues: %u and %u\n", got[0], got[1]);

	CHECK_EQ(be[1]->ops->set_queue_enabled(be[1], false), 0);
	CHECK_EQ(be[1]->ops->set_queue_enabled(be[1], false), 0);    /* no-op */
	CHECK_EQ(ioctl(be[1]->rx_fd, TUNGETIFF, &ifr), 0);
	CHECK(ifr.ifr_flags & IFF_DETACH_QUEUE);
	host_flows(ps, mac, 31, 64, 7300);
	queue_flows(be, 2, 64, got);
	CHECK_EQ(got[0], 64);
	CHECK_EQ(got[1], 0);
	/* A detached queue is quiet (the device may leave it watched), still
	 * sends, and still takes the tap's offloads as every queue does. */
	struct pollfd p = { .fd = be[1]->rx_fd, .events = POLLIN };
	CHECK_EQ(poll(&p, 1, 0), 0);
	CHECK_EQ(be[1]->ops->set_offloads(be[1], 0), 0);
	int ts = packet_socket("kvm1", MQ_ETHERTYPE);
	CHECK_EQ(send_tagged(be[1], 1), 0);
	CHECK_EQ(host_tags(ts, 2, 3000), 2);
	close(ts);

	CHECK_EQ(be[1]->ops->set_queue_enabled(be[1], true), 0);
	CHECK_EQ(be[1]->ops->set_queue_enabled(be[1], true), 0);     /* no-op */
	host_flows(ps, mac, 31, 64, 7400);
	queue_flows(be, 2, 64, got);
	CHECK_EQ(got[0] + got[1], 64);
	CHECK(got[0] > 0 && got[1] > 0);
	CHECK_EQ(counter(be[1], "rx_errors"), 0);
	close(ps);
	destroy_queues(be, 2);
}

/* tap:NAME's refusals and spellings with several queues: a single-queue
 * tap of that name, a name pattern, one queue as before. */
static void test_tap_mq_open(void)
{
	struct net_backend *be[3] = { NULL, NULL, NULL };
	struct errbuf eb = { 0 };
	struct ifreq ifr = { 0 };

	/* One queue: no IFF_MULTI_QUEUE, no steering to change. */
	CHECK_EQ(create_queues("tap:kvm5", 1, be, &eb), 0);
	if (be[0]) {
		CHECK_EQ(ioctl(be[0]->rx_fd, TUNGETIFF, &ifr), 0);
		CHECK(!(ifr.ifr_flags & IFF_MULTI_QUEUE));
		CHECK(be[0]->ops->set_queue_enabled == NULL);
		CHECK_QERR("tap:kvm5", 2, "tap kvm5: not usable as a multi-queue tap");
		be[0]->ops->destroy(be[0]);
	}
	/* A pattern: the first queue makes the tap, the others join it. */
	CHECK_EQ(create_queues("tap:kvq%d", 3, be, &eb), 0);
	if (be[0] && be[1] && be[2]) {
		char name[3][IFNAMSIZ];
		for (unsigned q = 0; q < 3; q++) {
			memset(&ifr, 0, sizeof(ifr));
			CHECK_EQ(ioctl(be[q]->rx_fd, TUNGETIFF, &ifr), 0);
			memcpy(name[q], ifr.ifr_name, IFNAMSIZ);
		}
		CHECK(!strncmp(name[0], "kvq", 3) && !strcmp(name[0], name[1]) &&
		      !strcmp(name[0], name[2]));
		/* tun takes a multi-queue tap's queues only with IFF_MULTI_QUEUE. */
		char spec[32];
		snprintf(spec, sizeof(spec), "tap:%s", name[0]);
		CHECK_QERR(spec, 1, "or is a multi-queue tap, which takes more than one queue pair");
		destroy_queues(be, 3);
	}
	CHECK_QERR("tap:kvm6", 0, "between 1 and 16");
	CHECK_EQ(if_index("kvm6"), -1);
}

/* tap-fd with one descriptor per queue pair: two queues of one
 * multi-queue tap work; another count, a single-queue tap's descriptor or
 * another tap's queue is refused, every descriptor left as it was given. */
static void test_tap_fd_mq(void)
{
	const short mq = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
	int a = open_tun("kvm2", mq, O_RDWR), b = open_tun("kvm2", mq, O_RDWR);
	int c = open_tun("kvm3", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, O_RDWR);
	int d = open_tun("kvm4", mq, O_RDWR);
	struct net_backend *be[2] = { NULL, NULL };
	struct errbuf eb = { 0 };
	char spec[64], why[128];

	CHECK(a >= 0 && b >= 0 && c >= 0 && d >= 0);
	snprintf(spec, sizeof(spec), "tap-fd:%d,%d", a, b);
	CHECK_QERR(spec, 1, "2 descriptors given for 1 queue pair");
	CHECK_QERR(spec, 3, "2 descriptors given for 3 queue pairs");
	snprintf(spec, sizeof(spec), "tap-fd:%d", a);
	CHECK_QERR(spec, 2, "1 descriptor given for 2 queue pairs");
	snprintf(spec, sizeof(spec), "tap-fd:%d,%d", a, c);
	snprintf(why, sizeof(why), "tap-fd:%d: tap kvm3 has one queue (opened without "
		 "IFF_MULTI_QUEUE)", c);
	CHECK_QERR(spec, 2, why);
	snprintf(spec, sizeof(spec), "tap-fd:%d,%d", a, d);
	CHECK_QERR(spec, 2, "are queues of different taps (kvm2, kvm4)");
	CHECK(!(fcntl(a, F_GETFL) & O_NONBLOCK) && !(fcntl(a, F_GETFD) & FD_CLOEXEC));

	snprintf(spec, sizeof(spec), "tap-fd:%d,%d", a, b);
	CHECK_EQ(create_queues(spec, 2, be, &eb), 0);
	if (be[0] && be[1]) {
		CHECK_EQ(be[0]->rx_fd, a);
		CHECK_EQ(be[1]->rx_fd, b);
		CHECK(be[0]->offloads != 0 && be[1]->offloads == be[0]->offloads);
		CHECK(be[1]->ops->set_queue_enabled != NULL);
		CHECK(sh("sysctl -qw net.ipv6.conf.kvm2.disable_ipv6=1; ip link set kvm2 up"));
		int ps = packet_socket("kvm2", MQ_ETHERTYPE);
		CHECK_EQ(send_tagged(be[0], 0), 0);
		CHECK_EQ(send_tagged(be[1], 1), 0);
		CHECK_EQ(host_tags(ps, 3, 3000), 3);
		close(ps);
		struct ifreq ifr = { 0 };
		CHECK_EQ(be[1]->ops->set_queue_enabled(be[1], false), 0);
		CHECK_EQ(ioctl(b, TUNGETIFF, &ifr), 0);
		CHECK(ifr.ifr_flags & IFF_DETACH_QUEUE);
		destroy_queues(be, 2);
		CHECK(fcntl(a, F_GETFD) < 0 && fcntl(b, F_GETFD) < 0);
	} else {
		fprintf(stderr, "  %s\n", eb.msg);
		close(a);
		close(b);
	}
	close(c);
	close(d);
}

/* Descriptors that fill the table (fd_fill) until fd_unfill. */
static int fillers[256];
static unsigned n_fillers;
static struct rlimit old_nofile;

/* Leave exactly @free descriptor slots: a limit of 256, the rest filled. */
static void fd_fill(unsigned free)
{
	struct rlimit lim;
	int fd;

	getrlimit(RLIMIT_NOFILE, &old_nofile);
	lim = (struct rlimit){ ARRAY_SIZE(fillers), old_nofile.rlim_max };
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
	n_fillers = 0;
	while (n_fillers < ARRAY_SIZE(fillers) && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		fillers[n_fillers++] = fd;
	CHECK(n_fillers >= free && n_fillers < ARRAY_SIZE(fillers));
	while (free-- && n_fillers)
		close(fillers[--n_fillers]);
}

static void fd_unfill(void)
{
	while (n_fillers)
		close(fillers[--n_fillers]);
	setrlimit(RLIMIT_NOFILE, &old_nofile);
}

/* A queue that fails after others opened (here: no descriptor left for
 * the second queue's dup) takes every queue opened before it down: tap:NAME
 * closes what it opened (the tap goes with it), tap-fd gives every
 * descriptor back open. */
static void test_queues_midway_failure(void)
{
	const short mq = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
	char spec[64];

	/* Queue 0's open and dup, queue 1's open, and its dup fails. */
	fd_fill(3);
	CHECK_QERR("tap:kvm7", 2, "tap kvm7: dup: Too many open files");
	fd_unfill();
	CHECK_EQ(if_index("kvm7"), -1);

	int a = open_tun("kvm8", mq, O_RDWR), b = open_tun("kvm8", mq, O_RDWR);
	CHECK(a >= 0 && b >= 0);
	snprintf(spec, sizeof(spec), "tap-fd:%d,%d", a, b);
	/* Queue 0's dup, and queue 1's fails. */
	fd_fill(1);
	CHECK_QERR(spec, 2, "dup: Too many open files");
	fd_unfill();
	CHECK(fcntl(a, F_GETFD) >= 0 && fcntl(b, F_GETFD) >= 0);
	/* Given back whole: the list works as it is. */
	struct net_backend *be[2] = { NULL, NULL };
	struct errbuf eb = { 0 };
	CHECK_EQ(create_queues(spec, 2, be, &eb), 0);
	destroy_queues(be, 2);
	CHECK(fcntl(a, F_GETFD) < 0 && fcntl(b, F_GETFD) < 0);
}

/* --- main ------------------------------------------------------------------- */

/* As root: a network namespace of our own, gone when the process ends. */
static bool enter_netns(void)
{
	if (geteuid() != 0)
		return false;
	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return false;
	}
	return sh("ip link set lo up");
}

static void cleanup(void)
{
	char cmd[100];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_threshold = LOG_WARN;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvmini-netbe.XXXXXX");
	if (!mkdtemp(tmpdir) || event_loop_init(&loop)) {
		perror("setup");
		return 1;
	}
	atexit(cleanup);
	snprintf(stream_path, sizeof(stream_path), "%s/peer.sock", tmpdir);
	have_netns = enter_netns();

	RUN_TEST(test_spec_errors);
	RUN_TEST(test_tap_fd_spec_errors);
	RUN_TEST(test_spec_kinds);
	RUN_TEST(test_user_opts_defaults);
	RUN_TEST(test_user_opts_values);
	RUN_TEST(test_user_opts_hostfwd);
	RUN_TEST(test_user_opts_errors);
	RUN_TEST(test_stream_rx_reassembly);
	RUN_TEST(test_stream_tx_framing);
	RUN_TEST(test_stream_tx_backpressure);
	RUN_TEST(test_stream_blocked_peer_hangup);
	RUN_TEST(test_stream_rx_flow_control);
	RUN_TEST(test_stream_peer_disconnect);
	RUN_TEST(test_stream_framing_errors);
	RUN_TEST(test_stream_tx_batch);
	RUN_TEST(test_stream_tx_batch_copy_token);
	RUN_TEST(test_stream_tx_batch_partial);
	RUN_TEST(test_stream_tx_batch_disconnect);
	RUN_TEST(test_stream_tx_batch_drop_kept);
	RUN_TEST(test_user_dhcp_offer);
	RUN_TEST(test_user_arp);
	RUN_TEST(test_user_tcp_to_host);
	RUN_TEST(test_user_udp_to_host);
	RUN_TEST(test_user_hostfwd);
	RUN_TEST(test_user_rx_flow_control);
	RUN_TEST(test_user_idle_quiet);
	RUN_TEST(test_user_state);
	RUN_TEST(test_queues_refused);
	RUN_TEST(test_loopback_queues);
	if (have_netns) {
		RUN_TEST(test_tap_exchange);
		RUN_TEST(test_tap_errors);
		RUN_TEST(test_tap_offloads_probe);
		RUN_TEST(test_tap_tx_csum);
		RUN_TEST(test_tap_tx_gso);
		RUN_TEST(test_tap_rx_hdr);
		RUN_TEST(test_tap_set_offloads);
		RUN_TEST(test_tap_fd);
		RUN_TEST(test_tap_fd_errors);
		RUN_TEST(test_tap_mq_tx);
		RUN_TEST(test_tap_mq_steering);
		RUN_TEST(test_tap_mq_open);
		RUN_TEST(test_tap_fd_mq);
		RUN_TEST(test_queues_midway_failure);
		RUN_TEST(test_stream_passt);
	} else {
		printf("SKIP: test_tap_exchange, test_tap_errors, test_tap_offloads_probe, "
		       "test_tap_tx_csum, test_tap_tx_gso, test_tap_rx_hdr, test_tap_set_offloads, "
		       "test_tap_fd, test_tap_fd_errors, test_tap_mq_tx, test_tap_mq_steering, "
		       "test_tap_mq_open, test_tap_fd_mq, test_queues_midway_failure, test_stream_passt "
		       "(need root for a private network namespace)\n");
	}
	event_loop_destroy(&loop);
	return CHECK_DONE();
}
