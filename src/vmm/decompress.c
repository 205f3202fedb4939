/*
 * Kernel payload decompression through libraries (see decompress.h).
 *
 * Every payload announces its output size, so the output is allocated once,
 * that size plus one spare byte, and one short function per format fills it
 * in a single pass. The spare byte tells "longer than announced" from
 * "exactly as announced" without a decoder ever meeting a full buffer
 * before its end marker. The loader copies what came out straight from
 * that buffer into guest RAM: a copy through a memfd cost 1.5 s of a 2.6 s
 * load on the nested platform (53 MB of 4 KiB shmem pages written once and
 * read once).
 */
#include "vmm/decompress.h"

#include <bzlib.h>
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <lzo/lzo1x.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "core/byteorder.h"
#include "core/compiler.h"

/* What liblzma may allocate (its dictionary): `xz -9` and `lzma -9` need
 * 65 MiB to decode, a hostile header could ask for 4 GiB. libzstd decodes
 * into the output buffer in one shot and needs no window of its own. */
#define LZMA_MEM_MAX (256u << 20)

/* One payload being decoded. */
struct job {
	const char *format;
	const uint8_t *in;      /* the compressed data, size trailer excluded */
	size_t in_len;
	uint8_t *out;
	size_t cap;             /* the announced size plus the spare byte */
	size_t out_len;         /* what the decoder wrote */
	struct errbuf *eb;      /* the caller's */
};

static int fail(const struct job *j, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* @r, with "<format> payload: <what>" in the caller's errbuf. */
static int fail(const struct job *j, int r, const char *fmt, ...)
{
	char what[ERRBUF_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	errbuf_set(j->eb, "%s payload: %s", j->format, what);
	return r;
}

/* The decoder reached the spare byte. */
static int too_long(const struct job *j)
{
	return fail(j, -EINVAL, "decompresses to more than the %zu bytes its trailer says",
		    j->cap - 1);
}

/* gzip: zlib with the gzip wrapper, which checks its own CRC-32 and size. */
static int gunzip(struct job *j)
{
	z_stream z = {
		.next_in = (Bytef *)j->in, .avail_in = (uInt)j->in_len,
		.next_out = j->out, .avail_out = (uInt)j->cap,
	};

	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return fail(j, -ENOMEM, "cannot start zlib");
	int zr = inflate(&z, Z_FINISH);
	const char *msg = z.msg ? z.msg : zError(zr);   /* zlib's static strings */
	j->out_len = j->cap - z.avail_out;
	inflateEnd(&z);
	if (zr == Z_STREAM_END)
		return 0;
	if (zr == Z_BUF_ERROR && !z.avail_out)
		return too_long(j);
	if (zr == Z_BUF_ERROR)
		return fail(j, -EINVAL, "truncated (zlib: the stream does not end)");
	if (zr == Z_MEM_ERROR)
		return fail(j, -ENOMEM, "out of memory (zlib)");
	return fail(j, -EINVAL, "data is corrupt (zlib: %s)", msg);
}

static const char *lzma_why(lzma_ret lr)
{
	switch (lr) {
	case LZMA_DATA_ERROR: return "data is corrupt (liblzma: LZMA_DATA_ERROR)";
	case LZMA_FORMAT_ERROR: return "not in the expected format (liblzma: LZMA_FORMAT_ERROR)";
	case LZMA_OPTIONS_ERROR: return "unsupported options (liblzma: LZMA_OPTIONS_ERROR)";
	case LZMA_BUF_ERROR: return "truncated (liblzma: the stream does not end)";
	case LZMA_MEMLIMIT_ERROR:
		return "its dictionary passes kvmini's bound (liblzma: LZMA_MEMLIMIT_ERROR)";
	case LZMA_MEM_ERROR: return "out of memory (liblzma)";
	default: return "cannot be decoded (liblzma)";
	}
}

/* xz (one stream; the kernel's build uses a CRC-32 check, which liblzma
 * verifies) and the legacy .lzma format: liblzma. */
static int unxz(struct job *j, bool alone)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_ret lr = alone ? lzma_alone_decoder(&s, LZMA_MEM_MAX)
			    : lzma_stream_decoder(&s, LZMA_MEM_MAX, 0);

	if (lr != LZMA_OK)
		return fail(j, -ENOMEM, "cannot start liblzma");
	s.next_in = j->in;
	s.avail_in = j->in_len;
	s.next_out = j->out;
	s.avail_out = j->cap;
	/* FINISH: all the input is here, so a stalled decoder means a short
	 * payload (LZMA_BUF_ERROR), never "call again". */
	do
		lr = lzma_code(&s, LZMA_FINISH);
	while (lr == LZMA_OK);
	j->out_len = j->cap - s.avail_out;
	lzma_end(&s);
	if (lr == LZMA_STREAM_END)
		return 0;
	if (lr == LZMA_BUF_ERROR && !s.avail_out)
		return too_long(j);
	return fail(j, lr == LZMA_MEM_ERROR ? -ENOMEM : -EINVAL, "%s", lzma_why(lr));
}

/* zstd: one shot into the output, frames and skippable frames as they come. */
static int unzstd(struct job *j)
{
	size_t n = ZSTD_decompress(j->out, j->cap, j->in, j->in_len);

	if (!ZSTD_isError(n)) {
		j->out_len = n;
		return 0;
	}
	switch (ZSTD_getErrorCode(n)) {
	case ZSTD_error_dstSize_tooSmall:
		return too_long(j);
	case ZSTD_error_srcSize_wrong:
		return fail(j, -EINVAL, "truncated (libzstd: %s)", ZSTD_getErrorName(n));
	case ZSTD_error_memory_allocation:
		return fail(j, -ENOMEM, "out of memory (libzstd)");
	default:
		return fail(j, -EINVAL, "data is corrupt (libzstd: %s)", ZSTD_getErrorName(n));
	}
}

/* lz4's legacy frame (`lz4 -l`): the magic, then blocks of a 4-byte LE
 * compressed size and an LZ4 block of at most 8 MiB uncompressed; the magic
 * again starts another stream (concatenated files). It has no end mark and
 * no checksum: the input's end ends it. */
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20)

