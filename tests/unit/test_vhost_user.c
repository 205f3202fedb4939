/*
 * vhost-user server tests: a front-end written here drives the server over a
 * real unix socket with SCM_RIGHTS fds (memfd guest memory, eventfd or
 * socketpair notifications), against a small fake device.
 *
 * Covered: the UML 6.1 boot and halt sequence with in-band notifications,
 * QEMU-style eventfd kicks and calls, every validation failure, reply flags,
 * GET_CONFIG size echo, ring stop/restart, memory table replacement,
 * disconnect then a second front-end, listener errors, and no fd leaks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include "check.h"
#include "core/compiler.h"
#include "core/log.h"
#include "transport/vhost_user.h"

/* ---- fake device ---------------------------------------------------- */

#define FAKE_QUEUES 2
#define FAKE_CONFIG_SIZE 16
#define FAKE_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << 5))

struct fake_dev {
	struct virtio_device vdev;
	struct virtqueue vqs[FAKE_QUEUES];
	uint8_t config[FAKE_CONFIG_SIZE];
	uint64_t acked;
	unsigned activations, resets, notifies[FAKE_QUEUES];
	unsigned chains[FAKE_QUEUES];
	/* Answer what is available while resetting, as a device whose worker
	 * threads finish their requests before reset returns. */
	bool drain_on_reset;
	/* Queue 1 exists only with feature bit 5 (as virtio-fs's notification
	 * queue with VIRTIO_FS_F_NOTIFICATION): max_queues is set. */
	bool queue_per_feature;
};

static struct vq_chain fake_chain;

static struct fake_dev *to_fake(struct virtio_device *dev)
{
	return container_of(dev, struct fake_dev, vdev);
}

static uint64_t fake_features(struct virtio_device *dev)
{
	return FAKE_FEATURES;
}

static int fake_set_features(struct virtio_device *dev, uint64_t features)
{
	to_fake(dev)->acked = features;
	if (to_fake(dev)->queue_per_feature)
		dev->num_queues = features & (1ull << 5) ? 2 : 1;
	return 0;
}

static void fake_config_read(struct virtio_device *dev, void *config)
{
	memcpy(config, to_fake(dev)->config, FAKE_CONFIG_SIZE);
}

static void fake_config_write(struct virtio_device *dev, uint32_t offset, const void *data,
			      uint32_t len)
{
	memcpy(to_fake(dev)->config + offset, data, len);
}

static int fake_activate(struct virtio_device *dev)
{
	to_fake(dev)->activations++;
	return 0;
}

/* Complete every available chain with length 0 and interrupt. */
static void fake_queue_notify(struct virtio_device *dev, unsigned q)
{
	struct fake_dev *f = to_fake(dev);
	struct virtqueue *vq = &f->vqs[q];
	enum vq_pop_result r;
	bool any = false;

	f->notifies[q]++;
	while ((r = vq_pop(vq, &fake_chain)) == VQ_POP_OK || r == VQ_POP_BAD_CHAIN) {
		vq_push(vq, fake_chain.head, 0);
		f->chains[q]++;
		any = true;
	}
	if (any && vq_publish(vq))
		dev->transport->ops->signal_used(dev->transport, q);
}

static void fake_queue_notify(struct virtio_device *dev, unsigned q);

static void fake_reset(struct virtio_device *dev)
{
	struct fake_dev *f = to_fake(dev);

	f->resets++;
	for (unsigned q = 0; f->drain_on_reset && q < FAKE_QUEUES; q++)
		fake_queue_notify(dev, q);
}

static const struct virtio_device_ops fake_ops = {
	.name = "fake",
	.device_id = 1,
	.config_size = FAKE_CONFIG_SIZE,
	.features = fake_features,
	.set_features = fake_set_features,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.queue_notify = fake_queue_notify,
	.reset = fake_reset,
};

static void fake_init(struct fake_dev *f)
{
	memset(f, 0, sizeof(*f));
	f->vdev.ops = &fake_ops;
	f->vdev.vqs = f->vqs;
	f->vdev.num_queues = FAKE_QUEUES;
	for (unsigned i = 0; i < FAKE_CONFIG_SIZE; i++)
		f->config[i] = (uint8_t)(0xa0 + i);
	for (unsigned q = 0; q < FAKE_QUEUES; q++)
		vq_reset(&f->vqs[q]);
}

/* ---- the test front-end --------------------------------------------- */

/* Guest memory as UML lays it out: one file, guest address == file offset
 * == front-end address, starting above zero. */
#define MEM_FILE_SIZE  (2u << 20)
#define MEM_START      0x1000u
#define RING_NUM       256u
#define RING_GPA(q)    (0x10000u + (q) * 0x10000u)
#define DESC_GPA(q)    RING_GPA(q)
#define AVAIL_GPA(q)   (RING_GPA(q) + 0x1000u)
#define USED_GPA(q)    (RING_GPA(q) + 0x2000u)
#define BUF_GPA        0x80000u

#define NEED_REPLY (VHOST_USER_VERSION | VHOST_USER_FLAG_NEED_REPLY)
#define NO_REPLY   VHOST_USER_VERSION
#define NOFD       VHOST_USER_VRING_NOFD_MASK
#define PF_UML     (VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(BACKEND_REQ) | \
		    VHOST_USER_PF(CONFIG) | VHOST_USER_PF(INBAND_NOTIFICATIONS))

struct fe {
	struct event_loop loop;
	struct vhost_user_server srv;
	struct fake_dev dev;
	char dir[64];
	char path[128];
	int sock;              /* the front-end's end of the connection */
	int backend;           /* the front-end's end of the back-end channel */
	int memfd;
	uint8_t *mem;          /* the whole file, mapped */
	int kick[FAKE_QUEUES]; /* front-end copies of eventfd kicks */
	int call[FAKE_QUEUES]; /* front-end ends of call fds */
};

struct fe_reply {
	struct vhost_user_hdr hdr;
	union vhost_user_payload p;
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3;   /* ".", ".." and the directory's own fd */
}

