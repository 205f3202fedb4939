#!/usr/bin/env bash
# Every bad argument to kvmini gets a clear message and exit status 2 (usage)
# or 1 (runtime), and nothing is left behind.
set -u
cd "$(dirname "$0")/../.."
BIN=${KVMINI:-build/kvmini-san}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sock=$tmp/net.sock

# expect NAME STATUS PATTERN -- ARGS...
expect() {
	local name=$1 status=$2 pattern=$3
	shift 4
	local out rc
	out=$(timeout 10 "$BIN" "$@" 2>&1)
	rc=$?
	if [ "$rc" -eq "$status" ] && grep -qE -- "$pattern" <<<"$out"; then
		echo "PASS: cli $name"
	else
		echo "FAIL: cli $name (exit $rc, wanted $status; output: $out)"
	fi
}

expect no-command 2 'usage: kvmini' --
expect help 0 'vhost net' -- --help
expect version 0 '^kvmini [0-9]' -- --version
expect unknown-command 2 'unknown command "frobnicate"' -- frobnicate
expect vhost-no-device 2 'usage: kvmini vhost' -- vhost
expect vhost-unknown-device 2 'unknown vhost device "foo"' -- vhost foo
expect net-help 0 '--backend BACKEND' -- vhost net --help
expect net-missing-required 2 '--socket and --backend are required' -- vhost net
expect net-unknown-backend 2 'unknown network backend "bogus"' -- vhost net --socket "$sock" --backend bogus
expect net-tap-no-name 2 'tap needs an argument' -- vhost net --socket "$sock" --backend tap:
expect net-tap-long-name 2 'too long \(at most 15' -- vhost net --socket "$sock" --backend tap:averyveryverylongname
expect net-loopback-arg 2 'loopback takes no argument' -- vhost net --socket "$sock" --backend loopback:x
expect net-bad-mac 2 'not a unicast MAC' -- vhost net --socket "$sock" --backend loopback --mac 01:02:03:04:05:06
expect net-short-mac 2 'not a unicast MAC' -- vhost net --socket "$sock" --backend loopback --mac 52:54:00
expect net-bad-mtu 2 'not a number from 68 to 65535' -- vhost net --socket "$sock" --backend loopback --mtu 10
expect net-mtu-junk 2 'not a number from 68 to 65535' -- vhost net --socket "$sock" --backend loopback --mtu 1500x
expect net-mac-twice 2 '^kvmini: error: --mac given twice$' -- vhost net --socket "$sock" --backend loopback --mac 02:00:00:00:00:01 --mac 02:00:00:00:00:02
expect net-bad-tx-limit 2 'tx-rate-limit: "bw=1x" is not' -- vhost net --socket "$sock" --backend loopback --tx-rate-limit bw=1x
expect net-bad-rx-limit 2 'rx-rate-limit: "speed=1" is not' -- vhost net --socket "$sock" --backend loopback --rx-rate-limit bw=1/100,speed=1
expect net-huge-limit 2 'above 2\^52' -- vhost net --socket "$sock" --backend loopback --tx-rate-limit bw=9999999999999999999/100
expect net-bad-tx-coalesce 2 'tx-coalesce-us: "1001" is not a number of microseconds from 0 to 1000' -- vhost net --socket "$sock" --backend loopback --tx-coalesce-us 1001
expect net-bad-poll 2 'poll-us: "1001" is not a number of microseconds from 0 to 1000' -- vhost net --socket "$sock" --backend loopback --poll-us 1001
expect net-bad-iface-id 2 'iface-id: "a/b" must be' -- vhost net --socket "$sock" --backend loopback --iface-id a/b
touch "$tmp/notasocket"
expect net-api-sock-not-socket 1 'api-sock .*notasocket: exists and is not a socket' -- vhost net --socket "$sock" --backend loopback --api-sock "$tmp/notasocket"
expect net-unknown-option 2 'unknown option "--bogus"' -- vhost net --socket "$sock" --backend loopback --bogus
expect net-missing-value 2 'option --mac needs a value' -- vhost net --socket "$sock" --backend loopback --mac
expect net-extra-arg 2 'unexpected argument "extra"' -- vhost net --socket "$sock" --backend loopback extra
expect net-socket-dir-missing 1 'x.sock' -- vhost net --socket "$tmp/no/such/dir/x.sock" --backend loopback
expect net-stream-missing 2 'cannot connect' -- vhost net --socket "$sock" --backend stream:"$tmp/absent"
expect net-user-bad-net 2 'expected A.B.C.D/N' -- vhost net --socket "$sock" --backend user:net=300.1.1.1/24
expect net-user-bad-option 2 'unknown user option "bogus"' -- vhost net --socket "$sock" --backend user:bogus=1
# The metadata service's options.
expect net-mmds-not-link-local 2 'not a link-local IPv4 address' -- vhost net --socket "$sock" --backend loopback --mmds=10.0.0.1
expect net-mmds-broadcast 2 'not a link-local IPv4 address' -- vhost net --socket "$sock" --backend loopback --mmds=169.254.255.255
expect net-mmds-network 2 'not a link-local IPv4 address' -- vhost net --socket "$sock" --backend loopback --mmds=169.254.0.0
expect net-mmds-bad-version 2 '"3" is not 1 or 2' -- vhost net --socket "$sock" --backend loopback --mmds --mmds-version 3
expect net-mmds-data-alone 2 'need --mmds' -- vhost net --socket "$sock" --backend loopback --mmds-data x.json
expect net-mmds-data-absent 2 'absent.json: No such file' -- vhost net --socket "$sock" --backend loopback --mmds --mmds-data "$tmp/absent.json"
echo '[1, 2' >"$tmp/bad.json"
expect net-mmds-data-not-json 2 'bad.json: not JSON' -- vhost net --socket "$sock" --backend loopback --mmds --mmds-data "$tmp/bad.json"
{ printf '{"k":"'; head -c 60000 /dev/zero | tr '\0' a; printf '"}'; } >"$tmp/big.json"
expect net-mmds-data-too-big 2 'larger than the store limit' -- vhost net --socket "$sock" --backend loopback --mmds --mmds-data "$tmp/big.json"
touch "$tmp/regular"
expect net-socket-is-file 1 'regular' -- vhost net --socket "$tmp/regular" --backend loopback

