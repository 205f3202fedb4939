#!/bin/bash
# The metadata service (MMDS) through kvmini's virtio-net, driven by UML's own
# virtio_net and the host's curl (run in the guest through the hostfs root):
# the guest sits on a tap in a namespace with its own subnet and only a route
# to 169.254.169.254 over eth0. Two boots: kvmini with --mmds (V1), then with
# --mmds-version 2. Both flows: GETs in IMDS and JSON formats, nested paths,
# keep-alive, new connections, every error status, V2 tokens (both header
# spellings, expiry, refusals). tcpdump on the tap runs throughout: no frame
# for 169.254.169.254 may ever leave kvmini, while ordinary traffic (ping)
# does.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_mmds 240 tcpdump

HOST_IP=10.201.9.1
GUEST_IP=10.201.9.2
MMDS=169.254.169.254
SOCK=$T_RUN/net.sock
uml_netns_tap mmds "kvt${T_ID}m" "$HOST_IP/24"

cat >"$T_DIR/mmds.json" <<'EOF'
{"latest": {"meta-data": {"ami-id": "ami-12345678", "reservation-id": "r-fea54097",
  "network": {"interfaces": {"macs": {"02:29:96:8f:6a:2d": {"device-number": "13345342",
  "subnet-id": "subnet-be9b61d"}}}}}, "user-data": "#!/bin/sh\necho hello"},
 "age": 43, "list": ["a", "b"]}
EOF

# capture SUFFIX: tcpdump on the tap into $T_DIR/tapSUFFIX.pcap (PID ->
# TCPDUMP_PID), once it is listening (5 s at most).
capture() {
	local log=$T_DIR/tcpdump$1.log i
	t_bg TCPDUMP_PID "$log" "$NS" tcpdump -i "$TAP" -n -U -w "$T_DIR/tap$1.pcap"
	for ((i = 0; i < 50; i++)); do
		grep -q "listening on" "$log" 2>/dev/null && break
		sleep 0.1
	done
}

# Everything on the tap, from before the first boot to after the last.
capture ""

# The guest's helpers: curl from the host's tree, status code and body.
GUEST_COMMON=$(cat <<EOF
link_up eth0 $GUEST_IP/24 $MMDS/32
C="chroot /host /usr/bin/env curl -s --max-time 10"
U=http://$MMDS
# expect NAME WANT CURL-ARGS...: the body equals WANT.
expect() {
	local name=\$1 want=\$2 got
	shift 2
	got=\$(\$C "\$@")
	if [ "\$got" = "\$want" ]; then gpass "\$name"; else
		gfail "\$name (got '\$got', want '\$want')"; fi
}
# status NAME CODE CURL-ARGS...: the HTTP status is CODE.
status() {
	local name=\$1 want=\$2 got
	shift 2
	got=\$(\$C -o /dev/null -w '%{http_code}' "\$@")
	if [ "\$got" = "\$want" ]; then gpass "\$name (\$got)"; else
		gfail "\$name (got \$got, want \$want)"; fi
}
gcheck "ping guest -> namespace (ordinary traffic still flows)" ping -c 2 -W 3 $HOST_IP
EOF
)

guest_script "$T_DIR/guest-v1.sh" <<EOF
$GUEST_COMMON
expect "V1 GET string (IMDS)" ami-12345678 \$U/latest/meta-data/ami-id
expect "V1 GET object listing (IMDS)" "\$(printf 'ami-id\nnetwork/\nreservation-id')" \$U/latest/meta-data/
expect "V1 GET root listing" "\$(printf 'age\nlatest/\nlist')" \$U/
expect "V1 GET nested path" 13345342 "\$U/latest/meta-data/network/interfaces/macs/02:29:96:8f:6a:2d/device-number"
expect "V1 GET multi-line string" "\$(printf '#!/bin/sh\necho hello')" \$U/latest/user-data
expect "V1 GET JSON string" '"ami-12345678"' -H 'Accept: application/json' \$U/latest/meta-data/ami-id
expect "V1 GET JSON object" '{"ami-id":"ami-12345678","network":{"interfaces":{"macs":{"02:29:96:8f:6a:2d":{"device-number":"13345342","subnet-id":"subnet-be9b61d"}}}},"reservation-id":"r-fea54097"}' -H 'Accept: application/json' \$U/latest/meta-data
expect "V1 GET JSON number" 43 -H 'Accept: application/json' \$U/age
expect "V1 GET array element" b \$U/list/1
status "V1 404 for a missing path" 404 \$U/latest/nope
status "V1 501 for a number in IMDS" 501 \$U/age
status "V1 405 for POST" 405 -X POST \$U/latest
allow=\$(\$C -i -X DELETE \$U/latest | tr -d '\r' | sed -n 's/^[Aa]llow: //p')
[ "\$allow" = "GET, PUT" ] && gpass "V1 405 names Allow: GET, PUT" || gfail "V1 405 Allow header ('\$allow')"
status "V1 GET with a bogus token still answers" 200 -H 'X-metadata-token: bogus' \$U/latest/meta-data/ami-id
tok=\$(\$C -X PUT -H 'X-metadata-token-ttl-seconds: 60' \$U/latest/api/token)
[ \${#tok} -ge 32 ] && gpass "V1 issues a session token too" || gfail "V1 token ('\$tok')"
# Keep-alive: several requests over one connection.
out=\$(\$C -v \$U/latest/meta-data/ami-id \$U/latest/meta-data/reservation-id \$U/age 2>&1)
echo "\$out" | grep -q 'Re-using existing connection' && gpass "V1 keep-alive: one connection for several GETs" ||
	gfail "V1 keep-alive (curl did not reuse the connection)"
# Each on its own connection; a slow or failed one is named on the console
# with curl's timing (connect, first byte, total), so a stall can be placed.
n=0; i=0
while [ \$i -lt 20 ]; do
	r=\$(\$C -w ' %{http_code} %{time_connect} %{time_starttransfer} %{time_total}' \$U/latest/meta-data/ami-id)
	case \$r in
	"ami-12345678 200 "*) n=\$((n + 1)) ;;
	esac
	case \$r in
	*" 0."[0-4][0-9][0-9][0-9][0-9][0-9]) ;;
	*) say "new connection \$i: \$r" ;;
	esac
	i=\$((i + 1))
