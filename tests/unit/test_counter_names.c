/*
 * Every counter set's descriptor table (core/counters.h): names read
 * <direction>_<object>_<event>, each has a doc line, none twice in a set,
 * and the visitor reads the field each descriptor names.
 *
 * The rule, from the names the sets had: lowercase words of [a-z0-9] joined
 * by '_', the first a direction, "rx" or "tx" (each set's header says which
 * way is which: for net rx is to the guest, for virtio-fs, vhost-user and
 * FUSE rx is from the driver, front-end or client), then the object and
 * the event, 2 to 6 words in all; the event may be left out when it is the
 * object simply passing (rx_packets, tx_bytes).
 *
 * Sets of levels (COUNTER_LEVELS: a backend's table sizes) are named after
 * what they measure, 1 to 4 words, no direction.
 *
 * Names from before the rule that tests, scripts or the README read stay
 * until those move with them: they are listed below with the name each
 * should take. The list only shrinks: a listed name that is gone or now
 * follows the rule fails, so does a new name that breaks it.
 */
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "api/api.h"
#include "core/compiler.h"
#include "core/counters.h"
#include "fs/host_watch.h"
#include "fs/memfs.h"
#include "fs/passthrough.h"
#include "fs/virtio_fs.h"
#include "balloon/virtio_balloon.h"
#include "rng/virtio_rng.h"
#include "blk/virtio_blk.h"
#include "vsock/virtio_vsock.h"
#include "fuse/fuse_server.h"
#include "mmds/mmds.h"
#include "net/backend.h"
#include "net/net_device.h"
#include "transport/mmio.h"
#include "transport/vhost_user.h"
#include "vmm/vm_counters.h"

/* Every set in kvmini: a new set is added here. */
static const struct counter_set *const sets[] = {
	&net_counter_set,
	&tap_counter_set,
	&stream_counter_set,
	&slirp_counter_set,
	&mmds_counter_set,
	&virtio_mmio_counter_set,
	&vhost_user_counter_set,
	&virtio_fs_counter_set,
	&virtio_rng_counter_set,
	&virtio_balloon_counter_set,
	&virtio_blk_counter_set,
	&virtio_vsock_counter_set,
	&fuse_server_counter_set,
	&host_watch_counter_set,
	&api_counter_set,
	&http_server_counter_set,
	&vm_console_counter_set,
	&vm_legacy_counter_set,
	&vm_compat_counter_set,
	&vm_relay_counter_set,
	&passthrough_stats_set,
	&memfs_stats_set,
};

/* A name from before the rule and the one it should take. */
struct old_name {
	const char *set, *name, *rename;
};

/*
 * "tests": read by tests/, scripts or the README under this name (their
 * struct field, the printed "<prefix><name>" or the metrics key), so the
 * rename goes with them. "fuse/": free to rename, left until the work on
 * src/fuse's internals (where they are incremented) has merged.
 */
