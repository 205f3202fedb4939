/*
 * The guest of bench/boot_vs_qemu: its first instructions write 'K' to the
 * COM1 transmit register (port 0x3f8), which both kvmini and QEMU relay to
 * their stdout at once, then it halts for good. Two entry points, one image:
 *  - e_entry, 64-bit: where kvmini enters an ELF (long mode, paging on);
 *  - the PVH entry (32-bit protected mode, paging off), named by a Xen
 *    PHYS32_ENTRY note: how QEMU's -kernel boots an uncompressed ELF.
 * The byte sequence below means the same in both modes.
 */
	.section .text, "ax"
	.code64
	.globl _start
_start:
	mov	$0x3f8, %dx
	mov	$'K', %al
	out	%al, %dx
1:	cli
	hlt
	jmp	1b

	.code32
	.globl pvh_start
pvh_start:
	mov	$0x3f8, %dx
	mov	$'K', %al
	out	%al, %dx
2:	cli
	hlt
	jmp	2b

/* XEN_ELFNOTE_PHYS32_ENTRY (18): the 32-bit physical entry for PVH boot. */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4			/* namesz */
	.long	8			/* descsz */
	.long	18			/* type */
	.asciz	"Xen"
	.balign 4
	.quad	pvh_start

	.section .note.GNU-stack, "", @progbits
