#!/bin/bash
# kvmini's multiqueue virtio-net (vhost net --queues 2) driven by UML's own
# virtio_net over virtio_uml: the guest must negotiate VIRTIO_NET_F_MQ, see
# two queue pairs (ethtool -l), put both in use with `ethtool -L eth0
# combined 2` (VQ_PAIRS_SET on the control queue) and carry traffic on both.
#
# Case tap: a multi-queue tap in a namespace; ping and iperf3 -P 4 both ways;
#   kvmini's pair1_ counters must move both ways, the pairs must add up to
#   the totals, the guest's per-queue counters (ethtool -S) must equal
#   kvmini's per-pair ones, and the tap's counters kvmini's totals; iperf3
#   both ways at once while the guest switches between one and two pairs ten
#   times. kvmini's pair threads poll (--poll-us 50): some rounds of work
#   must be found by polling (rx_events_polled), with every count above
#   unchanged. Then `ethtool -L eth0 combined 1`: traffic goes on, pair 1 carries
#   nothing more either way.
# Case loopback: --backend loopback --queues 2, a frame sent on pair i comes
#   back on pair i: pings to 16 made-up neighbours (16 flows) spread over both
#   TX queues; for each pair rx == tx, in kvmini and in the guest. Twice:
#   with --inband (in-band notifications, which virtio_uml then uses: kicks
#   as VRING_KICK messages, calls as VRING_CALL requests) and with kvmini's
#   default, kick and call fds (a kick eventfd and a call socketpair per ring:
#   UML's "pipe" is one); then with --tx-coalesce-us 50.
#
# UML runs one CPU, so Linux's virtio_net starts with one pair in use
# (curr_queue_pairs = min(max_virtqueue_pairs, online CPUs)). virtio_uml sets
# up every ring virtio_net asks for (2 * pairs + 1) and enables them all; it
# never sends GET_QUEUE_NUM (no VHOST_USER_PROTOCOL_F_MQ): the pair count
# comes from the config space (max_virtqueue_pairs, GET_CONFIG).
# A guest kernel that does not negotiate MQ (UML_KERNEL) gets a SKIP for the
# two-pair checks and the one-pair checks instead.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_mq 200 iperf3 ethtool

HOST_IP=10.201.9.1
GUEST_IP=10.201.9.2
PORT=5201
SECS=${IPERF_SECS:-3}

# The guest's helpers for both cases (the host's ethtool, run chrooted).
GUEST_MQ_LIB=$(cat <<'EOF'
# feature_bit N: bit N of the features eth0's virtio device negotiated.
feature_bit() { cut -c$(($1 + 1)) /sys/class/net/eth0/device/features; }
# channels: "MAX CURRENT" combined channels of eth0.
channels() {
	hostrun ethtool -l eth0 | awk '/^Combined:/ { v = v " " $2 } END { print substr(v, 2) }'
}
# qstat NAME: one counter of `ethtool -S eth0` (e.g. tx_queue_1_packets;
# only the pairs in use are listed).
qstat() { hostrun ethtool -S eth0 | awk -v n="$1:" '$1 == n { print $2 }'; }
# settle: wait until eth0's received-frame count stays put for a second
# (at most 10 s): a closing connection's last segments (an iperf3 server's
# FIN or ACK) can come after the guest's last command, and the per-queue
# counters read then must be those kvmini ends with.
settle() {
	local a b i=0
	b=$(cat /sys/class/net/eth0/statistics/rx_packets)
	while [ $i -lt 10 ]; do
		sleep 1
		a=$b
		b=$(cat /sys/class/net/eth0/statistics/rx_packets)
		[ "$a" = "$b" ] && return 0
		i=$((i + 1))
	done
}
# show_qstats KEY: the per-queue packet counters -> gval KEY_NAME VALUE.
show_qstats() {
	local n
	for n in rx_queue_0_packets rx_queue_1_packets tx_queue_0_packets tx_queue_1_packets; do
		gval "$1_$n" "$(qstat $n)"
	done
}
# mq_setup: eth0 probed (else the script ends), then status 0 when MQ was
# negotiated and `ethtool -L eth0 combined 2` put both pairs in use, 1 when
# the driver did not negotiate MQ (gval mq 0: one pair, checked as such).
mq_setup() {
	wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
	gpass "eth0 appears (virtio_net probed)"
	say "features $(cat /sys/class/net/eth0/device/features)"
	if [ "$(feature_bit 22)" != 1 ]; then
		gval mq 0
		return 1
	fi
	gval mq 1
	gpass "VIRTIO_NET_F_MQ negotiated"
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
	return 0
}
EOF
)

