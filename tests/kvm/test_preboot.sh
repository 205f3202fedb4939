#!/bin/bash
# A VM configured through the API before it starts, Firecracker's flow:
# `kvmini run --api-sock` waits; GET /machine-config (the Go SDK's first
# call), PUT /boot-source, PUT /machine-config, PATCH /machine-config,
# PUT /network-interfaces/eth0 on a tap in a network namespace the test
# makes, PUT /actions InstanceStart: the ticking test guest runs with two
# vCPUs, the MAC given, and ends with 0; every pre-boot request after the
# start is refused as Firecracker refuses it; the metadata service
# configured before the start (PUT /mmds/config, PUT /mmds). The same VM
# from Firecracker's --config-file, its mmds-config included. Then: a snapshot load after configuring is refused; an InstanceStart whose kernel does not load is
# answered 400 and ends kvmini with 1.
. "$(dirname "$0")/lib.sh"

if ! command -v curl >/dev/null || ! command -v ip >/dev/null; then
	echo "SKIP: kvm preboot: needs curl and ip"
	kvm_end
fi
NS=kvpre$$
TAP=kvpt0
api=$LOGDIR/preboot.sock
cleanup() { ip netns del "$NS" 2>/dev/null; }
trap cleanup EXIT
ip netns add "$NS" && ip -n "$NS" tuntap add dev "$TAP" mode tap && ip -n "$NS" link set "$TAP" up ||
	{ fail "preboot: a tap in a network namespace"; kvm_end; }

wait_socket() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }
get() { curl -s --max-time 10 --unix-socket "$api" "http://k$1"; }
put() { api_put "$api" "$1" "$2"; echo "$CODE"; }
patch() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$api" -X PATCH \
		-H 'Content-Type: application/json' -d "$2" "http://k$1"
}

# start_waiting NAME: kvmini run --api-sock in the namespace; VM is its pid.
start_waiting() {
	rm -f "$api"
	LAST=$1
	ip netns exec "$NS" timeout --foreground -k 5 "$LIMIT" "$KVMINI" run --api-sock "$api" --boot-timing \
		</dev/null >"$LOGDIR/$1.out" 2>"$LOGDIR/$1.err" &
	VM=$!
	wait_socket "$api" || fail "preboot: $1: no API socket"
}

start_waiting preboot
grep -q '"mem_size_mib":256' <<<"$(get /machine-config)" &&
	pass "preboot: GET /machine-config before any configuration answers the defaults" ||
	fail "preboot: GET /machine-config said $(get /machine-config)"
codes="$(put /boot-source "{\"kernel_image_path\":\"$GUEST\",\"boot_args\":\"test=ticks ticks=120\"}")"
codes+=" $(put /machine-config '{"vcpu_count":2,"mem_size_mib":128,"smt":false}')"
codes+=" $(patch /machine-config '{"track_dirty_pages":false}')"
codes+=" $(put /network-interfaces/eth0 "{\"iface_id\":\"eth0\",\"host_dev_name\":\"$TAP\",\"guest_mac\":\"06:00:ac:10:00:02\"}")"
[ "$codes" = "204 204 204 204" ] &&
	pass "preboot: boot source, machine config (PUT, PATCH), a tap interface: 204 each" ||
	fail "preboot: the configuration answered $codes: $BODY"
grep -q '"vcpu_count":2,"mem_size_mib":128' <<<"$(get /machine-config)" &&
	pass "preboot: GET /machine-config shows what was configured" ||
	fail "preboot: GET /machine-config said $(get /machine-config)"
# The metadata service before the start, as Firecracker takes it: the
# store answers at once ({}; no PATCH before a PUT), PUT /mmds/config names
# configured interfaces only, and GET /vm/config reads it all back.
[ "$(get /mmds)" = '{}' ] && pass "preboot: GET /mmds before any configuration is {}" ||
	fail "preboot: GET /mmds said $(get /mmds)"
