/*
 * Host-side decompression of a bzImage's payload (--host-decompress): the
 * compressed vmlinux the bzImage would unpack itself is decompressed here
 * with a library (vmm/decompress.h: gzip, xz, lzma, zstd, lz4, bzip2, lzo;
 * no program is started), and the ELF that comes out is loaded from memory
 * like a vmlinux. Where guest kernel code is slow to run (emulated, or nested)
 * this saves the guest's own decompression.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <asm/bootparam.h>

#include "core/compiler.h"
#include "vmm/boot.h"
#include "vmm/decompress.h"

#define BZ_SETUP_HDR_OFFSET 0x1f1u
/* Bounds against a hostile image: what kvmini reads and what it lets the
 * payload decompress to (a distribution's vmlinux is 50 to 100 MB). */
#define PAYLOAD_MAX (512u << 20)
#define VMLINUX_MAX (512u << 20)

/* Read exactly @len bytes at @off; -EIO on a short file. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* The payload at @off of @fd, decompressed into @out; 0 or -errno with the
 * reason in @eb. */
static int unpack_payload(int fd, uint64_t off, uint32_t len, struct decompressed *out,
			  struct errbuf *eb)
{
	struct stat st;

	/* Checked before the allocation, which a lying header would size. */
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && off + len > (uint64_t)st.st_size) {
		errbuf_set(eb, "bzImage payload (bytes %llu..%llu) lies outside the "
			   "%lld-byte file", (unsigned long long)off, (unsigned long long)off + len,
			   (long long)st.st_size);
		return -ENOEXEC;
	}
	uint8_t *in = malloc(len);
	if (!in) {
		errbuf_set(eb, "out of memory for a %u-byte payload", len);
		return -ENOMEM;
	}
	if (read_at(fd, in, len, off) < 0) {
		errbuf_set(eb, "bzImage payload lies outside the file");
		free(in);
		return -ENOEXEC;
	}
	int r = decompress_payload(in, len, VMLINUX_MAX, out, eb);
	free(in);
	return r;
}

int boot_unpack_bzimage(int fd, void *zero_page, struct decompressed *out, struct errbuf *eb)
{
	uint8_t sector[1024];
	struct setup_header h;

	if (read_at(fd, sector, sizeof(sector), 0) < 0)
		return -ENOEXEC;
	memcpy(&h, sector + BZ_SETUP_HDR_OFFSET, sizeof(h));
	if (h.header != 0x53726448u || h.version < 0x0208 || !h.payload_length) {
		errbuf_set(eb, "not a bzImage with a payload (boot protocol 2.08 or later)");
		return -ENOEXEC;
	}
	uint64_t off = ((uint64_t)(h.setup_sects ? h.setup_sects : 4) + 1) * 512 + h.payload_offset;
	if (h.payload_length > PAYLOAD_MAX) {
		errbuf_set(eb, "bzImage payload of %u bytes is implausibly large",
			   h.payload_length);
		return -ENOEXEC;
	}
	int r = unpack_payload(fd, off, h.payload_length, out, eb);
	if (r < 0)
		return r;
	/* The image's own header still describes the kernel to itself. */
	struct boot_params *bp = zero_page;
	size_t hdr_end = MIN(0x202u + sector[0x201], BZ_SETUP_HDR_OFFSET + sizeof(bp->hdr));
	memcpy(&bp->hdr, sector + BZ_SETUP_HDR_OFFSET, hdr_end - BZ_SETUP_HDR_OFFSET);
	return 0;
}
