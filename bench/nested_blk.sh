#!/bin/bash
# bench/nested_blk.sh: 4 KiB block I/O of Debian's stock cloud kernel (1 vCPU,
# 256 MiB) on one raw image, through two VMMs measured in the same run,
# interleaved (each round takes them in turn, every second round in reverse
# order):
#   kvmini  `kvmini run --drive IMG` (virtio-blk on virtio-mmio, found through
#           the DSDT; the image read and written through the host's page
#           cache by kvmini's worker)
#   qemu    qemu-system-x86_64 -accel kvm, microvm with PCIe, virtio-blk-pci
#           on `-drive file=IMG,format=raw` (QEMU's defaults: writeback cache,
#           thread-pool AIO; MSI-X, so no interrupt status to read)
#   qemu-mmio  the same QEMU with virtio-blk-device on microvm's virtio-mmio
#           (kvmini's transport: the device compared, transport alike)
# Each boot runs sequential read, sequential write, random read and random
# write, SECS seconds each: one 4 KiB O_DIRECT request at a time (the
# guest's page cache bypassed: the device path is measured) over the image's
# first 64 MiB (guest/blkbench.c, kvmini-blkbench, in the initramfs with the
# stock guest's modules and virtio-pci's for QEMU), then powers off. Prints
# the medians in IOPS, every run's figure and the ratios of kvmini to each
# QEMU; the target (the Firecracker drop-in issue) is at least 1.0x in each
# mode.
#
# Run where /dev/kvm exists, as root; on the nested platform (QEMU's TCG)
# the figures are small and the ratios are what matter:
#   tests/nested/run.sh --timeout 900 -- bash bench/nested_blk.sh
# A benchmark, not a test: a completed run prints "BENCH: ..."; a guest that
# does not boot or gives no figure is "FAIL: bench ..." (exit 1); without
# /dev/kvm, root or QEMU, "SKIP: ..." and exit 0 (without QEMU, kvmini's
# figures are still measured).
#
# Env: BENCH_RUNS   rounds (default 2)
#      BLK_SECS     seconds per mode (default 3)
#      BLK_TIMEOUT  seconds per boot (default 240)
#      KVMINI       default build/kvmini
#      BLK_QEMU     default qemu-system-x86_64
#      BLK_LOG      where each boot's console (.out) and VMM stderr (.err)
#                   are kept (default build/test-logs/nested-blk)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

KVMINI=${KVMINI:-build/kvmini}
RUNS=${BENCH_RUNS:-2}
SECS=${BLK_SECS:-3}
LIMIT=${BLK_TIMEOUT:-240}
QEMU=${BLK_QEMU:-qemu-system-x86_64}
NAME="bench nested_blk"
MODES="read write randread randwrite"
WORK=${BLK_LOG:-build/test-logs/nested-blk}
INITRD=$WORK/initramfs.gz

