/*
 * The jailer's flags (see jail_args.h). Each flag's value is checked here,
 * with the flag's name in the message, so the steps that change the host
 * (jail_fs, jail_cgroup, jail_ns, jail_priv) only meet valid input.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/compiler.h"
#include "jail/jail_args.h"

const char jail_usage[] =
	"usage: jailer --id ID --exec-file PATH --uid UID --gid GID [options] [-- VMM ARGS]\n"
	"       kvmini jail (the same flags)\n"
	"\n"
	"Start the VMM confined: chroot <base>/<exec name>/<id>/root with a copy of the\n"
	"exec file and /dev/{kvm,net/tun,urandom,null}, new mount, IPC, UTS (and PID)\n"
	"namespaces, pivot_root, cgroup v2 limits, resource limits, the uid and gid given,\n"
	"no capabilities, no_new_privs; <root>/<exec name>.pid names the VMM.\n"
	"\n"
	"  --id ID                 the instance: 1 to 64 letters, digits or '-'\n"
	"  --exec-file PATH        the VMM binary (build/kvmini, build/firecracker)\n"
	"  --uid N, --gid N        the ids the VMM runs as\n"
	"  --chroot-base-dir DIR   default " JAIL_DEFAULT_CHROOT_BASE "\n"
	"  --netns PATH            join this network namespace (/var/run/netns/NAME)\n"
	"  --daemonize             new session, stdio on /dev/null, the jailer returns\n"
	"  --new-pid-ns            the VMM is pid 1 of a new PID namespace\n"
	"  --cgroup FILE=VALUE     a cgroup v2 file of the VM's cgroup (memory.max=..., repeatable)\n"
	"  --cgroup-version 2      only the unified hierarchy is supported\n"
	"  --parent-cgroup PATH    the cgroup above <id> (default: the exec file's name)\n"
	"  --resource-limit R=N    fsize, no-file (default 2048) or core (repeatable)\n"
	"  --keep-cap NAME         a capability the VMM keeps (kvmini's own; repeatable)\n"
	"  --                      the VMM's own arguments follow\n";

bool jail_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!(c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z')))
			return false;
	}
	return true;
}

/* Linux's capability names, by number (linux/capability.h). */
static const char *const cap_names[] = {
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
	"setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
	"net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
	"sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
	"sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
	"audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
	"block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
};

int jail_cap_number(const char *name)
{
	if (!strncasecmp(name, "cap_", 4))
		name += 4;
	for (unsigned i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (!strcasecmp(name, cap_names[i]))
			return (int)i;
	return -1;
}

/* A decimal number from 0 to @max, nothing else. */
static int parse_num(const char *text, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(text, &end, 10);
	return errno || *end || *out > max ? -EINVAL : 0;
}

/* A relative path of plain components: no "", "." or "..", no leading '/'. */
static bool relative_path_ok(const char *p)
{
	if (!*p || *p == '/')
		return false;
	for (const char *c = p; *c;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && !strncmp(c, "..", 2)))
			return false;
		c += n + (c[n] == '/');
		if (c[-1] == '/' && !*c)
			return false;
	}
	return true;
}

/* "controller.name": letters (hugetlb.2MB.max), digits, '_' and '.', one
 * '.' at least and not first, so the file stays inside the cgroup directory. */
static bool cgroup_file_ok(const char *f, size_t n)
{
	if (n == 0 || n >= JAIL_CGROUP_FILE_LEN || f[0] == '.' || !memchr(f, '.', n))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= 'A' && f[i] <= 'Z') ||
		      (f[i] >= '0' && f[i] <= '9') || f[i] == '_' || f[i] == '.'))
			return false;
	return true;
}

static int take_cgroup(struct jail_args *a, const char *val, struct errbuf *eb)
{
	const char *eq = strchr(val, '=');

	if (!eq || !eq[1] || !cgroup_file_ok(val, (size_t)(eq - val))) {
		errbuf_set(eb, "--cgroup: \"%s\" is not FILE=VALUE with a cgroup v2 file "
			   "such as memory.max or pids.max", val);
		return -EINVAL;
	}
	if (a->ncgroup_files == JAIL_MAX_CGROUP_FILES) {
		errbuf_set(eb, "--cgroup: more than %d files", JAIL_MAX_CGROUP_FILES);
		return -EINVAL;
	}
	struct jail_cgroup_file *f = &a->cgroup_files[a->ncgroup_files++];
	memcpy(f->file, val, (size_t)(eq - val));
	f->file[eq - val] = '\0';
	f->value = eq + 1;
	return 0;
}

