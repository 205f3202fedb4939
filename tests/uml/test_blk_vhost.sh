#!/bin/bash
# kvmini's virtio-blk over vhost-user (`kvmini vhost blk`), driven by UML's
# stock virtio_blk driver (virtio_uml.device=SOCK:2). Two exports in one
# guest, told apart by their serials (GET_ID, /sys/block/vdX/serial): a
# writable image of an odd size (40 MiB and 3 sectors) holding a block made
# on the host, and a read-only one.
#
# The guest checks the capacity, reads the host's block, writes a 1 MiB
# pattern with dd (conv=fsync: a FLUSH) and reads it back with O_DIRECT
# past its page cache, writes the last sector, zeroes a range (BLKZEROOUT:
# WRITE_ZEROES) and discards another (DISCARD), and finds the read-only
# disk marked read-only with its writes refused. A second boot reconnects
# and finds the pattern. The host then checks the image bytes: the guest's
# pattern and last sector where it wrote them, the zeroed ranges zero, the
# host's block untouched, the read-only image unchanged; and both kvmini
# (the sanitizer build, seccomp filters on) must exit cleanly with the
# request counters moved as the guest's work implies and no error counter.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_blk_vhost 150
# lib.sh's counter helpers read the names to expect from a header.
KVMINI_COUNTER_NAMES=$(sed -n 's/^[[:space:]]*X(\([a-z0-9_]*\),.*/\1/p' \
	"$UML_TOP/src/blk/virtio_blk.h")

SOCK=$T_RUN/blk.sock
SOCK_RO=$T_RUN/blk-ro.sock
IMG=$T_RUN/disk.img
IMG_RO=$T_RUN/disk-ro.img
SERIAL=kvmini-blk-rw
SERIAL_RO=kvmini-blk-ro
SECTORS=$((40 * 2048 + 3))
MIB=1048576

# The writable image: random bytes everywhere (so zeroed ranges show), a
# marked block at 1 MiB the guest must read as the host wrote it.
head -c $((SECTORS * 512)) /dev/urandom >"$IMG"
head -c 65536 /dev/urandom >"$T_DIR/host-block"
dd if="$T_DIR/host-block" of="$IMG" bs=64k seek=16 conv=notrunc status=none
HOST_SUM=$(sha256sum <"$T_DIR/host-block" | cut -d' ' -f1)
head -c $((8 * MIB)) /dev/urandom >"$IMG_RO"
RO_SUM=$(sha256sum <"$IMG_RO" | cut -d' ' -f1)

LOG_RW=$T_DIR/kvmini.log
LOG_RO=$T_DIR/kvmini-ro.log
kvmini_vhost_start KPID "$SOCK" "$LOG_RW" blk --image "$IMG" --serial "$SERIAL" || t_end
kvmini_vhost_start RPID "$SOCK_RO" "$LOG_RO" blk --image "$IMG_RO" --read-only \
	--serial "$SERIAL_RO" --inband || t_end

guest_script "$T_DIR/guest.sh" <<EOF
SERIAL=$SERIAL
SERIAL_RO=$SERIAL_RO
SECTORS=$SECTORS
HOST_SUM=$HOST_SUM
EOF
cat >>"$T_DIR/guest.sh" <<'EOF'
modprobe virtio_blk 2>/dev/null
# by_serial SERIAL: the disk (vdX) whose GET_ID answer is SERIAL.
by_serial() {
	local d
	for d in /sys/block/vd*; do
		[ "$(cat $d/serial 2>/dev/null)" = "$1" ] && { basename $d; return 0; }
	done
	return 1
}
i=0
while [ $i -lt 50 ] && ! { by_serial $SERIAL && by_serial $SERIAL_RO; } >/dev/null; do
	sleep 0.1; i=$((i + 1))
done
ls /sys/block
RW=$(by_serial $SERIAL) && RO=$(by_serial $SERIAL_RO) &&
	gpass "both disks probed, found by serial (/sys/block/vdX/serial)" ||
	{ gfail "both disks probed, found by serial: $(cat /sys/block/vd*/serial)"; exit 1; }
