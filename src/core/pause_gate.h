/*
 * A pause gate for a pool of worker threads: the place where workers wait
 * for work, and where a controller (the event-loop thread resetting the
 * device, a snapshot) can stop them at a request boundary.
 *
 * A worker calls pause_gate_enter() before it takes a request and
 * pause_gate_leave() once that request is fully answered. While the gate is
 * paused no worker enters, so after pause_gate_pause() and
 * pause_gate_wait_idle() no request is between "taken" and "answered": each
 * is either still where the producer put it (the avail ring) or done.
 *
 * The gate's mutex also guards the owner's notion of "there is work"
 * (checked by the @ready callback under the lock), so a producer that makes
 * work visible under pause_gate_lock() and then calls pause_gate_wake()
 * cannot race with a worker deciding to sleep.
 *
 * Calling context: any thread. pause_gate_wait_idle() must not be called by
 * a worker that is inside the gate (it would wait for itself).
 */
#ifndef KVMINI_CORE_PAUSE_GATE_H
#define KVMINI_CORE_PAUSE_GATE_H

#include <pthread.h>
#include <stdbool.h>

struct pause_gate {
	pthread_mutex_t lock;
	pthread_cond_t work;      /* workers wait here: resume, new work, shutdown */
	pthread_cond_t idle;      /* controllers wait here for busy == 0 */
	/* All below are protected by @lock; @holds and @shut are also stored
	 * atomically, for pause_gate_closing() without it. */
	unsigned busy;            /* workers between enter and leave */
	unsigned holds;           /* pauses not yet resumed: closed while > 0 */
	bool shut;
	unsigned long pauses;     /* times pause_gate_pause closed an open gate */
};

/* The gate starts paused (one hold): nothing runs until pause_gate_resume(). */
int pause_gate_init(struct pause_gate *g);
void pause_gate_destroy(struct pause_gate *g);

void pause_gate_lock(struct pause_gate *g);
void pause_gate_unlock(struct pause_gate *g);
/* Wake one waiting worker (call with the lock held, after making work
 * visible). */
void pause_gate_wake(struct pause_gate *g);

/*
 * pause_gate_enter() - wait until the gate is open and there is work.
 * @ready: called with the lock held; returns true when the caller has work
 *         (it may record what in @arg). Called again after every wake-up.
 *
 * Returns true with the caller counted busy, or false once the gate is shut
 * (the caller's thread should end).
 */
bool pause_gate_enter(struct pause_gate *g, bool (*ready)(void *arg), void *arg);

/* Enter without waiting: false when the gate is paused or shut (the caller
 * must then not touch the queues). */
bool pause_gate_try_enter(struct pause_gate *g);

/* A pause or the shutdown wants the workers out: read without the lock,
 * by a worker inside that polls for more work instead of leaving. */
bool pause_gate_closing(struct pause_gate *g);

/* The caller's request is answered. */
void pause_gate_leave(struct pause_gate *g);

/* Stop letting workers in; those inside finish their request. Pauses
 * nest: each holder (a reset, the VM's pause, a snapshot) resumes once,
 * and the gate opens when the last hold goes. */
void pause_gate_pause(struct pause_gate *g);
/* Drop one hold; the last lets workers in again (never once shut). */
void pause_gate_resume(struct pause_gate *g);
/* Block until no worker is inside. Meaningful while paused or shut. */
void pause_gate_wait_idle(struct pause_gate *g);
/* Close for good: every waiting and every future enter returns false. */
void pause_gate_shutdown(struct pause_gate *g);

#endif
