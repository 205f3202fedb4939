#!/bin/bash
# tests/run_suite.sh SUITE LIMIT: run every tests/SUITE/test_*.sh one after
# the other, each bounded by LIMIT seconds, relaying their PASS:/FAIL: lines
# (logs in build/test-logs/SUITE/). A test that fails without saying FAIL
# gets a FAIL line here. Exit status: non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

suite=$1
limit=$2
logdir=build/test-logs/$suite
mkdir -p "$logdir"
failed=0

for t in tests/"$suite"/test_*.sh; do
	name=$(basename "$t" .sh)
	log=$logdir/$name.out
	t0=$(date +%s)
	timeout -k 10 "$limit" bash "$t" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ]; then
		failed=$((failed + 1))
		grep -q '^FAIL: ' "$log" || echo "FAIL: $name (exit $rc, log $log)"
	fi
	echo "    $name: exit $rc in $(($(date +%s) - t0)) s"
done
[ "$failed" -eq 0 ]
