#!/usr/bin/env bash
# Install every Debian package kvmini needs to build, test and benchmark.
# Fast when everything is already there (no apt-get at all then).
set -euo pipefail

PACKAGES=(
	# build
	gcc make pkg-config clang-14 libclang-rt-14-dev
	# lint (scripts/lint.sh): static analysis and the style description
	clang-tidy clang-format cppcheck
	libslirp-dev libglib2.0-dev
	# bench/fuse_vs_libfuse.sh: libfuse's passthrough_ll, built from the
	# source this package ships
	libfuse3-dev
	# seccomp filters per thread kind (src/core/seccomp_filter.c)
	libseccomp-dev
	# the metadata service and the control API: JSON and HTTP parsing
	libjansson-dev libhttp-parser-dev
	# tests: real peers and tools
	user-mode-linux busybox-static iperf3 passt iproute2 tcpdump ethtool python3 procps perl
	# kvmini run: unpacking bzImage payloads (--host-decompress: the libraries)
	# and initramfs images
	zlib1g-dev liblzma-dev libzstd-dev liblz4-dev libbz2-dev liblzo2-dev
	xz-utils gzip cpio
	# ... and the kernel build's compressors, for tests/unit/decompress_tools.sh
	bzip2 lzop lz4 zstd
	# tests/peers: QEMU (with SeaBIOS and iPXE) and DPDK's testpmd as front-ends
	qemu-system-x86 dpdk-dev
	# kvmini run: ACPI table checks, and the guest kernel built from Debian's source
	acpica-tools linux-source-6.12 flex bison bc libelf-dev libssl-dev
	# kvmini: the MMDS token HMACs (Nettle)
	nettle-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all ${#PACKAGES[@]} packages present"
	exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
