/*
 * The virtio-mmio register machine (src/transport/mmio.c) against the
 * virtio 1.x spec, section 4.2.2, and the rules of mmio.h, with a small
 * fake device behind it (two queues, an 8-byte config space, offered
 * features in both 32-bit windows). What it proves:
 *  - identity: MagicValue 0x74726976, Version 2, DeviceID, VendorID, and
 *    SHMLen/SHMBase -1 (no shared memory region), and a device's declared
 *    regions answered by id (both halves of length and base, -1 for any
 *    other id, the selection surviving a reset harmlessly);
 *  - reads of write-only or unknown registers give 0, writes to read-only
 *    ones change nothing; both are counted (rx_register_invalid);
 *  - only aligned 32-bit accesses reach a register below 0x100; anything
 *    past the 4 KiB window or of another width is refused and reads 0;
 *  - features: DeviceFeaturesSel 0/1 windows (2+ reads 0), DriverFeatures
 *    only between DRIVER and FEATURES_OK and only for selectors 0/1;
 *    FEATURES_OK stays clear when the driver acks a feature not offered or
 *    omits VERSION_1 (or the device refuses), and is kept otherwise with
 *    exactly the acked set handed to the device;
 *  - status steps in order, no bit cleared without a reset;
 *  - queues: QueueNumMax per queue, 0 for QueueSel out of range (whose
 *    writes are refused), queue registers only between FEATURES_OK and
 *    DRIVER_OK, a ready queue's size and rings locked until QueueReady 0,
 *    64-bit ring addresses from the Low/High halves, QueueNum above
 *    QueueNumMax / not a power of two / a queue never made ready fail the
 *    activation with NEEDS_RESET and a config interrupt;
 *  - DRIVER_OK activates the device; QueueNotify reaches queue_notify (and
 *    is dropped before DRIVER_OK); InterruptStatus holds the causes until
 *    InterruptACK clears them, each cause also written to the irq eventfd;
 *    ConfigGeneration moves on a config change;
 *  - config space at 0x100+ with widths 1/2/4/8, zeros past its end and
 *    out-of-range writes dropped;
 *  - status 0 resets: device reset, features, selectors, queues and
 *    InterruptStatus cleared;
 *  - the loop-thread call path: a status write from another thread runs on
 *    the loop thread; after virtio_mmio_close it is dropped and counted.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include "check.h"
#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "transport/mmio.h"
#include "vdriver.h"

#define ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define DRV VIRTIO_CONFIG_S_DRIVER
#define FOK VIRTIO_CONFIG_S_FEATURES_OK
#define DOK VIRTIO_CONFIG_S_DRIVER_OK
#define NRS VIRTIO_CONFIG_S_NEEDS_RESET

#define FAKE_ID      0x2a
#define FAKE_QUEUES  2
#define FAKE_CONFIG  8
#define QMAX         64u
#define QSIZE        16u
#define V1           (1ull << VIRTIO_F_VERSION_1)
/* Low window 0x21, high window 0x5 (VERSION_1 and bit 34). */
#define OFFERED      ((1ull << 0) | (1ull << 5) | V1 | (1ull << 34))
/* Guest memory above 4 GiB, so the High halves of ring addresses matter. */
#define MEM_BASE     0x123400000ull
#define MEM_SIZE     (1u << 20)

/* ---- the fake device ---- */

struct fake {
	struct virtio_device vdev;
	struct virtqueue vqs[FAKE_QUEUES];
	uint8_t config[FAKE_CONFIG];
	int set_features_ret;        /* what set_features answers */
	unsigned set_features_calls, activations, resets;
	unsigned notifies[FAKE_QUEUES];
	uint64_t features_seen;
};

static struct fake *to_fake(struct virtio_device *dev)
{
	return container_of(dev, struct fake, vdev);
}

static uint64_t fake_features(struct virtio_device *dev)
{
	return OFFERED;
}

static int fake_set_features(struct virtio_device *dev, uint64_t features)
{
	struct fake *f = to_fake(dev);

	f->set_features_calls++;
	f->features_seen = features;
	return f->set_features_ret;
}

static void fake_config_read(struct virtio_device *dev, void *config)
{
	memcpy(config, to_fake(dev)->config, FAKE_CONFIG);
}

static void fake_config_write(struct virtio_device *dev, uint32_t offset, const void *data,
			      uint32_t len)
{
	memcpy(to_fake(dev)->config + offset, data, len);
}

static int fake_activate(struct virtio_device *dev)
{
	to_fake(dev)->activations++;
	return 0;
}

