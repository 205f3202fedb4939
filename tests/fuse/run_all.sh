#!/bin/bash
# Build build/kvmini and the suites' helper, then run the /dev/fuse suites
# (tests/fuse/test_*.sh) through tests/run_suite.sh (PASS:/FAIL: lines
# relayed; non-zero exit on failure).
#
# FUSE_TEST_TIMEOUT bounds each suite (seconds, default 600).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

limit=${FUSE_TEST_TIMEOUT:-600}
logdir=build/test-logs/fuse
mkdir -p "$logdir" build/fuse-tests

if ! make -s build/kvmini fuse-tests >"$logdir/build.log" 2>&1; then
	echo "FAIL: fuse: building build/kvmini and build/fuse-tests (see $logdir/build.log)"
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

exec tests/run_suite.sh fuse "$limit"
