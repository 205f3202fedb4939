/*
 * User-mode backend, "user[:OPTIONS]": a NAT in the monitor through
 * libslirp, like QEMU's user networking (options in slirp_opts.h).
 *
 * Event wiring, without a second thread: libslirp wants poll(), and gives
 * its sockets and their events through slirp_pollfds_fill. We keep them in
 * a private epoll set, which the main loop watches as one fd, and resync
 * that set after every call into libslirp (fill, then epoll_ctl only for
 * the fds whose events changed). Readiness comes from epoll_wait on the
 * private set, handed to slirp_pollfds_poll through get_revents. Timers
 * (slirp's own and the TCP timers behind fill's timeout) share one event-loop
 * timer, re-armed only when a deadline comes earlier than the armed one.
 *
 * libslirp keeps its clock ("curtime") only from slirp_pollfds_poll, and
 * stamps new UDP sockets with it; a guest frame after a long quiet spell
 * therefore runs a poll first, so that no new socket is born expired.
 *
 * Frames from slirp wait in a fixed queue until the device's RX drain
 * takes them (recv); slirp may make them anywhere, from inside send() too,
 * so the device is only told (rx_pending), never called into. While
 * frames wait, slirp's sockets are not polled: nothing more is read from
 * the host than the guest takes. Only when the queue is full is a frame
 * dropped (TCP then retransmits).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include "core/clock.h"
#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "net/backend.h"
#include "net/slirp_opts.h"

#define SLIRP_MTU 1500u
#define ETH_HDR_LEN 14u
/* Frames slirp builds are at most MTU plus the Ethernet header. */
#define SLIRP_SLOT_LEN 1536u
/* Room for what one poll of slirp's sockets makes (a TCP send window's
 * worth of segments for a few connections). */
#define SLIRP_RXQ_SLOTS 256u
/* Largest frame taken from the guest (the device's own cap). */
#define SLIRP_TX_FRAME_MAX 65557u
/* Ready sockets handled per wake-up; the rest stay ready (level-triggered). */
#define SLIRP_EVENTS_PER_POLL 64
/* A guest frame after this long without a poll refreshes slirp's clock. */
#define SLIRP_CLOCK_STALE_MS 250
/* fill's timeout when slirp has no timer running. */
#define SLIRP_IDLE_TIMEOUT_MS 1000u

_Static_assert(SLIRP_SLOT_LEN >= SLIRP_MTU + ETH_HDR_LEN, "a slot holds a full frame");

#define SLIRP_COUNTERS(X) \
	X(rx_queued,             "frames queued for the guest") \
	X(rx_dropped_queue_full, "frames dropped: the hold queue was full") \
	X(rx_dropped_oversize,   "frames dropped: larger than a hold-queue slot") \
	X(tx_dropped_oversize,   "TX frames dropped: empty or over 65557 bytes") \
	X(tx_guest_errors,       "guest misbehaviour libslirp found in TX frames") \
	X(rx_poll_errors,        "failed updates of the epoll set over libslirp's host sockets")

struct slirp_counters {
	SLIRP_COUNTERS(COUNTER_FIELD)
};

#define X(name, doc) COUNTER_DESC(struct slirp_counters, name, doc)
const struct counter_set slirp_counter_set = COUNTER_SET("slirp", SLIRP_COUNTERS(X));
#undef X

/* What we know of one fd number of slirp's. */
struct slirp_fd {
	uint32_t want;        /* epoll events asked for by the latest fill */
	uint32_t armed;       /* events registered in the private epoll set */
	bool registered;
	uint32_t revents;     /* readiness for the poll under way */
	uint32_t gen;         /* fill generation that last listed it */
	int idx;              /* its index in that fill */
};

struct slirp_timer {
	SlirpTimerCb cb;
	void *cb_opaque;
	int64_t expire_ms;    /* -1: not armed */
	struct slirp_timer *next;
};

struct slirp_slot {
	uint32_t len;
	uint8_t data[SLIRP_SLOT_LEN];
};