static const struct old_name old_names[] = {
	/* net: tests (uml lib.sh, unit, fuzz, README); one per queue kind */
	{ "net", "used_add_failed", "rx_used_add_failed" },          /* and tx_ */
	{ "net", "avail_index_invalid", "rx_avail_index_invalid" },  /* and tx_ */
	/* stream: tests (uml test_net_stream.sh, unit test_net_backends.c) */
	{ "stream", "disconnects", "rx_peer_disconnects" },
	{ "stream", "connects", "rx_peer_connects" },
	/* virtio-fs: tests (uml test_fs_virtiofs.sh, unit, fuzz, README) */
	{ "virtio_fs", "hiprio_forgets", "rx_hiprio_forgets" },
	{ "virtio_fs", "hiprio_batch_forgets", "rx_hiprio_batch_forgets" },
	{ "virtio_fs", "hiprio_interrupts", "rx_hiprio_interrupts" },
	{ "virtio_fs", "hiprio_requests_refused", "rx_hiprio_requests_refused" },
	{ "virtio_fs", "hiprio_buffers_refused", "rx_hiprio_buffers_refused" },
	{ "virtio_fs", "notify_buffers_invalid", "rx_notify_buffers_invalid" },
	{ "virtio_fs", "used_add_failed", "tx_used_add_failed" },
	{ "virtio_fs", "avail_index_invalid", "rx_avail_index_invalid" },
	{ "virtio_fs", "pauses", "rx_queue_pauses" },
	/* vhost-user: tests (uml, peers, unit test_vhost_user.c, README) */
	{ "vhost_user", "connections", "rx_connections" },
	{ "vhost_user", "disconnects_error", "rx_disconnects_error" },
	{ "vhost_user", "device_activations", "rx_device_activations" },
	{ "vhost_user", "device_activate_failed", "rx_device_activate_failed" },
	/* mmio: tests (kvm run_all.sh, guest_check.sh: mmio_device_activations) */
	{ "mmio", "device_activations", "rx_device_activations" },
	/* mmds: tests (uml mmds tests, unit, README, bench/uml_mmds.sh) */
	{ "mmds", "tokens_issued", "tx_tokens_issued" },
	{ "mmds", "tokens_expired", "rx_tokens_expired" },
	{ "mmds", "store_too_large", "rx_store_too_large" },
	{ "mmds", "frames_intercepted", "tx_frames_intercepted" },
	{ "mmds", "frames_injected", "rx_frames_injected" },
	{ "mmds", "frames_deferred", "tx_frames_deferred" },
	/* api: tests (unit test_api.c, api_curl.sh) */
	{ "api_server", "requests", "rx_requests" },
	{ "api_server", "faults", "tx_faults" },
	{ "api_server", "metrics_flushes", "tx_metrics_flushes" },
	/* fuse: tests (uml, fuse/, unit, fuzz, README) but the three fuse/ ones */
	{ "fuse", "requests", "rx_requests" },
	{ "fuse", "replies_ok", "tx_replies_ok" },
	{ "fuse", "replies_error", "tx_replies_error" },
	{ "fuse", "replies_none", "tx_replies_none" },                  /* fuse/ */
	{ "fuse", "requests_malformed", "rx_requests_malformed" },
	{ "fuse", "requests_unknown", "rx_requests_unknown" },
	{ "fuse", "requests_before_init", "rx_requests_before_init" },  /* fuse/ */
	{ "fuse", "replies_overflow", "tx_replies_overflow" },
	{ "fuse", "read_bytes", "tx_read_bytes" },
	{ "fuse", "read_bytes_sink", "tx_read_bytes_sink" },            /* fuse/ */
	{ "fuse", "write_bytes", "rx_write_bytes" },
	{ "fuse", "opens_passthrough", "tx_opens_passthrough" },
	{ "fuse", "passthrough_failed", "tx_opens_passthrough_failed" },
	{ "fuse", "notify_sent", "tx_notify_sent" },
	{ "fuse", "notify_unknown", "tx_notify_unknown" },
	{ "fuse", "notify_dropped", "tx_notify_dropped" },
	{ "fuse", "notify_failed", "tx_notify_failed" },
	/* watch: tests (unit test_host_watch.c, fuse/test_notify.sh, kvm, README) */
	{ "watch", "watches", "tx_watches_held" },
	{ "watch", "watches_added", "tx_watches_added" },
	{ "watch", "watches_refused", "tx_watches_refused" },
	{ "watch", "events", "rx_events" },
	{ "watch", "events_unknown", "rx_events_unknown" },
	{ "watch", "invals", "tx_invals" },
	{ "watch", "events_own", "rx_events_own" },
	{ "watch", "watches_skipped", "tx_watches_skipped" },
	/* relay: tests (kvm run_all.sh, README) */
	{ "relay", "compat_user_syscalls_relayed", "rx_compat_user_syscalls_relayed" },
	{ "relay", "compat_user_ints_relayed", "rx_compat_user_ints_relayed" },
	{ "relay", "compat_relay_breakpoint_passes", "rx_compat_relay_breakpoint_passes" },
};

static regex_t rule, level_rule;

static bool follows_rule(const char *name)
{
	return regexec(&rule, name, 0, NULL, 0) == 0;
}

static bool follows_rule_of(const struct counter_set *set, const char *name)
{
	return regexec(set->levels ? &level_rule : &rule, name, 0, NULL, 0) == 0;
}

static const struct old_name *old_name_of(const struct counter_set *set, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(old_names); i++)
		if (!strcmp(old_names[i].set, set->name) && !strcmp(old_names[i].name, name))
			return &old_names[i];
	return NULL;
}

static const struct counter_desc *find(const struct counter_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->descs[i].name, name))
			return &set->descs[i];
	return NULL;
}

static void check_desc(const struct counter_set *set, size_t i)
{
	const struct counter_desc *d = &set->descs[i];

	if (!follows_rule_of(set, d->name) && !old_name_of(set, d->name)) {
		fprintf(stderr, "  %s: %s is not <direction>_<object>_<event>\n", set->name, d->name);
		CHECK(!"counter name follows the rule");
	}
	if (!d->doc[0] || strchr(d->doc, '\n')) {
		fprintf(stderr, "  %s: %s has no one-line doc\n", set->name, d->name);
		CHECK(!"counter documented");
	}
	/* Fields are uint64_t, in the list's order, so no two share one. */
	CHECK_EQ(d->offset % sizeof(uint64_t), 0);
	for (size_t j = 0; j < i; j++) {
		if (!strcmp(set->descs[j].name, d->name)) {
			fprintf(stderr, "  %s: %s twice\n", set->name, d->name);
			CHECK(!"names unique in a set");
		}
		CHECK(set->descs[j].offset < d->offset);
	}
}

