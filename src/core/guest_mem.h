/*
 * Guest memory map: the only module that turns guest addresses into host
 * pointers. Every translation is bounds-checked against the regions; nothing
 * else in kvmini dereferences guest-controlled addresses.
 *
 * The same map serves both transports: the VMM fills it from its memfd, the
 * vhost-user server from SET_MEM_TABLE (which also supplies each region's
 * address in the frontend's own process, used by SET_VRING_ADDR).
 */
#ifndef KVMINI_CORE_GUEST_MEM_H
#define KVMINI_CORE_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* The vhost-user spec's baseline region count; the VMM uses fewer. */
#define GUEST_MEM_MAX_REGIONS 8

/* How a region's memory is mapped: what giving pages back to the host
 * takes (guest_mem_discard). */
enum guest_mem_backing {
	GUEST_MEM_ANON_PRIVATE = 0,  /* private anonymous: MADV_DONTNEED frees, reads zero */
	GUEST_MEM_SHARED,            /* MAP_SHARED of a memfd or file: MADV_REMOVE punches */
	GUEST_MEM_FILE_PRIVATE,      /* a file mapped privately (a restored snapshot) */
};

struct guest_mem_region {
	uint64_t gpa;        /* guest physical address of the first byte */
	uint64_t size;       /* bytes, never 0 */
	uint64_t uva;        /* address in the frontend process (vhost-user), else 0 */
	uint8_t *host;       /* host address of the first byte */
	void *map_base;      /* what to munmap, or NULL when not owned */
	size_t map_len;
	/* Pages kvmini's own code wrote (guest_mem_mark_dirty), one bit per
	 * GUEST_MEM_PAGE, set atomically from any thread; NULL unless dirty
	 * tracking is on. */
	uint64_t *dirty;
	enum guest_mem_backing backing;   /* guest_mem_add: private anonymous; _add_fd: shared */
};

struct guest_mem {
	unsigned nregions;
	bool tracking;       /* guest_mem_track_dirty: every region has its bitmap */
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
};

/* The granule of dirty tracking: KVM's dirty log reports 4 KiB pages too. */
#define GUEST_MEM_PAGE 4096u

void guest_mem_init(struct guest_mem *mem);

/*
 * Add a region. Fails with -EINVAL for a zero size, an address range that
 * wraps, or an overlap with an existing region (guest or frontend addresses),
 * and -ENOSPC when the table is full. On success the map owns map_base.
 */
int guest_mem_add(struct guest_mem *mem, uint64_t gpa, uint64_t size, uint64_t uva,
		  void *host, void *map_base, size_t map_len);

/* Map @size bytes of @fd at @offset and add them as a region (vhost-user and
 * the VMM's memfd both come through here). */
int guest_mem_add_fd(struct guest_mem *mem, uint64_t gpa, uint64_t size, uint64_t uva,
		     int fd, uint64_t offset);

/* Unmap owned regions, free the dirty bitmaps and empty the table. */
void guest_mem_clear(struct guest_mem *mem);

/*
 * Dirty tracking of the writes kvmini itself makes into guest memory
 * (KVM's dirty log sees only the guest's): what a Diff snapshot must add
 * to KVM's log. Off by default, and then marking costs one branch.
 *
 * guest_mem_track_dirty gives every region (all added by then) a bitmap:
 * 0 or -ENOMEM. guest_mem_mark_dirty marks every page [gpa, gpa + len)
 * touches, in every region it crosses, and ignores bytes outside guest
 * memory (the caller translated the range already, or will fail to);
 * any thread, concurrently (atomic bit sets). A superset is correct: a
 * page marked but not written is saved unchanged.
 */
