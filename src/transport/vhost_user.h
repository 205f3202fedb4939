/*
 * vhost-user backend server: serves one virtio device to an out-of-process
 * front-end (QEMU, cloud-hypervisor, crosvm, User-Mode Linux) over a unix
 * socket, following QEMU's docs/interop/vhost-user.rst.
 *
 * The server listens on a path, serves one front-end at a time, and runs
 * entirely on the event loop it is given (calling context of every function
 * here and of the transport callbacks: that loop's thread, but for
 * signal_used_direct, which a device's per-pair threads call at once). After a
 * disconnect, or a protocol error, which disconnects, the device is reset,
 * the memory table dropped, and the next connection is served.
 *
 * Rings follow the spec's "Ring states": a ring is started by a kick source
 * (kick fd, or in-band VRING_KICK) and stopped by GET_VRING_BASE, and is
 * enabled or disabled apart from that. Once the rings the device needs
 * are configured (size, addresses, base), started and enabled (every ring;
 * for a net device the first queue pair), the device is activated against
 * the front-end's memory on every ring ready then; the others stay inert.
 * A ring becoming ready or no longer ready (stop, disable), and a change to
 * what the device uses (ring configuration, memory table, features), stops
 * the device and starts it again on the rings ready after the change.
 *
 * Multiqueue (protocol feature MQ, always offered, as DPDK's lib/vhost does:
 * GET_QUEUE_NUM then says how many, and QEMU without it assumes one pair
 * anyway, so a one-pair device loses nothing): ring indices up to the
 * device's max_queues are accepted whatever the features; GET_QUEUE_NUM
 * counts queue pairs for a net device (see struct vhost_user_opts).
 *
 * The server implements struct virtio_transport: used-buffer interrupts go to
 * the ring's call fd (an eventfd from QEMU, a socketpair from UML) or, with
 * INBAND_NOTIFICATIONS, as VRING_CALL on the back-end request channel; config
 * changes as CONFIG_CHANGE_MSG when the CONFIG protocol feature is on.
 */
#ifndef KVMINI_TRANSPORT_VHOST_USER_H
#define KVMINI_TRANSPORT_VHOST_USER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/event_loop.h"
#include "core/guest_mem.h"
#include "transport/vhost_user_proto.h"
#include "virtio/device.h"

struct vhost_user_server;

struct vhost_user_opts {
	/* Protocol features offered (VHOST_USER_PF(...) bits); masked by
	 * VHOST_USER_PROTOCOL_FEATURES_SUPPORTED. Clear INBAND_NOTIFICATIONS
	 * to make a front-end such as UML use kick and call fds. */
	uint64_t protocol_features;
	/* Called after a front-end went away and the device was reset
	 * (for example to quit after one session). May be NULL. */
	void (*on_disconnect)(struct vhost_user_server *s, void *opaque);
	void *opaque;
	/* What GET_QUEUE_NUM answers; 0: derived from the device, its queue
	 * count (max_queues when set), halved for a net device (VIRTIO_ID_NET)
	 * since QEMU's and DPDK's net code read it as queue *pairs*. */
	uint64_t queue_num;
};

#define VHOST_USER_OPTS_DEFAULT \
	((struct vhost_user_opts){ .protocol_features = VHOST_USER_PROTOCOL_FEATURES_SUPPORTED })

/*
 * Counters, <direction>_<object>_<event>; rx is from the front-end, tx to it.
 * They span connections.
 */
