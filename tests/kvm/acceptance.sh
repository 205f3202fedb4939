#!/bin/bash
# Acceptance test of `kvmini run` (issue 4): boot the project's own Linux
# guest (scripts/build-guest.sh) with kvmini's virtio-net on a tap in a
# network namespace this test makes (host side 10.211.0.1/24) and virtio-fs
# on a directory this test makes. The guest's /init (kvmini.check=) pings
# the host, reads from-host.txt and writes from-guest.txt on the share; the
# host checks what the guest wrote, what the guest read, and the guest's
# echo requests and its replies on the tap (tcpdump in the namespace); the
# boot figures (--boot-timing) are printed, not judged.
#
# Slow where guest kernel code is emulated (nested PVM: minutes), so CI
# runs it once, as its own layer. The boot and the judging are shared with
# scripts/demo.sh (tests/kvm/guest_check.sh). One PASS:/FAIL: line per step; steps
# that could not run say why (never a PASS for them). Skips (exit 0) only
# without /dev/kvm or without root.
# Knobs: KVMINI (default build/kvmini-san), ACCEPT_TIMEOUT (seconds for
# the boot and the checks, default 1200), ACCEPT_CPUS (default 1).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

KVMINI=${KVMINI:-build/kvmini-san}
LIMIT=${ACCEPT_TIMEOUT:-1200}
CPUS=${ACCEPT_CPUS:-1}
LOG=build/test-logs/kvm-acceptance
HOST_IP=10.211.0.1
GUEST_IP=10.211.0.2
FAILS=0
. tests/kvm/guest_check.sh

pass() { echo "PASS: acceptance $1"; }
fail() { echo "FAIL: acceptance $1"; FAILS=$((FAILS + 1)); }
not_run() { echo "NOT RUN: acceptance $1"; FAILS=$((FAILS + 1)); }

if [ ! -e /dev/kvm ]; then
	echo "SKIP: acceptance: /dev/kvm is absent on this host"
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
kvm_guest_images "$LOG/build-guest.log" || { echo "FAIL: acceptance: scripts/build-guest.sh"; exit 1; }

NS=kvacc$$
TAP=kvacc$$
SHARE=$(mktemp -d)
DUMP_PID=
cleanup() {
	[ -n "$DUMP_PID" ] && kill "$DUMP_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$SHARE"
}
trap cleanup EXIT
ip netns add "$NS" || { echo "FAIL: acceptance: ip netns add"; exit 1; }
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev "$TAP" mode tap &&
	ip -n "$NS" addr add "$HOST_IP/24" dev "$TAP" &&
	ip -n "$NS" link set "$TAP" up || { echo "FAIL: acceptance: tap $TAP in $NS"; exit 1; }

kvm_check_prepare "$SHARE"
kvm_check_argv "$KVMINI" "$CPUS" "$TAP" "$SHARE" "$GUEST_IP/24" "$HOST_IP"

# What crosses the tap, seen from the host's side.
ip netns exec "$NS" tcpdump -l -nn -e -i "$TAP" arp or icmp >"$LOG/tap.txt" 2>"$LOG/tcpdump.err" &
DUMP_PID=$!
for _ in $(seq 50); do grep -q 'listening on' "$LOG/tcpdump.err" 2>/dev/null && break; sleep 0.1; done

echo "INFO: acceptance: booting build/guest/vmlinux (${KVM_COMPAT[*]:-no compat}, $CPUS vCPU(s)), up to $LIMIT s"
t0=$(date +%s)
ip netns exec "$NS" timeout -k 10 "$LIMIT" "${KVM_ARGV[@]}" \
	</dev/null >"$LOG/console.out" 2>"$LOG/kvmini.err"
RC=$?
SECS=$(($(date +%s) - t0))
echo "INFO: acceptance: kvmini ended with status $RC after $SECS s (logs $LOG/console.out, $LOG/kvmini.err)"

kvm_check_verdict "$LOG/console.out" "$LOG/kvmini.err" "$SHARE" "$RC" || exit 1
sleep 0.5
kill "$DUMP_PID" 2>/dev/null
wait "$DUMP_PID" 2>/dev/null
DUMP_PID=
grep -qiE "^[0-9:.]+ $KVM_GUEST_MAC > .*ICMP echo request" "$LOG/tap.txt" &&
	grep -qiE "> $KVM_GUEST_MAC, .*ICMP echo reply" "$LOG/tap.txt" &&
	pass "host: the guest's echo requests and the host's replies crossed the tap ($(grep -ci 'ICMP echo' "$LOG/tap.txt") ICMP frames)" ||
	fail "host: no echo request from $KVM_GUEST_MAC and reply on the tap (log $LOG/tap.txt)"

echo "INFO: acceptance: boot figures:"
kvm_boot_figures
echo "acceptance: $FAILS failed"
[ "$FAILS" -eq 0 ]
