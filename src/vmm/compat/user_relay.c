/* User-mode event relay for kvm_pvm hosts: see user_relay.h. */
#include "vmm/compat/user_relay.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/log.h"
#include "vmm/guest_virt.h"

#define RELAY_MSR_STAR      0xc0000081u
#define RELAY_MSR_LSTAR     0xc0000082u
#define RELAY_MSR_SFMASK    0xc0000084u

#define VEC_UD 6u
#define VEC_PF 14u
#define RFLAGS_FIXED 0x2ull
#define RFLAGS_IF 0x200ull
#define RFLAGS_RF 0x10000ull
/* IOPL, RF, VM, VIF, VIP: not for user mode to choose. */
#define RFLAGS_PRIVILEGED 0x1b3000ull
#define DR7_L0 0x1ull
#define DR7_L1 0x4ull
#define DR7_FIXED 0x400ull
#define X86_INT_IMM8 0xcd

/* The interrupt frame a 64-bit delivery pushes (after any error code). */
struct iret_frame {
	uint64_t rip, cs, rflags, rsp, ss;
};

/* One IDT gate, decoded. */
struct idt_gate {
	uint64_t offset;
	uint16_t selector;
	uint8_t ist, type, dpl;
	bool present;
};

bool user_relay_host_needs(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

/* Send guest writes of LSTAR to kvmini. */
static int filter_lstar(int vm_fd)
{
	static uint8_t deny_write;   /* one bit, 0: the write goes to kvmini */
	struct kvm_msr_filter filter = {
		.flags = KVM_MSR_FILTER_DEFAULT_ALLOW,
		.ranges[0] = { .flags = KVM_MSR_FILTER_WRITE, .nmsrs = 1,
			       .base = RELAY_MSR_LSTAR, .bitmap = &deny_write },
	};
	struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_USER_SPACE_MSR,
				      .args = { KVM_MSR_EXIT_REASON_FILTER } };

	if (ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0 ||
	    ioctl(vm_fd, KVM_X86_SET_MSR_FILTER, &filter) < 0) {
		int e = errno;
		/* The VM is not made: on kvm_pvm its user mode cannot run without the relay. */
		log_err("compat: KVM cannot send LSTAR writes to kvmini (%s), which the user-mode "
			"relay kvm_pvm needs", strerror(e));
		return -e;
	}
	return 0;
}

static int read_gate(struct vcpu *v, const struct kvm_sregs *s, unsigned vector, struct idt_gate *g)
{
	uint8_t raw[16];

	if ((uint64_t)vector * 16 + 15 > s->idt.limit)
		return -ENOENT;
	int r = guest_virt_read(&v->virt, s->idt.base + (uint64_t)vector * 16, raw, sizeof(raw));
	if (r < 0)
		return r;
	g->offset = (uint64_t)raw[0] | (uint64_t)raw[1] << 8 | (uint64_t)raw[6] << 16 |
		    (uint64_t)raw[7] << 24 | (uint64_t)raw[8] << 32 | (uint64_t)raw[9] << 40 |
		    (uint64_t)raw[10] << 48 | (uint64_t)raw[11] << 56;
	g->selector = (uint16_t)(raw[2] | raw[3] << 8);
	g->ist = raw[4] & 7;
	g->type = raw[5] & 0xf;
	g->dpl = (raw[5] >> 5) & 3;
	g->present = raw[5] & 0x80;
	return 0;
}

