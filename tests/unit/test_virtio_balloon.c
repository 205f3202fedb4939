/*
 * virtio-balloon against the driver simulator: the features offered for
 * each configuration and the statistics queue following the one taken,
 * config space (target the device's, actual the driver's), inflated pages
 * released so they read back zero (a memfd region, shared, and a private
 * anonymous one, as `kvmini run` maps RAM), PFNs outside guest RAM counted
 * and never touched, malformed chains completed unused, deflate, the
 * statistics buffer kept and handed back by the timer and by an interval
 * change, and the rules on the target and on switching statistics.
 * Snapshot state (virtio_balloon_state.c): saved with a target, actual,
 * statistics and the statistics buffer kept, loaded into a fresh device
 * as a restore builds it: the same values, the buffer handed back at the
 * first poll after resume and the exchange going on, a new target taken;
 * each inconsistent state refused with why, the fresh device untouched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "balloon/virtio_balloon.h"
#include "check.h"
#include "core/state_io.h"
#include "count_transport.h"
#include "vdriver.h"
#include "virtio/device_state.h"

#define MEM_BASE 0x100000ull
#define MEM_SIZE (8ull << 20)
#define ANON_BASE 0x4000000ull        /* a private anonymous region, apart */
#define ANON_SIZE (1ull << 20)
#define GUEST_RAM (64ull << 20)       /* what the device is told, for targets */
#define PFN(gpa) ((uint32_t)((gpa) >> 12))

struct rig {
	struct event_loop loop;
	struct vd_mem mem;
	struct vd_queue q[BALLOON_MAX_Q];
	struct virtio_balloon b;
	struct count_transport tr;
	uint8_t *anon;
	uint64_t pool;                    /* a 1 MiB page-aligned area of the memfd */
};

static uint64_t base_features(bool stats)
{
	return (1ull << VIRTIO_F_VERSION_1) | (stats ? 1ull << VIRTIO_BALLOON_F_STATS_VQ : 0);
}

static void add_anon_region(struct rig *r)
{
	r->anon = mmap(NULL, ANON_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(r->anon != MAP_FAILED);
	/* Owned: vd_mem_destroy's guest_mem_clear unmaps it. */
	CHECK_EQ(guest_mem_add(&r->mem.gm, ANON_BASE, ANON_SIZE, 0, r->anon, r->anon,
			       ANON_SIZE), 0);
}

/* A device with @opts, activated with @features (the statistics queue
 * set up when they take it). */
static void rig_up(struct rig *r, const struct virtio_balloon_opts *opts, uint64_t features)
{
	struct vd_queue_opts qo = { .size = 64 };

	memset(r, 0, sizeof(*r));
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, MEM_BASE, MEM_SIZE, 0), 0);
	add_anon_region(r);
	CHECK_EQ(virtio_balloon_init(&r->b, &r->loop, opts, GUEST_RAM), 0);
	count_transport_attach(&r->tr, &r->b.vdev);
	r->b.vdev.mem = &r->mem.gm;
	CHECK_EQ(virtio_device_set_features(&r->b.vdev, features), 0);
	for (unsigned q = 0; q < r->b.vdev.num_queues; q++) {
		CHECK_EQ(vd_queue_init(&r->q[q], &r->mem, &qo), 0);
		vd_queue_to_vq(&r->q[q], &r->b.vqs[q], false);
	}
	CHECK_EQ(virtio_device_activate(&r->b.vdev), 0);
	r->pool = vd_alloc(&r->mem, 1 << 20, 4096);
	CHECK(r->pool != VD_NO_GPA);
}

