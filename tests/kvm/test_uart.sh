#!/bin/bash
# The console's input path: the 16550's receive FIFO and interrupts,
# kvmini's host-side buffer, and Ctrl-A x on a terminal.
. "$(dirname "$0")/lib.sh"

# Input arrives before the guest listens, and is longer than the 16-byte
# FIFO: nothing may be lost.
line="the quick brown fox jumps over the lazy dog 0123456789"
guest uart uart "$line"$'\n'
expect "uart: a 56-byte line echoed through RX interrupts" 0 "echo: $line\$"

# Much more input than kvmini's 4 KiB host-side buffer, all in the pipe
# before the guest enables receive interrupts (300 ms in): kvmini must stop
# reading when its buffer is full and lose nothing, in order.
bulk=$(seq 1 3000 | tr '\n' ' ')
bulk_hash=$(printf '%s' "$bulk" | python3 -c 'import sys
h = 0
for b in sys.stdin.buffer.read(): h = (h * 31 + b) & 0xffffffff
print(h)')
guest uart-bulk uart-bulk "$bulk" --cmdline "test=uart-bulk bulk_len=${#bulk} bulk_wait_ms=300"
expect "uart: ${#bulk} bytes piped before the guest listens, all received in order" 0 \
	"uart-bulk: ${#bulk} bytes, hash $bulk_hash\$"

# On a terminal, Ctrl-A x ends the VM even before the guest listens (kvmini
# reads input into its buffer at once; the guest here would wait 15 s).
if command -v script >/dev/null; then
	LAST=ctrl-a-x
	t0=$(date +%s%N)
	(sleep 0.5; printf '\001x') | timeout -k 5 "$LIMIT" script -qec "$KVMINI run --kernel $GUEST \
		--cmdline 'test=uart-bulk bulk_len=1 bulk_wait_ms=15000'" /dev/null \
		>"$LOGDIR/ctrl-a-x.out" 2>&1
	RC=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	OUT=$(tr -d '\r' <"$LOGDIR/ctrl-a-x.out")
	ERR=
	if [ "$ms" -lt 10000 ]; then
		expect "console on a terminal: Ctrl-A x before the guest listens ends the VM ($ms ms)" 0 \
			'console: Ctrl-A x'
	else
		fail "console on a terminal: Ctrl-A x took $ms ms (the guest's 15 s wait?)"
	fi
fi

kvm_end
