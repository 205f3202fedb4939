#!/bin/bash
# The virtio-fs DAX window with Linux's own driver: Debian's stock cloud
# kernel (CONFIG_FUSE_DAX, CONFIG_ZONE_DEVICE) and its virtiofs module, under
# `kvmini run --fs DIR:share,dax=256M`:
#  - the guest mounts the share with -o dax=always (its /proc/mounts says so);
#  - it reads a file the host made, overwrites bytes inside another (a
#    non-extending write: through the window), and maps a third with mmap
#    (MAP_SHARED, a static helper built here): it reads the host's bytes
#    through the mapping and writes a marker into it;
#  - the host finds the guest's bytes in both files;
#  - kvmini's counters at exit show mappings set (fuse_rx_mappings_set) and
#    none refused for the well-behaved guest;
#  - the guest holds a fourth file mapped; the paused VM is snapshotted and
#    restored in a new kvmini (the share and its window from the snapshot):
#    the guest reads the same first line through its old mapping, sees a
#    byte the host wrote after the restore, and writes through it (the
#    host sees it); a restore after that file was truncated is refused;
#  - a second VM with a window of 8 MiB (four of Linux's 2 MiB ranges) reads
#    a 24 MiB file the host made: the guest must take ranges back
#    (REMOVEMAPPING) to map the rest, its checksum is the host's, and the
#    counters show ranges removed.
# The guest is the stock initramfs (build/stock-guest/initramfs.gz, as the
# acceptance suite builds it) with an overlay: an /init for this test and
# the mmap helper. Knobs: KVMINI_STOCK_DIR, KVMINI_STOCK_INITRAMFS (as
# test_balloon.sh). Without them: one SKIP line. Run on the nested platform
# (tests/nested/run.sh): where guest kernel code is emulated it is skipped.
. "$(dirname "$0")/lib.sh"

skip() { echo "SKIP: kvm dax: $*"; exit 0; }
[ -e /sys/module/kvm_pvm ] && skip "guest kernel code is emulated on this kvm_pvm host; the nested platform runs it"
STOCK_DIR=${KVMINI_STOCK_DIR:-$(ls -d /var/cache/kvmini/debian-cloud/*/ 2>/dev/null | sort -V | tail -n1)}
STOCK_DIR=${STOCK_DIR%/}
INITRAMFS=${KVMINI_STOCK_INITRAMFS:-build/stock-guest/initramfs.gz}
[ -f "$STOCK_DIR/vmlinuz" ] || skip "no stock kernel (KVMINI_STOCK_DIR)"
[ -f "$INITRAMFS" ] || skip "no $INITRAMFS (KVMINI_STOCK_INITRAMFS)"
command -v curl >/dev/null && command -v cpio >/dev/null || skip "curl or cpio missing"
grep -q '^CONFIG_FUSE_DAX=y' "$STOCK_DIR/config" 2>/dev/null || skip "the stock kernel has no CONFIG_FUSE_DAX"

DIR=$(mktemp -d /tmp/kvmini-test-dax.XXXXXX)
VM=
cleanup() {
	[ -n "$VM" ] && kill "$VM" 2>/dev/null && wait "$VM" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT

# The mmap helper: map FILE shared read-write, print its first line, write
# MARKER at OFFSET, msync.
cat >"$DIR/daxmap.c" <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* hold FILE: map FILE, print its first line, wait (through a snapshot and
 * a restore) until the host writes 'G' at 4096, print the first line again
 * and write a marker at 8192 through the same mapping. */
static int hold(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDWR);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 16384) { perror("daxhold: open"); return 1; }
	volatile char *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) { perror("daxhold: mmap"); return 1; }
	printf("daxhold: before '%.*s'\n", (int)strcspn((char *)p, "\n"), (char *)p);
	fflush(stdout);
	for (int i = 0; p[4096] != 'G'; i++) {
		if (i == 6000) { printf("daxhold: no go from the host\n"); return 1; }
		usleep(100000);
	}
	printf("daxhold: after '%.*s'\n", (int)strcspn((char *)p, "\n"), (char *)p);
	memcpy((char *)p + 8192, "RESTORED-WROTE", 14);
	if (msync((void *)p, st.st_size, MS_SYNC) < 0) { perror("daxhold: msync"); return 1; }
	printf("daxhold: wrote\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct stat st;
	if (argc == 3 && !strcmp(argv[1], "hold"))
		return hold(argv[2]);
	int fd = argc == 4 ? open(argv[1], O_RDWR) : -1;
	if (fd < 0 || fstat(fd, &st) < 0) { perror("daxmap: open"); return 1; }
	char *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) { perror("daxmap: mmap"); return 1; }
	size_t off = strtoul(argv[2], NULL, 0), n = strlen(argv[3]);
	if (off + n > (size_t)st.st_size) { fprintf(stderr, "daxmap: past the end\n"); return 1; }
	printf("daxmap: read '%.*s'\n", (int)strcspn(p, "\n"), p);
	memcpy(p + off, argv[3], n);
	if (msync(p, st.st_size, MS_SYNC) < 0) { perror("daxmap: msync"); return 1; }
	printf("daxmap: wrote '%s' at %zu\n", argv[3], off);
	return munmap(p, st.st_size);
}
EOF
mkdir -p "$DIR/ov/bin" "$DIR/share"
gcc -static -O2 -o "$DIR/ov/bin/daxmap" "$DIR/daxmap.c" 2>"$DIR/gcc.log" || skip "no static C build for the mmap helper ($(head -n1 "$DIR/gcc.log"))"
cat >"$DIR/ov/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in virtio_ring virtio virtio_mmio fuse virtiofs; do insmod /lib/modules/$m.ko; done
say() { echo "dax-guest: $*"; }
mkdir -p /mnt/s
if mount -t virtiofs -o dax=always share /mnt/s; then
	say "mounted: $(grep ' /mnt/s ' /proc/mounts)"
	say "read: $(cat /mnt/s/from-host.txt)"
	printf 'GUEST-WROTE-THIS' | dd of=/mnt/s/rw.bin bs=1 seek=8192 conv=notrunc 2>/dev/null &&
		say "overwrote rw.bin at 8192"
	say "reread: $(dd if=/mnt/s/rw.bin bs=1 skip=8192 count=16 2>/dev/null)"
	/bin/daxmap /mnt/s/map.bin 12288 MMAP-MARKER && say "mapped map.bin"
	sync
	[ -f /mnt/s/snap.bin ] && /bin/daxmap hold /mnt/s/snap.bin
	if [ -f /mnt/s/big.bin ]; then
		say "big: $(md5sum /mnt/s/big.bin | cut -d' ' -f1)"
		say "big again: $(md5sum /mnt/s/big.bin | cut -d' ' -f1)"
	fi
	umount /mnt/s && say "unmounted"
