/*
 * FUSE request dispatch: one table indexed by opcode says how large each
 * request's fixed argument is and how large its fixed reply is; both are
 * checked centrally before any handler runs. Handlers decode the local copy
 * of the arguments, call the backend and place the reply payload; the
 * dispatcher writes the fuse_out_header last.
 */
#include "fuse/fuse_server_internal.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <linux/fuse.h>
#include <linux/limits.h>

#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "fuse/fuse_backing.h"
#include "fuse/fuse_compat.h"

__thread unsigned fuse_in_request;

/* ---- dispatch ---- */

/* Designated-initializer values cannot be mis-bound by operator precedence. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define OP(code, fn_, in_, out_, flags_) \
	[code] = { .name = #code, .fn = fn_, .in_size = in_, .out_size = out_, .flags = flags_, \
		   .be_op = BACKEND_OP_##code }
/* NOLINTEND(bugprone-macro-parentheses) */

/* The backend operation each opcode cannot do without (fs_backend.h: a
 * NULL one is answered -ENOSYS here, before the handler runs); 0: none
 * (FLUSH: a NULL flush means nothing to flush). */
#define BACKEND_OP(op) (offsetof(struct fs_backend_ops, op) + 1)
#define BACKEND_OP_FUSE_LOOKUP BACKEND_OP(lookup)
#define BACKEND_OP_FUSE_FORGET BACKEND_OP(forget)
#define BACKEND_OP_FUSE_GETATTR BACKEND_OP(getattr)
#define BACKEND_OP_FUSE_SETATTR BACKEND_OP(setattr)
#define BACKEND_OP_FUSE_READLINK BACKEND_OP(readlink)
#define BACKEND_OP_FUSE_SYMLINK BACKEND_OP(symlink)
#define BACKEND_OP_FUSE_MKNOD BACKEND_OP(mknod)
#define BACKEND_OP_FUSE_MKDIR BACKEND_OP(mkdir)
#define BACKEND_OP_FUSE_UNLINK BACKEND_OP(unlink)
#define BACKEND_OP_FUSE_RMDIR BACKEND_OP(rmdir)
#define BACKEND_OP_FUSE_RENAME BACKEND_OP(rename)
#define BACKEND_OP_FUSE_LINK BACKEND_OP(link)
#define BACKEND_OP_FUSE_OPEN BACKEND_OP(open)
#define BACKEND_OP_FUSE_READ BACKEND_OP(read)
#define BACKEND_OP_FUSE_WRITE BACKEND_OP(write)
#define BACKEND_OP_FUSE_STATFS BACKEND_OP(statfs)
#define BACKEND_OP_FUSE_RELEASE BACKEND_OP(release)
#define BACKEND_OP_FUSE_FSYNC BACKEND_OP(fsync)
#define BACKEND_OP_FUSE_SETXATTR BACKEND_OP(setxattr)
#define BACKEND_OP_FUSE_GETXATTR BACKEND_OP(getxattr)
#define BACKEND_OP_FUSE_LISTXATTR BACKEND_OP(listxattr)
#define BACKEND_OP_FUSE_REMOVEXATTR BACKEND_OP(removexattr)
#define BACKEND_OP_FUSE_OPENDIR BACKEND_OP(opendir)
#define BACKEND_OP_FUSE_READDIR BACKEND_OP(readdir)
#define BACKEND_OP_FUSE_RELEASEDIR BACKEND_OP(releasedir)
#define BACKEND_OP_FUSE_FSYNCDIR BACKEND_OP(fsyncdir)
#define BACKEND_OP_FUSE_ACCESS BACKEND_OP(access)
#define BACKEND_OP_FUSE_CREATE BACKEND_OP(create)
#define BACKEND_OP_FUSE_BATCH_FORGET BACKEND_OP(forget)
#define BACKEND_OP_FUSE_FALLOCATE BACKEND_OP(fallocate)
#define BACKEND_OP_FUSE_READDIRPLUS BACKEND_OP(readdir)
#define BACKEND_OP_FUSE_RENAME2 BACKEND_OP(rename)
#define BACKEND_OP_FUSE_LSEEK BACKEND_OP(lseek)
#define BACKEND_OP_FUSE_COPY_FILE_RANGE BACKEND_OP(copy_file_range)
#define BACKEND_OP_FUSE_SYNCFS BACKEND_OP(syncfs)
#define BACKEND_OP_FUSE_TMPFILE BACKEND_OP(tmpfile)
#define BACKEND_OP_FUSE_SETUPMAPPING BACKEND_OP(with_fd)
#define BACKEND_OP_FUSE_REMOVEMAPPING 0
#define BACKEND_OP_FUSE_FLUSH 0
#define BACKEND_OP_FUSE_INIT 0
#define BACKEND_OP_FUSE_INTERRUPT 0
#define BACKEND_OP_FUSE_DESTROY 0