static void fake_queue_notify(struct virtio_device *dev, unsigned q)
{
	to_fake(dev)->notifies[q]++;
}

static void fake_reset(struct virtio_device *dev)
{
	to_fake(dev)->resets++;
}

static const struct virtio_device_ops fake_ops = {
	.name = "fake",
	.device_id = FAKE_ID,
	.config_size = FAKE_CONFIG,
	.features = fake_features,
	.set_features = fake_set_features,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.queue_notify = fake_queue_notify,
	.reset = fake_reset,
};

/* ---- the rig: loop, guest memory, fake device, transport ---- */

struct rig {
	struct event_loop loop;
	struct vd_mem mem;
	struct fake f;
	struct virtio_mmio t;
	uint64_t desc[FAKE_QUEUES], avail[FAKE_QUEUES], used[FAKE_QUEUES];
};

static void rig_up(struct rig *r)
{
	struct virtio_mmio_opts o = { .vm_fd = -1, .base = 0xd0000000, .gsi = 5, .queue_num_max = QMAX };

	memset(r, 0, sizeof(*r));
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, MEM_BASE, MEM_SIZE, 0), 0);
	r->f.vdev.ops = &fake_ops;
	r->f.vdev.loop = &r->loop;
	r->f.vdev.vqs = r->f.vqs;
	r->f.vdev.num_queues = FAKE_QUEUES;
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		vq_reset(&r->f.vqs[q]);
		r->desc[q] = vd_alloc(&r->mem, 16 * QMAX, 16);
		r->avail[q] = vd_alloc(&r->mem, 6 + 2 * QMAX, 2);
		r->used[q] = vd_alloc(&r->mem, 6 + 8 * QMAX, 4);
	}
	for (unsigned i = 0; i < FAKE_CONFIG; i++)
		r->f.config[i] = (uint8_t)(0x10 + i);
	CHECK_EQ(virtio_mmio_init(&r->t, &r->f.vdev, &r->loop, &r->mem.gm, &o), 0);
}

