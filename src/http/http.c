/*
 * HTTP/1.1 requests and responses over http-parser. Order of this file:
 * responses, request assembly (the parser callbacks), the connection core
 * (http_conn), the unix-socket server on the event loop.
 */
#include "http/http.h"

#include <errno.h>
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/atomics.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/hex.h"
#include "core/log.h"

/* --- responses ----------------------------------------------------------- */

const char *http_request_header(const struct http_request *req, const char *name)
{
	for (unsigned i = 0; i < req->n_headers && i < HTTP_MAX_HEADERS; i++)
		if (!strcasecmp(req->headers[i].name, name))
			return req->headers[i].value;
	return NULL;
}

const char *http_status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default:  return "Unknown";
	}
}

int http_response_set(struct http_response *resp, int status,
		      const char *content_type, const char *text)
{
	char *copy = NULL;
	size_t len = text ? strlen(text) : 0;

	if (text && !(copy = strdup(text)))
		return -ENOMEM;
	http_response_take(resp, status, content_type, copy, len);
	return 0;
}

void http_response_take(struct http_response *resp, int status,
			const char *content_type, char *body, size_t len)
{
	free(resp->body);
	resp->status = status;
	resp->content_type = content_type;
	resp->body = body;
	resp->body_len = body ? len : 0;
}

/* A field value: no control characters but HTAB (RFC 9110 5.5), so it can
 * neither start another header nor upset a client's parser. */
static bool header_value_ok(const char *s)
{
	if (!s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

/* A field name: a non-empty token (RFC 9110 5.6.2). */
static bool header_name_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p))
			return false;
	return true;
}

int http_response_add_header(struct http_response *resp, const char *name,
			     const char *value)
{
	if (!header_name_ok(name) || !header_value_ok(value))
		return -EINVAL;
	if (resp->n_extra >= HTTP_MAX_EXTRA_HEADERS)
		return -ENOSPC;
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return -ENOMEM;
	}
	resp->extra[resp->n_extra++] = (struct http_header){ .name = n, .value = v };
	return 0;
}

void http_response_reset(struct http_response *resp)
{
	free(resp->body);
	for (unsigned i = 0; i < resp->n_extra; i++) {
		free(resp->extra[i].name);
		free(resp->extra[i].value);
	}
	memset(resp, 0, sizeof(*resp));
}

/* A growing output buffer; sticky allocation failure. */
struct outbuf {
	char **buf;
	size_t *len;
	int err;
};

static void out_append(struct outbuf *o, const char *data, size_t n)
{
	if (o->err || !n)
		return;
	char *b = realloc(*o->buf, *o->len + n);
	if (!b) {
		o->err = -ENOMEM;
		return;
	}
	memcpy(b + *o->len, data, n);
	*o->buf = b;
	*o->len += n;
}

static void out_str(struct outbuf *o, const char *s)
{
	out_append(o, s, strlen(s));
}

/* "Name: value\r\n"; a header a handler filled in by hand that could break
 * the response (CR, LF, a bad name) is left out. */
static void out_header(struct outbuf *o, const char *name, const char *value)
{
	if (!header_name_ok(name) || !header_value_ok(value))
		return;
	out_str(o, name);
	out_str(o, ": ");
	out_str(o, value);
	out_str(o, "\r\n");
}

/* 1xx, 204 and 304 carry neither body nor Content-Length (RFC 9110 8.6). */
static bool status_has_body(int status)
{
	return status >= 200 && status != 204 && status != 304;
}

/* How the connection continues, as the response must say it. */
enum conn_after { CONN_KEEP, CONN_KEEP_SAY, CONN_CLOSE };

/* Serialize @resp. A HEAD response keeps Content-Length but omits the body.
 * CONN_KEEP_SAY is for HTTP/1.0 clients, which close unless told not to. */
