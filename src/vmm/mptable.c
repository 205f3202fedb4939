/*
 * Intel MultiProcessor Specification 1.4 table: how a kernel without ACPI
 * finds the CPUs, the IOAPIC and the routing of the ISA interrupt lines.
 * Every line 0..23 is an ISA "conforming" (edge, active high) input on the
 * IOAPIC pin of the same number, which is what KVM's default GSI routing
 * and kvmini's irqfd pulses expect.
 */
#include <errno.h>
#include <string.h>

#include "core/compiler.h"
#include "vmm/acpi.h"
#include "vmm/boot.h"
#include "vmm/layout.h"

#define MP_SPEC_REV 4
#define MP_APIC_VERSION 0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_CPU_ENABLED 0x1
#define MP_CPU_BOOT 0x2

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };

struct mp_floating {
	char signature[4];           /* "_MP_" */
	uint32_t config_addr;
	uint8_t length;              /* in 16-byte units */
	uint8_t spec_rev;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mp_config {
	char signature[4];           /* "PCMP" */
	uint16_t length;
	uint8_t spec_rev;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oem_table;
	uint16_t oem_size;
	uint16_t entries;
	uint32_t lapic_addr;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mp_processor {
	uint8_t type, apic_id, apic_version, flags;
	uint32_t signature, features;
	uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
	uint8_t type, bus_id;
	char bus_type[6];
} __attribute__((packed));

struct mp_ioapic {
	uint8_t type, apic_id, apic_version, flags;
	uint32_t addr;
} __attribute__((packed));

struct mp_irq {
	uint8_t type, irq_type;
	uint16_t flags;              /* 0: conforming to the bus */
	uint8_t src_bus, src_irq, dst_apic, dst_pin;
} __attribute__((packed));

/* Append @len bytes of @entry at *@pos. */
static void put(uint8_t **pos, const void *entry, size_t len)
{
	memcpy(*pos, entry, len);
	*pos += len;
}

/* One entry per vCPU (APIC ID = index), the boot vCPU flagged; CPU signature from CPUID 1. */
static void put_processors(struct vm *vm, uint8_t **pos)
{
	uint32_t signature = 0, features = 0;

	for (unsigned i = 0; i < vm->supported_cpuid->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &vm->supported_cpuid->entries[i];
		if (e->function == 1) {
			signature = e->eax;
			features = e->edx;
		}
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct mp_processor p = {
			.type = MP_PROCESSOR, .apic_id = (uint8_t)i, .apic_version = MP_APIC_VERSION,
			.flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BOOT : 0),
			.signature = signature, .features = features,
		};
		put(pos, &p, sizeof(p));
	}
}

/* ISA line N -> IOAPIC pin N for every pin, then the LINT pins. */
static void put_interrupts(uint8_t ioapic_id, uint8_t **pos)
{
	for (uint8_t pin = 0; pin < LAYOUT_IOAPIC_PINS; pin++) {
		struct mp_irq irq = {
			.type = MP_INTSRC, .irq_type = MP_INT, .src_bus = 0,
			.src_irq = pin, .dst_apic = ioapic_id, .dst_pin = pin,
		};
		put(pos, &irq, sizeof(irq));
	}
	/* LINT0 carries the PIC (ExtINT), LINT1 NMIs, on every CPU. */
	struct mp_irq lint0 = { .type = MP_LINTSRC, .irq_type = MP_EXTINT, .dst_apic = 0xff, .dst_pin = 0 };
	struct mp_irq lint1 = { .type = MP_LINTSRC, .irq_type = MP_NMI, .dst_apic = 0xff, .dst_pin = 1 };
	put(pos, &lint0, sizeof(lint0));
	put(pos, &lint1, sizeof(lint1));
}

int mptable_write(struct vm *vm)
{
	size_t size = sizeof(struct mp_floating) + sizeof(struct mp_config) +
		      vm->ncpus * sizeof(struct mp_processor) + sizeof(struct mp_bus) +
		      sizeof(struct mp_ioapic) + (LAYOUT_IOAPIC_PINS + 2) * sizeof(struct mp_irq);
	uint8_t *base = vm_gpa(vm, LAYOUT_MPTABLE, size);

	/* The table must stay inside the BIOS area Linux scans (64 KiB). */
	if (!base || size > 0x10000)
		return -ENOSPC;
	memset(base, 0, size);
	struct mp_floating *mpf = (struct mp_floating *)base;
	struct mp_config *cfg = (struct mp_config *)(mpf + 1);
	uint8_t *pos = (uint8_t *)(cfg + 1);
	uint8_t ioapic_id = LAYOUT_IOAPIC_ID(vm->ncpus);

	put_processors(vm, &pos);
	struct mp_bus bus = { .type = MP_BUS, .bus_id = 0, .bus_type = "ISA   " };
	put(&pos, &bus, sizeof(bus));
	struct mp_ioapic ioapic = { .type = MP_IOAPIC, .apic_id = ioapic_id,
				    .apic_version = MP_IOAPIC_VERSION, .flags = 1,
				    .addr = (uint32_t)LAYOUT_IOAPIC };
	put(&pos, &ioapic, sizeof(ioapic));
	put_interrupts(ioapic_id, &pos);

	memcpy(cfg->signature, "PCMP", 4);
	cfg->length = (uint16_t)(pos - (uint8_t *)cfg);
	cfg->spec_rev = MP_SPEC_REV;
	memcpy(cfg->oem, "KVMINI  ", 8);
	memcpy(cfg->product, "MICROVM     ", 12);
	cfg->entries = (uint16_t)(vm->ncpus + 2 + LAYOUT_IOAPIC_PINS + 2);
	cfg->lapic_addr = (uint32_t)LAYOUT_LAPIC;
	cfg->checksum = acpi_checksum(cfg, cfg->length);   /* the same 8-bit sum */

	memcpy(mpf->signature, "_MP_", 4);
	mpf->config_addr = (uint32_t)(LAYOUT_MPTABLE + sizeof(*mpf));
	mpf->length = 1;
	mpf->spec_rev = MP_SPEC_REV;
	mpf->checksum = acpi_checksum(mpf, sizeof(*mpf));
	return 0;
}
