#!/bin/bash
# Snapshots with the test guest: PUT /snapshot/create of a paused VM
# (refused while it runs; /snapshot/load refused after boot), then the
# first kvmini killed and `kvmini run --restore` in a new process with the
# snapshot's own devices: the ticking guest goes on from where it was (its
# ticks, across both runs, are 1 to N once each), the net test's second
# round runs over the restored virtio-net queues, two clones of one
# snapshot both finish (one from the command line, one loaded through PUT
# /snapshot/load into a waiting kvmini, paused, then resumed, each with its
# own MAC); and the refusals: a corrupt state, other devices, a memory
# file of another size, a boot option beside --restore, bad loads.
. "$(dirname "$0")/lib.sh"

if ! command -v curl >/dev/null; then
	echo "SKIP: kvm snapshot: curl is not installed"
	kvm_end
fi
SNAP=$(mktemp -d)
trap 'rm -rf "$SNAP"' EXIT
api=$LOGDIR/snap.sock

# --- the ticking guest: snapshot, kill, restore --------------------------------
NTICKS=120
rm -f "$api"
run_bg snap-ticks --kernel "$GUEST" --cmdline "test=ticks ticks=$NTICKS" --net loopback \
	--api-sock "$api"
first=$VM
wait_output 'kvm-guest ticks: tick 3'
api_put "$api" /snapshot/create "$(snap_json Full "$SNAP/state" "$SNAP/mem")"
code=$CODE
[ "$code" = 400 ] && grep -q 'pause it first' <<<"$BODY" &&
	pass "snapshot: create while running is refused (400, pause first)" ||
	fail "snapshot: create while running answered $code: $BODY"
[ "$(patch_vm "$api" Paused)" = 204 ] || fail "snapshot: PATCH /vm Paused refused"
api_put "$api" /snapshot/create '{"snapshot_type":"Half","snapshot_path":"x","mem_file_path":"y"}'
code=$CODE
[ "$code" = 400 ] && grep -q 'not Full or Diff' <<<"$BODY" &&
	pass "snapshot: an unknown snapshot_type is refused" ||
	fail "snapshot: snapshot_type Half answered $code: $BODY"
api_put "$api" /snapshot/create "$(snap_json Full "$SNAP/state" "$SNAP/mem")"
code=$CODE
[ "$code" = 204 ] && [ -s "$SNAP/state" ] && [ "$(stat -c %s "$SNAP/mem")" = $((256 << 20)) ] &&
	pass "snapshot: create while paused answers 204, state and 256 MiB memory image written" ||
	fail "snapshot: create answered $code: $BODY"
api_put "$api" /snapshot/load "{\"snapshot_path\":\"$SNAP/state\",\"mem_file_path\":\"$SNAP/mem\"}"
code=$CODE
[ "$code" = 400 ] && grep -q 'after the microVM has booted' <<<"$BODY" &&
	pass "snapshot: load into a VM that has booted is refused" ||
	fail "snapshot: load after boot answered $code: $BODY"
kill_bg "$first"
collect_bg
cp "$LOGDIR/snap-ticks.out" "$LOGDIR/snap-ticks-before.out"
grep -q 'snapshot: state' <<<"$ERR" && pass "snapshot: kvmini logged the snapshot's sizes and time" ||
	fail "snapshot: no 'snapshot: state' line in kvmini's log"
# No --net: the devices come from the snapshot (its "DEVC" section).
run_bg snap-restore --restore "$SNAP/state" --mem-file "$SNAP/mem" --boot-timing
collect_bg
expect "snapshot: the restored guest ends its ticks" 0 'kvm-guest ticks: done'
seq_ok=$(cat "$LOGDIR/snap-ticks-before.out" "$LOGDIR/snap-restore.out" | tr -d '\r' |
	grep -oE '^kvm-guest ticks: tick [0-9]+$' | grep -oE '[0-9]+$' |
	awk -v n="$NTICKS" '$1 != NR { bad = 1 } END { print (NR == n && !bad) ? "yes" : "no" }')
