#!/bin/bash
# iperf3 TCP throughput of one UML guest through three paths into one
# namespace, measured in the same boot:
#   kvmini: UML's virtio_net -> vhost-user -> kvmini (release build) -> tap A,
#           checksum and segmentation offloads and mergeable RX buffers on
#   plain:  the same with --offloads off (plain frames)                -> tap C
#   vec0:   UML's own vector driver (transport=tap)                    -> tap B
# With --seccomp the second kvmini path is the same as the first with
# `--seccomp off` (path "nofilter", offloads on), and the ratio
# kvmini/nofilter is the cost of the seccomp filters. Both kvmini processes'
# CPU time per GB moved is printed too: a cost measure free of the
# throughput's run-to-run noise.
# With --against BIN the second path is another build of kvmini (path
# "before", for a before/after of a change), run as it is; both paths then
# carry plain frames (the first with --offloads off), so a build that
# predates the offloads compares like with like. BIN's CPU per GB over the
# first's is the change's cost.
# Each direction (guest->namespace, and namespace->guest with -R) runs RUNS
# times per path, interleaved; prints the medians in Gbit/s and the ratios
# kvmini/vec0 and plain/vec0 per direction. vec0 does not receive at speed
# (it has no receive offloads), so kvmini's ns->guest is also set against
# vec0's guest->ns.
#
# Usage: bench/uml_iperf.sh [-n RUNS] [-t SECONDS] [--vec0-only | --seccomp | --against BIN]
#        [-- KVMINI-OPTIONS...]  (options for the first `kvmini vhost net` only)
set -uo pipefail
. "$(dirname "$0")/../tests/uml/lib.sh"
. "$(dirname "$0")/lib.sh"

RUNS=3
SECS=3
VEC0_ONLY=0
SECOND=plain             # the second kvmini path's name
SECOND_ARGS=(--offloads off)
FIRST_ARGS=()
SECOND_BIN=              # the second kvmini path's binary: the first's if empty
while [ $# -gt 0 ]; do
	case $1 in
	-n) RUNS=$2; shift 2 ;;
	-t) SECS=$2; shift 2 ;;
	--vec0-only) VEC0_ONLY=1; shift ;;
	--seccomp) SECOND=nofilter; SECOND_ARGS=(--seccomp off); shift ;;
	--against)
		[ -x "${2:-}" ] || { echo "--against: no executable ${2:-}" >&2; exit 2; }
		SECOND=before; SECOND_BIN=$(realpath "$2"); SECOND_ARGS=()
		FIRST_ARGS=(--offloads off); shift 2 ;;
	--) shift; FIRST_ARGS+=("$@"); break ;;
	-h|--help) sed -n '2,25s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done

t_begin uml_iperf $((60 + RUNS * SECS * 6 * 3))
uml_prepare || t_end
PATHS="kvmini vec0"
if [ "$VEC0_ONLY" = 1 ]; then
	PATHS=vec0
else
	kvmini_pick release || t_end
fi

t_netns NS bench || { fail "ip netns add"; t_end; }
TAP_K=kvt${T_ID}k
TAP_V=kvt${T_ID}v
SOCK=$T_RUN/net.sock
TAP_P=kvt${T_ID}p
SOCK_P=$T_RUN/plain.sock
t_tap "$NS" "$TAP_K" 10.203.1.1/24 && t_tap "$NS" "$TAP_V" 10.203.2.1/24 &&
	t_tap "$NS" "$TAP_P" 10.203.3.1/24 || { fail "taps in $NS"; t_end; }
bench_iperf_servers "$NS" kvmini:10.203.1.1:5201 vec0:10.203.2.1:5202 \
	"$SECOND":10.203.3.1:5203 || { fail "iperf3 servers listening"; t_end; }

uml_args=("vec0:transport=tap,ifname=$TAP_V")
if [ "$VEC0_ONLY" = 0 ]; then
	kvmini_start KPID "$NS" "$SOCK" "tap:$TAP_K" --quiet --mac 52:54:00:be:0f:01 \
		"${FIRST_ARGS[@]}" || t_end
	K_LOG=$KVMINI_LOG
	KVMINI_BIN=${SECOND_BIN:-$KVMINI_BIN} KVMINI_LOG_NAME=plain \
		kvmini_start PPID_ "$NS" "$SOCK_P" "tap:$TAP_P" --quiet \
		--mac 52:54:00:be:0f:02 "${SECOND_ARGS[@]}" || t_end
	P_LOG=$KVMINI_LOG
	uml_args+=("virtio_uml.device=$SOCK:1" "virtio_uml.device=$SOCK_P:1")
	PATHS="kvmini $SECOND vec0"
fi

