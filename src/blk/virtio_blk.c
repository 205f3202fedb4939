/* virtio-blk (see virtio_blk.h). Order: completion and interrupts, checking
 * and serving one request, the worker, the device operations, set-up. */
#include "blk/virtio_blk.h"
#include "core/seccomp_filter.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"

#define BLK_HDR_LEN sizeof(struct virtio_blk_outhdr)
#define BLK_RING_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) | \
			   (1ull << VIRTIO_RING_F_INDIRECT_DESC))
#define BLK_FEATURES (BLK_RING_FEATURES | (1ull << VIRTIO_BLK_F_SEG_MAX) | \
		      (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) | \
		      (1ull << VIRTIO_BLK_F_FLUSH))
#define BLK_WRITE_FEATURES ((1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES))

#define CTR_INC(blk, name) fetch_add_relaxed(&(blk)->counters.name, 1)
#define CTR_ADD(blk, name, n) fetch_add_relaxed(&(blk)->counters.name, (n))

static struct virtio_blk *to_blk(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_blk, vdev);
}

/* --- completion and interrupts --------------------------------------------- */

/* The loop delivers what the worker could not: interrupts and poisoning. */
static void deliver_posted(struct virtio_blk *blk)
{
	struct virtio_device *dev = &blk->vdev;

	if (exchange_seq_cst(&blk->poisoned_pending, false))
		virtio_device_mark_broken(dev, 0);
	if (exchange_seq_cst(&blk->irq_pending, false) && dev->transport)
		dev->transport->ops->signal_used(dev->transport, 0);
}

static void throttle_wait(struct virtio_blk *blk);
static void mark_work(struct virtio_blk *blk, bool on);

static void on_posted(struct event_notifier *n)
{
	struct virtio_blk *blk = container_of(n, struct virtio_blk, posted);

	deliver_posted(blk);
	if (exchange_seq_cst(&blk->throttle_pending, false))
		throttle_wait(blk);
}

static void post(struct virtio_blk *blk, bool *flag)
{
	store_seq_cst(flag, true);
	if (event_notifier_signal(&blk->posted) < 0)
		log_warn("virtio-blk: cannot wake the loop for an interrupt");
}

/* Give @head back with @len bytes written and interrupt if the driver asked. */
static void complete(struct virtio_blk *blk, uint16_t head, uint32_t len)
{
	struct virtio_transport *t = blk->vdev.transport;

	vq_push(&blk->vq, head, len);
	if (!vq_publish(&blk->vq) || !t)
		return;
	if (!t->ops->signal_used_direct || !t->ops->signal_used_direct(t, 0))
		post(blk, &blk->irq_pending);
}

/* --- one request ---------------------------------------------------------------- */

/* What the worker knows of a request once its chain is split. */
struct blk_req {
	struct virtio_blk_outhdr hdr;
	struct iovec data[VQ_CHAIN_MAX_IOV];
	unsigned n_data;
	uint64_t data_len;
	uint8_t *status;
	uint32_t written;            /* bytes the device wrote into the guest, status included */
};

/* The device-writable part less its last byte, which is the status. */
static void split_in(struct vq_chain *c, struct blk_req *rq)
{
	struct iovec *in = vq_chain_in(c);
	struct iovec *last = &in[c->n_in - 1];

	rq->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	memcpy(rq->data, in, c->n_in * sizeof(*in));
	rq->n_data = c->n_in;
	rq->data[rq->n_data - 1].iov_len--;
	if (!rq->data[rq->n_data - 1].iov_len)
		rq->n_data--;
	rq->data_len = c->in_len - 1;
}

/* The readable part after the header. */
static void split_out(struct vq_chain *c, struct blk_req *rq)
{
	rq->n_data = iov_skip(c->iov, c->n_out, BLK_HDR_LEN, rq->data, VQ_CHAIN_MAX_IOV);
	rq->data_len = c->out_len - BLK_HDR_LEN;
}

/* Whole sectors, inside the image, without overflow. */
static bool in_range(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t sectors = bytes / BLK_SECTOR_SIZE;

	return bytes % BLK_SECTOR_SIZE == 0 && sector <= blk->img->sectors &&
	       sectors <= blk->img->sectors - sector;
}

static uint8_t io_status(struct virtio_blk *blk, int r)
{
	if (!r)
		return VIRTIO_BLK_S_OK;
	CTR_INC(blk, tx_io_errors);
	return VIRTIO_BLK_S_IOERR;
}

