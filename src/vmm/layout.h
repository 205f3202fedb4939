/*
 * The guest physical address map kvmini builds (x86-64).
 *
 *   0x0000_0500  GDT (5 entries), then an empty IDT
 *   0x0000_7000  zero page (struct boot_params)
 *   0x0000_8ff0  initial stack pointer (grows down to 0x8000)
 *   0x0000_9000  page tables: PML4, PDPT, 4 page directories (identity map
 *                of the first 4 GiB with 2 MiB pages)
 *   0x0002_0000  kernel command line
 *   0x0009_fc00  start of the reserved area up to 1 MiB (EBDA, BIOS)
 *   0x000e_0000  ACPI tables: RSDP first (Linux scans 0xe0000..0xfffff for
 *                it), then XSDT, FADT, MADT, DSDT; e820 type ACPI
 *   0x000f_0000  MP table (Linux scans 0xf0000..0xfffff for it)
 *   0x0010_0000  bzImage protected-mode code, test guests (1 MiB)
 *   ...          RAM up to min(size, 3 GiB); initramfs at its top
 *   0xd000_0000  virtio-mmio devices, 4 KiB apart
 *   0xfec0_0000  IOAPIC (in-kernel)
 *   0xfee0_0000  local APICs (in-kernel)
 *   0xfffb_c000  KVM identity-map page and TSS (3 pages)
 *   4 GiB        RAM beyond the first 3 GiB
 *   above RAM    device memory (virtio-fs DAX windows), each on a boundary
 *                of its size and of at least 1 GiB (Linux's memremap of it
 *                wants whole memory sections), in KVM slots of their own
 */
#ifndef KVMINI_VMM_LAYOUT_H
#define KVMINI_VMM_LAYOUT_H

#define LAYOUT_GDT            0x500ull
#define LAYOUT_IDT            0x528ull
#define LAYOUT_ZERO_PAGE      0x7000ull
#define LAYOUT_STACK_TOP      0x8ff0ull
#define LAYOUT_PML4           0x9000ull
#define LAYOUT_PDPT           0xa000ull
#define LAYOUT_PD             0xb000ull     /* 4 pages */
#define LAYOUT_CMDLINE        0x20000ull
#define LAYOUT_CMDLINE_MAX    4096u         /* bytes, NUL included */
#define LAYOUT_EBDA           0x9fc00ull
#define LAYOUT_ACPI           0xe0000ull
#define LAYOUT_ACPI_SIZE      0x10000ull    /* up to the MP table */
#define LAYOUT_MPTABLE        0xf0000ull
#define LAYOUT_HIMEM          0x100000ull   /* first byte above the BIOS area */

#define LAYOUT_LOW_RAM_MAX    0xc0000000ull /* RAM below the 32-bit hole */
#define LAYOUT_HIGH_RAM       0x100000000ull

#define LAYOUT_DEVICE_MEM_ALIGN 0x40000000ull
#define LAYOUT_DEVICE_MEM_FIRST_SLOT 32u  /* past every RAM slot (GUEST_MEM_MAX_REGIONS) */
#define LAYOUT_DEVICE_MEM_MAX_SLOTS 16u

#define LAYOUT_MMIO_BASE      0xd0000000ull
#define LAYOUT_MMIO_SIZE      0x1000ull
#define LAYOUT_MMIO_MAX_DEVS  16u

#define LAYOUT_IOAPIC         0xfec00000ull
#define LAYOUT_LAPIC          0xfee00000ull
#define LAYOUT_IDENTITY_MAP   0xfffbc000ull
#define LAYOUT_TSS            0xfffbd000ull

/* Interrupt lines (IOAPIC pins): the ISA ones, then one per virtio device. */
#define LAYOUT_IRQ_SERIAL     4u
#define LAYOUT_IRQ_FIRST_DEV  5u
#define LAYOUT_IOAPIC_PINS    24u
#define LAYOUT_ISA_IRQS       16u
/* APIC IDs: vCPU i has ID i (CPUID, MP table, MADT); the IOAPIC comes next. */
#define LAYOUT_IOAPIC_ID(ncpus) ((uint8_t)(ncpus))

/* Legacy ports. */
#define LAYOUT_PORT_SERIAL    0x3f8u
#define LAYOUT_PORT_DEBUG_EXIT 0x501u     /* 2 ports, QEMU's isa-debug-exit */
#define LAYOUT_PORT_BOOT_MARKER 0x3f0u    /* Firecracker's boot-time port */
#define LAYOUT_BOOT_MARKER_VALUE 123u
#define LAYOUT_PORT_I8042_CMD 0x64u
#define LAYOUT_PORT_ACPI_SLEEP_CTL 0x600u  /* ACPI sleep control register (acpi_pm.c) */
#define LAYOUT_PORT_ACPI_SLEEP_STS 0x601u  /* ACPI sleep status register */
#define LAYOUT_CMOS_CENTURY   0x32u         /* CMOS index of the RTC century (legacy.c) */

#endif
