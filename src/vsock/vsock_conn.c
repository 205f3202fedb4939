/* One vsock connection (see vsock_conn.h). */
#include "vsock/vsock_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/guest_mem.h"

int vsock_conn_open(struct vsock_conn *c, struct virtio_vsock *dev, int fd,
		    enum vsock_conn_state state)
{
	uint8_t *buf = malloc(VSOCK_CONN_BUF_SIZE);

	if (!buf)
		return -ENOMEM;
	*c = (struct vsock_conn){ .state = state, .dev = dev, .fd = fd, .buf = buf };
	return 0;
}

void vsock_conn_release(struct vsock_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	*c = (struct vsock_conn){ .state = VSOCK_CONN_FREE, .fd = -1 };
}

uint32_t vsock_conn_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

void vsock_conn_peer_update(struct vsock_conn *c, const struct vsock_hdr *h)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
}

int vsock_conn_buf_put(struct vsock_conn *c, const struct iovec *iov, unsigned n, size_t off,
		       uint32_t len)
{
	if (len > VSOCK_CONN_BUF_SIZE - c->buf_len)
		return -ENOBUFS;
	uint32_t tail = (c->buf_head + c->buf_len) % VSOCK_CONN_BUF_SIZE;
	uint32_t first = MIN(len, VSOCK_CONN_BUF_SIZE - tail);
	size_t got = iov_to_buf(iov, n, off, c->buf + tail, first);
	got += iov_to_buf(iov, n, off + first, c->buf, len - first);
	c->buf_len += (uint32_t)got;
	return 0;
}

uint32_t vsock_conn_pending(const struct vsock_conn *c)
{
	return c->buf_len + (uint32_t)(c->reply_len - c->reply_off);
}

/* The reply line first, then the ring in at most two pieces; one send. */
static unsigned flush_iov(struct vsock_conn *c, struct iovec *v)
{
	unsigned n = 0;
	uint32_t first = MIN(c->buf_len, VSOCK_CONN_BUF_SIZE - c->buf_head);

	if (c->reply_off < c->reply_len)
		v[n++] = (struct iovec){ c->reply + c->reply_off, (size_t)(c->reply_len - c->reply_off) };
	if (first)
		v[n++] = (struct iovec){ c->buf + c->buf_head, first };
	if (c->buf_len > first)
		v[n++] = (struct iovec){ c->buf, c->buf_len - first };
	return n;
}

int vsock_conn_flush(struct vsock_conn *c)
{
	struct iovec v[3];
	unsigned n = flush_iov(c, v);

	if (!n)
		return 0;
	/* MSG_NOSIGNAL: a host end gone is an error here, never SIGPIPE. */
	struct msghdr m = { .msg_iov = v, .msg_iovlen = n };
	ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	size_t reply = MIN((size_t)w, (size_t)(c->reply_len - c->reply_off));
	c->reply_off += (uint8_t)reply;
	uint32_t data = (uint32_t)((size_t)w - reply);
	c->buf_head = (c->buf_head + data) % VSOCK_CONN_BUF_SIZE;
	c->buf_len -= data;
	c->fwd_cnt += data;
	return 0;
}

bool vsock_conn_credit_due(const struct vsock_conn *c)
{
	/* What the guest believes is buffered here: all it sent, less what it
	 * heard was passed on. */
	uint32_t believed = c->buf_len + (c->fwd_cnt - c->fwd_cnt_told);

	return c->fwd_cnt != c->fwd_cnt_told && believed > VSOCK_CONN_BUF_SIZE / 2;
}

void vsock_conn_hdr(struct vsock_conn *c, uint64_t guest_cid, uint16_t op, struct vsock_hdr *h)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID, .dst_cid = guest_cid,
		.src_port = c->local_port, .dst_port = c->peer_port,
		.type = VIRTIO_VSOCK_TYPE_STREAM, .op = op,
		.buf_alloc = VSOCK_CONN_BUF_SIZE, .fwd_cnt = c->fwd_cnt,
	};
	c->fwd_cnt_told = c->fwd_cnt;
}
