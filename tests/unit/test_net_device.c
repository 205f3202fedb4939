/*
 * virtio-net device against the driver simulator and the loopback backend:
 * every counter moves on exactly its event, frames are never truncated,
 * malformed chains are completed, poisoning raises NEEDS_RESET once.
 * The loopback backend keeps each TX frame until the device's RX drain,
 * deferred work of the event loop, copies it: settle() runs that work.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "check.h"
#include "count_transport.h"
#include "core/compiler.h"
#include "net/net_device.h"
#include "net/offload.h"
#include "vdriver.h"

struct rig {
	struct event_loop loop;
	struct vd_mem mem;
	struct vd_queue rxq, txq, cq;
	struct net_device *net;
	struct net_backend *be;
	struct count_transport tr;
	uint64_t pool;               /* frame buffers */
};

#define FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC) | \
		  (1ull << VIRTIO_RING_F_INDIRECT_DESC))

/* A device on @be (loopback when NULL) with @features acked, activated. */
static void rig_up_backend(struct rig *r, uint64_t features, struct net_backend *be)
{
	struct errbuf eb = { 0 };
	struct net_config_opts opts = { .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .mtu = 1500 };
	struct vd_queue_opts qo = { .size = 64, .indirect_max = 8 };

	memset(r, 0, sizeof(*r));
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, 0x100000, 8 << 20, 0), 0);
	CHECK_EQ(vd_queue_init(&r->rxq, &r->mem, &qo), 0);
	CHECK_EQ(vd_queue_init(&r->txq, &r->mem, &qo), 0);
	CHECK_EQ(vd_queue_init(&r->cq, &r->mem, &qo), 0);
	if (be)
		be->loop = &r->loop;
	r->be = be ? be : net_loopback_create(&r->loop, NULL, &eb);
	CHECK(r->be != NULL);
	r->net = calloc(1, sizeof(*r->net));
	CHECK_EQ(net_device_init(r->net, &opts, r->be, &r->loop), 0);
	count_transport_attach(&r->tr, &r->net->vdev);
	r->net->vdev.mem = &r->mem.gm;
	CHECK_EQ(virtio_device_set_features(&r->net->vdev, features), 0);
	vd_queue_to_vq(&r->rxq, &r->net->vqs[NET_RX_QUEUE], features & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	vd_queue_to_vq(&r->txq, &r->net->vqs[NET_TX_QUEUE], features & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	if (features & (1ull << VIRTIO_NET_F_CTRL_VQ))
		vd_queue_to_vq(&r->cq, &r->net->vqs[net_ctrl_queue(r->net)], false);
	CHECK_EQ(virtio_device_activate(&r->net->vdev), 0);
	r->pool = vd_alloc(&r->mem, 4 << 20, 4096);
	CHECK(r->pool != VD_NO_GPA);
}

static void rig_up(struct rig *r, uint64_t features)
{
	rig_up_backend(r, features, NULL);
}

static void rig_down(struct rig *r)
{
	virtio_device_reset(&r->net->vdev);
	net_device_destroy(r->net);
	free(r->net);
	r->be->ops->destroy(r->be);
	vd_queue_destroy(&r->rxq);
	vd_queue_destroy(&r->txq);
	vd_queue_destroy(&r->cq);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

/* Sum of every counter, to check that only the expected ones moved. */
static uint64_t counters_total(const struct net_counters *c);

/* Every counter of @net's totals, added up. */
static uint64_t net_counters_sum(const struct net_device *net)
{
	struct net_counters t = net_device_totals(net);

	return counters_total(&t);
}

static uint64_t counters_total(const struct net_counters *c)
{
	uint64_t t = 0;
#define X(name, doc) t += c->name;
	NET_COUNTERS(X)
#undef X
	return t;
}

/* Run the device's deferred drains until nothing is left to run. */
static void settle(struct rig *r)
{
	for (int i = 0; i < 16 && event_loop_once(&r->loop, 0) > 0; i++)
		;
}

/* Offer one RX buffer of @len writable bytes at pool offset @off. */
static int offer_rx(struct rig *r, uint64_t off, uint32_t len)
{
	struct vd_buf b = { .gpa = r->pool + off, .len = len, .writable = true };
	int head = vd_add_chain(&r->rxq, &b, 1, false);
	vd_publish(&r->rxq);
	return head;
}

/* Send a frame of @len bytes (pattern @seed) as header + frame buffers. */
static int send_tx(struct rig *r, uint64_t off, uint32_t len, uint8_t seed, bool indirect)
{
	uint64_t hdr = r->pool + off, data = hdr + NET_HDR_LEN;
	uint8_t *p = vd_ptr(&r->mem, data, len);

	vd_fill(&r->mem, hdr, 0, NET_HDR_LEN);
	for (uint32_t i = 0; p && i < len; i++)
		p[i] = (uint8_t)(seed + i);
	struct vd_buf bufs[2] = { { hdr, NET_HDR_LEN, false }, { data, len, false } };
	int head = vd_add_chain(&r->txq, bufs, 2, indirect);
	vd_publish(&r->txq);
	r->net->vdev.ops->queue_notify(&r->net->vdev, NET_TX_QUEUE);
	settle(r);
	return head;
}

static void test_loopback_frame_roundtrip(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	int rx_head = offer_rx(&r, 0, 2048);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_RX_QUEUE);
	int tx_head = send_tx(&r, 0x10000, 1000, 7, false);

	CHECK_EQ(vd_get_used(&r.txq, &id, &len), 1);
	CHECK_EQ(id, tx_head);
	CHECK_EQ(len, 0);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(id, rx_head);
	CHECK_EQ(len, NET_HDR_LEN + 1000);
	struct virtio_net_hdr_v1 hdr;
	vd_read(&r.mem, r.pool, &hdr, sizeof(hdr));
	CHECK_EQ(hdr.num_buffers, 1);
	CHECK_EQ(hdr.flags, 0);
	CHECK_EQ(hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	CHECK(memcmp(vd_ptr(&r.mem, r.pool + NET_HDR_LEN, 1000),
		     vd_ptr(&r.mem, r.pool + 0x10000 + NET_HDR_LEN, 1000), 1000) == 0);
	const struct net_counters totals = net_device_totals(r.net), *c = &totals;
	CHECK_EQ(c->tx_packets, 1);
	CHECK_EQ(c->tx_bytes, 1000);
	CHECK_EQ(c->rx_packets, 1);
	CHECK_EQ(c->rx_bytes, 1000);
	CHECK_EQ(counters_total(c) - c->rx_interrupts - c->tx_interrupts, 2002);
	CHECK_EQ(c->rx_interrupts, 1);
	CHECK_EQ(c->tx_interrupts, 1);
	rig_down(&r);
}

static void test_indirect_tx(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	offer_rx(&r, 0, 2048);
	send_tx(&r, 0x10000, 60, 1, true);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(len, NET_HDR_LEN + 60);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 1);
	rig_down(&r);
}

static void test_tx_oversize_dropped_not_truncated(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	offer_rx(&r, 0, 70000);
	send_tx(&r, 0x20000, NET_TX_FRAME_MAX + 1, 3, false);
	CHECK_EQ(vd_get_used(&r.txq, &id, &len), 1);
	CHECK_EQ(len, 0);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 0);
	CHECK_EQ(net_device_totals(r.net).tx_frame_oversize, 1);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 0);
	/* The largest legal frame goes through whole. */
	send_tx(&r, 0x40000, NET_TX_FRAME_MAX, 3, false);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(len, NET_HDR_LEN + NET_TX_FRAME_MAX);
	CHECK_EQ(net_device_totals(r.net).tx_frame_oversize, 1);
	CHECK_EQ(net_device_totals(r.net).rx_bytes, NET_TX_FRAME_MAX);
	rig_down(&r);
}

