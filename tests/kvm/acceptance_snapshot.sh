# Sourced by tests/kvm/acceptance.sh: the stock-snap case. Debian's cloud
# kernel on a tap, a virtio-fs share and the metadata service (V2) runs the
# check with its pause window (guest/init kvmini.pause=1): 30 rounds, each
# appending its number to counter.txt through one descriptor kept open and
# pinging the host, and to counter.txt on an ext4 drive (/dev/vda, synced
# each round: kvmini.blkpause=1); before the window the guest takes an MMDS
# session token (kvmini.mmds=), after it reads meta-data/nonce with that
# token.
# Inside the window the test pauses the VM, takes a Full snapshot, copies
# the share twice (for the clones) and kills kvmini; `kvmini run --restore`
# in a new process on the same tap and share goes on: the window's rounds
# continue from where they were (counter.txt 1 to 30, none lost or
# repeated, on the share and on the drive, which the restore reopens at its
# path from the snapshot), the open descriptor still writes, no ping goes unanswered, the
# token from before still opens the metadata, and the guest powers off (0).
# Then the same snapshot twice more as clones, each with another MAC and its
# own copy of the share and of the drive's image: clone1 from the command
# line (--drive with its copy), clone2 as
# Firecracker's clients do it: a kvmini waiting on its API socket, PUT
# /snapshot/load with the memory file, resume_vm, network_overrides (the
# tap, and kvmini's guest_mac) and kvmini's fs_overrides (the copy), its
# copy of the image put at the snapshot's path; each finishes the window
# and its check too.

# snap_take SOCK PID: inside the window, pause, snapshot into $CLOG, copy
# the share for the clones, kill kvmini (the child of the timeout PID);
# what happened goes to snap.txt.
snap_take() {
	local sock=$1 pid=$2 paused created
	for _ in $(seq $((LIMIT * 10))); do
		grep -q 'kvmini-check: pause window' "$CLOG/console.out" 2>/dev/null && break
		sleep 0.1
	done
	sleep 0.5
	paused=$(api_call "$sock" PATCH /vm '{"state":"Paused"}')
	created=$(api_call "$sock" PUT /snapshot/create \
		"{\"snapshot_type\":\"Full\",\"snapshot_path\":\"$CLOG/state\",\"mem_file_path\":\"$CLOG/mem\"}")
	for c in 1 2; do
		rm -rf "$SHARE-clone$c"
		cp -a "$SHARE" "$SHARE-clone$c"
		cp "$CLOG/snap.ext4" "$CLOG/snap.ext4-clone$c"
	done
	echo "paused=$paused created=$created lines=$(wc -l <"$SHARE/counter.txt" 2>/dev/null)" \
		>"$CLOG/snap.txt"
	pkill -KILL -P "$pid"
}

# snap_restore NAME SHARE MAC [ARG...]: kvmini run --restore of the
# snapshot in the namespace (the drive the snapshot's unless ARGs give
# one), console and log in $CLOG/NAME.{out,err}; sets RC.
snap_restore() {
	ip netns exec "$NS" timeout --foreground -k 10 "$LIMIT" "$KVMINI" run --restore "$CLOG/state" \
		--mem-file "$CLOG/mem" --net "tap:$TAP" --mac "$3" --fs "$2:$KVM_GUEST_TAG" "${@:4}" \
		--mmds --mmds-version 2 --mmds-data "$CLOG/mmds.json" --boot-timing --counters \
		</dev/null >"$CLOG/$1.out" 2>"$CLOG/$1.err"
	RC=$?
}

