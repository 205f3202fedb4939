/*
 * libFuzzer target: a hostile guest driver against the split virtqueue and
 * the virtio-net device (loopback backend).
 *
 * The input is a 4-byte header (features, queue sizes) followed by a list of
 * operations that poke descriptors, avail entries and indices, indirect
 * tables and suppression fields into fake guest memory (two regions, non-zero
 * base, guard pages around), offer well-formed frames, kick the device's RX
 * and TX queues, and drive a third queue through vq_pop/vq_push directly.
 *
 * Checked besides ASan/UBSan:
 *  - raw vq_pop agrees with an independent model of the chain rules
 *    (vd_ref_walk): same verdict, same lengths and piece counts, every iovec
 *    inside guest memory, poisoning exactly when the avail ring is broken;
 *  - the device completes a head at most as often as it popped it, never
 *    with more bytes than the chain's writable length, and TX with 0;
 *  - counters agree with the used rings and each other (every TX completion
 *    is exactly one TX outcome, every looped-back frame one RX outcome,
 *    interrupts counted as sent), a poisoned queue raises NEEDS_RESET.
 *    The loopback backend keeps each sent frame (and the device its TX
 *    chain) until an RX drain, deferred work of the loop, takes it, or a
 *    reset drops it: the model counts the frames kept across calls.
 * Checks that depend on ring contents are skipped for the rest of an input
 * once the device's own RX writes land on ring structures (a guest may do
 * that, but then the test cannot know what the device read).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "net/net_device.h"
#include "net/offload.h"
#include "virtio/device.h"
#include "virtio/virtqueue.h"
#include "count_transport.h"
#include "fuzz_input.h"
#include "vdriver.h"

#define MEM_BASE   0x7ff00000ull           /* just below 2 GiB: non-zero, odd-ish */
#define MEM_SIZE   (512u * 1024u)
#define MEM_SPLIT  (256u * 1024u)
#define RAW_Q      2
#define NQ         3
#define MAX_QSIZE  256
#define MAX_OPS    400
#define LOG_BYTES  (1u << 20)

#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

#define FAIL(...) FUZZ_FAIL("fuzz_virtq_net", __VA_ARGS__)


/* ---- the world ---- */

static struct vd_mem mem;
static struct event_loop loop;
static struct net_device net;
static struct vd_queue dq[NQ];
static struct virtqueue raw_vq;
static struct vq_chain raw_chain;
static bool raw_popped;
static uint16_t raw_head;
static uint64_t data_base, data_end;       /* where well-formed buffers go */
static uint64_t features;

static bool mergeable(void)
{
	return features >> VIRTIO_NET_F_MRG_RXBUF & 1;
}

static struct count_transport transport;   /* counts interrupts */

/* ---- per-queue accounting for the device's queues ---- */

struct pending {
	uint16_t head;
	struct vd_ref_chain ref;
};

struct acct {
	bool unsound;                    /* ring-content checks off for this input */
	uint16_t seen_used;              /* used entries the driver has read */
	uint32_t popped[MAX_QSIZE];
	uint32_t completed[MAX_QSIZE];
	uint32_t bound[MAX_QSIZE];       /* largest writable length a pop of the head had */
	/* Snapshot before a device call. */
	uint16_t last_before, used_before, npending, avail_before;
	bool poisoned_before, valid_before;
	struct pending pend[MAX_QSIZE];
	/* The chain the device holds (vq_hold) as it walked it when popped:
	 * the guest may rewrite its descriptors meanwhile, the device keeps
	 * the buffers it took. */
	struct pending held;
};

static struct acct acct[2];

/* What the checks saw, printed at exit when FUZZ_VIRTQ_STATS is set, to
 * tell a fuzzer that exercises the device from one that only spins. */
static struct {
	uint64_t calls, unsound_calls, used_checked, raw_ok, raw_bad, raw_poisoned;
	uint64_t tx_packets, rx_packets;
} stats;

/* Every guest byte the model read before a device call, to tell whether the
 * device's own writes changed them during the call. */
static struct {
	uint8_t bytes[LOG_BYTES];
	struct { uint64_t gpa; uint32_t len, off; } ent[16384];
	unsigned nent;
	uint32_t used;
	bool overflow;
} rlog;

NO_COVERAGE
static void log_read(void *ctx, uint64_t gpa, uint64_t len)
{
	if (rlog.overflow || rlog.nent == ARRAY_SIZE(rlog.ent) || len > LOG_BYTES - rlog.used) {
		rlog.overflow = true;
		return;
	}
	vd_read(&mem, gpa, rlog.bytes + rlog.used, len);
	rlog.ent[rlog.nent].gpa = gpa;
	rlog.ent[rlog.nent].len = (uint32_t)len;
	rlog.ent[rlog.nent].off = rlog.used;
	rlog.nent++;
	rlog.used += (uint32_t)len;
}

NO_COVERAGE
static bool log_unchanged(void)
{
	uint8_t now[4096];

	if (rlog.overflow)
		return false;
	for (unsigned i = 0; i < rlog.nent; i++) {
		uint32_t len = rlog.ent[i].len;
		if (len > sizeof(now) || vd_read(&mem, rlog.ent[i].gpa, now, len) ||
		    memcmp(now, rlog.bytes + rlog.ent[i].off, len))
			return false;
	}
	return true;
}

static uint16_t avail_idx_of(const struct vd_queue *q)
{
	return __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
}