static void test_every_name_and_doc(void)
{
	for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
		CHECK(sets[s]->n > 0);
		for (size_t i = 0; i < sets[s]->n; i++)
			check_desc(sets[s], i);
	}
}

static const struct counter_set *set_named(const char *name)
{
	for (size_t s = 0; s < ARRAY_SIZE(sets); s++)
		if (!strcmp(sets[s]->name, name))
			return sets[s];
	return NULL;
}

/* The list of old names shrinks only: each is still there and still breaks
 * the rule, and what it should become follows it and is not taken. */
static void test_old_names_are_current(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(old_names); i++) {
		const struct old_name *o = &old_names[i];
		const struct counter_set *set = set_named(o->set);

		if (!set || !find(set, o->name) || follows_rule(o->name)) {
			fprintf(stderr, "  stale entry %s %s: drop it\n", o->set, o->name);
			CHECK(!"old name still in use");
			continue;
		}
		CHECK(follows_rule(o->rename));
		CHECK(!find(set, o->rename));
	}
}

static void test_set_names_unique(void)
{
	for (size_t s = 0; s < ARRAY_SIZE(sets); s++)
		for (size_t t = 0; t < s; t++)
			CHECK(strcmp(sets[s]->name, sets[t]->name) != 0);
}

/* The rule itself, on names it must take and refuse. */
static void test_rule(void)
{
	CHECK(follows_rule("rx_packets"));
	CHECK(follows_rule("tx_dropped_disconnected"));
	CHECK(follows_rule("rx_notify_exits"));
	CHECK(!follows_rule("packets"));
	CHECK(!follows_rule("rx"));
	CHECK(!follows_rule("rx_"));
	CHECK(!follows_rule("rx__packets"));
	CHECK(!follows_rule("Rx_packets"));
	CHECK(!follows_rule("used_add_failed"));
	CHECK(!follows_rule("rx_a_b_c_d_e_f"));
	/* Levels: what they measure, no direction needed. */
	CHECK(!regexec(&level_rule, "node_fds", 0, NULL, 0));
	CHECK(!regexec(&level_rule, "nodes", 0, NULL, 0));
	CHECK(regexec(&level_rule, "Nodes", 0, NULL, 0));
	CHECK(regexec(&level_rule, "a_b_c_d_e", 0, NULL, 0));
}

/* The visitor hands each field's value under its name, in order. */
struct collect {
	char names[64][48];
	uint64_t values[64];
	size_t n;
};

static void collect_fn(void *ctx, const char *prefix, const char *name, uint64_t value)
{
	struct collect *c = ctx;

	if (c->n < ARRAY_SIZE(c->values)) {
		snprintf(c->names[c->n], sizeof(c->names[0]), "%s%s", prefix, name);
		c->values[c->n++] = value;
	}
}

static void test_visit_reads_fields(void)
{
	struct net_counters nc = { .rx_packets = 7, .tx_bytes = 1500, .rx_rate_limited = 3 };
	struct collect c = { .n = 0 };
	const struct counter_sink sink = { collect_fn, &c };

	counters_visit(&net_counter_set, &nc, "p_", &sink);
	CHECK_EQ(c.n, net_counter_set.n);
	CHECK(!strcmp(c.names[0], "p_rx_packets"));
	CHECK_EQ(c.values[0], 7);
	for (size_t i = 0; i < c.n; i++) {
		const char *name = c.names[i] + 2;
		uint64_t want = !strcmp(name, "tx_bytes") ? 1500 :
				!strcmp(name, "rx_rate_limited") ? 3 :
				!strcmp(name, "rx_packets") ? 7 : 0;
		CHECK_EQ(c.values[i], want);
	}
}

/* The text sink: the "<prefix><name> <value>" lines the scripts read. */
static void test_print_line(void)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	struct virtio_mmio_counters mc = { .rx_kicks = 5 };

	counters_visit(&virtio_mmio_counter_set, &mc, "mmio_", COUNTER_SINK_FILE(f));
	fclose(f);
	CHECK(strstr(text, "\nmmio_rx_kicks 5\n") != NULL);
	CHECK(!strncmp(text, "mmio_rx_register_invalid 0\n", 27));
	free(text);
}

int main(void)
{
	if (regcomp(&rule, "^(rx|tx)(_[a-z0-9]+){1,5}$", REG_EXTENDED | REG_NOSUB) ||
	    regcomp(&level_rule, "^[a-z0-9]+(_[a-z0-9]+){0,3}$", REG_EXTENDED | REG_NOSUB)) {
		fprintf(stderr, "regcomp failed\n");
		return 1;
	}
	RUN_TEST(test_rule);
	RUN_TEST(test_every_name_and_doc);
	RUN_TEST(test_old_names_are_current);
	RUN_TEST(test_set_names_unique);
	RUN_TEST(test_visit_reads_fields);
	RUN_TEST(test_print_line);
	regfree(&rule);
	regfree(&level_rule);
	return CHECK_DONE();
}
