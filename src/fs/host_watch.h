/*
 * Host-change watcher for the passthrough backend: files changed on the host
 * under the shared directory (not through kvmini) become FUSE invalidations,
 * so a client that caches entries, attributes and data sees the change.
 *
 * Watches: the backend tells the watcher of each node it makes known to the
 * client (host_watch_add, with the node's O_PATH descriptor; the watch is
 * placed on /proc/self/fd/N, which is that inode and nothing else) and of
 * each node it drops (host_watch_remove: FORGET to zero, DESTROY, a new
 * INIT). Two schemes (host_watch_opts.scheme):
 *   HOST_WATCH_DIRS (the default): a watch on each directory, and on each
 *       regular file with more than one link. A file's data and attribute
 *       events come on its directory's watch with its name; the backend's
 *       node source (node_observer.h) says which node that name is now
 *       (by inode), on the watcher's thread, none of its locks held. A
 *       file with one link is reachable under that name only; one with
 *       more may change under a name in a directory nobody watches, and
 *       link count changes reach no directory's watch, so it keeps a
 *       watch of its own (placed when it is looked up with more than one
 *       link). No inotify_add_watch or inotify_rm_watch per file.
 *   HOST_WATCH_FILES: a watch on each directory and regular file (the
 *       older scheme, kept to measure against: --watch files).
 * Symlinks and special files are not watched (a symlink is only ever
 * replaced, which its directory sees).
 * Once started, nodes are not watched while the server says nothing could
 * reach the client (fuse_server_notify_possible: a virtio-fs driver that did
 * not negotiate the notification queue). The number of watches is bounded (max_watches, and the kernel's own
 * fs.inotify.max_user_watches): past it a node simply has no watch, and its
 * changes show when the client's cache times out. Never an error to the
 * client.
 *
 * Events -> notifications (host_watch_map_event):
 *   directory, a child created, deleted, moved in or out
 *       INVAL_ENTRY(dir, name) and INVAL_INODE(dir, data)  (listing, mtime)
 *   directory or file, its own attributes (chmod, chown, times, link count),
 *   moved
 *       INVAL_INODE(node, attributes only)
 *   directory, a file child's data or attributes changed (the directory
 *   scheme), or a name created or moved in that is a known file
 *       INVAL_INODE(child, as its own watch's event would map; a move in
 *       drops data too, since a write before it came under the old name)
 *   directory or file deleted (IN_DELETE_SELF), its watch ended (IN_IGNORED)
 *       nothing: the parent's INVAL_ENTRY covered the name, and no name
 *       leads to the inode any more
 *   file, its data written (write, truncate; not mmap stores)
 *       INVAL_INODE(node, attributes and data)
 *   IN_Q_OVERFLOW (events were lost)
 *       INVAL_INODE(node, data) for every watched node; names changed in the
 *       lost events stay cached until their entry timeout.
 * Changes the client makes through kvmini fire too. Entry changes (create,
 * mkdir, mknod, symlink, link, unlink, rmdir, rename) are announced by the
 * backend (host_watch_expect) and their events are not sent back: the
 * client's kernel already knows, and an invalidation would only throw away
 * its fresh entries. The match is by directory, name and kind of event
 * (a remembered create never hides a host's delete), used once, within
 * 2 s. Changes to a node itself (setattr, write, truncating open, the link
 * count an unlink or link changes, a rename's move) are announced by kind
 * (host_watch_expect_node): an event whose kinds were all announced for that
 * node is not sent. The batch of events read takes the kinds it matched,
 * once every change of those kinds had ended before the read, so a host's
 * write is still sent after the client's chmod, and a change's event read
 * apart from an earlier change's of the same kind is not sent either.
 * Repeats inside one batch of events are sent once. A node the client
 * forgot loses its table entry under the watcher's lock, so its events
 * still queued map to nothing.
 *
 * Threads and locks. add/remove run on request workers, called through the
 * node-life observer (node_observer.h) with no backend lock held; they take
 * the watcher's lock briefly. The watcher's own thread
 * reads the inotify descriptor, maps events under the watcher's lock, then
 * releases it before sending: a send may block (the client holds an inode
 * lock until a worker answers its request), and a worker may need the
 * watcher's lock meanwhile. Notifications therefore never come from a
 * request worker (see fuse_server.h). Children's names are mapped to nodes
 * between the two, with the watcher's lock released too (the backend's
 * lookup may drop a node and so call host_watch_remove), under the source
 * lock alone, which the backend takes to withdraw its source.
 */
