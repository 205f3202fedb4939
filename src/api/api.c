/*
 * The control API (see api.h): the server's life, the entry point of every
 * request and GET /. The routes are a table (api_routes.c) whose handlers
 * live with their subject: api_ifaces.c, api_mmds.c, api_metrics.c,
 * api_vm.c; replies
 * and body helpers are in api_json.c.
 */
#include "api/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/compiler.h"
#include "core/log.h"

#define X(name, doc) COUNTER_DESC(struct api_counters, name, doc)
const struct counter_set api_counter_set = COUNTER_SET("api_server", API_COUNTERS(X));
#undef X

/* GET /: instance information. Without a VM (vhost net) the device
 * serves as long as the process runs: "Running". */
void api_instance_get(struct api *api, const char *id, const struct http_request *req,
		      struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;
	const char *state = vm ? vm->state(api->opts.vm_ctx) : "Running";

	api_reply_json(resp, 200, json_pack("{s:s,s:s,s:s,s:s}", "app_name", "kvmini", "id",
					api->opts.instance_id ? api->opts.instance_id
							      : "anonymous-instance", "state", state, "vmm_version",
					api->opts.vmm_version ? api->opts.vmm_version
							      : "unknown"));
}

/* --- dispatch ---------------------------------------------------------------------------- */

void api_http_handler(void *opaque, const struct http_request *req, struct http_response *resp)
{
	struct api *api = opaque;

	api->counters.requests++;
	if (!api_route(api, req, resp))
		api_fault(resp, 400, "Invalid request method and/or path: %s %s.", req->method,
			  req->path);
	if (resp->status >= 400) {
		api->counters.faults++;
		log_info("api: %s %s: %d %.*s", req->method, req->path, resp->status,
			 (int)MIN(resp->body_len, 300), resp->body ? resp->body : "");
	} else {
		log_debug("api: %s %s: %d", req->method, req->path, resp->status);
	}
}

static size_t api_max_body(const struct api *api)
{
	return api->opts.max_body_bytes ? api->opts.max_body_bytes : API_MAX_BODY_BYTES;
}

void api_http_error(void *opaque, int status, const char *message, struct http_response *resp)
{
	struct api *api = opaque;

	api->counters.requests++;
	api->counters.faults++;
	/* A body over the cap: Firecracker answers 400 (its micro_http's
	 * SizeLimitExceeded), naming the limit. */
	if (status == 413 && strstr(message, "body"))
		api_fault(resp, 400, "Request payload is larger than the limit of %zu bytes "
			  "allowed by server (%s).", api_max_body(api), message);
	else
		api_fault(resp, status, "%s", message);
}

const struct api_counters *api_counters(const struct api *api)
{
	return &api->counters;
}

/* --- lifecycle --------------------------------------------------------------------------- */

struct api *api_start(struct event_loop *loop, const struct api_opts *opts, struct errbuf *eb)
{
	struct api *api = calloc(1, sizeof(*api));

	if (!api) {
		errbuf_set(eb, "out of memory");
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
			    .max_body_bytes = api_max_body(api),
			    .max_connections = API_MAX_CONNECTIONS,
			    .request_timeout_ms = API_REQUEST_TIMEOUT_MS,
			    .idle_timeout_ms = API_IDLE_TIMEOUT_MS,
			    .send_timeout_ms = API_SEND_TIMEOUT_MS },
		.handler = api_http_handler,
		.on_error = api_http_error,
		.opaque = api,
		.name = "api",
	};
	api->srv = http_server_start(loop, &so, eb);
	if (!api->srv) {
		free(api);
		return NULL;
	}
	return api;
}

void api_attach_devices(struct api *api, const struct api_iface *ifaces, unsigned n,
			struct mmds *m)
{
	n = n < API_MAX_IFACES ? n : API_MAX_IFACES;
	for (unsigned i = 0; i < n; i++)
		api->opts.ifaces[i] = ifaces[i];
	api->opts.n_ifaces = n;
	api->opts.mmds = m;
}

int api_add_source(struct api *api, const struct api_counter_source *src)
{
	if (api->opts.n_sources >= API_MAX_SOURCES)
		return -ENOSPC;
	api->opts.sources[api->opts.n_sources++] = *src;
	return 0;
}

void api_stop(struct api *api)
{
	if (!api)
		return;
	/* Metrics first: their last line reads the server's counters. */
	api_metrics_stop(api);
	http_server_stop(api->srv);
	api->srv = NULL;
	free(api);
}
