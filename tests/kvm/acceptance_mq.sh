# Sourced by tests/kvm/acceptance.sh: the stock-mq case. Debian's cloud
# kernel with 2 vCPUs and `--net tap:NAME --queues 2` (VIRTIO_NET_F_MQ, the
# tap made with multi_queue, so kvmini opens it twice) runs the check of
# stock-tap (ping, share, poweroff) and, with ethtool and iperf3 in its
# initramfs (the host's, stock_guest_tools_initrd), guest/init's
# kvmini.mq= step:
#  - ethtool -l: 2 combined channels at most and in use (Linux's virtio_net
#    takes as many pairs as it has CPUs);
#  - between two gates the host opens (it reads kvmini's counters through
#    GET /metrics at each, then adds the gate's address to the tap, which
#    the guest pings until it answers): ethtool -L combined 1 then 2
#    (VQ_PAIRS_SET) and ethtool -K rx-gro-hw off then on (virtnet_set_features:
#    GUEST_OFFLOADS_SET), each seen done by ethtool -l / -k; the host sees
#    tx_ctrl_ok grow by exactly those four and tx_ctrl_refused stay 0;
#  - iperf3 -P 2 -t 3 to an iperf3 server in the namespace, then -R; from
#    the second gate to kvmini's exit both pairs moved frames
#    (pair0_/pair1_ rx_packets and tx_packets), and kvmini answered no
#    control command with an error in the whole run.
# The NIC has --tx-coalesce-us 50 (each kick's TX drain waits 50 µs) and
# --poll-us 1000 (its pair threads poll for an adaptive window of up to 1 ms
# before sleeping: the window grows only while events come within it, which
# under TCG takes the longest one), the share poll-us=1000, so all of this
# also holds with TX coalescing and polling in `kvmini run`: some rounds of
# the NIC's work were found by polling (rx_events_polled). The share's
# workers poll only after a request that moved 32 KiB, and the check's share
# work is a small file, so there the share only shows it works with the
# option (its polling is proven in test_virtio_fs and UML's
# test_fs_virtiofs). The stock-tap case runs with the default window, 200 µs.

MQ_GATES="10.211.0.3 10.211.0.4"
MQ_SOCK=
IPERF_PID=

# mq_gates: the host's side of the guest's gates: at gate N (its console
# line), GET /metrics into $CLOG/metrics-N.json, then the gate's address on
# the tap.
mq_gates() {
	local n=0 addr
	for addr in $MQ_GATES; do
		n=$((n + 1))
		for _ in $(seq $((LIMIT * 10))); do
			grep -q "kvmini-check: mq gate $n" "$CLOG/console.out" 2>/dev/null && break
			sleep 0.1
		done
		curl -s --max-time 10 --unix-socket "$MQ_SOCK" -o "$CLOG/metrics-$n.json" http://k/metrics
		ip -n "$NS" addr add "$addr/24" dev "$TAP"
	done
}

# metric N NAME: counter NAME of the device in $CLOG/metrics-N.json (the
# first, the aggregate's and the interface's are the same with one NIC).
metric() { grep -oE "\"$2\":[0-9]+" "$CLOG/metrics-$1.json" 2>/dev/null | head -n1 | cut -d: -f2; }
# at_exit NAME: counter NAME in kvmini's --counters at exit.
at_exit() { grep -oE "^$1 [0-9]+" <<<"$KVM_ERR" | head -n1 | cut -d' ' -f2; }

