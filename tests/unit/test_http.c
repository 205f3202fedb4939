/*
 * HTTP module: requests assembled from any split of the byte stream,
 * pipelining, keep-alive, limits (413), malformed input (400), response
 * formatting, and the unix-socket server with stalled, slow and surplus
 * clients.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "http/http.h"

static const struct http_limits limits = {
	.max_header_bytes = 1024, .max_body_bytes = 4096, .max_connections = 4,
};

static int handled;
#define BIG_LEN (4u << 20)

/* Echo "METHOD path|body|header" and follow a few magic paths. */
static void echo_handler(void *opaque, const struct http_request *req,
			 struct http_response *resp)
{
	char text[8192];
	const char *x = http_request_header(req, "x-test");

	handled++;
	if (!strcmp(req->path, "/nocontent")) {
		resp->status = 204;
		return;
	}
	if (!strcmp(req->path, "/big")) {
		char *b = malloc(BIG_LEN);
		memset(b, 'b', BIG_LEN);
		http_response_take(resp, 200, "application/octet-stream", b, BIG_LEN);
		return;
	}
	if (!strcmp(req->path, "/handmade")) {
		/* Headers filled in by hand, bypassing the checks: bad ones are left out. */
		resp->extra[0] = (struct http_header){ strdup("X-Bad"), strdup("a\r\nInjected: 1") };
		resp->extra[1] = (struct http_header){ strdup("X-Good"), strdup("fine") };
		resp->n_extra = 2;
		http_response_set(resp, 200, "text/plain", "ok");
		return;
	}
	snprintf(text, sizeof(text), "%s %s|%s|%s", req->method, req->path, req->body, x ? x : "-");
	http_response_set(resp, 200, "text/plain", text);
	http_response_add_header(resp, "X-Handled", "yes");
	if (!strcmp(req->path, "/close"))
		resp->close = true;
}

static void json_error(void *opaque, int status, const char *message,
		       struct http_response *resp)
{
	char text[256];

	snprintf(text, sizeof(text), "{\"fault_message\":\"%s\"}", message);
	http_response_set(resp, status, "application/json", text);
}

/* Feed @in in pieces of @step bytes; returns the last feed result. */
static int feed_split(struct http_conn *c, const char *in, size_t step, char **out, size_t *out_len)
{
	size_t len = strlen(in);
	int r = 0;

	for (size_t off = 0; off < len && r == 0; off += step)
		r = http_conn_feed(c, in + off, step < len - off ? step : len - off, out, out_len);
	return r;
}