static void rig_down(struct rig *r)
{
	unsigned n = r->b.vdev.num_queues;

	virtio_device_reset(&r->b.vdev);
	virtio_balloon_destroy(&r->b);
	for (unsigned q = 0; q < n; q++)
		vd_queue_destroy(&r->q[q]);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

/* One readable buffer of @len bytes from @data on queue @q, kicked. */
static int offer(struct rig *r, unsigned q, const void *data, uint32_t len, bool writable)
{
	uint64_t gpa = vd_alloc(&r->mem, len ? len : 1, 8);

	CHECK(gpa != VD_NO_GPA);
	CHECK_EQ(vd_write(&r->mem, gpa, data, len), 0);
	struct vd_buf buf = { .gpa = gpa, .len = len, .writable = writable };
	int head = vd_add_chain(&r->q[q], &buf, 1, false);
	CHECK(head >= 0);
	vd_publish(&r->q[q]);
	r->b.vdev.ops->queue_notify(&r->b.vdev, q);
	return head;
}

static int offer_pfns(struct rig *r, unsigned q, const uint32_t *pfns, unsigned n)
{
	return offer(r, q, pfns, n * 4, false);   /* little-endian host: the wire format */
}

/* The next used entry of queue @q: its head, or -1 when none. */
static int used_head(struct rig *r, unsigned q)
{
	uint32_t id, len;

	if (vd_get_used(&r->q[q], &id, &len) <= 0)
		return -1;
	CHECK_EQ(len, 0u);
	return (int)id;
}

static bool all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

static uint32_t config_u32(struct rig *r, uint32_t off)
{
	uint32_t v = 0;

	CHECK_EQ(virtio_device_config_read(&r->b.vdev, off, &v, 4), 0);
	return v;
}

static void test_features_and_queues(void)
{
	struct virtio_balloon_opts plain = { .amount_mib = 0 };
	struct virtio_balloon_opts full = { .deflate_on_oom = true, .stats_polling_interval_s = 1 };
	struct event_loop loop;
	struct virtio_balloon b;

	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(virtio_balloon_init(&b, &loop, &plain, GUEST_RAM), 0);
	CHECK_EQ(b.vdev.ops->device_id, VIRTIO_ID_BALLOON);
	CHECK_EQ(b.vdev.ops->config_size, 8u);
	uint64_t f = b.vdev.ops->features(&b.vdev);
	CHECK(f & (1ull << VIRTIO_F_VERSION_1));
	CHECK(!(f & (1ull << VIRTIO_BALLOON_F_STATS_VQ)));
	CHECK(!(f & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)));
	CHECK(!(f & (1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST)));
	CHECK_EQ(b.vdev.num_queues, 2u);
	/* Statistics not offered: the driver cannot take them. */
	CHECK_EQ(virtio_device_set_features(&b.vdev, base_features(true)), -EINVAL);
	virtio_balloon_destroy(&b);

	CHECK_EQ(virtio_balloon_init(&b, &loop, &full, GUEST_RAM), 0);
	f = b.vdev.ops->features(&b.vdev);
	CHECK(f & (1ull << VIRTIO_BALLOON_F_STATS_VQ));
	CHECK(f & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	CHECK_EQ(b.vdev.num_queues, 3u);
	/* A driver that leaves the statistics out has two queues... */
	CHECK_EQ(virtio_device_set_features(&b.vdev, base_features(false)), 0);
	CHECK_EQ(b.vdev.num_queues, 2u);
	/* ... and a reset offers three again. */
	virtio_device_reset(&b.vdev);
	CHECK_EQ(b.vdev.num_queues, 3u);
	CHECK_EQ(virtio_device_set_features(&b.vdev, base_features(true) |
					    (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)), 0);
	CHECK_EQ(b.vdev.num_queues, 3u);
	CHECK_EQ(virtio_device_set_features(&b.vdev, 1ull << VIRTIO_BALLOON_F_STATS_VQ), -EINVAL);
	virtio_balloon_destroy(&b);

	/* A target above guest RAM is refused. */
	struct virtio_balloon_opts big = { .amount_mib = (GUEST_RAM >> 20) + 1 };
	CHECK_EQ(virtio_balloon_init(&b, &loop, &big, GUEST_RAM), -EINVAL);
	event_loop_destroy(&loop);
}

static void test_config_space(void)
{
	struct virtio_balloon_opts o = { .amount_mib = 4 };
	struct rig r;
	uint8_t byte = 0x12;
	uint32_t v = 77;

	rig_up(&r, &o, base_features(false));
	CHECK_EQ(config_u32(&r, 0), 4u * 256);          /* num_pages: the target */
	CHECK_EQ(config_u32(&r, 4), 0u);                /* actual */
	CHECK_EQ(virtio_device_config_write(&r.b.vdev, 4, &v, 4), 0);
	CHECK_EQ(config_u32(&r, 4), 77u);
	CHECK_EQ(virtio_device_config_write(&r.b.vdev, 5, &byte, 1), 0);
	CHECK_EQ(config_u32(&r, 4), 77u | 0x12u << 8);
	CHECK_EQ(r.b.actual, 77u | 0x12u << 8);
	/* num_pages is the device's: a driver write is dropped. */
	CHECK_EQ(virtio_device_config_write(&r.b.vdev, 0, &v, 4), 0);
	CHECK_EQ(config_u32(&r, 0), 1024u);
	CHECK(virtio_device_config_read(&r.b.vdev, 8, &v, 4) < 0);
	/* A new target: config space and one config interrupt. */
	uint64_t before = r.tr.config;
	CHECK_EQ(virtio_balloon_set_target(&r.b, 16), 0);
	CHECK_EQ(config_u32(&r, 0), 16u * 256);
	CHECK_EQ(r.tr.config, before + 1);
	CHECK_EQ(virtio_balloon_set_target(&r.b, (GUEST_RAM >> 20) + 1), -EINVAL);
	CHECK_EQ(config_u32(&r, 0), 16u * 256);
	/* A reset forgets actual, keeps the target. */
	virtio_device_reset(&r.b.vdev);
	CHECK_EQ(r.b.actual, 0u);
	CHECK_EQ(config_u32(&r, 0), 16u * 256);
	/* Before the driver activates it: Firecracker's "not activated". */
	CHECK_EQ(virtio_balloon_set_target(&r.b, 8), -EAGAIN);
	rig_down(&r);
}

/* Written pages, inflated, read back zero, in both kinds of memory; their
 * neighbours keep their bytes. */
static void test_inflate_releases(void)
{
	struct virtio_balloon_opts o = { 0 };
	struct rig r;

	rig_up(&r, &o, base_features(false));
	uint8_t *shared = vd_ptr(&r.mem, r.pool, 4 * 4096);
	memset(shared, 0xaa, 4 * 4096);
	memset(r.anon, 0xbb, 4 * 4096);
	uint32_t pfns[] = { PFN(r.pool + 4096), PFN(r.pool + 2 * 4096), PFN(ANON_BASE),
			    PFN(ANON_BASE + 2 * 4096) };
	int h = offer_pfns(&r, BALLOON_INFLATE_Q, pfns, 4);
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), h);
	CHECK(all_bytes(shared, 4096, 0xaa));
	CHECK(all_bytes(shared + 4096, 2 * 4096, 0));
	CHECK(all_bytes(shared + 3 * 4096, 4096, 0xaa));
	CHECK(all_bytes(r.anon, 4096, 0));
	CHECK(all_bytes(r.anon + 4096, 4096, 0xbb));
	CHECK(all_bytes(r.anon + 2 * 4096, 4096, 0));
	CHECK(all_bytes(r.anon + 3 * 4096, 4096, 0xbb));
	CHECK_EQ(r.b.counters.rx_inflate_chains, 1u);
	CHECK_EQ(r.b.counters.rx_inflate_pages, 4u);
	CHECK_EQ(r.b.counters.rx_inflate_pfns_invalid, 0u);
	CHECK_EQ(r.b.counters.tx_discard_failed, 0u);
	CHECK(r.tr.used[BALLOON_INFLATE_Q] >= 1);
	/* The guest writes a released page again: it gets it back. */
	r.anon[0] = 1;
	CHECK_EQ(r.anon[0], 1);
	rig_down(&r);
}

