#!/bin/bash
# File system throughput of one UML guest through three paths to the same
# host directory, measured in the same boot:
#   vfs:    UML's virtiofs -> vhost-user -> kvmini (release build, passthrough
#           backend, its default --cache auto: the guest's page cache holds
#           file data, read ahead 128 KiB at a time)
#   vfsmd:  the same through a second kvmini with --cache metadata
#           (attributes cached, file data direct: a 1 MiB call is one or two
#           requests straight from/to the caller's buffer)
#   hostfs: UML's own hostfs of that directory
# The workload runs in one guest process (the host's perl, chrooted), so it
# measures the file system, not process start-up: sequential write and read
# of a large file in 1 MiB calls (the guest's page cache dropped before the
# read), then create, stat and unlink of many small files. Each runs RUNS
# times per path, interleaved; prints medians and the ratios to hostfs.
# Target: virtio-fs at least equal to hostfs for sequential read and write.
#
# Usage: bench/uml_fs.sh [-n RUNS] [-s MIB] [-f FILES] [-- KVMINI-OPTIONS...]
#        (KVMINI-OPTIONS go to the first `kvmini vhost fs`, e.g. --threads 4
#        --cache always; the second always has --cache metadata)
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
	-h|--help) sed -n '2,22s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done

t_begin uml_fs $((90 + RUNS * (MIB / 8 + FILES / 50) * 3))
uml_prepare || t_end
kvmini_pick release || t_end
KVMINI_COUNTER_NAMES=$(sed -n 's/^[[:space:]]*X(\([a-z0-9_]*\),.*/\1/p' \
	"$UML_TOP/src/fs/virtio_fs.h")

SHARE=$T_RUN/share
mkdir -p "$SHARE/vfs" "$SHARE/vfsmd" "$SHARE/hostfs" || { fail "mkdir $SHARE"; t_end; }

# start_kvmini NAME ARGS...: `kvmini vhost fs` on $T_RUN/NAME.sock with tag
# NAME, log $T_DIR/kvmini-NAME.log, PID in PIDS[NAME].
declare -A PIDS
start_kvmini() {
	local name=$1 sock=$T_RUN/$1.sock i
	shift
	t_bg "PIDS[$name]" "$T_DIR/kvmini-$name.log" "" "$KVMINI_BIN" vhost fs --socket "$sock" \
		--tag "$name" --shared-dir "$SHARE" "$@"
	for ((i = 0; i < 100; i++)); do
		[ -S "$sock" ] && return 0
		sleep 0.05
	done
	fail "kvmini listening on $sock (log: $T_DIR/kvmini-$name.log)"
	t_end
}
start_kvmini vfs "${KARGS[@]}"
start_kvmini vfsmd --cache metadata

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

# The workload runs chrooted in /host, where the guest's tmpfs hides the
# host's /tmp: a checkout there reaches the chroot through /t (the test's
# directory, tests/uml/guest/init) bound at /tmp/t.
guest_script "$T_DIR/guest.sh" <<EOF
modprobe virtiofs 2>/dev/null
mkdir -p /host/tmp/vfs /host/tmp/vfsmd /host/tmp/hostfs /host/tmp/t
mount -o bind /t /host/tmp/t || { gfail "bind the test directory into the chroot"; exit 1; }
mount -t virtiofs vfs /host/tmp/vfs || { gfail "mount virtiofs vfs"; exit 1; }
mount -t virtiofs vfsmd /host/tmp/vfsmd || { gfail "mount virtiofs vfsmd"; exit 1; }
mount -t hostfs -o .hostroot$SHARE/hostfs none /host/tmp/hostfs || { gfail "mount hostfs"; exit 1; }
run=1
while [ \$run -le $RUNS ]; do
	for p in vfs vfsmd; do
		hostrun perl /tmp/t/fsbench.pl /tmp/\$p/\$p $MIB $FILES \${p}_\$run || gfail "\$p run \$run"
	done
	hostrun perl /tmp/t/fsbench.pl /tmp/hostfs $MIB $FILES hostfs_\$run || gfail "hostfs run \$run"
	run=\$((run + 1))
done
umount /host/tmp/vfs
umount /host/tmp/vfsmd
umount /host/tmp/hostfs
umount /host/tmp/t
EOF

# Room for the guest's page cache beside a file of MIB MiB.
UML_MEM=${UML_MEM_BENCH:-512M}
uml_boot UPID "" "$T_DIR/guest.sh" $((60 + RUNS * (MIB / 8 + FILES / 50) * 3)) \
	virtio_uml.device="$T_RUN/vfs.sock:26" virtio_uml.device="$T_RUN/vfsmd.sock:26"
uml_wait "$UPID"
bench_guest_relay "runs"

{
	echo "UML file system, $RUNS runs per path, ${MIB} MiB sequential, $FILES files; medians"
	echo "(vfs: kvmini ${KARGS[*]:-default options}; vfsmd: kvmini --cache metadata)"
	printf '%-14s %10s %10s %10s %7s %7s    %s\n' metric vfs vfsmd hostfs vfs/h vfsmd/h \
		"runs vfs | vfsmd | hostfs"
	for m in write_mbs:"seq write MB/s" read_mbs:"seq read MB/s" create_ops:"create /s" \
		stat_ops:"stat /s" unlink_ops:"unlink /s"; do
		k=${m%%:*}
		v=$(bench_median vfs "$k")
		d=$(bench_median vfsmd "$k")
		h=$(bench_median hostfs "$k")
		printf '%-14s %10s %10s %10s %7s %7s    [%s] | [%s] | [%s]\n' "${m#*:}" "$v" "$d" "$h" \
			"$(bench_ratio "$v" "$h" 2)" "$(bench_ratio "$d" "$h" 2)" \
			"$(bench_runs vfs "$k")" "$(bench_runs vfsmd "$k")" "$(bench_runs hostfs "$k")"
	done
} | tee "$T_DIR/results.txt"

for name in vfs vfsmd; do
	kvmini_stop "${PIDS[$name]}" "$T_DIR/kvmini-$name.log" >"$T_DIR/kvmini-stop-$name.txt"
	grep '^FAIL' "$T_DIR/kvmini-stop-$name.txt"
	echo "    kvmini $name:"
	kvmini_show
done
# The target, per path: at least hostfs's median.
for name in vfs vfsmd; do
	for k in write_mbs read_mbs; do
		v=$(bench_median "$name" "$k")
		h=$(bench_median hostfs "$k")
		if awk -v a="$v" -v b="$h" 'BEGIN { exit !(a + 0 > 0 && b + 0 > 0 && a >= b) }'; then
			pass "target: $name $k >= hostfs ($v >= $h)"
		else
			note "target missed: $name $k $v < hostfs $h"
		fi
	done
done
# A run that measured nothing is no benchmark (a guest that could not start
# the workload once printed nothing but this line's PASS).
if [ -n "$(bench_runs vfs write_mbs)" ] && [ -n "$(bench_runs hostfs write_mbs)" ]; then
	pass "benchmark ran"
else
	fail "benchmark measured nothing (console: $UML_CONSOLE)"
fi
t_end
