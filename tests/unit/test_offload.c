/*
 * net/offload: the TX header check (every refusal, the accepted shapes,
 * hdr_len taken from the frame), checksum completion, software GSO for
 * TCPv4, TCPv6 and UDP_L4 (lengths, ids, sequence numbers, flags, both
 * checksums, the payload put back together), frames of one segment, and
 * the RX header check. Checksums are verified with the test's own
 * reference sum, 16-bit big-endian words, not the module's.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/compiler.h"
#include "net/offload.h"
#include "netframe.h"

#define ACK_ALL (NET_HOST_OFFLOADS)
#define TCP_CWR 0x80
#define BIG 65600u

/* --- the reference checksum ----------------------------------------------- */

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

/* --- frames ------------------------------------------------------------------ */

struct fspec {
	unsigned vlans;          /* 0, 1 (802.1Q) or 2 (802.1ad, then 802.1Q) */
	bool v6;
	uint8_t proto;           /* 6 or 17 */
	unsigned ip_opts;        /* IPv4 option bytes, a multiple of 4 */
	unsigned tcp_opts;       /* TCP option bytes, a multiple of 4 */
	uint8_t tcp_flags;
	uint32_t seq;
	uint16_t ip_id;
	size_t payload;
};

struct layout {
	size_t l3, l4, hdr_len, len;
};

static uint8_t frame[BIG], seg[BIG], joined[BIG];

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 2654435761u >> 13);
}

static size_t put_eth(uint8_t *f, unsigned vlans, uint16_t type)
{
	size_t at = 12;

	memset(f, 0, 12);
	f[0] = 0x52;
	f[6] = 0x54;
	for (unsigned i = 0; i < vlans; i++, at += 4) {
		nf_put16(f + at, i + 1 < vlans ? 0x88a8 : 0x8100);
		nf_put16(f + at + 2, (uint16_t)(100 + i));
	}
	nf_put16(f + at, type);
	return at + 2;
}

static size_t put_ip(uint8_t *ip, const struct fspec *s, size_t l4_len)
{
	if (s->v6) {
		memset(ip, 0, 40);
		ip[0] = 0x60;
		nf_put16(ip + 4, (uint16_t)l4_len);
		ip[6] = s->proto;
		ip[7] = 64;
		for (int i = 0; i < 16; i++) {
			ip[8 + i] = (uint8_t)(0x20 + i);
			ip[24 + i] = (uint8_t)(0xf0 - i);
		}
		return 40;
	}
	size_t ihl = 20 + s->ip_opts;
	memset(ip, 0, ihl);
	ip[0] = (uint8_t)(0x40 | ihl / 4);
	nf_put16(ip + 2, (uint16_t)(ihl + l4_len));
	nf_put16(ip + 4, s->ip_id);
	nf_put16(ip + 6, 0x4000);          /* DF */
	ip[8] = 64;
	ip[9] = s->proto;
	nf_put32(ip + 12, nf_ip4("10.0.2.15"));
	nf_put32(ip + 16, nf_ip4("192.168.7.1"));
	for (unsigned i = 0; i < s->ip_opts; i++)
		ip[20 + i] = 1;                  /* NOPs */
	nf_put16(ip + 10, (uint16_t)~ref_fold(ref_sum(0, ip, ihl)));
	return ihl;
}

static size_t put_l4(uint8_t *l4, const struct fspec *s, size_t l4_len)
{
	if (s->proto == 17) {
		nf_put16(l4, 5353);
		nf_put16(l4 + 2, 4789);
		nf_put16(l4 + 4, (uint16_t)l4_len);
		nf_put16(l4 + 6, 0);
		return 8;
	}
	size_t th = 20 + s->tcp_opts;
	memset(l4, 0, th);
	nf_put16(l4, 40000);
	nf_put16(l4 + 2, 80);
	nf_put32(l4 + 4, s->seq);
	nf_put32(l4 + 8, 0x01020304);
	l4[12] = (uint8_t)(th / 4 << 4);
	l4[13] = s->tcp_flags;
	nf_put16(l4 + 14, 65535);
	for (unsigned i = 0; i < s->tcp_opts; i++)
		l4[20 + i] = 1;
	return th;
}

/* The pseudo-header's sum over @l4_len bytes (the reference's). */
static uint32_t ref_pseudo(const uint8_t *ip, bool v6, uint8_t proto, size_t l4_len)
{
	uint8_t ph[4] = { 0, 0, 0, 0 };

	if (v6) {
		nf_put32(ph, (uint32_t)l4_len);
		return ref_sum(ref_sum(proto, ip + 8, 32), ph, 4);
	}
	nf_put16(ph, (uint16_t)l4_len);
	return ref_sum(ref_sum(proto, ip + 12, 8), ph, 2);
}