static void test_tx_invalid_chains(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	offer_rx(&r, 0, 2048);
	/* Header only: no frame. */
	struct vd_buf only_hdr = { r.pool + 0x1000, NET_HDR_LEN, false };
	vd_add_chain(&r.txq, &only_hdr, 1, false);
	/* A writable part in a TX chain. */
	struct vd_buf with_wr[2] = { { r.pool + 0x2000, 100, false }, { r.pool + 0x3000, 10, true } };
	vd_add_chain(&r.txq, with_wr, 2, false);
	/* A buffer outside guest memory. */
	struct vd_buf outside[2] = { { r.pool + 0x4000, NET_HDR_LEN, false }, { 1ull << 40, 100, false } };
	vd_add_chain(&r.txq, outside, 2, false);
	vd_publish(&r.txq);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_TX_QUEUE);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(vd_get_used(&r.txq, &id, &len), 1);
		CHECK_EQ(len, 0);
	}
	const struct net_counters totals = net_device_totals(r.net), *c = &totals;
	CHECK_EQ(c->tx_chain_invalid, 3);
	CHECK_EQ(counters_total(c) - c->tx_interrupts, 3);
	CHECK_EQ(c->tx_interrupts, 1);   /* one interrupt for the whole drain */
	rig_down(&r);
}

static void test_backpressure_without_rx_buffers(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	send_tx(&r, 0x10000, 100, 9, false);
	/* No RX buffer: the backend keeps the frame and the device its TX
	 * chain, out of the used ring; nothing dropped. */
	CHECK_EQ(vd_get_used(&r.txq, &id, &len), 0);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 1);
	CHECK_EQ(net_counters_sum(r.net), 1 + 100);
	offer_rx(&r, 0, 2048);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_RX_QUEUE);
	settle(&r);
	CHECK_EQ(vd_get_used(&r.txq, &id, &len), 1);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(len, NET_HDR_LEN + 100);
	CHECK_EQ(net_device_totals(r.net).rx_packets, 1);
	CHECK_EQ(net_device_totals(r.net).rx_dropped_no_buffer, 0);
	rig_down(&r);
}

static void test_rx_buffer_too_small(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	int small = offer_rx(&r, 0, NET_HDR_LEN + 50);
	send_tx(&r, 0x10000, 51, 1, false);
	/* Dropped, never truncated, and the buffer stays for the next frame. */
	CHECK_EQ(net_device_totals(r.net).rx_dropped_too_big, 1);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 0);
	send_tx(&r, 0x20000, 50, 1, false);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(id, small);
	CHECK_EQ(len, NET_HDR_LEN + 50);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 2);
	CHECK_EQ(net_device_totals(r.net).rx_packets, 1);
	rig_down(&r);
}

static void test_rx_invalid_chain(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	/* Readable RX buffer, and one too short for the header. */
	struct vd_buf ro = { r.pool, 2048, false };
	int bad1 = vd_add_chain(&r.rxq, &ro, 1, false);
	struct vd_buf tiny = { r.pool + 0x1000, NET_HDR_LEN - 1, true };
	int bad2 = vd_add_chain(&r.rxq, &tiny, 1, false);
	vd_publish(&r.rxq);
	int good = offer_rx(&r, 0x2000, 2048);
	send_tx(&r, 0x10000, 80, 1, false);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(id, bad1);
	CHECK_EQ(len, 0);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(id, bad2);
	CHECK_EQ(len, 0);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(id, good);
	CHECK_EQ(net_device_totals(r.net).rx_chain_invalid, 2);
	CHECK_EQ(net_device_totals(r.net).rx_packets, 1);
	rig_down(&r);
}

static void test_poisoned_tx_needs_reset(void)
{
	struct rig r;

	rig_up(&r, FEATURES);
	vd_raw_avail_idx(&r.txq, 200);     /* more than 64 ahead */
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_TX_QUEUE);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_TX_QUEUE);
	CHECK_EQ(net_device_totals(r.net).avail_index_invalid, 1);
	CHECK(r.net->vdev.needs_reset);
	CHECK_EQ(r.tr.config, 1);
	CHECK_EQ(net_counters_sum(r.net), 1);
	/* Reset clears the state; counters survive it. */
	virtio_device_reset(&r.net->vdev);
	CHECK(!r.net->vdev.needs_reset);
	CHECK_EQ(r.net->vqs[NET_TX_QUEUE].faults.poisoned, VQ_POISON_NONE);
	CHECK_EQ(net_device_totals(r.net).avail_index_invalid, 1);
	rig_down(&r);
}

