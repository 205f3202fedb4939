/* virtio-vsock with the hybrid unix-socket backend (see virtio_vsock.h).
 * Order: the connection table, the sockets' side, the guest's packets
 * (tx), packets to the guest (rx), the host sockets' events, the device
 * operations, set-up. */
#include "vsock/virtio_vsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "core/compiler.h"
#include "core/errbuf.h"
#include "core/log.h"

#define VSOCK_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) | \
			(1ull << VIRTIO_RING_F_INDIRECT_DESC))

/* A wake-up's work before other work gets its turn (Linux vhost's rule). */
static const struct vq_budget tx_budget = { .chains = 128, .bytes = 1u << 20 };
#define RX_BUDGET 128u
/* Most stream bytes one receive packet carries (Linux's largest packet). */
#define RX_PAYLOAD_MAX (64u * 1024)

static struct virtio_vsock *to_vsock(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_vsock, vdev);
}

static void rx_pump(struct virtio_vsock *vs);
static void on_conn_event(struct event_source *src, uint32_t events);
static void on_conn_timer(struct event_timer *t);

/* --- the connection table ----------------------------------------------------- */

/* The connection of a guest packet to host port @local from guest port
 * @peer; host clients still in their handshake have no ports yet. */
static struct vsock_conn *conn_find(struct virtio_vsock *vs, uint32_t local, uint32_t peer)
{
	for (unsigned i = 0; i < vs->max_conns; i++) {
		struct vsock_conn *c = &vs->conns[i];
		if (c->state > VSOCK_CONN_HANDSHAKE && c->local_port == local && c->peer_port == peer)
			return c;
	}
	return NULL;
}

static struct vsock_conn *conn_free_slot(struct virtio_vsock *vs)
{
	for (unsigned i = 0; i < vs->max_conns; i++)
		if (vs->conns[i].state == VSOCK_CONN_FREE)
			return &vs->conns[i];
	return NULL;
}

unsigned virtio_vsock_conns(const struct virtio_vsock *vs)
{
	unsigned n = 0;

	for (unsigned i = 0; i < vs->max_conns; i++)
		n += vs->conns[i].state != VSOCK_CONN_FREE;
	return n;
}

/* The events the socket is watched for: its CONNECT line; bytes for the
 * guest when none are known to wait already; room for bytes that wait.
 * With none, the fd is off the loop so a hang-up cannot spin it. */
static uint32_t conn_events(const struct vsock_conn *c)
{
	if (c->fd < 0)
		return 0;
	if (c->state == VSOCK_CONN_HANDSHAKE)
		return EPOLLIN | EPOLLRDHUP;
	if (c->state != VSOCK_CONN_ESTABLISHED)
		return 0;
	uint32_t ev = vsock_conn_pending(c) ? EPOLLOUT : 0;
	if (!c->readable && !c->host_eof && !c->peer_shut_rcv)
		ev |= EPOLLIN;
	return ev;
}

static void conn_watch(struct virtio_vsock *vs, struct vsock_conn *c)
{
	uint32_t ev = conn_events(c);

	if (ev == c->watching)
		return;
	if (!ev) {
		event_loop_unwatch(vs->vdev.loop, &c->src);
	} else if (event_loop_watch(vs->vdev.loop, &c->src, c->fd, ev, on_conn_event,
				    "vsock connection") < 0) {
		log_warn("virtio-vsock: cannot watch a connection's socket");
		return;
	}
	c->watching = ev;
}

/* Close the socket and forget the connection at once (no word to the guest). */
static void conn_kill(struct virtio_vsock *vs, struct vsock_conn *c)
{
	if (c->watching)
		event_loop_unwatch(vs->vdev.loop, &c->src);
	event_loop_timer_cancel(vs->vdev.loop, &c->timer);
	vsock_conn_release(c);
}

/* Close the socket now; the slot goes once the guest has its RST (at once
 * when the guest never heard of the connection: its REQUEST still owed). */
static void conn_reset(struct virtio_vsock *vs, struct vsock_conn *c)
{
	if (c->owe & VSOCK_OWE_REQUEST) {
		conn_kill(vs, c);
		return;
	}
	if (c->watching)
		event_loop_unwatch(vs->vdev.loop, &c->src);
	c->watching = 0;
	event_loop_timer_cancel(vs->vdev.loop, &c->timer);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->owe = VSOCK_OWE_RST;
}

