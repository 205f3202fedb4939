/*
 * Namespaces and pivot_root for the jail (see jail_ns.h).
 *
 * Library directories: Firecracker's jailer expects a static VMM; kvmini
 * links libslirp, which Debian ships as a shared library only. The loader
 * and libraries therefore come from the host's /lib, /lib64, /usr/lib and
 * /usr/lib64, bound read-only, nosuid and nodev, inside the jail's own
 * mount namespace only (the host never sees these mounts). Symlinks among
 * them (/lib -> usr/lib on merged-/usr systems) are recreated as symlinks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail/jail_ns.h"

int jail_join_netns(const char *path, struct errbuf *eb)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0) {
		errbuf_set(eb, "--netns %s: %s", path, strerror(errno));
		return -errno;
	}
	if (setns(fd, CLONE_NEWNET) < 0) {
		r = -errno;
		errbuf_set(eb, "--netns %s: joining it: %s", path, strerror(errno));
	}
	close(fd);
	return r;
}

static const char *const lib_dirs[] = { "/lib", "/lib64", "/usr/lib", "/usr/lib64" };

/* @path (absolute) made as a directory under the current directory. */
static int mkdir_under(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), ".%s", path);
	for (char *p = buf + 2;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (!c)
			return 0;
	}
}

/* One library directory into the root being built (the current directory). */
static int bind_lib(const char *dir, struct errbuf *eb)
{
	char target[PATH_MAX], link[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (lstat(dir, &st) < 0)
		return 0;               /* not on this host */
	snprintf(target, sizeof(target), ".%s", dir);
	if (S_ISLNK(st.st_mode)) {
		n = readlink(dir, link, sizeof(link) - 1);
		if (n < 0)
			return 0;
		link[n] = '\0';
		unlink(target);
		if (symlink(link, target) == 0)
			return 0;
		errbuf_set(eb, "symlink %s in the jail: %s", dir, strerror(errno));
		return -errno;
	}
	if (mkdir_under(dir) < 0 || mount(dir, target, NULL, MS_BIND | MS_REC, NULL) < 0 ||
	    mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
		  NULL) < 0) {
		errbuf_set(eb, "binding %s into the jail: %s", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

static int pivot(const char *root, bool libs, struct errbuf *eb)
{
	const char *step = "making / private";

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		goto fail;
	step = "binding the chroot onto itself";
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
		goto fail;
	step = "chdir into the chroot";
	if (chdir(root) < 0)
		goto fail;
	for (unsigned i = 0; libs && i < sizeof(lib_dirs) / sizeof(lib_dirs[0]); i++)
		if (bind_lib(lib_dirs[i], eb) < 0)
			return -EIO;
	step = "mkdir old_root";
	if (mkdir("old_root", 0700) < 0 && errno != EEXIST)
		goto fail;
	step = "pivot_root";
	if (syscall(SYS_pivot_root, ".", "old_root") < 0)
		goto fail;
	step = "detaching the old root";
	if (chdir("/") < 0 || umount2("/old_root", MNT_DETACH) < 0 || rmdir("/old_root") < 0)
		goto fail;
	return 0;
fail:
	errbuf_set(eb, "jail %s: %s: %s", root, step, strerror(errno));
	return -errno;
}

int jail_enter_root(const char *root, bool libs, struct errbuf *eb)
{
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0) {
		errbuf_set(eb, "unsharing the mount, IPC and UTS namespaces: %s", strerror(errno));
		return -errno;
	}
	return pivot(root, libs, eb);
}
