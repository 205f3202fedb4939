#!/bin/bash
# The jailer (build/jailer, kvmini under Firecracker's jailer's name) starts
# the test guest's VMM confined, and the host checks the confinement:
#   A: --new-pid-ns, --netns (made here), --cgroup (pids.max and memory.max
#      where the cgroup v2 hierarchy offers them, cgroup.max.descendants
#      always), --resource-limit no-file=1024, the API socket and the log
#      inside the chroot: the pid file names a live kvmini; /proc/PID/status
#      shows uid/gid 12345, no capabilities, NoNewPrivs 1, Seccomp 2;
#      its mnt, pid, ipc, uts and net namespaces are not the test's; its
#      cgroup and the values in it; its open-files limit; its root holds
#      the chroot's entries only; a drive at a host path outside the chroot
#      is refused, one inside accepted; the guest ticks; a second jail with
#      the same id is refused while it runs.
#   B: --daemonize (no new PID namespace) and --keep-cap CAP_NET_ADMIN: the
#      jailer returns, the VMM leads its own session, stdio on the chroot's
#      /dev/null, only CAP_NET_ADMIN left (ambient too).
#   C: neither: the jailer becomes the VMM (the pid file is its own pid),
#      the guest runs to its end, and the jailer's exit status is kvmini's.
#   D: the exec file build/firecracker: Firecracker's command line, given
#      --id by the jailer (GET / answers it).
#   Bad input: a missing --id, a bad id, a missing exec file, one that
#   cannot run, --cgroup-version 1, a cgroup value the kernel refuses
#   (nothing left).
# The jailed VMM is the release build (JAIL_VMM, default build/kvmini): the
# sanitizer runtime of build/kvmini-san reads /proc/self/maps, and the jail
# has no /proc. Needs root; without cgroup v2, a controller, ip or curl, the
# checks that need them are SKIPs saying why.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: kvm jail: needs root (mknod, namespaces, pivot_root, setresuid)"
	kvm_end
fi
VMM=${JAIL_VMM:-build/kvmini}
JAILER=build/jailer
if [ ! -x "$VMM" ] || [ ! -L "$JAILER" ]; then
	make -j2 "$VMM" "$JAILER" >"$LOGDIR/jail-build.log" 2>&1 ||
		{ fail "jail: building $VMM and $JAILER (log $LOGDIR/jail-build.log)"; kvm_end; }
fi
JUID=12345
BASE=$(mktemp -d /tmp/kvmini-jail.XXXXXX)
chmod 755 "$BASE"
TAG=kvj$$
PARENT=kvmini-test-$TAG
CG=
NETNS=
declare -a JAILERS=()