. tests/nested/lib.sh
nested_bench_need_kvm "QEMU cannot start"
nested_bench_ready RUNS SECS LIMIT
rm -rf "$WORK"
mkdir -p "$WORK" || { echo "FAIL: $NAME: cannot make $WORK"; exit 1; }
VM_PID=
cleanup() {
	nested_bench_kill
	rm -f "$WORK/disk.img"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. bench/stats.sh

# --- the guest: its /init runs the four modes on /dev/vda and powers off ---------
{ nested_bench_init_head; cat <<'EOF'; } >"$WORK/init"
secs=1
for w in $(cat /proc/cmdline); do case $w in nb.secs=*) secs=${w#*=} ;; esac; done
echo "blk-guest: userspace up $(cut -d' ' -f1 /proc/uptime) s after boot, /dev/vda $(cat /sys/block/vda/size 2>/dev/null) sectors"
for mode in read write randread randwrite; do
	out=$(kvmini-blkbench "$mode" /dev/vda "$secs" 64 2>&1)
	echo "$out" | sed 's/^/blk-out: /'
	iops=$(echo "$out" | sed -n 's/^blkbench: .* iops \([0-9]*\) .*/\1/p')
	echo "blk-result: $mode ${iops:-failed}"
done
poweroff -f
EOF
GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mmio virtio_blk"
bins=$(guest_tools build/stock-guest blkbench) || { echo "FAIL: $NAME: building the guest's kvmini-blkbench"; exit 1; }
INITRD_BINS=$bins busybox_initrd "$INITRD" "$WORK/init" "$GUEST_MODULES" dev proc sys tmp ||
	{ echo "FAIL: $NAME: building $INITRD"; exit 1; }
APPEND="console=ttyS0 reboot=k panic=-1 quiet nb.secs=$SECS"
# 64 MiB the guest uses, allocated: reads come from the host's page cache
# for both VMMs alike after the first pass.
head -c 64M /dev/zero >"$WORK/disk.img" || { echo "FAIL: $NAME: cannot write $WORK/disk.img"; exit 1; }

VMMS="kvmini qemu qemu-mmio"
command -v "$QEMU" >/dev/null || { echo "SKIP: $NAME: QEMU: $QEMU is not installed; kvmini only"; VMMS=kvmini; }
# QEMU's virtio-pci and virtio-mmio drivers are modules of this kernel.

# boot VMM ROUND: one guest on VMM, its four modes; figures appended to
# $WORK/VMM.MODE. Status 1 when the guest gave no figures.
boot() {
	local vmm=$1 round=$2 out=$WORK/$1-$2 argv mode v
	case $vmm in
	kvmini)
		argv=("$KVMINI" run --kernel "$STOCK_DIR/vmlinuz" --initrd "$INITRD" --cpus 1 --mem 256
			--drive "$WORK/disk.img,id=bench" --counters --cmdline "$APPEND pci=off") ;;
	qemu | qemu-mmio)
		local machine=microvm,rtc=on,pcie=on device=virtio-blk-pci
		[ "$vmm" = qemu-mmio ] && machine=microvm,rtc=on device=virtio-blk-device
		argv=("$QEMU" -M "$machine" -accel kvm -cpu host -smp 1 -m 256M -nodefaults
			-no-user-config -display none -serial stdio -no-reboot
			-kernel "$STOCK_DIR/vmlinuz" -initrd "$INITRD" -append "$APPEND"
			-drive "file=$WORK/disk.img,format=raw,if=none,id=d0" -device "$device,drive=d0") ;;
	esac
	nested_bench_boot "$out" "${argv[@]}"
	echo "  round $round $vmm: $BOOTED:" \
		"$(grep -oE 'blk-result: .*' "$out.out" | sed 's/blk-result: //' | tr -d '\r' | tr '\n' ' ')"
	for mode in $MODES; do
		v=$(sed -n "s/^blk-result: $mode \([0-9]*\)\r*$/\1/p" "$out.out")
		[ -n "$v" ] || {
			echo "FAIL: $NAME: $vmm round $round: no $mode figure; the console's and the VMM's last lines:"
			tr -d '\r' <"$out.out" | tail -n 8 | sed 's/^/    /'
			tail -n 4 "$out.err" | sed 's/^/    /'
			return 1
		}
		echo "$v" >>"$WORK/$vmm.$mode"
	done
}

echo "4 KiB O_DIRECT I/O, one request at a time, stock kernel $(cat "$STOCK_DIR/package"), 1 vCPU, $RUNS rounds x $SECS s per VMM and mode"
FAILED=0
for ((r = 1; r <= RUNS; r++)); do
	order=$VMMS
	[ $((r % 2)) = 0 ] && order=$(bench_reversed $VMMS)
	for vmm in $order; do boot "$vmm" "$r" || FAILED=1; done
done

med() { bench_median <"$WORK/$1.$2" 2>/dev/null; }
printf 'medians (IOPS) %10s %10s %10s %10s\n' $MODES
for vmm in $VMMS; do
	printf '%-14s %10s %10s %10s %10s    runs:' "$vmm" "$(med "$vmm" read)" "$(med "$vmm" write)" \
		"$(med "$vmm" randread)" "$(med "$vmm" randwrite)"
	for mode in $MODES; do printf ' %s [%s]' "$mode" "$(tr '\n' ' ' <"$WORK/$vmm.$mode" 2>/dev/null | sed 's/ $//')"; done
	echo
done
for q in qemu qemu-mmio; do
	[[ " $VMMS " == *" $q "* ]] || continue
	printf '%-14s %10s %10s %10s %10s    (target: >= 1.0 each)\n' "kvmini/$q" \
		"$(bench_ratio "$(med kvmini read)" "$(med $q read)")" "$(bench_ratio "$(med kvmini write)" "$(med $q write)")" \
		"$(bench_ratio "$(med kvmini randread)" "$(med $q randread)")" \
		"$(bench_ratio "$(med kvmini randwrite)" "$(med $q randwrite)")"
done
echo "kvmini's drive counters (round 1): $(grep -hE '^(rx_requests_read|rx_requests_write|rx_requests_malformed|rx_requests_out_of_range|tx_io_errors) ' "$WORK/kvmini-1.err" 2>/dev/null | tr '\n' ' ')"
if [ "$FAILED" != 0 ]; then
	echo "FAIL: $NAME: a guest gave no figures (see above)"
	exit 1
fi
echo "BENCH: nested_blk ran ($RUNS rounds x $SECS s per VMM and mode: $VMMS)"
