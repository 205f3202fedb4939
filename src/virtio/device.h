/*
 * The virtio device interface. A device knows its features, config space,
 * queues and counters; it does not know which transport it sits behind.
 *
 *   transport -> device: struct virtio_device_ops (features, config, activate,
 *                        queue_notify, reset)
 *   device -> transport: struct virtio_transport_ops (interrupt a queue,
 *                        config change)
 *
 * The transport owns the lifecycle: it negotiates features through
 * virtio_device_set_features, configures the queues in dev->vqs, calls
 * virtio_device_activate once every queue is started (or, vhost-user,
 * virtio_device_activate_queues with the queues it can start), forwards kicks with
 * ops->queue_notify, and calls virtio_device_reset when the driver resets
 * the device or the vhost-user frontend goes away.
 */
#ifndef KVMINI_VIRTIO_DEVICE_H
#define KVMINI_VIRTIO_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/counters.h"
#include "core/event_loop.h"
#include "core/guest_mem.h"
#include "virtio/virtqueue.h"

struct virtio_device;
struct virtio_transport;
struct errbuf;
struct state_writer;
struct state_reader;
struct virtio_device_state;

struct virtio_device_ops {
	const char *name;
	uint32_t device_id;               /* VIRTIO_ID_* */
	uint32_t config_size;             /* bytes of device config space */

	/* Features the device offers (VERSION_1 and ring features included). */
	uint64_t (*features)(struct virtio_device *dev);
	/* Accept the negotiated set (already checked to be a subset of
	 * features() with VERSION_1). Return 0 or -EINVAL to refuse it. */
	int (*set_features)(struct virtio_device *dev, uint64_t features);
	/* Fill the whole config space (config_size bytes). */
	void (*config_read)(struct virtio_device *dev, void *config);
	/* A driver write of @len bytes at @offset (bounds already checked). */
	void (*config_write)(struct virtio_device *dev, uint32_t offset,
			     const void *data, uint32_t len);
	/* The queues are started (a transport may leave some stopped: see
	 * virtio_device_activate_queues): begin processing. 0 or -errno. */
	int (*activate)(struct virtio_device *dev);
	/* The driver kicked queue @q (q < num_queues, queue started). Called
	 * on the thread of queue_loop(@q). */
	void (*queue_notify)(struct virtio_device *dev, unsigned q);
	/* Optional: the loop whose thread takes queue @q's kicks (a device
	 * with a thread per queue, virtio-net's pairs), asked once per queue
	 * for the device's most queues when the transport is set up; NULL
	 * (or no op): dev->loop. A transport watches the queue's kick source
	 * there; kicks it takes on its own loop (vhost-user's in-band ones)
	 * it still hands to queue_notify there, which the device must then
	 * take from that thread too. */
	struct event_loop *(*queue_loop)(struct virtio_device *dev, unsigned q);
	/* Stop processing and forget per-session state; counters survive. */
	void (*reset)(struct virtio_device *dev);
	/* The VM is pausing (its vCPUs are parked): return with every queue
	 * at a request boundary and nothing more popped, completed or written
	 * into guest memory until resume; what arrives meanwhile (kicks,
	 * backend frames) waits. NULL: the loop-thread checks of
	 * virtio_device_running() suffice. */
	void (*pause)(struct virtio_device *dev);
	/* Take up what waited. May be NULL. */
	void (*resume)(struct virtio_device *dev);
	/* Hand every counter to @sink (core/counters.h). */
	void (*visit_counters)(struct virtio_device *dev, const struct counter_sink *sink);
	/* Snapshot state of the device's own (virtio/device_state.h), NULL
	 * when it has none beyond the core's. save_state writes whole
	 * sections of its own (state_begin .. state_end, its own tags); the
	 * device is paused or was never activated; 0, or -errno with why in
	 * @eb for a state it cannot save (the snapshot fails). load_state reads the same
	 * sections from @r (state_section .. state_section_done) into a
	 * device as built, never activated, before the core applies its part
	 * (features, queues, activation): it validates everything first and
	 * changes nothing unless it returns true; on failure it says why with
	 * state_fail. @core is the core's state, parsed and checked, not yet
	 * applied: what the device's own may be checked against (features,
	 * queues). Loop thread. */
	int (*save_state)(struct virtio_device *dev, struct state_writer *w, struct errbuf *eb);
	bool (*load_state)(struct virtio_device *dev, const struct virtio_device_state *core,
			   struct state_reader *r);
};

struct virtio_transport_ops {
	/* Interrupt the driver for used buffers on queue @q. */
	void (*signal_used)(struct virtio_transport *t, unsigned q);
	/* The same from any thread (a device's workers), where the transport
	 * can: returns false when it cannot now, and the device must then use
	 * signal_used on the loop thread. May be NULL. */
	bool (*signal_used_direct)(struct virtio_transport *t, unsigned q);
	/* Interrupt the driver for a config change (or NEEDS_RESET). */
	void (*signal_config)(struct virtio_transport *t);
};

