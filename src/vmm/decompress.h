/*
 * Decompression of a Linux kernel's compressed payload (the vmlinux inside a
 * bzImage), with the libraries Debian ships: zlib (gzip), liblzma (xz and
 * the legacy lzma format), libzstd, liblz4 (the kernel's lz4 is the legacy
 * frame of `lz4 -l`), libbz2 and liblzo2 (the lzop file format). Nothing
 * here starts a program.
 *
 * The payload is taken as the kernel's build writes it: its last 4 bytes
 * say, little-endian, what it decompresses to (the build's size_append
 * after every format but gzip, whose own trailer ends the same way), and
 * the output must come out exactly that long. That size is checked against
 * @max_out before anything is allocated, so a hostile image cannot make
 * kvmini allocate without limit; decoders' own memory is bounded too. A
 * truncated or corrupt payload is an error naming the format and what was
 * wrong, and nothing partial is returned.
 */
#ifndef KVMINI_VMM_DECOMPRESS_H
#define KVMINI_VMM_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

/* The format of @in by its magic bytes ("gzip", "xz", "lzma", "zstd",
 * "lz4", "bzip2", "lzo"), or NULL. */
const char *decompress_format(const uint8_t *in, size_t len);

/* What a payload decompressed to: @len bytes at @data, in anonymous memory
 * (2 MiB pages where the kernel allows) that decompress_free() gives back. */
struct decompressed {
	uint8_t *data;
	size_t len;
	size_t map_len;         /* the mapping's length (the spare byte included) */
};

/*
 * Decompress the payload @in (trailer included) into @out: returns 0, or
 * -ENOEXEC for an unknown format, -EINVAL for a truncated or corrupt
 * payload, -EFBIG when the trailer announces more than @max_out bytes,
 * -ENOMEM; @eb says which and where, and @out holds nothing.
 */
int decompress_payload(const uint8_t *in, size_t len, size_t max_out, struct decompressed *out,
		       struct errbuf *eb);

/* Give back what decompress_payload() made; safe on an empty @d. */
void decompress_free(struct decompressed *d);

#endif
