/*
 * libFuzzer target: net/offload, the checks of the virtio-net header a
 * guest sends (and a backend hands up) and the software finishing of the
 * frames it describes.
 *
 * Input: the 12-byte struct virtio_net_hdr_v1 (little-endian), a u8 head
 * cut (0: the frame's first NET_OFFLOAD_HEAD_MAX bytes are the head, else
 * that many), a u16 count of bytes to append to the frame (a fixed pattern,
 * so that 64 KiB GSO frames cost a short input), then the frame.
 *
 * Checked besides ASan/UBSan:
 *  - the TX check under growing feature sets: a header taken under fewer
 *    features is taken under more, into the same header; what it gives
 *    out has num_buffers 0, only NEEDS_CSUM, a checksum field in the frame,
 *    hdr_len + gso_size within NET_OFFLOAD_FRAME_MAX;
 *  - a checked GSO frame's segments, each built in a buffer of exactly
 *    hdr_len + gso_size bytes: each no longer, all but the last exactly
 *    that long, lengths summing to hdr_len * n + payload, the payload put
 *    back together equal to the frame's, the headers before IP copied, the
 *    IPv4 header checksum and the L4 checksum right by the fuzzer's own
 *    reference sum over its own pseudo-header, nothing past the last;
 *  - a checked NEEDS_CSUM frame completed in a copy: only the field
 *    changes, and with the sum the field held it sums to 0xffff;
 *  - the RX check: allowed under fewer features means allowed under more;
 *    what is allowed has only NEEDS_CSUM/DATA_VALID and the range inside.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/compiler.h"
#include "net/offload.h"
#include "fuzz_input.h"

#define FAIL(...) FUZZ_FAIL("fuzz_offload", __VA_ARGS__)

/* Segments checked one by one up to this count; past it a sample (the
 * module's cost per segment is the same; the fuzzer's time is not). */
#define FULL_CHECK_SEGMENTS 256u

static uint8_t frame[NET_OFFLOAD_FRAME_MAX];

/* --- a reference checksum: 16-bit big-endian words --------------------------- */

static uint32_t ref_sum(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		sum += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t ref_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* --- the TX check ----------------------------------------------------------- */

/* Each a superset of the one before. */
static const uint64_t feature_sets[] = {
	0,
	NET_F(VIRTIO_NET_F_CSUM),
	NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_HOST_TSO4) | NET_F(VIRTIO_NET_F_HOST_TSO6),
	NET_SOFT_OFFLOADS,
	NET_HOST_OFFLOADS,
};

