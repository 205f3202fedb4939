/* The virtio-fs DAX window (see dax_window.h). */
#include "fs/dax_window.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "core/compiler.h"

#define RESERVE_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

bool dax_window_size_valid(uint64_t size)
{
	return size >= DAX_WINDOW_MIN_SIZE && size <= DAX_WINDOW_MAX_SIZE &&
	       !(size & (size - 1));
}

static struct dax_window *to_window(struct fuse_dax_window *fw)
{
	return container_of(fw, struct dax_window, fuse);
}

/* The server checked the range; checked again here because a slip would
 * map over whatever lies beyond the reservation. */
static bool range_inside(const struct dax_window *w, uint64_t moffset, uint64_t len)
{
	return len && moffset < w->fuse.size && len <= w->fuse.size - moffset;
}

static int window_map(struct fuse_dax_window *fw, int fd, uint64_t foffset, uint64_t moffset,
		      uint64_t len, bool writable)
{
	struct dax_window *w = to_window(fw);
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);

	if (!range_inside(w, moffset, len) || foffset > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (mmap(w->host + moffset, len, prot, MAP_SHARED | MAP_FIXED, fd, (off_t)foffset) ==
	    MAP_FAILED)
		return -errno;
	return 0;
}

static int window_unmap(struct fuse_dax_window *fw, uint64_t moffset, uint64_t len)
{
	struct dax_window *w = to_window(fw);

	if (!range_inside(w, moffset, len))
		return -EINVAL;
	if (mmap(w->host + moffset, len, PROT_NONE, RESERVE_FLAGS | MAP_FIXED, -1, 0) ==
	    MAP_FAILED)
		return -errno;
	return 0;
}

struct dax_window *dax_window_new(uint64_t size, int *err)
{
	if (!dax_window_size_valid(size)) {
		*err = -EINVAL;
		return NULL;
	}
	struct dax_window *w = calloc(1, sizeof(*w));
	if (!w) {
		*err = -ENOMEM;
		return NULL;
	}
	w->host = mmap(NULL, size, PROT_NONE, RESERVE_FLAGS, -1, 0);
	if (w->host == MAP_FAILED) {
		*err = -errno;
		free(w);
		return NULL;
	}
	w->fuse = (struct fuse_dax_window){ .size = size, .map = window_map,
					    .unmap = window_unmap };
	return w;
}

int dax_window_clear(struct dax_window *w)
{
	return window_unmap(&w->fuse, 0, w->fuse.size);
}

void dax_window_free(struct dax_window *w)
{
	if (!w)
		return;
	munmap(w->host, w->fuse.size);
	free(w);
}
