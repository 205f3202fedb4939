/*
 * HMAC-SHA256 (RFC 2104) for the metadata service's session tokens,
 * computed by Nettle so kvmini carries no hand-written cryptography.
 */
#ifndef KVMINI_CORE_HMAC_H
#define KVMINI_CORE_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define HMAC_SHA256_LEN 32u

/* hmac_sha256 - the MAC of @data under @key in @out; 0 (Nettle's HMAC
 * cannot fail; callers still check, so another library could). */
int hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		uint8_t out[HMAC_SHA256_LEN]);

/* Compare in time independent of where the bytes differ; 0 when equal. */
int memcmp_consttime(const void *a, const void *b, size_t len);

#endif
