/*
 * kvmini's FUSE server on /dev/fuse beside the host directory itself, same
 * run, same filesystem:
 *   - metadata: create (open O_CREAT + close), stat, unlink of N small files,
 *     operations per second;
 *   - sequential write then read of one large file in 1 MiB blocks, MB/s.
 *
 * Both sides make the same syscalls on files of the same size, and the page
 * cache is treated the same way on both:
 *   - write: open, write() the file in 1 MiB blocks, close; timed up to the
 *     close (which, on the mount, waits for the data to reach the server's
 *     file). No fsync on either side: the data ends in the host's page cache
 *     in both cases. sync() runs, untimed, before every phase.
 *   - read, cold: the file is synced and dropped from the page cache with
 *     posix_fadvise(POSIX_FADV_DONTNEED) first: on the host side the file
 *     itself; on the mount side the host file behind the mount (share/big)
 *     and the mount's own file. Both then read from the disk. This is the
 *     figure the read target is checked on.
 *   - read, warm: the same file read again at once: both sides read data
 *     that is resident in the host's page cache. On the mount the kernel
 *     still goes through FUSE (with --cache auto it drops the mount's own
 *     copy at open); with passthrough (below) it reads the host file's pages.
 *     The target is checked on this figure too.
 *
 * The mount's options change what is measured, so the whole set runs once
 * per mode in --cache (default "auto,auto:no-passthrough,none"; a mode is a
 * --cache value, optionally with ":no-passthrough" and ":no-notify", the
 * flags of those names, and ":watch-files" (--watch files: a watch per
 * file, not per directory); "auto:no-notify" beside "auto" is the cost of
 * the host-change watcher):
 *   auto: kvmini's default. Attributes and entries cached for 1 s. On
 *         kernels with FUSE passthrough (Linux 6.9+), file data does not go
 *         through the server: at OPEN kvmini hands the kernel the descriptor
 *         it opened (confined to the share) and the kernel reads and writes
 *         that file itself; the server sees OPEN and RELEASE.
 *   auto:no-passthrough: every byte through the server: the client's page
 *         cache, reads in readahead-sized requests spliced from the file,
 *         writes in 1 MiB requests.
 *   none: nothing cached, direct I/O: a stat is two round trips, data moves
 *         in 1 MiB requests straight between the caller's buffer and the
 *         server.
 *
 * Each figure is the median of --rounds runs, host and mount interleaved.
 * Targets (issue 3): sequential read and write at least 50% of the host's,
 * metadata at least 20%. Metadata is shown per operation and as whole
 * create + stat + unlink cycles per second (the figure the target is checked
 * on). --check makes the run fail when the first mode misses a target.
 *
 * Needs root (mount). Without /dev/fuse or root it says SKIP and exits 0.
 *
 * --against PATH: the reference is libfuse's passthrough_ll (PATH, built by
 * bench/fuse_vs_libfuse.sh from the source libfuse3-dev ships) serving a
 * share of its own, instead of the host directory: mounted with
 * default_permissions as kvmini's is, its cache mode named like kvmini's
 * (none and metadata: cache=never), glibc's mmap threshold raised through
 * GLIBC_TUNABLES. Target then (the virtio-fs issue): create, stat and
 * unlink each at least 1.0x; data figures printed beside.
 *
 *   fuse_bench [--quick] [--size MIB] [--files N] [--rounds N] [--threads N]
 *              [--cache MODE[,MODE...]] [--dir DIR] [--kvmini PATH] [--against PATH]
 *              [--check]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1u << 20)

struct bench_opts {
	long size_mib;
	long files;
	int rounds;
	int threads;
	const char *cache;
	const char *dir;
	const char *kvmini;
	const char *against;   /* a libfuse passthrough_ll: the reference side */
	bool check;
};

struct figures {
	double create, stat, unlink;   /* operations per second */
	double write, read, read_warm; /* MB/s (10^6 bytes); read is cold */
};

#define MAX_ROUNDS 64

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "fuse_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- the workloads ---- */

static void file_name(char *buf, size_t size, const char *dir, long i)
{
	snprintf(buf, size, "%s/m%ld", dir, i);
}