#ifndef KVMINI_FS_HOST_WATCH_H
#define KVMINI_FS_HOST_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/counters.h"
#include "fs/node_observer.h"

struct fuse_server;

/* Default bound on watches. */
#define HOST_WATCH_DEFAULT_MAX 65536u
/* Most notifications one inotify event maps to. */
#define HOST_WATCH_MAX_INVALS 2u

/* What gets a watch: see the top of this file. */
enum host_watch_scheme {
	HOST_WATCH_DIRS = 0,         /* directories, and files with several links */
	HOST_WATCH_FILES,            /* directories and every regular file */
};

struct host_watch_opts {
	unsigned max_watches;        /* 0: HOST_WATCH_DEFAULT_MAX */
	enum host_watch_scheme scheme;
};

/* One notification to send. */
struct host_watch_inval {
	bool entry;                  /* INVAL_ENTRY(nodeid, name), else INVAL_INODE */
	uint64_t nodeid;
	int64_t off;                 /* INVAL_INODE: 0 drops data too, -1 attributes only */
	const char *name;            /* INVAL_ENTRY: points into the event */
	size_t namelen;
};

/* Counters, printed "watch_<name>"; all monotonic but watches, a level.
 * rx: events read from inotify; tx: watches asked of it, invalidations
 * handed to the FUSE server. */
#define HOST_WATCH_COUNTERS(X) \
	X(watches,         "inotify watches held now (a level, not a count)") \
	X(watches_added,   "inotify watches placed") \
	X(watches_refused, "watches not placed: over --max-watches") \
	X(tx_watches_failed, "inotify_add_watch failures (kernel limit, ...)") \
	X(events,          "inotify events read") \
	X(events_unknown,  "events for a watch no longer known, ignored") \
	X(rx_overflows,    "inotify queue overflows (IN_Q_OVERFLOW): events lost") \
	X(invals,          "invalidations handed to the FUSE server") \
	X(events_own,      "events of the client's own changes (entries, attributes, data), not sent") \
	X(watches_skipped, "watches not placed: the client cannot get notifications") \
	X(rx_events_gone,  "events of deleted nodes and ended watches (IN_DELETE_SELF, IN_IGNORED), not sent") \
	X(tx_unwatch_failed, "inotify_rm_watch failures (the kernel had ended the watch first)") \
	X(tx_invals_failed, "invalidations the FUSE server did not deliver (ENOENT: the client knew no such node; not negotiated; transport errors)") \
	X(tx_file_watches_spared, "watches not placed: files with one link, left to their directory's watch (the directory scheme)") \
	X(rx_child_events, "children's events on a directory's watch mapped to a node by name (the directory scheme)") \
	X(rx_child_unmapped, "of those, names that led to no node the client knows, or to one with its own watch")

