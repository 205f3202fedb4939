/*
 * libFuzzer target: the virtio-mmio register file (src/transport/mmio.c) in
 * front of the real virtio-net (loopback backend), virtio-fs (memfs
 * behind the FUSE server), virtio-rng and virtio-blk (a 1 MiB image file
 * the fuzzer makes; its worker thread serves the requests) devices, driven
 * as a hostile guest would.
 *
 * The input's first byte picks the device; then operations: raw accesses
 * of 1, 2, 3, 4 or 8 bytes at any offset (inside the window and past it),
 * writes of known registers with values that matter (status steps, feature
 * words, queue selectors, queue sizes, ring addresses inside, straddling
 * and outside the guest memory map), a full driver handshake with rings
 * from the guest memory, config-space reads and writes at any offset and
 * width, QueueNotify writes followed by a turn of the event loop, pokes of
 * guest memory (rings with arbitrary contents), interrupt acknowledgements.
 * The transport runs without a VM (mmio.h): nothing is registered with KVM
 * and device calls run on this thread.
 *
 * Checked after every operation, besides ASan/UBSan:
 *  - MagicValue, Version and DeviceID always read as the spec says, and
 *    InterruptStatus holds only the two causes the spec defines;
 *  - with status 0 (after a reset) no queue reads as ready;
 *  - the status holds only driver bits and NEEDS_RESET, each driver bit
 *    with the ones before it in the state machine;
 *  - DRIVER_OK without NEEDS_RESET means the device is active and every
 *    queue is started with a power-of-two size within QueueNumMax and rings
 *    aligned and wholly inside guest memory (checked with the test driver's
 *    own translation, not the transport's);
 *  - FEATURES_OK means the negotiated features are a subset of the offered
 *    ones and include VERSION_1;
 *  - reads of unknown, write-only or misaligned registers, of anything
 *    past the window and of config space past its end return 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "fuse/fuse_server.h"
#include "fs/memfs.h"
#include "rng/virtio_rng.h"
#include "blk/virtio_blk.h"
#include "fs/virtio_fs.h"
#include "net/net_device.h"
#include "transport/mmio.h"
#include "fuzz_input.h"
#include "vdriver.h"

#define MEM_BASE   0x40000000ull
#define MEM_SIZE   (512u << 10)
#define MEM_SPLIT  (256u << 10)
#define MAX_OPS    256
#define QMAX       64u
#define STATUS_BITS (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
		     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK | \
		     VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET)

#define FAIL(...) FUZZ_FAIL("fuzz_mmio", __VA_ARGS__)

static struct vd_mem mem;
static struct event_loop loop;
static struct net_device net;
static struct virtio_fs fs;
static struct fs_backend *fs_backend;
static struct fuse_server *fs_server;
static struct virtio_rng rng;
static struct blk_image img;
static struct virtio_blk blk;
static struct virtio_mmio slots[4];

/* States reached (FUZZ_MMIO_STATS=1 prints them at exit): proof that the
 * inputs get past the handshake. */
static struct {
	unsigned long checks, active, needs_reset, features_ok;
} stats;

static void print_stats(void)
{
	fprintf(stderr, "fuzz_mmio: %lu checks: device active %lu, NEEDS_RESET %lu, FEATURES_OK %lu\n",
		stats.checks, stats.active, stats.needs_reset, stats.features_ok);
}

/* Registers a driver reads, at their 4-byte aligned offsets. */
static const uint32_t readable[] = {
	VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_VENDOR_ID,
	VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY,
	VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_CONFIG_GENERATION,
	VIRTIO_MMIO_SHM_LEN_LOW, VIRTIO_MMIO_SHM_LEN_HIGH, VIRTIO_MMIO_SHM_BASE_LOW,
	VIRTIO_MMIO_SHM_BASE_HIGH,
};

static const uint32_t writable[] = {
	VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
	VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY,
	VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_STATUS,
	VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_AVAIL_LOW,
	VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_USED_HIGH,
	VIRTIO_MMIO_SHM_SEL,
};

