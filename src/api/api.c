/*
 * The control API (see api.h). Order of this file: replies, JSON helpers,
 * rate-limiter bodies, the routes (network interfaces, MMDS, metrics,
 * actions, instance), dispatch and the server.
 */
#include "api/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "mmds/mmds.h"
#include "net/net_device.h"

struct api {
	struct api_opts opts;
	struct event_loop *loop;
	struct http_server *srv;
	struct api_counters counters;
	char *metrics_path;
	int metrics_fd;
	struct event_timer metrics_timer;   /* the periodic flush, once configured */
};

/* --- replies ---------------------------------------------------------------- */

static void reply_json(struct http_response *resp, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (!text) {
		http_response_set(resp, 500, "application/json",
				  "{\"fault_message\":\"out of memory\"}");
		return;
	}
	http_response_take(resp, status, "application/json", text, strlen(text));
}

/* A refusal in Firecracker's shape: {"fault_message": "..."}. */
static void fault(struct http_response *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fault(struct http_response *resp, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages quote the client's path and keys, which need not be UTF-8
	 * (vsnprintf may also have cut a sequence): those bytes become '?'. */
	json_t *text = json_string(msg);
	if (!text) {
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		text = json_string(msg);
	}
	reply_json(resp, status, json_pack("{s:o}", "fault_message", text));
}

static void no_content(struct http_response *resp)
{
	http_response_take(resp, 204, NULL, NULL, 0);
}

/* --- JSON helpers ------------------------------------------------------------- */

/* The request body as a JSON object; NULL after answering 400. */
static json_t *body_object(const struct http_request *req, struct http_response *resp)
{
	json_error_t jerr;

	if (!req->body_len) {
		fault(resp, 400, "the request needs a JSON body");
		return NULL;
	}
	json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		fault(resp, 400, "the body is not valid JSON: %s (line %d, column %d)",
		      jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		fault(resp, 400, "the body must be a JSON object");
		return NULL;
	}
	return root;
}

/* Refuse a key outside @allowed (NULL-terminated), as Firecracker does. */
static bool known_keys(json_t *obj, const char *const *allowed, const char *what,
		       struct http_response *resp)
{
	const char *key;
	json_t *val;

	json_object_foreach(obj, key, val) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = !strcmp(key, *a);
		if (!ok) {
			fault(resp, 400, "unknown field \"%s\" in %s", key, what);
			return false;
		}
	}
	return true;
}

/* A non-negative integer member; absent leaves *out alone unless @required. */
static bool get_u64(json_t *obj, const char *key, bool required, uint64_t *out,
		    const char *what, struct http_response *resp)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (required)
			fault(resp, 400, "%s needs \"%s\"", what, key);
		return !required;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		fault(resp, 400, "\"%s\" in %s must be a non-negative integer", key, what);
		return false;
	}
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* A string member; NULL after answering 400 when it is required or mistyped. */
static const char *get_string(json_t *obj, const char *key, bool required, bool *ok,
			      const char *what, struct http_response *resp)
{
	json_t *v = json_object_get(obj, key);

	*ok = true;
	if (!v || json_is_null(v)) {
		if (required) {
			fault(resp, 400, "%s needs \"%s\"", what, key);
			*ok = false;
		}
		return NULL;
	}
	if (!json_is_string(v)) {
		fault(resp, 400, "\"%s\" in %s must be a string", key, what);
		*ok = false;
		return NULL;
	}
	return json_string_value(v);
}

/* --- rate-limiter bodies -------------------------------------------------------- */

/* TokenBucket: {"size": N, "one_time_burst": N, "refill_time": MS}. */
static bool parse_bucket(json_t *b, const char *what, struct token_bucket_config *out,
			 struct http_response *resp)
{
	static const char *const keys[] = { "size", "one_time_burst", "refill_time", NULL };

