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

int event_loop_once(struct event_loop *loop, int timeout_ms)
{
	struct epoll_event evs[EVENTS_PER_WAIT];

	int n = epoll_wait(loop->epfd, evs, EVENTS_PER_WAIT, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n && !loop->stop; i++) {
		struct event_source *src = evs[i].data.ptr;
		/* A callback earlier in this batch may have unwatched this source. */
		if (src->registered)
			src->fn(src, evs[i].events);
	}
	return n;
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