[ "$seq_ok" = yes ] && pass "snapshot: ticks 1 to $NTICKS across both processes, none lost, none repeated" ||
	fail "snapshot: the ticks before and after the restore are not 1 to $NTICKS once each"
grep -E 'first guest instruction' <<<"$ERR" | sed 's/^/    /'
sanitizer_check snapshot-restore

# --- clones: the same snapshot twice more ------------------------------------------
run_bg snap-clone1 --restore "$SNAP/state" --mem-file "$SNAP/mem" --net loopback \
	--mac 02:00:00:00:01:01
collect_bg
expect "snapshot: clone 1 of the same snapshot ends its ticks" 0 'kvm-guest ticks: done'
grep -q 'eth0: MAC 02:00:00:00:01:01' <<<"$ERR" &&
	pass "snapshot: clone 1 has the MAC its command line gave" ||
	fail "snapshot: clone 1's log does not show MAC 02:00:00:00:01:01"

# Clone 2 through Firecracker's flow: a kvmini waiting on its API socket
# (GET / says "Not started"), PUT /snapshot/load without resume_vm leaves
# it Paused (no tick), PATCH /vm Resumed runs it; the load's refusals
# first, each leaving the monitor waiting.
wait_socket() {
	for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done
	return 1
}
instance_state() { curl -s --max-time 10 --unix-socket "$1" http://k/ | grep -oE '"state": *"[^"]*"'; }
load_json() { echo "{\"snapshot_path\":\"$1\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"$2\"}${3:-}}"; }
ticks_in() { grep -c '^kvm-guest ticks: tick ' "$LOGDIR/$1.out" 2>/dev/null; }
rm -f "$api"
run_bg snap-load --api-sock "$api"
loader=$VM
wait_socket "$api" || fail "snapshot: the waiting kvmini made no API socket"
[ "$(instance_state "$api")" = '"state":"Not started"' ] &&
	pass "snapshot: a kvmini with --api-sock and nothing to boot waits (Not started)" ||
	fail "snapshot: the waiting kvmini says $(instance_state "$api")"
# answered NAME STATUS PATTERN: the last api_put got STATUS, PATTERN in its body.
answered() {
	[ "$CODE" = "$2" ] && grep -q -- "$3" <<<"$BODY" && pass "$1" || fail "$1 (answered $CODE: $BODY)"
}
truncate -s 128M "$SNAP/short-mem"
api_put "$api" /snapshot/load "$(load_json "$SNAP/state" "$SNAP/short-mem")"
answered "snapshot: a load with another memory file is refused (400, why)" 400 \
	'not this snapshot.s memory file'
api_put "$api" /snapshot/load "$(load_json "$SNAP/state" "$SNAP/mem" \
	',"network_overrides":[{"iface_id":"eth9","host_dev_name":"tap9"}]')"
answered "snapshot: an override of an interface the snapshot lacks is refused" 400 'has no interface'
api_put "$api" /snapshot/load "$(load_json "$SNAP/state" "$SNAP/mem" \
	',"network_overrides":[{"iface_id":"eth0","guest_mac":"02:00:00:00:02:01"}]')"
code=$CODE
[ "$code" = 204 ] && [ "$(instance_state "$api")" = '"state":"Paused"' ] &&
	pass "snapshot: PUT /snapshot/load answers 204 after refusals, the VM Paused" ||
	fail "snapshot: the load answered $code ($BODY), state $(instance_state "$api")"
sleep 1.5
[ "$(ticks_in snap-load)" = 0 ] && pass "snapshot: the loaded VM does not run while Paused" ||
	fail "snapshot: $(ticks_in snap-load) ticks while the loaded VM was Paused"
api_put "$api" /snapshot/load "$(load_json "$SNAP/state" "$SNAP/mem")"
answered "snapshot: a second load is refused" 400 'start a new kvmini'
[ "$(patch_vm "$api" Resumed)" = 204 ] || fail "snapshot: PATCH /vm Resumed after the load refused"
collect_bg
expect "snapshot: clone 2, loaded through the API and resumed, ends its ticks" 0 \
	'kvm-guest ticks: done'
grep -q 'eth0: MAC 02:00:00:00:02:01' <<<"$ERR" &&
	pass "snapshot: clone 2 has the MAC its network_overrides gave" ||
	fail "snapshot: clone 2's log does not show MAC 02:00:00:00:02:01"
seq_ok=$(cat "$LOGDIR/snap-ticks-before.out" "$LOGDIR/snap-load.out" | tr -d '\r' |
	grep -oE '^kvm-guest ticks: tick [0-9]+$' | grep -oE '[0-9]+$' |
	awk -v n="$NTICKS" '$1 != NR { bad = 1 } END { print (NR == n && !bad) ? "yes" : "no" }')
[ "$seq_ok" = yes ] && pass "snapshot: the loaded clone's ticks go on from the snapshot's" ||
	fail "snapshot: the ticks before the snapshot and in the loaded clone are not 1 to $NTICKS"

# A signal to a kvmini still waiting ends it with 128+N.
rm -f "$api"
run_bg snap-wait --api-sock "$api"
wait_socket "$api"
kill -TERM "$VM"
collect_bg
expect "snapshot: a waiting kvmini ends on SIGTERM with 143" 143 'ending before a VM was started'
run preboot-net "" -- --api-sock "$api" --net loopback
expect "snapshot: --net beside a waiting --api-sock is a usage error" 2 \
	'takes its machine from the API'

# --- the net test: paused between its rounds, restored, second round ------------
rm -f "$api"
run_bg snap-net --kernel "$GUEST" --cmdline "test=net between_ms=4000" --net loopback \
	--api-sock "$api"
first=$VM
wait_output 'kvm-guest net: between rounds'
p=$(patch_vm "$api" Paused)
api_put "$api" /snapshot/create "$(snap_json Full "$SNAP/net-state" "$SNAP/net-mem")"
code=$CODE
kill_bg "$first"
collect_bg
[ "$p$code" = 204204 ] || fail "snapshot: pausing or snapshotting the net test answered $p, $code: $BODY"
run_bg snap-net-restore --restore "$SNAP/net-state" --mem-file "$SNAP/net-mem" --net loopback \
	--counters
collect_bg
expect "snapshot: virtio-net's second round over the restored queues (guest checks)" 0 \
	'kvm-guest net: done \(0 failures\)'
sanitizer_check snapshot-net

# --- refusals --------------------------------------------------------------------
cp "$SNAP/state" "$SNAP/bad"
printf '\xff' | dd of="$SNAP/bad" bs=1 seek=100 conv=notrunc status=none
run bad-state "" -- --restore "$SNAP/bad" --mem-file "$SNAP/mem" --net loopback
expect "snapshot: a corrupt state is refused before anything runs" 1 'checksum mismatch'
run other-devices "" -- --restore "$SNAP/state" --mem-file "$SNAP/mem" --net loopback \
	--net loopback
expect "snapshot: a machine with other devices is refused" 1 'the snapshot has 1 virtio devices, this machine 2'
truncate -s 128M "$SNAP/mem"
run other-mem "" -- --restore "$SNAP/state" --mem-file "$SNAP/mem" --net loopback
expect "snapshot: a memory file of another size is refused" 1 'not this snapshot.s memory file'
run boot-option "" -- --restore "$SNAP/state" --mem-file "$SNAP/mem" --mem 128
expect "snapshot: --mem beside --restore is a usage error" 2 '--mem: with --restore this comes from the snapshot'
run no-mem-file "" -- --restore "$SNAP/state"
expect "snapshot: --restore without --mem-file is a usage error" 2 '--restore needs --mem-file'
kvm_end
