/*
 * libFuzzer target: an arbitrary byte stream, split at arbitrary points,
 * fed to one HTTP connection (http_conn).
 *
 * Input: a list of (1-byte length, bytes) pieces; each piece is one
 * http_conn_feed call. Checked besides ASan/UBSan/LeakSanitizer:
 *  - the whole output parses as a stream of HTTP/1.1 responses (by
 *    http-parser in response mode), with no bytes left over;
 *  - it holds exactly one final response per request handled plus one per
 *    refusal, and a refusal (or a close) is the last thing answered;
 *  - every request the handler sees has a path starting with '/', no NUL
 *    inside its strings' declared lengths, a body of body_len bytes;
 *  - a request timeout at the end (odd-sized inputs) closes the connection
 *    and adds one refusal (408) if it was open, nothing if it was closed.
 */
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "fuzz_input.h"

#define FAIL(...) FUZZ_FAIL("fuzz_http", __VA_ARGS__)

struct run {
	unsigned handled, refused, finals, continues;
	bool closed;
};

static void handler(void *opaque, const struct http_request *req, struct http_response *resp)
{
	struct run *run = opaque;

	run->handled++;
	if (req->path[0] != '/')
		FAIL("path \"%s\" does not start with /", req->path);
	if (strlen(req->body) > req->body_len)
		FAIL("body longer than body_len");
	if (!req->method || !req->target)
		FAIL("request without method or target");
	/* HEAD gets 204 so the response stream parses without knowing methods. */
	if (!strcmp(req->method, "HEAD")) {
		resp->status = 204;
		return;
	}
	char *copy = malloc(req->body_len + 1);
	if (!copy)
		return;
	memcpy(copy, req->body, req->body_len + 1);
	http_response_take(resp, req->body_len & 1 ? 201 : 200, "text/plain", copy, req->body_len);
	http_response_add_header(resp, "X-Path", req->path);   /* may be refused: CR/LF */
	resp->close = req->body_len == 3;
}

static void on_error(void *opaque, int status, const char *message, struct http_response *resp)
{
	struct run *run = opaque;

	run->refused++;
	if (status < 400 || status > 599)
		FAIL("refusal with status %d", status);
	/* Every other refusal keeps the default body. */
	if (run->refused & 1)
		http_response_set(resp, status, "application/json", message);
}

static int on_resp_complete(http_parser *p)
{
	struct run *run = p->data;

	if (p->status_code == 100)
		run->continues++;
	else
		run->finals++;
	return 0;
}

static void check_output(struct run *run, const char *out, size_t len)
{
	http_parser p;
	http_parser_settings s;

	http_parser_init(&p, HTTP_RESPONSE);
	http_parser_settings_init(&s);
	s.on_message_complete = on_resp_complete;
	p.data = run;
	size_t n = http_parser_execute(&p, &s, out, len);
	if (n != len || HTTP_PARSER_ERRNO(&p) != HPE_OK)
		FAIL("output does not parse as responses at %zu/%zu: %s", n, len,
		     http_errno_name(HTTP_PARSER_ERRNO(&p)));
	if (run->finals != run->handled + run->refused)
		FAIL("%u responses for %u requests and %u refusals", run->finals, run->handled,
		     run->refused);
	if (run->refused > 1)
		FAIL("%u refusals on one connection", run->refused);
}

/* The server's request timeout: http_conn_timeout at the end of the stream. */
static void fuzz_timeout(struct http_conn *c, struct run *run, char **out, size_t *out_len)
{
	size_t before = *out_len;
	unsigned refused = run->refused;
	int r = http_conn_timeout(c, out, out_len);

	if (r == 0)
		FAIL("the connection stays open after a request timeout");
	if (r == 1 && run->closed && (*out_len != before || run->refused != refused))
		FAIL("a request timeout answered on a closed connection");
	if (r == 1 && !run->closed && run->refused != refused + 1)
		FAIL("a request timeout on an open connection was not one refusal");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct run run = { 0 };
	struct http_limits lim = { .max_header_bytes = 512, .max_body_bytes = 256,
				   .max_connections = 1 };
	struct http_conn *c = http_conn_new(&lim, handler, on_error, &run);
	char *out = NULL;
	size_t out_len = 0, closed_len = 0;

	if (!c)
		return 0;
	while (in.n) {
		size_t len = (size_t)fuzz_take(&in, 1);
		if (len > in.n)
			len = in.n;
		int r = http_conn_feed(c, (const char *)in.p, len, &out, &out_len);
		in.p += len;
		in.n -= len;
		if (r < 0)
			break;
		if (run.closed && out_len != closed_len)
			FAIL("output after the connection was closed");
		if (r == 1 && !run.closed) {
			run.closed = true;
			closed_len = out_len;
		}
	}
	if (size & 1 && !in.n)
		fuzz_timeout(c, &run, &out, &out_len);
	check_output(&run, out, out_len);
	free(out);
	http_conn_free(c);
	return 0;
}
