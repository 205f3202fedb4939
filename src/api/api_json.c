/*
 * The control API's replies (JSON bodies, faults in Firecracker's shape) and
 * the helpers that read request bodies, refusing what Firecracker refuses.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/api_internal.h"

/* --- replies ---------------------------------------------------------------- */

void api_reply_json(struct http_response *resp, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (!text) {
		http_response_set(resp, 500, "application/json",
				  "{\"fault_message\":\"out of memory\"}");
		return;
	}
	http_response_take(resp, status, "application/json", text, strlen(text));
}

void api_fault(struct http_response *resp, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages quote the client's path and keys, which need not be UTF-8
	 * (vsnprintf may also have cut a sequence): those bytes become '?'. */
	json_t *text = json_string(msg);
	if (!text) {
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		text = json_string(msg);
	}
	api_reply_json(resp, status, json_pack("{s:o}", "fault_message", text));
}

void api_no_content(struct http_response *resp)
{
	http_response_take(resp, 204, NULL, NULL, 0);
}

/* --- JSON helpers ------------------------------------------------------------- */

/* The request body as a JSON object; NULL after answering 400. */
json_t *api_body_object(const struct http_request *req, struct http_response *resp)
{
	json_error_t jerr;

	if (!req->body_len) {
		api_fault(resp, 400, "the request needs a JSON body");
		return NULL;
	}
	json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		api_fault(resp, 400, "the body is not valid JSON: %s (line %d, column %d)",
			  jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		api_fault(resp, 400, "the body must be a JSON object");
		return NULL;
	}
	return root;
}

/* Refuse a key outside @allowed (NULL-terminated), as Firecracker does. */
bool api_known_keys(json_t *obj, const char *const *allowed, const char *what,
		       struct http_response *resp)
{
	const char *key;
	json_t *val;

	json_object_foreach(obj, key, val) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = !strcmp(key, *a);
		if (!ok) {
			api_fault(resp, 400, "unknown field \"%s\" in %s", key, what);
			return false;
		}
	}
	return true;
}

/* A non-negative integer member; absent leaves *out alone unless @required. */
bool api_get_u64(json_t *obj, const char *key, bool required, uint64_t *out,
		    const char *what, struct http_response *resp)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (required)
			api_fault(resp, 400, "%s needs \"%s\"", what, key);
		return !required;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		api_fault(resp, 400, "\"%s\" in %s must be a non-negative integer", key, what);
		return false;
	}
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* A string member; NULL after answering 400 when it is required or mistyped. */
const char *api_get_string(json_t *obj, const char *key, bool required, bool *ok,
			      const char *what, struct http_response *resp)
{
	json_t *v = json_object_get(obj, key);

	*ok = true;
	if (!v || json_is_null(v)) {
		if (required) {
			api_fault(resp, 400, "%s needs \"%s\"", what, key);
			*ok = false;
		}
		return NULL;
	}
	if (!json_is_string(v)) {
		api_fault(resp, 400, "\"%s\" in %s must be a string", key, what);
		*ok = false;
		return NULL;
	}
	return json_string_value(v);
}

/* A boolean member; absent leaves *out alone. */
bool api_get_bool(json_t *obj, const char *key, bool *out, const char *what,
		  struct http_response *resp)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return true;
	if (!json_is_boolean(v)) {
		api_fault(resp, 400, "\"%s\" in %s must be true or false", key, what);
		return false;
	}
	*out = json_is_true(v);
	return true;
}
