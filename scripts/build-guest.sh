#!/bin/bash
# Build kvmini's own guest images, the default of `kvmini run` without
# --kernel:
#   build/guest/vmlinux         Linux from Debian's linux-source-6.12:
#                               `make tinyconfig` + guest/kernel.config
#   build/guest/initramfs.cpio  busybox (busybox-static) + guest/init,
#                               uncompressed (nothing to inflate in the guest)
# Each is rebuilt only when what it is made of changed (a cache key beside
# it); the kernel build took 28 minutes here with two cores shared by other
# jobs (an incremental rebuild after a config change: seconds), the
# initramfs a second. Out-of-tree: the unpacked source stays pristine in build/guest/src.
# A built vmlinux is also kept under its key in $KVMINI_CACHE/guest, outside
# the checkout, so a fresh clone on the same machine (CI) copies it instead of
# building it again.
#
# Usage: scripts/build-guest.sh [--force] [--jobs N]
# Env:   KVMINI_LINUX_TAR (default /usr/src/linux-source-6.12.tar.xz)
#        KVMINI_CACHE (default /var/cache/kvmini)
set -euo pipefail
cd "$(dirname "$0")/.."

TAR=${KVMINI_LINUX_TAR:-/usr/src/linux-source-6.12.tar.xz}
BUSYBOX=${KVMINI_BUSYBOX:-/bin/busybox}
OUT=build/guest
CACHE=${KVMINI_CACHE:-/var/cache/kvmini}/guest
FORCE=0
JOBS=$(nproc)
# Bump when the kernel or initramfs recipe below changes meaning.
KERNEL_RECIPE=1
INITRAMFS_RECIPE=1

while [ $# -gt 0 ]; do
	case $1 in
	--force) FORCE=1 ;;
	--jobs)
		case ${2:-} in
		[1-9] | [1-9][0-9]) JOBS=$2 ;;
		*) echo "build-guest: --jobs needs a number from 1 to 99" >&2; exit 2 ;;
		esac
		shift ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build-guest: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "build-guest: $*" >&2; exit 1; }
say() { echo "build-guest: $*" >&2; }

[ -f "$TAR" ] || die "$TAR is missing: apt-get install linux-source-6.12 (scripts/setup.sh)"
[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing: apt-get install busybox-static (scripts/setup.sh)"
readelf -l "$BUSYBOX" | grep -q 'program interpreter' && die "$BUSYBOX is not static: apt-get install busybox-static"
for tool in make gcc flex bison bc readelf strip; do
	command -v $tool >/dev/null || die "$tool is missing (scripts/setup.sh installs the guest kernel's build tools)"
done

mkdir -p "$OUT"
OUT_ABS=$(cd "$OUT" && pwd)
SRC=$OUT_ABS/src/$(basename "$TAR" .tar.xz)
KBUILD=$OUT_ABS/kbuild

# Cache keys: what each image is made of.
kernel_key() {
	{
		echo "recipe $KERNEL_RECIPE"
		stat -c '%n %s %Y' "$TAR"
		gcc -dumpfullversion
		cat guest/kernel.config
	} | sha256sum | cut -d' ' -f1
}
initramfs_key() {
	{
		echo "recipe $INITRAMFS_RECIPE"
		sha256sum "$BUSYBOX" | cut -d' ' -f1
		cat guest/init
	} | sha256sum | cut -d' ' -f1
}
fresh() { [ "$FORCE" = 0 ] && [ -f "$1" ] && [ -f "$1.key" ] && [ "$(cat "$1.key")" = "$2" ]; }

unpack_source() {
	[ -f "$SRC/Makefile" ] && [ -f "$SRC/.kvmini-unpacked" ] && return 0
	say "unpacking $TAR"
	rm -rf "$OUT_ABS/src"
	mkdir -p "$OUT_ABS/src"
	tar -C "$OUT_ABS/src" -xf "$TAR"
	[ -f "$SRC/Makefile" ] || die "$TAR did not unpack into $SRC"
	touch "$SRC/.kvmini-unpacked"
}

# Every option the fragment asks for must be in the final .config as asked
# (olddefconfig drops what a dependency rules out, silently).
check_config() {
	local bad=0 opt want have
	while IFS='=' read -r opt want; do
		case $opt in CONFIG_*) ;; *) continue ;; esac
		have=$(grep -E "^$opt=" "$KBUILD/.config" | cut -d= -f2- || true)
		[ -z "$have" ] && grep -q "^# $opt is not set" "$KBUILD/.config" && have=n
		[ -z "$have" ] && have=absent
		if [ "$want" = n ] && [ "$have" = absent ]; then
			continue
		fi
		if [ "$have" != "$want" ]; then
			say "config: $opt=$want asked, the kernel has $have"
			bad=1
		fi
	done <guest/kernel.config
	return $bad
}

