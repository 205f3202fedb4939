/*
 * The control API's metrics: the counters as Firecracker's JSON line, the
 * metrics file with its periodic flush, and the routes /metrics and
 * /actions (FlushMetrics). Order: counters as JSON, the line, the file and
 * its timer, the routes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "mmds/mmds.h"
#include "net/net_device.h"

/* --- counters as JSON -------------------------------------------------------------------- */

/* The metrics' counter sink: one JSON object of the counters of @group. */
struct json_counters {
	json_t *obj;
	const char *group;                /* "net", "mmds", a source's name */
};

/*
 * The key is the name as the text dump prints it, less a leading "@group "
 * or "@group_" (the object says it), spaces as '_': "vhost_user_connections"
 * is "connections" in "vhost_user", "tap eth0 tx_blocked" is
 * "tap_eth0_tx_blocked" in "net".
 */
static void json_counter(void *ctx, const char *prefix, const char *name, uint64_t value)
{
	struct json_counters *jc = ctx;
	size_t glen = strlen(jc->group);
	char key[128];

	snprintf(key, sizeof(key), "%s%s", prefix, name);
	char *k = key;
	if (!strncmp(k, jc->group, glen) && (k[glen] == ' ' || k[glen] == '_'))
		k += glen + 1;
	for (char *p = k; *p; p++)
		if (*p == ' ')
			*p = '_';
	json_object_set_new(jc->obj, k, json_integer((json_int_t)value));
}

typedef void (*visit_fn)(void *opaque, const struct counter_sink *sink);

static json_t *capture_counters(const char *group, visit_fn visit, void *opaque)
{
	struct json_counters jc = { json_object(), group };
	const struct counter_sink sink = { json_counter, &jc };

	visit(opaque, &sink);
	return jc.obj;
}

static void visit_net(void *opaque, const struct counter_sink *sink)
{
	net_device_visit_counters(opaque, sink);
}

/* Add @one's integer counters into @sum (Firecracker's aggregate "net"). */
static void add_counters(json_t *sum, json_t *one)
{
	const char *k;
	json_t *v;

	json_object_foreach(one, k, v) {
		if (!json_is_integer(v))
			continue;
		json_t *s = json_object_get(sum, k);
		json_int_t base = json_is_integer(s) ? json_integer_value(s) : 0;
		json_object_set_new(sum, k, json_integer(base + json_integer_value(v)));
	}
}

/*
 * Firecracker's names for what kvmini counts, so its tooling finds them:
 * each the sum of the kvmini counters named (kvmini's own keys stay
 * beside them, as extensions). Only where the meaning is the same; a
 * Firecracker metric kvmini has no counter for is left out, not shown 0.
 */
struct fc_alias {
	const char *fc;
	const char *ours[4];
};

static const struct fc_alias net_aliases[] = {
	{ "rx_bytes_count", { "rx_bytes" } },
	{ "rx_packets_count", { "rx_packets" } },
	{ "rx_count", { "rx_packets" } },
	{ "tx_bytes_count", { "tx_bytes" } },
	{ "tx_packets_count", { "tx_packets" } },
	{ "tx_count", { "tx_packets" } },
	{ "no_rx_avail_buffer", { "rx_waited_for_buffers" } },
	{ "rx_rate_limiter_throttled", { "rx_rate_limited" } },
	{ "tx_rate_limiter_throttled", { "tx_rate_limited" } },
	{ "tx_malformed_frames", { "tx_chain_invalid", "tx_hdr_invalid", "tx_frame_oversize" } },
	{ "tx_fails", { "tx_backend_errors" } },
	{ NULL, { NULL } },
};

static const struct fc_alias block_aliases[] = {
	{ "read_count", { "rx_requests_read" } },
	{ "write_count", { "rx_requests_write" } },
	{ "flush_count", { "rx_requests_flush" } },
	{ "read_bytes", { "tx_read_bytes" } },
	{ "write_bytes", { "rx_write_bytes" } },
	{ "invalid_reqs_count", { "rx_requests_unsupported", "rx_requests_malformed",
				  "rx_requests_out_of_range", "rx_writes_read_only" } },
	{ "execute_fails", { "tx_io_errors" } },
	{ "rate_limiter_throttled_events", { "rx_requests_throttled" } },
	{ NULL, { NULL } },
};

