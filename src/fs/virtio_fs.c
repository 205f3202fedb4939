/*
 * virtio-fs device (virtio 1.x section 5.11). Order of this file: config and
 * features, counters and interrupt posting, taking chains, the hiprio queue,
 * request queues, notifications, workers, lifecycle ops, init.
 *
 * Locks, outermost first: a queue's lock (struct virtio_fs_queue.lock), then
 * the gate's lock. The loop thread takes only the gate's lock, and a queue's
 * lock only in reset, after the workers are idle.
 */
#include "fs/virtio_fs.h"
#include "core/seccomp_filter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fuse.h>
#include <linux/virtio_config.h>
#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "core/atomics.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"

_Static_assert(sizeof(struct virtio_fs_config) == VIRTIO_FS_TAG_LEN + 4, "virtio-fs config size");

#define FS_RING_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) | \
			  (1ull << VIRTIO_RING_F_INDIRECT_DESC))

/* Polling (poll_next) follows only a request that moved this much data (a
 * READ's reply or a WRITE's payload): a reader's readahead or a writer's
 * calls send the next request as soon as this one is answered, so a poll
 * finds it; between metadata requests the guest works longer, and a worker
 * spinning meanwhile takes the CPU it works on (UML's creates: 0.2 to 0.6x). */
#define POLL_DATA_MIN (32u << 10)

#define CTR_ADD(fs, name, n) \
	fetch_add_relaxed(&(fs)->counters.name, (uint64_t)(n))
#define CTR_INC(fs, name) CTR_ADD(fs, name, 1)

struct virtio_fs_worker {
	struct virtio_fs *fs;
	pthread_t thread;
	bool started;
	unsigned index;
	/* Chosen by worker_ready under the gate's lock. */
	unsigned queue;
	uint64_t seq;
	/* Polling (poll_next): this pass's window, the queue's when it began. */
	uint64_t poll_ns;
	struct vq_chain chain;        /* the chain being served (too big for the stack) */
};

static struct virtio_fs *to_fs(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_fs, vdev);
}

static uint64_t fs_features(struct virtio_device *vdev)
{
	struct virtio_fs *fs = to_fs(vdev);

	return FS_RING_FEATURES | (fs->offer_notification ? 1ull << VIRTIO_FS_F_NOTIFICATION : 0);
}

/* Spec 5.11.2: the notification queue, when negotiated, is queue 1 and
 * moves the request queues up by one. The transports only call this with
 * the device stopped. */
static int fs_set_features(struct virtio_device *vdev, uint64_t features)
{
	struct virtio_fs *fs = to_fs(vdev);
	bool notify = features & (1ull << VIRTIO_FS_F_NOTIFICATION);

	if (vdev->active)
		return -EBUSY;
	/* Read by notifying threads without the loop's locks. */
	store_relaxed(&fs->notify_negotiated, notify);
	fs->req_base = notify ? 2 : 1;
	vdev->num_queues = fs->req_base + fs->request_queues;
	return 0;
}

static void fs_config_read(struct virtio_device *vdev, void *buf)
{
	struct virtio_fs *fs = to_fs(vdev);
	struct virtio_fs_config_notify cfg;

	/* Spec 5.11.4: the tag is padded with NULs, not NUL-terminated when full.
	 * notify_buf_size exists (config_size covers it) only when offered. */
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tag, fs->tag, sizeof(cfg.tag));
	cfg.num_request_queues = fs->request_queues;
	cfg.notify_buf_size = VIRTIO_FS_NOTIFY_BUF_SIZE;
	memcpy(buf, &cfg, vdev->ops->config_size);
}

/* --- counters and interrupt posting ------------------------------------- */

static void post_to_loop(struct virtio_fs *fs)
{
	int r = event_notifier_signal(&fs->posted);

	if (r < 0)
		log_warn("virtio-fs: interrupt notifier: %s", strerror(-r));
}

/* The driver asked for an interrupt on queue @q: send it from this thread
 * when the transport can (vhost-user with a call fd: one write, no wake-up
 * of the loop thread on the way), else have the loop thread send it;
 * several requests before the loop runs then make one interrupt. */
