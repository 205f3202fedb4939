/*
 * x86 vCPU state at power-on: CPUID (KVM's supported set with a topology of
 * one thread per core, one package), the MSRs Linux expects a firmware to
 * have set, the local APIC's LINT pins, and long-mode registers for the
 * boot vCPU (Linux's 64-bit boot protocol, Documentation/arch/x86/boot.rst).
 */
#include "vmm/cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <asm/processor-flags.h>

#include "core/compiler.h"
#include "core/log.h"
#include "vmm/layout.h"

/* MSR numbers (Intel SDM vol. 4). */
#define MSR_IA32_SYSENTER_CS     0x174u
#define MSR_IA32_SYSENTER_ESP    0x175u
#define MSR_IA32_SYSENTER_EIP    0x176u
#define MSR_IA32_MISC_ENABLE     0x1a0u
#define MSR_MTRR_DEF_TYPE        0x2ffu
#define MSR_STAR                 0xc0000081u
#define MSR_LSTAR                0xc0000082u
#define MSR_CSTAR                0xc0000083u
#define MSR_SYSCALL_MASK         0xc0000084u
#define MSR_KERNEL_GS_BASE       0xc0000102u

#define MISC_ENABLE_FAST_STRING  (1ull << 0)
#define MTRR_ENABLE              (1ull << 11)
#define MTRR_TYPE_WRBACK         6ull

#define EFER_LME                 (1ull << 8)
#define EFER_LMA                 (1ull << 10)

#define CPUID_1_ECX_CX16         (1u << 13)
#define CPUID_1_ECX_HYPERVISOR   (1u << 31)
#define CPUID_1_EDX_HTT          (1u << 28)

/* Local APIC registers and LVT delivery modes. */
#define APIC_LVT0                0x350u
#define APIC_LVT1                0x360u
#define APIC_MODE_NMI            0x4u
#define APIC_MODE_EXTINT         0x7u

/* Segment selectors the boot protocol names: __BOOT_CS and __BOOT_DS. */
#define BOOT_CS                  0x10u
#define BOOT_DS                  0x18u
#define BOOT_TSS                 0x20u

int cpu_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	for (unsigned nent = 128; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		int e = errno;
		free(c);
		if (e != E2BIG) {
			log_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
			return -e;
		}
	}
	return -E2BIG;
}

/* Bits needed to number @n items (x2APIC ID shift). */
static unsigned id_bits(unsigned n)
{
	unsigned bits = 0;

	while ((1u << bits) < n)
		bits++;
	return bits;
}

/* Leaves 0xb / 0x1f, subleaf @e->index: level 0 is SMT (one thread per
 * core), level 1 the cores of the one package, level 2 ends the list. */
static void set_topology_leaf(struct kvm_cpuid_entry2 *e, unsigned apic_id, unsigned ncpus)
{
	unsigned level = e->index;

	e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	e->edx = apic_id;
	if (level == 0) {
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1u << 8) | level;
	} else if (level == 1) {
		e->eax = id_bits(ncpus);
		e->ebx = ncpus;
		e->ecx = (2u << 8) | level;
	} else {
		e->eax = e->ebx = 0;
		e->ecx = level;
	}
}

static void patch_cpuid_entry(struct kvm_cpuid_entry2 *e, unsigned apic_id, unsigned ncpus,
			      bool compat)
{
	switch (e->function) {
	case 0x1:
		e->ebx = (e->ebx & 0xffffu) | (apic_id << 24) | ((ncpus & 0xffu) << 16);
		e->ecx |= CPUID_1_ECX_HYPERVISOR;
		/* KVM's emulator lacks cmpxchg16b (see compat/compat.h). */
		if (compat)
			e->ecx &= ~CPUID_1_ECX_CX16;
		if (ncpus > 1)
			e->edx |= CPUID_1_EDX_HTT;
		else
			e->edx &= ~CPUID_1_EDX_HTT;
		break;
	case 0x4: {
		/* EAX[31:26]: cores per package - 1; EAX[25:14]: logical
		 * processors sharing this cache - 1 (only the L3 is shared). */
		unsigned cache_level = (e->eax >> 5) & 7;
		unsigned sharing = cache_level >= 3 ? ncpus - 1 : 0;
		e->eax = (e->eax & 0x3fffu) | ((sharing & 0xfffu) << 14) | (((ncpus - 1) & 0x3fu) << 26);
		break;
	}
	case 0xa:
		/* No PMU: keeps guests away from performance counter MSRs. */
		e->eax = e->ebx = e->ecx = e->edx = 0;
		break;
	case 0x80000008:
		/* AMD: ECX[7:0] cores - 1, ECX[15:12] APIC ID size. */
		e->ecx = (e->ecx & ~0xf0ffu) | ((ncpus - 1) & 0xffu) | (id_bits(ncpus) << 12);
		break;
	default:
		break;
	}
}

static bool is_topology_leaf(uint32_t function)
{
	return function == 0xb || function == 0x1f;
}

/* KVM lists only subleaf 0 of the topology leaves (zeroed): replace what it
 * has of each with subleaves 0..2 describing kvmini's topology. */
static void add_topology(struct kvm_cpuid2 *c, const struct kvm_cpuid2 *sup, unsigned apic_id,
			 unsigned ncpus)
{
	static const uint32_t leaves[] = { 0xb, 0x1f };

	for (unsigned l = 0; l < ARRAY_SIZE(leaves); l++) {
		bool present = false;
		for (unsigned i = 0; i < sup->nent; i++)
			present |= sup->entries[i].function == leaves[l];
		for (uint32_t sub = 0; present && sub < 3; sub++) {
			struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
			*e = (struct kvm_cpuid_entry2){ .function = leaves[l], .index = sub };
			set_topology_leaf(e, apic_id, ncpus);
		}
	}
}

