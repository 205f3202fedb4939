/*
 * Loopback backend: every frame the guest sends comes back to it on RX,
 * copied once, straight from the TX chain into an RX chain. When the guest
 * has no RX buffer the TX chain waits in its ring (back-pressure, no drop)
 * until the guest refills RX.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/compiler.h"
#include "net/backend.h"

struct loopback {
	struct net_backend be;
	bool waiting_for_rx;      /* a send was refused for lack of RX buffers */
};

static struct loopback *to_loopback(struct net_backend *be)
{
	return container_of(be, struct loopback, be);
}

static int loopback_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	struct loopback *lo = to_loopback(be);

	if (!be->sink->can_deliver(be->sink)) {
		lo->waiting_for_rx = true;
		return -EAGAIN;
	}
	/* A frame too big for the RX buffer is dropped and counted by the device. */
	net_backend_deliver(be, iov, iovcnt);
	return 0;
}

static void loopback_rx_ready(struct net_backend *be)
{
	struct loopback *lo = to_loopback(be);

	if (!lo->waiting_for_rx)
		return;
	lo->waiting_for_rx = false;
	be->sink->tx_unblocked(be->sink);
}

static void loopback_destroy(struct net_backend *be)
{
	free(to_loopback(be));
}

static const struct net_backend_ops loopback_ops = {
	.name = "loopback",
	.send = loopback_send,
	.rx_ready = loopback_rx_ready,
	.destroy = loopback_destroy,
};

struct net_backend *net_loopback_create(struct event_loop *loop, const char *arg,
					char *err, size_t errlen)
{
	if (arg && *arg) {
		snprintf(err, errlen, "loopback takes no options (got \"%s\")", arg);
		return NULL;
	}
	struct loopback *lo = calloc(1, sizeof(*lo));
	if (!lo) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	lo->be.ops = &loopback_ops;
	lo->be.loop = loop;
	lo->be.rx_fd = -1;
	return &lo->be;
}
