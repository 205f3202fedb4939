#!/bin/bash
# Acceptance test of `kvmini run`: a Linux guest with kvmini's virtio-net and
# virtio-fs on a directory this test makes. The guest's /init (guest/init,
# kvmini.check=) pings the host, reads from-host.txt and writes
# from-guest.txt on the share; the host checks what the guest wrote and read,
# and on a tap the guest's echo requests and the replies (tcpdump in the
# namespace); the boot figures (--boot-timing) are printed, not judged.
# Three guests:
#   own        the project's kernel (scripts/build-guest.sh: virtio-mmio
#              devices from the command line), virtio-net on a tap in a
#              network namespace this test makes (host side 10.211.0.1/24)
#   stock-tap  Debian's own cloud kernel (ACPI only, virtio drivers as
#              modules in the initramfs, no command-line devices: it finds
#              the devices through kvmini's DSDT), its lz4 payload unpacked on
#              the host (--host-decompress), on a tap like `own`; the guest
#              ends with poweroff (ACPI S5), which must end kvmini with 0;
#              midway the test pauses it through the API for 1.5 s (the
#              guest's counter on the share and its pings go on after)
#   stock-user the same kernel entered as a bzImage, virtio-net on `user`
#              (libslirp; the host is 10.0.2.2)
#   stock-snap stock-tap's guest with the metadata service, snapshotted in
#              its window, killed, restored in a new process and twice more
#              as clones (tests/kvm/acceptance_snapshot.sh)
#   stock-api  the same kernel configured and started through the control
#              API alone, Firecracker's flow and its Go SDK's (the log and
#              metrics on FIFOs), ended by SendCtrlAltDel
#              (tests/kvm/acceptance_api.sh)
#   stock-config  Kata's launch (`firecracker --version`, then --api-sock
#              and --config-file, GET / polled until Running) and
#              firecracker-containerd's drive swap, ended by the guest's
#              poweroff (tests/kvm/acceptance_config.sh)
#   stock-mq   stock-tap's check with 2 vCPUs and --queues 2 on a
#              multi-queue tap: ethtool -L and -K in the guest through the
#              control queue, iperf3 -P 2 both ways over both pairs
#              (tests/kvm/acceptance_mq.sh)
#
# Slow where guest kernel code is emulated (PVM: minutes for `own`, and the
# stock kernel is not tried there), seconds elsewhere and on the nested
# platform (tests/nested/run.sh). One PASS:/FAIL: line per step; steps that
# could not run say why (never a PASS for them). Skips (exit 0) only without
# /dev/kvm or without root.
# Knobs: KVMINI (default build/kvmini-san), ACCEPT_TIMEOUT (seconds per
# guest, default 1200), ACCEPT_CPUS (default 1; stock-mq always has 2),
# ACCEPT_CASES (default "own stock-tap stock-user stock-snap stock-api
# stock-config stock-mq"; on the nested platform the six before
# stock-config took 421 to 499 s of its 900, stock-mq 53 to 62 s of that).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

KVMINI=${KVMINI:-build/kvmini-san}
LIMIT=${ACCEPT_TIMEOUT:-1200}
CPUS=${ACCEPT_CPUS:-1}
CASES=${ACCEPT_CASES:-own stock-tap stock-user stock-snap stock-api stock-config stock-mq}
LOG=build/test-logs/kvm-acceptance
FAILS=0
. tests/kvm/guest_check.sh
. tests/kvm/acceptance_snapshot.sh
. tests/kvm/acceptance_api.sh
. tests/kvm/acceptance_config.sh
. tests/kvm/acceptance_mq.sh
. tests/nested/lib.sh

if [ ! -e /dev/kvm ]; then
	echo "SKIP: acceptance: /dev/kvm is absent on this host (tests/nested/run.sh runs it in a VM that has it)"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: acceptance: needs root (network namespace and tap)"
	exit 0
fi
mkdir -p "$LOG"
if [ ! -x "$KVMINI" ]; then
	make -j2 "$KVMINI" >"$LOG/build.log" 2>&1 || { echo "FAIL: acceptance: building $KVMINI"; exit 1; }
fi

