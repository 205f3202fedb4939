/* Guest RAM to and from a snapshot's memory file (see ram_file.h). */
#include "vmm/ram_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file_replace.h"

#include "core/compiler.h"

#define PAGE 4096u

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (unsigned i = 0; i < PAGE / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* Whether page @pg of a region goes into the file: in a Full image every
 * page not all zero; in a Diff exactly the dirty ones, zero or not (a
 * hole there would mean "unchanged": the layer below would show through). */
static bool page_kept(const struct guest_mem_region *rg, const uint64_t *dirty, uint64_t pg)
{
	if (dirty)
		return dirty[pg / 64] >> (pg % 64) & 1;
	return rg->size - pg * PAGE < PAGE || !page_is_zero(rg->host + pg * PAGE);
}

/* One region at file offset @at: each run of kept pages in one write;
 * the rest stays holes. */
static int save_region(int fd, const struct guest_mem_region *rg, const uint64_t *dirty, off_t at,
		       uint64_t *written)
{
	uint64_t pages = (rg->size + PAGE - 1) / PAGE;

	for (uint64_t pg = 0; pg < pages;) {
		if (!page_kept(rg, dirty, pg)) {
			pg++;
			continue;
		}
		uint64_t first = pg;
		while (pg < pages && page_kept(rg, dirty, pg))
			pg++;
		uint64_t off = first * PAGE, len = MIN(pg * PAGE, rg->size) - off;
		int r = file_pwrite_all(fd, rg->host + off, (size_t)len, at + (off_t)off);
		if (r < 0)
			return r;
		*written += len;
	}
	return 0;
}

static int save_image(int fd, const struct guest_mem *mem, const uint64_t *const *dirty,
		      struct ram_file_stats *st)
{
	off_t at = 0;

	for (unsigned i = 0; i < mem->nregions; i++) {
		int r = save_region(fd, &mem->regions[i], dirty ? dirty[i] : NULL, at, &st->written);
		if (r < 0)
			return r;
		at += (off_t)mem->regions[i].size;
	}
	st->bytes = (uint64_t)at;
	/* The holes at the end, too: the image is all of RAM. */
	if (ftruncate(fd, at) < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Where the file's data starts at or after @at, and where that data ends
 * (file end when none): SEEK_DATA / SEEK_HOLE. */
static void next_data(int fd, off_t at, off_t end, off_t *data, off_t *hole)
{
	*data = lseek(fd, at, SEEK_DATA);
	if (*data < 0) {               /* ENXIO: no data after @at */
		*data = *hole = end;
		return;
	}
	*hole = lseek(fd, *data, SEEK_HOLE);
	if (*hole < 0 || *hole > end)
		*hole = end;
}

/*
 * A Diff's contract is that its data ranges are exactly its dirty pages.
 * A filesystem that allocates in blocks bigger than a page, or turns
 * written zeros back into holes, breaks it silently; so the written file
 * is read back (its layout only) and refused when it does not hold.
 */
static int check_layout(int fd, const struct guest_mem *mem, const uint64_t *const *dirty)
{
	off_t base = 0, data = -1, hole = -1;

	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct guest_mem_region *rg = &mem->regions[i];
		off_t end = base + (off_t)rg->size;
		for (uint64_t pg = 0; pg * PAGE < rg->size; pg++) {
			off_t at = base + (off_t)(pg * PAGE);
			if (at >= hole)
				next_data(fd, at, end, &data, &hole);
			bool in_data = at >= data && at < hole;
			if (in_data != page_kept(rg, dirty[i], pg))
				return -EILSEQ;
		}
		base = end;
		data = hole = -1;
	}
	return 0;
}

static int save(const struct guest_mem *mem, const char *path, const uint64_t *const *dirty,
		struct ram_file_stats *st, struct errbuf *eb)
{
	struct file_replace rf;

	*st = (struct ram_file_stats){ 0 };
	int r = file_replace_open(&rf, path, eb);
	if (r < 0)
		return r;
	r = save_image(rf.fd, mem, dirty, st);
	if (r < 0)
		errbuf_set(eb, "%s: %s", path, strerror(-r));
	if (!r && dirty && check_layout(rf.fd, mem, dirty) < 0) {
		errbuf_set(eb, "%s: the filesystem does not keep holes page by page (it reports "
			   "data where none was written, or none where zeros were): a Diff memory "
			   "file needs one that does (ext4, xfs, btrfs, tmpfs)", path);
		r = -EILSEQ;
	}
	return file_replace_finish(&rf, r, eb);
}

int ram_file_save(const struct guest_mem *mem, const char *path, struct ram_file_stats *st,
		  struct errbuf *eb)
{
	return save(mem, path, NULL, st, eb);
}

int ram_file_save_diff(const struct guest_mem *mem, const char *path,
		       const uint64_t *const *dirty, struct ram_file_stats *st, struct errbuf *eb)
{
	return save(mem, path, dirty, st, eb);
}

/* Open @path for mapping over @bytes of RAM: a regular file exactly that
 * long. The descriptor, or -errno with why. */
static int open_image(const char *path, uint64_t bytes, struct errbuf *eb)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &sb) < 0) {
		int e = errno;
		errbuf_set(eb, "%s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != bytes) {
		errbuf_set(eb, "%s: %llu bytes, the snapshot's guest memory is %llu MiB: "
			   "not this snapshot's memory file", path,
			   (unsigned long long)sb.st_size, (unsigned long long)(bytes >> 20));
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* [off, off + len) of @fd privately at @ram + off, over what was there. */
static int map_range(uint8_t *ram, int fd, off_t off, size_t len, const char *path,
		     struct errbuf *eb)
{
	void *p = mmap(ram + off, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, off);

	if (p != MAP_FAILED)
		return 0;
	int e = errno;
	errbuf_set(eb, "%s: cannot map%s: %s", path,
		   e == ENOMEM ? " (too many pieces for vm.max_map_count?)" : "", strerror(e));
	return -e;
}

int ram_file_check(const char *path, uint64_t bytes, struct errbuf *eb)
{
	int fd = open_image(path, bytes, eb);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int ram_file_map(uint8_t *ram, uint64_t bytes, const char *path, struct errbuf *eb)
{
	int fd = open_image(path, bytes, eb);

	if (fd < 0)
		return fd;
	int r = map_range(ram, fd, 0, (size_t)bytes, path, eb);
	close(fd);
	return r;
}

int ram_file_map_layer(uint8_t *ram, uint64_t bytes, const char *path, struct errbuf *eb)
{
	int fd = open_image(path, bytes, eb);
	off_t end = (off_t)bytes, data, hole;
	int r = 0;

	if (fd < 0)
		return fd;
	for (off_t at = 0; !r && at < end; at = hole) {
		next_data(fd, at, end, &data, &hole);
		/* Data ranges come in filesystem blocks; a page is the unit the
		 * writer used (check_layout), so rounding out adds nothing. */
		off_t start = data & ~(off_t)(PAGE - 1);
		off_t stop = MIN(end, (hole + (off_t)PAGE - 1) & ~(off_t)(PAGE - 1));
		if (stop > start)
			r = map_range(ram, fd, start, (size_t)(stop - start), path, eb);
	}
	close(fd);
	return r;
}
