/*
 * A small epoll loop: each watched fd has an event_source whose callback runs
 * on the loop's thread. Sources are embedded in their owners, which find
 * themselves again with container_of.
 *
 * Deferred work (struct event_deferred) runs on the loop's thread after the
 * callbacks of the current round, before the loop sleeps again: a drain that
 * used its budget continues there after other ready fds had their turn, and
 * without a system call to wake itself.
 *
 * Timers (struct event_timer) are one-shot: the callback runs on the loop's
 * thread once the deadline (CLOCK_MONOTONIC, core/clock.h) has passed, after
 * the round's fd callbacks and before its deferred work; a periodic owner
 * arms it again from the callback. Arming and cancelling are loop-thread
 * only, like deferred work.
 *
 * A notifier (struct event_notifier) is the way in from other threads: any
 * thread signals it, and its callback runs on the loop's thread; signals
 * before the callback ran make one call.
 */
#ifndef KVMINI_CORE_EVENT_LOOP_H
#define KVMINI_CORE_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct event_source;
typedef void (*event_fn)(struct event_source *src, uint32_t events);

struct event_source {
	int fd;
	event_fn fn;
	const char *name;     /* for messages */
	bool registered;
};

struct event_deferred;
typedef void (*event_deferred_fn)(struct event_deferred *d);

struct event_deferred {
	event_deferred_fn fn;
	struct event_deferred *next;
	bool queued;
};

struct event_timer;
typedef void (*event_timer_fn)(struct event_timer *t);

struct event_timer {
	event_timer_fn fn;
	uint64_t deadline_ns;        /* monotonic; meaningful while armed */
	struct event_timer *next;
	bool armed;
};

struct event_notifier;
typedef void (*event_notifier_fn)(struct event_notifier *n);

struct event_notifier {
	struct event_source src;     /* an eventfd */
	event_notifier_fn fn;        /* NULL: not set up (destroy is a no-op) */
};

struct event_loop {
	int epfd;
	volatile bool stop;
	struct event_deferred *deferred;        /* FIFO of work for the next round */
	struct event_deferred **deferred_tail;
	struct event_deferred *running;         /* the rest of the round being run */
	struct event_timer *timers;             /* armed, earliest deadline first */
	struct event_timer *expiring;           /* due ones of the round, not yet run */
};

int event_loop_init(struct event_loop *loop);
void event_loop_destroy(struct event_loop *loop);

/* Watch src->fd for @events (EPOLLIN, EPOLLOUT, ...). Re-adding a registered
 * source changes its events. Returns 0 or -errno. */
int event_loop_watch(struct event_loop *loop, struct event_source *src, int fd,
		     uint32_t events, event_fn fn, const char *name);
int event_loop_modify(struct event_loop *loop, struct event_source *src, uint32_t events);
void event_loop_unwatch(struct event_loop *loop, struct event_source *src);

/* Run @d->fn once in the next round (loop thread only); queuing it again
 * before it ran is a no-op. */
void event_loop_defer(struct event_loop *loop, struct event_deferred *d, event_deferred_fn fn);
/* Take @d off the queue if it is there (its owner is going away). */
void event_loop_cancel(struct event_loop *loop, struct event_deferred *d);

/* Run @fn once @delay_ns from now, or at the monotonic @deadline_ns. Arming
 * an armed timer moves it; timers due at the same time run in arming order. */
void event_loop_timer_arm(struct event_loop *loop, struct event_timer *t, event_timer_fn fn,
			  uint64_t delay_ns);
void event_loop_timer_arm_at(struct event_loop *loop, struct event_timer *t, event_timer_fn fn,
			     uint64_t deadline_ns);
/* Disarm @t; a no-op when it is not armed. */
void event_loop_timer_cancel(struct event_loop *loop, struct event_timer *t);

static inline bool event_timer_armed(const struct event_timer *t)
{
	return t->armed;
}

/* Set up @n on @loop (loop thread). 0, or -errno with @n not set up. */
int event_notifier_init(struct event_loop *loop, struct event_notifier *n, event_notifier_fn fn,
			const char *name);
/* Any thread: have @n's callback run. 0 or -errno. */
int event_notifier_signal(struct event_notifier *n);
/* Loop thread, once no thread signals any more. */
void event_notifier_destroy(struct event_loop *loop, struct event_notifier *n);

/* Run callbacks until event_loop_quit; returns 0, or -errno if epoll fails. */
int event_loop_run(struct event_loop *loop);
/* The same, but after a round that ran something keep looking for more
 * without sleeping (epoll_wait with no timeout) for an adaptive window of
 * at most @poll_max_ns (core/poll_window.h: it grows while events come
 * soon after the thread slept, and shrinks to none when they do not), so
 * work that comes meanwhile finds the thread awake, not parked on a
 * wake-up. Each round polling finds work in adds 1 to *@polled (a relaxed
 * store: only this thread writes it). @poll_max_ns 0: as event_loop_run. */
int event_loop_run_polling(struct event_loop *loop, uint64_t poll_max_ns, uint64_t *polled);
/* Run one round, waiting at most @timeout_ms (-1: forever; no longer than
 * the earliest timer; no wait while deferred work is queued), then the timers
 * due and the deferred work queued before the round. Returns the number of
 * events, timers and deferred items handled, or -errno. */
int event_loop_once(struct event_loop *loop, int timeout_ms);
void event_loop_quit(struct event_loop *loop);
/* Let a loop that quit run again (a thread stopped and started anew). Not
 * while it runs. */
void event_loop_rearm(struct event_loop *loop);

#endif
