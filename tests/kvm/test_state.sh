#!/bin/bash
# Snapshot KVM state (vmm/vm_state.c, vmm/vcpu_state.c): a VM that ran is
# saved, loaded into a new VM and saved again, with the same bytes (time
# aside), and the restored vCPU runs on from where it was. The check is a
# program of its own (tests/kvm/state_roundtrip.c), whose PASS:/FAIL: lines
# are relayed.
. "$(dirname "$0")/lib.sh"

PROG=build/kvm-tests/state_roundtrip
if [ ! -x "$PROG" ]; then
	make -j2 "$PROG" >"$LOGDIR/state-build.log" 2>&1 ||
		{ fail "state round trip: building $PROG (log $LOGDIR/state-build.log)"; kvm_end; }
fi
timeout -k 5 "$LIMIT" "$PROG" >"$LOGDIR/state.out" 2>"$LOGDIR/state.err"
RC=$?
OUT=$(cat "$LOGDIR/state.out")
ERR=$(cat "$LOGDIR/state.err")
relay_guest
LAST=state
sanitizer_check "state round trip"
if [ "$RC" -ne 0 ] && ! grep -q '^FAIL: ' <<<"$OUT"; then
	fail "state round trip: exit status $RC without a FAIL line (log $LOGDIR/state.err)"
fi
kvm_end
