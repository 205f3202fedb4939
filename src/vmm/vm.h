/*
 * A KVM virtual machine: guest RAM (anonymous memory), the in-kernel irqchip
 * (IOAPIC, local APICs, PIC) and PIT, vCPU threads, and the port/MMIO
 * dispatch for the exits that reach kvmini.
 *
 * Threads:
 *  - the thread that calls vm_create / vm_start / vm_join (the "main"
 *    thread, which also runs the device event loop);
 *  - one thread per vCPU, looping on KVM_RUN and dispatching its exits to
 *    the io_bus handlers (which lock for themselves).
 *
 * Ending a run: anything (a vCPU seeing a reset, the event loop seeing a
 * signal) asks run_state (run_state.h) to stop; the first caller's status
 * wins and its stop_fd becomes readable; the main thread then calls
 * vm_join(), which sets immediate_exit on every vCPU, interrupts KVM_RUN
 * with a signal and joins the threads.
 */
#ifndef KVMINI_VMM_VM_H
#define KVMINI_VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "core/guest_mem.h"
#include "vmm/guest_virt.h"
#include "vmm/io_bus.h"
#include "vmm/run_state.h"
#include "vmm/user_relay.h"

#define VM_MAX_VCPUS 64u

/* Moments of a boot, nanoseconds of CLOCK_MONOTONIC (0: not reached). */
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

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	uint64_t exits;              /* exits handled by kvmini (this thread only) */
	struct run_state *run_state; /* the VM's */
	struct guest_virt virt;      /* guest-virtual access through this vCPU's page tables */
	struct user_relay relay;     /* compat mode on kvm_pvm (user_relay.h) */
};

/* Where the boot vCPU starts (filled by the boot loader). */
struct vm_entry {
	uint64_t rip;
	uint64_t rsi;                /* the zero page, for Linux */
};

struct vm_config {
	uint64_t mem_bytes;
	unsigned ncpus;
	bool compat;                 /* see vm->compat */
};

/*
 * Compatibility mode, for hosts where KVM emulates guest kernel code
 * (nested PVM, ENVIRONMENT.md): KVM cannot emulate every instruction a
 * stock kernel uses. With it, kvmini clears CPUID.1:ECX.CX16, and when
 * emulation fails on an int3 it steps over it and injects #BP (what the
 * CPU would have done), and on an fwait it steps over it. Opt-in: it hides
 * a real emulation failure of those two instructions. Where /dev/kvm is
 * kvm_pvm it also relays SYSCALL and INT n from guest user mode to the
 * guest kernel (user_relay.h), without which Linux userspace cannot run.
 */
#define VM_COMPAT_CMDLINE "noxsave clearcpuid=smap,fsgsbase,xsave,popcnt,aes,pclmulqdq," \
	"sha_ni,sse4_2,sse4_1,ssse3,movbe,rdseed,gfni,bmi1,bmi2,adx"

struct vm {
	int kvm_fd;
	int vm_fd;
	uint64_t mem_bytes;
	uint64_t low_ram_end;        /* RAM is [0, low_ram_end) and, above 3 GiB, [4 GiB, ...) */
	struct guest_mem mem;

	unsigned ncpus;
	bool compat;
	uint64_t compat_int3;        /* int3 stepped over (atomic) */
	uint64_t compat_fwait;       /* fwait stepped over (atomic) */
	bool user_relay;             /* compat on kvm_pvm: user_relay.h */
	uint64_t relay_syscalls;     /* SYSCALLs from user mode relayed (atomic) */
	uint64_t relay_ints;         /* INT n from user mode relayed (atomic) */
	uint64_t relay_passes;       /* handler breakpoints that were no relay (atomic) */
	struct vcpu vcpus[VM_MAX_VCPUS];
	struct kvm_cpuid2 *supported_cpuid;
	struct vm_entry entry;

	struct io_bus pio;
	struct io_bus mmio;

	struct run_state run_state;  /* stop request, exit status and reason */

	struct vm_timing timing;     /* first_* set atomically by vCPU threads */
};

/* Open /dev/kvm, create the VM, its memory, irqchip, PIT and vCPUs.
 * Returns 0 or -errno with a message logged. */
int vm_create(struct vm *vm, const struct vm_config *cfg);
/* Destroy everything vm_create made (vCPU threads must be joined). */
void vm_destroy(struct vm *vm);

/* Host pointer to [gpa, gpa + len) of guest RAM, or NULL. */
void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len);

/* Drive an ISA interrupt line of the in-kernel irqchip (any thread). */
int vm_set_irq_line(struct vm *vm, unsigned irq, bool level);

/* Set up every vCPU's registers, CPUID and MSRs, then start their threads. */
int vm_start(struct vm *vm);

/* Stop every vCPU and join its thread. Main thread. */
void vm_join(struct vm *vm);

/* Record a first-time event of the boot (vCPU threads). */
void vm_timing_mark(uint64_t *slot);

/* --- vcpu.c -------------------------------------------------------------- */

int vcpu_create(struct vm *vm, unsigned index);
void vcpu_destroy(struct vcpu *vcpu);
/* Registers, CPUID, MSRs and LAPIC for @vcpu (the boot vCPU gets the entry). */
int vcpu_setup(struct vcpu *vcpu);
void *vcpu_thread(void *arg);
/* Signal used to interrupt KVM_RUN; installed by vm_start. */
int vcpu_kick_signal(void);

/* --- cpu.c --------------------------------------------------------------- */

/* KVM_GET_SUPPORTED_CPUID into a malloc'd table. */
int cpu_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out);
int cpu_setup_cpuid(struct vcpu *vcpu);
int cpu_setup_msrs(struct vcpu *vcpu);
int cpu_setup_lapic(struct vcpu *vcpu);
/* Long-mode registers for the boot vCPU: paging, GDT, entry point. */
int cpu_setup_long_mode(struct vcpu *vcpu, const struct vm_entry *entry);

#endif
