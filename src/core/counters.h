/*
 * Counters: one model for every set in kvmini.
 *
 * A set is an X-macro list, X(name, "doc"), one entry per uint64_t field of
 * its struct; names read <direction>_<object>_<event>
 * (tests/unit/test_counter_names.c holds the rule). From the list come the
 * struct (COUNTER_FIELD) and a const descriptor table (COUNTER_DESC,
 * COUNTER_SET), and counters_visit() hands each counter's name and value to
 * a sink. Every consumer is a sink: the text dump behind --counters,
 * SIGUSR1 and --counters-file (counters_print_line), and the API's JSON
 * metrics. A counter is added in its list and shows everywhere.
 *
 * Counters of a family the lists cannot name (one per FUSE opcode, one per
 * queue) go to the same sinks through counter_emit().
 */
#ifndef KVMINI_CORE_COUNTERS_H
#define KVMINI_CORE_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct counter_desc {
	const char *name;             /* "rx_packets" */
	const char *doc;              /* one line: what moves it */
	size_t offset;                /* of its uint64_t in the set's struct */
};

struct counter_set {
	const char *name;             /* "net", "vhost_user": for tests and docs */
	const struct counter_desc *descs;
	size_t n;
	/* A backend's own tables: levels (a table's size, bytes held) and the
	 * counts that go with them, named after what they measure, with no
	 * direction (COUNTER_LEVELS). */
	bool levels;
};

/*
 * Where visited counters go. @prefix is the instance's label, printed
 * right before the name ("mmio_", "tap eth0 ", or ""): the text format
 * each set has always had, kept because tests and scripts read it.
 */
struct counter_sink {
	void (*fn)(void *ctx, const char *prefix, const char *name, uint64_t value);
	void *ctx;
};

/* struct foo_counters { FOO_COUNTERS(COUNTER_FIELD) }; */
#define COUNTER_FIELD(name, doc) uint64_t name;

/* One descriptor; used through a local X:
 *   #define X(name, doc) COUNTER_DESC(struct foo_counters, name, doc)
 *   const struct counter_set foo_counter_set = COUNTER_SET("foo", FOO_COUNTERS(X));
 *   #undef X
 */
#define COUNTER_DESC(type, field, text) \
	{ .name = #field, .doc = "" text, .offset = offsetof(type, field) },

/* A struct counter_set initializer over the descriptors in __VA_ARGS__
 * (file-scope compound literals: static storage, built at compile time). */
#define COUNTER_SET(setname, ...)                                              \
	{                                                                      \
		.name = setname,                                               \
		.descs = (const struct counter_desc[]){ __VA_ARGS__ },         \
		.n = sizeof((const struct counter_desc[]){ __VA_ARGS__ }) /    \
		     sizeof(struct counter_desc),                              \
	}

/* The same for a set of levels. */
#define COUNTER_LEVELS(setname, ...)                                           \
	{                                                                      \
		.name = setname,                                               \
		.descs = (const struct counter_desc[]){ __VA_ARGS__ },         \
		.n = sizeof((const struct counter_desc[]){ __VA_ARGS__ }) /    \
		     sizeof(struct counter_desc),                              \
		.levels = true,                                                \
	}

static inline void counter_emit(const struct counter_sink *sink, const char *prefix,
				const char *name, uint64_t value)
{
	sink->fn(sink->ctx, prefix, name, value);
}

/*
 * counters_visit() - hand every counter of @set at @base to @sink, in the
 * list's order. Each value is read with a relaxed atomic load: sets whose
 * counters move on other threads (mmio, virtio-fs, FUSE) keep them with
 * relaxed atomic adds, and for the rest, written by the reading thread or
 * copied under their lock first, the load is a plain read.
 */
void counters_visit(const struct counter_set *set, const void *base, const char *prefix,
		    const struct counter_sink *sink);

/* The text sink: one "<prefix><name> <value>" line to the FILE * in @ctx. */
void counters_print_line(void *ctx, const char *prefix, const char *name, uint64_t value);

/* A sink printing to @out (a compound literal: lives in the caller's block). */
#define COUNTER_SINK_FILE(out) (&(const struct counter_sink){ counters_print_line, (out) })

#endif
