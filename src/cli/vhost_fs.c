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
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/counters_dump.h"
#include "cli/fs_options.h"
#include "cli/signals.h"
#include "core/compiler.h"
#include "core/log.h"
#include "fs/virtio_fs.h"
#include "machine/fs_share.h"
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
	"  --threads N            worker threads answering requests, 1..64 (default: one\n"
	"                         per request queue)\n"
	"  --poll-us N            after answering a request, a worker polls the queue\n"
	"                         up to N microseconds for the next one instead of\n"
	"                         sleeping (no kick, no wake-up: UML's buffered reads\n"
	"                         1.2 to 2x, its creates 0.5x: costs CPU), adaptive\n"
	"                         below N; 0..1000 (default 0)\n"
	"  --cache MODE           what the guest may cache (default auto):\n"
	"                           none    no attribute/entry caching, direct I/O\n"
	"                           metadata  attributes/entries as auto, file data\n"
	"                                   direct I/O (large sequential I/O: fewer,\n"
	"                                   bigger requests, no guest page cache)\n"
	"                           auto    1 s attribute/entry timeouts, page cache\n"
	"                                   dropped at each open\n"
	"                           always  long timeouts, page cache kept\n"
	"  --squash-owner U:G     create every file as uid U, gid G; chown is ignored\n"
	"  --max-write BYTES      largest write request, 4096..1048576 (default 1 MiB)\n"
	"  --max-fds N            passthrough: most descriptors held for known files\n"
	"                         (default half of the open-file limit)\n"
	"  --max-inodes N         passthrough: most files the guest may know at once\n"
	"                         (default 1048576; past it lookups fail with ENFILE)\n"
	"  --max-handles N        passthrough: most open files and directories\n"
	"                         (default 65536; past it opens fail with EMFILE)\n"
	"  --xattr-all            passthrough: pass every xattr namespace (default user.*)\n"
	"  --dev-nodes            passthrough: let mknod make block and character devices\n"
	"  --no-notify            passthrough: do not watch DIR for changes made on the\n"
	"                         host. By default they become FUSE invalidations sent\n"
	"                         on the notification queue to a driver that negotiates\n"
	"                         VIRTIO_FS_F_NOTIFICATION (virtio 1.3 layout; stock\n"
	"                         Linux drivers do not, and then nothing is sent)\n"
	"  --max-watches N        passthrough: most inotify watches for that (default 65536)\n"
	"  --watch dirs|files     passthrough: watch directories (and files with several\n"
	"                         links; the default) or every file too\n"
	"  --inband               also offer in-band notifications (kicks and interrupts as\n"
	"                         vhost-user messages); off by default: UML acks every\n"
	"                         in-band kick synchronously, which costs several times\n"
	"                         the latency of kick and call fds\n"
	"  --counters-file PATH   also write the counters to PATH on SIGUSR1 and at exit\n"
	CLI_SECCOMP_USAGE
	"  -v, --verbose          log each vhost-user message and more\n"
	"  -q, --quiet            log errors only\n"
	"  -h, --help             this text\n"
	"\n"
	"Counters are printed to stderr on SIGUSR1 and at exit (SIGINT, SIGTERM).\n";

struct fs_args {
	const char *socket_path;
	const char *counters_file;
	bool inband;
	struct cli_fs_args fs;       /* the share and the device's queues and threads */
};

/* Options that only make sense together. */
static int check_combination(struct fs_args *a)
{
	const struct fs_share_config *share = &a->fs.share;

	if (!a->socket_path || !a->fs.dev.tag) {
		log_err("--socket and --tag are required (see kvmini vhost fs --help)");
		return -EINVAL;
	}
	if (share->backend == FS_SHARE_PASSTHROUGH && !share->dir) {
		log_err("--shared-dir is required with the passthrough backend "
			"(or use --backend memfs)");
		return -EINVAL;
	}
	if (share->backend == FS_SHARE_MEMFS && share->dir) {
		log_err("--shared-dir is for the passthrough backend; memfs shares no host directory");
		return -EINVAL;
	}
	return cli_fs_check(&a->fs);
}

/* The options of this command alone; 0, or -EINVAL (logged). */
static int take_own(struct fs_args *a, int c, const char *val)
{
	switch (c) {
	case 's': a->socket_path = val; return 0;
	case 'd': a->fs.share.dir = val; return 0;
	case 'c': a->counters_file = val; return 0;
	case 'I': a->inband = true; return 0;
	case 't':
		if (virtio_fs_check_tag(val) == 0) {
			a->fs.dev.tag = val;
			return 0;
		}
		log_err("--tag: \"%s\" must be 1 to %u bytes", val, VIRTIO_FS_TAG_LEN);
		return -EINVAL;
	}
	log_err("unknown option (see kvmini vhost fs --help)");
	return -EINVAL;
}

