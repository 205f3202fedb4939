#!/bin/bash
# kvmini's rate limiters against UML's virtio_net and TCP, through a tap in
# a namespace, with the control API on a unix socket driven by curl:
#   A. TX limited to 40 Mbit/s (bytes on the wire) with a 25 MB one-time
#      burst: the namespace's iperf3 server sees the burst in the first
#      second(s), then a steady rate within 10% of the limit;
#   B. the same flow again; halfway through, PATCH /network-interfaces/eth0
#      raises TX to 80 Mbit/s: before and after land within 10% of each;
#   C. RX limited through the API to 20 Mbit/s: iperf3 -R within 10%.
# Throughout, the guest sees back-pressure, not drops: kvmini's error
# counters stay 0, the tap receives every frame kvmini sent, and the
# throttling shows in tx_rate_limited / rx_rate_limited (also in GET /metrics).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_ratelimit 140 curl

HOST_IP=10.204.7.1
GUEST_IP=10.204.7.2
SOCK=$T_RUN/net.sock
API=$T_RUN/api.sock
PA=5301 PB=5302 PC=5303
# Limits in bytes per 100 ms: 40 Mbit/s = 500000 B / 100 ms.
LIMIT_A=40 BURST=25000000 LIMIT_B=80 LIMIT_C=20
SECS_A=8 SECS_B=10 SECS_C=6

uml_netns_tap rl "kvt${T_ID}r" "$HOST_IP/24"
for p in $PA $PB $PC; do
	t_bg _srv "$T_DIR/iperf3-$p.log" "$NS" iperf3 -s -B "$HOST_IP" -p "$p" -f m -i 1
done
kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" --mac 52:54:00:c0:7a:05 --api-sock "$API" \
	--tx-rate-limit "bw=500000/100,bw_burst=$BURST" || t_end
for p in $PA $PB $PC; do
	t_wait_port "$NS" "$HOST_IP" "$p" 5 || fail "iperf3 server on $p listening"
done

# api METHOD PATH [BODY]: curl on the API socket; "STATUS BODY" on stdout.
api() {
	local out
	out=$(curl -s --max-time 5 --unix-socket "$API" -X "$1" -w '\n%{http_code}' \
		-H 'Content-Type: application/json' ${3:+-d "$3"} "http://localhost$2")
	echo "$(tail -n 1 <<<"$out") $(sed '$d' <<<"$out")"
}

guest_script "$T_DIR/guest.sh" <<EOF
wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
ip addr add $GUEST_IP/24 dev eth0
ip link set eth0 up
gcheck "ping guest -> namespace" ping -c 2 -W 3 $HOST_IP
gmark a-start
giperf a $SECS_A -c $HOST_IP -p $PA || gfail "iperf3 A"
gmark b-start
giperf b $SECS_B -c $HOST_IP -p $PB || gfail "iperf3 B"
wait_flag rx-limited 20 || gfail "host set the RX limit"
giperf c $SECS_C -c $HOST_IP -p $PC -R || gfail "iperf3 C (-R)"
gval tx_dropped \$(stat_of eth0 tx_dropped)
gval tx_errors \$(stat_of eth0 tx_errors)
EOF

uml_boot UPID "$NS" "$T_DIR/guest.sh" 120 virtio_uml.device="$SOCK:1"

# B: raise the limit while iperf3 runs, about halfway.
if wait_mark b-start 60 "$UPID"; then
	sleep 4.5
	r=$(api PATCH /network-interfaces/eth0 \
		'{"iface_id":"eth0","tx_rate_limiter":{"bandwidth":{"size":1000000,"refill_time":100}}}')
	[ "${r%% *}" = 204 ] && pass "PATCH tx_rate_limiter while traffic runs: 204" ||
		fail "PATCH tx_rate_limiter while traffic runs: $r"
	r=$(api GET /network-interfaces/eth0)
	grep -q '"tx_rate_limiter":{"bandwidth":{"size":1000000,"one_time_burst":0,"refill_time":100}}' \
		<<<"$r" && pass "GET /network-interfaces/eth0 shows the new limit" ||
		fail "GET /network-interfaces/eth0 shows the new limit: $r"
else
	fail "guest reached phase B (console: $UML_CONSOLE)"
fi
# C: limit RX (only) once B is over.
for ((i = 0; i < 300; i++)); do
	[ -n "$(guest_val b)" ] && break
	kill -0 "$UPID" 2>/dev/null || break
	sleep 0.1
done
r=$(api PATCH /network-interfaces/eth0 \
	'{"iface_id":"eth0","rx_rate_limiter":{"bandwidth":{"size":250000,"refill_time":100}}}')
[ "${r%% *}" = 204 ] && pass "PATCH rx_rate_limiter: 204" || fail "PATCH rx_rate_limiter: $r"
host_flag rx-limited
uml_wait "$UPID"
guest_relay

