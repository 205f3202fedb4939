/*
 * cgroup v2 for the jail (see jail_cgroup.h). The hierarchy is found in
 * /proc/self/mountinfo (a hybrid host mounts it at /sys/fs/cgroup/unified);
 * a controller that hierarchy does not offer is an error naming it, since
 * a limit silently not applied is worse than a jail that does not start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jail/jail_cgroup.h"

/* The first cgroup2 mount point in mountinfo ("... - cgroup2 ..."). */
static int find_mount(char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024], point[PATH_MAX];
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (r < 0 && fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - cgroup2 ");
		if (sep && sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1) {
			snprintf(out, len, "%s", point);
			r = 0;
		}
	}
	fclose(f);
	return r;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* O_TRUNC as a shell's `echo >` (the cgroup files ignore it; a plain
 * file, as the unit test's, then holds just @text). */
static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* Whether the space-separated @list has the @n bytes at @word as a word. */
static bool has_word(const char *list, const char *word, size_t n)
{
	const char *end = list + strlen(list);

	for (const char *p = list; (p = memmem(p, (size_t)(end - p), word, n)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

/* "+memory +pids": the controllers @a's files belong to ("cgroup.*"
 * files are the core's, always there), each offered by the hierarchy. */
static int controllers(struct jail_cgroup *cg, const struct jail_args *a, char *out, size_t len,
		       struct errbuf *eb)
{
	char path[PATH_MAX + 32], have[512], word[JAIL_CGROUP_FILE_LEN + 1];

	snprintf(path, sizeof(path), "%s/cgroup.controllers", cg->mount);
	if (read_file(path, have, sizeof(have)) < 0)
		have[0] = '\0';
	out[0] = '\0';
	for (unsigned i = 0; i < a->ncgroup_files; i++) {
		const char *f = a->cgroup_files[i].file;
		size_t n = strcspn(f, ".");
		if (n == 6 && !strncmp(f, "cgroup", 6))
			continue;
		if (!has_word(have, f, n)) {
			errbuf_set(eb, "--cgroup %s: the cgroup v2 hierarchy at %s has no \"%.*s\" "
				   "controller (it offers \"%s\")", f, cg->mount, (int)n, f, have);
			return -ENOTSUP;
		}
		snprintf(word, sizeof(word), "+%.*s", (int)n, f);
		if (!has_word(out, word, n + 1))
			snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? " " : "", word);
	}
	return 0;
}

static void remember(struct jail_cgroup *cg, const char *dir)
{
	if (cg->nmade < JAIL_CGROUP_MAX_MADE)
		snprintf(cg->made[cg->nmade++], PATH_MAX, "%s", dir);
}

/*
 * From the mount down to <parent>: each level's subtree_control gets
 * @ctrl (so the level below has those files) and the next level is made.
 * A cgroup with processes in it cannot hand controllers down (the "no
 * internal processes" rule): the error says so.
 */
static int make_parents(struct jail_cgroup *cg, const char *parent, const char *ctrl,
			struct errbuf *eb)
{
	char dir[PATH_MAX], file[PATH_MAX + 32];
	const char *p = parent;
	int r;

	snprintf(dir, sizeof(dir), "%s", cg->mount);
	for (;;) {
		snprintf(file, sizeof(file), "%s/cgroup.subtree_control", dir);
		if (ctrl[0] && (r = write_file(file, ctrl)) < 0) {
			errbuf_set(eb, "cgroup: enabling \"%s\" in %s: %s", ctrl, file, strerror(-r));
			return r;
		}
		if (!*p)
			return 0;
		size_t n = strcspn(p, "/");
		snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/%.*s", (int)n, p);
		p += n + (p[n] == '/');
		if (mkdir(dir, 0755) == 0)
			remember(cg, dir);
		else if (errno != EEXIST) {
			errbuf_set(eb, "cgroup: mkdir %s: %s", dir, strerror(errno));
			return -errno;
		}
	}
}

/* The jail's own cgroup: made, or reused when it exists and is empty. */
static int make_leaf(struct jail_cgroup *cg, const char *id, struct errbuf *eb)
{
	char file[PATH_MAX + 32], procs[64] = "";

	if (mkdir(cg->dir, 0755) == 0) {
		remember(cg, cg->dir);
		return 0;
	}
	if (errno != EEXIST) {
		errbuf_set(eb, "cgroup: mkdir %s: %s", cg->dir, strerror(errno));
		return -errno;
	}
	snprintf(file, sizeof(file), "%s/cgroup.procs", cg->dir);
	if (read_file(file, procs, sizeof(procs)) < 0 || procs[0]) {
		errbuf_set(eb, "id \"%s\" is in use: cgroup %s has processes (%s)", id, cg->dir, procs);
		return -EBUSY;
	}
	return 0;
}

/* The jailer's cgroup v2 path ("0::/path" in /proc/self/cgroup). */
static void current_cgroup(char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[PATH_MAX + 8];

	snprintf(out, len, "/");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			if (snprintf(out, len, "%s", line + 3) >= (int)len)
				snprintf(out, len, "/");      /* cut: moving back fails, harmlessly */
		}
	}
	if (f)
		fclose(f);
}

