#!/bin/bash
# kvmini run on KVM with the project's own freestanding test guest
# (tests/kvm/guest): boot, console, exits, the virtio-mmio register rules,
# loopback net frames with interrupts, NEEDS_RESET, and kvmini's errors.
#
# Prints one PASS:/FAIL: line per case, and relays the guest's own
# PASS:/FAIL: lines. Skips (exit 0, one SKIP line) only when /dev/kvm is
# absent. Knobs: KVMINI (binary, default build/kvmini-san), KVM_TEST_TIMEOUT
# (seconds per run, default 60), KVM_TEST_LINUX (a kernel to boot as well,
# see the end).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

KVMINI=${KVMINI:-build/kvmini-san}
LIMIT=${KVM_TEST_TIMEOUT:-60}
LOGDIR=build/test-logs/kvm
FAILS=0

if [ ! -e /dev/kvm ]; then
	echo "SKIP: kvm: /dev/kvm is absent on this host; kvmini run cannot be tested"
	exit 0
fi
mkdir -p "$LOGDIR"
if [ ! -x "$KVMINI" ]; then
	make -j2 "$KVMINI" >"$LOGDIR/build.log" 2>&1 || { echo "FAIL: kvm: building $KVMINI"; exit 1; }
fi
if ! GUEST=$(tests/kvm/build_guest.sh 2>"$LOGDIR/guest-build.log"); then
	echo "FAIL: kvm: building the test guest (log $LOGDIR/guest-build.log)"
	exit 1
fi

pass() { echo "PASS: kvm $1"; }
fail() { echo "FAIL: kvm $1"; FAILS=$((FAILS + 1)); }

# run NAME INPUT -- ARGS...: run kvmini with INPUT on stdin; sets OUT (stdout),
# ERR (stderr), RC. The guest's PASS:/FAIL: lines are relayed (not with PROBE=1).
run() {
	local name=$1 input=$2
	LAST=$name
	shift 3
	printf '%s' "$input" | timeout -k 5 "$LIMIT" "$KVMINI" run "$@" \
		>"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err"
	RC=$?
	OUT=$(tr -d '\r' <"$LOGDIR/$name.out")
	ERR=$(cat "$LOGDIR/$name.err")
	if [ -z "${PROBE:-}" ]; then
		grep -E '^(PASS|FAIL): ' <<<"$OUT" || true
		grep -q '^FAIL: ' <<<"$OUT" && FAILS=$((FAILS + 1))
	fi
	if grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' <<<"$ERR"; then
		fail "$name: sanitizer report (log $LOGDIR/$name.err)"
	fi
}

# expect NAME STATUS PATTERN: the last run ended with STATUS and PATTERN
# (extended regex) is in its stdout or stderr.
expect() {
	local name=$1 status=$2 pattern=$3
	if [ "$RC" -eq "$status" ] && grep -qE -- "$pattern" <<<"$OUT$ERR"; then
		pass "$name"
	else
		fail "$name (exit $RC, wanted $status and /$pattern/; logs $LOGDIR/$LAST.{out,err})"
		tail -n 5 "$LOGDIR/$LAST.err" | sed 's/^/    /'
	fi
}

guest() { run "$1" "${3:-}" -- --kernel "$GUEST" --cmdline "test=$2" "${@:4}"; }

# --- boot, console, ways of ending ------------------------------------------

guest hello hello "" --boot-timing
expect "hello: console output, i8042 reboot ends with 0" 0 'hello from the kvmini test guest'
expect "hello: reboot reported" 0 'guest rebooted \(i8042 reset\)'
first=$(grep -oE 'first guest instruction +[0-9.]+ ms' <<<"$ERR" | grep -oE '[0-9.]+ ms')
[ -n "$first" ] && pass "boot timing: first guest instruction after $first" ||
	fail "boot timing: no first-instruction figure"

guest exit exit ""
expect "debug exit port sets the status" 42 'debug exit port'

guest fault fault ""
expect "triple fault ends the VM with 3, reported" 3 'triple fault'

guest emulation emulation ""
if [ "$RC" -eq 0 ] && grep -q 'ran natively' <<<"$OUT"; then
	pass "emulation failure: popcnt runs natively on this host (nothing to report)"
else
	expect "emulation failure reported with RIP and instruction bytes" 4 \
		'RIP 0x[0-9a-f]+, instruction bytes: f3 48 0f b8'
fi

guest smp hello "" --cpus 2
expect "two vCPUs: boot vCPU runs, the other waits for SIPI" 0 'hello from the kvmini test guest'

guest highmem hello "" --mem 4100
expect "memory above 4 GiB (two RAM regions)" 0 'hello from the kvmini test guest'