static bool is_readable(uint64_t off)
{
	for (unsigned i = 0; i < ARRAY_SIZE(readable); i++)
		if (readable[i] == off)
			return true;
	return false;
}

/* ---- the world ---- */

/* A 1 MiB image, unlinked at once (the descriptor keeps it), behind a
 * virtio-blk device in the next slot. */
static void blk_world_init(struct virtio_mmio_opts *o)
{
	char path[64];
	struct errbuf eb = { 0 };

	snprintf(path, sizeof(path), "/tmp/fuzz_mmio.%d.img", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		FAIL("blk image");
	close(fd);
	if (blk_image_open(&img, path, false, "fuzz", &eb) || virtio_blk_init(&blk, &img, &loop))
		FAIL("blk device: %s", eb.msg);
	unlink(path);
	o->base += VIRTIO_MMIO_WINDOW;
	o->gsi++;
	if (virtio_mmio_init(&slots[3], &blk.vdev, &loop, &mem.gm, o))
		FAIL("mmio blk");
}

static void world_init(void)
{
	struct errbuf eb = { 0 };
	int e = 0;
	struct net_config_opts no = { .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 }, .mtu = 1500 };
	struct virtio_fs_opts fo = { .tag = "fuzz", .request_queues = 1, .threads = 1 };
	struct memfs_opts mo = { .max_bytes = 1u << 20, .max_nodes = 64 };

	log_threshold = LOG_ERROR;
	if (getenv("FUZZ_MMIO_STATS"))
		atexit(print_stats);
	if (event_loop_init(&loop) || vd_mem_init(&mem, MEM_BASE, MEM_SIZE, MEM_SPLIT))
		FAIL("setup");
	struct net_backend *be = net_loopback_create(&loop, NULL, &eb);
	if (!be || net_device_init(&net, &no, be, &loop))
		FAIL("net device");
	fs_backend = memfs_new(&mo, &e);
	fs_server = fs_backend ? fuse_server_new(fs_backend, NULL) : NULL;
	if (!fs_server || virtio_fs_init(&fs, &fo, fs_server, &loop))
		FAIL("fs device");
	struct virtio_mmio_opts o = { .vm_fd = -1, .base = 0xd0000000, .gsi = 5, .queue_num_max = QMAX };
	if (virtio_mmio_init(&slots[0], &net.vdev, &loop, &mem.gm, &o))
		FAIL("mmio net");
	o.base += VIRTIO_MMIO_WINDOW;
	o.gsi++;
	if (virtio_mmio_init(&slots[1], &fs.vdev, &loop, &mem.gm, &o))
		FAIL("mmio fs");
	struct rate_limiter_config lim = { .bandwidth = { .size = 4096, .refill_time = 1 } };
	if (virtio_rng_init(&rng, &loop, &lim))
		FAIL("rng device");
	o.base += VIRTIO_MMIO_WINDOW;
	o.gsi++;
	if (virtio_mmio_init(&slots[2], &rng.vdev, &loop, &mem.gm, &o))
		FAIL("mmio rng");
	blk_world_init(&o);
}

static uint32_t rd32(struct virtio_mmio *t, uint32_t off)
{
	uint32_t v = 0xdeadbeef;

	virtio_mmio_access(t, off, &v, 4, false);
	return v;
}

static void wr32(struct virtio_mmio *t, uint32_t off, uint32_t v)
{
	virtio_mmio_access(t, off, &v, 4, true);
}

/* ---- invariants ---- */

static bool ring_ok(uint64_t gpa, uint64_t len, uint64_t align)
{
	return gpa % align == 0 && vd_ptr(&mem, gpa, len) != NULL;
}

