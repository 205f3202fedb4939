/*
 * Host-side decompression of a bzImage's payload (--host-decompress): the
 * compressed vmlinux the bzImage would unpack itself is handed to the
 * host's own decompressor (gzip, xz, zstd, lz4, bzip2, lzop), and the ELF
 * that comes out is loaded like a vmlinux. Where guest kernel code is
 * emulated this saves the minutes the in-guest decompressor takes.
 *
 * The payload goes to the decompressor through a memfd on its stdin and
 * comes back in another memfd on its stdout, so no pipe can deadlock.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <asm/bootparam.h>

#include "core/compiler.h"
#include "vmm/boot.h"

extern char **environ;

#define BZ_SETUP_HDR_OFFSET 0x1f1u
#define PAYLOAD_MAX (512u << 20)

/* Formats the kernel can compress itself with, by their magic bytes. All
 * but gzip have the uncompressed size appended (4 bytes, the kernel's
 * size_append), which the host tools would take for a damaged stream. */
static const struct {
	const char *name;
	uint8_t magic[6];
	unsigned magic_len;
	unsigned trailer;
	const char *argv[5];
} formats[] = {
	{ "gzip",  { 0x1f, 0x8b }, 2, 0, { "gzip", "-dc", NULL } },
	{ "xz",    { 0xfd, '7', 'z', 'X', 'Z', 0 }, 6, 4, { "xz", "-dc", "--single-stream", NULL } },
	{ "lzma",  { 0x5d, 0, 0 }, 3, 4, { "xz", "-dc", "--format=lzma", NULL } },
	{ "zstd",  { 0x28, 0xb5, 0x2f, 0xfd }, 4, 4, { "zstd", "-dcq", "--memory=2048MB", NULL } },
	{ "lz4",   { 0x02, 0x21, 0x4c, 0x18 }, 4, 4, { "lz4", "-dc", NULL } },
	{ "bzip2", { 'B', 'Z', 'h' }, 3, 4, { "bzip2", "-dc", NULL } },
	{ "lzo",   { 0x89, 'L', 'Z', 'O' }, 4, 4, { "lzop", "-dc", NULL } },
};

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

/* Copy [off, off + len) of @fd into a new memfd. */
static int payload_memfd(int fd, uint64_t off, uint32_t len)
{
	int out = memfd_create("kvmini-payload", MFD_CLOEXEC);
	uint8_t *buf = malloc(len);
	int r = out < 0 || !buf ? -ENOMEM : read_at(fd, buf, len, off);

	if (!r && write(out, buf, len) != (ssize_t)len)
		r = -EIO;
	free(buf);
	if (r < 0) {
		if (out >= 0)
			close(out);
		return r;
	}
	lseek(out, 0, SEEK_SET);
	return out;
}

/* Run argv with stdin @in and stdout @out; 0 when it exits with 0. */
static int run_decompressor(const char *const *argv, int in, int out)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in, STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
	int r = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int find_format(int fd, uint64_t off)
{
	uint8_t magic[6] = { 0 };

	if (read_at(fd, magic, sizeof(magic), off) < 0)
		return -1;
	for (unsigned i = 0; i < ARRAY_SIZE(formats); i++) {
		if (!memcmp(magic, formats[i].magic, formats[i].magic_len))
			return (int)i;
	}
	return -1;
}

int boot_unpack_bzimage(int fd, void *zero_page, char *err, size_t errlen)
{
	uint8_t sector[1024];
	struct setup_header h;

	if (read_at(fd, sector, sizeof(sector), 0) < 0)
		return -ENOEXEC;
	memcpy(&h, sector + BZ_SETUP_HDR_OFFSET, sizeof(h));
	if (h.header != 0x53726448u || h.version < 0x0208 || !h.payload_length) {
		snprintf(err, errlen, "not a bzImage with a payload (boot protocol 2.08 or later)");
		return -ENOEXEC;
	}
	uint64_t off = ((uint64_t)(h.setup_sects ? h.setup_sects : 4) + 1) * 512 + h.payload_offset;
	int f = find_format(fd, off);
	if (f < 0 || h.payload_length > PAYLOAD_MAX || h.payload_length <= formats[f].trailer) {
		snprintf(err, errlen, "bzImage payload in an unknown compression format");
		return -ENOEXEC;
	}
	int in = payload_memfd(fd, off, h.payload_length - formats[f].trailer);
	if (in < 0) {
		snprintf(err, errlen, "bzImage payload lies outside the file");
		return -ENOEXEC;
	}
	int out = memfd_create("kvmini-vmlinux", MFD_CLOEXEC);
	int r = out < 0 ? -errno : run_decompressor(formats[f].argv, in, out);
	close(in);
	if (r < 0) {
		snprintf(err, errlen, "decompressing the %s payload with `%s` failed%s%s", formats[f].name,
			 formats[f].argv[0], r == -ENOENT ? ": not installed" : "",
			 r == -ENOENT ? "" : " (see its message above)");
		if (out >= 0)
			close(out);
		return r;
	}
	/* The image's own header still describes the kernel to itself. */
	struct boot_params *bp = zero_page;
	size_t hdr_end = MIN(0x202u + sector[0x201], BZ_SETUP_HDR_OFFSET + sizeof(bp->hdr));
	memcpy(&bp->hdr, sector + BZ_SETUP_HDR_OFFSET, hdr_end - BZ_SETUP_HDR_OFFSET);
	return out;
}
