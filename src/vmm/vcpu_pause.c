/* Holding the vCPUs between two KVM_RUNs (see vcpu_pause.h). */
#include "vmm/vcpu_pause.h"

#include <errno.h>
#include <time.h>

#include "core/atomics.h"
#include "core/clock.h"

int vcpu_pause_init(struct vcpu_pause *p)
{
	pthread_condattr_t attr;
	int r;

	*p = (struct vcpu_pause){ 0 };
	r = pthread_mutex_init(&p->lock, NULL);
	if (r)
		return -r;
	/* Waits are bounded on the monotonic clock: a clock step must not
	 * stretch them. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	r = pthread_cond_init(&p->changed, &attr);
	pthread_condattr_destroy(&attr);
	if (r) {
		pthread_mutex_destroy(&p->lock);
		return -r;
	}
	return 0;
}

void vcpu_pause_destroy(struct vcpu_pause *p)
{
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
}

bool vcpu_pause_pending(const struct vcpu_pause *p)
{
	return load_acquire(&p->requested) != 0;
}

void vcpu_pause_park(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	if (!p->ended && load_relaxed(&p->requested)) {
		p->parked++;
		pthread_cond_broadcast(&p->changed);
		while (!p->ended && load_relaxed(&p->requested))
			pthread_cond_wait(&p->changed, &p->lock);
		p->parked--;
	}
	pthread_mutex_unlock(&p->lock);
}

void vcpu_pause_request(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	store_release(&p->requested, 1);
	pthread_mutex_unlock(&p->lock);
}

bool vcpu_pause_wait(struct vcpu_pause *p, unsigned n, int timeout_ms)
{
	uint64_t end = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
	const struct timespec until = { (time_t)(end / 1000000000u), (long)(end % 1000000000u) };

	pthread_mutex_lock(&p->lock);
	while (p->parked < n && !p->ended)
		if (pthread_cond_timedwait(&p->changed, &p->lock, &until) == ETIMEDOUT)
			break;
	bool all = p->parked >= n && !p->ended;
	pthread_mutex_unlock(&p->lock);
	return all;
}

void vcpu_pause_release(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	store_release(&p->requested, 0);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

void vcpu_pause_end(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	p->ended = true;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}
