/*
 * virtio-vsock against the driver simulator playing the guest, with real
 * unix sockets on the host side: guest-initiated connections to a listener
 * at P_port and host-initiated ones through "CONNECT port\n" on P, data
 * byte-exact both ways, the guest's credit never exceeded and its updates
 * releasing more, the device's credit updates, refusals (no listener, the
 * guest's RST, a bad command line), malformed packets dropped or answered
 * and counted, SHUTDOWN both ways, and the connection cap. Snapshot state
 * (virtio_vsock_state.c): saved with a connection open, loaded into a
 * fresh device on another socket path: no connection, the same CID and
 * ports, TRANSPORT_RESET in the guest's event buffer at resume, nothing
 * on the receive queue until the guest gives an event buffer back; a
 * state of another CID or cut short refused, the fresh device untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "check.h"
#include "core/state_io.h"
#include "virtio/device_state.h"
#include "count_transport.h"
#include "core/compiler.h"
#include "core/errbuf.h"
#include "vdriver.h"
#include "vsock/virtio_vsock.h"

#define GUEST_CID 42u
#define RXBUF 4096u
#define HOST_PORT0 VSOCK_LOCAL_PORT_FIRST

struct rig {
	struct event_loop loop;
	struct vd_mem mem;
	struct vd_queue q[VSOCK_NUM_QUEUES];
	struct virtio_vsock vs;
	struct count_transport tr;
	char path[96];
	uint64_t pool, pool_off;
	uint64_t rx_gpa[256];           /* each receive head's buffer */
};

#define FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC))

static void rig_up(struct rig *r, unsigned max_conns)
{
	struct vd_queue_opts qo = { .size = 256, .indirect_max = 8 };
	struct errbuf eb = { 0 };

	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "/tmp/kvmini-test-vsock-%d.sock", getpid());
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, 0x100000, 16 << 20, 0), 0);
	for (unsigned i = 0; i < VSOCK_NUM_QUEUES; i++)
		CHECK_EQ(vd_queue_init(&r->q[i], &r->mem, &qo), 0);
	struct virtio_vsock_opts o = { .guest_cid = GUEST_CID, .uds_path = r->path,
				       .listen_fd = -1, .max_conns = max_conns };
	CHECK_EQ(virtio_vsock_init(&r->vs, &r->loop, &o, &eb), 0);
	CHECK_EQ(r->vs.vdev.ops->device_id, VIRTIO_ID_VSOCK);
	count_transport_attach(&r->tr, &r->vs.vdev);
	r->vs.vdev.mem = &r->mem.gm;
	CHECK_EQ(virtio_device_set_features(&r->vs.vdev, FEATURES), 0);
	for (unsigned i = 0; i < VSOCK_NUM_QUEUES; i++)
		vd_queue_to_vq(&r->q[i], &r->vs.vqs[i], true);
	CHECK_EQ(virtio_device_activate(&r->vs.vdev), 0);
	r->pool = vd_alloc(&r->mem, 12 << 20, 4096);
	CHECK(r->pool != VD_NO_GPA);
}

