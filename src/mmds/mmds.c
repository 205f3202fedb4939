/*
 * The metadata service: the operator's JSON store (jansson) and the answer
 * to each guest HTTP request, in Firecracker's MMDS shapes.
 *
 * Guest side, as Firecracker documents it:
 *  - GET and PUT only (405 with "Allow: GET, PUT" otherwise);
 *  - PUT /latest/api/token with X-metadata-token-ttl-seconds (or the
 *    X-aws-ec2-metadata-token-ttl-seconds spelling) of 1..21600 issues a
 *    session token; a PUT carrying X-Forwarded-For is refused (400), so a
 *    proxy in the guest cannot fetch a token for someone else;
 *  - GET reads the value the path names as a JSON pointer (RFC 6901,
 *    repeated and trailing slashes ignored); V2 needs a valid token in
 *    X-metadata-token (or X-aws-ec2-metadata-token), V1 answers with or
 *    without one;
 *  - output is JSON for "Accept: application/json" exactly (Firecracker's
 *    HTTP parser takes "text/plain" or "application/json" and ignores any
 *    other Accept), IMDS text otherwise or with imds_compat: an object
 *    lists its keys (sorted, one a line, sub-objects with a trailing '/'),
 *    a string is returned raw, anything else is 501;
 *  - a request with a body is refused at its headers (400 "Invalid
 *    request.", the HTTP layer's refuse_bodies): none of these requests
 *    has one, and a body announced but never sent must not hold the
 *    connection.
 *
 * Tokens are stateless and authenticated: hex of (serial, expiry in ms,
 * HMAC-SHA256 over both truncated to 16 bytes) under a random key made
 * when the service starts. Nothing to store per token, nothing a guest can
 * forge or extend, and no table a guest can fill.
 */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/compiler.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/hmac.h"
#include "mmds/mmds.h"

#define MMDS_TOKEN_PATH "/latest/api/token"
#define MMDS_TTL_MIN 1u
#define MMDS_TTL_MAX 21600u
#define MMDS_KEY_LEN 32u
#define MMDS_MAC_LEN 16u
/* serial (8) + expiry (8) + MAC (16), as hex */
#define MMDS_TOKEN_RAW_LEN (16u + MMDS_MAC_LEN)
#define MMDS_TOKEN_HEX_LEN (2u * MMDS_TOKEN_RAW_LEN)

#define MMDS_ALLOW "GET, PUT"
#define CT_TEXT "text/plain"
#define CT_JSON "application/json"

struct mmds {
	/* Protects everything below: the operator (API) and the guest
	 * (MMDS endpoint) may run on different threads. */
	pthread_mutex_t lock;
	struct mmds_config cfg;
	json_t *store;                 /* any JSON value; {} until the first PUT */
	bool initialized;              /* a PUT filled the store: PATCH needs one */
	uint8_t key[MMDS_KEY_LEN];
	uint64_t next_serial;
	mmds_clock_fn now_ms;
	void *clock_opaque;
	/* Added to now_ms: a restored service's clock goes on from the
	 * snapshot's, so a token keeps the lifetime it had left. */
	int64_t clock_shift;
	struct mmds_counters counters;
	const struct http_server *http[MMDS_MAX_HTTP_SERVERS];   /* NULL: free slot */
};

static uint64_t monotonic_ms(void *opaque)
{
	return clock_now_ms();
}

/* The clock tokens are minted and checked by. */
static uint64_t service_now(const struct mmds *m)
{
	return m->now_ms(m->clock_opaque) + (uint64_t)m->clock_shift;
}

/* --- configuration and store --------------------------------------------- */

bool mmds_address_ok(struct in_addr addr)
{
	uint32_t a = ntohl(addr.s_addr);

	return (a >> 16) == 0xa9feu && (a & 0xffffu) != 0 && (a & 0xffffu) != 0xffffu;
}

/* config_valid - V1 or V2, and an address mmds_address_ok takes. */
static bool config_valid(const struct mmds_config *cfg)
{
	if (cfg->version != MMDS_V1 && cfg->version != MMDS_V2)
		return false;
	return mmds_address_ok(cfg->ipv4);
}

struct mmds *mmds_new(const struct mmds_config *cfg)
{
	struct mmds *m;

