#!/bin/bash
# Run the /dev/fuse suites (tests/fuse/test_*.sh) one after the other,
# relaying their PASS:/FAIL: lines. Builds build/kvmini and the suites'
# helper first. A suite that fails without saying FAIL gets a FAIL line
# here. Exit status: non-zero when anything failed.
#
# FUSE_TEST_TIMEOUT bounds each suite (seconds, default 600).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

limit=${FUSE_TEST_TIMEOUT:-600}
logdir=build/test-logs/fuse
mkdir -p "$logdir" build/fuse-tests
failed=0

if ! make -s build/kvmini >"$logdir/build.log" 2>&1; then
	echo "FAIL: fuse: building build/kvmini (see $logdir/build.log)"
	exit 1
fi
if ! ${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -o build/fuse-tests/fuse_helper \
	tests/fuse/fuse_helper.c >>"$logdir/build.log" 2>&1; then
	echo "FAIL: fuse: building tests/fuse/fuse_helper.c (see $logdir/build.log)"
	exit 1
fi
if [ ! -c /dev/fuse ]; then
	echo "FAIL: fuse: /dev/fuse is missing"
	exit 1
fi

for t in tests/fuse/test_*.sh; do
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
