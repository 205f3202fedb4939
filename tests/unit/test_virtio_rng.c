/*
 * virtio-rng against the driver simulator: requests filled with random
 * bytes up to their size and the request cap, buffers spread over several
 * descriptors filled whole, every malformed request completed with 0 and
 * counted, the rate limiter holding requests back and its timer letting
 * them go, a drain yielding after its budget, a broken ring raising
 * NEEDS_RESET once, and nothing moving while the device is paused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "check.h"
#include "count_transport.h"
#include "rng/virtio_rng.h"
#include "vdriver.h"

struct rig {
	struct event_loop loop;
	struct vd_mem mem;
	struct vd_queue q;
	struct virtio_rng rng;
	struct count_transport tr;
	uint64_t pool;
};

#define FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC))

static void rig_up(struct rig *r, const struct rate_limiter_config *limit)
{
	struct vd_queue_opts qo = { .size = 256, .indirect_max = 8 };

	memset(r, 0, sizeof(*r));
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, 0x100000, 8 << 20, 0), 0);
	CHECK_EQ(vd_queue_init(&r->q, &r->mem, &qo), 0);
	CHECK_EQ(virtio_rng_init(&r->rng, &r->loop, limit), 0);
	CHECK_EQ(r->rng.vdev.ops->device_id, VIRTIO_ID_RNG);
	CHECK_EQ(r->rng.vdev.ops->config_size, 0);
	count_transport_attach(&r->tr, &r->rng.vdev);
	r->rng.vdev.mem = &r->mem.gm;
	CHECK_EQ(virtio_device_set_features(&r->rng.vdev, FEATURES), 0);
	vd_queue_to_vq(&r->q, &r->rng.vq, true);
	CHECK_EQ(virtio_device_activate(&r->rng.vdev), 0);
	r->pool = vd_alloc(&r->mem, 4 << 20, 4096);
	CHECK(r->pool != VD_NO_GPA);
	CHECK_EQ(vd_fill(&r->mem, r->pool, 0, 4 << 20), 0);
}

static void rig_down(struct rig *r)
{
	virtio_device_reset(&r->rng.vdev);
	virtio_rng_destroy(&r->rng);
	vd_queue_destroy(&r->q);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

/* Run the device's deferred drains and due timers for up to @ms. */
static void settle(struct rig *r, int ms)
{
	for (int i = 0; i < 64 && event_loop_once(&r->loop, ms) > 0; i++)
		;
}

/* One request: @n buffers at pool offset @off, each @len writable bytes
 * (the first @readable of them driver-readable), published and kicked. */
static int request(struct rig *r, uint64_t off, uint32_t len, unsigned n, unsigned readable)
{
	struct vd_buf b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (struct vd_buf){ .gpa = r->pool + off + (uint64_t)i * len, .len = len,
					.writable = i >= readable };
	int head = vd_add_chain(&r->q, b, n, false);
	vd_publish(&r->q);
	r->rng.vdev.ops->queue_notify(&r->rng.vdev, 0);
	return head;
}

/* The used entry of the next completed request: its length; -1 when none. */
static long used_len(struct rig *r, int head)
{
	uint32_t id, len;

	if (vd_get_used(&r->q, &id, &len) <= 0)
		return -1;
	CHECK_EQ((int)id, head);
	return len;
}

/* Bytes of @len at @off that are zero: random bytes are rarely all zero. */
static size_t zeros(struct rig *r, uint64_t off, size_t len)
{
	uint8_t *p = vd_ptr(&r->mem, r->pool + off, len);
	size_t z = 0;

	for (size_t i = 0; i < len; i++)
		z += p[i] == 0;
	return z;
}

static void test_fills_requests(void)
{
	struct rig r;

	rig_up(&r, NULL);
	int h = request(&r, 0, 64, 1, 0);
	CHECK_EQ(used_len(&r, h), 64);
	CHECK(zeros(&r, 0, 64) < 16);
	CHECK(zeros(&r, 64, 64) == 64);               /* nothing past the buffer */
	/* Four descriptors of 1 KiB: all of them filled. */
	h = request(&r, 8192, 1024, 4, 0);
	CHECK_EQ(used_len(&r, h), 4096);
	CHECK(zeros(&r, 8192, 4096) < 100);
	/* Larger than the cap: the cap, and the used length says so. */
	h = request(&r, 65536, 32768, 4, 0);
	CHECK_EQ(used_len(&r, h), VIRTIO_RNG_MAX_REQUEST);
	CHECK(zeros(&r, 65536 + VIRTIO_RNG_MAX_REQUEST, 65536) == 65536);
	CHECK_EQ(r.rng.counters.tx_requests_filled, 3);
	CHECK_EQ(r.rng.counters.tx_random_bytes, 64 + 4096 + VIRTIO_RNG_MAX_REQUEST);
	CHECK_EQ(r.rng.counters.rx_chains_invalid, 0);
	CHECK(r.tr.used[0] >= 1);
	/* Two requests of the same size differ. */
	h = request(&r, 1 << 20, 256, 1, 0);
	CHECK_EQ(used_len(&r, h), 256);
	h = request(&r, (1 << 20) + 4096, 256, 1, 0);
	CHECK_EQ(used_len(&r, h), 256);
	CHECK(memcmp(vd_ptr(&r.mem, r.pool + (1 << 20), 256),
		     vd_ptr(&r.mem, r.pool + (1 << 20) + 4096, 256), 256) != 0);
	rig_down(&r);
}

