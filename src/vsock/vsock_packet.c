/* virtio-vsock headers (see vsock_packet.h). */
#include "vsock/vsock_packet.h"

#include <endian.h>

#include "core/guest_mem.h"

enum vsock_parse_result vsock_hdr_read(const struct iovec *iov, unsigned n, uint64_t avail,
				       struct vsock_hdr *h)
{
	struct virtio_vsock_hdr raw;

	if (avail < VSOCK_HDR_LEN || iov_to_buf(iov, n, 0, &raw, sizeof(raw)) < sizeof(raw))
		return VSOCK_PARSE_SHORT;
	*h = (struct vsock_hdr){
		.src_cid = le64toh(raw.src_cid), .dst_cid = le64toh(raw.dst_cid),
		.src_port = le32toh(raw.src_port), .dst_port = le32toh(raw.dst_port),
		.len = le32toh(raw.len), .type = le16toh(raw.type), .op = le16toh(raw.op),
		.flags = le32toh(raw.flags), .buf_alloc = le32toh(raw.buf_alloc),
		.fwd_cnt = le32toh(raw.fwd_cnt),
	};
	return h->len > avail - VSOCK_HDR_LEN ? VSOCK_PARSE_LEN : VSOCK_PARSE_OK;
}

size_t vsock_hdr_write(const struct iovec *iov, unsigned n, const struct vsock_hdr *h)
{
	const struct virtio_vsock_hdr raw = {
		.src_cid = htole64(h->src_cid), .dst_cid = htole64(h->dst_cid),
		.src_port = htole32(h->src_port), .dst_port = htole32(h->dst_port),
		.len = htole32(h->len), .type = htole16(h->type), .op = htole16(h->op),
		.flags = htole32(h->flags), .buf_alloc = htole32(h->buf_alloc),
		.fwd_cnt = htole32(h->fwd_cnt),
	};

	return iov_from_buf(iov, n, 0, &raw, sizeof(raw));
}

const char *vsock_op_str(uint16_t op)
{
	static const char *const names[] = {
		[VIRTIO_VSOCK_OP_REQUEST] = "REQUEST", [VIRTIO_VSOCK_OP_RESPONSE] = "RESPONSE",
		[VIRTIO_VSOCK_OP_RST] = "RST", [VIRTIO_VSOCK_OP_SHUTDOWN] = "SHUTDOWN",
		[VIRTIO_VSOCK_OP_RW] = "RW", [VIRTIO_VSOCK_OP_CREDIT_UPDATE] = "CREDIT_UPDATE",
		[VIRTIO_VSOCK_OP_CREDIT_REQUEST] = "CREDIT_REQUEST",
	};

	return op < sizeof(names) / sizeof(names[0]) && names[op] ? names[op] : "unknown";
}
