/*
 * A one-shot timer with microsecond resolution on an event loop, backed by
 * a timerfd of its own. The loop's own timers (event_loop_timer_arm) wake
 * with epoll_wait's millisecond resolution, too coarse to wait for the
 * next frames of a stream (tens of microseconds).
 *
 * Calling context: the loop's thread, or any thread while it is stopped.
 */
#ifndef KVMINI_CORE_FINE_TIMER_H
#define KVMINI_CORE_FINE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/event_loop.h"

struct fine_timer;
typedef void (*fine_timer_fn)(struct fine_timer *t);

struct fine_timer {
	struct event_loop *loop;     /* set once init succeeded; NULL: none */
	int fd;
	bool armed;
	fine_timer_fn fn;
	struct event_source src;
};

/* 0 or -errno. */
int fine_timer_init(struct fine_timer *t, struct event_loop *loop, fine_timer_fn fn,
		    const char *name);
/* Safe on a zeroed timer that init never ran on. */
void fine_timer_destroy(struct fine_timer *t);
/* Run fn once @delay_ns from now; an armed timer moves. */
void fine_timer_arm(struct fine_timer *t, uint64_t delay_ns);
void fine_timer_cancel(struct fine_timer *t);

static inline bool fine_timer_armed(const struct fine_timer *t)
{
	return t->armed;
}

#endif
