/* Minimal virtio-mmio driver for the test guest (see virtio.h). */
#include "guest.h"
#include "virtio.h"

static struct gdev *irq_devs[8];

uint32_t gdev_read(struct gdev *d, unsigned off)
{
	return mmio_read32(d->base + off);
}

void gdev_write(struct gdev *d, unsigned off, uint32_t v)
{
	mmio_write32(d->base + off, v);
}

bool gdev_probe(struct gdev *d, unsigned index, uint32_t device_id)
{
	if (!find_virtio_device(&d->base, &d->irq, index))
		return false;
	return gdev_read(d, VIRTIO_MMIO_MAGIC_VALUE) == 0x74726976 &&
	       gdev_read(d, VIRTIO_MMIO_VERSION) == 2 &&
	       gdev_read(d, VIRTIO_MMIO_DEVICE_ID) == device_id;
}

/* What Linux's vm_interrupt does: read the cause, acknowledge it. */
static void on_dev_irq(unsigned vector)
{
	struct gdev *d = irq_devs[vector - VEC_DEV_BASE];

	if (!d)
		return;
	uint32_t isr = gdev_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
	gdev_write(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
	d->isr_seen |= isr;
	d->interrupts++;
}

void gdev_irq_on(struct gdev *d)
{
	unsigned slot = d->irq - 5;

	if (slot >= 8)
		return;
	irq_devs[slot] = d;
	irq_set_handler(VEC_DEV_BASE + slot, on_dev_irq);
	ioapic_route(d->irq, VEC_DEV_BASE + slot);
}

uint64_t gdev_features(struct gdev *d)
{
	gdev_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = gdev_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
	gdev_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return lo | ((uint64_t)gdev_read(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32);
}

uint32_t gdev_negotiate(struct gdev *d, uint64_t features)
{
	gdev_write(d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	gdev_write(d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	gdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	gdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	gdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	gdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	gdev_write(d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		   VIRTIO_CONFIG_S_FEATURES_OK);
	return gdev_read(d, VIRTIO_MMIO_STATUS);
}

void gdev_queue_setup(struct gdev *d, unsigned n, struct gq *q)
{
	memset(q, 0, sizeof(*q));
	gdev_write(d, VIRTIO_MMIO_QUEUE_SEL, n);
	gdev_write(d, VIRTIO_MMIO_QUEUE_NUM, GQ_SIZE);
	gdev_write(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(uint64_t)q->desc);
	gdev_write(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)((uint64_t)q->desc >> 32));
	gdev_write(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)(uint64_t)&q->avail);
	gdev_write(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)((uint64_t)&q->avail >> 32));
	gdev_write(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)(uint64_t)&q->used);
	gdev_write(d, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)((uint64_t)&q->used >> 32));
	gdev_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
	if (n < 2)
		d->q[n] = q;
}

void gdev_kick(struct gdev *d, unsigned n)
{
	mb();        /* ring updates before the notification */
	gdev_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, n);
}

bool gdev_up(struct gdev *d, struct gq *q0, struct gq *q1)
{
	gdev_write(d, VIRTIO_MMIO_STATUS, 0);
	uint32_t st = gdev_negotiate(d, 1ull << VIRTIO_F_VERSION_1);
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK))
		return false;
	gdev_queue_setup(d, 0, q0);
	gdev_queue_setup(d, 1, q1);
	gdev_write(d, VIRTIO_MMIO_STATUS, st | VIRTIO_CONFIG_S_DRIVER_OK);
	return gdev_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK;
}

void gq_add(struct gq *q, const uint64_t *addr, const uint32_t *len, const bool *writable,
	    unsigned nbufs)
{
	uint16_t head = q->next_desc % GQ_SIZE;

	for (unsigned i = 0; i < nbufs; i++) {
		uint16_t d = (uint16_t)((head + i) % GQ_SIZE);
		q->desc[d].addr = addr[i];
		q->desc[d].len = len[i];
		q->desc[d].flags = (uint16_t)((writable[i] ? VRING_DESC_F_WRITE : 0) |
					      (i + 1 < nbufs ? VRING_DESC_F_NEXT : 0));
		q->desc[d].next = (uint16_t)((d + 1) % GQ_SIZE);
	}
	q->next_desc = (uint16_t)(q->next_desc + nbufs);
	q->avail.ring[q->avail.idx % GQ_SIZE] = head;
	mb();        /* the entry before the index that publishes it */
	q->avail.idx++;
}

uint16_t gq_used_idx(struct gq *q)
{
	return *(volatile uint16_t *)&q->used.idx;
}

bool gq_get_used(struct gq *q, uint32_t *id, uint32_t *len)
{
	if (gq_used_idx(q) == q->last_used)
		return false;
	barrier();   /* read the entry after the index */
	struct vring_used_elem *e = &q->used.ring[q->last_used % GQ_SIZE];
	*id = e->id;
	*len = e->len;
	q->last_used++;
	return true;
}