static void rig_down(struct rig *r)
{
	virtio_device_reset(&r->vs.vdev);
	virtio_vsock_destroy(&r->vs);
	struct stat st;
	CHECK(stat(r->path, &st) < 0);            /* the socket file went with the device */
	for (unsigned i = 0; i < VSOCK_NUM_QUEUES; i++)
		vd_queue_destroy(&r->q[i]);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

/* Guest memory for one buffer, from a pool reused round-robin. */
static uint64_t pool_get(struct rig *r, uint64_t len)
{
	len = (len + 63) & ~63ull;
	if (r->pool_off + len > (12 << 20))
		r->pool_off = 0;
	uint64_t gpa = r->pool + r->pool_off;
	r->pool_off += len;
	return gpa;
}

/* Let the device's sockets and deferred work run. */
static void settle(struct rig *r)
{
	for (int i = 0; i < 32 && event_loop_once(&r->loop, 20) > 0; i++)
		;
}

static struct vsock_hdr hdr(uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t len)
{
	return (struct vsock_hdr){ .src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID,
				   .src_port = src_port, .dst_port = dst_port, .len = len,
				   .type = VIRTIO_VSOCK_TYPE_STREAM, .op = op,
				   .buf_alloc = 65536 };
}

/* Send @h and @len bytes of @data as one packet, cut into descriptors at
 * @cuts (0-terminated offsets; NULL: header and data apart). */
static void tx_cut(struct rig *r, const struct vsock_hdr *h, const void *data, uint32_t len,
		   const uint32_t *cuts)
{
	uint32_t total = VSOCK_HDR_LEN + len;
	uint64_t gpa = pool_get(r, total);
	struct iovec one = { vd_ptr(&r->mem, gpa, total), total };
	struct vd_buf b[8];
	unsigned n = 0;
	uint32_t at = 0;
	static const uint32_t apart[] = { VSOCK_HDR_LEN, 0 };

	vsock_hdr_write(&one, 1, h);
	if (len)
		memcpy((uint8_t *)one.iov_base + VSOCK_HDR_LEN, data, len);
	for (const uint32_t *c = cuts ? cuts : apart; *c && *c < total; c++) {
		b[n++] = (struct vd_buf){ .gpa = gpa + at, .len = *c - at };
		at = *c;
	}
	b[n++] = (struct vd_buf){ .gpa = gpa + at, .len = total - at };
	CHECK(vd_add_chain(&r->q[VSOCK_TX_QUEUE], b, n, false) >= 0);
	vd_publish(&r->q[VSOCK_TX_QUEUE]);
	r->vs.vdev.ops->queue_notify(&r->vs.vdev, VSOCK_TX_QUEUE);
	uint32_t id, ulen;
	while (vd_get_used(&r->q[VSOCK_TX_QUEUE], &id, &ulen) > 0)
		CHECK_EQ(ulen, 0);
}

static void tx(struct rig *r, struct vsock_hdr h, const void *data, uint32_t len)
{
	h.len = len;
	tx_cut(r, &h, data, len, NULL);
}

/* Give the device @n receive buffers of @size bytes. */
static void rx_give(struct rig *r, unsigned n, uint32_t size)
{
	for (unsigned i = 0; i < n; i++) {
		struct vd_buf b = { .gpa = pool_get(r, size), .len = size, .writable = true };
		int head = vd_add_chain(&r->q[VSOCK_RX_QUEUE], &b, 1, false);
		CHECK(head >= 0);
		if (head >= 0)
			r->rx_gpa[head] = b.gpa;
	}
	vd_publish(&r->q[VSOCK_RX_QUEUE]);
	r->vs.vdev.ops->queue_notify(&r->vs.vdev, VSOCK_RX_QUEUE);
}

/* The next packet the device sent the guest: 1 with its header and up to
 * @cap payload bytes in @data, 0 when there is none. */
static int rx_get(struct rig *r, struct vsock_hdr *h, void *data, size_t cap)
{
	uint32_t id, len;

	if (vd_get_used(&r->q[VSOCK_RX_QUEUE], &id, &len) <= 0)
		return 0;
	struct iovec v = { vd_ptr(&r->mem, r->rx_gpa[id], len), len };
	CHECK(len >= VSOCK_HDR_LEN);
	CHECK_EQ(vsock_hdr_read(&v, 1, len, h), VSOCK_PARSE_OK);
	CHECK_EQ(h->len, len - VSOCK_HDR_LEN);
	CHECK_EQ(h->src_cid, VSOCK_HOST_CID);
	CHECK_EQ(h->dst_cid, GUEST_CID);
	if (data)
		memcpy(data, (uint8_t *)v.iov_base + VSOCK_HDR_LEN, MIN((size_t)h->len, cap));
	return 1;
}

/* The next packet must be @op between host port @local and guest port @peer. */
static void expect(struct rig *r, uint16_t op, uint32_t local, uint32_t peer)
{
	struct vsock_hdr h;

	CHECK_EQ(rx_get(r, &h, NULL, 0), 1);
	CHECK_EQ(h.op, op);
	CHECK_EQ(h.src_port, local);
	CHECK_EQ(h.dst_port, peer);
}

static void expect_none(struct rig *r)
{
	struct vsock_hdr h;

	settle(r);
	CHECK_EQ(rx_get(r, &h, NULL, 0), 0);
}

/* A host listener at P_port, as a host service makes it. */
static int host_listen(struct rig *r, uint32_t port)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", r->path, port);
	unlink(a.sun_path);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(fd, 8) == 0);
	return fd;
}

static void host_unlisten(struct rig *r, int fd, uint32_t port)
{
	char p[128];

	snprintf(p, sizeof(p), "%s_%u", r->path, port);
	unlink(p);
	close(fd);
}

/* A host client on P. */
static int host_client(struct rig *r)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", r->path);
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	return fd;
}