D=/dev/$RW
sum() { sha256sum | cut -d' ' -f1; }
[ "$(cat /sys/block/$RW/size)" = $SECTORS ] && gpass "capacity $SECTORS sectors" ||
	gfail "capacity $(cat /sys/block/$RW/size), wanted $SECTORS"
[ "$(cat /sys/block/$RW/ro)" = 0 ] && gpass "writable disk not read-only" ||
	gfail "writable disk not read-only"
[ "$(cat /sys/block/$RW/queue/discard_max_bytes)" -gt 0 ] &&
	[ "$(cat /sys/block/$RW/queue/write_zeroes_max_bytes)" -gt 0 ] &&
	gpass "DISCARD and WRITE_ZEROES negotiated" || gfail "DISCARD and WRITE_ZEROES negotiated"
[ "$(dd if=$D bs=64k skip=16 count=1 iflag=direct 2>/dev/null | sum)" = $HOST_SUM ] &&
	gpass "host-made block reads back (sha256)" || gfail "host-made block reads back (sha256)"

# A 1 MiB pattern at 4 MiB, flushed, read back past the page cache.
dd if=/dev/urandom of=/tmp/pat bs=64k count=16 2>/dev/null
PAT=$(sum </tmp/pat)
gval pattern $PAT
gcheck "dd 1 MiB at 4 MiB (conv=fsync)" dd if=/tmp/pat of=$D bs=64k seek=64 conv=fsync
echo 3 >/proc/sys/vm/drop_caches
[ "$(dd if=$D bs=64k skip=64 count=16 iflag=direct 2>/dev/null | sum)" = $PAT ] &&
	gpass "pattern reads back with O_DIRECT" || gfail "pattern reads back with O_DIRECT"
# The last sector: the capacity is exact.
printf 'kvmini last sector' | dd of=$D bs=512 seek=$((SECTORS - 1)) conv=sync,fsync 2>/dev/null &&
	gpass "write the last sector" || gfail "write the last sector"
gcheck "sync (FLUSH)" sync
# WRITE_ZEROES at 8 MiB and DISCARD at 12 MiB, 256 KiB each, then read.
zero=$(head -c 262144 /dev/zero | sum)
gcheck "BLKZEROOUT 256 KiB at 8 MiB" hostrun blkdiscard -z -o 8388608 -l 262144 $D
[ "$(dd if=$D bs=64k skip=128 count=4 iflag=direct 2>/dev/null | sum)" = $zero ] &&
	gpass "zeroed range reads zero" || gfail "zeroed range reads zero"
gcheck "BLKDISCARD 256 KiB at 12 MiB" hostrun blkdiscard -o 12582912 -l 262144 $D

# The read-only disk: marked so, and a write fails.
[ "$(cat /sys/block/$RO/ro)" = 1 ] && gpass "read-only disk marked ro (VIRTIO_BLK_F_RO)" ||
	gfail "read-only disk marked ro"
if out=$(dd if=/dev/zero of=/dev/$RO bs=4096 count=1 conv=fsync 2>&1); then
	gfail "write to the read-only disk refused (it succeeded)"
else
	say "write to the read-only disk: $out"
	gpass "write to the read-only disk refused"
fi
dd if=/dev/$RO bs=1M count=8 iflag=direct 2>/dev/null | sum >/tmp/ro.sum
gval ro_sum $(cat /tmp/ro.sum)
EOF

uml_boot UPID "" "$T_DIR/guest.sh" 100 virtio_uml.device="$SOCK:2" \
	virtio_uml.device="$SOCK_RO:2"
uml_wait "$UPID"
guest_relay
PAT=$(guest_val pattern)
[ "$(guest_val ro_sum)" = "$RO_SUM" ] && pass "guest reads the read-only image as the host has it" ||
	fail "guest reads the read-only image as the host has it"