	if (!json_is_object(b)) {
		fault(resp, 400, "%s must be an object", what);
		return false;
	}
	*out = (struct token_bucket_config){ 0 };
	return known_keys(b, keys, what, resp) &&
	       get_u64(b, "size", true, &out->size, what, resp) &&
	       get_u64(b, "one_time_burst", false, &out->one_time_burst, what, resp) &&
	       get_u64(b, "refill_time", true, &out->refill_time, what, resp);
}

/* RateLimiter: {"bandwidth": TokenBucket, "ops": TokenBucket}. A bucket
 * that is absent stays as in @cfg (PATCH) or is none (PUT passes zeros);
 * size or refill_time 0 removes it, as in Firecracker. */
static bool parse_limiter(json_t *rl, const char *what, struct rate_limiter_config *cfg,
			  struct http_response *resp)
{
	static const char *const keys[] = { "bandwidth", "ops", NULL };
	char where[64];

	if (!json_is_object(rl)) {
		fault(resp, 400, "%s must be an object", what);
		return false;
	}
	if (!known_keys(rl, keys, what, resp))
		return false;
	json_t *bw = json_object_get(rl, "bandwidth"), *ops = json_object_get(rl, "ops");
	snprintf(where, sizeof(where), "%s.bandwidth", what);
	if (bw && !json_is_null(bw) && !parse_bucket(bw, where, &cfg->bandwidth, resp))
		return false;
	snprintf(where, sizeof(where), "%s.ops", what);
	if (ops && !json_is_null(ops) && !parse_bucket(ops, where, &cfg->ops, resp))
		return false;
	if (!rate_limiter_config_valid(cfg)) {
		fault(resp, 400, "%s: a size or burst above 2^52 or a refill time above 2^32 ms",
		      what);
		return false;
	}
	return true;
}

static json_t *bucket_json(const struct token_bucket_config *b)
{
	return json_pack("{s:I,s:I,s:I}", "size", (json_int_t)b->size, "one_time_burst",
			 (json_int_t)b->one_time_burst, "refill_time", (json_int_t)b->refill_time);
}

static json_t *limiter_json(const struct rate_limiter_config *cfg)
{
	json_t *o = json_object();

	if (cfg->bandwidth.size && cfg->bandwidth.refill_time)
		json_object_set_new(o, "bandwidth", bucket_json(&cfg->bandwidth));
	if (cfg->ops.size && cfg->ops.refill_time)
		json_object_set_new(o, "ops", bucket_json(&cfg->ops));
	return o;
}

/* --- /network-interfaces/{id} ------------------------------------------------------ */

/* The interface called @id, or NULL. */
static const struct api_iface *find_iface(const struct api *api, const char *id)
{
	for (unsigned i = 0; i < api->opts.n_ifaces && i < API_MAX_IFACES; i++)
		if (!strcmp(api->opts.ifaces[i].iface_id, id))
			return &api->opts.ifaces[i];
	return NULL;
}

/* The ids of the interfaces, comma separated, for error messages. */
static void iface_list(const struct api *api, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < api->opts.n_ifaces && i < API_MAX_IFACES && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s\"%s\"", i ? ", " : "",
					api->opts.ifaces[i].iface_id);
}

/* The interface the body's iface_id and the path name, or NULL (answered). */
static const struct api_iface *iface_matches(struct api *api, const char *path_id, json_t *body,
					     struct http_response *resp)
{
	bool ok;
	const char *id = get_string(body, "iface_id", true, &ok, "the interface", resp);
	char ids[256];

	if (!ok)
		return NULL;
	if (strcmp(id, path_id)) {
		fault(resp, 400, "The id from the path does not match the id from the body!");
		return NULL;
	}
	const struct api_iface *ifc = find_iface(api, id);
	if (!ifc) {
		iface_list(api, ids, sizeof(ids));
		fault(resp, 400, "no network interface \"%s\" (this instance has %s; kvmini "
		      "cannot add interfaces while running)", id, ids);
	}
	return ifc;
}

/* PUT carries the whole interface: accepted when it is the one that exists. */
static bool iface_identity_matches(const struct api_iface *ifc, json_t *body,
				   struct http_response *resp)
{
	bool ok;
	const char *dev = get_string(body, "host_dev_name", true, &ok, "the interface", resp);