# ------------------------------------------------------------- helpers

# kvmini_show_pairs: the per-pair packet counters of KC on one line.
kvmini_show_pairs() {
	local p line=
	for p in 0 1; do
		line+=" pair$p rx ${KC[pair${p}_rx_packets]:-?} tx ${KC[pair${p}_tx_packets]:-?};"
	done
	note "per pair (packets):$line"
}

# kc_pairs_add_up CASE: each pair's rx/tx packets/bytes add up to the totals.
kc_pairs_add_up() {
	local n
	for n in rx_packets rx_bytes tx_packets tx_bytes; do
		kc_eq "$1: kvmini pair0_$n + pair1_$n == $n" \
			"$(( ${KC[pair0_$n]:-0} + ${KC[pair1_$n]:-0} ))" "${KC[$n]:-}"
	done
}

# no_mq_checks CASE: the guest did not negotiate MQ: a SKIP for the two-pair
# checks, with the reason, and what one pair must show: pair 1 unused.
no_mq_checks() {
	skip "$1: two pairs: the guest's virtio_net did not negotiate VIRTIO_NET_F_MQ" \
		"(features on $UML_CONSOLE); one pair checked only"
	kc_eq "$1: no MQ: kvmini pair1 unused (rx_packets tx_packets)" \
		"${KC[pair1_rx_packets]:-} ${KC[pair1_tx_packets]:-}" "0 0"
	kc_gt0 pair0_rx_packets pair0_tx_packets
}

# ------------------------------------------------------------- case: tap

