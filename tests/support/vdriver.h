/*
 * A small split-ring *driver* for tests, fuzzers and benches: it plays the
 * guest side against kvmini's device side.
 *
 *  - struct vd_mem is a fake guest memory: one memfd mapped as one or two
 *    guest regions, at any guest address, with PROT_NONE guard pages around
 *    and between the regions so a stray host access faults. It fills a
 *    struct guest_mem for the device, and keeps its own translation for the
 *    driver so the code under test never checks itself.
 *  - struct vd_queue lays out desc/avail/used rings in that memory and offers
 *    the driver's operations (add a chain, publish, read used entries, event
 *    index and flags) plus raw pokes for building hostile rings.
 *
 * Nothing here is thread-safe; the device under test runs on the same thread.
 */
#ifndef KVMINI_TESTS_VDRIVER_H
#define KVMINI_TESTS_VDRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

#include "core/guest_mem.h"
#include "virtio/virtqueue.h"

/* Returned by the allocators when memory is exhausted. */
#define VD_NO_GPA UINT64_MAX

struct vd_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct vd_mem {
	struct guest_mem gm;         /* what the device is given */
	unsigned nregions;           /* 1 or 2 */
	struct vd_region regions[2];
	uint64_t base;               /* guest address of the first byte */
	uint64_t size;               /* bytes, contiguous in guest address space */
	uint64_t brk;                /* bump allocator: next free guest address */
	void *reserve;               /* the whole host reservation, guards included */
	size_t reserve_len;
	int fd;                      /* the memfd backing both regions */
};

/*
 * Create @size bytes of guest memory at guest address @base (page aligned).
 * When 0 < @split < @size, the memory is two guest_mem regions split at
 * base + split (page aligned), adjacent in guest space but not on the host.
 * Returns 0 or -errno.
 */
int vd_mem_init(struct vd_mem *m, uint64_t base, uint64_t size, uint64_t split);
void vd_mem_destroy(struct vd_mem *m);

/* Host pointer for [gpa, gpa + len) when it lies inside one region, else NULL
 * (the driver's own translation, independent of guest_mem.c). */
void *vd_ptr(const struct vd_mem *m, uint64_t gpa, uint64_t len);
/* Copy to/from guest memory, crossing regions. Returns 0 or -EFAULT. */
int vd_write(const struct vd_mem *m, uint64_t gpa, const void *buf, uint64_t len);
int vd_read(const struct vd_mem *m, uint64_t gpa, void *buf, uint64_t len);
int vd_fill(const struct vd_mem *m, uint64_t gpa, int byte, uint64_t len);

/* Allocate @len bytes aligned to @align (a power of two) that do not cross a
 * region boundary. VD_NO_GPA when full. Freed only all at once. */
uint64_t vd_alloc(struct vd_mem *m, uint64_t len, uint64_t align);
/* Allocate @len bytes that straddle the region boundary, @before of them in
 * the first region (needs a split memory; VD_NO_GPA otherwise). The region
 * boundary is reserved by the first call; later calls return the same span. */
uint64_t vd_alloc_crossing(struct vd_mem *m, uint64_t len, uint64_t before);
/* Forget every allocation. */
void vd_alloc_reset(struct vd_mem *m);
/* Guest address where the second region starts (split memory), else VD_NO_GPA. */
uint64_t vd_mem_split_gpa(const struct vd_mem *m);

/* One buffer of a chain, as the driver sees it. */
struct vd_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

struct vd_queue_opts {
	uint16_t size;               /* ring entries, 1..32768; need not be a power of two */
	unsigned indirect_max;       /* entries per indirect table; 0: no pool */
	bool event_idx;              /* driver uses used_event / avail_event */
	uint64_t desc_gpa;           /* 0: allocate; else place the rings here */
	uint64_t avail_gpa;
	uint64_t used_gpa;
};

struct vd_queue {
	struct vd_mem *mem;
	uint16_t size;
	bool event_idx;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;

	uint16_t avail_idx;          /* shadow: entries added, published or not */
	uint16_t published_idx;      /* avail->idx as last written */
	uint16_t last_used;          /* next used entry to read */

	/* Driver-private bookkeeping, out of the device's reach. */
	uint16_t free_head;
	uint16_t num_free;
	uint16_t *link;              /* next descriptor: free list, or the chain it is in */
	uint16_t *chain_ndesc;       /* descriptors held by each outstanding head */
	uint16_t *outstanding;       /* times each head is awaiting completion */
	uint32_t *chain_in_len;      /* writable bytes of each outstanding head */
	unsigned indirect_max;
	uint64_t indirect_gpa;       /* pool: table for head h at + h * max * 16 */

