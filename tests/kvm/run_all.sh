#!/bin/bash
# kvmini run on KVM with the project's own freestanding test guest
# (tests/kvm/guest): boot, console, exits, the virtio-mmio register rules,
# loopback net frames with interrupts, NEEDS_RESET, and kvmini's errors.
#
# Prints one PASS:/FAIL: line per case, and relays the guest's own
# PASS:/FAIL: lines. Skips (exit 0, one SKIP line) only when /dev/kvm is
# absent. Knobs: KVMINI (binary, default build/kvmini-san), KVM_TEST_TIMEOUT
# (seconds per run, default 60), KVM_TEST_LINUX (a kernel to boot as well,
# see the end).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

KVMINI=${KVMINI:-build/kvmini-san}
LIMIT=${KVM_TEST_TIMEOUT:-60}
LOGDIR=build/test-logs/kvm
FAILS=0

if [ ! -e /dev/kvm ]; then
	echo "SKIP: kvm: /dev/kvm is absent on this host; kvmini run cannot be tested"
	exit 0
fi
mkdir -p "$LOGDIR"
if [ ! -x "$KVMINI" ]; then
	make -j2 "$KVMINI" >"$LOGDIR/build.log" 2>&1 || { echo "FAIL: kvm: building $KVMINI"; exit 1; }
fi
if ! GUEST=$(tests/kvm/build_guest.sh 2>"$LOGDIR/guest-build.log"); then
	echo "FAIL: kvm: building the test guest (log $LOGDIR/guest-build.log)"
	exit 1
fi

pass() { echo "PASS: kvm $1"; }
fail() { echo "FAIL: kvm $1"; FAILS=$((FAILS + 1)); }

