/*
 * FUSE request dispatch: one table indexed by opcode says how large each
 * request's fixed argument is and how large its fixed reply is; both are
 * checked centrally before any handler runs. Handlers decode the local copy
 * of the arguments, call the backend and place the reply payload; the
 * dispatcher writes the fuse_out_header last.
 */
#include "fs/fuse_server.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <linux/fuse.h>
#include <linux/limits.h>

#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "fs/fuse_backing.h"
#include "fs/fuse_compat.h"

/* Every argument but WRITE data and xattr values fits here: RENAME2 with two
 * names, SYMLINK with a name and a PATH_MAX target. */
#define ARG_BUF_SIZE 8192u
/* SETXATTR's largest payload: its header, a name and a value. */
#define SETXATTR_ARG_MAX (sizeof(struct fuse_setxattr_in) + XATTR_NAME_MAX + 1 + XATTR_SIZE_MAX)
/* COPY_FILE_RANGE answers in a 32-bit size; keep each call bounded too. */
#define COPY_RANGE_MAX (1u << 30)
#define DEFAULT_MAX_WRITE (1u << 20)
#define PAGE_SZ 4096u
/* The kernel's own ceiling on pages per request (FUSE_MAX_MAX_PAGES). */
#define MAX_PAGES_LIMIT 256u

/* A handler's way of saying the request has no reply, or that its reply
 * already went out through the reply sink. */
#define NO_REPLY 1
#define REPLY_SENT 2

struct fuse_server {
	struct fs_backend *be;
	struct fuse_server_opts opts;
	uint32_t entry_timeout;          /* seconds, from the cache policy */
	uint32_t attr_timeout;
	uint32_t open_flags;             /* FOPEN_* for OPEN and CREATE */
	uint32_t opendir_flags;

	/* INIT and DESTROY reset the backend's tables, which must not happen
	 * under another request: a well-behaved client sends them alone, but a
	 * hostile guest can send them on one virtio-fs queue while other queues
	 * are busy. They hold this lock for writing, every other request for
	 * reading. */
	pthread_rwlock_t lifecycle;
	/* Written only by INIT and DESTROY (under @lifecycle); published by the
	 * release store of @initialized (paired with the acquire load in
	 * fuse_server_handle). */
	atomic_bool initialized;
	/* Atomic too: a hostile client may send INIT beside other requests. */
	atomic_uint proto_minor;
	atomic_uint max_write;
	/* FUSE_PASSTHROUGH negotiated: OPEN and CREATE hand the kernel the
	 * file's descriptor (backing ids in @backing). */
	atomic_bool passthrough;
	struct fuse_backing_table *backing;
	/* FUSE_HANDLE_KILLPRIV_V2 negotiated: set-id bits are ours to clear. */
	atomic_bool killpriv;

	struct {
		atomic_uint_least64_t requests, replies_ok, replies_error, replies_none,
			requests_malformed, requests_unknown, requests_before_init,
			replies_overflow, read_bytes, read_bytes_sink, write_bytes,
			opens_passthrough, passthrough_failed;
		/* Requests per known opcode, for the operator's view of a workload. */
		atomic_uint_least64_t by_op[FUSE_SYNCFS + 1];
		atomic_uint_least64_t notify_sent, notify_unknown, notify_dropped, notify_failed;
	} ctr;

	/* Where notifications go; set by the transport, read by the notifying
	 * thread. */
	_Atomic(struct fuse_notify_transport *) notify;
};

/* Nonzero while this thread answers a request: notifications from here
 * could wait for the very request being answered (see fuse_server.h). */
static __thread unsigned in_request;

/* One request being handled: local copies of everything the client sent
 * that is used more than once. */
struct fuse_req {
	struct fuse_server *s;
	struct fuse_in_header hdr;
	struct fs_ctx ctx;
	const struct iovec *in;
	unsigned in_cnt;
	size_t payload_len;              /* bytes after the in header, extensions excluded */
	const uint8_t *arg;              /* copy of the payload (its fixed part for streamed ops) */
	size_t arg_len;
	const struct iovec *out;
	unsigned out_cnt;
	size_t out_cap;                  /* writable bytes, capped */
	size_t reply_len;                /* payload bytes placed after the out header */
	struct fuse_reply_sink *sink;    /* zero-copy READ replies, or NULL */
};

enum op_flags {
	OP_NO_REPLY = 1 << 0,            /* never answered */
	OP_STREAM = 1 << 1,              /* only the fixed argument is copied */
	OP_BIG_ARG = 1 << 2,             /* payload may exceed ARG_BUF_SIZE (SETXATTR) */
};

struct fuse_op {
	const char *name;
	int (*fn)(struct fuse_req *r);
	uint32_t in_size;                /* fixed argument at the start of the payload */
	uint32_t out_size;               /* fixed reply payload, 0 when variable */
	uint32_t flags;
};

#define CTR_INC(s, field) atomic_fetch_add_explicit(&(s)->ctr.field, 1, memory_order_relaxed)
#define CTR_ADD(s, field, n) atomic_fetch_add_explicit(&(s)->ctr.field, (n), memory_order_relaxed)

/* ---- helpers: lengths, names, replies ---- */

/* Total length of @iov, saturating at @cap so a hostile list cannot wrap. */
static size_t iov_len_capped(const struct iovec *iov, unsigned cnt, size_t cap)
{
	size_t total = 0;

	for (unsigned i = 0; i < cnt && total < cap; i++)
		total += MIN(iov[i].iov_len, cap - total);
	return total;
}

/* Limit an iovec view to its first @len bytes; returns the new count. */
static unsigned iov_truncate(struct iovec *iov, unsigned cnt, size_t len)
{
	for (unsigned i = 0; i < cnt; i++) {
		if (iov[i].iov_len >= len) {
			iov[i].iov_len = len;
			return i + 1;
		}
		len -= iov[i].iov_len;
	}
	return cnt;
}

/*
 * arg_string() - take a NUL-terminated string from the argument copy.
 * @r:      the request
 * @off:    in/out: where the string starts; on success, just past its NUL
 * @maxlen: longest accepted length, NUL excluded
 * @out:    the string (points into the copy)
 * Returns its length, -EINVAL when no NUL ends it inside the payload, or
 * -ENAMETOOLONG when longer than @maxlen.
 */
static ssize_t arg_string(struct fuse_req *r, size_t *off, size_t maxlen, const char **out)
{
	if (*off >= r->arg_len)
		return -EINVAL;
	const char *p = (const char *)r->arg + *off;
	const char *nul = memchr(p, '\0', r->arg_len - *off);

	if (!nul)
		return -EINVAL;
	size_t len = (size_t)(nul - p);
	if (len > maxlen)
		return -ENAMETOOLONG;
	*out = p;
	*off += len + 1;
	return (ssize_t)len;
}

/* A directory entry name: 1..NAME_MAX bytes, no '/', not "." or "..". */
static int arg_name(struct fuse_req *r, size_t *off, const char **name)
{
	ssize_t len = arg_string(r, off, NAME_MAX, name);

	if (len < 0)
		return (int)len;
	if (len == 0 || memchr(*name, '/', (size_t)len))
		return -EINVAL;
	if (!strcmp(*name, ".") || !strcmp(*name, ".."))
		return -EINVAL;
	return 0;
}

static bool reply_fits(const struct fuse_req *r, size_t len)
{
	return len <= r->out_cap - sizeof(struct fuse_out_header);
}

/* Place @len payload bytes after the out header (the caller checked room). */
static void reply_data(struct fuse_req *r, const void *data, size_t len)
{
	iov_from_buf(r->out, r->out_cnt, sizeof(struct fuse_out_header), data, len);
	r->reply_len = len;
}

static uint32_t encode_dev(dev_t dev)
{
	/* The kernel's new_encode_dev(): what fuse_attr.rdev carries. */
	unsigned maj = major(dev), min = minor(dev);

	return (min & 0xff) | ((maj & 0xfff) << 8) | ((min & ~0xffu) << 12);
}

