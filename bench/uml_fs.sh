#!/bin/bash
# File system throughput of one UML guest through two paths to the same host
# directory, measured in the same boot:
#   vfs:    UML's virtiofs -> vhost-user -> kvmini (release build, passthrough)
#   hostfs: UML's own hostfs of that directory
# The workload runs in one guest process (the host's perl, chrooted), so it
# measures the file system, not process start-up: sequential write and read
# of a large file in 1 MiB calls (the guest's page cache dropped before the
# read), then create, stat and unlink of many small files. Each runs RUNS
# times per path, interleaved; prints medians and the ratio vfs/hostfs.
# Target: vfs at least equal to hostfs for sequential read and write.
#
# Usage: bench/uml_fs.sh [-n RUNS] [-s MIB] [-f FILES] [-- KVMINI-OPTIONS...]
#        (KVMINI-OPTIONS go to `kvmini vhost fs`, e.g. --threads 4 --cache always)
set -uo pipefail
. "$(dirname "$0")/../tests/uml/lib.sh"
. "$(dirname "$0")/lib.sh"

RUNS=5
MIB=128
FILES=1000
KARGS=()
while [ $# -gt 0 ]; do
	case $1 in
	-n) RUNS=$2; shift 2 ;;
	-s) MIB=$2; shift 2 ;;
	-f) FILES=$2; shift 2 ;;
	--) shift; KARGS=("$@"); break ;;
	-h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done

t_begin uml_fs $((90 + RUNS * (MIB / 8 + FILES / 50) * 2))
uml_prepare || t_end
kvmini_pick release || t_end
KVMINI_COUNTER_NAMES=$(sed -n 's/^[[:space:]]*X(\([a-z0-9_]*\),.*/\1/p' \
	"$UML_TOP/src/fs/virtio_fs.h")

SOCK=$T_RUN/fs.sock
SHARE=$T_RUN/share
TAG=kvmbench
mkdir -p "$SHARE/vfs" "$SHARE/hostfs" || { fail "mkdir $SHARE"; t_end; }

KVMINI_LOG=$T_DIR/kvmini.log
t_bg KPID "$KVMINI_LOG" "" "$KVMINI_BIN" vhost fs --socket "$SOCK" --tag "$TAG" \
	--shared-dir "$SHARE" "${KARGS[@]}"
for ((i = 0; i < 100; i++)); do
	[ -S "$SOCK" ] && break
	sleep 0.05
done
[ -S "$SOCK" ] || { fail "kvmini listening on $SOCK (log: $KVMINI_LOG)"; t_end; }

# The workload, one process; run as `perl fsbench.pl DIR MIB FILES KEY`.
cat >"$T_DIR/fsbench.pl" <<'EOF'
use strict;
use warnings;
use Fcntl;
use Time::HiRes qw(time);

my ($dir, $mib, $files, $key) = @ARGV;
my $bs = 1 << 20;
my $buf = join('', map { chr(($_ * 7 + 3) & 255) } 0 .. 4095) x ($bs / 4096);

sub val { printf "GUEST-VAL: %s_%s %.1f\n", $key, $_[0], $_[1]; }
sub drop_caches {
	open(my $d, '>', '/proc/sys/vm/drop_caches') or die "drop_caches: $!";
	print $d "3\n";
	close($d);
}

my $f = "$dir/seq.bin";
unlink($f);
my $t0 = time;
sysopen(my $w, $f, O_WRONLY | O_CREAT | O_TRUNC) or die "$f: $!";
for (1 .. $mib) { syswrite($w, $buf) == $bs or die "write: $!"; }
close($w) or die "close: $!";
val('write_mbs', $mib / (time - $t0));

drop_caches();
$t0 = time;
sysopen(my $r, $f, O_RDONLY) or die "$f: $!";
my ($n, $total, $rb) = (0, 0, '');
while (($n = sysread($r, $rb, $bs)) > 0) { $total += $n; }
close($r);
die "read $total of " . ($mib * $bs) unless $total == $mib * $bs;
val('read_mbs', $mib / (time - $t0));
unlink($f);

