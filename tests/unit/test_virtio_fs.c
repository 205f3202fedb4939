/*
 * virtio-fs device against the driver simulator, with memfs behind the FUSE
 * server: config space and features, requests answered on worker threads
 * with interrupts sent only from the loop thread, hiprio FORGETs reaching
 * the backend, malformed chains completed and counted, replies never longer
 * than the writable part (even from a server that claims more), the pause gate, reset with requests in flight,
 * many workers on several queues with kicks suppressed as the driver sees
 * them, NEEDS_RESET, notifications; then memfs on its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <linux/fuse.h>
#include <linux/virtio_config.h>
#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "check.h"
#include "fuse_req.h"
#include "core/compiler.h"
#include "core/state_io.h"
#include "fs/dax_window.h"
#include "fs/memfs.h"
#include "fs/virtio_fs.h"
#include "vdriver.h"

/* ---- rig ------------------------------------------------------------------- */

struct fake_transport {
	struct virtio_transport t;
	pthread_t loop_thread;
	unsigned used_signals[VIRTIO_FS_MAX_QUEUES];
	unsigned config_signals;
	unsigned wrong_thread;       /* transport calls off the loop thread */
};

static void fake_signal_used(struct virtio_transport *t, unsigned q)
{
	struct fake_transport *f = container_of(t, struct fake_transport, t);

	if (!pthread_equal(pthread_self(), f->loop_thread))
		f->wrong_thread++;
	if (q < VIRTIO_FS_MAX_QUEUES)
		f->used_signals[q]++;
}

static void fake_signal_config(struct virtio_transport *t)
{
	struct fake_transport *f = container_of(t, struct fake_transport, t);

	if (!pthread_equal(pthread_self(), f->loop_thread))
		f->wrong_thread++;
	f->config_signals++;
}

static const struct virtio_transport_ops fake_ops = {
	.signal_used = fake_signal_used,
	.signal_config = fake_signal_config,
};

struct rig {
	struct event_loop loop;
	struct vd_mem mem;
	struct vd_queue vq[VIRTIO_FS_MAX_QUEUES];
	unsigned nq;
	unsigned rq;                 /* first request queue: 1, or 2 with notifications */
	struct fs_backend *be;
	struct fuse_server *srv;
	struct virtio_fs *fs;
	struct fake_transport tr;
	uint64_t pool;               /* request and reply buffers */
	uint64_t unique;
	bool indirect;
};

struct rig_opts {
	unsigned queues, threads;
	bool event_idx;
	bool notification;           /* offer and negotiate VIRTIO_FS_F_NOTIFICATION */
	bool offer_only;             /* offer it, the driver does not take it */
	uint16_t qsize;
	unsigned poll_us;            /* workers poll for the next request */
};

#define POOL_SIZE (48u << 20)
#define RING_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC))

static void rig_up_with(struct rig *r, const struct rig_opts *o)
{
	int err;
	struct vd_queue_opts qo = { .size = o->qsize ? o->qsize : 128, .indirect_max = 16,
				    .event_idx = o->event_idx };
	struct virtio_fs_opts fo = { .tag = "kvmtest", .request_queues = o->queues,
				     .threads = o->threads, .poll_us = o->poll_us,
				     .offer_notification = o->notification || o->offer_only };
	uint64_t features = RING_FEATURES;

	memset(r, 0, sizeof(*r));
	/* Spec 5.11.2: hiprio, the notification queue when negotiated, requests. */
	r->rq = o->notification ? 2 : 1;
	r->nq = r->rq + (o->queues ? o->queues : 1);
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, 0x200000, 64u << 20, 0), 0);
	for (unsigned q = 0; q < r->nq; q++)
		CHECK_EQ(vd_queue_init(&r->vq[q], &r->mem, &qo), 0);
	r->be = memfs_new(NULL, &err);
	CHECK(r->be != NULL);
	r->srv = fuse_server_new(r->be, NULL);
	CHECK(r->srv != NULL);
	r->fs = calloc(1, sizeof(*r->fs));
	CHECK_EQ(virtio_fs_init(r->fs, &fo, r->srv, &r->loop), 0);
	r->tr.t.ops = &fake_ops;
	r->tr.loop_thread = pthread_self();
	r->fs->vdev.transport = &r->tr.t;
	r->fs->vdev.mem = &r->mem.gm;
	if (o->event_idx)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (o->notification)
		features |= 1ull << VIRTIO_FS_F_NOTIFICATION;
	CHECK_EQ(virtio_device_set_features(&r->fs->vdev, features), 0);
	CHECK_EQ(r->fs->vdev.num_queues, r->nq);
	for (unsigned q = 0; q < r->nq; q++)
		vd_queue_to_vq(&r->vq[q], &r->fs->vqs[q], true);
	CHECK_EQ(virtio_device_activate(&r->fs->vdev), 0);
	r->pool = vd_alloc(&r->mem, POOL_SIZE, 4096);
	CHECK(r->pool != VD_NO_GPA);
}

static void rig_up(struct rig *r)
{
	struct rig_opts o = { .queues = 1, .threads = 2, .event_idx = true };

	rig_up_with(r, &o);
}

static void rig_down(struct rig *r)
{
	virtio_device_reset(&r->fs->vdev);
	virtio_fs_destroy(r->fs);
	free(r->fs);
	fuse_server_free(r->srv);
	fs_backend_destroy(r->be);
	for (unsigned q = 0; q < r->nq; q++)
		vd_queue_destroy(&r->vq[q]);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop until queue @q has @n used entries unread (or 5 s pass). */
static bool wait_used(struct rig *r, unsigned q, unsigned n)
{
	uint64_t end = now_ms() + 5000;

	while (vd_used_pending(&r->vq[q]) < n) {
		if (now_ms() > end)
			return false;
		event_loop_once(&r->loop, 1);
	}
	/* Deliver the interrupts the workers posted. */
	event_loop_once(&r->loop, 0);
	return true;
}

/* Read a used entry and, as Linux's driver does, ask to be interrupted for
 * the next one (used_event). */
static int get_used(struct rig *r, unsigned q, uint32_t *id, uint32_t *len)
{
	int rc = vd_get_used(&r->vq[q], id, len);

	vd_set_used_event(&r->vq[q], r->vq[q].last_used);
	return rc;
}

/* Let interrupts posted after the last completion reach the loop. */
static void settle(struct rig *r)
{
	for (int i = 0; i < 5; i++)
		event_loop_once(&r->loop, 10);
}

/* Publish what was added and kick only when the device asked for it. */
static void publish(struct rig *r, unsigned q)
{
	if (vd_publish(&r->vq[q]))
		r->fs->vdev.ops->queue_notify(&r->fs->vdev, q);
}

/* Write a request (header + up to two argument parts) at @gpa; returns its
 * length. */
static uint32_t put_req(struct rig *r, uint64_t gpa, uint32_t opcode, uint64_t nodeid,
			const void *a1, size_t l1, const void *a2, size_t l2)
{
	static uint8_t buf[(1u << 20) + 4096] __attribute__((aligned(8)));
	struct frq q = { .buf = buf, .cap = sizeof(buf), .last_unique = r->unique };

	frq_start(&q, opcode, nodeid);
	frq_hdr(&q)->pid = 1;
	frq_put(&q, a1, l1);
	frq_put(&q, a2, l2);
	r->unique = q.unique;
	uint32_t len = frq_end(&q);
	vd_write(&r->mem, gpa, buf, len);
	return len;
}

static int add_req(struct rig *r, unsigned q, uint64_t in, uint32_t in_len, uint64_t out,
		   uint32_t out_len)
{
	struct vd_buf b[2] = { { in, in_len, false }, { out, out_len, true } };

	return vd_add_chain(&r->vq[q], b, out_len ? 2 : 1, r->indirect);
}

/*
 * One request on the first request queue, answered synchronously. The reply lands at pool +
 * 1 MiB (@out_cap bytes of room). Returns the reply's error field, or
 * -10000 when the used length is not a well-formed reply.
 */
static int call(struct rig *r, uint32_t opcode, uint64_t nodeid, const void *a1, size_t l1,
		const void *a2, size_t l2, void *reply, size_t reply_cap, uint32_t out_cap)
{
	uint64_t in = r->pool, out = r->pool + (1u << 20);
	uint32_t id, len;
	struct fuse_out_header oh;

	uint32_t in_len = put_req(r, in, opcode, nodeid, a1, l1, a2, l2);
	uint64_t unique = r->unique;
	int head = add_req(r, r->rq, in, in_len, out, out_cap);
	CHECK(head >= 0);
	publish(r, r->rq);
	CHECK(wait_used(r, r->rq, 1));
	CHECK_EQ(get_used(r, r->rq, &id, &len), 1);
	CHECK_EQ(id, head);
	if (len < sizeof(oh))
		return -10000;
	vd_read(&r->mem, out, &oh, sizeof(oh));
	CHECK_EQ(oh.len, len);
	CHECK_EQ(oh.unique, unique);
	if (reply)
		vd_read(&r->mem, out + sizeof(oh), reply, MIN(reply_cap, len - sizeof(oh)));
	return oh.error;
}

static void fuse_init(struct rig *r)
{
	struct fuse_init_in in = { .major = 7, .minor = 38, .max_readahead = 1u << 20,
				   .flags = FUSE_MAX_PAGES | FUSE_BIG_WRITES | FUSE_ASYNC_READ };
	struct fuse_init_out out;

	CHECK_EQ(call(r, FUSE_INIT, 0, &in, sizeof(in), NULL, 0, &out, sizeof(out), 4096), 0);
	CHECK_EQ(out.major, 7);
}

static int lookup(struct rig *r, uint64_t parent, const char *name, struct fuse_entry_out *e)
{
	return call(r, FUSE_LOOKUP, parent, name, strlen(name) + 1, NULL, 0, e, sizeof(*e), 4096);
}

/* CREATE @name in the root; returns the file handle. */
static uint64_t create_file(struct rig *r, const char *name, uint64_t *nodeid)
{
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = S_IFREG | 0644 };
	struct { struct fuse_entry_out e; struct fuse_open_out o; } out;

	CHECK_EQ(call(r, FUSE_CREATE, FUSE_ROOT_ID, &ci, sizeof(ci), name, strlen(name) + 1,
		      &out, sizeof(out), 4096), 0);
	if (nodeid)
		*nodeid = out.e.nodeid;
	return out.o.fh;
}

