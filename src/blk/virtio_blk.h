/*
 * virtio-blk (virtio 1.2, 5.2): one request queue served by a worker
 * thread, so disk I/O never runs on a vCPU or on the event loop.
 *
 * A request is a chain: the 16-byte header (type, sector) readable, then
 * the data (readable for a write, device-writable for a read), then one
 * device-writable status byte. Every request is checked before any I/O:
 * the header whole, the status byte writable and last, the data in the
 * direction its type needs, the length a multiple of 512 bytes, the range
 * inside the image (no overflow); a write, discard or write-zeroes of a
 * read-only drive, an unknown type or a bad range gets an error status
 * (IOERR, UNSUPP) and a counter, never a host access outside guest RAM. A
 * chain too broken to carry a status is completed with 0 bytes.
 *
 * Types: IN, OUT, FLUSH (fdatasync), GET_ID (the drive's serial, 20
 * bytes), DISCARD and WRITE_ZEROES (one segment a request; punched holes
 * or zeroed ranges of the image, zeroes written when the file system
 * cannot). Features: VERSION_1, the ring's, SEG_MAX, BLK_SIZE, FLUSH, RO
 * for a read-only drive, DISCARD and WRITE_ZEROES for a writable one.
 *
 * The image can be swapped on a running device (Firecracker's PATCH
 * /drives/{id}): the worker is held after the request in flight, the new
 * image takes the old one's place, and an active device tells the driver
 * its capacity may have changed (a config change: a new generation and
 * the config interrupt).
 *
 * A drive may have Firecracker's rate limiter (core/rate_limiter.h): each
 * request takes one op and its data bytes. A request the buckets cannot
 * pay for yet is held, popped but not started, and the worker sleeps until
 * a timer on the loop says the tokens are there; the requests behind it
 * wait in the ring. The limiter is the worker's, under the gate's lock
 * (the loop changes it and ends its waits there too).
 *
 * Snapshots (virtio_blk_state.c, section "VBLK"): the drive's serial,
 * read-only setting and capacity, and the limiter's buckets; a pause
 * answers the request in flight first, and one waiting for the limiter is
 * saved as not taken. The image is flushed with the state and reopened by
 * path at restore, where a drive of another size, serial or read-only
 * setting is refused.
 *
 * Threads: the loop thread takes kicks, activation, reset, pause and swaps; the
 * worker pops, does the I/O and completes, through a pause gate
 * (core/pause_gate.h), so a reset or a pause returns with no request
 * between popped and answered. Interrupts go straight from the worker where
 * the transport can (irqfd), else through the loop.
 */
#ifndef KVMINI_BLK_VIRTIO_BLK_H
#define KVMINI_BLK_VIRTIO_BLK_H

#include <pthread.h>
#include <stdbool.h>

#include "blk/blk_image.h"
#include "core/counters.h"
#include "core/event_loop.h"
#include "core/pause_gate.h"
#include "core/rate_limiter.h"
#include "virtio/device.h"
#include "virtio/virtqueue.h"

/* Most bytes of data one request may move (the driver reads size_max and
 * seg_max from config space). */
#define VIRTIO_BLK_SEG_MAX 126u
#define VIRTIO_BLK_SIZE_MAX (1u << 20)
/* Most sectors one discard or write-zeroes segment may cover. */
#define VIRTIO_BLK_MAX_ZERO_SECTORS (1u << 22)

#define VIRTIO_BLK_COUNTERS(X) \
	X(rx_requests_read,        "read requests served") \
	X(rx_requests_write,       "write requests served") \
	X(rx_requests_flush,       "flush requests served") \
	X(rx_requests_get_id,      "GET_ID requests served") \
	X(rx_requests_discard,     "discard requests served") \
	X(rx_requests_write_zeroes, "write-zeroes requests served") \
	X(tx_read_bytes,           "bytes read from the image into the guest") \
	X(rx_write_bytes,          "bytes written from the guest into the image") \
	X(rx_requests_unsupported, "requests of a type the device does not take (UNSUPP)") \
	X(rx_requests_malformed,   "requests with a short header, no status byte or data the wrong way (IOERR or 0 bytes)") \
	X(rx_requests_out_of_range, "requests past the image's end or not whole sectors (IOERR)") \
	X(rx_writes_read_only,     "writes, discards or zeroings of a read-only drive (IOERR)") \
	X(tx_io_errors,            "requests the host's I/O failed (IOERR)") \
	X(rx_discards_ignored,     "discards the image's file system could not do (a hint: OK)") \
	X(rx_queue_poisoned,       "times the queue was found broken (NEEDS_RESET)") \
	X(rx_requests_throttled,   "times a request waited for the drive's rate limiter")

struct virtio_blk_counters {
	VIRTIO_BLK_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set virtio_blk_counter_set;

struct virtio_blk {
	struct virtio_device vdev;
	struct virtqueue vq;
	struct blk_image *img;        /* not owned */
	struct pause_gate gate;
	pthread_t worker;
	bool worker_started;
	/* Under the gate's lock: a kick came (has_work) and its number, so a
	 * worker that saw the ring empty does not miss a kick meanwhile. */
	bool has_work;
	uint64_t kick_seq;
	struct vq_chain chain;        /* the worker's */
	struct event_notifier posted; /* interrupts, poisoning, waits owed by the worker */
	bool irq_pending, poisoned_pending, throttle_pending;
	struct rate_limiter limiter;  /* no loop of its own: under the gate's lock */
	struct event_timer throttle_timer;   /* loop: the limiter's wait */
	bool held;                    /* the worker's chain popped, waiting for tokens */
	struct virtio_blk_counters counters;   /* worker (and tests) write, atomics read */
};

/* Set up @blk on @img, served on @loop, its worker started (parked until
 * the driver activates the device). 0 or -errno. */
int virtio_blk_init(struct virtio_blk *blk, struct blk_image *img, struct event_loop *loop);
/* Put @next (opened with the drive's read-only setting and serial) in
 * place of the drive's image once the request in flight is answered: the
 * two trade places, so @next holds the old image for the caller to close.
 * The driver sees the new capacity in config space, with a config change
 * when the device is active. Loop thread. 0, or -EINVAL (nothing changed)
 * when @next's read-only setting differs from the drive's: the features
 * negotiated (RO, DISCARD, WRITE_ZEROES) would lie. */
int virtio_blk_swap_image(struct virtio_blk *blk, struct blk_image *next);
/* The drive's rate limiter from now on (all zero: none); a request waiting
 * for the old one is tried again. Loop thread. 0 or -EINVAL (out of range:
 * nothing changed). */
int virtio_blk_set_limit(struct virtio_blk *blk, const struct rate_limiter_config *cfg);
void virtio_blk_get_limit(struct virtio_blk *blk, struct rate_limiter_config *cfg);
/* After the transport has let go of the device (it is reset). */
void virtio_blk_destroy(struct virtio_blk *blk);
/* The device's own snapshot state (virtio_device_ops.save_state and
 * .load_state; virtio_blk_state.c). */
int virtio_blk_save_state(struct virtio_device *vdev, struct state_writer *w, struct errbuf *eb);
bool virtio_blk_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
			   struct state_reader *r);
/* A copy of the counters (any thread). */
void virtio_blk_get_counters(const struct virtio_blk *blk, struct virtio_blk_counters *out);

#endif
