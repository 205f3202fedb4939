/*
 * Split-ring driver simulator for tests, fuzzers and benches (see vdriver.h).
 * The barriers mirror a Linux guest driver (drivers/virtio/virtio_ring.c) so
 * the device side is exercised with the orderings it must pair with.
 */
#include "vdriver.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Fuzzers should learn from the code under test, not from the driver and
 * its model: keep coverage instrumentation out of the hot helpers. */
#if defined(__clang__)
#define VD_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define VD_NO_COVERAGE
#endif

#define VD_PAGE 4096u
/* Bytes kept free of ordinary allocations on each side of a region split,
 * so vd_alloc_crossing always has room. */
#define VD_CROSS_ZONE (128u * 1024u)

/* ---- guest memory ---- */

/* Map [off, off + len) of the memfd at @at inside the reservation and hand it
 * to guest_mem as region @i (not owned: vd_mem_destroy unmaps the reservation). */
static int map_region(struct vd_mem *m, unsigned i, uint8_t *at, uint64_t gpa,
		      uint64_t off, uint64_t len)
{
	void *p = mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		       m->fd, (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	m->regions[i] = (struct vd_region){ .gpa = gpa, .size = len, .host = p };
	m->nregions = i + 1;
	/* The region's host address doubles as the "frontend" address, so
	 * guest_mem_uva_to_gpa has something real to translate. */
	int r = guest_mem_add(&m->gm, gpa, len, (uint64_t)(uintptr_t)p, p, NULL, 0);
	if (!r)          /* a balloon's discard must punch the memfd */
		guest_mem_set_backing(&m->gm, m->gm.nregions - 1, GUEST_MEM_SHARED);
	return r;
}

/* Reserve host address space: a guard page before, between and after the
 * regions, so a host access past any region faults. */
static int reserve_space(struct vd_mem *m, uint64_t size)
{
	m->reserve_len = (size_t)size + 3 * VD_PAGE;
	m->reserve = mmap(NULL, m->reserve_len, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->reserve == MAP_FAILED) {
		m->reserve = NULL;
		return -errno;
	}
	return 0;
}

int vd_mem_init(struct vd_mem *m, uint64_t base, uint64_t size, uint64_t split)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	guest_mem_init(&m->gm);
	if (!size || size % VD_PAGE || base % VD_PAGE || split % VD_PAGE ||
	    split >= size || base + size < base || size > SIZE_MAX / 2)
		return -EINVAL;
	m->fd = memfd_create("vdriver-guest", MFD_CLOEXEC);
	if (m->fd < 0 || ftruncate(m->fd, (off_t)size) < 0 || reserve_space(m, size) < 0) {
		int err = -errno;
		vd_mem_destroy(m);
		return err;
	}
	m->base = base;
	m->size = size;
	m->brk = base;
	uint8_t *at = (uint8_t *)m->reserve + VD_PAGE;
	uint64_t first = split ? split : size;
	int r = map_region(m, 0, at, base, 0, first);
	if (!r && split)
		r = map_region(m, 1, at + first + VD_PAGE, base + split, split, size - split);
	if (r < 0)
		vd_mem_destroy(m);
	return r;
}

