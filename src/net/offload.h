/*
 * virtio-net offloads in software (virtio 1.x section 5.1.6.2): the checks
 * a TX header must pass before any backend sees it, and, for backends that
 * take only plain frames (libslirp, the stream socket, the metadata
 * endpoint), checksum completion and segmentation of the frames a guest
 * sent with NEEDS_CSUM or a GSO type.
 *
 * Pure functions over bytes: no device, no backend, no allocation. The
 * frame is linear here (the device copies a chain that needs finishing into
 * one buffer first: a GSO frame is at most 64 KiB).
 */
#ifndef KVMINI_NET_OFFLOAD_H
#define KVMINI_NET_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h>

/* Newer than the uapi headers Debian 12 ships. */
#ifndef VIRTIO_NET_F_HOST_USO
#define VIRTIO_NET_F_GUEST_USO4 54
#define VIRTIO_NET_F_GUEST_USO6 55
#define VIRTIO_NET_F_HOST_USO 56
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

#define NET_F(bit) (1ull << (bit))
/* What the driver may ask of the device on TX. */
#define NET_HOST_OFFLOADS (NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) | \
			   NET_F(VIRTIO_NET_F_HOST_TSO6) | NET_F(VIRTIO_NET_F_HOST_ECN) | \
			   NET_F(VIRTIO_NET_F_HOST_UFO) | NET_F(VIRTIO_NET_F_HOST_USO))
/* What the device may hand the driver on RX. */
#define NET_GUEST_OFFLOADS (NET_F(VIRTIO_NET_F_GUEST_CSUM) | NET_F(VIRTIO_NET_F_GUEST_TSO4) | \
			    NET_F(VIRTIO_NET_F_GUEST_TSO6) | NET_F(VIRTIO_NET_F_GUEST_ECN) | \
			    NET_F(VIRTIO_NET_F_GUEST_UFO) | NET_F(VIRTIO_NET_F_GUEST_USO4) | \
			    NET_F(VIRTIO_NET_F_GUEST_USO6))
/* What kvmini finishes in software for a backend of plain frames:
 * checksums, and TCP and UDP (USO) segmentation. UFO (IP fragmentation)
 * is not done in software, so it is offered only by backends that take it. */
#define NET_SOFT_OFFLOADS (NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) | \
			   NET_F(VIRTIO_NET_F_HOST_TSO6) | NET_F(VIRTIO_NET_F_HOST_ECN) | \
			   NET_F(VIRTIO_NET_F_HOST_USO))

/* The largest frame a header may describe (a 64 KiB IP datagram with
 * Ethernet and VLAN headers), header excluded. */
#define NET_OFFLOAD_FRAME_MAX 65557u
/* Bytes of a frame's head net_tx_hdr_check reads: Ethernet, two VLAN
 * tags, IPv6 with room for options, and a TCP header with options. */
#define NET_OFFLOAD_HEAD_MAX 256u

/* Why a TX header was refused (each a counter's reason in the device). */
enum net_hdr_fault {
	NET_HDR_OK = 0,
	NET_HDR_BAD_FLAGS,        /* DATA_VALID or RSC_INFO, flags only a device sets
				   * (bits the spec lacks are ignored: 5.1.6.2.2) */
	NET_HDR_CSUM_UNACKED,     /* NEEDS_CSUM without VIRTIO_NET_F_CSUM */
	NET_HDR_CSUM_RANGE,       /* csum_start / csum_offset outside the frame */
	NET_HDR_GSO_UNACKED,      /* a GSO type (or ECN) whose HOST_ feature was not acked */
	NET_HDR_GSO_BAD,          /* unknown type, no NEEDS_CSUM, gso_size 0, or headers
				   * that are not the type's (IPv4 TCP for TCPV4, ...) */
};

/*
 * Check the header a guest sent with a frame of @frame_len bytes, whose
 * first @head_len bytes (up to NET_OFFLOAD_HEAD_MAX) are at @head, against
 * the features it acked. On NET_HDR_OK, *@out is the header to pass on:
 * the guest's NEEDS_CSUM, gso_type, gso_size, csum_start and csum_offset,
 * hdr_len recomputed from the frame's own headers (never the guest's),
 * and num_buffers 0; a GSO_NONE header carries no gso_size or hdr_len, one
 * without NEEDS_CSUM no csum_start or csum_offset. On a fault *@out is
 * left as it was.
 */
enum net_hdr_fault net_tx_hdr_check(const struct virtio_net_hdr_v1 *in, uint64_t acked,
				    const uint8_t *head, size_t head_len, size_t frame_len,
				    struct virtio_net_hdr_v1 *out);

const char *net_hdr_fault_str(enum net_hdr_fault f);

/* Is a checked header plain: no checksum to complete, no segmentation? */
static inline bool net_hdr_is_plain(const struct virtio_net_hdr_v1 *h)
{
	return !(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	       h->gso_type == VIRTIO_NET_HDR_GSO_NONE;
}

/* Write the Internet checksum a checked NEEDS_CSUM header asks for into
 * the linear frame (at csum_start + csum_offset, summed from csum_start
 * on, the pseudo-header's partial sum already in place as Linux leaves it). */
void net_csum_complete(uint8_t *frame, size_t len, const struct virtio_net_hdr_v1 *h);

/*
 * Software GSO for a checked header of type TCPV4, TCPV6 (ECN included)
 * or UDP_L4 over a linear frame: segment @index of the frame, built in
 * @seg (room for hdr_len + gso_size bytes, at most NET_OFFLOAD_FRAME_MAX)
 * with its own IP length, IPv4 id and header checksum, TCP sequence number
 * and flags (FIN and PSH on the last segment only, CWR on the first) or UDP
 * length, and a complete L4 checksum. Returns the segment's length, or 0
 * when @index is past the last segment. The number of segments is
 * net_gso_segments() (0 for a type not segmented here: GSO_NONE, UDP). A
 * frame no longer than one segment comes back whole, its checksum completed.
 */
size_t net_gso_segment(const uint8_t *frame, size_t len, const struct virtio_net_hdr_v1 *h,
		       unsigned index, uint8_t *seg);
unsigned net_gso_segments(size_t len, const struct virtio_net_hdr_v1 *h);

/* Check a header the backend produced on RX (a tap's, a loopback's) against
 * what the guest acked: DATA_VALID and NEEDS_CSUM need GUEST_CSUM, each GSO
 * type its GUEST_ feature, and csum_start/offset must lie in the frame.
 * true when the frame may go to the guest with it. */
bool net_rx_hdr_allowed(const struct virtio_net_hdr_v1 *h, uint64_t acked, size_t frame_len);

#endif
