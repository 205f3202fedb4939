/*
 * virtio-net snapshot state, section "VNET" (see net_device.h). Parsed into
 * a local copy and checked whole before anything of the device changes.
 */
#include <stdio.h>
#include <string.h>

#include "core/compiler.h"
#include "net/net_device.h"
#include "net/offload.h"

#define VNET_TAG "VNET"
#define NET_COUNTER_COUNT (sizeof(struct net_counters) / sizeof(uint64_t))

_Static_assert(sizeof(struct net_counters) % sizeof(uint64_t) == 0, "counters are u64");

struct bucket_state {
	struct token_bucket_config cfg;
	int64_t budget;
	uint64_t burst;
	uint64_t age_ns;                 /* since the refill was credited */
};

struct limiter_state {
	struct bucket_state bw, ops;
};

struct net_state {
	uint8_t mac[6];
	uint16_t mtu;
	struct net_counters counters;
	struct limiter_state tx, rx;
	struct net_ctrl ctrl;            /* the driver's settings only, no buffers */
};

static struct net_device *to_net(struct virtio_device *vdev)
{
	return container_of(vdev, struct net_device, vdev);
}

/* --- saving ------------------------------------------------------------------ */

/* A bucket's refill time relative to now: the new process's monotonic
 * clock has nothing to do with the old one's. */
static void save_bucket(const struct token_bucket *tb, uint64_t now, struct state_writer *w)
{
	state_put_u64(w, tb->cfg.size);
	state_put_u64(w, tb->cfg.one_time_burst);
	state_put_u64(w, tb->cfg.refill_time);
	state_put_u64(w, (uint64_t)tb->budget);
	state_put_u64(w, tb->burst);
	state_put_u64(w, now > tb->last_ns ? now - tb->last_ns : 0);
}

static void save_limiter(const struct rate_limiter *rl, struct state_writer *w)
{
	uint64_t now = rl->clock->now_ns(rl->clock);

	save_bucket(&rl->bw, now, w);
	save_bucket(&rl->ops, now, w);
}

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
	save_limiter(&net->pairs[0].tx_limiter, w);
	save_limiter(&net->pairs[0].rx_limiter, w);
	save_ctrl(&net->ctrl, w);
	state_end(w);
	return 0;
}

/* --- parsing --------------------------------------------------------------------- */

static void read_bucket(struct state_reader *sec, struct bucket_state *b)
{
	b->cfg.size = state_get_u64(sec);
	b->cfg.one_time_burst = state_get_u64(sec);
	b->cfg.refill_time = state_get_u64(sec);
	b->budget = (int64_t)state_get_u64(sec);
	b->burst = state_get_u64(sec);
	b->age_ns = state_get_u64(sec);
}

/* Tokens a bucket can hold: at most full, debt at most one frame's worth
 * beyond empty (a charge of up to a 64 KiB frame), the burst at most what
 * it started with. */
static bool check_bucket(struct state_reader *sec, const char *what, const struct bucket_state *b)
{
	int64_t size = (int64_t)b->cfg.size;

	if (b->budget > size || b->budget < -size - (int64_t)NET_TX_FRAME_MAX)
		return state_fail(sec, "%s: %lld tokens in a bucket of %llu", what,
				  (long long)b->budget, (unsigned long long)b->cfg.size);
	if (b->burst > b->cfg.one_time_burst)
		return state_fail(sec, "%s: burst %llu left of %llu", what,
				  (unsigned long long)b->burst, (unsigned long long)b->cfg.one_time_burst);
	return true;
}

static bool read_limiter(struct state_reader *sec, const char *dir, struct limiter_state *l)
{
	struct rate_limiter_config cfg;
	char what[32];

	read_bucket(sec, &l->bw);
	read_bucket(sec, &l->ops);
	if (sec->failed)
		return false;
	cfg.bandwidth = l->bw.cfg;
	cfg.ops = l->ops.cfg;
	if (!rate_limiter_config_valid(&cfg))
		return state_fail(sec, "%s rate limiter: a bucket out of range", dir);
	snprintf(what, sizeof(what), "%s bandwidth", dir);
	if (!check_bucket(sec, what, &l->bw))
		return false;
	snprintf(what, sizeof(what), "%s ops", dir);
	return check_bucket(sec, what, &l->ops);
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

static void apply_bucket(struct token_bucket *tb, const struct bucket_state *b, uint64_t now)
{
	tb->cfg = b->cfg;
	tb->budget = b->budget;
	tb->burst = b->burst;
	tb->last_ns = now - MIN(b->age_ns, now);
}

/* Not blocked: a limiter that was is asked again at resume and blocks
 * anew, with its timer, if the tokens are still short. */
static void apply_limiter(struct rate_limiter *rl, const struct limiter_state *l)
{
	uint64_t now = rl->clock->now_ns(rl->clock);

	apply_bucket(&rl->bw, &l->bw, now);
	apply_bucket(&rl->ops, &l->ops, now);
	rl->blocked = false;
}

bool net_load_state(struct virtio_device *vdev, struct state_reader *r)
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
		apply_limiter(&qp->tx_limiter, &s.tx);
		apply_limiter(&qp->rx_limiter, &s.rx);
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
