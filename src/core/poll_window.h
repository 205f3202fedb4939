/*
 * An adaptive busy-poll window: how long a thread that just did some work
 * keeps looking for more before it sleeps. It grows while the next event
 * comes soon after the thread would have slept, and shrinks when events
 * come further apart than the longest window, so a busy stream is polled
 * and a quiet device costs nothing. KVM's halt polling (halt_poll_ns) and
 * QEMU's AioContext polling (poll-max-ns) adapt the same way.
 *
 * Nothing here is atomic: a window's owner serializes its use (one thread,
 * or a lock: virtio-fs keeps one per request queue under the queue's lock).
 */
#ifndef KVMINI_CORE_POLL_WINDOW_H
#define KVMINI_CORE_POLL_WINDOW_H

#include <stdint.h>

/* The first window after none, and the shortest kept when shrinking: a
 * wake-up on a virtualized host costs tens of µs, so less is not worth a
 * spin. */
#define POLL_WINDOW_START_NS 8000u

struct poll_window {
	uint64_t max_ns;        /* the longest window; 0: never poll */
	uint64_t ns;            /* the current window, 0..max_ns */
};

/* Start with no window: the first events show whether polling pays. */
static inline void poll_window_init(struct poll_window *p, uint64_t max_ns)
{
	p->max_ns = max_ns;
	p->ns = 0;
}

/*
 * poll_window_woken() - the thread slept (a poll, if any, found nothing) and
 * an event came @waited_ns after its last work. A wait no longer than the
 * longest window means a longer poll would have caught it: double the
 * window (from POLL_WINDOW_START_NS, at most max_ns). A longer wait
 * halves it, down to none.
 */
static inline void poll_window_woken(struct poll_window *p, uint64_t waited_ns)
{
	uint64_t start = POLL_WINDOW_START_NS < p->max_ns ? POLL_WINDOW_START_NS : p->max_ns;

	if (waited_ns <= p->max_ns) {
		uint64_t grown = p->ns ? p->ns * 2 : start;
		p->ns = grown < p->max_ns ? grown : p->max_ns;
	} else {
		p->ns /= 2;
		if (p->ns < start)
			p->ns = 0;
	}
}

#endif