struct slirp_be {
	struct net_backend be;
	Slirp *slirp;
	struct slirp_opts opts;
	/* Set for an endpoint (net_slirp_create_endpoint): only a forward of
	 * one guest address and port to a unix socket, nothing else. */
	const struct slirp_endpoint *endpoint;
	int epfd;                    /* slirp's sockets */
	struct event_source ep_event;
	struct event_timer timer;    /* the earliest of slirp's deadlines */
	bool paused;                 /* frames wait for the guest: sockets not polled */
	int64_t last_poll_ms;
	/* fd number -> state; grown when slirp shows a higher fd. */
	struct slirp_fd *fds;
	unsigned nfds;
	/* The fds of the latest fill (index -> fd) and of the one before. */
	int *cur, *prev;
	unsigned ncur, nprev, list_cap;
	uint32_t gen;
	struct slirp_timer *timers;
	/* Frames waiting for the device's RX drain, a ring of fixed slots. */
	struct slirp_slot *rxq;
	unsigned rxq_head, rxq_count;
	uint8_t *txbuf;              /* a fragmented guest frame, linearised */
	struct slirp_counters counters;
};

static struct slirp_be *to_sb(struct net_backend *be)
{
	return container_of(be, struct slirp_be, be);
}

static int64_t now_ms(void)
{
	return (int64_t)clock_now_ms();
}

/* --- RX: slirp -> guest ---------------------------------------------------- */

static void sb_on_epoll(struct event_source *src, uint32_t events);

/* sb_pause - stop or resume polling slirp's sockets. */
static void sb_pause(struct slirp_be *sb, bool pause)
{
	if (sb->paused == pause)
		return;
	sb->paused = pause;
	if (pause) {
		event_loop_unwatch(sb->be.loop, &sb->ep_event);
	} else if (event_loop_watch(sb->be.loop, &sb->ep_event, sb->epfd, EPOLLIN,
				    sb_on_epoll, "slirp sockets")) {
		log_err("user: cannot watch slirp's sockets: %s", strerror(errno));
	}
}

/* sb_enqueue - keep a frame for the device's RX drain. */
static void sb_enqueue(struct slirp_be *sb, const void *buf, size_t len)
{
	if (len > SLIRP_SLOT_LEN) {
		sb->counters.rx_dropped_oversize++;
		return;
	}
	if (sb->rxq_count == SLIRP_RXQ_SLOTS) {
		sb->counters.rx_dropped_queue_full++;
		return;
	}
	struct slirp_slot *slot = &sb->rxq[(sb->rxq_head + sb->rxq_count) % SLIRP_RXQ_SLOTS];
	memcpy(slot->data, buf, len);
	slot->len = (uint32_t)len;
	if (sb->rxq_count++ == 0)
		net_backend_rx_pending(&sb->be);
	sb->counters.rx_queued++;
}

/* sb_send_packet - libslirp's way out: a frame for the guest. */
static ssize_t sb_send_packet(const void *buf, size_t len, void *opaque)
{
	sb_enqueue(opaque, buf, len);
	return (ssize_t)len;
}

/* sb_recv - the device takes the oldest frame; once none waits, slirp's
 * sockets are polled again. */
static ssize_t sb_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct slirp_be *sb = to_sb(be);

	if (!sb->rxq_count)
		return 0;
	struct slirp_slot *slot = &sb->rxq[sb->rxq_head];
	size_t len = slot->len;
	/* Never truncate: a frame bigger than the buffer is dropped. */
	bool fits = len <= iov_length(iov, iovcnt);
	if (fits)
		iov_from_buf(iov, iovcnt, 0, slot->data, len);
	sb->rxq_head = (sb->rxq_head + 1) % SLIRP_RXQ_SLOTS;
	if (--sb->rxq_count == 0)
		sb_pause(sb, false);
	return fits ? (ssize_t)len : -EMSGSIZE;
}

/* --- slirp's fds in the private epoll set ---------------------------------- */

static uint32_t to_epoll(int slirp_events)
{
	return (slirp_events & SLIRP_POLL_IN ? EPOLLIN : 0) |
	       (slirp_events & SLIRP_POLL_OUT ? EPOLLOUT : 0) |
	       (slirp_events & SLIRP_POLL_PRI ? EPOLLPRI : 0);
}