/* IN and OUT: data the right way only (a read carries nothing after its
 * header, a write nothing before its status), whole sectors in range. */
static uint8_t serve_rw(struct virtio_blk *blk, struct vq_chain *c, struct blk_req *rq, bool write)
{
	uint64_t off = le64toh(rq->hdr.sector) * BLK_SECTOR_SIZE;

	if (write ? c->in_len != 1 : c->out_len != BLK_HDR_LEN) {
		CTR_INC(blk, rx_requests_malformed);
		return VIRTIO_BLK_S_IOERR;
	}
	if (write && blk->img->read_only) {
		CTR_INC(blk, rx_writes_read_only);
		return VIRTIO_BLK_S_IOERR;
	}
	if (rq->data_len > VIRTIO_BLK_SIZE_MAX * (uint64_t)VIRTIO_BLK_SEG_MAX ||
	    !in_range(blk, le64toh(rq->hdr.sector), rq->data_len)) {
		CTR_INC(blk, rx_requests_out_of_range);
		return VIRTIO_BLK_S_IOERR;
	}
	if (write) {
		CTR_INC(blk, rx_requests_write);
		CTR_ADD(blk, rx_write_bytes, rq->data_len);
		return io_status(blk, blk_image_write(blk->img, rq->data, rq->n_data, off, rq->data_len));
	}
	CTR_INC(blk, rx_requests_read);
	int r = blk_image_read(blk->img, rq->data, rq->n_data, off, rq->data_len);
	if (!r) {
		CTR_ADD(blk, tx_read_bytes, rq->data_len);
		rq->written += (uint32_t)rq->data_len;
	}
	return io_status(blk, r);
}

