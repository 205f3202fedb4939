#!/bin/bash
# Build the guest of bench/boot_vs_qemu (an ELF both kvmini and QEMU's
# microvm -kernel can boot) and print its path.
# Usage: bench/boot_guest/build.sh [OUTDIR]   (default build/bench-guest)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build/bench-guest}
src=bench/boot_guest
elf=$out/boot-guest.elf
mkdir -p "$out"
if [ ! -f "$elf" ] || [ "$src/start.S" -nt "$elf" ] || [ "$src/guest.ld" -nt "$elf" ]; then
	gcc -nostdlib -static -no-pie -Wl,-T,"$src/guest.ld" -Wl,--build-id=none \
		-Wl,-z,max-page-size=4096 -o "$elf" "$src/start.S"
fi
echo "$elf"
