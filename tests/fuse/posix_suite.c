/*
 * posix_suite DIR [CATEGORY...]: a table-driven POSIX conformance test,
 * run as root, whose transcript is compared between a plain host directory
 * and a FUSE mount of another one (tests/fuse/test_posix.sh). It checks
 * nothing by itself: it prints what happened, deterministically, so that
 * two filesystems that behave alike print the same bytes.
 *
 * Each category runs in DIR/CATEGORY, made fresh (mode 0755, root's), one
 * step at a time. A step is an identity, an operation and its arguments.
 * The operation runs in a child that dropped to the identity's ids the way
 * pjdfstest does (setgroups, setresgid, setresuid), so the kernel's own
 * permission rules apply; the parent, as root, lstat()s the step's paths
 * and their parent directories before and after. One line per step:
 *
 *   CATEGORY/NN WHO OP ARGS -> ok|ERRNO [what the operation saw]
 *       PATH: TYPE PERM UID:GID n=LINKS [s=SIZE] [rdev=MAJ,MIN] a? m? c? m?c
 *
 * Times are never printed as values: each of atime, mtime and ctime is
 * '=' (unchanged), '+' (later) or '-' (earlier) against the lstat before
 * the step, "new" for a path that appeared; m?c orders mtime and ctime.
 * A short sleep before each step lets a change show as '+' whatever the
 * timestamp granularity. Inode numbers, block counts, directory sizes and
 * absolute times are left out: they differ between any two directories.
 *
 * Argument tokens: @Nk is a name of k bytes ('n's), @Dk/REST a path of k
 * nested 255-byte directory names ('d's) and then REST. Results print the
 * token, not its expansion.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARGS 5
#define EXTRA_LEN 512

/* ---- identities ---- */

enum who { R, U1, U1X, U2 };

struct identity {
	const char *name;
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t groups[2];
};

/* Ids no system account has; u1x is u1 with a supplementary group 2000. */
static const struct identity identities[] = {
	[R] = { "root", 0, 0, 1, { 0 } },
	[U1] = { "u1", 1000, 1000, 1, { 1000 } },
	[U1X] = { "u1x", 1000, 1000, 2, { 1000, 2000 } },
	[U2] = { "u2", 1001, 1001, 1, { 1001 } },
};

/* Become @id for good (the child that runs one step). */
static int become(const struct identity *id)
{
	if (setgroups((size_t)id->ngroups, id->groups) < 0 ||
	    setresgid(id->gid, id->gid, id->gid) < 0 || setresuid(id->uid, id->uid, id->uid) < 0)
		return -errno;
	return 0;
}

/* ---- arguments ---- */

/* The expansion of token @arg in @buf (see the header), or @arg itself. */
static const char *expand(const char *arg, char *buf, size_t len)
{
	char *end;
	long k;

	if (arg[0] != '@')
		return arg;
	k = strtol(arg + 2, &end, 10);
	if (arg[1] == 'N' && k > 0 && (size_t)k < len) {
		memset(buf, 'n', (size_t)k);
		buf[k] = '\0';
		return buf;
	}
	if (arg[1] == 'D' && k > 0 && (size_t)k * 256 + strlen(end) < len) {
		size_t o = 0;
		for (long i = 0; i < k; i++) {
			memset(buf + o, 'd', 255);
			o += 255;
			buf[o++] = '/';
		}
		snprintf(buf + o, len - o, "%s", *end == '/' ? end + 1 : end);
		if (!*end)
			buf[o - 1] = '\0';
		return buf;
	}
	return arg;
}

static mode_t num(const char *s)
{
	return (mode_t)strtoul(s, NULL, 8);
}

static long dec(const char *s)
{
	return strtol(s, NULL, 10);
}