build_kernel() {
	local key=$1
	unpack_source
	mkdir -p "$KBUILD"
	say "configuring (tinyconfig + guest/kernel.config)"
	make -s -C "$SRC" O="$KBUILD" tinyconfig >/dev/null
	(cd "$SRC" && scripts/kconfig/merge_config.sh -m -O "$KBUILD" "$KBUILD/.config" \
		"$OLDPWD/guest/kernel.config" >/dev/null)
	make -s -C "$SRC" O="$KBUILD" olddefconfig >/dev/null
	check_config || die "guest/kernel.config does not apply to this kernel (see above)"
	say "building vmlinux with $JOBS jobs (log $OUT/kernel-build.log)"
	local t0=$SECONDS
	if ! make -C "$SRC" O="$KBUILD" -j"$JOBS" vmlinux >"$OUT/kernel-build.log" 2>&1; then
		tail -n 20 "$OUT/kernel-build.log" >&2
		die "kernel build failed (log $OUT/kernel-build.log)"
	fi
	cp "$KBUILD/vmlinux" "$OUT/vmlinux.tmp"
	strip --strip-debug "$OUT/vmlinux.tmp"
	mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
	cp "$KBUILD/.config" "$OUT/vmlinux.config"
	echo "$key" >"$OUT/vmlinux.key"
	say "vmlinux built in $((SECONDS - t0)) s ($(($(stat -c %s "$OUT/vmlinux") / 1024)) KiB)"
}

# The initramfs from a gen_init_cpio list: device nodes without root, and
# the same bytes for the same inputs.
build_initramfs() {
	local key=$1 list=$OUT/initramfs.list gen=$OUT/gen_init_cpio
	unpack_source
	if [ ! -x "$gen" ] || [ "$gen" -ot "$SRC/usr/gen_init_cpio.c" ]; then
		gcc -O2 -o "$gen" "$SRC/usr/gen_init_cpio.c"
	fi
	{
		for d in /bin /sbin /usr /usr/bin /usr/sbin /dev /proc /sys /mnt /tmp /root /etc /run; do
			echo "dir $d 755 0 0"
		done
		echo "nod /dev/console 600 0 0 c 5 1"
		echo "nod /dev/null 666 0 0 c 1 3"
		echo "file /bin/busybox $BUSYBOX 755 0 0"
		echo "file /init $PWD/guest/init 755 0 0"
		"$BUSYBOX" --list-full | while read -r applet; do
			[ "$applet" = bin/busybox ] && continue
			echo "slink /$applet /bin/busybox 777 0 0"
		done
	} >"$list"
	"$gen" -t 0 "$list" >"$OUT/initramfs.cpio.tmp"
	mv "$OUT/initramfs.cpio.tmp" "$OUT/initramfs.cpio"
	echo "$key" >"$OUT/initramfs.cpio.key"
	say "initramfs built ($(($(stat -c %s "$OUT/initramfs.cpio") / 1024)) KiB)"
}

# from_cache KEY: the vmlinux built for KEY earlier on this machine, if any.
from_cache() {
	[ "$FORCE" = 0 ] && [ -f "$CACHE/vmlinux-$1" ] || return 1
	cp "$CACHE/vmlinux-$1" "$OUT/vmlinux.tmp" && mv "$OUT/vmlinux.tmp" "$OUT/vmlinux" &&
		echo "$1" >"$OUT/vmlinux.key" && say "vmlinux from the cache ($CACHE)"
}

# to_cache KEY: keep the vmlinux just built for a later clone (best effort).
to_cache() {
	mkdir -p "$CACHE" 2>/dev/null && cp "$OUT/vmlinux" "$CACHE/vmlinux-$1.tmp" 2>/dev/null &&
		mv "$CACHE/vmlinux-$1.tmp" "$CACHE/vmlinux-$1" ||
		say "could not keep vmlinux in $CACHE (not fatal)"
}

kkey=$(kernel_key)
ikey=$(initramfs_key)
if fresh "$OUT/vmlinux" "$kkey"; then
	say "vmlinux is up to date"
elif ! from_cache "$kkey"; then
	build_kernel "$kkey"
	to_cache "$kkey"
fi
if fresh "$OUT/initramfs.cpio" "$ikey"; then
	say "initramfs is up to date"
else
	build_initramfs "$ikey"
fi
echo "$OUT/vmlinux $OUT/initramfs.cpio"
