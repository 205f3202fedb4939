/*
 * Stream backend, "stream:PATH": frames over a unix stream socket, each one
 * preceded by its length as a 4-byte big-endian number: the framing of
 * qemu's "-netdev stream" and of passt.
 *
 * A queue backend. Reads land in a fixed buffer big enough for two maximal
 * frames, so one recv() usually yields a batch; the device's RX drain takes
 * the frames from it in place. While whole frames wait there the socket is
 * not read (the peer sees back-pressure, nothing is dropped).
 *
 * TX in batches, straight from guest memory: send() keeps the frame's
 * iovecs (NET_SEND_KEPT) behind a length prefix of its own, and flush(),
 * which the device calls at the end of each TX drain, writes every kept
 * record with one sendmsg(): one syscall per drain rather than per frame.
 * A batch ends early (flushed from send()) when its iovecs would pass
 * IOV_MAX, STREAM_KEPT_MAX records are kept, or the out buffer could not
 * hold the batch. What the socket does not take is copied to a fixed out
 * buffer drained on EPOLLOUT; send() only batches a frame while that
 * buffer has room for the whole batch, so a flush never fails for room.
 * When the buffer is full the device is told -EAGAIN and woken with
 * tx_unblocked. Frames in the caller's scratch memory (the token
 * NET_TOKEN_COPY: frames whose checksum or segments the device made,
 * soft_tx.h) cannot be kept: they join the batch as a copy in a stage
 * buffer, one memcpy against a syscall each. Each kept frame goes back
 * with tx_done once sent, copied or dropped.
 *
 * A peer that hangs up, fails, or breaks the framing is logged once and
 * reconnected every second; meanwhile TX frames are dropped and counted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/byteorder.h"
#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "net/backend.h"

/* Largest frame either way: qemu's and passt's limit (64 KiB of IP plus
 * Ethernet and VLAN headers). A length outside 1..this is a framing error. */
#define STREAM_FRAME_MAX 65550u
#define STREAM_HDR_LEN 4u
#define STREAM_RECORD_MAX (STREAM_HDR_LEN + STREAM_FRAME_MAX)
#define STREAM_RXBUF_LEN (2 * STREAM_RECORD_MAX)
#define STREAM_TXBUF_LEN (4 * STREAM_RECORD_MAX)
#define STREAM_RECONNECT_SEC 1
/* Reads per wake-up before other sources get their turn. */
#define STREAM_READ_BUDGET 8
/* Records batched for one sendmsg: a TX drain's budget (NET_BUDGET_FRAMES). */
#define STREAM_KEPT_MAX 256u

#define STREAM_COUNTERS(X) \
	X(tx_frames,               "frames taken for the peer") \
	X(tx_bytes,                "bytes of those frames, length prefix excluded") \
	X(tx_dropped_disconnected, "TX frames dropped: no peer connected") \
	X(tx_dropped_oversize,     "TX frames dropped: longer than 65550 bytes or empty") \
	X(tx_blocked,              "sends refused with -EAGAIN: the out buffer was full") \
	X(tx_sendmsg_calls,        "send and sendmsg calls writing TX records (a batch per call)") \
	X(tx_frames_copied,        "TX frames the socket did not take whole: copied to the out buffer") \
	X(rx_frames,               "frames received from the peer") \
	X(rx_bytes,                "bytes of those frames, length prefix excluded") \
	X(rx_paused,               "times the guest's RX refill found frames waiting for it") \
	X(rx_framing_errors,       "connections dropped for a bad length prefix") \
	X(disconnects,             "connections lost: hangup, error or framing") \
	X(connects,                "connections made, the first one included")

struct stream_counters {
	STREAM_COUNTERS(COUNTER_FIELD)
};

#define X(name, doc) COUNTER_DESC(struct stream_counters, name, doc)
const struct counter_set stream_counter_set = COUNTER_SET("stream", STREAM_COUNTERS(X));
#undef X

/* A frame send() kept: its length prefix, iovecs in tx_iov. */
struct stream_kept {
	uint8_t hdr[STREAM_HDR_LEN];
	uint32_t len;                 /* the frame, prefix excluded */
	uint32_t token;
	unsigned iovcnt;              /* in tx_iov, the prefix's included */
};