/* A frame as a guest hands it with NEEDS_CSUM: the L4 checksum field holds
 * the pseudo-header's folded sum, as Linux leaves it. */
static size_t build(uint8_t *f, const struct fspec *s, struct layout *lo)
{
	size_t th = s->proto == 17 ? 8 : 20 + s->tcp_opts;
	size_t l4_len = th + s->payload;

	lo->l3 = put_eth(f, s->vlans, s->v6 ? 0x86dd : 0x0800);
	lo->l4 = lo->l3 + put_ip(f + lo->l3, s, l4_len);
	lo->hdr_len = lo->l4 + put_l4(f + lo->l4, s, l4_len);
	for (size_t i = 0; i < s->payload; i++)
		f[lo->hdr_len + i] = pattern(i);
	lo->len = lo->hdr_len + s->payload;
	size_t field = lo->l4 + (s->proto == 17 ? 6 : 16);
	nf_put16(f + field, ref_fold(ref_pseudo(f + lo->l3, s->v6, s->proto, l4_len)));
	return lo->len;
}

static struct virtio_net_hdr_v1 gso_hdr(uint8_t type, uint16_t mss, const struct layout *lo,
					uint8_t proto)
{
	struct virtio_net_hdr_v1 h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = type,
		.hdr_len = (uint16_t)lo->hdr_len,
		.gso_size = mss,
		.csum_start = (uint16_t)lo->l4,
		.csum_offset = proto == 17 ? 6 : 16,
	};
	return h;
}

static enum net_hdr_fault check_tx(const struct virtio_net_hdr_v1 *h, uint64_t acked,
				   const uint8_t *f, size_t len, struct virtio_net_hdr_v1 *out)
{
	return net_tx_hdr_check(h, acked, f, MIN(len, NET_OFFLOAD_HEAD_MAX), len, out);
}

/* Is the L4 checksum of the packet at @l3 right (pseudo-header included)? */
static bool l4_csum_ok(const uint8_t *f, size_t len, const struct layout *lo, bool v6,
		       uint8_t proto)
{
	size_t l4_len = len - lo->l4;

	return ref_fold(ref_sum(ref_pseudo(f + lo->l3, v6, proto, l4_len), f + lo->l4, l4_len)) ==
	       0xffff;
}

static bool ip4_csum_ok(const uint8_t *ip)
{
	return ref_fold(ref_sum(0, ip, (ip[0] & 0xfu) * 4)) == 0xffff;
}

/* --- the TX header check ------------------------------------------------------ */

static void test_plain_header(void)
{
	struct virtio_net_hdr_v1 in = { .hdr_len = 77, .gso_size = 1000, .csum_start = 3,
					.csum_offset = 4, .num_buffers = 9 };
	struct virtio_net_hdr_v1 out, zero = { 0 };

	memset(&out, 0xaa, sizeof(out));
	CHECK_EQ(net_tx_hdr_check(&in, 0, NULL, 0, 60, &out), NET_HDR_OK);
	CHECK(!memcmp(&out, &zero, sizeof(out)));
	CHECK(net_hdr_is_plain(&out));
	/* Flag bits the spec does not define are ignored (5.1.6.2.2), not passed on. */
	in.flags = 0xf8;
	CHECK_EQ(net_tx_hdr_check(&in, ACK_ALL, NULL, 0, 60, &out), NET_HDR_OK);
	CHECK_EQ(out.flags, 0);
}