/* PFNs outside guest RAM: counted and skipped, the good ones around them
 * released. The pages right outside the memfd region are the vdriver's
 * PROT_NONE guards: a touch would fault. */
static void test_inflate_pfns_outside_ram(void)
{
	struct virtio_balloon_opts o = { 0 };
	struct rig r;

	rig_up(&r, &o, base_features(false));
	uint64_t last = MEM_BASE + MEM_SIZE - 4096;
	uint8_t *lastp = vd_ptr(&r.mem, last, 4096);
	memset(lastp, 0xcc, 4096);
	uint32_t pfns[] = { PFN(MEM_BASE - 4096), PFN(last), PFN(last + 4096), 0,
			    0xffffffffu, PFN(ANON_BASE + ANON_SIZE), PFN(ANON_BASE - 4096) };
	int h = offer_pfns(&r, BALLOON_INFLATE_Q, pfns, 7);
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), h);
	CHECK(all_bytes(lastp, 4096, 0));
	CHECK_EQ(r.b.counters.rx_inflate_pages, 1u);
	CHECK_EQ(r.b.counters.rx_inflate_pfns_invalid, 6u);
	/* A run of consecutive PFNs across the anonymous region's end. */
	memset(r.anon + ANON_SIZE - 4096, 0xdd, 4096);
	uint32_t run[] = { PFN(ANON_BASE + ANON_SIZE - 4096), PFN(ANON_BASE + ANON_SIZE),
			   PFN(ANON_BASE + ANON_SIZE + 4096) };
	h = offer_pfns(&r, BALLOON_INFLATE_Q, run, 3);
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), h);
	CHECK(all_bytes(r.anon + ANON_SIZE - 4096, 4096, 0));
	CHECK_EQ(r.b.counters.rx_inflate_pages, 2u);
	CHECK_EQ(r.b.counters.rx_inflate_pfns_invalid, 8u);
	rig_down(&r);
}

