# Shared helpers for kvmini's User-Mode Linux tests, benchmark and demo.
# Source it, then call t_begin NAME LIMIT_SECONDS first.
#
# The shape of every test:
#   host: network namespace(s) and taps made here, kvmini serving a vhost-user
#         socket, then a UML guest (virtio_uml.device=SOCKET:1) that runs a
#         script written by guest_script and powers off;
#   guest: prints GUEST-PASS:/GUEST-FAIL:/GUEST-VAL:/GUEST-MARK: lines on its
#         console, which the host relays as PASS:/FAIL: lines and reads values from;
#   cleanup: one EXIT trap ends every process started here by PID and deletes
#         every namespace made here; logs stay in build/test-logs/uml/NAME.ID/
#         (NAME is a link to the latest run).
#
# Environment knobs: KVMINI (binary to test), UML_KERNEL, UML_MEM.

UML_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
UML_KERNEL=${UML_KERNEL:-/usr/bin/linux.uml}
UML_MEM=${UML_MEM:-256M}
UML_ROOT=$UML_TOP/build/uml-root
UML_SHIM=$UML_TOP/build/uml/uml-xstate-shim.so
T_LOG_BASE=$UML_TOP/build/test-logs/uml

T_FAILS=0
T_PASSES=0
T_SKIPS=0
T_PIDS=()
T_NETNS=()
T_WATCHDOG=

# ---------------------------------------------------------------- results

# pass NAME: one PASS line, counted.
pass() {
	echo "PASS: $T_NAME: $*"
	T_PASSES=$((T_PASSES + 1))
}

# fail NAME [WHY]: one FAIL line, counted.
fail() {
	echo "FAIL: $T_NAME: $*"
	T_FAILS=$((T_FAILS + 1))
}

# skip WHY: one SKIP line (a case that could not run, and why), counted
# apart: a skip is never a pass.
skip() {
	echo "SKIP: $T_NAME: $*"
	T_SKIPS=$((T_SKIPS + 1))
}

# check NAME CMD...: PASS when CMD succeeds, FAIL (with CMD's last words)
# otherwise; CMD's output goes to $T_DIR/commands.log.
check() {
	local name=$1
	shift
	echo "+ $*" >>"$T_DIR/commands.log"
	if "$@" >>"$T_DIR/commands.log" 2>&1; then
		pass "$name"
	else
		fail "$name"
		tail -n 5 "$T_DIR/commands.log" | sed 's/^/    | /'
	fi
}

note() { echo "    $*"; }

# ---------------------------------------------------------------- lifetime

# t_begin NAME LIMIT: set up logs, the run directory, the cleanup trap and a
# watchdog that ends the whole test after LIMIT seconds.
t_begin() {
	T_NAME=$1
	T_LIMIT=${2:-120}
	[ "$(id -u)" -eq 0 ] || { echo "FAIL: $T_NAME: needs root (netns, tap)"; exit 1; }
	# Short and unique: interface names have 15 characters at most.
	T_ID=$(printf '%04x%01x' $(( ($$ ^ RANDOM) & 0xffff )) $(( RANDOM & 0xf )))
	# One directory per run (runs may overlap); NAME links to the latest, and
	# runs older than a day are pruned.
	T_DIR=$T_LOG_BASE/$T_NAME.$T_ID
	mkdir -p "$T_DIR/flags"
	find "$T_LOG_BASE" -maxdepth 1 -name "$T_NAME.*" -type d -mmin +1440 \
		-exec rm -rf {} + 2>/dev/null
	[ -L "$T_LOG_BASE/$T_NAME" ] || rm -rf "${T_LOG_BASE:?}/$T_NAME"
	ln -sfn "$T_NAME.$T_ID" "$T_LOG_BASE/$T_NAME"
	# Sockets live under /tmp: sun_path holds 108 bytes, the tree may be deep.
	T_RUN=$(mktemp -d "/tmp/kvmini-uml-$T_ID.XXXXXX")
	trap t_cleanup EXIT
	trap 'echo "FAIL: $T_NAME: interrupted"; exit 130' INT
	# Bash runs this once the foreground command returns: every step is bounded.
	trap 'echo "FAIL: $T_NAME: terminated (time limit $T_LIMIT s?)"; exit 124' TERM
	# The watchdog ends its own sleep when cleanup ends it.
	(
		sleep "$T_LIMIT" &
		s=$!
		trap 'kill $s 2>/dev/null; exit 0' TERM
		wait $s && kill -TERM $$ 2>/dev/null
	) &
	T_WATCHDOG=$!
	T_T0=$(date +%s.%N)
}

