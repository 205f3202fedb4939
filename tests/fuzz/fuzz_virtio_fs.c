/*
 * libFuzzer target: FUSE request dispatch on real descriptor chains through
 * the virtio-fs device (worker threads, memfs behind the FUSE server).
 *
 * The input is a 2-byte header (ring features, notification feature, whether
 * to open the session with a valid FUSE_INIT and a created file) followed by
 * operations: FUSE
 * requests of any opcode (well-shaped arguments and names, or raw bytes,
 * with the header's length right or wrong) split over several readable and
 * writable buffers, direct or indirect, on any queue; write-only chains on
 * any queue (notification buffers on queue 1 when the feature is
 * negotiated: the spec layout moves the request queues to 2..); chains
 * with a buffer outside guest memory; publishes with or without the kick
 * the driver would send; notifications, raw and through the server
 * (INVAL_ENTRY with fuzzed names); pause / resume; and draining, which
 * feeds node ids and file handles from replies back into later requests.
 *
 * Checked besides ASan/UBSan:
 *  - each chain is completed exactly once (vd_get_used: never a head that
 *    is not outstanding), and at the end of the input every chain that has
 *    a request has been completed;
 *  - the used length never exceeds the chain's writable bytes; a non-zero
 *    one is a whole reply: at least a fuse_out_header whose len equals the
 *    used length, whose unique is the request's, whose error is 0 or -errno;
 *    hiprio chains are completed with 0; notification-queue chains with 0
 *    (unusable) or a whole notification (unique 0, len = used length);
 *  - after a pause and wait-idle no request-queue chain is popped and
 *    unanswered;
 *  - every completion is exactly one outcome in the device's counters, and
 *    interrupts are sent only from this (the loop) thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fuse.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "fuse/fuse_server.h"
#include "fs/memfs.h"
#include "fs/virtio_fs.h"
#include "fuzz_input.h"
#include "vdriver.h"

#define MEM_BASE   0x40000000ull
#define MEM_SIZE   (8u << 20)
#define MEM_SPLIT  (4u << 20)
#define NQ         4              /* hiprio, notification (when negotiated), 2 request queues */
#define NREQ       2
#define QSIZE      64
#define MAX_OPS    200
#define MAX_BODY   8192
#define MAX_WRITABLE (96u * 1024)
#define MAX_PIECES 4
#define NIDS       8

#define FAIL(...) FUZZ_FAIL("fuzz_virtio_fs", __VA_ARGS__)


/* ---- the world ---- */

static struct vd_mem mem;
static struct event_loop loop;
static struct vd_queue dq[NQ];
static struct virtio_fs dev;
static struct fs_backend *backend;
static struct fuse_server *server;
static uint64_t pool_base, pool_end, pool_next;
static pthread_t loop_thread;

static struct {
	struct virtio_transport t;
	uint64_t used[NQ];
	uint64_t config;
	uint64_t wrong_thread;
} tr;

static void tr_signal_used(struct virtio_transport *t, unsigned q)
{
	if (!pthread_equal(pthread_self(), loop_thread))
		tr.wrong_thread++;
	if (q < NQ)
		tr.used[q]++;
}

static void tr_signal_config(struct virtio_transport *t)
{
	if (!pthread_equal(pthread_self(), loop_thread))
		tr.wrong_thread++;
	tr.config++;
}

static const struct virtio_transport_ops tr_ops = {
	.signal_used = tr_signal_used,
	.signal_config = tr_signal_config,
};

/* What the driver remembers about each outstanding head. */
struct chain_info {
	bool has_request;            /* a readable part: must be completed */
	bool well_formed;            /* header len right, chain valid: unique checks */
	bool readable;               /* has a device-readable part */
	uint32_t opcode;
	uint64_t unique;
	unsigned nwr;
	struct { uint64_t gpa; uint32_t len; } wr[MAX_PIECES];
};

