#!/usr/bin/env bash
# Build and run every kvmini test, layer by layer:
#   0. lint: clang-tidy, cppcheck and the layer check over src/ (scripts/lint.sh)
#   1. unit tests under ASan + UBSan
#   2. fuzzing: each target replays its committed corpus (tests/fuzz/corpus),
#      then runs for FUZZ_BUDGET seconds (default 270) shared evenly by the
#      targets, or FUZZ_SECONDS each when set
#   3. in-process benchmark smoke run
#   4. host-kernel FUSE client against kvmini's FUSE server (/dev/fuse)
#   5. User-Mode Linux integration tests (real Linux virtio drivers)
#   6. other real vhost-user frontends (QEMU, DPDK virtio-user)
#   7. KVM: kvmini run with the project's own small guests
#   8. KVM acceptance: Linux guests (the project's and Debian's stock cloud
#      kernel) with virtio-net and virtio-fs (builds the project's kernel
#      first with scripts/build-guest.sh, cached outside the checkout)
#   9. KVM benchmark smoke run: boot_vs_qemu beside QEMU's microvm
# The KVM layers run where /dev/kvm exists, and on the nested platform
# (tests/nested/run.sh: an outer VM under QEMU's TCG that has /dev/kvm) on
# every machine; KVMINI_NESTED=0 leaves the nested runs out where /dev/kvm
# exists (without it they are the only way, and always run).
# Prints the time each layer took and ends with "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

# The fuzz layer stays within about 5 minutes however many targets exist.
FUZZ_BUDGET=${FUZZ_BUDGET:-270}
fuzz_targets=$(find tests/fuzz -maxdepth 1 -name '*.c' | wc -l)
FUZZ_SECONDS=${FUZZ_SECONDS:-$((FUZZ_BUDGET / (fuzz_targets > 0 ? fuzz_targets : 1)))}
LOGDIR=build/test-logs
passed=0
failed=0
skipped=0

# Run a command, relay its output, and count its PASS:/FAIL:/SKIP: lines. A
# command that fails without printing a FAIL line counts as one failure itself.
run_counted() {
	local name=$1; shift
	"$@" >"$LOGDIR/$name.log" 2>&1
	count_log "$name" $?
}

