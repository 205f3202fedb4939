/*
 * User-mode event relay (compat mode, on "PVM" hosts).
 *
 * Where /dev/kvm is kvm_pvm running a non-PVM guest, guest user mode (CPL3)
 * runs natively but two ways into the guest kernel are broken (measured with
 * tests/kvm/guest, `usermode` tests):
 *  - SYSCALL from CPL3 sets RCX, R11 and RIP = LSTAR but leaves CS/SS at the
 *    user selectors and RFLAGS unmasked: the kernel's entry code then runs in
 *    user mode, where Linux's entry_SYSCALL_64 (a supervisor page) faults
 *    with #PF at RIP == LSTAR, and user processes die of SIGSEGV;
 *  - INT n (n != 3) from CPL3 raises #UD at the INT instruction.
 * Exceptions from CPL3 (#PF, #GP, #UD, #BP) do reach the guest's IDT
 * handlers at CPL0, and KVM's hardware breakpoints and single-step work
 * where guest kernel code runs (emulated).
 *
 * The relay uses that: kvmini keeps hardware breakpoints (KVM_SET_GUEST_DEBUG,
 * invisible to the guest) on the guest's #PF and #UD handlers, re-armed when
 * the guest writes LSTAR (an MSR filter sends that write to kvmini). When
 * the #PF handler is entered with a user frame whose RIP is LSTAR, kvmini
 * turns the vCPU into the state a SYSCALL would have made (CS/SS from STAR,
 * RFLAGS masked with SFMASK, R11 the user's RFLAGS, the user's RSP, RIP =
 * LSTAR at CPL0). When the #UD handler is entered for an `int n` from user
 * mode whose gate allows CPL3, kvmini delivers vector n instead. Any other
 * hit steps one instruction with the breakpoints off and re-arms them.
 * The cost: two exits per guest page fault, and the guest's own hardware
 * breakpoints (DR0-DR7) do not work while the relay holds them.
 *
 * It plugs into the exit table (exit_table.h) on KVM_EXIT_X86_WRMSR and
 * KVM_EXIT_DEBUG, which reach kvmini only because of it.
 */
#ifndef KVMINI_VMM_COMPAT_USER_RELAY_H
#define KVMINI_VMM_COMPAT_USER_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/exit_table.h"
#include "vmm/vcpu.h"

/* Per-vCPU state of the relay (that vCPU's thread only). */
struct user_relay_vcpu {
	uint64_t pf_handler;         /* breakpoint 0: the guest's #PF handler (0: none) */
	uint64_t ud_handler;         /* breakpoint 1: the guest's #UD handler (0: none) */
	bool stepping;               /* breakpoints off for one instruction */
};

struct user_relay {
	struct exit_handler wrmsr_exit, debug_exit;
	uint64_t syscalls;           /* SYSCALLs from user mode relayed (atomic) */
	uint64_t ints;               /* INT n from user mode relayed (atomic) */
	uint64_t passes;             /* handler breakpoints that were no relay (atomic) */
	struct user_relay_vcpu vcpus[VM_MAX_VCPUS];   /* by vCPU index */
};

/* Whether this host needs the relay: /dev/kvm is kvm_pvm. */
bool user_relay_host_needs(void);

/* Send guest writes of LSTAR to kvmini (an MSR filter on @vm_fd) and
 * register the relay's exits on @t. Returns 0 or -errno (logged). */
int user_relay_init(struct user_relay *ur, int vm_fd, struct exit_table *t);

#endif
