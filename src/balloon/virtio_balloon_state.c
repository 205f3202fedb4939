/*
 * virtio-balloon snapshot state, section "VBAL" (see virtio_balloon.h):
 * what Firecracker persists of its balloon. The target (num_pages) and
 * what the driver says it holds (actual), the statistics interval as
 * PATCH left it, the statistics last received, and the statistics buffer
 * the device keeps between polls. Parsed into a local copy and checked
 * whole (against guest RAM and the core's "VDEV", parsed before it)
 * before anything of the device changes. Loop thread, the device paused
 * or never activated.
 *
 * The statistics buffer is not a chain the core holds (vq_hold): the
 * device completed its pop and keeps only the head until the next poll,
 * so "VDEV" counts it as taken and not used, and the guest's driver waits
 * for it back before it sends statistics again. It is saved as that head
 * (Firecracker's stats_desc_index), and the restored device hands it back
 * at its first poll after resume: the driver refills it and the exchange
 * goes on. Saved as not taken instead, it would be popped again from the
 * avail ring, which is only right while it is the last chain the queue
 * gave, and a driver may send a malformed chain after it.
 *
 * Memory the guest gave to the balloon was released (guest_mem_discard)
 * and reads as zeros; a Full snapshot's memory file keeps zero pages as
 * holes (ram_file.c), a Diff writes them (a discard marks its pages
 * dirty), so the restored guest reads zeros there too. The device keeps
 * no list of those pages (only the count the driver reports): nothing
 * here depends on their contents, and the guest's driver, which knows
 * them, takes them back on a deflate as after any release.
 */
#include <string.h>
#include <linux/virtio_balloon.h>

#include "balloon/virtio_balloon.h"
#include "core/compiler.h"
#include "core/state_io.h"
#include "virtio/device_state.h"

#define VBAL_TAG "VBAL"
/* The flags word: the bits a state may carry. */
#define VBAL_STATS_HELD 1u
#define VBAL_FLAGS_KNOWN VBAL_STATS_HELD
#define VBAL_STAT_TAGS_MASK ((1u << VIRTIO_BALLOON_STAT_TAGS) - 1)

struct balloon_state {
	uint32_t num_pages;
	uint32_t actual;
	uint16_t stats_interval_s;
	uint32_t flags;
	uint16_t stats_head;
	struct virtio_balloon_stats stats;
};

static struct virtio_balloon *to_balloon(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_balloon, vdev);
}

/* --- saving ------------------------------------------------------------------ */

int virtio_balloon_save_state(struct virtio_device *vdev, struct state_writer *w,
			      struct errbuf *eb)
{
	struct virtio_balloon *b = to_balloon(vdev);

	state_begin(w, VBAL_TAG);
	state_put_u32(w, b->num_pages);
	state_put_u32(w, b->actual);
	state_put_u16(w, b->stats_interval_s);
	state_put_u32(w, b->stats_held ? VBAL_STATS_HELD : 0);
	state_put_u16(w, b->stats_held ? b->stats_head : 0);
	state_put_u32(w, b->stats.seen);
	for (unsigned t = 0; t < VIRTIO_BALLOON_STAT_TAGS; t++)
		state_put_u64(w, b->stats.val[t]);
	state_end(w);
	return 0;
}

/* --- parsing ------------------------------------------------------------------- */

static void read_body(struct state_reader *sec, struct balloon_state *s)
{
	s->num_pages = state_get_u32(sec);
	s->actual = state_get_u32(sec);
	s->stats_interval_s = state_get_u16(sec);
	s->flags = state_get_u32(sec);
	s->stats_head = state_get_u16(sec);
	s->stats.seen = state_get_u32(sec);
	for (unsigned t = 0; t < VIRTIO_BALLOON_STAT_TAGS; t++)
		s->stats.val[t] = state_get_u64(sec);
}