else
	say "mount failed"
fi
dmesg | grep -i -E 'dax|virtio_fs|virtiofs' | sed 's/^/dax-guest: dmesg: /'
say "done"
while :; do sleep 1; done
EOF
chmod +x "$DIR/ov/init"
(cd "$DIR/ov" && find . | cpio -o -H newc 2>/dev/null | gzip) >"$DIR/overlay.gz"
cat "$INITRAMFS" "$DIR/overlay.gz" >"$DIR/initramfs.gz"

echo "hello from the host $$" >"$DIR/share/from-host.txt"
head -c 65536 /dev/zero | tr '\0' 'h' >"$DIR/share/rw.bin"
{ echo "map.bin made by the host"; head -c 65536 /dev/zero | tr '\0' 'm'; } >"$DIR/share/map.bin"
{ echo "snap.bin made by the host $$"; head -c 65536 /dev/zero | tr '\0' 's'; } >"$DIR/share/snap.bin"

SOCK=$DIR/api.sock
api() {
	local out
	out=$(curl -s -w '\n%{http_code}' --max-time 20 --unix-socket "$SOCK" -X "$1" \
		-H 'Content-Type: application/json' ${3:+-d "$3"} "http://k$2")
	CODE=$(tail -n 1 <<<"$out")
	BODY=$(sed '$d' <<<"$out")
}
until_ok() {
	local n=$(($1 * 2))
	shift
	while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 0.5; n=$((n - 1)); done
	return 1
}
# restore_bg N SECS [ARG...]: the snapshot in $DIR/state and $DIR/mem restored
# in a new kvmini in the background (VM), its console in $DIR/consoleN and
# its stderr in $DIR/kvminiN.err, ended after SECS.
restore_bg() {
	timeout --foreground -k 10 "$2" "$KVMINI" run --restore "$DIR/state" --mem-file "$DIR/mem" "${@:3}" \
		</dev/null >"$DIR/console$1" 2>"$DIR/kvmini$1.err" &
	VM=$!
}
# stop_vm ERRLOG: end the VM, keep its logs, its stderr in ERR.
stop_vm() {
	kill -TERM "$VM" 2>/dev/null
	wait "$VM" 2>/dev/null
	VM=
	save_logs
	ERR=$(cat "$1")
}

LAST=dax
timeout --foreground -k 10 "${KVM_TEST_TIMEOUT:-600}" "$KVMINI" run --kernel "$STOCK_DIR/vmlinuz" \
	--initrd "$DIR/initramfs.gz" --cmdline "console=ttyS0 reboot=k panic=-1 pci=off" \
	--mem 512 --fs "$DIR/share:share,dax=256M" --api-sock "$SOCK" --counters </dev/null \
	>"$DIR/console" 2>"$DIR/kvmini.err" &
