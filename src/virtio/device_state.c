/*
 * Snapshot state of the virtio device core: section "VDEV" (see
 * device_state.h). Order of this file: saving, parsing and its checks,
 * applying.
 */
#include "virtio/device_state.h"

#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>

#include "core/atomics.h"

#define VDEV_TAG "VDEV"

/* --- saving ---------------------------------------------------------------- */

static void save_faults(const struct vq_faults *f, struct state_writer *w)
{
	state_put_u64(w, f->chains_invalid);
	state_put_u64(w, f->used_add_failed);
	state_put_u8(w, (uint8_t)f->last_chain_error);
	state_put_u8(w, (uint8_t)f->poisoned);
	state_put_bool(w, f->poison_reported);
}

static void save_queue(const struct virtqueue *vq, struct state_writer *w)
{
	state_put_u16(w, vq->size);
	state_put_u64(w, vq->desc_gpa);
	state_put_u64(w, vq->avail_gpa);
	state_put_u64(w, vq->used_gpa);
	/* A held chain is saved as not taken (device_state.h). */
	state_put_u16(w, vq_base(vq));
	state_put_u16(w, vq->used_idx);
	state_put_u16(w, vq->published_idx);
	state_put_u16(w, vq->signalled_idx);
	state_put_bool(w, vq->signalled_valid);
	state_put_bool(w, vq->notify_enabled);
	save_faults(&vq->faults, w);
}

int virtio_device_state_save(struct virtio_device *dev, struct state_writer *w, struct errbuf *eb)
{
	state_begin(w, VDEV_TAG);
	state_put_u64(w, dev->features);
	state_put_bool(w, dev->active);
	state_put_bool(w, dev->needs_reset);
	state_put_u32(w, dev->config_generation);
	state_put_u32(w, dev->num_queues);
	for (unsigned q = 0; q < dev->num_queues; q++)
		save_queue(&dev->vqs[q], w);
	state_end(w);
	return dev->ops->save_state ? dev->ops->save_state(dev, w, eb) : 0;
}

/* --- parsing ---------------------------------------------------------------- */

static void read_queue(struct state_reader *sec, struct vq_state *q)
{
	q->cfg.size = state_get_u16(sec);
	q->cfg.desc_gpa = state_get_u64(sec);
	q->cfg.avail_gpa = state_get_u64(sec);
	q->cfg.used_gpa = state_get_u64(sec);
	q->cfg.base = state_get_u16(sec);
	q->used_idx = state_get_u16(sec);
	q->published_idx = state_get_u16(sec);
	q->signalled_idx = state_get_u16(sec);
	q->signalled_valid = state_get_bool(sec);
	q->notify_enabled = state_get_bool(sec);
	q->faults.chains_invalid = state_get_u64(sec);
	q->faults.used_add_failed = state_get_u64(sec);
	q->faults.last_chain_error = (enum vq_chain_error)state_get_u8(sec);
	q->faults.poisoned = (enum vq_poison_reason)state_get_u8(sec);
	q->faults.poison_reported = state_get_bool(sec);
}

/* Queues this device can have: its count as built (the most, for a device
 * whose count follows the features). */
static unsigned queue_capacity(const struct virtio_device *dev)
{
	return dev->max_queues ? dev->max_queues : dev->num_queues;
}

static bool check_queue_count(const struct virtio_device *dev, struct state_reader *sec,
			      uint32_t n)
{
	unsigned cap = queue_capacity(dev);

	if (n && n <= cap && (dev->max_queues || n == cap))
		return true;
	return state_fail(sec, "%u queues in the state, this %s has %s%u", n, dev->ops->name,
			  dev->max_queues ? "at most " : "", cap);
}

/* The rules of virtio_device_set_features, without calling the device. */
static bool check_features(struct virtio_device *dev, struct state_reader *sec,
			   const struct virtio_device_state *s)
{
	uint64_t offered = dev->ops->features(dev);

	if (!s->features)
		return !s->active || state_fail(sec, "active without negotiated features");
	if (s->features & ~offered)
		return state_fail(sec, "features 0x%llx, of which 0x%llx this %s does not offer",
				  (unsigned long long)s->features,
				  (unsigned long long)(s->features & ~offered), dev->ops->name);
	if (!(s->features & (1ull << VIRTIO_F_VERSION_1)))
		return state_fail(sec, "features 0x%llx without VIRTIO_F_VERSION_1",
				  (unsigned long long)s->features);
	return true;
}

/* The used index the guest sees in its memory, which must be the one the
 * state published: else memory and state are not of one snapshot. */
static bool check_used_in_memory(const struct virtio_device *dev, struct state_reader *sec,
				 unsigned i, const struct vq_state *q)
{
	struct vring_used *used = guest_mem_ptr(dev->mem, q->cfg.used_gpa, 4);
	uint16_t in_mem = load_relaxed(&used->idx);

	if (in_mem == q->published_idx)
		return true;
	return state_fail(sec, "queue %u: the used index in guest memory is %u, the state's %u: "
			  "memory and state are not of one snapshot", i, in_mem, q->published_idx);
}

/* A queue of an active device: rings that start, indices a device can
 * have reached (at most size entries unpublished, at most size chains
 * taken and not used). */