static void test_csum_header(void)
{
	struct virtio_net_hdr_v1 in = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .hdr_len = 5,
					.gso_size = 1400, .csum_start = 34, .csum_offset = 16 };
	struct virtio_net_hdr_v1 out;

	CHECK_EQ(net_tx_hdr_check(&in, NET_F(VIRTIO_NET_F_CSUM), NULL, 0, 52, &out), NET_HDR_OK);
	CHECK_EQ(out.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	CHECK_EQ(out.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	CHECK_EQ(out.csum_start, 34);
	CHECK_EQ(out.csum_offset, 16);
	CHECK_EQ(out.hdr_len, 0);
	CHECK_EQ(out.gso_size, 0);
	CHECK_EQ(out.num_buffers, 0);
	CHECK(!net_hdr_is_plain(&out));
	/* The field's last byte is the frame's last: in range; one more is not. */
	CHECK_EQ(net_tx_hdr_check(&in, ACK_ALL, NULL, 0, 51, &out), NET_HDR_CSUM_RANGE);
	in.csum_start = 0xffff;
	in.csum_offset = 0xffff;
	CHECK_EQ(net_tx_hdr_check(&in, ACK_ALL, NULL, 0, 65557, &out), NET_HDR_CSUM_RANGE);
}

/* Each refusal a header causes by itself: the frame (TCPv4, or UDPv4 when
 * @udp) is one its type would take. */
static void test_refusals_header(void)
{
	const uint8_t nc = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	struct {
		uint8_t flags, type;
		uint16_t gso_size;
		bool udp;
		uint64_t acked;
		enum net_hdr_fault want;
	} c[] = {
		{ VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, false, ACK_ALL, NET_HDR_BAD_FLAGS },
		{ VIRTIO_NET_HDR_F_RSC_INFO, 0, 0, false, ACK_ALL, NET_HDR_BAD_FLAGS },
		{ nc | VIRTIO_NET_HDR_F_DATA_VALID, 1, 1400, false, ACK_ALL, NET_HDR_BAD_FLAGS },
		{ nc, 0, 0, false, ACK_ALL & ~NET_F(VIRTIO_NET_F_CSUM), NET_HDR_CSUM_UNACKED },
		{ nc, 1, 1400, false, ACK_ALL & ~NET_F(VIRTIO_NET_F_HOST_TSO4), NET_HDR_GSO_UNACKED },
		{ nc, 4, 1400, false, ACK_ALL & ~NET_F(VIRTIO_NET_F_HOST_TSO6), NET_HDR_GSO_UNACKED },
		{ nc, 3, 1400, true, ACK_ALL & ~NET_F(VIRTIO_NET_F_HOST_UFO), NET_HDR_GSO_UNACKED },
		{ nc, 5, 1400, true, ACK_ALL & ~NET_F(VIRTIO_NET_F_HOST_USO), NET_HDR_GSO_UNACKED },
		{ nc, 0x81, 1400, false, ACK_ALL & ~NET_F(VIRTIO_NET_F_HOST_ECN), NET_HDR_GSO_UNACKED },
		{ 0, 1, 1400, false, 0, NET_HDR_GSO_UNACKED },
		{ nc, 2, 1400, false, ACK_ALL, NET_HDR_GSO_BAD },
		{ nc, 6, 1400, true, ACK_ALL, NET_HDR_GSO_BAD },
		{ nc, 0x7f, 1400, false, ACK_ALL, NET_HDR_GSO_BAD },
		{ 0, 0x80, 0, false, ACK_ALL, NET_HDR_GSO_BAD },
		{ nc, 0x80, 0, false, ACK_ALL, NET_HDR_GSO_BAD },
		{ nc, 0x85, 1400, true, ACK_ALL, NET_HDR_GSO_BAD },
		{ nc, 0x83, 1400, true, ACK_ALL, NET_HDR_GSO_BAD },
		{ 0, 1, 1400, false, ACK_ALL, NET_HDR_GSO_BAD },
		{ nc, 1, 0, false, ACK_ALL, NET_HDR_GSO_BAD },
		/* The same frames and types, taken. */
		{ nc, 1, 1400, false, ACK_ALL, NET_HDR_OK },
		{ nc, 0x81, 1400, false, ACK_ALL, NET_HDR_OK },
		{ nc, 5, 1400, true, ACK_ALL, NET_HDR_OK },
		{ nc, 3, 1400, true, ACK_ALL, NET_HDR_OK },
	};
	struct fspec t = { .proto = 6, .payload = 3000 }, u = { .proto = 17, .payload = 3000 };
	struct virtio_net_hdr_v1 out;
	struct layout lo;

	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		size_t len = build(frame, c[i].udp ? &u : &t, &lo);
		struct virtio_net_hdr_v1 in = gso_hdr(c[i].type, c[i].gso_size, &lo,
						      c[i].udp ? 17 : 6);
		in.flags = c[i].flags;
		enum net_hdr_fault f = check_tx(&in, c[i].acked, frame, len, &out);
		if (f != c[i].want)
			fprintf(stderr, "  case %zu: %s\n", i, net_hdr_fault_str(f));
		CHECK_EQ(f, c[i].want);
	}
}

/* A TCPv4 frame of 3000 payload bytes with options on both headers. */
static struct fspec tcp4_spec(void)
{
	struct fspec s = { .proto = 6, .ip_opts = 4, .tcp_opts = 12, .tcp_flags = 0x18,
			   .seq = 1000, .ip_id = 7, .payload = 3000 };
	return s;
}

/* Check @h against the TCPv4 frame after @mutate changed a byte of it. */
static enum net_hdr_fault tcp4_mutated(size_t at, uint8_t value, struct virtio_net_hdr_v1 *h)
{
	struct fspec s = tcp4_spec();
	struct layout lo;
	struct virtio_net_hdr_v1 out;
	size_t len = build(frame, &s, &lo);

	*h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1400, &lo, 6);
	frame[at] = value;
	return check_tx(h, ACK_ALL, frame, len, &out);
}

