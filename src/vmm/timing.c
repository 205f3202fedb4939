/* Moments of a boot: see timing.h. */
#include "vmm/timing.h"

#include <stdbool.h>

#include "core/clock.h"

void vm_timing_mark(uint64_t *slot)
{
	uint64_t zero = 0;

	if (__atomic_load_n(slot, __ATOMIC_RELAXED))
		return;
	/* Only the first event counts; later ones lose the exchange. */
	__atomic_compare_exchange_n(slot, &zero, clock_now_ns(), false, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
}
