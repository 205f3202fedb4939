/*
 * PUT /snapshot/create and PUT /snapshot/load, in Firecracker's shapes.
 *
 * A snapshot is taken of a paused VM only (as Firecracker: the state
 * would move under the writer otherwise). Loading needs a monitor that
 * has no VM yet (`kvmini run --api-sock PATH` with nothing to boot waits
 * for one); kvmini's extensions to the load: mem_backend.diff_paths (the
 * Diff layers over the Full image), network_overrides[].guest_mac,
 * fs_overrides (a share's directory) and mmds_new_token_key (what a clone
 * changes); Firecracker's vsock_override (the vsock device's socket path).
 */
#include <errno.h>
#include <string.h>

#include "api/api_internal.h"
#include "net/net_device.h"

/* Firecracker's "snapshot_type": "Full" (the default) or "Diff". */
static bool parse_type(json_t *body, bool *diff, struct http_response *resp)
{
	bool ok = true;
	const char *type = api_get_string(body, "snapshot_type", false, &ok, "snapshot", resp);

	if (!ok)
		return false;
	*diff = type && !strcmp(type, "Diff");
	if (type && !*diff && strcmp(type, "Full")) {
		api_fault(resp, 400, "snapshot_type: \"%s\" is not Full or Diff.", type);
		return false;
	}
	return true;
}

static void create(struct api *api, const struct api_snapshot_create *req,
		   struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;
	struct errbuf eb = { 0 };

	if (!vm || !vm->snapshot_create) {
		api_fault(resp, 400, "This kvmini instance serves a device, not a VM.");
		return;
	}
	int r = vm->snapshot_create(api->opts.vm_ctx, req, &eb);
	if (r == -EAGAIN)
		api_fault(resp, 400, "Cannot create a snapshot while the microVM is running: "
			  "pause it first (PATCH /vm {\"state\": \"Paused\"}).");
	else if (r < 0)
		api_fault(resp, 400, "Cannot create the snapshot: %s", eb.msg[0] ? eb.msg : strerror(-r));
	else
		api_no_content(resp);
}

void api_snapshot_create_put(struct api *api, const char *id, const struct http_request *req,
			     struct http_response *resp)
{
	static const char *const keys[] = { "snapshot_type", "snapshot_path", "mem_file_path",
					    NULL };
	struct api_snapshot_create sc = { 0 };
	json_t *body = api_body_object(req, resp);
	bool ok = true;

	if (!body)
		return;
	if (api_known_keys(body, keys, "snapshot", resp) && parse_type(body, &sc.diff, resp)) {
		sc.snapshot_path = api_get_string(body, "snapshot_path", true, &ok, "snapshot", resp);
		if (sc.snapshot_path)
			sc.mem_file_path = api_get_string(body, "mem_file_path", true, &ok,
							  "snapshot", resp);
		if (sc.snapshot_path && sc.mem_file_path)
			create(api, &sc, resp);
	}
	json_decref(body);
}

/* --- load --------------------------------------------------------------------- */

/* mem_backend {"backend_type": "File", "backend_path", and kvmini's
 * "diff_paths": [...]}: the memory files, Full first. */
static bool parse_mem_backend(json_t *mb, struct api_snapshot_load *sl, struct http_response *resp)
{
	static const char *const keys[] = { "backend_type", "backend_path", "diff_paths", NULL };
	bool ok = true;

	if (!json_is_object(mb)) {
		api_fault(resp, 400, "mem_backend must be an object");
		return false;
	}
	if (!api_known_keys(mb, keys, "mem_backend", resp))
		return false;
	const char *type = api_get_string(mb, "backend_type", true, &ok, "mem_backend", resp);
	if (!type)
		return false;
	if (strcmp(type, "File")) {
		api_fault(resp, 400, "mem_backend: backend_type \"%s\" is not supported: kvmini "
			  "maps the memory file itself (\"File\")", type);
		return false;
	}
	sl->mem_paths[0] = api_get_string(mb, "backend_path", true, &ok, "mem_backend", resp);
	if (!sl->mem_paths[0])
		return false;
	sl->n_mem_paths = 1;
	json_t *diffs = json_object_get(mb, "diff_paths"), *d;
	size_t i;
	if (diffs && !json_is_array(diffs)) {
		api_fault(resp, 400, "mem_backend: diff_paths must be an array of paths");
		return false;
	}
	json_array_foreach(diffs, i, d) {
		if (!json_is_string(d) || sl->n_mem_paths >= API_SNAPSHOT_MAX_LAYERS) {
			api_fault(resp, 400, "mem_backend: diff_paths must be at most %u paths",
				  API_SNAPSHOT_MAX_LAYERS - 1);
			return false;
		}
		sl->mem_paths[sl->n_mem_paths++] = json_string_value(d);
	}
	return true;
}

