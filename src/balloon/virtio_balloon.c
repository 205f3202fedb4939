/* virtio-balloon (see virtio_balloon.h). Order: inflate and deflate, the
 * statistics exchange, the drains, the device operations, the API's
 * changes, set-up. */
#include "balloon/virtio_balloon.h"

#include <errno.h>
#include <string.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "core/byteorder.h"
#include "core/compiler.h"
#include "core/log.h"

#define BALLOON_RING_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) | \
			       (1ull << VIRTIO_RING_F_INDIRECT_DESC))
#define PFN_BYTES 4u
#define STAT_BYTES 10u        /* struct virtio_balloon_stat: le16 tag, le64 val, packed */
#define PAGE_BYTES (1ull << VIRTIO_BALLOON_PFN_SHIFT)
/* Config space: num_pages and actual. No hinting or poisoning is offered,
 * so the driver reads nothing past them. */
#define BALLOON_CONFIG_SIZE 8u
#define NS_PER_S 1000000000ull

/* A wake-up's work before other work gets its turn: 64 chains of up to
 * 256 pages, one madvise per run of pages. */
static const struct vq_budget balloon_budget = { .chains = 64, .bytes = UINT64_MAX };

static struct virtio_balloon *to_balloon(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_balloon, vdev);
}

/* --- inflate and deflate -------------------------------------------------------- */

/* A chain of PFNs: driver-readable only, whole PFNs, not too many. */
static bool pfn_chain_valid(const struct vq_chain *c, enum vq_pop_result r)
{
	return r == VQ_POP_OK && !c->n_in && c->out_len % PFN_BYTES == 0 &&
	       c->out_len <= VIRTIO_BALLOON_MAX_PFNS * PFN_BYTES;
}

/* Release the run [gpa, gpa + pages pages); a refusal is counted. */
static void release_run(struct virtio_balloon *b, uint64_t gpa, uint64_t pages)
{
	if (!pages)
		return;
	int r = guest_mem_discard(b->vdev.mem, gpa, pages * PAGE_BYTES);
	if (r < 0) {
		if (!b->counters.tx_discard_failed++)
			log_warn("virtio-balloon: pages at 0x%llx not released: %s",
				 (unsigned long long)gpa, strerror(-r));
		return;
	}
	b->counters.rx_inflate_pages += pages;
}

/* Release the pages the PFNs in @c name, consecutive ones as one run; a
 * PFN outside guest RAM is counted and skipped. Every page is checked
 * (guest_mem_ptr) before it joins a run, so a run never leaves a region. */
static void inflate_pfns(struct virtio_balloon *b, struct vq_chain *c)
{
	uint8_t raw[VIRTIO_BALLOON_MAX_PFNS * PFN_BYTES];
	size_t n = iov_to_buf(c->iov, c->n_out, 0, raw, (size_t)c->out_len) / PFN_BYTES;
	uint64_t start = 0, pages = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t gpa = (uint64_t)get_le32(raw + i * PFN_BYTES) << VIRTIO_BALLOON_PFN_SHIFT;
		if (pages && gpa == start + pages * PAGE_BYTES &&
		    guest_mem_ptr(b->vdev.mem, start, (pages + 1) * PAGE_BYTES)) {
			pages++;
			continue;
		}
		release_run(b, start, pages);
		pages = 0;
		if (!guest_mem_ptr(b->vdev.mem, gpa, PAGE_BYTES)) {
			b->counters.rx_inflate_pfns_invalid++;
			continue;
		}
		start = gpa;
		pages = 1;
	}
	release_run(b, start, pages);
}

static enum vq_verdict inflate_chain(void *ctx, struct vq_chain *c, enum vq_pop_result r,
				     uint64_t *bytes)
{
	struct virtio_balloon *b = ctx;

	if (!pfn_chain_valid(c, r)) {
		b->counters.rx_chains_invalid++;
	} else {
		b->counters.rx_inflate_chains++;
		inflate_pfns(b, c);
	}
	vq_push(&b->vqs[BALLOON_INFLATE_Q], c->head, 0);
	return VQ_CONSUMED;
}

