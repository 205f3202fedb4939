#!/bin/bash
# POSIX conformance of kvmini's FUSE server against the host filesystem:
# build/fuse-tests/posix_suite (tests/fuse/posix_suite.c, its steps in
# posix_cases.h) runs in a plain host directory and in a fuse-mount of
# another one, and the two transcripts must match, category by category.
#
# Mounts: the default options, --cache none, --cache metadata, and the
# first two again with --dev-nodes. A category whose transcript is meant to differ is listed in
# EXPECTED below with why; there the mount must print exactly the committed
# transcript tests/fuse/posix_expected/CATEGORY.VARIANT, so a change either
# way shows. Nothing else may differ.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

SUITE=$F_TOP/build/fuse-tests/posix_suite
EXPECT_DIR=$F_TOP/tests/fuse/posix_expected

f_begin posix 300
[ -x "$SUITE" ] || { fail "$SUITE not built (make fuse-tests)"; f_end; }

# Differences that are known, per mount variant: "CATEGORY VARIANT why".
# VARIANT names the expected transcript (tests/fuse/posix_expected/) and where it applies: "all" every
# mount, "nodev" mounts without --dev-nodes, "cached" mounts without
# --cache none, "nocache" those with it.
EXPECTED=(
	"devices nodev block and character devices are refused without --dev-nodes (README: device nodes)"
)

# applies VARIANT DEVNODES NOCACHE: whether a variant is this mount's.
applies() {
	case $1 in
	all) return 0 ;;
	nodev) [ "$2" = 0 ] ;;
	cached) [ "$3" = 0 ] ;;
	nocache) [ "$3" = 1 ] ;;
	*) return 1 ;;
	esac
}

# expected_for CATEGORY DEVNODES NOCACHE: the variant expected, or nothing.
expected_for() {
	local e c v
	for e in "${EXPECTED[@]}"; do
		read -r c v _ <<<"$e"
		if [ "$c" = "$1" ] && applies "$v" "$2" "$3"; then
			echo "$v"
			return
		fi
	done
}

reason_for() {
	local e c v why
	for e in "${EXPECTED[@]}"; do
		read -r c v why <<<"$e"
		[ "$c $v" = "$1 $2" ] && { echo "$why"; return; }
	done
}

# part FILE CATEGORY: that category's lines of a transcript.
part() {
	awk -v c="$2/" '/^[^ ]/ { on = index($0, c) == 1 } on' "$1"
}

categories() {
	awk -F/ '/^[^ ]/ { if (!seen[$1]++) print $1 }' "$1"
}

# compare TAG REF OUT DEVNODES NOCACHE: one result per category.
compare() {
	local tag=$1 ref=$2 out=$3 devnodes=$4 nocache=$5 cat v want
	for cat in $(categories "$ref"); do
		v=$(expected_for "$cat" "$devnodes" "$nocache")
		want=$F_RUN/want.$tag.$cat
		if [ -n "$v" ]; then
			cp "$EXPECT_DIR/$cat.$v" "$want"
		else
			part "$ref" "$cat" >"$want"
		fi
		part "$out" "$cat" >"$F_RUN/got.$tag.$cat"
		local n
		n=$(grep -c '^[^ ]' "$want")
		if diff -u "$want" "$F_RUN/got.$tag.$cat" >"$F_RUN/diff.$tag.$cat"; then
			if [ -n "$v" ]; then
				pass "[$tag] $cat: $n steps, the expected difference ($(reason_for "$cat" "$v"))"
			else
				pass "[$tag] $cat: $n steps as on the host"
			fi
		else
			fail "[$tag] $cat differs from ${v:+the expected }${v:-the host directory}"
			head -n 40 "$F_RUN/diff.$tag.$cat" | sed 's/^/    | /'
		fi
	done
}

# The reference, twice: the suite itself must print the same both times.
REF=$F_RUN/ref
mkdir -p "$REF" "$REF-again"
if ! "$SUITE" "$REF" >"$F_RUN/ref.out" 2>"$F_RUN/ref.err" ||
	! "$SUITE" "$REF-again" >"$F_RUN/ref-again.out" 2>>"$F_RUN/ref.err"; then
	fail "posix_suite on the host directory: $(head -n 3 "$F_RUN/ref.err")"
	f_end
fi
if diff -u "$F_RUN/ref.out" "$F_RUN/ref-again.out" >"$F_RUN/ref.diff"; then
	pass "the suite is deterministic: $(grep -c '^[^ ]' "$F_RUN/ref.out") steps in $(categories "$F_RUN/ref.out" | wc -l) categories, the same twice on the host"
else
	fail "the suite printed different transcripts on two host directories"
	head -n 20 "$F_RUN/ref.diff" | sed 's/^/    | /'
fi

# run_on TAG DEVNODES NOCACHE OPTIONS...: the suite on a fresh fuse-mount.
run_on() {
	local tag=$1 devnodes=$2 nocache=$3 share=$F_RUN/share-$1 mnt=$F_RUN/mnt-$1
	shift 3
	if ! f_mount "$share" "$mnt" "$@"; then
		fail "[$tag] mount $*"
		return
	fi
	chmod 755 "$share"
	if ! "$SUITE" "$mnt" >"$F_RUN/out.$tag" 2>"$F_RUN/err.$tag"; then
		fail "[$tag] posix_suite on the mount: $(head -n 3 "$F_RUN/err.$tag")"
	fi
	compare "$tag" "$F_RUN/ref.out" "$F_RUN/out.$tag" "$devnodes" "$nocache"
	f_unmount "$mnt" "$F_PID" || fail "[$tag] umount: kvmini did not exit 0"
}

run_on default 0 0
run_on nocache 0 1 --cache none
run_on metadata 0 0 --cache metadata
run_on devnodes 1 0 --dev-nodes
run_on devnodes-nocache 1 1 --dev-nodes --cache none
f_end
