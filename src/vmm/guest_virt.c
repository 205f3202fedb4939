/* Guest-virtual access page by page: see guest_virt.h. */
#include "vmm/guest_virt.h"

#include <errno.h>
#include <string.h>

#include "core/compiler.h"

/* Bytes from @gva to the end of its page. */
static size_t rest_of_page(uint64_t gva)
{
	return (size_t)(GUEST_VIRT_PAGE - (gva & (GUEST_VIRT_PAGE - 1)));
}

size_t guest_virt_copy(struct guest_virt *gv, uint64_t gva, void *buf, size_t len, bool write)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		size_t chunk = MIN(len - done, rest_of_page(gva));
		struct guest_virt_page page;
		if (gv->translate(gv, gva, &page) < 0 || (write && !page.writable))
			break;
		uint8_t *host = guest_mem_ptr(gv->mem, page.gpa, chunk);
		if (!host)
			break;
		if (write) {
			memcpy(host, p + done, chunk);
			guest_mem_mark_dirty(gv->mem, page.gpa, chunk);   /* not in KVM's log */
		} else
			memcpy(p + done, host, chunk);
		done += chunk;
		gva += chunk;
	}
	return done;
}

int guest_virt_read(struct guest_virt *gv, uint64_t gva, void *buf, size_t len)
{
	return guest_virt_copy(gv, gva, buf, len, false) == len ? 0 : -EFAULT;
}

int guest_virt_write(struct guest_virt *gv, uint64_t gva, const void *buf, size_t len)
{
	/* The copy only reads @buf when writing to the guest. */
	return guest_virt_copy(gv, gva, (void *)buf, len, true) == len ? 0 : -EFAULT;
}
