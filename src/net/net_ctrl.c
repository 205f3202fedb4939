/*
 * virtio-net control queue (virtio 1.x section 5.1.6.5): each chain is a
 * command (class, command, data) the device answers with one byte,
 * VIRTIO_NET_OK or VIRTIO_NET_ERR. Every malformed command (a chain that
 * is not readable-then-writable, data of the wrong length, a class or
 * command unknown or not negotiated, a value out of range) gets ERR and
 * is counted; a chain with no byte to answer in is completed unanswered.
 *
 * What the commands do here:
 *  - RX mode (promiscuous, all-multicast) and the MAC table are recorded
 *    and acknowledged: kvmini never filters RX by address (every frame the
 *    backend hands over goes to the guest), so every mode already holds;
 *  - MAC_ADDR_SET changes the MAC config space shows;
 *  - GUEST_OFFLOADS_SET tells the backend which offloaded frames the guest
 *    takes from now on (a tap's TUNSETOFFLOAD; ethtool -K in the guest);
 *  - ANNOUNCE_ACK clears VIRTIO_NET_S_ANNOUNCE (raised after a restore);
 *  - MQ VQ_PAIRS_SET sets the pairs in use: the host's queues of the
 *    others (a multi-queue tap's) are detached, so the host steers flows
 *    to the pairs the guest reads.
 * Commands that change what the pairs' threads read (the RX offloads, the
 * pairs in use) are applied with those threads stopped.
 */
#include <errno.h>
#include <string.h>
#include <linux/virtio_net.h>

#include "core/byteorder.h"
#include "core/compiler.h"
#include "core/log.h"
#include "net/net_device.h"
#include "net/offload.h"

/* Each command's data, checked before it is applied. */
struct ctrl_cmd {
	uint8_t cls, cmd;
	const uint8_t *data;
	size_t len;
};

static bool acked(const struct net_device *net, unsigned bit)
{
	return virtio_device_has(&net->vdev, bit);
}

static uint8_t ctrl_rx_mode(struct net_device *net, const struct ctrl_cmd *c)
{
	if (!acked(net, VIRTIO_NET_F_CTRL_RX) || c->len != 1 ||
	    c->cmd > VIRTIO_NET_CTRL_RX_ALLMULTI)
		return VIRTIO_NET_ERR;
	if (c->cmd == VIRTIO_NET_CTRL_RX_PROMISC)
		net->ctrl.promisc = c->data[0] != 0;
	else
		net->ctrl.allmulti = c->data[0] != 0;
	return VIRTIO_NET_OK;
}

/* Two tables, unicast then multicast: a le32 count and that many MACs
 * each, exactly filling the data. 0 when malformed, else the entries + 1. */
static size_t mac_tables_entries(const uint8_t *p, size_t len)
{
	size_t entries = 0;

	for (unsigned t = 0; t < 2; t++) {
		if (len < 4)
			return 0;
		uint32_t n = get_le32(p);
		if (n > (len - 4) / 6)
			return 0;
		p += 4 + 6 * (size_t)n;
		len -= 4 + 6 * (size_t)n;
		entries += n;
	}
	return len ? 0 : entries + 1;
}