VM=$!
save_logs() { cp "$DIR/console" "$LOGDIR/dax.console" 2>/dev/null; cp "$DIR/kvmini.err" "$LOGDIR/dax.err" 2>/dev/null; }
if ! until_ok 300 grep -q 'daxhold: before' "$DIR/console"; then
	save_logs
	fail "dax: the guest never reached its held mapping (log $LOGDIR/dax.*)"
	kvm_end
fi
grep 'dax-guest:\|daxmap:\|daxhold:' "$DIR/console" | tr -d '\r'
grep -q 'DAX window of 256 MiB at 0x' "$DIR/kvmini.err" &&
	pass "dax: the window is placed ($(grep -o 'DAX window of 256 MiB at 0x[0-9a-f]*' "$DIR/kvmini.err"))" ||
	fail "dax: no window placed"
grep -q "dax-guest: mounted: .*dax=always" "$DIR/console" &&
	pass "dax: the stock guest mounted the share with dax=always" ||
	fail "dax: the share was not mounted with dax=always"
grep -q "dax-guest: read: hello from the host $$" "$DIR/console" &&
	pass "dax: the guest read the host's file" || fail "dax: the guest did not read the host's file"
[ "$(dd if="$DIR/share/rw.bin" bs=1 skip=8192 count=16 2>/dev/null)" = GUEST-WROTE-THIS ] &&
	[ "$(stat -c %s "$DIR/share/rw.bin")" = 65536 ] &&
	pass "dax: the host sees the guest's write inside rw.bin" ||
	fail "dax: rw.bin at 8192 holds '$(dd if="$DIR/share/rw.bin" bs=1 skip=8192 count=16 2>/dev/null)'"
grep -q "daxmap: read 'map.bin made by the host'" "$DIR/console" &&
	[ "$(dd if="$DIR/share/map.bin" bs=1 skip=12288 count=11 2>/dev/null)" = MMAP-MARKER ] &&
	pass "dax: the guest's mmap read the host's bytes and its write reached the host" ||
	fail "dax: map.bin at 12288 holds '$(dd if="$DIR/share/map.bin" bs=1 skip=12288 count=11 2>/dev/null)'"

# --- the snapshot keeps the window's mappings ---------------------------------
# The guest holds snap.bin mapped (daxhold). Paused and snapshotted, the VM
# is restored in a new kvmini with no --fs (the share and its window come
# from the snapshot); the host then writes 'G' into snap.bin, which the
# restored guest can only see through its old mapping, re-read through it.
api PATCH /vm '{"state":"Paused"}'; codes="$CODE "
api PUT /snapshot/create "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"$DIR/state\",\"mem_file_path\":\"$DIR/mem\"}"
codes+="$CODE"
[ "$codes" = "204 204" ] && pass "dax: the paused VM with a DAX window is snapshotted ($(stat -c %s "$DIR/state") bytes of state)" ||
	fail "dax: pause and snapshot answered $codes ($BODY)"
api PATCH /vm '{"state":"Resumed"}'

stop_vm "$DIR/kvmini.err"
ctr() { grep -o "$1[ =:]*[0-9]*" <<<"$ERR" | tail -n1 | grep -o '[0-9]*$'; }
set_n=$(ctr fuse_rx_mappings_set)
rm_n=$(ctr fuse_rx_mappings_removed)
ref_n=$(ctr fuse_rx_mappings_refused)
[ "${set_n:-0}" -gt 0 ] && [ "${ref_n:-x}" = 0 ] &&
	pass "dax: counters: $set_n mappings set, ${rm_n:-0} removed, $ref_n refused" ||
	fail "dax: counters: set '${set_n}' removed '${rm_n}' refused '${ref_n}' (log $LOGDIR/dax.err)"
sanitizer_check dax

LAST=dax-restore
restore_bg 2 "${KVM_TEST_TIMEOUT:-600}" --counters
save_logs() { cp "$DIR/console2" "$LOGDIR/dax-restore.console" 2>/dev/null; cp "$DIR/kvmini2.err" "$LOGDIR/dax-restore.err" 2>/dev/null; }
sleep 1
printf G | dd of="$DIR/share/snap.bin" bs=1 seek=4096 conv=notrunc 2>/dev/null
until_ok 300 grep -q 'dax-guest: done' "$DIR/console2" || fail "dax: the restored guest never finished (log $LOGDIR/dax-restore.*)"
grep 'dax-guest:\|daxhold:' "$DIR/console2" | tr -d '\r'
grep -q 'DAX window of 256 MiB at 0x' "$DIR/kvmini2.err" &&
	pass "dax: the restored VM has its window again ($(grep -o 'DAX window of 256 MiB at 0x[0-9a-f]*' "$DIR/kvmini2.err"))" ||
	fail "dax: the restored VM placed no window"