/* Each refusal the frame's own headers cause: GSO_BAD. */
static void test_refusals_frame(void)
{
	struct fspec s = tcp4_spec();
	struct layout lo;
	struct virtio_net_hdr_v1 h, out;

	/* TCPv4 frame: l3 14, IPv4 24 bytes, l4 38, TCP 32 bytes, hdr_len 70. */
	CHECK_EQ(tcp4_mutated(0, 0x52, &h), NET_HDR_OK);
	CHECK_EQ(tcp4_mutated(12, 0x08, &h), NET_HDR_OK);
	CHECK_EQ(tcp4_mutated(13, 0x06, &h), NET_HDR_GSO_BAD);       /* ARP */
	CHECK_EQ(tcp4_mutated(14, 0x44, &h), NET_HDR_GSO_BAD);       /* IHL 4 */
	CHECK_EQ(tcp4_mutated(14, 0x56, &h), NET_HDR_GSO_BAD);       /* version 5 */
	CHECK_EQ(tcp4_mutated(14, 0x66, &h), NET_HDR_GSO_BAD);       /* v6 in an IPv4 ethertype */
	CHECK_EQ(tcp4_mutated(14 + 6, 0x60, &h), NET_HDR_GSO_BAD);   /* DF | MF: a fragment */
	CHECK_EQ(tcp4_mutated(14 + 7, 0x01, &h), NET_HDR_GSO_BAD);   /* DF, fragment offset 1 */
	CHECK_EQ(tcp4_mutated(14 + 9, 17, &h), NET_HDR_GSO_BAD);     /* UDP for TCPV4 */
	CHECK_EQ(tcp4_mutated(38 + 12, 0x40, &h), NET_HDR_GSO_BAD);  /* TCP data offset 4 */
	/* The TCP header's options reach past the head handed in. */
	size_t len = build(frame, &s, &lo);
	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1400, &lo, 6);
	CHECK_EQ(net_tx_hdr_check(&h, ACK_ALL, frame, lo.hdr_len - 1, len, &out), NET_HDR_GSO_BAD);
	CHECK_EQ(net_tx_hdr_check(&h, ACK_ALL, frame, lo.hdr_len, len, &out), NET_HDR_OK);
	/* ... or past the frame. */
	CHECK_EQ(net_tx_hdr_check(&h, ACK_ALL, frame, 256, lo.hdr_len - 1, &out),
		 NET_HDR_GSO_BAD);
	/* The checksum request not on the TCP checksum field. */
	h.csum_start = (uint16_t)(lo.l4 + 2);
	h.csum_offset = 14;
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_GSO_BAD);
	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1400, &lo, 6);
	h.csum_offset = 6;
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_GSO_BAD);
	/* A segment larger than any frame; the largest that is not. */
	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, (uint16_t)(NET_OFFLOAD_FRAME_MAX - lo.hdr_len + 1),
		    &lo, 6);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_GSO_BAD);
	h.gso_size--;
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	/* A datagram longer than IPv4's total length can say. */
	h.gso_size = 1400;
	CHECK_EQ(net_tx_hdr_check(&h, ACK_ALL, frame, 256, lo.l3 + 0x10000, &out),
		 NET_HDR_GSO_BAD);
	CHECK_EQ(net_tx_hdr_check(&h, ACK_ALL, frame, 256, lo.l3 + 0xffff, &out), NET_HDR_OK);
}

static void test_refusals_frame_kinds(void)
{
	struct fspec s4 = tcp4_spec(), s6 = { .v6 = true, .proto = 6, .payload = 100 };
	struct fspec u4 = { .proto = 17, .payload = 100 };
	struct layout lo;
	struct virtio_net_hdr_v1 h, out;
	size_t len;

	/* TCPV6 on an IPv4 frame, TCPV4 on an IPv6 one. */
	len = build(frame, &s4, &lo);
	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV6, 1400, &lo, 6);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_GSO_BAD);
	len = build(frame, &s6, &lo);
	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1400, &lo, 6);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_GSO_BAD);
	/* IPv6 with an extension header (hop-by-hop) before TCP. */
	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV6, 1400, &lo, 6);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	frame[lo.l3 + 6] = 0;
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_GSO_BAD);
	/* UDP_L4 on a TCP frame, TCPV4 on a UDP one. */
	len = build(frame, &s4, &lo);
	h = gso_hdr(VIRTIO_NET_HDR_GSO_UDP_L4, 1400, &lo, 17);
	h.csum_offset = 6;
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_GSO_BAD);
	len = build(frame, &u4, &lo);
	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1400, &lo, 6);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_GSO_BAD);
	/* Three VLAN tags. */
	s4.vlans = 2;
	len = build(frame, &s4, &lo);
	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1400, &lo, 6);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	memmove(frame + 16, frame + 12, len - 12);
	nf_put16(frame + 12, 0x8100);
	h.csum_start += 4;
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len + 4, &out), NET_HDR_GSO_BAD);
}