static void test_malformed_completed(void)
{
	struct rig r;

	rig_up(&r, NULL);
	/* A driver-readable buffer, alone or in front: 0 bytes, nothing written. */
	int h = request(&r, 0, 128, 1, 1);
	CHECK_EQ(used_len(&r, h), 0);
	h = request(&r, 4096, 128, 2, 1);
	CHECK_EQ(used_len(&r, h), 0);
	CHECK(zeros(&r, 0, 8192) == 8192);
	/* A descriptor pointing outside guest memory: refused by the queue. */
	struct vd_buf bad = { .gpa = 0xffff0000000ull, .len = 64, .writable = true };
	h = vd_add_chain(&r.q, &bad, 1, false);
	vd_publish(&r.q);
	r.rng.vdev.ops->queue_notify(&r.rng.vdev, 0);
	CHECK_EQ(used_len(&r, h), 0);
	CHECK_EQ(r.rng.counters.rx_chains_invalid, 3);
	CHECK_EQ(r.rng.counters.tx_requests_filled, 0);
	/* The queue still serves a good request after them. */
	h = request(&r, 16384, 32, 1, 0);
	CHECK_EQ(used_len(&r, h), 32);
	rig_down(&r);
}

/* 100 bytes a second, starting full: the first request passes, the next
 * waits for the timer, then passes. */
static void test_rate_limited(void)
{
	struct rate_limiter_config lim = { .bandwidth = { .size = 100, .refill_time = 100 } };
	struct rig r;

	rig_up(&r, &lim);
	int h1 = request(&r, 0, 100, 1, 0);
	CHECK_EQ(used_len(&r, h1), 100);
	int h2 = request(&r, 4096, 100, 1, 0);
	CHECK_EQ(used_len(&r, h2), -1);                /* held back */
	CHECK_EQ(r.rng.counters.rx_queue_rate_limited, 1);
	r.rng.vdev.ops->queue_notify(&r.rng.vdev, 0);   /* kicks change nothing */
	CHECK_EQ(used_len(&r, h2), -1);
	CHECK_EQ(r.rng.counters.rx_queue_rate_limited, 1);
	settle(&r, 200);                                /* the limiter's timer */
	CHECK_EQ(used_len(&r, h2), 100);
	CHECK_EQ(r.rng.counters.tx_requests_filled, 2);
	rig_down(&r);
}

/* More requests than a drain's budget: the rest are answered by the
 * deferred drain, none lost. */
static void test_budget_yields(void)
{
	struct rig r;
	int heads[200];

	rig_up(&r, NULL);
	for (unsigned i = 0; i < 200; i++) {
		struct vd_buf b = { .gpa = r.pool + i * 64, .len = 64, .writable = true };
		heads[i] = vd_add_chain(&r.q, &b, 1, false);
	}
	vd_publish(&r.q);
	r.rng.vdev.ops->queue_notify(&r.rng.vdev, 0);
	CHECK(r.rng.counters.tx_requests_filled < 200);
	settle(&r, 0);
	for (unsigned i = 0; i < 200; i++)
		CHECK_EQ(used_len(&r, heads[i]), 64);
	CHECK_EQ(r.rng.counters.tx_requests_filled, 200);
	rig_down(&r);
}

static void test_paused_waits(void)
{
	struct rig r;

	rig_up(&r, NULL);
	virtio_device_pause(&r.rng.vdev);
	int h = request(&r, 0, 64, 1, 0);
	CHECK_EQ(used_len(&r, h), -1);
	CHECK(zeros(&r, 0, 64) == 64);
	virtio_device_resume(&r.rng.vdev);
	CHECK_EQ(used_len(&r, h), 64);
	rig_down(&r);
}

/* An avail index that runs past the ring: NEEDS_RESET, counted once. */
static void test_poisoned_once(void)
{
	struct rig r;

	rig_up(&r, NULL);
	r.q.avail->idx = (uint16_t)(r.q.avail->idx + 1000);
	r.rng.vdev.ops->queue_notify(&r.rng.vdev, 0);
	r.rng.vdev.ops->queue_notify(&r.rng.vdev, 0);
	CHECK(r.rng.vdev.needs_reset);
	CHECK_EQ(r.rng.counters.rx_queue_poisoned, 1);
	CHECK_EQ(r.tr.config, 1);
	rig_down(&r);
}

static void test_limiter_refused(void)
{
	struct rate_limiter_config bad = { .bandwidth = { .size = 1, .refill_time = UINT64_MAX } };
	struct virtio_rng rng;
	struct event_loop loop;

	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK(!rate_limiter_config_valid(&bad));
	CHECK_EQ(virtio_rng_init(&rng, &loop, &bad), -EINVAL);
	event_loop_destroy(&loop);
}

int main(void)
{
	RUN_TEST(test_fills_requests);
	RUN_TEST(test_malformed_completed);
	RUN_TEST(test_rate_limited);
	RUN_TEST(test_budget_yields);
	RUN_TEST(test_paused_waits);
	RUN_TEST(test_poisoned_once);
	RUN_TEST(test_limiter_refused);
	return CHECK_DONE();
}
