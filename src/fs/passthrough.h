/*
 * The passthrough backend: a host directory shared with the client,
 * confined to it.
 *
 * Confinement: the backend never resolves a path. Every node it knows is an
 * O_PATH descriptor (or a file handle, see below) obtained by opening one
 * checked name relative to its parent's descriptor with openat2(2) and
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, O_NOFOLLOW: symlinks are nodes,
 * never followed; ".." never reaches above the shared directory. Operations
 * act on those descriptors (the *at() calls with AT_EMPTY_PATH or the
 * parent's descriptor and the checked name). An open file is the node's own
 * inode reopened through /proc/self/fd, so it can only be that inode.
 *
 * Nodes are keyed by (st_dev, st_ino) with lookup counts; node ids and file
 * handles given to the client carry a generation, so a stale or forged one
 * is -ESTALE / -EBADF and never another node or descriptor.
 *
 * A bound on descriptors (max_fds): past it, nodes not in use give up their
 * O_PATH descriptor (least recently used first) and keep a file handle
 * (name_to_handle_at); they are reopened with open_by_handle_at when used
 * again. Nodes on filesystems without file handles keep their descriptor.
 *
 * Ownership: when the server runs as root, nodes are created with the
 * caller's uid/gid (per-thread setfsuid/setfsgid; the client kernel has
 * already checked permissions, so the thread keeps its capabilities), or
 * with the squashed owner. Each thread that calls the backend gets its own
 * filesystem context (unshare(CLONE_FS)) with umask 0, because the client
 * sends modes with its own umask already applied.
 *
 * Policy: block and character device nodes other than whiteouts (char 0:0)
 * are refused (EPERM) unless dev_nodes is set: a device node on the host
 * opens the host's device for whoever may open the node there, and the
 * share is a host directory. With dev_nodes (a guest's root filesystem)
 * the client's root (uid 0, as mknod(2) asks CAP_MKNOD) may make them,
 * owned by the caller's ids like any other node. Only "user." extended
 * attributes pass unless xattr_all is set (a client must not set
 * security.capability on host files).
 *
 * Needs: Linux 5.6+ (openat2), /proc mounted.
 */
#ifndef KVMINI_FS_PASSTHROUGH_H
#define KVMINI_FS_PASSTHROUGH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/counters.h"
#include "fuse/fs_backend.h"
#include "fs/host_watch.h"
#include "fs/node_observer.h"

#define PT_MAX_INODES_DEFAULT (1u << 20)
#define PT_MAX_HANDLES_DEFAULT 65536u

struct passthrough_opts {
	const char *root;          /* the shared directory */
	/* Most O_PATH descriptors held for nodes; 0: half of RLIMIT_NOFILE. */
	unsigned max_fds;
	/* Most nodes the client may know (lookups past it answer ENFILE) and
	 * most open file and directory handles (opens past it answer EMFILE);
	 * 0: PT_MAX_INODES_DEFAULT, PT_MAX_HANDLES_DEFAULT. Each node or
	 * handle costs host memory however the client came by it. */
	unsigned max_inodes;
	unsigned max_handles;
	bool squash;               /* new nodes owned by squash_uid:squash_gid, chown ignored */
	uid_t squash_uid;
	gid_t squash_gid;
	bool xattr_all;            /* pass every xattr namespace, not only user. */
	bool dev_nodes;            /* let mknod make block and character devices */
	/* Told of every node made known and dropped, to watch it for host
	 * changes (host_watch.h); NULL for none. Not owned. */
	struct host_watch *watch;
	/* Told of node life instead of @watch (node_observer.h): tests, or an
	 * observer that wraps the watcher. NULL: @watch's own. Not owned. */
	struct fs_node_observer *observer;
};

/* The tables' levels and turnover, printed "passthrough_<name>". */
#define PASSTHROUGH_STATS(X) \
	X(nodes,     "nodes in the table now, the root included") \
	X(node_fds,  "O_PATH descriptors held now") \
	X(files,     "open file and directory handles now") \
	X(evictions, "descriptors given up for a file handle (over --max-fds)") \
	X(reopens,   "descriptors reopened from a file handle") \
	X(stale,     "nodes a snapshot restore could not find again (answer ESTALE)") \
	X(nodes_refused,   "lookups refused at --max-inodes (answer ENFILE)") \
	X(handles_refused, "opens refused at --max-handles (answer EMFILE)")

struct passthrough_stats {
	PASSTHROUGH_STATS(COUNTER_FIELD)
	unsigned max_fds;
};
extern const struct counter_set passthrough_stats_set;

/* Open @o->root and build the backend. Returns NULL with *@err set to
 * -errno (-ENOTDIR, -ENOENT, -ENOSYS without openat2, ...). */
struct fs_backend *passthrough_new(const struct passthrough_opts *o, int *err);

/* @be must come from passthrough_new. */
void passthrough_get_stats(struct fs_backend *be, struct passthrough_stats *st);

#endif