case_tap() {
	local sock=$T_RUN/net-tap.sock tap d mq snap1=()
	t_netns NS tap || { fail "ip netns add"; return; }
	tap="kvt${T_ID}q"
	# A persistent multi-queue tap: kvmini attaches its two queues to it.
	if ! { ip -n "$NS" tuntap add dev "$tap" mode tap multi_queue &&
		ip -n "$NS" addr add "$HOST_IP/24" dev "$tap" &&
		ip -n "$NS" link set "$tap" up; }; then
		fail "tap: multi-queue tap $tap in $NS"
		return
	fi
	t_bg IPERF_PID "$T_DIR/iperf3-server.log" "$NS" iperf3 -s -B "$HOST_IP" -p "$PORT"
	t_bg IPERF2_PID "$T_DIR/iperf3-server2.log" "$NS" iperf3 -s -B "$HOST_IP" -p $((PORT + 1))
	KVMINI_LOG_NAME=kvmini-tap
	# Its pair threads poll 50 µs before sleeping (--poll-us): iperf3's
	# traffic is dense enough that some rounds are found by polling.
	kvmini_start KPID "$NS" "$sock" "tap:$tap" --queues 2 --mac 52:54:00:c0:7a:09 \
		--poll-us 50 || return
	t_wait_port "$NS" "$HOST_IP" "$PORT" 5 || fail "tap: iperf3 server listening"
	t_wait_port "$NS" "$HOST_IP" $((PORT + 1)) 5 || fail "tap: second iperf3 server listening"

	guest_script "$T_DIR/guest-tap.sh" <<EOF
$GUEST_MQ_LIB
mq_setup
two=\$?   # 0: two pairs in use
ip addr add $GUEST_IP/24 dev eth0
ip link set eth0 up
gcheck "ping guest -> namespace" ping -c 3 -W 3 $HOST_IP
gmark ready
wait_flag pinged 30 || gfail "host pinged in time"
# Several flows: each TCP connection hashes to a queue, both ways (the guest
# picks a flow's TX queue by its hash; the tap sends a flow's frames on the
# queue they last came from).
giperf tx $SECS -c $HOST_IP -p $PORT -P 4 && gpass "iperf3 -P 4 guest -> namespace" ||
	gfail "iperf3 -P 4 guest -> namespace"
giperf rx $SECS -c $HOST_IP -p $PORT -P 4 -R && gpass "iperf3 -P 4 namespace -> guest" ||
	gfail "iperf3 -P 4 namespace -> guest"
gcheck "ping 1400 bytes x 20" ping -c 20 -i 0.05 -s 1400 -W 3 $HOST_IP
if [ \$two = 0 ]; then
	# VQ_PAIRS_SET under load: iperf3 -P 4 both ways at once while the
	# guest switches between one and two pairs ten times (kvmini stops and
	# restarts the pair threads, the tap's queue 1 is detached and attached).
	for d in tx rx; do
		(
			[ \$d = tx ] && a="-p $PORT" || a="-p $((PORT + 1)) -R"
			timeout $((SECS + 20)) chroot /host /usr/bin/env iperf3 -f m -t $((SECS + 1)) \
				-c $HOST_IP -P 4 \$a >/tmp/toggle-\$d.out 2>&1
			echo "status \$?" >>/tmp/toggle-\$d.out
		) &
	done
	sleep 0.5
	i=0
	while [ \$i -lt 10 ]; do
		hostrun ethtool -L eth0 combined 1 && hostrun ethtool -L eth0 combined 2 ||
			gfail "toggle \$i: ethtool -L eth0 combined 1, then 2"
		sleep 0.2
		i=\$((i + 1))
	done
	wait
	for d in tx rx; do
		grep -q '^status 0\$' /tmp/toggle-\$d.out &&
			gpass "iperf3 -P 4 \$d while switching pairs (\$(awk '/receiver\$/ { v = \$(NF - 2) } END { print v }' /tmp/toggle-\$d.out) Mbit/s)" ||
			{ gfail "iperf3 -P 4 \$d while switching pairs"; tail -n 5 /tmp/toggle-\$d.out; }
	done
	[ "\$(channels)" = "2 2" ] && gpass "ethtool -l: 2 pairs in use after switching" ||
		gfail "ethtool -l: 2 pairs in use after switching (got '\$(channels)')"
	gcheck "ping x 10 after switching" ping -c 10 -i 0.05 -W 3 $HOST_IP
	settle
	show_qstats two
	for d in rx tx; do
		[ "\$(qstat \${d}_queue_1_packets)" -gt 0 ] 2>/dev/null &&
			gpass "\$d queue 1 carried frames (\$(qstat \${d}_queue_1_packets))" ||
			gfail "\$d queue 1 carried frames (\$(qstat \${d}_queue_1_packets))"
	done
	# Back to one pair: VQ_PAIRS_SET 1, kvmini detaches tap queue 1, so
	# nothing comes on pair 1 either way from here (kvmini's counters say;
	# the guest's ethtool -S lists the pairs in use only).
	gcheck "ethtool -L eth0 combined 1" hostrun ethtool -L eth0 combined 1
	[ "\$(channels)" = "2 1" ] && gpass "ethtool -l: 1 pair in use again" ||
		gfail "ethtool -l: 1 pair in use again (got '\$(channels)')"
	gmark one-pair
	wait_flag snapped 30 || gfail "host took its snapshot in time"
	giperf tx1 $SECS -c $HOST_IP -p $PORT -P 4 && gpass "one pair: iperf3 -P 4 guest -> namespace" ||
		gfail "one pair: iperf3 -P 4 guest -> namespace"
	giperf rx1 $SECS -c $HOST_IP -p $PORT -P 4 -R && gpass "one pair: iperf3 -P 4 namespace -> guest" ||
		gfail "one pair: iperf3 -P 4 namespace -> guest"
	gcheck "one pair: ping x 5" ping -c 5 -i 0.1 -W 3 $HOST_IP
fi
settle
show_qstats end
hostrun ip -s link show eth0
EOF

	UML_CONSOLE_NAME=console-tap
	uml_boot UPID "$NS" "$T_DIR/guest-tap.sh" 120 virtio_uml.device="$sock:1"
	if wait_mark ready 40 "$UPID"; then
		check "tap: ping namespace -> guest" t_in "$NS" busybox ping -c 3 -W 3 -q "$GUEST_IP"
	else
		fail "tap: guest reached 'ready' (console: $UML_CONSOLE)"
	fi
	host_flag pinged
	if wait_mark one-pair 60 "$UPID"; then
		if kvmini_snapshot "$KPID" "$KVMINI_LOG"; then
			note "tap: after the traffic on two pairs:"
			kvmini_show_pairs
			kc_gt0 pair0_rx_packets pair0_tx_packets pair1_rx_packets pair1_tx_packets
			snap1=("${KC[pair1_rx_packets]:-}" "${KC[pair1_tx_packets]:-}")
		else
			fail "tap: kvmini's counters on SIGUSR1 (log: $KVMINI_LOG)"
		fi
	elif [ "$(guest_val mq)" != 0 ]; then
		fail "tap: guest reached 'one-pair' (console: $UML_CONSOLE)"
	fi
	host_flag snapped
	uml_wait "$UPID"
	guest_relay
	mq=$(guest_val mq)

	kvmini_stop "$KPID" "$KVMINI_LOG"
	note "tap: at exit:"
	kvmini_show
	kvmini_show_pairs
	kvmini_check_clean
	kc_pairs_add_up tap
	kc_gt0 rx_events_polled
	if [ "$mq" = 1 ]; then
		note "iperf3 -P 4, two pairs: guest->ns $(guest_val tx) Mbit/s, ns->guest $(guest_val rx) Mbit/s;" \
			"one pair: $(guest_val tx1), $(guest_val rx1) Mbit/s"
		kc_gt0 tx_ctrl_ok
		kc_eq "tap: kvmini tx_ctrl_refused == 0" "${KC[tx_ctrl_refused]:-}" 0
		if [ ${#snap1[@]} = 2 ]; then
			kc_eq "tap: pair 1 idle after 'combined 1' (rx_packets tx_packets)" \
				"${KC[pair1_rx_packets]:-} ${KC[pair1_tx_packets]:-}" "${snap1[*]}"
		fi
		# The guest's per-queue counters against kvmini's: pair 0's read
		# at the end, pair 1's just before 'combined 1'.
		for d in rx tx; do
			kc_eq "tap: guest ${d}_queue_0_packets == kvmini pair0_${d}_packets" \
				"$(guest_val end_${d}_queue_0_packets)" "${KC[pair0_${d}_packets]:-}"
			kc_eq "tap: guest ${d}_queue_1_packets == kvmini pair1_${d}_packets" \
				"$(guest_val two_${d}_queue_1_packets)" "${KC[pair1_${d}_packets]:-}"
		done
	elif [ "$mq" = 0 ]; then
		no_mq_checks tap
	else
		fail "tap: the guest said whether it negotiated MQ (console: $UML_CONSOLE)"
	fi
	# The tap counts what kvmini wrote (its rx) and read (its tx), over both
	# queues; read after kvmini stopped, both sides are final.
	tap_stat() { ip netns exec "$NS" cat "/sys/class/net/$tap/statistics/$1"; }
	kc_eq "tap: tap rx_packets == kvmini tx_packets" "$(tap_stat rx_packets)" "${KC[tx_packets]:-}"
	kc_eq "tap: tap rx_bytes == kvmini tx_bytes" "$(tap_stat rx_bytes)" "${KC[tx_bytes]:-}"
	d=$(( ${KC[rx_packets]:-0} + ${KC[rx_dropped_no_buffer]:-0} +
		${KC[rx_dropped_poisoned]:-0} + ${KC[rx_dropped_too_big]:-0} ))
	kc_eq "tap: tap tx_packets == kvmini rx_packets + rx_dropped_*" "$(tap_stat tx_packets)" "$d"
	t_stop "$IPERF_PID" 3
	t_stop "$IPERF2_PID" 3
}

# ------------------------------------------------------------- case: loopback

# case_loopback CASE [KVMINI ARGS...]
case_loopback() {
	local c=$1 sock=$T_RUN/net-$1.sock mq p s n=16 count=5
	shift
	# Nothing here touches a network: kvmini and UML run in this namespace.
	KVMINI_LOG_NAME=kvmini-$c
	kvmini_start KPID "" "$sock" loopback --queues 2 --mac 52:54:00:c0:7a:0a "$@" || return

	guest_script "$T_DIR/guest-$c.sh" <<EOF
$GUEST_MQ_LIB
mq_setup
ip addr add 10.202.9.2/24 dev eth0
ip link set eth0 up
# $n made-up neighbours (static ARP entries, so no ARP traffic): $n flows the
# guest spreads over its TX queues by their hash. No echo reply can come: the
# looped-back request is not for us.
i=1
while [ \$i -le $n ]; do
	hostrun ip neigh replace 10.202.9.\$((100 + i)) lladdr 02:00:00:00:00:\$((10 + i)) \\
		dev eth0 nud permanent || gfail "static neighbour entry \$i"
	i=\$((i + 1))
done
sleep 0.3
i=1
while [ \$i -le $n ]; do
	ping -q -c $count -i 0.02 -W 1 -s 1000 10.202.9.\$((100 + i)) >/dev/null
	i=\$((i + 1))
done
sleep 1
show_qstats lo
[ \$(stat_of eth0 tx_packets) -ge $((n * count)) ] && gpass "guest sent $((n * count)) frames or more" ||
	gfail "guest sent $((n * count)) frames or more"
[ \$(stat_of eth0 rx_packets) = \$(stat_of eth0 tx_packets) ] &&
	gpass "guest rx_packets == tx_packets" || gfail "guest rx_packets == tx_packets"
hostrun ip -s link show eth0
EOF

	UML_CONSOLE_NAME=console-$c
	uml_boot UPID "" "$T_DIR/guest-$c.sh" 60 virtio_uml.device="$sock:1"
	uml_wait "$UPID"
	guest_relay
	mq=$(guest_val mq)

	kvmini_stop "$KPID" "$KVMINI_LOG"
	note "$c: at exit:"
	kvmini_show_pairs
	kvmini_check_clean
	kc_pairs_add_up "$c"
	kc_eq "$c: kvmini rx_dropped_no_buffer == 0" "${KC[rx_dropped_no_buffer]:-}" 0
	if [ "$mq" = 1 ]; then
		kc_gt0 pair0_tx_packets pair1_tx_packets
		for p in 0 1; do
			for s in packets bytes; do
				kc_eq "$c: kvmini pair${p}_rx_$s == pair${p}_tx_$s" \
					"${KC[pair${p}_rx_$s]:-}" "${KC[pair${p}_tx_$s]:-}"
			done
			kc_eq "$c: guest rx_queue_${p}_packets == tx_queue_${p}_packets" \
				"$(guest_val lo_rx_queue_${p}_packets)" "$(guest_val lo_tx_queue_${p}_packets)"
			kc_eq "$c: guest tx_queue_${p}_packets == kvmini pair${p}_tx_packets" \
				"$(guest_val lo_tx_queue_${p}_packets)" "${KC[pair${p}_tx_packets]:-}"
		done
	elif [ "$mq" = 0 ]; then
		no_mq_checks "$c"
	else
		fail "$c: the guest said whether it negotiated MQ (console: $UML_CONSOLE)"
	fi
}

case_tap
# virtio_uml with in-band notifications: VRING_KICK messages and VRING_CALL
# requests instead of a kick eventfd and a call socketpair per ring.
case_loopback loopback-inband --inband
case_loopback loopback
# Each kick's TX drain waiting 50 µs for the frames queued after it.
case_loopback loopback-tx-coalesce --tx-coalesce-us 50
t_end
