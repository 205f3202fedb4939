#!/bin/bash
# virtio-vsock in kvmini run (--vsock CID:PATH, Firecracker's hybrid vsock),
# driven by the test guest's own driver (tests/kvm/guest/tests.c,
# test=vsock):
#  - guest to host: the guest connects to CID 2 port 52; kvmini connects to
#    the unix socket PATH_52, where a host echo service listens;
#    the guest hears its bytes back and closes;
#  - host to guest: a host client connects to PATH and writes
#    "CONNECT 1234\nping" in one write; the guest accepts, receives "ping"
#    and answers "pong"; the client reads "OK <hostport>\n" then "pong";
#  - a snapshot of the VM is taken (PUT /snapshot/create; restores are
#    test_snapshot_vsock.sh's);
#  - the counters, and PATH and no leftover socket files after the run;
#  - a bad --vsock stops kvmini before the boot.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || { echo "SKIP: kvm vsock: python3 not installed (the host peers)"; exit 0; }
DIR=$(mktemp -d /tmp/kvmini-test-vsock.XXXXXX)
SOCK=$DIR/v.sock
PEERS=()
cleanup() {
	for p in "${PEERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$DIR"
}
trap cleanup EXIT

# The host's peers are tests/kvm/vsock_peer.py's. The echo service at
# PATH_52: one connection, every byte back, until EOF.
python3 tests/kvm/vsock_peer.py echo "${SOCK}_52" "$DIR/echo.log" 60 &
PEERS+=($!)
for _ in $(seq 100); do [ -S "${SOCK}_52" ] && break; sleep 0.05; done
API=$DIR/api.sock
run_bg vsock --kernel "$GUEST" --cmdline "test=vsock vsock_linger=5000" --vsock "3:$SOCK" \
	--counters --api-sock "$API"
wait_output 'guest to host: SHUTDOWN both ways' || fail "vsock: the guest never finished its own connection"
# The host client, once the guest is done with its own connection: "CONNECT
# 1234\nping" on PATH, then "OK <port>\n" and "pong" (retried should the
# guest not answer in time: kvmini closes such a client after 2 s).
python3 tests/kvm/vsock_peer.py oneshot "$SOCK" 1234 ping pong "$DIR/client.log" 50 &
PEERS+=($!)
if ! command -v curl >/dev/null; then
	echo "SKIP: kvm vsock: snapshot (curl not installed)"
elif wait_output 'vsock: lingering'; then
	[ "$(patch_vm "$API" Paused)" = 204 ] || fail "vsock: PATCH /vm Paused refused"
	api_put "$API" /snapshot/create "$(snap_json Full "$DIR/state" "$DIR/mem")"
	[ "$CODE" = 204 ] && [ -s "$DIR/state" ] && pass "vsock: a snapshot of a VM with vsock is taken (204)" ||
		fail "vsock: snapshot answered $CODE: $BODY"
	[ "$(patch_vm "$API" Resumed)" = 204 ] || fail "vsock: PATCH /vm Resumed refused"
	api_put "$API" /vsock "{\"guest_cid\":4,\"uds_path\":\"$DIR/w.sock\"}"
	[ "$CODE" = 400 ] && grep -q 'not supported after starting the microVM' <<<"$BODY" &&
		pass "vsock: PUT /vsock on the running VM refused as Firecracker refuses it" ||
		fail "vsock: PUT /vsock after the start answered $CODE: $BODY"
	# Both directions done by now: the metrics' vsock object, Firecracker's names.
	shown=$(curl -s --max-time 10 --unix-socket "$API" http://k/metrics |
		python3 -c 'import json, sys; v = json.load(sys.stdin)["vsock"]; print(v["conns_added"] >= 2, v["rx_bytes_count"] == v["rx_bytes"] > 0)')
	[ "$shown" = "True True" ] && pass "vsock: GET /metrics: vsock under Firecracker's names (conns_added, rx_bytes_count)" ||
		fail "vsock: GET /metrics's vsock object: $shown"
else
	fail "vsock: the guest never reached its linger"
fi

collect_bg
expect "vsock: both directions through the guest's driver (guest checks)" 0 'vsock: done \(0 failures\)'
for p in "${PEERS[@]}"; do wait "$p" 2>/dev/null; done
PEERS=()
[ "$(cat "$DIR/echo.log" 2>/dev/null)" = "hello over vsock" ] &&
	pass "vsock: the host echo service got the guest's bytes, then EOF" ||
	fail "vsock: the echo service saw '$(cat "$DIR/echo.log" 2>/dev/null)'"
grep -qE '^OK [0-9]{10}$' <(head -n 1 "$DIR/client.log" 2>/dev/null) &&
	[ "$(tail -c 4 "$DIR/client.log")" = pong ] &&
	pass "vsock: the host client read 'OK <hostport>' then the guest's 'pong'" ||
	fail "vsock: the host client read '$(cat "$DIR/client.log" 2>/dev/null)'"
[ "$(counter tx_conns_opened)" = 1 ] && [ "$(counter rx_conns_opened)" = 1 ] &&
	[ "$(counter tx_packets_malformed)" = 0 ] && [ "$(counter tx_credit_exceeded)" = 0 ] &&
	pass "vsock: counters (one connection each way, nothing malformed)" ||
	fail "vsock: counters: tx_conns_opened $(counter tx_conns_opened), rx_conns_opened $(counter rx_conns_opened), tx_packets_malformed $(counter tx_packets_malformed)"
[ ! -e "$SOCK" ] && pass "vsock: the socket file removed at exit" ||
	fail "vsock: $SOCK left behind"

run vsock-bad "" -- --kernel "$GUEST" --cmdline "test=vsock" --vsock "2:$SOCK"
expect "vsock: CID 2 refused before the boot" 2 'vsock 2:.*CID from 3'
touch "$DIR/file"
run vsock-file "" -- --kernel "$GUEST" --cmdline "test=vsock" --vsock "3:$DIR/file"
expect "vsock: a path that is a regular file refused, the file kept" 1 'vsock: .*file exists and is not a socket'
[ -f "$DIR/file" ] || fail "vsock: the regular file was removed"
kvm_end
