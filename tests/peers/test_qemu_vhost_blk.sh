#!/bin/bash
# QEMU (qemu-system-x86_64, TCG, no /dev/kvm) as the vhost-user front-end of
# `kvmini vhost blk`, through its own vhost-user-blk-pci device. No guest OS:
# SeaBIOS's virtio-blk driver boots the disk. The image holds a boot sector
# (tests/peers/blk_boot.S) that writes itself to LBA 1 through int 13h and
# ends QEMU through isa-debug-exit. That makes QEMU do its whole
# vhost-user-blk start (the config space read with GET_CONFIG, which QEMU's
# device requires, features, memory table, ring) and puts a read and a
# write through kvmini.
#   1. writable export: SeaBIOS finds the disk with the capacity kvmini
#      serves, boots it, the write succeeds and the host's image has the
#      boot sector at LBA 1; a second QEMU on the same kvmini does it again.
#   2. --read-only export: QEMU boots it too, the write is refused by the
#      device (rx_writes_read_only) and the image is unchanged.
# Then each kvmini (the sanitizer build) exits 0 with no error counter moved.
#
# Environment knobs: KVMINI (binary), QEMU (default qemu-system-x86_64).
set -uo pipefail
. "$(dirname "$0")/../uml/lib.sh"
T_LOG_BASE=$UML_TOP/build/test-logs/peers

QEMU=${QEMU:-qemu-system-x86_64}
QEMU_N=0
SECTORS=8195     # 4 MiB and 3 sectors: SeaBIOS prints the count it read

t_begin test_qemu_vhost_blk 120
for c in "$QEMU" as ld; do
	command -v "$c" >/dev/null || { fail "$c installed (scripts/setup.sh)"; t_end; }
done
kvmini_pick || t_end
KVMINI_COUNTER_NAMES=$(sed -n 's/^[[:space:]]*X(\([a-z0-9_]*\),.*/\1/p' \
	"$UML_TOP/src/blk/virtio_blk.h")

# The boot sector, assembled here; the images start with it.
as --32 -o "$T_RUN/boot.o" "$UML_TOP/tests/peers/blk_boot.S" &&
	ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$T_RUN/boot.bin" "$T_RUN/boot.o" &&
	[ "$(stat -c %s "$T_RUN/boot.bin")" = 512 ] || { fail "assemble tests/peers/blk_boot.S"; t_end; }
# mkimage FILE: the boot sector, then random sectors up to SECTORS.
mkimage() {
	cp "$T_RUN/boot.bin" "$1" &&
		head -c $(((SECTORS - 1) * 512)) /dev/urandom >>"$1"
}

# qemu_boot SOCKET: one QEMU (q35, TCG, 128 MiB of shared memfd RAM the
# back-end maps) booting from a vhost-user-blk-pci on SOCKET until the boot
# sector ends it; its debug console (SeaBIOS and the boot sector) in
# $T_DIR/debug-N.log (-> QEMU_DEBUG). Returns QEMU's exit status.
qemu_boot() {
	local sock=$1 qpid
	QEMU_N=$((QEMU_N + 1))
	QEMU_DEBUG=$T_DIR/debug-$QEMU_N.log
	QEMU_LOG=$T_DIR/qemu-$QEMU_N.log
	t_bg qpid "$QEMU_LOG" "" timeout -k 3 60 "$QEMU" -accel tcg -m 128M \
		-object memory-backend-memfd,id=mem,size=128M,share=on \
		-machine q35,memory-backend=mem \
		-chardev socket,id=c0,path="$sock" \
		-device vhost-user-blk-pci,chardev=c0,num-queues=1,bootindex=0 \
		-nographic -nodefaults -monitor none -serial none \
		-chardev file,id=dbg,path="$QEMU_DEBUG" \
		-device isa-debugcon,iobase=0x402,chardev=dbg \
		-device isa-debug-exit,iobase=0xf4,iosize=1
	wait "$qpid"
}

