/* Frame builders and parser for tests (see netframe.h). */
#include "netframe.h"

#include <arpa/inet.h>
#include <string.h>

uint32_t nf_ip4(const char *dotted)
{
	struct in_addr a = { 0 };

	inet_pton(AF_INET, dotted, &a);
	return ntohl(a.s_addr);
}

void nf_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
void nf_put32(uint8_t *p, uint32_t v) { nf_put16(p, (uint16_t)(v >> 16)); nf_put16(p + 2, (uint16_t)v); }
uint16_t nf_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
uint32_t nf_get32(const uint8_t *p) { return (uint32_t)nf_get16(p) << 16 | nf_get16(p + 2); }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += nf_get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint16_t nf_csum(const uint8_t *p, size_t len)
{
	return csum_fold(csum_add(0, p, len));
}

uint16_t nf_l4_csum(uint32_t src, uint32_t dst, uint8_t proto, const uint8_t *seg, size_t len)
{
	uint8_t ph[12];

	nf_put32(ph, src);
	nf_put32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = proto;
	nf_put16(ph + 10, (uint16_t)len);
	return csum_fold(csum_add(csum_add(0, ph, 12), seg, len));
}

static size_t arp(uint8_t *f, uint16_t op, const uint8_t mac[6], uint32_t sip,
		  const uint8_t dmac[6], const uint8_t tmac[6], uint32_t tip)
{
	memcpy(f, dmac, 6);
	memcpy(f + 6, mac, 6);
	nf_put16(f + 12, 0x0806);
	nf_put16(f + 14, 1);
	nf_put16(f + 16, 0x0800);
	f[18] = 6;
	f[19] = 4;
	nf_put16(f + 20, op);
	memcpy(f + 22, mac, 6);
	nf_put32(f + 28, sip);
	memcpy(f + 32, tmac, 6);
	nf_put32(f + 38, tip);
	return 42;
}

size_t nf_arp_request(uint8_t *f, const uint8_t mac[6], uint32_t sip, uint32_t tip)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t zero[6];

	return arp(f, 1, mac, sip, bcast, zero, tip);
}

size_t nf_arp_reply(uint8_t *f, const uint8_t mac[6], uint32_t sip, const uint8_t tmac[6],
		    uint32_t tip)
{
	return arp(f, 2, mac, sip, tmac, tmac, tip);
}

size_t nf_eth(uint8_t *f, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint16_t type)
{
	memcpy(f, dst_mac, 6);
	memcpy(f + 6, src_mac, 6);
	nf_put16(f + 12, type);
	return 14;
}

size_t nf_ipv4(uint8_t *ip, uint8_t proto, uint32_t src, uint32_t dst, size_t payload,
	       uint16_t id)
{
	memset(ip, 0, 20);
	ip[0] = 0x45;
	nf_put16(ip + 2, (uint16_t)(20 + payload));
	nf_put16(ip + 4, id);
	ip[8] = 64;
	ip[9] = proto;
	nf_put32(ip + 12, src);
	nf_put32(ip + 16, dst);
	nf_put16(ip + 10, nf_csum(ip, 20));
	return 20;
}

size_t nf_udp(uint8_t *f, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint32_t src,
	      uint32_t dst, uint16_t sport, uint16_t dport, const void *payload, size_t len)
{
	uint8_t *udp = f + 34;

	nf_eth(f, src_mac, dst_mac, 0x0800);
	nf_ipv4(f + 14, 17, src, dst, 8 + len, (uint16_t)(sport ^ len));
	nf_put16(udp, sport);
	nf_put16(udp + 2, dport);
	nf_put16(udp + 4, (uint16_t)(8 + len));
	nf_put16(udp + 6, 0);
	if (len)
		memcpy(udp + 8, payload, len);
	nf_put16(udp + 6, nf_l4_csum(src, dst, 17, udp, 8 + len));
	return 42 + len;
}

size_t nf_tcp(uint8_t *f, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint32_t src,
	      uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
	      uint8_t flags, const void *payload, size_t len)
{
	uint8_t *tcp = f + 34;

	nf_eth(f, src_mac, dst_mac, 0x0800);
	nf_ipv4(f + 14, 6, src, dst, 20 + len, (uint16_t)(seq ^ sport));
	memset(tcp, 0, 20);
	nf_put16(tcp, sport);
	nf_put16(tcp + 2, dport);
	nf_put32(tcp + 4, seq);
	nf_put32(tcp + 8, ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	nf_put16(tcp + 14, 65535);
	if (len)
		memcpy(tcp + 20, payload, len);
	nf_put16(tcp + 16, nf_l4_csum(src, dst, 6, tcp, 20 + len));
	return 54 + len;
}

static bool parse_tcp(struct nf_pkt *p)
{
	if (p->l4len < 20)
		return false;
	size_t doff = (size_t)(p->l4[12] >> 4) * 4;
	if (doff < 20 || doff > p->l4len)
		return false;
	p->sport = nf_get16(p->l4);
	p->dport = nf_get16(p->l4 + 2);
	p->seq = nf_get32(p->l4 + 4);
	p->ack = nf_get32(p->l4 + 8);
	p->flags = p->l4[13] & 0x3f;
	p->payload = p->l4 + doff;
	p->paylen = p->l4len - doff;
	p->csum_ok = p->csum_ok && nf_l4_csum(p->src, p->dst, 6, p->l4, p->l4len) == 0;
	return true;
}

bool nf_parse(const uint8_t *f, size_t len, struct nf_pkt *p)
{
	memset(p, 0, sizeof(*p));
	if (len < 14)
		return false;
	p->type = nf_get16(f + 12);
	p->l3 = f + 14;
	p->l3len = len - 14;
	if (p->type == 0x0806) {
		if (p->l3len < 28)
			return false;
		p->arp_op = nf_get16(p->l3 + 6);
		p->arp_sha = p->l3 + 8;
		p->arp_sip = nf_get32(p->l3 + 14);
		p->arp_tip = nf_get32(p->l3 + 24);
		return true;
	}
	if (p->type != 0x0800 || p->l3len < 20 || (p->l3[0] >> 4) != 4)
		return false;
	size_t ihl = (size_t)(p->l3[0] & 15) * 4, tot = nf_get16(p->l3 + 2);
	if (ihl < 20 || tot < ihl || tot > p->l3len)
		return false;
	p->proto = p->l3[9];
	p->src = nf_get32(p->l3 + 12);
	p->dst = nf_get32(p->l3 + 16);
	p->l4 = p->l3 + ihl;
	p->l4len = tot - ihl;
	p->csum_ok = nf_csum(p->l3, ihl) == 0;
	return p->proto == 6 ? parse_tcp(p) : true;
}
