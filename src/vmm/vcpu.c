/*
 * vCPU threads: KVM_RUN, then the exit that brought us back. Port and MMIO
 * accesses go to the io_bus; everything that ends the guest goes through
 * vm_request_stop. A guest's mistakes end its VM with a report, never
 * kvmini itself.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/log.h"
#include "vmm/vm.h"

/* Unhandled accesses logged before going quiet (per vCPU). */
#define UNHANDLED_LOG_BUDGET 16u

int vcpu_kick_signal(void)
{
	return SIGRTMIN;
}

/* The page of @gva through this vCPU's page tables (guest_virt.h). */
static int vcpu_translate(struct guest_virt *gv, uint64_t gva, struct guest_virt_page *out)
{
	struct vcpu *v = container_of(gv, struct vcpu, virt);
	struct kvm_translation tr = { .linear_address = gva };

	if (ioctl(v->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -EFAULT;
	out->gpa = tr.physical_address;
	out->writable = tr.writeable;
	return 0;
}

int vcpu_create(struct vm *vm, unsigned index)
{
	struct vcpu *v = &vm->vcpus[index];

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->index = index;
	v->run_state = &vm->run_state;
	v->virt = (struct guest_virt){ .translate = vcpu_translate, .mem = &vm->mem };
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		log_err("KVM_CREATE_VCPU %u: %s", index, strerror(errno));
		return -errno;
	}
	int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run)) {
		log_err("KVM_GET_VCPU_MMAP_SIZE: %s", size < 0 ? strerror(errno) : "too small");
		return size < 0 ? -errno : -EINVAL;
	}
	v->run_size = (size_t)size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		log_err("vCPU %u: mmap kvm_run: %s", index, strerror(errno));
		return -errno;
	}
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	v->run = NULL;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

int vcpu_setup(struct vcpu *v)
{
	int r = cpu_setup_cpuid(v);
	if (!r)
		r = cpu_setup_msrs(v);
	if (!r) {
		r = cpu_setup_lapic(v);
		if (r < 0)
			log_err("vCPU %u: local APIC: %s", v->index, strerror(-r));
	}
	/* Application processors wait for INIT/SIPI from the guest's BSP
	 * (the in-kernel LAPIC keeps them in wait-for-SIPI). */
	if (!r && v->index == 0)
		r = cpu_setup_long_mode(v, &v->vm->entry);
	return r;
}

static unsigned unhandled_budget_take(unsigned *budget)
{
	if (!*budget)
		return 0;
	return (*budget)--;
}

/* A port access (string I/O included: count items of size bytes). Unclaimed
 * ports read as all ones and ignore writes. */
static void handle_io(struct vcpu *v, unsigned *budget)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	unsigned size = run->io.size;

	/* data_offset and count come from KVM, not from the guest; still,
	 * stay inside the mapping. */
	if (run->io.data_offset + (uint64_t)size * run->io.count > v->run_size)
		return;
	struct io_handler *h = io_bus_find(&v->vm->pio, run->io.port, size);
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		if (h) {
			h->access(h, run->io.port - h->base, data, size, is_write);
			continue;
		}
		if (!is_write)
			memset(data, 0xff, size);   /* an empty ISA bus reads all ones */
		if (unhandled_budget_take(budget))
			log_debug("vCPU %u: unhandled port %s 0x%x (%u bytes)", v->index,
				  is_write ? "write" : "read", run->io.port, size);
	}
}

/* An MMIO access; unclaimed addresses read as all ones and ignore writes. */
static void handle_mmio(struct vcpu *v, unsigned *budget)
{
	struct kvm_run *run = v->run;
	unsigned len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		return;
	struct io_handler *h = io_bus_find(&v->vm->mmio, run->mmio.phys_addr, len);
	if (h) {
		h->access(h, run->mmio.phys_addr - h->base, run->mmio.data, len,
			  run->mmio.is_write);
		return;
	}
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
	if (unhandled_budget_take(budget))
		log_debug("vCPU %u: unhandled MMIO %s 0x%llx (%u bytes)", v->index,
			  run->mmio.is_write ? "write" : "read",
			  (unsigned long long)run->mmio.phys_addr, len);
}

/* Up to 15 instruction bytes at the guest's RIP, through its page tables:
 * as many as are mapped, each page from where it maps. */
