/*
 * Helper for the /dev/fuse suites: the file operations a shell cannot do
 * directly, each printing what it observed so that a run on the FUSE mount
 * and a run on a plain host directory can be compared line by line.
 *
 *   rename2 OLD NEW none|noreplace|exchange
 *   mkmany DIR N                 create DIR/f0 .. DIR/f(N-1), each holding its name
 *   checkmany DIR N              read them all back
 *   writers FILE NPROC CHUNK NCHUNKS   NPROC processes write interleaved chunks
 *   verify FILE CHUNK NCHUNKS    check the pattern the writers leave
 *   sparse FILE                  writes far apart, then SEEK_DATA/SEEK_HOLE
 *   bigoff FILE GIB              write and read back at GIB GiB
 *   xattr set|get|list|remove FILE [NAME [VALUE]]
 *   attack MNT CANARY            chroot into MNT and try to reach CANARY's text
 *   race SHARE MNT SECONDS CANARY  swap SHARE/swap between a directory and
 *                                a symlink out while chrooted readers open
 *                                MNT/swap/f
 *
 * Errors print as "error: NAME" (the errno name), so both runs print the same.
 * attack and race print "attempts N escapes M".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static int report(int rc)
{
	if (rc < 0) {
		printf("error: %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int cmd_rename2(char **argv)
{
	unsigned flags = !strcmp(argv[2], "noreplace") ? RENAME_NOREPLACE :
			 !strcmp(argv[2], "exchange") ? RENAME_EXCHANGE : 0;

	return report(renameat2(AT_FDCWD, argv[0], AT_FDCWD, argv[1], flags));
}

static int cmd_mkmany(char **argv)
{
	int n = atoi(argv[1]);
	char p[4096], name[32];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(p, sizeof(p), "%s/%s", argv[0], name);
		int fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
		if (fd < 0 || write(fd, name, strlen(name)) != (ssize_t)strlen(name))
			return report(-1);
		close(fd);
	}
	return report(0);
}

static int cmd_checkmany(char **argv)
{
	int n = atoi(argv[1]), bad = 0;
	char p[4096], name[32], buf[64];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(p, sizeof(p), "%s/%s", argv[0], name);
		int fd = open(p, O_RDONLY);
		ssize_t r = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
		if (r != (ssize_t)strlen(name) || memcmp(buf, name, (size_t)r))
			bad++;
		if (fd >= 0)
			close(fd);
	}
	printf("bad %d\n", bad);
	return bad != 0;
}

static uint8_t chunk_byte(long chunk, long i)
{
	return (uint8_t)(chunk * 31 + i * 7 + (i >> 9));
}

static int cmd_writers(char **argv)
{
	int nproc = atoi(argv[1]);
	long chunk = atol(argv[2]), nchunks = atol(argv[3]);
	int fd = open(argv[0], O_CREAT | O_WRONLY | O_TRUNC, 0644);

	if (fd < 0)
		return report(-1);
	for (int p = 0; p < nproc; p++) {
		if (fork() == 0) {
			uint8_t *buf = malloc((size_t)chunk);
			for (long c = p; c < nchunks; c += nproc) {
				for (long i = 0; i < chunk; i++)
					buf[i] = chunk_byte(c, i);
				if (pwrite(fd, buf, (size_t)chunk, c * chunk) != chunk)
					_exit(1);
			}
			_exit(0);
		}
	}
	int failed = 0, status;
	while (wait(&status) > 0)
		failed += !WIFEXITED(status) || WEXITSTATUS(status);
	close(fd);
	printf("writers failed %d\n", failed);
	return failed != 0;
}

static int cmd_verify(char **argv)
{
	long chunk = atol(argv[1]), nchunks = atol(argv[2]), bad = 0;
	uint8_t *buf = malloc((size_t)chunk);
	int fd = open(argv[0], O_RDONLY);

	if (fd < 0)
		return report(-1);
	for (long c = 0; c < nchunks; c++) {
		if (pread(fd, buf, (size_t)chunk, c * chunk) != chunk) {
			bad++;
			continue;
		}
		for (long i = 0; i < chunk; i++) {
			if (buf[i] != chunk_byte(c, i)) {
				bad++;
				break;
			}
		}
	}
	printf("bad chunks %ld\n", bad);
	return bad != 0;
}

static int cmd_sparse(char **argv)
{
	const off_t offs[] = { 0, 1 << 20, (off_t)3 << 30 };
	int fd = open(argv[0], O_CREAT | O_RDWR | O_TRUNC, 0644);

	if (fd < 0)
		return report(-1);
	for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		char buf[4096];
		memset(buf, 'a' + (int)i, sizeof(buf));
		if (pwrite(fd, buf, sizeof(buf), offs[i]) != sizeof(buf))
			return report(-1);
	}
	struct stat st;
	fstat(fd, &st);
	printf("size %lld sparse %s\n", (long long)st.st_size,
	       st.st_blocks * 512 < st.st_size / 2 ? "yes" : "no");
	for (off_t pos = 0; pos < st.st_size;) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			break;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		printf("data %lld..%lld\n", (long long)data, (long long)hole);
		pos = hole;
	}
	char b = 0;
	if (pread(fd, &b, 1, (off_t)2 << 30) != 1 || b != 0)
		printf("hole does not read as zero\n");
	close(fd);
	return 0;
}

static int cmd_bigoff(char **argv)
{
	off_t off = (off_t)atol(argv[1]) << 30;
	char msg[] = "far away", buf[sizeof(msg)] = { 0 };
	int fd = open(argv[0], O_CREAT | O_RDWR | O_TRUNC, 0644);

	if (fd < 0 || pwrite(fd, msg, sizeof(msg), off) != sizeof(msg))
		return report(-1);
	close(fd);
	fd = open(argv[0], O_RDONLY);
	if (fd < 0 || pread(fd, buf, sizeof(buf), off) != sizeof(buf))
		return report(-1);
	struct stat st;
	fstat(fd, &st);
	close(fd);
	printf("size %lld read \"%s\"\n", (long long)st.st_size, buf);
	return 0;
}

static int cmd_xattr(int argc, char **argv)
{
	char buf[65536];

	if (!strcmp(argv[0], "set") && argc >= 4)
		return report(setxattr(argv[1], argv[2], argv[3], strlen(argv[3]), 0));
	if (!strcmp(argv[0], "create") && argc >= 4)
		return report(setxattr(argv[1], argv[2], argv[3], strlen(argv[3]), XATTR_CREATE));
	if (!strcmp(argv[0], "get") && argc >= 3) {
		ssize_t n = getxattr(argv[1], argv[2], buf, sizeof(buf) - 1);
		if (n < 0)
			return report(-1);
		buf[n] = '\0';
		printf("value \"%s\"\n", buf);
		return 0;
	}
	if (!strcmp(argv[0], "list") && argc >= 2) {
		ssize_t n = listxattr(argv[1], buf, sizeof(buf));
		if (n < 0)
			return report(-1);
		/* Only user.* is compared: the host directory shows security.* too. */
		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
			if (!strncmp(buf + i, "user.", 5))
				printf("name %s\n", buf + i);
		return 0;
	}
	if (!strcmp(argv[0], "remove") && argc >= 3)
		return report(removexattr(argv[1], argv[2]));
	fprintf(stderr, "xattr: bad arguments\n");
	return 2;
}

