/*
 * vhost-user wire protocol: message numbers, payload layouts, limits, and the
 * per-request validation table the server checks every message against
 * before any handler runs.
 *
 * Source: QEMU docs/interop/vhost-user.rst ("Message Specification",
 * "Front-end message types", "Back-end message types"). All numbers are in
 * host byte order on the wire (the peer is on the same host).
 *
 * Internal to src/transport/vhost_user.c, its unit test and its fuzzer.
 */
#ifndef KVMINI_TRANSPORT_VHOST_USER_PROTO_H
#define KVMINI_TRANSPORT_VHOST_USER_PROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/vhost_types.h>

struct vhost_user_server;

/* Header flags (spec "Header"). */
#define VHOST_USER_VERSION          0x1u
#define VHOST_USER_VERSION_MASK     0x3u
#define VHOST_USER_FLAG_REPLY       (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY  (1u << 3)
/* Every defined bit; a request with any other bit set is refused. */
#define VHOST_USER_FLAGS_KNOWN      (VHOST_USER_VERSION_MASK | VHOST_USER_FLAG_REPLY | \
				     VHOST_USER_FLAG_NEED_REPLY)
/* What every reply carries: UML checks for exactly this value. */
#define VHOST_USER_REPLY_FLAGS      (VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY)

/* Virtio feature bit 30 (reserved by virtio) says the backend speaks the
 * protocol-feature messages. Never passed to the device. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/* Protocol feature bits (spec "Protocol features"). */
#define VHOST_USER_PROTOCOL_F_MQ                    0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD             1
#define VHOST_USER_PROTOCOL_F_RARP                  2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK             3
#define VHOST_USER_PROTOCOL_F_MTU                   4
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ           5   /* formerly SLAVE_REQ */
#define VHOST_USER_PROTOCOL_F_CROSS_ENDIAN          6
#define VHOST_USER_PROTOCOL_F_CRYPTO_SESSION        7
#define VHOST_USER_PROTOCOL_F_PAGEFAULT             8
#define VHOST_USER_PROTOCOL_F_CONFIG                9
#define VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD      10
#define VHOST_USER_PROTOCOL_F_HOST_NOTIFIER        11
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD       12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE         13
#define VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS 14
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS  15
#define VHOST_USER_PROTOCOL_F_STATUS               16

#define VHOST_USER_PF(bit) (1ull << VHOST_USER_PROTOCOL_F_##bit)

/* What this server can do; struct vhost_user_opts masks it further. */
#define VHOST_USER_PROTOCOL_FEATURES_SUPPORTED \
	(VHOST_USER_PF(MQ) | VHOST_USER_PF(REPLY_ACK) | VHOST_USER_PF(BACKEND_REQ) | \
	 VHOST_USER_PF(CONFIG) | VHOST_USER_PF(INBAND_NOTIFICATIONS))

/* Back-end to front-end requests, sent on the SET_BACKEND_REQ_FD channel. */
enum vhost_user_backend_request {
	VHOST_USER_BACKEND_IOTLB_MSG = 1,
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
	VHOST_USER_BACKEND_VRING_CALL = 4,
	VHOST_USER_BACKEND_VRING_ERR = 5,
};

/* SET_VRING_KICK / CALL / ERR: the u64 holds the ring index in bits 0-7 and
 * "no fd in the ancillary data" in bit 8; other bits are undefined. */
#define VHOST_USER_VRING_IDX_MASK   0xffull
#define VHOST_USER_VRING_NOFD_MASK  (1ull << 8)

/* Limits. */
#define VHOST_USER_HDR_SIZE         12u
#define VHOST_USER_MAX_FDS          8u    /* per message, as QEMU and UML send */
#define VHOST_USER_MAX_REGIONS      8u    /* SET_MEM_TABLE baseline */
#define VHOST_USER_MAX_QUEUES       256u  /* the u64 ring index has 8 bits */
#define VHOST_USER_CONFIG_HDR_SIZE  12u
#define VHOST_USER_CONFIG_MAX       256u  /* bytes of config space per GET/SET */
/* Largest payload read at all; bigger ones end the connection. It leaves
 * room for requests the server does not know, so those can be answered. */