static struct virtio_fs_counters ctrs(struct rig *r)
{
	struct virtio_fs_counters c;

	virtio_fs_get_counters(r->fs, &c);
	return c;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_config_and_features(void)
{
	struct rig r;
	struct virtio_fs_config cfg;

	rig_up(&r);
	CHECK_EQ(r.fs->vdev.ops->device_id, VIRTIO_ID_FS);
	CHECK_EQ(r.fs->vdev.ops->config_size, sizeof(cfg));
	CHECK_EQ(r.fs->vdev.num_queues, 2);
	memset(&cfg, 0xaa, sizeof(cfg));
	CHECK_EQ(virtio_device_config_read(&r.fs->vdev, 0, &cfg, sizeof(cfg)), 0);
	CHECK(memcmp(cfg.tag, "kvmtest", 7) == 0);
	for (unsigned i = 7; i < sizeof(cfg.tag); i++)
		CHECK_EQ(cfg.tag[i], 0);
	CHECK_EQ(cfg.num_request_queues, 1);
	/* Byte-wise reads, as UML does them. */
	uint8_t b;
	CHECK_EQ(virtio_device_config_read(&r.fs->vdev, 36, &b, 1), 0);
	CHECK_EQ(b, 1);
	CHECK(virtio_device_config_read(&r.fs->vdev, 38, &cfg, 4) < 0);
	uint64_t f = r.fs->vdev.ops->features(&r.fs->vdev);
	CHECK(f & (1ull << VIRTIO_F_VERSION_1));
	CHECK(f & (1ull << VIRTIO_RING_F_EVENT_IDX));
	CHECK(f & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	CHECK(!(f & (1ull << VIRTIO_FS_F_NOTIFICATION)));
	rig_down(&r);

	/* Bad options are refused; a 36-byte tag fills the field exactly. */
	struct event_loop loop;
	struct virtio_fs *fs = calloc(1, sizeof(*fs));
	CHECK_EQ(event_loop_init(&loop), 0);
	struct virtio_fs_opts bad[] = {
		{ .tag = "" }, { .tag = NULL },
		{ .tag = "0123456789012345678901234567890123456" },
		{ .tag = "t", .request_queues = VIRTIO_FS_MAX_REQUEST_QUEUES + 1 },
		{ .tag = "t", .threads = VIRTIO_FS_MAX_THREADS + 1 },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_EQ(virtio_fs_init(fs, &bad[i], NULL, &loop), -EINVAL);
	struct virtio_fs_opts full = { .tag = "012345678901234567890123456789012345",
				       .request_queues = 3 };
	CHECK_EQ(virtio_fs_init(fs, &full, NULL, &loop), 0);
	fs->vdev.ops->config_read(&fs->vdev, &cfg);
	CHECK(memcmp(cfg.tag, full.tag, 36) == 0);
	CHECK_EQ(cfg.num_request_queues, 3);
	CHECK_EQ(fs->vdev.num_queues, 4);
	virtio_fs_destroy(fs);

	/* Offering notifications: notify_buf_size in config, room for queue 1
	 * until the driver's features settle the layout; reset restores it. */
	struct virtio_fs_config_notify cn;
	struct virtio_fs_opts offer = { .tag = "n", .request_queues = 2, .offer_notification = true };
	CHECK_EQ(virtio_fs_init(fs, &offer, NULL, &loop), 0);
	CHECK_EQ(fs->vdev.ops->config_size, 44);
	CHECK(fs->vdev.ops->features(&fs->vdev) & (1ull << VIRTIO_FS_F_NOTIFICATION));
	CHECK_EQ(virtio_device_config_read(&fs->vdev, 0, &cn, sizeof(cn)), 0);
	CHECK_EQ(cn.num_request_queues, 2);
	CHECK_EQ(cn.notify_buf_size, VIRTIO_FS_NOTIFY_BUF_SIZE);
	CHECK_EQ(fs->vdev.num_queues, 4);
	CHECK_EQ(virtio_device_set_features(&fs->vdev, RING_FEATURES), 0);
	CHECK_EQ(fs->vdev.num_queues, 3);          /* hiprio + 2 requests */
	virtio_device_reset(&fs->vdev);
	CHECK_EQ(fs->vdev.num_queues, 4);
	CHECK_EQ(virtio_device_set_features(&fs->vdev, RING_FEATURES |
					    (1ull << VIRTIO_FS_F_NOTIFICATION)), 0);
	CHECK_EQ(fs->vdev.num_queues, 4);          /* hiprio, notification, 2 requests */
	virtio_fs_destroy(fs);
	free(fs);
	event_loop_destroy(&loop);
}

static void test_requests_roundtrip(void)
{
	struct rig r;
	struct fuse_entry_out e;
	uint64_t node;
	char data[3000], back[3000];

	rig_up(&r);
	fuse_init(&r);
	uint64_t fh = create_file(&r, "hello", &node);
	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7 + 1);
	struct fuse_write_in wi = { .fh = fh, .offset = 0, .size = sizeof(data) };
	struct fuse_write_out wo;
	CHECK_EQ(call(&r, FUSE_WRITE, node, &wi, sizeof(wi), data, sizeof(data), &wo, sizeof(wo),
		      4096), 0);
	CHECK_EQ(wo.size, sizeof(data));
	struct fuse_read_in ri = { .fh = fh, .offset = 0, .size = sizeof(back) };
	CHECK_EQ(call(&r, FUSE_READ, node, &ri, sizeof(ri), NULL, 0, back, sizeof(back), 8192), 0);
	CHECK(memcmp(back, data, sizeof(data)) == 0);
	CHECK_EQ(lookup(&r, FUSE_ROOT_ID, "hello", &e), 0);
	CHECK_EQ(e.nodeid, node);
	CHECK_EQ(e.attr.size, sizeof(data));
	/* A miss is a negative entry (node id 0) the client may cache. */
	CHECK_EQ(lookup(&r, FUSE_ROOT_ID, "nothere", &e), 0);
	CHECK_EQ(e.nodeid, 0);
	/* An unknown opcode gets ENOSYS, and is still a request. */
	CHECK_EQ(call(&r, 9999, FUSE_ROOT_ID, NULL, 0, NULL, 0, NULL, 0, 4096), -ENOSYS);

	settle(&r);
	struct virtio_fs_counters c = ctrs(&r);
	CHECK_EQ(c.rx_requests, 7);
	CHECK_EQ(r.fs->q[1].requests, 7);
	CHECK_EQ(c.rx_chain_invalid, 0);
	CHECK_EQ(c.rx_requests_no_reply, 0);
	CHECK(c.tx_reply_bytes > sizeof(data));
	CHECK(c.rx_request_bytes > sizeof(data));
	/* Interrupts: one per answered request here, all from the loop thread. */
	CHECK_EQ(r.tr.used_signals[1], 7);
	CHECK_EQ(c.tx_interrupts_sent, 7);
	CHECK_EQ(r.tr.wrong_thread, 0);
	rig_down(&r);
}

/* READ of 64 KiB into 100 bytes of room: the reply is cut to the room and
 * nothing past it is written. */
static void test_reply_never_exceeds_writable(void)
{
	struct rig r;
	uint64_t node;
	uint32_t id, len;

	rig_up(&r);
	fuse_init(&r);
	uint64_t fh = create_file(&r, "big", &node);
	struct fuse_setattr_in sa = { .valid = FATTR_SIZE, .size = 1u << 20 };
	struct fuse_attr_out ao;
	CHECK_EQ(call(&r, FUSE_SETATTR, node, &sa, sizeof(sa), NULL, 0, &ao, sizeof(ao), 4096), 0);
	CHECK_EQ(ao.attr.size, 1u << 20);

	/* The guest memory just past the writable buffer stays untouched
	 * (call() puts the reply at pool + 1 MiB). */
	uint8_t canary[4096], after[4096];
	memset(canary, 0xa5, sizeof(canary));
	CHECK_EQ(vd_write(&r.mem, r.pool + (1u << 20) + 100, canary, sizeof(canary)), 0);
	struct fuse_read_in ri = { .fh = fh, .offset = 0, .size = 65536 };
	CHECK_EQ(call(&r, FUSE_READ, node, &ri, sizeof(ri), NULL, 0, NULL, 0, 100), 0);
	CHECK_EQ(vd_read(&r.mem, r.pool + (1u << 20) + 100, after, sizeof(after)), 0);
	CHECK(!memcmp(after, canary, sizeof(canary)));
	/* Room for less than a reply header: completed with 0, counted. */
	uint64_t in = r.pool;
	uint32_t in_len = put_req(&r, in, FUSE_GETATTR, node, &(struct fuse_getattr_in){ 0 },
				  sizeof(struct fuse_getattr_in), NULL, 0);
	int tiny = add_req(&r, 1, in, in_len, r.pool + 4096, 8);
	/* Room for the header but not the attributes: an error reply. */
	in_len = put_req(&r, in + 8192, FUSE_GETATTR, node, &(struct fuse_getattr_in){ 0 },
			 sizeof(struct fuse_getattr_in), NULL, 0);
	add_req(&r, 1, in + 8192, in_len, r.pool + 12288, 40);
	publish(&r, 1);
	CHECK(wait_used(&r, 1, 2));
	/* Two workers: either may finish first. */
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(get_used(&r, 1, &id, &len), 1);
		CHECK_EQ(len, (int)id == tiny ? 0 : sizeof(struct fuse_out_header));
	}
	struct fuse_out_header oh;
	vd_read(&r.mem, r.pool + 12288, &oh, sizeof(oh));
	CHECK_EQ(oh.error, -EOVERFLOW);
	struct virtio_fs_counters c = ctrs(&r);
	CHECK_EQ(c.rx_requests_no_reply, 1);
	CHECK_EQ(c.tx_reply_oversize, 0);
	rig_down(&r);
}

/*
 * The FUSE server as this test links it (Makefile: --wrap): the real one,
 * unless overstate_reply is set; then it claims one byte more than the
 * writable buffers hold, which the real server never does. The device must
 * not put that length in the used ring.
 */
size_t __real_fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
				 const struct iovec *out, unsigned out_cnt);
