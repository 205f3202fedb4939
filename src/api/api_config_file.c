/*
 * Firecracker's --config-file: the pre-boot requests in one JSON object,
 * each key the body of one route ("boot-source" is PUT /boot-source's,
 * "network-interfaces" a list of PUT /network-interfaces/{iface_id}
 * bodies), applied through the same handlers the socket's requests reach,
 * in a fixed order (the machine, then what goes on it), then
 * InstanceStart. So a file means exactly what the same requests would,
 * and is refused with the same words. Keys of devices kvmini does not have
 * yet are accepted only empty (null, {} or []), as orchestrators write
 * optional ones.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/compiler.h"

struct config_section {
	const char *key;
	const char *path;             /* the route; NULL: only empty is taken */
	const char *id_key;           /* a list: each entry's id completes the path */
	const char *missing;          /* why a non-empty one is refused */
};

static const struct config_section sections[] = {
	{ "logger", "/logger", NULL, NULL },       /* first: the rest logs there */
	{ "machine-config", "/machine-config", NULL, NULL },
	{ "boot-source", "/boot-source", NULL, NULL },
	{ "network-interfaces", "/network-interfaces/", "iface_id", NULL },
	{ "metrics", "/metrics", NULL, NULL },
	{ "drives", "/drives/", "drive_id", NULL },
	{ "vsock", "/vsock", NULL, NULL },
	{ "entropy", "/entropy", NULL, NULL },
	{ "balloon", "/balloon", NULL, NULL },      /* after machine-config: the size check */
	{ "mmds-config", "/mmds/config", NULL, NULL },   /* after the interfaces it names */
	{ "cpu-config", NULL, NULL, "kvmini passes the host's CPUID through KVM's supported set" },
};

static bool is_empty(json_t *v)
{
	return json_is_null(v) || (json_is_object(v) && !json_object_size(v)) ||
	       (json_is_array(v) && !json_array_size(v));
}

/* One request through the API's own handler: 0, or -EINVAL with the
 * fault message in @eb. */
static int request(struct api *api, const char *method, const char *path, json_t *body,
		   const char *what, struct errbuf *eb)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char path_buf[256];
	struct http_response resp = { 0 };

	snprintf(path_buf, sizeof(path_buf), "%s", path);
	struct http_request req = { .method = method, .target = path_buf, .path = path_buf,
				    .body = text, .body_len = text ? strlen(text) : 0 };
	api_http_handler(api, &req, &resp);
	int r = 0;
	if (resp.status >= 300) {
		json_t *fault = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
		const char *msg = json_string_value(json_object_get(fault, "fault_message"));
		errbuf_set(eb, "%s: %s", what, msg ? msg : "refused");
		json_decref(fault);
		r = -EINVAL;
	}
	http_response_reset(&resp);
	free(text);
	return r;
}

/* A list section: one request per entry, at the path its id completes. */
static int apply_list(struct api *api, const struct config_section *s, json_t *list,
		      struct errbuf *eb)
{
	json_t *entry;
	size_t i;
	char path[256], what[64];

	if (!json_is_array(list)) {
		errbuf_set(eb, "%s: must be a list", s->key);
		return -EINVAL;
	}
	json_array_foreach(list, i, entry) {
		const char *id = json_string_value(json_object_get(entry, s->id_key));
		snprintf(what, sizeof(what), "%s[%zu]", s->key, i);
		if (!id || strchr(id, '/') || strlen(id) > 64) {
			errbuf_set(eb, "%s: needs \"%s\", a name without '/'", what, s->id_key);
			return -EINVAL;
		}
		snprintf(path, sizeof(path), "%s%s", s->path, id);
		int r = request(api, "PUT", path, entry, what, eb);
		if (r < 0)
			return r;
	}
	return 0;
}

static int apply_section(struct api *api, const struct config_section *s, json_t *v,
			 struct errbuf *eb)
{
	if (!s->path) {
		if (is_empty(v))
			return 0;
		errbuf_set(eb, "%s: %s", s->key, s->missing);
		return -EINVAL;
	}
	if (json_is_null(v))
		return 0;
	if (s->id_key)
		return apply_list(api, s, v, eb);
	return request(api, "PUT", s->path, v, s->key, eb);
}

/* Every key must be one of the sections: a typo is not a default. */
static int check_keys(json_t *root, struct errbuf *eb)
{
	const char *key;
	json_t *v;

	json_object_foreach(root, key, v) {
		bool known = false;
		for (size_t i = 0; i < ARRAY_SIZE(sections) && !known; i++)
			known = !strcmp(key, sections[i].key);
		if (!known) {
			errbuf_set(eb, "unknown key \"%s\"", key);
			return -EINVAL;
		}
	}
	return 0;
}

int api_apply_config_file(struct api *api, const char *path, struct errbuf *eb)
{
	json_error_t err;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);

	if (!root) {
		if (err.line > 0)
			errbuf_set(eb, "line %d: %s", err.line, err.text);
		else
			errbuf_set(eb, "%s", err.text);
		return -EINVAL;
	}
	int r = json_is_object(root) ? check_keys(root, eb) : -EINVAL;
	if (!json_is_object(root))
		errbuf_set(eb, "not a JSON object");
	for (size_t i = 0; !r && i < ARRAY_SIZE(sections); i++) {
		json_t *v = json_object_get(root, sections[i].key);
		if (v)
			r = apply_section(api, &sections[i], v, eb);
	}
	json_decref(root);
	if (!r) {
		json_t *start = json_pack("{s:s}", "action_type", "InstanceStart");
		r = request(api, "PUT", "/actions", start, "InstanceStart", eb);
		json_decref(start);
	}
	return r;
}
