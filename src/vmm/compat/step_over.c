/* int3 and fwait KVM could not emulate, stepped over: see step_over.h. */
#include "vmm/compat/step_over.h"

#include <string.h>
#include <sys/ioctl.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "vmm/exit_events.h"
#include "vmm/vcpu.h"

#define X86_INT3 0xcc
#define X86_FWAIT 0x9b
#define X86_VECTOR_BP 3

/* #BP as the int3 would have raised it (RIP already past the int3). */
static bool inject_bp(struct vcpu *v)
{
	struct kvm_vcpu_events ev;

	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return false;
	ev.exception.injected = 1;
	ev.exception.nr = X86_VECTOR_BP;
	ev.exception.has_error_code = 0;
	ev.exception.error_code = 0;
	ev.flags = 0;
	return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) == 0;
}

static enum exit_action on_internal_error(struct exit_handler *h, struct vcpu *v)
{
	struct step_over *s = container_of(h, struct step_over, internal_error);
	struct kvm_regs regs = { 0 };
	uint8_t insn[EXIT_INSN_MAX + 1];

	ioctl(v->fd, KVM_GET_REGS, &regs);
	if (!exit_failed_insn(v, regs.rip, insn) || (insn[0] != X86_INT3 && insn[0] != X86_FWAIT))
		return EXIT_PASS;
	regs.rip++;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return EXIT_PASS;
	if (insn[0] == X86_FWAIT) {
		fetch_add_relaxed(&s->fwait, 1);
		return EXIT_RESUME;
	}
	if (!inject_bp(v))
		return EXIT_PASS;
	fetch_add_relaxed(&s->int3, 1);
	return EXIT_RESUME;
}

int step_over_init(struct step_over *s, struct exit_table *t)
{
	memset(s, 0, sizeof(*s));
	s->internal_error.handle = on_internal_error;
	return exit_table_add(t, KVM_EXIT_INTERNAL_ERROR, &s->internal_error);
}