/* Whether a block that did not fit the room left decodes in a block's
 * full room: only then is the payload longer than announced rather than
 * corrupt (liblz4 reports both alike). Error path only. */
static bool lz4_block_is_sound(const uint8_t *src, uint32_t csize)
{
	char *scratch = malloc(LZ4_LEGACY_BLOCK);
	bool sound = scratch && LZ4_decompress_safe((const char *)src, scratch, (int)csize,
						    LZ4_LEGACY_BLOCK) >= 0;

	free(scratch);
	return sound;
}

/* One block, @csize bytes at @src, appended to the output. */
static int unlz4_block(struct job *j, const uint8_t *src, uint32_t csize, unsigned block)
{
	size_t room = MIN(j->cap - j->out_len, (size_t)LZ4_LEGACY_BLOCK);
	int n = LZ4_decompress_safe((const char *)src, (char *)j->out + j->out_len, (int)csize,
				    (int)room);

	if (n < 0 && room < LZ4_LEGACY_BLOCK && lz4_block_is_sound(src, csize))
		return too_long(j);
	if (n < 0)
		return fail(j, -EINVAL, "block %u is corrupt (liblz4)", block);
	j->out_len += (size_t)n;
	return j->out_len == j->cap ? too_long(j) : 0;
}

static int unlz4(struct job *j)
{
	size_t off = 4;
	unsigned block = 0;

	while (off < j->in_len) {
		if (j->in_len - off < 4)
			return fail(j, -EINVAL, "block %u is truncated (%zu of its 4 size bytes)",
				    block, j->in_len - off);
		uint32_t csize = get_le32(j->in + off);
		off += 4;
		if (csize == LZ4_LEGACY_MAGIC)
			continue;
		if (csize == 0 || csize > (uint32_t)LZ4_COMPRESSBOUND(LZ4_LEGACY_BLOCK))
			return fail(j, -EINVAL, "block %u has an impossible size (%u bytes)",
				    block, csize);
		if (csize > j->in_len - off)
			return fail(j, -EINVAL, "block %u is truncated (%u bytes, %zu left)",
				    block, csize, j->in_len - off);
		int r = unlz4_block(j, j->in + off, csize, block);
		if (r < 0)
			return r;
		off += csize;
		block++;
	}
	return block ? 0 : fail(j, -EINVAL, "no block after the magic");
}

