/*
 * A network backend moves Ethernet frames on the host. It does not know
 * about virtqueues: the device hands it frames to send as iovecs, and its
 * RX drain takes frames from it with recv(), which copies the next one
 * into the iovecs of a guest buffer. Backends come in two kinds:
 *
 *  - fd backends (rx_fd >= 0): the device polls the fd and drains while it
 *    is readable, so a tap read lands straight in guest memory;
 *  - queue backends (loopback, libslirp, stream framing, the metadata
 *    endpoint) make frames themselves, keep them, and say so with
 *    rx_pending(); the device's RX drain then runs as deferred work.
 *
 * No re-entry: the upward calls (struct net_backend_events) only schedule
 * the device's work for after the current event-loop round, so a backend
 * may make them anywhere, its send() included, and the device never runs
 * one of its drains from inside another.
 *
 * Offloads. A backend that takes checksum and GSO requests itself (a tap
 * opened with IFF_VNET_HDR; loopback, which hands frames back as they came)
 * says which in be->offloads, and its frames then cross send() and recv()
 * with the 12-byte struct virtio_net_hdr_v1 in front, inside the iovecs:
 *  - on send() the header is the one the device checked (net/offload.h),
 *    never the guest's bytes: hdr_len is recomputed and nothing the guest
 *    did not ack is asked for;
 *  - on recv() the backend writes the header (the device checks it against
 *    what the guest acked and sets num_buffers), and the length returned
 *    counts it.
 * A backend with offloads 0 sends and receives plain frames: the device has
 * completed checksums and segmented GSO frames for it first (NET_SOFT_OFFLOADS).
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

#include "core/counters.h"
#include "core/errbuf.h"
#include "core/event_loop.h"
#include "core/state_io.h"

struct net_backend;

/* send() kept the frame's iovecs (they point into the guest's TX buffer)
 * and calls tx_done with the frame's token when it no longer needs them. */
#define NET_SEND_KEPT 1

/* The token of a frame in the caller's own scratch memory (software GSO's
 * segments, soft_tx.h), valid only during send(): a backend must not keep
 * it (a device token is pair << 16 | head: never this). */
#define NET_TOKEN_COPY UINT32_MAX

/* The way up, implemented by the device (or by a wrapping backend, which
 * passes the calls on). Each call only records or schedules: none runs a
 * drain before it returns. */
struct net_backend_events {
	/* Frames wait in a queue backend: run the RX drain soon. */
	void (*rx_pending)(void *ctx);
	/* send() can take frames again after it returned -EAGAIN. */
	void (*tx_unblocked)(void *ctx);
	/* A frame send() kept is done with: its TX buffer goes back to the
	 * guest (published at the end of the drain under way, or soon). */
	void (*tx_done)(void *ctx, uint32_t token);
};

