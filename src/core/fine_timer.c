/* One-shot microsecond timers (see fine_timer.h). */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/fine_timer.h"
#include "core/log.h"

static void timer_set(struct fine_timer *t, uint64_t delay_ns)
{
	/* A zero it_value disarms the timerfd. */
	struct itimerspec its = {
		.it_value = { .tv_sec = (time_t)(delay_ns / 1000000000u),
			      .tv_nsec = (long)(delay_ns % 1000000000u) },
	};

	if (timerfd_settime(t->fd, 0, &its, NULL) < 0)
		log_warn("%s: timerfd_settime: %s", t->src.name, strerror(errno));
}

static void on_expired(struct event_source *src, uint32_t events)
{
	struct fine_timer *t = container_of(src, struct fine_timer, src);
	uint64_t expirations;
	(void)events;

	/* Nonblocking: a cancel after the expiry leaves nothing to read. */
	if (read(t->fd, &expirations, sizeof(expirations)) < 0 || !t->armed)
		return;
	t->armed = false;
	t->fn(t);
}

int fine_timer_init(struct fine_timer *t, struct event_loop *loop, fine_timer_fn fn,
		    const char *name)
{
	*t = (struct fine_timer){ .fd = -1, .fn = fn };
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0)
		return -errno;
	int r = event_loop_watch(loop, &t->src, t->fd, EPOLLIN, on_expired, name);
	if (r < 0) {
		close(t->fd);
		t->fd = -1;
		return r;
	}
	t->loop = loop;
	return 0;
}

void fine_timer_destroy(struct fine_timer *t)
{
	if (!t->loop)
		return;
	event_loop_unwatch(t->loop, &t->src);
	close(t->fd);
	t->fd = -1;
	t->loop = NULL;
	t->armed = false;
}

void fine_timer_arm(struct fine_timer *t, uint64_t delay_ns)
{
	timer_set(t, delay_ns ? delay_ns : 1);
	t->armed = true;
}

void fine_timer_cancel(struct fine_timer *t)
{
	if (!t->armed)
		return;
	timer_set(t, 0);
	t->armed = false;
}