static void rig_down(struct rig *r)
{
	virtio_mmio_destroy(&r->t);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

static uint32_t rd32(struct rig *r, uint32_t off)
{
	uint32_t v = 0xdeadbeef;

	virtio_mmio_access(&r->t, off, &v, 4, false);
	return v;
}

static void wr32(struct rig *r, uint32_t off, uint32_t v)
{
	virtio_mmio_access(&r->t, off, &v, 4, true);
}

static uint32_t status(struct rig *r)
{
	return rd32(r, VIRTIO_MMIO_STATUS);
}

static void write_driver_features(struct rig *r, uint64_t features)
{
	wr32(r, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr32(r, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	wr32(r, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr32(r, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
}

/* ACKNOWLEDGE, DRIVER, the features, FEATURES_OK; the status read back. */
static uint32_t negotiate(struct rig *r, uint64_t features)
{
	wr32(r, VIRTIO_MMIO_STATUS, ACK);
	wr32(r, VIRTIO_MMIO_STATUS, ACK | DRV);
	write_driver_features(r, features);
	wr32(r, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	return status(r);
}

static void write_addr(struct rig *r, uint32_t low_off, uint64_t gpa)
{
	wr32(r, low_off, (uint32_t)gpa);
	wr32(r, low_off + 4, (uint32_t)(gpa >> 32));
}

/* Queue @q with @num entries and the rig's rings; ready when @ready. */
static void setup_queue(struct rig *r, unsigned q, uint32_t num, bool ready)
{
	wr32(r, VIRTIO_MMIO_QUEUE_SEL, q);
	wr32(r, VIRTIO_MMIO_QUEUE_NUM, num);
	write_addr(r, VIRTIO_MMIO_QUEUE_DESC_LOW, r->desc[q]);
	write_addr(r, VIRTIO_MMIO_QUEUE_AVAIL_LOW, r->avail[q]);
	write_addr(r, VIRTIO_MMIO_QUEUE_USED_LOW, r->used[q]);
	if (ready)
		wr32(r, VIRTIO_MMIO_QUEUE_READY, 1);
}

/* The whole handshake with every queue QSIZE entries; the status read back. */
static uint32_t bring_up(struct rig *r)
{
	CHECK_EQ(negotiate(r, V1), ACK | DRV | FOK);
	for (unsigned q = 0; q < FAKE_QUEUES; q++)
		setup_queue(r, q, QSIZE, true);
	wr32(r, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	return status(r);
}

/* Pending interrupts on the irq eventfd (0 when none), consumed. */
static uint64_t irq_take(struct rig *r)
{
	uint64_t v = 0;

	if (read(r->t.irq_fd, &v, sizeof(v)) < 0)
		CHECK_EQ(errno, EAGAIN);
	return v;
}

/* ---- identity and invalid accesses ---- */

static void test_identity_registers(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_VERSION), 2);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_DEVICE_ID), FAKE_ID);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	/* Spec 4.2.2: a region that does not exist has length -1. */
	wr32(&r, VIRTIO_MMIO_SHM_SEL, 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffffu);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffffu);
	CHECK_EQ(r.t.counters.rx_register_invalid, 0);
	rig_down(&r);
}

/* A device that declares shared memory regions: SHMSel picks one by id. */
static void test_shm_regions(void)
{
	static const struct virtio_shm_region regions[] = {
		{ .id = 0, .base = 0x140000000ull, .len = 0x40000000ull },
		{ .id = 7, .base = 0x123456789000ull, .len = 0x200000ull },
	};
	const uint32_t ids[] = { 1, 6, 8, 255, 256, 0xffffffffu };
	struct rig r;

	rig_up(&r);
	r.f.vdev.shm = regions;
	r.f.vdev.num_shm = ARRAY_SIZE(regions);
	for (unsigned i = 0; i < ARRAY_SIZE(regions); i++) {
		wr32(&r, VIRTIO_MMIO_SHM_SEL, regions[i].id);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_LEN_LOW), (uint32_t)regions[i].len);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_LEN_HIGH), (uint32_t)(regions[i].len >> 32));
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_BASE_LOW), (uint32_t)regions[i].base);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_BASE_HIGH), (uint32_t)(regions[i].base >> 32));
	}
	/* Ids it does not have, 256 too (region ids are 8 bits: no truncation). */
	for (unsigned i = 0; i < ARRAY_SIZE(ids); i++) {
		wr32(&r, VIRTIO_MMIO_SHM_SEL, ids[i]);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffffu);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffffu);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_BASE_LOW), 0xffffffffu);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_BASE_HIGH), 0xffffffffu);
	}
	/* SHMSel itself reads 0 (write-only) and the registers ignore writes. */
	wr32(&r, VIRTIO_MMIO_SHM_SEL, 7);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_SEL), 0);
	wr32(&r, VIRTIO_MMIO_SHM_LEN_LOW, 1);
	wr32(&r, VIRTIO_MMIO_SHM_BASE_HIGH, 1);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_LEN_LOW), 0x200000u);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_SHM_BASE_HIGH), 0x1234u);
	rig_down(&r);
}

static const uint32_t write_only[] = {
	VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES,
	VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_NUM,
	VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_ACK,
	VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH,
	VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
	VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_USED_HIGH, VIRTIO_MMIO_SHM_SEL,
	0x028 /* legacy GuestPageSize */, 0x0f8 /* nothing */,
};

static void test_write_only_registers_read_zero(void)
{
	struct rig r;

	rig_up(&r);
	/* Give the write-only registers something they could leak. */
	wr32(&r, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, 1);
	for (unsigned i = 0; i < ARRAY_SIZE(write_only); i++)
		CHECK_EQ(rd32(&r, write_only[i]), 0);
	CHECK_EQ(r.t.counters.rx_register_invalid, ARRAY_SIZE(write_only));
	CHECK_EQ(r.t.counters.rx_register_dropped, 0);
	rig_down(&r);
}

static const uint32_t read_only[] = {
	VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION, VIRTIO_MMIO_DEVICE_ID,
	VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_QUEUE_NUM_MAX,
	VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_CONFIG_GENERATION,
};

static void test_read_only_registers_ignore_writes(void)
{
	struct rig r;
	uint32_t before[ARRAY_SIZE(read_only)];

	rig_up(&r);
	r.f.vdev.transport->ops->signal_used(r.f.vdev.transport, 0);
	for (unsigned i = 0; i < ARRAY_SIZE(read_only); i++)
		before[i] = rd32(&r, read_only[i]);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	/* All ones: would show as a store, a set or an acknowledgement. */
	for (unsigned i = 0; i < ARRAY_SIZE(read_only); i++)
		wr32(&r, read_only[i], 0xffffffffu);
	for (unsigned i = 0; i < ARRAY_SIZE(read_only); i++)
		CHECK_EQ(rd32(&r, read_only[i]), before[i]);
	CHECK_EQ(r.t.counters.rx_register_invalid, ARRAY_SIZE(read_only));
	rig_down(&r);
}