struct net_backend_ops {
	const char *name;
	/* Its send() and the loop callbacks open, connect and accept host
	 * sockets while frames flow (libslirp, and the MMDS interceptor whose
	 * endpoint is libslirp): the queue thread's seccomp filter allows them
	 * (net_device.c). The others only read and write descriptors opened at
	 * set-up. */
	bool host_sockets;
	/* Send one frame. Returns 0 when sent (or dropped by the host, which
	 * counts as sent: a tap with a full queue drops), NET_SEND_KEPT when
	 * the backend keeps the iovecs until tx_done(@token), -EAGAIN when it
	 * cannot take the frame now (the device keeps the chain and waits for
	 * tx_unblocked), or another -errno when the frame is lost. */
	int (*send)(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		    uint32_t token);
	/* Copy the next waiting frame into @iov. Returns its length, 0 when
	 * none is waiting, -EMSGSIZE when it did not fit (it is dropped), or
	 * another -errno. */
	ssize_t (*recv)(struct net_backend *be, const struct iovec *iov, unsigned iovcnt);
	/* Optional: the length recv() would return for the next waiting frame
	 * now (0 when none is waiting), so the device gathers only the RX
	 * buffers that frame needs (MRG_RXBUF) rather than room for the
	 * largest; NULL when the backend cannot tell before reading (a tap, a
	 * socket), or a negative -errno now. */
	ssize_t (*peek_len)(struct net_backend *be);
	/* The device has RX buffers again (a backend may resume reading). */
	void (*rx_ready)(struct net_backend *be);
	/* The device is stopping: give back every frame send() kept (tx_done
	 * for each) and forget them; returns how many were dropped so.
	 * Backends that keep none leave it NULL. */
	unsigned (*drop_kept)(struct net_backend *be);
	/* Optional: the device's TX drain is over (it calls this at the end
	 * of every drain, before it publishes the used ring or waits for
	 * tx_unblocked): write out every frame send() kept for a batch and
	 * give each back with tx_done (sent, copied or dropped), so that none
	 * stays kept past the drain. Why: a socket takes many frames per
	 * syscall (the stream backend sends a drain's frames with one
	 * sendmsg), but only once it has seen them all; send() alone cannot
	 * know the drain's last frame. A backend with flush may keep frames
	 * only until the next flush; its send() may also flush the batch
	 * early (IOV_MAX, room) and must then still answer for the frame it
	 * was given. A wrapping backend passes it on. */
	void (*flush)(struct net_backend *be);
	void (*destroy)(struct net_backend *be);
	/* Optional: hand the backend's own counters to @sink. */
	void (*visit_counters)(struct net_backend *be, const struct counter_sink *sink);
	/* Optional, for snapshots (net_backend_state_save below): the fields
	 * of the backend's own state inside its section, and reading them
	 * back into a backend just opened (false, with why in @r, when they
	 * do not load). Loop thread, the device paused. */
	int (*save_state)(struct net_backend *be, struct state_writer *w, struct errbuf *eb);
	bool (*load_state)(struct net_backend *be, struct state_reader *r);
	/* Optional, backends with offloads: the guest acked @features (the
	 * VIRTIO_NET_F_GUEST_* bits among be->offloads): from now on recv()
	 * may hand over frames that use them, and only those (a tap's
	 * TUNSETOFFLOAD). Called when features are set and when the driver
	 * changes them through the control queue. 0 or -errno. */
	int (*set_offloads)(struct net_backend *be, uint64_t features);
	/* A decorator (the MMDS interceptor): the backend it wraps, whose
	 * state a snapshot keeps. NULL for the others. */
	struct net_backend *(*wrapped)(struct net_backend *be);
	/* Optional: attach (true) or detach (false) this queue of a multi-queue
	 * host interface from the host's steering (a tap queue's TUNSETQUEUE with
	 * IFF_ATTACH_QUEUE / IFF_DETACH_QUEUE): the device detaches the pairs the
	 * driver does not use (VQ_PAIRS_SET) so the host sends them nothing.
	 * NULL for backends with one queue. 0 or -errno. Asking for the state
	 * the queue is already in does nothing and returns 0. Detaching drops
	 * the frames waiting on the queue; a detached queue's rx_fd stays
	 * quiet (no error to poll), send() still reaches the host, and
	 * set_offloads still works. Loop thread of the queue. */
	int (*set_queue_enabled)(struct net_backend *be, bool enabled);
	/* Optional: its way up was just attached (net_backend_attach). A
	 * wrapping backend whose wrapped one's calls up would only pass
	 * through hands them the same way up here: a call fewer per frame. */
	void (*attached)(struct net_backend *be);
};

/* The backends' counter sets (each backend's .c), for tests and docs. */
extern const struct counter_set tap_counter_set, stream_counter_set, slirp_counter_set;

struct net_backend {
	const struct net_backend_ops *ops;
	/* Set once by whoever takes the backend's frames (the device, or a
	 * wrapping backend) before the first send. */
	const struct net_backend_events *events;
	void *events_ctx;
	struct event_loop *loop;         /* the loop to register fds on */
	int rx_fd;                       /* fd backends: fd to poll, else -1 */
	unsigned host_mtu;               /* the host interface's MTU (tap), else 0: no bound */
	/* VIRTIO_NET_F_* offload bits (NET_HOST_OFFLOADS, NET_GUEST_OFFLOADS)
	 * the backend handles itself; non-zero: frames carry the vnet header
	 * in send() and recv() (above). Set at creation, never changed. */
	uint64_t offloads;
};

/* Frames of @be cross send() and recv() with the vnet header in front. */
static inline bool net_backend_has_vnet_hdr(const struct net_backend *be)
{
	return be->offloads != 0;
}

/*
 * Create a backend from its command-line spelling:
 *   tap:NAME | tap-fd:N | user[:OPTIONS] | stream:PATH | loopback
 * On failure returns NULL with a message in @eb. The same as
 * net_backend_create_queues with one queue pair.
 */
struct net_backend *net_backend_create(const char *spec, struct event_loop *loop,
				       struct errbuf *eb);

/* The most queue pairs one interface has (virtio-net's --queues). */
#define NET_BACKEND_MAX_QUEUES 16u

