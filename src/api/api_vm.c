/* PATCH /vm: pausing and resuming the VM, in Firecracker's shape. */
#include <errno.h>
#include <string.h>

#include "api/api_internal.h"

/* Why a pause or resume did not happen, for the fault message. */
static const char *vm_refusal(int r)
{
	switch (r) {
	case -EAGAIN:
		return API_BEFORE_START;
	case -ESHUTDOWN:
		return "The microVM is shutting down.";
	case -ETIMEDOUT:
		return "The vCPUs did not stop in time; the microVM runs on.";
	default:
		return strerror(-r);
	}
}

static void answer(struct http_response *resp, int r)
{
	if (r < 0)
		api_fault(resp, 400, "%s", vm_refusal(r));
	else
		api_no_content(resp);
}

/* {"state": "Paused"|"Resumed"}; pausing a paused VM, or resuming a
 * running one, changes nothing and succeeds. */
void api_vm_patch(struct api *api, const char *id, const struct http_request *req,
		  struct http_response *resp)
{
	static const char *const keys[] = { "state", NULL };
	const struct api_vm_ops *vm = api->opts.vm;
	json_t *body = api_body_object(req, resp);
	bool ok = true;

	if (!body)
		return;
	const char *state = api_known_keys(body, keys, "vm", resp)
				    ? api_get_string(body, "state", true, &ok, "vm", resp)
				    : NULL;
	if (!state) {
		json_decref(body);
		return;
	}
	if (!vm)
		api_fault(resp, 400, "This kvmini instance serves a device, not a VM.");
	else if (strcmp(state, "Paused") && strcmp(state, "Resumed"))
		api_fault(resp, 400, "state: \"%s\" is not Paused or Resumed.", state);
	else
		answer(resp, strcmp(state, "Paused") ? vm->resume(api->opts.vm_ctx)
						     : vm->pause(api->opts.vm_ctx));
	json_decref(body);
}