NS=kvacc$$
TAP=kvacc$$
SHARE=
DUMP_PID=
cleanup() {
	[ -n "$DUMP_PID" ] && kill "$DUMP_PID" 2>/dev/null
	iperf_server_stop
	ip netns del "$NS" 2>/dev/null
	[ -n "$SHARE" ] && rm -rf "$SHARE" "$SHARE"-clone*
}
trap cleanup EXIT
ip netns add "$NS" || { echo "FAIL: acceptance: ip netns add"; exit 1; }
ip -n "$NS" link set lo up

# tap_up CIDR [multi_queue]: a fresh tap $TAP in the namespace with CIDR
# on it (a multi-queue one for --queues N).
tap_up() {
	ip -n "$NS" link del "$TAP" 2>/dev/null
	ip -n "$NS" tuntap add dev "$TAP" mode tap ${2:+"$2"} &&
		ip -n "$NS" addr add "$1" dev "$TAP" &&
		ip -n "$NS" link set "$TAP" up
}

# dump_start / dump_check: what crosses the tap, seen from the host's side.
dump_start() {
	ip netns exec "$NS" tcpdump -l -nn -e -i "$TAP" arp or icmp >"$CLOG/tap.txt" 2>"$CLOG/tcpdump.err" &
	DUMP_PID=$!
	for _ in $(seq 50); do grep -q 'listening on' "$CLOG/tcpdump.err" 2>/dev/null && break; sleep 0.1; done
}
dump_check() {
	sleep 0.5
	kill "$DUMP_PID" 2>/dev/null
	wait "$DUMP_PID" 2>/dev/null
	DUMP_PID=
	grep -qiE "^[0-9:.]+ $KVM_GUEST_MAC > .*ICMP echo request" "$CLOG/tap.txt" &&
		grep -qiE "> $KVM_GUEST_MAC, .*ICMP echo reply" "$CLOG/tap.txt" &&
		pass "host: the guest's echo requests and the host's replies crossed the tap ($(grep -ci 'ICMP echo' "$CLOG/tap.txt") ICMP frames)" ||
		fail "host: no echo request from $KVM_GUEST_MAC and reply on the tap (log $CLOG/tap.txt)"
}

# pauser SOCK: once the guest opens its pause window (kvmini.pause=1,
# guest/init), pause the VM through the API for 1.5 s, see that nothing
# moved on the share meanwhile, resume; what it saw goes to pause.txt.
pauser() {
	local sock=$1 counter=$SHARE/counter.txt paused state before after resumed
	for _ in $(seq $((LIMIT * 10))); do
		grep -q 'kvmini-check: pause window' "$CLOG/console.out" 2>/dev/null && break
		sleep 0.1
	done
	sleep 0.5
	paused=$(vm_patch "$sock" Paused)
	state=$(curl -s --max-time 10 --unix-socket "$sock" http://k/ | grep -oE '"state": *"[^"]*"')
	before=$(wc -l <"$counter" 2>/dev/null)
	sleep 1.5
	after=$(wc -l <"$counter" 2>/dev/null)
	resumed=$(vm_patch "$sock" Resumed)
	echo "paused=$paused state=$state before=${before:-none} after=${after:-none} resumed=$resumed" \
		>"$CLOG/pause.txt"
}
vm_patch() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$1" -X PATCH \
		-H 'Content-Type: application/json' -d "{\"state\":\"$2\"}" http://k/vm
}

# pause_check: judge the pauser's record and the counter the guest wrote.
pause_check() {
	local rec
	rec=$(cat "$CLOG/pause.txt" 2>/dev/null)
	case $rec in
	"paused=204 state=\"state\":\"Paused\" before="*)
		pass "pause: PATCH /vm Paused inside the guest's window, GET / said Paused" ;;
	*) fail "pause: the pause did not happen as asked ($rec)"; return ;;
	esac
	local before=${rec#*before=} after=${rec#*after=}
	before=${before%% *} after=${after%% *}
	[ "$before" = "$after" ] && [ "$before" != none ] &&
		pass "pause: nothing written to the share for 1.5 s while paused ($before lines)" ||
		fail "pause: the share changed while paused ($before, then $after lines)"
	[ "${rec##*resumed=}" = 204 ] && pass "pause: PATCH /vm Resumed answered 204" ||
		fail "pause: PATCH /vm Resumed answered ${rec##*resumed=}"
	[ "$(cat "$SHARE/counter.txt" 2>/dev/null)" = "$(seq 1 30)" ] &&
		pass "pause: counter.txt holds 1 to 30 after the resume, none lost or repeated" ||
		fail "pause: counter.txt is not 1 to 30 ($(tr '\n' ' ' <"$SHARE/counter.txt" 2>/dev/null | head -c 120))"
}

