/*
 * The control API's /network-interfaces/{id}: the rate limits of an
 * interface, in Firecracker's RateLimiter bodies. Order: rate-limiter
 * bodies, finding the interface, the routes.
 */
#include <stdio.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/log.h"
#include "net/net_device.h"

/* --- rate-limiter bodies -------------------------------------------------------- */

/* TokenBucket: {"size": N, "one_time_burst": N, "refill_time": MS}. */
static bool parse_bucket(json_t *b, const char *what, struct token_bucket_config *out,
			 struct http_response *resp)
{
	static const char *const keys[] = { "size", "one_time_burst", "refill_time", NULL };

	if (!json_is_object(b)) {
		api_fault(resp, 400, "%s must be an object", what);
		return false;
	}
	*out = (struct token_bucket_config){ 0 };
	return api_known_keys(b, keys, what, resp) &&
	       api_get_u64(b, "size", true, &out->size, what, resp) &&
	       api_get_u64(b, "one_time_burst", false, &out->one_time_burst, what, resp) &&
	       api_get_u64(b, "refill_time", true, &out->refill_time, what, resp);
}

/* RateLimiter: {"bandwidth": TokenBucket, "ops": TokenBucket}. A bucket
 * that is absent stays as in @cfg (PATCH) or is none (PUT passes zeros);
 * size or refill_time 0 removes it, as in Firecracker. */
bool api_parse_limiter(json_t *rl, const char *what, struct rate_limiter_config *cfg,
		       struct http_response *resp)
{
	static const char *const keys[] = { "bandwidth", "ops", NULL };
	char where[64];

	if (!json_is_object(rl)) {
		api_fault(resp, 400, "%s must be an object", what);
		return false;
	}
	if (!api_known_keys(rl, keys, what, resp))
		return false;
	json_t *bw = json_object_get(rl, "bandwidth"), *ops = json_object_get(rl, "ops");
	snprintf(where, sizeof(where), "%s.bandwidth", what);
	if (bw && !json_is_null(bw) && !parse_bucket(bw, where, &cfg->bandwidth, resp))
		return false;
	snprintf(where, sizeof(where), "%s.ops", what);
	if (ops && !json_is_null(ops) && !parse_bucket(ops, where, &cfg->ops, resp))
		return false;
	if (!rate_limiter_config_valid(cfg)) {
		api_fault(resp, 400, "%s: a size or burst above 2^52 or a refill time above 2^32 ms",
			  what);
		return false;
	}
	return true;
}

static json_t *bucket_json(const struct token_bucket_config *b)
{
	return json_pack("{s:I,s:I,s:I}", "size", (json_int_t)b->size, "one_time_burst",
			 (json_int_t)b->one_time_burst, "refill_time", (json_int_t)b->refill_time);
}

json_t *api_limiter_json(const struct rate_limiter_config *cfg)
{
	json_t *o = json_object();

	if (cfg->bandwidth.size && cfg->bandwidth.refill_time)
		json_object_set_new(o, "bandwidth", bucket_json(&cfg->bandwidth));
	if (cfg->ops.size && cfg->ops.refill_time)
		json_object_set_new(o, "ops", bucket_json(&cfg->ops));
	return o;
}

/* --- /network-interfaces/{id} ------------------------------------------------------ */

/* The interface called @id, or NULL. */
const struct api_iface *api_find_iface(const struct api *api, const char *id)
{
	for (unsigned i = 0; i < api->opts.n_ifaces && i < API_MAX_IFACES; i++)
		if (!strcmp(api->opts.ifaces[i].iface_id, id))
			return &api->opts.ifaces[i];
	return NULL;
}

/* The ids of the interfaces, comma separated, for error messages. */
void api_iface_list(const struct api *api, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < api->opts.n_ifaces && i < API_MAX_IFACES && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s\"%s\"", i ? ", " : "",
					api->opts.ifaces[i].iface_id);
}

/* The interface the body's iface_id and the path name, or NULL (answered;
 * a PUT of a new id before boot creates the interface instead). */
static const struct api_iface *iface_matches(struct api *api, const char *path_id, json_t *body,
					     bool patch, struct http_response *resp)
{
	bool ok;
	const char *id = api_get_string(body, "iface_id", true, &ok, "the interface", resp);
	char ids[256];

	if (!ok)
		return NULL;
	if (strcmp(id, path_id)) {
		api_fault(resp, 400, "The id from the path does not match the id from the body!");
		return NULL;
	}
	const struct api_iface *ifc = api_find_iface(api, id);
	const struct api_vm_ops *vm = api->opts.vm;
	if (!ifc && !patch && vm && vm->add_iface) {
		api_iface_create(api, id, body, resp);
		return NULL;
	}
	if (!ifc) {
		api_iface_list(api, ids, sizeof(ids));
		api_fault(resp, 400, "no network interface \"%s\" (this instance has %s; kvmini "
			  "cannot add interfaces while running)", id, ids);
	}
	return ifc;
}

