/*
 * Ethernet frames for tests, fuzzers and benches: ARP, IPv4/TCP and UDP frames
 * built with correct checksums, and a parser for what comes back. A tiny
 * guest-side TCP client (tcp_peer) keeps sequence numbers for scripted
 * connections. Addresses are host byte order here.
 */
#ifndef KVMINI_TESTS_NETFRAME_H
#define KVMINI_TESTS_NETFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NF_TCP_FIN 0x01
#define NF_TCP_SYN 0x02
#define NF_TCP_RST 0x04
#define NF_TCP_PSH 0x08
#define NF_TCP_ACK 0x10

uint32_t nf_ip4(const char *dotted);
void nf_put16(uint8_t *p, uint16_t v);
void nf_put32(uint8_t *p, uint32_t v);
uint16_t nf_get16(const uint8_t *p);
uint32_t nf_get32(const uint8_t *p);

/* The Internet checksum of @p[0..len) (RFC 1071), ready to store. */
uint16_t nf_csum(const uint8_t *p, size_t len);
/* The checksum of an L4 segment with the IPv4 pseudo-header. */
uint16_t nf_l4_csum(uint32_t src, uint32_t dst, uint8_t proto, const uint8_t *seg, size_t len);
/* Ethernet header from @src_mac to @dst_mac; returns its length (14). */
size_t nf_eth(uint8_t *f, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint16_t type);
/* IPv4 header (no options, TTL 64, checksummed) at @ip for @payload bytes of
 * @proto; returns its length (20). */
size_t nf_ipv4(uint8_t *ip, uint8_t proto, uint32_t src, uint32_t dst, size_t payload,
	       uint16_t id);

/* ARP request from (mac, sip) for tip, broadcast; returns the length (42). */
size_t nf_arp_request(uint8_t *f, const uint8_t mac[6], uint32_t sip, uint32_t tip);
/* ARP reply from (mac, sip) to (tmac, tip). */
size_t nf_arp_reply(uint8_t *f, const uint8_t mac[6], uint32_t sip, const uint8_t tmac[6],
		    uint32_t tip);
/* IPv4/TCP frame with @len payload bytes; @f must hold 54 + len. */
size_t nf_tcp(uint8_t *f, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint32_t src,
	      uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
	      uint8_t flags, const void *payload, size_t len);

/* IPv4/UDP frame (checksummed) with @len payload bytes; @f must hold 42 + len. */
size_t nf_udp(uint8_t *f, const uint8_t src_mac[6], const uint8_t dst_mac[6], uint32_t src,
	      uint32_t dst, uint16_t sport, uint16_t dport, const void *payload, size_t len);

/* A parsed frame. */
struct nf_pkt {
	uint16_t type;          /* ethertype */
	const uint8_t *l3;
	size_t l3len;
	/* ARP */
	uint16_t arp_op;
	uint32_t arp_sip, arp_tip;
	const uint8_t *arp_sha;
	/* IPv4 */
	uint8_t proto;
	uint32_t src, dst;
	const uint8_t *l4;
	size_t l4len;
	/* TCP */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	const uint8_t *payload;
	size_t paylen;
	bool csum_ok;           /* IPv4 header and TCP checksums verified */
};
bool nf_parse(const uint8_t *f, size_t len, struct nf_pkt *p);

#endif
