#!/bin/bash
# kvmini end to end, both ways it serves its devices:
#
# Part 1, vhost-user (about fifteen seconds):
#   1. a network namespace with a tap in it (10.210.0.1/24);
#   2. `kvmini vhost net --backend tap:TAP` serving virtio-net on a socket;
#   3. a User-Mode Linux guest whose eth0 is that device (Linux's own
#      virtio_net driver, over vhost-user), 10.210.0.2/24;
#   4. ping both ways, then iperf3 TCP guest->namespace and namespace->guest;
#   5. kvmini's counters.
#
# Part 2, the VMM (`kvmini run`; where this host has no /dev/kvm, inside the
# nested platform of tests/nested/run.sh, an outer VM that has one):
#   1. the project's guest images (scripts/build-guest.sh: cached; building
#      the kernel the first time takes several minutes);
#   2. a second tap in the same namespace (10.210.1.1/24) and a temporary
#      directory holding from-host.txt;
#   3. `kvmini run` on the default guest (build/guest) with virtio-net on that
#      tap and virtio-fs on the directory (--compat on kvm_pvm hosts,
#      --boot-timing); the guest's /init pings the host, reads from-host.txt
#      and writes from-guest.txt, then reboots, which ends kvmini;
#   4. the guest's console lines that matter, the file it wrote, the boot
#      timing and kvmini's counters. Where KVM runs guest kernel code natively
#      the boot takes well under a second; on a nested-PVM host like ours, where
#      it is emulated, minutes.
# Everything it made (namespace, taps, processes, sockets, temporary
# directories) is removed at exit; processes are ended by PID.
#
# Usage: scripts/demo.sh [--no-vm | --vm-only] [SECONDS]
#   --no-vm    only part 1;  --vm-only  only part 2
#   SECONDS    iperf3 duration per direction (default 3)
# Env: KVMINI (binary), DEMO_VM_TIMEOUT (seconds for the boot, default 1200).
# Needs root; installs what it needs (scripts/setup.sh) and builds build/kvmini.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

UML_PART=1
VM_PART=1
SECS=3
while [ $# -gt 0 ]; do
	case $1 in
	--no-vm) VM_PART=0 ;;
	--vm-only) UML_PART=0 ;;
	-h | --help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	[0-9]*) SECS=$1 ;;
	*) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ "$UML_PART$VM_PART" != 00 ] || { echo "demo: --no-vm and --vm-only leave nothing to run" >&2; exit 2; }
VM_LIMIT=${DEMO_VM_TIMEOUT:-1200}

scripts/setup.sh || { echo "demo: scripts/setup.sh failed" >&2; exit 1; }
. tests/uml/lib.sh
. tests/kvm/guest_check.sh
say() { printf '\n==> %s\n' "$*"; }
not_run() { echo "NOT RUN: $T_NAME: $*"; T_FAILS=$((T_FAILS + 1)); }

if [ -z "${KVMINI:-}" ]; then
	make -s build/kvmini || { echo "demo: make build/kvmini failed" >&2; exit 1; }
fi
# The watchdog covers every part: the guest kernel's first build (up to an
# hour on two busy cores) and the boot included.
LIMIT=10
[ "$UML_PART" = 1 ] && LIMIT=$((LIMIT + 60 + 4 * SECS))
[ "$VM_PART" = 1 ] && LIMIT=$((LIMIT + 3600 + VM_LIMIT + 30))
t_begin demo "$LIMIT"
kvmini_pick release || t_end
t_netns NS demo || { fail "ip netns add"; t_end; }

