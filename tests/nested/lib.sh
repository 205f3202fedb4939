# Debian's stock cloud kernel for the nested platform and for the stock-kernel
# guest, shared by tests/nested/run.sh, the KVM acceptance test and the
# benches (source it from the repository's top).
#
# The kernel comes from Debian's archive with `apt-get download` (the package
# linux-image-cloud-amd64 depends on, i.e. the current one) and is unpacked
# with `dpkg-deb -x`; only the image, its config and the modules named below
# are kept, under $KVMINI_CACHE/debian-cloud/VERSION, outside the checkout, so
# a fresh clone on the same machine (CI) finds them there.
#
# Env: KVMINI_CACHE (default /var/cache/kvmini)
#      KVMINI_STOCK_DEB  a linux-image-*-cloud-amd64 .deb to use instead of
#                        downloading the current one

NESTED_CACHE=${KVMINI_CACHE:-/var/cache/kvmini}

# What the outer VM loads, in order: KVM with AMD's SVM (the only nested
# virtualisation QEMU's TCG emulates), tap and veth for the network tests,
# virtio-pci and virtio-fs for the host's root directory.
NESTED_OUTER_MODULES="irqbypass kvm kvm-amd tun veth virtio_ring virtio virtio_pci_modern_dev
	virtio_pci_legacy_dev virtio_pci fuse virtiofs"
# What a stock-kernel guest of `kvmini run` loads, in order: virtio-mmio (the
# devices come from kvmini's DSDT), virtio-net, virtio-fs, virtio-rng and
# virtio-blk (ext4 is built in).
STOCK_GUEST_MODULES="virtio_ring virtio virtio_mmio failover net_failover virtio_net fuse virtiofs
	virtio-rng virtio_blk vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport
	virtio_balloon"
# Kept when the kernel has them, loaded by whoever needs them (bench/nested_iperf.sh:
# QEMU's vhost-net in the outer VM), in order; a kernel without one is no error.
NESTED_OPTIONAL_MODULES="vhost_iotlb vhost tap vhost_net"

nested_say() { echo "nested: $*" >&2; }

# stock_package: the name of the current cloud kernel package (for example
# linux-image-6.1.0-57-cloud-amd64), from apt's lists (updated once when
# they know none).
stock_package() {
	local pkg
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	if [ -z "$pkg" ]; then
		apt-get update -qq >/dev/null 2>&1
		pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	fi
	[ -n "$pkg" ] && echo "$pkg"
}

# The modules an unpacked kernel keeps: a kernel unpacked for another list
# is unpacked again.
stock_module_list() {
	echo $NESTED_OUTER_MODULES $STOCK_GUEST_MODULES $NESTED_OPTIONAL_MODULES
}

# stock_fresh DIR: DIR has the kernel and the modules of today's list.
stock_fresh() {
	[ -f "$1/vmlinuz" ] && [ "$(cat "$1/modules.list" 2>/dev/null)" = "$(stock_module_list)" ]
}

# stock_unpack DEB DIR: keep the image, config and our modules of DEB in DIR.
stock_unpack() {
	local deb=$1 dir=$2 tmp m f
	tmp=$(mktemp -d) || return 1
	if ! dpkg-deb -x "$deb" "$tmp"; then
		rm -rf "$tmp"
		return 1
	fi
	mkdir -p "$dir.tmp/modules"
	cp "$tmp"/boot/vmlinuz-* "$dir.tmp/vmlinuz" && cp "$tmp"/boot/config-* "$dir.tmp/config" || {
		rm -rf "$tmp" "$dir.tmp"
		return 1
	}
	for m in $NESTED_OUTER_MODULES $STOCK_GUEST_MODULES; do
		f=$(find "$tmp/lib/modules" -name "$m.ko" | head -n1)
		if [ -z "$f" ]; then
			nested_say "$deb has no module $m"
			rm -rf "$tmp" "$dir.tmp"
			return 1
		fi
		cp "$f" "$dir.tmp/modules/"
	done
	for m in $NESTED_OPTIONAL_MODULES; do
		f=$(find "$tmp/lib/modules" -name "$m.ko" | head -n1)
		[ -n "$f" ] && cp "$f" "$dir.tmp/modules/"
	done
	basename "$deb" >"$dir.tmp/package"
	stock_module_list >"$dir.tmp/modules.list"
	rm -rf "$tmp" "$dir"
	mv "$dir.tmp" "$dir"
}

