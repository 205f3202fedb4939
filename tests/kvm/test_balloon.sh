#!/bin/bash
# The balloon with Linux's own driver: Debian's stock cloud kernel and its
# virtio_balloon module, configured through the API alone:
#  - PUT /balloon before the start (statistics every second), PATCH
#    /balloon and GET /balloon/statistics refused before it, PUT after it;
#  - once the guest's driver has the device, PATCH /balloon amount_mib 64:
#    GET /balloon/statistics' actual_mib follows to 64 and the guest's
#    MemTotal drops by as much (the driver takes the pages out of the
#    guest's count without DEFLATE_ON_OOM); the guest's statistics arrive;
#  - PATCH /balloon/statistics may not switch them off; PATCH back to 0:
#    actual_mib 0 and MemTotal back;
#  - the metrics' balloon group under Firecracker's names;
#  - inflated to 32 MiB, paused and snapshotted, killed, and loaded into a
#    new kvmini (PUT /snapshot/load, resumed): GET /balloon shows the same
#    configuration, GET /balloon/statistics actual_mib 32 and the guest's
#    statistics keep arriving (the new process's stats_updates_count grows:
#    the buffer the device kept was handed back), and PATCH /balloon 64
#    still inflates: actual_mib 64 and MemTotal down by 64 MiB from before.
# The guest is the stock initramfs (build/stock-guest/initramfs.gz, as the
# acceptance suite builds it) with an overlay: virtio_balloon.ko and an
# /init that loads the modules and prints /proc/meminfo every half second.
# Knobs: KVMINI_STOCK_DIR (a kernel as tests/nested/lib.sh unpacks it,
# default the newest under /var/cache/kvmini/debian-cloud),
# KVMINI_STOCK_INITRAMFS, KVMINI_BALLOON_KO (the module when the unpacked
# kernel lacks it). Without them: one SKIP line.
. "$(dirname "$0")/lib.sh"