static dev_t decode_dev(uint32_t dev)
{
	return makedev((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00));
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	*a = (struct fuse_attr){
		.ino = st->st_ino,
		.size = (uint64_t)st->st_size,
		.blocks = (uint64_t)st->st_blocks,
		.atime = (uint64_t)st->st_atim.tv_sec,
		.mtime = (uint64_t)st->st_mtim.tv_sec,
		.ctime = (uint64_t)st->st_ctim.tv_sec,
		.atimensec = (uint32_t)st->st_atim.tv_nsec,
		.mtimensec = (uint32_t)st->st_mtim.tv_nsec,
		.ctimensec = (uint32_t)st->st_ctim.tv_nsec,
		.mode = st->st_mode,
		.nlink = (uint32_t)MIN(st->st_nlink, (nlink_t)UINT32_MAX),
		.uid = st->st_uid,
		.gid = st->st_gid,
		.rdev = encode_dev(st->st_rdev),
		.blksize = (uint32_t)st->st_blksize,
	};
}

static void fill_entry(const struct fuse_server *s, struct fuse_entry_out *eo,
		       const struct fs_entry *e)
{
	*eo = (struct fuse_entry_out){
		.nodeid = e->nodeid,
		.generation = e->generation,
		.entry_valid = s->entry_timeout,
		.attr_valid = s->attr_timeout,
	};
	fill_attr(&eo->attr, &e->st);
}

static int reply_entry(struct fuse_req *r, const struct fs_entry *e)
{
	struct fuse_entry_out eo;

	fill_entry(r->s, &eo, e);
	reply_data(r, &eo, sizeof(eo));
	return 0;
}

static int reply_attr(struct fuse_req *r, const struct stat *st)
{
	struct fuse_attr_out ao = { .attr_valid = r->s->attr_timeout };

	fill_attr(&ao.attr, st);
	reply_data(r, &ao, sizeof(ao));
	return 0;
}

static int reply_open(struct fuse_req *r, const struct fuse_open_out *oo)
{
	reply_data(r, oo, sizeof(*oo));
	return 0;
}

/* Copy the fixed argument struct of the request into @dst. The dispatcher
 * has checked that at least sizeof(*dst) bytes were copied. */
#define ARG(r, dst) memcpy(&(dst), (r)->arg, sizeof(dst))

#define BE(r) ((r)->s->be)
#define BE_OP(r, op) (BE(r)->ops->op)

/* ---- session ---- */

/*
 * init_flags_wanted() - the INIT flags this server takes when offered.
 * HANDLE_KILLPRIV_V2, with --cache none only: the server clears set-id bits
 * on write, truncate and open with O_TRUNC (kill_suidgid), so the client
 * marks inodes S_NOSEC and stops asking GETXATTR("security.capability")
 * before every write. Not where attributes are cached: the client would go
 * on seeing (and exec honouring) a set-id bit the server just cleared until
 * its attributes expire. Not with passthrough either (writes never reach
 * the server; op_init drops it).
 * With --cache metadata file data goes direct too (no passthrough), but
 * attributes are cached, so HANDLE_KILLPRIV_V2 stays off: direct writes
 * carry FUSE_WRITE_KILL_SUIDGID anyway (the client sets it on every
 * direct write by a caller without CAP_FSETID, with or without the flag).
 * Left out on purpose: WRITEBACK_CACHE (the client would own file sizes and
 * times, and stop seeing the host's changes), POSIX_ACL (the client kernel
 * does ACL checks itself), HANDLE_KILLPRIV v1, EXPORT_SUPPORT (needs lookups
 * of "." and "..", which are refused), SETXATTR_EXT (only meaningful with
 * POSIX_ACL), locks (handled locally by the client).
 */
static bool data_cached(const struct fuse_server *s)
{
	return s->opts.cache != FUSE_CACHE_NONE && s->opts.cache != FUSE_CACHE_METADATA;
}

static uint64_t init_flags_wanted(const struct fuse_server *s)
{
	uint64_t f = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES |
		     FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS |
		     FUSE_MAX_PAGES | FUSE_ASYNC_DIO;
	uint64_t extra = s->opts.extra_init_flags;

	if (s->opts.cache != FUSE_CACHE_NONE)
		f |= FUSE_CACHE_SYMLINKS | FUSE_AUTO_INVAL_DATA;
	else
		f |= FUSE_HANDLE_KILLPRIV_V2;
	/* Passthrough only where the client caches file data: with none and
	 * metadata every byte is meant to reach the server. */
	if (!data_cached(s))
		extra &= ~FUSE_PASSTHROUGH;
	return f | extra;
}

static int op_init(struct fuse_req *r)
{
	struct fuse_server *s = r->s;
	struct fuse_init_in in = { 0 };
	struct fuse_init_out out = { .major = FUSE_KERNEL_VERSION,
				     .minor = FUSE_KERNEL_MINOR_VERSION };

	/* Clients before 7.36 send only up to flags. */
	memcpy(&in, r->arg, MIN(r->arg_len, sizeof(in)));
	if (in.major > FUSE_KERNEL_VERSION) {
		/* Ask for our major: the client sends INIT again. */
		reply_data(r, &out, sizeof(out));
		return 0;
	}
	if (in.major < FUSE_KERNEL_VERSION || in.minor < FUSE_SERVER_MIN_MINOR)
		return -EPROTO;
	if (atomic_load_explicit(&s->initialized, memory_order_relaxed)) {
		BE(r)->ops->reset(BE(r));
		fuse_backing_clear(s->backing);
	}

	/* Flags past bit 31 travel in flags2 when the client sets INIT_EXT. */
	uint64_t offered = in.flags;
	if (in.flags & FUSE_INIT_EXT)
		offered |= (uint64_t)in.flags2 << 32;
	uint64_t flags = offered & init_flags_wanted(s);
	if (flags & FUSE_PASSTHROUGH)
		flags &= ~(uint64_t)FUSE_HANDLE_KILLPRIV_V2;
	out.minor = MIN(in.minor, (uint32_t)FUSE_KERNEL_MINOR_VERSION);
	out.flags = (uint32_t)flags;
	if (in.flags & FUSE_INIT_EXT) {
		out.flags |= FUSE_INIT_EXT;
		out.flags2 = (uint32_t)(flags >> 32);
	}
	if (flags & FUSE_PASSTHROUGH)
		FUSE_INIT_OUT_MAX_STACK_DEPTH(&out) = 1;   /* backing files on plain filesystems */
	atomic_store_explicit(&s->passthrough, (flags & FUSE_PASSTHROUGH) != 0,
			      memory_order_relaxed);
	atomic_store_explicit(&s->killpriv, (flags & FUSE_HANDLE_KILLPRIV_V2) != 0,
			      memory_order_relaxed);
	out.max_readahead = MIN(in.max_readahead, s->opts.max_readahead);
	out.max_background = 64;
	out.congestion_threshold = 48;
	out.time_gran = 1;
	out.max_write = s->opts.max_write;
	if (out.flags & FUSE_MAX_PAGES)
		out.max_pages = (uint16_t)(out.max_write / PAGE_SZ);
	else
		out.max_write = MIN(out.max_write, 32 * PAGE_SZ);  /* the kernel's default pages */

	atomic_store_explicit(&s->proto_minor, out.minor, memory_order_relaxed);
	atomic_store_explicit(&s->max_write, out.max_write, memory_order_relaxed);
	atomic_store_explicit(&s->initialized, true, memory_order_release);
	reply_data(r, &out, sizeof(out));
	return 0;
}

static int op_destroy(struct fuse_req *r)
{
	BE(r)->ops->reset(BE(r));
	fuse_backing_clear(r->s->backing);
	atomic_store_explicit(&r->s->initialized, false, memory_order_release);
	return 0;
}

static int op_interrupt(struct fuse_req *r)
{
	/* Requests are not cancellable once running: the original reply is
	 * the answer. */
	return NO_REPLY;
}

static int op_forget(struct fuse_req *r)
{
	struct fuse_forget_in in;

	ARG(r, in);
	BE(r)->ops->forget(BE(r), r->hdr.nodeid, in.nlookup);
	return NO_REPLY;
}