/* Run a whole exchange on a fresh connection; the output NUL terminated. */
static char *exchange(const char *in, size_t step, int *result)
{
	struct http_conn *c = http_conn_new(&limits, echo_handler, NULL, NULL);
	char *out = NULL;
	size_t len = 0;

	*result = feed_split(c, in, step, &out, &len);
	out = realloc(out, len + 1);
	out[len] = '\0';
	http_conn_free(c);
	return out;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_simple_get(void)
{
	int r;
	char *out = exchange("GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-Test: hi\r\n\r\n", 1000, &r);

	CHECK_EQ(r, 0);
	CHECK(!strncmp(out, "HTTP/1.1 200 OK\r\n", 17));
	CHECK(strstr(out, "Content-Type: text/plain\r\n"));
	CHECK(strstr(out, "X-Handled: yes\r\n"));
	CHECK(strstr(out, "Content-Length: 12\r\n\r\nGET /a/b||hi"));
	CHECK(!strstr(out, "Connection: close"));
	free(out);
}

static void test_every_split_gives_same_answer(void)
{
	const char *req = "PUT /p%20q HTTP/1.1\r\nContent-Length: 5\r\nX-Test: v\r\n\r\nhello"
			  "GET /two HTTP/1.1\r\n\r\n";
	int r;
	char *ref = exchange(req, 4096, &r);

	CHECK_EQ(count(ref, "HTTP/1.1 200"), 2);
	CHECK(strstr(ref, "PUT /p q|hello|v"));
	CHECK(strstr(ref, "GET /two||-"));
	for (size_t step = 1; step < 40; step++) {
		char *out = exchange(req, step, &r);
		CHECK_EQ(r, 0);
		CHECK(!strcmp(out, ref));
		free(out);
	}
	free(ref);
}

static void test_pipelined_in_order(void)
{
	int r;
	char *out = exchange("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nDELETE /3 HTTP/1.1\r\n\r\n",
			     1000, &r);
	char *a = strstr(out, "GET /1"), *b = strstr(out, "GET /2"), *c = strstr(out, "DELETE /3");

	CHECK(a && b && c && a < b && b < c);
	free(out);
}

static void test_connection_close(void)
{
	int r;
	char *out = exchange("GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
			     1000, &r);

	CHECK_EQ(r, 1);
	CHECK_EQ(count(out, "HTTP/1.1 200"), 1);
	CHECK(strstr(out, "Connection: close\r\n"));
	free(out);
	/* HTTP/1.0 without keep-alive closes too; the handler may ask as well. */
	out = exchange("GET /a HTTP/1.0\r\n\r\n", 1000, &r);
	CHECK_EQ(r, 1);
	free(out);
	/* HTTP/1.0 asking for keep-alive is told it got it. */
	out = exchange("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		       1000, &r);
	CHECK_EQ(r, 1);
	CHECK_EQ(count(out, "HTTP/1.1 200"), 2);
	CHECK_EQ(count(out, "Connection: keep-alive\r\n"), 1);
	CHECK_EQ(count(out, "Connection: close\r\n"), 1);
	free(out);
	out = exchange("GET /close HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 1000, &r);
	CHECK_EQ(r, 1);
	CHECK_EQ(count(out, "HTTP/1.1 200"), 1);
	free(out);
}

static void test_malformed_is_400_and_closes(void)
{
	const char *bad[] = {
		"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
		"FROB / HTTP/1.1\r\n\r\n",
		"GET / HTTP/9.9\r\n\r\n",
		"\x01\x02\x03",
		"GET /%zz HTTP/1.1\r\n\r\n",
		"GET /a%00b HTTP/1.1\r\n\r\n",
		"GET /a%2 HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nab",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;
		char *out = exchange(bad[i], 1000, &r);
		CHECK_EQ(r, 1);
		if (strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) &&
		    strncmp(out, "HTTP/1.1 505", 12))
			fprintf(stderr, "  case %zu answered: %.40s\n", i, out);
		CHECK(!strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) ||
		      !strncmp(out, "HTTP/1.1 505", 12));
		CHECK(strstr(out, "Connection: close\r\n"));
		free(out);
	}
}

static void test_limits_are_413(void)
{
	char big[4000];
	char req[9000];
	int r;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Long: %s\r\n\r\n", big);
	char *out = exchange(req, 100, &r);
	CHECK_EQ(r, 1);
	CHECK(!strncmp(out, "HTTP/1.1 413", 12));
	free(out);

	out = exchange("PUT / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 1000, &r);
	CHECK_EQ(r, 1);
	CHECK(!strncmp(out, "HTTP/1.1 413", 12));
	free(out);

	/* A chunked body is counted as it arrives. */
	snprintf(req, sizeof(req), "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 3999, big, 3999, big);
	out = exchange(req, 333, &r);
	CHECK_EQ(r, 1);
	CHECK(!strncmp(out, "HTTP/1.1 413", 12));
	free(out);

	/* Too many headers. */
	char *p = req;
	p += sprintf(p, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 40; i++)
		p += sprintf(p, "H%d: v\r\n", i);
	sprintf(p, "\r\n");
	out = exchange(req, 1000, &r);
	CHECK_EQ(r, 1);
	CHECK(!strncmp(out, "HTTP/1.1 413", 12));
	free(out);
}

/* refuse_bodies: a request announcing a body is answered 400 "Invalid
 * request." at its headers, before any of the body arrives (the body may
 * never come), and the connection closes; one without a body is served. */
static void test_refuse_bodies(void)
{
	struct http_limits lim = limits;
	static const char *const with_body[] = {
		"GET / HTTP/1.1\r\nContent-Length: 100\r\n\r\n",
		"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
		"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
	};

	lim.refuse_bodies = true;
	for (unsigned i = 0; i < sizeof(with_body) / sizeof(with_body[0]); i++) {
		struct http_conn *c = http_conn_new(&lim, echo_handler, NULL, NULL);
		char *out = NULL;
		size_t len = 0;
		CHECK_EQ(http_conn_feed(c, with_body[i], strlen(with_body[i]), &out, &len), 1);
		out = realloc(out, len + 1);
		out[len] = '\0';
		CHECK(!strncmp(out, "HTTP/1.1 400", 12));
		CHECK(strstr(out, "\r\n\r\nInvalid request.") != NULL);
		free(out);
		http_conn_free(c);
	}
	struct http_conn *c = http_conn_new(&lim, echo_handler, NULL, NULL);
	char *out = NULL;
	size_t len = 0;
	const char *plain = "GET /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
	CHECK_EQ(http_conn_feed(c, plain, strlen(plain), &out, &len), 0);
	CHECK(len > 12 && !strncmp(out, "HTTP/1.1 200", 12));
	free(out);
	http_conn_free(c);
}

static void test_chunked_body_assembled(void)
{
	int r;
	char *out = exchange("PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			     "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 3, &r);

	CHECK_EQ(r, 0);
	CHECK(strstr(out, "PUT /c|abcde|-"));
	free(out);
}

static void test_expect_continue(void)
{
	int r;
	char *out = exchange("PUT /e HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok",
			     1000, &r);

	CHECK_EQ(r, 0);
	CHECK(!strncmp(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42));
	free(out);
}

static void test_no_content_and_head(void)
{
	int r;
	char *out = exchange("GET /nocontent HTTP/1.1\r\n\r\n", 1000, &r);

	CHECK(!strcmp(out, "HTTP/1.1 204 No Content\r\n\r\n"));
	free(out);
	out = exchange("HEAD /h HTTP/1.1\r\n\r\n", 1000, &r);
	CHECK(strstr(out, "Content-Length: 10\r\n\r\n"));
	CHECK(!strstr(out, "HEAD /h"));
	free(out);
}

static void test_upgrade_refused(void)
{
	int r;
	char *out = exchange("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 1000, &r);

	CHECK_EQ(r, 1);
	CHECK(!strncmp(out, "HTTP/1.1 501", 12));
	free(out);
	out = exchange("CONNECT a:1 HTTP/1.1\r\n\r\n", 1000, &r);
	CHECK(!strncmp(out, "HTTP/1.1 501", 12));
	free(out);
}

static void test_error_callback_formats(void)
{
	struct http_conn *c = http_conn_new(&limits, echo_handler, json_error, NULL);
	char *out = NULL;
	size_t len = 0;

	CHECK_EQ(http_conn_feed(c, "GARBAGE\r\n\r\n", 11, &out, &len), 1);
	out = realloc(out, len + 1);
	out[len] = '\0';
	CHECK(strstr(out, "Content-Type: application/json\r\n"));
	CHECK(strstr(out, "{\"fault_message\":"));
	/* Input after a close is ignored. */
	size_t before = len;
	CHECK_EQ(http_conn_feed(c, "GET / HTTP/1.1\r\n\r\n", 18, &out, &len), 1);
	CHECK_EQ(len, before);
	free(out);
	http_conn_free(c);
}

static void test_response_header_checks(void)
{
	int r;
	char *out = exchange("GET /handmade HTTP/1.1\r\n\r\n", 1000, &r);
	struct http_response resp = { 0 };

	CHECK(strstr(out, "X-Good: fine\r\n"));
	CHECK(!strstr(out, "Injected") && !strstr(out, "X-Bad"));
	free(out);
	CHECK_EQ(http_response_add_header(&resp, "X-A", "ok"), 0);
	CHECK_EQ(http_response_add_header(&resp, "X-B", "bad\r\nInjected: 1"), -EINVAL);
	CHECK_EQ(http_response_add_header(&resp, "X:C", "v"), -EINVAL);
	for (int i = 1; i < HTTP_MAX_EXTRA_HEADERS; i++)
		CHECK_EQ(http_response_add_header(&resp, "X-More", "v"), 0);
	CHECK_EQ(http_response_add_header(&resp, "X-Full", "v"), -ENOSPC);
	http_response_reset(&resp);
	CHECK_EQ(resp.n_extra, 0);
	CHECK(!strcmp(http_status_reason(404), "Not Found"));
}

/* --- the server on a real unix socket ----------------------------------- */

static int client(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	strcpy(a.sun_path, path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Pump the loop and read from @fd until @want bytes or EOF; returns bytes read. */
static size_t pump_read(struct event_loop *loop, int fd, char *buf, size_t want, bool *eof)
{
	size_t got = 0;

	*eof = false;
	for (int idle = 0; got < want && idle < 200;) {
		event_loop_once(loop, 5);
		ssize_t n = recv(fd, buf + got, want - got, MSG_DONTWAIT);
		if (n == 0) {
			*eof = true;
			break;
		}
		if (n > 0) {
			got += (size_t)n;
			idle = 0;
		} else {
			idle++;
		}
	}
	return got;
}

static struct http_server *start_server(struct event_loop *loop, char *path, size_t len)
{
	struct errbuf eb = { 0 };
	struct http_server_opts o = { .socket_path = path, .limits = limits,
				      .handler = echo_handler, .name = "test" };

	snprintf(path, len, "/tmp/kvmini-test-http-%d.sock", getpid());
	CHECK_EQ(event_loop_init(loop), 0);
	struct http_server *srv = http_server_start(loop, &o, &eb);
	CHECK(srv != NULL);
	return srv;
}

static void spin(struct event_loop *loop)
{
	for (int i = 0; i < 5; i++)
		event_loop_once(loop, 5);
}

/* Send a request on @fd and return whether an answer came. */
static bool ask(struct event_loop *loop, int fd, const char *req)
{
	char buf[512];
	bool eof;

	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		return false;
	return pump_read(loop, fd, buf, 100, &eof) > 0;
}

static void test_server(void)
{
	struct event_loop loop;
	char path[64], buf[512];
	bool eof;
	struct http_server *srv = start_server(&loop, path, sizeof(path));

	if (!srv)
		return;
	/* A stalled client (half a request) does not hold up another one. */
	int stalled = client(path);
	CHECK(send(stalled, "GET /stall HTTP/1.1\r\nHo", 23, 0) == 23);
	int a = client(path);
	CHECK(send(a, "GET /a HTTP/1.1\r\n\r\n", 19, 0) == 19);
	size_t n = pump_read(&loop, a, buf, 200, &eof);
	buf[n] = '\0';
	CHECK(strstr(buf, "GET /a||-"));

	/* Connections beyond the limit are closed at once while the others
	 * are active: 2 held (stalled, a) + 2 more fit, the last two go. */
	int extra[4];
	for (int i = 0; i < 4; i++)
		extra[i] = client(path);
	spin(&loop);
	unsigned closed = 0;
	for (int i = 0; i < 4; i++) {
		pump_read(&loop, extra[i], buf, 1, &eof);
		closed += eof;
	}
	CHECK_EQ(closed, 2);
	struct http_server_counters ctr;
	http_server_get_counters(srv, &ctr);
	CHECK_EQ(ctr.rx_connections_refused, 2);

	/* A 4 MiB response to a client that reads slowly arrives whole. */
	CHECK(send(a, "GET /big HTTP/1.1\r\n\r\n", 21, 0) == 21);
	char *big = malloc(BIG_LEN + 200);
	n = pump_read(&loop, a, big, BIG_LEN + 200, &eof);
	CHECK(n > BIG_LEN);
	char *body = strstr(big, "\r\n\r\n");
	CHECK(body && (size_t)(big + n - (body + 4)) == BIG_LEN);
	free(big);

	/* The stalled client finishes later and is answered. */
	CHECK(send(stalled, "st: x\r\n\r\n", 9, MSG_NOSIGNAL) == 9);
	n = pump_read(&loop, stalled, buf, 120, &eof);
	buf[n] = '\0';
	CHECK(strstr(buf, "GET /stall||-"));

	for (int i = 0; i < 4; i++)
		close(extra[i]);
	close(a);
	close(stalled);
	http_server_stop(srv);
	CHECK(access(path, F_OK) < 0);
	event_loop_destroy(&loop);
}

/* At the limit, a newcomer replaces the connection silent the longest
 * once that one has been silent for 2 s; until then it is turned away. */
static void test_server_evicts_idle(void)
{
	struct event_loop loop;
	char path[64], buf[8];
	bool eof;
	struct http_server *srv = start_server(&loop, path, sizeof(path));
	int c[4];

	if (!srv)
		return;
	c[0] = client(path);      /* connects first and never speaks */
	spin(&loop);
	for (int i = 1; i < 4; i++)
		c[i] = client(path);
	spin(&loop);
	int early = client(path);
	spin(&loop);
	pump_read(&loop, early, buf, 1, &eof);
	CHECK(eof);               /* everyone is fresh: turned away */
	usleep(2100 * 1000);
	for (int i = 1; i < 4; i++)
		CHECK(ask(&loop, c[i], "GET /k HTTP/1.1\r\n\r\n"));
	int late = client(path);
	spin(&loop);
	CHECK(ask(&loop, late, "GET /late HTTP/1.1\r\n\r\n"));
	pump_read(&loop, c[0], buf, 1, &eof);
	CHECK(eof);               /* the silent one made room */
	struct http_server_counters ctr;
	http_server_get_counters(srv, &ctr);
	CHECK_EQ(ctr.rx_connections_refused, 1);
	CHECK_EQ(ctr.rx_connections_evicted, 1);
	CHECK_EQ(ctr.rx_connections_idle_closed, 0);  /* default idle timeout: 60 s */
	for (int i = 1; i < 4; i++)
		CHECK(ask(&loop, c[i], "GET /still HTTP/1.1\r\n\r\n"));
	for (int i = 0; i < 4; i++)
		close(c[i]);
	close(early);
	close(late);
	http_server_stop(srv);
	event_loop_destroy(&loop);
}

/* --- timeouts, with short ones so the tests take a fraction of a second - */

static struct http_server *start_timed(struct event_loop *loop, char *path, size_t len,
				       unsigned request_ms, unsigned idle_ms, unsigned send_ms)
{
	struct errbuf eb = { 0 };
	struct http_server_opts o = { .socket_path = path, .limits = limits,
				      .handler = echo_handler, .on_error = json_error,
				      .name = "test" };

	o.limits.request_timeout_ms = request_ms;
	o.limits.idle_timeout_ms = idle_ms;
	o.limits.send_timeout_ms = send_ms;
	snprintf(path, len, "/tmp/kvmini-test-http-%d.sock", getpid());
	CHECK_EQ(event_loop_init(loop), 0);
	struct http_server *srv = http_server_start(loop, &o, &eb);
	CHECK(srv != NULL);
	return srv;
}

static uint64_t ms_since(uint64_t t0)
{
	return (clock_now_ns() - t0) / 1000000u;
}

/* Read everything @fd gets until EOF (at most about 2 s); the text, NUL
 * terminated, in @buf. Returns whether EOF came. */
static bool read_to_eof(struct event_loop *loop, int fd, char *buf, size_t size)
{
	bool eof = false;
	size_t n = 0;

	for (int i = 0; i < 10 && !eof && n < size - 1; i++)
		n += pump_read(loop, fd, buf + n, size - 1 - n, &eof);
	buf[n] = '\0';
	return eof;
}

/* Pump and read @fd until @needle arrives (at most about 1 s, or EOF):
 * whether it did. */
static bool read_until(struct event_loop *loop, int fd, char *buf, size_t size,
		       const char *needle)
{
	size_t n = 0;

	for (int i = 0; i < 200 && !memmem(buf, n, needle, strlen(needle)); i++) {
		event_loop_once(loop, 5);
		ssize_t r = recv(fd, buf + n, size - n, MSG_DONTWAIT);
		if (r == 0)
			break;
		n += r > 0 ? (size_t)r : 0;
	}
	return memmem(buf, n, needle, strlen(needle)) != NULL;
}

/* A body announced and never sent: 408 through on_error, then close. */
static void test_server_request_timeout(void)
{
	struct event_loop loop;
	char path[64], buf[512];
	struct http_server_counters ctr;
	struct http_server *srv = start_timed(&loop, path, sizeof(path), 100, 5000, 5000);

	if (!srv)
		return;
	int fd = client(path);
	uint64_t t0 = clock_now_ns();
	const char req[] = "PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
	CHECK(send(fd, req, sizeof(req) - 1, 0) == (ssize_t)sizeof(req) - 1);
	CHECK(read_to_eof(&loop, fd, buf, sizeof(buf)));
	CHECK(ms_since(t0) >= 100);
	CHECK(strstr(buf, "HTTP/1.1 408 Request Timeout\r\n") == buf);
	CHECK(strstr(buf, "application/json"));       /* the server's own format */
	CHECK(strstr(buf, "Connection: close"));
	http_server_get_counters(srv, &ctr);
	CHECK_EQ(ctr.rx_requests_timed_out, 1);
	CHECK_EQ(ctr.rx_connections_idle_closed, 0);
	CHECK_EQ(ctr.tx_responses_timed_out, 0);
	close(fd);
	http_server_stop(srv);
	event_loop_destroy(&loop);
}

/* A keep-alive connection that asks nothing more is closed, silently;
 * one that never spoke too. */
static void test_server_idle_timeout(void)
{
	struct event_loop loop;
	char path[64], buf[512];
	struct http_server_counters ctr;
	struct http_server *srv = start_timed(&loop, path, sizeof(path), 5000, 100, 5000);

	if (!srv)
		return;
	int fd = client(path), silent = client(path);
	CHECK(send(fd, "GET /a HTTP/1.1\r\n\r\n", 19, 0) == 19);
	CHECK(read_until(&loop, fd, buf, sizeof(buf), "GET /a||-"));
	uint64_t t0 = clock_now_ns();
	CHECK(read_to_eof(&loop, fd, buf, sizeof(buf)));
	CHECK(ms_since(t0) >= 90);    /* from the answer, less the last round */
	CHECK_EQ(buf[0], '\0');       /* nothing sent on an idle close */
	CHECK(read_to_eof(&loop, silent, buf, sizeof(buf)));
	http_server_get_counters(srv, &ctr);
	CHECK_EQ(ctr.rx_connections_idle_closed, 2);
	CHECK_EQ(ctr.rx_requests_timed_out, 0);
	close(fd);
	close(silent);
	http_server_stop(srv);
	event_loop_destroy(&loop);
}

/* Slow but within the deadline: gaps longer than the idle timeout inside a
 * request do not close it (a request in progress is not idle), and the
 * request timeout runs from its first byte. */
static void test_server_slow_client_served(void)
{
	struct event_loop loop;
	char path[64], buf[512];
	struct http_server_counters ctr;
	struct http_server *srv = start_timed(&loop, path, sizeof(path), 600, 100, 5000);
	static const char *const parts[] = { "PUT /slow HTTP/1.1\r\n", "Content-Length: 4\r\n",
					     "\r\nab", "cd" };

	if (!srv)
		return;
	int fd = client(path);
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		uint64_t t0 = clock_now_ns();
		while (i && ms_since(t0) < 130)
			event_loop_once(&loop, 10);
		CHECK(send(fd, parts[i], strlen(parts[i]), MSG_NOSIGNAL) == (ssize_t)strlen(parts[i]));
	}
	CHECK(read_until(&loop, fd, buf, sizeof(buf), "PUT /slow|abcd|-"));
	http_server_get_counters(srv, &ctr);
	CHECK_EQ(ctr.rx_requests_timed_out, 0);
	CHECK_EQ(ctr.rx_connections_idle_closed, 0);
	close(fd);
	http_server_stop(srv);
	event_loop_destroy(&loop);
}

/* A client that asks for a large answer and never reads it is closed once
 * the send timeout passes without progress. */
static void test_server_send_timeout(void)
{
	struct event_loop loop;
	char path[64];
	struct http_server_counters ctr;
	struct http_server *srv = start_timed(&loop, path, sizeof(path), 5000, 5000, 100);

	if (!srv)
		return;
	int fd = client(path);
	CHECK(send(fd, "GET /big HTTP/1.1\r\n\r\n", 21, 0) == 21);
	uint64_t t0 = clock_now_ns();
	do {
		event_loop_once(&loop, 10);
		http_server_get_counters(srv, &ctr);
	} while (!ctr.tx_responses_timed_out && ms_since(t0) < 2000);
	CHECK_EQ(ctr.tx_responses_timed_out, 1);
	CHECK(ms_since(t0) >= 100);
	/* What the socket held arrives, then EOF: the server's side is gone. */
	char *big = malloc(BIG_LEN);
	CHECK(read_to_eof(&loop, fd, big, BIG_LEN));
	free(big);
	CHECK_EQ(ctr.rx_requests_timed_out, 0);
	close(fd);
	http_server_stop(srv);
	event_loop_destroy(&loop);
}

static void test_server_refuses_non_socket_path(void)
{
	struct event_loop loop;
	char path[64];
	struct errbuf eb = { 0 };

	snprintf(path, sizeof(path), "/tmp/kvmini-test-http-file-%d", getpid());
	CHECK_EQ(event_loop_init(&loop), 0);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	struct http_server_opts o = { .socket_path = path, .limits = limits,
				      .handler = echo_handler };
	CHECK(http_server_start(&loop, &o, &eb) == NULL);
	CHECK(strstr(eb.msg, "not a socket"));
	CHECK(access(path, F_OK) == 0);
	unlink(path);
	event_loop_destroy(&loop);
}

int main(void)
{
	RUN_TEST(test_simple_get);
	RUN_TEST(test_every_split_gives_same_answer);
	RUN_TEST(test_pipelined_in_order);
	RUN_TEST(test_connection_close);
	RUN_TEST(test_malformed_is_400_and_closes);
	RUN_TEST(test_limits_are_413);
	RUN_TEST(test_refuse_bodies);
	RUN_TEST(test_chunked_body_assembled);
	RUN_TEST(test_expect_continue);
	RUN_TEST(test_no_content_and_head);
	RUN_TEST(test_upgrade_refused);
	RUN_TEST(test_error_callback_formats);
	RUN_TEST(test_response_header_checks);
	RUN_TEST(test_server);
	RUN_TEST(test_server_evicts_idle);
	RUN_TEST(test_server_request_timeout);
	RUN_TEST(test_server_idle_timeout);
	RUN_TEST(test_server_slow_client_served);
	RUN_TEST(test_server_send_timeout);
	RUN_TEST(test_server_refuses_non_socket_path);
	return CHECK_DONE();
}
