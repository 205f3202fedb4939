/*
 * Compatibility mode (compat.h): when KVM fails to emulate an int3 or an
 * fwait, do what the CPU would have done instead of ending the run: step
 * over the instruction, and for an int3 inject #BP (a trap: delivered with
 * RIP after the int3). Registered on KVM_EXIT_INTERNAL_ERROR in front of
 * the report (exit_events.h), which gets every other failure.
 */
#ifndef KVMINI_VMM_COMPAT_STEP_OVER_H
#define KVMINI_VMM_COMPAT_STEP_OVER_H

#include <stdint.h>

#include "vmm/exit_table.h"

struct step_over {
	struct exit_handler internal_error;
	uint64_t int3;               /* int3 stepped over (atomic) */
	uint64_t fwait;              /* fwait stepped over (atomic) */
};

/* Register on @t (after exit_events_init). 0 or -errno. */
int step_over_init(struct step_over *s, struct exit_table *t);

#endif
