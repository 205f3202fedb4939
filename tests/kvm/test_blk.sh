#!/bin/bash
# virtio-blk in kvmini run, driven by the test guest's own driver
# (tests/kvm/guest/tests.c, test=blk and test=blk-resize):
#  - it reads sectors of a host image, writes one, flushes, reads the
#    serial (GET_ID), and has a read past the end and an unknown type
#    refused; the host then finds the written sector in the file, the one
#    after it untouched, and the counters;
#  - the root drive given last is still the first device, with
#    root=/dev/vda on the command line;
#  - a read-only drive refuses the write and leaves the file alone;
#  - Firecracker's --config-file with a drive at a relative path, and
#    with a rate_limiter the guest's requests wait for;
#  - PATCH /drives on the running VM: a file that does not open is refused
#    (400) and the old one serves on; a grown copy of the image PATCHed in
#    is seen by the guest (config-change interrupt, new generation, the new
#    capacity, its sectors read and written), GET /vm/config shows its
#    path, and a snapshot of the VM is taken (test_snapshot_blk.sh restores
#    one);
#  - a missing image file and two root drives stop kvmini before the boot.
. "$(dirname "$0")/lib.sh"

IMG=$(mktemp /tmp/kvmini-test-blk.XXXXXX)
trap 'rm -f "$IMG" "$IMG.other" "$IMG.grown"' EXIT
# write_image FILE SECTORS: every byte of sector s the value s + 1 (mod 256).
write_image() {
	python3 -c 'import sys; sys.stdout.buffer.write(b"".join(bytes([(s + 1) & 255]) * 512 for s in range(int(sys.argv[1]))))' "$2" >"$1"
}
make_image() { write_image "$IMG" 128; }   # the guest's BLK_SECTORS
# sector FILE N: "BYTE COUNT" for each distinct byte of sector N ("4b 512": all 0x4b).
sector() {
	dd if="$1" bs=512 skip="$2" count=1 status=none | od -An -v -tx1 | tr -s ' \n' '\n' |
		grep . | sort | uniq -c | awk '{print $2 " " $1}' | paste -sd,
}

make_image
guest blk blk "" --drive "$IMG,id=kvmdisk" --counters
expect "blk: read, write, flush, GET_ID, refusals (guest checks)" 0 'blk: done \(0 failures\)'
[ "$(sector "$IMG" 10)" = "4b 512" ] && pass "blk: the guest's write reached the file" ||
	fail "blk: sector 10 of the file is $(sector "$IMG" 10), not 512 bytes of 4b"
[ "$(sector "$IMG" 11)" = "0c 512" ] && pass "blk: the sector after it untouched" ||
	fail "blk: sector 11 changed: $(sector "$IMG" 11)"
[ "$(counter rx_write_bytes)" = 512 ] && [ "$(counter rx_requests_out_of_range)" = 1 ] &&
	[ "$(counter rx_requests_unsupported)" = 1 ] && [ "$(counter rx_requests_flush)" = 1 ] &&
	pass "blk: counters (512 bytes written, one flush, the two refusals)" ||
	fail "blk: counters: rx_write_bytes $(counter rx_write_bytes), rx_requests_flush $(counter rx_requests_flush), out_of_range $(counter rx_requests_out_of_range), unsupported $(counter rx_requests_unsupported)"

# The root drive given last is the first device (/dev/vda), and root=
# is added though a word of the command line ends in "root=" (blk_root=1).
make_image
truncate -s 4096 "$IMG.other"
run blk-root "" -- --kernel "$GUEST" --cmdline "test=blk blk_root=1" \
	--drive "$IMG.other,id=other" --drive "$IMG,root,id=kvmdisk"
expect "blk: the root drive, given last, is the first device with root=/dev/vda (guest checks)" 0 \
	'PASS: kvm-guest blk: root=/dev/vda on the command line'

