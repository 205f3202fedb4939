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
#include <stdint.h>

#include "core/counters.h"
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

/*
 * Timeouts (http_server only; http_conn has no clock). Zero means the
 * HTTP_DEFAULT_* value: no server runs without them, since a peer that
 * stops halfway would otherwise hold its connection for ever.
 *   request: from the first byte of a request to its last; then 408
 *            (through on_error) and close.
 *   idle:    a keep-alive connection with no request begun and nothing to
 *            send since its last response went out; then close, silently.
 *   send:    output waiting and the peer has taken none of it for this
 *            long (progress restarts it); then close.
 */
#define HTTP_DEFAULT_REQUEST_TIMEOUT_MS 10000u
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 60000u
#define HTTP_DEFAULT_SEND_TIMEOUT_MS 10000u

struct http_limits {
	size_t max_header_bytes;      /* request line + headers */
	size_t max_body_bytes;        /* larger bodies: 413 and close */
	unsigned max_connections;     /* at the limit, a new connection replaces one idle
				       * for 2 s, or is closed at once */
	unsigned request_timeout_ms;  /* 0: HTTP_DEFAULT_REQUEST_TIMEOUT_MS */
	unsigned idle_timeout_ms;     /* 0: HTTP_DEFAULT_IDLE_TIMEOUT_MS */
	unsigned send_timeout_ms;     /* 0: HTTP_DEFAULT_SEND_TIMEOUT_MS */
	bool refuse_bodies;           /* a request announcing a body (a length above 0
				       * or chunked) is answered 400 "Invalid request."
				       * at its headers and the connection closed: for
				       * servers none of whose requests has one (MMDS) */
};

struct http_server_opts {
	const char *socket_path;      /* unix socket to create (an existing socket file is replaced) */
	struct http_limits limits;
	http_handler_fn handler;
	http_error_fn on_error;
	void *opaque;
	const char *name;             /* for log messages: "api", "mmds" */
};

/*
 * What each server's bounds did; rx is from the client, tx to it. Kept on
 * the loop thread with relaxed atomic adds, so a dump on another thread
 * reads them (counters_visit) without a lock.
 */
#define HTTP_SERVER_COUNTERS(X) \
	X(rx_requests_timed_out,      "requests incomplete at the request timeout (408, closed)") \
	X(rx_connections_idle_closed, "keep-alive connections closed at the idle timeout") \
	X(tx_responses_timed_out,     "connections closed: no output read within the send timeout") \
	X(rx_connections_refused,     "new connections closed at the connection limit") \
	X(rx_connections_evicted,     "connections idle 2 s closed at the limit to make room")

struct http_server_counters {
	HTTP_SERVER_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set http_server_counter_set;

struct http_server;

/* Listen on opts->socket_path and serve from @loop. NULL with @eb filled
 * on failure. */
struct http_server *http_server_start(struct event_loop *loop,
				      const struct http_server_opts *opts, struct errbuf *eb);
/* Close every connection and the socket, and unlink it. */
void http_server_stop(struct http_server *srv);
/* A copy of @srv's counters (any thread). */
void http_server_get_counters(const struct http_server *srv, struct http_server_counters *out);
/* Hand @srv's counters to @sink with @prefix before each name ("http_"). */
void http_server_visit_counters(const struct http_server *srv, const char *prefix,
				const struct counter_sink *sink);

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
/* Requests begun on @conn so far (the first byte of each after any CR/LF
 * between them), and whether the last one is still incomplete: the server
 * times requests from these. */
uint64_t http_conn_requests_begun(const struct http_conn *conn);
bool http_conn_in_request(const struct http_conn *conn);
/* The request timed out: answer 408 (through on_error) and close. Returns
 * 1, or -ENOMEM; nothing is added once the connection is closing. */
int http_conn_timeout(struct http_conn *conn, char **out, size_t *out_len);

#endif
