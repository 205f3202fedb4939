/*
 * `kvmini vhost fs`: a virtio-fs device exporting a host directory (or an
 * in-memory filesystem) through kvmini's FUSE server, served to a
 * vhost-user frontend (QEMU, cloud-hypervisor, User-Mode Linux) on a socket.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/fs_watch_args.h"
#include "cli/signals.h"
#include "core/compiler.h"
#include "core/log.h"
#include "fuse/fuse_server.h"
#include "fs/host_watch.h"
#include "fs/memfs.h"
#include "fs/passthrough.h"
#include "fs/virtio_fs.h"
#include "transport/vhost_user.h"

static const char fs_usage[] =
	"usage: kvmini vhost fs --socket PATH --tag TAG --shared-dir DIR [options]\n"
	"       kvmini vhost fs --socket PATH --tag TAG --backend memfs [options]\n"
	"\n"
	"Serve a virtio-fs device as a vhost-user backend on a unix socket. The guest\n"
	"mounts it with `mount -t virtiofs TAG MOUNTPOINT`.\n"
	"\n"
	"  --socket PATH          unix socket to listen on (created; a stale one is replaced)\n"
	"  --tag TAG              the name the guest mounts, 1 to 36 bytes\n"
	"  --shared-dir DIR       the host directory shared (passthrough backend); the\n"
	"                         guest cannot reach anything outside it\n"
	"  --backend NAME         passthrough (default: DIR on the host) or memfs (an\n"
	"                         empty in-memory filesystem, gone at exit)\n"
	"  --memfs-size MIB       memfs: most MiB of file data, 1..65536 (default 256)\n"
	"  --queues N             request queues offered, 1..16 (default 1)\n"
	"  --threads N            worker threads answering requests, 1..64 (default 2)\n"
	"  --cache MODE           what the guest may cache (default auto):\n"
	"                           none    no attribute/entry caching, direct I/O\n"
	"                           metadata  attributes/entries as auto, file data\n"
	"                                   direct I/O (large sequential I/O: fewer,\n"
	"                                   bigger requests, no guest page cache)\n"
	"                           auto    1 s attribute/entry timeouts, page cache\n"
	"                                   dropped at each open\n"
	"                           always  long timeouts, page cache kept\n"
	"  --squash-owner U:G     create every file as uid U, gid G; chown is ignored\n"
	"  --max-fds N            passthrough: most descriptors held for known files\n"
	"                         (default half of the open-file limit)\n"
	"  --xattr-all            passthrough: pass every xattr namespace (default user.*)\n"
	"  --no-notify            passthrough: do not watch DIR for changes made on the\n"
	"                         host. By default they become FUSE invalidations sent\n"
	"                         on the notification queue to a driver that negotiates\n"
	"                         VIRTIO_FS_F_NOTIFICATION (virtio 1.3 layout; stock\n"
	"                         Linux drivers do not, and then nothing is sent)\n"
	"  --max-watches N        passthrough: most inotify watches for that (default 65536)\n"
	"  --inband               also offer in-band notifications (kicks and interrupts as\n"
	"                         vhost-user messages); off by default: UML acks every\n"
	"                         in-band kick synchronously, which costs several times\n"
	"                         the latency of kick and call fds\n"
	"  --counters-file PATH   also write the counters to PATH on SIGUSR1 and at exit\n"
	"  -v, --verbose          log each vhost-user message and more\n"
	"  -q, --quiet            log errors only\n"
	"  -h, --help             this text\n"
	"\n"
	"Counters are printed to stderr on SIGUSR1 and at exit (SIGINT, SIGTERM).\n";

enum fs_backend_kind { BACKEND_PASSTHROUGH, BACKEND_MEMFS };

struct fs_args {
	const char *socket_path;
	const char *shared_dir;
	const char *counters_file;
	enum fs_backend_kind backend;
	bool backend_given;
	bool inband;
	struct cli_fs_watch_args watch;  /* --no-notify, --max-watches */
	struct virtio_fs_opts dev;
	struct fuse_server_opts server;
	struct passthrough_opts pt;
	struct memfs_opts mem;
	bool pt_only_given;          /* --max-fds or --xattr-all */
	bool memfs_only_given;       /* --memfs-size */
};

static int parse_backend(const char *text, enum fs_backend_kind *kind)
{
	if (!strcmp(text, "passthrough"))
		*kind = BACKEND_PASSTHROUGH;
	else if (!strcmp(text, "memfs"))
		*kind = BACKEND_MEMFS;
	else
		return -EINVAL;
	return 0;
}