static struct chain_info info[NQ][QSIZE];
static uint64_t unique_next;
static uint64_t nodeids[NIDS], fhs[NIDS];
static unsigned nnodeids, nfhs;
static uint64_t completions, notify_completions;
static unsigned nq, req_base;          /* queues in use, first request queue */
static bool notify_on;                 /* VIRTIO_FS_F_NOTIFICATION negotiated */

static bool is_notify_queue(unsigned q)
{
	return notify_on && q == VIRTIO_FS_NOTIFY_QUEUE;
}

static uint64_t pool_alloc(uint64_t len)
{
	uint64_t at = (pool_next + 15) & ~15ull;

	if (len > pool_end - at || at < pool_next)
		return VD_NO_GPA;
	pool_next = at + len;
	return at;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- replies ---- */

static void remember(uint64_t *tab, unsigned *n, uint64_t v)
{
	if (!v)
		return;
	tab[*n % NIDS] = v;
	(*n)++;
}

/* Read @len bytes at @off of a chain's writable buffers. */
static void read_reply(const struct chain_info *ci, size_t off, void *buf, size_t len)
{
	uint8_t *p = buf;

	memset(buf, 0, len);
	for (unsigned i = 0; i < ci->nwr && len; i++) {
		if (off >= ci->wr[i].len) {
			off -= ci->wr[i].len;
			continue;
		}
		size_t n = MIN(len, ci->wr[i].len - off);
		vd_read(&mem, ci->wr[i].gpa + off, p, n);
		p += n;
		len -= n;
		off = 0;
	}
}

/* Learn ids from a successful reply, for later requests to use. */
static void learn(const struct chain_info *ci, uint32_t len)
{
	const size_t h = sizeof(struct fuse_out_header);
	struct fuse_entry_out e;
	struct fuse_open_out o;

	switch (ci->opcode) {
	case FUSE_LOOKUP: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_SYMLINK: case FUSE_LINK:
		if (len >= h + sizeof(e)) {
			read_reply(ci, h, &e, sizeof(e));
			remember(nodeids, &nnodeids, e.nodeid);
		}
		break;
	case FUSE_CREATE: case FUSE_TMPFILE:
		if (len >= h + sizeof(e) + sizeof(o)) {
			read_reply(ci, h, &e, sizeof(e));
			read_reply(ci, h + sizeof(e), &o, sizeof(o));
			remember(nodeids, &nnodeids, e.nodeid);
			remember(fhs, &nfhs, o.fh);
		}
		break;
	case FUSE_OPEN: case FUSE_OPENDIR:
		if (len >= h + sizeof(o)) {
			read_reply(ci, h, &o, sizeof(o));
			remember(fhs, &nfhs, o.fh);
		}
		break;
	}
}

/* Check one used entry of queue @q against what the driver submitted. */
static void check_used(unsigned q, uint32_t id, uint32_t len)
{
	struct chain_info *ci = &info[q][id];
	struct fuse_out_header oh;

	completions++;
	if (is_notify_queue(q)) {
		notify_completions++;
		if (!len)
			return;
		if (ci->readable)
			FAIL("notification written into a chain with a readable part");
		if (len < sizeof(oh))
			FAIL("notification of %u bytes", len);
		read_reply(ci, 0, &oh, sizeof(oh));
		if (oh.len != len || oh.unique != 0)
			FAIL("notification header len %u unique %llu, used length %u", oh.len,
			     (unsigned long long)oh.unique, len);
		return;
	}
	if (q == VIRTIO_FS_HIPRIO_QUEUE) {
		if (len)
			FAIL("hiprio chain completed with %u bytes", len);
		return;
	}
	if (!len)
		return;
	if (len < sizeof(oh))
		FAIL("reply of %u bytes: shorter than its header", len);
	read_reply(ci, 0, &oh, sizeof(oh));
	if (oh.len != len)
		FAIL("used length %u but reply header says %u (opcode %u)", len, oh.len, ci->opcode);
	if (oh.error > 0 || oh.error < -4095)
		FAIL("reply error %d is not -errno", oh.error);
	if (ci->well_formed && oh.unique != ci->unique)
		FAIL("reply unique %llu for request %llu", (unsigned long long)oh.unique,
		     (unsigned long long)ci->unique);
	if (ci->well_formed && oh.error == 0)
		learn(ci, len);
}

static void collect(void)
{
	uint32_t id, len;

	for (unsigned q = 0; q < nq; q++) {
		for (;;) {
			int r = vd_get_used(&dq[q], &id, &len);
			if (r == 0)
				break;
			if (r < 0)
				FAIL("queue %u: head %u completed twice, or %u bytes into %u writable",
				     q, id, len, id < QSIZE ? dq[q].chain_in_len[id] : 0);
			check_used(q, id, len);
			/* Ask for an interrupt for the next one, as Linux does. */
			vd_set_used_event(&dq[q], dq[q].last_used);
		}
	}
}

/* Outstanding chains of queue @q that carry a request. */
static unsigned requests_outstanding(unsigned q)
{
	unsigned n = 0;

	for (unsigned h = 0; h < QSIZE; h++)
		n += dq[q].outstanding[h] && info[q][h].has_request;
	return n;
}

/* Wait until every request chain is completed (kicking each queue once,
 * as a driver whose kick was lost would not: the device owes it anyway
 * only if kicked, so kick). */
static void drain(void)
{
	uint64_t end = now_ms() + 5000;

	for (unsigned q = 0; q < nq; q++) {
		vd_publish(&dq[q]);
		dev.vdev.ops->queue_notify(&dev.vdev, q);
	}
	for (;;) {
		event_loop_once(&loop, 0);
		collect();
		unsigned left = 0;
		for (unsigned q = 0; q < nq; q++)
			left += requests_outstanding(q);
		if (!left || dev.vdev.needs_reset)
			break;
		if (now_ms() > end)
			FAIL("%u request chains never completed", left);
		usleep(50);
	}
	event_loop_once(&loop, 0);
}

/* ---- building requests ---- */

/* Fixed argument size of the well-shaped form of @opcode, and how many
 * names follow it. */
static size_t arg_shape(uint32_t opcode, unsigned *names)
{
	*names = 0;
	switch (opcode) {
	case FUSE_LOOKUP: case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_REMOVEXATTR:
		*names = 1;
		return 0;
	case FUSE_SYMLINK: *names = 2; return 0;
	case FUSE_MKNOD: *names = 1; return sizeof(struct fuse_mknod_in);
	case FUSE_MKDIR: *names = 1; return sizeof(struct fuse_mkdir_in);
	case FUSE_RENAME: *names = 2; return sizeof(struct fuse_rename_in);
	case FUSE_RENAME2: *names = 2; return sizeof(struct fuse_rename2_in);
	case FUSE_LINK: *names = 1; return sizeof(struct fuse_link_in);
	case FUSE_CREATE: case FUSE_TMPFILE: *names = 1; return sizeof(struct fuse_create_in);
	case FUSE_SETXATTR: *names = 1; return sizeof(struct fuse_setxattr_in);
	case FUSE_GETXATTR: *names = 1; return sizeof(struct fuse_getxattr_in);
	case FUSE_LISTXATTR: return sizeof(struct fuse_getxattr_in);
	case FUSE_FORGET: return sizeof(struct fuse_forget_in);
	case FUSE_BATCH_FORGET: return sizeof(struct fuse_batch_forget_in);
	case FUSE_GETATTR: return sizeof(struct fuse_getattr_in);
	case FUSE_SETATTR: return sizeof(struct fuse_setattr_in);
	case FUSE_OPEN: case FUSE_OPENDIR: return sizeof(struct fuse_open_in);
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS: return sizeof(struct fuse_read_in);
	case FUSE_WRITE: return sizeof(struct fuse_write_in);
	case FUSE_RELEASE: case FUSE_RELEASEDIR: return sizeof(struct fuse_release_in);
	case FUSE_FSYNC: case FUSE_FSYNCDIR: return sizeof(struct fuse_fsync_in);
	case FUSE_FLUSH: return sizeof(struct fuse_flush_in);
	case FUSE_INIT: return sizeof(struct fuse_init_in);
	case FUSE_ACCESS: return sizeof(struct fuse_access_in);
	case FUSE_INTERRUPT: return sizeof(struct fuse_interrupt_in);
	case FUSE_FALLOCATE: return sizeof(struct fuse_fallocate_in);
	case FUSE_LSEEK: return sizeof(struct fuse_lseek_in);
	case FUSE_COPY_FILE_RANGE: return sizeof(struct fuse_copy_file_range_in);
	case FUSE_SYNCFS: return sizeof(struct fuse_syncfs_in);
	}
	return 0;
}

/* Where the file handle sits in the fixed argument, or -1. */
static int fh_offset(uint32_t opcode)
{
	switch (opcode) {
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS: case FUSE_WRITE:
	case FUSE_RELEASE: case FUSE_RELEASEDIR: case FUSE_FSYNC: case FUSE_FSYNCDIR:
	case FUSE_FLUSH: case FUSE_FALLOCATE: case FUSE_LSEEK: case FUSE_COPY_FILE_RANGE:
		return 0;
	case FUSE_GETATTR:
		return 8;
	}
	return -1;
}

static const char *const names[] = { "a", "b", "dir", "f.txt", "user.x", "..", ".", "a/b", "" };

/* Make the size fields agree with the tail and offsets small, so requests
 * get past the argument checks into the backend. */
static void fix_sizes(uint32_t opcode, uint8_t *buf, size_t tail)
{
	switch (opcode) {
	case FUSE_WRITE: {
		struct fuse_write_in *w = (struct fuse_write_in *)buf;
		w->size = (uint32_t)tail;
		w->offset %= 1u << 20;
		break;
	}
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS: {
		struct fuse_read_in *r = (struct fuse_read_in *)buf;
		r->size %= 1u << 17;
		r->offset %= 1u << 20;
		break;
	}
	case FUSE_SETXATTR:
		((struct fuse_setxattr_in *)buf)->size = (uint32_t)tail;
		break;
	case FUSE_BATCH_FORGET:
		((struct fuse_batch_forget_in *)buf)->count = (uint32_t)(tail / 16);
		break;
	case FUSE_FALLOCATE: {
		struct fuse_fallocate_in *f = (struct fuse_fallocate_in *)buf;
		f->offset %= 1u << 20;
		f->length %= 1u << 20;
		break;
	}
	}
}

/* Build the request body into @buf; returns its length. */
static size_t build_body(struct fuzz_input *in, uint32_t opcode, bool raw, uint8_t *buf)
{
	if (raw) {
		size_t len = (size_t)fuzz_take(in, 2) % MAX_BODY;
		fuzz_take_bytes(in, buf, len);
		return len;
	}
	unsigned nnames;
	size_t len = arg_shape(opcode, &nnames);
	fuzz_take_bytes(in, buf, len);
	int fo = fh_offset(opcode);
	if (fo >= 0 && nfhs && !(fuzz_take(in, 1) & 1))
		memcpy(buf + fo, &fhs[fuzz_take(in, 1) % MIN(nfhs, NIDS)], 8);
	if (opcode == FUSE_INIT) {
		struct fuse_init_in *ii = (struct fuse_init_in *)buf;
		ii->major = 7;
		ii->minor = 23 + ii->minor % 16;
	}
	for (unsigned i = 0; i < nnames; i++) {
		const char *nm = names[fuzz_take(in, 1) % ARRAY_SIZE(names)];
		memcpy(buf + len, nm, strlen(nm) + 1);
		len += strlen(nm) + 1;
	}
	/* WRITE data, SETXATTR values, BATCH_FORGET entries: a tail of bytes. */
	size_t tail = (size_t)fuzz_take(in, 1) * 16;
	fuzz_take_bytes(in, buf + len, tail);
	if (!(fuzz_take(in, 1) & 1))
		fix_sizes(opcode, buf, tail);
	return len + tail;
}

/* Split [gpa, gpa + len) into @n pieces (some may be empty: skipped). */
static unsigned split(struct fuzz_input *in, uint64_t gpa, uint32_t len, unsigned n, bool wr,
		      struct vd_buf *out)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		uint32_t piece = i + 1 == n ? len : (uint32_t)(fuzz_take(in, 2) % (len + 1));
		if (!piece)
			continue;
		out[k++] = (struct vd_buf){ .gpa = gpa, .len = piece, .writable = wr };
		gpa += piece;
		len -= piece;
	}
	return k;
}

