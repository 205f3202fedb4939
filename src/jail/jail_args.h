/*
 * The jailer's command line (`kvmini jail`, and kvmini under the name
 * `jailer`): Firecracker's jailer flags, checked and held in one struct
 * before anything on the host is touched, so a bad flag leaves nothing
 * behind. Pointers in the struct point into argv.
 */
#ifndef KVMINI_JAIL_JAIL_ARGS_H
#define KVMINI_JAIL_JAIL_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "core/errbuf.h"

#define JAIL_DEFAULT_CHROOT_BASE "/srv/jailer"
/* Firecracker's jailer's default open-files limit. */
#define JAIL_DEFAULT_NOFILE 2048
#define JAIL_MAX_CGROUP_FILES 16
/* A cgroup interface file's name ("memory.max") fits with room to spare. */
#define JAIL_CGROUP_FILE_LEN 64

enum jail_rlimit { JAIL_RLIMIT_FSIZE, JAIL_RLIMIT_NOFILE, JAIL_RLIMIT_CORE, JAIL_RLIMIT_COUNT };

struct jail_cgroup_file {
	char file[JAIL_CGROUP_FILE_LEN];  /* "pids.max" */
	const char *value;                /* "64" */
};

struct jail_args {
	const char *id;
	const char *exec_file;            /* as given */
	const char *exec_name;            /* its last component: the name inside the jail */
	uid_t uid;
	gid_t gid;
	const char *chroot_base;
	const char *netns;                /* NULL: the caller's network namespace */
	const char *parent_cgroup;        /* relative to the cgroup v2 mount */
	bool daemonize;
	bool new_pid_ns;
	unsigned ncgroup_files;
	struct jail_cgroup_file cgroup_files[JAIL_MAX_CGROUP_FILES];
	bool rlimit_set[JAIL_RLIMIT_COUNT];
	rlim_t rlimit[JAIL_RLIMIT_COUNT];
	uint64_t keep_caps;               /* bit n: capability n survives */
	int vmm_argc;                     /* the arguments after "--" */
	char **vmm_argv;
};

/*
 * Parse argv[1..argc-1] into @a. 0; 1 when --help was asked (nothing else
 * done); -EINVAL with @eb saying which flag and why.
 */
int jail_args_parse(struct jail_args *a, int argc, char **argv, struct errbuf *eb);

/* Firecracker's instance ids: 1 to 64 ASCII letters, digits and '-' (the
 * jailer's --id and, under the name firecracker, kvmini run's --id). */
bool jail_id_ok(const char *id);

/* Capability @name ("CAP_NET_ADMIN" or "net_admin", any case): its number,
 * or -1. */
int jail_cap_number(const char *name);

/*
 * The VMM's argv (NULL-terminated) into @out, which has room for
 * a->vmm_argc + 4 entries; @path is "/<exec name>". An exec file whose name
 * has "firecracker" in it gets `--id ID` first, as Firecracker's jailer
 * passes it; any other (kvmini) takes its subcommand first, so `--id ID`
 * follows a leading `run` and the arguments pass unchanged otherwise.
 */
void jail_vmm_argv(const struct jail_args *a, char *path, char **out);

/* The usage text of `kvmini jail` / `jailer`. */
extern const char jail_usage[];

#endif
