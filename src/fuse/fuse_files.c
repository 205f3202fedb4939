/*
 * FUSE file operations, passthrough (the kernel does I/O on the backend fd).
 */
#include "fuse/fuse_server_internal.h"

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
	return load_relaxed(&r->s->passthrough) && r->sink &&
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
		if (fetch_add_relaxed(&r->s->ctr.passthrough_failed, 1) == 0)
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

/* The truncation of an open with O_TRUNC by a caller without CAP_FSETID,
 * after its set-id bits were cleared; errors are ignored as a failed
 * clearing's are (fuse_kill_suidgid). By node, not through the handle:
 * O_RDONLY | O_TRUNC truncates too. */
static void open_truncate_killed(struct fuse_req *r)
{
	struct fs_setattr sa = { .valid = FATTR_SIZE, .size = 0 };
	struct stat st;

	fuse_kill_suidgid(r, r->hdr.nodeid);
	BE_OP(r, setattr)(BE(r), &r->ctx, r->hdr.nodeid, &sa, &st);
}

int fuse_op_open(struct fuse_req *r)
{
	struct fuse_open_in in;
	struct fuse_open_out oo = { 0 };

	ARG(r, in);
	bool kill = fuse_killpriv(r) && (in.open_flags & FUSE_OPEN_KILL_SUIDGID) &&
		    (in.flags & O_TRUNC);
	/* Clearing set-id bits after a truncating open would give the file a
	 * ctime after its mtime; the host clears them in the truncation
	 * itself. So: open, clear, then truncate, which moves both times. */
	int rc = BE_OP(r, open)(BE(r), &r->ctx, r->hdr.nodeid, kill ? in.flags & ~O_TRUNC : in.flags,
				&oo.fh);
	if (rc)
		return rc;
	if (kill)
		open_truncate_killed(r);
	open_reply_flags(r, r->hdr.nodeid, &oo);
	return fuse_reply_open(r, &oo);
}

/* CREATE's and TMPFILE's reply: the new file's entry, then its open handle. */
static int reply_created(struct fuse_req *r, const struct fs_entry *e, uint64_t fh)
{
	struct {
		struct fuse_entry_out entry;
		struct fuse_open_out open;
	} out = { 0 };

	fuse_fill_entry(r->s, &out.entry, e);
	out.open.fh = fh;
	open_reply_flags(r, e->nodeid, &out.open);
	fuse_reply_data(r, &out, sizeof(out));
	return 0;
}

int fuse_op_create(struct fuse_req *r)
{
	struct fuse_create_in in;
	struct fs_entry e;
	const char *name;
	uint64_t fh;
	size_t off = sizeof(in);
	int rc = fuse_arg_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	rc = BE_OP(r, create)(BE(r), &r->ctx, r->hdr.nodeid, name,
			      S_IFREG | (in.mode & 07777), in.flags, &e, &fh);
	if (rc)
		return rc;
	if (fuse_killpriv(r) && (in.open_flags & FUSE_OPEN_KILL_SUIDGID) && (in.flags & O_TRUNC)) {
		fuse_kill_suidgid(r, e.nodeid);
		BE_OP(r, getattr)(BE(r), &r->ctx, e.nodeid, &e.st);
	}
	return reply_created(r, &e, fh);
}

/* TMPFILE (Linux 6.1+ clients, open(2)'s O_TMPFILE): CREATE's request and
 * reply, for a file with no name in directory nodeid. The name the client
 * sends is its placeholder ("/") and is not used. */