/* Breakpoints on (or, while stepping, single-step over) the handlers. */
static int apply_debug(struct vcpu *v, const struct user_relay_vcpu *ur)
{
	struct kvm_guest_debug dbg = { .control = KVM_GUESTDBG_ENABLE };

	if (ur->stepping) {
		dbg.control |= KVM_GUESTDBG_SINGLESTEP;
	} else {
		dbg.control |= KVM_GUESTDBG_USE_HW_BP;
		dbg.arch.debugreg[0] = ur->pf_handler;
		dbg.arch.debugreg[1] = ur->ud_handler;
		dbg.arch.debugreg[7] = DR7_FIXED | (ur->pf_handler ? DR7_L0 : 0) |
				       (ur->ud_handler ? DR7_L1 : 0);
	}
	if (ioctl(v->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0)
		return -errno;
	return 0;
}

/* Point the breakpoints at the handlers the guest's IDT names now. */
static int arm(struct vcpu *v, struct user_relay_vcpu *ur)
{
	struct kvm_sregs s;
	struct idt_gate pf = { 0 }, ud = { 0 };

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	if (read_gate(v, &s, VEC_PF, &pf) < 0 || !pf.present)
		pf.offset = 0;
	if (read_gate(v, &s, VEC_UD, &ud) < 0 || !ud.present)
		ud.offset = 0;
	ur->pf_handler = pf.offset;
	ur->ud_handler = ud.offset;
	ur->stepping = false;
	log_debug("vCPU %u: compat relay armed: #PF handler 0x%llx, #UD handler 0x%llx", v->index,
		  (unsigned long long)pf.offset, (unsigned long long)ud.offset);
	return apply_debug(v, ur);
}

/* KVM_EXIT_X86_WRMSR: the guest wrote LSTAR (the filter sends nothing else). */
static enum exit_action on_wrmsr(struct exit_handler *h, struct vcpu *v)
{
	struct user_relay *ur = container_of(h, struct user_relay, wrmsr_exit);
	struct kvm_run *run = v->run;
	/* kvm_msrs ends in a flexible array: room for one entry behind it. */
	union {
		struct kvm_msrs hdr;
		uint8_t room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} m = { .hdr.nmsrs = 1 };

	m.hdr.entries[0] = (struct kvm_msr_entry){ .index = run->msr.index, .data = run->msr.data };

	/* Only LSTAR is filtered; anything else is refused like a bad MSR. */
	run->msr.error = 1;
	if (run->msr.index != RELAY_MSR_LSTAR || ioctl(v->fd, KVM_SET_MSRS, &m) != 1)
		return EXIT_RESUME;
	run->msr.error = 0;
	int r = arm(v, &ur->vcpus[v->index]);
	if (r < 0) {
		run_state_request_stop(v->run_state, 1, "vCPU %u: compat relay: KVM_SET_GUEST_DEBUG: %s",
				       v->index, strerror(-r));
		return EXIT_STOP;
	}
	return EXIT_RESUME;
}

/* Segment registers of a SYSCALL: flat, CPL0, selectors from STAR[47:32]. */
static void syscall_segments(struct kvm_sregs *s, uint64_t star)
{
	uint16_t sel = (uint16_t)((star >> 32) & 0xfffc);

	s->cs = (struct kvm_segment){ .selector = sel, .limit = 0xffffffff, .type = 0xb,
				      .present = 1, .s = 1, .l = 1, .g = 1 };
	s->ss = (struct kvm_segment){ .selector = (uint16_t)(sel + 8), .limit = 0xffffffff,
				      .type = 0x3, .present = 1, .s = 1, .db = 1, .g = 1 };
}

/* At the #PF handler: a user frame at RIP == LSTAR is a SYSCALL the host
 * left in user mode. Make it the SYSCALL the CPU would have made. */
static bool relay_syscall(struct user_relay *ur, struct vcpu *v, struct kvm_regs *regs)
{
	struct iret_frame f;
	union {    /* as in on_wrmsr: three entries */
		struct kvm_msrs hdr;
		uint8_t room[sizeof(struct kvm_msrs) + 3 * sizeof(struct kvm_msr_entry)];
	} m = { .hdr.nmsrs = 3 };
	struct kvm_msr_entry *e = m.hdr.entries;
	struct kvm_sregs s;

	e[0] = (struct kvm_msr_entry){ .index = RELAY_MSR_STAR };
	e[1] = (struct kvm_msr_entry){ .index = RELAY_MSR_LSTAR };
	e[2] = (struct kvm_msr_entry){ .index = RELAY_MSR_SFMASK };
	/* The frame follows the error code. */
	if (guest_virt_read(&v->virt, regs->rsp + 8, &f, sizeof(f)) < 0 || (f.cs & 3) != 3)
		return false;
	if (ioctl(v->fd, KVM_GET_MSRS, &m) != 3 || !e[1].data || f.rip != e[1].data)
		return false;
	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return false;
	syscall_segments(&s, e[0].data);
	/* RCX and R11 hold the return address and the user's RFLAGS already
	 * (the host did that much, and masked RFLAGS: the frame's flags are
	 * the masked ones). R11 is a register a user jumping to LSTAR could
	 * forge: keep it to flags user mode can have (IF set, IOPL 0). */
	regs->r11 = (regs->r11 & ~RFLAGS_PRIVILEGED) | RFLAGS_IF;
	regs->rflags = (f.rflags & ~e[2].data & ~RFLAGS_RF) | RFLAGS_FIXED;
	regs->rsp = f.rsp;
	regs->rip = f.rip;
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0 || ioctl(v->fd, KVM_SET_REGS, regs) < 0)
		return false;
	fetch_add_relaxed(&ur->syscalls, 1);
	return true;
}

