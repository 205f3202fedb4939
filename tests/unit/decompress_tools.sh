#!/usr/bin/env bash
# --host-decompress against what the real compressors write: each command the
# kernel's build runs for a bzImage payload (scripts/Makefile.lib and
# scripts/xz_wrap.sh, the build's size_append after all but gzip), on a few
# MB of real machine code, decoded by vmm/decompress.c through the unit
# binary's file mode and compared with the input.
set -u
cd "$(dirname "$0")/../.."
BIN=build/tests/test_decompress
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$BIN" ]; then
	echo "FAIL: decompress tools ($BIN is not built: make unit)"
	exit 1
fi
# Machine code, as a vmlinux is: the unit binaries. 9 MB for lz4, so that
# its legacy frame has more than one 8 MiB block; 1 MB for the slow rest
# (zstd -22 still declares its 128 MiB window for input from a pipe).
cat build/tests/test_* build/tests/test_* | head -c $((9 << 20)) >"$tmp/big"
head -c $((1 << 20)) "$tmp/big" >"$tmp/small"

# The build's size_append: a size, 4 bytes little-endian.
size_append() {
	local n=$1 i
	for i in 0 8 16 24; do
		printf "\\x$(printf %02x $(((n >> i) & 255)))"
	done
}

# case NAME INPUT TRAILER COMMAND...: compress, append, decode, compare.
case_() {
	local name=$1 in=$tmp/$2 trailer=$3
	shift 3
	if ! command -v "$1" >/dev/null; then
		echo "SKIP: decompress tools $name ($1 is not installed)"
		return
	fi
	{ "$@" <"$in" && { [ "$trailer" = no ] || size_append "$(stat -c %s "$in")"; }; } \
		>"$tmp/$name"
	local err
	if ! err=$("$BIN" "$tmp/$name" 2>&1 >"$tmp/$name.out"); then
		echo "FAIL: decompress tools $name: $err"
	elif ! cmp -s "$in" "$tmp/$name.out"; then
		echo "FAIL: decompress tools $name (output differs from the input)"
	else
		echo "PASS: decompress tools $name ($*: $(stat -c %s "$tmp/$name") bytes)"
	fi
}

case_ gzip small no gzip -n -f -9
case_ bzip2 small yes bzip2 -9
case_ lzma small yes xz --format=lzma -9
case_ xz small yes xz --check=crc32 --x86 --lzma2=,dict=32MiB
case_ lzo small yes lzop -9
case_ lz4 big yes lz4 -l -9
case_ zstd small yes zstd -22 --ultra