	/* Statistics a test can check. */
	uint64_t completed;          /* used entries consumed */
	uint64_t kicks;              /* publishes after which a kick was due */
};

/* Lay out the rings (desc 16-, avail 2-, used 4-aligned unless given) and an
 * optional indirect pool; zero them. Returns 0 or -errno. */
int vd_queue_init(struct vd_queue *q, struct vd_mem *m, const struct vd_queue_opts *opts);
void vd_queue_destroy(struct vd_queue *q);
/* Start both sides of a queue at index @idx (avail and used), as if that many
 * chains had gone through already. Call before the device starts the queue. */
void vd_queue_set_start_idx(struct vd_queue *q, uint16_t idx);
/* Copy the ring addresses and size into a device-side virtqueue (after
 * vq_reset), with the ring features the test negotiated. */
void vd_queue_to_vq(const struct vd_queue *q, struct virtqueue *vq, bool indirect);

/*
 * Add a chain of @n buffers, readable ones first, as the next avail entry
 * (not yet published). With @indirect, the buffers go in the head's table of
 * the indirect pool and the ring holds one INDIRECT descriptor.
 * Returns the head, -ENOSPC when descriptors run out, -EINVAL otherwise.
 */
int vd_add_chain(struct vd_queue *q, const struct vd_buf *bufs, unsigned n, bool indirect);
/* Publish every added entry: one release store of avail->idx. Returns true
 * when the device asked for a kick (VRING_USED_F_NO_NOTIFY / avail_event). */
bool vd_publish(struct vd_queue *q);

/* Entries the device published and the driver has not read yet. */
uint16_t vd_used_pending(const struct vd_queue *q);
/*
 * Read the next used entry. Returns 1 and fills @id/@len, 0 when there is
 * none, or -EPROTO when the device completed a head that was not outstanding
 * or wrote more than the chain's writable bytes (the entry is consumed).
 */
int vd_get_used(struct vd_queue *q, uint32_t *id, uint32_t *len);

/* Interrupt suppression, driver side. */
void vd_set_used_event(struct vd_queue *q, uint16_t idx);
uint16_t vd_avail_event(const struct vd_queue *q);
void vd_set_avail_flags(struct vd_queue *q, uint16_t flags);
uint16_t vd_used_flags(const struct vd_queue *q);
uint16_t vd_used_idx(const struct vd_queue *q);

/* Raw pokes for hostile rings: no bookkeeping, no checks. */
void vd_raw_desc(struct vd_queue *q, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next);
void vd_raw_avail(struct vd_queue *q, uint16_t slot, uint16_t head);
/* Write avail->idx directly (release) and move the shadow with it. */
void vd_raw_avail_idx(struct vd_queue *q, uint16_t idx);
/* Put @head in the next avail slot and publish it at once. */
void vd_raw_offer(struct vd_queue *q, uint16_t head);
/* The used element at ring slot @slot (read as the device wrote it). */
struct vring_used_elem vd_raw_used(const struct vd_queue *q, uint16_t slot);

/*
 * An independent model of how a device must walk a chain under the rules of
 * virtqueue.h (TTL equal to the table size, indirect negotiated / not nested /
 * not chained / whole descriptors, readable before writable, every byte in
 * guest memory, at most VQ_CHAIN_MAX_IOV pieces, 32-bit totals). Fuzzers
 * compare vq_pop against it. It reads the rings through the driver's own
 * translation; @hook, when set, sees every descriptor-table byte range read.
 */
#define VD_REF_MAX_WR 16

struct vd_ref_chain {
	bool ok;
	unsigned n_out, n_in;        /* pieces, as guest_mem would split them */
	uint64_t out_len, in_len;
	unsigned n_wr;               /* writable buffers recorded in wr[] */
	bool wr_overflow;            /* more writable buffers than wr[] holds */
	struct { uint64_t gpa, len; } wr[VD_REF_MAX_WR];
};

typedef void (*vd_ref_hook)(void *ctx, uint64_t gpa, uint64_t len);

void vd_ref_walk(const struct vd_queue *q, bool indirect_ok, uint16_t head,
		 struct vd_ref_chain *out, vd_ref_hook hook, void *ctx);

#endif