static const struct fc_alias entropy_aliases[] = {
	{ "entropy_bytes", { "tx_random_bytes" } },
	{ "entropy_event_count", { "tx_requests_filled" } },
	{ "entropy_event_fails", { "rx_chains_invalid" } },
	{ "host_rng_fails", { "tx_getrandom_failed" } },
	{ "entropy_rate_limiter_throttled", { "rx_queue_rate_limited" } },
	{ NULL, { NULL } },
};

static const struct fc_alias vsock_aliases[] = {
	{ "rx_bytes_count", { "rx_bytes" } },
	{ "tx_bytes_count", { "tx_bytes" } },
	{ "rx_packets_count", { "rx_packets" } },
	{ "tx_packets_count", { "tx_packets" } },
	{ "conns_added", { "tx_conns_opened", "rx_conns_opened" } },
	{ "tx_write_fails", { "tx_socket_write_failed" } },
	{ "rx_read_fails", { "rx_socket_read_failed" } },
	{ NULL, { NULL } },
};

/* Firecracker's activate_fails is the transport's count (the balloon's
 * source adds its slot's mmio counters). */
static const struct fc_alias balloon_aliases[] = {
	{ "activate_fails", { "mmio_rx_device_activate_failed" } },
	{ "inflate_count", { "rx_inflate_chains" } },
	{ "stats_updates_count", { "rx_stats_updates" } },
	{ "stats_update_fails", { "rx_stats_invalid" } },
	{ "deflate_count", { "rx_deflate_chains" } },
	{ "event_fails", { "rx_chains_invalid", "rx_queue_poisoned" } },
	{ NULL, { NULL } },
};

static void add_fc_names(json_t *obj, const struct fc_alias *tab)
{
	for (; tab->fc; tab++) {
		json_int_t sum = 0;
		bool found = false;

		for (unsigned i = 0; i < ARRAY_SIZE(tab->ours) && tab->ours[i]; i++) {
			json_t *v = json_object_get(obj, tab->ours[i]);
			if (json_is_integer(v)) {
				sum += json_integer_value(v);
				found = true;
			}
		}
		if (found && !json_object_get(obj, tab->fc))
			json_object_set_new(obj, tab->fc, json_integer(sum));
	}
}

static void visit_mmds(void *opaque, const struct counter_sink *sink)
{
	mmds_visit_counters(opaque, sink);
}

static void visit_api(void *opaque, const struct counter_sink *sink)
{
	const struct api *api = opaque;

	counters_visit(&api_counter_set, &api->counters, "", sink);
	if (api->srv)
		http_server_visit_counters(api->srv, "", sink);
}

