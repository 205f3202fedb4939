/*
 * A VM configured before it starts, in Firecracker's shapes: PUT
 * /boot-source, GET|PUT|PATCH /machine-config, a new interface through PUT
 * /network-interfaces/{id}, PUT /entropy, PUT /vsock, InstanceStart, and GET /version. The requests
 * are checked for shape here; the VM behind the API (api_vm_ops) keeps the
 * configuration and builds the machine from it at InstanceStart. After
 * the start each pre-boot request gets Firecracker's "not supported after
 * starting".
 */
#include <errno.h>
#include <string.h>

#include "api/api_internal.h"
#include "net/net_device.h"

/* A VM op's refusal, or 204. */
static void answer(struct http_response *resp, int r, const struct errbuf *eb,
		   const char *doing)
{
	if (r == -EEXIST)
		api_fault(resp, 400, API_AFTER_START);
	else if (r < 0)
		api_fault(resp, 400, "%s: %s", doing, eb->msg[0] ? eb->msg : strerror(-r));
	else
		api_no_content(resp);
}

/* The VM's ops, or NULL after answering that there is no VM to configure. */
static const struct api_vm_ops *boot_vm(struct api *api, struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;

	if (vm && vm->set_boot_source)
		return vm;
	api_fault(resp, 400, "This kvmini instance serves a device, or runs the VM its command "
		  "line configured: nothing to configure.");
	return NULL;
}

/* --- /boot-source ----------------------------------------------------------------- */

void api_boot_source_put(struct api *api, const char *id, const struct http_request *req,
			 struct http_response *resp)
{
	static const char *const keys[] = { "kernel_image_path", "initrd_path", "boot_args", NULL };
	const char *what = "the boot source";
	struct api_boot_source bs = { 0 };
	struct errbuf eb = { 0 };
	const struct api_vm_ops *vm = boot_vm(api, resp);
	json_t *body = vm ? api_body_object(req, resp) : NULL;
	bool ok = true;

	if (!body)
		return;
	if (api_known_keys(body, keys, what, resp)) {
		bs.kernel_image_path = api_get_string(body, "kernel_image_path", true, &ok, what, resp);
		if (ok)
			bs.initrd_path = api_get_string(body, "initrd_path", false, &ok, what, resp);
		if (ok)
			bs.boot_args = api_get_string(body, "boot_args", false, &ok, what, resp);
		if (ok)
			answer(resp, vm->set_boot_source(api->opts.vm_ctx, &bs, &eb), &eb,
			       "Invalid boot source");
	}
	json_decref(body);
}

/* --- /entropy ------------------------------------------------------------------------ */

/* Firecracker's EntropyDeviceConfig: {"rate_limiter": RateLimiter}, both
 * optional: an entropy device, unlimited without a limiter. */
void api_entropy_put(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	static const char *const keys[] = { "rate_limiter", NULL };
	const char *what = "the entropy device";
	struct rate_limiter_config limit = { 0 };
	struct errbuf eb = { 0 };
	const struct api_vm_ops *vm = boot_vm(api, resp);
	json_t *body = vm ? api_body_object(req, resp) : NULL;

	if (!body)
		return;
	json_t *rl = json_object_get(body, "rate_limiter");
	if (api_known_keys(body, keys, what, resp) &&
	    (!rl || json_is_null(rl) || api_parse_limiter(rl, "rate_limiter", &limit, resp))) {
		if (!vm->set_entropy)
			api_fault(resp, 400, "This kvmini instance has no entropy device to configure.");
		else
			answer(resp, vm->set_entropy(api->opts.vm_ctx, &limit, &eb), &eb,
			       "Invalid entropy device");
	}
	json_decref(body);
}

/* --- /vsock --------------------------------------------------------------------------- */

/* Firecracker's VsockDeviceConfig: guest_cid (3 and up, 32 bits) and
 * uds_path; vsock_id, deprecated there, is taken and not kept. */
void api_vsock_put(struct api *api, const char *id, const struct http_request *req,
		   struct http_response *resp)
{
	static const char *const keys[] = { "vsock_id", "guest_cid", "uds_path", NULL };
	const char *what = "the vsock device";
	struct api_vsock_config vc = { 0 };
	struct errbuf eb = { 0 };
	const struct api_vm_ops *vm = boot_vm(api, resp);
	json_t *body = vm ? api_body_object(req, resp) : NULL;
	bool ok = true;

	if (!body)
		return;
	if (api_known_keys(body, keys, what, resp) &&
	    api_get_u64(body, "guest_cid", true, &vc.guest_cid, what, resp)) {
		(void)api_get_string(body, "vsock_id", false, &ok, what, resp);
		if (ok)
			vc.uds_path = api_get_string(body, "uds_path", true, &ok, what, resp);
		if (ok && !vm->set_vsock)
			api_fault(resp, 400, "This kvmini instance has no vsock device to configure.");
		else if (ok)
			answer(resp, vm->set_vsock(api->opts.vm_ctx, &vc, &eb), &eb,
			       "Invalid vsock device");
	}
	json_decref(body);
}

/* --- /machine-config ----------------------------------------------------------------- */

json_t *api_machine_json(const struct api_machine_config *mc)
{
	return json_pack("{s:I,s:I,s:b,s:b,s:s}", "vcpu_count", (json_int_t)mc->vcpu_count,
			 "mem_size_mib", (json_int_t)mc->mem_size_mib, "smt", mc->smt,
			 "track_dirty_pages", mc->track_dirty_pages, "huge_pages", "None");
}