/* The pages come back on the guest's next touch: nothing to do but count. */
static enum vq_verdict deflate_chain(void *ctx, struct vq_chain *c, enum vq_pop_result r,
				     uint64_t *bytes)
{
	struct virtio_balloon *b = ctx;

	if (!pfn_chain_valid(c, r)) {
		b->counters.rx_chains_invalid++;
	} else {
		b->counters.rx_deflate_chains++;
		b->counters.rx_deflate_pages += c->out_len / PFN_BYTES;
	}
	vq_push(&b->vqs[BALLOON_DEFLATE_Q], c->head, 0);
	return VQ_CONSUMED;
}

/* --- statistics ---------------------------------------------------------------- */

static const char *const stat_names[VIRTIO_BALLOON_STAT_TAGS] = {
	"swap_in", "swap_out", "major_faults", "minor_faults", "free_memory",
	"total_memory", "available_memory", "disk_caches", "hugetlb_allocations",
	"hugetlb_failures", "oom_kill", "alloc_stall", "async_scan", "direct_scan",
	"async_reclaim", "direct_reclaim",
};

const char *virtio_balloon_stat_name(unsigned tag)
{
	return tag < VIRTIO_BALLOON_STAT_TAGS ? stat_names[tag] : NULL;
}

/* The entries of one buffer into b->stats; unknown tags counted. */
static void read_stats(struct virtio_balloon *b, struct vq_chain *c)
{
	uint8_t raw[VIRTIO_BALLOON_MAX_STATS * STAT_BYTES];
	size_t n = iov_to_buf(c->iov, c->n_out, 0, raw, sizeof(raw)) / STAT_BYTES;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = raw + i * STAT_BYTES;
		unsigned tag = (unsigned)e[0] | (unsigned)e[1] << 8;
		if (tag >= VIRTIO_BALLOON_STAT_TAGS) {
			b->counters.rx_stats_invalid++;
			continue;
		}
		b->stats.val[tag] = (uint64_t)get_le32(e + 2) | (uint64_t)get_le32(e + 6) << 32;
		b->stats.seen |= 1u << tag;
	}
}

/* Hand the held buffer back: the driver fills it anew (spec 5.5.6.3). */
static void stats_return(struct virtio_balloon *b)
{
	if (!b->stats_held)
		return;
	b->stats_held = false;
	vq_push(&b->vqs[BALLOON_STATS_Q], b->stats_head, 0);
	virtio_device_publish(&b->vdev, BALLOON_STATS_Q);
}

static enum vq_verdict stats_chain(void *ctx, struct vq_chain *c, enum vq_pop_result r,
				   uint64_t *bytes)
{
	struct virtio_balloon *b = ctx;

	if (r != VQ_POP_OK || c->n_in) {
		b->counters.rx_chains_invalid++;
		vq_push(&b->vqs[BALLOON_STATS_Q], c->head, 0);
		return VQ_CONSUMED;
	}
	/* One buffer at a time; a driver that sends another gets the first
	 * one back, as Firecracker does. */
	if (b->stats_held) {
		b->counters.rx_stats_invalid++;
		vq_push(&b->vqs[BALLOON_STATS_Q], b->stats_head, 0);
	}
	b->counters.rx_stats_updates++;
	if (c->out_len > VIRTIO_BALLOON_MAX_STATS * STAT_BYTES)
		b->counters.rx_stats_invalid++;      /* kept, so the exchange goes on */
	else
		read_stats(b, c);
	b->stats_held = true;
	b->stats_head = c->head;
	return VQ_CONSUMED;
}

static void arm_stats_timer(struct virtio_balloon *b);

static void on_stats_timer(struct event_timer *t)
{
	struct virtio_balloon *b = container_of(t, struct virtio_balloon, stats_timer);

	/* Paused: nothing goes into guest memory; resume arms it again. */
	if (!virtio_device_running(&b->vdev))
		return;
	stats_return(b);
	arm_stats_timer(b);
}

