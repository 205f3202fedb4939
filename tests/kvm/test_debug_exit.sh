#!/bin/bash
# Debug exit (always on, QEMU's isa-debug-exit): a write of v ends the VM
# with status (v << 1) | 1, whatever its width.
. "$(dirname "$0")/lib.sh"

guest exit exit ""
expect "debug exit: a write of 42 ends with (42 << 1) | 1 = 85" 85 'wrote 0x2a to the debug exit port'
guest exit16 exit16 ""
expect "debug exit: a 16-bit write of 0x1234 ends with 0x2469 & 0xff = 105" 105 \
	'wrote 0x1234 to the debug exit port'
run help-debug-exit "" -- --help
expect "debug exit documented in --help" 0 '0x501 ends the VM with exit status \(v << 1\) \| 1'

kvm_end
