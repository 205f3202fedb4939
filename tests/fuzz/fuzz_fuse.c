/*
 * libFuzzer target: arbitrary FUSE requests through fuse_server_handle,
 * against the passthrough backend over a small memory-backed directory.
 *
 * The directory is a tmpfs of 16 MiB mounted in a mount namespace private
 * to this process and then detached: it is reached only through a
 * descriptor (/proc/self/fd/N), cannot fill the host's memory or disk, and
 * disappears with the process. Without the privileges for that, a plain
 * temporary directory is used with a file size limit, and the operations
 * that allocate space without writing (FALLOCATE, COPY_FILE_RANGE) are
 * skipped.
 *
 * Each input starts from the same state (a fresh server and backend, a
 * small seeded tree), so every crash reproduces from its input alone. The
 * input is a list of records:
 *   u8 op       < 0xf0: an opcode from ops[] with a harness-built header;
 *               >= 0xf0: the body is a whole raw request, header included
 *   u8 node     which known node id to put in the header (0xff: the body's)
 *   u8 fh       which known file handle to patch into the argument
 *   u8 shape    how to split the request and size the reply buffers
 *   u16 len     body length, then the body
 * Node ids and handles from successful replies are remembered and fed back,
 * so requests reach deep into the backend.
 *
 * The server has a DAX window (fs/dax_window.h, 2 MiB, emptied before each
 * input): SETUPMAPPING and REMOVEMAPPING map the seeded files into it and
 * out. Checked for them: a SETUPMAPPING answered 0 asked for a page-aligned
 * range inside the window and now readable there; a REMOVEMAPPING answered
 * 0 named only such ranges, and their first pages are inaccessible again;
 * at the end of every input, emptied, no page of the window is readable.
 *
 * Some requests go through fuse_server_handle_sink with a reply sink that
 * either sends (reads the asked bytes into an exactly-sized buffer) or
 * refuses, as /dev/fuse's splice path does.
 *
 * Checked besides ASan/UBSan (the request and reply buffers are exactly
 * their size, so any access past them is caught): every reply fits its
 * buffers, carries the request's unique id and a length equal to the
 * returned one, an error reply is a bare header, fixed-size replies have
 * their size, requests without replies get none, a request that can be
 * answered is answered exactly once (by the sink or in the buffers, never
 * both), and the sink is asked only for READ data that would have fitted.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "fuse/fuse_compat.h"
#include "fuse/fuse_server.h"
#include "fs/dax_window.h"
#include "fs/passthrough.h"
#include "fuzz_input.h"

#define MAX_RECORDS 48
#define MAX_IDS 32
#define MAX_PIECES 4

#define FAIL(...) FUZZ_FAIL("fuzz_fuse", __VA_ARGS__)

static char root_path[64];
static bool limited_fs;          /* false: plain directory, skip space-hungry ops */

static const uint32_t ops[] = {
	FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_SETATTR, FUSE_READLINK, FUSE_SYMLINK,
	FUSE_MKNOD, FUSE_MKDIR, FUSE_UNLINK, FUSE_RMDIR, FUSE_RENAME, FUSE_LINK, FUSE_OPEN,
	FUSE_READ, FUSE_WRITE, FUSE_STATFS, FUSE_RELEASE, FUSE_FSYNC, FUSE_SETXATTR,
	FUSE_GETXATTR, FUSE_LISTXATTR, FUSE_REMOVEXATTR, FUSE_FLUSH, FUSE_INIT, FUSE_OPENDIR,
	FUSE_READDIR, FUSE_RELEASEDIR, FUSE_FSYNCDIR, FUSE_ACCESS, FUSE_CREATE, FUSE_INTERRUPT,
	FUSE_DESTROY, FUSE_BATCH_FORGET, FUSE_FALLOCATE, FUSE_READDIRPLUS, FUSE_RENAME2,
	FUSE_LSEEK, FUSE_COPY_FILE_RANGE, FUSE_SYNCFS, FUSE_TMPFILE, FUSE_GETLK, FUSE_IOCTL, 52,
	FUSE_SETUPMAPPING, FUSE_REMOVEMAPPING,
};

#define WINDOW_PAGE 4096ull
static struct dax_window *window;

