/*
 * A virtio device plugged into the VM: a virtio-mmio register window at
 * LAYOUT_MMIO_BASE + index * 4 KiB, interrupt line LAYOUT_IRQ_FIRST_DEV +
 * index, and what tells the guest about it: a kernel command-line fragment
 * and its description for the DSDT.
 */
#ifndef KVMINI_VMM_VIRTIO_SLOT_H
#define KVMINI_VMM_VIRTIO_SLOT_H

#include <stddef.h>

#include "core/event_loop.h"
#include "transport/mmio.h"
#include "vmm/acpi.h"
#include "virtio/device.h"
#include "vmm/io_bus.h"
#include "vmm/vm.h"

struct vm_virtio_slot {
	struct io_handler io;
	struct virtio_mmio mmio;
	bool initialized;
};

/* Put @dev in slot @index (< LAYOUT_MMIO_MAX_DEVS) of @vm; its queues are
 * kicked and served on @loop. Returns 0 or -errno. */
int vm_virtio_slot_init(struct vm_virtio_slot *s, struct vm *vm, struct event_loop *loop,
			struct virtio_device *dev, unsigned index);

/* "virtio_mmio.device=4K@0xADDR:IRQ" into @buf; returns what snprintf does. */
int vm_virtio_slot_cmdline(const struct vm_virtio_slot *s, char *buf, size_t len);

/* The slot's window and GSI as the DSDT describes them (the same values
 * vm_virtio_slot_cmdline prints). */
void vm_virtio_slot_describe(const struct vm_virtio_slot *s, struct acpi_mmio_device *d);

/* Shutdown, in two steps: close before joining the vCPUs (no vCPU waits on
 * the loop any more), destroy after (resets the device). */
void vm_virtio_slot_close(struct vm_virtio_slot *s);
void vm_virtio_slot_destroy(struct vm_virtio_slot *s);

#endif
