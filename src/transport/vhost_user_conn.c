/*
 * vhost-user connection: message framing with SCM_RIGHTS fds, replies, the
 * back-end channel (BACKEND_REQ), the connection and the listening socket.
 */
#include "transport/vhost_user_internal.h"

#include "core/atomics.h"

/* ---- message I/O --------------------------------------------------- */

void vu_warn(struct vhost_user_server *s, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!s->warn_budget)
		return;
	if (--s->warn_budget == 0)
		log_warn("vhost-user: further front-end errors on this connection are not logged");
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_warn("vhost-user: %s", line);
}

void vu_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int vu_set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int vu_take_fd(int *fds, unsigned i)
{
	int fd = fds[i];
	fds[i] = -1;
	return fd;
}

/* Send one whole message without blocking. A short write loses the framing,
 * so it counts as a failure like any other. */
int vu_sendmsg(int fd, uint32_t request, uint32_t flags, const void *payload,
	       uint32_t size)
{
	struct vhost_user_hdr hdr = { .request = request, .flags = flags, .size = size };
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	ssize_t n;

	do {
		n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == sizeof(hdr) + size ? 0 : -EIO;
}

/* Replies carry flags exactly VERSION | REPLY (UML insists). The front-end
 * waits for each reply, so a full socket means it is not reading: fail. */
int vu_reply(struct vhost_user_server *s, uint32_t request, const void *payload,
	     uint32_t size)
{
	int r = vu_sendmsg(s->conn_fd, request, VHOST_USER_REPLY_FLAGS, payload, size);

	if (r == 0)
		s->counters.tx_replies++;
	return r;
}

/* ---- back-end channel ---------------------------------------------- */

/*
 * Take the SCM_RIGHTS fds of a received message: up to @max into @fds
 * (counted in *@nfds), the rest closed. Returns true when some were closed.
 */
static bool vu_take_cmsg_fds(struct msghdr *mh, int *fds, unsigned *nfds, unsigned max)
{
	bool closed = false;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (*nfds < max) {
				fds[(*nfds)++] = fd;
			} else {
				close(fd);
				closed = true;
			}
		}
	}
	return closed;
}

static void vu_close_fds_in(struct msghdr *mh)
{
	unsigned none = 0;

	vu_take_cmsg_fds(mh, NULL, &none, 0);
}

void vu_close_backend(struct vhost_user_server *s)
{
	if (s->backend_fd < 0)
		return;
	event_loop_unwatch(s->loop, &s->backend_src);
	vu_close_fd(&s->backend_fd);
	s->backend_wants_out = false;
	s->config_pending = false;
	for (unsigned q = 0; q < vu_ring_count(s); q++) {
		if (s->vrings[q].call_pending)
			fetch_add_relaxed(&s->counters.tx_calls_dropped, 1);
		s->vrings[q].call_pending = false;
	}
}

/* Retry what waited for room on the channel. */
static void vu_backend_flush(struct vhost_user_server *s)
{
	vu_backend_want_out(s, false);
	if (s->config_pending)
		vu_send_config_change(s);
	for (unsigned q = 0; q < vu_ring_count(s) && s->backend_fd >= 0; q++) {
		if (s->vrings[q].call_pending && !vu_call_inband(s, &s->vrings[q]))
			return;
	}
}

/* The front-end answers here only when asked for an ack, which the server
 * never does: discard whatever comes, close any fds, and drop the channel at
 * EOF. */
static void vu_backend_drain(struct vhost_user_server *s)
{
	for (unsigned i = 0; i < VU_MSGS_PER_WAKEUP && s->backend_fd >= 0; i++) {
		char buf[256];
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		} ctrl;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl.buf) };
		ssize_t n = recvmsg(s->backend_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n > 0) {
			vu_close_fds_in(&mh);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		vu_close_backend(s);
	}
}