static const char *const rlimit_names[JAIL_RLIMIT_COUNT] = {
	[JAIL_RLIMIT_FSIZE] = "fsize", [JAIL_RLIMIT_NOFILE] = "no-file", [JAIL_RLIMIT_CORE] = "core",
};

static int take_rlimit(struct jail_args *a, const char *val, struct errbuf *eb)
{
	const char *eq = strchr(val, '=');
	unsigned long long n;

	for (unsigned r = 0; eq && r < JAIL_RLIMIT_COUNT; r++) {
		if (strlen(rlimit_names[r]) != (size_t)(eq - val) ||
		    strncmp(val, rlimit_names[r], (size_t)(eq - val)))
			continue;
		if (parse_num(eq + 1, RLIM_INFINITY - 1, &n) < 0)
			break;
		a->rlimit_set[r] = true;
		a->rlimit[r] = (rlim_t)n;
		return 0;
	}
	errbuf_set(eb, "--resource-limit: \"%s\" is not fsize=N, no-file=N or core=N", val);
	return -EINVAL;
}

static int take_id_number(const char *flag, const char *val, unsigned *out, struct errbuf *eb)
{
	unsigned long long n;

	/* (uid_t)-1 means "unchanged" to setresuid: not an id. */
	if (parse_num(val, UINT_MAX - 1, &n) < 0) {
		errbuf_set(eb, "%s: \"%s\" is not a number from 0 to %u", flag, val, UINT_MAX - 1);
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

static int take_keep_cap(struct jail_args *a, const char *val, struct errbuf *eb)
{
	int cap = jail_cap_number(val);

	if (cap < 0) {
		errbuf_set(eb, "--keep-cap: \"%s\" is not a capability (e.g. CAP_NET_ADMIN)", val);
		return -EINVAL;
	}
	a->keep_caps |= 1ull << cap;
	return 0;
}

enum jail_flag {
	F_ID, F_EXEC, F_UID, F_GID, F_BASE, F_NETNS, F_DAEMON, F_PIDNS, F_CGROUP, F_CGVER,
	F_PARENT, F_RLIMIT, F_KEEPCAP, F_HELP,
};

static const struct {
	const char *name;
	bool value;
} flags[] = {
	[F_ID] = { "id", true }, [F_EXEC] = { "exec-file", true }, [F_UID] = { "uid", true },
	[F_GID] = { "gid", true }, [F_BASE] = { "chroot-base-dir", true },
	[F_NETNS] = { "netns", true }, [F_DAEMON] = { "daemonize", false },
	[F_PIDNS] = { "new-pid-ns", false }, [F_CGROUP] = { "cgroup", true },
	[F_CGVER] = { "cgroup-version", true }, [F_PARENT] = { "parent-cgroup", true },
	[F_RLIMIT] = { "resource-limit", true }, [F_KEEPCAP] = { "keep-cap", true },
	[F_HELP] = { "help", false },
};

static int take_cgroup_version(const char *val, struct errbuf *eb)
{
	if (!strcmp(val, "2"))
		return 0;
	if (!strcmp(val, "1"))
		errbuf_set(eb, "--cgroup-version 1: cgroup v1 is not supported; kvmini's jailer "
			   "uses the unified hierarchy (--cgroup-version 2)");
	else
		errbuf_set(eb, "--cgroup-version: \"%s\" is not 2", val);
	return -EINVAL;
}

static int take_path(const char *flag, const char *val, const char **out, bool absolute,
		     struct errbuf *eb)
{
	if (!*val || (absolute && *val != '/')) {
		errbuf_set(eb, "%s: \"%s\" is not %s path", flag, val, absolute ? "an absolute" : "a");
		return -EINVAL;
	}
	*out = val;
	return 0;
}

static int take_flag(struct jail_args *a, enum jail_flag f, const char *val, struct errbuf *eb)
{
	switch (f) {
	case F_ID:
		a->id = val;
		if (jail_id_ok(val))
			return 0;
		errbuf_set(eb, "--id: \"%s\" is not an instance id (1 to 64 letters, digits or '-')", val);
		return -EINVAL;
	case F_EXEC: return take_path("--exec-file", val, &a->exec_file, false, eb);
	case F_UID: return take_id_number("--uid", val, &a->uid, eb);
	case F_GID: return take_id_number("--gid", val, &a->gid, eb);
	case F_BASE: return take_path("--chroot-base-dir", val, &a->chroot_base, true, eb);
	case F_NETNS: return take_path("--netns", val, &a->netns, false, eb);
	case F_DAEMON: a->daemonize = true; return 0;
	case F_PIDNS: a->new_pid_ns = true; return 0;
	case F_CGROUP: return take_cgroup(a, val, eb);
	case F_CGVER: return take_cgroup_version(val, eb);
	case F_PARENT:
		a->parent_cgroup = val;
		if (relative_path_ok(val))
			return 0;
		errbuf_set(eb, "--parent-cgroup: \"%s\" is not a relative path without . or ..", val);
		return -EINVAL;
	case F_RLIMIT: return take_rlimit(a, val, eb);
	case F_KEEPCAP: return take_keep_cap(a, val, eb);
	case F_HELP: return 1;
	}
	return -EINVAL;
}

/* The flag at argv[*i] (--name VALUE or --name=VALUE), its value taken. */
static int take_one(struct jail_args *a, int argc, char **argv, int *i, struct errbuf *eb)
{
	const char *arg = argv[*i], *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);

	for (unsigned f = 0; !strncmp(arg, "--", 2) && f < ARRAY_SIZE(flags); f++) {
		if (strlen(flags[f].name) != len - 2 || strncmp(flags[f].name, arg + 2, len - 2))
			continue;
		if (!flags[f].value && eq) {
			errbuf_set(eb, "--%s takes no value", flags[f].name);
			return -EINVAL;
		}
		if (flags[f].value && !eq && *i + 1 >= argc) {
			errbuf_set(eb, "--%s needs a value", flags[f].name);
			return -EINVAL;
		}
		const char *val = !flags[f].value ? "" : eq ? eq + 1 : argv[++*i];
		return take_flag(a, (enum jail_flag)f, val, eb);
	}
	if (!strcmp(arg, "-h"))
		return 1;
	errbuf_set(eb, "unknown %s \"%s\" (the VMM's own arguments go after --)",
		   arg[0] == '-' ? "flag" : "argument", arg);
	return -EINVAL;
}

/* The required flags are there; defaults for the rest. */
static int finish(struct jail_args *a, struct errbuf *eb)
{
	if (!a->id || !a->exec_file || a->uid == (uid_t)-1 || a->gid == (gid_t)-1) {
		errbuf_set(eb, "--id, --exec-file, --uid and --gid are required (missing: %s)",
			   !a->id ? "--id" : !a->exec_file ? "--exec-file" :
			   a->uid == (uid_t)-1 ? "--uid" : "--gid");
		return -EINVAL;
	}
	const char *slash = strrchr(a->exec_file, '/');
	a->exec_name = slash ? slash + 1 : a->exec_file;
	if (!*a->exec_name || !strcmp(a->exec_name, ".") || !strcmp(a->exec_name, "..")) {
		errbuf_set(eb, "--exec-file: \"%s\" does not name a file", a->exec_file);
		return -EINVAL;
	}
	if (!a->parent_cgroup)
		a->parent_cgroup = a->exec_name;
	if (!a->rlimit_set[JAIL_RLIMIT_NOFILE]) {
		a->rlimit_set[JAIL_RLIMIT_NOFILE] = true;
		a->rlimit[JAIL_RLIMIT_NOFILE] = JAIL_DEFAULT_NOFILE;
	}
	return 0;
}

int jail_args_parse(struct jail_args *a, int argc, char **argv, struct errbuf *eb)
{
	int i, r = 0;

	memset(a, 0, sizeof(*a));
	a->uid = (uid_t)-1;
	a->gid = (gid_t)-1;
	a->chroot_base = JAIL_DEFAULT_CHROOT_BASE;
	for (i = 1; i < argc && r == 0 && strcmp(argv[i], "--"); i++)
		r = take_one(a, argc, argv, &i, eb);
	if (r)
		return r;
	a->vmm_argc = i < argc ? argc - i - 1 : 0;
	a->vmm_argv = i < argc ? argv + i + 1 : argv + argc;
	return finish(a, eb);
}

void jail_vmm_argv(const struct jail_args *a, char *path, char **out)
{
	int n = 0, i = 0;

	out[n++] = path;
	if (a->vmm_argc > 0 && !strcmp(a->vmm_argv[0], "run") && !strstr(a->exec_name, "firecracker"))
		out[n++] = a->vmm_argv[i++];
	if (strstr(a->exec_name, "firecracker") || n == 2) {
		out[n++] = "--id";
		out[n++] = (char *)a->id;
	}
	while (i < a->vmm_argc)
		out[n++] = a->vmm_argv[i++];
	out[n] = NULL;
}