#define VHOST_USER_COUNTERS(X) \
	X(connections,             "front-ends accepted") \
	X(disconnects_error,       "connections ended by a protocol error") \
	X(rx_messages,             "requests handled") \
	X(rx_messages_invalid,     "requests refused by validation or their handler") \
	X(rx_messages_unknown,     "requests of a type the server does not serve") \
	X(rx_messages_oversized,   "headers announcing a payload over the largest valid one (closed)") \
	X(rx_mem_tables_refused,   "memory tables refused: too many, empty, wrapping, overlapping or unmappable regions") \
	X(rx_fds_unused,           "received fds closed without use") \
	X(rx_kicks,                "kicks, by fd or in-band VRING_KICK") \
	X(tx_replies,              "replies and acks sent") \
	X(tx_calls,                "used-buffer interrupts sent (fd or in-band)") \
	X(tx_calls_coalesced,      "interrupts not sent: one already pending") \
	X(tx_calls_dropped,        "interrupts lost: no call fd or channel, or it failed") \
	X(tx_config_changes,       "config change messages sent") \
	X(device_activations,      "times the device was activated on its ready rings") \
	X(device_activate_failed,  "activations the device or queue checks refused")

struct vhost_user_counters {
	VHOST_USER_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set vhost_user_counter_set;

struct vhost_user_vring;   /* per-ring session state, private */
struct vhost_user_rx;      /* partial-message buffer, private */

struct vhost_user_server {
	struct virtio_transport transport;   /* dev->transport points here */
	struct virtio_device *dev;
	struct event_loop *loop;
	struct vhost_user_opts opts;
	char *socket_path;                   /* NULL: no listener (adopted fd) */

	int listen_fd;
	struct event_source listen_src;
	int conn_fd;                         /* -1 when no front-end */
	struct event_source conn_src;
	int backend_fd;                      /* SET_BACKEND_REQ_FD channel, or -1 */
	struct event_source backend_src;
	bool backend_wants_out;              /* calls wait for room on the channel */
	bool config_pending;                 /* a config change waits for room */

	/* Session state, cleared at every disconnect. */
	bool owner;                          /* SET_OWNER seen */
	bool protocol_features_acked;        /* SET_FEATURES had bit 30 */
	uint64_t protocol_features;          /* negotiated */
	unsigned warn_budget;                /* peer-error messages left to log */
	struct guest_mem mem;                /* the front-end's memory table */
	/* Every queue the device can have (dev->max_queues), not only those
	 * the features gave it: QEMU sets the call fd of every ring at start
	 * and disables the rings of queue pairs the driver does not use. */
	unsigned nrings;
	struct vhost_user_vring *vrings;     /* nrings of them */
	struct vhost_user_rx *rx;

	struct vhost_user_counters counters;
	/* Guards vrings[].call_fd and call_is_socket: the loop thread changes
	 * them under it, device workers signal through them under it
	 * (transport op signal_used_direct). */
	pthread_mutex_t call_lock;
};

/*
 * Serve @dev on @socket_path (a stale socket file there is removed first; a
 * live server or a non-socket file there is an error; -ENAMETOOLONG when the
 * path does not fit a sockaddr_un). With @socket_path NULL there is no
 * listener: hand a connected socket to vhost_user_server_adopt. @opts may be
 * NULL for VHOST_USER_OPTS_DEFAULT. Sets dev->transport. Returns 0 or -errno.
 */
int vhost_user_server_init(struct vhost_user_server *s, struct virtio_device *dev,
			   struct event_loop *loop, const char *socket_path,
			   const struct vhost_user_opts *opts);

/* Disconnect any front-end (the device is reset), stop listening, remove the
 * socket file, free everything. */
void vhost_user_server_destroy(struct vhost_user_server *s);

/*
 * Serve an already connected socket (the spec's --fd convention, tests,
 * fuzzing). The server owns @fd from now on, even on error. -EBUSY when a
 * front-end is already connected.
 */
int vhost_user_server_adopt(struct vhost_user_server *s, int fd);

static inline bool vhost_user_server_connected(const struct vhost_user_server *s)
{
	return s->conn_fd >= 0;
}

/* Print counters, one "vhost_user_<name> <value>" per line. */
/* "vhost_user_<name> <value>" (the loop thread). */
void vhost_user_server_visit_counters(const struct vhost_user_server *s,
				      const struct counter_sink *sink);
void vhost_user_server_dump_counters(const struct vhost_user_server *s, FILE *out);

#endif