/* Chains that are not arrays of PFNs: completed unused, nothing released. */
static void test_malformed_chains(void)
{
	struct virtio_balloon_opts o = { 0 };
	uint32_t pfns[VIRTIO_BALLOON_MAX_PFNS + 1];
	struct rig r;

	rig_up(&r, &o, base_features(false));
	memset(r.anon, 0xee, 4096);
	for (unsigned i = 0; i <= VIRTIO_BALLOON_MAX_PFNS; i++)
		pfns[i] = PFN(ANON_BASE);
	int h = offer(&r, BALLOON_INFLATE_Q, pfns, 4, true);         /* driver-writable */
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), h);
	h = offer(&r, BALLOON_INFLATE_Q, pfns, 6, false);            /* not whole PFNs */
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), h);
	h = offer_pfns(&r, BALLOON_INFLATE_Q, pfns, VIRTIO_BALLOON_MAX_PFNS + 1);
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), h);
	h = offer(&r, BALLOON_DEFLATE_Q, pfns, 3, false);
	CHECK_EQ(used_head(&r, BALLOON_DEFLATE_Q), h);
	CHECK(all_bytes(r.anon, 4096, 0xee));
	CHECK_EQ(r.b.counters.rx_chains_invalid, 4u);
	CHECK_EQ(r.b.counters.rx_inflate_chains, 0u);
	CHECK_EQ(r.b.counters.rx_inflate_pages, 0u);
	/* The most PFNs a chain may carry pass (the same page 256 times: one
	 * page, released again and again). */
	h = offer_pfns(&r, BALLOON_INFLATE_Q, pfns, VIRTIO_BALLOON_MAX_PFNS);
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), h);
	CHECK(all_bytes(r.anon, 4096, 0));
	CHECK_EQ(r.b.counters.rx_inflate_chains, 1u);
	rig_down(&r);
}

static void test_deflate(void)
{
	struct virtio_balloon_opts o = { 0 };
	uint32_t pfns[] = { PFN(ANON_BASE), PFN(ANON_BASE + 4096), PFN(0xdeadbeef000ull) };
	struct rig r;

	rig_up(&r, &o, base_features(false));
	memset(r.anon, 0x11, 2 * 4096);
	int h = offer_pfns(&r, BALLOON_DEFLATE_Q, pfns, 3);
	CHECK_EQ(used_head(&r, BALLOON_DEFLATE_Q), h);
	CHECK_EQ(r.b.counters.rx_deflate_chains, 1u);
	CHECK_EQ(r.b.counters.rx_deflate_pages, 3u);
	CHECK(all_bytes(r.anon, 2 * 4096, 0x11));          /* deflate touches nothing */
	CHECK(r.tr.used[BALLOON_DEFLATE_Q] >= 1);
	rig_down(&r);
}

