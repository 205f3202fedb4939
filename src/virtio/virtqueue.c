/*
 * Split virtqueue, device side (virtio 1.x section 2.7). See virtqueue.h for
 * the rules; the barriers below are commented with what they pair with on
 * the driver side (Linux drivers/virtio/virtio_ring.c).
 */
#include "virtio/virtqueue.h"

#include <errno.h>
#include <string.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/log.h"

/* Guest-shared fields are read and written exactly once per use: the guest
 * may change them at any time, so a value is copied, checked, then used. */
#define GUEST_LOAD(p)       load_relaxed(p)
#define GUEST_STORE(p, v)   store_relaxed(p, v)

void vq_reset(struct virtqueue *vq)
{
	memset(vq, 0, sizeof(*vq));
	vq->notify_enabled = true;
}

int vq_configure(struct virtqueue *vq, const struct vq_config *cfg)
{
	if (vq->started)
		return -EBUSY;
	vq->size = cfg->size;
	vq->desc_gpa = cfg->desc_gpa;
	vq->avail_gpa = cfg->avail_gpa;
	vq->used_gpa = cfg->used_gpa;
	vq->last_avail_idx = cfg->base;
	vq->held = NULL;
	return 0;
}

uint16_t vq_base(const struct virtqueue *vq)
{
	return vq->held ? (uint16_t)(vq->last_avail_idx - 1) : vq->last_avail_idx;
}

static bool is_pow2(unsigned n)
{
	return n && !(n & (n - 1));
}

/* Where the event-index fields live (spec 2.7.7 / 2.7.10): after the rings. */
static uint16_t *used_event_ptr(struct virtqueue *vq)
{
	return &vq->avail->ring[vq->size];
}