/* Where each opcode's argument carries a file handle, if it does. */
static int fh_offset(uint32_t op)
{
	switch (op) {
	case FUSE_READ: case FUSE_WRITE: case FUSE_RELEASE: case FUSE_FLUSH: case FUSE_FSYNC:
	case FUSE_READDIR: case FUSE_READDIRPLUS: case FUSE_RELEASEDIR: case FUSE_FSYNCDIR:
	case FUSE_FALLOCATE: case FUSE_LSEEK: case FUSE_COPY_FILE_RANGE: case FUSE_SETUPMAPPING:
		return 0;
	case FUSE_GETATTR: case FUSE_SETATTR:
		return 8;
	default:
		return -1;
	}
}

/* Replies whose successful payload has one size. */
static long fixed_reply(uint32_t op)
{
	switch (op) {
	case FUSE_LOOKUP: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_SYMLINK: case FUSE_LINK:
		return sizeof(struct fuse_entry_out);
	case FUSE_GETATTR: case FUSE_SETATTR:
		return sizeof(struct fuse_attr_out);
	case FUSE_OPEN: case FUSE_OPENDIR:
		return sizeof(struct fuse_open_out);
	case FUSE_CREATE: case FUSE_TMPFILE:
		return sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out);
	case FUSE_WRITE: case FUSE_COPY_FILE_RANGE:
		return sizeof(struct fuse_write_out);
	case FUSE_STATFS:
		return sizeof(struct fuse_statfs_out);
	case FUSE_INIT:
		return sizeof(struct fuse_init_out);
	case FUSE_LSEEK:
		return sizeof(struct fuse_lseek_out);
	case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_RENAME: case FUSE_RENAME2: case FUSE_RELEASE:
	case FUSE_RELEASEDIR: case FUSE_FSYNC: case FUSE_FSYNCDIR: case FUSE_FLUSH:
	case FUSE_ACCESS: case FUSE_REMOVEXATTR: case FUSE_SETXATTR: case FUSE_FALLOCATE:
	case FUSE_SYNCFS: case FUSE_DESTROY: case FUSE_SETUPMAPPING: case FUSE_REMOVEMAPPING:
		return 0;
	default:
		return -1;
	}
}

/* ---- the directory ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (ftw->level > 0)
		remove(path);
	return 0;
}

static void wipe(void)
{
	nftw(root_path, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void put_file(const char *name, const char *data)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/%s", root_path, name);
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, data, strlen(data)) < 0)
			FAIL("seeding %s: %s", p, strerror(errno));
		close(fd);
	}
}

static void seed(void)
{
	char p[128];

	put_file("a", "hello");
	put_file("b", "0123456789abcdefghijklmnopqrstuvwxyz");
	snprintf(p, sizeof(p), "%s/d", root_path);
	mkdir(p, 0755);
	put_file("d/c", "nested");
	snprintf(p, sizeof(p), "%s/l", root_path);
	if (symlink("a", p) < 0)
		FAIL("symlink: %s", strerror(errno));
	snprintf(p, sizeof(p), "%s/out", root_path);
	if (symlink("/etc", p) < 0)
		FAIL("symlink: %s", strerror(errno));
}

/* A private, size-limited tmpfs reached only through a descriptor. */
static bool setup_tmpfs(char *tmpl)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return false;
	if (mount("kvmini-fuzz", tmpl, "tmpfs", MS_NOSUID | MS_NODEV,
		  "size=16m,nr_inodes=4096,mode=0755") < 0)
		return false;
	int fd = open(tmpl, O_PATH | O_DIRECTORY | O_CLOEXEC);
	umount2(tmpl, MNT_DETACH);
	rmdir(tmpl);
	if (fd < 0)
		return false;
	/* The trailing "/." makes nftw (FTW_PHYS) enter the directory rather
	 * than stop at the /proc link. */
	snprintf(root_path, sizeof(root_path), "/proc/self/fd/%d/.", fd);
	return true;
}

static void cleanup_dir(void)
{
	wipe();
	rmdir(root_path);
}

