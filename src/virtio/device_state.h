/*
 * Snapshot state of the transport-independent part of a virtio device:
 * negotiated features, lifecycle flags and every queue's configuration,
 * indices and faults, in one section "VDEV", followed by the device's own
 * sections (ops->save_state / ->load_state).
 *
 * Saving needs a device at a request boundary: paused (virtio_device_pause)
 * or never activated. A chain a device holds (vq_hold) is saved as not
 * taken (vq_base): the restored device pops it again, which is what the
 * old device would have done at resume; nothing in guest memory records
 * that it was popped, so no rewind of the live device is needed.
 *
 * Loading goes into a device as built and never activated, with guest
 * memory already in place, in two phases: parse checks the section against
 * the device and guest memory and changes nothing; apply (after the
 * device's own load_state took its sections) negotiates the features,
 * configures the queues at their saved indices and, for an active device,
 * starts them and activates the device in the paused state
 * (dev->paused): it moves no buffer until virtio_device_resume.
 *
 * Loop thread, for all of it.
 */
#ifndef KVMINI_VIRTIO_DEVICE_STATE_H
#define KVMINI_VIRTIO_DEVICE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/state_io.h"
#include "virtio/device.h"

/* One queue as saved. The ring feature flags (event_idx, indirect) are not
 * stored: they follow from the features, as virtio_device_set_features
 * sets them. */
struct vq_state {
	struct vq_config cfg;            /* cfg.base: the next avail index to take */
	uint16_t used_idx, published_idx, signalled_idx;
	bool signalled_valid;
	bool notify_enabled;
	struct vq_faults faults;
};

struct virtio_device_state {
	uint64_t features;               /* 0: never negotiated */
	bool active;
	bool needs_reset;
	uint32_t config_generation;
	unsigned num_queues;
	struct vq_state *q;              /* num_queues of them */
};

/* Section "VDEV", then the device's own. The device is paused or inactive.
 * 0, or -errno with why in @eb (what the device cannot save). */
int virtio_device_state_save(struct virtio_device *dev, struct state_writer *w, struct errbuf *eb);

/* Read and check the "VDEV" section into *@s (free it with
 * virtio_device_state_free, also after a failure). False, with why in @r,
 * when it does not fit this device or its guest memory. */
bool virtio_device_state_parse(struct virtio_device *dev, struct state_reader *r,
			       struct virtio_device_state *s);
/* The device's own sections (ops->load_state, checked against @s, the
 * parsed "VDEV"; true when it has none). */
bool virtio_device_state_load_own(struct virtio_device *dev, const struct virtio_device_state *s,
				  struct state_reader *r);
/* Apply a parsed state to a device as built. Fails only when the device
 * refuses what the checks could not foresee (its set_features or activate
 * says no); the device is reset then, and why is in @r. */
bool virtio_device_state_apply(struct virtio_device *dev, const struct virtio_device_state *s,
			       struct state_reader *r);
void virtio_device_state_free(struct virtio_device_state *s);

/* parse, load_own, apply: for a transport with no state of its own. */
bool virtio_device_state_load(struct virtio_device *dev, struct state_reader *r);

#endif
