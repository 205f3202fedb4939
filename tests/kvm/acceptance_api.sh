# Sourced by tests/kvm/acceptance.sh: the stock-api case. Debian's cloud
# kernel (a bzImage: the API's boot source has no --host-decompress)
# configured only through the control API, in the order of Firecracker's
# getting-started guide and its Go SDK: a `kvmini run --api-sock` that
# waits, GET /machine-config, PUT /logger and PUT /metrics on FIFOs as
# the Go SDK makes them (it reads the log's; nobody reads the metrics'),
# PUT /boot-source (kernel, initramfs, boot arguments), PUT /machine-config, PUT /network-interfaces/eth0 on the
# namespace's tap with a MAC, PUT /mmds/config (V2 on eth0) and PUT /mmds
# with a nonce, PUT /entropy with a rate limiter, PUT /vsock (CID 3 on a
# unix socket, Firecracker's hybrid vsock), PUT /drives/data (a
# read-only image) and then PUT /drives/rootfs (an ext4 image the test
# makes with mkfs.ext4 -d, the root device, PUT last), PUT /actions
# InstanceStart, then FlushMetrics into the unread FIFO. The guest finds its devices through the DSDT, pings the
# host through the interface, takes a V2 token from the metadata service
# and reads the nonce with it, reads /dev/hwrng from virtio-rng, finds the
# root drive as /dev/vda (its serial, root=/dev/vda rw) and the other
# read-only as vdb, reads a file of the ext4 on vda and writes one, talks
# to the host over vsock both ways (tests/kvm/vsock_peer.py on the host,
# guest/vsock.c in the guest: a line with the nonce each way), and waits
# for PUT /actions SendCtrlAltDel, which reaches its init as SIGINT: it
# syncs and reboots, which ends kvmini with 0; the host reads the guest's
# file from the image with debugfs. (No share: Firecracker's API has no
# route for one; the guest's share steps fail by design and are not judged.)

