#!/bin/bash
# Run every tests/peers/test_*.sh (kvmini's vhost-user net and blk backends against
# real front-ends: QEMU, DPDK's virtio-user) through tests/run_suite.sh
# (PASS:/FAIL: lines relayed; non-zero exit on failure).
#
# PEERS_TEST_TIMEOUT bounds each test (seconds, default 300); each test also
# has its own watchdog. KVMINI picks the binary (default build/kvmini-san,
# else build/kvmini).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

limit=${PEERS_TEST_TIMEOUT:-300}

exec tests/run_suite.sh peers "$limit"
