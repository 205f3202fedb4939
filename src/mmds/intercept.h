/*
 * The metadata service on the guest's link: a network backend that wraps
 * the real one. Guest frames that are ARP for the MMDS address or IPv4 to
 * it go to a libslirp endpoint (net_slirp_create_endpoint) and never to the
 * wrapped backend; everything else passes untouched. The endpoint turns
 * each guest TCP connection to ADDR:80 into a unix-socket connection that
 * an http_server answers with mmds_handle_request. The device's RX drain
 * takes its replies ahead of the wrapped backend's traffic.
 */
#ifndef KVMINI_MMDS_INTERCEPT_H
#define KVMINI_MMDS_INTERCEPT_H

#include <netinet/in.h>

#include "core/errbuf.h"
#include "mmds/mmds.h"
#include "net/backend.h"

/* Guest HTTP limits of the metadata endpoint. */
#define MMDS_HTTP_MAX_HEADER_BYTES 8192u
#define MMDS_HTTP_MAX_BODY_BYTES 4096u
#define MMDS_HTTP_MAX_CONNECTIONS 64u
/* Timeouts (struct http_limits). A guest's metadata request is a few
 * hundred bytes on a local link: 5 s to send it is generous even for a
 * guest starved of CPU. Metadata clients (cloud-init, the AWS SDKs) ask in
 * bursts and open a new connection when one was closed, so an idle one is
 * kept 5 s only (Apache's and Node's keep-alive default): the 64 slots go
 * to guests that are asking. Output a guest has not read for 10 s is held
 * by a guest that is not reading. */
#define MMDS_HTTP_REQUEST_TIMEOUT_MS 5000u
#define MMDS_HTTP_IDLE_TIMEOUT_MS 5000u
#define MMDS_HTTP_SEND_TIMEOUT_MS 10000u
#define MMDS_HTTP_PORT 80u

/*
 * The whole path for @m on @loop (src/mmds/service.c): a private 0700 directory with the HTTP
 * server's socket, the libslirp endpoint at the configured MMDS address,
 * and the wrapper around @inner. Takes ownership of @inner (destroyed with
 * the wrapper, even on failure); @m must outlive the result. NULL with
 * @eb filled on failure.
 */
struct net_backend *mmds_intercept_create(struct event_loop *loop, struct net_backend *inner,
					  struct mmds *m, struct errbuf *eb);

/*
 * The wrapper alone (src/mmds/intercept.c): frames for @addr (and ARP
 * replies to libslirp's own requests) go to @endpoint, a libslirp endpoint
 * (net_slirp_create_endpoint), the rest to @inner. Takes ownership of both
 * backends, even on failure; @cleanup(@cleanup_arg), if given, runs after
 * the endpoint is destroyed and before @inner is. @m (may be NULL)
 * receives the frame counts.
 */
struct net_backend *mmds_intercept_wrap(struct net_backend *inner, struct net_backend *endpoint,
					struct in_addr addr, struct mmds *m,
					void (*cleanup)(void *arg), void *cleanup_arg);

#endif
