#!/bin/bash
# Snapshots of a VM with a vsock device (tests/kvm/guest/tests.c,
# test=vsock-snap): the guest connects to the host's echo service, the host
# pauses, snapshots and kills the VM with the connection open, and loads
# the snapshot into a waiting kvmini with Firecracker's vsock_override (a
# new socket path): the guest finds VIRTIO_VSOCK_EVENT_TRANSPORT_RESET in
# its event queue (the old connection is gone with the old process), gives
# the buffer back, and a new connection each way works: guest to host
# through the new path's _52, host to guest through the new path. GET
# /vm/config shows the new path; a vsock_override of a snapshot without
# vsock, one that is a file or in no directory, and a --vsock of another
# CID beside --restore, are refused (the waiting kvmini waits on).
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null && command -v curl >/dev/null ||
	{ echo "SKIP: kvm snapshot vsock: python3 or curl not installed"; exit 0; }
DIR=$(mktemp -d /tmp/kvmini-test-snapvs.XXXXXX)
SOCK=$DIR/v.sock
NEW=$DIR/w.sock
API=$DIR/api.sock
PEERS=()
cleanup() {
	for p in "${PEERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$DIR"
}
trap cleanup EXIT
answered() {
	[ "$CODE" = "$2" ] && grep -q -- "$3" <<<"$BODY" && pass "$1" || fail "$1 (answered $CODE: $BODY)"
}
wait_socket() {
	for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done
	return 1
}
# echo_service PATH LOG: one connection at PATH, every byte back until EOF
# (or the VM killed under it), through tests/kvm/vsock_peer.py.
echo_service() {
	python3 tests/kvm/vsock_peer.py echo "$1" "$2" 90 &
	PEERS+=($!)
	wait_socket "$1"
}

echo_service "${SOCK}_52" "$DIR/echo-old.log"
run_bg snap-vsock --kernel "$GUEST" --cmdline "test=vsock-snap" --vsock "3:$SOCK" --api-sock "$API"
first=$VM
wait_output 'vsock-snap: connected, waiting' || fail "snapshot vsock: the guest did not connect"
[ "$(patch_vm "$API" Paused)" = 204 ] || fail "snapshot vsock: PATCH /vm Paused refused"
api_put "$API" /snapshot/create "$(snap_json Full "$DIR/state" "$DIR/mem")"
answered "snapshot vsock: a VM with vsock and an open connection is snapshotted (204)" 204 ''
kill_bg "$first"
collect_bg

run snap-vsock-cid "" -- --restore "$DIR/state" --mem-file "$DIR/mem" --vsock "4:$DIR/x.sock"
expect "snapshot vsock: --restore with a vsock of another CID is refused by its section" 1 \
	"VSCK.*the snapshot's guest CID is 3, this vsock device's 4"

echo_service "${NEW}_52" "$DIR/echo-new.log"
rm -f "$API"
run_bg snap-vsock-load --api-sock "$API"
wait_socket "$API" || fail "snapshot vsock: the waiting kvmini made no API socket"
load='{"snapshot_path":"'$DIR/state'","mem_backend":{"backend_type":"File","backend_path":"'$DIR/mem'"},"resume_vm":true'
api_put "$API" /snapshot/load "$load,\"vsock_override\":{\"uds_path\":\"\"}}"
answered "snapshot vsock: an empty vsock_override path is refused" 400 'uds_path must be 1 to'
touch "$DIR/file"
api_put "$API" /snapshot/load "$load,\"vsock_override\":{\"uds_path\":\"$DIR/file\"}}"
answered "snapshot vsock: a vsock_override path that is a file is refused before the build" 400 \
	"vsock: $DIR/file exists and is not a socket"
api_put "$API" /snapshot/load "$load,\"vsock_override\":{\"uds_path\":\"$DIR/none/w.sock\"}}"
answered "snapshot vsock: a vsock_override path in no directory is refused before the build" 400 \
	'has no directory to be made in'
api_put "$API" /snapshot/load "$load,\"vsock_override\":{\"uds_path\":\"$NEW\"}}"
answered "snapshot vsock: loaded with vsock_override (204)" 204 ''
shown=$(curl -s --max-time 10 --unix-socket "$API" http://k/vm/config |
	python3 -c 'import json, sys; v = json.load(sys.stdin)["vsock"]; print(v["guest_cid"], v["uds_path"])')
[ "$shown" = "3 $NEW" ] && pass "snapshot vsock: GET /vm/config shows the CID and the new path" ||
	fail "snapshot vsock: GET /vm/config's vsock: $shown"
wait_output 'vsock-snap: reset taken' || fail "snapshot vsock: the guest did not take the reset"
# The host client on the new path: "CONNECT 1234\nping", then "OK <port>\n" and "pong".
python3 tests/kvm/vsock_peer.py oneshot "$NEW" 1234 ping pong "$DIR/client.log" 50 &
PEERS+=($!)
collect_bg
expect "snapshot vsock: after the restore the guest saw TRANSPORT_RESET and connected both ways (guest checks)" \
	0 'vsock-snap: done \(0 failures\)'
grep -q 'transport reset sent to the guest' <<<"$ERR" && pass "snapshot vsock: the restored kvmini logged the reset" ||
	fail "snapshot vsock: no 'transport reset sent' in the log"
for p in "${PEERS[@]}"; do wait "$p" 2>/dev/null; done
PEERS=()
[ "$(cat "$DIR/echo-new.log" 2>/dev/null)" = "hello over vsock" ] &&
	pass "snapshot vsock: guest to host after the restore: the echo through the new path" ||
	fail "snapshot vsock: the new echo service saw '$(cat "$DIR/echo-new.log" 2>/dev/null)'"
grep -qE '^OK [0-9]{10}$' <(head -n 1 "$DIR/client.log" 2>/dev/null) &&
	[ "$(tail -c 4 "$DIR/client.log")" = pong ] &&
	pass "snapshot vsock: host to guest after the restore: 'OK <hostport>' then 'pong'" ||
	fail "snapshot vsock: the host client read '$(cat "$DIR/client.log" 2>/dev/null)'"
sanitizer_check snap-vsock-load

# A snapshot without vsock: vsock_override has nothing to change.
rm -f "$API"
run_bg snap-vsock-none --kernel "$GUEST" --cmdline "test=ticks ticks=200" --api-sock "$API"
wait_output 'ticks: tick 2'
[ "$(patch_vm "$API" Paused)" = 204 ] || fail "snapshot vsock: PATCH /vm Paused refused (ticks)"
api_put "$API" /snapshot/create "$(snap_json Full "$DIR/state2" "$DIR/mem2")"
kill_bg "$VM"
collect_bg
rm -f "$API"
run_bg snap-vsock-none-load --api-sock "$API"
wait_socket "$API"
api_put "$API" /snapshot/load '{"snapshot_path":"'$DIR/state2'","mem_file_path":"'$DIR/mem2'","vsock_override":{"uds_path":"'$NEW'"}}'
answered "snapshot vsock: vsock_override of a snapshot without vsock is refused" 400 \
	'vsock_override: the snapshot has no vsock device'
kill -TERM "$VM"
collect_bg
kvm_end