# snap_load NAME SHARE MAC: a kvmini run --api-sock waiting in the
# namespace, then PUT /snapshot/load of the snapshot with the clone's tap,
# MAC and share; console and log in $CLOG/NAME.{out,err}; sets RC (and
# fails the case when the load is not answered 204).
snap_load() {
	local sock=$CLOG/$1.sock code
	rm -f "$sock"
	ip netns exec "$NS" timeout --foreground -k 10 "$LIMIT" "$KVMINI" run --api-sock "$sock" --boot-timing \
		</dev/null >"$CLOG/$1.out" 2>"$CLOG/$1.err" &
	local vm=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	code=$(api_call "$sock" PUT /snapshot/load "{\"snapshot_path\":\"$CLOG/state\",
		\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"$CLOG/mem\"},
		\"resume_vm\":true,\"network_overrides\":[{\"iface_id\":\"eth0\",
		\"host_dev_name\":\"$TAP\",\"guest_mac\":\"$3\"}],
		\"fs_overrides\":[{\"tag\":\"$KVM_GUEST_TAG\",\"shared_dir\":\"$2\"}]}")
	[ "$code" = 204 ] && pass "$1: PUT /snapshot/load into a waiting kvmini answered 204" ||
		fail "$1: PUT /snapshot/load answered $code: $(cat "$CLOG/api.out")"
	wait "$vm"
	RC=$?
}

# snap_verdict NAME SHARE CONSOLE...: the guest's check as the consoles
# (before and after the restore) tell it, the share's counter, the end.
snap_verdict() {
	local name=$1 share=$2 out
	shift 2
	out=$(cat "$@" | tr -d '\r')
	grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' "$CLOG/$name.err" &&
		fail "$name: sanitizer report in kvmini (log $CLOG/$name.err)"
	local steps
	steps=$(grep -cE '^kvmini-check: PASS: (pause window|MMDS: the token from before)' <<<"$out")
	grep -E '^kvmini-check: FAIL: ' <<<"$out" | sed "s/^kvmini-check: /    $name: /"
	if [ "$steps" = 2 ] && ! grep -q '^kvmini-check: FAIL: ' <<<"$out"; then
		pass "$name: the window's pings all answered and the MMDS token from before the snapshot opened the metadata (guest checks)"
	else
		fail "$name: the guest's checks after the restore did not all pass (log $CLOG/$name.out)"
	fi
	grep -q '^kvmini-check: PASS: drive across the pause' <<<"$out" &&
		pass "$name: the drive's counter.txt holds 1 to 30 (guest check, synced each round across the snapshot)" ||
		fail "$name: the drive's counter.txt check did not pass (log $CLOG/$name.out)"
	[ "$(cat "$share/counter.txt" 2>/dev/null)" = "$(seq 1 30)" ] &&
		pass "$name: counter.txt holds 1 to 30 through the descriptor opened before the snapshot, none lost or repeated" ||
		fail "$name: counter.txt is not 1 to 30 ($(tr '\n' ' ' <"$share/counter.txt" 2>/dev/null | head -c 120))"
	[ "$RC" -eq 0 ] && grep -q 'guest powered off' "$CLOG/$name.err" &&
		pass "$name: the restored guest powered off, kvmini ended with 0" ||
		fail "$name: kvmini ended with $RC (log $CLOG/$name.err)"
}

