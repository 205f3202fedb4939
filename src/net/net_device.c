/*
 * virtio-net device (virtio 1.x section 5.1): the data path between the
 * guest's RX/TX queues and a host backend. Order of this file: config and
 * features, counters, TX path, RX path, the backend's way up, lifecycle ops, init.
 */
#include "net/net_device.h"
#include "core/seccomp_filter.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/hex.h"
#include "core/log.h"
#include "net/offload.h"

_Static_assert(sizeof(struct virtio_net_hdr_v1) == NET_HDR_LEN, "virtio-net header size");

#define NET_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC) | \
		      (1ull << VIRTIO_NET_F_MTU) | (1ull << VIRTIO_NET_F_STATUS) | \
		      (1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_NET_F_CTRL_VQ) | \
		      (1ull << VIRTIO_NET_F_CTRL_RX) | (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR) | \
		      (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE) | \
		      (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC))
/* RX offloads that make frames larger than the MTU. */
#define NET_GUEST_GSO (NET_F(VIRTIO_NET_F_GUEST_TSO4) | NET_F(VIRTIO_NET_F_GUEST_TSO6) | \
		       NET_F(VIRTIO_NET_F_GUEST_UFO) | NET_F(VIRTIO_NET_F_GUEST_USO4) | \
		       NET_F(VIRTIO_NET_F_GUEST_USO6))
/* Ethernet header and one VLAN tag, on top of the MTU. */
#define NET_ETH_VLAN_HDR 18u

/* Why a pair's notifier was signalled (net_queue_pair.wake_bits). */
#define NET_WAKE_RX 1u        /* the guest gave RX buffers */
#define NET_WAKE_TX 2u        /* the guest queued frames */
#define NET_WAKE_STOP 4u      /* end the thread */

/* A data-path counter: only the pair's thread writes it, others read it
 * with relaxed loads (counters_visit), so a relaxed store of the sum
 * suffices and costs no locked instruction. */
#define PAIR_ADD(qp, name, n) \
	store_relaxed(&(qp)->counters.name, (qp)->counters.name + (uint64_t)(n))
#define PAIR_INC(qp, name) PAIR_ADD(qp, name, 1)

static struct net_device *to_net(struct virtio_device *vdev)
{
	return container_of(vdev, struct net_device, vdev);
}

/*
 * Offloads offered: a backend with offloads of its own (a tap, loopback)
 * gets exactly those, frames passing with their headers; for a backend
 * of plain frames kvmini completes checksums and segments TCP and UDP
 * itself (NET_SOFT_OFFLOADS) and offers nothing on RX, where such a
 * backend's frames are plain anyway.
 */
static uint64_t net_offered_offloads(const struct net_backend *be)
{
	return net_backend_has_vnet_hdr(be) ? be->offloads : NET_SOFT_OFFLOADS;
}

/* RX offloads the driver may switch through the control queue. */
static uint64_t with_ctrl_offloads(uint64_t offloads)
{
	return offloads & NET_GUEST_OFFLOADS ? offloads | NET_F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS)
					     : offloads;
}

static uint64_t net_features(struct virtio_device *vdev)
{
	struct net_device *net = to_net(vdev);
	uint64_t f = NET_FEATURES;

	if (net->npairs > 1)
		f |= NET_F(VIRTIO_NET_F_MQ);
	if (net->opts.offloads_off)
		return f;
	return f | with_ctrl_offloads(net_offered_offloads(net->backend));
}

/* Queues with @features: the pairs (all of them with MQ, else the
 * first), then the control queue when negotiated. */
static unsigned queues_for(const struct net_device *net, uint64_t features)
{
	unsigned pairs = features & NET_F(VIRTIO_NET_F_MQ) ? net->npairs : 1;

	return 2 * pairs + (features & NET_F(VIRTIO_NET_F_CTRL_VQ) ? 1 : 0);
}

unsigned net_ctrl_queue(const struct net_device *net)
{
	return virtio_device_has(&net->vdev, VIRTIO_NET_F_MQ) ? 2 * net->npairs : 2;
}

/* Tell every pair's backend which offloaded RX frames the guest takes
 * (a multi-queue tap's setting is the tap's: each queue says the same). */
