/*
 * Event loop deferred work: it runs after the round's callbacks, in the
 * order queued, once however often it was queued; work queued while the
 * deferred list runs waits for the next round (a self-requeueing drain
 * cannot starve the fds); a cancelled item never runs, also when it is
 * cancelled by an item of the same round.
 *
 * Timers: they run in deadline order (arming order among equals), never
 * before the deadline; a cancelled one never runs, cancelling an unarmed
 * one is a no-op; one re-armed from its callback runs once per round; an
 * idle wait ends at the earliest deadline; a thousand timers keep order.
 *
 * Notifiers: signals from another thread wake an idle wait, and several
 * before the loop ran make one call.
 *
 * Fine timers (core/fine_timer.h): one fires once, not before its delay,
 * and ends an idle wait (microseconds: well under the loop's millisecond
 * timers); a cancelled one never fires, also when its timerfd already
 * expired; arming an armed one moves it; destroy is safe on one never set
 * up and on one destroyed already.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/atomics.h"
#include "core/clock.h"
#include "core/poll_window.h"
#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/fine_timer.h"

static struct event_loop loop;
static char trace[64];
static unsigned ntrace;

struct item {
	struct event_deferred d;
	char name;
	unsigned requeue;              /* times to queue itself again */
	struct item *cancel;           /* cancel this one when run */
};

static void run_item(struct event_deferred *d)
{
	struct item *it = container_of(d, struct item, d);

	trace[ntrace++] = it->name;
	trace[ntrace] = '\0';
	if (it->cancel)
		event_loop_cancel(&loop, &it->cancel->d);
	if (it->requeue) {
		it->requeue--;
		event_loop_defer(&loop, d, run_item);
	}
}

static void reset_trace(void)
{
	ntrace = 0;
	trace[0] = '\0';
}

static void test_order_and_once(void)
{
	struct item a = { .name = 'a' }, b = { .name = 'b' };

	CHECK_EQ(event_loop_init(&loop), 0);
	reset_trace();
	event_loop_defer(&loop, &a.d, run_item);
	event_loop_defer(&loop, &b.d, run_item);
	event_loop_defer(&loop, &a.d, run_item);    /* already queued: no-op */
	CHECK_EQ(event_loop_once(&loop, -1), 2);      /* no wait: work is queued */
	CHECK(!strcmp(trace, "ab"));
	CHECK_EQ(event_loop_once(&loop, 0), 0);
	event_loop_destroy(&loop);
}

static void test_requeue_waits_a_round(void)
{
	struct item a = { .name = 'a', .requeue = 2 }, b = { .name = 'b' };
	CHECK_EQ(event_loop_init(&loop), 0);
	reset_trace();
	event_loop_defer(&loop, &a.d, run_item);
	event_loop_defer(&loop, &b.d, run_item);
	CHECK_EQ(event_loop_once(&loop, 0), 2);
	CHECK(!strcmp(trace, "ab"));
	CHECK_EQ(event_loop_once(&loop, 0), 1);
	CHECK(!strcmp(trace, "aba"));
	CHECK_EQ(event_loop_once(&loop, 0), 1);
	CHECK(!strcmp(trace, "abaa"));
	CHECK_EQ(event_loop_once(&loop, 0), 0);
	event_loop_destroy(&loop);
}

static void test_cancel(void)
{
	struct item a = { .name = 'a' }, b = { .name = 'b' }, c = { .name = 'c' };

	CHECK_EQ(event_loop_init(&loop), 0);
	reset_trace();
	/* Cancelled while queued: never runs; the tail stays right. */
	event_loop_defer(&loop, &a.d, run_item);
	event_loop_defer(&loop, &b.d, run_item);
	event_loop_cancel(&loop, &b.d);
	event_loop_defer(&loop, &c.d, run_item);
	CHECK_EQ(event_loop_once(&loop, 0), 2);
	CHECK(!strcmp(trace, "ac"));
	/* Cancelled by an item of the same round, before its turn. */
	reset_trace();
	a.cancel = &c;
	event_loop_defer(&loop, &a.d, run_item);
	event_loop_defer(&loop, &b.d, run_item);
	event_loop_defer(&loop, &c.d, run_item);
	CHECK_EQ(event_loop_once(&loop, 0), 2);
	CHECK(!strcmp(trace, "ab"));
	CHECK(!c.d.queued);
	event_loop_cancel(&loop, &c.d);              /* not queued: no-op */
	CHECK_EQ(event_loop_once(&loop, 0), 0);
	event_loop_destroy(&loop);
}