/* Model what the device may pop from queue @q in the coming call. */
NO_COVERAGE
static void snapshot_queue(unsigned q)
{
	struct acct *a = &acct[q];
	struct virtqueue *vq = &net.vqs[q];
	struct vd_queue *d = &dq[q];

	/* vq_base: a chain held over from an earlier call counts as not yet
	 * taken, so its completion in this call is accounted here. */
	a->last_before = vq_base(vq);
	a->used_before = vq->used_idx;
	a->poisoned_before = vq->faults.poisoned != VQ_POISON_NONE;
	a->npending = 0;
	log_read(NULL, d->avail_gpa + 2, 2);
	a->avail_before = avail_idx_of(d);
	uint16_t pending = (uint16_t)(a->avail_before - a->last_before);
	/* Chains the device keeps (taken, not yet used) count as outstanding,
	 * and so do used entries not yet published: the driver cannot have
	 * seen them (the device's rule, vq_pop). */
	a->valid_before = pending <= d->size &&
			  (uint16_t)(a->avail_before - vq->published_idx) <= d->size;
	if (!a->valid_before || !vq->started)
		return;
	/* A held chain comes first, as the device took it (its avail slot
	 * may have been rewritten since; the device does not read it again),
	 * also when avail->idx has been moved back onto it. */
	uint16_t k = 0;
	if (vq->held) {
		a->pend[a->npending++] = a->held;
		k = 1;
	}
	for (; k < pending; k++) {
		uint16_t slot = (uint16_t)((a->last_before + k) % d->size);
		struct pending *p = &a->pend[a->npending++];
		log_read(NULL, d->avail_gpa + 4 + 2ull * slot, 2);
		p->head = d->avail->ring[slot];
		vd_ref_walk(d, vq->indirect, p->head, &p->ref, log_read, NULL);
		if (p->head >= d->size)
			break;               /* the device stops (poisons) here */
	}
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

static bool hits_used_ring(uint64_t gpa, uint64_t len)
{
	for (unsigned q = 0; q < NQ; q++) {
		if (ranges_overlap(gpa, len, dq[q].used_gpa, 4 + 8ull * dq[q].size + 2))
			return true;
	}
	return false;
}

/* Any ring structure: the device may write into a chain it does not
 * consume (below) and read the rings again afterwards. */
static bool hits_any_ring(uint64_t gpa, uint64_t len)
{
	for (unsigned q = 0; q < NQ; q++) {
		if (ranges_overlap(gpa, len, dq[q].desc_gpa, 16ull * dq[q].size) ||
		    ranges_overlap(gpa, len, dq[q].avail_gpa, 4 + 2ull * dq[q].size + 2))
			return true;
	}
	return hits_used_ring(gpa, len);
}

/* Did an RX chain the device consumed let it write over a used ring? */
static bool rx_writes_hit_used(uint16_t consumed)
{
	const struct acct *a = &acct[NET_RX_QUEUE];

	/* Chains not consumed may have been written too: a frame dropped for
	 * its header after the backend wrote it, or one spilled (MRG_RXBUF)
	 * from chains given back; a held chain is read again later. */
	for (uint16_t k = 0; k < a->npending; k++) {
		const struct vd_ref_chain *r = &a->pend[k].ref;
		if (r->wr_overflow)
			return true;
		for (unsigned i = 0; i < r->n_wr; i++) {
			uint64_t gpa = r->wr[i].gpa, len = r->wr[i].len;
			if (k < consumed ? hits_used_ring(gpa, len) : hits_any_ring(gpa, len))
				return true;
		}
	}
	return false;
}

/* Record the chains the device consumed in the call. */
static void account_pops(unsigned q, uint16_t consumed, uint16_t walked)
{
	struct acct *a = &acct[q];
	struct virtqueue *vq = &net.vqs[q];

	if (!a->valid_before) {
		if (consumed)
			FAIL("q%u: consumed %u entries from a broken avail ring", q, consumed);
		return;
	}
	if (consumed > a->npending)
		FAIL("q%u: consumed %u of %u pending", q, consumed, a->npending);
	for (uint16_t k = 0; k < consumed; k++) {
		const struct pending *p = &a->pend[k];
		if (p->head >= dq[q].size)
			FAIL("q%u: consumed head %u out of range", q, p->head);
		a->popped[p->head]++;
		uint32_t in_len = p->ref.ok ? (uint32_t)p->ref.in_len : 0;
		if (in_len > a->bound[p->head])
			a->bound[p->head] = in_len;
	}
	/* Popped but held: remember the chain as the device took it. */
	if (walked > consumed && consumed < a->npending)
		a->held = a->pend[consumed];
	/* Poisoned in this call: the model must agree the ring was broken. */
	/* ... or the device, having taken a held chain, found avail->idx
	 * behind it (moved back onto the held chain). */
	bool behind = (uint16_t)(a->avail_before - (uint16_t)(a->last_before + consumed)) >
		      dq[q].size;
	/* With MRG_RXBUF the device takes more chains after the one it then
	 * holds again, and finds avail->idx behind that one. */
	if (q == NET_RX_QUEUE && mergeable())
		behind |= (uint16_t)(a->avail_before - (uint16_t)(a->last_before + consumed + 1)) >
			  dq[q].size;
	/* With MRG_RXBUF the device looks past the chains it keeps (the
	 * chains of one frame), so the broken head may lie further on. */
	bool bad_ahead = consumed < a->npending &&
			 a->pend[a->npending - 1].head >= dq[q].size &&
			 (consumed == a->npending - 1 || (q == NET_RX_QUEUE && mergeable()));
	if (vq->faults.poisoned && !a->poisoned_before && !behind && !bad_ahead)
		FAIL("q%u: poisoned (%d) with a sound avail ring", q, vq->faults.poisoned);
}

static void read_used(unsigned q)
{
	struct acct *a = &acct[q];
	struct vd_queue *d = &dq[q];
	uint16_t idx = __atomic_load_n(&d->used->idx, __ATOMIC_ACQUIRE);

	if (idx != net.vqs[q].published_idx)
		FAIL("q%u: used->idx %u but device published %u", q, idx, net.vqs[q].published_idx);
	for (; a->seen_used != idx; a->seen_used++) {
		struct vring_used_elem e = vd_raw_used(d, a->seen_used);
		if (e.id >= d->size)
			FAIL("q%u: used id %u out of range", q, e.id);
		if (++a->completed[e.id] > a->popped[e.id])
			FAIL("q%u: head %u completed %u times, popped %u", q, e.id,
			     a->completed[e.id], a->popped[e.id]);
		if (e.len > a->bound[e.id])
			FAIL("q%u: head %u used len %u > writable %u", q, e.id, e.len,
			     a->bound[e.id]);
		stats.used_checked++;
		if (q == NET_TX_QUEUE && e.len)
			FAIL("TX head %u completed with len %u", e.id, e.len);
		if (q == NET_RX_QUEUE && e.len && e.len < NET_HDR_LEN && !mergeable())
			FAIL("RX head %u completed with len %u < header", e.id, e.len);
	}
}

static struct net_counters cnt_before;
/* Frames sent and kept by the loopback backend, not yet taken by RX. */
static uint64_t kept, kept_before;
/* A frame taken from the backend waits in the device for RX buffers. */
static bool spilled_before;
static uint64_t irq_before[2];

static void before_call(void)
{
	rlog.nent = 0;
	rlog.used = 0;
	rlog.overflow = false;
	for (unsigned q = 0; q < 2; q++)
		snapshot_queue(q);
	cnt_before = net_device_totals(&net);
	kept_before = kept;
	spilled_before = net.pairs[0].rx_spill_len != 0;
	irq_before[0] = transport.used[0];
	irq_before[1] = transport.used[1];
}

#define D(field) (net_device_totals(&net).field - cnt_before.field)

static void check_counters(uint16_t rx_pushed, uint16_t tx_pushed)
{
	if (D(used_add_failed))
		FAIL("used_add_failed moved");
	/* A sent frame's TX chain completes when its frame is released:
	 * looped back, dropped on RX, or dropped at a reset. */
	uint64_t released = D(rx_packets) + D(rx_dropped_no_buffer) + D(rx_dropped_poisoned) +
			    D(rx_dropped_too_big) + D(rx_hdr_refused);
	/* A frame that went into the spill buffer was released then; the
	 * outcome it has when it leaves (delivered or dropped) is not a
	 * second release. */
	bool spilled = net.pairs[0].rx_spill_len != 0;
	uint64_t spill_in = D(rx_waited_for_buffers);
	uint64_t spill_out = spilled_before + spill_in - spilled;
	released = released + spill_in - spill_out;
	uint64_t tx_outcomes = D(tx_chain_invalid) + D(tx_frame_oversize) + D(tx_hdr_invalid) +
			       D(tx_backend_errors) + released;
	if (tx_outcomes != tx_pushed)
		FAIL("TX outcomes %llu != TX completions %u", (unsigned long long)tx_outcomes,
		     tx_pushed);
	/* With MRG_RXBUF a frame completes one chain per buffer it took. */
	uint64_t rx_outcomes = D(rx_packets) + D(rx_merged_buffers) + D(rx_chain_invalid);
	if (rx_outcomes != rx_pushed)
		FAIL("RX outcomes %llu != RX completions %u", (unsigned long long)rx_outcomes,
		     rx_pushed);
	if (released > kept + D(tx_packets))
		FAIL("looped-back frames do not add up: %llu released of %llu kept",
		     (unsigned long long)released, (unsigned long long)(kept + D(tx_packets)));
	kept = kept + D(tx_packets) - released;
	/* Frames come back in a later call than they went: totals. */
	if (net_device_totals(&net).rx_bytes > net_device_totals(&net).tx_bytes)
		FAIL("more bytes received than sent");
	if (D(tx_bytes) > (uint64_t)D(tx_packets) * NET_TX_FRAME_MAX)
		FAIL("TX bytes beyond the frame cap");
	if (transport.used[0] - irq_before[0] != D(rx_interrupts) ||
	    transport.used[1] - irq_before[1] != D(tx_interrupts))
		FAIL("interrupt counters disagree with interrupts sent");
	if (transport.used_out_of_range)
		FAIL("interrupt for a queue the device does not have");
	for (unsigned q = 0; q < 2; q++) {
		if (net.vqs[q].faults.poisoned && !net.vdev.needs_reset)
			FAIL("q%u poisoned without NEEDS_RESET", q);
	}
}

static void after_call(void)
{
	bool same = log_unchanged();
	uint16_t pushed[2];

	stats.calls++;

	for (unsigned q = 0; q < 2; q++)
		pushed[q] = (uint16_t)(net.vqs[q].used_idx - acct[q].used_before);
	check_counters(pushed[NET_RX_QUEUE], pushed[NET_TX_QUEUE]);
	uint16_t rx_consumed = (uint16_t)(vq_base(&net.vqs[NET_RX_QUEUE]) -
					  acct[NET_RX_QUEUE].last_before);
	bool used_clobbered = rx_writes_hit_used(rx_consumed);
	for (unsigned q = 0; q < 2; q++) {
		struct acct *a = &acct[q];
		uint16_t consumed = (uint16_t)(vq_base(&net.vqs[q]) - a->last_before);
		/* TX may also complete chains kept from earlier calls. */
		uint64_t earlier = q == NET_TX_QUEUE ? kept_before : 0;
		if (pushed[q] > consumed + earlier)
			FAIL("q%u: %u completions for %u chains taken", q, pushed[q], consumed);
		if (!same || used_clobbered) {
			a->unsound = true;
			stats.unsound_calls++;
		}
		if (a->unsound) {
			a->seen_used = net.vqs[q].published_idx;
			continue;
		}
		account_pops(q, consumed, (uint16_t)(net.vqs[q].last_avail_idx - a->last_before));
		read_used(q);
	}
}

/* ---- setup ---- */

static void configure_device_queue(unsigned q)
{
	struct virtqueue *vq = &net.vqs[q];
	bool ind = vq->indirect, ev = vq->event_idx;

	vd_queue_to_vq(&dq[q], vq, ind);
	vq->event_idx = ev;
	vq->last_avail_idx = 0;
}

/* Reset the device: every frame the backend kept is dropped and counted. */
static void reset_device(void)
{
	uint64_t dropped = net_device_totals(&net).rx_dropped_no_buffer;
	bool spilled = net.pairs[0].rx_spill_len != 0;

	virtio_device_reset(&net.vdev);
	if (net_device_totals(&net).rx_dropped_no_buffer - dropped != kept + spilled)
		FAIL("reset dropped %llu of %llu kept frames",
		     (unsigned long long)(net_device_totals(&net).rx_dropped_no_buffer - dropped),
		     (unsigned long long)kept);
	kept = 0;
}

/* Reset, negotiate and activate the device as a transport would. */
static void bring_up_device(bool bad_features)
{
	reset_device();
	memset(acct, 0, sizeof(acct));
	uint64_t f = features;
	if (bad_features)
		f = (f & ~(1ull << VIRTIO_F_VERSION_1)) | (1ull << VIRTIO_NET_F_MRG_RXBUF);
	if (virtio_device_set_features(&net.vdev, f) < 0) {
		if (!bad_features)
			FAIL("features 0x%llx refused", (unsigned long long)f);
		return;
	}
	if (bad_features)
		FAIL("bad features 0x%llx accepted", (unsigned long long)f);
	for (unsigned q = 0; q < 2; q++)
		configure_device_queue(q);
	net.vdev.mem = &mem.gm;
	count_transport_attach(&transport, &net.vdev);
	before_call();
	int r = virtio_device_activate(&net.vdev);
	if (r == 0)
		after_call();
	else if (net.vdev.active)
		FAIL("activate failed (%d) but the device is active", r);
}

static void print_stats(void)
{
	fprintf(stderr, "fuzz_virtq_net stats: device calls %llu (ring checks off in %llu), "
		"used entries checked %llu, raw pops ok %llu bad %llu poisoned %llu, "
		"frames tx %llu rx %llu\n",
		(unsigned long long)stats.calls, (unsigned long long)stats.unsound_calls,
		(unsigned long long)stats.used_checked, (unsigned long long)stats.raw_ok,
		(unsigned long long)stats.raw_bad, (unsigned long long)stats.raw_poisoned,
		(unsigned long long)net_device_totals(&net).tx_packets,
		(unsigned long long)net_device_totals(&net).rx_packets);
}

static int init_world(void)
{
	struct errbuf eb = { 0 };

	if (getenv("FUZZ_VIRTQ_STATS"))
		atexit(print_stats);
	log_threshold = LOG_ERROR;
	if (vd_mem_init(&mem, MEM_BASE, MEM_SIZE, MEM_SPLIT) || event_loop_init(&loop))
		return -1;
	struct net_backend *be = net_loopback_create(&loop, NULL, &eb);
	struct net_config_opts opts = { .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 }, .mtu = 1500 };
	if (!be || net_device_init(&net, &opts, be, &loop))
		return -1;
	return 0;
}

