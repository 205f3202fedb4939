/*
 * Unit tests of the jailer's command line (src/jail/jail_args.c): the
 * required flags, each value's checks and message, the defaults, the
 * VMM's argv as Firecracker's exec file and kvmini's each take it.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "jail/jail_args.h"

#define ARGC(v) ((int)(sizeof(v) / sizeof((v)[0])))

static int parse(struct jail_args *a, int argc, char **argv, struct errbuf *eb)
{
	memset(eb, 0, sizeof(*eb));
	return jail_args_parse(a, argc, argv, eb);
}

static void test_minimal_and_defaults(void)
{
	char *argv[] = { "jailer", "--id", "vm-1", "--exec-file", "/usr/bin/firecracker",
			 "--uid", "12345", "--gid=100" };
	struct jail_args a;
	struct errbuf eb;

	CHECK_EQ(parse(&a, ARGC(argv), argv, &eb), 0);
	CHECK(!strcmp(a.id, "vm-1"));
	CHECK(!strcmp(a.exec_name, "firecracker"));
	CHECK(!strcmp(a.parent_cgroup, "firecracker"));
	CHECK(!strcmp(a.chroot_base, JAIL_DEFAULT_CHROOT_BASE));
	CHECK_EQ(a.uid, 12345);
	CHECK_EQ(a.gid, 100);
	CHECK(a.rlimit_set[JAIL_RLIMIT_NOFILE] && a.rlimit[JAIL_RLIMIT_NOFILE] == JAIL_DEFAULT_NOFILE);
	CHECK(!a.rlimit_set[JAIL_RLIMIT_FSIZE] && !a.rlimit_set[JAIL_RLIMIT_CORE]);
	CHECK(!a.daemonize && !a.new_pid_ns && !a.netns);
	CHECK_EQ(a.ncgroup_files, 0);
	CHECK_EQ(a.vmm_argc, 0);
	CHECK_EQ(a.keep_caps, 0);
}

static void test_every_flag(void)
{
	char *argv[] = { "jailer", "--id", "a", "--exec-file", "build/kvmini", "--uid", "0",
			 "--gid", "0", "--chroot-base-dir", "/tmp/j", "--netns", "/var/run/netns/x",
			 "--daemonize", "--new-pid-ns", "--cgroup", "memory.max=268435456",
			 "--cgroup=cpu.max=50000 100000", "--cgroup", "hugetlb.2MB.max=0",
			 "--cgroup-version", "2",
			 "--parent-cgroup", "vms/kvmini", "--resource-limit", "no-file=1024",
			 "--resource-limit", "fsize=4096", "--resource-limit", "core=0",
			 "--keep-cap", "CAP_NET_ADMIN", "--keep-cap", "sys_nice",
			 "--", "run", "--kernel", "/vmlinux" };
	struct jail_args a;
	struct errbuf eb;

	CHECK_EQ(parse(&a, ARGC(argv), argv, &eb), 0);
	CHECK(!strcmp(a.chroot_base, "/tmp/j") && !strcmp(a.netns, "/var/run/netns/x"));
	CHECK(a.daemonize && a.new_pid_ns);
	CHECK_EQ(a.ncgroup_files, 3);
	CHECK(!strcmp(a.cgroup_files[2].file, "hugetlb.2MB.max"));
	CHECK(!strcmp(a.cgroup_files[0].file, "memory.max"));
	CHECK(!strcmp(a.cgroup_files[0].value, "268435456"));
	CHECK(!strcmp(a.cgroup_files[1].file, "cpu.max"));
	CHECK(!strcmp(a.cgroup_files[1].value, "50000 100000"));
	CHECK(!strcmp(a.parent_cgroup, "vms/kvmini"));
	CHECK_EQ(a.rlimit[JAIL_RLIMIT_NOFILE], 1024);
	CHECK_EQ(a.rlimit[JAIL_RLIMIT_FSIZE], 4096);
	CHECK(a.rlimit_set[JAIL_RLIMIT_CORE] && a.rlimit[JAIL_RLIMIT_CORE] == 0);
	CHECK_EQ(a.keep_caps, (1ull << 12) | (1ull << 23));
	CHECK_EQ(a.vmm_argc, 3);
	CHECK(!strcmp(a.vmm_argv[0], "run") && !strcmp(a.vmm_argv[2], "/vmlinux"));
}

/* expect_error(MESSAGE PART, ARGS...): refused with -EINVAL and that text. */
static void expect_error(const char *part, int argc, char **argv)
{
	struct jail_args a;
	struct errbuf eb;

	CHECK_EQ(parse(&a, argc, argv, &eb), -EINVAL);
	if (!strstr(eb.msg, part)) {
		fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", part, eb.msg);
		check_case_failed = 1;
	}
}

#define BASE "jailer", "--id", "x", "--exec-file", "/bin/fc", "--uid", "1", "--gid", "1"
#define EXPECT_ERROR(part, ...) do { \
	char *v[] = { __VA_ARGS__ }; \
	expect_error(part, ARGC(v), v); \
} while (0)

static void test_required(void)
{
	EXPECT_ERROR("missing: --id", "jailer", "--exec-file", "/bin/fc", "--uid", "1", "--gid", "1");
	EXPECT_ERROR("missing: --exec-file", "jailer", "--id", "x", "--uid", "1", "--gid", "1");
	EXPECT_ERROR("missing: --uid", "jailer", "--id", "x", "--exec-file", "/bin/fc", "--gid", "1");
	EXPECT_ERROR("missing: --gid", "jailer", "--id", "x", "--exec-file", "/bin/fc", "--uid", "1");
	EXPECT_ERROR("--id needs a value", "jailer", "--id");
}

