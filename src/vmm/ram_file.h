/*
 * Guest RAM to and from a snapshot's memory file.
 *
 * The file is guest RAM as one flat image: the low region's bytes, then
 * the high region's (above the 32-bit hole), so offset = position in RAM,
 * not guest physical address. Pages that are all zero are left as holes
 * (a fresh 256 MiB guest is mostly untouched memory), so the file is as
 * big as RAM but takes only the disk the guest used.
 *
 * Restore maps the file privately over the RAM reservation: a page is read
 * from the file when the guest (or a device) first touches it, and a write
 * makes a private copy; the file is never written through. So restore costs
 * no copy up front, and several VMs (clones) can map one file.
 *
 * A Diff image has the same layout, but holds only the pages dirty since
 * the snapshot below it, every other page a hole: a hole means
 * "unchanged", so a dirty page of zeros is written as data. Restore maps
 * the Full image, then each Diff's data ranges (SEEK_DATA / SEEK_HOLE)
 * over it, in order: each page comes from the topmost layer that has it,
 * still read on first touch, nothing copied. The Full image may keep zero
 * pages as holes: below it there is nothing but zeros.
 */
#ifndef KVMINI_VMM_RAM_FILE_H
#define KVMINI_VMM_RAM_FILE_H

#include <stdint.h>

#include "core/errbuf.h"
#include "core/guest_mem.h"

struct ram_file_stats {
	uint64_t bytes;              /* the image's size: all of RAM */
	uint64_t written;            /* bytes written (Full: pages not all zero; Diff: dirty pages) */
};

/*
 * Write every region of @mem, in order, to @path (through a temporary
 * file renamed into place: a VM restored from @path keeps the image it
 * mapped). The guest must not run meanwhile. 0 or -errno with why.
 */
int ram_file_save(const struct guest_mem *mem, const char *path, struct ram_file_stats *st,
		  struct errbuf *eb);

/*
 * Write a Diff image of @mem to @path: exactly the pages set in @dirty
 * (one bitmap per region, one bit per page, as guest_mem_take_dirty
 * fills them), holes elsewhere; then read the file's layout back and
 * refuse (-EILSEQ, with why) a filesystem whose holes do not match the
 * pages written. 0 or -errno with why in @eb.
 */
int ram_file_save_diff(const struct guest_mem *mem, const char *path,
		       const uint64_t *const *dirty, struct ram_file_stats *st, struct errbuf *eb);

/* Whether @path can be mapped over @bytes of RAM (a regular file that
 * long, readable), before anything is built on it: 0 or -errno with why. */
int ram_file_check(const char *path, uint64_t bytes, struct errbuf *eb);

/*
 * Map @path privately at @ram (@bytes, page-aligned, already reserved by
 * the caller), replacing what was there. The file must be exactly @bytes
 * long. 0 or -errno with why.
 */
int ram_file_map(uint8_t *ram, uint64_t bytes, const char *path, struct errbuf *eb);

/* Map a Diff image's data ranges over what ram_file_map (and earlier
 * layers) mapped at @ram; its holes leave those showing. Same checks. */
int ram_file_map_layer(uint8_t *ram, uint64_t bytes, const char *path, struct errbuf *eb);

#endif