static void fe_pump(struct fe *f)
{
	for (int i = 0; i < 100; i++) {
		if (event_loop_once(&f->loop, 0) <= 0)
			break;
	}
}

static int fe_send(struct fe *f, uint32_t req, uint32_t flags, const void *payload,
		   uint32_t size, const int *fds, unsigned nfds)
{
	struct vhost_user_hdr hdr = { .request = req, .flags = flags, .size = size };
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} ctrl;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };

	if (nfds) {
		mh.msg_control = ctrl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n = sendmsg(f->sock, &mh, MSG_NOSIGNAL);
	return n == (ssize_t)(sizeof(hdr) + size) ? 0 : -1;
}

/* 1: a message was read, 0: none waiting, -1: the peer closed. */
static int recv_msg(int sock, struct fe_reply *r)
{
	memset(r, 0, sizeof(*r));
	ssize_t n = recv(sock, &r->hdr, sizeof(r->hdr), MSG_DONTWAIT);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n != sizeof(r->hdr))
		return -1;
	if (r->hdr.size > sizeof(r->p))
		return -1;
	if (r->hdr.size && recv(sock, &r->p, r->hdr.size, MSG_DONTWAIT) != (ssize_t)r->hdr.size)
		return -1;
	return 1;
}

static int fe_call(struct fe *f, uint32_t req, uint32_t flags, const void *payload,
		   uint32_t size, const int *fds, unsigned nfds, struct fe_reply *r)
{
	if (fe_send(f, req, flags, payload, size, fds, nfds) < 0)
		return -1;
	fe_pump(f);
	return recv_msg(f->sock, r);
}

/* Send with NEED_REPLY; returns the ack status, or -1 without a proper ack. */
static long long fe_ack(struct fe *f, uint32_t req, const void *payload, uint32_t size,
			const int *fds, unsigned nfds)
{
	struct fe_reply r;

	if (fe_call(f, req, NEED_REPLY, payload, size, fds, nfds, &r) != 1)
		return -1;
	if (r.hdr.flags != VHOST_USER_REPLY_FLAGS || r.hdr.request != req ||
	    r.hdr.size != sizeof(uint64_t))
		return -1;
	return (long long)r.p.u64;
}

/* Send without NEED_REPLY; 0 when no reply came and the connection lives. */
static int fe_quiet(struct fe *f, uint32_t req, const void *payload, uint32_t size,
		    const int *fds, unsigned nfds)
{
	struct fe_reply r;

	return fe_call(f, req, NO_REPLY, payload, size, fds, nfds, &r);
}

/* Read a u64 reply to a GET_* request; UINT64_MAX on any flaw. */
static uint64_t fe_get_u64(struct fe *f, uint32_t req)
{
	struct fe_reply r;

	if (fe_call(f, req, NO_REPLY, NULL, 0, NULL, 0, &r) != 1 ||
	    r.hdr.flags != VHOST_USER_REPLY_FLAGS || r.hdr.request != req ||
	    r.hdr.size != sizeof(uint64_t))
		return UINT64_MAX;
	return r.p.u64;
}

static bool fe_closed(struct fe *f)
{
	struct fe_reply r;

	fe_pump(f);
	return recv_msg(f->sock, &r) < 0;
}

static int fe_connect(struct fe *f)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	strcpy(addr.sun_path, f->path);
	f->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->sock < 0 || connect(f->sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -1;
	fe_pump(f);
	return vhost_user_server_connected(&f->srv) ? 0 : -1;
}

static void fe_close_peer_fds(struct fe *f)
{
	if (f->sock >= 0)
		close(f->sock);
	if (f->backend >= 0)
		close(f->backend);
	f->sock = f->backend = -1;
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		if (f->kick[q] >= 0)
			close(f->kick[q]);
		if (f->call[q] >= 0)
			close(f->call[q]);
		f->kick[q] = f->call[q] = -1;
	}
}

/* Server listening in a fresh directory, front-end connected, guest memory
 * ready (not yet sent). */
static int fe_setup(struct fe *f, const struct vhost_user_opts *opts)
{
	memset(f, 0, sizeof(*f));
	f->sock = f->backend = f->memfd = -1;
	for (unsigned q = 0; q < FAKE_QUEUES; q++)
		f->kick[q] = f->call[q] = -1;
	strcpy(f->dir, "/tmp/kvmini-vu-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vu.sock", f->dir);
	fake_init(&f->dev);
	if (event_loop_init(&f->loop) < 0)
		return -1;
	if (vhost_user_server_init(&f->srv, &f->dev.vdev, &f->loop, f->path, opts) < 0)
		return -1;
	f->memfd = memfd_create("guest", MFD_CLOEXEC);
	if (f->memfd < 0 || ftruncate(f->memfd, MEM_FILE_SIZE) < 0)
		return -1;
	f->mem = mmap(NULL, MEM_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->mem == MAP_FAILED)
		return -1;
	return fe_connect(f);
}

static void fe_teardown(struct fe *f)
{
	fe_close_peer_fds(f);
	vhost_user_server_destroy(&f->srv);
	event_loop_destroy(&f->loop);
	if (f->mem && f->mem != MAP_FAILED)
		munmap(f->mem, MEM_FILE_SIZE);
	if (f->memfd >= 0)
		close(f->memfd);
	rmdir(f->dir);
}

/* ---- message builders ------------------------------------------------ */

struct mem_msg {
	uint32_t nregions, padding;
	struct vhost_user_mem_region regions[8];
};

/* UML's layout: room for two regions, one used: 72 bytes. */
static long long fe_set_mem_uml(struct fe *f)
{
	struct mem_msg m = { .nregions = 1 };

	m.regions[0] = (struct vhost_user_mem_region){
		.gpa = MEM_START, .size = MEM_FILE_SIZE - MEM_START,
		.uva = MEM_START, .mmap_offset = MEM_START,
	};
	return fe_ack(f, VHOST_USER_SET_MEM_TABLE, &m, 72, &f->memfd, 1);
}

