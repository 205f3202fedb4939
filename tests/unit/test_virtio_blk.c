/*
 * virtio-blk against the driver simulator and a real image file: reads and
 * writes of sectors checked against the file, flush, GET_ID, discard and
 * write-zeroes (the range reads back as zeroes), a read-only drive, every
 * refusal with its status and counter (out of range, partial sectors,
 * overflowing sector numbers, data the wrong way, unknown types, a chain
 * without a status byte), a reset with requests in flight, and the image
 * swapped under a running device (PATCH /drives): the new capacity with a
 * config change, the requests in flight answered from the old file, the
 * read-only setting kept. Snapshot state (virtio_blk_state.c): saved from
 * a paused device with a request held by its limiter, loaded into a fresh
 * device on the same image, which has the same features, queue and
 * buckets and serves the held request; a truncated state, an image of
 * another size or serial, or a read-only drive refused with why, the fresh
 * device left as built. The worker answers on its own thread: the test
 * waits for the used ring.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "check.h"
#include "core/state_io.h"
#include "virtio/device_state.h"
#include "count_transport.h"
#include "blk/virtio_blk.h"
#include "vdriver.h"

#define IMG_SECTORS 2048u            /* 1 MiB */

struct rig {
	struct event_loop loop;
	struct vd_mem mem;
	struct vd_queue q;
	struct blk_image img;
	struct virtio_blk blk;
	struct count_transport tr;
	char path[64];
	uint64_t pool;
};

/* A 1 MiB image whose byte i is i * 7 + i / 512 (mod 256). */
static void make_image(const char *path)
{
	static uint8_t buf[IMG_SECTORS * 512];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + i / 512);
	CHECK_EQ(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);
}

static void rig_up(struct rig *r, bool read_only)
{
	struct vd_queue_opts qo = { .size = 128, .indirect_max = 8 };
	struct errbuf eb = { 0 };

	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "/tmp/test_virtio_blk.%d.img", (int)getpid());
	make_image(r->path);
	CHECK_EQ(blk_image_open(&r->img, r->path, read_only, "drive-serial-0123456789", &eb), 0);
	CHECK_EQ(r->img.sectors, IMG_SECTORS);
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, 0x100000, 8 << 20, 0), 0);
	CHECK_EQ(vd_queue_init(&r->q, &r->mem, &qo), 0);
	CHECK_EQ(virtio_blk_init(&r->blk, &r->img, &r->loop), 0);
	count_transport_attach(&r->tr, &r->blk.vdev);
	r->blk.vdev.mem = &r->mem.gm;
	uint64_t f = r->blk.vdev.ops->features(&r->blk.vdev);
	CHECK_EQ(virtio_device_set_features(&r->blk.vdev, f), 0);
	vd_queue_to_vq(&r->q, &r->blk.vq, true);
	CHECK_EQ(virtio_device_activate(&r->blk.vdev), 0);
	r->pool = vd_alloc(&r->mem, 4 << 20, 4096);
	CHECK(r->pool != VD_NO_GPA);
}

