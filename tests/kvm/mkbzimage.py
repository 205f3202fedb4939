#!/usr/bin/env python3
"""Wrap the test guest in a bzImage, so kvmini's bzImage path is tested in
milliseconds: the protected-mode code is the guest's flat image (linked at
1 MiB, its 64-bit entry 0x200 bytes in, as a real bzImage has it), and the
payload is the guest's ELF, gzip-compressed, as a real bzImage carries its
vmlinux (for --host-decompress).

Usage: mkbzimage.py GUEST.elf GUEST.bin OUT.bzImage
Fields follow Documentation/arch/x86/boot.rst (boot protocol 2.15).
"""
import gzip
import struct
import sys

SETUP_SECTS = 1
HDR = 0x1f1


def put(buf, off, fmt, value):
    struct.pack_into("<" + fmt, buf, off, value)


def main():
    elf_path, bin_path, out_path = sys.argv[1:4]
    flat = open(bin_path, "rb").read()
    payload = gzip.compress(open(elf_path, "rb").read(), mtime=0)
    setup = bytearray(512 * (SETUP_SECTS + 1))
    put(setup, HDR, "B", SETUP_SECTS)
    put(setup, 0x1fe, "H", 0xAA55)             # boot_flag
    put(setup, 0x200, "B", 0xEB)               # jump: the header ends at
    put(setup, 0x201, "B", 0x6A)               # 0x202 + 0x6a = 0x26c
    setup[0x202:0x206] = b"HdrS"
    put(setup, 0x206, "H", 0x020F)             # version 2.15
    put(setup, 0x211, "B", 0x01)               # loadflags: LOADED_HIGH
    put(setup, 0x214, "I", 0x100000)           # code32_start
    put(setup, 0x22C, "I", 0x7FFFFFFF)         # initrd_addr_max
    put(setup, 0x230, "I", 0x200000)           # kernel_alignment
    put(setup, 0x234, "B", 1)                  # relocatable_kernel
    put(setup, 0x236, "H", 0x3)                # xloadflags: KERNEL_64, ABOVE_4G
    put(setup, 0x238, "I", 2047)               # cmdline_size
    pm = flat + b"\0" * (-len(flat) % 16)
    put(setup, 0x248, "I", len(pm))            # payload_offset (in pm code)
    put(setup, 0x24C, "I", len(payload))       # payload_length
    put(setup, 0x258, "Q", 0x100000)           # pref_address
    put(setup, 0x260, "I", len(pm) + 0x40000)  # init_size: code + bss + stack
    put(setup, HDR + 4, "I", (len(pm) + len(payload) + 15) // 16)   # syssize
    with open(out_path, "wb") as out:
        out.write(setup + pm + payload)


if __name__ == "__main__":
    main()