static void test_poisoned_rx_drops_counted(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	vd_raw_offer(&r.rxq, 500);         /* head out of range */
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_RX_QUEUE);
	send_tx(&r, 0x10000, 100, 1, false);
	/* The backend's frame meets a poisoned RX queue: read off, counted,
	 * and its TX chain goes back. */
	CHECK_EQ(net_device_totals(r.net).rx_dropped_poisoned, 1);
	CHECK_EQ(vd_get_used(&r.txq, &id, &len), 1);
	CHECK_EQ(net_device_totals(r.net).avail_index_invalid, 1);
	CHECK(r.net->vdev.needs_reset);
	rig_down(&r);
}

/* A frame kept for want of RX buffers when the device stops is dropped
 * and counted, and its TX chain is given back before the queues stop. */
static void test_kept_frame_dropped_at_reset(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	int head = send_tx(&r, 0x10000, 60, 3, false);
	CHECK_EQ(vd_get_used(&r.txq, &id, &len), 0);
	virtio_device_deactivate(&r.net->vdev);
	CHECK_EQ(vd_get_used(&r.txq, &id, &len), 1);
	CHECK_EQ(id, head);
	CHECK_EQ(net_device_totals(r.net).rx_dropped_no_buffer, 1);
	CHECK_EQ(net_device_totals(r.net).rx_packets, 0);
	rig_down(&r);
}

static void test_one_interrupt_per_drain(void)
{
	struct rig r;
	uint32_t id, len;

	rig_up(&r, FEATURES);
	for (int i = 0; i < 10; i++)
		offer_rx(&r, (uint64_t)i * 0x1000, 2048);
	for (int i = 0; i < 10; i++) {
		uint64_t off = 0x40000 + (uint64_t)i * 0x1000;
		struct vd_buf bufs[2] = { { r.pool + off, NET_HDR_LEN, false },
					  { r.pool + off + NET_HDR_LEN, 100, false } };
		vd_add_chain(&r.txq, bufs, 2, false);
	}
	vd_publish(&r.txq);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_TX_QUEUE);
	settle(&r);
	CHECK_EQ(r.tr.used[NET_TX_QUEUE], 1);
	CHECK_EQ(r.tr.used[NET_RX_QUEUE], 1);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(net_device_totals(r.net).rx_packets, 10);
	rig_down(&r);
}

static void test_feature_rules(void)
{
	struct rig r;

	rig_up(&r, FEATURES);
	struct virtio_device *d = &r.net->vdev;
	CHECK_EQ(virtio_device_set_features(d, 1ull << VIRTIO_NET_F_MAC), -EINVAL);
	CHECK_EQ(virtio_device_set_features(d, FEATURES | (1ull << VIRTIO_NET_F_CTRL_VLAN)), -EINVAL);
	CHECK_EQ(virtio_device_set_features(d, 1ull << VIRTIO_F_VERSION_1), 0);
	rig_down(&r);
}

static void test_config_space(void)
{
	struct rig r;
	struct virtio_net_config cfg;
	uint8_t b;

	rig_up(&r, FEATURES);
	CHECK_EQ(virtio_device_config_read(&r.net->vdev, 0, &cfg, sizeof(cfg)), 0);
	CHECK(memcmp(cfg.mac, "\x52\x54\x00\x01\x02\x03", 6) == 0);
	CHECK_EQ(cfg.status, VIRTIO_NET_S_LINK_UP);
	CHECK_EQ(cfg.mtu, 1500);
	CHECK_EQ(virtio_device_config_read(&r.net->vdev, 6, &b, 1), 0);
	CHECK_EQ(b, VIRTIO_NET_S_LINK_UP);
	CHECK_EQ(virtio_device_config_read(&r.net->vdev, sizeof(cfg), &b, 1), -EINVAL);
	uint16_t w;
	CHECK_EQ(virtio_device_config_read(&r.net->vdev, UINT32_MAX, &w, 2), -EINVAL);
	rig_down(&r);
}

static void test_parse_mac(void)
{
	uint8_t mac[6];

	CHECK_EQ(net_parse_mac("52:54:00:ab:CD:ef", mac), 0);
	CHECK_EQ(mac[4], 0xcd);
	CHECK_EQ(net_parse_mac("52:54:00:ab:cd", mac), -EINVAL);
	CHECK_EQ(net_parse_mac("52:54:00:ab:cd:ef:00", mac), -EINVAL);
	CHECK_EQ(net_parse_mac("52:54:00:ab:cd:zz", mac), -EINVAL);
	CHECK_EQ(net_parse_mac("", mac), -EINVAL);
	/* 17 characters, but not two hex digits per byte: sscanf's %x took these. */
	CHECK_EQ(net_parse_mac("52:54:00:12:34:-6", mac), -EINVAL);
	CHECK_EQ(net_parse_mac("52: 4:00:12:34:56", mac), -EINVAL);
	CHECK_EQ(net_parse_mac("52:54:00:12:34:+6", mac), -EINVAL);
	CHECK_EQ(net_parse_mac("52-54-00-12-34-56", mac), -EINVAL);
	/* Well formed, but no station's own; @mac is left alone. */
	CHECK_EQ(net_parse_mac("01:00:5e:00:00:01", mac), -EADDRNOTAVAIL);   /* multicast */
	CHECK_EQ(net_parse_mac("ff:ff:ff:ff:ff:ff", mac), -EADDRNOTAVAIL);   /* broadcast */
	CHECK_EQ(net_parse_mac("00:00:00:00:00:00", mac), -EADDRNOTAVAIL);
	CHECK_EQ(mac[4], 0xcd);
	CHECK_EQ(net_parse_mac("02:00:00:00:00:00", mac), 0);
	CHECK_EQ(mac[0], 0x02);
}

