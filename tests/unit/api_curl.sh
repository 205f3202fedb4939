#!/usr/bin/env bash
# The control API of `kvmini vhost net --api-sock` (and of a `kvmini run
# --api-sock` waiting for a snapshot) over its real unix socket,
# driven by curl: every route once, Firecracker's error shape, keep-alive,
# the 413 body limit, a slow client that does not hold up another, and the
# socket removed at exit. One PASS:/FAIL: line per case.
set -u
cd "$(dirname "$0")/../.."
BIN=${KVMINI:-build/kvmini-san}
tmp=$(mktemp -d /tmp/kvmini-api-curl.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
API=$tmp/api.sock

ok() { echo "PASS: api-curl $1"; }
ko() { echo "FAIL: api-curl $1"; }

"$BIN" vhost net --socket "$tmp/net.sock" --backend loopback --api-sock "$API" \
	--iface-id net1 --tx-rate-limit bw=1000/10 2>"$tmp/kvmini.log" &
pid=$!
for ((i = 0; i < 100; i++)); do [ -S "$API" ] && break; sleep 0.05; done
[ -S "$API" ] || { ko "socket appears"; cat "$tmp/kvmini.log"; exit 1; }

# req NAME WANT_STATUS PATTERN METHOD PATH [BODY]
req() {
	local name=$1 want=$2 pattern=$3 method=$4 path=$5 body=${6:-} out code
	out=$(curl -s --max-time 5 --unix-socket "$API" -X "$method" -w '\n%{http_code}' \
		${body:+-H 'Content-Type: application/json' -d "$body"} "http://localhost$path")
	code=$(tail -n 1 <<<"$out")
	out=$(sed '$d' <<<"$out")
	if [ "$code" = "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
		ok "$name"
	else
		ko "$name (status $code, wanted $want; body: ${out:0:300})"
	fi
}

req instance 200 '"app_name":"kvmini"' GET /
req iface-get 200 '"iface_id":"net1".*"tx_rate_limiter":\{"bandwidth":\{"size":1000,"one_time_burst":0,"refill_time":10\}\}' \
	GET /network-interfaces/net1
req iface-patch 204 '^$' PATCH /network-interfaces/net1 \
	'{"iface_id":"net1","rx_rate_limiter":{"ops":{"size":100,"one_time_burst":5,"refill_time":1000}}}'
req iface-patched 200 '"rx_rate_limiter":\{"ops":\{"size":100,"one_time_burst":5,"refill_time":1000\}\}' \
	GET /network-interfaces/net1
req iface-put-loopback 204 '^$' PUT /network-interfaces/net1 '{"iface_id":"net1","host_dev_name":"any"}'
req iface-put-cleared 200 '"rx_rate_limiter":\{\},"tx_rate_limiter":\{\}' GET /network-interfaces/net1
req iface-wrong-id 400 '"fault_message":"no network interface \\"eth0\\"' PATCH /network-interfaces/eth0 \
	'{"iface_id":"eth0"}'
req iface-bad-json 400 '"fault_message":"the body is not valid JSON' PATCH /network-interfaces/net1 '{"iface_id":'
req unknown-route 400 '"fault_message":"Invalid request method and/or path: GET /no-such-route."' \
	GET /no-such-route
req wrong-method 400 '"fault_message":"Invalid request method and/or path: DELETE /metrics."' DELETE /metrics
req mmds-off 400 '"fault_message":"the MMDS is not enabled' GET /mmds
req metrics-get 200 '"net_net1":\{"rx_packets":0,.*"vhost_user":\{"connections":0' GET /metrics
req flush-unconfigured 400 'PUT /metrics first' PUT /actions '{"action_type":"FlushMetrics"}'
req metrics-put 204 '^$' PUT /metrics "{\"metrics_path\":\"$tmp/metrics.json\"}"
req metrics-again 400 'Reinitialization of metrics not allowed' PUT /metrics "{\"metrics_path\":\"$tmp/m2\"}"
req flush 204 '^$' PUT /actions '{"action_type":"FlushMetrics"}'
req action-unsupported 400 'action_type \\"Reboot\\" is not supported' PUT /actions \
	'{"action_type":"Reboot"}'
req action-no-vm 400 'serves a device, not a VM' PUT /actions '{"action_type":"SendCtrlAltDel"}'
if [ "$(wc -l <"$tmp/metrics.json")" = 1 ] && grep -q '"api_server":{"requests":' "$tmp/metrics.json"; then
	ok "flush writes one JSON line"
else
	ko "flush writes one JSON line ($(head -c 200 "$tmp/metrics.json"))"
fi

# Two requests on one connection (keep-alive).
out=$(curl -sv --max-time 5 --unix-socket "$API" http://localhost/ http://localhost/metrics 2>&1)
if grep -q 'Re-using existing connection' <<<"$out" && [ "$(grep -c '< HTTP/1.1 200' <<<"$out")" = 2 ]; then
	ok "keep-alive: two requests on one connection"
else
	ko "keep-alive: two requests on one connection"
fi

# A body over 1 MiB: 400 in Firecracker's shape and words, before the body is read.
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' 'a' >"$tmp/big"
out=$(curl -s --max-time 5 --unix-socket "$API" -X PUT -w '\n%{http_code}' \
	--data-binary @"$tmp/big" http://localhost/mmds)
if [ "$(tail -n 1 <<<"$out")" = 400 ] &&
	grep -q '"fault_message":"Request payload is larger than the limit of 1048576 bytes allowed by server' <<<"$out"; then
	ok "body over the limit: 400"
else
	ko "body over the limit: 400 ($(tail -n 1 <<<"$out"))"
fi

# A client trickling its body does not hold up another one.
head -c 3000 /dev/zero | tr '\0' 'x' >"$tmp/slow"
curl -s --max-time 3 --limit-rate 200 --unix-socket "$API" -X PUT --data-binary @"$tmp/slow" \
	http://localhost/mmds >/dev/null 2>&1 &
slow=$!
sleep 0.5
t0=$(date +%s%N)
code=$(curl -s --max-time 2 --unix-socket "$API" -o /dev/null -w '%{http_code}' http://localhost/)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$code" = 200 ] && [ "$ms" -lt 1000 ] && kill -0 "$slow" 2>/dev/null; then
	ok "a slow client does not hold up another (${ms} ms)"
else
	ko "a slow client does not hold up another (status $code, ${ms} ms)"
fi
wait "$slow" 2>/dev/null

# stop NAME: SIGTERM; exit 0, the socket removed, no sanitizer report.
stop() {
	kill -TERM "$pid"
	wait "$pid"
	local rc=$?
	pid=
	if [ "$rc" = 0 ] && ! [ -e "$API" ] && ! grep -qE 'ERROR: |runtime error' "$tmp/kvmini.log"; then
		ok "$1: exits 0, socket removed, no sanitizer report"
	else
		ko "$1: exits 0, socket removed, no sanitizer report (exit $rc)"
		grep -m5 -E 'ERROR: |runtime error' "$tmp/kvmini.log"
	fi
}
stop "without MMDS"

# The same API with the metadata service on: the /mmds routes.
"$BIN" vhost net --socket "$tmp/net.sock" --backend loopback --api-sock "$API" --mmds \
	2>"$tmp/kvmini.log" &
pid=$!
for ((i = 0; i < 100; i++)); do [ -S "$API" ] && break; sleep 0.05; done
req mmds-patch-first 400 'The MMDS data store is not initialized\.' PATCH /mmds '{"a":1}'
req mmds-put 204 '^$' PUT /mmds '{"latest":{"meta-data":{"instance-id":"i-1","tags":{"a":"b"}}}}'
req mmds-patch 204 '^$' PATCH /mmds '{"latest":{"meta-data":{"tags":null,"zone":"z1"}}}'
req mmds-get 200 '^\{"latest":\{"meta-data":\{"instance-id":"i-1","zone":"z1"\}\}\}$' GET /mmds
req mmds-put-bad 400 '"fault_message":"the MMDS data is not valid JSON"' PUT /mmds '[1'
req mmds-too-big 413 'exceed its limit of 51200 bytes' PUT /mmds \
	"{\"k\":\"$(head -c 60000 /dev/zero | tr '\0' 'x')\"}"
req mmds-unchanged 200 '"zone":"z1"' GET /mmds
req mmds-config 204 '^$' PUT /mmds/config '{"version":"V2","network_interfaces":["eth0"]}'
# V1 is deprecated in Firecracker: the answer says so in a header.
if curl -s -i --max-time 5 --unix-socket "$API" -X PUT -H 'Content-Type: application/json' \
	-d '{"version":"V1","network_interfaces":["eth0"]}' http://localhost/mmds/config |
	tr -d '\r' | grep -qx 'Deprecation: true'; then
	ok "mmds-config-v1-deprecation"
else
	ko "mmds-config-v1-deprecation (no \"Deprecation: true\" header)"
fi
req mmds-config-bad 400 'not V1 or V2' PUT /mmds/config '{"version":"V9","network_interfaces":["eth0"]}'
req mmds-config-iface 400 'is not an interface of this instance' PUT /mmds/config \
	'{"network_interfaces":["eth9"]}'
req mmds-metrics 200 '"mmds":\{"rx_accepted":0,.*"store_too_large":1' GET /metrics
stop "with MMDS"

# --mmds-size-limit (Firecracker's flag): the store's limit, here 100 bytes.
"$BIN" vhost net --socket "$tmp/net.sock" --backend loopback --api-sock "$API" --mmds \
	--mmds-size-limit 100 2>"$tmp/kvmini.log" &
pid=$!
for ((i = 0; i < 100; i++)); do [ -S "$API" ] && break; sleep 0.05; done
req mmds-limit-fits 204 '^$' PUT /mmds "{\"k\":\"$(head -c 80 /dev/zero | tr '\0' 'x')\"}"
req mmds-limit-over 413 'exceed its limit of 100 bytes' PUT /mmds \
	"{\"k\":\"$(head -c 120 /dev/zero | tr '\0' 'x')\"}"
req mmds-limit-kept 200 '^\{"k":"x{80}"\}$' GET /mmds
stop "with --mmds-size-limit"

# `kvmini run --api-sock` with nothing to boot: it waits (no /dev/kvm is
# touched before a load), answers as a monitor with no VM yet, refuses a
# load whose files do not fit and keeps waiting, and SIGTERM ends it (143).
"$BIN" run --api-sock "$API" 2>"$tmp/kvmini.log" &
pid=$!
for ((i = 0; i < 100; i++)); do [ -S "$API" ] && break; sleep 0.05; done
printf 'not a state file' >"$tmp/state"
req wait-instance 200 '"state":"Not started"' GET /
req wait-pause 400 'not supported before starting the microVM' PATCH /vm '{"state":"Paused"}'
req wait-vm-config 200 '^\{"balloon":null,"drives":\[\],"boot-source":\{"kernel_image_path":"","initrd_path":null,"boot_args":"[^"]*"\},.*"machine-config":\{"vcpu_count":1,"mem_size_mib":256,.*"network-interfaces":\[\],"vsock":null,"entropy":null\}$' \
	GET /vm/config
mkfifo "$tmp/api-log.fifo"
req wait-logger 204 '^$' PUT /logger "{\"log_path\":\"$tmp/api-log.fifo\",\"level\":\"debug\",\"show_level\":true}"
req wait-logger-level 400 'Invalid LevelFilter' PUT /logger '{"level":"loud"}'
req wait-logger-path 400 'Failed to open target file: No such file or directory' PUT /logger \
	'{"log_path":"/nonexistent/dir/log"}'
req wait-ctrl-alt-del 400 '"fault_message":"The requested operation is not supported before starting the microVM."' \
	PUT /actions '{"action_type":"SendCtrlAltDel"}'
req wait-create 400 'there is no VM yet' PUT /snapshot/create \
	"{\"snapshot_path\":\"$tmp/s\",\"mem_file_path\":\"$tmp/m\"}"
req wait-load-missing 400 'Cannot load the snapshot: .*No such file' PUT /snapshot/load \
	"{\"snapshot_path\":\"$tmp/absent\",\"mem_file_path\":\"$tmp/m\"}"
req wait-load-corrupt 400 'Cannot load the snapshot: .*state' PUT /snapshot/load \
	"{\"snapshot_path\":\"$tmp/state\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"$tmp/m\"}}"
req wait-still 200 '"state":"Not started"' GET /
# PUT /vsock makes its socket file at once; a second PUT makes it again
# (the same path: a new file) or moves it (the old file goes); the last
# one's file goes when kvmini ends without a VM.
# check NAME CONDITION...: one PASS/FAIL line for a shell test.
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }
req wait-vsock 204 '^$' PUT /vsock "{\"vsock_id\":\"v\",\"guest_cid\":3,\"uds_path\":\"$tmp/v1.sock\"}"
check "wait-vsock: the socket file is made" test -S "$tmp/v1.sock"
ino1=$(stat -c %i "$tmp/v1.sock" 2>/dev/null)
req wait-vsock-again 204 '^$' PUT /vsock "{\"guest_cid\":4,\"uds_path\":\"$tmp/v1.sock\"}"
ino2=$(stat -c %i "$tmp/v1.sock" 2>/dev/null)
check "wait-vsock-again: the socket file is made again" test -S "$tmp/v1.sock" -a "$ino1" != "$ino2"
req wait-vsock-move 204 '^$' PUT /vsock "{\"guest_cid\":5,\"uds_path\":\"$tmp/v2.sock\"}"
check "wait-vsock-move: the old file goes, the new one is made" test ! -e "$tmp/v1.sock" -a -S "$tmp/v2.sock"
req wait-vsock-config 200 "\"vsock\":\\{\"guest_cid\":5,\"uds_path\":\"$tmp/v2.sock\"\\}" GET /vm/config
req wait-vsock-cid 400 'Invalid vsock device: guest_cid 2: must be 3 to' PUT /vsock \
	"{\"guest_cid\":2,\"uds_path\":\"$tmp/v3.sock\"}"
req wait-vsock-file 400 'Invalid vsock device: .*state exists and is not a socket' PUT /vsock \
	"{\"guest_cid\":3,\"uds_path\":\"$tmp/state\"}"
check "wait-vsock: a refused PUT keeps the last one" test -S "$tmp/v2.sock" -a -f "$tmp/state"
# The FIFO nobody reads took the lines from the PUT on, at level Debug
# (kvmini holds it read-write: read them before it ends); then a second
# PUT /logger moves the log to a file, which gets the line at exit.
timeout 2 cat "$tmp/api-log.fifo" >"$tmp/api-log.out" 2>/dev/null
if grep -q '^kvmini: debug: api: GET /: 200$' "$tmp/api-log.out" &&
	! grep -q 'api: GET /: 200' "$tmp/kvmini.log"; then
	ok "waiting run: PUT /logger moved the log to a FIFO without a reader, at level Debug"
else
	ko "waiting run: PUT /logger moved the log to a FIFO without a reader, at level Debug"
	head -n 3 "$tmp/api-log.out"
fi
req wait-logger-file 204 '^$' PUT /logger "{\"log_path\":\"$tmp/api-log.txt\"}"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
check "waiting run: the vsock socket file goes at exit" test ! -e "$tmp/v2.sock"
if [ "$rc" = 143 ] && grep -q 'ending before a VM was started' "$tmp/api-log.txt" &&
	! grep -qE 'ERROR: |runtime error' "$tmp/kvmini.log"; then
	ok "waiting run: SIGTERM ends it with 143, no sanitizer report"
else
	ko "waiting run: SIGTERM ends it with 143, no sanitizer report (exit $rc)"
	tail -n 5 "$tmp/kvmini.log"
fi

# The `firecracker` personality waiting for its configuration: --id in GET /
# and in the log lines, --log-path to a FIFO nobody reads (kvmini must not
# block on it), --level Debug, --metrics-path, and
# --http-api-max-payload-size (a larger body: 400, as Firecracker answers).
FC=${FIRECRACKER:-build/san/firecracker}
mkfifo "$tmp/log.fifo"
"$FC" --api-sock "$API" --id fc-vm-1 --level Debug --log-path "$tmp/log.fifo" \
	--metrics-path "$tmp/fc-metrics.json" --http-api-max-payload-size 200 --boot-timer \
	--start-time-us 1 --show-level 2>"$tmp/kvmini.log" &
pid=$!
for ((i = 0; i < 100; i++)); do [ -S "$API" ] && break; sleep 0.05; done
if [ -S "$API" ]; then ok "firecracker: the socket appears (a log FIFO without a reader does not block)"
else ko "firecracker: the socket appears (a log FIFO without a reader does not block)"; cat "$tmp/kvmini.log"; fi
req fc-instance 200 '"id":"fc-vm-1","state":"Not started"' GET /
req fc-version 200 '^\{"firecracker_version":"1\.[0-9]+\.[0-9]+"\}$' GET /version
req fc-payload-fits 204 '^$' PUT /machine-config \
	'{"vcpu_count":1,"mem_size_mib":64,"smt":false,"track_dirty_pages":false}'
req fc-payload-over 400 '"fault_message":"Request payload is larger than the limit of 200 bytes allowed by server' \
	PUT /machine-config "{\"vcpu_count\":1,\"mem_size_mib\":64,\"pad\":\"$(head -c 200 /dev/zero | tr '\0' 'x')\"}"
req fc-machine-kept 200 '"mem_size_mib":64' GET /machine-config
req fc-vm-config 200 '"machine-config":\{"vcpu_count":1,"mem_size_mib":64,' GET /vm/config
req fc-metrics-again 400 'Reinitialization of metrics not allowed' PUT /metrics "{\"metrics_path\":\"$tmp/m3\"}"
req fc-flush 204 '^$' PUT /actions '{"action_type":"FlushMetrics"}'
if [ "$(wc -l <"$tmp/fc-metrics.json")" = 1 ]; then ok "firecracker: --metrics-path takes FlushMetrics"
else ko "firecracker: --metrics-path takes FlushMetrics ($(wc -l <"$tmp/fc-metrics.json" 2>&1))"; fi
# The FIFO kept the lines (kvmini holds it open read-write): read them now.
timeout 2 cat "$tmp/log.fifo" >"$tmp/fifo.out" 2>/dev/null
if grep -q '^kvmini\[fc-vm-1\]: debug: api: GET /: 200$' "$tmp/fifo.out" &&
	! grep -q '^kvmini' "$tmp/kvmini.log"; then
	ok "firecracker: --log-path FIFO has the lines (with --id, at --level Debug), stderr none"
else
	ko "firecracker: --log-path FIFO has the lines (with --id, at --level Debug), stderr none"
	head -n 3 "$tmp/fifo.out" "$tmp/kvmini.log"
fi
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
if [ "$rc" = 143 ] && [ "$(wc -l <"$tmp/fc-metrics.json")" = 2 ] && ! [ -e "$API" ] &&
	! grep -qE 'ERROR: |runtime error' "$tmp/kvmini.log"; then
	ok "firecracker: SIGTERM ends it (143), a last metrics line, socket removed, no sanitizer report"
else
	ko "firecracker: SIGTERM ends it (143), a last metrics line, socket removed, no sanitizer report (exit $rc)"
	tail -n 5 "$tmp/kvmini.log"
fi

# --level Warning: no info lines in the --log-path file.
"$FC" --api-sock "$API" --level Warning --log-path "$tmp/fc-warn.log" 2>"$tmp/kvmini.log" &
pid=$!
for ((i = 0; i < 100; i++)); do [ -S "$API" ] && break; sleep 0.05; done
req fc-warn-instance 200 '"id":"anonymous-instance"' GET /
kill -TERM "$pid"
wait "$pid"
pid=
if [ -e "$tmp/fc-warn.log" ] && ! grep -q 'info:' "$tmp/fc-warn.log" && ! grep -q '^kvmini' "$tmp/kvmini.log"; then
	ok "firecracker: --level Warning drops info lines"
else
	ko "firecracker: --level Warning drops info lines ($(head -n 2 "$tmp/fc-warn.log" 2>&1))"
fi