/* open(2) flags by name, '|'-separated. */
static int open_flags(const char *s)
{
	static const struct {
		const char *name;
		int flag;
	} names[] = {
		{ "O_RDONLY", O_RDONLY }, { "O_WRONLY", O_WRONLY }, { "O_RDWR", O_RDWR },
		{ "O_CREAT", O_CREAT }, { "O_EXCL", O_EXCL }, { "O_TRUNC", O_TRUNC },
		{ "O_APPEND", O_APPEND }, { "O_DIRECTORY", O_DIRECTORY },
		{ "O_NOFOLLOW", O_NOFOLLOW }, { "O_NONBLOCK", O_NONBLOCK },
		{ "O_PATH", O_PATH }, { "O_NOATIME", O_NOATIME },
	};
	int flags = 0;

	while (*s) {
		size_t n = strcspn(s, "|");
		for (size_t i = 0; i < ARRAY_SIZE(names); i++)
			if (strlen(names[i].name) == n && !strncmp(names[i].name, s, n))
				flags |= names[i].flag;
		s += n + (s[n] == '|');
	}
	return flags;
}

/* ---- operations ---- */

/* What a step's operation gets: expanded arguments, and room for what it
 * saw beyond success or failure. */
struct call {
	const char *a[MAX_ARGS];
	char extra[EXTRA_LEN];
};

static int sys(int rc)
{
	return rc < 0 ? -errno : 0;
}

static int with_fd(int fd, int rc)
{
	if (fd >= 0)
		close(fd);
	return rc;
}

static int op_create(struct call *c)
{
	int fd = open(c->a[0], O_CREAT | O_EXCL | O_WRONLY, num(c->a[1]));

	return with_fd(fd, sys(fd));
}

static int op_open(struct call *c)
{
	int fd = open(c->a[0], open_flags(c->a[1]), c->a[2] ? num(c->a[2]) : 0);

	return with_fd(fd, sys(fd));
}

/* Write @a[1] at offset 0 (or at the end with O_APPEND @flags). */
static int write_data(struct call *c, int flags)
{
	int fd = open(c->a[0], O_WRONLY | flags);

	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, c->a[1], strlen(c->a[1]));
	return with_fd(fd, n < 0 ? -errno : 0);
}

static int op_write(struct call *c)
{
	return write_data(c, 0);
}

static int op_append(struct call *c)
{
	return write_data(c, O_APPEND);
}

static int op_read(struct call *c)
{
	char buf[64];
	int fd = open(c->a[0], O_RDONLY);

	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n >= 0) {
		buf[n] = '\0';
		snprintf(c->extra, sizeof(c->extra), "\"%s\"", buf);
	}
	return with_fd(fd, n < 0 ? -errno : 0);
}

static int op_truncate(struct call *c)
{
	return sys(truncate(c->a[0], dec(c->a[1])));
}

static int op_ftruncate(struct call *c)
{
	int fd = open(c->a[0], O_WRONLY);

	if (fd < 0)
		return -errno;
	return with_fd(fd, sys(ftruncate(fd, dec(c->a[1]))));
}

static int op_mkdir(struct call *c)
{
	return sys(mkdir(c->a[0], num(c->a[1])));
}

static int op_rmdir(struct call *c)
{
	return sys(rmdir(c->a[0]));
}

static int op_mkfifo(struct call *c)
{
	return sys(mkfifo(c->a[0], num(c->a[1])));
}

/* mknod PATH reg|fifo|sock|chr|blk MODE [MAJOR MINOR] */
static int op_mknod(struct call *c)
{
	static const struct {
		const char *name;
		mode_t type;
	} types[] = { { "reg", S_IFREG }, { "fifo", S_IFIFO }, { "sock", S_IFSOCK },
		      { "chr", S_IFCHR }, { "blk", S_IFBLK } };
	mode_t type = 0;

	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (!strcmp(types[i].name, c->a[1]))
			type = types[i].type;
	dev_t dev = c->a[3] ? makedev(dec(c->a[3]), dec(c->a[4])) : 0;
	return sys(mknod(c->a[0], type | num(c->a[2]), dev));
}

