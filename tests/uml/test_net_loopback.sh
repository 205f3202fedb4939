#!/bin/bash
# kvmini's virtio-net with the loopback backend: every frame the guest sends
# comes back on its RX queue. The guest pings a made-up neighbour (a static
# ARP entry, so no ARP traffic) at three sizes; the guest's own counters
# (Linux counts frames without the 12-byte virtio header, as kvmini does)
# must equal kvmini's exactly, and the guest must receive what it sent.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_loopback 90

SOCK=$T_RUN/net.sock
COUNT=20
# Nothing here touches a network: kvmini and UML run in this namespace.
kvmini_start KPID "" "$SOCK" loopback --mac 52:54:00:c0:7a:03 || t_end

guest_script "$T_DIR/guest.sh" <<EOF
wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
gpass "eth0 appears (virtio_net probed)"
ip addr add 10.202.0.2/24 dev eth0
ip link set eth0 up
hostrun ip neigh replace 10.202.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent ||
	gfail "static neighbour entry"
sleep 0.3
for size in 56 1000 1472; do
	# No echo reply can come: the looped-back request is not for us.
	ping -q -c $COUNT -i 0.02 -W 1 -s \$size 10.202.0.9 >/dev/null
done
sleep 1
for s in tx_packets tx_bytes rx_packets rx_bytes rx_dropped rx_errors tx_errors; do
	gval \$s \$(stat_of eth0 \$s)
done
[ \$(stat_of eth0 tx_packets) -ge $((COUNT * 3)) ] && gpass "guest sent $((COUNT * 3)) frames or more" ||
	gfail "guest sent $((COUNT * 3)) frames or more"
[ \$(stat_of eth0 rx_packets) = \$(stat_of eth0 tx_packets) ] &&
	gpass "guest rx_packets == tx_packets" || gfail "guest rx_packets == tx_packets"
[ \$(stat_of eth0 rx_bytes) = \$(stat_of eth0 tx_bytes) ] &&
	gpass "guest rx_bytes == tx_bytes" || gfail "guest rx_bytes == tx_bytes"
hostrun ip -s link show eth0
EOF

uml_boot UPID "" "$T_DIR/guest.sh" 60 virtio_uml.device="$SOCK:1"
uml_wait "$UPID"
guest_relay

kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_show
kvmini_check_clean
for s in tx_packets tx_bytes rx_packets rx_bytes; do
	kc_eq "guest $s == kvmini $s" "$(guest_val "$s")" "${KC[$s]:-}"
done
kc_eq "kvmini rx_packets == tx_packets" "${KC[rx_packets]:-}" "${KC[tx_packets]:-}"
kc_eq "kvmini rx_dropped_no_buffer == 0" "${KC[rx_dropped_no_buffer]:-}" 0
t_end
