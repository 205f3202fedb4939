/*
 * libFuzzer target: arbitrary bytes loaded as the snapshot state of a
 * virtio-mmio transport with virtio-blk (on a 64-sector image),
 * virtio-vsock or virtio-balloon (statistics every second) behind it (the
 * input's first byte modulo 3 chooses: 0 blk, 1 vsock, 2 balloon), built
 * fresh for each input as a restoring process builds it
 * (transport/mmio_state.c, virtio/device_state.c, blk/virtio_blk_state.c,
 * vsock/virtio_vsock_state.c, balloon/virtio_balloon_state.c). The
 * transport runs without a VM.
 *
 * Checked, besides ASan/UBSan:
 *  - a refused state says why and leaves the device as built: status 0,
 *    no features, not active, not paused, every queue unconfigured, no
 *    rate limiter (blk), no reset owed and the first host port (vsock),
 *    no target, actual, statistics or buffer kept (balloon);
 *  - an accepted one has the device paused, features a subset of the
 *    offered ones with VERSION_1, a blk limiter that is in range, a vsock
 *    device with no connection and its CID, a balloon whose target fits
 *    its RAM in whole MiB, statistics on, known tags only and a buffer kept
 *    only as a descriptor of a statistics queue; then it resumes (vsock: the
 *    transport reset into a buffer of the fuzzed rings), is kicked on every
 *    queue and runs a loop turn without harm, and resets.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include "balloon/virtio_balloon.h"
#include "blk/virtio_blk.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/state_io.h"
#include "transport/mmio.h"
#include "vsock/virtio_vsock.h"
#include "fuzz_input.h"
#include "vdriver.h"

#define MEM_BASE  0x40000000ull
#define MEM_SIZE  (512u << 10)
#define MEM_SPLIT (256u << 10)
#define QMAX      64u
#define CID       3u
#define BALLOON_RAM (64ull << 20)   /* what the balloon is told: targets up to 64 MiB */

#define FAIL(...) FUZZ_FAIL("fuzz_blk_vsock_state", __VA_ARGS__)

static struct vd_mem mem;
static struct event_loop loop;
static struct blk_image img;
static char sock_path[64];

/* The loop, guest memory and a 64-sector image, once. */
static void world_init(void)
{
	char path[64];
	struct errbuf eb = { 0 };

	log_threshold = LOG_ERROR;
	if (event_loop_init(&loop) || vd_mem_init(&mem, MEM_BASE, MEM_SIZE, MEM_SPLIT))
		FAIL("setup");
	snprintf(path, sizeof(path), "/tmp/fuzz_blk_vsock_state.%d.img", (int)getpid());
	snprintf(sock_path, sizeof(sock_path), "/tmp/fuzz_blk_vsock_state.%d.sock", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 64 * 512) < 0 || blk_image_open(&img, path, false, "fuzzdisk", &eb))
		FAIL("image: %s", eb.msg);
	close(fd);
	unlink(path);                /* the open descriptor keeps it */
}

enum slot_kind { SLOT_BLK, SLOT_VSOCK, SLOT_BALLOON };

struct slot {
	enum slot_kind kind;
	bool vsock;
	struct virtio_blk blk;
	struct virtio_vsock vs;
	struct virtio_balloon bl;
	struct virtio_mmio t;
};

static const struct virtio_balloon_opts balloon_opts = { .deflate_on_oom = true,
							 .stats_polling_interval_s = 1 };

static struct virtio_device *dev_of(struct slot *s)
{
	return s->kind == SLOT_BALLOON ? &s->bl.vdev : s->vsock ? &s->vs.vdev : &s->blk.vdev;
}

static int device_up(struct slot *s, struct errbuf *eb)
{
	struct virtio_vsock_opts vo = { .guest_cid = CID, .uds_path = sock_path, .listen_fd = -1 };

	if (s->kind == SLOT_BALLOON)
		return virtio_balloon_init(&s->bl, &loop, &balloon_opts, BALLOON_RAM);
	return s->vsock ? virtio_vsock_init(&s->vs, &loop, &vo, eb)
			: virtio_blk_init(&s->blk, &img, &loop);
}

static void slot_up(struct slot *s)
{
	struct virtio_mmio_opts o = { .vm_fd = -1, .base = 0xd0000000, .gsi = 5, .queue_num_max = QMAX };
	struct errbuf eb = { 0 };
	int r = device_up(s, &eb);

	if (r || virtio_mmio_init(&s->t, dev_of(s), &loop, &mem.gm, &o))
		FAIL("slot: %s", eb.msg);
}

static void slot_down(struct slot *s)
{
	virtio_mmio_destroy(&s->t);
	if (s->kind == SLOT_BALLOON)
		virtio_balloon_destroy(&s->bl);
	else if (s->vsock)
		virtio_vsock_destroy(&s->vs);
	else
		virtio_blk_destroy(&s->blk);
}