/* Entries are read one at a time from the request so a large batch needs no
 * buffer; a count larger than the entries present is clipped to them. */
static int op_batch_forget(struct fuse_req *r)
{
	struct fuse_batch_forget_in in;
	size_t off = sizeof(struct fuse_in_header) + sizeof(in);
	size_t avail = (r->payload_len - sizeof(in)) / sizeof(struct fuse_forget_one);

	ARG(r, in);
	for (size_t i = 0; i < MIN((size_t)in.count, avail); i++) {
		struct fuse_forget_one one;

		if (iov_to_buf(r->in, r->in_cnt, off, &one, sizeof(one)) != sizeof(one))
			break;
		BE(r)->ops->forget(BE(r), one.nodeid, one.nlookup);
		off += sizeof(one);
	}
	return NO_REPLY;
}

/* ---- nodes ---- */

/*
 * kill_suidgid() - clear what the VFS clears when a caller without
 * CAP_FSETID writes or truncates a file (HANDLE_KILLPRIV_V2: the client
 * asks with FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID or
 * FUSE_OPEN_KILL_SUIDGID): set-user-id, set-group-id when group-executable,
 * and the security.capability xattr. Done with the server's own identity;
 * errors are ignored (the bits stay, as a failed chmod would leave them).
 */
static void kill_suidgid(struct fuse_req *r, uint64_t nodeid)
{
	const struct fs_ctx self = { 0 };
	struct stat st;
	mode_t kill = S_ISUID;

	if (BE_OP(r, getattr)(BE(r), &self, nodeid, &st) || !S_ISREG(st.st_mode))
		return;
	if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		kill |= S_ISGID;
	if (st.st_mode & kill) {
		struct fs_setattr sa = { .valid = FATTR_MODE, .mode = st.st_mode & 07777 & ~kill };
		BE_OP(r, setattr)(BE(r), &self, nodeid, &sa, &st);
	}
	if (BE_OP(r, removexattr))
		BE_OP(r, removexattr)(BE(r), &self, nodeid, "security.capability");
}

static bool killpriv(const struct fuse_req *r)
{
	return atomic_load_explicit(&r->s->killpriv, memory_order_relaxed);
}

static int op_lookup(struct fuse_req *r)
{
	struct fs_entry e;
	const char *name;
	size_t off = 0;
	int rc = arg_name(r, &off, &name);

	if (rc)
		return rc;
	rc = BE_OP(r, lookup)(BE(r), &r->ctx, r->hdr.nodeid, name, &e);
	if (rc == -ENOENT && r->s->entry_timeout) {
		/* A negative entry: node id 0 lets the client cache the miss. */
		struct fuse_entry_out eo = { .entry_valid = r->s->entry_timeout };

		reply_data(r, &eo, sizeof(eo));
		return 0;
	}
	return rc ? rc : reply_entry(r, &e);
}

static int op_getattr(struct fuse_req *r)
{
	struct stat st;
	int rc = BE_OP(r, getattr)(BE(r), &r->ctx, r->hdr.nodeid, &st);

	return rc ? rc : reply_attr(r, &st);
}

static int op_setattr(struct fuse_req *r)
{
	const uint32_t known = FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME |
			       FATTR_MTIME | FATTR_FH | FATTR_ATIME_NOW | FATTR_MTIME_NOW;
	struct fuse_setattr_in in;
	struct stat st;

	ARG(r, in);
	/* LOCKOWNER, CTIME and KILL_SUIDGID need no action: ctime moves by
	 * itself and suid bits are cleared by the client's own SETATTR. */
	struct fs_setattr sa = {
		.valid = in.valid & known,
		.fh = in.fh,
		.mode = in.mode & 07777,
		.uid = in.uid,
		.gid = in.gid,
		.size = in.size,
		.atime = { .tv_sec = (time_t)in.atime, .tv_nsec = in.atimensec },
		.mtime = { .tv_sec = (time_t)in.mtime, .tv_nsec = in.mtimensec },
	};
	if (sa.valid & FATTR_ATIME_NOW)
		sa.atime.tv_nsec = UTIME_NOW;
	if (sa.valid & FATTR_MTIME_NOW)
		sa.mtime.tv_nsec = UTIME_NOW;
	if ((sa.valid & FATTR_ATIME) && !(sa.valid & FATTR_ATIME_NOW) && in.atimensec >= 1000000000u)
		return -EINVAL;
	if ((sa.valid & FATTR_MTIME) && !(sa.valid & FATTR_MTIME_NOW) && in.mtimensec >= 1000000000u)
		return -EINVAL;
	/* Truncation by a caller without CAP_FSETID. (For chown the client
	 * sets the flag whatever the caller; the host's own chown rules
	 * apply there.) */
	if (killpriv(r) && (in.valid & FATTR_KILL_SUIDGID) && (in.valid & FATTR_SIZE))
		kill_suidgid(r, r->hdr.nodeid);
	int rc = BE_OP(r, setattr)(BE(r), &r->ctx, r->hdr.nodeid, &sa, &st);
	return rc ? rc : reply_attr(r, &st);
}

static int op_readlink(struct fuse_req *r)
{
	char buf[PATH_MAX];
	size_t room = MIN(sizeof(buf), r->out_cap - sizeof(struct fuse_out_header));
	ssize_t n = BE_OP(r, readlink)(BE(r), &r->ctx, r->hdr.nodeid, buf, room);

	if (n < 0)
		return (int)n;
	reply_data(r, buf, (size_t)MIN((size_t)n, room));
	return 0;
}

static int op_mknod(struct fuse_req *r)
{
	struct fuse_mknod_in in;
	struct fs_entry e;
	const char *name;
	size_t off = sizeof(in);
	int rc = arg_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	rc = BE_OP(r, mknod)(BE(r), &r->ctx, r->hdr.nodeid, name,
			     in.mode & (S_IFMT | 07777), decode_dev(in.rdev), &e);
	return rc ? rc : reply_entry(r, &e);
}

static int op_mkdir(struct fuse_req *r)
{
	struct fuse_mkdir_in in;
	struct fs_entry e;
	const char *name;
	size_t off = sizeof(in);
	int rc = arg_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	rc = BE_OP(r, mkdir)(BE(r), &r->ctx, r->hdr.nodeid, name, in.mode & 07777, &e);
	return rc ? rc : reply_entry(r, &e);
}

static int op_symlink(struct fuse_req *r)
{
	struct fs_entry e;
	const char *name, *target;
	size_t off = 0;
	int rc = arg_name(r, &off, &name);

	if (rc)
		return rc;
	ssize_t len = arg_string(r, &off, PATH_MAX - 1, &target);
	if (len < 0)
		return (int)len;
	rc = BE_OP(r, symlink)(BE(r), &r->ctx, r->hdr.nodeid, name, target, &e);
	return rc ? rc : reply_entry(r, &e);
}

static int op_unlink(struct fuse_req *r)
{
	const char *name;
	size_t off = 0;
	int rc = arg_name(r, &off, &name);

	return rc ? rc : BE_OP(r, unlink)(BE(r), &r->ctx, r->hdr.nodeid, name);
}

static int op_rmdir(struct fuse_req *r)
{
	const char *name;
	size_t off = 0;
	int rc = arg_name(r, &off, &name);

	return rc ? rc : BE_OP(r, rmdir)(BE(r), &r->ctx, r->hdr.nodeid, name);
}

