/*
 * SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the metadata
 * service's session tokens. Small and self-contained so kvmini does not
 * link a crypto library (libcrypto alone added 1.5 MiB to kvmini's
 * resident memory, a third of the VMM's whole budget).
 */
#ifndef KVMINI_CORE_SHA256_H
#define KVMINI_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32u
#define SHA256_BLOCK 64u

struct sha256 {
	uint32_t h[8];
	uint64_t total;               /* bytes hashed so far */
	uint8_t block[SHA256_BLOCK];
	size_t fill;                  /* bytes waiting in block[] */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);

void hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		 uint8_t out[SHA256_LEN]);

/* Compare in time independent of where the bytes differ; 0 when equal. */
int memcmp_consttime(const void *a, const void *b, size_t len);

#endif
