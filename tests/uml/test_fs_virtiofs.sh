#!/bin/bash
# kvmini's virtio-fs over vhost-user, mounted by UML's stock virtiofs driver
# (virtio_uml.device=SOCK:26, then `mount -t virtiofs TAG`). The host shares
# a fresh directory holding one file made on the host; the guest reads that
# file, then writes files of awkward sizes, reads them back past its page
# cache and checksums them, and reshapes the tree (mkdir, rename across
# directories, rename of a directory, append, truncate, hard and symbolic
# links, unlink, rm -r). It prints a manifest of the final tree; the host
# must see exactly that tree, byte for byte. A second kvmini serves a memfs
# share in the same guest, with in-band notifications, two request queues
# and --cache metadata (file data as direct I/O from and to the guest's
# buffers) and workers polling for requests (--poll-us 200: polls must have
# run), and gets a smaller workload checked from the guest alone. A second
# boot of the guest then reconnects to both (the device was reset at the
# first disconnect) and finds both trees as it left them. Then both kvmini
# (the sanitizer build) must exit cleanly with their error counters at zero
# and FORGETs seen.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_fs_virtiofs 150
# lib.sh's counter helpers read the names to expect from a header.
KVMINI_COUNTER_NAMES=$(sed -n 's/^[[:space:]]*X(\([a-z0-9_]*\),.*/\1/p' \
	"$UML_TOP/src/fs/virtio_fs.h")

SOCK=$T_RUN/fs.sock
SOCK_MEM=$T_RUN/memfs.sock
SHARE=$T_RUN/share
TAG=kvmfs
TAG_MEM=kvmmem
mkdir -p "$SHARE" || { fail "mkdir $SHARE"; t_end; }
head -c 300000 /dev/urandom >"$SHARE/from-host.bin"
HOST_SUM=$(sha256sum "$SHARE/from-host.bin" | cut -d' ' -f1)

# fs_start VAR SOCKET LOG ARGS...: serve virtio-fs on SOCKET; waits for it.
fs_start() { kvmini_vhost_start "$1" "$2" "$3" fs "${@:4}"; }

LOG_PT=$T_DIR/kvmini.log
LOG_MEM=$T_DIR/kvmini-memfs.log
fs_start KPID "$SOCK" "$LOG_PT" --tag "$TAG" --shared-dir "$SHARE" --threads 2 || t_end
fs_start MPID "$SOCK_MEM" "$LOG_MEM" --tag "$TAG_MEM" --backend memfs --memfs-size 64 \
	--inband --queues 2 --threads 3 --cache metadata --poll-us 200 || t_end

guest_script "$T_DIR/guest.sh" <<EOF
TAG=$TAG
TAG_MEM=$TAG_MEM
HOST_SUM=$HOST_SUM
EOF
cat >>"$T_DIR/guest.sh" <<'EOF'
M=/tmp/mnt
modprobe virtiofs 2>/dev/null
mkdir -p $M
gcheck "mount -t virtiofs $TAG" mount -t virtiofs $TAG $M || exit 1
grep " $M " /proc/mounts
sum() { sha256sum "$1" | cut -d' ' -f1; }
# A file made on the host reads back whole.
[ "$(sum $M/from-host.bin)" = "$HOST_SUM" ] && gpass "host-made file reads back (sha256)" ||
	gfail "host-made file reads back (sha256)"