/* Names of RENAME and RENAME2 follow their fixed argument of @in_size. */
static int do_rename(struct fuse_req *r, size_t in_size, uint64_t newdir, uint32_t flags)
{
	const char *name, *newname;
	size_t off = in_size;
	int rc = arg_name(r, &off, &name);

	if (!rc)
		rc = arg_name(r, &off, &newname);
	if (rc)
		return rc;
	if (flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	return BE_OP(r, rename)(BE(r), &r->ctx, r->hdr.nodeid, name, newdir, newname, flags);
}

static int op_rename(struct fuse_req *r)
{
	struct fuse_rename_in in;

	ARG(r, in);
	return do_rename(r, sizeof(in), in.newdir, 0);
}

static int op_rename2(struct fuse_req *r)
{
	struct fuse_rename2_in in;

	ARG(r, in);
	return do_rename(r, sizeof(in), in.newdir, in.flags);
}

static int op_link(struct fuse_req *r)
{
	struct fuse_link_in in;
	struct fs_entry e;
	const char *name;
	size_t off = sizeof(in);
	int rc = arg_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	rc = BE_OP(r, link)(BE(r), &r->ctx, in.oldnodeid, r->hdr.nodeid, name, &e);
	return rc ? rc : reply_entry(r, &e);
}

static int op_statfs(struct fuse_req *r)
{
	struct statvfs sv;
	int rc = BE_OP(r, statfs)(BE(r), r->hdr.nodeid, &sv);

	if (rc)
		return rc;
	struct fuse_statfs_out out = { .st = {
		.blocks = sv.f_blocks, .bfree = sv.f_bfree, .bavail = sv.f_bavail,
		.files = sv.f_files, .ffree = sv.f_ffree, .bsize = (uint32_t)sv.f_bsize,
		.namelen = (uint32_t)sv.f_namemax, .frsize = (uint32_t)sv.f_frsize,
	} };
	reply_data(r, &out, sizeof(out));
	return 0;
}

static int op_access(struct fuse_req *r)
{
	struct fuse_access_in in;

	ARG(r, in);
	if (!BE_OP(r, access))
		return -ENOSYS;
	return BE_OP(r, access)(BE(r), &r->ctx, r->hdr.nodeid, in.mask & (R_OK | W_OK | X_OK));
}

/* ---- files ---- */

static uint32_t file_open_flags(const struct fuse_server *s)
{
	return s->open_flags | (s->be->ops->flush ? 0 : FOPEN_NOFLUSH);
}

/* ---- passthrough: the kernel does a file's I/O on the backend's fd ---- */

struct backing_arg {
	struct fuse_req *r;
	uint64_t nodeid, fh;
	int32_t id;
};

static int sink_backing_open(void *ctx, int fd, int32_t *id)
{
	struct fuse_reply_sink *sink = ctx;

	return sink->backing_open(sink, fd, id);
}

static void sink_backing_close(void *ctx, int32_t id)
{
	struct fuse_reply_sink *sink = ctx;

	sink->backing_close(sink, id);
}

static const struct fuse_backing_ops sink_backing_ops = {
	.open = sink_backing_open,
	.close = sink_backing_close,
};

static ssize_t attach_with_fd(void *arg, int fd)
{
	struct backing_arg *a = arg;

	return fuse_backing_attach(a->r->s->backing, a->nodeid, a->fh, fd, &sink_backing_ops,
				   a->r->sink, &a->id);
}

static bool passthrough_usable(const struct fuse_req *r)
{
	return atomic_load_explicit(&r->s->passthrough, memory_order_relaxed) && r->sink &&
	       r->sink->backing_open && r->sink->backing_close && BE_OP(r, with_fd);
}

/*
 * open_reply_flags() - FOPEN_* and backing id for a new handle of a node.
 * With passthrough every open of a regular file asks for it (the kernel
 * refuses mixing passthrough and cached opens of one inode); it keeps only
 * the flags the kernel allows beside FOPEN_PASSTHROUGH (KEEP_CACHE goes:
 * the page cache is the host file's own).
 */
static void open_reply_flags(struct fuse_req *r, uint64_t nodeid, struct fuse_open_out *oo)
{
	struct backing_arg a = { .r = r, .nodeid = nodeid, .fh = oo->fh };

	oo->open_flags = file_open_flags(r->s);
	if (!passthrough_usable(r))
		return;
	ssize_t rc = BE_OP(r, with_fd)(BE(r), oo->fh, attach_with_fd, &a);
	if (rc) {
		/* The operator hears of it once; the counter keeps the rest. */
		if (atomic_fetch_add_explicit(&r->s->ctr.passthrough_failed, 1,
					      memory_order_relaxed) == 0)
			log_warn("fuse: the kernel refused a passthrough file (%s): such files "
				 "go through the server", strerror((int)-rc));
		log_debug("fuse: passthrough for node %llu: %s", (unsigned long long)nodeid,
			  strerror((int)-rc));
		return;
	}
	CTR_INC(r->s, opens_passthrough);
	oo->open_flags = (oo->open_flags & FOPEN_NOFLUSH) | FOPEN_PASSTHROUGH;
	FUSE_OPEN_OUT_BACKING_ID(oo) = (uint32_t)a.id;
}

static int op_open(struct fuse_req *r)
{
	struct fuse_open_in in;
	struct fuse_open_out oo = { 0 };

	ARG(r, in);
	int rc = BE_OP(r, open)(BE(r), &r->ctx, r->hdr.nodeid, in.flags, &oo.fh);
	if (rc)
		return rc;
	if (killpriv(r) && (in.open_flags & FUSE_OPEN_KILL_SUIDGID) && (in.flags & O_TRUNC))
		kill_suidgid(r, r->hdr.nodeid);
	open_reply_flags(r, r->hdr.nodeid, &oo);
	return reply_open(r, &oo);
}

static int op_create(struct fuse_req *r)
{
	struct fuse_create_in in;
	struct {
		struct fuse_entry_out entry;
		struct fuse_open_out open;
	} out = { 0 };
	struct fs_entry e;
	const char *name;
	uint64_t fh;
	size_t off = sizeof(in);
	int rc = arg_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	rc = BE_OP(r, create)(BE(r), &r->ctx, r->hdr.nodeid, name,
			      S_IFREG | (in.mode & 07777), in.flags, &e, &fh);
	if (rc)
		return rc;
	if (killpriv(r) && (in.open_flags & FUSE_OPEN_KILL_SUIDGID) && (in.flags & O_TRUNC)) {
		kill_suidgid(r, e.nodeid);
		BE_OP(r, getattr)(BE(r), &r->ctx, e.nodeid, &e.st);
	}
	fill_entry(r->s, &out.entry, &e);
	out.open.fh = fh;
	open_reply_flags(r, e.nodeid, &out.open);
	reply_data(r, &out, sizeof(out));
	return 0;
}

struct sink_read {
	struct fuse_req *r;
	uint64_t off;
	size_t len;
};

static ssize_t read_to_sink(void *arg, int fd)
{
	struct sink_read *sr = arg;

	return sr->r->sink->reply_fd(sr->r->sink, sr->r->hdr.unique, fd, sr->off, sr->len);
}

/* The file data goes from the backend's descriptor to the transport without
 * touching the reply buffer; any failure before sending falls back to it. */
static bool read_via_sink(struct fuse_req *r, const struct fuse_read_in *in, size_t size)
{
	struct sink_read sr = { .r = r, .off = in->offset, .len = size };

	if (!r->sink || !r->sink->reply_fd || !BE_OP(r, with_fd) || size < r->sink->min_len)
		return false;
	ssize_t n = BE_OP(r, with_fd)(BE(r), in->fh, read_to_sink, &sr);
	if (n < 0)
		return false;
	CTR_ADD(r->s, read_bytes, (uint64_t)n);
	CTR_ADD(r->s, read_bytes_sink, (uint64_t)n);
	return true;
}

static int op_read(struct fuse_req *r)
{
	struct fuse_read_in in;
	struct iovec view[FUSE_SERVER_MAX_IOV];

	ARG(r, in);
	size_t size = MIN((size_t)in.size, r->out_cap - sizeof(struct fuse_out_header));
	if (read_via_sink(r, &in, size))
		return REPLY_SENT;
	unsigned cnt = iov_skip(r->out, r->out_cnt, sizeof(struct fuse_out_header), view,
				ARRAY_SIZE(view));
	cnt = iov_truncate(view, cnt, size);
	ssize_t n = BE_OP(r, read)(BE(r), in.fh, in.offset, view, cnt);
	if (n < 0)
		return (int)n;
	r->reply_len = MIN((size_t)n, size);
	CTR_ADD(r->s, read_bytes, r->reply_len);
	return 0;
}

static int op_write(struct fuse_req *r)
{
	const size_t data_off = sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in);
	struct fuse_write_in in;
	struct iovec view[FUSE_SERVER_MAX_IOV];

	ARG(r, in);
	if (in.size > r->payload_len - sizeof(in))
		return -EINVAL;
	/* The data is used where it lies: it is only copied to the file, so a
	 * client changing it meanwhile changes nothing but the file's bytes. */
	unsigned cnt = iov_skip(r->in, r->in_cnt, data_off, view, ARRAY_SIZE(view));
	cnt = iov_truncate(view, cnt, in.size);
	if (iov_len_capped(view, cnt, in.size) != in.size)
		return -EINVAL;
	ssize_t n = BE_OP(r, write)(BE(r), &r->ctx, in.fh, in.offset, view, cnt);
	if (n < 0)
		return (int)n;
	/* Asked on every direct write (no HANDLE_KILLPRIV_V2 needed: the
	 * client clears nothing itself there), and on cached ones with it. */
	if (in.write_flags & FUSE_WRITE_KILL_SUIDGID)
		kill_suidgid(r, r->hdr.nodeid);
	struct fuse_write_out out = { .size = (uint32_t)n };
	CTR_ADD(r->s, write_bytes, (uint64_t)n);
	reply_data(r, &out, sizeof(out));
	return 0;
}

