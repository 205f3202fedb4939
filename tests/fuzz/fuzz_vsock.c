/*
 * libFuzzer target: a hostile guest driver and hostile host processes
 * against virtio-vsock with its hybrid unix-socket backend.
 *
 * The input is a stream of operations: a guest packet (header fields from
 * the input, its CIDs, type or len maybe wrong, cut over descriptors at an
 * input-chosen point, direct or indirect), receive buffers (of any size,
 * some read-only or under a header), a host client on P with a CONNECT
 * line or garbage and data, host data written / half-closed / closed on a
 * connection, a raw descriptor or an avail index jump, and a turn of the
 * event loop. A host listener at P_1000 accepts; port 1001 has none.
 *
 * Checked besides ASan/UBSan (guard pages around guest memory):
 *  - every used entry names an outstanding head with no more bytes than
 *    the chain's writable length, while no raw descriptors were written;
 *  - every packet the device writes is well-formed: host CID to the
 *    guest's, STREAM, an op the device may send, len the used length less
 *    the header;
 *  - the device never has more stream bytes outstanding on a connection
 *    than the guest's last buf_alloc and fwd_cnt for it allow;
 *  - every transmit chain is completed once (unless raw or poisoned);
 *  - never more connections than the cap, never more buffered toward a
 *    socket than VSOCK_CONN_BUF_SIZE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "core/errbuf.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "count_transport.h"
#include "fuzz_input.h"
#include "vdriver.h"
#include "vsock/virtio_vsock.h"

#define MEM_BASE  0x40000000ull
#define MEM_SIZE  (1024u * 1024u)
#define QSIZE     64u
#define CID       77u
#define MAX_CONNS 4u
#define MAX_OPS   150
#define MAX_HOST  16
#define TRACK     2048

#define FAIL(...) FUZZ_FAIL("fuzz_vsock", __VA_ARGS__)

static struct vd_mem mem;
static struct event_loop loop;
static struct virtio_vsock vs;
static struct vd_queue q[VSOCK_NUM_QUEUES];
static struct count_transport transport;
static char path[64];
static int listener = -1;           /* the host service at P_1000 */
static int host[MAX_HOST];          /* host ends: accepted at P_1000, or clients of P */
static unsigned n_host;
static uint64_t pool, pool_off, rx_gpa[QSIZE];
static uint64_t tx_added, tx_used;
static bool raw_written;
static uint32_t last_host_port;     /* the source port of the device's last REQUEST */

/* What the guest last told the device of its credit on a connection, and
 * what the device has sent it since the connection began. */
static struct track {
	bool used;
	uint32_t local, peer;
	uint32_t buf_alloc, fwd_cnt, tx_cnt;
} track[TRACK];

static struct track *track_get(uint32_t local, uint32_t peer)
{
	struct track *free_slot = NULL;

	for (unsigned i = 0; i < TRACK; i++) {
		if (track[i].used && track[i].local == local && track[i].peer == peer)
			return &track[i];
		if (!track[i].used && !free_slot)
			free_slot = &track[i];
	}
	if (!free_slot)             /* 4 guest ports by 260 host ones, and the host's */
		FAIL("out of tracking slots");
	*free_slot = (struct track){ .used = true, .local = local, .peer = peer };
	return free_slot;
}