/* The memory: mem_backend, or Firecracker's older mem_file_path; one. */
static bool parse_memory(json_t *body, struct api_snapshot_load *sl, struct http_response *resp)
{
	json_t *mb = json_object_get(body, "mem_backend");
	bool ok = true;
	const char *file = api_get_string(body, "mem_file_path", false, &ok, "snapshot", resp);

	if (!ok)
		return false;
	if (!file == !mb) {
		api_fault(resp, 400, "snapshot load needs %s of mem_backend and mem_file_path",
			  file ? "only one" : "one");
		return false;
	}
	if (mb)
		return parse_mem_backend(mb, sl, resp);
	sl->mem_paths[0] = file;
	sl->n_mem_paths = 1;
	return true;
}

/* One of network_overrides: {"iface_id", "host_dev_name"} and kvmini's
 * "guest_mac". */
static bool parse_override(json_t *o, struct api_net_override *ov, struct http_response *resp)
{
	static const char *const keys[] = { "iface_id", "host_dev_name", "guest_mac", NULL };
	const char *what = "network_overrides";
	bool ok = true;

	if (!json_is_object(o)) {
		api_fault(resp, 400, "network_overrides must be an array of objects");
		return false;
	}
	if (!api_known_keys(o, keys, what, resp))
		return false;
	ov->iface_id = api_get_string(o, "iface_id", true, &ok, what, resp);
	if (ok)
		ov->host_dev_name = api_get_string(o, "host_dev_name", false, &ok, what, resp);
	const char *mac = ok ? api_get_string(o, "guest_mac", false, &ok, what, resp) : NULL;
	if (!ok)
		return false;
	if (mac && net_parse_mac(mac, ov->mac) < 0) {
		api_fault(resp, 400, "network_overrides: guest_mac \"%s\" is not a unicast MAC "
			  "address", mac);
		return false;
	}
	ov->mac_given = mac != NULL;
	return true;
}

static bool parse_overrides(json_t *body, struct api_snapshot_load *sl,
			    struct http_response *resp)
{
	json_t *arr = json_object_get(body, "network_overrides"), *o;
	size_t i;

	if (!arr || json_is_null(arr))
		return true;
	if (!json_is_array(arr) || json_array_size(arr) > API_MAX_IFACES) {
		api_fault(resp, 400, "network_overrides must be an array of at most %u objects",
			  API_MAX_IFACES);
		return false;
	}
	json_array_foreach(arr, i, o) {
		if (!parse_override(o, &sl->overrides[sl->n_overrides++], resp))
			return false;
	}
	return true;
}

/* kvmini's fs_overrides: [{"tag", "shared_dir"}]. */
static bool parse_fs_overrides(json_t *body, struct api_snapshot_load *sl,
			       struct http_response *resp)
{
	static const char *const keys[] = { "tag", "shared_dir", NULL };
	json_t *arr = json_object_get(body, "fs_overrides"), *o;
	size_t i;
	bool ok = true;