/* One option with a value; 0 or -EINVAL with the reason logged. */
static int parse_value_opt(int c, const char *val, struct fs_args *a)
{
	unsigned long v;

	switch (c) {
	case 't':
		if (virtio_fs_check_tag(val) == 0) {
			a->dev.tag = val;
			return 0;
		}
		log_err("--tag: \"%s\" must be 1 to %u bytes", val, VIRTIO_FS_TAG_LEN);
		return -EINVAL;
	case 'b':
		if (parse_backend(val, &a->backend) == 0) {
			a->backend_given = true;
			return 0;
		}
		log_err("--backend: \"%s\" is not passthrough or memfs", val);
		return -EINVAL;
	case 'Q':
		if (cli_parse_uint(val, 1, VIRTIO_FS_MAX_REQUEST_QUEUES, &v) == 0) {
			a->dev.request_queues = (unsigned)v;
			return 0;
		}
		log_err("--queues: \"%s\" is not a number from 1 to %u", val,
			VIRTIO_FS_MAX_REQUEST_QUEUES);
		return -EINVAL;
	case 'T':
		if (cli_parse_uint(val, 1, VIRTIO_FS_MAX_THREADS, &v) == 0) {
			a->dev.threads = (unsigned)v;
			return 0;
		}
		log_err("--threads: \"%s\" is not a number from 1 to %u", val, VIRTIO_FS_MAX_THREADS);
		return -EINVAL;
	case 'C':
		if (fuse_cache_policy_parse(val, &a->server.cache) == 0)
			return 0;
		log_err("--cache: \"%s\" is not none, metadata, auto or always", val);
		return -EINVAL;
	case 'o':
		if (cli_parse_owner(val, &a->pt.squash_uid, &a->pt.squash_gid) == 0) {
			a->pt.squash = true;
			return 0;
		}
		log_err("--squash-owner: \"%s\" is not UID:GID (numbers)", val);
		return -EINVAL;
	case 'f':
		if (cli_parse_uint(val, 16, 1u << 30, &v) == 0) {
			a->pt.max_fds = (unsigned)v;
			a->pt_only_given = true;
			return 0;
		}
		log_err("--max-fds: \"%s\" is not a number from 16 to %u", val, 1u << 30);
		return -EINVAL;
	case 'm':
		if (cli_parse_uint(val, 1, 65536, &v) == 0) {
			a->mem.max_bytes = (uint64_t)v << 20;
			a->memfs_only_given = true;
			return 0;
		}
		log_err("--memfs-size: \"%s\" is not a number of MiB from 1 to 65536", val);
		return -EINVAL;
	}
	log_err("unknown option (see kvmini vhost fs --help)");
	return -EINVAL;
}

/* Options that only make sense together. */
static int check_combination(struct fs_args *a)
{
	if (!a->socket_path || !a->dev.tag) {
		log_err("--socket and --tag are required (see kvmini vhost fs --help)");
		return -EINVAL;
	}
	if (a->backend == BACKEND_PASSTHROUGH && !a->shared_dir) {
		log_err("--shared-dir is required with the passthrough backend "
			"(or use --backend memfs)");
		return -EINVAL;
	}
	if (a->backend == BACKEND_MEMFS && a->shared_dir) {
		log_err("--shared-dir is for the passthrough backend; memfs shares no host directory");
		return -EINVAL;
	}
	if (a->backend == BACKEND_MEMFS && (a->pt_only_given || a->watch.max_given)) {
		log_err("--max-fds, --max-watches and --xattr-all are for the passthrough backend");
		return -EINVAL;
	}
	if (a->backend == BACKEND_PASSTHROUGH && a->memfs_only_given) {
		log_err("--memfs-size is for the memfs backend");
		return -EINVAL;
	}
	if (a->pt.squash) {
		a->mem.squash = true;
		a->mem.squash_uid = a->pt.squash_uid;
		a->mem.squash_gid = a->pt.squash_gid;
	}
	return 0;
}

