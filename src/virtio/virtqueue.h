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
	VQ_POISON_AVAIL_IDX,          /* avail->idx ran more than size ahead of used */
	VQ_POISON_HEAD_RANGE,         /* a head index >= queue size */
};

/* A queue's ring configuration as a transport learns it: from the
 * virtio-mmio registers or from vhost-user's SET_VRING_NUM / ADDR / BASE. */
struct vq_config {
	uint16_t size;               /* power of two, 1..VQ_MAX_SIZE (checked by vq_start) */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t base;               /* the first avail index to take */
};

/*
 * What went wrong on one queue, kept by the core until vq_reset so that
 * every device and transport reports it the same way. The first invalid
 * chain and every later power-of-two count are logged with the reason,
 * a poisoning once (by virtio_device_mark_broken, which names the device).
 */
struct vq_faults {
	uint64_t chains_invalid;          /* chains vq_pop refused (VQ_POP_BAD_CHAIN) */
	uint64_t used_add_failed;         /* vq_push calls that wrote nothing */
	enum vq_chain_error last_chain_error;
	enum vq_poison_reason poisoned;   /* set once; the queue is dead until reset */
	bool poison_reported;             /* vq_poison_is_new said so already */
};

struct virtqueue {
	/* Configuration: written only through vq_configure (and the ring
	 * feature flags by virtio_device_set_features) while stopped. */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;              /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;               /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	uint16_t last_avail_idx;     /* next avail entry to take; vq_base reads it */
	char label[40];              /* "<device> queue <n>" for log lines (activation sets it) */

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
	/* A popped chain the device could not finish (vq_hold): vq_pop hands
	 * it out again before taking a new one; vq_stop gives it back. */
	struct vq_chain *held;

	struct vq_faults faults;
};

/* Work allowed per wake-up before a drain yields (Linux vhost's rule:
 * a queue stops after so many chains or so many bytes, whichever first). */
struct vq_budget {
	unsigned chains;
	uint64_t bytes;
};

/* What a drain handler did with a chain. */
enum vq_verdict {
	VQ_CONSUMED,      /* completed (or will be): take the next one */
	VQ_HOLD,          /* cannot finish it now: keep it for the next drain */
};

/*
 * Called by vq_drain for each chain: @r is VQ_POP_OK or VQ_POP_BAD_CHAIN
 * (then complete chain->head with 0, count it and consume it: only a good
 * chain may be held). Adds the bytes the chain moved to *@bytes.
 */
typedef enum vq_verdict (*vq_chain_handler)(void *ctx, struct vq_chain *chain,
					    enum vq_pop_result r, uint64_t *bytes);

enum vq_drain_result {
	VQ_DRAIN_EMPTY,       /* ring drained, kicks back on */
	VQ_DRAIN_BUDGET,      /* budget spent: more may wait, kicks off; come back soon */
	VQ_DRAIN_HELD,        /* the handler held a chain: kicks off until it resumes */
	VQ_DRAIN_POISONED,    /* the avail ring is broken: the queue is dead */
};

/* Forget everything; the queue must be configured again. */
void vq_reset(struct virtqueue *vq);

/* Set a stopped queue's rings and base; -EBUSY while started. Checked
 * against guest memory by vq_start. */
int vq_configure(struct virtqueue *vq, const struct vq_config *cfg);

/* The next avail index the device would take (vhost-user GET_VRING_BASE):
 * a held chain counts as not taken. */
uint16_t vq_base(const struct virtqueue *vq);

/*
 * Check the configuration and map the rings: size a power of two up to
 * VQ_MAX_SIZE, rings aligned as the spec requires (desc 16, avail 2,
 * used 4) and each inside one guest memory region. Returns 0 or -errno.
 * The used index is taken from the ring, so a queue handed over by another
 * backend (vhost-user) continues where it was.
 */
int vq_start(struct virtqueue *vq, const struct guest_mem *mem);

/* The checks of vq_start without starting anything: 0, -EINVAL (size,
 * alignment) or -EFAULT (a ring outside guest memory), with *@why saying
 * which rule failed (a state loader refuses with it before applying). */
int vq_config_check(const struct vq_config *cfg, const struct guest_mem *mem, const char **why);

/* Stop using the rings (the device is paused or memory is changing); a
 * held chain goes back to the ring. */
void vq_stop(struct virtqueue *vq);