pid_of() { cat "$BASE/${2:-kvmini}/$1/root/${2:-kvmini}.pid" 2>/dev/null; }
cleanup() {
	local id p
	for id in "$TAG-a" "$TAG-b" "$TAG-c" "$TAG-d firecracker"; do
		p=$(pid_of $id)
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	for p in "${JAILERS[@]}"; do wait "$p" 2>/dev/null; done
	if [ -n "$CG" ]; then
		rmdir "$CG/$PARENT"/* 2>/dev/null
		rmdir "$CG/$PARENT" 2>/dev/null
		[ "$HUGE" = 1 ] && [ "$HUGE_WAS" = 0 ] && echo -hugetlb >"$CG/cgroup.subtree_control"
	fi
	[ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null
	rm -rf "$BASE"
}
trap cleanup EXIT

# The cgroup v2 mount, if any, and whether a cgroup can be made there.
CG=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-" && $(i + 1) == "cgroup2") { print $5; exit } }' \
	/proc/self/mountinfo)
if [ -z "$CG" ]; then
	CG_WHY="no cgroup v2 hierarchy is mounted"
elif ! mkdir "$CG/$PARENT" 2>/dev/null || ! rmdir "$CG/$PARENT"; then
	CG_WHY="the cgroup v2 hierarchy at $CG is not writable"
	CG=
fi
# pids and memory where the hierarchy offers them (a hybrid host keeps them in v1).
CTRL=$( [ -n "$CG" ] && cat "$CG/cgroup.controllers")
LIMITS=0
if [ -n "$CG" ] && grep -qw pids <<<"$CTRL" && grep -qw memory <<<"$CTRL"; then
	LIMITS=1
fi
# Without them, hugetlb (a hybrid host's v2 hierarchy may have it) still
# proves a controller enabled down the tree; the test puts the root's
# cgroup.subtree_control back as it was.
HUGE=0
if [ -n "$CG" ] && [ "$LIMITS" = 0 ] && grep -qw hugetlb <<<"$CTRL" &&
	[ -d /sys/kernel/mm/hugepages/hugepages-2048kB ]; then
	HUGE=1
	grep -qw hugetlb "$CG/cgroup.subtree_control" && HUGE_WAS=1 || HUGE_WAS=0
fi

# The test's network namespace.
if command -v ip >/dev/null && ip netns add "$TAG" 2>/dev/null; then
	NETNS=$TAG
fi

# chroot ID: the chroot of instance ID, made with the guest kernel in it.
chroot_of() { echo "$BASE/kvmini/$1/root"; }
seed() {
	mkdir -p "$(chroot_of "$1")" && cp "$GUEST" "$(chroot_of "$1")/guest.elf"
}
# jail ID ARGS... -- VMM ARGS: the jailer with the common flags.
jail() {
	local id=$1
	shift
	"$JAILER" --id "$id" --exec-file "$VMM" --uid "$JUID" --gid "$JUID" \
		--chroot-base-dir "$BASE" "$@"
}
# (Waits are generous: the nested platform's TCG is slow; each ends at success.)
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
	local n=$(($1 * 10))
	shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}
status_has() { grep -qE "$2" "/proc/$1/status" 2>/dev/null; }
field() { awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }

# --- bad input: refused, nothing made ------------------------------------------------
bad() { # bad NAME STATUS PATTERN ARGS...
	local name=$1 status=$2 pattern=$3 out rc
	shift 3
	out=$("$JAILER" "$@" 2>&1)
	rc=$?
	if [ "$rc" = "$status" ] && grep -qE -- "$pattern" <<<"$out"; then
		pass "jail: $name: exit $rc, \"$(head -n 1 <<<"$out")\""
	else
		fail "jail: $name: exit $rc (wanted $status), output: $out"
	fi
}
COMMON=(--uid "$JUID" --gid "$JUID" --chroot-base-dir "$BASE")
bad "a missing --id" 2 'missing: --id' --exec-file "$VMM" "${COMMON[@]}"
bad "a bad id" 2 '--id: "bad/id" is not an instance id' --id bad/id --exec-file "$VMM" "${COMMON[@]}"
bad "a missing exec file" 1 "--exec-file $BASE/no-vmm: No such file" \
	--id "$TAG-x" --exec-file "$BASE/no-vmm" "${COMMON[@]}"
bad "--cgroup-version 1" 2 'cgroup v1 is not supported' \
	--id "$TAG-x" --exec-file "$VMM" "${COMMON[@]}" --cgroup-version 1
TEXT=$(mktemp /tmp/kvmini-text-vmm.XXXXXX)
printf 'not a program\n' >"$TEXT" && chmod 755 "$TEXT"
bad "an exec file that cannot run, --new-pid-ns (the child's error through the pipe)" 1 \
	"jail: exec /${TEXT##*/} in the jail: Exec format error" \
	--id "$TAG-x" --exec-file "$TEXT" "${COMMON[@]}" --new-pid-ns -- run
rm -f "$TEXT"
[ ! -e "$BASE/no-vmm" ] && [ -z "$(ls -A "$BASE")" ] &&
	pass "jail: the refused starts left nothing under the chroot base" ||
	fail "jail: the refused starts left $(find "$BASE" | head)"
if [ -n "$CG" ]; then
	bad "a cgroup value the kernel refuses" 1 'cgroup.max.descendants=many: writing .*: Invalid argument' \
		--id "$TAG-x" --exec-file "$VMM" "${COMMON[@]}" --parent-cgroup "$PARENT" \
		--cgroup cgroup.max.descendants=many -- run --kernel /guest.elf
	[ ! -e "$CG/$PARENT" ] && [ -z "$(ls -A "$BASE")" ] &&
		pass "jail: the refused cgroup left no cgroup and no chroot" ||
		fail "jail: the refused cgroup left $(ls -d "$CG/$PARENT" 2>/dev/null) $(find "$BASE" | head)"
	if [ "$LIMITS" = 0 ]; then
		bad "pids.max where the v2 hierarchy has no pids controller" 1 'has no "pids" controller' \
			--id "$TAG-x" --exec-file "$VMM" "${COMMON[@]}" --parent-cgroup "$PARENT" \
			--cgroup pids.max=64 -- run --kernel /guest.elf
	fi