static void post_interrupt(struct virtio_fs *fs, unsigned q)
{
	struct virtio_transport *t = fs->vdev.transport;

	CTR_INC(fs, tx_interrupts_requested);
	if (t && t->ops->signal_used_direct && t->ops->signal_used_direct(t, q)) {
		CTR_INC(fs, tx_interrupts_sent);
		return;
	}
	if (!exchange_seq_cst(&fs->q[q].irq_pending, true))
		post_to_loop(fs);
}

/* Queue @q's avail ring is broken: count it once, and have the loop thread
 * raise NEEDS_RESET (a config interrupt, also a transport call). Called with
 * the queue's lock held. */
static void post_poisoned(struct virtio_fs *fs, unsigned q)
{
	struct virtio_fs_queue *fq = &fs->q[q];

	if (!vq_poison_is_new(&fs->vqs[q]))
		return;
	CTR_INC(fs, avail_index_invalid);
	store_seq_cst(&fq->poisoned_pending, true);
	post_to_loop(fs);
}

/* Loop thread: send what the workers posted. */
static void deliver_posted(struct virtio_fs *fs)
{
	struct virtio_device *dev = &fs->vdev;

	for (unsigned q = 0; q < dev->num_queues; q++) {
		if (exchange_seq_cst(&fs->q[q].poisoned_pending, false))
			virtio_device_mark_broken(dev, q);
		if (!exchange_seq_cst(&fs->q[q].irq_pending, false))
			continue;
		if (dev->transport) {
			dev->transport->ops->signal_used(dev->transport, q);
			CTR_INC(fs, tx_interrupts_sent);
		}
	}
}

/* The notifier was read first: a flag set after that comes with a new signal. */
static void on_posted(struct event_notifier *n)
{
	deliver_posted(container_of(n, struct virtio_fs, posted));
}

/* Give chain @head of queue @q back with @len bytes written. */
static void complete(struct virtio_fs *fs, unsigned q, uint16_t head, uint32_t len)
{
	struct virtio_fs_queue *fq = &fs->q[q];
	bool irq;

	pthread_mutex_lock(&fq->lock);
	if (vq_push(&fs->vqs[q], head, len) < 0)
		CTR_INC(fs, used_add_failed);
	irq = vq_publish(&fs->vqs[q]);
	pthread_mutex_unlock(&fq->lock);
	if (irq)
		post_interrupt(fs, q);
}

/* --- taking chains ------------------------------------------------------- */

/*
 * take() - pop the next chain of the worker's queue into w->chain.
 *
 * Kicks are off while chains are known to wait and on otherwise (disable,
 * pop, and when the ring looks empty enable and look again). The gate's
 * has_work flag follows under both locks: set (and another worker woken)
 * when more chains wait, cleared when the ring was seen empty with kicks on
 * and no kick came since this worker picked the queue, so a kick handled
 * meanwhile is never lost.
 */
static enum vq_pop_result take(struct virtio_fs_worker *w)
{
	struct virtio_fs *fs = w->fs;
	struct virtio_fs_queue *fq = &fs->q[w->queue];
	struct virtqueue *vq = &fs->vqs[w->queue];
	enum vq_pop_result r;
	bool more = false;

	pthread_mutex_lock(&fq->lock);
	r = vq_next(vq, &w->chain);
	if (r == VQ_POP_OK || r == VQ_POP_BAD_CHAIN)
		more = vq_has_avail(vq) || vq_enable_notify(vq);
	else if (r == VQ_POP_POISONED)
		post_poisoned(fs, w->queue);

	pause_gate_lock(&fs->gate);
	if (more) {
		fq->has_work = true;
		pause_gate_wake(&fs->gate);
	} else if (r == VQ_POP_POISONED || fq->kick_seq == w->seq) {
		fq->has_work = false;
	}
	pause_gate_unlock(&fs->gate);
	pthread_mutex_unlock(&fq->lock);
	return r;
}

/* --- hiprio queue -------------------------------------------------------- */

/* FORGET, BATCH_FORGET and INTERRUPT have no reply: the server acts on
 * them with no writable buffers, and the chain is completed with 0. */