/* --- timers ---------------------------------------------------------------- */

#define MS 1000000ull

struct titem {
	struct event_timer t;
	char name;
	unsigned rearm;                /* times to arm itself again, due at once */
	struct titem *cancel;          /* cancel this one when run */
	bool early;                    /* ran before its deadline */
};

static void run_titem(struct event_timer *t)
{
	struct titem *it = container_of(t, struct titem, t);

	it->early |= clock_now_ns() < t->deadline_ns;
	trace[ntrace++] = it->name;
	trace[ntrace] = '\0';
	if (it->cancel)
		event_loop_timer_cancel(&loop, &it->cancel->t);
	if (it->rearm) {
		it->rearm--;
		event_loop_timer_arm(&loop, t, run_titem, 0);
	}
}

/* Run rounds until @n timers and deferred items ran, or a second passed. */
static void run_until(int n)
{
	uint64_t end = clock_now_ns() + 1000 * MS;

	while (n > 0 && clock_now_ns() < end)
		n -= event_loop_once(&loop, 100);
}

static void test_timer_order(void)
{
	struct titem a = { .name = 'a' }, b = { .name = 'b' }, c = { .name = 'c' },
		     d = { .name = 'd' };
	uint64_t now = clock_now_ns();

	CHECK_EQ(event_loop_init(&loop), 0);
	reset_trace();
	event_loop_timer_arm_at(&loop, &c.t, run_titem, now + 6 * MS);
	event_loop_timer_arm_at(&loop, &b.t, run_titem, now + 4 * MS);
	event_loop_timer_arm_at(&loop, &d.t, run_titem, now + 4 * MS);
	event_loop_timer_arm(&loop, &a.t, run_titem, 2 * MS);
	run_until(4);
	CHECK(!strcmp(trace, "abdc"));
	CHECK(!a.early && !b.early && !c.early && !d.early);
	CHECK(!event_timer_armed(&a.t) && !event_timer_armed(&c.t));
	/* Arming an armed timer moves it. */
	reset_trace();
	event_loop_timer_arm(&loop, &a.t, run_titem, 2 * MS);
	event_loop_timer_arm(&loop, &b.t, run_titem, 4 * MS);
	event_loop_timer_arm(&loop, &a.t, run_titem, 6 * MS);
	run_until(2);
	CHECK(!strcmp(trace, "ba"));
	CHECK(!a.early);
	event_loop_destroy(&loop);
}

static void test_timer_cancel(void)
{
	struct titem a = { .name = 'a' }, b = { .name = 'b' }, c = { .name = 'c' };

	CHECK_EQ(event_loop_init(&loop), 0);
	reset_trace();
	event_loop_timer_cancel(&loop, &c.t);        /* never armed: no-op */
	event_loop_timer_arm(&loop, &a.t, run_titem, MS);
	event_loop_timer_arm(&loop, &b.t, run_titem, 2 * MS);
	event_loop_timer_cancel(&loop, &a.t);
	event_loop_timer_cancel(&loop, &a.t);        /* cancelled already: no-op */
	run_until(1);
	CHECK(!strcmp(trace, "b"));
	/* Cancelled by a timer due in the same round, before its turn. */
	reset_trace();
	uint64_t past = clock_now_ns() - MS;
	a.cancel = &b;
	event_loop_timer_arm_at(&loop, &a.t, run_titem, past);
	event_loop_timer_arm_at(&loop, &b.t, run_titem, past);
	event_loop_timer_arm_at(&loop, &c.t, run_titem, past);
	CHECK_EQ(event_loop_once(&loop, 0), 2);
	CHECK(!strcmp(trace, "ac"));
	CHECK(!event_timer_armed(&b.t));
	CHECK_EQ(event_loop_once(&loop, 20), 0);
	event_loop_destroy(&loop);
}