else
	echo "SKIP: kvm jail: cgroup checks: $CG_WHY"
fi

# --- A: the full jail, configured through the API inside the chroot --------------------
A=$TAG-a
RA=$(chroot_of "$A")
seed "$A"
truncate -s 64K "$RA/inside.img" "$BASE/outside.img"
# The jail's files are the jail's uid's, as Firecracker's users chown them.
chown "$JUID:$JUID" "$RA/inside.img" "$BASE/outside.img"
ARGS=(--new-pid-ns --resource-limit no-file=1024)
[ -n "$NETNS" ] && ARGS+=(--netns "/var/run/netns/$NETNS")
if [ -n "$CG" ]; then
	ARGS+=(--parent-cgroup "$PARENT" --cgroup cgroup.max.descendants=5)
	[ "$LIMITS" = 1 ] && ARGS+=(--cgroup pids.max=64 --cgroup memory.max=268435456)
	[ "$HUGE" = 1 ] && ARGS+=(--cgroup hugetlb.2MB.max=4194304)
fi
LAST=jail-a
timeout --foreground -k 5 $((LIMIT * 3)) "$JAILER" --id "$A" --exec-file "$VMM" --uid "$JUID" --gid "$JUID" \
	--chroot-base-dir "$BASE" "${ARGS[@]}" -- run --api-sock /api.sock --log-path /vmm.log \
	</dev/null >"$LOGDIR/jail-a.out" 2>"$LOGDIR/jail-a.err" &
JA=$!
JAILERS+=("$JA")
if ! wait_for 60 test -S "$RA/api.sock"; then
	fail "jail: A: no API socket at $RA/api.sock (logs $LOGDIR/jail-a.*)"
	sed 's/^/    /' "$LOGDIR/jail-a.err"
	kvm_end
fi
PA=$(pid_of "$A")
[ -n "$PA" ] && [ "$(readlink "/proc/$PA/exe" 2>/dev/null)" != "" ] &&
	grep -q kvmini "/proc/$PA/comm" && [ "$PA" != "$JA" ] &&
	pass "jail: A: $RA/kvmini.pid names a live kvmini ($PA), the jailer's child in its PID namespace" ||
	fail "jail: A: kvmini.pid says '$PA' (comm $(cat "/proc/$PA/comm" 2>/dev/null), jailer $JA)"

[ "$(field "$PA" Uid)" = "$JUID $JUID $JUID $JUID" ] && [ "$(field "$PA" Gid)" = "$JUID $JUID $JUID $JUID" ] &&
	[ -z "$(field "$PA" Groups)" ] &&
	pass "jail: A: uid and gid $JUID (real, effective, saved, fs), no supplementary groups" ||
	fail "jail: A: Uid '$(field "$PA" Uid)' Gid '$(field "$PA" Gid)' Groups '$(field "$PA" Groups)'"
caps="$(field "$PA" CapInh) $(field "$PA" CapPrm) $(field "$PA" CapEff) $(field "$PA" CapBnd) $(field "$PA" CapAmb)"
[ "$caps" = "$(printf '0000000000000000 %.0s' 1 2 3 4 5 | sed 's/ $//')" ] && [ "$(field "$PA" NoNewPrivs)" = 1 ] &&
	pass "jail: A: no capability in any set (bounding and ambient included), NoNewPrivs 1" ||
	fail "jail: A: CapInh/Prm/Eff/Bnd/Amb $caps, NoNewPrivs $(field "$PA" NoNewPrivs)"

nsdiff=
for ns in mnt pid ipc uts; do
	[ "$(readlink "/proc/$PA/ns/$ns")" != "$(readlink /proc/$$/ns/$ns)" ] || nsdiff+=" $ns"