/* Returns 0, 1 after --help, or -EINVAL. */
static int parse_fs_args(int argc, char **argv, struct fs_args *a)
{
	static const struct option own[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "shared-dir", required_argument, NULL, 'd' },
		{ "inband", no_argument, NULL, 'I' },
		{ "counters-file", required_argument, NULL, 'c' },
		{ "seccomp", required_argument, NULL, CLI_OPT_SECCOMP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
	};
	struct option opts[ARRAY_SIZE(own) + CLI_FS_MAX_LONG_OPTIONS + 1] = { 0 };
	int c;

	memcpy(opts, own, sizeof(own));
	cli_fs_long_options(opts + ARRAY_SIZE(own), CLI_FS_VHOST);
	*a = (struct fs_args){ 0 };
	cli_fs_args_init(&a->fs);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", opts, NULL)) != -1) {
		int shared = cli_fs_take(&a->fs, c, optarg);
		if (shared < 0)
			return -EINVAL;
		if (shared == 0)
			continue;
		switch (c) {
		case CLI_OPT_SECCOMP:
			if (cli_seccomp_option(optarg))
				return -EINVAL;
			break;
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
			if (take_own(a, c, optarg))
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
	struct fs_share share;       /* backend, FUSE server, host watcher */
	struct cli_signals sig;
};

static void visit_all(void *opaque, const struct counter_sink *sink)
{
	const struct fs_service *svc = opaque;

	virtio_fs_visit_counters(svc->dev, sink);
	fs_share_visit_counters(&svc->share, sink);
	vhost_user_server_visit_counters(&svc->server, sink);
}

/* Signals arrive on the loop thread, so the counters are read there. */
static void dump_counters(struct fs_service *svc)
{
	cli_counters_dump(visit_all, svc, svc->args->counters_file);
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

/* Device, transport and signals; undone by teardown(). EXIT_* on error. */
static int setup(struct fs_service *svc)
{
	const struct fs_args *a = svc->args;
	struct virtio_fs_opts dopts = a->fs.dev;
	int r;

	/* The notification queue only when there is something to send. */
	dopts.offer_notification = svc->share.watch != NULL;
	svc->dev = calloc(1, sizeof(*svc->dev));
	if (!svc->dev) {
		log_err("out of memory");
		return EXIT_RUNTIME;
	}
	/* Before the device starts its worker threads: they inherit the mask. */
	r = cli_signals_block();
	if (r == 0)
		r = virtio_fs_init(svc->dev, &dopts, svc->share.server, &svc->loop);
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
	fs_share_start_watch(&svc->share, a->fs.share.dir);
	return 0;
}

/* The server goes first: its disconnect resets the device, which waits for
 * requests in flight, before the workers are joined. */
static void teardown(struct fs_service *svc)
{
	cli_signals_close(&svc->sig, &svc->loop);
	/* First: it sends through the device. */
	fs_share_stop_watch(&svc->share);
	if (svc->dev) {
		vhost_user_server_destroy(&svc->server);
		virtio_fs_destroy(svc->dev);
		free(svc->dev);
	}
	fs_share_close(&svc->share);
}

static int serve_fs(const struct fs_args *a)
{
	struct fs_service svc = { .args = a };
	char what[4200];
	int status;

	snprintf(what, sizeof(what), "--shared-dir %s", a->fs.share.dir ? a->fs.share.dir : "");
	if (fs_share_open(&svc.share, &a->fs.share, a->fs.share.dir ? what : "--backend memfs"))
		return EXIT_RUNTIME;
	if (event_loop_init(&svc.loop) < 0) {
		log_err("epoll: %s", strerror(errno));
		fs_share_close(&svc.share);
		return EXIT_RUNTIME;
	}
	status = setup(&svc);
	if (status == 0) {
		log_info("virtio-fs \"%s\" on %s: %s, %u request queue(s), %u thread(s)",
			 a->fs.dev.tag, a->socket_path, a->fs.share.dir ? a->fs.share.dir : "memfs",
			 a->fs.dev.request_queues, svc.dev->nworkers);
		status = cli_confine_main() < 0 || event_loop_run(&svc.loop) < 0 ? EXIT_RUNTIME : 0;
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
