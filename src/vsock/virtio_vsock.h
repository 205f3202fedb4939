/*
 * virtio-vsock (virtio 1.2, 5.10) with Firecracker's hybrid vsock: stream
 * connections between the guest and host processes on unix sockets
 * (vsock_uds.h says how the two sides meet). Queues: rx (0, device to
 * guest), tx (1, guest to device), event (2: the transport reset after a
 * restore). Config space: the guest's CID. Only STREAM sockets
 * (VIRTIO_VSOCK_F_SEQPACKET is not offered).
 *
 * Snapshots (virtio_vsock_state.c, section "VSCK"): the CID, the socket
 * path and the next host port; never the connections, which are host
 * sockets. A restored device, at its first resume, puts
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET in the guest's next event buffer, as
 * Firecracker does: the driver drops every connection and reads the CID
 * again. Nothing goes to the guest's receive queue until the driver
 * acknowledges the event by giving the buffer back (its kick on the event
 * queue), so no packet of a new connection reaches it before the reset.
 *
 * Counters: rx is toward the guest, tx from it, as for virtio-net.
 *
 * Bounds: at most max_conns connections (host clients still saying CONNECT
 * included; more are refused with RST or closed, and counted); per
 * connection VSOCK_CONN_BUF_SIZE bytes buffered from the guest, which the
 * credit protocol keeps it to (more resets the connection); nothing buffered
 * toward the guest (the socket is read only into a receive buffer the guest
 * gave, and only as far as the guest's credit); at most VSOCK_RST_QUEUE RST
 * replies waiting for receive buffers (more are dropped and counted). A host
 * client has VSOCK_CONNECT_TIMEOUT_MS to send its line and the guest as
 * long to answer the REQUEST.
 *
 * Every packet with a malformed header, a length beyond its chain or an
 * address other than guest -> host is dropped and counted; one of another
 * type, for no connection or against the connection's state is answered
 * with RST. Everything runs on the device's loop: kicks, the sockets, the
 * timers; the vCPUs never touch a socket.
 */
#ifndef KVMINI_VSOCK_VIRTIO_VSOCK_H
#define KVMINI_VSOCK_VIRTIO_VSOCK_H

#include <stdint.h>

#include "core/counters.h"
#include "core/event_loop.h"
#include "virtio/device.h"
#include "virtio/virtqueue.h"
#include "vsock/vsock_conn.h"
#include "vsock/vsock_uds.h"

struct errbuf;

enum { VSOCK_RX_QUEUE = 0, VSOCK_TX_QUEUE = 1, VSOCK_EVENT_QUEUE = 2, VSOCK_NUM_QUEUES = 3 };

#define VSOCK_MAX_CONNS_DEFAULT 256u
#define VSOCK_RST_QUEUE 64u
#define VSOCK_CONNECT_TIMEOUT_MS 2000u
/* The first host-side port of a host-initiated connection (Firecracker's). */
#define VSOCK_LOCAL_PORT_FIRST (1u << 30)

