#!/bin/bash
# virtio-fs in kvmini run: a host file read through FUSE, the host-change
# watcher (on by default, as for `vhost fs`), a host change reaching a
# driver that negotiates notifications, and --no-notify.
. "$(dirname "$0")/lib.sh"

make_share
guest fs fs "" --fs "$SHARE:kvmtest"
expect "virtio-fs: FUSE INIT, LOOKUP, OPEN, READ of a host file (guest checks)" 0 \
	'fs: done \(0 failures\)'
# The host-change watcher (issue 3) is on by default as for `vhost fs`: it
# sees the guest's lookups; this guest does not negotiate notifications,
# so no watch is placed and nothing is sent. --no-notify turns it off.
guest fs-watch fs "" --fs "$SHARE:kvmtest" --max-watches 100 --counters
expect "virtio-fs: the host watch is wired (counters at exit)" 0 'host watch of --fs kvmtest'
skipped=$(counter watch_watches_skipped)
[ "${skipped:-0}" -gt 0 ] && pass "virtio-fs: the watch saw $skipped lookups, no watch placed for a driver without notifications" ||
	fail "virtio-fs: watch_watches_skipped ${skipped:-missing}"
# A driver that negotiates VIRTIO_FS_F_NOTIFICATION: it looks the file up,
# says so on the console, the host appends to the file, and the guest must
# get FUSE_NOTIFY_INVAL_INODE for that node on the notification queue.
run_bg fs-notify --kernel "$GUEST" --cmdline "test=fs-notify" --fs "$SHARE:kvmtest" --counters
wait_output 'fs-notify: change it now'
printf 'changed on the host\n' >>"$SHARE/hello.txt"
collect_bg
expect "virtio-fs in run: a host change reaches the guest as INVAL_INODE (guest checks)" 0 \
	'fs-notify: done \(0 failures\)'
expect "virtio-fs in run: the watch counted it" 0 '^watch_invals [1-9]'
printf 'hello from the host, through virtio-fs\n' >"$SHARE/hello.txt"
PROBE=1 guest fs-no-notify fs-notify "" --fs "$SHARE:kvmtest" --no-notify --counters
# (the guest's check fails, so it ends with the debug exit's failure status 3)
expect "virtio-fs in run: --no-notify: no watcher, the notification feature not offered" 3 \
	'FAIL: kvm-guest fs-notify: VIRTIO_FS_F_NOTIFICATION negotiated'
grep -q 'host watch of' <<<"$ERR" && fail "virtio-fs in run: --no-notify still watched"

kvm_end
