# Shared helpers for the /dev/fuse suites: results, a run directory, mounts
# of `kvmini fuse-mount`, and one EXIT trap that unmounts and ends, by PID,
# everything started here. Source it, then call f_begin NAME LIMIT first.
#
# Environment: KVMINI (binary to test, default build/kvmini),
# FUSE_KEEP=1 keeps the run directory for a look afterwards.

F_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KVMINI=${KVMINI:-$F_TOP/build/kvmini}
HELPER=$F_TOP/build/fuse-tests/fuse_helper

F_PASSES=0
F_FAILS=0
F_SKIPS=0
F_MOUNTS=()
F_PIDS=()
F_WATCHDOG=

pass() {
	echo "PASS: $F_NAME: $*"
	F_PASSES=$((F_PASSES + 1))
}

fail() {
	echo "FAIL: $F_NAME: $*"
	F_FAILS=$((F_FAILS + 1))
}

# skip WHY: a case that could not be judged in this run (not a pass).
skip() {
	echo "SKIP: $F_NAME: $*"
	F_SKIPS=$((F_SKIPS + 1))
}

note() { echo "    $*"; }

# f_begin NAME LIMIT: run directory, cleanup trap, and a watchdog that ends
# this script after LIMIT seconds (the trap still unmounts).
f_begin() {
	F_NAME=$1
	local limit=${2:-300}
	[ "$(id -u)" -eq 0 ] || { echo "FAIL: $F_NAME: needs root (mount, chroot, chown)"; exit 1; }
	[ -x "$KVMINI" ] || { echo "FAIL: $F_NAME: $KVMINI not built"; exit 1; }
	[ -x "$HELPER" ] || { echo "FAIL: $F_NAME: $HELPER not built"; exit 1; }
	F_RUN=$(mktemp -d "/tmp/kvmini-fuse-$F_NAME.XXXXXX")
	# Other uids (setpriv) must reach the mounts below.
	chmod 755 "$F_RUN"
	trap f_cleanup EXIT
	trap 'echo "FAIL: $F_NAME: interrupted"; exit 130' INT TERM
	# The watchdog's sleep must not hold this script's stdout open after
	# the script is done (a pipe reader would wait for it).
	(
		sleep "$limit" >/dev/null 2>&1 &
		sp=$!
		trap 'kill $sp 2>/dev/null; exit 0' TERM
		wait "$sp"
		echo "FAIL: $F_NAME: watchdog after $limit s"
		kill -TERM $$
	) &
	F_WATCHDOG=$!
}

f_is_mounted() {
	awk -v m="$1" '$2 == m && $3 == "fuse.kvmini" { found = 1 } END { exit !found }' /proc/self/mounts
}

# f_mount SHARE MNT [OPTIONS...]: start kvmini fuse-mount in the background
# and wait until the mount is there. Sets F_PID. Log in MNT.log.
f_mount() {
	local share=$1 mnt=$2
	shift 2
	mkdir -p "$share" "$mnt"
	"$KVMINI" fuse-mount "$share" "$mnt" "$@" >"$mnt.log" 2>&1 &
	F_PID=$!
	F_PIDS+=("$F_PID")
	F_MOUNTS+=("$mnt")
	for _ in $(seq 100); do
		f_is_mounted "$mnt" && return 0
		kill -0 "$F_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "    kvmini fuse-mount did not mount $mnt:"
	sed 's/^/    | /' "$mnt.log"
	return 1
}

# f_unmount MNT PID: unmount and check that kvmini exits 0 by itself.
f_unmount() {
	local mnt=$1 pid=$2 rc
	umount "$mnt" 2>/dev/null || umount -l "$mnt"
	# 15 s: a kvmini that has written its counters can take over 5 s to be
	# reaped with two fuzzers busy on both cores; one stuck stays stuck.
	for _ in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "    kvmini (PID $pid) still running 15 s after the unmount of $mnt:"
		kill -TERM "$pid"
		wait "$pid" 2>/dev/null
		tail -n 5 "$mnt.log" | sed 's/^/    | /'
		return 1
	fi
	wait "$pid"
	rc=$?
	if [ "$rc" != 0 ]; then
		echo "    kvmini (PID $pid) exited $rc after the unmount of $mnt:"
		tail -n 5 "$mnt.log" | sed 's/^/    | /'
	fi
	return "$rc"
}

f_cleanup() {
	local m p
	for m in "${F_MOUNTS[@]}"; do
		f_is_mounted "$m" && umount -l "$m" 2>/dev/null
	done
	for p in "${F_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${F_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	[ -n "$F_WATCHDOG" ] && kill "$F_WATCHDOG" 2>/dev/null
	# Never delete through a mount that is still there.
	if [ -n "${F_RUN:-}" ] && ! grep -q " $F_RUN/" /proc/self/mounts && [ "${FUSE_KEEP:-0}" != 1 ]; then
		rm -rf "$F_RUN"
	fi
	echo "    $F_NAME: $F_PASSES passed, $F_FAILS failed, $F_SKIPS skipped"
}

# f_end: exit status of the suite.
f_end() {
	[ "$F_FAILS" -eq 0 ]
	exit $?
}

# tree_state DIR: what a directory holds, one line per entry (type, mode,
# owner, link count, size of files, link targets) and one per file content
# checksum (for files over 16 MiB, of their first and last MiB: the large
# ones here are sparse), sorted.
tree_state() {
	(cd "$1" && {
		find . -mindepth 1 ! -type l -printf '%p %y %m %U:%G %n\n'
		find . -mindepth 1 -type f -printf '%p size %s\n'
		find . -mindepth 1 -type l -printf '%p %y %U:%G %n -> %l\n'
		find . -mindepth 1 -type f -size -16M -print0 | xargs -0 -r md5sum |
			awk '{ print $2, "md5", substr($1, 1, 12) }'
		find . -mindepth 1 -type f -size +16M -print0 |
			while IFS= read -r -d '' f; do
				echo "$f ends $({ head -c 1048576 "$f"; tail -c 1048576 "$f"; } | md5sum | cut -c1-12)"
			done
	} | LC_ALL=C sort)
}
