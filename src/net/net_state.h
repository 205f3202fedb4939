/*
 * virtio-net's own snapshot state (the device's hooks in virtio_device_ops):
 * section "VNET" with the config (MAC, MTU), every counter, and both rate
 * limiters (configuration, tokens, and the time since their last refill
 * rather than the old process's clock). The backend is not in it: the
 * machine opens one anew from its configuration.
 */
#ifndef KVMINI_NET_NET_STATE_H
#define KVMINI_NET_NET_STATE_H

#include <stdbool.h>

#include "core/state_io.h"
#include "virtio/device.h"

void net_save_state(struct virtio_device *vdev, struct state_writer *w);
bool net_load_state(struct virtio_device *vdev, struct state_reader *r);

#endif