size_t __wrap_fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
				 const struct iovec *out, unsigned out_cnt);

static bool overstate_reply;

size_t __wrap_fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
				 const struct iovec *out, unsigned out_cnt)
{
	size_t len = __real_fuse_server_handle(s, in, in_cnt, out, out_cnt), room = 0;

	if (!__atomic_load_n(&overstate_reply, __ATOMIC_ACQUIRE))
		return len;
	for (unsigned i = 0; i < out_cnt; i++)
		room += out[i].iov_len;
	return room + 1;
}

/* A reply longer than the writable part (a server breaking its promise):
 * completed with 0 and counted, so the used length never lies. */
static void test_oversized_reply_guard(void)
{
	struct rig r;
	uint64_t node;

	rig_up(&r);
	fuse_init(&r);
	create_file(&r, "f", &node);
	__atomic_store_n(&overstate_reply, true, __ATOMIC_RELEASE);
	int err = call(&r, FUSE_GETATTR, node, &(struct fuse_getattr_in){ 0 },
		       sizeof(struct fuse_getattr_in), NULL, 0, NULL, 0, 4096);
	__atomic_store_n(&overstate_reply, false, __ATOMIC_RELEASE);
	CHECK_EQ(err, -10000);
	struct virtio_fs_counters c = ctrs(&r);
	CHECK_EQ(c.tx_reply_oversize, 1);
	/* The device goes on: the next request is answered. */
	struct fuse_attr_out ao;
	CHECK_EQ(call(&r, FUSE_GETATTR, node, &(struct fuse_getattr_in){ 0 },
		      sizeof(struct fuse_getattr_in), NULL, 0, &ao, sizeof(ao), 4096), 0);
	CHECK_EQ(ao.attr.ino, node);
	c = ctrs(&r);
	CHECK_EQ(c.tx_reply_oversize, 1);
	rig_down(&r);
}

/* A WRITE over the server's 8 MiB cap is refused, never read whole. */
static void test_request_over_cap_refused(void)
{
	struct rig r;
	uint64_t node;

	rig_up(&r);
	fuse_init(&r);
	uint64_t fh = create_file(&r, "capped", &node);
	size_t big = FUSE_SERVER_MAX_REQUEST;
	uint64_t data = r.pool + (4u << 20);
	struct fuse_write_in wi = { .fh = fh, .size = (uint32_t)big };
	struct fuse_in_header h = { .len = (uint32_t)(sizeof(h) + sizeof(wi) + big),
				    .opcode = FUSE_WRITE, .unique = 77, .nodeid = node };
	vd_write(&r.mem, r.pool, &h, sizeof(h));
	vd_write(&r.mem, r.pool + sizeof(h), &wi, sizeof(wi));
	struct vd_buf b[3] = {
		{ r.pool, sizeof(h) + sizeof(wi), false },
		{ data, (uint32_t)big, false },
		{ r.pool + 8192, 4096, true },
	};
	CHECK(vd_add_chain(&r.vq[1], b, 3, false) >= 0);
	publish(&r, 1);
	CHECK(wait_used(&r, 1, 1));
	uint32_t id, len;
	CHECK_EQ(get_used(&r, 1, &id, &len), 1);
	CHECK_EQ(len, sizeof(struct fuse_out_header));
	struct fuse_out_header oh;
	vd_read(&r.mem, r.pool + 8192, &oh, sizeof(oh));
	CHECK_EQ(oh.error, -EINVAL);
	CHECK_EQ(oh.unique, 77);
	rig_down(&r);
}

static void test_malformed_chains(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r);
	fuse_init(&r);
	/* A buffer outside guest memory. */
	struct vd_buf outside[2] = { { 1ull << 40, 64, false }, { r.pool, 4096, true } };
	int h1 = vd_add_chain(&r.vq[1], outside, 2, false);
	/* Writable only: no request. */
	struct vd_buf only_out = { r.pool + 4096, 4096, true };
	int h2 = vd_add_chain(&r.vq[1], &only_out, 1, false);
	/* Shorter than a request header. */
	vd_fill(&r.mem, r.pool + 8192, 0x5a, 16);
	struct vd_buf shorty[2] = { { r.pool + 8192, 16, false }, { r.pool + 12288, 4096, true } };
	int h3 = vd_add_chain(&r.vq[1], shorty, 2, false);
	/* A header claiming more bytes than the chain holds: error reply. */
	struct fuse_in_header liar = { .len = 4096, .opcode = FUSE_GETATTR, .unique = 5,
				       .nodeid = FUSE_ROOT_ID };
	vd_write(&r.mem, r.pool + 16384, &liar, sizeof(liar));
	struct vd_buf lying[2] = { { r.pool + 16384, sizeof(liar) + 16, false },
				   { r.pool + 20480, 4096, true } };
	int h4 = vd_add_chain(&r.vq[1], lying, 2, false);
	publish(&r, 1);
	CHECK(wait_used(&r, 1, 4));
	int seen[4] = { 0 };
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(get_used(&r, 1, &id, &len), 1);
		if ((int)id == h1 || (int)id == h2 || (int)id == h3) {
			CHECK_EQ(len, 0);
		} else {
			CHECK_EQ(id, h4);
			CHECK_EQ(len, sizeof(struct fuse_out_header));
		}
		seen[(int)id == h1 ? 0 : (int)id == h2 ? 1 : (int)id == h3 ? 2 : 3]++;
	}
	for (int i = 0; i < 4; i++)
		CHECK_EQ(seen[i], 1);
	struct virtio_fs_counters c = ctrs(&r);
	CHECK_EQ(c.rx_chain_invalid, 1);
	CHECK_EQ(c.rx_requests_no_payload, 1);
	CHECK_EQ(c.rx_requests_no_reply, 1);
	CHECK_EQ(vd_used_pending(&r.vq[1]), 0);
	rig_down(&r);
}

