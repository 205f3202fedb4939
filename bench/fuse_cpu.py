#!/usr/bin/env python3
# kvmini's own CPU time per metadata operation through a fuse-mount, per
# host-watch scheme: create (open O_CREAT|O_EXCL + close), stat and unlink
# of N files, kvmini's user+sys time over all its threads read from
# /proc/PID/stat around each phase (the unlink phase waits 0.3 s for the
# watcher's last events and the FORGETs). CPU time is far steadier than
# wall-clock rates on a shared machine. Modes: dirs (--watch dirs, the
# default), files (--watch files), no-notify; each round runs all three,
# the order rotated; medians per operation.
#
# Needs root (mount). Usage: bench/fuse_cpu.py KVMINI N ROUNDS
import os, subprocess, sys, time, tempfile, statistics

KV = sys.argv[1]; N = int(sys.argv[2]); ROUNDS = int(sys.argv[3])
TCK = os.sysconf('SC_CLK_TCK')
MODES = {'dirs': [], 'files': ['--watch', 'files'], 'no-notify': ['--no-notify']}


def cpu(pid):
    """kvmini's user + sys seconds, all threads."""
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / TCK


def one(mode):
    """One mount in @mode: CPU microseconds per operation of each phase."""
    base = tempfile.mkdtemp(prefix='kvmini-cpu.', dir='/tmp')
    share, mnt = base + '/share', base + '/mnt'
    os.mkdir(share); os.mkdir(mnt)
    p = subprocess.Popen([KV, 'fuse-mount', share, mnt, '--threads', '2', '--cache', 'auto', '-q'] + MODES[mode])
    for _ in range(200):
        if os.path.ismount(mnt): break
        time.sleep(0.05)
    names = [f'{mnt}/m{i}' for i in range(N)]
    out = {}
    c0 = cpu(p.pid); t0 = time.monotonic()
    for n in names: os.close(os.open(n, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
    c1 = cpu(p.pid); t1 = time.monotonic()
    for n in names: os.stat(n)
    c2 = cpu(p.pid); t2 = time.monotonic()
    for n in names: os.unlink(n)
    time.sleep(0.3)  # the watcher's last events and the FORGETs
    c3 = cpu(p.pid); t3 = time.monotonic()
    subprocess.run(['umount', mnt]); p.wait()
    os.rmdir(mnt); os.rmdir(share); os.rmdir(base)
    return {'create': (c1 - c0) / N * 1e6, 'stat': (c2 - c1) / N * 1e6, 'unlink': (c3 - c2) / N * 1e6}


res = {m: [] for m in MODES}
order = list(MODES)
for r in range(ROUNDS):
    for m in order[r % 3:] + order[:r % 3]:
        res[m].append(one(m))
for op in ['create', 'stat', 'unlink']:
    med = {m: statistics.median(x[op] for x in res[m]) for m in MODES}
    print(f"{op:7s} kvmini CPU us/op, medians of {ROUNDS}: " +
          "  ".join(f"{m} {med[m]:.1f}" for m in MODES) +
          f"   dirs/no-notify {med['dirs']/med['no-notify']:.2f}  files/no-notify {med['files']/med['no-notify']:.2f}")