[ "$(patch /mmds '{"a":1}')" = 400 ] && pass "preboot: PATCH /mmds before the first PUT is refused" ||
	fail "preboot: PATCH /mmds before a PUT was not refused"
api_put "$api" /mmds/config '{"version":"V2","network_interfaces":["eth1"]}'
[ "$CODE" = 400 ] && grep -q 'no interface' <<<"$BODY" &&
	pass "preboot: PUT /mmds/config naming an interface not configured: 400" ||
	fail "preboot: PUT /mmds/config on eth1 answered $CODE: $BODY"
api_put "$api" /entropy '{"rate_limiter":{"bandwidth":{"size":-1,"refill_time":100}}}'
[ "$CODE" = 400 ] && grep -q 'non-negative integer' <<<"$BODY" &&
	pass "preboot: PUT /entropy with a malformed rate limiter: 400" ||
	fail "preboot: PUT /entropy with a bad limiter answered $CODE: $BODY"
codes="$(put /entropy '{"rate_limiter":{"bandwidth":{"size":1000,"refill_time":100}}}')"
grep -q '"entropy":{"rate_limiter":{"bandwidth":{"size":1000,"one_time_burst":0,"refill_time":100}}}' <<<"$(get /vm/config)" &&
	[ "$codes" = 204 ] && pass "preboot: PUT /entropy (204), read back in GET /vm/config" ||
	fail "preboot: PUT /entropy answered $codes, /vm/config $(get /vm/config)"
# Drives, as Firecracker checks them: a backing file that opens, the same
# id in path and body, one root, a well-formed limiter (the drive's); vhost-user sockets refused by
# name; the root drive PUT last still goes first.
truncate -s 1M "$LOGDIR/root.img" "$LOGDIR/data.img"
bad=""
for req in "/drives/d1|{\"drive_id\":\"d1\",\"path_on_host\":\"$LOGDIR/none.img\",\"is_root_device\":false}|Unable to open" \
	"/drives/d1|{\"drive_id\":\"d2\",\"path_on_host\":\"$LOGDIR/data.img\",\"is_root_device\":false}|does not match" \
	"/drives/d1|{\"drive_id\":\"d1\",\"path_on_host\":\"$LOGDIR/data.img\"}|is_root_device" \
	"/drives/d1|{\"drive_id\":\"d1\",\"path_on_host\":\"$LOGDIR/data.img\",\"is_root_device\":false,\"rate_limiter\":{\"ops\":{\"size\":-1,\"refill_time\":1}}}|rate_limiter.ops"; do
	IFS='|' read -r path body want <<<"$req"
	api_put "$api" "$path" "$body"
	{ [ "$CODE" = 400 ] && grep -q "$want" <<<"$BODY"; } || bad+=" [$want: $CODE $BODY]"
done
[ -z "$bad" ] && pass "preboot: PUT /drives refusals (no file, ids differ, no is_root_device, a bad limiter): 400 with why" ||
	fail "preboot: PUT /drives refusals:$bad"
codes="$(put /drives/data "{\"drive_id\":\"data\",\"path_on_host\":\"$LOGDIR/data.img\",\"is_root_device\":false,\"is_read_only\":true,\"rate_limiter\":{\"ops\":{\"size\":100,\"refill_time\":100}}}")"
codes+=" $(put /drives/rootfs "{\"drive_id\":\"rootfs\",\"path_on_host\":\"$LOGDIR/root.img\",\"is_root_device\":true}")"
api_put "$api" /drives/other "{\"drive_id\":\"other\",\"path_on_host\":\"$LOGDIR/data.img\",\"is_root_device\":true}"
vmcfg=$(get /vm/config)
[ "$codes" = "204 204" ] && [ "$CODE" = 400 ] && grep -q 'A root block device already exists!' <<<"$BODY" &&
	grep -q '"drive_id":"data".*"is_read_only":true.*"rate_limiter":{"ops":{"size":100' <<<"$vmcfg" && grep -q '"drive_id":"rootfs".*"is_root_device":true' <<<"$vmcfg" &&
	pass "preboot: two drives PUT (204 each, one rate-limited), a second root refused, both read back in GET /vm/config" ||
	fail "preboot: drives: $codes, second root $CODE $BODY, /vm/config $vmcfg"