int guest_mem_track_dirty(struct guest_mem *mem);
void guest_mem_mark_dirty_range(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

static inline void guest_mem_mark_dirty(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (__builtin_expect(mem->tracking, 0))
		guest_mem_mark_dirty_range(mem, gpa, len);
}

/* 64-bit words in the bitmap of a region of @size bytes. */
static inline size_t guest_mem_dirty_words(uint64_t size)
{
	uint64_t pages = (size + GUEST_MEM_PAGE - 1) / GUEST_MEM_PAGE;

	return (size_t)((pages + 63) / 64);
}

/*
 * OR region @i's bitmap into @out (guest_mem_dirty_words words) and clear
 * it, word by word (atomic exchange: a bit set meanwhile is either taken
 * now or kept for the next call, never lost). Nothing when not tracking.
 */
void guest_mem_take_dirty(const struct guest_mem *mem, unsigned i, uint64_t *out);

/*
 * Translate [gpa, gpa + len) into at most @max_iov host iovecs (several when
 * the range crosses regions). Returns the number of iovecs (0 for len 0),
 * -EFAULT when any byte lies outside guest memory or the range wraps, or
 * -ENOBUFS when more than @max_iov iovecs would be needed.
 */
int guest_mem_to_iov_any(const struct guest_mem *mem, uint64_t gpa, uint64_t len,
			 struct iovec *iov, unsigned max_iov);

/* Every descriptor of every chain comes through here: a range inside the
 * first region (the RAM below the PCI hole; a vhost-user frontend's first
 * table entry) is answered inline, the rest by the loop over regions. */
static inline int guest_mem_to_iov(const struct guest_mem *mem, uint64_t gpa, uint64_t len,
				   struct iovec *iov, unsigned max_iov)
{
	const struct guest_mem_region *r = &mem->regions[0];
	uint64_t off = gpa - r->gpa;     /* wraps above size when gpa is below */

	if (mem->nregions && max_iov && len && off < r->size && len <= r->size - off) {
		iov->iov_base = r->host + off;
		iov->iov_len = (size_t)len;
		return 1;
	}
	return guest_mem_to_iov_any(mem, gpa, len, iov, max_iov);
}

/* Host pointer for [gpa, gpa + len) when it lies inside one region, else NULL.
 * Used for the rings, which must be contiguous. */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/*
 * Give [gpa, gpa + len) back to the host (a balloon's inflated pages): the
 * range must lie inside one region and be page aligned there, host address
 * included; the guest reads zeros from it afterwards, whatever the backing:
 * MADV_DONTNEED for private anonymous memory, MADV_REMOVE (a hole punched
 * in the memfd or file) for a shared mapping, and for a file mapped
 * privately an anonymous mapping put over the range (MADV_DONTNEED there
 * would only drop the private copy and show the file's page again). The
 * pages count as dirty (guest_mem_mark_dirty): KVM's log does not see the
 * host zero them. 0, -EFAULT outside guest memory, -EINVAL unaligned, or
 * the system call's -errno.
 */
int guest_mem_discard(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Set region @i's backing (guest_mem_add cannot know it). */
void guest_mem_set_backing(struct guest_mem *mem, unsigned i, enum guest_mem_backing b);

/* Frontend virtual address to guest physical address (vhost-user vring
 * addresses); -EFAULT when [uva, uva + len) is not inside one region. */
int guest_mem_uva_to_gpa(const struct guest_mem *mem, uint64_t uva, uint64_t len,
			 uint64_t *gpa);

/* Copy helpers over translated iovecs. They return bytes copied, which is
 * less than asked only when the iovecs are shorter. */
static inline size_t iov_length(const struct iovec *iov, unsigned iovcnt)
{
	size_t total = 0;

	for (unsigned i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	return total;
}

/* Find the iovec holding byte @offset; *inner is the offset inside it.
 * Returns iovcnt when @offset is at or past the end. */
static inline unsigned iov_seek(const struct iovec *iov, unsigned iovcnt, size_t offset,
				size_t *inner)
{
	unsigned i = 0;

	while (i < iovcnt && offset >= iov[i].iov_len) {
		offset -= iov[i].iov_len;
		i++;
	}
	*inner = offset;
	return i;
}

/* Copy up to @len bytes from one iovec list to another (one copy, no bounce). */
size_t iov_copy(const struct iovec *dst, unsigned dstcnt, size_t dst_off,
		const struct iovec *src, unsigned srccnt, size_t src_off, size_t len);

/* Is [@offset, @offset + @len) inside @iov's first piece? Then a copy is
 * one memmove: the common case of a virtio-net header or a small frame,
 * taken inline so a constant @len becomes a few moves (the per-frame cost
 * of small frames is mostly these copies). memmove, as in iov_copy: the
 * guest may make a buffer overlap the other side. */
static inline bool iov_first_holds(const struct iovec *iov, unsigned iovcnt, size_t offset,
				   size_t len)
{
	return iovcnt && len && offset <= iov[0].iov_len && len <= iov[0].iov_len - offset;
}

/* memmove for the inline copies: a small constant length goes through a
 * temporary, which the compiler turns into a few moves (it calls the
 * library for a memmove even of 12 bytes). */
static inline void iov_move(void *dst, const void *src, size_t len)
{
	if (__builtin_constant_p(len) && len <= 32) {
		unsigned char t[32];

		__builtin_memcpy(t, src, len);
		__builtin_memcpy(dst, t, len);
		return;
	}
	__builtin_memmove(dst, src, len);
}

static inline size_t iov_from_buf(const struct iovec *iov, unsigned iovcnt, size_t offset,
				  const void *buf, size_t len)
{
	if (iov_first_holds(iov, iovcnt, offset, len)) {
		iov_move((char *)iov[0].iov_base + offset, buf, len);
		return len;
	}
	struct iovec src = { .iov_base = (void *)buf, .iov_len = len };

	return iov_copy(iov, iovcnt, offset, &src, 1, 0, len);
}

static inline size_t iov_to_buf(const struct iovec *iov, unsigned iovcnt, size_t offset,
				void *buf, size_t len)
{
	if (iov_first_holds(iov, iovcnt, offset, len)) {
		iov_move(buf, (const char *)iov[0].iov_base + offset, len);
		return len;
	}
	struct iovec dst = { .iov_base = buf, .iov_len = len };

	return iov_copy(&dst, 1, 0, iov, iovcnt, offset, len);
}
/* Build in @out a view of @iov starting @offset bytes in; returns its count. */
static inline unsigned iov_skip(const struct iovec *iov, unsigned iovcnt, size_t offset,
				struct iovec *out, unsigned max_out)
{
	size_t inner;
	unsigned i = iov_seek(iov, iovcnt, offset, &inner);
	unsigned n = 0;

	for (; i < iovcnt && n < max_out; i++, n++) {
		out[n].iov_base = (char *)iov[i].iov_base + inner;
		out[n].iov_len = iov[i].iov_len - inner;
		inner = 0;
	}
	return n;
}

#endif