static void hiprio_chain(struct virtio_fs *fs, struct vq_chain *c)
{
	struct fuse_in_header h;

	if (!c->n_out) {
		/* Notification buffers belong on queue 1 (spec 5.11.6.4). */
		CTR_INC(fs, hiprio_buffers_refused);
		complete(fs, VIRTIO_FS_HIPRIO_QUEUE, c->head, 0);
		return;
	}
	fetch_add_relaxed(&fs->q[VIRTIO_FS_HIPRIO_QUEUE].requests, 1);
	/* The opcode is read from a copy; the server reads its own copy, and
	 * with no writable buffer it runs only requests that have no reply. */
	if (iov_to_buf(c->iov, c->n_out, 0, &h, sizeof(h)) != sizeof(h))
		h.opcode = 0;
	switch (h.opcode) {
	case FUSE_FORGET:
		CTR_INC(fs, hiprio_forgets);
		break;
	case FUSE_BATCH_FORGET:
		CTR_INC(fs, hiprio_batch_forgets);
		break;
	case FUSE_INTERRUPT:
		CTR_INC(fs, hiprio_interrupts);
		break;
	default:
		CTR_INC(fs, hiprio_requests_refused);
		complete(fs, VIRTIO_FS_HIPRIO_QUEUE, c->head, 0);
		return;
	}
	fuse_server_handle(fs->server, c->iov, c->n_out, NULL, 0);
	complete(fs, VIRTIO_FS_HIPRIO_QUEUE, c->head, 0);
}

/* --- request queues ------------------------------------------------------ */

/* Answer one request; returns the bytes it moved, both ways. */
static size_t request_chain(struct virtio_fs *fs, unsigned q, struct vq_chain *c)
{
	size_t len = 0;

	if (!c->n_out) {
		CTR_INC(fs, rx_requests_no_payload);
		complete(fs, q, c->head, 0);
		return 0;
	}
	len = fuse_server_handle(fs->server, c->iov, c->n_out, vq_chain_in(c), c->n_in);
	CTR_INC(fs, rx_requests);
	CTR_ADD(fs, rx_request_bytes, c->out_len);
	fetch_add_relaxed(&fs->q[q].requests, 1);
	if (len > c->in_len) {
		/* The server promises otherwise; the used length must not lie. */
		CTR_INC(fs, tx_reply_oversize);
		len = 0;
	} else if (!len) {
		CTR_INC(fs, rx_requests_no_reply);
	} else {
		CTR_ADD(fs, tx_reply_bytes, len);
	}
	complete(fs, q, c->head, (uint32_t)len);
	return c->out_len + len;
}

/* --- notifications ------------------------------------------------------- */

/*
 * notify_pop() - take a usable notification buffer of at least @len bytes.
 * Chains that cannot be used (malformed, with readable parts, smaller than
 * the message) are completed with 0 and counted, and the next one is
 * tried, at most a ring's worth. Called with the notification queue's lock.
 * Returns true with fs->notify_chain set, false when none is available.
 */
static bool notify_pop(struct virtio_fs *fs, size_t len, bool *irq)
{
	struct virtqueue *vq = &fs->vqs[VIRTIO_FS_NOTIFY_QUEUE];
	struct vq_chain *c = &fs->notify_chain;

	for (unsigned tries = 0; tries <= vq->size; tries++) {
		enum vq_pop_result r = vq_pop(vq, c);

		if (r == VQ_POP_OK && !c->n_out && c->in_len >= len)
			return true;
		if (r == VQ_POP_EMPTY)
			return false;
		if (r == VQ_POP_POISONED) {
			post_poisoned(fs, VIRTIO_FS_NOTIFY_QUEUE);
			return false;
		}
		CTR_INC(fs, notify_buffers_invalid);
		if (vq_push(vq, c->head, 0) < 0)
			CTR_INC(fs, used_add_failed);
		*irq |= vq_publish(vq);
	}
	return false;
}

/* Write @hdr and @len bytes of @payload into a buffer and complete it.
 * Returns 0 or -ENOBUFS. */
