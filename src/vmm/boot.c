/*
 * The boot structures around the kernel: zero page, e820 map, command line,
 * initramfs, GDT and page tables (see boot.h and layout.h).
 */
#include "vmm/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <asm/bootparam.h>
#include <asm/e820.h>

#include "core/compiler.h"
#include "vmm/decompress.h"
#include "vmm/layout.h"

#define BOOT_LOADER_UNDEFINED 0xffu       /* type_of_loader: "other" */
#define LINUX_CMDLINE_DEFAULT_MAX 2048u  /* x86 COMMAND_LINE_SIZE */
#define PAGE_SIZE_4K 4096ull
#define PAGE_SIZE_2M (2ull << 20)
#define PTE_PRESENT_RW 0x3ull
#define PDE_LARGE 0x80ull

/* GDT entries: flat 64-bit code (__BOOT_CS 0x10), flat data (__BOOT_DS
 * 0x18), and a TSS descriptor (0x20) matching the TR the vCPU gets. */
static const uint64_t boot_gdt[5] = {
	0,
	0,
	0x00af9b000000ffffull,
	0x00cf93000000ffffull,
	0x00808b0000000067ull,
};

static int write_gdt(struct vm *vm)
{
	uint64_t *gdt = vm_gpa(vm, LAYOUT_GDT, sizeof(boot_gdt));
	uint64_t *idt = vm_gpa(vm, LAYOUT_IDT, 8);

	if (!gdt || !idt)
		return -ENOMEM;
	memcpy(gdt, boot_gdt, sizeof(boot_gdt));
	*idt = 0;
	return 0;
}

/* Identity map of the first 4 GiB with 2 MiB pages: RAM, devices, APICs. */
static int write_page_tables(struct vm *vm)
{
	uint64_t *pml4 = vm_gpa(vm, LAYOUT_PML4, PAGE_SIZE_4K);
	uint64_t *pdpt = vm_gpa(vm, LAYOUT_PDPT, PAGE_SIZE_4K);
	uint64_t *pd = vm_gpa(vm, LAYOUT_PD, 4 * PAGE_SIZE_4K);

	if (!pml4 || !pdpt || !pd)
		return -ENOMEM;
	memset(pml4, 0, PAGE_SIZE_4K);
	memset(pdpt, 0, PAGE_SIZE_4K);
	pml4[0] = LAYOUT_PDPT | PTE_PRESENT_RW;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + i * PAGE_SIZE_4K) | PTE_PRESENT_RW;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i * PAGE_SIZE_2M) | PTE_PRESENT_RW | PDE_LARGE;
	return 0;
}

static void add_e820(struct boot_params *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	if (!size || bp->e820_entries >= E820_MAX_ENTRIES_ZEROPAGE)
		return;
	struct boot_e820_entry e = { .addr = addr, .size = size, .type = type };
	memcpy(&bp->e820_table[bp->e820_entries++], &e, sizeof(e));
}

/* With ACPI, the tables' 64 KiB block inside the BIOS area is typed ACPI
 * (the OS may reclaim it once it has read them; below 1 MiB Linux keeps
 * it anyway); the rest of the area, the MP table included, stays reserved. */
static void write_e820(struct vm *vm, struct boot_params *bp, bool acpi)
{
	bp->e820_entries = 0;
	add_e820(bp, 0, LAYOUT_EBDA, E820_RAM);
	if (acpi) {
		add_e820(bp, LAYOUT_EBDA, LAYOUT_ACPI - LAYOUT_EBDA, E820_RESERVED);
		add_e820(bp, LAYOUT_ACPI, LAYOUT_ACPI_SIZE, E820_ACPI);
		add_e820(bp, LAYOUT_ACPI + LAYOUT_ACPI_SIZE, LAYOUT_HIMEM - LAYOUT_ACPI - LAYOUT_ACPI_SIZE,
			 E820_RESERVED);
	} else {
		add_e820(bp, LAYOUT_EBDA, LAYOUT_HIMEM - LAYOUT_EBDA, E820_RESERVED);
	}
	add_e820(bp, LAYOUT_HIMEM, vm->low_ram_end - LAYOUT_HIMEM, E820_RAM);
	if (vm->mem_bytes > vm->low_ram_end)
		add_e820(bp, LAYOUT_HIGH_RAM, vm->mem_bytes - vm->low_ram_end, E820_RAM);
}

