/*
 * Holding the vCPUs at a clean point: between two KVM_RUNs, with the exit
 * before it handled, so nothing a vCPU started is half done.
 *
 * The controller (the event loop's thread) asks with vcpu_pause_request(),
 * kicks every vCPU out of KVM_RUN (vcpu_kick), and waits until each has
 * parked (vcpu_pause_wait, bounded, so the loop can serve what a vCPU in
 * an exit still waits for and try again). vcpu_pause_release() lets them
 * run on. A stop (run_state) wakes parked vCPUs too: vcpu_pause_end().
 */
#ifndef KVMINI_VMM_VCPU_PAUSE_H
#define KVMINI_VMM_VCPU_PAUSE_H

#include <pthread.h>
#include <stdbool.h>

struct vcpu_pause {
	pthread_mutex_t lock;
	pthread_cond_t changed;      /* parked, requested or ended changed */
	int requested;               /* atomic: vCPUs read it before each KVM_RUN */
	bool ended;                  /* under lock: parking is over for good */
	unsigned parked;             /* under lock */
};

int vcpu_pause_init(struct vcpu_pause *p);
void vcpu_pause_destroy(struct vcpu_pause *p);

/* --- vCPU threads -------------------------------------------------------- */

/* Is a pause asked for? (One atomic load, before each KVM_RUN.) */
bool vcpu_pause_pending(const struct vcpu_pause *p);

/* Park until released or ended. */
void vcpu_pause_park(struct vcpu_pause *p);

/* --- the controller ------------------------------------------------------ */

void vcpu_pause_request(struct vcpu_pause *p);

/* Wait up to @timeout_ms for @n parked vCPUs; true when they are. */
bool vcpu_pause_wait(struct vcpu_pause *p, unsigned n, int timeout_ms);

/* The pause is over: parked vCPUs run on. */
void vcpu_pause_release(struct vcpu_pause *p);

/* The run is ending: parked vCPUs leave and none parks again. */
void vcpu_pause_end(struct vcpu_pause *p);

#endif
