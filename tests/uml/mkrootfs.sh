#!/bin/bash
# Build the User-Mode Linux guest's root directory (a hostfs root) under
# build/uml-root: busybox-static with its applets, the UML kernel's modules
# and the guest's own scripts from tests/uml/guest/: an /init (guest/init)
# that mounts the basics, the host's own / read-only at /host, loads
# virtio_net, runs the script named by KVMINI_SCRIPT (a host path, so the
# guest reads it as /host$KVMINI_SCRIPT, or under /t) and powers off;
# udhcpc's hook; the helpers guest scripts source (guest/lib.sh).
#
# Usage: tests/uml/mkrootfs.sh [ROOTDIR]     (default build/uml-root)
# Rebuilds only when this script, tests/uml/guest/, busybox or the modules
# changed.
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
stamp=$( { cat "$0" "$here"/guest/* "$busybox"; stat -c '%n %s %Y' "$moddir"/*/modules.dep; } |
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

# The guest's own scripts, from tests/uml/guest/: PID 1, udhcpc's hook, and
# the helpers every guest script sources.
install -m 755 "$here/guest/init" "$tmp/init"
install -m 755 "$here/guest/udhcpc.script" "$tmp/etc/udhcpc/default.script"
install -D -m 644 "$here/guest/lib.sh" "$tmp/lib/kvmini/guest.sh"

echo "$stamp" >"$tmp/.stamp"
rm -rf "$root.old"
[ -e "$root" ] && mv "$root" "$root.old"
mv "$tmp" "$root"
trap - EXIT
rm -rf "$root.old"
echo "mkrootfs: built $root"