/* Queue sizes: powers of two up to MAX_QSIZE; bit 7 asks for a bad size. */
static uint16_t size_from(uint8_t b)
{
	if (b & 0x80)
		return (uint16_t)(3 + (b & 0x7f) % 60);
	return (uint16_t)(1u << (b % 9));
}

static int setup_input(struct fuzz_input *in)
{
	uint8_t f = (uint8_t)fuzz_take(in, 1);
	uint16_t sizes[NQ] = {
		size_from((uint8_t)fuzz_take(in, 1)), size_from((uint8_t)fuzz_take(in, 1)),
		size_from((uint8_t)fuzz_take(in, 1) & 0x7f),
	};

	features = 1ull << VIRTIO_F_VERSION_1;
	if (f & 1)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (f & 2)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (f & 4)
		features |= (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS);
	if (f & 0x40)    /* every offload loopback passes through, both ways */
		features |= NET_HOST_OFFLOADS | NET_GUEST_OFFLOADS;
	if (f & 0x80)
		features |= 1ull << VIRTIO_NET_F_MRG_RXBUF;
	memset(mem.regions[0].host, 0, mem.regions[0].size);
	memset(mem.regions[1].host, 0, mem.regions[1].size);
	vd_alloc_reset(&mem);
	for (unsigned q = 0; q < NQ; q++) {
		struct vd_queue_opts o = {
			.size = sizes[q], .event_idx = features >> VIRTIO_RING_F_EVENT_IDX & 1,
		};
		if (vd_queue_init(&dq[q], &mem, &o))
			return -1;
	}
	data_base = (mem.brk + 4095) & ~4095ull;
	data_end = MEM_BASE + MEM_SIZE;
	bring_up_device(f & 8);
	vq_reset(&raw_vq);
	vd_queue_to_vq(&dq[RAW_Q], &raw_vq, f & 0x10);
	raw_vq.event_idx = f & 0x20;
	raw_popped = false;
	if (vq_start(&raw_vq, &mem.gm))
		FAIL("raw queue of size %u did not start", raw_vq.size);
	return 0;
}