/* Queue a FUSE request chain. */
static void op_request(struct fuzz_input *in)
{
	static uint8_t body[MAX_BODY + 4096];
	unsigned q = (unsigned)fuzz_take(in, 1) % nq;
	uint32_t sel = (uint32_t)fuzz_take(in, 1);
	uint32_t opcode = sel < 200 ? 1 + sel % 52 : (uint32_t)fuzz_take(in, 4);
	uint8_t flags = (uint8_t)fuzz_take(in, 1);
	bool raw = flags & 1, len_lie = (flags & 6) == 6, indirect = flags & 8;
	unsigned nin = 1 + (flags >> 4) % MAX_PIECES, nout = (flags >> 6) % (MAX_PIECES + 1);
	uint32_t writable = nout ? (uint32_t)fuzz_take(in, 3) % MAX_WRITABLE : 0;

	size_t blen = build_body(in, opcode, raw, body);
	struct fuse_in_header h = {
		.len = (uint32_t)(sizeof(h) + blen), .opcode = opcode, .unique = ++unique_next,
		.nodeid = nnodeids && (flags & 2) ? nodeids[fuzz_take(in, 1) % MIN(nnodeids, NIDS)]
						  : FUSE_ROOT_ID,
	};
	if (len_lie)
		h.len = (uint32_t)fuzz_take(in, 4);
	uint64_t in_gpa = pool_alloc(sizeof(h) + blen);
	uint64_t out_gpa = pool_alloc(writable);
	if (in_gpa == VD_NO_GPA || out_gpa == VD_NO_GPA)
		return;
	vd_write(&mem, in_gpa, &h, sizeof(h));
	vd_write(&mem, in_gpa + sizeof(h), body, blen);

	struct vd_buf bufs[2 * MAX_PIECES];
	unsigned n = split(in, in_gpa, (uint32_t)(sizeof(h) + blen), nin, false, bufs);
	unsigned nw = split(in, out_gpa, writable, nout, true, bufs + n);
	int head = vd_add_chain(&dq[q], bufs, n + nw, indirect && n + nw <= dq[q].indirect_max);
	if (head < 0)
		return;
	struct chain_info *ci = &info[q][head];
	/* On the notification queue it is no request: it waits until a
	 * notification finds it unusable. */
	*ci = (struct chain_info){ .has_request = !is_notify_queue(q), .readable = true,
				   .well_formed = !len_lie, .opcode = opcode, .unique = h.unique,
				   .nwr = nw };
	for (unsigned i = 0; i < nw; i++) {
		ci->wr[i].gpa = bufs[n + i].gpa;
		ci->wr[i].len = bufs[n + i].len;
	}
}

