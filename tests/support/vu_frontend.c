/*
 * A vhost-user front-end for tests (see vu_frontend.h).
 */
#include "vu_frontend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/compiler.h"

/* A failed step of a sequence: say which, and give up on the sequence. */
#define VFE_TRY(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "  vu_frontend: %s failed (%s:%d)\n", #cond, __FILE__, __LINE__); \
		return -1; \
	} \
} while (0)
#define VFE_TRY_EQ(a, b) VFE_TRY((long long)(a) == (long long)(b))

/* ---- fake device ---------------------------------------------------- */

static struct vq_chain fake_chain;

static struct vfe_dev *to_fake(struct virtio_device *dev)
{
	return container_of(dev, struct vfe_dev, vdev);
}

static uint64_t fake_features(struct virtio_device *dev)
{
	return to_fake(dev)->pairs > 1 ? VFE_MQ_FEATURES : VFE_FEATURES;
}

static int fake_set_features(struct virtio_device *dev, uint64_t features)
{
	struct vfe_dev *f = to_fake(dev);

	f->acked = features;
	if (f->queue_per_feature)
		dev->num_queues = features & (1ull << 5) ? 2 : 1;
	if (f->pairs > 1)
		dev->num_queues = 2 * (features & (1ull << VFE_F_MQ) ? f->pairs : 1) +
				  !!(features & (1ull << VFE_F_CTRL_VQ));
	return 0;
}

