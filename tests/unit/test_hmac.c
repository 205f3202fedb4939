/*
 * HMAC-SHA256 through libcrypto against RFC 4231's test cases 1, 2, 3, 4,
 * 6 and 7 (7 and 6: keys longer than a block), and the constant-time
 * comparison the MMDS token check uses.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/hmac.h"

static void hex(const uint8_t *d, char *out)
{
	for (unsigned i = 0; i < HMAC_SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void expect_hmac(const void *key, size_t klen, const void *msg, size_t mlen,
			const char *want)
{
	uint8_t d[HMAC_SHA256_LEN];
	char got[2 * HMAC_SHA256_LEN + 1];

	CHECK_EQ(hmac_sha256(key, klen, msg, mlen, d), 0);
	hex(d, got);
	if (strcmp(got, want)) {
		fprintf(stderr, "  hmac(key %zu bytes, msg %zu bytes): %s, want %s\n", klen, mlen,
			got, want);
		CHECK(0);
	}
}

static void test_rfc4231_short_keys(void)
{
	uint8_t k1[20], k3[20], k4[25], m3[50], m4[50];

	memset(k1, 0x0b, sizeof(k1));
	memset(k3, 0xaa, sizeof(k3));
	memset(m3, 0xdd, sizeof(m3));
	for (unsigned i = 0; i < sizeof(k4); i++)
		k4[i] = (uint8_t)(i + 1);
	memset(m4, 0xcd, sizeof(m4));
	expect_hmac(k1, sizeof(k1), "Hi There", 8,
		    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	expect_hmac("Jefe", 4, "what do ya want for nothing?", 28,
		    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	expect_hmac(k3, sizeof(k3), m3, sizeof(m3),
		    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
	expect_hmac(k4, sizeof(k4), m4, sizeof(m4),
		    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
}

static void test_rfc4231_long_keys(void)
{
	static const char m6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	static const char m7[] = "This is a test using a larger than block-size key and a larger "
				 "than block-size data. The key needs to be hashed before being "
				 "used by the HMAC algorithm.";
	uint8_t k[131];

	memset(k, 0xaa, sizeof(k));
	expect_hmac(k, sizeof(k), m6, strlen(m6),
		    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	expect_hmac(k, sizeof(k), m7, strlen(m7),
		    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void test_memcmp_consttime(void)
{
	CHECK_EQ(memcmp_consttime("abcd", "abcd", 4), 0);
	CHECK_EQ(memcmp_consttime("abcd", "abce", 4), 1);
	CHECK_EQ(memcmp_consttime("xbcd", "abcd", 4), 1);
	CHECK_EQ(memcmp_consttime("a", "b", 0), 0);
}

int main(void)
{
	RUN_TEST(test_rfc4231_short_keys);
	RUN_TEST(test_rfc4231_long_keys);
	RUN_TEST(test_memcmp_consttime);
	return CHECK_DONE();
}
