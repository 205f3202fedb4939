/*
 * virtio-net offloads in software (virtio 1.x section 5.1.6.2, 5.1.6.4).
 * Order of this file: byte access and the Internet checksum, the frame's
 * own headers, the TX header check, checksum completion, segmentation,
 * the RX header check.
 *
 * Every field of the virtio-net header is little-endian (a little-endian
 * host reads it in place); every field inside the frame is big-endian and
 * read byte by byte, at any alignment.
 */
#include "net/offload.h"

#include <string.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include "core/byteorder.h"
#include "core/compiler.h"

#define VLAN_HLEN 4u
#define VLAN_TAGS_MAX 2u             /* an 802.1ad tag and an 802.1Q one */
#define IP4_HLEN 20u
#define IP6_HLEN 40u
#define TCP_HLEN 20u
#define UDP_HLEN 8u
#define TCP_CSUM_OFF 16u             /* the checksum field in the TCP header */
#define UDP_CSUM_OFF 6u
#define IP4_FRAG_MASK 0x3fffu        /* MF and the fragment offset */
#define IP_LEN_MAX 0xffffu           /* what a 16-bit length field holds */

#define TCP_FIN 0x01u
#define TCP_PSH 0x08u
#define TCP_CWR 0x80u

#define GSO_TYPE_MASK ((uint8_t)~VIRTIO_NET_HDR_GSO_ECN)

/* --- bytes and the Internet checksum ------------------------------------- */

/*
 * Add @p[0..len) to a one's-complement accumulator (RFC 1071), 32 bits at
 * a time in host order: the sum of byte-swapped words is the byte-swapped
 * sum (RFC 1071 2(B)), so csum_fold swaps once at the end, and 2^16 = 1
 * modulo 0xffff lets a 32-bit word stand for its two halves. Each buffer
 * summed is a run of whole 16-bit words of the checksummed data but for a
 * last odd byte, which counts as the high byte of a word.
 */
static uint64_t csum_add(uint64_t acc, const uint8_t *p, size_t len)
{
	size_t i = 0;
	uint32_t w;

	for (; i + 4 <= len; i += 4) {
		memcpy(&w, p + i, sizeof(w));
		acc += w;
	}
	for (; i + 2 <= len; i += 2)
		acc += (uint32_t)(p[i] | p[i + 1] << 8);
	if (i < len)
		acc += p[i];
	return acc;
}

/* The accumulator folded to 16 bits, as the value of a big-endian word. */
static uint16_t csum_fold(uint64_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return __builtin_bswap16((uint16_t)acc);
}

/* The checksum a TCP or UDP header stores: the complement of the sum, a
 * complement of 0 stored as 0xffff, the other zero of one's complement
 * (a receiver's sum comes out the same), since to UDP a checksum of 0
 * means none was computed (RFC 768). */
static uint16_t csum_l4(uint64_t acc)
{
	uint16_t c = (uint16_t)~csum_fold(acc);

	return c ? c : 0xffff;
}

/* --- the frame's own headers --------------------------------------------- */

/* Where a GSO frame's headers are, as offsets into the frame. */
struct frame_layout {
	size_t l3;          /* the IP header */
	size_t l4;          /* the TCP or UDP header */
	size_t hdr_len;     /* every header, the L4 one included */
	uint8_t proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	bool v6;
};

/* The ethertype after Ethernet and up to two VLAN tags, with where the IP
 * header starts in *@l3; 0 if @n bytes do not hold them. */
static uint16_t parse_eth(const uint8_t *p, size_t n, size_t *l3)
{
	size_t at = ETH_HLEN - 2;        /* the ethertype, moved on by each tag */

	for (unsigned tags = 0; at + 2 <= n; tags++) {
		uint16_t type = get_be16(p + at);
		if (type != ETH_P_8021Q && type != ETH_P_8021AD) {
			*l3 = at + 2;
			return type;
		}
		if (tags == VLAN_TAGS_MAX)
			return 0;
		at += VLAN_HLEN;
	}
	return 0;
}

/* IPv4 of version 4, IHL >= 5 (options allowed: each segment copies them),
 * and not a fragment: only a whole datagram can be segmented. */