static long long fe_state(struct fe *f, uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_vring_state st = { .index = index, .num = num };
	return fe_ack(f, req, &st, sizeof(st), NULL, 0);
}

static long long fe_addr(struct fe *f, unsigned q, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct vhost_vring_addr a = {
		.index = q, .desc_user_addr = desc, .avail_user_addr = avail,
		.used_user_addr = used, .log_guest_addr = ~0ull,
	};
	return fe_ack(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static long long fe_u64_fd(struct fe *f, uint32_t req, uint64_t value, int fd)
{
	if (fd < 0)
		return fe_ack(f, req, &value, sizeof(value), NULL, 0);
	return fe_ack(f, req, &value, sizeof(value), &fd, 1);
}

static long long fe_u64(struct fe *f, uint32_t req, uint64_t value)
{
	return fe_ack(f, req, &value, sizeof(value), NULL, 0);
}

/* UML's boot sequence up to SET_FEATURES, acks on. */
static void uml_negotiate(struct fe *f)
{
	CHECK_EQ(fe_quiet(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	uint64_t features = fe_get_u64(f, VHOST_USER_GET_FEATURES);
	CHECK_EQ(features, FAKE_FEATURES | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	uint64_t pf = fe_get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES);
	CHECK_EQ(pf, VHOST_USER_PROTOCOL_FEATURES_SUPPORTED);
	CHECK_EQ(pf, 0x4229);
	/* UML asks for an ack on SET_PROTOCOL_FEATURES already. */
	CHECK_EQ(fe_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, pf & PF_UML), 0);
	int sp[2];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	CHECK_EQ(fe_ack(f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sp[1], 1), 0);
	close(sp[1]);
	f->backend = sp[0];
	CHECK_EQ(fe_u64(f, VHOST_USER_SET_FEATURES,
			FAKE_FEATURES | (1ull << VHOST_USER_F_PROTOCOL_FEATURES)), 0);
	CHECK_EQ(f->dev.acked, FAKE_FEATURES);
}

static void ring_setup(struct fe *f, unsigned q)
{
	CHECK_EQ(fe_state(f, VHOST_USER_SET_VRING_NUM, q, RING_NUM), 0);
	CHECK_EQ(fe_state(f, VHOST_USER_SET_VRING_BASE, q, 0), 0);
	CHECK_EQ(fe_addr(f, q, DESC_GPA(q), AVAIL_GPA(q), USED_GPA(q)), 0);
}

/* UML's probe sequence with in-band notifications: no kick or call fds. */
static void uml_start_inband(struct fe *f)
{
	uml_negotiate(f);
	CHECK_EQ(fe_set_mem_uml(f), 0);
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		CHECK_EQ(fe_u64_fd(f, VHOST_USER_SET_VRING_CALL, q | NOFD, -1), 0);
		ring_setup(f, q);
	}
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		CHECK_EQ(fe_u64_fd(f, VHOST_USER_SET_VRING_KICK, q | NOFD, -1), 0);
		CHECK(!f->dev.vdev.active);
		CHECK_EQ(fe_state(f, VHOST_USER_SET_VRING_ENABLE, q, 1), 0);
	}
}

/* Make one chain of one buffer available on ring @q (driver side). */
static void guest_offer(struct fe *f, unsigned q)
{
	struct vring_desc *desc = (struct vring_desc *)(f->mem + DESC_GPA(q));
	struct vring_avail *avail = (struct vring_avail *)(f->mem + AVAIL_GPA(q));
	uint16_t idx = avail->idx;
	uint16_t head = idx % RING_NUM;

	desc[head] = (struct vring_desc){ .addr = BUF_GPA, .len = 64, .flags = VRING_DESC_F_WRITE };
	avail->ring[head] = head;
	__atomic_store_n(&avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

static uint16_t guest_used_idx(struct fe *f, unsigned q)
{
	return ((struct vring_used *)(f->mem + USED_GPA(q)))->idx;
}

/* ---- tests ----------------------------------------------------------- */

static void test_uml_boot_inband(void)
{
	struct fe f;
	struct fe_reply r;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	uml_start_inband(&f);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.activations, 1);
	/* Buffers queued before activation are served at activation. */
	CHECK(f.dev.notifies[0] >= 1 && f.dev.notifies[1] >= 1);

	/* Many small config reads; the reply repeats the requested size. */
	struct vhost_user_config cfg = { .offset = 0, .size = 6 };
	CHECK_EQ(fe_call(&f, VHOST_USER_GET_CONFIG, NO_REPLY, &cfg, 12 + 6, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.flags, 0x5);
	CHECK_EQ(r.hdr.size, 12 + 6);
	CHECK_EQ(r.p.config.size, 6);
	CHECK_EQ(r.p.config.data[0], 0xa0);
	CHECK_EQ(r.p.config.data[5], 0xa5);
	cfg = (struct vhost_user_config){ .offset = 10, .size = 2 };
	CHECK_EQ(fe_call(&f, VHOST_USER_GET_CONFIG, NO_REPLY, &cfg, 12 + 2, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.size, 12 + 2);
	CHECK_EQ(r.p.config.offset, 10);
	CHECK_EQ(r.p.config.data[0], 0xaa);

	/* In-band kick, acked, and the used buffer comes back as VRING_CALL. */
	guest_offer(&f, 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_VRING_KICK, 0, 0), 0);
	CHECK_EQ(f.dev.chains[0], 1);
	CHECK_EQ(guest_used_idx(&f, 0), 1);
	CHECK_EQ(recv_msg(f.backend, &r), 1);
	CHECK_EQ(r.hdr.request, VHOST_USER_BACKEND_VRING_CALL);
	CHECK_EQ(r.hdr.flags, VHOST_USER_VERSION);
	CHECK_EQ(r.hdr.size, 8);
	CHECK_EQ(r.p.state.index, 0);
	CHECK_EQ(recv_msg(f.backend, &r), 0);

	/* Config change goes to the back-end channel. */
	f.dev.vdev.transport->ops->signal_config(f.dev.vdev.transport);
	CHECK_EQ(recv_msg(f.backend, &r), 1);
	CHECK_EQ(r.hdr.request, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
	CHECK_EQ(r.hdr.size, 0);

	/* Halt: rings disabled, GET_FEATURES, disconnect. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, 1, 0), 0);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(f.dev.resets, 1);
	CHECK_EQ(f.dev.acked, FAKE_FEATURES);   /* a ring disable keeps the features */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 0), 0);
	CHECK(fe_get_u64(&f, VHOST_USER_GET_FEATURES) != UINT64_MAX);
	fe_close_peer_fds(&f);
	fe_pump(&f);
	CHECK(!vhost_user_server_connected(&f.srv));
	CHECK_EQ(f.dev.vdev.features, 0);
	CHECK(f.dev.vdev.mem == NULL);
	CHECK_EQ(f.srv.mem.nregions, 0);

	/* The next front-end is served from scratch. */
	CHECK_EQ(fe_connect(&f), 0);
	uml_start_inband(&f);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.activations, 2);
	CHECK_EQ(f.srv.counters.connections, 2);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* QEMU-style: no in-band notifications, eventfd kicks and calls. */
static void start_with_fds(struct fe *f, bool socket_calls)
{
	CHECK_EQ(fe_quiet(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(fe_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES,
			VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(MQ)), 0);
	CHECK_EQ(fe_get_u64(f, VHOST_USER_GET_QUEUE_NUM), FAKE_QUEUES);
	/* Without bit 30 acked, rings start enabled (spec "Ring states"). */
	CHECK_EQ(fe_u64(f, VHOST_USER_SET_FEATURES, FAKE_FEATURES), 0);
	CHECK_EQ(fe_set_mem_uml(f), 0);
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		int sp[2], call;
		if (socket_calls) {
			CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
					    0, sp), 0);
			f->call[q] = sp[0];
			call = sp[1];
		} else {
			f->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			call = f->call[q];
		}
		CHECK_EQ(fe_u64_fd(f, VHOST_USER_SET_VRING_CALL, q, call), 0);
		if (socket_calls)
			close(call);
		ring_setup(f, q);
	}
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		f->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		CHECK_EQ(fe_u64_fd(f, VHOST_USER_SET_VRING_KICK, q, f->kick[q]), 0);
	}
}

