/*
 * virtio-fs device (virtio 1.x section 5.11, device ID 26): FUSE requests
 * carried on virtqueues and answered by a fuse_server.
 *
 * Queues: 0 is the hiprio queue, 1..N are request queues (N from the
 * options, advertised in config space with the tag).
 *  - hiprio: FORGET and BATCH_FORGET are passed to the server (so the
 *    backend's lookup counts drop) and INTERRUPT is acked; each is completed
 *    with length 0. Anything else there is completed unanswered and counted.
 *    Device-writable-only chains are notification buffers: kept when the
 *    driver negotiated notifications, else completed unused and counted.
 *  - request queues: each chain is one request (readable part) and room for
 *    its reply (writable part); the used length is the reply's length, never
 *    more than the writable part (the server guarantees it, the device checks).
 *
 * Threads. Requests are served by a pool of worker threads, never on the
 * event-loop thread that receives the kicks. struct virtqueue is
 * single-threaded, so each queue has a mutex held only around pop, push and
 * publish; the FUSE work runs outside it, so several workers serve one queue
 * at once. A worker sends a used-buffer interrupt itself when the transport
 * can take it from any thread (signal_used_direct: vhost-user with a call
 * fd). Otherwise, and for NEEDS_RESET, workers flag the queue and write an
 * eventfd watched on dev->loop, and the loop-thread handler calls the
 * transport (vhost-user's in-band calls use a socket the loop thread owns).
 *
 * Pause gate (pause_gate.h): workers take a request only through the gate,
 * and leave it only once the request is answered (pushed and published).
 * virtio_fs_pause() + virtio_fs_wait_idle() therefore leave no request
 * popped and unanswered: each is either still in its avail ring or done.
 * ops->reset (loop thread: driver reset, vhost-user disconnect, ring disable,
 * memory table change) pauses and waits for idle before the transport stops
 * the queues; activate resumes.
 *
 * Notifications (FUSE_NOTIFY_*): kvmini's layout keeps them on the hiprio
 * queue, in the driver's write-only buffers, behind feature bit 0. That is
 * not the layout of virtio 1.3's VIRTIO_FS_F_NOTIFICATION (a separate
 * notification queue 1 and notify_buf_size in config), so the bit is offered
 * only when opts.offer_notification is set, which no front door does yet;
 * stock Linux drivers do not negotiate it either way. Without it
 * virtio_fs_notify() drops and counts.
 */
#ifndef KVMINI_FS_VIRTIO_FS_H
#define KVMINI_FS_VIRTIO_FS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "fs/fuse_server.h"
#include "fs/pause_gate.h"
#include "virtio/device.h"

#define VIRTIO_FS_HIPRIO_QUEUE 0u
#define VIRTIO_FS_MAX_REQUEST_QUEUES 16u
#define VIRTIO_FS_MAX_QUEUES (1u + VIRTIO_FS_MAX_REQUEST_QUEUES)
#define VIRTIO_FS_MAX_THREADS 64u
#define VIRTIO_FS_TAG_LEN 36u
/* kvmini's hiprio notification buffers (see above); bit 0 of the device
 * feature space, which the spec gives to VIRTIO_FS_F_NOTIFICATION. */
#define VIRTIO_FS_F_NOTIFICATION 0
/* Pieces a notification buffer may come in (it is kept, so it is small). */
#define VIRTIO_FS_NOTIFY_MAX_IOV 4u

/*
 * Counters, <direction>_<object>_<event> (rx: from the driver, tx: to it).
 * Each moves on exactly one event; they survive reset.
 */
#define VIRTIO_FS_COUNTERS(X) \
	X(rx_requests,                   "request chains answered, all request queues") \
	X(rx_request_bytes,              "bytes in those chains' readable parts") \
	X(tx_reply_bytes,                "reply bytes written into the guest") \
	X(rx_requests_no_reply,          "requests completed with length 0: no reply possible") \
	X(rx_chain_invalid,              "malformed chains completed with length 0 (any queue)") \
	X(rx_requests_no_payload,        "request chains without a readable part, completed with 0") \
	X(tx_reply_oversize,             "replies longer than the writable part: completed with 0") \
	X(hiprio_forgets,                "FORGET requests on the hiprio queue, passed to the server") \
	X(hiprio_batch_forgets,          "BATCH_FORGET requests on the hiprio queue, passed on") \
	X(hiprio_interrupts,             "INTERRUPT requests on the hiprio queue, acked") \
	X(hiprio_requests_refused,       "other requests on the hiprio queue, completed unanswered") \
	X(notify_buffers_kept,           "write-only hiprio chains kept for notifications") \
	X(notify_buffers_refused,        "write-only hiprio chains completed unused (not negotiated, too fragmented)") \
	X(notify_buffers_dropped,        "kept notification buffers forgotten at reset") \
	X(tx_notify_sent,                "notifications written into a kept buffer") \
	X(tx_notify_dropped_no_buffer,   "notifications dropped: no kept buffer or device paused") \
	X(tx_notify_dropped_not_negotiated, "notifications dropped: the driver did not negotiate them") \
	X(tx_notify_dropped_too_big,     "notifications dropped: larger than the buffer") \
	X(used_add_failed,               "used-ring entries that could not be written") \
	X(avail_index_invalid,           "queues poisoned by a broken avail ring") \
	X(tx_interrupts_requested,       "used-ring updates the driver asked an interrupt for") \
	X(tx_interrupts_sent,            "interrupts sent: by a worker, or by the loop thread (coalesced)") \
	X(pauses,                        "times the workers were stopped at a request boundary")

