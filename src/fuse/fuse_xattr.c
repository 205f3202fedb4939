/*
 * FUSE extended attribute operations.
 */
#include "fuse/fuse_server_internal.h"

/* ---- extended attributes ---- */

static int xattr_name(struct fuse_req *r, size_t *off, const char **name)
{
	ssize_t len = fuse_arg_string(r, off, XATTR_NAME_MAX, name);

	if (len < 0)
		return len == -ENAMETOOLONG ? -ERANGE : (int)len;
	return len ? 0 : -EINVAL;
}

int fuse_op_setxattr(struct fuse_req *r)
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
		if (!fuse_reply_fits(r, sizeof(out)))
			return -EOVERFLOW;
		fuse_reply_data(r, &out, sizeof(out));
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
		fuse_reply_data(r, buf, MIN((size_t)n, room));
	free(buf);
	return n < 0 ? (int)n : 0;
}

int fuse_op_getxattr(struct fuse_req *r)
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

int fuse_op_listxattr(struct fuse_req *r)
{
	struct fuse_getxattr_in in;

	ARG(r, in);
	return xattr_reply(r, in.size, NULL);
}

int fuse_op_removexattr(struct fuse_req *r)
{
	const char *name;
	size_t off = 0;
	int rc = xattr_name(r, &off, &name);

	return rc ? rc : BE_OP(r, removexattr)(BE(r), &r->ctx, r->hdr.nodeid, name);
}