case_stock_snap() {
	api_case_ready stock-snap || return
	CLOG=$LOG/stock-snap
	rm -rf "$CLOG" "$SHARE"
	mkdir -p "$CLOG"
	SHARE=$(mktemp -d)
	kvm_check_prepare "$SHARE"
	echo "{\"latest\":{\"meta-data\":{\"nonce\":\"$KVM_GUEST_NONCE\"}}}" >"$CLOG/mmds.json"
	local sock=$CLOG/api.sock
	if ! mkfs.ext4 -q -F "$CLOG/snap.ext4" 16M >"$CLOG/mkfs.out" 2>&1; then
		fail "mkfs.ext4 failed ($(tail -n1 "$CLOG/mkfs.out"))"
		return
	fi
	KVM_CHECK_GUEST=(--kernel "$STOCK_DIR/vmlinuz" --host-decompress --initrd build/stock-guest/initramfs.gz
		--api-sock "$sock" --mmds --mmds-version 2 --mmds-data "$CLOG/mmds.json"
		--drive "$CLOG/snap.ext4,id=snapdisk")
	KVM_CHECK_CMDLINE+=" kvmini.pause=1 kvmini.blkpause=1 kvmini.mmds=169.254.169.254"
	kvm_check_argv "$KVMINI" "$CPUS" "tap:$TAP" "$SHARE" 10.211.0.2/24 10.211.0.1
	echo "INFO: acceptance stock-snap: kvmini run $(printf '%q ' "${KVM_ARGV[@]:2}")(up to $LIMIT s)"
	ip netns exec "$NS" timeout --foreground -k 10 "$LIMIT" "${KVM_ARGV[@]}" \
		</dev/null >"$CLOG/console.out" 2>"$CLOG/kvmini.err" &
	local vm=$!
	snap_take "$sock" "$vm"
	wait "$vm" 2>/dev/null
	local rec
	rec=$(cat "$CLOG/snap.txt")
	case $rec in
	"paused=204 created=204 "*)
		pass "paused inside the guest's window and snapshotted ($rec; $(grep -o 'snapshot: state.*' "$CLOG/kvmini.err"))" ;;
	*)
		fail "the pause or the snapshot did not happen ($rec: $(cat "$CLOG/api.out" 2>/dev/null))"
		return ;;
	esac
	snap_restore restored "$SHARE" "$KVM_GUEST_MAC"
	echo "INFO: acceptance stock-snap: restored: $(grep -E 'first guest instruction' "$CLOG/restored.err" | sed 's/^kvmini: //')"
	snap_verdict restored "$SHARE" "$CLOG/console.out" "$CLOG/restored.out"
	[ "$(debugfs -R 'cat /counter.txt' "$CLOG/snap.ext4" 2>/dev/null)" = "$(seq 1 30)" ] &&
		pass "restored: the drive's image, reopened at its path, holds counter.txt 1 to 30 (debugfs)" ||
		fail "restored: counter.txt on $CLOG/snap.ext4 is not 1 to 30"
	# The restored device asks the guest to announce itself (its MAC may
	# now be behind another port); the guest's ANNOUNCE_ACK and every other
	# control command it sent are answered OK.
	grep -qx 'rx_announce_requested 1' "$CLOG/restored.err" &&
		grep -qx 'tx_ctrl_refused 0' "$CLOG/restored.err" &&
		pass "restored: the guest was asked to announce itself (VIRTIO_NET_S_ANNOUNCE), no control command refused" ||
		fail "restored: rx_announce_requested 1 and tx_ctrl_refused 0 expected in $CLOG/restored.err"
	grep -qF "kvmini-check: from-host.txt says: $KVM_HOST_NONCE" "$CLOG/console.out" &&
		[ "$(cat "$SHARE/from-guest.txt" 2>/dev/null)" = "guest nonce $KVM_GUEST_NONCE" ] &&
		pass "before the snapshot: the guest read from-host.txt and wrote from-guest.txt" ||
		fail "before the snapshot: the share's read or write did not happen (log $CLOG/console.out)"
	snap_restore clone1 "$SHARE-clone1" 52:54:00:12:34:c1 --drive "$CLOG/snap.ext4-clone1,id=snapdisk"
	snap_verdict clone1 "$SHARE-clone1" "$CLOG/console.out" "$CLOG/clone1.out"
	mv "$CLOG/snap.ext4-clone2" "$CLOG/snap.ext4"     # restored and clone1 are done with it
	snap_load clone2 "$SHARE-clone2" 52:54:00:12:34:c2
	snap_verdict clone2 "$SHARE-clone2" "$CLOG/console.out" "$CLOG/clone2.out"
	grep -q 'eth0: MAC 52:54:00:12:34:c2' "$CLOG/clone2.err" &&
		pass "clone2: the device has the MAC network_overrides gave" ||
		fail "clone2: no 'eth0: MAC 52:54:00:12:34:c2' in its log"
	rm -rf "$SHARE-clone1" "$SHARE-clone2"
	rm -f "$CLOG/mem" "$CLOG/snap.ext4" "$CLOG/snap.ext4-clone1"   # what the logs need not keep
	KVM_CHECK_GUEST=()
}
