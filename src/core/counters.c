/* The one visitor over counter sets, and the text sink. */
#include "core/atomics.h"
#include "core/counters.h"

void counters_visit(const struct counter_set *set, const void *base, const char *prefix,
		    const struct counter_sink *sink)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct counter_desc *d = &set->descs[i];
		const uint64_t *p = (const uint64_t *)((const char *)base + d->offset);

		counter_emit(sink, prefix, d->name, load_relaxed(p));
	}
}

void counters_print_line(void *ctx, const char *prefix, const char *name, uint64_t value)
{
	fprintf(ctx, "%s%s %llu\n", prefix, name, (unsigned long long)value);
}
