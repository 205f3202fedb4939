#!/bin/bash
# A small Linux guest for QEMU peer tests (sourced): Debian's cloud kernel,
# whose virtio drivers are modules, and an initramfs of busybox-static, those
# modules and a test's own /init. A guest driver that negotiates what iPXE
# does not (VIRTIO_NET_F_MQ: Linux's virtio_net enables one queue pair per
# CPU) puts the second queue pair through kvmini.
#
# The kernel package is fetched once with apt-get download (the ordinary
# client) into build/peer-guest/ and kept there; PEER_GUEST_DIR names a
# directory already holding vmlinuz and modules/*.ko instead.
#
# Under TCG the guest reaches /init in about 2 s and the whole run of a test
# takes under 10 s.

PEER_GUEST_DIR=${PEER_GUEST_DIR:-$UML_TOP/build/peer-guest}
# In load order: virtio_net needs the others.
PEER_GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	failover net_failover virtio_net"

# guest_have: the kernel and every module are in PEER_GUEST_DIR.
guest_have() {
	local m
	[ -f "$PEER_GUEST_DIR/vmlinuz" ] || return 1
	for m in $PEER_GUEST_MODULES; do
		[ -f "$PEER_GUEST_DIR/modules/$m.ko" ] || return 1
	done
}

# guest_fetch: download and unpack Debian's cloud kernel into PEER_GUEST_DIR
# (the version linux-image-cloud-amd64 depends on). Output in
# $T_DIR/guest-fetch.log. 0 or 1.
guest_fetch() {
	local pkg tmp m ko log=$T_DIR/guest-fetch.log
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>>"$log" |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1)
	[ -n "$pkg" ] || { echo "no linux-image-cloud-amd64 dependency" >>"$log"; return 1; }
	tmp=$(mktemp -d "$T_RUN/guest.XXXXXX")
	(cd "$tmp" && timeout 120 apt-get download "$pkg") >>"$log" 2>&1 || return 1
	dpkg-deb -x "$tmp"/*.deb "$tmp/x" >>"$log" 2>&1 || return 1
	mkdir -p "$PEER_GUEST_DIR/modules"
	cp "$tmp"/x/boot/vmlinuz-* "$PEER_GUEST_DIR/vmlinuz" || return 1
	for m in $PEER_GUEST_MODULES; do
		ko=$(find "$tmp/x/lib/modules" -name "$m.ko" | head -n 1)
		[ -n "$ko" ] || { echo "no $m.ko in $pkg" >>"$log"; return 1; }
		cp "$ko" "$PEER_GUEST_DIR/modules/"
	done
	rm -rf "$tmp"
	echo "$pkg" >"$PEER_GUEST_DIR/package"
}

# guest_prepare: the tools guest_initrd needs are installed and the kernel
# is there or fetched. 0 or 1 (why in $T_DIR/guest-fetch.log).
guest_prepare() {
	local t
	for t in busybox cpio gzip; do
		command -v $t >/dev/null ||
			{ echo "no $t" >>"$T_DIR/guest-fetch.log"; return 1; }
	done
	guest_have || { guest_fetch && guest_have; }
}

# guest_initrd OUT SCRIPT: an initramfs at OUT whose /init loads the virtio
# modules, then runs SCRIPT (busybox sh) with its output on the console,
# then powers off.
guest_initrd() {
	local root m
	root=$(mktemp -d "$T_RUN/initrd.XXXXXX")
	mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
	cp "$(command -v busybox)" "$root/bin/busybox"
	for m in $PEER_GUEST_MODULES; do
		cp "$PEER_GUEST_DIR/modules/$m.ko" "$root/lib/modules/"
	done
	# The initramfs has no /dev/console: the console is opened once
	# devtmpfs is there. The last sleep lets the UART drain before poweroff.
	cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
for m in $(echo $PEER_GUEST_MODULES); do
	insmod /lib/modules/\$m.ko || echo "GUEST: insmod \$m failed"
done
$2
sleep 1
poweroff -f
EOF
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$1"
}