# accept CASE NET GUEST_CIDR HOST_IP: boot the guest KVM_CHECK_GUEST names
# with the check, and judge it. ACCEPT_SIDE, a command, runs in the
# background while the guest does (ended when kvmini has); ACCEPT_JUDGE, one
# more judgement after the common ones (when the guest reached its check).
ACCEPT_SIDE=()
ACCEPT_JUDGE=
accept() {
	local case=$1 net=$2
	CASE=$case
	CLOG=$LOG/$case
	mkdir -p "$CLOG"
	rm -rf "$SHARE"
	SHARE=$(mktemp -d)
	kvm_check_prepare "$SHARE"
	kvm_check_argv "$KVMINI" "$CPUS" "$net" "$SHARE" "$3" "$4"
	case $net in tap:*) dump_start ;; esac
	echo "INFO: acceptance $case: kvmini run $(printf '%q ' "${KVM_ARGV[@]:2}")(up to $LIMIT s)"
	local t0 rc side_pid=
	t0=$(date +%s)
	rm -f "$CLOG/pause.txt" "$CLOG/console.out"
	[ ${#ACCEPT_SIDE[@]} -gt 0 ] && { "${ACCEPT_SIDE[@]}" & side_pid=$!; }
	ip netns exec "$NS" timeout --foreground -k 10 "$LIMIT" "${KVM_ARGV[@]}" \
		</dev/null >"$CLOG/console.out" 2>"$CLOG/kvmini.err"
	rc=$?
	[ -n "$side_pid" ] && { kill "$side_pid" 2>/dev/null; wait "$side_pid" 2>/dev/null; }
	echo "INFO: acceptance $case: kvmini ended with status $rc after $(($(date +%s) - t0)) s" \
		"(logs $CLOG/console.out, $CLOG/kvmini.err)"
	if kvm_check_verdict "$CLOG/console.out" "$CLOG/kvmini.err" "$SHARE" "$rc"; then
		case $net in tap:*) dump_check ;; esac
		[ -n "${ACCEPT_JUDGE:-}" ] && $ACCEPT_JUDGE
	fi
	echo "INFO: acceptance $case: boot figures:"
	kvm_boot_figures
}
# api_call SOCK METHOD PATH [JSON]: the control API (the snapshot and API
# cases); the HTTP status on stdout, the body in $CLOG/api.out.
api_call() {
	curl -s -o "$CLOG/api.out" -w '%{http_code}' --max-time 120 --unix-socket "$1" -X "$2" \
		${4:+-H 'Content-Type: application/json' -d "$4"} "http://k$3"
}

# console_wait TEXT SECONDS [PID]: TEXT on the case's console within
# SECONDS; no longer than process PID (kvmini) lives.
console_wait() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -q "$1" "$CLOG/console.out" 2>/dev/null && return 0
		[ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}

# send_cad_when_waiting SOCK PID: once the guest's init (kvmini.end=cad)
# has synced its checks and waits for the keys, PUT /actions
# SendCtrlAltDel to kvmini (PID).
send_cad_when_waiting() {
	local code
	if ! console_wait 'kvmini-check: waiting for Ctrl+Alt+Del' "$LIMIT" "$2"; then
		fail "the guest never waited for Ctrl+Alt+Del (log $CLOG/console.out)"
		return
	fi
	code=$(api_call "$1" PUT /actions '{"action_type":"SendCtrlAltDel"}')
	[ "$code" = 204 ] && pass "PUT /actions SendCtrlAltDel: 204" ||
		fail "SendCtrlAltDel answered $code ($(cat "$CLOG/api.out"))"
}

# api_case_ready CASE: the stock kernel, curl, python3 (the vsock peers)
# and the tap for a case that drives the control API, or why not.
api_case_ready() {
	stock_ready "$1" || return 1
	local tool
	for tool in curl python3; do
		if ! command -v "$tool" >/dev/null; then
			echo "SKIP: acceptance $1: $tool is not installed"
			return 1
		fi
	done
	tap_up 10.211.0.1/24 || { fail "tap $TAP in $NS"; return 1; }
}