struct valid_case {
	struct fspec s;
	uint8_t type;
	unsigned hdr_len;
};

static void test_valid_headers(void)
{
	static const struct valid_case c[] = {
		{ { .proto = 6, .payload = 3000 }, VIRTIO_NET_HDR_GSO_TCPV4, 54 },
		{ { .proto = 6, .ip_opts = 40, .tcp_opts = 40, .payload = 3000 },
		  VIRTIO_NET_HDR_GSO_TCPV4, 134 },
		{ { .proto = 6, .tcp_flags = TCP_CWR, .payload = 3000 },
		  VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 54 },
		{ { .v6 = true, .proto = 6, .tcp_opts = 12, .payload = 3000 },
		  VIRTIO_NET_HDR_GSO_TCPV6, 86 },
		{ { .vlans = 1, .proto = 6, .payload = 3000 }, VIRTIO_NET_HDR_GSO_TCPV4, 58 },
		{ { .vlans = 2, .v6 = true, .proto = 6, .payload = 3000 },
		  VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN, 82 },
		{ { .proto = 17, .payload = 3000 }, VIRTIO_NET_HDR_GSO_UDP_L4, 42 },
		{ { .v6 = true, .proto = 17, .payload = 3000 }, VIRTIO_NET_HDR_GSO_UDP_L4, 62 },
		{ { .vlans = 2, .proto = 17, .payload = 3000 }, VIRTIO_NET_HDR_GSO_UDP, 50 },
		{ { .proto = 6, .payload = 0 }, VIRTIO_NET_HDR_GSO_TCPV4, 54 },
	};
	struct layout lo;
	struct virtio_net_hdr_v1 out;

	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		size_t len = build(frame, &c[i].s, &lo);
		struct virtio_net_hdr_v1 h = gso_hdr(c[i].type, 1400, &lo, c[i].s.proto);
		h.num_buffers = 3;
		memset(&out, 0xaa, sizeof(out));
		CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
		CHECK_EQ(out.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
		CHECK_EQ(out.gso_type, c[i].type);
		CHECK_EQ(out.gso_size, 1400);
		CHECK_EQ(out.hdr_len, c[i].hdr_len);
		CHECK_EQ(out.csum_start, lo.l4);
		CHECK_EQ(out.csum_offset, h.csum_offset);
		CHECK_EQ(out.num_buffers, 0);
	}
}

/* hdr_len comes from the frame whatever the guest said. */
static void test_hdr_len_recomputed(void)
{
	static const uint16_t lies[] = { 0, 1, 53, 55, 200, 0xffff };
	struct fspec s = { .proto = 6, .tcp_opts = 8, .payload = 5000 };
	struct layout lo;
	struct virtio_net_hdr_v1 out;
	size_t len = build(frame, &s, &lo);

	for (size_t i = 0; i < ARRAY_SIZE(lies); i++) {
		struct virtio_net_hdr_v1 h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1448, &lo, 6);
		h.hdr_len = lies[i];
		CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
		CHECK_EQ(out.hdr_len, 62);
	}
}

/* --- checksum completion ------------------------------------------------------ */

static void complete_and_verify(const struct fspec *s)
{
	struct layout lo;
	struct virtio_net_hdr_v1 h, out;
	size_t len = build(frame, s, &lo);

	h = gso_hdr(VIRTIO_NET_HDR_GSO_NONE, 0, &lo, s->proto);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	CHECK(!l4_csum_ok(frame, len, &lo, s->v6, s->proto));
	net_csum_complete(frame, len, &out);
	CHECK(l4_csum_ok(frame, len, &lo, s->v6, s->proto));
}

static void test_csum_complete(void)
{
	for (size_t payload = 0; payload < 70; payload += 7) {
		struct fspec t4 = { .proto = 6, .tcp_opts = 4, .payload = payload };
		struct fspec t6 = { .vlans = 1, .v6 = true, .proto = 6, .payload = payload };
		struct fspec u4 = { .proto = 17, .ip_opts = 8, .payload = payload };
		struct fspec u6 = { .v6 = true, .proto = 17, .payload = payload };
		complete_and_verify(&t4);
		complete_and_verify(&t6);
		complete_and_verify(&u4);
		complete_and_verify(&u6);
	}
	struct fspec big = { .proto = 6, .payload = 65000 };
	complete_and_verify(&big);
}

/* Any start, any length, a field holding 0: the sum over the range, the
 * stored checksum included, folds to 0xffff. */
