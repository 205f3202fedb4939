/*
 * The virtio-fs DAX window (virtio 1.3 5.11.6.1, the "cache" shared memory
 * region): a range of host address space the VMM gives the guest as device
 * memory, into which FUSE_SETUPMAPPING maps ranges of host files and
 * FUSE_REMOVEMAPPING takes them out again.
 *
 * The whole window is reserved at creation as an inaccessible anonymous
 * mapping (PROT_NONE, no memory behind it), so nothing but the file ranges
 * the FUSE server maps is ever reachable through it: a mapping is an
 * mmap(MAP_SHARED | MAP_FIXED) of the file over its part of the reservation,
 * and an unmapping puts the PROT_NONE reservation back over the range. Both
 * replace what was there in one call, so the window never has a hole that
 * another mmap of the process could fall into.
 *
 * The window implements the FUSE server's struct fuse_dax_window (the
 * server checks every request against the window and the file first; the
 * window checks its bounds again). Any thread: ranges are replaced by single
 * mmap calls, which the kernel serializes.
 */
#ifndef KVMINI_FS_DAX_WINDOW_H
#define KVMINI_FS_DAX_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "fuse/fuse_server.h"

/* Smallest window: one of the 2 MiB ranges Linux's FUSE DAX maps. */
#define DAX_WINDOW_MIN_SIZE (2ull << 20)
/* Largest: 64 GiB of guest-physical space. */
#define DAX_WINDOW_MAX_SIZE (64ull << 30)

struct dax_window {
	struct fuse_dax_window fuse;   /* what the FUSE server calls */
	uint8_t *host;                 /* the reservation, @fuse.size bytes */
};

/* Is @size a window size kvmini accepts: a power of two from
 * DAX_WINDOW_MIN_SIZE to DAX_WINDOW_MAX_SIZE. */
bool dax_window_size_valid(uint64_t size);

/* Reserve a window of @size bytes (dax_window_size_valid). NULL with
 * *@err set (-EINVAL, -ENOMEM). */
struct dax_window *dax_window_new(uint64_t size, int *err);
/* Take every mapping out (device reset). 0 or -errno. */
int dax_window_clear(struct dax_window *w);
void dax_window_free(struct dax_window *w);

#endif
