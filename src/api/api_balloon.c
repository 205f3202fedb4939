/*
 * The balloon in Firecracker's shapes and rules: PUT /balloon before the
 * start only, GET /balloon before and after, PATCH /balloon (amount_mib)
 * and GET|PATCH /balloon/statistics after it only. Bodies are checked
 * here; the VM (api_vm_ops) keeps the configuration and the device. The
 * refusals read as Firecracker's do ("Balloon config error: ...",
 * "Balloon update error: ...").
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "api/api_internal.h"
#include "balloon/virtio_balloon.h"

/* The VM's ops, or NULL after answering that there is no balloon to have. */
static const struct api_vm_ops *balloon_vm(struct api *api, struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;

	if (vm && vm->set_balloon)
		return vm;
	api_fault(resp, 400, "This kvmini instance has no balloon device to configure.");
	return NULL;
}

/* An integer member up to @max: false after answering 400. */
static bool get_bounded(json_t *body, const char *key, bool required, uint64_t max,
			uint64_t *out, const char *what, struct http_response *resp)
{
	if (!api_get_u64(body, key, required, out, what, resp))
		return false;
	if (*out <= max)
		return true;
	api_fault(resp, 400, "\"%s\" in %s: %llu is out of range (at most %llu)", key, what,
		  (unsigned long long)*out, (unsigned long long)max);
	return false;
}

/* deflate_on_oom is required, as Firecracker's serde has no default for it. */
static bool get_deflate(json_t *body, bool *out, const char *what, struct http_response *resp)
{
	if (!json_object_get(body, "deflate_on_oom")) {
		api_fault(resp, 400, "%s needs \"deflate_on_oom\"", what);
		return false;
	}
	return api_get_bool(body, "deflate_on_oom", out, what, resp);
}

/* free_page_hinting and free_page_reporting: Firecracker's newer
 * features; false (or absent) only. */
static bool no_hinting(json_t *body, const char *what, struct http_response *resp)
{
	static const char *const keys[] = { "free_page_hinting", "free_page_reporting" };

	for (unsigned i = 0; i < 2; i++) {
		bool on = false;
		if (!api_get_bool(body, keys[i], &on, what, resp))
			return false;
		if (on) {
			api_fault(resp, 400, "Balloon config error: kvmini's balloon has no %s.",
				  i ? "free page reporting" : "free page hinting");
			return false;
		}
	}
	return true;
}

static bool parse_config(json_t *body, struct api_balloon_config *bc, struct http_response *resp)
{
	static const char *const keys[] = { "amount_mib", "deflate_on_oom",
		"stats_polling_interval_s", "free_page_hinting", "free_page_reporting", NULL };
	const char *what = "the balloon device";
	uint64_t amount = 0, interval = 0;

	if (!api_known_keys(body, keys, what, resp) ||
	    !get_bounded(body, "amount_mib", true, UINT32_MAX, &amount, what, resp) ||
	    !get_deflate(body, &bc->deflate_on_oom, what, resp) ||
	    !get_bounded(body, "stats_polling_interval_s", false, UINT16_MAX, &interval, what,
			 resp) ||
	    !no_hinting(body, what, resp))
		return false;
	bc->amount_mib = (uint32_t)amount;
	bc->stats_polling_interval_s = (uint16_t)interval;
	return true;
}

void api_balloon_put(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	struct api_balloon_config bc = { 0 };
	struct errbuf eb = { 0 };
	const struct api_vm_ops *vm = balloon_vm(api, resp);
	json_t *body = vm ? api_body_object(req, resp) : NULL;

	if (!body)
		return;
	if (parse_config(body, &bc, resp)) {
		int r = vm->set_balloon(api->opts.vm_ctx, &bc, &eb);
		if (r == -EEXIST)
			api_fault(resp, 400, API_AFTER_START);
		else if (r < 0)
			api_fault(resp, 400, "Balloon config error: %s",
				  eb.msg[0] ? eb.msg : strerror(-r));
		else
			api_no_content(resp);
	}
	json_decref(body);
}

json_t *api_balloon_json(const struct api_balloon_config *bc)
{
	return json_pack("{s:I,s:b,s:I,s:b,s:b}", "amount_mib", (json_int_t)bc->amount_mib,
			 "deflate_on_oom", bc->deflate_on_oom, "stats_polling_interval_s",
			 (json_int_t)bc->stats_polling_interval_s, "free_page_hinting", 0,
			 "free_page_reporting", 0);
}

