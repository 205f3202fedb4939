#!/bin/bash
# Conformance of kvmini's FUSE server with the passthrough backend, driven
# by the host kernel's own FUSE client on a /dev/fuse mount.
#
# Each case runs the same commands twice: in MNT/CASE (through kvmini) and
# in REF/CASE (a plain host directory). It passes when both runs print the
# same thing and leave the same tree, and when the shared directory on the
# host holds exactly what the mount shows.
#
# The first mount has the default options: on kernels with FUSE passthrough
# (Linux 6.9+) file data then goes from the kernel to the files kvmini
# opened, and the run checks that it did. Then all cases again with
# --no-passthrough (every byte through the server, the client's page cache),
# and four mounts with other options: --cache none, --cache metadata,
# --squash-owner, and a bound of 16 descriptors (--max-fds) over a tree of
# thousands of files.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

f_begin conformance 600
SHARE=$F_RUN/share
MNT=$F_RUN/mnt
REF=$F_RUN/ref
mkdir -p "$SHARE" "$REF"
h=$HELPER
# Random bytes, the same for both runs of a case.
DATA=$F_RUN/data.bin
head -c 1000000 /dev/urandom >"$DATA"

# ---------------------------------------------------------------- cases
# Each runs in its case directory and prints what it sees. Errors are
# printed by the commands themselves with relative paths, so both runs
# print the same text.

case_create_read_write() {
	printf 'hello\n' >a
	cat a
	printf 'world\n' >>a
	cat a
	printf 'XY' | dd of=a bs=1 seek=2 conv=notrunc status=none
	cat a
	head -c 300000 "$DATA" >rand
	cp rand rand2
	cmp rand rand2 && echo same
	: >empty
	stat -c '%s %h' a rand empty
	cat missing
	echo "$(wc -c <rand2)"
}

case_truncate() {
	head -c 100000 /dev/zero | tr '\0' 'z' >t
	truncate -s 50000 t; stat -c %s t
	truncate -s 200000 t; stat -c %s t
	tail -c 5 t | od -c | head -2
	: >t; stat -c %s t
	printf abc >u; truncate -s 1 u; cat u; echo
}

case_rename() {
	echo one >f1; echo two >f2; mkdir d1 d2; echo in >d1/x
	mv f1 f3; ls
	mv f3 f2; cat f2; ls
	mv d1 d2/; ls d2 d2/d1
	$h rename2 f2 d2/d1/x noreplace
	$h rename2 f2 newname noreplace; ls
	echo A >ea; mkdir eb; echo B >eb/inner
	$h rename2 ea eb exchange
	ls -l ea | cut -c1; cat eb; cat ea/inner
	$h rename2 ea missing exchange
	mv nothere x
	mkdir full; echo z >full/z; mkdir e
	mv e full 2>&1 | sed 's/.*: //'
}

case_links() {
	echo data >orig
	ln orig hard; stat -c %h orig hard
	echo more >>hard; cat orig
	rm orig; stat -c %h hard; cat hard
	ln -s hard soft; readlink soft; cat soft
	ln -s nowhere dangling; readlink dangling; cat dangling
	mkdir dir; echo x >dir/file; ln -s dir dlink; cat dlink/file; ls dlink
	ln -s ../../../../etc/passwd deep; readlink deep
	ln dir dirhard
	ln soft softhard; readlink softhard
	ls
}

case_perms_owner() {
	chmod 1777 .
	echo r >rootfile; chmod 644 rootfile
	setpriv --reuid=1000 --regid=1000 --clear-groups sh -c '
		umask 027
		echo u >userfile; mkdir userdir; mkfifo userfifo
		ln -s userfile userlink
		stat -c "%n %U:%G %a" userfile userdir userfifo
		echo x >>rootfile
		cat rootfile
		chmod 600 rootfile
		rm -f rootfile
		chmod 640 userfile; stat -c %a userfile
		chown 0 userfile
	' 2>&1 | sed 's/^sh: [0-9]*: //'
	chown 1234:5678 rootfile; stat -c '%u:%g' rootfile
	chmod 4755 rootfile; stat -c %a rootfile
	chown 1234:5679 rootfile; stat -c '%a %u:%g' rootfile
	mkdir sg; chown 0:4000 sg; chmod 2775 sg
	touch sg/inherit; mkdir sg/sub; stat -c '%n %g %a' sg/inherit sg/sub
	chmod 000 rootfile; stat -c %a rootfile
	setpriv --reuid=1000 --regid=1000 --clear-groups cat rootfile 2>&1 | sed 's/^cat: //'
	chmod 755 rootfile
	touch -d '2001-02-03 04:05:06' rootfile; stat -c %Y rootfile
	touch -h -d '2002-02-03 04:05:06' userlink; stat -c %Y userlink
}

