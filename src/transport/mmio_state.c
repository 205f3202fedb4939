/*
 * virtio-mmio snapshot state: section "MMIO" with the register file, then
 * the device's sections (virtio/device_state.h). See mmio.h for the
 * contract. Order of this file: saving, parsing and checks, cross-checks
 * with the device's state, applying, resume.
 */
#include "transport/mmio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_mmio.h>

#include "core/atomics.h"
#include "core/log.h"
#include "virtio/device_state.h"

#define MMIO_TAG "MMIO"
#define NAME_MAX_LEN 32u

/* The registers as saved. */
struct mmio_state {
	uint32_t device_id;
	char name[NAME_MAX_LEN];
	uint32_t nqueues;
	uint32_t status;                 /* without NEEDS_RESET */
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint64_t driver_features;
	uint32_t interrupt_status, config_generation;
	bool needs_reset;
	struct virtio_mmio_queue *q;     /* nqueues */
};

/* --- saving ---------------------------------------------------------------- */

static void save_queue(const struct virtio_mmio_queue *mq, struct state_writer *w)
{
	state_put_u16(w, mq->num);
	state_put_bool(w, mq->ready);
	state_put_u64(w, mq->desc);
	state_put_u64(w, mq->avail);
	state_put_u64(w, mq->used);
}

static void save_registers(struct virtio_mmio *t, struct state_writer *w)
{
	state_begin(w, MMIO_TAG);
	state_put_u32(w, t->dev->ops->device_id);
	state_put_str(w, t->dev->ops->name);
	state_put_u32(w, t->nqueues);
	state_put_u32(w, t->status);
	state_put_u32(w, t->device_features_sel);
	state_put_u32(w, t->driver_features_sel);
	state_put_u32(w, t->queue_sel);
	state_put_u64(w, t->driver_features);
	state_put_u32(w, load_seq_cst(&t->interrupt_status));
	state_put_u32(w, load_seq_cst(&t->config_generation));
	state_put_bool(w, load_seq_cst(&t->needs_reset));
	for (unsigned q = 0; q < t->nqueues; q++)
		save_queue(&t->queues[q], w);
	state_end(w);
}

int virtio_mmio_state_save(struct virtio_mmio *t, struct state_writer *w, struct errbuf *eb)
{
	if (t->dev->active && !t->dev->paused) {
		errbuf_set(eb, "%s: the device is running: pause it first", t->dev->ops->name);
		return -EBUSY;
	}
	pthread_mutex_lock(&t->lock);
	save_registers(t, w);
	pthread_mutex_unlock(&t->lock);
	return virtio_device_state_save(t->dev, w, eb);
}

/* --- parsing ----------------------------------------------------------------- */

static void read_queue(struct state_reader *sec, struct virtio_mmio_queue *mq)
{
	mq->num = state_get_u16(sec);
	mq->ready = state_get_bool(sec);
	mq->desc = state_get_u64(sec);
	mq->avail = state_get_u64(sec);
	mq->used = state_get_u64(sec);
}

/* Same device type, same queue count as the one built here. */
static bool check_identity(const struct virtio_mmio *t, struct state_reader *sec,
			   const struct mmio_state *s)
{
	const struct virtio_device_ops *ops = t->dev->ops;

	if (s->device_id != ops->device_id)
		return state_fail(sec, "the state has a %s device (id %u) in this slot, this machine has "
				  "%s (id %u)", s->name, s->device_id, ops->name, ops->device_id);
	if (s->nqueues != t->nqueues)
		return state_fail(sec, "the state's %s has %u queues, this machine's %u", s->name,
				  s->nqueues, t->nqueues);
	return true;
}