# count_log NAME STATUS: relay and count the case lines of $LOGDIR/NAME.log,
# which a command ending with STATUS wrote.
count_log() {
	local name=$1 rc=$2
	local log="$LOGDIR/$name.log"
	# The nested platform's restarts are shown: they explain a layer's time.
	grep -E '^(PASS|FAIL|SKIP): |^nested: (VOID|running the job again)' "$log" || true
	local p f
	p=$(grep -c '^PASS: ' "$log")
	f=$(grep -c '^FAIL: ' "$log")
	skipped=$((skipped + $(grep -c '^SKIP: ' "$log")))
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

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

layer_start build
mkdir -p "$LOGDIR"
if ! make -j"$(nproc)" all build/kvmini-san unit fuzz bench >"$LOGDIR/build.log" 2>&1; then
	tail -n 40 "$LOGDIR/build.log"
	echo "FAIL: build"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
layer_end

# Lint prints its findings under each FAIL line, so its whole output is shown
# (three lines when clean) rather than only the verdicts run_counted relays.
layer_start "lint (clang-tidy, cppcheck, layer check)"
scripts/lint.sh >"$LOGDIR/lint.log" 2>&1
lint_rc=$?
cat "$LOGDIR/lint.log"
lint_failed=$(grep -c '^FAIL: ' "$LOGDIR/lint.log")
if [ "$lint_rc" -ne 0 ] && [ "$lint_failed" -eq 0 ]; then
	echo "FAIL: lint (exit $lint_rc, log $LOGDIR/lint.log)"
	lint_failed=1
fi
passed=$((passed + $(grep -c '^PASS: ' "$LOGDIR/lint.log")))
failed=$((failed + lint_failed))
skipped=$((skipped + $(grep -c '^SKIP: ' "$LOGDIR/lint.log")))
layer_end

layer_start "unit tests (ASan + UBSan)"
# Debian's cloud kernel, fetched once and cached outside the checkout: the
# decompressor's test unpacks it here, the nested layers boot it later. A
# fresh machine would otherwise reach this layer before the nested one has
# fetched it, and that test would skip.
if ! (. tests/nested/lib.sh && stock_kernel) >"$LOGDIR/stock-kernel.log" 2>&1; then
	echo "note: Debian's cloud kernel could not be fetched (log $LOGDIR/stock-kernel.log);" \
		"the tests that need it say so"
fi
for t in build/tests/*; do
	[ -x "$t" ] && run_counted "unit-$(basename "$t")" "$t"
done
for t in tests/unit/*.sh; do
	[ -e "$t" ] && run_counted "unit-$(basename "$t" .sh)" bash "$t"
done
layer_end

# Each target: first its committed corpus (tests/fuzz/corpus/<name>, written
# by tests/fuzz/make_seeds.py and kept regression inputs) replayed once, then
# fuzzing for FUZZ_SECONDS. libFuzzer writes new inputs only into its first
# corpus directory, the scratch one under build/; the committed corpus comes
# second and is only read (checked: a run that changes it fails).
corpus_sum() { find "$1" -type f -exec md5sum {} + 2>/dev/null | sort | md5sum; }
layer_start "fuzzing (${FUZZ_SECONDS} s per target)"
for f in build/fuzz/*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	corpus=build/fuzz-corpus/$name
	mkdir -p "$corpus"
	seeds=()
	[ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
	mkdir -p build/fuzz-artifacts
	if [ ${#seeds[@]} -gt 0 ] && ! "$f" -runs=0 -rss_limit_mb=2048 \
		-artifact_prefix=build/fuzz-artifacts/"$name"- \
		"${seeds[@]}" >"$LOGDIR/fuzz-$name-replay.log" 2>&1; then
		echo "FAIL: fuzz $name (corpus replay, log $LOGDIR/fuzz-$name-replay.log)"
		grep -m5 -E 'ERROR|SUMMARY|Running: ' "$LOGDIR/fuzz-$name-replay.log" | sed 's/^/    /'
		failed=$((failed + 1))
		continue
	fi
	sum_before=$(corpus_sum "tests/fuzz/corpus/$name")
	if "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix=build/fuzz-artifacts/"$name"- \
		"$corpus" "${seeds[@]}" >"$LOGDIR/fuzz-$name.log" 2>&1 &&
		[ "$(corpus_sum "tests/fuzz/corpus/$name")" = "$sum_before" ]; then
		echo "PASS: fuzz $name ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$LOGDIR/fuzz-$name.log" | grep -o '[0-9]*$') runs)"
		passed=$((passed + 1))
	else
		echo "FAIL: fuzz $name (log $LOGDIR/fuzz-$name.log)"
		[ "$(corpus_sum "tests/fuzz/corpus/$name")" = "$sum_before" ] ||
			echo "    the run changed tests/fuzz/corpus/$name"
		grep -m5 -E 'ERROR|SUMMARY' "$LOGDIR/fuzz-$name.log" | sed 's/^/    /'
		failed=$((failed + 1))
	fi
done
layer_end

# Benchmark smoke runs are no test assertions: a run that completes is a
# BENCH: line, counted apart; one that breaks is a failure.
benches=0
layer_start "benchmark smoke run"
for b in build/bench/*; do
	[ -x "$b" ] || continue
	# boot_vs_qemu needs KVM: the KVM benchmark layer runs it (bench/kvm_smoke.sh).
	[ "$(basename "$b")" = boot_vs_qemu ] && continue
	if "$b" --quick >"$LOGDIR/bench-$(basename "$b").log" 2>&1; then
		if grep '^SKIP: ' "$LOGDIR/bench-$(basename "$b").log"; then
			skipped=$((skipped + 1))
			continue
		fi
		sed 's/^/    /' "$LOGDIR/bench-$(basename "$b").log"
		echo "BENCH: $(basename "$b") ran"
		benches=$((benches + 1))
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
# nested LIMIT COMMAND...: COMMAND inside the nested platform's outer VM, its
# case lines marked [nested] (so a case run both here and there is two cases).
# What an attempt printed before the outer VM stopped ("nested: VOID:",
# tests/nested/run.sh runs the job again) is shown but not counted.
nested() {
	local limit=$1 out rc; shift
	out=$(mktemp)
	tests/nested/run.sh --timeout "$limit" -- "$@" >"$out" 2>&1
	rc=$?
	awk 'NR == FNR { if (/^nested: VOID:/) last = FNR; next }
	     FNR < last && /^(PASS|FAIL|SKIP|NOT RUN): / { print "  void: " $0; next }
	     { print }' "$out" "$out" |
		sed 's/^\(PASS\|FAIL\|SKIP\|NOT RUN\): /\1: [nested] /'
	rm -f "$out"
	return "$rc"
}

# kvm_layer TITLE NAME COMMAND...: a KVM layer run here, where /dev/kvm exists.
kvm_layer() {
	local title=$1 name=$2; shift 2
	layer_start "$title"
	run_counted "$name" "$@"
	layer_end
}

# nested_side_by_side TITLE NAME SCRIPT...: each SCRIPT (triples) in its own
# outer VM, all at the same time (each outer VM has one vCPU; the machine has
# two cores). Then, for each, the time it took and its counted case lines.
nested_side_by_side() {
	local pids=() names=() titles=() i
	while [ $# -ge 3 ]; do
		titles+=("$1"); names+=("$2")
		rm -f "$LOGDIR/nested-$2.status"    # one of an earlier run is no verdict
		(
			t0=$(date +%s)
			nested 900 bash "$3" >"$LOGDIR/nested-$2.log" 2>&1
			echo "$? $(($(date +%s) - t0))" >"$LOGDIR/nested-$2.status"
		) &
		pids+=($!)
		shift 3
	done
	wait "${pids[@]}"
	for i in "${!names[@]}"; do
		local rc=1 secs=?
		read -r rc secs <"$LOGDIR/nested-${names[$i]}.status"
		echo "=== ${titles[$i]}, nested (tests/nested/run.sh) took $secs s"
		count_log "nested-${names[$i]}" "$rc"
	done
}

# The outer VM's initramfs and the stock guests' (cached by content), made
# here once: two outer VMs starting side by side would each make them.
nested_prepare() {
	(
		. tests/nested/lib.sh
		stock_kernel && outer_initrd build/nested/outer-initrd.gz &&
			stock_guest_initrd build/stock-guest/initramfs.gz &&
			stock_guest_tools_initrd build/stock-guest/tools-initramfs.gz
	) >"$LOGDIR/nested-prepare.log" 2>&1 && return 0
	echo "FAIL: nested: preparing the outer VM and the stock guests (log $LOGDIR/nested-prepare.log)"
	tail -n 5 "$LOGDIR/nested-prepare.log" | sed 's/^/    /'
	failed=$((failed + 1))
}

# Built here, before the nested runs: the outer VM sees this checkout but
# should not spend its emulated time compiling.
layer_start "KVM guests (test guests, the project's Linux guest, Debian's cloud kernel)"
if ! tests/kvm/build_guest.sh >"$LOGDIR/kvm-guest-build.log" 2>&1; then
	echo "FAIL: building the KVM test guests (log $LOGDIR/kvm-guest-build.log)"
	failed=$((failed + 1))
fi
if ! scripts/build-guest.sh >"$LOGDIR/build-guest.log" 2>&1; then
	echo "FAIL: scripts/build-guest.sh (log $LOGDIR/build-guest.log)"
	tail -n 5 "$LOGDIR/build-guest.log" | sed 's/^/    /'
	failed=$((failed + 1))
fi
layer_end

KVM_TITLE="KVM (kvmini run with the project's small guests)"
ACCEPT_TITLE="KVM acceptance (Linux guests: ping and a share over virtio)"
BENCH_TITLE="KVM benchmark smoke run (kvmini run beside QEMU microvm)"
if [ -e /dev/kvm ]; then
	kvm_layer "$KVM_TITLE" kvm bash tests/kvm/run_all.sh
	kvm_layer "$ACCEPT_TITLE" kvm-acceptance bash tests/kvm/acceptance.sh
	kvm_layer "$BENCH_TITLE" kvm-bench bash bench/kvm_smoke.sh
fi
# The nested part: the KVM suite and the acceptance test side by side, then
# the benchmark smoke run alone (its figures want the machine to itself).
if [ ! -e /dev/kvm ] || [ "${KVMINI_NESTED:-1}" != 0 ]; then
	layer_start "KVM on the nested platform (tests/nested/run.sh)"
	NESTED_T0=$LAYER_T0
	nested_prepare
	nested_side_by_side "$KVM_TITLE" kvm tests/kvm/run_all.sh \
		"$ACCEPT_TITLE" kvm-acceptance tests/kvm/acceptance.sh
	layer_start "$BENCH_TITLE, nested (tests/nested/run.sh)"
	run_counted nested-kvm-bench nested 900 bash bench/kvm_smoke.sh
	layer_end
	echo "=== KVM on the nested platform, all of it, took $(($(date +%s) - NESTED_T0)) s"
fi
for log in "$LOGDIR"/kvm-bench.log "$LOGDIR"/nested-kvm-bench.log; do
	[ -f "$log" ] && grep -vE '^(PASS|FAIL|SKIP): ' "$log" | sed 's/^/    /'
done

benches=$((benches + $(cat "$LOGDIR"/*kvm-bench.log 2>/dev/null | grep -c '^BENCH: ')))
echo "benchmark smoke runs (not counted as tests): $benches ran"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