	if (!ok)
		return false;
	if (ifc->host_dev_name && strcmp(dev, ifc->host_dev_name)) {
		fault(resp, 400, "interface \"%s\" is attached to \"%s\", not \"%s\"; kvmini "
		      "cannot replace it while running", ifc->iface_id, ifc->host_dev_name, dev);
		return false;
	}
	const char *mac = get_string(body, "guest_mac", false, &ok, "the interface", resp);
	if (!ok)
		return false;
	uint8_t m[6];
	if (mac && (net_parse_mac(mac, m) < 0 || memcmp(m, ifc->net->opts.mac, 6))) {
		fault(resp, 400, "guest_mac \"%s\" is not this interface's MAC address", mac);
		return false;
	}
	return true;
}

static void apply_limits(const struct api_iface *ifc, json_t *body, bool patch,
			 struct http_response *resp)
{
	static const struct { const char *key; unsigned q; } dirs[] = {
		{ "rx_rate_limiter", NET_RX_QUEUE }, { "tx_rate_limiter", NET_TX_QUEUE },
	};
	struct rate_limiter_config cfg[2];

	/* Parse both first: a refusal changes nothing. */
	for (unsigned i = 0; i < 2; i++) {
		json_t *rl = json_object_get(body, dirs[i].key);
		if (patch)
			net_device_get_rate_limit(ifc->net, dirs[i].q, &cfg[i]);
		else
			cfg[i] = (struct rate_limiter_config){ 0 };
		if (rl && !json_is_null(rl) && !parse_limiter(rl, dirs[i].key, &cfg[i], resp))
			return;
	}
	for (unsigned i = 0; i < 2; i++) {
		json_t *rl = json_object_get(body, dirs[i].key);
		/* PATCH without a direction leaves it alone (and its buckets' levels). */
		if (patch && (!rl || json_is_null(rl)))
			continue;
		net_device_set_rate_limit(ifc->net, dirs[i].q, &cfg[i]);
		log_info("api: %s %s: bandwidth %llu B / %llu ms (burst %llu), ops %llu / %llu ms",
			 ifc->iface_id, dirs[i].key, (unsigned long long)cfg[i].bandwidth.size,
			 (unsigned long long)cfg[i].bandwidth.refill_time,
			 (unsigned long long)cfg[i].bandwidth.one_time_burst,
			 (unsigned long long)cfg[i].ops.size,
			 (unsigned long long)cfg[i].ops.refill_time);
	}
	no_content(resp);
}

static void iface_put_patch(struct api *api, const char *id, const struct http_request *req,
			    bool patch, struct http_response *resp)
{
	static const char *const put_keys[] = { "iface_id", "host_dev_name", "guest_mac",
		"rx_rate_limiter", "tx_rate_limiter", NULL };
	static const char *const patch_keys[] = { "iface_id", "rx_rate_limiter",
		"tx_rate_limiter", NULL };
	json_t *body = body_object(req, resp);
	const struct api_iface *ifc;

	if (!body)
		return;
	if (known_keys(body, patch ? patch_keys : put_keys, "the interface", resp) &&
	    (ifc = iface_matches(api, id, body, resp)) &&
	    (patch || iface_identity_matches(ifc, body, resp)))
		apply_limits(ifc, body, patch, resp);
	json_decref(body);
}

static void iface_get(struct api *api, const char *id, struct http_response *resp)
{
	struct rate_limiter_config rx, tx;
	const struct api_iface *ifc = find_iface(api, id);
	char mac[18];

	if (!ifc) {
		fault(resp, 400, "no network interface \"%s\"", id);
		return;
	}
	const uint8_t *m = ifc->net->opts.mac;
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
		 m[4], m[5]);
	net_device_get_rate_limit(ifc->net, NET_RX_QUEUE, &rx);
	net_device_get_rate_limit(ifc->net, NET_TX_QUEUE, &tx);
	json_t *o = json_pack("{s:s,s:s,s:o,s:o}", "iface_id", ifc->iface_id,
			      "guest_mac", mac, "rx_rate_limiter", limiter_json(&rx),
			      "tx_rate_limiter", limiter_json(&tx));
	if (o && ifc->host_dev_name)
		json_object_set_new(o, "host_dev_name", json_string(ifc->host_dev_name));
	reply_json(resp, 200, o);
}

