#!/bin/bash
# virtio-net with the loopback backend: frames and interrupts, kicks through
# ioeventfds, and a low TX rate limit that holds frames back without drops.
. "$(dirname "$0")/lib.sh"

guest net net "" --net loopback --counters
expect "net: loopback frames and interrupts (guest checks)" 0 'net: done \(0 failures\)'
expect "net: counters: 6 frames each way" 0 'rx_packets 6'
kicks=$(counter mmio_rx_kicks)
exits=$(counter mmio_rx_notify_exits)
if [ "${kicks:-0}" -gt 0 ] && [ "${exits:-1}" -eq 0 ]; then
	pass "net: $kicks kicks, all through ioeventfds (no QueueNotify exits)"
else
	fail "net: kicks ${kicks:-?}, QueueNotify exits ${exits:-?}"
fi

# A low frame budget on TX (2 frames per 100 ms): the loopback test's 6
# frames (two rounds of 3) are held back, not dropped.
guest net-limited net "" --net loopback --tx-rate-limit ops=2/100 --counters
expect "net with --tx-rate-limit ops=2/100: loopback frames all arrive (guest checks)" 0 \
	'net: done \(0 failures\)'
limited=$(counter tx_rate_limited)
dropped=$(grep -oE '^rx_dropped_[a-z_]+ [0-9]+' <<<"$ERR" | awk '{ s += $2 } END { print s + 0 }')
if [ "${limited:-0}" -gt 0 ] && [ "$dropped" -eq 0 ] && grep -q '^tx_packets 6$' <<<"$ERR"; then
	pass "net rate limit: TX stopped $limited times, 6 frames sent, none dropped"
else
	fail "net rate limit: tx_rate_limited ${limited:-?}, drops $dropped (log $LOGDIR/$LAST.err)"
fi

kvm_end
