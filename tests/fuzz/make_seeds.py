#!/usr/bin/env python3
"""Write the seed corpora of the fuzzers under tests/fuzz/corpus/<fuzzer>/.

Each fuzzer reads its input as a little stream of operations (see the
comment at the top of tests/fuzz/fuzz_<name>.c and tests/support/fuzz_input.h:
little-endian values, zeros past the end). The seeds here are a few inputs
of each kind a fuzzer understands, built from that format, so that a run
starts from valid requests and ring layouts instead of from nothing, plus
a few edge cases and the regression inputs of bugs found so far.

Deterministic (no time, no randomness, Python's standard library only):
running it again rewrites the same bytes. Usage:

    python3 tests/fuzz/make_seeds.py            # write every corpus below
    python3 tests/fuzz/make_seeds.py --check    # fail if a file would change

The corpora of fuzz_api, fuzz_http and fuzz_mmds were written before this
script and are left as they are; it writes only the fuzzers listed in
GENERATORS, and removes nothing.
"""
import base64
import bz2
import gzip
import lzma
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def u8(*v):
    return bytes(x & 0xFF for x in v)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


# ---- FUSE (linux/fuse.h) ------------------------------------------------

FUSE = dict(SETUPMAPPING=48, REMOVEMAPPING=49, LOOKUP=1, FORGET=2, GETATTR=3, SETATTR=4, READLINK=5, SYMLINK=6,
            MKNOD=8, MKDIR=9, UNLINK=10, RMDIR=11, RENAME=12, LINK=13, OPEN=14,
            READ=15, WRITE=16, STATFS=17, RELEASE=18, FSYNC=20, SETXATTR=21,
            GETXATTR=22, LISTXATTR=23, REMOVEXATTR=24, FLUSH=25, INIT=26,
            OPENDIR=27, READDIR=28, RELEASEDIR=29, FSYNCDIR=30, ACCESS=34,
            CREATE=35, INTERRUPT=36, DESTROY=38, BATCH_FORGET=42, FALLOCATE=43,
            READDIRPLUS=44, RENAME2=45, LSEEK=46, COPY_FILE_RANGE=47, SYNCFS=50)


def fuse_in_header(length, opcode, unique, nodeid, uid=0, gid=0):
    """struct fuse_in_header: 40 bytes."""
    return struct.pack("<IIQQIIIHH", length, opcode, unique, nodeid, uid, gid, 0, 0, 0)


def fuse_init_in(minor=38, flags=0):
    return struct.pack("<IIIII", 7, minor, 1 << 17, flags, 0) + bytes(44)


def fuse_open_in(flags):
    return struct.pack("<II", flags, 0)


def fuse_read_in(fh, offset, size):
    """Also fuse_write_in: the same 40-byte layout."""
    return struct.pack("<QQIIQII", fh, offset, size, 0, 0, 0, 0)


def fuse_release_in(fh):
    return struct.pack("<QIIQ", fh, 0, 0, 0)


def fuse_getattr_in(fh=0, flags=0):
    return struct.pack("<IIQ", flags, 0, fh)


def fuse_create_in(flags, mode):
    return struct.pack("<IIII", flags, mode, 0o022, 0)


def fuse_mkdir_in(mode):
    return struct.pack("<II", mode, 0o022)


def cstr(s):
    return s.encode() + b"\0"


O_RDONLY, O_RDWR, O_CREAT = 0, 2, 0o100
S_IFREG, S_IFDIR = 0o100000, 0o040000

# ---- fuzz_fuse ------------------------------------------------------------
# Records: u8 op (index into ops[] of fuzz_fuse.c, >= 0xf0: raw request),
# u8 node selector (0xf0 + n: node id n; else a remembered one), u8 handle
# selector (0xff: leave the argument's), u8 shape, u16 length, body.
# The server's directory holds a, b, d/c, l -> a, out -> /etc.

FUSE_FUZZ_OPS = ["LOOKUP", "FORGET", "GETATTR", "SETATTR", "READLINK", "SYMLINK",
                 "MKNOD", "MKDIR", "UNLINK", "RMDIR", "RENAME", "LINK", "OPEN", "READ",
                 "WRITE", "STATFS", "RELEASE", "FSYNC", "SETXATTR", "GETXATTR",
                 "LISTXATTR", "REMOVEXATTR", "FLUSH", "INIT", "OPENDIR", "READDIR",
                 "RELEASEDIR", "FSYNCDIR", "ACCESS", "CREATE", "INTERRUPT", "DESTROY",
                 "BATCH_FORGET", "FALLOCATE", "READDIRPLUS", "RENAME2", "LSEEK",
                 "COPY_FILE_RANGE", "SYNCFS", "GETLK", "IOCTL", "OP52",
                 "SETUPMAPPING", "REMOVEMAPPING"]
ROOT = 0xF1          # node selector: node id 1, the root
LAST = 0x00          # node or handle selector: the first one remembered


def fuse_rec(op, body=b"", node=ROOT, fh=LAST, shape=0):
    kind = FUSE_FUZZ_OPS.index(op)
    return u8(kind, node, fh, shape) + u16(len(body)) + body


def fuse_raw_rec(request, shape=0):
    return u8(0xF0, 0, 0xFF, shape) + u16(len(request)) + request


NO_FH = 0xFFFFFFFFFFFFFFFF
MAP_R, MAP_W = 2, 1


def fuse_setupmapping_in(fh, foffset, length, flags, moffset):
    return struct.pack("<QQQQQ", fh, foffset, length, flags, moffset)


def fuse_removemapping_in(ranges, count=None):
    return u32(len(ranges) if count is None else count) + b"".join(
        struct.pack("<QQ", m, n) for m, n in ranges)


def seeds_fuse_dax():
    # The window is 2 MiB; "b" holds a few bytes, so a mapping starts at 0.
    return {
        "dax_map_unmap": (
            fuse_rec("LOOKUP", cstr("b"))
            + fuse_rec("SETUPMAPPING", fuse_setupmapping_in(NO_FH, 0, 1 << 21, MAP_R | MAP_W, 0),
                       node=LAST, fh=0xFF)
            + fuse_rec("SETUPMAPPING", fuse_setupmapping_in(NO_FH, 0, 4096, MAP_R, 1 << 20),
                       node=LAST, fh=0xFF)
            + fuse_rec("REMOVEMAPPING", fuse_removemapping_in([(0, 1 << 21), (1 << 20, 4096)]))
            + fuse_rec("INIT", fuse_init_in(flags=1 << 26))),
        "dax_handles": (
            fuse_rec("LOOKUP", cstr("b"))
            + fuse_rec("OPEN", fuse_open_in(O_RDONLY), node=LAST)
            + fuse_rec("SETUPMAPPING", fuse_setupmapping_in(0, 0, 8192, MAP_W, 8192), node=LAST)
            + fuse_rec("SETUPMAPPING", fuse_setupmapping_in(0, 0, 8192, MAP_R, 8192), node=LAST)
            + fuse_rec("RELEASE", fuse_release_in(0), node=LAST)
            + fuse_rec("REMOVEMAPPING", fuse_removemapping_in([(8192, 8192)]))),
        "dax_refusals": (
            fuse_rec("LOOKUP", cstr("a"))
            + fuse_rec("SETUPMAPPING", fuse_setupmapping_in(NO_FH, 0, 4096, MAP_R, (1 << 21) - 4096 + 1),
                       node=LAST, fh=0xFF)
            + fuse_rec("SETUPMAPPING", fuse_setupmapping_in(NO_FH, 1 << 40, 4096, MAP_R, 0),
                       node=LAST, fh=0xFF)
            + fuse_rec("SETUPMAPPING", fuse_setupmapping_in(NO_FH, 0, 1 << 22, MAP_R, 0),
                       node=LAST, fh=0xFF)
            + fuse_rec("SETUPMAPPING", fuse_setupmapping_in(NO_FH, 0, 4096, MAP_R, 0), node=ROOT,
                       fh=0xFF)
            + fuse_rec("REMOVEMAPPING", fuse_removemapping_in([(0, 4096)], count=300))
            + fuse_rec("REMOVEMAPPING", fuse_removemapping_in([(1 << 21, 4096)]))
            + fuse_raw_rec(fuse_in_header(40 + 4 + 16, FUSE["REMOVEMAPPING"], 90, 1)
                           + fuse_removemapping_in([(0, 0)]))),
    }


