#!/bin/bash
# Diff snapshots with the ticking test guest under --track-dirty-pages: a
# Diff before any snapshot is refused; a Full snapshot, the guest ticks on,
# a Diff; killed, and restored from both layers (with tracking again) it
# ticks on and takes a second Diff over the restored layers; restored from
# all three, without tracking, a Diff is refused and the guest ends its
# ticks: across the three processes they are 1 to N once each. A restore
# with the Full file alone is refused with the count and order; the Diff
# files take a fraction of the Full's disk (printed, with the times kvmini
# logged).
. "$(dirname "$0")/lib.sh"

# snapshot NAME TYPE STATE MEM: pause, snapshot (204 wanted), a PASS or FAIL line.
snapshot() {
	local p
	p=$(patch_vm "$api" Paused)
	api_put "$api" /snapshot/create "$(snap_json "$2" "$3" "$4")"
	[ "$p$CODE" = 204204 ] && pass "snapshot diff: $1 ($2) answers 204" ||
		fail "snapshot diff: $1 ($2): pause $p, create $CODE: $BODY"
}
# ticks_ok FILES...: the guest's ticks across FILES are 1 to NTICKS once each.
ticks_ok() {
	cat "$@" | tr -d '\r' | grep -oE '^kvm-guest ticks: tick [0-9]+$' | grep -oE '[0-9]+$' |
		awk -v n="$NTICKS" '$1 != NR { bad = 1 } END { print (NR == n && !bad) ? "yes" : "no" }'
}
kib() { du -k "$1" | cut -f1; }
# ticks_in FILE...: the guest's tick numbers in the files' output read as
# one stream (a line the snapshot cut in two ends in the next process's).
ticks_in() { cat "$@" | tr -d '\r' | grep -oE '^kvm-guest ticks: tick [0-9]+$' | grep -oE '[0-9]+$'; }
# ticks_on FILE...: "yes" when the stream's ticks are 1, 2, 3, ... with none
# lost or repeated.
ticks_on() { ticks_in "$@" | awk '$1 != NR { bad = 1 } END { print (NR > 0 && !bad) ? "yes" : "no" }'; }

if ! command -v curl >/dev/null; then
	echo "SKIP: kvm snapshot diff: curl is not installed"
	kvm_end
fi
SNAP=$(mktemp -d)
trap 'rm -rf "$SNAP"' EXIT
api=$LOGDIR/snap-diff.sock
# Enough ticks (100 ms each) that no process ends them before it is
# paused: a restored guest first catches up on the ticks its clock says
# it missed while no process ran it.
NTICKS=200

# --- boot: Full, tick on, Diff ---------------------------------------------------
rm -f "$api"
run_bg diff-boot --kernel "$GUEST" --cmdline "test=ticks ticks=$NTICKS" --net loopback \
	--api-sock "$api" --track-dirty-pages
vm=$VM
wait_output 'kvm-guest ticks: tick 3'
[ "$(patch_vm "$api" Paused)" = 204 ] || fail "snapshot diff: PATCH /vm Paused refused"
api_put "$api" /snapshot/create "$(snap_json Diff "$SNAP/x" "$SNAP/y")"
[ "$CODE" = 400 ] && grep -q 'take a Full snapshot first' <<<"$BODY" &&
	pass "snapshot diff: a Diff before any snapshot is refused (400, take a Full first)" ||
	fail "snapshot diff: a first Diff answered $CODE: $BODY"
snapshot "Full while tracking" Full "$SNAP/full.state" "$SNAP/full.mem"
[ "$(patch_vm "$api" Resumed)" = 204 ] || fail "snapshot diff: PATCH /vm Resumed refused"
wait_output 'kvm-guest ticks: tick 15'
snapshot "Diff after ticking on" Diff "$SNAP/diff1.state" "$SNAP/diff1.mem"
kill_bg "$vm"
collect_bg
grep -E 'snapshot: state' <<<"$ERR" | sed 's/^/    /'
cp "$LOGDIR/diff-boot.out" "$LOGDIR/diff-1.out"

# --- the layers must all be given ---------------------------------------------------
run diff-base-only "" -- --restore "$SNAP/diff1.state" --mem-file "$SNAP/full.mem" --net loopback
expect "snapshot diff: a restore with the Full file alone is refused before anything runs" 1 \
	'memory has 2 layers: give --mem-file 2 times, the Full snapshot.s memory file first'