make_image
PROBE=1 guest blk-ro blk "" --drive "$IMG,ro,id=kvmdisk" --counters
# (the guest's write check fails, so it ends through the debug exit: 3)
expect "blk: a read-only drive refuses the write" 3 'FAIL: kvm-guest blk: write sector 10'
[ "$(sector "$IMG" 10)" = "0b 512" ] && [ "$(counter rx_writes_read_only)" = 1 ] &&
	pass "blk: the read-only drive's file untouched, the refusal counted" ||
	fail "blk: read-only: sector 10 $(sector "$IMG" 10), rx_writes_read_only $(counter rx_writes_read_only)"

# Firecracker's --config-file with a drive at a path relative to the
# working directory (the repository's root here), as PUT /drives takes it.
REL=$LOGDIR/blk-rel.img
write_image "$REL" 128
cat >"$LOGDIR/blk.json" <<JSON
{"boot-source": {"kernel_image_path": "$GUEST", "boot_args": "test=blk"},
 "drives": [{"drive_id": "kvmdisk", "path_on_host": "$REL", "is_root_device": false,
             "is_read_only": false, "cache_type": "Unsafe", "io_engine": "Sync"}]}
JSON
case $REL in /*) fail "blk: $REL is not a relative path" ;; esac
run blk-config "" -- --config-file "$LOGDIR/blk.json" --no-api
expect "blk: --config-file's drive at a relative path: the guest's checks pass" 0 'blk: done \(0 failures\)'
[ "$(sector "$REL" 10)" = "4b 512" ] && pass "blk: --config-file's drive written" ||
	fail "blk: --config-file's drive: sector 10 is $(sector "$REL" 10)"

# The drive's rate_limiter (Firecracker's): 1 request per 300 ms, no
# burst: the bucket is empty after each request, so the next waits however
# fast or slow the guest is (2 per 50 ms never filled on the nested
# platform's slow guest); they all succeed.
write_image "$REL" 128
cat >"$LOGDIR/blk.json" <<JSON
{"boot-source": {"kernel_image_path": "$GUEST", "boot_args": "test=blk"},
 "drives": [{"drive_id": "kvmdisk", "path_on_host": "$REL", "is_root_device": false,
             "is_read_only": false, "rate_limiter": {"ops": {"size": 1, "refill_time": 300}}}]}
JSON
run blk-limited "" -- --config-file "$LOGDIR/blk.json" --no-api --counters
expect "blk: a rate-limited drive: the guest's checks pass" 0 'blk: done \(0 failures\)'
[ "$(counter rx_requests_throttled)" -gt 0 ] 2>/dev/null && grep -q 'rate-limited' <<<"$ERR" &&
	pass "blk: a rate-limited drive: requests waited for the limiter ($(counter rx_requests_throttled) times)" ||
	fail "blk: a rate-limited drive: rx_requests_throttled $(counter rx_requests_throttled)"
rm -f "$REL" "$LOGDIR/blk.json"

# PATCH /drives on the running VM.
if command -v curl >/dev/null; then
	make_image
	api=$LOGDIR/blk.sock
	rm -f "$api"
	patch_drive() {
		local out
		out=$(curl -s -w '\n%{http_code}' --max-time 30 --unix-socket "$api" -X PATCH \
			-H 'Content-Type: application/json' -d "$1" http://k/drives/kvmdisk)
		CODE=$(tail -n 1 <<<"$out")
		BODY=$(sed '$d' <<<"$out")
	}
	run_bg blk-resize --kernel "$GUEST" --cmdline "test=blk-resize blk_grown=256 blk_linger=3000" \
		--drive "$IMG,id=kvmdisk" --api-sock "$api"
	if wait_output 'blk-resize: capacity 128, waiting for a config change'; then
		# The guest waits (30 s at most): a snapshot is taken meanwhile.
		[ "$(patch_vm "$api" Paused)" = 204 ] || fail "blk: PATCH /vm Paused refused"
		api_put "$api" /snapshot/create "$(snap_json Full "$LOGDIR/blk.state" "$LOGDIR/blk.mem")"
		[ "$CODE" = 204 ] && [ -s "$LOGDIR/blk.state" ] &&
			pass "blk: a snapshot of a VM with a drive is taken (204)" ||
			fail "blk: snapshot with a drive answered $CODE: $BODY"
		rm -f "$LOGDIR/blk.state" "$LOGDIR/blk.mem"
		[ "$(patch_vm "$api" Resumed)" = 204 ] || fail "blk: PATCH /vm Resumed refused"
		patch_drive "{\"drive_id\":\"kvmdisk\",\"path_on_host\":\"$IMG.missing\"}"
		[ "$CODE" = 400 ] && grep -q 'Unable to patch the block device: .*No such file' <<<"$BODY" &&
			pass "blk: PATCH /drives to a missing file refused (400, why)" ||
			fail "blk: PATCH to a missing file answered $CODE: $BODY"
		# The image grown on the host, at a new path: 256 sectors of the pattern.
		write_image "$IMG.grown" 256
		patch_drive "{\"drive_id\":\"kvmdisk\",\"path_on_host\":\"$IMG.grown\"}"
		[ "$CODE" = 204 ] && pass "blk: PATCH /drives on the running VM (204)" ||
			fail "blk: PATCH /drives answered $CODE: $BODY"
		shown=$(curl -s --max-time 10 --unix-socket "$api" http://k/vm/config |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["drives"][0]["path_on_host"])')
		[ "$shown" = "$IMG.grown" ] && pass "blk: GET /vm/config shows the patched path" ||
			fail "blk: GET /vm/config's path_on_host is \"$shown\""
		# The metrics under Firecracker's names: "block_<id>" and "block".
		shown=$(curl -s --max-time 10 --unix-socket "$api" http://k/metrics |
			python3 -c 'import json, sys; m = json.load(sys.stdin); print(m["block_kvmdisk"]["read_count"] > 0, m["block"]["read_bytes"] == m["block_kvmdisk"]["tx_read_bytes"] > 0)')
		[ "$shown" = "True True" ] && pass "blk: GET /metrics: block_kvmdisk and block under Firecracker's names" ||
			fail "blk: GET /metrics's block objects: $shown"
		# A rate_limiter alone: the file stays, the guest's requests go on.
		patch_drive '{"drive_id":"kvmdisk","rate_limiter":{"ops":{"size":50,"refill_time":10}}}'
		shown=$(curl -s --max-time 10 --unix-socket "$api" http://k/vm/config |
			python3 -c 'import json, sys; d = json.load(sys.stdin)["drives"][0]; print(d["path_on_host"], d["rate_limiter"]["ops"]["size"])')
		[ "$CODE" = 204 ] && [ "$shown" = "$IMG.grown 50" ] &&
			pass "blk: PATCH /drives with a rate_limiter alone (204, shown, the file kept)" ||
			fail "blk: PATCH rate_limiter answered $CODE: $BODY; /vm/config: $shown"
	else
		fail "blk: the resize guest never waited for the config change ($LOGDIR/$LAST.out)"
	fi
	collect_bg
	expect "blk: the guest saw the new capacity and used the new file (guest checks)" 0 \
		'blk-resize: done \(0 failures\)'
	grep -q 'drive kvmdisk: now .*\.grown, 256 sectors' <<<"$ERR" &&
		pass "blk: the swap logged with the new capacity" ||
		fail "blk: no swap in the log ($LOGDIR/$LAST.err)"
	[ "$(sector "$IMG.grown" 130)" = "50 512" ] && [ "$(stat -c %s "$IMG")" = 65536 ] &&
		pass "blk: the guest's write past the old capacity landed in the new file" ||
		fail "blk: sector 130 of the new file is $(sector "$IMG.grown" 130), the old file $(stat -c %s "$IMG") bytes"
else
	echo "SKIP: kvm blk: PATCH /drives needs curl"
fi

guest blk-missing blk "" --drive "$IMG.missing,root"
expect "blk: a missing image file stops kvmini before the boot" 2 "$IMG.missing: No such file"
guest blk-tworoots blk "" --drive "$IMG,root" --drive "$IMG,root,id=second"
expect "blk: two root drives refused" 2 'A root block device already exists'

kvm_end