static void teardown_input(void)
{
	reset_device();
	for (unsigned q = 0; q < NQ; q++)
		vd_queue_destroy(&dq[q]);
}

/* ---- operations ---- */

/* A guest address from 5 input bytes: mostly inside memory, sometimes at its
 * edges, the region split, or anywhere at all. */
static uint64_t take_addr(struct fuzz_input *in)
{
	uint8_t mode = (uint8_t)fuzz_take(in, 1);
	uint32_t v = (uint32_t)fuzz_take(in, 4);

	switch (mode % 5) {
	case 0: return MEM_BASE + v % MEM_SIZE;
	case 1: return MEM_BASE + MEM_SPLIT + (int32_t)v % 4096;
	case 2: return MEM_BASE + MEM_SIZE - v % 8192;
	case 3: return UINT64_MAX - v;
	default: return v;
	}
}

static void op_desc(struct fuzz_input *in)
{
	unsigned q = fuzz_take(in, 1) % NQ;
	uint16_t i = (uint16_t)fuzz_take(in, 2);
	uint64_t addr = take_addr(in);
	uint32_t len = (uint32_t)fuzz_take(in, 4);
	uint16_t flags = (uint16_t)fuzz_take(in, 1) & 7;
	uint16_t next = (uint16_t)fuzz_take(in, 2);

	vd_raw_desc(&dq[q], i, addr, len, flags, next);
}

