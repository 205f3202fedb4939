/*
 * One virtio-vsock stream connection between a guest port and a host unix
 * socket: its state, the bytes on their way from the guest to the socket,
 * and the credit both ways (virtio 1.2, 5.10.6.3).
 *
 * Credit: each side advertises buf_alloc (its buffer for the stream) and
 * fwd_cnt (bytes it has passed on); a sender may have at most
 * peer_buf_alloc - (tx_cnt - peer_fwd_cnt) bytes outstanding. The device's
 * buffer is VSOCK_CONN_BUF_SIZE bytes; a guest that sends more than that
 * allows is misbehaving and its connection is reset. Toward the guest the
 * device reads no more from the socket than the guest's credit allows, so
 * host bytes wait in the host kernel's socket buffer, not here.
 *
 * Counters are 32 bits and wrap, as the header's fields do. Loop thread.
 */
#ifndef KVMINI_VSOCK_VSOCK_CONN_H
#define KVMINI_VSOCK_VSOCK_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/event_loop.h"
#include "vsock/vsock_packet.h"

/* The device's buffer per connection, advertised as buf_alloc. */
#define VSOCK_CONN_BUF_SIZE (64u * 1024)

enum vsock_conn_state {
	VSOCK_CONN_FREE = 0,
	VSOCK_CONN_HANDSHAKE,      /* a host client accepted; its CONNECT line awaited */
	VSOCK_CONN_CONNECTING,     /* REQUEST owed or sent to the guest; RESPONSE awaited */
	VSOCK_CONN_ESTABLISHED,
};

/* Control packets owed to the guest, sent lowest bit first. */
enum vsock_owe {
	VSOCK_OWE_REQUEST  = 1u << 0,
	VSOCK_OWE_RESPONSE = 1u << 1,
	VSOCK_OWE_CREDIT   = 1u << 2,
	VSOCK_OWE_SHUTDOWN = 1u << 3,
	VSOCK_OWE_RST      = 1u << 4,   /* the last word: the slot is freed after it */
};

struct virtio_vsock;

struct vsock_conn {
	enum vsock_conn_state state;
	struct virtio_vsock *dev;        /* the owner, for the callbacks */
	uint32_t local_port;             /* the host side's port */
	uint32_t peer_port;              /* the guest's port */
	int fd;                          /* the unix socket; -1 once closed */
	struct event_source src;
	uint32_t watching;               /* epoll events src is registered for; 0: none */
	struct event_timer timer;        /* connect and handshake deadlines */

	/* Guest to host: a ring of bytes not yet written to the socket. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
	uint32_t fwd_cnt;                /* guest bytes written to the socket */
	uint32_t fwd_cnt_told;           /* the fwd_cnt the guest last heard */
	/* "OK <port>\n" for a host client, written before any data. */
	char reply[24];
	uint8_t reply_len, reply_off;

	/* Host to guest. */
	uint32_t tx_cnt;                 /* payload bytes sent to the guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt;

	unsigned owe;                    /* enum vsock_owe bits */
	bool readable;                   /* the socket may hold bytes for the guest */
	bool host_eof;                   /* the host end sends no more */
	bool peer_shut_rcv;              /* the guest takes no more */
	bool peer_shut_send;             /* the guest sends no more */
};

/* Take a free slot for @fd in @state; 0 or -ENOMEM. */
int vsock_conn_open(struct vsock_conn *c, struct virtio_vsock *dev, int fd,
		    enum vsock_conn_state state);
/* Close the socket and free the slot (the caller unwatches and disarms first). */
void vsock_conn_release(struct vsock_conn *c);

/* Bytes the guest lets the device send now (0 when it overstated fwd_cnt). */
uint32_t vsock_conn_peer_credit(const struct vsock_conn *c);
/* Take the guest's credit from a packet it sent. */
void vsock_conn_peer_update(struct vsock_conn *c, const struct vsock_hdr *h);

/* Append @len payload bytes from @iov (from byte @off on) to the buffer:
 * 0, or -ENOBUFS when they exceed what the device advertised. */
int vsock_conn_buf_put(struct vsock_conn *c, const struct iovec *iov, unsigned n, size_t off,
		       uint32_t len);
/* Bytes waiting for the socket, reply line included. */
uint32_t vsock_conn_pending(const struct vsock_conn *c);
/* Write what waits to the socket: 0 (all or some written; the rest waits
 * for EPOLLOUT) or -errno when the socket failed. */
int vsock_conn_flush(struct vsock_conn *c);
/* Should the guest hear of freed room now: it has been told of less than
 * half the buffer free and there is news. */
bool vsock_conn_credit_due(const struct vsock_conn *c);

/* A header from the host side of @c to the guest @guest_cid with @op. */
void vsock_conn_hdr(struct vsock_conn *c, uint64_t guest_cid, uint16_t op, struct vsock_hdr *h);

#endif