/* Lookups counted by the backend drop when FORGET / BATCH_FORGET arrive on
 * the hiprio queue; INTERRUPT is acked; anything else there is refused. */
static void test_hiprio_forget(void)
{
	struct rig r;
	struct fuse_entry_out e;
	struct memfs_stats st;
	uint32_t id, len;

	rig_up(&r);
	fuse_init(&r);
	uint64_t node;
	uint64_t fh = create_file(&r, "f", &node);
	struct fuse_release_in rel = { .fh = fh };
	CHECK_EQ(call(&r, FUSE_RELEASE, node, &rel, sizeof(rel), NULL, 0, NULL, 0, 4096), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(lookup(&r, FUSE_ROOT_ID, "f", &e), 0);
	memfs_get_stats(r.be, &st);
	CHECK_EQ(st.lookups, 4);

	uint64_t in = r.pool + (2u << 20);
	struct fuse_forget_in fi = { .nlookup = 1 };
	uint32_t l = put_req(&r, in, FUSE_FORGET, node, &fi, sizeof(fi), NULL, 0);
	add_req(&r, 0, in, l, 0, 0);
	struct { struct fuse_batch_forget_in b; struct fuse_forget_one one[2]; } bf = {
		.b = { .count = 2 },
		.one = { { .nodeid = node, .nlookup = 2 }, { .nodeid = 12345, .nlookup = 9 } },
	};
	l = put_req(&r, in + 4096, FUSE_BATCH_FORGET, 0, &bf, sizeof(bf), NULL, 0);
	add_req(&r, 0, in + 4096, l, 0, 0);
	struct fuse_interrupt_in ii = { .unique = 3 };
	l = put_req(&r, in + 8192, FUSE_INTERRUPT, 0, &ii, sizeof(ii), NULL, 0);
	add_req(&r, 0, in + 8192, l, 0, 0);
	/* A GETATTR on hiprio, with room for a reply: not served there. */
	l = put_req(&r, in + 12288, FUSE_GETATTR, node, &(struct fuse_getattr_in){ 0 },
		    sizeof(struct fuse_getattr_in), NULL, 0);
	add_req(&r, 0, in + 12288, l, in + 16384, 4096);
	publish(&r, 0);
	CHECK(wait_used(&r, 0, 4));
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(get_used(&r, 0, &id, &len), 1);
		CHECK_EQ(len, 0);
	}
	memfs_get_stats(r.be, &st);
	CHECK_EQ(st.lookups, 1);
	struct virtio_fs_counters c = ctrs(&r);
	CHECK_EQ(c.hiprio_forgets, 1);
	CHECK_EQ(c.hiprio_batch_forgets, 1);
	CHECK_EQ(c.hiprio_interrupts, 1);
	CHECK_EQ(c.hiprio_requests_refused, 1);
	CHECK_EQ(r.fs->q[0].requests, 4);
	CHECK_EQ(c.rx_requests, 6);     /* hiprio chains are not request-queue requests */
	CHECK(r.tr.used_signals[0] >= 1);
	CHECK_EQ(r.tr.wrong_thread, 0);
	/* Unlinked and forgotten: the node goes away. */
	CHECK_EQ(call(&r, FUSE_UNLINK, FUSE_ROOT_ID, "f", 2, NULL, 0, NULL, 0, 4096), 0);
	memfs_get_stats(r.be, &st);
	uint64_t nodes = st.nodes;
	l = put_req(&r, in, FUSE_FORGET, node, &fi, sizeof(fi), NULL, 0);
	add_req(&r, 0, in, l, 0, 0);
	publish(&r, 0);
	CHECK(wait_used(&r, 0, 1));
	CHECK_EQ(get_used(&r, 0, &id, &len), 1);
	memfs_get_stats(r.be, &st);
	CHECK_EQ(st.nodes, nodes - 1);
	rig_down(&r);
}

/* A backend operation that blocks while `hold` is set, to freeze a worker
 * inside a request. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool hold;
	unsigned inside;
	const struct fs_backend_ops *real;
	struct fs_backend_ops ops;
} slow = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int slow_getattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			struct stat *st)
{
	pthread_mutex_lock(&slow.lock);
	slow.inside++;
	pthread_cond_broadcast(&slow.cond);
	while (slow.hold)
		pthread_cond_wait(&slow.cond, &slow.lock);
	slow.inside--;
	pthread_mutex_unlock(&slow.lock);
	return slow.real->getattr(be, ctx, nodeid, st);
}

static void slow_install(struct rig *r)
{
	slow.real = r->be->ops;
	slow.ops = *r->be->ops;
	slow.ops.getattr = slow_getattr;
	slow.hold = true;
	slow.inside = 0;
	r->be->ops = &slow.ops;
}

static void slow_wait_inside(unsigned n)
{
	pthread_mutex_lock(&slow.lock);
	while (slow.inside < n)
		pthread_cond_wait(&slow.cond, &slow.lock);
	pthread_mutex_unlock(&slow.lock);
}

static void *slow_release_later(void *arg)
{
	usleep(100 * 1000);
	pthread_mutex_lock(&slow.lock);
	slow.hold = false;
	pthread_cond_broadcast(&slow.cond);
	pthread_mutex_unlock(&slow.lock);
	return NULL;
}

static void add_getattr(struct rig *r, unsigned q, unsigned slot)
{
	uint64_t in = r->pool + (8u << 20) + slot * 8192ull;
	uint32_t l = put_req(r, in, FUSE_GETATTR, FUSE_ROOT_ID, &(struct fuse_getattr_in){ 0 },
			     sizeof(struct fuse_getattr_in), NULL, 0);
	CHECK(add_req(r, q, in, l, in + 4096, 4096) >= 0);
}

/* A READ of DATA_LEN bytes of @fh: enough data that a polling worker polls
 * after answering it (virtio_fs.c's POLL_DATA_MIN), its reply at pool + 16
 * MiB + 64 KiB per slot. */
#define DATA_LEN (32u << 10)

static void add_read(struct rig *r, unsigned q, unsigned slot, uint64_t node, uint64_t fh)
{
	uint64_t in = r->pool + (8u << 20) + slot * 8192ull;
	struct fuse_read_in ri = { .fh = fh, .offset = 0, .size = DATA_LEN };
	uint32_t l = put_req(r, in, FUSE_READ, node, &ri, sizeof(ri), NULL, 0);
	CHECK(add_req(r, q, in, l, r->pool + (16u << 20) + slot * 65536ull, DATA_LEN + 4096) >= 0);
}

/* A file of DATA_LEN bytes for add_read; returns its handle. */
static uint64_t data_file(struct rig *r, uint64_t *node)
{
	static char data[DATA_LEN];
	struct fuse_write_in wi = { .size = DATA_LEN };
	struct fuse_write_out wo;

	wi.fh = create_file(r, "data", node);
	memset(data, 'd', sizeof(data));
	CHECK_EQ(call(r, FUSE_WRITE, *node, &wi, sizeof(wi), data, sizeof(data), &wo, sizeof(wo),
		      4096), 0);
	CHECK_EQ(wo.size, DATA_LEN);
	return wi.fh;
}

/* Nothing popped stays unanswered across a pause: a request in the backend
 * when the pause comes is finished before wait_idle returns, the others
 * stay in the avail ring until resume. */
static void test_pause_gate(void)
{
	struct rig r;
	struct rig_opts o = { .queues = 1, .threads = 1, .event_idx = true };
	pthread_t t;

	rig_up_with(&r, &o);
	fuse_init(&r);
	slow_install(&r);
	add_getattr(&r, 1, 0);
	publish(&r, 1);
	slow_wait_inside(1);
	virtio_fs_pause(r.fs);
	for (unsigned i = 1; i < 4; i++)
		add_getattr(&r, 1, i);
	publish(&r, 1);
	pthread_create(&t, NULL, slow_release_later, NULL);
	virtio_fs_wait_idle(r.fs);
	pthread_join(t, NULL);
	/* The one popped is answered, the three others were never taken. */
	struct virtqueue *vq = &r.fs->vqs[1];
	CHECK_EQ(vd_used_idx(&r.vq[1]), (uint16_t)(r.vq[1].last_used + 1));
	CHECK_EQ(vq->last_avail_idx, (uint16_t)(r.vq[1].last_used + 1));
	usleep(50 * 1000);
	event_loop_once(&r.loop, 0);
	CHECK_EQ(vd_used_pending(&r.vq[1]), 1);
	CHECK_EQ(ctrs(&r).pauses, 1);
	/* A second holder (a snapshot while the VM is paused): one resume
	 * leaves the gate closed; a pause counts once however many hold it. */
	virtio_fs_pause(r.fs);
	virtio_fs_resume(r.fs);
	usleep(50 * 1000);
	event_loop_once(&r.loop, 0);
	CHECK_EQ(vd_used_pending(&r.vq[1]), 1);
	CHECK_EQ(ctrs(&r).pauses, 1);
	virtio_fs_resume(r.fs);
	CHECK(wait_used(&r, 1, 4));
	for (int i = 0; i < 4; i++) {
		uint32_t id, len;
		CHECK_EQ(get_used(&r, 1, &id, &len), 1);
		CHECK_EQ(len, sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out));
	}
	r.be->ops = slow.real;
	rig_down(&r);
}