# Set-id bits after writes, truncation and open(O_TRUNC) by a user without
# CAP_FSETID (suid goes; sgid goes when group-executable), and by root
# (they stay). With HANDLE_KILLPRIV_V2 the server clears them itself.
# (A non-executable sgid file is written by a member of its group: for
# callers outside the group the host's VFS clears it too, the kernel's FUSE
# client never does, with or without kvmini.)
case_killpriv() {
	chmod 1777 .
	for m in 6777 2777 4777 2767; do echo a >w$m; chmod $m w$m; done
	chgrp 1000 w2767; chmod 2767 w2767
	echo a >t; chmod 6777 t
	echo a >o; chmod 6777 o
	echo a >r; chmod 6777 r
	setpriv --reuid=1000 --regid=1000 --clear-groups sh -c '
		for f in w6777 w2777 w4777 w2767; do echo b >>$f; done
		truncate -s 1 t
		echo c >o
	'
	echo b >>r; truncate -s 0 r
	stat -c '%n %a %s' w6777 w2777 w4777 w2767 t o r
}

case_xattrs() {
	echo x >f; mkdir d
	$h xattr set f user.one value1
	$h xattr set f user.two "value two"
	$h xattr create f user.one again
	$h xattr get f user.one
	$h xattr get f user.none
	$h xattr list f
	$h xattr set d user.dir yes
	$h xattr list d
	$h xattr remove f user.one
	$h xattr remove f user.one
	$h xattr list f
	$h xattr set f user.big "$(head -c 3000 /dev/zero | tr '\0' b)"
	$h xattr get f user.big | wc -c
}

case_bigdir() {
	$h mkmany . 5000
	ls -f | grep -c '^f'
	ls -f | sort | md5sum
	$h checkmany . 5000
	find . -name 'f*[02468]' -delete
	ls -f | sort | md5sum
	ls | wc -l
}

case_sparse_large() {
	$h sparse sp
	$h bigoff big 17
	$h bigoff big2 5
	du -k big | cut -f1 | awk '{ print ($1 < 1024) ? "small" : "large" }'
}

case_concurrent_writers() {
	$h writers cw 4 65536 64
	$h verify cw 65536 64
	stat -c %s cw
	md5sum <cw
}

case_trees() {
	mkdir -p a/b/c/d; echo deep >a/b/c/d/e
	rmdir a 2>&1 | sed 's/.*: //'
	cp -r a copy; cat copy/b/c/d/e
	mv a/b moved; ls a moved
	rm -r moved copy; ls
	mkdir a 2>&1 | sed 's/.*: //'
}

case_space_ops() {
	fallocate -l 1048576 fa; stat -c %s fa
	fallocate -p -o 4096 -l 8192 fa; stat -c %s fa
	fallocate -n -l 4194304 fb; stat -c %s fb
	head -c 200000 "$DATA" >src
	cp --reflink=never src dst; cmp src dst && echo copied
	mkfifo fifo; stat -c %F fifo
	stat -f -c '%S' . | awk '{ print ($1 > 0) ? "bsize ok" : "bsize 0" }'
	sync -f . && echo syncfs ok
	sync dst && echo fsync ok
	sync -d src && echo fdatasync ok
}

CASES="create_read_write truncate rename links perms_owner killpriv xattrs bigdir sparse_large
	concurrent_writers trees space_ops"

