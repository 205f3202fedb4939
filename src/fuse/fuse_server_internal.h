/*
 * Internals of the FUSE server shared by its files: the server and request
 * structs, the op table entry, the reply helpers (fuse_reply.c) and the
 * handlers each file contributes to the dispatch table (fuse_server.c).
 * Not for use outside src/fuse/.
 */
#ifndef KVMINI_FUSE_FUSE_SERVER_INTERNAL_H
#define KVMINI_FUSE_FUSE_SERVER_INTERNAL_H

#include "fuse/fuse_server.h"
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <linux/fuse.h>
#include <linux/limits.h>
#include "core/atomics.h"
#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "fuse/dax_ranges.h"
#include "fuse/fuse_backing.h"
#include "fuse/fuse_compat.h"

/* Every argument but WRITE data and xattr values fits here: RENAME2 with two
 * names, SYMLINK with a name and a PATH_MAX target. */
#define ARG_BUF_SIZE 8192u
/* SETXATTR's largest payload: its header, a name and a value. */
#define SETXATTR_ARG_MAX (sizeof(struct fuse_setxattr_in) + XATTR_NAME_MAX + 1 + XATTR_SIZE_MAX)
/* COPY_FILE_RANGE answers in a 32-bit size; keep each call bounded too. */
#define COPY_RANGE_MAX (1u << 30)
#define DEFAULT_MAX_WRITE (1u << 20)
#define PAGE_SZ 4096u
/* log2 of the alignment DAX mappings need (INIT's map_alignment): pages. */
#define FUSE_DAX_MAP_SHIFT 12u
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
	bool initialized;
	/* Relaxed atomics too (core/atomics.h): a hostile client may send INIT beside other requests. */
	unsigned int proto_minor;
	unsigned int max_write;
	/* FUSE_PASSTHROUGH negotiated: OPEN and CREATE hand the kernel the
	 * file's descriptor (backing ids in @backing). */
	bool passthrough;
	struct fuse_backing_table *backing;
	/* FUSE_HANDLE_KILLPRIV_V2 negotiated: set-id bits are ours to clear. */
	bool killpriv;
	/* What INIT agreed on, kept for snapshots (fuse_state.c): the flags
	 * (flags | flags2 << 32) and readahead. Written by INIT only. */
	uint64_t init_flags;
	unsigned int max_readahead;

	/* Counters: only fetch_add_relaxed / load_relaxed touch them. */
	struct {
#define FUSE_CTR_FIELD(name, doc) uint64_t name;
		FUSE_SERVER_COUNTERS(FUSE_CTR_FIELD)
#undef FUSE_CTR_FIELD
		/* Requests per known opcode, for the operator's view of a workload. */
		uint64_t by_op[FUSE_TMPFILE + 1];
	} ctr;

	/* The DAX window, or NULL (set before any request, then read-only). */
	struct fuse_dax_window *dax;
	/* What is mapped in it (for snapshots): changed only together with the
	 * window, both under @dax_lock, so the two always agree. */
	pthread_mutex_t dax_lock;
	struct dax_ranges dax_ranges;

	/* Where notifications go; set by the transport, read by the notifying
	 * thread (store_release / load_acquire). */
	struct fuse_notify_transport *notify;
};

/* Nonzero while this thread answers a request: notifications from here
 * could wait for the very request being answered (see fuse_server.h). */
extern __thread unsigned fuse_in_request;

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
	size_t be_op;                    /* 1 + offset in fs_backend_ops of the op it needs, or 0 */
};

#define CTR_INC(s, field) fetch_add_relaxed(&(s)->ctr.field, 1)
#define CTR_ADD(s, field, n) fetch_add_relaxed(&(s)->ctr.field, (n))

/* Copy the fixed argument struct of the request into @dst. The dispatcher
 * has checked that at least sizeof(*dst) bytes were copied. */
#define ARG(r, dst) memcpy(&(dst), (r)->arg, sizeof(dst))

#define BE(r) ((r)->s->be)
#define BE_OP(r, op) (BE(r)->ops->op)

