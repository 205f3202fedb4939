/*
 * The metadata service's wiring on the guest's link: a private directory
 * holding the HTTP server's unix socket, the server answering with
 * mmds_handle_request, the libslirp endpoint that turns guest TCP
 * connections to ADDR:80 into connections to that socket, and the frame
 * interceptor around the real backend. Torn down in the reverse order.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "http/http.h"
#include "mmds/intercept.h"

struct mmds_service {
	struct http_server *http;
	struct mmds *mmds;            /* its counters show the server's */
	struct slirp_endpoint ep;     /* the endpoint reads it while it lives */
	char dir[PATH_MAX];
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* service_free - the server, its socket and directory (the endpoint that
 * connects to it is gone by now). */
static void service_free(void *arg)
{
	struct mmds_service *s = arg;

	if (s->http) {
		mmds_detach_http(s->mmds, s->http);
		http_server_stop(s->http);
	}
	if (s->sock_path[0])
		unlink(s->sock_path);
	if (s->dir[0] && rmdir(s->dir) < 0 && errno != ENOENT)
		log_warn("mmds: removing %s: %s", s->dir, strerror(errno));
	free(s);
}

/* private_dir - a 0700 directory (mkdtemp) for the server's socket: 0, or
 * -errno with @eb filled. */
static int private_dir(struct mmds_service *s, struct errbuf *eb)
{
	const char *tmp = getenv("TMPDIR");

	if (!tmp || !*tmp)
		tmp = "/tmp";
	int n = snprintf(s->dir, sizeof(s->dir), "%s/kvmini-mmds-XXXXXX", tmp);
	int r = n < 0 || (size_t)n >= sizeof(s->dir) ? -ENAMETOOLONG : 0;

	/* errno means something only when mkdtemp itself failed. */
	if (!r && !mkdtemp(s->dir))
		r = -errno;
	if (r) {
		errbuf_set(eb, "mmds: cannot make a private directory in %s: %s", tmp,
			   strerror(-r));
		s->dir[0] = '\0';
		return r;
	}
	n = snprintf(s->sock_path, sizeof(s->sock_path), "%s/http.sock", s->dir);
	if (n < 0 || (size_t)n >= sizeof(s->sock_path)) {
		errbuf_set(eb, "mmds: socket path too long under %s", tmp);
		s->sock_path[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

/* start_http - the MMDS HTTP server on the private socket: 0, or -EIO with
 * @eb filled (http_server_start says why in @eb only). */
static int start_http(struct mmds_service *s, struct event_loop *loop, struct mmds *m,
		      struct errbuf *eb)
{
	const struct http_server_opts opts = {
		.socket_path = s->sock_path,
		.limits = {
			.max_header_bytes = MMDS_HTTP_MAX_HEADER_BYTES,
			.max_body_bytes = MMDS_HTTP_MAX_BODY_BYTES,
			.max_connections = MMDS_HTTP_MAX_CONNECTIONS,
			.request_timeout_ms = MMDS_HTTP_REQUEST_TIMEOUT_MS,
			.idle_timeout_ms = MMDS_HTTP_IDLE_TIMEOUT_MS,
			.send_timeout_ms = MMDS_HTTP_SEND_TIMEOUT_MS,
			.refuse_bodies = true,
		},
		.handler = mmds_http_handler,
		.on_error = mmds_http_error,
		.opaque = m,
		.name = "mmds",
	};

	s->http = http_server_start(loop, &opts, eb);
	if (!s->http)
		return -EIO;
	s->mmds = m;
	mmds_attach_http(m, s->http);
	return 0;
}

struct net_backend *mmds_intercept_create(struct event_loop *loop, struct net_backend *inner,
					  struct mmds *m, struct errbuf *eb)
{
	struct mmds_service *s = calloc(1, sizeof(*s));
	struct mmds_config cfg;
	struct net_backend *ep;

	if (!s) {
		errbuf_set(eb, "mmds: out of memory");
		inner->ops->destroy(inner);
		return NULL;
	}
	mmds_get_config(m, &cfg);
	if (private_dir(s, eb) || start_http(s, loop, m, eb))
		goto fail;
	s->ep = (struct slirp_endpoint){
		.addr = cfg.ipv4, .port = MMDS_HTTP_PORT, .unix_path = s->sock_path,
	};
	ep = net_slirp_create_endpoint(loop, &s->ep, eb);
	if (!ep)
		goto fail;
	struct net_backend *be = mmds_intercept_wrap(inner, ep, cfg.ipv4, m, service_free, s);
	if (!be) {
		errbuf_set(eb, "mmds: out of memory");
		return NULL;
	}
	char a[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &cfg.ipv4, a, sizeof(a));
	log_info("mmds: V%d at %s:%u", cfg.version, a, MMDS_HTTP_PORT);
	return be;
fail:
	service_free(s);
	inner->ops->destroy(inner);
	return NULL;
}