static void setup_once(void)
{
	static bool done;
	char tmpl[] = "/tmp/kvmini-fuzz-fuse.XXXXXX";
	int err;

	if (done)
		return;
	done = true;
	log_threshold = LOG_ERROR;
	signal(SIGXFSZ, SIG_IGN);
	window = dax_window_new(DAX_WINDOW_MIN_SIZE, &err);
	if (!window)
		FAIL("dax_window_new: %s", strerror(-err));
	if (!mkdtemp(tmpl))
		FAIL("mkdtemp: %s", strerror(errno));
	limited_fs = setup_tmpfs(tmpl);
	if (!limited_fs) {
		struct rlimit rl = { 16 << 20, 16 << 20 };
		setrlimit(RLIMIT_FSIZE, &rl);
		snprintf(root_path, sizeof(root_path), "%s", tmpl);
		atexit(cleanup_dir);
	}
}

/* ---- one input ---- */

struct session {
	struct fuse_server *srv;
	struct fs_backend *be;
	uint64_t nodes[MAX_IDS];
	unsigned nnodes;
	uint64_t fhs[MAX_IDS];
	unsigned nfhs;
	uint64_t unique;
};

static void remember(uint64_t *ids, unsigned *n, uint64_t id)
{
	if (id)
		ids[(*n)++ % MAX_IDS] = id;
}

static uint64_t pick(const uint64_t *ids, unsigned n, uint8_t sel)
{
	if (sel >= 0xf0)
		return (uint64_t)(sel - 0xf0);      /* small raw values: 0, 1 (root), ... */
	if (n == 0)
		return FUSE_ROOT_ID;
	return ids[sel % MIN(n, MAX_IDS)];
}

/* Learn node ids and handles from a successful reply. */
static void learn(struct session *s, uint32_t op, const uint8_t *payload, size_t len)
{
	bool made = op == FUSE_CREATE || op == FUSE_TMPFILE;

	if (fixed_reply(op) == sizeof(struct fuse_entry_out) || made) {
		struct fuse_entry_out eo;
		if (len >= sizeof(eo)) {
			memcpy(&eo, payload, sizeof(eo));
			remember(s->nodes, &s->nnodes, eo.nodeid);
		}
	}
	if (op == FUSE_OPEN || op == FUSE_OPENDIR || made) {
		struct fuse_open_out oo;
		size_t at = made ? sizeof(struct fuse_entry_out) : 0;
		if (len >= at + sizeof(oo)) {
			memcpy(&oo, payload + at, sizeof(oo));
			remember(s->fhs, &s->nfhs, oo.fh);
		}
	}
	if (op == FUSE_READDIRPLUS && len >= sizeof(struct fuse_direntplus)) {
		struct fuse_direntplus dp;
		memcpy(&dp, payload, sizeof(dp));
		remember(s->nodes, &s->nnodes, dp.entry_out.nodeid);
	}
}

/* A reply sink like /dev/fuse's: it reads what it is asked for into an
 * exactly-sized buffer (ASan checks the length), or refuses when told to. */
struct fuzz_sink {
	struct fuse_reply_sink sink;
	bool refuse;
	unsigned calls;
	size_t len;
	uint64_t unique;
};

static ssize_t fuzz_reply_fd(struct fuse_reply_sink *sink, uint64_t unique, int fd, uint64_t off,
			     size_t len)
{
	struct fuzz_sink *fs = (struct fuzz_sink *)sink;

	fs->calls++;
	fs->len = len;
	fs->unique = unique;
	if (fs->refuse)
		return -EIO;
	uint8_t *buf = malloc(len ? len : 1);
	ssize_t n = pread(fd, buf, len, (off_t)MIN(off, (uint64_t)INT64_MAX));
	free(buf);
	return n < 0 ? 0 : n;
}

/* Passthrough hooks: ids handed out and closed must pair up; a close of an
 * id that is not open (twice, or never handed out) is a bug. */
#define MAX_BACKING_IDS 4096
static bool backing_live[MAX_BACKING_IDS];
static int32_t backing_next;

static int fuzz_backing_open(struct fuse_reply_sink *sink, int fd, int32_t *id)
{
	struct fuzz_sink *fs = (struct fuzz_sink *)sink;

	if (fcntl(fd, F_GETFD) < 0)
		FAIL("backing_open with a dead descriptor %d", fd);
	if (fs->refuse || backing_next >= MAX_BACKING_IDS)
		return -EPERM;
	*id = backing_next++;
	backing_live[*id] = true;
	return 0;
}