static uint8_t ctrl_mac(struct net_device *net, const struct ctrl_cmd *c)
{
	if (c->cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET) {
		size_t n = acked(net, VIRTIO_NET_F_CTRL_RX) ? mac_tables_entries(c->data, c->len) : 0;
		if (!n)
			return VIRTIO_NET_ERR;
		net->ctrl.mac_table_entries = (unsigned)(n - 1);
		return VIRTIO_NET_OK;
	}
	static const uint8_t zero[6];
	if (c->cmd != VIRTIO_NET_CTRL_MAC_ADDR_SET || !acked(net, VIRTIO_NET_F_CTRL_MAC_ADDR) ||
	    c->len != 6 || (c->data[0] & 1) || !memcmp(c->data, zero, 6))
		return VIRTIO_NET_ERR;
	memcpy(net->opts.mac, c->data, 6);
	net->vdev.config_generation++;
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_announce(struct net_device *net, const struct ctrl_cmd *c)
{
	if (!acked(net, VIRTIO_NET_F_GUEST_ANNOUNCE) || c->cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK ||
	    c->len)
		return VIRTIO_NET_ERR;
	net->ctrl.announce = false;
	net->vdev.config_generation++;
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_mq(struct net_device *net, const struct ctrl_cmd *c)
{
	if (!acked(net, VIRTIO_NET_F_MQ) || c->cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ||
	    c->len != 2)
		return VIRTIO_NET_ERR;
	unsigned pairs = (unsigned)c->data[0] | (unsigned)c->data[1] << 8;
	if (pairs < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || pairs > net->npairs)
		return VIRTIO_NET_ERR;
	bool held = net_device_pairs_hold(net);
	net->ctrl.vq_pairs = (uint16_t)pairs;
	net_device_steer_pairs(net);
	net_device_pairs_release(net, held);
	return VIRTIO_NET_OK;
}

/* The offloads the guest takes on RX, at most what it acked; the backend
 * is told first, and nothing changes when it refuses. */
static uint8_t ctrl_guest_offloads(struct net_device *net, const struct ctrl_cmd *c)
{
	if (!acked(net, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) ||
	    c->cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || c->len != 8)
		return VIRTIO_NET_ERR;
	uint64_t want = get_le32(c->data) | (uint64_t)get_le32(c->data + 4) << 32;
	if (want & ~(net->vdev.features & NET_GUEST_OFFLOADS))
		return VIRTIO_NET_ERR;
	bool held = net_device_pairs_hold(net);
	bool ok = net_backends_set_offloads(net, want) == 0;
	if (ok)
		net->ctrl.guest_offloads = want;
	net_device_pairs_release(net, held);
	return ok ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
}

static uint8_t ctrl_dispatch(struct net_device *net, const struct ctrl_cmd *c)
{
	switch (c->cls) {
	case VIRTIO_NET_CTRL_RX:
		return ctrl_rx_mode(net, c);
	case VIRTIO_NET_CTRL_MAC:
		return ctrl_mac(net, c);
	case VIRTIO_NET_CTRL_ANNOUNCE:
		return ctrl_announce(net, c);
	case VIRTIO_NET_CTRL_MQ:
		return ctrl_mq(net, c);
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
		return ctrl_guest_offloads(net, c);
	default:                /* VLAN filtering and the rest: not offered */
		return VIRTIO_NET_ERR;
	}
}

/* Answer one command chain; its used length is the one byte of the answer. */
static uint32_t ctrl_one(struct net_device *net, struct vq_chain *chain)
{
	struct ctrl_cmd c = { 0 };
	uint8_t ack = VIRTIO_NET_ERR;
	size_t len = chain->out_len;

	if (!chain->n_in)
		return 0;
	if (len >= 2 && len <= NET_CTRL_DATA_MAX + 2 &&
	    iov_to_buf(chain->iov, chain->n_out, 0, net->ctrl.buf, len) == len) {
		c = (struct ctrl_cmd){ net->ctrl.buf[0], net->ctrl.buf[1], net->ctrl.buf + 2,
				       len - 2 };
		ack = ctrl_dispatch(net, &c);
	}
	if (ack == VIRTIO_NET_OK)
		net->counters.tx_ctrl_ok++;
	else
		net->counters.tx_ctrl_refused++;
	iov_from_buf(vq_chain_in(chain), chain->n_in, 0, &ack, 1);
	return 1;
}

static enum vq_verdict ctrl_chain(void *ctx, struct vq_chain *chain, enum vq_pop_result r,
				  uint64_t *bytes)
{
	struct net_device *net = ctx;
	uint32_t used = 0;

	if (r == VQ_POP_OK)
		used = ctrl_one(net, chain);
	if (!used)
		net->counters.tx_ctrl_refused++;    /* malformed, or no byte to answer in */
	if (vq_push(&net->vqs[net_ctrl_queue(net)], chain->head, used) < 0)
		net->counters.used_add_failed++;
	return VQ_CONSUMED;
}

void net_ctrl_drain(struct net_device *net)
{
	static const struct vq_budget budget = { .chains = 64, .bytes = UINT64_MAX };
	unsigned q = net_ctrl_queue(net);
	struct virtqueue *vq = &net->vqs[q];

	if (!virtio_device_running(&net->vdev))
		return;
	enum vq_drain_result r = vq_drain(vq, net->ctrl.chain, &budget, ctrl_chain, net);
	virtio_device_publish(&net->vdev, q);
	if (r == VQ_DRAIN_POISONED && vq_poison_is_new(vq)) {
		net->counters.avail_index_invalid++;
		virtio_device_mark_broken(&net->vdev, q);
	} else if (r == VQ_DRAIN_BUDGET) {
		event_loop_defer(net->vdev.loop, &net->ctrl.more, net_ctrl_more);
	}
}

void net_ctrl_more(struct event_deferred *d)
{
	net_ctrl_drain(container_of(d, struct net_device, ctrl.more));
}

void net_device_announce(struct net_device *net)
{
	if (!acked(net, VIRTIO_NET_F_GUEST_ANNOUNCE) || !net->vdev.active)
		return;
	net->ctrl.announce = true;
	net->counters.rx_announce_requested++;
	virtio_device_config_changed(&net->vdev);
}