guest_script "$T_DIR/guest.sh" <<EOF
addr() { ip addr add \$2 dev \$1 && ip link set \$1 up; }
# The interface with MAC \$1 (the two virtio devices may probe in any order).
by_mac() { grep -l "\$1" /sys/class/net/*/address | cut -d/ -f5; }
addr vec0 10.203.2.2/24 || gfail "vec0 up"
if [ $VEC0_ONLY = 0 ]; then
	wait_link eth1 || { gfail "eth0 and eth1 appear"; exit 1; }
	addr \$(by_mac 52:54:00:be:0f:01) 10.203.1.2/24 || gfail "kvmini's interface up"
	addr \$(by_mac 52:54:00:be:0f:02) 10.203.3.2/24 || gfail "$SECOND's interface up"
fi
ping -c 1 -W 3 10.203.2.1 >/dev/null || gfail "vec0 reaches the namespace"
[ $VEC0_ONLY = 1 ] || ping -c 1 -W 3 10.203.1.1 >/dev/null || gfail "kvmini reaches the namespace"
[ $VEC0_ONLY = 1 ] || ping -c 1 -W 3 10.203.3.1 >/dev/null || gfail "$SECOND reaches the namespace"
$(bench_guest_iperf "$RUNS" "$SECS" 0 \
	$([ "$VEC0_ONLY" = 1 ] || echo kvmini=10.203.1.1:5201 "$SECOND"=10.203.3.1:5203) \
	vec0=10.203.2.1:5202)
EOF

uml_boot UPID "$NS" "$T_DIR/guest.sh" $((30 + RUNS * SECS * 6 * 3)) "${uml_args[@]}"
uml_wait "$UPID"
bench_guest_relay "iperf3 runs"

{
	echo "UML iperf3 TCP, $RUNS runs x $SECS s per path and direction, medians (Gbit/s)"
	printf '%-8s %16s %16s\n' path "guest->ns" "ns->guest"
	for p in $PATHS; do
		bench_iperf_row "$p" 8 16
	done
	if [ "$VEC0_ONLY" = 0 ]; then
		bench_iperf_ratio kvmini/vec0 kvmini vec0 8 16 2
		echo
		bench_iperf_ratio "$SECOND"/vec0 "$SECOND" vec0 8 16 2
		echo
		if [ "$SECOND" = nofilter ]; then
			bench_iperf_ratio kvmini/nofilter kvmini nofilter 8 16 2
			echo "  (the seccomp filters' cost: the same kvmini with --seccomp off; target >= 0.97)"
		elif [ "$SECOND" = before ]; then
			bench_iperf_ratio kvmini/before kvmini before 8 16 2
			echo "  (this build against $SECOND_BIN, both with plain frames)"
		fi
		printf '%-8s %16s %16s\n' "vs vec0 tx" "" "$(bench_ratio \
			"$(bench_median kvmini_rx)" "$(bench_median vec0_tx)" 2)"
		echo "  (kvmini's ns->guest against vec0's guest->ns: vec0 has no receive offloads)"
	fi
} | tee "$T_DIR/results.txt"

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# cpu_per_gb TICKS LOG: CPU milliseconds per GB the kvmini of LOG moved
# (rx_bytes + tx_bytes of its exit counters).
cpu_per_gb() {
	awk -v t="$1" -v hz="$(getconf CLK_TCK)" '
		$1 == "rx_bytes" || $1 == "tx_bytes" { b += $2 }
		END { if (b > 0) printf "%.1f", t * 1000 / hz / (b / 1e9); else print "?" }' "$2"
}

if [ "$VEC0_ONLY" = 0 ]; then
	# Both kvmini processes carried the same interleaved runs: CPU per byte
	# compares their cost without the throughput's run-to-run noise.
	K_TICKS=$(cpu_ticks "$KPID")
	P_TICKS=$(cpu_ticks "$PPID_")
	if [ "$SECOND" = before ]; then
		# Another build: its exit counters are its own, not this tree's.
		kill -TERM "$PPID_" 2>/dev/null
		wait "$PPID_" 2>/dev/null
		: >"$T_DIR/plain-stop.txt"
	else
		kvmini_stop "$PPID_" "$P_LOG" >"$T_DIR/plain-stop.txt"
	fi
	kvmini_stop "$KPID" "$K_LOG" >"$T_DIR/kvmini-stop.txt"
	grep '^FAIL' "$T_DIR/kvmini-stop.txt" "$T_DIR/plain-stop.txt"
	K_CPU=$(cpu_per_gb "$K_TICKS" "$K_LOG")
	P_CPU=$(cpu_per_gb "$P_TICKS" "$P_LOG")
	{
		echo "kvmini's CPU time per GB moved (both directions, all runs): kvmini $K_CPU ms," \
			"$SECOND $P_CPU ms, $SECOND/kvmini $(bench_ratio "$P_CPU" "$K_CPU" 3)"
		[ "$SECOND" = nofilter ] &&
			echo "  (the filters' cost in kvmini's own CPU: 1.000 is none; target >= 0.97)"
		[ "$SECOND" = before ] &&
			echo "  (this build's cost against the one before: 1.000 is the same; >= 0.97 is within 3%)"
	} | tee -a "$T_DIR/results.txt"
	kvmini_show
fi
pass "benchmark ran"
t_end