/* Default MACs: unicast, locally administered, different on every call
 * (two NICs, two VMs); 64 draws, so a stuck bit shows too. */
static void test_random_mac(void)
{
	uint8_t mac[64][6], ones[6] = { 0 }, zeros[6] = { 0 };

	for (unsigned i = 0; i < 64; i++) {
		net_random_mac(mac[i]);
		CHECK_EQ(mac[i][0] & 3, 2);
		for (unsigned j = 0; j < i; j++)
			CHECK(memcmp(mac[i], mac[j], 6) != 0);
		for (unsigned b = 0; b < 6; b++) {
			ones[b] |= mac[i][b];
			zeros[b] |= (uint8_t)~mac[i][b];
		}
	}
	/* Every one of the 46 free bits took both values. */
	CHECK_EQ(ones[0], 0xfe);
	CHECK_EQ(zeros[0], 0xfd);
	for (unsigned b = 1; b < 6; b++) {
		CHECK_EQ(ones[b], 0xff);
		CHECK_EQ(zeros[b], 0xff);
	}
}

/* --- rate limiting (injected clock) --------------------------------------- */

struct fake_clock {
	struct rl_clock clock;
	uint64_t now;
};

static uint64_t fake_now(const struct rl_clock *c)
{
	return ((const struct fake_clock *)c)->now;
}

/* TX limited to 3000 bytes per 100 ms: of five 1000-byte frames three go at
 * once, the rest stay in the avail ring (not dropped) until the timer. */
static void test_tx_rate_limit_holds_chains(void)
{
	struct rig r;
	struct fake_clock fc = { .clock = { .now_ns = fake_now }, .now = 1 };
	struct rate_limiter_config cfg = { .bandwidth = { .size = 3000, .refill_time = 100 } };
	uint32_t id, len;

	rig_up(&r, FEATURES);
	for (int i = 0; i < 5; i++)
		offer_rx(&r, (uint64_t)i * 2048, 2048);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_RX_QUEUE);
	r.net->pairs[0].tx_limiter.clock = &fc.clock;
	CHECK_EQ(net_device_set_rate_limit(r.net, NET_TX_QUEUE, &cfg), 0);
	for (int i = 0; i < 5; i++)
		send_tx(&r, 0x100000 + (uint64_t)i * 2048, 1000, (uint8_t)i, false);
	unsigned used = 0;
	while (vd_get_used(&r.txq, &id, &len) == 1)
		used++;
	CHECK_EQ(used, 3);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 3);
	CHECK_EQ(net_device_totals(r.net).tx_rate_limited, 1);
	CHECK(rate_limiter_blocked(&r.net->pairs[0].tx_limiter));
	/* Kicks while blocked do nothing; the timer (simulated) resumes TX. */
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_TX_QUEUE);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 3);
	fc.now += 100000000ull;
	rate_limiter_expire(&r.net->pairs[0].tx_limiter);
	settle(&r);
	while (vd_get_used(&r.txq, &id, &len) == 1)
		used++;
	CHECK_EQ(used, 5);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 5);
	CHECK_EQ(net_device_totals(r.net).rx_packets, 5);
	CHECK_EQ(net_device_totals(r.net).tx_backend_errors + net_device_totals(r.net).rx_dropped_no_buffer, 0);
	rig_down(&r);
}

/* RX limited to 2 frames per second: the RX drain stops and the loopback
 * backend keeps the rest, so TX backs up too; nothing is dropped. Raising the limit
 * while blocked lets everything through at once. */
static void test_rx_rate_limit_backpressure(void)
{
	struct rig r;
	struct fake_clock fc = { .clock = { .now_ns = fake_now }, .now = 1 };
	struct rate_limiter_config cfg = { .ops = { .size = 2, .refill_time = 1000 } };
	uint32_t id, len;

	rig_up(&r, FEATURES);
	for (int i = 0; i < 6; i++)
		offer_rx(&r, (uint64_t)i * 2048, 2048);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_RX_QUEUE);
	r.net->pairs[0].rx_limiter.clock = &fc.clock;
	CHECK_EQ(net_device_set_rate_limit(r.net, NET_RX_QUEUE, &cfg), 0);
	for (int i = 0; i < 6; i++)
		send_tx(&r, 0x100000 + (uint64_t)i * 2048, 100, (uint8_t)i, false);
	unsigned rx = 0;
	while (vd_get_used(&r.rxq, &id, &len) == 1)
		rx++;
	CHECK_EQ(rx, 2);
	CHECK_EQ(net_device_totals(r.net).rx_rate_limited, 1);
	CHECK_EQ(net_device_totals(r.net).rx_dropped_no_buffer, 0);
	struct rate_limiter_config open = { .ops = { .size = 1000, .refill_time = 1000 } };
	CHECK_EQ(net_device_set_rate_limit(r.net, NET_RX_QUEUE, &open), 0);
	settle(&r);
	while (vd_get_used(&r.rxq, &id, &len) == 1)
		rx++;
	CHECK_EQ(rx, 6);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 6);
	struct rate_limiter_config got;
	net_device_get_rate_limit(r.net, NET_RX_QUEUE, &got);
	CHECK_EQ(got.ops.size, 1000);
	CHECK_EQ(net_device_set_rate_limit(r.net, 7, &open), -EINVAL);
	rig_down(&r);
}

/* --- offloads and mergeable RX buffers ------------------------------------ */

#define F(bit) (1ull << (bit))
#define OFFLOADS (F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | \
		  F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO4))

/* One's-complement sum of @len bytes (big-endian 16-bit words), unfolded. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t acc)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		acc += (uint32_t)p[len - 1] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

/* The TCP/IPv4 pseudo-header's sum for an L4 length of @l4_len. */
static uint32_t pseudo4(const uint8_t *ip, size_t l4_len)
{
	return sum16(ip + 12, 8, 6u + (uint32_t)l4_len);
}