#define VHOST_USER_PAYLOAD_MAX      4096u
#define VHOST_USER_VRING_MAX        32768u  /* split ring size limit (virtio 2.7) */
#define VHOST_USER_CONFIG_F_MIGRATION 1u    /* SET_CONFIG flags value 1 */

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;           /* payload bytes after the header */
};
_Static_assert(sizeof(struct vhost_user_hdr) == VHOST_USER_HDR_SIZE, "header layout");

/* "Memory regions description": the mmap offset is where the region starts
 * inside the file passed for it. */
struct vhost_user_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	uint64_t mmap_offset;
};

struct vhost_user_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_mem_region regions[VHOST_USER_MAX_REGIONS];
};
#define VHOST_USER_MEM_HDR_SIZE 8u

/* "Virtio device config space". */
struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[VHOST_USER_CONFIG_MAX];
};

/* Every payload, aligned for its widest member. */
union vhost_user_payload {
	uint64_t u64;
	struct vhost_vring_state state;      /* index, num */
	struct vhost_vring_addr addr;        /* index, flags, desc, used, avail, log */
	struct vhost_user_memory memory;
	struct vhost_user_config config;
	uint8_t raw[VHOST_USER_PAYLOAD_MAX];
};
_Static_assert(sizeof(struct vhost_vring_state) == 8, "vring state layout");
_Static_assert(sizeof(struct vhost_vring_addr) == 40, "vring addr layout");

/* How many fds a request must carry. */
enum vhost_user_fd_rule {
	VU_FDS_NONE,             /* none */
	VU_FDS_ONE,              /* exactly one */
	VU_FDS_UNLESS_NOFD,      /* one, or none when the u64 has the NOFD bit */
	VU_FDS_PER_REGION,       /* one per memory region */
};

/* Where the request names a ring. */
enum vhost_user_queue_rule {
	VU_Q_NONE,
	VU_Q_STATE,              /* vhost_vring_state.index / vhost_vring_addr.index */
	VU_Q_U64,                /* bits 0-7 of the u64, bit 8 NOFD, the rest zero */
};

/* No protocol feature needed. */
#define VU_PF_NONE (-1)

/*
 * The requests served, one row each:
 *   X(name, id, min payload, max payload, fd rule, queue rule,
 *     has a reply body, protocol feature that must be negotiated)
 * Rows not listed (logging, IOTLB, postcopy, inflight, memory slots, status,
 * ...) are unknown to the server: answered with a failure when the front-end
 * asked for an ack, otherwise the connection ends (spec "Communication": a
 * back-end may close the connection on an error it cannot report).
 */
