/*
 * ACPI table builder (see acpi.h). Layouts: ACPI 6.3, sections 5.2.5
 * (RSDP), 5.2.6 (header), 5.2.8 (XSDT), 5.2.9 (FADT), 5.2.12 (MADT),
 * 5.2.11.1 (DSDT).
 */
#include "vmm/acpi.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "vmm/aml.h"
#include "vmm/i8042.h"
#include "vmm/layout.h"

#define ACPI_OEM_ID        "KVMINI"
#define ACPI_OEM_TABLE_ID  "MICROVM "
#define ACPI_CREATOR_ID    "KVMI"
#define ACPI_TABLE_ALIGN   16u

#define RSDP_REVISION      2u       /* ACPI 2.0+: XSDT, extended checksum */
#define XSDT_REVISION      1u
#define FADT_REVISION      6u       /* with FADT minor 3: ACPI 6.3 */
#define FADT_MINOR         3u
#define MADT_REVISION      5u       /* ACPI 6.3 */
#define DSDT_REVISION      2u       /* 64-bit AML integers */

/* FADT flags (table 5-34). */
#define FADT_F_WBINVD          (1u << 0)
#define FADT_F_PWR_BUTTON      (1u << 4)   /* no fixed power button */
#define FADT_F_SLP_BUTTON      (1u << 5)   /* no fixed sleep button */
#define FADT_F_RESET_REG_SUP   (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)
/* IA-PC boot architecture flags (table 5-35). */
#define FADT_BOOT_8042            (1u << 1)
#define FADT_BOOT_VGA_NOT_PRESENT (1u << 2)
#define FADT_BOOT_MSI_NOT_SUPPORTED (1u << 3)

#define GAS_SYSTEM_IO      1u
#define GAS_ACCESS_BYTE    1u
#define I8042_RESET_VALUE  0xfeu

#define MADT_PCAT_COMPAT   1u       /* KVM's dual 8259 is there (masked by the OS) */
#define MADT_LAPIC_ENABLED 1u
#define MADT_ALL_CPUS      0xffu
enum { MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_LAPIC_NMI = 4 };

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
	char signature[8];           /* "RSD PTR " */
	uint8_t checksum;            /* of the first 20 bytes */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;       /* 0: no RSDT, the XSDT only */
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum;   /* of all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

/* Generic Address Structure (5.2.3.2). */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;      /* no FACS: optional when hardware-reduced */
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	char hypervisor_id[8];
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT of ACPI 6.x");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
_Static_assert(offsetof(struct acpi_fadt, minor_version) == 131, "FADT minor version");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT");
_Static_assert(offsetof(struct acpi_fadt, sleep_control_reg) == 244, "FADT sleep control");

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));

struct madt_lapic {
	uint8_t type, length, processor_uid, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length, id, reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length, processor_uid;
	uint16_t flags;              /* 0: conforming, as the MP table's entry */
	uint8_t lint;
} __attribute__((packed));

/* Tables are carved one after the other out of the caller's buffer. */
struct cursor {
	uint8_t *buf;
	size_t cap;
	size_t off;
	uint64_t gpa;
};

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + b[i]);
	return (uint8_t)-sum;
}

/* @len bytes at the next aligned offset, or NULL when they do not fit. */
static void *take(struct cursor *c, size_t len, uint64_t *gpa)
{
	size_t at = (c->off + ACPI_TABLE_ALIGN - 1) & ~(size_t)(ACPI_TABLE_ALIGN - 1);

	if (at > c->cap || len > c->cap - at)
		return NULL;
	c->off = at + len;
	if (gpa)
		*gpa = c->gpa + at;
	return c->buf + at;
}

static void fill_header(struct acpi_header *h, const char *sig, size_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = (uint32_t)len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
	h->checksum = 0;
	h->checksum = acpi_checksum(h, len);
}

static struct acpi_gas io_register(uint16_t port)
{
	return (struct acpi_gas){ .space_id = GAS_SYSTEM_IO, .bit_width = 8,
				  .access_size = GAS_ACCESS_BYTE, .address = port };
}