static int notify_put(struct virtio_fs *fs, const struct fuse_out_header *hdr,
		      const void *payload, size_t len)
{
	struct virtio_fs_queue *fq = &fs->q[VIRTIO_FS_NOTIFY_QUEUE];
	struct virtqueue *vq = &fs->vqs[VIRTIO_FS_NOTIFY_QUEUE];
	struct vq_chain *c = &fs->notify_chain;
	bool irq = false;
	int rc = -ENOBUFS;

	pthread_mutex_lock(&fq->lock);
	if (notify_pop(fs, hdr->len, &irq)) {
		/* A snapshot of the guest's buffer: only the device writes it. */
		iov_from_buf(vq_chain_in(c), c->n_in, 0, hdr, sizeof(*hdr));
		iov_from_buf(vq_chain_in(c), c->n_in, sizeof(*hdr), payload, len);
		if (vq_push(vq, c->head, hdr->len) < 0)
			CTR_INC(fs, used_add_failed);
		irq |= vq_publish(vq);
		rc = 0;
	}
	pthread_mutex_unlock(&fq->lock);
	if (irq)
		post_interrupt(fs, VIRTIO_FS_NOTIFY_QUEUE);
	return rc;
}

int virtio_fs_notify(struct virtio_fs *fs, int code, const void *payload, size_t len)
{
	struct fuse_out_header oh = { .error = code, .unique = 0 };

	if (!load_relaxed(&fs->notify_negotiated)) {
		CTR_INC(fs, tx_notify_dropped_not_negotiated);
		return -EOPNOTSUPP;
	}
	if (len > VIRTIO_FS_NOTIFY_BUF_SIZE - sizeof(oh)) {
		CTR_INC(fs, tx_notify_dropped_too_big);
		return -EMSGSIZE;
	}
	oh.len = (uint32_t)(sizeof(oh) + len);
	/* Through the gate: a paused or reset device writes nothing into the
	 * guest, and its queues stay still for a snapshot. */
	int rc = -ENOBUFS;
	if (pause_gate_try_enter(&fs->gate)) {
		rc = notify_put(fs, &oh, payload, len);
		pause_gate_leave(&fs->gate);
	}
	if (rc)
		CTR_INC(fs, tx_notify_dropped_no_buffer);
	else
		CTR_INC(fs, tx_notify_sent);
	return rc;
}

/* Only a driver that negotiated the notification queue can get any. */
static bool notify_tr_can_send(struct fuse_notify_transport *t)
{
	struct virtio_fs *fs = container_of(t, struct virtio_fs, notify_tr);

	return load_relaxed(&fs->notify_negotiated);
}

/* The server's notification transport: its message carries the header. */
static int notify_tr_send(struct fuse_notify_transport *t, const void *msg, size_t len)
{
	struct virtio_fs *fs = container_of(t, struct virtio_fs, notify_tr);
	struct fuse_out_header oh;

	if (len < sizeof(oh))
		return -EINVAL;
	memcpy(&oh, msg, sizeof(oh));
	return virtio_fs_notify(fs, oh.error, (const uint8_t *)msg + sizeof(oh), len - sizeof(oh));
}

/* --- workers ------------------------------------------------------------- */

/* Gate lock held: pick a queue with work, hiprio first, then the request
 * queues round-robin so one busy queue does not starve the others. */
static bool worker_ready(void *arg)
{
	struct virtio_fs_worker *w = arg;
	struct virtio_fs *fs = w->fs;
	unsigned n = fs->request_queues;

	if (fs->q[VIRTIO_FS_HIPRIO_QUEUE].has_work) {
		w->queue = VIRTIO_FS_HIPRIO_QUEUE;
		w->seq = fs->q[VIRTIO_FS_HIPRIO_QUEUE].kick_seq;
		return true;
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned q = fs->req_base + (fs->rr_next + i) % n;

		if (fs->q[q].has_work) {
			fs->rr_next = (q - fs->req_base + 1) % n;
			w->queue = q;
			w->seq = fs->q[q].kick_seq;
			return true;
		}
	}
	return false;
}

/* Serve the next chain of the worker's queue, if any; returns the bytes a
 * request moved (0 for the rest). */
static size_t serve_one(struct virtio_fs_worker *w)
{
	struct virtio_fs *fs = w->fs;

	switch (take(w)) {
	case VQ_POP_EMPTY:
	case VQ_POP_POISONED:
		return 0;
	case VQ_POP_BAD_CHAIN:
		CTR_INC(fs, rx_chain_invalid);
		complete(fs, w->queue, w->chain.head, 0);
		return 0;
	case VQ_POP_OK:
		if (w->queue != VIRTIO_FS_HIPRIO_QUEUE)
			return request_chain(fs, w->queue, &w->chain);
		hiprio_chain(fs, &w->chain);
		return 0;
	}
	return 0;
}

