/*
 * A VM's KVM state for snapshots (see vm_state.h): the in-kernel chips and
 * the kvmclock here, the vCPUs through vcpu_state.h.
 */
#include "vmm/vm_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/vcpu_state.h"

static int vm_ioctl(int vm_fd, unsigned long req, void *arg, const char *name,
		    struct errbuf *eb)
{
	if (ioctl(vm_fd, req, arg) < 0) {
		int e = errno;
		errbuf_set(eb, "%s: %s", name, strerror(e));
		return -e;
	}
	return 0;
}

/* --- the chips and the clock ------------------------------------------------------- */

static int get_irqchip(int vm_fd, unsigned id, void *out, size_t n, struct errbuf *eb)
{
	struct kvm_irqchip chip = { .chip_id = id };
	int r = vm_ioctl(vm_fd, KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP", eb);

	if (!r)
		memcpy(out, &chip.chip, n);
	return r;
}

static int set_irqchip(int vm_fd, unsigned id, const void *in, size_t n, struct errbuf *eb)
{
	struct kvm_irqchip chip = { .chip_id = id };

	memcpy(&chip.chip, in, n);
	return vm_ioctl(vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP", eb);
}

int vm_chip_state_get(int vm_fd, struct vm_chip_state *st, struct errbuf *eb)
{
	memset(st, 0, sizeof(*st));
	int r = get_irqchip(vm_fd, KVM_IRQCHIP_PIC_MASTER, &st->pic[0], sizeof(st->pic[0]), eb);
	if (!r)
		r = get_irqchip(vm_fd, KVM_IRQCHIP_PIC_SLAVE, &st->pic[1], sizeof(st->pic[1]), eb);
	if (!r)
		r = get_irqchip(vm_fd, KVM_IRQCHIP_IOAPIC, &st->ioapic, sizeof(st->ioapic), eb);
	if (!r)
		r = vm_ioctl(vm_fd, KVM_GET_PIT2, &st->pit, "KVM_GET_PIT2", eb);
	if (!r)
		r = vm_ioctl(vm_fd, KVM_GET_CLOCK, &st->clock, "KVM_GET_CLOCK", eb);
	return r;
}

static void put_blob(struct state_writer *w, const void *p, size_t n)
{
	state_put_u32(w, (uint32_t)n);
	state_put_bytes(w, p, n);
}

void vm_chip_state_write(const struct vm_chip_state *st, struct state_writer *w)
{
	state_begin(w, "IRQC");
	put_blob(w, &st->pic[0], sizeof(st->pic[0]));
	put_blob(w, &st->pic[1], sizeof(st->pic[1]));
	put_blob(w, &st->ioapic, sizeof(st->ioapic));
	state_end(w);
	state_begin(w, "PIT2");
	put_blob(w, &st->pit, sizeof(st->pit));
	state_end(w);
	state_begin(w, "CLCK");
	state_put_u64(w, st->clock.clock);
	state_put_u32(w, st->clock.flags);
	state_end(w);
}

/* A kvm.h struct of exactly @n bytes (its size is stored first). */
static bool get_blob(struct state_reader *r, void *out, size_t n, const char *what)
{
	uint32_t size = state_get_u32(r);

	if (!r->failed && size != n)
		return state_fail(r, "%s of %u bytes; this kvmini's is %zu", what, size, n);
	return state_get_bytes(r, out, n);
}

static bool parse_irqchip(struct state_reader *r, struct vm_chip_state *st)
{
	struct state_reader sec;

	if (state_section(r, "IRQC", &sec)) {
		get_blob(&sec, &st->pic[0], sizeof(st->pic[0]), "kvm_pic_state (master)");
		get_blob(&sec, &st->pic[1], sizeof(st->pic[1]), "kvm_pic_state (slave)");
		get_blob(&sec, &st->ioapic, sizeof(st->ioapic), "kvm_ioapic_state");
	}
	return state_section_done(r, &sec);
}

static bool parse_pit(struct state_reader *r, struct vm_chip_state *st)
{
	struct state_reader sec;

	if (state_section(r, "PIT2", &sec))
		get_blob(&sec, &st->pit, sizeof(st->pit), "kvm_pit_state2");
	return state_section_done(r, &sec);
}

static bool parse_clock(struct state_reader *r, struct vm_chip_state *st)
{
	struct state_reader sec;

	if (state_section(r, "CLCK", &sec)) {
		st->clock.clock = state_get_u64(&sec);
		st->clock.flags = state_get_u32(&sec);
	}
	return state_section_done(r, &sec);
}

int vm_chip_state_parse(struct state_reader *r, struct vm_chip_state *st)
{
	memset(st, 0, sizeof(*st));
	bool ok = parse_irqchip(r, st) && parse_pit(r, st) && parse_clock(r, st);
	return ok ? 0 : -EINVAL;
}

/*
 * The clock goes back with no flags: KVM_SET_CLOCK takes only
 * KVM_CLOCK_REALTIME, which would move kvmclock on by the time the VM spent
 * saved, while the guest's TSC (restored from MSR_IA32_TSC, vcpu_state.h)
 * does not move on; without it both continue from the moment of the save,
 * so guest time neither jumps back nor runs apart from the TSC.
 */
int vm_chip_state_apply(int vm_fd, const struct vm_chip_state *st, struct errbuf *eb)
{
	struct kvm_pit_state2 pit = st->pit;
	struct kvm_clock_data clock = { .clock = st->clock.clock };

	int r = set_irqchip(vm_fd, KVM_IRQCHIP_PIC_MASTER, &st->pic[0], sizeof(st->pic[0]), eb);
	if (!r)
		r = set_irqchip(vm_fd, KVM_IRQCHIP_PIC_SLAVE, &st->pic[1], sizeof(st->pic[1]), eb);
	if (!r)
		r = set_irqchip(vm_fd, KVM_IRQCHIP_IOAPIC, &st->ioapic, sizeof(st->ioapic), eb);
	if (!r)
		r = vm_ioctl(vm_fd, KVM_SET_PIT2, &pit, "KVM_SET_PIT2", eb);
	if (!r)
		r = vm_ioctl(vm_fd, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK", eb);
	return r;
}

/* --- the whole VM --------------------------------------------------------------------- */

int vm_state_save(struct vm *vm, struct state_writer *w, struct errbuf *eb)
{
	struct vcpu_state_caps caps;
	struct vm_chip_state chip;
	int r = vcpu_state_caps_probe(vm->kvm_fd, vm->vm_fd, &caps, eb);

	if (r < 0)
		return r;
	r = vm_chip_state_get(vm->vm_fd, &chip, eb);
	if (!r) {
		vm_chip_state_write(&chip, w);
		state_begin(w, "NCPU");
		state_put_u32(w, vm->ncpus);
		state_end(w);
	}
	for (unsigned i = 0; !r && i < vm->ncpus; i++)
		r = vcpu_state_save(&vm->vcpus[i], &caps, w, eb);
	vcpu_state_caps_free(&caps);
	return r;
}

static bool parse_ncpus(struct state_reader *r, unsigned ncpus)
{
	struct state_reader sec;

	if (state_section(r, "NCPU", &sec)) {
		uint32_t n = state_get_u32(&sec);
		if (!sec.failed && n != ncpus)
			state_fail(&sec, "the state has %u vCPUs, this VM %u", n, ncpus);
	}
	return state_section_done(r, &sec);
}

int vm_state_parse(struct state_reader *r, const struct vcpu_state_caps *caps, unsigned ncpus,
		   struct vm_saved_state *out)
{
	memset(out, 0, sizeof(*out));
	if (vm_chip_state_parse(r, &out->chip) < 0 || !parse_ncpus(r, ncpus))
		return -EINVAL;
	out->cpus = calloc(ncpus, sizeof(out->cpus[0]));
	if (!out->cpus) {
		state_fail(r, "vCPU states: out of memory");
		return -ENOMEM;
	}
	out->ncpus = ncpus;
	for (unsigned i = 0; i < ncpus; i++)
		if (vcpu_state_parse(r, caps, i, &out->cpus[i]) < 0)
			return -EINVAL;
	return 0;
}

void vm_saved_state_free(struct vm_saved_state *s)
{
	for (unsigned i = 0; s->cpus && i < s->ncpus; i++)
		vcpu_state_free(&s->cpus[i]);
	free(s->cpus);
	s->cpus = NULL;
	s->ncpus = 0;
}

/* vCPUs first, then the chips, the clock last (Firecracker's order): the
 * clock is set as late as can be before the vCPUs run. */
static int apply_all(struct vm *vm, const struct vm_saved_state *s, struct errbuf *eb)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		int r = vcpu_state_apply(&vm->vcpus[i], &s->cpus[i], eb);
		if (r < 0)
			return r;
	}
	return vm_chip_state_apply(vm->vm_fd, &s->chip, eb);
}

int vm_state_load(struct vm *vm, struct state_reader *r, struct errbuf *eb)
{
	struct vcpu_state_caps caps;
	struct vm_saved_state saved;
	int ret = vcpu_state_caps_probe(vm->kvm_fd, vm->vm_fd, &caps, eb);

	if (ret < 0)
		return ret;
	ret = vm_state_parse(r, &caps, vm->ncpus, &saved);
	if (ret < 0 && r->eb != eb)   /* the reader's errbuf has why */
		errbuf_set(eb, "%s", r->eb ? r->eb->msg : "the state is not valid");
	if (!ret)
		ret = apply_all(vm, &saved, eb);
	if (!ret)
		vm->restored = true;
	vm_saved_state_free(&saved);
	vcpu_state_caps_free(&caps);
	return ret;
}