/* Read exactly @len bytes from @fd within a second, the device running. */
static ssize_t host_read(struct rig *r, int fd, void *buf, size_t len)
{
	size_t got = 0;

	for (int i = 0; i < 100 && got < len; i++) {
		settle(r);
		ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Is @fd at its end (the device closed its side; a reset when the device
 * left bytes unread)? */
static bool host_eof(struct rig *r, int fd)
{
	char c;

	settle(r);
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static bool host_nothing(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* A guest connection from guest port @gport to host port @port, accepted
 * by the listener @lfd: the host end's fd. */
static int guest_connect(struct rig *r, int lfd, uint32_t gport, uint32_t port)
{
	tx(r, hdr(VIRTIO_VSOCK_OP_REQUEST, gport, port, 0), NULL, 0);
	expect(r, VIRTIO_VSOCK_OP_RESPONSE, port, gport);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

static void test_guest_connect_data(void)
{
	struct rig r;
	char buf[64];
	struct vsock_hdr h;

	rig_up(&r, 0);
	rx_give(&r, 32, RXBUF);
	CHECK_EQ(r.vs.vdev.ops->config_size, 8);
	uint64_t cid = 0;
	CHECK_EQ(virtio_device_config_read(&r.vs.vdev, 0, &cid, 8), 0);
	CHECK_EQ(cid, GUEST_CID);
	int lfd = host_listen(&r, 5000);
	int fd = guest_connect(&r, lfd, 1234, 5000);
	CHECK_EQ(r.vs.counters.tx_conns_opened, 1);
	tx(&r, hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 0), "hello, host", 11);
	CHECK_EQ(host_read(&r, fd, buf, 11), 11);
	CHECK(!memcmp(buf, "hello, host", 11));
	CHECK_EQ(send(fd, "hello, guest", 12, 0), 12);
	settle(&r);
	CHECK_EQ(rx_get(&r, &h, buf, sizeof(buf)), 1);
	CHECK_EQ(h.op, VIRTIO_VSOCK_OP_RW);
	CHECK_EQ(h.src_port, 5000);
	CHECK_EQ(h.dst_port, 1234);
	CHECK_EQ(h.len, 12);
	CHECK_EQ(h.buf_alloc, VSOCK_CONN_BUF_SIZE);
	CHECK_EQ(h.fwd_cnt, 11);
	CHECK(!memcmp(buf, "hello, guest", 12));
	CHECK_EQ(r.vs.counters.tx_bytes, 11);
	CHECK_EQ(r.vs.counters.rx_bytes, 12);
	/* The guest resets: the host end sees the end at once. */
	tx(&r, hdr(VIRTIO_VSOCK_OP_RST, 1234, 5000, 0), NULL, 0);
	CHECK(host_eof(&r, fd));
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);
	CHECK_EQ(r.vs.counters.tx_conns_reset, 1);
	close(fd);
	host_unlisten(&r, lfd, 5000);
	rig_down(&r);
}

/* The device sends no more than the guest's buf_alloc allows, and a credit
 * update lets more through; the bytes arrive in order. */
static void test_guest_credit_respected(void)
{
	struct rig r;
	static uint8_t out[3000], in[3000];
	struct vsock_hdr h;
	uint32_t got = 0;

	rig_up(&r, 0);
	for (unsigned i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 3);
	rx_give(&r, 64, 256);
	int lfd = host_listen(&r, 5001);
	struct vsock_hdr req = hdr(VIRTIO_VSOCK_OP_REQUEST, 77, 5001, 0);
	req.buf_alloc = 1000;
	tx(&r, req, NULL, 0);
	expect(&r, VIRTIO_VSOCK_OP_RESPONSE, 5001, 77);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK_EQ(send(fd, out, sizeof(out), 0), (ssize_t)sizeof(out));
	for (uint32_t fwd = 0; fwd < sizeof(out); fwd += 1000) {
		settle(&r);
		while (rx_get(&r, &h, in + got, sizeof(in) - got)) {
			CHECK_EQ(h.op, VIRTIO_VSOCK_OP_RW);
			CHECK(h.len <= 256 - VSOCK_HDR_LEN);
			got += h.len;
		}
		CHECK_EQ(got, fwd + 1000);           /* exactly the credit, no more */
		struct vsock_hdr up = hdr(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 77, 5001, 0);
		up.buf_alloc = 1000;
		up.fwd_cnt = got;
		rx_give(&r, 16, 256);
		tx(&r, up, NULL, 0);
	}
	CHECK_EQ(got, sizeof(out));
	CHECK(!memcmp(in, out, sizeof(out)));
	expect_none(&r);
	/* A guest that overstates fwd_cnt gets nothing more, not a wrap. */
	struct vsock_hdr lie = hdr(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 77, 5001, 0);
	lie.buf_alloc = 10;
	lie.fwd_cnt = 5000;
	tx(&r, lie, NULL, 0);
	CHECK_EQ(send(fd, "x", 1, 0), 1);
	expect_none(&r);
	close(fd);
	host_unlisten(&r, lfd, 5001);
	rig_down(&r);
}

/* The device's own credit: the guest hears of freed room, and one that
 * sends beyond the device's buf_alloc is reset. */
static void test_device_credit(void)
{
	struct rig r;
	static uint8_t big[40000];
	struct vsock_hdr h;

	rig_up(&r, 0);
	rx_give(&r, 64, RXBUF);
	int lfd = host_listen(&r, 5002);
	int fd = guest_connect(&r, lfd, 88, 5002);
	/* 40000 bytes pass to the socket at once: more than half the buffer
	 * was believed used, so a CREDIT_UPDATE follows. */
	tx(&r, hdr(VIRTIO_VSOCK_OP_RW, 88, 5002, 0), big, sizeof(big));
	CHECK_EQ(rx_get(&r, &h, NULL, 0), 1);
	CHECK_EQ(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	CHECK_EQ(h.fwd_cnt, sizeof(big));
	/* A credit request is answered. */
	tx(&r, hdr(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 88, 5002, 0), NULL, 0);
	CHECK_EQ(rx_get(&r, &h, NULL, 0), 1);
	CHECK_EQ(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	/* The host stops reading: its socket buffer, then the device's, fill;
	 * a guest that goes on regardless is reset, the device's buffer never
	 * over VSOCK_CONN_BUF_SIZE. */
	for (int i = 0; i < 200 && !r.vs.counters.tx_credit_exceeded; i++)
		tx(&r, hdr(VIRTIO_VSOCK_OP_RW, 88, 5002, 0), big, sizeof(big));
	CHECK_EQ(r.vs.counters.tx_credit_exceeded, 1);
	for (int i = 0; i < 8 && rx_get(&r, &h, NULL, 0) && h.op != VIRTIO_VSOCK_OP_RST; i++)
		;
	CHECK_EQ(h.op, VIRTIO_VSOCK_OP_RST);
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);
	close(fd);
	host_unlisten(&r, lfd, 5002);
	rig_down(&r);
}

static void test_host_connect(void)
{
	struct rig r;
	char buf[64];
	struct vsock_hdr h;

	rig_up(&r, 0);
	rx_give(&r, 32, RXBUF);
	int fd = host_client(&r);
	settle(&r);
	CHECK(host_nothing(fd));                  /* nothing before the client speaks */
	expect_none(&r);
	/* The command in lowercase, and data after the newline in the same write. */
	CHECK_EQ(send(fd, "connect 5000\nabc", 16, 0), 16);
	settle(&r);
	CHECK_EQ(rx_get(&r, &h, NULL, 0), 1);
	CHECK_EQ(h.op, VIRTIO_VSOCK_OP_REQUEST);
	CHECK_EQ(h.dst_port, 5000);
	CHECK_EQ(h.src_port, HOST_PORT0);
	CHECK_EQ(h.type, VIRTIO_VSOCK_TYPE_STREAM);
	CHECK(host_nothing(fd));                  /* no OK before the guest's RESPONSE */
	expect_none(&r);                          /* nor the data */
	tx(&r, hdr(VIRTIO_VSOCK_OP_RESPONSE, 5000, HOST_PORT0, 0), NULL, 0);
	snprintf(buf, sizeof(buf), "OK %u\n", HOST_PORT0);
	size_t oklen = strlen(buf);
	char line[64] = { 0 };
	CHECK_EQ(host_read(&r, fd, line, oklen), (ssize_t)oklen);
	CHECK(!strcmp(line, buf));
	CHECK_EQ(rx_get(&r, &h, buf, sizeof(buf)), 1);
	CHECK_EQ(h.op, VIRTIO_VSOCK_OP_RW);
	CHECK_EQ(h.len, 3);
	CHECK(!memcmp(buf, "abc", 3));
	tx(&r, hdr(VIRTIO_VSOCK_OP_RW, 5000, HOST_PORT0, 0), "xyz", 3);
	CHECK_EQ(host_read(&r, fd, buf, 3), 3);
	CHECK(!memcmp(buf, "xyz", 3));
	CHECK_EQ(r.vs.counters.rx_conns_opened, 1);
	/* A second client gets the next host port. */
	int fd2 = host_client(&r);
	CHECK_EQ(send(fd2, "CONNECT   5001\n", 15, 0), 15);
	settle(&r);
	expect(&r, VIRTIO_VSOCK_OP_REQUEST, HOST_PORT0 + 1, 5001);
	close(fd2);
	close(fd);
	rig_down(&r);
}

static void test_host_connect_refused(void)
{
	struct rig r;

	rig_up(&r, 0);
	rx_give(&r, 16, RXBUF);
	int fd = host_client(&r);
	CHECK_EQ(send(fd, "CONNECT 6000\n", 13, 0), 13);
	settle(&r);
	expect(&r, VIRTIO_VSOCK_OP_REQUEST, HOST_PORT0, 6000);
	tx(&r, hdr(VIRTIO_VSOCK_OP_RST, 6000, HOST_PORT0, 0), NULL, 0);
	CHECK(host_eof(&r, fd));                 /* closed at once, no OK */
	CHECK_EQ(r.vs.counters.rx_conns_refused, 1);
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);
	close(fd);
	/* Bad lines: closed, counted, nothing asked of the guest. */
	static const char *const bad[] = { "HELLO 5\n", "CONNECT\n", "CONNECT 5x\n",
					   "CONNECT 99999999999\n", "CONNECT -1\n",
					   "CONNECT 5000 CONNECT 5000 CONNECT 5000" };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = host_client(&r);
		CHECK_EQ(send(fd, bad[i], strlen(bad[i]), 0), (ssize_t)strlen(bad[i]));
		CHECK(host_eof(&r, fd));
		close(fd);
	}
	CHECK_EQ(r.vs.counters.rx_conns_bad_command, 6);
	expect_none(&r);
	/* A client that goes before its line is whole. */
	fd = host_client(&r);
	CHECK_EQ(send(fd, "CONN", 4, 0), 4);
	settle(&r);
	close(fd);
	settle(&r);
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);
	rig_down(&r);
}

static void test_no_listener(void)
{
	struct rig r;

	rig_up(&r, 0);
	rx_give(&r, 16, RXBUF);
	tx(&r, hdr(VIRTIO_VSOCK_OP_REQUEST, 99, 7000, 0), NULL, 0);
	expect(&r, VIRTIO_VSOCK_OP_RST, 7000, 99);
	CHECK_EQ(r.vs.counters.tx_conns_refused, 1);
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);
	rig_down(&r);
}

