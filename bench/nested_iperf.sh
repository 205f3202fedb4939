#!/bin/bash
# bench/nested_iperf.sh: iperf3 TCP throughput of Debian's stock cloud kernel
# (1 vCPU, 256 MiB) with virtio-net on a tap in a namespace this script makes,
# against an iperf3 server in that namespace, through three paths measured in
# the same run, interleaved (each round takes them in turn, every second
# round in reverse order):
#   offloads  `kvmini run --net tap:NAME` (checksum and segmentation
#             offloads, mergeable RX buffers and the control queue: the default)
#   plain     `kvmini run --net tap:NAME --offloads off` (plain frames)
#   qemu      qemu-system-x86_64 -accel kvm, microvm with PCIe, virtio-net-pci
#             on `-netdev tap,vhost=on` (the kernel's vhost-net)
# Each boot runs guest->ns and then ns->guest (iperf3 -R), SECS seconds each,
# and ends with poweroff; the guest is the stock kernel with an initramfs of
# its own (busybox, the virtio modules, the host's iperf3 and ethtool with
# the libraries ldd lists). Prints the medians in Mbit/s, every run's figure,
# the ratios kvmini/QEMU per direction (both kvmini paths) and
# offloads/plain, the guest's `ethtool -k eth0` (what it negotiated) and
# kvmini's offload counters at exit. Where QEMU's vhost-net cannot run
# (no /dev/vhost-net after loading vhost_net, no QEMU) a "SKIP:" line says
# why and the two kvmini paths are still measured.
#
# Run where /dev/kvm exists (scripts/test.sh runs it on the nested platform
# through bench/kvm_smoke.sh), as root; on the nested platform (QEMU's TCG)
# the figures are small and the ratios are what matter:
#   tests/nested/run.sh --timeout 900 -- bash bench/nested_iperf.sh
# A benchmark, not a test: a completed run prints "BENCH: ..."; a guest that
# does not boot or an iperf3 run that fails is "FAIL: bench ..." (exit 1);
# without /dev/kvm, root or iperf3, "SKIP: ..." and exit 0.
#
# Env: BENCH_RUNS    rounds (default 2)
#      IPERF_SECS    seconds per iperf3 run (default 5)
#      IPERF_TIMEOUT seconds per boot, its two runs included (default 180)
#      KVMINI        default build/kvmini
#      IPERF_QEMU    default qemu-system-x86_64
#      IPERF_LOG     where each boot's console (.out) and VMM stderr (.err)
#                    are kept (default build/test-logs/nested-iperf)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

KVMINI=${KVMINI:-build/kvmini}
RUNS=${BENCH_RUNS:-2}
SECS=${IPERF_SECS:-5}
LIMIT=${IPERF_TIMEOUT:-180}
QEMU=${IPERF_QEMU:-qemu-system-x86_64}
NAME="bench nested_iperf"
HOST_IP=10.212.0.1
GUEST_IP=10.212.0.2
MAC=52:54:00:12:34:58
INITRD=build/stock-guest/iperf-initramfs.gz

[ -e /dev/kvm ] || { echo "SKIP: $NAME: no /dev/kvm (tests/nested/run.sh runs it in a VM that has it)"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "SKIP: $NAME: needs root (network namespace and tap)"; exit 0; }
IPERF=$(command -v iperf3) || { echo "SKIP: $NAME: iperf3 is not installed"; exit 0; }
. tests/nested/lib.sh
nested_bench_ready RUNS SECS LIMIT

# Every boot's console and VMM stderr stay in WORK (in the checkout: on the
# nested platform the outer VM's /tmp is gone with it).
WORK=${IPERF_LOG:-build/test-logs/nested-iperf}
rm -rf "$WORK"
mkdir -p "$WORK" || { echo "FAIL: $NAME: cannot make $WORK"; exit 1; }
NS=kvip$$
TAP=kvip$$
SERVER_PID=
VM_PID=
cleanup() {
	local p i
	# timeout(1) passes TERM on to the VMM; KILL what is left after 5 s.
	for p in $VM_PID $SERVER_PID; do
		kill -TERM "$p" 2>/dev/null || continue
		for ((i = 0; i < 50; i++)); do
			case $(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null) in '' | Z) break ;; esac
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	ip netns del "$NS" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. bench/stats.sh

