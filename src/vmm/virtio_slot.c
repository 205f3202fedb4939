#include "vmm/virtio_slot.h"

#include <errno.h>
#include <stdio.h>

#include "core/compiler.h"
#include "vmm/layout.h"

static void slot_access(struct io_handler *h, uint64_t offset, void *data, unsigned len,
			bool is_write)
{
	struct vm_virtio_slot *s = container_of(h, struct vm_virtio_slot, io);

	virtio_mmio_access(&s->mmio, offset, data, len, is_write);
}

int vm_virtio_slot_init(struct vm_virtio_slot *s, struct vm *vm, struct event_loop *loop,
			struct virtio_device *dev, unsigned index)
{
	if (index >= LAYOUT_MMIO_MAX_DEVS)
		return -ENOSPC;
	struct virtio_mmio_opts opts = {
		.vm_fd = vm->vm_fd,
		.base = LAYOUT_MMIO_BASE + index * LAYOUT_MMIO_SIZE,
		.gsi = LAYOUT_IRQ_FIRST_DEV + index,
	};
	int r = virtio_mmio_init(&s->mmio, dev, loop, &vm->mem, &opts);
	if (r < 0)
		return r;
	s->initialized = true;
	s->io = (struct io_handler){ .base = opts.base, .len = LAYOUT_MMIO_SIZE,
				     .access = slot_access, .name = dev->ops->name };
	return io_bus_add(&vm->mmio, &s->io);
}

int vm_virtio_slot_cmdline(const struct vm_virtio_slot *s, char *buf, size_t len)
{
	return snprintf(buf, len, "virtio_mmio.device=4K@0x%llx:%u",
			(unsigned long long)s->mmio.opts.base, s->mmio.opts.gsi);
}

void vm_virtio_slot_describe(const struct vm_virtio_slot *s, struct acpi_mmio_device *d)
{
	*d = (struct acpi_mmio_device){ .base = s->mmio.opts.base, .size = LAYOUT_MMIO_SIZE,
					.gsi = s->mmio.opts.gsi };
}

void vm_virtio_slot_close(struct vm_virtio_slot *s)
{
	if (s->initialized)
		virtio_mmio_close(&s->mmio);
}

void vm_virtio_slot_destroy(struct vm_virtio_slot *s)
{
	if (s->initialized)
		virtio_mmio_destroy(&s->mmio);
	s->initialized = false;
}
