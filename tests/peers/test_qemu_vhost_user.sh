#!/bin/bash
# QEMU (qemu-system-x86_64, TCG, no /dev/kvm) as the vhost-user front-end of
# kvmini's virtio-net. No guest OS: SeaBIOS runs the device's iPXE option ROM,
# whose virtio-net driver starts the rings and sends DHCP requests. That makes
# QEMU do its whole vhost-user start (owner, features, protocol features, queue
# count, back-end channel, memory table, rings) and puts real frames through
# kvmini.
#   1. loopback backend: the handshake with no refusal, iPXE's frames come
#      back; a machine reset (QMP system_reset) stops and restarts the rings
#      on the same connection; QEMU stopped by SIGTERM and a second one
#      served; a QEMU killed with SIGKILL mid-traffic and a third one served.
#   2. two queue pairs: kvmini --queues 2 behind a vhost-user netdev with
#      queues=2 and virtio-net-pci mq=on. iPXE (no VIRTIO_NET_F_MQ) works on
#      pair 0 while QEMU sets up pair 1's call fds and disables its rings;
#      then a Linux guest (tests/peers/linux_guest.sh; Debian's cloud
#      kernel, fetched once) negotiates MQ, enables both pairs (one per
#      vCPU), and pings from each vCPU go through both: kvmini runs on all
#      four rings and its pair1_ counters move.
#   3. tap backend in a namespace with a DHCP and an HTTP server (busybox):
#      iPXE takes an address, fetches a script over HTTP (TCP through kvmini)
#      and answers pings from the namespace; the tap's, kvmini's and iPXE's
#      own counters agree.
#
# Shared helpers (t_begin, kvmini_start, kvmini_snapshot, ...) come from
# tests/uml/lib.sh; logs go to build/test-logs/peers/.
#
# Environment knobs: KVMINI (binary), QEMU (default qemu-system-x86_64).
set -uo pipefail
. "$(dirname "$0")/../uml/lib.sh"
. "$(dirname "$0")/linux_guest.sh"
T_LOG_BASE=$UML_TOP/build/test-logs/peers

QEMU=${QEMU:-qemu-system-x86_64}
MAC=52:54:00:c0:7a:21
QEMU_N=0

t_begin test_qemu_vhost_user 240
command -v "$QEMU" >/dev/null || { fail "no $QEMU (apt-get install qemu-system-x86)"; t_end; }
command -v busybox >/dev/null || { fail "no busybox (apt-get install busybox-static)"; t_end; }
kvmini_pick || t_end