static int to_slirp(uint32_t events)
{
	return (events & EPOLLIN ? SLIRP_POLL_IN : 0) |
	       (events & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
	       (events & EPOLLPRI ? SLIRP_POLL_PRI : 0) |
	       (events & EPOLLERR ? SLIRP_POLL_ERR : 0) |
	       (events & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

/* sb_fd - state for @fd, growing the table when needed; NULL if impossible. */
static struct slirp_fd *sb_fd(struct slirp_be *sb, int fd)
{
	if (fd < 0)
		return NULL;
	if ((unsigned)fd >= sb->nfds) {
		unsigned n = MAX((unsigned)fd + 1, sb->nfds * 2);
		struct slirp_fd *fds = realloc(sb->fds, n * sizeof(*fds));
		if (!fds)
			return NULL;
		memset(fds + sb->nfds, 0, (n - sb->nfds) * sizeof(*fds));
		sb->fds = fds;
		sb->nfds = n;
	}
	return &sb->fds[fd];
}

/* sb_list_room - make the fd lists hold one more entry. */
static bool sb_list_room(struct slirp_be *sb)
{
	if (sb->ncur < sb->list_cap)
		return true;
	unsigned n = sb->list_cap ? sb->list_cap * 2 : 64;
	int *cur = realloc(sb->cur, n * sizeof(int));
	if (!cur)
		return false;
	sb->cur = cur;
	int *prev = realloc(sb->prev, n * sizeof(int));
	if (!prev)
		return false;
	sb->prev = prev;
	sb->list_cap = n;
	return true;
}

/* sb_add_poll - fill callback: slirp wants @fd watched for @events. */
static int sb_add_poll(int fd, int events, void *opaque)
{
	struct slirp_be *sb = opaque;
	struct slirp_fd *f = sb_fd(sb, fd);

	if (!f || (f->gen != sb->gen && !sb_list_room(sb))) {
		sb->counters.rx_poll_errors++;
		return -1;    /* slirp skips a socket with index -1 */
	}
	if (f->gen != sb->gen) {
		f->gen = sb->gen;
		f->want = 0;
		f->idx = (int)sb->ncur;
		sb->cur[sb->ncur++] = fd;
	}
	f->want |= to_epoll(events);
	return f->idx;
}

/* sb_get_revents - poll callback: readiness of the fill's entry @idx. */
static int sb_get_revents(int idx, void *opaque)
{
	struct slirp_be *sb = opaque;

	if (idx < 0 || (unsigned)idx >= sb->ncur)
		return 0;
	const struct slirp_fd *f = &sb->fds[sb->cur[idx]];
	return to_slirp(f->revents & (f->want | EPOLLERR | EPOLLHUP));
}

/* sb_epoll_set - register @fd with its wanted events. */
static void sb_epoll_set(struct slirp_be *sb, int fd, struct slirp_fd *f)
{
	struct epoll_event ev = { .events = f->want, .data.fd = fd };
	int op = f->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	int r = epoll_ctl(sb->epfd, op, fd, &ev);
	/* Our view can lag behind a close/reuse slirp did not announce. */
	if (r < 0 && errno == ENOENT)
		r = epoll_ctl(sb->epfd, EPOLL_CTL_ADD, fd, &ev);
	else if (r < 0 && errno == EEXIST)
		r = epoll_ctl(sb->epfd, EPOLL_CTL_MOD, fd, &ev);
	if (r < 0) {
		sb->counters.rx_poll_errors++;
		log_debug("user: epoll_ctl fd %d: %s", fd, strerror(errno));
		f->registered = false;
		return;
	}
	f->registered = true;
	f->armed = f->want;
}

/* sb_epoll_sync - apply the latest fill to the private epoll set. */
static void sb_epoll_sync(struct slirp_be *sb)
{
	for (unsigned i = 0; i < sb->ncur; i++) {
		struct slirp_fd *f = &sb->fds[sb->cur[i]];
		if (!f->registered || f->armed != f->want)
			sb_epoll_set(sb, sb->cur[i], f);
	}
	for (unsigned i = 0; i < sb->nprev; i++) {
		struct slirp_fd *f = &sb->fds[sb->prev[i]];
		if (f->gen != sb->gen && f->registered) {
			/* Fails harmlessly when slirp closed it already. */
			epoll_ctl(sb->epfd, EPOLL_CTL_DEL, sb->prev[i], NULL);
			f->registered = false;
		}
	}
}

/* --- timers -------------------------------------------------------------- */

static void sb_on_timer(struct event_timer *t);

/* sb_arm - make the timer fire by @deadline_ms unless it fires sooner. */
static void sb_arm(struct slirp_be *sb, int64_t deadline_ms)
{
	uint64_t deadline_ns = (uint64_t)MAX(deadline_ms, 0) * 1000000u;

	if (event_timer_armed(&sb->timer) && sb->timer.deadline_ns <= deadline_ns)
		return;
	event_loop_timer_arm_at(sb->be.loop, &sb->timer, sb_on_timer, deadline_ns);
}

/* sb_resync - after any call into slirp: its fds, then its next deadline. */
static void sb_resync(struct slirp_be *sb)
{
	uint32_t timeout = UINT32_MAX;
	int *t = sb->prev;

	sb->prev = sb->cur;
	sb->cur = t;
	sb->nprev = sb->ncur;
	sb->ncur = 0;
	sb->gen++;
	slirp_pollfds_fill(sb->slirp, &timeout, sb_add_poll, sb);
	sb_epoll_sync(sb);

	/* slirp caps its timeout at 1 s even with nothing to time; only a
	 * shorter one means a TCP or expiry timer is running. While paused
	 * those wait: their frames would only be queued. */
	if (!sb->paused && timeout < SLIRP_IDLE_TIMEOUT_MS)
		sb_arm(sb, now_ms() + timeout);
	for (struct slirp_timer *tm = sb->timers; tm; tm = tm->next)
		if (tm->expire_ms >= 0)
			sb_arm(sb, tm->expire_ms);
}

/* sb_run_timers - fire slirp's own timers that are due. */
static void sb_run_timers(struct slirp_be *sb)
{
	int64_t now = now_ms();

	for (struct slirp_timer *tm = sb->timers; tm; tm = tm->next) {
		if (tm->expire_ms >= 0 && tm->expire_ms <= now) {
			tm->expire_ms = -1;
			/* The callback may re-arm it (timer_mod), never free it. */
			tm->cb(tm->cb_opaque);
		}
	}
}

static void *sb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct slirp_be *sb = opaque;
	struct slirp_timer *tm = calloc(1, sizeof(*tm));

	if (!tm)
		return NULL;
	tm->cb = cb;
	tm->cb_opaque = cb_opaque;
	tm->expire_ms = -1;
	tm->next = sb->timers;
	sb->timers = tm;
	return tm;
}

static void sb_timer_free(void *timer, void *opaque)
{
	struct slirp_be *sb = opaque;

	for (struct slirp_timer **p = &sb->timers; *p; p = &(*p)->next) {
		if (*p == timer) {
			*p = ((struct slirp_timer *)timer)->next;
			free(timer);
			return;
		}
	}
}

static void sb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_be *sb = opaque;
	struct slirp_timer *tm = timer;

	tm->expire_ms = MAX(expire_ms, 0);
	sb_arm(sb, tm->expire_ms);
}

/* --- driving slirp --------------------------------------------------------- */

/*
 * sb_poll - one slirp_pollfds_poll: socket I/O unless paused (only the
 * clock and TCP timers then), then slirp's timers and a resync.
 */
static void sb_poll(struct slirp_be *sb)
{
	struct epoll_event evs[SLIRP_EVENTS_PER_POLL];
	int n = 0;

	if (!sb->paused) {
		n = epoll_wait(sb->epfd, evs, SLIRP_EVENTS_PER_POLL, 0);
		for (int i = 0; i < n; i++) {
			struct slirp_fd *f = sb_fd(sb, evs[i].data.fd);
			if (f)
				f->revents = evs[i].events;
		}
	}
	slirp_pollfds_poll(sb->slirp, n < 0, sb_get_revents, sb);
	for (int i = 0; i < n; i++) {
		if ((unsigned)evs[i].data.fd < sb->nfds)
			sb->fds[evs[i].data.fd].revents = 0;
	}
	sb->last_poll_ms = now_ms();
	sb_run_timers(sb);
	sb_resync(sb);
}

/* sb_service - a wake-up from the loop. Read nothing from the host while
 * frames still wait for the guest. */
static void sb_service(struct slirp_be *sb)
{
	if (sb->rxq_count)
		sb_pause(sb, true);
	sb_poll(sb);
}

static void sb_on_epoll(struct event_source *src, uint32_t events)
{
	sb_service(container_of(src, struct slirp_be, ep_event));
}

static void sb_on_timer(struct event_timer *t)
{
	sb_service(container_of(t, struct slirp_be, timer));
}

/* --- backend ops ------------------------------------------------------------ */

static int sb_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		   uint32_t token)
{
	struct slirp_be *sb = to_sb(be);
	size_t len = iov_length(iov, iovcnt);
	const uint8_t *frame = iovcnt == 1 ? iov[0].iov_base : sb->txbuf;

	if (len == 0 || len > SLIRP_TX_FRAME_MAX) {
		sb->counters.tx_dropped_oversize++;
		return -EMSGSIZE;
	}
	if (iovcnt != 1)
		iov_to_buf(iov, iovcnt, 0, sb->txbuf, len);
	if (now_ms() - sb->last_poll_ms >= SLIRP_CLOCK_STALE_MS)
		sb_poll(sb);
	/* What slirp answers right away (ARP, ICMP echo) joins the queue. */
	slirp_input(sb->slirp, frame, (int)len);
	sb_resync(sb);
	return 0;
}

