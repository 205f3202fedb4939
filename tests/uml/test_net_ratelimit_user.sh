#!/bin/bash
# Rate limits on a queue backend (libslirp): kvmini stops taking libslirp's
# frames while RX is limited, libslirp stops reading its sockets, so frames
# wait there instead of being dropped; TX is limited by the frame (ops) bucket.
#   TX: ops=100/100 (1000 frames/s): iperf3 guest -> 10.0.2.2 lands within
#       10% of 1000 x 1448 payload bytes per second (the namespace's
#       per-second receiver figures after the first 2 s);
#   RX: bw=250000/100 (20 Mbit/s of frames) set with the command line:
#       iperf3 -R within 10% of 20 Mbit/s x 1448/1514 (TCP payload share);
# and nothing dropped: libslirp's hold queue never overflowed, kvmini's
# error counters stayed 0, and both throttles were counted.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_ratelimit_user 120

t_netns NS rlu || { fail "ip netns add"; t_end; }
SOCK=$T_RUN/net.sock
PT=5401 PR=5402
SECS=7

for p in $PT $PR; do
	t_bg _srv "$T_DIR/iperf3-$p.log" "$NS" iperf3 -s -B 127.0.0.1 -p "$p" -f m -i 1
done
for p in $PT $PR; do
	t_wait_port "$NS" 127.0.0.1 "$p" 5 || fail "iperf3 server on $p listening"
done
kvmini_start KPID "$NS" "$SOCK" user --mac 52:54:00:c0:7a:06 \
	--tx-rate-limit ops=100/100 --rx-rate-limit bw=250000/100 || t_end

guest_script "$T_DIR/guest.sh" <<EOF
wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
gcheck "udhcpc gets a lease" udhcpc -i eth0 -s /etc/udhcpc/default.script -n -q -t 5 -T 1
# The ops bucket counts the guest's frames, and with TSO one frame carries
# up to 64 KiB: the guest sends frames of one segment each here.
gcheck "ethtool -K eth0 tso off" hostrun ethtool -K eth0 tso off
giperf tx $SECS -c 10.0.2.2 -p $PT -M 1448 || gfail "iperf3 guest -> host (TX)"
giperf rx $SECS -c 10.0.2.2 -p $PR -R || gfail "iperf3 host -> guest (RX)"
gval tx_dropped \$(stat_of eth0 tx_dropped)
EOF

uml_boot UPID "$NS" "$T_DIR/guest.sh" 90 virtio_uml.device="$SOCK:1"
uml_wait "$UPID"
guest_relay

within() {
	if awk -v v="$2" -v t="$3" -v p="$4" 'BEGIN { d = v - t; if (d < 0) d = -d; exit !(d <= t * p / 100) }'; then
		pass "$1: $2 Mbit/s within $4% of $3"
	else
		fail "$1: $2 Mbit/s not within $4% of $3"
	fi
}
TX=$(awk '/sec/ && !/receiver|sender/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") print $(i - 1) }' \
	"$T_DIR/iperf3-$PT.log")
note "TX intervals (Mbit/s): $(echo $TX)"
tx_steady=$(awk -v n="$SECS" 'NR >= 3 && NR <= n { s += $1; c++ } END { if (c) printf "%.2f", s / c; else print 0 }' <<<"$TX")
tx_want=$(awk 'BEGIN { printf "%.2f", 1000 * 1448 * 8 / 1e6 }')
within "TX ops bucket 1000 frames/s (s 3-$SECS)" "$tx_steady" "$tx_want" 10
rx_want=$(awk 'BEGIN { printf "%.2f", 20 * 1448 / 1514 }')
within "RX byte bucket 20 Mbit/s of frames (whole run)" "$(guest_val rx)" "$rx_want" 10
kc_eq "guest eth0 tx_dropped" "$(guest_val tx_dropped)" 0

kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_show
kc_gt0 tx_rate_limited rx_rate_limited
kvmini_check_clean
kc_eq "kvmini rx_dropped_no_buffer" "${KC[rx_dropped_no_buffer]:-}" 0
qfull=$(awk '$1 == "user" && $2 == "rx_dropped_queue_full" { v = $3 } END { print v }' "$KVMINI_LOG")
kc_eq "libslirp hold queue never overflowed (user rx_dropped_queue_full)" "${qfull:-missing}" 0
t_end
