#!/bin/bash
# tests/nested/run.sh: run a command inside an outer VM that has /dev/kvm, on
# any machine: Debian's cloud kernel under QEMU's TCG (-cpu max emulates SVM
# with nested paging, so kvm-amd loads), with the host's root directory
# shared read-only through virtio-fs (QEMU's virtiofsd) and the checkout
# writable. The command runs as root from the checkout's top with the host's
# programs and libraries, so `kvmini run`, QEMU, ip, tcpdump and the test
# scripts are the ones built and installed here.
#
# Usage: tests/nested/run.sh [--timeout SECS] [--mem MIB] [--cpus N]
#                            [--env NAME]... [--] COMMAND [ARG]...
#   --timeout SECS  bound on the whole run, outer boot included (default 600)
#   --mem MIB       the outer VM's memory (default 3072)
#   --cpus N        its vCPUs (default 1: with two, QEMU 7.2's TCG locked the
#                   outer kernel up (soft lockup in KVM_RUN) on the second
#                   run of a two-vCPU guest; with one, 17 such runs in a row
#                   passed, and a Linux guest booted as fast)
#   --env NAME      pass $NAME into the job (CI, KVMINI and the knobs of the
#                   KVM tests and benches pass without it)
# Relays the command's output as it comes and exits with its status; 124
# when the bound ran out, 125 when the platform could not be set up (the
# line before says why). A job still running 30 s before the bound is ended
# by the outer VM's watchdog, which prints what ran (status 124). An outer
# VM that stops altogether (no heartbeat for 120 s: QEMU's TCG) makes the
# attempt void ("nested: VOID:", its lines do not count) and the job runs
# once more. Needs root, qemu-system-x86 (QEMU and virtiofsd),
# busybox-static, cpio and apt's access to Debian's archive once (the kernel
# is cached in $KVMINI_CACHE, see tests/nested/lib.sh). Logs in
# build/nested/job-PID/ (console.log: the outer VM's whole console, dmesg.log: its kernel log).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 125
. tests/nested/lib.sh

LIMIT=600
MEM=3072
CPUS=1
PASS_ENV=(CI KVMINI KVM_TEST_TIMEOUT KVM_FILE_TIMEOUT KVM_TEST_LINUX KVM_TEST_LINUX_TIMEOUT
	ACCEPT_TIMEOUT ACCEPT_CPUS BENCH_RUNS)
while [ $# -gt 0 ]; do
	case $1 in
	--timeout) LIMIT=$2; shift ;;
	--mem) MEM=$2; shift ;;
	--cpus) CPUS=$2; shift ;;
	--env) PASS_ENV+=("$2"); shift ;;
	--) shift; break ;;
	-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	-*) echo "nested: unknown option $1 (see --help)" >&2; exit 125 ;;
	*) break ;;
	esac
	shift
