/*
 * Firecracker's /drives: PUT /drives/{drive_id} with its Drive body before
 * the start configures a virtio-blk device (api_vm_ops.add_drive keeps it
 * for InstanceStart); PATCH /drives/{drive_id} with its PartialDrive body
 * after the start serves a drive from path_on_host (api_vm_ops.patch_drive:
 * the file opened again, the guest told its capacity), and before the
 * start is refused as Firecracker refuses it. A rate_limiter (bandwidth
 * in bytes, ops in requests) is the drive's, in PUT and PATCH alike.
 * Options kvmini's drives do not have are refused by name, never ignored;
 * those that change nothing here are taken.
 */
#include <errno.h>
#include <string.h>

#include "api/api_internal.h"

/* The body's one choice among @allowed (or absent). */
static bool one_of(json_t *body, const char *key, const char *const *allowed,
		   struct http_response *resp)
{
	bool ok;
	const char *v = api_get_string(body, key, false, &ok, "the drive", resp);

	if (!ok || !v)
		return ok;
	for (unsigned i = 0; allowed[i]; i++)
		if (!strcmp(v, allowed[i]))
			return true;
	api_fault(resp, 400, "%s \"%s\" is not %s or %s", key, v, allowed[0], allowed[1]);
	return false;
}

/* The body's rate_limiter over *@cfg: absent or null changes nothing, a
 * bucket it does not name stays as it is (Firecracker's bucket update), a
 * size or refill_time of 0 removes one. False after answering. */
static bool parse_limiter(json_t *body, struct rate_limiter_config *cfg,
			  struct http_response *resp)
{
	json_t *rl = json_object_get(body, "rate_limiter");

	return !rl || json_is_null(rl) || api_parse_limiter(rl, "rate_limiter", cfg, resp);
}

/* Drive @id's limiter as the VM has it now (all zero: none, or no drive). */
static void current_limit(const struct api *api, const char *id, struct rate_limiter_config *cfg)
{
	const struct api_vm_ops *vm = api->opts.vm;
	struct api_vm_config c = { 0 };

	*cfg = (struct rate_limiter_config){ 0 };
	if (!vm->get_vm_config)
		return;
	vm->get_vm_config(api->opts.vm_ctx, &c);
	for (unsigned i = 0; i < c.n_drives; i++)
		if (!strcmp(c.drives[i].drive_id, id))
			*cfg = c.drives[i].limit;
}

/* A vhost-user-blk socket: kvmini serves its drives itself. */
static bool unsupported(json_t *body, struct http_response *resp)
{
	json_t *sock = json_object_get(body, "socket");

	if (sock && !json_is_null(sock)) {
		api_fault(resp, 400, "socket: kvmini serves drives itself (no vhost-user-blk backend)");
		return true;
	}
	return false;
}

static bool parse_drive(json_t *body, const char *id, struct api_drive_config *dc,
			struct http_response *resp)
{
	static const char *const caches[] = { "Unsafe", "Writeback", NULL };
	static const char *const engines[] = { "Sync", "Async", NULL };
	const char *what = "the drive";
	bool ok = true;

	dc->drive_id = api_get_string(body, "drive_id", true, &ok, what, resp);
	if (ok && strcmp(dc->drive_id, id)) {
		api_fault(resp, 400, "The id from the path does not match the id from the body!");
		return false;
	}
	if (ok)
		dc->path_on_host = api_get_string(body, "path_on_host", true, &ok, what, resp);
	if (ok)
		dc->partuuid = api_get_string(body, "partuuid", false, &ok, what, resp);
	if (ok && !json_is_boolean(json_object_get(body, "is_root_device"))) {
		api_fault(resp, 400, "the drive needs \"is_root_device\", true or false");
		return false;
	}
	ok = ok && api_get_bool(body, "is_root_device", &dc->is_root_device, what, resp) &&
	     api_get_bool(body, "is_read_only", &dc->is_read_only, what, resp) &&
	     one_of(body, "cache_type", caches, resp) && one_of(body, "io_engine", engines, resp) &&
	     parse_limiter(body, &dc->limit, resp);
	return ok && !unsupported(body, resp);
}

