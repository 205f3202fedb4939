# Sourced by tests/kvm/test_*.sh: the setup and helpers of the KVM suite
# (kvmini run on KVM with the project's freestanding test guest,
# tests/kvm/guest). Each test file prints one PASS:/FAIL: line per case,
# relays the guest's own PASS:/FAIL: lines, and ends with kvm_end, which
# exits with the number of failures (at most 100; 0 when all passed).
#
# Knobs: KVMINI (binary, default build/kvmini-san), KVM_TEST_TIMEOUT
# (seconds per run, default 60). tests/kvm/run_all.sh does the setup once
# and hands GUEST over in the environment; a test file run by itself does
# it here. Without /dev/kvm a test file prints nothing and exits 0
# (run_all.sh prints the one SKIP line).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

KVMINI=${KVMINI:-build/kvmini-san}
LIMIT=${KVM_TEST_TIMEOUT:-60}
LOGDIR=build/test-logs/kvm
FAILS=0

# kvm_setup: build kvmini and the test guest when needed; sets GUEST (the
# guest's ELF image). Prints a FAIL line and returns 1 when it cannot.
kvm_setup() {
	mkdir -p "$LOGDIR"
	if [ ! -x "$KVMINI" ]; then
		make -j2 "$KVMINI" >"$LOGDIR/build.log" 2>&1 ||
			{ echo "FAIL: kvm: building $KVMINI"; return 1; }
	fi
	if ! GUEST=$(tests/kvm/build_guest.sh 2>"$LOGDIR/guest-build.log"); then
		echo "FAIL: kvm: building the test guest (log $LOGDIR/guest-build.log)"
		return 1
	fi
}

[ -e /dev/kvm ] || exit 0
if [ -z "${GUEST:-}" ]; then
	kvm_setup || exit 1
fi
mkdir -p "$LOGDIR"

pass() { echo "PASS: kvm $1"; }
fail() { echo "FAIL: kvm $1"; FAILS=$((FAILS + 1)); }

# sanitizer_check NAME: a fail line when the last run's stderr ($ERR) has a
# sanitizer report.
sanitizer_check() {
	if grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' <<<"$ERR"; then
		fail "$1: sanitizer report (log $LOGDIR/$LAST.err)"
	fi
}

# relay_guest: the guest's PASS:/FAIL: lines from $OUT; a guest FAIL is a failure.
relay_guest() {
	grep -E '^(PASS|FAIL): ' <<<"$OUT" || true
	grep -q '^FAIL: ' <<<"$OUT" && FAILS=$((FAILS + 1))
	return 0
}

# Every kvmini here runs under `timeout --foreground`: a signal the test
# sends to timeout's pid then reaches kvmini alone. Without it timeout also
# sends it to its whole process group, where it can kill LeakSanitizer's
# tracer task while kvmini checks for leaks at exit: kvmini then spins in
# sched_yield until timeout's -k kills it (exit 137; seen about once in 15).
# run NAME INPUT -- ARGS...: run kvmini with INPUT on stdin; sets OUT (stdout),
# ERR (stderr), RC. The guest's PASS:/FAIL: lines are relayed (not with PROBE=1).
run() {
	local name=$1 input=$2
	LAST=$name
	shift 3
	printf '%s' "$input" | timeout --foreground -k 5 "$LIMIT" "$KVMINI" run "$@" \
		>"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err"
	RC=$?
	OUT=$(tr -d '\r' <"$LOGDIR/$name.out")
	ERR=$(cat "$LOGDIR/$name.err")
	[ -z "${PROBE:-}" ] && relay_guest
	sanitizer_check "$name"
}

# run_bg NAME ARGS...: start kvmini in the background (stdin from
# /dev/null), its output in the logs; sets VM (its pid). collect_bg then
# waits for it and sets RC, OUT and ERR as run does.
run_bg() {
	local name=$1
	LAST=$name
	shift
	timeout --foreground -k 5 "$LIMIT" "$KVMINI" run "$@" </dev/null \
		>"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err" &
	VM=$!
}

# kill_bg [PID]: end the background kvmini at once (SIGKILL, as a crash
# would) and reap it. PID is run_bg's (default VM): timeout's, which passes
# no SIGKILL on, so its child, kvmini itself, is the one killed.
kill_bg() {
	local pid=${1:-$VM}
	pkill -KILL -P "$pid"
	wait "$pid" 2>/dev/null
}

collect_bg() {
	wait "$VM"
	RC=$?
	OUT=$(tr -d '\r' <"$LOGDIR/$LAST.out")
	ERR=$(cat "$LOGDIR/$LAST.err")
	relay_guest
}

# wait_output PATTERN: until the background run's stdout has PATTERN (at
# most 15 s).
wait_output() {
	for _ in $(seq 150); do
		grep -q -- "$1" "$LOGDIR/$LAST.out" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# expect NAME STATUS PATTERN: the last run ended with STATUS and PATTERN
# (extended regex) is in its stdout or stderr.
expect() {
	local name=$1 status=$2 pattern=$3
	if [ "$RC" -eq "$status" ] && grep -qE -- "$pattern" <<<"$OUT$ERR"; then
		pass "$name"
	else
		fail "$name (exit $RC, wanted $status and /$pattern/; logs $LOGDIR/$LAST.{out,err})"
		tail -n 5 "$LOGDIR/$LAST.err" | sed 's/^/    /'
	fi
}

# guest NAME TEST INPUT [ARGS...]: the test guest running test=TEST.
guest() { run "$1" "${3:-}" -- --kernel "$GUEST" --cmdline "test=$2" "${@:4}"; }

# counter NAME: the value of counter NAME in the last run's --counters output.
counter() { grep -oE "^$1 [0-9]+" <<<"$ERR" | grep -oE '[0-9]+$'; }

# make_share: a temporary directory (SHARE) with hello.txt, removed at exit.
make_share() {
	SHARE=$(mktemp -d)
	trap 'rm -rf "$SHARE"' EXIT
	printf 'hello from the host, through virtio-fs\n' >"$SHARE/hello.txt"
}

# The control API over its unix socket, for the pause and snapshot tests.
# api_put SOCK PATH JSON: a PUT; sets CODE (the HTTP status) and BODY.
api_put() {
	local out
	out=$(curl -s -w '\n%{http_code}' --max-time 30 --unix-socket "$1" -X PUT \
		-H 'Content-Type: application/json' -d "$3" "http://k$2")
	CODE=$(tail -n 1 <<<"$out")
	BODY=$(sed '$d' <<<"$out")
}
# patch_vm SOCK STATE: PATCH /vm {"state": STATE}; prints the HTTP status.
patch_vm() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$1" \
		-X PATCH -H 'Content-Type: application/json' -d "{\"state\":\"$2\"}" http://k/vm
}
# snap_json TYPE STATE MEM: the body of PUT /snapshot/create.
snap_json() { echo "{\"snapshot_type\":\"$1\",\"snapshot_path\":\"$2\",\"mem_file_path\":\"$3\"}"; }

kvm_end() {
	exit $((FAILS > 100 ? 100 : FAILS))
}
