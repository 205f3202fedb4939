/* Port and MMIO exits: see exit_io.h. */
#include "vmm/exit_io.h"

#include <string.h>

#include "core/compiler.h"
#include "core/log.h"
#include "vmm/vcpu.h"

static unsigned unhandled_budget_take(unsigned *budget)
{
	if (!*budget)
		return 0;
	return (*budget)--;
}

/* A port access (string I/O included: count items of size bytes). Unclaimed
 * ports read as all ones and ignore writes. */
static enum exit_action on_io(struct exit_handler *eh, struct vcpu *v)
{
	const struct exit_io *e = container_of(eh, struct exit_io, pio_exit);
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	unsigned size = run->io.size;

	/* data_offset and count come from KVM, not from the guest; still,
	 * stay inside the mapping. */
	if (run->io.data_offset + (uint64_t)size * run->io.count > v->run_size)
		return EXIT_RESUME;
	struct io_handler *h = io_bus_find(e->pio, run->io.port, size);
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		if (h) {
			h->access(h, run->io.port - h->base, data, size, is_write);
			continue;
		}
		if (!is_write)
			memset(data, 0xff, size);   /* an empty ISA bus reads all ones */
		if (unhandled_budget_take(&v->unhandled_budget))
			log_debug("vCPU %u: unhandled port %s 0x%x (%u bytes)", v->index,
				  is_write ? "write" : "read", run->io.port, size);
	}
	return EXIT_RESUME;
}

/* An MMIO access; unclaimed addresses read as all ones and ignore writes. */
static enum exit_action on_mmio(struct exit_handler *eh, struct vcpu *v)
{
	const struct exit_io *e = container_of(eh, struct exit_io, mmio_exit);
	struct kvm_run *run = v->run;
	unsigned len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		return EXIT_RESUME;
	struct io_handler *h = io_bus_find(e->mmio, run->mmio.phys_addr, len);
	if (h) {
		h->access(h, run->mmio.phys_addr - h->base, run->mmio.data, len,
			  run->mmio.is_write);
		return EXIT_RESUME;
	}
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
	if (unhandled_budget_take(&v->unhandled_budget))
		log_debug("vCPU %u: unhandled MMIO %s 0x%llx (%u bytes)", v->index,
			  run->mmio.is_write ? "write" : "read",
			  (unsigned long long)run->mmio.phys_addr, len);
	return EXIT_RESUME;
}

int exit_io_init(struct exit_io *e, struct exit_table *t, const struct io_bus *pio,
		 const struct io_bus *mmio)
{
	e->pio_exit.handle = on_io;
	e->mmio_exit.handle = on_mmio;
	e->pio = pio;
	e->mmio = mmio;
	int r = exit_table_add(t, KVM_EXIT_IO, &e->pio_exit);
	return r ? r : exit_table_add(t, KVM_EXIT_MMIO, &e->mmio_exit);
}