static int op_release(struct fuse_req *r)
{
	struct fuse_release_in in;

	ARG(r, in);
	/* Without passthrough the table is empty (INIT clears it): skip its
	 * mutex, which every worker's RELEASE would otherwise take. */
	if (passthrough_usable(r))
		fuse_backing_detach(r->s->backing, in.fh, &sink_backing_ops, r->sink);
	return BE_OP(r, release)(BE(r), in.fh);
}

static int op_flush(struct fuse_req *r)
{
	struct fuse_flush_in in;

	ARG(r, in);
	return BE_OP(r, flush) ? BE_OP(r, flush)(BE(r), in.fh) : 0;
}

static int op_fsync(struct fuse_req *r)
{
	struct fuse_fsync_in in;

	ARG(r, in);
	return BE_OP(r, fsync)(BE(r), in.fh, in.fsync_flags & FUSE_FSYNC_FDATASYNC);
}

static int op_fallocate(struct fuse_req *r)
{
	struct fuse_fallocate_in in;

	ARG(r, in);
	if (!BE_OP(r, fallocate))
		return -ENOSYS;
	return BE_OP(r, fallocate)(BE(r), in.fh, in.mode, in.offset, in.length);
}

static int op_lseek(struct fuse_req *r)
{
	struct fuse_lseek_in in;
	struct fuse_lseek_out out;

	ARG(r, in);
	if (!BE_OP(r, lseek))
		return -ENOSYS;
	int rc = BE_OP(r, lseek)(BE(r), in.fh, in.offset, in.whence, &out.offset);
	if (rc)
		return rc;
	reply_data(r, &out, sizeof(out));
	return 0;
}

static int op_copy_file_range(struct fuse_req *r)
{
	struct fuse_copy_file_range_in in;

	ARG(r, in);
	if (!BE_OP(r, copy_file_range))
		return -ENOSYS;
	if (in.flags)
		return -EINVAL;
	ssize_t n = BE_OP(r, copy_file_range)(BE(r), in.fh_in, in.off_in, in.fh_out, in.off_out,
					      (size_t)MIN(in.len, (uint64_t)COPY_RANGE_MAX));
	if (n < 0)
		return (int)n;
	struct fuse_write_out out = { .size = (uint32_t)n };
	reply_data(r, &out, sizeof(out));
	return 0;
}

/* ---- directories ---- */

static int op_opendir(struct fuse_req *r)
{
	struct fuse_open_in in;
	uint64_t fh;

	ARG(r, in);
	int rc = BE_OP(r, opendir)(BE(r), &r->ctx, r->hdr.nodeid, in.flags, &fh);
	struct fuse_open_out oo = { .fh = fh, .open_flags = r->s->opendir_flags };
	return rc ? rc : reply_open(r, &oo);
}

/* Encodes entries straight into the reply iovecs. */
struct dir_sink {
	struct fs_dir_sink base;
	struct fuse_req *r;
	size_t used;
	size_t limit;
};

static size_t dirent_size(bool plus, size_t namelen)
{
	return FUSE_DIRENT_ALIGN((plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET) + namelen);
}

static bool dir_sink_room(struct fs_dir_sink *base, size_t namelen)
{
	struct dir_sink *ds = container_of(base, struct dir_sink, base);

	if (namelen == 0 || namelen > NAME_MAX)
		return true;            /* add() skips it; the listing goes on */
	return ds->used + dirent_size(base->plus, namelen) <= ds->limit;
}

static void dir_sink_add(struct fs_dir_sink *base, const struct fs_dirent *de,
			 const struct fs_entry *entry)
{
	struct dir_sink *ds = container_of(base, struct dir_sink, base);
	union {
		struct fuse_direntplus plus;
		uint8_t bytes[sizeof(struct fuse_direntplus) + NAME_MAX + 8];
	} rec;
	size_t size = dirent_size(base->plus, de->namelen);

	if (de->namelen == 0 || de->namelen > NAME_MAX || ds->used + size > ds->limit)
		return;
	memset(&rec, 0, size);
	struct fuse_dirent *d = base->plus ? &rec.plus.dirent : (struct fuse_dirent *)rec.bytes;
	if (base->plus && entry)
		fill_entry(ds->r->s, &rec.plus.entry_out, entry);
	d->ino = de->ino;
	d->off = de->off;
	d->namelen = (uint32_t)de->namelen;
	d->type = de->type;
	memcpy(d->name, de->name, de->namelen);
	iov_from_buf(ds->r->out, ds->r->out_cnt, sizeof(struct fuse_out_header) + ds->used,
		     &rec, size);
	ds->used += size;
}

static int do_readdir(struct fuse_req *r, bool plus)
{
	struct fuse_read_in in;

	ARG(r, in);
	struct dir_sink ds = {
		.base = { .plus = plus, .room = dir_sink_room, .add = dir_sink_add },
		.r = r,
		.limit = MIN((size_t)in.size, r->out_cap - sizeof(struct fuse_out_header)),
	};
	int rc = BE_OP(r, readdir)(BE(r), &r->ctx, in.fh, in.offset, &ds.base);
	/* Entries already placed are the answer; an error after them would
	 * lose lookups counted by READDIRPLUS. */
	if (rc && ds.used == 0)
		return rc;
	r->reply_len = ds.used;
	return 0;
}

static int op_readdir(struct fuse_req *r)
{
	return do_readdir(r, false);
}

static int op_readdirplus(struct fuse_req *r)
{
	return do_readdir(r, true);
}

static int op_releasedir(struct fuse_req *r)
{
	struct fuse_release_in in;

	ARG(r, in);
	return BE_OP(r, releasedir)(BE(r), in.fh);
}

static int op_fsyncdir(struct fuse_req *r)
{
	struct fuse_fsync_in in;

	ARG(r, in);
	return BE_OP(r, fsyncdir)(BE(r), in.fh, in.fsync_flags & FUSE_FSYNC_FDATASYNC);
}

static int op_syncfs(struct fuse_req *r)
{
	return BE_OP(r, syncfs) ? BE_OP(r, syncfs)(BE(r)) : -ENOSYS;
}

/* ---- extended attributes ---- */

static int xattr_name(struct fuse_req *r, size_t *off, const char **name)
{
	ssize_t len = arg_string(r, off, XATTR_NAME_MAX, name);

	if (len < 0)
		return len == -ENAMETOOLONG ? -ERANGE : (int)len;
	return len ? 0 : -EINVAL;
}