done
[ \$n = 20 ] && gpass "V1 20 GETs on new connections" || gfail "V1 20 GETs on new connections (\$n ok)"
status "V1 port 81 is refused" 000 --max-time 3 http://$MMDS:81/
EOF

guest_script "$T_DIR/guest-v2.sh" <<EOF
$GUEST_COMMON
body=\$(\$C -w ' %{http_code}' \$U/latest/meta-data/ami-id)
case \$body in *401) gpass "V2 GET without a token: 401" ;; *) gfail "V2 GET without a token ('\$body')" ;; esac
tok=\$(\$C -X PUT -H 'X-metadata-token-ttl-seconds: 21600' \$U/latest/api/token)
[ \${#tok} -ge 32 ] && gpass "V2 token issued" || gfail "V2 token issued ('\$tok')"
expect "V2 GET with X-metadata-token" ami-12345678 -H "X-metadata-token: \$tok" \$U/latest/meta-data/ami-id
expect "V2 GET with X-aws-ec2-metadata-token, JSON" '"r-fea54097"' -H "X-aws-ec2-metadata-token: \$tok" -H 'Accept: application/json' \$U/latest/meta-data/reservation-id
expect "V2 GET nested listing" "\$(printf 'device-number\nsubnet-id')" -H "X-metadata-token: \$tok" "\$U/latest/meta-data/network/interfaces/macs/02:29:96:8f:6a:2d/"
# 3 s: room for a curl started under load; expired after 4 s.
tok2=\$(\$C -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 3' \$U/latest/api/token)
[ \${#tok2} -ge 32 ] && gpass "V2 token with the AWS TTL header" || gfail "V2 token with the AWS TTL header"
status "V2 fresh 3 s token works" 200 -H "X-metadata-token: \$tok2" \$U/latest/meta-data/ami-id
sleep 4
status "V2 expired token: 401" 401 -H "X-metadata-token: \$tok2" \$U/latest/meta-data/ami-id
case \$tok in *0) forged=\${tok%?}1 ;; *) forged=\${tok%?}0 ;; esac
status "V2 forged token (last digit changed): 401" 401 -H "X-metadata-token: \$forged" \$U/latest/meta-data/ami-id
status "V2 token TTL 0: 400" 400 -X PUT -H 'X-metadata-token-ttl-seconds: 0' \$U/latest/api/token
status "V2 token TTL 21601: 400" 400 -X PUT -H 'X-metadata-token-ttl-seconds: 21601' \$U/latest/api/token
status "V2 token without TTL: 400" 400 -X PUT \$U/latest/api/token
status "V2 token through a proxy (X-Forwarded-For): 400" 400 -X PUT -H 'X-metadata-token-ttl-seconds: 60' -H 'X-Forwarded-For: 10.0.0.9' \$U/latest/api/token
status "V2 PUT elsewhere: 404" 404 -X PUT -H 'X-metadata-token-ttl-seconds: 60' \$U/latest/meta-data
status "V2 PATCH: 405" 405 -X PATCH \$U/latest
status "V2 missing path with a token: 404" 404 -H "X-metadata-token: \$tok" \$U/nope
status "V2 oversize request: 413" 413 -H "X-metadata-token: \$tok" -H "X-Pad: \$(printf '%9000s' x | tr ' ' a)" \$U/latest
EOF

# boot_once VERSION ARGS...: kvmini with ARGS, one guest running guest-VERSION.sh.
boot_once() {
	local v=$1
	shift
	kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" --mac 52:54:00:c0:7a:09 \
		--mmds --mmds-data "$T_DIR/mmds.json" "$@" || return 1
	uml_boot UPID "$NS" "$T_DIR/guest-$v.sh" 120 virtio_uml.device="$SOCK:1"
	uml_wait "$UPID"
	guest_relay
	cp "$UML_CONSOLE" "$T_DIR/console-$v.log"
	kvmini_stop "$KPID" "$KVMINI_LOG"
	cp "$KVMINI_LOG" "$T_DIR/kvmini-$v.log"
	kvmini_check_clean
	local c
	for c in frames_intercepted frames_injected rx_accepted; do
		local n
		n=$(sed -n "s/^mmds $c \([0-9]*\)$/\1/p" "$KVMINI_LOG" | tail -n 1)
		[ "${n:-0}" -gt 0 ] && pass "$v: mmds $c > 0 ($n)" || fail "$v: mmds $c > 0 (${n:-missing})"
	done
}

boot_once v1
boot_once v2 --mmds-version 2
n=$(sed -n 's/^mmds tokens_expired \([0-9]*\)$/\1/p' "$T_DIR/kvmini-v2.log" | tail -n 1)
[ "${n:-0}" -ge 1 ] && pass "v2: mmds tokens_expired counted ($n)" || fail "v2: tokens_expired (${n:-missing})"
n=$(sed -n 's/^mmds rx_forwarded_refused \([0-9]*\)$/\1/p' "$T_DIR/kvmini-v2.log" | tail -n 1)
[ "${n:-0}" = 1 ] && pass "v2: mmds rx_forwarded_refused counted" || fail "v2: rx_forwarded_refused (${n:-missing})"

# The capture: nothing for the MMDS address left kvmini; ping did.
sleep 0.5
t_stop "$TCPDUMP_PID" 3
wait "$TCPDUMP_PID" 2>/dev/null
mmds_frames=$(tcpdump -n -r "$T_DIR/tap.pcap" "host $MMDS or (arp and arp[24:4] = 0xa9fea9fe)" 2>/dev/null | wc -l)
icmp_frames=$(tcpdump -n -r "$T_DIR/tap.pcap" "icmp and host $GUEST_IP" 2>/dev/null | wc -l)
kc_eq "tap capture: frames for $MMDS" "$mmds_frames" 0
[ "$icmp_frames" -ge 4 ] && pass "tap capture saw the guest's pings ($icmp_frames frames)" ||
	fail "tap capture saw the guest's pings ($icmp_frames frames)"

# A queue backend underneath: libslirp user networking, with the MMDS
# endpoint's own libslirp beside it on the same loop.
guest_script "$T_DIR/guest-user.sh" <<EOF
link_up eth0 10.0.2.15/24 $MMDS/32
C="chroot /host /usr/bin/env curl -s --max-time 10"
got=\$(\$C http://$MMDS/latest/meta-data/ami-id)
[ "\$got" = ami-12345678 ] && gpass "user backend: MMDS GET" || gfail "user backend: MMDS GET ('\$got')"
gcheck "user backend: libslirp's gateway still answers" ping -c 2 -W 3 10.0.2.2
EOF
kvmini_start KPID "" "$SOCK" user --mmds --mmds-data "$T_DIR/mmds.json" || t_end
uml_boot UPID "" "$T_DIR/guest-user.sh" 60 virtio_uml.device="$SOCK:1"
uml_wait "$UPID"
guest_relay
kvmini_stop "$KPID" "$KVMINI_LOG"

# Control: without --mmds the same curl's frames do reach the tap, and the
# capture filter above counts them (so a leak would have been seen).
guest_script "$T_DIR/guest-control.sh" <<EOF
$GUEST_COMMON
status "control: no MMDS without --mmds" 000 --max-time 3 \$U/latest
EOF
capture -control
kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" --mac 52:54:00:c0:7a:09 || t_end
uml_boot UPID "$NS" "$T_DIR/guest-control.sh" 60 virtio_uml.device="$SOCK:1"
uml_wait "$UPID"
guest_relay
kvmini_stop "$KPID" "$KVMINI_LOG" >/dev/null
sleep 0.5
t_stop "$TCPDUMP_PID" 3
wait "$TCPDUMP_PID" 2>/dev/null
n=$(tcpdump -n -r "$T_DIR/tap-control.pcap" "host $MMDS or (arp and arp[24:4] = 0xa9fea9fe)" 2>/dev/null | wc -l)
[ "$n" -gt 0 ] && pass "control: without --mmds the capture sees frames for $MMDS ($n)" ||
	fail "control: without --mmds the capture sees frames for $MMDS ($n)"
t_end