# run NAME INPUT -- ARGS...: run kvmini with INPUT on stdin; sets OUT (stdout),
# ERR (stderr), RC. The guest's PASS:/FAIL: lines are relayed (not with PROBE=1).
run() {
	local name=$1 input=$2
	LAST=$name
	shift 3
	printf '%s' "$input" | timeout -k 5 "$LIMIT" "$KVMINI" run "$@" \
		>"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err"
	RC=$?
	OUT=$(tr -d '\r' <"$LOGDIR/$name.out")
	ERR=$(cat "$LOGDIR/$name.err")
	if [ -z "${PROBE:-}" ]; then
		grep -E '^(PASS|FAIL): ' <<<"$OUT" || true
		grep -q '^FAIL: ' <<<"$OUT" && FAILS=$((FAILS + 1))
	fi
	if grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' <<<"$ERR"; then
		fail "$name: sanitizer report (log $LOGDIR/$name.err)"
	fi
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

guest() { run "$1" "${3:-}" -- --kernel "$GUEST" --cmdline "test=$2" "${@:4}"; }

# --- boot, console, ways of ending ------------------------------------------

guest hello hello "" --boot-timing
expect "hello: console output, i8042 reboot ends with 0" 0 'hello from the kvmini test guest'
expect "hello: reboot reported" 0 'guest rebooted \(i8042 reset\)'
first=$(grep -oE 'first guest instruction +[0-9.]+ ms' <<<"$ERR" | grep -oE '[0-9.]+ ms')
[ -n "$first" ] && pass "boot timing: first guest instruction after $first" ||
	fail "boot timing: no first-instruction figure"

# Debug exit (always on, QEMU's isa-debug-exit): a write of v ends the VM
# with status (v << 1) | 1, whatever its width.
guest exit exit ""
expect "debug exit: a write of 42 ends with (42 << 1) | 1 = 85" 85 'wrote 0x2a to the debug exit port'
guest exit16 exit16 ""
expect "debug exit: a 16-bit write of 0x1234 ends with 0x2469 & 0xff = 105" 105 \
	'wrote 0x1234 to the debug exit port'
run help-debug-exit "" -- --help
expect "debug exit documented in --help" 0 '0x501 ends the VM with exit status \(v << 1\) \| 1'

# Boot timing "userspace": the guest writes 7 (ignored), prints, waits
# 50 ms and writes 123 to port 0x3f0 (the boot marker).
guest marker marker "" --boot-timing
expect "boot marker: the guest ran" 0 'marker written'
ms() { grep -oE "$1 +[0-9.]+ ms" <<<"$ERR" | grep -oE '[0-9.]+ ms$' | grep -oE '[0-9.]+'; }
console_ms=$(ms 'first console output')
user_ms=$(ms 'userspace \(boot marker\)')
if [ -n "$user_ms" ] && [ -n "$console_ms" ] &&
	awk -v u="$user_ms" -v c="$console_ms" 'BEGIN { exit !(u >= c + 40) }'; then
	pass "boot timing: userspace marker at $user_ms ms, after the console ($console_ms ms) and the pause"
else
	fail "boot timing: userspace marker ${user_ms:-missing} (console ${console_ms:-?} ms)"
fi
expect "boot timing: Linux's \"Run /init\" console line seen" 0 'kernel runs /init \(console\) +[0-9.]+ ms'
guest nomarker hello "" --boot-timing
expect "boot timing: no marker written, userspace not reached" 0 'userspace \(boot marker\) +not reached'
expect "boot timing: no \"Run /init\" line, not reached" 0 'kernel runs /init \(console\) +not reached'

guest fault fault ""
expect "triple fault ends the VM with 3, reported" 3 'triple fault'

guest emulation emulation ""
if [ "$RC" -eq 0 ] && grep -q 'ran natively' <<<"$OUT"; then
	# Only a KVM that emulates guest kernel code (PVM) fails on popcnt.
	echo "SKIP: kvm emulation failure report: popcnt runs natively on this host, nothing to report"
else
	expect "emulation failure reported with RIP and instruction bytes" 4 \
		'RIP 0x[0-9a-f]+, instruction bytes: f3 48 0f b8'
fi

guest smp hello "" --cpus 2
expect "two vCPUs: boot vCPU runs, the other waits for SIPI" 0 'hello from the kvmini test guest'

guest highmem hello "" --mem 4100
expect "memory above 4 GiB (two RAM regions)" 0 'hello from the kvmini test guest'

# The boot protocol: zero page, e820, command line, initramfs; as an ELF,
# as a bzImage entered at its 64-bit entry point, and as a bzImage whose
# payload kvmini unpacks on the host.
BZIMAGE=${GUEST%.elf}.bzImage
initrd=$LOGDIR/initrd.bin
{ printf 'KVMINI-INITRD'; head -c 100000 /dev/zero; } >"$initrd"
ilen=$(stat -c %s "$initrd")
for kind in elf bzimage unpacked; do
	case $kind in
	elf) image=$GUEST; extra=() ;;
	bzimage) image=$BZIMAGE; extra=() ;;
	unpacked) image=$BZIMAGE; extra=(--host-decompress) ;;
	esac
	run "boot-$kind" "" -- --kernel "$image" --mem 96 --initrd "$initrd" \
		--cmdline "test=bootparams mem_mib=96 initrd_len=$ilen" "${extra[@]}"
	expect "boot protocol ($kind): zero page, e820, initrd (guest checks)" 0 \
		'bootparams: done \(0 failures\)'
done
cp "${GUEST%.elf}.bin" "$LOGDIR/flat.bin"
run bad-unpack "" -- --kernel "$LOGDIR/flat.bin" --host-decompress
expect "--host-decompress of something that is no bzImage: clear error" 1 'not a bzImage|neither'

# User mode. The probe (no --compat) says whether this KVM takes guest
# SYSCALL and INT n from CPL3 to the guest kernel by itself (kvm_pvm does
# not: SYSCALL stays in CPL3 and faults at LSTAR, INT n raises #UD). With
# --compat kvmini relays them (src/vmm/compat/user_relay.h): that must pass here.
PROBE=1 guest usermode usermode ""
if [ "$RC" -eq 0 ]; then
	echo "INFO: kvm host: guest SYSCALL and INT n from user mode reach the guest kernel"
else
	echo "INFO: kvm host: guest SYSCALL from user mode does not reach CPL0 by itself" \
		"($(grep -oE 'exception [0-9]+ .*' <<<"$OUT" | head -n1)); --compat relays it"
fi
guest usermode-compat usermode "" --compat --counters
expect "user mode (--compat): SYSCALL/SYSRET, int \$0x80/IRET and a #PF from CPL3 (guest checks)" 0 \
	'usermode: done \(0 failures\)'