static int build_fadt(struct cursor *c, uint64_t dsdt, uint64_t *gpa)
{
	struct acpi_fadt *f = take(c, sizeof(*f), gpa);

	if (!f)
		return -ENOSPC;
	f->dsdt = (uint32_t)dsdt;
	f->x_dsdt = dsdt;
	f->century = LAYOUT_CMOS_CENTURY;
	f->iapc_boot_arch = FADT_BOOT_8042 | FADT_BOOT_VGA_NOT_PRESENT | FADT_BOOT_MSI_NOT_SUPPORTED;
	f->flags = FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP |
		   FADT_F_HW_REDUCED_ACPI;
	f->reset_reg = io_register(LAYOUT_PORT_I8042_CMD);
	f->reset_value = I8042_RESET_VALUE;
	f->minor_version = FADT_MINOR;
	f->sleep_control_reg = io_register(LAYOUT_PORT_ACPI_SLEEP_CTL);
	f->sleep_status_reg = io_register(LAYOUT_PORT_ACPI_SLEEP_STS);
	memcpy(f->hypervisor_id, "KVMINI  ", 8);
	fill_header(&f->h, "FACP", sizeof(*f), FADT_REVISION);
	return 0;
}

/*
 * The MP table routes ISA line N to IOAPIC pin N, conforming to the bus
 * (edge, active high), for every line: exactly ACPI's default for ISA
 * interrupts (5.2.12.5), so no interrupt source override is needed, and
 * none is emitted: with SCI_INT 0 (no SCI on a hardware-reduced platform)
 * Linux would take an override of IRQ 0 for the SCI's and make the
 * timer line level-triggered, active low.
 */
static int build_madt(struct cursor *c, unsigned ncpus, uint64_t *gpa)
{
	size_t len = sizeof(struct acpi_madt) + ncpus * sizeof(struct madt_lapic) +
		     sizeof(struct madt_ioapic) + sizeof(struct madt_lapic_nmi);
	struct acpi_madt *m = take(c, len, gpa);

	if (!m)
		return -ENOSPC;
	m->lapic_address = (uint32_t)LAYOUT_LAPIC;
	m->flags = MADT_PCAT_COMPAT;
	struct madt_lapic *cpu = (struct madt_lapic *)(m + 1);
	for (unsigned i = 0; i < ncpus; i++)
		cpu[i] = (struct madt_lapic){ .type = MADT_LAPIC, .length = sizeof(*cpu),
					      .processor_uid = (uint8_t)i, .apic_id = (uint8_t)i,
					      .flags = MADT_LAPIC_ENABLED };
	struct madt_ioapic *io = (struct madt_ioapic *)(cpu + ncpus);
	*io = (struct madt_ioapic){ .type = MADT_IOAPIC, .length = sizeof(*io),
				    .id = LAYOUT_IOAPIC_ID(ncpus),
				    .address = (uint32_t)LAYOUT_IOAPIC, .gsi_base = 0 };
	/* LINT1 carries NMIs on every CPU (the MP table's last entry). */
	struct madt_lapic_nmi *nmi = (struct madt_lapic_nmi *)(io + 1);
	*nmi = (struct madt_lapic_nmi){ .type = MADT_LAPIC_NMI, .length = sizeof(*nmi),
					.processor_uid = MADT_ALL_CPUS, .flags = 0, .lint = 1 };
	fill_header(&m->h, "APIC", len, MADT_REVISION);
	return 0;
}

/* The i8042 as a PS/2 keyboard (PNP0303): Linux's i8042 driver takes its
 * ports and IRQ from here (i8042_pnp_init) on any kernel with PNPACPI, so
 * a stock distribution kernel finds it with no i8042.* arguments. The
 * data port first, then the command port, as that driver reads them. */
static void dsdt_keyboard(struct aml *a)
{
	aml_device(a, "PS2K");
	aml_name(a, "_HID");
	aml_eisa_id(a, "PNP0303");
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_res_io(a, I8042_PORT_DATA, 1);
	aml_res_io(a, I8042_PORT_STATUS, 1);
	aml_res_irq(a, I8042_IRQ_LINE);
	aml_end(a);
	aml_end(a);
}

static void dsdt_serial(struct aml *a)
{
	aml_device(a, "COM1");
	aml_name(a, "_HID");
	aml_eisa_id(a, "PNP0501");
	aml_name(a, "_UID");
	aml_integer(a, 1);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_res_io(a, LAYOUT_PORT_SERIAL, 8);
	aml_res_irq(a, LAYOUT_IRQ_SERIAL);
	aml_end(a);
	aml_end(a);
}

/* Processor devices, so the OS can match each MADT entry (by _UID) to the
 * namespace. */
static void dsdt_cpus(struct aml *a, unsigned ncpus)
{
	for (unsigned i = 0; i < ncpus; i++) {
		char name[5] = { 'C', (char)('0' + i / 100), (char)('0' + i / 10 % 10),
				 (char)('0' + i % 10), 0 };
		aml_device(a, name);
		aml_name(a, "_HID");
		aml_string(a, "ACPI0007");
		aml_name(a, "_UID");
		aml_integer(a, i);
		aml_end(a);
	}
}

