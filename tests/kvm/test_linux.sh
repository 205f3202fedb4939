#!/bin/bash
# A Linux kernel (opt-in: minutes where guest kernel code is emulated).
# KVM_TEST_LINUX=path/to/vmlinux-or-bzImage boots it with --compat, one
# virtio-net (loopback) device and a busybox initramfs whose /init prints
# INIT-OK and reboots. Without it, nothing runs.
. "$(dirname "$0")/lib.sh"

[ -n "${KVM_TEST_LINUX:-}" ] || kvm_end
root=$LOGDIR/linux-root
rm -rf "$root"
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev"
cp /bin/busybox "$root/bin/"
ln -s busybox "$root/bin/sh"
printf '#!/bin/busybox sh\n/bin/busybox echo INIT-OK\n/bin/busybox reboot -f\n' >"$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null) >"$LOGDIR/linux-initrd.cpio"
LIMIT=${KVM_TEST_LINUX_TIMEOUT:-900} run linux "" -- --kernel "$KVM_TEST_LINUX" --compat \
	--initrd "$LOGDIR/linux-initrd.cpio" --net loopback --counters --boot-timing \
	--host-decompress --cmdline "console=ttyS0 reboot=k panic=-1 pci=off"
expect "linux: the 8250 driver finds a 16550A" 0 'ttyS0 at I/O 0x3f8 \(irq = 4.*is a 16550A'
expect "linux: virtio-mmio device from the command line" 0 'virtio-mmio: Registering device virtio-mmio.0 at 0xd0000000'
expect "linux: virtio-net driver activated the device" 0 '^mmio_device_activations 1$'
expect "linux: reached /init" 0 'Run /init as init process'
if grep -q INIT-OK <<<"$OUT"; then
	pass "linux: userspace ran /init and rebooted"
else
	echo "INFO: kvm linux: /init did not run ($(grep -oE 'init\[1\]: segfault.{0,40}' <<<"$OUT" | head -n1)); see the user-mode probe above"
fi
grep -E 'boot timing' <<<"$ERR" | sed 's/^/    /'

kvm_end
