/*
 * The metadata service's store and guest request handler, driven with
 * constructed requests: PUT/PATCH (RFC 7396) and the size limit, JSON
 * pointer paths, both output formats, the V1 and V2 token flows, token
 * expiry on an injected clock, and every refusal with its counter.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "mmds/mmds.h"

/* --- helpers ------------------------------------------------------------- */

struct reply {
	int status;
	char body[4096];
	char allow[64];
	char ttl_echo[96];          /* "Name: value" of a *-ttl-seconds header answered */
	const char *ctype;
};

static uint64_t fake_now;

static uint64_t fake_clock(void *opaque)
{
	return *(uint64_t *)opaque;
}

static struct mmds *new_mmds(enum mmds_version v, size_t limit)
{
	struct mmds_config cfg = { .version = v, .store_limit = limit };

	inet_pton(AF_INET, "169.254.169.254", &cfg.ipv4);
	struct mmds *m = mmds_new(&cfg);
	if (m) {
		fake_now = 1000000;
		mmds_set_clock(m, fake_clock, &fake_now);
	}
	return m;
}

static const char sample[] =
	"{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-12345678\","
	"\"reservation-id\":\"r-fea54097\",\"network\":{\"interfaces\":{\"macs\":"
	"{\"02:29:96:8f:6a:2d\":{\"device-number\":\"13345342\"}}}}}},"
	"\"age\":43,\"list\":[\"zero\",\"one\",{\"k\":\"v\"}],\"flag\":true,"
	"\"a/b\":\"slash\",\"m~n\":\"tilde\",\"empty\":{}}";

/*
 * do_req - run one request through the handler. @hdrs is a NULL-terminated
 * list of "Name", "value" pairs.
 */
static struct reply do_req(struct mmds *m, const char *method, const char *path,
			   const char *const *hdrs)
{
	struct http_request req = { .method = method, .path = (char *)path,
				    .target = (char *)path, .body = (char *)"" };
	struct http_response resp = { 0 };
	struct reply r = { 0 };

	for (unsigned i = 0; hdrs && hdrs[i] && req.n_headers < HTTP_MAX_HEADERS; i += 2) {
		req.headers[req.n_headers].name = (char *)hdrs[i];
		req.headers[req.n_headers].value = (char *)hdrs[i + 1];
		req.n_headers++;
	}
	mmds_handle_request(m, &req, &resp);
	r.status = resp.status;
	r.ctype = resp.content_type;
	if (resp.body) {
		size_t n = resp.body_len < sizeof(r.body) - 1 ? resp.body_len : sizeof(r.body) - 1;
		memcpy(r.body, resp.body, n);
	}
	for (unsigned i = 0; i < resp.n_extra; i++) {
		if (!strcmp(resp.extra[i].name, "Allow"))
			snprintf(r.allow, sizeof(r.allow), "%s", resp.extra[i].value);
		if (strcasestr(resp.extra[i].name, "ttl-seconds"))
			snprintf(r.ttl_echo, sizeof(r.ttl_echo), "%s: %s", resp.extra[i].name,
				 resp.extra[i].value);
		free(resp.extra[i].name);
		free(resp.extra[i].value);
	}
	free(resp.body);
	return r;
}

static struct reply get(struct mmds *m, const char *path, const char *const *hdrs)
{
	return do_req(m, "GET", path, hdrs);
}

static const char *const accept_json[] = { "Accept", "application/json", NULL };

/* json_same - @a and @b are the same JSON value. */
static bool json_same(const char *a, const char *b)
{
	json_t *ja = json_loads(a, JSON_DECODE_ANY, NULL);
	json_t *jb = json_loads(b, JSON_DECODE_ANY, NULL);
	bool same = ja && jb && json_equal(ja, jb);

	json_decref(ja);
	json_decref(jb);
	return same;
}

static bool store_is(struct mmds *m, const char *want)
{
	char *s = mmds_get_json(m);
	bool same = s && json_same(s, want);

	if (!same)
		fprintf(stderr, "  store %s, want %s\n", s ? s : "(null)", want);
	free(s);
	return same;
}

