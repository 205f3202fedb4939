#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/atomics.h"

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {
	[LOG_ERROR] = "error", [LOG_WARN] = "warning",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

static int log_fd = -1;               /* -1: stderr */
static const char *instance_id;
static uint64_t dropped;

int log_set_path(const char *path)
{
	if (!path) {
		if (log_fd >= 0)
			close(log_fd);
		log_fd = -1;
		return 0;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);

	/* A FIFO without a reader refuses a write-only non-blocking open. */
	if (fd < 0 && errno == ENXIO)
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	return 0;
}

void log_set_instance_id(const char *id)
{
	instance_id = id;
}

int log_level_parse(const char *text, enum log_level *out)
{
	static const struct { const char *name; enum log_level level; } levels[] = {
		{ "off", LOG_OFF }, { "error", LOG_ERROR }, { "warning", LOG_WARN },
		{ "warn", LOG_WARN }, { "info", LOG_INFO }, { "debug", LOG_DEBUG },
		{ "trace", LOG_DEBUG },
	};

	for (unsigned i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (!strcasecmp(text, levels[i].name)) {
			*out = levels[i].level;
			return 0;
		}
	return -EINVAL;
}

uint64_t log_dropped_lines(void)
{
	return load_relaxed(&dropped);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_threshold || level < LOG_ERROR)
		return;
	/* One write per line so lines from several threads do not interleave. */
	char msg[1024], line[1200];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int n = snprintf(line, sizeof(line), "kvmini%s%s%s: %s: %s\n", instance_id ? "[" : "",
			 instance_id ? instance_id : "", instance_id ? "]" : "", level_names[level], msg);
	size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (log_fd < 0) {
		fputs(line, stderr);
		return;
	}
	if (write(log_fd, line, len) != (ssize_t)len)
		fetch_add_relaxed(&dropped, 1);
}