# t_end: exit 0 when nothing failed and something passed.
t_end() {
	local took
	took=$(awk -v a="$T_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	local skips=
	[ "$T_SKIPS" -gt 0 ] && skips=", $T_SKIPS skipped"
	note "$T_NAME: $T_PASSES passed, $T_FAILS failed$skips in ${took} s (logs: ${T_DIR#"$UML_TOP"/})"
	[ "$T_FAILS" -eq 0 ] && [ "$T_PASSES" -gt 0 ]
	exit $?
}

# t_track PID: end PID at cleanup.
t_track() { T_PIDS+=("$1"); }

# t_stop PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 5).
t_stop() {
	local pid=$1 secs=${2:-5} i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
}

t_cleanup() {
	local rc=$? pid ns i
	trap - EXIT INT TERM
	for ((i = ${#T_PIDS[@]} - 1; i >= 0; i--)); do
		t_stop "${T_PIDS[i]}" 3
		wait "${T_PIDS[i]}" 2>/dev/null
	done
	for ns in "${T_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	if [ -n "$T_WATCHDOG" ]; then
		kill "$T_WATCHDOG" 2>/dev/null
		wait "$T_WATCHDOG" 2>/dev/null
	fi
	[ -n "${T_RUN:-}" ] && rm -rf "$T_RUN"
	exit "$rc"
}

# ---------------------------------------------------------------- network

# t_netns VAR SUFFIX: make namespace kvt-ID-SUFFIX with lo up; name -> VAR.
t_netns() {
	local -n _ns=$1
	_ns="kvt-$T_ID-$2"
	ip netns add "$_ns" || return 1
	T_NETNS+=("$_ns")
	ip -n "$_ns" link set lo up
}

# t_tap NS NAME CIDR: a persistent tap in NS with CIDR on it, up.
t_tap() {
	ip -n "$1" tuntap add dev "$2" mode tap &&
		ip -n "$1" addr add "$3" dev "$2" &&
		ip -n "$1" link set "$2" up
}

# uml_netns_tap NAME TAP CIDR: the test's namespace (-> NS, as t_netns NS
# NAME) with a tap TAP (-> TAP) in it carrying CIDR; a failure fails and ends
# the test.
uml_netns_tap() {
	t_netns NS "$1" || { fail "ip netns add"; t_end; }
	TAP=$2
	t_tap "$NS" "$TAP" "$3" || { fail "tap $TAP in $NS"; t_end; }
}

# t_in NS CMD...: CMD inside NS ("" = here).
t_in() {
	local ns=$1
	shift
	if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

# t_bg VAR LOG NS CMD...: start CMD in NS in the background, output to LOG;
# its PID goes to VAR and is ended at cleanup. `ip netns exec` and `env`
# exec, so the PID is CMD's own.
t_bg() {
	local -n _pid=$1
	local log=$2 ns=$3
	shift 3
	[ -n "$ns" ] && set -- ip netns exec "$ns" "$@"
	# A simple command, not a function: $! must be the program itself.
	"$@" </dev/null >"$log" 2>&1 &
	_pid=$!
	t_track "$_pid"
}

# t_wait_port NS ADDR PORT SECS: wait until a TCP listener answers.
t_wait_port() {
	local i
	for ((i = 0; i < $4 * 10; i++)); do
		t_in "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# t_free_port: a TCP port number, different for each test run.
t_free_port() { echo $(( 20000 + (RANDOM * 7 + $$) % 30000 )); }

# ---------------------------------------------------------------- kvmini

KVMINI_COUNTER_NAMES=$(sed -n 's/^[[:space:]]*X(\([a-z0-9_]*\),.*/\1/p' \
	"$UML_TOP/src/net/net_device.h" 2>/dev/null)
declare -gA KC=()

# kvmini_pick [release]: choose the binary (KVMINI overrides): the sanitizer
# build for tests, the release build for benchmarks. Sets KVMINI_BIN.
kvmini_pick() {
	if [ -n "${KVMINI:-}" ]; then
		KVMINI_BIN=$KVMINI
	elif [ "${1:-}" = release ]; then
		KVMINI_BIN=$UML_TOP/build/kvmini
	elif [ -x "$UML_TOP/build/kvmini-san" ]; then
		KVMINI_BIN=$UML_TOP/build/kvmini-san
	else
		KVMINI_BIN=$UML_TOP/build/kvmini
		note "build/kvmini-san missing (make build/kvmini-san): using build/kvmini"
	fi
	if ! [ -x "$KVMINI_BIN" ] || ! "$KVMINI_BIN" vhost net --help >/dev/null 2>&1; then
		fail "kvmini binary $KVMINI_BIN does not answer 'vhost net --help' (make ${KVMINI_BIN#"$UML_TOP"/})"
		return 1
	fi
}

# kvmini_start VAR NS SOCKET BACKEND [ARGS...]: serve virtio-net on SOCKET
# inside NS; waits for the socket. PID -> VAR, stderr -> $T_DIR/kvmini.log
# (KVMINI_LOG_NAME.log with that set: a second instance).
kvmini_start() {
	local -n _kpid=$1
	local ns=$2 sock=$3 backend=$4 i
	shift 4
	KVMINI_LOG=$T_DIR/${KVMINI_LOG_NAME:-kvmini}.log
	rm -f "$sock"
	t_bg _kpid "$KVMINI_LOG" "$ns" env \
		ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=66 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$KVMINI_BIN" vhost net --socket "$sock" --backend "$backend" "$@"
	for ((i = 0; i < 100; i++)); do
		[ -S "$sock" ] && return 0
		kill -0 "$_kpid" 2>/dev/null || break
		sleep 0.05
	done
	fail "kvmini did not listen on $sock (log: $KVMINI_LOG)"
	tail -n 20 "$KVMINI_LOG" | sed 's/^/    | /'
	return 1
}

# kvmini_vhost_start VAR SOCKET LOG DEVICE [ARGS...]: serve `kvmini vhost
# DEVICE` on SOCKET here (the sanitizer build halting on its first report);
# waits for the socket. PID -> VAR.
kvmini_vhost_start() {
	local -n _vpid=$1
	local sock=$2 log=$3 dev=$4 i
	shift 4
	rm -f "$sock"
	t_bg _vpid "$log" "" env \
		ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=66 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$KVMINI_BIN" vhost "$dev" --socket "$sock" "$@"
	for ((i = 0; i < 100; i++)); do
		[ -S "$sock" ] && return 0
		kill -0 "$_vpid" 2>/dev/null || break
		sleep 0.05
	done
	fail "kvmini did not listen on $sock (log: $log)"
	tail -n 20 "$log" | sed 's/^/    | /'
	return 1
}

# kvmini_parse LOG: load the last "kvmini: counters" block of LOG into KC.
# Fails unless every counter of NET_COUNTERS is there.
kvmini_parse() {
	local name value missing=
	KC=()
	while read -r name value; do
		KC[$name]=$value
	done < <(awk '/^kvmini: counters$/ { n = 0; delete c; next }
		/^[a-z0-9_]+ [0-9]+$/ { c[n++] = $0 }
		END { for (i = 0; i < n; i++) print c[i] }' "$1")
	for name in $KVMINI_COUNTER_NAMES; do
		[ -n "${KC[$name]:-}" ] || missing+=" $name"
	done
	[ -z "$missing" ] || { KC_MISSING=$missing; return 1; }
}

# kvmini_snapshot PID LOG: ask a running kvmini for its counters (SIGUSR1)
# and load them into KC.
kvmini_snapshot() {
	local before i
	before=$(grep -c '^kvmini: counters$' "$2")
	kill -USR1 "$1" 2>/dev/null || return 1
	for ((i = 0; i < 50; i++)); do
		if [ "$(grep -c '^kvmini: counters$' "$2")" -gt "$before" ] &&
			kvmini_parse "$2"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# kvmini_stop PID LOG: SIGTERM, wait, load the final counters into KC and
# report the exit status and any sanitizer finding as PASS/FAIL lines.
kvmini_stop() {
	local pid=$1 log=$2 rc i
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		fail "kvmini exits on SIGTERM (still running after 10 s)"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	rc=$?
	if kvmini_sanitizer_clean "$log"; then
		pass "kvmini: no sanitizer report"
	else
		fail "kvmini: sanitizer report (log: $log)"
		grep -m 8 -E 'ERROR: |runtime error|SUMMARY: ' "$log" | sed 's/^/    | /'
	fi
	if [ "$rc" -eq 0 ]; then
		pass "kvmini exits 0 on SIGTERM"
	else
		fail "kvmini exits 0 on SIGTERM (exit $rc, log: $log)"
		tail -n 5 "$log" | sed 's/^/    | /'
	fi
	if kvmini_parse "$log"; then
		pass "kvmini prints all counters at exit"
	else
		fail "kvmini prints all counters at exit (missing:${KC_MISSING:-?})"
	fi
}

# kvmini_sanitizer_clean LOG: no ASan/UBSan/LSan report in LOG.
kvmini_sanitizer_clean() {
	! grep -q -E 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: [A-Za-z]*Sanitizer' "$1"
}

# kvmini_check_clean: PASS when none of the error counters moved.
kvmini_check_clean() {
	local bad='' n
	for n in tx_chain_invalid tx_frame_oversize tx_backend_errors rx_chain_invalid \
		rx_write_failed used_add_failed avail_index_invalid rx_dropped_poisoned \
		rx_dropped_too_big tx_hdr_invalid rx_hdr_refused; do
		[ "${KC[$n]:-0}" = 0 ] || bad+=" $n=${KC[$n]}"
	done
	if [ -z "$bad" ]; then
		pass "kvmini: no error counter moved"
	else
		fail "kvmini: error counters moved:$bad"
	fi
}

# kc_eq NAME A B: PASS when A == B (both shown).
kc_eq() {
	if [ "$2" = "$3" ]; then pass "$1 ($2)"; else fail "$1 ($2 != $3)"; fi
}

# kc_gt0 NAME...: PASS for each counter of KC above zero.
kc_gt0() {
	local n
	for n in "$@"; do
		if [ "${KC[$n]:-0}" -gt 0 ] 2>/dev/null; then
			pass "kvmini $n > 0 (${KC[$n]})"
		else
			fail "kvmini $n > 0 (${KC[$n]:-missing})"
		fi
	done
}

# kvmini_show: the non-zero counters of KC on one indented block.
kvmini_show() {
	local name
	for name in $KVMINI_COUNTER_NAMES; do
		[ "${KC[$name]:-0}" != 0 ] && printf '    %-22s %s\n' "$name" "${KC[$name]}"
	done
	return 0
}

# ---------------------------------------------------------------- UML

# uml_begin NAME LIMIT [COMMAND...]: how a UML test starts: t_begin, the UML
# tree, the kvmini binary to test (kvmini_pick) and the host commands the test
# needs; a missing one fails and ends the test.
uml_begin() {
	local c
	t_begin "$1" "$2"
	shift 2
	uml_prepare || t_end
	kvmini_pick || t_end
	for c in "$@"; do
		command -v "$c" >/dev/null || { fail "$c installed (scripts/setup.sh)"; t_end; }
	done
}

# uml_prepare: the root directory and the ptrace shim, built when stale.
uml_prepare() {
	[ -x "$UML_KERNEL" ] || { fail "no $UML_KERNEL (apt-get install user-mode-linux)"; return 1; }
	"$UML_TOP/tests/uml/mkrootfs.sh" "$UML_ROOT" >/dev/null ||
		{ fail "tests/uml/mkrootfs.sh"; return 1; }
	# The ptrace shim UML runs with (see tests/uml/xstate-shim.c), built
	# beside and swapped in: tests may start together.
	local src=$UML_TOP/tests/uml/xstate-shim.c
	mkdir -p "$(dirname "$UML_SHIM")"
	if ! [ -f "$UML_SHIM" ] || [ "$src" -nt "$UML_SHIM" ]; then
		if ! ${CC:-gcc} -O2 -Wall -shared -fPIC -o "$UML_SHIM.$$" "$src" -ldl; then
			fail "building $UML_SHIM"
			return 1
		fi
		mv "$UML_SHIM.$$" "$UML_SHIM"
	fi
}

# guest_script FILE: write FILE (under $T_DIR, so the guest reads it at /t)
# from the body on stdin, after a line that sources the guest's helpers
# (tests/uml/guest/lib.sh, /lib/kvmini/guest.sh in the guest's root).
guest_script() {
	{
		printf '# Written by tests/uml/lib.sh for %s; runs as /init'"'"'s child in UML.\n' "$T_NAME"
		echo '. /lib/kvmini/guest.sh   # tests/uml/guest/lib.sh'
		cat
	} >"$1"
}

# uml_boot VAR NS SCRIPT LIMIT [KERNEL ARGS...]: boot a guest in NS ("" =
# here) running SCRIPT, bounded by LIMIT seconds. The root is read-only:
# concurrent guests share it. PID -> VAR; console -> $T_DIR/console.log
# (UML_CONSOLE; $UML_CONSOLE_NAME.log with that set: a second guest).
uml_boot() {
	local -n _upid=$1
	local ns=$2 script=$3 limit=$4
	shift 4
	UML_CONSOLE=$T_DIR/${UML_CONSOLE_NAME:-console}.log
	mkdir -p "$T_RUN/uml"
	t_bg _upid "$UML_CONSOLE" "$ns" timeout -k 3 "$limit" \
		env LD_PRELOAD="$UML_SHIM" TMPDIR=/dev/shm "$UML_KERNEL" \
		mem="$UML_MEM" rootfstype=hostfs hostfs="$UML_ROOT" ro init=/init \
		con=null con0=fd:0,fd:1 quiet uml_dir="$T_RUN/uml" \
		KVMINI_SCRIPT="$script" KVMINI_TEST_DIR="$T_DIR" "$@"
}

# uml_wait PID: wait for the guest to halt; returns the guest script's exit
# status (125 when the guest never reported one).
uml_wait() {
	wait "$1" 2>/dev/null
	local rc
	rc=$(tr -d '\r' <"$UML_CONSOLE" | sed -n 's/^GUEST-EXIT: \([0-9]*\)$/\1/p' | tail -n 1)
	echo "${rc:-125}" >"$T_DIR/guest.rc"
	return "${rc:-125}"
}

# wait_mark NAME SECS [PID]: wait for the guest's `gmark NAME`; gives up
# early when the guest (PID) is gone.
wait_mark() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -a -q -E "^GUEST-MARK: $1"$'\r?$' "$UML_CONSOLE" 2>/dev/null && return 0
		[ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}

# host_flag NAME: release a guest waiting in `wait_flag NAME`.
host_flag() { touch "$T_DIR/flags/$1"; }

# guest_val KEY: the guest's last `gval KEY VALUE`.
guest_val() {
	tr -d '\r' <"$UML_CONSOLE" | sed -n "s/^GUEST-VAL: $1 //p" | tail -n 1
}

# guest_relay: turn the guest's GUEST-PASS/FAIL lines into PASS/FAIL lines;
# fails when the guest did not finish its script.
guest_relay() {
	local line rc
	while IFS= read -r line; do
		case $line in
		GUEST-PASS:*) pass "guest: ${line#GUEST-PASS: }" ;;
		GUEST-FAIL:*) fail "guest: ${line#GUEST-FAIL: } (console: $UML_CONSOLE)" ;;
		esac
	done < <(tr -d '\r' <"$UML_CONSOLE" | grep -a -E '^GUEST-(PASS|FAIL): ')
	rc=$(cat "$T_DIR/guest.rc" 2>/dev/null)
	if [ "${rc:-125}" = 0 ]; then
		pass "guest script ran to the end"
	else
		fail "guest script ran to the end (status ${rc:-none}; console: $UML_CONSOLE)"
		tr -d '\r' <"$UML_CONSOLE" | grep -a -v '^GUEST-' | tail -n 15 | sed 's/^/    | /'
	fi
}
