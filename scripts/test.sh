#!/usr/bin/env bash
# Build and run every kvmini test, layer by layer:
#   1. unit tests under ASan + UBSan
#   2. short libFuzzer runs: FUZZ_BUDGET seconds (default 270) shared evenly
#      by the targets, or FUZZ_SECONDS each when set
#   3. in-process benchmark smoke run
#   4. host-kernel FUSE client against kvmini's FUSE server (/dev/fuse)
#   5. User-Mode Linux integration tests (real Linux virtio drivers)
#   6. other real vhost-user frontends (QEMU, DPDK virtio-user)
#   7. KVM: kvmini run with the project's own small guests
#   8. KVM acceptance: the project's Linux guest with virtio-net and virtio-fs
#      (builds it first with scripts/build-guest.sh; minutes where guest
#      kernel code is emulated)
# Prints the time each layer took and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

# The fuzz layer stays within about 5 minutes however many targets exist.
FUZZ_BUDGET=${FUZZ_BUDGET:-270}
fuzz_targets=$(find tests/fuzz -maxdepth 1 -name '*.c' | wc -l)
FUZZ_SECONDS=${FUZZ_SECONDS:-$((FUZZ_BUDGET / (fuzz_targets > 0 ? fuzz_targets : 1)))}
LOGDIR=build/test-logs
passed=0
failed=0

# Run a command, relay its output, and count its PASS:/FAIL: lines. A command
# that fails without printing a FAIL line counts as one failure itself.
run_counted() {
	local name=$1; shift
	local log="$LOGDIR/$name.log"
	"$@" >"$log" 2>&1
	local rc=$?
	grep -E '^(PASS|FAIL): ' "$log" || true
	local p f
	p=$(grep -c '^PASS: ' "$log")
	f=$(grep -c '^FAIL: ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $name (exit $rc, log $log)"
		tail -n 30 "$log" | sed 's/^/    /'
		f=1
	elif [ "$f" -ne 0 ]; then
		echo "  ($name: see $log)"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

layer_start() {
	LAYER_NAME=$1
	LAYER_T0=$(date +%s)
	echo "=== $LAYER_NAME"
}

layer_end() {
	echo "=== $LAYER_NAME took $(( $(date +%s) - LAYER_T0 )) s"
}

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

layer_start build
mkdir -p "$LOGDIR"
if ! make -j"$(nproc)" all build/kvmini-san unit fuzz bench >"$LOGDIR/build.log" 2>&1; then
	tail -n 40 "$LOGDIR/build.log"
	echo "FAIL: build"
	echo "0 passed, 1 failed"
	exit 1
fi
layer_end

layer_start "unit tests (ASan + UBSan)"
for t in build/tests/*; do
	[ -x "$t" ] && run_counted "unit-$(basename "$t")" "$t"
done
for t in tests/unit/*.sh; do
	[ -e "$t" ] && run_counted "unit-$(basename "$t" .sh)" bash "$t"
done
layer_end

layer_start "fuzzing (${FUZZ_SECONDS} s per target)"
for f in build/fuzz/*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	corpus=build/fuzz-corpus/$name
	mkdir -p "$corpus"
	seeds=()
	[ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
	mkdir -p build/fuzz-artifacts
	if "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix=build/fuzz-artifacts/"$name"- \
		"$corpus" "${seeds[@]}" >"$LOGDIR/fuzz-$name.log" 2>&1; then
		echo "PASS: fuzz $name ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$LOGDIR/fuzz-$name.log" | grep -o '[0-9]*$') runs)"
		passed=$((passed + 1))
	else
		echo "FAIL: fuzz $name (log $LOGDIR/fuzz-$name.log)"
		grep -m5 -E 'ERROR|SUMMARY' "$LOGDIR/fuzz-$name.log" | sed 's/^/    /'
		failed=$((failed + 1))
	fi
done
layer_end

layer_start "benchmark smoke run"
for b in build/bench/*; do
	[ -x "$b" ] || continue
	if "$b" --quick >"$LOGDIR/bench-$(basename "$b").log" 2>&1; then
		sed 's/^/    /' "$LOGDIR/bench-$(basename "$b").log"
		echo "PASS: bench $(basename "$b") runs"
		passed=$((passed + 1))
	else
		echo "FAIL: bench $(basename "$b")"
		tail -n 20 "$LOGDIR/bench-$(basename "$b").log"
		failed=$((failed + 1))
	fi
done
layer_end

# run_layer TITLE NAME SCRIPT: one integration layer, when the tree has it.
run_layer() {
	[ -f "$3" ] || return 0
	layer_start "$1"
	run_counted "$2" bash "$3"
	layer_end
}

run_layer "FUSE (host kernel client on /dev/fuse)" fuse tests/fuse/run_all.sh
run_layer "UML integration (real Linux virtio drivers over vhost-user)" uml tests/uml/run_all.sh
run_layer "other vhost-user frontends (QEMU, DPDK)" peers tests/peers/run_all.sh
run_layer "KVM (kvmini run with the project's small guests)" kvm tests/kvm/run_all.sh
run_layer "KVM acceptance (the project's Linux guest: ping and a share over virtio)" \
	kvm-acceptance tests/kvm/acceptance.sh

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