static void format_response(struct outbuf *o, const struct http_response *resp,
			    bool head, enum conn_after after)
{
	int status = resp->status >= 100 && resp->status <= 599 ? resp->status : 500;
	bool body = status_has_body(status);
	char line[64];

	snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	out_str(o, line);
	out_str(o, http_status_reason(status));
	out_str(o, "\r\n");
	if (body && resp->content_type)
		out_header(o, "Content-Type", resp->content_type);
	for (unsigned i = 0; i < resp->n_extra && i < HTTP_MAX_EXTRA_HEADERS; i++)
		out_header(o, resp->extra[i].name, resp->extra[i].value);
	if (body) {
		snprintf(line, sizeof(line), "%zu", resp->body_len);
		out_header(o, "Content-Length", line);
	}
	if (after == CONN_CLOSE)
		out_header(o, "Connection", "close");
	else if (after == CONN_KEEP_SAY)
		out_header(o, "Connection", "keep-alive");
	out_str(o, "\r\n");
	if (body && !head)
		out_append(o, resp->body, resp->body_len);
}

/* --- request assembly ------------------------------------------------------ */

enum token { TOK_NONE, TOK_URL, TOK_FIELD, TOK_VALUE };

struct http_conn {
	http_parser parser;
	http_parser_settings settings;
	struct http_limits limits;
	http_handler_fn handler;
	http_error_fn on_error;
	void *opaque;
	/* Request line and header text, each token NUL terminated. Tokens are
	 * kept as offsets: the arena is fixed-size, but offsets stay simple. */
	char *arena;
	size_t arena_len, arena_cap;
	enum token cur;
	size_t url_off;
	size_t name_off[HTTP_MAX_HEADERS], value_off[HTTP_MAX_HEADERS];
	bool has_value[HTTP_MAX_HEADERS];
	unsigned n_headers;
	char *body;
	size_t body_len, body_cap;
	/* A refusal found inside a callback, answered after the parse stops. */
	int error_status;
	const char *error_msg;
	bool closed;          /* a response said close: ignore further input */
	uint64_t begun;       /* requests begun (on_message_begin) */
	bool in_request;      /* the last one begun is not complete */
	struct outbuf out;    /* valid during http_conn_feed */
};

static struct http_conn *conn_of(http_parser *p)
{
	return container_of(p, struct http_conn, parser);
}

/* Record a refusal and stop the parser (a non-zero callback return). */
static int refuse(struct http_conn *c, int status, const char *msg)
{
	if (!c->error_status) {
		c->error_status = status;
		c->error_msg = msg;
	}
	return -1;
}

static int arena_put(struct http_conn *c, const char *data, size_t n)
{
	if (n > c->arena_cap - c->arena_len)
		return refuse(c, 413, "request headers too large");
	memcpy(c->arena + c->arena_len, data, n);
	c->arena_len += n;
	return 0;
}