static bool check_live_queue(const struct virtio_device *dev, struct state_reader *sec,
			     unsigned i, const struct vq_state *q)
{
	const char *why;
	uint16_t size = q->cfg.size;

	if (vq_config_check(&q->cfg, dev->mem, &why) < 0)
		return state_fail(sec, "queue %u (size %u, desc 0x%llx, avail 0x%llx, used 0x%llx): %s",
				  i, size, (unsigned long long)q->cfg.desc_gpa,
				  (unsigned long long)q->cfg.avail_gpa,
				  (unsigned long long)q->cfg.used_gpa, why);
	if ((uint16_t)(q->used_idx - q->published_idx) > size)
		return state_fail(sec, "queue %u: %u used entries unpublished, more than its size %u",
				  i, (uint16_t)(q->used_idx - q->published_idx), size);
	if ((uint16_t)(q->cfg.base - q->used_idx) > size)
		return state_fail(sec, "queue %u: %u chains taken and not used, more than its size %u",
				  i, (uint16_t)(q->cfg.base - q->used_idx), size);
	return check_used_in_memory(dev, sec, i, q);
}

static bool check_queue(const struct virtio_device *dev, struct state_reader *sec, unsigned i,
			const struct virtio_device_state *s)
{
	const struct vq_state *q = &s->q[i];

	if (q->faults.last_chain_error > VQ_CHAIN_ERR_LEN)
		return state_fail(sec, "queue %u: unknown chain error %u", i, q->faults.last_chain_error);
	if (q->faults.poisoned > VQ_POISON_HEAD_RANGE)
		return state_fail(sec, "queue %u: unknown poison reason %u", i, q->faults.poisoned);
	return !s->active || check_live_queue(dev, sec, i, s->q + i);
}

static bool parse_body(struct virtio_device *dev, struct state_reader *sec,
		       struct virtio_device_state *s)
{
	s->features = state_get_u64(sec);
	s->active = state_get_bool(sec);
	s->needs_reset = state_get_bool(sec);
	s->config_generation = state_get_u32(sec);
	uint32_t n = state_get_u32(sec);
	if (sec->failed || !check_queue_count(dev, sec, n) || !check_features(dev, sec, s))
		return false;
	s->q = calloc(n, sizeof(*s->q));
	if (!s->q)
		return state_fail(sec, "out of memory");
	s->num_queues = n;
	for (unsigned i = 0; i < n; i++)
		read_queue(sec, &s->q[i]);
	for (unsigned i = 0; !sec->failed && i < n; i++)
		check_queue(dev, sec, i, s);
	return !sec->failed;
}

bool virtio_device_state_parse(struct virtio_device *dev, struct state_reader *r,
			       struct virtio_device_state *s)
{
	struct state_reader sec;

	memset(s, 0, sizeof(*s));
	if (!state_section(r, VDEV_TAG, &sec))
		return false;
	parse_body(dev, &sec, s);
	return state_section_done(r, &sec);
}

void virtio_device_state_free(struct virtio_device_state *s)
{
	free(s->q);
	s->q = NULL;
	s->num_queues = 0;
}

bool virtio_device_state_load_own(struct virtio_device *dev, const struct virtio_device_state *s,
				  struct state_reader *r)
{
	if (r->failed)
		return false;
	if (!dev->ops->load_state || dev->ops->load_state(dev, s, r))
		return !r->failed;
	if (!r->failed)
		state_fail(r, "%s: its own state was refused", dev->ops->name);
	return false;
}

/* --- applying ----------------------------------------------------------------- */

/* The device said no to what the checks let through: back to as built. */
static bool refused(struct virtio_device *dev, struct state_reader *r, const char *what)
{
	virtio_device_reset(dev);
	return state_fail(r, "%s: the device refused the state: %s", dev->ops->name, what);
}

/* What vq_start takes from the ring, replaced by what the old device had. */
static void restore_indices(struct virtqueue *vq, const struct vq_state *q)
{
	vq->used_idx = q->used_idx;
	vq->published_idx = q->published_idx;
	vq->signalled_idx = q->signalled_idx;
	vq->signalled_valid = q->signalled_valid;
	if (!q->notify_enabled)
		vq_disable_notify(vq);
}

/* Start the queues at their indices, then activate: paused, the device
 * moves nothing until virtio_device_resume. */
static bool activate_restored(struct virtio_device *dev, const struct virtio_device_state *s,
			      struct state_reader *r)
{
	for (unsigned i = 0; i < s->num_queues; i++) {
		if (vq_start(&dev->vqs[i], dev->mem) < 0)
			return refused(dev, r, "a queue did not start");
		restore_indices(&dev->vqs[i], &s->q[i]);
	}
	if (virtio_device_activate(dev) < 0)
		return refused(dev, r, "activation failed");
	return true;
}

bool virtio_device_state_apply(struct virtio_device *dev, const struct virtio_device_state *s,
			       struct state_reader *r)
{
	if (s->features && virtio_device_set_features(dev, s->features) < 0)
		return refused(dev, r, "its features");
	if (dev->num_queues != s->num_queues)
		return refused(dev, r, "another queue count with these features");
	for (unsigned i = 0; i < s->num_queues; i++) {
		vq_configure(&dev->vqs[i], &s->q[i].cfg);
		/* A poisoned queue stays poisoned: vq_pop refuses it from the start. */
		dev->vqs[i].faults = s->q[i].faults;
	}
	dev->needs_reset = s->needs_reset;
	dev->config_generation = s->config_generation;
	virtio_device_pause(dev);
	return !s->active || activate_restored(dev, s, r);
}

bool virtio_device_state_load(struct virtio_device *dev, struct state_reader *r)
{
	struct virtio_device_state s;
	bool ok = virtio_device_state_parse(dev, r, &s) && virtio_device_state_load_own(dev, &s, r) &&
		  virtio_device_state_apply(dev, &s, r);

	virtio_device_state_free(&s);
	return ok;
}