/* A TCP/IPv4 frame of @payload bytes in @f (Ethernet + 20 + 20 + payload),
 * its TCP checksum field holding the pseudo-header's sum as Linux leaves
 * it for NEEDS_CSUM. Returns the frame's length. */
static size_t make_tcp4(uint8_t *f, size_t payload)
{
	size_t len = 14 + 20 + 20 + payload;
	memset(f, 0, 54);
	memcpy(f, "\x52\x54\x00\x00\x00\x02\x52\x54\x00\x01\x02\x03\x08\x00", 14);
	uint8_t *ip = f + 14, *tcp = ip + 20;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((len - 14) >> 8);
	ip[3] = (uint8_t)(len - 14);
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, "\x0a\x00\x00\x02\x0a\x00\x00\x01", 8);
	uint16_t ipc = (uint16_t)~fold(sum16(ip, 20, 0));
	ip[10] = (uint8_t)(ipc >> 8);
	ip[11] = (uint8_t)ipc;
	tcp[12] = 5 << 4;
	tcp[13] = 0x18;     /* PSH, ACK */
	for (size_t i = 0; i < payload; i++)
		tcp[20 + i] = (uint8_t)(i * 7);
	uint16_t ph = fold(pseudo4(ip, 20 + payload));
	tcp[16] = (uint8_t)(ph >> 8);
	tcp[17] = (uint8_t)ph;
	return len;
}

/* Does the TCP/IPv4 frame @f of @len bytes carry a correct TCP checksum? */
static bool tcp4_csum_ok(const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + 14;
	size_t l4 = len - 34;
	return fold(sum16(ip + 20, l4, pseudo4(ip, l4))) == 0xffff;
}

/* Send @f (@len bytes) behind @h as one TX chain. */
static int send_frame(struct rig *r, uint64_t off, const struct virtio_net_hdr_v1 *h,
		      const uint8_t *f, size_t len)
{
	uint64_t hdr = r->pool + off, data = hdr + NET_HDR_LEN;

	vd_write(&r->mem, hdr, h, sizeof(*h));
	vd_write(&r->mem, data, f, len);
	struct vd_buf bufs[2] = { { hdr, NET_HDR_LEN, false }, { data, (uint32_t)len, false } };
	int head = vd_add_chain(&r->txq, bufs, 2, false);
	vd_publish(&r->txq);
	r->net->vdev.ops->queue_notify(&r->net->vdev, NET_TX_QUEUE);
	settle(r);
	return head;
}

static const struct virtio_net_hdr_v1 tso4_hdr = {
	.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
	.hdr_len = 9999,        /* a lie: the device computes its own */
	.gso_size = 1000, .csum_start = 34, .csum_offset = 16,
};

static void test_tx_header_refused(void)
{
	struct rig r;
	uint32_t id, len;
	uint8_t f[2048];
	size_t n = make_tcp4(f, 100);

	rig_up(&r, FEATURES | F(VIRTIO_NET_F_CSUM));
	offer_rx(&r, 0, 4096);
	/* An RX-only flag, a GSO type not acked, a checksum past the frame. */
	struct virtio_net_hdr_v1 bad[3] = {
		{ .flags = VIRTIO_NET_HDR_F_DATA_VALID },
		tso4_hdr,
		{ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = (uint16_t)n, .csum_offset = 0 },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		send_frame(&r, 0x10000 + i * 0x1000, &bad[i], f, n);
		CHECK_EQ(vd_get_used(&r.txq, &id, &len), 1);
	}
	CHECK_EQ(net_device_totals(r.net).tx_hdr_invalid, 3);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 0);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 0);
	rig_down(&r);
}

/* Loopback hands a TSO frame back whole, its header checked both ways. */
static void test_offload_passthrough(void)
{
	struct rig r;
	uint32_t id, len;
	static uint8_t f[8192];
	size_t n = make_tcp4(f, 3000);

	rig_up(&r, FEATURES | OFFLOADS);
	offer_rx(&r, 0, 8192);
	send_frame(&r, 0x10000, &tso4_hdr, f, n);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(len, NET_HDR_LEN + n);
	struct virtio_net_hdr_v1 h;
	vd_read(&r.mem, r.pool, &h, sizeof(h));
	CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	CHECK_EQ(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	CHECK_EQ(h.gso_size, 1000);
	CHECK_EQ(h.hdr_len, 54);
	CHECK_EQ(h.num_buffers, 1);
	rig_down(&r);

	/* A guest that takes no TSO on RX gets no TSO frame. */
	rig_up(&r, FEATURES | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4));
	offer_rx(&r, 0, 8192);
	send_frame(&r, 0x10000, &tso4_hdr, f, n);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 0);
	CHECK_EQ(net_device_totals(r.net).rx_hdr_refused, 1);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 1);
	rig_down(&r);
}

/* A frame spreads over mergeable buffers; unused ones stay in the ring. */
static void test_mergeable_rx(void)
{
	struct rig r;
	uint32_t id, len;
	static uint8_t f[2048];
	size_t n = make_tcp4(f, 1346);           /* 1400 bytes */
	int heads[6];

	rig_up(&r, FEATURES | F(VIRTIO_NET_F_MRG_RXBUF));
	for (int i = 0; i < 6; i++)
		heads[i] = offer_rx(&r, (uint64_t)i * 0x1000, 512);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_RX_QUEUE);
	static const struct virtio_net_hdr_v1 plain;
	send_frame(&r, 0x10000, &plain, f, n);
	uint32_t want[3] = { 512, 512, NET_HDR_LEN + 1400 - 1024 };
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
		CHECK_EQ(id, heads[i]);
		CHECK_EQ(len, want[i]);
	}
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 0);
	struct virtio_net_hdr_v1 h;
	vd_read(&r.mem, r.pool, &h, sizeof(h));
	CHECK_EQ(h.num_buffers, 3);
	CHECK(memcmp(vd_ptr(&r.mem, r.pool + NET_HDR_LEN, 500), f, 500) == 0);
	CHECK(memcmp(vd_ptr(&r.mem, r.pool + 0x2000, 1400 - 1012), f + 1012, 1400 - 1012) == 0);
	CHECK_EQ(net_device_totals(r.net).rx_merged_buffers, 2);
	/* The next frame starts in the fourth buffer. */
	send_frame(&r, 0x20000, &plain, f, 100);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(id, heads[3]);
	rig_down(&r);
}

