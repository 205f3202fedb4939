/*
 * Unit tests of the exit-handler table (src/vmm/exit_table.c): handlers of
 * a reason are tried newest first (a compat workaround in front of the
 * default), a handler that passes hands the exit on, and a reason nobody
 * handles (or out of range) comes back as EXIT_PASS for the vCPU to report.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "core/compiler.h"
#include "vmm/exit_table.h"
#include "vmm/vcpu.h"

struct probe {
	struct exit_handler h;
	enum exit_action answer;
	unsigned calls;
	unsigned order;              /* when it was last called */
};

static unsigned clock_ticks;

static enum exit_action probe_handle(struct exit_handler *h, struct vcpu *v)
{
	struct probe *p = container_of(h, struct probe, h);

	p->calls++;
	p->order = ++clock_ticks;
	return p->answer;
}

static void probe_init(struct probe *p, enum exit_action answer)
{
	*p = (struct probe){ .h = { probe_handle }, .answer = answer };
}

static void test_newest_first_and_pass(void)
{
	struct exit_table t;
	struct vcpu v;
	struct probe dflt, workaround;

	memset(&t, 0, sizeof(t));
	memset(&v, 0, sizeof(v));
	probe_init(&dflt, EXIT_STOP);
	probe_init(&workaround, EXIT_PASS);
	CHECK_EQ(exit_table_add(&t, 17, &dflt.h), 0);
	CHECK_EQ(exit_table_add(&t, 17, &workaround.h), 0);
	CHECK_EQ(exit_table_dispatch(&t, 17, &v), EXIT_STOP);
	CHECK_EQ(workaround.calls, 1);
	CHECK_EQ(dflt.calls, 1);
	CHECK(workaround.order < dflt.order);
	/* A workaround that takes the exit hides it from the default. */
	workaround.answer = EXIT_RESUME;
	CHECK_EQ(exit_table_dispatch(&t, 17, &v), EXIT_RESUME);
	CHECK_EQ(dflt.calls, 1);
}

static void test_limits(void)
{
	struct exit_table t;
	struct vcpu v;
	struct probe a, b, c;

	memset(&t, 0, sizeof(t));
	memset(&v, 0, sizeof(v));
	probe_init(&a, EXIT_PASS);
	probe_init(&b, EXIT_PASS);
	probe_init(&c, EXIT_RESUME);
	CHECK_EQ(exit_table_dispatch(&t, 2, &v), EXIT_PASS);             /* nobody */
	CHECK_EQ(exit_table_dispatch(&t, EXIT_TABLE_REASONS, &v), EXIT_PASS);
	CHECK_EQ(exit_table_add(&t, EXIT_TABLE_REASONS, &a.h), -EINVAL);
	CHECK_EQ(exit_table_add(&t, 2, &a.h), 0);
	CHECK_EQ(exit_table_add(&t, 2, &b.h), 0);
	CHECK_EQ(exit_table_add(&t, 2, &c.h), -ENOSPC);
	CHECK_EQ(exit_table_dispatch(&t, 2, &v), EXIT_PASS);             /* all passed */
	CHECK_EQ(a.calls + b.calls, 2);
	CHECK_EQ(c.calls, 0);
}

int main(void)
{
	RUN_TEST(test_newest_first_and_pass);
	RUN_TEST(test_limits);
	return CHECK_DONE();
}
