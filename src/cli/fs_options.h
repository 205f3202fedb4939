/*
 * The options of a shared filesystem, in one table for every front door:
 * the long options of `kvmini vhost fs` and `kvmini fuse-mount`, and the
 * ,KEY[=VALUE] list after `kvmini run --fs DIR:TAG`. One name, one meaning,
 * one check and one message wherever an option is spelled.
 */
#ifndef KVMINI_CLI_FS_OPTIONS_H
#define KVMINI_CLI_FS_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>

#include "fs/virtio_fs.h"
#include "machine/fs_share.h"

/* Where an option is accepted (a mask per table entry). */
enum cli_fs_door {
	CLI_FS_VHOST = 1u << 0,      /* kvmini vhost fs --NAME */
	CLI_FS_FUSE = 1u << 1,       /* kvmini fuse-mount --NAME */
	CLI_FS_RUN = 1u << 2,        /* kvmini run --NAME (every --fs share) */
	CLI_FS_RUN_SHARE = 1u << 3,  /* kvmini run --fs DIR:TAG,NAME[=VALUE] */
};

/* getopt_long codes of the table's options: CLI_FS_OPT_BASE + index. */
#define CLI_FS_OPT_BASE 0x4f00
#define CLI_FS_MAX_LONG_OPTIONS 24u

/* One share's options as given. */
struct cli_fs_args {
	struct fs_share_config share;
	struct virtio_fs_opts dev;       /* request queues and workers (virtio-fs) */
	unsigned threads;                /* workers: virtio-fs's, or /dev/fuse readers */
	unsigned given;                  /* bit i: the table's option i was given */
};

void cli_fs_args_init(struct cli_fs_args *a);

/* Append the long options accepted at @door to @opts (room for
 * CLI_FS_MAX_LONG_OPTIONS); returns how many. */
unsigned cli_fs_long_options(struct option *opts, enum cli_fs_door door);

/* Take getopt's @opt: 1 when it is not one of the table's, 0 when taken,
 * -EINVAL (logged) for a bad value. */
int cli_fs_take(struct cli_fs_args *a, int opt, const char *val);

/* Take "NAME[=VALUE],..." (run --fs); @what names the share in messages.
 * 0 or -EINVAL (logged). */
int cli_fs_take_list(struct cli_fs_args *a, const char *list, const char *what);

/* Was the option called @name given? */
bool cli_fs_given(const struct cli_fs_args *a, const char *name);

/* Give @a the options @defaults has and @a was not given (run's
 * --no-notify and --max-watches for every --fs share). */
void cli_fs_inherit(struct cli_fs_args *a, const struct cli_fs_args *defaults);

/* The options that go together only with one backend; 0 or -EINVAL (logged). */
int cli_fs_check(struct cli_fs_args *a);

#endif
