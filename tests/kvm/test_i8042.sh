#!/bin/bash
# The i8042 keyboard controller and Firecracker's SendCtrlAltDel: the test
# guest probes the controller as Linux's drivers do (self-test, interface
# test, command byte, GET ID through IRQ 1), then takes Ctrl+Alt+Del sent
# through PUT /actions, byte by byte through IRQ 1. Before boot the action
# is refused with Firecracker's 400.
. "$(dirname "$0")/lib.sh"

if ! command -v curl >/dev/null; then
	echo "SKIP: kvm i8042: curl is not installed"
	kvm_end
fi
api=$LOGDIR/i8042.sock
cad='{"action_type":"SendCtrlAltDel"}'
wait_socket() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }

# A kvmini waiting for its configuration has no VM to send the keys to.
rm -f "$api"
run_bg i8042-preboot --api-sock "$api"
if wait_socket "$api"; then
	api_put "$api" /actions "$cad"
	if [ "$CODE" = 400 ] && grep -q 'not supported before starting the microVM' <<<"$BODY"; then
		pass "i8042: SendCtrlAltDel before boot is refused (400, Firecracker's words)"
	else
		fail "i8042: SendCtrlAltDel before boot answered $CODE $BODY"
	fi
else
	fail "i8042: no API socket before boot"
fi
kill "$VM" 2>/dev/null
wait "$VM" 2>/dev/null

rm -f "$api"
run_bg i8042 --kernel "$GUEST" --cmdline "test=i8042" --api-sock "$api"
if wait_output 'ready for Ctrl+Alt+Del'; then
	api_put "$api" /actions "$cad"
	[ "$CODE" = 204 ] && pass "i8042: SendCtrlAltDel on a running VM answers 204" ||
		fail "i8042: SendCtrlAltDel answered $CODE $BODY"
else
	fail "i8042: the guest never got ready (logs $LOGDIR/i8042.{out,err})"
fi
collect_bg
expect "i8042: the guest probed the controller and read 14 11 e0 71 through IRQ 1" 0 \
	'kvm-guest i8042: done \(0 failures\)'
expect "i8042: the send is logged" 0 'Ctrl\+Alt\+Del sent to the guest'

kvm_end