done
[ -z "$nsdiff" ] && pass "jail: A: mnt, pid, ipc and uts namespaces are not the test's" ||
	fail "jail: A: shares the test's namespaces:$nsdiff"
if [ -n "$NETNS" ]; then
	[ "$(readlink "/proc/$PA/ns/net")" = "$(readlink /proc/self/ns/net)" ] &&
		fail "jail: A: --netns: still in the test's network namespace" ||
		{ [ "$(stat -L -c %i "/proc/$PA/ns/net")" = "$(stat -L -c %i "/var/run/netns/$NETNS")" ] &&
			pass "jail: A: in the network namespace of --netns /var/run/netns/$NETNS" ||
			fail "jail: A: its network namespace is not /var/run/netns/$NETNS's"; }
else
	echo "SKIP: kvm jail: --netns: ip netns add failed or ip is missing"
fi
grep -qE '^Max open files +1024 +1024 ' "/proc/$PA/limits" &&
	pass "jail: A: --resource-limit no-file=1024 is its open-files limit" ||
	fail "jail: A: limits: $(grep 'open files' "/proc/$PA/limits")"
inside=$(ls -A "/proc/$PA/root" 2>&1 | sort | tr '\n' ' ')
host=$(ls -A "$RA" | sort | tr '\n' ' ')
[ "$inside" = "$host" ] && grep -q 'kvmini ' <<<"$inside" && ! grep -qw -e etc -e proc -e tmp <<<"$inside" &&
	pass "jail: A: its root is the chroot: $inside" ||
	fail "jail: A: /proc/PID/root has '$inside', the chroot '$host'"

if [ -n "$CG" ]; then
	CGA=$CG/$PARENT/$A
	grep -qx "0::/$PARENT/$A" "/proc/$PA/cgroup" && [ "$(cat "$CGA/cgroup.max.descendants")" = 5 ] &&
		pass "jail: A: in cgroup /$PARENT/$A, cgroup.max.descendants 5" ||
		fail "jail: A: /proc/PID/cgroup '$(grep '^0::' "/proc/$PA/cgroup")', max.descendants '$(cat "$CGA/cgroup.max.descendants" 2>&1)'"
	if [ "$LIMITS" = 1 ]; then
		[ "$(cat "$CGA/pids.max")" = 64 ] && [ "$(cat "$CGA/memory.max")" = 268435456 ] &&
			pass "jail: A: pids.max 64 and memory.max 268435456 in its cgroup" ||
			fail "jail: A: pids.max '$(cat "$CGA/pids.max")' memory.max '$(cat "$CGA/memory.max")'"
	fi
	if [ "$HUGE" = 1 ]; then
		[ "$(cat "$CGA/hugetlb.2MB.max")" = 4194304 ] && grep -qw hugetlb "$CG/$PARENT/cgroup.subtree_control" &&
			grep -qw hugetlb "$CG/cgroup.subtree_control" &&
			pass "jail: A: hugetlb enabled from the mount down to /$PARENT, hugetlb.2MB.max 4194304 in its cgroup" ||
			fail "jail: A: hugetlb.2MB.max '$(cat "$CGA/hugetlb.2MB.max" 2>&1)', subtree_control '$(cat "$CG/$PARENT/cgroup.subtree_control")'"
	fi
	if [ "$LIMITS" = 0 ]; then
		echo "SKIP: kvm jail: pids.max, memory.max: the cgroup v2 hierarchy at $CG offers '$CTRL' (no pids and memory: a hybrid host keeps them in v1)"
	fi
fi