# A running server shuts down cleanly on SIGTERM and prints its counters.
"$BIN" vhost net --socket "$sock" --backend loopback --counters-file "$tmp/c" 2>"$tmp/log" &
pid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
kill -USR1 "$pid"; sleep 0.3
kill -TERM "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^tx_packets 0$' "$tmp/c" && [ ! -e "$sock" ] &&
   [ "$(grep -c '^rx_packets' "$tmp/log")" -eq 2 ]; then
	echo "PASS: cli sigterm-counters"
else
	echo "FAIL: cli sigterm-counters (exit $rc; $(cat "$tmp/log"))"
fi

# vhost fs and fuse-mount.
expect fs-missing-required 2 '--socket and --tag are required' -- vhost fs
expect fs-no-shared-dir 2 '--shared-dir is required' -- vhost fs --socket "$sock" --tag t
expect fs-shared-dir-missing 1 'No such file' -- vhost fs --socket "$sock" --tag t --shared-dir "$tmp/absent"
expect fs-tag-too-long 2 'must be 1 to 36 bytes' -- vhost fs --socket "$sock" --tag 0123456789012345678901234567890123456 --backend memfs
expect fs-bad-queues 2 '--queues: "0"' -- vhost fs --socket "$sock" --tag t --backend memfs --queues 0
expect fs-bad-threads 2 '--threads: "100"' -- vhost fs --socket "$sock" --tag t --backend memfs --threads 100
expect fs-bad-poll 2 '--poll-us: "1001" is not a number of microseconds from 0 to 1000' -- vhost fs --socket "$sock" --tag t --backend memfs --poll-us 1001
expect fs-bad-backend 2 'not passthrough or memfs' -- vhost fs --socket "$sock" --tag t --backend bogus
expect fs-bad-cache 2 'not none, metadata, auto or always' -- vhost fs --socket "$sock" --tag t --backend memfs --cache sometimes
expect fs-bad-owner 2 'not UID:GID' -- vhost fs --socket "$sock" --tag t --backend memfs --squash-owner x
expect mount-missing-args 2 'expected DIR and MOUNTPOINT' -- fuse-mount
expect mount-dir-missing 1 'shared directory .*: No such file' -- fuse-mount "$tmp/absent" "$tmp"
expect mount-point-missing 1 'mount point .*: No such file' -- fuse-mount "$tmp" "$tmp/absent"
expect mount-point-file 1 'is not a directory' -- fuse-mount "$tmp" "$tmp/regular"
expect mount-bad-threads 2 '--threads: "0" is not a number from 1 to 64' -- fuse-mount "$tmp" "$tmp" --threads 0
expect mount-bad-max-write 2 '--max-write: "100" is not a number of bytes' -- fuse-mount "$tmp" "$tmp" --max-write 100
expect mount-unknown-option 2 'unknown option "--queues"' -- fuse-mount "$tmp" "$tmp" --queues 2
expect fs-memfs-max-fds 2 '--max-fds is for the passthrough backend' -- vhost fs --socket "$sock" --tag t --backend memfs --max-fds 100
expect fs-passthrough-memfs-size 2 '--memfs-size is for the memfs backend' -- vhost fs --socket "$sock" --tag t --shared-dir "$tmp" --memfs-size 8
expect fs-bad-max-write 2 '--max-write: "2000000" is not a number of bytes from 4096' -- vhost fs --socket "$sock" --tag t --backend memfs --max-write 2000000