/* Append to the token of kind @tok, ending the previous token first. */
static int token_append(struct http_conn *c, enum token tok, const char *data, size_t n)
{
	if (c->parser.nread > c->limits.max_header_bytes)
		return refuse(c, 413, "request headers too large");
	if (tok != c->cur) {
		if (c->cur != TOK_NONE && arena_put(c, "", 1))
			return -1;
		size_t off = c->arena_len;
		if (tok == TOK_URL) {
			c->url_off = off;
		} else if (tok == TOK_FIELD) {
			if (c->n_headers >= HTTP_MAX_HEADERS)
				return refuse(c, 413, "too many request headers");
			c->name_off[c->n_headers] = off;
			c->has_value[c->n_headers++] = false;
		} else {
			c->value_off[c->n_headers - 1] = off;
			c->has_value[c->n_headers - 1] = true;
		}
		c->cur = tok;
	}
	return arena_put(c, data, n);
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = conn_of(p);

	c->arena_len = 0;
	c->cur = TOK_NONE;
	c->url_off = 0;
	c->n_headers = 0;
	c->body_len = 0;
	c->begun++;
	c->in_request = true;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	return token_append(conn_of(p), TOK_URL, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	return token_append(conn_of(p), TOK_FIELD, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct http_conn *c = conn_of(p);

	/* http-parser reports a value only after its field. */
	if (!c->n_headers)
		return refuse(c, 400, "header value without a name");
	return token_append(c, TOK_VALUE, at, n);
}

static const char *conn_header(const struct http_conn *c, const char *name)
{
	for (unsigned i = 0; i < c->n_headers; i++)
		if (!strcasecmp(c->arena + c->name_off[i], name))
			return c->has_value[i] ? c->arena + c->value_off[i] : "";
	return NULL;
}

/* "Expect: 100-continue" (curl sends it for larger bodies): answer at once
 * so the client need not wait; any other expectation is refused (417 is
 * rare enough that 400 with a message is clearer for our clients). */
static int handle_expect(struct http_conn *c)
{
	const char *expect = conn_header(c, "Expect");

	if (!expect)
		return 0;
	if (strcasecmp(expect, "100-continue"))
		return refuse(c, 400, "unsupported Expect header");
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	out_append(&c->out, cont, sizeof(cont) - 1);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);

	if (c->cur != TOK_NONE && arena_put(c, "", 1))
		return -1;
	c->cur = TOK_NONE;
	if (p->upgrade)
		return refuse(c, 501, "protocol upgrade and CONNECT are not supported");
	if (p->http_major != 1)
		return refuse(c, 505, "only HTTP/1.x is supported");
	bool chunked = p->flags & F_CHUNKED;
	bool has_len = p->flags & F_CONTENTLENGTH;
	bool has_body = chunked || (has_len && p->content_length > 0);
	if (has_body && c->limits.refuse_bodies)
		return refuse(c, 400, "Invalid request.");
	if (has_len && p->content_length > c->limits.max_body_bytes)
		return refuse(c, 413, "request body too large");
	if (has_body && handle_expect(c))
		return -1;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct http_conn *c = conn_of(p);

	/* Chunked bodies have no length up front: the limit applies as they grow. */
	if (n > c->limits.max_body_bytes - c->body_len)
		return refuse(c, 413, "request body too large");
	if (c->body_len + n + 1 > c->body_cap) {
		size_t cap = MAX(c->body_cap * 2, c->body_len + n + 1);
		cap = MIN(cap, c->limits.max_body_bytes + 1);
		char *b = realloc(c->body, cap);
		if (!b)
			return refuse(c, 500, "out of memory");
		c->body = b;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, at, n);
	c->body_len += n;
	return 0;
}

/* Percent-decode @n bytes of @src into a new string; NULL (with *bad set)
 * for a malformed escape or an encoded NUL. */
static char *decode_path(const char *src, size_t n, bool *bad)
{
	char *dst = malloc(n + 1), *d = dst;

	*bad = false;
	if (!dst)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (src[i] != '%') {
			*d++ = src[i];
			continue;
		}
		int hi = i + 2 < n ? hex_digit(src[i + 1]) : -1;
		int lo = hi >= 0 ? hex_digit(src[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi | lo) == 0) {
			free(dst);
			*bad = true;
			return NULL;
		}
		*d++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*d = '\0';
	return dst;
}

/* The request target's path, decoded: "/" for "*" or an empty path. */
static char *request_path(const char *target, bool *bad)
{
	struct http_parser_url u;

	*bad = false;
	if (!strcmp(target, "*"))
		return strdup("/");
	http_parser_url_init(&u);
	if (http_parser_parse_url(target, strlen(target), 0, &u)) {
		*bad = true;
		return NULL;
	}
	if (!(u.field_set & (1 << UF_PATH)))
		return strdup("/");
	/* Origin form and absolute form both give "/..."; anything else is not
	 * a path a handler should have to think about. */
	if (target[u.field_data[UF_PATH].off] != '/') {
		*bad = true;
		return NULL;
	}
	return decode_path(target + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len, bad);
}

static void fill_request(struct http_conn *c, struct http_request *req)
{
	memset(req, 0, sizeof(*req));
	req->method = http_method_str((enum http_method)c->parser.method);
	req->target = c->arena + c->url_off;
	for (unsigned i = 0; i < c->n_headers; i++) {
		req->headers[i].name = c->arena + c->name_off[i];
		req->headers[i].value = c->has_value[i] ? c->arena + c->value_off[i] : (char *)"";
	}
	req->n_headers = c->n_headers;
	req->body = c->body;
	req->body_len = c->body_len;
	req->keep_alive = http_should_keep_alive(&c->parser);
}

static void send_response(struct http_conn *c, struct http_response *resp, bool head)
{
	if (resp->close)
		c->closed = true;
	enum conn_after after = c->closed ? CONN_CLOSE
		: c->parser.http_minor == 0 ? CONN_KEEP_SAY : CONN_KEEP;
	format_response(&c->out, resp, head, after);
	http_response_reset(resp);
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	struct http_request req;
	struct http_response resp = { 0 };
	bool bad;

	/* An empty body is still a valid string. */
	if (!c->body && !(c->body = malloc(c->body_cap = 1)))
		return refuse(c, 500, "out of memory");
	c->body[c->body_len] = '\0';
	c->in_request = false;
	fill_request(c, &req);
	req.path = request_path(req.target, &bad);
	if (!req.path)
		return refuse(c, bad ? 400 : 500, bad ? "malformed request target" : "out of memory");
	c->handler(c->opaque, &req, &resp);
	free(req.path);
	if (!req.keep_alive)
		c->closed = true;
	send_response(c, &resp, p->method == HTTP_HEAD);
	/* Bytes after a closing response are not requests we will answer. */
	if (c->closed)
		http_parser_pause(p, 1);
	return 0;
}

/* --- connection core ------------------------------------------------------- */

struct http_conn *http_conn_new(const struct http_limits *limits,
				http_handler_fn handler, http_error_fn on_error,
				void *opaque)
{
	struct http_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->limits = *limits;
	/* Tokens plus their terminators; the parser bounds the raw bytes. */
	c->arena_cap = limits->max_header_bytes + 2 * HTTP_MAX_HEADERS + 2;
	c->arena = malloc(c->arena_cap);
	if (!c->arena) {
		free(c);
		return NULL;
	}
	c->handler = handler;
	c->on_error = on_error;
	c->opaque = opaque;
	http_parser_init(&c->parser, HTTP_REQUEST);
	http_parser_settings_init(&c->settings);
	c->settings.on_message_begin = on_message_begin;
	c->settings.on_url = on_url;
	c->settings.on_header_field = on_header_field;
	c->settings.on_header_value = on_header_value;
	c->settings.on_headers_complete = on_headers_complete;
	c->settings.on_body = on_body;
	c->settings.on_message_complete = on_message_complete;
	return c;
}

void http_conn_free(struct http_conn *conn)
{
	if (!conn)
		return;
	free(conn->arena);
	free(conn->body);
	free(conn);
}

/* Answer a request the parser or a limit refused, then close. */
static void send_error(struct http_conn *c, int status, const char *msg)
{
	struct http_response resp = { 0 };

	if (c->on_error)
		c->on_error(c->opaque, status, msg, &resp);
	if (!resp.status) {
		char text[160];
		snprintf(text, sizeof(text), "%s\n", msg);
		if (http_response_set(&resp, status, "text/plain", text) < 0)
			resp.status = status;
	}
	resp.close = true;
	send_response(c, &resp, false);
}

int http_conn_feed(struct http_conn *conn, const char *data, size_t len,
		   char **out, size_t *out_len)
{
	struct http_conn *c = conn;

	if (c->closed)
		return 1;
	c->out = (struct outbuf){ .buf = out, .len = out_len };
	size_t done = http_parser_execute(&c->parser, &c->settings, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
	if (!c->closed && (e != HPE_OK || done != len)) {
		if (c->error_status)
			send_error(c, c->error_status, c->error_msg);
		else
			send_error(c, 400, http_errno_description(e));
	}
	c->error_status = 0;
	if (c->out.err)
		return c->out.err;
	return c->closed ? 1 : 0;
}

uint64_t http_conn_requests_begun(const struct http_conn *conn)
{
	return conn->begun;
}

bool http_conn_in_request(const struct http_conn *conn)
{
	return conn->in_request && !conn->closed;
}

int http_conn_timeout(struct http_conn *conn, char **out, size_t *out_len)
{
	struct http_conn *c = conn;

	if (c->closed)
		return 1;
	c->out = (struct outbuf){ .buf = out, .len = out_len };
	send_error(c, 408, "request not complete within the request timeout");
	c->in_request = false;
	return c->out.err ? c->out.err : 1;
}

/* --- unix-socket server ------------------------------------------------------ */

/* Stop reading a connection while this much output waits (a client that
 * pipelines without reading cannot make us buffer without bound). */
#define OUT_HIGH_WATER (256u * 1024u)
#define READ_CHUNK 16384u
/* Reads per readiness event, so one fast client cannot starve the others
 * (epoll is level-triggered: the rest is read on the next round). */
#define READS_PER_EVENT 16u
/* At the connection limit, a new client replaces the connection idle the
 * longest if that one has been silent this long. */
#define IDLE_EVICT_NS (2000ull * 1000 * 1000)

/*
 * Timeouts: one timer per connection. Its deadline is exact (a sweep timer
 * per server would round every deadline to its period and wake idle
 * servers), and it costs little: conn_arm moves it only when a deadline
 * comes earlier than the armed one (a request begins, output waits); when
 * a deadline moves later (bytes arrive, output drains) the timer fires at
 * the old one, finds nothing due, and arms itself at the new one. So a busy
 * connection does no timer work per byte.
 */
struct server_conn {
	struct http_server *srv;
	struct server_conn *next;
	struct event_source ev;
	struct event_timer timer;
	int fd;
	struct http_conn *http;
	char *out;
	size_t out_len, out_off;
	bool closing;          /* close once the output is sent */
	bool evicted;          /* shut down to make room; its own event frees it */
	bool reading;          /* EPOLLIN is watched */
	bool writing;          /* EPOLLOUT is watched */
	uint64_t last_active_ns;   /* last byte read or written */
	uint64_t begun;            /* http_conn_requests_begun at the last read */
	uint64_t request_ns;       /* when the request in progress began */
	uint64_t idle_ns;          /* last request begun or output drained */
	uint64_t send_ns;          /* output began waiting or last moved */
};

struct http_server {
	struct event_loop *loop;
	struct http_server_opts opts;
	char *path;
	int fd;
	struct event_source ev;
	struct server_conn *conns;
	unsigned n_conns;
	struct http_server_counters counters;   /* relaxed atomic adds */
};

#define X(name, doc) COUNTER_DESC(struct http_server_counters, name, doc)
const struct counter_set http_server_counter_set = COUNTER_SET("http", HTTP_SERVER_COUNTERS(X));
#undef X

#define MS_NS(ms) ((uint64_t)(ms) * 1000000u)

static void conn_close(struct server_conn *sc)
{
	struct http_server *srv = sc->srv;

	for (struct server_conn **pp = &srv->conns; *pp; pp = &(*pp)->next)
		if (*pp == sc) {
			*pp = sc->next;
			break;
		}
	if (!sc->evicted)
		srv->n_conns--;
	event_loop_unwatch(srv->loop, &sc->ev);
	event_loop_timer_cancel(srv->loop, &sc->timer);
	close(sc->fd);
	http_conn_free(sc->http);
	free(sc->out);
	free(sc);
}

static size_t pending(const struct server_conn *sc)
{
	return sc->out_len - sc->out_off;
}

/* Send what the socket takes now. 0, or -errno (-EPIPE for a zero-byte
 * send) when the peer is gone. */
static int conn_flush(struct server_conn *sc)
{
	while (pending(sc)) {
		ssize_t n = send(sc->fd, sc->out + sc->out_off, pending(sc),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		sc->out_off += (size_t)n;
		sc->last_active_ns = sc->send_ns = clock_now_ns();
	}
	if (sc->out_len)
		sc->idle_ns = clock_now_ns();
	free(sc->out);
	sc->out = NULL;
	sc->out_len = sc->out_off = 0;
	return 0;
}

/* Each timeout's deadline for @sc as it is now (struct http_limits says
 * when each applies); UINT64_MAX when it does not apply. */
enum conn_timeout { TIMEOUT_SEND, TIMEOUT_REQUEST, TIMEOUT_IDLE, N_TIMEOUTS };

static uint64_t timeout_deadline(const struct server_conn *sc, enum conn_timeout which)
{
	const struct http_limits *l = &sc->srv->opts.limits;
	bool in_request = !sc->closing && http_conn_in_request(sc->http);

	switch (which) {
	case TIMEOUT_SEND:
		return pending(sc) ? sc->send_ns + MS_NS(l->send_timeout_ms) : UINT64_MAX;
	case TIMEOUT_REQUEST:
		return in_request ? sc->request_ns + MS_NS(l->request_timeout_ms) : UINT64_MAX;
	default:
		return !sc->closing && !pending(sc) && !in_request
			? sc->idle_ns + MS_NS(l->idle_timeout_ms) : UINT64_MAX;
	}
}

static uint64_t conn_deadline(const struct server_conn *sc)
{
	uint64_t d = UINT64_MAX;

	for (enum conn_timeout w = 0; w < N_TIMEOUTS; w++)
		d = MIN(d, timeout_deadline(sc, w));
	return d;
}

static void on_conn_timer(struct event_timer *t);

/* Have the timer fire no later than the current deadline (the comment
 * above struct server_conn says why a later one is left as it is). */
static void conn_arm(struct server_conn *sc)
{
	uint64_t d = conn_deadline(sc);

	if (d == UINT64_MAX)
		return;
	if (!event_timer_armed(&sc->timer) || d < sc->timer.deadline_ns)
		event_loop_timer_arm_at(sc->srv->loop, &sc->timer, on_conn_timer, d);
}

/* Watch for what the connection needs next; close it when it is done. */
static void conn_update(struct server_conn *sc)
{
	if (sc->closing && !pending(sc)) {
		conn_close(sc);
		return;
	}
	bool want_read = !sc->closing && pending(sc) < OUT_HIGH_WATER;
	bool want_write = pending(sc) > 0;
	conn_arm(sc);
	if (want_read == sc->reading && want_write == sc->writing)
		return;
	uint32_t ev = (want_read ? EPOLLIN | EPOLLRDHUP : 0) | (want_write ? EPOLLOUT : 0);
	if (event_loop_modify(sc->srv->loop, &sc->ev, ev) < 0) {
		conn_close(sc);
		return;
	}
	sc->reading = want_read;
	sc->writing = want_write;
}

/* A request began in the bytes just fed: its deadline starts now, and the
 * connection is no longer idle. Bytes that begin nothing (CR/LF between
 * requests) do not keep an idle connection alive. */
static void note_requests(struct server_conn *sc)
{
	uint64_t begun = http_conn_requests_begun(sc->http);

	if (begun == sc->begun)
		return;
	sc->begun = begun;
	sc->request_ns = sc->idle_ns = sc->last_active_ns;
}

/* Read and answer what has arrived. 0, or -errno when the connection must
 * go now. */
static int conn_read(struct server_conn *sc)
{
	char buf[READ_CHUNK];

	for (unsigned reads = 0; reads < READS_PER_EVENT && !sc->closing &&
	     pending(sc) < OUT_HIGH_WATER; reads++) {
		ssize_t n = recv(sc->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			/* Peer closed (or failed): answer nothing more, but let
			 * responses already formatted go out if it still reads. */
			sc->closing = true;
			return 0;
		}
		sc->last_active_ns = clock_now_ns();
		if (!pending(sc))
			sc->send_ns = sc->last_active_ns;
		int r = http_conn_feed(sc->http, buf, (size_t)n, &sc->out, &sc->out_len);
		if (r < 0)
			return r;
		note_requests(sc);
		if (r == 1)
			sc->closing = true;
		r = conn_flush(sc);
		if (r < 0)
			return r;
	}
	return 0;
}

static void on_conn_event(struct event_source *src, uint32_t events)
{
	struct server_conn *sc = container_of(src, struct server_conn, ev);

	if (sc->evicted || (events & EPOLLERR)) {
		conn_close(sc);
		return;
	}
	if ((events & EPOLLOUT) && conn_flush(sc) < 0) {
		conn_close(sc);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) && conn_read(sc) < 0) {
		conn_close(sc);
		return;
	}
	if ((events & EPOLLHUP) && pending(sc)) {
		conn_close(sc);    /* nobody left to read the output */
		return;
	}
	conn_update(sc);
}

/* The request deadline passed: answer 408 if the connection still sends,
 * then close once that is out. */
static void conn_request_timeout(struct server_conn *sc)
{
	struct http_server *srv = sc->srv;

	fetch_add_relaxed(&srv->counters.rx_requests_timed_out, 1);
	log_debug("%s: request not complete within %u ms: 408 and close", srv->opts.name,
		  srv->opts.limits.request_timeout_ms);
	if (!pending(sc))
		sc->send_ns = clock_now_ns();
	sc->closing = true;
	if (http_conn_timeout(sc->http, &sc->out, &sc->out_len) < 0 || conn_flush(sc) < 0) {
		conn_close(sc);
		return;
	}
	conn_update(sc);
}

/* Close @sc for the timeout its state was in, or arm the timer for the
 * deadline it has now. */
static void on_conn_timer(struct event_timer *t)
{
	struct server_conn *sc = container_of(t, struct server_conn, timer);
	struct http_server *srv = sc->srv;
	uint64_t now = clock_now_ns();

	if (sc->evicted)
		return;           /* its own event closes it */
	if (timeout_deadline(sc, TIMEOUT_SEND) <= now) {
		fetch_add_relaxed(&srv->counters.tx_responses_timed_out, 1);
		log_debug("%s: client read no output for %u ms: closing", srv->opts.name,
			  srv->opts.limits.send_timeout_ms);
		conn_close(sc);
	} else if (timeout_deadline(sc, TIMEOUT_REQUEST) <= now) {
		conn_request_timeout(sc);
	} else if (timeout_deadline(sc, TIMEOUT_IDLE) <= now) {
		fetch_add_relaxed(&srv->counters.rx_connections_idle_closed, 1);
		log_debug("%s: connection idle for %u ms: closing", srv->opts.name,
			  srv->opts.limits.idle_timeout_ms);
		conn_close(sc);
	} else {
		conn_arm(sc);     /* a deadline moved later: wait for it */
	}
}

/* At the limit: make room by closing the longest-idle connection if it has
 * been silent for IDLE_EVICT_NS, so stalled clients cannot lock others out.
 * Returns false when every connection is recent. */
static bool evict_idle(struct http_server *srv)
{
	struct server_conn *oldest = NULL;

	for (struct server_conn *sc = srv->conns; sc; sc = sc->next)
		if (!sc->evicted && (!oldest || sc->last_active_ns < oldest->last_active_ns))
			oldest = sc;
	if (!oldest || clock_now_ns() - oldest->last_active_ns < IDLE_EVICT_NS)
		return false;
	log_debug("%s: closing a connection idle for %llu ms to make room", srv->opts.name,
		  (unsigned long long)((clock_now_ns() - oldest->last_active_ns) / 1000000));
	/* Not freed here: its event may be waiting later in this epoll batch.
	 * The shutdown raises EPOLLHUP on it, and its own callback closes it. */
	shutdown(oldest->fd, SHUT_RDWR);
	oldest->evicted = true;
	oldest->closing = true;
	srv->n_conns--;
	fetch_add_relaxed(&srv->counters.rx_connections_evicted, 1);
	return true;
}

static void conn_accept(struct http_server *srv, int fd)
{
	if (srv->n_conns >= srv->opts.limits.max_connections && !evict_idle(srv)) {
		log_debug("%s: connection limit (%u) reached: closing a new one",
			  srv->opts.name, srv->opts.limits.max_connections);
		fetch_add_relaxed(&srv->counters.rx_connections_refused, 1);
		close(fd);
		return;
	}
	struct server_conn *sc = calloc(1, sizeof(*sc));
	if (sc)
		sc->http = http_conn_new(&srv->opts.limits, srv->opts.handler,
					 srv->opts.on_error, srv->opts.opaque);
	if (!sc || !sc->http ||
	    event_loop_watch(srv->loop, &sc->ev, fd, EPOLLIN | EPOLLRDHUP, on_conn_event,
			     srv->opts.name) < 0) {
		if (sc)
			http_conn_free(sc->http);
		free(sc);
		close(fd);
		return;
	}
	sc->srv = srv;
	sc->fd = fd;
	sc->reading = true;
	sc->last_active_ns = sc->idle_ns = clock_now_ns();
	sc->next = srv->conns;
	srv->conns = sc;
	srv->n_conns++;
	conn_arm(sc);
}

static void on_listen_event(struct event_source *src, uint32_t events)
{
	struct http_server *srv = container_of(src, struct http_server, ev);

	for (;;) {
		int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn("%s: accept: %s", srv->opts.name, strerror(errno));
			return;
		}
		conn_accept(srv, fd);
	}
}

/* Remove a stale socket file, never anything else. */
static int remove_stale_socket(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	return unlink(path) < 0 ? -errno : 0;
}

/* listen_unix - a listening socket at @path: its descriptor, or -errno with
 * @eb filled. */
static int listen_unix(const char *path, struct errbuf *eb)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errbuf_set(eb, "socket path too long (at most %zu bytes)",
			   sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	int r = remove_stale_socket(path);
	if (r < 0) {
		errbuf_set(eb, "%s", r == -EEXIST ? "exists and is not a socket" : strerror(-r));
		return r;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		errbuf_set(eb, "%s", strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

static void default_timeouts(struct http_limits *l)
{
	if (!l->request_timeout_ms)
		l->request_timeout_ms = HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
	if (!l->idle_timeout_ms)
		l->idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
	if (!l->send_timeout_ms)
		l->send_timeout_ms = HTTP_DEFAULT_SEND_TIMEOUT_MS;
}

struct http_server *http_server_start(struct event_loop *loop,
				      const struct http_server_opts *opts, struct errbuf *eb)
{
	struct http_server *srv = calloc(1, sizeof(*srv));

	if (!srv || !(srv->path = strdup(opts->socket_path))) {
		errbuf_set(eb, "out of memory");
		free(srv);
		return NULL;
	}
	srv->loop = loop;
	srv->opts = *opts;
	if (!srv->opts.name)
		srv->opts.name = "http";
	if (!srv->opts.limits.max_connections)
		srv->opts.limits.max_connections = 1;
	default_timeouts(&srv->opts.limits);
	srv->fd = listen_unix(opts->socket_path, eb);
	if (srv->fd < 0) {
		free(srv->path);
		free(srv);
		return NULL;
	}
	int r = event_loop_watch(loop, &srv->ev, srv->fd, EPOLLIN, on_listen_event, srv->opts.name);
	if (r < 0) {
		errbuf_set(eb, "epoll: %s", strerror(-r));
		close(srv->fd);
		unlink(srv->path);
		free(srv->path);
		free(srv);
		return NULL;
	}
	return srv;
}

void http_server_stop(struct http_server *srv)
{
	if (!srv)
		return;
	/* conn_close unlinks its connection from srv->conns (sc->srv == srv), which
	 * the analyzer cannot follow and reads as a use after free. */
	while (srv->conns)
		conn_close(srv->conns); /* NOLINT(clang-analyzer-unix.Malloc) */
	event_loop_unwatch(srv->loop, &srv->ev);
	close(srv->fd);
	unlink(srv->path);
	free(srv->path);
	free(srv);
}

void http_server_get_counters(const struct http_server *srv, struct http_server_counters *out)
{
#define X(name, doc) out->name = load_relaxed(&srv->counters.name);
	HTTP_SERVER_COUNTERS(X)
#undef X
}

void http_server_visit_counters(const struct http_server *srv, const char *prefix,
				const struct counter_sink *sink)
{
	counters_visit(&http_server_counter_set, &srv->counters, prefix, sink);
}
