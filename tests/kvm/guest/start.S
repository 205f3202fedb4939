/*
 * Entry of the kvmini test guest. kvmini starts the boot vCPU in long mode
 * with flat segments (CS 0x10, DS 0x18), the first 4 GiB identity mapped,
 * interrupts off and RSI pointing at the zero page.
 */
	.section .text.entry, "ax"
	.globl _start
_start:
	/* Loaded as an ELF, .bss is zero: kvmini's loader clears p_memsz
	 * beyond p_filesz (and clearing it here costs where CPL0 is emulated). */
	jmp	1f

	/* A bzImage is entered 0x200 bytes into its protected-mode code (the
	 * flat image of this guest, tests/kvm/mkbzimage.py, is one); what lies
	 * past the image is the bzImage's payload, so .bss is cleared here. */
	.org	0x200
	.globl startup_64
startup_64:
	mov	%rsi, %rdx
	lea	__bss_start(%rip), %rdi
	lea	__bss_end(%rip), %rcx
	sub	%rdi, %rcx
	shr	$3, %rcx
	xor	%eax, %eax
	rep stosq
	mov	%rdx, %rsi
1:	lea	stack_top(%rip), %rsp
	mov	%rsi, %rdi
	call	guest_main
1:	cli
	hlt
	jmp	1b

/* Interrupt stubs: push a zero error code where the CPU does not, then the
 * vector, and go to one common path that saves the registers for C. */
	.macro ISR_NOERR n
isr_\n:
	pushq	$0
	pushq	$\n
	jmp	isr_common
	.endm
	.macro ISR_ERR n
isr_\n:
	pushq	$\n
	jmp	isr_common
	.endm

	.text
	.irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
	ISR_NOERR \n
	.endr
	.irp n, 8,10,11,12,13,14,17,21,29,30
	ISR_ERR \n
	.endr
	.irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,128,240,255
	ISR_NOERR \n
	.endr

isr_common:
	push	%rax
	push	%rcx
	push	%rdx
	push	%rbx
	push	%rbp
	push	%rsi
	push	%rdi
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, %rdi
	cld
	call	isr_handler
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rdi
	pop	%rsi
	pop	%rbp
	pop	%rbx
	pop	%rdx
	pop	%rcx
	pop	%rax
	add	$16, %rsp
	iretq

/* Table of (vector, stub) pairs for the C side, ended by vector -1. */
	.section .rodata
	.globl isr_table
	.balign 8
isr_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad	\n, isr_\n
	.endr
	.irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,128,240,255
	.quad	\n, isr_\n
	.endr
	.quad	-1, 0

	.bss
	.balign 16
stack:
	.skip	32768
stack_top:
	.section .note.GNU-stack, "", @progbits

/*
 * User mode round trip for the "usermode" test: enter CPL3 with iretq at
 * user_code, which runs a loop and makes a SYSCALL; syscall_entry (CPL0,
 * through MSR_LSTAR) hands the selector it runs with to C. Both use the
 * interrupted stack: SYSCALL does not switch stacks.
 */
	.text
	.globl enter_user
enter_user:			/* (rip, rsp, use_int80) */
	mov	%rdx, %r8
	pushq	$0x2b		/* user SS */
	pushq	%rsi
	pushq	$0x2		/* RFLAGS: interrupts off in user mode */
	pushq	$0x33		/* user CS, 64-bit */
	pushq	%rdi
	iretq

	.globl user_code
user_code:
	mov	$1000, %ecx
1:	add	%rcx, %rdx
	dec	%ecx
	jnz	1b
	mov	$0x5ca11, %eax
	test	%r8, %r8
	jnz	4f
	syscall
2:	jmp	2b
4:	int	$0x80
	jmp	2b

	.globl syscall_entry
syscall_entry:
	lea	stack_top(%rip), %rsp
	mov	%cs, %rdi
	mov	%rax, %rsi
	call	syscall_arrived
3:	hlt
	jmp	3b
	.section .note.GNU-stack, "", @progbits
