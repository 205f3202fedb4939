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
probe run-waiting-main main run --api-sock "$tmp/api.sock"
unfiltered vhost-net-off vhost net --socket "$tmp/n2.sock" --backend loopback
out=$(timeout 5 "$BIN" vhost net --socket "$tmp/n3.sock" --backend loopback --seccomp maybe 2>&1)
if grep -q -- '--seccomp: "maybe" is not on or off' <<<"$out"; then
	echo "PASS: seccomp bad value refused"
else
	echo "FAIL: seccomp bad value refused ($out)"
	fails=$((fails + 1))
fi
[ "$fails" -eq 0 ]
