/*
 * virtio-fs device (virtio 1.x section 5.11, device ID 26): FUSE requests
 * carried on virtqueues and answered by a fuse_server.
 *
 * Queues (spec 5.11.2): 0 is the hiprio queue; when the driver negotiates
 * VIRTIO_FS_F_NOTIFICATION, 1 is the notification queue and 2..N+1 are the
 * request queues, otherwise 1..N are (N from the options, advertised in
 * config space with the tag). The device is created with room for the
 * larger layout when it offers the feature, and set_features settles the
 * count (vdev.num_queues), so a driver without the feature (stock Linux)
 * sees exactly the classic layout.
 *  - hiprio: FORGET and BATCH_FORGET are passed to the server (so the
 *    backend's lookup counts drop) and INTERRUPT is acked; each is completed
 *    with length 0. Anything else there, write-only chains included, is
 *    completed unanswered and counted.
 *  - notification queue (spec 5.11.6.4): the driver's write-only buffers of
 *    at least notify_buf_size bytes (config space). They stay in the avail
 *    ring until a notification is sent: then one is popped, filled with a
 *    fuse_out_header (unique 0, error = the notify code) and the payload,
 *    and completed with that length. Kicks on it need no work. A chain with
 *    a readable part, or too small, is completed with 0 and counted.
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
 * fd). Otherwise, and for NEEDS_RESET, workers flag the queue and signal a
 * notifier on dev->loop, and the loop-thread handler calls the
 * transport (vhost-user's in-band calls use a socket the loop thread owns).
 *
 * Pause gate (pause_gate.h): workers take a request only through the gate,
 * and leave it only once the request is answered (pushed and published).
 * virtio_fs_pause() + virtio_fs_wait_idle() therefore leave no request
 * popped and unanswered: each is either still in its avail ring or done.
 * ops->reset (loop thread: driver reset, vhost-user disconnect, ring disable,
 * memory table change) pauses and waits for idle before the transport stops
 * the queues; activate resumes. Holds nest (pause_gate.h): a VM pause on
 * a reset device leaves it closed until both are undone.
 *
 * Notifications (FUSE_NOTIFY_*, virtio_fs_notify) are sent from any thread
 * but a worker (host_watch's thread in practice). The issue asked for them
 * "through the hiprio buffers", kvmini's first layout; virtio 1.3 puts them
 * on their own queue 1, which is what a conforming driver sets up, so that
 * is the layout here. The feature is offered when opts.offer_notification
 * is set. Without it negotiated nothing is sent (counted). With no buffer
 * in the notification queue, or the device paused, the notification is
 * dropped and counted: invalidations are hints, and the client's cache
 * timeouts still apply.
 */
#ifndef KVMINI_FS_VIRTIO_FS_H
#define KVMINI_FS_VIRTIO_FS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "fuse/fuse_server.h"
#include "core/pause_gate.h"
#include "core/poll_window.h"
#include "virtio/device.h"

#define VIRTIO_FS_HIPRIO_QUEUE 0u
/* With VIRTIO_FS_F_NOTIFICATION negotiated. */
#define VIRTIO_FS_NOTIFY_QUEUE 1u
#define VIRTIO_FS_MAX_REQUEST_QUEUES 16u
#define VIRTIO_FS_MAX_QUEUES (2u + VIRTIO_FS_MAX_REQUEST_QUEUES)
#define VIRTIO_FS_MAX_THREADS 64u
#define VIRTIO_FS_MAX_POLL_US 1000u
#define VIRTIO_FS_TAG_LEN 36u
/* Spec 5.11.3 (not in every uapi header). */
#ifndef VIRTIO_FS_F_NOTIFICATION
#define VIRTIO_FS_F_NOTIFICATION 0
#endif
/* notify_buf_size: the largest notification sent, INVAL_ENTRY with a
 * NAME_MAX name and its NUL (out header 16, argument 16, name 256). */
#define VIRTIO_FS_NOTIFY_BUF_SIZE 288u
/* Config space with notify_buf_size (spec 5.11.4); the uapi struct of older
 * headers stops before it. */