/* "user": the backend's name on the command line. */
static void sb_visit_counters(struct net_backend *be, const struct counter_sink *sink)
{
	counters_visit(&slirp_counter_set, &to_sb(be)->counters, "user ", sink);
}

static void sb_destroy(struct net_backend *be)
{
	struct slirp_be *sb = to_sb(be);

	event_loop_unwatch(be->loop, &sb->ep_event);
	event_loop_timer_cancel(be->loop, &sb->timer);
	if (sb->slirp)
		slirp_cleanup(sb->slirp);
	while (sb->timers)
		sb_timer_free(sb->timers, sb);
	if (sb->epfd >= 0)
		close(sb->epfd);
	free(sb->fds);
	free(sb->cur);
	free(sb->prev);
	free(sb->rxq);
	free(sb->txbuf);
	free(sb);
}

/* --- snapshots: libslirp's own state ---------------------------------------- */

/* libslirp's state is its own format (its connections, ARP and NDP
 * tables), versioned by slirp_state_version(): kept as one blob. */
#define SLIRP_STATE_MAX (16u << 20)

static ssize_t sb_state_write(const void *buf, size_t len, void *opaque)
{
	state_put_bytes(opaque, buf, len);
	return (ssize_t)len;
}

static int sb_save_state(struct net_backend *be, struct state_writer *w, struct errbuf *eb)
{
	struct state_writer blob;

	state_writer_init(&blob);
	slirp_state_save(to_sb(be)->slirp, sb_state_write, &blob);
	state_put_u32(w, (uint32_t)slirp_state_version());
	state_put_u32(w, (uint32_t)blob.len);
	state_put_bytes(w, blob.buf, blob.len);
	bool failed = blob.failed;
	state_writer_free(&blob);
	if (failed) {
		errbuf_set(eb, "user networking: its state does not fit in memory");
		return -ENOMEM;
	}
	return 0;
}

