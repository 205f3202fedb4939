/*
 * KVM state round trip (src/vmm/vm_state.c, vcpu_state.c) on a real KVM:
 * a two-vCPU VM runs a few instructions (kvmclock enabled through its MSR,
 * RAX set, an OUT that exits); its state is saved (A), loaded into a second
 * VM with a copy of its memory, and saved again (B).
 *
 * Checked: A and B are the same bytes once the fields that move with time
 * alone are set equal (the TSC and kvmclock, which must not go backwards,
 * and the PIT's load times); the restored VM is marked restored; and its
 * boot vCPU resumes after the OUT (the exit completed before the save),
 * reaching the next OUT with RAX + 1. Prints PASS:/FAIL: lines and exits
 * with the number of failures. Run by tests/kvm/test_state.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/state_io.h"
#include "vmm/layout.h"
#include "vmm/vcpu_state.h"
#include "vmm/vm.h"
#include "vmm/vm_state.h"

#define MEM_BYTES (64ull << 20)
#define CODE_GPA 0x10000ull
#define KVMCLOCK_GPA 0x12000ull
#define MSR_IA32_TSC 0x10u
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01u
#define RAX_MARK 0x1122334455667788ull

static int failures;

static void result(bool ok, const char *what)
{
	printf("%s: kvm state %s\n", ok ? "PASS" : "FAIL", what);
	failures += !ok;
}

/* mov ecx, MSR_KVM_SYSTEM_TIME_NEW; mov eax, KVMCLOCK_GPA | 1; xor edx, edx;
 * wrmsr; mov rax, RAX_MARK; out 0x80, al; inc rax; out 0x81, al; jmp $ */
static const uint8_t guest_code[] = {
	0xb9, 0x01, 0x4d, 0x56, 0x4b,
	0xb8, 0x01, 0x20, 0x01, 0x00,
	0x31, 0xd2,
	0x0f, 0x30,
	0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
	0xe6, 0x80,
	0x48, 0xff, 0xc0,
	0xe6, 0x81,
	0xeb, 0xfe,
};

/* Flat GDT (code 0x10, data 0x18, TSS 0x20) and 2 MiB identity pages for
 * the first 2 MiB, where cpu_setup's long mode expects them. */
static void write_guest(struct vm *vm)
{
	static const uint64_t gdt[5] = { 0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull,
					 0x00808b0000000067ull };
	uint64_t *pml4 = vm_gpa(vm, LAYOUT_PML4, 4096), *pdpt = vm_gpa(vm, LAYOUT_PDPT, 4096);
	uint64_t *pd = vm_gpa(vm, LAYOUT_PD, 4096);

	memcpy(vm_gpa(vm, LAYOUT_GDT, sizeof(gdt)), gdt, sizeof(gdt));
	pml4[0] = LAYOUT_PDPT | 3;
	pdpt[0] = LAYOUT_PD | 3;
	pd[0] = 0x83;                /* present, writable, 2 MiB */
	memcpy(vm_gpa(vm, CODE_GPA, sizeof(guest_code)), guest_code, sizeof(guest_code));
}

/* Run vCPU 0 to its next exit: true when that is an OUT to @port. */
static bool run_to_out(struct vm *vm, uint16_t port)
{
	struct vcpu *v = &vm->vcpus[0];

	for (int tries = 0; tries < 10; tries++) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			printf("  KVM_RUN: %s\n", strerror(errno));
			return false;
		}
		if (v->run->exit_reason == KVM_EXIT_IO)
			return v->run->io.port == port &&
			       v->run->io.direction == KVM_EXIT_IO_OUT;
		printf("  exit %u\n", v->run->exit_reason);
	}
	return false;
}

static bool make_vm(struct vm *vm)
{
	const struct vm_config cfg = { .mem_bytes = MEM_BYTES, .ncpus = 2 };

	if (vm_create(vm, &cfg) < 0)
		return false;
	write_guest(vm);
	return true;
}

static bool boot_and_run(struct vm *vm)
{
	const struct vm_entry entry = { .rip = CODE_GPA };
	const struct cpu_config cpu = { .supported_cpuid = vm->supported_cpuid, .ncpus = vm->ncpus,
					.entry = &entry };

	for (unsigned i = 0; i < vm->ncpus; i++)
		if (cpu_setup(&vm->vcpus[i], &cpu) < 0)
			return false;
	return run_to_out(vm, 0x80);
}