static void kick(struct fe *f, unsigned q)
{
	uint64_t one = 1;
	CHECK_EQ(write(f->kick[q], &one, sizeof(one)), 8);
	fe_pump(f);
}

static void test_eventfd_kick_call(void)
{
	struct fe f;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	/* A buffer queued before the device is active is not lost. */
	guest_offer(&f, 1);
	start_with_fds(&f, false);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.chains[1], 1);
	uint64_t v = 0;
	CHECK_EQ(read(f.call[1], &v, sizeof(v)), 8);
	CHECK(v >= 1);

	guest_offer(&f, 0);
	unsigned before = f.dev.notifies[0];
	kick(&f, 0);
	CHECK_EQ(f.dev.notifies[0], before + 1);
	CHECK_EQ(f.dev.chains[0], 1);
	CHECK_EQ(read(f.call[0], &v, sizeof(v)), 8);
	CHECK_EQ(f.srv.counters.tx_calls, 2);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* Chains a device answers while it quiesces count in the base GET_VRING_BASE
 * reports: a restart must not see them again. */
static void test_vring_base_after_quiesce(void)
{
	struct fe f;
	struct fe_reply r;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	start_with_fds(&f, false);
	f.dev.drain_on_reset = true;
	guest_offer(&f, 0);        /* no kick: still pending when the ring stops */
	struct vhost_vring_state st = { .index = 0 };
	CHECK_EQ(fe_call(&f, VHOST_USER_GET_VRING_BASE, NO_REPLY, &st, sizeof(st), NULL, 0, &r), 1);
	CHECK_EQ(f.dev.chains[0], 1);
	CHECK_EQ(r.p.state.num, 1);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* A device whose queue count follows the features (virtio-fs with and
 * without its notification queue): before SET_FEATURES every queue may be
 * set up; without the feature only the first exists, the device starts with
 * it alone, the other index is refused; a new front-end sees both again. */
static void test_queue_count_per_features(void)
{
	struct fe f;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	f.dev.queue_per_feature = true;
	f.dev.vdev.max_queues = FAKE_QUEUES;
	CHECK_EQ(fe_quiet(&f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES,
			VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(MQ)), 0);
	CHECK_EQ(fe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), FAKE_QUEUES);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, 1, RING_NUM), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1), 0);
	CHECK_EQ(f.dev.vdev.num_queues, 1);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, 1, RING_NUM), EINVAL);
	CHECK_EQ(fe_set_mem_uml(&f), 0);
	f.call[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(fe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 0, f.call[0]), 0);
	ring_setup(&f, 0);
	f.kick[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_EQ(fe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0, f.kick[0]), 0);
	CHECK(f.dev.vdev.active);
	guest_offer(&f, 0);
	kick(&f, 0);
	CHECK_EQ(f.dev.chains[0], 1);
	/* Disconnect: the device is reset and has room for both again. */
	fe_close_peer_fds(&f);
	fe_pump(&f);
	CHECK(!vhost_user_server_connected(&f.srv));
	CHECK_EQ(f.dev.vdev.num_queues, FAKE_QUEUES);
	CHECK_EQ(fe_connect(&f), 0);
	CHECK_EQ(fe_quiet(&f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_FEATURES, FAKE_FEATURES), 0);
	CHECK_EQ(f.dev.vdev.num_queues, 2);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, 1, RING_NUM), 0);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* A net device answers GET_QUEUE_NUM in queue pairs, as QEMU reads it. */