struct sb_blob {
	const uint8_t *p;
	size_t len, off;
};

static ssize_t sb_state_read(void *buf, size_t len, void *opaque)
{
	struct sb_blob *b = opaque;
	size_t n = len < b->len - b->off ? len : b->len - b->off;

	memcpy(buf, b->p + b->off, n);
	b->off += n;
	return (ssize_t)n;
}

static bool sb_load_state(struct net_backend *be, struct state_reader *r)
{
	uint32_t version = state_get_u32(r);
	struct sb_blob b = { 0 };

	b.p = state_get_blob(r, SLIRP_STATE_MAX, &b.len);
	if (!b.p)
		return false;
	if (version > (uint32_t)slirp_state_version())
		return state_fail(r, "libslirp state version %u, this libslirp reads up to %d", version,
				  slirp_state_version());
	int e = slirp_state_load(to_sb(be)->slirp, (int)version, sb_state_read, &b);
	if (e < 0)
		return state_fail(r, "libslirp refused its state: %s", strerror(-e));
	return true;
}

/* The queued frame's length: the device gathers just the RX buffers it
 * needs, and the MMDS interceptor asks its endpoint before reading. */
static ssize_t sb_peek_len(struct net_backend *be)
{
	struct slirp_be *sb = to_sb(be);

	return sb->rxq_count ? (ssize_t)sb->rxq[sb->rxq_head].len : 0;
}

static const struct net_backend_ops slirp_ops = {
	.name = "user",
	.host_sockets = true,
	.send = sb_send,
	.recv = sb_recv,
	.peek_len = sb_peek_len,
	.destroy = sb_destroy,
	.visit_counters = sb_visit_counters,
	.save_state = sb_save_state,
	.load_state = sb_load_state,
};

