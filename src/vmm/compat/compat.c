/* Compatibility mode: see compat.h. */
#include "vmm/compat/compat.h"

#include <string.h>

int compat_init(struct compat *c, bool enabled, int vm_fd, struct exit_table *t)
{
	memset(c, 0, sizeof(*c));
	c->enabled = enabled;
	if (!enabled)
		return 0;
	int r = step_over_init(&c->step_over, t);
	if (!r && user_relay_host_needs()) {
		r = user_relay_init(&c->relay, vm_fd, t);
		c->user_relay = !r;
	}
	return r;
}

static unsigned long long load(const uint64_t *counter)
{
	return (unsigned long long)__atomic_load_n(counter, __ATOMIC_RELAXED);
}

void compat_dump_counters(const struct compat *c, FILE *out)
{
	if (c->enabled)
		fprintf(out, "kvmini: compat mode\ncompat_int3_stepped %llu\ncompat_fwait_stepped %llu\n",
			load(&c->step_over.int3), load(&c->step_over.fwait));
	if (c->user_relay)
		fprintf(out, "compat_user_syscalls_relayed %llu\ncompat_user_ints_relayed %llu\n"
			"compat_relay_breakpoint_passes %llu\n",
			load(&c->relay.syscalls), load(&c->relay.ints), load(&c->relay.passes));
}
