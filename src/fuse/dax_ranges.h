/*
 * The ranges of a DAX window that hold a mapping, and what each maps: the
 * FUSE server's record of the window, kept so a snapshot can name every
 * mapping (fuse_dax_state.c) without reading the window itself.
 *
 * A table of non-overlapping ranges sorted by window offset. Adding a
 * range first takes out whatever it overlaps, as the mmap(MAP_FIXED) it
 * records replaces what was there; removing may cut a range in two. So
 * one operation grows the table by at most two entries, which
 * dax_ranges_reserve() makes room for before the window is touched: the
 * window and the table then never disagree for want of memory.
 *
 * Not thread-safe: the server holds its dax_lock around every call.
 */
#ifndef KVMINI_FUSE_DAX_RANGES_H
#define KVMINI_FUSE_DAX_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most ranges held at once: Linux maps 2 MiB ranges, so a 64 GiB window
 * holds 32768; twice that leaves room for a client that cuts them up.
 * Past it SETUPMAPPING answers ENOMEM. */
#define DAX_RANGES_MAX 65536u

struct dax_range {
	uint64_t moffset;   /* window offset */
	uint64_t len;
	uint64_t nodeid;    /* the node whose file is mapped */
	uint64_t foffset;   /* file offset of @moffset */
	bool write;         /* mapped writable */
};

struct dax_ranges {
	struct dax_range *v;
	size_t n, cap;
};

/* Room for @more entries beyond the current ones. 0 or -ENOMEM (also past
 * DAX_RANGES_MAX). */
int dax_ranges_reserve(struct dax_ranges *t, size_t more);
/* Record @r, replacing what it overlaps. Needs dax_ranges_reserve(t, 2). */
void dax_ranges_add(struct dax_ranges *t, const struct dax_range *r);
/* Take [@moffset, @moffset + @len) out. Needs dax_ranges_reserve(t, 1). */
void dax_ranges_remove(struct dax_ranges *t, uint64_t moffset, uint64_t len);
void dax_ranges_clear(struct dax_ranges *t);
void dax_ranges_free(struct dax_ranges *t);

#endif