/* The balloon as built: no target, nothing held, no statistics. */
static void check_balloon_untouched(const struct virtio_balloon *b)
{
	if (b->num_pages || b->actual || b->stats_held || b->stats.seen ||
	    b->stats_interval_s != balloon_opts.stats_polling_interval_s)
		FAIL("refused state left the balloon changed");
}

/* A target in whole MiB within its RAM, statistics on (as built), known
 * tags, a kept buffer only as a descriptor of a statistics queue. */
static void check_balloon_accepted(const struct virtio_balloon *b)
{
	const struct virtqueue *sq = &b->vqs[BALLOON_STATS_Q];

	if ((uint64_t)b->num_pages << 12 > BALLOON_RAM || b->num_pages % VIRTIO_BALLOON_PAGES_PER_MIB)
		FAIL("accepted a target of %u pages", b->num_pages);
	if (!b->stats_interval_s || b->stats.seen >> VIRTIO_BALLOON_STAT_TAGS)
		FAIL("accepted statistics off or of unknown tags");
	if (b->stats_held && (b->vdev.num_queues <= BALLOON_STATS_Q || b->stats_head >= sq->size))
		FAIL("accepted a kept buffer %u outside a statistics queue", b->stats_head);
}

static void check_untouched(const struct slot *s)
{
	const struct virtio_device *dev = dev_of((struct slot *)s);

	if (s->t.status || s->t.interrupt_status || s->t.needs_reset || s->t.driver_features)
		FAIL("refused state left transport registers set");
	if (dev->active || dev->paused || dev->features || dev->needs_reset)
		FAIL("refused state left the device changed");
	for (unsigned q = 0; q < dev->num_queues; q++)
		if (dev->vqs[q].size || dev->vqs[q].started || dev->vqs[q].last_avail_idx)
			FAIL("refused state left queue %u configured", q);
	if (s->kind == SLOT_BALLOON) {
		check_balloon_untouched(&s->bl);
		return;
	}
	if (s->vsock && (s->vs.reset_on_resume || s->vs.event_ack_pending ||
			 s->vs.next_local_port != VSOCK_LOCAL_PORT_FIRST))
		FAIL("refused state left the vsock device changed");
	if (!s->vsock && (rate_limiter_active(&s->blk.limiter) || s->blk.limiter.bw.budget ||
			  s->blk.limiter.ops.budget))
		FAIL("refused state left a rate limiter");
}

static void check_accepted(const struct slot *s)
{
	const struct virtio_device *dev = dev_of((struct slot *)s);
	struct rate_limiter_config cfg;

	if (!dev->paused)
		FAIL("a restored device must be paused");
	if (dev->features && ((dev->features & ~s->t.offered) ||
			      !(dev->features & (1ull << VIRTIO_F_VERSION_1))))
		FAIL("accepted features 0x%llx", (unsigned long long)dev->features);
	if (s->kind == SLOT_BALLOON) {
		check_balloon_accepted(&s->bl);
		return;
	}
	if (s->vsock && (virtio_vsock_conns(&s->vs) || s->vs.guest_cid != CID ||
			 !s->vs.reset_on_resume))
		FAIL("accepted vsock state with connections, another CID or no reset owed");
	if (!s->vsock) {
		rate_limiter_get_config(&s->blk.limiter, &cfg);
		if (!rate_limiter_config_valid(&cfg) || s->blk.limiter.bw.budget > (int64_t)cfg.bandwidth.size)
			FAIL("accepted a limiter out of range");
	}
}

/* What a resumed device runs: every queue kicked, loop turns, a reset. */
static void exercise(struct slot *s)
{
	struct virtio_device *dev = dev_of(s);

	virtio_mmio_state_resume(&s->t);
	for (uint32_t v = 0; v < dev->num_queues; v++)
		virtio_mmio_access(&s->t, VIRTIO_MMIO_QUEUE_NOTIFY, &v, 4, true);
	for (int i = 0; i < 4; i++)
		event_loop_once(&loop, 0);
	uint32_t zero = 0;
	virtio_mmio_access(&s->t, VIRTIO_MMIO_STATUS, &zero, 4, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static struct slot s;
	struct errbuf eb = { 0 };
	struct state_reader r;

	if (!size)
		return 0;
	if (!ready) {
		world_init();
		ready = true;
	}
	vd_fill(&mem, MEM_BASE, 0, MEM_SIZE);
	memset(&s, 0, sizeof(s));
	s.kind = (enum slot_kind)(data[0] % 3);
	s.vsock = s.kind == SLOT_VSOCK;
	slot_up(&s);
	state_reader_init(&r, data + 1, size - 1, &eb);
	if (virtio_mmio_state_load(&s.t, &r) < 0) {
		if (!eb.msg[0])
			FAIL("refused without a reason");
		if (getenv("FUZZ_STATE_WHY"))
			fprintf(stderr, "refused: %s\n", eb.msg);
		check_untouched(&s);
	} else {
		check_accepted(&s);
		if (getenv("FUZZ_STATE_WHY"))
			fprintf(stderr, "accepted: status 0x%x\n", s.t.status);
		exercise(&s);
	}
	slot_down(&s);
	return 0;
}
