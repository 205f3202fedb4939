/*
 * HTTP/1.1 for kvmini's two small servers: the control API on a unix socket
 * and the metadata service (MMDS) the guest reaches through libslirp, which
 * hands kvmini each guest connection as a unix-socket connection. Parsing is
 * http-parser's (libhttp-parser); this module adds limits, request
 * assembly, response formatting and the connection handling on the event
 * loop. Handlers see whole requests and fill in whole responses.
 */
#ifndef KVMINI_HTTP_HTTP_H
#define KVMINI_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/errbuf.h"
#include "core/event_loop.h"

#define HTTP_MAX_HEADERS 32
#define HTTP_MAX_EXTRA_HEADERS 4

struct http_header {
	char *name;
	char *value;
};

/* One complete request. Strings are NUL terminated and owned by the
 * connection; they live until the handler returns. */
struct http_request {
	const char *method;           /* "GET", "PUT", "PATCH", ... */
	char *target;                 /* as sent: "/latest/meta-data/a?x=1" */
	char *path;                   /* target without query, percent-decoded */
	struct http_header headers[HTTP_MAX_HEADERS];
	unsigned n_headers;
	char *body;                   /* NUL terminated; body_len excludes it */
	size_t body_len;
	bool keep_alive;
};

/* Case-insensitive header lookup; NULL when absent. */
const char *http_request_header(const struct http_request *req, const char *name);

/* A response the handler fills in; the server formats and sends it. */
struct http_response {
	int status;                   /* 200, 204, 400, ... */
	const char *content_type;     /* NULL: no Content-Type header */
	char *body;                   /* malloc'd, owned by the response */
	size_t body_len;
	struct http_header extra[HTTP_MAX_EXTRA_HEADERS];
	unsigned n_extra;
	bool close;                   /* close the connection after sending */
};

/* Replace the body with a copy of @text (may be NULL); 0 or -ENOMEM. */
int http_response_set(struct http_response *resp, int status,
		      const char *content_type, const char *text);
/* Take ownership of a malloc'd body of @len bytes. */
void http_response_take(struct http_response *resp, int status,
			const char *content_type, char *body, size_t len);
/* Add a header such as "Allow: GET, PUT"; 0, -EINVAL (name not a token,
 * value with control characters), -ENOMEM or -ENOSPC. */
int http_response_add_header(struct http_response *resp, const char *name,
			     const char *value);
void http_response_reset(struct http_response *resp);
/* Reason phrase for a status code ("Not Found"). */
const char *http_status_reason(int status);

/* Called once per complete request on the loop thread. */
typedef void (*http_handler_fn)(void *opaque, const struct http_request *req,
				struct http_response *resp);
/* Fill in the response for a request the server refused before the
 * handler saw it (400 malformed, 413 headers or body over the limits,
 * 501 Upgrade/CONNECT, 505 not HTTP/1.x), so each server can answer in its
 * own format. Optional: without it the answer is the message as text/plain.
 * The connection is closed after such a response. Methods http-parser
 * knows all reach the handler, which refuses those it does not serve. */
typedef void (*http_error_fn)(void *opaque, int status, const char *message,
			      struct http_response *resp);

struct http_limits {
	size_t max_header_bytes;      /* request line + headers */
	size_t max_body_bytes;        /* larger bodies: 413 and close */
	unsigned max_connections;     /* at the limit, a new connection replaces one idle
				       * for 2 s, or is closed at once */
};

struct http_server_opts {
	const char *socket_path;      /* unix socket to create (an existing socket file is replaced) */
	struct http_limits limits;
	http_handler_fn handler;
	http_error_fn on_error;
	void *opaque;
	const char *name;             /* for log messages: "api", "mmds" */
};

struct http_server;

/* Listen on opts->socket_path and serve from @loop. NULL with @eb filled
 * on failure. */
struct http_server *http_server_start(struct event_loop *loop,
				      const struct http_server_opts *opts, struct errbuf *eb);
/* Close every connection and the socket, and unlink it. */
void http_server_stop(struct http_server *srv);

/*
 * The connection-independent core, for tests and fuzzers: feed bytes of
 * one connection, get the bytes to send back. Requests are handled as they
 * complete (pipelining works); *out grows by the responses' bytes.
 * Returns 0 to keep the connection, 1 when it must be closed after the
 * output is sent, or -ENOMEM.
 */
struct http_conn;
struct http_conn *http_conn_new(const struct http_limits *limits,
				http_handler_fn handler, http_error_fn on_error,
				void *opaque);
void http_conn_free(struct http_conn *conn);
int http_conn_feed(struct http_conn *conn, const char *data, size_t len,
		   char **out, size_t *out_len);

#endif
