/*
 * ACPI tables for kvmini run (ACPI 6.3 layouts): how a kernel built with
 * CONFIG_ACPI (every distribution kernel) finds the CPUs, the IOAPIC, the
 * UART and the virtio-mmio devices.
 *
 *   RSDP (revision 2) -> XSDT -> FADT -> DSDT
 *                             -> MADT
 *
 * - FADT: hardware-reduced ACPI (no PM1 blocks, PM timer, SCI or GPEs,
 *   none of which kvmini models). A hardware-reduced platform reboots
 *   through the FADT reset register and sleeps through the sleep
 *   control/status registers, so:
 *     reset register  = I/O port 0x64, value 0xfe: the i8042 reset line
 *                       (ends the VM with status 0);
 *     sleep registers = I/O ports LAYOUT_PORT_ACPI_SLEEP_CTL/_STS, served
 *                       by acpi_pm.c: SLP_TYP 5 (S5, the \_S5 object in the
 *                       DSDT) with SLP_EN ends the VM with status 0.
 *   IAPC_BOOT_ARCH says: an i8042 (the keyboard controller, i8042.h; Linux
 *   takes a missing flag as "absent" when PnP finds none), no VGA, no MSI. The CMOS
 *   RTC is present, with the century at CMOS index 0x32.
 * - MADT: one enabled local APIC per vCPU (processor UID = APIC ID = vCPU
 *   index, as in the MP table and CPUID), the IOAPIC (ID after the vCPUs',
 *   GSI base 0) and LINT1 as NMI on every CPU. No interrupt source
 *   override: ISA line N -> GSI N, conforming to the bus, is both the MP
 *   table's mapping and ACPI's default (why none is emitted: acpi.c).
 * - DSDT: \_SB.COM1 (PNP0501, I/O 0x3f8-0x3ff, IRQ 4), \_SB.PS2K (PNP0303,
 *   the i8042: I/O 0x60 and 0x64, IRQ 1), one ACPI0007
 *   processor device per vCPU, one LNRO0005 device per virtio-mmio device
 *   (_UID = slot, _CRS = its 4 KiB window and its GSI, edge/active high
 *   like the irqfd pulses and the MP table), and \_S5.
 */
#ifndef KVMINI_VMM_ACPI_H
#define KVMINI_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_S5_SLP_TYP 5u           /* the \_S5 value, checked by acpi_pm.c */

/* A virtio-mmio device as the DSDT describes it (vm_virtio_slot_describe). */
struct acpi_mmio_device {
	uint64_t base;
	uint64_t size;
	uint32_t gsi;
};

struct acpi_config {
	unsigned ncpus;              /* 1..254: APIC IDs 0..ncpus-1, the IOAPIC's ncpus */
	const struct acpi_mmio_device *devs;
	unsigned ndevs;
};

/* Where acpi_build put each table (guest physical addresses). */
struct acpi_tables {
	uint64_t rsdp, xsdt, fadt, madt, dsdt;
	size_t size;                 /* bytes of the buffer used */
};

/*
 * Build every table into @buf (@cap bytes, zeroed first), which the guest
 * sees at guest physical @gpa (below 4 GiB). The RSDP comes first, so
 * @gpa must be 16-byte aligned inside 0xe0000..0xfffff for the legacy
 * scan to find it. Returns 0, -ENOSPC when @cap is too small, -EINVAL for
 * a bad configuration (CPU count, a device window above 4 GiB, a GSI
 * beyond the IOAPIC).
 */
int acpi_build(const struct acpi_config *cfg, uint8_t *buf, size_t cap, uint64_t gpa,
	       struct acpi_tables *out);

/* The 8-bit sum that makes @len bytes at @p add up to zero. */
uint8_t acpi_checksum(const void *p, size_t len);

#endif