/* token - a V2 token through PUT /latest/api/token. */
static void token(struct mmds *m, const char *ttl, char *out, size_t outlen)
{
	const char *const h[] = { "X-metadata-token-ttl-seconds", ttl, NULL };
	struct reply r = do_req(m, "PUT", "/latest/api/token", h);

	CHECK_EQ(r.status, 200);
	snprintf(out, outlen, "%s", r.body);
}

/* --- store --------------------------------------------------------------- */

static void test_config_checked(void)
{
	struct mmds_config cfg = { .version = MMDS_V1 };

	inet_pton(AF_INET, "10.0.2.3", &cfg.ipv4);
	CHECK(mmds_new(&cfg) == NULL);                   /* not link-local */
	inet_pton(AF_INET, "169.254.255.255", &cfg.ipv4);
	CHECK(mmds_new(&cfg) == NULL);
	inet_pton(AF_INET, "169.254.170.2", &cfg.ipv4);
	cfg.version = 3;
	CHECK(mmds_new(&cfg) == NULL);
	cfg.version = MMDS_V2;
	struct mmds *m = mmds_new(&cfg);
	CHECK(m != NULL);
	if (!m)
		return;
	struct mmds_config got;
	mmds_get_config(m, &got);
	CHECK_EQ(got.version, MMDS_V2);
	CHECK_EQ(got.store_limit, MMDS_DEFAULT_STORE_LIMIT);
	CHECK_EQ(got.ipv4.s_addr, cfg.ipv4.s_addr);
	inet_pton(AF_INET, "192.168.1.1", &cfg.ipv4);
	CHECK_EQ(mmds_set_config(m, &cfg), -EINVAL);
	mmds_get_config(m, &got);
	CHECK(got.ipv4.s_addr != cfg.ipv4.s_addr);
	mmds_free(m);
}

static void test_put_replaces(void)
{
	struct mmds *m = new_mmds(MMDS_V1, 0);

	CHECK(store_is(m, "{}"));
	/* Before the first PUT there is nothing to patch (Firecracker's "not
	 * initialized"), whatever the patch. */
	CHECK_EQ(mmds_patch(m, "{\"a\":1}", 7), -ENODATA);
	CHECK(store_is(m, "{}"));
	CHECK_EQ(mmds_put(m, sample, strlen(sample)), 0);
	CHECK(store_is(m, sample));
	CHECK_EQ(mmds_put(m, "{\"x\":1}", 7), 0);
	CHECK(store_is(m, "{\"x\":1}"));
	/* Not JSON, duplicated keys: refused, store kept. */
	CHECK_EQ(mmds_put(m, "{\"x\":", 5), -EINVAL);
	CHECK_EQ(mmds_put(m, "{\"x\":1,\"x\":2}", 13), -EINVAL);
	CHECK_EQ(mmds_put(m, NULL, 0), -EINVAL);
	CHECK_EQ(mmds_patch(m, "[", 1), -EINVAL);
	CHECK(store_is(m, "{\"x\":1}"));
	/* Any JSON value is a store, as in Firecracker; a patch that is not an
	 * object replaces it (RFC 7396), and an object patch makes it one. */
	CHECK_EQ(mmds_put(m, "[1,2]", 5), 0);
	CHECK(store_is(m, "[1,2]"));
	CHECK_EQ(mmds_put(m, "\"s\"", 3), 0);
	CHECK(store_is(m, "\"s\""));
	CHECK_EQ(get(m, "/", NULL).status, 200);
	CHECK(!strcmp(get(m, "/", NULL).body, "s"));
	CHECK_EQ(mmds_patch(m, "{\"a\":1}", 7), 0);
	CHECK(store_is(m, "{\"a\":1}"));
	CHECK_EQ(mmds_patch(m, "7", 1), 0);
	CHECK(store_is(m, "7"));
	mmds_free(m);
}