struct stream {
	struct net_backend be;
	struct sockaddr_un addr;
	int fd;                       /* -1 while disconnected */
	struct event_source sock_event;
	struct event_timer reconnect; /* armed while disconnected */
	uint32_t watched;             /* events currently asked for on fd */
	bool rx_paused;               /* whole frames wait in rxbuf: not reading */
	bool tx_blocked;              /* send() said -EAGAIN: owe tx_unblocked */
	bool down_logged;             /* the outage was reported; quiet until back */
	uint8_t *rxbuf;               /* [rx_off, rx_len): received, not yet taken */
	size_t rx_off, rx_len;
	uint8_t *txbuf;               /* [tx_head, tx_head + tx_len): not yet sent */
	size_t tx_head, tx_len;
	struct stream_counters counters;
	/* The batch: kept[0..nkept), their iovecs tx_iov[0..kept_iov),
	 * kept_bytes with prefixes; the out buffer has room for them all.
	 * Frames of the caller's scratch memory are copied to stage. */
	unsigned nkept, kept_iov;
	size_t kept_bytes, stage_len;
	uint8_t *stage;               /* STREAM_TXBUF_LEN: kept_bytes bounds it */
	struct stream_kept kept[STREAM_KEPT_MAX];
	struct iovec tx_iov[IOV_MAX];
};

static struct stream *to_stream(struct net_backend *be)
{
	return container_of(be, struct stream, be);
}

static void stream_on_socket(struct event_source *src, uint32_t events);

/*
 * stream_update_watch - ask the loop for what the connection needs now:
 * input unless paused, output while bytes wait. With neither the fd leaves
 * the loop, so a hung-up peer cannot make it spin while we are paused.
 */
static void stream_update_watch(struct stream *st)
{
	uint32_t want = (st->rx_paused ? 0 : EPOLLIN) | (st->tx_len ? EPOLLOUT : 0);
	bool on = st->sock_event.registered;

	if (st->fd < 0 || (on && want == st->watched) || (!on && !want))
		return;
	if (!want) {
		event_loop_unwatch(st->be.loop, &st->sock_event);
	} else if (event_loop_watch(st->be.loop, &st->sock_event, st->fd, want,
				    stream_on_socket, "stream")) {
		log_err("stream %s: cannot watch the socket: %s", st->addr.sun_path,
			strerror(errno));
		return;
	}
	st->watched = want;
}

static void stream_on_timer(struct event_timer *t);

static void stream_arm_reconnect(struct stream *st)
{
	event_loop_timer_arm(st->be.loop, &st->reconnect, stream_on_timer,
			     STREAM_RECONNECT_SEC * 1000000000ull);
}

/* stream_disconnect - drop the connection and start retrying. */
static void stream_disconnect(struct stream *st, const char *why)
{
	if (!st->down_logged)
		log_warn("stream %s: %s; dropping TX until reconnected (retrying every %d s)",
			 st->addr.sun_path, why, STREAM_RECONNECT_SEC);
	st->down_logged = true;
	st->counters.disconnects++;
	event_loop_unwatch(st->be.loop, &st->sock_event);
	close(st->fd);
	st->fd = -1;
	st->watched = 0;
	/* Records not yet taken belong to the dead connection; frames kept
	 * for a batch are dropped (and given back) by the flush. */
	st->rx_off = st->rx_len = 0;
	st->rx_paused = false;
	st->tx_head = st->tx_len = 0;
	stream_arm_reconnect(st);
	if (st->tx_blocked) {
		/* Sends now drop instead of waiting: let the device go on. */
		st->tx_blocked = false;
		net_backend_tx_unblocked(&st->be);
	}
}

/* stream_connect - one non-blocking connect attempt. Returns 0 or -errno. */
static int stream_connect(struct stream *st)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	/* A unix connect completes at once or fails (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&st->addr, sizeof(st->addr)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	st->fd = fd;
	st->watched = 0;
	/* Re-checked when the first frame arrives. */
	st->rx_paused = false;
	st->counters.connects++;
	stream_update_watch(st);
	return 0;
}

/* stream_on_timer - retry the connection once a second while it is down. */
static void stream_on_timer(struct event_timer *t)
{
	struct stream *st = container_of(t, struct stream, reconnect);

	if (st->fd >= 0)
		return;
	if (stream_connect(st)) {
		stream_arm_reconnect(st);
		return;
	}
	st->down_logged = false;
	log_info("stream %s: reconnected", st->addr.sun_path);
}

/*
 * stream_check_buffered - after a read: does a whole frame wait at rx_off?
 * Then reading stops until the device has taken every whole frame, and the
 * device is told. Returns false when the connection was dropped for a
 * framing error.
 */
static bool stream_whole_frame(const struct stream *st)
{
	size_t have = st->rx_len - st->rx_off;

	return have >= STREAM_HDR_LEN && have >= STREAM_HDR_LEN + get_be32(st->rxbuf + st->rx_off);
}

