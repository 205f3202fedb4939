#!/bin/bash
# The boot protocol: zero page, e820, command line, initramfs; as an ELF,
# as a bzImage entered at its 64-bit entry point, and as a bzImage whose
# payload kvmini unpacks on the host.
. "$(dirname "$0")/lib.sh"

BZIMAGE=${GUEST%.elf}.bzImage
initrd=$LOGDIR/initrd.bin
{ printf 'KVMINI-INITRD'; head -c 100000 /dev/zero; } >"$initrd"
ilen=$(stat -c %s "$initrd")
for kind in elf bzimage unpacked; do
	case $kind in
	elf) image=$GUEST; extra=() ;;
	bzimage) image=$BZIMAGE; extra=() ;;
	unpacked) image=$BZIMAGE; extra=(--host-decompress) ;;
	esac
	run "boot-$kind" "" -- --kernel "$image" --mem 96 --initrd "$initrd" \
		--cmdline "test=bootparams mem_mib=96 initrd_len=$ilen" "${extra[@]}"
	expect "boot protocol ($kind): zero page, e820, initrd (guest checks)" 0 \
		'bootparams: done \(0 failures\)'
done
cp "${GUEST%.elf}.bin" "$LOGDIR/flat.bin"
run bad-unpack "" -- --kernel "$LOGDIR/flat.bin" --host-decompress
expect "--host-decompress of something that is no bzImage: clear error" 1 'not a bzImage|neither'

kvm_end
