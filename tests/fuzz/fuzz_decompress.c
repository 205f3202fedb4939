/*
 * libFuzzer target: kernel payload decompression (src/vmm/decompress.c),
 * the part of --host-decompress a crafted bzImage reaches. The first byte
 * picks a format's magic to put in front of the rest, so every decoder and
 * kvmini's own parsers (lz4's legacy blocks, lzop's header and blocks, the
 * size trailer) see input of their format.
 *
 * Checked besides ASan/UBSan: a success returns a memfd whose size is at
 * most the bound and, for the formats with a size trailer, exactly what the
 * trailer says; a failure returns a negative errno with a message naming
 * the format.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/decompress.h"

#define FUZZ_MAX_OUT (16u << 20)

static const struct {
	uint8_t magic[9];
	unsigned len;
} magics[] = {
	{ { 0x1f, 0x8b, 0x08 }, 3 },
	{ { 0xfd, '7', 'z', 'X', 'Z', 0 }, 6 },
	{ { 0x5d, 0, 0 }, 3 },
	{ { 0x28, 0xb5, 0x2f, 0xfd }, 4 },
	{ { 0x02, 0x21, 0x4c, 0x18 }, 4 },
	{ { 'B', 'Z', 'h' }, 3 },
	{ { 0x89, 'L', 'Z', 'O', 0, '\r', '\n', 0x1a, '\n' }, 9 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errbuf eb = { 0 };

	if (size < 1)
		return 0;
	unsigned m = data[0] % (sizeof(magics) / sizeof(magics[0]));
	size_t len = magics[m].len + size - 1;
	uint8_t *in = malloc(len);
	if (!in)
		return 0;
	memcpy(in, magics[m].magic, magics[m].len);
	memcpy(in + magics[m].len, data + 1, size - 1);
	struct decompressed out;
	int r = decompress_payload(in, len, FUZZ_MAX_OUT, &out, &eb);
	if (r >= 0) {
		if (out.len > FUZZ_MAX_OUT || out.len == 0)
			abort();
		uint32_t trailer;
		memcpy(&trailer, in + len - 4, 4);
		if (m != 0 && out.len != trailer)
			abort();
		decompress_free(&out);
	} else if (out.data || (!strstr(eb.msg, " payload: ") && r != -ENOEXEC)) {
		abort();
	}
	free(in);
	return 0;
}
