/*
 * The /dev/fuse transport: mounts a FUSE filesystem with mount(2) and feeds
 * the host kernel's requests to a fuse_server from worker threads, each
 * reading its own clone of the device descriptor (FUSE_DEV_IOC_CLONE) into
 * its own buffer and writing the reply back on that descriptor.
 *
 * Lifecycle: fuse_dev_mount, fuse_dev_start, fuse_dev_wait (until the
 * filesystem is unmounted or a stop signal arrives), fuse_dev_destroy (which
 * detaches the mount if it is still there, stops and joins the workers).
 *
 * Notifications: fuse_dev_start makes the session descriptor the server's
 * notification transport (fuse_server_set_notify), fuse_dev_destroy undoes
 * it; whatever notifies (host_watch) must be stopped before destroy.
 *
 * Signals: the caller blocks its stop signals in every thread before
 * fuse_dev_start (the workers inherit the mask) and passes them to
 * fuse_dev_wait. The workers are woken for shutdown with SIGRTMIN, for which
 * fuse_dev_start installs an empty handler.
 */
#ifndef KVMINI_FUSE_FUSE_DEV_H
#define KVMINI_FUSE_FUSE_DEV_H

#include <signal.h>
#include <stdbool.h>

#include "fuse/fuse_server.h"

#define FUSE_DEV_MAX_THREADS 64u
#define FUSE_DEV_DEFAULT_THREADS 2u

struct fuse_dev_opts {
	const char *source;          /* mount source shown in /proc/mounts; NULL: "kvmini" */
	unsigned threads;            /* workers, 1..FUSE_DEV_MAX_THREADS; 0: FUSE_DEV_DEFAULT_THREADS */
};

struct fuse_dev;

/* Open /dev/fuse and mount it at @mountpoint (fstype fuse.kvmini,
 * allow_other, default_permissions, nosuid, nodev). The server is not
 * owned. Returns 0 or -errno, with the reason logged. */
int fuse_dev_mount(struct fuse_dev **out, struct fuse_server *s, const char *mountpoint,
		   const struct fuse_dev_opts *o);

/* Start the workers. Returns 0 or -errno. */
int fuse_dev_start(struct fuse_dev *d);

/* Block until the filesystem goes away (returns 0) or a signal of @sigs
 * arrives (returns its number). @sigs must be blocked in all threads. */
int fuse_dev_wait(struct fuse_dev *d, const sigset_t *sigs);

/* Detach the mount if still mounted, stop and join the workers, close the
 * descriptors and free @d. Returns 0, or -EBUSY when a worker would not stop
 * (stuck in a request): then @d and the server stay in use and the caller
 * must exit without freeing them. */
int fuse_dev_destroy(struct fuse_dev *d);

#endif
