/*
 * A small epoll loop: each watched fd has an event_source whose callback runs
 * on the loop's thread. Sources are embedded in their owners, which find
 * themselves again with container_of.
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

struct event_loop {
	int epfd;
	volatile bool stop;
};

int event_loop_init(struct event_loop *loop);
void event_loop_destroy(struct event_loop *loop);

/* Watch src->fd for @events (EPOLLIN, EPOLLOUT, ...). Re-adding a registered
 * source changes its events. Returns 0 or -errno. */
int event_loop_watch(struct event_loop *loop, struct event_source *src, int fd,
		     uint32_t events, event_fn fn, const char *name);
int event_loop_modify(struct event_loop *loop, struct event_source *src, uint32_t events);
void event_loop_unwatch(struct event_loop *loop, struct event_source *src);

/* Run callbacks until event_loop_quit; returns 0, or -errno if epoll fails. */
int event_loop_run(struct event_loop *loop);
/* Run one round, waiting at most @timeout_ms (-1: forever). Returns the
 * number of events handled or -errno. */
int event_loop_once(struct event_loop *loop, int timeout_ms);
void event_loop_quit(struct event_loop *loop);

#endif
