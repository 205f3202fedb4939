/* Subcommands of the kvmini program. Each returns the process exit status. */
#ifndef KVMINI_CLI_CLI_H
#define KVMINI_CLI_CLI_H

int cmd_vhost(int argc, char **argv);
int cmd_vhost_net(int argc, char **argv);
int cmd_vhost_fs(int argc, char **argv);
int cmd_fuse_mount(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* kvmini's version: `kvmini --version`, and the API's vmm_version. */
#define KVMINI_VERSION "0.1.0"

/* Exit statuses: 0 success, 1 runtime failure, 2 bad usage. */
enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

#endif