pass() { echo "PASS: acceptance $CASE: $1"; }
fail() { echo "FAIL: acceptance $CASE: $1"; FAILS=$((FAILS + 1)); }
not_run() { echo "NOT RUN: acceptance $CASE: $1"; FAILS=$((FAILS + 1)); }

# The project's own guest, the embedded default.
case_own() {
	CASE=own
	kvm_guest_images "$LOG/build-guest.log" || { fail "scripts/build-guest.sh"; return; }
	tap_up 10.211.0.1/24 || { fail "tap $TAP in $NS"; return; }
	KVM_CHECK_GUEST=() KVM_CHECK_DEVICES=cmdline KVM_CHECK_CMDLINE=
	accept own "tap:$TAP" 10.211.0.2/24 10.211.0.1
}

# stock_ready CASE: Debian's cloud kernel and its initramfs, or why not.
stock_ready() {
	CASE=$1
	if [ -e /sys/module/kvm_pvm ]; then
		echo "SKIP: acceptance $1: guest kernel code is emulated on this kvm_pvm host (minutes per boot); the nested platform runs it"
		return 1
	fi
	stock_kernel 2>"$LOG/stock-kernel.log" || { fail "no Debian cloud kernel ($(tail -n1 "$LOG/stock-kernel.log"))"; return 1; }
	stock_guest_initrd build/stock-guest/initramfs.gz || { fail "building the stock guest's initramfs"; return 1; }
	KVM_CHECK_DEVICES=acpi
	KVM_CHECK_CMDLINE="kvmini.end=poweroff"
}

# Also paused and resumed through the API in the middle of its check
# (curl permitting): a pause window in the guest (kvmini.pause=1).
case_stock_tap() {
	stock_ready stock-tap || return
	tap_up 10.211.0.1/24 || { fail "tap $TAP in $NS"; return; }
	KVM_CHECK_GUEST=(--kernel "$STOCK_DIR/vmlinuz" --host-decompress --initrd build/stock-guest/initramfs.gz)
	if command -v curl >/dev/null; then
		local sock=$LOG/stock-tap.sock
		rm -f "$sock"
		KVM_CHECK_GUEST+=(--api-sock "$sock")
		KVM_CHECK_CMDLINE+=" kvmini.pause=1"
		ACCEPT_SIDE=(pauser "$sock") ACCEPT_JUDGE=pause_check
	else
		echo "SKIP: acceptance stock-tap: pause: curl is not installed"
	fi
	accept stock-tap "tap:$TAP" 10.211.0.2/24 10.211.0.1
	ACCEPT_SIDE=() ACCEPT_JUDGE=
}

# With user networking, and the share served with options of its own
# (`--fs DIR:TAG,OPTION...`, as `kvmini vhost fs` takes them): no guest
# cache, four workers on two request queues, 128 KiB writes.
case_stock_user() {
	stock_ready stock-user || return
	KVM_CHECK_GUEST=(--kernel "$STOCK_DIR/vmlinuz" --initrd build/stock-guest/initramfs.gz)
	KVM_CHECK_FS_OPTS=,cache=none,threads=4,queues=2,max-write=131072
	accept stock-user user 10.0.2.15/24 10.0.2.2
	KVM_CHECK_FS_OPTS=
	# cache=none took: nothing is cached, so nothing is watched (the
	# counters at exit list a share's watch when there is one).
	if ! grep -q 'counters of device' <<<"$KVM_ERR"; then
		fail "--fs ...,cache=none: no counters at exit to judge by (log $CLOG/kvmini.err)"
	elif grep -q 'host watch of --fs' <<<"$KVM_ERR"; then
		fail "--fs ...,cache=none: a host watch was started (log $CLOG/kvmini.err)"
	else
		pass "--fs ...,cache=none: no host watch (nothing cached to invalidate)"
	fi
}

for c in $CASES; do
	case $c in
	own) case_own ;;
	stock-tap) case_stock_tap ;;
	stock-user) case_stock_user ;;
	stock-snap) case_stock_snap ;;
	stock-api) case_stock_api ;;
	stock-config) case_stock_config ;;
	stock-mq) case_stock_mq ;;
	*) echo "FAIL: acceptance: unknown case $c in ACCEPT_CASES"; FAILS=$((FAILS + 1)) ;;
	esac
done
echo "acceptance: $FAILS failed"
[ "$FAILS" -eq 0 ]
