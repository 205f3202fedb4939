#!/bin/bash
# The balloon on every KVM host, with the project's test guest (which has
# no balloon driver): `--config-file`'s "balloon" builds the device (the
# guest's command line names a virtio-mmio device for it), GET /balloon and
# GET /vm/config show it, PATCH /balloon is refused while no driver has the
# device (Firecracker's "Device not activated yet."), the statistics answer
# with the target and nothing held, switching them off is refused. The
# paused VM is snapshotted and killed; a new kvmini loads the snapshot
# through PUT /snapshot/load: GET /balloon shows the same configuration,
# the statistics the same target, and the guest's ticks go on from the
# snapshot's to its end (1 to N once each across both processes). Then
# `kvmini run --balloon 16,deflate-on-oom,stats=1` builds the same device
# from the command line, and a bad --balloon value is refused before the
# VM starts. Debian's kernel and its driver: tests/kvm/test_balloon.sh.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: kvm balloon-api: curl is not installed"; kvm_end; }
DIR=$(mktemp -d /tmp/kvmini-test-balloon-api.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
SOCK=$DIR/api.sock
api() {
	local out
	out=$(curl -s -w '\n%{http_code}' --max-time 10 --unix-socket "$SOCK" -X "$1" \
		-H 'Content-Type: application/json' ${3:+-d "$3"} "http://k$2")
	CODE=$(tail -n 1 <<<"$out")
	BODY=$(sed '$d' <<<"$out")
}
cat >"$DIR/vm.json" <<EOF
{"boot-source": {"kernel_image_path": "$GUEST", "boot_args": "test=ticks ticks=150"},
 "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
 "balloon": {"amount_mib": 16, "deflate_on_oom": true, "stats_polling_interval_s": 1}}
EOF
run_bg balloon-api --config-file "$DIR/vm.json" --api-sock "$SOCK"
wait_output 'kvm-guest ticks: tick 2' || fail "balloon-api: the guest never ticked"
grep -q 'balloon: target 16 MiB, deflate on OOM, statistics polled' "$LOGDIR/$LAST.err" &&
	pass "balloon-api: --config-file's balloon built the device" ||
	fail "balloon-api: no balloon in the log ($LOGDIR/$LAST.err)"
api GET /balloon
[ "$CODE" = 200 ] && grep -q '"amount_mib":16,"deflate_on_oom":true,"stats_polling_interval_s":1' <<<"$BODY" &&
	pass "balloon-api: GET /balloon ($BODY)" || fail "balloon-api: GET /balloon $CODE $BODY"
api GET /vm/config
grep -q '"balloon":{"amount_mib":16' <<<"$BODY" && pass "balloon-api: GET /vm/config has it" ||
	fail "balloon-api: GET /vm/config $BODY"
api PATCH /balloon '{"amount_mib":8}'
[ "$CODE" = 400 ] && grep -q 'Device not activated yet' <<<"$BODY" &&
	pass "balloon-api: PATCH refused while no driver has the device" ||
	fail "balloon-api: PATCH /balloon $CODE $BODY"
api GET /balloon/statistics
[ "$CODE" = 200 ] && [ "$BODY" = '{"target_pages":4096,"actual_pages":0,"target_mib":16,"actual_mib":0}' ] &&
	pass "balloon-api: statistics: the target, nothing held, no guest values" ||
	fail "balloon-api: GET /balloon/statistics $CODE $BODY"
api PATCH /balloon/statistics '{"stats_polling_interval_s":0}'
[ "$CODE" = 400 ] || fail "balloon-api: statistics switched off: $CODE $BODY"
[ "$(patch_vm "$SOCK" Paused)" = 204 ] || fail "balloon-api: pause refused"
api PUT /snapshot/create "$(snap_json Full "$DIR/state" "$DIR/mem")"
[ "$CODE" = 204 ] && [ -s "$DIR/state" ] && pass "balloon-api: a VM with a balloon is snapshotted (204)" ||
	fail "balloon-api: snapshot answered $CODE $BODY"
kill_bg
cp "$LOGDIR/balloon-api.out" "$DIR/before.out"

# --- the snapshot loaded into a new kvmini -------------------------------------
SOCK=$DIR/load.sock
run_bg balloon-api-load --api-sock "$SOCK"
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
api PUT /snapshot/load "{\"snapshot_path\":\"$DIR/state\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"$DIR/mem\"},\"resume_vm\":true}"
[ "$CODE" = 204 ] && pass "balloon-api: the snapshot loads into a new kvmini (204)" ||
	fail "balloon-api: PUT /snapshot/load $CODE $BODY"
api GET /balloon
[ "$CODE" = 200 ] && grep -q '"amount_mib":16,"deflate_on_oom":true,"stats_polling_interval_s":1' <<<"$BODY" &&
	pass "balloon-api: GET /balloon after the restore shows the same configuration" ||
	fail "balloon-api: GET /balloon after the restore: $CODE $BODY"
api GET /balloon/statistics
[ "$CODE" = 200 ] && [ "$BODY" = '{"target_pages":4096,"actual_pages":0,"target_mib":16,"actual_mib":0}' ] &&
	pass "balloon-api: the restored statistics have the same target" ||
	fail "balloon-api: GET /balloon/statistics after the restore: $CODE $BODY"
collect_bg
[ "$RC" = 0 ] && grep -q 'kvm-guest ticks: done' <<<"$OUT" &&
	pass "balloon-api: the restored guest ticks on to its end (exit 0)" ||
	fail "balloon-api: the restored kvmini ended with $RC (logs $LOGDIR/$LAST.{out,err})"
sanitizer_check balloon-api-load
seq_ok=$(cat "$DIR/before.out" "$LOGDIR/balloon-api-load.out" | tr -d '\r' |
	grep -oE '^kvm-guest ticks: tick [0-9]+$' | grep -oE '[0-9]+$' |
	awk '$1 != NR { bad = 1 } END { print (NR == 150 && !bad) ? "yes" : "no" }')
[ "$seq_ok" = yes ] && pass "balloon-api: ticks 1 to 150 across both processes, none lost or repeated" ||
	fail "balloon-api: the ticks before the snapshot and after the restore are not 1 to 150"

# --- kvmini run --balloon --------------------------------------------------------
SOCK=$DIR/flag.sock
run_bg balloon-flag --kernel "$GUEST" --cmdline "test=ticks ticks=20" --mem 64 \
	--balloon 16,deflate-on-oom,stats=1 --api-sock "$SOCK"
wait_output 'kvm-guest ticks: tick 2' || fail "balloon-flag: the guest never ticked"
api GET /balloon
[ "$CODE" = 200 ] && grep -q '"amount_mib":16,"deflate_on_oom":true,"stats_polling_interval_s":1' <<<"$BODY" &&
	pass "balloon-flag: --balloon built the device GET /balloon shows ($BODY)" ||
	fail "balloon-flag: GET /balloon $CODE $BODY"
collect_bg
[ "$RC" = 0 ] && grep -q 'balloon: target 16 MiB, deflate on OOM, statistics polled' <<<"$ERR" &&
	pass "balloon-flag: the guest ran to its end with the balloon (exit 0)" ||
	fail "balloon-flag: kvmini ended with $RC (logs $LOGDIR/$LAST.{out,err})"
run balloon-flag-big "" -- --kernel "$GUEST" --mem 64 --balloon 65
expect "balloon-flag: an amount above --mem is refused before the start" 2 \
	'--balloon 65: the balloon.s amount is above guest memory \(--mem 64 MiB\)'
run balloon-flag-stats "" -- --kernel "$GUEST" --balloon 16,stats=1s
expect "balloon-flag: a bad stats= is refused, with the value and why" 2 \
	'--balloon 16,stats=1s: stats="1s" is not a number of seconds from 0 to 65535'
run balloon-flag-opt "" -- --kernel "$GUEST" --balloon 16,deflate
expect "balloon-flag: an unknown option is refused with the ones there are" 2 \
	'--balloon 16,deflate: unknown option "deflate" \(deflate-on-oom, stats=SECONDS\)'
kvm_end
