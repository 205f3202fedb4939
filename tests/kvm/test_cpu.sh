#!/bin/bash
# The vCPU and memory: a triple fault and an emulation failure end the VM
# with their own status and a report; a second vCPU waits for SIPI; memory
# above 4 GiB.
. "$(dirname "$0")/lib.sh"

guest fault fault ""
expect "triple fault ends the VM with 3, reported" 3 'triple fault'

guest emulation emulation ""
if [ "$RC" -eq 0 ] && grep -q 'ran natively' <<<"$OUT"; then
	# Only a KVM that emulates guest kernel code (PVM) fails on popcnt.
	echo "SKIP: kvm emulation failure report: popcnt runs natively on this host, nothing to report"
else
	expect "emulation failure reported with RIP and instruction bytes" 4 \
		'RIP 0x[0-9a-f]+, instruction bytes: f3 48 0f b8'
fi

guest smp hello "" --cpus 2
expect "two vCPUs: boot vCPU runs, the other waits for SIPI" 0 'hello from the kvmini test guest'

guest highmem hello "" --mem 4100
expect "memory above 4 GiB (two RAM regions)" 0 'hello from the kvmini test guest'

kvm_end