/* Access @len bytes at @off; a read's bytes must all be 0. */
static void access_refused(struct rig *r, uint64_t off, unsigned len, bool is_write)
{
	uint8_t buf[16];

	memset(buf, 0xa5, sizeof(buf));
	virtio_mmio_access(&r->t, off, buf, len, is_write);
	for (unsigned i = 0; !is_write && i < len; i++)
		CHECK_EQ(buf[i], 0);
}

static void test_register_width_and_alignment(void)
{
	struct rig r;
	uint64_t before;

	rig_up(&r);
	before = r.t.counters.rx_register_invalid;
	access_refused(&r, VIRTIO_MMIO_MAGIC_VALUE, 1, false);
	access_refused(&r, VIRTIO_MMIO_MAGIC_VALUE, 2, false);
	access_refused(&r, VIRTIO_MMIO_MAGIC_VALUE, 8, false);
	access_refused(&r, VIRTIO_MMIO_MAGIC_VALUE + 1, 4, false);
	access_refused(&r, VIRTIO_MMIO_VERSION + 2, 4, false);
	access_refused(&r, VIRTIO_MMIO_MAGIC_VALUE, 3, false);
	access_refused(&r, VIRTIO_MMIO_CONFIG, 3, false);
	access_refused(&r, VIRTIO_MMIO_WINDOW, 4, false);
	access_refused(&r, VIRTIO_MMIO_WINDOW + VIRTIO_MMIO_CONFIG, 1, false);
	CHECK_EQ(r.t.counters.rx_register_invalid - before, 9);
	/* Narrow or misaligned status writes change nothing. */
	uint16_t ack16 = ACK;
	virtio_mmio_access(&r.t, VIRTIO_MMIO_STATUS, &ack16, 2, true);
	uint8_t ack8 = ACK;
	virtio_mmio_access(&r.t, VIRTIO_MMIO_STATUS, &ack8, 1, true);
	uint32_t ack32 = ACK;
	virtio_mmio_access(&r.t, VIRTIO_MMIO_STATUS + 1, &ack32, 4, true);
	CHECK_EQ(status(&r), 0);
	CHECK_EQ(r.t.counters.rx_register_invalid - before, 12);
	rig_down(&r);
}

/* ---- features and status ---- */

static void test_device_feature_windows(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)OFFERED);
	wr32(&r, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)(OFFERED >> 32));
	wr32(&r, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	wr32(&r, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)OFFERED);
	rig_down(&r);
}

static void test_driver_features_window(void)
{
	struct rig r;

	rig_up(&r);
	/* Before DRIVER: refused, and not remembered. */
	write_driver_features(&r, OFFERED);
	CHECK_EQ(r.t.counters.rx_feature_writes_refused, 2);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV);
	wr32(&r, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr32(&r, VIRTIO_MMIO_DRIVER_FEATURES, 1u << 5);
	wr32(&r, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr32(&r, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(V1 >> 32));
	/* Selector 2 has no window: refused, and must not land in 0 or 1
	 * (all ones there would ack features not offered). */
	wr32(&r, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	wr32(&r, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffffu);
	CHECK_EQ(r.t.counters.rx_feature_writes_refused, 3);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	CHECK_EQ(status(&r), ACK | DRV | FOK);
	CHECK_EQ(r.f.features_seen, V1 | (1ull << 5));
	CHECK_EQ(r.f.vdev.features, V1 | (1ull << 5));
	/* After FEATURES_OK: refused, the negotiated set unchanged. */
	wr32(&r, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	CHECK_EQ(r.t.counters.rx_feature_writes_refused, 4);
	CHECK_EQ(r.f.vdev.features, V1 | (1ull << 5));
	rig_down(&r);
}

static void test_features_ok_refused_not_offered(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(negotiate(&r, V1 | (1ull << 1)), ACK | DRV);
	CHECK_EQ(r.t.counters.rx_features_refused, 1);
	CHECK_EQ(r.f.set_features_calls, 0);
	CHECK_EQ(r.f.vdev.features, 0);
	/* A bit of the high window not offered either. */
	wr32(&r, VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(negotiate(&r, V1 | (1ull << 33)), ACK | DRV);
	/* DRIVER_OK cannot follow a refused FEATURES_OK. */
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	CHECK_EQ(status(&r) & (FOK | DOK), 0);
	CHECK(!r.f.vdev.active);
	rig_down(&r);
}

static void test_features_ok_refused_without_version_1(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(negotiate(&r, (1ull << 0) | (1ull << 34)), ACK | DRV);
	CHECK_EQ(r.t.counters.rx_features_refused, 1);
	CHECK_EQ(r.f.set_features_calls, 0);
	rig_down(&r);
}

static void test_features_ok_refused_by_device(void)
{
	struct rig r;

	rig_up(&r);
	r.f.set_features_ret = -EINVAL;
	CHECK_EQ(negotiate(&r, V1), ACK | DRV);
	CHECK_EQ(r.f.set_features_calls, 1);
	CHECK_EQ(r.t.counters.rx_features_refused, 1);
	rig_down(&r);
}

static void test_features_ok_accepted(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(negotiate(&r, OFFERED), ACK | DRV | FOK);
	CHECK_EQ(r.f.features_seen, OFFERED);
	CHECK_EQ(r.f.vdev.features, OFFERED);
	CHECK_EQ(r.t.counters.rx_features_refused, 0);
	rig_down(&r);
}

static void test_status_steps_in_order(void)
{
	struct rig r;

	rig_up(&r);
	wr32(&r, VIRTIO_MMIO_STATUS, DRV);
	CHECK_EQ(status(&r), 0);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | FOK);
	CHECK_EQ(status(&r), ACK);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV | DOK);
	CHECK_EQ(status(&r), ACK);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | 0x20);
	CHECK_EQ(status(&r), ACK);
	CHECK_EQ(r.t.counters.rx_status_refused, 4);
	CHECK_EQ(bring_up(&r), ACK | DRV | FOK | DOK);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK);
	CHECK_EQ(status(&r), ACK | DRV | FOK | DOK);
	CHECK_EQ(r.t.counters.rx_status_refused, 5);
	CHECK(r.f.vdev.active);
	rig_down(&r);
}