/* PUT carries the whole interface: accepted when it is the one that exists. */
static bool iface_identity_matches(const struct api_iface *ifc, json_t *body,
				   struct http_response *resp)
{
	bool ok;
	const char *dev = api_get_string(body, "host_dev_name", true, &ok, "the interface", resp);

	if (!ok)
		return false;
	if (ifc->host_dev_name && strcmp(dev, ifc->host_dev_name)) {
		api_fault(resp, 400, "interface \"%s\" is attached to \"%s\", not \"%s\"; kvmini "
			  "cannot replace it while running", ifc->iface_id, ifc->host_dev_name, dev);
		return false;
	}
	const char *mac = api_get_string(body, "guest_mac", false, &ok, "the interface", resp);
	if (!ok)
		return false;
	uint8_t m[6];
	if (mac && (net_parse_mac(mac, m) < 0 || memcmp(m, ifc->net->opts.mac, 6))) {
		api_fault(resp, 400, "guest_mac \"%s\" is not this interface's MAC address", mac);
		return false;
	}
	return true;
}

static void apply_limits(const struct api_iface *ifc, json_t *body, bool patch,
			 struct http_response *resp)
{
	static const struct { const char *key; unsigned q; } dirs[] = {
		{ "rx_rate_limiter", NET_RX_QUEUE }, { "tx_rate_limiter", NET_TX_QUEUE },
	};
	struct rate_limiter_config cfg[2];

	/* Parse both first: a refusal changes nothing. */
	for (unsigned i = 0; i < 2; i++) {
		json_t *rl = json_object_get(body, dirs[i].key);
		if (patch)
			net_device_get_rate_limit(ifc->net, dirs[i].q, &cfg[i]);
		else
			cfg[i] = (struct rate_limiter_config){ 0 };
		if (rl && !json_is_null(rl) && !api_parse_limiter(rl, dirs[i].key, &cfg[i], resp))
			return;
	}
	for (unsigned i = 0; i < 2; i++) {
		json_t *rl = json_object_get(body, dirs[i].key);
		/* PATCH without a direction leaves it alone (and its buckets' levels). */
		if (patch && (!rl || json_is_null(rl)))
			continue;
		net_device_set_rate_limit(ifc->net, dirs[i].q, &cfg[i]);
		log_info("api: %s %s: bandwidth %llu B / %llu ms (burst %llu), ops %llu / %llu ms",
			 ifc->iface_id, dirs[i].key, (unsigned long long)cfg[i].bandwidth.size,
			 (unsigned long long)cfg[i].bandwidth.refill_time,
			 (unsigned long long)cfg[i].bandwidth.one_time_burst,
			 (unsigned long long)cfg[i].ops.size,
			 (unsigned long long)cfg[i].ops.refill_time);
	}
	api_no_content(resp);
}

static void iface_put_patch(struct api *api, const char *id, const struct http_request *req,
			    bool patch, struct http_response *resp)
{
	static const char *const put_keys[] = { "iface_id", "host_dev_name", "guest_mac",
		"rx_rate_limiter", "tx_rate_limiter", NULL };
	static const char *const patch_keys[] = { "iface_id", "rx_rate_limiter",
		"tx_rate_limiter", NULL };
	json_t *body = api_body_object(req, resp);
	const struct api_iface *ifc;

	if (!body)
		return;
	if (api_known_keys(body, patch ? patch_keys : put_keys, "the interface", resp) &&
	    (ifc = iface_matches(api, id, body, patch, resp)) &&
	    (patch || iface_identity_matches(ifc, body, resp)))
		apply_limits(ifc, body, patch, resp);
	json_decref(body);
}

void api_iface_put(struct api *api, const char *id, const struct http_request *req,
		   struct http_response *resp)
{
	iface_put_patch(api, id, req, false, resp);
}

void api_iface_patch(struct api *api, const char *id, const struct http_request *req,
		     struct http_response *resp)
{
	iface_put_patch(api, id, req, true, resp);
}

void api_iface_get(struct api *api, const char *id, const struct http_request *req,
		   struct http_response *resp)
{
	struct rate_limiter_config rx, tx;
	const struct api_iface *ifc = api_find_iface(api, id);
	char mac[18];

	if (!ifc) {
		api_fault(resp, 400, "no network interface \"%s\"", id);
		return;
	}
	const uint8_t *m = ifc->net->opts.mac;
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
		 m[4], m[5]);
	net_device_get_rate_limit(ifc->net, NET_RX_QUEUE, &rx);
	net_device_get_rate_limit(ifc->net, NET_TX_QUEUE, &tx);
	json_t *o = json_pack("{s:s,s:s,s:o,s:o}", "iface_id", ifc->iface_id,
			      "guest_mac", mac, "rx_rate_limiter", api_limiter_json(&rx),
			      "tx_rate_limiter", api_limiter_json(&tx));
	if (o && ifc->host_dev_name)
		json_object_set_new(o, "host_dev_name", json_string(ifc->host_dev_name));
	api_reply_json(resp, 200, o);
}
