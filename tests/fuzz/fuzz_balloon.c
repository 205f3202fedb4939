/*
 * libFuzzer target: a hostile guest driver against virtio-balloon, over a
 * guest memory of a memfd in two regions and a private anonymous region
 * apart (the two kinds guest_mem_discard serves).
 *
 * The input is a feature byte (bit 0: leave the statistics queue out, 1:
 * no indirect descriptors, 2: no EVENT_IDX) and operations: an inflate or
 * deflate chain of PFNs (each a page the harness marked, a page at or past
 * an edge of guest RAM, or any 32-bit number), in one or two descriptors,
 * direct or indirect, maybe driver-writable or cut short of whole PFNs; a
 * statistics buffer of (tag, value) entries; the statistics handed back
 * (an interval change, as the timer does); a new target; a raw descriptor
 * offered as a head; an avail index jump.
 *
 * Checked besides ASan/UBSan (the memfd regions have guard pages):
 *  - after an inflate, exactly the marked pages a valid chain named read
 *    back zero, every other marked page keeps its mark (nothing released
 *    that the guest did not name, nothing outside guest RAM);
 *  - the device counts every PFN of a valid inflate chain once, as a page
 *    released or as outside RAM, as the harness's own map of RAM says;
 *  - every inflate and deflate chain is completed once with length 0, and
 *    a statistics buffer only when the next one comes or it is handed
 *    back (while the input wrote no raw descriptors);
 *  - the statistics read are the last values sent for each known tag.
 * The rings and request buffers live in pages the harness never names
 * (a PFN from the input that lands there is moved off them).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "balloon/virtio_balloon.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "count_transport.h"
#include "fuzz_input.h"
#include "vdriver.h"

#define MEM_BASE   0x100000ull
#define MEM_SIZE   (256u * 1024u)
#define MEM_SPLIT  (128u * 1024u)
#define ANON_BASE  0x1000000ull
#define ANON_SIZE  (64u * 1024u)
#define PAGE       4096u
#define QSIZE      16u
#define MAX_OPS    64
#define MARK       0x5a
#define MAX_TARGETS ((MEM_SIZE + ANON_SIZE) / PAGE)

#define FAIL(...) FUZZ_FAIL("fuzz_balloon", __VA_ARGS__)

static struct vd_mem mem;
static uint8_t *anon;
static struct event_loop loop;
static struct virtio_balloon b;
static struct vd_queue q[BALLOON_MAX_Q];
static struct count_transport transport;
static uint64_t pool;                       /* request buffers: 8 KiB */
static uint64_t targets[MAX_TARGETS];       /* the pages the harness marks */
static unsigned n_targets;
static uint64_t reserved_end;               /* rings and pool below this */
static bool raw_written, indirect_ok;
static uint64_t chains_out[BALLOON_MAX_Q], chains_done[BALLOON_MAX_Q];

static void world_init(void)
{
	struct virtio_balloon_opts o = { .deflate_on_oom = true, .stats_polling_interval_s = 1 };

	log_threshold = LOG_ERROR;
	if (event_loop_init(&loop) || vd_mem_init(&mem, MEM_BASE, MEM_SIZE, MEM_SPLIT))
		FAIL("set-up");
	anon = mmap(NULL, ANON_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED || guest_mem_add(&mem.gm, ANON_BASE, ANON_SIZE, 0, anon, NULL, 0))
		FAIL("anonymous region");
	if (virtio_balloon_init(&b, &loop, &o, 1ull << 30))
		FAIL("device");
	count_transport_attach(&transport, &b.vdev);
	b.vdev.mem = &mem.gm;
}

static uint8_t *host_of(uint64_t gpa)
{
	if (gpa >= ANON_BASE && gpa < ANON_BASE + ANON_SIZE)
		return anon + (gpa - ANON_BASE);
	return vd_ptr(&mem, gpa, 1);
}

