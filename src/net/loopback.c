/*
 * Loopback backend: every frame the guest sends comes back to it on RX,
 * copied once, straight from the TX buffer into an RX buffer.
 *
 * send() does not copy: it keeps the frame's iovecs (guest memory) and the
 * device keeps the TX chain out of the used ring; the device's RX drain
 * then copies each kept frame into an RX buffer and the TX chain goes back
 * to the guest (tx_done). While the guest has no RX buffers the frames
 * stay kept, so its TX ring fills and it stops sending (back-pressure, no
 * drop); past LOOPBACK_KEPT_MAX kept frames send() says -EAGAIN.
 *
 * Offloads pass through: a frame comes back with the header it was sent
 * with (a 64 KiB TSO frame stays one frame), so loopback takes every
 * offload; the device checks each header against what the guest takes on
 * RX. The header is copied (the device's is scratch); the frame is not.
 *
 * Several queue pairs are as many loopbacks, each on its own loop and
 * sharing nothing: a frame sent on queue i comes back on queue i.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_net.h>

#include "core/compiler.h"
#include "core/guest_mem.h"
#include "net/backend.h"
#include "net/offload.h"

/* Enough for a full TX ring of the largest common size (Linux's 256 on
 * virtio-mmio, QEMU's 256 default) and a drain's whole budget. */
#define LOOPBACK_KEPT_MAX 256u

/* Iovecs kept in place per frame; a frame in more pieces gets an array
 * of its own (rare: Linux sends a frame in one or two). */
#define KEPT_INLINE_IOV 4u

struct kept_frame {
	struct virtio_net_hdr_v1 hdr;
	struct iovec *iov;        /* the frame in the TX buffer: inline or allocated */
	unsigned iovcnt;
	size_t len;               /* header and frame: what recv() returns */
	uint32_t token;
	struct iovec inline_iov[KEPT_INLINE_IOV];
};

struct loopback {
	struct net_backend be;
	struct kept_frame kept[LOOPBACK_KEPT_MAX];
	unsigned head, count;     /* a ring of kept frames, oldest at head */
	bool tx_blocked;          /* send() said -EAGAIN: owe tx_unblocked */
};

static struct loopback *to_loopback(struct net_backend *be)
{
	return container_of(be, struct loopback, be);
}

static int loopback_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
			 uint32_t token)
{
	struct loopback *lo = to_loopback(be);

	if (lo->count == LOOPBACK_KEPT_MAX) {
		lo->tx_blocked = true;
		return -EAGAIN;
	}
	struct kept_frame *f = &lo->kept[(lo->head + lo->count) % LOOPBACK_KEPT_MAX];
	if (iov_to_buf(iov, iovcnt, 0, &f->hdr, sizeof(f->hdr)) < sizeof(f->hdr))
		return -EINVAL;
	f->iov = iovcnt <= KEPT_INLINE_IOV ? f->inline_iov : malloc(iovcnt * sizeof(*iov));
	if (!f->iov)
		return -ENOMEM;
	if (iovcnt == 2 && iov[0].iov_len == sizeof(f->hdr)) {
		/* The device's header slot and the frame in one piece: most
		 * frames; no library call for the copy, no length loop. */
		f->iovcnt = 1;
		f->iov[0] = iov[1];
		f->len = sizeof(f->hdr) + iov[1].iov_len;
	} else if (iov[0].iov_len == sizeof(f->hdr)) {
		/* The device's own header slot: the frame is the rest as it is.
		 * Its length is read from the caller's iovecs, not from the copy
		 * just stored (a load the store could not forward). */
		f->iovcnt = iovcnt - 1;
		memcpy(f->iov, iov + 1, f->iovcnt * sizeof(*iov));
		f->len = iov_length(iov, iovcnt);
	} else {
		f->iovcnt = iov_skip(iov, iovcnt, sizeof(f->hdr), f->iov, iovcnt);
		f->len = sizeof(f->hdr) + iov_length(f->iov, f->iovcnt);
	}
	f->token = token;
	if (lo->count++ == 0)
		net_backend_rx_pending(be);
	return NET_SEND_KEPT;
}

