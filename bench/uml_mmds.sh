#!/bin/bash
# The metadata service from a UML guest, and what its interceptor costs
# ordinary traffic, measured in one boot:
#   eth0: UML's virtio_net -> kvmini (release)             -> tap P  (plain)
#   eth1: UML's virtio_net -> kvmini (release) --mmds      -> tap M  (MMDS on)
# 1. MMDS requests/s: N small GETs (curl, one process) over one keep-alive
#    connection, and N over a new connection each (Connection: close);
#    V1, from the guest on eth1. Reference in the same boot: the same curl
#    against Python's http.server (HTTP/1.1) in the namespace through eth0.
# 2. iperf3 TCP both directions through eth0 and eth1, interleaved (the
#    order alternates per run), RUNS times; medians and the ratio
#    MMDS-on / plain (target >= 0.98).
#
# Usage: bench/uml_mmds.sh [-n RUNS] [-t SECONDS] [-r REQUESTS]
set -uo pipefail
. "$(dirname "$0")/../tests/uml/lib.sh"
. "$(dirname "$0")/lib.sh"

RUNS=5
SECS=3
REQS=500
while [ $# -gt 0 ]; do
	case $1 in
	-n) RUNS=$2; shift 2 ;;
	-t) SECS=$2; shift 2 ;;
	-r) REQS=$2; shift 2 ;;
	-h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done

t_begin uml_mmds $((90 + RUNS * SECS * 4 * 3 + REQS / 20))
uml_prepare || t_end
kvmini_pick release || t_end

t_netns NS bench || { fail "ip netns add"; t_end; }
TAP_P=kvt${T_ID}p
TAP_M=kvt${T_ID}m
SOCK_P=$T_RUN/plain.sock
SOCK_M=$T_RUN/mmds.sock
MMDS=169.254.169.254
t_tap "$NS" "$TAP_P" 10.204.1.1/24 && t_tap "$NS" "$TAP_M" 10.204.2.1/24 ||
	{ fail "taps in $NS"; t_end; }
bench_iperf_servers "$NS" plain:10.204.1.1:5201 mmds:10.204.2.1:5202 ||
	{ fail "iperf3 servers listening"; t_end; }
echo '{"latest":{"meta-data":{"ami-id":"ami-12345678"}}}' >"$T_DIR/mmds.json"
# The reference server: the same 12 bytes from a file, HTTP/1.1 keep-alive.
mkdir -p "$T_DIR/www/latest/meta-data"
printf 'ami-12345678' >"$T_DIR/www/latest/meta-data/ami-id"
t_bg HTTPD "$T_DIR/httpd.log" "$NS" python3 -m http.server --protocol HTTP/1.1 \
	--bind 10.204.1.1 --directory "$T_DIR/www" 8080
t_wait_port "$NS" 10.204.1.1 8080 5 || { fail "reference http.server listening"; t_end; }

kvmini_start KPID_P "$NS" "$SOCK_P" "tap:$TAP_P" --quiet --mac 52:54:00:b0:00:01 || t_end
LOG_P=$KVMINI_LOG
mv "$LOG_P" "$T_DIR/kvmini-plain.log"; LOG_P=$T_DIR/kvmini-plain.log
kvmini_start KPID_M "$NS" "$SOCK_M" "tap:$TAP_M" --quiet --mac 52:54:00:b0:00:02 \
	--mmds --mmds-data "$T_DIR/mmds.json" || t_end
LOG_M=$KVMINI_LOG

