/*
 * One shared filesystem, as every front door serves it: a backend (a host
 * directory through passthrough, or memfs), kvmini's FUSE server on it, and
 * the watcher that turns host changes into FUSE invalidations. `kvmini run
 * --fs`, `kvmini vhost fs` and `kvmini fuse-mount` open their shares here,
 * so one configuration means the same thing on each; each then puts its own
 * transport in front (a virtio-fs device behind virtio-mmio or vhost-user,
 * or /dev/fuse).
 */
#ifndef KVMINI_MACHINE_FS_SHARE_H
#define KVMINI_MACHINE_FS_SHARE_H

#include <stdbool.h>

#include "core/counters.h"
#include "fs/host_watch.h"
#include "fs/memfs.h"
#include "fs/passthrough.h"
#include "fuse/fuse_server.h"

enum fs_share_backend { FS_SHARE_PASSTHROUGH, FS_SHARE_MEMFS };

struct fs_share_config {
	enum fs_share_backend backend;
	const char *dir;                  /* passthrough: the host directory shared */
	struct passthrough_opts pt;       /* its root and watch are filled in here */
	struct memfs_opts mem;
	struct fuse_server_opts server;
	bool no_notify;                   /* do not watch @dir for host changes */
	struct host_watch_opts watch;
};

/* The defaults every front door starts from: passthrough, cache auto. */
#define FS_SHARE_CONFIG_DEFAULT \
	((struct fs_share_config){ .server = { .cache = FUSE_CACHE_AUTO } })

struct fs_share {
	enum fs_share_backend backend;
	const char *dir;
	struct host_watch *watch;         /* NULL: not watching */
	struct fs_backend *be;
	struct fuse_server *server;
};

/*
 * Open the backend, the watcher (unless turned off, or pointless with cache
 * none: nothing cached to invalidate; a watcher that cannot start is a
 * warning, the share works without it) and the FUSE server. @what names the
 * share in the messages logged on failure ("--shared-dir /srv"). 0 or -errno;
 * on failure nothing is left open.
 */
int fs_share_open(struct fs_share *s, const struct fs_share_config *cfg, const char *what);

/* Start sending host changes to the server, once its transport can carry
 * them (signals blocked: the watcher's thread inherits the mask). A failure
 * is logged as a warning. */
void fs_share_start_watch(struct fs_share *s, const char *what);
/* Stop the watcher's thread: before the transport goes, it sends through it. */
void fs_share_stop_watch(struct fs_share *s);
void fs_share_close(struct fs_share *s);

/* The backend's counters (prefixed passthrough_ or memfs_) and the
 * watcher's. */
void fs_share_visit_counters(const struct fs_share *s, const struct counter_sink *sink);

#endif
