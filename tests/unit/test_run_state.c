/*
 * Unit tests of the run's stop request (src/vmm/run_state.c): the first
 * request's status and reason win, the eventfd the main thread watches
 * becomes readable once, and the main thread's own stop keeps the status.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "vmm/run_state.h"

/* Events counted on the eventfd so far (it is read, so reset). */
static uint64_t take_events(struct run_state *rs)
{
	uint64_t n = 0;

	if (read(rs->stop_fd, &n, sizeof(n)) < 0)
		return errno == EAGAIN ? 0 : UINT64_MAX;
	return n;
}

static void test_first_request_wins(void)
{
	struct run_state rs;

	CHECK_EQ(run_state_init(&rs), 0);
	CHECK(!run_state_stop_requested(&rs));
	CHECK_EQ(take_events(&rs), 0);
	run_state_request_stop(&rs, VM_EXIT_TRIPLE_FAULT, "vCPU %u: triple fault", 1u);
	run_state_request_stop(&rs, VM_EXIT_OK, "guest reset");
	CHECK(run_state_stop_requested(&rs));
	CHECK_EQ(rs.exit_status, VM_EXIT_TRIPLE_FAULT);
	CHECK(strcmp(rs.exit_reason, "vCPU 1: triple fault") == 0);
	CHECK_EQ(take_events(&rs), 1);
	run_state_destroy(&rs);
	CHECK_EQ(rs.stop_fd, -1);
}

/* vm_join's stop: vCPUs see it, the status and reason stay unset, and a
 * later request (a vCPU's last exit) changes nothing. */
static void test_stop_without_request(void)
{
	struct run_state rs;

	CHECK_EQ(run_state_init(&rs), 0);
	run_state_stop(&rs);
	CHECK(run_state_stop_requested(&rs));
	run_state_request_stop(&rs, VM_EXIT_GUEST_ERROR, "too late");
	CHECK_EQ(rs.exit_status, 0);
	CHECK_EQ(rs.exit_reason[0], '\0');
	CHECK_EQ(take_events(&rs), 0);
	run_state_destroy(&rs);
}

int main(void)
{
	RUN_TEST(test_first_request_wins);
	RUN_TEST(test_stop_without_request);
	return CHECK_DONE();
}
