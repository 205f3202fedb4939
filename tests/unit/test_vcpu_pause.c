/*
 * Unit tests of the vCPU pause (src/vmm/vcpu_pause.c) without KVM: threads
 * that loop as vCPU threads do (check for a pause, park, "run" a step)
 * stop stepping once all have parked, step again after the release, and
 * leave for good at the end; a wait for more vCPUs than there are times
 * out; a release before the vCPUs saw the request leaves none parked.
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "check.h"
#include "core/atomics.h"
#include "vmm/vcpu_pause.h"

#define NTHREADS 4

struct fake_vcpu {
	struct vcpu_pause *pause;
	int stop;                    /* atomic */
	unsigned long steps;         /* atomic */
	pthread_t thread;
};

static void *fake_vcpu_thread(void *arg)
{
	struct fake_vcpu *v = arg;

	while (!load_acquire(&v->stop)) {
		if (vcpu_pause_pending(v->pause)) {
			vcpu_pause_park(v->pause);
			continue;
		}
		fetch_add_relaxed(&v->steps, 1);    /* one KVM_RUN's worth */
		sched_yield();
	}
	return NULL;
}

static unsigned long total_steps(struct fake_vcpu *v)
{
	unsigned long n = 0;

	for (int i = 0; i < NTHREADS; i++)
		n += load_relaxed(&v[i].steps);
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void start(struct vcpu_pause *p, struct fake_vcpu *v)
{
	for (int i = 0; i < NTHREADS; i++) {
		v[i] = (struct fake_vcpu){ .pause = p };
		CHECK_EQ(pthread_create(&v[i].thread, NULL, fake_vcpu_thread, &v[i]), 0);
	}
}

/* As vm_join does: the stop flag, then the end of parking. */
static void stop(struct vcpu_pause *p, struct fake_vcpu *v)
{
	for (int i = 0; i < NTHREADS; i++)
		store_release(&v[i].stop, 1);
	vcpu_pause_end(p);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(v[i].thread, NULL);
}

static void test_park_and_release(void)
{
	struct vcpu_pause p;
	struct fake_vcpu v[NTHREADS];

	CHECK_EQ(vcpu_pause_init(&p), 0);
	start(&p, v);
	for (int round = 0; round < 20; round++) {
		vcpu_pause_request(&p);
		CHECK(vcpu_pause_wait(&p, NTHREADS, 5000));
		unsigned long at_pause = total_steps(v);
		sleep_ms(20);
		CHECK_EQ(total_steps(v), at_pause);
		vcpu_pause_release(&p);
		for (int i = 0; i < 500 && total_steps(v) == at_pause; i++)
			sleep_ms(1);
		CHECK(total_steps(v) > at_pause);
	}
	stop(&p, v);
	vcpu_pause_destroy(&p);
}

static void test_wait_times_out(void)
{
	struct vcpu_pause p;
	struct fake_vcpu v[NTHREADS];

	CHECK_EQ(vcpu_pause_init(&p), 0);
	start(&p, v);
	vcpu_pause_request(&p);
	CHECK(!vcpu_pause_wait(&p, NTHREADS + 1, 50));
	CHECK(vcpu_pause_wait(&p, NTHREADS, 5000));
	vcpu_pause_release(&p);
	stop(&p, v);
	vcpu_pause_destroy(&p);
}

/* The end wakes parked vCPUs without a release, and none parks after. */
static void test_end_while_parked(void)
{
	struct vcpu_pause p;
	struct fake_vcpu v[NTHREADS];

	CHECK_EQ(vcpu_pause_init(&p), 0);
	start(&p, v);
	vcpu_pause_request(&p);
	CHECK(vcpu_pause_wait(&p, NTHREADS, 5000));
	stop(&p, v);                     /* joins: returns only if all left */
	CHECK(!vcpu_pause_wait(&p, 1, 10));
	vcpu_pause_park(&p);             /* ended: returns at once */
	vcpu_pause_destroy(&p);
}

static void test_release_before_seen(void)
{
	struct vcpu_pause p;

	CHECK_EQ(vcpu_pause_init(&p), 0);
	vcpu_pause_request(&p);
	CHECK(vcpu_pause_pending(&p));
	vcpu_pause_release(&p);
	CHECK(!vcpu_pause_pending(&p));
	vcpu_pause_park(&p);             /* no request: returns at once */
	CHECK(vcpu_pause_wait(&p, 0, 10));
	vcpu_pause_destroy(&p);
}

int main(void)
{
	RUN_TEST(test_park_and_release);
	RUN_TEST(test_wait_times_out);
	RUN_TEST(test_end_while_parked);
	RUN_TEST(test_release_before_seen);
	return CHECK_DONE();
}