static uint64_t utc_ms(void)
{
	struct timespec ts;

	/* clock_gettime, not gettimeofday: where the vDSO falls back to a
	 * system call (an unstable TSC, as on the nested platform), only
	 * clock_gettime is in the seccomp lists. */
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Firecracker's layout: the aggregate "net" and one "net_<iface_id>", the
 * aggregate "block" and one "block_<drive_id>", "entropy", "vsock", "balloon". */
char *api_metrics_line(struct api *api)
{
	char key[80];
	json_t *m = json_object();

	json_object_set_new(m, "utc_timestamp_ms", json_integer((json_int_t)utc_ms()));
	json_object_set_new(m, "api_server", capture_counters("api_server", visit_api, api));
	json_object_set_new(m, "deprecated_api",
			    json_pack("{s:I}", "deprecated_http_api_calls",
				      (json_int_t)api->counters.rx_requests_deprecated));
	json_t *sum = json_object();
	for (unsigned i = 0; i < api->opts.n_ifaces && i < API_MAX_IFACES; i++) {
		const struct api_iface *ifc = &api->opts.ifaces[i];
		json_t *one = capture_counters("net", visit_net, ifc->net);
		add_fc_names(one, net_aliases);
		add_counters(sum, one);
		snprintf(key, sizeof(key), "net_%s", ifc->iface_id);
		json_object_set_new(m, key, one);
	}
	json_object_set_new(m, "net", sum);
	if (api->opts.mmds)
		json_object_set_new(m, "mmds", capture_counters("mmds", visit_mmds, api->opts.mmds));
	/* Device sources; Firecracker's "block" sums its "block_<id>". */
	json_t *block = NULL;
	for (unsigned i = 0; i < api->opts.n_sources && i < API_MAX_SOURCES; i++) {
		const struct api_counter_source *s = &api->opts.sources[i];
		json_t *one = capture_counters(s->name, s->visit, s->opaque);
		if (!strncmp(s->name, "block_", 6)) {
			add_fc_names(one, block_aliases);
			if (!block)
				block = json_object();
			add_counters(block, one);
		} else if (!strcmp(s->name, "entropy")) {
			add_fc_names(one, entropy_aliases);
		} else if (!strcmp(s->name, "vsock")) {
			add_fc_names(one, vsock_aliases);
		} else if (!strcmp(s->name, "balloon")) {
			add_fc_names(one, balloon_aliases);
		}
		json_object_set_new(m, s->name, one);
	}
	if (block)
		json_object_set_new(m, "block", block);
	char *text = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	if (!text)
		return NULL;
	size_t len = strlen(text);
	char *line = realloc(text, len + 2);
	if (!line) {
		free(text);
		return NULL;
	}
	memcpy(line + len, "\n", 2);
	return line;
}

/* Append one line to the metrics file. 0 or -errno. */
static int metrics_flush(struct api *api)
{
	char *line = api_metrics_line(api);

	if (!line)
		return -ENOMEM;
	size_t len = strlen(line);
	ssize_t n = write(api->metrics_fd, line, len);
	int r = n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
	free(line);
	if (r < 0)
		api->counters.tx_metrics_flush_failed++;
	else
		api->counters.metrics_flushes++;
	return r;
}

static void on_metrics_timer(struct event_timer *t);

/* The next periodic flush, a period after @from_ns (the deadline just met,
 * or now): the schedule does not drift by the time flushes take, and after
 * a stall it skips the periods missed rather than flushing once for each. */
static void metrics_arm_timer(struct api *api, uint64_t from_ns)
{
	const uint64_t period = API_METRICS_PERIOD_S * 1000000000ull;
	uint64_t now = clock_now_ns(), next = from_ns + period;

	if (next <= now)
		next = now + period;
	event_loop_timer_arm_at(api->loop, &api->metrics_timer, on_metrics_timer, next);
}

static void on_metrics_timer(struct event_timer *t)
{
	struct api *api = container_of(t, struct api, metrics_timer);

	metrics_arm_timer(api, t->deadline_ns);
	int r = metrics_flush(api);
	if (r < 0)
		log_warn("api: metrics %s: %s", api->metrics_path, strerror(-r));
}

/* --- the metrics file ------------------------------------------------------------------- */

/* Open the metrics file and start the periodic flush; 0, or -errno with
 * why in @eb. Non-blocking, so a FIFO without a reader does not stall the
 * loop: one that refuses a write-only open (ENXIO: nobody reads it yet) is
 * opened read-write, and a line that does not fit then is counted as
 * tx_metrics_flush_failed. */
int api_metrics_open_path(struct api *api, const char *path, struct errbuf *eb)
{
	if (api->metrics_path) {
		errbuf_set(eb, "Reinitialization of metrics not allowed.");
		return -EEXIST;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);

	if (fd < 0 && errno == ENXIO)
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		errbuf_set(eb, "cannot open metrics_path %s: %s", path, strerror(-r));
		return r;
	}
	api->metrics_path = strdup(path);
	if (!api->metrics_path) {
		close(fd);
		errbuf_set(eb, "out of memory");
		return -ENOMEM;
	}
	api->metrics_fd = fd;
	if (api->loop)
		metrics_arm_timer(api, clock_now_ns());
	return 0;
}

