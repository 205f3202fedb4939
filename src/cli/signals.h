/*
 * SIGINT, SIGTERM, SIGHUP and SIGUSR1 as event-loop events. Blocked in every
 * thread (block before starting any) and read from a signalfd on the loop, so
 * a handler runs on the thread that owns the counters and the devices.
 */
#ifndef KVMINI_CLI_SIGNALS_H
#define KVMINI_CLI_SIGNALS_H

#include "core/event_loop.h"

struct cli_signals;
typedef void (*cli_signal_fn)(struct cli_signals *sig, int signo);

struct cli_signals {
	struct event_source src;
	cli_signal_fn handler;
	int fd;
};

/* Block the signals above and ignore SIGPIPE (a peer that goes away) and
 * SIGXFSZ (a write past a file size limit then fails with EFBIG). Call
 * before any thread starts: threads inherit the mask. Returns 0 or -errno. */
int cli_signals_block(void);

/* Call @handler on @loop's thread for each signal. Returns 0 or -errno. */
int cli_signals_watch(struct cli_signals *sig, struct event_loop *loop, cli_signal_fn handler);

/* Stop watching and close the signalfd; nothing when it was never watched
 * (a zero-initialized struct is fine). */
void cli_signals_close(struct cli_signals *sig, struct event_loop *loop);

#endif
