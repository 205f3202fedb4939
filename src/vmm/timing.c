/* Moments of a boot: see timing.h. */
#include "vmm/timing.h"

#include <stdbool.h>

#include "core/atomics.h"
#include "core/clock.h"

void vm_timing_mark(uint64_t *slot)
{
	uint64_t zero = 0;

	if (load_relaxed(slot))
		return;
	/* Only the first event counts; later ones lose the exchange. */
	cas_relaxed(slot, &zero, clock_now_ns());
}