void api_balloon_get(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	struct api_balloon_config bc;
	const struct api_vm_ops *vm = balloon_vm(api, resp);

	if (!vm)
		return;
	if (vm->get_balloon(api->opts.vm_ctx, &bc) < 0)
		api_fault(resp, 400, "Balloon config error: No balloon device found.");
	else
		api_reply_json(resp, 200, api_balloon_json(&bc));
}

/* A post-start balloon op's refusal, or @ok_status. */
static bool runtime_answer(struct http_response *resp, int r, const struct errbuf *eb,
			   const char *doing)
{
	if (r == -EAGAIN)
		api_fault(resp, 400, API_BEFORE_START);
	else if (r == -ENODEV)
		api_fault(resp, 400, "%s: No balloon device found.", doing);
	else if (r < 0)
		api_fault(resp, 400, "%s: %s", doing, eb->msg[0] ? eb->msg : strerror(-r));
	return r >= 0;
}

void api_balloon_patch(struct api *api, const char *id, const struct http_request *req,
		       struct http_response *resp)
{
	static const char *const keys[] = { "amount_mib", NULL };
	const char *what = "the balloon update";
	struct errbuf eb = { 0 };
	uint64_t amount = 0;
	const struct api_vm_ops *vm = balloon_vm(api, resp);
	json_t *body = vm ? api_body_object(req, resp) : NULL;

	if (!body)
		return;
	if (api_known_keys(body, keys, what, resp) &&
	    get_bounded(body, "amount_mib", true, UINT32_MAX, &amount, what, resp) &&
	    runtime_answer(resp, vm->patch_balloon(api->opts.vm_ctx, (uint32_t)amount, &eb), &eb,
			   "Balloon update error"))
		api_no_content(resp);
	json_decref(body);
}

/* Firecracker's BalloonStats: the pages and MiB always, each statistic
 * only when the guest sent it. */
static json_t *stats_json(const struct api_balloon_stats *st)
{
	json_t *o = json_pack("{s:I,s:I,s:I,s:I}", "target_pages", (json_int_t)st->target_pages,
			      "actual_pages", (json_int_t)st->actual_pages, "target_mib",
			      (json_int_t)(st->target_pages / VIRTIO_BALLOON_PAGES_PER_MIB),
			      "actual_mib",
			      (json_int_t)(st->actual_pages / VIRTIO_BALLOON_PAGES_PER_MIB));

	for (unsigned t = 0; o && t < API_BALLOON_STAT_TAGS; t++)
		if (st->seen & (1u << t))
			json_object_set_new(o, virtio_balloon_stat_name(t),
					    json_integer((json_int_t)st->val[t]));
	return o;
}

void api_balloon_stats_get(struct api *api, const char *id, const struct http_request *req,
			   struct http_response *resp)
{
	struct api_balloon_stats st = { 0 };
	struct errbuf eb = { 0 };
	const struct api_vm_ops *vm = balloon_vm(api, resp);

	if (vm && runtime_answer(resp, vm->get_balloon_stats(api->opts.vm_ctx, &st, &eb), &eb,
				 "Internal Vmm error"))
		api_reply_json(resp, 200, stats_json(&st));
}

void api_balloon_stats_patch(struct api *api, const char *id, const struct http_request *req,
			     struct http_response *resp)
{
	static const char *const keys[] = { "stats_polling_interval_s", NULL };
	const char *what = "the balloon statistics update";
	struct errbuf eb = { 0 };
	uint64_t interval = 0;
	const struct api_vm_ops *vm = balloon_vm(api, resp);
	json_t *body = vm ? api_body_object(req, resp) : NULL;

	if (!body)
		return;
	if (api_known_keys(body, keys, what, resp) &&
	    get_bounded(body, "stats_polling_interval_s", true, UINT16_MAX, &interval, what,
			resp) &&
	    runtime_answer(resp, vm->patch_balloon_stats(api->opts.vm_ctx, (uint16_t)interval,
							 &eb), &eb, "Balloon update error"))
		api_no_content(resp);
	json_decref(body);
}
