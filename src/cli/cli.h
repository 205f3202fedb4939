/* Subcommands of the kvmini program. Each returns the process exit status. */
#ifndef KVMINI_CLI_CLI_H
#define KVMINI_CLI_CLI_H

int cmd_vhost(int argc, char **argv);
int cmd_vhost_net(int argc, char **argv);
int cmd_vhost_fs(int argc, char **argv);
int cmd_vhost_blk(int argc, char **argv);
int cmd_fuse_mount(int argc, char **argv);
int cmd_run(int argc, char **argv);
/* The main thread's seccomp filter, after set-up and before its loop (a
 * kvmini waiting for its configuration: before the VM starts, see run.c);
 * once per process; logs why on failure. 0 or -errno. */
int cli_confine_main(void);
/* `--seccomp on|off` (usage text shared by the subcommands). */
int cli_seccomp_option(const char *val);
#define CLI_OPT_SECCOMP 0x5ecc
#define CLI_SECCOMP_USAGE \
	"  --seccomp on|off     seccomp filters per thread (default on; off is unsafe:\n" \
	"                       for debugging only)\n"
/* kvmini under the name `firecracker`: Firecracker's command line (firecracker.c). */
int cmd_firecracker(int argc, char **argv);
/* `kvmini jail`, and kvmini under the name `jailer`: Firecracker's jailer (jail.c). */
int cmd_jail(int argc, char **argv);

/* kvmini's version: `kvmini --version`, and the API's vmm_version. */
#define KVMINI_VERSION "0.1.0"
/* The Firecracker release whose API and command line kvmini follows (for
 * what it has): `firecracker --version` and GET /version report it, as
 * launchers check it (Kata wants "Firecracker v<semver>"). */
#define KVMINI_FC_COMPAT_VERSION "1.12.0"
/* Firecracker's API socket when none is named. */
#define FC_DEFAULT_API_SOCK "/run/firecracker.socket"

/* Exit statuses: 0 success, 1 runtime failure, 2 bad usage. */
enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

#endif
