/*
 * The chroot's files (see jail_fs.h). Paths made are recorded as they are
 * made, each relative to the chroot when inside it, so jail_fs_undo can
 * find them from the host or from inside the pivoted root.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "jail/jail_fs.h"

/* Record @path (absolute, on the host) as made by the jailer. */
static void remember(struct jail_fs *fs, const char *path, bool dir)
{
	if (fs->nmade == JAIL_FS_MAX_MADE ||
	    snprintf(fs->made[fs->nmade], PATH_MAX, "%s", path) >= PATH_MAX)
		return;
	fs->made_dir[fs->nmade++] = dir;
}

/* @dir/@name into @out (PATH_MAX): -ENAMETOOLONG when it does not fit. */
static int join(char *out, const char *dir, const char *name)
{
	return snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* mkdir -p @path; the directories made are remembered. */
static int make_dirs(struct jail_fs *fs, const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, mode) == 0)
			remember(fs, buf, true);
		else if (errno != EEXIST)
			return -errno;
		*p = c;
		if (!c)
			return 0;
	}
}

/* A live process named in @root/<name>.pid: its pid, else 0. */
static pid_t pid_in_use(const char *root, const char *name)
{
	char path[PATH_MAX], buf[32] = "";
	FILE *f;
	long pid = 0;

	if (snprintf(path, sizeof(path), "%s/%s.pid", root, name) >= (int)sizeof(path))
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		pid = strtol(buf, NULL, 10);
	fclose(f);
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM) ? (pid_t)pid : 0;
}

/* The exec file, opened before anything is made (the chroot's own
 * directories could otherwise stand where it is looked for). */
static int open_exec(const char *path, off_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;       /* fstat on an open file fails for no other reason */
	}
	*size = st.st_size;
	return fd;
}

/* Copy @in (@size bytes) to @dst (replaced if there), mode 0755, owned by
 * root: the VMM runs it, it cannot change it. */
static int copy_exec(struct jail_fs *fs, int in, off_t size, const char *dst)
{
	int out, r = 0;

	unlink(dst);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0)
		return -errno;
	remember(fs, dst, false);
	for (off_t off = 0; r == 0 && off < size;) {
		ssize_t n = sendfile(out, in, &off, (size_t)(size - off));
		r = n < 0 ? -errno : n == 0 ? -EIO : 0;
	}
	if (r == 0 && fchmod(out, 0755) < 0)
		r = -errno;
	close(out);
	return r;
}

static const struct {
	const char *path;
	unsigned major, minor;
	mode_t mode;
} dev_nodes[] = {
	{ "dev/kvm", 10, 232, 0600 },
	{ "dev/net/tun", 10, 200, 0600 },
	{ "dev/urandom", 1, 9, 0666 },
	{ "dev/null", 1, 3, 0666 },
};

