#!/bin/bash
# Build the UML guest root, then run every tests/uml/test_*.sh through
# tests/run_suite.sh (PASS:/FAIL: lines relayed; non-zero exit on failure).
#
# UML_TEST_TIMEOUT bounds each test (seconds, default 240).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

limit=${UML_TEST_TIMEOUT:-240}

if ! tests/uml/mkrootfs.sh >/dev/null; then
	echo "FAIL: uml: tests/uml/mkrootfs.sh"
	exit 1
fi

exec tests/run_suite.sh uml "$limit"