/* The target is set in MiB and never above guest RAM (target_pages).
 * actual is not checked: it is whatever the driver wrote, which the live
 * device took as it came (it only reports it), so a state holding it
 * must load. */
static bool check_target(struct state_reader *sec, const struct virtio_balloon *b,
			 const struct balloon_state *s)
{
	uint64_t ram_pages = b->mem_bytes >> VIRTIO_BALLOON_PFN_SHIFT;

	if (s->num_pages > ram_pages)
		return state_fail(sec, "a target of %u pages, beyond guest memory's %llu",
				  s->num_pages, (unsigned long long)ram_pages);
	if (s->num_pages % VIRTIO_BALLOON_PAGES_PER_MIB)
		return state_fail(sec, "a target of %u pages, not whole MiB", s->num_pages);
	return true;
}

/* Statistics on or off is what the device offers (its configuration,
 * "DEVL" or the command line's); the interval may differ (PATCH). */
static bool check_stats(struct state_reader *sec, const struct virtio_balloon *b,
			const struct balloon_state *s)
{
	if (!s->stats_interval_s != !b->stats_interval_s)
		return state_fail(sec, "statistics every %u s, this balloon %s", s->stats_interval_s,
				  b->stats_interval_s ? "polls them" : "has none");
	if (s->flags & ~VBAL_FLAGS_KNOWN)
		return state_fail(sec, "unknown flags 0x%x", s->flags & ~VBAL_FLAGS_KNOWN);
	if (s->stats.seen & ~VBAL_STAT_TAGS_MASK)
		return state_fail(sec, "statistics of unknown tags (0x%x)",
				  s->stats.seen & ~VBAL_STAT_TAGS_MASK);
	return true;
}

/* A statistics buffer kept is one the statistics queue of @core took and
 * has not used: the queue exists (negotiated, active), and the head is
 * one of its descriptors. */
static bool check_held(struct state_reader *sec, const struct virtio_device_state *core,
		       const struct balloon_state *s)
{
	if (!(s->flags & VBAL_STATS_HELD))
		return true;
	if (!core->active || core->num_queues <= BALLOON_STATS_Q ||
	    !(core->features & (1ull << VIRTIO_BALLOON_F_STATS_VQ)))
		return state_fail(sec, "a statistics buffer kept without a statistics queue");
	const struct vq_state *q = &core->q[BALLOON_STATS_Q];
	if (s->stats_head >= q->cfg.size)
		return state_fail(sec, "the statistics buffer kept is descriptor %u of a queue of %u",
				  s->stats_head, q->cfg.size);
	if (q->cfg.base == q->used_idx)
		return state_fail(sec, "a statistics buffer kept, but its queue has none taken");
	return true;
}

static bool parse_body(struct state_reader *sec, const struct virtio_balloon *b,
		       const struct virtio_device_state *core, struct balloon_state *s)
{
	read_body(sec, s);
	return !sec->failed && check_target(sec, b, s) && check_stats(sec, b, s) &&
	       check_held(sec, core, s);
}

/* --- applying ------------------------------------------------------------------ */

/* The polling timer is not saved: activation arms it (the core activates
 * the restored device, paused, where a tick does nothing), and resume
 * arms it again if it ran out meanwhile, a whole interval from then. */
bool virtio_balloon_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
			       struct state_reader *r)
{
	struct virtio_balloon *b = to_balloon(vdev);
	struct state_reader sec;
	struct balloon_state s;

	memset(&s, 0, sizeof(s));
	if (!state_section(r, VBAL_TAG, &sec))
		return false;
	parse_body(&sec, b, core, &s);
	if (!state_section_done(r, &sec))
		return false;
	b->num_pages = s.num_pages;
	b->actual = s.actual;
	b->stats_interval_s = s.stats_interval_s;
	b->stats_held = s.flags & VBAL_STATS_HELD;
	b->stats_head = s.stats_head;
	b->stats = s.stats;
	return true;
}