# The boot protocol: zero page, e820, command line, initramfs; as an ELF,
# as a bzImage entered at its 64-bit entry point, and as a bzImage whose
# payload kvmini unpacks on the host.
BZIMAGE=${GUEST%.elf}.bzImage
initrd=$LOGDIR/initrd.bin
{ printf 'KVMINI-INITRD'; head -c 100000 /dev/zero; } >"$initrd"
ilen=$(stat -c %s "$initrd")
for kind in elf bzimage unpacked; do
	case $kind in
	elf) image=$GUEST; extra=() ;;
	bzimage) image=$BZIMAGE; extra=() ;;
	unpacked) image=$BZIMAGE; extra=(--host-decompress) ;;
	esac
	run "boot-$kind" "" -- --kernel "$image" --mem 96 --initrd "$initrd" \
		--cmdline "test=bootparams mem_mib=96 initrd_len=$ilen" "${extra[@]}"
	expect "boot protocol ($kind): zero page, e820, initrd (guest checks)" 0 \
		'bootparams: done \(0 failures\)'
done
cp "${GUEST%.elf}.bin" "$LOGDIR/flat.bin"
run bad-unpack "" -- --kernel "$LOGDIR/flat.bin" --host-decompress
expect "--host-decompress of something that is no bzImage: clear error" 1 'not a bzImage|neither'

# User mode. The probe (no --compat) says whether this KVM takes guest
# SYSCALL and INT n from CPL3 to the guest kernel by itself (kvm_pvm does
# not: SYSCALL stays in CPL3 and faults at LSTAR, INT n raises #UD). With
# --compat kvmini relays them (src/vmm/user_relay.h): that must pass here.
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
fi

# Input arrives before the guest listens, and is longer than the 16-byte
# FIFO: nothing may be lost.
line="the quick brown fox jumps over the lazy dog 0123456789"
guest uart uart "$line"$'\n'
expect "uart: a 56-byte line echoed through RX interrupts" 0 "echo: $line\$"

# --- virtio-mmio ----------------------------------------------------------------

guest features features "" --net loopback
expect "virtio-mmio register rules (guest checks)" 0 'features: done \(0 failures\)'

guest net net "" --net loopback --counters
expect "net: loopback frames and interrupts (guest checks)" 0 'net: done \(0 failures\)'
expect "net: counters: 6 frames each way" 0 'rx_packets 6'
kicks=$(grep -oE '^mmio_rx_kicks [0-9]+' <<<"$ERR" | grep -oE '[0-9]+$')
exits=$(grep -oE '^mmio_rx_notify_exits [0-9]+' <<<"$ERR" | grep -oE '[0-9]+$')
if [ "${kicks:-0}" -gt 0 ] && [ "${exits:-1}" -eq 0 ]; then
	pass "net: $kicks kicks, all through ioeventfds (no QueueNotify exits)"
else
	fail "net: kicks ${kicks:-?}, QueueNotify exits ${exits:-?}"
fi

guest poison poison "" --net loopback --counters
expect "poisoned queue: NEEDS_RESET, config interrupt, reset recovers (guest checks)" 0 \
	'poison: done \(0 failures\)'
expect "poisoned queue counted" 0 'avail_index_invalid 1'

share=$(mktemp -d)
trap 'rm -rf "$share"' EXIT
printf 'hello from the host, through virtio-fs\n' >"$share/hello.txt"
guest fs fs "" --fs "$share:kvmtest"
expect "virtio-fs: FUSE INIT, LOOKUP, OPEN, READ of a host file (guest checks)" 0 \
	'fs: done \(0 failures\)'

# --- operator errors ----------------------------------------------------------------

KVMINI_GUEST_DIR=$LOGDIR/no-guest run no-kernel "" -- --mem 64
expect "no --kernel and no default guest: says to run scripts/build-guest.sh" 2 \
	'no default guest kernel at .*scripts/build-guest.sh'
run kernel-missing "" -- --kernel /nonexistent/vmlinux
expect "nonexistent kernel file: usage error" 2 '/nonexistent/vmlinux: No such file'
run bad-mem "" -- --kernel "$GUEST" --mem 12x
expect "bad --mem: usage error" 2 '--mem: "12x" is not a number'
run bad-cpus "" -- --kernel "$GUEST" --cpus 0
expect "bad --cpus: usage error" 2 '--cpus: "0" is not a number'
printf 'not a kernel\n' >"$LOGDIR/not-a-kernel"
run bad-kernel "" -- --kernel "$LOGDIR/not-a-kernel"
expect "a file that is no kernel: clear error" 1 'neither an ELF vmlinux nor a bzImage'
run bad-net "" -- --kernel "$GUEST" --net frob
expect "unknown --net backend: clear error" 1 '--net frob'
run bad-fs "" -- --kernel "$GUEST" --fs /nonexistent/dir:tag
expect "--fs with a missing directory: usage error" 2 'is not a directory'
run bad-fs-tag "" -- --kernel "$GUEST" --fs "$share"
expect "--fs without a tag: usage error" 2 'expected DIR:TAG'
run help "" -- --help
expect "--help" 0 'usage: kvmini run \[--kernel FILE\]'

# --- a Linux kernel (opt-in: minutes where guest kernel code is emulated) ----
# KVM_TEST_LINUX=path/to/vmlinux-or-bzImage boots it with --compat, one
# virtio-net (loopback) device and a busybox initramfs whose /init prints
# INIT-OK and reboots.
if [ -n "${KVM_TEST_LINUX:-}" ]; then
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
fi

echo "kvm: $FAILS failed"
[ "$FAILS" -eq 0 ]
