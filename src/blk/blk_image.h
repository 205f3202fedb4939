/*
 * A raw disk image on the host, the virtio-blk device's backend: a regular
 * file or a block device, opened read-only or read-write, its size in
 * 512-byte sectors (a partial last sector is not offered), and the
 * operations the device maps requests onto. Every offset and length the
 * device passes has been checked against the size already.
 */
#ifndef KVMINI_BLK_BLK_IMAGE_H
#define KVMINI_BLK_BLK_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/errbuf.h"

#define BLK_SECTOR_SIZE 512u
/* Most pieces one transfer comes in (a virtqueue chain's at most). */
#define BLK_IMAGE_MAX_IOV 1024u
/* The serial the driver reads with GET_ID (VIRTIO_BLK_ID_BYTES). */
#define BLK_SERIAL_LEN 20u

struct blk_image {
	int fd;
	uint64_t sectors;
	bool read_only;
	bool block_device;           /* discard and write-zeroes take its ioctls' path */
	char serial[BLK_SERIAL_LEN];  /* NUL padded, not terminated when full */
};

/* Open @path (relative to the working directory or absolute); @serial is
 * the drive's id (the first 20 bytes). 0, or -errno with why in @eb. */
int blk_image_open(struct blk_image *img, const char *path, bool read_only, const char *serial,
		   struct errbuf *eb);
void blk_image_close(struct blk_image *img);

/* Read or write @len bytes at byte @off through @iov (short transfers are
 * continued): 0 or -errno. */
int blk_image_read(struct blk_image *img, const struct iovec *iov, unsigned n, uint64_t off,
		   uint64_t len);
int blk_image_write(struct blk_image *img, const struct iovec *iov, unsigned n, uint64_t off,
		    uint64_t len);
int blk_image_flush(struct blk_image *img);
/* Give back or zero @len bytes at @off. Discard is a hint: a file system
 * that cannot punch holes makes it a no-op (1). Zeroing falls back to
 * writing zeroes. 0, 1 (discard ignored) or -errno. */
int blk_image_discard(struct blk_image *img, uint64_t off, uint64_t len);
int blk_image_write_zeroes(struct blk_image *img, uint64_t off, uint64_t len, bool unmap);

#endif
