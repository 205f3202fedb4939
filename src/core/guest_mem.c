#include "core/guest_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/atomics.h"
#include "core/compiler.h"

void guest_mem_init(struct guest_mem *mem)
{
	memset(mem, 0, sizeof(*mem));
}

/* [a, a + alen) and [b, b + blen) share a byte; neither range wraps. */
static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static bool range_wraps(uint64_t start, uint64_t len)
{
	return start + len < start;
}

int guest_mem_add(struct guest_mem *mem, uint64_t gpa, uint64_t size, uint64_t uva,
		  void *host, void *map_base, size_t map_len)
{
	if (size == 0 || range_wraps(gpa, size) || range_wraps(uva, size) || !host)
		return -EINVAL;
	if (mem->nregions >= GUEST_MEM_MAX_REGIONS)
		return -ENOSPC;
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		if (ranges_overlap(gpa, size, r->gpa, r->size))
			return -EINVAL;
		/* uva 0 means "no frontend address" (the VMM's own memory). */
		if (uva && r->uva && ranges_overlap(uva, size, r->uva, r->size))
			return -EINVAL;
	}
	mem->regions[mem->nregions++] = (struct guest_mem_region){
		.gpa = gpa, .size = size, .uva = uva, .host = host,
		.map_base = map_base, .map_len = map_len,
	};
	return 0;
}

int guest_mem_add_fd(struct guest_mem *mem, uint64_t gpa, uint64_t size, uint64_t uva,
		     int fd, uint64_t offset)
{
	/* mmap wants a page-aligned offset; map from the page boundary below and
	 * point the region at the right byte. */
	uint64_t page = 4096;
	uint64_t slack = offset % page;
	if (size == 0 || range_wraps(offset, size) || size > SIZE_MAX - slack)
		return -EINVAL;
	size_t len = (size_t)(size + slack);
	void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			  fd, (off_t)(offset - slack));
	if (base == MAP_FAILED)
		return -errno;
	int r = guest_mem_add(mem, gpa, size, uva, (uint8_t *)base + slack, base, len);
	if (r < 0)
		munmap(base, len);
	else
		mem->regions[mem->nregions - 1].backing = GUEST_MEM_SHARED;
	return r;
}

void guest_mem_clear(struct guest_mem *mem)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		if (mem->regions[i].map_base)
			munmap(mem->regions[i].map_base, mem->regions[i].map_len);
		free(mem->regions[i].dirty);
	}
	guest_mem_init(mem);
}

int guest_mem_track_dirty(struct guest_mem *mem)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		struct guest_mem_region *r = &mem->regions[i];
		if (!r->dirty)
			r->dirty = calloc(guest_mem_dirty_words(r->size), sizeof(uint64_t));
		if (!r->dirty)
			return -ENOMEM;
	}
	mem->tracking = true;
	return 0;
}

/* Set bits [first, last] of @bits: whole words at once between the ends. */
static void set_bits(uint64_t *bits, uint64_t first, uint64_t last)
{
	while (first <= last) {
		uint64_t w = first / 64, shift = first % 64;
		uint64_t n = MIN(64 - shift, last - first + 1);
		uint64_t mask = n == 64 ? ~0ull : ((1ull << n) - 1) << shift;
		/* Relaxed: the bits are read only when the writers are held
		 * (a paused VM), which orders everything before. */
		if ((load_relaxed(&bits[w]) & mask) != mask)
			fetch_or_relaxed(&bits[w], mask);
		first += n;
	}
}

void guest_mem_mark_dirty_range(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (!len || range_wraps(gpa, len - 1))
		return;
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		uint64_t last = gpa + (len - 1), r_last = r->gpa + (r->size - 1);
		if (!r->dirty || last < r->gpa || gpa > r_last)
			continue;
		uint64_t start = MAX(gpa, r->gpa) - r->gpa;
		uint64_t end = MIN(last, r_last) - r->gpa;
		set_bits(r->dirty, start / GUEST_MEM_PAGE, end / GUEST_MEM_PAGE);
	}
}

void guest_mem_take_dirty(const struct guest_mem *mem, unsigned i, uint64_t *out)
{
	const struct guest_mem_region *r = &mem->regions[i];

	if (!r->dirty)
		return;
	for (size_t w = 0; w < guest_mem_dirty_words(r->size); w++)
		out[w] |= exchange_seq_cst(&r->dirty[w], 0);
}