/* --- /mmds --------------------------------------------------------------------------- */

static bool mmds_on(struct api *api, struct http_response *resp)
{
	if (api->opts.mmds)
		return true;
	fault(resp, 400, "the MMDS is not enabled on this instance");
	return false;
}

static void mmds_update(struct api *api, const struct http_request *req, bool patch,
			struct http_response *resp)
{
	if (!mmds_on(api, resp))
		return;
	int r = patch ? mmds_patch(api->opts.mmds, req->body, req->body_len)
		      : mmds_put(api->opts.mmds, req->body, req->body_len);
	struct mmds_config cfg;

	switch (r) {
	case 0:
		no_content(resp);
		break;
	case -EINVAL:
		fault(resp, 400, "the MMDS data must be a JSON object");
		break;
	case -EFBIG:
		mmds_get_config(api->opts.mmds, &cfg);
		fault(resp, 413, "the MMDS data store would exceed its limit of %zu bytes",
		      cfg.store_limit);
		break;
	default:
		fault(resp, 500, "MMDS update failed: %s", strerror(-r));
	}
}

static void mmds_read(struct api *api, struct http_response *resp)
{
	if (!mmds_on(api, resp))
		return;
	char *text = mmds_get_json(api->opts.mmds);
	if (!text) {
		fault(resp, 500, "out of memory");
		return;
	}
	http_response_take(resp, 200, "application/json", text, strlen(text));
}

/* "network_interfaces": a non-empty list naming only interfaces MMDS was
 * started on (the interceptors are placed at start-up). */
static bool mmds_ifaces_ok(struct api *api, json_t *body, struct http_response *resp)
{
	json_t *list = json_object_get(body, "network_interfaces"), *v;
	size_t i;

	if (!json_is_array(list) || !json_array_size(list)) {
		fault(resp, 400, "the MMDS configuration needs \"network_interfaces\", a "
		      "non-empty list of interface ids");
		return false;
	}
	json_array_foreach(list, i, v) {
		const struct api_iface *ifc = json_is_string(v) ? find_iface(api, json_string_value(v))
							       : NULL;
		if (!ifc) {
			char ids[256];
			iface_list(api, ids, sizeof(ids));
			fault(resp, 400, "network_interfaces[%zu] is not an interface of this "
			      "instance (%s)", i, ids);
			return false;
		}
		if (!ifc->mmds) {
			fault(resp, 400, "network_interfaces[%zu]: MMDS was not started on \"%s\" "
			      "(kvmini places it at start-up)", i, ifc->iface_id);
			return false;
		}
	}
	return true;
}

static bool mmds_parse_config(struct api *api, json_t *body, struct mmds_config *cfg,
			      struct http_response *resp)
{
	bool ok;
	const char *ver = get_string(body, "version", false, &ok, "the MMDS configuration", resp);

	if (!ok)
		return false;
	if (ver && strcmp(ver, "V1") && strcmp(ver, "V2")) {
		fault(resp, 400, "MMDS version \"%s\" is not V1 or V2", ver);
		return false;
	}
	cfg->version = ver && !strcmp(ver, "V2") ? MMDS_V2 : MMDS_V1;
	const char *addr = get_string(body, "ipv4_address", false, &ok, "the MMDS configuration",
				      resp);
	if (!ok)
		return false;
	struct in_addr a = cfg->ipv4;
	if (addr && inet_pton(AF_INET, addr, &a) != 1) {
		fault(resp, 400, "ipv4_address \"%s\" is not an IPv4 address", addr);
		return false;
	}
	/* The interceptor takes the address when the interface starts. */
	if (a.s_addr != cfg->ipv4.s_addr) {
		fault(resp, 400, "the MMDS address cannot change while the interface runs "
		      "(it is %s; set it at start)", inet_ntoa(cfg->ipv4));
		return false;
	}
	return true;
}