case_stock_api() {
	api_case_ready stock-api || return
	CLOG=$LOG/stock-api
	rm -rf "$CLOG"
	mkdir -p "$CLOG"
	local sock=$CLOG/api.sock codes rc nonce=api$RANDOM$RANDOM vsock=$CLOG/v.sock peers=()
	mkdir -p "$CLOG/rootdir"
	echo "host nonce $nonce" >"$CLOG/rootdir/from-host.txt"
	if ! mkfs.ext4 -q -F -d "$CLOG/rootdir" "$CLOG/root.ext4" 16M >"$CLOG/mkfs.out" 2>&1 ||
		! truncate -s 1M "$CLOG/data.img"; then
		fail "mkfs.ext4 -d or truncate failed ($(tail -n1 "$CLOG/mkfs.out"))"
		return
	fi
	ip netns exec "$NS" timeout --foreground -k 10 "$LIMIT" "$KVMINI" run --api-sock "$sock" --boot-timing \
		</dev/null >"$CLOG/console.out" 2>"$CLOG/kvmini.err" &
	local vm=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	# The guest's connection to host port 5001 lands on uds_path_5001.
	python3 tests/kvm/vsock_peer.py serve "${vsock}_5001" "$CLOG/vsock-serve.log" "$LIMIT" \
		2>"$CLOG/vsock-serve.err" &
	peers+=($!)
	local args="console=ttyS0 reboot=k panic=-1 pci=off kvmini.ip=10.211.0.2/24 kvmini.check=10.211.0.1 kvmini.end=cad kvmini.mmds=169.254.169.254 kvmini.nonce=$nonce kvmini.rng=1 kvmini.blk=rootfs kvmini.vsock=5000:5001"
	# The Go SDK's logging handlers: FIFOs it made for the log (which it
	# reads) and the metrics (which nobody reads here: kvmini must not block).
	mkfifo "$CLOG/log.fifo" "$CLOG/metrics.fifo"
	cat "$CLOG/log.fifo" >"$CLOG/log.txt" 2>/dev/null &
	peers+=($!)
	codes=$(api_call "$sock" GET /machine-config)
	codes+=" $(api_call "$sock" PUT /logger "{\"log_path\":\"$CLOG/log.fifo\",\"level\":\"Debug\",
		\"show_level\":true,\"show_log_origin\":true}")"
	codes+=" $(api_call "$sock" PUT /metrics "{\"metrics_path\":\"$CLOG/metrics.fifo\"}")"
	codes+=" $(api_call "$sock" PUT /boot-source "{\"kernel_image_path\":\"$STOCK_DIR/vmlinuz\",
		\"initrd_path\":\"build/stock-guest/initramfs.gz\",\"boot_args\":\"$args\"}")"
	codes+=" $(api_call "$sock" PUT /machine-config "{\"vcpu_count\":$CPUS,\"mem_size_mib\":256}")"
	codes+=" $(api_call "$sock" PUT /network-interfaces/eth0 "{\"iface_id\":\"eth0\",
		\"host_dev_name\":\"$TAP\",\"guest_mac\":\"$KVM_GUEST_MAC\"}")"
	codes+=" $(api_call "$sock" PUT /mmds/config '{"version":"V2","network_interfaces":["eth0"]}')"
	codes+=" $(api_call "$sock" PUT /mmds "{\"latest\":{\"meta-data\":{\"nonce\":\"$nonce\"}}}")"
	codes+=" $(api_call "$sock" PUT /entropy '{"rate_limiter":{"bandwidth":{"size":65536,"refill_time":100}}}')"
	codes+=" $(api_call "$sock" PUT /vsock "{\"guest_cid\":3,\"uds_path\":\"$vsock\"}")"
	codes+=" $(api_call "$sock" PUT /drives/data "{\"drive_id\":\"data\",\"path_on_host\":\"$CLOG/data.img\",
		\"is_root_device\":false,\"is_read_only\":true}")"
	codes+=" $(api_call "$sock" PUT /drives/rootfs "{\"drive_id\":\"rootfs\",\"path_on_host\":\"$CLOG/root.ext4\",
		\"is_root_device\":true,\"is_read_only\":false,\"cache_type\":\"Unsafe\",\"io_engine\":\"Sync\"}")"
	codes+=" $(api_call "$sock" PUT /actions '{"action_type":"InstanceStart"}')"
	codes+=" $(api_call "$sock" PUT /actions '{"action_type":"FlushMetrics"}')"
	python3 tests/kvm/vsock_peer.py connect "$vsock" 5000 "host nonce $nonce" "$CLOG/vsock-connect.log" \
		"$LIMIT" 2>"$CLOG/vsock-connect.err" &
	peers+=($!)
	[ "$codes" = "200 204 204 204 204 204 204 204 204 204 204 204 204 204" ] &&
		pass "configured and started through the API alone (GET /machine-config 200, then 204 each; the log and metrics on FIFOs, the metrics' unread, FlushMetrics after the start)" ||
		fail "the API answered $codes ($(cat "$CLOG/api.out" 2>/dev/null))"
	send_cad_when_waiting "$sock" "$vm"
	wait "$vm"
	rc=$?
	# The peers are done when the guest was; one still waiting is ended.
	local p
	for p in "${peers[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	local out klog
	out=$(tr -d '\r' <"$CLOG/console.out")
	# kvmini's log: on stderr until PUT /logger, then in the FIFO's copy.
	klog=$(cat "$CLOG/kvmini.err" "$CLOG/log.txt" 2>/dev/null)
	grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' "$CLOG/kvmini.err" &&
		fail "sanitizer report in kvmini (log $CLOG/kvmini.err)"
	grep -qE 'kvmini-init: virtio-mmio devices: LNRO0005:00 LNRO0005:01 LNRO0005:02 LNRO0005:03 LNRO0005:04$' <<<"$out" &&
		pass "kernel: the interface, the entropy and vsock devices and the two drives PUT before the start found through the DSDT" ||
		fail "kernel: the devices were not found through the DSDT ($(grep -m1 'virtio-mmio devices:' <<<"$out"))"
	grep -q 'kvmini-check: PASS: ping 10.211.0.1 from the guest' <<<"$out" &&
		pass "guest: pinged the host over the tap the API named" ||
		fail "guest: no answered ping (log $CLOG/console.out)"
	grep -q 'kvmini-check: PASS: MMDS: the token from before the window still opens the metadata' <<<"$out" &&
		pass "guest: a V2 token from the metadata service configured before the start read the nonce" ||
		fail "guest: the metadata service configured before the start did not answer (log $CLOG/console.out)"
	grep -q 'kvmini-check: PASS: entropy: 256 bytes from /dev/hwrng' <<<"$out" &&
		grep -q 'kvmini-check: PASS: entropy: virtio-rng is the hardware RNG' <<<"$out" &&
		pass "guest: virtio-rng is its hardware RNG and /dev/hwrng gave 256 bytes" ||
		fail "guest: no bytes from virtio-rng (log $CLOG/console.out)"
	local step bad=""
	for step in "drive: /dev/vda is rootfs" "drive: ext4 on /dev/vda mounted" "drive: from-host.txt read" \
		"drive: from-guest.txt written" "drive: unmounted" "drive: /dev/vdb is read-only"; do
		grep -q "kvmini-check: PASS: $step" <<<"$out" || bad+=" [$step]"
	done
	[ -z "$bad" ] && pass "guest: the root drive PUT last is /dev/vda with root=/dev/vda rw; its ext4 read and written; vdb read-only" ||
		fail "guest: drive steps failed:$bad (log $CLOG/console.out)"
	bad=""
	for step in "vsock: the guest's CID is 3" "vsock: connected to the host (CID 2) on port 5001, answered" \
		"vsock: the host connected to port 5000: host nonce $nonce"; do
		grep -qF "kvmini-check: PASS: $step" <<<"$out" || bad+=" [$step]"
	done
	[ -z "$bad" ] && pass "guest: vsock CID 3 both ways: its line to host port 5001 answered, the host's to guest port 5000 read" ||
		fail "guest: vsock steps failed:$bad (log $CLOG/console.out)"
	[ "$(cat "$CLOG/vsock-serve.log" 2>/dev/null)" = "guest nonce $nonce" ] &&
		grep -qE '^OK [0-9]+$' "$CLOG/vsock-connect.log" 2>/dev/null &&
		grep -qxF "guest got: host nonce $nonce" "$CLOG/vsock-connect.log" &&
		pass "host: the guest's line reached uds_path_5001; CONNECT 5000 answered OK, then the guest's answer" ||
		fail "host: vsock peers saw '$(cat "$CLOG/vsock-serve.log" 2>/dev/null)' and '$(tr '\n' '|' <"$CLOG/vsock-connect.log" 2>/dev/null)'"
	debugfs -R 'cat /from-guest.txt' "$CLOG/root.ext4" 2>/dev/null | grep -q "guest nonce $nonce" &&
		pass "host: the guest's file is on the ext4 image (debugfs)" ||
		fail "host: no from-guest.txt with the nonce on $CLOG/root.ext4"
	grep -q 'InstanceStart' "$CLOG/log.txt" 2>/dev/null &&
		pass "the log came through the FIFO PUT /logger named (the SDK's reader took its lines)" ||
		fail "no InstanceStart line in the log read from the FIFO ($CLOG/log.txt)"
	grep -q "eth0: MAC $KVM_GUEST_MAC" <<<"$klog" &&
		pass "the interface has the guest_mac PUT before the start" ||
		fail "no 'eth0: MAC $KVM_GUEST_MAC' in kvmini's log"
	grep -q 'kvmini-init: Ctrl+Alt+Del: syncing, rebooting' <<<"$out" &&
		pass "guest: Ctrl+Alt+Del reached its init (SIGINT), which synced and rebooted" ||
		fail "guest: no Ctrl+Alt+Del seen by its init (log $CLOG/console.out)"
	[ "$rc" -eq 0 ] && grep -q 'guest rebooted' <<<"$klog" &&
		pass "the guest rebooted, kvmini ended with 0" ||
		fail "kvmini ended with $rc (log $CLOG/kvmini.err)"
	echo "INFO: acceptance stock-api: $(grep -E 'userspace \(boot marker\)|first guest instruction' <<<"$klog" | sed 's/^kvmini: //' | tr '\n' ';')"
}
