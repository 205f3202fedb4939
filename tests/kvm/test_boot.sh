#!/bin/bash
# Boot and console: the test guest prints and reboots through the i8042, and
# kvmini reports when the guest ran its first instruction.
. "$(dirname "$0")/lib.sh"

guest hello hello "" --boot-timing
expect "hello: console output, i8042 reboot ends with 0" 0 'hello from the kvmini test guest'
expect "hello: reboot reported" 0 'guest rebooted \(i8042 reset\)'
first=$(grep -oE 'first guest instruction +[0-9.]+ ms' <<<"$ERR" | grep -oE '[0-9.]+ ms')
[ -n "$first" ] && pass "boot timing: first guest instruction after $first" ||
	fail "boot timing: no first-instruction figure"

kvm_end