# mq_judge: the control commands between the gates, the pairs' traffic
# after the second, the refusals of the whole run.
mq_judge() {
	local ok1 ok2 bad1 bad2 refused p d name before after figures='' idle=''
	ok1=$(metric 1 tx_ctrl_ok) ok2=$(metric 2 tx_ctrl_ok)
	bad1=$(metric 1 tx_ctrl_refused) bad2=$(metric 2 tx_ctrl_refused)
	if [ -z "$ok1" ] || [ -z "$ok2" ]; then
		fail "control queue: no counters read at the gates (GET /metrics: $CLOG/metrics-{1,2}.json)"
	elif [ $((ok2 - ok1)) -eq 4 ] && [ "$bad1" = "$bad2" ]; then
		pass "control queue: the guest's 4 commands between the gates answered OK (tx_ctrl_ok $ok1 -> $ok2, tx_ctrl_refused $bad1 -> $bad2)"
	else
		fail "control queue: tx_ctrl_ok $ok1 -> $ok2 (wanted 4 more), tx_ctrl_refused $bad1 -> $bad2 between the gates"
	fi
	refused=$(at_exit tx_ctrl_refused)
	[ "$refused" = 0 ] && pass "control queue: no command refused in the whole run (tx_ctrl_ok $(at_exit tx_ctrl_ok) at exit)" ||
		fail "control queue: tx_ctrl_refused ${refused:-missing} at exit (log $CLOG/kvmini.err)"
	for p in 0 1; do
		for d in rx tx; do
			name=pair${p}_${d}_packets
			before=$(metric 2 "$name")
			after=$(at_exit "$name")
			if [ -z "$before" ] || [ -z "$after" ]; then
				idle+=" $name (missing)"
				continue
			fi
			figures+=" $name +$((after - before)) ($after in all)"
			[ $((after - before)) -gt 0 ] || idle+=" $name"
		done
	done
	echo "INFO: acceptance stock-mq: during iperf3:$figures"
	local polled
	polled=$(at_exit rx_events_polled)
	[ "${polled:-0}" -gt 0 ] && pass "--poll-us 1000: rounds of the NIC's work found by polling ($polled)" ||
		fail "--poll-us 1000: rx_events_polled ${polled:-missing} at exit (log $CLOG/kvmini.err)"
	[ -z "$idle" ] && pass "both pairs carried frames each way during iperf3 -P 2 (and -R)" ||
		fail "a pair idle during iperf3 -P 2:$idle (log $CLOG/kvmini.err)"
}

# iperf_server_start / _stop: iperf3 -s in the namespace (its log in $CLOG).
iperf_server_start() {
	ip netns exec "$NS" iperf3 -s >"$CLOG/iperf3-server.log" 2>&1 &
	IPERF_PID=$!
	for _ in $(seq 50); do
		ip netns exec "$NS" ss -ltn 2>/dev/null | grep -q ':5201 ' && return 0
		sleep 0.1
	done
	return 1
}
iperf_server_stop() {
	[ -n "$IPERF_PID" ] || return 0
	kill "$IPERF_PID" 2>/dev/null
	wait "$IPERF_PID" 2>/dev/null
	IPERF_PID=
}

case_stock_mq() {
	local CPUS=2 tool
	stock_ready stock-mq || return
	for tool in curl iperf3 ethtool; do
		command -v "$tool" >/dev/null || { echo "SKIP: acceptance stock-mq: $tool is not installed (scripts/setup.sh)"; return; }
	done
	stock_guest_tools_initrd build/stock-guest/tools-initramfs.gz 2>"$LOG/stock-mq-initrd.log" ||
		{ fail "building the stock guest's initramfs with ethtool and iperf3 ($(tail -n1 "$LOG/stock-mq-initrd.log"))"; return; }
	tap_up 10.211.0.1/24 multi_queue || { fail "multi-queue tap $TAP in $NS"; return; }
	CLOG=$LOG/stock-mq
	rm -rf "$CLOG"
	mkdir -p "$CLOG"
	iperf_server_start || { fail "iperf3 -s in $NS does not listen ($(tail -n1 "$CLOG/iperf3-server.log"))"; iperf_server_stop; return; }
	MQ_SOCK=$LOG/stock-mq.sock
	rm -f "$MQ_SOCK"
	KVM_CHECK_GUEST=(--kernel "$STOCK_DIR/vmlinuz" --host-decompress
		--initrd build/stock-guest/tools-initramfs.gz --api-sock "$MQ_SOCK")
	KVM_CHECK_NET_OPTS=(--queues 2 --tx-coalesce-us 50 --poll-us 1000)
	KVM_CHECK_FS_OPTS=,poll-us=1000
	KVM_CHECK_CMDLINE+=" kvmini.mq=$(tr ' ' , <<<"$MQ_GATES")"
	ACCEPT_SIDE=(mq_gates) ACCEPT_JUDGE=mq_judge
	accept stock-mq "tap:$TAP" 10.211.0.2/24 10.211.0.1
	ACCEPT_SIDE=() ACCEPT_JUDGE=
	KVM_CHECK_NET_OPTS=()
	KVM_CHECK_FS_OPTS=
	iperf_server_stop
}