codes="$(put /mmds/config '{"version":"V2","ipv4_address":"169.254.170.2","network_interfaces":["eth0"],"imds_compat":true}')"
codes+=" $(put /mmds '{"latest":{"meta-data":{"instance-id":"i-pre"}}}')"
mcfg=$(get /vm/config)
[ "$codes" = "204 204" ] && grep -q '"mmds-config":{[^}]*"network_interfaces":\["eth0"\]' <<<"$mcfg" &&
	grep -q '"ipv4_address":"169.254.170.2"' <<<"$mcfg" && grep -q '"imds_compat":true' <<<"$mcfg" &&
	grep -q '"instance-id":"i-pre"' <<<"$(get /mmds)" &&
	pass "preboot: PUT /mmds/config (V2 on eth0 at 169.254.170.2) and PUT /mmds before the start, read back" ||
	fail "preboot: MMDS before the start: $codes, /vm/config $mcfg"
[ "$(put /actions '{"action_type":"InstanceStart"}')" = 204 ] &&
	pass "preboot: InstanceStart answers 204" || fail "preboot: InstanceStart answered $CODE: $BODY"
grep -q '"state":"Running"' <<<"$(get /)" && pass "preboot: GET / says Running after the start" ||
	fail "preboot: GET / said $(get /)"
after=""
for req in "/boot-source {\"kernel_image_path\":\"$GUEST\"}" \
	'/machine-config {"vcpu_count":1,"mem_size_mib":128}' \
	"/network-interfaces/eth1 {\"iface_id\":\"eth1\",\"host_dev_name\":\"$TAP\"}" \
	'/entropy {}' "/drives/x {\"drive_id\":\"x\",\"path_on_host\":\"$LOGDIR/data.img\",\"is_root_device\":false}" \
	'/actions {"action_type":"InstanceStart"}'; do
	api_put "$api" "${req%% *}" "${req#* }"
	[ "$CODE" = 400 ] && grep -q 'not supported after starting the microVM' <<<"$BODY" || after+=" ${req%% *}"
done
[ -z "$after" ] && pass "preboot: every pre-boot request after the start is refused as Firecracker does" ||
	fail "preboot: not refused after the start:$after"
collect_bg
expect "preboot: the configured guest ran its ticks and ended with 0" 0 'kvm-guest ticks: done'
grep -q 'eth0: MAC 06:00:ac:10:00:02' <<<"$ERR" && grep -q 'InstanceStart: .*2 vCPUs, 128 MiB, 1 interface' <<<"$ERR" &&
	pass "preboot: the VM had the two vCPUs, 128 MiB and the interface with the MAC configured" ||
	fail "preboot: kvmini's log does not show the configured VM (log $LOGDIR/preboot.err)"
grep -q 'drive rootfs: .*root.img, 2048 sectors, device 2' <<<"$ERR" &&
	grep -q 'drive data: .*data.img, 2048 sectors, read-only, rate-limited, device 3' <<<"$ERR" &&
	pass "preboot: the root drive PUT last became the first drive, the read-only, rate-limited one after it" ||
	fail "preboot: the drives are not in the log as configured (log $LOGDIR/preboot.err)"
grep -q 'entropy: virtio-rng, device 1, rate-limited' <<<"$ERR" &&
	pass "preboot: the entropy device PUT before the start is the VM's second device" ||
	fail "preboot: no virtio-rng among the devices (log $LOGDIR/preboot.err)"
grep -q 'mmds: V2 at 169.254.170.2:80' <<<"$ERR" &&
	pass "preboot: the metadata service configured before the start answers on eth0" ||
	fail "preboot: no 'mmds: V2 at 169.254.170.2:80' in the log (log $LOGDIR/preboot.err)"