def seeds_fuse():
    return dict(seeds_fuse_dax(), **{
        "lookup_open_read": (
            fuse_rec("LOOKUP", cstr("b"))
            + fuse_rec("OPEN", fuse_open_in(O_RDONLY), node=LAST)
            + fuse_rec("READ", fuse_read_in(0, 4, 16), node=LAST)
            + fuse_rec("READ", fuse_read_in(0, 0, 4096), node=LAST, fh=0x30)   # through the sink
            + fuse_rec("RELEASE", fuse_release_in(0), node=LAST)),
        "create_write_getattr": (
            fuse_rec("CREATE", fuse_create_in(O_RDWR | O_CREAT, S_IFREG | 0o644) + cstr("new"))
            + fuse_rec("WRITE", fuse_read_in(0, 0, 11) + b"hello fuzz\n", node=LAST)
            + fuse_rec("GETATTR", fuse_getattr_in(0, 1), node=LAST)
            + fuse_rec("FLUSH", struct.pack("<QIIQ", 0, 0, 0, 0), node=LAST)
            + fuse_rec("RELEASE", fuse_release_in(0), node=LAST)
            + fuse_rec("UNLINK", cstr("new"))),
        "mkdir_readdir": (
            fuse_rec("MKDIR", fuse_mkdir_in(S_IFDIR | 0o755) + cstr("sub"))
            + fuse_rec("OPENDIR", fuse_open_in(O_RDONLY))
            + fuse_rec("READDIRPLUS", fuse_read_in(0, 0, 4096))
            + fuse_rec("READDIR", fuse_read_in(0, 0, 80))
            + fuse_rec("RELEASEDIR", fuse_release_in(0))
            + fuse_rec("RMDIR", cstr("sub"))),
        "symlink_readlink": (
            fuse_rec("LOOKUP", cstr("l"))
            + fuse_rec("READLINK", node=LAST)
            + fuse_rec("LOOKUP", cstr("out"))
            + fuse_rec("READLINK", node=LAST)
            + fuse_rec("SYMLINK", cstr("s") + cstr("../../etc/passwd"))
            + fuse_rec("STATFS")),
        "rename_xattr": (
            fuse_rec("LOOKUP", cstr("a"))
            + fuse_rec("RENAME", u64(1) + cstr("a") + cstr("z"))
            + fuse_rec("SETXATTR", struct.pack("<IIII", 3, 0, 0, 0) + cstr("user.k") + b"val",
                       node=LAST)
            + fuse_rec("GETXATTR", struct.pack("<II", 64, 0) + cstr("user.k"), node=LAST)
            + fuse_rec("LISTXATTR", struct.pack("<II", 0, 0), node=LAST)),
        # A whole request given raw, then one whose header says more than it has.
        "raw_requests": (
            fuse_raw_rec(fuse_in_header(40 + 16, FUSE["GETATTR"], 77, 1) + fuse_getattr_in())
            + fuse_raw_rec(fuse_in_header(4096, FUSE["LOOKUP"], 78, 1) + cstr("a"))
            + fuse_raw_rec(fuse_in_header(40, 9999, 79, 1))
            + fuse_raw_rec(b"\x28\0\0\0\x03\0")),                 # a truncated header
        # Small and split reply buffers, several request pieces, uid/gid 1000.
        "shapes": (
            fuse_rec("LOOKUP", cstr("d"), shape=0x03)
            + fuse_rec("GETATTR", fuse_getattr_in(), node=LAST, shape=0x14)
            + fuse_rec("READ", fuse_read_in(0, 0, 64), node=ROOT, shape=0x2a)
            + fuse_rec("OPEN", fuse_open_in(O_RDWR), node=LAST, shape=0xc0)
            + fuse_rec("INIT", fuse_init_in(), shape=0x0c)),
    })


# ---- fuzz_virtio_fs -----------------------------------------------------
# u8 header (bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 the notification
# queue), u8 mode (bit 0: no FUSE_INIT first, bit 1: create f.txt first),
# then operations selected by a byte % 11. Request queues are 1.. (2.. with
# the notification queue). The names table: a b dir f.txt user.x .. . a/b "".

VFS_NAMES = ["a", "b", "dir", "f.txt", "user.x", "..", ".", "a/b", ""]
VFS_FH_OPS = {"READ", "READDIR", "READDIRPLUS", "WRITE", "RELEASE", "RELEASEDIR", "FSYNC",
              "FSYNCDIR", "FLUSH", "FALLOCATE", "LSEEK", "COPY_FILE_RANGE", "GETATTR"}