/* bzip2: libbz2, one shot. */
static int unbzip2(struct job *j)
{
	unsigned int n = (unsigned int)j->cap;
	int br = BZ2_bzBuffToBuffDecompress((char *)j->out, &n, (char *)j->in,
					    (unsigned int)j->in_len, 0, 0);

	switch (br) {
	case BZ_OK:
		j->out_len = n;
		return 0;
	case BZ_OUTBUFF_FULL:
		return too_long(j);
	case BZ_UNEXPECTED_EOF:
		return fail(j, -EINVAL, "truncated (libbz2: the stream does not end)");
	case BZ_MEM_ERROR:
		return fail(j, -ENOMEM, "out of memory (libbz2)");
	case BZ_DATA_ERROR:
		return fail(j, -EINVAL, "data is corrupt (libbz2: BZ_DATA_ERROR)");
	default:
		return fail(j, -EINVAL, "data is corrupt (libbz2 error %d)", br);
	}
}

/* lzop's file format, as the kernel's build writes it (`lzop -9`). */
#define LZOP_F_ADLER32_D 0x1u
#define LZOP_F_ADLER32_C 0x2u
#define LZOP_F_H_EXTRA_FIELD 0x40u
#define LZOP_F_CRC32_D 0x100u
#define LZOP_F_CRC32_C 0x200u
#define LZOP_F_H_FILTER 0x800u
#define LZOP_F_H_CRC32 0x1000u
#define LZOP_VERSION_LONG 0x0940u    /* from here the header has more fields */
#define LZOP_BLOCK_MAX (64u << 20)   /* lzop's own bound; it writes 256 KiB */

/* A big-endian reader over the lzop data that notes a short read instead
 * of stopping: the caller checks once. */
struct cursor {
	const uint8_t *p;
	size_t left;
	bool short_read;
};

static const uint8_t *skip(struct cursor *c, size_t n)
{
	const uint8_t *at = c->p;

	if (c->left < n) {
		c->short_read = true;
		c->left = 0;
		return NULL;
	}
	c->p += n;
	c->left -= n;
	return at;
}

static uint32_t take(struct cursor *c, unsigned n)
{
	const uint8_t *p = skip(c, n);
	uint32_t x = 0;

	for (unsigned i = 0; p && i < n; i++)
		x = x << 8 | p[i];
	return x;
}

/* lzop's checksum of its header: adler32, or CRC-32 when the flags say. */
static uint32_t lzop_sum(uint32_t flags, const uint8_t *p, size_t len)
{
	return flags & LZOP_F_H_CRC32 ? lzo_crc32(0, p, len) : lzo_adler32(1, p, len);
}

/* The optional extra field and its own checksum; 0 or -EINVAL. */
static int lzop_extra(struct cursor *c, uint32_t flags, const struct job *j)
{
	const uint8_t *start = c->p;
	uint32_t len = take(c, 4);

	skip(c, len);
	if (c->short_read)
		return fail(j, -EINVAL, "truncated header");
	uint32_t sum = lzop_sum(flags, start, (size_t)(c->p - start));
	if (take(c, 4) != sum || c->short_read)
		return fail(j, -EINVAL, "header extra field checksum mismatch");
	return 0;
}

/* The header after the magic, its checksum verified; the flags, or -EINVAL. */
static int64_t lzop_header(struct cursor *c, const struct job *j)
{
	const uint8_t *start = c->p;
	unsigned version = take(c, 2);

	take(c, 2);                                      /* library version */
	if (version >= LZOP_VERSION_LONG)
		take(c, 2);                              /* version needed */
	unsigned method = take(c, 1);
	if (version >= LZOP_VERSION_LONG)
		take(c, 1);                              /* level */
	uint32_t flags = take(c, 4);
	if (flags & LZOP_F_H_FILTER)
		take(c, 4);                              /* filter */
	take(c, 8);                                      /* mode, mtime */
	if (version >= LZOP_VERSION_LONG)
		take(c, 4);                              /* mtime, high half */
	skip(c, take(c, 1));                             /* the file name */
	if (c->short_read)
		return fail(j, -EINVAL, "truncated header");
	uint32_t sum = lzop_sum(flags, start, (size_t)(c->p - start));
	if (take(c, 4) != sum || c->short_read)
		return fail(j, -EINVAL, "header checksum mismatch");
	if (flags & LZOP_F_H_EXTRA_FIELD && lzop_extra(c, flags, j) < 0)
		return -EINVAL;
	/* 1..3: LZO1X-1, LZO1X-1(15), LZO1X-999, all read by one decoder. */
	if (method < 1 || method > 3)
		return fail(j, -EINVAL, "method %u is not LZO1X", method);
	if (flags & LZOP_F_H_FILTER)
		return fail(j, -EINVAL, "lzop's filters are not supported");
	return flags;
}