static const struct fuse_op fuse_ops[] = {
	OP(FUSE_LOOKUP, fuse_op_lookup, 0, sizeof(struct fuse_entry_out), 0),
	OP(FUSE_FORGET, fuse_op_forget, sizeof(struct fuse_forget_in), 0, OP_NO_REPLY),
	OP(FUSE_GETATTR, fuse_op_getattr, sizeof(struct fuse_getattr_in), sizeof(struct fuse_attr_out), 0),
	OP(FUSE_SETATTR, fuse_op_setattr, sizeof(struct fuse_setattr_in), sizeof(struct fuse_attr_out), 0),
	OP(FUSE_READLINK, fuse_op_readlink, 0, 0, 0),
	OP(FUSE_SYMLINK, fuse_op_symlink, 0, sizeof(struct fuse_entry_out), 0),
	OP(FUSE_MKNOD, fuse_op_mknod, sizeof(struct fuse_mknod_in), sizeof(struct fuse_entry_out), 0),
	OP(FUSE_MKDIR, fuse_op_mkdir, sizeof(struct fuse_mkdir_in), sizeof(struct fuse_entry_out), 0),
	OP(FUSE_UNLINK, fuse_op_unlink, 0, 0, 0),
	OP(FUSE_RMDIR, fuse_op_rmdir, 0, 0, 0),
	OP(FUSE_RENAME, fuse_op_rename, sizeof(struct fuse_rename_in), 0, 0),
	OP(FUSE_LINK, fuse_op_link, sizeof(struct fuse_link_in), sizeof(struct fuse_entry_out), 0),
	OP(FUSE_OPEN, fuse_op_open, sizeof(struct fuse_open_in), sizeof(struct fuse_open_out), 0),
	OP(FUSE_READ, fuse_op_read, sizeof(struct fuse_read_in), 0, 0),
	OP(FUSE_WRITE, fuse_op_write, sizeof(struct fuse_write_in), sizeof(struct fuse_write_out), OP_STREAM),
	OP(FUSE_STATFS, fuse_op_statfs, 0, sizeof(struct fuse_statfs_out), 0),
	OP(FUSE_RELEASE, fuse_op_release, sizeof(struct fuse_release_in), 0, 0),
	OP(FUSE_FSYNC, fuse_op_fsync, sizeof(struct fuse_fsync_in), 0, 0),
	OP(FUSE_SETXATTR, fuse_op_setxattr, FUSE_COMPAT_SETXATTR_IN_SIZE, 0, OP_BIG_ARG),
	OP(FUSE_GETXATTR, fuse_op_getxattr, sizeof(struct fuse_getxattr_in), 0, 0),
	OP(FUSE_LISTXATTR, fuse_op_listxattr, sizeof(struct fuse_getxattr_in), 0, 0),
	OP(FUSE_REMOVEXATTR, fuse_op_removexattr, 0, 0, 0),
	OP(FUSE_FLUSH, fuse_op_flush, sizeof(struct fuse_flush_in), 0, 0),
	OP(FUSE_INIT, fuse_op_init, offsetof(struct fuse_init_in, flags2), sizeof(struct fuse_init_out), 0),
	OP(FUSE_OPENDIR, fuse_op_opendir, sizeof(struct fuse_open_in), sizeof(struct fuse_open_out), 0),
	OP(FUSE_READDIR, fuse_op_readdir, sizeof(struct fuse_read_in), 0, 0),
	OP(FUSE_RELEASEDIR, fuse_op_releasedir, sizeof(struct fuse_release_in), 0, 0),
	OP(FUSE_FSYNCDIR, fuse_op_fsyncdir, sizeof(struct fuse_fsync_in), 0, 0),
	OP(FUSE_ACCESS, fuse_op_access, sizeof(struct fuse_access_in), 0, 0),
	OP(FUSE_CREATE, fuse_op_create, sizeof(struct fuse_create_in),
	   sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), 0),
	OP(FUSE_INTERRUPT, fuse_op_interrupt, sizeof(struct fuse_interrupt_in), 0, OP_NO_REPLY),
	OP(FUSE_DESTROY, fuse_op_destroy, 0, 0, 0),
	OP(FUSE_BATCH_FORGET, fuse_op_batch_forget, sizeof(struct fuse_batch_forget_in), 0,
	   OP_NO_REPLY | OP_STREAM),
	OP(FUSE_FALLOCATE, fuse_op_fallocate, sizeof(struct fuse_fallocate_in), 0, 0),
	OP(FUSE_READDIRPLUS, fuse_op_readdirplus, sizeof(struct fuse_read_in), 0, 0),
	OP(FUSE_RENAME2, fuse_op_rename2, sizeof(struct fuse_rename2_in), 0, 0),
	OP(FUSE_LSEEK, fuse_op_lseek, sizeof(struct fuse_lseek_in), sizeof(struct fuse_lseek_out), 0),
	OP(FUSE_COPY_FILE_RANGE, fuse_op_copy_file_range, sizeof(struct fuse_copy_file_range_in),
	   sizeof(struct fuse_write_out), 0),
	OP(FUSE_SETUPMAPPING, fuse_op_setupmapping, sizeof(struct fuse_setupmapping_in), 0, 0),
	OP(FUSE_REMOVEMAPPING, fuse_op_removemapping, sizeof(struct fuse_removemapping_in), 0, 0),
	OP(FUSE_SYNCFS, fuse_op_syncfs, sizeof(struct fuse_syncfs_in), 0, 0),
	OP(FUSE_TMPFILE, fuse_op_tmpfile, sizeof(struct fuse_create_in),
	   sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), 0),
};

