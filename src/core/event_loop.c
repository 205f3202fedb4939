#include "core/event_loop.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/atomics.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "core/poll_window.h"

#define EVENTS_PER_WAIT 64

int event_loop_init(struct event_loop *loop)
{
	loop->stop = false;
	loop->deferred = loop->running = NULL;
	loop->deferred_tail = &loop->deferred;
	loop->timers = loop->expiring = NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	return loop->epfd < 0 ? -errno : 0;
}

void event_loop_destroy(struct event_loop *loop)
{
	if (loop->epfd >= 0)
		close(loop->epfd);
	loop->epfd = -1;
}

int event_loop_watch(struct event_loop *loop, struct event_source *src, int fd,
		     uint32_t events, event_fn fn, const char *name)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (src->registered && src->fd != fd)
		event_loop_unwatch(loop, src);
	int op = src->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	src->fd = fd;
	src->fn = fn;
	src->name = name;
	if (epoll_ctl(loop->epfd, op, fd, &ev) < 0)
		return -errno;
	src->registered = true;
	return 0;
}

int event_loop_modify(struct event_loop *loop, struct event_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (!src->registered)
		return -ENOENT;
	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0 ? -errno : 0;
}

void event_loop_unwatch(struct event_loop *loop, struct event_source *src)
{
	if (!src->registered)
		return;
	/* The fd may already be closed by its owner; ignore the error then. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, src->fd, NULL);
	src->registered = false;
}

void event_loop_defer(struct event_loop *loop, struct event_deferred *d, event_deferred_fn fn)
{
	if (d->queued)
		return;
	d->fn = fn;
	d->next = NULL;
	d->queued = true;
	*loop->deferred_tail = d;
	loop->deferred_tail = &d->next;
}

/* Unlink @d from the list at @head; true if it was there. */
static bool unlink_from(struct event_deferred **head, struct event_deferred *d,
			struct event_deferred ***tail)
{
	for (struct event_deferred **pp = head; *pp; pp = &(*pp)->next) {
		if (*pp != d)
			continue;
		*pp = d->next;
		if (tail && *tail == &d->next)
			*tail = pp;
		return true;
	}
	return false;
}

void event_loop_cancel(struct event_loop *loop, struct event_deferred *d)
{
	if (!d->queued)
		return;
	/* Queued for the next round, or still waiting in the round running. */
	if (!unlink_from(&loop->deferred, d, &loop->deferred_tail))
		unlink_from(&loop->running, d, NULL);
	d->queued = false;
}

/* Run what was queued before this call; work queued meanwhile waits for
 * the next round, so a drain that keeps requeueing cannot starve the fds. */
static int run_deferred(struct event_loop *loop)
{
	int ran = 0;

	loop->running = loop->deferred;
	loop->deferred = NULL;
	loop->deferred_tail = &loop->deferred;
	while (loop->running && !loop->stop) {
		struct event_deferred *d = loop->running;
		loop->running = d->next;
		d->queued = false;
		d->fn(d);
		ran++;
	}
	/* Stopped midway: what did not run goes first in the next round. */
	if (loop->running) {
		struct event_deferred *last = loop->running;
		while (last->next)
			last = last->next;
		last->next = loop->deferred;
		if (!loop->deferred)
			loop->deferred_tail = &last->next;
		loop->deferred = loop->running;
		loop->running = NULL;
	}
	return ran;
}

/*
 * Timers: a list sorted by deadline and epoll_wait's timeout, not a timerfd.
 * Timers are armed on the loop's thread only, so the next epoll_wait always
 * sees the earliest deadline: no fd to create, and no system call to arm or
 * cancel (the rate limiters re-arm on every refusal). The price is
 * millisecond resolution, rounded up so that a timer never runs early;
 * every owner waits a millisecond or more anyway. Owners have a handful of
 * timers each, so an insertion walk beats a heap's bookkeeping.
 */

/* Link @t in before the first timer due later (after those due with it). */
static void timer_insert(struct event_loop *loop, struct event_timer *t)
{
	struct event_timer **pp = &loop->timers;

	while (*pp && (*pp)->deadline_ns <= t->deadline_ns)
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
}

/* Unlink @t from the list at @head; true if it was there. */
static bool timer_unlink(struct event_timer **head, struct event_timer *t)
{
	for (struct event_timer **pp = head; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			return true;
		}
	}
	return false;
}

void event_loop_timer_arm_at(struct event_loop *loop, struct event_timer *t, event_timer_fn fn,
			     uint64_t deadline_ns)
{
	event_loop_timer_cancel(loop, t);
	t->fn = fn;
	t->deadline_ns = deadline_ns;
	t->armed = true;
	timer_insert(loop, t);
}

void event_loop_timer_arm(struct event_loop *loop, struct event_timer *t, event_timer_fn fn,
			  uint64_t delay_ns)
{
	uint64_t now = clock_now_ns();

	/* Saturate: a huge delay means "not in this lifetime", not "now". */
	uint64_t deadline = delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns;
	event_loop_timer_arm_at(loop, t, fn, deadline);
}

