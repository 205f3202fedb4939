/*
 * Unit tests of kernel payload decompression (vmm/decompress.c) and of
 * --host-decompress on a bzImage (vmm/unpack.c). Each format's payload is
 * made here with the same library's compressor, laid out as the kernel's
 * build lays it out (the size trailer included); each is decoded good,
 * truncated, corrupt, with a trailer that lies either way, and against a
 * bound it passes. Debian's own cloud kernel (lz4), when the nested
 * platform has cached it, is unpacked too. The ELF loader is checked on an
 * image in memory (what --host-decompress hands it) against the same bytes
 * in a file.
 *
 * With a file argument the binary only decompresses that payload (trailer
 * included) to stdout: tests/unit/decompress_tools.sh feeds it what the
 * real command-line compressors write.
 */
#include <bzlib.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <lzma.h>
#include <lzo/lzo1x.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <asm/bootparam.h>

#include "check.h"
#include "core/compiler.h"
#include "vmm/boot.h"
#include "vmm/decompress.h"
#include "vmm/vm.h"

#define DATA_LEN (3u << 20)
#define MAX_OUT (64u << 20)

/* A payload under construction. */
struct buf {
	uint8_t *p;
	size_t len;
};

static uint8_t *data;   /* what every payload decompresses to */

/* Compressible but not trivial, like code: repeated phrases and noise. */
static void make_data(void)
{
	uint32_t x = 12345;

	data = malloc(DATA_LEN);
	for (size_t i = 0; i < DATA_LEN; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (i / 64) % 3 ? (uint8_t)"kvmini kernel payload "[i % 22] : (uint8_t)(x >> 24);
	}
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static struct buf new_buf(void)
{
	return (struct buf){ malloc(DATA_LEN * 2), 0 };
}

/* The build's size_append. */
static void append_size(struct buf *b, size_t size)
{
	put_le32(b->p + b->len, (uint32_t)size);
	b->len += 4;
}

/* `gzip -9`: deflate in the gzip wrapper, whose own trailer ends with the size. */
static struct buf gzip_payload(void)
{
	struct buf b = new_buf();
	z_stream z = { .next_in = data, .avail_in = DATA_LEN, .next_out = b.p,
		       .avail_out = DATA_LEN * 2 };

	CHECK_EQ(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
	CHECK_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
	b.len = z.total_out;
	deflateEnd(&z);
	return b;
}

/* xz as the kernel's build makes it: CRC-32 check, x86 BCJ, then LZMA2. */
static struct buf xz_payload(void)
{
	struct buf b = new_buf();
	lzma_options_lzma opt;
	lzma_lzma_preset(&opt, 6);
	lzma_filter filters[] = {
		{ .id = LZMA_FILTER_X86 },
		{ .id = LZMA_FILTER_LZMA2, .options = &opt },
		{ .id = LZMA_VLI_UNKNOWN },
	};
	CHECK_EQ(lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, NULL, data, DATA_LEN, b.p,
					   &b.len, DATA_LEN * 2), LZMA_OK);
	append_size(&b, DATA_LEN);
	return b;
}

/* The legacy .lzma format (`lzma -9`), its size unknown, so with an end mark. */
static struct buf lzma_payload(void)
{
	struct buf b = new_buf();
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_options_lzma opt;

	lzma_lzma_preset(&opt, 6);
	CHECK_EQ(lzma_alone_encoder(&s, &opt), LZMA_OK);
	s.next_in = data;
	s.avail_in = DATA_LEN;
	s.next_out = b.p;
	s.avail_out = DATA_LEN * 2;
	CHECK_EQ(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
	b.len = s.total_out;
	lzma_end(&s);
	append_size(&b, DATA_LEN);
	return b;
}

/* With the content checksum, which the zstd program writes by default. */
static struct buf zstd_payload(void)
{
	struct buf b = new_buf();
	ZSTD_CCtx *c = ZSTD_createCCtx();

	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 19);
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
	b.len = ZSTD_compress2(c, b.p, DATA_LEN * 2, data, DATA_LEN);
	CHECK(!ZSTD_isError(b.len));
	ZSTD_freeCCtx(c);
	append_size(&b, DATA_LEN);
	return b;
}

/* lz4's legacy frame, in blocks of @block bytes (the kernel's are 8 MiB;
 * smaller ones here so there are several); the magic again after block
 * @magic_after, as concatenated streams have it. */
static struct buf lz4_frames(unsigned block, unsigned magic_after)
{
	struct buf b = new_buf();

	put_le32(b.p, 0x184c2102u);
	b.len = 4;
	for (size_t off = 0, i = 0; off < DATA_LEN; off += block, i++) {
		if (i == magic_after) {
			put_le32(b.p + b.len, 0x184c2102u);
			b.len += 4;
		}
		int len = (int)MIN(block, DATA_LEN - off);
		int n = LZ4_compress_default((const char *)data + off, (char *)b.p + b.len + 4,
					     len, LZ4_compressBound(len));
		CHECK(n > 0);
		put_le32(b.p + b.len, (uint32_t)n);
		b.len += 4 + (size_t)n;
	}
	append_size(&b, DATA_LEN);
	return b;
}

static struct buf lz4_payload(void)
{
	return lz4_frames(512u << 10, ~0u);
}

static struct buf bzip2_payload(void)
{
	struct buf b = new_buf();
	unsigned len = DATA_LEN * 2;

	CHECK_EQ(BZ2_bzBuffToBuffCompress((char *)b.p, &len, (char *)data, DATA_LEN, 9, 0, 0), BZ_OK);
	b.len = len;
	append_size(&b, DATA_LEN);
	return b;
}

/* lzop's header as `lzop -9` writes it from a pipe (version 1.040, adler32
 * of the data, no name), method LZO1X-1 here: one decoder reads all three. */
static uint8_t *lzop_header(uint8_t *p)
{
	static const uint8_t magic[9] = { 0x89, 'L', 'Z', 'O', 0, '\r', '\n', 0x1a, '\n' };
	static const uint8_t fields[] = {
		0x10, 0x40, 0x20, 0xa0, 0x09, 0x40,   /* version, library, needed */
		1, 9,                                 /* method LZO1X-1, level */
		0x03, 0, 0, 0x0d,                     /* flags: Unix, stdin/out, adler32 D */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* mode, mtime low, high */
		0,                                    /* no name */
	};

	memcpy(p, magic, sizeof(magic));
	memcpy(p + 9, fields, sizeof(fields));
	put_be32(p + 9 + sizeof(fields), lzo_adler32(1, fields, sizeof(fields)));
	return p + 9 + sizeof(fields) + 4;
}

static struct buf lzo_payload(void)
{
	const unsigned block = 256u << 10;
	struct buf b = new_buf();
	void *wrk = malloc(LZO1X_1_MEM_COMPRESS);

	CHECK_EQ(lzo_init(), LZO_E_OK);
	uint8_t *p = lzop_header(b.p);
	for (size_t off = 0; off < DATA_LEN; off += block) {
		lzo_uint clen = 0;
		CHECK_EQ(lzo1x_1_compress(data + off, block, p + 12, &clen, wrk), LZO_E_OK);
		put_be32(p, block);
		put_be32(p + 4, (uint32_t)clen);
		put_be32(p + 8, lzo_adler32(1, data + off, block));
		p += 12 + clen;
	}
	put_be32(p, 0);                           /* the end mark */
	free(wrk);
	b.len = (size_t)(p + 4 - b.p);
	append_size(&b, DATA_LEN);
	return b;
}

/* Decompress @b; 0 with the output checked against data, or the error. */
static int run(const struct buf *b, size_t max, struct errbuf *eb)
{
	struct decompressed out = { (uint8_t *)1, 1, 1 };
	int r = decompress_payload(b->p, b->len, max, &out, eb);

	if (r < 0) {
		CHECK(!out.data && !out.len);     /* nothing partial comes back */
		return r;
	}
	CHECK(out.len == DATA_LEN && out.data && !memcmp(out.data, data, DATA_LEN));
	decompress_free(&out);
	CHECK(!out.data);
	return 0;
}

static struct buf copy(const struct buf *b)
{
	struct buf c = { malloc(b->len), b->len };

	memcpy(c.p, b->p, b->len);
	return c;
}

/* @b decoded must fail with -EINVAL and an error that starts with the
 * format's name and contains @what; printed, so a reader sees the words. */
static void expect_error(const char *name, const char *how, struct buf b, const char *what)
{
	struct errbuf eb = { 0 };

	CHECK_EQ(run(&b, MAX_OUT, &eb), -EINVAL);
	CHECK(!strncmp(eb.msg, name, strlen(name)) &&
	      !strncmp(eb.msg + strlen(name), " payload: ", 10));
	CHECK(strstr(eb.msg, what) != NULL);
	printf("  %s %s: %s\n", name, how, eb.msg);
	free(b.p);
}

/* The end cut off: the first half, then the trailer (the last 4 bytes,
 * gzip's included), so the size still reads right. */
static struct buf truncated(const struct buf *b)
{
	struct buf c = copy(b);

	c.len = b->len / 2;
	memcpy(c.p + c.len, b->p + b->len - 4, 4);
	c.len += 4;
	return c;
}

/* One byte of the compressed data flipped, in the middle. */
static struct buf flipped(const struct buf *b)
{
	struct buf c = copy(b);

	c.p[c.len / 2] ^= 0x10;
	return c;
}

/* The trailer changed by @delta; gzip's is the size zlib checks itself. */
static struct buf resized(const struct buf *b, int delta)
{
	struct buf c = copy(b);

	put_le32(c.p + c.len - 4, (uint32_t)(DATA_LEN + delta));
	return c;
}

/* The verdicts every format shares: good; truncated; a trailer that says
 * one byte more (the output is short), one less (the decoder fills the
 * spare byte) or half (the decoder meets the end of its room mid-stream);
 * a bound the trailer passes. @corrupt is the format's
 * corrupt case and @corrupt_what the words it must give. */
static void check_format(const char *name, struct buf b, struct buf corrupt,
			 const char *corrupt_what)
{
	struct errbuf eb = { 0 };

	CHECK(decompress_format(b.p, b.len) && !strcmp(decompress_format(b.p, b.len), name));
	CHECK_EQ(run(&b, MAX_OUT, &eb), 0);
	if (eb.msg[0])
		printf("  %s good: %s\n", name, eb.msg);
	expect_error(name, "truncated", truncated(&b), "");
	expect_error(name, "corrupt", corrupt, corrupt_what);
	expect_error(name, "trailer +1", resized(&b, 1),
		     strcmp(name, "gzip") ? "came out as 3145728 bytes, not the 3145729" : "corrupt");
	expect_error(name, "trailer -1", resized(&b, -1), strcmp(name, "gzip")
		     ? "more than the 3145727 bytes its trailer says" : "incorrect length check");
	expect_error(name, "trailer halved", resized(&b, -(int)DATA_LEN / 2),
		     "more than the 1572864 bytes its trailer says");
	eb.msg[0] = 0;
	CHECK_EQ(run(&b, DATA_LEN / 2, &eb), -EFBIG);
	CHECK(strstr(eb.msg, "more than kvmini's bound of 1 MiB") != NULL);
	free(b.p);
}

static void test_gzip(void)
{
	struct buf b = gzip_payload();

	check_format("gzip", b, flipped(&b), "corrupt (zlib: ");
}

static void test_xz(void)
{
	struct buf b = xz_payload();

	check_format("xz", b, flipped(&b), "data is corrupt (liblzma: LZMA_DATA_ERROR)");
}

static void test_zstd(void)
{
	struct buf b = zstd_payload();

	check_format("zstd", b, flipped(&b), "data is corrupt (libzstd: ");
}

static void test_bzip2(void)
{
	struct buf b = bzip2_payload();

	check_format("bzip2", b, flipped(&b), "data is corrupt (libbz2: BZ_DATA_ERROR)");
}

static void test_lzo(void)
{
	struct buf b = lzo_payload();

	check_format("lzo", b, flipped(&b), "block 6 is corrupt (liblzo2)");
}

/* The legacy .lzma format has no checksum, but its range coder does not
 * survive a flipped byte: this one ends in a data error. A header asking
 * for a 1 GiB dictionary passes the decoder's memory bound. */
static void test_lzma(void)
{
	struct buf b = lzma_payload();
	struct buf huge = copy(&b);

	huge.p[4] = 0x40;                         /* dictionary size, top byte */
	expect_error("lzma", "1 GiB dictionary", huge, "its dictionary passes kvmini's bound");
	check_format("lzma", b, flipped(&b), "data is corrupt (liblzma: LZMA_DATA_ERROR)");
}

/* lz4's legacy frame has no checksum: a flipped literal decodes to wrong
 * bytes of the right length, in the kernel's own decompressor too. The
 * corrupt case is structural instead: block 1's size one byte short, so
 * it ends inside a sequence and the rest is out of step. */
static void test_lz4(void)
{
	struct buf b = lz4_payload();
	struct buf bad = copy(&b);
	uint8_t *size1 = bad.p + 8 + get_le32(bad.p + 4);

	put_le32(size1, get_le32(size1) - 1);
	check_format("lz4", b, bad, "block 1 is corrupt (liblz4)");
}

/* The magic again between blocks starts another stream; 8 MiB blocks are
 * the kernel's; a block size no block can have is refused. */
static void test_lz4_frames(void)
{
	struct errbuf eb = { 0 };
	struct buf b = lz4_frames(1u << 20, 2);

	CHECK_EQ(run(&b, MAX_OUT, &eb), 0);
	free(b.p);
	b = lz4_frames(8u << 20, ~0u);
	CHECK_EQ(run(&b, MAX_OUT, &eb), 0);
	put_le32(b.p + 4, (uint32_t)LZ4_compressBound(8u << 20) + 1);
	expect_error("lz4", "oversized block", b, "block 0 has an impossible size");
}

/* lzop's header and blocks are checked against their checksums; a block
 * whose length word is missing is a payload without its end mark. */
static void test_lzo_structure(void)
{
	struct buf b = lzo_payload();
	struct buf bad = copy(&b);

	bad.p[9 + 13] ^= 1;                       /* in the mode */
	expect_error("lzo", "header", bad, "header checksum mismatch");
	bad = copy(&b);
	bad.p[9 + 6] = 4;                         /* method: not LZO1X */
	put_be32(bad.p + 9 + 25, lzo_adler32(1, bad.p + 9, 25));
	expect_error("lzo", "method", bad, "method 4 is not LZO1X");
	bad = copy(&b);
	bad.p[38 + 8] ^= 1;                       /* block 0's adler32 */
	expect_error("lzo", "block checksum", bad, "block 0: checksum mismatch");
	bad = copy(&b);
	memmove(bad.p + bad.len - 8, bad.p + bad.len - 4, 4);   /* the end mark gone */
	bad.len -= 4;
	expect_error("lzo", "no end mark", bad, "is truncated (no end mark)");
	free(b.p);
}

static void test_unknown_and_tiny(void)
{
	struct errbuf eb = { 0 };
	uint8_t junk[16] = "not compressed!";
	struct buf b = { junk, sizeof(junk) };
	uint8_t lz4_magic_only[4] = { 0x02, 0x21, 0x4c, 0x18 };
	uint8_t lz4_no_block[8] = { 0x02, 0x21, 0x4c, 0x18, 1, 0, 0, 0 };

	CHECK(decompress_format(junk, sizeof(junk)) == NULL);
	CHECK_EQ(run(&b, MAX_OUT, &eb), -ENOEXEC);
	CHECK(strstr(eb.msg, "unknown compression format") != NULL);
	b = (struct buf){ lz4_magic_only, sizeof(lz4_magic_only) };
	CHECK_EQ(run(&b, MAX_OUT, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "lz4 payload: truncated (4 bytes)") != NULL);
	b = (struct buf){ lz4_no_block, sizeof(lz4_no_block) };
	CHECK_EQ(run(&b, MAX_OUT, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "lz4 payload: no block after the magic") != NULL);
	put_le32(lz4_no_block + 4, 0);
	CHECK_EQ(run(&b, MAX_OUT, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "decompresses to nothing") != NULL);
}

/* A minimal bzImage: the setup header in one setup sector, the payload
 * right after the setup (payload_offset 0), as tests/kvm/mkbzimage.py. */
static int bzimage_file(const struct buf *payload, uint32_t claimed_len)
{
	uint8_t head[1024] = { 0 };
	struct setup_header *h = (struct setup_header *)(head + 0x1f1);
	int fd = memfd_create("bzimage", MFD_CLOEXEC);

	h->setup_sects = 1;
	h->boot_flag = 0xaa55;
	h->header = 0x53726448u;       /* "HdrS" */
	h->version = 0x020f;
	h->payload_offset = 0;
	h->payload_length = claimed_len;
	h->cmdline_size = 2047;
	head[0x201] = 0x6a;            /* the header's extent, as real images */
	if (write(fd, head, sizeof(head)) != (ssize_t)sizeof(head) ||
	    write(fd, payload->p, payload->len) != (ssize_t)payload->len)
		CHECK(!"writing the test bzImage");
	return fd;
}

/* boot_unpack_bzimage on @b: its verdict, the reason in @eb, the output in
 * @out (given back by the caller; empty on an error). */
static int unpack_into(const struct buf *b, uint32_t claimed_len, struct boot_params *zp,
		       struct decompressed *out, struct errbuf *eb)
{
	int fd = bzimage_file(b, claimed_len);
	int r = boot_unpack_bzimage(fd, zp, out, eb);

	close(fd);
	return r;
}

/* The same when only the verdict matters. */
static int unpack(const struct buf *b, uint32_t claimed_len, struct boot_params *zp,
		  struct errbuf *eb)
{
	struct decompressed out;
	int r = unpack_into(b, claimed_len, zp, &out, eb);

	CHECK(r == 0 || !out.data);
	decompress_free(&out);
	return r;
}

static void test_bzimage_unpack(void)
{
	struct buf b = lz4_payload();
	struct boot_params *zp = calloc(1, sizeof(*zp));
	struct errbuf eb = { 0 };
	struct decompressed out;

	CHECK_EQ(unpack_into(&b, (uint32_t)b.len, zp, &out, &eb), 0);
	CHECK(out.len == DATA_LEN && out.data && !memcmp(out.data, data, DATA_LEN));
	decompress_free(&out);
	/* The image's header reaches the zero page for the loader. */
	CHECK_EQ(zp->hdr.header, 0x53726448u);
	CHECK_EQ(zp->hdr.cmdline_size, 2047);

	CHECK_EQ(unpack(&b, (uint32_t)b.len + 4096, zp, &eb), -ENOEXEC);
	CHECK(strstr(eb.msg, "bzImage payload (bytes 1024..") &&
	      strstr(eb.msg, "lies outside the"));
	printf("  %s\n", eb.msg);

	uint8_t junk[64] = "a payload in no format kvmini knows";
	struct buf j = { junk, sizeof(junk) };
	CHECK_EQ(unpack(&j, sizeof(junk), zp, &eb), -ENOEXEC);
	CHECK(strstr(eb.msg, "unknown compression format") != NULL);

	/* Truncated: the error names the format, no fd comes back. */
	b.len -= 100000;
	append_size(&b, DATA_LEN);
	CHECK_EQ(unpack(&b, (uint32_t)b.len, zp, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "lz4 payload: block 5 is truncated") != NULL);
	printf("  %s\n", eb.msg);
	free(b.p);
	free(zp);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Debian's cloud kernel (lz4) as tests/nested caches it; its path or "". */
static const char *debian_kernel_path(void)
{
	static char path[1024];
	const char *cache = getenv("KVMINI_CACHE") ? getenv("KVMINI_CACHE") : "/var/cache/kvmini";
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/debian-cloud", cache);
	DIR *d = opendir(dir);
	struct dirent *e;

	path[0] = 0;
	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s/vmlinuz", dir, e->d_name);
		if (e->d_name[0] != '.' && access(path, R_OK) == 0)
			break;
		path[0] = 0;
	}
	if (d)
		closedir(d);
	return path;
}

/* A real kernel's payload comes out as an ELF of the size its trailer says. */
static void test_debian_kernel(void)
{
	const char *path = debian_kernel_path();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct boot_params *zp = calloc(1, sizeof(*zp));
	struct errbuf eb = { 0 };
	double t0 = now_ms();
	struct decompressed out;
	int r = boot_unpack_bzimage(fd, zp, &out, &eb);
	double ms = now_ms() - t0;

	CHECK_EQ(r, 0);
	if (r < 0)
		printf("  %s: %s\n", path, eb.msg);
	CHECK(!r && out.len > (10 << 20) && !memcmp(out.data, "\177ELF", 4));
	printf("  %s: %zu bytes of ELF in %.0f ms (sanitizer build)\n", path, out.len, ms);
	decompress_free(&out);
	close(fd);
	free(zp);
}

#define ELF_RAM (8u << 20)
#define ELF_SEG0 0x100000u   /* text: 8 KiB in the image */
#define ELF_SEG1 0x300000u   /* data: 4 KiB in the image, 12 KiB in memory */

/* A two-segment vmlinux-like ELF: its headers, then each segment's bytes. */
static struct buf small_elf(void)
{
	struct buf b = { calloc(1, 0x4000), 0x4000 };
	Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
			  .e_entry = ELF_SEG0 + 0x10, .e_phoff = sizeof(Elf64_Ehdr),
			  .e_ehsize = sizeof(Elf64_Ehdr), .e_phentsize = sizeof(Elf64_Phdr),
			  .e_phnum = 2 };
	Elf64_Phdr ph[2] = {
		{ .p_type = PT_LOAD, .p_offset = 0x1000, .p_paddr = ELF_SEG0, .p_filesz = 0x2000,
		  .p_memsz = 0x2000 },
		{ .p_type = PT_LOAD, .p_offset = 0x3000, .p_paddr = ELF_SEG1, .p_filesz = 0x1000,
		  .p_memsz = 0x3000 },
	};

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	memcpy(b.p, &eh, sizeof(eh));
	memcpy(b.p + sizeof(eh), ph, sizeof(ph));
	for (size_t i = 0x1000; i < b.len; i++)
		b.p[i] = (uint8_t)(i * 7 + 3);
	return b;
}