static bool parse_ip4(const uint8_t *p, size_t n, struct frame_layout *lo)
{
	const uint8_t *ip = p + lo->l3;

	if (lo->l3 + IP4_HLEN > n || ip[0] >> 4 != 4 || (ip[0] & 0xf) < IP4_HLEN / 4)
		return false;
	if (get_be16(ip + 6) & IP4_FRAG_MASK)
		return false;
	lo->l4 = lo->l3 + (ip[0] & 0xfu) * 4;
	lo->proto = ip[9];
	lo->v6 = false;
	return lo->l4 <= n;
}

/* IPv6 without extension headers: the next header is the L4 one. */
static bool parse_ip6(const uint8_t *p, size_t n, struct frame_layout *lo)
{
	const uint8_t *ip = p + lo->l3;

	if (lo->l3 + IP6_HLEN > n || ip[0] >> 4 != 6)
		return false;
	lo->l4 = lo->l3 + IP6_HLEN;
	lo->proto = ip[6];
	lo->v6 = true;
	return true;
}

/* TCP (data offset >= 5 words, options included) or UDP; sets hdr_len. */
static bool parse_l4(const uint8_t *p, size_t n, struct frame_layout *lo)
{
	if (lo->proto == IPPROTO_UDP) {
		lo->hdr_len = lo->l4 + UDP_HLEN;
		return lo->hdr_len <= n;
	}
	if (lo->proto != IPPROTO_TCP || lo->l4 + TCP_HLEN > n)
		return false;
	size_t doff = (p[lo->l4 + 12] >> 4) * 4u;
	lo->hdr_len = lo->l4 + doff;
	return doff >= TCP_HLEN && lo->hdr_len <= n;
}

/* The headers of a GSO frame, all within its first @n bytes. */
static bool parse_headers(const uint8_t *p, size_t n, struct frame_layout *lo)
{
	uint16_t type = parse_eth(p, n, &lo->l3);

	if (type == ETH_P_IP) {
		if (!parse_ip4(p, n, lo))
			return false;
	} else if (type != ETH_P_IPV6 || !parse_ip6(p, n, lo)) {
		return false;
	}
	return parse_l4(p, n, lo);
}

/* The protocols a GSO type names: TCPV4 IPv4 TCP, TCPV6 IPv6 TCP, UDP
 * (UFO) and UDP_L4 (USO) UDP over either IP. */
static bool layout_is_type(const struct frame_layout *lo, unsigned type)
{
	switch (type) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return lo->proto == IPPROTO_TCP && !lo->v6;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return lo->proto == IPPROTO_TCP && lo->v6;
	case VIRTIO_NET_HDR_GSO_UDP:
	case VIRTIO_NET_HDR_GSO_UDP_L4:
		return lo->proto == IPPROTO_UDP;
	default:
		return false;
	}
}

static size_t l4_csum_offset(const struct frame_layout *lo)
{
	return lo->proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF;
}

/* The IP length field can hold the frame's datagram (IPv4 total length,
 * IPv6 payload length: no jumbograms), so it holds every segment's. */
static bool ip_len_fits(const struct frame_layout *lo, size_t frame_len)
{
	size_t ip_len = frame_len - lo->l3;

	return (lo->v6 ? ip_len - IP6_HLEN : ip_len) <= IP_LEN_MAX;
}

/* --- TX: the header a guest sent ----------------------------------------- */

static bool gso_is_tcp(unsigned type)
{
	return type == VIRTIO_NET_HDR_GSO_TCPV4 || type == VIRTIO_NET_HDR_GSO_TCPV6;
}

/* The HOST_ feature a TX GSO type needs; 0 for a type the spec lacks. */
static uint64_t tx_gso_feature(unsigned type)
{
	switch (type) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return NET_F(VIRTIO_NET_F_HOST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return NET_F(VIRTIO_NET_F_HOST_TSO6);
	case VIRTIO_NET_HDR_GSO_UDP:
		return NET_F(VIRTIO_NET_F_HOST_UFO);
	case VIRTIO_NET_HDR_GSO_UDP_L4:
		return NET_F(VIRTIO_NET_F_HOST_USO);
	default:
		return 0;
	}
}