/* Reset (the transport going away) with requests in flight and more in the
 * ring: it waits for the ones in the backend, then the queues stop; after
 * a new activation the rest are served. */
static void test_reset_with_requests_in_flight(void)
{
	struct rig r;
	struct rig_opts o = { .queues = 1, .threads = 3, .event_idx = true };
	pthread_t t;

	rig_up_with(&r, &o);
	fuse_init(&r);
	slow_install(&r);
	for (unsigned i = 0; i < 8; i++)
		add_getattr(&r, 1, i);
	publish(&r, 1);
	slow_wait_inside(3);
	pthread_create(&t, NULL, slow_release_later, NULL);
	/* What vhost-user's ring disable does: reset, then stop the queues. */
	uint16_t before = r.fs->vqs[1].last_avail_idx;
	virtio_device_deactivate(&r.fs->vdev);
	pthread_join(t, NULL);
	CHECK(!r.fs->vqs[1].started);
	/* Every chain taken was answered before the queues stopped. */
	uint16_t taken = r.fs->vqs[1].last_avail_idx;
	CHECK(taken >= before);
	CHECK_EQ(vd_used_idx(&r.vq[1]), taken);
	/* The interrupt for them was sent during reset, on this thread. */
	CHECK(r.tr.used_signals[1] >= 1);
	CHECK_EQ(r.tr.wrong_thread, 0);
	/* Restart where the ring was left (vhost-user's SET_VRING_BASE). */
	CHECK_EQ(virtio_device_activate(&r.fs->vdev), 0);
	CHECK(wait_used(&r, 1, 8));
	CHECK_EQ(vd_used_pending(&r.vq[1]), 8);
	for (int i = 0; i < 8; i++) {
		uint32_t id, len;
		CHECK_EQ(get_used(&r, 1, &id, &len), 1);
		CHECK_EQ(len, sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out));
	}
	r.be->ops = slow.real;
	rig_down(&r);
}

/*
 * Many workers, several request queues, batches of requests kicked only
 * when the driver's view of suppression says so: every request answered
 * exactly once, nothing lost to a missed kick. With polling workers the
 * requests are READs (polling follows data), else GETATTRs.
 */
static void stress(bool event_idx, bool indirect, unsigned poll_us)
{
	struct rig r;
	struct rig_opts o = { .queues = 3, .threads = 6, .event_idx = event_idx, .qsize = 64,
			      .poll_us = poll_us };
	unsigned total = 0, files = 0;
	uint64_t node = 0, fh = 0;
	uint32_t reply_len = sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out);

	rig_up_with(&r, &o);
	r.indirect = indirect;
	fuse_init(&r);
	if (poll_us) {
		fh = data_file(&r, &node);
		files = 2;                   /* its CREATE and WRITE */
		reply_len = sizeof(struct fuse_out_header) + DATA_LEN;
	}
	for (unsigned round = 0; round < 200; round++) {
		unsigned n[4] = { 0 };
		for (unsigned k = 0; k < 1 + round % 40; k++) {
			unsigned q = 1 + (k + round) % 3;
			if (poll_us)
				add_read(&r, q, (q - 1) * 64 + n[q], node, fh);
			else
				add_getattr(&r, q, (q - 1) * 64 + n[q]);
			n[q]++;
			/* Publish in bits, as a driver with several submitters would. */
			if (k % 3 == 2)
				publish(&r, q);
		}
		for (unsigned q = 1; q <= 3; q++)
			publish(&r, q);
		for (unsigned q = 1; q <= 3; q++) {
			CHECK(wait_used(&r, q, n[q]));
			for (unsigned i = 0; i < n[q]; i++) {
				uint32_t id, len;
				CHECK_EQ(get_used(&r, q, &id, &len), 1);
				CHECK_EQ(len, reply_len);
			}
			total += n[q];
		}
		if (check_case_failed)
			break;
	}
	struct virtio_fs_counters c = ctrs(&r);
	CHECK_EQ(c.rx_requests, total + 1 + files);
	CHECK_EQ(c.used_add_failed, 0);
	CHECK_EQ(r.tr.wrong_thread, 0);
	/* Kicks were suppressed at least some of the time. */
	uint64_t kicks = r.vq[1].kicks + r.vq[2].kicks + r.vq[3].kicks;
	CHECK(kicks < total + files);
	/* Polling workers found requests without a kick, and only then. */
	if (poll_us)
		CHECK(c.rx_requests_polled > 0);
	else
		CHECK_EQ(c.rx_requests_polled + c.rx_polls_timed_out, 0);
	rig_down(&r);
}

static void test_stress_event_idx(void)
{
	stress(true, false, 0);
}

static void test_stress_flags_indirect(void)
{
	stress(false, true, 0);
}

/* The same with workers polling: kicks suppressed while one polls, so a
 * chain published then is found by the poll or by the recheck as kicks
 * come back on, never lost. */
static void test_stress_polling(void)
{
	stress(true, false, 500);
	stress(false, true, 500);
}

/*
 * A worker polling for the next request (up to 1 ms here) is inside the
 * gate: a pause waits for it, and a request the driver makes during the
 * pause waits for the resume (the poll sees the pause and does not take
 * it, or hands it back), never answered while paused nor lost. Each round
 * first sends READs one after another, so the worker's window grows to the
 * full 1 ms and the pause comes while it polls.
 */
static void test_pause_ends_poll(void)
{
	struct rig r;
	struct rig_opts o = { .queues = 1, .threads = 1, .event_idx = true,
			      .poll_us = VIRTIO_FS_MAX_POLL_US };
	uint64_t node, fh;

	rig_up_with(&r, &o);
	fuse_init(&r);
	fh = data_file(&r, &node);
	for (unsigned round = 0; round < 50; round++) {
		for (unsigned i = 0; i < 12; i++) {
			uint32_t id, len;
			add_read(&r, 1, 0, node, fh);
			publish(&r, 1);
			CHECK(wait_used(&r, 1, 1));
			CHECK_EQ(get_used(&r, 1, &id, &len), 1);
		}
		virtio_fs_pause(r.fs);
		virtio_fs_wait_idle(r.fs);
		add_read(&r, 1, 1, node, fh);
		publish(&r, 1);
		usleep(2000);
		CHECK_EQ(vd_used_pending(&r.vq[1]), 0);
		virtio_fs_resume(r.fs);
		CHECK(wait_used(&r, 1, 1));
		uint32_t id, len;
		CHECK_EQ(get_used(&r, 1, &id, &len), 1);
		CHECK_EQ(len, sizeof(struct fuse_out_header) + DATA_LEN);
		if (check_case_failed)
			break;
	}
	CHECK(ctrs(&r).rx_requests_polled > 0);
	CHECK(ctrs(&r).rx_polls_timed_out > 0);
	rig_down(&r);
}

static void test_poisoned_queue_needs_reset(void)
{
	struct rig r;

	rig_up(&r);
	fuse_init(&r);
	/* The avail index runs more than the ring size ahead. */
	vd_raw_avail_idx(&r.vq[1], (uint16_t)(r.vq[1].avail_idx + 1000));
	r.fs->vdev.ops->queue_notify(&r.fs->vdev, 1);
	uint64_t end = now_ms() + 5000;
	while (!r.fs->vdev.needs_reset && now_ms() < end)
		event_loop_once(&r.loop, 1);
	CHECK(r.fs->vdev.needs_reset);
	CHECK_EQ(r.tr.config_signals, 1);
	CHECK_EQ(r.tr.wrong_thread, 0);
	/* More kicks: still counted once. */
	r.fs->vdev.ops->queue_notify(&r.fs->vdev, 1);
	usleep(20 * 1000);
	event_loop_once(&r.loop, 0);
	CHECK_EQ(ctrs(&r).avail_index_invalid, 1);
	CHECK_EQ(r.tr.config_signals, 1);
	rig_down(&r);
}