static void mmds_config_put(struct api *api, const struct http_request *req,
			    struct http_response *resp)
{
	static const char *const keys[] = { "version", "ipv4_address", "network_interfaces",
		NULL };
	struct mmds_config cfg;

	if (!mmds_on(api, resp))
		return;
	json_t *body = body_object(req, resp);
	if (!body)
		return;
	mmds_get_config(api->opts.mmds, &cfg);
	if (known_keys(body, keys, "the MMDS configuration", resp) &&
	    mmds_ifaces_ok(api, body, resp) && mmds_parse_config(api, body, &cfg, resp)) {
		if (mmds_set_config(api->opts.mmds, &cfg) < 0)
			fault(resp, 400, "the MMDS configuration was refused");
		else
			no_content(resp);
	}
	json_decref(body);
}

/* --- metrics ----------------------------------------------------------------------------- */

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

static void visit_mmds(void *opaque, const struct counter_sink *sink)
{
	mmds_visit_counters(opaque, sink);
}

#define X(name, doc) COUNTER_DESC(struct api_counters, name, doc)
const struct counter_set api_counter_set = COUNTER_SET("api_server", API_COUNTERS(X));
#undef X

static void visit_api(void *opaque, const struct counter_sink *sink)
{
	const struct api *api = opaque;

	counters_visit(&api_counter_set, &api->counters, "", sink);
}