static void test_queue_num_option(void)
{
	struct fe f;
	struct vhost_user_opts opts = VHOST_USER_OPTS_DEFAULT;
	int base_fds = count_fds();

	opts.queue_num = 1;
	CHECK_EQ(fe_setup(&f, &opts), 0);
	CHECK_EQ(fe_quiet(&f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(MQ)), 0);
	CHECK_EQ(fe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 1);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* UML without in-band notifications: the call "fd" is a socketpair. */
static void test_socketpair_call(void)
{
	struct fe f;
	int base_fds = count_fds();
	uint64_t v = 0;

	CHECK_EQ(fe_setup(&f, NULL), 0);
	start_with_fds(&f, true);
	CHECK(f.dev.vdev.active);
	guest_offer(&f, 0);
	kick(&f, 0);
	CHECK_EQ(recv(f.call[0], &v, sizeof(v), MSG_DONTWAIT), 8);
	CHECK_EQ(v, 1);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* GET_VRING_BASE stops the ring and reports the avail index reached; a new
 * kick fd starts it again. */
static void test_vring_base_stop_restart(void)
{
	struct fe f;
	struct fe_reply r;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	start_with_fds(&f, false);
	guest_offer(&f, 0);
	guest_offer(&f, 0);
	kick(&f, 0);
	CHECK_EQ(f.dev.chains[0], 2);

	struct vhost_vring_state st = { .index = 0 };
	CHECK_EQ(fe_call(&f, VHOST_USER_GET_VRING_BASE, NO_REPLY, &st, sizeof(st), NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.flags, 0x5);
	CHECK_EQ(r.hdr.size, 8);
	CHECK_EQ(r.p.state.index, 0);
	CHECK_EQ(r.p.state.num, 2);
	CHECK(!f.dev.vdev.active);

	/* Stopped: the old kick fd is closed on the server side. */
	guest_offer(&f, 0);
	uint64_t one = 1;
	CHECK_EQ(write(f.kick[0], &one, sizeof(one)), 8);
	fe_pump(&f);
	CHECK_EQ(f.dev.chains[0], 2);

	/* Restart at the base reported. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, 0, 2), 0);
	CHECK_EQ(fe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0, f.kick[0]), 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.chains[0], 3);
	CHECK_EQ(guest_used_idx(&f, 0), 3);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* A new memory table stops the device for the swap and restarts it; a
 * refused one leaves the running table alone. */
static void test_mem_table_replace(void)
{
	struct fe f;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	start_with_fds(&f, false);
	CHECK_EQ(f.dev.activations, 1);
	CHECK_EQ(fe_set_mem_uml(&f), 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.activations, 2);
	CHECK_EQ(f.dev.resets, 1);

	/* Region past the end of its file: refused, device untouched. */
	struct mem_msg m = { .nregions = 1 };
	m.regions[0] = (struct vhost_user_mem_region){
		.gpa = MEM_START, .size = MEM_FILE_SIZE, .uva = MEM_START, .mmap_offset = MEM_START,
	};
	CHECK(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 40, &f.memfd, 1) > 0);
	CHECK(f.dev.vdev.active);
	CHECK_EQ(f.dev.activations, 2);

	/* Moving memory so the rings fall outside: the restart fails, loudly. */
	m.regions[0] = (struct vhost_user_mem_region){
		.gpa = 0x100000, .size = 0x100000, .uva = 0x100000, .mmap_offset = 0x100000,
	};
	CHECK(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 40, &f.memfd, 1) > 0);
	CHECK(!f.dev.vdev.active);
	CHECK_EQ(fe_set_mem_uml(&f), 0);
	CHECK(f.dev.vdev.active);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* Every refusal a front-end can get while the connection survives: the
 * ack carries the errno, fds are closed, nothing changed. */
static void test_validation_acked(void)
{
	struct fe f;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);

	/* Payload sizes. */
	uint32_t four = 4;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_NUM, &four, 4, NULL, 0), EINVAL);
	uint64_t big[2] = { 1, 2 };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_FEATURES, big, 16, NULL, 0), EINVAL);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_OWNER, big, 8, NULL, 0), EINVAL);

	/* Memory tables. */
	struct mem_msg m = { .nregions = 9 };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, sizeof(m), NULL, 0), EINVAL);
	m.nregions = 2;
	m.regions[0] = (struct vhost_user_mem_region){ .gpa = 0x1000, .size = 0x1000 };
	m.regions[1] = (struct vhost_user_mem_region){ .gpa = 0x2000, .size = 0x1000 };
	int two[2] = { dup(f.memfd), dup(f.memfd) };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, two, 2), EINVAL);
	m.nregions = 1;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, NULL, 0), EINVAL);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, two, 2), EINVAL);
	m.regions[0].size = 0;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, two, 1), EINVAL);
	m.regions[0] = (struct vhost_user_mem_region){ .gpa = ~0ull - 0xfff, .size = 0x2000 };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, two, 1), EINVAL);
	int efd = eventfd(0, EFD_CLOEXEC);
	m.regions[0] = (struct vhost_user_mem_region){ .gpa = 0x1000, .size = 0x1000 };
	CHECK(fe_ack(&f, VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, &efd, 1) > 0);   /* not a file */
	close(two[0]);
	close(two[1]);
	close(efd);
	CHECK_EQ(f.srv.mem.nregions, 0);

	/* Ring numbers. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, 0, 100), EINVAL);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, 0, 0), EINVAL);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, 0, 65536), EINVAL);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, 0, 32768), 0);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_BASE, 0, 0x10000), EINVAL);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 2), EINVAL);

	/* Queue indices. */
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_NUM, FAKE_QUEUES, 256), EINVAL);
	CHECK_EQ(fe_state(&f, VHOST_USER_SET_VRING_ENABLE, 0xffffffffu, 1), EINVAL);
	CHECK_EQ(fe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 5 | NOFD, -1), EINVAL);
	CHECK_EQ(fe_u64_fd(&f, VHOST_USER_SET_VRING_CALL, 0x200, -1), EINVAL);   /* undefined bit */

	/* Addresses: no memory yet, then outside it, then misaligned. */
	CHECK_EQ(fe_addr(&f, 0, DESC_GPA(0), AVAIL_GPA(0), USED_GPA(0)), EFAULT);
	CHECK_EQ(fe_set_mem_uml(&f), 0);
	CHECK_EQ(fe_addr(&f, 0, 0xdead00000ull, AVAIL_GPA(0), USED_GPA(0)), EFAULT);
	CHECK_EQ(fe_addr(&f, 0, MEM_FILE_SIZE - 8, AVAIL_GPA(0), USED_GPA(0)), EFAULT);
	CHECK_EQ(fe_addr(&f, 0, DESC_GPA(0) + 8, AVAIL_GPA(0), USED_GPA(0)), EINVAL);
	CHECK_EQ(fe_addr(&f, 0, DESC_GPA(0), AVAIL_GPA(0), USED_GPA(0) + 2), EINVAL);
	CHECK_EQ(fe_addr(&f, 0, DESC_GPA(0), AVAIL_GPA(0), USED_GPA(0)), 0);

	/* File descriptors: missing, extra, wrong kind. */
	CHECK_EQ(fe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0, -1), EINVAL);
	int e1 = eventfd(0, EFD_CLOEXEC);
	int e2 = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(fe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0 | VHOST_USER_VRING_NOFD_MASK, e1),
		 EINVAL);
	int both[2] = { e1, e2 };
	uint64_t q0 = 0;
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_VRING_CALL, &q0, 8, both, 2), EINVAL);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_OWNER, NULL, 0, &e1, 1), EINVAL);
	/* Polling (NOFD kick without in-band kicks) is not served. */
	CHECK_EQ(fe_u64_fd(&f, VHOST_USER_SET_VRING_KICK, 0 | VHOST_USER_VRING_NOFD_MASK, -1),
		 EOPNOTSUPP);
	/* Protocol features not negotiated, not offered, not a socket. */
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &e1, 1), EPERM);
	CHECK_EQ(fe_state(&f, VHOST_USER_VRING_KICK, 0, 0), EPERM);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << 40), EINVAL);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES,
			VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(BACKEND_REQ)), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &e1, 1), EINVAL);
	close(e1);
	close(e2);

	/* Features the device did not offer. */
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_FEATURES, FAKE_FEATURES | (1ull << 3)), EINVAL);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_FEATURES, 1ull << 5), EINVAL);   /* no VERSION_1 */

	/* Unknown requests get a failed ack. */
	uint64_t zero = 0;
	CHECK_EQ(fe_ack(&f, 6 /* SET_LOG_BASE */, &zero, 8, NULL, 0), EOPNOTSUPP);
	CHECK_EQ(fe_ack(&f, 99, NULL, 0, NULL, 0), EOPNOTSUPP);
	CHECK_EQ(fe_ack(&f, 0x7fffffff, NULL, 0, NULL, 0), EOPNOTSUPP);

	CHECK(vhost_user_server_connected(&f.srv));
	CHECK(f.srv.counters.rx_messages_invalid >= 30);
	CHECK_EQ(f.srv.counters.rx_messages_unknown, 3);
	CHECK(f.srv.counters.rx_fds_unused >= 8);
	CHECK(!f.dev.vdev.active);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* In-band calls that find the back-end channel full wait for room (one
 * per ring, later ones coalesce) and go out when the channel drains. */
