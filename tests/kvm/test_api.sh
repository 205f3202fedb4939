#!/bin/bash
# The control API while a guest runs: two loopback interfaces (eth0, and
# "data" renamed with --iface-id), MMDS on eth0 from a file; the guest does
# its loopback test on eth0 and then holds, while curl drives the API.
# Then --api-sock on a path that is no socket.
. "$(dirname "$0")/lib.sh"

printf '{"boot":{"id":"i-1234"}}' >"$LOGDIR/mmds.json"
if command -v curl >/dev/null; then
	api=$LOGDIR/api.sock
	rm -f "$api"
	# The guest holds as long as the run may last: SIGTERM ends it below,
	# and under load the calls took more than a 30 s hold.
	run_bg api --kernel "$GUEST" --cmdline "test=net hold_ms=$(((LIMIT - 5) * 1000))" \
		--net loopback --net loopback --iface-id data --rx-rate-limit bw=100000/100 \
		--mmds --mmds-data "$LOGDIR/mmds.json" --api-sock "$api"
	wait_output 'net: holding'
	# call NAME WANT-STATUS PATTERN CURL-ARGS...: one request, checked.
	call() {
		local name=$1 want=$2 pattern=$3 body
		shift 3
		body=$(curl -s --max-time 5 --unix-socket "$api" -w '\n%{http_code}' "$@")
		if [ "$(tail -n1 <<<"$body")" = "$want" ] && grep -qE -- "$pattern" <<<"$body"; then
			pass "api in run: $name"
		else
			fail "api in run: $name (got: $(tr '\n' ' ' <<<"$body" | head -c 300))"
		fi
	}
	j=(-H 'Content-Type: application/json')
	call "GET / answers" 200 '"state"' http://k/
	call "GET /mmds: --mmds-data loaded" 200 '"i-1234"' http://k/mmds
	call "PUT /mmds replaces the store" 204 '' -X PUT "${j[@]}" -d '{"a":{"b":"c"}}' http://k/mmds
	call "GET /mmds reads it back" 200 '^\{"a":\{"b":"c"\}\}' http://k/mmds
	call "PATCH /network-interfaces/eth0 sets a tx limit" 204 '' -X PATCH "${j[@]}" \
		-d '{"iface_id":"eth0","tx_rate_limiter":{"ops":{"size":50,"refill_time":100}}}' \
		http://k/network-interfaces/eth0
	call "GET /network-interfaces/eth0 shows it" 200 '"ops":\{[^}]*"size":50' \
		http://k/network-interfaces/eth0
	call "GET /network-interfaces/data: --rx-rate-limit of the second --net" 200 \
		'"rx_rate_limiter":\{"bandwidth":\{[^}]*"size":100000' http://k/network-interfaces/data
	call "PATCH of an id no interface has: 400" 400 'no network interface \\"eth1\\"' -X PATCH \
		"${j[@]}" -d '{"iface_id":"eth1"}' http://k/network-interfaces/eth1
	call "PUT /mmds/config naming an interface without MMDS: 400" 400 'MMDS was not started on' \
		-X PUT "${j[@]}" -d '{"network_interfaces":["data"]}' http://k/mmds/config
	call "PUT /mmds/config on eth0, V2" 204 '' -X PUT "${j[@]}" \
		-d '{"network_interfaces":["eth0"],"version":"V2"}' http://k/mmds/config
	call "GET /metrics: eth0's loopback frames, both interfaces, the aggregate" 200 \
		'"net_eth0":\{[^}]*"rx_packets":6' http://k/metrics
	m=$(curl -s --max-time 5 --unix-socket "$api" http://k/metrics)
	if grep -q '"net_data":{' <<<"$m" && grep -qE '"net":\{[^}]*"tx_packets":6' <<<"$m" &&
		grep -q '"mmds":{' <<<"$m"; then
		pass "api in run: metrics have net_data, the net aggregate and mmds"
	else
		fail "api in run: metrics $(head -c 300 <<<"$m")"
	fi
	kill -TERM "$VM" 2>/dev/null
	collect_bg
	expect "api in run: SIGTERM ends the VM (128+15)" 143 'signal 15'
	sanitizer_check "api in run"
	[ ! -e "$api" ] && pass "api in run: socket removed at exit" || fail "api in run: $api left behind"
else
	echo "SKIP: kvm api in run: curl is not installed"
fi
run api-not-socket "" -- --kernel "$GUEST" --net loopback --api-sock "$LOGDIR/mmds.json"
expect "--api-sock on a file that is no socket: clear error" 1 'api-sock .*: exists and is not a socket'

kvm_end
