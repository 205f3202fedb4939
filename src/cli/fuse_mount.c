/*
 * `kvmini fuse-mount DIR MOUNTPOINT`: kvmini's FUSE server over a host
 * directory, mounted on the host through /dev/fuse so the host kernel's own
 * FUSE client drives it. Stays in the foreground until MOUNTPOINT is
 * unmounted, or until SIGTERM/SIGINT (then it detaches the mount and exits 0).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/counters_dump.h"
#include "cli/fs_options.h"
#include "core/compiler.h"
#include "core/log.h"
#include "core/seccomp_filter.h"
#include "fuse/fuse_compat.h"
#include "fuse/fuse_dev.h"
#include "machine/fs_share.h"

static const char fuse_mount_usage[] =
	"usage: kvmini fuse-mount DIR MOUNTPOINT [options]\n"
	"\n"
	"Share the host directory DIR through kvmini's FUSE server, mounted at\n"
	"MOUNTPOINT with the host kernel's FUSE client (/dev/fuse). Runs in the\n"
	"foreground until MOUNTPOINT is unmounted, or until SIGTERM/SIGINT, when it\n"
	"detaches the mount and exits 0. Needs root (mount(2)).\n"
	"\n"
	"  --threads N           worker threads reading /dev/fuse, 1..64 (default 2)\n"
	"  --cache MODE          what the kernel may cache (default auto):\n"
	"                          none    no attribute/entry caching, direct I/O\n"
	"                          metadata  attributes/entries as auto, file data\n"
	"                                  direct I/O\n"
	"                          auto    1 s attribute/entry timeouts, page cache\n"
	"                                  dropped at each open\n"
	"                          always  long timeouts, page cache kept\n"
	"  --no-passthrough      with auto/always, keep file data going through the\n"
	"                        server (default: FUSE passthrough where the kernel\n"
	"                        has it, Linux 6.9+: the kernel reads and writes the\n"
	"                        file kvmini opened, inside DIR, itself)\n"
	"  --squash-owner U:G    create every file as uid U, gid G; chown is ignored\n"
	"  --max-fds N           most descriptors held for known files (default half\n"
	"                        of the open-file limit); past it, unused ones are\n"
	"                        closed and reopened from file handles\n"
	"  --max-inodes N        most files the kernel may know at once (default\n"
	"                        1048576); lookups past it fail with ENFILE\n"
	"  --max-handles N       most open files and directories (default 65536);\n"
	"                        opens past it fail with EMFILE\n"
	"  --max-write BYTES     largest write request, 4096..1048576 (default 1 MiB);\n"
	"                        reads are limited to what a splice pipe carries\n"
	"  --xattr-all           pass every xattr namespace (default: user.* only)\n"
	"  --dev-nodes           let mknod make block and character devices (default: EPERM)\n"
	"  --no-notify           do not watch DIR for changes made on the host (by\n"
	"                        default they invalidate the kernel's cache at once;\n"
	"                        with --cache none nothing is cached or watched)\n"
	"  --max-watches N       most inotify watches for that (default 65536);\n"
	"                        files past it show host changes when the cache expires\n"
	"  --watch dirs|files    what gets a watch: directories (and files with several\n"
	"                        links; the default, faster) or every file too\n"
	"  --counters            print the server's counters at exit (SIGUSR1\n"
	"                        prints them at any time)\n"
	CLI_SECCOMP_USAGE
	"  -v, --verbose         more log lines\n"
	"  -q, --quiet           log errors only\n"
	"  -h, --help            this text\n";

struct fuse_mount_args {
	const char *mountpoint;
	bool counters;
	struct cli_fs_args fs;       /* the share (its dir is DIR) and --threads */
};

