#!/bin/bash
# virtio-net offloads and mergeable RX buffers with the tap backend, driven by
# UML's stock virtio_net: the guest's driver takes checksum and segmentation
# offloads in both directions (ethtool -k shows them), iperf3 runs both ways,
# and tcpdump on the tap sees GSO super-frames (longer than the MTU) cross it
# both ways: the guest's TSO frames reach the host whole, and the host's GRO
# frames reach the guest whole, spread over mergeable buffers. Then the
# guest turns its RX offloads off and on again (ethtool -K rx-gro-hw, the
# control queue) and the tap's offloads follow.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_offload 150 ethtool

HOST_IP=10.201.9.1
GUEST_IP=10.201.9.2
PORT=5201
SECS=${IPERF_SECS:-3}
SOCK=$T_RUN/net.sock

uml_netns_tap offload "kvt${T_ID}o" "$HOST_IP/24"
t_bg IPERF_PID "$T_DIR/iperf3-server.log" "$NS" iperf3 -s -B "$HOST_IP" -p "$PORT"
# Frames longer than a 1500-byte MTU can hold: GSO frames, in either direction.
t_bg DUMP_PID "$T_DIR/tcpdump.txt" "$NS" tcpdump -i "$TAP" -nn -l -Q inout 'greater 3000'
kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" --mac 52:54:00:c0:7a:09 || t_end
t_wait_port "$NS" "$HOST_IP" "$PORT" 5 || fail "iperf3 server listening"

guest_script "$T_DIR/guest.sh" <<EOF
wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
ip addr add $GUEST_IP/24 dev eth0
ip link set eth0 up
k=\$(hostrun ethtool -k eth0)
echo "\$k" | grep -E '^(tx-checksumming|rx-checksumming|tcp-segmentation-offload|generic-receive-offload|	tx-tcp-segmentation|	tx-tcp6-segmentation):' | sed 's/^/    /'
for f in tx-checksumming rx-checksumming tcp-segmentation-offload; do
	echo "\$k" | grep -q "^\$f: on" && gpass "ethtool -k: \$f on" || gfail "ethtool -k: \$f on"
done
gcheck "ping guest -> namespace" ping -c 3 -W 3 $HOST_IP
giperf tx $SECS -c $HOST_IP -p $PORT && gpass "iperf3 TCP guest -> namespace" ||
	gfail "iperf3 TCP guest -> namespace"
giperf rx $SECS -c $HOST_IP -p $PORT -R && gpass "iperf3 TCP namespace -> guest" ||
	gfail "iperf3 TCP namespace -> guest"
gcheck "ping 1400 bytes x 20" ping -c 20 -i 0.05 -s 1400 -W 3 $HOST_IP
# RX offloads switched through the control queue (CTRL_GUEST_OFFLOADS).
gcheck "ethtool -K eth0 rx-gro-hw off" hostrun ethtool -K eth0 rx-gro-hw off
gmark gro-off
wait_flag checked-off 30 || gfail "host checked the tap"
gcheck "ethtool -K eth0 rx-gro-hw on" hostrun ethtool -K eth0 rx-gro-hw on
gmark gro-on
wait_flag checked-on 30 || gfail "host checked the tap again"
EOF

# The tap's own segmentation offload follows what the guest takes.
tap_tso() { t_in "$NS" ethtool -k "$TAP" | awk '/^tcp-segmentation-offload:/ { print $2 }'; }
uml_boot UPID "$NS" "$T_DIR/guest.sh" 120 virtio_uml.device="$SOCK:1"
if wait_mark gro-off 60 "$UPID"; then
	kc_eq "tap TSO off after the guest's rx-gro-hw off" "$(tap_tso)" off
	host_flag checked-off
	wait_mark gro-on 30 "$UPID" && kc_eq "tap TSO on again" "$(tap_tso)" on
	host_flag checked-on
else
	fail "guest switched rx-gro-hw (console: $UML_CONSOLE)"
fi
uml_wait "$UPID"
guest_relay
note "iperf3 with offloads: guest->ns $(guest_val tx) Mbit/s, ns->guest $(guest_val rx) Mbit/s"
t_stop "$DUMP_PID"

# Super-frames on the wire between the tap and kvmini, per direction.
big_in=$(grep -c "IP $GUEST_IP\.[0-9]* > $HOST_IP\.$PORT:" "$T_DIR/tcpdump.txt")
big_out=$(grep -c "IP $HOST_IP\.$PORT > $GUEST_IP\.[0-9]*:" "$T_DIR/tcpdump.txt")
[ "$big_in" -gt 0 ] && pass "tap received guest TSO frames longer than 3000 bytes ($big_in)" ||
	fail "tap received guest TSO frames longer than 3000 bytes (none; tcpdump: $T_DIR/tcpdump.txt)"
[ "$big_out" -gt 0 ] && pass "tap sent GSO frames longer than 3000 bytes to the guest ($big_out)" ||
	fail "tap sent GSO frames longer than 3000 bytes to the guest (none)"

kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_show
kc_gt0 tx_packets rx_packets rx_merged_buffers tx_ctrl_ok
kvmini_check_clean
tap_stat() { ip netns exec "$NS" cat "/sys/class/net/$TAP/statistics/$1"; }
kc_eq "tap rx_bytes == kvmini tx_bytes" "$(tap_stat rx_bytes)" "${KC[tx_bytes]:-}"
t_end
