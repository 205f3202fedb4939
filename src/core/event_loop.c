#include "core/event_loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/log.h"

#define EVENTS_PER_WAIT 64

int event_loop_init(struct event_loop *loop)
{
	loop->stop = false;
	loop->deferred = loop->running = NULL;
	loop->deferred_tail = &loop->deferred;
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

int event_loop_once(struct event_loop *loop, int timeout_ms)
{
	struct epoll_event evs[EVENTS_PER_WAIT];

	if (loop->deferred)
		timeout_ms = 0;
	int n = epoll_wait(loop->epfd, evs, EVENTS_PER_WAIT, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n && !loop->stop; i++) {
		struct event_source *src = evs[i].data.ptr;
		/* A callback earlier in this batch may have unwatched this source. */
		if (src->registered)
			src->fn(src, evs[i].events);
	}
	return n + run_deferred(loop);
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

void event_loop_quit(struct event_loop *loop)
{
	loop->stop = true;
}