/* The notification queue's used entry: its head and length. */
static void expect_notify_used(struct rig *r, int head, uint32_t want_len)
{
	uint32_t id, len;

	CHECK(wait_used(r, VIRTIO_FS_NOTIFY_QUEUE, 1));
	CHECK_EQ(get_used(r, VIRTIO_FS_NOTIFY_QUEUE, &id, &len), 1);
	CHECK_EQ(id, (uint32_t)head);
	CHECK_EQ(len, want_len);
}

/*
 * Spec layout with VIRTIO_FS_F_NOTIFICATION: requests on queue 2, buffers on
 * queue 1. A notification lands in the next usable buffer with the exact
 * bytes (unique 0, error = code); unusable buffers are completed with 0 and
 * counted; with no buffer, or paused, it is dropped and counted.
 */
static void test_notifications(void)
{
	struct rig r;
	struct rig_opts o = { .queues = 1, .threads = 2, .event_idx = true, .notification = true };
	uint32_t id, len;

	rig_up_with(&r, &o);
	CHECK(r.fs->notify_negotiated);
	CHECK(fuse_server_notify_possible(r.srv));
	CHECK_EQ(r.rq, 2);
	fuse_init(&r);                           /* served on queue 2 */
	CHECK_EQ(r.fs->q[2].requests, 1);
	struct fuse_notify_inval_inode_out inval = { .ino = 42, .off = 0, .len = -1 };
	CHECK_EQ(virtio_fs_notify(r.fs, FUSE_NOTIFY_INVAL_INODE, &inval, sizeof(inval)), -ENOBUFS);

	/* A buffer too small for notify_buf_size, one with a readable part, then
	 * a good one in two pieces (the header straddles them). Kicking queue 1
	 * does not consume them. */
	uint64_t nb = r.pool + (4u << 20);
	struct vd_buf small = { nb, 24, true };
	struct vd_buf mixed[2] = { { nb + 4096, 16, false }, { nb + 8192, 512, true } };
	struct vd_buf split[2] = { { nb + 12288, 10, true }, { nb + 16384, 400, true } };
	int h_small = vd_add_chain(&r.vq[1], &small, 1, false);
	int h_mixed = vd_add_chain(&r.vq[1], mixed, 2, false);
	int h_good = vd_add_chain(&r.vq[1], split, 2, true);
	CHECK(h_small >= 0 && h_mixed >= 0 && h_good >= 0);
	vd_fill(&r.mem, nb, 0xee, 20480);
	vd_publish(&r.vq[1]);
	r.fs->vdev.ops->queue_notify(&r.fs->vdev, 1);
	settle(&r);
	CHECK_EQ(vd_used_pending(&r.vq[1]), 0);

	CHECK_EQ(virtio_fs_notify(r.fs, FUSE_NOTIFY_INVAL_INODE, &inval, sizeof(inval)), 0);
	CHECK(wait_used(&r, 1, 3));
	CHECK_EQ(get_used(&r, 1, &id, &len), 1);
	CHECK_EQ(id, (uint32_t)h_small);
	CHECK_EQ(len, 0);
	CHECK_EQ(get_used(&r, 1, &id, &len), 1);
	CHECK_EQ(id, (uint32_t)h_mixed);
	CHECK_EQ(len, 0);
	CHECK_EQ(get_used(&r, 1, &id, &len), 1);
	CHECK_EQ(id, (uint32_t)h_good);
	CHECK_EQ(len, 40);
	uint8_t got[64], want[64];
	struct fuse_out_header oh = { .len = 40, .error = FUSE_NOTIFY_INVAL_INODE, .unique = 0 };
	memcpy(want, &oh, 16);
	memcpy(want + 16, &inval, 24);
	vd_read(&r.mem, nb + 12288, got, 10);
	vd_read(&r.mem, nb + 16384, got + 10, 30);
	CHECK(memcmp(got, want, 40) == 0);
	vd_read(&r.mem, nb + 16384 + 30, got, 1);
	CHECK_EQ(got[0], 0xee);                 /* nothing written past the message */
	CHECK(r.tr.used_signals[1] >= 1);
	CHECK_EQ(r.tr.wrong_thread, 0);

	/* Through the server, as the watcher sends them: INVAL_ENTRY's exact
	 * bytes, the name's NUL included. */
	struct vd_buf one = { nb + 20480, VIRTIO_FS_NOTIFY_BUF_SIZE, true };
	int h = vd_add_chain(&r.vq[1], &one, 1, false);
	vd_publish(&r.vq[1]);
	CHECK_EQ(fuse_server_notify_inval_entry(r.srv, 7, "name", 4), 0);
	expect_notify_used(&r, h, 16 + 16 + 5);
	struct fuse_notify_inval_entry_out eo = { .parent = 7, .namelen = 4 };
	oh = (struct fuse_out_header){ .len = 37, .error = FUSE_NOTIFY_INVAL_ENTRY };
	memcpy(want, &oh, 16);
	memcpy(want + 16, &eo, 16);
	memcpy(want + 32, "name", 5);
	vd_read(&r.mem, nb + 20480, got, 37);
	CHECK(memcmp(got, want, 37) == 0);

	/* No buffer left: dropped, counted at both levels. */
	CHECK_EQ(fuse_server_notify_inval_inode(r.srv, 9, 0, 0), -ENOBUFS);
	/* Larger than notify_buf_size. */
	static uint8_t big[VIRTIO_FS_NOTIFY_BUF_SIZE];
	CHECK_EQ(virtio_fs_notify(r.fs, FUSE_NOTIFY_INVAL_ENTRY, big, sizeof(big)), -EMSGSIZE);
	/* Paused: nothing is written into the guest, the buffer stays. */
	h = vd_add_chain(&r.vq[1], &one, 1, false);
	vd_publish(&r.vq[1]);
	virtio_fs_pause(r.fs);
	CHECK_EQ(virtio_fs_notify(r.fs, FUSE_NOTIFY_INVAL_INODE, &inval, sizeof(inval)), -ENOBUFS);
	virtio_fs_resume(r.fs);
	settle(&r);
	CHECK_EQ(vd_used_pending(&r.vq[1]), 0);
	CHECK_EQ(virtio_fs_notify(r.fs, FUSE_NOTIFY_INVAL_INODE, &inval, sizeof(inval)), 0);
	expect_notify_used(&r, h, 40);

	struct virtio_fs_counters c = ctrs(&r);
	CHECK_EQ(c.tx_notify_sent, 3);
	CHECK_EQ(c.tx_notify_dropped_no_buffer, 3);
	CHECK_EQ(c.tx_notify_dropped_too_big, 1);
	CHECK_EQ(c.notify_buffers_invalid, 2);
	CHECK_EQ(c.rx_requests, 1);              /* queue 1 buffers are not requests */
	struct fuse_server_counters sc;
	fuse_server_get_counters(r.srv, &sc);
	CHECK_EQ(sc.notify_sent, 1);
	CHECK_EQ(sc.notify_failed, 1);
	rig_down(&r);
}

/* Offered but not taken (a stock driver), or not offered: the classic
 * layout (queue 1 serves requests), nothing is ever written for a
 * notification, and write-only hiprio chains are given back unused. */
static void test_notifications_not_negotiated(void)
{
	for (int offered = 0; offered < 2; offered++) {
		struct rig r;
		struct rig_opts o = { .queues = 1, .threads = 2, .event_idx = true,
				      .offer_only = offered };
		uint32_t id, len;

		rig_up_with(&r, &o);
		CHECK_EQ(r.fs->vdev.num_queues, 2);
		CHECK(!fuse_server_notify_possible(r.srv));   /* nothing to watch for */
		fuse_init(&r);                   /* on queue 1 */
		CHECK_EQ(virtio_fs_notify(r.fs, FUSE_NOTIFY_INVAL_INODE, "x", 1), -EOPNOTSUPP);
		CHECK_EQ(fuse_server_notify_inval_inode(r.srv, 1, 0, 0), -EOPNOTSUPP);
		struct vd_buf b = { r.pool + (4u << 20), 4096, true };
		vd_add_chain(&r.vq[0], &b, 1, false);
		publish(&r, 0);
		CHECK(wait_used(&r, 0, 1));
		CHECK_EQ(get_used(&r, 0, &id, &len), 1);
		CHECK_EQ(len, 0);
		struct virtio_fs_counters c = ctrs(&r);
		CHECK_EQ(c.hiprio_buffers_refused, 1);
		CHECK_EQ(c.tx_notify_dropped_not_negotiated, 2);
		CHECK_EQ(c.tx_notify_sent, 0);
		struct fuse_server_counters sc;
		fuse_server_get_counters(r.srv, &sc);
		CHECK_EQ(sc.notify_dropped, 1);
		rig_down(&r);
	}
}