if command -v curl >/dev/null; then
	api=$RA/api.sock
	api_put "$api" /drives/out "{\"drive_id\":\"out\",\"path_on_host\":\"$BASE/outside.img\",\"is_root_device\":false}"
	[ "$CODE" = 400 ] && grep -q 'No such file' <<<"$BODY" &&
		pass "jail: A: a drive at $BASE/outside.img (on the host, outside the chroot) is refused: 400" ||
		fail "jail: A: the drive outside the chroot answered $CODE: $BODY"
	api_put "$api" /drives/in '{"drive_id":"in","path_on_host":"/inside.img","is_root_device":false}'
	c1=$CODE
	api_put "$api" /machine-config '{"vcpu_count":1,"mem_size_mib":64}'
	c1+=" $CODE"
	api_put "$api" /boot-source '{"kernel_image_path":"/guest.elf","boot_args":"test=ticks ticks=100000"}'
	c2=$CODE
	api_put "$api" /actions '{"action_type":"InstanceStart"}'
	[ "$c1 $c2 $CODE" = "204 204 204 204" ] &&
		pass "jail: A: /inside.img as a drive, 64 MiB, /guest.elf as the kernel (chroot paths), InstanceStart: 204 each" ||
		fail "jail: A: drive $c1, boot source $c2, InstanceStart $CODE: $BODY"
	wait_for 60 grep -q 'ticks: tick 3' "$LOGDIR/jail-a.out" &&
		pass "jail: A: the guest ticks (serial on the jailer's stdout)" ||
		fail "jail: A: no guest ticks in $LOGDIR/jail-a.out"
	wait_for 30 status_has "$PA" '^Seccomp:[[:space:]]+2$' &&
		pass "jail: A: Seccomp 2 (kvmini's own filters) once the VM runs" ||
		fail "jail: A: Seccomp '$(field "$PA" Seccomp)'"
	[ -s "$RA/vmm.log" ] && [ "$(stat -c %u "$RA/vmm.log")" = "$JUID" ] &&
		pass "jail: A: --log-path /vmm.log: $RA/vmm.log, made by uid $JUID" ||
		fail "jail: A: no log at $RA/vmm.log ($(ls -l "$RA" | tr '\n' ' '))"
else
	echo "SKIP: kvm jail: the API checks (a drive outside the root, the guest's start): curl is missing"
fi

# The same id while A runs: refused, A's files untouched.
bad "the id of a running jail" 1 "id \"$A\" is in use: .*kvmini.pid names pid $PA" \
	--id "$A" --exec-file "$VMM" "${COMMON[@]}" -- run --kernel /guest.elf
[ "$(pid_of "$A")" = "$PA" ] && [ -x "$RA/kvmini" ] && [ -c "$RA/dev/kvm" ] && kill -0 "$PA" &&
	pass "jail: A: the refused second start left A's pid file, exec file and nodes alone" ||
	fail "jail: A: after the second start: pid file '$(pid_of "$A")', $(ls -A "$RA" | tr '\n' ' ')"

kill -KILL "$PA"
wait "$JA"
rc=$?
[ "$rc" = 137 ] && pass "jail: A: killed by pid, the jailer that waited for it ends with 137" ||
	fail "jail: A: the jailer ended with $rc"
if [ -n "$CG" ]; then
	[ ! -e "$CG/$PARENT/$A" ] && pass "jail: A: the jailer removed the cgroup once the VMM ended" ||
		fail "jail: A: $CG/$PARENT/$A is still there"
fi

# --- B: daemonized, one capability kept ---------------------------------------------
B=$TAG-b
RB=$(chroot_of "$B")
seed "$B"
timeout -k 5 60 "$JAILER" --id "$B" --exec-file "$VMM" --uid "$JUID" --gid "$JUID" \
	--chroot-base-dir "$BASE" --daemonize --keep-cap CAP_NET_ADMIN -- \
	run --kernel /guest.elf --cmdline "test=ticks ticks=100000" >"$LOGDIR/jail-b.out" 2>&1
rc=$?
PB=$(pid_of "$B")
[ "$rc" = 0 ] && [ -n "$PB" ] && kill -0 "$PB" 2>/dev/null && grep -q kvmini "/proc/$PB/comm" &&
	pass "jail: B: --daemonize: the jailer returned 0, kvmini.pid names a live kvmini ($PB)" ||
	fail "jail: B: jailer exit $rc, pid file '$PB' ($(cat "$LOGDIR/jail-b.out"))"
sid=$(awk '{ print $6 }' "/proc/$PB/stat" 2>/dev/null)
[ "$sid" = "$PB" ] && [[ "$(readlink "/proc/$PB/fd/1")" == */dev/null ]] &&
	[[ "$(readlink "/proc/$PB/fd/2")" == */dev/null ]] &&
	pass "jail: B: leads its own session, stdout and stderr on the chroot's /dev/null" ||
	fail "jail: B: session $sid, fd 1 $(readlink "/proc/$PB/fd/1"), fd 2 $(readlink "/proc/$PB/fd/2")"