static int make_node(struct jail_fs *fs, unsigned i, uid_t uid, gid_t gid, struct errbuf *eb)
{
	char path[PATH_MAX];

	if (join(path, fs->root, dev_nodes[i].path) < 0)
		return -ENAMETOOLONG;
	unlink(path);
	if (mknod(path, S_IFCHR | dev_nodes[i].mode,
		  makedev(dev_nodes[i].major, dev_nodes[i].minor)) < 0) {
		errbuf_set(eb, "mknod %s: %s", path, strerror(errno));
		return -errno;
	}
	remember(fs, path, false);
	/* mknod's mode went through the umask. */
	if (chmod(path, dev_nodes[i].mode) < 0 || chown(path, uid, gid) < 0) {
		errbuf_set(eb, "%s: chmod/chown: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static int make_dev(struct jail_fs *fs, uid_t uid, gid_t gid, struct errbuf *eb)
{
	char path[PATH_MAX];
	int r = join(path, fs->root, "dev/net");

	if (r == 0)
		r = make_dirs(fs, path, 0755);
	if (r < 0) {
		errbuf_set(eb, "mkdir %s: %s", path, strerror(-r));
		return r;
	}
	for (unsigned i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
		r = make_node(fs, i, uid, gid, eb);
		if (r < 0)
			return r;
	}
	return 0;
}

static int make_root(struct jail_fs *fs, const struct jail_args *a, struct errbuf *eb)
{
	int r = make_dirs(fs, fs->root, 0755);
	pid_t pid;

	if (r < 0) {
		errbuf_set(eb, "mkdir %s: %s", fs->root, strerror(-r));
		return r;
	}
	pid = pid_in_use(fs->root, a->exec_name);
	if (pid) {
		errbuf_set(eb, "id \"%s\" is in use: %s/%s.pid names pid %d, which is running",
			   a->id, fs->root, a->exec_name, (int)pid);
		return -EBUSY;
	}
	return 0;
}

static int prepare(struct jail_fs *fs, const struct jail_args *a, int exec, off_t size,
		   struct errbuf *eb)
{
	char dst[PATH_MAX];
	int r = make_root(fs, a, eb);

	if (r < 0)
		return r;
	r = join(dst, fs->root, a->exec_name);
	if (r == 0)
		r = copy_exec(fs, exec, size, dst);
	if (r < 0) {
		errbuf_set(eb, "copying --exec-file %s to %s: %s", a->exec_file, dst, strerror(-r));
		return r;
	}
	r = make_dev(fs, a->uid, a->gid, eb);
	/* The VMM makes its API socket, logs and snapshots in its root. */
	if (r == 0 && chown(fs->root, a->uid, a->gid) < 0) {
		r = -errno;
		errbuf_set(eb, "chown %s: %s", fs->root, strerror(errno));
	}
	return r;
}

int jail_fs_prepare(struct jail_fs *fs, const struct jail_args *a, struct errbuf *eb)
{
	off_t size = 0;
	int exec, r;

	memset(fs, 0, sizeof(*fs));
	/* Room left for the names made inside it. */
	if (snprintf(fs->root, sizeof(fs->root), "%s/%s/%s/root", a->chroot_base, a->exec_name,
		     a->id) >= (int)sizeof(fs->root) - 256) {
		errbuf_set(eb, "--chroot-base-dir: the chroot's path is too long");
		return -ENAMETOOLONG;
	}
	exec = open_exec(a->exec_file, &size);
	if (exec < 0) {
		errbuf_set(eb, "--exec-file %s: %s", a->exec_file,
			   exec == -EINVAL ? "not a regular file" : strerror(-exec));
		return exec;
	}
	fs->dynamic = jail_elf_is_dynamic(a->exec_file) > 0;
	r = prepare(fs, a, exec, size, eb);
	close(exec);
	if (r < 0)
		jail_fs_undo(fs, NULL);
	return r;
}

void jail_fs_undo(struct jail_fs *fs, const char *prefix)
{
	size_t rootlen = strlen(fs->root);
	char path[PATH_MAX];

	while (fs->nmade > 0) {
		const char *p = fs->made[--fs->nmade];
		bool inside = !strncmp(p, fs->root, rootlen) && p[rootlen] == '/';
		if (prefix && !inside)
			continue;       /* above the root: out of reach after pivot_root */
		if (snprintf(path, sizeof(path), "%s%s", prefix && inside ? prefix : "",
			     prefix && inside ? p + rootlen + 1 : p) >= (int)sizeof(path))
			continue;
		if (fs->made_dir[fs->nmade])
			rmdir(path);
		else
			unlink(path);
	}
}

int jail_fs_write_pid(const char *dir, const char *exec_name, pid_t pid)
{
	char path[PATH_MAX];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s.pid", dir, exec_name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "%d", (int)pid);
	return fclose(f) == 0 ? 0 : -errno;
}

int jail_elf_is_dynamic(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64) {
		close(fd);
		return 0;
	}
	for (unsigned i = 0; i < eh.e_phnum && r == 0; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize)) !=
		    sizeof(ph))
			break;
		r = ph.p_type == PT_INTERP;
	}
	close(fd);
	return r;
}