# --- the guest: stock kernel, an initramfs with iperf3 --------------------------
# Its /init: the modules, eth0 up, ethtool -k, iperf3 both ways, poweroff.
cat >"$WORK/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
arg() {
	for w in $(cat /proc/cmdline); do
		case $w in nb.$1=*) echo "${w#*=}"; return 0 ;; esac
	done
	return 1
}
say() { echo "iperf-guest: $*"; }
say "userspace up $(cut -d' ' -f1 /proc/uptime) s after boot"
for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
ip link set lo up
ip addr add "$(arg ip)/24" dev eth0 && ip link set eth0 up || say "eth0 did not come up"
host=$(arg host) secs=$(arg secs)
feats=$(ethtool -k eth0 2>&1 | grep -E '^(rx-checksumming|tx-checksumming|scatter-gather|tcp-segmentation-offload|generic-receive-offload|large-receive-offload|rx-gro-hw):' |
	sed 's/ \[fixed\]//' | tr '\n' ';')
say "ethtool -k: ${feats%;}"
i=0
until ping -c 1 -W 1 "$host" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -ge 20 ] && { say "no answer from $host"; break; }
	sleep 1
done
for dir in tx rx; do
	r=
	[ $dir = rx ] && r=-R
	out=$(timeout $((secs + 30)) iperf3 -f m -t "$secs" -c "$host" $r 2>&1)
	mbit=$(echo "$out" | awk '/receiver$/ { v = $(NF - 2) } END { print v }')
	echo "$out" | grep -E 'sender$|receiver$' | sed "s/^/iperf-out: $dir: /"
	if [ -n "$mbit" ]; then
		echo "iperf-result: $dir $mbit"
	else
		echo "iperf-result: $dir failed"
		echo "$out" | tail -n 3 | sed 's/^/    /'
	fi
done
say "done"
poweroff -f
EOF

# The libraries of iperf3 and ethtool, and the modules: the stock guest's,
# and virtio-pci before them (QEMU's virtio-net-pci).
GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	virtio_mmio failover net_failover virtio_net"
BINS="$IPERF $(command -v ethtool || true)"
# libs: the libraries ldd lists for BINS, the loader among them.
libs() { ldd $BINS 2>/dev/null | grep -oE '/[^ :]+( |$)' | sort -u; }
build_initrd() {
	local tmp m f key
	key=$({
		cat "$STOCK_DIR/package" "$WORK/init"
		echo "$GUEST_MODULES"
		for f in /bin/busybox $BINS $(libs); do sha256sum "$f"; done
	} | sha256sum | cut -d' ' -f1)
	[ -f "$INITRD" ] && [ "$(cat "$INITRD.key" 2>/dev/null)" = "$key" ] && return 0
	tmp=$(mktemp -d) || return 1
	busybox_tree "$tmp" "$WORK/init"
	mkdir -p "$tmp/lib/modules" "$tmp/dev" "$tmp/proc" "$tmp/sys" "$tmp/tmp" "$tmp/etc"
	for m in $GUEST_MODULES; do cp "$STOCK_DIR/modules/$m.ko" "$tmp/lib/modules/" || return 1; done
	echo $GUEST_MODULES | tr ' ' '\n' >"$tmp/lib/modules/order"
	for f in $BINS $(libs); do
		mkdir -p "$tmp$(dirname "$f")"
		cp -L "$f" "$tmp$f" || return 1
	done
	# Debian's /bin and /lib are links into /usr: the loader is asked for
	# by either name.
	[ -e "$tmp/lib64/ld-linux-x86-64.so.2" ] || { mkdir -p "$tmp/lib64"; cp -L /lib64/ld-linux-x86-64.so.2 "$tmp/lib64/"; }
	mkdir -p "$(dirname "$INITRD")"
	cpio_of "$tmp" "$INITRD" && echo "$key" >"$INITRD.key"
	m=$?
	rm -rf "$tmp"
	return $m
}
build_initrd || { echo "FAIL: $NAME: building $INITRD"; exit 1; }
APPEND="console=ttyS0 reboot=k panic=-1 quiet nb.ip=$GUEST_IP nb.host=$HOST_IP nb.secs=$SECS"

