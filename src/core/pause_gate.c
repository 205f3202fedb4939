/*
 * Pause gate: see pause_gate.h. One mutex, two condition variables (workers
 * wait on "work", controllers on "idle").
 */
#include "core/pause_gate.h"

#include <errno.h>

#include "core/atomics.h"

int pause_gate_init(struct pause_gate *g)
{
	int r = pthread_mutex_init(&g->lock, NULL);

	if (r)
		return -r;
	r = pthread_cond_init(&g->work, NULL);
	if (r) {
		pthread_mutex_destroy(&g->lock);
		return -r;
	}
	r = pthread_cond_init(&g->idle, NULL);
	if (r) {
		pthread_cond_destroy(&g->work);
		pthread_mutex_destroy(&g->lock);
		return -r;
	}
	g->busy = 0;
	g->holds = 1;
	g->shut = false;
	g->pauses = 0;
	return 0;
}

void pause_gate_destroy(struct pause_gate *g)
{
	pthread_cond_destroy(&g->idle);
	pthread_cond_destroy(&g->work);
	pthread_mutex_destroy(&g->lock);
}

void pause_gate_lock(struct pause_gate *g)
{
	pthread_mutex_lock(&g->lock);
}

void pause_gate_unlock(struct pause_gate *g)
{
	pthread_mutex_unlock(&g->lock);
}

void pause_gate_wake(struct pause_gate *g)
{
	pthread_cond_signal(&g->work);
}

bool pause_gate_enter(struct pause_gate *g, bool (*ready)(void *arg), void *arg)
{
	bool ok;

	pthread_mutex_lock(&g->lock);
	while (!g->shut && (g->holds || !ready(arg)))
		pthread_cond_wait(&g->work, &g->lock);
	ok = !g->shut;
	if (ok)
		g->busy++;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

bool pause_gate_try_enter(struct pause_gate *g)
{
	bool ok;

	pthread_mutex_lock(&g->lock);
	ok = !g->holds && !g->shut;
	if (ok)
		g->busy++;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

bool pause_gate_closing(struct pause_gate *g)
{
	return load_relaxed(&g->holds) || load_relaxed(&g->shut);
}

void pause_gate_leave(struct pause_gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->busy--;
	if (!g->busy)
		pthread_cond_broadcast(&g->idle);
	pthread_mutex_unlock(&g->lock);
}

void pause_gate_pause(struct pause_gate *g)
{
	pthread_mutex_lock(&g->lock);
	if (!g->holds)
		g->pauses++;
	store_relaxed(&g->holds, g->holds + 1);
	pthread_mutex_unlock(&g->lock);
}

void pause_gate_resume(struct pause_gate *g)
{
	pthread_mutex_lock(&g->lock);
	if (g->holds)
		store_relaxed(&g->holds, g->holds - 1);
	if (!g->holds)
		pthread_cond_broadcast(&g->work);
	pthread_mutex_unlock(&g->lock);
}

void pause_gate_wait_idle(struct pause_gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (g->busy)
		pthread_cond_wait(&g->idle, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

void pause_gate_shutdown(struct pause_gate *g)
{
	pthread_mutex_lock(&g->lock);
	store_relaxed(&g->shut, true);
	pthread_cond_broadcast(&g->work);
	pthread_mutex_unlock(&g->lock);
}
