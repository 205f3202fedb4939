/*
 * A vCPU and its thread: KVM_RUN, then the exit that brought it back,
 * handed to the VM's exit table (exit_table.h). The vCPU knows the run
 * state it checks and ends through, the table and the boot timing; it does
 * not know the VM that made it, nor any exit handler.
 *
 * Threads: vcpu_create, vcpu_start, vcpu_kick and vcpu_join run on the
 * VM's main thread; everything else a vCPU does happens on its own thread.
 * A vCPU leaves KVM_RUN when its run state says stop and a kick (set
 * immediate_exit, then a signal) makes it look.
 */
#ifndef KVMINI_VMM_VCPU_H
#define KVMINI_VMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "core/guest_mem.h"
#include "vmm/exit_table.h"
#include "vmm/guest_virt.h"
#include "vmm/run_state.h"
#include "vmm/timing.h"
#include "vmm/vcpu_pause.h"

#define VM_MAX_VCPUS 64u

/* Unhandled port and MMIO accesses each vCPU logs before going quiet. */
#define VCPU_UNHANDLED_LOG_BUDGET 16u

/* What a vCPU shares with its VM (all owned by the VM). */
struct vcpu_links {
	int kvm_fd;
	int vm_fd;
	const struct guest_mem *mem;
	struct run_state *run_state;
	struct vcpu_pause *pause;
	struct vm_timing *timing;
	const struct exit_table *exit_table;   /* complete before vcpu_start */
};

struct vcpu {
	unsigned index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	uint64_t exits;              /* exits handled by kvmini (this thread only) */
	unsigned unhandled_budget;   /* unhandled accesses still logged (this thread only) */
	struct guest_virt virt;      /* guest-virtual access through this vCPU's page tables */
	struct run_state *run_state; /* the VM's */
	struct vcpu_pause *pause;    /* the VM's */
	struct vm_timing *timing;    /* the VM's */
	const struct exit_table *exit_table;
};

/* KVM_CREATE_VCPU @index and map its kvm_run. 0 or -errno, logged. */
int vcpu_create(struct vcpu *v, unsigned index, const struct vcpu_links *links);
void vcpu_destroy(struct vcpu *v);

/* Make the kick signal interrupt KVM_RUN in every thread started after
 * this (main thread, before the first vcpu_start). 0 or -errno. */
int vcpu_install_kick(void);

/* Start @v's thread. 0 or -errno. */
int vcpu_start(struct vcpu *v);
/* Get a started vCPU out of KVM_RUN (its run state says stop already). */
void vcpu_kick(struct vcpu *v);
/* Wait for a started vCPU's thread to end. */
void vcpu_join(struct vcpu *v);

#endif
