/*
 * Port and MMIO exits (KVM_EXIT_IO, KVM_EXIT_MMIO), dispatched to the VM's
 * io_bus handlers (which lock for themselves). Unclaimed ports and
 * addresses read as all ones and ignore writes, logged within each vCPU's
 * budget.
 */
#ifndef KVMINI_VMM_EXIT_IO_H
#define KVMINI_VMM_EXIT_IO_H

#include "vmm/exit_table.h"
#include "vmm/io_bus.h"

struct exit_io {
	struct exit_handler pio_exit, mmio_exit;
	const struct io_bus *pio, *mmio;
};

/* Register both exits of @t on the buses @pio and @mmio. 0 or -errno. */
int exit_io_init(struct exit_io *e, struct exit_table *t, const struct io_bus *pio,
		 const struct io_bus *mmio);

#endif