/* An RST for a packet that has no connection; dropped when too many wait. */
static void rst_reply(struct virtio_vsock *vs, uint32_t local, uint32_t peer)
{
	if (vs->rst_len == VSOCK_RST_QUEUE) {
		vs->counters.rx_rst_dropped++;
		return;
	}
	unsigned i = (vs->rst_head + vs->rst_len++) % VSOCK_RST_QUEUE;
	vs->rst[i].local = local;
	vs->rst[i].peer = peer;
}

/* A connection begins on @local/@peer: RSTs still waiting for an earlier
 * packet on these ports would reach the guest after it, as if refusing it. */
static void rst_forget(struct virtio_vsock *vs, uint32_t local, uint32_t peer)
{
	unsigned kept = 0;

	for (unsigned k = 0; k < vs->rst_len; k++) {
		unsigned i = (vs->rst_head + k) % VSOCK_RST_QUEUE;
		if (vs->rst[i].local == local && vs->rst[i].peer == peer)
			continue;
		vs->rst[(vs->rst_head + kept++) % VSOCK_RST_QUEUE] = vs->rst[i];
	}
	vs->rst_len = kept;
}

/* --- the host sockets' side ----------------------------------------------------- */

/* Move what waits toward the socket, then see whether the stream is over
 * (both directions shut, nothing left to write) or the guest should hear
 * of freed room. */
static void conn_progress(struct virtio_vsock *vs, struct vsock_conn *c)
{
	if (c->fd < 0 || c->state != VSOCK_CONN_ESTABLISHED)
		return;
	if (vsock_conn_flush(c) < 0) {
		vs->counters.tx_socket_write_failed++;
		vs->counters.rx_conns_reset++;
		conn_reset(vs, c);
		return;
	}
	bool drained = !vsock_conn_pending(c);
	if (drained && c->peer_shut_send && (c->peer_shut_rcv || c->host_eof)) {
		unsigned owed = c->owe & VSOCK_OWE_SHUTDOWN;
		vs->counters.tx_conns_closed++;
		conn_reset(vs, c);     /* the RST tells the guest its close is complete */
		c->owe |= owed;        /* after the host end's SHUTDOWN, if that is owed */
		return;
	}
	if (drained && c->peer_shut_send)
		shutdown(c->fd, SHUT_WR);
	if (vsock_conn_credit_due(c))
		c->owe |= VSOCK_OWE_CREDIT;
	conn_watch(vs, c);
}

static uint32_t next_local_port(struct virtio_vsock *vs)
{
	for (;;) {
		uint32_t p = vs->next_local_port++;
		if (vs->next_local_port < VSOCK_LOCAL_PORT_FIRST)
			vs->next_local_port = VSOCK_LOCAL_PORT_FIRST;
		bool used = false;
		for (unsigned i = 0; i < vs->max_conns && !used; i++)
			used = vs->conns[i].state > VSOCK_CONN_HANDSHAKE && vs->conns[i].local_port == p;
		if (!used)
			return p;
	}
}

/* A host client's line: on CONNECT, ask the guest for the port. */
static void handshake_read(struct virtio_vsock *vs, struct vsock_conn *c, uint32_t events)
{
	uint32_t port;
	int r = vsock_uds_read_connect(c->fd, events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR), &port);

	if (r == 0)
		return;
	if (r < 0) {
		if (r == -EINVAL)
			vs->counters.rx_conns_bad_command++;
		conn_kill(vs, c);
		return;
	}
	c->state = VSOCK_CONN_CONNECTING;
	c->local_port = next_local_port(vs);
	c->peer_port = port;
	rst_forget(vs, c->local_port, c->peer_port);
	c->owe = VSOCK_OWE_REQUEST;
	conn_watch(vs, c);          /* the stream's bytes wait for the guest's answer */
	rx_pump(vs);
}

static void on_conn_event(struct event_source *src, uint32_t events)
{
	struct vsock_conn *c = container_of(src, struct vsock_conn, src);
	struct virtio_vsock *vs = c->dev;

	if (c->state == VSOCK_CONN_HANDSHAKE) {
		handshake_read(vs, c, events);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
		c->readable = true;  /* a read finds the bytes, the end or the error */
		conn_watch(vs, c);
	}
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		conn_progress(vs, c);
	rx_pump(vs);
}