/* Returns 0, 1 after --help, or -EINVAL. */
static int parse_fs_args(int argc, char **argv, struct fs_args *a)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "shared-dir", required_argument, NULL, 'd' },
		{ "backend", required_argument, NULL, 'b' },
		{ "memfs-size", required_argument, NULL, 'm' },
		{ "queues", required_argument, NULL, 'Q' },
		{ "threads", required_argument, NULL, 'T' },
		{ "cache", required_argument, NULL, 'C' },
		{ "squash-owner", required_argument, NULL, 'o' },
		{ "max-fds", required_argument, NULL, 'f' },
		{ "xattr-all", no_argument, NULL, 'x' },
		CLI_FS_WATCH_LONG_OPTIONS,
		{ "inband", no_argument, NULL, 'I' },
		{ "counters-file", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*a = (struct fs_args){ .server = { .cache = FUSE_CACHE_AUTO },
			       .dev = { .request_queues = 1, .threads = 2 } };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", opts, NULL)) != -1) {
		int w = cli_fs_watch_take(&a->watch, c, optarg);
		if (w < 0)
			return -EINVAL;
		if (w == 0)
			continue;
		switch (c) {
		case 's': a->socket_path = optarg; break;
		case 'd': a->shared_dir = optarg; break;
		case 'c': a->counters_file = optarg; break;
		case 'I': a->inband = true; break;
		case 'x': a->pt.xattr_all = true; a->pt_only_given = true; break;
		case 'v': log_threshold = LOG_DEBUG; break;
		case 'q': log_threshold = LOG_ERROR; break;
		case 'h': fputs(fs_usage, stdout); return 1;
		case ':':
			log_err("option %s needs a value", argv[optind - 1]);
			return -EINVAL;
		case '?':
			log_err("unknown option \"%s\" (see kvmini vhost fs --help)", argv[optind - 1]);
			return -EINVAL;
		default:
			if (parse_value_opt(c, optarg, a))
				return -EINVAL;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument \"%s\" (see kvmini vhost fs --help)", argv[optind]);
		return -EINVAL;
	}
	return check_combination(a);
}

/* --- serving ----------------------------------------------------------------- */

struct fs_service {
	const struct fs_args *args;
	struct event_loop loop;
	struct vhost_user_server server;
	struct virtio_fs *dev;
	struct fuse_server *fuse;
	struct fs_backend *be;
	struct host_watch *watch;    /* passthrough with notifications, else NULL */
	struct cli_signals sig;
};

/* The backend's stats, copied under its locks, then visited. */
static void visit_backend(const struct fs_service *svc, const struct counter_sink *sink)
{
	if (svc->args->backend == BACKEND_PASSTHROUGH) {
		struct passthrough_stats st;

		passthrough_get_stats(svc->be, &st);
		counters_visit(&passthrough_stats_set, &st, "passthrough_", sink);
	} else {
		struct memfs_stats st;

		memfs_get_stats(svc->be, &st);
		counters_visit(&memfs_stats_set, &st, "memfs_", sink);
	}
}

static void dump_all(const struct fs_service *svc, FILE *out)
{
	const struct counter_sink *sink = COUNTER_SINK_FILE(out);

	virtio_fs_visit_counters(svc->dev, sink);
	visit_backend(svc, sink);
	if (svc->watch)
		host_watch_visit_counters(svc->watch, sink);
	vhost_user_server_visit_counters(&svc->server, sink);
}

/* Signals arrive on the loop thread, so the counters are read there. */
static void dump_counters(struct fs_service *svc)
{
	const char *path = svc->args->counters_file;

	fputs("kvmini: counters\n", stderr);
	dump_all(svc, stderr);
	if (!path)
		return;
	FILE *f = fopen(path, "w");
	if (!f) {
		log_warn("--counters-file %s: %s", path, strerror(errno));
		return;
	}
	dump_all(svc, f);
	fclose(f);
}

static void on_signal(struct cli_signals *cs, int signo)
{
	struct fs_service *svc = container_of(cs, struct fs_service, sig);

	if (signo == SIGUSR1) {
		dump_counters(svc);
	} else {
		log_info("signal %d: shutting down", signo);
		event_loop_quit(&svc->loop);
	}
}