static void check_queues_valid(struct virtio_mmio *t)
{
	struct virtio_device *dev = t->dev;

	if (!dev->active)
		FAIL("%s: DRIVER_OK without NEEDS_RESET but the device is not active", dev->ops->name);
	for (unsigned q = 0; q < dev->num_queues; q++) {
		const struct virtqueue *vq = &dev->vqs[q];
		uint64_t n = vq->size;
		if (!vq->started || !n || (n & (n - 1)) || n > QMAX)
			FAIL("%s: queue %u live with size %llu", dev->ops->name, q, (unsigned long long)n);
		if (!ring_ok(vq->desc_gpa, 16 * n, 16) || !ring_ok(vq->avail_gpa, 6 + 2 * n, 2) ||
		    !ring_ok(vq->used_gpa, 6 + 8 * n, 4))
			FAIL("%s: queue %u live with rings outside memory or misaligned", dev->ops->name, q);
	}
}

static void check_invariants(struct virtio_mmio *t)
{
	struct virtio_device *dev = t->dev;
	uint32_t st = rd32(t, VIRTIO_MMIO_STATUS);

	if (rd32(t, VIRTIO_MMIO_MAGIC_VALUE) != 0x74726976u || rd32(t, VIRTIO_MMIO_VERSION) != 2 ||
	    rd32(t, VIRTIO_MMIO_DEVICE_ID) != dev->ops->device_id)
		FAIL("identity registers changed");
	if (st & ~(uint32_t)STATUS_BITS)
		FAIL("status 0x%x has bits no driver may set", st);
	if (rd32(t, VIRTIO_MMIO_INTERRUPT_STATUS) & ~(uint32_t)(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		FAIL("InterruptStatus has unknown causes");
	if (!st) {
		/* Reset forgets the queues: every QueueReady reads 0. */
		uint32_t sel = t->queue_sel;
		for (unsigned q = 0; q < dev->num_queues; q++) {
			wr32(t, VIRTIO_MMIO_QUEUE_SEL, q);
			if (rd32(t, VIRTIO_MMIO_QUEUE_READY))
				FAIL("queue %u ready after reset", q);
		}
		wr32(t, VIRTIO_MMIO_QUEUE_SEL, sel);
	}
	if (((st & VIRTIO_CONFIG_S_DRIVER) && !(st & VIRTIO_CONFIG_S_ACKNOWLEDGE)) ||
	    ((st & VIRTIO_CONFIG_S_FEATURES_OK) && !(st & VIRTIO_CONFIG_S_DRIVER)) ||
	    ((st & VIRTIO_CONFIG_S_DRIVER_OK) && !(st & VIRTIO_CONFIG_S_FEATURES_OK)))
		FAIL("status 0x%x skipped a step", st);
	if (st & VIRTIO_CONFIG_S_FEATURES_OK) {
		if (dev->features & ~t->offered)
			FAIL("negotiated 0x%llx outside offered 0x%llx", (unsigned long long)dev->features,
			     (unsigned long long)t->offered);
		if (!(dev->features & (1ull << VIRTIO_F_VERSION_1)))
			FAIL("FEATURES_OK without VERSION_1");
	}
	if ((st & VIRTIO_CONFIG_S_DRIVER_OK) && !(st & VIRTIO_CONFIG_S_NEEDS_RESET))
		check_queues_valid(t);
	stats.checks++;
	stats.active += dev->active;
	stats.needs_reset += !!(st & VIRTIO_CONFIG_S_NEEDS_RESET);
	stats.features_ok += !!(st & VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) && dev->active)
		FAIL("device active without DRIVER_OK (status 0x%x)", st);
}

/* ---- operations ---- */

static const unsigned widths[] = { 1, 2, 4, 8, 3 };

/* Any access anywhere; reads of what is not a readable register are 0. */
static void op_raw(struct virtio_mmio *t, struct fuzz_input *in)
{
	uint64_t off = fuzz_take(in, 2) & 0x1fff;
	unsigned len = widths[fuzz_take(in, 1) % ARRAY_SIZE(widths)];
	bool is_write = fuzz_take(in, 1) & 1;
	uint8_t data[8];

	fuzz_take_bytes(in, data, sizeof(data));
	if (is_write && off == VIRTIO_MMIO_STATUS && len == 4)
		return;    /* status writes go through op_status, so resets stay rare */
	virtio_mmio_access(t, off, data, len, is_write);
	if (is_write)
		return;
	bool known = off < VIRTIO_MMIO_CONFIG && len == 4 && is_readable(off);
	bool config = off >= VIRTIO_MMIO_CONFIG && off < VIRTIO_MMIO_WINDOW;
	bool past_config = config && off - VIRTIO_MMIO_CONFIG + len > t->dev->ops->config_size;
	if ((!known && !config) || past_config) {
		for (unsigned i = 0; i < len; i++)
			if (data[i])
				FAIL("read of %u bytes at 0x%llx gave non-zero byte %u", len,
				     (unsigned long long)off, i);
	}
}

/* A ring address: in guest memory, at its end, straddling it, or anything. */
static uint64_t pick_addr(struct fuzz_input *in)
{
	uint8_t how = (uint8_t)fuzz_take(in, 1);
	uint64_t off = fuzz_take(in, 3);

	switch (how % 5) {
	case 0: return MEM_BASE + (off % MEM_SIZE & ~15ull);
	case 1: return MEM_BASE + MEM_SIZE - (off & 0xfff);
	case 2: return MEM_BASE + MEM_SPLIT - (off & 0xfff);
	case 3: return MEM_BASE + off % MEM_SIZE;
	default: return fuzz_take(in, 8);
	}
}

/* Write a known register with a value that matters to it. */
static void op_register(struct virtio_mmio *t, struct fuzz_input *in)
{
	uint32_t off = writable[fuzz_take(in, 1) % ARRAY_SIZE(writable)];
	uint32_t v = (uint32_t)fuzz_take(in, 4);
	uint64_t a;

	switch (off) {
	case VIRTIO_MMIO_QUEUE_SEL:
		v %= t->dev->num_queues + 2;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		v = (v & 0x100) ? v % (QMAX * 2) : 1u << (v % 8);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW: case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_USED_LOW:
		a = pick_addr(in);
		wr32(t, off + 4, (uint32_t)(a >> 32));
		v = (uint32_t)a;
		break;
	case VIRTIO_MMIO_STATUS:
		return;
	default:
		break;
	}
	wr32(t, off, v);
}

/* A status write: the next step, a random step, or a reset. */
static void op_status(struct virtio_mmio *t, struct fuzz_input *in)
{
	static const uint32_t steps[] = { VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER,
					  VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_DRIVER_OK };
	uint8_t how = (uint8_t)fuzz_take(in, 1);
	uint32_t st = rd32(t, VIRTIO_MMIO_STATUS);

	if (how < 160)
		wr32(t, VIRTIO_MMIO_STATUS, st | steps[how % 4]);
	else if (how < 250)
		wr32(t, VIRTIO_MMIO_STATUS, (uint32_t)fuzz_take(in, 1));
	else
		wr32(t, VIRTIO_MMIO_STATUS, 0);
}

/* What a driver does to bring the device up, with rings from guest memory
 * (sizes and some addresses from the input). */
static void op_handshake(struct virtio_mmio *t, struct fuzz_input *in)
{
	uint64_t mask = fuzz_take(in, 8);

	vd_alloc_reset(&mem);
	wr32(t, VIRTIO_MMIO_STATUS, 0);
	wr32(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr32(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	for (uint32_t half = 0; half < 2; half++) {
		wr32(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, half);
		uint32_t f = rd32(t, VIRTIO_MMIO_DEVICE_FEATURES) & (uint32_t)(mask >> (32 * half));
		if (half == 1)
			f |= 1u << (VIRTIO_F_VERSION_1 - 32);
		wr32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, half);
		wr32(t, VIRTIO_MMIO_DRIVER_FEATURES, f);
	}
	wr32(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				    VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < t->dev->num_queues; q++) {
		uint32_t n = 1u << (fuzz_take(in, 1) % 7);
		uint64_t d = vd_alloc(&mem, 16 * n, 16), a = vd_alloc(&mem, 6 + 2 * n, 2);
		uint64_t u = vd_alloc(&mem, 6 + 8 * n, 4);
		if (fuzz_take(in, 1) == 0xff)
			u = pick_addr(in);
		wr32(t, VIRTIO_MMIO_QUEUE_SEL, q);
		wr32(t, VIRTIO_MMIO_QUEUE_NUM, n);
		wr32(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)d);
		wr32(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(d >> 32));
		wr32(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)a);
		wr32(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(a >> 32));
		wr32(t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)u);
		wr32(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(u >> 32));
		wr32(t, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	wr32(t, VIRTIO_MMIO_STATUS, rd32(t, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* Config space at any offset and width; past its end reads give 0. */
static void op_config(struct virtio_mmio *t, struct fuzz_input *in)
{
	uint32_t off = (uint32_t)fuzz_take(in, 1);
	unsigned len = widths[fuzz_take(in, 1) % ARRAY_SIZE(widths)];
	bool is_write = fuzz_take(in, 1) & 1;
	uint8_t data[8];

	fuzz_take_bytes(in, data, sizeof(data));
	virtio_mmio_access(t, VIRTIO_MMIO_CONFIG + off, data, len, is_write);
	if (!is_write && off + len > t->dev->ops->config_size)
		for (unsigned i = 0; i < len; i++)
			if (data[i])
				FAIL("config read of %u at %u past the end (%u) gave data", len, off,
				     t->dev->ops->config_size);
}

/* QueueNotify (no ioeventfd: the register path kicks), then a loop turn. */
static void op_notify(struct virtio_mmio *t, struct fuzz_input *in)
{
	wr32(t, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)fuzz_take(in, 1) % (t->dev->num_queues + 2));
	event_loop_once(&loop, 0);
}

/* Arbitrary bytes into guest memory: rings with any contents. */
static void op_poke(struct fuzz_input *in)
{
	uint8_t buf[16];
	uint64_t off = fuzz_take(in, 3) % MEM_SIZE;
	unsigned len = (unsigned)fuzz_take(in, 1) % sizeof(buf) + 1;

	fuzz_take_bytes(in, buf, len);
	vd_write(&mem, MEM_BASE + off, buf, MIN((uint64_t)len, MEM_SIZE - off));
}

static void op_ack(struct virtio_mmio *t)
{
	uint64_t v;

	wr32(t, VIRTIO_MMIO_INTERRUPT_ACK, rd32(t, VIRTIO_MMIO_INTERRUPT_STATUS));
	if (read(t->irq_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		FAIL("irqfd read: %s", strerror(errno));
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
	struct virtio_mmio *t = &slots[fuzz_take(&in, 1) % ARRAY_SIZE(slots)];
	/* Each input starts from a reset device and zeroed memory, so it replays. */
	wr32(t, VIRTIO_MMIO_STATUS, 0);
	vd_fill(&mem, MEM_BASE, 0, MEM_SIZE);
	vd_alloc_reset(&mem);
	for (unsigned i = 0; i < MAX_OPS && in.n; i++) {
		switch (fuzz_take(&in, 1) % 9) {
		case 0: op_raw(t, &in); break;
		case 1: op_register(t, &in); break;
		case 2: op_status(t, &in); break;
		case 3: op_handshake(t, &in); break;
		case 4: op_config(t, &in); break;
		case 5: op_notify(t, &in); break;
		case 6: op_poke(&in); break;
		case 7: op_ack(t); break;
		default: event_loop_once(&loop, 0); break;
		}
		check_invariants(t);
	}
	wr32(t, VIRTIO_MMIO_STATUS, 0);
	return 0;
}
