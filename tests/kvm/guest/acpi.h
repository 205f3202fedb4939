/*
 * ACPI checks of the test guest (acpi.c): the tables kvmini builds, read
 * the way an OS reads them.
 */
#ifndef KVMINI_TEST_GUEST_ACPI_H
#define KVMINI_TEST_GUEST_ACPI_H

#include <stdbool.h>
#include <stdint.h>

/* What the walk from the RSDP found (NULL: missing or invalid). */
struct acpi_found {
	uint64_t rsdp;
	const uint8_t *fadt, *madt, *dsdt;
	unsigned nxsdt, nfadt, nmadt;
	bool dsdt32_matches;
};

/* test=acpi: every table, the MADT against --cpus ("cpus=N" on the command
 * line), the MP table and CPUID, the DSDT's devices against the
 * virtio_mmio.device= entries. */
void acpi_test_tables(const uint8_t *zp);
/* test=acpi-poweroff: S5 through the FADT's sleep control register. */
void acpi_test_poweroff(const uint8_t *zp);
/* test=acpi-reset: the FADT's reset register. */
void acpi_test_reset(const uint8_t *zp);

#endif
