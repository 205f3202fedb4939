/*
 * Event loop deferred work: it runs after the round's callbacks, in the
 * order queued, once however often it was queued; work queued while the
 * deferred list runs waits for the next round (a self-requeueing drain
 * cannot starve the fds); a cancelled item never runs, also when it is
 * cancelled by an item of the same round.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/compiler.h"
#include "core/event_loop.h"

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

int main(void)
{
	RUN_TEST(test_order_and_once);
	RUN_TEST(test_requeue_waits_a_round);
	RUN_TEST(test_cancel);
	return CHECK_DONE();
}
