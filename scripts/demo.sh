#!/bin/bash
# kvmini's main job, end to end, in about fifteen seconds:
#   1. a network namespace with a tap in it (10.210.0.1/24);
#   2. `kvmini vhost net --backend tap:TAP` serving virtio-net on a socket;
#   3. a User-Mode Linux guest whose eth0 is that device (Linux's own
#      virtio_net driver, over vhost-user), 10.210.0.2/24;
#   4. ping both ways, then iperf3 TCP guest->namespace and namespace->guest;
#   5. kvmini's counters.
# Everything it made (namespace, tap, processes, sockets) is removed at exit.
#
# Usage: scripts/demo.sh [SECONDS]   (iperf3 duration per direction, default 3)
# Needs root; installs what it needs (scripts/setup.sh) and builds build/kvmini.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
scripts/setup.sh || { echo "demo: scripts/setup.sh failed" >&2; exit 1; }
. tests/uml/lib.sh

SECS=${1:-3}
say() { printf '\n==> %s\n' "$*"; }

if [ -z "${KVMINI:-}" ]; then
	make -s build/kvmini || { echo "demo: make build/kvmini failed" >&2; exit 1; }
fi
t_begin demo $((60 + 4 * SECS))
uml_prepare || t_end
kvmini_pick release || t_end

HOST_IP=10.210.0.1
GUEST_IP=10.210.0.2
SOCK=$T_RUN/net.sock
t_netns NS demo || { fail "ip netns add"; t_end; }
TAP=kvt${T_ID}d
say "namespace $NS, tap $TAP ($HOST_IP/24)"
t_tap "$NS" "$TAP" "$HOST_IP/24" || { fail "tap"; t_end; }
t_bg IPERF_PID "$T_DIR/iperf3-server.log" "$NS" iperf3 -s -B "$HOST_IP" -p 5201

say "kvmini vhost net --socket $SOCK --backend tap:$TAP"
kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" || t_end
t_wait_port "$NS" "$HOST_IP" 5201 5 || fail "iperf3 server listening"

guest_script "$T_DIR/guest.sh" <<EOF
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
[ -n "$tx" ] && [ -n "$rx" ] && [ "${KC[tx_packets]:-0}" -gt 0 ] && pass "demo ran" || fail "demo ran"
t_end