	if (!arr || json_is_null(arr))
		return true;
	if (!json_is_array(arr) || json_array_size(arr) > API_MAX_FS_OVERRIDES) {
		api_fault(resp, 400, "fs_overrides must be an array of at most %u objects",
			  API_MAX_FS_OVERRIDES);
		return false;
	}
	json_array_foreach(arr, i, o) {
		struct api_fs_override *f = &sl->fs_overrides[sl->n_fs_overrides++];
		if (!json_is_object(o)) {
			api_fault(resp, 400, "fs_overrides must be an array of objects");
			return false;
		}
		if (!api_known_keys(o, keys, "fs_overrides", resp))
			return false;
		f->tag = api_get_string(o, "tag", true, &ok, "fs_overrides", resp);
		if (ok)
			f->shared_dir = api_get_string(o, "shared_dir", true, &ok, "fs_overrides", resp);
		if (!ok)
			return false;
	}
	return true;
}

/* Firecracker's vsock_override: {"uds_path"}, the vsock device's socket. */
static bool parse_vsock_override(json_t *body, struct api_snapshot_load *sl,
				 struct http_response *resp)
{
	static const char *const keys[] = { "uds_path", NULL };
	json_t *o = json_object_get(body, "vsock_override");
	bool ok = true;

	if (!o || json_is_null(o))
		return true;
	if (!json_is_object(o)) {
		api_fault(resp, 400, "vsock_override must be an object");
		return false;
	}
	if (!api_known_keys(o, keys, "vsock_override", resp))
		return false;
	sl->vsock_uds_path = api_get_string(o, "uds_path", true, &ok, "vsock_override", resp);
	return ok;
}

static bool parse_flags(json_t *body, struct api_snapshot_load *sl, struct http_response *resp)
{
	bool old_diff = false;

	if (!api_get_bool(body, "resume_vm", &sl->resume_vm, "snapshot", resp) ||
	    !api_get_bool(body, "track_dirty_pages", &sl->track_dirty_pages, "snapshot", resp) ||
	    !api_get_bool(body, "enable_diff_snapshots", &old_diff, "snapshot", resp) ||
	    !api_get_bool(body, "mmds_new_token_key", &sl->mmds_new_token_key, "snapshot", resp))
		return false;
	sl->track_dirty_pages |= old_diff;
	return true;
}

static void load(struct api *api, const struct api_snapshot_load *sl, struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;
	struct errbuf eb = { 0 };

	if (!vm || !vm->snapshot_load) {
		api_fault(resp, 400, "This kvmini instance serves a device, not a VM.");
		return;
	}
	int r = vm->snapshot_load(api->opts.vm_ctx, sl, &eb);
	if (r == -EEXIST)
		api_fault(resp, 400, "Loading a snapshot is not possible after the microVM has "
			  "booted or loaded one: start a new kvmini (`kvmini run --api-sock PATH`, "
			  "or `kvmini run --restore STATE --mem-file FILE`).");
	else if (r < 0)
		api_fault(resp, 400, "Cannot load the snapshot: %s", eb.msg[0] ? eb.msg : strerror(-r));
	else
		api_no_content(resp);
}

void api_snapshot_load_put(struct api *api, const char *id, const struct http_request *req,
			   struct http_response *resp)
{
	static const char *const keys[] = {
		"snapshot_path", "mem_backend", "mem_file_path", "resume_vm", "track_dirty_pages",
		"enable_diff_snapshots", "network_overrides", "mmds_new_token_key", "fs_overrides",
		"vsock_override", NULL,
	};
	struct api_snapshot_load sl = { 0 };
	json_t *body = api_body_object(req, resp);
	bool ok = true;

	if (!body)
		return;
	if (api_known_keys(body, keys, "snapshot load", resp)) {
		sl.snapshot_path = api_get_string(body, "snapshot_path", true, &ok, "snapshot load",
						  resp);
		if (sl.snapshot_path && parse_memory(body, &sl, resp) && parse_flags(body, &sl, resp) &&
		    parse_overrides(body, &sl, resp) && parse_fs_overrides(body, &sl, resp) &&
		    parse_vsock_override(body, &sl, resp))
			load(api, &sl, resp);
	}
	json_decref(body);
}