/* The region holding @gpa, or NULL. Regions are few (at most 8): a linear
 * scan beats anything cleverer. */
static const struct guest_mem_region *region_of(const struct guest_mem *mem, uint64_t gpa)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

int guest_mem_to_iov_any(const struct guest_mem *mem, uint64_t gpa, uint64_t len,
			 struct iovec *iov, unsigned max_iov)
{
	unsigned n = 0;

	if (range_wraps(gpa, len))
		return -EFAULT;
	while (len > 0) {
		const struct guest_mem_region *r = region_of(mem, gpa);
		if (!r)
			return -EFAULT;
		if (n == max_iov)
			return -ENOBUFS;
		uint64_t off = gpa - r->gpa;
		uint64_t chunk = MIN(len, r->size - off);
		iov[n].iov_base = r->host + off;
		iov[n].iov_len = (size_t)chunk;
		n++;
		gpa += chunk;
		len -= chunk;
	}
	return (int)n;
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	const struct guest_mem_region *r = region_of(mem, gpa);

	if (!r || len > r->size - (gpa - r->gpa))
		return NULL;
	return r->host + (gpa - r->gpa);
}

void guest_mem_set_backing(struct guest_mem *mem, unsigned i, enum guest_mem_backing b)
{
	if (i < mem->nregions)
		mem->regions[i].backing = b;
}

/* The system call that frees @len bytes at @host for @b. */
static int discard_host(uint8_t *host, size_t len, enum guest_mem_backing b)
{
	int r;

	if (b == GUEST_MEM_FILE_PRIVATE) {
		void *p = mmap(host, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
		r = p == MAP_FAILED ? -1 : 0;
	} else {
		r = madvise(host, len, b == GUEST_MEM_SHARED ? MADV_REMOVE : MADV_DONTNEED);
	}
	return r < 0 ? -errno : 0;
}

int guest_mem_discard(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	const struct guest_mem_region *r = region_of(mem, gpa);

	if (!r || !len || len > r->size - (gpa - r->gpa))
		return -EFAULT;
	uint8_t *host = r->host + (gpa - r->gpa);
	if ((gpa | len | (uintptr_t)host) % GUEST_MEM_PAGE)
		return -EINVAL;
	int e = discard_host(host, (size_t)len, r->backing);
	if (!e)
		guest_mem_mark_dirty(mem, gpa, len);
	return e;
}

int guest_mem_uva_to_gpa(const struct guest_mem *mem, uint64_t uva, uint64_t len,
			 uint64_t *gpa)
{
	for (unsigned i = 0; i < mem->nregions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		if (!r->uva || uva < r->uva || uva - r->uva >= r->size)
			continue;
		if (len > r->size - (uva - r->uva))
			return -EFAULT;
		*gpa = r->gpa + (uva - r->uva);
		return 0;
	}
	return -EFAULT;
}

size_t iov_copy(const struct iovec *dst, unsigned dstcnt, size_t dst_off,
		const struct iovec *src, unsigned srccnt, size_t src_off, size_t len)
{
	size_t di_off, si_off, done = 0;
	unsigned di = iov_seek(dst, dstcnt, dst_off, &di_off);
	unsigned si = iov_seek(src, srccnt, src_off, &si_off);

	/* Most copies (a small frame, a header) stay inside one piece each. */
	if (di < dstcnt && si < srccnt && len && len <= dst[di].iov_len - di_off &&
	    len <= src[si].iov_len - si_off) {
		memmove((uint8_t *)dst[di].iov_base + di_off,
			(const uint8_t *)src[si].iov_base + si_off, len);
		return len;
	}

	while (done < len && di < dstcnt && si < srccnt) {
		size_t n = MIN(len - done, MIN(dst[di].iov_len - di_off, src[si].iov_len - si_off));
		/* memmove: the guest may point source and destination at the same
		 * memory (a TX buffer that is also an RX buffer). Empty pieces may
		 * have a NULL base, which no mem* function accepts. */
		if (n)
			memmove((uint8_t *)dst[di].iov_base + di_off,
				(const uint8_t *)src[si].iov_base + si_off, n);
		done += n;
		di_off += n;
		si_off += n;
		if (di_off == dst[di].iov_len) {
			di++;
			di_off = 0;
		}
		if (si_off == src[si].iov_len) {
			si++;
			si_off = 0;
		}
	}
	return done;
}