struct virtio_transport {
	const struct virtio_transport_ops *ops;
};

/* A shared memory region (virtio 1.3 2.10): guest-visible device memory
 * the transport announces (virtio-mmio's SHMSel/SHMLen/SHMBase). */
struct virtio_shm_region {
	uint8_t id;                          /* the device type's region id */
	uint64_t base;                       /* guest-physical address */
	uint64_t len;                        /* bytes */
};

struct virtio_device {
	const struct virtio_device_ops *ops;
	/* The device's shared memory regions (none: NULL, 0), set by whoever
	 * placed them in guest memory before the transport is set up; the
	 * transport only reads them. */
	const struct virtio_shm_region *shm;
	unsigned num_shm;
	struct virtio_transport *transport;  /* set by the transport */
	struct event_loop *loop;             /* the loop the device's fds live on */
	const struct guest_mem *mem;         /* set by the transport before activate */
	struct virtqueue *vqs;
	unsigned num_queues;
	/* When nonzero, num_queues depends on the negotiated features (set by
	 * ops->set_features, at most this); a reset restores it to this. */
	unsigned max_queues;
	uint64_t features;                   /* negotiated */
	bool active;
	bool paused;                         /* virtio_device_pause .. _resume */
	/* VIRTIO_CONFIG_S_NEEDS_RESET: a queue was poisoned; cleared by reset. */
	bool needs_reset;
	uint32_t config_generation;          /* bumped on every config change */
};

/* The loop queue @q's kicks are taken on (ops->queue_loop, else dev->loop). */
static inline struct event_loop *virtio_device_queue_loop(struct virtio_device *dev, unsigned q)
{
	struct event_loop *l = dev->ops->queue_loop ? dev->ops->queue_loop(dev, q) : NULL;

	return l ? l : dev->loop;
}

/* Bounds-checked queue lookup: NULL when @q is out of range. */
static inline struct virtqueue *virtio_device_vq(struct virtio_device *dev, unsigned q)
{
	return q < dev->num_queues ? &dev->vqs[q] : NULL;
}

/* Should the device move buffers now: active and not paused. */
static inline bool virtio_device_running(const struct virtio_device *dev)
{
	return dev->active && !dev->paused;
}

static inline bool virtio_device_has(const struct virtio_device *dev, unsigned bit)
{
	return (dev->features >> bit) & 1;
}

/* The feature rules of DESIGN.md: a subset of what is offered, VERSION_1
 * required. Then ops->set_features, and the ring flags copied to the queues.
 * Returns 0 or -EINVAL. */
int virtio_device_set_features(struct virtio_device *dev, uint64_t features);

/* Bounds-checked config access for any transport: reads outside the config
 * space return -EINVAL (and leave @buf zeroed). */
int virtio_device_config_read(struct virtio_device *dev, uint32_t offset, void *buf,
			      uint32_t len);
int virtio_device_config_write(struct virtio_device *dev, uint32_t offset,
			       const void *buf, uint32_t len);

/* Start every queue against @dev->mem and activate the device. */
int virtio_device_activate(struct virtio_device *dev);
/* The same with only the queues @start selects (@start[q] for every q below
 * num_queues; NULL: all). The others stay stopped, so inert for the device
 * (vq_pop finds nothing, vq_publish does nothing) until the transport
 * deactivates it and activates it again with a new selection: vhost-user
 * runs a net device on the queue pairs the front-end has enabled. */
int virtio_device_activate_queues(struct virtio_device *dev, const bool *start);
/* Full reset (driver wrote status 0, or the frontend went away): stop,
 * forget features and queue configuration; counters survive. */
void virtio_device_reset(struct virtio_device *dev);
/* Stop processing and stop the queues but keep features and queue
 * configuration (vhost-user ring disable, memory table change). */
void virtio_device_deactivate(struct virtio_device *dev);

/* Hold the device for a paused VM, and let it go (ops->pause, ->resume).
 * Loop thread; pausing a paused device or resuming a running one does
 * nothing. */
void virtio_device_pause(struct virtio_device *dev);
void virtio_device_resume(struct virtio_device *dev);

/* A queue was found poisoned: set NEEDS_RESET and tell the driver (once). */
void virtio_device_mark_broken(struct virtio_device *dev, unsigned q);

/* The device changed its config space: a new generation, and the config
 * change interrupt. */
void virtio_device_config_changed(struct virtio_device *dev);

/* Publish queue @q's used entries and interrupt the driver if it asked.
 * Returns true when an interrupt was sent. */
bool virtio_device_publish(struct virtio_device *dev, unsigned q);

#endif