void vd_mem_destroy(struct vd_mem *m)
{
	guest_mem_clear(&m->gm);
	if (m->reserve)
		munmap(m->reserve, m->reserve_len);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

VD_NO_COVERAGE
static const struct vd_region *vd_region_of(const struct vd_mem *m, uint64_t gpa)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct vd_region *r = &m->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

VD_NO_COVERAGE
void *vd_ptr(const struct vd_mem *m, uint64_t gpa, uint64_t len)
{
	const struct vd_region *r = vd_region_of(m, gpa);

	if (!r || len > r->size - (gpa - r->gpa))
		return NULL;
	return r->host + (gpa - r->gpa);
}

/* Walk [gpa, gpa + len) region by region, calling @fn on each host piece. */
VD_NO_COVERAGE
static int vd_walk(const struct vd_mem *m, uint64_t gpa, uint64_t len,
		   void (*fn)(uint8_t *host, uint8_t *buf, size_t n), uint8_t *buf)
{
	while (len) {
		const struct vd_region *r = vd_region_of(m, gpa);
		if (!r)
			return -EFAULT;
		uint64_t n = r->size - (gpa - r->gpa);
		if (n > len)
			n = len;
		fn(r->host + (gpa - r->gpa), buf, (size_t)n);
		if (buf)
			buf += n;
		gpa += n;
		len -= n;
	}
	return 0;
}

static void piece_write(uint8_t *host, uint8_t *buf, size_t n) { memcpy(host, buf, n); }
static void piece_read(uint8_t *host, uint8_t *buf, size_t n) { memcpy(buf, host, n); }

VD_NO_COVERAGE
int vd_write(const struct vd_mem *m, uint64_t gpa, const void *buf, uint64_t len)
{
	return vd_walk(m, gpa, len, piece_write, (uint8_t *)buf);
}

VD_NO_COVERAGE
int vd_read(const struct vd_mem *m, uint64_t gpa, void *buf, uint64_t len)
{
	return vd_walk(m, gpa, len, piece_read, buf);
}

int vd_fill(const struct vd_mem *m, uint64_t gpa, int byte, uint64_t len)
{
	uint8_t chunk[4096];

	memset(chunk, byte, sizeof(chunk));
	while (len) {
		uint64_t n = len < sizeof(chunk) ? len : sizeof(chunk);
		int r = vd_write(m, gpa, chunk, n);
		if (r)
			return r;
		gpa += n;
		len -= n;
	}
	return 0;
}

uint64_t vd_mem_split_gpa(const struct vd_mem *m)
{
	return m->nregions == 2 ? m->regions[1].gpa : VD_NO_GPA;
}

/* Half-width of the crossing zone: VD_CROSS_ZONE, less for small regions. */
static uint64_t cross_zone(const struct vd_mem *m)
{
	uint64_t z = VD_CROSS_ZONE;

	if (m->nregions < 2)
		return 0;
	if (z > m->regions[0].size / 2)
		z = m->regions[0].size / 2;
	if (z > m->regions[1].size / 2)
		z = m->regions[1].size / 2;
	return z;
}

uint64_t vd_alloc(struct vd_mem *m, uint64_t len, uint64_t align)
{
	uint64_t end = m->base + m->size;
	uint64_t zone = cross_zone(m);

	if (!align || (align & (align - 1)) || !len)
		return VD_NO_GPA;
	for (;;) {
		uint64_t gpa = (m->brk + align - 1) & ~(align - 1);
		if (gpa < m->brk || gpa > end || len > end - gpa)
			return VD_NO_GPA;
		/* Keep ordinary allocations out of the crossing zone. */
		if (zone) {
			uint64_t lo = m->regions[1].gpa - zone, hi = m->regions[1].gpa + zone;
			if (gpa < hi && gpa + len > lo) {
				m->brk = hi;
				continue;
			}
		}
		m->brk = gpa + len;
		return gpa;
	}
}

uint64_t vd_alloc_crossing(struct vd_mem *m, uint64_t len, uint64_t before)
{
	uint64_t zone = cross_zone(m);

	if (!zone || before == 0 || before >= len || before > zone || len - before > zone)
		return VD_NO_GPA;
	return m->regions[1].gpa - before;
}

void vd_alloc_reset(struct vd_mem *m)
{
	m->brk = m->base;
}

/* ---- queue layout ---- */

static uint64_t desc_bytes(uint16_t n)  { return 16ull * n; }
static uint64_t avail_bytes(uint16_t n) { return 4 + 2ull * n + 2; }
static uint64_t used_bytes(uint16_t n)  { return 4 + 8ull * n + 2; }

/* Place one ring: at @want when given, else freshly allocated. */
static uint64_t place_ring(struct vd_mem *m, uint64_t want, uint64_t len, uint64_t align)
{
	return want ? want : vd_alloc(m, len, align);
}

static int alloc_bookkeeping(struct vd_queue *q)
{
	q->link = calloc(q->size, sizeof(*q->link));
	q->chain_ndesc = calloc(q->size, sizeof(*q->chain_ndesc));
	q->outstanding = calloc(q->size, sizeof(*q->outstanding));
	q->chain_in_len = calloc(q->size, sizeof(*q->chain_in_len));
	if (!q->link || !q->chain_ndesc || !q->outstanding || !q->chain_in_len)
		return -ENOMEM;
	for (unsigned i = 0; i < q->size; i++)
		q->link[i] = (uint16_t)(i + 1);
	q->free_head = 0;
	q->num_free = q->size;
	return 0;
}

static int map_rings(struct vd_queue *q)
{
	q->desc = vd_ptr(q->mem, q->desc_gpa, desc_bytes(q->size));
	q->avail = vd_ptr(q->mem, q->avail_gpa, avail_bytes(q->size));
	q->used = vd_ptr(q->mem, q->used_gpa, used_bytes(q->size));
	if (!q->desc || !q->avail || !q->used)
		return -EFAULT;
	memset(q->desc, 0, desc_bytes(q->size));
	memset(q->avail, 0, avail_bytes(q->size));
	memset(q->used, 0, used_bytes(q->size));
	return 0;
}

int vd_queue_init(struct vd_queue *q, struct vd_mem *m, const struct vd_queue_opts *opts)
{
	memset(q, 0, sizeof(*q));
	if (!opts->size || opts->size > VQ_MAX_SIZE)
		return -EINVAL;
	q->mem = m;
	q->size = opts->size;
	q->event_idx = opts->event_idx;
	q->desc_gpa = place_ring(m, opts->desc_gpa, desc_bytes(q->size), 64);
	q->avail_gpa = place_ring(m, opts->avail_gpa, avail_bytes(q->size), 64);
	q->used_gpa = place_ring(m, opts->used_gpa, used_bytes(q->size), 64);
	int r = alloc_bookkeeping(q);
	if (!r)
		r = map_rings(q);
	if (!r && opts->indirect_max) {
		q->indirect_max = opts->indirect_max;
		q->indirect_gpa = vd_alloc(m, 16ull * opts->indirect_max * q->size, 16);
		if (q->indirect_gpa == VD_NO_GPA)
			r = -ENOMEM;
	}
	if (r)
		vd_queue_destroy(q);
	return r;
}

void vd_queue_destroy(struct vd_queue *q)
{
	free(q->link);
	free(q->chain_ndesc);
	free(q->outstanding);
	free(q->chain_in_len);
	memset(q, 0, sizeof(*q));
}

void vd_queue_set_start_idx(struct vd_queue *q, uint16_t idx)
{
	q->avail_idx = q->published_idx = q->last_used = idx;
	__atomic_store_n(&q->avail->idx, idx, __ATOMIC_RELEASE);
	__atomic_store_n(&q->used->idx, idx, __ATOMIC_RELEASE);
}

void vd_queue_to_vq(const struct vd_queue *q, struct virtqueue *vq, bool indirect)
{
	/* The device continues where the driver has had everything completed. */
	struct vq_config cfg = {
		.size = q->size, .desc_gpa = q->desc_gpa, .avail_gpa = q->avail_gpa,
		.used_gpa = q->used_gpa, .base = q->last_used,
	};
	vq_configure(vq, &cfg);
	vq->event_idx = q->event_idx;
	vq->indirect = indirect;
}

/* ---- driver operations ---- */

static uint16_t slot_of(const struct vd_queue *q, uint16_t idx)
{
	return (uint16_t)(idx % q->size);
}

/* Take @n descriptors off the free list, linked in q->link; returns the first. */
static uint16_t take_descs(struct vd_queue *q, unsigned n)
{
	uint16_t head = q->free_head, last = head;

	for (unsigned i = 1; i < n; i++)
		last = q->link[last];
	q->free_head = q->link[last];
	q->num_free = (uint16_t)(q->num_free - n);
	return head;
}

static void fill_table(struct vring_desc *table, uint16_t first, const uint16_t *link,
		       const struct vd_buf *bufs, unsigned n)
{
	uint16_t i = first;

	for (unsigned k = 0; k < n; k++) {
		uint16_t next = link ? link[i] : (uint16_t)(i + 1);
		table[i].addr = bufs[k].gpa;
		table[i].len = bufs[k].len;
		table[i].flags = (uint16_t)((bufs[k].writable ? VRING_DESC_F_WRITE : 0) |
					    (k + 1 < n ? VRING_DESC_F_NEXT : 0));
		table[i].next = k + 1 < n ? next : 0;
		i = next;
	}
}

static int add_indirect(struct vd_queue *q, uint16_t head, const struct vd_buf *bufs,
			unsigned n)
{
	uint64_t gpa = q->indirect_gpa + 16ull * q->indirect_max * head;
	struct vring_desc *table = vd_ptr(q->mem, gpa, 16ull * n);

	if (!table)
		return -EFAULT;
	fill_table(table, 0, NULL, bufs, n);
	q->desc[head] = (struct vring_desc){
		.addr = gpa, .len = (uint32_t)(16 * n), .flags = VRING_DESC_F_INDIRECT,
	};
	return 0;
}

int vd_add_chain(struct vd_queue *q, const struct vd_buf *bufs, unsigned n, bool indirect)
{
	uint64_t in_len = 0;

	if (!n || (indirect && n > q->indirect_max))
		return -EINVAL;
	if (q->num_free < (indirect ? 1 : n))
		return -ENOSPC;
	for (unsigned k = 0; k < n; k++)
		in_len += bufs[k].writable ? bufs[k].len : 0;
	uint16_t head = take_descs(q, indirect ? 1 : n);
	if (indirect) {
		int r = add_indirect(q, head, bufs, n);
		if (r)
			return r;
	} else {
		fill_table(q->desc, head, q->link, bufs, n);
	}
	q->chain_ndesc[head] = (uint16_t)(indirect ? 1 : n);
	q->chain_in_len[head] = in_len > UINT32_MAX ? UINT32_MAX : (uint32_t)in_len;
	q->outstanding[head]++;
	q->avail->ring[slot_of(q, q->avail_idx)] = head;
	q->avail_idx++;
	return head;
}

/* Linux's vring_need_event, the driver's side of EVENT_IDX. */
static bool vd_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vd_publish(struct vd_queue *q)
{
	uint16_t old = q->published_idx, new_idx = q->avail_idx;

	if (old == new_idx)
		return false;
	/* Release: descriptors and ring entries before the index (the driver's
	 * virtio_wmb; pairs with the device's acquire load of avail->idx). */
	__atomic_store_n(&q->avail->idx, new_idx, __ATOMIC_RELEASE);
	q->published_idx = new_idx;
	/* Full barrier: the index is visible before we read the device's
	 * suppression state (virtio_mb; pairs with vq_enable_notify's fence). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	bool kick = q->event_idx ? vd_need_event(vd_avail_event(q), new_idx, old)
				 : !(vd_used_flags(q) & VRING_USED_F_NO_NOTIFY);
	if (kick)
		q->kicks++;
	return kick;
}

uint16_t vd_used_idx(const struct vd_queue *q)
{
	/* Acquire: the used elements read next are at least this new (pairs
	 * with the device's release store in vq_publish). */
	return __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
}

uint16_t vd_used_pending(const struct vd_queue *q)
{
	return (uint16_t)(vd_used_idx(q) - q->last_used);
}

/* Put a completed head's descriptors back on the free list. */
static void free_chain(struct vd_queue *q, uint16_t head)
{
	uint16_t last = head;

	for (unsigned i = 1; i < q->chain_ndesc[head]; i++)
		last = q->link[last];
	q->link[last] = q->free_head;
	q->free_head = head;
	q->num_free = (uint16_t)(q->num_free + q->chain_ndesc[head]);
}

int vd_get_used(struct vd_queue *q, uint32_t *id, uint32_t *len)
{
	if (vd_used_pending(q) == 0)
		return 0;
	struct vring_used_elem e = vd_raw_used(q, q->last_used);
	q->last_used++;
	q->completed++;
	*id = e.id;
	*len = e.len;
	if (e.id >= q->size || !q->outstanding[e.id])
		return -EPROTO;
	bool too_long = e.len > q->chain_in_len[e.id];
	if (--q->outstanding[e.id] == 0)
		free_chain(q, (uint16_t)e.id);
	return too_long ? -EPROTO : 1;
}

void vd_set_used_event(struct vd_queue *q, uint16_t idx)
{
	__atomic_store_n(&q->avail->ring[q->size], idx, __ATOMIC_RELAXED);
	/* Full barrier: the event is visible before the driver looks at the
	 * used ring again (virtio_store_mb; pairs with vq_publish's fence). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint16_t vd_avail_event(const struct vd_queue *q)
{
	return __atomic_load_n((uint16_t *)&q->used->ring[q->size], __ATOMIC_RELAXED);
}

void vd_set_avail_flags(struct vd_queue *q, uint16_t flags)
{
	__atomic_store_n(&q->avail->flags, flags, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint16_t vd_used_flags(const struct vd_queue *q)
{
	return __atomic_load_n(&q->used->flags, __ATOMIC_RELAXED);
}

/* ---- raw pokes ---- */

void vd_raw_desc(struct vd_queue *q, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	q->desc[i % q->size] = (struct vring_desc){
		.addr = addr, .len = len, .flags = flags, .next = next,
	};
}

void vd_raw_avail(struct vd_queue *q, uint16_t slot, uint16_t head)
{
	q->avail->ring[slot % q->size] = head;
}

void vd_raw_avail_idx(struct vd_queue *q, uint16_t idx)
{
	__atomic_store_n(&q->avail->idx, idx, __ATOMIC_RELEASE);
	q->avail_idx = q->published_idx = idx;
}

void vd_raw_offer(struct vd_queue *q, uint16_t head)
{
	vd_raw_avail(q, q->avail_idx, head);
	q->avail_idx++;
	vd_publish(q);
}

struct vring_used_elem vd_raw_used(const struct vd_queue *q, uint16_t slot)
{
	struct vring_used_elem e;

	memcpy(&e, &q->used->ring[slot_of(q, slot)], sizeof(e));
	return e;
}

/* ---- reference chain walk ---- */

/* Pieces [gpa, gpa + len) splits into, or -1 when a byte is outside memory
 * or the range wraps. */
VD_NO_COVERAGE
static int64_t ref_pieces(const struct vd_mem *m, uint64_t gpa, uint64_t len)
{
	int64_t n = 0;

	if (gpa + len < gpa)
		return -1;
	while (len) {
		const struct vd_region *r = vd_region_of(m, gpa);
		if (!r)
			return -1;
		uint64_t chunk = r->size - (gpa - r->gpa);
		if (chunk > len)
			chunk = len;
		gpa += chunk;
		len -= chunk;
		n++;
	}
	return n;
}

/* Account one buffer descriptor; false when the chain is malformed. */
VD_NO_COVERAGE
static bool ref_buffer(const struct vd_mem *m, struct vd_ref_chain *c, const struct vring_desc *d)
{
	bool writable = d->flags & VRING_DESC_F_WRITE;
	int64_t n = ref_pieces(m, d->addr, d->len);

	if ((!writable && c->n_in) || n < 0 || c->n_out + c->n_in + n > VQ_CHAIN_MAX_IOV)
		return false;
	if (writable) {
		c->n_in += (unsigned)n;
		c->in_len += d->len;
		if (c->n_wr < VD_REF_MAX_WR)
			c->wr[c->n_wr].gpa = d->addr, c->wr[c->n_wr++].len = d->len;
		else
			c->wr_overflow = true;
	} else {
		c->n_out += (unsigned)n;
		c->out_len += d->len;
	}
	return c->in_len <= UINT32_MAX && c->out_len <= UINT32_MAX;
}

VD_NO_COVERAGE
void vd_ref_walk(const struct vd_queue *q, bool indirect_ok, uint16_t head,
		 struct vd_ref_chain *out, vd_ref_hook hook, void *ctx)
{
	uint64_t table_gpa = q->desc_gpa;
	uint32_t table_size = q->size, ttl = q->size, idx = head;
	bool nested = false;

	memset(out, 0, sizeof(*out));
	if (head >= q->size)
		return;
	for (;;) {
		struct vring_desc d;
		if (ttl-- == 0 || vd_read(q->mem, table_gpa + 16ull * idx, &d, sizeof(d)))
			return;
		if (hook)
			hook(ctx, table_gpa + 16ull * idx, sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!indirect_ok || nested || (d.flags & VRING_DESC_F_NEXT) || !d.len ||
			    d.len % 16 || d.len / 16 > VQ_MAX_SIZE || !vd_ptr(q->mem, d.addr, d.len))
				return;
			table_gpa = d.addr;
			table_size = ttl = d.len / 16;
			nested = true;
			idx = 0;
			continue;
		}
		if (!ref_buffer(q->mem, out, &d))
			return;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= table_size)
			return;
		idx = d.next;
	}
	out->ok = true;
}