static void rig_down(struct rig *r)
{
	virtio_device_reset(&r->blk.vdev);
	virtio_blk_destroy(&r->blk);
	blk_image_close(&r->img);
	unlink(r->path);
	vd_queue_destroy(&r->q);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

/* Guest addresses in the pool: the header, the data, the status. */
#define HDR_OFF 0u
#define STATUS_OFF 64u
#define DATA_OFF 4096u

/* Submit a request: the header (readable), then @bufs, then the status
 * byte (writable) unless @no_status. Returns the head. */
static int submit(struct rig *r, uint32_t type, uint64_t sector, const struct vd_buf *bufs,
		  unsigned n, bool no_status)
{
	struct virtio_blk_outhdr h = { .type = htole32(type), .sector = htole64(sector) };
	struct vd_buf b[10];
	unsigned k = 0;

	vd_write(&r->mem, r->pool + HDR_OFF, &h, sizeof(h));
	vd_fill(&r->mem, r->pool + STATUS_OFF, 0xee, 1);
	b[k++] = (struct vd_buf){ .gpa = r->pool + HDR_OFF, .len = sizeof(h) };
	for (unsigned i = 0; i < n; i++)
		b[k++] = bufs[i];
	if (!no_status)
		b[k++] = (struct vd_buf){ .gpa = r->pool + STATUS_OFF, .len = 1, .writable = true };
	int head = vd_add_chain(&r->q, b, k, false);
	vd_publish(&r->q);
	r->blk.vdev.ops->queue_notify(&r->blk.vdev, 0);
	return head;
}

/* Wait (up to 2 s) for the next used entry: its length, or -1. */
static long wait_used(struct rig *r, int head)
{
	uint32_t id, len;

	for (int i = 0; i < 2000; i++) {
		if (vd_get_used(&r->q, &id, &len) > 0) {
			CHECK_EQ((int)id, head);
			return len;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return -1;
}

static uint8_t status_of(struct rig *r)
{
	uint8_t s = 0xff;

	vd_read(&r->mem, r->pool + STATUS_OFF, &s, 1);
	return s;
}

/* One request start to end: the status, and the used length in *@used. */
static uint8_t run(struct rig *r, uint32_t type, uint64_t sector, const struct vd_buf *bufs,
		   unsigned n, long *used)
{
	int head = submit(r, type, sector, bufs, n, false);

	*used = wait_used(r, head);
	return status_of(r);
}

static uint8_t image_byte(uint64_t i)
{
	return (uint8_t)(i * 7 + i / 512);
}

static void test_read_write(void)
{
	struct rig r;
	long used;
	uint8_t buf[2048];

	rig_up(&r, false);
	CHECK(!(r.blk.vdev.features & (1ull << VIRTIO_BLK_F_RO)));
	/* Two sectors from sector 3, in two buffers of one sector each. */
	struct vd_buf rd[2] = { { r.pool + DATA_OFF, 512, true }, { r.pool + DATA_OFF + 8192, 512, true } };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, 3, rd, 2, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 1025);
	vd_read(&r.mem, r.pool + DATA_OFF, buf, 512);
	vd_read(&r.mem, r.pool + DATA_OFF + 8192, buf + 512, 512);
	bool same = true;
	for (unsigned i = 0; i < 1024; i++)
		same &= buf[i] == image_byte(3 * 512 + i);
	CHECK(same);
	/* Write four sectors at 100, then read them back from the file. */
	memset(buf, 0x5a, sizeof(buf));
	vd_write(&r.mem, r.pool + DATA_OFF, buf, 2048);
	struct vd_buf wr = { r.pool + DATA_OFF, 2048, false };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_OUT, 100, &wr, 1, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 1);
	CHECK_EQ(run(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &used), VIRTIO_BLK_S_OK);
	int fd = open(r.path, O_RDONLY);
	uint8_t back[2048];
	CHECK_EQ(pread(fd, back, sizeof(back), 100 * 512), (ssize_t)sizeof(back));
	close(fd);
	CHECK(!memcmp(back, buf, sizeof(back)));
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&r.blk, &c);
	CHECK_EQ(c.rx_requests_read, 1);
	CHECK_EQ(c.rx_requests_write, 1);
	CHECK_EQ(c.rx_requests_flush, 1);
	CHECK_EQ(c.tx_read_bytes, 1024);
	CHECK_EQ(c.rx_write_bytes, 2048);
	/* The last sector is readable; the one past it is not. */
	struct vd_buf one = { r.pool + DATA_OFF, 512, true };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, &one, 1, &used), VIRTIO_BLK_S_OK);
	rig_down(&r);
}

static void test_get_id_and_config(void)
{
	struct rig r;
	struct virtio_blk_config cfg;
	long used;
	char id[32] = { 0 };

	rig_up(&r, false);
	r.blk.vdev.ops->config_read(&r.blk.vdev, &cfg);
	CHECK_EQ(le64toh(cfg.capacity), IMG_SECTORS);
	CHECK_EQ(le32toh(cfg.blk_size), 512);
	CHECK_EQ(le32toh(cfg.max_discard_seg), 1);
	struct vd_buf b = { r.pool + DATA_OFF, 20, true };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_GET_ID, 0, &b, 1, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 21);
	vd_read(&r.mem, r.pool + DATA_OFF, id, 20);
	CHECK(!memcmp(id, "drive-serial-0123456", 20));      /* the first 20 bytes */
	rig_down(&r);
}