static void test_malformed(void)
{
	struct rig r;
	struct vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 10, 8000, 0);

	rig_up(&r, 0);
	rx_give(&r, 32, RXBUF);
	/* Another type: RST. */
	h.type = 2;
	tx(&r, h, NULL, 0);
	expect(&r, VIRTIO_VSOCK_OP_RST, 8000, 10);
	CHECK_EQ(r.vs.counters.tx_packets_bad_type, 1);
	/* Not to the host, or not from the guest's CID: dropped silently. */
	h = hdr(VIRTIO_VSOCK_OP_REQUEST, 10, 8000, 0);
	h.dst_cid = 3;
	tx(&r, h, NULL, 0);
	h = hdr(VIRTIO_VSOCK_OP_REQUEST, 10, 8000, 0);
	h.src_cid = 7;
	tx(&r, h, NULL, 0);
	CHECK_EQ(r.vs.counters.tx_packets_bad_cid, 2);
	expect_none(&r);
	/* A len beyond the chain: dropped. */
	h = hdr(VIRTIO_VSOCK_OP_RW, 10, 8000, 100);
	tx_cut(&r, &h, "abc", 3, NULL);
	/* A header shorter than 44 bytes: dropped. */
	uint64_t gpa = pool_get(&r, 64);
	struct vd_buf b = { .gpa = gpa, .len = 30 };
	CHECK(vd_add_chain(&r.q[VSOCK_TX_QUEUE], &b, 1, false) >= 0);
	vd_publish(&r.q[VSOCK_TX_QUEUE]);
	r.vs.vdev.ops->queue_notify(&r.vs.vdev, VSOCK_TX_QUEUE);
	CHECK_EQ(r.vs.counters.tx_packets_malformed, 2);
	expect_none(&r);
	/* Data for no connection: RST. */
	tx(&r, hdr(VIRTIO_VSOCK_OP_RW, 10, 8000, 0), "abc", 3);
	expect(&r, VIRTIO_VSOCK_OP_RST, 8000, 10);
	CHECK_EQ(r.vs.counters.tx_packets_no_conn, 1);
	/* An RST for no connection: nothing. */
	tx(&r, hdr(VIRTIO_VSOCK_OP_RST, 10, 8000, 0), NULL, 0);
	expect_none(&r);
	/* A header cut oddly over descriptors, its payload too. */
	int lfd = host_listen(&r, 8001);
	static const uint32_t cuts[] = { 1, 9, 30, 43, 45, 0 };
	h = hdr(VIRTIO_VSOCK_OP_REQUEST, 11, 8001, 0);
	tx_cut(&r, &h, NULL, 0, cuts);
	expect(&r, VIRTIO_VSOCK_OP_RESPONSE, 8001, 11);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	char buf[8];
	h = hdr(VIRTIO_VSOCK_OP_RW, 11, 8001, 5);
	tx_cut(&r, &h, "split", 5, cuts);
	CHECK_EQ(host_read(&r, fd, buf, 5), 5);
	CHECK(!memcmp(buf, "split", 5));
	/* Another type on a connection's ports: its RST ends the connection
	 * too, so the device sends nothing more on it. */
	h = hdr(VIRTIO_VSOCK_OP_RW, 11, 8001, 0);
	h.type = 3;
	tx(&r, h, "x", 1);
	expect(&r, VIRTIO_VSOCK_OP_RST, 8001, 11);
	CHECK(host_eof(&r, fd));
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);
	CHECK_EQ(r.vs.counters.tx_packets_bad_type, 2);
	close(fd);
	host_unlisten(&r, lfd, 8001);
	rig_down(&r);
}

