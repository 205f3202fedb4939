/*
 * virtio-net with several queue pairs (VIRTIO_NET_F_MQ): the features and
 * config a driver sees, the queue numbering (the control queue after the
 * pairs), VQ_PAIRS_SET and its steering, per-pair counters beside the
 * totals, and the pair threads: kicks handed to them, interrupts back,
 * and reset, pause and rate-limit changes with the threads stopped.
 * Each pair has a loopback of its own, so a frame sent on pair i comes
 * back on pair i only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "check.h"
#include "count_transport.h"
#include "core/clock.h"
#include "net/backend.h"
#include "net/net_device.h"
#include "vdriver.h"

#define F(bit) (1ull << (bit))
#define PAIRS 2
#define FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_MQ) | \
		  F(VIRTIO_NET_F_CTRL_VQ))

/* A loopback that says which queues the device attached (steering). */
struct steered {
	struct net_backend *inner;
	bool enabled;
	unsigned calls;
};

struct mq_rig {
	struct event_loop loop;                  /* the device's */
	struct event_loop pair_loops[PAIRS];
	struct event_loop *pair_loop_ptrs[PAIRS];
	struct vd_mem mem;
	struct vd_queue rxq[PAIRS], txq[PAIRS], cq;
	struct net_device net;
	struct net_backend *be[PAIRS];
	struct count_transport tr;
	uint64_t pool;
	bool threads;
};

static struct steered steer[PAIRS];

static int loopback_set_queue_enabled(struct net_backend *be, bool enabled)
{
	for (unsigned i = 0; i < PAIRS; i++) {
		if (steer[i].inner == be) {
			steer[i].enabled = enabled;
			steer[i].calls++;
		}
	}
	return 0;
}

/* The loopback's ops with set_queue_enabled added (it has one queue of
 * its own; the rig records what the device asked of each). */
static struct net_backend_ops steered_ops;

/* An fd backend as a tap is one (rx_fd polled by the pair's loop): one end
 * of a datagram socketpair, the test writes frames on the other. */
struct dgram_be {
	struct net_backend be;
	int peer;
};

static ssize_t dgram_recv(struct net_backend *be, const struct iovec *iov, unsigned iovcnt)
{
	ssize_t n = readv(be->rx_fd, iov, (int)iovcnt);

	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	return n;
}

static int dgram_send(struct net_backend *be, const struct iovec *iov, unsigned iovcnt,
		      uint32_t token)
{
	(void)token;
	return writev(be->rx_fd, iov, (int)iovcnt) < 0 ? -errno : 0;
}

static void dgram_destroy(struct net_backend *be)
{
	struct dgram_be *d = (struct dgram_be *)be;

	close(be->rx_fd);
	close(d->peer);
	free(d);
}

static const struct net_backend_ops dgram_ops = {
	.name = "dgram", .send = dgram_send, .recv = dgram_recv, .destroy = dgram_destroy,
};

static struct net_backend *dgram_create(struct event_loop *loop)
{
	struct dgram_be *d = calloc(1, sizeof(*d));
	int sv[2];

	CHECK(d != NULL);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	d->be = (struct net_backend){ .ops = &dgram_ops, .loop = loop, .rx_fd = sv[0] };
	d->peer = sv[1];
	return &d->be;
}

/* Pairs on fd backends (dgram_create) rather than loopbacks (rig_up). */
static bool rig_fd_backends;

