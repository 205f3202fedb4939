/*
 * A VM's KVM state for snapshots: the in-kernel chips (PIC pair, IOAPIC,
 * PIT), the kvmclock, and every vCPU (vcpu_state.h), in sections of the
 * state format (core/state_io.h). Guest memory and devices are not here.
 *
 * Sections, in this order (u32/u64 little-endian; "blob" as in vcpu_state.h,
 * a u32 size then the linux/kvm.h struct's bytes):
 *   "IRQC"  blob kvm_pic_state (master), blob kvm_pic_state (slave),
 *           blob kvm_ioapic_state
 *   "PIT2"  blob kvm_pit_state2
 *   "CLCK"  u64 kvmclock (ns), u32 KVM_GET_CLOCK's flags (kept for reading;
 *           not given back, see vm_chip_state_apply)
 *   "NCPU"  u32 vCPU count
 *   "VCPU"  one per vCPU, by index (vcpu_state.h)
 *
 * Like vcpu_state, the chips' state is got, written, parsed and applied
 * through one struct; vm_state_load parses every section before it applies
 * any, so a state refused by a check changes nothing.
 */
#ifndef KVMINI_VMM_VM_STATE_H
#define KVMINI_VMM_VM_STATE_H

#include <linux/kvm.h>

#include "core/errbuf.h"
#include "core/state_io.h"
#include "vmm/vcpu_state.h"
#include "vmm/vm.h"

struct vm_chip_state {
	struct kvm_pic_state pic[2]; /* KVM_IRQCHIP_PIC_MASTER, _SLAVE */
	struct kvm_ioapic_state ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

/* The chips and clock of @vm_fd into @st. 0 or -errno with why. */
int vm_chip_state_get(int vm_fd, struct vm_chip_state *st, struct errbuf *eb);
/* @st as the "IRQC", "PIT2" and "CLCK" sections. */
void vm_chip_state_write(const struct vm_chip_state *st, struct state_writer *w);
/* Those three sections of @r into @st. 0, or -EINVAL with @r failed and why. */
int vm_chip_state_parse(struct state_reader *r, struct vm_chip_state *st);
/* Put @st into @vm_fd: irqchip, PIT, then the clock. 0 or -errno with why. */
int vm_chip_state_apply(int vm_fd, const struct vm_chip_state *st, struct errbuf *eb);

/* Every section vm_state_save writes, parsed (vm_state_load's first half). */
struct vm_saved_state {
	struct vm_chip_state chip;
	unsigned ncpus;
	struct vcpu_state *cpus;     /* malloc'd, ncpus of them, by index */
};

/* The sections vm_state_save wrote, for a VM of @ncpus vCPUs on a host of
 * @caps, into @out (free it with vm_saved_state_free, also after a
 * failure). 0, or -EINVAL/-ENOMEM with @r failed and why. */
int vm_state_parse(struct state_reader *r, const struct vcpu_state_caps *caps, unsigned ncpus,
		   struct vm_saved_state *out);
void vm_saved_state_free(struct vm_saved_state *s);

/*
 * Write @vm's KVM state: chips, clock, vCPU count, every vCPU. The main
 * thread, while the VM is paused (every vCPU parked outside KVM_RUN: see
 * vm_pause_vcpus). 0 or -errno with why.
 */
int vm_state_save(struct vm *vm, struct state_writer *w, struct errbuf *eb);

/*
 * Read those sections from @r (which goes on to what follows them), check
 * all of them, then put them into @vm: every vCPU (vcpu_state_apply), the
 * chips, the clock; then mark @vm restored, so vm_start runs the vCPUs as
 * they are instead of setting them up for a boot. Call after vm_create,
 * with guest memory in place, before vm_start. 0 or -errno with why in
 * @eb; a state refused by a check leaves @vm untouched, a KVM refusal
 * while applying leaves it half-set (destroy it).
 */
int vm_state_load(struct vm *vm, struct state_reader *r, struct errbuf *eb);

#endif