#define VHOST_USER_REQUESTS(X) \
	X(GET_FEATURES,           1,  0,  0,  VU_FDS_NONE,        VU_Q_NONE,  true,  VU_PF_NONE) \
	X(SET_FEATURES,           2,  8,  8,  VU_FDS_NONE,        VU_Q_NONE,  false, VU_PF_NONE) \
	X(SET_OWNER,              3,  0,  0,  VU_FDS_NONE,        VU_Q_NONE,  false, VU_PF_NONE) \
	X(RESET_OWNER,            4,  0,  0,  VU_FDS_NONE,        VU_Q_NONE,  false, VU_PF_NONE) \
	X(SET_MEM_TABLE,          5,  VHOST_USER_MEM_HDR_SIZE, sizeof(struct vhost_user_memory), \
				      VU_FDS_PER_REGION,  VU_Q_NONE,  false, VU_PF_NONE) \
	X(SET_VRING_NUM,          8,  8,  8,  VU_FDS_NONE,        VU_Q_STATE, false, VU_PF_NONE) \
	X(SET_VRING_ADDR,         9,  40, 40, VU_FDS_NONE,        VU_Q_STATE, false, VU_PF_NONE) \
	X(SET_VRING_BASE,         10, 8,  8,  VU_FDS_NONE,        VU_Q_STATE, false, VU_PF_NONE) \
	X(GET_VRING_BASE,         11, 8,  8,  VU_FDS_NONE,        VU_Q_STATE, true,  VU_PF_NONE) \
	X(SET_VRING_KICK,         12, 8,  8,  VU_FDS_UNLESS_NOFD, VU_Q_U64,   false, VU_PF_NONE) \
	X(SET_VRING_CALL,         13, 8,  8,  VU_FDS_UNLESS_NOFD, VU_Q_U64,   false, VU_PF_NONE) \
	X(SET_VRING_ERR,          14, 8,  8,  VU_FDS_UNLESS_NOFD, VU_Q_U64,   false, VU_PF_NONE) \
	X(GET_PROTOCOL_FEATURES,  15, 0,  0,  VU_FDS_NONE,        VU_Q_NONE,  true,  VU_PF_NONE) \
	X(SET_PROTOCOL_FEATURES,  16, 8,  8,  VU_FDS_NONE,        VU_Q_NONE,  false, VU_PF_NONE) \
	X(GET_QUEUE_NUM,          17, 0,  0,  VU_FDS_NONE,        VU_Q_NONE,  true,  VU_PF_NONE) \
	X(SET_VRING_ENABLE,       18, 8,  8,  VU_FDS_NONE,        VU_Q_STATE, false, VU_PF_NONE) \
	X(SET_BACKEND_REQ_FD,     21, 0,  0,  VU_FDS_ONE,         VU_Q_NONE,  false, \
				      VHOST_USER_PROTOCOL_F_BACKEND_REQ) \
	X(GET_CONFIG,             24, VHOST_USER_CONFIG_HDR_SIZE, \
				      sizeof(struct vhost_user_config), \
				      VU_FDS_NONE,        VU_Q_NONE,  true, \
				      VHOST_USER_PROTOCOL_F_CONFIG) \
	X(SET_CONFIG,             25, VHOST_USER_CONFIG_HDR_SIZE, \
				      sizeof(struct vhost_user_config), \
				      VU_FDS_NONE,        VU_Q_NONE,  false, \
				      VHOST_USER_PROTOCOL_F_CONFIG) \
	X(VRING_KICK,             35, 8,  8,  VU_FDS_NONE,        VU_Q_STATE, false, \
				      VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS)

enum vhost_user_request {
#define VU_ENUM(name, id, ...) VHOST_USER_##name = id,
	VHOST_USER_REQUESTS(VU_ENUM)
#undef VU_ENUM
	VHOST_USER_REQUEST_LIMIT = 41,   /* ids below this are looked up in the table */
};

/* One row of the table, as the server uses it. */
struct vhost_user_req_rule {
	const char *name;
	uint32_t min_size, max_size;
	enum vhost_user_fd_rule fds;
	enum vhost_user_queue_rule queue;
	bool reply;                      /* the request has its own reply body */
	int pf;                          /* required protocol feature bit, or VU_PF_NONE */
};

/* The rule for @request, or NULL when the server does not serve it. */
const struct vhost_user_req_rule *vhost_user_req_rule(uint32_t request);
/* "GET_FEATURES", ..., or "unknown". */
const char *vhost_user_req_name(uint32_t request);

/*
 * Header checks made before the payload is even read: version 1, no reply
 * bit, no undefined bit, payload at most VHOST_USER_PAYLOAD_MAX.
 * Returns 0 or -EPROTO (the connection cannot continue).
 */
int vhost_user_check_header(const struct vhost_user_hdr *hdr);

/*
 * Central validation of one request against its table row and the session:
 * payload size, fd count, ring index, negotiated protocol feature, and the
 * values every handler relies on (region count and layout, ring size a power
 * of two up to 32768, ring base below 65536, enable 0 or 1, config size
 * consistent with the payload, protocol features offered). Runs before any
 * handler; nothing is changed. Returns 0 or -errno and sets *why.
 */
int vhost_user_validate(const struct vhost_user_server *s, const struct vhost_user_hdr *hdr,
			const union vhost_user_payload *p, unsigned nfds, const char **why);

/*
 * Handle one complete message as if it had arrived on the connection:
 * validate, run the handler, send the reply or ack. @payload holds
 * hdr->size bytes (any alignment). The server takes every fd in @fds: it
 * keeps the ones it uses and closes the rest.
 * Returns 0, or -errno when the message ended the connection (the server has
 * then disconnected, reset the device and is ready for the next frontend),
 * or -ENOTCONN (fds closed, nothing done) when no front-end is connected.
 * Used by the socket reader, and directly by the fuzzer and unit tests.
 */
int vhost_user_handle_msg(struct vhost_user_server *s, const struct vhost_user_hdr *hdr,
			  const void *payload, int *fds, unsigned nfds);

#endif