# vhost blk: a missing or unusable image is a usage error, as a bad flag.
truncate -s 1M "$tmp/disk.img"
B=(vhost blk --socket "$sock")
expect blk-help 0 '--image FILE' -- vhost blk --help
expect blk-listed 0 'blk   virtio-blk' -- vhost --help
expect blk-missing-required 2 '--socket and --image are required' -- vhost blk
expect blk-no-image 2 '--socket and --image are required' -- "${B[@]}" --read-only
expect blk-image-missing 2 '^kvmini: error: --image .*absent.img: No such file or directory$' -- "${B[@]}" --image "$tmp/absent.img"
expect blk-image-not-file 2 '--image /dev/null: neither a file nor a block device' -- "${B[@]}" --image /dev/null
expect blk-image-dir 2 "--image $tmp: Is a directory" -- "${B[@]}" --image "$tmp"
expect blk-serial-too-long 2 '--serial: "012345678901234567890" is longer than 20 bytes' -- "${B[@]}" --image "$tmp/disk.img" --serial 012345678901234567890
expect blk-queues-two 2 '--queues: "2": the device has 1 request queue' -- "${B[@]}" --image "$tmp/disk.img" --queues 2
expect blk-queues-junk 2 '--queues: "1x"' -- "${B[@]}" --image "$tmp/disk.img" --queues 1x
expect blk-bad-seccomp 2 '--seccomp: "maybe" is not on or off' -- "${B[@]}" --image "$tmp/disk.img" --seccomp maybe
expect blk-unknown-option 2 'unknown option "--bogus"' -- "${B[@]}" --image "$tmp/disk.img" --bogus
expect blk-missing-value 2 'option --serial needs a value' -- "${B[@]}" --image "$tmp/disk.img" --serial
expect blk-extra-arg 2 'unexpected argument "extra"' -- "${B[@]}" --image "$tmp/disk.img" extra
expect blk-socket-is-file 1 'regular' -- vhost blk --socket "$tmp/regular" --image "$tmp/disk.img"
[ -f "$tmp/regular" ] && echo "PASS: cli blk-socket-is-file-kept" || echo "FAIL: cli blk-socket-is-file-kept"

# A running blk server: the counters on SIGUSR1 and at SIGTERM, in the log
# and in --counters-file; exit 0; the socket removed.
"$BIN" vhost blk --socket "$sock" --image "$tmp/disk.img" --read-only --serial s1 \
	--counters-file "$tmp/blk.c" 2>"$tmp/blk.log" &
pid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
kill -USR1 "$pid"
for _ in $(seq 30); do [ -s "$tmp/blk.c" ] && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 0 ] && [ ! -e "$sock" ] && grep -q '^rx_requests_read 0$' "$tmp/blk.c" &&
   grep -q '^vhost_user_connections 0$' "$tmp/blk.c" &&
   [ "$(grep -c '^kvmini: counters$' "$tmp/blk.log")" -eq 2 ] &&
   [ "$(grep -c '^rx_writes_read_only 0$' "$tmp/blk.log")" -eq 2 ] &&
   grep -q 'virtio-blk on .*disk.img, 2048 sectors, read-only$' "$tmp/blk.log"; then
	echo "PASS: cli blk-sigterm-counters"
else
	echo "FAIL: cli blk-sigterm-counters (exit $rc; $(cat "$tmp/blk.log"))"
fi

