/*
 * Fuzz target for the vhost-user server: arbitrary message sequences are fed
 * to vhost_user_handle_msg (no socket in between), with real fds attached
 * where requests carry them (memfd guest memory, eventfd or socketpair
 * notifications), against a fake net device that completes whatever chains
 * it finds: one queue pair, or (mode bit 2) two pairs and a control queue
 * whose queue count follows the MQ and CTRL_VQ features. An optional
 * prologue performs a valid UML- or QEMU-style handshake first so the
 * fuzzed messages reach a running device; with two pairs it enables only
 * the first, as QEMU does for a driver using one.
 *
 * Must never crash, trip a sanitizer, or leak an fd (counted through
 * /proc/self/fd around every input; a leak aborts), and the ring states
 * must agree with the device after every record (see check_rings).
 *
 * Input: byte 0 = mode (bit 0 prologue, bit 1 in-band notifications, bit 2
 * two queue pairs), then records: u8 op, then per op (see fz_record).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include "core/compiler.h"
#include "core/log.h"
#include "transport/vhost_user.h"
#include "transport/vhost_user_internal.h"
#include "vu_frontend.h"

#define FZ_QUEUES 2                    /* one pair */
#define FZ_MQ_PAIRS 2
#define FZ_MAX_QUEUES (2 * FZ_MQ_PAIRS + 1)
#define FZ_F_CTRL_VQ 17
#define FZ_F_MQ 22
#define FZ_CONFIG_SIZE 12
#define FZ_MEM_SIZE (1u << 20)
#define FZ_MEM_START 0x1000u
#define FZ_RING(q) (0x10000u + (q) * 0x10000u)
#define FZ_MAX_RECORDS 256
#define FZ_MAX_PEERS 16
#define FZ_MAX_RECONNECTS 8

/* ---- fake device ---------------------------------------------------- */

struct fz_dev {
	struct virtio_device vdev;
	struct virtqueue vqs[FZ_MAX_QUEUES];
	uint8_t config[FZ_CONFIG_SIZE];
	unsigned notifies;
	bool mq;                       /* FZ_MQ_PAIRS pairs and a control queue */
};

static struct vq_chain fz_chain;

static struct fz_dev *to_fz(struct virtio_device *dev)
{
	return container_of(dev, struct fz_dev, vdev);
}

static uint64_t fz_features(struct virtio_device *dev)
{
	uint64_t mq = (1ull << FZ_F_CTRL_VQ) | (1ull << FZ_F_MQ);

	return (1ull << VIRTIO_F_VERSION_1) | (1ull << 28) | (1ull << 29) | 1 |
	       (to_fz(dev)->mq ? mq : 0);
}

/* As virtio-net: 2 queues per pair in use, and the control queue. */
static int fz_set_features(struct virtio_device *dev, uint64_t features)
{
	if (to_fz(dev)->mq)
		dev->num_queues = 2 * (features & (1ull << FZ_F_MQ) ? FZ_MQ_PAIRS : 1) +
				  !!(features & (1ull << FZ_F_CTRL_VQ));
	return 0;
}

static void fz_config_read(struct virtio_device *dev, void *config)
{
	memcpy(config, to_fz(dev)->config, FZ_CONFIG_SIZE);
}

static void fz_config_write(struct virtio_device *dev, uint32_t offset, const void *data,
			    uint32_t len)
{
	memcpy(to_fz(dev)->config + offset, data, len);
}

static int fz_activate(struct virtio_device *dev)
{
	return 0;
}

static void fz_queue_notify(struct virtio_device *dev, unsigned q)
{
	struct fz_dev *f = to_fz(dev);
	struct virtqueue *vq = &f->vqs[q];
	enum vq_pop_result r;
	unsigned budget = 64;

	/* The transport notifies started queues only. */
	if (q >= dev->num_queues || !vq->started)
		abort();
	f->notifies++;
	while (budget-- && ((r = vq_pop(vq, &fz_chain)) == VQ_POP_OK || r == VQ_POP_BAD_CHAIN))
		vq_push(vq, fz_chain.head, 0);
	vq_publish(vq);
	/* Interrupt every time, and now and then announce a config change,
	 * so both transport paths run under fuzzed state. */
	dev->transport->ops->signal_used(dev->transport, q);
	if (f->notifies % 7 == 0)
		dev->transport->ops->signal_config(dev->transport);
}

