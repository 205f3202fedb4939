/*
 * A KVM virtual machine: guest RAM (anonymous memory), the in-kernel irqchip
 * (IOAPIC, local APICs, PIC) and PIT, the port and MMIO buses devices
 * register on, the exit table its vCPUs dispatch through, and the vCPUs.
 *
 * Dependencies run one way: the VM builds the exit table (exit_io.h,
 * exit_events.h, compat/) and the vCPUs (vcpu.h), which run through the
 * table and end the run through run_state.h; none of them knows the VM.
 *
 * Threads:
 *  - the thread that calls vm_create / vm_start / vm_join (the "main"
 *    thread, which also runs the device event loop);
 *  - one thread per vCPU (vcpu.h).
 *
 * Ending a run: anything (a vCPU seeing a reset, the event loop seeing a
 * signal) asks run_state (run_state.h) to stop; the first caller's status
 * wins and its stop_fd becomes readable; the main thread then calls
 * vm_join(), which sets immediate_exit on every vCPU, interrupts KVM_RUN
 * with a signal and joins the threads.
 */
#ifndef KVMINI_VMM_VM_H
#define KVMINI_VMM_VM_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "core/guest_mem.h"
#include "vmm/compat/compat.h"
#include "vmm/cpu.h"
#include "vmm/exit_io.h"
#include "vmm/exit_table.h"
#include "vmm/io_bus.h"
#include "vmm/run_state.h"
#include "vmm/timing.h"
#include "vmm/vcpu.h"
#include "vmm/vcpu_pause.h"

struct vm_config {
	uint64_t mem_bytes;
	unsigned ncpus;
	bool compat;                 /* compat/compat.h */
	/* A snapshot's memory (ram_file.h): its Full image, then each Diff
	 * over it, in order; none for a boot. */
	const char *const *mem_files;
	unsigned n_mem_files;
	/* Log the RAM slots' dirty pages (KVM_MEM_LOG_DIRTY_PAGES) and
	 * kvmini's own writes (guest_mem.h), for Diff snapshots (vm_dirty.h).
	 * Costs the guest its huge pages: KVM maps logged memory 4 KiB. */
	bool track_dirty;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	uint64_t mem_bytes;
	uint64_t low_ram_end;        /* RAM is [0, low_ram_end) and, above 3 GiB, [4 GiB, ...) */
	struct guest_mem mem;        /* region i is KVM memory slot i */
	/* Device memory (vm_add_device_memory): slots made, first free address. */
	unsigned n_device_slots;
	uint64_t device_mem_top;
	bool track_dirty;            /* vm_config's */

	unsigned ncpus;
	struct compat compat;        /* --compat's workarounds and their counters */
	struct vcpu vcpus[VM_MAX_VCPUS];
	struct kvm_cpuid2 *supported_cpuid;
	struct vm_entry entry;

	struct io_bus pio;
	struct io_bus mmio;
	/* Built by vm_create, read-only once the vCPUs run. */
	struct exit_table exit_table;
	struct exit_io exit_io;

	struct run_state run_state;  /* stop request, exit status and reason */
	struct vcpu_pause pause;     /* holds the vCPUs between two KVM_RUNs */
	bool pause_ready;

	struct vm_timing timing;     /* first_* set atomically by vCPU threads */
	/* vm_state_load put saved vCPU state in: vm_start must not set the
	 * vCPUs up for a boot (cpu_setup) over it. */
	bool restored;
};

/* Open /dev/kvm, create the VM, its memory, irqchip, PIT and vCPUs.
 * Returns 0 or -errno with a message logged. */
int vm_create(struct vm *vm, const struct vm_config *cfg);
/* Destroy everything vm_create made (vCPU threads must be joined). */
void vm_destroy(struct vm *vm);

/*
 * vm_add_device_memory() - give the guest @size bytes of host memory at
 * @host (a virtio-fs DAX window) as device memory: a KVM memory slot above
 * RAM, aligned to its size and to at least LAYOUT_DEVICE_MEM_ALIGN, not
 * guest RAM to kvmini (no snapshot, no dirty log, not in vm->mem). Sets
 * *@gpa. 0 or -errno (logged). Before the vCPUs run.
 */
int vm_add_device_memory(struct vm *vm, void *host, uint64_t size, uint64_t *gpa);

/* Host pointer to [gpa, gpa + len) of guest RAM, or NULL. */
void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len);

/* Drive an ISA interrupt line of the in-kernel irqchip (any thread). */
int vm_set_irq_line(struct vm *vm, unsigned irq, bool level);
/* The in-kernel IOAPIC's redirection entry for @pin and whether its IRR bit
 * is set, for diagnostics (a line that does not reach the guest). */
int vm_ioapic_pin(struct vm *vm, unsigned pin, uint64_t *entry, bool *irr);

/* Set up every vCPU's registers, CPUID and MSRs (not for a VM that
 * vm_state_load restored), then start their threads. */
int vm_start(struct vm *vm);

/* Stop every vCPU and join its thread. Main thread. */
void vm_join(struct vm *vm);

/*
 * Pausing (vcpu_pause.h): ask every vCPU to park and kick it out of
 * KVM_RUN; then wait, a bounded while at a time, until all have parked (a
 * vCPU in an exit may wait on the caller's loop first: serve it between
 * waits). vm_resume_vcpus lets them run on. The main (loop) thread.
 */
void vm_pause_vcpus(struct vm *vm);
bool vm_vcpus_parked(struct vm *vm, int timeout_ms);
void vm_resume_vcpus(struct vm *vm);

#endif
