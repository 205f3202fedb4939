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

#define SETUP_FLAGS_KNOWN (FUSE_SETUPMAPPING_FLAG_READ | FUSE_SETUPMAPPING_FLAG_WRITE)
/* Linux sends SETUPMAPPING with no handle: the node's file is opened. */
#define NO_FH UINT64_MAX

bool fuse_dax_range_ok(const struct fuse_dax_window *w, uint64_t moffset, uint64_t len)
{
	if (!len || ((moffset | len) & (FUSE_DAX_GRANULE - 1)))
		return false;
	return moffset < w->size && len <= w->size - moffset;
}

struct map_job {
	struct fuse_server *s;
	const struct dax_range *m;
};

/* Map and record under @dax_lock, room in the table made first, so the
 * window and its record change together or not at all. */
static int map_recorded(struct fuse_server *s, int fd, const struct dax_range *m)
{
	struct fuse_dax_window *w = s->dax;

	pthread_mutex_lock(&s->dax_lock);
	int rc = dax_ranges_reserve(&s->dax_ranges, 2);
	if (!rc)
		rc = w->map(w, fd, m->foffset, m->moffset, m->len, m->write);
	if (!rc)
		dax_ranges_add(&s->dax_ranges, m);
	pthread_mutex_unlock(&s->dax_lock);
	return rc;
}

/* Checks against the file itself, then the mapping (with the handle's
 * descriptor, valid during the call only: the mapping keeps the file). */
static ssize_t map_fd(void *arg, int fd)
{
	struct map_job *j = arg;
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || j->m->foffset >= (uint64_t)st.st_size)
		return -EINVAL;
	/* mmap needs a readable descriptor; a writable mapping a writable one. */
	if ((fl & O_ACCMODE) == O_WRONLY || (j->m->write && (fl & O_ACCMODE) != O_RDWR))
		return -EACCES;
	return map_recorded(j->s, fd, j->m);
}

/* With a handle: its descriptor. Without (Linux, and a restore): the
 * node's file, opened for this mapping in the mode asked, which the
 * backend checks with @ctx (the request's caller). */
static ssize_t map_through_backend(struct fuse_server *s, const struct fs_ctx *ctx, uint64_t fh,
				   const struct dax_range *m)
{
	struct fs_backend *be = s->be;
	struct map_job j = { .s = s, .m = m };

	if (fh != NO_FH)
		return be->ops->with_fd(be, fh, map_fd, &j);
	int rc = be->ops->open(be, ctx, m->nodeid, m->write ? O_RDWR : O_RDONLY, &fh);
	if (rc)
		return rc;
	ssize_t n = be->ops->with_fd(be, fh, map_fd, &j);
	be->ops->release(be, fh);
	return n;
}

int fuse_dax_map_node(struct fuse_server *s, const struct dax_range *m)
{
	if (!s->dax || !s->be->ops->open || !s->be->ops->release || !s->be->ops->with_fd)
		return -ENOSYS;
	/* The caller that mapped it is long gone: the server's own access,
	 * as the snapshot's handles are reopened with. */
	const struct fs_ctx server = { 0 };
	ssize_t rc = map_through_backend(s, &server, NO_FH, m);
	return rc < 0 ? (int)rc : rc ? -EIO : 0;
}

static int refuse(struct fuse_req *r, int rc)
{
	CTR_INC(r->s, rx_mappings_refused);
	return rc;
}

int fuse_op_setupmapping(struct fuse_req *r)
{
	struct fuse_setupmapping_in in;
	struct fuse_dax_window *w = r->s->dax;

	if (!w)
		return refuse(r, -ENOSYS);
	ARG(r, in);
	if ((in.flags & ~SETUP_FLAGS_KNOWN) || !fuse_dax_range_ok(w, in.moffset, in.len) ||
	    (in.foffset & (FUSE_DAX_GRANULE - 1)) || in.foffset > (uint64_t)INT64_MAX - in.len)
		return refuse(r, -EINVAL);
	if (!BE_OP(r, open) || !BE_OP(r, release))
		return refuse(r, -ENOSYS);
	/* The node is what a snapshot names the mapping by, with a handle too. */
	struct dax_range m = { .moffset = in.moffset, .len = in.len, .nodeid = r->hdr.nodeid,
			       .foffset = in.foffset,
			       .write = (in.flags & FUSE_SETUPMAPPING_FLAG_WRITE) != 0 };
	ssize_t rc = map_through_backend(r->s, &r->ctx, in.fh, &m);
	if (rc)
		return refuse(r, rc < 0 ? (int)rc : -EIO);
	CTR_INC(r->s, rx_mappings_set);
	return 0;
}

/* Unmap and forget one range, as map_recorded maps one. */
static int unmap_recorded(struct fuse_server *s, uint64_t moffset, uint64_t len)
{
	struct fuse_dax_window *w = s->dax;

	pthread_mutex_lock(&s->dax_lock);
	int rc = dax_ranges_reserve(&s->dax_ranges, 1);
	if (!rc)
		rc = w->unmap(w, moffset, len);
	if (!rc)
		dax_ranges_remove(&s->dax_ranges, moffset, len);
	pthread_mutex_unlock(&s->dax_lock);
	return rc;
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
		if (!fuse_dax_range_ok(w, one.moffset, one.len))
			return refuse(r, -EINVAL);
	}
	for (uint32_t i = 0; i < in.count; i++) {
		memcpy(&one, r->arg + sizeof(in) + i * sizeof(one), sizeof(one));
		int rc = unmap_recorded(r->s, one.moffset, one.len);
		if (rc)
			return refuse(r, rc);
		CTR_INC(r->s, rx_mappings_removed);
	}
	return 0;
}

/* A new session (INIT, DESTROY, the device's reset) starts with an empty
 * window. */
void fuse_server_dax_clear(struct fuse_server *s)
{
	if (!s->dax)
		return;
	pthread_mutex_lock(&s->dax_lock);
	if (s->dax->unmap(s->dax, 0, s->dax->size))
		log_warn("fuse: the DAX window could not be emptied");
	dax_ranges_clear(&s->dax_ranges);
	pthread_mutex_unlock(&s->dax_lock);
}
