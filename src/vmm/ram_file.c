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

#define PAGE 4096u

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (unsigned i = 0; i < PAGE / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, off_t at)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n, at);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
		at += k;
	}
	return 0;
}

/* One region at file offset @at: runs of pages that are not all zero,
 * each in one write; zero pages stay holes. */
static int save_region(int fd, const struct guest_mem_region *rg, off_t at, uint64_t *written)
{
	uint64_t run = 0, len = 0;

	for (uint64_t off = 0; off < rg->size; off += PAGE) {
		uint64_t n = rg->size - off < PAGE ? rg->size - off : PAGE;
		bool zero = n == PAGE && page_is_zero(rg->host + off);
		if (!zero) {
			if (!len)
				run = off;
			len += n;
			continue;
		}
		if (len) {
			int r = pwrite_all(fd, rg->host + run, (size_t)len, at + (off_t)run);
			if (r < 0)
				return r;
			*written += len;
			len = 0;
		}
	}
	if (!len)
		return 0;
	*written += len;
	return pwrite_all(fd, rg->host + run, (size_t)len, at + (off_t)run);
}

static int save_image(int fd, const struct guest_mem *mem, struct ram_file_stats *st)
{
	off_t at = 0;

	for (unsigned i = 0; i < mem->nregions; i++) {
		int r = save_region(fd, &mem->regions[i], at, &st->written);
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

int ram_file_save(const struct guest_mem *mem, const char *path, struct ram_file_stats *st,
		  struct errbuf *eb)
{
	char tmp[4096];

	*st = (struct ram_file_stats){ 0 };
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
		errbuf_set(eb, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		errbuf_set(eb, "%s: %s", tmp, strerror(e));
		return -e;
	}
	int r = save_image(fd, mem, st);
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		errbuf_set(eb, "%s: %s", path, strerror(-r));
		unlink(tmp);
	}
	return r;
}

int ram_file_map(uint8_t *ram, uint64_t bytes, const char *path, struct errbuf *eb)
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
	void *p = mmap(ram, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED) {
		errbuf_set(eb, "%s: cannot map: %s", path, strerror(e));
		return -e;
	}
	return 0;
}