/* A write-only chain: a notification buffer on the notification queue, a
 * request-less chain elsewhere. */
static void op_writable_only(struct fuzz_input *in)
{
	unsigned q = (unsigned)fuzz_take(in, 1) % nq;
	uint32_t len = 1 + (uint32_t)fuzz_take(in, 2) % 4096;
	uint64_t gpa = pool_alloc(len);
	struct vd_buf bufs[MAX_PIECES];

	if (gpa == VD_NO_GPA)
		return;
	unsigned n = split(in, gpa, len, 1 + (unsigned)fuzz_take(in, 1) % MAX_PIECES, true, bufs);
	int head = vd_add_chain(&dq[q], bufs, n, false);
	if (head < 0)
		return;
	struct chain_info *ci = &info[q][head];
	*ci = (struct chain_info){ .has_request = !is_notify_queue(q), .nwr = n };
	for (unsigned i = 0; i < n; i++) {
		ci->wr[i].gpa = bufs[i].gpa;
		ci->wr[i].len = bufs[i].len;
	}
}

/* A chain with a buffer outside guest memory, or crossing its end. */
static void op_bad_chain(struct fuzz_input *in)
{
	unsigned q = (unsigned)fuzz_take(in, 1) % nq;
	uint64_t gpa = fuzz_take(in, 1) & 1 ? fuzz_take(in, 8) : MEM_BASE + MEM_SIZE - 8;
	uint64_t out = pool_alloc(64);

	if (out == VD_NO_GPA)
		return;
	/* The address may well be inside guest memory (the rings, even): then
	 * it is a request of whatever lies there, answered into its own room. */
	struct vd_buf bufs[2] = { { gpa, 64, false }, { out, 64, true } };
	int head = vd_add_chain(&dq[q], bufs, 2, false);
	if (head >= 0)
		info[q][head] = (struct chain_info){ .has_request = !is_notify_queue(q),
						     .readable = true, .nwr = 1,
						     .wr = { { out, 64 } } };
}