/* After a reset nothing is written, even with buffers in the ring. */
static void test_notify_after_reset(void)
{
	struct rig r;
	struct rig_opts o = { .queues = 1, .threads = 1, .event_idx = false, .notification = true };

	rig_up_with(&r, &o);
	struct vd_buf b = { r.pool, 4096, true };
	vd_add_chain(&r.vq[1], &b, 1, false);
	vd_publish(&r.vq[1]);
	virtio_device_deactivate(&r.fs->vdev);
	CHECK_EQ(virtio_fs_notify(r.fs, FUSE_NOTIFY_POLL, "12345678", 8), -ENOBUFS);
	CHECK_EQ(vd_used_pending(&r.vq[1]), 0);
	CHECK_EQ(ctrs(&r).tx_notify_dropped_no_buffer, 1);
	rig_down(&r);
}

/* Counter names are unique and every one is printed, with the server's. */
static void test_counter_dump(void)
{
	struct rig r;
	char *buf = NULL;
	size_t size = 0;

	rig_up(&r);
	fuse_init(&r);
	FILE *f = open_memstream(&buf, &size);
	r.fs->vdev.ops->visit_counters(&r.fs->vdev, COUNTER_SINK_FILE(f));
	fclose(f);
	CHECK(strstr(buf, "rx_requests 1\n") != NULL);
	CHECK(strstr(buf, "queue0_requests 0\n") != NULL);
	CHECK(strstr(buf, "queue1_requests 1\n") != NULL);
	CHECK(strstr(buf, "hiprio_forgets 0\n") != NULL);
	CHECK(strstr(buf, "fuse_requests 1\n") != NULL);
#define X(name, doc) CHECK(strstr(buf, #name " ") != NULL);
	VIRTIO_FS_COUNTERS(X)
#undef X
	free(buf);
	rig_down(&r);
}

/* ---- memfs on its own -------------------------------------------------------- */

static const struct fs_ctx root_ctx = { .uid = 0, .gid = 0, .pid = 1 };

struct collect {
	struct fs_dir_sink sink;
	unsigned n, limit;
	char names[64][32];
	uint64_t offs[64];
};

static bool collect_room(struct fs_dir_sink *s, size_t namelen)
{
	struct collect *c = container_of(s, struct collect, sink);
	return c->n < c->limit;
}

static void collect_add(struct fs_dir_sink *s, const struct fs_dirent *de, const struct fs_entry *e)
{
	struct collect *c = container_of(s, struct collect, sink);
	snprintf(c->names[c->n], sizeof(c->names[0]), "%.*s", (int)de->namelen, de->name);
	c->offs[c->n++] = de->off;
}

/* A device given a DAX window announces it as shared memory region 0 and a
 * driver reset empties it. A snapshot is no longer refused for the window
 * (test_fs_state.c saves and restores its mappings): here only for the
 * rig's memfs backend. */
static void test_dax_window(void)
{
	struct rig r;
	int err = 0;
	struct dax_window *win = dax_window_new(DAX_WINDOW_MIN_SIZE, &err);
	int fd = memfd_create("dax-test", 0);
	int fds[2];

	CHECK(win != NULL);
	CHECK(fd >= 0 && ftruncate(fd, 8192) == 0 && pipe(fds) == 0);
	rig_up(&r);
	virtio_fs_set_dax(r.fs, &win->fuse, 0x100000000ull);
	CHECK_EQ(r.fs->vdev.num_shm, 1);
	CHECK_EQ(r.fs->vdev.shm[0].id, VIRTIO_FS_SHMCAP_ID_CACHE);
	CHECK_EQ(r.fs->vdev.shm[0].base, 0x100000000ull);
	CHECK_EQ(r.fs->vdev.shm[0].len, DAX_WINDOW_MIN_SIZE);

	CHECK_EQ(win->fuse.map(&win->fuse, fd, 0, 4096, 8192, true), 0);
	CHECK_EQ(write(fds[1], win->host + 4096, 1), 1);    /* mapped: readable */
	struct state_writer w;
	struct errbuf eb = { 0 };
	state_writer_init(&w);
	virtio_fs_pause(r.fs);
	virtio_fs_wait_idle(r.fs);
	CHECK_EQ(virtio_fs_state_save(r.fs, &w, &eb), -EOPNOTSUPP);
	CHECK(strstr(eb.msg, "memfs") != NULL && !strstr(eb.msg, "DAX"));
	virtio_fs_resume(r.fs);
	state_writer_free(&w);
	virtio_device_reset(&r.fs->vdev);
	CHECK(write(fds[1], win->host + 4096, 1) < 0 && errno == EFAULT);
	rig_down(&r);
	dax_window_free(win);
	close(fd);
	close(fds[0]);
	close(fds[1]);
}

static void test_memfs_basics(void)
{
	int err;
	struct fs_backend *be = memfs_new(NULL, &err);
	const struct fs_backend_ops *op = be->ops;
	struct fs_entry d, f, g;
	struct stat st;
	uint64_t fh;
	char buf[64];

	CHECK_EQ(op->mkdir(be, &root_ctx, FUSE_ROOT_ID, "d", 0755, &d), 0);
	CHECK_EQ(op->mkdir(be, &root_ctx, FUSE_ROOT_ID, "d", 0755, &g), -EEXIST);
	CHECK_EQ(op->create(be, &root_ctx, d.nodeid, "f", S_IFREG | 0600, O_RDWR, &f, &fh), 0);
	struct iovec iov = { (void *)"hello", 5 };
	CHECK_EQ(op->write(be, &root_ctx, fh, 10, &iov, 1), 5);
	struct iovec rd = { buf, sizeof(buf) };
	memset(buf, 'x', sizeof(buf));
	CHECK_EQ(op->read(be, fh, 0, &rd, 1), 15);
	CHECK(memcmp(buf, "\0\0\0\0\0\0\0\0\0\0hello", 15) == 0);
	/* Sparse: truncate far up costs nothing, reads back zeros. */
	struct fs_setattr sa = { .valid = FATTR_SIZE, .size = 5ull << 30 };
	CHECK_EQ(op->setattr(be, &root_ctx, f.nodeid, &sa, &st), 0);
	CHECK_EQ(st.st_size, 5ll << 30);
	CHECK_EQ(op->read(be, fh, (5ull << 30) - 8, &rd, 1), 8);
	CHECK_EQ(buf[0], 0);
	struct memfs_stats ms;
	memfs_get_stats(be, &ms);
	CHECK(ms.bytes < (1u << 20));
	/* Hard link, rename over it, nlink follows. */
	CHECK_EQ(op->link(be, &root_ctx, f.nodeid, FUSE_ROOT_ID, "l", &g), 0);
	CHECK_EQ(g.st.st_nlink, 2);
	CHECK_EQ(op->rename(be, &root_ctx, d.nodeid, "f", FUSE_ROOT_ID, "l", 0), 0);
	CHECK_EQ(op->getattr(be, &root_ctx, f.nodeid, &st), 0);
	CHECK_EQ(st.st_nlink, 2);   /* POSIX: rename between links of one file does nothing */
	CHECK_EQ(op->unlink(be, &root_ctx, d.nodeid, "f"), 0);
	CHECK_EQ(op->getattr(be, &root_ctx, f.nodeid, &st), 0);
	CHECK_EQ(st.st_nlink, 1);
	/* Directory rules. */
	CHECK_EQ(op->mkdir(be, &root_ctx, d.nodeid, "sub", 0755, &g), 0);
	CHECK_EQ(op->rmdir(be, &root_ctx, FUSE_ROOT_ID, "d"), -ENOTEMPTY);
	CHECK_EQ(op->rename(be, &root_ctx, FUSE_ROOT_ID, "d", g.nodeid, "loop", 0), -EINVAL);
	CHECK_EQ(op->rename(be, &root_ctx, FUSE_ROOT_ID, "l", d.nodeid, "sub", 0), -EISDIR);
	CHECK_EQ(op->rename(be, &root_ctx, d.nodeid, "sub", FUSE_ROOT_ID, "l", RENAME_NOREPLACE),
		 -EEXIST);
	CHECK_EQ(op->rename(be, &root_ctx, d.nodeid, "sub", FUSE_ROOT_ID, "l", RENAME_EXCHANGE), 0);
	CHECK_EQ(op->getattr(be, &root_ctx, d.nodeid, &st), 0);
	CHECK_EQ(st.st_nlink, 2);   /* "sub" left d */
	CHECK_EQ(op->getattr(be, &root_ctx, FUSE_ROOT_ID, &st), 0);
	CHECK_EQ(st.st_nlink, 4);   /* ".", "..", d and the directory now called "l" */
	struct fs_entry e;
	CHECK_EQ(op->lookup(be, &root_ctx, d.nodeid, "sub", &e), 0);
	CHECK_EQ(e.nodeid, f.nodeid);
	/* Unlinked while open: still readable until released and forgotten. */
	CHECK_EQ(op->unlink(be, &root_ctx, d.nodeid, "sub"), 0);
	CHECK_EQ(op->read(be, fh, 10, &rd, 1), sizeof(buf));
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_EQ(op->release(be, fh), 0);
	CHECK_EQ(op->release(be, fh), -EBADF);
	CHECK_EQ(op->getattr(be, &root_ctx, f.nodeid, &st), 0);   /* lookups still held */
	op->forget(be, f.nodeid, 100);
	CHECK_EQ(op->getattr(be, &root_ctx, f.nodeid, &st), -ESTALE);
	/* A forged handle or node id is refused. */
	CHECK_EQ(op->read(be, fh ^ (1ull << 40), 0, &rd, 1), -EBADF);
	CHECK_EQ(op->getattr(be, &root_ctx, 1u << 30, &st), -ESTALE);
	/* Xattrs. */
	CHECK_EQ(op->setxattr(be, &root_ctx, d.nodeid, "user.a", "1", 1, XATTR_REPLACE), -ENODATA);
	CHECK_EQ(op->setxattr(be, &root_ctx, d.nodeid, "user.a", "12", 2, 0), 0);
	CHECK_EQ(op->setxattr(be, &root_ctx, d.nodeid, "system.x", "1", 1, 0), -EOPNOTSUPP);
	CHECK_EQ(op->getxattr(be, &root_ctx, d.nodeid, "user.a", NULL, 0), 2);
	CHECK_EQ(op->getxattr(be, &root_ctx, d.nodeid, "user.a", buf, 1), -ERANGE);
	CHECK_EQ(op->listxattr(be, &root_ctx, d.nodeid, buf, sizeof(buf)), 7);
	CHECK_EQ(op->removexattr(be, &root_ctx, d.nodeid, "user.a"), 0);
	CHECK_EQ(op->listxattr(be, &root_ctx, d.nodeid, NULL, 0), 0);
	/* Symlinks. */
	CHECK_EQ(op->symlink(be, &root_ctx, FUSE_ROOT_ID, "s", "../../etc/passwd", &e), 0);
	CHECK_EQ(op->readlink(be, &root_ctx, e.nodeid, buf, sizeof(buf)), 16);
	CHECK_EQ(op->readlink(be, &root_ctx, e.nodeid, buf, 4), -ENAMETOOLONG);
	fs_backend_destroy(be);
}