/* ---- confinement ---- */

struct tally {
	long attempts;
	long escapes;
};

/* Open @path and see whether what comes back is the canary. */
static void try_read(struct tally *t, const char *canary, const char *path)
{
	char buf[256];

	t->attempts++;
	int fd = open(path, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		if (strstr(buf, canary)) {
			t->escapes++;
			fprintf(stderr, "ESCAPE: read the canary through %s\n", path);
		}
	}
}

/* Try to create a file through @path; the caller checks the outside
 * directory afterwards, this counts the attempt. */
static void try_create(struct tally *t, const char *path)
{
	t->attempts++;
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	if (fd >= 0) {
		if (write(fd, "created", 7) < 0)
			fprintf(stderr, "write %s: %s\n", path, strerror(errno));
		close(fd);
	}
}

/* List @path; an entry named like the canary file means we are outside. */
static void try_list(struct tally *t, const char *path, const char *marker)
{
	t->attempts++;
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)))
		if (!strcmp(de->d_name, marker)) {
			t->escapes++;
			fprintf(stderr, "ESCAPE: listed %s in %s\n", marker, path);
		}
	closedir(d);
}

static const char *const read_paths[] = {
	"/canary", "/../canary", "/../../../canary", "../canary", "/../outside/canary",
	"/abs-file", "/abs-dir/canary", "/rel-file", "/rel-dir/canary", "/sub/rel-up",
	"/sub/rel-up-dir/canary", "/proc-cwd/canary", "/proc-root-out", "/proc-fd3",
	"/proc-fd-up/canary", "/hl-abs", "/loop/canary", "/sub/../../canary",
	"/abs-dir/../outside/canary", "/self/../../canary",
};

