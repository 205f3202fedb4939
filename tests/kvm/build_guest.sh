#!/bin/bash
# Build the kvmini test guest: a freestanding 64-bit ELF linked at 1 MiB,
# from tests/kvm/guest/*.c and start.S, and the same guest wrapped in a
# bzImage (tests/kvm/mkbzimage.py). Prints the path of the ELF; the bzImage
# is beside it (test-guest.bzImage).
# Usage: tests/kvm/build_guest.sh [OUTDIR]   (default build/kvm-guest)
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:-build/kvm-guest}
src=tests/kvm/guest
mkdir -p "$out"
elf=$out/test-guest.elf

# No SSE (the guest never enables it), no red zone (interrupts use the
# stack as is), no PIC, no libc.
CFLAGS=(-std=gnu11 -O2 -g -ffreestanding -fno-pic -fno-pie -fno-stack-protector
	-fno-asynchronous-unwind-tables -mno-red-zone -mgeneral-regs-only -mcmodel=small
	-fno-builtin -Wall -Wextra -Werror -Wno-unused-parameter -I"$src")
LDFLAGS=(-nostdlib -static -no-pie -Wl,-T,"$src"/guest.ld -Wl,--build-id=none
	-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments)

newest_src=$(ls -t "$src"/* tests/kvm/mkbzimage.py | head -n1)
if [ -f "$elf" ] && [ "$elf" -nt "$newest_src" ] && [ -f "$out/test-guest.bzImage" ]; then
	echo "$elf"
	exit 0
fi
gcc "${CFLAGS[@]}" "${LDFLAGS[@]}" -o "$elf" "$src"/start.S "$src"/lib.c "$src"/virtio.c \
	"$src"/acpi.c "$src"/tests.c -lgcc
objcopy -O binary -j .text -j .rodata -j .data "$elf" "$out/test-guest.bin"
python3 tests/kvm/mkbzimage.py "$elf" "$out/test-guest.bin" "$out/test-guest.bzImage"
echo "$elf"