int fuse_op_tmpfile(struct fuse_req *r)
{
	struct fuse_create_in in;
	struct fs_entry e;
	uint64_t fh;

	ARG(r, in);
	int rc = BE_OP(r, tmpfile)(BE(r), &r->ctx, r->hdr.nodeid, S_IFREG | (in.mode & 07777),
				   in.flags, &e, &fh);
	if (rc)
		return rc;
	return reply_created(r, &e, fh);
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

int fuse_op_read(struct fuse_req *r)
{
	struct fuse_read_in in;
	struct iovec view[FUSE_SERVER_MAX_IOV];

	ARG(r, in);
	size_t size = MIN((size_t)in.size, r->out_cap - sizeof(struct fuse_out_header));
	if (read_via_sink(r, &in, size))
		return REPLY_SENT;
	unsigned cnt = iov_skip(r->out, r->out_cnt, sizeof(struct fuse_out_header), view,
				ARRAY_SIZE(view));
	cnt = fuse_iov_truncate(view, cnt, size);
	ssize_t n = BE_OP(r, read)(BE(r), in.fh, in.offset, view, cnt);
	if (n < 0)
		return (int)n;
	r->reply_len = MIN((size_t)n, size);
	CTR_ADD(r->s, read_bytes, r->reply_len);
	return 0;
}

int fuse_op_write(struct fuse_req *r)
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
	cnt = fuse_iov_truncate(view, cnt, in.size);
	if (fuse_iov_len_capped(view, cnt, in.size) != in.size)
		return -EINVAL;
	/* Asked on every direct write (no HANDLE_KILLPRIV_V2 needed: the
	 * client clears nothing itself there), and on cached ones with it.
	 * Before the write, as the host's VFS does (file_remove_privs), so
	 * the write's mtime and ctime are one. */
	if (in.write_flags & FUSE_WRITE_KILL_SUIDGID)
		fuse_kill_suidgid(r, r->hdr.nodeid);
	ssize_t n = BE_OP(r, write)(BE(r), &r->ctx, in.fh, in.offset, view, cnt);
	if (n < 0)
		return (int)n;
	struct fuse_write_out out = { .size = (uint32_t)n };
	CTR_ADD(r->s, write_bytes, (uint64_t)n);
	fuse_reply_data(r, &out, sizeof(out));
	return 0;
}

int fuse_op_release(struct fuse_req *r)
{
	struct fuse_release_in in;

	ARG(r, in);
	/* Without passthrough the table is empty (INIT clears it): skip its
	 * mutex, which every worker's RELEASE would otherwise take. */
	if (passthrough_usable(r))
		fuse_backing_detach(r->s->backing, in.fh, &sink_backing_ops, r->sink);
	return BE_OP(r, release)(BE(r), in.fh);
}

int fuse_op_flush(struct fuse_req *r)
{
	struct fuse_flush_in in;

	ARG(r, in);
	return BE_OP(r, flush) ? BE_OP(r, flush)(BE(r), in.fh) : 0;
}

int fuse_op_fsync(struct fuse_req *r)
{
	struct fuse_fsync_in in;

	ARG(r, in);
	return BE_OP(r, fsync)(BE(r), in.fh, in.fsync_flags & FUSE_FSYNC_FDATASYNC);
}

int fuse_op_fallocate(struct fuse_req *r)
{
	struct fuse_fallocate_in in;

	ARG(r, in);
	return BE_OP(r, fallocate)(BE(r), in.fh, in.mode, in.offset, in.length);
}

int fuse_op_lseek(struct fuse_req *r)
{
	struct fuse_lseek_in in;
	struct fuse_lseek_out out;

	ARG(r, in);
	int rc = BE_OP(r, lseek)(BE(r), in.fh, in.offset, in.whence, &out.offset);
	if (rc)
		return rc;
	fuse_reply_data(r, &out, sizeof(out));
	return 0;
}

int fuse_op_copy_file_range(struct fuse_req *r)
{
	struct fuse_copy_file_range_in in;

	ARG(r, in);
	if (in.flags)
		return -EINVAL;
	ssize_t n = BE_OP(r, copy_file_range)(BE(r), in.fh_in, in.off_in, in.fh_out, in.off_out,
					      (size_t)MIN(in.len, (uint64_t)COPY_RANGE_MAX));
	if (n < 0)
		return (int)n;
	struct fuse_write_out out = { .size = (uint32_t)n };
	fuse_reply_data(r, &out, sizeof(out));
	return 0;
}
