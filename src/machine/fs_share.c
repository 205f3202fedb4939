/* One shared filesystem: backend, watcher and FUSE server (see fs_share.h). */
#include "machine/fs_share.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "core/log.h"

static int check_dir(const char *dir, const char *what)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		int r = -errno;

		log_err("%s: %s", what, strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("%s: %s is not a directory", what, dir);
		return -ENOTDIR;
	}
	return 0;
}

/* The watcher, unless off or pointless; NULL without one. */
static struct host_watch *open_watch(const struct fs_share_config *cfg)
{
	int err;

	if (cfg->backend != FS_SHARE_PASSTHROUGH || cfg->no_notify ||
	    cfg->server.cache == FUSE_CACHE_NONE)
		return NULL;
	struct host_watch *w = host_watch_new(&cfg->watch, &err);
	if (!w)
		log_warn("cannot watch %s for host changes: %s", cfg->dir, strerror(-err));
	return w;
}

static struct fs_backend *open_backend(struct fs_share *s, const struct fs_share_config *cfg,
				       const char *what, int *err)
{
	if (cfg->backend == FS_SHARE_MEMFS) {
		struct fs_backend *be = memfs_new(&cfg->mem, err);
		if (!be)
			log_err("%s: memfs: %s", what, strerror(-*err));
		return be;
	}
	struct passthrough_opts pt = cfg->pt;

	pt.root = cfg->dir;
	pt.watch = s->watch;
	struct fs_backend *be = passthrough_new(&pt, err);
	if (!be)
		log_err("%s: %s%s", what, strerror(-*err),
			*err == -ENOSYS ? " (openat2 needs Linux 5.6 or later)" : "");
	return be;
}

/* What the passthrough backend needs of the process: room for descriptors
 * (it keeps up to half the limit open), and a write past a file size limit
 * failing with EFBIG for the guest instead of killing kvmini. */
static void prepare_process(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGXFSZ, SIG_IGN);
}

int fs_share_open(struct fs_share *s, const struct fs_share_config *cfg, const char *what)
{
	int err = 0;

	*s = (struct fs_share){ .backend = cfg->backend, .dir = cfg->dir };
	if (cfg->backend == FS_SHARE_PASSTHROUGH) {
		err = check_dir(cfg->dir, what);
		if (err)
			return err;
		prepare_process();
	}
	s->watch = open_watch(cfg);
	s->be = open_backend(s, cfg, what, &err);
	if (!s->be) {
		host_watch_free(s->watch);
		s->watch = NULL;
		return err ? err : -EINVAL;
	}
	s->server = fuse_server_new(s->be, &cfg->server);
	if (!s->server) {
		log_err("%s: FUSE server: out of memory", what);
		fs_share_close(s);
		return -ENOMEM;
	}
	return 0;
}

void fs_share_start_watch(struct fs_share *s, const char *what)
{
	if (s->watch && host_watch_start(s->watch, s->server) < 0)
		log_warn("%s: not watching for host changes", what);
}

void fs_share_stop_watch(struct fs_share *s)
{
	host_watch_stop(s->watch);
}

void fs_share_close(struct fs_share *s)
{
	if (s->server)
		fuse_server_free(s->server);
	fs_backend_destroy(s->be);
	host_watch_free(s->watch);
	*s = (struct fs_share){ 0 };
}

/* The backend's stats are copied under its locks, then visited. */
void fs_share_visit_counters(const struct fs_share *s, const struct counter_sink *sink)
{
	if (s->backend == FS_SHARE_PASSTHROUGH) {
		struct passthrough_stats st;

		passthrough_get_stats(s->be, &st);
		counters_visit(&passthrough_stats_set, &st, "passthrough_", sink);
	} else {
		struct memfs_stats st;

		memfs_get_stats(s->be, &st);
		counters_visit(&memfs_stats_set, &st, "memfs_", sink);
	}
	if (s->watch)
		host_watch_visit_counters(s->watch, sink);
}