static void test_rx_chain_invalid(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, 0);
	/* The RX queue holds one readable buffer and one too small for a header. */
	struct vd_buf ro = { .gpa = pool_get(&r, 64), .len = 64 };
	struct vd_buf small = { .gpa = pool_get(&r, 64), .len = 40, .writable = true };
	CHECK(vd_add_chain(&r.q[VSOCK_RX_QUEUE], &ro, 1, false) >= 0);
	CHECK(vd_add_chain(&r.q[VSOCK_RX_QUEUE], &small, 1, false) >= 0);
	vd_publish(&r.q[VSOCK_RX_QUEUE]);
	tx(&r, hdr(VIRTIO_VSOCK_OP_REQUEST, 1, 9999, 0), NULL, 0);   /* owes an RST */
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(vd_get_used(&r.q[VSOCK_RX_QUEUE], &id, &len), 1);
		CHECK_EQ(len, 0);
	}
	CHECK_EQ(r.vs.counters.rx_chains_invalid, 2);
	rx_give(&r, 1, RXBUF);                   /* the RST waited for it */
	expect(&r, VIRTIO_VSOCK_OP_RST, 9999, 1);
	/* An RST still waiting for a buffer is dropped when a connection
	 * begins on its ports: it answered an earlier packet, not the REQUEST. */
	int lfd = host_listen(&r, 9998);
	tx(&r, hdr(VIRTIO_VSOCK_OP_RW, 2, 9998, 0), "x", 1);           /* no connection: RST */
	CHECK_EQ(r.vs.rst_len, 1);
	tx(&r, hdr(VIRTIO_VSOCK_OP_REQUEST, 2, 9998, 0), NULL, 0);
	CHECK_EQ(r.vs.rst_len, 0);
	rx_give(&r, 4, RXBUF);
	expect(&r, VIRTIO_VSOCK_OP_RESPONSE, 9998, 2);
	expect_none(&r);
	host_unlisten(&r, lfd, 9998);
	rig_down(&r);
}