static void metadata(const char *dir, long n, struct figures *f)
{
	char p[PATH_MAX];
	struct stat st;
	double t0 = now();

	for (long i = 0; i < n; i++) {
		file_name(p, sizeof(p), dir, i);
		int fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
		if (fd < 0)
			die(p);
		close(fd);
	}
	double t1 = now();
	for (long i = 0; i < n; i++) {
		file_name(p, sizeof(p), dir, i);
		if (stat(p, &st) < 0)
			die(p);
	}
	double t2 = now();
	for (long i = 0; i < n; i++) {
		file_name(p, sizeof(p), dir, i);
		if (unlink(p) < 0)
			die(p);
	}
	double t3 = now();
	f->create = n / (t1 - t0);
	f->stat = n / (t2 - t1);
	f->unlink = n / (t3 - t2);
}

/* Sync @path and drop its pages from the page cache (untimed). */
static void drop_cached(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		die(path);
	if (fsync(fd) < 0)
		die("fsync");
	int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (rc)
		fprintf(stderr, "fuse_bench: fadvise %s: %s\n", path, strerror(rc));
	close(fd);
}

/* Read all of @path in BLOCK calls; MB/s. */
static double read_file(const char *path, char *buf, long expect)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		die(path);
	double t0 = now();
	ssize_t n;
	long total = 0;
	while ((n = read(fd, buf, BLOCK)) > 0)
		total += n;
	double t1 = now();
	close(fd);
	if (n < 0)
		die("read");
	if (total != expect)
		fprintf(stderr, "fuse_bench: read %ld bytes of %ld\n", total, expect);
	return total / 1e6 / (t1 - t0);
}

/*
 * sequential() - write, cold read, warm read of @dir/big.
 * @backing: the host file behind @dir/big when @dir is the mount (dropped
 *           from the page cache too before the cold read), else NULL.
 */
static void sequential(const char *dir, const char *backing, long mib, char *buf,
		       struct figures *f)
{
	char p[PATH_MAX];
	long bytes = mib * (long)BLOCK;

	snprintf(p, sizeof(p), "%s/big", dir);
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		die(p);
	double t0 = now();
	for (long i = 0; i < mib; i++)
		if (write(fd, buf, BLOCK) != BLOCK)
			die("write");
	if (close(fd) < 0)
		die("close");
	double t1 = now();
	f->write = bytes / 1e6 / (t1 - t0);
	sync();
	drop_cached(p);
	if (backing)
		drop_cached(backing);
	f->read = read_file(p, buf, bytes);
	f->read_warm = read_file(p, buf, bytes);
	unlink(p);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median_of(const struct figures *runs, int n, size_t field)
{
	double v[MAX_ROUNDS];

	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&runs[i] + field);
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void medians(const struct figures *runs, int n, struct figures *m)
{
	m->create = median_of(runs, n, offsetof(struct figures, create));
	m->stat = median_of(runs, n, offsetof(struct figures, stat));
	m->unlink = median_of(runs, n, offsetof(struct figures, unlink));
	m->write = median_of(runs, n, offsetof(struct figures, write));
	m->read = median_of(runs, n, offsetof(struct figures, read));
	m->read_warm = median_of(runs, n, offsetof(struct figures, read_warm));
}

/* ---- the mount ---- */

static bool is_mounted(const char *mnt)
{
	char line[4096], dev[PATH_MAX], dir[PATH_MAX], type[64];
	FILE *f = fopen("/proc/self/mounts", "r");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%4095s %4095s %63s", dev, dir, type) == 3 &&
			!strcmp(dir, mnt) && !strncmp(type, "fuse", 4);
	fclose(f);
	return found;
}

static pid_t await_mount(pid_t pid, const char *mnt);

/* A mode's flag as kvmini's option: NULL for an unknown one. */
static const char *const *flag_args(const char *f)
{
	static const char *const no_pt[] = { "--no-passthrough", NULL };
	static const char *const no_notify[] = { "--no-notify", NULL };
	static const char *const files[] = { "--watch", "files", NULL };

	if (!strcmp(f, "no-passthrough"))
		return no_pt;
	if (!strcmp(f, "no-notify"))
		return no_notify;
	return !strcmp(f, "watch-files") ? files : NULL;
}

/* @mode: a --cache value, then any of ":no-passthrough", ":no-notify" and
 * ":watch-files" (kvmini's flags --no-passthrough, --no-notify and
 * --watch files). */
static pid_t start_kvmini(const struct bench_opts *o, const char *mode, const char *share,
			  const char *mnt)
{
	char threads[16], cache[64], flags[128];
	const char *argv[16];
	unsigned n = 0;
	pid_t pid;

	snprintf(threads, sizeof(threads), "%d", o->threads);
	snprintf(cache, sizeof(cache), "%.*s", (int)strcspn(mode, ":"), mode);
	argv[n++] = o->kvmini, argv[n++] = "fuse-mount", argv[n++] = share, argv[n++] = mnt;
	argv[n++] = "--threads", argv[n++] = threads, argv[n++] = "--cache", argv[n++] = cache;
	argv[n++] = "-q";
	snprintf(flags, sizeof(flags), "%s", mode + strlen(cache));
	for (char *save = NULL, *f = strtok_r(flags, ":", &save); f; f = strtok_r(NULL, ":", &save)) {
		const char *const *args = flag_args(f);
		if (!args) {
			fprintf(stderr, "fuse_bench: unknown mode %s\n", mode);
			return -1;
		}
		for (; *args && n < 15; args++)
			argv[n++] = *args;
		if (n > 12)
			return -1;
	}
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		execv(o->kvmini, (char *const *)argv);
		perror(o->kvmini);
		_exit(127);
	}
	return pid < 0 ? -1 : await_mount(pid, mnt);
}

