/*
 * The control API's /mmds (the metadata store: replace, RFC 7396 merge,
 * read) and /mmds/config.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/log.h"
#include "mmds/mmds.h"

/* --- /mmds --------------------------------------------------------------------------- */

static bool mmds_on(struct api *api, struct http_response *resp)
{
	if (api->opts.mmds)
		return true;
	api_fault(resp, 400, "the MMDS is not enabled on this instance");
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
		api_no_content(resp);
		break;
	case -EINVAL:
		api_fault(resp, 400, "the MMDS data is not valid JSON");
		break;
	case -ENODATA:
		api_fault(resp, 400, "The MMDS data store is not initialized.");
		break;
	case -EFBIG:
		mmds_get_config(api->opts.mmds, &cfg);
		api_fault(resp, 413, "the MMDS data store would exceed its limit of %zu bytes",
			  cfg.store_limit);
		break;
	default:
		api_fault(resp, 500, "MMDS update failed: %s", strerror(-r));
	}
}

void api_mmds_put(struct api *api, const char *id, const struct http_request *req,
		  struct http_response *resp)
{
	mmds_update(api, req, false, resp);
}

void api_mmds_patch(struct api *api, const char *id, const struct http_request *req,
		    struct http_response *resp)
{
	mmds_update(api, req, true, resp);
}

void api_mmds_get(struct api *api, const char *id, const struct http_request *req,
		  struct http_response *resp)
{
	if (!mmds_on(api, resp))
		return;
	char *text = mmds_get_json(api->opts.mmds);
	if (!text) {
		api_fault(resp, 500, "out of memory");
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
		api_fault(resp, 400, "the MMDS configuration needs \"network_interfaces\", a "
			  "non-empty list of interface ids");
		return false;
	}
	json_array_foreach(list, i, v) {
		const struct api_iface *ifc = json_is_string(v) ? api_find_iface(api, json_string_value(v))
							       : NULL;
		if (!ifc) {
			char ids[256];
			api_iface_list(api, ids, sizeof(ids));
			api_fault(resp, 400, "network_interfaces[%zu] is not an interface of this "
				  "instance (%s)", i, ids);
			return false;
		}
		if (!ifc->mmds) {
			api_fault(resp, 400, "network_interfaces[%zu]: MMDS was not started on \"%s\" "
				  "(kvmini places it at start-up)", i, ifc->iface_id);
			return false;
		}
	}
	return true;
}

/* "version" (V1 when left out), "imds_compat" and "ipv4_address" into
 * @cfg; an address stays as it is when the body names none. */
static bool mmds_parse_config(json_t *body, struct mmds_config *cfg, struct http_response *resp)
{
	bool ok;
	const char *ver = api_get_string(body, "version", false, &ok, "the MMDS configuration", resp);

	if (!ok)
		return false;
	if (ver && strcmp(ver, "V1") && strcmp(ver, "V2")) {
		api_fault(resp, 400, "MMDS version \"%s\" is not V1 or V2", ver);
		return false;
	}
	cfg->version = ver && !strcmp(ver, "V2") ? MMDS_V2 : MMDS_V1;
	json_t *compat = json_object_get(body, "imds_compat");
	if (compat && !json_is_boolean(compat)) {
		api_fault(resp, 400, "imds_compat must be true or false");
		return false;
	}
	cfg->imds_compat = compat && json_is_true(compat);
	const char *addr = api_get_string(body, "ipv4_address", false, &ok, "the MMDS configuration",
					  resp);
	if (!ok)
		return false;
	if (addr && (inet_pton(AF_INET, addr, &cfg->ipv4) != 1 || !mmds_address_ok(cfg->ipv4))) {
		api_fault(resp, 400, "ipv4_address \"%s\": not an IPv4 address of 169.254.0.0/16 "
			  "(link-local, neither its first nor its last)", addr);
		return false;
	}
	return true;
}

/* "network_interfaces" of a body before the start: a non-empty list of
 * names, which the VM checks against its interfaces. */
static bool mmds_iface_names(json_t *body, struct api_mmds_config *mc, struct http_response *resp)
{
	json_t *list = json_object_get(body, "network_interfaces"), *v;
	size_t i;

	if (!json_is_array(list) || !json_array_size(list) || json_array_size(list) > API_MAX_IFACES) {
		api_fault(resp, 400, "the MMDS configuration needs \"network_interfaces\", a "
			  "list of 1 to %u interface ids", API_MAX_IFACES);
		return false;
	}
	json_array_foreach(list, i, v) {
		if (!json_is_string(v)) {
			api_fault(resp, 400, "network_interfaces[%zu] must be a string", i);
			return false;
		}
		mc->ifaces[mc->n_ifaces++] = json_string_value(v);
	}
	return true;
}

/* 204; V1 (also when "version" is left out) is deprecated in Firecracker,
 * which says so in a "Deprecation: true" header, a warning and a metric. */
static void mmds_config_done(struct api *api, const struct mmds_config *cfg,
			     struct http_response *resp)
{
	api_no_content(resp);
	if (cfg->version != MMDS_V1)
		return;
	api->counters.rx_requests_deprecated++;
	log_warn("PUT /mmds/config: V1 is deprecated. Use V2 instead.");
	(void)http_response_add_header(resp, "Deprecation", "true");
}

/* Before the start: the VM takes the configuration whole (interfaces
 * named then get the interceptor when the machine is built). Returns false
 * when the VM exists already, for the running VM's rules. */
static bool mmds_config_preboot(struct api *api, json_t *body, const struct mmds_config *cur,
				struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;
	struct api_mmds_config mc = { .cfg = *cur };
	struct errbuf eb = { 0 };

	if (!vm || !vm->set_mmds_config)
		return false;
	if (!mmds_parse_config(body, &mc.cfg, resp) || !mmds_iface_names(body, &mc, resp))
		return true;
	int r = vm->set_mmds_config(api->opts.vm_ctx, &mc, &eb);
	if (r == -EEXIST)
		return false;
	if (r < 0)
		api_fault(resp, 400, "%s", eb.msg);
	else
		mmds_config_done(api, &mc.cfg, resp);
	return true;
}

/* After the start: the interceptors are in place, so the interfaces must
 * be ones MMDS was started on, and the address stays. */
static void mmds_config_running(struct api *api, json_t *body, const struct mmds_config *cur,
				struct http_response *resp)
{
	struct mmds_config cfg = *cur;

	if (!mmds_ifaces_ok(api, body, resp) || !mmds_parse_config(body, &cfg, resp))
		return;
	if (cfg.ipv4.s_addr != cur->ipv4.s_addr) {
		api_fault(resp, 400, "the MMDS address cannot change while the interface runs "
			  "(it is %s; set it at start)", inet_ntoa(cur->ipv4));
		return;
	}
	if (mmds_set_config(api->opts.mmds, &cfg) < 0)
		api_fault(resp, 400, "the MMDS configuration was refused");
	else
		mmds_config_done(api, &cfg, resp);
}

void api_mmds_config_put(struct api *api, const char *id, const struct http_request *req,
			 struct http_response *resp)
{
	static const char *const keys[] = { "version", "ipv4_address", "network_interfaces",
		"imds_compat", NULL };
	struct mmds_config cur;

	if (!mmds_on(api, resp))
		return;
	json_t *body = api_body_object(req, resp);
	if (!body)
		return;
	mmds_get_config(api->opts.mmds, &cur);
	if (api_known_keys(body, keys, "the MMDS configuration", resp) &&
	    !mmds_config_preboot(api, body, &cur, resp))
		mmds_config_running(api, body, &cur, resp);
	json_decref(body);
}