static unsigned read_insn_at_rip(struct vcpu *v, uint64_t rip, uint8_t *out)
{
	return (unsigned)guest_virt_copy(&v->virt, rip, out, 15, false);
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

#define X86_INT3 0xcc
#define X86_FWAIT 0x9b
#define X86_VECTOR_BP 3

/* Compat mode (vm.h): do what the CPU would have done for an int3 or an
 * fwait KVM could not emulate. Returns true when the guest may go on. */
static bool compat_step_over(struct vcpu *v, struct kvm_regs *regs, uint8_t opcode)
{
	if (!v->vm->compat || (opcode != X86_INT3 && opcode != X86_FWAIT))
		return false;
	regs->rip++;
	if (ioctl(v->fd, KVM_SET_REGS, regs) < 0)
		return false;
	if (opcode == X86_FWAIT) {
		__atomic_fetch_add(&v->vm->compat_fwait, 1, __ATOMIC_RELAXED);
		return true;
	}
	/* #BP is a trap: delivered with RIP after the int3, as set above. */
	struct kvm_vcpu_events ev;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return false;
	ev.exception.injected = 1;
	ev.exception.nr = X86_VECTOR_BP;
	ev.exception.has_error_code = 0;
	ev.exception.error_code = 0;
	ev.flags = 0;
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return false;
	__atomic_fetch_add(&v->vm->compat_int3, 1, __ATOMIC_RELAXED);
	return true;
}

/* KVM could not run the guest: say where and on what (or, in compat mode,
 * step over what kvmini knows how to). Returns true when the guest goes on. */
static bool handle_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs = { 0 };
	uint8_t insn[16];
	unsigned n = 0;
	char bytes[64];

	ioctl(v->fd, KVM_GET_REGS, &regs);
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = MIN(run->emulation_failure.insn_size, (uint8_t)sizeof(run->emulation_failure.insn_bytes));
		memcpy(insn, run->emulation_failure.insn_bytes, n);
	}
	if (!n)
		n = read_insn_at_rip(v, regs.rip, insn);
	if (n && compat_step_over(v, &regs, insn[0]))
		return true;
	format_bytes(bytes, sizeof(bytes), insn, n);
	log_err("vCPU %u: KVM internal error (suberror %u%s) at RIP 0x%llx, instruction bytes: %s",
		v->index, run->internal.suberror,
		run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? ": instruction emulation failed" : "",
		(unsigned long long)regs.rip, bytes);
	run_state_request_stop(v->run_state, VM_EXIT_GUEST_ERROR,
			"vCPU %u: KVM cannot run the guest at RIP 0x%llx (bytes %s)", v->index,
			(unsigned long long)regs.rip, bytes);
	return false;
}

/* KVM reports a power event (PSCI-style): end the VM with its meaning. */
static void handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		run_state_request_stop(v->run_state, VM_EXIT_OK, "guest powered off");
		break;
	case KVM_SYSTEM_EVENT_RESET:
		run_state_request_stop(v->run_state, VM_EXIT_OK, "guest reset");
		break;
	case KVM_SYSTEM_EVENT_CRASH:
		run_state_request_stop(v->run_state, VM_EXIT_GUEST_CRASH, "guest crashed (KVM system event)");
		break;
	default:
		log_debug("vCPU %u: system event %u ignored", v->index, v->run->system_event.type);
		break;
	}
}

/* Handle one exit; returns false when this vCPU must stop. */
static bool handle_exit(struct vcpu *v, unsigned *budget)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v, budget);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(v, budget);
		return true;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; kvmini always has one. */
		return true;
	case KVM_EXIT_SHUTDOWN:
		run_state_request_stop(v->run_state, VM_EXIT_TRIPLE_FAULT,
				       "vCPU %u: triple fault (guest reset)", v->index);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(v);
		return !run_state_stop_requested(v->run_state);
	case KVM_EXIT_INTERNAL_ERROR:
		return handle_internal_error(v);
	case KVM_EXIT_FAIL_ENTRY:
		run_state_request_stop(v->run_state, VM_EXIT_GUEST_ERROR,
				"vCPU %u: KVM could not enter the guest (hardware reason 0x%llx)", v->index,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_X86_WRMSR:
		if (v->vm->user_relay)
			return user_relay_on_wrmsr(v);
		break;
	case KVM_EXIT_DEBUG:
		if (v->vm->user_relay)
			return user_relay_on_debug(v);
		break;
	default:
		break;
	}
	run_state_request_stop(v->run_state, VM_EXIT_GUEST_ERROR, "vCPU %u: unexpected KVM exit %u",
			       v->index, run->exit_reason);
	return false;
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	unsigned budget = UNHANDLED_LOG_BUDGET;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	if (v->index == 0)
		vm_timing_mark(&vm->timing.first_run);
	while (!run_state_stop_requested(v->run_state)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			run_state_request_stop(v->run_state, 1, "vCPU %u: KVM_RUN: %s", v->index, strerror(errno));
			break;
		}
		v->exits++;
		vm_timing_mark(&vm->timing.first_exit);
		if (!handle_exit(v, &budget))
			break;
	}
	return NULL;
}