static void on_conn_timer(struct event_timer *t)
{
	struct vsock_conn *c = container_of(t, struct vsock_conn, timer);
	struct virtio_vsock *vs = c->dev;

	vs->counters.rx_conns_timed_out++;
	if (c->state == VSOCK_CONN_HANDSHAKE) {
		conn_kill(vs, c);
		return;
	}
	conn_reset(vs, c);          /* the guest may still answer the REQUEST: tell it */
	rx_pump(vs);
}

static void arm_timeout(struct virtio_vsock *vs, struct vsock_conn *c)
{
	event_loop_timer_arm(vs->vdev.loop, &c->timer, on_conn_timer,
			     (uint64_t)VSOCK_CONNECT_TIMEOUT_MS * 1000000u);
}

static void on_listen(struct event_source *src, uint32_t events)
{
	struct virtio_vsock *vs = container_of(src, struct virtio_vsock, listen_src);

	for (;;) {
		int fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;       /* EAGAIN, or a client gone before we took it */
		struct vsock_conn *c = conn_free_slot(vs);
		if (!c || vsock_conn_open(c, vs, fd, VSOCK_CONN_HANDSHAKE) < 0) {
			vs->counters.rx_conns_cap_refused++;
			close(fd);
			continue;
		}
		arm_timeout(vs, c);
		conn_watch(vs, c);
	}
}

/* --- packets from the guest (tx) -------------------------------------------- */

