/*
 * memfs: an fs_backend kept entirely in memory, for tests and for scratch
 * filesystems a guest may fill and throw away.
 *
 * Files, directories, symbolic links, special files (inert metadata here),
 * hard links, extended attributes ("user.", "trusted." and "security."
 * namespaces) and sparse files: a file's data is one buffer as long as the
 * highest byte ever written, and bytes past it up to the file size read as
 * zeros, so truncating up costs nothing.
 *
 * Node ids are slot numbers with a generation; file handles carry the
 * handle slot's generation in their upper 32 bits, so a stale or forged id
 * is -ESTALE / -EBADF, never another object. A node is freed when it has no
 * links, no lookups held by the client and no open handle.
 *
 * Limits: max_bytes of file data and xattr values in total (-ENOSPC past
 * it), max_nodes nodes (-ENOSPC), files up to 1 TiB (-EFBIG).
 *
 * Concurrency: one mutex around every operation; data is copied to and from
 * the caller's iovecs under it.
 */
#ifndef KVMINI_FS_MEMFS_H
#define KVMINI_FS_MEMFS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/counters.h"
#include "fuse/fs_backend.h"

struct memfs_opts {
	uint64_t max_bytes;          /* 0: 256 MiB */
	uint64_t max_nodes;          /* 0: 65536 */
	mode_t root_mode;            /* permission bits of the root; 0: 0755 */
	bool squash;                 /* new nodes owned by squash_uid:squash_gid, chown ignored */
	uid_t squash_uid;
	gid_t squash_gid;
};

/* Levels, printed "memfs_<name>". */
#define MEMFS_STATS(X) \
	X(nodes,   "live nodes, the root included") \
	X(bytes,   "data and xattr bytes allocated") \
	X(handles, "open file and directory handles") \
	X(lookups, "lookup references the client holds")

struct memfs_stats {
	MEMFS_STATS(COUNTER_FIELD)
};
extern const struct counter_set memfs_stats_set;

/* Returns NULL with *@err = -ENOMEM on failure. @o may be NULL. */
struct fs_backend *memfs_new(const struct memfs_opts *o, int *err);

/* @be must come from memfs_new. */
void memfs_get_stats(struct fs_backend *be, struct memfs_stats *st);

#endif