static void test_backend_backpressure(void)
{
	struct fe f;
	struct fe_reply r;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	uml_start_inband(&f);
	CHECK(f.dev.vdev.active);
	int sp[2], small = 1;
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp), 0);
	CHECK_EQ(setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sp[1], 1), 0);
	close(sp[1]);
	close(f.backend);
	f.backend = sp[0];

	struct virtio_transport *t = f.dev.vdev.transport;
	for (int i = 0; i < 100000 && !f.srv.counters.tx_calls_coalesced; i++)
		t->ops->signal_used(t, 1);
	CHECK(f.srv.counters.tx_calls_coalesced > 0);
	t->ops->signal_config(t);
	uint64_t sent = f.srv.counters.tx_calls;
	unsigned got = 0;
	while (recv_msg(f.backend, &r) == 1) {
		CHECK_EQ(r.hdr.request, VHOST_USER_BACKEND_VRING_CALL);
		CHECK_EQ(r.p.state.index, 1);
		got++;
	}
	CHECK_EQ(got, sent);
	/* Room again: the pending call and the config change go out. */
	fe_pump(&f);
	CHECK_EQ(f.srv.counters.tx_calls, sent + 1);
	CHECK_EQ(f.srv.counters.tx_config_changes, 1);
	unsigned calls = 0, configs = 0;
	while (recv_msg(f.backend, &r) == 1) {
		calls += r.hdr.request == VHOST_USER_BACKEND_VRING_CALL;
		configs += r.hdr.request == VHOST_USER_BACKEND_CONFIG_CHANGE_MSG;
	}
	CHECK_EQ(calls, 1);
	CHECK_EQ(configs, 1);
	CHECK_EQ(f.srv.counters.tx_calls_dropped, 0);

	/* The front-end closing the channel: calls are dropped, counted. */
	close(f.backend);
	f.backend = -1;
	fe_pump(&f);
	t->ops->signal_used(t, 0);
	CHECK_EQ(f.srv.counters.tx_calls_dropped, 1);
	CHECK(vhost_user_server_connected(&f.srv));
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* GET_CONFIG errors are an empty reply (spec), not a disconnect. */
static void test_get_config_errors(void)
{
	struct fe f;
	struct fe_reply r;

	CHECK_EQ(fe_setup(&f, NULL), 0);
	struct vhost_user_config cfg = { .offset = 0, .size = 4 };
	/* CONFIG not negotiated yet. */
	CHECK_EQ(fe_call(&f, VHOST_USER_GET_CONFIG, NO_REPLY, &cfg, 16, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.flags, 0x5);
	CHECK_EQ(r.hdr.size, 0);
	CHECK_EQ(fe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES,
			VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(CONFIG)), 0);
	/* Outside the 16-byte config space. */
	cfg = (struct vhost_user_config){ .offset = 14, .size = 4 };
	CHECK_EQ(fe_call(&f, VHOST_USER_GET_CONFIG, NO_REPLY, &cfg, 16, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.size, 0);
	/* Size field not matching the payload. */
	cfg = (struct vhost_user_config){ .offset = 0, .size = 8 };
	CHECK_EQ(fe_call(&f, VHOST_USER_GET_CONFIG, NO_REPLY, &cfg, 16, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.size, 0);
	/* Whole space: fine. SET_CONFIG writes through the device. */
	cfg = (struct vhost_user_config){ .offset = 0, .size = 16 };
	CHECK_EQ(fe_call(&f, VHOST_USER_GET_CONFIG, NO_REPLY, &cfg, 28, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.size, 28);
	CHECK_EQ(r.p.config.data[15], 0xaf);
	cfg = (struct vhost_user_config){ .offset = 2, .size = 1, .data = { 0x55 } };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_CONFIG, &cfg, 13, NULL, 0), 0);
	CHECK_EQ(f.dev.config[2], 0x55);
	cfg = (struct vhost_user_config){ .offset = 16, .size = 1 };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_CONFIG, &cfg, 13, NULL, 0), EINVAL);
	cfg = (struct vhost_user_config){ .offset = 0, .size = 1, .flags = 7 };
	CHECK_EQ(fe_ack(&f, VHOST_USER_SET_CONFIG, &cfg, 13, NULL, 0), EINVAL);
	CHECK(vhost_user_server_connected(&f.srv));
	fe_teardown(&f);
}