# kvmini run's net controls and fs watch options (shared with vhost net / vhost fs);
# all refused while parsing, before any VM exists (/dev/null stands for the kernel).
K=(run --kernel /dev/null)
expect run-limit-before-net 2 'tx-rate-limit applies to the --net before it' -- "${K[@]}" --tx-rate-limit ops=1/100 --net loopback
expect run-iface-id-before-net 2 'iface-id applies to the --net before it' -- "${K[@]}" --iface-id eth9
expect run-bad-limit 2 'rx-rate-limit: "bw=1x" is not' -- "${K[@]}" --net loopback --rx-rate-limit bw=1x
expect run-bad-iface-id 2 'iface-id: "a/b" must be' -- "${K[@]}" --net loopback --iface-id a/b
expect run-dup-iface-id 2 'two interfaces are called "eth1"' -- "${K[@]}" --net loopback --iface-id eth1 --net loopback
expect run-mac-before-net 2 'mac applies to the --net before it' -- "${K[@]}" --mac 02:00:00:00:00:01 --net loopback
expect run-mtu-before-net 2 'mtu applies to the --net before it' -- "${K[@]}" --mtu 9000
expect run-bad-mac 2 'mac: "52:54:00" is not a unicast MAC' -- "${K[@]}" --net loopback --mac 52:54:00
expect run-multicast-mac 2 'mac: "01:00:5e:00:00:01" is not a unicast MAC address: multicast' -- "${K[@]}" --net loopback --mac 01:00:5e:00:00:01
expect run-bad-mtu 2 'mtu: "67" is not a number from 68 to 65535' -- "${K[@]}" --net loopback --mtu 67
expect run-huge-mtu 2 'mtu: "65536" is not a number from 68 to 65535' -- "${K[@]}" --net loopback --mtu 65536
expect run-zero-mac 2 'mac: "00:00:00:00:00:00" is not a unicast MAC address: .*all-zero' -- "${K[@]}" --net loopback --mac 00:00:00:00:00:00
expect run-mac-signed 2 'mac: "02:00:00:00:00:-1" is not a unicast MAC address like' -- "${K[@]}" --net loopback --mac 02:00:00:00:00:-1
expect run-mtu-junk 2 'mtu: "9000x" is not a number from 68 to 65535' -- "${K[@]}" --net loopback --mtu 9000x
expect run-mac-twice 2 'mac given twice for the --net loopback' -- "${K[@]}" --net loopback --mac 02:00:00:00:00:01 --mac 02:00:00:00:00:02
expect run-mtu-twice 2 'mtu given twice for the --net user' -- "${K[@]}" --net loopback --mtu 1400 --net user --mtu 1400 --mtu 1500
expect run-mmds-no-net 2 '--mmds needs a network device \(--net\)' -- "${K[@]}" --mmds
expect run-mmds-bad-addr 2 'not a link-local IPv4 address' -- "${K[@]}" --net loopback --mmds=10.0.0.1
expect run-mmds-version-alone 2 'need --mmds' -- "${K[@]}" --net loopback --mmds-version 2
expect run-vsock-no-colon 2 'vsock 3: give CID:PATH' -- "${K[@]}" --vsock 3
expect run-vsock-host-cid 2 'vsock 2:/tmp/v.sock: give CID:PATH, CID from 3 to 4294967295' -- "${K[@]}" --vsock 2:/tmp/v.sock
expect run-vsock-big-cid 2 'vsock 4294967296:/tmp/v.sock: give CID:PATH' -- "${K[@]}" --vsock 4294967296:/tmp/v.sock
expect run-vsock-junk-cid 2 'vsock 3x:/tmp/v.sock: give CID:PATH' -- "${K[@]}" --vsock 3x:/tmp/v.sock
expect run-vsock-no-path 2 'vsock 3:: give CID:PATH' -- "${K[@]}" --vsock 3:
expect run-balloon-above-mem 2 'balloon 300: the balloon.s amount is above guest memory \(--mem 256 MiB\)' -- "${K[@]}" --balloon 300
expect run-balloon-no-amount 2 'balloon ,stats=1: the amount must come first, a number of MiB from 0 to 1048576' -- "${K[@]}" --balloon ,stats=1
expect run-balloon-junk-amount 2 'balloon 16M: the amount must come first' -- "${K[@]}" --balloon 16M
expect run-balloon-stats-range 2 'balloon 16,stats=65536: stats="65536" is not a number of seconds from 0 to 65535' -- "${K[@]}" --balloon 16,stats=65536
expect run-balloon-unknown 2 'balloon 16,deflate_on_oom: unknown option "deflate_on_oom" \(deflate-on-oom, stats=SECONDS\)' -- "${K[@]}" --balloon 16,deflate_on_oom
expect run-balloon-twice 2 'balloon 8: a VM has one balloon, given already' -- "${K[@]}" --balloon 16 --balloon 8
expect run-balloon-restore 2 'balloon: with --restore this comes from the snapshot' -- run --restore /dev/null --mem-file /dev/null --balloon 16
expect run-balloon-api 2 'balloon: kvmini run --api-sock or --config-file without --kernel' -- run --api-sock /tmp/kvmini-cli-none.sock --balloon 16
expect run-vsock-long-path 2 'PATH a unix socket path of at most 96 bytes' -- "${K[@]}" --vsock "3:/tmp/$(head -c 120 /dev/zero | tr '\0' 'x')"
expect run-wait-with-vsock 2 'vsock: kvmini run --api-sock or --config-file without' -- run --api-sock "$tmp/wait.sock" --vsock 3:"$tmp/v.sock"
expect run-mmds-iface-unknown 2 'mmds-iface eth3: no interface has that id' -- "${K[@]}" --net loopback --mmds --mmds-iface eth3
expect run-mmds-iface-alone 2 'mmds-iface needs --mmds' -- "${K[@]}" --net loopback --mmds-iface eth0
expect run-max-watches-bad 2 'max-watches: "0" is not a number' -- "${K[@]}" --fs "$tmp:t" --max-watches 0
expect run-no-notify-no-fs 2 'no-notify and --max-watches are for --fs shares' -- "${K[@]}" --no-notify
# A share's own options (--fs DIR:TAG,OPTION...): the same table as vhost fs's.
expect run-fs-bad-cache 2 "fs $tmp:t: cache: \"sometimes\" is not none, metadata, auto or always" -- "${K[@]}" --fs "$tmp:t,cache=sometimes"
expect run-fs-bad-threads 2 'threads: "0" is not a number from 1 to 64' -- "${K[@]}" --fs "$tmp:t,cache=none,threads=0"
expect run-fs-bad-poll 2 'poll-us: "x" is not a number of microseconds' -- "${K[@]}" --fs "$tmp:t,poll-us=x"
expect run-fs-bad-queues 2 'queues: "17" is not a number from 1 to 16' -- "${K[@]}" --fs "$tmp:t,queues=17"
expect run-fs-unknown-option 2 'unknown option "backend"' -- "${K[@]}" --fs "$tmp:t,backend=memfs"
expect run-fs-flag-with-value 2 'xattr-all takes no value' -- "${K[@]}" --fs "$tmp:t,xattr-all=1"
expect run-fs-value-missing 2 'max-fds needs a value' -- "${K[@]}" --fs "$tmp:t,max-fds"
expect run-fs-empty-tag 2 'the tag must be 1 to 36 bytes' -- "${K[@]}" --fs "$tmp:,cache=none"
expect run-fs-bad-owner 2 'squash-owner: "root" is not UID:GID' -- "${K[@]}" --fs "$tmp:t,squash-owner=root"
# dax=SIZE: a unit, a power of two from 2M to 64G; run's --fs only.
expect run-fs-dax-not-pow2 2 'dax: "3M" is not a window size with a unit' -- "${K[@]}" --fs "$tmp:t,dax=3M"
expect run-fs-dax-small 2 'dax: "1M" is not a window size with a unit' -- "${K[@]}" --fs "$tmp:t,dax=1M"
expect run-fs-dax-no-unit 2 'dax: "1024" is not a window size with a unit' -- "${K[@]}" --fs "$tmp:t,dax=1024"
expect run-fs-dax-big 2 'dax: "128G" is not a window size with a unit' -- "${K[@]}" --fs "$tmp:t,dax=128G"
expect vhost-fs-no-dax 2 'dax' -- vhost fs --socket "$sock" --tag t --backend memfs --dax=1G
# Every option taken (squash-owner's colon is not the DIR:TAG one): parsing
# passes, and the run fails only at the kernel, /dev/null (or at /dev/kvm).
expect run-fs-all-options 1 'kernel|/dev/kvm' -- "${K[@]}" --fs "$tmp:t,cache=none,threads=4,queues=2,poll-us=50,max-write=65536,xattr-all,no-notify,max-watches=10,max-fds=100,squash-owner=0:0,dax=1G"
expect run-help-fs-options 0 'cache=MODE, threads=N' -- run --help
expect run-help-controls 0 '--api-sock PATH' -- run --help
# A kvmini waiting on --api-sock takes its machine from the API.
expect run-wait-with-net 2 'net: kvmini run --api-sock or --config-file without --kernel or --restore takes its machine from the API' -- run --api-sock "$tmp/wait.sock" --net loopback
expect run-wait-with-mem 2 'mem: kvmini run --api-sock or --config-file without' -- run --api-sock "$tmp/wait.sock" --mem 64
# Firecracker's --config-file: each section refused in the words of its
# route, before any VM exists; a well-formed file reaches InstanceStart,
# which fails here at the kernel (/etc/hostname) or at /dev/kvm.
cfg() { printf '%s' "$2" >"$tmp/$1.json"; }
cfg ok '{"boot-source":{"kernel_image_path":"/etc/hostname","boot_args":null},"machine-config":{"vcpu_count":1,"mem_size_mib":64,"smt":false},"network-interfaces":[],"drives":[],"vsock":null,"logger":null,"metrics":null}'
cfg unknown '{"boot-source":{"kernel_image_path":"/etc/hostname"},"colour":1}'
cfg drives '{"boot-source":{"kernel_image_path":"/etc/hostname"},"drives":[{"drive_id":"rootfs"}]}'
cfg machine '{"machine-config":{"vcpu_count":1}}'
cfg vsock '{"boot-source":{"kernel_image_path":"/etc/hostname"},"vsock":{"guest_cid":1,"uds_path":"/tmp/v.sock"}}'
cfg iface '{"network-interfaces":[{"iface_id":"eth0"}]}'
cfg broken '{"boot-source":'
expect run-config-start 1 'config-file .*ok.json: InstanceStart: Cannot start the microVM' -- run --config-file "$tmp/ok.json" --no-api
expect run-config-unknown 1 'unknown key "colour"' -- run --config-file "$tmp/unknown.json"
expect run-config-drives 1 'drives\[0\]: the drive needs "path_on_host"' -- run --config-file "$tmp/drives.json"
expect run-config-vsock 1 'vsock: Invalid vsock device: guest_cid 1: must be 3 to 4294967295' -- run --config-file "$tmp/vsock.json"
expect run-config-machine 1 'machine-config: the machine configuration needs "mem_size_mib"' -- run --config-file "$tmp/machine.json"
expect run-config-iface 1 'network-interfaces\[0\]: the interface needs "host_dev_name"' -- run --config-file "$tmp/iface.json"
expect run-config-broken 1 'broken.json: line 1: ' -- run --config-file "$tmp/broken.json"
expect run-config-missing 2 'config-file .*absent.json: No such file' -- run --config-file "$tmp/absent.json"
expect run-config-kernel 2 'config-file: the file configures the VM' -- run --config-file "$tmp/ok.json" --kernel /dev/null
expect run-no-api-alone 2 'no-api runs the VM of --config-file without a socket' -- run --no-api
expect run-new-key-alone 2 'mmds-new-token-key is for --restore' -- run --kernel /dev/null --mmds-new-token-key
expect run-help-mac 0 '--mac MAC +the MAC of the --net before it' -- run --help