/* One block's fields after its uncompressed length. */
struct lzop_block {
	uint32_t dlen, clen;
	uint32_t d_adler, d_crc, c_adler, c_crc;
	const uint8_t *data;
};

/* lzop_block_check - the block's optional checksums: 0 or -EBADMSG. */
static int lzop_block_check(const struct lzop_block *b, uint32_t flags, const uint8_t *out)
{
	bool stored = b->clen == b->dlen;

	if (flags & LZOP_F_ADLER32_D && lzo_adler32(1, out, b->dlen) != b->d_adler)
		return -EBADMSG;
	if (flags & LZOP_F_CRC32_D && lzo_crc32(0, out, b->dlen) != b->d_crc)
		return -EBADMSG;
	if (!stored && flags & LZOP_F_ADLER32_C && lzo_adler32(1, b->data, b->clen) != b->c_adler)
		return -EBADMSG;
	if (!stored && flags & LZOP_F_CRC32_C && lzo_crc32(0, b->data, b->clen) != b->c_crc)
		return -EBADMSG;
	return 0;
}

/* The block at @c (its length word already read) decoded into the output. */
static int unlzo_block(struct job *j, struct cursor *c, struct lzop_block *b, uint32_t flags,
		       unsigned block)
{
	b->clen = take(c, 4);
	b->d_adler = flags & LZOP_F_ADLER32_D ? take(c, 4) : 0;
	b->d_crc = flags & LZOP_F_CRC32_D ? take(c, 4) : 0;
	/* A stored block's compressed checksums are its data's: not repeated. */
	b->c_adler = b->clen < b->dlen && flags & LZOP_F_ADLER32_C ? take(c, 4) : 0;
	b->c_crc = b->clen < b->dlen && flags & LZOP_F_CRC32_C ? take(c, 4) : 0;
	b->data = skip(c, b->clen);
	if (c->short_read)
		return fail(j, -EINVAL, "block %u is truncated", block);
	if (b->dlen > LZOP_BLOCK_MAX || b->clen > b->dlen || !b->clen)
		return fail(j, -EINVAL, "block %u has impossible sizes (%u bytes to %u)", block,
			    b->clen, b->dlen);
	if (b->dlen > j->cap - 1 - j->out_len)
		return too_long(j);
	uint8_t *dst = j->out + j->out_len;
	lzo_uint got = b->dlen;
	if (b->clen == b->dlen)
		memcpy(dst, b->data, b->dlen);   /* stored: it did not compress */
	else if (lzo1x_decompress_safe(b->data, b->clen, dst, &got, NULL) != LZO_E_OK ||
		 got != b->dlen)
		return fail(j, -EINVAL, "block %u is corrupt (liblzo2)", block);
	if (lzop_block_check(b, flags, dst) < 0)
		return fail(j, -EINVAL, "block %u: checksum mismatch", block);
	j->out_len += b->dlen;
	return 0;
}

static int unlzo(struct job *j)
{
	struct cursor c = { .p = j->in + 9, .left = j->in_len - 9 };
	int64_t flags = lzop_header(&c, j);

	if (flags < 0)
		return (int)flags;
	if (lzo_init() != LZO_E_OK)
		return fail(j, -ENOMEM, "cannot start liblzo2");
	for (unsigned block = 0;; block++) {
		struct lzop_block b = { .dlen = take(&c, 4) };
		if (c.short_read)
			return fail(j, -EINVAL, "block %u is truncated (no end mark)", block);
		if (!b.dlen)
			return 0;
		int r = unlzo_block(j, &c, &b, (uint32_t)flags, block);
		if (r < 0)
			return r;
	}
}

static int unxz_stream(struct job *j) { return unxz(j, false); }
static int unxz_alone(struct job *j) { return unxz(j, true); }

enum format { GZIP, XZ, LZMA, ZSTD, LZ4, BZIP2, LZO, N_FORMATS };

/* By magic. Every format but gzip has the build's size_append after it;
 * gzip's own trailer ends with the same size (ISIZE), so it stays. */