/* Raw bytes anywhere but the used rings (the device owns those). */
static void op_write(struct fuzz_input *in)
{
	uint64_t gpa = take_addr(in);
	unsigned len = fuzz_take(in, 1) % 64 + 1;
	uint8_t bytes[64];

	for (unsigned i = 0; i < len; i++)
		bytes[i] = (uint8_t)fuzz_take(in, 1);
	if (!hits_used_ring(gpa, len))
		vd_write(&mem, gpa, bytes, len);
}

/* An indirect table of @n entries, each a buffer of the data area. */
static void op_indirect(struct fuzz_input *in)
{
	uint64_t table = data_base + (fuzz_take(in, 2) * 16) % (data_end - data_base);
	unsigned n = fuzz_take(in, 1) % 24 + 1;
	struct vring_desc d;

	for (unsigned i = 0; i < n; i++) {
		uint32_t off = (uint32_t)fuzz_take(in, 2);
		d.addr = data_base + off;
		d.len = (uint32_t)fuzz_take(in, 2);
		d.flags = (uint16_t)(fuzz_take(in, 1) & 7);
		d.next = (uint16_t)(fuzz_take(in, 1) % (n + 1));
		if (!hits_used_ring(table + 16ull * i, 16))
			vd_write(&mem, table + 16ull * i, &d, sizeof(d));
	}
}

static void op_avail(struct fuzz_input *in)
{
	unsigned q = fuzz_take(in, 1) % NQ;
	uint16_t slot = (uint16_t)fuzz_take(in, 2), head = (uint16_t)fuzz_take(in, 2);

	vd_raw_avail(&dq[q], slot, head);
}

static void op_publish(struct fuzz_input *in)
{
	unsigned q = fuzz_take(in, 1) % NQ;
	int8_t delta = (int8_t)fuzz_take(in, 1);

	vd_raw_avail_idx(&dq[q], (uint16_t)(dq[q].avail_idx + delta));
}

/*
 * A TX frame with offload requests: TCP over IPv4 or IPv6, or UDP, behind
 * a header whose fields come from the input (mostly plausible, sometimes
 * not), then kicked.
 */