static void test_discard_and_zeroes(void)
{
	struct rig r;
	long used;
	struct virtio_blk_discard_write_zeroes seg = { .sector = htole64(16), .num_sectors = htole32(8) };

	rig_up(&r, false);
	CHECK(r.blk.vdev.features & (1ull << VIRTIO_BLK_F_DISCARD));
	vd_write(&r.mem, r.pool + DATA_OFF, &seg, sizeof(seg));
	struct vd_buf s = { r.pool + DATA_OFF, sizeof(seg), false };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0, &s, 1, &used), VIRTIO_BLK_S_OK);
	seg.sector = htole64(512);
	vd_write(&r.mem, r.pool + DATA_OFF, &seg, sizeof(seg));
	CHECK_EQ(run(&r, VIRTIO_BLK_T_DISCARD, 0, &s, 1, &used), VIRTIO_BLK_S_OK);
	int fd = open(r.path, O_RDONLY);
	uint8_t back[4096], zero[4096] = { 0 };
	CHECK_EQ(pread(fd, back, sizeof(back), 16 * 512), (ssize_t)sizeof(back));
	CHECK(!memcmp(back, zero, sizeof(back)));
	CHECK_EQ(pread(fd, back, 512, 15 * 512), 512);   /* the sector before is kept */
	CHECK_EQ(back[0], image_byte(15 * 512));
	close(fd);
	/* Discard takes no flags; write-zeroes only UNMAP. */
	seg.flags = htole32(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	vd_write(&r.mem, r.pool + DATA_OFF, &seg, sizeof(seg));
	CHECK_EQ(run(&r, VIRTIO_BLK_T_DISCARD, 0, &s, 1, &used), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(run(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0, &s, 1, &used), VIRTIO_BLK_S_OK);
	/* Past the end. */
	seg = (struct virtio_blk_discard_write_zeroes){ .sector = htole64(IMG_SECTORS - 1),
							.num_sectors = htole32(2) };
	vd_write(&r.mem, r.pool + DATA_OFF, &seg, sizeof(seg));
	CHECK_EQ(run(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0, &s, 1, &used), VIRTIO_BLK_S_IOERR);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&r.blk, &c);
	CHECK_EQ(c.rx_requests_write_zeroes, 2);
	CHECK_EQ(c.rx_requests_discard, 1);
	CHECK_EQ(c.rx_requests_unsupported, 1);
	CHECK_EQ(c.rx_requests_out_of_range, 1);
	rig_down(&r);
}

static void test_refusals(void)
{
	struct rig r;
	long used;

	rig_up(&r, false);
	struct vd_buf one = { r.pool + DATA_OFF, 512, true };
	struct vd_buf half = { r.pool + DATA_OFF, 100, true };
	struct vd_buf wr = { r.pool + DATA_OFF, 512, false };
	/* Past the end, overflowing, partial sectors. */
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, IMG_SECTORS, &one, 1, &used), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(used, 1);
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, UINT64_MAX - 1, &one, 1, &used), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, 0, &half, 1, &used), VIRTIO_BLK_S_IOERR);
	/* Data the wrong way: a read with readable data, a write with writable. */
	struct vd_buf rd_wrong[2] = { wr, one };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, 0, rd_wrong, 2, &used), VIRTIO_BLK_S_IOERR);
	struct vd_buf wr_wrong = { r.pool + DATA_OFF, 512, true };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_OUT, 0, &wr_wrong, 1, &used), VIRTIO_BLK_S_IOERR);
	/* Unknown type. */
	CHECK_EQ(run(&r, 99, 0, NULL, 0, &used), VIRTIO_BLK_S_UNSUPP);
	/* No status byte: completed with 0, nothing written. */
	int head = submit(&r, VIRTIO_BLK_T_IN, 0, &one, 0, true);
	CHECK_EQ(wait_used(&r, head), 0);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&r.blk, &c);
	CHECK_EQ(c.rx_requests_out_of_range, 3);
	CHECK_EQ(c.rx_requests_malformed, 3);
	CHECK_EQ(c.rx_requests_unsupported, 1);
	CHECK_EQ(c.rx_requests_read + c.rx_requests_write, 0);
	/* The queue still serves. */
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, 1, &one, 1, &used), VIRTIO_BLK_S_OK);
	rig_down(&r);
}