# stock_kernel: STOCK_DIR, the unpacked current cloud kernel (vmlinuz,
# config, modules/, package), downloading it when the cache lacks it. Without
# the archive (no answer from apt) the newest cached kernel serves.
stock_kernel() {
	local pkg deb dl
	if [ -n "${KVMINI_STOCK_DEB:-}" ]; then
		STOCK_DIR=$NESTED_CACHE/debian-cloud/$(basename "$KVMINI_STOCK_DEB" .deb)
		stock_fresh "$STOCK_DIR" || stock_unpack "$KVMINI_STOCK_DEB" "$STOCK_DIR" || return 1
		return 0
	fi
	pkg=$(stock_package)
	if [ -z "$pkg" ]; then
		STOCK_DIR=$(ls -d "$NESTED_CACHE"/debian-cloud/*/ 2>/dev/null | sort -V | tail -n1)
		STOCK_DIR=${STOCK_DIR%/}
		[ -n "$STOCK_DIR" ] && nested_say "apt knows no cloud kernel; using the cached $STOCK_DIR" && return 0
		nested_say "apt-cache knows no linux-image-cloud-amd64 and nothing is cached"
		return 1
	fi
	STOCK_DIR=$NESTED_CACHE/debian-cloud/$pkg
	stock_fresh "$STOCK_DIR" && return 0
	mkdir -p "$NESTED_CACHE/debian-cloud" || return 1
	dl=$(mktemp -d) || return 1
	nested_say "downloading $pkg"
	# apt drops privileges to _apt for the download; a directory it may write.
	chmod 755 "$dl"
	chown _apt "$dl" 2>/dev/null
	if ! (cd "$dl" && apt-get download -q "$pkg" >download.log 2>&1); then
		nested_say "apt-get download $pkg failed: $(tail -n1 "$dl/download.log")"
		rm -rf "$dl"
		return 1
	fi
	deb=$(ls "$dl"/*.deb)
	stock_unpack "$deb" "$STOCK_DIR" || { rm -rf "$dl"; return 1; }
	rm -rf "$dl"
	nested_say "$pkg unpacked in $STOCK_DIR"
}

# busybox_tree DIR INIT: a busybox-static with its applets' links in DIR, and
# INIT as DIR/init. No other init: were /init to fail, the kernel must panic
# (and the VM end) rather than fall back to busybox's init and wait.
busybox_tree() {
	local dir=$1 applet
	mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin"
	cp /bin/busybox "$dir/bin/busybox"
	/bin/busybox --list-full | while read -r applet; do
		case $applet in bin/busybox | sbin/init | linuxrc) ;; *) ln -sf /bin/busybox "$dir/$applet" ;; esac
	done
	install -m 755 "$2" "$dir/init"
}

# cpio_of DIR OUT: DIR as a gzip'ed newc initramfs at OUT.
cpio_of() {
	# Named once here: in the pipeline's last part $BASHPID is a subshell's.
	local tmp="$2.tmp.$BASHPID"
	(cd "$1" && find . | cpio -o -H newc --quiet --owner 0:0) | gzip -1 >"$tmp" && mv "$tmp" "$2"
}

# initrd_programs NAME...: the host's programs NAME (scripts/setup.sh
# installs them) and the libraries ldd lists for them, the loader among
# them: one path a line; fails, saying which, when one is not installed.
initrd_programs() {
	local name path paths=()
	for name in "$@"; do
		path=$(command -v "$name") || { nested_say "$name is not installed (scripts/setup.sh)"; return 1; }
		paths+=("$path")
	done
	[ ${#paths[@]} -gt 0 ] || return 0
	printf '%s\n' "${paths[@]}"
	ldd "${paths[@]}" 2>/dev/null | grep -oE '/[^ :]+( |$)' | tr -d ' ' | sort -u
}

# busybox_initrd OUT INIT "MODULES" DIRS...: an initramfs at OUT (after
# stock_kernel): busybox, INIT as /init, the kernel's MODULES in /lib/modules
# with their load order in /lib/modules/order, empty DIRS, the host
# programs INITRD_PROGRAMS names (with their libraries, at their own
# paths) and the static programs INITRD_BINS lists (paths, put in /bin);
# rebuilt only when one of those changed (a key beside it).
busybox_initrd() {
	local out=$1 init=$2 modules=$3 key tmp m d f rc files
	shift 3
	files=$(initrd_programs ${INITRD_PROGRAMS:-}) || return 1
	key=$({
		cat "$STOCK_DIR/package" "$init"
		for f in /bin/busybox $files ${INITRD_BINS:-}; do sha256sum "$f"; done
		echo "$modules $*"
	} | sha256sum | cut -d' ' -f1)
	[ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ] && return 0
	tmp=$(mktemp -d) || return 1
	busybox_tree "$tmp" "$init"
	mkdir -p "$tmp/lib/modules"
	for d in "$@"; do mkdir -p "$tmp/$d"; done
	for m in $modules; do cp "$STOCK_DIR/modules/$m.ko" "$tmp/lib/modules/"; done
	echo $modules | tr ' ' '\n' >"$tmp/lib/modules/order"
	for f in $files; do
		mkdir -p "$tmp$(dirname "$f")" && cp -L "$f" "$tmp$f" || { rm -rf "$tmp"; return 1; }
	done
	for f in ${INITRD_BINS:-}; do install -m 755 "$f" "$tmp/bin/" || { rm -rf "$tmp"; return 1; }; done
	mkdir -p "$(dirname "$out")"
	cpio_of "$tmp" "$out" && echo "$key" >"$out.key"
	rc=$?
	rm -rf "$tmp"
	return $rc
}

# guest_tools DIR NAME...: the guest's own programs kvmini-NAME built in DIR
# from guest/NAME.c (static: the initramfs has no C library), when their
# source is newer: kvmini-vsock (busybox has no AF_VSOCK), kvmini-blkbench
# (bench/nested_blk.sh's 4 KiB I/O). Prints their paths.
guest_tools() {
	local dir=$1 name out
	shift
	mkdir -p "$dir" || return 1
	for name in "$@"; do
		out=$dir/kvmini-$name
		if [ ! -x "$out" ] || [ "guest/$name.c" -nt "$out" ]; then
			${CC:-cc} -std=gnu11 -Os -static -s -Wall -Wextra -Werror -o "$out.tmp" "guest/$name.c" &&
				mv "$out.tmp" "$out" || { nested_say "building $out failed"; return 1; }
		fi
		echo "$out"
	done
}

# stock_guest_initrd OUT: the initramfs of a stock-kernel guest: guest/init,
# which loads /lib/modules/order first, STOCK_GUEST_MODULES and the
# guest's own programs (guest_tools, built beside OUT).
stock_guest_initrd() {
	local bins
	bins=$(guest_tools "$(dirname "$1")" vsock) || return 1
	INITRD_BINS=$bins busybox_initrd "$1" guest/init "$STOCK_GUEST_MODULES" dev proc sys mnt tmp root etc run
}

# stock_guest_tools_initrd OUT: the same with the host's ethtool and iperf3
# (the stock-mq case of tests/kvm/acceptance.sh).
stock_guest_tools_initrd() {
	INITRD_PROGRAMS="ethtool iperf3" stock_guest_initrd "$1"
}

# outer_initrd OUT: the outer VM's initramfs: tests/nested/outer-init and
# NESTED_OUTER_MODULES.
outer_initrd() {
	busybox_initrd "$1" tests/nested/outer-init "$NESTED_OUTER_MODULES" dev proc sys host
}

# --- the nested benches (bench/nested_*.sh): NAME, KVMINI, LIMIT, VM_PID ------

# nested_bench_need_kvm [WHY]: SKIP (exit 0) without /dev/kvm or root, or
# on a kvm_pvm host, where Linux boots take minutes (and WHY).
nested_bench_need_kvm() {
	[ -e /dev/kvm ] || { echo "SKIP: $NAME: no /dev/kvm (tests/nested/run.sh runs it in a VM that has it)"; exit 0; }
	[ "$(id -u)" = 0 ] || { echo "SKIP: $NAME: needs root (as the other KVM benches)"; exit 0; }
	if [ -e /sys/module/kvm_pvm ]; then
		echo "SKIP: $NAME: kvm_pvm host (Linux boots take minutes${1:+, $1}): the nested platform runs it"
		exit 0
	fi
}

# nested_bench_ready VAR...: FAIL (exit 1) unless each VAR is a positive
# number, KVMINI is built and the stock kernel is at hand (STOCK_DIR).
nested_bench_ready() {
	local v
	for v in "$@"; do
		case ${!v} in '' | *[!0-9]* | 0) echo "FAIL: $NAME: $v=${!v} is not a positive number"; exit 1 ;; esac
	done
	[ -x "$KVMINI" ] || { echo "FAIL: $NAME: $KVMINI not built (make build/kvmini)"; exit 1; }
	stock_kernel >/dev/null 2>&1 || { echo "FAIL: $NAME: no Debian cloud kernel"; exit 1; }
}

# nested_bench_init_head: the start of a bench guest's /init (busybox_initrd's
# layout): the kernel's file systems mounted, its modules loaded in order.
nested_bench_init_head() {
	cat <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
INIT
}

# nested_bench_boot OUT ARGV...: one guest, ARGV ended after LIMIT s, its
# command in OUT.cmd, console in OUT.out, stderr in OUT.err; VM_PID while it
# runs (for cleanup's nested_bench_kill), then BOOTED "exit RC after N s".
nested_bench_boot() {
	local out=$1 t0 rc
	shift
	echo "$*" >"$out.cmd"
	t0=$(date +%s)
	timeout --foreground -k 5 "$LIMIT" "$@" </dev/null >"$out.out" 2>"$out.err" &
	VM_PID=$!
	wait "$VM_PID"
	rc=$?
	VM_PID=
	BOOTED="exit $rc after $(($(date +%s) - t0)) s"
}

# nested_bench_kill: end the guest still running (VM_PID), if one is.
nested_bench_kill() {
	[ -n "$VM_PID" ] && kill -TERM "$VM_PID" 2>/dev/null && sleep 1 && kill -KILL "$VM_PID" 2>/dev/null
	return 0
}