static void test_store_limit(void)
{
	/* {"k":"vvvv"} is 12 bytes compact. */
	struct mmds *m = new_mmds(MMDS_V1, 12);

	CHECK_EQ(mmds_put(m, "{ \"k\" : \"vvvv\" }", 16), 0);   /* whitespace not counted */
	CHECK_EQ(mmds_put(m, "{\"k\":\"vvvvv\"}", 13), -EFBIG);
	CHECK(store_is(m, "{\"k\":\"vvvv\"}"));
	CHECK_EQ(mmds_patch(m, "{\"a\":1}", 7), -EFBIG);
	CHECK(store_is(m, "{\"k\":\"vvvv\"}"));
	CHECK_EQ(mmds_counters(m)->store_too_large, 2);
	/* A patch that shrinks the store fits. */
	CHECK_EQ(mmds_patch(m, "{\"k\":null,\"b\":2}", 16), 0);
	CHECK(store_is(m, "{\"b\":2}"));
	mmds_free(m);
}

/* The examples of RFC 7396 appendix A (objects at the top level). */
static void test_patch_rfc7396(void)
{
	static const char *const cases[][3] = {
		{ "{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}" },
		{ "{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}" },
		{ "{\"a\":\"b\"}", "{\"a\":null}", "{}" },
		{ "{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}" },
		{ "{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}" },
		{ "{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}" },
		{ "{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}" },
		{ "{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}" },
		{ "{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}" },
		{ "{\"a\":\"foo\"}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}" },
		{ "{\"a\":{\"x\":1,\"y\":{\"z\":2}}}", "{\"a\":{\"y\":{\"w\":3}}}",
		  "{\"a\":{\"x\":1,\"y\":{\"z\":2,\"w\":3}}}" },
	};
	struct mmds *m = new_mmds(MMDS_V1, 0);

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_EQ(mmds_put(m, cases[i][0], strlen(cases[i][0])), 0);
		CHECK_EQ(mmds_patch(m, cases[i][1], strlen(cases[i][1])), 0);
		if (!store_is(m, cases[i][2])) {
			fprintf(stderr, "  case %u\n", i);
			CHECK(0);
		}
	}
	mmds_free(m);
}

/* --- paths and formats ------------------------------------------------------ */

static void test_pointer_paths(void)
{
	struct mmds *m = new_mmds(MMDS_V1, 0);
	struct reply r;

	mmds_put(m, sample, strlen(sample));
	r = get(m, "/latest/meta-data/ami-id", NULL);
	CHECK_EQ(r.status, 200);
	CHECK(!strcmp(r.body, "ami-12345678"));
	r = get(m, "/latest/meta-data/network/interfaces/macs/02:29:96:8f:6a:2d/device-number", NULL);
	CHECK(r.status == 200 && !strcmp(r.body, "13345342"));
	/* Repeated and trailing slashes are ignored. */
	r = get(m, "//latest///meta-data//ami-id/", NULL);
	CHECK(r.status == 200 && !strcmp(r.body, "ami-12345678"));
	/* Array elements by index; RFC 6901 escapes. */
	r = get(m, "/list/1", NULL);
	CHECK(r.status == 200 && !strcmp(r.body, "one"));
	r = get(m, "/list/2/k", NULL);
	CHECK(r.status == 200 && !strcmp(r.body, "v"));
	r = get(m, "/a~1b", NULL);
	CHECK(r.status == 200 && !strcmp(r.body, "slash"));
	r = get(m, "/m~0n", NULL);
	CHECK(r.status == 200 && !strcmp(r.body, "tilde"));
	/* Not there: 404 naming the path. */
	static const char *const missing[] = {
		"/nope", "/latest/meta-data/nope", "/list/3", "/list/01", "/list/-",
		"/list/x", "/age/0", "/m~2n", "/m~", "/latest/meta-data/ami-id/x",
	};
	for (unsigned i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		r = get(m, missing[i], NULL);
		CHECK_EQ(r.status, 404);
	}
	r = get(m, "/nope", NULL);
	CHECK(!strcmp(r.body, "Resource not found: /nope."));
	CHECK_EQ(mmds_counters(m)->rx_not_found, 11);
	mmds_free(m);
}