/* ---- queues ---- */

static void test_queue_select(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(negotiate(&r, V1), ACK | DRV | FOK);
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		wr32(&r, VIRTIO_MMIO_QUEUE_SEL, q);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 0);
	}
	/* Queue 1 ready, then QueueSel out of range: nothing shows or sticks. */
	setup_queue(&r, 1, QSIZE, true);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 1);
	uint64_t before = r.t.counters.rx_queue_writes_refused;
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, FAKE_QUEUES);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 0);
	wr32(&r, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	wr32(&r, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 0);
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, 0xffffffffu);
	wr32(&r, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(r.t.counters.rx_queue_writes_refused - before, 3);
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 0);
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, 1);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 1);
	rig_down(&r);
}

static void test_queue_registers_window(void)
{
	struct rig r;

	rig_up(&r);
	/* Before FEATURES_OK: every queue register write refused. */
	wr32(&r, VIRTIO_MMIO_STATUS, ACK);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV);
	setup_queue(&r, 0, QSIZE, true);
	CHECK_EQ(r.t.counters.rx_queue_writes_refused, 8);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 0);
	/* Between FEATURES_OK and DRIVER_OK: every one taken. */
	wr32(&r, VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(bring_up(&r), ACK | DRV | FOK | DOK);
	CHECK_EQ(r.t.counters.rx_queue_writes_refused, 8);
	/* After DRIVER_OK: refused again, the live queue untouched. */
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr32(&r, VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 1);
	CHECK_EQ(r.t.counters.rx_queue_writes_refused, 9);
	rig_down(&r);
}

static void test_queue_locked_while_ready(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(negotiate(&r, V1), ACK | DRV | FOK);
	setup_queue(&r, 0, QSIZE, true);
	setup_queue(&r, 1, QSIZE, true);
	/* Queue 0 is ready: its size and rings may not change. */
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr32(&r, VIRTIO_MMIO_QUEUE_NUM, 8);
	wr32(&r, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)r.desc[1]);
	wr32(&r, VIRTIO_MMIO_QUEUE_USED_HIGH, 7);
	CHECK_EQ(r.t.counters.rx_queue_writes_refused, 3);
	/* Queue 1 unready again: open, and it takes the new size. */
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr32(&r, VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 0);
	wr32(&r, VIRTIO_MMIO_QUEUE_NUM, 32);
	wr32(&r, VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(r.t.counters.rx_queue_writes_refused, 3);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	CHECK_EQ(status(&r), ACK | DRV | FOK | DOK);
	CHECK_EQ(r.f.vqs[0].size, QSIZE);
	CHECK_EQ(r.f.vqs[0].desc_gpa, r.desc[0]);
	CHECK_EQ(r.f.vqs[0].used_gpa, r.used[0]);
	CHECK_EQ(r.f.vqs[1].size, 32);
	rig_down(&r);
}