/* End a FUSE server (kvmini or the reference) by its PID: its exit status. */
static int stop_server(pid_t pid)
{
	int status = 0;

	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Wait for @pid to mount @mnt (10 s); -1 after ending it when it does not. */
static pid_t await_mount(pid_t pid, const char *mnt)
{
	for (int i = 0; i < 200; i++) {
		if (is_mounted(mnt))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(50000);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return -1;
}

/*
 * The reference: libfuse's passthrough_ll (--against) serving @share on
 * @mnt in the foreground, as the issue runs it: default_permissions (as
 * kvmini's mount), its own cache mode named like kvmini's (auto, always,
 * never for none), and glibc's mmap threshold raised (the stock build
 * otherwise pays an mmap and its page faults for each read's buffer).
 */
static pid_t start_reference(const struct bench_opts *o, const char *mode, const char *share,
			     const char *mnt)
{
	char opts[PATH_MAX + 128], cache[64];

	snprintf(cache, sizeof(cache), "%.*s", (int)strcspn(mode, ":"), mode);
	if (!strcmp(cache, "none") || !strcmp(cache, "metadata"))
		snprintf(cache, sizeof(cache), "never");
	snprintf(opts, sizeof(opts), "source=%s,default_permissions,cache=%s", share, cache);
	pid_t pid = fork();
	if (pid == 0) {
		setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=4194304", 1);
		execl(o->against, o->against, "-f", "-o", opts, mnt, (char *)NULL);
		perror(o->against);
		_exit(127);
	}
	return pid < 0 ? -1 : await_mount(pid, mnt);
}

/* ---- setup and report ---- */

static void parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{ "quick", no_argument, NULL, 'Q' }, { "size", required_argument, NULL, 's' },
		{ "files", required_argument, NULL, 'n' }, { "rounds", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' }, { "cache", required_argument, NULL, 'c' },
		{ "dir", required_argument, NULL, 'd' }, { "kvmini", required_argument, NULL, 'k' },
		{ "check", no_argument, NULL, 'C' }, { "against", required_argument, NULL, 'A' },
		{ 0 },
	};
	int c;

	*o = (struct bench_opts){ .size_mib = 1024, .files = 10000, .rounds = 5, .threads = 2,
				  .cache = "auto,auto:no-passthrough,none" };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'Q': o->size_mib = 128; o->files = 2000; o->rounds = 3; break;
		case 's': o->size_mib = atol(optarg); break;
		case 'n': o->files = atol(optarg); break;
		case 'r': o->rounds = atoi(optarg); break;
		case 't': o->threads = atoi(optarg); break;
		case 'c': o->cache = optarg; break;
		case 'd': o->dir = optarg; break;
		case 'k': o->kvmini = optarg; break;
		case 'C': o->check = true; break;
		case 'A': o->against = optarg; break;
		default: fprintf(stderr, "fuse_bench: see the comment at the top of bench/fuse_bench.c\n"); exit(2);
		}
	}
	if (o->size_mib < 1 || o->files < 1 || o->rounds < 1 || o->rounds > MAX_ROUNDS ||
	    o->threads < 1) {
		fprintf(stderr, "fuse_bench: sizes, counts and rounds (1..%d) must be positive\n",
			MAX_ROUNDS);
		exit(2);
	}
}

