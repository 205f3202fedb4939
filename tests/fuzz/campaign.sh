#!/usr/bin/env bash
# A longer fuzzing campaign, outside CI's budget (scripts/test.sh keeps its
# short runs): every fuzzer in build/fuzz (or those named) until it reached
# a number of executions or a time, whichever comes first (the confinement
# issue's: 10 million or 30 minutes, the defaults), started from a copy of
# its committed corpus, then a table of executions, exec/s, seconds,
# coverage and crashes. --results FILE appends each fuzzer's line, with the
# date and the commit, as it finishes: a campaign cut short keeps what it
# did, and the next one may start at the fuzzers it did not reach.
#
#   tests/fuzz/campaign.sh [--seconds N] [--runs N] [--results FILE] [--keep] [FUZZER...]
#
# The committed corpus is never a fuzzer's first argument (libFuzzer writes
# new inputs into that one): each fuzzer works in a copy under a temporary
# directory, removed at the end unless --keep. Crash inputs are kept in
# build/fuzz-campaign/. Exit status 1 when any fuzzer crashed.
set -u
cd "$(dirname "$0")/../.." || exit 2

seconds=1800 runs=10000000 keep=0 results= names=()
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) seconds=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--results) results=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	-*) echo "campaign: unknown option $1" >&2; exit 2 ;;
	*) names+=("$1"); shift ;;
	esac
done
if [ ${#names[@]} -eq 0 ]; then
	for f in build/fuzz/*; do [ -x "$f" ] && names+=("$(basename "$f")"); done
fi
[ ${#names[@]} -gt 0 ] || { echo "campaign: no fuzzers in build/fuzz (make fuzz)" >&2; exit 2; }

work=$(mktemp -d /tmp/kvmini-fuzz-campaign.XXXXXX)
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
artifacts=build/fuzz-campaign
mkdir -p "$artifacts"
limit=(-runs="$runs" -max_total_time="$seconds")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

# final_stat LOG NAME - libFuzzer's -print_final_stats value NAME.
final_stat() { grep -m1 -o "stat::$2: *[0-9]*" "$1" | grep -o '[0-9]*$'; }

# last_cov LOG - "cov ft" from libFuzzer's last status line.
last_cov() { grep -oE 'cov: [0-9]+ ft: [0-9]+' "$1" | tail -1 | awk '{ print $2, $4 }'; }

printf '%-22s %12s %10s %8s %8s %8s %8s\n' fuzzer executions exec/s seconds cov ft crashes
crashed=0
for name in "${names[@]}"; do
	f=build/fuzz/$name
	[ -x "$f" ] || { echo "campaign: no $f" >&2; crashed=1; continue; }
	mkdir -p "$work/$name"
	[ -d "tests/fuzz/corpus/$name" ] && cp -a "tests/fuzz/corpus/$name/." "$work/$name/"
	before=$(find "$artifacts" -name "$name-*" -type f | wc -l)
	start=$(date +%s)
	nice "$f" "${limit[@]}" -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$artifacts/$name-" "$work/$name" >"$work/$name.log" 2>&1
	status=$?
	took=$(($(date +%s) - start))
	crashes=$(($(find "$artifacts" -name "$name-*" -type f | wc -l) - before))
	[ "$status" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1
	[ "$crashes" -gt 0 ] && crashed=1 && cp "$work/$name.log" "$artifacts/$name.log"
	read -r cov ft <<<"$(last_cov "$work/$name.log")"
	line=$(printf '%-22s %12s %10s %8s %8s %8s %8s' "$name" \
		"$(final_stat "$work/$name.log" number_of_executed_units)" \
		"$(final_stat "$work/$name.log" average_exec_per_sec)" "$took" "${cov:-?}" "${ft:-?}" \
		"$crashes")
	echo "$line"
	[ -n "$results" ] && echo "$(date -u +%F) $commit $line" >>"$results"
done
[ "$keep" = 1 ] && echo "campaign: corpora and logs kept in $work"
exit "$crashed"