void vu_backend_event(struct event_source *src, uint32_t events)
{
	struct vhost_user_server *s = container_of(src, struct vhost_user_server, backend_src);

	if (events & EPOLLOUT)
		vu_backend_flush(s);
	if (s->backend_fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		vu_backend_drain(s);
}

/* ---- connection and listener --------------------------------------- */

static void vu_rx_clear(struct vhost_user_rx *rx)
{
	for (unsigned i = 0; i < rx->nfds; i++)
		close(rx->fds[i]);
	memset(rx, 0, sizeof(*rx));
}

/* Keep the fds that came with these bytes; more than any request carries
 * is a protocol error (the kernel already dropped what did not fit). */
static void vu_rx_take_fds(struct vhost_user_rx *rx, struct msghdr *mh)
{
	if (mh->msg_flags & MSG_CTRUNC)
		rx->fds_overflow = true;
	if (vu_take_cmsg_fds(mh, rx->fds, &rx->nfds, VHOST_USER_MAX_FDS))
		rx->fds_overflow = true;
}

/* Receive up to @len bytes of the current message. Returns bytes read,
 * -EAGAIN, or -errno (-ECONNRESET at EOF). */
static ssize_t vu_recv(struct vhost_user_server *s, void *buf, size_t len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
	} ctrl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl.buf) };
	ssize_t n;

	do {
		n = recvmsg(s->conn_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	vu_rx_take_fds(s->rx, &mh);
	return n ? n : -ECONNRESET;
}

/*
 * Read what is missing of the current message (exactly, so fds are never
 * taken from the next one) and dispatch it once complete. Returns 1 after
 * progress, 0 when the socket is empty, -errno when the connection ends.
 */
static int vu_rx_step(struct vhost_user_server *s)
{
	struct vhost_user_rx *rx = s->rx;
	bool in_hdr = rx->have < VHOST_USER_HDR_SIZE;
	size_t end = in_hdr ? VHOST_USER_HDR_SIZE : VHOST_USER_HDR_SIZE + rx->hdr.size;
	uint8_t *dst = in_hdr ? (uint8_t *)&rx->hdr + rx->have
			      : rx->payload.raw + (rx->have - VHOST_USER_HDR_SIZE);
	ssize_t n = vu_recv(s, dst, end - rx->have);

	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return 0;
	if (n < 0)
		return (int)n;
	rx->have += (size_t)n;
	if (rx->have == VHOST_USER_HDR_SIZE && vhost_user_check_header(&rx->hdr) < 0) {
		if (rx->hdr.size > VHOST_USER_PAYLOAD_MAX)
			s->counters.rx_messages_oversized++;
		vu_warn(s, "bad message header (request %u, flags 0x%x, size %u)",
			rx->hdr.request, rx->hdr.flags, rx->hdr.size);
		return -EPROTO;
	}
	if (rx->have < VHOST_USER_HDR_SIZE || rx->have < VHOST_USER_HDR_SIZE + rx->hdr.size)
		return 1;
	if (rx->fds_overflow) {
		vu_warn(s, "more than %u fds with one message", VHOST_USER_MAX_FDS);
		return -EPROTO;
	}

	struct vhost_user_hdr hdr = rx->hdr;
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds = rx->nfds;
	memcpy(fds, rx->fds, sizeof(fds));
	rx->nfds = 0;          /* the fds now belong to vhost_user_handle_msg */
	rx->have = 0;
	int r = vhost_user_handle_msg(s, &hdr, rx->payload.raw, fds, nfds);
	return r < 0 ? r : 1;
}

static void vu_conn_event(struct event_source *src, uint32_t events)
{
	struct vhost_user_server *s = container_of(src, struct vhost_user_server, conn_src);

	for (unsigned i = 0; i < VU_MSGS_PER_WAKEUP && s->conn_fd >= 0; i++) {
		int r = vu_rx_step(s);
		if (r == 0)
			return;
		if (r < 0) {
			if (r == -ECONNRESET)
				log_info("vhost-user: front-end closed the connection");
			else if (s->conn_fd >= 0)
				s->counters.disconnects_error++;
			vu_disconnect(s, false);
			return;
		}
	}
}

static void vu_listen_event(struct event_source *src, uint32_t events);

static void vu_session_reset(struct vhost_user_server *s)
{
	vu_close_backend(s);
	vu_rx_clear(s->rx);
	s->owner = false;
	s->protocol_features_acked = false;
	s->protocol_features = 0;
	s->warn_budget = VU_WARN_BUDGET;
}

/*
 * End the session: the device stops (and forgets the negotiation) before its
 * memory is unmapped, every fd from the front-end is closed, and the
 * listener takes the next front-end. @final: the server is being destroyed.
 */
void vu_disconnect(struct vhost_user_server *s, bool final)
{
	if (s->conn_fd < 0)
		return;
	vu_ring_apply(s, NULL, VU_RING_EV_RESET);
	s->dev->mem = NULL;
	guest_mem_clear(&s->mem);
	vu_session_reset(s);
	event_loop_unwatch(s->loop, &s->conn_src);
	vu_close_fd(&s->conn_fd);
	log_info("vhost-user: front-end disconnected; %s reset", s->dev->ops->name);
	if (final)
		return;
	if (s->listen_fd >= 0 &&
	    event_loop_watch(s->loop, &s->listen_src, s->listen_fd, EPOLLIN, vu_listen_event,
			     "vhost-user listener") < 0)
		log_err("vhost-user: cannot watch the listening socket again");
	if (s->opts.on_disconnect)
		s->opts.on_disconnect(s, s->opts.opaque);
}

/* Take @fd as the front-end. One at a time: the listener is not watched
 * while a front-end is served, so the next one waits in the backlog. */
int vu_connect(struct vhost_user_server *s, int fd)
{
	int r;

	if (s->conn_fd >= 0) {
		close(fd);
		return -EBUSY;
	}
	r = event_loop_watch(s->loop, &s->conn_src, fd, EPOLLIN, vu_conn_event,
			     "vhost-user connection");
	if (r < 0) {
		close(fd);
		return r;
	}
	s->conn_fd = fd;
	vu_session_reset(s);
	if (s->listen_fd >= 0)
		event_loop_unwatch(s->loop, &s->listen_src);
	s->counters.connections++;
	log_info("vhost-user: front-end connected%s%s", s->socket_path ? " on " : "",
		 s->socket_path ? s->socket_path : "");
	return 0;
}

static void vu_listen_event(struct event_source *src, uint32_t events)
{
	struct vhost_user_server *s = container_of(src, struct vhost_user_server, listen_src);
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("vhost-user: accept on %s: %s", s->socket_path, strerror(errno));
		return;
	}
	vu_connect(s, fd);
}

/* A socket file left by a dead server is removed; a live server (it accepts
 * or its backlog is full) or a file that is not a socket is left alone. */
static int vu_remove_stale(const struct sockaddr_un *addr)
{
	struct stat st;
	int fd, r;

	if (lstat(addr->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	bool live = r == 0 || errno == EAGAIN || errno == EINPROGRESS;
	close(fd);
	if (live)
		return -EADDRINUSE;
	if (unlink(addr->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int vu_listen(struct vhost_user_server *s, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int r;

	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, len + 1);
	r = vu_remove_stale(&addr);
	if (r < 0)
		return r;
	s->socket_path = strdup(path);
	if (!s->socket_path)
		return -ENOMEM;
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		return -errno;
	if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -errno;
	if (listen(s->listen_fd, VU_LISTEN_BACKLOG) < 0) {
		r = -errno;
		unlink(path);
		return r;
	}
	r = event_loop_watch(s->loop, &s->listen_src, s->listen_fd, EPOLLIN, vu_listen_event,
			     "vhost-user listener");
	if (r < 0)
		unlink(path);
	return r;
}
