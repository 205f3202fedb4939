/*
 * virtio-blk behind the vhost-user server, as `kvmini vhost blk` serves it:
 * the test front-end (tests/support/vu_frontend.c) reads the features and
 * the config space of the real device on a real image over the socket.
 * Covered: VIRTIO_BLK_F_RO for a read-only image and DISCARD/WRITE_ZEROES
 * for a writable one; GET_CONFIG of the whole space and of single fields
 * (capacity, blk_size, seg_max) at their offsets; reads past the space's
 * end answered with the spec's empty reply, the connection kept; GET_CONFIG
 * refused until the CONFIG protocol feature is on; SET_CONFIG changes
 * nothing (no writable field).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>

#include "check.h"
#include "blk/virtio_blk.h"
#include "core/log.h"
#include "transport/vhost_user.h"
#include "vu_frontend.h"

#define SECTORS 2051u               /* 1 MiB and 3 sectors */
#define CFG_SIZE ((uint32_t)sizeof(struct virtio_blk_config))

struct blk_rig {
	struct vfe f;
	struct blk_image img;
	struct virtio_blk blk;
	char path[64];
};

static void rig_up(struct blk_rig *r, bool read_only)
{
	struct errbuf eb = { 0 };

	strcpy(r->path, "/tmp/kvmini-vblk-XXXXXX");
	int fd = mkstemp(r->path);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, SECTORS * 512ull + 100), 0);  /* a partial sector is not offered */
	close(fd);
	CHECK_EQ(vfe_init(&r->f), 0);
	CHECK_EQ(blk_image_open(&r->img, r->path, read_only, "vblk-serial", &eb), 0);
	CHECK_EQ(virtio_blk_init(&r->blk, &r->img, &r->f.loop), 0);
	CHECK_EQ(vfe_serve(&r->f, &r->blk.vdev, NULL), 0);
}

/* The server first: its disconnect resets the device. */
static void rig_down(struct blk_rig *r)
{
	vfe_teardown(&r->f);
	virtio_blk_destroy(&r->blk);
	blk_image_close(&r->img);
	unlink(r->path);
}

/* GET_CONFIG of @size bytes at @offset: the reply's payload size (0: the
 * spec's error reply), the data in @out. */
static uint32_t get_config(struct vfe *f, uint32_t offset, uint32_t size, void *out)
{
	struct vhost_user_config cfg = { .offset = offset, .size = size };
	struct vfe_reply r;

	CHECK_EQ(vfe_call(f, VHOST_USER_GET_CONFIG, VFE_NO_REPLY, &cfg,
			  VHOST_USER_CONFIG_HDR_SIZE + size, NULL, 0, &r), 1);
	CHECK_EQ(r.hdr.request, VHOST_USER_GET_CONFIG);
	if (r.hdr.size)
		memcpy(out, r.p.config.data, r.p.config.size);
	return r.hdr.size;
}

static void test_features(void)
{
	struct blk_rig r;

	rig_up(&r, true);
	uint64_t ro = vfe_get_u64(&r.f, VHOST_USER_GET_FEATURES);
	CHECK(ro & (1ull << VIRTIO_BLK_F_RO));
	CHECK(ro & (1ull << VIRTIO_F_VERSION_1));
	CHECK(ro & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	CHECK(!(ro & (1ull << VIRTIO_BLK_F_DISCARD)));
	CHECK(!(ro & (1ull << VIRTIO_BLK_F_WRITE_ZEROES)));
	CHECK(vfe_get_u64(&r.f, VHOST_USER_GET_PROTOCOL_FEATURES) & VHOST_USER_PF(CONFIG));
	CHECK_EQ(vfe_get_u64(&r.f, VHOST_USER_GET_QUEUE_NUM), 1);
	rig_down(&r);

	rig_up(&r, false);
	uint64_t rw = vfe_get_u64(&r.f, VHOST_USER_GET_FEATURES);
	CHECK(!(rw & (1ull << VIRTIO_BLK_F_RO)));
	CHECK(rw & (1ull << VIRTIO_BLK_F_DISCARD));
	CHECK(rw & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	CHECK(rw & (1ull << VIRTIO_BLK_F_FLUSH));
	rig_down(&r);
}

static void test_get_config(void)
{
	struct blk_rig r;
	struct virtio_blk_config c;
	uint64_t cap = 0;
	uint32_t v = 0;

	rig_up(&r, false);
	/* Refused (empty reply) until the CONFIG protocol feature is on. */
	CHECK_EQ(get_config(&r.f, 0, 8, &cap), 0);
	CHECK_EQ(vfe_u64(&r.f, VHOST_USER_SET_PROTOCOL_FEATURES,
			 VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(CONFIG)), 0);
	memset(&c, 0xff, sizeof(c));
	CHECK_EQ(get_config(&r.f, 0, CFG_SIZE, &c), VHOST_USER_CONFIG_HDR_SIZE + CFG_SIZE);
	CHECK_EQ(le64toh(c.capacity), SECTORS);
	CHECK_EQ(le32toh(c.blk_size), 512);
	CHECK_EQ(le32toh(c.seg_max), VIRTIO_BLK_SEG_MAX);
	CHECK_EQ(le32toh(c.size_max), VIRTIO_BLK_SIZE_MAX);
	CHECK_EQ(le32toh(c.max_discard_seg), 1);
	CHECK_EQ(le32toh(c.max_write_zeroes_seg), 1);
	/* One field at its offset, as QEMU and UML read them. */
	CHECK_EQ(get_config(&r.f, 0, 8, &cap), VHOST_USER_CONFIG_HDR_SIZE + 8);
	CHECK_EQ(le64toh(cap), SECTORS);
	CHECK_EQ(get_config(&r.f, offsetof(struct virtio_blk_config, blk_size), 4, &v),
		 VHOST_USER_CONFIG_HDR_SIZE + 4);
	CHECK_EQ(le32toh(v), 512);
	/* Past the end: the last byte, one byte beyond, a field straddling it. */
	CHECK_EQ(get_config(&r.f, CFG_SIZE - 1, 1, &v), VHOST_USER_CONFIG_HDR_SIZE + 1);
	CHECK_EQ(get_config(&r.f, CFG_SIZE, 1, &v), 0);
	CHECK_EQ(get_config(&r.f, CFG_SIZE - 4, 8, &cap), 0);
	CHECK_EQ(get_config(&r.f, UINT32_MAX - 3, 8, &cap), 0);
	CHECK(vhost_user_server_connected(&r.f.srv));
	/* No writable field: SET_CONFIG is acked and changes nothing. */
	struct vhost_user_config set = { .offset = 0, .size = 8 };
	memset(set.data, 0x5a, 8);
	CHECK_EQ(vfe_ack(&r.f, VHOST_USER_SET_CONFIG, &set, VHOST_USER_CONFIG_HDR_SIZE + 8, NULL, 0),
		 0);
	CHECK_EQ(get_config(&r.f, 0, 8, &cap), VHOST_USER_CONFIG_HDR_SIZE + 8);
	CHECK_EQ(le64toh(cap), SECTORS);
	rig_down(&r);
}

int main(void)
{
	log_threshold = LOG_ERROR;   /* refusals are expected here */
	RUN_TEST(test_features);
	RUN_TEST(test_get_config);
	return CHECK_DONE();
}