	if (!cfg || !config_valid(cfg))
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->store = json_object();
	if (!m->store || getrandom(m->key, sizeof(m->key), 0) != (ssize_t)sizeof(m->key)) {
		json_decref(m->store);
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->cfg = *cfg;
	if (!m->cfg.store_limit)
		m->cfg.store_limit = MMDS_DEFAULT_STORE_LIMIT;
	m->now_ms = monotonic_ms;
	return m;
}

void mmds_free(struct mmds *m)
{
	if (!m)
		return;
	json_decref(m->store);
	pthread_mutex_destroy(&m->lock);
	explicit_bzero(m->key, sizeof(m->key));
	free(m);
}

int mmds_set_config(struct mmds *m, const struct mmds_config *cfg)
{
	if (!config_valid(cfg))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	m->cfg = *cfg;
	if (!m->cfg.store_limit)
		m->cfg.store_limit = MMDS_DEFAULT_STORE_LIMIT;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void mmds_get_config(const struct mmds *m, struct mmds_config *cfg)
{
	struct mmds *mm = (struct mmds *)m;   /* the lock is not part of the value */

	pthread_mutex_lock(&mm->lock);
	*cfg = m->cfg;
	pthread_mutex_unlock(&mm->lock);
}

void mmds_set_clock(struct mmds *m, mmds_clock_fn now_ms, void *opaque)
{
	pthread_mutex_lock(&m->lock);
	m->now_ms = now_ms ? now_ms : monotonic_ms;
	m->clock_opaque = opaque;
	pthread_mutex_unlock(&m->lock);
}

/* parse_value - @json as any JSON value (new reference), or NULL. */
static json_t *parse_value(const char *json, size_t len)
{
	if (!json)
		return NULL;
	return json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
}

/* serialized_size - bytes of @v in compact JSON: what the limit is about. */
static size_t serialized_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* store_replace - make @v (a new reference, consumed) the store if it fits. */
static int store_replace(struct mmds *m, json_t *v)
{
	if (serialized_size(v) > m->cfg.store_limit) {
		json_decref(v);
		m->counters.store_too_large++;
		return -EFBIG;
	}
	json_decref(m->store);
	m->store = v;
	return 0;
}

int mmds_put(struct mmds *m, const char *json, size_t len)
{
	json_t *v = parse_value(json, len);
	int r;

	if (!v)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	r = store_replace(m, v);
	if (!r)
		m->initialized = true;
	pthread_mutex_unlock(&m->lock);
	return r;
}

/*
 * merge_patch - RFC 7396 section 2: @target (borrowed, may be NULL, and is
 * modified in place when it is an object) merged with @patch. Returns the
 * result as a new reference, or NULL without memory.
 */
static json_t *merge_patch(json_t *target, json_t *patch)
{
	const char *key;
	json_t *val, *out;

	if (!json_is_object(patch))
		return json_deep_copy(patch);
	out = json_is_object(target) ? json_incref(target) : json_object();
	if (!out)
		return NULL;
	json_object_foreach(patch, key, val) {
		if (json_is_null(val)) {
			json_object_del(out, key);
			continue;
		}
		json_t *merged = merge_patch(json_object_get(out, key), val);
		if (!merged || json_object_set_new(out, key, merged)) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

int mmds_patch(struct mmds *m, const char *json, size_t len)
{
	json_t *patch = parse_value(json, len);
	int r = -ENOMEM;

	if (!patch)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (!m->initialized) {
		pthread_mutex_unlock(&m->lock);
		json_decref(patch);
		return -ENODATA;
	}
	/* Work on a copy: a refused patch leaves the store as it was. */
	json_t *copy = json_deep_copy(m->store);
	json_t *merged = copy ? merge_patch(copy, patch) : NULL;
	json_decref(copy);
	if (merged)
		r = store_replace(m, merged);
	pthread_mutex_unlock(&m->lock);
	json_decref(patch);
	return r;
}

char *mmds_get_json(const struct mmds *m)
{
	struct mmds *mm = (struct mmds *)m;
	char *s;

	pthread_mutex_lock(&mm->lock);
	s = json_dumps(m->store, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	pthread_mutex_unlock(&mm->lock);
	return s;
}

const struct mmds_counters *mmds_counters(const struct mmds *m)
{
	return &m->counters;
}

void mmds_count_frames(struct mmds *m, uint64_t intercepted, uint64_t injected,
		       uint64_t deferred)
{
	pthread_mutex_lock(&m->lock);
	m->counters.frames_intercepted += intercepted;
	m->counters.frames_injected += injected;
	m->counters.frames_deferred += deferred;
	pthread_mutex_unlock(&m->lock);
}

#define X(name, doc) COUNTER_DESC(struct mmds_counters, name, doc)
const struct counter_set mmds_counter_set = COUNTER_SET("mmds", MMDS_COUNTERS(X));
#undef X

void mmds_attach_http(struct mmds *m, const struct http_server *srv)
{
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < MMDS_MAX_HTTP_SERVERS; i++)
		if (!m->http[i]) {
			m->http[i] = srv;
			break;
		}
	pthread_mutex_unlock(&m->lock);
}

void mmds_detach_http(struct mmds *m, const struct http_server *srv)
{
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < MMDS_MAX_HTTP_SERVERS; i++)
		if (m->http[i] == srv)
			m->http[i] = NULL;
	pthread_mutex_unlock(&m->lock);
}

/* The attached servers' counters summed; @m's lock held (it keeps them
 * from being detached and stopped meanwhile). */
static void sum_http_counters(const struct mmds *m, struct http_server_counters *sum)
{
	struct http_server_counters one;

	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < MMDS_MAX_HTTP_SERVERS; i++) {
		if (!m->http[i])
			continue;
		http_server_get_counters(m->http[i], &one);
#define X(name, doc) sum->name += one.name;
		HTTP_SERVER_COUNTERS(X)
#undef X
	}
}

void mmds_visit_counters(const struct mmds *m, const struct counter_sink *sink)
{
	struct mmds *mm = (struct mmds *)m;
	struct mmds_counters c;
	struct http_server_counters h;

	/* A copy under the lock: the counters change on either side's thread. */
	pthread_mutex_lock(&mm->lock);
	c = m->counters;
	sum_http_counters(m, &h);
	pthread_mutex_unlock(&mm->lock);
	counters_visit(&mmds_counter_set, &c, "mmds ", sink);
	counters_visit(&http_server_counter_set, &h, "mmds ", sink);
}

void mmds_dump_counters(const struct mmds *m, FILE *out)
{
	mmds_visit_counters(m, COUNTER_SINK_FILE(out));
}

/* --- JSON pointer ------------------------------------------------------------ */

/* array_index - an RFC 6901 array index ("0" or digits without a leading
 * zero) below @size; -1 otherwise. */
static long array_index(const char *s, size_t size)
{
	size_t v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (size_t)(*s - '0');
		if (v >= size)
			return -1;
	}
	return (long)v;
}

/* unescape_segment - copy one pointer segment of @len bytes to @out,
 * turning ~1 into '/' and ~0 into '~'. False for any other '~'. */
static bool unescape_segment(const char *seg, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (seg[i] != '~') {
			out[o++] = seg[i];
			continue;
		}
		if (i + 1 >= len || (seg[i + 1] != '0' && seg[i + 1] != '1'))
			return false;
		out[o++] = seg[++i] == '1' ? '/' : '~';
	}
	out[o] = '\0';
	return true;
}