/* Errors that end the connection; the server then takes the next one. */
static void expect_disconnect(const char *what, uint32_t req, uint32_t flags,
			      const void *payload, uint32_t size, bool setup_pf)
{
	struct fe f;
	struct fe_reply r;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	if (setup_pf)
		CHECK_EQ(fe_u64(&f, VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_PF(REPLY_ACK)), 0);
	CHECK_EQ(fe_set_mem_uml(&f), 0);
	int rc = fe_call(&f, req, flags, payload, size, NULL, 0, &r);
	if (rc != -1 && !fe_closed(&f)) {
		fprintf(stderr, "  no disconnect after %s\n", what);
		check_case_failed = 1;
	}
	CHECK(!vhost_user_server_connected(&f.srv));
	CHECK_EQ(f.srv.mem.nregions, 0);
	CHECK_EQ(f.srv.counters.disconnects_error, 1);
	close(f.sock);
	f.sock = -1;
	CHECK_EQ(fe_connect(&f), 0);
	CHECK(fe_get_u64(&f, VHOST_USER_GET_FEATURES) != UINT64_MAX);
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

static void test_validation_disconnects(void)
{
	uint32_t four = 4;
	uint64_t zero = 0;
	uint8_t big[VHOST_USER_PAYLOAD_MAX + 8] = { 0 };
	struct vhost_vring_state st = { .index = 7 };

	expect_disconnect("version 0", VHOST_USER_GET_FEATURES, 0, NULL, 0, false);
	expect_disconnect("version 2", VHOST_USER_GET_FEATURES, 2, NULL, 0, false);
	expect_disconnect("reply bit", VHOST_USER_SET_OWNER, 0x5, NULL, 0, false);
	expect_disconnect("undefined flag", VHOST_USER_SET_OWNER, 0x11, NULL, 0, false);
	expect_disconnect("oversized payload", VHOST_USER_SET_OWNER, NO_REPLY, big,
			  sizeof(big), false);
	/* No ack asked: a refused request cannot be reported otherwise. */
	expect_disconnect("short payload, no ack", VHOST_USER_SET_VRING_NUM, NO_REPLY, &four, 4,
			  true);
	expect_disconnect("unknown request, no ack", 6, NO_REPLY, &zero, 8, true);
	/* A request with its own reply body cannot carry an error. */
	expect_disconnect("GET_VRING_BASE bad index", VHOST_USER_GET_VRING_BASE, NEED_REPLY,
			  &st, 8, true);
	/* Spec "In-band notifications": without BACKEND_REQ and REPLY_ACK. */
	uint64_t inband = VHOST_USER_PF(INBAND_NOTIFICATIONS);
	expect_disconnect("in-band without its companions", VHOST_USER_SET_PROTOCOL_FEATURES,
			  NEED_REPLY, &inband, 8, false);
}

/* Bytes and fds arriving in pieces, several fds with one message (too
 * many is a protocol error), and a message split over two writes. */
static void test_framing(void)
{
	struct fe f;
	int base_fds = count_fds();

	CHECK_EQ(fe_setup(&f, NULL), 0);
	struct vhost_user_hdr hdr = { .request = VHOST_USER_GET_FEATURES, .flags = 1 };
	CHECK_EQ(write(f.sock, &hdr, 5), 5);
	fe_pump(&f);
	CHECK_EQ(write(f.sock, (char *)&hdr + 5, 7), 7);
	fe_pump(&f);
	struct fe_reply r;
	CHECK_EQ(recv_msg(f.sock, &r), 1);
	CHECK_EQ(r.hdr.request, VHOST_USER_GET_FEATURES);
	CHECK_EQ(r.p.u64, FAKE_FEATURES | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));

	/* Nine fds with one message: the connection ends, nothing leaks. */
	int fds[9];
	for (int i = 0; i < 9; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(fe_send(&f, VHOST_USER_SET_OWNER, NO_REPLY, NULL, 0, fds, 9), 0);
	for (int i = 0; i < 9; i++)
		close(fds[i]);
	CHECK(fe_closed(&f));
	CHECK(!vhost_user_server_connected(&f.srv));
	fe_teardown(&f);
	CHECK_EQ(count_fds(), base_fds);
}

/* A server with no listener serves a socket it is handed. */
static void test_adopt(void)
{
	struct event_loop loop;
	struct vhost_user_server srv;
	struct fake_dev dev;
	struct vhost_user_opts opts = VHOST_USER_OPTS_DEFAULT;
	int sp[2];
	int base_fds = count_fds();

	fake_init(&dev);
	opts.protocol_features &= ~VHOST_USER_PF(INBAND_NOTIFICATIONS);
	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, NULL, &opts), 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	CHECK_EQ(vhost_user_server_adopt(&srv, sp[1]), 0);
	CHECK(vhost_user_server_connected(&srv));
	int other = dup(sp[0]);
	CHECK_EQ(vhost_user_server_adopt(&srv, other), -EBUSY);

	struct vhost_user_hdr hdr = { .request = VHOST_USER_GET_PROTOCOL_FEATURES, .flags = 1 };
	CHECK_EQ(write(sp[0], &hdr, sizeof(hdr)), sizeof(hdr));
	event_loop_once(&loop, 100);
	struct fe_reply r;
	CHECK_EQ(recv_msg(sp[0], &r), 1);
	CHECK_EQ(r.p.u64, VHOST_USER_PROTOCOL_FEATURES_SUPPORTED &
			  ~VHOST_USER_PF(INBAND_NOTIFICATIONS));
	close(sp[0]);
	event_loop_once(&loop, 100);
	CHECK(!vhost_user_server_connected(&srv));

	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	vhost_user_server_dump_counters(&srv, out);
	fclose(out);
	CHECK(strstr(text, "vhost_user_connections 1\n") != NULL);
	CHECK(strstr(text, "vhost_user_tx_replies 1\n") != NULL);
	free(text);
	vhost_user_server_destroy(&srv);
	event_loop_destroy(&loop);
	CHECK_EQ(count_fds(), base_fds);
}

