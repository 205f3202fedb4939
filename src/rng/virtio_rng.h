/*
 * virtio-rng (virtio 1.2, 5.4; Firecracker's "entropy" device): one queue
 * of device-writable buffers the device fills with random bytes from the
 * host kernel's getrandom(2), behind an optional token-bucket rate limiter
 * (bytes and requests, Firecracker's semantics: core/rate_limiter.h).
 *
 * A request is one chain: every descriptor device-writable (a readable one
 * makes the chain invalid: completed with 0 bytes and counted). The device
 * fills at most VIRTIO_RNG_MAX_REQUEST bytes of it, as Linux's driver asks
 * for no more than a page or so at a time; the used length says how many.
 * While the limiter refuses, requests wait in the ring (the chain is held)
 * and the limiter's timer resumes the queue. No features beyond the ring's,
 * no config space. Everything runs on the device's loop.
 */
#ifndef KVMINI_RNG_VIRTIO_RNG_H
#define KVMINI_RNG_VIRTIO_RNG_H

#include <stdint.h>

#include "core/counters.h"
#include "core/event_loop.h"
#include "core/rate_limiter.h"
#include "virtio/device.h"
#include "virtio/virtqueue.h"

/* Most bytes one request is given (Firecracker caps a request at 64 KiB). */
#define VIRTIO_RNG_MAX_REQUEST 65536u

#define VIRTIO_RNG_COUNTERS(X) \
	X(tx_random_bytes,        "random bytes written into the guest's buffers") \
	X(tx_requests_filled,     "requests answered with random bytes") \
	X(rx_chains_invalid,      "chains refused (malformed, or a driver-readable buffer): 0 bytes") \
	X(tx_getrandom_failed,    "requests answered with 0 bytes: getrandom failed") \
	X(rx_queue_rate_limited,  "times the rate limiter held the queue back") \
	X(rx_queue_poisoned,      "times the queue was found broken (NEEDS_RESET)")

struct virtio_rng_counters {
	VIRTIO_RNG_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set virtio_rng_counter_set;

struct virtio_rng {
	struct virtio_device vdev;
	struct virtqueue vq;
	struct vq_chain chain;
	struct rate_limiter limiter;
	struct event_deferred more_work;     /* a drain stopped by its budget goes on */
	struct virtio_rng_counters counters; /* loop thread only */
};

/* Set up @rng on @loop with @limit (NULL: unlimited). 0 or -EINVAL for a
 * limiter configuration out of range. */
int virtio_rng_init(struct virtio_rng *rng, struct event_loop *loop,
		    const struct rate_limiter_config *limit);
/* After the transport has let go of the device (it is reset). */
void virtio_rng_destroy(struct virtio_rng *rng);

#endif