run diff-full-two "" -- --restore "$SNAP/full.state" --mem-file "$SNAP/full.mem" \
	--mem-file "$SNAP/diff1.mem" --net loopback
expect "snapshot diff: a Full snapshot's state with two memory files is refused" 1 \
	'a Full snapshot: give its one memory file'

# --- restore both layers, tracking: a second Diff over them ----------------------
rm -f "$api"
run_bg diff-restore1 --restore "$SNAP/diff1.state" --mem-file "$SNAP/full.mem" \
	--mem-file "$SNAP/diff1.mem" --net loopback --api-sock "$api" --track-dirty-pages
vm=$VM
wait_output 'kvm-guest ticks: tick'
snapshot "Diff over the restored layers" Diff "$SNAP/diff2.state" "$SNAP/diff2.mem"
kill_bg "$vm"
collect_bg
grep -E 'snapshot: state' <<<"$ERR" | sed 's/^/    /'
sanitizer_check diff-restore1
# The tick being printed at the Diff may be cut in two: its line ends in
# the restored process's output, so the two are read as one stream.
at_diff=$(ticks_in "$LOGDIR/diff-1.out" | tail -n 1)
after=$(ticks_in "$LOGDIR/diff-1.out" "$LOGDIR/diff-restore1.out" | tail -n 1)
[ "$(ticks_on "$LOGDIR/diff-1.out" "$LOGDIR/diff-restore1.out")" = yes ] && [ "$after" -gt "$at_diff" ] &&
	pass "snapshot diff: restored from Full + Diff, the guest ticks on from after the Diff (ticks $at_diff, then to $after, none lost or repeated)" ||
	fail "snapshot diff: the restore from two layers did not tick on from $((at_diff + 1)) (to ${after:-none})"
cp "$LOGDIR/diff-restore1.out" "$LOGDIR/diff-2.out"

# --- restore three layers, no tracking: Diff refused, the ticks end --------------
rm -f "$api"
run_bg diff-restore2 --restore "$SNAP/diff2.state" --mem-file "$SNAP/full.mem" \
	--mem-file "$SNAP/diff1.mem" --mem-file "$SNAP/diff2.mem" --net loopback --api-sock "$api"
vm=$VM
wait_output 'kvm-guest ticks: tick'
p=$(patch_vm "$api" Paused)
api_put "$api" /snapshot/create "$(snap_json Diff "$SNAP/x" "$SNAP/y")"
[ "$CODE" = 400 ] && grep -q -- '--track-dirty-pages' <<<"$BODY" &&
	pass "snapshot diff: a Diff without dirty tracking is refused (400, --track-dirty-pages)" ||
	fail "snapshot diff: a Diff without tracking answered $CODE: $BODY"
[ "$p$(patch_vm "$api" Resumed)" = 204204 ] || fail "snapshot diff: pause/resume refused"
collect_bg
expect "snapshot diff: restored from three layers, the guest ends its ticks" 0 'kvm-guest ticks: done'
sanitizer_check diff-restore2
[ "$(ticks_ok "$LOGDIR/diff-1.out" "$LOGDIR/diff-2.out" "$LOGDIR/diff-restore2.out")" = yes ] &&
	pass "snapshot diff: ticks 1 to $NTICKS across the three processes, none lost, none repeated" ||
	fail "snapshot diff: the ticks across the three processes are not 1 to $NTICKS once each"

# --- sizes -----------------------------------------------------------------------------
full=$(kib "$SNAP/full.mem"); d1=$(kib "$SNAP/diff1.mem"); d2=$(kib "$SNAP/diff2.mem")
echo "    disk used: Full $full KiB, Diff 1 $d1 KiB, Diff 2 $d2 KiB" \
	"(each file $(($(stat -c %s "$SNAP/full.mem") >> 20)) MiB long)"
[ "$d1" -gt 0 ] && [ $((d1 * 2)) -lt "$full" ] && [ $((d2 * 2)) -lt "$full" ] &&
	pass "snapshot diff: the Diff files take under half the Full's disk" ||
	fail "snapshot diff: Diff files of $d1 and $d2 KiB against a Full of $full KiB"
kvm_end