# Part 1: a UML guest on kvmini's virtio-net over vhost-user. Returns early
# (its failure counted) when something it needs is missing.
uml_part() {
	uml_prepare || return 1
	HOST_IP=10.210.0.1
	GUEST_IP=10.210.0.2
	SOCK=$T_RUN/net.sock
	TAP=kvt${T_ID}d
	say "namespace $NS, tap $TAP ($HOST_IP/24)"
	t_tap "$NS" "$TAP" "$HOST_IP/24" || { fail "tap"; return 1; }
	t_bg IPERF_PID "$T_DIR/iperf3-server.log" "$NS" iperf3 -s -B "$HOST_IP" -p 5201

	say "kvmini vhost net --socket $SOCK --backend tap:$TAP"
	kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" || return 1
	t_wait_port "$NS" "$HOST_IP" 5201 5 || fail "iperf3 server listening"

	guest_script "$T_DIR/guest.sh" <<-EOF
	wait_link eth0 || { say "no eth0: virtio_net did not probe"; exit 1; }
	ip addr add $GUEST_IP/24 dev eth0
	ip link set eth0 up
	say "eth0: \$(cat /sys/class/net/eth0/address), driver \$(basename \$(readlink /sys/class/net/eth0/device/driver))"
	say "ping $HOST_IP"
	ping -c 3 -W 3 $HOST_IP | sed 's/^/    /'
	gmark ready
	wait_flag pinged 30
	say "iperf3 guest -> namespace, $SECS s"
	giperf tx $SECS -c $HOST_IP -p 5201 || say "iperf3 failed"
	say "iperf3 namespace -> guest (-R), $SECS s"
	giperf rx $SECS -c $HOST_IP -p 5201 -R || say "iperf3 failed"
	say "guest's eth0 counters"
	hostrun ip -s link show eth0 | sed 's/^/    /'
	EOF

	say "booting UML: virtio_uml.device=$SOCK:1"
	uml_boot UPID "$NS" "$T_DIR/guest.sh" $((40 + 4 * SECS)) virtio_uml.device="$SOCK:1"
	# Show the guest's side as it happens; tail ends with the guest.
	tail -n +1 -f --pid="$UPID" "$UML_CONSOLE" 2>/dev/null | sed -u 's/\r$//' |
		grep --line-buffered -a -E '^(GUEST: |    )' | sed -u 's/^GUEST: /guest: /' &
	SHOW_PID=$!
	if wait_mark ready 30 "$UPID"; then
		sleep 0.2
		echo "host: ping $GUEST_IP from $NS"
		t_in "$NS" busybox ping -c 3 -W 3 "$GUEST_IP" | sed 's/^/    /'
	fi
	host_flag pinged
	uml_wait "$UPID"
	wait "$SHOW_PID"
	guest_relay >/dev/null

	say "kvmini's counters"
	kvmini_stop "$KPID" "$KVMINI_LOG" >"$T_DIR/kvmini-stop.txt"
	for name in $KVMINI_COUNTER_NAMES; do
		printf '    %-22s %s\n' "$name" "${KC[$name]:-?}"
	done
	grep '^FAIL' "$T_DIR/kvmini-stop.txt"

	tx=$(guest_val tx)
	rx=$(guest_val rx)
	say "summary"
	echo "    guest -> namespace: ${tx:-?} Mbit/s, namespace -> guest: ${rx:-?} Mbit/s"
	echo "    logs: ${T_DIR#"$UML_TOP"/}"
	[ -n "$tx" ] && [ -n "$rx" ] && [ "${KC[tx_packets]:-0}" -gt 0 ] && pass "vhost-user: the UML guest pinged and ran iperf3 both ways" || fail "vhost-user: the UML guest pinged and ran iperf3 both ways"
}

# Part 2 where this host has no /dev/kvm: the same part inside the nested
# platform's outer VM (tests/nested/run.sh), which has one.
vm_part_nested() {
	say "no /dev/kvm here: part 2 runs in an outer VM that has one (tests/nested/run.sh:"
	echo "    Debian's cloud kernel under QEMU's TCG, whose emulated SVM gives it KVM)"
	local env=()
	[ -n "${KVMINI:-}" ] && env=(--env KVMINI)
	if tests/nested/run.sh --timeout $((VM_LIMIT + 120)) "${env[@]}" --env DEMO_VM_TIMEOUT -- \
		scripts/demo.sh --vm-only; then
		pass "kvmini run (in the nested platform): the guest's checks passed"
	else
		fail "kvmini run (in the nested platform): see above"
	fi
}

