/*
 * Reply helpers of the FUSE server: lengths, names, placing replies.
 */
#include "fuse/fuse_server_internal.h"

/* ---- helpers: lengths, names, replies ---- */

/* Total length of @iov, saturating at @cap so a hostile list cannot wrap. */
size_t fuse_iov_len_capped(const struct iovec *iov, unsigned cnt, size_t cap)
{
	size_t total = 0;

	for (unsigned i = 0; i < cnt && total < cap; i++)
		total += MIN(iov[i].iov_len, cap - total);
	return total;
}

/* Limit an iovec view to its first @len bytes; returns the new count. */
unsigned fuse_iov_truncate(struct iovec *iov, unsigned cnt, size_t len)
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
 * fuse_arg_string() - take a NUL-terminated string from the argument copy.
 * @r:      the request
 * @off:    in/out: where the string starts; on success, just past its NUL
 * @maxlen: longest accepted length, NUL excluded
 * @out:    the string (points into the copy)
 * Returns its length, -EINVAL when no NUL ends it inside the payload, or
 * -ENAMETOOLONG when longer than @maxlen.
 */
ssize_t fuse_arg_string(struct fuse_req *r, size_t *off, size_t maxlen, const char **out)
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
int fuse_arg_name(struct fuse_req *r, size_t *off, const char **name)
{
	ssize_t len = fuse_arg_string(r, off, NAME_MAX, name);

	if (len < 0)
		return (int)len;
	if (len == 0 || memchr(*name, '/', (size_t)len))
		return -EINVAL;
	if (!strcmp(*name, ".") || !strcmp(*name, ".."))
		return -EINVAL;
	return 0;
}

bool fuse_reply_fits(const struct fuse_req *r, size_t len)
{
	return len <= r->out_cap - sizeof(struct fuse_out_header);
}

/* Place @len payload bytes after the out header (the caller checked room). */
void fuse_reply_data(struct fuse_req *r, const void *data, size_t len)
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

dev_t fuse_decode_dev(uint32_t dev)
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

void fuse_fill_entry(const struct fuse_server *s, struct fuse_entry_out *eo,
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

int fuse_reply_entry(struct fuse_req *r, const struct fs_entry *e)
{
	struct fuse_entry_out eo;

	fuse_fill_entry(r->s, &eo, e);
	fuse_reply_data(r, &eo, sizeof(eo));
	return 0;
}

int fuse_reply_attr(struct fuse_req *r, const struct stat *st)
{
	struct fuse_attr_out ao = { .attr_valid = r->s->attr_timeout };

	fill_attr(&ao.attr, st);
	fuse_reply_data(r, &ao, sizeof(ao));
	return 0;
}

int fuse_reply_open(struct fuse_req *r, const struct fuse_open_out *oo)
{
	fuse_reply_data(r, oo, sizeof(*oo));
	return 0;
}