static void test_shutdown(void)
{
	struct rig r;
	char buf[16];
	struct vsock_hdr h;

	rig_up(&r, 0);
	rx_give(&r, 32, RXBUF);
	int lfd = host_listen(&r, 5100);
	/* The guest stops sending: the host end reads the data, then the end. */
	int fd = guest_connect(&r, lfd, 20, 5100);
	tx(&r, hdr(VIRTIO_VSOCK_OP_RW, 20, 5100, 0), "last", 4);
	struct vsock_hdr sh = hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 20, 5100, 0);
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx(&r, sh, NULL, 0);
	CHECK_EQ(host_read(&r, fd, buf, 4), 4);
	CHECK(host_eof(&r, fd));
	/* ... and may still receive. */
	CHECK_EQ(send(fd, "more", 4, 0), 4);
	settle(&r);
	CHECK_EQ(rx_get(&r, &h, buf, sizeof(buf)), 1);
	CHECK_EQ(h.op, VIRTIO_VSOCK_OP_RW);
	CHECK(!memcmp(buf, "more", 4));
	/* The host end closes too: SHUTDOWN (it sends no more), then RST: over. */
	close(fd);
	settle(&r);
	expect(&r, VIRTIO_VSOCK_OP_SHUTDOWN, 5100, 20);
	expect(&r, VIRTIO_VSOCK_OP_RST, 5100, 20);
	CHECK_EQ(r.vs.counters.tx_conns_closed, 1);
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);

	/* The host end goes first: SHUTDOWN with the send flag to the guest. */
	fd = guest_connect(&r, lfd, 21, 5100);
	shutdown(fd, SHUT_WR);
	settle(&r);
	CHECK_EQ(rx_get(&r, &h, NULL, 0), 1);
	CHECK_EQ(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	CHECK_EQ(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
	/* The guest closes fully: RST, and the host end sees the end. */
	sh = hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 21, 5100, 0);
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
	tx(&r, sh, NULL, 0);
	expect(&r, VIRTIO_VSOCK_OP_RST, 5100, 21);
	CHECK(host_eof(&r, fd));
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);
	close(fd);
	/* Data after the guest's SHUTDOWN(send) breaks the protocol: reset. */
	fd = guest_connect(&r, lfd, 22, 5100);
	sh = hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 22, 5100, 0);
	sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx(&r, sh, NULL, 0);
	tx(&r, hdr(VIRTIO_VSOCK_OP_RW, 22, 5100, 0), "late", 4);
	expect(&r, VIRTIO_VSOCK_OP_RST, 5100, 22);
	close(fd);
	host_unlisten(&r, lfd, 5100);
	rig_down(&r);
}

static void test_conn_cap(void)
{
	struct rig r;

	rig_up(&r, 2);
	rx_give(&r, 32, RXBUF);
	int lfd = host_listen(&r, 5200);
	int a = guest_connect(&r, lfd, 30, 5200);
	int b = guest_connect(&r, lfd, 31, 5200);
	tx(&r, hdr(VIRTIO_VSOCK_OP_REQUEST, 32, 5200, 0), NULL, 0);
	expect(&r, VIRTIO_VSOCK_OP_RST, 5200, 32);
	CHECK_EQ(r.vs.counters.tx_conns_cap_refused, 1);
	int c = host_client(&r);
	CHECK(host_eof(&r, c));                  /* closed at once */
	CHECK_EQ(r.vs.counters.rx_conns_cap_refused, 1);
	close(c);
	/* One goes: room for the next. */
	tx(&r, hdr(VIRTIO_VSOCK_OP_RST, 30, 5200, 0), NULL, 0);
	close(a);
	int d = guest_connect(&r, lfd, 33, 5200);
	CHECK_EQ(virtio_vsock_conns(&r.vs), 2);
	close(b);
	close(d);
	host_unlisten(&r, lfd, 5200);
	rig_down(&r);
}