# Files of awkward sizes, written through the mount, checksummed from the
# guest's copy, then read back from kvmini with the page cache dropped.
cd $M || exit 1
mkdir -p tree/a/b/c tree/x tree/gone/deep/er
ok=1
for spec in e:0 one:1 page-1:4095 page:4096 page+1:4097 odd:65537 mib+3:1048579 big:8388608; do
	name=${spec%%:*}; size=${spec#*:}
	head -c $size /dev/urandom >/tmp/$name
	cp /tmp/$name tree/a/b/c/$name || ok=0
	sum /tmp/$name >/tmp/$name.sum
done
dd if=/dev/urandom of=/tmp/dd bs=1M count=6 2>/dev/null
dd if=/tmp/dd of=tree/x/dd bs=1M conv=fsync 2>/dev/null || ok=0
[ $ok = 1 ] && gpass "write 9 files (0 B .. 8 MiB)" || gfail "write 9 files (0 B .. 8 MiB)"
sync
echo 3 >/proc/sys/vm/drop_caches
bad=
for f in /tmp/*.sum; do
	name=$(basename $f .sum)
	[ "$(sum tree/a/b/c/$name)" = "$(cat $f)" ] || bad="$bad $name"
done
[ "$(sum tree/x/dd)" = "$(sum /tmp/dd)" ] || bad="$bad dd"
[ -z "$bad" ] && gpass "read back past the page cache, checksums equal" ||
	gfail "read back past the page cache, checksums differ:$bad"
[ "$(stat -c %s tree/a/b/c/big)" = 8388608 ] && gpass "stat size 8388608" ||
	gfail "stat size $(stat -c %s tree/a/b/c/big)"

# Reshape the tree.
ok=1
mv tree/a/b/c/odd tree/x/odd-moved || ok=0
mv tree/a/b tree/x/b-moved || ok=0
echo appended >>tree/x/b-moved/c/one || ok=0
truncate -s 1000 tree/x/b-moved/c/page || ok=0
truncate -s 100000 tree/x/b-moved/c/e || ok=0
ln tree/x/dd tree/a/dd-hardlink || ok=0
ln -s ../x/dd tree/a/dd-symlink || ok=0
rm tree/x/b-moved/c/page-1 || ok=0
rm -r tree/gone || ok=0
mkdir tree/new && echo "made in the guest" >tree/new/note.txt || ok=0
mv tree/new/note.txt tree/new/renamed.txt || ok=0
[ $ok = 1 ] && gpass "mkdir, rename, append, truncate, link, symlink, unlink, rm -r" ||
	gfail "mkdir, rename, append, truncate, link, symlink, unlink, rm -r"
[ "$(cat tree/a/dd-symlink | sha256sum | cut -d' ' -f1)" = "$(sum /tmp/dd)" ] &&
	gpass "symlink resolves" || gfail "symlink resolves"
[ "$(stat -c %h tree/x/dd)" = 2 ] && gpass "hard link count 2" || gfail "hard link count"
[ ! -e tree/gone ] && gpass "rm -r removed the tree" || gfail "rm -r removed the tree"
# A big listing (readdir over several replies).
mkdir tree/many
i=0; while [ $i -lt 300 ]; do : >tree/many/f$i; i=$((i + 1)); done
[ "$(ls tree/many | wc -l)" = 300 ] && gpass "300 entries listed" || gfail "300 entries listed"
sync
echo 3 >/proc/sys/vm/drop_caches

# The manifest the host compares with its own view.
find . -mindepth 1 | sort | while read -r p; do
	if [ -L "$p" ]; then echo "GUEST-MAN: l $p $(readlink "$p")"
	elif [ -d "$p" ]; then echo "GUEST-MAN: d $p"
	else echo "GUEST-MAN: f $p $(stat -c %s "$p") $(sum "$p")"
	fi
done
cd /
gcheck "umount" umount $M

# The memfs share: in-band notifications, two request queues, direct I/O.
R=/tmp/mem
mkdir -p $R
gcheck "mount -t virtiofs $TAG_MEM (memfs)" mount -t virtiofs $TAG_MEM $R
ok=1
mkdir -p $R/d/e && cp /tmp/big /tmp/odd /tmp/one $R/d/e/ && mv $R/d/e $R/moved &&
	ln -s moved/big $R/link && echo more >>$R/moved/one && rm $R/moved/odd || ok=0
dd if=/tmp/dd of=$R/dd bs=1M 2>/dev/null && [ "$(dd if=$R/dd bs=1M 2>/dev/null | sum -)" = "$(sum /tmp/dd)" ] ||
	ok=0
[ $ok = 1 ] && gpass "memfs: write, mkdir, rename, symlink, append, unlink" ||
	gfail "memfs: write, mkdir, rename, symlink, append, unlink"
sync
echo 3 >/proc/sys/vm/drop_caches
[ "$(sum $R/link)" = "$(sum /tmp/big)" ] && gpass "memfs: 8 MiB reads back past the page cache" ||
	gfail "memfs: 8 MiB reads back past the page cache"
[ "$(tail -c 5 $R/moved/one)" = more ] && [ "$(stat -c %s $R/moved/one)" = 6 ] &&
	[ ! -e $R/moved/odd ] && [ ! -e $R/d/e ] && gpass "memfs: append, unlink and rename seen" ||
	gfail "memfs: append, unlink and rename seen"
df $R | tail -n 1 | grep -q . && gpass "memfs: statfs" || gfail "memfs: statfs"
cd /
gcheck "umount memfs" umount $R
EOF

uml_boot UPID "" "$T_DIR/guest.sh" 120 virtio_uml.device="$SOCK:26" \
	virtio_uml.device="$SOCK_MEM:26"
uml_wait "$UPID"
guest_relay

# Boot again: both kvmini serve the new session; memfs kept its tree.
FIRST_CONSOLE=$T_DIR/console-boot1.log
mv "$UML_CONSOLE" "$FIRST_CONSOLE"
guest_script "$T_DIR/guest2.sh" <<EOF
TAG=$TAG
TAG_MEM=$TAG_MEM
EOF
cat >>"$T_DIR/guest2.sh" <<'EOF'
modprobe virtiofs 2>/dev/null
mkdir -p /tmp/mnt /tmp/mem
gcheck "second boot: mount both shares" mount -t virtiofs $TAG /tmp/mnt
mount -t virtiofs $TAG_MEM /tmp/mem
[ "$(cat /tmp/mnt/tree/new/renamed.txt)" = "made in the guest" ] &&
	[ "$(ls /tmp/mnt/tree/many | wc -l)" = 300 ] &&
	gpass "second boot: the shared tree is there" || gfail "second boot: the shared tree is there"
[ "$(tail -c 5 /tmp/mem/moved/one)" = more ] && [ -L /tmp/mem/link ] &&
	gpass "second boot: memfs kept its tree" || gfail "second boot: memfs kept its tree"
echo again >/tmp/mnt/second-boot && rm -r /tmp/mem/moved &&
	gpass "second boot: write and rm -r" || gfail "second boot: write and rm -r"
umount /tmp/mnt && umount /tmp/mem && gpass "second boot: umount both" ||
	gfail "second boot: umount both"
EOF
uml_boot UPID2 "" "$T_DIR/guest2.sh" 60 virtio_uml.device="$SOCK:26" \
	virtio_uml.device="$SOCK_MEM:26"
uml_wait "$UPID2"
guest_relay
echo again | cmp -s - "$SHARE/second-boot" && pass "host sees the second boot's file" ||
	fail "host sees the second boot's file"
rm -f "$SHARE/second-boot"
UML_CONSOLE=$FIRST_CONSOLE

# The host's view of the share, in the guest's manifest format.
host_manifest() {
	(cd "$SHARE" && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
		if [ -L "$p" ]; then echo "l $p $(readlink "$p")"
		elif [ -d "$p" ]; then echo "d $p"
		else echo "f $p $(stat -c %s "$p") $(sha256sum "$p" | cut -d' ' -f1)"
		fi
	done)
}
tr -d '\r' <"$UML_CONSOLE" | sed -n 's/^GUEST-MAN: //p' | LC_ALL=C sort >"$T_DIR/manifest.guest"
host_manifest | LC_ALL=C sort >"$T_DIR/manifest.host"
lines=$(wc -l <"$T_DIR/manifest.guest")
if [ "$lines" -gt 300 ] && cmp -s "$T_DIR/manifest.guest" "$T_DIR/manifest.host"; then
	pass "host sees exactly the guest's tree ($lines entries, sizes and sha256)"
else
	fail "host sees exactly the guest's tree (guest $lines entries; diff in $T_DIR)"
	diff "$T_DIR/manifest.guest" "$T_DIR/manifest.host" | head -n 10 | sed 's/^/    | /'
fi

# check_fs_counters LABEL: the counters of KC (one kvmini's) as expected.
check_fs_counters() {
	local label=$1 n bad=
	kvmini_show
	kc_gt0 rx_requests tx_reply_bytes tx_interrupts_sent
	if [ $((${KC[hiprio_forgets]:-0} + ${KC[hiprio_batch_forgets]:-0})) -gt 0 ]; then
		pass "kvmini $label: FORGETs arrived on the hiprio queue (${KC[hiprio_forgets]:-0} + ${KC[hiprio_batch_forgets]:-0} batches)"
	else
		fail "kvmini $label: FORGETs arrived on the hiprio queue"
	fi
	for n in rx_chain_invalid rx_requests_no_payload tx_reply_oversize hiprio_requests_refused \
		used_add_failed avail_index_invalid fuse_requests_malformed fuse_replies_overflow; do
		[ "${KC[$n]:-0}" = 0 ] || bad+=" $n=${KC[$n]}"
	done
	[ -z "$bad" ] && pass "kvmini $label: no error counter moved" ||
		fail "kvmini $label: error counters moved:$bad"
	kc_eq "kvmini $label: both boots activated the device" \
		"${KC[vhost_user_device_activations]:-}" 2
}

kvmini_stop "$KPID" "$LOG_PT"
check_fs_counters passthrough
kvmini_stop "$MPID" "$LOG_MEM"
check_fs_counters memfs
# Its workers polled (--poll-us). Whether a poll found a request depends on
# how soon the guest made the next one (on a loaded host, often later than
# the window), so what is required is that polls ran, and the workload's
# checks above held with them.
polls=$((${KC[rx_requests_polled]:-0} + ${KC[rx_polls_timed_out]:-0}))
note "memfs: polls that found a request ${KC[rx_requests_polled]:-?}, timed out ${KC[rx_polls_timed_out]:-?}"
[ "$polls" -gt 0 ] && pass "kvmini memfs: its workers polled ($polls polls)" ||
	fail "kvmini memfs: its workers polled (rx_requests_polled + rx_polls_timed_out = 0)"
t_end
