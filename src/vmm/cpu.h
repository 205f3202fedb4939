/*
 * x86 vCPU state at power-on (cpu.c): CPUID, MSRs, local APIC, and the
 * boot vCPU's long-mode registers. Main thread, before the vCPUs start.
 */
#ifndef KVMINI_VMM_CPU_H
#define KVMINI_VMM_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "vmm/vcpu.h"

/* Where the boot vCPU starts (filled by the boot loader). */
struct vm_entry {
	uint64_t rip;
	uint64_t rsi;                /* the zero page, for Linux */
};

/* What every vCPU of a VM is set up from. */
struct cpu_config {
	const struct kvm_cpuid2 *supported_cpuid;
	unsigned ncpus;
	bool compat;                 /* compat/compat.h: CX16 hidden */
	const struct vm_entry *entry;
};

/* KVM_GET_SUPPORTED_CPUID into a malloc'd table. */
int cpu_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out);

/* Registers, CPUID, MSRs and LAPIC for @v (the boot vCPU gets the entry).
 * 0 or -errno, logged. */
int cpu_setup(struct vcpu *v, const struct cpu_config *cfg);

#endif
