#!/bin/bash
# seccomp filters in kvmini run: a thread of each kind that makes a syscall
# outside its list (the test-only hook KVMINI_TEST_SECCOMP_PROBE=KIND of the
# sanitizer build: acct(2) once its filter is on) ends the VM with exit 159
# and a line naming the thread and the syscall. Not probed here: net-queue
# (kvmini run serves one queue pair on its loop; the pair threads start only
# with vhost-user multiqueue) and blk-worker.
. "$(dirname "$0")/lib.sh"

# probe KIND ARGS...: the test guest's net test with KIND probing.
probe() {
	local kind=$1
	shift
	KVMINI_TEST_SECCOMP_PROBE=$kind PROBE=1 guest "seccomp-$kind" hello "" "$@"
	expect "seccomp: a $kind thread's forbidden syscall ends kvmini" 159 \
		"seccomp: thread $kind made forbidden syscall 163 \(acct\)"
}

make_share
probe vcpu
probe main
probe fs-worker --fs "$SHARE:kvmtest"
probe host-watch --fs "$SHARE:kvmtest"

kvm_end
