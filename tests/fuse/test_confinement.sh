#!/bin/bash
# Confinement of kvmini's passthrough backend, seen through a /dev/fuse
# mount the way a guest sees a virtio-fs share.
#
# The attacking processes chroot into the mount point first, so that, as in
# a guest, paths and symlink targets resolve inside the share: anything they
# reach outside it can only come from the server. Outside the share sits a
# canary file (and a directory holding one); an escape is reading the
# canary's text or creating a file outside the share. Attempts and escapes
# are counted; escapes must be 0.
#
# Attacks: ".." at the root; absolute and relative symlinks pointing out
# (placed by the host, and made through the mount); /proc/self links; hard
# links through the mount to links pointing out, and from outside the share
# into the mount; renames of such links; a host-side loop swapping a
# directory for a symlink to the outside while readers open files through
# it (run with --cache none so each open reaches the server).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

f_begin confinement 300
SHARE=$F_RUN/share
MNT=$F_RUN/mnt
OUT=$F_RUN/outside
CANARY="canary-$RANDOM-$RANDOM-outside-the-share"
RACE_SECONDS=${RACE_SECONDS:-8}

mkdir -p "$SHARE/sub" "$OUT" "$MNT"
echo "$CANARY" >"$OUT/canary"
echo "$CANARY" >"$OUT/f"
echo "$CANARY" >"$F_RUN/canary"
echo inside >"$SHARE/inside"
# Links the host placed in the share, pointing out of it.
ln -s "$OUT/canary" "$SHARE/abs-file"
ln -s "$OUT" "$SHARE/abs-dir"
ln -s ../outside/canary "$SHARE/rel-file"
ln -s ../outside "$SHARE/rel-dir"
ln -s ../../outside/canary "$SHARE/sub/rel-up"
ln -s ../../outside "$SHARE/sub/rel-up-dir"
ln -s /proc/self/cwd "$SHARE/proc-cwd"
ln -s /proc/self/root/$OUT/canary "$SHARE/proc-root-out"
ln -s /proc/self/fd/3 "$SHARE/proc-fd3"
ln -s /proc/self/fd/3/.. "$SHARE/proc-fd-up"
ln -s loop "$SHARE/loop"
ln -s . "$SHARE/self"
ln "$SHARE/abs-file" "$SHARE/hl-abs"
# The race: swap is a directory or a symlink out, flipped by the host.
mkdir "$SHARE/swap" "$SHARE/swap-real"
echo inside >"$SHARE/swap/f"
echo inside >"$SHARE/swap-real/f"
ln -s "$OUT" "$SHARE/swap-link"
# What lies outside the share: the targets of the links, and the share's
# parent (logs of this run excepted).
outside_state() {
	{ find "$OUT" -printf '%p %s\n'; find "$F_RUN" -maxdepth 1 ! -name '*.log' ! -name '*.err' -printf '%p\n'; } | sort
}
before=$(outside_state)

if ! f_mount "$SHARE" "$MNT" --cache none --threads 4; then
	fail "mount"
	f_end
fi

total_attempts=0
total_escapes=0

# tally NAME OUTPUT: add "attempts N escapes M" to the totals, one line each.
tally() {
	local name=$1 a e
	read -r _ a _ e <<<"$2"
	if [ -z "${a:-}" ] || [ -z "${e:-}" ]; then
		fail "$name: no result ($2)"
		return
	fi
	total_attempts=$((total_attempts + a))
	total_escapes=$((total_escapes + e))
	if [ "$e" -eq 0 ]; then
		pass "$name: $a attempts, 0 escapes"
	else
		fail "$name: $a attempts, $e ESCAPES"
	fi
}

tally "chrooted attacks (.., symlinks out, /proc links, hard links, renames)" \
	"$("$HELPER" attack "$MNT" "$CANARY" 2>"$F_RUN/attack.err" | tail -1)"
grep ESCAPE "$F_RUN/attack.err" | sed 's/^/    | /'

tally "symlink swap raced against opens for ${RACE_SECONDS}s" \
	"$("$HELPER" race "$SHARE" "$MNT" "$RACE_SECONDS" "$CANARY" 2>"$F_RUN/race.err" | tail -1)"
grep ESCAPE "$F_RUN/race.err" | sort | uniq -c | sed 's/^/    | /'

# Hard links from outside the share into the mount: different mounts.
a=0 e=0
for src in "$OUT/canary" "$F_RUN/canary"; do
	a=$((a + 1))
	if ln "$src" "$MNT/hl-in-$a" 2>/dev/null; then
		e=$((e + 1))
	fi
done
tally "hard links from outside the share into the mount" "attempts $a escapes $e"

# Nothing appeared outside the share.
after=$(outside_state)
total_attempts=$((total_attempts + 1))
if [ "$before" = "$after" ]; then
	pass "no file was created outside the share"
else
	total_escapes=$((total_escapes + 1))
	fail "files appeared outside the share"
	diff <(echo "$before") <(echo "$after") | sed 's/^/    | /'
fi
# And the canary is untouched.
total_attempts=$((total_attempts + 1))
if [ "$(cat "$OUT/canary")" = "$CANARY" ]; then
	pass "canary unchanged"
else
	total_escapes=$((total_escapes + 1))
	fail "canary modified"
fi

note "confinement: $total_attempts attempts, $total_escapes escapes"
if f_unmount "$MNT" "$F_PID"; then
	pass "server still healthy after the attacks, unmounted cleanly"
else
	fail "server did not exit 0 after the attacks"
fi
f_end