static void fz_reset(struct virtio_device *dev)
{
}

static const struct virtio_device_ops fz_ops = {
	.name = "fuzz",
	.device_id = 1,
	.config_size = FZ_CONFIG_SIZE,
	.features = fz_features,
	.set_features = fz_set_features,
	.config_read = fz_config_read,
	.config_write = fz_config_write,
	.activate = fz_activate,
	.queue_notify = fz_queue_notify,
	.reset = fz_reset,
};

/* ---- harness state ---------------------------------------------------- */

struct fz {
	struct event_loop loop;
	struct vhost_user_server srv;
	struct fz_dev dev;
	int conn_peer;                 /* front-end end of the connection */
	int peers[FZ_MAX_PEERS];       /* back-end channels, call sockets, kick copies */
	unsigned npeers;
	int memfd;
	uint8_t *mem;
	unsigned reconnects;
};

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static uint8_t in_u8(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t in_u16(struct fz_in *in)
{
	uint16_t lo = in_u8(in);
	return (uint16_t)(lo | in_u8(in) << 8);
}

/* For a leak report: what is open now. */
static void print_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[64], target[256];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
		}
	}
	if (d)
		closedir(d);
}

static void keep_peer(struct fz *z, int fd)
{
	if (z->npeers < FZ_MAX_PEERS)
		z->peers[z->npeers++] = fd;
	else
		close(fd);
}

/* Read and discard whatever the server sent on @fd (replies, calls). */
static void drain(int fd)
{
	char buf[512];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void drain_all(struct fz *z)
{
	if (z->conn_peer >= 0)
		drain(z->conn_peer);
	for (unsigned i = 0; i < z->npeers; i++)
		drain(z->peers[i]);
}

static void connect_fresh(struct fz *z)
{
	int sp[2];

	if (z->conn_peer >= 0)
		close(z->conn_peer);
	z->conn_peer = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return;
	z->conn_peer = sp[0];
	vhost_user_server_adopt(&z->srv, sp[1]);
}

enum fz_fd_kind { FZ_FD_AUTO, FZ_FD_EVENT, FZ_FD_MEM, FZ_FD_SOCK };

/* An fd of @kind for the server; the harness keeps its own end or copy. */
static int make_fd(struct fz *z, enum fz_fd_kind kind)
{
	int sp[2], fd;

	switch (kind) {
	case FZ_FD_MEM:
		return dup(z->memfd);
	case FZ_FD_SOCK:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
			return -1;
		keep_peer(z, sp[0]);
		return sp[1];
	default:
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd >= 0)
			keep_peer(z, dup(fd));
		return fd;
	}
}

static enum fz_fd_kind auto_kind(uint32_t request, unsigned sel)
{
	switch (request) {
	case VHOST_USER_SET_MEM_TABLE:
		return FZ_FD_MEM;
	case VHOST_USER_SET_BACKEND_REQ_FD:
		return FZ_FD_SOCK;
	case VHOST_USER_SET_VRING_CALL:
		return sel & 1 ? FZ_FD_SOCK : FZ_FD_EVENT;
	default:
		return FZ_FD_EVENT;
	}
}

/* Send one message; reconnect when it ended the connection. */
static void send_msg(struct fz *z, uint32_t request, uint32_t flags, const void *payload,
		     uint32_t size, int *fds, unsigned nfds)
{
	struct vhost_user_hdr hdr = { .request = request, .flags = flags, .size = size };

	vhost_user_handle_msg(&z->srv, &hdr, payload, fds, nfds);
	drain_all(z);
	if (!vhost_user_server_connected(&z->srv) && z->reconnects++ < FZ_MAX_RECONNECTS)
		connect_fresh(z);
}

static void send_u64(struct fz *z, uint32_t request, uint64_t v, enum fz_fd_kind kind)
{
	int fd = kind == FZ_FD_AUTO ? -1 : make_fd(z, kind);
	send_msg(z, request, VHOST_USER_VERSION | VHOST_USER_FLAG_NEED_REPLY, &v, sizeof(v),
		 &fd, fd >= 0 ? 1 : 0);
}

static void send_state(struct fz *z, uint32_t request, uint32_t index, uint32_t num)
{
	struct vhost_vring_state st = { .index = index, .num = num };
	send_msg(z, request, VHOST_USER_VERSION | VHOST_USER_FLAG_NEED_REPLY, &st, sizeof(st),
		 NULL, 0);
}

