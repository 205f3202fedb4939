/*
 * FUSE DAX: FUSE_SETUPMAPPING and FUSE_REMOVEMAPPING, host file ranges
 * mapped into and out of the transport's DAX window (fuse_server.h, struct
 * fuse_dax_window). Every request is checked here before the window is
 * touched: page-aligned offsets and lengths, a range inside the window
 * without overflow, a regular file the range starts in, and write access
 * only through a descriptor open for writing. Every outcome is counted.
 */
#include "fuse/fuse_server_internal.h"

#include <sys/stat.h>

/* The server's mapping granule: the host page (INIT's map_alignment). */
#define MAP_GRANULE (1ull << FUSE_DAX_MAP_SHIFT)
#define SETUP_FLAGS_KNOWN (FUSE_SETUPMAPPING_FLAG_READ | FUSE_SETUPMAPPING_FLAG_WRITE)
/* Linux sends SETUPMAPPING with no handle: the node's file is opened. */
#define NO_FH UINT64_MAX

/* Is [@moffset, @moffset + @len) page-aligned, non-empty and inside @w? */
static bool window_range_ok(const struct fuse_dax_window *w, uint64_t moffset, uint64_t len)
{
	if (!len || ((moffset | len) & (MAP_GRANULE - 1)))
		return false;
	return moffset < w->size && len <= w->size - moffset;
}

struct map_job {
	struct fuse_dax_window *w;
	const struct fuse_setupmapping_in *in;
	bool write;
};

/* Checks against the file itself, then the mapping (with the handle's
 * descriptor, valid during the call only: the mapping keeps the file). */
static ssize_t map_fd(void *arg, int fd)
{
	struct map_job *j = arg;
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || j->in->foffset >= (uint64_t)st.st_size)
		return -EINVAL;
	/* mmap needs a readable descriptor; a writable mapping a writable one. */
	if ((fl & O_ACCMODE) == O_WRONLY || (j->write && (fl & O_ACCMODE) != O_RDWR))
		return -EACCES;
	return j->w->map(j->w, fd, j->in->foffset, j->in->moffset, j->in->len, j->write);
}

/* With a handle: its descriptor. Without (Linux): the node's file, opened
 * for this request in the mode asked, which the backend checks. */
static ssize_t map_through_backend(struct fuse_req *r, struct map_job *j)
{
	uint64_t fh = j->in->fh;

	if (fh != NO_FH)
		return BE_OP(r, with_fd)(BE(r), fh, map_fd, j);
	int rc = BE_OP(r, open)(BE(r), &r->ctx, r->hdr.nodeid, j->write ? O_RDWR : O_RDONLY, &fh);
	if (rc)
		return rc;
	ssize_t n = BE_OP(r, with_fd)(BE(r), fh, map_fd, j);
	BE_OP(r, release)(BE(r), fh);
	return n;
}

static int refuse(struct fuse_req *r, int rc)
{
	CTR_INC(r->s, rx_mappings_refused);
	return rc;
}

int fuse_op_setupmapping(struct fuse_req *r)
{
	struct fuse_setupmapping_in in;
	struct map_job j = { .w = r->s->dax, .in = &in };

	if (!j.w)
		return refuse(r, -ENOSYS);
	ARG(r, in);
	j.write = (in.flags & FUSE_SETUPMAPPING_FLAG_WRITE) != 0;
	if ((in.flags & ~SETUP_FLAGS_KNOWN) || !window_range_ok(j.w, in.moffset, in.len) ||
	    (in.foffset & (MAP_GRANULE - 1)) || in.foffset > (uint64_t)INT64_MAX - in.len)
		return refuse(r, -EINVAL);
	if (!BE_OP(r, open) || !BE_OP(r, release))
		return refuse(r, -ENOSYS);
	ssize_t rc = map_through_backend(r, &j);
	if (rc)
		return refuse(r, rc < 0 ? (int)rc : -EIO);
	CTR_INC(r->s, rx_mappings_set);
	return 0;
}

int fuse_op_removemapping(struct fuse_req *r)
{
	struct fuse_removemapping_in in;
	struct fuse_removemapping_one one;
	struct fuse_dax_window *w = r->s->dax;

	if (!w)
		return refuse(r, -ENOSYS);
	ARG(r, in);
	/* The count is bounded by what the request holds (and by the most the
	 * client sends at once), every range checked before any is removed. */
	size_t room = (r->arg_len - sizeof(in)) / sizeof(one);
	if (!in.count || in.count > room || in.count > PAGE_SZ / sizeof(one))
		return refuse(r, -EINVAL);
	for (uint32_t i = 0; i < in.count; i++) {
		memcpy(&one, r->arg + sizeof(in) + i * sizeof(one), sizeof(one));
		if (!window_range_ok(w, one.moffset, one.len))
			return refuse(r, -EINVAL);
	}
	for (uint32_t i = 0; i < in.count; i++) {
		memcpy(&one, r->arg + sizeof(in) + i * sizeof(one), sizeof(one));
		int rc = w->unmap(w, one.moffset, one.len);
		if (rc)
			return refuse(r, rc);
		CTR_INC(r->s, rx_mappings_removed);
	}
	return 0;
}

/* A new session (INIT, DESTROY) starts with an empty window. */
void fuse_dax_clear(struct fuse_server *s)
{
	if (s->dax && s->dax->unmap(s->dax, 0, s->dax->size))
		log_warn("fuse: the DAX window could not be emptied");
}