static void fuzz_backing_close(struct fuse_reply_sink *sink, int32_t id)
{
	if (id < 0 || id >= backing_next || !backing_live[id])
		FAIL("backing id %d closed but not open", id);
	backing_live[id] = false;
}

/* Copy @req into up to MAX_PIECES exactly-sized heap pieces. */
static unsigned split(const uint8_t *req, size_t len, uint8_t shape, struct iovec *iov)
{
	unsigned n = 1 + (shape & 3), k = 0;
	size_t off = 0;

	for (unsigned i = 0; i < n && (off < len || i == 0); i++) {
		size_t piece = i == n - 1 ? len - off : MIN(len - off, (size_t)(1u << (i + 3 + (shape >> 6))));
		iov[k].iov_base = malloc(piece ? piece : 1);
		iov[k].iov_len = piece;
		memcpy(iov[k].iov_base, req + off, piece);
		off += piece;
		k++;
	}
	return k;
}

static size_t out_capacity(uint8_t shape)
{
	switch ((shape >> 2) & 3) {
	case 0: return 1 << 17;
	case 1: return (shape >> 4) * 5;          /* 0..75 bytes: most replies do not fit */
	case 2: return sizeof(struct fuse_out_header) + (shape >> 4) * 40;
	default: return 4096;
	}
}

static void check_reply(uint32_t op, bool raw_hdr_ok, uint64_t unique, size_t n, size_t cap,
			const struct iovec *out, unsigned out_cnt, struct session *s,
			uint32_t read_size)
{
	bool no_reply_op = op == FUSE_FORGET || op == FUSE_BATCH_FORGET || op == FUSE_INTERRUPT;

	if (n > cap)
		FAIL("reply of %zu bytes for %zu of buffers (opcode %u)", n, cap, op);
	if (no_reply_op && n)
		FAIL("opcode %u answered with %zu bytes", op, n);
	if (!no_reply_op && raw_hdr_ok && cap >= sizeof(struct fuse_out_header) && !n)
		FAIL("opcode %u not answered", op);
	if (!n)
		return;
	uint8_t *flat = malloc(n);
	size_t got = 0;
	for (unsigned i = 0; i < out_cnt && got < n; i++) {
		size_t k = MIN(out[i].iov_len, n - got);
		memcpy(flat + got, out[i].iov_base, k);
		got += k;
	}
	struct fuse_out_header oh;
	memcpy(&oh, flat, sizeof(oh));
	if (oh.len != n || oh.unique != unique)
		FAIL("header len %u unique %llu, returned %zu for unique %llu", oh.len,
		     (unsigned long long)oh.unique, n, (unsigned long long)unique);
	if (oh.error > 0 || oh.error <= -4096 || (oh.error && n != sizeof(oh)))
		FAIL("bad error reply %d of %zu bytes", oh.error, n);
	long fixed = fixed_reply(op);
	if (!oh.error && fixed >= 0 && n != sizeof(oh) + (size_t)fixed)
		FAIL("opcode %u: %zu bytes, expected %ld", op, n - sizeof(oh), fixed);
	if (!oh.error && op == FUSE_READ && n - sizeof(oh) > read_size)
		FAIL("READ of %u returned %zu", read_size, n - sizeof(oh));
	if (!oh.error)
		learn(s, op, flat + sizeof(oh), n - sizeof(oh));
	free(flat);
}

/* Can the process read the byte at @p? (A pipe write copies it: EFAULT
 * when the page is not readable, without a signal.) */
static bool window_readable(const uint8_t *p)
{
	static int fds[2] = { -1, -1 };
	char sink[8];

	if (fds[0] < 0 && pipe(fds) < 0)
		FAIL("pipe: %s", strerror(errno));
	if (write(fds[1], p, 1) != 1)
		return false;
	if (read(fds[0], sink, 1) != 1)
		FAIL("pipe read");
	return true;
}

/* A range the server may map or unmap: page-aligned, non-empty, inside. */
static bool window_range_valid(uint64_t moffset, uint64_t len)
{
	uint64_t size = window->fuse.size;

	return len && !((moffset | len) & (WINDOW_PAGE - 1)) && moffset < size &&
	       len <= size - moffset;
}

