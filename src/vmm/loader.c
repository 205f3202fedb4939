/*
 * Kernel image loaders: ELF (a vmlinux, or a test guest) and bzImage.
 * Images are read with pread straight into guest memory (or copied there,
 * for a vmlinux unpacked on the host); every offset and size comes from the
 * image and is checked before use.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <asm/bootparam.h>

#include "core/compiler.h"
#include "vmm/boot.h"
#include "vmm/layout.h"

#define ELF_MAX_PHDRS 64u
#define BZ_HDR_MAGIC 0x53726448u           /* "HdrS" */
#define BZ_BOOT_FLAG 0xaa55u
#define BZ_MIN_VERSION 0x020cu             /* 2.12: xloadflags, 64-bit entry */
#define BZ_ENTRY_64_OFFSET 0x200u
#define BZ_SETUP_HDR_OFFSET 0x1f1u

/* Read exactly @len bytes at @off; -EIO on a short file. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int boot_copy_to_guest(struct vm *vm, int fd, uint64_t file_off, uint64_t gpa, uint64_t len)
{
	uint8_t *dst = vm_gpa(vm, gpa, len);

	return dst ? pread_full(fd, dst, len, file_off) : -EFAULT;
}

/* An ELF image to load: a file, or bytes in memory (fd -1). */
struct elf_image {
	int fd;
	const uint8_t *bytes;
	uint64_t size;
};

/* Exactly @len bytes of @img at @off into @buf; -EIO past its end. */
static int image_read(const struct elf_image *img, void *buf, uint64_t len, uint64_t off)
{
	if (img->fd >= 0)
		return pread_full(img->fd, buf, len, off);
	if (!img->bytes || off > img->size || len > img->size - off)
		return -EIO;
	memcpy(buf, img->bytes + off, len);
	return 0;
}

static uint64_t file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 || st.st_size < 0 ? 0 : (uint64_t)st.st_size;
}

/* A 64-bit x86 executable with program headers kvmini can read. */
static int check_ehdr(const Elf64_Ehdr *eh, struct errbuf *eb)
{
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64) {
		errbuf_set(eb, "not a 64-bit x86 ELF file");
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC) {
		errbuf_set(eb, "ELF file is not an executable (e_type %u)", eh->e_type);
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || !eh->e_phnum || eh->e_phnum > ELF_MAX_PHDRS) {
		errbuf_set(eb, "ELF program headers unusable (%u of %u bytes)", eh->e_phnum,
			   eh->e_phentsize);
		return -ENOEXEC;
	}
	return 0;
}

/* Copy one PT_LOAD segment to its physical address. */
static int load_segment(struct vm *vm, const struct elf_image *img, const Elf64_Phdr *ph,
			struct errbuf *eb)
{
	if (ph->p_filesz > ph->p_memsz || ph->p_offset > img->size ||
	    ph->p_filesz > img->size - ph->p_offset) {
		errbuf_set(eb, "ELF segment at 0x%llx lies outside the file",
			   (unsigned long long)ph->p_paddr);
		return -ENOEXEC;
	}
	uint8_t *dst = vm_gpa(vm, ph->p_paddr, ph->p_memsz);
	if (ph->p_paddr < LAYOUT_HIMEM || !dst) {
		errbuf_set(eb, "ELF segment [0x%llx, +0x%llx) is not inside guest RAM above 1 MiB",
			   (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz);
		return -ENOEXEC;
	}
	int r = image_read(img, dst, ph->p_filesz, ph->p_offset);
	if (r < 0) {
		errbuf_set(eb, "reading ELF segment: %s", strerror(-r));
		return r;
	}
	memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	return 0;
}

static int load_elf(struct vm *vm, const struct elf_image *img, struct boot_kernel *k,
		    struct errbuf *eb)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[ELF_MAX_PHDRS];

	if (image_read(img, &eh, sizeof(eh), 0) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG))
		return -ENOEXEC;
	int r = check_ehdr(&eh, eb);
	if (r < 0)
		return r;
	if (image_read(img, ph, eh.e_phnum * sizeof(ph[0]), eh.e_phoff) < 0) {
		errbuf_set(eb, "ELF program headers lie outside the file");
		return -ENOEXEC;
	}
	bool entry_loaded = false;
	unsigned loaded = 0;
	*k = (struct boot_kernel){ .entry = eh.e_entry, .initrd_addr_max = 0x7fffffff };
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD || !ph[i].p_memsz)
			continue;
		r = load_segment(vm, img, &ph[i], eb);
		if (r < 0)
			return r;
		loaded++;
		k->end = MAX(k->end, ph[i].p_paddr + ph[i].p_memsz);
		/* A vmlinux's entry point is physical (phys_startup_64). */
		if (eh.e_entry >= ph[i].p_paddr && eh.e_entry - ph[i].p_paddr < ph[i].p_memsz)
			entry_loaded = true;
	}
	if (!loaded || !entry_loaded) {
		errbuf_set(eb, "ELF entry point 0x%llx is not in a loaded segment",
			   (unsigned long long)eh.e_entry);
		return -ENOEXEC;
	}
	return 0;
}

