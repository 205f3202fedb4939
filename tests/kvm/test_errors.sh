#!/bin/bash
# Operator errors: each a clear message and the usage (2) or runtime (1) status.
. "$(dirname "$0")/lib.sh"

make_share
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
run bad-fs-tag "" -- --kernel "$GUEST" --fs "$SHARE"
expect "--fs without a tag: usage error" 2 'expected DIR:TAG'
run help "" -- --help
expect "--help" 0 'usage: kvmini run \[--kernel FILE\]'

kvm_end
