/*
 * virtio-mmio transport (virtio 1.x section 4.2, "version 2" register
 * layout) for the in-process VMM: one device, one 4 KiB register window,
 * one interrupt line.
 *
 * Notifications and interrupts never go through a register access that
 * exits to kvmini on the hot path: each queue's QueueNotify write (data =
 * queue index) is matched by a KVM ioeventfd watched on the device's event
 * loop, and interrupts are written to a KVM irqfd on the device's GSI (an
 * edge on the IOAPIC pin; the MP table declares the line edge-triggered).
 *
 * Status state machine (DESIGN.md, ktstr's rules):
 *  - 0 resets the device (virtio_device_reset) and all transport state;
 *  - otherwise a write may only add bits, in order: ACKNOWLEDGE, then
 *    DRIVER, then FEATURES_OK, then DRIVER_OK; a write that clears bits or
 *    skips a step is refused and counted (the status stays as it was);
 *  - FEATURES_OK is kept only if virtio_device_set_features accepts the
 *    driver's features (a subset of the offered ones with VERSION_1); the
 *    driver sees it missing when it reads the status back (spec 3.1.1);
 *  - DriverFeatures is writable only between DRIVER and FEATURES_OK, the
 *    queue registers only between FEATURES_OK and DRIVER_OK, and a queue's
 *    size and ring addresses only while its QueueReady is 0 (spec 4.2.2.2);
 *  - DRIVER_OK copies the queue registers into the device's virtqueues and
 *    activates the device; if that fails (a queue the checks refuse), the
 *    device reports NEEDS_RESET;
 *  - NEEDS_RESET (a poisoned queue, an activation failure) is reflected in
 *    the status with a config-change interrupt, until the driver resets.
 *
 * Threads and locking. Register accesses arrive on vCPU threads; the device
 * lives on its event-loop thread and is not thread-safe. So:
 *  - transport-only registers (feature and queue selectors, driver
 *    features, queue registers, InterruptStatus/ACK, ConfigGeneration,
 *    Status reads) are handled on the vCPU thread under @lock;
 *  - everything that touches the device (Status writes, config space reads
 *    and writes) is handed to the loop thread as a call: the vCPU posts it
 *    under @lock, wakes the loop through @call_wake and sleeps on @cond; the
 *    loop thread runs it under @lock and wakes the vCPU. One call is in
 *    flight per device; other vCPUs wait their turn;
 *  - queue kicks arrive on the loop thread (ioeventfds) and go straight to
 *    ops->queue_notify when the device is active;
 *  - signal_used / signal_config (loop thread, or any thread a device uses)
 *    take no lock: InterruptStatus, ConfigGeneration and NEEDS_RESET are
 *    atomics, set before the irqfd write so the guest's handler sees them;
 *  - virtio_mmio_close() (shutdown) fails pending and future calls, so a
 *    vCPU never waits for a loop that has stopped.
 * Lock order: @lock is never held while waiting for anything but @cond, and
 * nothing the loop thread does under it waits for a vCPU.
 *
 * Without a VM (opts.vm_fd < 0: unit tests and fuzzers) nothing is
 * registered with KVM: QueueNotify writes reach the kick eventfds through
 * the register path, interrupts are plain writes to irq_fd, and device
 * accesses run on the calling thread, which must be the loop thread.
 */
#ifndef KVMINI_TRANSPORT_MMIO_H
#define KVMINI_TRANSPORT_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <linux/virtio_config.h>

#include "core/event_loop.h"
#include "core/guest_mem.h"
#include "core/state_io.h"
#include "virtio/device.h"

#define VIRTIO_MMIO_WINDOW 0x1000u
#define VIRTIO_MMIO_VENDOR 0x494d564bu      /* "KVMI" */
#define VIRTIO_MMIO_QUEUE_MAX_DEFAULT 256u
/* The status bits a driver writes (NEEDS_RESET is the device's). */
#define VIRTIO_MMIO_STATUS_DRIVER_BITS (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
					VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK | \
					VIRTIO_CONFIG_S_FAILED)

/*
 * Counters, <direction>_<object>_<event> (rx: from the driver, tx: to it).
 * Updated atomically from vCPU and loop threads; they survive reset.
 */
#define VIRTIO_MMIO_COUNTERS(X) \
	X(rx_register_invalid,       "register accesses refused: unknown offset or width") \
	X(rx_status_refused,         "status writes refused: bits cleared or a step skipped") \
	X(rx_features_refused,       "FEATURES_OK refused: the device did not accept the features") \
	X(rx_feature_writes_refused, "driver feature writes outside DRIVER..FEATURES_OK") \
	X(rx_queue_writes_refused,   "queue register writes outside FEATURES_OK..DRIVER_OK or to a ready queue") \
	X(rx_notify_exits,           "QueueNotify writes that exited to kvmini (no ioeventfd match)") \
	X(rx_kicks,                  "queue kicks taken from the ioeventfds") \
	X(rx_kicks_inactive,         "kicks ignored: the device was not active") \
	X(tx_interrupts,             "used-buffer interrupts written to the irqfd") \
	X(tx_config_interrupts,      "config-change interrupts written to the irqfd") \
	X(tx_interrupts_failed,      "irqfd writes that failed") \
	X(device_activations,        "DRIVER_OK writes that activated the device") \
	X(rx_device_activate_failed, "activations refused (the device reports NEEDS_RESET)") \
	X(rx_device_resets,          "status 0 writes (device resets)") \
	X(rx_register_dropped,       "register accesses dropped: the event loop had stopped")