struct virtio_fs_config_notify {
	uint8_t tag[36];
	uint32_t num_request_queues;    /* le32 */
	uint32_t notify_buf_size;       /* le32 */
} __attribute__((packed));

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
	X(hiprio_buffers_refused,        "write-only chains on the hiprio queue, completed unused") \
	X(notify_buffers_invalid,        "notification-queue chains with a readable part or too small, completed with 0") \
	X(tx_notify_sent,                "notifications written into a notification-queue buffer") \
	X(tx_notify_dropped_no_buffer,   "notifications dropped: no buffer available or device paused") \
	X(tx_notify_dropped_not_negotiated, "notifications dropped: the driver did not negotiate them") \
	X(tx_notify_dropped_too_big,     "notifications dropped: larger than notify_buf_size") \
	X(used_add_failed,               "used-ring entries that could not be written") \
	X(avail_index_invalid,           "queues poisoned by a broken avail ring") \
	X(tx_interrupts_requested,       "used-ring updates the driver asked an interrupt for") \
	X(tx_interrupts_sent,            "interrupts sent: by a worker, or by the loop thread (coalesced)") \
	X(pauses,                        "times the workers were stopped at a request boundary") \
	X(rx_requests_polled,            "requests a polling worker found without a kick") \
	X(rx_polls_timed_out,            "polls that ended without a request (the worker then slept)")

struct virtio_fs_counters {
	VIRTIO_FS_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set virtio_fs_counter_set;

struct virtio_fs_opts {
	const char *tag;               /* 1..36 bytes, no NUL inside */
	unsigned request_queues;       /* 1..VIRTIO_FS_MAX_REQUEST_QUEUES; 0: 1 */
	unsigned threads;              /* workers 1..VIRTIO_FS_MAX_THREADS; 0: one per request queue */
	bool offer_notification;       /* offer VIRTIO_FS_F_NOTIFICATION (queue 1) */
	/* Longest a worker keeps polling a request queue for the driver's next
	 * request after answering one, in µs (adaptive below it); 0: never. */
	unsigned poll_us;
	/* Bytes of DAX window the VMM gives the device (virtio_fs_set_dax),
	 * 0: none. Read by the machine builder, not by the device. */
	uint64_t dax_bytes;
};

struct virtio_fs_queue {
	pthread_mutex_t lock;          /* guards the virtqueue: pop, push, publish, notify */
	/* Protected by the gate's lock. */
	bool has_work;                 /* kicked: chains may be waiting */
	uint64_t kick_seq;             /* bumped by every kick, so a stale "empty" never hides one */
	/* Atomic: set by workers, consumed by the loop thread. */
	bool irq_pending;
	bool poisoned_pending;
	/* Requests completed on this queue (atomic). */
	uint64_t requests;
	/* Polling (request queues, under lock): the adaptive window and when
	 * the last request was answered. */
	struct poll_window poll;
	uint64_t answered_ns;
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
	/* Set at set_features (loop thread, device stopped). */
	bool notify_negotiated;
	unsigned req_base;             /* first request queue: 1, or 2 with notifications */

	struct pause_gate gate;
	unsigned rr_next;              /* gate lock: next request queue to look at */
	struct virtio_fs_worker *workers;
	unsigned nworkers;
	uint64_t poll_max_ns;          /* opts.poll_us; 0: no polling */
	bool polling;                  /* atomic: a worker polls (one at a time) */

	/* Interrupts and NEEDS_RESET posted to the loop thread. */
	struct event_notifier posted;

	/* Notifications: the chain being filled (protected by the notification
	 * queue's lock) and the server's transport hook. */
	struct vq_chain notify_chain;
	struct fuse_notify_transport notify_tr;

	struct virtio_fs_counters counters;   /* atomic updates */

