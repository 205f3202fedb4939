#!/bin/bash
# bench/nested_dax.sh: a sequential read of a 256 MiB file the host holds in
# its page cache, by Debian's stock cloud kernel (1 vCPU, 512 MiB) through
# kvmini's virtio-fs, in the same guest two ways, interleaved (each round
# takes them in turn, every second round in reverse order):
#   dax      `mount -t virtiofs -o dax=always`: the file's 2 MiB ranges
#            mapped into the share's DAX window (`--fs DIR:TAG,dax=1G`, the
#            whole file fits) by FUSE_SETUPMAPPING, then read by the guest
#            straight from the host's page cache
#   default  `-o dax=never` on the same share: FUSE READ requests (cache=auto)
#            into the guest's page cache
# Each read is `dd bs=1M` of the whole file on a fresh mount (each mount is
# a new FUSE session, so the window starts empty), after the guest dropped
# its page cache; timed with /proc/uptime (10 ms). Prints MB/s per run, the
# medians and the ratio dax/default.
#
# Run where /dev/kvm exists, as root; on the nested platform (QEMU's TCG)
# the figures are TCG's and the ratio is what matters:
#   tests/nested/run.sh --timeout 900 -- bash bench/nested_dax.sh
# A benchmark, not a test: a completed run prints "BENCH: ..."; a guest that
# does not boot or gives no figure is "FAIL: bench ..." (exit 1); without
# /dev/kvm, root or a kernel with CONFIG_FUSE_DAX, "SKIP: ..." (exit 0).
#
# Env: BENCH_RUNS   rounds (default 3)
#      DAX_TIMEOUT  seconds for the boot (default 300)
#      KVMINI       default build/kvmini
#      DAX_LOG      where the console (.out) and kvmini's stderr (.err) are
#                   kept (default build/test-logs/nested-dax)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

KVMINI=${KVMINI:-build/kvmini}
RUNS=${BENCH_RUNS:-3}
LIMIT=${DAX_TIMEOUT:-300}
NAME="bench nested_dax"
WORK=${DAX_LOG:-build/test-logs/nested-dax}
INITRD=$WORK/initramfs.gz
SIZE_MIB=256

. tests/nested/lib.sh
nested_bench_need_kvm
nested_bench_ready RUNS
grep -q '^CONFIG_FUSE_DAX=y' "$STOCK_DIR/config" 2>/dev/null ||
	{ echo "SKIP: $NAME: the stock kernel has no CONFIG_FUSE_DAX"; exit 0; }
rm -rf "$WORK"
mkdir -p "$WORK" || { echo "FAIL: $NAME: cannot make $WORK"; exit 1; }
# The share in /tmp: a file system that maps MAP_SHARED (tmpfs in the
# nested platform's outer VM; the checkout may be a 9p mount there).
SHARE=$(mktemp -d /tmp/kvmini-bench-dax.XXXXXX) || { echo "FAIL: $NAME: no temporary directory"; exit 1; }
VM_PID=
cleanup() {
	nested_bench_kill
	rm -rf "$SHARE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. bench/stats.sh

# --- the guest: /init reads the file in each mode, RUNS rounds, powers off ------
{ nested_bench_init_head; cat <<'EOF'; } >"$WORK/init"
runs=3
for w in $(cat /proc/cmdline); do case $w in nd.runs=*) runs=${w#*=} ;; esac; done
now() { cut -d' ' -f1 /proc/uptime; }
mkdir -p /mnt/s
# read MODE ROUND: mount with dax=MODE, drop the page cache, time the read.
read_once() {
	opt=always
	[ "$1" = default ] && opt=never
	mount -t virtiofs -o dax=$opt share /mnt/s || { echo "dax-result: $1 $2 mount-failed"; return; }
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t0=$(now)
	dd if=/mnt/s/big.bin of=/dev/null bs=1M 2>/dev/null || echo "dax-out: $1 $2 read failed"
	t1=$(now)
	umount /mnt/s
	echo "dax-result: $1 $2 $t0 $t1"
}
echo "dax-guest: userspace up $(now) s after boot"
r=1
while [ "$r" -le "$runs" ]; do
	if [ $((r % 2)) = 1 ]; then read_once dax $r; read_once default $r
	else read_once default $r; read_once dax $r; fi
	r=$((r + 1))
done
echo "dax-guest: done"
poweroff -f
EOF
GUEST_MODULES="virtio_ring virtio virtio_mmio fuse virtiofs"
busybox_initrd "$INITRD" "$WORK/init" "$GUEST_MODULES" dev proc sys tmp mnt ||
	{ echo "FAIL: $NAME: building $INITRD"; exit 1; }
head -c "${SIZE_MIB}M" /dev/urandom >"$SHARE/big.bin" || { echo "FAIL: $NAME: cannot write the file"; exit 1; }
cat "$SHARE/big.bin" >/dev/null        # host-cached (tmpfs: always)

echo "sequential read of a host-cached $SIZE_MIB MiB file through virtio-fs, stock kernel $(cat "$STOCK_DIR/package"), 1 vCPU, 512 MiB, $RUNS rounds: dax=always beside dax=never (cache=auto), one guest"
argv=("$KVMINI" run --kernel "$STOCK_DIR/vmlinuz" --initrd "$INITRD" --cpus 1 --mem 512
	--fs "$SHARE:share,dax=1G" --counters
	--cmdline "console=ttyS0 reboot=k panic=-1 quiet pci=off nd.runs=$RUNS")
nested_bench_boot "$WORK/kvmini" "${argv[@]}"
echo "  kvmini: $BOOTED"

# MB/s (10^6 bytes) of each run, in run order, for MODE.
rates() {
	tr -d '\r' <"$WORK/kvmini.out" | awk -v m="$1" -v mib="$SIZE_MIB" '
		$1 == "dax-result:" && $2 == m && NF == 5 && $5 > $4 {
			printf "%.1f\n", mib * 1.048576 / ($5 - $4) }'
}
FAILED=0
for mode in dax default; do
	rates "$mode" >"$WORK/$mode.rates"
	[ "$(wc -l <"$WORK/$mode.rates")" = "$RUNS" ] || FAILED=1
done
med() { bench_median <"$WORK/$1.rates"; }
printf 'medians (MB/s) %10s %10s %10s\n' dax default dax/default
printf '%-14s %10s %10s %10s    runs: dax [%s] default [%s]\n' kvmini "$(med dax)" "$(med default)" \
	"$(bench_ratio "$(med dax)" "$(med default)")" \
	"$(tr '\n' ' ' <"$WORK/dax.rates" | sed 's/ $//')" "$(tr '\n' ' ' <"$WORK/default.rates" | sed 's/ $//')"
echo "kvmini's DAX counters: $(grep -hoE '(fuse_rx_mappings_set|fuse_rx_mappings_removed|fuse_rx_mappings_refused|fuse_requests_READ)[ =:]+[0-9]+' "$WORK/kvmini.err" | tr '\n' ' ')"
if [ "$FAILED" != 0 ]; then
	echo "FAIL: $NAME: the guest gave $(cat "$WORK"/*.rates | wc -l) of $((2 * RUNS)) figures; the console's and kvmini's last lines:"
	tr -d '\r' <"$WORK/kvmini.out" | grep -v '^\[' | tail -n 8 | sed 's/^/    /'
	tail -n 4 "$WORK/kvmini.err" | sed 's/^/    /'
	exit 1
fi
echo "BENCH: nested_dax ran ($RUNS rounds of a $SIZE_MIB MiB read per mode: dax=always, default)"