def vfs_request(q, op, arg=b"", names=(), tail=b"", fix=True, writable=4096,
                nin=1, nout=1, indirect=False, node=None, fh=None, splits=()):
    """op_request: well-shaped argument @arg (exactly its size), names from
    the table, a tail in 16-byte units; @fh: index of a remembered handle
    (the byte is read only when the harness has one: with mode bit 1)."""
    flags = ((nin - 1) << 4) | (nout << 6) | (8 if indirect else 0) | (2 if node is not None else 0)
    b = u8(0, q, FUSE[op] - 1, flags)
    if nout:
        b += struct.pack("<I", writable)[:3]
    b += arg
    if fh is not None:
        b += u8(0, fh)
    for n in names:
        b += u8(VFS_NAMES.index(n))
    assert len(tail) % 16 == 0
    b += u8(len(tail) // 16) + tail + u8(0 if fix else 1)
    if node is not None:
        b += u8(node)
    for s in splits:
        b += u16(s)
    return b


def vfs_publish(q, force=0):
    return u8(6, q, force)


def vfs_drain():
    return u8(9, 0)


def seeds_virtio_fs():
    rw = fuse_read_in(0, 0, 0)
    return {
        "init_lookup_getattr": u8(0, 2)
            + vfs_request(1, "LOOKUP", names=["f.txt"])
            + vfs_request(1, "GETATTR", fuse_getattr_in(), fh=0)
            + vfs_request(1, "STATFS")
            + vfs_publish(1) + vfs_drain(),
        "write_read": u8(0, 2)
            + vfs_request(1, "WRITE", rw, fh=0, tail=bytes(range(64)))
            + vfs_publish(1) + vfs_drain()
            + vfs_request(1, "READ", fuse_read_in(0, 0, 4096), fh=0)
            + vfs_request(1, "FLUSH", bytes(24), fh=0)
            + vfs_publish(1) + vfs_drain(),
        "mkdir_readdir": u8(0, 0)
            + vfs_request(1, "MKDIR", fuse_mkdir_in(S_IFDIR | 0o755), names=["dir"])
            + vfs_request(1, "OPENDIR", fuse_open_in(O_RDONLY))
            + vfs_publish(1) + vfs_drain()
            + vfs_request(1, "READDIRPLUS", fuse_read_in(0, 0, 8192), fh=0)
            + vfs_request(1, "RMDIR", names=["dir"])
            + vfs_publish(1) + vfs_drain(),
        # Requests split over several pieces, through indirect tables, on
        # both request queues and the hiprio queue.
        "indirect_split": u8(2, 0)
            + vfs_request(1, "CREATE", fuse_create_in(O_RDWR | O_CREAT, S_IFREG | 0o600),
                          names=["a"], nin=3, nout=2, indirect=True, splits=(8, 20, 100))
            + vfs_request(2, "LOOKUP", names=["a"], nin=2, nout=1, splits=(41,))
            + vfs_request(0, "FORGET", u64(1))
            + vfs_publish(1) + vfs_publish(2) + vfs_publish(0) + vfs_drain(),
        # The notification queue: buffers for it, notifications raw and
        # through the server.
        "notify_queue": u8(4, 2)
            + u8(4, 1) + u16(200) + u8(0)                      # writable-only on queue 1
            + u8(4, 1) + u16(8) + u8(1) + u16(3)
            + vfs_publish(1)
            + u8(10, 0, 0) + u16(5) + b"f.txt"                 # INVAL_ENTRY
            + u8(10, 0, 1) + u64(0) + u64(4096)                # INVAL_INODE
            + u8(8, 3, 16) + bytes(16)                         # a raw notification
            + vfs_drain(),
        # Event index, a request whose header lies about its length, a chain
        # out of guest memory, raw bodies, pause and resume.
        "edge_cases": u8(1, 0)
            + u8(0, 1, FUSE["GETATTR"] - 1, 0x46) + u8(0, 1, 0) + fuse_getattr_in()
            + u8(0, 0) + u32(0xFFFFFFFF)
            + u8(5, 1, 1) + u64(0xFFFFFFFFFFFFF000)
            + u8(5, 2, 0)
            + u8(0, 1, 0xC8) + u32(7) + u8(0x41) + u8(0, 1, 0) + u16(3) + b"abc"
            + vfs_publish(1, 1) + vfs_publish(2, 1)
            + u8(9, 1) + vfs_drain(),
        "no_init": u8(0, 1)
            + vfs_request(1, "INIT", fuse_init_in(minor=31))
            + vfs_request(1, "INIT", fuse_init_in())
            + vfs_publish(1) + vfs_drain(),
    }


# ---- fuzz_virtq_net -------------------------------------------------------
# u8 features (1 EVENT_IDX, 2 INDIRECT_DESC, 4 MAC+STATUS, 8 bad features,
# 0x10 raw queue indirect, 0x20 raw queue event index), three queue sizes
# (1 << b % 9; bit 7 a bad size), then operations selected by a byte % 19:
# queue 0 RX, 1 TX, 2 the raw queue driven through vq_pop/vq_push.

def vqn_good(op_q, first=0, nbuf=1, opt=0, length=64, at=0):
    op = {0: 7, 1: 6, 2: 8}[op_q]
    return u8(op) + u16(first) + u8(nbuf - 1, opt) + u16(length) + u16(at)


def vqn_kick(q):
    return u8(3, q)


def vqn_desc(q, i, addr_mode, addr, length, flags, nxt):
    return u8(0, q) + u16(i) + u8(addr_mode) + u32(addr) + u32(length) + u8(flags) + u16(nxt)


def seeds_virtq_net():
    size16 = u8(4, 4, 4)
    return {
        "tx_rx_loopback": u8(0) + size16
            + vqn_good(0, 0, 1, 0, 1600, 0) + vqn_good(0, 1, 2, 0, 1600, 0x200)
            + vqn_kick(0)
            + vqn_good(1, 0, 2, 0, 60, 0x800)
            + vqn_kick(1) + u8(10) + u8(10),
        "indirect_event_idx": u8(7) + size16
            + u8(9, 0, 1) + u16(0)                            # used_event on RX
            + vqn_good(0, 0, 3, 2, 1500, 0x100)
            + vqn_good(1, 0, 4, 2 | 4, 300, 0x900)
            + vqn_kick(1) + u8(10) + u8(18) + u16(2) + u8(0, 0) + u16(100) + u16(0x40)
            + u16(4) + u8(0, 0) + u16(80) + u16(0xa00),
        "raw_pop_push": u8(0x30) + u8(3, 3, 3)
            + vqn_good(2, 0, 2, 0, 100, 0)
            + u8(11) + u8(12) + u32(50) + u8(0)                 # pop, push what was popped
            + u8(13, 0) + u8(13, 1)                             # enable, disable kicks
            + vqn_good(2, 2, 1, 0, 20, 0x100) + u8(11) + u8(14) + u8(11)
            + u8(12) + u32(0) + u8(1) + u16(0xFFFF),            # push a head out of range
        "flood": u8(1) + u8(6, 6, 0)
            + u8(17, 10, 2) + u8(10) + u8(17, 0, 0) + vqn_kick(0) + u8(10),
        # A chain that loops on itself, an avail index far ahead, a head out
        # of range: the queue is poisoned and the device asks for a reset.
        "broken_rings": u8(0) + size16
            + vqn_desc(1, 0, 0, 0x40000, 64, 1, 0)              # NEXT to itself
            + u8(1, 1) + u16(0) + u16(0) + u8(2, 1, 1) + vqn_kick(1)
            + u8(15)
            + u8(1, 0) + u16(0) + u16(999) + u8(2, 0, 1) + vqn_kick(0)
            + u8(15)
            + u8(2, 2, 100) + u8(11),
        "big_indirect": u8(2) + u8(5, 5, 5)
            + u8(16, 1) + u16(0) + u16(2047) + u8(0) + u32(0x100) + u32(64) + u8(0)
            + vqn_kick(1)
            + u8(5) + u16(0) + u8(3) + (u16(0) + u16(32) + u8(1) + u8(1)) * 4
            + u8(4) + u8(2) + u32(0x100) + u8(3) + b"\x01\x02\x03\x04",
        "bad_sizes_features": u8(8) + u8(0x85, 1, 8)
            + vqn_good(2, 0, 1, 0, 0, 0) + u8(11),
        # vq_pop's outstanding check when the used index wraps (a fix for
        # "pending counted from last_avail_idx, not from used_idx").
        "regress-used-wrap": base64.b64decode(
            "AzU1NZY1AAAAAAAA19fX19fX19fX19fX19fX19fX19fX19cAAAAAAAAAAAAAAAAAAAEAANTU1NTU1NTU"
            "PwpikpKSkpIiki4="),
    }


# ---- fuzz_mmio --------------------------------------------------------------
# u8 device (bit 0: 0 virtio-net, 1 virtio-fs), then operations selected by a
# byte % 9: 0 raw access, 1 known register, 2 status, 3 handshake, 4 config,
# 5 QueueNotify + loop, 6 poke memory, 7 interrupt ack, 8 loop.

def mmio_raw(off, width_sel, write, data=b""):
    return u8(0) + u16(off) + u8(width_sel, write) + data.ljust(8, b"\0")


def mmio_handshake(feature_mask, qsizes, bad_used=None):
    b = u8(3) + u64(feature_mask)
    for i, n in enumerate(qsizes):
        b += u8(n, 0xFF if bad_used == i else 0)
        if bad_used == i:
            b += u8(4) + b"\0\0\0" + u64(0xFFFFFFFFFFFFF000)
    return b


def seeds_mmio():
    ids = b"".join(mmio_raw(off, 2, 0) for off in (0x000, 0x004, 0x008, 0x00C, 0x034, 0x070))
    return {
        "net_handshake_notify": u8(0) + mmio_handshake(0xFFFFFFFFFFFFFFFF, (4, 4))
            + u8(4, 0, 2, 0) + bytes(8)                         # config read
            + u8(6) + u8(0, 0, 0) + u8(15) + bytes(16)          # poke
            + u8(5, 1) + u8(7) + u8(5, 0) + u8(8),
        "fs_handshake_notify": u8(1) + mmio_handshake(0, (3, 5))
            + u8(4, 0, 2, 0) + bytes(8) + u8(4, 36, 2, 0) + bytes(8)
            + u8(5, 1) + u8(7),
        "id_registers": u8(0) + ids + mmio_raw(0x000, 0, 0) + mmio_raw(0x002, 3, 0)
            + mmio_raw(0x1FFF, 2, 0) + mmio_raw(0x100, 4, 0),
        # The driver's status steps one by one, with registers written between.
        "status_steps": u8(1) + u8(2, 0) + u8(2, 1)
            + u8(1, 2) + u32(1) + u8(1, 1) + u32(1)                # VERSION_1
            + u8(2, 2)
            + u8(1, 3) + u32(0) + u8(1, 4) + u32(4)
            + u8(1, 9) + u32(0) + u8(0) + b"\0\0\0"
            + u8(1, 5) + u32(1)
            + u8(2, 3) + u8(2, 0xF0, 0x4F) + u8(2, 0xFF),
        "bad_queue": u8(0) + mmio_handshake(0xFFFFFFFF, (4, 4), bad_used=1)
            + u8(1, 4) + u32(0x103) + u8(1, 5) + u32(1) + u8(5, 3),
    }


# ---- fuzz_ports -------------------------------------------------------------
# Operations selected by a byte % 8: 0-2 a port access (u16 port selector:
# bit 15 a raw port, else an index into ports[]; u8 width: 1 2 4 1; u8
# write; 4 data bytes), 3 console input (u16 count), 4 a loop turn, 5 the
# 8250 driver's start (u8 FCR), 6 the receive handler, 7 reading resumes.

PORTS = [0x3F8 + i for i in range(8)] + [0x60, 0x64, 0x70, 0x71, 0x80, 0xED, 0x501, 0x502,
                                         0x3F0, 0x3EF, 0x400]


def port(p, write=False, data=b"", width=1):
    sel = PORTS.index(p) if p in PORTS else 0x8000 | p
    return u8(0) + u16(sel) + u8({1: 0, 2: 1, 4: 2}[width], 1 if write else 0) + data.ljust(4, b"\0")


def seeds_ports():
    return {
        "uart_receive": u8(5, 0xC7) + u8(3) + u16(15) + u8(4) + u8(6)
            + port(0x3FA) + port(0x3FD) + u8(3) + u16(200) + u8(4) + u8(6) + u8(7),
        "uart_dlab": port(0x3FB, True, b"\x80") + port(0x3F8, True, b"\x01")
            + port(0x3F9, True, b"\x00") + port(0x3F8) + port(0x3F9)
            + port(0x3FB, True, b"\x03") + port(0x3F9, True, b"\x0f") + port(0x3F9)
            + port(0x3F8, width=2) + port(0x3FC, True, b"\x10") + port(0x3FE),
        "rtc_cmos": b"".join(port(0x70, True, u8(r)) + port(0x71)
                             for r in (0, 2, 4, 6, 7, 8, 9, 0x0A, 0x0B, 0x0D, 0x32))
            + port(0x70, True, b"\x20") + port(0x71, True, b"\x5a") + port(0x71)
            + port(0x70, True, b"\x8f") + port(0x71, width=2),
        "debug_exit": port(0x501, True, b"\x07\x00", 2) + port(0x502, True, b"\x01")
            + port(0x501, True, b"\x00\x01\x02\x03", 4),
        "i8042_boot_marker": port(0x64) + port(0x60) + port(0x3F0, True, b"\x7b")
            + port(0x3F0, True, b"\x7b", 2) + port(0x64, True, b"\xfe"),
        # Input while nobody listens: the pipe fills, reading stops and resumes.
        "input_backlog": (u8(3) + u16(1023)) * 8 + u8(7) + u8(5, 0x01) + u8(6) + u8(7)
            + port(0x80, True, b"\x55") + port(0xED) + port(0x400, width=4),
    }


# ---- fuzz_vhost_user ------------------------------------------------------
# u8 mode (bit 0 a valid handshake first, bit 1 in-band notifications),
# then records: u8 op < 0xf0 a message (request from the table below, u8
# flags selector, u16 size selector (>= 0xf000: size & 0x1fff), u8 fd spec,
# payload), 0xf0 the same with a raw request id, 0xfc raw bytes on the
# socket, 0xfd poke guest memory, 0xfe kick every queue, 0xff signal.

VU_REQUESTS = [1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 21, 24, 25, 35,
               0, 6, 7, 19, 20, 22, 23, 34, 36, 37, 40, 41, 1000]
VU = dict(GET_FEATURES=1, SET_FEATURES=2, SET_OWNER=3, RESET_OWNER=4, SET_MEM_TABLE=5,
          SET_VRING_NUM=8, SET_VRING_ADDR=9, SET_VRING_BASE=10, GET_VRING_BASE=11,
          SET_VRING_KICK=12, SET_VRING_CALL=13, GET_PROTOCOL_FEATURES=15,
          SET_PROTOCOL_FEATURES=16, GET_QUEUE_NUM=17, SET_VRING_ENABLE=18, GET_CONFIG=24,
          SET_CONFIG=25, VRING_KICK=35, GET_MAX_MEM_SLOTS=36, GET_STATUS=41)
NEED_REPLY = 0x08
FDS_EXPECTED = 0x80
MEM = 2 << 3          # fd kind: a memfd
RING0 = 0x10000       # where the handshake puts queue q's rings: 0x10000 * (q + 1)


def vu_msg(name, payload=b"", fdspec=0, fsel=NEED_REPLY):
    return u8(VU_REQUESTS.index(VU[name]), fsel) + u16(0xF000 | len(payload)) + u8(fdspec) + payload


def vu_poke(off, data):
    assert off % 16 == 0 and len(data) < 256
    return u8(0xFD) + u16(off // 16) + u8(len(data)) + data


def vu_chain(q, heads):
    """A descriptor per head (device-readable, then writable), published."""
    base = RING0 * (q + 1)
    desc = b"".join(struct.pack("<QIHH", 0x40000 + 0x1000 * h, 256, 2 if h % 2 else 0, 0)
                    for h in heads)
    avail = u16(0) + u16(len(heads)) + b"".join(u16(h) for h in heads)
    return vu_poke(base, desc) + vu_poke(base + 0x1000, avail)


def seeds_vhost_user():
    mem_table = u32(1) + u32(0) + u64(0x1000) + u64(0xFF000) + u64(0x1000) + u64(0x1000)
    return {
        "handshake_kick": u8(1) + vu_chain(0, [0, 1]) + u8(0xFE) + u8(0xFF, 0)
            + vu_msg("GET_VRING_BASE", u32(0) + u32(0)),
        "inband_kick": u8(3) + vu_chain(1, [0, 1, 2])
            + vu_msg("VRING_KICK", u32(1) + u32(0)) + u8(0xFF, 1)
            + vu_msg("GET_STATUS"),
        "manual_handshake": u8(0)
            + vu_msg("SET_OWNER", fsel=0) + vu_msg("GET_FEATURES")
            + vu_msg("GET_PROTOCOL_FEATURES") + vu_msg("SET_PROTOCOL_FEATURES", u64(0x209))
            + vu_msg("SET_FEATURES", u64((1 << 32) | (1 << 30)))
            + vu_msg("GET_QUEUE_NUM") + vu_msg("GET_MAX_MEM_SLOTS")
            + vu_msg("SET_MEM_TABLE", mem_table, FDS_EXPECTED | MEM)
            + vu_msg("SET_VRING_NUM", u32(0) + u32(64))
            + vu_msg("SET_VRING_BASE", u32(0) + u32(0))
            + vu_msg("SET_VRING_ADDR", u32(0) + u32(0) + u64(RING0) + u64(RING0 + 0x2000)
                     + u64(RING0 + 0x1000) + u64(0))
            + vu_msg("SET_VRING_CALL", u64(0), FDS_EXPECTED)
            + vu_msg("SET_VRING_KICK", u64(0), FDS_EXPECTED)
            + vu_msg("SET_VRING_ENABLE", u32(0) + u32(1))
            + vu_chain(0, [0]) + u8(0xFE),
        "config": u8(1)
            + vu_msg("GET_CONFIG", u32(0) + u32(12) + u32(0) + bytes(12))
            + vu_msg("SET_CONFIG", u32(4) + u32(4) + u32(0) + b"abcd")
            + vu_msg("GET_CONFIG", u32(8) + u32(12) + u32(0) + bytes(12)),
        # Two queue pairs (mode bit 2), pair 0 enabled by the handshake: a
        # buffer waits on pair 1's RX ring while it is disabled, pair 1 is
        # enabled (the device restarts on both pairs), then disabled again;
        # the control queue's index and the pair count.
        "mq_pairs": u8(5) + vu_chain(2, [0]) + u8(0xFE)
            + vu_msg("SET_VRING_ENABLE", u32(2) + u32(1))
            + vu_msg("SET_VRING_ENABLE", u32(3) + u32(1)) + u8(0xFE)
            + vu_msg("SET_VRING_ENABLE", u32(2) + u32(0))
            + vu_msg("GET_VRING_BASE", u32(2) + u32(0))
            + vu_msg("SET_VRING_ENABLE", u32(4) + u32(0))
            + vu_msg("GET_QUEUE_NUM"),
        # Framed by the server itself: a whole GET_FEATURES header, then half
        # of one; an unknown request; a vring number that is not a power of two.
        "raw_and_edges": u8(1)
            + u8(0xFC) + u16(12) + u8(0) + u32(1) + u32(1 | NEED_REPLY) + u32(0)
            + u8(0xFC) + u16(6) + u8(0) + u32(2) + u16(1)
            + u8(0xF0) + u16(999) + u16(0) + u8(NEED_REPLY) + u16(0xF000) + u8(0)
            + vu_msg("SET_VRING_NUM", u32(1) + u32(100))
            + vu_msg("SET_VRING_NUM", u32(7) + u32(64))
            + vu_msg("RESET_OWNER", fsel=0),
    }


# ---- fuzz_decompress ------------------------------------------------------
# The first byte picks the format whose magic goes in front of the rest:
# 0 gzip, 1 xz, 2 lzma, 3 zstd, 4 lz4 (legacy), 5 bzip2, 6 lzo (lzop).
# Every format but gzip ends with the kernel build's size_append: the
# uncompressed size, 32-bit little-endian.

PAYLOAD = b"kvmini seed payload\n" * 40 + bytes(range(256))
MAGIC_LEN = [3, 6, 3, 4, 4, 3, 9]


def zstd_raw_frame(data):
    """A zstd frame of one raw (stored) block, single segment."""
    assert len(data) < 1 << 16
    fhd = 0x60                     # single segment, frame content size 2 bytes
    hdr = struct.pack("<IBH", 0xFD2FB528, fhd, len(data) - 256)
    block = (len(data) << 3) | 1   # raw block, last
    return hdr + struct.pack("<I", block)[:3] + data


def lz4_legacy_literals(data):
    """lz4's legacy frame of one block holding only literals."""
    n = len(data)
    blk = u8(0xF0)                 # 15+ literals, no match
    rest = n - 15
    while rest >= 255:
        blk += u8(255)
        rest -= 255
    blk += u8(rest) + data
    return u32(0x184C2102) + u32(len(blk)) + blk


def lzop_stored(data):
    """lzop's format with one stored block (compressed length = length)."""
    hdr = struct.pack(">HHHBBIIII", 0x1030, 0x2080, 0x0940, 1, 9, 0, 0o100644, 0, 0) + u8(4) + b"seed"
    hdr += struct.pack(">I", zlib.adler32(hdr))
    body = struct.pack(">II", len(data), len(data)) + data + struct.pack(">I", 0)
    return b"\x89LZO\0\r\n\x1a\n" + hdr + body


def seeds_decompress():
    size = u32(len(PAYLOAD))
    whole = {
        "gzip": (0, gzip.compress(PAYLOAD, 9, mtime=0)),
        "xz": (1, lzma.compress(PAYLOAD, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32) + size),
        "lzma": (2, lzma.compress(PAYLOAD, format=lzma.FORMAT_ALONE) + size),
        "zstd": (3, zstd_raw_frame(PAYLOAD) + size),
        "lz4": (4, lz4_legacy_literals(PAYLOAD) + size),
        "bzip2": (5, bz2.compress(PAYLOAD, 9) + size),
        "lzo": (6, lzop_stored(PAYLOAD) + size),
    }
    out = {}
    for name, (sel, stream) in whole.items():
        out[name] = u8(sel) + stream[MAGIC_LEN[sel]:]
    # Edge cases: a size trailer that lies, a stream cut short, magic alone.
    bad = bytearray(out["xz"])
    bad[-4:] = u32(len(PAYLOAD) + 1)
    out["xz_wrong_size"] = bytes(bad)
    out["gzip_truncated"] = out["gzip"][:len(out["gzip"]) // 2]
    out["lzo_magic_only"] = u8(6)
    return out


# ---- fuzz_state -----------------------------------------------------------
# The KVM state sections of src/vmm/vm_state.h and vcpu_state.h, for a VM of
# one vCPU on a host with 4 KiB of XSAVE (the fuzzer's host). Struct sizes
# are x86 KVM's (linux/kvm.h).

KVM_SIZES = dict(pic=16, ioapic=216, pit2=112, regs=144, sregs=312, debugregs=128,
                 lapic=1024, events=64, xsave=4096)


def st_section(tag, body):
    return tag.encode() + u32(len(body)) + body


def st_blob(size, fill=0):
    return u32(size) + bytes([fill]) * size


def st_chip():
    irqc = st_blob(KVM_SIZES["pic"]) + st_blob(KVM_SIZES["pic"]) + st_blob(KVM_SIZES["ioapic"])
    return (st_section("IRQC", irqc) + st_section("PIT2", st_blob(KVM_SIZES["pit2"])) +
            st_section("CLCK", u64(1000000000) + u32(0)))


def st_vcpu(index=0):
    cpuid = u32(2) + b"".join(u32(v) for v in (0, 0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69))
    cpuid += b"".join(u32(v) for v in (1, 0, 0, 0x806f8, 0, 0x80000000, 0))
    msrs = u32(2) + u32(0x10) + u64(123456789) + u32(0x4b564d01) + u64(0x12001)
    body = (u32(index) + cpuid + u32(0) + st_blob(KVM_SIZES["regs"]) +
            st_blob(KVM_SIZES["sregs"]) + st_blob(KVM_SIZES["xsave"]) +
            u32(1) + u32(0) + u32(0) + u64(3) + st_blob(KVM_SIZES["debugregs"]) +
            st_blob(KVM_SIZES["lapic"]) + msrs + st_blob(KVM_SIZES["events"]))
    return st_section("VCPU", body)


def st_file(payload):
    """Header (src/core/state_io.h) and payload."""
    head = b"KVMINIST" + u32(3) + u32(32) + u64(len(payload)) + u32(zlib.crc32(payload))
    return head + u32(zlib.crc32(head)) + payload


def st_devc(nets, shares):
    """A "DEVC" section (src/machine/device_config_state.c)."""
    body = u32(len(nets))
    for iface_id, backend, mtu, mmds in nets:
        body += st_str(iface_id) + st_str(backend) + u16(mtu) + u8(mmds)
    body += u32(len(shares))
    for d, tag in shares:
        body += (u32(0) + st_str(d) + st_str(tag) + u32(1) + u32(2) + u32(2) + u32(1 << 20)
                 + u32(0) + u32(0) + u8(1) + u32(1000) + u32(1000) + u8(0) + u8(0) + u32(0))
    return st_section("DEVC", body)


def st_devv(cid, path):
    """The vsock device's "DEVV" section."""
    return st_section("DEVV", u64(cid) + st_str(path))


def st_devl(amount_mib, deflate_on_oom, stats_s):
    """The balloon's "DEVL" section."""
    return st_section("DEVL", u32(amount_mib) + u8(deflate_on_oom) + u16(stats_s))


def st_devb(drives):
    """The drives' "DEVB" section: (id, path, partuuid, ro, root, sectors)."""
    body = u32(len(drives))
    for drive_id, path, partuuid, ro, root, sectors in drives:
        bw = u64(1 << 20) + u64(0) + u64(100)
        body += (st_str(drive_id) + st_str(path) + st_str(partuuid) + u8(ro) + u8(root) + bw
                 + u64(0) * 3 + u64(sectors))
    return st_section("DEVB", body)


def seeds_state():
    vm = st_chip() + st_section("NCPU", u32(1)) + st_vcpu()
    devc = st_devc([("eth0", "tap:tap0", 1500, 1), ("wan", "user", 0, 0)], [("/srv", "data")])
    devb = st_devb([("rootfs", "/img/root.ext4", "", 0, 1, 2048),
                    ("data", "/img/data.raw", "", 1, 0, 64)])
    return {
        "devc-vsock-drives": devc + st_devv(3, "/run/v.sock") + devb,
        "devc-vsock-balloon-drives": devc + st_devv(3, "/run/v.sock") + st_devl(64, 1, 5) + devb,
        "devc-balloon-bad-flag": devc + st_devl(16, 2, 0),
        "devc-balloon-after-drives": devc + devb + st_devl(0, 0, 0),
        "devc-drives-root-second": devc + st_devb([("a", "/a", "", 0, 0, 8),
                                                   ("b", "/b", "", 0, 1, 8)]),
        "devc-section": devc,
        "devc-dax": devc + st_section("DEVX", u32(1) + u64(1 << 30)),
        "devc-dax-bad-size": devc + st_section("DEVX", u32(1) + u64(3 << 20)),
        "devc-dax-none": devc + st_section("DEVX", u32(1) + u64(0)),
        "devc-duplicate-ids": st_devc([("eth0", "loopback", 0, 0)] * 2, []),
        "devc-then-vm": devc + vm,
        "vm-file": st_file(vm),
        "vm-file-truncated": st_file(vm)[:-100],
        "vm-payload": vm,
        "vcpu-section": st_vcpu(),
        "vcpu-wrong-index": st_vcpu(1),
        "chip-sections": st_chip(),
    }


# ---- fuzz_fs_state: the FUSE server's snapshot sections -------------------
# src/fuse/fuse_state.c ("FUSE") and src/fs/passthrough_state.c ("FSPT"),
# for a server with --cache auto and default sizes over the harness's tree
# (files "a" and "d/b", directory "d").

def st_str(s):
    return u32(len(s)) + s.encode()


def st_session(initialized=1, minor=31, flags=1 | 1 << 5, max_write=1 << 20):
    if not initialized:
        minor, flags, max_write = 0, 0, 0
    return st_section("FUSE", u8(initialized) + u32(minor) + u64(flags) + u32(max_write)
                      + u32(1 << 20 if initialized else 0) + u8(2) + u32(1 << 20)
                      + u32(1 << 20) + u64(0))


def st_node(nodeid, path, mode, nlookup=1, gone=0, handle=b"", dev=0, ino=0):
    return (u64(nodeid) + u64(nlookup) + u32(mode) + u64(dev) + u64(ino) + u8(gone)
            + u32(len(handle)) + u32(1) + handle + st_str(path))


def st_handle(fh, nodeid, flags, is_dir=0, stale=0):
    return u64(fh) + u64(nodeid) + u32(flags) + u8(is_dir) + u8(stale)


def st_fspt(nodes, files, mnt_id=0xFFFFFFFF, count=None):
    n = len(nodes) if count is None else count
    return st_section("FSPT", u32(mnt_id) + u32(n) + b"".join(nodes)
                      + u32(len(files)) + b"".join(files))


O_APPEND, O_DIRECTORY = 0o2000, 0o200000
ST_ROOT = st_node(1, "", S_IFDIR)
ST_TREE = [ST_ROOT, st_node(2, "a", S_IFREG, nlookup=3), st_node(3, "d", S_IFDIR),
           st_node(4, "d/b", S_IFREG), st_node((1 << 32) | 6, "gone", S_IFREG)]


FUSE_MAP_ALIGNMENT = 1 << 26
DAX_SESSION = st_session(flags=1 | 1 << 5 | FUSE_MAP_ALIGNMENT)


def st_fdax(maps, version=1, size=2 << 20, count=None):
    n = len(maps) if count is None else count
    return st_section("FDAX", u32(version) + u64(size) + u32(n) + b"".join(
        u64(m) + u64(ln) + u64(node) + u64(f) + u8(fl) for m, ln, node, f, fl in maps))


def seeds_fs_state_dax():
    tree = st_fspt(ST_TREE, [])
    good = [(0, 4096, 2, 0, 1), (1 << 20, 8192, 2, 0, 0)]
    return {
        "dax_none": DAX_SESSION + tree + st_fdax([]),
        "dax_two_mappings": DAX_SESSION + tree + st_fdax(good),
        "dax_empty_file": DAX_SESSION + tree + st_fdax([(0, 4096, 4, 0, 0)]),
        "dax_gone_node": DAX_SESSION + tree + st_fdax([(0, 4096, (1 << 32) | 6, 0, 0)]),
        "dax_overlap": DAX_SESSION + tree + st_fdax([(0, 8192, 2, 0, 0), (4096, 4096, 2, 0, 0)]),
        "dax_bad_version": DAX_SESSION + tree + st_fdax(good, version=2),
        "dax_bad_size": DAX_SESSION + tree + st_fdax(good, size=4 << 20),
        "dax_bad_count": DAX_SESSION + tree + st_fdax(good, count=70000),
        "dax_bad_flags": DAX_SESSION + tree + st_fdax([(0, 4096, 2, 0, 6)]),
        "dax_missing": DAX_SESSION + tree,
    }


def seeds_fs_state():
    return {
        **seeds_fs_state_dax(),
        "fresh_uninitialized": st_session(0) + st_fspt([ST_ROOT], []),
        "root_only": st_session() + st_fspt([ST_ROOT], []),
        "tree_with_handles": st_session() + st_fspt(ST_TREE, [
            st_handle(1, 2, O_RDWR | O_APPEND), st_handle(2, 3, O_RDONLY | O_DIRECTORY, is_dir=1),
            st_handle((1 << 32) | 5, 0, O_RDONLY, stale=1), st_handle(7, 6 | 1 << 32, O_RDONLY)]),
        "gone_at_save": st_session() + st_fspt(
            [ST_ROOT, st_node(2, "a", S_IFREG, gone=1)], [st_handle(1, 2, O_RDONLY)]),
        "handle_bytes": st_session() + st_fspt(
            [ST_ROOT, st_node(2, "a", S_IFREG, handle=bytes(range(8)))], [], mnt_id=0),
        "bad_dotdot": st_session() + st_fspt([ST_ROOT, st_node(2, "../x", S_IFREG)], []),
        "bad_duplicate": st_session() + st_fspt([ST_ROOT, ST_TREE[1], ST_TREE[1]], []),
        "bad_count": st_session() + st_fspt([ST_ROOT], [], count=1 << 21),
        "bad_handle_size": st_session() + st_fspt(
            [ST_ROOT, st_node(2, "a", S_IFREG, handle=bytes(129))], []),
        "bad_minor": st_session(minor=99) + st_fspt([ST_ROOT], []),
    }


# ---- device state (src/transport/mmio_state.c, virtio/device_state.c,
# net/net_state.c): sections MMIO, VDEV, VNET for fuzz_device_state's
# virtio-net behind virtio-mmio, guest memory at 0x40000000 ----------------

DS_MEM = 0x40000000
NET_OFFERED = (1 << 32) | (1 << 5) | (1 << 3) | (1 << 16) | (1 << 29) | (1 << 28)
NET_COUNTERS = 27


def section(tag, body):
    return tag + u32(len(body)) + body


def ds_rings(q):
    base = DS_MEM + q * 0x4000
    return base, base + 0x1000, base + 0x2000


def ds_mmio(status, features, active, isr=0):
    body = u32(1) + u32(10) + b"virtio-net" + u32(2) + u32(status) + u32(0) * 3
    body += u64(features) + u32(isr) + u32(0) + u8(0)
    for q in range(2):
        d, a, u = ds_rings(q)
        body += (u16(16) + u8(1) + u64(d) + u64(a) + u64(u)) if active else bytes(27)
    return section(b"MMIO", body)


def ds_vdev(features, active, base=0):
    body = u64(features) + u8(active) + u8(0) + u32(0) + u32(2)
    for q in range(2):
        d, a, u = ds_rings(q) if active else (0, 0, 0)
        body += u16(16 if active else 0) + u64(d) + u64(a) + u64(u)
        body += u16(base) + u16(0) * 3 + u8(0) + u8(1) + u64(0) * 2 + u8(0) * 3
    return section(b"VDEV", body)


def ds_vnet(limited=False):
    body = bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]) + u16(1500) + u32(NET_COUNTERS)
    body += u64(0) * NET_COUNTERS
    bucket = u64(3000) + u64(0) + u64(100) + u64(1000) + u64(0) + u64(5000000)
    for _ in range(2):
        body += (bucket if limited else u64(0) * 6) + u64(0) * 6
    # the control queue's settings: RX offloads, promisc, allmulti, MAC
    # table entries, announce, queue pairs in use
    body += u64(0) + u8(0) + u8(0) + u32(0) + u8(0) + u16(1)
    return section(b"VNET", body)


def seeds_device_state():
    return {
        "fresh": ds_mmio(0, 0, False) + ds_vdev(0, False) + ds_vnet(),
        "active": ds_mmio(0xF, NET_OFFERED, True, isr=1) + ds_vdev(NET_OFFERED, True) +
                  ds_vnet(limited=True),
        "features_ok": ds_mmio(0xB, NET_OFFERED, False) + ds_vdev(NET_OFFERED, False) + ds_vnet(),
        "truncated": (ds_mmio(0xF, NET_OFFERED, True) + ds_vdev(NET_OFFERED, True))[:-7],
    }


# ---- fuzz_blk_vsock_state: MMIO, VDEV and VBLK, VSCK or VBAL for virtio-blk
# (one queue, a 64-sector image "fuzzdisk"), virtio-vsock (three queues, CID
# 3) or virtio-balloon (three queues, statistics every second) behind
# virtio-mmio; the input's first byte modulo 3: 0 blk, 1 vsock, 2 balloon --

BLK_SEEN = (1 << 32) | (1 << 9)          # VERSION_1, FLUSH
VSOCK_SEEN = 1 << 32


def dv_mmio(devid, name, nq, status, features, active):
    body = u32(devid) + u32(len(name)) + name + u32(nq) + u32(status) + u32(0) * 3
    body += u64(features) + u32(0) + u32(0) + u8(0)
    for q in range(nq):
        d, a, u = ds_rings(q)
        body += (u16(16) + u8(1) + u64(d) + u64(a) + u64(u)) if active else bytes(27)
    return section(b"MMIO", body)


def dv_vdev(nq, features, active, bases=()):
    """bases: each queue's next avail index (default 0): chains taken, none used."""
    body = u64(features) + u8(active) + u8(0) + u32(0) + u32(nq)
    for q in range(nq):
        d, a, u = ds_rings(q) if active else (0, 0, 0)
        body += u16(16 if active else 0) + u64(d) + u64(a) + u64(u)
        body += u16(bases[q] if q < len(bases) else 0) + u16(0) * 3 + u8(0) + u8(1)
        body += u64(0) * 2 + u8(0) * 3
    return section(b"VDEV", body)


def dv_vblk(sectors=64, ro=0, limited=False):
    bucket = u64(4096) + u64(0) + u64(100) + u64(1000) + u64(0) + u64(5000000)
    body = b"fuzzdisk".ljust(20, b"\0") + u8(ro) + u64(sectors)
    return section(b"VBLK", body + (bucket if limited else u64(0) * 6) + u64(0) * 6)


def dv_vsck(cid=3, port=1 << 30, pending=0):
    return section(b"VSCK", u64(cid) + st_str("/tmp/old.sock") + u32(port) + u8(pending))


BALLOON_SEEN = (1 << 32) | (1 << 1) | (1 << 2)   # VERSION_1, STATS_VQ, DEFLATE_ON_OOM


def dv_vbal(pages=0, actual=0, interval=1, flags=0, head=0, seen=0):
    """The balloon's "VBAL": target, actual, interval, flags (1: a statistics
    buffer kept, descriptor head), the tags seen and 16 values."""
    body = u32(pages) + u32(actual) + u16(interval) + u32(flags) + u16(head) + u32(seen)
    return section(b"VBAL", body + b"".join(u64(t * 1000) for t in range(16)))


def seeds_blk_vsock_state():
    blk = lambda st, f, act: dv_mmio(2, b"virtio-blk", 1, st, f, act) + dv_vdev(1, f, act)
    vs = lambda st, f, act: dv_mmio(19, b"virtio-vsock", 3, st, f, act) + dv_vdev(3, f, act)
    bl = lambda st, f, act, bases=(): (dv_mmio(5, b"virtio-balloon", 3, st, f, act) +
                                       dv_vdev(3, f, act, bases))
    return {
        "blk-fresh": b"\0" + blk(0, 0, False) + dv_vblk(),
        "blk-active": b"\0" + blk(0xF, BLK_SEEN, True) + dv_vblk(limited=True),
        "blk-other-size": b"\0" + blk(0xF, BLK_SEEN, True) + dv_vblk(sectors=65),
        "blk-read-only": b"\0" + blk(0xF, BLK_SEEN, True) + dv_vblk(ro=1),
        "vsock-fresh": b"\1" + vs(0, 0, False) + dv_vsck(),
        "vsock-active": b"\1" + vs(0xF, VSOCK_SEEN, True) + dv_vsck(pending=1),
        "vsock-other-cid": b"\1" + vs(0xF, VSOCK_SEEN, True) + dv_vsck(cid=4),
        "vsock-truncated": (b"\1" + vs(0xF, VSOCK_SEEN, True) + dv_vsck())[:-3],
        "balloon-fresh": b"\2" + bl(0, 0, False) + dv_vbal(),
        "balloon-active-held": b"\2" + bl(0xF, BALLOON_SEEN, True, (0, 0, 1)) +
                               dv_vbal(pages=4096, actual=1024, interval=5, flags=1, head=3,
                                       seen=0x31),
        "balloon-held-none-taken": b"\2" + bl(0xF, BALLOON_SEEN, True) + dv_vbal(flags=1),
        "balloon-target-beyond-ram": b"\2" + bl(0xF, BALLOON_SEEN, True) + dv_vbal(pages=1 << 20),
        "balloon-unknown-flags": b"\2" + bl(0xF, BALLOON_SEEN, True) + dv_vbal(flags=6),
    }


# ---- fuzz_offload ---------------------------------------------------------
# The 12-byte virtio-net header (little-endian), u8 head cut (0: the first
# 256 bytes), u16 bytes appended to the frame (a pattern), then the frame.
# Frames as a guest sends them with NEEDS_CSUM: the L4 checksum field holds
# the pseudo-header's folded sum.

VNET_NEEDS_CSUM = 1
GSO = dict(NONE=0, TCPV4=1, UDP=3, TCPV6=4, UDP_L4=5, ECN=0x80)


def be16(v):
    return struct.pack(">H", v & 0xFFFF)


def be32(v):
    return struct.pack(">I", v & 0xFFFFFFFF)


def inet_fold(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def vnet_hdr(flags, gso_type, hdr_len=0, gso_size=0, start=0, off=0):
    return u8(flags, gso_type) + u16(hdr_len) + u16(gso_size) + u16(start) + u16(off) + u16(0)


def off_eth(vlans=0, v6=False):
    tags = b"".join(be16(0x88A8 if i + 1 < vlans else 0x8100) + be16(100 + i)
                    for i in range(vlans))
    return bytes.fromhex("525400123456525400abcdef") + tags + be16(0x86DD if v6 else 0x0800)


def off_frame(proto, v6=False, vlans=0, payload=b"", tcp_flags=0x18, appended=0):
    """Ethernet (VLANs), IPv4 or IPv6, TCP (12 option bytes) or UDP; returns
    (frame, l4 offset, checksum offset). @appended: payload bytes the fuzzer
    appends, counted in the lengths."""
    total = len(payload) + appended
    if proto == 6:
        l4 = (be16(40000) + be16(80) + be32(1000) + be32(1) + u8(8 << 4, tcp_flags)
              + be16(65535) + be16(0) + be16(0) + b"\x01\x01\x08\x0a" + bytes(8))
        coff = 16
    else:
        l4 = be16(5353) + be16(4789) + be16(8 + total) + be16(0)
        coff = 6
    l4_len = len(l4) + total
    if v6:
        src, dst = bytes(range(0x20, 0x30)), bytes(range(0xF0, 0xE0, -1))
        ip = u8(0x60, 0, 0, 0) + be16(l4_len) + u8(proto, 64) + src + dst
        pseudo = src + dst + be32(l4_len) + u8(0, 0, 0, proto)
    else:
        src, dst = bytes([10, 0, 2, 15]), bytes([192, 168, 7, 1])
        ip = u8(0x45, 0) + be16(20 + l4_len) + be16(7) + be16(0x4000) + u8(64, proto) + be16(0) + src + dst
        ip = ip[:10] + be16(~inet_fold(ip)) + ip[12:]
        pseudo = src + dst + u8(0, proto) + be16(l4_len)
    l4 = l4[:coff] + be16(inet_fold(pseudo)) + l4[coff + 2:]
    eth = off_eth(vlans, v6)
    return eth + ip + l4 + payload, len(eth) + len(ip), coff


def off_seed(flags, gso_type, gso_size, proto, cut=0, appended=0, hdr_len=0, **kw):
    f, l4, coff = off_frame(proto, appended=appended, **kw)
    return vnet_hdr(flags, gso_type, hdr_len, gso_size, l4, coff) + u8(cut) + u16(appended) + f


def ctrl_cmd(cls, cmd, data, shape=0):
    """One fuzz_net_ctrl command: shape, length (data + 2), class, command, data."""
    return u8(shape) + u16(len(data) + 2) + u8(cls) + u8(cmd) + data + u8(0)


def seeds_net_ctrl():
    mac = bytes([0x52, 0x54, 0, 9, 8, 7])
    tables = u32(1) + mac + u32(1) + bytes([0x33, 0x33, 0, 0, 0, 1])
    return {
        "rx-modes": u8(0x3f) + ctrl_cmd(0, 0, u8(1)) + ctrl_cmd(0, 1, u8(0), shape=1),
        "mac-table": u8(0x3f) + ctrl_cmd(1, 0, tables) + ctrl_cmd(1, 1, mac),
        "offloads": u8(0x3f) + ctrl_cmd(5, 0, u64(1 << 1)) + ctrl_cmd(5, 0, u64(0)),
        "announce": u8(0x3f) + ctrl_cmd(3, 0, b"") + ctrl_cmd(4, 0, u16(1)),
        "no-answer": u8(0x01) + ctrl_cmd(0, 0, u8(1), shape=2),
    }


def seeds_offload():
    text = b"kvmini offload seed " * 8
    nc = VNET_NEEDS_CSUM
    return {
        "tcp4_gso": off_seed(nc, GSO["TCPV4"], 1448, 6, payload=text * 20),
        "tcp4_64k": off_seed(nc, GSO["TCPV4"], 1448, 6, payload=text, appended=65000,
                             tcp_flags=0x19),
        "tcp4_ecn_vlan": off_seed(nc, GSO["TCPV4"] | GSO["ECN"], 500, 6, vlans=1,
                                  payload=text * 4, tcp_flags=0x98),
        "tcp6_qinq": off_seed(nc, GSO["TCPV6"], 1220, 6, v6=True, vlans=2, payload=text * 10),
        "udp_l4_v4": off_seed(nc, GSO["UDP_L4"], 1400, 17, payload=text, appended=9000),
        "udp_l4_v6": off_seed(nc, GSO["UDP_L4"], 1000, 17, v6=True, payload=text * 8),
        "ufo": off_seed(nc, GSO["UDP"], 1400, 17, payload=text * 20),
        "one_segment": off_seed(nc, GSO["TCPV4"], 1448, 6, payload=text, hdr_len=9999),
        "headers_only": off_seed(nc, GSO["TCPV4"], 1448, 6),
        "csum_udp": off_seed(nc, GSO["NONE"], 0, 17, payload=text),
        "csum_tcp6": off_seed(nc, GSO["NONE"], 0, 6, v6=True, payload=text[:33]),
        "plain": vnet_hdr(0, 0) + u8(0) + u16(0) + off_frame(17, payload=text)[0],
        "head_cut": off_seed(nc, GSO["TCPV4"], 1448, 6, cut=40, payload=text * 2),
        "rx_flags": vnet_hdr(2, 0x81, 0, 1448, 0, 0) + u8(0) + u16(0) + bytes(60),
    }


# ---- fuzz_blk ---------------------------------------------------------------
# feature byte (1: no DISCARD/WRITE_ZEROES, 2: no EVENT_IDX), then
# operations: 0-6 a request (shape: pieces | 4 header length given | 8 no
# status | 16 indirect | 32 writable data | 64 the image swapped right after
# the kick; type index into IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES,
# 99; sector byte, or 0x80 and 8 bytes; each piece a u16 length and 16
# bytes), 7 a raw descriptor, 8 an avail index jump, 9 a swap of the image
# (64 sectors <-> 24 sectors).

def blk_req(shape, type_index, sector, pieces=(), hlen=None):
    out = u8(0, shape, type_index)
    out += u8(sector) if sector < 0x80 else u8(0x80) + u64(sector)
    if hlen is not None:
        out += u8(hlen)
    for length, payload in pieces:
        out += u16(length) + payload.ljust(16, b"\0")[:16]
    return out


def blk_range(sector, n, flags):
    return u64(sector) + u32(n) + u32(flags)


BLK_SWAP = u8(9)


def seeds_blk():
    return {
        "read": u8(0) + blk_req(0x21, 0, 5, [(1024, b"")]),
        "write-read": u8(0) + blk_req(0x01, 1, 3, [(512, b"written")]) +
                      blk_req(0x21, 0, 3, [(512, b"")]),
        "flush-get-id": u8(0) + blk_req(0x00, 2, 0) + blk_req(0x21, 3, 0, [(20, b"")]),
        "discard-zeroes": u8(0) + blk_req(0x01, 4, 0, [(16, blk_range(2, 4, 0))]) +
                          blk_req(0x01, 5, 0, [(16, blk_range(8, 4, 1))]),
        "no-discard": u8(0x03) + blk_req(0x01, 4, 0, [(16, blk_range(2, 4, 0))]),
        "refusals": u8(0) + blk_req(0x00, 6, 0) + blk_req(0x21, 0, 1 << 63, [(512, b"")]) +
                    blk_req(0x21, 0, 64, [(512, b"")]) + blk_req(0x21, 0, 0, [(100, b"")]) +
                    blk_req(0x09, 1, 0, [(512, b"")]) + blk_req(0x05, 1, 0, [(512, b"")], 8) +
                    blk_req(0x01, 0, 0, [(512, b"")]),
        "indirect": u8(0) + blk_req(0x33, 0, 7, [(512, b""), (1024, b""), (512, b"")]),
        "raw-avail": u8(0) + u8(7, 3, 0) + u16(0x100) + u16(64) + u8(2, 0, 3) +
                     u8(8) + u16(300),
        # sector 30 is inside the 64-sector image, past the 24-sector one
        "swap-shrink-grow": u8(0) + blk_req(0x21, 0, 30, [(512, b"")]) + BLK_SWAP +
                            blk_req(0x21, 0, 30, [(512, b"")]) +
                            blk_req(0x21, 0, 23, [(512, b"")]) + BLK_SWAP +
                            blk_req(0x01, 1, 63, [(512, b"last")]),
        "swap-racing": u8(2) + blk_req(0x61, 0, 10, [(4096, b"")]) +
                       blk_req(0x41, 1, 20, [(2048, b"x")]) + blk_req(0x40, 2, 0),
    }


# ---- fuzz_vsock -------------------------------------------------------------
# operations: 0-1 a guest packet (f: 1 src_cid from input (8 bytes) | 2
# dst_cid 3 | 4 type from input (2 bytes) | 8 fwd_cnt honest less a byte,
# else 4 bytes | 16 len past the payload (a byte) | 32 cut at a byte | 64
# indirect; op % 9; source port byte (0x80: 2000 + n % 4, else 10 + n % 4);
# destination choice (0: 1000, listened; 1: 1001, not; 2: the device's
# last host port; 3: 5000 + a byte); flags byte; buf_alloc u16 * 4; fwd;
# payload length byte * 16, its first 32 bytes), 2 receive buffers (count
# byte, kind: 0 40 bytes, 1 4096, 2 first read-only, 3 45 + a byte; 8
# indirect), 3 a host client on P (form byte: CONNECT, lowercase with
# data, two spaces, bad port, not CONNECT, no newline; port 2000 + n % 4),
# 4 a host end (what: 0 data (u16 length), 1 half-close, 2 close, 3
# drain; index byte), 5 raw (queue byte; 1: avail jump u16, else a raw
# descriptor), 6-7 a loop turn.

VS_REQUEST, VS_RESPONSE, VS_RST, VS_SHUTDOWN, VS_RW, VS_CREDIT_UPDATE, VS_CREDIT_REQUEST = range(1, 8)


def vs_pkt(op, src=0, dst=0, payload=b"", f=8, buf_alloc=0x4000, flags=0, extra=b""):
    out = u8(0, f)
    out += extra                          # src_cid / type when f asks
    out += u8(op, src, dst) + u8(flags) + u16(buf_alloc)
    out += u8(0) if f & 8 else u32(0)
    out += u8(len(payload) // 16)
    if f & 16:
        out += u8(7)
    out += payload[:32]
    if f & 32:
        out += u8(20)
    return out


def vs_rx(n=8, kind=1):
    return u8(2, n, kind)


def vs_client(form, port):
    return u8(3, form, port)


def vs_host(what, idx=0, length=None):
    return u8(4, what, idx) + (u16(length) if length is not None else b"")


VS_LOOP = u8(6)


def seeds_vsock():
    data = bytes(range(32))
    return {
        "guest-echo": vs_rx() + vs_pkt(VS_REQUEST) + vs_pkt(VS_RW, payload=data) +
                      vs_host(3) + vs_host(0, 0, 100) + VS_LOOP + vs_rx() +
                      vs_pkt(VS_CREDIT_UPDATE) + vs_host(1) + VS_LOOP +
                      vs_pkt(VS_SHUTDOWN, flags=3) + VS_LOOP,
        "guest-credit": vs_rx() + vs_pkt(VS_REQUEST, buf_alloc=4) + vs_host(3) +
                        vs_host(0, 0, 3000) + VS_LOOP + vs_pkt(VS_CREDIT_UPDATE, buf_alloc=64) +
                        VS_LOOP + vs_pkt(VS_CREDIT_REQUEST),
        "host-connect": vs_rx() + vs_client(1, 0) + VS_LOOP +
                        vs_pkt(VS_RESPONSE, src=0x80, dst=2) + VS_LOOP +
                        vs_pkt(VS_RW, src=0x80, dst=2, payload=data) + vs_host(3) +
                        vs_host(0, 0, 50) + VS_LOOP + vs_pkt(VS_RST, src=0x80, dst=2),
        "host-refused": vs_rx() + vs_client(0, 1) + VS_LOOP +
                        vs_pkt(VS_RST, src=0x81, dst=2) + vs_client(4, 0) + vs_client(3, 0) +
                        vs_client(5, 0) + VS_LOOP,
        # another type on a live connection's ports ends it (no data after the RST)
        "bad-type-on-conn": vs_rx() + vs_pkt(VS_REQUEST) + vs_pkt(VS_REQUEST, f=8 | 4, extra=u16(0)) +
                            vs_host(3) + vs_host(0, 0, 100) + VS_LOOP,
        # RSTs waiting for receive buffers, then a connection on their ports
        "stale-rst": vs_pkt(0) + vs_pkt(0) + vs_pkt(VS_REQUEST, buf_alloc=1) + vs_host(3) +
                     vs_host(0, 0, 100) + VS_LOOP + vs_rx(4, 1) + VS_LOOP,
        "no-listener": vs_rx() + vs_pkt(VS_REQUEST, dst=1) + vs_pkt(VS_RW, dst=1, payload=data),
        "malformed": vs_rx() + vs_pkt(VS_REQUEST, f=8 | 1, extra=u64(5)) +
                     vs_pkt(VS_REQUEST, f=8 | 2) + vs_pkt(VS_REQUEST, f=8 | 4, extra=u16(2)) +
                     vs_pkt(VS_RW, f=8 | 16, payload=data) +
                     vs_pkt(VS_REQUEST, f=8 | 32 | 64) + vs_rx(4, 0) + vs_rx(4, 2) +
                     vs_pkt(9 % 9) + vs_pkt(8),
        "cap": vs_rx() + b"".join(vs_pkt(VS_REQUEST, src=s) for s in (0, 1, 2, 3, 0x80, 0x81)) +
               vs_client(0, 0) + VS_LOOP,
        "raw": vs_rx() + vs_pkt(VS_REQUEST) + u8(5, 0, 0, 3, 0) + u16(0x100) + u16(64) +
               u8(2, 0, 3) + u8(5, 1, 1) + u16(300),
    }

# ---- fuzz_balloon ------------------------------------------------------------
# feature byte (1 no statistics queue, 2 no indirect, 4 no EVENT_IDX), then
# operations (byte % 10): 0-2 inflate, 3 deflate (shape byte: 1 writable, 2
# cut short by a byte count that follows the count, 4 two pieces, 8
# indirect; count u16 (% 300 + 1); each PFN a mode byte: < 200 a marked
# page, < 240 an edge of RAM, else a u32), 4-5 a statistics buffer (shape
# byte; count u16 % 300; each entry a tag byte % 20 and a u64), 6 the API
# (odd byte: statistics handed back; even: a target u16 follows), 7 a raw
# descriptor (queue, index, address mode (odd: u64, else pool offset u16),
# length u16, flags, next, head offered), 8 an avail jump (queue, u16), 9
# read the used rings.

def bl_pfns(op, modes, shape=0, cut=None):
    out = u8(op, shape) + u16(len(modes) - 1)
    if cut is not None:
        out += u8(cut)
    for m in modes:
        out += u8(m) if m < 240 else u8(250) + u32(m >> 8)
    return out


def bl_stats(entries, shape=0):
    return u8(4, shape) + u16(len(entries)) + b"".join(u8(t) + u64(v) for t, v in entries)


def seeds_balloon():
    stats = [(0, 7), (5, 256 << 20), (17, 1), (6, 100 << 20), (2, 3)]
    return {
        "inflate": u8(0) + bl_pfns(0, [0, 1, 2, 3, 40, 41]),
        "inflate-edges": u8(0) + bl_pfns(1, [200, 201, 202, 203, 204, 205, 206, 207, 5]),
        "inflate-any": u8(0) + bl_pfns(2, [0x100 << 8, 0x1000 << 8, 0xffffffff << 8, 7]),
        "inflate-split-indirect": u8(0) + bl_pfns(0, [10, 11, 12, 13], shape=12) +
                                  bl_pfns(0, [14, 15], shape=4),
        "inflate-malformed": u8(0) + bl_pfns(0, [1, 2], shape=1) +
                             bl_pfns(0, [1, 2], shape=2, cut=1) + bl_pfns(0, [3] * 257) +
                             bl_pfns(0, [4] * 256),
        "deflate": u8(0) + bl_pfns(0, [1, 2, 3]) + bl_pfns(3, [1, 2, 3, 201]),
        "stats": u8(0) + bl_stats(stats) + u8(9),
        "stats-handback": u8(0) + bl_stats(stats) + bl_stats(stats[:2]) + u8(6, 1) +
                          bl_stats([(1, 9)], shape=8) + bl_stats([(3, 1)] * 257),
        "no-stats-queue": u8(1) + bl_stats(stats) + bl_pfns(0, [5, 6]),
        "no-indirect": u8(6) + bl_pfns(0, [1, 2], shape=8),
        "target": u8(0) + u8(6, 0) + u16(512) + u8(6, 0) + u16(5000) + bl_pfns(0, [9]),
        "raw-avail": u8(0) + u8(7, 0, 3, 0) + u16(0x100) + u16(64) + u8(2, 0, 3) +
                     u8(8, 1) + u16(300),
    }


GENERATORS = {
    "fuzz_balloon": seeds_balloon,
    "fuzz_blk": seeds_blk,
    "fuzz_blk_vsock_state": seeds_blk_vsock_state,
    "fuzz_decompress": seeds_decompress,
    "fuzz_device_state": seeds_device_state,
    "fuzz_fs_state": seeds_fs_state,
    "fuzz_fuse": seeds_fuse,
    "fuzz_mmio": seeds_mmio,
    "fuzz_offload": seeds_offload,
    "fuzz_net_ctrl": seeds_net_ctrl,
    "fuzz_ports": seeds_ports,
    "fuzz_state": seeds_state,
    "fuzz_vhost_user": seeds_vhost_user,
    "fuzz_virtio_fs": seeds_virtio_fs,
    "fuzz_virtq_net": seeds_virtq_net,
    "fuzz_vsock": seeds_vsock,
}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for fuzzer, gen in GENERATORS.items():
        d = os.path.join(CORPUS, fuzzer)
        os.makedirs(d, exist_ok=True)
        for name, data in gen().items():
            path = os.path.join(d, name)
            old = open(path, "rb").read() if os.path.exists(path) else None
            if old == data:
                continue
            if check:
                stale.append(path)
                continue
            with open(path, "wb") as f:
                f.write(data)
    if stale:
        print("out of date (run tests/fuzz/make_seeds.py):\n  " + "\n  ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