# The `firecracker` personality (the build's symlink of the same program):
# Firecracker's flags, nothing else; harmless ones accepted, the rest refused.
FC=${FIRECRACKER:-build/san/firecracker}
expect_fc() { local BIN=$FC; expect "$@"; }
OK=(--no-api --config-file "$tmp/ok.json")
expect_fc fc-version 0 '^Firecracker v[0-9]+\.[0-9]+\.[0-9]+$' -- --version
expect_fc fc-version-kvmini 0 '^kvmini [0-9]+\.[0-9]+\.[0-9]+ ' -- --version
expect_fc fc-help 0 'usage: firecracker .*--api-sock PATH' -- --help
expect_fc fc-help-refused 0 '--seccomp-filter, --module, --describe-snapshot, --snapshot-version +refused' -- --help
expect_fc fc-unknown 2 'firecracker: unknown flag "--bogus"' -- --bogus
expect_fc fc-kvmini-option 2 'firecracker: unknown flag "--kernel"' -- --kernel /dev/null
expect_fc fc-no-balloon-flag 2 'firecracker: unknown flag "--balloon"' -- --balloon 16
expect_fc fc-kvmini-short 2 'firecracker: unknown flag "-v"' -- -v
expect_fc fc-positional 2 'firecracker: unknown argument "extra"' -- extra
expect_fc fc-seccomp-filter 2 'firecracker: --seccomp-filter is not supported: kvmini builds its own filters per thread' -- --seccomp-filter f.bpf
expect_fc fc-module 2 'firecracker: --module is not supported' -- --module api_server
expect_fc fc-describe-snapshot 2 'firecracker: --describe-snapshot is not supported' -- --describe-snapshot s
expect_fc fc-snapshot-version 2 'firecracker: --snapshot-version is not supported' -- --snapshot-version
expect_fc fc-missing-value 2 'firecracker: --api-sock needs a value' -- --api-sock
expect_fc fc-flag-with-value 2 'firecracker: --no-api takes no value' -- --no-api=1
expect_fc fc-no-api-alone 2 'no-api runs the VM of --config-file without a socket' -- --no-api
expect_fc fc-no-api-and-sock 2 'no-api runs the VM of --config-file without a socket' -- --no-api --api-sock "$tmp/x.sock" --config-file "$tmp/ok.json"
expect_fc fc-bad-level 2 '--level: "loud" is not Error, Warning, Info, Debug, Trace or Off' -- --level loud "${OK[@]}"
expect_fc fc-bad-id 2 '--id: "a_b" is not an instance id' -- --id a_b "${OK[@]}"
expect_fc fc-long-id 2 '--id: "a{65}" is not an instance id' -- --id "$(printf 'a%.0s' {1..65})" "${OK[@]}"
expect_fc fc-bad-payload 2 '--http-api-max-payload-size: "0" is not a number of bytes from 1' -- --http-api-max-payload-size 0 "${OK[@]}"
expect_fc fc-payload-junk 2 '--http-api-max-payload-size: "1k" is not a number' -- --http-api-max-payload-size 1k "${OK[@]}"
expect_fc fc-bad-mmds-size 2 '--mmds-size-limit: "-1" is not a number of bytes' -- --mmds-size-limit -1 "${OK[@]}"
expect_fc fc-bad-start-time 2 '--start-time-us: "soon" is not a number' -- --start-time-us soon "${OK[@]}"
expect_fc fc-log-path-missing-dir 1 "log-path $tmp/no/dir/fc.log: No such file" -- --log-path "$tmp/no/dir/fc.log" "${OK[@]}"
# Accepted: the file reaches InstanceStart, which fails here (kernel or /dev/kvm).
expect_fc fc-config-start 1 'config-file .*ok.json: InstanceStart: Cannot start the microVM' -- "${OK[@]}"