/* fuse_reply.c */
size_t fuse_iov_len_capped(const struct iovec *iov, unsigned cnt, size_t cap);
unsigned fuse_iov_truncate(struct iovec *iov, unsigned cnt, size_t len);
ssize_t fuse_arg_string(struct fuse_req *r, size_t *off, size_t maxlen, const char **out);
int fuse_arg_name(struct fuse_req *r, size_t *off, const char **name);
bool fuse_reply_fits(const struct fuse_req *r, size_t len);
void fuse_reply_data(struct fuse_req *r, const void *data, size_t len);
dev_t fuse_decode_dev(uint32_t dev);
void fuse_fill_entry(const struct fuse_server *s, struct fuse_entry_out *eo,
		     const struct fs_entry *e);
int fuse_reply_entry(struct fuse_req *r, const struct fs_entry *e);
int fuse_reply_attr(struct fuse_req *r, const struct stat *st);
int fuse_reply_open(struct fuse_req *r, const struct fuse_open_out *oo);
/* fuse_session.c */
uint64_t fuse_init_flags_wanted(const struct fuse_server *s);
int fuse_op_init(struct fuse_req *r);
int fuse_op_destroy(struct fuse_req *r);
int fuse_op_interrupt(struct fuse_req *r);
int fuse_op_forget(struct fuse_req *r);
int fuse_op_batch_forget(struct fuse_req *r);
/* fuse_nodes.c */
void fuse_kill_suidgid(struct fuse_req *r, uint64_t nodeid);
bool fuse_killpriv(const struct fuse_req *r);
int fuse_op_lookup(struct fuse_req *r);
int fuse_op_getattr(struct fuse_req *r);
int fuse_op_setattr(struct fuse_req *r);
int fuse_op_readlink(struct fuse_req *r);
int fuse_op_mknod(struct fuse_req *r);
int fuse_op_mkdir(struct fuse_req *r);
int fuse_op_symlink(struct fuse_req *r);
int fuse_op_unlink(struct fuse_req *r);
int fuse_op_rmdir(struct fuse_req *r);
int fuse_op_rename(struct fuse_req *r);
int fuse_op_rename2(struct fuse_req *r);
int fuse_op_link(struct fuse_req *r);
int fuse_op_statfs(struct fuse_req *r);
int fuse_op_access(struct fuse_req *r);
/* fuse_files.c */
int fuse_op_open(struct fuse_req *r);
int fuse_op_create(struct fuse_req *r);
int fuse_op_tmpfile(struct fuse_req *r);
int fuse_op_read(struct fuse_req *r);
int fuse_op_write(struct fuse_req *r);
int fuse_op_release(struct fuse_req *r);
int fuse_op_flush(struct fuse_req *r);
int fuse_op_fsync(struct fuse_req *r);
int fuse_op_fallocate(struct fuse_req *r);
int fuse_op_lseek(struct fuse_req *r);
int fuse_op_copy_file_range(struct fuse_req *r);
/* fuse_dax.c */
/* The server's mapping granule: the host page (INIT's map_alignment). */
#define FUSE_DAX_GRANULE (1ull << FUSE_DAX_MAP_SHIFT)
/* Is [@moffset, @moffset + @len) granule-aligned, non-empty and inside @w? */
bool fuse_dax_range_ok(const struct fuse_dax_window *w, uint64_t moffset, uint64_t len);
int fuse_op_setupmapping(struct fuse_req *r);
int fuse_op_removemapping(struct fuse_req *r);
/* Map @m (its node opened for it) and record it; for a restore. 0 or
 * -errno. */
int fuse_dax_map_node(struct fuse_server *s, const struct dax_range *m);
/* fuse_dax_state.c */
/* 0, or -ESTALE with why in @eb when a mapping's node is forgotten (the
 * state could not be restored); before fuse_dax_state_save. */
int fuse_dax_state_check(struct fuse_server *s, struct errbuf *eb);
void fuse_dax_state_save(struct fuse_server *s, struct state_writer *w);
bool fuse_dax_state_load(struct fuse_server *s, struct state_reader *r);
/* fuse_dirs.c */
int fuse_op_opendir(struct fuse_req *r);
int fuse_op_readdir(struct fuse_req *r);
int fuse_op_readdirplus(struct fuse_req *r);
int fuse_op_releasedir(struct fuse_req *r);
int fuse_op_fsyncdir(struct fuse_req *r);
int fuse_op_syncfs(struct fuse_req *r);
/* fuse_xattr.c */
int fuse_op_setxattr(struct fuse_req *r);
int fuse_op_getxattr(struct fuse_req *r);
int fuse_op_listxattr(struct fuse_req *r);
int fuse_op_removexattr(struct fuse_req *r);

#endif