/* One LNRO0005 device (Linux's virtio-mmio ACPI ID) per slot. */
static int dsdt_virtio(struct aml *a, const struct acpi_mmio_device *d, unsigned index)
{
	char name[5] = { 'V', 'R', (char)('0' + index / 10 % 10), (char)('0' + index % 10), 0 };

	if (index > 99 || !d->size || d->size > UINT32_MAX || d->base > UINT32_MAX - (d->size - 1) ||
	    d->gsi >= LAYOUT_IOAPIC_PINS)
		return -EINVAL;
	aml_device(a, name);
	aml_name(a, "_HID");
	aml_string(a, "LNRO0005");
	aml_name(a, "_UID");
	aml_integer(a, index);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_res_memory32_fixed(a, (uint32_t)d->base, (uint32_t)d->size, true);
	aml_res_interrupt(a, d->gsi, false, false);    /* edge, active high */
	aml_end(a);
	aml_end(a);
	return 0;
}

static int build_dsdt(struct cursor *c, const struct acpi_config *cfg, uint64_t *gpa)
{
	struct acpi_header *h = take(c, sizeof(*h), gpa);
	struct aml a;
	size_t len = 0;

	if (!h)
		return -ENOSPC;
	aml_init(&a, c->buf + c->off, c->cap - c->off);
	aml_scope(&a, "\\_SB");
	dsdt_serial(&a);
	dsdt_keyboard(&a);
	dsdt_cpus(&a, cfg->ncpus);
	for (unsigned i = 0; i < cfg->ndevs; i++) {
		int r = dsdt_virtio(&a, &cfg->devs[i], i);
		if (r < 0)
			return r;
	}
	aml_end(&a);
	/* \_S5: the sleep type value acpi_pm.c takes for "power off". */
	aml_name(&a, "\\_S5");
	aml_package(&a, 2);
	aml_integer(&a, ACPI_S5_SLP_TYP);
	aml_integer(&a, 0);
	aml_end(&a);
	int r = aml_finish(&a, &len);
	if (r < 0)
		return r;
	c->off += len;
	fill_header(h, "DSDT", sizeof(*h) + len, DSDT_REVISION);
	return 0;
}

static int build_xsdt(struct cursor *c, const uint64_t *entries, unsigned n, uint64_t *gpa)
{
	size_t len = sizeof(struct acpi_header) + n * sizeof(uint64_t);
	struct acpi_header *h = take(c, len, gpa);

	if (!h)
		return -ENOSPC;
	/* The entries are not 8-byte aligned in the table: copy them. */
	memcpy(h + 1, entries, n * sizeof(uint64_t));
	fill_header(h, "XSDT", len, XSDT_REVISION);
	return 0;
}

static void fill_rsdp(struct acpi_rsdp *r, uint64_t xsdt)
{
	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, ACPI_OEM_ID, 6);
	r->revision = RSDP_REVISION;
	r->length = sizeof(*r);
	r->xsdt_address = xsdt;
	r->checksum = acpi_checksum(r, 20);
	r->extended_checksum = acpi_checksum(r, sizeof(*r));
}

int acpi_build(const struct acpi_config *cfg, uint8_t *buf, size_t cap, uint64_t gpa,
	       struct acpi_tables *out)
{
	struct cursor c = { .buf = buf, .cap = cap, .gpa = gpa };

	if (!cfg->ncpus || cfg->ncpus >= 255 || gpa % ACPI_TABLE_ALIGN || cap > UINT32_MAX ||
	    gpa > UINT32_MAX - cap)
		return -EINVAL;
	memset(buf, 0, cap);
	memset(out, 0, sizeof(*out));
	struct acpi_rsdp *rsdp = take(&c, sizeof(*rsdp), &out->rsdp);
	if (!rsdp)
		return -ENOSPC;
	int r = build_dsdt(&c, cfg, &out->dsdt);
	if (!r)
		r = build_fadt(&c, out->dsdt, &out->fadt);
	if (!r)
		r = build_madt(&c, cfg->ncpus, &out->madt);
	uint64_t entries[] = { out->fadt, out->madt };
	if (!r)
		r = build_xsdt(&c, entries, 2, &out->xsdt);
	if (r < 0)
		return r;
	fill_rsdp(rsdp, out->xsdt);
	out->size = c.off;
	return 0;
}