static bool save(struct vm *vm, struct state_writer *w)
{
	struct errbuf eb = { 0 };

	if (vm_state_save(vm, w, &eb) < 0 || w->failed) {
		printf("  vm_state_save: %s\n", eb.msg);
		return false;
	}
	return true;
}

static bool load(struct vm *vm, const struct state_writer *w)
{
	struct errbuf eb = { 0 };
	struct state_reader r;

	state_reader_init(&r, w->buf, w->len, &eb);
	if (vm_state_load(vm, &r, &eb) < 0 || !state_at_end(&r)) {
		printf("  vm_state_load: %s\n", eb.msg);
		return false;
	}
	return true;
}

static __u64 *msr_value(struct vcpu_state *st, uint32_t index)
{
	for (unsigned i = 0; i < st->msrs->nmsrs; i++)
		if (st->msrs->entries[i].index == index)
			return &st->msrs->entries[i].data;
	return NULL;
}

/* Hyper-V's reference time and vCPU runtime counters (KVM lists them):
 * driven by host time, like the TSC. */
static const uint32_t time_msrs[] = { 0x40000010u, 0x40000020u };

/*
 * Set @b's time-driven fields to @a's after checking they did not go back:
 * kvmclock, and every vCPU's TSC against the lower of its own saved one
 * and vCPU 0's (KVM synchronizes the other vCPUs' TSCs to vCPU 0's on
 * restore, so each need not reach its own saved value, which was read a
 * little later; on the nested platform the second vCPU may be made too
 * late for KVM to synchronize it at all, and then it goes on from its own).
 */
static bool settle_time(struct vm_saved_state *a, struct vm_saved_state *b)
{
	bool ok = b->chip.clock.clock >= a->chip.clock.clock;
	__u64 *t0 = msr_value(&a->cpus[0], MSR_IA32_TSC);

	printf("  kvmclock %llu -> %llu ns\n", (unsigned long long)a->chip.clock.clock,
	       (unsigned long long)b->chip.clock.clock);
	b->chip.clock = a->chip.clock;
	for (unsigned c = 0; c < 3; c++)
		b->chip.pit.channels[c].count_load_time = a->chip.pit.channels[c].count_load_time;
	for (unsigned i = 0; i < a->ncpus; i++) {
		__u64 *ta = msr_value(&a->cpus[i], MSR_IA32_TSC);
		__u64 *tb = msr_value(&b->cpus[i], MSR_IA32_TSC);
		ok &= t0 && ta && tb && *tb >= (*ta < *t0 ? *ta : *t0);
		if (ta && tb) {
			printf("  vCPU %u TSC %llu -> %llu\n", i, (unsigned long long)*ta,
			       (unsigned long long)*tb);
			*tb = *ta;
		}
		for (unsigned k = 0; k < sizeof(time_msrs) / sizeof(time_msrs[0]); k++) {
			__u64 *ha = msr_value(&a->cpus[i], time_msrs[k]);
			__u64 *hb = msr_value(&b->cpus[i], time_msrs[k]);
			if (ha && hb)
				*hb = *ha;
		}
	}
	return ok;
}

/* Name what differs, for a failure's report. */
static void report_diff(const struct vm_saved_state *a, const struct vm_saved_state *b)
{
	for (unsigned i = 0; i < a->ncpus; i++) {
		const struct vcpu_state *x = &a->cpus[i], *y = &b->cpus[i];
		for (unsigned k = 0; k < x->msrs->nmsrs && k < y->msrs->nmsrs; k++)
			if (memcmp(&x->msrs->entries[k], &y->msrs->entries[k], sizeof(x->msrs->entries[k])))
				printf("  vCPU %u MSR 0x%x: 0x%llx -> MSR 0x%x: 0x%llx\n", i,
				       x->msrs->entries[k].index, (unsigned long long)x->msrs->entries[k].data,
				       y->msrs->entries[k].index, (unsigned long long)y->msrs->entries[k].data);
		printf("  vCPU %u: msrs %u/%u regs %d sregs %d xsave %d lapic %d events %d dbg %d mp %d\n", i,
		       x->msrs->nmsrs, y->msrs->nmsrs, !!memcmp(&x->regs, &y->regs, sizeof(x->regs)),
		       !!memcmp(&x->sregs, &y->sregs, sizeof(x->sregs)),
		       !!memcmp(x->xsave, y->xsave, x->xsave_size),
		       !!memcmp(&x->lapic, &y->lapic, sizeof(x->lapic)),
		       !!memcmp(&x->events, &y->events, sizeof(x->events)),
		       !!memcmp(&x->debugregs, &y->debugregs, sizeof(x->debugregs)),
		       x->mp_state.mp_state != y->mp_state.mp_state);
	}
	printf("  irqchip %d pit %d\n", !!memcmp(a->chip.pic, b->chip.pic, sizeof(a->chip.pic)) ||
	       !!memcmp(&a->chip.ioapic, &b->chip.ioapic, sizeof(a->chip.ioapic)),
	       !!memcmp(&a->chip.pit, &b->chip.pit, sizeof(a->chip.pit)));
}

