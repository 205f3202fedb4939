/*
 * A boot sector for tests/peers/test_qemu_vhost_blk.sh: SeaBIOS loads it
 * from the vhost-user-blk disk (a read through kvmini), it says so on the
 * debug console (port 0x402), writes itself to LBA 1 through int 13h (a
 * write through kvmini), says whether that worked, and ends QEMU through
 * isa-debug-exit (port 0xf4: exit status 67).
 */
	.code16
	.globl _start
_start:
	xor %ax, %ax
	mov %ax, %ds
	mov %ax, %es
	cld
	mov %ax, %ss
	mov $0x7c00, %sp
	push %dx			/* DL: the boot drive; puts uses DX */
	mov $msg_boot, %si
	call puts
	pop %dx
	/* Write this sector (0:7c00) to LBA 1: CHS 0/0/2 on the boot drive (DL). */
	mov $0x0301, %ax
	mov $0x0002, %cx
	xor %dh, %dh
	mov $0x7c00, %bx
	int $0x13
	jc 1f
	mov $msg_ok, %si
	jmp 2f
1:	mov $msg_fail, %si
2:	call puts
	mov $0xf4, %dx
	mov $0x21, %al
	out %al, %dx
3:	hlt
	jmp 3b
puts:
	mov $0x402, %dx
4:	lodsb
	test %al, %al
	jz 5f
	out %al, %dx
	jmp 4b
5:	ret
msg_boot: .asciz "KVMINI-BLK: booted from vhost-user-blk\n"
msg_ok: .asciz "KVMINI-BLK: int13 write OK\n"
msg_fail: .asciz "KVMINI-BLK: int13 write FAILED\n"
	.org 510
	.byte 0x55, 0xaa
