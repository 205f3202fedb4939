/*
 * How a run of the VM ends: one stop request, its exit status and reason,
 * and an eventfd that tells the main thread.
 *
 * Anything (a vCPU seeing a reset, a device seeing a power-off, the event
 * loop seeing a signal) calls run_state_request_stop(); the first caller's
 * status and reason win and stop_fd becomes readable. vCPU threads check
 * run_state_stop_requested() before each KVM_RUN; run_state_stop() sets the
 * same flag without a status, for the main thread ending the vCPUs
 * (vm_join, which then kicks each one out of KVM_RUN).
 */
#ifndef KVMINI_VMM_RUN_STATE_H
#define KVMINI_VMM_RUN_STATE_H

#include <stdbool.h>

/* Exit statuses of `kvmini run` decided by the guest (1 and 2 are kvmini's
 * own runtime and usage failures). */
enum vm_exit_status {
	VM_EXIT_OK = 0,              /* reboot (i8042), KVM system event */
	VM_EXIT_TRIPLE_FAULT = 3,    /* the guest reset itself by a triple fault */
	VM_EXIT_GUEST_ERROR = 4,     /* KVM could not run the guest (internal error) */
	VM_EXIT_GUEST_CRASH = 5,     /* KVM reported a guest crash */
};

struct run_state {
	int stop_fd;                 /* eventfd, readable once a stop is requested */
	int stopping;                /* atomic: 1 once a stop is requested or begun */
	/* Written once, by the first run_state_request_stop; read by the main
	 * thread after stop_fd is readable. */
	int exit_status;
	char exit_reason[160];
};

/* Running, with no stop requested. Returns 0 or -errno (the eventfd). */
int run_state_init(struct run_state *rs);
void run_state_destroy(struct run_state *rs);

/* Ask the run to end with @status (first caller wins). Any thread. */
void run_state_request_stop(struct run_state *rs, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool run_state_stop_requested(const struct run_state *rs);

/* Make every later run_state_stop_requested() true, leaving the status as
 * the first request set it. Main thread, before it kicks the vCPUs. */
void run_state_stop(struct run_state *rs);

#endif