struct virtio_fs_counters {
#define X(name, doc) uint64_t name;
	VIRTIO_FS_COUNTERS(X)
#undef X
};

struct virtio_fs_opts {
	const char *tag;               /* 1..36 bytes, no NUL inside */
	unsigned request_queues;       /* 1..VIRTIO_FS_MAX_REQUEST_QUEUES; 0: 1 */
	unsigned threads;              /* workers 1..VIRTIO_FS_MAX_THREADS; 0: 2 */
	bool offer_notification;       /* offer bit 0 (kvmini's hiprio layout) */
};

struct virtio_fs_queue {
	pthread_mutex_t lock;          /* guards the virtqueue: pop, push, publish, notify */
	/* Protected by the gate's lock. */
	bool has_work;                 /* kicked: chains may be waiting */
	uint64_t kick_seq;             /* bumped by every kick, so a stale "empty" never hides one */
	/* Atomic: set by workers, consumed by the loop thread. */
	bool irq_pending;
	bool poisoned_pending;
	/* Protected by @lock. */
	bool poison_counted;
	/* Requests completed on this queue (atomic). */
	uint64_t requests;
};

/* A kept hiprio buffer. */
struct virtio_fs_notify_buf {
	uint16_t head;
	unsigned niov;
	uint64_t len;
	struct iovec iov[VIRTIO_FS_NOTIFY_MAX_IOV];
};

struct virtio_fs_worker;

struct virtio_fs {
	struct virtio_device vdev;
	struct virtqueue vqs[VIRTIO_FS_MAX_QUEUES];
	struct virtio_fs_queue q[VIRTIO_FS_MAX_QUEUES];
	struct fuse_server *server;    /* not owned */
	char tag[VIRTIO_FS_TAG_LEN];
	unsigned request_queues;
	bool offer_notification;
	bool notify_negotiated;        /* set at set_features (loop thread, stopped) */

	struct pause_gate gate;
	unsigned rr_next;              /* gate lock: next request queue to look at */
	struct virtio_fs_worker *workers;
	unsigned nworkers;

	/* Interrupts and NEEDS_RESET posted to the loop thread. */
	int irq_fd;
	struct event_source irq_event;

	/* Kept notification buffers; protected by q[0].lock. */
	struct virtio_fs_notify_buf *notify_bufs;
	unsigned notify_count;
	unsigned notify_cap;
	bool notify_ready;             /* buffers may be used (between activate and reset) */

	struct virtio_fs_counters counters;   /* atomic updates */
};

/*
 * Set up the device over @server (not owned) on @loop and start its worker
 * threads (parked until the driver activates the device). Threads inherit
 * the caller's signal mask. Returns 0, -EINVAL for bad options, or -errno.
 */
int virtio_fs_init(struct virtio_fs *fs, const struct virtio_fs_opts *opts,
		   struct fuse_server *server, struct event_loop *loop);
/* Stop and join the workers, free everything. The transport must have
 * reset the device (or never activated it). */
void virtio_fs_destroy(struct virtio_fs *fs);

/* Pause gate, for snapshots and tests: stop taking requests / take them
 * again / wait until none is in flight. Any thread but a worker. */
void virtio_fs_pause(struct virtio_fs *fs);
void virtio_fs_resume(struct virtio_fs *fs);
void virtio_fs_wait_idle(struct virtio_fs *fs);

/*
 * virtio_fs_notify() - send a FUSE notification (FUSE_NOTIFY_INVAL_INODE,
 * _INVAL_ENTRY, ...) through a kept hiprio buffer: a fuse_out_header with
 * unique 0 and error @code, then @len bytes of @payload. Any thread.
 * Returns 0, -EOPNOTSUPP when not negotiated, -ENOBUFS when no buffer is
 * kept (or the device is paused), -EMSGSIZE when it does not fit the buffer
 * (kept for a smaller one). Every outcome is counted.
 */
int virtio_fs_notify(struct virtio_fs *fs, int code, const void *payload, size_t len);

/* Validate a tag: 1..36 bytes. 0 or -EINVAL. */
int virtio_fs_check_tag(const char *tag);

void virtio_fs_get_counters(const struct virtio_fs *fs, struct virtio_fs_counters *c);
/* Print counters, one "name value" per line: the device's, the per-queue
 * request counts ("queue<N>_requests") and the FUSE server's. */
void virtio_fs_dump_counters(const struct virtio_fs *fs, FILE *out);

#endif