static void test_read_only(void)
{
	struct rig r;
	long used;
	struct virtio_blk_discard_write_zeroes seg = { .sector = htole64(0), .num_sectors = htole32(1) };

	rig_up(&r, true);
	CHECK(r.blk.vdev.features & (1ull << VIRTIO_BLK_F_RO));
	CHECK(!(r.blk.vdev.features & (1ull << VIRTIO_BLK_F_DISCARD)));
	struct vd_buf wr = { r.pool + DATA_OFF, 512, false };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_OUT, 0, &wr, 1, &used), VIRTIO_BLK_S_IOERR);
	vd_write(&r.mem, r.pool + DATA_OFF, &seg, sizeof(seg));
	struct vd_buf s = { r.pool + DATA_OFF, sizeof(seg), false };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_WRITE_ZEROES, 0, &s, 1, &used), VIRTIO_BLK_S_IOERR);
	struct virtio_blk_counters c;
	virtio_blk_get_counters(&r.blk, &c);
	CHECK_EQ(c.rx_writes_read_only, 2);
	int fd = open(r.path, O_RDONLY);
	uint8_t b;
	CHECK_EQ(pread(fd, &b, 1, 0), 1);
	CHECK_EQ(b, image_byte(0));
	close(fd);
	rig_down(&r);
}

/* A pause returns with nothing in flight, and requests wait until resume. */
static void test_pause_holds(void)
{
	struct rig r;

	rig_up(&r, false);
	virtio_device_pause(&r.blk.vdev);
	struct vd_buf one = { r.pool + DATA_OFF, 512, true };
	int head = submit(&r, VIRTIO_BLK_T_IN, 0, &one, 1, false);
	uint32_t id, len;
	nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
	CHECK_EQ(vd_get_used(&r.q, &id, &len), 0);
	virtio_device_resume(&r.blk.vdev);
	CHECK_EQ(wait_used(&r, head), 513);
	rig_down(&r);
}

static void test_image_refused(void)
{
	struct blk_image img;
	struct errbuf eb = { 0 };

	CHECK_EQ(blk_image_open(&img, "/nonexistent/disk.img", false, "x", &eb), -ENOENT);
	CHECK(strstr(eb.msg, "/nonexistent/disk.img") != NULL);
	CHECK_EQ(blk_image_open(&img, "/tmp", true, "x", &eb), -EINVAL);
	CHECK(strstr(eb.msg, "neither a file nor a block device") != NULL);
}

