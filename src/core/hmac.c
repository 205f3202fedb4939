/*
 * HMAC-SHA256 through OpenSSL's one-shot HMAC(), which OpenSSL 3 keeps
 * undeprecated (only the HMAC_CTX functions are); it fetches the digest
 * once per call, cheap beside the HTTP round trip a token costs.
 */
#include <errno.h>
#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/hmac.h"

int hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		uint8_t out[HMAC_SHA256_LEN])
{
	unsigned int out_len = 0;

	if (key_len > INT_MAX)
		return -EINVAL;
	if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len))
		return -EIO;
	return out_len == HMAC_SHA256_LEN ? 0 : -EIO;
}

int memcmp_consttime(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) ? 1 : 0;
}