static int write_cmdline(struct vm *vm, struct boot_params *bp, const struct boot_kernel *k,
			 const char *cmdline, struct errbuf *eb)
{
	size_t len = strlen(cmdline);
	size_t max = k->cmdline_max ? k->cmdline_max : LINUX_CMDLINE_DEFAULT_MAX;

	max = MIN(max, (size_t)LAYOUT_CMDLINE_MAX - 1);
	if (len > max) {
		errbuf_set(eb, "command line is %zu bytes, the kernel takes at most %zu", len, max);
		return -E2BIG;
	}
	char *dst = vm_gpa(vm, LAYOUT_CMDLINE, len + 1);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, cmdline, len + 1);
	bp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	bp->hdr.cmdline_size = (uint32_t)max;
	return 0;
}

/* The initramfs goes at the top of low RAM (below the kernel's limit),
 * page aligned, above everything the kernel needs. */
static int load_initrd(struct vm *vm, struct boot_params *bp, const struct boot_kernel *k,
		       const char *path, struct errbuf *eb)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = -errno;    /* before close() can change it */

		errbuf_set(eb, "--initrd %s: %s", path, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	uint64_t size = (uint64_t)st.st_size;
	uint64_t top = MIN(vm->low_ram_end, k->initrd_addr_max + 1);
	uint64_t addr = size < top ? (top - size) & ~(PAGE_SIZE_4K - 1) : 0;
	uint8_t *dst = addr ? vm_gpa(vm, addr, size) : NULL;
	if (!size || addr < k->end || !dst) {
		errbuf_set(eb, "--initrd %s: %s", path,
			   size ? "does not fit in guest memory beside the kernel (raise --mem)"
				: "empty file");
		close(fd);
		return -ENOMEM;
	}
	int r = boot_copy_to_guest(vm, fd, 0, addr, size);
	close(fd);
	if (r < 0) {
		errbuf_set(eb, "--initrd %s: %s", path, strerror(-r));
		return r;
	}
	bp->hdr.ramdisk_image = (uint32_t)addr;
	bp->hdr.ramdisk_size = (uint32_t)size;
	bp->ext_ramdisk_image = (uint32_t)(addr >> 32);
	bp->ext_ramdisk_size = (uint32_t)(size >> 32);
	return 0;
}

/* The ACPI tables at LAYOUT_ACPI, and their RSDP in the zero page so Linux
 * (5.0 and later) need not scan for it. */
static int write_acpi(struct vm *vm, struct boot_params *bp, const struct boot_config *cfg)
{
	struct acpi_config ac = { .ncpus = vm->ncpus, .devs = cfg->devs, .ndevs = cfg->ndevs };
	uint8_t *mem = vm_gpa(vm, LAYOUT_ACPI, LAYOUT_ACPI_SIZE);
	struct acpi_tables t;

	if (!mem)
		return -ENOMEM;
	int r = acpi_build(&ac, mem, LAYOUT_ACPI_SIZE, LAYOUT_ACPI, &t);
	if (!r)
		bp->acpi_rsdp_addr = t.rsdp;
	return r;
}