/* A statistics buffer as Linux's driver lays it out. */
static uint32_t put_stat(uint8_t *buf, unsigned i, uint16_t tag, uint64_t val)
{
	uint8_t *e = buf + i * 10;

	e[0] = (uint8_t)tag;
	e[1] = (uint8_t)(tag >> 8);
	for (unsigned k = 0; k < 8; k++)
		e[2 + k] = (uint8_t)(val >> (8 * k));
	return (i + 1) * 10;
}

static void test_stats_round_trip(void)
{
	struct virtio_balloon_opts o = { .stats_polling_interval_s = 1 };
	uint8_t buf[64];
	struct rig r;

	rig_up(&r, &o, base_features(true));
	CHECK_EQ(r.b.vdev.num_queues, 3u);
	put_stat(buf, 0, VIRTIO_BALLOON_S_SWAP_IN, 7);
	put_stat(buf, 1, VIRTIO_BALLOON_S_MEMTOT, 1ull << 33);
	put_stat(buf, 2, 99, 5);                               /* a tag nobody knows */
	uint32_t len = put_stat(buf, 3, VIRTIO_BALLOON_S_AVAIL, 123456);
	int h = offer(&r, BALLOON_STATS_Q, buf, len, false);
	CHECK_EQ(used_head(&r, BALLOON_STATS_Q), -1);          /* the device keeps it */
	CHECK(r.b.stats_held);
	CHECK_EQ(r.b.counters.rx_stats_updates, 1u);
	CHECK_EQ(r.b.counters.rx_stats_invalid, 1u);
	CHECK_EQ(r.b.stats.val[VIRTIO_BALLOON_S_SWAP_IN], 7u);
	CHECK_EQ(r.b.stats.val[VIRTIO_BALLOON_S_MEMTOT], 1ull << 33);
	CHECK_EQ(r.b.stats.val[VIRTIO_BALLOON_S_AVAIL], 123456u);
	CHECK_EQ(r.b.stats.seen, (1u << VIRTIO_BALLOON_S_SWAP_IN) |
		 (1u << VIRTIO_BALLOON_S_MEMTOT) | (1u << VIRTIO_BALLOON_S_AVAIL));
	CHECK(!strcmp(virtio_balloon_stat_name(VIRTIO_BALLOON_S_AVAIL), "available_memory"));
	CHECK(virtio_balloon_stat_name(16) == NULL);
	/* The interval's timer hands it back for new values. */
	CHECK(event_timer_armed(&r.b.stats_timer));
	for (int i = 0; i < 20 && used_head(&r, BALLOON_STATS_Q) < 0; i++)
		event_loop_once(&r.loop, 100);
	CHECK(!r.b.stats_held);
	CHECK(event_timer_armed(&r.b.stats_timer));
	/* The driver gives it again; an interval change hands it back at once. */
	put_stat(buf, 0, VIRTIO_BALLOON_S_SWAP_IN, 8);
	h = offer(&r, BALLOON_STATS_Q, buf, 10, false);
	CHECK_EQ(r.b.stats.val[VIRTIO_BALLOON_S_SWAP_IN], 8u);
	CHECK_EQ(virtio_balloon_set_stats_interval(&r.b, 5), 0);
	CHECK_EQ(used_head(&r, BALLOON_STATS_Q), h);
	CHECK_EQ(r.b.stats_interval_s, 5);
	/* On or off after the start: refused. */
	CHECK_EQ(virtio_balloon_set_stats_interval(&r.b, 0), -EPERM);
	CHECK_EQ(virtio_balloon_set_stats_interval(&r.b, 5), 0);
	/* A second buffer while one is kept: the first goes back. */
	int h1 = offer(&r, BALLOON_STATS_Q, buf, 10, false);
	int h2 = offer(&r, BALLOON_STATS_Q, buf, 10, false);
	CHECK_EQ(used_head(&r, BALLOON_STATS_Q), h1);
	CHECK(r.b.stats_held && r.b.stats_head == h2);
	/* Too long to read: kept all the same, counted. */
	uint8_t big[VIRTIO_BALLOON_MAX_STATS * 10 + 10] = { 0 };
	offer(&r, BALLOON_STATS_Q, big, sizeof(big), false);
	CHECK_EQ(used_head(&r, BALLOON_STATS_Q), h2);
	CHECK(r.b.stats_held);
	CHECK_EQ(r.b.counters.rx_stats_invalid, 4u);    /* unknown tag, 2 extras, too long */
	/* A reset forgets the buffer and the values. */
	virtio_device_reset(&r.b.vdev);
	CHECK(!r.b.stats_held && !r.b.stats.seen);
	CHECK(!event_timer_armed(&r.b.stats_timer));
	rig_down(&r);
}

