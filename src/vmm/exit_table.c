/* The exit-handler table: see exit_table.h. */
#include "vmm/exit_table.h"

#include <errno.h>

int exit_table_add(struct exit_table *t, uint32_t reason, struct exit_handler *h)
{
	if (reason >= EXIT_TABLE_REASONS)
		return -EINVAL;
	struct exit_handler **slot = t->h[reason];
	if (slot[EXIT_TABLE_DEPTH - 1])
		return -ENOSPC;
	for (unsigned i = EXIT_TABLE_DEPTH - 1; i > 0; i--)
		slot[i] = slot[i - 1];
	slot[0] = h;
	return 0;
}

enum exit_action exit_table_dispatch(const struct exit_table *t, uint32_t reason, struct vcpu *v)
{
	if (reason >= EXIT_TABLE_REASONS)
		return EXIT_PASS;
	for (unsigned i = 0; i < EXIT_TABLE_DEPTH && t->h[reason][i]; i++) {
		struct exit_handler *h = t->h[reason][i];
		enum exit_action a = h->handle(h, v);
		if (a != EXIT_PASS)
			return a;
	}
	return EXIT_PASS;
}