/* A valid handshake: UML's order with in-band notifications, or fds. A
 * two-pair device gets every ring set up and only pair 0 enabled. */
static void prologue(struct fz *z, bool inband)
{
	uint64_t pf = VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(BACKEND_REQ) |
		      VHOST_USER_PF(CONFIG) | (inband ? VHOST_USER_PF(INBAND_NOTIFICATIONS) : 0);
	uint64_t nofd = inband ? VHOST_USER_VRING_NOFD_MASK : 0;
	int fd;

	send_msg(z, VHOST_USER_SET_OWNER, VHOST_USER_VERSION, NULL, 0, NULL, 0);
	send_u64(z, VHOST_USER_SET_PROTOCOL_FEATURES, pf, FZ_FD_AUTO);
	fd = make_fd(z, FZ_FD_SOCK);
	send_msg(z, VHOST_USER_SET_BACKEND_REQ_FD, VHOST_USER_VERSION, NULL, 0, &fd, 1);
	send_u64(z, VHOST_USER_SET_FEATURES,
		 fz_features(&z->dev.vdev) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES), FZ_FD_AUTO);

	struct vhost_user_memory m = { .nregions = 1 };
	m.regions[0] = (struct vhost_user_mem_region){
		.gpa = FZ_MEM_START, .size = FZ_MEM_SIZE - FZ_MEM_START,
		.uva = FZ_MEM_START, .mmap_offset = FZ_MEM_START,
	};
	fd = make_fd(z, FZ_FD_MEM);
	send_msg(z, VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, &m, 72, &fd, 1);

	unsigned rings = z->dev.mq ? 2 * FZ_MQ_PAIRS : FZ_QUEUES;

	for (unsigned q = 0; q < rings; q++) {
		struct vhost_vring_addr a = {
			.index = q, .desc_user_addr = FZ_RING(q),
			.avail_user_addr = FZ_RING(q) + 0x1000,
			.used_user_addr = FZ_RING(q) + 0x2000,
		};
		send_u64(z, VHOST_USER_SET_VRING_CALL, q | nofd, inband ? FZ_FD_AUTO : FZ_FD_EVENT);
		send_state(z, VHOST_USER_SET_VRING_NUM, q, 256);
		send_state(z, VHOST_USER_SET_VRING_BASE, q, 0);
		send_msg(z, VHOST_USER_SET_VRING_ADDR, VHOST_USER_VERSION, &a, sizeof(a), NULL, 0);
	}
	for (unsigned q = 0; q < rings; q++) {
		send_u64(z, VHOST_USER_SET_VRING_KICK, q | nofd, inband ? FZ_FD_AUTO : FZ_FD_EVENT);
		send_state(z, VHOST_USER_SET_VRING_ENABLE, q, q < 2);
	}
}

static const uint32_t fz_requests[] = {
	1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 21, 24, 25, 35,
	0, 6, 7, 19, 20, 22, 23, 34, 36, 37, 40, 41, 1000,
};

/*
 * One record. op < 0xf0: a message whose request is fz_requests[op % N],
 * then u8 flags selector, u16 size selector, u8 fd spec (count in bits 0-2
 * or, with bit 7, what the table expects; kind in bits 3-4), then the
 * payload bytes. 0xf0: raw request id (u32). 0xfc: raw bytes on the
 * socket (u16 length, u8 fd spec: count in bits 0-3, kind in bits 4-5, then
 * the bytes), read by the server's framing code. 0xfd:
 * poke guest memory (u16 offset in 16-byte units, u8 len, bytes). 0xfe:
 * write every kick copy and run the loop. 0xff: signal used / config.
 */
/* Mostly sizes the table allows for @request, sometimes anything. */
static uint32_t pick_size(uint32_t request, uint16_t sel)
{
	const struct vhost_user_req_rule *rule = vhost_user_req_rule(request);

	if (sel >= 0xf000 || !rule)
		return sel & 0x1fff;
	return rule->min_size + sel % (rule->max_size - rule->min_size + 1);
}

