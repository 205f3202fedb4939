/* Dirty pages of guest RAM: KVM's log and kvmini's (see vm_dirty.h). */
#include "vmm/vm_dirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "core/log.h"
#include "vmm/vm.h"

/* KVM's log of slot @slot into @bits, cleared as it is read (without
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, which kvmini does not enable, the
 * read write-protects the pages again). */
static int take_kvm_log(struct vm *vm, unsigned slot, uint64_t *bits)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bits };

	if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) == 0)
		return 0;
	int e = errno;
	log_err("KVM_GET_DIRTY_LOG of slot %u: %s", slot, strerror(e));
	return -e;
}

static uint64_t count_bits(const uint64_t *bits, size_t words)
{
	uint64_t n = 0;

	for (size_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(bits[w]);
	return n;
}

int vm_dirty_take(struct vm *vm, struct vm_dirty *d)
{
	const struct guest_mem *mem = &vm->mem;

	memset(d, 0, sizeof(*d));
	for (unsigned i = 0; i < mem->nregions; i++) {
		size_t words = guest_mem_dirty_words(mem->regions[i].size);
		d->bits[i] = calloc(words, sizeof(uint64_t));
		if (!d->bits[i]) {
			vm_dirty_give_back(vm, d);
			vm_dirty_free(d);
			return -ENOMEM;
		}
		d->nregions = i + 1;
		int r = take_kvm_log(vm, i, d->bits[i]);
		if (r < 0) {
			vm_dirty_give_back(vm, d);
			vm_dirty_free(d);
			return r;
		}
		guest_mem_take_dirty(mem, i, d->bits[i]);
		d->pages += count_bits(d->bits[i], words);
	}
	return 0;
}

void vm_dirty_give_back(struct vm *vm, const struct vm_dirty *d)
{
	for (unsigned i = 0; i < d->nregions; i++) {
		const struct guest_mem_region *rg = &vm->mem.regions[i];
		for (uint64_t pg = 0; pg * GUEST_MEM_PAGE < rg->size; pg++)
			if (d->bits[i][pg / 64] >> (pg % 64) & 1)
				guest_mem_mark_dirty(&vm->mem, rg->gpa + pg * GUEST_MEM_PAGE, 1);
	}
}

int vm_dirty_clear(struct vm *vm)
{
	struct vm_dirty d;
	int r = vm_dirty_take(vm, &d);

	if (!r)
		vm_dirty_free(&d);
	return r;
}

void vm_dirty_free(struct vm_dirty *d)
{
	for (unsigned i = 0; i < d->nregions; i++)
		free(d->bits[i]);
	memset(d, 0, sizeof(*d));
}