static void test_imds_format(void)
{
	struct mmds *m = new_mmds(MMDS_V1, 0);
	struct reply r;

	mmds_put(m, sample, strlen(sample));
	r = get(m, "/", NULL);
	CHECK_EQ(r.status, 200);
	CHECK(!strcmp(r.body, "a/b\nage\nempty/\nflag\nlatest/\nlist\nm~n"));
	CHECK(r.ctype && !strcmp(r.ctype, "text/plain"));
	r = get(m, "/latest", NULL);
	CHECK(!strcmp(r.body, "meta-data/"));
	r = get(m, "/latest/meta-data/", NULL);
	CHECK(!strcmp(r.body, "ami-id\nnetwork/\nreservation-id"));
	r = get(m, "/empty", NULL);
	CHECK(r.status == 200 && !strcmp(r.body, ""));
	/* Accept other than JSON still means IMDS. */
	static const char *const plain[] = { "accept", "text/plain", NULL };
	r = get(m, "/latest/meta-data/ami-id", plain);
	CHECK(r.status == 200 && !strcmp(r.body, "ami-12345678"));
	/* Numbers, booleans and arrays cannot be shown as IMDS text. */
	static const char *const unsupported[] = { "/age", "/flag", "/list" };
	for (unsigned i = 0; i < 3; i++) {
		r = get(m, unsupported[i], NULL);
		CHECK_EQ(r.status, 501);
		CHECK(!strcmp(r.body, "Cannot retrieve value. The value has an unsupported type."));
	}
	CHECK_EQ(mmds_counters(m)->rx_unsupported_type, 3);
	CHECK_EQ(mmds_counters(m)->rx_accepted, 5);
	mmds_free(m);
}

static void test_json_format(void)
{
	struct mmds *m = new_mmds(MMDS_V1, 0);
	struct reply r;

	mmds_put(m, sample, strlen(sample));
	r = get(m, "/latest/meta-data/ami-id", accept_json);
	CHECK(r.status == 200 && !strcmp(r.body, "\"ami-12345678\""));
	CHECK(r.ctype && !strcmp(r.ctype, "application/json"));
	r = get(m, "/age", accept_json);
	CHECK(r.status == 200 && !strcmp(r.body, "43"));
	r = get(m, "/list", accept_json);
	CHECK(r.status == 200 && json_same(r.body, "[\"zero\",\"one\",{\"k\":\"v\"}]"));
	r = get(m, "/", accept_json);
	CHECK(r.status == 200 && json_same(r.body, sample));
	/* Accept as Firecracker's parser reads it: exactly "application/json"
	 * (spaces around it aside) is JSON; a list, parameters or another
	 * spelling leave the default, text. */
	static const char *const spaced[] = { "ACCEPT", "  application/json\t", NULL };
	r = get(m, "/flag", spaced);
	CHECK(r.status == 200 && !strcmp(r.body, "true"));
	static const char *const texts[] = { "text/html, application/json", "application/json;q=0.9",
					     "Application/JSON", "*/*" };
	for (unsigned i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		const char *const h[] = { "Accept", texts[i], NULL };
		r = get(m, "/latest/meta-data/ami-id", h);
		CHECK(r.status == 200 && !strcmp(r.body, "ami-12345678"));
		CHECK(r.ctype && !strcmp(r.ctype, "text/plain"));
	}
	mmds_free(m);
}

/* imds_compat: IMDS text whatever Accept says, as EC2 answers. */
static void test_imds_compat(void)
{
	struct mmds *m = new_mmds(MMDS_V1, 0);
	struct mmds_config cfg;
	struct reply r;

	mmds_put(m, sample, strlen(sample));
	mmds_get_config(m, &cfg);
	cfg.imds_compat = true;
	CHECK_EQ(mmds_set_config(m, &cfg), 0);
	r = get(m, "/latest/meta-data/ami-id", accept_json);
	CHECK(r.status == 200 && !strcmp(r.body, "ami-12345678"));
	CHECK(r.ctype && !strcmp(r.ctype, "text/plain"));
	r = get(m, "/latest", accept_json);
	CHECK(r.status == 200 && !strcmp(r.body, "meta-data/"));
	CHECK_EQ(get(m, "/age", accept_json).status, 501);
	mmds_free(m);
}

/* --- V1 and V2 ----------------------------------------------------------- */