/* --- libslirp callbacks and setup ------------------------------------------ */

static void sb_guest_error(const char *msg, void *opaque)
{
	struct slirp_be *sb = opaque;

	sb->counters.tx_guest_errors++;
	log_debug("user: guest error: %s", msg);
}

static int64_t sb_clock_get_ns(void *opaque)
{
	return (int64_t)clock_now_ns();
}

/* A new socket may reuse the number of a closed one: register it afresh. */
static void sb_register_poll_fd(int fd, void *opaque)
{
	struct slirp_be *sb = opaque;

	if (fd >= 0 && (unsigned)fd < sb->nfds)
		sb->fds[fd].registered = false;
}

/* Called before slirp closes @fd: forget it while it still names the socket. */
static void sb_unregister_poll_fd(int fd, void *opaque)
{
	struct slirp_be *sb = opaque;

	if (fd < 0 || (unsigned)fd >= sb->nfds || !sb->fds[fd].registered)
		return;
	epoll_ctl(sb->epfd, EPOLL_CTL_DEL, fd, NULL);
	sb->fds[fd].registered = false;
}

static void sb_notify(void *opaque)
{
	/* Only guestfwd users need this wake-up; none is configured. */
}

static const SlirpCb sb_callbacks = {
	.send_packet = sb_send_packet,
	.guest_error = sb_guest_error,
	.clock_get_ns = sb_clock_get_ns,
	.timer_new = sb_timer_new,
	.timer_free = sb_timer_free,
	.timer_mod = sb_timer_mod,
	.register_poll_fd = sb_register_poll_fd,
	.unregister_poll_fd = sb_unregister_poll_fd,
	.notify = sb_notify,
};

/* sb_new_slirp - the libslirp instance for the parsed options. */
static Slirp *sb_new_slirp(struct slirp_be *sb)
{
	const struct slirp_opts *o = &sb->opts;
	SlirpConfig cfg = {
		.version = 4,
		.restricted = o->restrict_guest,
		.in_enabled = true,
		.vnetwork = o->net,
		.vnetmask = o->mask,
		.vhost = o->host,
		.vdhcp_start = o->dhcp_start,
		.vnameserver = o->dns,
		.if_mtu = SLIRP_MTU,
		.if_mru = SLIRP_MTU,
		/* host= reaching the host's loopback is the point of it. */
		.disable_host_loopback = !!sb->endpoint,
		/* The protocol helpers (ftp, irc) are unsafe by libslirp's own word. */
		.enable_emu = false,
		/* An endpoint answers one TCP port and nothing else. */
		.disable_dns = !!sb->endpoint,
		.disable_dhcp = !!sb->endpoint,
	};
	return slirp_new(&cfg, &sb_callbacks, sb);
}

/* sb_add_forwards - listen on every hostfwd's host port. */
static int sb_add_forwards(struct slirp_be *sb, struct errbuf *eb)
{
	for (unsigned i = 0; i < sb->opts.nhostfwd; i++) {
		const struct slirp_hostfwd *f = &sb->opts.hostfwd[i];
		errno = 0;
		if (slirp_add_hostfwd(sb->slirp, f->udp, f->host_addr, f->host_port,
				      f->guest_addr, f->guest_port) < 0) {
			char addr[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &f->host_addr, addr, sizeof(addr));
			errbuf_set(eb, "user: hostfwd %s %s:%u: cannot listen%s%s",
				   f->udp ? "udp" : "tcp", addr, f->host_port,
				   errno ? ": " : "", errno ? strerror(errno) : "");
			return -EADDRINUSE;
		}
	}
	return 0;
}

/* sb_add_endpoint - the endpoint's one forward: guest TCP to addr:port
 * becomes a connection to the unix socket. */
static int sb_add_endpoint(struct slirp_be *sb, struct errbuf *eb)
{
	const struct slirp_endpoint *ep = sb->endpoint;
	struct in_addr addr = ep->addr;

	if (slirp_add_unix(sb->slirp, ep->unix_path, &addr, ep->port) < 0) {
		errbuf_set(eb, "user: libslirp refused the endpoint's forward");
		return -EINVAL;
	}
	return 0;
}