/* Too few buffers for the frame: it waits whole, then goes in full. */
static void test_mergeable_rx_waits_for_buffers(void)
{
	struct rig r;
	uint32_t id, len;
	static uint8_t f[8192];
	size_t n = make_tcp4(f, 5000);

	rig_up(&r, FEATURES | OFFLOADS | F(VIRTIO_NET_F_MRG_RXBUF));
	for (int i = 0; i < 2; i++)
		offer_rx(&r, (uint64_t)i * 0x1000, 2048);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_RX_QUEUE);
	send_frame(&r, 0x10000, &tso4_hdr, f, n);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 0);
	CHECK_EQ(net_device_totals(r.net).rx_waited_for_buffers, 1);
	CHECK_EQ(net_device_totals(r.net).rx_packets, 0);
	for (int i = 2; i < 4; i++)
		offer_rx(&r, (uint64_t)i * 0x1000, 2048);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_RX_QUEUE);
	settle(&r);
	unsigned got = 0;
	uint32_t total = 0;
	while (vd_get_used(&r.rxq, &id, &len) == 1) {
		got++;
		total += len;
	}
	CHECK_EQ(got, 3);
	CHECK_EQ(total, NET_HDR_LEN + n);
	struct virtio_net_hdr_v1 h;
	vd_read(&r.mem, r.pool, &h, sizeof(h));
	CHECK_EQ(h.num_buffers, 3);
	CHECK_EQ(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	CHECK(memcmp(vd_ptr(&r.mem, r.pool + 0x1000, 2048), f + 2036, 2048) == 0);
	CHECK_EQ(net_device_totals(r.net).rx_packets, 1);
	CHECK_EQ(net_device_totals(r.net).rx_dropped_too_big, 0);
	rig_down(&r);
}

/* A backend of plain frames records what it is sent. */
struct plain_rec {
	struct net_backend be;
	unsigned n;
	size_t len[64];
	uint8_t frame[64][1600];
};

static int plain_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		      uint32_t token)
{
	struct plain_rec *p = container_of(be, struct plain_rec, be);
	size_t len = iov_length(iov, iovcnt);

	if (p->n == 64 || len > sizeof(p->frame[0]))
		return -EMSGSIZE;
	p->len[p->n] = iov_to_buf(iov, iovcnt, 0, p->frame[p->n], len);
	p->n++;
	return 0;
}

static ssize_t plain_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	return 0;
}

static void plain_destroy(struct net_backend *be)
{
	free(container_of(be, struct plain_rec, be));
}

static const struct net_backend_ops plain_ops = {
	.name = "plain", .send = plain_send, .recv = plain_recv, .destroy = plain_destroy,
};

/* For a backend of plain frames kvmini segments TSO and completes checksums. */
static void test_soft_offloads(void)
{
	struct rig r;
	static uint8_t f[8192];
	size_t n = make_tcp4(f, 3500);

	struct plain_rec *p = calloc(1, sizeof(*p));
	p->be = (struct net_backend){ .ops = &plain_ops, .rx_fd = -1 };
	/* Through a rig on the plain backend. */
	struct virtio_net_hdr_v1 csum_only = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
					       .csum_start = 34, .csum_offset = 16 };
	rig_up_backend(&r, FEATURES | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4), &p->be);
	/* Offered: what kvmini finishes itself, nothing on RX, no UFO. */
	uint64_t offered = r.net->vdev.ops->features(&r.net->vdev);
	CHECK_EQ(offered & NET_SOFT_OFFLOADS, NET_SOFT_OFFLOADS);
	CHECK_EQ(offered & (NET_GUEST_OFFLOADS | F(VIRTIO_NET_F_HOST_UFO)), 0);
	send_frame(&r, 0x10000, &tso4_hdr, f, n);
	CHECK_EQ(p->n, 4);                       /* 3500 bytes in 1000-byte segments */
	for (unsigned i = 0; i < p->n; i++) {
		CHECK_EQ(p->len[i], 54 + (i < 3 ? 1000u : 500u));
		CHECK(tcp4_csum_ok(p->frame[i], p->len[i]));
		CHECK(memcmp(p->frame[i] + 54, f + 54 + i * 1000, p->len[i] - 54) == 0);
	}
	CHECK_EQ(net_device_totals(r.net).tx_gso_segmented, 1);
	size_t small = make_tcp4(f, 200);
	send_frame(&r, 0x20000, &csum_only, f, small);
	CHECK_EQ(p->n, 5);
	CHECK(tcp4_csum_ok(p->frame[4], p->len[4]));
	CHECK_EQ(net_device_totals(r.net).tx_csum_completed, 1);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 2);
	/* A segment size of a few bytes would make thousands of frames of one. */
	struct virtio_net_hdr_v1 tiny = tso4_hdr;
	tiny.gso_size = 2;
	n = make_tcp4(f, 3500);
	send_frame(&r, 0x30000, &tiny, f, n);
	CHECK_EQ(p->n, 5);
	CHECK_EQ(net_device_totals(r.net).tx_backend_errors, 1);
	rig_down(&r);
}

/* A backend that batches as the stream does: send() keeps each frame,
 * flush() gives the batch back at the end of the drain. */
struct batch_rec {
	struct net_backend be;
	unsigned sends, flushes, batches, largest, kept;
	uint32_t token[64];
};

static struct batch_rec *to_batch(struct net_backend *be)
{
	return container_of(be, struct batch_rec, be);
}

static int batch_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		      uint32_t token)
{
	struct batch_rec *b = to_batch(be);

	b->sends++;
	if (b->kept == 64)
		return -EAGAIN;
	b->token[b->kept++] = token;
	return NET_SEND_KEPT;
}

