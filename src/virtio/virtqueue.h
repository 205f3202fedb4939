/*
 * Split virtqueue (virtio 1.x, section 2.7): chain walking with indirect
 * descriptors, used-ring publishing and notification suppression.
 *
 * Everything read from the rings is guest-controlled and checked here:
 * the avail index may not run more than the queue size ahead, heads and
 * next indices must be below the size, a chain carries a time-to-live so
 * loops end, indirect tables must be a whole number of descriptors and may
 * not nest, and every buffer address goes through the guest memory map.
 *
 * Two classes of failure:
 *  - a malformed chain (bad descriptor): the head is still valid, so vq_pop
 *    returns VQ_POP_BAD_CHAIN and the device completes it with length 0 and
 *    counts it, and the guest does not hang;
 *  - a broken avail ring (index jump, head out of range): nothing can be
 *    completed safely, so the queue is poisoned until reset and the device
 *    reports NEEDS_RESET.
 *
 * Calling context: a queue is driven by one thread at a time (the device's
 * worker); the transport configures it only while the device is stopped.
 */
#ifndef KVMINI_VIRTIO_VIRTQUEUE_H
#define KVMINI_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/virtio_ring.h>

#include "core/guest_mem.h"

#define VQ_MAX_SIZE 32768u
/* Most iovecs one chain may produce (Linux's UIO_MAXIOV). */
#define VQ_CHAIN_MAX_IOV 1024u

/* One descriptor chain, translated: readable (device reads) iovecs first,
 * then writable ones. */
struct vq_chain {
	uint16_t head;
	unsigned n_out;          /* readable iovecs: iov[0 .. n_out) */
	unsigned n_in;           /* writable iovecs: iov[n_out .. n_out + n_in) */
	uint64_t out_len;        /* bytes in the readable part */
	uint64_t in_len;         /* bytes in the writable part */
	struct iovec iov[VQ_CHAIN_MAX_IOV];
};

static inline struct iovec *vq_chain_in(struct vq_chain *c) { return c->iov + c->n_out; }

enum vq_pop_result {
	VQ_POP_EMPTY = 0,     /* nothing available */
	VQ_POP_OK,            /* *chain holds a valid chain */
	VQ_POP_BAD_CHAIN,     /* chain->head is valid, the chain is not: complete it with 0 */
	VQ_POP_POISONED,      /* the avail ring is broken; the queue is dead until reset */
};

/* Why a chain was refused; kept on the queue for the operator's message. */
enum vq_chain_error {
	VQ_CHAIN_ERR_NONE = 0,
	VQ_CHAIN_ERR_NEXT_RANGE,      /* next index >= queue size */
	VQ_CHAIN_ERR_TOO_LONG,        /* more descriptors than the TTL allows (loop) */
	VQ_CHAIN_ERR_ADDR,            /* buffer outside guest memory */
	VQ_CHAIN_ERR_TOO_MANY_IOV,    /* more than VQ_CHAIN_MAX_IOV pieces */
	VQ_CHAIN_ERR_INDIRECT,        /* indirect not negotiated, bad length, or nested */
	VQ_CHAIN_ERR_ORDER,           /* readable descriptor after a writable one */
	VQ_CHAIN_ERR_LEN,             /* total length overflows 32 bits */
};

enum vq_poison_reason {
	VQ_POISON_NONE = 0,
	VQ_POISON_AVAIL_IDX,          /* avail->idx ran more than size ahead */
	VQ_POISON_HEAD_RANGE,         /* a head index >= queue size */
};

struct virtqueue {
	/* Set by the transport while the queue is stopped. */
	uint16_t size;               /* power of two, 1..VQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;              /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;               /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	uint16_t last_avail_idx;     /* next avail entry to take; vhost-user SET_VRING_BASE */

	/* Set by vq_start. */
	bool started;
	const struct guest_mem *mem;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t used_idx;           /* shadow of used->idx, includes unpublished entries */
	uint16_t published_idx;      /* used->idx as last written */
	uint16_t signalled_idx;      /* used index at the last interrupt (EVENT_IDX) */
	bool signalled_valid;
	bool notify_enabled;         /* we want kicks (avail_event kept current) */

	/* Failure state; cleared only by vq_reset. */
	enum vq_poison_reason poisoned;
	enum vq_chain_error last_chain_error;
};

/* Forget everything but the index; the queue must be configured again. */
void vq_reset(struct virtqueue *vq);

/*
 * Check the configuration and map the rings: size a power of two up to
 * VQ_MAX_SIZE, rings aligned as the spec requires (desc 16, avail 2,
 * used 4) and each inside one guest memory region. Returns 0 or -errno.
 * The used index is taken from the ring, so a queue handed over by another
 * backend (vhost-user) continues where it was.
 */
int vq_start(struct virtqueue *vq, const struct guest_mem *mem);

/* Stop using the rings (the device is paused or memory is changing). */
void vq_stop(struct virtqueue *vq);

/* Take the next available chain. See enum vq_pop_result. */
enum vq_pop_result vq_pop(struct virtqueue *vq, struct vq_chain *chain);

/* Give the most recently popped chain back (the device could not use it now). */
void vq_unpop(struct virtqueue *vq);

/* True when the guest has made chains available that vq_pop has not taken. */
bool vq_has_avail(struct virtqueue *vq);

/* Write a used element; it becomes visible to the guest at vq_publish.
 * Returns 0, or -EINVAL for a head that is not a valid index (the caller
 * counts it) or -EIO when the queue is not started. */
int vq_push(struct virtqueue *vq, uint16_t head, uint32_t len);

/* Make all pushed elements visible (one release store of used->idx) and say
 * whether the guest asked to be interrupted for them. */
bool vq_publish(struct virtqueue *vq);

/* Notification suppression for the driver's kicks. vq_enable_notify returns
 * true when chains arrived while notifications were off, so the caller must
 * drain again (the disable / drain / enable / recheck idiom). */
void vq_disable_notify(struct virtqueue *vq);
bool vq_enable_notify(struct virtqueue *vq);

const char *vq_chain_error_str(enum vq_chain_error err);
const char *vq_poison_str(enum vq_poison_reason why);

#endif