my $md = "$dir/meta";
mkdir($md);
$t0 = time;
for my $i (1 .. $files) {
	sysopen(my $c, "$md/f$i", O_WRONLY | O_CREAT | O_EXCL) or die "create: $!";
	close($c);
}
val('create_ops', $files / (time - $t0));
drop_caches();
$t0 = time;
for my $i (1 .. $files) { my @st = stat("$md/f$i") or die "stat: $!"; }
val('stat_ops', $files / (time - $t0));
$t0 = time;
for my $i (1 .. $files) { unlink("$md/f$i") or die "unlink: $!"; }
val('unlink_ops', $files / (time - $t0));
rmdir($md);
EOF

guest_script "$T_DIR/guest.sh" <<EOF
modprobe virtiofs 2>/dev/null
mkdir -p /host/tmp/vfs /host/tmp/hostfs
mount -t virtiofs $TAG /host/tmp/vfs || { gfail "mount virtiofs"; exit 1; }
mount -t hostfs -o .hostroot$SHARE/hostfs none /host/tmp/hostfs || { gfail "mount hostfs"; exit 1; }
run=1
while [ \$run -le $RUNS ]; do
	hostrun perl $T_DIR/fsbench.pl /tmp/vfs/vfs $MIB $FILES vfs_\$run || gfail "vfs run \$run"
	hostrun perl $T_DIR/fsbench.pl /tmp/hostfs $MIB $FILES hostfs_\$run || gfail "hostfs run \$run"
	run=\$((run + 1))
done
umount /host/tmp/vfs
umount /host/tmp/hostfs
EOF

# Room for the guest's page cache beside a file of MIB MiB.
UML_MEM=${UML_MEM_BENCH:-512M}
uml_boot UPID "" "$T_DIR/guest.sh" $((60 + RUNS * (MIB / 8 + FILES / 50) * 2)) \
	virtio_uml.device="$SOCK:26"
uml_wait "$UPID"
guest_relay >"$T_DIR/guest-results.txt"
grep '^FAIL' "$T_DIR/guest-results.txt"
grep -q '^FAIL' "$T_DIR/guest-results.txt" && fail "all runs completed (console: $UML_CONSOLE)"

{
	echo "UML file system, $RUNS runs per path, ${MIB} MiB sequential, $FILES files; medians"
	printf '%-12s %12s %12s %8s    %s\n' metric vfs hostfs ratio "runs vfs | hostfs"
	for m in write_mbs:"seq write MB/s" read_mbs:"seq read MB/s" create_ops:"create /s" \
		stat_ops:"stat /s" unlink_ops:"unlink /s"; do
		k=${m%%:*}
		v=$(bench_median vfs "$k")
		h=$(bench_median hostfs "$k")
		printf '%-14s %10s %12s %8s    [%s] | [%s]\n' "${m#*:}" "$v" "$h" \
			"$(bench_ratio "$v" "$h" 2)" "$(bench_runs vfs "$k")" "$(bench_runs hostfs "$k")"
	done
} | tee "$T_DIR/results.txt"

kvmini_stop "$KPID" "$KVMINI_LOG" >"$T_DIR/kvmini-stop.txt"
grep '^FAIL' "$T_DIR/kvmini-stop.txt"
kvmini_show
for k in write_mbs read_mbs; do
	v=$(bench_median vfs "$k")
	h=$(bench_median hostfs "$k")
	if awk -v a="$v" -v b="$h" 'BEGIN { exit !(a + 0 > 0 && b + 0 > 0 && a >= b) }'; then
		pass "target: vfs $k >= hostfs ($v >= $h)"
	else
		note "target missed: vfs $k $v < hostfs $h"
	fi
done
pass "benchmark ran"
t_end
