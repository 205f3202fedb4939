/*
 * Linux's x86 64-bit boot protocol (Documentation/arch/x86/boot.rst): the
 * kernel (an ELF vmlinux, or a bzImage entered at its 64-bit entry point),
 * the initramfs, the command line, the zero page with its e820 map, an MP
 * table for the CPUs and the IOAPIC, ACPI tables (acpi.h) with their RSDP
 * in the zero page's acpi_rsdp_addr, and identity-mapped page tables with
 * a flat GDT so the boot vCPU starts in long mode.
 *
 * Every size and offset read from the image files is checked against the
 * file and against guest RAM before anything is copied.
 */
#ifndef KVMINI_VMM_BOOT_H
#define KVMINI_VMM_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "vmm/acpi.h"
#include "vmm/vm.h"

struct decompressed;

struct boot_config {
	const char *kernel_path;
	const char *initrd_path;     /* NULL: none */
	const char *cmdline;         /* the whole command line */
	bool host_decompress;        /* bzImage: unpack its payload on the host */
	bool no_acpi;                /* MP table only: no ACPI tables, no acpi_rsdp_addr */
	const struct acpi_mmio_device *devs;  /* the virtio-mmio devices, for the DSDT */
	unsigned ndevs;
};

/* What a loader found in the kernel image. */
struct boot_kernel {
	uint64_t entry;              /* guest physical entry point (64-bit) */
	uint64_t end;                /* first byte above what the kernel needs */
	bool has_setup_header;       /* bzImage: the header was copied to the zero page */
	uint32_t cmdline_max;        /* longest command line the kernel takes (0: default) */
	uint64_t initrd_addr_max;    /* highest byte an initramfs may occupy */
};

/*
 * Load everything and point vm->entry at the kernel. On failure returns
 * -errno with a message for the operator in @eb.
 */
int boot_load(struct vm *vm, const struct boot_config *cfg, struct errbuf *eb);

/*
 * Copy @len bytes of @fd at @file_off into guest RAM at @gpa (one RAM
 * region) with pread. Returns 0, -EFAULT outside RAM, -EIO on a short
 * file.
 */
int boot_copy_to_guest(struct vm *vm, int fd, uint64_t file_off, uint64_t gpa, uint64_t len);

/* Loaders (loader.c). @zero_page is the guest's zero page in host memory.
 * Each returns 0, -ENOEXEC when the file is not of its kind, or -errno
 * with @eb filled. */
int boot_load_elf(struct vm *vm, int fd, struct boot_kernel *k, struct errbuf *eb);
/* The same for an ELF image already in memory (@len bytes at @image). */
int boot_load_elf_image(struct vm *vm, const uint8_t *image, size_t len, struct boot_kernel *k,
			struct errbuf *eb);
int boot_load_bzimage(struct vm *vm, int fd, void *zero_page, struct boot_kernel *k,
		      struct errbuf *eb);

/* Decompress a bzImage's payload (a vmlinux ELF) with a library (decompress.h)
 * into @out and copy the image's setup header into @zero_page (unpack.c).
 * Returns 0, or -errno with @eb filled (-ENOEXEC: not a bzImage). */
int boot_unpack_bzimage(int fd, void *zero_page, struct decompressed *out, struct errbuf *eb);

/* The MP table at LAYOUT_MPTABLE (mptable.c). */
int mptable_write(struct vm *vm);

#endif