static int op_setxattr(struct fuse_req *r)
{
	/* Without FUSE_SETXATTR_EXT the argument is the 8-byte compat one. */
	struct { uint32_t size, flags; } in;
	const char *name;
	size_t off = FUSE_COMPAT_SETXATTR_IN_SIZE;
	int rc = xattr_name(r, &off, &name);

	if (rc)
		return rc;
	memcpy(&in, r->arg, sizeof(in));
	if (in.size > XATTR_SIZE_MAX || in.size > r->arg_len - off)
		return -EINVAL;
	return BE_OP(r, setxattr)(BE(r), &r->ctx, r->hdr.nodeid, name, r->arg + off, in.size,
				  in.flags);
}

/* GETXATTR and LISTXATTR: a size of 0 asks for the length; otherwise the
 * value, never truncated (-ERANGE when it does not fit). */
static int xattr_reply(struct fuse_req *r, uint32_t size, const char *name)
{
	if (size == 0) {
		ssize_t n = name ? BE_OP(r, getxattr)(BE(r), &r->ctx, r->hdr.nodeid, name, NULL, 0)
				 : BE_OP(r, listxattr)(BE(r), &r->ctx, r->hdr.nodeid, NULL, 0);
		if (n < 0)
			return (int)n;
		struct fuse_getxattr_out out = { .size = (uint32_t)n };
		if (!reply_fits(r, sizeof(out)))
			return -EOVERFLOW;
		reply_data(r, &out, sizeof(out));
		return 0;
	}
	size_t room = MIN((size_t)MIN(size, XATTR_SIZE_MAX),
			  r->out_cap - sizeof(struct fuse_out_header));
	char *buf = malloc(room ? room : 1);
	if (!buf)
		return -ENOMEM;
	ssize_t n = name ? BE_OP(r, getxattr)(BE(r), &r->ctx, r->hdr.nodeid, name, buf, room)
			 : BE_OP(r, listxattr)(BE(r), &r->ctx, r->hdr.nodeid, buf, room);
	if (n >= 0)
		reply_data(r, buf, MIN((size_t)n, room));
	free(buf);
	return n < 0 ? (int)n : 0;
}

static int op_getxattr(struct fuse_req *r)
{
	struct fuse_getxattr_in in;
	const char *name;
	size_t off = sizeof(in);
	int rc = xattr_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	return xattr_reply(r, in.size, name);
}

static int op_listxattr(struct fuse_req *r)
{
	struct fuse_getxattr_in in;

	ARG(r, in);
	return xattr_reply(r, in.size, NULL);
}

static int op_removexattr(struct fuse_req *r)
{
	const char *name;
	size_t off = 0;
	int rc = xattr_name(r, &off, &name);

	return rc ? rc : BE_OP(r, removexattr)(BE(r), &r->ctx, r->hdr.nodeid, name);
}

/* ---- dispatch ---- */

#define OP(code, fn_, in_, out_, flags_) \
	[code] = { .name = #code, .fn = fn_, .in_size = in_, .out_size = out_, .flags = flags_ }

static const struct fuse_op fuse_ops[] = {
	OP(FUSE_LOOKUP, op_lookup, 0, sizeof(struct fuse_entry_out), 0),
	OP(FUSE_FORGET, op_forget, sizeof(struct fuse_forget_in), 0, OP_NO_REPLY),
	OP(FUSE_GETATTR, op_getattr, sizeof(struct fuse_getattr_in), sizeof(struct fuse_attr_out), 0),
	OP(FUSE_SETATTR, op_setattr, sizeof(struct fuse_setattr_in), sizeof(struct fuse_attr_out), 0),
	OP(FUSE_READLINK, op_readlink, 0, 0, 0),
	OP(FUSE_SYMLINK, op_symlink, 0, sizeof(struct fuse_entry_out), 0),
	OP(FUSE_MKNOD, op_mknod, sizeof(struct fuse_mknod_in), sizeof(struct fuse_entry_out), 0),
	OP(FUSE_MKDIR, op_mkdir, sizeof(struct fuse_mkdir_in), sizeof(struct fuse_entry_out), 0),
	OP(FUSE_UNLINK, op_unlink, 0, 0, 0),
	OP(FUSE_RMDIR, op_rmdir, 0, 0, 0),
	OP(FUSE_RENAME, op_rename, sizeof(struct fuse_rename_in), 0, 0),
	OP(FUSE_LINK, op_link, sizeof(struct fuse_link_in), sizeof(struct fuse_entry_out), 0),
	OP(FUSE_OPEN, op_open, sizeof(struct fuse_open_in), sizeof(struct fuse_open_out), 0),
	OP(FUSE_READ, op_read, sizeof(struct fuse_read_in), 0, 0),
	OP(FUSE_WRITE, op_write, sizeof(struct fuse_write_in), sizeof(struct fuse_write_out), OP_STREAM),
	OP(FUSE_STATFS, op_statfs, 0, sizeof(struct fuse_statfs_out), 0),
	OP(FUSE_RELEASE, op_release, sizeof(struct fuse_release_in), 0, 0),
	OP(FUSE_FSYNC, op_fsync, sizeof(struct fuse_fsync_in), 0, 0),
	OP(FUSE_SETXATTR, op_setxattr, FUSE_COMPAT_SETXATTR_IN_SIZE, 0, OP_BIG_ARG),
	OP(FUSE_GETXATTR, op_getxattr, sizeof(struct fuse_getxattr_in), 0, 0),
	OP(FUSE_LISTXATTR, op_listxattr, sizeof(struct fuse_getxattr_in), 0, 0),
	OP(FUSE_REMOVEXATTR, op_removexattr, 0, 0, 0),
	OP(FUSE_FLUSH, op_flush, sizeof(struct fuse_flush_in), 0, 0),
	OP(FUSE_INIT, op_init, offsetof(struct fuse_init_in, flags2), sizeof(struct fuse_init_out), 0),
	OP(FUSE_OPENDIR, op_opendir, sizeof(struct fuse_open_in), sizeof(struct fuse_open_out), 0),
	OP(FUSE_READDIR, op_readdir, sizeof(struct fuse_read_in), 0, 0),
	OP(FUSE_RELEASEDIR, op_releasedir, sizeof(struct fuse_release_in), 0, 0),
	OP(FUSE_FSYNCDIR, op_fsyncdir, sizeof(struct fuse_fsync_in), 0, 0),
	OP(FUSE_ACCESS, op_access, sizeof(struct fuse_access_in), 0, 0),
	OP(FUSE_CREATE, op_create, sizeof(struct fuse_create_in),
	   sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), 0),
	OP(FUSE_INTERRUPT, op_interrupt, sizeof(struct fuse_interrupt_in), 0, OP_NO_REPLY),
	OP(FUSE_DESTROY, op_destroy, 0, 0, 0),
	OP(FUSE_BATCH_FORGET, op_batch_forget, sizeof(struct fuse_batch_forget_in), 0,
	   OP_NO_REPLY | OP_STREAM),
	OP(FUSE_FALLOCATE, op_fallocate, sizeof(struct fuse_fallocate_in), 0, 0),
	OP(FUSE_READDIRPLUS, op_readdirplus, sizeof(struct fuse_read_in), 0, 0),
	OP(FUSE_RENAME2, op_rename2, sizeof(struct fuse_rename2_in), 0, 0),
	OP(FUSE_LSEEK, op_lseek, sizeof(struct fuse_lseek_in), sizeof(struct fuse_lseek_out), 0),
	OP(FUSE_COPY_FILE_RANGE, op_copy_file_range, sizeof(struct fuse_copy_file_range_in),
	   sizeof(struct fuse_write_out), 0),
	OP(FUSE_SYNCFS, op_syncfs, sizeof(struct fuse_syncfs_in), 0, 0),
};

_Static_assert(ARRAY_SIZE(fuse_ops) == FUSE_SYNCFS + 1, "by_op counters cover every handled opcode");

static const struct fuse_op *op_lookup_desc(uint32_t opcode)
{
	if (opcode >= ARRAY_SIZE(fuse_ops) || !fuse_ops[opcode].fn)
		return NULL;
	return &fuse_ops[opcode];
}