/* A second image of @sectors sectors, every byte @fill; its path in @path. */
static void make_other_image(char *path, size_t size, uint64_t sectors, int fill)
{
	static uint8_t buf[512];
	int fd;

	snprintf(path, size, "/tmp/test_virtio_blk.%d.next.img", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	memset(buf, fill, sizeof(buf));
	for (uint64_t i = 0; i < sectors; i++)
		CHECK_EQ(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);
}

/* A grown file in place of the drive's: config space shows its capacity,
 * the driver gets one config change (a new generation), reads reach its
 * new sectors and writes land in it; the old file is left as it was. */
static void test_swap_image(void)
{
	struct virtio_blk_config cfg;
	struct errbuf eb = { 0 };
	struct blk_image next;
	char path[80];
	struct rig r;
	long used;
	uint8_t b[512];

	rig_up(&r, false);
	make_other_image(path, sizeof(path), IMG_SECTORS + 8, 0xa5);
	CHECK_EQ(blk_image_open(&next, path, false, "drive-serial-0123456789", &eb), 0);
	uint32_t gen = r.blk.vdev.config_generation;
	CHECK_EQ(virtio_blk_swap_image(&r.blk, &next), 0);
	CHECK_EQ(next.sectors, IMG_SECTORS);                 /* the old image, to close */
	blk_image_close(&next);
	r.blk.vdev.ops->config_read(&r.blk.vdev, &cfg);
	CHECK_EQ(le64toh(cfg.capacity), IMG_SECTORS + 8);
	CHECK_EQ(r.tr.config, 1);
	CHECK_EQ(r.blk.vdev.config_generation, gen + 1);
	struct vd_buf one = { r.pool + DATA_OFF, 512, true };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, IMG_SECTORS + 7, &one, 1, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 513);
	vd_read(&r.mem, r.pool + DATA_OFF, b, sizeof(b));
	CHECK(b[0] == 0xa5 && b[511] == 0xa5);
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, IMG_SECTORS + 8, &one, 1, &used), VIRTIO_BLK_S_IOERR);
	memset(b, 0x3c, sizeof(b));
	vd_write(&r.mem, r.pool + DATA_OFF, b, sizeof(b));
	struct vd_buf wr = { r.pool + DATA_OFF, 512, false };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_OUT, 0, &wr, 1, &used), VIRTIO_BLK_S_OK);
	int fd = open(path, O_RDONLY), old = open(r.path, O_RDONLY);
	CHECK_EQ(pread(fd, b, 1, 0), 1);
	CHECK_EQ(b[0], 0x3c);
	CHECK_EQ(pread(old, b, 1, 0), 1);
	CHECK_EQ(b[0], image_byte(0));
	close(fd);
	close(old);
	/* The GET_ID serial is the drive's still. */
	char id[20];
	struct vd_buf idb = { r.pool + DATA_OFF, 20, true };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_GET_ID, 0, &idb, 1, &used), VIRTIO_BLK_S_OK);
	vd_read(&r.mem, r.pool + DATA_OFF, id, sizeof(id));
	CHECK(!memcmp(id, "drive-serial-0123456", 20));
	unlink(path);
	rig_down(&r);
}

/* A read-only drive stays read-only: an image opened read-write is
 * refused (nothing changes, no config change), one opened read-only takes
 * its place and writes are still refused. */
static void test_swap_read_only_kept(void)
{
	struct errbuf eb = { 0 };
	struct blk_image next;
	char path[80];
	struct rig r;
	long used;

	rig_up(&r, true);
	make_other_image(path, sizeof(path), 16, 0x11);
	CHECK_EQ(blk_image_open(&next, path, false, "x", &eb), 0);
	CHECK_EQ(virtio_blk_swap_image(&r.blk, &next), -EINVAL);
	CHECK_EQ(next.sectors, 16);                          /* still the one refused */
	blk_image_close(&next);
	CHECK_EQ(r.tr.config, 0);
	CHECK_EQ(r.img.sectors, IMG_SECTORS);
	CHECK_EQ(blk_image_open(&next, path, true, "x", &eb), 0);
	CHECK_EQ(virtio_blk_swap_image(&r.blk, &next), 0);
	blk_image_close(&next);
	CHECK_EQ(r.img.sectors, 16);
	CHECK(r.img.read_only);
	CHECK(r.blk.vdev.ops->features(&r.blk.vdev) & (1ull << VIRTIO_BLK_F_RO));
	struct vd_buf wr = { r.pool + DATA_OFF, 512, false };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_OUT, 0, &wr, 1, &used), VIRTIO_BLK_S_IOERR);
	struct vd_buf one = { r.pool + DATA_OFF, 512, true };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, 15, &one, 1, &used), VIRTIO_BLK_S_OK);
	unlink(path);
	rig_down(&r);
}

#define SWAP_REQS 40u
#define SWAP_LEN 16384u

/* Requests queued, then the image swapped (and the old one closed) while
 * the worker serves them: each is answered OK, its data wholly from the
 * old file or wholly from the new, and in the order served every old one
 * comes before every new one. A swap that did not wait for the request in
 * flight would read from a closed fd (IOERR) or mix the two. */