int boot_load_elf(struct vm *vm, int fd, struct boot_kernel *k, struct errbuf *eb)
{
	return load_elf(vm, &(struct elf_image){ .fd = fd, .size = file_size(fd) }, k, eb);
}

int boot_load_elf_image(struct vm *vm, const uint8_t *image, size_t len, struct boot_kernel *k,
			struct errbuf *eb)
{
	return load_elf(vm, &(struct elf_image){ .fd = -1, .bytes = image, .size = len }, k, eb);
}

static int check_bz_header(const struct setup_header *h, struct errbuf *eb)
{
	if (h->boot_flag != BZ_BOOT_FLAG || h->header != BZ_HDR_MAGIC)
		return -ENOEXEC;
	if (h->version < BZ_MIN_VERSION || !(h->xloadflags & XLF_KERNEL_64)) {
		errbuf_set(eb, "bzImage (boot protocol %u.%02u) has no 64-bit entry point; "
			   "kvmini needs protocol 2.12 or later",
			   h->version >> 8, h->version & 0xff);
		return -ENOEXEC;
	}
	return 0;
}

/* Copy the image's setup header into the zero page, as far as both know it. */
static void copy_setup_header(void *zero_page, const uint8_t *sector)
{
	struct boot_params *bp = zero_page;
	/* Byte 0x201 is the jump's offset: the header ends at 0x202 + it. */
	size_t end = 0x202u + sector[0x201];
	size_t len = MIN(end - BZ_SETUP_HDR_OFFSET, sizeof(bp->hdr));

	memcpy(&bp->hdr, sector + BZ_SETUP_HDR_OFFSET, len);
}

int boot_load_bzimage(struct vm *vm, int fd, void *zero_page, struct boot_kernel *k,
		      struct errbuf *eb)
{
	uint8_t sector[1024];
	struct setup_header h;
	uint64_t fsize = file_size(fd);

	if (pread_full(fd, sector, sizeof(sector), 0) < 0)
		return -ENOEXEC;
	memcpy(&h, sector + BZ_SETUP_HDR_OFFSET, sizeof(h));
	int r = check_bz_header(&h, eb);
	if (r < 0)
		return r;
	uint64_t setup_bytes = ((uint64_t)(h.setup_sects ? h.setup_sects : 4) + 1) * 512;
	if (setup_bytes >= fsize) {
		errbuf_set(eb, "bzImage is truncated (setup %llu bytes, file %llu)",
			   (unsigned long long)setup_bytes, (unsigned long long)fsize);
		return -ENOEXEC;
	}
	uint64_t pm_size = fsize - setup_bytes;
	if (h.pref_address >= vm->low_ram_end) {
		errbuf_set(eb, "bzImage wants to run at 0x%llx, beyond guest RAM",
			   (unsigned long long)h.pref_address);
		return -ENOMEM;
	}
	/* The decompressor runs where it is loaded and then needs init_size
	 * bytes at its preferred address (or here, when it is relocatable). */
	uint64_t need = MAX(LAYOUT_HIMEM + pm_size,
			    MAX(LAYOUT_HIMEM, h.pref_address) + (uint64_t)h.init_size);
	uint8_t *dst = vm_gpa(vm, LAYOUT_HIMEM, pm_size);
	if (!dst || need > vm->low_ram_end) {
		errbuf_set(eb, "bzImage needs %llu MiB of guest memory",
			   (unsigned long long)(need >> 20) + 1);
		return -ENOMEM;
	}
	r = boot_copy_to_guest(vm, fd, setup_bytes, LAYOUT_HIMEM, pm_size);
	if (r < 0) {
		errbuf_set(eb, "reading bzImage: %s", strerror(-r));
		return r;
	}
	copy_setup_header(zero_page, sector);
	*k = (struct boot_kernel){
		.entry = LAYOUT_HIMEM + BZ_ENTRY_64_OFFSET,
		.end = need,
		.has_setup_header = true,
		.cmdline_max = h.version >= 0x0206 ? h.cmdline_size : 255,
		.initrd_addr_max = h.initrd_addr_max,
	};
	return 0;
}