/* Write the out header; returns the whole reply's length. */
static size_t finish(struct fuse_req *r, int rc)
{
	struct fuse_out_header oh = { .unique = r->hdr.unique };

	if (rc < 0) {
		/* Only errno values travel: anything else would confuse the client. */
		oh.error = rc >= -4095 ? rc : -EIO;
		r->reply_len = 0;
		CTR_INC(r->s, replies_error);
	} else {
		CTR_INC(r->s, replies_ok);
	}
	oh.len = (uint32_t)(sizeof(oh) + r->reply_len);
	iov_from_buf(r->out, r->out_cnt, 0, &oh, sizeof(oh));
	return oh.len;
}

/*
 * check_request() - validate the header copy against what is really there.
 * Returns 0 or -EINVAL; on success sets r->payload_len.
 */
static int check_request(struct fuse_req *r, size_t in_len)
{
	size_t extlen = (size_t)r->hdr.total_extlen * 8;

	if (r->hdr.len > FUSE_SERVER_MAX_REQUEST || r->hdr.len < sizeof(r->hdr) ||
	    r->hdr.len > in_len)
		return -EINVAL;
	if (extlen > r->hdr.len - sizeof(r->hdr))
		return -EINVAL;
	/* Extensions (security context, supplementary groups) are never
	 * negotiated; they sit after the arguments and are ignored. */
	r->payload_len = r->hdr.len - sizeof(r->hdr) - extlen;
	return 0;
}

/* Copy the arguments: all of the payload, or the fixed part of streamed
 * ops. Large SETXATTR payloads go to the heap; *@heap is set when so. */
static int copy_args(struct fuse_req *r, const struct fuse_op *op, uint8_t *buf, uint8_t **heap)
{
	size_t len = (op->flags & OP_STREAM) ? op->in_size : r->payload_len;

	*heap = NULL;
	if (len > ARG_BUF_SIZE) {
		if (!(op->flags & OP_BIG_ARG) || len > SETXATTR_ARG_MAX)
			return -EINVAL;
		buf = *heap = malloc(len);
		if (!buf)
			return -ENOMEM;
	}
	if (iov_to_buf(r->in, r->in_cnt, sizeof(r->hdr), buf, len) != len)
		return -EINVAL;
	r->arg = buf;
	r->arg_len = len;
	return 0;
}

static int run_op(struct fuse_req *r, const struct fuse_op *op)
{
	uint8_t argbuf[ARG_BUF_SIZE] __attribute__((aligned(8)));
	uint8_t *heap;

	if (r->payload_len < op->in_size)
		return -EINVAL;
	if (!(op->flags & OP_NO_REPLY) && !reply_fits(r, op->out_size)) {
		CTR_INC(r->s, replies_overflow);
		return -EOVERFLOW;
	}
	int rc = copy_args(r, op, argbuf, &heap);
	if (rc)
		return rc;
	rc = op->fn(r);
	free(heap);
	return rc;
}

/* Run @op under the lifecycle lock; the opcode comes from the request's
 * local copy, so the guest cannot change which lock is taken. */
static int run_op_locked(struct fuse_req *r, const struct fuse_op *op)
{
	bool exclusive = r->hdr.opcode == FUSE_INIT || r->hdr.opcode == FUSE_DESTROY;
	pthread_rwlock_t *l = &r->s->lifecycle;

	if (exclusive)
		pthread_rwlock_wrlock(l);
	else
		pthread_rwlock_rdlock(l);
	int rc = run_op(r, op);
	pthread_rwlock_unlock(l);
	return rc;
}

size_t fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
			  const struct iovec *out, unsigned out_cnt)
{
	return fuse_server_handle_sink(s, in, in_cnt, out, out_cnt, NULL);
}

static size_t handle_one(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
			 const struct iovec *out, unsigned out_cnt, struct fuse_reply_sink *sink);

size_t fuse_server_handle_sink(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
			       const struct iovec *out, unsigned out_cnt,
			       struct fuse_reply_sink *sink)
{
	in_request++;
	size_t len = handle_one(s, in, in_cnt, out, out_cnt, sink);
	in_request--;
	return len;
}

static size_t handle_one(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
			 const struct iovec *out, unsigned out_cnt, struct fuse_reply_sink *sink)
{
	struct fuse_req r = { .s = s, .in = in, .out = out, .sink = sink,
			      .in_cnt = MIN(in_cnt, FUSE_SERVER_MAX_IOV),
			      .out_cnt = MIN(out_cnt, FUSE_SERVER_MAX_IOV) };
	size_t in_len = iov_len_capped(in, r.in_cnt, (size_t)FUSE_SERVER_MAX_REQUEST + 1);

	CTR_INC(s, requests);
	r.out_cap = iov_len_capped(out, r.out_cnt, FUSE_SERVER_MAX_REQUEST);
	if (in_cnt > FUSE_SERVER_MAX_IOV || out_cnt > FUSE_SERVER_MAX_IOV ||
	    iov_to_buf(in, r.in_cnt, 0, &r.hdr, sizeof(r.hdr)) != sizeof(r.hdr)) {
		CTR_INC(s, requests_malformed);
		CTR_INC(s, replies_none);
		return 0;
	}
	const struct fuse_op *op = op_lookup_desc(r.hdr.opcode);
	bool replies = !op || !(op->flags & OP_NO_REPLY);
	if (replies && r.out_cap < sizeof(struct fuse_out_header)) {
		CTR_INC(s, requests_malformed);
		CTR_INC(s, replies_none);
		return 0;
	}
	r.ctx = (struct fs_ctx){ .uid = r.hdr.uid, .gid = r.hdr.gid, .pid = r.hdr.pid };

	int rc;
	if (check_request(&r, in_len)) {
		CTR_INC(s, requests_malformed);
		rc = -EINVAL;
	} else if (!op) {
		CTR_INC(s, requests_unknown);
		rc = -ENOSYS;
	} else if (r.hdr.opcode != FUSE_INIT &&
		   !atomic_load_explicit(&s->initialized, memory_order_acquire)) {
		CTR_INC(s, requests_before_init);
		rc = -EIO;
	} else {
		atomic_fetch_add_explicit(&s->ctr.by_op[r.hdr.opcode], 1, memory_order_relaxed);
		rc = run_op_locked(&r, op);
	}
	if (!replies) {
		CTR_INC(s, replies_none);
		return 0;
	}
	if (rc == REPLY_SENT) {
		CTR_INC(s, replies_ok);
		return 0;
	}
	if (rc < 0)
		log_debug("fuse: %s (opcode %u) unique %llu node %llu: %s",
			  op ? op->name : "unknown", r.hdr.opcode, (unsigned long long)r.hdr.unique,
			  (unsigned long long)r.hdr.nodeid, strerror(-rc));
	return finish(&r, rc == NO_REPLY ? -EIO : rc);
}

/* ---- setup ---- */

int fuse_cache_policy_parse(const char *text, enum fuse_cache_policy *policy)
{
	static const char *const names[] = {
		[FUSE_CACHE_NONE] = "none", [FUSE_CACHE_METADATA] = "metadata",
		[FUSE_CACHE_AUTO] = "auto", [FUSE_CACHE_ALWAYS] = "always",
	};

	for (unsigned i = 0; i < ARRAY_SIZE(names); i++) {
		if (!strcmp(text, names[i])) {
			*policy = (enum fuse_cache_policy)i;
			return 0;
		}
	}
	return -EINVAL;
}

static void apply_cache_policy(struct fuse_server *s)
{
	switch (s->opts.cache) {
	case FUSE_CACHE_NONE:
		s->open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
		break;
	case FUSE_CACHE_METADATA:
		s->entry_timeout = s->attr_timeout = 1;
		s->open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
		break;
	case FUSE_CACHE_AUTO:
		s->entry_timeout = s->attr_timeout = 1;
		break;
	case FUSE_CACHE_ALWAYS:
		s->entry_timeout = s->attr_timeout = 86400;
		s->open_flags = FOPEN_KEEP_CACHE;
		s->opendir_flags = FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR;
		break;
	}
}

