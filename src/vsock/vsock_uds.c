/* The unix-socket side of the hybrid vsock (see vsock_uds.h). */
#include "vsock/vsock_uds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errbuf.h"

static int fill_addr(struct sockaddr_un *a, const char *path, const char *suffix)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path, sizeof(a->sun_path), "%s%s", path, suffix);
	return n < 0 || (size_t)n >= sizeof(a->sun_path) ? -ENAMETOOLONG : 0;
}

/* A socket file left by an earlier run (or an earlier PUT) goes; any
 * other file is the operator's and stays. */
static int clear_stale(const char *path, struct errbuf *eb)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		errbuf_set(eb, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	return unlink(path) < 0 ? -errno : 0;
}

int vsock_uds_listen(const char *path, struct errbuf *eb)
{
	struct sockaddr_un a;
	int r = strlen(path) > VSOCK_UDS_PATH_MAX ? -ENAMETOOLONG : fill_addr(&a, path, "");

	if (r < 0) {
		errbuf_set(eb, "%s: longer than %zu bytes", path, VSOCK_UDS_PATH_MAX);
		return r;
	}
	r = clear_stale(path, eb);
	if (r < 0) {
		if (r != -EEXIST)
			errbuf_set(eb, "%s: %s", path, strerror(-r));
		return r;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		errbuf_set(eb, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

int vsock_uds_connect(const char *path, uint32_t port)
{
	char suffix[16];
	struct sockaddr_un a;

	snprintf(suffix, sizeof(suffix), "_%u", port);
	int r = fill_addr(&a, path, suffix);
	if (r < 0)
		return r;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port)
{
	static const char cmd[] = "CONNECT";
	size_t i = sizeof(cmd) - 1, digits = 0;
	uint64_t v = 0;

	if (len <= i || strncasecmp(line, cmd, i) || line[i] != ' ')
		return -EINVAL;
	while (i < len && line[i] == ' ')
		i++;
	for (; i < len && line[i] >= '0' && line[i] <= '9' && digits < 11; i++, digits++)
		v = v * 10 + (uint64_t)(line[i] - '0');
	if (!digits || i != len || v > UINT32_MAX)
		return -EINVAL;
	*port = (uint32_t)v;
	return 0;
}

int vsock_uds_read_connect(int fd, bool hung_up, uint32_t *port)
{
	char line[VSOCK_UDS_LINE_MAX];
	ssize_t n = recv(fd, line, sizeof(line), MSG_PEEK);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -ECONNRESET;
	if (n == 0)
		return -ECONNRESET;
	char *nl = memchr(line, '\n', (size_t)n);
	if (!nl)
		return (size_t)n == sizeof(line) ? -EINVAL : hung_up ? -ECONNRESET : 0;
	size_t len = (size_t)(nl - line) + 1;
	/* The peeked line, now taken; the bytes after it stay queued. */
	if (recv(fd, line, len, 0) != (ssize_t)len)
		return -ECONNRESET;
	return vsock_uds_parse_connect(line, len - 1, port) < 0 ? -EINVAL : 1;
}