# boot_checks LABEL SOCKET WRITE: a QEMU boots from SOCKET; the boot sector
# reports its write as WRITE (OK or FAILED).
boot_checks() {
	local label=$1 rc
	qemu_boot "$2"
	rc=$?
	kc_eq "$label: QEMU ended by the boot sector (isa-debug-exit 0x21)" "$rc" 67
	[ "$rc" = 67 ] || tail -n 5 "$QEMU_LOG" | sed 's/^/    | /'
	grep -a -q "^drive .* s=$SECTORS\$" "$QEMU_DEBUG" &&
		pass "$label: SeaBIOS sees $SECTORS sectors (config space over GET_CONFIG)" ||
		fail "$label: SeaBIOS sees $SECTORS sectors (debug: $QEMU_DEBUG)"
	grep -a -q '^KVMINI-BLK: booted from vhost-user-blk' "$QEMU_DEBUG" &&
		pass "$label: SeaBIOS booted the disk (a read through kvmini)" ||
		fail "$label: SeaBIOS booted the disk (debug: $QEMU_DEBUG)"
	grep -a -q "^KVMINI-BLK: int13 write $3\$" "$QEMU_DEBUG" &&
		pass "$label: the int 13h write: $3" ||
		fail "$label: the int 13h write: $3 ($(grep -a 'int13' "$QEMU_DEBUG"))"
}

# lba1_is_boot FILE: LBA 1 holds the boot sector.
lba1_is_boot() { dd if="$1" bs=512 skip=1 count=1 status=none | cmp -s - "$T_RUN/boot.bin"; }

# blk_errors_clean LABEL: no error counter of KC moved.
blk_errors_clean() {
	local n bad=
	for n in rx_requests_unsupported rx_requests_malformed rx_requests_out_of_range \
		tx_io_errors rx_queue_poisoned vhost_user_disconnects_error \
		vhost_user_rx_messages_invalid vhost_user_rx_messages_unknown \
		vhost_user_device_activate_failed; do
		[ "${KC[$n]:-0}" = 0 ] || bad+=" $n=${KC[$n]}"
	done
	[ -z "$bad" ] && pass "$1: no error counter moved" || fail "$1: error counters moved:$bad"
}

# ---------------------------------------------------------------- 1. writable

IMG=$T_RUN/disk.img
SOCK=$T_RUN/blk.sock
mkimage "$IMG" || { fail "make $IMG"; t_end; }
KLOG=$T_DIR/kvmini.log
kvmini_vhost_start KPID "$SOCK" "$KLOG" blk --image "$IMG" --serial qemu-blk -v || t_end
boot_checks "QEMU 1" "$SOCK" OK
lba1_is_boot "$IMG" && pass "host image: the boot sector written to LBA 1" ||
	fail "host image: the boot sector written to LBA 1"
grep -q 'vhost-user: GET_CONFIG (' "$KLOG" && pass "QEMU read the config space (GET_CONFIG)" ||
	fail "QEMU read the config space (GET_CONFIG)"
# A second front-end on the same kvmini: the device was reset at the first
# one's disconnect. LBA 1 cleared first, so the write shows again.
dd if=/dev/zero of="$IMG" bs=512 seek=1 count=1 conv=notrunc status=none
boot_checks "QEMU 2" "$SOCK" OK
lba1_is_boot "$IMG" && pass "host image: LBA 1 written again" ||
	fail "host image: LBA 1 written again"
[ "$(stat -c %s "$IMG")" = $((SECTORS * 512)) ] && pass "image size unchanged" ||
	fail "image size unchanged"
kvmini_stop "$KPID" "$KLOG"
kvmini_show
kc_eq "kvmini: two front-ends" "${KC[vhost_user_connections]:-}" 2
kc_eq "kvmini: two activations" "${KC[vhost_user_device_activations]:-}" 2
kc_eq "kvmini: two writes served" "${KC[rx_requests_write]:-}" 2
kc_gt0 rx_requests_read tx_read_bytes
blk_errors_clean "kvmini"

# ---------------------------------------------------------------- 2. read-only

IMG_RO=$T_RUN/disk-ro.img
SOCK_RO=$T_RUN/blk-ro.sock
mkimage "$IMG_RO" || { fail "make $IMG_RO"; t_end; }
RO_SUM=$(sha256sum <"$IMG_RO")
KLOG_RO=$T_DIR/kvmini-ro.log
kvmini_vhost_start RPID "$SOCK_RO" "$KLOG_RO" blk --image "$IMG_RO" --read-only || t_end
boot_checks "QEMU read-only" "$SOCK_RO" FAILED
[ "$(sha256sum <"$IMG_RO")" = "$RO_SUM" ] && pass "read-only image unchanged" ||
	fail "read-only image unchanged"
kvmini_stop "$RPID" "$KLOG_RO"
kc_eq "kvmini read-only: the write refused by the device" "${KC[rx_writes_read_only]:-}" 1
kc_eq "kvmini read-only: no write served" "${KC[rx_requests_write]:-}" 0
blk_errors_clean "kvmini read-only"
t_end
