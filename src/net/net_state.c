/*
 * virtio-net snapshot state, section "VNET" (see net_device.h). Parsed into
 * a local copy and checked whole before anything of the device changes.
 */
#include <string.h>

#include "core/compiler.h"
#include "core/rate_limiter_state.h"
#include "net/net_device.h"
#include "net/offload.h"

#define VNET_TAG "VNET"
#define NET_COUNTER_COUNT (sizeof(struct net_counters) / sizeof(uint64_t))
/* Debt a bucket may carry beyond empty: a charge of up to one 64 KiB frame. */
#define VNET_MAX_DEBT ((int64_t)NET_TX_FRAME_MAX)

_Static_assert(sizeof(struct net_counters) % sizeof(uint64_t) == 0, "counters are u64");

struct net_state {
	uint8_t mac[6];
	uint16_t mtu;
	struct net_counters counters;
	struct rate_limiter_state tx, rx;
	struct net_ctrl ctrl;            /* the driver's settings only, no buffers */
};

static struct net_device *to_net(struct virtio_device *vdev)
{
	return container_of(vdev, struct net_device, vdev);
}

/* --- saving ------------------------------------------------------------------ */

/* What the driver set through the control queue. */
static void save_ctrl(const struct net_ctrl *c, struct state_writer *w)
{
	state_put_u64(w, c->guest_offloads);
	state_put_u8(w, c->promisc);
	state_put_u8(w, c->allmulti);
	state_put_u32(w, c->mac_table_entries);
	state_put_u8(w, c->announce);
	state_put_u16(w, c->vq_pairs);
}

int net_save_state(struct virtio_device *vdev, struct state_writer *w, struct errbuf *eb)
{
	struct net_device *net = to_net(vdev);
	struct net_counters total;
	const uint64_t *c = (const uint64_t *)&total;

	/* The totals: a restored device counts on from them (its pairs
	 * start again at zero). */
	net_device_counters_total(net, &total);
	state_begin(w, VNET_TAG);
	state_put_bytes(w, net->opts.mac, sizeof(net->opts.mac));
	state_put_u16(w, net->opts.mtu);
	state_put_u32(w, (uint32_t)NET_COUNTER_COUNT);
	for (size_t i = 0; i < NET_COUNTER_COUNT; i++)
		state_put_u64(w, c[i]);
	/* Every pair has the same limits; the first pair's buckets stand for
	 * all of them. */
	rate_limiter_save_state(&net->pairs[0].tx_limiter, w);
	rate_limiter_save_state(&net->pairs[0].rx_limiter, w);
	save_ctrl(&net->ctrl, w);
	state_end(w);
	return 0;
}

/* --- parsing --------------------------------------------------------------------- */

static bool read_limiter(struct state_reader *sec, const char *dir, struct rate_limiter_state *l)
{
	rate_limiter_read_state(sec, l);
	return rate_limiter_check_state(sec, dir, l, VNET_MAX_DEBT);
}

static bool read_ctrl(struct state_reader *sec, struct net_ctrl *c, unsigned npairs)
{
	c->guest_offloads = state_get_u64(sec);
	c->promisc = state_get_u8(sec);
	c->allmulti = state_get_u8(sec);
	c->mac_table_entries = state_get_u32(sec);
	c->announce = state_get_u8(sec);
	c->vq_pairs = state_get_u16(sec);
	if (sec->failed)
		return false;
	if (c->guest_offloads & ~NET_GUEST_OFFLOADS)
		return state_fail(sec, "RX offloads 0x%llx beyond the guest offload bits",
				  (unsigned long long)c->guest_offloads);
	if (c->vq_pairs < 1 || c->vq_pairs > npairs)
		return state_fail(sec, "%u queue pairs in use, this device has %u", c->vq_pairs,
				  npairs);
	return true;
}

static bool parse_body(struct state_reader *sec, struct net_state *s, unsigned npairs)
{
	state_get_bytes(sec, s->mac, sizeof(s->mac));
	s->mtu = state_get_u16(sec);
	uint32_t n = state_get_u32(sec);
	if (!sec->failed && n != NET_COUNTER_COUNT)
		return state_fail(sec, "%u counters, this kvmini has %zu", n, NET_COUNTER_COUNT);
	uint64_t *c = (uint64_t *)&s->counters;
	for (size_t i = 0; i < NET_COUNTER_COUNT; i++)
		c[i] = state_get_u64(sec);
	return read_limiter(sec, "tx", &s->tx) && read_limiter(sec, "rx", &s->rx) &&
	       read_ctrl(sec, &s->ctrl, npairs);
}

/* --- applying ---------------------------------------------------------------------- */

bool net_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
		    struct state_reader *r)
{
	struct net_device *net = to_net(vdev);
	struct state_reader sec;
	struct net_state s;

	memset(&s, 0, sizeof(s));
	if (!state_section(r, VNET_TAG, &sec))
		return false;
	parse_body(&sec, &s, net->npairs);
	if (!state_section_done(r, &sec))
		return false;
	if (!net->keep_configured_mac)
		memcpy(net->opts.mac, s.mac, sizeof(s.mac));
	net->opts.mtu = s.mtu;
	net->counters = s.counters;
	for (unsigned i = 0; i < net->npairs; i++) {
		struct net_queue_pair *qp = &net->pairs[i];
		qp->counters = (struct net_counters){ 0 };
		rate_limiter_apply_state(&qp->tx_limiter, &s.tx);
		rate_limiter_apply_state(&qp->rx_limiter, &s.rx);
	}
	net->ctrl.guest_offloads = s.ctrl.guest_offloads;
	net->ctrl.promisc = s.ctrl.promisc;
	net->ctrl.allmulti = s.ctrl.allmulti;
	net->ctrl.mac_table_entries = s.ctrl.mac_table_entries;
	net->ctrl.announce = s.ctrl.announce;
	net->ctrl.vq_pairs = s.ctrl.vq_pairs;
	net->ctrl_restored = true;
	/* Its MAC may now be reached through another port: say so. */
	net->announce_on_resume = true;
	return true;
}
