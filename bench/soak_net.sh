#!/bin/bash
# A soak of `kvmini vhost net`: one UML guest (Linux's virtio_net over
# vhost-user) runs iperf3 TCP to a namespace through kvmini (release build,
# tap backend, offloads and filters on) for MINUTES, alternating direction
# every 30 s, while the host samples kvmini's resident memory and open
# descriptors every 5 s. After a 60 s warm-up, RSS must grow by less than
# 1 MiB and the descriptor count not at all (the confinement issue).
# Outside CI's budget; the figures go in the issue's closing note.
#
# Usage: bench/soak_net.sh [-m MINUTES]   (default 10)
set -uo pipefail
. "$(dirname "$0")/../tests/uml/lib.sh"
. "$(dirname "$0")/lib.sh"

MINUTES=10
while [ $# -gt 0 ]; do
	case $1 in
	-m) MINUTES=$2; shift 2 ;;
	-h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
SECS=$((MINUTES * 60))
ROUNDS=$(((SECS + 59) / 60))   # a round: 30 s each way
WARMUP=$((SECS / 4 < 60 ? SECS / 4 : 60))   # shorter for a short smoke run

t_begin soak_net $((SECS + 180))
uml_prepare || t_end
kvmini_pick release || t_end
uml_netns_tap soak "kvt${T_ID}s" 10.204.1.1/24
bench_iperf_servers "$NS" soak:10.204.1.1:5201 || { fail "iperf3 server listening"; t_end; }
kvmini_start KPID "$NS" "$T_RUN/net.sock" "tap:$TAP" --quiet --mac 52:54:00:be:0f:05 || t_end
bench_sampler SPID "$KPID" "$T_DIR/samples.txt"

guest_script "$T_DIR/guest.sh" <<EOF
wait_link eth0 || { gfail "eth0 appears"; exit 1; }
ip addr add 10.204.1.2/24 dev eth0 && ip link set eth0 up
ping -c 1 -W 3 10.204.1.1 >/dev/null || gfail "the namespace answers"
for r in \$(seq $ROUNDS); do
	giperf tx_\$r 30 -c 10.204.1.1 || gfail "iperf3 guest->ns round \$r"
	giperf rx_\$r 30 -c 10.204.1.1 -R || gfail "iperf3 ns->guest round \$r"
done
EOF
uml_boot UPID "" "$T_DIR/guest.sh" $((SECS + 120)) virtio_uml.device="$T_RUN/net.sock:1"
uml_wait "$UPID"
bench_guest_relay "iperf3 rounds"
RUNS=$ROUNDS

{
	echo "soak: UML iperf3 through kvmini vhost net (tap), $ROUNDS rounds of 30 s each way"
	echo "  throughput medians: guest->ns $(bench_gbit "$(bench_median tx)") Gbit/s," \
		"ns->guest $(bench_gbit "$(bench_median rx)") Gbit/s"
	bench_soak_report "kvmini vhost net" "$T_DIR/samples.txt" "$WARMUP"
} | tee "$T_DIR/results.txt"
kvmini_stop "$KPID" "$KVMINI_LOG" >"$T_DIR/kvmini-stop.txt"
grep '^FAIL' "$T_DIR/kvmini-stop.txt"
pass "soak ran (samples: $T_DIR/samples.txt)"
t_end
