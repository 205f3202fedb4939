/*
 * virtio-blk snapshot state, section "VBLK" (see virtio_blk.h): what the
 * guest was told of the drive (its serial, read-only, capacity) and the
 * rate limiter's buckets, as Firecracker persists a block device. The
 * image itself is not in the snapshot: the restore reopens it at its path
 * (machine/device_config_state.h) and this section checks it is the one
 * the guest knows. Parsed into a local copy and checked whole before
 * anything of the device changes. Loop thread, the device paused.
 */
#include <string.h>

#include "blk/virtio_blk.h"
#include "core/compiler.h"
#include "core/state_io.h"

#define VBLK_TAG "VBLK"
/* Debt a bucket may carry: a charge of one request's data beyond empty. */
#define VBLK_MAX_DEBT ((int64_t)VIRTIO_BLK_SIZE_MAX * VIRTIO_BLK_SEG_MAX)

struct bucket_state {
	struct token_bucket_config cfg;
	int64_t budget;
	uint64_t burst;
	uint64_t age_ns;                 /* since the refill was credited */
};

struct blk_state {
	char serial[BLK_SERIAL_LEN];
	bool read_only;
	uint64_t sectors;
	struct bucket_state bw, ops;
};

static struct virtio_blk *to_blk(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_blk, vdev);
}

/* --- saving ------------------------------------------------------------------ */

/* A bucket's refill time relative to now: the new process's monotonic
 * clock has nothing to do with this one's. */
static void save_bucket(const struct token_bucket *tb, uint64_t now, struct state_writer *w)
{
	state_put_u64(w, tb->cfg.size);
	state_put_u64(w, tb->cfg.one_time_burst);
	state_put_u64(w, tb->cfg.refill_time);
	state_put_u64(w, (uint64_t)tb->budget);
	state_put_u64(w, tb->burst);
	state_put_u64(w, now > tb->last_ns ? now - tb->last_ns : 0);
}

int virtio_blk_save_state(struct virtio_device *vdev, struct state_writer *w, struct errbuf *eb)
{
	struct virtio_blk *blk = to_blk(vdev);
	const struct rate_limiter *rl = &blk->limiter;

	/* What the guest was told is written reaches the disk with the
	 * snapshot: a restore elsewhere (or after a host crash) finds it. */
	int r = blk_image_flush(blk->img);
	if (r < 0) {
		errbuf_set(eb, "drive %.20s: flushing its image: %s", blk->img->serial, strerror(-r));
		return r;
	}
	state_begin(w, VBLK_TAG);
	state_put_bytes(w, blk->img->serial, sizeof(blk->img->serial));
	state_put_bool(w, blk->img->read_only);
	state_put_u64(w, blk->img->sectors);
	pause_gate_lock(&blk->gate);
	uint64_t now = rl->clock->now_ns(rl->clock);
	save_bucket(&rl->bw, now, w);
	save_bucket(&rl->ops, now, w);
	pause_gate_unlock(&blk->gate);
	state_end(w);
	return 0;
}

/* --- parsing ------------------------------------------------------------------- */

static void read_bucket(struct state_reader *sec, struct bucket_state *b)
{
	b->cfg.size = state_get_u64(sec);
	b->cfg.one_time_burst = state_get_u64(sec);
	b->cfg.refill_time = state_get_u64(sec);
	b->budget = (int64_t)state_get_u64(sec);
	b->burst = state_get_u64(sec);
	b->age_ns = state_get_u64(sec);
}

/* At most full, at most one request's debt, the burst at most its start. */
static bool check_bucket(struct state_reader *sec, const char *what, const struct bucket_state *b)
{
	int64_t size = (int64_t)b->cfg.size;

	if (b->budget > size || b->budget < -size - VBLK_MAX_DEBT)
		return state_fail(sec, "%s bucket: %lld tokens in a bucket of %llu", what,
				  (long long)b->budget, (unsigned long long)b->cfg.size);
	if (b->burst > b->cfg.one_time_burst)
		return state_fail(sec, "%s bucket: burst %llu left of %llu", what,
				  (unsigned long long)b->burst,
				  (unsigned long long)b->cfg.one_time_burst);
	return true;
}

static bool check_limiter(struct state_reader *sec, const struct blk_state *s)
{
	struct rate_limiter_config cfg = { .bandwidth = s->bw.cfg, .ops = s->ops.cfg };

	if (!rate_limiter_config_valid(&cfg))
		return state_fail(sec, "the rate limiter is out of range");
	return check_bucket(sec, "bandwidth", &s->bw) && check_bucket(sec, "ops", &s->ops);
}

/* The drive built here is the one the guest knows: same serial, same
 * read-only setting (the negotiated features depend on it), same size. */
static bool check_drive(struct state_reader *sec, const struct virtio_blk *blk,
			const struct blk_state *s)
{
	const struct blk_image *img = blk->img;

	if (memcmp(s->serial, img->serial, sizeof(s->serial)))
		return state_fail(sec, "the snapshot's drive is \"%.20s\", this one \"%.20s\"",
				  s->serial, img->serial);
	if (s->read_only != img->read_only)
		return state_fail(sec, "drive %.20s was %s, this one is %s", s->serial,
				  s->read_only ? "read-only" : "writable",
				  img->read_only ? "read-only" : "writable");
	if (s->sectors != img->sectors)
		return state_fail(sec, "drive %.20s had %llu sectors, its image now has %llu: it is "
				  "not the image the snapshot was taken with", s->serial,
				  (unsigned long long)s->sectors, (unsigned long long)img->sectors);
	return true;
}

static bool parse_body(struct state_reader *sec, const struct virtio_blk *blk,
		       struct blk_state *s)
{
	state_get_bytes(sec, s->serial, sizeof(s->serial));
	s->read_only = state_get_bool(sec);
	s->sectors = state_get_u64(sec);
	read_bucket(sec, &s->bw);
	read_bucket(sec, &s->ops);
	return !sec->failed && check_drive(sec, blk, s) && check_limiter(sec, s);
}

/* --- applying ------------------------------------------------------------------ */

static void apply_bucket(struct token_bucket *tb, const struct bucket_state *b, uint64_t now)
{
	tb->cfg = b->cfg;
	tb->budget = b->budget;
	tb->burst = b->burst;
	tb->last_ns = now - MIN(b->age_ns, now);
}

bool virtio_blk_load_state(struct virtio_device *vdev, struct state_reader *r)
{
	struct virtio_blk *blk = to_blk(vdev);
	struct state_reader sec;
	struct blk_state s;

	memset(&s, 0, sizeof(s));
	if (!state_section(r, VBLK_TAG, &sec))
		return false;
	parse_body(&sec, blk, &s);
	if (!state_section_done(r, &sec))
		return false;
	/* Not blocked: a request that waited is popped again at resume and
	 * waits anew, with its timer, if the tokens are still short. */
	pause_gate_lock(&blk->gate);
	uint64_t now = blk->limiter.clock->now_ns(blk->limiter.clock);
	apply_bucket(&blk->limiter.bw, &s.bw, now);
	apply_bucket(&blk->limiter.ops, &s.ops, now);
	blk->limiter.blocked = false;
	pause_gate_unlock(&blk->gate);
	return true;
}
