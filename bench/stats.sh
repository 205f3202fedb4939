# Shared figures of the KVM benches (bench/nested_iperf.sh, nested_blk.sh,
# restore_test_guest.sh): source it.

# bench_median: the median of the numbers on stdin, one a line (the mean of
# the middle two for an even count), "n/a" when there are none.
bench_median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a"; exit }
		print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_ratio A B: A/B to two places, "n/a" unless both are positive.
bench_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'
}

# bench_reversed WORD...: the words in reverse order (every second round
# of an interleaved bench takes its paths that way).
bench_reversed() { echo "$*" | tr ' ' '\n' | tac | tr '\n' ' '; }