# The jailer (`kvmini jail`, and the build's `jailer` symlink): every bad
# flag refused before anything is made; a missing exec file after the
# chroot's directories were made, which are then gone again.
JAILER=${JAILER:-build/san/jailer}
expect_jailer() { local BIN=$JAILER; expect "$@"; }
J=(--exec-file build/kvmini --uid 12345 --gid 12345 --chroot-base-dir "$tmp/jails")
expect_jailer jail-help 0 'usage: jailer --id ID --exec-file PATH' -- --help
expect jail-subcommand-help 0 'kvmini jail \(the same flags\)' -- jail --help
expect_jailer jail-no-id 2 'jail: --id, --exec-file, --uid and --gid are required \(missing: --id\)' -- "${J[@]}"
expect jail-subcommand-no-id 2 'missing: --id' -- jail "${J[@]}"
expect_jailer jail-no-exec 2 'missing: --exec-file' -- --id vm1 --uid 1 --gid 1
expect_jailer jail-no-gid 2 'missing: --gid' -- --id vm1 --exec-file build/kvmini --uid 1
expect_jailer jail-bad-id 2 '--id: "vm_1" is not an instance id' -- --id vm_1 "${J[@]}"
expect_jailer jail-bad-uid 2 '--uid: "-5" is not a number' -- --id vm1 "${J[@]}" --uid -5
expect_jailer jail-cgroup-v1 2 '--cgroup-version 1: cgroup v1 is not supported' -- --id vm1 "${J[@]}" --cgroup-version 1
expect_jailer jail-bad-cgroup 2 '--cgroup: "pids.max" is not FILE=VALUE' -- --id vm1 "${J[@]}" --cgroup pids.max
expect_jailer jail-cgroup-path 2 '--cgroup: "../cgroup.procs=1" is not FILE=VALUE' -- --id vm1 "${J[@]}" --cgroup ../cgroup.procs=1
expect_jailer jail-parent-cgroup 2 '--parent-cgroup: "a/../b" is not a relative path' -- --id vm1 "${J[@]}" --parent-cgroup a/../b
expect_jailer jail-bad-rlimit 2 '--resource-limit: "nproc=5" is not fsize=N, no-file=N or core=N' -- --id vm1 "${J[@]}" --resource-limit nproc=5
expect_jailer jail-bad-cap 2 '--keep-cap: "CAP_BOGUS" is not a capability' -- --id vm1 "${J[@]}" --keep-cap CAP_BOGUS
expect_jailer jail-relative-base 2 '--chroot-base-dir: "jails" is not an absolute path' -- --id vm1 "${J[@]}" --chroot-base-dir jails
expect_jailer jail-unknown 2 'unknown flag "--kernel" \(the VMM.s own arguments go after --\)' -- --id vm1 "${J[@]}" --kernel k
expect_jailer jail-missing-exec 1 'jail: --exec-file '"$tmp"'/none: No such file or directory' -- --id vm1 "${J[@]}" --exec-file "$tmp/none"
[ ! -e "$tmp/jails" ] && echo "PASS: cli jail-missing-exec-leaves-nothing" ||
	echo "FAIL: cli jail-missing-exec-leaves-nothing: $(find "$tmp/jails")"
