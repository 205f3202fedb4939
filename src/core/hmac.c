/*
 * HMAC-SHA256 through Nettle (GnuTLS's cryptographic library). Nettle, not
 * OpenSSL's libcrypto: loading libcrypto and running its initialisation
 * costs every kvmini process about 2 MiB of resident memory (the VMM
 * overhead went from 3.8 to 5.4 MiB, past its 5 MiB target), Nettle's
 * HMAC a few pages. Keyed and fed in one call; the tokens are 16 bytes.
 */
#include <nettle/hmac.h>
#include <nettle/memops.h>

#include "core/hmac.h"

int hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
		uint8_t out[HMAC_SHA256_LEN])
{
	struct hmac_sha256_ctx ctx;

	hmac_sha256_set_key(&ctx, key_len, key);
	hmac_sha256_update(&ctx, len, data);
	hmac_sha256_digest(&ctx, HMAC_SHA256_LEN, out);
	return 0;
}

int memcmp_consttime(const void *a, const void *b, size_t len)
{
	return memeql_sec(a, b, len) ? 0 : 1;
}
