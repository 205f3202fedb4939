#!/bin/bash
# kvmini's virtio-net with the tap backend, driven by UML's own virtio_net:
# a namespace with a tap (kvmini opens it from inside the namespace), the
# guest's eth0 on the tap's subnet; ping both ways, iperf3 TCP both ways, and
# kvmini's counters must agree with the tap's own.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_tap 120

HOST_IP=10.201.7.1
GUEST_IP=10.201.7.2
PORT=5201
SECS=${IPERF_SECS:-3}
SOCK=$T_RUN/net.sock

uml_netns_tap tap "kvt${T_ID}t" "$HOST_IP/24"
t_bg IPERF_PID "$T_DIR/iperf3-server.log" "$NS" iperf3 -s -B "$HOST_IP" -p "$PORT"
kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" --mac 52:54:00:c0:7a:02 || t_end
t_wait_port "$NS" "$HOST_IP" "$PORT" 5 || fail "iperf3 server listening"

guest_script "$T_DIR/guest.sh" <<EOF
wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
gpass "eth0 appears (virtio_net probed)"
ip addr add $GUEST_IP/24 dev eth0
ip link set eth0 up
gcheck "ping guest -> namespace" ping -c 3 -W 3 $HOST_IP
gmark ready
wait_flag pinged 30 || gfail "host pinged in time"
giperf tx $SECS -c $HOST_IP -p $PORT && gpass "iperf3 TCP guest -> namespace" ||
	gfail "iperf3 TCP guest -> namespace"
giperf rx $SECS -c $HOST_IP -p $PORT -R && gpass "iperf3 TCP namespace -> guest" ||
	gfail "iperf3 TCP namespace -> guest"
gcheck "ping 1400 bytes x 20" ping -c 20 -i 0.05 -s 1400 -W 3 $HOST_IP
hostrun ip -s link show eth0
EOF

uml_boot UPID "$NS" "$T_DIR/guest.sh" 90 virtio_uml.device="$SOCK:1"
if wait_mark ready 30 "$UPID"; then
	check "ping namespace -> guest" t_in "$NS" busybox ping -c 3 -W 3 -q "$GUEST_IP"
else
	fail "guest reached 'ready' (console: $UML_CONSOLE)"
fi
host_flag pinged
uml_wait "$UPID"
guest_relay
note "iperf3 guest->ns $(guest_val tx) Mbit/s, ns->guest $(guest_val rx) Mbit/s"

kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_show
kc_gt0 tx_packets rx_packets tx_bytes rx_bytes
kvmini_check_clean

# The tap counts what kvmini wrote (its rx) and read (its tx); read after
# kvmini stopped, both sides are final.
tap_stat() { ip netns exec "$NS" cat "/sys/class/net/$TAP/statistics/$1"; }
kc_eq "tap rx_packets == kvmini tx_packets" "$(tap_stat rx_packets)" "${KC[tx_packets]:-}"
kc_eq "tap rx_bytes == kvmini tx_bytes" "$(tap_stat rx_bytes)" "${KC[tx_bytes]:-}"
read_frames=$(( ${KC[rx_packets]:-0} + ${KC[rx_dropped_no_buffer]:-0} +
	${KC[rx_dropped_poisoned]:-0} + ${KC[rx_dropped_too_big]:-0} ))
kc_eq "tap tx_packets == kvmini rx_packets + rx_dropped_*" "$(tap_stat tx_packets)" "$read_frames"
t_end