void api_machine_config_get(struct api *api, const char *id, const struct http_request *req,
			    struct http_response *resp)
{
	struct api_machine_config mc;
	const struct api_vm_ops *vm = boot_vm(api, resp);

	if (!vm)
		return;
	vm->get_machine_config(api->opts.vm_ctx, &mc);
	api_reply_json(resp, 200, api_machine_json(&mc));
}

/* Firecracker's enums kvmini takes only their "none" of: a CPU template
 * and huge pages. */
static bool only_none(json_t *body, const char *key, const char *none, const char *why,
		      struct http_response *resp)
{
	bool ok = true;
	const char *v = api_get_string(body, key, false, &ok, "the machine configuration", resp);

	if (ok && v && strcmp(v, none)) {
		api_fault(resp, 400, "%s \"%s\" is not supported: %s", key, v, why);
		return false;
	}
	return ok;
}

/* The body over @mc: PUT needs both counts, PATCH takes what it has. */
static bool parse_machine(json_t *body, bool patch, struct api_machine_config *mc,
			  struct http_response *resp)
{
	static const char *const keys[] = { "vcpu_count", "mem_size_mib", "smt",
		"track_dirty_pages", "cpu_template", "huge_pages", NULL };
	const char *what = "the machine configuration";

	if (!api_known_keys(body, keys, what, resp) ||
	    !api_get_u64(body, "vcpu_count", !patch, &mc->vcpu_count, what, resp) ||
	    !api_get_u64(body, "mem_size_mib", !patch, &mc->mem_size_mib, what, resp) ||
	    !api_get_bool(body, "smt", &mc->smt, what, resp) ||
	    !api_get_bool(body, "track_dirty_pages", &mc->track_dirty_pages, what, resp) ||
	    !only_none(body, "cpu_template", "None", "kvmini passes the host's CPUID through "
		       "KVM's supported set", resp) ||
	    !only_none(body, "huge_pages", "None", "kvmini backs guest memory with the "
		       "host's transparent huge pages", resp))
		return false;
	if (mc->smt) {
		api_fault(resp, 400, "smt: kvmini gives each vCPU a core of its own (no SMT "
			  "siblings)");
		return false;
	}
	return true;
}

static void machine_put_patch(struct api *api, const struct http_request *req, bool patch,
			      struct http_response *resp)
{
	struct api_machine_config mc = { 0 };
	struct errbuf eb = { 0 };
	const struct api_vm_ops *vm = boot_vm(api, resp);
	json_t *body = vm ? api_body_object(req, resp) : NULL;

	if (!body)
		return;
	if (patch)
		vm->get_machine_config(api->opts.vm_ctx, &mc);
	if (parse_machine(body, patch, &mc, resp))
		answer(resp, vm->set_machine_config(api->opts.vm_ctx, &mc, &eb), &eb,
		       "Invalid machine configuration");
	json_decref(body);
}

void api_machine_config_put(struct api *api, const char *id, const struct http_request *req,
			    struct http_response *resp)
{
	machine_put_patch(api, req, false, resp);
}

void api_machine_config_patch(struct api *api, const char *id, const struct http_request *req,
			      struct http_response *resp)
{
	machine_put_patch(api, req, true, resp);
}

/* --- a new interface ------------------------------------------------------------------ */

void api_iface_create(struct api *api, const char *id, json_t *body, struct http_response *resp)
{
	const char *what = "the interface";
	struct api_net_config nc = { .iface_id = id };
	struct errbuf eb = { 0 };
	bool ok = true;

	nc.host_dev_name = api_get_string(body, "host_dev_name", true, &ok, what, resp);
	const char *mac = ok ? api_get_string(body, "guest_mac", false, &ok, what, resp) : NULL;
	if (!ok)
		return;
	if (mac && net_parse_mac(mac, nc.mac) < 0) {
		api_fault(resp, 400, "guest_mac \"%s\" is not a unicast MAC address", mac);
		return;
	}
	nc.mac_given = mac != NULL;
	json_t *rx = json_object_get(body, "rx_rate_limiter");
	json_t *tx = json_object_get(body, "tx_rate_limiter");
	if ((rx && !json_is_null(rx) &&
	     !api_parse_limiter(rx, "rx_rate_limiter", &nc.limit[NET_RX_QUEUE], resp)) ||
	    (tx && !json_is_null(tx) &&
	     !api_parse_limiter(tx, "tx_rate_limiter", &nc.limit[NET_TX_QUEUE], resp)))
		return;
	answer(resp, api->opts.vm->add_iface(api->opts.vm_ctx, &nc, &eb), &eb,
	       "Invalid network interface");
}

/* --- InstanceStart, version --------------------------------------------------------------- */

void api_instance_start(struct api *api, struct http_response *resp)
{
	struct errbuf eb = { 0 };
	const struct api_vm_ops *vm = boot_vm(api, resp);

	if (vm)
		answer(resp, vm->start(api->opts.vm_ctx, &eb), &eb, "Cannot start the microVM");
}

void api_version_get(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	const char *v = api->opts.fc_version ? api->opts.fc_version
		      : api->opts.vmm_version ? api->opts.vmm_version : "unknown";

	api_reply_json(resp, 200, json_pack("{s:s}", "firecracker_version", v));
}