static void test_stats_rules_without_stats(void)
{
	struct virtio_balloon_opts o = { 0 };
	struct rig r;

	rig_up(&r, &o, base_features(false));
	CHECK(!virtio_balloon_stats_enabled(&r.b));
	CHECK_EQ(virtio_balloon_set_stats_interval(&r.b, 3), -EPERM);
	CHECK_EQ(virtio_balloon_set_stats_interval(&r.b, 0), 0);
	CHECK(!event_timer_armed(&r.b.stats_timer));
	rig_down(&r);
}

static void test_paused_waits(void)
{
	struct virtio_balloon_opts o = { 0 };
	uint32_t pfn = PFN(ANON_BASE);
	struct rig r;

	rig_up(&r, &o, base_features(false));
	memset(r.anon, 0x22, 4096);
	virtio_device_pause(&r.b.vdev);
	int h = offer_pfns(&r, BALLOON_INFLATE_Q, &pfn, 1);
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), -1);
	CHECK(all_bytes(r.anon, 4096, 0x22));
	virtio_device_resume(&r.b.vdev);
	CHECK_EQ(used_head(&r, BALLOON_INFLATE_Q), h);
	CHECK(all_bytes(r.anon, 4096, 0));
	rig_down(&r);
}

/* --- snapshot state ------------------------------------------------------------ */

/* @r's device paused and saved into @w. */
static void save(struct rig *r, struct state_writer *w)
{
	struct errbuf eb = { 0 };

	virtio_device_pause(&r->b.vdev);
	state_writer_init(w);
	CHECK_EQ(virtio_device_state_save(&r->b.vdev, w, &eb), 0);
	CHECK(!w->failed);
}

/* A fresh device with @opts on @r's loop and memory, as a restore builds
 * it, loaded from @len bytes of @state; why in @why. */
static bool twin_load(struct rig *r, struct virtio_balloon *b2,
		      const struct virtio_balloon_opts *opts, const uint8_t *state, size_t len,
		      struct count_transport *tr, char *why)
{
	struct errbuf eb = { 0 };
	struct state_reader rd;

	CHECK_EQ(virtio_balloon_init(b2, &r->loop, opts, GUEST_RAM), 0);
	count_transport_attach(tr, &b2->vdev);
	b2->vdev.mem = &r->mem.gm;
	state_reader_init(&rd, state, len, &eb);
	bool ok = virtio_device_state_load(&b2->vdev, &rd);
	snprintf(why, 256, "%s", eb.msg);
	return ok;
}

static void twin_down(struct virtio_balloon *b2)
{
	virtio_device_reset(&b2->vdev);
	virtio_balloon_destroy(b2);
}

/* Nothing of a refused state reached the fresh device. */
static bool untouched(const struct virtio_balloon *b2, const struct virtio_balloon_opts *opts)
{
	return !b2->vdev.active && !b2->vdev.features && !b2->stats_held && !b2->actual &&
	       !b2->stats.seen && b2->num_pages == opts->amount_mib * VIRTIO_BALLOON_PAGES_PER_MIB;
}