sanitizer_check preboot

# The same VM from Firecracker's --config-file (with its optional keys
# empty, as orchestrators write them), served on a socket as well: GET /
# says Running, GET /machine-config what the file said.
cat >"$LOGDIR/vm.json" <<JSON
{"boot-source": {"kernel_image_path": "$GUEST", "boot_args": "test=ticks ticks=60", "initrd_path": null},
 "machine-config": {"vcpu_count": 2, "mem_size_mib": 128, "smt": false, "track_dirty_pages": false},
 "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "$TAP", "guest_mac": "06:00:ac:10:00:03",
                         "rx_rate_limiter": {}, "tx_rate_limiter": {}}],
 "mmds-config": {"version": "V2", "network_interfaces": ["eth0"]}, "entropy": {},
 "drives": [], "vsock": null, "logger": null, "metrics": null}
JSON
rm -f "$api"
LAST=preboot-file
ip netns exec "$NS" timeout --foreground -k 5 "$LIMIT" "$KVMINI" run --config-file "$LOGDIR/vm.json" \
	--api-sock "$api" </dev/null >"$LOGDIR/$LAST.out" 2>"$LOGDIR/$LAST.err" &
VM=$!
wait_socket "$api"
grep -q '"state":"Running"' <<<"$(get /)" && grep -q '"vcpu_count":2,"mem_size_mib":128' <<<"$(get /machine-config)" &&
	pass "preboot: --config-file started the VM it describes (GET / Running, its machine config)" ||
	fail "preboot: after --config-file GET / said $(get /), /machine-config $(get /machine-config)"
collect_bg
expect "preboot: the --config-file guest ran its ticks and ended with 0" 0 'kvm-guest ticks: done'
grep -q 'eth0: MAC 06:00:ac:10:00:03' <<<"$ERR" &&
	pass "preboot: the --config-file interface has its guest_mac" ||
	fail "preboot: no 'eth0: MAC 06:00:ac:10:00:03' in the log (log $LOGDIR/$LAST.err)"
grep -q 'mmds: V2 at 169.254.169.254:80' <<<"$ERR" && grep -q 'entropy: virtio-rng, device 1$' <<<"$ERR" &&
	pass "preboot: the --config-file's mmds-config put MMDS V2 on eth0, its entropy an entropy device" ||
	fail "preboot: no 'mmds: V2 at 169.254.169.254:80' in the log (log $LOGDIR/$LAST.err)"
sanitizer_check preboot-file

# A load after configuring is refused, the monitor waits on.
start_waiting preboot-load
put /boot-source "{\"kernel_image_path\":\"$GUEST\"}" >/dev/null
api_put "$api" /snapshot/load '{"snapshot_path":"/x","mem_file_path":"/y"}'
[ "$CODE" = 400 ] && grep -q 'not allowed after configuring boot-specific resources' <<<"$BODY" &&
	pass "preboot: a snapshot load after configuring is refused" ||
	fail "preboot: the load after configuring answered $CODE: $BODY"
kill -TERM "$VM"
collect_bg
expect "preboot: the waiting kvmini ends on SIGTERM" 143 'ending before a VM was started'

# A kernel that does not load: 400 with why, then kvmini ends with 1.
start_waiting preboot-bad
echo 'not a kernel' >"$LOGDIR/not-a-kernel"
put /boot-source "{\"kernel_image_path\":\"$LOGDIR/not-a-kernel\"}" >/dev/null
api_put "$api" /actions '{"action_type":"InstanceStart"}'
code=$CODE
collect_bg
[ "$code" = 400 ] && grep -q 'Cannot start the microVM' <<<"$BODY" &&
	pass "preboot: InstanceStart of a kernel that does not load answers 400" ||
	fail "preboot: InstanceStart of a bad kernel answered $code: $BODY"
expect "preboot: ... and kvmini then ends with 1" 1 'InstanceStart: '
sanitizer_check preboot-bad
kvm_end
