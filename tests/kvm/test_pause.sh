#!/bin/bash
# Pause and resume through the API (PATCH /vm): the ticking guest stops
# while paused (no tick line for a second and a half, GET / says Paused),
# goes on after Resumed with the next tick (none lost, none repeated); a
# pause between the net test's two rounds leaves the NIC working.
. "$(dirname "$0")/lib.sh"

# ticks_seen: how many tick lines the background run printed so far.
ticks_seen() { grep -c '^kvm-guest ticks: tick ' "$LOGDIR/$LAST.out" 2>/dev/null; }

state() { curl -s --max-time 10 --unix-socket "$api" http://k/ | grep -oE '"state": *"[^"]*"'; }

if ! command -v curl >/dev/null; then
	echo "SKIP: kvm pause: curl is not installed"
	kvm_end
	exit 0
fi
api=$LOGDIR/pause.sock
rm -f "$api"
make_share
# 15 s of ticks: room for the API calls, slow on the nested platform.
NTICKS=150
run_bg pause --kernel "$GUEST" --cmdline "test=ticks ticks=$NTICKS" --net loopback \
	--fs "$SHARE:kvmtest" --api-sock "$api"
wait_output 'kvm-guest ticks: tick 3'
[ "$(state)" = '"state":"Running"' ] && pass "pause: GET / says Running" ||
	fail "pause: GET / says $(state), not Running"
code=$(patch_vm "$api" Paused)
at_pause=$(ticks_seen)
[ "$code" = 204 ] && pass "pause: PATCH /vm Paused answers 204" ||
	fail "pause: PATCH /vm Paused answered $code"
[ "$(state)" = '"state":"Paused"' ] && pass "pause: GET / says Paused" ||
	fail "pause: GET / says $(state), not Paused"
sleep 1.5
after_wait=$(ticks_seen)
# The tick being printed when the pause came may still land (its exits
# were handled before the vCPU parked): at most one more.
if [ "$after_wait" -le $((at_pause + 1)) ]; then
	pass "pause: no tick for 1.5 s while paused ($at_pause, then $after_wait)"
else
	fail "pause: the guest ran while paused ($at_pause ticks at the pause, $after_wait 1.5 s later)"
fi
[ "$(patch_vm "$api" Paused)" = 204 ] && pass "pause: pausing a paused VM answers 204" ||
	fail "pause: pausing a paused VM was refused"
code=$(patch_vm "$api" Resumed)
[ "$code" = 204 ] && pass "pause: PATCH /vm Resumed answers 204" ||
	fail "pause: PATCH /vm Resumed answered $code"
for _ in $(seq 100); do
	[ "$(ticks_seen)" -gt "$((after_wait + 2))" ] && break
	sleep 0.1
done
[ "$(ticks_seen)" -gt "$((after_wait + 2))" ] && pass "pause: ticks go on after Resumed" ||
	fail "pause: no tick after Resumed ($(ticks_seen))"
[ "$(state)" = '"state":"Running"' ] && pass "pause: GET / says Running again" ||
	fail "pause: GET / says $(state) after Resumed"
# Pause and resume again quickly, several times: each answers, the guest ends.
ok=1
for _ in 1 2 3 4 5; do
	[ "$(patch_vm "$api" Paused)" = 204 ] && [ "$(patch_vm "$api" Resumed)" = 204 ] || ok=0
done
[ $ok = 1 ] && pass "pause: five quick pause/resume pairs answered" ||
	fail "pause: a quick pause/resume pair was refused"
collect_bg
expect "pause: the guest's $NTICKS ticks all printed, in order, and it ended" 0 'kvm-guest ticks: done'
seq_ok=$(grep -oE '^kvm-guest ticks: tick [0-9]+' <<<"$OUT" | grep -oE '[0-9]+$' |
	awk -v n="$NTICKS" '$1 != NR { bad = 1 } END { print (NR == n && !bad) ? "yes" : "no" }')
[ "$seq_ok" = yes ] && pass "pause: ticks 1 to $NTICKS, none lost, none repeated" ||
	fail "pause: the tick lines are not 1 to $NTICKS in order"
grep -q 'VM paused' <<<"$ERR" && grep -q 'VM resumed' <<<"$ERR" &&
	pass "pause: kvmini logged the pause and the resume" ||
	fail "pause: no 'VM paused'/'VM resumed' in kvmini's log"
sanitizer_check pause

# A pause between the net test's two rounds, RX buffers posted: the second
# round's frames come back after the resume.
rm -f "$api"
run_bg pause-net --kernel "$GUEST" --cmdline "test=net between_ms=3000" --net loopback \
	--api-sock "$api"
wait_output 'kvm-guest net: between rounds'
p=$(patch_vm "$api" Paused)
sleep 1
r=$(patch_vm "$api" Resumed)
collect_bg
[ "$p$r" = 204204 ] && pass "pause: paused and resumed between the net test's rounds" ||
	fail "pause: pause/resume between the net rounds answered $p and $r"
expect "pause: virtio-net's second round after the resume (guest checks)" 0 \
	'kvm-guest net: done \(0 failures\)'
kvm_end
