#!/bin/bash
# kvmini's virtio-net with the user-mode backend (libslirp): the guest gets
# 10.0.2.15 from busybox udhcpc, fetches a file from a web server on the
# loopback of kvmini's namespace through 10.0.2.2, and a host-side port
# forward (hostfwd) reaches a web server inside the guest.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_user 90

# A namespace of its own keeps the loopback ports private to this test.
t_netns NS user || { fail "ip netns add"; t_end; }
SOCK=$T_RUN/net.sock
WPORT=8080     # host web server, reached from the guest as 10.0.2.2:WPORT
HPORT=2222     # hostfwd: 127.0.0.1:HPORT in the namespace -> guest GPORT
GPORT=8000

mkdir -p "$T_DIR/www"
head -c 1048576 /dev/urandom >"$T_DIR/www/blob"
echo "hello from the host $T_ID" >"$T_DIR/www/hello.txt"
BLOB_MD5=$(md5sum <"$T_DIR/www/blob" | cut -d' ' -f1)
GUEST_TEXT="hello from the guest $T_ID"

t_bg HTTPD_PID "$T_DIR/httpd.log" "$NS" busybox httpd -f -p "127.0.0.1:$WPORT" -h "$T_DIR/www"
t_wait_port "$NS" 127.0.0.1 "$WPORT" 5 || fail "host web server listening"
kvmini_start KPID "$NS" "$SOCK" "user:hostfwd=tcp:127.0.0.1:$HPORT-:$GPORT" \
	--mac 52:54:00:c0:7a:04 || t_end

guest_script "$T_DIR/guest.sh" <<EOF
wait_link eth0 || { gfail "eth0 appears (virtio_net probed)"; exit 1; }
gpass "eth0 appears (virtio_net probed)"
gcheck "udhcpc gets a lease" udhcpc -i eth0 -s /etc/udhcpc/default.script -n -q -t 5 -T 1
ip -4 addr show eth0 | grep -q 'inet 10.0.2.15/24' && gpass "eth0 is 10.0.2.15/24" ||
	gfail "eth0 is 10.0.2.15/24 (\$(ip -4 addr show eth0 | grep inet))"
ip route | grep -q '^default via 10.0.2.2' && gpass "default route via 10.0.2.2" ||
	gfail "default route via 10.0.2.2"
got=\$(timeout 20 wget -q -O - http://10.0.2.2:$WPORT/hello.txt)
[ "\$got" = "hello from the host $T_ID" ] && gpass "TCP to host loopback via 10.0.2.2:$WPORT" ||
	gfail "TCP to host loopback via 10.0.2.2:$WPORT (got '\$got')"
sum=\$(timeout 20 wget -q -O - http://10.0.2.2:$WPORT/blob | md5sum | cut -d' ' -f1)
[ "\$sum" = "$BLOB_MD5" ] && gpass "1 MiB download intact" || gfail "1 MiB download intact (md5 \$sum)"
mkdir -p /tmp/www
echo "$GUEST_TEXT" >/tmp/www/guest.txt
httpd -p $GPORT -h /tmp/www
gmark listening
wait_flag fetched 30 || gfail "host fetched in time"
EOF

uml_boot UPID "$NS" "$T_DIR/guest.sh" 60 virtio_uml.device="$SOCK:1"
if wait_mark listening 40 "$UPID"; then
	got=$(t_in "$NS" timeout 10 busybox wget -q -O - "http://127.0.0.1:$HPORT/guest.txt" 2>&1)
	kc_eq "hostfwd 127.0.0.1:$HPORT -> guest :$GPORT" "$got" "$GUEST_TEXT"
else
	fail "guest reached 'listening' (console: $UML_CONSOLE)"
fi
host_flag fetched
uml_wait "$UPID"
guest_relay

kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_show
kc_gt0 tx_packets rx_packets
# More than the 1 MiB download arrived.
[ "${KC[rx_bytes]:-0}" -gt 1048576 ] && pass "kvmini rx_bytes > 1 MiB (${KC[rx_bytes]})" ||
	fail "kvmini rx_bytes > 1 MiB (${KC[rx_bytes]:-missing})"
kvmini_check_clean
t_end
