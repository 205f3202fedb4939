#!/bin/bash
# Ctrl+Alt+Del into a Linux kernel (opt-in, as test_linux.sh: minutes where
# guest kernel code is emulated). KVM_TEST_LINUX=path/to/kernel boots with
# no i8042.* argument and no initramfs, waiting for a root device that never
# comes (rootwait: the kernel idles with its workqueues running, and needs
# no userspace, which this host cannot run). Once atkbd has the keyboard,
# PUT /actions SendCtrlAltDel reaches the kernel's keyboard handler, which
# (Ctrl+Alt+Del not disabled by an init) restarts through the i8042 reset
# line: kvmini ends with 0. A kernel without CONFIG_SERIO_I8042 (the
# project's own guest/kernel.config) cannot take the keys: INFO, not FAIL.
. "$(dirname "$0")/lib.sh"

[ -n "${KVM_TEST_LINUX:-}" ] || kvm_end
command -v curl >/dev/null || { echo "SKIP: kvm linux-cad: curl is not installed"; kvm_end; }
limit=${KVM_TEST_LINUX_TIMEOUT:-900}
api=$LOGDIR/linux-cad.sock
rm -f "$api"
LIMIT=$limit run_bg linux-cad --kernel "$KVM_TEST_LINUX" --compat --host-decompress \
	--api-sock "$api" --cmdline "console=ttyS0 reboot=k panic=-1 pci=off root=/dev/vdz rootwait"
keyboard='input: AT (Raw|Translated) Set 2 keyboard'
for _ in $(seq "$limit"); do
	grep -qE "$keyboard|Waiting for root device" "$LOGDIR/linux-cad.out" 2>/dev/null && break
	kill -0 "$VM" 2>/dev/null || break
	sleep 1
done
# atkbd attaches from a workqueue: give it the time to catch up.
for _ in $(seq 120); do
	grep -qE "$keyboard" "$LOGDIR/linux-cad.out" && break
	sleep 1
done
if ! grep -qE "$keyboard" "$LOGDIR/linux-cad.out"; then
	echo "INFO: kvm linux-cad: no keyboard attached (no CONFIG_SERIO_I8042 or CONFIG_KEYBOARD_ATKBD?)"
	kill "$VM" 2>/dev/null
	collect_bg
	kvm_end
fi
OUT=$(tr -d '\r' <"$LOGDIR/linux-cad.out")
ERR=
RC=0
# The IRQ Linux prints is its own number: a hardware-reduced ACPI kernel has
# no legacy PIC range, so GSI 1 gets a dynamic one (25 on Debian's 6.1).
expect "linux-cad: the i8042 driver found the controller from the DSDT (no i8042.* arguments)" 0 \
	'i8042: PNP: PS/2 Controller \[PNP0303:PS2K\] at 0x60,0x64'
expect "linux-cad: atkbd took the keyboard" 0 "$keyboard"
api_put "$api" /actions '{"action_type":"SendCtrlAltDel"}'
[ "$CODE" = 204 ] && pass "linux-cad: SendCtrlAltDel answers 204" ||
	fail "linux-cad: SendCtrlAltDel answered $CODE $BODY"
collect_bg
expect "linux-cad: Ctrl+Alt+Del restarted the kernel through the i8042 reset line" 0 \
	'guest rebooted \(i8042 reset\)'
kvm_end
