/*
 * GET /vm/config: the VM's whole configuration in the shape of Firecracker's
 * --config-file (its VmmConfig), so a client can read back what it set, and
 * feed the answer to --config-file. As Firecracker answers: "logger" and
 * "metrics" are null (process settings, not the VM's), and so is what
 * kvmini does not have ("cpu-config"); "entropy", "vsock" and "balloon"
 * are null without the device (the balloon's target is the current one).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "api/api_internal.h"
#include "mmds/mmds.h"
#include "net/net_device.h"

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *boot_json(const struct api_boot_source *b)
{
	return json_pack("{s:s,s:o,s:o}", "kernel_image_path",
			 b->kernel_image_path ? b->kernel_image_path : "",
			 "initrd_path", string_or_null(b->initrd_path),
			 "boot_args", string_or_null(b->boot_args));
}

static void mac_string(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* One interface; a MAC not given before boot is left out (kvmini picks
 * one at the start), as is the tap of a backend that has none. */
static json_t *iface_json(const struct api_net_config *nc)
{
	char mac[18];
	json_t *o = json_pack("{s:s,s:o,s:o}", "iface_id", nc->iface_id,
			      "rx_rate_limiter", api_limiter_json(&nc->limit[NET_RX_QUEUE]),
			      "tx_rate_limiter", api_limiter_json(&nc->limit[NET_TX_QUEUE]));

	if (o && nc->host_dev_name)
		json_object_set_new(o, "host_dev_name", json_string(nc->host_dev_name));
	if (o && nc->mac_given) {
		mac_string(nc->mac, mac);
		json_object_set_new(o, "guest_mac", json_string(mac));
	}
	return o;
}

/* A running interface as its device has it now (PATCHed limits included). */
static void live_iface(const struct api_iface *ifc, struct api_net_config *nc)
{
	*nc = (struct api_net_config){ .iface_id = ifc->iface_id,
				       .host_dev_name = ifc->host_dev_name, .mac_given = true };
	memcpy(nc->mac, ifc->net->opts.mac, sizeof(nc->mac));
	net_device_get_rate_limit(ifc->net, NET_RX_QUEUE, &nc->limit[NET_RX_QUEUE]);
	net_device_get_rate_limit(ifc->net, NET_TX_QUEUE, &nc->limit[NET_TX_QUEUE]);
}

static json_t *ifaces_json(const struct api *api, const struct api_vm_config *c)
{
	json_t *a = json_array();
	struct api_net_config live;

	for (unsigned i = 0; a && i < api->opts.n_ifaces && i < API_MAX_IFACES; i++) {
		live_iface(&api->opts.ifaces[i], &live);
		json_array_append_new(a, iface_json(&live));
	}
	for (unsigned i = 0; a && !api->opts.n_ifaces && i < c->n_ifaces; i++)
		json_array_append_new(a, iface_json(&c->ifaces[i]));
	return a;
}

/* The interfaces MMDS answers on: the running ones the API has, or before
 * the start the ones configured. null while MMDS is off. */
static json_t *mmds_json(const struct api *api, const struct api_vm_config *c)
{
	struct mmds_config cfg;
	char addr[INET_ADDRSTRLEN];

	if (!api->opts.mmds || !c->mmds_on)
		return json_null();
	mmds_get_config(api->opts.mmds, &cfg);
	inet_ntop(AF_INET, &cfg.ipv4, addr, sizeof(addr));
	json_t *names = json_array();
	for (unsigned i = 0; names && i < api->opts.n_ifaces && i < API_MAX_IFACES; i++)
		if (api->opts.ifaces[i].mmds)
			json_array_append_new(names, json_string(api->opts.ifaces[i].iface_id));
	for (unsigned i = 0; names && !api->opts.n_ifaces && i < c->n_ifaces; i++)
		if (c->ifaces[i].mmds)
			json_array_append_new(names, json_string(c->ifaces[i].iface_id));
	return json_pack("{s:s,s:o,s:s,s:b}", "version", cfg.version == MMDS_V1 ? "V1" : "V2",
			 "network_interfaces", names, "ipv4_address", addr, "imds_compat",
			 cfg.imds_compat);
}

static json_t *entropy_json(const struct api_vm_config *c)
{
	if (!c->entropy)
		return json_null();
	return json_pack("{s:o}", "rate_limiter", api_limiter_json(&c->entropy_limit));
}

static json_t *vsock_json(const struct api_vm_config *c)
{
	if (!c->vsock)
		return json_null();
	return json_pack("{s:I,s:s}", "guest_cid", (json_int_t)c->vsock_cfg.guest_cid,
			 "uds_path", c->vsock_cfg.uds_path);
}

static json_t *balloon_json(const struct api_vm_config *c)
{
	return c->balloon ? api_balloon_json(&c->balloon_cfg) : json_null();
}

void api_vm_config_get(struct api *api, const char *id, const struct http_request *req,
		       struct http_response *resp)
{
	const struct api_vm_ops *vm = api->opts.vm;
	struct api_vm_config c = { 0 };
	struct api_machine_config mc = { 0 };

	if (!vm || !vm->get_vm_config || !vm->get_machine_config) {
		api_fault(resp, 400, "This kvmini instance serves a device, not a VM.");
		return;
	}
	vm->get_vm_config(api->opts.vm_ctx, &c);
	vm->get_machine_config(api->opts.vm_ctx, &mc);
	api_reply_json(resp, 200, json_pack("{s:o,s:o,s:o,s:n,s:n,s:o,s:n,s:o,s:o,s:o,s:o}",
		"balloon", balloon_json(&c), "drives", api_drives_json(&c), "boot-source", boot_json(&c.boot), "cpu-config",
		"logger", "machine-config", api_machine_json(&mc), "metrics",
		"mmds-config", mmds_json(api, &c), "network-interfaces", ifaces_json(api, &c),
		"vsock", vsock_json(&c), "entropy", entropy_json(&c)));
}
