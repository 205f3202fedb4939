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
 * User mode for the "usermode" test, laid out as Linux lays it out: kernel
 * pages supervisor-only, the user code (user_code..user_code_end, position
 * independent) copied into a user page. It makes a system call, an
 * `int $0x80` and a page fault the kernel fixes, then a last system call
 * with RAX 0 (or 0xdead when a result was wrong).
 */
	.text
	.globl enter_user
enter_user:			/* (rip, rsp) */
	pushq	$0x2b		/* user SS */
	pushq	%rsi
	pushq	$0x202		/* RFLAGS: interrupts on, as in Linux user mode */
	pushq	$0x33		/* user CS, 64-bit */
	pushq	%rdi
	iretq

	.globl user_code, user_code_end
user_code:
	mov	$1000, %ecx
1:	dec	%ecx
	jnz	1b
	mov	$1, %eax
	mov	$0x1234, %edi
	syscall
	cmp	$0x1235, %rax
	jne	9f
	mov	$2, %eax
	int	$0x80
	cmp	$3, %rax
	jne	9f
	mov	$0x400000, %ebx
	mov	(%rbx), %rax	/* 3 bytes: the #PF handler steps over it */
	cmp	$0x77, %rax
	jne	9f
	xor	%eax, %eax
	syscall
9:	mov	$0xdead, %eax
	syscall
	jmp	.
user_code_end:

/* MSR_LSTAR: the kernel side of SYSCALL. On its own stack, hands C the
 * call number, argument, RCX, R11, RFLAGS and the user's RSP as it found
 * them, and returns with SYSRET. */
	.globl syscall_entry
syscall_entry:
	mov	%rsp, user_rsp(%rip)
	pushfq
	pop	%r8
	lea	syscall_stack_top(%rip), %rsp
	push	%rcx
	push	%r11
	mov	%rdi, %rsi
	mov	%rax, %rdi
	mov	%rcx, %rdx
	mov	%r11, %rcx
	mov	user_rsp(%rip), %r9
	call	syscall_arrived
	pop	%r11
	pop	%rcx
	mov	user_rsp(%rip), %rsp
	sysretq

	.bss
	.balign 16
user_rsp:
	.skip	16
syscall_stack:
	.skip	8192
syscall_stack_top:
	.section .note.GNU-stack, "", @progbits