static void op_offload_frame(struct fuzz_input *in)
{
	static const uint8_t gso[] = { 0, 1, 3, 4, 5, 0x81, 0x84, 2 };
	uint8_t kind = (uint8_t)fuzz_take(in, 1);
	bool v6 = kind & 1, udp = kind & 2;
	size_t l3 = 14, l4 = l3 + (v6 ? 40 : 20), hl = l4 + (udp ? 8 : 20);
	size_t len = hl + fuzz_take(in, 2) % 9000;
	uint64_t span = data_end - data_base;
	uint64_t at = data_base + (fuzz_take(in, 2) * 8) % (span - NET_HDR_LEN - len);
	struct virtio_net_hdr_v1 h = {
		.flags = (uint8_t)(kind & 4 ? fuzz_take(in, 1) : VIRTIO_NET_HDR_F_NEEDS_CSUM),
		.gso_type = gso[fuzz_take(in, 1) % sizeof(gso)],
		.gso_size = (uint16_t)(kind & 8 ? fuzz_take(in, 2) : 536 + fuzz_take(in, 1) * 4),
		.csum_start = (uint16_t)(kind & 16 ? fuzz_take(in, 2) : l4),
		.csum_offset = (uint16_t)(kind & 32 ? fuzz_take(in, 1) : udp ? 6 : 16),
		.hdr_len = (uint16_t)fuzz_take(in, 2),
	};
	uint8_t f[128] = { [12] = v6 ? 0x86 : 0x08, [13] = v6 ? 0xdd : 0x00 };
	f[l3] = v6 ? 0x60 : 0x45;
	f[v6 ? l3 + 6 : l3 + 9] = udp ? 17 : 6;
	if (!udp)
		f[l4 + 12] = (uint8_t)(kind & 64 ? fuzz_take(in, 1) : 5 << 4);
	vd_write(&mem, at, &h, sizeof(h));
	vd_fill(&mem, at + NET_HDR_LEN, (int)fuzz_take(in, 1), len);
	vd_write(&mem, at + NET_HDR_LEN, f, MIN(hl, sizeof(f)));
	struct vd_queue *d = &dq[NET_TX_QUEUE];
	uint16_t first = (uint16_t)(fuzz_take(in, 2) % d->size);
	vd_raw_desc(d, first, at, (uint32_t)(NET_HDR_LEN + len), 0, 0);
	vd_raw_offer(d, first);
	if (net.vdev.active) {
		before_call();
		net.vdev.ops->queue_notify(&net.vdev, NET_TX_QUEUE);
		after_call();
	}
}

/* A well-formed frame (TX) or buffer (RX): descriptors from @first on,
 * buffers in the data area, optionally through an indirect table. */
static void op_good_chain(struct fuzz_input *in, unsigned q)
{
	struct vd_queue *d = &dq[q];
	uint16_t first = (uint16_t)(fuzz_take(in, 2) % d->size);
	unsigned nbuf = fuzz_take(in, 1) % 4 + 1;
	uint8_t opt = (uint8_t)fuzz_take(in, 1);
	uint64_t total = NET_HDR_LEN + fuzz_take(in, 2) * ((opt & 1) ? 2 : 1);
	uint64_t span = data_end - data_base;
	uint64_t at = data_base + (fuzz_take(in, 2) * 8) % span;
	struct vring_desc descs[4];
	uint16_t flags = q == NET_RX_QUEUE ? VRING_DESC_F_WRITE : 0;

	if (total > span)
		total = span;
	if (at + total > data_end)
		at = data_end - total;
	for (unsigned i = 0; i < nbuf; i++) {
		uint64_t piece = i + 1 < nbuf ? total / nbuf : total - (total / nbuf) * (nbuf - 1);
		descs[i] = (struct vring_desc){ at, (uint32_t)piece,
			(uint16_t)(flags | (i + 1 < nbuf ? VRING_DESC_F_NEXT : 0)), 0 };
		at += piece;
	}
	if ((opt & 2) && (features >> VIRTIO_RING_F_INDIRECT_DESC & 1)) {
		uint64_t table = data_base + ((opt >> 2) * 64) % (span - 64);
		for (unsigned i = 0; i < nbuf; i++)
			descs[i].next = (uint16_t)(i + 1);
		vd_write(&mem, table, descs, 16ull * nbuf);
		vd_raw_desc(d, first, table, 16 * nbuf, VRING_DESC_F_INDIRECT, 0);
	} else {
		for (unsigned i = 0; i < nbuf; i++) {
			uint16_t idx = (uint16_t)((first + i) % d->size);
			vd_raw_desc(d, idx, descs[i].addr, descs[i].len, descs[i].flags,
				    (uint16_t)((idx + 1) % d->size));
		}
	}
	vd_raw_offer(d, first);
}

/* An indirect table of up to 2048 copies of one descriptor: long enough
 * for the iovec limit. (32-bit length overflow needs more memory than this
 * target maps; test_virtqueue covers it.) */
static void op_big_indirect(struct fuzz_input *in)
{
	unsigned q = fuzz_take(in, 1) % NQ;
	uint16_t head = (uint16_t)fuzz_take(in, 2);
	unsigned n = fuzz_take(in, 2) % 2048 + 1;
	uint64_t addr = take_addr(in);
	uint32_t len = (uint32_t)fuzz_take(in, 4) % (MEM_SIZE + 1);
	uint16_t flags = (uint16_t)(fuzz_take(in, 1) & VRING_DESC_F_WRITE);
	struct vring_desc chunk[256];

	if (data_end - data_base < 16ull * n)
		n = (unsigned)((data_end - data_base) / 16);
	for (unsigned i = 0; i < n; i += 256) {
		unsigned k = MIN(256u, n - i);
		for (unsigned j = 0; j < k; j++) {
			bool last = i + j + 1 == n;
			chunk[j] = (struct vring_desc){ addr, len,
				(uint16_t)(flags | (last ? 0 : VRING_DESC_F_NEXT)), (uint16_t)(i + j + 1) };
		}
		vd_write(&mem, data_base + 16ull * i, chunk, 16ull * k);
	}
	vd_raw_desc(&dq[q], head, data_base, 16 * n, VRING_DESC_F_INDIRECT, 0);
	vd_raw_offer(&dq[q], head);
}

/* Fill the whole RX and TX rings with one-descriptor chains and kick TX:
 * enough work to exhaust a drain's budget. */
