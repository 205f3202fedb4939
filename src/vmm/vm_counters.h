/*
 * The VM's own counters beside its devices' (core/counters.h), printed by
 * `kvmini run --counters`. rx: what the guest did (its port writes, the
 * instructions kvmini completes for it); tx: what kvmini sent it or out
 * of it. The fields they come from live in struct serial, struct
 * legacy_devices and struct vm; the caller copies them into these structs
 * (under the owner's rules) and visits the copy.
 */
#ifndef KVMINI_VMM_VM_COUNTERS_H
#define KVMINI_VMM_VM_COUNTERS_H

#include "core/counters.h"

#define VM_CONSOLE_COUNTERS(X) \
	X(tx_serial_bytes,        "bytes the guest sent through the UART to the console") \
	X(rx_serial_bytes,        "bytes of input the UART's receive FIFO took, loopback included")

#define VM_LEGACY_COUNTERS(X) \
	X(rx_boot_marker_ignored, "boot-marker port writes of another value or width, ignored")

/* --compat: instructions KVM could not emulate, completed by kvmini. */
#define VM_COMPAT_COUNTERS(X) \
	X(rx_compat_int3_stepped,  "int3 stepped over and #BP injected") \
	X(rx_compat_fwait_stepped, "fwait stepped over")

/* --compat's user-mode relay (vmm/user_relay.h). */
#define VM_RELAY_COUNTERS(X) \
	X(compat_user_syscalls_relayed,   "SYSCALLs from user mode relayed to the kernel's entry") \
	X(compat_user_ints_relayed,       "INT n from user mode relayed through the guest's IDT") \
	X(compat_relay_breakpoint_passes, "handler breakpoints hit that were no relay")

struct vm_console_counters {
	VM_CONSOLE_COUNTERS(COUNTER_FIELD)
};
struct vm_legacy_counters {
	VM_LEGACY_COUNTERS(COUNTER_FIELD)
};
struct vm_compat_counters {
	VM_COMPAT_COUNTERS(COUNTER_FIELD)
};
struct vm_relay_counters {
	VM_RELAY_COUNTERS(COUNTER_FIELD)
};

extern const struct counter_set vm_console_counter_set, vm_legacy_counter_set,
	vm_compat_counter_set, vm_relay_counter_set;

#endif