static void test_methods_refused(void)
{
	static const char *const methods[] = { "POST", "PATCH", "DELETE", "HEAD", "OPTIONS" };

	for (int v = MMDS_V1; v <= MMDS_V2; v++) {
		struct mmds *m = new_mmds(v, 0);
		for (unsigned i = 0; i < 5; i++) {
			struct reply r = do_req(m, methods[i], "/latest", NULL);
			CHECK_EQ(r.status, 405);
			CHECK(!strcmp(r.allow, "GET, PUT"));
		}
		CHECK_EQ(mmds_counters(m)->rx_method_not_allowed, 5);
		mmds_free(m);
	}
}

static void test_v1_tokens_optional(void)
{
	struct mmds *m = new_mmds(MMDS_V1, 0);
	char tok[128];

	mmds_put(m, sample, strlen(sample));
	CHECK_EQ(get(m, "/latest/meta-data/ami-id", NULL).status, 200);
	static const char *const bad[] = { "X-metadata-token", "garbage", NULL };
	CHECK_EQ(get(m, "/latest/meta-data/ami-id", bad).status, 200);
	/* The session flow works in V1 too, for migration. */
	token(m, "60", tok, sizeof(tok));
	const char *const good[] = { "X-metadata-token", tok, NULL };
	CHECK_EQ(get(m, "/latest/meta-data/ami-id", good).status, 200);
	CHECK_EQ(mmds_counters(m)->tokens_issued, 1);
	CHECK_EQ(mmds_counters(m)->rx_unauthorized, 0);
	mmds_free(m);
}

static void test_v2_flow(void)
{
	struct mmds *m = new_mmds(MMDS_V2, 0);
	char tok[128];
	struct reply r;

	mmds_put(m, sample, strlen(sample));
	r = get(m, "/latest/meta-data/ami-id", NULL);
	CHECK_EQ(r.status, 401);
	CHECK(strstr(r.body, "No MMDS token provided") != NULL);

	token(m, "21600", tok, sizeof(tok));
	CHECK(strlen(tok) > 32);
	const char *const h1[] = { "X-metadata-token", tok, NULL };
	r = get(m, "/latest/meta-data/ami-id", h1);
	CHECK(r.status == 200 && !strcmp(r.body, "ami-12345678"));
	const char *const h2[] = { "x-aws-ec2-metadata-token", tok, "Accept", "application/json", NULL };
	r = get(m, "/latest/meta-data/ami-id", h2);
	CHECK(r.status == 200 && !strcmp(r.body, "\"ami-12345678\""));

	/* The AWS spelling of the TTL header also issues tokens; each differs. */
	const char *const awsttl[] = { "X-aws-ec2-metadata-token-ttl-seconds", "1", NULL };
	r = do_req(m, "PUT", "/latest/api/token", awsttl);
	CHECK(r.status == 200 && strcmp(r.body, tok) != 0);

	/* Tampered, truncated, foreign tokens: 401. */
	char bad[128];
	snprintf(bad, sizeof(bad), "%s", tok);
	bad[strlen(bad) - 1] ^= 1;
	const char *const h3[] = { "X-metadata-token", bad, NULL };
	CHECK_EQ(get(m, "/latest", h3).status, 401);
	bad[10] = '\0';
	CHECK_EQ(get(m, "/latest", h3).status, 401);
	const char *const h4[] = { "X-metadata-token", "zz", NULL };
	r = get(m, "/latest", h4);
	CHECK(r.status == 401 && !strcmp(r.body, "MMDS token not valid."));
	struct mmds *other = new_mmds(MMDS_V2, 0);
	char tok2[128];
	token(other, "60", tok2, sizeof(tok2));
	const char *const h5[] = { "X-metadata-token", tok2, NULL };
	CHECK_EQ(get(m, "/latest", h5).status, 401);
	mmds_free(other);

	/* A valid token still gets 404 for what is not there. */
	CHECK_EQ(get(m, "/nope", h1).status, 404);
	CHECK_EQ(mmds_counters(m)->rx_unauthorized, 5);
	CHECK_EQ(mmds_counters(m)->tokens_issued, 2);
	mmds_free(m);
}