struct fuse_server *fuse_server_new(struct fs_backend *be, const struct fuse_server_opts *o)
{
	struct fuse_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->be = be;
	if (o)
		s->opts = *o;
	else
		s->opts.cache = FUSE_CACHE_AUTO;
	if (s->opts.cache > FUSE_CACHE_ALWAYS)
		s->opts.cache = FUSE_CACHE_AUTO;
	if (!s->opts.max_write)
		s->opts.max_write = DEFAULT_MAX_WRITE;
	s->opts.max_write = MIN(s->opts.max_write, MAX_PAGES_LIMIT * PAGE_SZ);
	s->opts.max_write = MAX(s->opts.max_write & ~(PAGE_SZ - 1), PAGE_SZ);
	if (!s->opts.max_readahead)
		s->opts.max_readahead = DEFAULT_MAX_WRITE;
	apply_cache_policy(s);
	atomic_init(&s->initialized, false);
	s->backing = fuse_backing_new();
	if (!s->backing || pthread_rwlock_init(&s->lifecycle, NULL)) {
		fuse_backing_free(s->backing);
		free(s);
		return NULL;
	}
	return s;
}

void fuse_server_free(struct fuse_server *s)
{
	if (!s)
		return;
	pthread_rwlock_destroy(&s->lifecycle);
	fuse_backing_free(s->backing);
	free(s);
}

uint32_t fuse_server_max_write(const struct fuse_server *s)
{
	struct fuse_server *m = (struct fuse_server *)s;

	return atomic_load_explicit(&m->initialized, memory_order_acquire)
		       ? atomic_load_explicit(&m->max_write, memory_order_relaxed) : 0;
}

uint32_t fuse_server_proto_minor(const struct fuse_server *s)
{
	struct fuse_server *m = (struct fuse_server *)s;

	return atomic_load_explicit(&m->initialized, memory_order_acquire)
		       ? atomic_load_explicit(&m->proto_minor, memory_order_relaxed) : 0;
}

size_t fuse_server_max_reply(const struct fuse_server *s)
{
	return sizeof(struct fuse_out_header) + MAX((size_t)s->opts.max_write, (size_t)XATTR_SIZE_MAX);
}

void fuse_server_get_counters(const struct fuse_server *s, struct fuse_server_counters *c)
{
	struct fuse_server *m = (struct fuse_server *)s;

#define LOAD(f) c->f = atomic_load_explicit(&m->ctr.f, memory_order_relaxed)
	LOAD(requests);
	LOAD(replies_ok);
	LOAD(replies_error);
	LOAD(replies_none);
	LOAD(requests_malformed);
	LOAD(requests_unknown);
	LOAD(requests_before_init);
	LOAD(replies_overflow);
	LOAD(read_bytes);
	LOAD(read_bytes_sink);
	LOAD(write_bytes);
	LOAD(opens_passthrough);
	LOAD(passthrough_failed);
	LOAD(notify_sent);
	LOAD(notify_unknown);
	LOAD(notify_dropped);
	LOAD(notify_failed);
#undef LOAD
}

void fuse_server_dump_counters(const struct fuse_server *s, FILE *out)
{
	struct fuse_server_counters c;

	fuse_server_get_counters(s, &c);
	fprintf(out, "fuse_requests %llu\nfuse_replies_ok %llu\nfuse_replies_error %llu\n"
		"fuse_replies_none %llu\nfuse_requests_malformed %llu\n"
		"fuse_requests_unknown %llu\nfuse_requests_before_init %llu\n"
		"fuse_replies_overflow %llu\nfuse_read_bytes %llu\nfuse_read_bytes_sink %llu\n"
		"fuse_write_bytes %llu\nfuse_opens_passthrough %llu\nfuse_passthrough_failed %llu\n",
		(unsigned long long)c.requests, (unsigned long long)c.replies_ok,
		(unsigned long long)c.replies_error, (unsigned long long)c.replies_none,
		(unsigned long long)c.requests_malformed, (unsigned long long)c.requests_unknown,
		(unsigned long long)c.requests_before_init, (unsigned long long)c.replies_overflow,
		(unsigned long long)c.read_bytes, (unsigned long long)c.read_bytes_sink,
		(unsigned long long)c.write_bytes, (unsigned long long)c.opens_passthrough,
		(unsigned long long)c.passthrough_failed);
	fprintf(out, "fuse_notify_sent %llu\nfuse_notify_unknown %llu\nfuse_notify_dropped %llu\n"
		"fuse_notify_failed %llu\n",
		(unsigned long long)c.notify_sent, (unsigned long long)c.notify_unknown,
		(unsigned long long)c.notify_dropped, (unsigned long long)c.notify_failed);
	for (unsigned op = 0; op < ARRAY_SIZE(fuse_ops); op++) {
		uint64_t n = atomic_load_explicit(&((struct fuse_server *)s)->ctr.by_op[op],
						  memory_order_relaxed);
		if (n)
			fprintf(out, "fuse_requests_%s %llu\n", fuse_ops[op].name + 5,
				(unsigned long long)n);
	}
}

/* ---- notifications ---- */

/* Both notifications exist since protocol 7.12. */
#define NOTIFY_INVAL_MINOR 12u

void fuse_server_set_notify(struct fuse_server *s, struct fuse_notify_transport *t)
{
	atomic_store_explicit(&s->notify, t, memory_order_release);
}

bool fuse_server_notify_possible(struct fuse_server *s)
{
	struct fuse_notify_transport *t = atomic_load_explicit(&s->notify, memory_order_acquire);
	bool init = atomic_load_explicit(&s->initialized, memory_order_acquire);

	if (!t || (t->can_send && !t->can_send(t)))
		return false;
	return !init || fuse_server_proto_minor(s) >= NOTIFY_INVAL_MINOR;
}

/* Send @msg (its out header filled here) if this thread may, the client
 * negotiated the notification and a transport is set; count the outcome. */
static int notify_send(struct fuse_server *s, int code, void *msg, size_t len)
{
	struct fuse_notify_transport *t = atomic_load_explicit(&s->notify, memory_order_acquire);
	struct fuse_out_header *oh = msg;
	int rc;

	if (in_request)
		rc = -EDEADLK;
	else if (fuse_server_proto_minor(s) < NOTIFY_INVAL_MINOR)
		rc = -EAGAIN;
	else if (!t)
		rc = -ENOTCONN;
	else {
		*oh = (struct fuse_out_header){ .len = (uint32_t)len, .error = code, .unique = 0 };
		rc = t->send(t, msg, len);
		if (rc == 0)
			CTR_INC(s, notify_sent);
		else if (rc == -ENOENT)
			CTR_INC(s, notify_unknown);
		else if (rc == -EOPNOTSUPP)
			CTR_INC(s, notify_dropped);    /* the transport's client did not negotiate */
		else
			CTR_INC(s, notify_failed);
		return rc;
	}
	CTR_INC(s, notify_dropped);
	return rc;
}

int fuse_server_notify_inval_inode(struct fuse_server *s, uint64_t nodeid, int64_t off,
				   int64_t len)
{
	struct {
		struct fuse_out_header oh;
		struct fuse_notify_inval_inode_out arg;
	} msg = { .arg = { .ino = nodeid, .off = off, .len = len } };

	return notify_send(s, FUSE_NOTIFY_INVAL_INODE, &msg, sizeof(msg));
}

int fuse_server_notify_inval_entry(struct fuse_server *s, uint64_t parent, const char *name,
				   size_t namelen)
{
	struct {
		struct fuse_out_header oh;
		struct fuse_notify_inval_entry_out arg;
		char name[NAME_MAX + 1];
	} msg;

	if (!namelen || namelen > NAME_MAX || memchr(name, '\0', namelen)) {
		CTR_INC(s, notify_dropped);
		return -EINVAL;
	}
	memset(&msg, 0, sizeof(msg));
	msg.arg = (struct fuse_notify_inval_entry_out){ .parent = parent,
							.namelen = (uint32_t)namelen };
	memcpy(msg.name, name, namelen);
	/* The client reads the name and its NUL. */
	return notify_send(s, FUSE_NOTIFY_INVAL_ENTRY, &msg,
			   offsetof(typeof(msg), name) + namelen + 1);
}