static void test_listen_paths(void)
{
	struct event_loop loop;
	struct vhost_user_server srv, srv2;
	struct fake_dev dev;
	char dir[] = "/tmp/kvmini-vu-XXXXXX";
	char path[200], longpath[200];
	int base_fds = count_fds();

	fake_init(&dev);
	CHECK(mkdtemp(dir) != NULL);
	CHECK_EQ(event_loop_init(&loop), 0);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = 0;
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, longpath, NULL), -ENAMETOOLONG);
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, "", NULL), -EINVAL);

	/* A regular file is never removed. */
	snprintf(path, sizeof(path), "%s/file", dir);
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, path, NULL), -EEXIST);
	unlink(path);

	/* A stale socket file is replaced. */
	snprintf(path, sizeof(path), "%s/sock", dir);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_EQ(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, path, NULL), 0);
	/* A live server is not. */
	struct fake_dev dev2;
	fake_init(&dev2);
	CHECK_EQ(vhost_user_server_init(&srv2, &dev2.vdev, &loop, path, NULL), -EADDRINUSE);
	vhost_user_server_destroy(&srv);
	struct stat st;
	CHECK(stat(path, &st) < 0);   /* removed at destroy */

	/* Device shape checks. */
	dev.vdev.num_queues = 0;
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, NULL, NULL), -EINVAL);
	dev.vdev.num_queues = 257;
	CHECK_EQ(vhost_user_server_init(&srv, &dev.vdev, &loop, NULL, NULL), -EINVAL);

	event_loop_destroy(&loop);
	rmdir(dir);
	CHECK_EQ(count_fds(), base_fds);
}

/* The table and the central validator agree with the spec's numbers. */
static void test_table(void)
{
	CHECK_EQ(VHOST_USER_GET_FEATURES, 1);
	CHECK_EQ(VHOST_USER_SET_BACKEND_REQ_FD, 21);
	CHECK_EQ(VHOST_USER_GET_CONFIG, 24);
	CHECK_EQ(VHOST_USER_VRING_KICK, 35);
	CHECK(vhost_user_req_rule(6) == NULL);
	CHECK(vhost_user_req_rule(1000) == NULL);
	CHECK(strcmp(vhost_user_req_name(VHOST_USER_SET_MEM_TABLE), "SET_MEM_TABLE") == 0);
	CHECK(strcmp(vhost_user_req_name(40), "unknown") == 0);
	for (uint32_t id = 0; id < VHOST_USER_REQUEST_LIMIT; id++) {
		const struct vhost_user_req_rule *rule = vhost_user_req_rule(id);
		if (rule)
			CHECK(rule->min_size <= rule->max_size &&
			      rule->max_size <= VHOST_USER_PAYLOAD_MAX);
	}
	struct vhost_user_hdr h = { .request = 1, .flags = 1, .size = VHOST_USER_PAYLOAD_MAX };
	CHECK_EQ(vhost_user_check_header(&h), 0);
	h.size++;
	CHECK_EQ(vhost_user_check_header(&h), -EPROTO);
	h.size = 0;
	h.flags = 1 | VHOST_USER_FLAG_NEED_REPLY;
	CHECK_EQ(vhost_user_check_header(&h), 0);
	h.flags = 3;
	CHECK_EQ(vhost_user_check_header(&h), -EPROTO);
}

int main(void)
{
	log_threshold = LOG_ERROR;   /* refusals are expected here */
	RUN_TEST(test_table);
	RUN_TEST(test_uml_boot_inband);
	RUN_TEST(test_eventfd_kick_call);
	RUN_TEST(test_queue_num_option);
	RUN_TEST(test_queue_count_per_features);
	RUN_TEST(test_socketpair_call);
	RUN_TEST(test_vring_base_stop_restart);
	RUN_TEST(test_vring_base_after_quiesce);
	RUN_TEST(test_mem_table_replace);
	RUN_TEST(test_validation_acked);
	RUN_TEST(test_backend_backpressure);
	RUN_TEST(test_get_config_errors);
	RUN_TEST(test_validation_disconnects);
	RUN_TEST(test_framing);
	RUN_TEST(test_adopt);
	RUN_TEST(test_listen_paths);
	return CHECK_DONE();
}