# Part 2: `kvmini run` boots the project's own guest, whose /init checks the
# network and the share (tests/kvm/guest_check.sh, as the acceptance test).
vm_part() {
	local host_ip=10.210.1.1 guest_ip=10.210.1.2 tap=kvt${T_ID}v
	local share=$T_RUN/share console=$T_DIR/vm-console.out err=$T_DIR/vm-kvmini.err
	local vpid show_pid rc t0
	say "guest images: scripts/build-guest.sh (cached; the kernel's first build takes several minutes)"
	t0=$(date +%s)
	if ! kvm_guest_images "$T_DIR/build-guest.log"; then
		not_run "kvmini run: no guest images"
		return 1
	fi
	sed -n 's/^build-guest: /    /p' "$T_DIR/build-guest.log"
	echo "    ready after $(($(date +%s) - t0)) s"
	if [ ! -e /dev/kvm ]; then
		vm_part_nested
		return
	fi
	say "tap $tap in $NS ($host_ip/24), share $share"
	t_tap "$NS" "$tap" "$host_ip/24" || { fail "tap $tap"; return 1; }
	mkdir -p "$share"
	kvm_check_prepare "$share"
	echo "    from-host.txt: $(cat "$share/from-host.txt")"
	kvm_check_argv "$KVMINI_BIN" 1 "tap:$tap" "$share" "$guest_ip/24" "$host_ip"

	say "kvmini run $(printf '%q ' "${KVM_ARGV[@]:2}")(up to $VM_LIMIT s)"
	[ ${#KVM_COMPAT[@]} -gt 0 ] &&
		echo "    kvm_pvm host: guest kernel code is emulated here, so the boot takes minutes (well under a second on real KVM)"
	t0=$(date +%s)
	ip netns exec "$NS" timeout --foreground -k 10 "$VM_LIMIT" "${KVM_ARGV[@]}" </dev/null >"$console" 2>"$err" &
	vpid=$!
	t_track "$vpid"
	# The console lines that matter, as they come; tail ends with kvmini.
	tail -n +1 -f --pid="$vpid" "$console" 2>/dev/null | sed -u 's/\r$//' |
		grep --line-buffered -a -E '^\[ *[0-9.]+\] (Linux version|virtio-mmio: Registering|Run /init)|^kvmini-(init|check):|^    ' |
		sed -u 's/^/guest: /' &
	show_pid=$!
	wait "$vpid"
	rc=$?
	wait "$show_pid"
	echo "    kvmini ended with status $rc after $(($(date +%s) - t0)) s"

	say "checks"
	kvm_check_verdict "$console" "$err" "$share" "$rc"
	say "from-guest.txt, as the guest wrote it on the share"
	echo "    $(cat "$share/from-guest.txt" 2>/dev/null || echo '(missing)')"
	say "boot timing (kvmini run --boot-timing)"
	kvm_boot_figures
	say "kvmini run's counters (non-zero)"
	awk '/^kvmini: (counters of|compat mode)/ { sub(/^kvmini: /, ""); print "    " $0; next }
		NF >= 2 && $NF ~ /^[0-9]+$/ && $NF != 0 { print "        " $0 }' <<<"$KVM_ERR"
	echo "    logs: ${T_DIR#"$UML_TOP"/}/vm-console.out, vm-kvmini.err"
}

if [ "$UML_PART" = 1 ]; then
	say "part 1: a UML guest on kvmini's virtio-net over vhost-user"
	uml_part
fi
if [ "$VM_PART" = 1 ]; then
	say "part 2: kvmini run, the VMM, on the project's own guest"
	vm_part
fi
t_end