static void test_token_requests_refused(void)
{
	struct mmds *m = new_mmds(MMDS_V2, 0);
	struct reply r;

	/* No TTL header. */
	r = do_req(m, "PUT", "/latest/api/token", NULL);
	CHECK_EQ(r.status, 400);
	CHECK(strstr(r.body, "Token time to live value not found") != NULL);
	/* A number out of range, and what is not a 32-bit number, each with
	 * Firecracker's text (the header's name as sent). */
	static const char *const ranges[][2] = { { "0", "0" }, { "21601", "21601" },
						 { "+0", "0" }, { "4294967295", "4294967295" } };
	for (unsigned i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		const char *const h[] = { "X-metadata-token-ttl-seconds", ranges[i][0], NULL };
		char want[128];
		r = do_req(m, "PUT", "/latest/api/token", h);
		CHECK_EQ(r.status, 400);
		snprintf(want, sizeof(want), "Invalid time to live value provided for token: %s. "
			 "Please provide a value between 1 and 21600.", ranges[i][1]);
		CHECK(!strcmp(r.body, want));
	}
	static const char *const ttls[] = { "-1", "abc", " 5", "5 ", "", "4294967296", "1e3", "+" };
	for (unsigned i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++) {
		const char *const h[] = { "x-Metadata-Token-TTL-Seconds", ttls[i], NULL };
		char want[128];
		r = do_req(m, "PUT", "/latest/api/token", h);
		CHECK_EQ(r.status, 400);
		snprintf(want, sizeof(want), "Invalid header. Reason: Invalid value. "
			 "Key:x-Metadata-Token-TTL-Seconds; Value:%s", ttls[i]);
		CHECK(!strcmp(r.body, want));
	}
	/* Bounds themselves are fine; so are extra slashes in the path. The
	 * lifetime granted comes back under the header's name as sent. */
	const char *const one[] = { "X-metadata-token-ttl-seconds", "1", NULL };
	r = do_req(m, "PUT", "//latest/api//token/", one);
	CHECK_EQ(r.status, 200);
	CHECK(!strcmp(r.ttl_echo, "X-metadata-token-ttl-seconds: 1"));
	const char *const aws[] = { "x-aws-ec2-metadata-token-ttl-seconds", "+21600", NULL };
	r = do_req(m, "PUT", "/latest/api/token", aws);
	CHECK_EQ(r.status, 200);
	CHECK(!strcmp(r.ttl_echo, "x-aws-ec2-metadata-token-ttl-seconds: 21600"));
	/* PUT elsewhere: 404. */
	r = do_req(m, "PUT", "/latest/api/tokens", one);
	CHECK_EQ(r.status, 404);
	CHECK_EQ(do_req(m, "PUT", "/", one).status, 404);
	/* Through a proxy: refused before anything else. */
	const char *const xff[] = { "X-metadata-token-ttl-seconds", "60",
				    "x-forwarded-for", "10.0.0.1", NULL };
	r = do_req(m, "PUT", "/latest/api/token", xff);
	CHECK_EQ(r.status, 400);
	CHECK(strstr(r.body, "X-Forwarded-For") != NULL);
	/* A path that is not absolute. */
	CHECK_EQ(do_req(m, "GET", "latest", NULL).status, 400);
	CHECK_EQ(do_req(m, "GET", "", NULL).status, 400);

	const struct mmds_counters *c = mmds_counters(m);
	CHECK_EQ(c->rx_bad_request, 16);
	CHECK_EQ(c->rx_forwarded_refused, 1);
	CHECK_EQ(c->rx_not_found, 2);
	CHECK_EQ(c->tokens_issued, 2);
	CHECK_EQ(c->rx_accepted, 2);
	mmds_free(m);
}

