/*
 * Offloads finished in software: a frame the guest sent with NEEDS_CSUM or
 * a GSO type, going to a backend that takes only plain frames (libslirp,
 * the stream socket, the metadata endpoint). The frame is copied out of the
 * guest's buffer once, its checksum completed or its segments built one by
 * one (net/offload.h), and each is sent as a plain frame.
 */
#ifndef KVMINI_NET_SOFT_TX_H
#define KVMINI_NET_SOFT_TX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net/backend.h"
#include "net/offload.h"

/* The most segments one frame is cut into here: 64 KiB in 64-byte
 * segments. A guest asking for more (a gso_size of a few bytes) would
 * have kvmini send tens of thousands of frames for one; it is refused. */
#define NET_SOFT_SEGMENTS_MAX 1024u

struct net_soft_tx {
	uint8_t *frame;        /* the frame, linear (NET_OFFLOAD_FRAME_MAX) */
	uint8_t *seg;          /* the segment being sent (NET_OFFLOAD_FRAME_MAX) */
	/* The first segment not yet sent: a backend that says -EAGAIN in the
	 * middle of a frame gets the same frame again later, from here. */
	unsigned next;
};

/* 0 or -ENOMEM. */
int net_soft_tx_init(struct net_soft_tx *s);
void net_soft_tx_destroy(struct net_soft_tx *s);

/*
 * Send the frame at @iov (@len bytes, without the vnet header) that @h
 * (checked, not plain) describes to @be as plain frames. Returns the number
 * of frames the backend took in this call, -EAGAIN when it was full (call
 * again with the same frame: s->next says where it goes on), or -errno when
 * the rest of the frame is lost (-EMSGSIZE: more than NET_SOFT_SEGMENTS_MAX
 * segments). Backends of plain frames copy what they
 * send: none keeps the buffer (NET_SEND_KEPT is a loss here).
 */
int net_soft_tx_send(struct net_soft_tx *s, struct net_backend *be,
		     const struct virtio_net_hdr_v1 *h, const struct iovec *iov,
		     unsigned iovcnt, size_t len);

#endif