static void host_close_all(void)
{
	for (unsigned i = 0; i < n_host; i++)
		close(host[i]);
	n_host = 0;
	for (int fd; (fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
		close(fd);
}

/* At exit: the socket files go (the device removes P, the harness P_1000). */
static void world_end(void)
{
	char p[sizeof(path) + 8];

	virtio_device_reset(&vs.vdev);
	host_close_all();
	virtio_vsock_destroy(&vs);
	snprintf(p, sizeof(p), "%s_1000", path);
	unlink(p);
	close(listener);
}

static void world_init(void)
{
	struct errbuf eb = { 0 };
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	log_threshold = LOG_ERROR;
	snprintf(path, sizeof(path), "/tmp/fuzz_vsock.%d.sock", getpid());
	snprintf(a.sun_path, sizeof(a.sun_path), "%s_1000", path);
	unlink(a.sun_path);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(listener, 64))
		FAIL("host listener");
	struct virtio_vsock_opts o = { .guest_cid = CID, .uds_path = path, .listen_fd = -1,
				       .max_conns = MAX_CONNS };
	if (event_loop_init(&loop) || vd_mem_init(&mem, MEM_BASE, MEM_SIZE, 0) ||
	    virtio_vsock_init(&vs, &loop, &o, &eb))
		FAIL("set-up: %s", eb.msg);
	count_transport_attach(&transport, &vs.vdev);
	vs.vdev.mem = &mem.gm;
	atexit(world_end);
}

/* A fresh device session (every connection closed) for each input. */
static void world_start(void)
{
	struct vd_queue_opts qo = { .size = QSIZE, .indirect_max = 8 };

	virtio_device_reset(&vs.vdev);
	host_close_all();
	if (virtio_vsock_conns(&vs))
		FAIL("connections survived a reset");
	vd_alloc_reset(&mem);
	for (unsigned i = 0; i < VSOCK_NUM_QUEUES; i++)
		if (q[i].mem)
			vd_queue_destroy(&q[i]);
	for (unsigned i = 0; i < VSOCK_NUM_QUEUES; i++)
		if (vd_queue_init(&q[i], &mem, &qo))
			FAIL("queue");
	if (virtio_device_set_features(&vs.vdev, vs.vdev.ops->features(&vs.vdev)))
		FAIL("features refused");
	for (unsigned i = 0; i < VSOCK_NUM_QUEUES; i++)
		vd_queue_to_vq(&q[i], &vs.vqs[i], true);
	if (virtio_device_activate(&vs.vdev))
		FAIL("activate");
	pool = vd_alloc(&mem, 256 * 1024, 4096);
	pool_off = 0;
	tx_added = tx_used = 0;
	raw_written = false;
	memset(track, 0, sizeof(track));
}

static uint64_t pool_get(uint32_t len)
{
	len = (len + 15) & ~15u;
	if (pool_off + len > 256 * 1024)
		pool_off = 0;
	uint64_t gpa = pool + pool_off;
	pool_off += len;
	return gpa;
}

/* One packet the device wrote: well-formed, and within the guest's credit. */
static void check_rx_packet(uint32_t id, uint32_t len)
{
	struct iovec v = { vd_ptr(&mem, rx_gpa[id], len), len };
	struct vsock_hdr h;

	if (!len)
		return;     /* a chain it could not use */
	if (len < VSOCK_HDR_LEN || !v.iov_base || vsock_hdr_read(&v, 1, len, &h))
		FAIL("used length %u: not a packet", len);
	if (h.src_cid != VSOCK_HOST_CID || h.dst_cid != CID || h.type != VIRTIO_VSOCK_TYPE_STREAM ||
	    h.len != len - VSOCK_HDR_LEN || !h.op || h.op > VIRTIO_VSOCK_OP_CREDIT_UPDATE)
		FAIL("a malformed packet: op %u type %u len %u of %u", h.op, h.type, h.len, len);
	struct track *t = track_get(h.src_port, h.dst_port);
	if (h.op == VIRTIO_VSOCK_OP_REQUEST || h.op == VIRTIO_VSOCK_OP_RST)
		*t = (struct track){ .used = true, .local = h.src_port, .peer = h.dst_port };
	if (h.op == VIRTIO_VSOCK_OP_REQUEST)
		last_host_port = h.src_port;
	if (h.op != VIRTIO_VSOCK_OP_RW)
		return;
	if (!h.len)
		FAIL("an empty RW packet");
	t->tx_cnt += h.len;
	if (t->tx_cnt - t->fwd_cnt > t->buf_alloc)
		FAIL("%u -> %u: %u bytes outstanding, the guest allowed %u", h.src_port, h.dst_port,
		     t->tx_cnt - t->fwd_cnt, t->buf_alloc);
}

static void collect(void)
{
	uint32_t id, len;
	int r;

	while ((r = vd_get_used(&q[VSOCK_RX_QUEUE], &id, &len)) != 0) {
		if (r < 0 && !raw_written)
			FAIL("rx used entry %u len %u: not outstanding or too long", id, len);
		if (r > 0 && !raw_written)
			check_rx_packet(id, len);
	}
	while ((r = vd_get_used(&q[VSOCK_TX_QUEUE], &id, &len)) != 0) {
		if (r < 0 && !raw_written)
			FAIL("tx used entry %u: not outstanding", id);
		tx_used++;
	}
	if (virtio_vsock_conns(&vs) > MAX_CONNS)
		FAIL("%u connections", virtio_vsock_conns(&vs));
	for (unsigned i = 0; i < MAX_CONNS; i++)
		if (vs.conns[i].buf_len > VSOCK_CONN_BUF_SIZE)
			FAIL("%u bytes buffered", vs.conns[i].buf_len);
}

static void kick(unsigned qi)
{
	vd_publish(&q[qi]);
	vs.vdev.ops->queue_notify(&vs.vdev, qi);
	collect();
}

static uint32_t pick_dst(struct fuzz_input *in)
{
	switch (fuzz_take(in, 1) % 4) {
	case 0: return 1000;
	case 1: return 1001;
	case 2: return last_host_port;
	default: return 5000 + (uint32_t)fuzz_take(in, 1);
	}
}

/* A guest packet from the input. */
static void op_packet(struct fuzz_input *in)
{
	uint8_t f = (uint8_t)fuzz_take(in, 1);
	struct vsock_hdr h = {
		.src_cid = f & 1 ? fuzz_take(in, 8) : CID, .dst_cid = f & 2 ? 3 : VSOCK_HOST_CID,
		.type = f & 4 ? (uint16_t)fuzz_take(in, 2) : VIRTIO_VSOCK_TYPE_STREAM,
		.op = (uint16_t)(fuzz_take(in, 1) % 9),
	};
	uint8_t sp = (uint8_t)fuzz_take(in, 1);
	h.src_port = (sp & 0x80 ? 2000 : 10) + sp % 4u;  /* a guest client, or a guest listener */
	h.dst_port = pick_dst(in);
	h.flags = (uint32_t)fuzz_take(in, 1);
	h.buf_alloc = (uint32_t)fuzz_take(in, 2) * 4;
	struct track *t = track_get(h.dst_port, h.src_port);
	h.fwd_cnt = f & 8 ? t->tx_cnt - (uint32_t)fuzz_take(in, 1) : (uint32_t)fuzz_take(in, 4);
	uint32_t plen = (uint32_t)fuzz_take(in, 1) * 16;
	bool lie = f & 16;
	h.len = plen + (lie ? 1 + (uint32_t)fuzz_take(in, 1) : 0);
	uint32_t total = VSOCK_HDR_LEN + plen;
	uint64_t gpa = pool_get(total);
	struct iovec v = { vd_ptr(&mem, gpa, total), total };
	vsock_hdr_write(&v, 1, &h);
	fuzz_take_bytes(in, (uint8_t *)v.iov_base + VSOCK_HDR_LEN, plen < 32 ? plen : 32);
	uint32_t cut = f & 32 ? 1 + (uint32_t)fuzz_take(in, 1) % (total - 1) : total;
	struct vd_buf b[2] = { { .gpa = gpa, .len = cut }, { .gpa = gpa + cut, .len = total - cut } };
	if (vd_add_chain(&q[VSOCK_TX_QUEUE], b, cut < total ? 2 : 1, f & 64) < 0)
		return;
	tx_added++;
	/* What the device takes the guest's credit from (tx_packet's rules). */
	bool reaches = h.src_cid == CID && h.dst_cid == VSOCK_HOST_CID &&
		       h.type == VIRTIO_VSOCK_TYPE_STREAM && !lie;
	if (reaches && h.op == VIRTIO_VSOCK_OP_REQUEST)
		*t = (struct track){ .used = true, .local = h.dst_port, .peer = h.src_port };
	if (reaches) {
		t->buf_alloc = h.buf_alloc;
		t->fwd_cnt = h.fwd_cnt;
	}
	kick(VSOCK_TX_QUEUE);
}

static void op_rx_buffers(struct fuzz_input *in)
{
	unsigned n = 1 + (unsigned)fuzz_take(in, 1) % 8;
	uint8_t kind = (uint8_t)fuzz_take(in, 1);
	uint32_t size = kind % 4 == 0 ? 40 : kind % 4 == 1 ? 4096 : 45 + (uint32_t)fuzz_take(in, 1);

	for (unsigned i = 0; i < n; i++) {
		struct vd_buf b = { .gpa = pool_get(size), .len = size, .writable = kind % 4 != 2 || i };
		int head = vd_add_chain(&q[VSOCK_RX_QUEUE], &b, 1, kind & 8);
		if (head < 0)
			break;
		rx_gpa[head] = b.gpa;
	}
	kick(VSOCK_RX_QUEUE);
}

static void host_keep(int fd)
{
	if (n_host < MAX_HOST)
		host[n_host++] = fd;
	else
		close(fd);
}

/* A host client on P: a CONNECT line (or not) and data after it. */
static void op_client(struct fuzz_input *in)
{
	static const char *const forms[] = { "CONNECT %u\n", "connect %u\nhello", "CONNECT  %u\n",
					     "CONNECT %ux\n", "GET / HTTP/1.1\n", "CONNECT %u" };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char line[64];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	unsigned form = (unsigned)fuzz_take(in, 1) % 6;
	int n = snprintf(line, sizeof(line), forms[form], 2000 + (unsigned)fuzz_take(in, 1) % 4);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0)
		close(fd);
	else
		host_keep(fd);
	event_loop_once(&loop, 0);
	collect();
}

