/*
 * Moments of a boot (`kvmini run --boot-timing`): set once each, the first
 * time they happen, by whichever thread sees them (vCPUs, the UART, the
 * boot-marker port) and read by the main thread after the vCPUs are joined.
 */
#ifndef KVMINI_VMM_TIMING_H
#define KVMINI_VMM_TIMING_H

#include <stdint.h>

/* Nanoseconds of CLOCK_MONOTONIC (0: not reached). */
struct vm_timing {
	uint64_t start;              /* kvmini's main() */
	uint64_t vm_created;         /* VM, memory, irqchip and vCPUs exist */
	uint64_t kernel_loaded;      /* images and boot structures in guest memory */
	uint64_t first_run;          /* the boot vCPU's first KVM_RUN: first guest instruction */
	uint64_t first_exit;         /* the first exit to kvmini */
	uint64_t first_console;      /* the first byte the guest wrote to the UART */
	uint64_t kernel_runs_init;   /* the UART printed "Run /init" (Linux starts init) */
	uint64_t userspace;          /* the guest wrote the boot marker (port 0x3f0, 123) */
};

/* Record a first-time event of the boot: the first call for @slot sets it
 * (atomically; any thread), later ones change nothing. */
void vm_timing_mark(uint64_t *slot);

#endif
