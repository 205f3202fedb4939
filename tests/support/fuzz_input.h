/*
 * Reading a libFuzzer input as a stream of little-endian values: past its
 * end every read yields zeros, so a fuzzer never has to check the length.
 * And FUZZ_FAIL, how a fuzzer reports a broken invariant.
 */
#ifndef KVMINI_TESTS_FUZZ_INPUT_H
#define KVMINI_TESTS_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "NAME: <printf message>" on stderr, then abort(), so that libFuzzer keeps
 * the input. @name is a string literal, like the format. */
#define FUZZ_FAIL(name, ...) do { \
	fprintf(stderr, name ": " __VA_ARGS__); \
	fprintf(stderr, "\n"); \
	abort(); \
} while (0)

struct fuzz_input {
	const uint8_t *p;
	size_t n;
};

/* The next @bytes (at most 8) as a little-endian number. */
static inline uint64_t fuzz_take(struct fuzz_input *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && in->n; i++, in->n--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

/* The next @len bytes into @buf, zero-filled past the end of the input. */
static inline void fuzz_take_bytes(struct fuzz_input *in, void *buf, size_t len)
{
	size_t n = len < in->n ? len : in->n;

	memcpy(buf, in->p, n);
	memset((uint8_t *)buf + n, 0, len - n);
	in->p += n;
	in->n -= n;
}

#endif