static void test_swap_in_flight(void)
{
	struct errbuf eb = { 0 };
	struct blk_image next;
	char path[80];
	struct rig r;
	int heads[SWAP_REQS];
	unsigned n_old = 0, n_new = 0;
	bool order_ok = true, whole = true;

	rig_up(&r, false);
	make_other_image(path, sizeof(path), IMG_SECTORS, 0xa5);
	CHECK_EQ(blk_image_open(&next, path, false, "x", &eb), 0);
	for (unsigned k = 0; k < SWAP_REQS; k++) {
		struct virtio_blk_outhdr h = { .type = htole32(VIRTIO_BLK_T_IN),
					       .sector = htole64(k * (SWAP_LEN / 512)) };
		uint64_t hdr = r.pool + 32 * k, st = r.pool + 2048 + k;
		struct vd_buf b[3] = { { hdr, sizeof(h), false },
				       { r.pool + 65536 + (uint64_t)k * SWAP_LEN, SWAP_LEN, true },
				       { st, 1, true } };
		vd_write(&r.mem, hdr, &h, sizeof(h));
		vd_fill(&r.mem, st, 0xee, 1);
		heads[k] = vd_add_chain(&r.q, b, 3, false);
	}
	vd_publish(&r.q);
	r.blk.vdev.ops->queue_notify(&r.blk.vdev, 0);
	/* Swap once the worker has answered one: a request at least from each. */
	for (int t = 0; t < 2000000 && !vd_used_idx(&r.q); t++)
		sched_yield();
	CHECK_EQ(virtio_blk_swap_image(&r.blk, &next), 0);
	blk_image_close(&next);                               /* the old fd, gone */
	for (unsigned n = 0; n < SWAP_REQS; n++) {
		uint32_t id = 0, len = 0;
		for (int t = 0; t < 2000 && vd_get_used(&r.q, &id, &len) <= 0; t++)
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		unsigned k = 0;
		while (k < SWAP_REQS && heads[k] != (int)id)
			k++;
		CHECK(k < SWAP_REQS);
		if (k == SWAP_REQS)
			break;
		CHECK_EQ(len, SWAP_LEN + 1);
		uint8_t st = 0, *d = vd_ptr(&r.mem, r.pool + 65536 + (uint64_t)k * SWAP_LEN, SWAP_LEN);
		vd_read(&r.mem, r.pool + 2048 + k, &st, 1);
		CHECK_EQ(st, VIRTIO_BLK_S_OK);
		bool is_old = true, is_new = true;
		for (unsigned i = 0; i < SWAP_LEN; i++) {
			is_old &= d[i] == image_byte((uint64_t)k * SWAP_LEN + i);
			is_new &= d[i] == 0xa5;
		}
		whole &= is_old || is_new;
		order_ok &= !(is_old && n_new);
		n_old += is_old;
		n_new += is_new;
	}
	CHECK(whole);
	CHECK(order_ok);
	CHECK_EQ(n_old + n_new, SWAP_REQS);
	printf("  swap in flight: %u requests answered from the old file, %u from the new\n",
	       n_old, n_new);
	unlink(path);
	rig_down(&r);
}

/* The limiter's clock, moved by the test (the worker reads it). */
static uint64_t fake_ns = 1000000000ull;

static uint64_t fake_now(const struct rl_clock *c)
{
	return __atomic_load_n(&fake_ns, __ATOMIC_SEQ_CST);
}

static const struct rl_clock fake_clock = { .now_ns = fake_now };

/* Pump the loop (the worker's posted waits, the limiter's timer) for up to
 * @ms: the next used entry's head, or -1. */
static int pump_used(struct rig *r, int ms)
{
	uint32_t id, len;

	for (int i = 0; i < ms; i++) {
		if (vd_get_used(&r->q, &id, &len) > 0)
			return (int)id;
		event_loop_once(&r->loop, 1);
	}
	return -1;
}

/* Firecracker's drive rate limiter: with 2 ops per 100 ms and no burst,
 * two flushes pass and the third is held (popped, not served, counted)
 * while the bucket is empty, the ring behind it untouched; once the
 * clock has moved a refill on, the loop's timer lets the worker serve it.
 * Removing the limiter lets everything through at once. */