	/* The DAX window (shared memory region VIRTIO_FS_SHMCAP_ID_CACHE) and
	 * where the guest finds it; none: dax NULL. Set before the transport. */
	struct fuse_dax_window *dax;
	struct virtio_shm_region dax_region;
};

/*
 * Set up the device over @server (not owned) on @loop and start its worker
 * threads (parked until the driver activates the device). Threads inherit
 * the caller's signal mask. Returns 0, -EINVAL for bad options, or -errno.
 */
int virtio_fs_init(struct virtio_fs *fs, const struct virtio_fs_opts *opts,
		   struct fuse_server *server, struct event_loop *loop);
/* Give the device the DAX window @w (not owned), placed at guest-physical
 * @gpa, before its transport is set up: the transport announces it as
 * shared memory region 0, the server maps files into it, a device reset
 * empties it, and a snapshot keeps its mappings (which file range is
 * mapped where, fuse_dax_state.c), mapped again at the restore. */
void virtio_fs_set_dax(struct virtio_fs *fs, struct fuse_dax_window *w, uint64_t gpa);
/* Stop and join the workers, free everything. The transport must have
 * reset the device (or never activated it). */
void virtio_fs_destroy(struct virtio_fs *fs);

/* Pause gate, for the VM's pause, snapshots and tests: stop taking
 * requests / take them again / wait until none is in flight. Pauses nest:
 * one resume for each pause (the device's own hold, from init or a reset
 * until activate, is one of them). Any thread but a worker. */
void virtio_fs_pause(struct virtio_fs *fs);
void virtio_fs_resume(struct virtio_fs *fs);
void virtio_fs_wait_idle(struct virtio_fs *fs);

/*
 * virtio_fs_notify() - send a FUSE notification (FUSE_NOTIFY_INVAL_INODE,
 * _INVAL_ENTRY, ...) in a notification-queue buffer: a fuse_out_header with
 * unique 0 and error @code, then @len bytes of @payload. Any thread but a
 * worker; virtio_fs_init also makes this the server's notification
 * transport. Returns 0, -EOPNOTSUPP when not negotiated, -ENOBUFS when no
 * buffer is available (or the device is paused), -EMSGSIZE when larger
 * than notify_buf_size. Every outcome is counted.
 */
int virtio_fs_notify(struct virtio_fs *fs, int code, const void *payload, size_t len);

/*
 * Snapshots (virtio_fs_state.c). The queues are the virtio core's; the
 * device's own section "VFSD" holds the share's tag and layout (checked
 * against the new device: the same --fs DIR:TAG), whether notifications
 * were negotiated, and the counters; the FUSE server's sections follow
 * (fuse_server_state_save: the session, the backend's nodes and handles,
 * the DAX window's mappings).
 * The device keeps no notification buffer between notifications (each is
 * popped, filled and completed under the queue's lock), so there is none
 * to save: unused buffers stay in the guest's avail ring.
 *
 * virtio_fs_state_save() - loop thread (or the thread that paused the
 * VM), with the device paused at a request boundary (virtio_device_ops
 * .pause, or virtio_fs_pause + virtio_fs_wait_idle): nothing in flight.
 * Returns 0, -EBUSY when not paused or a request is still running,
 * -EOPNOTSUPP when the backend cannot be saved (memfs), with why in @eb.
 * On failure @w may hold part of the device's sections: the caller drops
 * the whole state (a snapshot is all or nothing).
 *
 * virtio_fs_state_load() - into a device, server and backend freshly built
 * from the same options, before the guest runs: the gate held (the device's
 * own hold before activate, or the VM's pause) and no worker inside.
 * Checks everything first: false (why in @r's errbuf) changes nothing. On
 * true the device's negotiated layout (notification queue, first request
 * queue, num_queues) is as fs_set_features would make it for the saved
 * features, and the server answers the guest's old node ids and handles.
 */
int virtio_fs_state_save(struct virtio_fs *fs, struct state_writer *w, struct errbuf *eb);
bool virtio_fs_state_load(struct virtio_fs *fs, struct state_reader *r);

/* Validate a tag: 1..36 bytes. 0 or -EINVAL. */
int virtio_fs_check_tag(const char *tag);

void virtio_fs_get_counters(const struct virtio_fs *fs, struct virtio_fs_counters *c);
/* Hand @sink the device's counters, the per-queue request counts
 * ("queue<N>_requests") and the FUSE server's; any thread. */
void virtio_fs_visit_counters(const struct virtio_fs *fs, const struct counter_sink *sink);
/* The same, one "name value" per line. */
void virtio_fs_dump_counters(const struct virtio_fs *fs, FILE *out);

#endif
