#!/bin/bash
# User mode. The probe (no --compat) says whether this KVM takes guest
# SYSCALL and INT n from CPL3 to the guest kernel by itself (kvm_pvm does
# not: SYSCALL stays in CPL3 and faults at LSTAR, INT n raises #UD). With
# --compat kvmini relays them (src/vmm/compat/user_relay.h): that must pass here.
. "$(dirname "$0")/lib.sh"

PROBE=1 guest usermode usermode ""
if [ "$RC" -eq 0 ]; then
	echo "INFO: kvm host: guest SYSCALL and INT n from user mode reach the guest kernel"
else
	echo "INFO: kvm host: guest SYSCALL from user mode does not reach CPL0 by itself" \
		"($(grep -oE 'exception [0-9]+ .*' <<<"$OUT" | head -n1)); --compat relays it"
fi
guest usermode-compat usermode "" --compat --counters
expect "user mode (--compat): SYSCALL/SYSRET, int \$0x80/IRET and a #PF from CPL3 (guest checks)" 0 \
	'usermode: done \(0 failures\)'
if grep -q '^compat_user_syscalls_relayed' <<<"$ERR"; then
	expect "user mode (--compat): kvmini relayed both SYSCALLs" 0 '^compat_user_syscalls_relayed 2$'
	expect "user mode (--compat): kvmini relayed the INT" 0 '^compat_user_ints_relayed 1$'
else
	echo "SKIP: kvm user mode (--compat) relay counts: the relay runs only on kvm_pvm hosts"
fi

kvm_end