/* Queue @q may hold chains: what a kick says. A worker picks it up when
 * the gate is open. */
static void mark_work(struct virtio_fs *fs, unsigned q)
{
	pause_gate_lock(&fs->gate);
	fs->q[q].has_work = true;
	fs->q[q].kick_seq++;
	pause_gate_wake(&fs->gate);
	pause_gate_unlock(&fs->gate);
}

/* --- polling ------------------------------------------------------------ */

/* A request waits but this worker will not serve it (a pause came): kicks
 * back on, and the work marked for whoever enters after the resume. */
static void hand_back(struct virtio_fs *fs, unsigned q)
{
	pthread_mutex_lock(&fs->q[q].lock);
	vq_enable_notify(&fs->vqs[q]);
	pthread_mutex_unlock(&fs->q[q].lock);
	mark_work(fs, q);
}

/* Spin until the driver's avail index moves from @seen, the deadline
 * passes or a pause wants the workers out. */
static bool spin_for_chain(struct virtio_fs *fs, struct virtqueue *vq, uint16_t seen,
			   uint64_t deadline)
{
	do {
		if (vq_avail_idx(vq) != seen)
			return true;
		cpu_relax();
	} while (!pause_gate_closing(&fs->gate) && clock_now_ns() < deadline);
	return false;
}

/*
 * poll_next() - after answering a request, watch the worker's request queue
 * for the driver's next one for up to the pass's window (the queue's, from
 * adapt_poll_window) instead of sleeping. A sleeping worker costs each
 * request the driver's kick, the loop thread's wake-up and then this one's: on a virtualized host most
 * of a small request's round trip (UML's 128 KiB reads: 1.2 to 2x).
 * Kicks stay off meanwhile; one worker polls at a time. Returns true when
 * a request waits, to be served in the same pass through the gate.
 */
static bool poll_next(struct virtio_fs_worker *w)
{
	struct virtio_fs *fs = w->fs;
	struct virtio_fs_queue *fq = &fs->q[w->queue];
	struct virtqueue *vq = &fs->vqs[w->queue];
	bool found, live;
	uint16_t seen = 0;

	if (!w->poll_ns || w->queue == VIRTIO_FS_HIPRIO_QUEUE ||
	    pause_gate_closing(&fs->gate) || exchange_seq_cst(&fs->polling, true))
		return false;
	pthread_mutex_lock(&fq->lock);
	found = vq_has_avail(vq);
	live = !found && vq_started(vq);
	if (live) {
		vq_suppress_notify(vq);
		seen = vq_avail_idx(vq);
	}
	pthread_mutex_unlock(&fq->lock);
	if (live) {
		found = spin_for_chain(fs, vq, seen, clock_now_ns() + w->poll_ns);
		if (!found) {
			pthread_mutex_lock(&fq->lock);
			found = vq_enable_notify(vq);
			pthread_mutex_unlock(&fq->lock);
		}
	}
	store_seq_cst(&fs->polling, false);
	if (!found) {
		CTR_INC(fs, rx_polls_timed_out);
		return false;
	}
	if (pause_gate_closing(&fs->gate)) {
		hand_back(fs, w->queue);
		return false;
	}
	CTR_INC(fs, rx_requests_polled);
	return true;
}

/* Polling is on and the worker's queue is a request queue: its window and
 * last answer are kept. */
static bool queue_polls(const struct virtio_fs_worker *w)
{
	return w->fs->poll_max_ns && w->queue != VIRTIO_FS_HIPRIO_QUEUE;
}

/* At a pass's start on a request queue: grow the queue's window when the
 * request came within the longest poll of the queue's last answer (a poll
 * would have caught it), shrink it when not, so a quiet driver costs
 * nothing. The window is the queue's, not the worker's: the driver's
 * stream is per queue, and the next request often goes to another worker. */
