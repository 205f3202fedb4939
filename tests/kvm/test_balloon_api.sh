#!/bin/bash
# The balloon on every KVM host, with the project's test guest (which has
# no balloon driver): `--config-file`'s "balloon" builds the device (the
# guest's command line names a virtio-mmio device for it), GET /balloon and
# GET /vm/config show it, PATCH /balloon is refused while no driver has the
# device (Firecracker's "Device not activated yet."), the statistics answer
# with the target and nothing held, switching them off is refused, and a
# snapshot of the paused VM is refused with why. Debian's kernel and its
# driver: tests/kvm/test_balloon.sh.
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
[ "$CODE" = 400 ] && grep -q 'a VM with a balloon device cannot be snapshotted yet' <<<"$BODY" &&
	[ ! -e "$DIR/state" ] && pass "balloon-api: a snapshot is refused with why" ||
	fail "balloon-api: snapshot answered $CODE $BODY"
[ "$(patch_vm "$SOCK" Resumed)" = 204 ] || fail "balloon-api: resume refused"
collect_bg
[ "$RC" = 0 ] && pass "balloon-api: the guest ran to its end (exit 0)" ||
	fail "balloon-api: kvmini ended with $RC (logs $LOGDIR/$LAST.{out,err})"
kvm_end