static bool stream_check_buffered(struct stream *st)
{
	if (st->rx_len - st->rx_off < STREAM_HDR_LEN)
		return true;
	uint32_t len = get_be32(st->rxbuf + st->rx_off);
	if (len == 0 || len > STREAM_FRAME_MAX) {
		char why[96];
		snprintf(why, sizeof(why), "framing error: peer sent a frame length of %u", len);
		st->counters.rx_framing_errors++;
		stream_disconnect(st, why);
		return false;
	}
	if (stream_whole_frame(st) && !st->rx_paused) {
		st->rx_paused = true;
		net_backend_rx_pending(&st->be);
	}
	return true;
}

/* stream_read - read until the socket is empty, a whole frame waits for
 * the device, or the budget is spent. */
static void stream_read(struct stream *st)
{
	for (unsigned budget = STREAM_READ_BUDGET; budget && !st->rx_paused; budget--) {
		/* Reading stops at the first whole frame and the buffer is
		 * compacted once they are taken, so a whole record always fits. */
		size_t room = STREAM_RXBUF_LEN - st->rx_len;
		ssize_t n = recv(st->fd, st->rxbuf + st->rx_len, room, MSG_DONTWAIT);
		if (n == 0) {
			stream_disconnect(st, "peer closed the connection");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				stream_disconnect(st, strerror(errno));
			return;
		}
		st->rx_len += (size_t)n;
		if (!stream_check_buffered(st))
			return;
		if ((size_t)n < room)
			return;
	}
}

/* stream_flush_tx - write out buffered bytes. Returns false on disconnect. */
static bool stream_flush_tx(struct stream *st)
{
	while (st->tx_len) {
		st->counters.tx_sendmsg_calls++;
		ssize_t n = send(st->fd, st->txbuf + st->tx_head, st->tx_len,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return true;
			stream_disconnect(st, strerror(errno));
			return false;
		}
		st->tx_head += (size_t)n;
		st->tx_len -= (size_t)n;
	}
	st->tx_head = 0;
	return true;
}

/* stream_tx_room - compact the out buffer; true when @need bytes fit. */
static bool stream_tx_room(struct stream *st, size_t need)
{
	if (STREAM_TXBUF_LEN - st->tx_head - st->tx_len >= need)
		return true;
	memmove(st->txbuf, st->txbuf + st->tx_head, st->tx_len);
	st->tx_head = 0;
	return STREAM_TXBUF_LEN - st->tx_len >= need;
}

static void stream_on_socket(struct event_source *src, uint32_t events)
{
	struct stream *st = container_of(src, struct stream, sock_event);

	if ((events & EPOLLOUT) || (st->tx_len && (events & (EPOLLERR | EPOLLHUP)))) {
		if (!stream_flush_tx(st))
			return;
		/* Wake the device once half the buffer is free, not per byte. */
		if (st->tx_blocked && stream_tx_room(st, STREAM_TXBUF_LEN / 2)) {
			st->tx_blocked = false;
			net_backend_tx_unblocked(&st->be);
			if (st->fd < 0)
				return;
		}
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		stream_read(st);
	stream_update_watch(st);
}

/* stream_queue - copy what the socket did not take (from @skip on) of the
 * record [hdr, frame] into the out buffer, which has room for it. */
static void stream_queue(struct stream *st, const uint8_t hdr[STREAM_HDR_LEN],
			 const struct iovec *iov, unsigned iovcnt, size_t len, size_t skip)
{
	uint8_t *dst = st->txbuf + st->tx_head + st->tx_len;

	if (skip < STREAM_HDR_LEN) {
		memcpy(dst, hdr + skip, STREAM_HDR_LEN - skip);
		dst += STREAM_HDR_LEN - skip;
		st->tx_len += STREAM_HDR_LEN - skip;
		skip = 0;
	} else {
		skip -= STREAM_HDR_LEN;
	}
	st->tx_len += iov_to_buf(iov, iovcnt, skip, dst, len - skip);
}

/* stream_sendmsg - one sendmsg of @iovcnt iovecs. Returns the bytes the
 * socket took (0 when full), or -errno after a disconnect. */
static ssize_t stream_sendmsg(struct stream *st, struct iovec *iov, unsigned iovcnt)
{
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iovcnt };

	for (;;) {
		st->counters.tx_sendmsg_calls++;
		ssize_t n = sendmsg(st->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR) {
			int r = -errno;    /* the disconnect may overwrite errno */

			stream_disconnect(st, strerror(-r));
			return r;
		}
	}
}