/* A successful SETUPMAPPING or REMOVEMAPPING did what it may (the request
 * is @req, header included, as the server read it). */
static void check_dax(uint32_t op, const uint8_t *req, size_t rlen)
{
	const size_t h = sizeof(struct fuse_in_header);

	if (op == FUSE_SETUPMAPPING) {
		struct fuse_setupmapping_in in;
		memcpy(&in, req + h, sizeof(in));
		if (!window_range_valid(in.moffset, in.len) || (in.foffset & (WINDOW_PAGE - 1)))
			FAIL("SETUPMAPPING of %llu bytes at %llu accepted",
			     (unsigned long long)in.len, (unsigned long long)in.moffset);
		if (!window_readable(window->host + in.moffset))
			FAIL("SETUPMAPPING at %llu accepted, nothing mapped",
			     (unsigned long long)in.moffset);
		return;
	}
	struct fuse_removemapping_in in;
	struct fuse_removemapping_one one;
	memcpy(&in, req + h, sizeof(in));
	if (!in.count || h + sizeof(in) + (size_t)in.count * sizeof(one) > rlen)
		FAIL("REMOVEMAPPING of %u ranges accepted in %zu bytes", in.count, rlen);
	for (uint32_t i = 0; i < in.count; i++) {
		memcpy(&one, req + h + sizeof(in) + i * sizeof(one), sizeof(one));
		if (!window_range_valid(one.moffset, one.len))
			FAIL("REMOVEMAPPING of %llu bytes at %llu accepted",
			     (unsigned long long)one.len, (unsigned long long)one.moffset);
	}
	/* Checked after all: a later range may not map what an earlier removed. */
	for (uint32_t i = 0; i < in.count; i++) {
		memcpy(&one, req + h + sizeof(in) + i * sizeof(one), sizeof(one));
		if (window_readable(window->host + one.moffset))
			FAIL("REMOVEMAPPING at %llu left it mapped",
			     (unsigned long long)one.moffset);
	}
}

/* After the input: the window emptied, nothing of it readable. */
static void check_window_empty(void)
{
	if (dax_window_clear(window))
		FAIL("the window could not be emptied");
	for (uint64_t off = 0; off < window->fuse.size; off += 64 * WINDOW_PAGE)
		if (window_readable(window->host + off))
			FAIL("window page %llu readable after clearing",
			     (unsigned long long)(off / WINDOW_PAGE));
}