/* NEEDS_CSUM: acked, and the field to write inside the frame. */
static enum net_hdr_fault check_csum(const struct virtio_net_hdr_v1 *in, uint64_t acked,
				     size_t frame_len)
{
	if (!(in->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return NET_HDR_OK;
	if (!(acked & NET_F(VIRTIO_NET_F_CSUM)))
		return NET_HDR_CSUM_UNACKED;
	if ((size_t)in->csum_start + in->csum_offset + 2 > frame_len)
		return NET_HDR_CSUM_RANGE;
	return NET_HDR_OK;
}

/* gso_type against the acked features. ECN marks a TCP frame whose CWR
 * the segmentation must keep to the first segment (spec 5.1.6.2.1). */
static enum net_hdr_fault check_gso_type(uint8_t gso_type, uint64_t acked)
{
	unsigned type = gso_type & GSO_TYPE_MASK;
	bool ecn = gso_type & VIRTIO_NET_HDR_GSO_ECN;

	if (type == VIRTIO_NET_HDR_GSO_NONE)
		return ecn ? NET_HDR_GSO_BAD : NET_HDR_OK;
	uint64_t need = tx_gso_feature(type);
	if (!need)
		return NET_HDR_GSO_BAD;
	if (!(acked & need))
		return NET_HDR_GSO_UNACKED;
	if (ecn && !gso_is_tcp(type))
		return NET_HDR_GSO_BAD;
	if (ecn && !(acked & NET_F(VIRTIO_NET_F_HOST_ECN)))
		return NET_HDR_GSO_UNACKED;
	return NET_HDR_OK;
}

/*
 * A GSO header against the frame's own headers, which must lie in its
 * first @n bytes (n <= frame_len, so they fit the frame): NEEDS_CSUM and
 * an MSS, as the spec requires, the type's protocols, the checksum request
 * on the L4 header's checksum field (the segments' checksums are computed
 * there), and sizes every segment and its IP length field can hold. The
 * guest's hdr_len is not read: the layout gives it (spec 5.1.6.2.2: the
 * device must not rely on it).
 */
static enum net_hdr_fault check_gso_frame(const struct virtio_net_hdr_v1 *in, const uint8_t *head,
					  size_t n, size_t frame_len, struct frame_layout *lo)
{
	if (!(in->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || !in->gso_size)
		return NET_HDR_GSO_BAD;
	if (!parse_headers(head, n, lo) || !layout_is_type(lo, in->gso_type & GSO_TYPE_MASK))
		return NET_HDR_GSO_BAD;
	if (in->csum_start != lo->l4 || in->csum_offset != l4_csum_offset(lo))
		return NET_HDR_GSO_BAD;
	if (lo->hdr_len + in->gso_size > NET_OFFLOAD_FRAME_MAX)
		return NET_HDR_GSO_BAD;
	return ip_len_fits(lo, frame_len) ? NET_HDR_OK : NET_HDR_GSO_BAD;
}

/* The header passed on: the guest's requests, hdr_len from the frame's own
 * headers (0 for GSO_NONE), and zeros where the spec gives a field no use
 * (csum_start/offset without NEEDS_CSUM, gso_size without a GSO type). */
static void tx_hdr_out(const struct virtio_net_hdr_v1 *in, size_t hdr_len,
		       struct virtio_net_hdr_v1 *out)
{
	struct virtio_net_hdr_v1 o = { .gso_type = in->gso_type, .hdr_len = (uint16_t)hdr_len };

	if (in->gso_type != VIRTIO_NET_HDR_GSO_NONE)
		o.gso_size = in->gso_size;
	if (in->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		o.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		o.csum_start = in->csum_start;
		o.csum_offset = in->csum_offset;
	}
	*out = o;
}

enum net_hdr_fault net_tx_hdr_check(const struct virtio_net_hdr_v1 *in, uint64_t acked,
				    const uint8_t *head, size_t head_len, size_t frame_len,
				    struct virtio_net_hdr_v1 *out)
{
	struct frame_layout lo = { 0 };
	enum net_hdr_fault f;

	/* Flags only a device sets are refused; bits the spec does not define
	 * are ignored, as 5.1.6.2.2 requires, and not passed on. */
	if (in->flags & (VIRTIO_NET_HDR_F_DATA_VALID | VIRTIO_NET_HDR_F_RSC_INFO))
		return NET_HDR_BAD_FLAGS;
	f = check_csum(in, acked, frame_len);
	if (f == NET_HDR_OK)
		f = check_gso_type(in->gso_type, acked);
	if (f == NET_HDR_OK && in->gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		size_t n = MIN(MIN(head_len, frame_len), (size_t)NET_OFFLOAD_HEAD_MAX);
		f = check_gso_frame(in, head, n, frame_len, &lo);
	}
	if (f == NET_HDR_OK)
		tx_hdr_out(in, lo.hdr_len, out);
	return f;
}

const char *net_hdr_fault_str(enum net_hdr_fault f)
{
	switch (f) {
	case NET_HDR_OK:
		return "ok";
	case NET_HDR_BAD_FLAGS:
		return "rx-only flags";
	case NET_HDR_CSUM_UNACKED:
		return "checksum offload not acked";
	case NET_HDR_CSUM_RANGE:
		return "checksum outside the frame";
	case NET_HDR_GSO_UNACKED:
		return "gso type not acked";
	case NET_HDR_GSO_BAD:
		return "bad gso header";
	}
	return "unknown";
}

/* --- checksum completion ------------------------------------------------- */

void net_csum_complete(uint8_t *frame, size_t len, const struct virtio_net_hdr_v1 *h)
{
	size_t start = h->csum_start, at = start + h->csum_offset;

	/* A checked header never fails this; an unchecked one writes nothing. */
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || at + 2 > len)
		return;
	/* The field holds the pseudo-header's sum: it is summed with the rest. */
	put_be16(frame + at, csum_l4(csum_add(0, frame + start, len - start)));
}

/* --- segmentation --------------------------------------------------------- */

unsigned net_gso_segments(size_t len, const struct virtio_net_hdr_v1 *h)
{
	unsigned type = h->gso_type & GSO_TYPE_MASK;

	if (!gso_is_tcp(type) && type != VIRTIO_NET_HDR_GSO_UDP_L4)
		return 0;
	if (!h->gso_size || !h->hdr_len || h->hdr_len > len)
		return 0;
	size_t payload = len - h->hdr_len;
	/* Headers alone are one segment too. */
	if (payload <= h->gso_size)
		return 1;
	return (unsigned)((payload + h->gso_size - 1) / h->gso_size);
}

/* The segment's IP lengths; for IPv4 its id (the frame's plus @index, as
 * a TCP stack numbers its datagrams) and header checksum. */
static void seg_fix_ip(uint8_t *seg, const struct frame_layout *lo, size_t seg_len,
		       unsigned index)
{
	uint8_t *ip = seg + lo->l3;

	if (lo->v6) {
		put_be16(ip + 4, (uint16_t)(seg_len - lo->l4));
		return;
	}
	put_be16(ip + 2, (uint16_t)(seg_len - lo->l3));
	put_be16(ip + 4, (uint16_t)(get_be16(ip + 4) + index));
	put_be16(ip + 10, 0);
	put_be16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, lo->l4 - lo->l3)));
}