# run_case NAME: the case in MNT and in REF; compare output and trees.
# Results are named "[LABEL] NAME" while LABEL is set (see cases_on).
LABEL=
run_case() {
	local name=$1 out=$F_RUN/out.${MNT##*/}.$1 t0=$SECONDS
	mkdir -p "$MNT/$name" "$REF/$name"
	(cd "$MNT/$name" && "case_$name") >"$out.mnt" 2>&1
	(cd "$REF/$name" && "case_$name") >"$out.ref" 2>&1
	tree_state "$MNT/$name" >"$out.mnt.tree"
	tree_state "$REF/$name" >"$out.ref.tree"
	tree_state "$SHARE/$name" >"$out.share.tree"
	if ! diff -u "$out.ref" "$out.mnt" >"$out.diff"; then
		fail "$LABEL$name: output differs from the host directory's"
		head -n 20 "$out.diff" | sed 's/^/    | /'
	elif ! diff -u "$out.ref.tree" "$out.mnt.tree" >"$out.diff"; then
		fail "$LABEL$name: tree differs from the host directory's"
		head -n 20 "$out.diff" | sed 's/^/    | /'
	elif ! diff -u "$out.share.tree" "$out.mnt.tree" >"$out.diff"; then
		fail "$LABEL$name: the shared directory does not hold what the mount shows"
		head -n 20 "$out.diff" | sed 's/^/    | /'
	else
		pass "$LABEL$name ($(wc -l <"$out.ref") lines of output, $(wc -l <"$out.ref.tree") lines of tree state, $((SECONDS - t0)) s)"
	fi
}

# cases_on TAG CASES...: mount a fresh share with the options in
# MOUNT_OPTS, run CASES there (results named "[TAG] CASE"), leave it
# mounted as $F_RUN/mnt-TAG (kvmini's PID in F_PID). The first mount's
# globals are restored.
cases_on() {
	local tag=$1 c
	shift
	if ! f_mount "$F_RUN/share-$tag" "$F_RUN/mnt-$tag" "${MOUNT_OPTS[@]}"; then
		fail "mount ${MOUNT_OPTS[*]}"
		return 1
	fi
	local mnt=$MNT share=$SHARE ref=$REF
	MNT=$F_RUN/mnt-$tag SHARE=$F_RUN/share-$tag REF=$F_RUN/ref-$tag LABEL="[$tag] "
	for c in "$@"; do
		run_case "$c"
	done
	MNT=$mnt SHARE=$share REF=$ref LABEL=
}

if ! f_mount "$SHARE" "$MNT" --threads 4 --counters; then
	fail "mount"
	f_end
fi
for c in $CASES; do
	run_case "$c"
done

# Unmounting ends the server with status 0.
if f_unmount "$MNT" "$F_PID"; then
	pass "umount ends kvmini with status 0"
else
	fail "umount: kvmini did not exit 0"
	tail -n 5 "$MNT.log" | sed 's/^/    | /'
fi

# Passthrough was used where the kernel has it (6.9+), and never refused.
pt_opens=$(awk '$1 == "fuse_opens_passthrough" { print $2 }' "$MNT.log")
pt_failed=$(awk '$1 == "fuse_passthrough_failed" { print $2 }' "$MNT.log")
kver=$(uname -r | awk -F. '{ print $1 * 1000 + $2 }')
if [ "$kver" -lt 6009 ]; then
	note "kernel $(uname -r) has no FUSE passthrough: cases ran through the server"
elif [ "${pt_opens:-0}" -gt 0 ] && [ "${pt_failed:-1}" -eq 0 ]; then
	pass "passthrough: $pt_opens opens handed to the kernel, 0 refused"
else
	fail "passthrough: opens ${pt_opens:-?}, refused ${pt_failed:-?} (log: $MNT.log)"
fi

# --no-passthrough: the same cases with every byte through the server.
MOUNT_OPTS=(--threads 4 --no-passthrough)
# shellcheck disable=SC2086 # CASES is a word list
if cases_on nopt $CASES; then
	f_unmount "$F_RUN/mnt-nopt" "$F_PID" || fail "umount --no-passthrough: kvmini did not exit 0"
fi

# ---------------------------------------------------------------- other mounts

# --cache none: every access reaches the server; run two cases again.
MOUNT_OPTS=(--cache none)
if cases_on nocache create_read_write rename links concurrent_writers; then
	# SIGTERM: detach and exit 0.
	kill -TERM "$F_PID"
	if wait "$F_PID" && ! f_is_mounted "$F_RUN/mnt-nocache"; then
		pass "SIGTERM detaches the mount and exits 0"
	else
		fail "SIGTERM: kvmini did not exit 0 or left the mount"
	fi
fi

# --cache metadata: attributes cached, file data direct; the data cases and
# set-id clearing (which direct writes leave to the server) again.
MOUNT_OPTS=(--cache metadata --threads 4)
if cases_on meta create_read_write truncate killpriv sparse_large concurrent_writers; then
	f_unmount "$F_RUN/mnt-meta" "$F_PID" || fail "umount --cache metadata: kvmini did not exit 0"
fi

# --squash-owner: whoever creates, the host sees one owner; chown is ignored.
SHARE3=$F_RUN/share-squash
MNT3=$F_RUN/mnt-squash
if f_mount "$SHARE3" "$MNT3" --squash-owner 4242:4343; then
	chmod 1777 "$MNT3"
	touch "$MNT3/by-root"
	# (not touch: setting times needs ownership, and the file is 4242's)
	setpriv --reuid=1000 --regid=1000 --clear-groups sh -c ": >'$MNT3/by-user'; mkdir '$MNT3/dir-user'"
	chown 1:1 "$MNT3/by-root"
	got=$(stat -c '%u:%g' "$SHARE3/by-root" "$SHARE3/by-user" "$SHARE3/dir-user" | sort -u)
	if [ "$got" = "4242:4343" ]; then
		pass "squash-owner: every new file is 4242:4343 on the host"
	else
		fail "squash-owner: owners on the host are $(echo $got)"
	fi
	f_unmount "$MNT3" "$F_PID" || fail "squash-owner: unmount"
else
	fail "mount --squash-owner"
fi

# --max-fds 16 over thousands of files: every one still reads right, and
# the server never holds more descriptors than the bound allows.
SHARE4=$F_RUN/share-fds
MNT4=$F_RUN/mnt-fds
mkdir -p "$SHARE4/tree"
"$h" mkmany "$SHARE4/tree" 3000 >/dev/null
if f_mount "$SHARE4" "$MNT4" --max-fds 16 --cache none; then
	out=$("$h" checkmany "$MNT4/tree" 3000)
	fds=$(ls "/proc/$F_PID/fd" | wc -l)
	listed=$(ls -f "$MNT4/tree" | grep -c '^f')
	if [ "$out" = "bad 0" ] && [ "$listed" = 3000 ] && [ "$fds" -lt 48 ]; then
		pass "max-fds 16: 3000 files listed and read back, server holds $fds descriptors"
	else
		fail "max-fds 16: $out, $listed listed, server holds $fds descriptors"
	fi
	f_unmount "$MNT4" "$F_PID" || fail "max-fds: unmount"
else
	fail "mount --max-fds"
fi

# Clear errors for bad arguments, without mounting anything.
if ! "$KVMINI" fuse-mount "$F_RUN/nonexistent" "$F_RUN/mnt" 2>"$F_RUN/err1" &&
	grep -q "No such file" "$F_RUN/err1"; then
	pass "missing DIR: $(head -1 "$F_RUN/err1")"
else
	fail "missing DIR not reported"
fi
touch "$F_RUN/afile"
if ! "$KVMINI" fuse-mount "$SHARE" "$F_RUN/afile" 2>"$F_RUN/err2" &&
	grep -q "not a directory" "$F_RUN/err2"; then
	pass "MOUNTPOINT not a directory: $(head -1 "$F_RUN/err2")"
else
	fail "MOUNTPOINT that is a file not reported"
fi
# No /dev/fuse: a private mount namespace with an empty /dev.
if ! unshare -m sh -c "mount -t tmpfs none /dev && exec '$KVMINI' fuse-mount '$SHARE' '$MNT'" \
	2>"$F_RUN/err3" && grep -q "/dev/fuse" "$F_RUN/err3"; then
	pass "no /dev/fuse: $(head -1 "$F_RUN/err3")"
else
	fail "missing /dev/fuse not reported"
	sed 's/^/    | /' "$F_RUN/err3"
fi
# Not allowed to mount (not root).
if ! setpriv --reuid=1000 --regid=1000 --clear-groups "$KVMINI" fuse-mount "$SHARE" "$MNT" \
	2>"$F_RUN/err4" && grep -q -e "/dev/fuse" -e "needs root" "$F_RUN/err4"; then
	pass "not root: $(head -1 "$F_RUN/err4")"
else
	fail "mounting as a user not reported"
	sed 's/^/    | /' "$F_RUN/err4"
fi
f_end
