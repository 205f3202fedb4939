#!/usr/bin/env bash
# seccomp filters (src/core/seccomp_filter.c): a thread that makes a syscall
# outside its list ends the process with a line naming its kind and the call.
# The probe is the test-only hook KVMINI_TEST_SECCOMP_PROBE=KIND (sanitizer
# build only): a thread of that kind calls acct(2) once its filter is on.
set -u
cd "$(dirname "$0")/../.."
BIN=${KVMINI:-build/kvmini-san}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# NAME KIND ARGS...: the process must end with 159 and the line.
probe() {
	local name=$1 kind=$2 out rc
	shift 2
	out=$(KVMINI_TEST_SECCOMP_PROBE=$kind timeout 10 "$BIN" "$@" 2>&1)
	rc=$?
	if [ "$rc" -eq 159 ] &&
		grep -q "seccomp: thread $kind made forbidden syscall 163 (acct)" <<<"$out"; then
		echo "PASS: seccomp $name"
	else
		echo "FAIL: seccomp $name (exit $rc; output: $(tail -n 3 <<<"$out"))"
		fails=$((fails + 1))
	fi
}

# NAME ARGS...: with --seccomp off the probe is harmless (acct fails, no filter).
unfiltered() {
	local name=$1 rc
	shift
	KVMINI_TEST_SECCOMP_PROBE=main timeout --preserve-status -s TERM 2 "$BIN" "$@" \
		--seccomp off >"$tmp/out" 2>&1
	rc=$?
	if [ "$rc" -ne 159 ] && ! grep -q 'forbidden syscall' "$tmp/out"; then
		echo "PASS: seccomp $name"
	else
		echo "FAIL: seccomp $name (exit $rc)"
		fails=$((fails + 1))
	fi
}

mkdir -p "$tmp/share"
probe vhost-net-main main vhost net --socket "$tmp/n.sock" --backend loopback
probe vhost-fs-main main vhost fs --socket "$tmp/f.sock" --tag t --shared-dir "$tmp/share"
# A kvmini waiting for its configuration confines its main thread at
# InstanceStart (tests/kvm/test_seccomp.sh probes that): while it waits it
# answers only the operator's socket and does the set-up asked of it.
KVMINI_TEST_SECCOMP_PROBE=main timeout --preserve-status -s TERM 2 "$BIN" run \
	--api-sock "$tmp/api.sock" >"$tmp/wait.out" 2>&1
rc=$?
if [ "$rc" -ne 159 ] && grep -q 'waiting on' "$tmp/wait.out"; then
	echo "PASS: seccomp run-waiting: the main thread waits unconfined"
else
	echo "FAIL: seccomp run-waiting: the main thread waits unconfined (exit $rc)"
	fails=$((fails + 1))
fi
# vhost fs starts its workers and the host watcher with the process.
probe vhost-fs-worker fs-worker vhost fs --socket "$tmp/f2.sock" --tag t --shared-dir "$tmp/share"
probe vhost-fs-host-watch host-watch vhost fs --socket "$tmp/f3.sock" --tag t --shared-dir "$tmp/share"
# vhost blk: its main thread, and its worker, which starts with the process.
truncate -s 1M "$tmp/disk.img"
probe vhost-blk-main main vhost blk --socket "$tmp/b.sock" --image "$tmp/disk.img"
probe vhost-blk-worker blk-worker vhost blk --socket "$tmp/b2.sock" --image "$tmp/disk.img"
# fuse-mount's main thread, once it serves: the session dies with it, so
# the mount point is detached here after.
if [ -c /dev/fuse ] && [ "$(id -u)" = 0 ]; then
	mkdir -p "$tmp/fshare" "$tmp/fmnt"
	probe fuse-mount-main fuse-main fuse-mount "$tmp/fshare" "$tmp/fmnt"
	umount -l "$tmp/fmnt" 2>/dev/null
else
	echo "SKIP: seccomp fuse-mount-main: needs /dev/fuse and root"
fi
unfiltered vhost-net-off vhost net --socket "$tmp/n2.sock" --backend loopback
unfiltered vhost-blk-off vhost blk --socket "$tmp/b3.sock" --image "$tmp/disk.img"
out=$(timeout 5 "$BIN" vhost net --socket "$tmp/n3.sock" --backend loopback --seccomp maybe 2>&1)
if grep -q -- '--seccomp: "maybe" is not on or off' <<<"$out"; then
	echo "PASS: seccomp bad value refused"
else
	echo "FAIL: seccomp bad value refused ($out)"
	fails=$((fails + 1))
fi
[ "$fails" -eq 0 ]
