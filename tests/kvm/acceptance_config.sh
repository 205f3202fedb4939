# Sourced by tests/kvm/acceptance.sh: the stock-config case, the launch of
# Kata Containers' Firecracker driver and the drive swap of
# firecracker-containerd, with Debian's cloud kernel. kvmini runs under the
# name `firecracker` (a link made here), asked `--version` first as Kata
# asks, then started with `--api-sock S --config-file F` and no
# InstanceStart: the test polls GET / every 10 ms until "state": "Running",
# when the vsock's socket file must exist. The config file is written as
# the orchestrators write theirs: `vsock_id`, `smt`, an empty rate limiter
# `{}`, explicit nulls, the root drive listed after a placeholder drive (a
# 512-byte file, read-only). The guest pings the host, finds rootfs as
# /dev/vda with root=/dev/vda rw, writes from-guest.txt to its ext4, and
# waits on the placeholder (/dev/vdb, guest/init kvmini.swap=vdb); the host
# bind-mounts a new ext4 image over the placeholder's path (in kvmini's mount
# namespace, which ends with it) and sends
# PATCH /drives/data with the same path, as firecracker-containerd does:
# the guest sees the capacity change and reads the new image's file, and
# powers off: kvmini ends with 0, and the host reads the guest's file from
# the root image with debugfs.
# ACCEPT_CONFIG_CAD=1 ends it instead with PUT /actions SendCtrlAltDel,
# which the guest's init (kvmini.end=cad) takes as SIGINT, syncs and
# reboots on; the stock-api case ends that way in CI.

# config_json ROOT DATA VSOCK ARGS: the config file, keys as Kata writes them.
config_json() {
	cat <<EOF
{
  "boot-source": {"kernel_image_path": "$STOCK_DIR/vmlinuz",
                  "initrd_path": "build/stock-guest/initramfs.gz", "boot_args": "$4"},
  "drives": [
    {"drive_id": "data", "path_on_host": "$2", "is_root_device": false,
     "is_read_only": true, "rate_limiter": {}, "io_engine": "Sync"},
    {"drive_id": "rootfs", "path_on_host": "$1", "is_root_device": true,
     "is_read_only": false, "partuuid": null, "cache_type": "Unsafe"}
  ],
  "machine-config": {"vcpu_count": $CPUS, "mem_size_mib": 256, "smt": false},
  "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "$TAP",
                          "guest_mac": "$KVM_GUEST_MAC", "rx_rate_limiter": {},
                          "tx_rate_limiter": null}],
  "vsock": {"vsock_id": "root", "guest_cid": 3, "uds_path": "$3"},
  "logger": null,
  "metrics": null
}
EOF
}

# running SOCK SECONDS: poll GET / every 10 ms until the state is Running.
running() {
	local i
	for ((i = 0; i < $2 * 100; i++)); do
		curl -s --max-time 2 --unix-socket "$1" http://k/ 2>/dev/null | grep -q '"state": *"Running"' &&
			return 0
		sleep 0.01
	done
	return 1
}