static void test_token_expiry(void)
{
	struct mmds *m = new_mmds(MMDS_V2, 0);
	char tok[128], tok_long[128];

	mmds_put(m, sample, strlen(sample));
	token(m, "1", tok, sizeof(tok));
	token(m, "21600", tok_long, sizeof(tok_long));
	const char *const h[] = { "X-metadata-token", tok, NULL };
	const char *const hl[] = { "X-metadata-token", tok_long, NULL };
	fake_now += 999;
	CHECK_EQ(get(m, "/latest", h).status, 200);
	fake_now += 1;
	CHECK_EQ(get(m, "/latest", h).status, 401);
	CHECK_EQ(mmds_counters(m)->tokens_expired, 1);
	fake_now += 21600u * 1000u - 1000u - 1u;
	CHECK_EQ(get(m, "/latest", hl).status, 200);
	fake_now += 1;
	CHECK_EQ(get(m, "/latest", hl).status, 401);
	CHECK_EQ(mmds_counters(m)->tokens_expired, 2);
	/* Switching V2 -> V1 -> V2 keeps the key: a fresh token works. */
	struct mmds_config cfg;
	mmds_get_config(m, &cfg);
	cfg.version = MMDS_V1;
	CHECK_EQ(mmds_set_config(m, &cfg), 0);
	CHECK_EQ(get(m, "/latest", h).status, 200);   /* V1 ignores tokens */
	cfg.version = MMDS_V2;
	mmds_set_config(m, &cfg);
	token(m, "5", tok, sizeof(tok));
	CHECK_EQ(get(m, "/latest", h).status, 200);
	mmds_free(m);
}

/* Save into a state section, load into another service: the store, the
 * version and the tokens come along; a token keeps the lifetime it had
 * left though the new service's clock reads otherwise; a new key makes
 * the old tokens invalid. */
static void test_state_round_trip(void)
{
	struct mmds *m = new_mmds(MMDS_V2, 0);
	char tok[128];
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };

	mmds_put(m, sample, strlen(sample));
	token(m, "10", tok, sizeof(tok));
	fake_now += 4000;
	struct mmds_config cfg;
	mmds_get_config(m, &cfg);
	cfg.imds_compat = true;
	mmds_set_config(m, &cfg);
	state_writer_init(&w);
	mmds_state_save(m, &w);
	mmds_free(m);
	struct mmds *m2 = new_mmds(MMDS_V1, 0);
	fake_now = 5;                            /* another clock altogether */
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(mmds_state_load(m2, &r));
	CHECK(state_at_end(&r));
	CHECK(store_is(m2, sample));
	mmds_get_config(m2, &cfg);
	CHECK_EQ(cfg.version, MMDS_V2);
	CHECK(cfg.imds_compat);
	CHECK_EQ(mmds_patch(m2, "{\"p\":1}", 7), 0);       /* the store stays filled */
	const char *const h[] = { "X-metadata-token", tok, NULL };
	fake_now += 5999;
	CHECK_EQ(get(m2, "/latest/meta-data/ami-id", h).status, 200);
	fake_now += 1;
	CHECK_EQ(get(m2, "/latest/meta-data/ami-id", h).status, 401);
	token(m2, "60", tok, sizeof(tok));
	CHECK_EQ(get(m2, "/latest", h).status, 200);
	mmds_new_key(m2);
	CHECK_EQ(get(m2, "/latest", h).status, 401);
	mmds_free(m2);
	state_writer_free(&w);
}

/* A load that does not fit changes nothing and says why. */
static void test_state_refused(void)
{
	struct mmds *m = new_mmds(MMDS_V2, 0);
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };
	static const char *const bad_store[] = { "[1,", "{\"a\":", NULL };

	mmds_put(m, "{\"keep\":1}", 10);
	for (unsigned i = 0; bad_store[i]; i++) {
		state_writer_init(&w);
		state_begin(&w, "MMDS");
		state_put_u32(&w, 2);
		state_put_u32(&w, 0xa9fea9fe);
		state_put_u64(&w, 100);
		state_put_str(&w, bad_store[i]);
		uint8_t key[32] = { 0 };
		state_put_bytes(&w, key, sizeof(key));
		state_put_u64(&w, 1);
		state_put_u64(&w, 1);
		state_end(&w);
		state_reader_init(&r, w.buf, w.len, &eb);
		CHECK(!mmds_state_load(m, &r));
		CHECK(strstr(eb.msg, "not JSON") != NULL);
		state_writer_free(&w);
	}
	/* A version that is neither 1 nor 2; an address outside 169.254/16. */
	static const uint32_t versions[] = { 3, 2 }, addrs[] = { 0xa9fea9fe, 0x0a000001 };
	for (unsigned i = 0; i < 2; i++) {
		state_writer_init(&w);
		state_begin(&w, "MMDS");
		state_put_u32(&w, versions[i]);
		state_put_u32(&w, addrs[i]);
		state_put_u64(&w, 100);
		state_end(&w);
		state_reader_init(&r, w.buf, w.len, &eb);
		CHECK(!mmds_state_load(m, &r));
		CHECK(strstr(eb.msg, "section MMDS: version") != NULL);
		state_writer_free(&w);
	}
	CHECK(store_is(m, "{\"keep\":1}"));
	mmds_free(m);
}