void api_metrics_put(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	static const char *const keys[] = { "metrics_path", NULL };
	bool ok;

	if (api->metrics_path) {
		api_fault(resp, 400, "Reinitialization of metrics not allowed.");
		return;
	}
	json_t *body = api_body_object(req, resp);
	if (!body)
		return;
	if (api_known_keys(body, keys, "the metrics configuration", resp)) {
		const char *path = api_get_string(body, "metrics_path", true, &ok,
						  "the metrics configuration", resp);
		struct errbuf eb = { 0 };
		int r = path ? api_metrics_open_path(api, path, &eb) : 0;
		if (path && r == 0)
			api_no_content(resp);
		else if (path)
			api_fault(resp, r == -ENOMEM ? 500 : 400, "%s", eb.msg);
	}
	json_decref(body);
}

void api_metrics_get(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	char *line = api_metrics_line(api);

	if (!line) {
		api_fault(resp, 500, "out of memory");
		return;
	}
	http_response_take(resp, 200, "application/json", line, strlen(line));
}

void api_metrics_stop(struct api *api)
{
	/* A last line at exit, as Firecracker writes its metrics then. */
	if (api->metrics_fd >= 0 && metrics_flush(api) < 0)
		log_warn("api: metrics %s: the last line was not written", api->metrics_path);
	if (api->loop)
		event_loop_timer_cancel(api->loop, &api->metrics_timer);
	if (api->metrics_fd >= 0)
		close(api->metrics_fd);
	api->metrics_fd = -1;
	free(api->metrics_path);
	api->metrics_path = NULL;
}

/* --- /actions --------------------------------------------------------------------- */

/* SendCtrlAltDel, in Firecracker's words where it has them. */
static void send_ctrl_alt_del(struct api *api, struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;
	int r = vm && vm->send_ctrl_alt_del ? vm->send_ctrl_alt_del(api->opts.vm_ctx) : -ENOTSUP;

	if (r == -EAGAIN)
		api_fault(resp, 400, "The requested operation is not supported before starting "
			  "the microVM.");
	else if (r == -ENOSPC)
		api_fault(resp, 400, "i8042 internal buffer full.");
	else if (r == -ENOTSUP)
		api_fault(resp, 400, "This kvmini instance serves a device, not a VM.");
	else if (r < 0)
		api_fault(resp, 400, "SendCtrlAltDel: %s", strerror(-r));
	else
		api_no_content(resp);
}

/* Run one action; the body was parsed and holds a string action_type. */
static void run_action(struct api *api, const char *type, struct http_response *resp)
{
	if (!strcmp(type, "InstanceStart")) {
		api_instance_start(api, resp);
		return;
	}
	if (!strcmp(type, "SendCtrlAltDel")) {
		send_ctrl_alt_del(api, resp);
		return;
	}
	if (strcmp(type, "FlushMetrics")) {
		api_fault(resp, 400, "action_type \"%s\" is not supported (kvmini supports "
			  "FlushMetrics, InstanceStart and SendCtrlAltDel)", type);
		return;
	}
	if (!api->metrics_path) {
		api_fault(resp, 400, "metrics are not configured: PUT /metrics first");
		return;
	}
	int r = metrics_flush(api);
	if (r < 0)
		api_fault(resp, 400, "cannot write metrics to %s: %s", api->metrics_path,
			  strerror(-r));
	else
		api_no_content(resp);
}

void api_actions_put(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	static const char *const keys[] = { "action_type", NULL };
	json_t *body = api_body_object(req, resp);
	bool ok;

	if (!body)
		return;
	if (api_known_keys(body, keys, "the action", resp)) {
		const char *type = api_get_string(body, "action_type", true, &ok, "the action", resp);
		if (type)
			run_action(api, type, resp);
	}
	json_decref(body);
}