before=$(grep -o "daxhold: before '.*'" "$DIR/console" | head -n1 | cut -d"'" -f2)
after=$(grep -o "daxhold: after '.*'" "$DIR/console2" | head -n1 | cut -d"'" -f2)
[ -n "$before" ] && [ "$before" = "$after" ] && [ "$before" = "snap.bin made by the host $$" ] &&
	pass "dax: after the restore the guest read the same bytes through its old DAX mapping ('$after') and saw the host's later write" ||
	fail "dax: through the mapping: before '$before', after the restore '$after'"
[ "$(dd if="$DIR/share/snap.bin" bs=1 skip=8192 count=14 2>/dev/null)" = RESTORED-WROTE ] &&
	pass "dax: the restored guest's write through the mapping reached the host's file" ||
	fail "dax: snap.bin at 8192 holds '$(dd if="$DIR/share/snap.bin" bs=1 skip=8192 count=14 2>/dev/null)'"
stop_vm "$DIR/kvmini2.err"
ref_n=$(ctr fuse_rx_mappings_refused)
[ "${ref_n:-x}" = 0 ] && ! grep -q 'error:' "$DIR/kvmini2.err" &&
	pass "dax: the restored VM: $(ctr fuse_rx_mappings_set) mappings set, $(ctr fuse_rx_mappings_removed) removed, $ref_n refused, no error logged" ||
	fail "dax: the restored VM: refused '${ref_n}' (log $LOGDIR/dax-restore.err)"
sanitizer_check dax-restore

# A file truncated since the snapshot below a mapping's start: refused by name.
truncate -s 0 "$DIR/share/snap.bin"
restore_bg 3 120
wait "$VM"
rc=$?
VM=
[ "$rc" != 0 ] && grep -q 'FDAX.*truncated since the snapshot' "$DIR/kvmini3.err" &&
	pass "dax: a restore after the mapped file was truncated is refused (exit $rc: $(grep -o 'the DAX mapping of node.*' "$DIR/kvmini3.err" | head -n1 | cut -c1-90)...)" ||
	fail "dax: a restore over a truncated mapped file: exit $rc, $(tail -n 2 "$DIR/kvmini3.err")"

# --- a small window: the guest must give ranges back -------------------------
rm -f "$DIR/share/snap.bin"
head -c $((24 << 20)) /dev/urandom >"$DIR/share/big.bin"
want=$(md5sum "$DIR/share/big.bin" | cut -d' ' -f1)
rm -f "$SOCK"
LAST=dax-small
timeout --foreground -k 10 "${KVM_TEST_TIMEOUT:-600}" "$KVMINI" run --kernel "$STOCK_DIR/vmlinuz" \
	--initrd "$DIR/initramfs.gz" --cmdline "console=ttyS0 reboot=k panic=-1 pci=off" \
	--mem 512 --fs "$DIR/share:share,dax=8M" --counters </dev/null \
	>"$DIR/console" 2>"$DIR/kvmini.err" &
VM=$!
save_logs() { cp "$DIR/console" "$LOGDIR/dax-small.console" 2>/dev/null; cp "$DIR/kvmini.err" "$LOGDIR/dax-small.err" 2>/dev/null; }
until_ok 300 grep -q 'dax-guest: done' "$DIR/console" || fail "dax: the small-window guest never finished (log $LOGDIR/dax-small.*)"
grep 'dax-guest: big' "$DIR/console" | tr -d '\r'
[ "$(grep -c "dax-guest: big.*: $want" "$DIR/console")" = 2 ] &&
	pass "dax: through an 8 MiB window the guest read a 24 MiB file twice, checksum the host's ($want)" ||
	fail "dax: the guest's checksums of big.bin are not the host's $want"
stop_vm "$DIR/kvmini.err"
set_n=$(ctr fuse_rx_mappings_set)
rm_n=$(ctr fuse_rx_mappings_removed)
ref_n=$(ctr fuse_rx_mappings_refused)
[ "${set_n:-0}" -gt 12 ] && [ "${rm_n:-0}" -gt 0 ] && [ "${ref_n:-x}" = 0 ] &&
	pass "dax: small window counters: $set_n mappings set, $rm_n removed, $ref_n refused" ||
	fail "dax: small window counters: set '${set_n}' removed '${rm_n}' refused '${ref_n}' (log $LOGDIR/dax-small.err)"
sanitizer_check dax-small
kvm_end