static void test_timer_rearm_waits_a_round(void)
{
	struct titem a = { .name = 'a', .rearm = 2 };

	CHECK_EQ(event_loop_init(&loop), 0);
	reset_trace();
	event_loop_timer_arm(&loop, &a.t, run_titem, 0);
	CHECK_EQ(event_loop_once(&loop, 0), 1);
	CHECK_EQ(event_loop_once(&loop, 0), 1);
	CHECK_EQ(event_loop_once(&loop, 0), 1);
	CHECK(!strcmp(trace, "aaa"));
	CHECK_EQ(event_loop_once(&loop, 0), 0);
	event_loop_destroy(&loop);
}

/* An idle wait with no limit of its own ends when the timer is due. */
static void test_timer_ends_wait(void)
{
	struct titem a = { .name = 'a' };

	CHECK_EQ(event_loop_init(&loop), 0);
	reset_trace();
	uint64_t t0 = clock_now_ns();
	event_loop_timer_arm(&loop, &a.t, run_titem, 30 * MS);
	CHECK_EQ(event_loop_once(&loop, -1), 1);
	uint64_t waited = clock_now_ns() - t0;
	CHECK(waited >= 30 * MS && waited < 500 * MS);
	CHECK(!a.early);
	/* A shorter limit of the caller's still holds, also against a timer
	 * as far as the clock goes. */
	event_loop_timer_arm(&loop, &a.t, run_titem, 500 * MS);
	CHECK_EQ(event_loop_once(&loop, 10), 0);
	CHECK(event_timer_armed(&a.t));
	event_loop_timer_arm(&loop, &a.t, run_titem, UINT64_MAX);
	t0 = clock_now_ns();
	CHECK_EQ(event_loop_once(&loop, 20), 0);
	CHECK(clock_now_ns() - t0 >= 15 * MS);
	event_loop_timer_cancel(&loop, &a.t);
	event_loop_destroy(&loop);
}

#define MANY 1000

static struct event_timer many[MANY];
static uint64_t many_last;
static unsigned many_ran, many_misordered;

static void run_many(struct event_timer *t)
{
	if (t->deadline_ns < many_last || clock_now_ns() < t->deadline_ns)
		many_misordered++;
	many_last = t->deadline_ns;
	many_ran++;
}

static void test_many_timers(void)
{
	uint64_t now = clock_now_ns();

	CHECK_EQ(event_loop_init(&loop), 0);
	srand(7);
	for (unsigned i = 0; i < MANY; i++)
		event_loop_timer_arm_at(&loop, &many[i], run_many,
					now + (uint64_t)(rand() % 20000) * 1000);
	/* Cancel every third; move every seventh later (some cancelled ones too). */
	for (unsigned i = 0; i < MANY; i += 3)
		event_loop_timer_cancel(&loop, &many[i]);
	for (unsigned i = 1; i < MANY; i += 7)
		event_loop_timer_arm_at(&loop, &many[i], run_many, now + 25 * MS);
	unsigned want = 0;
	for (unsigned i = 0; i < MANY; i++)
		want += event_timer_armed(&many[i]);
	CHECK(want > MANY / 2 && want < MANY);
	many_last = many_ran = many_misordered = 0;
	run_until((int)want);
	CHECK_EQ(many_ran, want);
	CHECK_EQ(many_misordered, 0);
	CHECK_EQ(event_loop_once(&loop, 0), 0);
	event_loop_destroy(&loop);
}

/* --- notifiers ---------------------------------------------------------------- */

static unsigned notified;

static void on_notify(struct event_notifier *n)
{
	notified++;
}

static void *signal_thrice(void *arg)
{
	for (int i = 0; i < 3; i++)
		CHECK_EQ(event_notifier_signal(arg), 0);
	return NULL;
}

