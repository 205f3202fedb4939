/*
 * The metadata service (MMDS): a JSON store the operator fills through the
 * control API and the guest reads over HTTP at a link-local address
 * (169.254.169.254 by default), in Firecracker's V1 and V2 flavours.
 * This header is the store and the guest-facing request handler; the frame
 * interception and the TCP endpoint that carry guest requests here live in
 * src/mmds/intercept.h.
 */
#ifndef KVMINI_MMDS_MMDS_H
#define KVMINI_MMDS_MMDS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>

#include "core/counters.h"
#include "core/state_io.h"
#include "http/http.h"

enum mmds_version { MMDS_V1 = 1, MMDS_V2 = 2 };

/* Default store limit (Firecracker's default data-store size). */
#define MMDS_DEFAULT_STORE_LIMIT (51200u)

struct mmds_config {
	enum mmds_version version;
	struct in_addr ipv4;          /* link-local (169.254.0.0/16) only */
	size_t store_limit;           /* bytes of the serialized store */
	bool imds_compat;             /* answer IMDS text whatever Accept asks for, as
	                               * EC2's IMDS does (Firecracker's `imds_compat`) */
};

/* Refusals and requests, one counter each (printed with the device's). */
#define MMDS_COUNTERS(X) \
	X(rx_accepted,            "guest requests answered 2xx") \
	X(rx_bad_request,         "guest requests refused 400") \
	X(rx_unauthorized,        "guest requests refused 401 (missing or bad token)") \
	X(rx_not_found,           "guest requests answered 404") \
	X(rx_method_not_allowed,  "guest requests refused 405") \
	X(rx_forwarded_refused,   "guest requests refused for X-Forwarded-For") \
	X(rx_unsupported_type,    "guest GETs of a value IMDS text cannot show") \
	X(rx_too_large,           "guest requests refused 413 (over the request size limit)") \
	X(rx_not_implemented,     "guest requests refused 501/505 by the HTTP layer") \
	X(tokens_issued,          "V2 session tokens issued") \
	X(tokens_expired,         "requests carrying an expired token") \
	X(store_too_large,        "operator updates refused 413") \
	X(frames_intercepted,     "guest frames for the MMDS address kept from the backend") \
	X(frames_injected,        "MMDS frames delivered to the guest") \
	X(frames_deferred,        "guest TCP segments to the MMDS address over the per-round cap (dropped; TCP resends)")

struct mmds_counters {
	MMDS_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set mmds_counter_set;

struct mmds;

/* Whether @addr can be the MMDS address: in 169.254.0.0/16, neither that
 * network's own address nor its broadcast. */
bool mmds_address_ok(struct in_addr addr);

/* NULL on a bad configuration or without memory. A zero store_limit means
 * MMDS_DEFAULT_STORE_LIMIT. The store starts as {}. */
struct mmds *mmds_new(const struct mmds_config *cfg);
void mmds_free(struct mmds *m);
/* 0, or -EINVAL for a bad version/address (link-local only). Tokens issued
 * before stay valid until they expire. */
int mmds_set_config(struct mmds *m, const struct mmds_config *cfg);
void mmds_get_config(const struct mmds *m, struct mmds_config *cfg);

/* Operator side (control API). Each returns 0, -EINVAL for a body that is
 * not JSON (any JSON value is a store, as in Firecracker), or -EFBIG when
 * the result would exceed the limit (the store is left unchanged);
 * mmds_patch also -ENODATA before the first mmds_put (Firecracker: "The
 * MMDS data store is not initialized."). */
int mmds_put(struct mmds *m, const char *json, size_t len);
int mmds_patch(struct mmds *m, const char *json, size_t len);   /* RFC 7396 */
/* The whole store serialized; malloc'd, NUL terminated. */
char *mmds_get_json(const struct mmds *m);

/* Guest side: answer one HTTP request from the guest. Safe to call from
 * another thread than the operator side (the store has its own lock). */
void mmds_handle_request(struct mmds *m, const struct http_request *req,
			 struct http_response *resp);
/* An http_error_fn (opaque = struct mmds *) for requests the HTTP layer
 * refused: counts the refusal and answers in MMDS's plain-text format. */
void mmds_http_error(void *opaque, int status, const char *message,
		     struct http_response *resp);
/* An http_handler_fn (opaque = struct mmds *) wrapping mmds_handle_request. */
void mmds_http_handler(void *opaque, const struct http_request *req,
		       struct http_response *resp);

/* The clock tokens expire by, in milliseconds (CLOCK_MONOTONIC by default);
 * tests inject their own. */
typedef uint64_t (*mmds_clock_fn)(void *opaque);
void mmds_set_clock(struct mmds *m, mmds_clock_fn now_ms, void *opaque);

/* The frame interceptor's counts, kept with the service's. */
void mmds_count_frames(struct mmds *m, uint64_t intercepted, uint64_t injected,
		       uint64_t deferred);

/*
 * Snapshots: the "MMDS" section (configuration, store, token key and
 * serial, the service's clock). A load is checked whole before it replaces
 * anything; tokens issued before the snapshot validate after it, with the
 * lifetime they had left. mmds_new_key makes every token issued so far
 * invalid: what a clone of a snapshot wants (its sibling's tokens must not
 * open its metadata). Any thread.
 */
void mmds_state_save(struct mmds *m, struct state_writer *w);
bool mmds_state_load(struct mmds *m, struct state_reader *r);
void mmds_new_key(struct mmds *m);

const struct mmds_counters *mmds_counters(const struct mmds *m);
/* "mmds <name> <value>" (loop thread or any: copied under the lock): the
 * service's own counters, then those of the HTTP servers attached (summed:
 * one per interface serving MMDS). */
void mmds_visit_counters(const struct mmds *m, const struct counter_sink *sink);
/* The HTTP server answering for @m (src/mmds/service.c): attached once it
 * runs, detached before it stops, so a dump on another thread never reads
 * a stopped one. At most MMDS_MAX_HTTP_SERVERS; more are not counted. */
#define MMDS_MAX_HTTP_SERVERS 8u
void mmds_attach_http(struct mmds *m, const struct http_server *srv);
void mmds_detach_http(struct mmds *m, const struct http_server *srv);
void mmds_dump_counters(const struct mmds *m, FILE *out);

#endif
