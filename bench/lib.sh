# Shared pieces of the UML benches (bench/uml_iperf.sh, uml_mmds.sh, uml_fs.sh).
# Source it after tests/uml/lib.sh; the medians read RUNS from the caller.

# bench_iperf_servers NS NAME:ADDR:PORT...: one iperf3 server per address in
# NS (log $T_DIR/iperf3-NAME.log), then wait until each listens; status 1 if
# one does not within 5 s.
bench_iperf_servers() {
	local ns=$1 spec name addr port pid
	shift
	for spec in "$@"; do
		IFS=: read -r name addr port <<<"$spec"
		t_bg pid "$T_DIR/iperf3-$name.log" "$ns" iperf3 -s -B "$addr" -p "$port"
	done
	for spec in "$@"; do
		IFS=: read -r name addr port <<<"$spec"
		t_wait_port "$ns" "$addr" "$port" 5 || return 1
	done
}

# bench_guest_iperf RUNS SECS ALTERNATE PATH=ADDR:PORT...: guest-script text
# (for an unquoted guest_script heredoc) that runs RUNS rounds of giperf over
# each PATH in turn, guest->ns (KEY PATH_tx_RUN) then ns->guest (PATH_rx_RUN),
# SECS seconds each. ALTERNATE=1: every second round takes the paths in
# reverse order.
bench_guest_iperf() {
	local runs=$1 secs=$2 alternate=$3 spec order= reverse=
	shift 3
	for spec in "$@"; do
		order+=" ${spec%%=*}"
		reverse="${spec%%=*} $reverse"
	done
	echo "run=1"
	echo "while [ \$run -le $runs ]; do"
	echo "	order=\"${order# }\""
	[ "$alternate" = 1 ] && echo "	[ \$((run % 2)) = 0 ] && order=\"${reverse% }\""
	echo "	for path in \$order; do"
	echo "		case \$path in"
	for spec in "$@"; do
		echo "		${spec%%=*}) server=\"$(echo "${spec#*=}" | sed 's/:/ -p /')\" ;;"
	done
	echo "		esac"
	echo "		giperf \${path}_tx_\$run $secs -c \$server || gfail \"iperf3 \$path guest->ns run \$run\""
	echo "		giperf \${path}_rx_\$run $secs -c \$server -R || gfail \"iperf3 \$path ns->guest run \$run\""
	echo "	done"
	echo "	run=\$((run + 1))"
	echo "done"
}

# bench_guest_relay WHAT: after uml_wait, keep the guest's PASS/FAIL lines in
# $T_DIR/guest-results.txt, show only its failures, and fail "all WHAT
# completed" when there was one (the figures are read from the console).
bench_guest_relay() {
	guest_relay >"$T_DIR/guest-results.txt"
	grep '^FAIL' "$T_DIR/guest-results.txt" &&
		fail "all $1 completed (console: $UML_CONSOLE)"
	return 0
}

# bench_median KEY [SUFFIX]: the median over the RUNS runs of the guest's
# value KEY_RUN (KEY_RUN_SUFFIX with a SUFFIX).
bench_median() {
	local r
	for ((r = 1; r <= RUNS; r++)); do guest_val "${1}_$r${2:+_$2}"; done |
		sort -g | awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "n/a"; exit }
			print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_gbit MBIT: Mbit/s as Gbit/s with 3 decimals ("n/a" stays).
bench_gbit() { awk -v m="$1" 'BEGIN { if (m == "n/a") print m; else printf "%.3f", m / 1000 }'; }

# bench_runs KEY [SUFFIX]: the guest's values KEY_1 .. KEY_RUNS (each with
# _SUFFIX after the run number with a SUFFIX), space-separated.
bench_runs() {
	local r out=
	for ((r = 1; r <= RUNS; r++)); do out+=" $(guest_val "${1}_$r${2:+_$2}")"; done
	echo "${out# }"
}

# bench_ratio A B DECIMALS: A / B, or "n/a" unless both are positive.
bench_ratio() {
	awk -v a="$1" -v b="$2" -v d="$3" \
		'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%." d "f", a / b; else print "n/a" }'
}

# bench_iperf_row PATH NAME_WIDTH COL_WIDTH: one table row, the medians of
# PATH_tx and PATH_rx in Gbit/s and every run's Mbit/s.
bench_iperf_row() {
	printf "%-${2}s %${3}s %${3}s    runs (Mbit/s): tx [%s] rx [%s]\n" "$1" \
		"$(bench_gbit "$(bench_median "${1}_tx")")" \
		"$(bench_gbit "$(bench_median "${1}_rx")")" \
		"$(bench_runs "${1}_tx")" "$(bench_runs "${1}_rx")"
}

# bench_iperf_ratio LABEL A B NAME_WIDTH COL_WIDTH DECIMALS: the row of the
# ratios of path A's medians to path B's, tx and rx (no newline).
bench_iperf_ratio() {
	printf "%-${4}s %${5}s %${5}s" "$1" \
		"$(bench_ratio "$(bench_median "${2}_tx")" "$(bench_median "${3}_tx")" "$6")" \
		"$(bench_ratio "$(bench_median "${2}_rx")" "$(bench_median "${3}_rx")" "$6")"
}

# bench_sampler VAR PID FILE: sample PID's resident memory (VmRSS and its
# anonymous part RssAnon, KiB) and open descriptors every 5 s into FILE
# ("SECONDS RSS_KIB ANON_KIB FDS" lines) from a background loop, its pid ->
# VAR (ended at cleanup); stops with PID. RssAnon is kvmini's own memory:
# VmRSS also counts the pages of a vhost-user front-end's guest memory that
# kvmini has touched, which grow as the guest spreads its buffers.
bench_sampler() {
	local -n _spid=$1
	local pid=$2 file=$3
	: >"$file"
	(
		t0=$(date +%s)
		while kill -0 "$pid" 2>/dev/null; do
			mem=$(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { if (r) print r, a }' \
				"/proc/$pid/status" 2>/dev/null)
			fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
			[ -n "$mem" ] && echo "$(($(date +%s) - t0)) $mem $fds" >>"$file"
			sleep 5
		done
	) &
	_spid=$!
	t_track "$_spid"
}

# bench_soak_report NAME FILE WARMUP [quiesced]: from bench_sampler's FILE, after the
# first WARMUP s: growth of kvmini's own memory (the largest RssAnon after
# the warm-up less RssAnon at its end: under 1 MiB is the confinement
# issue's target; VmRSS shown beside it), and the descriptor trend: the
# fewest descriptors open in the last third of the samples against the
# fewest in the first third. Descriptors come and go with the work in
# flight (fuse-mount holds one per live file: the workload's rounds swing
# it by hundreds), so single samples and peaks differ by chance; a leak
# raises the floor they come back to. With "quiesced" the caller judges
# the descriptors itself (counted at quiet points) and no verdict on them
# is printed here.
bench_soak_report() {
	awk -v name="$1" -v warm="$3" -v quiesced="${4:-}" '
		BEGIN { n = 0 }
		$1 >= warm { t[n] = $1; r[n] = $2; a[n] = $3; f[n] = $4; n++ }
		END {
			if (n < 3) { print name ": fewer than 3 samples after the warm-up"; exit 1 }
			rmax = r[0]; amax = a[0]
			for (i = 1; i < n; i++) { if (r[i] > rmax) rmax = r[i]; if (a[i] > amax) amax = a[i] }
			third = int(n / 3); f1 = f[0]; f3 = f[n - 1]; p1 = 0; p3 = 0
			for (i = 0; i < third; i++) { if (f[i] < f1) f1 = f[i]; if (f[i] > p1) p1 = f[i] }
			for (i = n - third; i < n; i++) { if (f[i] < f3) f3 = f[i]; if (f[i] > p3) p3 = f[i] }
			printf "%s: %d samples over %d s after a %d s warm-up\n", name, n, t[n - 1] - t[0], warm
			printf "  RssAnon (its own memory): %d KiB at the warm-up'"'"'s end, largest %d KiB, last %d KiB: growth %d KiB\n", a[0], amax, a[n - 1], amax - a[0]
			printf "  VmRSS (with the guest memory it touched): %d KiB, largest %d KiB, last %d KiB: growth %d KiB\n", r[0], rmax, r[n - 1], rmax - r[0]
			printf "  descriptors: fewest open in the first third %d, in the last third %d (peaks %d and %d, last sample %d)\n", f1, f3, p1, p3, f[n - 1]
			printf "  target: own memory (RssAnon) growth under 1 MiB after warm-up: %d KiB -> %s\n", amax - a[0], amax - a[0] < 1024 ? "met" : "NOT met"
			if (quiesced == "")
				printf "  target: no descriptor growth: %+d -> %s\n", f3 - f1, f3 <= f1 ? "met" : "NOT met"
		}' "$2"
}