void api_drive_put(struct api *api, const char *id, const struct http_request *req,
		   struct http_response *resp)
{
	static const char *const keys[] = { "drive_id", "path_on_host", "is_root_device",
		"is_read_only", "partuuid", "cache_type", "rate_limiter", "io_engine", "socket", NULL };
	const struct api_vm_ops *vm = api->opts.vm;
	struct api_drive_config dc = { 0 };
	struct errbuf eb = { 0 };

	if (!vm || !vm->add_drive) {
		api_fault(resp, 400, "This kvmini instance has no drives to configure.");
		return;
	}
	json_t *body = api_body_object(req, resp);
	if (!body)
		return;
	if (api_known_keys(body, keys, "the drive", resp) && parse_drive(body, id, &dc, resp)) {
		int r = vm->add_drive(api->opts.vm_ctx, &dc, &eb);
		if (r == -EEXIST)
			api_fault(resp, 400, API_AFTER_START);
		else if (r < 0)
			api_fault(resp, 400, "Invalid drive: %s", eb.msg);
		else
			api_no_content(resp);
	}
	json_decref(body);
}

/* A PATCH's answer from the VM's @r, in Firecracker's words. */
static void patch_answer(struct http_response *resp, int r, const char *id,
			 const struct errbuf *eb)
{
	if (r == -EAGAIN)
		api_fault(resp, 400, API_BEFORE_START);
	else if (r == -ENODEV)
		api_fault(resp, 400, "Unable to patch the block device: no drive \"%s\". Please "
			  "verify the request arguments.", id);
	else if (r < 0)
		api_fault(resp, 400, "Unable to patch the block device: %s. Please verify the "
			  "request arguments.", eb->msg[0] ? eb->msg : strerror(-r));
	else
		api_no_content(resp);
}

/* Firecracker's PartialDrive: drive_id (the path's), path_on_host and
 * rate_limiter, each optional. With neither there is nothing to change:
 * refused, as Firecracker refuses it. The path in *@path (NULL: the file
 * stays), the limiter in *@limit and *@has_limit; false after answering. */
static bool parse_patch(json_t *body, const char *id, const char **path,
			struct rate_limiter_config *limit, bool *has_limit,
			struct http_response *resp)
{
	static const char *const keys[] = { "drive_id", "path_on_host", "rate_limiter", NULL };
	const char *what = "the drive";
	bool ok = api_known_keys(body, keys, what, resp);
	const char *body_id = ok ? api_get_string(body, "drive_id", true, &ok, what, resp) : NULL;

	if (!ok)
		return false;
	if (strcmp(body_id, id)) {
		api_fault(resp, 400, "The id from the path does not match the id from the body!");
		return false;
	}
	*path = api_get_string(body, "path_on_host", false, &ok, what, resp);
	*has_limit = json_object_get(body, "rate_limiter") != NULL;
	if (!ok || !parse_limiter(body, limit, resp))
		return false;
	if (!*path && !*has_limit)
		api_fault(resp, 400, "Unable to patch the block device: no path_on_host and no "
			  "rate_limiter, nothing to change. Please verify the request arguments.");
	return *path || *has_limit;
}

void api_drive_patch(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;
	struct rate_limiter_config limit;
	struct errbuf eb = { 0 };
	const char *path = NULL;
	bool has_limit = false;

	if (!vm || !vm->patch_drive) {
		api_fault(resp, 400, "This kvmini instance has no drives to patch.");
		return;
	}
	json_t *body = api_body_object(req, resp);
	if (!body)
		return;
	current_limit(api, id, &limit);
	if (parse_patch(body, id, &path, &limit, &has_limit, resp))
		patch_answer(resp, vm->patch_drive(api->opts.vm_ctx, id, path,
						   has_limit ? &limit : NULL, &eb), id, &eb);
	json_decref(body);
}

json_t *api_drives_json(const struct api_vm_config *c)
{
	json_t *list = json_array();

	for (unsigned i = 0; list && i < c->n_drives; i++) {
		const struct api_drive_config *d = &c->drives[i];
		json_array_append_new(list, json_pack("{s:s,s:s,s:b,s:b,s:o,s:s,s:s,s:o,s:n}",
			"drive_id", d->drive_id, "path_on_host", d->path_on_host,
			"is_root_device", d->is_root_device, "is_read_only", d->is_read_only,
			"partuuid", d->partuuid ? json_string(d->partuuid) : json_null(),
			"cache_type", "Unsafe", "io_engine", "Sync",
			"rate_limiter", api_limiter_json(&d->limit), "socket"));
	}
	return list;
}