/* A snapshot from before "MMD2" (only "MMDS") loads: no imds_compat, and
 * its store counts as filled, since PATCH worked on any store then. */
static void test_state_first_format(void)
{
	struct mmds *m = new_mmds(MMDS_V1, 0);
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };
	uint8_t key[32] = { 0 };

	state_writer_init(&w);
	state_begin(&w, "MMDS");
	state_put_u32(&w, 1);
	state_put_u32(&w, 0xa9fea9fe);
	state_put_u64(&w, 100);
	state_put_str(&w, "{\"old\":1}");
	state_put_bytes(&w, key, sizeof(key));
	state_put_u64(&w, 1);
	state_put_u64(&w, 1);
	state_end(&w);
	state_begin(&w, "NEXT");                 /* whatever section follows */
	state_end(&w);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(mmds_state_load(m, &r));
	char tag[5];
	state_peek_tag(&r, tag);
	CHECK(!strcmp(tag, "NEXT"));
	struct mmds_config cfg;
	mmds_get_config(m, &cfg);
	CHECK(!cfg.imds_compat);
	CHECK_EQ(mmds_patch(m, "{\"p\":2}", 7), 0);
	CHECK(store_is(m, "{\"old\":1,\"p\":2}"));
	state_writer_free(&w);
	mmds_free(m);
}

/* Refusals the HTTP layer makes before the handler: counted and answered. */
static void test_http_errors_counted(void)
{
	struct mmds *m = new_mmds(MMDS_V1, 0);
	struct http_response resp = { 0 };

	mmds_http_error(m, 413, "Request too large.", &resp);
	CHECK_EQ(resp.status, 413);
	CHECK(resp.body && !strcmp(resp.body, "Request too large."));
	free(resp.body);
	resp = (struct http_response){ 0 };
	mmds_http_error(m, 501, "Not implemented.", &resp);
	free(resp.body);
	resp = (struct http_response){ 0 };
	mmds_http_error(m, 505, "HTTP version not supported.", &resp);
	free(resp.body);
	resp = (struct http_response){ 0 };
	mmds_http_error(m, 400, NULL, &resp);
	CHECK_EQ(resp.status, 400);
	free(resp.body);
	const struct mmds_counters *c = mmds_counters(m);
	CHECK_EQ(c->rx_too_large, 1);
	CHECK_EQ(c->rx_not_implemented, 2);
	CHECK_EQ(c->rx_bad_request, 1);

	mmds_count_frames(m, 3, 2, 1);
	CHECK_EQ(c->frames_intercepted, 3);
	CHECK_EQ(c->frames_injected, 2);
	CHECK_EQ(c->frames_deferred, 1);
	char buf[4096] = { 0 };
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
	mmds_dump_counters(m, f);
	fclose(f);
	CHECK(strstr(buf, "mmds rx_too_large 1\n") != NULL);
	CHECK(strstr(buf, "mmds frames_intercepted 3\n") != NULL);
	mmds_free(m);
}

int main(void)
{
	RUN_TEST(test_config_checked);
	RUN_TEST(test_put_replaces);
	RUN_TEST(test_store_limit);
	RUN_TEST(test_patch_rfc7396);
	RUN_TEST(test_pointer_paths);
	RUN_TEST(test_imds_format);
	RUN_TEST(test_json_format);
	RUN_TEST(test_imds_compat);
	RUN_TEST(test_methods_refused);
	RUN_TEST(test_v1_tokens_optional);
	RUN_TEST(test_v2_flow);
	RUN_TEST(test_token_requests_refused);
	RUN_TEST(test_token_expiry);
	RUN_TEST(test_http_errors_counted);
	RUN_TEST(test_state_round_trip);
	RUN_TEST(test_state_refused);
	RUN_TEST(test_state_first_format);
	return CHECK_DONE();
}