/* The host client never sends its line, or the guest never answers. */
static void test_timeouts(void)
{
	struct rig r;

	rig_up(&r, 0);
	rx_give(&r, 16, RXBUF);
	int idle = host_client(&r);
	int asks = host_client(&r);
	CHECK_EQ(send(asks, "CONNECT 1\n", 10, 0), 10);
	settle(&r);
	expect(&r, VIRTIO_VSOCK_OP_REQUEST, HOST_PORT0, 1);
	for (int i = 0; i < 300 && virtio_vsock_conns(&r.vs) > 0; i++)
		event_loop_once(&r.loop, 20);
	CHECK(host_eof(&r, idle));
	CHECK(host_eof(&r, asks));
	expect(&r, VIRTIO_VSOCK_OP_RST, HOST_PORT0, 1);
	CHECK_EQ(r.vs.counters.rx_conns_timed_out, 2);
	close(idle);
	close(asks);
	/* No driver: the REQUEST never leaves, and the slot goes with the
	 * deadline, with no RST left waiting for a driver. */
	virtio_device_reset(&r.vs.vdev);
	asks = host_client(&r);
	CHECK_EQ(send(asks, "CONNECT 1\n", 10, 0), 10);
	settle(&r);
	CHECK_EQ(virtio_vsock_conns(&r.vs), 1);
	for (int i = 0; i < 300 && virtio_vsock_conns(&r.vs) > 0; i++)
		event_loop_once(&r.loop, 20);
	CHECK_EQ(virtio_vsock_conns(&r.vs), 0);
	CHECK(host_eof(&r, asks));
	close(asks);
	rig_down(&r);
}

static void test_parse_connect(void)
{
	uint32_t port = 0;

	CHECK_EQ(vsock_uds_parse_connect("CONNECT 52", 10, &port), 0);
	CHECK_EQ(port, 52);
	CHECK_EQ(vsock_uds_parse_connect("cOnNeCt 4294967295", 18, &port), 0);
	CHECK_EQ(port, UINT32_MAX);
	CHECK_EQ(vsock_uds_parse_connect("CONNECT 4294967296", 18, &port), -EINVAL);
	CHECK_EQ(vsock_uds_parse_connect("CONNECT", 7, &port), -EINVAL);
	CHECK_EQ(vsock_uds_parse_connect("CONNECTX 5", 10, &port), -EINVAL);
	CHECK_EQ(vsock_uds_parse_connect("CONNECT 5 ", 10, &port), -EINVAL);
}

static void test_init_refused(void)
{
	struct event_loop loop;
	struct virtio_vsock vs;
	struct errbuf eb = { 0 };
	struct virtio_vsock_opts o = { .guest_cid = 2, .uds_path = "/tmp/x", .listen_fd = -1 };

	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(virtio_vsock_init(&vs, &loop, &o, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "CID"));
	o.guest_cid = 3;
	o.uds_path = "/etc/hostname";            /* exists, not a socket: left alone */
	CHECK_EQ(virtio_vsock_init(&vs, &loop, &o, &eb), -EEXIST);
	CHECK(access("/etc/hostname", F_OK) == 0);
	event_loop_destroy(&loop);
}

/* --- snapshot state ------------------------------------------------------------ */

/* Event buffers (4 bytes each) for the device; their addresses in @gpa. */
static void ev_give(struct rig *r, struct virtio_vsock *vs, unsigned n, uint64_t *gpa)
{
	for (unsigned i = 0; i < n; i++) {
		struct vd_buf b = { .gpa = pool_get(r, 4), .len = 4, .writable = true };
		int head = vd_add_chain(&r->q[VSOCK_EVENT_QUEUE], &b, 1, false);
		CHECK(head >= 0);
		if (head >= 0)
			gpa[head] = b.gpa;
	}
	vd_publish(&r->q[VSOCK_EVENT_QUEUE]);
	vs->vdev.ops->queue_notify(&vs->vdev, VSOCK_EVENT_QUEUE);
}

/* A fresh device with @cid on the rig's loop and memory, as a restore
 * builds it, loaded from @len bytes of @state; why in @why. */
static bool twin_load(struct rig *r, struct virtio_vsock *vs, uint64_t cid, const char *path,
		      const uint8_t *state, size_t len, struct count_transport *tr, char *why)
{
	struct virtio_vsock_opts o = { .guest_cid = cid, .uds_path = path, .listen_fd = -1 };
	struct errbuf eb = { 0 };
	struct state_reader rd;

	CHECK_EQ(virtio_vsock_init(vs, &r->loop, &o, &eb), 0);
	count_transport_attach(tr, &vs->vdev);
	vs->vdev.mem = &r->mem.gm;
	state_reader_init(&rd, state, len, &eb);
	bool ok = virtio_device_state_load(&vs->vdev, &rd);
	snprintf(why, 256, "%s", eb.msg);
	return ok;
}

static void twin_down(struct virtio_vsock *vs)
{
	virtio_device_reset(&vs->vdev);
	virtio_vsock_destroy(vs);
}