static void adapt_poll_window(struct virtio_fs_worker *w)
{
	struct virtio_fs_queue *fq = &w->fs->q[w->queue];

	w->poll_ns = 0;
	if (!queue_polls(w))
		return;
	pthread_mutex_lock(&fq->lock);
	if (fq->answered_ns)
		poll_window_woken(&fq->poll, clock_now_ns() - fq->answered_ns);
	w->poll_ns = fq->poll.ns;
	pthread_mutex_unlock(&fq->lock);
}

/* At a pass's end: when the queue's last answer went out. */
static void note_answered(struct virtio_fs_worker *w)
{
	struct virtio_fs_queue *fq = &w->fs->q[w->queue];

	if (!queue_polls(w))
		return;
	pthread_mutex_lock(&fq->lock);
	fq->answered_ns = clock_now_ns();
	pthread_mutex_unlock(&fq->lock);
}

/* One pass through the gate per request, plus those a poll finds before a
 * pause comes, so a pause waits for at most one request per worker. A pass
 * polls only when its first request moved data; once it does, it follows
 * the stream through whatever comes (a writer's GETXATTR between WRITEs). */
static void *worker_main(void *arg)
{
	struct virtio_fs_worker *w = arg;

	seccomp_filter_enter(SECCOMP_FS_WORKER);
	while (pause_gate_enter(&w->fs->gate, worker_ready, w)) {
		adapt_poll_window(w);
		if (serve_one(w) >= POLL_DATA_MIN) {
			while (poll_next(w))
				serve_one(w);
		}
		note_answered(w);
		pause_gate_leave(&w->fs->gate);
	}
	return NULL;
}

/* --- device ops ------------------------------------------------------------ */

static void mark_all_work(struct virtio_fs *fs, bool on)
{
	pause_gate_lock(&fs->gate);
	for (unsigned q = 0; q < fs->vdev.num_queues; q++) {
		fs->q[q].has_work = on;
		fs->q[q].kick_seq++;
	}
	pause_gate_unlock(&fs->gate);
}

/* Loop thread, queues started, workers parked. */
static int fs_activate(struct virtio_device *vdev)
{
	struct virtio_fs *fs = to_fs(vdev);

	/* Chains may be waiting already (vhost-user reconnect, early kicks). */
	mark_all_work(fs, true);
	pause_gate_resume(&fs->gate);
	return 0;
}

static void fs_queue_notify(struct virtio_device *vdev, unsigned q)
{
	struct virtio_fs *fs = to_fs(vdev);

	/* Notification buffers wait in their ring until a notification. */
	if (q >= vdev->num_queues || (fs->notify_negotiated && q == VIRTIO_FS_NOTIFY_QUEUE))
		return;
	mark_work(fs, q);
}

/* Take a hold on the gate and wait until no request is between taken
 * and answered; the completions published meanwhile still owe their
 * interrupt, raised now (for a paused VM the irqchip keeps it). */
static void hold_at_boundary(struct virtio_fs *fs)
{
	virtio_fs_pause(fs);
	virtio_fs_wait_idle(fs);
	deliver_posted(fs);
}

/* Loop thread: stop at a request boundary before the transport stops the
 * queues (or unmaps guest memory). A notification being written holds the
 * gate too, so it is finished (or not started) when this returns. */
static void fs_reset(struct virtio_device *vdev)
{
	struct virtio_fs *fs = to_fs(vdev);

	hold_at_boundary(fs);
	mark_all_work(fs, false);
	/* The driver's mappings go with it: a new one starts from an empty
	 * window, and no file stays reachable from the guest. */
	fuse_server_dax_clear(fs->server);
}

/* The VM pauses: no worker takes another request; kicks mark work that
 * waits for the resume. */
static void fs_pause(struct virtio_device *vdev)
{
	hold_at_boundary(to_fs(vdev));
}

static void fs_resume(struct virtio_device *vdev)
{
	virtio_fs_resume(to_fs(vdev));
}

static void fs_visit_counters(struct virtio_device *vdev, const struct counter_sink *sink)
{
	virtio_fs_visit_counters(to_fs(vdev), sink);
}

static int fs_save_state(struct virtio_device *vdev, struct state_writer *w, struct errbuf *eb)
{
	return virtio_fs_state_save(to_fs(vdev), w, eb);
}

static bool fs_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
			  struct state_reader *r)
{
	return virtio_fs_state_load(to_fs(vdev), r);
}