static void rig_up(struct mq_rig *r, bool threads, uint64_t features)
{
	struct errbuf eb = { 0 };
	struct net_config_opts opts = { .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .mtu = 1500,
					.pair_threads = threads };
	struct vd_queue_opts qo = { .size = 64, .indirect_max = 8 };

	memset(r, 0, sizeof(*r));
	memset(steer, 0, sizeof(steer));
	r->threads = threads;
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, 0x100000, 8 << 20, 0), 0);
	for (unsigned i = 0; i < PAIRS; i++) {
		struct event_loop *pl = threads ? &r->pair_loops[i] : &r->loop;
		if (threads)
			CHECK_EQ(event_loop_init(pl), 0);
		r->pair_loop_ptrs[i] = pl;
		if (rig_fd_backends) {
			r->be[i] = dgram_create(pl);
			CHECK_EQ(vd_queue_init(&r->rxq[i], &r->mem, &qo), 0);
			CHECK_EQ(vd_queue_init(&r->txq[i], &r->mem, &qo), 0);
			continue;
		}
		r->be[i] = net_loopback_create(pl, NULL, &eb);
		CHECK(r->be[i] != NULL);
		steered_ops = *r->be[i]->ops;
		steered_ops.set_queue_enabled = loopback_set_queue_enabled;
		r->be[i]->ops = &steered_ops;
		steer[i].inner = r->be[i];
		CHECK_EQ(vd_queue_init(&r->rxq[i], &r->mem, &qo), 0);
		CHECK_EQ(vd_queue_init(&r->txq[i], &r->mem, &qo), 0);
	}
	CHECK_EQ(vd_queue_init(&r->cq, &r->mem, &qo), 0);
	CHECK_EQ(net_device_init_pairs(&r->net, &opts, r->be, PAIRS, &r->loop, r->pair_loop_ptrs),
		 0);
	count_transport_attach(&r->tr, &r->net.vdev);
	r->net.vdev.mem = &r->mem.gm;
	CHECK_EQ(virtio_device_set_features(&r->net.vdev, features), 0);
	unsigned pairs = features & F(VIRTIO_NET_F_MQ) ? PAIRS : 1;
	for (unsigned i = 0; i < pairs; i++) {
		vd_queue_to_vq(&r->rxq[i], &r->net.vqs[2 * i], false);
		vd_queue_to_vq(&r->txq[i], &r->net.vqs[2 * i + 1], false);
	}
	if (features & F(VIRTIO_NET_F_CTRL_VQ))
		vd_queue_to_vq(&r->cq, &r->net.vqs[net_ctrl_queue(&r->net)], false);
	CHECK_EQ(virtio_device_activate(&r->net.vdev), 0);
	r->pool = vd_alloc(&r->mem, 4 << 20, 4096);
	CHECK(r->pool != VD_NO_GPA);
}

