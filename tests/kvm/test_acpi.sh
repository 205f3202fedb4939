#!/bin/bash
# ACPI: the guest reads the tables as an OS does (tests/kvm/guest/acpi.c),
# powers off and resets through the FADT; --no-acpi leaves them out.
. "$(dirname "$0")/lib.sh"

make_share
for cpus in 1 3; do
	guest "acpi-cpus$cpus" "acpi cpus=$cpus" "" --cpus "$cpus" --net loopback --fs "$SHARE:acpi" \
		--net loopback
	expect "acpi ($cpus vCPUs, 3 devices): RSDP, XSDT, FADT, MADT, DSDT, LNRO0005 windows probed (guest checks)" \
		0 'acpi: done \(0 failures\)'
done
guest acpi-poweroff acpi-poweroff ""
expect "acpi: S5 through the FADT's sleep control register ends the VM with 0" 0 \
	'guest powered off \(ACPI S5\)'
guest acpi-reset acpi-reset ""
expect "acpi: the FADT's reset register ends the VM with 0" 0 'guest rebooted \(i8042 reset\)'
run boot-no-acpi "" -- --kernel "$GUEST" --mem 96 --no-acpi --cmdline "test=bootparams mem_mib=96 no_acpi=1"
expect "--no-acpi: e820 without the ACPI range, no RSDP (guest checks)" 0 'bootparams: done \(0 failures\)'

kvm_end
