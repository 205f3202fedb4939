/*
 * FUSE notifications from the server to the client (invalidations).
 */
#include "fuse/fuse_server_internal.h"

/* ---- notifications ---- */

/* Both notifications exist since protocol 7.12. */
#define NOTIFY_INVAL_MINOR 12u

void fuse_server_set_notify(struct fuse_server *s, struct fuse_notify_transport *t)
{
	store_release(&s->notify, t);
}

bool fuse_server_notify_possible(struct fuse_server *s)
{
	struct fuse_notify_transport *t = load_acquire(&s->notify);
	bool init = load_acquire(&s->initialized);

	if (!t || (t->can_send && !t->can_send(t)))
		return false;
	return !init || fuse_server_proto_minor(s) >= NOTIFY_INVAL_MINOR;
}

/* Send @msg (its out header filled here) if this thread may, the client
 * negotiated the notification and a transport is set; count the outcome. */
static int notify_send(struct fuse_server *s, int code, void *msg, size_t len)
{
	struct fuse_notify_transport *t = load_acquire(&s->notify);
	struct fuse_out_header *oh = msg;
	int rc;

	if (fuse_in_request)
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
