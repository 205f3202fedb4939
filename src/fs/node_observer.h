/*
 * Node-life observer: who a filesystem backend tells that a node became
 * known to the client or was dropped (FORGET to zero, DESTROY, a new INIT),
 * so that it can keep something per node without the backend knowing what:
 * the host watcher (host_watch.c) keeps an inotify watch.
 *
 * Calling context: the backend calls both operations with none of its own
 * locks held, so an observer may block briefly, take its own locks and
 * even call the backend back. The node is pinned for the call: in
 * on_node_added its descriptor stays open, and on_node_forgotten comes
 * before the backend closes that descriptor, so a watch placed through it
 * is still there to be removed (closing the last reference to a file
 * deleted on the host makes the kernel drop the watch on its own, and an
 * inotify_rm_watch after that fails with EINVAL).
 */
#ifndef KVMINI_FS_NODE_OBSERVER_H
#define KVMINI_FS_NODE_OBSERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct fs_node_observer;

struct fs_node_observer_ops {
	/* Node @nodeid is known, open as @fd (O_PATH) of type @type (S_IFDIR,
	 * S_IFREG, ...). Returns a token >= 0 the backend keeps for the node
	 * and hands back to on_node_forgotten, or -errno when the observer
	 * keeps nothing for it. */
	int (*on_node_added)(struct fs_node_observer *obs, uint64_t nodeid, int fd, mode_t type);
	/* Node @nodeid, which got @token, is dropped (or its token replaced by
	 * a newer one). @held: the descriptor the token was made through is
	 * still open (else the kernel may have ended a watch on a deleted
	 * inode already). Never fails, as far as the backend is concerned. */
	void (*on_node_forgotten)(struct fs_node_observer *obs, uint64_t nodeid, int token,
				  bool held);
};

/* Embedded in the observer's own struct (container_of). */
struct fs_node_observer {
	const struct fs_node_observer_ops *ops;
};

#endif