static void test_bad_values(void)
{
	char id65[66];

	memset(id65, 'a', 65);
	id65[65] = '\0';
	EXPECT_ERROR("not an instance id", BASE, "--id", "a_b");
	EXPECT_ERROR("not an instance id", BASE, "--id", "");
	EXPECT_ERROR("not an instance id", BASE, "--id", id65);
	EXPECT_ERROR("--uid: \"-1\" is not a number", BASE, "--uid", "-1");
	EXPECT_ERROR("--uid: \"4294967295\"", BASE, "--uid", "4294967295");
	EXPECT_ERROR("--gid: \"1x\"", BASE, "--gid", "1x");
	EXPECT_ERROR("cgroup v1 is not supported", BASE, "--cgroup-version", "1");
	EXPECT_ERROR("\"3\" is not 2", BASE, "--cgroup-version", "3");
	EXPECT_ERROR("not FILE=VALUE", BASE, "--cgroup", "memory.max");
	EXPECT_ERROR("not FILE=VALUE", BASE, "--cgroup", "memory.max=");
	EXPECT_ERROR("not FILE=VALUE", BASE, "--cgroup", "../x.max=1");
	EXPECT_ERROR("not FILE=VALUE", BASE, "--cgroup", "a/b.max=1");
	EXPECT_ERROR("not FILE=VALUE", BASE, "--cgroup", "nodot=1");
	EXPECT_ERROR("not FILE=VALUE", BASE, "--cgroup", ".hidden=1");
	EXPECT_ERROR("not FILE=VALUE", BASE, "--cgroup", "a b.max=1");
	EXPECT_ERROR("not a relative path", BASE, "--parent-cgroup", "/abs");
	EXPECT_ERROR("not a relative path", BASE, "--parent-cgroup", "a/../b");
	EXPECT_ERROR("not a relative path", BASE, "--parent-cgroup", "a//b");
	EXPECT_ERROR("not a relative path", BASE, "--parent-cgroup", "a/");
	EXPECT_ERROR("not fsize=N, no-file=N or core=N", BASE, "--resource-limit", "nofile=1");
	EXPECT_ERROR("not fsize=N, no-file=N or core=N", BASE, "--resource-limit", "no-file=x");
	EXPECT_ERROR("not fsize=N, no-file=N or core=N", BASE, "--resource-limit", "core");
	EXPECT_ERROR("not a capability", BASE, "--keep-cap", "CAP_FLY");
	EXPECT_ERROR("not an absolute path", BASE, "--chroot-base-dir", "rel");
	EXPECT_ERROR("does not name a file", BASE, "--exec-file", "dir/");
	EXPECT_ERROR("unknown flag \"--bogus\"", BASE, "--bogus");
	EXPECT_ERROR("unknown argument \"run\"", BASE, "run");
	EXPECT_ERROR("--daemonize takes no value", BASE, "--daemonize=1");
}

static void test_help(void)
{
	char *argv[] = { "jailer", "--help" };
	struct jail_args a;
	struct errbuf eb;

	CHECK_EQ(parse(&a, ARGC(argv), argv, &eb), 1);
}

static void test_cap_names(void)
{
	CHECK_EQ(jail_cap_number("CAP_CHOWN"), 0);
	CHECK_EQ(jail_cap_number("cap_net_admin"), 12);
	CHECK_EQ(jail_cap_number("SYS_ADMIN"), 21);
	CHECK_EQ(jail_cap_number("CAP_CHECKPOINT_RESTORE"), 40);
	CHECK_EQ(jail_cap_number("CAP_"), -1);
}

/* The VMM's argv for an exec file: NULL-terminated, joined with spaces. */
static void vmm_line(const char *exec, int n, char **vmm, char *out, size_t len)
{
	char *argv[16] = { BASE, "--exec-file", (char *)exec, "--" };
	char *res[24];
	struct jail_args a;
	struct errbuf eb;
	int argc = 12;

	for (int i = 0; i < n; i++)
		argv[argc++] = vmm[i];
	CHECK_EQ(parse(&a, argc, argv, &eb), 0);
	jail_vmm_argv(&a, "/x", res);
	out[0] = '\0';
	for (int i = 0; res[i]; i++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", res[i]);
}

static void test_vmm_argv(void)
{
	char *run[] = { "run", "--kernel", "/k" }, *fc[] = { "--api-sock", "/s" };
	char *vhost[] = { "vhost", "net" };
	char line[256];

	vmm_line("build/firecracker", 2, fc, line, sizeof(line));
	CHECK(!strcmp(line, "/x --id x --api-sock /s"));
	vmm_line("build/kvmini", 3, run, line, sizeof(line));
	CHECK(!strcmp(line, "/x run --id x --kernel /k"));
	vmm_line("build/kvmini", 2, vhost, line, sizeof(line));
	CHECK(!strcmp(line, "/x vhost net"));
	vmm_line("build/kvmini", 0, NULL, line, sizeof(line));
	CHECK(!strcmp(line, "/x"));
}

int main(void)
{
	RUN_TEST(test_minimal_and_defaults);
	RUN_TEST(test_every_flag);
	RUN_TEST(test_required);
	RUN_TEST(test_bad_values);
	RUN_TEST(test_help);
	RUN_TEST(test_cap_names);
	RUN_TEST(test_vmm_argv);
	return CHECK_DONE();
}
