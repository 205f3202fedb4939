#!/bin/bash
# Acceptance test of `kvmini run` (issue 4): boot the project's own Linux
# guest (scripts/build-guest.sh) with kvmini's virtio-net on a tap in a
# network namespace this test makes (host side 10.211.0.1/24) and virtio-fs
# on a directory this test makes. The guest's /init (kvmini.check=) pings
# the host, reads from-host.txt and writes from-guest.txt on the share; the
# host checks what the guest wrote, what the guest read, the guest's ARP
# entry on its side of the tap, and the boot figures (--boot-timing).
#
# Slow where guest kernel code is emulated (nested PVM: minutes), so CI
# runs it once, as its own layer. One PASS:/FAIL: line per step; steps
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
GUEST_MAC=52:54:00:12:34:56
FAILS=0

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
if ! scripts/build-guest.sh >"$LOG/build-guest.log" 2>&1; then
	echo "FAIL: acceptance: scripts/build-guest.sh (log $LOG/build-guest.log)"
	tail -n 5 "$LOG/build-guest.log" | sed 's/^/    /'
	exit 1
fi

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

HOST_NONCE=host-$RANDOM$RANDOM
GUEST_NONCE=guest-$RANDOM$RANDOM
echo "$HOST_NONCE" >"$SHARE/from-host.txt"
compat=()
[ -e /sys/module/kvm_pvm ] && compat=(--compat)

# What crosses the tap, seen from the host's side.
ip netns exec "$NS" tcpdump -l -nn -e -i "$TAP" arp or icmp >"$LOG/tap.txt" 2>"$LOG/tcpdump.err" &
DUMP_PID=$!
for _ in $(seq 50); do grep -q 'listening on' "$LOG/tcpdump.err" 2>/dev/null && break; sleep 0.1; done

echo "INFO: acceptance: booting build/guest/vmlinux (${compat[*]:-no compat}, $CPUS vCPU(s)), up to $LIMIT s"
t0=$(date +%s)
ip netns exec "$NS" timeout -k 10 "$LIMIT" "$KVMINI" run "${compat[@]}" --cpus "$CPUS" \
	--mem 256 --net "tap:$TAP" --fs "$SHARE:share" --boot-timing --counters \
	--cmdline "console=ttyS0 reboot=k panic=-1 pci=off kvmini.ip=$GUEST_IP/24 kvmini.fs=share kvmini.check=$HOST_IP kvmini.nonce=$GUEST_NONCE" \
	</dev/null >"$LOG/console.out" 2>"$LOG/kvmini.err"
RC=$?
SECS=$(($(date +%s) - t0))
OUT=$(tr -d '\r' <"$LOG/console.out")
ERR=$(cat "$LOG/kvmini.err")
echo "INFO: acceptance: kvmini ended with status $RC after $SECS s (logs $LOG/console.out, $LOG/kvmini.err)"

if grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' <<<"$ERR"; then
	fail "sanitizer report in kvmini (log $LOG/kvmini.err)"
fi

# The kernel's part: it needs no userspace.
has() { grep -qE -- "$1" <<<"$OUT$ERR"; }
has 'virtio-mmio: Registering device virtio-mmio\.0' && pass "kernel: virtio-mmio devices from the command line" ||
	fail "kernel: no virtio-mmio device registered"
has '^mmio_device_activations 1$' && pass "kernel: a virtio driver activated a device" ||
	fail "kernel: no virtio device activated"
if ! has 'Run /init as init process'; then
	fail "kernel: never reached /init (last console line: $(tail -n1 <<<"$OUT"))"
	not_run "userspace steps: the kernel did not start /init"
	exit 1
fi
pass "kernel: reached /init"

# Userspace: /init's own report.
if ! has 'kvmini-init: userspace up'; then
	why=$(grep -oE 'init\[1\]: segfault.{0,60}|Kernel panic.{0,80}' <<<"$OUT" | head -n1)
	fail "userspace: /init did not run (${why:-no output from it})"
	if [ ${#compat[@]} -eq 0 ] && grep -q 'segfault at ffffffff' <<<"$OUT"; then
		echo "    a SYSCALL from user mode faulted at LSTAR: this KVM needs --compat (src/vmm/user_relay.h)"
	fi
	not_run "ping, share read, share write: no userspace to run them"
	exit 1
fi
pass "userspace: /init runs ($(grep -oE 'userspace up [0-9.]+ s after boot' <<<"$OUT"))"
grep -E '^kvmini-check: (PASS|FAIL): ' <<<"$OUT" | sed 's/^kvmini-check: \([A-Z]*\): /\1: acceptance guest: /'
FAILS=$((FAILS + $(grep -c '^kvmini-check: FAIL: ' <<<"$OUT")))
has 'kvmini-check: done' || fail "guest: the check did not finish"

# The host's side of each step.
grep -qF "kvmini-check: from-host.txt says: $HOST_NONCE" <<<"$OUT" &&
	pass "host: the guest read the host's file through virtio-fs" ||
	fail "host: the guest did not show from-host.txt's content ($HOST_NONCE)"
if [ "$(cat "$SHARE/from-guest.txt" 2>/dev/null)" = "guest nonce $GUEST_NONCE" ]; then
	pass "host: from-guest.txt on the host holds what the guest wrote"
else
	fail "host: from-guest.txt is '$(head -c 80 "$SHARE/from-guest.txt" 2>/dev/null)', not 'guest nonce $GUEST_NONCE'"
fi
sleep 0.5
kill "$DUMP_PID" 2>/dev/null
wait "$DUMP_PID" 2>/dev/null
DUMP_PID=
grep -qiE "^[0-9:.]+ $GUEST_MAC > .*ICMP echo request" "$LOG/tap.txt" &&
	grep -qiE "> $GUEST_MAC, .*ICMP echo reply" "$LOG/tap.txt" &&
	pass "host: the guest's echo requests and the host's replies crossed the tap ($(grep -ci 'ICMP echo' "$LOG/tap.txt") ICMP frames)" ||
	fail "host: no echo request from $GUEST_MAC and reply on the tap (log $LOG/tap.txt)"
[ "$RC" -eq 0 ] && has 'guest rebooted' && pass "guest rebooted, kvmini ended with 0" ||
	fail "kvmini ended with $RC (wanted 0 after the guest's reboot)"

echo "INFO: acceptance: boot figures:"
grep -E 'boot timing' <<<"$ERR" | sed 's/^/    /'
grep -E '^compat_user_(syscalls|ints)_relayed' <<<"$ERR" | sed 's/^/    /'
echo "acceptance: $FAILS failed"
[ "$FAILS" -eq 0 ]
