#!/bin/bash
# Run every tests/peers/test_*.sh (kvmini's vhost-user net backend against
# real front-ends: QEMU, DPDK's virtio-user) one after the other, relaying
# their PASS:/FAIL: lines. A test that fails without saying FAIL gets a FAIL
# line here. Exit status: non-zero when anything failed.
#
# PEERS_TEST_TIMEOUT bounds each test (seconds, default 300); each test also
# has its own watchdog. KVMINI picks the binary (default build/kvmini-san,
# else build/kvmini).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

limit=${PEERS_TEST_TIMEOUT:-300}
logdir=build/test-logs/peers
mkdir -p "$logdir"
failed=0

for t in tests/peers/test_*.sh; do
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
