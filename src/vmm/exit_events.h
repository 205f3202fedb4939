/*
 * The exits that are events of the guest's run rather than device
 * accesses: a halt or an interrupted KVM_RUN (the guest goes on), a triple
 * fault, a power event, a failed entry and a KVM internal error (the run
 * ends, with a report naming the vCPU, the RIP and the instruction bytes).
 */
#ifndef KVMINI_VMM_EXIT_EVENTS_H
#define KVMINI_VMM_EXIT_EVENTS_H

#include <stdint.h>

#include "vmm/exit_table.h"

struct vcpu;

/* Longest x86 instruction. */
#define EXIT_INSN_MAX 15u

/* Register the handlers on @t. 0 or -errno. */
int exit_events_init(struct exit_table *t);

/*
 * The instruction a KVM_EXIT_INTERNAL_ERROR of @v stopped at, RIP @rip:
 * the bytes KVM reports with an emulation failure, else as many of
 * EXIT_INSN_MAX bytes as are mapped at @rip. Returns how many (0: none).
 * vCPU thread.
 */
unsigned exit_failed_insn(struct vcpu *v, uint64_t rip, uint8_t out[EXIT_INSN_MAX + 1]);

#endif