/* Returns 0, 1 after --help, or -EINVAL. */
static int parse_args(int argc, char **argv, struct fuse_mount_args *a)
{
	static const struct option own[] = {
		{ "counters", no_argument, NULL, 'C' },
		{ "seccomp", required_argument, NULL, CLI_OPT_SECCOMP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
	};
	struct option opts[ARRAY_SIZE(own) + CLI_FS_MAX_LONG_OPTIONS + 1] = { 0 };
	int c;

	memcpy(opts, own, sizeof(own));
	cli_fs_long_options(opts + ARRAY_SIZE(own), CLI_FS_FUSE);
	*a = (struct fuse_mount_args){ 0 };
	cli_fs_args_init(&a->fs);
	/* The kernel reads and writes the backing files itself where it can. */
	a->fs.share.server.extra_init_flags = FUSE_PASSTHROUGH;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", opts, NULL)) != -1) {
		int shared = cli_fs_take(&a->fs, c, optarg);
		if (shared < 0)
			return -EINVAL;
		if (shared == 0)
			continue;
		switch (c) {
		case 'C': a->counters = true; break;
		case CLI_OPT_SECCOMP:
			if (cli_seccomp_option(optarg))
				return -EINVAL;
			break;
		case 'v': log_threshold = LOG_DEBUG; break;
		case 'q': log_threshold = LOG_ERROR; break;
		case 'h': fputs(fuse_mount_usage, stdout); return 1;
		case ':':
			log_err("option %s needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			log_err("unknown option \"%s\" (see kvmini fuse-mount --help)", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (argc - optind != 2) {
		log_err("expected DIR and MOUNTPOINT (see kvmini fuse-mount --help)");
		return -EINVAL;
	}
	a->fs.share.dir = argv[optind];
	a->mountpoint = argv[optind + 1];
	return cli_fs_check(&a->fs);
}

static int check_dir(const char *what, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		log_err("%s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("%s %s is not a directory", what, path);
		return -ENOTDIR;
	}
	return 0;
}

/* The main thread's filter once the workers and the watcher run (each with
 * its own): what is left for it is waiting and unmounting. */
static int confine(void)
{
	struct errbuf eb = { 0 };
	int r = seccomp_filter_install(SECCOMP_FUSE_MAIN, &eb);

	if (r < 0)
		log_err("%s", eb.msg);
	return r;
}

static void visit_all(void *opaque, const struct counter_sink *sink)
{
	const struct fs_share *share = opaque;

	fuse_server_visit_counters(share->server, sink);
	fs_share_visit_counters(share, sink);
}

/* Until unmounted or stopped: SIGUSR1 dumps the counters, as for the vhost
 * subcommands, and the wait goes on. Returns what fuse_dev_wait does. */
static int wait_serving(struct fuse_dev *dev, struct fs_share *share, const sigset_t *sigs)
{
	int rc;

	while ((rc = fuse_dev_wait(dev, sigs)) == SIGUSR1)
		cli_counters_dump(visit_all, share, NULL);
	return rc;
}

/* Mount, serve until unmounted or signalled, tear down. */
static int serve(struct fuse_mount_args *a, struct fs_share *share)
{
	const char *dir = a->fs.share.dir;
	struct fuse_dev_opts dopts = { .source = dir, .threads = a->fs.threads };
	struct fuse_dev *dev;
	sigset_t stop;

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	sigaddset(&stop, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if (fuse_dev_mount(&dev, share->server, a->mountpoint, &dopts))
		return EXIT_RUNTIME;
	int rc = fuse_dev_start(dev);
	/* After the mount and with the stop signals blocked: the thread
	 * inherits the mask, and its writes go to the session descriptor. */
	if (!rc)
		fs_share_start_watch(share, dir);
	if (!rc)
		rc = confine();
	if (!rc) {
		log_info("serving %s at %s (%u threads)", dir, a->mountpoint,
			 a->fs.threads ? a->fs.threads : FUSE_DEV_DEFAULT_THREADS);
		rc = wait_serving(dev, share, &stop);
		if (rc > 0)
			log_info("%s: unmounting %s", strsignal(rc), a->mountpoint);
		else if (rc == 0)
			log_info("%s was unmounted", a->mountpoint);
	}
	/* Before the transport goes: the watcher writes on its descriptor. */
	fs_share_stop_watch(share);
	if (fuse_dev_destroy(dev)) {
		/* A worker is stuck in a request: leave without freeing what it uses. */
		fflush(NULL);
		_exit(rc < 0 ? EXIT_RUNTIME : 0);
	}
	return rc < 0 ? EXIT_RUNTIME : 0;
}

int cmd_fuse_mount(int argc, char **argv)
{
	struct fuse_mount_args a;
	struct fs_share share;
	char what[4200];
	int rc = parse_args(argc, argv, &a);

	if (rc)
		return rc > 0 ? 0 : EXIT_USAGE;
	if (check_dir("mount point", a.mountpoint))
		return EXIT_RUNTIME;
	/* A reply to a client gone away is an error return, not a kill. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(what, sizeof(what), "shared directory %s", a.fs.share.dir);
	if (fs_share_open(&share, &a.fs.share, what))
		return EXIT_RUNTIME;
	rc = serve(&a, &share);
	if (a.counters) {
		fuse_server_dump_counters(share.server, stderr);
		if (share.watch)
			host_watch_dump_counters(share.watch, stderr);
	}
	fs_share_close(&share);
	return rc;
}