# --- the namespace, the server ---------------------------------------------------
ip netns add "$NS" || { echo "FAIL: $NAME: ip netns add $NS"; exit 1; }
ip -n "$NS" link set lo up
ip netns exec "$NS" "$IPERF" -s >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for ((i = 0; i < 50; i++)); do
	ip netns exec "$NS" ss -ltn 2>/dev/null | grep -q ':5201 ' && break
	sleep 0.1
done
[ "$i" -lt 50 ] || { echo "FAIL: $NAME: the iperf3 server does not listen: $(tail -n1 "$WORK/server.log")"; exit 1; }

# tap_up: a fresh tap in the namespace (each boot starts from the kernel's
# defaults, not from the offloads the previous VMM set).
tap_up() {
	ip -n "$NS" link del "$TAP" 2>/dev/null
	ip -n "$NS" tuntap add dev "$TAP" mode tap &&
		ip -n "$NS" addr add "$HOST_IP/24" dev "$TAP" &&
		ip -n "$NS" link set "$TAP" up
}

# --- QEMU with vhost-net, or why not -----------------------------------------------
PATHS="offloads plain qemu"
why_no_qemu() {
	local m
	command -v "$QEMU" >/dev/null || { echo "$QEMU is not installed"; return; }
	if [ ! -c /dev/vhost-net ]; then
		# The outer VM's kernel is the stock one: its modules are cached
		# beside it (NESTED_OPTIONAL_MODULES; the host has no kmod, busybox
		# loads them); elsewhere, modprobe.
		for m in vhost_iotlb vhost tap vhost_net; do
			[ -e "/sys/module/$m" ] && continue
			if [ "$(basename "$STOCK_DIR")" = "linux-image-$(uname -r)" ]; then
				[ -f "$STOCK_DIR/modules/$m.ko" ] || {
					echo "$m.ko is not in $STOCK_DIR/modules, a cache older than NESTED_OPTIONAL_MODULES (remove it to fetch again)" >>"$WORK/vhost.err"
					continue
				}
				busybox insmod "$STOCK_DIR/modules/$m.ko" 2>>"$WORK/vhost.err"
			else
				modprobe "$m" 2>>"$WORK/vhost.err"
			fi
		done
		for ((m = 0; m < 20; m++)); do [ -c /dev/vhost-net ] && break; sleep 0.1; done
	fi
	[ -c /dev/vhost-net ] || {
		echo "no /dev/vhost-net after loading vhost_net ($(tail -n1 "$WORK/vhost.err" 2>/dev/null || echo 'no error'))"
		return
	}
}
why=$(why_no_qemu)
if [ -n "$why" ]; then
	echo "SKIP: $NAME: QEMU with vhost-net: $why; the two kvmini paths only"
	PATHS="offloads plain"
fi

# counters ERRLOG: kvmini's offload and merge counters at exit (--counters).
counters() {
	grep -hE '^(tx_csum_completed|tx_gso_segmented|tx_hdr_invalid|rx_hdr_refused|rx_merged_buffers|rx_waited_for_buffers|tx_ctrl_ok|tx_ctrl_refused|rx_offload_errors) ' "$1" |
		tr '\n' ' ' | sed 's/ $//'
}

