#!/bin/bash
# Boot timing "userspace": the guest writes 7 (ignored), prints, waits
# 50 ms and writes 123 to port 0x3f0 (the boot marker); without the marker
# (and without Linux's "Run /init" line) userspace is not reached.
. "$(dirname "$0")/lib.sh"

guest marker marker "" --boot-timing
expect "boot marker: the guest ran" 0 'marker written'
ms() { grep -oE "$1 +[0-9.]+ ms" <<<"$ERR" | grep -oE '[0-9.]+ ms$' | grep -oE '[0-9.]+'; }
console_ms=$(ms 'first console output')
user_ms=$(ms 'userspace \(boot marker\)')
if [ -n "$user_ms" ] && [ -n "$console_ms" ] &&
	awk -v u="$user_ms" -v c="$console_ms" 'BEGIN { exit !(u >= c + 40) }'; then
	pass "boot timing: userspace marker at $user_ms ms, after the console ($console_ms ms) and the pause"
else
	fail "boot timing: userspace marker ${user_ms:-missing} (console ${console_ms:-?} ms)"
fi
expect "boot timing: Linux's \"Run /init\" console line seen" 0 'kernel runs /init \(console\) +[0-9.]+ ms'
guest nomarker hello "" --boot-timing
expect "boot timing: no marker written, userspace not reached" 0 'userspace \(boot marker\) +not reached'
expect "boot timing: no \"Run /init\" line, not reached" 0 'kernel runs /init \(console\) +not reached'

kvm_end
