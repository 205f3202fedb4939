/*
 * One vCPU's whole architectural state as KVM holds it, for snapshots:
 * saved into a "VCPU" section of the state format (core/state_io.h) and
 * put back into a fresh vCPU of another kvmini process.
 *
 * Four steps around one struct, so that a bad state is never half-applied:
 *   vcpu_state_get    ioctls: the vCPU's state into a struct
 *   vcpu_state_write  the struct into a section (pure, no KVM)
 *   vcpu_state_parse  a section into a struct, every count and size checked
 *                     against this host (pure, no KVM)
 *   vcpu_state_apply  ioctls: the struct into a vCPU, in the order KVM needs
 * A machine parses every section of a state before it applies any.
 *
 * Section "VCPU" (little-endian; "blob" is a u32 size then that many bytes
 * of the linux/kvm.h struct as x86 KVM lays it out, the size checked
 * against this kvmini's struct so a layout change is refused by name):
 *   u32 vCPU index
 *   u32 CPUID entries n, then n x (u32 function, index, flags, eax, ebx, ecx, edx)
 *   u32 MP state
 *   blob kvm_regs, blob kvm_sregs
 *   u32 XSAVE size s, then s bytes (KVM_GET_XSAVE2's buffer; s is this host's)
 *   u32 XCRs n, u32 flags, then n x (u32 xcr, u64 value)
 *   blob kvm_debugregs, blob kvm_lapic_state
 *   u32 MSRs n, then n x (u32 index, u64 data), MSR_IA32_TSC first
 *   blob kvm_vcpu_events
 *
 * The TSC travels as the MSR_IA32_TSC value: a restored guest's TSC goes on
 * from where it was saved (the time the VM spent saved does not pass for it),
 * like its kvmclock (vm_state.h). A host with another TSC frequency is not
 * handled (no KVM_SET_TSC_KHZ).
 *
 * Threads: get runs while the vCPU is outside KVM_RUN (parked by a pause:
 * vcpu ioctls from the main thread are fine then); apply runs before the
 * vCPU's thread starts, in place of cpu_setup.
 */
#ifndef KVMINI_VMM_VCPU_STATE_H
#define KVMINI_VMM_VCPU_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "core/errbuf.h"
#include "core/state_io.h"
#include "vmm/vcpu.h"

/* Bounds a state must keep. KVM's own CPUID limit is 256 entries
 * (KVM_MAX_CPUID_ENTRIES); its MSR index list is a few hundred at most;
 * XSAVE with AMX is about 11 KiB. */
#define VCPU_STATE_MAX_CPUID 256u
#define VCPU_STATE_MAX_MSRS 1024u
#define VCPU_STATE_MAX_XSAVE (64u << 10)

/* What this host's KVM saves and takes, probed once per VM. */
struct vcpu_state_caps {
	size_t xsave_size;           /* bytes of the XSAVE buffer */
	bool xsave2;                 /* KVM_GET_XSAVE2 (the buffer is larger than kvm_xsave) */
	bool xcrs;                   /* KVM_CAP_XCRS */
	uint32_t *msrs;              /* MSRs to save, MSR_IA32_TSC first (malloc'd) */
	unsigned nmsrs;
};

struct vcpu_state {
	unsigned index;
	struct kvm_cpuid2 *cpuid;    /* malloc'd, cpuid->nent entries */
	struct kvm_mp_state mp_state;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave *xsave;     /* malloc'd, xsave_size bytes */
	size_t xsave_size;
	struct kvm_xcrs xcrs;        /* nr_xcrs 0: the host has no KVM_CAP_XCRS */
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_msrs *msrs;       /* malloc'd, msrs->nmsrs entries */
	struct kvm_vcpu_events events;
};

/* Probe @kvm_fd and @vm_fd (XSAVE size, XCRs, the MSR list). 0 or -errno with why. */
int vcpu_state_caps_probe(int kvm_fd, int vm_fd, struct vcpu_state_caps *caps,
			  struct errbuf *eb);
void vcpu_state_caps_free(struct vcpu_state_caps *caps);

/* @v's state into @st (free it with vcpu_state_free). First enters
 * KVM_RUN once with immediate_exit set, which runs no guest code but
 * completes the I/O of the exit @v last handled, so the state read is the
 * one after it. 0 or -errno with why. */
int vcpu_state_get(struct vcpu *v, const struct vcpu_state_caps *caps, struct vcpu_state *st,
		   struct errbuf *eb);
/* @st as one "VCPU" section. */
void vcpu_state_write(const struct vcpu_state *st, struct state_writer *w);
/* get, then write. 0 or -errno with why. */
int vcpu_state_save(struct vcpu *v, const struct vcpu_state_caps *caps, struct state_writer *w,
		    struct errbuf *eb);

/* The next section of @r, which must be vCPU @index's, into @st (zeroed
 * first; free it with vcpu_state_free, also after a failure). 0, or
 * -EINVAL with @r failed and why in @r's errbuf. */
int vcpu_state_parse(struct state_reader *r, const struct vcpu_state_caps *caps, unsigned index,
		     struct vcpu_state *st);

/* Put @st into @v, which has not run yet. 0 or -errno with why. */
int vcpu_state_apply(struct vcpu *v, const struct vcpu_state *st, struct errbuf *eb);

void vcpu_state_free(struct vcpu_state *st);

#endif