static void check_out(const struct virtio_net_hdr_v1 *o, size_t len)
{
	if (o->num_buffers || (o->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM))
		FAIL("checked header: flags %#x, num_buffers %u", o->flags, o->num_buffers);
	if ((o->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (size_t)o->csum_start + o->csum_offset + 2 > len)
		FAIL("checked header: checksum field past %zu", len);
	if (o->gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		if (o->gso_size || o->hdr_len)
			FAIL("GSO_NONE with gso_size %u hdr_len %u", o->gso_size, o->hdr_len);
		return;
	}
	if (!(o->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || !o->gso_size || o->hdr_len > len ||
	    o->hdr_len <= o->csum_start || (size_t)o->hdr_len + o->gso_size > NET_OFFLOAD_FRAME_MAX)
		FAIL("checked GSO header: hdr_len %u gso_size %u csum_start %u, frame %zu",
		     o->hdr_len, o->gso_size, o->csum_start, len);
}

/* Check under each feature set; the header taken under the largest, or
 * false. */
static bool tx_check_all(const struct virtio_net_hdr_v1 *in, size_t head_len, size_t len,
			 struct virtio_net_hdr_v1 *out)
{
	bool ok = false;

	for (size_t i = 0; i < ARRAY_SIZE(feature_sets); i++) {
		struct virtio_net_hdr_v1 o;
		enum net_hdr_fault f = net_tx_hdr_check(in, feature_sets[i], frame, head_len, len, &o);
		if (!net_hdr_fault_str(f))
			FAIL("no string for fault %d", f);
		if (ok && f != NET_HDR_OK)
			FAIL("taken under features %#llx, refused (%s) under more",
			     (unsigned long long)feature_sets[i - 1], net_hdr_fault_str(f));
		if (f != NET_HDR_OK)
			continue;
		check_out(&o, len);
		if (ok && memcmp(&o, out, sizeof(o)))
			FAIL("more features, another header");
		if (!ok && i == 0 && !net_hdr_is_plain(&o))
			FAIL("no features, yet not plain");
		*out = o;
		ok = true;
	}
	return ok;
}

/* --- checksum completion --------------------------------------------------- */

static void check_csum_complete(const struct virtio_net_hdr_v1 *h, size_t len)
{
	size_t start = h->csum_start, at = start + h->csum_offset;
	uint8_t *copy = malloc(len);

	if (!copy)
		return;
	memcpy(copy, frame, len);
	net_csum_complete(copy, len, h);
	uint16_t held = be16(frame + at), now = be16(copy + at);
	if (memcmp(copy, frame, at) || memcmp(copy + at + 2, frame + at + 2, len - at - 2))
		FAIL("completion changed bytes besides the field");
	if (!now)
		FAIL("a checksum of 0 stored");
	/* The field held the pseudo-header's sum: with it, all sums to 0xffff
	 * (when the field sits on a word of the summed range). */
	if (!(h->csum_offset & 1) && ref_fold(ref_sum(held, copy + start, len - start)) != 0xffff)
		FAIL("completed checksum does not verify");
	free(copy);
}

/* --- segmentation ----------------------------------------------------------- */

/* Where IP starts: after Ethernet and VLAN tags, as the fuzzer reads it. */
static size_t l3_offset(const uint8_t *f)
{
	size_t at = 12;

	while (be16(f + at) == 0x8100 || be16(f + at) == 0x88a8)
		at += 4;
	return at + 2;
}

/* The segment's IPv4 header and L4 checksums, by the reference. */
static void check_seg_csums(const uint8_t *seg, size_t slen, const struct virtio_net_hdr_v1 *h)
{
	size_t l3 = l3_offset(seg), l4 = h->csum_start, l4_len = slen - l4;
	const uint8_t *ip = seg + l3;
	uint8_t len_be[4] = { (uint8_t)(l4_len >> 24), (uint8_t)(l4_len >> 16),
			      (uint8_t)(l4_len >> 8), (uint8_t)l4_len };
	uint32_t ph;

	if (ip[0] >> 4 == 6) {
		ph = ref_sum(ref_sum(ip[6], ip + 8, 32), len_be, 4);
	} else {
		if (ref_fold(ref_sum(0, ip, l4 - l3)) != 0xffff)
			FAIL("segment's IPv4 header checksum wrong");
		ph = ref_sum(ref_sum(ip[9], ip + 12, 8), len_be + 2, 2);
	}
	if (ref_fold(ref_sum(ph, seg + l4, l4_len)) != 0xffff)
		FAIL("segment's L4 checksum wrong");
}

/* Build segment @i of @n in an exact-size buffer and check it. */
static size_t check_one_segment(const struct virtio_net_hdr_v1 *h, size_t len, unsigned i,
				unsigned n, uint8_t *seg)
{
	size_t hl = h->hdr_len, payload = len - hl, off = (size_t)i * h->gso_size;
	size_t slen = net_gso_segment(frame, len, h, i, seg);

	if (slen < hl || slen > hl + h->gso_size)
		FAIL("segment %u of %u: %zu bytes, hdr_len %zu gso_size %u", i, n, slen, hl,
		     h->gso_size);
	if (i + 1 < n && slen != hl + h->gso_size)
		FAIL("segment %u of %u short: %zu", i, n, slen);
	if (i + 1 == n && off + slen - hl != payload)
		FAIL("last segment leaves %zu of %zu payload bytes", payload - off - (slen - hl),
		     payload);
	if (memcmp(seg + hl, frame + hl + off, slen - hl))
		FAIL("segment %u: payload differs from the frame's", i);
	if (memcmp(seg, frame, l3_offset(frame)))
		FAIL("segment %u: link-layer headers changed", i);
	check_seg_csums(seg, slen, h);
	return slen;
}

static void check_segments(const struct virtio_net_hdr_v1 *h, size_t len)
{
	unsigned type = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	unsigned n = net_gso_segments(len, h);
	bool soft = type == VIRTIO_NET_HDR_GSO_TCPV4 || type == VIRTIO_NET_HDR_GSO_TCPV6 ||
		    type == VIRTIO_NET_HDR_GSO_UDP_L4;

	if (!soft) {
		if (n)
			FAIL("%u segments of a type not segmented in software (%#x)", n, h->gso_type);
		return;
	}
	size_t payload = len - h->hdr_len, total = 0;
	if (!n || (size_t)(n - 1) * h->gso_size >= (payload ? payload : 1))
		FAIL("%u segments of %u for %zu payload bytes", n, h->gso_size, payload);
	uint8_t *seg = malloc((size_t)h->hdr_len + h->gso_size);
	if (!seg)
		return;
	for (unsigned i = 0; i < n; i++) {
		/* Past FULL_CHECK_SEGMENTS: the two first, the two last, one in between. */
		if (n > FULL_CHECK_SEGMENTS && i > 1 && i + 2 < n && i != n / 2) {
			total += (size_t)h->hdr_len + h->gso_size;
			continue;
		}
		total += check_one_segment(h, len, i, n, seg);
	}
	if (total != (size_t)h->hdr_len * n + payload)
		FAIL("segments sum to %zu, not %zu", total, (size_t)h->hdr_len * n + payload);
	if (net_gso_segment(frame, len, h, n, seg))
		FAIL("a segment past the last");
	free(seg);
}

/* --- the RX check ----------------------------------------------------------- */

static void check_rx(const struct virtio_net_hdr_v1 *h, size_t len)
{
	static const uint64_t sets[] = {
		0,
		NET_F(VIRTIO_NET_F_GUEST_CSUM),
		NET_F(VIRTIO_NET_F_GUEST_CSUM) | NET_F(VIRTIO_NET_F_GUEST_TSO4) |
			NET_F(VIRTIO_NET_F_GUEST_USO6),
		NET_GUEST_OFFLOADS,
	};
	bool was = false;

	for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
		bool ok = net_rx_hdr_allowed(h, sets[i], len);
		if (was && !ok)
			FAIL("RX header allowed under fewer features only");
		was = ok;
	}
	if (!was)
		return;
	if (h->flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		FAIL("RX flags %#x allowed", h->flags);
	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (size_t)h->csum_start + h->csum_offset + 2 > len)
		FAIL("RX checksum field past the frame allowed");
	if (h->gso_type != VIRTIO_NET_HDR_GSO_NONE && !h->gso_size)
		FAIL("RX GSO without gso_size allowed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct virtio_net_hdr_v1 hdr, out;

	fuzz_take_bytes(&in, &hdr, sizeof(hdr));
	size_t cut = (size_t)fuzz_take(&in, 1), extra = (size_t)fuzz_take(&in, 2);
	size_t len = MIN(in.n, sizeof(frame));
	memcpy(frame, in.p, len);
	for (size_t i = 0; i < extra && len < sizeof(frame); i++, len++)
		frame[len] = (uint8_t)(i * 151 + 7);
	size_t head_len = cut ? MIN(cut, len) : MIN(len, (size_t)NET_OFFLOAD_HEAD_MAX);

	check_rx(&hdr, len);
	if (!tx_check_all(&hdr, head_len, len, &out))
		return 0;
	if (out.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		check_segments(&out, len);
	else if (out.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
		check_csum_complete(&out, len);
	return 0;
}
