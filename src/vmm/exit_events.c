/* Exits that are events of the guest's run: see exit_events.h. */
#include "vmm/exit_events.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/compiler.h"
#include "core/log.h"
#include "vmm/vcpu.h"

unsigned exit_failed_insn(struct vcpu *v, uint64_t rip, uint8_t out[EXIT_INSN_MAX + 1])
{
	struct kvm_run *run = v->run;
	unsigned n = 0;

	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = MIN(run->emulation_failure.insn_size,
			(uint8_t)sizeof(run->emulation_failure.insn_bytes));
		memcpy(out, run->emulation_failure.insn_bytes, n);
	}
	/* Through the guest's page tables, each page from where it maps. */
	if (!n)
		n = (unsigned)guest_virt_copy(&v->virt, rip, out, EXIT_INSN_MAX, false);
	return n;
}

static void format_bytes(char *buf, size_t size, const uint8_t *bytes, unsigned n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < n && off + 4 < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%02x", i ? " " : "", bytes[i]);
	if (!n)
		snprintf(buf, size, "unavailable");
}

/* KVM could not run the guest: say where and on what. (Workarounds for
 * what kvmini can step over come first: compat/step_over.h.) */
static enum exit_action on_internal_error(struct exit_handler *h, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs = { 0 };
	uint8_t insn[EXIT_INSN_MAX + 1];
	char bytes[64];

	ioctl(v->fd, KVM_GET_REGS, &regs);
	unsigned n = exit_failed_insn(v, regs.rip, insn);
	format_bytes(bytes, sizeof(bytes), insn, n);
	log_err("vCPU %u: KVM internal error (suberror %u%s) at RIP 0x%llx, instruction bytes: %s",
		v->index, run->internal.suberror,
		run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
			": instruction emulation failed" : "",
		(unsigned long long)regs.rip, bytes);
	run_state_request_stop(v->run_state, VM_EXIT_GUEST_ERROR,
			       "vCPU %u: KVM cannot run the guest at RIP 0x%llx (bytes %s)",
			       v->index, (unsigned long long)regs.rip, bytes);
	return EXIT_STOP;
}

/* KVM reports a power event (PSCI-style): end the VM with its meaning. */
static enum exit_action on_system_event(struct exit_handler *h, struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		run_state_request_stop(v->run_state, VM_EXIT_OK, "guest powered off");
		break;
	case KVM_SYSTEM_EVENT_RESET:
		run_state_request_stop(v->run_state, VM_EXIT_OK, "guest reset");
		break;
	case KVM_SYSTEM_EVENT_CRASH:
		run_state_request_stop(v->run_state, VM_EXIT_GUEST_CRASH,
				       "guest crashed (KVM system event)");
		break;
	default:
		log_debug("vCPU %u: system event %u ignored", v->index, v->run->system_event.type);
		break;
	}
	return run_state_stop_requested(v->run_state) ? EXIT_STOP : EXIT_RESUME;
}

static enum exit_action on_shutdown(struct exit_handler *h, struct vcpu *v)
{
	run_state_request_stop(v->run_state, VM_EXIT_TRIPLE_FAULT,
			       "vCPU %u: triple fault (guest reset)", v->index);
	return EXIT_STOP;
}

static enum exit_action on_fail_entry(struct exit_handler *h, struct vcpu *v)
{
	run_state_request_stop(v->run_state, VM_EXIT_GUEST_ERROR,
			       "vCPU %u: KVM could not enter the guest (hardware reason 0x%llx)",
			       v->index,
			       (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
	return EXIT_STOP;
}

/* HLT reaches kvmini only without an in-kernel LAPIC, and kvmini always has
 * one; KVM_EXIT_INTR is a signal (the kick) interrupting KVM_RUN. */
static enum exit_action on_resume(struct exit_handler *h, struct vcpu *v)
{
	return EXIT_RESUME;
}

int exit_events_init(struct exit_table *t)
{
	/* Stateless: one instance serves every table. */
	static struct exit_handler internal_error = { on_internal_error },
		system_event = { on_system_event }, shutdown = { on_shutdown },
		fail_entry = { on_fail_entry }, resume = { on_resume };
	static const struct { uint32_t reason; struct exit_handler *h; } handlers[] = {
		{ KVM_EXIT_HLT, &resume },
		{ KVM_EXIT_INTR, &resume },
		{ KVM_EXIT_SHUTDOWN, &shutdown },
		{ KVM_EXIT_SYSTEM_EVENT, &system_event },
		{ KVM_EXIT_INTERNAL_ERROR, &internal_error },
		{ KVM_EXIT_FAIL_ENTRY, &fail_entry },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(handlers); i++) {
		int r = exit_table_add(t, handlers[i].reason, handlers[i].h);
		if (r < 0)
			return r;
	}
	return 0;
}
