#!/bin/bash
# Run every tests/uml/test_*.sh one after the other, relaying their PASS:/FAIL:
# lines. A test that fails without saying FAIL gets a FAIL line here. Exit
# status: non-zero when anything failed.
#
# UML_TEST_TIMEOUT bounds each test (seconds, default 150).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

limit=${UML_TEST_TIMEOUT:-150}
logdir=build/test-logs/uml
mkdir -p "$logdir"
failed=0

if ! tests/uml/mkrootfs.sh >/dev/null; then
	echo "FAIL: uml: tests/uml/mkrootfs.sh"
	exit 1
fi

for t in tests/uml/test_*.sh; do
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