expect_jailer jail-exec-dir 1 'jail: --exec-file '"$tmp"': not a regular file' -- --id vm1 "${J[@]}" --exec-file "$tmp"
expect_fc fc-no-ops 1 'InstanceStart: Cannot start the microVM' -- --start-time-us 123 --start-time-cpu-us 4 --parent-cpu-time-us 5 --show-level --show-log-origin --no-seccomp --boot-timer "${OK[@]}"
expect_fc fc-equals-form 1 'InstanceStart: Cannot start the microVM' -- --no-api --config-file="$tmp/ok.json" --level=info
expect_fc fc-id-in-log 1 '^kvmini\[vm-7\]: error: --config-file' -- --id vm-7 "${OK[@]}"
expect_fc fc-level-lowercase 1 'InstanceStart' -- --level warning "${OK[@]}"
# --boot-timer is --boot-timing: the milestones at exit.
expect_fc fc-boot-timer 1 'boot timing: VM created' -- --boot-timer "${OK[@]}"
# --level Off: not a line, though the run fails; --level Error keeps the error.
out=$(timeout 10 "$FC" --level Off "${OK[@]}" 2>&1); rc=$?
if [ "$rc" = 1 ] && [ -z "$out" ]; then echo "PASS: cli fc-level-off"
else echo "FAIL: cli fc-level-off (exit $rc, wanted 1 and no output; output: $out)"; fi
out=$(timeout 10 "$FC" --level ERROR "${OK[@]}" 2>&1); rc=$?
if [ "$rc" = 1 ] && grep -q 'error: --config-file' <<<"$out" && ! grep -q 'info:' <<<"$out"; then
	echo "PASS: cli fc-level-error"