case_stock_config() {
	api_case_ready stock-config || return
	CLOG=$LOG/stock-config
	rm -rf "$CLOG"
	mkdir -p "$CLOG/rootdir" "$CLOG/swapdir"
	local sock=$CLOG/api.sock vsock=$CLOG/v.sock nonce=cfg$RANDOM$RANDOM fc=$CLOG/firecracker rc out end=poweroff
	[ "${ACCEPT_CONFIG_CAD:-0}" = 1 ] && end=cad
	echo "host nonce $nonce" >"$CLOG/rootdir/from-host.txt"
	echo "swapped $nonce" >"$CLOG/swapdir/swapped.txt"
	if ! mkfs.ext4 -q -F -d "$CLOG/rootdir" "$CLOG/root.ext4" 16M >"$CLOG/mkfs.out" 2>&1 ||
		! mkfs.ext4 -q -F -d "$CLOG/swapdir" "$CLOG/swap.ext4" 8M >>"$CLOG/mkfs.out" 2>&1 ||
		! truncate -s 512 "$CLOG/data.img"; then
		fail "mkfs.ext4 -d or truncate failed ($(tail -n1 "$CLOG/mkfs.out"))"
		return
	fi
	ln -sfn "$(realpath "$KVMINI")" "$fc"
	out=$("$fc" --version 2>&1)
	grep -qE '^Firecracker v[0-9]+\.[0-9]+\.[0-9]+$' <<<"$(head -n1 <<<"$out")" &&
		pass "firecracker --version: '$(head -n1 <<<"$out")' (Kata parses the first line)" ||
		fail "firecracker --version printed '$out'"
	config_json "$CLOG/root.ext4" "$CLOG/data.img" "$vsock" \
		"console=ttyS0 reboot=k panic=-1 pci=off kvmini.ip=10.211.0.2/24 kvmini.check=10.211.0.1 kvmini.nonce=$nonce kvmini.blk=rootfs kvmini.swap=vdb kvmini.end=$end" \
		>"$CLOG/config.json"
	ip netns exec "$NS" timeout --foreground -k 10 "$LIMIT" "$fc" --api-sock "$sock" \
		--config-file "$CLOG/config.json" </dev/null >"$CLOG/console.out" 2>"$CLOG/kvmini.err" &
	local vm=$!
	if running "$sock" 60; then
		[ -S "$vsock" ] && pass "--config-file started the VM: GET / said Running (polled every 10 ms), the vsock socket there" ||
			fail "GET / said Running before the vsock socket $vsock existed"
	else
		fail "GET / never said Running (log $CLOG/kvmini.err)"
	fi
	if console_wait 'kvmini-check: waiting for the drive swap on vdb' "$LIMIT" "$vm"; then
		# firecracker-containerd's swap: the new device over the same path,
		# in kvmini's mount namespace (ip netns exec made it a new one).
		# (-r -w: kvmini's root and directory, not the namespace's root,
		# which differ where the caller runs chrooted, as on the nested
		# platform.)
		if nsenter -t "$vm" -m -r -w mount --bind "$(realpath "$CLOG/swap.ext4")" \
			"$(realpath "$CLOG/data.img")"; then
			local code
			code=$(api_call "$sock" PATCH /drives/data \
				"{\"drive_id\":\"data\",\"path_on_host\":\"$CLOG/data.img\"}")
			[ "$code" = 204 ] && pass "PATCH /drives/data with the same path, a new image bind-mounted over it: 204" ||
				fail "PATCH /drives/data answered $code ($(cat "$CLOG/api.out"))"
		else
			fail "mount --bind of the new image over $CLOG/data.img"
		fi
	else
		fail "the guest never waited for the drive swap (log $CLOG/console.out)"
	fi
	[ "$end" = cad ] && send_cad_when_waiting "$sock" "$vm"
	wait "$vm"
	rc=$?
	out=$(tr -d '\r' <"$CLOG/console.out")
	grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' "$CLOG/kvmini.err" &&
		fail "sanitizer report in kvmini (log $CLOG/kvmini.err)"
	grep -q 'kvmini-check: PASS: ping 10.211.0.1 from the guest' <<<"$out" &&
		pass "guest: pinged the host over the config file's interface" ||
		fail "guest: no answered ping (log $CLOG/console.out)"
	local step bad=""
	for step in "drive: /dev/vda is rootfs" "drive: from-host.txt read" "drive: from-guest.txt written" \
		"drive: /dev/vdb is read-only" "drive swap: /dev/vdb grew to 16384 sectors" \
		"drive swap: the new ext4 on /dev/vdb mounted, swapped.txt read"; do
		grep -qF "kvmini-check: PASS: $step" <<<"$out" || bad+=" [$step]"
	done
	[ -z "$bad" ] && pass "guest: rootfs (listed last) is /dev/vda, written; the placeholder vdb swapped to 8 MiB and its new ext4 read" ||
		fail "guest: drive steps failed:$bad (log $CLOG/console.out)"
	if [ "$end" = cad ]; then
		grep -q 'kvmini-init: Ctrl+Alt+Del: syncing, rebooting' <<<"$out" &&
			pass "guest: Ctrl+Alt+Del reached its init (SIGINT), which synced and rebooted" ||
			fail "guest: no Ctrl+Alt+Del seen by its init (log $CLOG/console.out)"
	fi
	debugfs -R 'cat /from-guest.txt' "$CLOG/root.ext4" 2>/dev/null | grep -q "guest nonce $nonce" &&
		pass "host: the guest's file is on the root image after the VM ended (debugfs)" ||
		fail "host: no from-guest.txt with the nonce on $CLOG/root.ext4"
	[ "$rc" -eq 0 ] && pass "kvmini (as firecracker) ended with 0 when the guest ended ($end)" ||
		fail "kvmini ended with $rc (log $CLOG/kvmini.err)"
}