static void arm_stats_timer(struct virtio_balloon *b)
{
	if (b->stats_interval_s && virtio_device_has(&b->vdev, VIRTIO_BALLOON_F_STATS_VQ))
		event_loop_timer_arm(b->vdev.loop, &b->stats_timer, on_stats_timer,
				     (uint64_t)b->stats_interval_s * NS_PER_S);
}

/* --- the drains ---------------------------------------------------------------- */

static const vq_chain_handler handlers[BALLOON_MAX_Q] = {
	[BALLOON_INFLATE_Q] = inflate_chain,
	[BALLOON_DEFLATE_Q] = deflate_chain,
	[BALLOON_STATS_Q] = stats_chain,
};

static void on_more_work(struct event_deferred *d);

/* Queue @q's chains up to the budget; one interrupt a drain. True when
 * the budget stopped it. */
static bool drain_queue(struct virtio_balloon *b, unsigned q)
{
	struct virtqueue *vq = virtio_device_vq(&b->vdev, q);

	if (!vq || !vq->started || q >= BALLOON_MAX_Q)
		return false;
	enum vq_drain_result r = vq_drain(vq, &b->chain, &balloon_budget, handlers[q], b);
	virtio_device_publish(&b->vdev, q);
	if (r == VQ_DRAIN_POISONED) {
		if (vq_poison_is_new(vq))
			b->counters.rx_queue_poisoned++;
		virtio_device_mark_broken(&b->vdev, q);
	}
	return r == VQ_DRAIN_BUDGET;
}

static void balloon_drain(struct virtio_balloon *b)
{
	bool more = false;

	if (!virtio_device_running(&b->vdev))
		return;
	for (unsigned q = 0; q < b->vdev.num_queues; q++)
		more |= drain_queue(b, q);
	if (more)
		event_loop_defer(b->vdev.loop, &b->more_work, on_more_work);
}

static void on_more_work(struct event_deferred *d)
{
	balloon_drain(container_of(d, struct virtio_balloon, more_work));
}

/* --- device operations ---------------------------------------------------------- */

static uint64_t balloon_features(struct virtio_device *vdev)
{
	return to_balloon(vdev)->offered;
}

/* The statistics queue exists only when its feature was taken. */
static int balloon_set_features(struct virtio_device *vdev, uint64_t features)
{
	vdev->num_queues = (features >> VIRTIO_BALLOON_F_STATS_VQ) & 1 ? 3 : 2;
	return 0;
}

static void balloon_config_read(struct virtio_device *vdev, void *config)
{
	struct virtio_balloon *b = to_balloon(vdev);
	uint8_t *p = config;

	for (unsigned i = 0; i < 4; i++) {
		p[i] = (uint8_t)(b->num_pages >> (8 * i));
		p[4 + i] = (uint8_t)(b->actual >> (8 * i));
	}
}

/* The driver owns actual (bytes 4..7); num_pages is the device's. Writes
 * of any width land byte by byte (bounds checked by the core). */
static void balloon_config_write(struct virtio_device *vdev, uint32_t offset, const void *data,
				 uint32_t len)
{
	struct virtio_balloon *b = to_balloon(vdev);
	const uint8_t *p = data;

	for (uint32_t i = 0; i < len; i++) {
		uint32_t at = offset + i;
		if (at < 4)
			continue;
		unsigned shift = 8 * (at - 4);
		b->actual = (b->actual & ~(0xffu << shift)) | (uint32_t)p[i] << shift;
	}
}

static int balloon_activate(struct virtio_device *vdev)
{
	struct virtio_balloon *b = to_balloon(vdev);

	arm_stats_timer(b);
	balloon_drain(b);      /* buffers queued before DRIVER_OK */
	return 0;
}

static void balloon_queue_notify(struct virtio_device *vdev, unsigned q)
{
	balloon_drain(to_balloon(vdev));
}

/* A new driver starts from nothing: it holds no pages, sends new stats. */
static void balloon_reset(struct virtio_device *vdev)
{
	struct virtio_balloon *b = to_balloon(vdev);

	event_loop_cancel(vdev->loop, &b->more_work);
	event_loop_timer_cancel(vdev->loop, &b->stats_timer);
	b->stats_held = false;
	b->actual = 0;
	memset(&b->stats, 0, sizeof(b->stats));
}