# The server's 1-second receiver intervals of a run, in Mbit/s, one a line.
intervals() {
	awk '/sec/ && !/receiver|sender/ {
		for (i = 1; i < NF; i++) if ($i ~ /^[0-9.]+-[0-9.]+$/) {
			split($i, t, "-"); if (t[2] - t[1] > 1.1 || t[2] - t[1] < 0.9) next
		}
		for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") print $(i - 1)
	}' "$1"
}
# mean_of FROM TO: the mean of lines FROM..TO (1-based) of stdin.
mean_of() { awk -v a="$1" -v b="$2" 'NR >= a && NR <= b { s += $1; n++ } END { if (n) printf "%.1f", s / n; else print 0 }'; }
# within NAME VALUE TARGET PCT: PASS when |VALUE - TARGET| <= PCT% of TARGET.
within() {
	if awk -v v="$2" -v t="$3" -v p="$4" 'BEGIN { d = v - t; if (d < 0) d = -d; exit !(d <= t * p / 100) }'; then
		pass "$1: $2 Mbit/s within $4% of $3"
	else
		fail "$1: $2 Mbit/s not within $4% of $3"
	fi
}
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

A=$(intervals "$T_DIR/iperf3-$PA.log")
B=$(intervals "$T_DIR/iperf3-$PB.log")
note "A intervals (Mbit/s): $(echo $A)"
note "B intervals (Mbit/s): $(echo $B)"
# A: the burst (200 Mbit) arrives first, then the steady rate.
first=$(mean_of 1 1 <<<"$A")
first2=$(awk 'NR <= 2 { s += $1 } END { print s + 0 }' <<<"$A")
burst_mbit=$((BURST * 8 / 1000000))
if gt "$first" $((LIMIT_A * 2)); then
	pass "A: one-time burst first: first second $first Mbit/s > 2 x $LIMIT_A"
else
	fail "A: one-time burst first: first second $first Mbit/s, not > 2 x $LIMIT_A"
fi
if gt "$first2" $((burst_mbit * 8 / 10)); then
	pass "A: the first 2 s carry the $burst_mbit Mbit burst ($first2 Mbit)"
else
	fail "A: the first 2 s carry the $burst_mbit Mbit burst (only $first2 Mbit)"
fi
within "A: steady TX rate (s 4-$SECS_A)" "$(mean_of 4 "$SECS_A" <<<"$A")" "$LIMIT_A" 10
# B: before the PATCH (s 2-4) and after it (s 7-10).
within "B: TX before the API change (s 2-4)" "$(mean_of 2 4 <<<"$B")" "$LIMIT_A" 10
within "B: TX after the API change (s 7-$SECS_B)" "$(mean_of 7 "$SECS_B" <<<"$B")" "$LIMIT_B" 10
# C: the guest's receiver rate.
within "C: RX rate set through the API" "$(guest_val c)" "$LIMIT_C" 10

r=$(api GET /metrics)
if [ "${r%% *}" = 200 ] && grep -q '"tx_rate_limited":[1-9]' <<<"$r" &&
	grep -q '"rx_rate_limited":[1-9]' <<<"$r"; then
	pass "GET /metrics counts TX and RX throttling"
else
	fail "GET /metrics counts TX and RX throttling: ${r:0:300}"
fi
r=$(api PUT /metrics "{\"metrics_path\":\"$T_DIR/metrics.json\"}")
r2=$(api PUT /actions '{"action_type":"FlushMetrics"}')
if [ "${r%% *}" = 204 ] && [ "${r2%% *}" = 204 ] && grep -q '"net_eth0":{' "$T_DIR/metrics.json"; then
	pass "PUT /metrics + FlushMetrics writes a metrics line"
else
	fail "PUT /metrics + FlushMetrics writes a metrics line ($r / $r2)"
fi

kc_eq "guest eth0 tx_dropped" "$(guest_val tx_dropped)" 0
kc_eq "guest eth0 tx_errors" "$(guest_val tx_errors)" 0
kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_show
kc_gt0 tx_rate_limited rx_rate_limited
kvmini_check_clean
tap_stat() { ip netns exec "$NS" cat "/sys/class/net/$TAP/statistics/$1"; }
kc_eq "tap rx_packets == kvmini tx_packets (no TX frame lost)" "$(tap_stat rx_packets)" "${KC[tx_packets]:-}"
kc_eq "kvmini rx_dropped_no_buffer" "${KC[rx_dropped_no_buffer]:-}" 0
{
	echo "rate limit figures (Mbit/s, iperf3 TCP goodput; limits count whole frames)"
	echo "A limit $LIMIT_A burst ${burst_mbit} Mbit: $(echo $A)"
	echo "B limit $LIMIT_A -> $LIMIT_B at ~4.5 s: $(echo $B)"
	echo "C RX limit $LIMIT_C: $(guest_val c)"
} >"$T_DIR/figures.txt"
sed 's/^/    /' "$T_DIR/figures.txt"
t_end
