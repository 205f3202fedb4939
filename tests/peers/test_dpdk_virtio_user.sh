#!/bin/bash
# DPDK's virtio-user PMD (dpdk-testpmd, package dpdk-dev) as the vhost-user
# front-end of kvmini's virtio-net: a userspace virtio-net driver, so a real
# peer for the data path.
#
# Memory: no hugepages. In --no-huge mode DPDK 22.11 backs its memory with a
# memfd mapped shared, which virtio-user hands to kvmini in SET_MEM_TABLE.
#
#   1. loopback backend, exact: testpmd (rxonly) sends 4 bursts of 32 frames
#      at 64, 1000, 1514 and 2000 bytes (the last in two segments); it must
#      receive them all back, and its port counters must equal kvmini's.
#   2. loopback, throughput: io forwarding with 128 frames in flight; kvmini's
#      counters against testpmd's; the rate is printed (information only).
#   3. testpmd killed with SIGKILL while forwarding; kvmini survives, and
#   4. serves the next testpmd exactly; frames too big for the driver's RX
#      buffers are dropped and counted.
#   5. two queue pairs: kvmini --queues 2, virtio-user queues=2 and testpmd
#      with two RX and two TX queues (its control queue enables pair 1):
#      every frame comes back, testpmd's per-queue counters and kvmini's
#      pair0_ and pair1_ counters show traffic on both pairs.
#   6. tap backend in a namespace: testpmd's frames appear on the tap, and
#      pings from the namespace reach testpmd; testpmd, kvmini and the tap
#      agree on every count.
#
# Shared helpers come from tests/uml/lib.sh; logs go to build/test-logs/peers/.
# Environment knobs: KVMINI (binary), TESTPMD (default dpdk-testpmd),
# TP_SECS (seconds of the throughput run, default 3).
set -uo pipefail
. "$(dirname "$0")/../uml/lib.sh"
T_LOG_BASE=$UML_TOP/build/test-logs/peers

TESTPMD=${TESTPMD:-dpdk-testpmd}
TP_SECS=${TP_SECS:-3}
TP_MAC=52:54:00:c0:7a:31
TP_N=0
TP_PID=
declare -gA TP=()

t_begin test_dpdk_virtio_user 240
command -v "$TESTPMD" >/dev/null ||
	{ fail "no $TESTPMD (apt-get install --no-install-recommends dpdk-dev)"; t_end; }
kvmini_pick || t_end

# DPDK keeps a runtime directory per file prefix, even with --no-shconf.
TP_PREFIX=kvt-$T_ID
peer_cleanup() {
	local rc=$?
	rm -rf "/var/run/dpdk/$TP_PREFIX"
	return $rc
}
trap 'peer_cleanup; t_cleanup' EXIT

# ---------------------------------------------------------------- testpmd

# tp_start SOCKET [QUEUES]: an interactive testpmd on SOCKET with QUEUES
# queue pairs (default 1; more: as many RX and TX queues), commands through
# a fifo on fd 3, output in $T_DIR/testpmd-N.log (TP_LOG). Two lcores: the
# main one reads commands, the other forwards (and spins).
tp_start() {
	local fifo i q=${2:-1}
	TP_N=$((TP_N + 1))
	TP_LOG=$T_DIR/testpmd-$TP_N.log
	fifo=$T_RUN/testpmd-$TP_N.in
	mkfifo "$fifo" || return 1
	# The child opens the fifo before exec, and blocks until fd 3 opens;
	# stdbuf execs testpmd, so the PID is testpmd's.
	# Line-buffered, so every finished line is in the log when the prompt is.
	stdbuf -oL "$TESTPMD" -l 0-1 --no-pci --no-huge -m 256 --no-shconf --no-telemetry \
		--file-prefix "$TP_PREFIX" \
		--vdev="net_virtio_user0,path=$1,queues=$q,mac=$TP_MAC" \
		-- -i --total-num-mbufs=8192 --rxq="$q" --txq="$q" <"$fifo" >"$TP_LOG" 2>&1 &
	TP_PID=$!
	t_track "$TP_PID"
	exec 3>"$fifo"
	for ((i = 0; i < 200; i++)); do
		grep -a -q 'testpmd> ' "$TP_LOG" && break
		kill -0 "$TP_PID" 2>/dev/null || break
		sleep 0.1
	done
	if grep -a -q -E "^Port 0: ${TP_MAC^^}" "$TP_LOG" && grep -a -q 'testpmd> ' "$TP_LOG"; then
		pass "testpmd $TP_N: virtio-user port 0 up on kvmini"
		return 0
	fi
	fail "testpmd $TP_N: virtio-user port 0 up on kvmini (log: $TP_LOG)"
	grep -a -E 'virtio|EAL: Error|Cause|fail' "$TP_LOG" | tail -n 8 | sed 's/^/    | /'
	return 1
}

