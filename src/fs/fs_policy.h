/*
 * What the filesystem backends decide alike: who may access a node, which
 * extended-attribute namespaces a client may touch. Pure functions, no I/O and no locks, so that both backends
 * (passthrough.c, memfs.c) answer the same way and unit tests can pin the
 * rules down without a filesystem.
 *
 * Not here, because they are central already: the name rules (1..NAME_MAX
 * bytes, no '/', never "." or "..") are checked by the FUSE dispatcher
 * before any backend runs (fs_backend.h), and set-user-id/set-group-id
 * clearing on write, truncate and open(O_TRUNC) is fuse_kill_suidgid()
 * (src/fuse/fuse_nodes.c) calling the backend's setattr.
 */
#ifndef KVMINI_FS_FS_POLICY_H
#define KVMINI_FS_FS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fuse/fs_backend.h"

/*
 * fs_policy_access() - FUSE_ACCESS: may @ctx use @st as @mask (R_OK, W_OK,
 * X_OK; F_OK is 0) says?
 *
 * The owner's, else the group's, else the others' permission bits decide.
 * uid 0 may read and write anything, and execute what anyone may execute
 * (or search any directory). Supplementary groups are not known here (the
 * FUSE header carries one gid); a client kernel with default_permissions
 * checks them itself. Returns 0 or -EACCES.
 */
int fs_policy_access(const struct fs_ctx *ctx, const struct stat *st, uint32_t mask);

/* Extended-attribute namespaces, as bits of an allowed set. */
enum {
	FS_XATTR_USER = 1u << 0,      /* "user." */
	FS_XATTR_TRUSTED = 1u << 1,   /* "trusted." */
	FS_XATTR_SECURITY = 1u << 2,  /* "security." */
	FS_XATTR_SYSTEM = 1u << 3,    /* "system." (POSIX ACLs) */
	FS_XATTR_OTHER = 1u << 4,     /* any other prefix, or none */
	FS_XATTR_ALL = (1u << 5) - 1,
};

/* The namespace bit of @name. */
unsigned fs_xattr_ns(const char *name);

/* Whether @name lies in one of the namespaces of @allowed. */
bool fs_xattr_allowed(const char *name, unsigned allowed);

/*
 * fs_xattr_filter() - keep, in place, only the names of a listxattr(2)
 * list (@len bytes of NUL-terminated names) that @allowed lets a client
 * see. Returns the filtered length.
 */
size_t fs_xattr_filter(char *list, size_t len, unsigned allowed);

#endif