static const char *const create_paths[] = {
	"/abs-dir/created-abs", "/rel-dir/created-rel", "/sub/rel-up-dir/created-sub",
	"/../created-dotdot", "/proc-cwd/created-proc", "/abs-new-file",
};

static int cmd_attack(char **argv)
{
	const char *mnt = argv[0], *canary = argv[1];
	struct tally t = { 0 };
	char buf[64];

	if (chroot(mnt) < 0 || chdir("/") < 0) {
		perror("chroot");
		return 2;
	}
	for (unsigned i = 0; i < sizeof(read_paths) / sizeof(read_paths[0]); i++)
		try_read(&t, canary, read_paths[i]);
	for (unsigned i = 0; i < sizeof(create_paths) / sizeof(create_paths[0]); i++)
		try_create(&t, create_paths[i]);
	/* ".." at the root, many times over, then list. */
	for (int i = 0; i < 8; i++) {
		t.attempts++;
		if (chdir("..") < 0)
			break;
	}
	try_list(&t, ".", "canary");
	try_list(&t, "/abs-dir", "canary");
	try_list(&t, "/rel-dir", "canary");
	/* Hard links made through the mount, to links that point out. */
	t.attempts++;
	if (link("/abs-file", "/hl-made") == 0)
		try_read(&t, canary, "/hl-made");
	t.attempts++;
	if (link("/rel-dir/canary", "/hl-made2") == 0)
		try_read(&t, canary, "/hl-made2");
	/* Symlinks made through the mount, then followed. */
	t.attempts++;
	if (symlink("../../../../canary", "/made-rel") == 0)
		try_read(&t, canary, "/made-rel");
	/* Rename a link pointing out over a directory name, then use it. */
	t.attempts++;
	if (rename("/abs-dir", "/moved-abs-dir") == 0) {
		try_read(&t, canary, "/moved-abs-dir/canary");
		if (rename("/moved-abs-dir", "/abs-dir") < 0)
			perror("rename back");
	}
	/* Our own /proc/self/fd: descriptors of the mount only. */
	int fd = open("/sub", O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		t.attempts++;
		int fd2 = openat(fd, "../../canary", O_RDONLY);
		if (fd2 >= 0) {
			ssize_t n = read(fd2, buf, sizeof(buf) - 1);
			if (n > 0 && (buf[n] = '\0', strstr(buf, canary)))
				t.escapes++;
			close(fd2);
		}
		close(fd);
	}
	printf("attempts %ld escapes %ld\n", t.attempts, t.escapes);
	return t.escapes != 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Host side: flip SHARE/swap between a real directory and a symlink to the
 * outside directory as fast as renames go. */
static void swapper(const char *share, double until)
{
	char sw[4096], real[4096], link_[4096], tmp[4096];

	snprintf(sw, sizeof(sw), "%s/swap", share);
	snprintf(real, sizeof(real), "%s/swap-real", share);
	snprintf(link_, sizeof(link_), "%s/swap-link", share);
	snprintf(tmp, sizeof(tmp), "%s/swap-tmp", share);
	while (now() < until) {
		renameat2(AT_FDCWD, real, AT_FDCWD, sw, RENAME_EXCHANGE);
		renameat2(AT_FDCWD, link_, AT_FDCWD, sw, RENAME_EXCHANGE);
		renameat2(AT_FDCWD, real, AT_FDCWD, sw, RENAME_EXCHANGE);
		renameat2(AT_FDCWD, link_, AT_FDCWD, sw, RENAME_EXCHANGE);
	}
}

/* Guest side: keep opening swap/f and listing swap/. */
static void reader(const char *mnt, const char *canary, double until, struct tally *t)
{
	if (chroot(mnt) < 0 || chdir("/") < 0)
		_exit(2);
	while (now() < until) {
		try_read(t, canary, "/swap/f");
		try_read(t, canary, "/swap/../canary");
		t->attempts++;
		int fd = open("/swap", O_RDONLY | O_DIRECTORY);
		if (fd >= 0) {
			int f = openat(fd, "f", O_RDONLY);
			if (f >= 0) {
				char buf[64];
				ssize_t n = read(f, buf, sizeof(buf) - 1);
				if (n > 0 && (buf[n] = '\0', strstr(buf, canary))) {
					t->escapes++;
					fprintf(stderr, "ESCAPE: swap/f via dirfd\n");
				}
				close(f);
			}
			close(fd);
		}
	}
}

static int cmd_race(char **argv)
{
	const char *share = argv[0], *mnt = argv[1], *canary = argv[3];
	double until = now() + atof(argv[2]);
	struct tally *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t r[2];

	for (int i = 0; i < 2; i++) {
		r[i] = fork();
		if (r[i] == 0) {
			struct tally mine = { 0 };
			reader(mnt, canary, until, &mine);
			__atomic_add_fetch(&t->attempts, mine.attempts, __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&t->escapes, mine.escapes, __ATOMIC_SEQ_CST);
			_exit(0);
		}
	}
	swapper(share, until);
	for (int i = 0; i < 2; i++)
		waitpid(r[i], NULL, 0);
	printf("attempts %ld escapes %ld\n", t->attempts, t->escapes);
	return t->escapes != 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: fuse_helper COMMAND ARGS...\n");
		return 2;
	}
	const char *cmd = argv[1];
	argv += 2;
	argc -= 2;
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(cmd, "rename2") && argc == 3)
		return cmd_rename2(argv);
	if (!strcmp(cmd, "mkmany") && argc == 2)
		return cmd_mkmany(argv);
	if (!strcmp(cmd, "checkmany") && argc == 2)
		return cmd_checkmany(argv);
	if (!strcmp(cmd, "writers") && argc == 4)
		return cmd_writers(argv);
	if (!strcmp(cmd, "verify") && argc == 3)
		return cmd_verify(argv);
	if (!strcmp(cmd, "sparse") && argc == 1)
		return cmd_sparse(argv);
	if (!strcmp(cmd, "bigoff") && argc == 2)
		return cmd_bigoff(argv);
	if (!strcmp(cmd, "xattr") && argc >= 2)
		return cmd_xattr(argc, argv);
	if (!strcmp(cmd, "attack") && argc == 2)
		return cmd_attack(argv);
	if (!strcmp(cmd, "race") && argc == 4)
		return cmd_race(argv);
	fprintf(stderr, "fuse_helper: unknown command or arguments: %s\n", cmd);
	return 2;
}
