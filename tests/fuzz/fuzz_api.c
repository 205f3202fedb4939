/*
 * libFuzzer target: the control API with arbitrary request bodies on each
 * of its routes (and arbitrary raw bytes on one connection).
 *
 * Input: a list of requests, each a 1-byte route index, a 2-byte body
 * length and the body. Route 0 feeds the body as raw HTTP instead.
 * PUT /metrics and PUT /logger are left out (they create the file they
 * are given; the logger is the process's), also from the raw bytes.
 * Checked besides ASan/UBSan/LeakSanitizer:
 *  - every response is 200, 204, 400 or 413, and parses as one HTTP
 *    response; an error carries {"fault_message": string};
 *  - a 200 body is JSON; GET /mmds returns what the store holds;
 *  - the device's rate limiters always hold a configuration
 *    rate_limiter_configure accepts.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/log.h"
#include "mmds/mmds.h"
#include "net/net_device.h"
#include "fuzz_input.h"

#define FAIL(...) FUZZ_FAIL("fuzz_api", __VA_ARGS__)

static const struct { const char *method, *path; } routes[] = {
	{ NULL, NULL },                       /* raw HTTP */
	{ "PATCH", "/network-interfaces/eth0" },
	{ "PUT", "/network-interfaces/eth0" },
	{ "GET", "/network-interfaces/eth0" },
	{ "PUT", "/mmds" },
	{ "PATCH", "/mmds" },
	{ "GET", "/mmds" },
	{ "PUT", "/mmds/config" },
	{ "PUT", "/actions" },
	{ "GET", "/metrics" },
	{ "GET", "/" },
	{ "DELETE", "/mmds" },
	{ "PATCH", "/network-interfaces/eth1" },
};

struct rig {
	struct event_loop loop;
	struct net_backend *be;
	struct net_device net;
	struct mmds *mmds;
	struct api *api;
};

static struct rig *rig_up(void)
{
	static struct rig r;
	struct errbuf eb = { 0 };
	struct net_config_opts no = { .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .mtu = 1500 };
	struct mmds_config mc = { .version = MMDS_V1, .store_limit = 2048 };
	struct api_opts ao = { .ifaces = { { &r.net, "eth0", "tap0", true } }, .n_ifaces = 1 };

	log_threshold = LOG_ERROR;
	if (event_loop_init(&r.loop) < 0 ||
	    !(r.be = net_loopback_create(&r.loop, NULL, &eb)) ||
	    net_device_init(&r.net, &no, r.be, &r.loop) < 0)
		FAIL("setup");
	inet_pton(AF_INET, "169.254.169.254", &mc.ipv4);
	r.mmds = mmds_new(&mc);
	ao.mmds = r.mmds;
	r.api = api_start(&r.loop, &ao, &eb);
	if (!r.mmds || !r.api)
		FAIL("setup");
	return &r;
}

static void check_response(const char *out, size_t len, bool raw)
{
	int status = 0;
	char *copy = strndup(out, len);
	const char *body = copy ? strstr(copy, "\r\n\r\n") : NULL;

	if (!copy)
		return;
	if (sscanf(copy, "HTTP/1.1 %d", &status) != 1)
		FAIL("no status line: %.60s", copy);
	if (raw && status == 100)
		return free(copy);
	if (status != 200 && status != 204 && status != 400 && status != 413 &&
	    !(raw && (status == 501 || status == 505)))
		FAIL("status %d: %.200s", status, copy);
	if (!body)
		FAIL("no end of headers");
	body += 4;
	/* Only this response's body: more responses may follow it. */
	const char *cl = strstr(copy, "Content-Length: ");
	size_t body_len = cl && cl < body ? strtoul(cl + 16, NULL, 10) : 0;
	if (body_len > len - (size_t)(body - copy))
		FAIL("Content-Length %zu beyond the output", body_len);
	if (status != 204) {
		json_t *j = json_loadb(body, body_len, JSON_DECODE_ANY, NULL);
		if (!j)
			FAIL("body is not JSON: %.200s", body);
		if (status >= 400 && !json_is_string(json_object_get(j, "fault_message")))
			FAIL("error without fault_message: %.200s", body);
		json_decref(j);
	} else if (cl && cl < body) {
		FAIL("204 with a Content-Length");
	}
	free(copy);
}

static void check_limits(struct net_device *net)
{
	for (unsigned q = 0; q < NET_NUM_QUEUES; q++) {
		struct rate_limiter_config cfg;
		net_device_get_rate_limit(net, q, &cfg);
		if (!rate_limiter_config_valid(&cfg))
			FAIL("queue %u holds an invalid limit", q);
	}
}

static void one_request(struct rig *r, unsigned route, const char *body, size_t len)
{
	struct http_limits lim = { .max_header_bytes = 4096, .max_body_bytes = 8192,
				   .max_connections = 1 };
	struct http_conn *c = http_conn_new(&lim, api_http_handler, api_http_error, r->api);
	char head[160];
	char *out = NULL;
	size_t out_len = 0;

	if (!c)
		return;
	if (route == 0) {
		/* Raw bytes could configure metrics or the log to any path: not here. */
		if (!memmem(body, len, "metrics_path", 12) && !memmem(body, len, "/logger", 7))
			http_conn_feed(c, body, len, &out, &out_len);
	} else {
		int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
				 routes[route].method, routes[route].path, len);
		http_conn_feed(c, head, (size_t)n, &out, &out_len);
		http_conn_feed(c, body, len, &out, &out_len);
		if (!out_len)
			FAIL("no response to a whole request");
	}
	/* The first response only: raw input may hold several. */
	if (out_len)
		check_response(out, out_len, route == 0);
	free(out);
	http_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rig *r;
	struct fuzz_input in = { data, size };

	if (!r)
		r = rig_up();
	/* Each input starts from an empty store and no limits. */
	struct rate_limiter_config none = { 0 };
	net_device_set_rate_limit(&r->net, NET_RX_QUEUE, &none);
	net_device_set_rate_limit(&r->net, NET_TX_QUEUE, &none);
	mmds_put(r->mmds, "{}", 2);
	for (unsigned n = 0; in.n && n < 16; n++) {
		unsigned route = (unsigned)fuzz_take(&in, 1) % (sizeof(routes) / sizeof(routes[0]));
		size_t len = (size_t)fuzz_take(&in, 2);
		if (len > in.n)
			len = in.n;
		one_request(r, route, (const char *)in.p, len);
		in.p += len;
		in.n -= len;
		check_limits(&r->net);
	}
	return 0;
}