static bool check_status(const struct virtio_mmio *t, struct state_reader *sec,
			 const struct mmio_state *s)
{
	if (s->status & ~(uint32_t)VIRTIO_MMIO_STATUS_DRIVER_BITS)
		return state_fail(sec, "status 0x%x has bits no driver sets", s->status);
	if (!virtio_mmio_status_step_ok(0, s->status))
		return state_fail(sec, "status 0x%x skips a step of the state machine", s->status);
	if (s->driver_features & ~t->offered)
		return state_fail(sec, "driver features 0x%llx, of which 0x%llx are not offered",
				  (unsigned long long)s->driver_features,
				  (unsigned long long)(s->driver_features & ~t->offered));
	if (s->interrupt_status & ~(uint32_t)(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		return state_fail(sec, "interrupt status 0x%x has unknown causes", s->interrupt_status);
	return true;
}

/* One queue's registers: what the register writes can have left there. */
static bool check_queue(const struct virtio_mmio *t, struct state_reader *sec, unsigned i,
			const struct mmio_state *s)
{
	const struct virtio_mmio_queue *mq = &s->q[i];
	struct vq_config cfg = { .size = mq->num, .desc_gpa = mq->desc, .avail_gpa = mq->avail,
				 .used_gpa = mq->used };
	const char *why;

	if (mq->num > t->opts.queue_num_max)
		return state_fail(sec, "queue %u: size %u above QueueNumMax %u", i, mq->num,
				  t->opts.queue_num_max);
	if (mq->num & (mq->num - 1))
		return state_fail(sec, "queue %u: size %u is not a power of two", i, mq->num);
	if ((mq->num || mq->ready || mq->desc || mq->avail || mq->used) &&
	    !(s->status & VIRTIO_CONFIG_S_FEATURES_OK))
		return state_fail(sec, "queue %u: configured without FEATURES_OK", i);
	/* A ready queue the device refused is how NEEDS_RESET comes about. */
	if (mq->ready && !s->needs_reset && vq_config_check(&cfg, t->dev->mem, &why) < 0)
		return state_fail(sec, "queue %u (ready, size %u, desc 0x%llx, avail 0x%llx, used 0x%llx): %s",
				  i, mq->num, (unsigned long long)mq->desc,
				  (unsigned long long)mq->avail, (unsigned long long)mq->used, why);
	return true;
}

static bool parse_body(const struct virtio_mmio *t, struct state_reader *sec,
		       struct mmio_state *s)
{
	s->device_id = state_get_u32(sec);
	state_get_str(sec, s->name, sizeof(s->name));
	s->nqueues = state_get_u32(sec);
	if (sec->failed || !check_identity(t, sec, s))
		return false;
	s->status = state_get_u32(sec);
	s->device_features_sel = state_get_u32(sec);
	s->driver_features_sel = state_get_u32(sec);
	s->queue_sel = state_get_u32(sec);
	s->driver_features = state_get_u64(sec);
	s->interrupt_status = state_get_u32(sec);
	s->config_generation = state_get_u32(sec);
	s->needs_reset = state_get_bool(sec);
	s->q = calloc(s->nqueues, sizeof(*s->q));
	if (!s->q)
		return state_fail(sec, "out of memory");
	for (unsigned i = 0; i < s->nqueues; i++)
		read_queue(sec, &s->q[i]);
	if (sec->failed || !check_status(t, sec, s))
		return false;
	for (unsigned i = 0; !sec->failed && i < s->nqueues; i++)
		check_queue(t, sec, i, s);
	return !sec->failed;
}

static bool parse_registers(const struct virtio_mmio *t, struct state_reader *r,
			    struct mmio_state *s)
{
	struct state_reader sec;

	if (!state_section(r, MMIO_TAG, &sec))
		return false;
	parse_body(t, &sec, s);
	return state_section_done(r, &sec);
}

/* --- the registers against the device's state ---------------------------------- */

static bool check_lifecycle(struct state_reader *r, const struct mmio_state *s,
			    const struct virtio_device_state *ds)
{
	bool features_ok = s->status & VIRTIO_CONFIG_S_FEATURES_OK;
	bool driver_ok = s->status & VIRTIO_CONFIG_S_DRIVER_OK;

	if (features_ok ? ds->features != s->driver_features : ds->features != 0)
		return state_fail(r, "%s: the device's features 0x%llx do not match status 0x%x and "
				  "driver features 0x%llx", s->name, (unsigned long long)ds->features,
				  s->status, (unsigned long long)s->driver_features);
	if (ds->active && !driver_ok)
		return state_fail(r, "%s: the device is active without DRIVER_OK", s->name);
	if (driver_ok && !ds->active && !s->needs_reset)
		return state_fail(r, "%s: DRIVER_OK, the device inactive and no NEEDS_RESET", s->name);
	if (s->needs_reset != ds->needs_reset)
		return state_fail(r, "%s: NEEDS_RESET differs between transport and device", s->name);
	return true;
}

/* An active device runs the queues the registers describe. */
static bool check_queues_match(struct state_reader *r, const struct mmio_state *s,
			       const struct virtio_device_state *ds)
{
	for (unsigned i = 0; ds->active && i < ds->num_queues; i++) {
		const struct virtio_mmio_queue *mq = &s->q[i];
		const struct vq_config *c = &ds->q[i].cfg;
		if (!mq->ready || mq->num != c->size || mq->desc != c->desc_gpa ||
		    mq->avail != c->avail_gpa || mq->used != c->used_gpa)
			return state_fail(r, "%s: queue %u: the registers (ready %d, size %u) are not "
					  "the device's queue (size %u)", s->name, i, mq->ready,
					  mq->num, c->size);
	}
	return true;
}

/* --- applying ------------------------------------------------------------------- */

static void apply_registers(struct virtio_mmio *t, const struct mmio_state *s)
{
	pthread_mutex_lock(&t->lock);
	t->status = s->status;
	t->device_features_sel = s->device_features_sel;
	t->driver_features_sel = s->driver_features_sel;
	t->queue_sel = s->queue_sel;
	t->driver_features = s->driver_features;
	memcpy(t->queues, s->q, t->nqueues * sizeof(t->queues[0]));
	store_seq_cst(&t->interrupt_status, s->interrupt_status);
	store_seq_cst(&t->config_generation, s->config_generation);
	store_seq_cst(&t->needs_reset, s->needs_reset ? 1 : 0);
	/* Raised at resume, not now: the irqchip state is restored after the
	 * devices, and an edge sent into it before would be overwritten. */
	t->irq_owed = s->interrupt_status != 0;
	pthread_mutex_unlock(&t->lock);
}

static bool fresh(const struct virtio_mmio *t)
{
	return !t->status && !t->dev->active && !t->dev->features;
}

int virtio_mmio_state_load(struct virtio_mmio *t, struct state_reader *r)
{
	struct mmio_state s = { 0 };
	struct virtio_device_state ds = { 0 };

	if (!fresh(t)) {
		state_fail(r, "%s: a state loads into a device no driver has used", t->dev->ops->name);
		return -EBUSY;
	}
	bool ok = parse_registers(t, r, &s) && virtio_device_state_parse(t->dev, r, &ds) &&
		  check_lifecycle(r, &s, &ds) && check_queues_match(r, &s, &ds) &&
		  virtio_device_state_load_own(t->dev, &ds, r) &&
		  virtio_device_state_apply(t->dev, &ds, r);
	if (ok)
		apply_registers(t, &s);
	virtio_device_state_free(&ds);
	free(s.q);
	return ok ? 0 : -EINVAL;
}

/* --- resume ------------------------------------------------------------------------ */

void virtio_mmio_state_resume(struct virtio_mmio *t)
{
	uint64_t one = 1;

	/* The old process's edge may have been taken by the guest before the
	 * snapshot or not; a second one with the cause still set costs the
	 * guest one read of InterruptStatus, a lost one a stalled queue. */
	if (t->irq_owed && load_seq_cst(&t->interrupt_status) &&
	    write(t->irq_fd, &one, sizeof(one)) < 0)
		fetch_add_relaxed(&t->counters.tx_interrupts_failed, 1);
	t->irq_owed = false;
	virtio_device_resume(t->dev);
}