/* At the #UD handler: `int n` from user mode through a gate that allows
 * CPL3 raised #UD instead. Deliver vector n on the same frame, which then
 * returns after the INT instruction. */
static bool relay_int(struct user_relay *ur, struct vcpu *v, struct kvm_regs *regs)
{
	struct iret_frame f;
	struct kvm_sregs s;
	struct idt_gate g;
	uint8_t insn[2];

	if (guest_virt_read(&v->virt, regs->rsp, &f, sizeof(f)) < 0 || (f.cs & 3) != 3)
		return false;
	if (guest_virt_read(&v->virt, f.rip, insn, sizeof(insn)) < 0 || insn[0] != X86_INT_IMM8)
		return false;
	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return false;
	/* Only what the CPU would deliver: a present 64-bit interrupt or trap
	 * gate with DPL 3, on the stack the #UD used (no IST). */
	if (read_gate(v, &s, insn[1], &g) < 0 || !g.present || g.dpl != 3 || g.ist ||
	    (g.type != 0xe && g.type != 0xf) || (g.selector & 3))
		return false;
	f.rip += sizeof(insn);
	if (guest_virt_write(&v->virt, regs->rsp, &f, sizeof(f.rip)) < 0)
		return false;
	s.cs.selector = g.selector;
	/* A trap gate leaves IF as it was; the #UD's interrupt gate cleared it. */
	if (g.type == 0xf)
		regs->rflags |= f.rflags & RFLAGS_IF;
	regs->rip = g.offset;
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0 || ioctl(v->fd, KVM_SET_REGS, regs) < 0)
		return false;
	fetch_add_relaxed(&ur->ints, 1);
	return true;
}

/* KVM_EXIT_DEBUG: a breakpoint on a handler, or the step past one. */
static enum exit_action on_debug(struct exit_handler *h, struct vcpu *v)
{
	struct user_relay *ur = container_of(h, struct user_relay, debug_exit);
	struct user_relay_vcpu *uv = &ur->vcpus[v->index];
	struct kvm_regs regs;
	bool relayed = false;

	if (uv->stepping) {
		/* One instruction past a breakpoint: arm again. */
		uv->stepping = false;
	} else if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0) {
		if (uv->pf_handler && regs.rip == uv->pf_handler)
			relayed = relay_syscall(ur, v, &regs);
		else if (uv->ud_handler && regs.rip == uv->ud_handler)
			relayed = relay_int(ur, v, &regs);
		/* KVM here ignores RFLAGS.RF: step over the breakpoint instead. */
		uv->stepping = !relayed;
		if (!relayed)
			fetch_add_relaxed(&ur->passes, 1);
	}
	int r = apply_debug(v, uv);
	if (r < 0) {
		run_state_request_stop(v->run_state, 1, "vCPU %u: compat relay: KVM_SET_GUEST_DEBUG: %s",
				       v->index, strerror(-r));
		return EXIT_STOP;
	}
	return EXIT_RESUME;
}

int user_relay_init(struct user_relay *ur, int vm_fd, struct exit_table *t)
{
	memset(ur, 0, sizeof(*ur));
	ur->wrmsr_exit.handle = on_wrmsr;
	ur->debug_exit.handle = on_debug;
	int r = filter_lstar(vm_fd);
	if (!r)
		r = exit_table_add(t, KVM_EXIT_X86_WRMSR, &ur->wrmsr_exit);
	if (!r)
		r = exit_table_add(t, KVM_EXIT_DEBUG, &ur->debug_exit);
	return r;
}