/* sb_setup - fds, buffers and the slirp instance. */
static int sb_setup(struct slirp_be *sb, struct errbuf *eb)
{
	sb->rxq = calloc(SLIRP_RXQ_SLOTS, sizeof(*sb->rxq));
	sb->txbuf = malloc(SLIRP_TX_FRAME_MAX);
	sb->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!sb->rxq || !sb->txbuf || sb->epfd < 0) {
		errbuf_set(eb, "user: setup: %s", strerror(errno ? errno : ENOMEM));
		return -ENOMEM;
	}
	sb->slirp = sb_new_slirp(sb);
	if (!sb->slirp) {
		errbuf_set(eb, "user: libslirp refused the configuration");
		return -EINVAL;
	}
	int r = sb->endpoint ? sb_add_endpoint(sb, eb) : sb_add_forwards(sb, eb);
	if (r)
		return r;
	r = event_loop_watch(sb->be.loop, &sb->ep_event, sb->epfd, EPOLLIN, sb_on_epoll,
			     "slirp sockets");
	if (r) {
		errbuf_set(eb, "user: event loop: %s", strerror(-r));
		return r;
	}
	/* The first poll starts slirp's clock (and lists its sockets). */
	sb_poll(sb);
	return 0;
}

/* sb_new - a backend with nothing set up yet (safe for sb_destroy); NULL
 * with "@what: out of memory" in @eb. */
static struct slirp_be *sb_new(struct event_loop *loop, const char *what, struct errbuf *eb)
{
	struct slirp_be *sb = calloc(1, sizeof(*sb));

	if (!sb) {
		errbuf_set(eb, "%s: out of memory", what);
		return NULL;
	}
	sb->be.ops = &slirp_ops;
	sb->be.loop = loop;
	sb->be.rx_fd = -1;
	sb->epfd = -1;
	return sb;
}

struct net_backend *net_slirp_create(struct event_loop *loop, const char *arg, struct errbuf *eb)
{
	struct slirp_be *sb = sb_new(loop, "user", eb);

	if (!sb)
		return NULL;
	if (slirp_opts_parse(&sb->opts, arg, eb) || sb_setup(sb, eb)) {
		sb_destroy(&sb->be);
		return NULL;
	}
	char net[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sb->opts.net, net, sizeof(net));
	log_info("user: network %s/%d, libslirp %s", net,
		 __builtin_popcount(sb->opts.mask.s_addr), slirp_version_string());
	return &sb->be;
}

/* endpoint_opts - a 169.254.0.0/16 network (link-local: the endpoint's
 * address is in it) whose libslirp "host" is a neighbour of the endpoint's
 * address, since libslirp forwards only addresses other than its own. The
 * guest's own address does not matter: libslirp learns it from the guest's
 * ARP request for the endpoint, and replies go where the request came from. */
static int endpoint_opts(struct slirp_opts *o, const struct slirp_endpoint *ep, struct errbuf *eb)
{
	uint32_t a = ntohl(ep->addr.s_addr);

	if ((a >> 16) != 0xa9feu || (a & 0xffffu) == 0 || (a & 0xffffu) == 0xffffu) {
		errbuf_set(eb, "endpoint: the address must be link-local (169.254.0.0/16)");
		return -EINVAL;
	}
	if (!ep->unix_path || !ep->port) {
		errbuf_set(eb, "endpoint: a unix socket path and a port are needed");
		return -EINVAL;
	}
	uint32_t host = (a & 0xffffu) == 0xfffeu ? a - 1 : a + 1;
	*o = (struct slirp_opts){
		.net.s_addr = htonl(0xa9fe0000u),
		.mask.s_addr = htonl(0xffff0000u),
		.host.s_addr = htonl(host),
		.dhcp_start.s_addr = htonl(host),
		.dns.s_addr = htonl(host),
		.restrict_guest = true,
	};
	return 0;
}

struct net_backend *net_slirp_create_endpoint(struct event_loop *loop,
					      const struct slirp_endpoint *ep, struct errbuf *eb)
{
	struct slirp_be *sb = sb_new(loop, "endpoint", eb);

	if (!sb)
		return NULL;
	sb->endpoint = ep;
	if (endpoint_opts(&sb->opts, ep, eb) || sb_setup(sb, eb)) {
		sb_destroy(&sb->be);
		return NULL;
	}
	return &sb->be;
}

struct in_addr net_slirp_endpoint_host(struct net_backend *be)
{
	return to_sb(be)->opts.host;
}