static void test_rate_limit(void)
{
	struct rate_limiter_config cfg = { .ops = { .size = 2, .refill_time = 100 } };
	struct virtio_blk_counters c;
	struct rig r;

	rig_up(&r, false);
	r.blk.limiter.clock = &fake_clock;
	CHECK_EQ(virtio_blk_set_limit(&r.blk, &cfg), 0);
	for (int i = 0; i < 2; i++) {
		int head = submit(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
		CHECK_EQ(pump_used(&r, 2000), head);
		CHECK_EQ(status_of(&r), VIRTIO_BLK_S_OK);
	}
	int held = submit(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
	CHECK_EQ(pump_used(&r, 150), -1);            /* no tokens, no time passed */
	virtio_blk_get_counters(&r.blk, &c);
	CHECK(c.rx_requests_throttled >= 1);
	CHECK_EQ(c.rx_requests_flush, 2);
	__atomic_add_fetch(&fake_ns, 100000000ull, __ATOMIC_SEQ_CST);   /* a refill */
	CHECK_EQ(pump_used(&r, 2000), held);
	CHECK_EQ(status_of(&r), VIRTIO_BLK_S_OK);
	/* The refill brought two: one left after the held one, then empty
	 * again; the one after waits until the limiter is taken away. */
	int next = submit(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
	CHECK_EQ(pump_used(&r, 2000), next);
	int last = submit(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
	CHECK_EQ(pump_used(&r, 50), -1);
	struct rate_limiter_config none = { 0 }, got;
	CHECK_EQ(virtio_blk_set_limit(&r.blk, &none), 0);
	CHECK_EQ(pump_used(&r, 2000), last);
	virtio_blk_get_limit(&r.blk, &got);
	CHECK_EQ(got.ops.size, 0);
	virtio_blk_get_counters(&r.blk, &c);
	CHECK_EQ(c.rx_requests_flush, 5);
	rig_down(&r);
}

/* --- snapshot state ------------------------------------------------------------ */

/* A device built fresh on the rig's guest memory, as a restore builds it. */
struct twin {
	struct blk_image img;
	struct virtio_blk blk;
	struct count_transport tr;
	char why[256];
};

/* Build @t on @path and load @len bytes of @state into it. */
static bool twin_load(struct rig *r, struct twin *t, const char *path, bool ro, const char *serial,
		      const uint8_t *state, size_t len)
{
	struct errbuf eb = { 0 };
	struct state_reader rd;

	memset(t, 0, sizeof(*t));
	CHECK_EQ(blk_image_open(&t->img, path, ro, serial, &eb), 0);
	CHECK_EQ(virtio_blk_init(&t->blk, &t->img, &r->loop), 0);
	count_transport_attach(&t->tr, &t->blk.vdev);
	t->blk.vdev.mem = &r->mem.gm;
	state_reader_init(&rd, state, len, &eb);
	bool ok = virtio_device_state_load(&t->blk.vdev, &rd);
	snprintf(t->why, sizeof(t->why), "%s", eb.msg);
	return ok;
}

static void twin_down(struct twin *t)
{
	virtio_device_reset(&t->blk.vdev);
	virtio_blk_destroy(&t->blk);
	blk_image_close(&t->img);
}

/* Nothing of a refused state reached the device. */
static void check_untouched(const struct twin *t)
{
	CHECK(!t->blk.vdev.active && !t->blk.vdev.features && !t->blk.vq.size);
	CHECK_EQ(t->blk.limiter.ops.cfg.size, 0);
}

/* Paused with one request served and one held by the limiter: the state
 * has the held one as not taken; the fresh device has the same features,
 * queue, indices and buckets, and once its limiter is lifted serves the
 * held request from the ring. */
static void test_state_round_trip(void)
{
	struct rate_limiter_config cfg = { .ops = { .size = 1, .refill_time = 100000 } };
	struct rate_limiter_config none = { 0 };
	struct state_writer w;
	struct errbuf eb = { 0 };
	struct twin t;
	struct rig r;

	rig_up(&r, false);
	r.blk.limiter.clock = &fake_clock;
	CHECK_EQ(virtio_blk_set_limit(&r.blk, &cfg), 0);
	int first = submit(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
	CHECK_EQ(pump_used(&r, 2000), first);
	int held = submit(&r, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
	CHECK_EQ(pump_used(&r, 100), -1);
	virtio_device_pause(&r.blk.vdev);
	CHECK_EQ(vq_base(&r.blk.vq), 1);            /* the held request: not taken */
	state_writer_init(&w);
	CHECK_EQ(virtio_device_state_save(&r.blk.vdev, &w, &eb), 0);
	CHECK(!w.failed);

	CHECK(twin_load(&r, &t, r.path, false, "drive-serial-0123456789", w.buf, w.len));
	if (t.why[0])
		fprintf(stderr, "  %s\n", t.why);
	CHECK(t.blk.vdev.active && t.blk.vdev.paused);
	CHECK_EQ(t.blk.vdev.features, r.blk.vdev.features);
	CHECK(t.blk.vq.size == r.blk.vq.size && t.blk.vq.desc_gpa == r.blk.vq.desc_gpa &&
	      t.blk.vq.avail_gpa == r.blk.vq.avail_gpa && t.blk.vq.used_gpa == r.blk.vq.used_gpa);
	CHECK_EQ(t.blk.vq.last_avail_idx, 1);
	CHECK_EQ(t.blk.vq.used_idx, r.blk.vq.used_idx);
	CHECK(!memcmp(&t.blk.limiter.ops.cfg, &cfg.ops, sizeof(cfg.ops)));
	CHECK_EQ(t.blk.limiter.ops.budget, r.blk.limiter.ops.budget);
	CHECK_EQ(t.blk.limiter.bw.cfg.size, 0);
	CHECK_EQ(virtio_blk_set_limit(&t.blk, &none), 0);
	virtio_device_resume(&t.blk.vdev);
	CHECK_EQ(pump_used(&r, 2000), held);
	CHECK_EQ(status_of(&r), VIRTIO_BLK_S_OK);
	twin_down(&t);
	state_writer_free(&w);
	rig_down(&r);
}

/* What a restore must refuse, each with why and the fresh device as
 * built: the state cut anywhere in the device's sections, an image of
 * another size, a drive of another serial, a read-only drive. */
static void test_state_refused(void)
{
	struct state_writer w;
	struct errbuf eb = { 0 };
	struct twin t;
	struct rig r;
	char other[64];
	long used;

	rig_up(&r, false);
	struct vd_buf one = { r.pool + DATA_OFF, 512, true };
	CHECK_EQ(run(&r, VIRTIO_BLK_T_IN, 0, &one, 1, &used), VIRTIO_BLK_S_OK);
	virtio_device_pause(&r.blk.vdev);
	state_writer_init(&w);
	CHECK_EQ(virtio_device_state_save(&r.blk.vdev, &w, &eb), 0);
	for (size_t cut = 1; cut < 160 && cut < w.len; cut += 7) {
		CHECK(!twin_load(&r, &t, r.path, false, "drive-serial-0123456789", w.buf,
				 w.len - cut));
		check_untouched(&t);
		twin_down(&t);
	}
	make_other_image(other, sizeof(other), IMG_SECTORS + 8, 0);
	CHECK(!twin_load(&r, &t, other, false, "drive-serial-0123456789", w.buf, w.len));
	CHECK(strstr(t.why, "VBLK") && strstr(t.why, "had 2048 sectors, its image now has 2056"));
	check_untouched(&t);
	twin_down(&t);
	unlink(other);
	CHECK(!twin_load(&r, &t, r.path, false, "another-drive", w.buf, w.len));
	CHECK(strstr(t.why, "the snapshot's drive is \"drive-serial-0123456\""));
	check_untouched(&t);
	twin_down(&t);
	/* Its features (RO, no DISCARD) are not those negotiated. */
	CHECK(!twin_load(&r, &t, r.path, true, "drive-serial-0123456789", w.buf, w.len));
	CHECK(strstr(t.why, "does not offer"));
	check_untouched(&t);
	twin_down(&t);
	state_writer_free(&w);
	rig_down(&r);
}

int main(void)
{
	RUN_TEST(test_read_write);
	RUN_TEST(test_get_id_and_config);
	RUN_TEST(test_discard_and_zeroes);
	RUN_TEST(test_refusals);
	RUN_TEST(test_read_only);
	RUN_TEST(test_pause_holds);
	RUN_TEST(test_image_refused);
	RUN_TEST(test_swap_image);
	RUN_TEST(test_swap_read_only_kept);
	RUN_TEST(test_swap_in_flight);
	RUN_TEST(test_rate_limit);
	RUN_TEST(test_state_round_trip);
	RUN_TEST(test_state_refused);
	return CHECK_DONE();
}
