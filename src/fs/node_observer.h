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
 *
 * The other way, the backend offers the observer a node source
 * (fs_node_source): which known node a directory's child is, and every
 * known node. The host watcher's directory scheme needs it, since a
 * child's events come on its directory's watch with only its name.
 */
#ifndef KVMINI_FS_NODE_OBSERVER_H
#define KVMINI_FS_NODE_OBSERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct fs_node_observer;
struct fs_node_source;

/* A directory's child as the backend knows it. */
struct fs_node_child {
	uint64_t nodeid;
	bool has_token;              /* the observer keeps a token for it */
};

struct fs_node_source_ops {
	/* The node the client knows that @parent's entry @name (NUL-ended)
	 * names now: found by inode, so another link to a known node is that
	 * node. Returns 0, or -errno (-ENOENT: no such entry, or not a node
	 * the client knows; -ESTALE: @parent unknown). Takes the backend's
	 * locks itself and makes system calls; it may drop a node, calling
	 * on_node_forgotten, so the caller holds none of its own locks. */
	int (*child)(struct fs_node_source *src, uint64_t parent, const char *name,
		     struct fs_node_child *out);
	/* Every node the client knows, in a malloc'ed array at *@ids (the
	 * caller frees it). Returns how many, or -ENOMEM. */
	long (*list)(struct fs_node_source *src, uint64_t **ids);
};

/* Embedded in the backend's own struct (container_of). */
struct fs_node_source {
	const struct fs_node_source_ops *ops;
};

struct fs_node_observer_ops {
	/* Node @nodeid is known, open as @fd (O_PATH) of type @type (S_IFDIR,
	 * S_IFREG, ...) with @nlink links. Called again for a node already
	 * known without a token when its link count rises past 1. Returns a
	 * token >= 0 the backend keeps for the node and hands back to
	 * on_node_forgotten, or -errno when the observer keeps nothing for it. */
	int (*on_node_added)(struct fs_node_observer *obs, uint64_t nodeid, int fd, mode_t type,
			     nlink_t nlink);
	/* Node @nodeid, which got @token, is dropped (or its token replaced by
	 * a newer one). @held: the descriptor the token was made through is
	 * still open (else the kernel may have ended a watch on a deleted
	 * inode already). Never fails, as far as the backend is concerned. */
	void (*on_node_forgotten)(struct fs_node_observer *obs, uint64_t nodeid, int token,
				  bool held);
	/* The backend's node source, once it is built; NULL before it is
	 * destroyed: after that call returns, the observer uses it no more.
	 * Optional (NULL). */
	void (*bind_source)(struct fs_node_observer *obs, struct fs_node_source *src);
};

/* Embedded in the observer's own struct (container_of). */
struct fs_node_observer {
	const struct fs_node_observer_ops *ops;
};

#endif