static void op_publish(struct fuzz_input *in)
{
	unsigned q = (unsigned)fuzz_take(in, 1) % nq;
	bool force = fuzz_take(in, 1) & 1;

	if (vd_publish(&dq[q]) || force)
		dev.vdev.ops->queue_notify(&dev.vdev, q);
}

static void op_notify(struct fuzz_input *in)
{
	uint8_t payload[64];
	int code = (int)(fuzz_take(in, 1) % 8);
	size_t len = (size_t)fuzz_take(in, 1) % sizeof(payload);

	fuzz_take_bytes(in, payload, len);
	virtio_fs_notify(&dev, code, payload, len);
}

/* Through the server, as host_watch sends them: names of any bytes and
 * length (NULs, over NAME_MAX: refused before the transport). */
static void op_server_notify(struct fuzz_input *in)
{
	static char name[300];
	uint64_t id = nnodeids ? nodeids[fuzz_take(in, 1) % MIN(nnodeids, NIDS)] : FUSE_ROOT_ID;

	if (fuzz_take(in, 1) & 1) {
		fuse_server_notify_inval_inode(server, id, (int64_t)fuzz_take(in, 8),
					       (int64_t)fuzz_take(in, 8));
		return;
	}
	size_t len = (size_t)fuzz_take(in, 2) % sizeof(name);
	fuzz_take_bytes(in, name, len);
	fuse_server_notify_inval_entry(server, id, name, len);
}

