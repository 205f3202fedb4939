/*
 * A network backend moves Ethernet frames on the host. It does not know
 * about virtqueues: the device hands it frames to send as iovecs, and takes
 * frames from it in one of two ways:
 *
 *  - pull: when the backend has an fd (rx_fd >= 0) and that fd is readable,
 *    the device pops an RX chain and calls recv() with the chain's writable
 *    iovecs, so a tap read lands straight in guest memory (one copy);
 *  - push: a backend that produces frames itself (loopback, libslirp,
 *    stream framing) calls net_backend_deliver(), which copies the frame
 *    straight into an RX chain.
 *
 * Frames never carry the virtio-net header here: the device strips it on TX
 * and writes it on RX. (Offload-capable backends will get a vnet header
 * hook when offloads are negotiated.)
 */
#ifndef KVMINI_NET_BACKEND_H
#define KVMINI_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <netinet/in.h>

#include "core/event_loop.h"

struct net_backend;

/* Result of handing a frame to the device's RX side (push backends). */
enum net_deliver_result {
	NET_DELIVERED = 0,
	NET_DELIVER_NO_BUFFER,     /* no RX chain available: the frame is dropped and counted */
	NET_DELIVER_DROPPED,       /* dropped for another counted reason */
};

/* Implemented by the device: the backend's way up. */
struct net_backend_sink {
	/* Copy one frame into the guest; called on the loop thread. */
	enum net_deliver_result (*deliver)(struct net_backend_sink *sink,
					   const struct iovec *iov, unsigned iovcnt);
	/* True when the guest has RX buffers; push backends use it to stop
	 * reading from the host instead of dropping. */
	bool (*can_deliver)(struct net_backend_sink *sink);
	/* The backend can take frames again after send() returned -EAGAIN. */
	void (*tx_unblocked)(struct net_backend_sink *sink);
	/* End of a burst of deliver() calls: publish the used entries and
	 * interrupt the guest once for the whole burst. Push backends call it
	 * after each read loop (net_backend_flush). */
	void (*flush)(struct net_backend_sink *sink);
};

struct net_backend_ops {
	const char *name;
	/* Send one frame. Returns 0 when sent (or dropped by the host, which
	 * counts as sent: a tap with a full queue drops), -EAGAIN when the
	 * backend cannot take it now (the device keeps the chain and waits
	 * for tx_unblocked), or another -errno when the frame is lost. */
	int (*send)(struct net_backend *be, const struct iovec *iov, unsigned iovcnt);
	/* Pull backends: read one frame into @iov. Returns its length, 0 when
	 * none is waiting, -EMSGSIZE when it did not fit (it is dropped), or
	 * another -errno. */
	ssize_t (*recv)(struct net_backend *be, const struct iovec *iov, unsigned iovcnt);
	/* The device has RX buffers again (a push backend may resume reading). */
	void (*rx_ready)(struct net_backend *be);
	void (*destroy)(struct net_backend *be);
	/* Optional: print backend-specific counters. */
	void (*dump_counters)(struct net_backend *be, FILE *out);
};

struct net_backend {
	const struct net_backend_ops *ops;
	struct net_backend_sink *sink;   /* set by the device at attach */
	struct event_loop *loop;         /* the loop to register fds on */
	int rx_fd;                       /* pull backends: fd to poll, else -1 */
	unsigned host_mtu;               /* the host interface's MTU (tap), else 0: no bound */
};

/*
 * Create a backend from its command-line spelling:
 *   tap:NAME | user[:OPTIONS] | stream:PATH | loopback
 * On failure returns NULL with a message in @err.
 */
struct net_backend *net_backend_create(const char *spec, struct event_loop *loop,
				       char *err, size_t errlen);

static inline enum net_deliver_result
net_backend_deliver(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	return be->sink->deliver(be->sink, iov, iovcnt);
}

static inline void net_backend_flush(struct net_backend *be)
{
	be->sink->flush(be->sink);
}

/* Constructors, one per file under src/net/. Each returns NULL and fills
 * @err on failure. @arg is the text after the "kind:" prefix (or NULL). */
struct net_backend *net_loopback_create(struct event_loop *loop, const char *arg,
					char *err, size_t errlen);
struct net_backend *net_tap_create(struct event_loop *loop, const char *arg,
				   char *err, size_t errlen);
struct net_backend *net_stream_create(struct event_loop *loop, const char *arg,
				      char *err, size_t errlen);
struct net_backend *net_slirp_create(struct event_loop *loop, const char *arg,
				     char *err, size_t errlen);

/*
 * A libslirp endpoint for one service on the guest's link (the metadata
 * service): guest TCP connections to addr:port become connections to the
 * unix socket at unix_path, and libslirp answers ARP for addr. Restricted:
 * nothing else is answered or forwarded, no DHCP, no DNS, never the host
 * network. @ep must outlive the backend. A push backend.
 */
struct slirp_endpoint {
	struct in_addr addr;          /* link-local (169.254.0.0/16) */
	uint16_t port;
	const char *unix_path;
};
struct net_backend *net_slirp_create_endpoint(struct event_loop *loop,
					      const struct slirp_endpoint *ep,
					      char *err, size_t errlen);
/* The address libslirp uses for itself next to the endpoint (its ARP
 * requests come from it). */
struct in_addr net_slirp_endpoint_host(struct net_backend *be);

#endif
