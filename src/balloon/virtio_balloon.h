/*
 * virtio-balloon (virtio 1.2, 5.5; Firecracker's balloon device): the host
 * sets a target (num_pages in config space, 4 KiB pages), the guest's
 * driver gives that many pages back through the inflate queue and takes
 * them again through the deflate queue, and writes how many it holds in
 * config space (actual).
 *
 * Inflate: a chain is one driver-readable array of 32-bit page frame
 * numbers (4 KiB units, VIRTIO_BALLOON_PFN_SHIFT), at most
 * VIRTIO_BALLOON_MAX_PFNS of them (Linux sends 256 at most). Each PFN is
 * checked against guest RAM: one outside it is counted and skipped, never
 * touched; runs of consecutive PFNs are released in one
 * guest_mem_discard (the guest reads zeros from them later). A chain with
 * a driver-writable part, a length that is not whole PFNs or too many is
 * completed with 0 and counted, unused. Deflate: the chains are completed
 * (a page comes back to the guest on its next touch, nothing to do).
 *
 * Statistics (VIRTIO_BALLOON_F_STATS_VQ, offered when the polling interval
 * is above 0, and then a third queue): the driver gives one buffer of
 * {le16 tag, le64 value} entries (packed, 10 bytes each) and the device
 * keeps it; every interval the device completes it, and the driver fills
 * it anew and gives it back. Values of tags the device does not know are
 * counted and dropped; a buffer longer than VIRTIO_BALLOON_MAX_STATS
 * entries is kept (so the exchange goes on) but not read.
 *
 * VIRTIO_BALLOON_F_DEFLATE_ON_OOM is offered when configured: the guest may
 * then take pages back under memory pressure. No page hinting or reporting.
 * Everything runs on the device's loop (the polling timer too). A
 * snapshot saves the target, actual, the statistics and the buffer kept
 * (virtio_balloon_state.c); the restored device polls again from resume.
 */
#ifndef KVMINI_BALLOON_VIRTIO_BALLOON_H
#define KVMINI_BALLOON_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/counters.h"
#include "core/event_loop.h"
#include "virtio/device.h"
#include "virtio/virtqueue.h"

/* Most PFNs one inflate or deflate chain may carry (Firecracker's
 * MAX_PAGES_IN_DESC, Linux's VIRTIO_BALLOON_ARRAY_PFNS_MAX). */
#define VIRTIO_BALLOON_MAX_PFNS 256u
/* Most statistics entries read from one buffer (Firecracker's bound). */
#define VIRTIO_BALLOON_MAX_STATS 256u
/* Tags known: Linux's VIRTIO_BALLOON_S_SWAP_IN (0) .. _S_DIRECT_RECLAIM (15). */
#define VIRTIO_BALLOON_STAT_TAGS 16u
#define VIRTIO_BALLOON_PAGES_PER_MIB 256u

enum { BALLOON_INFLATE_Q = 0, BALLOON_DEFLATE_Q = 1, BALLOON_STATS_Q = 2, BALLOON_MAX_Q = 3 };

/* rx: from the driver. Firecracker's metric names (api_metrics.c) sum these;
 * its activate_fails is the transport's (mmio_rx_device_activate_failed). */
#define VIRTIO_BALLOON_COUNTERS(X) \
	X(rx_inflate_chains,      "inflate buffers taken (Firecracker's inflate_count)") \
	X(rx_inflate_pages,       "pages the guest gave back, released to the host") \
	X(rx_inflate_pfns_invalid, "PFNs outside guest RAM: skipped, never touched") \
	X(tx_discard_failed,      "page runs the host would not release (madvise failed)") \
	X(rx_deflate_chains,      "deflate buffers taken (Firecracker's deflate_count)") \
	X(rx_deflate_pages,       "pages the guest took back") \
	X(rx_stats_updates,       "statistics buffers taken (Firecracker's stats_updates_count)") \
	X(rx_stats_invalid,       "statistics entries of unknown tags, buffers too long or " \
				  "extra (Firecracker's stats_update_fails)") \
	X(rx_chains_invalid,      "chains refused (malformed, driver-writable, not whole PFNs, " \
				  "too many): completed unused") \
	X(rx_queue_poisoned,      "times a queue was found broken (NEEDS_RESET)")

struct virtio_balloon_counters {
	VIRTIO_BALLOON_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set virtio_balloon_counter_set;

struct virtio_balloon_opts {
	uint32_t amount_mib;              /* the first target */
	bool deflate_on_oom;
	uint16_t stats_polling_interval_s; /* 0: no statistics queue */
};

/* The last statistics the guest sent, with the tags it sent. */
struct virtio_balloon_stats {
	uint32_t seen;                    /* bit per tag below VIRTIO_BALLOON_STAT_TAGS */
	uint64_t val[VIRTIO_BALLOON_STAT_TAGS];
};

struct virtio_balloon {
	struct virtio_device vdev;
	struct virtqueue vqs[BALLOON_MAX_Q];
	struct vq_chain chain;
	uint64_t mem_bytes;               /* guest RAM: a target above it is refused */
	uint64_t offered;                 /* features, fixed by the options */
	uint16_t stats_interval_s;
	uint32_t num_pages;               /* the target (config space, device-owned) */
	uint32_t actual;                  /* what the driver says it holds */
	bool stats_held;                  /* the driver's statistics buffer, kept */
	uint16_t stats_head;
	struct virtio_balloon_stats stats;
	struct event_timer stats_timer;
	struct event_deferred more_work;  /* a drain stopped by its budget goes on */
	struct virtio_balloon_counters counters;   /* loop thread only */
};

/* Set up @b on @loop for a guest of @mem_bytes. 0, or -EINVAL for a
 * target above guest RAM. */
int virtio_balloon_init(struct virtio_balloon *b, struct event_loop *loop,
			const struct virtio_balloon_opts *opts, uint64_t mem_bytes);
/* After the transport has let go of the device (it is reset). */
void virtio_balloon_destroy(struct virtio_balloon *b);

/* PATCH /balloon: a new target, the driver told with a config interrupt.
 * 0, -EAGAIN before the driver activated the device (Firecracker's rule),
 * -EINVAL above guest RAM. */
int virtio_balloon_set_target(struct virtio_balloon *b, uint32_t amount_mib);
/* PATCH /balloon/statistics: a new interval. 0, or -EPERM to switch the
 * statistics on or off (only the interval may change after the start).
 * A held buffer is completed at once, so new values come now. */
int virtio_balloon_set_stats_interval(struct virtio_balloon *b, uint16_t interval_s);

static inline bool virtio_balloon_stats_enabled(const struct virtio_balloon *b)
{
	return b->stats_interval_s > 0;
}

/* The statistic names of Firecracker's BalloonStats, by tag. */
const char *virtio_balloon_stat_name(unsigned tag);

/* Snapshot state (struct virtio_device_ops .save_state and .load_state;
 * virtio_balloon_state.c): section "VBAL" with the target, actual, the
 * statistics interval, the last statistics and the buffer kept. */
int virtio_balloon_save_state(struct virtio_device *vdev, struct state_writer *w,
			      struct errbuf *eb);
bool virtio_balloon_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
			       struct state_reader *r);

#endif
