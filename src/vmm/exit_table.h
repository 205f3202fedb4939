/*
 * What a vCPU does with each exit from KVM_RUN: a table of handlers keyed
 * by the exit reason (KVM_EXIT_*). The VM fills it while it is being built
 * (exit_io.h and exit_events.h for every VM, compat/ for its workarounds);
 * a vCPU thread only looks handlers up, so the table takes no lock once the
 * vCPUs run. vcpu.c knows the table, never a handler.
 *
 * A reason may have a few handlers, tried newest first: a workaround
 * registered after the default handler sees the exit first and passes on
 * what it does not take (compat/step_over.h before the internal-error
 * report).
 */
#ifndef KVMINI_VMM_EXIT_TABLE_H
#define KVMINI_VMM_EXIT_TABLE_H

#include <stdint.h>

/* KVM numbers its exit reasons below this (41 in Linux 6.12). */
#define EXIT_TABLE_REASONS 64u
/* Handlers per reason: a workaround in front of the default. */
#define EXIT_TABLE_DEPTH 2u

struct vcpu;

enum exit_action {
	EXIT_RESUME,                 /* handled: run the guest again */
	EXIT_STOP,                   /* this vCPU stops (the handler asked the run to end) */
	EXIT_PASS,                   /* not this handler's: try the next */
};

/* One handler, embedded in what it needs (container_of). Calling context:
 * the vCPU thread of @v, any vCPU. */
struct exit_handler {
	enum exit_action (*handle)(struct exit_handler *h, struct vcpu *v);
};

struct exit_table {
	struct exit_handler *h[EXIT_TABLE_REASONS][EXIT_TABLE_DEPTH];   /* newest first */
};

/* Put @h in front of @reason's handlers. Returns 0, -EINVAL for a reason
 * out of range or -ENOSPC when the reason has EXIT_TABLE_DEPTH already. */
int exit_table_add(struct exit_table *t, uint32_t reason, struct exit_handler *h);

/* Hand exit @reason of @v to its handlers until one takes it. EXIT_PASS
 * when none did (or @reason has none). */
enum exit_action exit_table_dispatch(const struct exit_table *t, uint32_t reason,
				     struct vcpu *v);

#endif