/* Pause, wait until idle: nothing on a request queue is popped and not
 * answered. Then resume. */
static void op_pause(struct fuzz_input *in)
{
	virtio_fs_pause(&dev);
	virtio_fs_wait_idle(&dev);
	for (unsigned q = 1; q < nq; q++) {
		struct virtqueue *vq = &dev.vqs[q];
		if (vq->started && !vq->faults.poisoned && vq->last_avail_idx != vq->used_idx)
			FAIL("queue %u paused with %u chains popped and unanswered", q,
			     (uint16_t)(vq->last_avail_idx - vq->used_idx));
	}
	virtio_fs_resume(&dev);
}

/* ---- per-input setup ---- */

/* With FUZZ_VIRTIO_FS_STATS set, print the counters at exit, to tell a
 * fuzzer that reaches the backend from one that only spins. */
static struct fuse_server_counters fuse_total;

static void add_fuse_counters(void)
{
	struct fuse_server_counters c;

	if (!server)
		return;
	fuse_server_get_counters(server, &c);
	fuse_total.requests += c.requests;
	fuse_total.replies_ok += c.replies_ok;
	fuse_total.replies_error += c.replies_error;
	fuse_total.requests_malformed += c.requests_malformed;
	fuse_total.requests_unknown += c.requests_unknown;
	fuse_total.read_bytes += c.read_bytes;
	fuse_total.write_bytes += c.write_bytes;
}

