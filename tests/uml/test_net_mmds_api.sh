#!/bin/bash
# The operator's side of the metadata service end to end: the store is
# filled and changed through the control API (curl --unix-socket) while a
# UML guest reads it with curl at 169.254.169.254 over kvmini's virtio-net.
#   1. PUT /mmds before boot; the guest reads it (V1, no token);
#   2. PATCH /mmds and PUT /mmds/config {"version":"V2"} while it runs: the
#      guest now needs a session token and then reads the merged values;
#   3. GET /metrics shows the guest's requests and the intercepted frames.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_net_mmds_api 90 curl

SOCK=$T_RUN/net.sock
API=$T_RUN/api.sock
MMDS=169.254.169.254

# api NAME WANT_STATUS METHOD PATH [BODY]: PASS when curl gets WANT_STATUS.
api() {
	local name=$1 want=$2 code
	code=$(curl -s -o "$T_DIR/api-body" -w '%{http_code}' --max-time 5 --unix-socket "$API" \
		-X "$3" ${5:+-d "$5"} "http://localhost$4")
	if [ "$code" = "$want" ]; then pass "API $name ($code)"; else
		fail "API $name (got $code, want $want: $(head -c 200 "$T_DIR/api-body"))"; fi
}

kvmini_start KPID "" "$SOCK" loopback --mmds --api-sock "$API" || t_end
for ((i = 0; i < 50; i++)); do [ -S "$API" ] && break; sleep 0.1; done
api "PUT /mmds before boot" 204 PUT /mmds '{"latest":{"meta-data":{"instance-id":"i-1","tags":{"team":"a"}}}}'

guest_script "$T_DIR/guest.sh" <<EOF
link_up eth0 10.205.0.2/24 $MMDS/32
C="chroot /host /usr/bin/env curl -s --max-time 10"
expect() {
	local name=\$1 want=\$2 got
	shift 2
	got=\$(\$C "\$@")
	if [ "\$got" = "\$want" ]; then gpass "\$name"; else gfail "\$name (got '\$got', want '\$want')"; fi
}
expect "V1: the value PUT through the API" i-1 http://$MMDS/latest/meta-data/instance-id
expect "V1: nested value" a http://$MMDS/latest/meta-data/tags/team
gmark read1
wait_flag changed 30 || gfail "host changed the store in time"
code=\$(\$C -o /dev/null -w '%{http_code}' http://$MMDS/latest/meta-data/instance-id)
[ "\$code" = 401 ] && gpass "V2 after PUT /mmds/config: a GET without a token is 401" ||
	gfail "V2 after PUT /mmds/config: a GET without a token is 401 (got \$code)"
tok=\$(\$C -X PUT -H 'X-metadata-token-ttl-seconds: 60' http://$MMDS/latest/api/token)
[ -n "\$tok" ] && gpass "V2: token issued" || gfail "V2: token issued"
expect "V2: the PATCHed value" i-2 -H "X-metadata-token: \$tok" http://$MMDS/latest/meta-data/instance-id
expect "V2: the added key" z1 -H "X-metadata-token: \$tok" http://$MMDS/latest/meta-data/zone
expect "V2: the key PATCHed away is gone (listing)" "\$(printf 'instance-id\nzone')" \
	-H "X-metadata-token: \$tok" http://$MMDS/latest/meta-data/
EOF

uml_boot UPID "" "$T_DIR/guest.sh" 60 virtio_uml.device="$SOCK:1"
if wait_mark read1 40 "$UPID"; then
	api "PATCH /mmds while the guest runs" 204 PATCH /mmds \
		'{"latest":{"meta-data":{"instance-id":"i-2","tags":null,"zone":"z1"}}}'
	api "PUT /mmds/config V2" 204 PUT /mmds/config '{"version":"V2","network_interfaces":["eth0"]}'
	api "GET /mmds" 200 GET /mmds
	kc_eq "GET /mmds returns the merged store" "$(cat "$T_DIR/api-body")" \
		'{"latest":{"meta-data":{"instance-id":"i-2","zone":"z1"}}}'
else
	fail "guest read the store (console: $UML_CONSOLE)"
fi
host_flag changed
uml_wait "$UPID"
guest_relay

api "GET /metrics" 200 GET /metrics
metric() { grep -o "\"mmds\":{[^}]*}" "$T_DIR/api-body" | grep -o "\"$1\":[0-9]*" | cut -d: -f2; }
for m in rx_accepted rx_unauthorized tokens_issued frames_intercepted frames_injected; do
	v=$(metric $m)
	if [ "${v:-0}" -gt 0 ] 2>/dev/null; then pass "metrics mmds.$m > 0 ($v)"; else
		fail "metrics mmds.$m > 0 (${v:-missing})"; fi
done
kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_check_clean
t_end
