/*
 * FUSE directory operations: open, read (plain and plus), release.
 */
#include "fuse/fuse_server_internal.h"

/* ---- directories ---- */

int fuse_op_opendir(struct fuse_req *r)
{
	struct fuse_open_in in;
	uint64_t fh;

	ARG(r, in);
	int rc = BE_OP(r, opendir)(BE(r), &r->ctx, r->hdr.nodeid, in.flags, &fh);
	struct fuse_open_out oo = { .fh = fh, .open_flags = r->s->opendir_flags };
	return rc ? rc : fuse_reply_open(r, &oo);
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
		fuse_fill_entry(ds->r->s, &rec.plus.entry_out, entry);
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

int fuse_op_readdir(struct fuse_req *r)
{
	return do_readdir(r, false);
}

int fuse_op_readdirplus(struct fuse_req *r)
{
	return do_readdir(r, true);
}

int fuse_op_releasedir(struct fuse_req *r)
{
	struct fuse_release_in in;

	ARG(r, in);
	return BE_OP(r, releasedir)(BE(r), in.fh);
}

int fuse_op_fsyncdir(struct fuse_req *r)
{
	struct fuse_fsync_in in;

	ARG(r, in);
	return BE_OP(r, fsyncdir)(BE(r), in.fh, in.fsync_flags & FUSE_FSYNC_FDATASYNC);
}

int fuse_op_syncfs(struct fuse_req *r)
{
	return BE_OP(r, syncfs)(BE(r));
}
