#!/bin/bash
# bench/kvm_smoke.sh: the KVM benchmark smoke run (scripts/test.sh runs it
# where /dev/kvm exists and on the nested platform, tests/nested/run.sh):
# build/bench/boot_vs_qemu beside QEMU's microvm, first with its freestanding
# guest (time to first instruction), then with Debian's cloud kernel and the
# stock guest's initramfs (time to userspace), with all the figures printed;
# then bench/snapshot_restore.sh (a snapshot of that guest restored, beside
# its cold boot), bench/nested_iperf.sh (iperf3 through that guest's
# virtio-net on a tap: kvmini with and without offloads, QEMU's vhost-net;
# 2 rounds x 5 s per path and direction) and bench/nested_blk.sh (4 KiB
# block I/O through its virtio-blk, kvmini beside QEMU's virtio-blk-pci;
# 2 rounds x 3 s per mode) and bench/nested_dax.sh (a 256 MiB read through
# virtio-fs with dax=always beside the default mode, same guest, 3 rounds).
#
# A benchmark is no test assertion: a run that completes prints a
# "BENCH: ..." line (a missed target is in the figures, not a failure); a
# VMM that does not boot is "FAIL: bench ..." and exit 1; without /dev/kvm
# or QEMU, "SKIP: reason" and exit 0.
#
# Env: BENCH_RUNS  runs per VMM (default 3, as --quick); for a full run, e.g.
#                  BENCH_RUNS=11 tests/nested/run.sh --timeout 2400 -- bash bench/kvm_smoke.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

BIN=build/bench/boot_vs_qemu
RUNS=${BENCH_RUNS:-3}
QEMU=qemu-system-x86_64

[ -e /dev/kvm ] || { echo "SKIP: bench boot_vs_qemu: no /dev/kvm"; exit 0; }
command -v "$QEMU" >/dev/null || { echo "SKIP: bench boot_vs_qemu: no $QEMU"; exit 0; }
[ -x "$BIN" ] && [ -x build/kvmini ] ||
	{ echo "FAIL: bench boot_vs_qemu: $BIN or build/kvmini not built (make build/kvmini bench)"; exit 1; }
case $RUNS in
'' | *[!0-9]*) echo "FAIL: bench boot_vs_qemu: BENCH_RUNS=$RUNS is not a number"; exit 1 ;;
esac
if [ -n "${BENCH_RUNS:-}" ]; then RUN_ARGS=(--runs "$RUNS"); else RUN_ARGS=(--quick); fi
# A kvm_pvm host: QEMU's KVM set-up fails there (it cannot set MSR 0x10a,
# IA32_ARCH_CAPABILITIES) and Linux guest code is emulated (minutes per
# boot), so the comparisons run on the nested platform; what this host's
# own /dev/kvm can measure is the restore (bench/restore_test_guest.sh).
if [ -e /sys/module/kvm_pvm ]; then
	echo "SKIP: bench boot_vs_qemu: kvm_pvm host (QEMU cannot set MSR 0x10a under kvm_pvm; Linux boots take minutes): the nested platform runs it"
	echo "SKIP: bench snapshot_restore, nested_iperf, nested_blk and nested_dax: kvm_pvm host (they boot Debian's kernel and QEMU): the nested platform runs them"
	exec bash bench/restore_test_guest.sh
fi

# bench WHAT ARG...: boot_vs_qemu with ARG, its output relayed; one BENCH:,
# SKIP: or FAIL: line after it. Returns its status.
bench() {
	local what=$1 out rc
	shift
	out=$(mktemp)
	"$BIN" "${RUN_ARGS[@]}" "$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: bench boot_vs_qemu $what (exit $rc: a VMM did not boot, see above)"
	elif ! grep -q '^SKIP: ' "$out"; then
		echo "BENCH: boot_vs_qemu $what ran ($RUNS runs per VMM)"
	fi
	rm -f "$out"
	return "$rc"
}

bench "first instruction" || exit 1

. tests/nested/lib.sh
if ! stock_kernel; then
	echo "FAIL: bench boot_vs_qemu stock kernel: no Debian cloud kernel (see above)"
	exit 1
fi
if ! stock_guest_initrd build/stock-guest/initramfs.gz; then
	echo "FAIL: bench boot_vs_qemu stock kernel: building build/stock-guest/initramfs.gz failed"
	exit 1
fi
bench "stock kernel to userspace" --linux "$STOCK_DIR/vmlinuz" \
	--initrd build/stock-guest/initramfs.gz || exit 1

# Snapshot and restore of the same stock guest (its own BENCH:/FAIL: line).
BENCH_RUNS=$RUNS bash bench/snapshot_restore.sh || exit 1

# iperf3 through the same guest's virtio-net (its own BENCH:/FAIL:/SKIP:
# lines): two rounds (IPERF_RUNS), whatever BENCH_RUNS says, to keep its time small.
BENCH_RUNS=${IPERF_RUNS:-2} bash bench/nested_iperf.sh || exit 1

# 4 KiB block I/O through the same kernel's virtio-blk, kvmini beside QEMU
# (its own lines): two rounds (BLK_RUNS) of 3 s per mode, as iperf's.
BENCH_RUNS=${BLK_RUNS:-2} bash bench/nested_blk.sh || exit 1

# A 256 MiB read through virtio-fs, dax=always beside the default mode in
# one guest (its own lines): three rounds (DAX_RUNS) for medians of 3.
BENCH_RUNS=${DAX_RUNS:-3} bash bench/nested_dax.sh || exit 1
