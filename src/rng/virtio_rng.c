/* virtio-rng (see virtio_rng.h). Order: filling one request, the drain,
 * the device operations, set-up. */
#include "rng/virtio_rng.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "core/compiler.h"
#include "core/log.h"

#define RNG_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) | \
		      (1ull << VIRTIO_RING_F_INDIRECT_DESC))

/* A wake-up's work before other work gets its turn (Linux vhost's rule). */
static const struct vq_budget rng_budget = { .chains = 64, .bytes = 1u << 20 };

static struct virtio_rng *to_rng(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_rng, vdev);
}

/* --- one request ------------------------------------------------------------- */

/* @want random bytes into the buffers @iov: the bytes written, or -errno
 * (getrandom fails only on a broken host). Blocks only before the host's
 * pool is first seeded, which a running host is past. */
static ssize_t fill_random(const struct iovec *iov, unsigned n, size_t want)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < want; i++) {
		size_t part = MIN(iov[i].iov_len, want - done), off = 0;
		while (off < part) {
			ssize_t r = getrandom((char *)iov[i].iov_base + off, part - off, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return r < 0 ? -errno : -EIO;
			off += (size_t)r;
		}
		done += part;
	}
	return (ssize_t)done;
}

/* The limiter's word on @bytes more; each stop counted once. */
static bool admit(struct virtio_rng *rng, uint64_t bytes)
{
	bool was_blocked = rate_limiter_blocked(&rng->limiter);

	if (rate_limiter_consume(&rng->limiter, bytes))
		return true;
	if (!was_blocked)
		rng->counters.rx_queue_rate_limited++;
	return false;
}

/* Only device-writable buffers make a request: a chain the queue refused,
 * one with a driver-readable part or with no room is answered with 0. */
static bool request_valid(const struct vq_chain *c, enum vq_pop_result r)
{
	return r == VQ_POP_OK && !c->n_out && c->in_len;
}

static enum vq_verdict rng_chain(void *ctx, struct vq_chain *c, enum vq_pop_result r,
				 uint64_t *bytes)
{
	struct virtio_rng *rng = ctx;

	if (!request_valid(c, r)) {
		rng->counters.rx_chains_invalid++;
		vq_push(&rng->vq, c->head, 0);
		return VQ_CONSUMED;
	}
	size_t want = (size_t)MIN(c->in_len, (uint64_t)VIRTIO_RNG_MAX_REQUEST);
	if (!admit(rng, want))
		return VQ_HOLD;
	ssize_t n = fill_random(vq_chain_in(c), c->n_in, want);
	if (n < 0) {
		rate_limiter_refund(&rng->limiter, want);
		rng->counters.tx_getrandom_failed++;
		log_warn("virtio-rng: getrandom: %s; the request gets 0 bytes", strerror((int)-n));
		n = 0;
	} else {
		rng->counters.tx_random_bytes += (uint64_t)n;
		rng->counters.tx_requests_filled++;
	}
	vq_push(&rng->vq, c->head, (uint32_t)n);
	*bytes += (uint64_t)n;
	return VQ_CONSUMED;
}

/* --- the drain --------------------------------------------------------------- */

static void on_more_work(struct event_deferred *d);

/* Answer what the guest queued, up to the budget; one interrupt a drain. A
 * held request (the limiter) waits for the limiter's wake. */
static void rng_drain(struct virtio_rng *rng)
{
	if (!virtio_device_running(&rng->vdev) || rate_limiter_blocked(&rng->limiter))
		return;
	enum vq_drain_result r = vq_drain(&rng->vq, &rng->chain, &rng_budget, rng_chain, rng);
	virtio_device_publish(&rng->vdev, 0);
	if (r == VQ_DRAIN_POISONED) {
		if (vq_poison_is_new(&rng->vq))
			rng->counters.rx_queue_poisoned++;
		virtio_device_mark_broken(&rng->vdev, 0);
	} else if (r == VQ_DRAIN_BUDGET) {
		event_loop_defer(rng->vdev.loop, &rng->more_work, on_more_work);
	}
}

static void on_more_work(struct event_deferred *d)
{
	rng_drain(container_of(d, struct virtio_rng, more_work));
}

static void on_limiter_wake(struct rate_limiter *rl)
{
	rng_drain(container_of(rl, struct virtio_rng, limiter));
}

/* --- device operations ---------------------------------------------------------- */

static uint64_t rng_features(struct virtio_device *vdev)
{
	return RNG_FEATURES;
}

static int rng_set_features(struct virtio_device *vdev, uint64_t features)
{
	return 0;
}

/* No config space (config_size 0): the transport never gets this far. */
static void rng_config_read(struct virtio_device *vdev, void *config)
{
}

static void rng_config_write(struct virtio_device *vdev, uint32_t offset, const void *data,
			     uint32_t len)
{
}

static int rng_activate(struct virtio_device *vdev)
{
	rng_drain(to_rng(vdev));      /* requests queued before DRIVER_OK */
	return 0;
}

static void rng_queue_notify(struct virtio_device *vdev, unsigned q)
{
	rng_drain(to_rng(vdev));
}

static void rng_reset(struct virtio_device *vdev)
{
	struct virtio_rng *rng = to_rng(vdev);

	event_loop_cancel(vdev->loop, &rng->more_work);
}

/* Everything runs on the loop thread, between two requests: nothing to
 * hold. What arrives while paused waits for resume. */
static void rng_resume(struct virtio_device *vdev)
{
	rng_drain(to_rng(vdev));
}

static void rng_visit_counters(struct virtio_device *vdev, const struct counter_sink *sink)
{
	counters_visit(&virtio_rng_counter_set, &to_rng(vdev)->counters, "", sink);
}

#define X(name, doc) COUNTER_DESC(struct virtio_rng_counters, name, doc)
const struct counter_set virtio_rng_counter_set = COUNTER_SET("virtio_rng", VIRTIO_RNG_COUNTERS(X));
#undef X

static const struct virtio_device_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.config_size = 0,
	.features = rng_features,
	.set_features = rng_set_features,
	.config_read = rng_config_read,
	.config_write = rng_config_write,
	.activate = rng_activate,
	.queue_notify = rng_queue_notify,
	.reset = rng_reset,
	.resume = rng_resume,
	.visit_counters = rng_visit_counters,
};

/* --- set-up -------------------------------------------------------------------- */

int virtio_rng_init(struct virtio_rng *rng, struct event_loop *loop,
		    const struct rate_limiter_config *limit)
{
	memset(rng, 0, sizeof(*rng));
	if (limit && !rate_limiter_config_valid(limit))
		return -EINVAL;
	rng->vdev.ops = &rng_ops;
	rng->vdev.loop = loop;
	rng->vdev.vqs = &rng->vq;
	rng->vdev.num_queues = 1;
	vq_reset(&rng->vq);
	rate_limiter_init(&rng->limiter, loop, &rl_monotonic_clock, on_limiter_wake);
	if (limit)
		rate_limiter_configure(&rng->limiter, limit);
	return 0;
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	event_loop_cancel(rng->vdev.loop, &rng->more_work);
	rate_limiter_destroy(&rng->limiter);
}
