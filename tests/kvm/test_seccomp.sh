#!/bin/bash
# seccomp filters in kvmini run: a thread of each kind that makes a syscall
# outside its list (the test-only hook KVMINI_TEST_SECCOMP_PROBE=KIND of the
# sanitizer build: acct(2) once its filter is on) ends the VM with exit 159
# and a line naming the thread and the syscall. A queue pair's thread
# starts when the guest's driver sets DRIVER_OK: the test guest's net test
# (test=net) reaches net-queue (loopback) and net-sockets (libslirp).
. "$(dirname "$0")/lib.sh"

# probe KIND ARGS...: the test guest (TEST, default hello) with KIND probing.
probe() {
	local kind=$1
	shift
	KVMINI_TEST_SECCOMP_PROBE=$kind PROBE=1 guest "seccomp-$kind" "${TEST:-hello}" "" "$@"
	expect "seccomp: a $kind thread's forbidden syscall ends kvmini" 159 \
		"seccomp: thread $kind made forbidden syscall 163 \(acct\)"
}

make_share
probe vcpu
probe main
probe fs-worker --fs "$SHARE:kvmtest"
probe host-watch --fs "$SHARE:kvmtest"
IMG=$SHARE/blk.img
truncate -s 65536 "$IMG"
probe blk-worker --drive "$IMG,id=kvmdisk"
TEST=net probe net-queue --net loopback
TEST=net probe net-sockets --net user

# The vCPU's own work under its filter: the CMOS clock read in place (the
# guest reads it as Linux does at boot; glibc's first gmtime_r would load
# the time zone file there), its date the host's (UTC). The release build:
# the sanitizer build's lists let every thread open files for its reports.
KVMINI=$(dirname "$KVMINI")/kvmini guest seccomp-rtc rtc ""
expect "seccomp: a vCPU reads the CMOS clock under its filter, the host's UTC month" 0 \
	"rtc: $(date -u +%Y-%m)-"

# The main thread of a VM configured before its start (--config-file, as
# Firecracker's) is confined at InstanceStart, before the first guest
# instruction.
cat >"$LOGDIR/seccomp-vm.json" <<JSON
{"boot-source": {"kernel_image_path": "$GUEST", "boot_args": "test=hello"},
 "machine-config": {"vcpu_count": 1, "mem_size_mib": 64}}
JSON
LAST=seccomp-config-file
KVMINI_TEST_SECCOMP_PROBE=main timeout --foreground -k 5 "$LIMIT" "$KVMINI" run --no-api \
	--config-file "$LOGDIR/seccomp-vm.json" </dev/null >"$LOGDIR/$LAST.out" 2>"$LOGDIR/$LAST.err"
RC=$?
OUT=$(cat "$LOGDIR/$LAST.out")
ERR=$(cat "$LOGDIR/$LAST.err")
expect "seccomp: --config-file: the main thread is confined at InstanceStart" 159 \
	"seccomp: thread main made forbidden syscall 163 \(acct\)"

kvm_end