/* A host client on @path asking for guest port @port. */
static int client_on(const char *path, uint32_t port)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char line[32];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	CHECK_EQ(write(fd, line, (size_t)n), n);
	return fd;
}

static void test_state_round_trip(void)
{
	struct rig r;
	struct virtio_vsock vs2;
	struct count_transport tr2;
	struct state_writer w;
	struct errbuf eb = { 0 };
	uint64_t ev_gpa[256] = { 0 };
	char why[256], path2[100];
	uint32_t id, len, ev = 0xffff;

	rig_up(&r, 0);
	rx_give(&r, 16, RXBUF);
	ev_give(&r, &r.vs, 2, ev_gpa);
	int lfd = host_listen(&r, 5000);
	int fd = guest_connect(&r, lfd, 1234, 5000);
	r.vs.next_local_port = HOST_PORT0 + 7;
	virtio_device_pause(&r.vs.vdev);
	state_writer_init(&w);
	CHECK_EQ(virtio_device_state_save(&r.vs.vdev, &w, &eb), 0);
	CHECK(!w.failed);

	snprintf(path2, sizeof(path2), "%s.new", r.path);
	CHECK(twin_load(&r, &vs2, GUEST_CID, path2, w.buf, w.len, &tr2, why));
	CHECK(vs2.vdev.active && vs2.vdev.paused && vs2.vdev.features == r.vs.vdev.features);
	CHECK_EQ(virtio_vsock_conns(&vs2), 0);       /* host sockets stay behind */
	CHECK_EQ(vs2.next_local_port, HOST_PORT0 + 7);
	for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
		CHECK(vs2.vqs[q].last_avail_idx == vq_base(&r.vs.vqs[q]) &&
		      vs2.vqs[q].used_idx == r.vs.vqs[q].used_idx);
	CHECK_EQ(vd_get_used(&r.q[VSOCK_EVENT_QUEUE], &id, &len), 0);
	virtio_device_resume(&vs2.vdev);
	CHECK_EQ(vd_get_used(&r.q[VSOCK_EVENT_QUEUE], &id, &len), 1);
	CHECK_EQ(len, 4);
	vd_read(&r.mem, ev_gpa[id], &ev, 4);
	CHECK_EQ(ev, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	/* Until the guest gives the buffer back, no packet reaches it. */
	int cfd = client_on(path2, 77);
	settle(&r);
	expect_none(&r);
	ev_give(&r, &vs2, 1, ev_gpa);
	settle(&r);
	expect(&r, VIRTIO_VSOCK_OP_REQUEST, HOST_PORT0 + 7, 77);
	close(cfd);
	twin_down(&vs2);
	state_writer_free(&w);
	close(fd);
	host_unlisten(&r, lfd, 5000);
	rig_down(&r);
}

/* Another CID (the guest's driver keeps its own), or the state cut short:
 * refused with why, the fresh device as built. */
static void test_state_refused(void)
{
	struct rig r;
	struct virtio_vsock vs2;
	struct count_transport tr2;
	struct state_writer w;
	struct errbuf eb = { 0 };
	char why[256], path2[100];

	rig_up(&r, 0);
	virtio_device_pause(&r.vs.vdev);
	state_writer_init(&w);
	CHECK_EQ(virtio_device_state_save(&r.vs.vdev, &w, &eb), 0);
	snprintf(path2, sizeof(path2), "%s.new", r.path);
	CHECK(!twin_load(&r, &vs2, GUEST_CID + 1, path2, w.buf, w.len, &tr2, why));
	CHECK(strstr(why, "VSCK") && strstr(why, "the snapshot's guest CID is 42, this vsock "
					     "device's 43"));
	CHECK(!vs2.vdev.active && !vs2.vdev.features && !vs2.reset_on_resume);
	twin_down(&vs2);
	for (size_t cut = 1; cut < 40; cut += 3) {
		CHECK(!twin_load(&r, &vs2, GUEST_CID, path2, w.buf, w.len - cut, &tr2, why));
		CHECK(!vs2.vdev.active && !vs2.vdev.features && !vs2.reset_on_resume);
		twin_down(&vs2);
	}
	state_writer_free(&w);
	rig_down(&r);
}

int main(void)
{
	RUN_TEST(test_guest_connect_data);
	RUN_TEST(test_guest_credit_respected);
	RUN_TEST(test_device_credit);
	RUN_TEST(test_host_connect);
	RUN_TEST(test_host_connect_refused);
	RUN_TEST(test_no_listener);
	RUN_TEST(test_malformed);
	RUN_TEST(test_rx_chain_invalid);
	RUN_TEST(test_shutdown);
	RUN_TEST(test_conn_cap);
	RUN_TEST(test_timeouts);
	RUN_TEST(test_parse_connect);
	RUN_TEST(test_init_refused);
	RUN_TEST(test_state_round_trip);
	RUN_TEST(test_state_refused);
	return CHECK_DONE();
}
