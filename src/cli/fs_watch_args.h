/*
 * The host-change watcher options shared by the subcommands that serve a
 * passthrough virtio-fs share (`kvmini vhost fs`, `kvmini run --fs`):
 *   --no-notify          do not watch the shared directory for host changes
 *   --max-watches N      most inotify watches (per share)
 */
#ifndef KVMINI_CLI_FS_WATCH_ARGS_H
#define KVMINI_CLI_FS_WATCH_ARGS_H

#include <getopt.h>
#include <stdbool.h>

#include "fuse/fuse_server.h"
#include "fs/host_watch.h"

/* getopt_long codes of the options (outside the letters' range). */
enum { CLI_OPT_NO_NOTIFY = 0x4f00, CLI_OPT_MAX_WATCHES };

#define CLI_FS_WATCH_LONG_OPTIONS \
	{ "no-notify", no_argument, NULL, CLI_OPT_NO_NOTIFY }, \
	{ "max-watches", required_argument, NULL, CLI_OPT_MAX_WATCHES }

struct cli_fs_watch_args {
	bool no_notify;
	bool max_given;              /* --max-watches */
	struct host_watch_opts opts;
};

/* Take one of the options above: 1 when @opt is not one of them, 0 when
 * taken, -EINVAL (logged) for a bad value. */
int cli_fs_watch_take(struct cli_fs_watch_args *a, int opt, const char *optarg);

/* The watcher for the share of @dir, unless turned off or pointless (cache
 * none: the guest caches nothing to invalidate). NULL without one (a
 * failure is logged as a warning: the share works without it). */
struct host_watch *cli_fs_watch_open(const struct cli_fs_watch_args *a, const char *dir,
				     enum fuse_cache_policy cache);

#endif