/* Give the oldest kept frame back to the device. */
static void kept_free(struct kept_frame *f)
{
	if (f->iov != f->inline_iov)
		free(f->iov);
	f->iov = NULL;
}

static void loopback_release(struct loopback *lo)
{
	struct kept_frame *f = &lo->kept[lo->head];

	kept_free(f);
	lo->head = (lo->head + 1) % LOOPBACK_KEPT_MAX;
	lo->count--;
	net_backend_tx_done(&lo->be, f->token);
	if (lo->tx_blocked) {
		lo->tx_blocked = false;
		net_backend_tx_unblocked(&lo->be);
	}
}

static ssize_t loopback_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct loopback *lo = to_loopback(be);

	if (!lo->count)
		return 0;
	struct kept_frame *f = &lo->kept[lo->head];
	size_t len = f->len;
	/* Never truncate: a frame bigger than the buffer is dropped. */
	bool fits = len <= iov_length(iov, iovcnt);
	if (fits) {
		iov_from_buf(iov, iovcnt, 0, &f->hdr, sizeof(f->hdr));
		iov_copy(iov, iovcnt, sizeof(f->hdr), f->iov, f->iovcnt, 0, len - sizeof(f->hdr));
	}
	loopback_release(lo);
	return fits ? (ssize_t)len : -EMSGSIZE;
}

/* The next kept frame's length: the device gathers just the RX buffers it needs. */
static ssize_t loopback_peek_len(struct net_backend *be)
{
	struct loopback *lo = to_loopback(be);

	return lo->count ? (ssize_t)lo->kept[lo->head].len : 0;
}

static unsigned loopback_drop_kept(struct net_backend *be)
{
	struct loopback *lo = to_loopback(be);
	unsigned n = lo->count;

	while (lo->count)
		loopback_release(lo);
	return n;
}

static void loopback_destroy(struct net_backend *be)
{
	struct loopback *lo = to_loopback(be);

	/* The device is gone: no tx_done, only the arrays. */
	for (; lo->count; lo->count--, lo->head = (lo->head + 1) % LOOPBACK_KEPT_MAX)
		kept_free(&lo->kept[lo->head]);
	free(lo);
}

static const struct net_backend_ops loopback_ops = {
	.name = "loopback",
	.send = loopback_send,
	.recv = loopback_recv,
	.peek_len = loopback_peek_len,
	.drop_kept = loopback_drop_kept,
	.destroy = loopback_destroy,
};

struct net_backend *net_loopback_create(struct event_loop *loop, const char *arg, struct errbuf *eb)
{
	if (arg && *arg) {
		errbuf_set(eb, "loopback takes no options (got \"%s\")", arg);
		return NULL;
	}
	struct loopback *lo = calloc(1, sizeof(*lo));
	if (!lo) {
		errbuf_set(eb, "out of memory");
		return NULL;
	}
	lo->be.ops = &loopback_ops;
	lo->be.loop = loop;
	lo->be.rx_fd = -1;
	lo->be.offloads = NET_HOST_OFFLOADS | NET_GUEST_OFFLOADS;
	return &lo->be;
}

int net_loopback_create_queues(struct event_loop *const *loops, unsigned n, const char *arg,
			       struct net_backend **out, struct errbuf *eb)
{
	for (unsigned i = 0; i < n; i++) {
		out[i] = net_loopback_create(loops[i], arg, eb);
		if (out[i])
			continue;
		while (i--) {
			out[i]->ops->destroy(out[i]);
			out[i] = NULL;
		}
		/* It refuses only options, or memory. */
		return arg && *arg ? -EINVAL : -ENOMEM;
	}
	return 0;
}
