#!/bin/bash
# seccomp filters of the vhost-user back-ends' own threads, with UML's real
# virtio drivers driving them: a thread of each kind that makes a syscall
# outside its list (the sanitizer build's test-only hook
# KVMINI_TEST_SECCOMP_PROBE=KIND: acct(2) right after its filter is on) ends
# kvmini with exit 159 and a line naming the thread and the syscall. The
# queue-pair threads start only when the driver sets DRIVER_OK, so only a
# real driver reaches them: net-queue (loopback backend) and net-sockets
# (libslirp). vhost fs starts its workers and watcher with the process
# (tests/unit/seccomp_probe.sh probes them). The rest of the UML layer runs
# with every filter on, so a list that is too narrow fails there.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

uml_begin test_seccomp 150

case $KVMINI_BIN in
*-san) ;;
*) skip "seccomp probes: $KVMINI_BIN is not the sanitizer build (the probe hook is test-only)"; t_end ;;
esac

# probe_end NAME KIND PID LOG: kvmini ended with 159 and the line for KIND.
probe_end() {
	local name=$1 kind=$2 pid=$3 log=$4 rc i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && t_stop "$pid" 3
	wait "$pid" 2>/dev/null
	rc=$?
	if [ "$rc" -eq 159 ] &&
		grep -q "seccomp: thread $kind made forbidden syscall 163 (acct)" "$log"; then
		pass "$name: a $kind thread's forbidden syscall ends kvmini (159, named)"
	else
		fail "$name: a $kind thread's forbidden syscall ends kvmini (exit $rc, log: $log)"
		tail -n 3 "$log" | sed 's/^/    | /'
	fi
}

# probe_net KIND BACKEND: a guest bringing eth0 up starts the queue pair.
probe_net() {
	local kind=$1 backend=$2 kpid upid
	KVMINI_LOG_NAME=kvmini-$kind
	export KVMINI_TEST_SECCOMP_PROBE=$kind
	kvmini_start kpid "" "$T_RUN/$kind.sock" "$backend" || return
	unset KVMINI_TEST_SECCOMP_PROBE
	guest_script "$T_DIR/guest-$kind.sh" <<EOF
wait_link eth0 && ip link set eth0 up
sleep 5
EOF
	UML_CONSOLE_NAME=console-$kind
	uml_boot upid "" "$T_DIR/guest-$kind.sh" 40 virtio_uml.device="$T_RUN/$kind.sock:1"
	probe_end "vhost net --backend $backend" "$kind" "$kpid" "$KVMINI_LOG"
	t_stop "$upid" 3
	wait "$upid" 2>/dev/null
}

probe_net net-queue loopback
probe_net net-sockets user
t_end
