/* A raw disk image (see blk_image.h). */
#include "blk/blk_image.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#include "core/compiler.h"

/* Bytes of a block device, or of a regular file. */
static int image_bytes(int fd, const struct stat *st, uint64_t *bytes)
{
	if (S_ISREG(st->st_mode)) {
		*bytes = (uint64_t)st->st_size;
		return 0;
	}
	if (S_ISBLK(st->st_mode))
		return ioctl(fd, BLKGETSIZE64, bytes) < 0 ? -errno : 0;
	return -EINVAL;
}

int blk_image_open(struct blk_image *img, const char *path, bool read_only, const char *serial,
		   struct errbuf *eb)
{
	struct stat st;
	uint64_t bytes = 0;

	memset(img, 0, sizeof(*img));
	img->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (img->fd < 0) {
		errbuf_set(eb, "%s: %s", path, strerror(errno));
		return -errno;
	}
	int r = fstat(img->fd, &st) < 0 ? -errno : image_bytes(img->fd, &st, &bytes);
	if (r < 0) {
		errbuf_set(eb, "%s: %s", path, r == -EINVAL ? "neither a file nor a block device"
							  : strerror(-r));
		close(img->fd);
		img->fd = -1;
		return r;
	}
	img->sectors = bytes / BLK_SECTOR_SIZE;
	img->read_only = read_only;
	img->block_device = S_ISBLK(st.st_mode);
	if (serial)
		memcpy(img->serial, serial, MIN(strlen(serial), sizeof(img->serial)));
	return 0;
}

void blk_image_close(struct blk_image *img)
{
	if (img->fd >= 0)
		close(img->fd);
	img->fd = -1;
}

/* @iov advanced past @done bytes into @tmp (at most @n entries). */
static unsigned iov_after(const struct iovec *iov, unsigned n, uint64_t done, struct iovec *tmp)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		if (done >= iov[i].iov_len) {
			done -= iov[i].iov_len;
			continue;
		}
		tmp[k].iov_base = (char *)iov[i].iov_base + done;
		tmp[k++].iov_len = iov[i].iov_len - done;
		done = 0;
	}
	return k;
}

/* preadv/pwritev until @len bytes moved; EOF on a read is -EIO (the image
 * shrank under the guest). */
static int transfer(int fd, bool write, const struct iovec *iov, unsigned n, uint64_t off,
		    uint64_t len)
{
	struct iovec tmp[BLK_IMAGE_MAX_IOV];
	uint64_t done = 0;

	if (n > BLK_IMAGE_MAX_IOV)
		return -EINVAL;
	while (done < len) {
		unsigned k = iov_after(iov, n, done, tmp);
		ssize_t r = write ? pwritev(fd, tmp, (int)k, (off_t)(off + done))
				  : preadv(fd, tmp, (int)k, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (uint64_t)r;
	}
	return 0;
}

int blk_image_read(struct blk_image *img, const struct iovec *iov, unsigned n, uint64_t off,
		   uint64_t len)
{
	return transfer(img->fd, false, iov, n, off, len);
}

int blk_image_write(struct blk_image *img, const struct iovec *iov, unsigned n, uint64_t off,
		    uint64_t len)
{
	return img->read_only ? -EROFS : transfer(img->fd, true, iov, n, off, len);
}

int blk_image_flush(struct blk_image *img)
{
	return fdatasync(img->fd) < 0 ? -errno : 0;
}

static bool unsupported(int err)
{
	return err == EOPNOTSUPP || err == ENOTTY || err == ENOSYS;
}

int blk_image_discard(struct blk_image *img, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };
	int r;

	if (img->read_only)
		return -EROFS;
	if (img->block_device)
		r = ioctl(img->fd, BLKDISCARD, range);
	else
		r = fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len);
	if (r == 0)
		return 0;
	return unsupported(errno) ? 1 : -errno;
}

/* Zeroes the slow way, 64 KiB at a time. */
static int write_zero_blocks(int fd, uint64_t off, uint64_t len)
{
	static const char zeros[65536];
	struct iovec v = { .iov_base = (void *)zeros };

	while (len) {
		v.iov_len = (size_t)MIN(len, (uint64_t)sizeof(zeros));
		int r = transfer(fd, true, &v, 1, off, v.iov_len);
		if (r < 0)
			return r;
		off += v.iov_len;
		len -= v.iov_len;
	}
	return 0;
}

int blk_image_write_zeroes(struct blk_image *img, uint64_t off, uint64_t len, bool unmap)
{
	uint64_t range[2] = { off, len };
	int r;

	if (img->read_only)
		return -EROFS;
	if (img->block_device)
		r = ioctl(img->fd, BLKZEROOUT, range);
	else
		r = fallocate(img->fd, (unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
			      FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
	if (r == 0)
		return 0;
	return unsupported(errno) ? write_zero_blocks(img->fd, off, len) : -errno;
}