/* A guest REQUEST to host port h->dst_port: connect to P_port. */
static void guest_connect(struct virtio_vsock *vs, const struct vsock_hdr *h)
{
	struct vsock_conn *c = conn_free_slot(vs);

	if (!c) {
		vs->counters.tx_conns_cap_refused++;
		rst_reply(vs, h->dst_port, h->src_port);
		return;
	}
	int fd = vsock_uds_connect(vs->uds_path, h->dst_port);
	if (fd < 0 || vsock_conn_open(c, vs, fd, VSOCK_CONN_ESTABLISHED) < 0) {
		if (fd >= 0)
			close(fd);
		vs->counters.tx_conns_refused++;
		rst_reply(vs, h->dst_port, h->src_port);
		return;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	rst_forget(vs, c->local_port, c->peer_port);
	vsock_conn_peer_update(c, h);
	c->owe = VSOCK_OWE_RESPONSE;
	vs->counters.tx_conns_opened++;
	conn_watch(vs, c);
}

/* The guest accepted a host client's connection: "OK <hostport>\n" to the
 * client, and the bytes it sent after its line may flow. */
static void host_connect_accepted(struct virtio_vsock *vs, struct vsock_conn *c)
{
	event_loop_timer_cancel(vs->vdev.loop, &c->timer);
	c->state = VSOCK_CONN_ESTABLISHED;
	c->reply_len = (uint8_t)snprintf(c->reply, sizeof(c->reply), "OK %u\n", c->local_port);
	c->readable = true;
	vs->counters.rx_conns_opened++;
	conn_progress(vs, c);
}

static void on_rw(struct virtio_vsock *vs, struct vsock_conn *c, struct vq_chain *ch,
		  const struct vsock_hdr *h)
{
	if (c->peer_shut_send) {
		vs->counters.tx_packets_no_conn++;
		conn_reset(vs, c);
		return;
	}
	if (vsock_conn_buf_put(c, ch->iov, ch->n_out, VSOCK_HDR_LEN, h->len) < 0) {
		vs->counters.tx_credit_exceeded++;
		vs->counters.rx_conns_reset++;
		conn_reset(vs, c);
		return;
	}
	vs->counters.tx_bytes += h->len;
	conn_progress(vs, c);
}

static void on_shutdown(struct virtio_vsock *vs, struct vsock_conn *c, uint32_t flags)
{
	c->peer_shut_rcv |= !!(flags & VIRTIO_VSOCK_SHUTDOWN_RCV);
	c->peer_shut_send |= !!(flags & VIRTIO_VSOCK_SHUTDOWN_SEND);
	conn_progress(vs, c);
}

/* A packet for an established connection. */
static void established_packet(struct virtio_vsock *vs, struct vsock_conn *c,
			       struct vq_chain *ch, const struct vsock_hdr *h)
{
	switch (h->op) {
	case VIRTIO_VSOCK_OP_RW:
		on_rw(vs, c, ch, h);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		on_shutdown(vs, c, h->flags);
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->owe |= VSOCK_OWE_CREDIT;
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break;      /* the credit was taken already; rx_pump uses it */
	default:        /* REQUEST again, RESPONSE, unknown ops */
		vs->counters.tx_packets_no_conn++;
		vs->counters.rx_conns_reset++;
		conn_reset(vs, c);
	}
}

/* A packet for connection @c (any state but the handshake). */
static void conn_packet(struct virtio_vsock *vs, struct vsock_conn *c, struct vq_chain *ch,
			const struct vsock_hdr *h)
{
	if (h->op == VIRTIO_VSOCK_OP_RST) {
		if (c->state == VSOCK_CONN_CONNECTING)
			vs->counters.rx_conns_refused++;
		else if (c->fd >= 0)
			vs->counters.tx_conns_reset++;
		conn_kill(vs, c);
		return;
	}
	if (c->fd < 0)
		return;     /* our RST is on its way */
	vsock_conn_peer_update(c, h);
	if (c->state == VSOCK_CONN_ESTABLISHED) {
		established_packet(vs, c, ch, h);
	} else if (h->op == VIRTIO_VSOCK_OP_RESPONSE) {
		host_connect_accepted(vs, c);
	} else {
		vs->counters.tx_packets_no_conn++;
		vs->counters.rx_conns_reset++;
		conn_reset(vs, c);
	}
}

static void tx_packet(struct virtio_vsock *vs, struct vq_chain *ch, const struct vsock_hdr *h)
{
	if (h->dst_cid != VSOCK_HOST_CID || h->src_cid != vs->guest_cid) {
		vs->counters.tx_packets_bad_cid++;
		return;
	}
	bool rst = h->op == VIRTIO_VSOCK_OP_RST;
	struct vsock_conn *c = conn_find(vs, h->dst_port, h->src_port);
	if (h->type != VIRTIO_VSOCK_TYPE_STREAM) {
		vs->counters.tx_packets_bad_type++;
		/* The RST ends the connection on these ports too, so the guest
		 * and the device agree it is gone. */
		if (c && c->fd >= 0) {
			vs->counters.rx_conns_reset++;
			conn_reset(vs, c);
		} else if (!c && !rst) {
			rst_reply(vs, h->dst_port, h->src_port);
		}
		return;
	}
	if (c) {
		conn_packet(vs, c, ch, h);
	} else if (h->op == VIRTIO_VSOCK_OP_REQUEST) {
		guest_connect(vs, h);
	} else if (!rst) {
		vs->counters.tx_packets_no_conn++;
		rst_reply(vs, h->dst_port, h->src_port);
	}
}

static enum vq_verdict tx_chain(void *ctx, struct vq_chain *ch, enum vq_pop_result r,
				uint64_t *bytes)
{
	struct virtio_vsock *vs = ctx;
	struct vsock_hdr h;

	if (r != VQ_POP_OK) {
		vs->counters.tx_chains_invalid++;
	} else if (vsock_hdr_read(ch->iov, ch->n_out, ch->out_len, &h) != VSOCK_PARSE_OK) {
		vs->counters.tx_packets_malformed++;
	} else {
		vs->counters.tx_packets++;
		*bytes += h.len;
		tx_packet(vs, ch, &h);
	}
	vq_push(&vs->vqs[VSOCK_TX_QUEUE], ch->head, 0);
	return VQ_CONSUMED;
}

static void on_tx_more(struct event_deferred *d);

static void tx_drain(struct virtio_vsock *vs)
{
	if (!virtio_device_running(&vs->vdev))
		return;
	enum vq_drain_result r = vq_drain(&vs->vqs[VSOCK_TX_QUEUE], &vs->chain, &tx_budget,
					  tx_chain, vs);
	virtio_device_publish(&vs->vdev, VSOCK_TX_QUEUE);
	if (r == VQ_DRAIN_POISONED) {
		if (vq_poison_is_new(&vs->vqs[VSOCK_TX_QUEUE]))
			vs->counters.tx_queue_poisoned++;
		virtio_device_mark_broken(&vs->vdev, VSOCK_TX_QUEUE);
	} else if (r == VQ_DRAIN_BUDGET) {
		event_loop_defer(vs->vdev.loop, &vs->tx_more, on_tx_more);
	}
	rx_pump(vs);                /* the replies the packets asked for */
}

static void on_tx_more(struct event_deferred *d)
{
	tx_drain(container_of(d, struct virtio_vsock, tx_more));
}

/* --- packets to the guest (rx) -------------------------------------------------- */

enum rx_work { RX_NONE, RX_RST, RX_CONTROL, RX_DATA };

static bool conn_wants_data(const struct vsock_conn *c)
{
	return c->state == VSOCK_CONN_ESTABLISHED && c->fd >= 0 && c->readable &&
	       !c->host_eof && !c->peer_shut_rcv && vsock_conn_peer_credit(c) > 0;
}

/* The next thing to send: waiting RSTs first, then the connections in
 * turn from where the last look stopped, so none starves the others. */
static enum rx_work rx_pick(struct virtio_vsock *vs, struct vsock_conn **out)
{
	if (vs->rst_len)
		return RX_RST;
	for (unsigned k = 0; k < vs->max_conns; k++) {
		unsigned i = (vs->rx_cursor + k) % vs->max_conns;
		struct vsock_conn *c = &vs->conns[i];
		if (c->state == VSOCK_CONN_FREE || c->state == VSOCK_CONN_HANDSHAKE)
			continue;
		if (c->owe || conn_wants_data(c)) {
			vs->rx_cursor = (i + 1) % vs->max_conns;
			*out = c;
			return c->owe ? RX_CONTROL : RX_DATA;
		}
	}
	return RX_NONE;
}

static void rx_complete(struct virtio_vsock *vs, struct vq_chain *ch, uint32_t len,
			uint32_t payload)
{
	vq_push(&vs->vqs[VSOCK_RX_QUEUE], ch->head, len);
	vs->counters.rx_packets++;
	vs->counters.rx_bytes += payload;
}

static void send_rst(struct virtio_vsock *vs, struct vq_chain *ch)
{
	unsigned i = vs->rst_head;
	const struct vsock_hdr h = {
		.src_cid = VSOCK_HOST_CID, .dst_cid = vs->guest_cid,
		.src_port = vs->rst[i].local, .dst_port = vs->rst[i].peer,
		.type = VIRTIO_VSOCK_TYPE_STREAM, .op = VIRTIO_VSOCK_OP_RST,
	};

	vs->rst_head = (i + 1) % VSOCK_RST_QUEUE;
	vs->rst_len--;
	vsock_hdr_write(vq_chain_in(ch), ch->n_in, &h);
	rx_complete(vs, ch, VSOCK_HDR_LEN, 0);
}

/* The lowest control packet @c owes; after an RST the slot is free. */
static void send_control(struct virtio_vsock *vs, struct vsock_conn *c, struct vq_chain *ch)
{
	static const uint16_t ops[] = {
		VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_CREDIT_UPDATE,
		VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_OP_RST,
	};
	unsigned bit = (unsigned)__builtin_ctz(c->owe);
	struct vsock_hdr h;

	c->owe &= ~(1u << bit);
	vsock_conn_hdr(c, vs->guest_cid, ops[bit], &h);
	if (h.op == VIRTIO_VSOCK_OP_SHUTDOWN)
		h.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;     /* the host end sends no more */
	vsock_hdr_write(vq_chain_in(ch), ch->n_in, &h);
	rx_complete(vs, ch, VSOCK_HDR_LEN, 0);
	if (h.op == VIRTIO_VSOCK_OP_RST)
		conn_kill(vs, c);
}

/* The guest's buffer past the header, cut to @max bytes. */
static unsigned data_iov(struct virtio_vsock *vs, struct vq_chain *ch, size_t max)
{
	unsigned n = iov_skip(vq_chain_in(ch), ch->n_in, VSOCK_HDR_LEN, vs->data_iov,
			      VQ_CHAIN_MAX_IOV);
	size_t total = 0;

	for (unsigned i = 0; i < n; i++) {
		if (total + vs->data_iov[i].iov_len >= max) {
			vs->data_iov[i].iov_len = max - total;
			return i + 1;
		}
		total += vs->data_iov[i].iov_len;
	}
	return n;
}

/* The host end closed its side: tell the guest, and the stream may be over. */
static void host_eof(struct virtio_vsock *vs, struct vsock_conn *c)
{
	c->host_eof = true;
	c->owe |= VSOCK_OWE_SHUTDOWN;
	conn_progress(vs, c);
}

/* Bytes from the socket straight into the guest's buffer, no more than its
 * credit. False when nothing was sent (the chain goes back). */
static bool send_data(struct virtio_vsock *vs, struct vsock_conn *c, struct vq_chain *ch)
{
	size_t max = MIN(MIN((uint64_t)vsock_conn_peer_credit(c), ch->in_len - VSOCK_HDR_LEN),
			 (uint64_t)RX_PAYLOAD_MAX);
	unsigned n = data_iov(vs, ch, max);
	ssize_t got = readv(c->fd, vs->data_iov, (int)n);

	if (got > 0) {
		struct vsock_hdr h;
		vsock_conn_hdr(c, vs->guest_cid, VIRTIO_VSOCK_OP_RW, &h);
		h.len = (uint32_t)got;
		c->tx_cnt += (uint32_t)got;
		vsock_hdr_write(vq_chain_in(ch), ch->n_in, &h);
		rx_complete(vs, ch, VSOCK_HDR_LEN + (uint32_t)got, (uint32_t)got);
		return true;
	}
	if (got == 0) {
		host_eof(vs, c);
	} else if (errno == EAGAIN || errno == EINTR) {
		c->readable = false;      /* empty: wait for EPOLLIN */
		conn_watch(vs, c);
	} else {
		vs->counters.rx_socket_read_failed++;
		vs->counters.rx_conns_reset++;
		conn_reset(vs, c);
	}
	return false;
}

/* A receive chain fit for any packet: device-writable, room for a header
 * and at least a byte of data (Linux gives 4 KiB buffers), so a connection
 * picked for data always gets some. */
static bool rx_chain_ok(const struct vq_chain *ch)
{
	return !ch->n_out && ch->in_len > VSOCK_HDR_LEN;
}

/* One packet into the next receive chain; false when the queue has none
 * (kicks are on: the guest's next buffer wakes us) or is broken. */
static bool rx_one(struct virtio_vsock *vs, enum rx_work w, struct vsock_conn *c)
{
	struct virtqueue *vq = &vs->vqs[VSOCK_RX_QUEUE];
	struct vq_chain *ch = &vs->chain;
	enum vq_pop_result r = vq_next(vq, ch);

	if (r == VQ_POP_EMPTY)
		return false;
	if (r == VQ_POP_POISONED) {
		if (vq_poison_is_new(vq))
			vs->counters.rx_queue_poisoned++;
		virtio_device_mark_broken(&vs->vdev, VSOCK_RX_QUEUE);
		return false;
	}
	if (r != VQ_POP_OK || !rx_chain_ok(ch)) {
		vs->counters.rx_chains_invalid++;
		vq_push(vq, ch->head, 0);
		return true;
	}
	if (w == RX_RST)
		send_rst(vs, ch);
	else if (w == RX_CONTROL)
		send_control(vs, c, ch);
	else if (!send_data(vs, c, ch))
		vq_unpop(vq);
	return true;
}

static void on_rx_more(struct event_deferred *d);

static void rx_pump(struct virtio_vsock *vs)
{
	/* After a transport reset, a packet before the driver has taken it
	 * would belong to connections it is about to drop. */
	if (!virtio_device_running(&vs->vdev) || vs->event_ack_pending)
		return;
	unsigned budget = RX_BUDGET;
	struct vsock_conn *c = NULL;
	enum rx_work w;

	while ((w = rx_pick(vs, &c)) != RX_NONE && budget && rx_one(vs, w, c))
		budget--;
	virtio_device_publish(&vs->vdev, VSOCK_RX_QUEUE);
	if (!budget)
		event_loop_defer(vs->vdev.loop, &vs->rx_more, on_rx_more);
}

static void on_rx_more(struct event_deferred *d)
{
	rx_pump(container_of(d, struct virtio_vsock, rx_more));
}

/* --- device operations ---------------------------------------------------------- */

static uint64_t vsock_features(struct virtio_device *vdev)
{
	return VSOCK_FEATURES;
}

static int vsock_set_features(struct virtio_device *vdev, uint64_t features)
{
	return 0;
}

static void vsock_config_read(struct virtio_device *vdev, void *config)
{
	struct virtio_vsock_config c = { .guest_cid = htole64(to_vsock(vdev)->guest_cid) };

	memcpy(config, &c, sizeof(c));
}

/* The CID is the device's to set (5.10.4): driver writes are ignored. */
static void vsock_config_write(struct virtio_device *vdev, uint32_t offset, const void *data,
			       uint32_t len)
{
}

static int vsock_activate(struct virtio_device *vdev)
{
	tx_drain(to_vsock(vdev));   /* packets queued before DRIVER_OK; then rx */
	return 0;
}

static void vsock_queue_notify(struct virtio_device *vdev, unsigned q)
{
	struct virtio_vsock *vs = to_vsock(vdev);

	if (q == VSOCK_TX_QUEUE)
		tx_drain(vs);
	else if (q == VSOCK_RX_QUEUE)
		rx_pump(vs);
	else if (vs->event_ack_pending) {
		/* The driver gave an event buffer back: it has taken the reset. */
		vs->event_ack_pending = false;
		rx_pump(vs);
	}
}

/* The guest's next event buffer says TRANSPORT_RESET (virtio 1.2, 5.10.6,
 * "Device Events"): its connections are gone with the old process. No
 * buffer: the driver's connections fail one by one instead (RST for each
 * packet). */
static void send_transport_reset(struct virtio_vsock *vs)
{
	struct virtqueue *vq = &vs->vqs[VSOCK_EVENT_QUEUE];
	struct virtio_vsock_event ev = { .id = htole32(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET) };
	struct vq_chain *ch = &vs->chain;
	enum vq_pop_result r = vq_pop(vq, ch);

	if (r != VQ_POP_OK || ch->n_out || ch->in_len < sizeof(ev)) {
		if (r == VQ_POP_OK || r == VQ_POP_BAD_CHAIN)
			vq_push(vq, ch->head, 0);
		log_warn("virtio-vsock: no event buffer for the transport reset after the restore");
		virtio_device_publish(&vs->vdev, VSOCK_EVENT_QUEUE);
		return;
	}
	iov_from_buf(vq_chain_in(ch), ch->n_in, 0, &ev, sizeof(ev));
	vq_push(vq, ch->head, sizeof(ev));
	vs->event_ack_pending = true;
	vq_notify_on_next(vq);
	virtio_device_publish(&vs->vdev, VSOCK_EVENT_QUEUE);
	log_info("virtio-vsock: transport reset sent to the guest (its connections are gone)");
}

/* The driver's connections are gone with its state: close every socket. */
static void vsock_reset(struct virtio_device *vdev)
{
	struct virtio_vsock *vs = to_vsock(vdev);

	for (unsigned i = 0; i < vs->max_conns; i++)
		if (vs->conns[i].state != VSOCK_CONN_FREE)
			conn_kill(vs, &vs->conns[i]);
	vs->rst_len = 0;
	vs->reset_on_resume = vs->event_ack_pending = false;
	event_loop_cancel(vdev->loop, &vs->rx_more);
	event_loop_cancel(vdev->loop, &vs->tx_more);
}

/* Transmit chains that waited (a restored device: those in flight at the
 * snapshot, whose connections are gone, get RST once the guest acks). */
static void vsock_resume(struct virtio_device *vdev)
{
	struct virtio_vsock *vs = to_vsock(vdev);

	if (vs->reset_on_resume && vdev->active) {
		vs->reset_on_resume = false;
		send_transport_reset(vs);
	}
	tx_drain(vs);
	rx_pump(vs);
}

static void vsock_visit_counters(struct virtio_device *vdev, const struct counter_sink *sink)
{
	counters_visit(&virtio_vsock_counter_set, &to_vsock(vdev)->counters, "", sink);
}

#define X(name, doc) COUNTER_DESC(struct virtio_vsock_counters, name, doc)
const struct counter_set virtio_vsock_counter_set =
	COUNTER_SET("virtio_vsock", VIRTIO_VSOCK_COUNTERS(X));
#undef X

static const struct virtio_device_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.config_size = sizeof(struct virtio_vsock_config),
	.features = vsock_features,
	.set_features = vsock_set_features,
	.config_read = vsock_config_read,
	.config_write = vsock_config_write,
	.activate = vsock_activate,
	.queue_notify = vsock_queue_notify,
	.reset = vsock_reset,
	.resume = vsock_resume,
	.visit_counters = vsock_visit_counters,
	.save_state = virtio_vsock_save_state,
	.load_state = virtio_vsock_load_state,
};

