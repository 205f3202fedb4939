/* A file written under a temporary name and renamed into place (see file_replace.h). */
#include "core/file_replace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int file_replace_open(struct file_replace *rf, const char *path, struct errbuf *eb)
{
	rf->path = path;
	rf->fd = -1;
	if (snprintf(rf->tmp, sizeof(rf->tmp), "%s.tmp-%d", path, (int)getpid()) >=
	    (int)sizeof(rf->tmp)) {
		errbuf_set(eb, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	rf->fd = open(rf->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (rf->fd < 0) {
		int e = errno;
		errbuf_set(eb, "%s: %s", rf->tmp, strerror(e));
		return -e;
	}
	return 0;
}

int file_pwrite_all(int fd, const void *p, size_t n, off_t at)
{
	const unsigned char *b = p;

	while (n) {
		ssize_t k = pwrite(fd, b, n, at);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		b += k;
		n -= (size_t)k;
		at += k;
	}
	return 0;
}

int file_replace_finish(struct file_replace *rf, int r, struct errbuf *eb)
{
	int mine = 0;

	if (!r && fsync(rf->fd) < 0)
		mine = -errno;
	if (close(rf->fd) < 0 && !r && !mine)
		mine = -errno;
	rf->fd = -1;
	if (!r && !mine && rename(rf->tmp, rf->path) < 0)
		mine = -errno;
	if (mine)
		errbuf_set(eb, "%s: %s", rf->path, strerror(-mine));
	if (r || mine)
		unlink(rf->tmp);
	return r ? r : mine;
}