static void test_notifier(void)
{
	struct event_notifier n, unset = { .fn = NULL };
	pthread_t th;

	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(event_notifier_init(&loop, &n, on_notify, "test notifier"), 0);
	notified = 0;
	CHECK_EQ(pthread_create(&th, NULL, signal_thrice, &n), 0);
	pthread_join(th, NULL);
	CHECK_EQ(event_loop_once(&loop, 1000), 1);
	CHECK_EQ(notified, 1);
	CHECK_EQ(event_loop_once(&loop, 0), 0);
	/* Another thread wakes an idle wait. */
	CHECK_EQ(pthread_create(&th, NULL, signal_thrice, &n), 0);
	CHECK_EQ(event_loop_once(&loop, 5000), 1);
	pthread_join(th, NULL);
	event_loop_once(&loop, 0);                  /* the rest of the signals, if any */
	CHECK(notified == 2 || notified == 3);
	event_notifier_destroy(&loop, &n);
	event_notifier_destroy(&loop, &n);           /* twice: no-op */
	event_notifier_destroy(&loop, &unset);       /* never set up: no-op */
	event_loop_destroy(&loop);
}

/* ---- event_loop_run_polling ---- */

static unsigned poll_rounds;
static unsigned poll_quit_at;

static void on_poll_notify(struct event_notifier *n)
{
	(void)n;
	store_seq_cst(&poll_rounds, poll_rounds + 1);
	if (poll_rounds == poll_quit_at)
		event_loop_quit(&loop);
}

struct polling_run {
	uint64_t poll_ns;
	uint64_t polled;
};

static void *run_polling(void *arg)
{
	struct polling_run *p = arg;

	CHECK_EQ(event_loop_run_polling(&loop, p->poll_ns, &p->polled), 0);
	return NULL;
}

/* Signal @n and wait until its callback has run @rounds times in all. */
static void signal_and_wait(struct event_notifier *n, unsigned rounds)
{
	CHECK_EQ(event_notifier_signal(n), 0);
	for (int i = 0; i < 5000 && load_seq_cst(&poll_rounds) < rounds; i++)
		usleep(1000);
	CHECK_EQ(load_seq_cst(&poll_rounds), rounds);
}

/*
 * The window starts at none and grows while rounds come soon after the
 * thread slept: with a 1 s ceiling and rounds about a millisecond apart it
 * passes the gap within a dozen rounds, and from then on every round is
 * found by polling (counted). With a 1 ms ceiling, a signal 200 ms after
 * the last work finds the thread asleep (not counted). Both runs end on quit.
 */
static void test_run_polling(void)
{
	struct event_notifier n;
	pthread_t th;
	struct polling_run long_poll = { .poll_ns = 1000ull * 1000 * 1000 };
	struct polling_run short_poll = { .poll_ns = 1000 * 1000 };
	const unsigned rounds = 40;

	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(event_notifier_init(&loop, &n, on_poll_notify, "poll notifier"), 0);
	poll_rounds = 0;
	poll_quit_at = rounds;
	CHECK_EQ(pthread_create(&th, NULL, run_polling, &long_poll), 0);
	for (unsigned i = 1; i <= rounds; i++)
		signal_and_wait(&n, i);
	pthread_join(th, NULL);
	CHECK(long_poll.polled >= rounds - 15 && long_poll.polled < rounds);

	event_loop_rearm(&loop);
	poll_rounds = 0;
	poll_quit_at = 2;
	CHECK_EQ(pthread_create(&th, NULL, run_polling, &short_poll), 0);
	signal_and_wait(&n, 1);
	usleep(200 * 1000);
	signal_and_wait(&n, 2);
	pthread_join(th, NULL);
	CHECK_EQ(short_poll.polled, 0);
	event_notifier_destroy(&loop, &n);
	event_loop_destroy(&loop);
}

/* The window doubles from POLL_WINDOW_START_NS while each wake-up comes
 * within the ceiling, holds at the ceiling, halves on a longer wait and is
 * gone below the start; a ceiling under the start is the start. */
