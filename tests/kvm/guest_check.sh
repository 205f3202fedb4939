# Shared by tests/kvm/acceptance.sh and scripts/demo.sh (source it from the
# repository's top): boot the project's own guest (build/guest, made by
# scripts/build-guest.sh) under `kvmini run` with virtio-net on a tap and
# virtio-fs on a directory; the guest's /init (kvmini.check=) pings the host,
# reads the share's from-host.txt and writes from-guest.txt; then judge what
# happened from the console, kvmini's stderr and the share.
# The caller defines pass MSG, fail MSG and not_run MSG (one line each).

KVM_GUEST_TAG=share
# The guest NIC's MAC, given with --mac (kvmini run picks a random one by
# default) so that the frames on the tap can be matched to it.
KVM_GUEST_MAC=52:54:00:12:34:56

# kvm_guest_images LOG: build the guest images, or find them cached; on a
# failure print why (the log's tail) and fail.
kvm_guest_images() {
	scripts/build-guest.sh >"$1" 2>&1 && return 0
	echo "scripts/build-guest.sh failed (log $1):"
	tail -n 5 "$1" | sed 's/^/    /'
	return 1
}

# kvm_check_prepare SHARE: from-host.txt in SHARE with a fresh nonce; sets
# KVM_HOST_NONCE and KVM_GUEST_NONCE (what the guest must write back).
kvm_check_prepare() {
	KVM_HOST_NONCE=host-$RANDOM$RANDOM
	KVM_GUEST_NONCE=guest-$RANDOM$RANDOM
	echo "$KVM_HOST_NONCE" >"$1/from-host.txt"
}

# kvm_check_argv KVMINI CPUS NET SHARE GUEST_CIDR HOST_IP: KVM_ARGV, the
# `kvmini run` command of the check (NET: a --net backend, tap:NAME or
# user); KVM_COMPAT holds --compat where KVM cannot run the guest's kernel
# code (nested PVM). The guest is the default one unless KVM_CHECK_GUEST
# holds other options (--kernel, --initrd, ...); KVM_CHECK_CMDLINE is added
# to its command line; KVM_CHECK_FS_OPTS (",cache=none,...") to its --fs;
# KVM_CHECK_NET_OPTS (--queues N, ...) follow its --net.
kvm_check_argv() {
	KVM_COMPAT=()
	[ -e /sys/module/kvm_pvm ] && KVM_COMPAT=(--compat)
	KVM_ARGV=("$1" run "${KVM_COMPAT[@]}" "${KVM_CHECK_GUEST[@]}" --cpus "$2" --mem 256
		--net "$3" --mac "$KVM_GUEST_MAC" "${KVM_CHECK_NET_OPTS[@]}" --fs "$4:$KVM_GUEST_TAG${KVM_CHECK_FS_OPTS:-}" --boot-timing --counters
		--cmdline "console=ttyS0 reboot=k panic=-1 pci=off kvmini.ip=$5 kvmini.fs=$KVM_GUEST_TAG kvmini.check=$6 kvmini.nonce=$KVM_GUEST_NONCE ${KVM_CHECK_CMDLINE:-}")
}
KVM_CHECK_GUEST=()
KVM_CHECK_NET_OPTS=()