static int op_link(struct call *c)
{
	return sys(link(c->a[0], c->a[1]));
}

static int op_symlink(struct call *c)
{
	return sys(symlink(c->a[0], c->a[1]));
}

static int op_unlink(struct call *c)
{
	return sys(unlink(c->a[0]));
}

static int op_readlink(struct call *c)
{
	char buf[256];
	ssize_t n = readlink(c->a[0], buf, sizeof(buf) - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	snprintf(c->extra, sizeof(c->extra), "\"%s\"", buf);
	return 0;
}

static int op_rename(struct call *c)
{
	return sys(rename(c->a[0], c->a[1]));
}

static int op_rename2(struct call *c)
{
	unsigned flags = !strcmp(c->a[2], "noreplace") ? RENAME_NOREPLACE :
			 !strcmp(c->a[2], "exchange") ? RENAME_EXCHANGE : 0;

	return sys(renameat2(AT_FDCWD, c->a[0], AT_FDCWD, c->a[1], flags));
}

static int op_chmod(struct call *c)
{
	return sys(chmod(c->a[0], num(c->a[1])));
}

static int op_chown(struct call *c)
{
	return sys(chown(c->a[0], (uid_t)dec(c->a[1]), (gid_t)dec(c->a[2])));
}

static int op_lchown(struct call *c)
{
	return sys(lchown(c->a[0], (uid_t)dec(c->a[1]), (gid_t)dec(c->a[2])));
}

/* A utimensat time: "now", "omit", or seconds. */
static struct timespec ts_of(const char *s)
{
	if (!strcmp(s, "now"))
		return (struct timespec){ .tv_nsec = UTIME_NOW };
	if (!strcmp(s, "omit"))
		return (struct timespec){ .tv_nsec = UTIME_OMIT };
	return (struct timespec){ .tv_sec = dec(s), .tv_nsec = 500 };
}

/* utimens PATH ATIME MTIME [nofollow], or PATH null (times NULL). */
static int op_utimens(struct call *c)
{
	int flags = c->a[3] && !strcmp(c->a[3], "nofollow") ? AT_SYMLINK_NOFOLLOW : 0;
	struct timespec t[2];

	if (!strcmp(c->a[1], "null"))
		return sys(utimensat(AT_FDCWD, c->a[0], NULL, flags));
	t[0] = ts_of(c->a[1]);
	t[1] = ts_of(c->a[2]);
	return sys(utimensat(AT_FDCWD, c->a[0], t, flags));
}

/* A time for printing: its value when the suite set it (before 2000,
 * so never "now"), else only that it is recent. */
static void time_text(char *buf, size_t len, const struct timespec *t)
{
	if (t->tv_sec < 946684800)
		snprintf(buf, len, "%lld.%09ld", (long long)t->tv_sec, t->tv_nsec);
	else
		snprintf(buf, len, "recent");
}

static int op_times(struct call *c)
{
	struct stat st;
	char a[32], m[32];

	if (lstat(c->a[0], &st) < 0)
		return -errno;
	time_text(a, sizeof(a), &st.st_atim);
	time_text(m, sizeof(m), &st.st_mtim);
	snprintf(c->extra, sizeof(c->extra), "a=%s m=%s", a, m);
	return 0;
}

static int op_access(struct call *c)
{
	int mode = 0;

	for (const char *p = c->a[1]; *p; p++)
		mode |= *p == 'r' ? R_OK : *p == 'w' ? W_OK : *p == 'x' ? X_OK : 0;
	return sys(access(c->a[0], mode));
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory's entries, sorted, "." and ".." left out. */
static int op_readdir(struct call *c)
{
	char *names[32];
	size_t n = 0, o = 0;
	DIR *d = opendir(c->a[0]);
	struct dirent *e;

	if (!d)
		return -errno;
	while ((e = readdir(d)) && n < ARRAY_SIZE(names))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    (names[n] = strdup(e->d_name)))
			n++;
	closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (size_t i = 0; i < n; i++) {
		o += (size_t)snprintf(c->extra + o, sizeof(c->extra) - o, "%s%.40s", i ? " " : "",
				      names[i]);
		free(names[i]);
		if (o >= sizeof(c->extra))
			break;
	}
	return 0;
}

static void stat_text(char *buf, size_t len, const struct stat *st);

/* tmpfile DIR MODE [NAME [excl]]: an unnamed file in DIR (O_TMPFILE),
 * written, its fstat shown, then linked as NAME when given. */
static int op_tmpfile(struct call *c)
{
	bool excl = c->a[3] && !strcmp(c->a[3], "excl");
	int fd = open(c->a[0], O_TMPFILE | O_RDWR | (excl ? O_EXCL : 0), num(c->a[1]));
	struct stat st;
	char proc[64], s[128];

	if (fd < 0)
		return -errno;
	if (write(fd, "tmp", 3) != 3 || fstat(fd, &st) < 0)
		return with_fd(fd, -errno);
	stat_text(s, sizeof(s), &st);
	snprintf(c->extra, sizeof(c->extra), "fd: %s", s);
	if (!c->a[2])
		return with_fd(fd, 0);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int rc = sys(linkat(AT_FDCWD, proc, AT_FDCWD, c->a[2], AT_SYMLINK_FOLLOW));
	snprintf(c->extra + strlen(c->extra), sizeof(c->extra) - strlen(c->extra),
		 "; link %s", rc ? strerrorname_np(-rc) : "ok");
	return with_fd(fd, 0);
}

struct op {
	const char *name;
	int (*run)(struct call *c);
	unsigned paths;   /* bit i: argument i is a path (lstat'ed around the step) */
};

static const struct op ops[] = {
	{ "create", op_create, 1 },      { "open", op_open, 1 },
	{ "write", op_write, 1 },        { "append", op_append, 1 },
	{ "read", op_read, 1 },          { "truncate", op_truncate, 1 },
	{ "ftruncate", op_ftruncate, 1 }, { "mkdir", op_mkdir, 1 },
	{ "rmdir", op_rmdir, 1 },        { "mkfifo", op_mkfifo, 1 },
	{ "mknod", op_mknod, 1 },        { "link", op_link, 3 },
	{ "symlink", op_symlink, 2 },    { "unlink", op_unlink, 1 },
	{ "readlink", op_readlink, 1 },  { "rename", op_rename, 3 },
	{ "rename2", op_rename2, 3 },    { "chmod", op_chmod, 1 },
	{ "chown", op_chown, 1 },        { "lchown", op_lchown, 1 },
	{ "utimens", op_utimens, 1 },    { "times", op_times, 0 },
	{ "access", op_access, 1 },      { "readdir", op_readdir, 1 },
	{ "tmpfile", op_tmpfile, 5 },    { "stat", NULL, 1 },
};

static const struct op *op_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (!strcmp(ops[i].name, name))
			return &ops[i];
	return NULL;
}

