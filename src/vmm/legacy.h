/*
 * The few legacy PC ports a microVM guest touches that KVM does not model
 * in the kernel (KVM has the PIC, PIT, speaker port 0x61, IOAPIC, LAPIC):
 *
 *  - i8042 (0x60, 0x64, IRQ 1): a minimal keyboard controller (i8042.h)
 *    that Linux's drivers find, which takes Ctrl+Alt+Del from the API.
 *    Command 0xfe is how Linux reboots (reboot=k): it ends the VM with
 *    status 0.
 *  - debug exit (0x501, 0x502), always present, QEMU's isa-debug-exit: a
 *    write of v ends the VM with exit status (v << 1) | 1 (low 8 bits).
 *  - boot marker (0x3f0): a write of 123 from the guest's init marks "time
 *    to userspace" for --boot-timing (Firecracker's port and value).
 *  - CMOS RTC (0x70, 0x71): the host's UTC time in BCD, 24-hour mode, never
 *    "update in progress", plus the rest of the 128 bytes of CMOS RAM.
 *  - POST / delay ports (0x80, 0xed): writes are ignored quietly.
 *
 * Accesses come from vCPU threads; the RTC index register and the i8042
 * are each behind a lock.
 */
#ifndef KVMINI_VMM_LEGACY_H
#define KVMINI_VMM_LEGACY_H

#include <pthread.h>
#include <stdint.h>

#include "core/state_io.h"
#include "vmm/i8042.h"
#include "vmm/io_bus.h"
#include "vmm/vm.h"

struct legacy_devices {
	struct vm *vm;
	struct io_handler i8042_data, i8042_cmd, debug_exit, rtc, post, delay, boot_marker;
	uint64_t boot_marker_ignored;    /* marker writes of another value or width (atomic) */
	pthread_mutex_t rtc_lock;
	uint8_t rtc_index;           /* @rtc_lock */
	uint8_t cmos[128];           /* @rtc_lock */
	pthread_mutex_t i8042_lock;
	struct i8042 kbd;            /* @i8042_lock */
};

int legacy_init(struct legacy_devices *l, struct vm *vm);
void legacy_destroy(struct legacy_devices *l);

/* Queue Ctrl+Alt+Del on the keyboard and raise IRQ 1 (any thread):
 * 0, or -ENOSPC when the controller's buffer has no room for it. */
int legacy_ctrl_alt_del(struct legacy_devices *l);

/* Snapshot state, section "CMOS": the RTC index and the CMOS RAM (the clock
 * registers always read the host's time); then "I8K2", the i8042 (absent
 * from older snapshots: power-on state). Load: 0, or -EINVAL with why in
 * @r and nothing changed. */
void legacy_state_save(struct legacy_devices *l, struct state_writer *w);
int legacy_state_load(struct legacy_devices *l, struct state_reader *r);

#endif