static void test_csum_complete_any_range(void)
{
	for (size_t start = 0; start < 6; start++) {
		for (size_t len = start + 2; len < start + 40; len++) {
			for (size_t i = 0; i < len; i++)
				frame[i] = pattern(i * 3 + len);
			struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
						       .csum_start = (uint16_t)start,
						       .csum_offset = (uint16_t)((len - start - 2) & ~1u) };
			frame[start + h.csum_offset] = 0;
			frame[start + h.csum_offset + 1] = 0;
			net_csum_complete(frame, len, &h);
			CHECK_EQ(ref_fold(ref_sum(0, frame + start, len - start)), 0xffff);
		}
	}
}

/* A UDP checksum that computes to 0 is sent as 0xffff (RFC 768). */
static void test_csum_udp_zero(void)
{
	struct fspec s = { .proto = 17, .payload = 20 };
	struct layout lo;
	struct virtio_net_hdr_v1 h, out;
	size_t len = build(frame, &s, &lo);

	/* Make the last payload word bring the whole sum to 0xffff. */
	frame[len - 2] = frame[len - 1] = 0;
	uint16_t sum = ref_fold(ref_sum(0, frame + lo.l4, len - lo.l4));
	nf_put16(frame + len - 2, (uint16_t)(0xffff - sum));
	h = gso_hdr(VIRTIO_NET_HDR_GSO_NONE, 0, &lo, 17);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	net_csum_complete(frame, len, &out);
	CHECK_EQ(nf_get16(frame + lo.l4 + 6), 0xffff);
	CHECK(l4_csum_ok(frame, len, &lo, false, 17));
}

/* --- segmentation --------------------------------------------------------------- */

struct seg_expect {
	const struct fspec *s;
	const struct layout *lo;
	uint16_t mss;
	bool ecn;
};

/* Check segment @i of @n against the original in `frame`; append its payload. */
static void check_segment(const struct seg_expect *e, unsigned i, unsigned n, size_t slen,
			  size_t *joined_len)
{
	const struct layout *lo = e->lo;
	size_t payload = e->s->payload, plen = i + 1 < n ? e->mss : payload - (size_t)i * e->mss;

	CHECK_EQ(slen, lo->hdr_len + plen);
	CHECK(!memcmp(seg, frame, lo->l3));
	if (e->s->v6) {
		CHECK_EQ(nf_get16(seg + lo->l3 + 4), slen - lo->l4);
		CHECK(!memcmp(seg + lo->l3 + 6, frame + lo->l3 + 6, 34));
	} else {
		CHECK_EQ(nf_get16(seg + lo->l3 + 2), slen - lo->l3);
		CHECK_EQ(nf_get16(seg + lo->l3 + 4), (uint16_t)(e->s->ip_id + i));
		CHECK_EQ(nf_get16(seg + lo->l3 + 6), 0x4000);
		CHECK(ip4_csum_ok(seg + lo->l3));
	}
	const uint8_t *l4 = seg + lo->l4;
	if (e->s->proto == 6) {
		uint8_t want = e->s->tcp_flags;
		if (i + 1 < n)
			want &= (uint8_t)~(NF_TCP_FIN | NF_TCP_PSH);
		if (i > 0)
			want &= (uint8_t)~TCP_CWR;
		CHECK_EQ(nf_get32(l4 + 4), (uint32_t)(e->s->seq + (uint32_t)i * e->mss));
		CHECK_EQ(l4[13], want);
		CHECK(!memcmp(l4, frame + lo->l4, 4));               /* ports */
		CHECK(!memcmp(l4 + 8, frame + lo->l4 + 8, 5));       /* ack, data offset */
		CHECK(!memcmp(l4 + 14, frame + lo->l4 + 14, 2));     /* window */
		CHECK(!memcmp(l4 + 20, frame + lo->l4 + 20, lo->hdr_len - lo->l4 - 20));
	} else {
		CHECK_EQ(nf_get16(l4 + 4), slen - lo->l4);
	}
	CHECK(l4_csum_ok(seg, slen, lo, e->s->v6, e->s->proto));
	memcpy(joined + *joined_len, seg + lo->hdr_len, plen);
	*joined_len += plen;
}

/* Segment @s's frame with @type and @mss; every segment checked. */
static void segment_and_verify(const struct fspec *s, uint8_t type, uint16_t mss,
			       unsigned want_n)
{
	struct layout lo;
	struct virtio_net_hdr_v1 h, out;
	size_t len = build(frame, s, &lo), joined_len = 0;
	struct seg_expect e = { .s = s, .lo = &lo, .mss = mss };

	h = gso_hdr(type, mss, &lo, s->proto);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	unsigned n = net_gso_segments(len, &out);
	CHECK_EQ(n, want_n);
	for (unsigned i = 0; i < n; i++) {
		memset(seg, 0xcc, sizeof(seg));
		size_t slen = net_gso_segment(frame, len, &out, i, seg);
		check_segment(&e, i, n, slen, &joined_len);
		CHECK_EQ(seg[slen], 0xcc);       /* nothing written past the segment */
	}
	CHECK_EQ(net_gso_segment(frame, len, &out, n, seg), 0);
	CHECK_EQ(joined_len, s->payload);
	CHECK(!memcmp(joined, frame + lo.hdr_len, s->payload));
}