static void batch_flush(struct net_backend *be)
{
	struct batch_rec *b = to_batch(be);

	b->flushes++;
	if (!b->kept)
		return;
	b->batches++;
	b->largest = MAX(b->largest, b->kept);
	for (unsigned i = 0; i < b->kept; i++)
		net_backend_tx_done(be, b->token[i]);
	b->kept = 0;
}

static unsigned batch_drop_kept(struct net_backend *be)
{
	struct batch_rec *b = to_batch(be);
	unsigned n = b->kept;

	for (unsigned i = 0; i < n; i++)
		net_backend_tx_done(be, b->token[i]);
	b->kept = 0;
	return n;
}

static void batch_destroy(struct net_backend *be)
{
	free(to_batch(be));
}

static const struct net_backend_ops batch_ops = {
	.name = "batch", .send = batch_send, .recv = plain_recv, .flush = batch_flush,
	.drop_kept = batch_drop_kept, .destroy = batch_destroy,
};

/* Ten frames in one kick: one batch of ten, flushed before the drain
 * publishes, so their chains come back with the drain's one interrupt. */
static void test_tx_batch_flushed_per_drain(void)
{
	struct rig r;
	uint32_t id, len;
	struct batch_rec *b = calloc(1, sizeof(*b));

	b->be = (struct net_backend){ .ops = &batch_ops, .rx_fd = -1 };
	rig_up_backend(&r, FEATURES, &b->be);
	for (int i = 0; i < 10; i++) {
		uint64_t off = 0x40000 + (uint64_t)i * 0x1000;
		struct vd_buf bufs[2] = { { r.pool + off, NET_HDR_LEN, false },
					  { r.pool + off + NET_HDR_LEN, 100, false } };
		vd_add_chain(&r.txq, bufs, 2, false);
	}
	vd_publish(&r.txq);
	r.net->vdev.ops->queue_notify(&r.net->vdev, NET_TX_QUEUE);
	CHECK_EQ(b->sends, 10);
	CHECK_EQ(b->batches, 1);
	CHECK_EQ(b->largest, 10);
	CHECK_EQ(b->kept, 0);
	CHECK_EQ(r.tr.used[NET_TX_QUEUE], 1);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(vd_get_used(&r.txq, &id, &len), 1);
	CHECK_EQ(vd_get_used(&r.txq, &id, &len), 0);
	CHECK_EQ(net_device_totals(r.net).tx_packets, 10);
	/* Pausing flushes too (nothing is kept here: no call gives back). */
	unsigned flushes = b->flushes;
	r.net->vdev.ops->pause(&r.net->vdev);
	CHECK_EQ(b->flushes, flushes + 1);
	r.net->vdev.ops->resume(&r.net->vdev);
	rig_down(&r);
}

/* --- the control queue ------------------------------------------------------ */

#define CTRL (F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_CTRL_MAC_ADDR) | \
	      F(VIRTIO_NET_F_GUEST_ANNOUNCE) | F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS))

/* Send one command (class, command, @len bytes of data); the device's
 * answer, or -1 when it completed the chain unanswered. */
static int ctrl_cmd(struct rig *r, uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
	uint64_t out = r->pool + 0x300000, ack = out + 0x2000;
	uint8_t hdr[2] = { cls, cmd };
	uint32_t id, used;

	vd_write(&r->mem, out, hdr, 2);
	vd_write(&r->mem, out + 2, data, len);
	vd_fill(&r->mem, ack, 0xee, 1);
	struct vd_buf bufs[2] = { { out, 2 + len, false }, { ack, 1, true } };
	vd_add_chain(&r->cq, bufs, 2, false);
	vd_publish(&r->cq);
	r->net->vdev.ops->queue_notify(&r->net->vdev, net_ctrl_queue(r->net));
	CHECK_EQ(vd_get_used(&r->cq, &id, &used), 1);
	if (used != 1)
		return -1;
	uint8_t a;
	vd_read(&r->mem, ack, &a, 1);
	return a;
}

static void test_ctrl_rx_mode_and_mac(void)
{
	struct rig r;
	uint8_t on = 1;
	uint8_t mac[6] = { 0x52, 0x54, 0, 9, 8, 7 }, mcast[6] = { 0x33, 0x33, 0, 0, 0, 1 };
	/* Two unicast entries, then one multicast. */
	uint8_t tables[4 + 12 + 4 + 6] = { 2 };

	rig_up(&r, FEATURES | CTRL);
	CHECK_EQ(r.net->vdev.num_queues, 3);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1), VIRTIO_NET_OK);
	CHECK(r.net->ctrl.promisc);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1), VIRTIO_NET_OK);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, &on, 1), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, mac, 2), VIRTIO_NET_ERR);
	tables[16] = 1;
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tables,
			  sizeof(tables)), VIRTIO_NET_OK);
	CHECK_EQ(r.net->ctrl.mac_table_entries, 3);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, tables,
			  sizeof(tables) - 1), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6), VIRTIO_NET_OK);
	struct virtio_net_config cfg;
	r.net->vdev.ops->config_read(&r.net->vdev, &cfg);
	CHECK(memcmp(cfg.mac, mac, 6) == 0);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mcast, 6),
		 VIRTIO_NET_ERR);
	uint8_t two[2] = { 1, 0 };
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_VLAN, 0, two, 2), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(&r, 99, 0, NULL, 0), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, two, 2),
		 VIRTIO_NET_ERR);                       /* MQ not negotiated */
	/* No byte to answer in: completed unanswered, counted. */
	struct vd_buf only_out = { r.pool + 0x300000, 3, false };
	vd_add_chain(&r.cq, &only_out, 1, false);
	vd_publish(&r.cq);
	r.net->vdev.ops->queue_notify(&r.net->vdev, net_ctrl_queue(r.net));
	uint32_t id, len;
	CHECK_EQ(vd_get_used(&r.cq, &id, &len), 1);
	CHECK_EQ(len, 0);
	CHECK_EQ(net_device_totals(r.net).tx_ctrl_ok, 4);
	CHECK_EQ(net_device_totals(r.net).tx_ctrl_refused, 8);
	rig_down(&r);

	/* Without CTRL_RX the RX mode commands are refused. */
	rig_up(&r, FEATURES | F(VIRTIO_NET_F_CTRL_VQ));
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1), VIRTIO_NET_ERR);
	rig_down(&r);
	/* Without CTRL_VQ there is no control queue. */
	rig_up(&r, FEATURES);
	CHECK_EQ(r.net->vdev.num_queues, NET_NUM_QUEUES);
	rig_down(&r);
}