#define VIRTIO_VSOCK_COUNTERS(X) \
	X(tx_packets,               "packets the guest sent") \
	X(tx_bytes,                 "stream bytes from the guest taken for the host") \
	X(rx_packets,               "packets written to the guest") \
	X(rx_bytes,                 "stream bytes from the host written to the guest") \
	X(tx_chains_invalid,        "transmit chains the queue refused: completed with 0") \
	X(tx_packets_malformed,     "packets dropped: header short, or len beyond the chain") \
	X(tx_packets_bad_cid,       "packets dropped: not from the guest's CID to the host") \
	X(tx_packets_bad_type,      "packets not of the stream type: answered with RST") \
	X(tx_packets_no_conn,       "packets for no connection, or against its state: RST") \
	X(tx_credit_exceeded,       "connections reset: the guest sent beyond its credit") \
	X(rx_chains_invalid,        "receive chains refused (readable, or under a header): 0") \
	X(rx_rst_dropped,           "RST replies dropped: too many waited for receive buffers") \
	X(tx_conns_opened,          "guest-initiated connections made to a host listener") \
	X(tx_conns_refused,         "guest-initiated connections refused: no host listener (RST)") \
	X(rx_conns_opened,          "host-initiated connections the guest accepted") \
	X(rx_conns_refused,         "host-initiated connections the guest refused (RST)") \
	X(rx_conns_bad_command,     "host clients closed: not a CONNECT line") \
	X(rx_conns_timed_out,       "host clients closed: no CONNECT line or guest answer in time") \
	X(tx_conns_cap_refused,     "guest connections refused (RST): the connection cap") \
	X(rx_conns_cap_refused,     "host clients closed at once: the connection cap") \
	X(tx_conns_reset,           "connections the guest reset") \
	X(rx_conns_reset,           "connections the device reset (socket error, protocol)") \
	X(tx_conns_closed,          "connections ended cleanly after both sides shut down") \
	X(tx_socket_write_failed,   "connections reset: writing to the host socket failed") \
	X(rx_socket_read_failed,    "connections reset: reading the host socket failed") \
	X(rx_queue_poisoned,        "times the receive queue was found broken (NEEDS_RESET)") \
	X(tx_queue_poisoned,        "times the transmit queue was found broken (NEEDS_RESET)")

struct virtio_vsock_counters {
	VIRTIO_VSOCK_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set virtio_vsock_counter_set;

struct virtio_vsock_opts {
	uint64_t guest_cid;           /* 3 .. 2^32 - 1 */
	const char *uds_path;         /* P: clients connect here; P_N for guest port N */
	int listen_fd;                /* a socket listening on P, or -1; taken on success */
	unsigned max_conns;           /* 0: VSOCK_MAX_CONNS_DEFAULT */
};

struct virtio_vsock {
	struct virtio_device vdev;
	struct virtqueue vqs[VSOCK_NUM_QUEUES];
	struct vq_chain chain;
	struct iovec data_iov[VQ_CHAIN_MAX_IOV];  /* a receive chain past its header */
	uint64_t guest_cid;
	char uds_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	struct event_source listen_src;
	struct vsock_conn *conns;
	unsigned max_conns;
	unsigned rx_cursor;           /* where the next look for receive work starts */
	uint32_t next_local_port;
	/* RST replies for packets that have no connection: (host, guest) ports. */
	struct { uint32_t local, peer; } rst[VSOCK_RST_QUEUE];
	unsigned rst_head, rst_len;
	struct event_deferred rx_more, tx_more;
	bool reset_on_resume;         /* restored: send TRANSPORT_RESET at resume */
	bool event_ack_pending;       /* a reset sent, the driver has not given its buffer back */
	struct virtio_vsock_counters counters;  /* loop thread only */
};

/* Valid guest CIDs: 0..2 are reserved (hypervisor, local, host) and the
 * header's 64-bit field carries 32 bits in practice (Linux, Firecracker). */
static inline bool virtio_vsock_cid_valid(uint64_t cid)
{
	return cid >= 3 && cid <= UINT32_MAX;
}

/* Set up @vs on @loop: listen on the path (or take opts->listen_fd). 0, or
 * -errno with why in @eb. */
int virtio_vsock_init(struct virtio_vsock *vs, struct event_loop *loop,
		      const struct virtio_vsock_opts *opts, struct errbuf *eb);
/* After the transport has let go of the device: every connection closed,
 * the listener closed and its socket file removed. */
void virtio_vsock_destroy(struct virtio_vsock *vs);
/* The device's own snapshot state (virtio_device_ops.save_state and
 * .load_state; virtio_vsock_state.c). */
int virtio_vsock_save_state(struct virtio_device *vdev, struct state_writer *w, struct errbuf *eb);
bool virtio_vsock_load_state(struct virtio_device *vdev, const struct virtio_device_state *core,
			     struct state_reader *r);
/* Connections in use (any state). */
unsigned virtio_vsock_conns(const struct virtio_vsock *vs);

#endif