/* pointer_child - the member or element @key of @v; NULL when absent. */
static json_t *pointer_child(json_t *v, const char *key)
{
	if (json_is_object(v))
		return json_object_get(v, key);
	if (json_is_array(v)) {
		long i = array_index(key, json_array_size(v));
		return i < 0 ? NULL : json_array_get(v, (size_t)i);
	}
	return NULL;
}

/*
 * pointer_get - the value at @path (borrowed), NULL when absent. @path is
 * the request path: empty segments (repeated or trailing slashes) are
 * skipped, the rest read as RFC 6901 reference tokens.
 */
static json_t *pointer_get(json_t *root, const char *path)
{
	size_t plen = strlen(path);
	char *seg = malloc(plen + 1);
	json_t *v = root;

	if (!seg)
		return NULL;
	for (const char *p = path; v && *p;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, "/");
		v = unescape_segment(p, len, seg) ? pointer_child(v, seg) : NULL;
		p += len;
	}
	free(seg);
	return v;
}

/* --- guest requests ---------------------------------------------------------- */

/* req_header2 - the first header named @a or @b (any case), as sent: its
 * name is echoed in answers (the TTL header); NULL when neither is there. */
static const struct http_header *req_header2(const struct http_request *req, const char *a,
					     const char *b)
{
	for (unsigned i = 0; i < req->n_headers; i++)
		if (!strcasecmp(req->headers[i].name, a) || !strcasecmp(req->headers[i].name, b))
			return &req->headers[i];
	return NULL;
}