/* build/kvmini beside build/bench/fuse_bench. */
static const char *default_kvmini(const char *argv0)
{
	static char path[PATH_MAX + 16];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return argv0;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/../kvmini", self);
	return path;
}

enum { M_CREATE, M_STAT, M_UNLINK, M_CYCLE, M_WRITE, M_READ, M_READ_WARM, M_COUNT };

static const char *const metric_names[M_COUNT] = {
	"create", "stat", "unlink", "metadata cycle", "sequential write", "seq read (cold)",
	"seq read (warm)",
};

/* Whole create + stat + unlink cycles per second: the metadata figure as
 * one number (a file's life), beside the three operations. */
static double cycles(const struct figures *f)
{
	if (f->create <= 0 || f->stat <= 0 || f->unlink <= 0)
		return 0;
	return 1 / (1 / f->create + 1 / f->stat + 1 / f->unlink);
}

/* A figure beside its reference; a negative @target: printed, no target. */
static bool line(const char *what, const char *unit, double host, double fuse, double target)
{
	double ratio = host > 0 ? fuse / host : 0;
	bool ok = ratio >= target;

	printf("%-18s %12.0f %12.0f  %-5s %6.1f%%", what, host, fuse, unit, 100 * ratio);
	if (target < 0)
		printf("  (beside)\n");
	else
		printf("  (target %.0f%%: %s)\n", 100 * target, ok ? "met" : "MISSED");
	return ok;
}

/* Print one mode's table; @mode_bit is set in @met[i] for each figure
 * meeting its target. */
static void report(const struct bench_opts *o, const char *cache, const struct figures *h,
		   const struct figures *f, unsigned *met, unsigned mode_bit)
{
	bool ok[M_COUNT];
	/* Against the host: the FUSE issue's floors. Against passthrough_ll:
	 * the virtio-fs issue's, every metadata operation at least its
	 * speed, data beside. */
	double meta = o->against ? 1.0 : 0.20, data = o->against ? -1 : 0.50;

	printf("\nkvmini fuse-mount --threads %d --cache %s vs %s, median of %d\n", o->threads, cache,
	       o->against ? "libfuse's passthrough_ll (default_permissions)" : "the host directory",
	       o->rounds);
	printf("%ld files for metadata, a %ld MiB file in 1 MiB blocks for sequential I/O\n",
	       o->files, o->size_mib);
	printf("%-18s %12s %12s  %-5s %7s\n", "", o->against ? "libfuse" : "host", "fuse", "unit",
	       "ratio");
	ok[M_CREATE] = line("create", "op/s", h->create, f->create, meta);
	ok[M_STAT] = line("stat", "op/s", h->stat, f->stat, meta);
	ok[M_UNLINK] = line("unlink", "op/s", h->unlink, f->unlink, meta);
	ok[M_CYCLE] = line("metadata cycle", "1/s", cycles(h), cycles(f), meta);
	ok[M_WRITE] = line("sequential write", "MB/s", h->write, f->write, data);
	ok[M_READ] = line("seq read (cold)", "MB/s", h->read, f->read, data);
	ok[M_READ_WARM] = line("seq read (warm)", "MB/s", h->read_warm, f->read_warm, data);
	for (int i = 0; i < M_COUNT; i++)
		met[i] |= ok[i] ? mode_bit : 0;
}

/* One mode: mount, interleave reference and mount rounds, unmount. The
 * reference is the host directory, or (--against) a passthrough_ll mount
 * of a share of its own. Returns kvmini's exit status (or -1 when a side
 * did not mount). */
static int run_mode(const struct bench_opts *o, const char *cache, const char *base, char *buf,
		    struct figures *h, struct figures *f)
{
	char share[PATH_MAX + 16], mnt[PATH_MAX + 16], host[PATH_MAX + 16];
	char backing[PATH_MAX + 32], ref_share[PATH_MAX + 16], ref_backing[PATH_MAX + 32];
	struct figures hr[MAX_ROUNDS], fr[MAX_ROUNDS];

