/*
 * Parts of <linux/fuse.h> newer than the installed uapi header (Debian 12
 * ships protocol 7.38): FUSE passthrough, protocol 7.40 (Linux 6.9). The
 * values and layouts are those of the 7.40 header; where 7.40 gave a name to
 * a field that 7.38 calls padding, an accessor names it here.
 */
#ifndef KVMINI_FUSE_FUSE_COMPAT_H
#define KVMINI_FUSE_FUSE_COMPAT_H

#include <stdint.h>
#include <linux/fuse.h>
#include <linux/ioctl.h>

#ifndef FUSE_PASSTHROUGH
/* INIT flag (bit 37: flags2 bit 5). */
#define FUSE_PASSTHROUGH (1ULL << 37)
/* OPEN/CREATE reply flag: read/write/mmap go to the backing file. */
#define FOPEN_PASSTHROUGH (1 << 7)

struct fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#define FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

/* fuse_init_out.max_stack_depth is 7.38's unused[0]. */
#define FUSE_INIT_OUT_MAX_STACK_DEPTH(out) ((out)->unused[0])
/* fuse_open_out.backing_id is 7.38's padding. */
#define FUSE_OPEN_OUT_BACKING_ID(out) ((out)->padding)
#else
#define FUSE_INIT_OUT_MAX_STACK_DEPTH(out) ((out)->max_stack_depth)
#define FUSE_OPEN_OUT_BACKING_ID(out) ((out)->backing_id)
#endif

#endif
