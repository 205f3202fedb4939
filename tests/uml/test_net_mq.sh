#!/bin/bash
# kvmini's multiqueue virtio-net (--queues 2) driven by UML's own virtio_net
# over virtio_uml: the guest must negotiate VIRTIO_NET_F_MQ, see two queue
# pairs (ethtool -l), switch to both with `ethtool -L eth0 combined 2`
# (VQ_PAIRS_SET on the control queue), and carry traffic on both pairs.
#
# Case tap: a multi-queue tap in a namespace; ping and iperf3 -P 4 both ways;
#   kvmini's pair1_ counters must move both ways, the pairs must add up to the
#   totals, the guest's own per-queue counters (ethtool -S) must agree, and
#   the tap's counters must equal kvmini's. Then `ethtool -L eth0 combined 1`:
#   traffic goes on, and pair 1 carries nothing more either way.
# Case loopback: --backend loopback --queues 2, frames sent on pair i come
#   back on pair i: pings to several made-up neighbours (static ARP entries)
#   spread over both TX queues; for each pair rx == tx, in kvmini and in the
#   guest's per-queue counters.
#
# UML runs one CPU, so Linux's virtio_net starts with one pair in use
# (curr_queue_pairs = min(max pairs, online CPUs)); ethtool -L asks for both.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_mq 200 iperf3 ethtool

HOST_IP=10.201.9.1
GUEST_IP=10.201.9.2
PORT=5201
SECS=${IPERF_SECS:-3}

# The guest's helpers for both cases: MQ negotiated, the channel counts, and
# the per-queue counters of `ethtool -S`.
GUEST_MQ_LIB=$(cat <<'EOF'
# feature_bit N: the negotiated feature bit N of eth0's virtio device.
feature_bit() { cut -c$(($1 + 1)) /sys/class/net/eth0/device/features; }
# channels: "MAX CURRENT" combined channels of eth0.
channels() {
	hostrun ethtool -l eth0 | awk '/^Combined:/ { v = v " " $2 } END { print substr(v, 2) }'
}
# qstat NAME: one counter of `ethtool -S eth0` (e.g. tx_queue_1_packets).
qstat() { hostrun ethtool -S eth0 | awk -v n="$1:" '$1 == n { print $2 }'; }
# show_qstats KEY: the per-queue packet counters -> gval KEY_NAME VALUE.
show_qstats() {
	local n
	for n in rx_queue_0_packets rx_queue_1_packets tx_queue_0_packets tx_queue_1_packets; do
		gval "$1_$n" "$(qstat $n)"
	done
}
check_mq_setup() {
	wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
	gpass "eth0 appears (virtio_net probed)"
	[ "$(feature_bit 22)" = 1 ] && gpass "VIRTIO_NET_F_MQ negotiated" ||
		{ gfail "VIRTIO_NET_F_MQ negotiated (features $(cat /sys/class/net/eth0/device/features))"; exit 1; }
	[ "$(feature_bit 17)" = 1 ] && gpass "VIRTIO_NET_F_CTRL_VQ negotiated" ||
		gfail "VIRTIO_NET_F_CTRL_VQ negotiated"
	hostrun ethtool -l eth0 | sed 's/^/    /'
	[ "$(channels)" = "2 1" ] && gpass "ethtool -l: 2 pairs, 1 in use (one CPU)" ||
		gfail "ethtool -l: 2 pairs, 1 in use (one CPU) (got '$(channels)')"
	gcheck "ethtool -L eth0 combined 2" hostrun ethtool -L eth0 combined 2
	[ "$(channels)" = "2 2" ] && gpass "ethtool -l: 2 pairs in use" ||
		gfail "ethtool -l: 2 pairs in use (got '$(channels)')"
	[ -d /sys/class/net/eth0/queues/tx-1 ] && [ -d /sys/class/net/eth0/queues/rx-1 ] &&
		gpass "eth0 has queues rx-1 and tx-1" || gfail "eth0 has queues rx-1 and tx-1"
}
EOF
)

# ------------------------------------------------------------- case: tap