# A second boot: the device was reset at the disconnect; the data stays.
FIRST_CONSOLE=$T_DIR/console-boot1.log
mv "$UML_CONSOLE" "$FIRST_CONSOLE"
guest_script "$T_DIR/guest2.sh" <<EOF
PAT=$PAT
EOF
cat >>"$T_DIR/guest2.sh" <<'EOF'
modprobe virtio_blk 2>/dev/null
i=0
while [ $i -lt 50 ] && ! [ -b /dev/vda ]; do sleep 0.1; i=$((i + 1)); done
[ "$(dd if=/dev/vda bs=64k skip=64 count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$PAT" ] &&
	gpass "second boot: the pattern is there" || gfail "second boot: the pattern is there"
EOF
uml_boot UPID2 "" "$T_DIR/guest2.sh" 60 virtio_uml.device="$SOCK:2"
uml_wait "$UPID2"
guest_relay
UML_CONSOLE=$FIRST_CONSOLE

# The image as the guest left it.
region_sum() { dd if="$1" bs=64k skip="$2" count="$3" status=none | sha256sum | cut -d' ' -f1; }
[ -n "$PAT" ] && [ "$(region_sum "$IMG" 64 16)" = "$PAT" ] &&
	pass "host image holds the guest's pattern at 4 MiB" ||
	fail "host image holds the guest's pattern at 4 MiB"
[ "$(region_sum "$IMG" 16 1)" = "$HOST_SUM" ] && pass "host-made block untouched" ||
	fail "host-made block untouched"
tail -c 512 "$IMG" | head -c 18 | grep -q '^kvmini last sector$' &&
	pass "host image's last sector as the guest wrote it" ||
	fail "host image's last sector as the guest wrote it"
[ "$(stat -c %s "$IMG")" = $((SECTORS * 512)) ] && pass "image size unchanged" ||
	fail "image size unchanged ($(stat -c %s "$IMG"))"
ZERO=$(head -c 262144 /dev/zero | sha256sum | cut -d' ' -f1)
[ "$(region_sum "$IMG" 128 4)" = "$ZERO" ] && pass "host image zeroed at 8 MiB (WRITE_ZEROES)" ||
	fail "host image zeroed at 8 MiB (WRITE_ZEROES)"
[ "$(sha256sum <"$IMG_RO" | cut -d' ' -f1)" = "$RO_SUM" ] && pass "read-only image unchanged" ||
	fail "read-only image unchanged"

# check_blk_counters LABEL BAD...: no error counter of KC moved.
check_blk_counters() {
	local label=$1 n bad=
	for n in rx_requests_unsupported rx_requests_malformed rx_requests_out_of_range \
		tx_io_errors rx_queue_poisoned vhost_user_disconnects_error \
		vhost_user_rx_messages_invalid vhost_user_device_activate_failed; do
		[ "${KC[$n]:-0}" = 0 ] || bad+=" $n=${KC[$n]}"
	done
	[ -z "$bad" ] && pass "kvmini $label: no error counter moved" ||
		fail "kvmini $label: error counters moved:$bad"
}

kvmini_stop "$KPID" "$LOG_RW"
kvmini_show
kc_gt0 rx_requests_read rx_requests_write rx_requests_flush rx_requests_get_id \
	rx_requests_write_zeroes rx_requests_discard
[ "${KC[rx_write_bytes]:-0}" -ge $MIB ] && pass "kvmini rx_write_bytes >= 1 MiB (${KC[rx_write_bytes]})" ||
	fail "kvmini rx_write_bytes >= 1 MiB (${KC[rx_write_bytes]:-missing})"
# Punched holes read zero; a file system that cannot punch them ignores the hint.
if [ "${KC[rx_discards_ignored]:-0}" = 0 ]; then
	[ "$(region_sum "$IMG" 192 4)" = "$ZERO" ] && pass "host image discarded at 12 MiB (holes)" ||
		fail "host image discarded at 12 MiB (holes)"
else
	skip "discard ignored by the image's file system: no holes to check"
fi
check_blk_counters writable
kc_eq "kvmini: both boots activated the device" "${KC[vhost_user_device_activations]:-}" 2
kvmini_stop "$RPID" "$LOG_RO"
kc_gt0 rx_requests_read rx_requests_get_id
kc_eq "kvmini read-only: no write served" "${KC[rx_requests_write]:-}" 0
check_blk_counters read-only
t_end