/* Build and run one record; returns the bytes it consumed, 0 at the end. */
static size_t run_record(struct session *s, const uint8_t *data, size_t size)
{
	if (size < 6)
		return 0;
	uint8_t kind = data[0], nsel = data[1], fsel = data[2], shape = data[3];
	size_t len = MIN((size_t)(data[4] | data[5] << 8), size - 6);
	const uint8_t *body = data + 6;
	static uint8_t req[70000];
	size_t rlen;
	uint32_t op, read_size = UINT32_MAX;
	bool hdr_ok;

	if (kind >= 0xf0) {
		memcpy(req, body, len);
		rlen = len;
		struct fuse_in_header h = { 0 };
		memcpy(&h, req, MIN(len, sizeof(h)));
		op = h.opcode;
		s->unique = h.unique;
		/* A header the server can reply to: complete, honest, within the cap. */
		hdr_ok = len >= sizeof(h);
	} else {
		op = ops[kind % ARRAY_SIZE(ops)];
		if (!limited_fs && (op == FUSE_FALLOCATE || op == FUSE_COPY_FILE_RANGE))
			return 6 + len;
		struct fuse_in_header h = {
			.len = (uint32_t)(sizeof(h) + len), .opcode = op, .unique = ++s->unique,
			.nodeid = pick(s->nodes, s->nnodes, nsel), .uid = (shape & 0x80) ? 1000 : 0,
			.gid = (shape & 0x40) ? 1000 : 0,
		};
		memcpy(req, &h, sizeof(h));
		memcpy(req + sizeof(h), body, len);
		rlen = sizeof(h) + len;
		int at = fh_offset(op);
		if (at >= 0 && fsel != 0xff && len >= (size_t)at + 8) {
			uint64_t fh = pick(s->fhs, s->nfhs, fsel);
			memcpy(req + sizeof(h) + at, &fh, 8);
		}
		if (op == FUSE_READ && len >= 20)
			memcpy(&read_size, req + sizeof(h) + 16, 4);
		hdr_ok = true;
	}
	struct iovec in[MAX_PIECES], out[2];
	unsigned in_cnt = split(req, rlen, shape, in);
	size_t cap = out_capacity(shape);
	/* Two reply pieces, the first possibly small, to cross a boundary. */
	size_t first = (shape & 0x20) ? MIN(cap, (size_t)24) : cap;
	out[0] = (struct iovec){ malloc(first ? first : 1), first };
	out[1] = (struct iovec){ malloc(cap - first + 1), cap - first };
	/* Every other request with a reply sink (refusing or sending). */
	struct fuzz_sink fs = { .sink = { .reply_fd = fuzz_reply_fd, .min_len = 64,
					  .backing_open = fuzz_backing_open,
					  .backing_close = fuzz_backing_close },
				.refuse = nsel & 1 };
	bool with_sink = (fsel & 0x30) == 0x30;
	size_t n = fuse_server_handle_sink(s->srv, in, in_cnt, out, 2, with_sink ? &fs.sink : NULL);
	if (fs.calls > 1 || (fs.calls && op != FUSE_READ))
		FAIL("sink used %u times for opcode %u", fs.calls, op);
	if (fs.calls && (fs.len > cap - sizeof(struct fuse_out_header) || fs.len > read_size ||
			 fs.unique != s->unique))
		FAIL("sink asked for %zu bytes (buffers %zu, READ of %u)", fs.len, cap, read_size);
	if (fs.calls && !fs.refuse) {
		if (n)
			FAIL("a reply of %zu bytes after the sink sent one", n);
	} else {
		check_reply(op, hdr_ok, s->unique, n, cap, out, 2, s, read_size);
		struct fuse_out_header oh = { .error = -1 };
		if (n >= sizeof(oh))
			iov_to_buf(out, 2, 0, &oh, sizeof(oh));
		/* rlen covers the fixed argument: a shorter request is refused. */
		if (!oh.error && (op == FUSE_SETUPMAPPING || op == FUSE_REMOVEMAPPING))
			check_dax(op, req, rlen);
	}
	for (unsigned i = 0; i < in_cnt; i++)
		free(in[i].iov_base);
	free(out[0].iov_base);
	free(out[1].iov_base);
	return 6 + len;
}

static void init_session(struct session *s)
{
	struct fuse_init_in in = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION,
				   .max_readahead = 1 << 17, .flags = 0xffffffffu,
				   .flags2 = 0xffffffffu };   /* FUSE_PASSTHROUGH too */
	struct { struct fuse_in_header h; struct fuse_init_in i; } rq = {
		.h = { .len = sizeof(rq), .opcode = FUSE_INIT, .unique = ++s->unique }, .i = in,
	};
	static uint8_t out[256];
	struct iovec iv = { &rq, sizeof(rq) }, ov = { out, sizeof(out) };

	if (fuse_server_handle(s->srv, &iv, 1, &ov, 1) != sizeof(struct fuse_out_header) +
								sizeof(struct fuse_init_out))
		FAIL("INIT failed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session s = { 0 };
	struct passthrough_opts po = { .root = root_path, .max_fds = 8 };
	struct fuse_server_opts so = { .cache = FUSE_CACHE_AUTO, .max_write = 1 << 16,
				       .extra_init_flags = FUSE_PASSTHROUGH };
	int err;

	setup_once();
	memset(backing_live, 0, sizeof(backing_live));
	backing_next = 0;
	wipe();
	seed();
	s.be = passthrough_new(&po, &err);
	if (!s.be)
		FAIL("passthrough_new: %s", strerror(-err));
	s.srv = fuse_server_new(s.be, &so);
	fuse_server_set_dax(s.srv, &window->fuse);
	init_session(&s);
	for (unsigned r = 0; r < MAX_RECORDS; r++) {
		size_t used = run_record(&s, data, size);
		if (!used)
			break;
		data += used;
		size -= used;
	}
	fuse_server_free(s.srv);
	fs_backend_destroy(s.be);
	check_window_empty();
	return 0;
}