/* Take the next available chain (the held one first). See enum
 * vq_pop_result. A BAD_CHAIN is counted in vq->faults. */
enum vq_pop_result vq_pop(struct virtqueue *vq, struct vq_chain *chain);

/* Give the most recently popped chain back (the device could not use it now). */
void vq_unpop(struct virtqueue *vq);

/* Keep the most recently popped chain, untouched, in @chain (the buffer it
 * was popped into): the next vq_pop returns it without walking it again. */
void vq_hold(struct virtqueue *vq, struct vq_chain *chain);

/*
 * Pop with the kick-suppression idiom: kicks off while chains wait; when
 * the ring looks empty, kicks back on and one more look, so a chain made
 * available meanwhile is never missed. After VQ_POP_EMPTY kicks are on;
 * after a chain, off.
 */
enum vq_pop_result vq_next(struct virtqueue *vq, struct vq_chain *chain);

/*
 * Run @handler over the available chains until the ring is empty, the
 * handler holds one, or @budget (chains and bytes) is spent. The caller
 * publishes afterwards (one interrupt per drain) and, on VQ_DRAIN_BUDGET,
 * schedules another drain after other work has had its turn.
 *
 * Inline so that each device's handler is a direct call the compiler can
 * inline in turn: net's drains run it once per frame.
 */
static inline enum vq_drain_result vq_drain(struct virtqueue *vq, struct vq_chain *chain,
					    const struct vq_budget *budget,
					    vq_chain_handler handler, void *ctx)
{
	unsigned chains = budget->chains;
	uint64_t bytes = 0;

	while (chains && bytes < budget->bytes) {
		enum vq_pop_result r = vq_next(vq, chain);
		if (r == VQ_POP_EMPTY)
			return VQ_DRAIN_EMPTY;
		if (r == VQ_POP_POISONED)
			return VQ_DRAIN_POISONED;
		if (handler(ctx, chain, r, &bytes) == VQ_HOLD) {
			vq_hold(vq, chain);
			return VQ_DRAIN_HELD;
		}
		chains--;
	}
	return VQ_DRAIN_BUDGET;
}

/* True once, the first time it is asked after the queue was poisoned: the
 * device counts and reports each poisoning once. */
bool vq_poison_is_new(struct virtqueue *vq);

/* True when the guest has made chains available that vq_pop has not taken. */
bool vq_has_avail(struct virtqueue *vq);
/* Started and not poisoned: its rings may be read. */
bool vq_started(const struct virtqueue *vq);

/* Write a used element; it becomes visible to the guest at vq_publish.
 * Returns 0, or -EINVAL for a head that is not a valid index or -EIO when
 * the queue is not started (both counted in vq->faults.used_add_failed). */
int vq_push(struct virtqueue *vq, uint16_t head, uint32_t len);

/* Used entries pushed but not yet published. */
static inline uint16_t vq_unpublished(const struct virtqueue *vq)
{
	return (uint16_t)(vq->used_idx - vq->published_idx);
}

/* Make all pushed elements visible (one release store of used->idx) and say
 * whether the guest asked to be interrupted for them. */
bool vq_publish(struct virtqueue *vq);

/* The driver's avail index as it is now, for a device thread that polls
 * for new chains by comparing it with an earlier read. The queue must be
 * started; no lock is needed (it reads guest memory only), but popping
 * still takes the caller's queue lock. */
uint16_t vq_avail_idx(struct virtqueue *vq);

/* Notification suppression for the driver's kicks. vq_enable_notify returns
 * true when chains arrived while notifications were off, so the caller must
 * drain again (the disable / drain / enable / recheck idiom). */
void vq_disable_notify(struct virtqueue *vq);
bool vq_enable_notify(struct virtqueue *vq);
/* Kicks off at once, for a thread that polls the ring: with EVENT_IDX
 * vq_disable_notify leaves avail_event where it was, which still lets the
 * driver's next chain kick; this moves it behind. vq_enable_notify ends it. */
void vq_suppress_notify(struct virtqueue *vq);

/* Kicks on, and with EVENT_IDX a kick asked for the driver's next buffer
 * even while earlier ones wait untaken (a queue the device pops rarely:
 * vsock's events, whose refill is the driver's acknowledgment). */
void vq_notify_on_next(struct virtqueue *vq);

const char *vq_chain_error_str(enum vq_chain_error err);
const char *vq_poison_str(enum vq_poison_reason why);

#endif