struct virtio_mmio_counters {
	VIRTIO_MMIO_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set virtio_mmio_counter_set;

struct virtio_mmio_opts {
	int vm_fd;                   /* KVM VM for ioeventfds and the irqfd; -1: none */
	uint64_t base;               /* guest physical address of the window */
	unsigned gsi;                /* interrupt line */
	uint16_t queue_num_max;      /* QueueNumMax; 0: VIRTIO_MMIO_QUEUE_MAX_DEFAULT */
};

/* The driver's queue registers, copied into the virtqueue at DRIVER_OK. */
struct virtio_mmio_queue {
	uint16_t num;
	bool ready;
	uint64_t desc, avail, used;
};

struct virtio_mmio_kick {
	struct virtio_mmio *t;
	unsigned q;
	int fd;
	bool assigned;               /* registered with KVM_IOEVENTFD */
	struct event_loop *loop;     /* the device's for the queue (queue_loop) */
	struct event_source src;
};

struct virtio_mmio_call;

struct virtio_mmio {
	struct virtio_transport transport;   /* dev->transport points here */
	struct virtio_device *dev;
	struct event_loop *loop;
	struct virtio_mmio_opts opts;
	uint64_t offered;                    /* device features, read once at init */
	/* Entries of @queues and @kicks: the device's queue count at init
	 * (the most it can have, when the count follows the features). */
	unsigned nqueues;
	/* A restored InterruptStatus whose interrupt the guest may not have
	 * had: raised by virtio_mmio_state_resume. Loop thread. */
	bool irq_owed;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Protected by @lock. */
	uint32_t status;                     /* without NEEDS_RESET (see below) */
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	uint32_t shm_sel;            /* SHMSel: the region SHMLen/SHMBase describe */
	struct virtio_mmio_queue *queues;    /* @nqueues */
	struct virtio_mmio_call *call;       /* in flight to the loop thread */
	bool closed;

	/* Atomics (any thread). */
	uint32_t interrupt_status;
	uint32_t config_generation;
	int needs_reset;

	int irq_fd;                          /* KVM irqfd on opts.gsi */
	bool irq_assigned;
	struct event_notifier call_wake;     /* vCPU -> loop: a call waits */
	struct virtio_mmio_kick *kicks;      /* dev->num_queues */

	struct virtio_mmio_counters counters;
};

/*
 * Put @dev behind a register window: registers the ioeventfds and the
 * irqfd with KVM and watches them on @loop (the device's loop; each kick on
 * the loop the device names for its queue, virtio_device_queue_loop). Sets
 * dev->transport and dev->mem. Loop thread (or before the loop runs).
 * Returns 0 or -errno.
 */
int virtio_mmio_init(struct virtio_mmio *t, struct virtio_device *dev, struct event_loop *loop,
		     const struct guest_mem *mem, const struct virtio_mmio_opts *opts);

/* Fail pending and future calls (the loop is stopping). Any thread. */
void virtio_mmio_close(struct virtio_mmio *t);

/* Run the call a vCPU is waiting for, if any: what the loop does when the
 * call's notifier fires, for a loop thread that waits on the vCPUs itself
 * (a pause) and so cannot go back to its loop. Loop thread. */
void virtio_mmio_serve_call(struct virtio_mmio *t);

/* Reset the device, unregister from KVM and the loop, free. Loop thread,
 * after every vCPU has stopped. */
void virtio_mmio_destroy(struct virtio_mmio *t);

/* One register access at @offset in the window. vCPU threads. */
void virtio_mmio_access(struct virtio_mmio *t, uint64_t offset, void *data, unsigned len,
			bool is_write);

/* Is @next a legal successor of @old in the status state machine (bits
 * only added, each step after the one before it)? */
bool virtio_mmio_status_step_ok(uint32_t old, uint32_t next);

/*
 * Snapshot state (mmio_state.c): section "MMIO" (the registers, the device
 * type and queue count), then the device's (virtio/device_state.h).
 *
 * save: the device paused (virtio_device_pause) or never activated, -EBUSY
 * otherwise; loop thread, vCPUs parked.
 * load: into a transport and device as built (no driver has touched them),
 * guest memory in place, vCPUs not started; loop thread. Everything is
 * checked before anything changes: 0, or -EINVAL with why in @r (a state
 * of another device type or queue count, an illegal status, a bad queue,
 * a ring outside memory, a truncated or unknown section) and nothing
 * applied; -EBUSY for a transport in use. The device is left paused.
 * resume: raise an interrupt the restored InterruptStatus owes the guest,
 * then virtio_device_resume; after the irqchip state is restored, before
 * the vCPUs run.
 */
int virtio_mmio_state_save(struct virtio_mmio *t, struct state_writer *w, struct errbuf *eb);
int virtio_mmio_state_load(struct virtio_mmio *t, struct state_reader *r);
void virtio_mmio_state_resume(struct virtio_mmio *t);

/* "mmio_<name> <value>"; any thread (the counters are atomic). */
void virtio_mmio_visit_counters(const struct virtio_mmio *t, const struct counter_sink *sink);
void virtio_mmio_dump_counters(const struct virtio_mmio *t, FILE *out);

#endif