static void op_flood(struct fuzz_input *in)
{
	uint32_t len = NET_HDR_LEN + (uint32_t)fuzz_take(in, 1) * 8;
	uint64_t stride = fuzz_take(in, 1) * 16 + 16;

	uint64_t span = data_end - data_base - len;

	for (unsigned q = 0; q < 2; q++) {
		struct vd_queue *d = &dq[q];
		uint16_t flags = q == NET_RX_QUEUE ? VRING_DESC_F_WRITE : 0;
		for (uint16_t i = 0; i < d->size; i++) {
			/* RX from the middle of the area: overlap with TX is possible,
			 * not the rule. */
			uint64_t at = data_base + (q * span / 2 + i * stride) % span;
			vd_raw_desc(d, i, at, len, flags, 0);
			vd_raw_avail(d, (uint16_t)(d->avail_idx + i), i);
		}
		vd_raw_avail_idx(d, (uint16_t)(d->avail_idx + d->size));
	}
	if (net.vdev.active) {
		before_call();
		net.vdev.ops->queue_notify(&net.vdev, NET_TX_QUEUE);
		after_call();
	}
}

static void op_kick(struct fuzz_input *in)
{
	unsigned q = fuzz_take(in, 1) % 2;

	if (!net.vdev.active)
		return;
	before_call();
	net.vdev.ops->queue_notify(&net.vdev, q);
	after_call();
}

static void op_run_loop(void)
{
	before_call();
	event_loop_once(&loop, 0);
	after_call();
}

static void op_suppress(struct fuzz_input *in)
{
	unsigned q = fuzz_take(in, 1) % NQ;
	uint8_t what = (uint8_t)fuzz_take(in, 1);
	uint16_t v = (uint16_t)fuzz_take(in, 2);

	if (what & 1)
		vd_set_used_event(&dq[q], v);
	else
		vd_set_avail_flags(&dq[q], v & 1);
}

/* Every iovec of a popped chain lies inside one region on the host. */
static void check_iov_bounds(const struct vq_chain *c)
{
	for (unsigned i = 0; i < c->n_out + c->n_in; i++) {
		const uint8_t *b = c->iov[i].iov_base;
		bool inside = false;
		for (unsigned r = 0; r < mem.nregions && !inside; r++) {
			const struct vd_region *reg = &mem.regions[r];
			inside = b >= reg->host && c->iov[i].iov_len <= reg->size &&
				 (uint64_t)(b - reg->host) <= reg->size - c->iov[i].iov_len;
		}
		if (!inside || !c->iov[i].iov_len)
			FAIL("raw: iovec %u (%p, %zu) outside guest memory or empty", i,
			     c->iov[i].iov_base, c->iov[i].iov_len);
	}
}

static void compare_with_model(enum vq_pop_result r, uint16_t head)
{
	struct vd_ref_chain ref;

	vd_ref_walk(&dq[RAW_Q], raw_vq.indirect, head, &ref, NULL, NULL);
	if (raw_chain.head != head)
		FAIL("raw: popped head %u, ring holds %u", raw_chain.head, head);
	if (ref.ok != (r == VQ_POP_OK))
		FAIL("raw: head %u: vq_pop %d (%s), model says %s", head, r,
		     vq_chain_error_str(raw_vq.faults.last_chain_error), ref.ok ? "ok" : "bad");
	stats.raw_ok += r == VQ_POP_OK;
	stats.raw_bad += r != VQ_POP_OK;
	if (r != VQ_POP_OK) {
		if (raw_chain.n_out || raw_chain.n_in || raw_chain.out_len || raw_chain.in_len)
			FAIL("raw: bad chain left pieces behind");
		return;
	}
	if (raw_chain.n_out != ref.n_out || raw_chain.n_in != ref.n_in ||
	    raw_chain.out_len != ref.out_len || raw_chain.in_len != ref.in_len)
		FAIL("raw: head %u: %u/%u pieces %llu/%llu bytes, model %u/%u %llu/%llu", head,
		     raw_chain.n_out, raw_chain.n_in, (unsigned long long)raw_chain.out_len,
		     (unsigned long long)raw_chain.in_len, ref.n_out, ref.n_in,
		     (unsigned long long)ref.out_len, (unsigned long long)ref.in_len);
	check_iov_bounds(&raw_chain);
	if (iov_length(raw_chain.iov, raw_chain.n_out) != raw_chain.out_len ||
	    iov_length(vq_chain_in(&raw_chain), raw_chain.n_in) != raw_chain.in_len)
		FAIL("raw: iovec lengths do not add up");
}

static void op_raw_pop(void)
{
	struct vd_queue *d = &dq[RAW_Q];
	bool was_poisoned = raw_vq.faults.poisoned != VQ_POISON_NONE;
	uint16_t last = raw_vq.last_avail_idx;
	uint16_t pending = (uint16_t)(avail_idx_of(d) - last);
	/* Taken and not yet used counts as outstanding too, and so does used
	 * but not yet published: the driver frees only what it has seen. */
	uint16_t outstanding = (uint16_t)(avail_idx_of(d) - raw_vq.published_idx);
	enum vq_pop_result r = vq_pop(&raw_vq, &raw_chain);

	raw_popped = false;
	if (was_poisoned || pending > d->size || outstanding > d->size) {
		stats.raw_poisoned++;
		if (r != VQ_POP_POISONED)
			FAIL("raw: pending %u of %u (poisoned %d) but vq_pop %d", pending, d->size,
			     was_poisoned, r);
		return;
	}
	if (pending == 0) {
		if (r != VQ_POP_EMPTY)
			FAIL("raw: nothing pending but vq_pop %d", r);
		return;
	}
	uint16_t head = d->avail->ring[last % d->size];
	if (head >= d->size) {
		if (r != VQ_POP_POISONED || raw_vq.faults.poisoned != VQ_POISON_HEAD_RANGE ||
		    raw_vq.last_avail_idx != last)
			FAIL("raw: head %u of %u but vq_pop %d", head, d->size, r);
		return;
	}
	if (raw_vq.last_avail_idx != (uint16_t)(last + 1))
		FAIL("raw: a pop did not take exactly one entry");
	compare_with_model(r, head);
	raw_popped = true;
	raw_head = head;
}