static void test_driver_ok_activates(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(bring_up(&r), ACK | DRV | FOK | DOK);
	CHECK(r.f.vdev.active);
	CHECK_EQ(r.f.activations, 1);
	CHECK_EQ(r.t.counters.device_activations, 1);
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		const struct virtqueue *vq = &r.f.vqs[q];
		CHECK(vq->started);
		CHECK_EQ(vq->size, QSIZE);
		/* All three above 4 GiB: both halves were taken. */
		CHECK_EQ(vq->desc_gpa, r.desc[q]);
		CHECK_EQ(vq->avail_gpa, r.avail[q]);
		CHECK_EQ(vq->used_gpa, r.used[q]);
		CHECK(vq->desc_gpa >> 32);
	}
	CHECK_EQ(irq_take(&r), 0);
	rig_down(&r);
}

/* Bring up with queue 1 set by @bad; the activation must fail. */
static void check_activation_refused(void (*bad)(struct rig *r), const char *what)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(negotiate(&r, V1), ACK | DRV | FOK);
	setup_queue(&r, 0, QSIZE, true);
	bad(&r);
	uint32_t gen = rd32(&r, VIRTIO_MMIO_CONFIG_GENERATION);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	if (status(&r) != (ACK | DRV | FOK | DOK | NRS))
		fprintf(stderr, "  activation with %s not refused\n", what);
	CHECK_EQ(status(&r), ACK | DRV | FOK | DOK | NRS);
	CHECK(!r.f.vdev.active);
	CHECK_EQ(r.f.activations, 0);
	CHECK_EQ(r.t.counters.rx_device_activate_failed, 1);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	CHECK(rd32(&r, VIRTIO_MMIO_CONFIG_GENERATION) != gen);
	CHECK_EQ(irq_take(&r), 1);
	/* Only a reset clears NEEDS_RESET. */
	wr32(&r, VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(status(&r), 0);
	rig_down(&r);
}

static void queue_above_max(struct rig *r)
{
	setup_queue(r, 1, QMAX * 2, true);
}

static void queue_not_pow2(struct rig *r)
{
	setup_queue(r, 1, 24, true);
}

static void queue_not_ready(struct rig *r)
{
	setup_queue(r, 1, QSIZE, false);
}

