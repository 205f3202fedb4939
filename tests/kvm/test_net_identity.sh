#!/bin/bash
# Per-NIC identity: the guest's net-config test prints each virtio-net
# device's MAC and MTU from config space. --mac and --mtu reach it; without
# --mac every VM and every NIC gets a random, locally administered unicast
# MAC, and kvmini logs the one it chose.
. "$(dirname "$0")/lib.sh"

# mac_of N: device N's MAC as the last run's guest printed it.
mac_of() { grep -oE "net-config: device $1: MAC [0-9a-f:]{17}" <<<"$OUT" | grep -oE '[0-9a-f:]{17}$'; }
# local_unicast MAC: bit 0 of the first byte clear, bit 1 set.
local_unicast() { [ -n "$1" ] && [ $((0x${1:0:2} & 3)) -eq 2 ]; }
run net-config-given "" -- --kernel "$GUEST" --cmdline "test=net-config mac=02:11:22:33:44:55 mtu=9000" \
	--net loopback --mac 02:11:22:33:44:55 --mtu 9000
expect "net identity: --mac and --mtu 9000 in config space (guest checks)" 0 'net-config: done \(0 failures\)'
expect "net identity: the guest read MAC 02:11:22:33:44:55, MTU 9000" 0 \
	'net-config: device 0: MAC 02:11:22:33:44:55, MTU 9000'
expect "net identity: kvmini logged the MAC and MTU it was given" 0 'eth0: MAC 02:11:22:33:44:55, MTU 9000$'
guest net-config-a net-config "" --net loopback
expect "net identity: default MAC and MTU (guest checks)" 0 'net-config: done \(0 failures\)'
expect "net identity: default MTU 1500 on loopback" 0 'net-config: device 0: MAC [0-9a-f:]{17}, MTU 1500'
mac_a=$(mac_of 0)
logged_a=$(grep -c "eth0: MAC $mac_a (random), MTU 1500$" <<<"$ERR")
guest net-config-b net-config "" --net loopback
mac_b=$(mac_of 0)
if local_unicast "$mac_a" && local_unicast "$mac_b" && [ "$mac_a" != "$mac_b" ] &&
	[ "$logged_a" -eq 1 ] && grep -q "eth0: MAC $mac_b (random), MTU 1500$" <<<"$ERR"; then
	pass "net identity: two VMs without --mac: $mac_a and $mac_b, locally administered unicast, logged"
else
	fail "net identity: two VMs without --mac: '$mac_a' and '$mac_b' (wanted two locally administered unicast MACs, logged; logs $LOGDIR/net-config-[ab].err)"
fi
guest net-config-two net-config "" --net loopback --net loopback --mac 02:00:00:00:00:02
expect "net identity: two NICs (guest checks)" 0 'net-config: done \(0 failures\)'
m0=$(mac_of 0)
m1=$(mac_of 1)
if local_unicast "$m0" && [ "$m1" = 02:00:00:00:00:02 ] &&
	grep -q "eth0: MAC $m0 (random), MTU 1500$" <<<"$ERR" &&
	grep -q "eth1: MAC 02:00:00:00:00:02, MTU 1500$" <<<"$ERR"; then
	pass "net identity: two NICs: eth0 random ($m0), eth1 its --mac (the --net before it)"
else
	fail "net identity: two NICs: '$m0', '$m1' (wanted a random one, then 02:00:00:00:00:02)"
fi

kvm_end
