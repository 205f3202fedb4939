/*
 * Transport-independent device lifecycle: feature negotiation rules, config
 * space bounds, queue start, NEEDS_RESET.
 */
#include "virtio/device.h"

#include <errno.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "core/compiler.h"
#include "core/log.h"

int virtio_device_set_features(struct virtio_device *dev, uint64_t features)
{
	uint64_t offered = dev->ops->features(dev);

	/* Spec 3.1.1 / 6.1: the driver accepts a subset of what is offered, and
	 * kvmini serves only modern (1.x) drivers. */
	if (features & ~offered) {
		log_warn("%s: driver acked features 0x%llx not offered (0x%llx)",
			 dev->ops->name, (unsigned long long)(features & ~offered),
			 (unsigned long long)offered);
		return -EINVAL;
	}
	if (!(features & (1ull << VIRTIO_F_VERSION_1))) {
		log_warn("%s: driver did not accept VIRTIO_F_VERSION_1", dev->ops->name);
		return -EINVAL;
	}
	int r = dev->ops->set_features(dev, features);
	if (r < 0)
		return r;
	dev->features = features;
	for (unsigned q = 0; q < dev->num_queues; q++) {
		dev->vqs[q].event_idx = virtio_device_has(dev, VIRTIO_RING_F_EVENT_IDX);
		dev->vqs[q].indirect = virtio_device_has(dev, VIRTIO_RING_F_INDIRECT_DESC);
	}
	return 0;
}

/* Is [offset, offset + len) inside the config space? */
static bool config_range_ok(const struct virtio_device *dev, uint32_t offset, uint32_t len)
{
	return offset <= dev->ops->config_size && len <= dev->ops->config_size - offset;
}

int virtio_device_config_read(struct virtio_device *dev, uint32_t offset, void *buf,
			      uint32_t len)
{
	uint8_t config[256];

	memset(buf, 0, len);
	if (!config_range_ok(dev, offset, len) || dev->ops->config_size > sizeof(config))
		return -EINVAL;
	dev->ops->config_read(dev, config);
	memcpy(buf, config + offset, len);
	return 0;
}

int virtio_device_config_write(struct virtio_device *dev, uint32_t offset,
			       const void *buf, uint32_t len)
{
	if (!config_range_ok(dev, offset, len))
		return -EINVAL;
	if (dev->ops->config_write)
		dev->ops->config_write(dev, offset, buf, len);
	return 0;
}

int virtio_device_activate(struct virtio_device *dev)
{
	return virtio_device_activate_queues(dev, NULL);
}

int virtio_device_activate_queues(struct virtio_device *dev, const bool *start)
{
	if (dev->active)
		return 0;
	if (!dev->mem)
		return -EINVAL;
	for (unsigned q = 0; q < dev->num_queues; q++) {
		snprintf(dev->vqs[q].label, sizeof(dev->vqs[q].label), "%s queue %u",
			 dev->ops->name, q);
		/* A restored device's queues are started by the state loader
		 * (device_state.c), with their indices, before this. */
		bool skip = dev->vqs[q].started || (start && !start[q]);
		int r = skip ? 0 : vq_start(&dev->vqs[q], dev->mem);
		if (r < 0) {
			log_warn("%s: queue %u cannot start: %s", dev->ops->name, q, strerror(-r));
			for (unsigned i = 0; i < q; i++)
				vq_stop(&dev->vqs[i]);
			return r;
		}
	}
	int r = dev->ops->activate(dev);
	if (r < 0) {
		for (unsigned q = 0; q < dev->num_queues; q++)
			vq_stop(&dev->vqs[q]);
		return r;
	}
	dev->active = true;
	return 0;
}

void virtio_device_deactivate(struct virtio_device *dev)
{
	if (dev->active)
		dev->ops->reset(dev);
	for (unsigned q = 0; q < dev->num_queues; q++)
		vq_stop(&dev->vqs[q]);
	dev->active = false;
}

void virtio_device_reset(struct virtio_device *dev)
{
	virtio_device_deactivate(dev);
	if (dev->max_queues)
		dev->num_queues = dev->max_queues;
	for (unsigned q = 0; q < dev->num_queues; q++)
		vq_reset(&dev->vqs[q]);
	dev->features = 0;
	dev->needs_reset = false;
}

void virtio_device_pause(struct virtio_device *dev)
{
	if (dev->paused)
		return;
	dev->paused = true;
	if (dev->ops->pause)
		dev->ops->pause(dev);
}

void virtio_device_resume(struct virtio_device *dev)
{
	if (!dev->paused)
		return;
	dev->paused = false;
	if (dev->ops->resume)
		dev->ops->resume(dev);
}

void virtio_device_mark_broken(struct virtio_device *dev, unsigned q)
{
	if (dev->needs_reset)
		return;
	struct virtqueue *vq = virtio_device_vq(dev, q);
	log_warn("%s: queue %u poisoned (%s); device needs reset", dev->ops->name, q,
		 vq ? vq_poison_str(vq->faults.poisoned) : "?");
	dev->needs_reset = true;
	/* Spec 2.1.2: NEEDS_RESET is announced with a config change interrupt. */
	virtio_device_config_changed(dev);
}

void virtio_device_config_changed(struct virtio_device *dev)
{
	dev->config_generation++;
	if (dev->transport)
		dev->transport->ops->signal_config(dev->transport);
}

bool virtio_device_publish(struct virtio_device *dev, unsigned q)
{
	struct virtqueue *vq = virtio_device_vq(dev, q);

	if (!vq || !vq_publish(vq) || !dev->transport)
		return false;
	dev->transport->ops->signal_used(dev->transport, q);
	return true;
}