static uint8_t serve_get_id(struct virtio_blk *blk, struct blk_req *rq)
{
	size_t n = (size_t)MIN(rq->data_len, (uint64_t)BLK_SERIAL_LEN);

	CTR_INC(blk, rx_requests_get_id);
	rq->written += (uint32_t)iov_from_buf(rq->data, rq->n_data, 0, blk->img->serial, n);
	return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: one segment (max_*_seg is 1), the flags the
 * type allows, in range; writable drives only. */
static uint8_t serve_zero(struct virtio_blk *blk, struct vq_chain *c, struct blk_req *rq,
			  bool discard)
{
	struct virtio_blk_discard_write_zeroes seg;
	uint32_t allowed = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;

	if (rq->data_len != sizeof(seg) || c->in_len != 1) {
		CTR_INC(blk, rx_requests_malformed);
		return VIRTIO_BLK_S_IOERR;
	}
	iov_to_buf(rq->data, rq->n_data, 0, &seg, sizeof(seg));
	uint64_t sector = le64toh(seg.sector), n = le32toh(seg.num_sectors);
	uint32_t flags = le32toh(seg.flags);
	if (flags & ~allowed) {
		CTR_INC(blk, rx_requests_unsupported);
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (blk->img->read_only) {
		CTR_INC(blk, rx_writes_read_only);
		return VIRTIO_BLK_S_IOERR;
	}
	if (n > VIRTIO_BLK_MAX_ZERO_SECTORS || !in_range(blk, sector, n * BLK_SECTOR_SIZE)) {
		CTR_INC(blk, rx_requests_out_of_range);
		return VIRTIO_BLK_S_IOERR;
	}
	uint64_t off = sector * BLK_SECTOR_SIZE, len = n * BLK_SECTOR_SIZE;
	if (!discard) {
		CTR_INC(blk, rx_requests_write_zeroes);
		return io_status(blk, blk_image_write_zeroes(blk->img, off, len,
							     flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP));
	}
	CTR_INC(blk, rx_requests_discard);
	int r = blk_image_discard(blk->img, off, len);
	if (r == 1)
		CTR_INC(blk, rx_discards_ignored);
	return io_status(blk, r < 0 ? r : 0);
}

static uint8_t serve(struct virtio_blk *blk, struct vq_chain *c, struct blk_req *rq)
{
	switch (le32toh(rq->hdr.type)) {
	case VIRTIO_BLK_T_IN:
		split_in(c, rq);
		return serve_rw(blk, c, rq, false);
	case VIRTIO_BLK_T_OUT:
		split_out(c, rq);
		return serve_rw(blk, c, rq, true);
	case VIRTIO_BLK_T_FLUSH:
		CTR_INC(blk, rx_requests_flush);
		return io_status(blk, blk_image_flush(blk->img));
	case VIRTIO_BLK_T_GET_ID:
		split_in(c, rq);
		return serve_get_id(blk, rq);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		split_out(c, rq);
		return serve_zero(blk, c, rq, le32toh(rq->hdr.type) == VIRTIO_BLK_T_DISCARD);
	default:
		CTR_INC(blk, rx_requests_unsupported);
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* A header to read and a status byte to write, else nothing can be said:
 * the chain comes back with 0 bytes. */
static void handle_chain(struct virtio_blk *blk, struct vq_chain *c)
{
	static __thread struct blk_req rq;

	if (c->out_len < BLK_HDR_LEN || !c->in_len) {
		CTR_INC(blk, rx_requests_malformed);
		complete(blk, c->head, 0);
		return;
	}
	iov_to_buf(c->iov, c->n_out, 0, &rq.hdr, BLK_HDR_LEN);
	split_in(c, &rq);            /* the status byte, whatever the type */
	uint8_t *status = rq.status;
	rq.written = 0;
	*status = serve(blk, c, &rq);
	complete(blk, c->head, rq.written + 1);
}

/* --- the rate limiter ----------------------------------------------------------- */

/* The data bytes a request moves: all but the header and the status. */
static uint64_t request_bytes(const struct vq_chain *c)
{
	uint64_t all = (uint64_t)c->out_len + c->in_len;

	return all > BLK_HDR_LEN + 1 ? all - BLK_HDR_LEN - 1 : 0;
}

/* Worker: may @c start? If not, the worker sleeps (no work until the
 * limiter's wait ends, or a kick) and the loop is asked to time the wait. */
static bool admitted(struct virtio_blk *blk, const struct vq_chain *c)
{
	pause_gate_lock(&blk->gate);
	bool ok = rate_limiter_consume(&blk->limiter, request_bytes(c));
	if (!ok)
		blk->has_work = false;
	pause_gate_unlock(&blk->gate);
	if (!ok) {
		CTR_INC(blk, rx_requests_throttled);
		post(blk, &blk->throttle_pending);
	}
	return ok;
}

/* Loop: the wait is over; the worker tries the held request again. */
static void on_throttle_timer(struct event_timer *t)
{
	struct virtio_blk *blk = container_of(t, struct virtio_blk, throttle_timer);

	pause_gate_lock(&blk->gate);
	rate_limiter_expire(&blk->limiter);
	pause_gate_unlock(&blk->gate);
	mark_work(blk, true);
}

/* Loop: time the limiter's wait (the worker posted it). */
static void throttle_wait(struct virtio_blk *blk)
{
	pause_gate_lock(&blk->gate);
	bool blocked = rate_limiter_blocked(&blk->limiter);
	uint64_t ns = blk->limiter.wait_ns;
	pause_gate_unlock(&blk->gate);
	if (blocked)
		event_loop_timer_arm(blk->vdev.loop, &blk->throttle_timer, on_throttle_timer,
				     MAX(ns, RL_MIN_WAIT_NS));
}

int virtio_blk_set_limit(struct virtio_blk *blk, const struct rate_limiter_config *cfg)
{
	pause_gate_lock(&blk->gate);
	int r = rate_limiter_configure(&blk->limiter, cfg);   /* ends a wait */
	pause_gate_unlock(&blk->gate);
	if (r < 0)
		return r;
	event_loop_timer_cancel(blk->vdev.loop, &blk->throttle_timer);
	if (blk->vdev.active)
		mark_work(blk, true);
	return 0;
}

void virtio_blk_get_limit(struct virtio_blk *blk, struct rate_limiter_config *cfg)
{
	pause_gate_lock(&blk->gate);
	rate_limiter_get_config(&blk->limiter, cfg);
	pause_gate_unlock(&blk->gate);
}

/* --- the worker ------------------------------------------------------------------ */

struct worker_view {
	struct virtio_blk *blk;
	uint64_t seq;                /* the kick count when the worker looked */
};

/* Gate lock held. */
static bool worker_ready(void *arg)
{
	struct worker_view *w = arg;

	w->seq = w->blk->kick_seq;
	return w->blk->has_work;
}

/* Pop the next chain; keep has_work true while chains wait, clear it when
 * the ring was seen empty with kicks on and no kick came meanwhile. */
static enum vq_pop_result take(struct worker_view *w)
{
	struct virtio_blk *blk = w->blk;
	enum vq_pop_result r = vq_next(&blk->vq, &blk->chain);
	bool more = false;

	if (r == VQ_POP_OK || r == VQ_POP_BAD_CHAIN)
		more = vq_has_avail(&blk->vq) || vq_enable_notify(&blk->vq);
	pause_gate_lock(&blk->gate);
	if (more)
		blk->has_work = true;
	else if (r == VQ_POP_POISONED || blk->kick_seq == w->seq)
		blk->has_work = false;
	pause_gate_unlock(&blk->gate);
	return r;
}

static void serve_one(struct worker_view *w)
{
	struct virtio_blk *blk = w->blk;

	/* A held request goes first: the ring's order is the driver's. */
	if (blk->held) {
		if (admitted(blk, &blk->chain)) {
			blk->held = false;
			handle_chain(blk, &blk->chain);
		}
		return;
	}
	switch (take(w)) {
	case VQ_POP_EMPTY:
		return;
	case VQ_POP_POISONED:
		if (vq_poison_is_new(&blk->vq)) {
			CTR_INC(blk, rx_queue_poisoned);
			post(blk, &blk->poisoned_pending);
		}
		return;
	case VQ_POP_BAD_CHAIN:
		CTR_INC(blk, rx_requests_malformed);
		complete(blk, blk->chain.head, 0);
		return;
	case VQ_POP_OK:
		if (admitted(blk, &blk->chain))
			handle_chain(blk, &blk->chain);
		else
			blk->held = true;
		return;
	}
}

/* One request per pass through the gate: a pause waits for one at most. */
static void *worker_main(void *arg)
{
	struct worker_view w = { .blk = arg };

	seccomp_filter_enter(SECCOMP_BLK_WORKER);
	while (pause_gate_enter(&w.blk->gate, worker_ready, &w)) {
		serve_one(&w);
		pause_gate_leave(&w.blk->gate);
	}
	return NULL;
}

/* --- device operations --------------------------------------------------------------- */

static uint64_t blk_features(struct virtio_device *vdev)
{
	const struct blk_image *img = to_blk(vdev)->img;

	return BLK_FEATURES | (img->read_only ? 1ull << VIRTIO_BLK_F_RO : BLK_WRITE_FEATURES);
}

static int blk_set_features(struct virtio_device *vdev, uint64_t features)
{
	return 0;
}

static void blk_config_read(struct virtio_device *vdev, void *config)
{
	const struct blk_image *img = to_blk(vdev)->img;
	struct virtio_blk_config c = {
		.capacity = htole64(img->sectors),
		.size_max = htole32(VIRTIO_BLK_SIZE_MAX),
		.seg_max = htole32(VIRTIO_BLK_SEG_MAX),
		.blk_size = htole32(BLK_SECTOR_SIZE),
		.max_discard_sectors = htole32(VIRTIO_BLK_MAX_ZERO_SECTORS),
		.max_discard_seg = htole32(1),
		.discard_sector_alignment = htole32(1),
		.max_write_zeroes_sectors = htole32(VIRTIO_BLK_MAX_ZERO_SECTORS),
		.max_write_zeroes_seg = htole32(1),
		.write_zeroes_may_unmap = 1,
	};

	memcpy(config, &c, sizeof(c));
}

/* Config space is read-only here (no writeback toggle offered). */
static void blk_config_write(struct virtio_device *vdev, uint32_t offset, const void *data,
			     uint32_t len)
{
}

static void mark_work(struct virtio_blk *blk, bool on)
{
	pause_gate_lock(&blk->gate);
	blk->has_work = on;
	blk->kick_seq++;
	if (on)
		pause_gate_wake(&blk->gate);
	pause_gate_unlock(&blk->gate);
}

/* Loop thread, the queue started, the worker parked: let it in. */
static int blk_activate(struct virtio_device *vdev)
{
	struct virtio_blk *blk = to_blk(vdev);

	mark_work(blk, true);        /* requests may wait already */
	pause_gate_resume(&blk->gate);
	return 0;
}

static void blk_queue_notify(struct virtio_device *vdev, unsigned q)
{
	mark_work(to_blk(vdev), true);
}

/* No request between popped and answered when this returns; the
 * interrupts owed are raised (a paused VM's irqchip keeps them). */
static void hold_at_boundary(struct virtio_blk *blk)
{
	pause_gate_pause(&blk->gate);
	pause_gate_wait_idle(&blk->gate);
	deliver_posted(blk);
}

static void blk_reset(struct virtio_device *vdev)
{
	struct virtio_blk *blk = to_blk(vdev);

	hold_at_boundary(blk);
	mark_work(blk, false);
	blk->held = false;            /* the ring it came from is gone */
	event_loop_timer_cancel(vdev->loop, &blk->throttle_timer);
}

/* A request waiting for the limiter's tokens goes back into the queue's
 * keeping (vq_hold): a snapshot saves it as not taken (vq_base), so the
 * restored device serves it, and the worker here pops it again first. */
static void blk_pause(struct virtio_device *vdev)
{
	struct virtio_blk *blk = to_blk(vdev);

	hold_at_boundary(blk);
	if (blk->held) {
		vq_hold(&blk->vq, &blk->chain);
		blk->held = false;
	}
}

static void blk_resume(struct virtio_device *vdev)
{
	pause_gate_resume(&to_blk(vdev)->gate);
}

int virtio_blk_swap_image(struct virtio_blk *blk, struct blk_image *next)
{
	struct blk_image old = *blk->img;

	if (next->read_only != old.read_only)
		return -EINVAL;
	hold_at_boundary(blk);       /* a hold of its own (pauses nest): the request
				      * in flight is answered from the old image */
	*blk->img = *next;
	*next = old;
	pause_gate_resume(&blk->gate);
	if (blk->vdev.active)
		virtio_device_config_changed(&blk->vdev);
	return 0;
}

void virtio_blk_get_counters(const struct virtio_blk *blk, struct virtio_blk_counters *out)
{
#define X(name, doc) out->name = load_relaxed(&blk->counters.name);
	VIRTIO_BLK_COUNTERS(X)
#undef X
}

#define X(name, doc) COUNTER_DESC(struct virtio_blk_counters, name, doc)
const struct counter_set virtio_blk_counter_set = COUNTER_SET("virtio_blk", VIRTIO_BLK_COUNTERS(X));
#undef X

static void blk_visit_counters(struct virtio_device *vdev, const struct counter_sink *sink)
{
	struct virtio_blk_counters c;

	virtio_blk_get_counters(to_blk(vdev), &c);
	counters_visit(&virtio_blk_counter_set, &c, "", sink);
}

static const struct virtio_device_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.config_size = sizeof(struct virtio_blk_config),
	.features = blk_features,
	.set_features = blk_set_features,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.activate = blk_activate,
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
	.pause = blk_pause,
	.resume = blk_resume,
	.visit_counters = blk_visit_counters,
	.save_state = virtio_blk_save_state,
	.load_state = virtio_blk_load_state,
};

/* --- set-up ------------------------------------------------------------------------ */

int virtio_blk_init(struct virtio_blk *blk, struct blk_image *img, struct event_loop *loop)
{
	memset(blk, 0, sizeof(*blk));
	blk->img = img;
	blk->vdev.ops = &blk_ops;
	blk->vdev.loop = loop;
	blk->vdev.vqs = &blk->vq;
	blk->vdev.num_queues = 1;
	vq_reset(&blk->vq);
	rate_limiter_init(&blk->limiter, NULL, NULL, NULL);   /* none until set */
	int r = pause_gate_init(&blk->gate);       /* closed until activation */
	if (r < 0)
		return r;
	r = event_notifier_init(loop, &blk->posted, on_posted, "virtio-blk interrupts");
	if (r < 0) {
		pause_gate_destroy(&blk->gate);
		return r;
	}
	r = -pthread_create(&blk->worker, NULL, worker_main, blk);
	if (r < 0) {
		event_notifier_destroy(loop, &blk->posted);
		pause_gate_destroy(&blk->gate);
		return r;
	}
	blk->worker_started = true;
	return 0;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk->vdev.ops)
		return;
	if (blk->worker_started) {
		pause_gate_shutdown(&blk->gate);
		pthread_join(blk->worker, NULL);
	}
	event_loop_timer_cancel(blk->vdev.loop, &blk->throttle_timer);
	event_notifier_destroy(blk->vdev.loop, &blk->posted);
	pause_gate_destroy(&blk->gate);
	blk->vdev.ops = NULL;
}
