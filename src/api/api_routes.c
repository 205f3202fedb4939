/*
 * The control API's routes: one table of method, path and handler, and the
 * matcher that picks the entry for a request. A path is exact, or a prefix
 * ending in "{id}", which takes one non-empty segment (no '/') and hands it
 * to the handler. A request no entry takes, a known path with a method it
 * does not take included, is refused by the caller in Firecracker's words.
 */
#include <string.h>

#include "api/api_internal.h"
#include "core/compiler.h"

struct api_route {
	const char *method;
	const char *path;
	api_handler_fn fn;
};

static const struct api_route api_routes[] = {
	{ "PUT",   "/mmds",                     api_mmds_put },
	{ "PATCH", "/mmds",                     api_mmds_patch },
	{ "GET",   "/mmds",                     api_mmds_get },
	{ "PUT",   "/mmds/config",              api_mmds_config_put },
	{ "PUT",   "/network-interfaces/{id}",  api_iface_put },
	{ "PATCH", "/network-interfaces/{id}",  api_iface_patch },
	{ "GET",   "/network-interfaces/{id}",  api_iface_get },
	{ "PUT",   "/logger",                   api_logger_put },
	{ "PUT",   "/metrics",                  api_metrics_put },
	{ "GET",   "/metrics",                  api_metrics_get },
	{ "PUT",   "/actions",                  api_actions_put },
	{ "PATCH", "/vm",                       api_vm_patch },
	{ "PUT",   "/snapshot/create",          api_snapshot_create_put },
	{ "PUT",   "/snapshot/load",            api_snapshot_load_put },
	{ "PUT",   "/boot-source",              api_boot_source_put },
	{ "PUT",   "/entropy",                  api_entropy_put },
	{ "PUT",   "/vsock",                    api_vsock_put },
	{ "PUT",   "/balloon",                  api_balloon_put },
	{ "GET",   "/balloon",                  api_balloon_get },
	{ "PATCH", "/balloon",                  api_balloon_patch },
	{ "GET",   "/balloon/statistics",       api_balloon_stats_get },
	{ "PATCH", "/balloon/statistics",       api_balloon_stats_patch },
	{ "PUT",   "/drives/{id}",              api_drive_put },
	{ "PATCH", "/drives/{id}",              api_drive_patch },
	{ "GET",   "/machine-config",           api_machine_config_get },
	{ "PUT",   "/machine-config",           api_machine_config_put },
	{ "PATCH", "/machine-config",           api_machine_config_patch },
	{ "GET",   "/version",                  api_version_get },
	{ "GET",   "/vm/config",                api_vm_config_get },
	{ "GET",   "/",                         api_instance_get },
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

bool api_route(struct api *api, const struct http_request *req, struct http_response *resp)
{
	const char *id;

	for (size_t i = 0; i < ARRAY_SIZE(api_routes); i++) {
		const struct api_route *r = &api_routes[i];
		if (!strcmp(r->method, req->method) && path_matches(r->path, req->path, &id)) {
			r->fn(api, id, req, resp);
			return true;
		}
	}
	return false;
}