static uint64_t utc_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Firecracker's layout: the aggregate "net" and one "net_<iface_id>". */
char *api_metrics_line(struct api *api)
{
	char key[80];
	json_t *m = json_object();

	json_object_set_new(m, "utc_timestamp_ms", json_integer((json_int_t)utc_ms()));
	json_object_set_new(m, "api_server", capture_counters("api_server", visit_api, api));
	json_t *sum = json_object();
	for (unsigned i = 0; i < api->opts.n_ifaces && i < API_MAX_IFACES; i++) {
		const struct api_iface *ifc = &api->opts.ifaces[i];
		json_t *one = capture_counters("net", visit_net, ifc->net);
		add_counters(sum, one);
		snprintf(key, sizeof(key), "net_%s", ifc->iface_id);
		json_object_set_new(m, key, one);
	}
	json_object_set_new(m, "net", sum);
	if (api->opts.mmds)
		json_object_set_new(m, "mmds", capture_counters("mmds", visit_mmds, api->opts.mmds));
	for (unsigned i = 0; i < api->opts.n_sources && i < API_MAX_SOURCES; i++) {
		const struct api_counter_source *s = &api->opts.sources[i];
		json_object_set_new(m, s->name, capture_counters(s->name, s->visit, s->opaque));
	}
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

/* Open the metrics file and start the periodic flush; 0 or answered. */
static int metrics_open(struct api *api, const char *path, struct http_response *resp)
{
	/* Non-blocking: a FIFO without a reader must not stall the loop. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);

	if (fd < 0) {
		fault(resp, 400, "cannot open metrics_path %s: %s", path, strerror(errno));
		return -1;
	}
	api->metrics_path = strdup(path);
	if (!api->metrics_path) {
		close(fd);
		fault(resp, 500, "out of memory");
		return -1;
	}
	api->metrics_fd = fd;
	if (api->loop)
		metrics_arm_timer(api, clock_now_ns());
	return 0;
}

static void metrics_put(struct api *api, const struct http_request *req,
			struct http_response *resp)
{
	static const char *const keys[] = { "metrics_path", NULL };
	bool ok;

	if (api->metrics_path) {
		fault(resp, 400, "Reinitialization of metrics not allowed.");
		return;
	}
	json_t *body = body_object(req, resp);
	if (!body)
		return;
	if (known_keys(body, keys, "the metrics configuration", resp)) {
		const char *path = get_string(body, "metrics_path", true, &ok,
					      "the metrics configuration", resp);
		if (path && metrics_open(api, path, resp) == 0)
			no_content(resp);
	}
	json_decref(body);
}

static void metrics_get(struct api *api, struct http_response *resp)
{
	char *line = api_metrics_line(api);

	if (!line) {
		fault(resp, 500, "out of memory");
		return;
	}
	http_response_take(resp, 200, "application/json", line, strlen(line));
}

/* --- /actions and / --------------------------------------------------------------------- */

/* Run one action; the body was parsed and holds a string action_type. */
static void run_action(struct api *api, const char *type, struct http_response *resp)
{
	if (strcmp(type, "FlushMetrics")) {
		fault(resp, 400, "action_type \"%s\" is not supported (kvmini supports "
		      "FlushMetrics)", type);
		return;
	}
	if (!api->metrics_path) {
		fault(resp, 400, "metrics are not configured: PUT /metrics first");
		return;
	}
	int r = metrics_flush(api);
	if (r < 0)
		fault(resp, 400, "cannot write metrics to %s: %s", api->metrics_path, strerror(-r));
	else
		no_content(resp);
}

static void actions_put(struct api *api, const struct http_request *req,
			struct http_response *resp)
{
	static const char *const keys[] = { "action_type", NULL };
	json_t *body = body_object(req, resp);
	bool ok;

	if (!body)
		return;
	if (known_keys(body, keys, "the action", resp)) {
		const char *type = get_string(body, "action_type", true, &ok, "the action", resp);
		if (type)
			run_action(api, type, resp);
	}
	json_decref(body);
}

static void instance_get(struct api *api, struct http_response *resp)
{
	reply_json(resp, 200, json_pack("{s:s,s:s,s:s}", "app_name", "kvmini", "id",
					"anonymous-instance", "state", "Running"));
}

/* --- dispatch ---------------------------------------------------------------------------- */

/* Every route handler's shape: @id is the path's {id} segment, or NULL. */
typedef void (*route_fn)(struct api *api, const char *id, const struct http_request *req,
			 struct http_response *resp);

static void route_mmds_put(struct api *api, const char *id, const struct http_request *req,
			   struct http_response *resp)
{
	mmds_update(api, req, false, resp);
}

static void route_mmds_patch(struct api *api, const char *id, const struct http_request *req,
			     struct http_response *resp)
{
	mmds_update(api, req, true, resp);
}

static void route_mmds_get(struct api *api, const char *id, const struct http_request *req,
			   struct http_response *resp)
{
	mmds_read(api, resp);
}

static void route_mmds_config_put(struct api *api, const char *id,
				  const struct http_request *req, struct http_response *resp)
{
	mmds_config_put(api, req, resp);
}

static void route_iface_put(struct api *api, const char *id, const struct http_request *req,
			    struct http_response *resp)
{
	iface_put_patch(api, id, req, false, resp);
}

static void route_iface_patch(struct api *api, const char *id, const struct http_request *req,
			      struct http_response *resp)
{
	iface_put_patch(api, id, req, true, resp);
}

static void route_iface_get(struct api *api, const char *id, const struct http_request *req,
			    struct http_response *resp)
{
	iface_get(api, id, resp);
}

static void route_metrics_put(struct api *api, const char *id, const struct http_request *req,
			      struct http_response *resp)
{
	metrics_put(api, req, resp);
}

static void route_metrics_get(struct api *api, const char *id, const struct http_request *req,
			      struct http_response *resp)
{
	metrics_get(api, resp);
}

static void route_actions_put(struct api *api, const char *id, const struct http_request *req,
			      struct http_response *resp)
{
	actions_put(api, req, resp);
}

static void route_instance_get(struct api *api, const char *id, const struct http_request *req,
			       struct http_response *resp)
{
	instance_get(api, resp);
}

/*
 * The routes: a path is exact, or a prefix ending in "{id}", which takes one
 * non-empty segment (no '/') and hands it to the handler. A request no entry
 * takes, a known path with a method it does not take included, is refused
 * in Firecracker's words.
 */
struct route {
	const char *method;
	const char *path;
	route_fn fn;
};

static const struct route routes[] = {
	{ "PUT",   "/mmds",                     route_mmds_put },
	{ "PATCH", "/mmds",                     route_mmds_patch },
	{ "GET",   "/mmds",                     route_mmds_get },
	{ "PUT",   "/mmds/config",              route_mmds_config_put },
	{ "PUT",   "/network-interfaces/{id}",  route_iface_put },
	{ "PATCH", "/network-interfaces/{id}",  route_iface_patch },
	{ "GET",   "/network-interfaces/{id}",  route_iface_get },
	{ "PUT",   "/metrics",                  route_metrics_put },
	{ "GET",   "/metrics",                  route_metrics_get },
	{ "PUT",   "/actions",                  route_actions_put },
	{ "GET",   "/",                         route_instance_get },
};

#define ID_SEGMENT "{id}"

/* Whether @path fits @pattern; *id is then its {id} segment, or NULL. */
static bool path_matches(const char *pattern, const char *path, const char **id)
{
	const char *seg = strstr(pattern, ID_SEGMENT);

	*id = NULL;
	if (!seg)
		return !strcmp(pattern, path);
	size_t prefix = (size_t)(seg - pattern);
	if (strncmp(pattern, path, prefix) || !path[prefix] || strchr(path + prefix, '/'))
		return false;
	*id = path + prefix;
	return true;
}

/* Route one request; false when no route takes its method and path. */
static bool route(struct api *api, const struct http_request *req, struct http_response *resp)
{
	const char *id;

	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		const struct route *r = &routes[i];
		if (!strcmp(r->method, req->method) && path_matches(r->path, req->path, &id)) {
			r->fn(api, id, req, resp);
			return true;
		}
	}
	return false;
}

void api_http_handler(void *opaque, const struct http_request *req, struct http_response *resp)
{
	struct api *api = opaque;

	api->counters.requests++;
	if (!route(api, req, resp))
		fault(resp, 400, "Invalid request method and/or path: %s %s.", req->method,
		      req->path);
	if (resp->status >= 400) {
		api->counters.faults++;
		log_info("api: %s %s: %d %.*s", req->method, req->path, resp->status,
			 (int)MIN(resp->body_len, 300), resp->body ? resp->body : "");
	} else {
		log_debug("api: %s %s: %d", req->method, req->path, resp->status);
	}
}

void api_http_error(void *opaque, int status, const char *message, struct http_response *resp)
{
	struct api *api = opaque;

	api->counters.requests++;
	api->counters.faults++;
	fault(resp, status, "%s", message);
}

const struct api_counters *api_counters(const struct api *api)
{
	return &api->counters;
}

/* --- lifecycle --------------------------------------------------------------------------- */

struct api *api_start(struct event_loop *loop, const struct api_opts *opts,
		      char *err, size_t errlen)
{
	struct api *api = calloc(1, sizeof(*api));

	if (!api) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	api->opts = *opts;
	api->loop = loop;
	api->metrics_fd = -1;
	if (!opts->socket_path)
		return api;
	struct http_server_opts so = {
		.socket_path = opts->socket_path,
		.limits = { .max_header_bytes = API_MAX_HEADER_BYTES,
			    .max_body_bytes = API_MAX_BODY_BYTES,
			    .max_connections = API_MAX_CONNECTIONS },
		.handler = api_http_handler,
		.on_error = api_http_error,
		.opaque = api,
		.name = "api",
	};
	api->srv = http_server_start(loop, &so, err, errlen);
	if (!api->srv) {
		free(api);
		return NULL;
	}
	return api;
}

void api_stop(struct api *api)
{
	if (!api)
		return;
	http_server_stop(api->srv);
	if (api->loop)
		event_loop_timer_cancel(api->loop, &api->metrics_timer);
	if (api->metrics_fd >= 0)
		close(api->metrics_fd);
	free(api->metrics_path);
	free(api);
}