/* The fd count the table expects for this payload. */
static unsigned expected_fds(uint32_t request, const uint8_t *payload, uint32_t size)
{
	const struct vhost_user_req_rule *rule = vhost_user_req_rule(request);
	uint64_t u64 = 0;
	uint32_t n = 0;

	memcpy(&u64, payload, MIN(size, sizeof(u64)));
	memcpy(&n, payload, MIN(size, sizeof(n)));
	if (!rule)
		return 0;
	switch (rule->fds) {
	case VU_FDS_ONE:
		return 1;
	case VU_FDS_UNLESS_NOFD:
		return u64 & VHOST_USER_VRING_NOFD_MASK ? 0 : 1;
	case VU_FDS_PER_REGION:
		return MIN(n, 8u);
	default:
		return 0;
	}
}

static void fz_message(struct fz *z, struct fz_in *in, uint32_t request)
{
	static uint8_t payload[8192];
	uint8_t fsel = in_u8(in);
	uint32_t flags = fsel & 0x80 ? (uint32_t)(fsel & 0x1f)
				     : VHOST_USER_VERSION | (fsel & VHOST_USER_FLAG_NEED_REPLY);
	uint32_t size = pick_size(request, in_u16(in));
	uint8_t fdspec = in_u8(in);
	unsigned nfds;
	int fds[8];

	memset(payload, 0, size);
	for (uint32_t i = 0; i < size && in->n; i++)
		payload[i] = in_u8(in);
	nfds = fdspec & 0x80 ? expected_fds(request, payload, size) : fdspec & 7u;
	for (unsigned i = 0; i < nfds; i++) {
		enum fz_fd_kind kind = (enum fz_fd_kind)((fdspec >> 3) & 3);
		fds[i] = make_fd(z, kind == FZ_FD_AUTO ? auto_kind(request, fdspec >> 5) : kind);
		if (fds[i] < 0)
			nfds = i;
	}
	send_msg(z, request, flags, payload, size, fds, nfds);
}

static void fz_poke(struct fz *z, struct fz_in *in)
{
	size_t off = (size_t)in_u16(in) * 16 % FZ_MEM_SIZE;
	size_t len = in_u8(in);

	for (size_t i = 0; i < len && in->n && off + i < FZ_MEM_SIZE; i++)
		z->mem[off + i] = in_u8(in);
}