static void print_stats(void)
{
	virtio_fs_dump_counters(&dev, stderr);
	add_fuse_counters();
	fprintf(stderr, "all inputs: fuse requests %llu ok %llu error %llu malformed %llu "
		"unknown %llu read_bytes %llu write_bytes %llu\n",
		(unsigned long long)fuse_total.requests, (unsigned long long)fuse_total.replies_ok,
		(unsigned long long)fuse_total.replies_error,
		(unsigned long long)fuse_total.requests_malformed,
		(unsigned long long)fuse_total.requests_unknown,
		(unsigned long long)fuse_total.read_bytes, (unsigned long long)fuse_total.write_bytes);
}

static void world_init(void)
{
	struct virtio_fs_opts o = { .tag = "fuzz", .request_queues = NREQ, .threads = 2,
				    .offer_notification = true };

	log_threshold = LOG_ERROR;
	loop_thread = pthread_self();
	if (event_loop_init(&loop) || vd_mem_init(&mem, MEM_BASE, MEM_SIZE, MEM_SPLIT))
		FAIL("setup");
	if (virtio_fs_init(&dev, &o, NULL, &loop))
		FAIL("device");
	tr.t.ops = &tr_ops;
	dev.vdev.transport = &tr.t;
	dev.vdev.mem = &mem.gm;
	if (getenv("FUZZ_VIRTIO_FS_STATS"))
		atexit(print_stats);
}

/* Fresh rings, pool, backend and server for each input, so inputs replay. */
static void world_start(uint8_t hdr)
{
	int err;
	struct memfs_opts mo = { .max_bytes = 8u << 20, .max_nodes = 512 };
	struct vd_queue_opts qo = { .size = QSIZE, .indirect_max = 2 * MAX_PIECES,
				    .event_idx = hdr & 1 };
	uint64_t features = 1ull << VIRTIO_F_VERSION_1;
	static bool rings;

	virtio_device_reset(&dev.vdev);
	add_fuse_counters();
	fuse_server_free(server);
	fs_backend_destroy(backend);
	backend = memfs_new(&mo, &err);
	server = backend ? fuse_server_new(backend, NULL) : NULL;
	if (!server)
		FAIL("backend");
	dev.server = server;
	fuse_server_set_notify(server, &dev.notify_tr);
	if (hdr & 1)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (hdr & 2)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (hdr & 4)
		features |= 1ull << VIRTIO_FS_F_NOTIFICATION;
	if (virtio_device_set_features(&dev.vdev, features))
		FAIL("features");
	notify_on = hdr & 4;
	req_base = notify_on ? 2 : 1;
	nq = req_base + NREQ;
	if (dev.vdev.num_queues != nq)
		FAIL("%u queues in use, %u expected", dev.vdev.num_queues, nq);
	for (unsigned q = 0; rings && q < NQ; q++)
		vd_queue_destroy(&dq[q]);
	vd_alloc_reset(&mem);
	for (unsigned q = 0; q < NQ; q++) {
		if (vd_queue_init(&dq[q], &mem, &qo))
			FAIL("queue setup");
		if (q < nq)
			vd_queue_to_vq(&dq[q], &dev.vqs[q], hdr & 2);
	}
	rings = true;
	pool_base = vd_alloc(&mem, 3u << 20, 4096);
	if (pool_base == VD_NO_GPA)
		FAIL("pool");
	pool_end = pool_base + (3u << 20);
	pool_next = pool_base;
	memset(info, 0, sizeof(info));
	nnodeids = nfhs = 0;
	if (virtio_device_activate(&dev.vdev))
		FAIL("activate");
}

/* One well-formed request on the first request queue with 256 bytes of reply room,
 * answered before anything else happens. */