skip() { echo "SKIP: kvm balloon: $*"; exit 0; }
# As the acceptance suite: where guest kernel code is emulated a stock boot
# takes minutes; the nested platform runs this (tests/nested/run.sh).
[ -e /sys/module/kvm_pvm ] && skip "guest kernel code is emulated on this kvm_pvm host; the nested platform runs it"
STOCK_DIR=${KVMINI_STOCK_DIR:-$(ls -d /var/cache/kvmini/debian-cloud/*/ 2>/dev/null | sort -V | tail -n1)}
STOCK_DIR=${STOCK_DIR%/}
INITRAMFS=${KVMINI_STOCK_INITRAMFS:-build/stock-guest/initramfs.gz}
KO=${KVMINI_BALLOON_KO:-$STOCK_DIR/modules/virtio_balloon.ko}
[ -f "$STOCK_DIR/vmlinuz" ] || skip "no stock kernel (KVMINI_STOCK_DIR)"
[ -f "$INITRAMFS" ] || skip "no $INITRAMFS (KVMINI_STOCK_INITRAMFS)"
[ -f "$KO" ] || skip "no virtio_balloon.ko for $(basename "$STOCK_DIR") (KVMINI_BALLOON_KO)"
command -v curl >/dev/null && command -v cpio >/dev/null || skip "curl or cpio missing"

DIR=$(mktemp -d /tmp/kvmini-test-balloon.XXXXXX)
VM=
cleanup() {
	[ -n "$VM" ] && kill "$VM" 2>/dev/null && wait "$VM" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT

# The overlay: later cpio members replace earlier ones (the kernel unpacks
# concatenated archives in order).
mkdir -p "$DIR/ov/lib/modules"
cp "$KO" "$DIR/ov/lib/modules/virtio_balloon.ko"
cat >"$DIR/ov/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in virtio_ring virtio virtio_mmio virtio_balloon; do insmod /lib/modules/$m.ko; done
while :; do
	echo "balloon-guest: $(grep -E '^(MemTotal|MemAvailable):' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
	sleep 0.5
done
EOF
chmod +x "$DIR/ov/init"
(cd "$DIR/ov" && find . | cpio -o -H newc 2>/dev/null | gzip) >"$DIR/overlay.gz"
cat "$INITRAMFS" "$DIR/overlay.gz" >"$DIR/initramfs.gz"

SOCK=$DIR/api.sock
# api METHOD PATH [JSON]: sets CODE and BODY.
api() {
	local out
	out=$(curl -s -w '\n%{http_code}' --max-time 10 --unix-socket "$SOCK" -X "$1" \
		-H 'Content-Type: application/json' ${3:+-d "$3"} "http://k$2")
	CODE=$(tail -n 1 <<<"$out")
	BODY=$(sed '$d' <<<"$out")
}
json() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1" <<<"$BODY"; }
# The guest's last MemTotal in kB (on CONSOLE, default the first VM's).
memtotal() { grep -o 'MemTotal: [0-9]*' "${1:-$DIR/console}" | tail -n1 | grep -o '[0-9]*$'; }
# until_ok SECONDS CMD...: retry CMD every half second.
until_ok() {
	local n=$(($1 * 2))
	shift
	while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 0.5; n=$((n - 1)); done
	return 1
}

timeout --foreground -k 10 "${KVM_TEST_TIMEOUT:-300}" "$KVMINI" run --api-sock "$SOCK" </dev/null \
	>"$DIR/console" 2>"$DIR/kvmini.err" &
VM=$!
until_ok 10 test -S "$SOCK" || { fail "balloon: no API socket"; kvm_end; }

codes=""
api PUT /boot-source "{\"kernel_image_path\":\"$STOCK_DIR/vmlinuz\",\"initrd_path\":\"$DIR/initramfs.gz\",\"boot_args\":\"console=ttyS0 reboot=k panic=-1 pci=off\"}"
codes+="$CODE "
api PUT /machine-config '{"vcpu_count":1,"mem_size_mib":256}'; codes+="$CODE "
api PUT /balloon '{"amount_mib":300,"deflate_on_oom":false}'; codes+="$CODE "
api PUT /balloon '{"amount_mib":0,"deflate_on_oom":false,"stats_polling_interval_s":1}'; codes+="$CODE "
api PATCH /balloon '{"amount_mib":64}'; codes+="$CODE "
api GET /balloon/statistics; codes+="$CODE "
api GET /balloon; codes+="$CODE "
api PUT /actions '{"action_type":"InstanceStart"}'; codes+="$CODE "
api PUT /balloon '{"amount_mib":1,"deflate_on_oom":false}'; codes+="$CODE"
[ "$codes" = "204 204 400 204 400 400 200 204 400" ] &&
	pass "balloon: pre-boot rules (PUT 204, too large 400, PATCH and statistics 400 before the start, PUT 400 after)" ||
	fail "balloon: pre-boot answers $codes"

until_ok 120 grep -q 'balloon-guest: MemTotal' "$DIR/console" ||
	{ fail "balloon: the guest never printed its memory (log $LOGDIR/balloon.*)"; cp "$DIR/console" "$LOGDIR/balloon.console"; cp "$DIR/kvmini.err" "$LOGDIR/balloon.err"; kvm_end; }
before=$(memtotal)
patched() { api PATCH /balloon '{"amount_mib":64}'; [ "$CODE" = 204 ]; }
if until_ok 20 patched; then
	pass "balloon: PATCH amount_mib 64 once the driver had the device"
else
	fail "balloon: PATCH answered $CODE $BODY"
fi
actual_is() { api GET /balloon/statistics; [ "$CODE" = 200 ] && [ "$(json actual_mib)" = "$1" ]; }
if until_ok 30 actual_is 64; then
	pass "balloon: actual_mib followed to 64 ($BODY)"
else
	fail "balloon: actual_mib $(json actual_mib) (GET /balloon/statistics $CODE $BODY)"
fi
[ -n "$(json total_memory)" ] && [ -n "$(json free_memory)" ] &&
	pass "balloon: the guest's statistics arrive (total_memory $(json total_memory), free_memory $(json free_memory))" ||
	fail "balloon: no statistics from the guest ($BODY)"
sleep 1
after=$(memtotal)
[ -n "$before" ] && [ -n "$after" ] && [ $((before - after)) -ge 65536 ] &&
	pass "balloon: the guest's MemTotal dropped by $((before - after)) kB ($before -> $after)" ||
	fail "balloon: MemTotal $before -> $after kB"
api GET /balloon
[ "$(json amount_mib)" = 64 ] && [ "$(json stats_polling_interval_s)" = 1 ] &&
	pass "balloon: GET /balloon shows the target ($BODY)" || fail "balloon: GET /balloon $BODY"
api PATCH /balloon/statistics '{"stats_polling_interval_s":0}'
[ "$CODE" = 400 ] && grep -q 'cannot be enabled/disabled' <<<"$BODY" &&
	pass "balloon: statistics may not be switched off after the start" ||
	fail "balloon: PATCH /balloon/statistics 0 answered $CODE $BODY"
api PATCH /balloon/statistics '{"stats_polling_interval_s":2}'
[ "$CODE" = 204 ] || fail "balloon: a new interval answered $CODE $BODY"
api PATCH /balloon '{"amount_mib":0}'
if until_ok 30 actual_is 0; then
	sleep 1
	back=$(memtotal)
	[ "$back" = "$before" ] &&
		pass "balloon: deflated to 0, MemTotal back to $back kB" ||
		fail "balloon: deflated, MemTotal $back kB (was $before)"
else
	fail "balloon: actual_mib $(json actual_mib) after the target 0"
fi
api GET /metrics
python3 - "$BODY" <<'PY' && pass "balloon: metrics under Firecracker's names" || fail "balloon: metrics $BODY"
import json, sys
b = json.loads(sys.argv[1])["balloon"]
assert b["inflate_count"] > 0 and b["deflate_count"] > 0 and b["stats_updates_count"] > 0, b
assert b["activate_fails"] == 0 and b["event_fails"] == 0 and b["rx_inflate_pfns_invalid"] == 0, b
assert b["rx_inflate_pages"] >= 64 * 256, b
PY

# --- snapshot and restore with the balloon inflated -----------------------------
api PATCH /balloon '{"amount_mib":32}'
until_ok 30 actual_is 32 || fail "balloon: actual_mib $(json actual_mib) before the snapshot, not 32"
api PATCH /vm '{"state":"Paused"}'; codes="$CODE "
api PUT /snapshot/create "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"$DIR/state\",\"mem_file_path\":\"$DIR/mem\"}"
codes+="$CODE"
[ "$codes" = "204 204" ] && pass "balloon: the VM with its balloon inflated is snapshotted" ||
	fail "balloon: pause and snapshot answered $codes ($BODY)"
kill "$VM" 2>/dev/null
wait "$VM" 2>/dev/null
ERR=$(cat "$DIR/kvmini.err")
LAST=balloon
cp "$DIR/kvmini.err" "$LOGDIR/balloon.err" 2>/dev/null
cp "$DIR/console" "$LOGDIR/balloon.console" 2>/dev/null
sanitizer_check balloon
SOCK=$DIR/load.sock
timeout --foreground -k 10 "${KVM_TEST_TIMEOUT:-300}" "$KVMINI" run --api-sock "$SOCK" </dev/null \
	>"$DIR/console2" 2>"$DIR/kvmini2.err" &
VM=$!
until_ok 10 test -S "$SOCK" || { fail "balloon: the restoring kvmini made no API socket"; kvm_end; }
api PUT /snapshot/load "{\"snapshot_path\":\"$DIR/state\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"$DIR/mem\"},\"resume_vm\":true}"
[ "$CODE" = 204 ] && pass "balloon: the snapshot loads into a new kvmini" ||
	fail "balloon: PUT /snapshot/load answered $CODE $BODY"
api GET /balloon
[ "$(json amount_mib)" = 32 ] && [ "$(json stats_polling_interval_s)" = 2 ] &&
	[ "$(json deflate_on_oom)" = False ] &&
	pass "balloon: GET /balloon after the restore shows the same configuration ($BODY)" ||
	fail "balloon: GET /balloon after the restore: $BODY"
actual_is 32 && pass "balloon: actual_mib 32 after the restore" ||
	fail "balloon: actual_mib after the restore: $CODE $BODY"
# Counters start at zero in the new process: updates counted here came
# after the restore.
fresh_stats() {
	api GET /metrics
	python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1])["balloon"]["stats_updates_count"] < 2)' "$BODY"
}
if until_ok 15 fresh_stats; then
	api GET /balloon/statistics
	[ "$CODE" = 200 ] && [ -n "$(json total_memory)" ] &&
		pass "balloon: fresh statistics keep arriving after the restore ($BODY)" ||
		fail "balloon: GET /balloon/statistics after the restore: $CODE $BODY"
else
	fail "balloon: no statistics reached the restored device (metrics $BODY)"
fi
until_ok 10 grep -q 'balloon-guest: MemTotal' "$DIR/console2" || fail "balloon: the restored guest prints nothing"
api PATCH /balloon '{"amount_mib":64}'
[ "$CODE" = 204 ] || fail "balloon: PATCH after the restore answered $CODE $BODY"
if until_ok 30 actual_is 64; then
	sleep 1
	restored=$(memtotal "$DIR/console2")
	[ -n "$restored" ] && [ $((before - restored)) -ge 65536 ] &&
		pass "balloon: PATCH /balloon still inflates after the restore (actual_mib 64, MemTotal $before -> $restored kB)" ||
		fail "balloon: after the restore, actual_mib 64 but MemTotal $before -> $restored kB"
else
	fail "balloon: actual_mib $(json actual_mib) after PATCH 64 on the restored VM"
fi
kill "$VM" 2>/dev/null
wait "$VM" 2>/dev/null
VM=
ERR=$(cat "$DIR/kvmini2.err")
LAST=balloon-restored
cp "$DIR/kvmini2.err" "$LOGDIR/balloon-restored.err" 2>/dev/null
cp "$DIR/console2" "$LOGDIR/balloon-restored.console" 2>/dev/null
sanitizer_check balloon-restored
kvm_end
