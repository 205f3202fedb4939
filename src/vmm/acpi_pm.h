/*
 * The ACPI sleep registers of a hardware-reduced platform (ACPI 6.3,
 * 4.8.3.7 "Sleep Control and Status Registers"), which the FADT points at
 * (acpi.h): how an ACPI guest powers off.
 *
 *  - sleep control (LAYOUT_PORT_ACPI_SLEEP_CTL, 8 bits): a write with
 *    SLP_EN (bit 5) and SLP_TYP (bits 4:2) equal to the \_S5 value ends
 *    the VM with status 0 ("guest powered off"); any other sleep type is
 *    ignored (the DSDT declares no other \_Sx, and the VM never sleeps);
 *  - sleep status (LAYOUT_PORT_ACPI_SLEEP_STS, 8 bits): reads WAK_STS set
 *    (bit 7), so a guest waiting to wake from a sleep that never happened
 *    goes on at once; writes (clearing WAK_STS) are accepted and ignored.
 *
 * Accesses come from vCPU threads; there is no state to lock.
 */
#ifndef KVMINI_VMM_ACPI_PM_H
#define KVMINI_VMM_ACPI_PM_H

#include "vmm/io_bus.h"
#include "vmm/vm.h"

#define ACPI_PM_SLP_EN    0x20u
#define ACPI_PM_WAK_STS   0x80u

struct acpi_pm {
	struct vm *vm;
	struct io_handler sleep_ctl, sleep_sts;
};

/* Register both ports on @vm's port bus; 0 or -errno. */
int acpi_pm_init(struct acpi_pm *pm, struct vm *vm);

#endif
