#include "vmm/io_bus.h"

#include <errno.h>
#include <stddef.h>

int io_bus_add(struct io_bus *bus, struct io_handler *h)
{
	if (!h->len || h->base + h->len < h->base || !h->access)
		return -EINVAL;
	if (bus->n >= IO_BUS_MAX)
		return -ENOSPC;
	for (unsigned i = 0; i < bus->n; i++) {
		const struct io_handler *o = bus->h[i];
		if (h->base < o->base + o->len && o->base < h->base + h->len)
			return -EEXIST;
	}
	bus->h[bus->n++] = h;
	return 0;
}

struct io_handler *io_bus_find(const struct io_bus *bus, uint64_t addr, unsigned len)
{
	/* A handful of handlers: a linear scan is the fastest lookup. */
	for (unsigned i = 0; i < bus->n; i++) {
		struct io_handler *h = bus->h[i];
		if (addr >= h->base && addr - h->base < h->len && len <= h->len - (addr - h->base))
			return h;
	}
	return NULL;
}