if grep -q '^compat_user_syscalls_relayed' <<<"$ERR"; then
	expect "user mode (--compat): kvmini relayed both SYSCALLs" 0 '^compat_user_syscalls_relayed 2$'
	expect "user mode (--compat): kvmini relayed the INT" 0 '^compat_user_ints_relayed 1$'
else
	echo "SKIP: kvm user mode (--compat) relay counts: the relay runs only on kvm_pvm hosts"
fi

# Input arrives before the guest listens, and is longer than the 16-byte
# FIFO: nothing may be lost.
line="the quick brown fox jumps over the lazy dog 0123456789"
guest uart uart "$line"$'\n'
expect "uart: a 56-byte line echoed through RX interrupts" 0 "echo: $line\$"

# Much more input than kvmini's 4 KiB host-side buffer, all in the pipe
# before the guest enables receive interrupts (300 ms in): kvmini must stop
# reading when its buffer is full and lose nothing, in order.
bulk=$(seq 1 3000 | tr '\n' ' ')
bulk_hash=$(printf '%s' "$bulk" | python3 -c 'import sys
h = 0
for b in sys.stdin.buffer.read(): h = (h * 31 + b) & 0xffffffff
print(h)')
guest uart-bulk uart-bulk "$bulk" --cmdline "test=uart-bulk bulk_len=${#bulk} bulk_wait_ms=300"
expect "uart: ${#bulk} bytes piped before the guest listens, all received in order" 0 \
	"uart-bulk: ${#bulk} bytes, hash $bulk_hash\$"

# On a terminal, Ctrl-A x ends the VM even before the guest listens (kvmini
# reads input into its buffer at once; the guest here would wait 15 s).
if command -v script >/dev/null; then
	LAST=ctrl-a-x
	t0=$(date +%s%N)
	(sleep 0.5; printf '\001x') | timeout -k 5 "$LIMIT" script -qec "$KVMINI run --kernel $GUEST \
		--cmdline 'test=uart-bulk bulk_len=1 bulk_wait_ms=15000'" /dev/null \
		>"$LOGDIR/ctrl-a-x.out" 2>&1
	RC=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	OUT=$(tr -d '\r' <"$LOGDIR/ctrl-a-x.out")
	ERR=
	if [ "$ms" -lt 10000 ]; then
		expect "console on a terminal: Ctrl-A x before the guest listens ends the VM ($ms ms)" 0 \
			'console: Ctrl-A x'
	else
		fail "console on a terminal: Ctrl-A x took $ms ms (the guest's 15 s wait?)"
	fi
fi

# --- virtio-mmio ----------------------------------------------------------------

guest features features "" --net loopback
expect "virtio-mmio register rules (guest checks)" 0 'features: done \(0 failures\)'

# Per-NIC identity: the guest's net-config test prints each virtio-net
# device's MAC and MTU from config space. --mac and --mtu reach it; without
# --mac every VM and every NIC gets a random, locally administered unicast
# MAC, and kvmini logs the one it chose.
# mac_of N: device N's MAC as the last run's guest printed it.
mac_of() { grep -oE "net-config: device $1: MAC [0-9a-f:]{17}" <<<"$OUT" | grep -oE '[0-9a-f:]{17}$'; }
# local_unicast MAC: bit 0 of the first byte clear, bit 1 set.
local_unicast() { [ -n "$1" ] && [ $((0x${1:0:2} & 3)) -eq 2 ]; }
run net-config-given "" -- --kernel "$GUEST" --cmdline "test=net-config mac=02:11:22:33:44:55 mtu=9000" \
	--net loopback --mac 02:11:22:33:44:55 --mtu 9000
expect "net identity: --mac and --mtu 9000 in config space (guest checks)" 0 'net-config: done \(0 failures\)'
expect "net identity: the guest read MAC 02:11:22:33:44:55, MTU 9000" 0 \
	'net-config: device 0: MAC 02:11:22:33:44:55, MTU 9000'
expect "net identity: kvmini logged the MAC and MTU it was given" 0 'eth0: MAC 02:11:22:33:44:55, MTU 9000$'
guest net-config-a net-config "" --net loopback
expect "net identity: default MAC and MTU (guest checks)" 0 'net-config: done \(0 failures\)'
expect "net identity: default MTU 1500 on loopback" 0 'net-config: device 0: MAC [0-9a-f:]{17}, MTU 1500'
mac_a=$(mac_of 0)
logged_a=$(grep -c "eth0: MAC $mac_a (random), MTU 1500$" <<<"$ERR")
guest net-config-b net-config "" --net loopback
mac_b=$(mac_of 0)
if local_unicast "$mac_a" && local_unicast "$mac_b" && [ "$mac_a" != "$mac_b" ] &&
	[ "$logged_a" -eq 1 ] && grep -q "eth0: MAC $mac_b (random), MTU 1500$" <<<"$ERR"; then
	pass "net identity: two VMs without --mac: $mac_a and $mac_b, locally administered unicast, logged"
else
	fail "net identity: two VMs without --mac: '$mac_a' and '$mac_b' (wanted two locally administered unicast MACs, logged; logs $LOGDIR/net-config-[ab].err)"
fi
guest net-config-two net-config "" --net loopback --net loopback --mac 02:00:00:00:00:02
expect "net identity: two NICs (guest checks)" 0 'net-config: done \(0 failures\)'
m0=$(mac_of 0)
m1=$(mac_of 1)
if local_unicast "$m0" && [ "$m1" = 02:00:00:00:00:02 ] &&
	grep -q "eth0: MAC $m0 (random), MTU 1500$" <<<"$ERR" &&
	grep -q "eth1: MAC 02:00:00:00:00:02, MTU 1500$" <<<"$ERR"; then
	pass "net identity: two NICs: eth0 random ($m0), eth1 its --mac (the --net before it)"
else
	fail "net identity: two NICs: '$m0', '$m1' (wanted a random one, then 02:00:00:00:00:02)"
fi

guest net net "" --net loopback --counters
expect "net: loopback frames and interrupts (guest checks)" 0 'net: done \(0 failures\)'
expect "net: counters: 6 frames each way" 0 'rx_packets 6'
kicks=$(grep -oE '^mmio_rx_kicks [0-9]+' <<<"$ERR" | grep -oE '[0-9]+$')
exits=$(grep -oE '^mmio_rx_notify_exits [0-9]+' <<<"$ERR" | grep -oE '[0-9]+$')
if [ "${kicks:-0}" -gt 0 ] && [ "${exits:-1}" -eq 0 ]; then
	pass "net: $kicks kicks, all through ioeventfds (no QueueNotify exits)"
else
	fail "net: kicks ${kicks:-?}, QueueNotify exits ${exits:-?}"
fi

guest poison poison "" --net loopback --counters
expect "poisoned queue: NEEDS_RESET, config interrupt, reset recovers (guest checks)" 0 \
	'poison: done \(0 failures\)'
expect "poisoned queue counted" 0 'avail_index_invalid 1'

# --- operator controls in kvmini run: rate limits, control API, MMDS -----------------

# A low frame budget on TX (2 frames per 100 ms): the loopback test's 6
# frames (two rounds of 3) are held back, not dropped.
guest net-limited net "" --net loopback --tx-rate-limit ops=2/100 --counters
expect "net with --tx-rate-limit ops=2/100: loopback frames all arrive (guest checks)" 0 \
	'net: done \(0 failures\)'
limited=$(grep -oE '^tx_rate_limited [0-9]+' <<<"$ERR" | grep -oE '[0-9]+$')
dropped=$(grep -oE '^rx_dropped_[a-z_]+ [0-9]+' <<<"$ERR" | awk '{ s += $2 } END { print s + 0 }')
if [ "${limited:-0}" -gt 0 ] && [ "$dropped" -eq 0 ] && grep -q '^tx_packets 6$' <<<"$ERR"; then
	pass "net rate limit: TX stopped $limited times, 6 frames sent, none dropped"
else
	fail "net rate limit: tx_rate_limited ${limited:-?}, drops $dropped (log $LOGDIR/$LAST.err)"
fi

# The control API while a guest runs: two loopback interfaces (eth0, and
# "data" renamed with --iface-id), MMDS on eth0 from a file; the guest does
# its loopback test on eth0 and then holds, while curl drives the API.
if command -v curl >/dev/null; then
	api=$LOGDIR/api.sock
	rm -f "$api"
	printf '{"boot":{"id":"i-1234"}}' >"$LOGDIR/mmds.json"
	LAST=api
	timeout -k 5 "$LIMIT" "$KVMINI" run --kernel "$GUEST" --cmdline "test=net hold_ms=30000" \
		--net loopback --net loopback --iface-id data --rx-rate-limit bw=100000/100 \
		--mmds --mmds-data "$LOGDIR/mmds.json" --api-sock "$api" \
		</dev/null >"$LOGDIR/api.out" 2>"$LOGDIR/api.err" &
	vm=$!
	for _ in $(seq 150); do
		grep -q 'net: holding' "$LOGDIR/api.out" 2>/dev/null && break
		sleep 0.1
	done
	# call NAME WANT-STATUS PATTERN CURL-ARGS...: one request, checked.
	call() {
		local name=$1 want=$2 pattern=$3 body
		shift 3
		body=$(curl -s --max-time 5 --unix-socket "$api" -w '\n%{http_code}' "$@")
		if [ "$(tail -n1 <<<"$body")" = "$want" ] && grep -qE -- "$pattern" <<<"$body"; then
			pass "api in run: $name"
		else
			fail "api in run: $name (got: $(tr '\n' ' ' <<<"$body" | head -c 300))"
		fi
	}
	j=(-H 'Content-Type: application/json')
	call "GET / answers" 200 '"state"' http://k/
	call "GET /mmds: --mmds-data loaded" 200 '"i-1234"' http://k/mmds
	call "PUT /mmds replaces the store" 204 '' -X PUT "${j[@]}" -d '{"a":{"b":"c"}}' http://k/mmds
	call "GET /mmds reads it back" 200 '^\{"a":\{"b":"c"\}\}' http://k/mmds
	call "PATCH /network-interfaces/eth0 sets a tx limit" 204 '' -X PATCH "${j[@]}" \
		-d '{"iface_id":"eth0","tx_rate_limiter":{"ops":{"size":50,"refill_time":100}}}' \
		http://k/network-interfaces/eth0
	call "GET /network-interfaces/eth0 shows it" 200 '"ops":\{[^}]*"size":50' \
		http://k/network-interfaces/eth0
	call "GET /network-interfaces/data: --rx-rate-limit of the second --net" 200 \
		'"rx_rate_limiter":\{"bandwidth":\{[^}]*"size":100000' http://k/network-interfaces/data
	call "PATCH of an id no interface has: 400" 400 'no network interface \\"eth1\\"' -X PATCH \
		"${j[@]}" -d '{"iface_id":"eth1"}' http://k/network-interfaces/eth1
	call "PUT /mmds/config naming an interface without MMDS: 400" 400 'MMDS was not started on' \
		-X PUT "${j[@]}" -d '{"network_interfaces":["data"]}' http://k/mmds/config
	call "PUT /mmds/config on eth0, V2" 204 '' -X PUT "${j[@]}" \
		-d '{"network_interfaces":["eth0"],"version":"V2"}' http://k/mmds/config
	call "GET /metrics: eth0's loopback frames, both interfaces, the aggregate" 200 \
		'"net_eth0":\{[^}]*"rx_packets":6' http://k/metrics
	m=$(curl -s --max-time 5 --unix-socket "$api" http://k/metrics)
	if grep -q '"net_data":{' <<<"$m" && grep -qE '"net":\{[^}]*"tx_packets":6' <<<"$m" &&
		grep -q '"mmds":{' <<<"$m"; then
		pass "api in run: metrics have net_data, the net aggregate and mmds"
	else
		fail "api in run: metrics $(head -c 300 <<<"$m")"
	fi
	kill -TERM "$vm" 2>/dev/null
	wait "$vm"
	RC=$?
	OUT=$(tr -d '\r' <"$LOGDIR/api.out")
	ERR=$(cat "$LOGDIR/api.err")
	grep -E '^(PASS|FAIL): ' <<<"$OUT" || true
	grep -q '^FAIL: ' <<<"$OUT" && FAILS=$((FAILS + 1))
	expect "api in run: SIGTERM ends the VM (128+15)" 143 'signal 15'
	if grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' <<<"$ERR"; then
		fail "api in run: sanitizer report (log $LOGDIR/api.err)"
	fi
	[ ! -e "$api" ] && pass "api in run: socket removed at exit" || fail "api in run: $api left behind"
else
	echo "SKIP: kvm api in run: curl is not installed"
fi
run api-not-socket "" -- --kernel "$GUEST" --net loopback --api-sock "$LOGDIR/mmds.json"
expect "--api-sock on a file that is no socket: clear error" 1 'api-sock .*: exists and is not a socket'

share=$(mktemp -d)
trap 'rm -rf "$share"' EXIT
printf 'hello from the host, through virtio-fs\n' >"$share/hello.txt"
guest fs fs "" --fs "$share:kvmtest"
expect "virtio-fs: FUSE INIT, LOOKUP, OPEN, READ of a host file (guest checks)" 0 \
	'fs: done \(0 failures\)'
# The host-change watcher (issue 3) is on by default as for `vhost fs`: it
# sees the guest's lookups; this guest does not negotiate notifications,
# so no watch is placed and nothing is sent. --no-notify turns it off.
guest fs-watch fs "" --fs "$share:kvmtest" --max-watches 100 --counters
expect "virtio-fs: the host watch is wired (counters at exit)" 0 'host watch of --fs kvmtest'
skipped=$(grep -oE '^watch_watches_skipped [0-9]+' <<<"$ERR" | grep -oE '[0-9]+$')
[ "${skipped:-0}" -gt 0 ] && pass "virtio-fs: the watch saw $skipped lookups, no watch placed for a driver without notifications" ||
	fail "virtio-fs: watch_watches_skipped ${skipped:-missing}"
# A driver that negotiates VIRTIO_FS_F_NOTIFICATION: it looks the file up,
# says so on the console, the host appends to the file, and the guest must
# get FUSE_NOTIFY_INVAL_INODE for that node on the notification queue.
LAST=fs-notify
timeout -k 5 "$LIMIT" "$KVMINI" run --kernel "$GUEST" --cmdline "test=fs-notify" \
	--fs "$share:kvmtest" --counters </dev/null >"$LOGDIR/fs-notify.out" 2>"$LOGDIR/fs-notify.err" &
vm=$!
for _ in $(seq 150); do
	grep -q 'fs-notify: change it now' "$LOGDIR/fs-notify.out" 2>/dev/null && break
	sleep 0.1
done
printf 'changed on the host\n' >>"$share/hello.txt"
wait "$vm"
RC=$?
OUT=$(tr -d '\r' <"$LOGDIR/fs-notify.out")
ERR=$(cat "$LOGDIR/fs-notify.err")
grep -E '^(PASS|FAIL): ' <<<"$OUT" || true
grep -q '^FAIL: ' <<<"$OUT" && FAILS=$((FAILS + 1))
expect "virtio-fs in run: a host change reaches the guest as INVAL_INODE (guest checks)" 0 \
	'fs-notify: done \(0 failures\)'
expect "virtio-fs in run: the watch counted it" 0 '^watch_invals [1-9]'
printf 'hello from the host, through virtio-fs\n' >"$share/hello.txt"
PROBE=1 guest fs-no-notify fs-notify "" --fs "$share:kvmtest" --no-notify --counters
# (the guest's check fails, so it ends with the debug exit's failure status 3)
expect "virtio-fs in run: --no-notify: no watcher, the notification feature not offered" 3 \
	'FAIL: kvm-guest fs-notify: VIRTIO_FS_F_NOTIFICATION negotiated'
grep -q 'host watch of' <<<"$ERR" && fail "virtio-fs in run: --no-notify still watched"

# --- ACPI: the guest reads the tables as an OS does (tests/kvm/guest/acpi.c) -------

for cpus in 1 3; do
	guest "acpi-cpus$cpus" "acpi cpus=$cpus" "" --cpus "$cpus" --net loopback --fs "$share:acpi" \
		--net loopback
	expect "acpi ($cpus vCPUs, 3 devices): RSDP, XSDT, FADT, MADT, DSDT, LNRO0005 windows probed (guest checks)" \
		0 'acpi: done \(0 failures\)'
done
guest acpi-poweroff acpi-poweroff ""
expect "acpi: S5 through the FADT's sleep control register ends the VM with 0" 0 \
	'guest powered off \(ACPI S5\)'
guest acpi-reset acpi-reset ""
expect "acpi: the FADT's reset register ends the VM with 0" 0 'guest rebooted \(i8042 reset\)'
run boot-no-acpi "" -- --kernel "$GUEST" --mem 96 --no-acpi --cmdline "test=bootparams mem_mib=96 no_acpi=1"
expect "--no-acpi: e820 without the ACPI range, no RSDP (guest checks)" 0 'bootparams: done \(0 failures\)'

# --- operator errors ----------------------------------------------------------------

KVMINI_GUEST_DIR=$LOGDIR/no-guest run no-kernel "" -- --mem 64
expect "no --kernel and no default guest: says to run scripts/build-guest.sh" 2 \
	'no default guest kernel at .*scripts/build-guest.sh'
run kernel-missing "" -- --kernel /nonexistent/vmlinux
expect "nonexistent kernel file: usage error" 2 '/nonexistent/vmlinux: No such file'
run bad-mem "" -- --kernel "$GUEST" --mem 12x
expect "bad --mem: usage error" 2 '--mem: "12x" is not a number'
run bad-cpus "" -- --kernel "$GUEST" --cpus 0
expect "bad --cpus: usage error" 2 '--cpus: "0" is not a number'
printf 'not a kernel\n' >"$LOGDIR/not-a-kernel"
run bad-kernel "" -- --kernel "$LOGDIR/not-a-kernel"
expect "a file that is no kernel: clear error" 1 'neither an ELF vmlinux nor a bzImage'
run bad-net "" -- --kernel "$GUEST" --net frob
expect "unknown --net backend: clear error" 1 '--net frob'
run bad-fs "" -- --kernel "$GUEST" --fs /nonexistent/dir:tag
expect "--fs with a missing directory: usage error" 2 'is not a directory'
run bad-fs-tag "" -- --kernel "$GUEST" --fs "$share"
expect "--fs without a tag: usage error" 2 'expected DIR:TAG'
run help "" -- --help
expect "--help" 0 'usage: kvmini run \[--kernel FILE\]'

# --- a Linux kernel (opt-in: minutes where guest kernel code is emulated) ----
# KVM_TEST_LINUX=path/to/vmlinux-or-bzImage boots it with --compat, one
# virtio-net (loopback) device and a busybox initramfs whose /init prints
# INIT-OK and reboots.
if [ -n "${KVM_TEST_LINUX:-}" ]; then
	root=$LOGDIR/linux-root
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev"
	cp /bin/busybox "$root/bin/"
	ln -s busybox "$root/bin/sh"
	printf '#!/bin/busybox sh\n/bin/busybox echo INIT-OK\n/bin/busybox reboot -f\n' >"$root/init"
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc 2>/dev/null) >"$LOGDIR/linux-initrd.cpio"
	LIMIT=${KVM_TEST_LINUX_TIMEOUT:-900} run linux "" -- --kernel "$KVM_TEST_LINUX" --compat \
		--initrd "$LOGDIR/linux-initrd.cpio" --net loopback --counters --boot-timing \
		--host-decompress --cmdline "console=ttyS0 reboot=k panic=-1 pci=off"
	expect "linux: the 8250 driver finds a 16550A" 0 'ttyS0 at I/O 0x3f8 \(irq = 4.*is a 16550A'
	expect "linux: virtio-mmio device from the command line" 0 'virtio-mmio: Registering device virtio-mmio.0 at 0xd0000000'
	expect "linux: virtio-net driver activated the device" 0 '^mmio_device_activations 1$'
	expect "linux: reached /init" 0 'Run /init as init process'
	if grep -q INIT-OK <<<"$OUT"; then
		pass "linux: userspace ran /init and rebooted"
	else
		echo "INFO: kvm linux: /init did not run ($(grep -oE 'init\[1\]: segfault.{0,40}' <<<"$OUT" | head -n1)); see the user-mode probe above"
	fi
	grep -E 'boot timing' <<<"$ERR" | sed 's/^/    /'
fi

echo "kvm: $FAILS failed"
[ "$FAILS" -eq 0 ]