# qemu_start VAR SOCKET [NETDEV_OPTS DEVICE_OPTS QEMU_ARGS...]: a q35
# machine under TCG whose 128 MiB of RAM is a shared memfd (the back-end
# maps it), one virtio-net-pci on a vhost-user netdev (",NETDEV_OPTS" and
# ",DEVICE_OPTS" appended when given), its console in
# $T_DIR/serial-N.log (-> QEMU_SERIAL). PID -> VAR.
qemu_start() {
	local -n _qpid=$1
	local sock=$2 nopts=${3:+,$3} dopts=${4:+,$4}
	shift $(($# < 4 ? $# : 4))
	QEMU_N=$((QEMU_N + 1))
	QEMU_SERIAL=$T_DIR/serial-$QEMU_N.log
	QEMU_LOG=$T_DIR/qemu-$QEMU_N.log
	QEMU_QMP=$T_RUN/qmp-$QEMU_N.sock
	t_bg _qpid "$QEMU_LOG" "" "$QEMU" -accel tcg -m 128M \
		-object memory-backend-memfd,id=mem,size=128M,share=on \
		-machine q35,memory-backend=mem \
		-chardev socket,id=c0,path="$sock" \
		-netdev vhost-user,id=n0,chardev=c0$nopts \
		-device virtio-net-pci,netdev=n0,mac=$MAC$dopts \
		-nographic -nodefaults -monitor none -serial file:"$QEMU_SERIAL" \
		-qmp unix:"$QEMU_QMP",server=on,wait=off "$@"
}

# qmp_reset: reset the machine through QMP, as a guest reboot does: QEMU
# stops the rings (GET_VRING_BASE) and starts them again on the same
# connection once the firmware drives the device again.
qmp_reset() {
	timeout 10 python3 - "$QEMU_QMP" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()                      # greeting
for cmd in ("qmp_capabilities", "system_reset"):
    f.write(json.dumps({"execute": cmd}) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "error" in reply:
            sys.exit(reply["error"].get("desc", "error"))
        if "return" in reply:
            break
EOF
}

# qemu_end PID SIGNAL: end one QEMU by PID and reap it (bounded).
qemu_end() {
	local i
	kill -"$2" "$1" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# wait_text FILE REGEX SECS [PID]: wait for REGEX in FILE (binary-safe); gives
# up early when PID is gone.
wait_text() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -a -q -E "$2" "$1" 2>/dev/null && return 0
		[ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}

# snap: kvmini's counters now, into KC.
snap() {
	kvmini_snapshot "$KPID" "$KVMINI_LOG" && return 0
	fail "kvmini answers SIGUSR1 with its counters"
	return 1
}

# wait_counter NAME MIN SECS: snapshot until KC[NAME] >= MIN.
wait_counter() {
	local i
	for ((i = 0; i < $3 * 2; i++)); do
		snap || return 1
		[ "${KC[$1]:-0}" -ge "$2" ] && return 0
		sleep 0.5
	done
	return 1
}

kvmini_alive() {
	if kill -0 "$KPID" 2>/dev/null; then
		pass "kvmini still serving after $1"
	else
		fail "kvmini still serving after $1 (log: $KVMINI_LOG)"
		tail -n 20 "$KVMINI_LOG" | sed 's/^/    | /'
		t_end
	fi
}

# session_checks N: after the Nth front-end: N connections, no refusal, no
# protocol error, the device activated at least N times.
session_checks() {
	local n=$1
	kc_eq "vhost_user_connections == $n" "${KC[vhost_user_connections]:-}" "$n"
	kc_eq "vhost_user_rx_messages_invalid == 0" "${KC[vhost_user_rx_messages_invalid]:-}" 0
	kc_eq "vhost_user_rx_messages_unknown == 0" "${KC[vhost_user_rx_messages_unknown]:-}" 0
	kc_eq "vhost_user_disconnects_error == 0" "${KC[vhost_user_disconnects_error]:-}" 0
	kc_eq "vhost_user_device_activate_failed == 0" \
		"${KC[vhost_user_device_activate_failed]:-}" 0
	if [ "${KC[vhost_user_device_activations]:-0}" -ge "$n" ]; then
		pass "device activated by front-end $n (activations ${KC[vhost_user_device_activations]})"
	else
		fail "device activated by front-end $n (activations ${KC[vhost_user_device_activations]:-?})"
	fi
}

# traffic_step LABEL: wait until iPXE's driver is up and kvmini has moved
# two more frames than before, which the loopback sent back.
traffic_step() {
	local before=${KC[tx_packets]:-0}
	if wait_text "$QEMU_SERIAL" "net0: $MAC using virtio-net" 30 "$QPID"; then
		pass "$1: iPXE opened virtio-net"
	else
		fail "$1: iPXE opened virtio-net (console: $QEMU_SERIAL, qemu: $QEMU_LOG)"
		tail -n 5 "$QEMU_LOG" | sed 's/^/    | /'
	fi
	if wait_counter tx_packets $((before + 2)) 30; then
		pass "$1: frames from QEMU's guest reach kvmini (tx_packets $before -> ${KC[tx_packets]})"
	else
		fail "$1: frames from QEMU's guest reach kvmini (tx_packets ${KC[tx_packets]:-?})"
	fi
}

# ---------------------------------------------------------------- 1. loopback

SOCK=$T_RUN/net.sock
kvmini_start KPID "" "$SOCK" loopback --mac "$MAC" -v || t_end

qemu_start QPID "$SOCK"
traffic_step "QEMU 1"
snap && session_checks 1
want="SET_OWNER GET_FEATURES SET_FEATURES GET_PROTOCOL_FEATURES SET_PROTOCOL_FEATURES
	GET_QUEUE_NUM SET_BACKEND_REQ_FD SET_MEM_TABLE SET_VRING_NUM SET_VRING_BASE
	SET_VRING_ADDR SET_VRING_KICK SET_VRING_CALL SET_VRING_ENABLE"
missing=
for m in $want; do
	grep -q "vhost-user: $m (" "$KVMINI_LOG" || missing+=" $m"
done
if [ -z "$missing" ]; then
	pass "QEMU sent the whole start sequence ($(echo $want | wc -w) request types)"
else
	fail "QEMU sent the whole start sequence (missing:$missing)"
fi
# The loopback hands every frame back: none may be lost while the driver
# keeps RX buffers posted.
kc_eq "loopback: kvmini rx_packets == tx_packets" "${KC[rx_packets]:-}" "${KC[tx_packets]:-}"

# A machine reset within the session: the rings stop and start again.
before=${KC[tx_packets]:-0}
bases=$(grep -c 'vhost-user: GET_VRING_BASE (' "$KVMINI_LOG")
if check "QEMU 1: system_reset through QMP" qmp_reset; then
	wait_counter vhost_user_device_activations 2 30
	kc_eq "after the reset: device activated again on the same connection" \
		"${KC[vhost_user_device_activations]:-} ${KC[vhost_user_connections]:-}" "2 1"
	kc_eq "after the reset: QEMU stopped both rings first (GET_VRING_BASE)" \
		"$(( $(grep -c 'vhost-user: GET_VRING_BASE (' "$KVMINI_LOG") - bases ))" 2
	if wait_counter tx_packets $((before + 2)) 30; then
		pass "after the reset: frames flow again (tx_packets $before -> ${KC[tx_packets]})"
	else
		fail "after the reset: frames flow again (tx_packets ${KC[tx_packets]:-?})"
	fi
	kc_eq "after the reset: rx_messages_invalid == 0" "${KC[vhost_user_rx_messages_invalid]:-}" 0
fi

qemu_end "$QPID" TERM
sleep 0.3
kvmini_alive "QEMU 1 stopped (SIGTERM)"
if grep -q 'vhost-user: GET_VRING_BASE (' "$KVMINI_LOG" &&
	grep -q 'front-end closed the connection' "$KVMINI_LOG"; then
	pass "QEMU 1 stopped the rings (GET_VRING_BASE) and closed"
else
	fail "QEMU 1 stopped the rings (GET_VRING_BASE) and closed"
fi

qemu_start QPID "$SOCK"
traffic_step "QEMU 2"
snap && session_checks 2
# SIGKILL while iPXE is sending: no GET_VRING_BASE, just EOF.
# (stderr: bash's "Killed" job notice)
qemu_end "$QPID" KILL 2>/dev/null
sleep 0.3
kvmini_alive "QEMU 2 killed (SIGKILL) mid-session"

qemu_start QPID "$SOCK"
traffic_step "QEMU 3 (after the SIGKILL)"
snap && session_checks 3
kc_eq "loopback: kvmini rx_packets == tx_packets" "${KC[rx_packets]:-}" "${KC[tx_packets]:-}"
qemu_end "$QPID" TERM

# GET_QUEUE_NUM counts queue pairs for a net device: QEMU asking for two pairs
# of a one-pair device must refuse at start, before any ring is set up.
out=$(timeout 30 "$QEMU" -accel tcg -m 128M \
	-object memory-backend-memfd,id=mem,size=128M,share=on \
	-machine q35,memory-backend=mem -chardev socket,id=c0,path="$SOCK" \
	-netdev vhost-user,id=n0,chardev=c0,queues=2 \
	-device virtio-net-pci,netdev=n0,mq=on,vectors=6 \
	-nographic -nodefaults -monitor none 2>&1)
if grep -q 'asking more queues than supported: 1' <<<"$out"; then
	pass "QEMU asking for 2 queue pairs is told the device has 1"
else
	fail "QEMU asking for 2 queue pairs is told the device has 1 (qemu: $out)"
fi
sleep 0.3
kvmini_alive "QEMU refused a queue count"

# Log lines, not the counters' "name value" lines (rx_hdr_refused 0).
refused=$(grep -E 'refused|kvmini: warn' "$KVMINI_LOG" | grep -c -v -E '^[a-z0-9_]+ [0-9]+$')
if [ "$refused" -eq 0 ]; then
	pass "kvmini logged no refusal or warning"
else
	fail "kvmini logged no refusal or warning ($refused lines)"
	grep -m 5 -E 'refused|kvmini: warn' "$KVMINI_LOG" | sed 's/^/    | /'
fi
if grep -q -i -E 'vhost.*(fail|error)|Failed to' "$T_DIR"/qemu-*.log; then
	fail "QEMU reported no vhost-user failure"
	grep -h -i -E 'vhost.*(fail|error)|Failed to' "$T_DIR"/qemu-*.log | head -n 5 | sed 's/^/    | /'
else
	pass "QEMU reported no vhost-user failure"
fi
# Expected: kvmini offers the CONFIG protocol feature (UML needs it) and
# QEMU's virtio-net does not use it, which QEMU mentions once per start.
grep -q 'supports VHOST_USER_PROTOCOL_F_CONFIG but QEMU does not' "$T_DIR/qemu-1.log" &&
	note "QEMU: \"vhost-user backend supports VHOST_USER_PROTOCOL_F_CONFIG but QEMU does not\" (expected)"

kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_check_clean
mv "$KVMINI_LOG" "$T_DIR/kvmini-loopback.log"

# ---------------------------------------------------------------- 2. two queue pairs

# vu_logged REGEX: kvmini's debug log has a vhost-user request line matching
# REGEX ("SET_VRING_CALL \(13\).* ring 2$").
vu_logged() { grep -q -E "vhost-user: $1" "$KVMINI_LOG"; }

# The Linux guest's /init: eth0 up with a neighbour that does not answer (the
# loopback hands the frames back), pings from vCPU 1 then vCPU 0 so each
# transmit queue carries some (virtio_net's XPS maps transmit queue i to
# vCPU i). One after the other: two at once put none on queue 1 once.
MQ_GUEST_SCRIPT='
ip link set eth0 up
ip addr add 10.9.0.2/24 dev eth0
ip neigh replace 10.9.0.1 lladdr 52:54:00:00:00:01 dev eth0 nud permanent
echo "GUEST: queues $(ls /sys/class/net/eth0/queues | tr "\n" " ")"
echo "GUEST: xps $(cat /sys/class/net/eth0/queues/tx-*/xps_cpus | tr "\n" " ")"
for c in 1 0; do taskset -c $c ping -q -c 5 -i 0.2 -w 3 10.9.0.1 >/dev/null 2>&1; done
echo "GUEST: tx $(cat /sys/class/net/eth0/statistics/tx_packets)"
echo "GUEST: DONE"'

kvmini_start KPID "" "$SOCK" loopback --mac "$MAC" --queues 2 -v || t_end
snap || t_end    # traffic_step counts from this kvmini's zero
# iPXE: no MQ, so QEMU starts pair 0 only, but sets the call fds of every
# ring at init and disables pair 1's rings.
qemu_start QPID "$SOCK" queues=2 mq=on,vectors=6
traffic_step "mq=on, iPXE"
snap && session_checks 1
for ring in 2 3; do
	if vu_logged "SET_VRING_CALL \(13\).* ring $ring$"; then
		pass "mq=on, iPXE: QEMU set ring $ring's call fd (pair 1)"
	else
		fail "mq=on, iPXE: QEMU set ring $ring's call fd (pair 1) (log: $KVMINI_LOG)"
	fi
done
if grep -q 'activated on 2 of 2 rings' "$KVMINI_LOG"; then
	pass "mq=on, iPXE: kvmini runs on pair 0 (iPXE did not negotiate MQ)"
else
	fail "mq=on, iPXE: kvmini runs on pair 0 (log: $KVMINI_LOG)"
fi
qemu_end "$QPID" TERM
sleep 0.3
kvmini_alive "QEMU with mq=on (iPXE) stopped"

# Linux: MQ negotiated, both pairs enabled. vectors=0: QEMU 7.2 segfaults
# when a guest enables MSI-X on a vhost-user virtio-net before the first
# SET_FEATURES, whatever the back-end (DPDK's vhost PMD too).
if guest_prepare; then
	guest_initrd "$T_RUN/mq.gz" "$MQ_GUEST_SCRIPT"
	qemu_start QPID "$SOCK" queues=2 mq=on,vectors=0 -smp 2 -no-reboot \
		-kernel "$PEER_GUEST_DIR/vmlinuz" -initrd "$T_RUN/mq.gz" \
		-append "console=ttyS0 quiet panic=-1"
	if wait_text "$QEMU_SERIAL" 'GUEST: DONE' 90 "$QPID"; then
		pass "mq=on, Linux: the guest ran its pings"
	else
		fail "mq=on, Linux: the guest ran its pings (console: $QEMU_SERIAL)"
		tr -d '\r' <"$QEMU_SERIAL" | tail -n 8 | sed 's/^/    | /'
	fi
	qemu_end "$QPID" TERM
	kc_eq "mq=on, Linux: the guest has two queue pairs" \
		"$(tr -d '\r' <"$QEMU_SERIAL" | sed -n 's/^GUEST: queues //p' | xargs)" \
		"rx-0 rx-1 tx-0 tx-1"
	for ring in 2 3; do
		if vu_logged "SET_VRING_ENABLE \(18\).* ring $ring num 1$"; then
			pass "mq=on, Linux: QEMU enabled ring $ring (VQ_PAIRS_SET 2)"
		else
			fail "mq=on, Linux: QEMU enabled ring $ring (log: $KVMINI_LOG)"
		fi
	done
	if grep -q 'activated on 4 of 4 rings' "$KVMINI_LOG"; then
		pass "mq=on, Linux: kvmini ran on both pairs' rings"
	else
		fail "mq=on, Linux: kvmini ran on both pairs' rings (log: $KVMINI_LOG)"
	fi
	snap && session_checks 2
	kc_gt0 pair0_tx_packets pair1_tx_packets pair0_rx_packets pair1_rx_packets
	kc_eq "mq=on: pair0_tx_packets + pair1_tx_packets == tx_packets" \
		"$(( ${KC[pair0_tx_packets]:-0} + ${KC[pair1_tx_packets]:-0} ))" "${KC[tx_packets]:-}"
else
	note "mq=on, Linux guest: NOT RUN (no kernel in $PEER_GUEST_DIR, or no busybox or" \
		"cpio; see $T_DIR/guest-fetch.log)"
fi
kvmini_stop "$KPID" "$KVMINI_LOG"
kvmini_check_clean
mv "$KVMINI_LOG" "$T_DIR/kvmini-mq.log"

# ---------------------------------------------------------------- 3. tap

t_netns NS q || { fail "ip netns add"; t_end; }
# No IPv6: the namespace then sends nothing the test did not ask for.
ip netns exec "$NS" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
	net.ipv6.conf.default.disable_ipv6=1 >/dev/null
TAP=kq${T_ID}t
HOST_IP=10.203.0.1
GUEST_IP=10.203.0.50
t_tap "$NS" "$TAP" "$HOST_IP/24" || { fail "tap $TAP in $NS"; t_end; }

mkdir -p "$T_RUN/www"
# The iPXE script: a marker, a window for the pings, its own counters.
printf '#!ipxe\necho KVMINI-READY\nsleep 8\nifstat net0\necho KVMINI-DONE\nsleep 120\n' \
	>"$T_RUN/www/t.ipxe"
cat >"$T_RUN/udhcpd.conf" <<EOF
interface $TAP
start $GUEST_IP
end $GUEST_IP
max_leases 1
lease_file $T_RUN/udhcpd.leases
pidfile $T_RUN/udhcpd.pid
siaddr $HOST_IP
boot_file http://$HOST_IP/t.ipxe
option subnet 255.255.255.0
option lease 600
EOF
touch "$T_RUN/udhcpd.leases"
t_bg DHCP_PID "$T_DIR/udhcpd.log" "$NS" busybox udhcpd -f "$T_RUN/udhcpd.conf"
t_bg HTTP_PID "$T_DIR/httpd.log" "$NS" busybox httpd -f -p "$HOST_IP:80" -h "$T_RUN/www"
t_wait_port "$NS" "$HOST_IP" 80 5 || fail "busybox httpd listening"

kvmini_start KPID "$NS" "$SOCK" "tap:$TAP" --mac "$MAC" || t_end
qemu_start QPID "$SOCK"
if wait_text "$QEMU_SERIAL" 'KVMINI-READY' 90 "$QPID"; then
	pass "iPXE took a DHCP lease and fetched its script over HTTP through kvmini"
	got_ip=$(tr -d '\r' <"$QEMU_SERIAL" | sed -n 's|^net0: \([0-9.]*\)/.*|\1|p' | tail -n 1)
	kc_eq "iPXE's address from udhcpd" "$got_ip" "$GUEST_IP"
	for size in 56 1400; do
		out=$(t_in "$NS" busybox ping -c 10 -i 0.1 -W 3 -s $size "$GUEST_IP" 2>&1)
		rcvd=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
		kc_eq "namespace pings iPXE, $size bytes: replies" "${rcvd:-0}" 10
	done
	if wait_text "$QEMU_SERIAL" 'KVMINI-DONE' 30 "$QPID"; then
		# "[Link:up, TX:n TXE:n RX:n RXE:n]": the driver's own counters.
		IPXE_STAT=$(tr -d '\r' <"$QEMU_SERIAL" | grep -a -o '\[Link:up, TX:.*\]' | tail -n 1)
		note "iPXE's ifstat: $IPXE_STAT"
	else
		fail "iPXE's script ran to its end (console: $QEMU_SERIAL)"
	fi
else
	fail "iPXE took a DHCP lease and fetched its script over HTTP (console: $QEMU_SERIAL)"
	tr -d '\r' <"$QEMU_SERIAL" | tail -n 8 | sed 's/^/    | /'
fi
qemu_end "$QPID" TERM

kvmini_stop "$KPID" "$KVMINI_LOG"
mv "$KVMINI_LOG" "$T_DIR/kvmini-tap.log"
kvmini_show
kc_gt0 tx_packets rx_packets
kvmini_check_clean
kc_eq "vhost_user_rx_messages_invalid == 0" "${KC[vhost_user_rx_messages_invalid]:-}" 0
# Read after kvmini stopped: both sides are final.
tap_stat() { ip netns exec "$NS" cat "/sys/class/net/$TAP/statistics/$1"; }
kc_eq "tap rx_packets == kvmini tx_packets" "$(tap_stat rx_packets)" "${KC[tx_packets]:-}"
kc_eq "tap rx_bytes == kvmini tx_bytes" "$(tap_stat rx_bytes)" "${KC[tx_bytes]:-}"
read_frames=$(( ${KC[rx_packets]:-0} + ${KC[rx_dropped_no_buffer]:-0} +
	${KC[rx_dropped_poisoned]:-0} + ${KC[rx_dropped_too_big]:-0} ))
kc_eq "tap tx_packets == kvmini rx_packets + rx_dropped_*" "$(tap_stat tx_packets)" "$read_frames"
# iPXE is silent after its ifstat, so the guest driver's counters (good plus
# errored frames) must be kvmini's.
ipxe_count() { echo "${IPXE_STAT:-}" | sed -n "s/.* $1:\([0-9]*\) $1E:\([0-9]*\).*/\1 + \2/p"; }
if [ -n "${IPXE_STAT:-}" ]; then
	kc_eq "iPXE's TX + TXE == kvmini tx_packets" "$(( $(ipxe_count TX) ))" "${KC[tx_packets]:-}"
	kc_eq "iPXE's RX + RXE == kvmini rx_packets" "$(( $(ipxe_count RX) ))" "${KC[rx_packets]:-}"
fi
t_end
