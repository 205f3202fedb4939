#include "cli/signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/compiler.h"

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
}

int cli_signals_block(void)
{
	sigset_t set;

	signal_set(&set);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	return r ? -r : 0;
}

static void on_signalfd(struct event_source *src, uint32_t events)
{
	struct cli_signals *sig = container_of(src, struct cli_signals, src);
	struct signalfd_siginfo si;

	while (read(sig->fd, &si, sizeof(si)) == sizeof(si))
		sig->handler(sig, (int)si.ssi_signo);
}

int cli_signals_watch(struct cli_signals *sig, struct event_loop *loop, cli_signal_fn handler)
{
	sigset_t set;

	signal_set(&set);
	sig->handler = handler;
	sig->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig->fd < 0)
		return -errno;
	int r = event_loop_watch(loop, &sig->src, sig->fd, EPOLLIN, on_signalfd, "signals");
	if (r < 0) {
		close(sig->fd);
		sig->fd = -1;
	}
	return r;
}

void cli_signals_close(struct cli_signals *sig, struct event_loop *loop)
{
	/* Only a watched signalfd is ours: a zeroed struct holds fd 0. */
	if (!sig->src.registered)
		return;
	event_loop_unwatch(loop, &sig->src);
	close(sig->fd);
	sig->fd = -1;
}