/* The two tables differ only in the config space they expose. */
#define FS_OPS(config_type) {                      \
	.name = "virtio-fs",                       \
	.device_id = VIRTIO_ID_FS,                 \
	.config_size = sizeof(config_type),        \
	.features = fs_features,                   \
	.set_features = fs_set_features,           \
	.config_read = fs_config_read,             \
	.activate = fs_activate,                   \
	.queue_notify = fs_queue_notify,           \
	.reset = fs_reset,                         \
	.pause = fs_pause,                         \
	.resume = fs_resume,                       \
	.save_state = fs_save_state,               \
	.load_state = fs_load_state,               \
	.visit_counters = fs_visit_counters,       \
}

static const struct virtio_device_ops fs_ops = FS_OPS(struct virtio_fs_config);

/* Offering VIRTIO_FS_F_NOTIFICATION: the config space has notify_buf_size. */
static const struct virtio_device_ops fs_ops_notify = FS_OPS(struct virtio_fs_config_notify);

/* --- setup ------------------------------------------------------------------ */

void virtio_fs_set_dax(struct virtio_fs *fs, struct fuse_dax_window *w, uint64_t gpa)
{
	fs->dax = w;
	fs->dax_region = (struct virtio_shm_region){ .id = VIRTIO_FS_SHMCAP_ID_CACHE,
						     .base = gpa, .len = w->size };
	fs->vdev.shm = &fs->dax_region;
	fs->vdev.num_shm = 1;
	fuse_server_set_dax(fs->server, w);
}

void virtio_fs_pause(struct virtio_fs *fs)
{
	pause_gate_pause(&fs->gate);
}

void virtio_fs_resume(struct virtio_fs *fs)
{
	/* An inactive device keeps its own hold (taken at init and by each
	 * reset, dropped by activate): it stays closed. */
	pause_gate_resume(&fs->gate);
}

void virtio_fs_wait_idle(struct virtio_fs *fs)
{
	pause_gate_wait_idle(&fs->gate);
}

int virtio_fs_check_tag(const char *tag)
{
	size_t n = tag ? strlen(tag) : 0;

	return n >= 1 && n <= VIRTIO_FS_TAG_LEN ? 0 : -EINVAL;
}

void virtio_fs_get_counters(const struct virtio_fs *fs, struct virtio_fs_counters *c)
{
#define X(name, doc) c->name = load_relaxed(&fs->counters.name);
	VIRTIO_FS_COUNTERS(X)
#undef X
	pause_gate_lock((struct pause_gate *)&fs->gate);
	c->pauses = fs->gate.pauses;
	pause_gate_unlock((struct pause_gate *)&fs->gate);
}

#define X(name, doc) COUNTER_DESC(struct virtio_fs_counters, name, doc)
const struct counter_set virtio_fs_counter_set = COUNTER_SET("virtio_fs", VIRTIO_FS_COUNTERS(X));
#undef X

void virtio_fs_visit_counters(const struct virtio_fs *fs, const struct counter_sink *sink)
{
	struct virtio_fs_counters c;
	char name[32];

	/* A copy: pauses is the gate's, read under its lock. */
	virtio_fs_get_counters(fs, &c);
	counters_visit(&virtio_fs_counter_set, &c, "", sink);
	for (unsigned q = 0; q < fs->vdev.num_queues; q++) {
		snprintf(name, sizeof(name), "queue%u_requests", q);
		counter_emit(sink, "", name, load_relaxed(&fs->q[q].requests));
	}
	fuse_server_visit_counters(fs->server, sink);
}

void virtio_fs_dump_counters(const struct virtio_fs *fs, FILE *out)
{
	virtio_fs_visit_counters(fs, COUNTER_SINK_FILE(out));
}