static void op_raw_push(struct fuzz_input *in)
{
	uint32_t len = (uint32_t)fuzz_take(in, 4);
	uint8_t how = (uint8_t)fuzz_take(in, 1);
	struct vd_queue *d = &dq[RAW_Q];

	if (how & 1) {
		/* A head the device never got: refused when out of range. */
		uint16_t h = (uint16_t)fuzz_take(in, 2);
		int r = vq_push(&raw_vq, h, len);
		if ((h >= d->size) != (r == -EINVAL))
			FAIL("raw: vq_push(%u) of %u returned %d", h, d->size, r);
		return;
	}
	if (!raw_popped)
		return;
	uint16_t slot = raw_vq.used_idx;
	if (vq_push(&raw_vq, raw_head, len))
		FAIL("raw: vq_push of a popped head failed");
	vq_publish(&raw_vq);
	if (__atomic_load_n(&d->used->idx, __ATOMIC_ACQUIRE) != raw_vq.used_idx)
		FAIL("raw: used->idx not published");
	struct vring_used_elem e = vd_raw_used(d, slot);
	if (e.id != raw_head || e.len != len)
		FAIL("raw: used element {%u, %u}, pushed {%u, %u}", e.id, e.len, raw_head, len);
	raw_popped = false;
}

static void op_raw_notify(struct fuzz_input *in)
{
	struct vd_queue *d = &dq[RAW_Q];

	if (fuzz_take(in, 1) & 1) {
		vq_disable_notify(&raw_vq);
		if (!raw_vq.event_idx && !(vd_used_flags(d) & VRING_USED_F_NO_NOTIFY))
			FAIL("raw: disable left kicks on");
		return;
	}
	bool more = vq_enable_notify(&raw_vq);
	bool expect = !raw_vq.faults.poisoned && avail_idx_of(d) != raw_vq.last_avail_idx;
	if (more != expect)
		FAIL("raw: enable_notify said %d, expected %d", more, expect);
	if (raw_vq.faults.poisoned)
		return;
	if (raw_vq.event_idx ? vd_avail_event(d) != raw_vq.last_avail_idx
			     : (vd_used_flags(d) & VRING_USED_F_NO_NOTIFY) != 0)
		FAIL("raw: enable_notify did not re-arm kicks");
}

static void op_raw_unpop(void)
{
	if (!raw_popped)
		return;
	vq_unpop(&raw_vq);
	raw_popped = false;
}

/* Device reset: the driver resets the device first (the device gives the
 * TX chains its backend kept back into the old rings), then lays its RX/TX
 * rings out afresh (same place, zeroed, same sizes) and negotiates again. */
static void op_reset(void)
{
	reset_device();
	for (unsigned q = 0; q < 2; q++) {
		struct vd_queue_opts o = {
			.size = dq[q].size, .event_idx = dq[q].event_idx,
			.desc_gpa = dq[q].desc_gpa, .avail_gpa = dq[q].avail_gpa,
			.used_gpa = dq[q].used_gpa,
		};
		vd_queue_destroy(&dq[q]);
		if (vd_queue_init(&dq[q], &mem, &o))
			FAIL("cannot lay out queue %u again", q);
	}
	bring_up_device(false);
}

static void run_op(struct fuzz_input *in)
{
	switch (fuzz_take(in, 1) % 20) {
	case 0: op_desc(in); break;
	case 1: op_avail(in); break;
	case 2: op_publish(in); break;
	case 3: op_kick(in); break;
	case 4: op_write(in); break;
	case 5: op_indirect(in); break;
	case 6: op_good_chain(in, NET_TX_QUEUE); break;
	case 7: op_good_chain(in, NET_RX_QUEUE); break;
	case 8: op_good_chain(in, RAW_Q); break;
	case 9: op_suppress(in); break;
	case 10: op_run_loop(); break;
	case 11: op_raw_pop(); break;
	case 12: op_raw_push(in); break;
	case 13: op_raw_notify(in); break;
	case 14: op_raw_unpop(); break;
	case 15: op_reset(); break;
	case 16: op_big_indirect(in); break;
	case 17: op_flood(in); break;
	case 18: op_offload_frame(in); break;
	default:
		/* Kick both, as a busy guest would. */
		op_good_chain(in, NET_RX_QUEUE);
		op_good_chain(in, NET_TX_QUEUE);
		if (net.vdev.active) {
			before_call();
			net.vdev.ops->queue_notify(&net.vdev, NET_TX_QUEUE);
			after_call();
		}
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fuzz_input in = { data, size };

	if (!ready) {
		if (init_world())
			FAIL("cannot set up guest memory and device");
		ready = true;
	}
	if (setup_input(&in) == 0) {
		for (unsigned n = 0; in.n && n < MAX_OPS; n++)
			run_op(&in);
	}
	teardown_input();
	return 0;
}
