#!/bin/bash
# Snapshots of a VM with a drive (tests/kvm/guest/tests.c, test=blk-snap):
# the guest writes sector 10, then writes and reads sectors back to back
# while the host pauses it, snapshots it (the request in flight answered
# first) and kills it; the image has sector 10 at once (flushed with the
# snapshot). A load whose image is gone, and one whose image changed size,
# are refused with why and leave the waiting kvmini as it was; the same
# snapshot then loads through PUT /snapshot/load with the drive it
# describes (GET /vm/config shows it), the guest's requests go on and it
# writes sector 11: the image holds both. `kvmini run --restore` with a
# read-only --drive of its own is refused by the drive's section.
. "$(dirname "$0")/lib.sh"

if ! command -v curl >/dev/null; then
	echo "SKIP: kvm snapshot blk: curl is not installed"
	kvm_end
fi
SNAP=$(mktemp -d)
trap 'rm -rf "$SNAP"' EXIT
IMG=$SNAP/disk.img
api=$LOGDIR/snap-blk.sock
python3 -c 'import sys; sys.stdout.buffer.write(b"".join(bytes([(s + 1) & 255]) * 512 for s in range(128)))' >"$IMG"
# sector FILE N: "BYTE COUNT" for each distinct byte of sector N.
sector() {
	dd if="$1" bs=512 skip="$2" count=1 status=none | od -An -v -tx1 | tr -s ' \n' '\n' |
		grep . | sort | uniq -c | awk '{print $2 " " $1}' | paste -sd,
}
answered() {
	[ "$CODE" = "$2" ] && grep -q -- "$3" <<<"$BODY" && pass "$1" || fail "$1 (answered $CODE: $BODY)"
}
wait_socket() {
	for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done
	return 1
}
load_json() { echo "{\"snapshot_path\":\"$SNAP/state\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"$SNAP/mem\"}${1:-}}"; }

rm -f "$api"
run_bg snap-blk --kernel "$GUEST" --cmdline "test=blk-snap blk_snap_ms=6000" \
	--drive "$IMG,id=kvmdisk" --api-sock "$api"
first=$VM
wait_output 'blk-snap: sector 10 written' || fail "snapshot blk: the guest did not start its requests"
sleep 0.5
[ "$(patch_vm "$api" Paused)" = 204 ] || fail "snapshot blk: PATCH /vm Paused refused"
api_put "$api" /snapshot/create "$(snap_json Full "$SNAP/state" "$SNAP/mem")"
answered "snapshot blk: a VM with a drive is snapshotted (204)" 204 ''
kill_bg "$first"
collect_bg
[ "$(sector "$IMG" 10)" = "41 512" ] && [ "$(sector "$IMG" 11)" = "0c 512" ] &&
	pass "snapshot blk: the image has what was written before the snapshot, not more" ||
	fail "snapshot blk: sectors 10 and 11 are $(sector "$IMG" 10) and $(sector "$IMG" 11)"

rm -f "$api"
run_bg snap-blk-load --api-sock "$api"
wait_socket "$api" || fail "snapshot blk: the waiting kvmini made no API socket"
mv "$IMG" "$IMG.away"
api_put "$api" /snapshot/load "$(load_json)"
answered "snapshot blk: a load whose image is gone is refused (400, why)" 400 \
	"drive kvmdisk: its image cannot be reopened: $IMG: No such file"
cp "$IMG.away" "$IMG"
truncate -s $((256 * 512)) "$IMG"
api_put "$api" /snapshot/load "$(load_json)"
answered "snapshot blk: a load whose image changed size is refused (400, why)" 400 \
	'has 256 sectors, the snapshot.s drive had 128'
mv "$IMG.away" "$IMG"
api_put "$api" /snapshot/load "$(load_json ',"resume_vm":true')"
answered "snapshot blk: the same kvmini then loads it (204)" 204 ''
drive=$(curl -s --max-time 10 --unix-socket "$api" http://k/vm/config |
	python3 -c 'import json, sys; d = json.load(sys.stdin)["drives"]; print(len(d), d[0]["drive_id"], d[0]["path_on_host"], d[0]["is_read_only"])')
[ "$drive" = "1 kvmdisk $IMG False" ] && pass "snapshot blk: GET /vm/config shows the snapshot's drive" ||
	fail "snapshot blk: GET /vm/config's drives: $drive"
collect_bg
expect "snapshot blk: the restored guest's requests go on and it ends (guest checks)" 0 \
	'blk-snap: done \(0 failures\)'
grep -q 'blk-snap: [0-9]* write/read rounds' <<<"$OUT" || fail "snapshot blk: no rounds line after the restore"
[ "$(sector "$IMG" 10)" = "41 512" ] && [ "$(sector "$IMG" 11)" = "42 512" ] &&
	pass "snapshot blk: the image holds sector 10 from before and sector 11 from after" ||
	fail "snapshot blk: sectors 10 and 11 are $(sector "$IMG" 10) and $(sector "$IMG" 11)"
sanitizer_check snap-blk-load

run snap-blk-ro "" -- --restore "$SNAP/state" --mem-file "$SNAP/mem" --drive "$IMG,ro,id=kvmdisk"
expect "snapshot blk: --restore with the drive read-only instead is refused by its section" 1 \
	'VBLK.*drive kvmdisk was writable, this one is read-only'
kvm_end
