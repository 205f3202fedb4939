/*
 * Backing-file ids for FUSE passthrough (/dev/fuse, Linux 6.9+): which
 * kernel backing id stands for which node, and which open file handles use
 * it.
 *
 * The kernel lets every passthrough open of one inode use only one backing
 * file (a second, different id fails the open with EIO), so ids are per
 * node: the first open of a node registers the backend's descriptor
 * (FUSE_DEV_IOC_BACKING_OPEN through @open), later opens reuse the id, and
 * the last RELEASE of a handle that used it closes it. Closing then is safe:
 * the kernel keeps its own reference while any file of the node is open.
 *
 * Values come from the client (node ids at RELEASE, handles): unknown ones
 * are ignored. Concurrency: any thread; one mutex, held across @open and
 * @close so two opens of one node cannot register two ids.
 */
#ifndef KVMINI_FUSE_FUSE_BACKING_H
#define KVMINI_FUSE_FUSE_BACKING_H

#include <stdint.h>

/* How the transport registers and drops a backing descriptor. */
struct fuse_backing_ops {
	/* Register @fd; 0 with *@id set, or -errno. */
	int (*open)(void *ctx, int fd, int32_t *id);
	void (*close)(void *ctx, int32_t id);
};

struct fuse_backing_table;

struct fuse_backing_table *fuse_backing_new(void);
void fuse_backing_free(struct fuse_backing_table *t);

/*
 * fuse_backing_attach() - the backing id for handle @fh of node @nodeid.
 * @fd: the handle's host descriptor, registered when the node has no id yet.
 * Returns 0 with *@id set, -EEXIST when @fh already has one, -ENOMEM, or the
 * error of @ops->open.
 */
int fuse_backing_attach(struct fuse_backing_table *t, uint64_t nodeid, uint64_t fh, int fd,
			const struct fuse_backing_ops *ops, void *ctx, int32_t *id);

/* @fh is released: drop its use of its node's id, closing the id with
 * @ops->close when it was the last. Unknown handles are ignored. */
void fuse_backing_detach(struct fuse_backing_table *t, uint64_t fh,
			 const struct fuse_backing_ops *ops, void *ctx);

/* Forget everything without closing ids (the session that owned them is
 * gone: FUSE_DESTROY, a new INIT). */
void fuse_backing_clear(struct fuse_backing_table *t);

/* Ids currently registered (for tests and counters). */
unsigned fuse_backing_count(struct fuse_backing_table *t);

#endif