/* Room for descriptors: the passthrough backend takes half the limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static struct fs_backend *open_backend(struct fs_service *svc)
{
	const struct fs_args *a = svc->args;
	struct stat st;
	int err;

	if (a->backend == BACKEND_MEMFS) {
		struct fs_backend *be = memfs_new(&a->mem, &err);
		if (!be)
			log_err("memfs: %s", strerror(-err));
		return be;
	}
	if (stat(a->shared_dir, &st) < 0) {
		log_err("--shared-dir %s: %s", a->shared_dir, strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("--shared-dir %s is not a directory", a->shared_dir);
		return NULL;
	}
	struct passthrough_opts pt = a->pt;
	pt.root = a->shared_dir;
	svc->watch = cli_fs_watch_open(&a->watch, a->shared_dir, a->server.cache);
	pt.watch = svc->watch;
	struct fs_backend *be = passthrough_new(&pt, &err);
	if (!be)
		log_err("--shared-dir %s: %s%s", a->shared_dir, strerror(-err),
			err == -ENOSYS ? " (openat2 needs Linux 5.6 or later)" : "");
	return be;
}

/* Device, transport and signals; undone by teardown(). EXIT_* on error. */
static int setup(struct fs_service *svc)
{
	const struct fs_args *a = svc->args;
	struct virtio_fs_opts dopts = a->dev;
	int r;

	/* The notification queue only when there is something to send. */
	dopts.offer_notification = svc->watch != NULL;
	svc->fuse = fuse_server_new(svc->be, &a->server);
	svc->dev = calloc(1, sizeof(*svc->dev));
	if (!svc->fuse || !svc->dev) {
		log_err("out of memory");
		return EXIT_RUNTIME;
	}
	/* Before the device starts its worker threads: they inherit the mask. */
	r = cli_signals_block();
	if (r == 0)
		r = virtio_fs_init(svc->dev, &dopts, svc->fuse, &svc->loop);
	if (r < 0) {
		log_err("virtio-fs device: %s", strerror(-r));
		return EXIT_RUNTIME;
	}
	struct vhost_user_opts vopts = VHOST_USER_OPTS_DEFAULT;
	/* Kick and call fds unless asked: see --inband in the usage. */
	if (!a->inband)
		vopts.protocol_features &= ~VHOST_USER_PF(INBAND_NOTIFICATIONS);
	r = vhost_user_server_init(&svc->server, &svc->dev->vdev, &svc->loop, a->socket_path, &vopts);
	if (r < 0) {
		log_err("--socket %s: %s", a->socket_path, strerror(-r));
		virtio_fs_destroy(svc->dev);
		free(svc->dev);
		svc->dev = NULL;
		return EXIT_RUNTIME;
	}
	r = cli_signals_watch(&svc->sig, &svc->loop, on_signal);
	if (r < 0) {
		log_err("signalfd: %s", strerror(-r));
		return EXIT_RUNTIME;
	}
	/* Signals blocked (inherited); the device is the server's transport. */
	if (svc->watch && host_watch_start(svc->watch, svc->fuse) < 0)
		log_warn("not watching %s for host changes", a->shared_dir);
	return 0;
}

/* The server goes first: its disconnect resets the device, which waits for
 * requests in flight, before the workers are joined. */
static void teardown(struct fs_service *svc)
{
	cli_signals_close(&svc->sig, &svc->loop);
	/* First: it sends through the device. */
	host_watch_stop(svc->watch);
	if (svc->dev) {
		vhost_user_server_destroy(&svc->server);
		virtio_fs_destroy(svc->dev);
		free(svc->dev);
	}
	fuse_server_free(svc->fuse);
	fs_backend_destroy(svc->be);
	host_watch_free(svc->watch);
}

static int serve_fs(const struct fs_args *a)
{
	struct fs_service svc = { .args = a };
	int status;

	raise_fd_limit();
	svc.be = open_backend(&svc);
	if (!svc.be) {
		host_watch_free(svc.watch);
		return EXIT_RUNTIME;
	}
	if (event_loop_init(&svc.loop) < 0) {
		log_err("epoll: %s", strerror(errno));
		fs_backend_destroy(svc.be);
		host_watch_free(svc.watch);
		return EXIT_RUNTIME;
	}
	status = setup(&svc);
	if (status == 0) {
		log_info("virtio-fs \"%s\" on %s: %s, %u request queue(s), %u thread(s)",
			 a->dev.tag, a->socket_path,
			 a->backend == BACKEND_MEMFS ? "memfs" : a->shared_dir,
			 a->dev.request_queues, a->dev.threads);
		status = event_loop_run(&svc.loop) < 0 ? EXIT_RUNTIME : 0;
		dump_counters(&svc);
	}
	teardown(&svc);
	event_loop_destroy(&svc.loop);
	return status;
}

int cmd_vhost_fs(int argc, char **argv)
{
	struct fs_args args;
	int r = parse_fs_args(argc, argv, &args);

	if (r > 0)
		return 0;     /* --help */
	if (r < 0)
		return EXIT_USAGE;
	return serve_fs(&args);
}