/*
 * The backends of one interface with @n queue pairs (1..NET_BACKEND_MAX_QUEUES):
 * out[i] created on loops[i]. tap:NAME opens the tap n times with
 * IFF_MULTI_QUEUE (n == 1: opened once without IFF_MULTI_QUEUE, the tap
 * net_backend_create has always opened), tap-fd:A[,B...] takes one
 * already-open fd per queue and needs exactly n of them (with n > 1 each
 * must be a queue of a multi-queue tap, TUNGETIFF says IFF_MULTI_QUEUE, and
 * all the same tap); loopback makes n independent loopbacks (frames sent on
 * queue i come back on queue i); user, stream: n == 1 only, else a clear
 * error naming the backend and saying it has one queue. 0, or -errno with a
 * message in @eb and nothing left open: out[] NULL, tap-fd's descriptors
 * open and the caller's, as given (user and stream say -EINVAL for whatever
 * failed: their constructors tell why only in @eb). Each backend is then
 * used and destroyed on its own, on its own loop.
 */
int net_backend_create_queues(const char *spec, struct event_loop *const *loops, unsigned n,
			      struct net_backend **out, struct errbuf *eb);

/* Attach @be's way up; called once, before the first send. */
static inline void net_backend_attach(struct net_backend *be,
				      const struct net_backend_events *events, void *ctx)
{
	be->events = events;
	be->events_ctx = ctx;
	if (be->ops->attached)
		be->ops->attached(be);
}

static inline void net_backend_rx_pending(struct net_backend *be)
{
	be->events->rx_pending(be->events_ctx);
}

static inline void net_backend_tx_unblocked(struct net_backend *be)
{
	be->events->tx_unblocked(be->events_ctx);
}

static inline void net_backend_tx_done(struct net_backend *be, uint32_t token)
{
	be->events->tx_done(be->events_ctx, token);
}

/* Constructors, one per file under src/net/. Each returns NULL and fills
 * @eb on failure. @arg is the text after the "kind:" prefix (or NULL). */
struct net_backend *net_loopback_create(struct event_loop *loop, const char *arg,
					struct errbuf *eb);
struct net_backend *net_tap_create(struct event_loop *loop, const char *arg, struct errbuf *eb);
struct net_backend *net_tap_fd_create(struct event_loop *loop, const char *arg,
				      struct errbuf *eb);
struct net_backend *net_stream_create(struct event_loop *loop, const char *arg, struct errbuf *eb);
struct net_backend *net_slirp_create(struct event_loop *loop, const char *arg, struct errbuf *eb);

/* The same for @n queue pairs of one host interface, as
 * net_backend_create_queues says (@n already in range): 0, or -errno with
 * @eb filled and nothing left open. */
int net_loopback_create_queues(struct event_loop *const *loops, unsigned n, const char *arg,
			       struct net_backend **out, struct errbuf *eb);
int net_tap_create_queues(struct event_loop *const *loops, unsigned n, const char *arg,
			  struct net_backend **out, struct errbuf *eb);
int net_tap_fd_create_queues(struct event_loop *const *loops, unsigned n, const char *arg,
			     struct net_backend **out, struct errbuf *eb);

/*
 * A libslirp endpoint for one service on the guest's link (the metadata
 * service): guest TCP connections to addr:port become connections to the
 * unix socket at unix_path, and libslirp answers ARP for addr. Restricted:
 * nothing else is answered or forwarded, no DHCP, no DNS, never the host
 * network. @ep must outlive the backend. A queue backend.
 */
struct slirp_endpoint {
	struct in_addr addr;          /* link-local (169.254.0.0/16) */
	uint16_t port;
	const char *unix_path;
};
struct net_backend *net_slirp_create_endpoint(struct event_loop *loop,
					      const struct slirp_endpoint *ep, struct errbuf *eb);
/* The address libslirp uses for itself next to the endpoint (its ARP
 * requests come from it). */
struct in_addr net_slirp_endpoint_host(struct net_backend *be);

/*
 * Snapshots: section "NBCK" per interface: the backend's name and whether
 * its own state follows (libslirp's connections and tables for "user";
 * tap, stream and loopback have none: a tap is re-attached by its name).
 * A state saved by one kind of backend and loaded into another (a clone on
 * a tap where the original used "user") loads nothing and says so.
 */
int net_backend_state_save(struct net_backend *be, struct state_writer *w, struct errbuf *eb);
bool net_backend_state_load(struct net_backend *be, struct state_reader *r);

#endif
