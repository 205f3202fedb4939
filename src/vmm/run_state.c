/* The stop request of a run: see run_state.h. */
#include "vmm/run_state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/atomics.h"
#include "core/log.h"

int run_state_init(struct run_state *rs)
{
	memset(rs, 0, sizeof(*rs));
	rs->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return rs->stop_fd < 0 ? -errno : 0;
}

void run_state_destroy(struct run_state *rs)
{
	if (rs->stop_fd >= 0)
		close(rs->stop_fd);
	rs->stop_fd = -1;
}

void run_state_request_stop(struct run_state *rs, int status, const char *fmt, ...)
{
	int expected = 0;
	uint64_t one = 1;
	va_list ap;

	if (!cas_acq_rel(&rs->stopping, &expected, 1))
		return;
	rs->exit_status = status;
	va_start(ap, fmt);
	vsnprintf(rs->exit_reason, sizeof(rs->exit_reason), fmt, ap);
	va_end(ap);
	/* The eventfd write orders the fields above before the main thread's
	 * read of them (it reads them only after seeing stop_fd readable). */
	if (write(rs->stop_fd, &one, sizeof(one)) < 0)
		log_warn("stop eventfd: %s", strerror(errno));
}

bool run_state_stop_requested(const struct run_state *rs)
{
	return load_acquire(&rs->stopping) != 0;
}

void run_state_stop(struct run_state *rs)
{
	store_release(&rs->stopping, 1);
}