static int check_opts(const struct virtio_fs_opts *o, unsigned *queues, unsigned *threads)
{
	if (virtio_fs_check_tag(o->tag) < 0)
		return -EINVAL;
	*queues = o->request_queues ? o->request_queues : 1;
	/* One worker per request queue unless told: in UML (bench/uml_fs.sh,
	 * two kvmini in one boot, interleaved, three runs) one worker read
	 * 1.25 to 1.8x what two did, wrote 0.79 to 1.09x, and created files
	 * as fast or faster: a second worker costs a request a wake-up of
	 * another thread, for work the driver's one queue mostly sends one at
	 * a time. virtiofsd serves each queue on its own thread by default too
	 * (no thread pool). */
	*threads = o->threads ? o->threads : *queues;
	if (*queues > VIRTIO_FS_MAX_REQUEST_QUEUES || *threads > VIRTIO_FS_MAX_THREADS ||
	    o->poll_us > VIRTIO_FS_MAX_POLL_US)
		return -EINVAL;
	return 0;
}

static int start_workers(struct virtio_fs *fs, unsigned n)
{
	fs->workers = calloc(n, sizeof(*fs->workers));
	if (!fs->workers)
		return -ENOMEM;
	fs->nworkers = n;
	for (unsigned i = 0; i < n; i++) {
		struct virtio_fs_worker *w = &fs->workers[i];
		char name[16];

		w->fs = fs;
		w->index = i;
		int r = pthread_create(&w->thread, NULL, worker_main, w);
		if (r)
			return -r;
		w->started = true;
		snprintf(name, sizeof(name), "kvmini-fs%u", i % 100);
		pthread_setname_np(w->thread, name);
	}
	return 0;
}

int virtio_fs_init(struct virtio_fs *fs, const struct virtio_fs_opts *opts,
		   struct fuse_server *server, struct event_loop *loop)
{
	unsigned queues, threads;
	int r = check_opts(opts, &queues, &threads);

	memset(fs, 0, sizeof(*fs));
	if (r < 0)
		return r;
	/* NUL padded, not terminated when 36 bytes long (checked above). */
	memcpy(fs->tag, opts->tag, strlen(opts->tag));
	fs->request_queues = queues;
	fs->offer_notification = opts->offer_notification;
	fs->poll_max_ns = (uint64_t)opts->poll_us * 1000;
	fs->server = server;
	fs->vdev.ops = fs->offer_notification ? &fs_ops_notify : &fs_ops;
	fs->vdev.loop = loop;
	fs->vdev.vqs = fs->vqs;
	fs->req_base = 1;
	/* Room for the notification queue until the driver says otherwise. */
	fs->vdev.num_queues = (fs->offer_notification ? 2 : 1) + queues;
	fs->vdev.max_queues = fs->offer_notification ? fs->vdev.num_queues : 0;
	for (unsigned q = 0; q < VIRTIO_FS_MAX_QUEUES; q++) {
		vq_reset(&fs->vqs[q]);
		pthread_mutex_init(&fs->q[q].lock, NULL);
		poll_window_init(&fs->q[q].poll, fs->poll_max_ns);
	}
	r = pause_gate_init(&fs->gate);
	if (r < 0) {
		for (unsigned q = 0; q < VIRTIO_FS_MAX_QUEUES; q++)
			pthread_mutex_destroy(&fs->q[q].lock);
		fs->vdev.ops = NULL;
		return r;
	}
	r = event_notifier_init(loop, &fs->posted, on_posted, "virtio-fs interrupts");
	if (r == 0)
		r = start_workers(fs, threads);
	if (r < 0) {
		virtio_fs_destroy(fs);
		return r;
	}
	fs->notify_tr.send = notify_tr_send;
	fs->notify_tr.can_send = notify_tr_can_send;
	if (server)
		fuse_server_set_notify(server, &fs->notify_tr);
	return 0;
}

void virtio_fs_destroy(struct virtio_fs *fs)
{
	if (!fs->vdev.ops)
		return;
	if (fs->server && fs->notify_tr.send)
		fuse_server_set_notify(fs->server, NULL);
	pause_gate_shutdown(&fs->gate);
	for (unsigned i = 0; i < fs->nworkers; i++) {
		if (fs->workers[i].started)
			pthread_join(fs->workers[i].thread, NULL);
	}
	free(fs->workers);
	fs->workers = NULL;
	fs->nworkers = 0;
	event_notifier_destroy(fs->vdev.loop, &fs->posted);
	for (unsigned q = 0; q < VIRTIO_FS_MAX_QUEUES; q++)
		pthread_mutex_destroy(&fs->q[q].lock);
	pause_gate_destroy(&fs->gate);
	fs->vdev.ops = NULL;
}