/* ethtool -K: the guest turns RX TSO off, and TSO frames stop reaching it. */
static void test_ctrl_guest_offloads(void)
{
	struct rig r;
	uint32_t id, len;
	static uint8_t f[8192];
	size_t n = make_tcp4(f, 3000);
	uint64_t csum_only = F(VIRTIO_NET_F_GUEST_CSUM), too_much = F(VIRTIO_NET_F_GUEST_UFO);

	rig_up(&r, FEATURES | OFFLOADS | CTRL);
	CHECK_EQ(r.net->ctrl.guest_offloads, F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4));
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
			  &too_much, 8), VIRTIO_NET_ERR);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET,
			  &csum_only, 8), VIRTIO_NET_OK);
	CHECK_EQ(r.net->ctrl.guest_offloads, csum_only);
	offer_rx(&r, 0, 8192);
	send_frame(&r, 0x10000, &tso4_hdr, f, n);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 0);
	CHECK_EQ(net_device_totals(r.net).rx_hdr_refused, 1);
	rig_down(&r);
}

/* vhost-user restarts the device when the front-end enables or disables a
 * ring (virtio_device_deactivate, then activate, without a new
 * negotiation): the RX offloads the guest took hold, so TSO frames from the
 * backend still reach it (they were refused, rx_hdr_refused, and UML's TCP
 * over a tap stalled); a new negotiation starts from what it acks. */
static void test_restart_keeps_guest_offloads(void)
{
	struct rig r;
	uint32_t id, len;
	static uint8_t f[8192];
	size_t n = make_tcp4(f, 3000);
	uint64_t taken = F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4);

	rig_up(&r, FEATURES | OFFLOADS | CTRL);
	CHECK_EQ(r.net->ctrl.guest_offloads, taken);
	virtio_device_deactivate(&r.net->vdev);
	CHECK(!r.net->vdev.active);
	CHECK_EQ(virtio_device_activate(&r.net->vdev), 0);
	CHECK_EQ(r.net->ctrl.guest_offloads, taken);
	offer_rx(&r, 0, 8192);
	send_frame(&r, 0x10000, &tso4_hdr, f, n);
	CHECK_EQ(vd_get_used(&r.rxq, &id, &len), 1);
	CHECK_EQ(len, NET_HDR_LEN + n);
	CHECK_EQ(net_device_totals(r.net).rx_hdr_refused, 0);
	virtio_device_reset(&r.net->vdev);
	CHECK_EQ(virtio_device_set_features(&r.net->vdev, FEATURES | CTRL), 0);
	CHECK_EQ(r.net->ctrl.guest_offloads, 0);
	rig_down(&r);
}

static void test_ctrl_announce(void)
{
	struct rig r;
	struct virtio_net_config cfg;

	rig_up(&r, FEATURES | CTRL);
	net_device_announce(r.net);
	r.net->vdev.ops->config_read(&r.net->vdev, &cfg);
	CHECK_EQ(cfg.status, VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
	CHECK_EQ(r.tr.config, 1);
	CHECK_EQ(ctrl_cmd(&r, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0),
		 VIRTIO_NET_OK);
	r.net->vdev.ops->config_read(&r.net->vdev, &cfg);
	CHECK_EQ(cfg.status, VIRTIO_NET_S_LINK_UP);
	CHECK_EQ(net_device_totals(r.net).rx_announce_requested, 1);
	rig_down(&r);
	/* A guest that did not take GUEST_ANNOUNCE is not asked. */
	rig_up(&r, FEATURES | F(VIRTIO_NET_F_CTRL_VQ));
	net_device_announce(r.net);
	CHECK_EQ(net_device_totals(r.net).rx_announce_requested, 0);
	rig_down(&r);
}

int main(void)
{
	RUN_TEST(test_loopback_frame_roundtrip);
	RUN_TEST(test_indirect_tx);
	RUN_TEST(test_tx_oversize_dropped_not_truncated);
	RUN_TEST(test_tx_invalid_chains);
	RUN_TEST(test_backpressure_without_rx_buffers);
	RUN_TEST(test_rx_buffer_too_small);
	RUN_TEST(test_rx_invalid_chain);
	RUN_TEST(test_poisoned_tx_needs_reset);
	RUN_TEST(test_poisoned_rx_drops_counted);
	RUN_TEST(test_kept_frame_dropped_at_reset);
	RUN_TEST(test_one_interrupt_per_drain);
	RUN_TEST(test_feature_rules);
	RUN_TEST(test_config_space);
	RUN_TEST(test_parse_mac);
	RUN_TEST(test_random_mac);
	RUN_TEST(test_tx_rate_limit_holds_chains);
	RUN_TEST(test_rx_rate_limit_backpressure);
	RUN_TEST(test_tx_header_refused);
	RUN_TEST(test_offload_passthrough);
	RUN_TEST(test_mergeable_rx);
	RUN_TEST(test_mergeable_rx_waits_for_buffers);
	RUN_TEST(test_soft_offloads);
	RUN_TEST(test_tx_batch_flushed_per_drain);
	RUN_TEST(test_ctrl_rx_mode_and_mac);
	RUN_TEST(test_ctrl_guest_offloads);
	RUN_TEST(test_restart_keeps_guest_offloads);
	RUN_TEST(test_ctrl_announce);
	return CHECK_DONE();
}
