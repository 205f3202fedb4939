/*
 * Guest-virtual access: [gva, gva + len) copied to or from a host buffer
 * through the guest's own page tables, one 4 KiB page at a time. Two
 * neighbouring virtual pages may map to guest-physical pages anywhere, so
 * each page is translated on its own and reaches guest RAM only through
 * guest_mem (bounds-checked there).
 *
 * The translation is a callback so the page splitting runs without KVM in
 * the unit tests; a vCPU supplies KVM_TRANSLATE (vcpu.c). Calling context:
 * the thread that owns the translation (for a vCPU, its own thread).
 */
#ifndef KVMINI_VMM_GUEST_VIRT_H
#define KVMINI_VMM_GUEST_VIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/guest_mem.h"

#define GUEST_VIRT_PAGE 4096ull

/* One translated page: where @gva lands in guest-physical memory. */
struct guest_virt_page {
	uint64_t gpa;
	bool writable;
};

struct guest_virt;

/* Translate the page holding @gva. Returns 0, or -EFAULT when the guest
 * has no mapping there. */
typedef int (*guest_virt_translate_fn)(struct guest_virt *gv, uint64_t gva,
				       struct guest_virt_page *out);

struct guest_virt {
	guest_virt_translate_fn translate;
	const struct guest_mem *mem;     /* guest RAM the pages must fall in */
};

/*
 * Copy up to @len bytes between @buf and guest-virtual @gva (to the guest
 * when @write). Stops at the first page that does not translate, is not
 * writable for a write, or is not guest RAM. Returns the bytes copied: @len
 * when all of it was, fewer when it stopped (what came before stays copied).
 */
size_t guest_virt_copy(struct guest_virt *gv, uint64_t gva, void *buf, size_t len, bool write);

/* All of [gva, gva + len) or nothing usable: 0, or -EFAULT. */
int guest_virt_read(struct guest_virt *gv, uint64_t gva, void *buf, size_t len);
int guest_virt_write(struct guest_virt *gv, uint64_t gva, const void *buf, size_t len);

#endif
