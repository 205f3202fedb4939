#!/bin/bash
# Build the User-Mode Linux guest's root directory (a hostfs root) under
# build/uml-root: busybox-static with its applets, the UML kernel's modules,
# and an /init that mounts the basics, the host's own / read-only at /host,
# loads virtio_net, runs the script named by KVMINI_SCRIPT (a host path, so
# the guest reads it as /host$KVMINI_SCRIPT) and powers off.
#
# Usage: tests/uml/mkrootfs.sh [ROOTDIR]     (default build/uml-root)
# Rebuilds only when this script, busybox or the modules changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
root=${1:-$top/build/uml-root}
busybox=${BUSYBOX:-/bin/busybox}
moddir=/usr/lib/uml/modules

die() { echo "mkrootfs: $*" >&2; exit 1; }

[ -x "$busybox" ] || die "no $busybox (apt-get install busybox-static)"
ldd "$busybox" >/dev/null 2>&1 &&
	die "$busybox is not static (apt-get install busybox-static)"
[ -d "$moddir" ] || die "no $moddir (apt-get install user-mode-linux)"

# Tests may start together: one builds, the others wait and find it fresh.
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock -w 120 9 || die "timed out waiting for $root.lock"

# Stamp: what the tree was built from; equal stamp means nothing to do.
stamp=$( { cat "$0" "$busybox"; stat -c '%n %s %Y' "$moddir"/*/modules.dep; } |
	sha256sum | cut -d' ' -f1)
if [ -f "$root/.stamp" ] && [ "$(cat "$root/.stamp")" = "$stamp" ]; then
	exit 0
fi

# Build beside the target and swap it in, so a guest never boots from half
# a tree.
tmp=$(mktemp -d "$root.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc/udhcpc,etc,proc,sys,dev,tmp,run,host,lib/modules,root,var/run,t}
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list-full); do
	[ -e "$tmp/$applet" ] || ln -s /bin/busybox "$tmp/$applet"
done

# Hard links cost nothing when build/ and /usr share a filesystem.
for kdir in "$moddir"/*; do
	cp -al "$kdir" "$tmp/lib/modules/" 2>/dev/null || cp -a "$kdir" "$tmp/lib/modules/"
done

# hostfs=ROOTDIR prefixes every hostfs mount with ROOTDIR, so the host's /
# is reached through a link the host resolves: ROOTDIR/.hostroot -> /.
ln -s / "$tmp/.hostroot"

echo "root:x:0:0:root:/root:/bin/sh" >"$tmp/etc/passwd"
echo "root:x:0:" >"$tmp/etc/group"
printf '127.0.0.1 localhost\n' >"$tmp/etc/hosts"
echo uml >"$tmp/etc/hostname"

cat >"$tmp/init" <<'EOF'
#!/bin/sh
# PID 1 of the kvmini UML test guest (written by tests/uml/mkrootfs.sh).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=64m tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t hostfs -o ro,.hostroot none /host
# The guest's own proc/sys/dev/tmp inside the host tree, so that
# `chroot /host PROGRAM` runs the host's programs as guest processes.
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t tmpfs -o size=64m tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
hostname uml
ip link set lo up
modprobe virtio_net 2>/dev/null
echo "GUEST-BOOTED: $(cut -d' ' -f1 /proc/uptime)"
rc=127
# The test's own directory (script, flags) at a fixed place, /t: a mount of
# its own, so it stays visible wherever the checkout lives (also under the
# host's /tmp, which the guest's tmpfs above hides).
script=/host$KVMINI_SCRIPT
if [ -n "$KVMINI_TEST_DIR" ] && mount -t hostfs -o "ro,.hostroot$KVMINI_TEST_DIR" none /t; then
	case $KVMINI_SCRIPT in
	"$KVMINI_TEST_DIR"/*) script=/t/${KVMINI_SCRIPT#"$KVMINI_TEST_DIR"/} ;;
	esac
fi
if [ -n "$KVMINI_SCRIPT" ] && [ -f "$script" ]; then
	sh "$script"
	rc=$?
else
	echo "GUEST: no script (KVMINI_SCRIPT='$KVMINI_SCRIPT')"
fi
echo "GUEST-EXIT: $rc"
sync
poweroff -f
EOF
chmod 755 "$tmp/init"

# udhcpc's hook: configure the lease with ip(8) and report it on the console.
cat >"$tmp/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
	echo "GUEST-LEASE: ip=$ip mask=$mask router=$router dns=$dns"
	;;
esac
exit 0
EOF
chmod 755 "$tmp/etc/udhcpc/default.script"

echo "$stamp" >"$tmp/.stamp"
rm -rf "$root.old"
[ -e "$root" ] && mv "$root" "$root.old"
mv "$tmp" "$root"
trap - EXIT
rm -rf "$root.old"
echo "mkrootfs: built $root"