static int setup_cpuid(struct vcpu *vcpu, const struct cpu_config *cfg)
{
	const struct kvm_cpuid2 *sup = cfg->supported_cpuid;
	/* Room for what KVM listed plus 3 subleaves of 2 topology leaves. */
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (sup->nent + 6) * sizeof(c->entries[0]));

	if (!c)
		return -ENOMEM;
	for (unsigned i = 0; i < sup->nent; i++) {
		if (is_topology_leaf(sup->entries[i].function))
			continue;
		c->entries[c->nent] = sup->entries[i];
		patch_cpuid_entry(&c->entries[c->nent++], vcpu->index, cfg->ncpus, cfg->compat);
	}
	add_topology(c, sup, vcpu->index, cfg->ncpus);
	int r = ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	if (r < 0)
		log_err("vCPU %u: KVM_SET_CPUID2: %s", vcpu->index, strerror(-r));
	return r;
}

static int setup_msrs(struct vcpu *vcpu)
{
	static const struct { uint32_t index; uint64_t value; } init[] = {
		{ MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 }, { MSR_STAR, 0 }, { MSR_LSTAR, 0 },
		{ MSR_CSTAR, 0 }, { MSR_SYSCALL_MASK, 0 }, { MSR_KERNEL_GS_BASE, 0 },
		{ MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		{ MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK },
	};
	/* struct kvm_msrs ends in a flexible array: room for one entry. */
	union {
		struct kvm_msrs hdr;
		uint8_t room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} one;

	/* One at a time: a KVM (such as PVM) may refuse some of them, and a
	 * refused MSR only costs the guest a default value. */
	for (unsigned i = 0; i < ARRAY_SIZE(init); i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.hdr.entries[0].index = init[i].index;
		one.hdr.entries[0].data = init[i].value;
		if (ioctl(vcpu->fd, KVM_SET_MSRS, &one) != 1)
			log_debug("vCPU %u: MSR 0x%x not set", vcpu->index, init[i].index);
	}
	return 0;
}

static void lapic_set_mode(struct kvm_lapic_state *s, unsigned reg, uint32_t mode)
{
	uint32_t v;

	memcpy(&v, &s->regs[reg], sizeof(v));
	v = (v & ~0x700u) | (mode << 8);
	memcpy(&s->regs[reg], &v, sizeof(v));
}

/* LINT0 as ExtINT (the PIC's virtual wire) and LINT1 as NMI, as a PC
 * firmware leaves them. */
static int setup_lapic(struct vcpu *vcpu)
{
	struct kvm_lapic_state s;

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &s) < 0)
		return -errno;
	lapic_set_mode(&s, APIC_LVT0, APIC_MODE_EXTINT);
	lapic_set_mode(&s, APIC_LVT1, APIC_MODE_NMI);
	return ioctl(vcpu->fd, KVM_SET_LAPIC, &s) < 0 ? -errno : 0;
}

/* A flat 4 GiB segment in KVM's format (matches the GDT entries in boot.c). */
static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
		.present = 1, .dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1,
	};
}

/* Long mode with paging on: flat segments, the GDT/IDT and page tables of boot.c. */
static int setup_sregs(struct vcpu *vcpu)
{
	struct kvm_sregs s;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	s.cs = flat_segment(BOOT_CS, 0xb, true);
	s.ds = s.es = s.fs = s.gs = s.ss = flat_segment(BOOT_DS, 0x3, false);
	s.tr = (struct kvm_segment){ .selector = BOOT_TSS, .limit = 0x67, .type = 0xb,
				     .present = 1 };
	s.gdt.base = LAYOUT_GDT;
	s.gdt.limit = 5 * 8 - 1;
	s.idt.base = LAYOUT_IDT;
	s.idt.limit = 0;
	s.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
	s.cr3 = LAYOUT_PML4;
	s.cr4 = X86_CR4_PAE;
	s.efer = EFER_LME | EFER_LMA;
	return ioctl(vcpu->fd, KVM_SET_SREGS, &s) < 0 ? -errno : 0;
}

/* Long-mode registers for the boot vCPU: paging, GDT, entry point. */
static int setup_long_mode(struct vcpu *vcpu, const struct vm_entry *entry)
{
	struct kvm_regs regs = {
		.rflags = 0x2,       /* bit 1 is reserved and always set */
		.rip = entry->rip,
		.rsi = entry->rsi,
		.rsp = LAYOUT_STACK_TOP,
		.rbp = LAYOUT_STACK_TOP,
	};
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	int r = setup_sregs(vcpu);
	if (r < 0) {
		log_err("vCPU %u: KVM_SET_SREGS: %s", vcpu->index, strerror(-r));
		return r;
	}
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0) {
		r = -errno;
		log_err("vCPU %u: setting registers: %s", vcpu->index, strerror(-r));
	}
	return r;
}

int cpu_setup(struct vcpu *v, const struct cpu_config *cfg)
{
	int r = setup_cpuid(v, cfg);
	if (!r)
		r = setup_msrs(v);
	if (!r) {
		r = setup_lapic(v);
		if (r < 0)
			log_err("vCPU %u: local APIC: %s", v->index, strerror(-r));
	}
	/* Application processors wait for INIT/SIPI from the guest's BSP
	 * (the in-kernel LAPIC keeps them in wait-for-SIPI). */
	if (!r && v->index == 0)
		r = setup_long_mode(v, cfg->entry);
	return r;
}