done
[ $# -gt 0 ] || { echo "nested: no command (see --help)" >&2; exit 125; }

fail_setup() { echo "nested: cannot set up the outer VM: $*"; exit 125; }

[ "$(id -u)" = 0 ] || fail_setup "needs root (virtiofsd shares / as root)"
QEMU=$(command -v qemu-system-x86_64) || fail_setup "qemu-system-x86_64 is missing (scripts/setup.sh)"
VIRTIOFSD=
for v in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd; do
	[ -x "$v" ] && VIRTIOFSD=$v && break
done
[ -n "$VIRTIOFSD" ] || fail_setup "virtiofsd is missing (qemu-system-common)"
stock_kernel || fail_setup "no Debian cloud kernel (see above)"
REPO=$(pwd -P)
mkdir -p build/nested || fail_setup "cannot write build/nested"
outer_initrd build/nested/outer-initrd.gz || fail_setup "building the outer initramfs failed"

JOB=$REPO/build/nested/job-$$
SOCKDIR=$(mktemp -d)
VFSD_PID=
cleanup() {
	[ -n "$VFSD_PID" ] && kill "$VFSD_PID" 2>/dev/null && wait "$VFSD_PID" 2>/dev/null
	rm -rf "$SOCKDIR"
}
trap cleanup EXIT
rm -rf "$JOB"
mkdir -p "$JOB"

# The job: the environment it is given, then the command from the top.
{
	echo "cd $(printf '%q' "$REPO") || exit 125"
	for name in "${PASS_ENV[@]}"; do
		[ -n "${!name+set}" ] && echo "export $name=$(printf '%q' "${!name}")"
	done
	printf 'exec'
	printf ' %q' "$@"
	echo
} >"$JOB/job.sh"

# The outer VM's own watchdog ends a job that outlives the bound less the
# boot and the power-off, and says what was still running (outer-init).
WATCHDOG=$((LIMIT > 60 ? LIMIT - 30 : LIMIT / 2))
# The outer init writes $JOB/heartbeat every 10 s. None for FROZEN s (or
# none at all by then) means the whole outer VM stopped: QEMU's TCG has
# locked the outer kernel up on these machines (see --cpus), which is no
# verdict on the job. Such an attempt is void and the job runs once more.
FROZEN=${NESTED_FROZEN_SECS:-120}

# start_virtiofsd: the host's root for one outer VM (virtiofsd serves one
# connection and ends with it). cache=always: the outer kernel keeps names,
# attributes and pages without asking again. Nothing on the host changes
# what a job reads while it runs (the job writes its own files; the host
# only reads them), and with cache=auto every exec in the outer VM looked its
# path and libraries up again over virtio-fs: /bin/true took 190 ms there
# against 43 ms with always, and tests/kvm/test_boot.sh 5.7 s against 1.9 s.
start_virtiofsd() {
	[ -n "$VFSD_PID" ] && kill "$VFSD_PID" 2>/dev/null && wait "$VFSD_PID" 2>/dev/null
	rm -f "$SOCKDIR/fs.sock"
	"$VIRTIOFSD" --socket-path="$SOCKDIR/fs.sock" -o source=/ -o cache=always -o sandbox=chroot \
		>>"$JOB/virtiofsd.log" 2>&1 &
	VFSD_PID=$!
	for _ in $(seq 100); do
		[ -S "$SOCKDIR/fs.sock" ] && return 0
		sleep 0.05
	done
	fail_setup "virtiofsd did not listen (log $JOB/virtiofsd.log)"
}

# boot_outer: one boot of the outer VM running the job; relays its lines,
# sets RC (QEMU's status) and FROZE (1 when the VM stopped beating).
boot_outer() {
	local qpid now beat
	rm -f "$JOB/status" "$JOB/heartbeat"
	FROZE=0
	start_virtiofsd
	timeout -k 10 "$LIMIT" "$QEMU" -accel tcg,thread=multi -cpu max -smp "$CPUS" -m "${MEM}M" \
		-object "memory-backend-memfd,id=mem,size=${MEM}M,share=on" -numa node,memdev=mem \
		-display none -nodefaults -no-reboot -nic none -serial stdio \
		-kernel "$STOCK_DIR/vmlinuz" -initrd build/nested/outer-initrd.gz \
		-append "console=ttyS0 quiet panic=-1 nested.job=$JOB/job.sh nested.repo=$REPO nested.limit=$WATCHDOG" \
		-chardev "socket,id=fs,path=$SOCKDIR/fs.sock" \
		-device vhost-user-fs-pci,chardev=fs,tag=hostroot,queue-size=1024 \
		</dev/null 2>"$JOB/qemu.err" > >(tee "$JOB/console.log" |
		awk '/^NESTED-EXIT /{ on = 0 } on { sub(/\r$/, ""); print; fflush() } /^NESTED-START/{ on = 1 }') &
	qpid=$!
	local start=$(date +%s)
	while kill -0 "$qpid" 2>/dev/null; do
		sleep 2
		now=$(date +%s)
		beat=$(stat -c %Y "$JOB/heartbeat" 2>/dev/null || echo "$start")
		if [ $((now - beat)) -gt "$FROZEN" ] && [ ! -f "$JOB/status" ]; then
			FROZE=1
			kill "$qpid" 2>/dev/null
			break
		fi
	done
	wait "$qpid"
	RC=$?
	# The relay's last lines before the verdict.
	sleep 0.2
}

t0=$(date +%s)
for attempt in 1 2; do
	boot_outer
	[ "$FROZE" = 1 ] || break
	cp "$JOB/console.log" "$JOB/console-frozen-$attempt.log"
	echo "nested: VOID: the outer VM stopped (no heartbeat for $FROZEN s; console $JOB/console-frozen-$attempt.log): QEMU's TCG, not the job; what it printed above is void"
	[ "$attempt" = 1 ] && echo "nested: running the job again in a new outer VM"
done
secs=$(($(date +%s) - t0))

if [ -f "$JOB/status" ]; then
	status=$(cat "$JOB/status")
	echo "nested: the job ended with $status after $secs s in the outer VM ($(cat "$STOCK_DIR/package"))" >&2
	exit "$status"
fi
status=$(sed -n 's/^NESTED-EXIT \([0-9]*\).*/\1/p' "$JOB/console.log" | tail -n1)
if [ -n "$status" ]; then
	exit "$status"
fi
if [ "$FROZE" = 1 ]; then
	echo "FAIL: nested: the outer VM stopped twice (QEMU's TCG); the job has no verdict"
	exit 124
fi
if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
	echo "FAIL: nested: the outer VM ran out of its $LIMIT s (console $JOB/console.log)"
	exit 124
fi
echo "nested: the outer VM ended (QEMU status $RC) without the job's status; console $JOB/console.log:"
tail -n 15 "$JOB/console.log" | sed 's/^/    /'
tail -n 5 "$JOB/qemu.err" | sed 's/^/    /'
exit 125
