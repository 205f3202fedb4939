/*
 * libFuzzer target: a hostile guest driver against virtio-blk (its worker
 * thread included) over two small image files it swaps between, as PATCH
 * /drives does.
 *
 * The input is a feature byte followed by operations: a request built from
 * the input (type, sector, header length, up to three data pieces with
 * their lengths and direction, status byte present or not, direct or
 * indirect, the image maybe swapped right after the kick, with the request
 * possibly in flight), a raw descriptor offered as a head, an avail index
 * jump, an image swap on its own. After each kick the harness waits for
 * the worker to find the ring empty, then pauses and resumes the device
 * (which delivers what the worker posted: interrupts, poisoning).
 *
 * Checked besides ASan/UBSan (the guest memory has guard pages, so a host
 * access outside it is caught):
 *  - every used entry names an outstanding head with no more bytes than the
 *    chain's writable length (vd_get_used), while the input wrote no raw
 *    descriptors;
 *  - every chain the device took is completed once: used entries == the
 *    requests counted served or refused (one counter each), unless the
 *    queue was poisoned or raw descriptors were written;
 *  - a plain read or write (16-byte header, one data piece the right way, a
 *    status byte) not raced by a swap has status OK exactly when it lies
 *    inside the image being served, else IOERR;
 *  - each swap of an active device is one config change for the driver;
 *  - neither image file changes size.
 */
#include <endian.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "blk/virtio_blk.h"
#include "core/errbuf.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "count_transport.h"
#include "fuzz_input.h"
#include "vdriver.h"

#define MEM_BASE  0x7ff00000ull
#define MEM_SIZE  (512u * 1024u)
#define MEM_SPLIT (256u * 1024u)
#define QSIZE     64u
#define SECTORS_A 64u
#define SECTORS_B 24u
#define MAX_OPS   200
#define DRAIN_SPINS 10000000

#define FAIL(...) FUZZ_FAIL("fuzz_blk", __VA_ARGS__)

static struct vd_mem mem;
static struct event_loop loop;
static struct blk_image img, spare;  /* the one served, the one swapped in next */
static struct virtio_blk blk;
static struct vd_queue q;
static struct count_transport transport;
static uint64_t pool;              /* request buffers: 64 KiB */
static uint64_t used_seen, swaps, config_before;
static bool raw_written;           /* the input wrote descriptors by hand */

static void make_image(struct blk_image *im, uint64_t sectors, const char *serial)
{
	char path[] = "/tmp/fuzz_blk.XXXXXX";
	struct errbuf eb = { 0 };
	int fd = mkstemp(path);

	if (fd < 0 || ftruncate(fd, (off_t)(sectors * 512)) ||
	    blk_image_open(im, path, false, serial, &eb))
		FAIL("image: %s", eb.msg);
	close(fd);
	unlink(path);
}

static void world_init(void)
{
	log_threshold = LOG_ERROR;
	make_image(&img, SECTORS_A, "fuzzdisk");
	make_image(&spare, SECTORS_B, "fuzzdisk");
	if (event_loop_init(&loop) || vd_mem_init(&mem, MEM_BASE, MEM_SIZE, MEM_SPLIT) ||
	    virtio_blk_init(&blk, &img, &loop))
		FAIL("set-up");
	count_transport_attach(&transport, &blk.vdev);
	blk.vdev.mem = &mem.gm;
}