guest_script "$T_DIR/guest.sh" <<EOF
addr() { ip addr add \$2 dev \$1 && ip link set \$1 up; }
wait_link eth0 && wait_link eth1 || { gfail "eth0 and eth1 appear"; exit 1; }
addr eth0 10.204.1.2/24 || gfail "eth0 up"
addr eth1 10.204.2.2/24 || gfail "eth1 up"
ip route add $MMDS/32 dev eth1
ping -c 1 -W 3 10.204.1.1 >/dev/null || gfail "eth0 reaches the namespace"
ping -c 1 -W 3 10.204.2.1 >/dev/null || gfail "eth1 reaches the namespace"
now() { cut -d' ' -f1 /proc/uptime; }
# reqs KEY HOST CURL-ARGS: $REQS GETs in one curl process. -> KEY: requests/s
# of wall time (curl's own work in UML included); KEY_ms: median time of one
# transfer as curl measures it (request sent to response read), in ms;
# KEY_ok: how many were answered 200.
reqs() {
	local key=\$1 host=\$2 t0 t1 out
	shift 2
	t0=\$(now)
	out=\$(chroot /host /usr/bin/env curl -s --max-time 300 -o /dev/null \\
		-w '%{http_code} %{time_total}\n' "\$@" "http://\$host/latest/meta-data/ami-id?[1-$REQS]")
	t1=\$(now)
	gval "\${key}_ok" "\$(echo "\$out" | grep -c '^200 ')"
	gval "\${key}_ms" "\$(echo "\$out" | awk '{ print \$2 * 1000 }' | sort -g |
		awk '{ v[NR] = \$1 } END { printf "%.2f", v[int((NR + 1) / 2)] }')"
	gval "\$key" "\$(awk -v a=\$t0 -v b=\$t1 'BEGIN { printf "%.0f", $REQS / (b - a) }')"
}
reqs keepalive $MMDS
reqs newconn $MMDS -H 'Connection: close'
reqs ref_keepalive 10.204.1.1:8080
reqs ref_newconn 10.204.1.1:8080 -H 'Connection: close'
$(bench_guest_iperf "$RUNS" "$SECS" 1 plain=10.204.1.1:5201 mmds=10.204.2.1:5202)
EOF

uml_boot UPID "$NS" "$T_DIR/guest.sh" $((60 + RUNS * SECS * 4 * 3 + REQS / 20)) \
	virtio_uml.device="$SOCK_P:1" virtio_uml.device="$SOCK_M:1"
uml_wait "$UPID"
bench_guest_relay "guest steps"

{
	echo "MMDS from a UML guest ($REQS GETs of a 12-byte value, one curl process each)"
	printf '%-28s %14s %14s %16s %16s\n' "" "MMDS req/s" "reference" "MMDS ms/req" "reference"
	for k in keepalive newconn; do
		printf '%-28s %14s %14s %16s %16s\n' \
			"$([ $k = keepalive ] && echo 'keep-alive (one connection)' || echo 'new connection each')" \
			"$(guest_val $k)" "$(guest_val ref_$k)" "$(guest_val ${k}_ms)" "$(guest_val ref_${k}_ms)"
	done
	echo "  (req/s: wall time of one curl process for all, curl's own work in UML included;"
	echo "   ms/req: median of curl's time per transfer; reference: python3 http.server"
	echo "   in the namespace through kvmini's tap path, HTTP/1.1)"
	echo "iperf3 TCP, $RUNS runs x $SECS s per path and direction, medians (Gbit/s)"
	printf '%-12s %12s %12s\n' path "guest->ns" "ns->guest"
	for p in plain mmds; do
		bench_iperf_row "$p" 12 12
	done
	bench_iperf_ratio mmds/plain mmds plain 12 12 3
	echo "   (target >= 0.98)"
} | tee "$T_DIR/results.txt"

for k in keepalive newconn ref_keepalive ref_newconn; do
	[ "$(guest_val ${k}_ok)" = "$REQS" ] && pass "$k: all $REQS answered 200" ||
		fail "$k: all $REQS answered 200 ($(guest_val ${k}_ok))"
done
kvmini_stop "$KPID_M" "$LOG_M" >"$T_DIR/kvmini-stop-mmds.txt"
kvmini_stop "$KPID_P" "$LOG_P" >"$T_DIR/kvmini-stop-plain.txt"
grep -h '^FAIL' "$T_DIR"/kvmini-stop-*.txt
grep -E '^mmds (rx_accepted|frames_intercepted|frames_injected|frames_deferred) ' "$LOG_M" | tail -n 4 | sed 's/^/    /'
pass "benchmark ran"
t_end