static void fake_config_read(struct virtio_device *dev, void *config)
{
	memcpy(config, to_fake(dev)->config, VFE_CONFIG_SIZE);
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
	struct vfe_dev *f = to_fake(dev);
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

static void fake_reset(struct virtio_device *dev)
{
	struct vfe_dev *f = to_fake(dev);

	f->resets++;
	for (unsigned q = 0; f->drain_on_reset && q < dev->num_queues; q++)
		fake_queue_notify(dev, q);
}

static struct event_loop *fake_queue_loop(struct virtio_device *dev, unsigned q)
{
	struct vfe_dev *f = to_fake(dev);

	return q >= 2 && q < 2 * f->pairs ? f->pair_loop : NULL;
}

static const struct virtio_device_ops fake_ops = {
	.name = "fake",
	.device_id = 1,
	.config_size = VFE_CONFIG_SIZE,
	.features = fake_features,
	.set_features = fake_set_features,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.queue_notify = fake_queue_notify,
	.reset = fake_reset,
	.queue_loop = fake_queue_loop,
};

void vfe_dev_init(struct vfe_dev *f)
{
	memset(f, 0, sizeof(*f));
	f->ops = fake_ops;
	f->vdev.ops = &f->ops;
	f->vdev.vqs = f->vqs;
	f->vdev.num_queues = VFE_QUEUES;
	for (unsigned i = 0; i < VFE_CONFIG_SIZE; i++)
		f->config[i] = (uint8_t)(0xa0 + i);
	for (unsigned q = 0; q < VFE_MAX_QUEUES; q++)
		vq_reset(&f->vqs[q]);
}

void vfe_dev_init_mq(struct vfe_dev *f, unsigned pairs)
{
	vfe_dev_init(f);
	f->pairs = pairs;
	f->vdev.num_queues = f->vdev.max_queues = 2 * pairs + 1;
}

/* ---- the test front-end --------------------------------------------- */


int vfe_count_fds(void)
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

void vfe_pump(struct vfe *f)
{
	for (int i = 0; i < 100; i++) {
		if (event_loop_once(&f->loop, 0) <= 0)
			break;
	}
}

int vfe_sendmsg_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VFE_MAX_FDS)];
	} ctrl;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > VFE_MAX_FDS)
		return -1;
	if (nfds) {
		mh.msg_control = ctrl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	/* MSG_NOSIGNAL: the server may have closed its end already. */
	return sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

int vfe_send(struct vfe *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	     const int *fds, unsigned nfds)
{
	struct vhost_user_hdr hdr = { .request = req, .flags = flags, .size = size };
	uint8_t msg[sizeof(hdr) + VHOST_USER_PAYLOAD_MAX + 64];

	if (size > sizeof(msg) - sizeof(hdr))
		return -1;
	memcpy(msg, &hdr, sizeof(hdr));
	if (size)
		memcpy(msg + sizeof(hdr), payload, size);
	return vfe_sendmsg_fds(f->sock, msg, sizeof(hdr) + size, fds, nfds);
}

/* 1: a message was read, 0: none waiting, -1: the peer closed. */
int vfe_recv(int sock, struct vfe_reply *r)
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

int vfe_call(struct vfe *f, uint32_t req, uint32_t flags, const void *payload,
		   uint32_t size, const int *fds, unsigned nfds, struct vfe_reply *r)
{
	if (vfe_send(f, req, flags, payload, size, fds, nfds) < 0)
		return -1;
	vfe_pump(f);
	return vfe_recv(f->sock, r);
}

/* Send with VFE_NEED_REPLY; returns the ack status, or -1 without a proper ack. */
long long vfe_ack(struct vfe *f, uint32_t req, const void *payload, uint32_t size,
			const int *fds, unsigned nfds)
{
	struct vfe_reply r;

	if (vfe_call(f, req, VFE_NEED_REPLY, payload, size, fds, nfds, &r) != 1)
		return -1;
	if (r.hdr.flags != VHOST_USER_REPLY_FLAGS || r.hdr.request != req ||
	    r.hdr.size != sizeof(uint64_t))
		return -1;
	return (long long)r.p.u64;
}

/* Send without VFE_NEED_REPLY; 0 when no reply came and the connection lives. */
int vfe_quiet(struct vfe *f, uint32_t req, const void *payload, uint32_t size,
		    const int *fds, unsigned nfds)
{
	struct vfe_reply r;

	return vfe_call(f, req, VFE_NO_REPLY, payload, size, fds, nfds, &r);
}

/* Read a u64 reply to a GET_* request; UINT64_MAX on any flaw. */
uint64_t vfe_get_u64(struct vfe *f, uint32_t req)
{
	struct vfe_reply r;

	if (vfe_call(f, req, VFE_NO_REPLY, NULL, 0, NULL, 0, &r) != 1 ||
	    r.hdr.flags != VHOST_USER_REPLY_FLAGS || r.hdr.request != req ||
	    r.hdr.size != sizeof(uint64_t))
		return UINT64_MAX;
	return r.p.u64;
}

bool vfe_closed(struct vfe *f)
{
	struct vfe_reply r;

	vfe_pump(f);
	return vfe_recv(f->sock, &r) < 0;
}

int vfe_connect(struct vfe *f)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	strcpy(addr.sun_path, f->path);
	f->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->sock < 0 || connect(f->sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -1;
	vfe_pump(f);
	return vhost_user_server_connected(&f->srv) ? 0 : -1;
}

void vfe_close_peer_fds(struct vfe *f)
{
	if (f->sock >= 0)
		close(f->sock);
	if (f->backend >= 0)
		close(f->backend);
	f->sock = f->backend = -1;
	for (unsigned q = 0; q < VFE_MAX_QUEUES; q++) {
		if (f->kick[q] >= 0)
			close(f->kick[q]);
		if (f->call[q] >= 0)
			close(f->call[q]);
		f->kick[q] = f->call[q] = -1;
	}
}

/* Server listening in a fresh directory, front-end connected, guest memory
 * ready (not yet sent). */
int vfe_setup(struct vfe *f, const struct vhost_user_opts *opts)
{
	return vfe_setup_mq(f, opts, 1);
}

int vfe_setup_mq(struct vfe *f, const struct vhost_user_opts *opts, unsigned pairs)
{
	if (vfe_init(f) < 0)
		return -1;
	if (pairs > 1)
		vfe_dev_init_mq(&f->dev, pairs);
	else
		vfe_dev_init(&f->dev);
	return vfe_serve(f, &f->dev.vdev, opts);
}

int vfe_init(struct vfe *f)
{
	memset(f, 0, sizeof(*f));
	f->sock = f->backend = f->memfd = -1;
	for (unsigned q = 0; q < VFE_MAX_QUEUES; q++)
		f->kick[q] = f->call[q] = -1;
	strcpy(f->dir, "/tmp/kvmini-vu-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/vu.sock", f->dir);
	if (event_loop_init(&f->loop) < 0)
		return -1;
	f->memfd = memfd_create("guest", MFD_CLOEXEC);
	if (f->memfd < 0 || ftruncate(f->memfd, VFE_MEM_SIZE) < 0)
		return -1;
	f->mem = mmap(NULL, VFE_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	return f->mem == MAP_FAILED ? -1 : 0;
}

int vfe_serve(struct vfe *f, struct virtio_device *dev, const struct vhost_user_opts *opts)
{
	if (vhost_user_server_init(&f->srv, dev, &f->loop, f->path, opts) < 0)
		return -1;
	return vfe_connect(f);
}

void vfe_teardown(struct vfe *f)
{
	vfe_close_peer_fds(f);
	vhost_user_server_destroy(&f->srv);
	event_loop_destroy(&f->loop);
	if (f->mem && f->mem != MAP_FAILED)
		munmap(f->mem, VFE_MEM_SIZE);
	if (f->memfd >= 0)
		close(f->memfd);
	rmdir(f->dir);
}

/* ---- message builders ------------------------------------------------ */


/* UML's layout: room for two regions, one used: 72 bytes. */
long long vfe_set_mem_uml(struct vfe *f)
{
	struct vfe_mem_msg m = { .nregions = 1 };

	m.regions[0] = (struct vhost_user_mem_region){
		.gpa = VFE_MEM_START, .size = VFE_MEM_SIZE - VFE_MEM_START,
		.uva = VFE_MEM_START, .mmap_offset = VFE_MEM_START,
	};
	return vfe_ack(f, VHOST_USER_SET_MEM_TABLE, &m, 72, &f->memfd, 1);
}

long long vfe_state(struct vfe *f, uint32_t req, uint32_t index, uint32_t num)
{
	struct vhost_vring_state st = { .index = index, .num = num };
	return vfe_ack(f, req, &st, sizeof(st), NULL, 0);
}

long long vfe_addr(struct vfe *f, unsigned q, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct vhost_vring_addr a = {
		.index = q, .desc_user_addr = desc, .avail_user_addr = avail,
		.used_user_addr = used, .log_guest_addr = ~0ull,
	};
	return vfe_ack(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

long long vfe_u64_fd(struct vfe *f, uint32_t req, uint64_t value, int fd)
{
	if (fd < 0)
		return vfe_ack(f, req, &value, sizeof(value), NULL, 0);
	return vfe_ack(f, req, &value, sizeof(value), &fd, 1);
}

long long vfe_u64(struct vfe *f, uint32_t req, uint64_t value)
{
	return vfe_ack(f, req, &value, sizeof(value), NULL, 0);
}

/* UML's boot sequence up to SET_FEATURES, acks on. */
int vfe_uml_negotiate(struct vfe *f)
{
	VFE_TRY_EQ(vfe_quiet(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	uint64_t features = vfe_get_u64(f, VHOST_USER_GET_FEATURES);
	VFE_TRY_EQ(features, VFE_FEATURES | (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	uint64_t pf = vfe_get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES);
	VFE_TRY_EQ(pf, VHOST_USER_PROTOCOL_FEATURES_SUPPORTED);
	VFE_TRY_EQ(pf, 0x4229);
	/* UML asks for an ack on SET_PROTOCOL_FEATURES already. */
	VFE_TRY_EQ(vfe_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, pf & VFE_PF_UML), 0);
	int sp[2];
	VFE_TRY_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	VFE_TRY_EQ(vfe_ack(f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0, &sp[1], 1), 0);
	close(sp[1]);
	f->backend = sp[0];
	VFE_TRY_EQ(vfe_u64(f, VHOST_USER_SET_FEATURES,
			VFE_FEATURES | (1ull << VHOST_USER_F_PROTOCOL_FEATURES)), 0);
	VFE_TRY_EQ(f->dev.acked, VFE_FEATURES);
	return 0;
}

int vfe_ring_setup(struct vfe *f, unsigned q)
{
	VFE_TRY_EQ(vfe_state(f, VHOST_USER_SET_VRING_NUM, q, VFE_RING_NUM), 0);
	VFE_TRY_EQ(vfe_state(f, VHOST_USER_SET_VRING_BASE, q, 0), 0);
	VFE_TRY_EQ(vfe_addr(f, q, VFE_DESC_GPA(q), VFE_AVAIL_GPA(q), VFE_USED_GPA(q)), 0);
	return 0;
}

/* UML's probe sequence with in-band notifications: no kick or call fds. */
int vfe_uml_start_inband(struct vfe *f)
{
	VFE_TRY_EQ(vfe_uml_negotiate(f), 0);
	VFE_TRY_EQ(vfe_set_mem_uml(f), 0);
	for (unsigned q = 0; q < VFE_QUEUES; q++) {
		VFE_TRY_EQ(vfe_u64_fd(f, VHOST_USER_SET_VRING_CALL, q | VFE_NOFD, -1), 0);
		VFE_TRY_EQ(vfe_ring_setup(f, q), 0);
	}
	for (unsigned q = 0; q < VFE_QUEUES; q++) {
		VFE_TRY_EQ(vfe_u64_fd(f, VHOST_USER_SET_VRING_KICK, q | VFE_NOFD, -1), 0);
		VFE_TRY(!f->dev.vdev.active);
		VFE_TRY_EQ(vfe_state(f, VHOST_USER_SET_VRING_ENABLE, q, 1), 0);
	}
	return 0;
}

/* Make one chain of one buffer available on ring @q (driver side). */
void vfe_guest_offer(struct vfe *f, unsigned q)
{
	struct vring_desc *desc = (struct vring_desc *)(f->mem + VFE_DESC_GPA(q));
	struct vring_avail *avail = (struct vring_avail *)(f->mem + VFE_AVAIL_GPA(q));
	uint16_t idx = avail->idx;
	uint16_t head = idx % VFE_RING_NUM;

	desc[head] = (struct vring_desc){ .addr = VFE_BUF_GPA, .len = 64, .flags = VRING_DESC_F_WRITE };
	avail->ring[head] = head;
	__atomic_store_n(&avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

uint16_t vfe_used_idx(struct vfe *f, unsigned q)
{
	return ((struct vring_used *)(f->mem + VFE_USED_GPA(q)))->idx;
}

/* QEMU-style: no in-band notifications, eventfd kicks and calls. */
int vfe_start_with_fds(struct vfe *f, bool socket_calls)
{
	VFE_TRY_EQ(vfe_quiet(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	VFE_TRY_EQ(vfe_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES,
			VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(MQ)), 0);
	/* The fake is a net device: pairs, as QEMU counts them. */
	VFE_TRY_EQ(vfe_get_u64(f, VHOST_USER_GET_QUEUE_NUM), VFE_QUEUES / 2);
	/* Without bit 30 acked, rings start enabled (spec "Ring states"). */
	VFE_TRY_EQ(vfe_u64(f, VHOST_USER_SET_FEATURES, VFE_FEATURES), 0);
	VFE_TRY_EQ(vfe_set_mem_uml(f), 0);
	for (unsigned q = 0; q < VFE_QUEUES; q++) {
		int sp[2], call;
		if (socket_calls) {
			VFE_TRY_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
					    0, sp), 0);
			f->call[q] = sp[0];
			call = sp[1];
		} else {
			f->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			call = f->call[q];
		}
		VFE_TRY_EQ(vfe_u64_fd(f, VHOST_USER_SET_VRING_CALL, q, call), 0);
		if (socket_calls)
			close(call);
		VFE_TRY_EQ(vfe_ring_setup(f, q), 0);
	}
	for (unsigned q = 0; q < VFE_QUEUES; q++) {
		f->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		VFE_TRY_EQ(vfe_u64_fd(f, VHOST_USER_SET_VRING_KICK, q, f->kick[q]), 0);
	}
	return 0;
}

int vfe_kick(struct vfe *f, unsigned q)
{
	uint64_t one = 1;

	VFE_TRY_EQ(write(f->kick[q], &one, sizeof(one)), 8);
	vfe_pump(f);
	return 0;
}

