#!/bin/bash
# kvmini's FUSE server beside libfuse's own passthrough_ll, same run, same
# disk (the virtio-fs issue's reference): passthrough_ll is built here from
# the source Debian's libfuse3-dev ships, then build/bench/fuse_bench runs
# each mode against it (--against: mounted with default_permissions as
# kvmini's mount is, glibc's mmap threshold raised). Target: create, stat
# and unlink each at least 1.0x of passthrough_ll with kvmini's
# notifications on (the first mode); data figures are printed beside.
#
# Usage: bench/fuse_vs_libfuse.sh [fuse_bench options...]
#   modes by default: --cache auto,auto:no-notify (the watcher's cost beside)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
REF=build/libfuse/passthrough_ll
if [ ! -r "$SRC" ] || ! pkg-config --exists fuse3; then
	echo "SKIP: fuse_vs_libfuse: $SRC or fuse3's pkg-config missing (scripts/setup.sh installs libfuse3-dev)"
	exit 0
fi
mkdir -p build/libfuse
if [ ! -x "$REF" ] || [ "$SRC" -nt "$REF" ]; then
	# shellcheck disable=SC2046
	gcc -O2 -Wall -o "$REF" "$SRC" $(pkg-config --cflags --libs fuse3) ||
		{ echo "FAIL: fuse_vs_libfuse: building passthrough_ll"; exit 1; }
fi
make -s build/bench/fuse_bench build/kvmini || exit 1
# A --cache among the options given comes later and wins.
exec build/bench/fuse_bench --against "$REF" --cache auto,auto:no-notify "$@"
