#!/usr/bin/env bash
# Which notifications each vhost-user front door offers, asked of the real
# binary over its socket: VHOST_USER_GET_PROTOCOL_FEATURES (15) and the bit
# of INBAND_NOTIFICATIONS (14). `vhost net`, `vhost fs` and `vhost blk` offer
# it only with --inband (UML acks each in-band kick synchronously, README
# --inband); `vhost net --no-inband` still runs and offers none.
set -u
cd "$(dirname "$0")/../.." || exit 1
BIN=${KVMINI:-build/kvmini-san}
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# inband_offered SOCK: prints 1 or 0 (the bit), or "error: ..." .
inband_offered() {
	python3 - "$1" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    s.sendall(struct.pack("<III", 15, 1, 0))    # GET_PROTOCOL_FEATURES, version 1
    reply = b""
    while len(reply) < 20:
        chunk = s.recv(20 - len(reply))
        if not chunk:
            break
        reply += chunk
    req, flags, size = struct.unpack("<III", reply[:12])
    if req != 15 or size != 8 or not flags & 4:
        print("error: reply", req, flags, size)
    else:
        print((struct.unpack("<Q", reply[12:20])[0] >> 14) & 1)
except Exception as e:
    print("error:", e)
PY
}

# check NAME WANT ARGS...: start kvmini with ARGS on a fresh socket, ask.
check() {
	local name=$1 want=$2 sock=$tmp/$1.sock got i
	shift 2
	"$BIN" "$@" --socket "$sock" -q 2>"$tmp/$name.log" &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		[ -S "$sock" ] && break
		sleep 0.05
	done
	got=$(inband_offered "$sock")
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
	if [ "$got" = "$want" ]; then
		echo "PASS: vhost inband: $name offers in-band notifications: $want"
	else
		echo "FAIL: vhost inband: $name offers in-band notifications: wanted $want, got $got" \
			"(log: $(head -c 300 "$tmp/$name.log"))"
	fi
}

mkdir -p "$tmp/share"
truncate -s 1M "$tmp/disk.img"
check net-default 0 vhost net --backend loopback
check net-inband 1 vhost net --backend loopback --inband
check net-no-inband 0 vhost net --backend loopback --no-inband
check fs-default 0 vhost fs --shared-dir "$tmp/share" --tag t
check fs-inband 1 vhost fs --shared-dir "$tmp/share" --tag t --inband
check blk-default 0 vhost blk --image "$tmp/disk.img"
check blk-inband 1 vhost blk --image "$tmp/disk.img" --inband
