/*
 * Compatibility mode (`kvmini run --compat`), for hosts where KVM emulates
 * guest kernel code (nested PVM, ENVIRONMENT.md): KVM cannot emulate every
 * instruction a stock kernel uses. With it, kvmini clears CPUID.1:ECX.CX16
 * (cpu.c), and when emulation fails on an int3 it steps over it and injects
 * #BP (what the CPU would have done), and on an fwait it steps over it
 * (step_over.h). Opt-in: it hides a real emulation failure of those two
 * instructions. Where /dev/kvm is kvm_pvm it also relays SYSCALL and INT n
 * from guest user mode to the guest kernel (user_relay.h), without which
 * Linux userspace cannot run. Both plug into the VM's exit table; nothing
 * outside vmm/compat/ knows them.
 */
#ifndef KVMINI_VMM_COMPAT_COMPAT_H
#define KVMINI_VMM_COMPAT_COMPAT_H

#include <stdbool.h>
#include <stdio.h>

#include "vmm/compat/step_over.h"
#include "vmm/compat/user_relay.h"
#include "vmm/exit_table.h"

/* Appended to the guest's command line in compat mode: features KVM's
 * emulator lacks, hidden from Linux. */
#define VM_COMPAT_CMDLINE "noxsave clearcpuid=smap,fsgsbase,xsave,popcnt,aes,pclmulqdq," \
	"sha_ni,sse4_2,sse4_1,ssse3,movbe,rdseed,gfni,bmi1,bmi2,adx"

struct compat {
	bool enabled;                /* --compat */
	bool user_relay;             /* enabled, on kvm_pvm: the relay runs */
	struct step_over step_over;
	struct user_relay relay;
};

/* With @enabled, register the workarounds on @t (after the VM's own exit
 * handlers) and, on kvm_pvm, set up the relay on @vm_fd. Without, nothing.
 * Returns 0 or -errno (logged). */
int compat_init(struct compat *c, bool enabled, int vm_fd, struct exit_table *t);

/* The workarounds' counters, for --counters and SIGUSR1 (nothing when off). */
void compat_dump_counters(const struct compat *c, FILE *out);

#endif