static void test_memfs_readdir_cookies(void)
{
	int err;
	struct fs_backend *be = memfs_new(NULL, &err);
	const struct fs_backend_ops *op = be->ops;
	struct fs_entry e;
	uint64_t dh;
	char name[16];

	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		CHECK_EQ(op->mknod(be, &root_ctx, FUSE_ROOT_ID, name, S_IFREG | 0644, 0, &e), 0);
	}
	CHECK_EQ(op->opendir(be, &root_ctx, FUSE_ROOT_ID, 0, &dh), 0);
	struct collect c = { .sink = { .room = collect_room, .add = collect_add }, .limit = 5 };
	CHECK_EQ(op->readdir(be, &root_ctx, dh, 0, &c.sink), 0);
	CHECK_EQ(c.n, 5);
	CHECK(!strcmp(c.names[0], ".") && !strcmp(c.names[1], ".."));
	CHECK(!strcmp(c.names[4], "n2"));
	/* Entries before the cookie go away: the listing resumes at n3. */
	CHECK_EQ(op->unlink(be, &root_ctx, FUSE_ROOT_ID, "n0"), 0);
	CHECK_EQ(op->unlink(be, &root_ctx, FUSE_ROOT_ID, "n2"), 0);
	uint64_t resume = c.offs[4];
	c.n = 0;
	c.limit = 64;
	CHECK_EQ(op->readdir(be, &root_ctx, dh, resume, &c.sink), 0);
	CHECK_EQ(c.n, 7);
	CHECK(!strcmp(c.names[0], "n3"));
	CHECK(!strcmp(c.names[6], "n9"));
	CHECK_EQ(op->releasedir(be, dh), 0);
	CHECK_EQ(op->release(be, dh), -EBADF);
	fs_backend_destroy(be);
}

static void test_memfs_limits(void)
{
	int err;
	struct memfs_opts o = { .max_bytes = 1u << 20, .max_nodes = 4 };
	struct fs_backend *be = memfs_new(&o, &err);
	const struct fs_backend_ops *op = be->ops;
	struct fs_entry e;
	uint64_t fh;
	static char block[600 * 1024];

	CHECK_EQ(op->create(be, &root_ctx, FUSE_ROOT_ID, "a", S_IFREG | 0644, O_WRONLY, &e, &fh), 0);
	uint64_t file = e.nodeid;
	struct iovec iov = { block, sizeof(block) };
	CHECK_EQ(op->write(be, &root_ctx, fh, 0, &iov, 1), sizeof(block));
	CHECK_EQ(op->write(be, &root_ctx, fh, sizeof(block), &iov, 1), -ENOSPC);
	CHECK_EQ(op->write(be, &root_ctx, fh, 1ull << 41, &iov, 1), -EFBIG);
	struct iovec none = { block, 0 };
	CHECK_EQ(op->write(be, &root_ctx, fh, 1ull << 30, &none, 1), 0);
	CHECK_EQ(op->mkdir(be, &root_ctx, FUSE_ROOT_ID, "b", 0755, &e), 0);
	CHECK_EQ(op->mkdir(be, &root_ctx, FUSE_ROOT_ID, "c", 0755, &e), 0);
	CHECK_EQ(op->mkdir(be, &root_ctx, FUSE_ROOT_ID, "d", 0755, &e), -ENOSPC);
	/* Names cost memory too: hard links run out of room, not of host RAM. */
	char name[32];
	int links, rc = 0;
	for (links = 0; links < 100000 && !rc; links++) {
		snprintf(name, sizeof(name), "link%d", links);
		rc = op->link(be, &root_ctx, file, FUSE_ROOT_ID, name, &e);
	}
	CHECK_EQ(rc, -ENOSPC);
	CHECK(links > 1000 && links < 100000);
	/* Handles are bounded. */
	uint64_t h2;
	int opened = 0;
	while (opened < 70000 && op->opendir(be, &root_ctx, FUSE_ROOT_ID, 0, &h2) == 0)
		opened++;
	CHECK_EQ(opened, 65536 - 1);     /* one is the open file above */
	CHECK_EQ(op->opendir(be, &root_ctx, FUSE_ROOT_ID, 0, &h2), -ENFILE);
	/* reset drops the client's handles and lookups, not the tree. */
	op->reset(be);
	struct memfs_stats st;
	memfs_get_stats(be, &st);
	CHECK_EQ(st.handles, 0);
	CHECK_EQ(st.lookups, 0);
	CHECK_EQ(st.nodes, 4);
	CHECK_EQ(op->lookup(be, &root_ctx, FUSE_ROOT_ID, "a", &e), 0);
	CHECK_EQ(e.st.st_size, sizeof(block));
	fs_backend_destroy(be);
}

int main(void)
{
	RUN_TEST(test_config_and_features);
	RUN_TEST(test_requests_roundtrip);
	RUN_TEST(test_reply_never_exceeds_writable);
	RUN_TEST(test_request_over_cap_refused);
	RUN_TEST(test_malformed_chains);
	RUN_TEST(test_hiprio_forget);
	RUN_TEST(test_pause_gate);
	RUN_TEST(test_reset_with_requests_in_flight);
	RUN_TEST(test_stress_event_idx);
	RUN_TEST(test_stress_flags_indirect);
	RUN_TEST(test_stress_polling);
	RUN_TEST(test_pause_ends_poll);
	RUN_TEST(test_poisoned_queue_needs_reset);
	RUN_TEST(test_notifications);
	RUN_TEST(test_notifications_not_negotiated);
	RUN_TEST(test_notify_after_reset);
	RUN_TEST(test_counter_dump);
	RUN_TEST(test_dax_window);
	RUN_TEST(test_oversized_reply_guard);
	RUN_TEST(test_memfs_basics);
	RUN_TEST(test_memfs_readdir_cookies);
	RUN_TEST(test_memfs_limits);
	return CHECK_DONE();
}