static const struct {
	const char *name;
	uint8_t magic[9];
	unsigned magic_len;
	bool size_appended;
	int (*decode)(struct job *j);
} formats[N_FORMATS] = {
	[GZIP]  = { "gzip",  { 0x1f, 0x8b, 8 }, 3, false, gunzip },
	[XZ]    = { "xz",    { 0xfd, '7', 'z', 'X', 'Z', 0 }, 6, true, unxz_stream },
	[LZMA]  = { "lzma",  { 0x5d, 0, 0 }, 3, true, unxz_alone },
	[ZSTD]  = { "zstd",  { 0x28, 0xb5, 0x2f, 0xfd }, 4, true, unzstd },
	[LZ4]   = { "lz4",   { 0x02, 0x21, 0x4c, 0x18 }, 4, true, unlz4 },
	[BZIP2] = { "bzip2", { 'B', 'Z', 'h' }, 3, true, unbzip2 },
	[LZO]   = { "lzo",   { 0x89, 'L', 'Z', 'O', 0, '\r', '\n', 0x1a, '\n' }, 9, true, unlzo },
};

static int find_format(const uint8_t *in, size_t len)
{
	for (int i = 0; i < N_FORMATS; i++)
		if (len >= formats[i].magic_len && !memcmp(in, formats[i].magic, formats[i].magic_len))
			return i;
	return -1;
}

const char *decompress_format(const uint8_t *in, size_t len)
{
	int f = find_format(in, len);

	return f < 0 ? NULL : formats[f].name;
}

/* The announced size from the trailer, which leaves the input when the
 * build appended it; the size, or -errno. */
static int64_t trailer_size(int f, struct job *j, size_t max_out)
{
	if (j->in_len < formats[f].magic_len + 4)
		return fail(j, -EINVAL, "truncated (%zu bytes)", j->in_len);
	uint32_t want = get_le32(j->in + j->in_len - 4);
	if (formats[f].size_appended)
		j->in_len -= 4;
	if (!want)
		return fail(j, -EINVAL, "its trailer says it decompresses to nothing");
	if (want > max_out)
		return fail(j, -EFBIG, "its trailer says it decompresses to %u bytes, more than "
			    "kvmini's bound of %zu MiB", want, max_out >> 20);
	return want;
}

/* The output buffer, @cap bytes of anonymous memory in 2 MiB pages where
 * the kernel allows: decoders write some 50 MB into it, and on 4 KiB pages,
 * where the host is itself a VM (nested paging), the TLB misses cost more
 * than lz4's decoding (4x, measured). 0 or -ENOMEM. */
static int alloc_output(struct job *j)
{
	void *p = mmap(NULL, j->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return fail(j, -ENOMEM, "cannot allocate the output (%zu bytes)", j->cap);
	madvise(p, j->cap, MADV_HUGEPAGE);   /* a hint: 4 KiB pages work too */
	j->out = p;
	return 0;
}

/* What the decoder wrote against what the trailer announced. */
static int check_length(const struct job *j)
{
	size_t want = j->cap - 1;

	if (j->out_len == j->cap)
		return too_long(j);     /* a one-shot decoder filled the spare byte */
	if (j->out_len != want)
		return fail(j, -EINVAL, "came out as %zu bytes, not the %zu its trailer says",
			    j->out_len, want);
	return 0;
}

int decompress_payload(const uint8_t *in, size_t len, size_t max_out, struct decompressed *out,
		       struct errbuf *eb)
{
	int f = find_format(in, len);

	*out = (struct decompressed){ 0 };
	if (f < 0) {
		errbuf_set(eb, "payload in an unknown compression format");
		return -ENOEXEC;
	}
	struct job j = { .format = formats[f].name, .in = in, .in_len = len,
			 .eb = eb };
	/* The libraries count in 32 bits (zlib, libbz2, liblz4). */
	if (len > INT32_MAX)
		return fail(&j, -EFBIG, "%zu bytes is more than kvmini decodes", len);
	int64_t want = trailer_size(f, &j, MIN(max_out, (size_t)INT32_MAX - 1));
	if (want < 0)
		return (int)want;
	j.cap = (size_t)want + 1;
	int r = alloc_output(&j);
	if (!r)
		r = formats[f].decode(&j);
	if (!r)
		r = check_length(&j);
	if (r < 0) {
		if (j.out)
			munmap(j.out, j.cap);
		return r;
	}
	*out = (struct decompressed){ .data = j.out, .len = j.out_len, .map_len = j.cap };
	return 0;
}

void decompress_free(struct decompressed *d)
{
	if (d->data)
		munmap(d->data, d->map_len);
	*d = (struct decompressed){ 0 };
}
