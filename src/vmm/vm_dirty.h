/*
 * The pages of guest RAM written since the last look: what a Diff
 * snapshot saves. Two logs make it up, both on only with
 * vm_config.track_dirty: KVM's dirty log of each RAM slot (the vCPUs'
 * writes and KVM's own, KVM_GET_DIRTY_LOG) and guest_mem's bitmaps
 * (kvmini's writes: device buffers, the used rings; guest_mem.h).
 *
 * Taking reads and clears both, so each take is relative to the one
 * before (or to the start). Threads: the loop thread, the VM paused (the
 * vCPUs parked, the devices held: no write is in flight).
 */
#ifndef KVMINI_VMM_VM_DIRTY_H
#define KVMINI_VMM_VM_DIRTY_H

#include <stdint.h>

#include "core/guest_mem.h"

struct vm;

/* One bitmap per RAM region (guest_mem_dirty_words words each). */
struct vm_dirty {
	uint64_t *bits[GUEST_MEM_MAX_REGIONS];
	unsigned nregions;
	uint64_t pages;              /* bits set, all regions */
};

/* Both logs into @d (allocated here; vm_dirty_free), both cleared.
 * 0, -ENOMEM, or -errno of KVM_GET_DIRTY_LOG (logged). */
int vm_dirty_take(struct vm *vm, struct vm_dirty *d);

/* Give taken pages back (into guest_mem's log): a snapshot that failed
 * after taking loses nothing, the next take has them again. */
void vm_dirty_give_back(struct vm *vm, const struct vm_dirty *d);

/* Take and forget: what a Full snapshot does, the next Diff being
 * relative to it. 0 or -errno. */
int vm_dirty_clear(struct vm *vm);

void vm_dirty_free(struct vm_dirty *d);

#endif
