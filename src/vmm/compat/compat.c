/* Compatibility mode: see compat.h. */
#include "vmm/compat/compat.h"

#include <string.h>

#include "core/atomics.h"
#include "vmm/vm_counters.h"

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

static uint64_t load(const uint64_t *counter)
{
	return load_relaxed(counter);
}

void compat_dump_counters(const struct compat *c, FILE *out)
{
	const struct counter_sink *sink = COUNTER_SINK_FILE(out);

	if (c->enabled) {
		const struct vm_compat_counters cm = {
			.rx_compat_int3_stepped = load(&c->step_over.int3),
			.rx_compat_fwait_stepped = load(&c->step_over.fwait),
		};
		fputs("kvmini: compat mode\n", out);
		counters_visit(&vm_compat_counter_set, &cm, "", sink);
	}
	if (c->user_relay) {
		const struct vm_relay_counters rl = {
			.compat_user_syscalls_relayed = load(&c->relay.syscalls),
			.compat_user_ints_relayed = load(&c->relay.ints),
			.compat_relay_breakpoint_passes = load(&c->relay.passes),
		};
		counters_visit(&vm_relay_counter_set, &rl, "", sink);
	}
}