static uint16_t *avail_event_ptr(struct virtqueue *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

/* Dirty tracking (guest_mem.h): the used ring, flags to avail_event, is
 * the one part of the rings the device writes; marked whole, after each
 * write to it (a page or two; one branch when tracking is off). */
static void used_ring_written(const struct virtqueue *vq)
{
	guest_mem_mark_dirty(vq->mem, vq->used_gpa, 4 + 8 * (uint64_t)vq->size + 2);
}

/* The three rings of a queue of @size entries at @cfg's addresses, as host
 * pointers (the +2 covers used_event / avail_event whether or not
 * EVENT_IDX is on); NULL where a ring is not inside one region. */
static void map_rings(const struct guest_mem *mem, const struct vq_config *cfg,
		      struct vring_desc **desc, struct vring_avail **avail, struct vring_used **used)
{
	uint64_t n = cfg->size;

	*desc = guest_mem_ptr(mem, cfg->desc_gpa, 16 * n);
	*avail = guest_mem_ptr(mem, cfg->avail_gpa, 4 + 2 * n + 2);
	*used = guest_mem_ptr(mem, cfg->used_gpa, 4 + 8 * n + 2);
}

int vq_config_check(const struct vq_config *cfg, const struct guest_mem *mem, const char **why)
{
	struct vring_desc *d;
	struct vring_avail *a;
	struct vring_used *u;

	*why = NULL;
	if (!is_pow2(cfg->size) || cfg->size > VQ_MAX_SIZE)
		*why = cfg->size ? "size is not a power of two up to 32768" : "size is 0";
	/* Alignment from spec 2.7 table "Virtqueue Part Alignment". */
	else if (cfg->desc_gpa % 16)
		*why = "descriptor table not 16-byte aligned";
	else if (cfg->avail_gpa % 2)
		*why = "avail ring not 2-byte aligned";
	else if (cfg->used_gpa % 4)
		*why = "used ring not 4-byte aligned";
	if (*why)
		return -EINVAL;
	map_rings(mem, cfg, &d, &a, &u);
	if (!d)
		*why = "descriptor table outside guest memory";
	else if (!a)
		*why = "avail ring outside guest memory";
	else if (!u)
		*why = "used ring outside guest memory";
	return *why ? -EFAULT : 0;
}

int vq_start(struct virtqueue *vq, const struct guest_mem *mem)
{
	struct vq_config cfg = {
		.size = vq->size, .desc_gpa = vq->desc_gpa, .avail_gpa = vq->avail_gpa,
		.used_gpa = vq->used_gpa,
	};
	const char *why;
	int r = vq_config_check(&cfg, mem, &why);

	if (r < 0)
		return r;
	map_rings(mem, &cfg, &vq->desc, &vq->avail, &vq->used);
	vq->mem = mem;
	vq->used_idx = GUEST_LOAD(&vq->used->idx);
	vq->published_idx = vq->used_idx;
	vq->signalled_valid = false;
	vq->started = true;
	/* The ring may come from an earlier session that left kicks suppressed
	 * (NO_NOTIFY set, a stale avail_event): ask for kicks again. */
	vq_enable_notify(vq);
	used_ring_written(vq);
	return 0;
}

void vq_stop(struct virtqueue *vq)
{
	/* The held chain's iovecs point into mappings that may go away. */
	if (vq->held)
		vq_unpop(vq);
	vq->started = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->mem = NULL;
}

/* Read avail->idx. Acquire: ring entries read after it are at least as new
 * as the index (pairs with the driver's virtio_wmb before its idx store). */
static uint16_t load_avail_idx(struct virtqueue *vq)
{
	return load_acquire(&vq->avail->idx);
}

static enum vq_pop_result poison(struct virtqueue *vq, enum vq_poison_reason why)
{
	vq->faults.poisoned = why;
	return VQ_POP_POISONED;
}

bool vq_poison_is_new(struct virtqueue *vq)
{
	if (!vq->faults.poisoned || vq->faults.poison_reported)
		return false;
	vq->faults.poison_reported = true;
	return true;
}

static bool is_pow2_u64(uint64_t n)
{
	return n && !(n & (n - 1));
}

/* Count a refused chain; say why on the first and each power-of-two one,
 * so a guest that floods bad chains cannot flood the log. */
static enum vq_pop_result bad_chain(struct virtqueue *vq, enum vq_chain_error err)
{
	struct vq_faults *f = &vq->faults;

	f->last_chain_error = err;
	if (is_pow2_u64(++f->chains_invalid))
		log_warn("%s: invalid chain (%s), %llu so far", vq->label[0] ? vq->label : "virtqueue",
			 vq_chain_error_str(err), (unsigned long long)f->chains_invalid);
	return VQ_POP_BAD_CHAIN;
}

/* State of one walk through a chain. */
struct chain_walk {
	const struct vring_desc *table;   /* the ring's table or an indirect one */
	uint32_t table_size;
	uint32_t ttl;                     /* descriptors left before we call it a loop */
	bool in_indirect;
};

/* Enter an indirect table (spec 2.7.5.3): negotiated, not nested, not
 * chained, a whole number of descriptors, contiguous in guest memory. */
static enum vq_chain_error enter_indirect(struct virtqueue *vq, struct chain_walk *w,
					  const struct vring_desc *d)
{
	if (!vq->indirect || w->in_indirect || (d->flags & VRING_DESC_F_NEXT))
		return VQ_CHAIN_ERR_INDIRECT;
	if (d->len == 0 || d->len % sizeof(struct vring_desc) ||
	    d->len / sizeof(struct vring_desc) > VQ_MAX_SIZE)
		return VQ_CHAIN_ERR_INDIRECT;
	w->table = guest_mem_ptr(vq->mem, d->addr, d->len);
	if (!w->table)
		return VQ_CHAIN_ERR_ADDR;
	w->table_size = d->len / sizeof(struct vring_desc);
	w->ttl = w->table_size;
	w->in_indirect = true;
	return VQ_CHAIN_ERR_NONE;
}

/* Append one buffer descriptor's memory to the chain. @seen_writable
 * tracks descriptors, not iovecs: a zero-length one yields no iovec. */
static enum vq_chain_error add_buffer(const struct virtqueue *vq, struct vq_chain *c,
				      const struct vring_desc *d, bool *seen_writable)
{
	bool writable = d->flags & VRING_DESC_F_WRITE;
	unsigned used = c->n_out + c->n_in;

	/* Spec 2.7.4.2: readable descriptors come before writable ones. */
	if (!writable && *seen_writable)
		return VQ_CHAIN_ERR_ORDER;
	*seen_writable |= writable;
	int n = guest_mem_to_iov(vq->mem, d->addr, d->len, c->iov + used,
				 VQ_CHAIN_MAX_IOV - used);
	if (n == -ENOBUFS)
		return VQ_CHAIN_ERR_TOO_MANY_IOV;
	if (n < 0)
		return VQ_CHAIN_ERR_ADDR;
	if (writable) {
		/* The device may write any of it: a superset of the pages it
		 * will write, which a snapshot may save (guest_mem.h). */
		guest_mem_mark_dirty(vq->mem, d->addr, d->len);
		c->n_in += n;
		c->in_len += d->len;
	} else {
		c->n_out += n;
		c->out_len += d->len;
	}
	/* The used ring reports lengths in 32 bits. */
	if (c->in_len > UINT32_MAX || c->out_len > UINT32_MAX)
		return VQ_CHAIN_ERR_LEN;
	return VQ_CHAIN_ERR_NONE;
}

/* Walk the chain starting at @head into @c. */
static enum vq_chain_error walk_chain(struct virtqueue *vq, uint16_t head, struct vq_chain *c)
{
	struct chain_walk w = {
		.table = vq->desc, .table_size = vq->size, .ttl = vq->size,
	};
	uint32_t idx = head;
	bool seen_writable = false;

	for (;;) {
		struct vring_desc d;
		enum vq_chain_error err;

		/* A chain never has more descriptors than its table: more is a loop. */
		if (w.ttl-- == 0)
			return VQ_CHAIN_ERR_TOO_LONG;
		/* One copy of the descriptor, then only the copy is used. */
		memcpy(&d, &w.table[idx], sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			err = enter_indirect(vq, &w, &d);
			if (err)
				return err;
			idx = 0;
			continue;
		}
		err = add_buffer(vq, c, &d, &seen_writable);
		if (err)
			return err;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return VQ_CHAIN_ERR_NONE;
		if (d.next >= w.table_size)
			return VQ_CHAIN_ERR_NEXT_RANGE;
		idx = d.next;
	}
}

enum vq_pop_result vq_pop(struct virtqueue *vq, struct vq_chain *chain)
{
	if (vq->faults.poisoned)
		return VQ_POP_POISONED;
	if (!vq->started)
		return VQ_POP_EMPTY;
	uint16_t avail_idx = load_avail_idx(vq);
	/* Spec 2.7.6: the driver never has more than size chains outstanding,
	 * available or taken and not yet used (each holds a descriptor of the
	 * table), so avail->idx is at most size ahead of the used index it can
	 * have seen (the published one: it frees descriptors only from there),
	 * and never behind what the device has taken (a held chain counts as
	 * not taken). A device that keeps chains a while (a backend's
	 * zero-copy send) so never has more than size of them, and never more
	 * than size used entries unpublished, whatever heads it is fed. */
	if ((uint16_t)(avail_idx - vq->published_idx) > vq->size ||
	    (uint16_t)(avail_idx - vq_base(vq)) > vq->size)
		return poison(vq, VQ_POISON_AVAIL_IDX);
	if (vq->held) {
		struct vq_chain *held = vq->held;
		vq->held = NULL;
		if (held == chain)
			return VQ_POP_OK;
		/* Another buffer: walk the chain again into it. */
		vq_unpop(vq);
	}
	uint16_t pending = (uint16_t)(avail_idx - vq->last_avail_idx);
	if (pending == 0)
		return VQ_POP_EMPTY;
	uint16_t head = GUEST_LOAD(&vq->avail->ring[vq->last_avail_idx & (vq->size - 1)]);
	if (head >= vq->size)
		return poison(vq, VQ_POISON_HEAD_RANGE);
	vq->last_avail_idx++;
	if (vq->event_idx && vq->notify_enabled) {
		GUEST_STORE(avail_event_ptr(vq), vq->last_avail_idx);
		used_ring_written(vq);
	}

	chain->head = head;
	chain->n_out = chain->n_in = 0;
	chain->out_len = chain->in_len = 0;
	enum vq_chain_error err = walk_chain(vq, head, chain);
	if (err) {
		chain->n_out = chain->n_in = 0;
		chain->out_len = chain->in_len = 0;
		return bad_chain(vq, err);
	}
	return VQ_POP_OK;
}

void vq_unpop(struct virtqueue *vq)
{
	vq->held = NULL;
	vq->last_avail_idx--;
}

void vq_hold(struct virtqueue *vq, struct vq_chain *chain)
{
	vq->held = chain;
}

enum vq_pop_result vq_next(struct virtqueue *vq, struct vq_chain *chain)
{
	enum vq_pop_result r;

	/* Once per drain, not per chain: the flag stays down until the ring
	 * runs dry below. */
	if (vq->notify_enabled)
		vq_disable_notify(vq);
	for (;;) {
		r = vq_pop(vq, chain);
		if (r != VQ_POP_EMPTY || !vq_enable_notify(vq))
			return r;
		/* A chain slipped in as kicks came back on: take it. */
		vq_disable_notify(vq);
	}
}

bool vq_started(const struct virtqueue *vq)
{
	return vq->started && !vq->faults.poisoned;
}

uint16_t vq_avail_idx(struct virtqueue *vq)
{
	return load_avail_idx(vq);
}

bool vq_has_avail(struct virtqueue *vq)
{
	if (!vq_started(vq))
		return false;
	return vq->held || load_avail_idx(vq) != vq->last_avail_idx;
}

int vq_push(struct virtqueue *vq, uint16_t head, uint32_t len)
{
	if (!vq->started || head >= vq->size) {
		vq->faults.used_add_failed++;
		return vq->started ? -EINVAL : -EIO;
	}
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	GUEST_STORE(&e->id, head);
	GUEST_STORE(&e->len, len);
	used_ring_written(vq);
	vq->used_idx++;
	return 0;
}

/* Linux's vring_need_event: did the used index pass the guest's used_event
 * between @old and @new? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vq_publish(struct virtqueue *vq)
{
	if (!vq->started || vq->used_idx == vq->published_idx)
		return false;
	/* Release: the used elements are visible before the index (pairs with
	 * the driver's virtio_rmb after reading used->idx). */
	store_release(&vq->used->idx, vq->used_idx);
	used_ring_written(vq);
	vq->published_idx = vq->used_idx;
	/* Full barrier: the index store is ordered before we read the guest's
	 * interrupt-suppression state (pairs with the virtio_mb in the driver's
	 * virtqueue_enable_cb), or both sides could miss each other. */
	fence_seq_cst();
	if (!vq->event_idx)
		return !(GUEST_LOAD(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	uint16_t old = vq->signalled_idx;
	bool valid = vq->signalled_valid;
	vq->signalled_idx = vq->used_idx;
	vq->signalled_valid = true;
	return !valid || need_event(GUEST_LOAD(used_event_ptr(vq)), vq->used_idx, old);
}

void vq_disable_notify(struct virtqueue *vq)
{
	vq->notify_enabled = false;
	if (!vq->started || vq->event_idx)
		return;   /* with EVENT_IDX, a stale avail_event suppresses kicks */
	uint16_t flags = GUEST_LOAD(&vq->used->flags);
	GUEST_STORE(&vq->used->flags, flags | VRING_USED_F_NO_NOTIFY);
	used_ring_written(vq);
}

void vq_suppress_notify(struct virtqueue *vq)
{
	if (!vq->event_idx) {
		vq_disable_notify(vq);
		return;
	}
	vq->notify_enabled = false;
	if (!vq->started || vq->faults.poisoned)
		return;
	/* The driver kicks when its new index passes avail_event; one behind
	 * the chains it has already made available is never passed. */
	GUEST_STORE(avail_event_ptr(vq), (uint16_t)(vq->last_avail_idx - 1));
	used_ring_written(vq);
}

bool vq_enable_notify(struct virtqueue *vq)
{
	vq->notify_enabled = true;
	if (!vq->started || vq->faults.poisoned)
		return false;
	if (vq->event_idx) {
		GUEST_STORE(avail_event_ptr(vq), vq->last_avail_idx);
	} else {
		uint16_t flags = GUEST_LOAD(&vq->used->flags);
		GUEST_STORE(&vq->used->flags, flags & ~VRING_USED_F_NO_NOTIFY);
	}
	used_ring_written(vq);
	/* Full barrier: the store above is visible before we look at avail->idx
	 * again (pairs with the driver's virtio_mb between publishing avail->idx
	 * and reading avail_event/flags); a chain slipped in meanwhile is seen. */
	fence_seq_cst();
	return load_avail_idx(vq) != vq->last_avail_idx;
}

void vq_notify_on_next(struct virtqueue *vq)
{
	vq_enable_notify(vq);
	if (!vq->started || vq->faults.poisoned || !vq->event_idx)
		return;
	/* The driver's next avail->idx passes this one: it kicks. */
	GUEST_STORE(avail_event_ptr(vq), load_avail_idx(vq));
	used_ring_written(vq);
}

const char *vq_chain_error_str(enum vq_chain_error err)
{
	static const char *const names[] = {
		[VQ_CHAIN_ERR_NONE] = "no error",
		[VQ_CHAIN_ERR_NEXT_RANGE] = "next descriptor index out of range",
		[VQ_CHAIN_ERR_TOO_LONG] = "chain longer than its table (loop)",
		[VQ_CHAIN_ERR_ADDR] = "buffer outside guest memory",
		[VQ_CHAIN_ERR_TOO_MANY_IOV] = "chain has too many pieces",
		[VQ_CHAIN_ERR_INDIRECT] = "bad indirect descriptor",
		[VQ_CHAIN_ERR_ORDER] = "readable descriptor after a writable one",
		[VQ_CHAIN_ERR_LEN] = "chain length overflows 32 bits",
	};
	return (unsigned)err < ARRAY_SIZE(names) ? names[err] : "unknown";
}

const char *vq_poison_str(enum vq_poison_reason why)
{
	static const char *const names[] = {
		[VQ_POISON_NONE] = "not poisoned",
		[VQ_POISON_AVAIL_IDX] = "avail index ran more than the queue size ahead of used",
		[VQ_POISON_HEAD_RANGE] = "avail ring holds a head out of range",
	};
	return (unsigned)why < ARRAY_SIZE(names) ? names[why] : "unknown";
}
