#!/bin/bash
# kvmini run on KVM with the project's own freestanding test guest
# (tests/kvm/guest): boot, console, exits, the virtio-mmio register rules,
# loopback net frames with interrupts, NEEDS_RESET, virtio-blk (test_blk.sh:
# the guest's own driver, PATCH /drives on the running VM), virtio-vsock
# (test_vsock.sh: both directions against python peers on unix sockets), and
# kvmini's errors.
# One case or one tight group per file, tests/kvm/test_*.sh, sharing
# tests/kvm/lib.sh; this does the setup once (kvmini and the test guest
# built when needed) and runs every file through tests/run_suite.sh.
#
# Prints one PASS:/FAIL: line per case, and relays the guest's own
# PASS:/FAIL: lines. Skips (exit 0, one SKIP line) only when /dev/kvm is
# absent. Knobs: KVMINI (binary, default build/kvmini-san), KVM_TEST_TIMEOUT
# (seconds per kvmini run, default 60), KVM_FILE_TIMEOUT (seconds per test
# file, default 60 more than KVM_TEST_LINUX_TIMEOUT's 900), KVM_TEST_LINUX
# (a kernel to boot as well, see test_linux.sh). A single file runs by itself too:
#   bash tests/kvm/test_net_loopback.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

if [ ! -e /dev/kvm ]; then
	echo "SKIP: kvm: /dev/kvm is absent on this host; kvmini run cannot be tested"
	exit 0
fi
. tests/kvm/lib.sh
export GUEST KVMINI

exec tests/run_suite.sh kvm "${KVM_FILE_TIMEOUT:-$((${KVM_TEST_LINUX_TIMEOUT:-900} + 60))}"