static void send_simple(uint32_t opcode, const void *arg, size_t len, const char *name)
{
	uint8_t buf[256];
	size_t nlen = name ? strlen(name) + 1 : 0;
	struct fuse_in_header h = { .len = (uint32_t)(sizeof(h) + len + nlen), .opcode = opcode,
				    .unique = ++unique_next, .nodeid = FUSE_ROOT_ID };
	uint64_t in = pool_alloc(h.len), out = pool_alloc(256);

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), arg, len);
	if (name)
		memcpy(buf + sizeof(h) + len, name, nlen);
	vd_write(&mem, in, buf, h.len);
	struct vd_buf bufs[2] = { { in, h.len, false }, { out, 256, true } };
	int head = vd_add_chain(&dq[req_base], bufs, 2, false);
	info[req_base][head] = (struct chain_info){ .has_request = true, .well_formed = true,
					     .opcode = opcode, .unique = h.unique, .nwr = 1,
					     .wr = { { out, 256 } } };
	drain();
}

/* A valid FUSE_INIT, and with @create a file open read-write, whose node id
 * and handle later requests may use. */
static void send_init(bool create)
{
	struct fuse_init_in ii = { .major = 7, .minor = 38, .max_readahead = 65536,
				   .flags = FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS };
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = S_IFREG | 0644 };

	send_simple(FUSE_INIT, &ii, sizeof(ii), NULL);
	if (create)
		send_simple(FUSE_CREATE, &ci, sizeof(ci), "f.txt");
}

/* Each completion is one outcome in the counters. */
static void check_counters(const struct virtio_fs_counters *a, const struct virtio_fs_counters *b)
{
#define D(name) (b->name - a->name)
	uint64_t outcomes = D(rx_requests) + D(rx_requests_no_payload) + D(rx_chain_invalid) +
			    D(hiprio_forgets) + D(hiprio_batch_forgets) + D(hiprio_interrupts) +
			    D(hiprio_requests_refused) + D(hiprio_buffers_refused) +
			    D(notify_buffers_invalid) + D(tx_notify_sent);
	if (outcomes != completions)
		FAIL("%llu completions but %llu outcomes counted", (unsigned long long)completions,
		     (unsigned long long)outcomes);
	if (D(used_add_failed) || D(tx_reply_oversize))
		FAIL("used_add_failed %llu, tx_reply_oversize %llu",
		     (unsigned long long)D(used_add_failed), (unsigned long long)D(tx_reply_oversize));
#undef D
	if (tr.wrong_thread)
		FAIL("transport called off the loop thread");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fuzz_input in = { data, size };
	struct virtio_fs_counters before, after;

	if (!ready) {
		world_init();
		ready = true;
	}
	uint8_t hdr = (uint8_t)fuzz_take(&in, 1);
	uint8_t mode = (uint8_t)fuzz_take(&in, 1);
	world_start(hdr);
	virtio_fs_get_counters(&dev, &before);
	completions = notify_completions = 0;
	if (!(mode & 1))
		send_init(mode & 2);
	for (unsigned ops = 0; in.n && ops < MAX_OPS && !dev.vdev.needs_reset; ops++) {
		switch (fuzz_take(&in, 1) % 11) {
		case 0: case 1: case 2: case 3: op_request(&in); break;
		case 4: op_writable_only(&in); break;
		case 5: op_bad_chain(&in); break;
		case 6: case 7: op_publish(&in); break;
		case 8: op_notify(&in); break;
		case 10: op_server_notify(&in); break;
		case 9:
			if (fuzz_take(&in, 1) & 1)
				op_pause(&in);
			else
				drain();
			break;
		}
	}
	drain();
	/* Notification buffers not used stay with the driver. */
	virtio_device_deactivate(&dev.vdev);
	event_loop_once(&loop, 0);
	collect();
	virtio_fs_get_counters(&dev, &after);
	check_counters(&before, &after);
	return 0;
}
