# The UML test guest's helpers, sourced by every guest script (the first
# line guest_script in tests/uml/lib.sh writes). tests/uml/mkrootfs.sh puts
# this file at /lib/kvmini/guest.sh in the guest's root. It runs under
# busybox sh in the guest: /init has mounted the host's / read-only at /host
# and the test's own directory ($T_DIR on the host) at /t.
#
# Lines the host reads from the console: GUEST: (a note), GUEST-PASS:,
# GUEST-FAIL: (relayed as PASS:/FAIL:), GUEST-VAL: KEY VALUE (guest_val),
# GUEST-MARK: NAME (wait_mark).

FLAGS=/t/flags   # the host's $T_DIR/flags: host_flag NAME touches one
say() { echo "GUEST: $*"; }
gpass() { echo "GUEST-PASS: $*"; }
gfail() { echo "GUEST-FAIL: $*"; }
gval() { echo "GUEST-VAL: $1 $2"; }
gmark() { echo "GUEST-MARK: $1"; }
# gcheck NAME CMD...: GUEST-PASS when CMD succeeds; its output is shown.
gcheck() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		echo "$out" | sed 's/^/    /'
		gpass "$name"
	else
		echo "$out" | sed 's/^/    /'
		gfail "$name"
	fi
}
# The host's programs (iperf3, ip, ...) run chrooted in the host's tree;
# through the host's env, since busybox's chroot would prefer its own applets.
hostrun() { chroot /host /usr/bin/env "$@"; }
# wait_flag NAME SECS: wait for the host's `host_flag NAME`.
wait_flag() {
	local i=0
	while [ $i -lt $(($2 * 10)) ]; do
		ls "$FLAGS" 2>/dev/null | grep -qx "$1" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
# wait_link IFACE: wait until IFACE exists (the driver has probed).
wait_link() {
	local i=0
	while [ $i -lt 50 ]; do
		[ -e "/sys/class/net/$1" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
# link_up IFACE ADDR/PREFIX [DEST...]: wait for IFACE (when it does not come,
# GUEST-FAIL "IFACE appears" and the script ends), give it ADDR, bring it up
# and route each DEST over it.
link_up() {
	local ifc=$1 addr=$2 dest
	shift 2
	wait_link "$ifc" || { gfail "$ifc appears"; exit 1; }
	ip addr add "$addr" dev "$ifc" && ip link set "$ifc" up || return 1
	for dest in "$@"; do ip route add "$dest" dev "$ifc" || return 1; done
}
stat_of() { cat "/sys/class/net/$1/statistics/$2"; }
# giperf KEY SECS IPERF3-ARGS...: the host's iperf3 client, bounded; the
# receiver's Mbit/s -> gval KEY.
giperf() {
	local key=$1 secs=$2 out mbit
	shift 2
	if out=$(timeout $((secs + 15)) chroot /host /usr/bin/env iperf3 -f m -t "$secs" "$@" 2>&1); then
		mbit=$(echo "$out" | awk '/receiver$/ { v = $(NF - 2) } END { print v }')
		gval "$key" "${mbit:-0}"
		say "iperf3 $key: ${mbit:-?} Mbit/s"
		return 0
	fi
	echo "$out" | tail -n 5 | sed 's/^/    /'
	return 1
}