case_tap() {
	local sock=$T_RUN/net-tap.sock tap p d
	t_netns NS tap || { fail "ip netns add"; return; }
	tap="kvt${T_ID}q"
	# A persistent multi-queue tap: kvmini attaches its two queues to it.
	if ! { ip -n "$NS" tuntap add dev "$tap" mode tap multi_queue &&
		ip -n "$NS" addr add "$HOST_IP/24" dev "$tap" &&
		ip -n "$NS" link set "$tap" up; }; then
		fail "multi-queue tap $tap in $NS"
		return
	fi
	t_bg IPERF_PID "$T_DIR/iperf3-server.log" "$NS" iperf3 -s -B "$HOST_IP" -p "$PORT"
	KVMINI_LOG_NAME=kvmini-tap
	kvmini_start KPID "$NS" "$sock" "tap:$tap" --queues 2 --mac 52:54:00:c0:7a:09 || return
	t_wait_port "$NS" "$HOST_IP" "$PORT" 5 || fail "iperf3 server listening"

	guest_script "$T_DIR/guest-tap.sh" <<EOF
$GUEST_MQ_LIB
check_mq_setup
ip addr add $GUEST_IP/24 dev eth0
ip link set eth0 up
gcheck "ping guest -> namespace" ping -c 3 -W 3 $HOST_IP
gmark ready
wait_flag pinged 30 || gfail "host pinged in time"
# Several flows: each TCP connection hashes to a queue of its own.
giperf tx $SECS -c $HOST_IP -p $PORT -P 4 && gpass "iperf3 -P 4 guest -> namespace" ||
	gfail "iperf3 -P 4 guest -> namespace"
giperf rx $SECS -c $HOST_IP -p $PORT -P 4 -R && gpass "iperf3 -P 4 namespace -> guest" ||
	gfail "iperf3 -P 4 namespace -> guest"
gcheck "ping 1400 bytes x 20" ping -c 20 -i 0.05 -s 1400 -W 3 $HOST_IP
show_qstats two
for d in rx tx; do
	[ "\$(qstat \${d}_queue_1_packets)" -gt 0 ] 2>/dev/null &&
		gpass "guest: \$d queue 1 carried frames (\$(qstat \${d}_queue_1_packets))" ||
		gfail "guest: \$d queue 1 carried frames (\$(qstat \${d}_queue_1_packets))"
done
gmark two-pairs-done
wait_flag snapped 30 || gfail "host took its snapshot in time"
gcheck "ethtool -L eth0 combined 1" hostrun ethtool -L eth0 combined 1
[ "\$(channels)" = "2 1" ] && gpass "ethtool -l: 1 pair in use again" ||
	gfail "ethtool -l: 1 pair in use again (got '\$(channels)')"
q1="\$(qstat rx_queue_1_packets) \$(qstat tx_queue_1_packets)"
giperf tx1 $SECS -c $HOST_IP -p $PORT -P 4 && gpass "one pair: iperf3 -P 4 guest -> namespace" ||
	gfail "one pair: iperf3 -P 4 guest -> namespace"
giperf rx1 $SECS -c $HOST_IP -p $PORT -P 4 -R && gpass "one pair: iperf3 -P 4 namespace -> guest" ||
	gfail "one pair: iperf3 -P 4 namespace -> guest"
gcheck "one pair: ping x 5" ping -c 5 -i 0.1 -W 3 $HOST_IP
[ "\$(qstat rx_queue_1_packets) \$(qstat tx_queue_1_packets)" = "\$q1" ] &&
	gpass "guest: queue pair 1 idle with one pair in use" ||
	gfail "guest: queue pair 1 idle with one pair in use (\$q1 -> \$(qstat rx_queue_1_packets) \$(qstat tx_queue_1_packets))"
show_qstats one
hostrun ip -s link show eth0
EOF

	uml_boot UPID "$NS" "$T_DIR/guest-tap.sh" 120 virtio_uml.device="$sock:1"
	UML_CONSOLE_TAP=$UML_CONSOLE
	if wait_mark ready 40 "$UPID"; then
		check "ping namespace -> guest" t_in "$NS" busybox ping -c 3 -W 3 -q "$GUEST_IP"
	else
		fail "guest reached 'ready' (console: $UML_CONSOLE)"
	fi
	host_flag pinged
	local snap1=()
	if wait_mark two-pairs-done 60 "$UPID" && kvmini_snapshot "$KPID" "$KVMINI_LOG"; then
		pass "kvmini counters with two pairs in use"
		kvmini_show_pairs
		kc_gt0 pair0_rx_packets pair0_tx_packets pair1_rx_packets pair1_tx_packets
		snap1=("${KC[pair1_rx_packets]:-}" "${KC[pair1_tx_packets]:-}")
	else
		fail "kvmini counters with two pairs in use (console: $UML_CONSOLE)"
	fi
	host_flag snapped
	uml_wait "$UPID"
	guest_relay
	note "iperf3 -P 4, two pairs: guest->ns $(guest_val tx) Mbit/s, ns->guest $(guest_val rx) Mbit/s;" \
		"one pair: $(guest_val tx1), $(guest_val rx1) Mbit/s"

	kvmini_stop "$KPID" "$KVMINI_LOG"
	kvmini_show
	kvmini_show_pairs
	kvmini_check_clean
	kc_pairs_add_up
	kc_gt0 tx_ctrl_ok
	kc_eq "kvmini tx_ctrl_refused == 0" "${KC[tx_ctrl_refused]:-}" 0
	if [ ${#snap1[@]} = 2 ]; then
		kc_eq "pair 1 idle after 'combined 1' (rx_packets tx_packets)" \
			"${KC[pair1_rx_packets]:-} ${KC[pair1_tx_packets]:-}" "${snap1[*]}"
	fi
	# The guest's per-queue counters against kvmini's (read after the
	# guest's last traffic, both final).
	for p in 0 1; do
		kc_eq "guest rx_queue_${p}_packets == kvmini pair${p}_rx_packets" \
			"$(guest_val one_rx_queue_${p}_packets)" "${KC[pair${p}_rx_packets]:-}"
		kc_eq "guest tx_queue_${p}_packets == kvmini pair${p}_tx_packets" \
			"$(guest_val one_tx_queue_${p}_packets)" "${KC[pair${p}_tx_packets]:-}"
	done
	tap_stat() { ip netns exec "$NS" cat "/sys/class/net/$tap/statistics/$1"; }
	kc_eq "tap rx_packets == kvmini tx_packets" "$(tap_stat rx_packets)" "${KC[tx_packets]:-}"
	kc_eq "tap rx_bytes == kvmini tx_bytes" "$(tap_stat rx_bytes)" "${KC[tx_bytes]:-}"
	d=$(( ${KC[rx_packets]:-0} + ${KC[rx_dropped_no_buffer]:-0} +
		${KC[rx_dropped_poisoned]:-0} + ${KC[rx_dropped_too_big]:-0} ))
	kc_eq "tap tx_packets == kvmini rx_packets + rx_dropped_*" "$(tap_stat tx_packets)" "$d"
	t_stop "$IPERF_PID" 3
}

# ------------------------------------------------------------- helpers

# kvmini_show_pairs: the per-pair packet counters of KC on one line.
kvmini_show_pairs() {
	local p line=
	for p in 0 1; do
		line+=" pair$p rx ${KC[pair${p}_rx_packets]:-?} tx ${KC[pair${p}_tx_packets]:-?};"
	done
	note "per pair (packets):$line"
}

# kc_pairs_add_up: each pair's rx/tx packets/bytes add up to the totals.
kc_pairs_add_up() {
	local n
	for n in rx_packets rx_bytes tx_packets tx_bytes; do
		kc_eq "kvmini pair0_$n + pair1_$n == $n" \
			"$(( ${KC[pair0_$n]:-0} + ${KC[pair1_$n]:-0} ))" "${KC[$n]:-}"
	done
}

case_tap
t_end