static void fz_kick_all(struct fz *z)
{
	uint64_t one = 1;

	/* MSG_NOSIGNAL: the server may have closed its end; a SIGPIPE here
	 * would be the harness's fault. Eventfds take a plain write. */
	for (unsigned i = 0; i < z->npeers; i++) {
		if (send(z->peers[i], &one, sizeof(one), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno == ENOTSOCK && write(z->peers[i], &one, sizeof(one)) < 0)
			continue;
	}
	for (int i = 0; i < 4; i++)
		event_loop_once(&z->loop, 0);
	drain_all(z);
}

/* Raw bytes (and fds) on the socket, read by the server's own framing code
 * through the event loop, as a real front-end's would be. */
static void fz_raw(struct fz *z, struct fz_in *in)
{
	uint8_t buf[512];
	size_t len = in_u16(in) % sizeof(buf);
	uint8_t fdspec = in_u8(in);
	unsigned nfds = fdspec & 15;
	int fds[15];

	for (size_t i = 0; i < len; i++)
		buf[i] = in_u8(in);
	for (unsigned i = 0; i < nfds; i++) {
		fds[i] = make_fd(z, (enum fz_fd_kind)((fdspec >> 4) & 3));
		if (fds[i] < 0)
			nfds = i;
	}
	/* At least one byte: fds cannot travel alone. */
	if (z->conn_peer >= 0 && vhost_user_server_connected(&z->srv))
		vfe_sendmsg_fds(z->conn_peer, buf, len ? len : 1, fds, nfds);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	for (int i = 0; i < 4; i++)
		event_loop_once(&z->loop, 0);
	drain_all(z);
	if (!vhost_user_server_connected(&z->srv) && z->reconnects++ < FZ_MAX_RECONNECTS)
		connect_fresh(z);
}

/* The ring's state agrees with the device's: see check_rings. */
static bool ring_consistent(const struct fz *z, unsigned q)
{
	const struct vhost_user_vring *vr = &z->srv.vrings[q];
	const struct virtio_device *dev = &z->dev.vdev;
	bool running = vr->state == VU_RING_RUNNING;
	bool ready = vr->have == VU_RING_HAVE_ALL &&
		     (vr->state == VU_RING_STARTED_ENABLED || running);

	if (vr->kick_fd >= 0 && vr->state < VU_RING_STARTED)
		return false;
	if (q >= dev->num_queues)
		return !running && !dev->vqs[q].started;
	if (running != dev->vqs[q].started || (running && !dev->active))
		return false;
	/* Running: on every ready ring, the first pair among them. */
	return !dev->active || (running == ready && (q >= 2 || running));
}

/*
 * The ring state machine's invariants: a ring is RUNNING exactly when the
 * device is active and its queue started; an active device runs on every
 * ready ring below num_queues, the first pair always, on no ring above;
 * and a ring holding a kick fd has started. Aborts on a violation.
 */
static void check_rings(const struct fz *z)
{
	if (!vhost_user_server_connected(&z->srv))
		return;
	for (unsigned q = 0; q < vu_ring_count(&z->srv); q++) {
		const struct vhost_user_vring *vr = &z->srv.vrings[q];

		if (!ring_consistent(z, q)) {
			fprintf(stderr, "ring %u: state %d, have %u, kick fd %d, device %s\n", q,
				vr->state, vr->have, vr->kick_fd,
				z->dev.vdev.active ? "active" : "inactive");
			abort();
		}
	}
}

static void fz_record(struct fz *z, struct fz_in *in)
{
	uint8_t op = in_u8(in);
	uint8_t q;

	if (op < 0xf0) {
		fz_message(z, in, fz_requests[op % ARRAY_SIZE(fz_requests)]);
		return;
	}
	switch (op) {
	case 0xf0: {
		uint32_t lo = in_u16(in);
		fz_message(z, in, lo | (uint32_t)in_u16(in) << 16);
		break;
	}
	case 0xfc:
		fz_raw(z, in);
		break;
	case 0xfd:
		fz_poke(z, in);
		break;
	case 0xfe:
		fz_kick_all(z);
		break;
	default:
		q = in_u8(in);
		if (z->dev.vdev.transport) {
			z->dev.vdev.transport->ops->signal_used(z->dev.vdev.transport, q);
			z->dev.vdev.transport->ops->signal_config(z->dev.vdev.transport);
		}
		drain_all(z);
		break;
	}
}

static int fz_setup(struct fz *z, bool mq)
{
	memset(z, 0, sizeof(*z));
	z->conn_peer = -1;
	z->memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (z->memfd < 0 || ftruncate(z->memfd, FZ_MEM_SIZE) < 0)
		return -1;
	z->mem = mmap(NULL, FZ_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, z->memfd, 0);
	if (z->mem == MAP_FAILED)
		return -1;
	z->dev.vdev.ops = &fz_ops;
	z->dev.vdev.vqs = z->dev.vqs;
	z->dev.mq = mq;
	z->dev.vdev.num_queues = mq ? FZ_MAX_QUEUES : FZ_QUEUES;
	z->dev.vdev.max_queues = mq ? FZ_MAX_QUEUES : 0;
	for (unsigned q = 0; q < FZ_MAX_QUEUES; q++)
		vq_reset(&z->dev.vqs[q]);
	if (event_loop_init(&z->loop) < 0)
		return -1;
	if (vhost_user_server_init(&z->srv, &z->dev.vdev, &z->loop, NULL, NULL) < 0)
		return -1;
	connect_fresh(z);
	return 0;
}

static void fz_teardown(struct fz *z)
{
	vhost_user_server_destroy(&z->srv);
	event_loop_destroy(&z->loop);
	if (z->conn_peer >= 0)
		close(z->conn_peer);
	for (unsigned i = 0; i < z->npeers; i++)
		close(z->peers[i]);
	munmap(z->mem, FZ_MEM_SIZE);
	close(z->memfd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz z;
	struct fz_in in = { .p = data, .n = size };
	int before = vfe_count_fds();

	log_threshold = LOG_ERROR;
	uint8_t mode = in_u8(&in);
	if (fz_setup(&z, mode & 4) < 0)
		abort();   /* the harness itself, not the input */
	if (mode & 1)
		prologue(&z, mode & 2);
	check_rings(&z);
	for (unsigned i = 0; i < FZ_MAX_RECORDS && in.n; i++) {
		fz_record(&z, &in);
		check_rings(&z);
	}
	fz_teardown(&z);
	int after = vfe_count_fds();
	if (after != before) {
		fprintf(stderr, "fd leak: %d open before, %d after\n", before, after);
		print_fds();
		abort();
	}
	return 0;
}