/* On a host end: data, a half-close or a close; or take waiting connections. */
static void op_host(struct fuzz_input *in)
{
	static uint8_t data[4096];
	uint8_t what = (uint8_t)fuzz_take(in, 1);

	for (int fd; (fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;)
		host_keep(fd);
	if (!n_host)
		return;
	unsigned i = (unsigned)fuzz_take(in, 1) % n_host;
	if (what % 4 == 0) {
		memset(data, what, sizeof(data));
		(void)!send(host[i], data, 1 + (size_t)fuzz_take(in, 2) % sizeof(data),
			    MSG_NOSIGNAL | MSG_DONTWAIT);
	} else if (what % 4 == 1) {
		shutdown(host[i], SHUT_WR);
	} else if (what % 4 == 2) {
		close(host[i]);
		host[i] = host[--n_host];
	} else {
		while (recv(host[i], data, sizeof(data), MSG_DONTWAIT) > 0)
			;
	}
	for (int k = 0; k < 3; k++)
		event_loop_once(&loop, 0);
	collect();
}

static void op_raw(struct fuzz_input *in)
{
	unsigned qi = (unsigned)fuzz_take(in, 1) % 2;
	struct vd_queue *rq = &q[qi];

	raw_written = true;
	if (fuzz_take(in, 1) & 1) {
		vd_raw_avail_idx(rq, (uint16_t)(rq->avail_idx + fuzz_take(in, 2)));
	} else {
		uint16_t i = (uint16_t)(fuzz_take(in, 1) % QSIZE);
		uint64_t addr = fuzz_take(in, 1) & 1 ? fuzz_take(in, 8) : pool + fuzz_take(in, 2) % 60000;
		vd_raw_desc(rq, i, addr, (uint32_t)fuzz_take(in, 2), (uint16_t)fuzz_take(in, 1) & 7,
			    (uint16_t)fuzz_take(in, 1));
		vd_raw_offer(rq, (uint16_t)(fuzz_take(in, 1) % QSIZE));
	}
	vs.vdev.ops->queue_notify(&vs.vdev, qi);
	collect();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fuzz_input in = { data, size };

	if (!ready) {
		world_init();
		ready = true;
	}
	world_start();
	for (unsigned ops = 0; in.n && ops < MAX_OPS && !vs.vdev.needs_reset; ops++) {
		switch (fuzz_take(&in, 1) % 8) {
		case 0: case 1: op_packet(&in); break;
		case 2: op_rx_buffers(&in); break;
		case 3: op_client(&in); break;
		case 4: op_host(&in); break;
		case 5: op_raw(&in); break;
		default:
			event_loop_once(&loop, 0);
			collect();
		}
	}
	if (!raw_written && !vs.vdev.needs_reset && tx_used != tx_added)
		FAIL("%llu transmit chains, %llu completed", (unsigned long long)tx_added,
		     (unsigned long long)tx_used);
	return 0;
}
