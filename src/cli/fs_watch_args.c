/* The host-change watcher options (see fs_watch_args.h). */
#include "cli/fs_watch_args.h"

#include <errno.h>
#include <string.h>

#include "cli/args.h"
#include "core/log.h"

int cli_fs_watch_take(struct cli_fs_watch_args *a, int opt, const char *optarg)
{
	unsigned long v;

	switch (opt) {
	case CLI_OPT_NO_NOTIFY:
		a->no_notify = true;
		return 0;
	case CLI_OPT_MAX_WATCHES:
		if (cli_parse_uint(optarg, 1, 1u << 24, &v) < 0) {
			log_err("--max-watches: \"%s\" is not a number from 1 to %u", optarg, 1u << 24);
			return -EINVAL;
		}
		a->opts.max_watches = (unsigned)v;
		a->max_given = true;
		return 0;
	default:
		return 1;
	}
}

struct host_watch *cli_fs_watch_open(const struct cli_fs_watch_args *a, const char *dir,
				     enum fuse_cache_policy cache)
{
	int err;

	if (a->no_notify || cache == FUSE_CACHE_NONE)
		return NULL;
	struct host_watch *w = host_watch_new(&a->opts, &err);
	if (!w)
		log_warn("cannot watch %s for host changes: %s", dir, strerror(-err));
	return w;
}