/* stream_settle - the batch's first @sent bytes went out: each kept record
 * is counted, what the socket did not take of it copied to the out buffer
 * (dropped when disconnected), and its frame given back (a staged copy
 * has nobody to give it to). */
static void stream_settle(struct stream *st, size_t sent)
{
	const struct iovec *iov = st->tx_iov;

	for (unsigned i = 0; i < st->nkept; i++) {
		const struct stream_kept *k = &st->kept[i];
		size_t rec = STREAM_HDR_LEN + k->len;

		if (st->fd < 0) {
			st->counters.tx_dropped_disconnected++;
		} else {
			if (sent < rec) {
				stream_queue(st, k->hdr, iov + 1, k->iovcnt - 1, k->len, sent);
				st->counters.tx_frames_copied++;
			}
			st->counters.tx_frames++;
			st->counters.tx_bytes += k->len;
		}
		sent -= MIN(sent, rec);
		iov += k->iovcnt;
		if (k->token != NET_TOKEN_COPY)
			net_backend_tx_done(&st->be, k->token);
	}
	st->nkept = st->kept_iov = 0;
	st->kept_bytes = st->stage_len = 0;
	stream_update_watch(st);
}

/* stream_flush - every kept record in one sendmsg, after what the out
 * buffer holds (when that does not empty, the batch is copied behind it). */
static void stream_flush(struct net_backend *be)
{
	struct stream *st = to_stream(be);
	size_t sent = 0;

	if (!st->nkept)
		return;
	if (st->fd >= 0 && stream_flush_tx(st) && !st->tx_len) {
		ssize_t n = stream_sendmsg(st, st->tx_iov, st->kept_iov);
		sent = n > 0 ? (size_t)n : 0;
	}
	stream_settle(st, sent);
}

/* stream_keep - the frame joins the batch: its prefix and iovecs. */
static void stream_keep(struct stream *st, const struct iovec *iov, unsigned iovcnt,
			size_t len, uint32_t token)
{
	struct stream_kept *k = &st->kept[st->nkept++];

	put_be32(k->hdr, (uint32_t)len);
	k->len = (uint32_t)len;
	k->token = token;
	k->iovcnt = iovcnt + 1;
	st->tx_iov[st->kept_iov] = (struct iovec){ k->hdr, STREAM_HDR_LEN };
	memcpy(&st->tx_iov[st->kept_iov + 1], iov, iovcnt * sizeof(*iov));
	st->kept_iov += iovcnt + 1;
	st->kept_bytes += STREAM_HDR_LEN + len;
}

/* stream_stage - a frame in the caller's scratch memory joins the batch as
 * a copy in the stage buffer (room: the out buffer's, which bounds it). */
static void stream_stage(struct stream *st, const struct iovec *iov, unsigned iovcnt,
			 size_t len)
{
	uint8_t *copy = st->stage + st->stage_len;

	iov_to_buf(iov, iovcnt, 0, copy, len);
	st->stage_len += len;
	stream_keep(st, &(struct iovec){ copy, len }, 1, len, NET_TOKEN_COPY);
}

static int stream_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		       uint32_t token)
{
	struct stream *st = to_stream(be);
	size_t len = iov_length(iov, iovcnt);
	bool keep = token != NET_TOKEN_COPY;

	if (len == 0 || len > STREAM_FRAME_MAX || iovcnt >= IOV_MAX) {
		st->counters.tx_dropped_oversize++;
		return -EMSGSIZE;
	}
	size_t rec = STREAM_HDR_LEN + len;
	/* The batch goes first when this frame cannot join it. */
	if (st->nkept && (st->nkept == STREAM_KEPT_MAX ||
			  st->kept_iov + (keep ? iovcnt : 1) + 1 > IOV_MAX ||
			  !stream_tx_room(st, st->kept_bytes + rec)))
		stream_flush(be);
	if (st->fd < 0) {
		st->counters.tx_dropped_disconnected++;
		return 0;
	}
	/* Batched only while the out buffer could take the whole batch. */
	if (!stream_tx_room(st, st->kept_bytes + rec)) {
		st->tx_blocked = true;
		st->counters.tx_blocked++;
		return -EAGAIN;
	}
	if (!keep) {
		stream_stage(st, iov, iovcnt, len);
		return 0;
	}
	stream_keep(st, iov, iovcnt, len, token);
	return NET_SEND_KEPT;
}

/* stream_drop_kept - the device stops: the batch is given back unsent
 * (staged copies dropped with it). */
