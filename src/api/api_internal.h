/*
 * What the files of the control API share: the server's state, the reply
 * and JSON helpers (api_json.c), and the route handlers the table in
 * api_routes.c points at (api_ifaces.c, api_mmds.c, api_metrics.c, api_vm.c,
 * api.c).
 * Everything here runs on the thread of the api_start() loop.
 */
#ifndef KVMINI_API_API_INTERNAL_H
#define KVMINI_API_API_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"

struct api {
	struct api_opts opts;
	struct event_loop *loop;            /* NULL: no server, no periodic metrics */
	struct http_server *srv;
	struct api_counters counters;
	char *metrics_path;                 /* NULL until PUT /metrics */
	int metrics_fd;
	struct event_timer metrics_timer;   /* the periodic flush, once configured */
};

/* --- replies and JSON helpers (api_json.c) --- */

/* Answer @status with @body (taken; NULL: out of memory, a 500). */
void api_reply_json(struct http_response *resp, int status, json_t *body);
/* A refusal in Firecracker's shape: {"fault_message": "..."}. */
void api_fault(struct http_response *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void api_no_content(struct http_response *resp);
/* The request body as a JSON object; NULL after answering 400. */
json_t *api_body_object(const struct http_request *req, struct http_response *resp);
/* Refuse a key outside @allowed (NULL-terminated), as Firecracker does. */
bool api_known_keys(json_t *obj, const char *const *allowed, const char *what,
		    struct http_response *resp);
/* A non-negative integer member; absent leaves *out alone unless @required. */
bool api_get_u64(json_t *obj, const char *key, bool required, uint64_t *out,
		 const char *what, struct http_response *resp);
/* A string member; NULL after answering 400 when it is required or mistyped. */
const char *api_get_string(json_t *obj, const char *key, bool required, bool *ok,
			   const char *what, struct http_response *resp);

/* A boolean member; absent leaves *out alone. */
bool api_get_bool(json_t *obj, const char *key, bool *out, const char *what,
		  struct http_response *resp);

/* --- interfaces (api_ifaces.c) --- */

/* A limiter as Firecracker shows it: {} when unlimited. */
json_t *api_limiter_json(const struct rate_limiter_config *cfg);

/* The interface called @id, or NULL. */
const struct api_iface *api_find_iface(const struct api *api, const char *id);
/* The ids of the interfaces, comma separated, for error messages. */
void api_iface_list(const struct api *api, char *buf, size_t len);

/* --- metrics (api_metrics.c) --- */

/* Close the metrics file and stop the periodic flush. */
void api_metrics_stop(struct api *api);

/* --- route handlers: @id is the path's {id} segment, or NULL --- */

typedef void (*api_handler_fn)(struct api *api, const char *id, const struct http_request *req,
			       struct http_response *resp);

void api_iface_put(struct api *api, const char *id, const struct http_request *req,
		   struct http_response *resp);
void api_iface_patch(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
void api_iface_get(struct api *api, const char *id, const struct http_request *req,
		   struct http_response *resp);
void api_mmds_put(struct api *api, const char *id, const struct http_request *req,
		  struct http_response *resp);
void api_mmds_patch(struct api *api, const char *id, const struct http_request *req,
		    struct http_response *resp);
void api_mmds_get(struct api *api, const char *id, const struct http_request *req,
		  struct http_response *resp);
void api_mmds_config_put(struct api *api, const char *id, const struct http_request *req,
			 struct http_response *resp);
void api_snapshot_create_put(struct api *api, const char *id, const struct http_request *req,
			     struct http_response *resp);
void api_snapshot_load_put(struct api *api, const char *id, const struct http_request *req,
			   struct http_response *resp);
void api_metrics_put(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
void api_metrics_get(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
void api_actions_put(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
void api_instance_get(struct api *api, const char *id, const struct http_request *req,
		      struct http_response *resp);
void api_vm_patch(struct api *api, const char *id, const struct http_request *req,
		  struct http_response *resp);
void api_entropy_put(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
void api_vsock_put(struct api *api, const char *id, const struct http_request *req,
		   struct http_response *resp);
/* --- the balloon (api_balloon.c) --- */
void api_balloon_put(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
void api_balloon_get(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
void api_balloon_patch(struct api *api, const char *id, const struct http_request *req,
		       struct http_response *resp);
void api_balloon_stats_get(struct api *api, const char *id, const struct http_request *req,
			   struct http_response *resp);
void api_balloon_stats_patch(struct api *api, const char *id, const struct http_request *req,
			     struct http_response *resp);
/* GET /balloon's body, also GET /vm/config's "balloon". */
json_t *api_balloon_json(const struct api_balloon_config *bc);
/* --- drives (api_drives.c) --- */
void api_drive_put(struct api *api, const char *id, const struct http_request *req,
		   struct http_response *resp);
void api_drive_patch(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
/* GET /vm/config's "drives". */
json_t *api_drives_json(const struct api_vm_config *c);
void api_boot_source_put(struct api *api, const char *id, const struct http_request *req,
			 struct http_response *resp);
void api_machine_config_get(struct api *api, const char *id, const struct http_request *req,
			    struct http_response *resp);
void api_machine_config_put(struct api *api, const char *id, const struct http_request *req,
			    struct http_response *resp);
void api_machine_config_patch(struct api *api, const char *id, const struct http_request *req,
			      struct http_response *resp);
void api_version_get(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp);
void api_logger_put(struct api *api, const char *id, const struct http_request *req,
		    struct http_response *resp);
void api_vm_config_get(struct api *api, const char *id, const struct http_request *req,
		       struct http_response *resp);

/* GET /machine-config's body (api_boot.c). */
json_t *api_machine_json(const struct api_machine_config *mc);

/* InstanceStart (PUT /actions, api_boot.c). */
void api_instance_start(struct api *api, struct http_response *resp);
/* A new interface before boot (api_boot.c); PUT /network-interfaces/{id}
 * comes here for an id the API does not have. @body was checked for keys. */
void api_iface_create(struct api *api, const char *id, json_t *body, struct http_response *resp);
/* Firecracker's answer to a pre-boot request after the start. */
#define API_AFTER_START "The requested operation is not supported after starting the microVM."
/* ... and to a runtime request before the start. */
#define API_BEFORE_START "The requested operation is not supported before starting the microVM."
/* A RateLimiter body into @cfg (api_ifaces.c); false after answering 400. */
bool api_parse_limiter(json_t *rl, const char *what, struct rate_limiter_config *cfg,
		       struct http_response *resp);

/* Run the route that takes @req's method and path (api_routes.c); false
 * when none does. */
bool api_route(struct api *api, const struct http_request *req, struct http_response *resp);

#endif
