/*
 * The jail's files on the host: <base>/<exec name>/<id>/root, the exec
 * file copied in, the device nodes the VMM opens (/dev/kvm, /dev/net/tun,
 * /dev/urandom, /dev/null) owned by the jail's uid and gid, and the pid
 * file. What this module made, it can take away again (jail_fs_undo), so a
 * jail that fails to start leaves the chroot as it found it.
 */
#ifndef KVMINI_JAIL_JAIL_FS_H
#define KVMINI_JAIL_JAIL_FS_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "core/errbuf.h"
#include "jail/jail_args.h"

#define JAIL_FS_MAX_MADE 16

struct jail_fs {
	char root[PATH_MAX];              /* the chroot, on the host */
	unsigned nmade;                   /* paths made, relative to root's parents' top */
	char made[JAIL_FS_MAX_MADE][PATH_MAX];
	bool made_dir[JAIL_FS_MAX_MADE];
	bool dynamic;                     /* the exec file needs the dynamic loader */
};

/*
 * Make the chroot for @a: refused when <root>/<exec name>.pid names a live
 * process (the id is in use); the exec file must be a regular file. 0, or
 * -errno with @eb saying what failed (what was made is removed again).
 */
int jail_fs_prepare(struct jail_fs *fs, const struct jail_args *a, struct errbuf *eb);

/* Remove what jail_fs_prepare made, newest first. @prefix replaces the
 * chroot's path in each (after pivot_root the chroot is "/"): NULL keeps
 * it. Directories are removed only when empty. */
void jail_fs_undo(struct jail_fs *fs, const char *prefix);

/* Write <dir>/<exec name>.pid with @pid. 0 or -errno. */
int jail_fs_write_pid(const char *dir, const char *exec_name, pid_t pid);

/* Whether the ELF file at @path names a program interpreter (PT_INTERP):
 * 1 yes, 0 no (static, or not ELF), -errno when it cannot be read. */
int jail_elf_is_dynamic(const char *path);

#endif