static void test_segment_tcp4_64k(void)
{
	/* 65535-byte datagram: 24 + 32 + 65479. The id and the sequence
	 * number wrap on the way. */
	struct fspec s = { .proto = 6, .ip_opts = 4, .tcp_opts = 12,
			   .tcp_flags = NF_TCP_ACK | NF_TCP_PSH | NF_TCP_FIN | TCP_CWR,
			   .seq = 0xffff0000u, .ip_id = 0xfff0, .payload = 65479 };

	segment_and_verify(&s, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1448, 46);
	s.vlans = 2;
	s.payload = 65000;
	s.tcp_flags = NF_TCP_ACK;
	segment_and_verify(&s, VIRTIO_NET_HDR_GSO_TCPV4, 1000, 65);
}

static void test_segment_tcp6(void)
{
	struct fspec s = { .vlans = 1, .v6 = true, .proto = 6, .tcp_opts = 12,
			   .tcp_flags = NF_TCP_ACK | NF_TCP_PSH | TCP_CWR, .seq = 12345,
			   .payload = 20000 };

	segment_and_verify(&s, VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN, 1220, 17);
	s.payload = 65450;                    /* a 65540-byte frame */
	segment_and_verify(&s, VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN, 1428, 46);
}

static void test_segment_udp_l4(void)
{
	struct fspec u4 = { .proto = 17, .ip_id = 100, .payload = 9000 };
	struct fspec u6 = { .vlans = 2, .v6 = true, .proto = 17, .payload = 60001 };

	segment_and_verify(&u4, VIRTIO_NET_HDR_GSO_UDP_L4, 1400, 7);
	segment_and_verify(&u6, VIRTIO_NET_HDR_GSO_UDP_L4, 1000, 61);
}

/* A GSO frame of one segment comes back whole, its checksum completed. */
static void test_segment_one(void)
{
	static const size_t payloads[] = { 0, 1, 1447, 1448 };
	struct layout lo;
	struct virtio_net_hdr_v1 h, out;

	for (size_t i = 0; i < ARRAY_SIZE(payloads); i++) {
		struct fspec s = { .proto = 6, .tcp_flags = NF_TCP_ACK | NF_TCP_FIN | TCP_CWR,
				   .seq = 5, .ip_id = 9, .payload = payloads[i] };
		segment_and_verify(&s, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1448, 1);
		size_t len = build(frame, &s, &lo);
		h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1448, &lo, 6);
		CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
		CHECK_EQ(net_gso_segment(frame, len, &out, 0, seg), len);
		/* The same bytes as completing the checksum in place. */
		h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
		net_csum_complete(frame, len, &h);
		CHECK(!memcmp(seg, frame, len));
	}
	/* One more byte: a second segment of one byte. */
	struct fspec s = { .proto = 17, .payload = 1401 };
	segment_and_verify(&s, VIRTIO_NET_HDR_GSO_UDP_L4, 1400, 2);
}

/* Headers these functions do not segment, and out-of-range indices. */
static void test_segment_edges(void)
{
	struct fspec s = { .proto = 6, .payload = 3000 };
	struct fspec u = { .proto = 17, .payload = 3000 };
	struct layout lo;
	struct virtio_net_hdr_v1 h, out;
	size_t len = build(frame, &s, &lo);

	h = gso_hdr(VIRTIO_NET_HDR_GSO_TCPV4, 1000, &lo, 6);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	CHECK_EQ(net_gso_segments(len, &out), 3);
	CHECK_EQ(net_gso_segment(frame, len, &out, 3, seg), 0);
	CHECK_EQ(net_gso_segment(frame, len, &out, 0xffffffffu, seg), 0);
	/* A frame shorter than the header says. */
	CHECK_EQ(net_gso_segments(lo.hdr_len - 1, &out), 0);
	/* An unchecked header whose hdr_len disagrees with the frame. */
	out.hdr_len++;
	CHECK_EQ(net_gso_segment(frame, len, &out, 0, seg), 0);
	/* No GSO, and UFO (IP fragmentation, not done here). */
	h = gso_hdr(VIRTIO_NET_HDR_GSO_NONE, 0, &lo, 6);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	CHECK_EQ(net_gso_segments(len, &out), 0);
	CHECK_EQ(net_gso_segment(frame, len, &out, 0, seg), 0);
	len = build(frame, &u, &lo);
	h = gso_hdr(VIRTIO_NET_HDR_GSO_UDP, 1000, &lo, 17);
	CHECK_EQ(check_tx(&h, ACK_ALL, frame, len, &out), NET_HDR_OK);
	CHECK_EQ(net_gso_segments(len, &out), 0);
}

