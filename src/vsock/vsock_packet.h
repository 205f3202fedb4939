/*
 * virtio-vsock packet headers (virtio 1.2, 5.10.6): the 44-byte
 * little-endian header (linux/virtio_vsock.h) in host order, read from the
 * driver-readable part of a TX chain and written into the device-writable
 * part of an RX chain. The guest may cut the header anywhere across its
 * descriptors, so both directions go through the chain's iovecs, never a
 * pointer into one buffer.
 */
#ifndef KVMINI_VSOCK_VSOCK_PACKET_H
#define KVMINI_VSOCK_VSOCK_PACKET_H

#include <stdint.h>
#include <sys/uio.h>
#include <linux/virtio_vsock.h>

#define VSOCK_HDR_LEN ((uint32_t)sizeof(struct virtio_vsock_hdr))
/* The host's address (virtio 1.2, 5.10.4: CID 2 is the host). */
#define VSOCK_HOST_CID 2u

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;                 /* payload bytes after the header */
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc, fwd_cnt;  /* the sender's credit (5.10.6.3) */
};

enum vsock_parse_result {
	VSOCK_PARSE_OK,
	VSOCK_PARSE_SHORT,            /* fewer readable bytes than a header */
	VSOCK_PARSE_LEN,              /* len claims more payload than the chain carries */
};

/* Read the header from the first bytes of @iov (@avail readable bytes in
 * all) and check its length against them. */
enum vsock_parse_result vsock_hdr_read(const struct iovec *iov, unsigned n, uint64_t avail,
				       struct vsock_hdr *h);

/* Write @h at the start of @iov; the bytes written (VSOCK_HDR_LEN, or
 * fewer when the buffers are shorter). */
size_t vsock_hdr_write(const struct iovec *iov, unsigned n, const struct vsock_hdr *h);

const char *vsock_op_str(uint16_t op);

#endif