/* Load @b from memory (or, with @from_file, from a memfd holding it) into a
 * VM of ELF_RAM bytes that starts out 0xa5; the verdict. */
static int load_small_elf(const struct buf *b, bool from_file, uint8_t *ram,
			  struct boot_kernel *k, struct errbuf *eb)
{
	struct vm vm = { 0 };
	int r;

	memset(ram, 0xa5, ELF_RAM);
	guest_mem_init(&vm.mem);
	CHECK_EQ(guest_mem_add(&vm.mem, 0, ELF_RAM, (uint64_t)(uintptr_t)ram, ram, ram, ELF_RAM), 0);
	*eb = (struct errbuf){ 0 };
	if (!from_file)
		return boot_load_elf_image(&vm, b->p, b->len, k, eb);
	int fd = memfd_create("test-elf", MFD_CLOEXEC);
	CHECK(fd >= 0 && write(fd, b->p, b->len) == (ssize_t)b->len);
	r = boot_load_elf(&vm, fd, k, eb);
	close(fd);
	return r;
}

/* An ELF in memory loads as the same ELF in a file does: each segment's
 * bytes at its physical address, the rest of its memory zeroed, nothing
 * else touched; and both refuse the same broken images the same way. */
static void test_elf_image_load(void)
{
	uint8_t *ram = mmap(NULL, ELF_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	struct buf b = small_elf();
	struct boot_kernel k;
	struct errbuf eb;
	Elf64_Phdr ph;

	CHECK(ram != MAP_FAILED);
	if (ram == MAP_FAILED)
		return;
	for (int from_file = 0; from_file <= 1; from_file++) {
		CHECK_EQ(load_small_elf(&b, from_file, ram, &k, &eb), 0);
		CHECK_EQ(k.entry, ELF_SEG0 + 0x10);
		CHECK_EQ(k.end, ELF_SEG1 + 0x3000);
		CHECK(!memcmp(ram + ELF_SEG0, b.p + 0x1000, 0x2000));
		CHECK(!memcmp(ram + ELF_SEG1, b.p + 0x3000, 0x1000));
		CHECK(ram[ELF_SEG1 + 0x1000] == 0 && ram[ELF_SEG1 + 0x2fff] == 0);
		CHECK(ram[ELF_SEG0 - 1] == 0xa5 && ram[ELF_SEG0 + 0x2000] == 0xa5 &&
		      ram[ELF_SEG1 + 0x3000] == 0xa5);

		/* Cut short: the second segment's bytes lie past the image's end. */
		struct buf cut = { b.p, 0x3800 };
		CHECK_EQ(load_small_elf(&cut, from_file, ram, &k, &eb), -ENOEXEC);
		CHECK(strstr(eb.msg, "ELF segment at 0x300000 lies outside the file") != NULL);

		/* A segment above guest RAM. */
		memcpy(&ph, b.p + sizeof(Elf64_Ehdr) + sizeof(ph), sizeof(ph));
		Elf64_Phdr high = ph;
		high.p_paddr = ELF_RAM - 0x1000;
		memcpy(b.p + sizeof(Elf64_Ehdr) + sizeof(ph), &high, sizeof(high));
		CHECK_EQ(load_small_elf(&b, from_file, ram, &k, &eb), -ENOEXEC);
		CHECK(strstr(eb.msg, "is not inside guest RAM") != NULL);
		memcpy(b.p + sizeof(Elf64_Ehdr) + sizeof(ph), &ph, sizeof(ph));

		/* Program headers past the end; then no ELF at all (not its kind: no words). */
		struct buf headers_only = { b.p, sizeof(Elf64_Ehdr) + 8 };
		CHECK_EQ(load_small_elf(&headers_only, from_file, ram, &k, &eb), -ENOEXEC);
		CHECK(strstr(eb.msg, "program headers lie outside the file") != NULL);
		struct buf tiny = { b.p, 16 };
		CHECK_EQ(load_small_elf(&tiny, from_file, ram, &k, &eb), -ENOEXEC);
		CHECK(!eb.msg[0]);
	}
	free(b.p);
	munmap(ram, ELF_RAM);
}

/* Test-only entry point: decompress the file @path to stdout. */
static int decompress_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	struct errbuf eb = { 0 };

	if (fd < 0 || fstat(fd, &st) < 0 || !st.st_size) {
		fprintf(stderr, "%s: cannot read\n", path);
		return 2;
	}
	uint8_t *in = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	struct decompressed out;
	int r = in == MAP_FAILED ? -ENOMEM
		: decompress_payload(in, (size_t)st.st_size, 1u << 30, &out, &eb);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, eb.msg);
		return 1;
	}
	for (size_t done = 0; done < out.len;) {
		ssize_t n = write(STDOUT_FILENO, out.data + done, out.len - done);
		if (n <= 0)
			return 1;
		done += (size_t)n;
	}
	decompress_free(&out);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2)
		return decompress_file(argv[1]);
	make_data();
	RUN_TEST(test_gzip);
	RUN_TEST(test_xz);
	RUN_TEST(test_lzma);
	RUN_TEST(test_zstd);
	RUN_TEST(test_lz4);
	RUN_TEST(test_lz4_frames);
	RUN_TEST(test_bzip2);
	RUN_TEST(test_lzo);
	RUN_TEST(test_lzo_structure);
	RUN_TEST(test_unknown_and_tiny);
	RUN_TEST(test_bzimage_unpack);
	RUN_TEST(test_elf_image_load);
	if (debian_kernel_path()[0])
		RUN_TEST(test_debian_kernel);
	else
		printf("SKIP: test_debian_kernel (no Debian cloud kernel under $KVMINI_CACHE/"
		       "debian-cloud; tests/nested/run.sh fetches one)\n");
	free(data);
	return CHECK_DONE();
}