/* --- RX ----------------------------------------------------------------------- */

static void test_rx_allowed(void)
{
	const uint64_t all = NET_GUEST_OFFLOADS;
	struct {
		uint8_t flags, type;
		uint16_t gso_size, start, off;
		uint64_t acked;
		bool want;
	} c[] = {
		{ 0, 0, 0, 0, 0, 0, true },
		{ VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, all, true },
		{ VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0, false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16, all, true },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16, all & ~NET_F(VIRTIO_NET_F_GUEST_CSUM),
		  false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 65, all, true },     /* 101 bytes */
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 66, all, false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0xffff, 0xffff, all, false },
		{ VIRTIO_NET_HDR_F_RSC_INFO, 0, 0, 0, 0, all, false },
		{ 0x10, 0, 0, 0, 0, all, false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 1, 1448, 34, 16, all, true },
		{ VIRTIO_NET_HDR_F_DATA_VALID, 1, 1448, 0, 0, all, true },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 1, 0, 34, 16, all, false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 1, 1448, 34, 16, all & ~NET_F(VIRTIO_NET_F_GUEST_TSO4),
		  false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 4, 1448, 54, 16, all & ~NET_F(VIRTIO_NET_F_GUEST_TSO6),
		  false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 4, 1448, 54, 16, NET_F(VIRTIO_NET_F_GUEST_CSUM) |
		  NET_F(VIRTIO_NET_F_GUEST_TSO6), true },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 3, 1448, 34, 6, all & ~NET_F(VIRTIO_NET_F_GUEST_UFO),
		  false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 5, 1448, 34, 6, NET_F(VIRTIO_NET_F_GUEST_CSUM) |
		  NET_F(VIRTIO_NET_F_GUEST_USO4), true },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 5, 1448, 34, 6, NET_F(VIRTIO_NET_F_GUEST_CSUM) |
		  NET_F(VIRTIO_NET_F_GUEST_USO6), true },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 5, 1448, 34, 6, all & ~(NET_F(VIRTIO_NET_F_GUEST_USO4) |
		  NET_F(VIRTIO_NET_F_GUEST_USO6)), false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 0x81, 1448, 34, 16, all, true },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 0x81, 1448, 34, 16, all & ~NET_F(VIRTIO_NET_F_GUEST_ECN),
		  false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 0x85, 1448, 34, 6, all, false },
		{ 0, 0x80, 0, 0, 0, all, false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 2, 1448, 34, 16, all, false },
		{ VIRTIO_NET_HDR_F_NEEDS_CSUM, 6, 1448, 34, 16, all, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		struct virtio_net_hdr_v1 h = { .flags = c[i].flags, .gso_type = c[i].type,
					       .gso_size = c[i].gso_size, .csum_start = c[i].start,
					       .csum_offset = c[i].off };
		bool got = net_rx_hdr_allowed(&h, c[i].acked, 101);
		if (got != c[i].want)
			fprintf(stderr, "  case %zu\n", i);
		CHECK_EQ(got, c[i].want);
	}
}

static void test_fault_strings(void)
{
	const char *seen[NET_HDR_GSO_BAD + 1];

	for (int f = NET_HDR_OK; f <= NET_HDR_GSO_BAD; f++) {
		const char *s = net_hdr_fault_str((enum net_hdr_fault)f);
		CHECK(s && *s);
		for (const char *p = s; *p; p++)
			CHECK(!(*p >= 'A' && *p <= 'Z'));
		for (int g = 0; g < f; g++)
			CHECK(strcmp(seen[g], s));
		seen[f] = s;
	}
	CHECK(!strcmp(net_hdr_fault_str((enum net_hdr_fault)99), "unknown"));
}

int main(void)
{
	RUN_TEST(test_plain_header);
	RUN_TEST(test_csum_header);
	RUN_TEST(test_refusals_header);
	RUN_TEST(test_refusals_frame);
	RUN_TEST(test_refusals_frame_kinds);
	RUN_TEST(test_valid_headers);
	RUN_TEST(test_hdr_len_recomputed);
	RUN_TEST(test_csum_complete);
	RUN_TEST(test_csum_complete_any_range);
	RUN_TEST(test_csum_udp_zero);
	RUN_TEST(test_segment_tcp4_64k);
	RUN_TEST(test_segment_tcp6);
	RUN_TEST(test_segment_udp_l4);
	RUN_TEST(test_segment_one);
	RUN_TEST(test_segment_edges);
	RUN_TEST(test_rx_allowed);
	RUN_TEST(test_fault_strings);
	return CHECK_DONE();
}