static void balloon_resume(struct virtio_device *vdev)
{
	struct virtio_balloon *b = to_balloon(vdev);

	if (!event_timer_armed(&b->stats_timer))
		arm_stats_timer(b);
	balloon_drain(b);
}

static void balloon_visit_counters(struct virtio_device *vdev, const struct counter_sink *sink)
{
	counters_visit(&virtio_balloon_counter_set, &to_balloon(vdev)->counters, "", sink);
}

#define X(name, doc) COUNTER_DESC(struct virtio_balloon_counters, name, doc)
const struct counter_set virtio_balloon_counter_set =
	COUNTER_SET("virtio_balloon", VIRTIO_BALLOON_COUNTERS(X));
#undef X

static const struct virtio_device_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.config_size = BALLOON_CONFIG_SIZE,
	.features = balloon_features,
	.set_features = balloon_set_features,
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.activate = balloon_activate,
	.queue_notify = balloon_queue_notify,
	.reset = balloon_reset,
	.resume = balloon_resume,
	.visit_counters = balloon_visit_counters,
	.save_state = virtio_balloon_save_state,
	.load_state = virtio_balloon_load_state,
};

/* --- the API's changes ----------------------------------------------------------- */

/* @amount_mib as pages, when guest RAM holds that much. */
static int target_pages(const struct virtio_balloon *b, uint32_t amount_mib, uint32_t *pages)
{
	if ((uint64_t)amount_mib << 20 > b->mem_bytes)
		return -EINVAL;
	*pages = amount_mib * VIRTIO_BALLOON_PAGES_PER_MIB;   /* RAM is below 16 TiB */
	return 0;
}

int virtio_balloon_set_target(struct virtio_balloon *b, uint32_t amount_mib)
{
	uint32_t pages;

	if (!b->vdev.active)
		return -EAGAIN;
	if (target_pages(b, amount_mib, &pages) < 0)
		return -EINVAL;
	b->num_pages = pages;
	virtio_device_config_changed(&b->vdev);   /* spec 5.5.6: the driver rereads */
	return 0;
}

int virtio_balloon_set_stats_interval(struct virtio_balloon *b, uint16_t interval_s)
{
	if (interval_s == b->stats_interval_s)
		return 0;
	if (!interval_s || !b->stats_interval_s)
		return -EPERM;
	b->stats_interval_s = interval_s;
	if (!virtio_device_running(&b->vdev))
		return 0;
	stats_return(b);
	arm_stats_timer(b);
	return 0;
}

/* --- set-up -------------------------------------------------------------------- */

int virtio_balloon_init(struct virtio_balloon *b, struct event_loop *loop,
			const struct virtio_balloon_opts *opts, uint64_t mem_bytes)
{
	memset(b, 0, sizeof(*b));
	b->mem_bytes = mem_bytes;
	if (target_pages(b, opts->amount_mib, &b->num_pages) < 0)
		return -EINVAL;
	b->stats_interval_s = opts->stats_polling_interval_s;
	b->offered = BALLOON_RING_FEATURES;
	if (opts->deflate_on_oom)
		b->offered |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	/* Spec 5.5.2: the statistics queue exists only with its feature. */
	if (b->stats_interval_s)
		b->offered |= 1ull << VIRTIO_BALLOON_F_STATS_VQ;
	b->vdev.ops = &balloon_ops;
	b->vdev.loop = loop;
	b->vdev.vqs = b->vqs;
	b->vdev.max_queues = b->stats_interval_s ? 3 : 2;
	b->vdev.num_queues = b->vdev.max_queues;
	for (unsigned q = 0; q < BALLOON_MAX_Q; q++)
		vq_reset(&b->vqs[q]);
	return 0;
}

void virtio_balloon_destroy(struct virtio_balloon *b)
{
	event_loop_cancel(b->vdev.loop, &b->more_work);
	event_loop_timer_cancel(b->vdev.loop, &b->stats_timer);
}