/* The header fields a boot loader fills (boot.rst, "Details of header fields"). */
static void fill_loader_fields(struct boot_params *bp, const struct boot_kernel *k)
{
	if (!k->has_setup_header) {
		/* A vmlinux has no header of its own: describe a minimal one. */
		bp->hdr.boot_flag = 0xaa55;
		bp->hdr.header = 0x53726448;
		bp->hdr.version = 0x020c;
		bp->hdr.kernel_alignment = 0x1000000;
	}
	bp->hdr.type_of_loader = BOOT_LOADER_UNDEFINED;
	bp->hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
	bp->hdr.heap_end_ptr = 0xfe00;
}

/* A bzImage unpacked on the host: its vmlinux, described by its header. */
static int load_unpacked(struct vm *vm, struct boot_params *bp, int fd, struct boot_kernel *k,
			 struct errbuf *why)
{
	struct decompressed elf;
	int r = boot_unpack_bzimage(fd, bp, &elf, why);
	if (r < 0)
		return r;
	r = boot_load_elf_image(vm, elf.data, elf.len, k, why);
	decompress_free(&elf);
	if (r == -ENOEXEC && !why->msg[0])
		errbuf_set(why, "the bzImage's payload is not an ELF vmlinux");
	if (r < 0)
		return r;
	k->has_setup_header = true;
	k->cmdline_max = bp->hdr.cmdline_size;
	k->initrd_addr_max = bp->hdr.initrd_addr_max;
	return 0;
}

static int load_kernel(struct vm *vm, struct boot_params *bp, const struct boot_config *cfg,
		       struct boot_kernel *k, struct errbuf *eb)
{
	const char *path = cfg->kernel_path;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int r = -errno;

		errbuf_set(eb, "--kernel %s: %s", path, strerror(-r));
		return r;
	}
	/* Each loader leaves @why empty when the file is simply not its kind. */
	struct errbuf why = { 0 };
	int r = boot_load_elf(vm, fd, k, &why);
	if (r == -ENOEXEC && !why.msg[0] && cfg->host_decompress)
		r = load_unpacked(vm, bp, fd, k, &why);
	if (r == -ENOEXEC && !why.msg[0])
		r = boot_load_bzimage(vm, fd, bp, k, &why);
	close(fd);
	if (r == -ENOEXEC && !why.msg[0])
		errbuf_set(&why, "neither an ELF vmlinux nor a bzImage");
	if (r < 0)
		errbuf_set(eb, "--kernel %s: %s", path, why.msg);
	return r;
}

int boot_load(struct vm *vm, const struct boot_config *cfg, struct errbuf *eb)
{
	struct boot_params *bp = vm_gpa(vm, LAYOUT_ZERO_PAGE, sizeof(*bp));
	/* Zeroed: a loader that fails part-way leaves no field undefined. */
	struct boot_kernel k = { 0 };

	eb->msg[0] = '\0';
	if (!bp || vm->low_ram_end < LAYOUT_HIMEM) {
		errbuf_set(eb, "guest memory too small to boot");
		return -ENOMEM;
	}
	memset(bp, 0, sizeof(*bp));
	int r = load_kernel(vm, bp, cfg, &k, eb);
	if (!r)
		r = write_cmdline(vm, bp, &k, cfg->cmdline ? cfg->cmdline : "", eb);
	if (!r && cfg->initrd_path)
		r = load_initrd(vm, bp, &k, cfg->initrd_path, eb);
	if (r < 0)
		return r;
	fill_loader_fields(bp, &k);
	write_e820(vm, bp, !cfg->no_acpi);
	r = write_gdt(vm);
	if (!r)
		r = write_page_tables(vm);
	if (!r)
		r = mptable_write(vm);
	if (r < 0) {
		errbuf_set(eb, "writing boot structures: %s", strerror(-r));
		return r;
	}
	r = cfg->no_acpi ? 0 : write_acpi(vm, bp, cfg);
	if (r < 0) {
		errbuf_set(eb, "writing ACPI tables: %s", strerror(-r));
		return r;
	}
	vm->entry = (struct vm_entry){ .rip = k.entry, .rsi = LAYOUT_ZERO_PAGE };
	return 0;
}