static void test_state_round_trip(void)
{
	struct virtio_balloon_opts o = { .amount_mib = 2, .deflate_on_oom = true,
					 .stats_polling_interval_s = 1 };
	struct virtio_balloon b2;
	struct count_transport tr2;
	struct state_writer w;
	uint8_t buf[32];
	uint32_t actual = 3 * 256;
	char why[256];
	struct rig r;

	rig_up(&r, &o, base_features(true) | (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	CHECK_EQ(virtio_balloon_set_target(&r.b, 16), 0);
	CHECK_EQ(virtio_device_config_write(&r.b.vdev, 4, &actual, 4), 0);
	put_stat(buf, 0, VIRTIO_BALLOON_S_MEMFREE, 5000);
	uint32_t len = put_stat(buf, 1, VIRTIO_BALLOON_S_MEMTOT, 1ull << 30);
	int h = offer(&r, BALLOON_STATS_Q, buf, len, false);
	CHECK(r.b.stats_held && r.b.stats_head == h);
	CHECK_EQ(virtio_balloon_set_stats_interval(&r.b, 2), 0);     /* hands h back */
	CHECK_EQ(used_head(&r, BALLOON_STATS_Q), h);
	h = offer(&r, BALLOON_STATS_Q, buf, len, false);
	save(&r, &w);

	CHECK(twin_load(&r, &b2, &o, w.buf, w.len, &tr2, why));
	CHECK(b2.vdev.active && b2.vdev.paused && b2.vdev.features == r.b.vdev.features);
	CHECK_EQ(b2.num_pages, 16u * 256);
	CHECK_EQ(b2.actual, 3u * 256);
	CHECK_EQ(b2.stats_interval_s, 2);                 /* as PATCH left it */
	CHECK(b2.stats_held && b2.stats_head == h);
	CHECK(!memcmp(&b2.stats, &r.b.stats, sizeof(b2.stats)));
	CHECK(b2.vqs[BALLOON_STATS_Q].last_avail_idx == r.b.vqs[BALLOON_STATS_Q].last_avail_idx);
	/* Paused: the buffer stays kept whatever the timer does. */
	event_loop_once(&r.loop, 0);
	CHECK_EQ(used_head(&r, BALLOON_STATS_Q), -1);
	/* Resumed: the first poll hands it back, the driver refills it, the
	 * new values arrive. */
	virtio_device_resume(&b2.vdev);
	CHECK(event_timer_armed(&b2.stats_timer));
	int back = -1;
	for (int i = 0; i < 40 && back < 0; i++) {
		event_loop_once(&r.loop, 100);
		back = used_head(&r, BALLOON_STATS_Q);
	}
	CHECK_EQ(back, h);
	put_stat(buf, 0, VIRTIO_BALLOON_S_MEMFREE, 4000);
	h = offer(&r, BALLOON_STATS_Q, buf, 10, false);
	b2.vdev.ops->queue_notify(&b2.vdev, BALLOON_STATS_Q);
	CHECK(b2.stats_held && b2.stats_head == h);
	CHECK_EQ(b2.stats.val[VIRTIO_BALLOON_S_MEMFREE], 4000u);
	/* A new target reaches the restored driver. */
	uint64_t before = tr2.config;
	CHECK_EQ(virtio_balloon_set_target(&b2, 8), 0);
	CHECK_EQ(tr2.config, before + 1);
	twin_down(&b2);
	state_writer_free(&w);
	rig_down(&r);
}

/* A VBAL body byte of @w at @off (after the section's 8-byte header). */
static uint8_t *vbal_at(struct state_writer *w, size_t off)
{
	uint8_t *p = memmem(w->buf, w->len, "VBAL", 4);

	CHECK(p != NULL);
	return p + 8 + off;
}

/* Save @r's device as changed by @change, load it into a fresh one with
 * @opts: refused, with @needle in why, the fresh device untouched. */
#define REFUSED(rig, opts, change, needle) do { \
		struct virtio_balloon b2_; \
		struct count_transport tr2_; \
		struct state_writer w_; \
		char why_[256]; \
		save(rig, &w_); \
		change; \
		CHECK(!twin_load(rig, &b2_, opts, w_.buf, w_.len, &tr2_, why_)); \
		CHECK(strstr(why_, "VBAL") && strstr(why_, needle)); \
		if (!strstr(why_, needle)) \
			fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", needle, why_); \
		CHECK(untouched(&b2_, opts)); \
		twin_down(&b2_); \
		state_writer_free(&w_); \
		virtio_device_resume(&(rig)->b.vdev); \
	} while (0)

/* VBAL's layout: u32 num_pages, u32 actual, u16 interval, u32 flags, u16
 * head, u32 seen, 16 u64 values. */
#define VBAL_NUM_PAGES 0
#define VBAL_FLAGS 10
#define VBAL_HEAD 14
#define VBAL_SEEN 16

static void put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_state_refused(void)
{
	struct virtio_balloon_opts o = { .amount_mib = 1, .stats_polling_interval_s = 1 };
	uint8_t buf[16];
	struct rig r;

	rig_up(&r, &o, base_features(true));
	uint32_t len = put_stat(buf, 0, VIRTIO_BALLOON_S_SWAP_IN, 1);
	offer(&r, BALLOON_STATS_Q, buf, len, false);
	CHECK(r.b.stats_held);
	REFUSED(&r, &o, put32(vbal_at(&w_, VBAL_NUM_PAGES), (GUEST_RAM >> 12) + 256),
		"a target of 16640 pages, beyond guest memory's 16384");
	REFUSED(&r, &o, put32(vbal_at(&w_, VBAL_NUM_PAGES), 1000), "1000 pages, not whole MiB");
	REFUSED(&r, &o, put32(vbal_at(&w_, VBAL_FLAGS), 5), "unknown flags 0x4");
	REFUSED(&r, &o, put32(vbal_at(&w_, VBAL_SEEN), 1u << 16),
		"statistics of unknown tags (0x10000)");
	REFUSED(&r, &o, vbal_at(&w_, VBAL_HEAD)[0] = 64,
		"the statistics buffer kept is descriptor 64 of a queue of 64");
	/* Statistics on in the state, off in the device built: the features
	 * are refused first; off in the state, on here, by VBAL. */
	r.b.stats_interval_s = 0;
	REFUSED(&r, &o, (void)0, "statistics every 0 s, this balloon polls them");
	r.b.stats_interval_s = 1;
	/* The buffer given back (an interval change does it), yet kept in
	 * the state. */
	CHECK_EQ(virtio_balloon_set_stats_interval(&r.b, 2), 0);
	CHECK(!r.b.stats_held);
	REFUSED(&r, &o, put32(vbal_at(&w_, VBAL_FLAGS), 1), "its queue has none taken");
	rig_down(&r);

	/* A driver that took no statistics queue. */
	rig_up(&r, &o, base_features(false));
	REFUSED(&r, &o, put32(vbal_at(&w_, VBAL_FLAGS), 1),
		"a statistics buffer kept without a statistics queue");
	rig_down(&r);
}

/* Cut anywhere: refused, the fresh device untouched. */
static void test_state_truncated(void)
{
	struct virtio_balloon_opts o = { .amount_mib = 1, .stats_polling_interval_s = 1 };
	struct virtio_balloon b2;
	struct count_transport tr2;
	struct state_writer w;
	char why[256];
	struct rig r;

	rig_up(&r, &o, base_features(true));
	save(&r, &w);
	for (size_t cut = 1; cut < 160 && cut < w.len; cut += 7) {
		CHECK(!twin_load(&r, &b2, &o, w.buf, w.len - cut, &tr2, why));
		CHECK(untouched(&b2, &o));
		twin_down(&b2);
	}
	state_writer_free(&w);
	rig_down(&r);
}

int main(void)
{
	RUN_TEST(test_features_and_queues);
	RUN_TEST(test_config_space);
	RUN_TEST(test_inflate_releases);
	RUN_TEST(test_inflate_pfns_outside_ram);
	RUN_TEST(test_malformed_chains);
	RUN_TEST(test_deflate);
	RUN_TEST(test_stats_round_trip);
	RUN_TEST(test_stats_rules_without_stats);
	RUN_TEST(test_paused_waits);
	RUN_TEST(test_state_round_trip);
	RUN_TEST(test_state_refused);
	RUN_TEST(test_state_truncated);
	return CHECK_DONE();
}