/* respond - set status and a body the response owns (NULL: empty). */
static void respond(struct http_response *resp, int status, const char *ctype,
		    char *body, size_t len)
{
	http_response_take(resp, status, body ? ctype : NULL, body, len);
}

/* respond_text - a plain-text answer. Without memory the status stands
 * with an empty body. */
static void respond_text(struct http_response *resp, int status, const char *text)
{
	if (http_response_set(resp, status, CT_TEXT, text) < 0)
		respond(resp, status, NULL, NULL, 0);
}

/* respond_textf - a formatted plain-text answer. */
static void respond_textf(struct http_response *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void respond_textf(struct http_response *resp, int status, const char *fmt, ...)
{
	va_list ap;
	char *body = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		body = NULL;
	respond(resp, status, CT_TEXT, body, n < 0 ? 0 : (size_t)n);
}

/* count_status - one counter per answer, by status. */
static void count_status(struct mmds *m, int status)
{
	switch (status) {
	case 400: m->counters.rx_bad_request++; break;
	case 401: m->counters.rx_unauthorized++; break;
	case 404: m->counters.rx_not_found++; break;
	case 405: m->counters.rx_method_not_allowed++; break;
	case 413: m->counters.rx_too_large++; break;
	case 501:
	case 505: m->counters.rx_not_implemented++; break;   /* 505: not HTTP/1.x */
	default:
		if (status >= 200 && status < 300)
			m->counters.rx_accepted++;
		break;
	}
}

/* --- tokens ------------------------------------------------------------------- */

static void put_le64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* token_mac - the truncated HMAC-SHA256 of a token's first 16 bytes;
 * 0 or -EIO when libcrypto fails. */
static int token_mac(const struct mmds *m, const uint8_t *raw, uint8_t *mac)
{
	uint8_t full[HMAC_SHA256_LEN];
	int err = hmac_sha256(m->key, sizeof(m->key), raw, 16, full);

	if (!err)
		memcpy(mac, full, MMDS_MAC_LEN);
	return err;
}

/* token_mint - a token for @ttl seconds in @hex (MMDS_TOKEN_HEX_LEN + 1);
 * 0 or -EIO when the MAC cannot be computed. */
static int token_mint(struct mmds *m, unsigned ttl, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t raw[MMDS_TOKEN_RAW_LEN];

	put_le64(raw, m->next_serial++);
	put_le64(raw + 8, service_now(m) + (uint64_t)ttl * 1000u);
	if (token_mac(m, raw, raw + 16))
		return -EIO;
	for (unsigned i = 0; i < sizeof(raw); i++) {
		hex[2 * i] = digits[raw[i] >> 4];
		hex[2 * i + 1] = digits[raw[i] & 15];
	}
	hex[MMDS_TOKEN_HEX_LEN] = '\0';
	return 0;
}

enum token_state { TOKEN_VALID, TOKEN_INVALID, TOKEN_EXPIRED };

/* token_check - whether @text is a token this service issued, still valid. */
static enum token_state token_check(struct mmds *m, const char *text)
{
	uint8_t raw[MMDS_TOKEN_RAW_LEN], mac[MMDS_MAC_LEN];

	if (strlen(text) != MMDS_TOKEN_HEX_LEN)
		return TOKEN_INVALID;
	for (unsigned i = 0; i < sizeof(raw); i++) {
		int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return TOKEN_INVALID;
		raw[i] = (uint8_t)(hi << 4 | lo);
	}
	if (token_mac(m, raw, mac) || memcmp_consttime(mac, raw + 16, MMDS_MAC_LEN))
		return TOKEN_INVALID;
	return get_le64(raw + 8) > service_now(m) ? TOKEN_VALID : TOKEN_EXPIRED;
}

/* parse_ttl - a TTL header value as a 32-bit unsigned number (decimal
 * digits, an optional leading '+', as Firecracker parses it); false when
 * it is not one. The range is checked apart: its refusal has its own text. */
static bool parse_ttl(const char *text, uint32_t *ttl)
{
	uint64_t v = 0;

	if (*text == '+')
		text++;
	if (!*text)
		return false;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*ttl = (uint32_t)v;
	return true;
}

/* --- request handlers ---------------------------------------------------------- */

/* same_path - @path equals @want once repeated and trailing '/' are ignored. */
static bool same_path(const char *path, const char *want)
{
	while (*path || *want) {
		while (path[0] == '/' && (path[1] == '/' || path[1] == '\0'))
			path++;
		if (*path != *want)
			return false;
		if (*path) {
			path++;
			want++;
		}
	}
	return true;
}

static void handle_put(struct mmds *m, const struct http_request *req,
		       struct http_response *resp)
{
	char token[MMDS_TOKEN_HEX_LEN + 1], ttl_echo[16];
	const struct http_header *ttl_hdr;
	uint32_t ttl;

	if (http_request_header(req, "X-Forwarded-For")) {
		m->counters.rx_forwarded_refused++;
		respond_text(resp, 400, "Invalid header. Reason: Unsupported header name. "
			     "Key: X-Forwarded-For");
		return;
	}
	if (!same_path(req->path, MMDS_TOKEN_PATH)) {
		respond_textf(resp, 404, "Resource not found: %s.", req->path);
		return;
	}
	ttl_hdr = req_header2(req, "X-metadata-token-ttl-seconds",
			      "X-aws-ec2-metadata-token-ttl-seconds");
	if (!ttl_hdr) {
		respond_text(resp, 400, "Token time to live value not found. Use "
			     "`X-metadata-token-ttl-seconds` or `X-aws-ec2-metadata-token-ttl-seconds` "
			     "header to specify the token's lifetime.");
		return;
	}
	if (!parse_ttl(ttl_hdr->value, &ttl)) {
		respond_textf(resp, 400, "Invalid header. Reason: Invalid value. Key:%.64s; Value:%.64s",
			      ttl_hdr->name, ttl_hdr->value);
		return;
	}
	if (ttl < MMDS_TTL_MIN || ttl > MMDS_TTL_MAX) {
		respond_textf(resp, 400, "Invalid time to live value provided for token: %u. "
			      "Please provide a value between %u and %u.",
			      (unsigned)ttl, MMDS_TTL_MIN, MMDS_TTL_MAX);
		return;
	}
	if (token_mint(m, ttl, token)) {
		log_warn("MMDS: no token minted: libcrypto's HMAC failed");
		respond_text(resp, 500, "Failed to generate token.");
		return;
	}
	m->counters.tokens_issued++;
	respond_text(resp, 200, token);
	/* The lifetime granted, under the header's name as sent (Firecracker's
	 * answer; clients may read it back). */
	snprintf(ttl_echo, sizeof(ttl_echo), "%u", (unsigned)ttl);
	(void)http_response_add_header(resp, ttl_hdr->name, ttl_echo);
}

/* wants_json - JSON output: Accept is "application/json" exactly (spaces
 * around it aside), as Firecracker's parser reads it (any other value,
 * lists included, leaves its default, text), and imds_compat is off. */
static bool wants_json(const struct mmds *m, const struct http_request *req)
{
	const char *accept = http_request_header(req, "Accept");

	if (m->cfg.imds_compat || !accept)
		return false;
	accept += strspn(accept, " \t");
	size_t n = strlen(accept);
	while (n && (accept[n - 1] == ' ' || accept[n - 1] == '\t'))
		n--;
	return n == strlen(CT_JSON) && !memcmp(accept, CT_JSON, n);
}

/* key_cmp - qsort order for object keys. */
static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* imds_object - the IMDS listing of an object: sorted keys, one a line
 * (no newline after the last), sub-objects with a trailing '/'. */
static char *imds_object(json_t *obj, size_t *len)
{
	size_t n = json_object_size(obj), i = 0, total = 1;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	const char *key;
	json_t *val;
	char *out;

	if (!keys)
		return NULL;
	json_object_foreach(obj, key, val) {
		keys[i++] = key;
		total += strlen(key) + 2;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	out = malloc(total);
	if (out) {
		char *p = out;
		for (i = 0; i < n; i++) {
			size_t kl = strlen(keys[i]);
			if (i)
				*p++ = '\n';
			memcpy(p, keys[i], kl);
			p += kl;
			if (json_is_object(json_object_get(obj, keys[i])))
				*p++ = '/';
		}
		*p = '\0';
		*len = (size_t)(p - out);
	}
	free(keys);
	return out;
}

/* respond_value - @v in the format the request asked for. */
static void respond_value(struct mmds *m, const struct http_request *req, json_t *v,
			  struct http_response *resp)
{
	char *body = NULL;
	size_t len = 0;

	if (wants_json(m, req)) {
		body = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		len = body ? strlen(body) : 0;
		respond(resp, body ? 200 : 500, CT_JSON, body, len);
		return;
	}
	if (json_is_object(v)) {
		body = imds_object(v, &len);
	} else if (json_is_string(v)) {
		len = json_string_length(v);
		body = malloc(len + 1);
		if (body) {
			memcpy(body, json_string_value(v), len);
			body[len] = '\0';
		}
	} else {
		m->counters.rx_unsupported_type++;
		respond_text(resp, 501, "Cannot retrieve value. The value has an unsupported type.");
		return;
	}
	respond(resp, body ? 200 : 500, CT_TEXT, body, len);
}

static void handle_get(struct mmds *m, const struct http_request *req,
		       struct http_response *resp)
{
	if (m->cfg.version == MMDS_V2) {
		const struct http_header *token = req_header2(req, "X-metadata-token",
							      "X-aws-ec2-metadata-token");
		if (!token) {
			respond_text(resp, 401, "No MMDS token provided. Use `X-metadata-token` or "
				     "`X-aws-ec2-metadata-token` header to specify the session token.");
			return;
		}
		enum token_state st = token_check(m, token->value);
		if (st != TOKEN_VALID) {
			if (st == TOKEN_EXPIRED)
				m->counters.tokens_expired++;
			respond_text(resp, 401, "MMDS token not valid.");
			return;
		}
	}
	json_t *v = pointer_get(m->store, req->path);
	if (!v) {
		respond_textf(resp, 404, "Resource not found: %s.", req->path);
		return;
	}
	respond_value(m, req, v, resp);
}

void mmds_handle_request(struct mmds *m, const struct http_request *req,
			 struct http_response *resp)
{
	pthread_mutex_lock(&m->lock);
	if (!req->method || !req->path || req->path[0] != '/') {
		respond_text(resp, 400, "Invalid URI.");
	} else if (!strcmp(req->method, "GET")) {
		handle_get(m, req, resp);
	} else if (!strcmp(req->method, "PUT")) {
		handle_put(m, req, resp);
	} else {
		respond_text(resp, 405, "Not allowed HTTP method.");
		(void)http_response_add_header(resp, "Allow", MMDS_ALLOW);
	}
	count_status(m, resp->status);
	pthread_mutex_unlock(&m->lock);
}

void mmds_http_handler(void *opaque, const struct http_request *req,
		       struct http_response *resp)
{
	mmds_handle_request(opaque, req, resp);
}

void mmds_http_error(void *opaque, int status, const char *message,
		     struct http_response *resp)
{
	struct mmds *m = opaque;

	pthread_mutex_lock(&m->lock);
	respond_text(resp, status, message ? message : "Bad request.");
	if (status == 405)
		(void)http_response_add_header(resp, "Allow", MMDS_ALLOW);
	count_status(m, status);
	pthread_mutex_unlock(&m->lock);
}

/* --- snapshots ------------------------------------------------------------------- */

/* "MMDS": the configuration, the store as compact JSON, the token key, the
 * next token serial and the clock at the snapshot, so tokens issued before
 * validate after a restore and keep the lifetime they had left. */
void mmds_state_save(struct mmds *m, struct state_writer *w)
{
	pthread_mutex_lock(&m->lock);
	char *store = json_dumps(m->store, JSON_COMPACT | JSON_ENCODE_ANY);
	state_begin(w, "MMDS");
	state_put_u32(w, (uint32_t)m->cfg.version);
	state_put_u32(w, ntohl(m->cfg.ipv4.s_addr));
	state_put_u64(w, m->cfg.store_limit);
	state_put_str(w, store ? store : "{}");
	state_put_bytes(w, m->key, sizeof(m->key));
	state_put_u64(w, m->next_serial);
	state_put_u64(w, service_now(m));
	state_end(w);
	/* What came after the first format, in a section of its own so that
	 * snapshots from before it still load (mmds_state_load). */
	state_begin(w, "MMD2");
	state_put_bool(w, m->cfg.imds_compat);
	state_put_bool(w, m->initialized);
	state_end(w);
	pthread_mutex_unlock(&m->lock);
	if (!store)
		w->failed = true;
	free(store);
}

struct mmds_saved {
	struct mmds_config cfg;
	json_t *store;
	bool initialized;
	uint8_t key[MMDS_KEY_LEN];
	uint64_t next_serial, now;
};

static bool parse_saved(struct state_reader *sec, struct mmds_saved *s)
{
	size_t len;
	const uint8_t *text = state_get_blob(sec, s->cfg.store_limit * 2 + 2, &len);

	if (!text)
		return false;
	s->store = parse_value((const char *)text, len);
	if (!s->store)
		return state_fail(sec, "the store is not JSON");
	if (serialized_size(s->store) > s->cfg.store_limit)
		return state_fail(sec, "the store is over its limit of %zu bytes", s->cfg.store_limit);
	state_get_bytes(sec, s->key, sizeof(s->key));
	s->next_serial = state_get_u64(sec);
	s->now = state_get_u64(sec);
	return !sec->failed;
}

/* "MMD2": imds_compat and whether a PUT filled the store. A snapshot from
 * before it has neither: its service knew no imds_compat, and PATCH
 * worked on any store then, so it counts as filled. */
static bool load_second(struct state_reader *r, struct mmds_saved *s)
{
	struct state_reader sec;
	char tag[5];

	state_peek_tag(r, tag);
	if (strcmp(tag, "MMD2")) {
		s->initialized = true;
		return true;
	}
	if (!state_section(r, "MMD2", &sec))
		return false;
	s->cfg.imds_compat = state_get_bool(&sec);
	s->initialized = state_get_bool(&sec);
	return state_section_done(r, &sec);
}

bool mmds_state_load(struct mmds *m, struct state_reader *r)
{
	struct state_reader sec;
	struct mmds_saved s = { 0 };

	if (!state_section(r, "MMDS", &sec))
		return false;
	s.cfg.version = (enum mmds_version)state_get_u32(&sec);
	s.cfg.ipv4.s_addr = htonl(state_get_u32(&sec));
	s.cfg.store_limit = (size_t)state_get_u64(&sec);
	if (!sec.failed && (!config_valid(&s.cfg) || !s.cfg.store_limit ||
			     s.cfg.store_limit > STATE_MAX_PAYLOAD))
		state_fail(&sec, "version %u, address or store limit not valid", (unsigned)s.cfg.version);
	if (!sec.failed)
		parse_saved(&sec, &s);
	if (!state_section_done(r, &sec) || !load_second(r, &s)) {
		json_decref(s.store);
		explicit_bzero(s.key, sizeof(s.key));
		return false;
	}
	pthread_mutex_lock(&m->lock);
	m->cfg = s.cfg;
	json_decref(m->store);
	m->store = s.store;
	m->initialized = s.initialized;
	memcpy(m->key, s.key, sizeof(m->key));
	m->next_serial = s.next_serial;
	m->clock_shift = (int64_t)(s.now - m->now_ms(m->clock_opaque));
	pthread_mutex_unlock(&m->lock);
	explicit_bzero(s.key, sizeof(s.key));
	return true;
}

void mmds_new_key(struct mmds *m)
{
	pthread_mutex_lock(&m->lock);
	if (getrandom(m->key, sizeof(m->key), 0) != (ssize_t)sizeof(m->key))
		log_warn("MMDS: no new token key (getrandom failed): tokens stay valid");
	pthread_mutex_unlock(&m->lock);
}