static bool parse(const struct state_writer *w, const struct vcpu_state_caps *caps,
		  struct vm_saved_state *out)
{
	struct errbuf eb = { 0 };
	struct state_reader r;

	state_reader_init(&r, w->buf, w->len, &eb);
	if (vm_state_parse(&r, caps, 2, out) < 0 || !state_at_end(&r)) {
		printf("  parse: %s\n", eb.msg);
		return false;
	}
	return true;
}

/* Save-load-save gives the same bytes, time aside. */
static void compare(struct vm *vm, const struct state_writer *wa, const struct state_writer *wb)
{
	struct vcpu_state_caps caps;
	struct vm_saved_state a, b;
	struct state_writer na, nb;
	struct errbuf eb = { 0 };

	if (vcpu_state_caps_probe(vm->kvm_fd, vm->vm_fd, &caps, &eb) < 0) {
		result(false, eb.msg);
		return;
	}
	bool ok = parse(wa, &caps, &a) && parse(wb, &caps, &b);
	result(ok && settle_time(&a, &b), "TSC and kvmclock go on from the saved values");
	state_writer_init(&na);
	state_writer_init(&nb);
	if (ok) {
		vm_chip_state_write(&a.chip, &na);
		vm_chip_state_write(&b.chip, &nb);
		for (unsigned i = 0; i < 2; i++) {
			vcpu_state_write(&a.cpus[i], &na);
			vcpu_state_write(&b.cpus[i], &nb);
		}
		ok = na.len == nb.len && !memcmp(na.buf, nb.buf, na.len);
		printf("  state: %zu bytes, %u and %u MSRs saved per vCPU, XSAVE %zu bytes\n",
		       wa->len, a.cpus[0].msrs->nmsrs, a.cpus[1].msrs->nmsrs, caps.xsave_size);
		if (!ok)
			report_diff(&a, &b);
	}
	result(ok, "save -> load -> save gives identical bytes (time fields aside)");
	vm_saved_state_free(&a);
	vm_saved_state_free(&b);
	state_writer_free(&na);
	state_writer_free(&nb);
	vcpu_state_caps_free(&caps);
}

/* The restored boot vCPU runs on after the first OUT with RAX + 1. */
static void check_resume(struct vm *vm)
{
	struct kvm_regs regs;
	bool ok = run_to_out(vm, 0x81) && ioctl(vm->vcpus[0].fd, KVM_GET_REGS, &regs) == 0 &&
		  regs.rax == RAX_MARK + 1;

	result(ok, "restored vCPU resumes after the OUT it exited on");
}

int main(void)
{
	struct vm *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct state_writer wa, wb;

	state_writer_init(&wa);
	state_writer_init(&wb);
	bool ok = a && b && make_vm(a) && boot_and_run(a);

	result(ok, "a two-vCPU VM runs to its first OUT");
	ok = ok && save(a, &wa);
	result(ok, "saved");
	ok = ok && make_vm(b);
	if (ok)
		memcpy(vm_gpa(b, 0, 2u << 20), vm_gpa(a, 0, 2u << 20), 2u << 20);
	ok = ok && load(b, &wa);
	result(ok && b->restored, "loaded into a new VM, which is marked restored");
	ok = ok && save(b, &wb);
	result(ok, "the restored VM saved again");
	if (ok)
		compare(b, &wa, &wb);
	if (ok)
		check_resume(b);
	if (a)
		vm_destroy(a);
	if (b)
		vm_destroy(b);
	free(a);
	free(b);
	state_writer_free(&wa);
	state_writer_free(&wb);
	return failures;
}