struct host_watch_counters {
	HOST_WATCH_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set host_watch_counter_set;

struct host_watch;

/* Create the watcher (no thread yet). Returns NULL with *@err = -errno. */
struct host_watch *host_watch_new(const struct host_watch_opts *o, int *err);
/* Stop the thread if started, then free. */
void host_watch_free(struct host_watch *w);

/* Start the thread that sends notifications to @server. Returns 0 or -errno. */
int host_watch_start(struct host_watch *w, struct fuse_server *server);
/* Stop and join the thread (before the server's transport goes away). */
void host_watch_stop(struct host_watch *w);

/* Watch node @nodeid open as @fd (O_PATH) of type @type (S_IFDIR, S_IFREG,
 * ...), whatever the scheme (the observer applies it). Returns the watch descriptor (>= 0) to give back to
 * host_watch_remove, or -errno when the node has no watch (-EOPNOTSUPP for
 * types not watched, -ENOSPC over the bound). @w may be NULL. */
int host_watch_add(struct host_watch *w, uint64_t nodeid, int fd, mode_t type);
/* Drop watch @wd of node @nodeid (nothing when it is another node's by now).
 * @held: the descriptor it was placed through is still open, so the watch
 * is there to remove now; else, with the thread running, the thread
 * removes it once it has read the queue (the kernel may have ended it).
 * Returns 0, or -errno when inotify_rm_watch failed (-EINVAL: the kernel
 * had dropped the watch already, see node_observer.h). */
int host_watch_remove(struct host_watch *w, int wd, uint64_t nodeid, bool held);

/* The watcher as a node-life observer (its ops call host_watch_add, in the
 * directory scheme for directories and files with several links only, and
 * host_watch_remove, and take the backend's node source); NULL for a NULL
 * @w. */
struct fs_node_observer *host_watch_observer(struct host_watch *w);

/* The client is about to change entry @name of directory @parent itself;
 * @mask: the events it causes there (IN_CREATE, IN_DELETE, IN_MOVED_FROM,
 * IN_MOVED_TO). Returns a token for host_watch_unexpect when the change did
 * not happen (0 when nothing was remembered). @w may be NULL. */
uint64_t host_watch_expect(struct host_watch *w, uint64_t parent, uint32_t mask,
			   const char *name);
void host_watch_unexpect(struct host_watch *w, uint64_t token);
/* The client is about to change node @nodeid itself; @mask: the events it
 * causes on the node's own watch (IN_ATTRIB, IN_MODIFY, IN_MOVE_SELF).
 * Each call is ended by host_watch_expect_node_end with the same node and
 * mask once the system call returned, @happened false when the change did
 * not happen (the announcement is withdrawn). Until then the change's kinds
 * are not taken by events, which may be an earlier change's. @w may be NULL. */
void host_watch_expect_node(struct host_watch *w, uint64_t nodeid, uint32_t mask);
void host_watch_expect_node_end(struct host_watch *w, uint64_t nodeid, uint32_t mask,
				bool happened);

/* Map one event (mask and name as inotify gives them) on the watch of node
 * @nodeid (@dir: a directory) to notifications. Returns how many were
 * written to @out. Pure: for tests and the watcher thread. */
unsigned host_watch_map_event(uint64_t nodeid, bool dir, uint32_t mask, const char *name,
			      size_t namelen, struct host_watch_inval out[HOST_WATCH_MAX_INVALS]);

/* Handle a buffer of inotify events as read from the descriptor: map them
 * and send them to @server. The thread's work, callable directly in tests.
 * Returns the notifications sent (any outcome). */
unsigned host_watch_handle_events(struct host_watch *w, struct fuse_server *server,
				  const void *buf, size_t len);
/* The same for events read after host_watch_read_mark returned @mark: node
 * changes announced or ended since then may have events still to come. */
uint64_t host_watch_read_mark(struct host_watch *w);
unsigned host_watch_handle_events_read_at(struct host_watch *w, struct fuse_server *server,
					  const void *buf, size_t len, uint64_t mark);

void host_watch_get_counters(struct host_watch *w, struct host_watch_counters *c);
/* Hand the counters to @sink as "watch_<name>"; any thread. */
void host_watch_visit_counters(struct host_watch *w, const struct counter_sink *sink);
/* Print counters, one "watch_<name> value" per line. */
void host_watch_dump_counters(struct host_watch *w, FILE *out);

#endif
