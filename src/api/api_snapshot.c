/*
 * PUT /snapshot/create and PUT /snapshot/load, in Firecracker's shapes.
 *
 * A snapshot is taken of a paused VM only (as Firecracker: the state
 * would move under the writer otherwise). Loading needs a monitor that
 * has not booted anything: `kvmini run` boots at start, so here a load is
 * refused with where to go instead (`kvmini run --restore`).
 */
#include <errno.h>
#include <string.h>

#include "api/api_internal.h"

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

void api_snapshot_load_put(struct api *api, const char *id, const struct http_request *req,
			   struct http_response *resp)
{
	json_t *body = api_body_object(req, resp);

	if (!body)
		return;
	json_decref(body);
	api_fault(resp, 400, "Loading a snapshot is not possible after the microVM has booted: "
		  "start a new kvmini with `kvmini run --restore STATE --mem-file FILE`.");
}