/* ---- observing ---- */

/* A path looked at around a step: its name as printed, and its lstat. */
struct seen {
	char shown[300];
	char path[PATH_MAX + 300];
	bool before_ok, after_ok;
	struct stat before, after;
};

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "reg";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "lnk";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "sock";
	case S_IFCHR: return "chr";
	case S_IFBLK: return "blk";
	default: return "?";
	}
}

static void stat_text(char *buf, size_t len, const struct stat *st)
{
	int n = snprintf(buf, len, "%s %04o %u:%u n=%lu", type_name(st->st_mode),
			 st->st_mode & 07777, st->st_uid, st->st_gid, (unsigned long)st->st_nlink);

	if (!S_ISDIR(st->st_mode) && n > 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " s=%lld", (long long)st->st_size);
	if ((S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " rdev=%u,%u", major(st->st_rdev),
			 minor(st->st_rdev));
}

static char order(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? '<' : '>';
	if (a->tv_nsec != b->tv_nsec)
		return a->tv_nsec < b->tv_nsec ? '<' : '>';
	return '=';
}

/* '=' unchanged, '+' later, '-' earlier. */
static char change(const struct timespec *before, const struct timespec *after)
{
	char o = order(before, after);

	return o == '=' ? '=' : o == '<' ? '+' : '-';
}

static void print_seen(const struct seen *s)
{
	char buf[160];

	if (!s->after_ok) {
		printf("    %s: absent%s\n", s->shown, s->before_ok ? " (gone)" : "");
		return;
	}
	stat_text(buf, sizeof(buf), &s->after);
	printf("    %s: %s", s->shown, buf);
	if (!s->before_ok) {
		printf(" new m%cc\n", order(&s->after.st_mtim, &s->after.st_ctim));
		return;
	}
	printf(" a%c m%c c%c m%cc\n", change(&s->before.st_atim, &s->after.st_atim),
	       change(&s->before.st_mtim, &s->after.st_mtim),
	       change(&s->before.st_ctim, &s->after.st_ctim),
	       order(&s->after.st_mtim, &s->after.st_ctim));
}

/* The directory part of @p ("." when none). */
static void parent_of(const char *p, char *buf, size_t len)
{
	const char *slash = strrchr(p, '/');

	if (!slash)
		snprintf(buf, len, ".");
	else
		snprintf(buf, len, "%.*s", (int)(slash - p), p);
}

static void add_seen(struct seen *s, size_t *n, const char *shown, const char *path)
{
	if (strlen(path) > 300)
		return; /* a long-path case: the error is what it checks */
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(s[i].path, path))
			return;
	snprintf(s[*n].shown, sizeof(s[*n].shown), "%s", shown);
	snprintf(s[*n].path, sizeof(s[*n].path), "%s", path);
	(*n)++;
}