else echo "FAIL: cli fc-level-error (exit $rc; output: $out)"; fi
# --log-path: the lines go there, not to stderr.
out=$(timeout 10 "$FC" --log-path "$tmp/fc.log" "${OK[@]}" 2>&1); rc=$?
if [ "$rc" = 1 ] && [ -z "$out" ] && grep -q 'error: --config-file' "$tmp/fc.log"; then
	echo "PASS: cli fc-log-path"
else echo "FAIL: cli fc-log-path (exit $rc; stderr: $out; file: $(cat "$tmp/fc.log" 2>&1))"; fi
# `kvmini run` takes the shared flags too.
expect run-bad-level 2 '--level: "x" is not Error' -- run --level x --config-file "$tmp/ok.json" --no-api
expect run-id-in-log 1 '^kvmini\[r-1\]: error: --config-file' -- run --id r-1 --config-file "$tmp/ok.json" --no-api
# Without --api-sock (and without --no-api) the socket is Firecracker's
# /run/firecracker.socket: checked in a private mount namespace, on a
# tmpfs of its own over /run.
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	out=$(unshare -m sh -c 'mount -t tmpfs tmpfs /run && { "$1" --id dflt 2>/dev/null & p=$!;
		for i in $(seq 100); do [ -S /run/firecracker.socket ] && break; sleep 0.05; done;
		curl -s --max-time 5 --unix-socket /run/firecracker.socket http://localhost/;
		kill -TERM $p; wait $p; echo " exit $?"; }' sh "$FC" 2>&1)
	if grep -q '"id":"dflt","state":"Not started".* exit 143$' <<<"$out"; then
		echo "PASS: cli fc-default-socket"
	else echo "FAIL: cli fc-default-socket ($out)"; fi
else
	echo "SKIP: cli fc-default-socket: needs root and unshare -m"
fi

# A tap's MTU bounds the device's (the host would drop the guest's larger
# frames): a larger --mtu is refused, without --mtu the device takes the
# tap's own. Each case on a tap of MTU 1400 in a private network namespace;
# a server that starts is stopped by SIGINT after 2 s (exit 0).
# tap_case NAME STATUS PATTERN -- VHOST-NET-OPTIONS...
tap_case() {
	local name=$1 status=$2 pattern=$3 out rc
	shift 4
	out=$(unshare -n sh -c 'ip tuntap add dev kvmt0 mode tap && ip link set kvmt0 mtu 1400 &&
		exec timeout --preserve-status -s INT 2 "$@"' sh "$BIN" vhost net \
		--socket "$tmp/tap.sock" --backend tap:kvmt0 "$@" 2>&1)
	rc=$?
	if [ "$rc" -eq "$status" ] && grep -qE -- "$pattern" <<<"$out"; then
		echo "PASS: cli $name"
	else
		echo "FAIL: cli $name (exit $rc, wanted $status; output: $out)"
	fi
}
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null && command -v ip >/dev/null; then
	tap_case net-mtu-above-tap 2 '--mtu 1500: larger than the MTU of tap:kvmt0 \(1400\).*ip link set dev kvmt0 mtu 1500' \
		-- --mtu 1500
	tap_case net-mtu-of-tap 0 'eth0: MAC [0-9a-f:]{17} \(random\), MTU 1400$' --
	tap_case net-mtu-at-tap 0 'eth0: MAC 02:00:00:00:00:07, MTU 1300$' -- --mac 02:00:00:00:00:07 --mtu 1300
else
	echo "SKIP: cli net-mtu-above-tap, net-mtu-of-tap, net-mtu-at-tap: need root, unshare -n and ip for a private tap"
fi
