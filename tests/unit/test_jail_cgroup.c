/*
 * Unit tests of the jail's cgroup v2 steps (src/jail/jail_cgroup.c) on a
 * directory laid out as a cgroup hierarchy (jail_cgroup_setup_at's seam):
 * the controllers enabled from the mount down to the parent, the files
 * written, the jailer's pid written to cgroup.procs; a controller the
 * hierarchy lacks, a cgroup in use and a failed write refused with what was
 * made removed. (The real hierarchy: tests/kvm/test_jail.sh.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "jail/jail_args.h"
#include "jail/jail_cgroup.h"

static char root[64];

static void put(const char *rel, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static const char *get(const char *rel)
{
	static char buf[256];
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	buf[0] = '\0';
	f = fopen(path, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

static void dir(const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	CHECK(mkdir(path, 0755) == 0 || errno == EEXIST);
}

static bool exists(const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return access(path, F_OK) == 0;
}

/* A fresh hierarchy offering @controllers, with vms/kvmini/vm1 laid out
 * (each level's interface files, as the kernel would make them). */
static void tree(const char *controllers)
{
	snprintf(root, sizeof(root), "/tmp/kvmini-cgtest.XXXXXX");
	CHECK(mkdtemp(root) != NULL);
	put("cgroup.controllers", controllers);
	put("cgroup.subtree_control", "");
	put("cgroup.procs", "");
	dir("vms");
	put("vms/cgroup.subtree_control", "");
	dir("vms/kvmini");
	put("vms/kvmini/cgroup.subtree_control", "");
	dir("vms/kvmini/vm1");
	put("vms/kvmini/vm1/cgroup.procs", "");
	put("vms/kvmini/vm1/pids.max", "max");
	put("vms/kvmini/vm1/memory.max", "max");
	put("vms/kvmini/vm1/cgroup.max.descendants", "max");
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	CHECK(system(cmd) == 0);
}

static int setup(char **files, int n, const char *parent, struct jail_cgroup *cg, struct errbuf *eb)
{
	char *argv[32] = { "jailer", "--id", "vm1", "--exec-file", "/bin/kvmini", "--uid", "1",
			   "--gid", "1", "--parent-cgroup", (char *)parent };
	struct jail_args a;
	int argc = 11;

	for (int i = 0; i < n; i++) {
		argv[argc++] = "--cgroup";
		argv[argc++] = files[i];
	}
	memset(eb, 0, sizeof(*eb));
	CHECK_EQ(jail_args_parse(&a, argc, argv, eb), 0);
	static struct jail_cgroup zero;
	*cg = zero;
	return jail_cgroup_setup_at(cg, &a, root, eb);
}

static void test_enable_write_join(void)
{
	char *files[] = { "pids.max=64", "memory.max=268435456", "cgroup.max.descendants=5",
			  "pids.max=32" };
	struct jail_cgroup cg;
	struct errbuf eb;

	tree("cpuset cpu io memory hugetlb pids rdma misc\n");
	CHECK_EQ(setup(files, 4, "vms/kvmini", &cg, &eb), 0);
	/* Each controller once, in the order the files name them; not "cgroup". */
	CHECK(!strcmp(get("cgroup.subtree_control"), "+pids +memory"));
	CHECK(!strcmp(get("vms/cgroup.subtree_control"), "+pids +memory"));
	CHECK(!strcmp(get("vms/kvmini/cgroup.subtree_control"), "+pids +memory"));
	CHECK(!strcmp(get("vms/kvmini/vm1/memory.max"), "268435456"));
	CHECK(!strcmp(get("vms/kvmini/vm1/cgroup.max.descendants"), "5"));
	/* Written in order: the last value given wins, as the kernel's would. */
	CHECK(!strcmp(get("vms/kvmini/vm1/pids.max"), "32"));
	CHECK(!strcmp(get("vms/kvmini/vm1/cgroup.procs"), "0"));
	CHECK(cg.moved);
	CHECK(!strcmp(cg.dir + strlen(root), "/vms/kvmini/vm1"));
	jail_cgroup_undo(&cg);
	CHECK(!cg.moved);
	CHECK(exists("vms/kvmini/vm1"));    /* there before: not the jailer's to remove */
	cleanup();
}

static void test_missing_controller(void)
{
	char *files[] = { "memory.max=1", "pids.max=64" };
	struct jail_cgroup cg;
	struct errbuf eb;

	tree("hugetlb memory\n");
	CHECK_EQ(setup(files, 2, "vms/kvmini", &cg, &eb), -ENOTSUP);
	CHECK(strstr(eb.msg, "--cgroup pids.max: the cgroup v2 hierarchy at ") != NULL);
	CHECK(strstr(eb.msg, "has no \"pids\" controller (it offers \"hugetlb memory\")") != NULL);
	CHECK(!strcmp(get("cgroup.subtree_control"), ""));
	CHECK(!strcmp(get("vms/kvmini/vm1/memory.max"), "max"));
	cleanup();
}

static void test_in_use(void)
{
	char *files[] = { "pids.max=64" };
	struct jail_cgroup cg;
	struct errbuf eb;

	tree("pids\n");
	put("vms/kvmini/vm1/cgroup.procs", "4242\n");
	CHECK_EQ(setup(files, 1, "vms/kvmini", &cg, &eb), -EBUSY);
	CHECK(strstr(eb.msg, "id \"vm1\" is in use: cgroup ") != NULL);
	CHECK(strstr(eb.msg, "has processes (4242)") != NULL);
	CHECK(!strcmp(get("vms/kvmini/vm1/pids.max"), "max"));
	cleanup();
}

/* A parent the jailer makes, then a failure: the directory goes again. */
static void test_made_removed_on_failure(void)
{
	char *files[] = { "pids.max=64" };
	struct jail_cgroup cg;
	struct errbuf eb;

	tree("pids\n");
	/* A plain directory has no cgroup.subtree_control: enabling fails. */
	CHECK_EQ(setup(files, 1, "fresh/deeper", &cg, &eb), -ENOENT);
	CHECK(strstr(eb.msg, "cgroup: enabling \"+pids\" in ") != NULL);
	CHECK(strstr(eb.msg, "/fresh/cgroup.subtree_control: No such file") != NULL);
	CHECK(!exists("fresh"));
	cleanup();
}

static void test_refused_write(void)
{
	char *files[] = { "pids.max=64", "cpu.max=50000 100000" };
	struct jail_cgroup cg;
	struct errbuf eb;

	tree("cpu pids\n");
	CHECK_EQ(setup(files, 2, "vms/kvmini", &cg, &eb), -ENOENT);
	CHECK(strstr(eb.msg, "--cgroup cpu.max=50000 100000: writing ") != NULL);
	CHECK(!strcmp(get("vms/kvmini/vm1/cgroup.procs"), ""));   /* not joined */
	CHECK(!cg.moved);
	cleanup();
}

static void test_no_files_no_cgroup(void)
{
	struct jail_cgroup cg;
	struct errbuf eb;

	tree("pids\n");
	CHECK_EQ(setup(NULL, 0, "vms/kvmini", &cg, &eb), 0);
	CHECK(!cg.moved && cg.dir[0] == '\0');
	CHECK(!strcmp(get("cgroup.subtree_control"), ""));
	cleanup();
}

int main(void)
{
	RUN_TEST(test_enable_write_join);
	RUN_TEST(test_missing_controller);
	RUN_TEST(test_in_use);
	RUN_TEST(test_made_removed_on_failure);
	RUN_TEST(test_refused_write);
	RUN_TEST(test_no_files_no_cgroup);
	return CHECK_DONE();
}