/* ---- steps ---- */

struct step {
	enum who who;
	const char *op;
	const char *arg[MAX_ARGS];
};

/* The child's answer: the operation's result and what it saw. */
struct answer {
	int rc;
	char extra[EXTRA_LEN];
};

static void run_child(const struct step *st, const struct op *op, struct call *c, int out)
{
	struct answer ans = { 0 };

	ans.rc = become(&identities[st->who]);
	if (!ans.rc && op->run)
		ans.rc = op->run(c);
	memcpy(ans.extra, c->extra, sizeof(ans.extra));
	if (write(out, &ans, sizeof(ans)) != (ssize_t)sizeof(ans))
		_exit(2);
	_exit(0);
}

/* Run @st in a child under its identity; the answer in @ans. */
static int run_as(const struct step *st, const struct op *op, struct call *c,
		  struct answer *ans)
{
	int p[2], status;

	if (pipe(p) < 0)
		return -errno;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(p[0]);
		run_child(st, op, c, p[1]);
	}
	close(p[1]);
	ssize_t n = read(p[0], ans, sizeof(*ans));
	close(p[0]);
	if (waitpid(pid, &status, 0) < 0 || n != (ssize_t)sizeof(*ans))
		return -EPROTO;
	return 0;
}

static void print_call(const char *cat, unsigned no, const struct step *st)
{
	printf("%s/%02u %s %s", cat, no, identities[st->who].name, st->op);
	for (int i = 0; i < MAX_ARGS && st->arg[i]; i++)
		printf(" %s", st->arg[i]);
}

/* Lets a change show in timestamps of any granularity up to this. */
static void tick(void)
{
	struct timespec t = { 0, 5 * 1000 * 1000 };

	nanosleep(&t, NULL);
}