# kvm_check_verdict CONSOLE ERRLOG SHARE RC: one pass/fail line per step of
# the boot and the check; sets KVM_OUT (console, no CRs) and KVM_ERR. Returns
# 1 when the guest never reached its check (later steps are not run).
kvm_check_verdict() {
	local share=$3 rc=$4 why verdict msg
	KVM_OUT=$(tr -d '\r' <"$1")
	KVM_ERR=$(cat "$2")
	if grep -q 'ERROR: \(Address\|Leak\|UndefinedBehavior\)Sanitizer\|runtime error:' <<<"$KVM_ERR"; then
		fail "sanitizer report in kvmini (log $2)"
	fi
	# The kernel's part: it needs no userspace.
	if [ "${KVM_CHECK_DEVICES:-cmdline}" = acpi ]; then
		kvm_has 'kvmini-init: virtio-mmio devices: LNRO0005:00 LNRO0005:01$' &&
			pass "kernel: both virtio-mmio devices found through the DSDT (LNRO0005)" ||
			fail "kernel: the virtio-mmio devices were not found through the DSDT ($(grep -m1 'virtio-mmio devices:' <<<"$KVM_OUT"))"
	else
		kvm_has 'virtio-mmio: Registering device virtio-mmio\.0' && pass "kernel: virtio-mmio devices from the command line" ||
			fail "kernel: no virtio-mmio device registered"
	fi
	kvm_has '^mmio_device_activations 1$' && pass "kernel: a virtio driver activated a device" ||
		fail "kernel: no virtio device activated"
	if ! kvm_has 'Run /init as init process'; then
		fail "kernel: never reached /init (last console line: $(tail -n1 <<<"$KVM_OUT"))"
		not_run "userspace steps: the kernel did not start /init"
		return 1
	fi
	pass "kernel: reached /init"
	# Userspace: /init's own report.
	if ! kvm_has 'kvmini-init: userspace up'; then
		why=$(grep -oE 'init\[1\]: segfault.{0,60}|Kernel panic.{0,80}' <<<"$KVM_OUT" | head -n1)
		fail "userspace: /init did not run (${why:-no output from it})"
		if [ ${#KVM_COMPAT[@]} -eq 0 ] && grep -q 'segfault at ffffffff' <<<"$KVM_OUT"; then
			echo "    a SYSCALL from user mode faulted at LSTAR: this KVM needs --compat (src/vmm/compat/user_relay.h)"
		fi
		not_run "ping, share read, share write: no userspace to run them"
		return 1
	fi
	pass "userspace: /init runs ($(grep -oE 'userspace up [0-9.]+ s after boot' <<<"$KVM_OUT"))"
	while read -r verdict msg; do
		case $verdict in
		PASS:) pass "guest: $msg" ;;
		FAIL:) fail "guest: $msg" ;;
		esac
	done < <(sed -n 's/^kvmini-check: \(PASS: \|FAIL: \)/\1/p' <<<"$KVM_OUT")
	kvm_has 'kvmini-check: done' || fail "guest: the check did not finish"
	# The host's side of each step.
	grep -qF "kvmini-check: from-host.txt says: $KVM_HOST_NONCE" <<<"$KVM_OUT" &&
		pass "host: the guest read the host's file through virtio-fs" ||
		fail "host: the guest did not show from-host.txt's content ($KVM_HOST_NONCE)"
	if [ "$(cat "$share/from-guest.txt" 2>/dev/null)" = "guest nonce $KVM_GUEST_NONCE" ]; then
		pass "host: from-guest.txt on the host holds what the guest wrote"
	else
		fail "host: from-guest.txt is '$(head -c 80 "$share/from-guest.txt" 2>/dev/null)', not 'guest nonce $KVM_GUEST_NONCE'"
	fi
	local end='guest rebooted' how=rebooted
	case ${KVM_CHECK_CMDLINE:-} in *kvmini.end=poweroff*) end='guest powered off \(ACPI S5\)' how="powered off (ACPI S5)" ;; esac
	[ "$rc" -eq 0 ] && kvm_has "$end" && pass "guest $how, kvmini ended with 0" ||
		fail "kvmini ended with $rc (wanted 0 after the guest $how)"
	return 0
}

# kvm_has ERE: the console or kvmini's stderr has a line matching ERE.
kvm_has() { grep -qE -- "$1" <<<"$KVM_OUT"$'\n'"$KVM_ERR"; }

# kvm_boot_figures: kvmini's boot timing and compat relay counts.
kvm_boot_figures() {
	grep -E 'boot timing' <<<"$KVM_ERR" | sed 's/^kvmini: /    /'
	grep -E '^compat_(user_syscalls|user_ints|int3|fwait)' <<<"$KVM_ERR" | sed 's/^/    /'
}