_Static_assert(ARRAY_SIZE(fuse_ops) == FUSE_TMPFILE + 1, "by_op counters cover every handled opcode");

_Static_assert(sizeof(void (*)(void)) == sizeof(uintptr_t), "a backend op reads as a word");

/* Does the backend implement what @op needs? */
static bool backend_has_op(const struct fs_backend *be, const struct fuse_op *op)
{
	uintptr_t fn;

	if (!op->be_op)
		return true;
	memcpy(&fn, (const char *)be->ops + op->be_op - 1, sizeof(fn));
	return fn != 0;
}

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
	if (!(op->flags & OP_NO_REPLY) && !fuse_reply_fits(r, op->out_size)) {
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
	fuse_in_request++;
	size_t len = handle_one(s, in, in_cnt, out, out_cnt, sink);
	fuse_in_request--;
	return len;
}

static size_t handle_one(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
			 const struct iovec *out, unsigned out_cnt, struct fuse_reply_sink *sink)
{
	struct fuse_req r = { .s = s, .in = in, .out = out, .sink = sink,
			      .in_cnt = MIN(in_cnt, FUSE_SERVER_MAX_IOV),
			      .out_cnt = MIN(out_cnt, FUSE_SERVER_MAX_IOV) };
	size_t in_len = fuse_iov_len_capped(in, r.in_cnt, (size_t)FUSE_SERVER_MAX_REQUEST + 1);

	CTR_INC(s, requests);
	r.out_cap = fuse_iov_len_capped(out, r.out_cnt, FUSE_SERVER_MAX_REQUEST);
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
		   !load_acquire(&s->initialized)) {
		CTR_INC(s, requests_before_init);
		rc = -EIO;
	} else {
		fetch_add_relaxed(&s->ctr.by_op[r.hdr.opcode], 1);
		rc = backend_has_op(s->be, op) ? run_op_locked(&r, op) : -ENOSYS;
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
	s->initialized = false;	/* not yet shared with any thread */
	s->backing = fuse_backing_new();
	if (!s->backing || pthread_rwlock_init(&s->lifecycle, NULL)) {
		fuse_backing_free(s->backing);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->dax_lock, NULL);
	return s;
}

void fuse_server_free(struct fuse_server *s)
{
	if (!s)
		return;
	pthread_rwlock_destroy(&s->lifecycle);
	pthread_mutex_destroy(&s->dax_lock);
	dax_ranges_free(&s->dax_ranges);
	fuse_backing_free(s->backing);
	free(s);
}

void fuse_server_set_dax(struct fuse_server *s, struct fuse_dax_window *w)
{
	s->dax = w;
}

uint32_t fuse_server_max_write(const struct fuse_server *s)
{
	struct fuse_server *m = (struct fuse_server *)s;

	return load_acquire(&m->initialized)
		       ? load_relaxed(&m->max_write) : 0;
}

uint32_t fuse_server_proto_minor(const struct fuse_server *s)
{
	struct fuse_server *m = (struct fuse_server *)s;

	return load_acquire(&m->initialized)
		       ? load_relaxed(&m->proto_minor) : 0;
}

size_t fuse_server_max_reply(const struct fuse_server *s)
{
	return sizeof(struct fuse_out_header) + MAX((size_t)s->opts.max_write, (size_t)XATTR_SIZE_MAX);
}

void fuse_server_get_counters(const struct fuse_server *s, struct fuse_server_counters *c)
{
	struct fuse_server *m = (struct fuse_server *)s;

#define X(f, doc) c->f = load_relaxed(&m->ctr.f);
	FUSE_SERVER_COUNTERS(X)
#undef X
}

#define X(name, doc) COUNTER_DESC(struct fuse_server_counters, name, doc)
const struct counter_set fuse_server_counter_set = COUNTER_SET("fuse", FUSE_SERVER_COUNTERS(X));
#undef X

void fuse_server_visit_counters(const struct fuse_server *s, const struct counter_sink *sink)
{
	struct fuse_server *m = (struct fuse_server *)s;
	struct fuse_server_counters c;
	char name[48];

	/* A copy first: the live counters are read one relaxed load at a time. */
	fuse_server_get_counters(s, &c);
	counters_visit(&fuse_server_counter_set, &c, "fuse_", sink);
	for (unsigned op = 0; op < ARRAY_SIZE(fuse_ops); op++) {
		uint64_t n = load_relaxed(&m->ctr.by_op[op]);
		if (!n)
			continue;
		/* "FUSE_LOOKUP" is counted as "requests_LOOKUP" */
		snprintf(name, sizeof(name), "requests_%s", fuse_ops[op].name + 5);
		counter_emit(sink, "fuse_", name, n);
	}
}

void fuse_server_dump_counters(const struct fuse_server *s, FILE *out)
{
	fuse_server_visit_counters(s, COUNTER_SINK_FILE(out));
}