/* TCP: the segment's sequence number; FIN and PSH end the frame, so only
 * its last segment keeps them; CWR answers one congestion signal, so only
 * the first does (RFC 3168 6.1.2, as a TSO device does it). */
static void seg_fix_tcp(uint8_t *seg, const struct frame_layout *lo, unsigned index,
			unsigned count, uint16_t mss)
{
	uint8_t *th = seg + lo->l4;

	put_be32(th + 4, get_be32(th + 4) + (uint32_t)index * mss);
	if (index + 1 < count)
		th[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
	if (index > 0)
		th[13] &= (uint8_t)~TCP_CWR;
}

/* The pseudo-header's sum for @l4_len bytes of L4 (RFC 793 3.1 and RFC 768
 * for IPv4, RFC 8200 8.1 for IPv6), from the segment's own addresses. */
static uint64_t pseudo_sum(const uint8_t *ip, const struct frame_layout *lo, size_t l4_len)
{
	uint8_t ph[IP6_HLEN] = { 0 };

	if (lo->v6) {
		memcpy(ph, ip + 8, 32);                 /* source, destination */
		put_be32(ph + 32, (uint32_t)l4_len);
		ph[39] = lo->proto;
		return csum_add(0, ph, IP6_HLEN);
	}
	memcpy(ph, ip + 12, 8);
	ph[9] = lo->proto;
	put_be16(ph + 10, (uint16_t)l4_len);
	return csum_add(0, ph, 12);
}

/* The full L4 checksum over a fresh pseudo-header: the guest's partial sum
 * is for the whole frame's length, not the segment's. */
static void seg_fill_l4_csum(uint8_t *seg, const struct frame_layout *lo, size_t seg_len)
{
	size_t l4_len = seg_len - lo->l4;
	uint8_t *field = seg + lo->l4 + l4_csum_offset(lo);

	put_be16(field, 0);
	uint64_t acc = pseudo_sum(seg + lo->l3, lo, l4_len);
	put_be16(field, csum_l4(csum_add(acc, seg + lo->l4, l4_len)));
}

size_t net_gso_segment(const uint8_t *frame, size_t len, const struct virtio_net_hdr_v1 *h,
		       unsigned index, uint8_t *seg)
{
	unsigned count = net_gso_segments(len, h);
	struct frame_layout lo;

	if (index >= count)
		return 0;
	/* The layout again, from the frame: the header carries only hdr_len,
	 * which must agree with it (an unchecked header gets nothing). */
	if (!parse_headers(frame, MIN(len, (size_t)NET_OFFLOAD_HEAD_MAX), &lo) ||
	    lo.hdr_len != h->hdr_len || !layout_is_type(&lo, h->gso_type & GSO_TYPE_MASK))
		return 0;
	size_t off = (size_t)index * h->gso_size;
	size_t plen = MIN((size_t)h->gso_size, len - lo.hdr_len - off);
	size_t seg_len = lo.hdr_len + plen;

	memcpy(seg, frame, lo.hdr_len);
	memcpy(seg + lo.hdr_len, frame + lo.hdr_len + off, plen);
	seg_fix_ip(seg, &lo, seg_len, index);
	if (lo.proto == IPPROTO_TCP)
		seg_fix_tcp(seg, &lo, index, count, h->gso_size);
	else
		put_be16(seg + lo.l4 + 4, (uint16_t)(seg_len - lo.l4));
	seg_fill_l4_csum(seg, &lo, seg_len);
	return seg_len;
}

/* --- RX: the header a backend produced ------------------------------------- */

/* The GUEST_ features of which one lets a GSO type reach the guest. */
static uint64_t rx_gso_features(unsigned type)
{
	switch (type) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return NET_F(VIRTIO_NET_F_GUEST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return NET_F(VIRTIO_NET_F_GUEST_TSO6);
	case VIRTIO_NET_HDR_GSO_UDP:
		return NET_F(VIRTIO_NET_F_GUEST_UFO);
	case VIRTIO_NET_HDR_GSO_UDP_L4:
		/* The header does not say which IP version: either will do. */
		return NET_F(VIRTIO_NET_F_GUEST_USO4) | NET_F(VIRTIO_NET_F_GUEST_USO6);
	default:
		return 0;
	}
}

bool net_rx_hdr_allowed(const struct virtio_net_hdr_v1 *h, uint64_t acked, size_t frame_len)
{
	const uint8_t csum_flags = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
	unsigned type = h->gso_type & GSO_TYPE_MASK;

	/* RSC_INFO needs RSC_EXT, never offered; other bits mean nothing yet. */
	if (h->flags & ~csum_flags)
		return false;
	if (h->flags && !(acked & NET_F(VIRTIO_NET_F_GUEST_CSUM)))
		return false;
	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (size_t)h->csum_start + h->csum_offset + 2 > frame_len)
		return false;
	if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return true;
	if (!(acked & rx_gso_features(type)) || !h->gso_size)
		return false;
	if (!(h->gso_type & VIRTIO_NET_HDR_GSO_ECN))
		return true;
	return gso_is_tcp(type) && (acked & NET_F(VIRTIO_NET_F_GUEST_ECN));
}