static void rig_down(struct mq_rig *r)
{
	virtio_device_reset(&r->net.vdev);
	net_device_destroy(&r->net);
	for (unsigned i = 0; i < PAIRS; i++) {
		r->be[i]->ops->destroy(r->be[i]);
		vd_queue_destroy(&r->rxq[i]);
		vd_queue_destroy(&r->txq[i]);
		if (r->threads)
			event_loop_destroy(&r->pair_loops[i]);
	}
	vd_queue_destroy(&r->cq);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

/* Run the device's loop (and, without threads, the pairs' work) until
 * @done says so or a second passed. */
static bool settle_until(struct mq_rig *r, bool (*done)(struct mq_rig *r))
{
	uint64_t deadline = clock_now_ns() + 1000000000ull;

	while (!done(r)) {
		if (clock_now_ns() > deadline)
			return false;
		event_loop_once(&r->loop, 1);
	}
	return true;
}

static void offer_rx(struct mq_rig *r, unsigned pair, uint64_t off)
{
	struct vd_buf b = { .gpa = r->pool + off, .len = 2048, .writable = true };

	vd_add_chain(&r->rxq[pair], &b, 1, false);
	vd_publish(&r->rxq[pair]);
	r->net.vdev.ops->queue_notify(&r->net.vdev, 2 * pair);
}

static void send_tx(struct mq_rig *r, unsigned pair, uint64_t off, uint32_t len)
{
	uint64_t hdr = r->pool + off;

	vd_fill(&r->mem, hdr, 0, NET_HDR_LEN);
	vd_fill(&r->mem, hdr + NET_HDR_LEN, (uint8_t)(0x40 + pair), len);
	struct vd_buf bufs[2] = { { hdr, NET_HDR_LEN, false }, { hdr + NET_HDR_LEN, len, false } };
	vd_add_chain(&r->txq[pair], bufs, 2, false);
	vd_publish(&r->txq[pair]);
	r->net.vdev.ops->queue_notify(&r->net.vdev, 2 * pair + 1);
}

static bool pair1_frame_back(struct mq_rig *r)
{
	return vd_used_pending(&r->rxq[1]) > 0 && vd_used_pending(&r->txq[1]) > 0;
}

static int ctrl_cmd(struct mq_rig *r, uint8_t cls, uint8_t cmd, const void *data, uint32_t len)
{
	uint64_t out = r->pool + 0x300000, ack = out + 0x2000;
	uint8_t hdr[2] = { cls, cmd }, a;
	uint32_t id, used;

	vd_write(&r->mem, out, hdr, 2);
	vd_write(&r->mem, out + 2, data, len);
	vd_fill(&r->mem, ack, 0xee, 1);
	struct vd_buf bufs[2] = { { out, 2 + len, false }, { ack, 1, true } };
	vd_add_chain(&r->cq, bufs, 2, false);
	vd_publish(&r->cq);
	r->net.vdev.ops->queue_notify(&r->net.vdev, net_ctrl_queue(&r->net));
	if (vd_get_used(&r->cq, &id, &used) != 1 || used != 1)
		return -1;
	vd_read(&r->mem, ack, &a, 1);
	return a;
}

static int set_pairs(struct mq_rig *r, uint16_t n)
{
	uint8_t le[2] = { (uint8_t)n, (uint8_t)(n >> 8) };

	return ctrl_cmd(r, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, le, 2);
}

/* What a driver sees: MQ offered, max_virtqueue_pairs, the control queue
 * after every pair, and a driver that takes no MQ using the first pair
 * with the control queue at 2. */
static void test_features_and_numbering(void)
{
	struct mq_rig r;

	rig_up(&r, false, FEATURES);
	CHECK(r.net.vdev.ops->features(&r.net.vdev) & F(VIRTIO_NET_F_MQ));
	struct virtio_net_config cfg;
	CHECK_EQ(virtio_device_config_read(&r.net.vdev, 0, &cfg, sizeof(cfg)), 0);
	CHECK_EQ(cfg.max_virtqueue_pairs, PAIRS);
	CHECK_EQ(r.net.vdev.num_queues, 2 * PAIRS + 1);
	CHECK_EQ(net_ctrl_queue(&r.net), 2 * PAIRS);
	rig_down(&r);

	rig_up(&r, false, FEATURES & ~F(VIRTIO_NET_F_MQ));
	CHECK_EQ(r.net.vdev.num_queues, 3);
	CHECK_EQ(net_ctrl_queue(&r.net), 2);
	CHECK_EQ(set_pairs(&r, 1), VIRTIO_NET_ERR);     /* MQ not negotiated */
	rig_down(&r);

	/* A vhost-user front-end keeps the control queue: MQ alone. */
	rig_up(&r, false, FEATURES & ~F(VIRTIO_NET_F_CTRL_VQ));
	CHECK_EQ(r.net.vdev.num_queues, 2 * PAIRS);
	CHECK(steer[0].enabled && steer[1].enabled);    /* its ring enables say which run */
	rig_down(&r);
}

/* VQ_PAIRS_SET: in range only; the host's queues follow it. */
static void test_vq_pairs_set_steers(void)
{
	struct mq_rig r;

	rig_up(&r, false, FEATURES);
	CHECK(steer[0].enabled);
	CHECK(!steer[1].enabled);       /* one pair in use until the driver says */
	CHECK_EQ(set_pairs(&r, PAIRS), VIRTIO_NET_OK);
	CHECK(steer[0].enabled && steer[1].enabled);
	CHECK_EQ(set_pairs(&r, 0), VIRTIO_NET_ERR);
	CHECK_EQ(set_pairs(&r, PAIRS + 1), VIRTIO_NET_ERR);
	CHECK_EQ(r.net.ctrl.vq_pairs, PAIRS);
	CHECK_EQ(set_pairs(&r, 1), VIRTIO_NET_OK);
	CHECK(steer[0].enabled && !steer[1].enabled);
	struct net_counters t = net_device_totals(&r.net);
	CHECK_EQ(t.tx_ctrl_ok, 2);
	CHECK_EQ(t.tx_ctrl_refused, 2);
	rig_down(&r);
}

/* vhost-user restarts the device when the front-end enables or disables a
 * ring (virtio_device_deactivate, then activate, without a new
 * negotiation): the pairs the driver set stay in use and steered; a new
 * negotiation starts from one pair again. */
static void test_restart_keeps_vq_pairs(void)
{
	struct mq_rig r;

	rig_up(&r, false, FEATURES);
	CHECK_EQ(set_pairs(&r, PAIRS), VIRTIO_NET_OK);
	virtio_device_deactivate(&r.net.vdev);
	CHECK(!r.net.vdev.active);
	CHECK_EQ(virtio_device_activate(&r.net.vdev), 0);
	CHECK_EQ(r.net.ctrl.vq_pairs, PAIRS);
	CHECK(steer[0].enabled && steer[1].enabled);
	virtio_device_reset(&r.net.vdev);
	CHECK_EQ(virtio_device_set_features(&r.net.vdev, FEATURES), 0);
	CHECK_EQ(r.net.ctrl.vq_pairs, 1);
	rig_down(&r);
}

struct dump {
	char text[8192];
	size_t len;
};

static void dump_line(void *ctx, const char *prefix, const char *name, uint64_t value)
{
	struct dump *d = ctx;
	int n = snprintf(d->text + d->len, sizeof(d->text) - d->len, "%s%s %llu\n", prefix, name,
			 (unsigned long long)value);

	if (n > 0 && (size_t)n < sizeof(d->text) - d->len)
		d->len += (size_t)n;
}

/* A frame on pair 1 comes back on pair 1; pair 0 sees nothing; the
 * totals and the pair's own counters say so. */
static void check_pair1_roundtrip(struct mq_rig *r)
{
	uint32_t id, len;

	offer_rx(r, 0, 0);
	offer_rx(r, 1, 0x4000);
	send_tx(r, 1, 0x10000, 300);
	CHECK(settle_until(r, pair1_frame_back));
	CHECK_EQ(vd_get_used(&r->rxq[1], &id, &len), 1);
	CHECK_EQ(len, NET_HDR_LEN + 300);
	CHECK_EQ(vd_get_used(&r->txq[1], &id, &len), 1);
	CHECK_EQ(*(uint8_t *)vd_ptr(&r->mem, r->pool + 0x4000 + NET_HDR_LEN, 1), 0x41);
	CHECK_EQ(vd_used_pending(&r->rxq[0]), 0);
	CHECK_EQ(r->net.pairs[1].counters.tx_packets, 1);
	CHECK_EQ(r->net.pairs[1].counters.rx_packets, 1);
	CHECK_EQ(r->net.pairs[0].counters.tx_packets + r->net.pairs[0].counters.rx_packets, 0);
	struct net_counters t = net_device_totals(&r->net);
	CHECK_EQ(t.tx_packets, 1);
	CHECK_EQ(t.rx_bytes, 300);

	struct dump d = { .len = 0 };
	net_device_visit_counters(&r->net, &(const struct counter_sink){ dump_line, &d });
	CHECK(strstr(d.text, "\ntx_packets 1\n") || !strncmp(d.text, "tx_packets 1\n", 13));
	CHECK(strstr(d.text, "\npair1_tx_packets 1\n") != NULL);
	CHECK(strstr(d.text, "\npair0_tx_packets 0\n") != NULL);
}

static void test_pairs_on_one_loop(void)
{
	struct mq_rig r;

	rig_up(&r, false, FEATURES);
	CHECK_EQ(set_pairs(&r, PAIRS), VIRTIO_NET_OK);
	check_pair1_roundtrip(&r);
	rig_down(&r);
}

static bool interrupted_rx1(struct mq_rig *r)
{
	return r->tr.used[2] > 0;
}

/* The same with a thread per pair: kicks from this thread reach the pair's
 * thread, the interrupt comes back through the device's loop (this
 * transport has no direct path), and reset, pause, resume and a rate
 * limit change stop and start the threads. */
static void test_pair_threads(void)
{
	struct mq_rig r;

	rig_up(&r, true, FEATURES);
	CHECK(r.net.pairs[0].thread_started && r.net.pairs[1].thread_started);
	CHECK_EQ(set_pairs(&r, PAIRS), VIRTIO_NET_OK);
	CHECK(r.net.pairs[1].thread_started);           /* released again */
	check_pair1_roundtrip(&r);
	CHECK(settle_until(&r, interrupted_rx1));

	virtio_device_pause(&r.net.vdev);
	CHECK(!r.net.pairs[0].thread_started && !r.net.pairs[1].thread_started);
	/* Sent while paused: nothing moves until resume. */
	offer_rx(&r, 1, 0x8000);
	send_tx(&r, 1, 0x20000, 100);
	event_loop_once(&r.loop, 20);
	CHECK_EQ(vd_used_pending(&r.txq[1]), 0);
	virtio_device_resume(&r.net.vdev);
	CHECK(r.net.pairs[1].thread_started);
	CHECK(settle_until(&r, pair1_frame_back));

	struct rate_limiter_config rl = { 0 };
	CHECK_EQ(net_device_set_rate_limit(&r.net, NET_TX_QUEUE, &rl), 0);
	CHECK(r.net.pairs[0].thread_started && r.net.pairs[1].thread_started);
	virtio_device_reset(&r.net.vdev);
	CHECK(!r.net.pairs[0].thread_started && !r.net.pairs[1].thread_started);
	rig_down(&r);
}

static unsigned rx1_wanted;

static bool rx1_used(struct mq_rig *r)
{
	return vd_used_pending(&r->rxq[1]) >= rx1_wanted;
}

/* A frame from the host on pair 1's fd backend (as from a tap queue). */
static void host_sends(struct mq_rig *r, unsigned pair)
{
	struct dgram_be *d = (struct dgram_be *)r->be[pair];
	uint8_t frame[60];

	memset(frame, 0x5a, sizeof(frame));
	CHECK_EQ(write(d->peer, frame, sizeof(frame)), (ssize_t)sizeof(frame));
}

/* An fd backend on a pair thread: the backend's fd is read again after a
 * pause and resume, with the guest's RX buffers given before the pause
 * (a guest that is waiting for frames kicks no more). */
static void test_pair_threads_fd_backend_resume(void)
{
	struct mq_rig r;

	rig_fd_backends = true;
	rig_up(&r, true, FEATURES);
	rig_fd_backends = false;
	CHECK_EQ(set_pairs(&r, PAIRS), VIRTIO_NET_OK);
	offer_rx(&r, 1, 0x8000);
	host_sends(&r, 1);
	rx1_wanted = 1;
	CHECK(settle_until(&r, rx1_used));

	offer_rx(&r, 1, 0x9000);
	host_sends(&r, 1);
	rx1_wanted = 2;
	CHECK(settle_until(&r, rx1_used));

	offer_rx(&r, 1, 0xa000);
	virtio_device_pause(&r.net.vdev);
	virtio_device_resume(&r.net.vdev);
	/* The frame comes after the pair's first drains found none. */
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	host_sends(&r, 1);
	rx1_wanted = 3;
	CHECK(settle_until(&r, rx1_used));
	rig_down(&r);
}

/* A restore activates the device paused: no pair thread may start before
 * resume, and resume starts each exactly once. */
static void test_activated_paused(void)
{
	struct mq_rig r;

	rig_up(&r, true, FEATURES);
	virtio_device_reset(&r.net.vdev);
	virtio_device_pause(&r.net.vdev);
	CHECK_EQ(virtio_device_set_features(&r.net.vdev, FEATURES), 0);
	for (unsigned i = 0; i < PAIRS; i++) {
		vd_queue_to_vq(&r.rxq[i], &r.net.vqs[2 * i], false);
		vd_queue_to_vq(&r.txq[i], &r.net.vqs[2 * i + 1], false);
	}
	vd_queue_to_vq(&r.cq, &r.net.vqs[net_ctrl_queue(&r.net)], false);
	CHECK_EQ(virtio_device_activate(&r.net.vdev), 0);
	CHECK(!r.net.pairs[0].thread_started && !r.net.pairs[1].thread_started);
	virtio_device_resume(&r.net.vdev);
	CHECK(r.net.pairs[0].thread_started && r.net.pairs[1].thread_started);
	pthread_t first = r.net.pairs[1].thread;
	net_device_pairs_release(&r.net, true);          /* a second start is a no-op */
	CHECK(pthread_equal(first, r.net.pairs[1].thread));
	rig_down(&r);
}

int main(void)
{
	RUN_TEST(test_features_and_numbering);
	RUN_TEST(test_vq_pairs_set_steers);
	RUN_TEST(test_restart_keeps_vq_pairs);
	RUN_TEST(test_pairs_on_one_loop);
	RUN_TEST(test_pair_threads);
	RUN_TEST(test_activated_paused);
	RUN_TEST(test_pair_threads_fd_backend_resume);
	return CHECK_DONE();
}