static int run_step(const char *cat, unsigned no, const struct step *st)
{
	static char bufs[MAX_ARGS][PATH_MAX + 300];
	static struct seen seen[2 * MAX_ARGS];
	const struct op *op = op_find(st->op);
	struct call c = { 0 };
	struct answer ans;
	char parent[PATH_MAX + 300], pshown[300];
	size_t nseen = 0;

	if (!op) {
		fprintf(stderr, "posix_suite: %s/%02u: unknown operation %s\n", cat, no, st->op);
		return -1;
	}
	for (int i = 0; i < MAX_ARGS && st->arg[i]; i++)
		c.a[i] = expand(st->arg[i], bufs[i], sizeof(bufs[i]));
	for (int i = 0; i < MAX_ARGS && st->arg[i]; i++) {
		if (!(op->paths & (1u << i)))
			continue;
		add_seen(seen, &nseen, st->arg[i], c.a[i]);
		parent_of(c.a[i], parent, sizeof(parent));
		parent_of(st->arg[i], pshown, sizeof(pshown));
		add_seen(seen, &nseen, pshown, parent);
	}
	for (size_t i = 0; i < nseen; i++)
		seen[i].before_ok = lstat(seen[i].path, &seen[i].before) == 0;
	tick();
	if (run_as(st, op, &c, &ans) < 0) {
		fprintf(stderr, "posix_suite: %s/%02u: the step's child failed\n", cat, no);
		return -1;
	}
	for (size_t i = 0; i < nseen; i++)
		seen[i].after_ok = lstat(seen[i].path, &seen[i].after) == 0;
	print_call(cat, no, st);
	printf(" -> %s%s%s\n", ans.rc ? strerrorname_np(-ans.rc) : "ok", ans.extra[0] ? " " : "",
	       ans.extra);
	for (size_t i = 0; i < nseen; i++)
		print_seen(&seen[i]);
	return 0;
}

struct category {
	const char *name;
	const struct step *steps;
	unsigned n;
};

#define S(who, op, ...) { (who), (op), { __VA_ARGS__ } }
#define CATEGORY(name) { #name, name##_steps, ARRAY_SIZE(name##_steps) }
#include "posix_cases.h"

static int rm_tree(const char *path);

static int rm_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char child[PATH_MAX];
	int rc = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", path, e->d_name) >= (int)sizeof(child))
			rc = -ENAMETOOLONG;
		else if (rm_tree(child) < 0)
			rc = -errno;
	}
	closedir(d);
	return rc;
}

/* Remove @path and what it holds (a previous run's category). Deep
 * directories are removed from inside them, so no path is too long. */
static int rm_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	chmod(path, 0700);
	int here = open(".", O_DIRECTORY | O_RDONLY);
	if (here < 0 || chdir(path) < 0)
		return with_fd(here, -1);
	rm_entries(".");
	if (fchdir(here) < 0)
		return with_fd(here, -1);
	return with_fd(here, rmdir(path));
}

static int run_category(const char *dir, const struct category *cat)
{
	char path[PATH_MAX];
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, cat->name);
	if (rm_tree(path) < 0 || mkdir(path, 0755) < 0 || chdir(path) < 0) {
		fprintf(stderr, "posix_suite: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < cat->n; i++)
		if (run_step(cat->name, i + 1, &cat->steps[i]) < 0)
			rc = -1;
	fflush(stdout);
	return rc;
}

static bool wanted(const char *name, int argc, char **argv)
{
	if (argc < 3)
		return true;
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int rc = 0;

	if (argc < 2 || geteuid() != 0) {
		fprintf(stderr, "usage (as root): posix_suite DIR [CATEGORY...]\n");
		return 2;
	}
	/* Modes in the table are the modes asked for. */
	umask(0);
	char *dir = realpath(argv[1], NULL);
	if (!dir) {
		perror(argv[1]);
		return 2;
	}
	for (size_t i = 0; i < ARRAY_SIZE(categories); i++)
		if (wanted(categories[i].name, argc, argv) &&
		    run_category(dir, &categories[i]) < 0)
			rc = 1;
	free(dir);
	return rc;
}
