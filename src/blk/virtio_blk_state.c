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
#include "core/rate_limiter_state.h"
#include "core/state_io.h"

#define VBLK_TAG "VBLK"
/* Debt a bucket may carry: a charge of one request's data beyond empty. */
#define VBLK_MAX_DEBT ((int64_t)VIRTIO_BLK_SIZE_MAX * VIRTIO_BLK_SEG_MAX)

struct blk_state {
	char serial[BLK_SERIAL_LEN];
	bool read_only;
	uint64_t sectors;
	struct rate_limiter_state limiter;
};

static struct virtio_blk *to_blk(struct virtio_device *vdev)
{
	return container_of(vdev, struct virtio_blk, vdev);
}

/* --- saving ------------------------------------------------------------------ */

int virtio_blk_save_state(struct virtio_device *vdev, struct state_writer *w, struct errbuf *eb)
{
	struct virtio_blk *blk = to_blk(vdev);

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
	rate_limiter_save_state(&blk->limiter, w);
	pause_gate_unlock(&blk->gate);
	state_end(w);
	return 0;
}

/* --- parsing ------------------------------------------------------------------- */

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
	rate_limiter_read_state(sec, &s->limiter);
	return !sec->failed && check_drive(sec, blk, s) &&
	       rate_limiter_check_state(sec, "the drive's", &s->limiter, VBLK_MAX_DEBT);
}

/* --- applying ------------------------------------------------------------------ */

bool virtio_blk_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
			   struct state_reader *r)
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
	rate_limiter_apply_state(&blk->limiter, &s.limiter);
	pause_gate_unlock(&blk->gate);
	return true;
}