# --- the runs ---------------------------------------------------------------------
# boot PATH ROUND: one guest on PATH, its two iperf3 runs; the console in
# $WORK/PATH-ROUND.out, the VMM's stderr in .err; figures appended to
# $WORK/PATH.tx and .rx. Status 1 when the guest gave no figures.
boot() {
	local path=$1 round=$2 out=$WORK/$1-$2 argv pid rc t0 dir v
	case $path in
	offloads | plain)
		argv=("$KVMINI" run --kernel "$STOCK_DIR/vmlinuz" --initrd "$INITRD" --cpus 1 --mem 256
			--net "tap:$TAP" --mac "$MAC" --counters --cmdline "$APPEND pci=off")
		[ "$path" = plain ] && argv+=(--offloads off) ;;
	qemu)
		argv=("$QEMU" -M "microvm,rtc=on,pcie=on" -accel kvm -cpu host -smp 1 -m 256M -nodefaults
			-no-user-config -display none -serial stdio -no-reboot
			-kernel "$STOCK_DIR/vmlinuz" -initrd "$INITRD" -append "$APPEND"
			-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no,vhost=on"
			-device "virtio-net-pci,netdev=n0,mac=$MAC") ;;
	esac
	tap_up || { echo "FAIL: $NAME: tap $TAP in $NS"; return 1; }
	echo "${argv[*]}" >"$out.cmd"
	t0=$(date +%s)
	ip netns exec "$NS" timeout --foreground -k 5 "$LIMIT" "${argv[@]}" </dev/null >"$out.out" 2>"$out.err" &
	pid=$!
	VM_PID=$pid
	wait "$pid"
	rc=$?
	VM_PID=
	echo "  round $round $path: exit $rc after $(($(date +%s) - t0)) s:" \
		"$(grep -oE 'iperf-result: .*' "$out.out" | sed 's/iperf-result: //' | tr -d '\r' | tr '\n' ' ')"
	[ "$path" = qemu ] || echo "    kvmini's counters: $(counters "$out.err")"
	for dir in tx rx; do
		v=$(sed -n "s/^iperf-result: $dir \([0-9.]*\)\r*$/\1/p" "$out.out")
		if [ -z "$v" ] && [ "$path" = qemu ] && ! grep -q 'iperf-guest: userspace up' "$out.out" &&
			grep -qi vhost "$out.err"; then
			# QEMU refused vhost-net at start (vhost=on is no fallback).
			echo "SKIP: $NAME: QEMU with vhost-net: QEMU did not start it: $(grep -i -m1 vhost "$out.err"); the two kvmini paths only"
			PATHS="offloads plain"
			return 0
		fi
		[ -n "$v" ] || {
			echo "FAIL: $NAME: $path round $round: no $dir figure; the console's and the VMM's last lines:"
			tr -d '\r' <"$out.out" | tail -n 8 | sed 's/^/    /'
			tail -n 4 "$out.err" | sed 's/^/    /'
			return 1
		}
		echo "$v" >>"$WORK/$path.$dir"
	done
}

echo "iperf3 TCP, stock kernel $(cat "$STOCK_DIR/package"), 1 vCPU, $RUNS rounds x $SECS s per path and direction"
FAILED=0
for ((r = 1; r <= RUNS; r++)); do
	order=$PATHS
	[ $((r % 2)) = 0 ] && order=$(bench_reversed $PATHS)
	for p in $order; do
		[[ " $PATHS " == *" $p "* ]] || continue
		boot "$p" "$r" || FAILED=1
	done
done

row() {
	printf '%-10s %12s %12s    runs: tx [%s] rx [%s]\n' "$1" "$(bench_median <"$WORK/$1.tx" 2>/dev/null || echo n/a)" \
		"$(bench_median <"$WORK/$1.rx" 2>/dev/null || echo n/a)" \
		"$(tr '\n' ' ' <"$WORK/$1.tx" 2>/dev/null | sed 's/ $//')" "$(tr '\n' ' ' <"$WORK/$1.rx" 2>/dev/null | sed 's/ $//')"
}
med() { bench_median <"$WORK/$1.$2" 2>/dev/null; }
echo "medians (Mbit/s)  guest->ns    ns->guest"
for p in $PATHS; do row "$p"; done
if [[ " $PATHS " == *" qemu "* ]]; then
	printf '%-17s %12s %12s\n' "offloads/qemu" "$(bench_ratio "$(med offloads tx)" "$(med qemu tx)")" \
		"$(bench_ratio "$(med offloads rx)" "$(med qemu rx)")"
	printf '%-17s %12s %12s\n' "plain/qemu" "$(bench_ratio "$(med plain tx)" "$(med qemu tx)")" \
		"$(bench_ratio "$(med plain rx)" "$(med qemu rx)")"
fi
printf '%-17s %12s %12s\n' "offloads/plain" "$(bench_ratio "$(med offloads tx)" "$(med plain tx)")" \
	"$(bench_ratio "$(med offloads rx)" "$(med plain rx)")"

echo "what the guest negotiated (round 1's ethtool -k eth0; kvmini's counters are above, per boot):"
for p in $PATHS; do
	echo "  $p: $(tr -d '\r' <"$WORK/$p-1.out" 2>/dev/null | sed -n 's/^iperf-guest: ethtool -k: //p' | head -n1)"
done
if [ "$FAILED" != 0 ]; then
	echo "FAIL: $NAME: a guest gave no figures (see above)"
	exit 1
fi
echo "BENCH: nested_iperf ran ($RUNS rounds x $SECS s per path and direction: $PATHS)"
