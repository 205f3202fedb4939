/*
 * FUSE node operations: lookup, forget, attributes, links, renames.
 */
#include "fuse/fuse_server_internal.h"

/* ---- nodes ---- */

/*
 * fuse_kill_suidgid() - clear what the VFS clears when a caller without
 * CAP_FSETID writes or truncates a file (HANDLE_KILLPRIV_V2: the client
 * asks with FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID or
 * FUSE_OPEN_KILL_SUIDGID): set-user-id, set-group-id when group-executable,
 * and the security.capability xattr. Done with the server's own identity;
 * errors are ignored (the bits stay, as a failed chmod would leave them).
 */
void fuse_kill_suidgid(struct fuse_req *r, uint64_t nodeid)
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

bool fuse_killpriv(const struct fuse_req *r)
{
	return load_relaxed(&r->s->killpriv);
}

int fuse_op_lookup(struct fuse_req *r)
{
	struct fs_entry e;
	const char *name;
	size_t off = 0;
	int rc = fuse_arg_name(r, &off, &name);

	if (rc)
		return rc;
	rc = BE_OP(r, lookup)(BE(r), &r->ctx, r->hdr.nodeid, name, &e);
	if (rc == -ENOENT && r->s->entry_timeout) {
		/* A negative entry: node id 0 lets the client cache the miss. */
		struct fuse_entry_out eo = { .entry_valid = r->s->entry_timeout };

		fuse_reply_data(r, &eo, sizeof(eo));
		return 0;
	}
	return rc ? rc : fuse_reply_entry(r, &e);
}

int fuse_op_getattr(struct fuse_req *r)
{
	struct stat st;
	int rc = BE_OP(r, getattr)(BE(r), &r->ctx, r->hdr.nodeid, &st);

	return rc ? rc : fuse_reply_attr(r, &st);
}

int fuse_op_setattr(struct fuse_req *r)
{
	const uint32_t known = FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME |
			       FATTR_MTIME | FATTR_FH | FATTR_ATIME_NOW | FATTR_MTIME_NOW;
	struct fuse_setattr_in in;
	struct stat st;

	ARG(r, in);
	/* LOCKOWNER, CTIME and KILL_SUIDGID need no action: ctime moves with
	 * any change (a SETATTR of nothing else is a chown to (-1, -1), which
	 * the backend repeats on the host) and suid bits are cleared by the
	 * client's own SETATTR. */
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
	if (fuse_killpriv(r) && (in.valid & FATTR_KILL_SUIDGID) && (in.valid & FATTR_SIZE))
		fuse_kill_suidgid(r, r->hdr.nodeid);
	int rc = BE_OP(r, setattr)(BE(r), &r->ctx, r->hdr.nodeid, &sa, &st);
	return rc ? rc : fuse_reply_attr(r, &st);
}

int fuse_op_readlink(struct fuse_req *r)
{
	char buf[PATH_MAX];
	size_t room = MIN(sizeof(buf), r->out_cap - sizeof(struct fuse_out_header));
	ssize_t n = BE_OP(r, readlink)(BE(r), &r->ctx, r->hdr.nodeid, buf, room);

	if (n < 0)
		return (int)n;
	fuse_reply_data(r, buf, (size_t)MIN((size_t)n, room));
	return 0;
}

int fuse_op_mknod(struct fuse_req *r)
{
	struct fuse_mknod_in in;
	struct fs_entry e;
	const char *name;
	size_t off = sizeof(in);
	int rc = fuse_arg_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	rc = BE_OP(r, mknod)(BE(r), &r->ctx, r->hdr.nodeid, name,
			     in.mode & (S_IFMT | 07777), fuse_decode_dev(in.rdev), &e);
	return rc ? rc : fuse_reply_entry(r, &e);
}

int fuse_op_mkdir(struct fuse_req *r)
{
	struct fuse_mkdir_in in;
	struct fs_entry e;
	const char *name;
	size_t off = sizeof(in);
	int rc = fuse_arg_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	rc = BE_OP(r, mkdir)(BE(r), &r->ctx, r->hdr.nodeid, name, in.mode & 07777, &e);
	return rc ? rc : fuse_reply_entry(r, &e);
}

int fuse_op_symlink(struct fuse_req *r)
{
	struct fs_entry e;
	const char *name, *target;
	size_t off = 0;
	int rc = fuse_arg_name(r, &off, &name);

	if (rc)
		return rc;
	ssize_t len = fuse_arg_string(r, &off, PATH_MAX - 1, &target);
	if (len < 0)
		return (int)len;
	rc = BE_OP(r, symlink)(BE(r), &r->ctx, r->hdr.nodeid, name, target, &e);
	return rc ? rc : fuse_reply_entry(r, &e);
}

int fuse_op_unlink(struct fuse_req *r)
{
	const char *name;
	size_t off = 0;
	int rc = fuse_arg_name(r, &off, &name);

	return rc ? rc : BE_OP(r, unlink)(BE(r), &r->ctx, r->hdr.nodeid, name);
}

int fuse_op_rmdir(struct fuse_req *r)
{
	const char *name;
	size_t off = 0;
	int rc = fuse_arg_name(r, &off, &name);

	return rc ? rc : BE_OP(r, rmdir)(BE(r), &r->ctx, r->hdr.nodeid, name);
}

/* Names of RENAME and RENAME2 follow their fixed argument of @in_size. */
static int do_rename(struct fuse_req *r, size_t in_size, uint64_t newdir, uint32_t flags)
{
	const char *name, *newname;
	size_t off = in_size;
	int rc = fuse_arg_name(r, &off, &name);

	if (!rc)
		rc = fuse_arg_name(r, &off, &newname);
	if (rc)
		return rc;
	if (flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	return BE_OP(r, rename)(BE(r), &r->ctx, r->hdr.nodeid, name, newdir, newname, flags);
}

int fuse_op_rename(struct fuse_req *r)
{
	struct fuse_rename_in in;

	ARG(r, in);
	return do_rename(r, sizeof(in), in.newdir, 0);
}

int fuse_op_rename2(struct fuse_req *r)
{
	struct fuse_rename2_in in;

	ARG(r, in);
	return do_rename(r, sizeof(in), in.newdir, in.flags);
}

int fuse_op_link(struct fuse_req *r)
{
	struct fuse_link_in in;
	struct fs_entry e;
	const char *name;
	size_t off = sizeof(in);
	int rc = fuse_arg_name(r, &off, &name);

	if (rc)
		return rc;
	ARG(r, in);
	rc = BE_OP(r, link)(BE(r), &r->ctx, in.oldnodeid, r->hdr.nodeid, name, &e);
	return rc ? rc : fuse_reply_entry(r, &e);
}

int fuse_op_statfs(struct fuse_req *r)
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
	fuse_reply_data(r, &out, sizeof(out));
	return 0;
}

int fuse_op_access(struct fuse_req *r)
{
	struct fuse_access_in in;

	ARG(r, in);
	return BE_OP(r, access)(BE(r), &r->ctx, r->hdr.nodeid, in.mask & (R_OK | W_OK | X_OK));
}