	snprintf(share, sizeof(share), "%s/share", base);
	snprintf(backing, sizeof(backing), "%s/big", share);
	snprintf(mnt, sizeof(mnt), "%s/mnt", base);
	snprintf(host, sizeof(host), "%s/host", base);
	snprintf(ref_share, sizeof(ref_share), "%s/refshare", base);
	snprintf(ref_backing, sizeof(ref_backing), "%s/big", ref_share);
	if (mkdir(share, 0755) || mkdir(mnt, 0755) || mkdir(host, 0755) ||
	    (o->against && mkdir(ref_share, 0755)))
		die("mkdir");
	pid_t ref = o->against ? start_reference(o, cache, ref_share, host) : 0;
	pid_t pid = ref >= 0 ? start_kvmini(o, cache, share, mnt) : -1;
	int rc = -1;
	if (pid >= 0) {
		/* sync before each phase: writeback of the previous one must not
		 * land in the next one's time. */
		for (int i = 0; i < o->rounds; i++) {
			sync();
			metadata(host, o->files, &hr[i]);
			sync();
			sequential(host, o->against ? ref_backing : NULL, o->size_mib, buf, &hr[i]);
			sync();
			metadata(mnt, o->files, &fr[i]);
			sync();
			sequential(mnt, backing, o->size_mib, buf, &fr[i]);
		}
		medians(hr, o->rounds, h);
		medians(fr, o->rounds, f);
		rc = stop_server(pid);
	} else {
		fprintf(stderr, "fuse_bench: %s did not mount %s\n", ref < 0 ? o->against : o->kvmini,
			ref < 0 ? host : mnt);
	}
	if (ref > 0 && stop_server(ref) != 0)
		fprintf(stderr, "fuse_bench: %s did not end cleanly\n", o->against);
	rmdir(share), rmdir(mnt), rmdir(host);
	if (o->against)
		rmdir(ref_share);
	return rc;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	char base[PATH_MAX], modes[256];
	unsigned met[M_COUNT] = { 0 };
	const char *mode_names[8];
	unsigned nmodes = 0;
	int rc = 0;

	parse(argc, argv, &o);
	if (!o.kvmini)
		o.kvmini = default_kvmini(argv[0]);
	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) < 0) {
		printf("SKIP: fuse_bench needs root and /dev/fuse\n");
		return 0;
	}
	snprintf(base, sizeof(base), "%s/kvmini-fuse-bench.XXXXXX", o.dir ? o.dir : "/tmp");
	if (!mkdtemp(base))
		die(base);
	char *buf = aligned_alloc(4096, BLOCK);
	for (unsigned i = 0; i < BLOCK; i++)
		buf[i] = (char)(i * 131 + (i >> 12));
	printf("Same syscalls and sizes on both sides. Writes: open, write() in 1 MiB blocks,\n"
	       "close(), timed to the close; no fsync on either side. Reads, cold: the file is\n"
	       "fsync()ed and dropped with POSIX_FADV_DONTNEED first (on the mount side: the\n"
	       "mount's file and the host file behind it), so both read from disk. Reads, warm:\n"
	       "read again at once, both with the data in the host's page cache. sync() before\n"
	       "every phase. Host and mount rounds interleaved; medians.\n");
	snprintf(modes, sizeof(modes), "%s", o.cache);
	for (char *save, *mode = strtok_r(modes, ",", &save); mode && nmodes < 8;
	     mode = strtok_r(NULL, ",", &save)) {
		struct figures h = { 0 }, f = { 0 };
		unsigned bit = 1u << nmodes;
		mode_names[nmodes++] = mode;
		int st = run_mode(&o, mode, base, buf, &h, &f);
		if (st) {
			printf("kvmini --cache %s: %s %d\n", mode, st < 0 ? "did not mount" : "exit status", st);
			rc = 1;
			continue;
		}
		report(&o, mode, &h, &f, met, bit);
	}
	rmdir(base);
	/* The targets of the issue, in the first (default) mode: metadata (as
	 * whole cycles), write, read cold and warm. */
	bool all = o.against ? met[M_CREATE] & met[M_STAT] & met[M_UNLINK] & 1u
			     : met[M_CYCLE] & met[M_WRITE] & met[M_READ] & met[M_READ_WARM] & 1u;
	printf("\ntarget met with --cache:\n");
	for (int i = 0; i < M_COUNT; i++) {
		printf("  %-18s", metric_names[i]);
		if (!met[i])
			printf(" (no mode)");
		for (unsigned m = 0; m < nmodes; m++)
			if (met[i] & (1u << m))
				printf(" %s", mode_names[m]);
		printf("\n");
	}
	return rc ? 1 : (o.check && !all) ? 1 : 0;
}