/* A fresh queue and negotiation for each input. */
static void world_start(uint8_t feat)
{
	struct vd_queue_opts qo = { .size = QSIZE, .indirect_max = 8 };
	uint64_t f = blk.vdev.ops->features(&blk.vdev);

	virtio_device_reset(&blk.vdev);
	vd_alloc_reset(&mem);
	if (vd_queue_init(&q, &mem, &qo))
		FAIL("queue");
	if (feat & 1)
		f &= ~((1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	if (feat & 2)
		f &= ~(1ull << VIRTIO_RING_F_EVENT_IDX);
	if (virtio_device_set_features(&blk.vdev, f))
		FAIL("features refused");
	vd_queue_to_vq(&q, &blk.vq, true);
	if (virtio_device_activate(&blk.vdev))
		FAIL("activate");
	pool = vd_alloc(&mem, 65536, 4096);
	used_seen = swaps = 0;
	config_before = transport.config;
	raw_written = false;
	memset(&blk.counters, 0, sizeof(blk.counters));
}

/* The worker found the ring empty and is outside the gate. */
static bool worker_idle(void)
{
	pause_gate_lock(&blk.gate);
	bool idle = !blk.has_work && !blk.gate.busy;
	pause_gate_unlock(&blk.gate);
	return idle;
}

/* Wait for the worker, deliver what it posted (a pause does), read the
 * used ring. */
static void collect(void)
{
	uint32_t id, len;
	int r, spins = 0;

	while (!worker_idle())
		if (++spins > DRAIN_SPINS)
			FAIL("the worker never found the ring empty");
		else
			sched_yield();
	virtio_device_pause(&blk.vdev);
	virtio_device_resume(&blk.vdev);
	while ((r = vd_get_used(&q, &id, &len)) != 0) {
		if (r < 0 && !raw_written)
			FAIL("used entry %u len %u: not outstanding or too long", id, len);
		used_seen++;
	}
}

static void kick(void)
{
	vd_publish(&q);
	blk.vdev.ops->queue_notify(&blk.vdev, 0);
}

/* The other image in place of the served one (the worker may be busy). */
static void swap(void)
{
	if (virtio_blk_swap_image(&blk, &spare))
		FAIL("swap refused");
	swaps++;
}

static bool inside(uint64_t sector, uint64_t len)
{
	return len % 512 == 0 && sector <= img.sectors && len / 512 <= img.sectors - sector;
}

static const uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
				  VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD,
				  VIRTIO_BLK_T_WRITE_ZEROES, 99 };

/* A request from the input: header, up to 3 data pieces, status. */
static void op_request(struct fuzz_input *in)
{
	uint8_t shape = (uint8_t)fuzz_take(in, 1);
	uint32_t type = types[fuzz_take(in, 1) % 7];
	struct virtio_blk_outhdr h = { .type = htole32(type) };
	uint64_t s = fuzz_take(in, 1);
	uint64_t sector = s & 0x80 ? fuzz_take(in, 8) : s % (SECTORS_A + 2);
	unsigned n = shape & 3, hlen = shape & 4 ? (unsigned)fuzz_take(in, 1) % 24 : 16;
	bool status = !(shape & 8), indirect = shape & 16, writable_data = shape & 32;
	bool racing_swap = shape & 64;
	struct vd_buf b[6];
	unsigned k = 0;
	uint64_t at = pool + 64;

	h.sector = htole64(sector);
	vd_write(&mem, pool, &h, sizeof(h));
	if (hlen)
		b[k++] = (struct vd_buf){ .gpa = pool, .len = hlen };
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = (uint32_t)fuzz_take(in, 2) % 8192;
		b[k++] = (struct vd_buf){ .gpa = at, .len = len, .writable = writable_data };
		fuzz_take_bytes(in, vd_ptr(&mem, at, 16), 16);
		at += len + 16;
	}
	if (status)
		b[k++] = (struct vd_buf){ .gpa = pool + 32, .len = 1, .writable = true };
	if (!k || vd_add_chain(&q, b, k, indirect) < 0)
		return;
	*(uint8_t *)vd_ptr(&mem, pool + 32, 1) = 0xee;
	kick();
	if (racing_swap)
		swap();
	collect();
	bool plain = hlen == 16 && status && n == 1 && writable_data == (type == VIRTIO_BLK_T_IN) &&
		     (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_OUT) && !racing_swap;
	if (!plain || blk.vdev.needs_reset)
		return;
	uint8_t st = *(uint8_t *)vd_ptr(&mem, pool + 32, 1);
	uint8_t want = inside(sector, b[1].len) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
	if (st != want)
		FAIL("type %u sector %llu len %u: status %u, want %u", type,
		     (unsigned long long)sector, b[1].len, st, want);
}

/* A descriptor written by hand and offered as a head. */
static void op_raw(struct fuzz_input *in)
{
	uint16_t i = (uint16_t)(fuzz_take(in, 1) % QSIZE);
	uint64_t addr = fuzz_take(in, 1) & 1 ? fuzz_take(in, 8) : pool + fuzz_take(in, 2) % 60000;
	uint32_t len = (uint32_t)fuzz_take(in, 2);
	uint16_t flags = (uint16_t)fuzz_take(in, 1) & 7, next = (uint16_t)fuzz_take(in, 1);

	raw_written = true;
	vd_raw_desc(&q, i, addr, len, flags, next);
	vd_raw_offer(&q, (uint16_t)(fuzz_take(in, 1) % QSIZE));
	blk.vdev.ops->queue_notify(&blk.vdev, 0);
	collect();
}

static void op_avail_jump(struct fuzz_input *in)
{
	raw_written = true;
	vd_raw_avail_idx(&q, (uint16_t)(q.avail_idx + fuzz_take(in, 2)));
	blk.vdev.ops->queue_notify(&blk.vdev, 0);
	collect();
}

static uint64_t requests_counted(void)
{
	struct virtio_blk_counters c;

	virtio_blk_get_counters(&blk, &c);
	return c.rx_requests_read + c.rx_requests_write + c.rx_requests_flush +
	       c.rx_requests_get_id + c.rx_requests_discard + c.rx_requests_write_zeroes +
	       c.rx_requests_unsupported + c.rx_requests_malformed + c.rx_requests_out_of_range +
	       c.rx_writes_read_only;
}

static void check_world(void)
{
	struct stat st;
	const struct blk_image *a = img.sectors == SECTORS_A ? &img : &spare;
	const struct blk_image *b = a == &img ? &spare : &img;

	if (fstat(a->fd, &st) || st.st_size != SECTORS_A * 512 ||
	    fstat(b->fd, &st) || st.st_size != SECTORS_B * 512)
		FAIL("an image changed size");
	if (!blk.vdev.needs_reset && !raw_written && used_seen != requests_counted())
		FAIL("%llu used entries for %llu requests counted", (unsigned long long)used_seen,
		     (unsigned long long)requests_counted());
	if (transport.config - config_before != swaps + blk.vdev.needs_reset)
		FAIL("%llu config changes for %llu swaps",
		     (unsigned long long)(transport.config - config_before),
		     (unsigned long long)swaps);
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
	world_start((uint8_t)fuzz_take(&in, 1));
	for (unsigned ops = 0; in.n && ops < MAX_OPS && !blk.vdev.needs_reset; ops++) {
		switch (fuzz_take(&in, 1) % 10) {
		case 7: op_raw(&in); break;
		case 8: op_avail_jump(&in); break;
		case 9: swap(); break;
		default: op_request(&in); break;
		}
	}
	check_world();
	vd_queue_destroy(&q);
	return 0;
}