static void queue_ring_outside_memory(struct rig *r)
{
	setup_queue(r, 1, QSIZE, false);
	write_addr(r, VIRTIO_MMIO_QUEUE_USED_LOW, MEM_BASE + MEM_SIZE);
	wr32(r, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void test_bad_queue_fails_activation(void)
{
	check_activation_refused(queue_above_max, "QueueNum above QueueNumMax");
	check_activation_refused(queue_not_pow2, "QueueNum not a power of two");
	check_activation_refused(queue_not_ready, "a queue not ready");
	check_activation_refused(queue_ring_outside_memory, "a ring outside memory");
}

/* ---- notifications, interrupts, config ---- */

static void test_queue_notify(void)
{
	struct rig r;

	rig_up(&r);
	/* Before DRIVER_OK the kick is dropped. */
	wr32(&r, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	event_loop_once(&r.loop, 0);
	CHECK_EQ(r.t.counters.rx_kicks_inactive, 1);
	CHECK_EQ(r.f.notifies[0], 0);
	CHECK_EQ(bring_up(&r), ACK | DRV | FOK | DOK);
	wr32(&r, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	event_loop_once(&r.loop, 0);
	CHECK_EQ(r.f.notifies[0], 0);
	CHECK_EQ(r.f.notifies[1], 1);
	wr32(&r, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	event_loop_once(&r.loop, 0);
	CHECK_EQ(r.f.notifies[0], 1);
	/* A queue the device lacks: counted, no kick. */
	wr32(&r, VIRTIO_MMIO_QUEUE_NOTIFY, FAKE_QUEUES);
	event_loop_once(&r.loop, 0);
	CHECK_EQ(r.f.notifies[0] + r.f.notifies[1], 2);
	CHECK_EQ(r.t.counters.rx_notify_exits, 4);
	CHECK_EQ(r.t.counters.rx_kicks, 3);
	rig_down(&r);
}

static void test_interrupt_status_and_ack(void)
{
	struct rig r;
	struct virtio_transport *tr;

	rig_up(&r);
	CHECK_EQ(bring_up(&r), ACK | DRV | FOK | DOK);
	tr = r.f.vdev.transport;
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	tr->ops->signal_used(tr, 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(irq_take(&r), 1);
	tr->ops->signal_config(tr);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(irq_take(&r), 1);
	/* ACK clears only the bits written. */
	wr32(&r, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	wr32(&r, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK_EQ(r.t.counters.tx_interrupts, 1);
	CHECK_EQ(r.t.counters.tx_config_interrupts, 1);
	CHECK_EQ(r.t.counters.tx_interrupts_failed, 0);
	rig_down(&r);
}

static void test_config_generation(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(bring_up(&r), ACK | DRV | FOK | DOK);
	uint32_t gen = rd32(&r, VIRTIO_MMIO_CONFIG_GENERATION);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	r.f.vdev.transport->ops->signal_config(r.f.vdev.transport);
	uint32_t gen2 = rd32(&r, VIRTIO_MMIO_CONFIG_GENERATION);
	CHECK(gen2 != gen);
	/* A poisoned queue: NEEDS_RESET with a config change. */
	virtio_device_mark_broken(&r.f.vdev, 0);
	CHECK(rd32(&r, VIRTIO_MMIO_CONFIG_GENERATION) != gen2);
	CHECK_EQ(status(&r), ACK | DRV | FOK | DOK | NRS);
	/* Writing back what was read (NEEDS_RESET included) is no step back. */
	wr32(&r, VIRTIO_MMIO_STATUS, status(&r));
	CHECK_EQ(r.t.counters.rx_status_refused, 0);
	CHECK_EQ(status(&r), ACK | DRV | FOK | DOK | NRS);
	rig_down(&r);
}

/* Read @len bytes of config space at @off into a 64-bit value. */
static uint64_t cfg_read(struct rig *r, uint32_t off, unsigned len)
{
	uint64_t v = 0;

	memset(&v, 0xa5, len);
	virtio_mmio_access(&r->t, VIRTIO_MMIO_CONFIG + off, &v, len, false);
	return v;
}

static void cfg_write(struct rig *r, uint32_t off, uint64_t v, unsigned len)
{
	virtio_mmio_access(&r->t, VIRTIO_MMIO_CONFIG + off, &v, len, true);
}

static void test_config_space(void)
{
	struct rig r;
	uint8_t before[FAKE_CONFIG];

	rig_up(&r);
	CHECK_EQ(cfg_read(&r, 0, 1), 0x10);
	CHECK_EQ(cfg_read(&r, 7, 1), 0x17);
	CHECK_EQ(cfg_read(&r, 2, 2), 0x1312);
	CHECK_EQ(cfg_read(&r, 4, 4), 0x17161514);
	CHECK_EQ(cfg_read(&r, 0, 8), 0x1716151413121110ull);
	cfg_write(&r, 1, 0xaa, 1);
	cfg_write(&r, 2, 0xbbcc, 2);
	cfg_write(&r, 4, 0x11223344, 4);
	CHECK_EQ(cfg_read(&r, 0, 8), 0x11223344bbccaa10ull);
	/* Past the end or straddling it: reads 0, writes dropped. */
	memcpy(before, r.f.config, sizeof(before));
	CHECK_EQ(cfg_read(&r, FAKE_CONFIG, 1), 0);
	CHECK_EQ(cfg_read(&r, FAKE_CONFIG - 2, 4), 0);
	CHECK_EQ(cfg_read(&r, 0xeff, 1), 0);
	cfg_write(&r, FAKE_CONFIG - 1, 0xffff, 2);
	cfg_write(&r, FAKE_CONFIG, 0xff, 1);
	CHECK(memcmp(before, r.f.config, sizeof(before)) == 0);
	CHECK_EQ(r.t.counters.rx_register_invalid, 0);
	rig_down(&r);
}

/* ---- reset ---- */

static void test_status_zero_resets(void)
{
	struct rig r;

	rig_up(&r);
	CHECK_EQ(bring_up(&r), ACK | DRV | FOK | DOK);
	wr32(&r, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	wr32(&r, VIRTIO_MMIO_QUEUE_SEL, 1);
	r.f.vdev.transport->ops->signal_used(r.f.vdev.transport, 0);
	virtio_device_mark_broken(&r.f.vdev, 0);
	wr32(&r, VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(status(&r), 0);
	CHECK_EQ(r.t.counters.rx_device_resets, 1);
	CHECK_EQ(r.f.resets, 1);
	CHECK(!r.f.vdev.active);
	CHECK_EQ(r.f.vdev.features, 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* Selectors back to 0: the low feature window, queue 0. */
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)OFFERED);
	for (unsigned q = 0; q < FAKE_QUEUES; q++) {
		wr32(&r, VIRTIO_MMIO_QUEUE_SEL, q);
		CHECK_EQ(rd32(&r, VIRTIO_MMIO_QUEUE_READY), 0);
		CHECK(!r.f.vqs[q].started);
	}
	/* The driver features are forgotten: FEATURES_OK without writing
	 * them again has no VERSION_1. */
	wr32(&r, VIRTIO_MMIO_STATUS, ACK);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	CHECK_EQ(status(&r), ACK | DRV);
	/* The queues are forgotten: DRIVER_OK without setting them fails. */
	wr32(&r, VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(negotiate(&r, V1), ACK | DRV | FOK);
	wr32(&r, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	CHECK(status(&r) & NRS);
	CHECK(!r.f.vdev.active);
	rig_down(&r);
}

/* ---- the loop-thread call path ---- */

/* Make the transport hand device accesses to the loop thread, as with a
 * VM. Nothing else reads vm_fd after init (no fd was registered), so any
 * non-negative value does; destroy only undoes what init registered. */
static void rig_threaded(struct rig *r)
{
	r->t.opts.vm_fd = 0;
}

struct vcpu {
	struct rig *r;
	uint32_t value;
	int done;
};

static void *vcpu_status_write(void *arg)
{
	struct vcpu *v = arg;

	wr32(v->r, VIRTIO_MMIO_STATUS, v->value);
	__atomic_store_n(&v->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_status_write_runs_on_loop_thread(void)
{
	struct rig r;
	pthread_t th;

	rig_up(&r);
	rig_threaded(&r);
	struct vcpu v = { .r = &r, .value = ACK };
	CHECK_EQ(pthread_create(&th, NULL, vcpu_status_write, &v), 0);
	for (int i = 0; i < 500 && !__atomic_load_n(&v.done, __ATOMIC_SEQ_CST); i++)
		event_loop_once(&r.loop, 10);
	pthread_join(th, NULL);
	CHECK_EQ(v.done, 1);
	CHECK_EQ(status(&r), ACK);
	CHECK_EQ(r.t.counters.rx_register_dropped, 0);
	rig_down(&r);
}

static void test_closed_transport_drops(void)
{
	struct rig r;

	rig_up(&r);
	rig_threaded(&r);
	virtio_mmio_close(&r.t);
	/* No loop turn is needed: a closed transport never waits. */
	wr32(&r, VIRTIO_MMIO_STATUS, ACK);
	CHECK_EQ(r.t.counters.rx_register_dropped, 1);
	CHECK_EQ(cfg_read(&r, 0, 4), 0);
	CHECK_EQ(r.t.counters.rx_register_dropped, 2);
	/* Transport-only registers still answer. */
	CHECK_EQ(status(&r), 0);
	CHECK_EQ(rd32(&r, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	rig_down(&r);
}

int main(void)
{
	log_threshold = LOG_ERROR;
	RUN_TEST(test_identity_registers);
	RUN_TEST(test_shm_regions);
	RUN_TEST(test_write_only_registers_read_zero);
	RUN_TEST(test_read_only_registers_ignore_writes);
	RUN_TEST(test_register_width_and_alignment);
	RUN_TEST(test_device_feature_windows);
	RUN_TEST(test_driver_features_window);
	RUN_TEST(test_features_ok_refused_not_offered);
	RUN_TEST(test_features_ok_refused_without_version_1);
	RUN_TEST(test_features_ok_refused_by_device);
	RUN_TEST(test_features_ok_accepted);
	RUN_TEST(test_status_steps_in_order);
	RUN_TEST(test_queue_select);
	RUN_TEST(test_queue_registers_window);
	RUN_TEST(test_queue_locked_while_ready);
	RUN_TEST(test_driver_ok_activates);
	RUN_TEST(test_bad_queue_fails_activation);
	RUN_TEST(test_queue_notify);
	RUN_TEST(test_interrupt_status_and_ack);
	RUN_TEST(test_config_generation);
	RUN_TEST(test_config_space);
	RUN_TEST(test_status_zero_resets);
	RUN_TEST(test_status_write_runs_on_loop_thread);
	RUN_TEST(test_closed_transport_drops);
	return CHECK_DONE();
}