static void test_poll_window(void)
{
	struct poll_window p;

	poll_window_init(&p, 100000);
	CHECK_EQ(p.ns, 0);
	poll_window_woken(&p, 100000);
	CHECK_EQ(p.ns, POLL_WINDOW_START_NS);
	poll_window_woken(&p, 50);
	CHECK_EQ(p.ns, 2 * POLL_WINDOW_START_NS);
	for (int i = 0; i < 10; i++)
		poll_window_woken(&p, 90000);
	CHECK_EQ(p.ns, 100000);
	poll_window_woken(&p, 100001);
	CHECK_EQ(p.ns, 50000);
	poll_window_woken(&p, 5 * 1000 * 1000);
	poll_window_woken(&p, 5 * 1000 * 1000);
	CHECK_EQ(p.ns, 12500);
	poll_window_woken(&p, 5 * 1000 * 1000);
	CHECK_EQ(p.ns, 0);
	poll_window_woken(&p, 5 * 1000 * 1000);
	CHECK_EQ(p.ns, 0);

	poll_window_init(&p, 3000);
	poll_window_woken(&p, 2000);
	CHECK_EQ(p.ns, 3000);
	poll_window_woken(&p, 2000);
	CHECK_EQ(p.ns, 3000);
	poll_window_woken(&p, 4000);
	CHECK_EQ(p.ns, 0);

	poll_window_init(&p, 0);
	poll_window_woken(&p, 0);
	CHECK_EQ(p.ns, 0);
}

static unsigned fine_fired;

static void on_fine(struct fine_timer *t)
{
	(void)t;
	fine_fired++;
}

static void test_fine_timer(void)
{
	struct fine_timer t, never = { 0 };

	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(fine_timer_init(&t, &loop, on_fine, "test fine timer"), 0);
	fine_fired = 0;
	/* Fires once, after its delay, ending a wait with no limit. */
	uint64_t t0 = clock_now_ns();
	fine_timer_arm(&t, 200 * 1000);
	CHECK(fine_timer_armed(&t));
	CHECK_EQ(event_loop_once(&loop, -1), 1);
	uint64_t waited = clock_now_ns() - t0;
	CHECK_EQ(fine_fired, 1u);
	CHECK(waited >= 200 * 1000 && waited < 500 * MS);
	CHECK(!fine_timer_armed(&t));
	CHECK_EQ(event_loop_once(&loop, 20), 0);
	CHECK_EQ(fine_fired, 1u);
	/* Cancelled before it is due, and after its timerfd expired. */
	fine_timer_arm(&t, 100 * 1000);
	fine_timer_cancel(&t);
	CHECK_EQ(event_loop_once(&loop, 5), 0);
	fine_timer_arm(&t, 1000);
	usleep(2000);
	fine_timer_cancel(&t);
	fine_timer_cancel(&t);                       /* cancelled already: no-op */
	event_loop_once(&loop, 5);
	CHECK_EQ(fine_fired, 1u);
	/* Arming an armed timer moves it. */
	fine_timer_arm(&t, 1000);
	fine_timer_arm(&t, 300 * MS);
	CHECK_EQ(event_loop_once(&loop, 20), 0);
	CHECK_EQ(fine_fired, 1u);
	fine_timer_arm(&t, 0);
	CHECK_EQ(event_loop_once(&loop, -1), 1);
	CHECK_EQ(fine_fired, 2u);
	fine_timer_destroy(&t);
	fine_timer_destroy(&t);                      /* twice: no-op */
	fine_timer_destroy(&never);                  /* never set up: no-op */
	event_loop_destroy(&loop);
}

int main(void)
{
	RUN_TEST(test_order_and_once);
	RUN_TEST(test_requeue_waits_a_round);
	RUN_TEST(test_cancel);
	RUN_TEST(test_timer_order);
	RUN_TEST(test_timer_cancel);
	RUN_TEST(test_timer_rearm_waits_a_round);
	RUN_TEST(test_timer_ends_wait);
	RUN_TEST(test_many_timers);
	RUN_TEST(test_notifier);
	RUN_TEST(test_fine_timer);
	RUN_TEST(test_run_polling);
	RUN_TEST(test_poll_window);
	return CHECK_DONE();
}
