/*
 * A minimal virtio-mmio driver for the test guest: what Linux's
 * virtio_mmio.c and virtio_ring.c do, one step at a time, so each rule of
 * the device side can be checked from the guest.
 */
#ifndef KVMINI_TEST_GUEST_VIRTIO_H
#define KVMINI_TEST_GUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#define GQ_SIZE 8u

struct gq {
	struct vring_desc desc[GQ_SIZE] __attribute__((aligned(16)));
	struct {
		uint16_t flags, idx, ring[GQ_SIZE], used_event;
	} avail __attribute__((aligned(4096)));
	struct {
		uint16_t flags, idx;
		struct vring_used_elem ring[GQ_SIZE];
		uint16_t avail_event;
	} used __attribute__((aligned(4096)));
	uint16_t next_desc;
	uint16_t last_used;
};

struct gdev {
	uint64_t base;
	unsigned irq;
	struct gq *q[2];
	volatile unsigned interrupts;
	volatile uint32_t isr_seen;      /* InterruptStatus bits seen by the handler */
};

uint32_t gdev_read(struct gdev *d, unsigned off);
void gdev_write(struct gdev *d, unsigned off, uint32_t v);
bool gdev_probe(struct gdev *d, unsigned index, uint32_t device_id);
/* Route the device's line to a vector and count its interrupts. */
void gdev_irq_on(struct gdev *d);
uint64_t gdev_features(struct gdev *d);
/* ACKNOWLEDGE | DRIVER, write @features, FEATURES_OK; returns the status read back. */
uint32_t gdev_negotiate(struct gdev *d, uint64_t features);
/* Queue @n registers (the caller's ring memory); QueueReady = 1. */
void gdev_queue_setup(struct gdev *d, unsigned n, struct gq *q);
void gdev_kick(struct gdev *d, unsigned n);
/* Reset, negotiate VERSION_1, set up queues 0 and 1, DRIVER_OK. */
bool gdev_up(struct gdev *d, struct gq *q0, struct gq *q1);
static inline bool gdev_net_up(struct gdev *d, struct gq *rx, struct gq *tx)
{
	return gdev_up(d, rx, tx);
}

/* Post one chain of @nbufs buffers; @writable says which are device-writable. */
void gq_add(struct gq *q, const uint64_t *addr, const uint32_t *len, const bool *writable,
	    unsigned nbufs);
/* Used entries not yet seen; takes one if there is one. */
bool gq_get_used(struct gq *q, uint32_t *id, uint32_t *len);
uint16_t gq_used_idx(struct gq *q);

#endif