/* --- set-up -------------------------------------------------------------------- */

static int check_opts(const struct virtio_vsock_opts *o, struct errbuf *eb)
{
	if (!virtio_vsock_cid_valid(o->guest_cid)) {
		errbuf_set(eb, "guest CID %llu: must be 3 to %u", (unsigned long long)o->guest_cid,
			   UINT32_MAX);
		return -EINVAL;
	}
	if (!o->uds_path || !*o->uds_path || strlen(o->uds_path) > VSOCK_UDS_PATH_MAX) {
		errbuf_set(eb, "the socket path must be 1 to %zu bytes", VSOCK_UDS_PATH_MAX);
		return -EINVAL;
	}
	return 0;
}

int virtio_vsock_init(struct virtio_vsock *vs, struct event_loop *loop,
		      const struct virtio_vsock_opts *opts, struct errbuf *eb)
{
	memset(vs, 0, sizeof(*vs));
	vs->listen_fd = -1;
	int r = check_opts(opts, eb);
	if (r < 0)
		return r;
	vs->max_conns = opts->max_conns ? opts->max_conns : VSOCK_MAX_CONNS_DEFAULT;
	vs->conns = calloc(vs->max_conns, sizeof(*vs->conns));
	if (!vs->conns) {
		errbuf_set(eb, "no memory for %u connections", vs->max_conns);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < vs->max_conns; i++)
		vs->conns[i].fd = -1;
	vs->guest_cid = opts->guest_cid;
	snprintf(vs->uds_path, sizeof(vs->uds_path), "%s", opts->uds_path);
	vs->next_local_port = VSOCK_LOCAL_PORT_FIRST;
	vs->vdev.ops = &vsock_ops;
	vs->vdev.loop = loop;
	vs->vdev.vqs = vs->vqs;
	vs->vdev.num_queues = VSOCK_NUM_QUEUES;
	for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
		vq_reset(&vs->vqs[q]);
	vs->listen_fd = opts->listen_fd >= 0 ? opts->listen_fd : vsock_uds_listen(opts->uds_path, eb);
	r = vs->listen_fd < 0 ? vs->listen_fd
			      : event_loop_watch(loop, &vs->listen_src, vs->listen_fd, EPOLLIN,
						 on_listen, "vsock listener");
	if (r < 0) {
		if (vs->listen_fd >= 0)
			errbuf_set(eb, "%s: cannot watch the socket: %s", vs->uds_path, strerror(-r));
		if (opts->listen_fd >= 0)
			vs->listen_fd = -1;      /* still the caller's */
		virtio_vsock_destroy(vs);
		return r;
	}
	return 0;
}

void virtio_vsock_destroy(struct virtio_vsock *vs)
{
	struct event_loop *loop = vs->vdev.loop;

	for (unsigned i = 0; vs->conns && i < vs->max_conns; i++)
		if (vs->conns[i].state != VSOCK_CONN_FREE)
			conn_kill(vs, &vs->conns[i]);
	free(vs->conns);
	vs->conns = NULL;
	if (vs->listen_src.registered)
		event_loop_unwatch(loop, &vs->listen_src);
	if (vs->listen_fd >= 0) {
		close(vs->listen_fd);
		unlink(vs->uds_path);
	}
	vs->listen_fd = -1;
	if (loop) {
		event_loop_cancel(loop, &vs->rx_more);
		event_loop_cancel(loop, &vs->tx_more);
	}
}
