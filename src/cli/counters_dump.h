/*
 * The counters dump of the `vhost` subcommands: on SIGUSR1 and at exit, a
 * "kvmini: counters" block on stderr and, with --counters-file, the same
 * lines (without the header) in that file. Loop thread: the counters of
 * device threads are read with atomic loads by the visitors.
 */
#ifndef KVMINI_CLI_COUNTERS_DUMP_H
#define KVMINI_CLI_COUNTERS_DUMP_H

#include "core/counters.h"

/* Hand every counter of the service at @opaque to @sink. */
typedef void (*cli_counters_visit_fn)(void *opaque, const struct counter_sink *sink);

/* Write the dump (see above); a file that cannot be written is a warning. */
void cli_counters_dump(cli_counters_visit_fn visit, void *opaque, const char *counters_file);

#endif
