#!/bin/bash
# kvmini's virtio-net with the stream backend against a real passt: passt
# runs in a namespace whose interface and default route it copies to
# the guest. The guest takes passt's DHCP lease, fetches from a web server on
# the namespace's loopback (passt maps the gateway address to it), and a
# port passt forwards reaches a web server in the guest.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_stream 90 passt

t_netns NS stream || { fail "ip netns add"; t_end; }
NS_IP=192.168.90.1
GW=192.168.90.254
WPORT=8080
FPORT=8001     # passt -t: namespace port forwarded to the guest's same port
PASST_SOCK=$T_RUN/passt.sock
SOCK=$T_RUN/net.sock

# passt's namespace has one link, a veth to a second namespace that plays
# the gateway, and a default route through it: passt copies these.
t_netns GWNS gw || { fail "ip netns add"; t_end; }
ip -n "$NS" link add kvt0 type veth peer name kvt1 netns "$GWNS" &&
	ip -n "$NS" addr add "$NS_IP/24" dev kvt0 &&
	ip -n "$NS" link set kvt0 up &&
	ip -n "$GWNS" addr add "$GW/24" dev kvt1 &&
	ip -n "$GWNS" link set kvt1 up &&
	ip -n "$NS" route add default via "$GW" ||
	{ fail "namespace network for passt"; t_end; }
# passt answers pings through ICMP echo sockets.
ip netns exec "$NS" sysctl -q -w net.ipv4.ping_group_range="0 2147483647"

mkdir -p "$T_DIR/www"
head -c 1048576 /dev/urandom >"$T_DIR/www/blob"
BLOB_MD5=$(md5sum <"$T_DIR/www/blob" | cut -d' ' -f1)
GUEST_TEXT="hello from the guest $T_ID"
t_bg HTTPD_PID "$T_DIR/httpd.log" "$NS" busybox httpd -f -p "127.0.0.1:$WPORT" -h "$T_DIR/www"

# -1: passt ends when kvmini disconnects; -4: no IPv6 chatter; --runas 0:
# as nobody it could not bind its socket in this test's private directory.
t_bg PASST_PID "$T_DIR/passt.log" "$NS" passt -f -e -4 -1 --runas 0 -s "$PASST_SOCK" \
	-t "$FPORT" --no-dhcp-dns --no-dhcp-search
for ((i = 0; i < 50; i++)); do
	[ -S "$PASST_SOCK" ] && break
	sleep 0.1
done
[ -S "$PASST_SOCK" ] || { fail "passt listening (log: $T_DIR/passt.log)"; t_end; }
kvmini_start KPID "$NS" "$SOCK" "stream:$PASST_SOCK" --mac 52:54:00:c0:7a:05 || t_end

guest_script "$T_DIR/guest.sh" <<EOF
wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
gpass "eth0 appears (virtio_net probed)"
gcheck "udhcpc gets a lease from passt" udhcpc -i eth0 -s /etc/udhcpc/default.script -n -q -t 5 -T 1
ip -4 addr show eth0 | grep -q 'inet $NS_IP/24' && gpass "eth0 is $NS_IP/24 (passt copies the namespace's)" ||
	gfail "eth0 is $NS_IP/24 (\$(ip -4 addr show eth0 | grep inet))"
ip route | grep -q '^default via $GW' && gpass "default route via $GW" || gfail "default route via $GW"
gcheck "ping the gateway" ping -c 3 -W 3 $GW
sum=\$(timeout 20 wget -q -O - http://$GW:$WPORT/blob | md5sum | cut -d' ' -f1)
[ "\$sum" = "$BLOB_MD5" ] && gpass "1 MiB download from the namespace's loopback" ||
	gfail "1 MiB download from the namespace's loopback (md5 \$sum)"
mkdir -p /tmp/www
echo "$GUEST_TEXT" >/tmp/www/guest.txt
httpd -p $FPORT -h /tmp/www
gmark listening
wait_flag fetched 30 || gfail "host fetched in time"
EOF

uml_boot UPID "$NS" "$T_DIR/guest.sh" 60 virtio_uml.device="$SOCK:1"
if wait_mark listening 40 "$UPID"; then
	got=$(t_in "$NS" timeout 10 busybox wget -q -O - "http://127.0.0.1:$FPORT/guest.txt" 2>&1)
	kc_eq "passt -t $FPORT reaches the guest" "$got" "$GUEST_TEXT"
else
	fail "guest reached 'listening' (console: $UML_CONSOLE)"
fi
host_flag fetched
uml_wait "$UPID"
guest_relay

kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_show
kc_gt0 tx_packets rx_packets
[ "${KC[rx_bytes]:-0}" -gt 1048576 ] && pass "kvmini rx_bytes > 1 MiB (${KC[rx_bytes]})" ||
	fail "kvmini rx_bytes > 1 MiB (${KC[rx_bytes]:-missing})"
kvmini_check_clean
t_end
