/*
 * SHA-256 against the FIPS 180-4 examples and HMAC-SHA256 against RFC 4231
 * (cases 1, 2 and 6: a key longer than a block), fed whole and in pieces
 * that straddle block boundaries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/sha256.h"

static void hex(const uint8_t *d, char *out)
{
	for (unsigned i = 0; i < SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* digest_in_pieces - hash @len bytes fed @piece bytes at a time. */
static void digest_in_pieces(const void *data, size_t len, size_t piece, char *out)
{
	struct sha256 s;
	uint8_t d[SHA256_LEN];

	sha256_init(&s);
	for (size_t off = 0; off < len; off += piece)
		sha256_update(&s, (const uint8_t *)data + off, len - off < piece ? len - off : piece);
	sha256_final(&s, d);
	hex(d, out);
}

static void expect_digest(const void *data, size_t len, const char *want)
{
	static const size_t pieces[] = { 1, 3, 55, 56, 63, 64, 65, 1000, (size_t)-1 };
	char got[2 * SHA256_LEN + 1];

	for (unsigned i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		digest_in_pieces(data, len, pieces[i] == (size_t)-1 ? (len ? len : 1) : pieces[i], got);
		if (strcmp(got, want)) {
			fprintf(stderr, "  len %zu piece %zu: %s, want %s\n", len, pieces[i], got, want);
			CHECK(0);
		}
	}
}

static void test_fips_examples(void)
{
	expect_digest("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect_digest("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	expect_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
		      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_long_inputs(void)
{
	uint8_t *a = malloc(1000000), bytes[768];

	CHECK(a != NULL);
	if (!a)
		return;
	memset(a, 'a', 1000000);
	expect_digest(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
	for (unsigned i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)i;
	expect_digest(bytes, sizeof(bytes), "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363");
}

static void expect_hmac(const void *key, size_t klen, const char *msg, const char *want)
{
	uint8_t d[SHA256_LEN];
	char got[2 * SHA256_LEN + 1];

	hmac_sha256(key, klen, msg, strlen(msg), d);
	hex(d, got);
	if (strcmp(got, want)) {
		fprintf(stderr, "  hmac(%s): %s, want %s\n", msg, got, want);
		CHECK(0);
	}
}

static void test_rfc4231(void)
{
	uint8_t k1[20], k6[131];

	memset(k1, 0x0b, sizeof(k1));
	memset(k6, 0xaa, sizeof(k6));
	expect_hmac(k1, sizeof(k1), "Hi There",
		    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	expect_hmac("Jefe", 4, "what do ya want for nothing?",
		    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	expect_hmac(k6, sizeof(k6), "Test Using Larger Than Block-Size Key - Hash Key First",
		    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
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
	RUN_TEST(test_fips_examples);
	RUN_TEST(test_long_inputs);
	RUN_TEST(test_rfc4231);
	RUN_TEST(test_memcmp_consttime);
	return CHECK_DONE();
}
