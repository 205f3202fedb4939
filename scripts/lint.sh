#!/usr/bin/env bash
# Static checks over src/, one PASS:/FAIL:/SKIP: line each, the findings
# printed under a FAIL and kept in build/lint/:
#   clang-tidy   .clang-tidy's checks, with the Makefile's compile flags
#   cppcheck     warning, performance and portability classes
#   clocks       no time() or gettimeofday() (seccomp allows clock_gettime)
#   layers       scripts/check_layers.py (layer order, include cycles; symbol
#                edges too when build/obj holds the release objects)
# A missing tool is a SKIP with its reason (scripts/setup.sh installs them).
# Exits 1 when any check failed. LINT_JOBS (default 2) bounds the parallelism.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=build/lint
JOBS=${LINT_JOBS:-2}
mkdir -p "$OUT"
rc=0

# report NAME LOGFILE STATUS [DETAIL]: one line, and the findings on failure.
report() {
	local name=$1 log=$2 status=$3 detail=${4:-}
	local t=$(( $(date +%s) - T0 ))
	if [ "$status" -eq 0 ]; then
		echo "PASS: lint $name (${t} s)${detail:+: $detail}"
	else
		echo "FAIL: lint $name (${t} s): findings below, log $log"
		sed 's/^/    /' "$log" | head -n 200
		rc=1
	fi
}

find_tool() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 && { echo "$t"; return 0; }
	done
	return 1
}

mapfile -t SRCS < <(find src -name '*.c' | sort)

# clang-tidy: one process per file, JOBS at a time. The "N warnings
# generated" lines count warnings of disabled checks too: dropped. A finding
# is any warning or error line left, or a failed run.
T0=$(date +%s)
if TIDY=$(find_tool clang-tidy clang-tidy-14); then
	CFLAGS_LINT=$(make -s --no-print-directory print-cflags)
	export TIDY CFLAGS_LINT
	printf '%s\n' "${SRCS[@]}" |
		xargs -P"$JOBS" -I{} sh -c '"$TIDY" -quiet "$1" -- $CFLAGS_LINT 2>&1 ||
			echo "clang-tidy: $1 failed"' _ {} 2>&1 |
		grep -Ev '^[0-9]+ warnings? generated\.$' >"$OUT/clang-tidy.log"
	grep -Eq '(warning|error):|clang-tidy: .* failed' "$OUT/clang-tidy.log"
	report clang-tidy "$OUT/clang-tidy.log" $(( $? == 0 )) "${#SRCS[@]} files"
else
	echo "SKIP: lint clang-tidy (not installed: scripts/setup.sh installs clang-tidy)"
fi

# cppcheck: the Makefile's defines and include path; system headers are not
# given to it (it models libc itself), hence missingIncludeSystem.
# --inline-suppr honours "// cppcheck-suppress ID" comments, each with a reason.
T0=$(date +%s)
if CPPCHECK=$(find_tool cppcheck); then
	"$CPPCHECK" -q -j"$JOBS" --std=c11 -D_GNU_SOURCE -Isrc \
		--enable=warning,performance,portability --inline-suppr \
		--suppress=missingIncludeSystem --error-exitcode=1 \
		--template='{file}:{line}: {severity}: {message} [{id}]' \
		src >"$OUT/cppcheck.log" 2>&1
	report cppcheck "$OUT/cppcheck.log" $? "${#SRCS[@]} files"
else
	echo "SKIP: lint cppcheck (not installed: scripts/setup.sh installs cppcheck)"
fi

# clocks: time() and gettimeofday() become system calls where the vDSO
# falls back (an unstable TSC, as on the nested platform), and only
# clock_gettime is in the seccomp lists (core/seccomp_filter.c): a thread
# calling them there is killed. Comment lines are not code.
T0=$(date +%s)
grep -rnE '(^|[^_[:alnum:]])(gettimeofday|time)[[:space:]]*\(' src --include='*.[ch]' |
	grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*|//)' >"$OUT/clocks.log"
report clocks "$OUT/clocks.log" $(( $? == 0 )) "clock_gettime only"

T0=$(date +%s)
if PY=$(find_tool python3); then
	"$PY" scripts/check_layers.py >"$OUT/layers.log" 2>&1
	st=$?
	report layers "$OUT/layers.log" $st "$(tail -n 1 "$OUT/layers.log" | sed "s/^layers: //")"
else
	echo "SKIP: lint layers (python3 not installed)"
fi

exit $rc
