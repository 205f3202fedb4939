/*
 * Port and MMIO dispatch for exits that reach the VMM.
 *
 * Handlers are registered while the VM is being built, before any vCPU runs;
 * after that the table is read-only, so lookups from vCPU threads take no
 * lock. Each handler does its own locking: it is called from any vCPU thread.
 */
#ifndef KVMINI_VMM_IO_BUS_H
#define KVMINI_VMM_IO_BUS_H

#include <stdbool.h>
#include <stdint.h>

#define IO_BUS_MAX 32u

struct io_handler;

/*
 * One access of @len bytes (1, 2, 4 or 8) at @offset from the handler's
 * base. A read fills @data; a write reads it. Calling context: a vCPU
 * thread. Guest misbehaviour is counted or ignored by the handler, never
 * returned as a failure of the VMM.
 */
typedef void (*io_access_fn)(struct io_handler *h, uint64_t offset, void *data,
			     unsigned len, bool is_write);

struct io_handler {
	uint64_t base;
	uint64_t len;
	io_access_fn access;
	const char *name;
};

struct io_bus {
	unsigned n;
	struct io_handler *h[IO_BUS_MAX];
};

/* Register @h (embedded in its device). -EINVAL for an empty or wrapping
 * range, -EEXIST for an overlap, -ENOSPC when full. */
int io_bus_add(struct io_bus *bus, struct io_handler *h);

/* The handler covering all of [addr, addr + len), or NULL. */
struct io_handler *io_bus_find(const struct io_bus *bus, uint64_t addr, unsigned len);

#endif