static int write_settings(struct jail_cgroup *cg, const struct jail_args *a, struct errbuf *eb)
{
	char file[PATH_MAX + JAIL_CGROUP_FILE_LEN + 2];
	int r;

	for (unsigned i = 0; i < a->ncgroup_files; i++) {
		snprintf(file, sizeof(file), "%s/%s", cg->dir, a->cgroup_files[i].file);
		r = write_file(file, a->cgroup_files[i].value);
		if (r < 0) {
			errbuf_set(eb, "--cgroup %s=%s: writing %s: %s", a->cgroup_files[i].file,
				   a->cgroup_files[i].value, file, strerror(-r));
			return r;
		}
	}
	current_cgroup(cg->origin, sizeof(cg->origin));
	snprintf(file, sizeof(file), "%s/cgroup.procs", cg->dir);
	r = write_file(file, "0");
	if (r < 0) {
		errbuf_set(eb, "cgroup: joining %s: %s", cg->dir, strerror(-r));
		return r;
	}
	cg->moved = true;
	return 0;
}

static int setup(struct jail_cgroup *cg, const struct jail_args *a, struct errbuf *eb)
{
	char ctrl[256];
	int r;

	if (snprintf(cg->dir, sizeof(cg->dir), "%s/%s/%s", cg->mount, a->parent_cgroup, a->id) >=
	    (int)sizeof(cg->dir)) {
		errbuf_set(eb, "--parent-cgroup: the cgroup's path is too long");
		return -ENAMETOOLONG;
	}
	r = controllers(cg, a, ctrl, sizeof(ctrl), eb);
	if (r == 0)
		r = make_parents(cg, a->parent_cgroup, ctrl, eb);
	if (r == 0)
		r = make_leaf(cg, a->id, eb);
	return r ? r : write_settings(cg, a, eb);
}

int jail_cgroup_setup_at(struct jail_cgroup *cg, const struct jail_args *a, const char *mount,
			 struct errbuf *eb)
{
	int r;

	memset(cg, 0, sizeof(*cg));
	if (a->ncgroup_files == 0)
		return 0;
	if (snprintf(cg->mount, sizeof(cg->mount), "%s", mount) >= (int)sizeof(cg->mount)) {
		errbuf_set(eb, "cgroup: the mount's path is too long");
		return -ENAMETOOLONG;
	}
	r = setup(cg, a, eb);
	if (r < 0)
		jail_cgroup_undo(cg);
	return r;
}

int jail_cgroup_setup(struct jail_cgroup *cg, const struct jail_args *a, struct errbuf *eb)
{
	char mount[PATH_MAX];

	memset(cg, 0, sizeof(*cg));
	if (a->ncgroup_files == 0)
		return 0;
	if (find_mount(mount, sizeof(mount)) < 0) {
		errbuf_set(eb, "--cgroup: no cgroup v2 hierarchy is mounted (/proc/self/mountinfo)");
		return -ENOENT;
	}
	return jail_cgroup_setup_at(cg, a, mount, eb);
}

void jail_cgroup_undo(struct jail_cgroup *cg)
{
	char file[PATH_MAX * 2 + 16];

	if (cg->moved) {
		snprintf(file, sizeof(file), "%s%s/cgroup.procs", cg->mount, cg->origin);
		write_file(file, "0");
		cg->moved = false;
	}
	while (cg->nmade > 0)
		rmdir(cg->made[--cg->nmade]);
}