/* Is the page at @gpa guest RAM, by the harness's own map? */
static bool in_ram(uint64_t gpa)
{
	return (gpa >= MEM_BASE && gpa < MEM_BASE + MEM_SIZE) ||
	       (gpa >= ANON_BASE && gpa < ANON_BASE + ANON_SIZE);
}

static void list_targets(void)
{
	n_targets = 0;
	for (uint64_t g = reserved_end; g < MEM_BASE + MEM_SIZE; g += PAGE)
		targets[n_targets++] = g;
	for (uint64_t g = ANON_BASE; g < ANON_BASE + ANON_SIZE; g += PAGE)
		targets[n_targets++] = g;
}

static void mark_targets(void)
{
	for (unsigned i = 0; i < n_targets; i++)
		memset(host_of(targets[i]), MARK, PAGE);
}

/* A fresh negotiation and queues for each input. */
static void world_start(uint8_t feat)
{
	uint64_t f = b.vdev.ops->features(&b.vdev);

	virtio_device_reset(&b.vdev);
	vd_alloc_reset(&mem);
	if (feat & 1)
		f &= ~(1ull << VIRTIO_BALLOON_F_STATS_VQ);
	if (feat & 2)
		f &= ~(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	if (feat & 4)
		f &= ~(1ull << VIRTIO_RING_F_EVENT_IDX);
	indirect_ok = !(feat & 2);
	if (virtio_device_set_features(&b.vdev, f))
		FAIL("features refused");
	struct vd_queue_opts qo = { .size = QSIZE, .indirect_max = 4, .event_idx = !(feat & 4) };
	for (unsigned i = 0; i < b.vdev.num_queues; i++) {
		if (vd_queue_init(&q[i], &mem, &qo))
			FAIL("queue");
		vd_queue_to_vq(&q[i], &b.vqs[i], indirect_ok);
	}
	if (virtio_device_activate(&b.vdev))
		FAIL("activate");
	pool = vd_alloc(&mem, 8192, PAGE);
	reserved_end = (mem.brk + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	list_targets();
	raw_written = false;
	memset(chains_out, 0, sizeof(chains_out));
	memset(chains_done, 0, sizeof(chains_done));
	memset(&b.counters, 0, sizeof(b.counters));
}

static void kick(unsigned qi)
{
	vd_publish(&q[qi]);
	b.vdev.ops->queue_notify(&b.vdev, qi);
	while (event_loop_once(&loop, 0) > 0)    /* a drain that yielded goes on */
		;
}

/* Read every queue's used ring: each entry outstanding, length 0. */
static void collect(void)
{
	uint32_t id, len;
	int r;

	for (unsigned i = 0; i < b.vdev.num_queues; i++)
		while ((r = vd_get_used(&q[i], &id, &len)) != 0) {
			if ((r < 0 || len) && !raw_written)
				FAIL("queue %u used entry %u len %u: not outstanding or written", i,
				     id, len);
			chains_done[i]++;
		}
}

/* A PFN from the input: a marked page, one at an edge of RAM, or any
 * number off the harness's own pages. */
static uint32_t take_pfn(struct fuzz_input *in)
{
	static const uint64_t edges[] = { MEM_BASE - PAGE, MEM_BASE + MEM_SIZE, ANON_BASE - PAGE,
					  ANON_BASE + ANON_SIZE, 0, 0xfffffffful << 12,
					  MEM_BASE + MEM_SPLIT - PAGE, MEM_BASE + MEM_SPLIT };
	uint8_t mode = (uint8_t)fuzz_take(in, 1);
	uint64_t gpa;

	if (mode < 200)
		gpa = targets[mode % n_targets];
	else if (mode < 240)
		gpa = edges[mode % 8];
	else
		gpa = fuzz_take(in, 4) << 12;
	if (gpa >= MEM_BASE && gpa < reserved_end)
		gpa = targets[0];
	return (uint32_t)(gpa >> 12);
}

/* A chain of the @len bytes at @gpa: one or two pieces, maybe indirect. */
static bool add(unsigned qi, uint64_t gpa, uint32_t len, uint8_t shape)
{
	struct vd_buf bufs[2];
	unsigned n = 1;
	uint32_t first = shape & 4 && len > 1 ? len / 2 : len;

	bufs[0] = (struct vd_buf){ .gpa = gpa, .len = first, .writable = shape & 1 };
	if (first < len)
		bufs[n++] = (struct vd_buf){ .gpa = gpa + first, .len = len - first,
					     .writable = shape & 1 };
	if (!len || vd_add_chain(&q[qi], bufs, n, indirect_ok && (shape & 8)) < 0)
		return false;
	chains_out[qi]++;
	return true;
}

/* An inflate (or deflate) chain; what the device must release. */
static void op_pfns(struct fuzz_input *in, unsigned qi)
{
	uint8_t shape = (uint8_t)fuzz_take(in, 1);
	unsigned n = (unsigned)fuzz_take(in, 2) % 300 + 1;
	uint32_t pfns[300];
	uint32_t cut = shape & 2 ? (uint32_t)fuzz_take(in, 1) % 3 + 1 : 0;
	uint64_t pages0 = b.counters.rx_inflate_pages, bad0 = b.counters.rx_inflate_pfns_invalid;
	unsigned want_bad = 0;

	for (unsigned i = 0; i < n; i++)
		pfns[i] = take_pfn(in);
	if (vd_write(&mem, pool, pfns, n * 4))
		FAIL("pool");
	mark_targets();
	if (!add(qi, pool, n * 4 - cut, shape))
		return;
	kick(qi);
	collect();
	bool valid = !(shape & 1) && !cut && n <= VIRTIO_BALLOON_MAX_PFNS &&
		     qi == BALLOON_INFLATE_Q && !b.vdev.needs_reset && !raw_written;
	for (unsigned i = 0; valid && i < n; i++)
		want_bad += !in_ram((uint64_t)pfns[i] << 12);
	if (valid && (b.counters.rx_inflate_pfns_invalid - bad0 != want_bad ||
		      b.counters.rx_inflate_pages - pages0 != n - want_bad))
		FAIL("%u PFNs, %u outside RAM: counted %llu released, %llu outside", n, want_bad,
		     (unsigned long long)(b.counters.rx_inflate_pages - pages0),
		     (unsigned long long)(b.counters.rx_inflate_pfns_invalid - bad0));
	if (raw_written)
		return;
	for (unsigned t = 0; t < n_targets; t++) {
		bool named = false;
		for (unsigned i = 0; valid && i < n && !named; i++)
			named = (uint64_t)pfns[i] << 12 == targets[t];
		uint8_t *p = host_of(targets[t]);
		if (p[0] != (named ? 0 : MARK) || p[PAGE - 1] != (named ? 0 : MARK))
			FAIL("page 0x%llx %s", (unsigned long long)targets[t],
			     named ? "named but not released" : "released but not named");
	}
}

/* A statistics buffer: entries of a tag byte (known or not) and a value. */
static void op_stats(struct fuzz_input *in)
{
	uint8_t shape = (uint8_t)fuzz_take(in, 1), raw[300 * 10];
	unsigned n = (unsigned)fuzz_take(in, 2) % 300;
	bool seen[VIRTIO_BALLOON_STAT_TAGS] = { 0 };
	uint64_t vals[VIRTIO_BALLOON_STAT_TAGS] = { 0 };

	if (b.vdev.num_queues < 3)
		return;
	for (unsigned i = 0; i < n; i++) {
		uint16_t tag = (uint16_t)(fuzz_take(in, 1) % 20);
		uint64_t v = fuzz_take(in, 8);
		raw[i * 10] = (uint8_t)tag;
		raw[i * 10 + 1] = 0;
		memcpy(raw + i * 10 + 2, &v, 8);
		if (tag < VIRTIO_BALLOON_STAT_TAGS) {
			seen[tag] = true;
			vals[tag] = v;
		}
	}
	if (vd_write(&mem, pool, raw, n * 10) || !add(BALLOON_STATS_Q, pool, n * 10, shape & 0xc))
		return;
	kick(BALLOON_STATS_Q);
	collect();
	if (raw_written || b.vdev.needs_reset || n > VIRTIO_BALLOON_MAX_STATS)
		return;
	for (unsigned t = 0; t < VIRTIO_BALLOON_STAT_TAGS; t++)
		if (seen[t] && b.stats.val[t] != vals[t])
			FAIL("tag %u: %llu read, %llu sent", t, (unsigned long long)b.stats.val[t],
			     (unsigned long long)vals[t]);
}

/* The statistics handed back, as the timer does; a new target. */
static void op_api(struct fuzz_input *in)
{
	uint8_t what = (uint8_t)fuzz_take(in, 1);

	if (what & 1)
		virtio_balloon_set_stats_interval(&b, b.stats_interval_s == 1 ? 2 : 1);
	else
		virtio_balloon_set_target(&b, (uint32_t)fuzz_take(in, 2));
	collect();
}

static void op_raw(struct fuzz_input *in)
{
	unsigned qi = (unsigned)fuzz_take(in, 1) % b.vdev.num_queues;
	uint16_t i = (uint16_t)(fuzz_take(in, 1) % QSIZE);
	uint64_t addr = fuzz_take(in, 1) & 1 ? fuzz_take(in, 8) : pool + fuzz_take(in, 2) % 8192;
	uint32_t len = (uint32_t)fuzz_take(in, 2);
	uint16_t flags = (uint16_t)fuzz_take(in, 1) & 7, next = (uint16_t)fuzz_take(in, 1);

	raw_written = true;
	vd_raw_desc(&q[qi], i, addr, len, flags, next);
	vd_raw_offer(&q[qi], (uint16_t)(fuzz_take(in, 1) % QSIZE));
	b.vdev.ops->queue_notify(&b.vdev, qi);
	collect();
}

static void op_avail_jump(struct fuzz_input *in)
{
	unsigned qi = (unsigned)fuzz_take(in, 1) % b.vdev.num_queues;

	raw_written = true;
	vd_raw_avail_idx(&q[qi], (uint16_t)(q[qi].avail_idx + fuzz_take(in, 2)));
	b.vdev.ops->queue_notify(&b.vdev, qi);
	collect();
}

/* Every inflate and deflate chain completed once; statistics buffers all
 * but the one held. */
static void check_world(void)
{
	if (raw_written || b.vdev.needs_reset)
		return;
	for (unsigned i = 0; i < 2; i++)
		if (chains_done[i] != chains_out[i])
			FAIL("queue %u: %llu chains, %llu completed", i,
			     (unsigned long long)chains_out[i], (unsigned long long)chains_done[i]);
	if (b.vdev.num_queues == 3 && chains_done[2] + b.stats_held != chains_out[2])
		FAIL("statistics: %llu buffers, %llu back, %d held",
		     (unsigned long long)chains_out[2], (unsigned long long)chains_done[2],
		     b.stats_held);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fuzz_input in = { data, size };

	if (!ready) {
		world_init();
		ready = true;
	}
	world_start((uint8_t)fuzz_take(&in, 1));
	for (unsigned ops = 0; in.n && ops < MAX_OPS && !b.vdev.needs_reset; ops++) {
		switch (fuzz_take(&in, 1) % 10) {
		case 0: case 1: case 2: op_pfns(&in, BALLOON_INFLATE_Q); break;
		case 3: op_pfns(&in, BALLOON_DEFLATE_Q); break;
		case 4: case 5: op_stats(&in); break;
		case 6: op_api(&in); break;
		case 7: op_raw(&in); break;
		case 8: op_avail_jump(&in); break;
		default: collect(); break;
		}
	}
	check_world();
	unsigned nq = b.vdev.num_queues;
	virtio_device_reset(&b.vdev);
	for (unsigned i = 0; i < nq; i++)
		vd_queue_destroy(&q[i]);
	return 0;
}