[ "$(readlink "/proc/$PB/ns/pid")" = "$(readlink /proc/$$/ns/pid)" ] &&
	[ "$(readlink "/proc/$PB/ns/mnt")" != "$(readlink /proc/$$/ns/mnt)" ] &&
	pass "jail: B: without --new-pid-ns its PID namespace is the host's (its mount namespace is not)" ||
	fail "jail: B: pid ns $(readlink "/proc/$PB/ns/pid"), mnt ns $(readlink "/proc/$PB/ns/mnt")"
caps="$(field "$PB" CapPrm) $(field "$PB" CapEff) $(field "$PB" CapBnd) $(field "$PB" CapAmb)"
[ "$caps" = "0000000000001000 0000000000001000 0000000000001000 0000000000001000" ] &&
	[ "$(field "$PB" NoNewPrivs)" = 1 ] && status_has "$PB" "^Uid:[[:space:]]+$JUID[[:space:]]" &&
	pass "jail: B: --keep-cap CAP_NET_ADMIN: only it in the permitted, effective, bounding and ambient sets" ||
	fail "jail: B: CapPrm/Eff/Bnd/Amb $caps NoNewPrivs $(field "$PB" NoNewPrivs)"
kill -KILL "$PB" 2>/dev/null
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for 10 gone "$PB" || fail "jail: B: $PB still alive 10 s after SIGKILL"

# --- C: in place: the jailer is the VMM -------------------------------------------------
C=$TAG-c
seed "$C"
LAST=jail-c
# exec: $! is the jailer itself (no timeout in between), bounded below.
(exec "$JAILER" --id "$C" --exec-file "$VMM" --uid "$JUID" --gid "$JUID" \
	--chroot-base-dir "$BASE" -- run --kernel /guest.elf --cmdline "test=ticks ticks=20" \
	</dev/null >"$LOGDIR/jail-c.out" 2>"$LOGDIR/jail-c.err") &
JC=$!
JAILERS+=("$JC")
wait_for "$LIMIT" [ ! -d "/proc/$JC" -o "$(awk '{ print $3 }' "/proc/$JC/stat" 2>/dev/null)" = Z ] ||
	kill -KILL "$JC"
wait "$JC"
rc=$?
[ "$rc" = 0 ] && grep -q 'ticks: done (0 failures)' "$LOGDIR/jail-c.out" && [ "$(pid_of "$C")" = "$JC" ] &&
	pass "jail: C: no fork: the pid file is the jailer's own pid, the guest ran to its end, exit 0" ||
	fail "jail: C: exit $rc, pid file '$(pid_of "$C")' (jailer $JC), logs $LOGDIR/jail-c.*"

# --- D: Firecracker's command line -----------------------------------------------------
D=$TAG-d
RD=$BASE/firecracker/$D/root
if command -v curl >/dev/null && [ -L build/firecracker ]; then
	timeout -k 5 60 "$JAILER" --id "$D" --exec-file build/firecracker --uid "$JUID" --gid "$JUID" \
		--chroot-base-dir "$BASE" --daemonize --new-pid-ns -- --api-sock /fc.sock \
		>"$LOGDIR/jail-d.out" 2>&1
	rc=$?
	PD=$(pid_of "$D" firecracker)
	wait_for 60 test -S "$RD/fc.sock"
	info=$(curl -s --max-time 10 --unix-socket "$RD/fc.sock" http://k/)
	[ "$rc" = 0 ] && [ -n "$PD" ] && grep -q "\"id\":\"$D\"" <<<"$info" &&
		pass "jail: D: /firecracker in $RD, given --id by the jailer: GET / says $info" ||
		fail "jail: D: jailer exit $rc, pid '$PD', GET / '$info' ($(cat "$LOGDIR/jail-d.out"))"
	[ -n "$PD" ] && kill -KILL "$PD" && { wait_for 10 gone "$PD" || fail "jail: D: $PD outlived SIGKILL"; }
else
	echo "SKIP: kvm jail: D (the firecracker exec file): needs curl and build/firecracker"
fi

kvm_end