static unsigned stream_drop_kept(struct net_backend *be)
{
	struct stream *st = to_stream(be);
	unsigned n = st->nkept;

	for (unsigned i = 0; i < n; i++)
		if (st->kept[i].token != NET_TOKEN_COPY)
			net_backend_tx_done(be, st->kept[i].token);
	st->nkept = st->kept_iov = 0;
	st->kept_bytes = st->stage_len = 0;
	return n;
}

/* stream_take - the whole frame at rx_off is taken: step past it, and
 * once no whole frame is left, compact and read again. */
static void stream_take(struct stream *st, uint32_t len)
{
	st->rx_off += STREAM_HDR_LEN + len;
	if (!stream_check_buffered(st))
		return;
	if (stream_whole_frame(st))
		return;
	size_t left = st->rx_len - st->rx_off;
	memmove(st->rxbuf, st->rxbuf + st->rx_off, left);
	st->rx_off = 0;
	st->rx_len = left;
	st->rx_paused = false;
	stream_update_watch(st);
}

static ssize_t stream_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct stream *st = to_stream(be);

	if (!st->rx_paused || st->fd < 0)
		return 0;
	uint32_t len = get_be32(st->rxbuf + st->rx_off);
	/* Never truncate: a frame bigger than the buffer is dropped. */
	bool fits = len <= iov_length(iov, iovcnt);
	if (fits) {
		iov_from_buf(iov, iovcnt, 0, st->rxbuf + st->rx_off + STREAM_HDR_LEN, len);
		st->counters.rx_frames++;
		st->counters.rx_bytes += len;
	}
	stream_take(st, len);
	return fits ? (ssize_t)len : -EMSGSIZE;
}

static void stream_rx_ready(struct net_backend *be)
{
	struct stream *st = to_stream(be);

	if (st->rx_paused)
		st->counters.rx_paused++;
}

static void stream_visit_counters(struct net_backend *be, const struct counter_sink *sink)
{
	counters_visit(&stream_counter_set, &to_stream(be)->counters, "stream ", sink);
}

static void stream_destroy(struct net_backend *be)
{
	struct stream *st = to_stream(be);

	event_loop_unwatch(be->loop, &st->sock_event);
	event_loop_timer_cancel(be->loop, &st->reconnect);
	if (st->fd >= 0)
		close(st->fd);
	free(st->rxbuf);
	free(st->txbuf);
	free(st->stage);
	free(st);
}

static const struct net_backend_ops stream_ops = {
	.name = "stream",
	.send = stream_send,
	.recv = stream_recv,
	.rx_ready = stream_rx_ready,
	.flush = stream_flush,
	.drop_kept = stream_drop_kept,
	.destroy = stream_destroy,
	.visit_counters = stream_visit_counters,
};

/* stream_setup - buffers and the first connection. */
static int stream_setup(struct stream *st, const char *path, struct errbuf *eb)
{
	st->rxbuf = malloc(STREAM_RXBUF_LEN);
	st->txbuf = malloc(STREAM_TXBUF_LEN);
	st->stage = malloc(STREAM_TXBUF_LEN);
	if (!st->rxbuf || !st->txbuf || !st->stage) {
		errbuf_set(eb, "stream %s: out of memory", path);
		return -ENOMEM;
	}
	int r = stream_connect(st);
	if (r) {
		/* At start a missing peer is most likely a wrong path: say so
		 * rather than retrying in silence. */
		errbuf_set(eb, "stream %s: cannot connect: %s", path, strerror(-r));
		return r;
	}
	return 0;
}

struct net_backend *net_stream_create(struct event_loop *loop, const char *arg, struct errbuf *eb)
{
	if (!arg || !*arg) {
		errbuf_set(eb, "stream needs a unix socket path: stream:PATH");
		return NULL;
	}
	struct stream *st = calloc(1, sizeof(*st));
	if (!st) {
		errbuf_set(eb, "stream %s: out of memory", arg);
		return NULL;
	}
	if (strlen(arg) >= sizeof(st->addr.sun_path)) {
		errbuf_set(eb, "stream socket path is too long (at most %zu characters)",
			   sizeof(st->addr.sun_path) - 1);
		free(st);
		return NULL;
	}
	st->be.ops = &stream_ops;
	st->be.loop = loop;
	st->be.rx_fd = -1;
	st->fd = -1;
	st->addr.sun_family = AF_UNIX;
	strcpy(st->addr.sun_path, arg);
	if (stream_setup(st, arg, eb)) {
		stream_destroy(&st->be);
		return NULL;
	}
	log_info("stream %s: connected", arg);
	return &st->be;
}