# tp_prompts: how many prompts testpmd has printed (one when it is ready,
# then one after each command).
tp_prompts() { grep -a -o 'testpmd> ' "$TP_LOG" | wc -l; }

# tp_cmd CMD...: run each command and wait for it to finish (the next
# prompt), 10 s at most each.
tp_cmd() {
	local c n i
	for c in "$@"; do
		n=$(tp_prompts)
		printf '%s\n' "$c" >&3 || return 1
		for ((i = 0; i < 200; i++)); do
			[ "$(tp_prompts)" -gt "$n" ] && break
			kill -0 "$TP_PID" 2>/dev/null || return 1
			sleep 0.05
		done
	done
}

# tp_stats: "show port stats 0" into TP (rx_packets, rx_bytes, rx_errors,
# rx_missed, rx_nombuf, tx_packets, tx_bytes, tx_errors, rx_pps).
tp_stats() {
	local k v
	tp_cmd "show port stats 0" || return 1
	TP=()
	while read -r k v; do
		TP[$k]=$v
	done < <(awk '/NIC statistics for port 0/ { delete c }
		{
			while (match($0, /(RX|TX|Rx|Tx)-[a-z]+: +[0-9]+/)) {
				f = substr($0, RSTART, RLENGTH)
				$0 = substr($0, RSTART + RLENGTH)
				split(f, kv, /: +/)
				k = tolower(kv[1]); gsub("-", "_", k)
				c[k] = kv[2]
			}
		}
		END { for (k in c) print k, c[k] }' "$TP_LOG")
	[ -n "${TP[rx_packets]:-}" ] && [ -n "${TP[tx_packets]:-}" ] && [ -n "${TP[rx_pps]:-}" ]
}

# tp_xstats: "show port xstats 0" into TPX (rx_q0_good_packets, tx_q1_good_packets,
# ... as the virtio PMD names them).
declare -gA TPX=()
tp_xstats() {
	local k v
	tp_cmd "show port xstats 0" || return 1
	TPX=()
	while read -r k v; do
		TPX[$k]=$v
	done < <(awk '/NIC extended statistics for port 0/ { delete c }
		/^ *[a-z0-9_]+: [0-9]+$/ { sub(":", "", $1); c[$1] = $2 }
		END { for (k in c) print k, c[k] }' "$TP_LOG")
	[ -n "${TPX[tx_q1_good_packets]:-}" ]
}

# tp_quit: quit testpmd and reap it (SIGKILL after 10 s).
tp_quit() {
	local i
	tp_cmd quit 2>/dev/null
	exec 3>&-
	for ((i = 0; i < 100; i++)); do
		kill -0 "$TP_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$TP_PID" 2>/dev/null; then
		fail "testpmd $TP_N quits (log: $TP_LOG)"
		kill -KILL "$TP_PID" 2>/dev/null
	fi
	wait "$TP_PID" 2>/dev/null
}

# tp_wait_rx N SECS: poll the port until it received N frames.
tp_wait_rx() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		tp_stats || return 1
		[ "${TP[rx_packets]}" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------- kvmini

snap() {
	kvmini_snapshot "$KPID" "$KVMINI_LOG" && return 0
	fail "kvmini answers SIGUSR1 with its counters"
	return 1
}

declare -gA K0=()
# mark: remember kvmini's counters; d NAME: NAME's growth since the mark.
mark() {
	local k
	snap || return 1
	K0=()
	for k in "${!KC[@]}"; do K0[$k]=${KC[$k]}; done
}
d() { echo $(( ${KC[$1]:-0} - ${K0[$1]:-0} )); }

kvmini_alive() {
	if kill -0 "$KPID" 2>/dev/null; then
		pass "kvmini still serving after $1"
	else
		fail "kvmini still serving after $1 (log: $KVMINI_LOG)"
		tail -n 20 "$KVMINI_LOG" | sed 's/^/    | /'
		t_end
	fi
}

# session_clean N: N front-ends so far, none refused or broken.
session_clean() {
	kc_eq "vhost_user_connections == $1" "${KC[vhost_user_connections]:-}" "$1"
	kc_eq "vhost_user_rx_messages_invalid == 0" "${KC[vhost_user_rx_messages_invalid]:-}" 0
	kc_eq "vhost_user_rx_messages_unknown == 0" "${KC[vhost_user_rx_messages_unknown]:-}" 0
	kc_eq "vhost_user_disconnects_error == 0" "${KC[vhost_user_disconnects_error]:-}" 0
	kc_eq "vhost_user_device_activate_failed == 0" \
		"${KC[vhost_user_device_activate_failed]:-}" 0
}

# exact_checks LABEL: testpmd's port counters == kvmini's growth since the
# mark, every frame back, no error on either side.
exact_checks() {
	kc_eq "$1: testpmd RX == TX packets" "${TP[rx_packets]}" "${TP[tx_packets]}"
	kc_eq "$1: testpmd RX == TX bytes" "${TP[rx_bytes]}" "${TP[tx_bytes]}"
	kc_eq "$1: kvmini tx_packets == testpmd TX" "$(d tx_packets)" "${TP[tx_packets]}"
	kc_eq "$1: kvmini tx_bytes == testpmd TX bytes" "$(d tx_bytes)" "${TP[tx_bytes]}"
	kc_eq "$1: kvmini rx_packets == testpmd RX" "$(d rx_packets)" "${TP[rx_packets]}"
	kc_eq "$1: kvmini rx_bytes == testpmd RX bytes" "$(d rx_bytes)" "${TP[rx_bytes]}"
	kc_eq "$1: testpmd RX/TX errors, missed, no mbuf" \
		"${TP[rx_errors]:-?} ${TP[tx_errors]:-?} ${TP[rx_missed]:-?} ${TP[rx_nombuf]:-?}" "0 0 0 0"
}

# ---------------------------------------------------------------- 1. exact

SOCK=$T_RUN/net.sock
kvmini_start KPID "" "$SOCK" loopback || t_end
mark || t_end

if tp_start "$SOCK"; then
	tp_cmd "set fwd rxonly"
	total=0
	for size in 64 1000 1514 1000,1000; do
		tp_cmd "set txpkts $size" "start tx_first 4"
		sleep 0.3
		tp_cmd stop
		for seg in ${size//,/ }; do
			total=$((total + 128 * seg))
		done
	done
	# Receive whatever is still on the way back.
	tp_cmd start
	tp_wait_rx 512 10
	tp_cmd stop
	tp_stats
	kc_eq "exact: testpmd sent 512 frames" "${TP[tx_packets]:-}" 512
	kc_eq "exact: testpmd sent $total bytes" "${TP[tx_bytes]:-}" "$total"
	snap && exact_checks exact
	tp_quit
	sleep 0.3
	kvmini_alive "testpmd 1 quit"
	snap && session_clean 1
fi

# ---------------------------------------------------------------- 2. throughput

mark || t_end
if tp_start "$SOCK"; then
	tp_cmd "set fwd io" "set txpkts 64" "start tx_first 4"
	sleep 1
	tp_stats
	sleep "$TP_SECS"
	tp_stats
	pps=${TP[rx_pps]:-0}
	tp_cmd stop
	sleep 0.3
	tp_stats
	snap
	note "throughput: $(awk -v p="$pps" 'BEGIN { printf "%.3f", p / 1e6 }') Mpps of 64-byte frames," \
		"testpmd -> kvmini loopback -> testpmd (${KVMINI_BIN#"$UML_TOP"/}, io forwarding," \
		"128 in flight)"
	if [ "${TP[tx_packets]}" -gt 1000 ]; then
		pass "io forwarding: frames keep going round (${TP[tx_packets]} sent)"
	else
		fail "io forwarding: frames keep going round (${TP[tx_packets]} sent)"
	fi
	kc_eq "io: kvmini tx_packets == testpmd TX" "$(d tx_packets)" "${TP[tx_packets]}"
	kc_eq "io: kvmini tx_bytes == testpmd TX bytes" "$(d tx_bytes)" "${TP[tx_bytes]}"
	kc_eq "io: kvmini rx_packets == tx_packets (loopback, nothing dropped)" \
		"$(d rx_packets)" "$(d tx_packets)"
	# What kvmini wrote but testpmd had not read when it stopped.
	unread=$(( $(d rx_packets) - TP[rx_packets] ))
	if [ "$unread" -ge 0 ] && [ "$unread" -le 256 ]; then
		pass "io: testpmd RX == kvmini rx_packets less at most one ring ($unread unread)"
	else
		fail "io: testpmd RX == kvmini rx_packets less at most one ring ($unread unread)"
	fi
	kc_eq "io: testpmd TX errors" "${TP[tx_errors]:-}" 0
	tp_quit
	sleep 0.3
	kvmini_alive "testpmd 2 quit"
	snap && session_clean 2
fi

# ---------------------------------------------------------------- 3. SIGKILL

mark || t_end
if tp_start "$SOCK"; then
	tp_cmd "set fwd io" "start tx_first 4"
	for ((i = 0; i < 50; i++)); do
		snap || break
		[ "$(d tx_packets)" -ge 10000 ] && break
		sleep 0.1
	done
	if [ "$(d tx_packets)" -ge 10000 ]; then
		pass "testpmd 3 forwarding before the kill ($(d tx_packets) frames)"
	else
		fail "testpmd 3 forwarding before the kill ($(d tx_packets) frames)"
	fi
	# (stderr: bash's "Killed" job notice)
	{
		kill -KILL "$TP_PID"
		wait "$TP_PID"
	} 2>/dev/null
	exec 3>&-
	sleep 0.5
	kvmini_alive "testpmd 3 killed (SIGKILL) while forwarding"
	snap && session_clean 3
	closed=$(grep -c 'front-end closed the connection' "$KVMINI_LOG")
	kc_eq "kvmini saw 3 front-ends close" "$closed" 3
fi

# ---------------------------------------------------------------- 4. after the kill

mark || t_end
if tp_start "$SOCK"; then
	tp_cmd "set fwd rxonly" "set txpkts 128" "start tx_first 8"
	tp_wait_rx 256 10
	tp_cmd stop
	tp_stats
	kc_eq "after the kill: testpmd sent 256 frames" "${TP[tx_packets]:-}" 256
	snap && exact_checks "after the kill"
	# 3000-byte frames (two segments) do not fit the driver's 2048-byte RX
	# buffers (no mergeable RX buffers): dropped and counted, not truncated.
	mark
	tp_cmd "set txpkts 1500,1500" "start tx_first 1"
	sleep 0.5
	tp_cmd stop
	snap
	kc_eq "oversize: kvmini took the 32 frames of 3000 bytes" \
		"$(d tx_packets) $(d tx_bytes)" "32 96000"
	kc_eq "oversize: rx_dropped_too_big 32, nothing written to the driver" \
		"$(d rx_dropped_too_big) $(d rx_packets)" "32 0"
	tp_quit
	sleep 0.3
	snap && session_clean 4
fi

kvmini_stop "$KPID" "$KVMINI_LOG"
# The oversize drops were expected and checked above.
KC[rx_dropped_too_big]=$(( ${KC[rx_dropped_too_big]:-0} - 32 ))
kvmini_check_clean
mv "$KVMINI_LOG" "$T_DIR/kvmini-loopback.log"

# ---------------------------------------------------------------- 5. two queue pairs

# virtio-user starts all four rings and enables pair 0; testpmd's two
# queues make it send VQ_PAIRS_SET 2 on its (emulated) control queue, which
# it turns into SET_VRING_ENABLE for rings 2 and 3. tx_first sends its
# bursts on each TX queue: 2 x 4 x 32 frames.
kvmini_start KPID "" "$SOCK" loopback --queues 2 -v || t_end
mark || t_end
if tp_start "$SOCK" 2; then
	tp_cmd "set fwd rxonly" "set txpkts 64" "start tx_first 4"
	tp_wait_rx 256 10
	tp_cmd stop
	tp_stats
	tp_xstats || fail "two pairs: testpmd reports per-queue counters"
	kc_eq "two pairs: testpmd sent 256 frames" "${TP[tx_packets]:-}" 256
	snap && exact_checks "two pairs"
	kc_eq "two pairs: testpmd sent 128 frames on each TX queue" \
		"${TPX[tx_q0_good_packets]:-} ${TPX[tx_q1_good_packets]:-}" "128 128"
	if [ "${TPX[rx_q1_good_packets]:-0}" -gt 0 ] && [ "${TPX[rx_q0_good_packets]:-0}" -gt 0 ]; then
		pass "two pairs: testpmd received on both RX queues" \
			"(${TPX[rx_q0_good_packets]} + ${TPX[rx_q1_good_packets]})"
	else
		fail "two pairs: testpmd received on both RX queues" \
			"(${TPX[rx_q0_good_packets]:-?} + ${TPX[rx_q1_good_packets]:-?})"
	fi
	kc_eq "two pairs: kvmini pair0_tx_packets, pair1_tx_packets == testpmd's TX queues" \
		"$(d pair0_tx_packets) $(d pair1_tx_packets)" "${TPX[tx_q0_good_packets]:-} ${TPX[tx_q1_good_packets]:-}"
	kc_eq "two pairs: kvmini pair0_rx_packets, pair1_rx_packets == testpmd's RX queues" \
		"$(d pair0_rx_packets) $(d pair1_rx_packets)" "${TPX[rx_q0_good_packets]:-} ${TPX[rx_q1_good_packets]:-}"
	for ring in 2 3; do
		if grep -q -E "SET_VRING_ENABLE \(18\).* ring $ring num 1$" "$KVMINI_LOG"; then
			pass "two pairs: virtio-user enabled ring $ring"
		else
			fail "two pairs: virtio-user enabled ring $ring (log: $KVMINI_LOG)"
		fi
	done
	if grep -q 'activated on 4 of 4 rings' "$KVMINI_LOG"; then
		pass "two pairs: kvmini ran on both pairs' rings"
	else
		fail "two pairs: kvmini ran on both pairs' rings (log: $KVMINI_LOG)"
	fi
	tp_quit
	sleep 0.3
	snap && session_clean 1
fi
kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_check_clean
mv "$KVMINI_LOG" "$T_DIR/kvmini-mq.log"

# ---------------------------------------------------------------- 6. tap

t_netns NS d || { fail "ip netns add"; t_end; }
# No IPv6: the namespace then sends nothing the test did not ask for.
ip netns exec "$NS" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
	net.ipv6.conf.default.disable_ipv6=1 >/dev/null
TAP=kd${T_ID}t
HOST_IP=10.204.0.1
PEER_IP=10.204.0.9
PINGS=20
t_tap "$NS" "$TAP" "$HOST_IP/24" || { fail "tap $TAP in $NS"; t_end; }
# testpmd answers nothing: a static neighbour entry sends the pings its way
# without ARP.
ip -n "$NS" neigh replace "$PEER_IP" lladdr "$TP_MAC" dev "$TAP" nud permanent

kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" || t_end
if tp_start "$SOCK"; then
	tp_cmd "set fwd rxonly" "set txpkts 1000" "start tx_first 4"
	t_in "$NS" busybox ping -q -c $PINGS -i 0.02 -W 1 "$PEER_IP" >/dev/null 2>&1
	tp_wait_rx $PINGS 10
	sleep 0.3
	tp_cmd stop
	tp_stats
	tp_quit
fi
kvmini_stop "$KPID" "$KVMINI_LOG"
mv "$KVMINI_LOG" "$T_DIR/kvmini-tap.log"
kvmini_show
kvmini_check_clean
tap_stat() { ip netns exec "$NS" cat "/sys/class/net/$TAP/statistics/$1"; }
kc_eq "tap: testpmd sent 128 frames" "${TP[tx_packets]:-}" 128
kc_eq "tap: testpmd received the $PINGS pings" "${TP[rx_packets]:-}" $PINGS
kc_eq "tap rx_packets == kvmini tx_packets == testpmd TX" \
	"$(tap_stat rx_packets) ${KC[tx_packets]:-}" "${TP[tx_packets]:-} ${TP[tx_packets]:-}"
kc_eq "tap rx_bytes == kvmini tx_bytes == testpmd TX bytes" \
	"$(tap_stat rx_bytes) ${KC[tx_bytes]:-}" "${TP[tx_bytes]:-} ${TP[tx_bytes]:-}"
kc_eq "tap tx_packets == kvmini rx_packets == testpmd RX" \
	"$(tap_stat tx_packets) ${KC[rx_packets]:-}" "${TP[rx_packets]:-} ${TP[rx_packets]:-}"
kc_eq "tap tx_bytes == kvmini rx_bytes == testpmd RX bytes" \
	"$(tap_stat tx_bytes) ${KC[rx_bytes]:-}" "${TP[rx_bytes]:-} ${TP[rx_bytes]:-}"
t_end
