/*
 * libFuzzer target: arbitrary bytes loaded as the snapshot state of a
 * virtio-mmio transport with a virtio-net device behind it (loopback
 * backend), built fresh for each input as a restoring process builds it
 * (transport/mmio_state.c, virtio/device_state.c, net/net_state.c). The
 * transport runs without a VM (mmio.h).
 *
 * Checked, besides ASan/UBSan:
 *  - a refused state leaves the device exactly as built: status 0, no
 *    InterruptStatus, no features, not active, not paused, every queue
 *    unconfigured in the transport and the device, counters zero, the
 *    configured MAC (nothing half-applied);
 *  - an accepted one is a state the register machine could have reached:
 *    driver bits only, no step skipped, features a subset of the offered
 *    ones with VERSION_1, the device paused, and when active every queue
 *    started with a power-of-two size and rings wholly inside guest memory
 *    (the test driver's own translation); then it resumes, is kicked and
 *    runs a loop turn without harm.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include "core/event_loop.h"
#include "core/log.h"
#include "core/state_io.h"
#include "net/net_device.h"
#include "transport/mmio.h"
#include "fuzz_input.h"
#include "vdriver.h"

#define MEM_BASE  0x40000000ull
#define MEM_SIZE  (512u << 10)
#define MEM_SPLIT (256u << 10)
#define QMAX      64u

#define FAIL(...) FUZZ_FAIL("fuzz_device_state", __VA_ARGS__)

static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };

static struct vd_mem mem;
static struct event_loop loop;

static void world_init(void)
{
	log_threshold = LOG_ERROR;
	if (event_loop_init(&loop) || vd_mem_init(&mem, MEM_BASE, MEM_SIZE, MEM_SPLIT))
		FAIL("setup");
}

struct slot {
	struct net_device net;
	struct net_backend *be;
	struct virtio_mmio t;
};

static void slot_up(struct slot *s)
{
	struct errbuf eb = { 0 };
	struct net_config_opts no = { .mtu = 1500 };
	struct virtio_mmio_opts o = { .vm_fd = -1, .base = 0xd0000000, .gsi = 5, .queue_num_max = QMAX };

	memcpy(no.mac, mac, sizeof(mac));
	s->be = net_loopback_create(&loop, NULL, &eb);
	if (!s->be || net_device_init(&s->net, &no, s->be, &loop) ||
	    virtio_mmio_init(&s->t, &s->net.vdev, &loop, &mem.gm, &o))
		FAIL("slot");
}

static void slot_down(struct slot *s)
{
	virtio_mmio_destroy(&s->t);
	net_device_destroy(&s->net);
	s->be->ops->destroy(s->be);
}

static void check_untouched(const struct slot *s)
{
	static const struct net_counters zero;
	const struct virtio_device *dev = &s->net.vdev;
	struct net_counters totals = net_device_totals(&s->net);

	if (s->t.status || s->t.interrupt_status || s->t.needs_reset || s->t.driver_features)
		FAIL("refused state left transport registers set");
	if (dev->active || dev->paused || dev->features || dev->needs_reset)
		FAIL("refused state left the device changed");
	for (unsigned q = 0; q < NET_NUM_QUEUES; q++) {
		const struct virtio_mmio_queue *mq = &s->t.queues[q];
		if (mq->num || mq->ready || mq->desc || mq->avail || mq->used)
			FAIL("refused state left queue %u's registers set", q);
		if (dev->vqs[q].size || dev->vqs[q].started || dev->vqs[q].last_avail_idx ||
		    dev->vqs[q].faults.poisoned)
			FAIL("refused state left queue %u configured", q);
	}
	if (memcmp(&totals, &zero, sizeof(zero)) || memcmp(s->net.opts.mac, mac, 6))
		FAIL("refused state left counters or MAC changed");
}

static bool ring_ok(uint64_t gpa, uint64_t len, uint64_t align)
{
	return gpa % align == 0 && vd_ptr(&mem, gpa, len) != NULL;
}

static void check_accepted(const struct slot *s)
{
	const struct virtio_device *dev = &s->net.vdev;
	uint32_t st = s->t.status;

	if (st & ~(uint32_t)VIRTIO_MMIO_STATUS_DRIVER_BITS || !virtio_mmio_status_step_ok(0, st))
		FAIL("accepted status 0x%x", st);
	if (dev->features && ((dev->features & ~s->t.offered) ||
			      !(dev->features & (1ull << VIRTIO_F_VERSION_1))))
		FAIL("accepted features 0x%llx", (unsigned long long)dev->features);
	if (!dev->paused)
		FAIL("a restored device must be paused");
	if (dev->active && !(st & VIRTIO_CONFIG_S_DRIVER_OK))
		FAIL("active without DRIVER_OK");
	for (unsigned q = 0; dev->active && q < dev->num_queues; q++) {
		const struct virtqueue *vq = &dev->vqs[q];
		uint64_t n = vq->size;
		if (!vq->started || !n || (n & (n - 1)) || n > QMAX)
			FAIL("queue %u live with size %llu", q, (unsigned long long)n);
		if (!ring_ok(vq->desc_gpa, 16 * n, 16) || !ring_ok(vq->avail_gpa, 6 + 2 * n, 2) ||
		    !ring_ok(vq->used_gpa, 6 + 8 * n, 4))
			FAIL("queue %u live with rings outside memory", q);
	}
}

/* Run what a resumed device runs: kicks on both queues, a loop turn. */
static void exercise(struct slot *s)
{
	uint32_t v;

	virtio_mmio_state_resume(&s->t);
	for (v = 0; v < NET_NUM_QUEUES; v++)
		virtio_mmio_access(&s->t, VIRTIO_MMIO_QUEUE_NOTIFY, &v, 4, true);
	for (int i = 0; i < 4; i++)
		event_loop_once(&loop, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static struct slot s;
	struct errbuf eb = { 0 };
	struct state_reader r;

	if (!ready) {
		world_init();
		ready = true;
	}
	vd_fill(&mem, MEM_BASE, 0, MEM_SIZE);
	memset(&s, 0, sizeof(s));
	slot_up(&s);
	state_reader_init(&r, data, size, &eb);
	if (virtio_mmio_state_load(&s.t, &r) < 0) {
		if (!eb.msg[0])
			FAIL("refused without a reason");
		if (getenv("FUZZ_STATE_WHY"))    /* which seeds load, and why others do not */
			fprintf(stderr, "refused: %s\n", eb.msg);
		check_untouched(&s);
	} else {
		check_accepted(&s);
		if (getenv("FUZZ_STATE_WHY"))
			fprintf(stderr, "accepted: status 0x%x, active %d\n", s.t.status, s.net.vdev.active);
		exercise(&s);
	}
	slot_down(&s);
	return 0;
}