int net_backends_set_offloads(struct net_device *net, uint64_t guest)
{
	for (unsigned i = 0; i < net->npairs; i++) {
		struct net_backend *be = net->pairs[i].be;
		int r = be->ops->set_offloads ? be->ops->set_offloads(be, guest & be->offloads) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* The backend learns which offloaded frames the guest takes on RX: those
 * it acked, or those it had set through the control queue before a
 * snapshot. The control queue exists only when acked. */
static void ctrl_forget(struct net_device *net);

/* A driver negotiating starts from the control queue's defaults (a
 * restored device from the snapshot's settings). Not at reset: vhost-user
 * stops and starts the device on every ring change, where the driver's
 * settings (VQ_PAIRS_SET, RX offloads) must stay. */
static int net_set_features(struct virtio_device *vdev, uint64_t features)
{
	struct net_device *net = to_net(vdev);
	struct net_backend *be = net->backend;
	uint64_t guest = features & NET_GUEST_OFFLOADS;

	if (net->ctrl_restored)
		guest &= net->ctrl.guest_offloads;
	else
		ctrl_forget(net);
	net->ctrl_restored = false;
	net->ctrl.guest_offloads = guest;
	vdev->num_queues = queues_for(net, features);
	int r = net_backends_set_offloads(net, guest);
	if (r < 0)
		log_warn("virtio-net: %s backend refused the guest's offloads 0x%llx: %s",
			 be->ops->name, (unsigned long long)guest, strerror(-r));
	return r;
}

static void net_config_read(struct virtio_device *vdev, void *buf)
{
	struct net_device *net = to_net(vdev);
	struct virtio_net_config cfg = {
		.status = VIRTIO_NET_S_LINK_UP | (net->ctrl.announce ? VIRTIO_NET_S_ANNOUNCE : 0),
		.max_virtqueue_pairs = (uint16_t)net->npairs,
		.mtu = net->opts.mtu,
		.speed = UINT32_MAX,    /* unknown (spec 5.1.4) */
		.duplex = 0xff,         /* unknown */
	};

	memcpy(cfg.mac, net->opts.mac, sizeof(cfg.mac));
	memcpy(buf, &cfg, sizeof(cfg));
}

/* --- counters ------------------------------------------------------------ */

/* The device's number for @vq (a member of net->vqs). */
static unsigned net_vq_index(const struct net_device *net, const struct virtqueue *vq)
{
	return (unsigned)(vq - net->vqs);
}

static bool threaded(const struct net_device *net)
{
	return net->opts.pair_threads;
}

/* Should the pair move buffers: with pair threads, while its thread is
 * meant to run (set and cleared by the device's loop with the thread
 * stopped, so never read in a race); else the device's own state. */
static bool pair_running(const struct net_queue_pair *qp)
{
	return threaded(qp->net) ? qp->go : virtio_device_running(&qp->net->vdev);
}

/* Pair threads hand the device's loop what only it may do. */
static void post_to_device(struct net_device *net, bool *flag)
{
	if (exchange_seq_cst(flag, true))
		return;    /* already posted, not yet taken */
	int r = event_notifier_signal(&net->posted);
	if (r < 0)
		log_warn("virtio-net: device notifier: %s", strerror(-r));
}

/* A queue was found poisoned: count it once per queue and raise NEEDS_RESET
 * (on the device's loop: it is a config interrupt). */
static void note_poisoned(struct net_queue_pair *qp, struct virtqueue *vq)
{
	struct net_device *net = qp->net;
	unsigned q = net_vq_index(net, vq);

	if (vq_poison_is_new(vq))
		PAIR_INC(qp, avail_index_invalid);
	if (threaded(net))
		post_to_device(net, &net->poisoned_pending[q]);
	else
		virtio_device_mark_broken(&net->vdev, q);
}

static void push_used(struct net_queue_pair *qp, struct virtqueue *vq, uint16_t head,
		      uint32_t len)
{
	if (vq_push(vq, head, len) < 0)
		PAIR_INC(qp, used_add_failed);
}

/* Publish @vq's used entries; true when the driver asked for an
 * interrupt. From a pair thread the interrupt goes out directly where the
 * transport can (an irqfd, a call eventfd), else through the device's loop. */
static bool pair_publish(struct net_queue_pair *qp, struct virtqueue *vq)
{
	struct net_device *net = qp->net;
	struct virtio_transport *t = net->vdev.transport;
	unsigned q = net_vq_index(net, vq);

	if (!threaded(net))
		return virtio_device_publish(&net->vdev, q);
	if (!vq_publish(vq) || !t)
		return false;
	if (!t->ops->signal_used_direct || !t->ops->signal_used_direct(t, q))
		post_to_device(net, &net->irq_pending[q]);
	return true;
}

static void on_more_work(struct event_deferred *d);

/* Run both drains after the loop's other ready work. */
static void schedule_more_work(struct net_queue_pair *qp)
{
	event_loop_defer(qp->loop, &qp->more_work, on_more_work);
}

static void publish_rx(struct net_queue_pair *qp)
{
	if (!qp->rx_dirty)
		return;
	qp->rx_dirty = false;
	if (pair_publish(qp, qp->rx))
		PAIR_INC(qp, rx_interrupts);
}

static void publish_tx(struct net_queue_pair *qp)
{
	qp->tx_dirty = false;
	if (pair_publish(qp, qp->tx))
		PAIR_INC(qp, tx_interrupts);
}

/*
 * Publish (and maybe interrupt) after a drain, unless it only stopped for
 * its budget with fewer than a budget's worth of frames unpublished: the
 * byte budget yields to other work every few dozen large frames, and an
 * interrupt each time would cost more than the fairness is worth. The
 * drain that follows publishes them.
 */
static bool publish_due(enum vq_drain_result r, const struct virtqueue *vq)
{
	return r != VQ_DRAIN_BUDGET || vq_unpublished(vq) >= NET_BUDGET_FRAMES;
}

/* --- TX: guest -> backend ------------------------------------------------ */

/* Linux vhost-net's weights: a wake-up moves at most this much. */
static const struct vq_budget net_budget = {
	.chains = NET_BUDGET_FRAMES, .bytes = NET_BUDGET_BYTES,
};

/* Take @len bytes and one op from the TX limiter; count each stop once. */
static force_inline bool tx_admit(struct net_queue_pair *qp, uint64_t len)
{
	struct rate_limiter *rl = &qp->tx_limiter;

	if (rate_limiter_unlimited(rl))
		return true;
	bool was_blocked = rate_limiter_blocked(rl);

	if (rate_limiter_consume(rl, len))
		return true;
	if (!was_blocked)
		PAIR_INC(qp, tx_rate_limited);
	return false;
}

/* The backend is full or the rate limiter holds TX back. */
static bool tx_stalled(struct net_queue_pair *qp)
{
	return qp->tx_blocked || rate_limiter_blocked(&qp->tx_limiter);
}

/* A kept frame's token: its pair and its chain's head. */
static uint32_t tx_token(const struct net_queue_pair *qp, uint16_t head)
{
	return (uint32_t)(qp - qp->net->pairs) << 16 | head;
}

/* A header that asks for offloads, checked against what the guest acked
 * (net/offload.h) into qp->tx_hdr. A refused one is counted and its chain
 * completed: no backend sees a header the guest invented. */
static bool tx_check_offload_header(struct net_queue_pair *qp, struct vq_chain *c,
				    uint64_t len, const struct virtio_net_hdr_v1 *in)
{
	struct net_device *net = qp->net;
	uint8_t head[NET_OFFLOAD_HEAD_MAX];
	size_t head_len = iov_to_buf(c->iov, c->n_out, NET_HDR_LEN, head,
				     MIN(len, sizeof(head)));
	enum net_hdr_fault f = net_tx_hdr_check(in, net->vdev.features, head, head_len, len,
						&qp->tx_hdr);
	if (f == NET_HDR_OK)
		return true;
	PAIR_INC(qp, tx_hdr_invalid);
	log_debug("virtio-net: TX header refused: %s", net_hdr_fault_str(f));
	push_used(qp, qp->tx, c->head, 0);
	return false;
}

/* The header the guest sent with @c's frame of @len bytes, into
 * qp->tx_hdr; false when it was refused. Inline: a plain frame's test is a
 * few instructions, an offload header's check a call. */
static inline bool tx_check_header(struct net_queue_pair *qp, struct vq_chain *c, uint64_t len)
{
	struct virtio_net_hdr_v1 in;

	iov_to_buf(c->iov, c->n_out, 0, &in, sizeof(in));
	if (!in.flags && in.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		memset(&qp->tx_hdr, 0, sizeof(qp->tx_hdr));    /* the common plain frame */
		return true;
	}
	return tx_check_offload_header(qp, c, len, &in);
}

/* A frame that needs finishing, for a backend of plain frames: its
 * checksum completed or its segments made here (soft_tx.h). */
static int tx_send_soft(struct net_queue_pair *qp, const struct iovec *frame, unsigned n,
			uint64_t len)
{
	int r = net_soft_tx_send(&qp->soft, qp->be, &qp->tx_hdr, frame, n, len);

	if (r < 0)
		return r;
	if (qp->tx_hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE)
		PAIR_INC(qp, tx_csum_completed);
	else
		PAIR_INC(qp, tx_gso_segmented);
	return 0;
}

/* Hand @c's frame to the backend: behind the checked header for a backend
 * with offloads, plain or finished in software for the others. */
static force_inline int tx_send(struct net_queue_pair *qp, struct vq_chain *c, uint64_t len)
{
	struct net_backend *be = qp->be;
	struct iovec frame[VQ_CHAIN_MAX_IOV + 1];
	bool vnet = net_backend_has_vnet_hdr(be);
	unsigned n = iov_skip(c->iov, c->n_out, NET_HDR_LEN, frame + 1, VQ_CHAIN_MAX_IOV);

	if (vnet) {
		frame[0] = (struct iovec){ &qp->tx_hdr, NET_HDR_LEN };
		return be->ops->send(be, frame, n + 1, tx_token(qp, c->head));
	}
	if (net_hdr_is_plain(&qp->tx_hdr))
		return be->ops->send(be, frame + 1, n, tx_token(qp, c->head));
	return tx_send_soft(qp, frame + 1, n, len);
}

/* Send one TX chain. Held when the backend is full or the rate limiter
 * holds TX back: the same chain is sent when TX resumes. */
static force_inline enum vq_verdict tx_one(struct net_queue_pair *qp, struct vq_chain *c, uint64_t *bytes)
{
	/* TX buffers are device-readable only and start with the header. */
	if (c->n_in || c->out_len <= NET_HDR_LEN) {
		PAIR_INC(qp, tx_chain_invalid);
		push_used(qp, qp->tx, c->head, 0);
		return VQ_CONSUMED;
	}
	uint64_t len = c->out_len - NET_HDR_LEN;
	if (len > NET_TX_FRAME_MAX) {
		PAIR_INC(qp, tx_frame_oversize);
		push_used(qp, qp->tx, c->head, 0);
		return VQ_CONSUMED;
	}
	if (!tx_check_header(qp, c, len))
		return VQ_CONSUMED;
	if (!tx_admit(qp, len))
		return VQ_HOLD;    /* the limiter's timer resumes us */
	int r = tx_send(qp, c, len);
	if (r == -EAGAIN) {
		rate_limiter_refund(&qp->tx_limiter, len);
		qp->tx_blocked = true;
		return VQ_HOLD;    /* tx_unblocked resumes us */
	}
	if (r < 0) {
		PAIR_INC(qp, tx_backend_errors);
	} else {
		PAIR_INC(qp, tx_packets);
		PAIR_ADD(qp, tx_bytes, len);
	}
	*bytes += len;
	/* A kept frame's buffer goes back with tx_done. Otherwise the device
	 * writes nothing into TX buffers: used length 0. */
	if (r != NET_SEND_KEPT)
		push_used(qp, qp->tx, c->head, 0);
	return VQ_CONSUMED;
}

static enum vq_verdict tx_chain(void *ctx, struct vq_chain *c, enum vq_pop_result r,
				uint64_t *bytes)
{
	struct net_queue_pair *qp = ctx;

	if (r == VQ_POP_OK)
		return tx_one(qp, c, bytes);
	PAIR_INC(qp, tx_chain_invalid);
	push_used(qp, qp->tx, c->head, 0);
	return VQ_CONSUMED;
}

/* The frames the backend kept for a batch go out (backend.h, flush): their
 * chains come back through tx_done before the drain publishes. */
static void tx_flush(struct net_queue_pair *qp)
{
	if (qp->be->ops->flush)
		qp->be->ops->flush(qp->be);
}

/* Send what the guest queued, up to the budget; one interrupt per drain. */
static void tx_drain(struct net_queue_pair *qp)
{
	struct virtqueue *vq = qp->tx;

	if (!pair_running(qp) || tx_stalled(qp))
		return;
	enum vq_drain_result r = vq_drain(vq, &qp->tx_chain, &net_budget, tx_chain, qp);
	tx_flush(qp);
	if (publish_due(r, qp->tx))
		publish_tx(qp);
	if (r == VQ_DRAIN_POISONED)
		note_poisoned(qp, qp->tx);
	else if (r == VQ_DRAIN_BUDGET)
		schedule_more_work(qp);
}

/* --- RX: backend -> guest ------------------------------------------------ */

/* May a frame go to the guest now? Counts each stop of RX once. The size
 * is not known before a backend's recv, so frames are charged after
 * delivery (rx_complete) and a frame may leave the buckets in debt. */
static force_inline bool rx_admit(struct net_queue_pair *qp)
{
	struct rate_limiter *rl = &qp->rx_limiter;

	if (rate_limiter_unlimited(rl))
		return true;
	bool was_blocked = rate_limiter_blocked(rl);

	if (rate_limiter_admit(rl))
		return true;
	if (!was_blocked)
		PAIR_INC(qp, rx_rate_limited);
	return false;
}

/* RX buffers are device-writable only (spec 5.1.6.3) and hold a header.
 * Others are completed unused and counted. */
static bool rx_chain_usable(struct net_queue_pair *qp, struct vq_chain *c, enum vq_pop_result r)
{
	if (r == VQ_POP_OK && !c->n_out && c->in_len >= NET_HDR_LEN)
		return true;
	PAIR_INC(qp, rx_chain_invalid);
	push_used(qp, qp->rx, c->head, 0);
	qp->rx_dirty = true;
	return false;
}

static bool rx_poisoned(struct net_queue_pair *qp)
{
	return qp->rx->faults.poisoned != VQ_POISON_NONE;
}

static void rx_watch_backend(struct net_queue_pair *qp, bool on)
{
	if (qp->be->rx_fd < 0 || qp->rx_fd_watched == on)
		return;
	if (event_loop_modify(qp->loop, &qp->rx_event, on ? EPOLLIN : 0) == 0)
		qp->rx_fd_watched = on;
}

/* The backend's recv gave no frame: nothing waiting (0, -EAGAIN) or
 * an error, counted. */
static void rx_recv_failed(struct net_queue_pair *qp, ssize_t len)
{
	if (len == 0 || len == -EAGAIN)
		return;
	PAIR_INC(qp, rx_write_failed);
	log_debug("net: backend recv: %s", strerror((int)-len));
}

/*
 * Mergeable RX buffers (VIRTIO_NET_F_MRG_RXBUF). A frame spreads over as
 * many chains as it needs, the first holding the header with num_buffers.
 * Before reading, chains are gathered until they hold the next frame, when
 * the backend can tell its length (peek_len), or else the largest frame
 * the backend may deliver (rx_room_needed); a ring that runs dry first
 * is read into all the same, with the spill buffer behind the guest's: a
 * frame that reaches the spill waits there, whole, for more buffers
 * (never truncated), and the chains go back to the ring meanwhile.
 */
static bool rx_mergeable(const struct net_device *net)
{
	return virtio_device_has(&net->vdev, VIRTIO_NET_F_MRG_RXBUF);
}

/* What RX frames may use: the features acked, with the RX offloads the
 * driver has in force (the control queue may have turned some off). */
static uint64_t rx_features(const struct net_device *net)
{
	return (net->vdev.features & ~NET_GUEST_OFFLOADS) | net->ctrl.guest_offloads;
}

/* Header and frame the backend may deliver with what the guest takes. */
static size_t rx_room_needed(const struct net_queue_pair *qp)
{
	const struct net_device *net = qp->net;

	if (rx_features(net) & NET_GUEST_GSO)
		return NET_HDR_LEN + NET_OFFLOAD_FRAME_MAX;
	unsigned mtu = MAX(net->opts.mtu, qp->be->host_mtu);
	size_t frame = NET_ETH_VLAN_HDR + (mtu ? mtu : 1500u);

	/* No frame is larger than the spill buffer holds (a 64 KiB MTU). */
	return NET_HDR_LEN + MIN(frame, (size_t)NET_OFFLOAD_FRAME_MAX);
}

/* The room to gather for the backend's next frame: its own length when
 * the backend can tell it (a queue backend: loopback), so a small frame
 * takes one chain rather than room for 64 KiB popped and given back; else
 * the largest the backend may deliver. */
static size_t rx_room_next(const struct net_queue_pair *qp)
{
	struct net_backend *be = qp->be;
	size_t most = rx_room_needed(qp);

	if (!be->ops->peek_len)
		return most;
	ssize_t n = be->ops->peek_len(be);
	if (n < 0)
		return most;
	size_t len = net_backend_has_vnet_hdr(be) ? (size_t)n : NET_HDR_LEN + (size_t)n;
	return MIN(MAX(len, (size_t)NET_HDR_LEN), most);
}

/* Start the gather list with @c: its room after the header. */
static force_inline void rx_gather_first(struct net_queue_pair *qp, struct vq_chain *c)
{
	qp->rx_heads[0] = c->head;
	qp->rx_caps[0] = (uint32_t)c->in_len;
	qp->rx_nchains = 1;
	qp->rx_room = c->in_len;
	qp->rx_niov = iov_skip(vq_chain_in(c), c->n_in, NET_HDR_LEN, qp->rx_iov,
			       NET_RX_IOV_MAX - 1);
}

/* Take one more chain onto the gather list; false when the ring has none
 * that may be used now. A bad chain is given back: the next drain
 * completes it as a head, so the chains given back stay the last ones
 * taken. */
static bool rx_gather_more(struct net_queue_pair *qp)
{
	struct vq_chain *c = qp->rx_more;
	enum vq_pop_result r = vq_pop(qp->rx, c);

	if (r == VQ_POP_POISONED)
		note_poisoned(qp, qp->rx);
	if (r == VQ_POP_EMPTY || r == VQ_POP_POISONED)
		return false;
	if (r != VQ_POP_OK || c->n_out || c->in_len < NET_HDR_LEN ||
	    qp->rx_niov + c->n_in > NET_RX_IOV_MAX - 1) {
		vq_unpop(qp->rx);
		qp->rx_gather_stopped = true;
		return false;
	}
	memcpy(qp->rx_iov + qp->rx_niov, vq_chain_in(c), c->n_in * sizeof(struct iovec));
	qp->rx_niov += c->n_in;
	qp->rx_heads[qp->rx_nchains] = c->head;
	qp->rx_caps[qp->rx_nchains++] = (uint32_t)c->in_len;
	qp->rx_room += c->in_len;
	return true;
}

/* Gather chains after @c until they hold @need bytes. false when the ring
 * ran dry first (more buffers may come). */
static force_inline bool rx_gather(struct net_queue_pair *qp, struct vq_chain *c, size_t need)
{
	rx_gather_first(qp, c);
	qp->rx_gather_stopped = false;
	if (!rx_mergeable(qp->net))
		return true;
	while (qp->rx_room < need && qp->rx_nchains < NET_RX_MERGE_MAX)
		if (!rx_gather_more(qp))
			return qp->rx_gather_stopped;
	return true;
}

/* The chains gathered after the first go back to the ring, from @keep on. */
static void rx_give_back(struct net_queue_pair *qp, unsigned keep)
{
	for (unsigned i = MAX(keep, 1u); i < qp->rx_nchains; i++)
		vq_unpop(qp->rx);
	qp->rx_nchains = MIN(qp->rx_nchains, MAX(keep, 1u));
}

/* Each gathered chain the frame (@total bytes) reached completed with
 * what it holds, the rest back to the ring; returns how many it used. */
static unsigned rx_complete_merged(struct net_queue_pair *qp, size_t total)
{
	size_t left = total;
	unsigned used = 0;

	while (used < qp->rx_nchains && (left || !used)) {
		uint32_t len = (uint32_t)MIN(left, (size_t)qp->rx_caps[used]);
		push_used(qp, qp->rx, qp->rx_heads[used++], len);
		left -= len;
	}
	rx_give_back(qp, used);
	return used;
}

/* The frame (header included, @total bytes) is in the gathered chains:
 * each chain's used length, the header with num_buffers and the checked
 * offload fields into the first, and the unused chains back to the ring. */
static force_inline void rx_complete(struct net_queue_pair *qp, struct vq_chain *c, size_t total)
{
	unsigned used = 1;

	if (qp->rx_nchains == 1) {        /* without MRG_RXBUF always; small frames with */
		push_used(qp, qp->rx, qp->rx_heads[0], (uint32_t)total);
	} else {
		used = rx_complete_merged(qp, total);
	}
	/* num_buffers goes to the guest from a register, not through rx_hdr:
	 * a load of rx_hdr spanning the narrow store just made to it cannot be
	 * forwarded and stalls (measured: a tenth of a small frame's time). */
	uint16_t num_buffers = (uint16_t)used;
	qp->rx_hdr.num_buffers = num_buffers;
	iov_from_buf(vq_chain_in(c), c->n_in, 0, &qp->rx_hdr,
		     offsetof(struct virtio_net_hdr_v1, num_buffers));
	iov_from_buf(vq_chain_in(c), c->n_in, offsetof(struct virtio_net_hdr_v1, num_buffers),
		     &num_buffers, sizeof(num_buffers));
	qp->rx_dirty = true;
	size_t len = total - NET_HDR_LEN;
	PAIR_INC(qp, rx_packets);
	PAIR_ADD(qp, rx_bytes, len);
	PAIR_ADD(qp, rx_merged_buffers, used - 1);
	rate_limiter_charge(&qp->rx_limiter, len);
}

/* A frame reached the spill buffer: keep it there whole (header at its
 * start) and give the chains back until the guest has room for it. */
static void rx_spill(struct net_queue_pair *qp, size_t total)
{
	size_t in_guest = qp->rx_room - NET_HDR_LEN;

	memcpy(qp->rx_spill_buf, &qp->rx_hdr, NET_HDR_LEN);
	iov_to_buf(qp->rx_iov, qp->rx_niov, 0, qp->rx_spill_buf + NET_HDR_LEN, in_guest);
	qp->rx_spill_len = total;
	rx_give_back(qp, 1);
	PAIR_INC(qp, rx_waited_for_buffers);
}

/* Read one frame from the backend into the gathered chains (and the spill
 * buffer behind them when they may be too small). Its length with the
 * header, 0 when none came, -EMSGSIZE for a frame dropped as too big, or
 * -EPROTO for one dropped for its header (counted). */
static force_inline ssize_t rx_read(struct net_queue_pair *qp, bool with_spill)
{
	struct net_device *net = qp->net;
	struct net_backend *be = qp->be;
	bool vnet = net_backend_has_vnet_hdr(be);
	struct iovec *iov = qp->rx_iov - 1;      /* the slot before holds the header */
	unsigned n = qp->rx_niov;

	iov[0] = (struct iovec){ &qp->rx_hdr, NET_HDR_LEN };
	if (with_spill) {
		size_t in_guest = qp->rx_room - NET_HDR_LEN;
		iov[++n] = (struct iovec){ qp->rx_spill_buf + NET_HDR_LEN + in_guest,
					   NET_OFFLOAD_FRAME_MAX - in_guest };
	}
	if (!vnet)
		memset(&qp->rx_hdr, 0, sizeof(qp->rx_hdr));
	ssize_t len = vnet ? be->ops->recv(be, iov, n + 1) : be->ops->recv(be, iov + 1, n);
	if (len <= 0)
		return len;
	if (!vnet)
		return len + NET_HDR_LEN;
	uint64_t features = rx_features(net);
	/* A tap says DATA_VALID whatever was negotiated: meaningless to a
	 * guest that did not take GUEST_CSUM, so cleared rather than refused. */
	if (!(features & NET_F(VIRTIO_NET_F_GUEST_CSUM)) &&
	    (qp->rx_hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID))    /* no store when clear: as above */
		qp->rx_hdr.flags &= (uint8_t)~VIRTIO_NET_HDR_F_DATA_VALID;
	bool plain = !qp->rx_hdr.flags && qp->rx_hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE;
	if ((size_t)len < NET_HDR_LEN ||
	    (!plain && !net_rx_hdr_allowed(&qp->rx_hdr, features, (size_t)len - NET_HDR_LEN))) {
		PAIR_INC(qp, rx_hdr_refused);
		return -EPROTO;
	}
	return len;
}

/* Take one frame from the backend into @c (and the chains gathered after
 * it). The chain is held when the backend has nothing (it waits for the
 * next frame, not for a kick), when the limiter stops RX (then the backend
 * is not polled until its timer), or when a frame waits for buffers. */
static force_inline enum vq_verdict rx_pull_one(struct net_queue_pair *qp, struct vq_chain *c, uint64_t *bytes)
{
	struct net_device *net = qp->net;

	if (!rx_admit(qp)) {
		rx_watch_backend(qp, false);
		return VQ_HOLD;
	}
	bool mrg = rx_mergeable(net);
	bool enough = rx_gather(qp, c, mrg ? rx_room_next(qp) : 0);
	/* A frame too big for these chains is dropped and the chains, still
	 * unwritten, take the next one (at most a budget's worth). */
	for (unsigned tries = 0; tries < NET_BUDGET_FRAMES; tries++) {
		ssize_t len = rx_read(qp, !enough);
		if (len > 0 && (size_t)len > qp->rx_room) {
			rx_spill(qp, (size_t)len);
			qp->rx_need_buffers = true;
			return VQ_HOLD;
		}
		if (len > 0) {
			rx_complete(qp, c, (size_t)len);
			*bytes += (uint64_t)len - NET_HDR_LEN;
			return VQ_CONSUMED;
		}
		if (len != -EMSGSIZE && len != -EPROTO) {
			rx_recv_failed(qp, len);
			rx_give_back(qp, 1);
			return VQ_HOLD;
		}
		if (len == -EMSGSIZE)
			PAIR_INC(qp, rx_dropped_too_big);
		if (mrg && qp->be->ops->peek_len) {    /* gathered for the frame dropped */
			rx_give_back(qp, 1);
			enough = rx_gather(qp, c, rx_room_next(qp));
		}
	}
	rx_give_back(qp, 1);
	return VQ_HOLD;
}

/* The spilled frame goes to the guest once its buffers hold it; dropped
 * (counted) when the guest's chains cannot ever hold it. */
static enum vq_verdict rx_deliver_spill(struct net_queue_pair *qp, struct vq_chain *c,
					uint64_t *bytes)
{
	size_t total = qp->rx_spill_len;

	if (!rx_gather(qp, c, total)) {
		rx_give_back(qp, 1);
		qp->rx_need_buffers = true;
		return VQ_HOLD;
	}
	/* The backend is read again (it was left alone while the frame
	 * waited, rx_wait_for_buffers). */
	qp->rx_spill_len = 0;
	rx_watch_backend(qp, true);
	if (qp->rx_room < total) {    /* gathering stopped at a chain it may not take */
		rx_give_back(qp, 1);
		PAIR_INC(qp, rx_dropped_too_big);
		return rx_pull_one(qp, c, bytes);
	}
	memcpy(&qp->rx_hdr, qp->rx_spill_buf, NET_HDR_LEN);
	iov_from_buf(qp->rx_iov, qp->rx_niov, 0, qp->rx_spill_buf + NET_HDR_LEN,
		     total - NET_HDR_LEN);
	rx_complete(qp, c, total);
	*bytes += total - NET_HDR_LEN;
	return VQ_CONSUMED;
}

static enum vq_verdict rx_chain(void *ctx, struct vq_chain *c, enum vq_pop_result r,
				uint64_t *bytes)
{
	struct net_queue_pair *qp = ctx;

	if (!rx_chain_usable(qp, c, r))
		return VQ_CONSUMED;
	if (qp->rx_spill_len)
		return rx_deliver_spill(qp, c, bytes);
	return rx_pull_one(qp, c, bytes);
}

/* The RX queue is dead until reset: read and count what the backend has. */
static void rx_discard(struct net_queue_pair *qp)
{
	struct iovec iov = { .iov_base = qp->rx_spill_buf,
			     .iov_len = NET_HDR_LEN + NET_OFFLOAD_FRAME_MAX };

	if (qp->rx_spill_len) {
		qp->rx_spill_len = 0;
		PAIR_INC(qp, rx_dropped_poisoned);
	}
	for (unsigned budget = NET_BUDGET_FRAMES; budget; budget--) {
		if (qp->be->ops->recv(qp->be, &iov, 1) <= 0)
			return;
		PAIR_INC(qp, rx_dropped_poisoned);
	}
}

/* A frame waits for more RX buffers than the guest has given: stop
 * reading the backend and take kicks for new buffers (or go on at once if
 * some came meanwhile). */
static void rx_wait_for_buffers(struct net_queue_pair *qp)
{
	rx_watch_backend(qp, false);
	if (vq_enable_notify(qp->rx))
		schedule_more_work(qp);
}

/* Fill the guest's RX buffers from the backend, up to the budget. */
static void rx_drain(struct net_queue_pair *qp)
{
	struct virtqueue *vq = qp->rx;

	if (!pair_running(qp))
		return;
	qp->rx_wanted = false;
	qp->rx_need_buffers = false;
	if (rx_poisoned(qp)) {
		rx_discard(qp);
		if (qp->tx_dirty)
			publish_tx(qp);
		return;
	}
	enum vq_drain_result r = vq_drain(vq, &qp->rx_chain, &net_budget, rx_chain, qp);
	if (publish_due(r, qp->rx))
		publish_rx(qp);
	if (qp->tx_dirty && publish_due(r, qp->tx))
		publish_tx(qp);    /* TX buffers a queue backend copied from */
	switch (r) {
	case VQ_DRAIN_EMPTY:      /* no buffers: the guest's refill kicks us */
		rx_watch_backend(qp, false);
		break;
	case VQ_DRAIN_POISONED:
		note_poisoned(qp, qp->rx);
		rx_watch_backend(qp, false);
		break;
	case VQ_DRAIN_BUDGET:
		schedule_more_work(qp);
		break;
	case VQ_DRAIN_HELD:       /* waiting for a frame, the limiter or buffers */
		if (qp->rx_need_buffers)
			rx_wait_for_buffers(qp);
		break;
	}
}

static void on_backend_readable(struct event_source *src, uint32_t events)
{
	rx_drain(container_of(src, struct net_queue_pair, rx_event));
}

/* --- the backend's way up ------------------------------------------------- */
/* Each only records or schedules: the drains run from the pair's loop,
 * whose thread the backend's own events come on. */

/* Frames wait in a queue backend. */
static void backend_rx_pending(void *ctx)
{
	struct net_queue_pair *qp = ctx;

	qp->rx_wanted = true;
	schedule_more_work(qp);
}

static void backend_tx_unblocked(void *ctx)
{
	struct net_queue_pair *qp = ctx;

	qp->tx_blocked = false;
	schedule_more_work(qp);
}

/* A kept frame is done with: its TX chain goes back to the guest. */
static void backend_tx_done(void *ctx, uint32_t token)
{
	struct net_queue_pair *qp = ctx;

	if (token >> 16 != (uint32_t)(qp - qp->net->pairs))
		return;
	push_used(qp, qp->tx, (uint16_t)token, 0);
	qp->tx_dirty = true;
}

static const struct net_backend_events backend_events = {
	.rx_pending = backend_rx_pending,
	.tx_unblocked = backend_tx_unblocked,
	.tx_done = backend_tx_done,
};

/* --- the pairs' work --------------------------------------------------------- */

static void on_more_work(struct event_deferred *d)
{
	struct net_queue_pair *qp = container_of(d, struct net_queue_pair, more_work);

	tx_drain(qp);
	rx_drain(qp);
}

static void rx_buffers_added(struct net_queue_pair *qp)
{
	if (rx_poisoned(qp) || !pair_running(qp))
		return;    /* paused: net_resume comes here */
	rx_watch_backend(qp, true);
	if (qp->be->ops->rx_ready)
		qp->be->ops->rx_ready(qp->be);
	rx_drain(qp);
}

/* The guest sent: drain TX, then take at once what a queue backend made
 * meanwhile (loopback's frames, libslirp's ARP and echo replies): one
 * drain after the other, never one inside the other, and no event-loop
 * round in between. The deferred work stays as the fallback. */
static void tx_then_rx(struct net_queue_pair *qp)
{
	tx_drain(qp);
	if (qp->rx_wanted)
		rx_drain(qp);
}

static void on_tx_coalesce_expired(struct fine_timer *t)
{
	tx_then_rx(container_of(t, struct net_queue_pair, tx_coalesce));
}

/*
 * The guest kicked TX. With TX coalescing the drain waits tx_coalesce_us:
 * the ring's kicks stay off meanwhile (they are turned on only when a
 * drain finds the ring empty), so the frames the guest queues go without
 * a kick each and leave in one drain, completed by one interrupt: fewer
 * of both for a guest that pays dearly for them (UML: a system call per
 * kick, a signal per interrupt; bench/uml_iperf.sh), at the price of that
 * wait on the first frame of a burst.
 */
static void tx_kicked(struct net_queue_pair *qp)
{
	if (!qp->tx_coalesce.loop)
		tx_then_rx(qp);
	else if (!fine_timer_armed(&qp->tx_coalesce))
		fine_timer_arm(&qp->tx_coalesce, qp->net->opts.tx_coalesce_us * 1000ull);
}

static void on_tx_limiter_wake(struct rate_limiter *rl)
{
	tx_drain(container_of(rl, struct net_queue_pair, tx_limiter));
}

static void on_rx_limiter_wake(struct rate_limiter *rl)
{
	rx_buffers_added(container_of(rl, struct net_queue_pair, rx_limiter));
}

/* --- pair threads ------------------------------------------------------------- */

/* Pair thread: what other threads asked of it. */
static void on_pair_wake(struct event_notifier *n)
{
	struct net_queue_pair *qp = container_of(n, struct net_queue_pair, wake);
	unsigned bits = exchange_seq_cst(&qp->wake_bits, 0u);

	if (bits & NET_WAKE_STOP) {
		event_loop_quit(qp->loop);
		return;
	}
	if (bits & NET_WAKE_RX)
		rx_buffers_added(qp);
	if (bits & NET_WAKE_TX)
		tx_kicked(qp);
}

static void *pair_main(void *arg)
{
	struct net_queue_pair *qp = arg;

	seccomp_filter_enter(qp->be->ops->host_sockets ? SECCOMP_NET_SOCKETS : SECCOMP_NET_QUEUE);
	event_loop_run_polling(qp->loop, qp->net->opts.poll_us * 1000ull,
			       &qp->counters.rx_events_polled);
	return NULL;
}

/* Start @qp's thread with both drains queued (buffers and frames may be
 * waiting) and the backend's fd watched, as rx_buffers_added does: a pause
 * stopped watching it, and a guest waiting for frames with its buffers
 * given kicks no more. The first drain stops watching again when it
 * should (no buffers, the limiter, a frame waiting for buffers). Device
 * loop, the thread not running. */
static void pair_thread_start(struct net_queue_pair *qp)
{
	char name[16];

	if (qp->thread_started)
		return;
	qp->go = true;
	if (!rx_poisoned(qp))
		rx_watch_backend(qp, true);
	schedule_more_work(qp);
	event_loop_rearm(qp->loop);
	int r = pthread_create(&qp->thread, NULL, pair_main, qp);
	if (r != 0) {
		/* The device then moves nothing on this pair; it is logged. */
		log_err("virtio-net: queue pair %u: thread: %s", (unsigned)(qp - qp->net->pairs),
			strerror(r));
		qp->go = false;
		return;
	}
	qp->thread_started = true;
	snprintf(name, sizeof(name), "kvmini-net-q%u", (unsigned)(qp - qp->net->pairs));
	pthread_setname_np(qp->thread, name);
}

/* Stop @qp's thread and wait for it; what it was asked and had not done
 * yet is forgotten (the next start drains both queues). Device loop. */
static void pair_thread_stop(struct net_queue_pair *qp)
{
	qp->go = false;
	if (!qp->thread_started)
		return;
	fetch_or_seq_cst(&qp->wake_bits, NET_WAKE_STOP);
	int r = event_notifier_signal(&qp->wake);
	if (r < 0)
		log_err("virtio-net: stopping a queue pair's thread: %s", strerror(-r));
	pthread_join(qp->thread, NULL);
	qp->thread_started = false;
	store_seq_cst(&qp->wake_bits, 0u);
	/* A waiting drain is not lost: the next start drains both queues. */
	fine_timer_cancel(&qp->tx_coalesce);
}

bool net_device_pairs_hold(struct net_device *net)
{
	bool held = false;

	for (unsigned i = 0; i < net->npairs; i++) {
		held |= net->pairs[i].thread_started;
		pair_thread_stop(&net->pairs[i]);
	}
	return held;
}

void net_device_pairs_release(struct net_device *net, bool held)
{
	for (unsigned i = 0; held && i < net->npairs; i++)
		pair_thread_start(&net->pairs[i]);
}

/* Device loop: what the pair threads posted. */
static void on_device_posted(struct event_notifier *n)
{
	struct net_device *net = container_of(n, struct net_device, posted);
	struct virtio_device *dev = &net->vdev;

	if (exchange_seq_cst(&net->ctrl_pending, false))
		net_ctrl_drain(net);
	for (unsigned q = 0; q < dev->num_queues; q++) {
		if (exchange_seq_cst(&net->poisoned_pending[q], false))
			virtio_device_mark_broken(dev, q);
		if (exchange_seq_cst(&net->irq_pending[q], false) && dev->transport)
			dev->transport->ops->signal_used(dev->transport, q);
	}
}

/* Hand a kick to @qp's thread, or serve it here when this is that thread
 * (or there are none). */
static void pair_kicked(struct net_queue_pair *qp, unsigned why)
{
	if (!threaded(qp->net) ||
	    (qp->thread_started && pthread_equal(pthread_self(), qp->thread))) {
		if (why == NET_WAKE_RX)
			rx_buffers_added(qp);
		else
			tx_kicked(qp);
		return;
	}
	if (!qp->thread_started)
		return;    /* the next start drains both queues */
	if (fetch_or_seq_cst(&qp->wake_bits, why) & why)
		return;    /* asked already, not yet done */
	int r = event_notifier_signal(&qp->wake);
	if (r < 0)
		log_warn("virtio-net: kick to a queue pair: %s", strerror(-r));
}

/* --- device ops ------------------------------------------------------------ */

int net_device_set_rate_limit(struct net_device *net, unsigned q,
			      const struct rate_limiter_config *cfg)
{
	if (q != NET_RX_QUEUE && q != NET_TX_QUEUE)
		return -EINVAL;
	bool held = net_device_pairs_hold(net);
	int r = 0;
	for (unsigned i = 0; r == 0 && i < net->npairs; i++) {
		struct net_queue_pair *qp = &net->pairs[i];
		r = rate_limiter_configure(q == NET_RX_QUEUE ? &qp->rx_limiter : &qp->tx_limiter,
					   cfg);
	}
	net_device_pairs_release(net, held);
	return r;
}

void net_device_get_rate_limit(const struct net_device *net, unsigned q,
			       struct rate_limiter_config *cfg)
{
	const struct net_queue_pair *qp = &net->pairs[0];

	rate_limiter_get_config(q == NET_RX_QUEUE ? &qp->rx_limiter : &qp->tx_limiter, cfg);
}

static void pair_forget(struct net_queue_pair *qp)
{
	qp->soft.next = 0;
	qp->rx_spill_len = 0;
	qp->rx_need_buffers = false;
	qp->tx_blocked = false;
	qp->rx_dirty = false;
	qp->tx_dirty = false;
	qp->rx_wanted = false;
}

/* What the driver set through the control queue, back to its defaults
 * (the buffers stay). */
static void ctrl_forget(struct net_device *net)
{
	struct net_ctrl *c = &net->ctrl;

	c->guest_offloads = 0;
	c->promisc = c->allmulti = c->announce = false;
	c->mac_table_entries = 0;
	c->vq_pairs = 1;
}

/* The pairs the driver uses: those it set with VQ_PAIRS_SET; every pair
 * when a vhost-user front-end, which keeps the control queue to itself,
 * negotiated MQ (its ring enables say which run); else the first. */
static unsigned pairs_in_use(const struct net_device *net)
{
	if (!virtio_device_has(&net->vdev, VIRTIO_NET_F_MQ))
		return 1;
	if (!virtio_device_has(&net->vdev, VIRTIO_NET_F_CTRL_VQ))
		return net->npairs;
	return MIN((unsigned)net->ctrl.vq_pairs, net->npairs);
}

void net_device_steer_pairs(struct net_device *net)
{
	unsigned in_use = pairs_in_use(net);

	for (unsigned i = 0; net->npairs > 1 && i < net->npairs; i++) {
		struct net_queue_pair *qp = &net->pairs[i];
		bool on = i < in_use && qp->rx->started;
		int r = qp->be->ops->set_queue_enabled ? qp->be->ops->set_queue_enabled(qp->be, on)
						       : 0;
		if (r < 0)
			log_warn("virtio-net: queue pair %u: %s the host's queue: %s", i,
				 on ? "attaching" : "detaching", strerror(-r));
	}
}

/* Start the pairs: on their threads, or here (the drains find the device
 * not active yet and wait for the transport's kicks, as before). A paused
 * device (a restore activates it paused) starts none: resume does. */
static void pairs_start(struct net_device *net)
{
	for (unsigned i = 0; i < net->npairs; i++) {
		struct net_queue_pair *qp = &net->pairs[i];
		if (threaded(net)) {
			if (!net->vdev.paused)
				pair_thread_start(qp);
			continue;
		}
		/* Buffers may be waiting already (vhost-user reconnect, early kicks). */
		rx_buffers_added(qp);
		tx_drain(qp);
	}
}

static int net_activate(struct virtio_device *vdev)
{
	struct net_device *net = to_net(vdev);

	for (unsigned i = 0; i < net->npairs; i++)
		pair_forget(&net->pairs[i]);
	net_device_steer_pairs(net);
	pairs_start(net);
	if (vdev->num_queues > net_ctrl_queue(net))
		net_ctrl_drain(net);
	return 0;
}

/* A pair's queues' kicks go straight to its thread (the transport
 * watches them there); the control queue's to the device's loop. */
static struct event_loop *net_queue_loop(struct virtio_device *vdev, unsigned q)
{
	struct net_device *net = to_net(vdev);

	return q / 2 < net->npairs ? net->pairs[q / 2].loop : vdev->loop;
}

static void net_queue_notify(struct virtio_device *vdev, unsigned q)
{
	struct net_device *net = to_net(vdev);
	unsigned ctrl = net_ctrl_queue(net);

	if (q == ctrl && q < vdev->num_queues) {
		if (threaded(net) && !pthread_equal(pthread_self(), net->device_thread))
			post_to_device(net, &net->ctrl_pending);    /* taken on a pair's thread */
		else
			net_ctrl_drain(net);
		return;
	}
	if (q > ctrl || q / 2 >= net->npairs)
		return;
	pair_kicked(&net->pairs[q / 2], q % 2 == 0 ? NET_WAKE_RX : NET_WAKE_TX);
}

/* Device loop, the pair's thread stopped. */
static void pair_reset(struct net_queue_pair *qp)
{
	/* Kept frames point into TX buffers the guest is about to get back:
	 * used entries while the queues still run, then they are gone. */
	if (qp->be->ops->drop_kept)
		PAIR_ADD(qp, rx_dropped_no_buffer, qp->be->ops->drop_kept(qp->be));
	if (qp->tx_dirty)
		publish_tx(qp);
	rx_watch_backend(qp, false);
	event_loop_cancel(qp->loop, &qp->more_work);
	if (qp->rx_spill_len)    /* taken from the backend, never delivered */
		PAIR_INC(qp, rx_dropped_no_buffer);
	pair_forget(qp);
}

static void net_reset(struct virtio_device *vdev)
{
	struct net_device *net = to_net(vdev);

	net_device_pairs_hold(net);
	for (unsigned i = 0; i < net->npairs; i++)
		pair_reset(&net->pairs[i]);
	event_loop_cancel(net->vdev.loop, &net->ctrl.more);
	/* The control queue's settings stay until features are negotiated
	 * again (net_set_features); an announcement asked for is withdrawn. */
	net->ctrl.announce = false;
}

/* The VM pauses: frames wait in the backend (its fd unwatched), kicks in
 * the rings; the drains' running check holds every other way in (timers,
 * deferred work, the backend's events). Pair threads end first. */
static void net_pause(struct virtio_device *vdev)
{
	struct net_device *net = to_net(vdev);

	net_device_pairs_hold(net);
	for (unsigned i = 0; i < net->npairs; i++) {
		/* A paused device (a snapshot) has no frame kept in its
		 * backend: every TX drain ends with a flush; this one only
		 * makes sure. */
		tx_flush(&net->pairs[i]);
		rx_watch_backend(&net->pairs[i], false);
	}
}

/* What waited: the guest's RX buffers and the backend's frames, then
 * what the guest queued to send. */
static void net_resume(struct virtio_device *vdev)
{
	struct net_device *net = to_net(vdev);

	if (vdev->active)
		pairs_start(net);
	if (vdev->active && vdev->num_queues > net_ctrl_queue(net))
		net_ctrl_drain(net);
	if (net->announce_on_resume) {
		net->announce_on_resume = false;
		net_device_announce(net);
	}
}

static void net_visit_counters(struct virtio_device *vdev, const struct counter_sink *sink)
{
	net_device_visit_counters(to_net(vdev), sink);
}

static const struct virtio_device_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.config_size = sizeof(struct virtio_net_config),
	.features = net_features,
	.set_features = net_set_features,
	.config_read = net_config_read,
	.activate = net_activate,
	.queue_notify = net_queue_notify,
	.queue_loop = net_queue_loop,
	.reset = net_reset,
	.pause = net_pause,
	.resume = net_resume,
	.visit_counters = net_visit_counters,
	.save_state = net_save_state,
	.load_state = net_load_state,
};

/* --- setup ------------------------------------------------------------------ */

#define X(name, doc) COUNTER_DESC(struct net_counters, name, doc)
const struct counter_set net_counter_set = COUNTER_SET("net", NET_COUNTERS(X));
#undef X

/* @acc += @add, field by field (each read relaxed: a pair thread may be
 * writing it). */
static void counters_add(struct net_counters *acc, const struct net_counters *add)
{
	uint64_t *a = (uint64_t *)acc;
	const uint64_t *b = (const uint64_t *)add;

	for (size_t i = 0; i < sizeof(*acc) / sizeof(uint64_t); i++)
		a[i] += load_relaxed(&b[i]);
}

void net_device_counters_total(const struct net_device *net, struct net_counters *out)
{
	*out = (struct net_counters){ 0 };
	counters_add(out, &net->counters);
	for (unsigned i = 0; i < net->npairs; i++)
		counters_add(out, &net->pairs[i].counters);
}

/* A sink that puts "pairN " in front of another's prefix: the backends of
 * the pairs after the first, whose counters have the same names. */
struct pair_sink {
	const struct counter_sink *inner;
	char label[16];
};

static void pair_sink_fn(void *ctx, const char *prefix, const char *name, uint64_t value)
{
	struct pair_sink *ps = ctx;
	char both[96];

	snprintf(both, sizeof(both), "%s%s", ps->label, prefix);
	counter_emit(ps->inner, both, name, value);
}

static void visit_backend(const struct net_queue_pair *qp, unsigned i,
			  const struct counter_sink *sink)
{
	struct net_backend *be = qp->be;

	if (!be->ops->visit_counters)
		return;
	if (i == 0) {
		be->ops->visit_counters(be, sink);
		return;
	}
	struct pair_sink ps = { .inner = sink };
	snprintf(ps.label, sizeof(ps.label), "pair%u ", i);
	be->ops->visit_counters(be, &(const struct counter_sink){ pair_sink_fn, &ps });
}

/* The totals, then each pair's own when there are several, then the
 * backends' counters (any thread: pair counters are read relaxed). */
void net_device_visit_counters(const struct net_device *net, const struct counter_sink *sink)
{
	struct net_counters total;
	char prefix[16];

	net_device_counters_total(net, &total);
	counters_visit(&net_counter_set, &total, "", sink);
	for (unsigned i = 0; net->npairs > 1 && i < net->npairs; i++) {
		snprintf(prefix, sizeof(prefix), "pair%u_", i);
		counters_visit(&net_counter_set, &net->pairs[i].counters, prefix, sink);
	}
	for (unsigned i = 0; i < net->npairs; i++)
		visit_backend(&net->pairs[i], i, sink);
}

void net_device_dump_counters(const struct net_device *net, FILE *out)
{
	net_device_visit_counters(net, COUNTER_SINK_FILE(out));
}

int net_parse_mac(const char *text, uint8_t mac[6])
{
	uint8_t v[6];

	/* Exactly "xx:xx:xx:xx:xx:xx": sscanf("%2x") would also take signs and spaces. */
	if (strlen(text) != 17)
		return -EINVAL;
	for (unsigned i = 0; i < 6; i++) {
		const char *p = text + 3 * i;
		int hi = hex_digit(p[0]), lo = hex_digit(p[1]);
		if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
			return -EINVAL;
		v[i] = (uint8_t)(hi << 4 | lo);
	}
	/* A multicast or all-zero address cannot be a station's own (Linux's
	 * is_valid_ether_addr: its virtio-net driver would pick another). */
	static const uint8_t zero[6];
	if ((v[0] & 1) || !memcmp(v, zero, sizeof(zero)))
		return -EADDRNOTAVAIL;
	memcpy(mac, v, sizeof(v));
	return 0;
}

void net_random_mac(uint8_t mac[6])
{
	static unsigned calls;
	uint8_t v[6];

	/* getrandom cannot fail for 6 bytes once the kernel's pool is ready
	 * (it waits for that); should it fail all the same (ENOSYS before
	 * Linux 3.17 or under a seccomp policy), the clock, the pid and a
	 * count still make two VMs' and two NICs' MACs differ, if less surely. */
	if (getrandom(v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) *
			     0x9e3779b97f4a7c15ull;
		x ^= (uint64_t)getpid() << 24 ^ add_fetch_relaxed(&calls, 1);
		memcpy(v, &x, sizeof(v));
	}
	v[0] = (uint8_t)((v[0] & ~1u) | 2u);    /* unicast (bit 0), locally administered (bit 1) */
	memcpy(mac, v, sizeof(v));
}

/* A pair's queues, backend, scratch, limiters and events; 0 or -errno. */
static int pair_init(struct net_device *net, unsigned i, struct net_backend *be,
		     struct event_loop *loop)
{
	struct net_queue_pair *qp = &net->pairs[i];

	qp->net = net;
	qp->be = be;
	qp->loop = loop;
	qp->rx = &net->vqs[2 * i];
	qp->tx = &net->vqs[2 * i + 1];
	qp->rx_spill_buf = malloc(NET_HDR_LEN + NET_OFFLOAD_FRAME_MAX);
	qp->rx_iov_buf = calloc(NET_RX_IOV_MAX + 1, sizeof(struct iovec));
	qp->rx_iov = qp->rx_iov_buf + 1;       /* the slot before: the vnet header */
	qp->rx_heads = calloc(NET_RX_MERGE_MAX, sizeof(*qp->rx_heads));
	qp->rx_caps = calloc(NET_RX_MERGE_MAX, sizeof(*qp->rx_caps));
	qp->rx_more = malloc(sizeof(*qp->rx_more));
	if (!qp->rx_spill_buf || !qp->rx_iov_buf || !qp->rx_heads || !qp->rx_caps ||
	    !qp->rx_more)
		return -ENOMEM;
	if (!net_backend_has_vnet_hdr(be) && net_soft_tx_init(&qp->soft) < 0)
		return -ENOMEM;
	net_backend_attach(be, &backend_events, qp);
	int r = rate_limiter_init(&qp->tx_limiter, loop, NULL, on_tx_limiter_wake);
	if (r == 0)
		r = rate_limiter_init(&qp->rx_limiter, loop, NULL, on_rx_limiter_wake);
	if (r == 0 && net->opts.pair_threads)
		r = event_notifier_init(loop, &qp->wake, on_pair_wake, "net queue pair");
	if (r == 0 && net->opts.pair_threads && net->opts.tx_coalesce_us)
		r = fine_timer_init(&qp->tx_coalesce, loop, on_tx_coalesce_expired,
				    "net tx coalescing");
	if (r < 0 || be->rx_fd < 0)
		return r;
	return event_loop_watch(loop, &qp->rx_event, be->rx_fd, 0, on_backend_readable,
				"net backend rx");
}

static void pair_destroy(struct net_queue_pair *qp)
{
	struct event_loop *loop = qp->loop;

	pair_thread_stop(qp);
	if (loop) {
		event_loop_unwatch(loop, &qp->rx_event);
		event_loop_cancel(loop, &qp->more_work);
		event_notifier_destroy(loop, &qp->wake);
		fine_timer_destroy(&qp->tx_coalesce);
	}
	if (qp->tx_limiter.clock)
		rate_limiter_destroy(&qp->tx_limiter);
	if (qp->rx_limiter.clock)
		rate_limiter_destroy(&qp->rx_limiter);
	net_soft_tx_destroy(&qp->soft);
	free(qp->rx_spill_buf);
	free(qp->rx_iov_buf);
	free(qp->rx_heads);
	free(qp->rx_caps);
	free(qp->rx_more);
	qp->rx_spill_buf = NULL;
	qp->rx_iov_buf = qp->rx_iov = NULL;
	qp->rx_heads = NULL;
	qp->rx_caps = NULL;
	qp->rx_more = NULL;
}

/* The device's own part: queues, control queue, the notifier pair
 * threads post to. */
static int device_init(struct net_device *net, const struct net_config_opts *opts,
		       struct net_backend *first, unsigned npairs, struct event_loop *loop)
{
	memset(net, 0, sizeof(*net));
	net->opts = *opts;
	net->backend = first;
	net->device_thread = pthread_self();
	net->vdev.ops = &net_ops;
	net->vdev.loop = loop;
	net->vdev.vqs = net->vqs;
	/* Until features are set, the most there can be (net_set_features
	 * counts what was negotiated). */
	net->vdev.num_queues = net->vdev.max_queues = 2 * npairs + 1;
	for (unsigned q = 0; q < NET_MAX_QUEUES; q++)
		vq_reset(&net->vqs[q]);
	ctrl_forget(net);
	net->ctrl.chain = malloc(sizeof(*net->ctrl.chain));
	net->ctrl.buf = malloc(2 + NET_CTRL_DATA_MAX);
	if (!net->ctrl.chain || !net->ctrl.buf)
		return -ENOMEM;
	if (opts->pair_threads)
		return event_notifier_init(loop, &net->posted, on_device_posted, "net device");
	return 0;
}

int net_device_init_pairs(struct net_device *net, const struct net_config_opts *opts,
			  struct net_backend *const *backends, unsigned npairs,
			  struct event_loop *loop, struct event_loop *const *pair_loops)
{
	if (npairs < 1 || npairs > NET_MAX_QUEUE_PAIRS)
		return -EINVAL;
	int r = device_init(net, opts, backends[0], npairs, loop);
	for (unsigned i = 0; r == 0 && i < npairs; i++) {
		net->npairs++;
		r = pair_init(net, i, backends[i], pair_loops ? pair_loops[i] : loop);
	}
	if (r < 0)
		net_device_destroy(net);
	return r;
}

int net_device_init(struct net_device *net, const struct net_config_opts *opts,
		    struct net_backend *backend, struct event_loop *loop)
{
	struct net_config_opts one = *opts;

	one.pair_threads = false;
	return net_device_init_pairs(net, &one, &backend, 1, loop, NULL);
}

void net_device_destroy(struct net_device *net)
{
	for (unsigned i = 0; i < net->npairs; i++)
		pair_thread_stop(&net->pairs[i]);
	if (net->vdev.loop) {
		event_loop_cancel(net->vdev.loop, &net->ctrl.more);
		event_notifier_destroy(net->vdev.loop, &net->posted);
	}
	free(net->ctrl.chain);
	free(net->ctrl.buf);
	net->ctrl.chain = NULL;
	net->ctrl.buf = NULL;
	for (unsigned i = 0; i < net->npairs; i++)
		pair_destroy(&net->pairs[i]);
	net->npairs = 0;
}
