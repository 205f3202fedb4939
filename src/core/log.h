/* Logging for the operator: one line per event, prefixed with the program name. */
#ifndef KVMINI_CORE_LOG_H
#define KVMINI_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* LOG_OFF is only a threshold (Firecracker's --level Off): nothing passes. */
enum log_level { LOG_OFF = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages above this level are dropped; set from --verbose / --quiet / --level. */
extern enum log_level log_threshold;

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Log lines go to @path from now on (appended; created 0600 when absent),
 * not to stderr. Opened non-blocking so that a FIFO nobody reads never
 * stalls kvmini: a FIFO without a reader (ENXIO for a write-only open) is
 * opened read-write instead, so its buffer takes lines until it is full;
 * a line that does not fit then (EAGAIN) is dropped and counted
 * (log_dropped_lines). NULL: back to stderr. 0 or -errno.
 */
int log_set_path(const char *path);
/* The instance's id in every line ("kvmini[ID]: info: ..."); NULL: none.
 * @id is kept, not copied. */
void log_set_instance_id(const char *id);
/* Firecracker's level names, any case: Off, Error, Warn or Warning, Info,
 * Debug, Trace (kvmini's debug). 0, or -EINVAL for another name. */
int log_level_parse(const char *text, enum log_level *out);
/* Lines a full log FIFO (or a failed write) lost. */
uint64_t log_dropped_lines(void);

#define log_err(...)   log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_threshold >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