void event_loop_timer_cancel(struct event_loop *loop, struct event_timer *t)
{
	if (!t->armed)
		return;
	/* Pending, or due in the round running but not yet run. */
	if (!timer_unlink(&loop->timers, t))
		timer_unlink(&loop->expiring, t);
	t->armed = false;
}

/* The epoll_wait timeout: @timeout_ms, shortened to the earliest timer. */
static int wait_ms(const struct event_loop *loop, int timeout_ms)
{
	if (loop->deferred)
		return 0;
	if (!loop->timers)
		return timeout_ms;
	uint64_t now = clock_now_ns(), due = loop->timers->deadline_ns;
	if (due <= now)
		return 0;
	uint64_t left = due - now, ms = left / 1000000 + (left % 1000000 != 0);
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < ms)
		return timeout_ms;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Run the timers due now. One armed again meanwhile waits for the next
 * round, even when due at once: a timer re-armed for "now" cannot hold the
 * loop. */
static int run_timers(struct event_loop *loop)
{
	uint64_t now = clock_now_ns();
	struct event_timer **split = &loop->timers;
	int ran = 0;

	while (*split && (*split)->deadline_ns <= now)
		split = &(*split)->next;
	if (split == &loop->timers)
		return 0;
	loop->expiring = loop->timers;
	loop->timers = *split;
	*split = NULL;
	while (loop->expiring && !loop->stop) {
		struct event_timer *t = loop->expiring;
		loop->expiring = t->next;
		t->armed = false;
		t->fn(t);
		ran++;
	}
	/* Stopped midway: what did not run stays armed for the next round. */
	while (loop->expiring) {
		struct event_timer *t = loop->expiring;
		loop->expiring = t->next;
		timer_insert(loop, t);
	}
	return ran;
}

/* --- notifiers --------------------------------------------------------------- */

static void on_notified(struct event_source *src, uint32_t events)
{
	struct event_notifier *n = container_of(src, struct event_notifier, src);
	uint64_t count;

	/* Read first: a signal after this read comes with a new wake-up, so
	 * what its sender published before signalling is seen by a later call. */
	if (read(src->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("%s: eventfd read: %s", src->name, strerror(errno));
	n->fn(n);
}

int event_notifier_init(struct event_loop *loop, struct event_notifier *n, event_notifier_fn fn,
			const char *name)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	memset(n, 0, sizeof(*n));
	if (fd < 0)
		return -errno;
	int r = event_loop_watch(loop, &n->src, fd, EPOLLIN, on_notified, name);
	if (r < 0) {
		close(fd);
		return r;
	}
	n->fn = fn;
	return 0;
}

int event_notifier_signal(struct event_notifier *n)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so a wake-up is pending anyway. */
	if (write(n->src.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

void event_notifier_destroy(struct event_loop *loop, struct event_notifier *n)
{
	if (!n->fn)
		return;
	event_loop_unwatch(loop, &n->src);
	close(n->src.fd);
	n->fn = NULL;
}

int event_loop_once(struct event_loop *loop, int timeout_ms)
{
	struct epoll_event evs[EVENTS_PER_WAIT];
	int n = epoll_wait(loop->epfd, evs, EVENTS_PER_WAIT, wait_ms(loop, timeout_ms));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n && !loop->stop; i++) {
		struct event_source *src = evs[i].data.ptr;
		/* A callback earlier in this batch may have unwatched this source. */
		if (src->registered)
			src->fn(src, evs[i].events);
	}
	return n + run_timers(loop) + run_deferred(loop);
}

int event_loop_run(struct event_loop *loop)
{
	while (!loop->stop) {
		int r = event_loop_once(loop, -1);
		if (r < 0) {
			log_err("event loop: epoll_wait: %s", strerror(-r));
			return r;
		}
	}
	return 0;
}

int event_loop_run_polling(struct event_loop *loop, uint64_t poll_max_ns, uint64_t *polled)
{
	struct poll_window win;
	bool polling = false;
	uint64_t last_work = 0;

	if (!poll_max_ns)
		return event_loop_run(loop);
	poll_window_init(&win, poll_max_ns);
	while (!loop->stop) {
		int r = event_loop_once(loop, polling ? 0 : -1);
		uint64_t now = clock_now_ns();

		if (r < 0) {
			log_err("event loop: epoll_wait: %s", strerror(-r));
			return r;
		}
		if (r > 0) {
			if (polling)
				store_relaxed(polled, *polled + 1);
			else if (last_work)
				poll_window_woken(&win, now - last_work);
			last_work = now;
			polling = win.ns > 0;
		} else if (polling && now - last_work >= win.ns) {
			polling = false;
		} else if (polling) {
			cpu_relax();
		}
	}
	return 0;
}

void event_loop_quit(struct event_loop *loop)
{
	loop->stop = true;
}

void event_loop_rearm(struct event_loop *loop)
{
	loop->stop = false;
}
