/*
 * The test guest as an ACPI consumer: find the RSDP the two ways Linux
 * does (the zero page's acpi_rsdp_addr, the scan of 0xe0000..0xfffff),
 * validate every table, walk XSDT -> FADT -> DSDT and the MADT, compare
 * the MADT with the MP table and CPUID, walk the DSDT's AML for the
 * LNRO0005 devices and probe each at the window its _CRS names; then the
 * ways out a hardware-reduced FADT offers (sleep control for S5, the
 * reset register).
 *
 * Written from the ACPI specification, independently of kvmini's builder:
 * only what a guest sees in memory is used.
 */
#include "acpi.h"
#include "guest.h"

#define ZP_ACPI_RSDP 0x70u
#define ZP_E820_COUNT 0x1e8u
#define ZP_E820_TABLE 0x2d0u
#define E820_RESERVED 2u
#define E820_ACPI 3u
#define VIRTIO_MMIO_MAGIC 0x74726976u
#define PNP0501 0x0105d041u
#define PNP0303 0x0303d041u

#define MAX_DEVS 16u

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* --- finding and validating tables ------------------------------------------------ */

/* The e820 type of the entry holding all of [addr, addr + len), or 0. */
static uint32_t e820_type(const uint8_t *zp, uint64_t addr, uint64_t len)
{
	for (unsigned i = 0; i < zp[ZP_E820_COUNT]; i++) {
		const uint8_t *e = zp + ZP_E820_TABLE + 20 * i;
		uint64_t a = rd64(e), s = rd64(e + 8);
		if (addr >= a && addr + len <= a + s)
			return rd32(e + 16);
	}
	return 0;
}

static uint64_t scan_rsdp(void)
{
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
		const uint8_t *p = (const uint8_t *)a;
		if (!memcmp(p, "RSD PTR ", 8) && !sum8(p, 20))
			return a;
	}
	return 0;
}

static unsigned bad_tables;

/* A table at @addr with @sig: sane length, zero sum, in ACPI or reserved
 * memory. Reports what is wrong; returns it or NULL. */
static const uint8_t *table_at(const uint8_t *zp, uint64_t addr, const char *sig)
{
	const uint8_t *t = (const uint8_t *)addr;

	if (!addr || addr >= 0x100000000ull) {
		printf("kvm-guest acpi: %s at 0x%lx: no such address\n", sig, addr);
		bad_tables++;
		return NULL;
	}
	uint32_t len = rd32(t + 4), type = e820_type(zp, addr, len);
	if (memcmp(t, sig, 4) || len < 36 || len > 0x10000 || sum8(t, len) ||
	    (type != E820_ACPI && type != E820_RESERVED)) {
		printf("kvm-guest acpi: %s at 0x%lx: length %u, sum %u, e820 type %u\n", sig, addr,
		       len, sum8(t, len < 0x10000 ? len : 36), type);
		bad_tables++;
		return NULL;
	}
	return t;
}

/* RSDP -> XSDT -> FADT, MADT and FADT -> DSDT, every one validated. */
static bool find_tables(const uint8_t *zp, struct acpi_found *f, bool report)
{
	memset(f, 0, sizeof(*f));
	bad_tables = 0;
	f->rsdp = rd64(zp + ZP_ACPI_RSDP);
	const uint8_t *r = (const uint8_t *)f->rsdp;
	bool rsdp_ok = f->rsdp >= 0xe0000 && f->rsdp < 0x100000 && !memcmp(r, "RSD PTR ", 8) &&
		       !sum8(r, 20) && r[15] >= 2 && rd32(r + 20) == 36 && !sum8(r, 36) &&
		       e820_type(zp, f->rsdp, 36) != 0 && e820_type(zp, f->rsdp, 36) != 1;
	if (report) {
		check(f->rsdp != 0, "zero page: acpi_rsdp_addr set");
		CHECK_EQ(scan_rsdp(), f->rsdp, "RSDP: the BIOS-area scan finds the same one");
		check(rsdp_ok, "RSDP: revision 2, both checksums, outside RAM");
	}
	if (!rsdp_ok)
		return false;
	const uint8_t *x = table_at(zp, rd64(r + 24), "XSDT");
	for (uint32_t off = 36; x && off + 8 <= rd32(x + 4); off += 8) {
		uint64_t a = rd64(x + off);
		const uint8_t *t = (const uint8_t *)a;
		f->nxsdt++;
		if (!memcmp(t, "FACP", 4)) {
			f->fadt = table_at(zp, a, "FACP");
			f->nfadt++;
		} else if (!memcmp(t, "APIC", 4)) {
			f->madt = table_at(zp, a, "APIC");
			f->nmadt++;
		} else {
			table_at(zp, a, "????");   /* unknown: still validated */
		}
	}
	if (f->fadt && rd32(f->fadt + 4) >= 148) {
		f->dsdt = table_at(zp, rd64(f->fadt + 140), "DSDT");
		f->dsdt32_matches = rd32(f->fadt + 40) == rd64(f->fadt + 140);
	}
	if (report) {
		check(x != NULL, "XSDT: valid, in ACPI memory");
		check(f->nfadt == 1 && f->nmadt == 1 && f->nxsdt == 2, "XSDT: one FADT, one MADT");
		check(f->dsdt != NULL && f->dsdt32_matches, "FADT -> DSDT (X_DSDT and DSDT agree)");
		CHECK_EQ(bad_tables, 0, "every table: checksum, length, e820 type");
	}
	return f->fadt && f->madt && f->dsdt && !bad_tables;
}

/* --- the FADT ---------------------------------------------------------------------- */

static void check_fadt(const uint8_t *f)
{
	CHECK_EQ(rd32(f + 4), 276, "FADT: ACPI 6 length");
	CHECK_EQ(f[8], 6, "FADT: revision 6");
	check(rd32(f + 112) & (1u << 20), "FADT: hardware-reduced ACPI");
	check((rd32(f + 112) & (1u << 10)) && f[116] == 1 && rd64(f + 120) == 0x64 && f[128] == 0xfe,
	      "FADT: reset register is the i8042's (port 0x64, 0xfe)");
	check(f[109] & 0x2, "FADT: IAPC_BOOT_ARCH says an i8042 is there");
	check(f[244] == 1 && rd64(f + 248) && f[256] == 1 && rd64(f + 260),
	      "FADT: sleep control and status registers in I/O space");
}

/* --- the MADT against the MP table and CPUID ------------------------------------------ */

struct mp_view {
	uint8_t apic_ids[64];
	unsigned ncpus;
	uint8_t ioapic_id;
	uint32_t ioapic_addr;
	uint8_t isa_pin[16];
	uint16_t isa_flags[16];
};

static bool read_mp_table(struct mp_view *mp)
{
	memset(mp, 0, sizeof(*mp));
	for (uint64_t a = 0xf0000; a < 0x100000; a += 16) {
		const uint8_t *p = (const uint8_t *)a;
		if (memcmp(p, "_MP_", 4) || sum8(p, 16))
			continue;
		const uint8_t *c = (const uint8_t *)(uint64_t)rd32(p + 4);
		uint16_t len = rd16(c + 4);
		if (memcmp(c, "PCMP", 4) || sum8(c, len))
			return false;
		for (const uint8_t *e = c + 44; e < c + len; e += e[0] == 0 ? 20 : 8) {
			if (e[0] == 0 && mp->ncpus < 64) {
				mp->apic_ids[mp->ncpus++] = e[1];
			} else if (e[0] == 2) {
				mp->ioapic_id = e[1];
				mp->ioapic_addr = rd32(e + 4);
			} else if (e[0] == 3 && e[5] < 16) {     /* INTSRC: flags, bus, irq, apic, pin */
				mp->isa_pin[e[5]] = e[7];
				mp->isa_flags[e[5]] = rd16(e + 2);
			}
		}
		return true;
	}
	return false;
}

static void check_madt(const uint8_t *m, unsigned want_cpus)
{
	struct mp_view mp;
	uint8_t ids[64];
	unsigned n = 0, ioapics = 0;
	uint8_t io_id = 0xff;
	uint32_t io_addr = 0, io_base = 1;
	uint8_t pin[16];
	uint16_t flags[16];

	for (unsigned i = 0; i < 16; i++) {
		pin[i] = (uint8_t)i;    /* ACPI's default: identity, conforming */
		flags[i] = 0;
	}
	for (uint32_t off = 44; off + 2 <= rd32(m + 4) && m[off + 1] >= 2; off += m[off + 1]) {
		const uint8_t *e = m + off;
		if (e[0] == 0 && (rd32(e + 4) & 1) && n < 64) {
			ids[n++] = e[3];
		} else if (e[0] == 1) {
			ioapics++;
			io_id = e[2];
			io_addr = rd32(e + 4);
			io_base = rd32(e + 8);
		} else if (e[0] == 2 && e[2] == 0 && e[3] < 16) {   /* override of an ISA line */
			pin[e[3]] = (uint8_t)rd32(e + 4);
			flags[e[3]] = rd16(e + 8);
		}
	}
	CHECK_EQ(n, want_cpus, "MADT: one enabled local APIC per vCPU");
	CHECK_EQ(ioapics, 1, "MADT: one IOAPIC");
	check(io_addr == 0xfec00000u && io_base == 0, "MADT: IOAPIC at 0xfec00000, GSI base 0");
	check(read_mp_table(&mp), "MP table found beside ACPI");
	bool same = mp.ncpus == n;
	for (unsigned i = 0; same && i < n; i++)
		same = mp.apic_ids[i] == ids[i];
	check(same, "MADT and MP table: the same APIC IDs, in order");
	check(mp.ioapic_id == io_id && mp.ioapic_addr == io_addr, "MADT and MP table: the same IOAPIC");
	bool isa = true;
	for (unsigned i = 0; i < 16; i++)
		isa = isa && mp.isa_pin[i] == pin[i] && mp.isa_flags[i] == flags[i];
	check(isa, "ISA lines 0..15: MADT (overrides or default) routes them as the MP table");
	uint32_t eax = 1, ebx, ecx = 0, edx;
	__asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
	check(n && ids[0] == ebx >> 24 && ids[0] == mmio_read32(LAPIC_BASE + 0x20) >> 24,
	      "boot CPU: CPUID and LAPIC ID match the MADT's first entry");
}

/* --- a small AML reader ------------------------------------------------------------------ */

struct aml_dev {
	char name[5];
	char hid[16];
	uint32_t eisa_hid;
	uint64_t uid;
	const uint8_t *crs;
	uint32_t crs_len;
};

struct dsdt_view {
	struct aml_dev devs[96];
	unsigned ndevs;
	int64_t s5;                  /* -1: no \_S5 */
	bool bad;
};

static uint32_t pkg_length(const uint8_t **p)
{
	const uint8_t *q = *p;
	unsigned follow = q[0] >> 6;
	uint32_t v = follow ? q[0] & 0x0f : q[0] & 0x3f;

	for (unsigned i = 1; i <= follow; i++)
		v |= (uint32_t)q[i] << (4 + 8 * (i - 1));
	*p = q + follow + 1;
	return v;
}

/* Skip a NameString; the last segment's 4 characters into @last. */
static const uint8_t *name_string(const uint8_t *p, char last[5])
{
	unsigned segs = 1;

	while (*p == '\\' || *p == '^')
		p++;
	if (*p == 0x00) {
		segs = 0;
		p++;
	} else if (*p == 0x2e) {
		segs = 2;
		p++;
	} else if (*p == 0x2f) {
		segs = p[1];
		p += 2;
	}
	if (segs) {
		memcpy(last, p + 4 * (segs - 1), 4);
		last[4] = 0;
	}
	return p + 4 * segs;
}

static const uint8_t *integer(const uint8_t *p, uint64_t *v, bool *ok)
{
	*ok = true;
	switch (*p) {
	case 0x00: *v = 0; return p + 1;
	case 0x01: *v = 1; return p + 1;
	case 0xff: *v = ~0ull; return p + 1;
	case 0x0a: *v = p[1]; return p + 2;
	case 0x0b: *v = rd16(p + 1); return p + 3;
	case 0x0c: *v = rd32(p + 1); return p + 5;
	case 0x0e: *v = rd64(p + 1); return p + 9;
	}
	*ok = false;
	return p;
}

/* The data object of a Name(): into @d when it is _HID, _UID or _CRS. */
static const uint8_t *data_object(const uint8_t *p, const char *name, struct aml_dev *d,
				  struct dsdt_view *v)
{
	uint64_t x;
	bool ok;
	const uint8_t *q = integer(p, &x, &ok);

	if (ok) {
		if (d && !memcmp(name, "_HID", 4))
			d->eisa_hid = (uint32_t)x;
		if (d && !memcmp(name, "_UID", 4))
			d->uid = x;
		return q;
	}
	if (*p == 0x0d) {
		size_t n = strlen((const char *)p + 1);
		if (d && !memcmp(name, "_HID", 4) && n < sizeof(d->hid))
			memcpy(d->hid, p + 1, n + 1);
		return p + 2 + n;
	}
	if (*p == 0x11 || *p == 0x12) {
		const uint8_t *body = p + 1;
		uint32_t len = pkg_length(&body);
		const uint8_t *end = p + 1 + len;
		if (*p == 0x11 && d && !memcmp(name, "_CRS", 4)) {
			uint64_t size;
			d->crs = integer(body, &size, &ok);
			d->crs_len = (uint32_t)size;
		}
		if (*p == 0x12 && !d && !memcmp(name, "_S5_", 4)) {
			integer(body + 1, &x, &ok);   /* after NumElements */
			v->s5 = ok ? (int64_t)x : -1;
		}
		return end;
	}
	v->bad = true;
	return NULL;
}

/* Scope, Device and Name: what kvmini's DSDT is made of; anything else is
 * reported (a consumer this simple must not guess). */
static void term_list(const uint8_t *p, const uint8_t *end, struct aml_dev *dev,
		      struct dsdt_view *v)
{
	char name[5];

	while (p && p < end && !v->bad) {
		if (p[0] == 0x10) {
			const uint8_t *body = p + 1, *obj_end;
			obj_end = p + 1 + pkg_length(&body);
			term_list(name_string(body, name), obj_end, NULL, v);
			p = obj_end;
		} else if (p[0] == 0x5b && p[1] == 0x82 && v->ndevs < 96) {
			const uint8_t *body = p + 2, *obj_end;
			obj_end = p + 2 + pkg_length(&body);
			struct aml_dev *d = &v->devs[v->ndevs++];
			memset(d, 0, sizeof(*d));
			body = name_string(body, d->name);
			term_list(body, obj_end, d, v);
			p = obj_end;
		} else if (p[0] == 0x08) {
			p = data_object(name_string(p + 1, name), name, dev, v);
		} else {
			printf("kvm-guest acpi: AML opcode 0x%x at %p not understood\n", p[0], p);
			v->bad = true;
		}
	}
}

static void read_dsdt(const uint8_t *dsdt, struct dsdt_view *v)
{
	memset(v, 0, sizeof(*v));
	v->s5 = -1;
	term_list(dsdt + 36, dsdt + rd32(dsdt + 4), NULL, v);
}

/* A device's _CRS: its Memory32Fixed window, its Extended Interrupt, its
 * first and last I/O ranges and ISA IRQ mask (0 when absent). */
struct crs {
	uint32_t mem_base, mem_len, gsi, io_min, io_last, irq_mask;
	uint8_t gsi_flags;
	bool end;
};

static void read_crs(const struct aml_dev *d, struct crs *c)
{
	const uint8_t *p = d->crs, *end = d->crs + d->crs_len;

	memset(c, 0, sizeof(*c));
	while (p && p < end && !c->end) {
		if (!(p[0] & 0x80)) {
			unsigned type = (p[0] >> 3) & 0x0f, len = p[0] & 7;
			if (type == 0x0f)
				c->end = true;
			else if (type == 0x08 && !c->io_min)
				c->io_min = c->io_last = rd16(p + 2);
			else if (type == 0x08)
				c->io_last = rd16(p + 2);
			else if (type == 0x04)
				c->irq_mask = rd16(p + 1);
			p += 1 + len;
		} else {
			unsigned len = rd16(p + 1);
			if (p[0] == 0x86) {
				c->mem_base = rd32(p + 4);
				c->mem_len = rd32(p + 8);
			} else if (p[0] == 0x89 && p[4] >= 1) {
				c->gsi_flags = p[3];
				c->gsi = rd32(p + 5);
			}
			p += 3 + len;
		}
	}
}

static void check_dsdt(const uint8_t *dsdt)
{
	static struct dsdt_view v;
	unsigned lnro = 0, cpus = 0, matched = 0, com = 0, kbd = 0;
	uint64_t base;
	unsigned irq;

	read_dsdt(dsdt, &v);
	check(!v.bad, "DSDT: the AML parses (Scope, Device, Name)");
	CHECK_EQ(v.s5, 5, "DSDT: \\_S5 is Package(){5, ...}");
	for (unsigned i = 0; i < v.ndevs; i++) {
		const struct aml_dev *d = &v.devs[i];
		struct crs c;
		read_crs(d, &c);
		cpus += !memcmp(d->hid, "ACPI0007", 9);
		if (d->eisa_hid == PNP0501 && c.end && c.io_min == 0x3f8 && c.irq_mask == (1u << 4))
			com++;
		if (d->eisa_hid == PNP0303 && c.end && c.io_min == 0x60 && c.io_last == 0x64 &&
		    c.irq_mask == (1u << 1))
			kbd++;
		if (memcmp(d->hid, "LNRO0005", 9))
			continue;
		lnro++;
		/* The matching command-line device, probed at the _CRS window. */
		for (unsigned k = 0; find_virtio_device(&base, &irq, k); k++) {
			if (base != c.mem_base)
				continue;
			bool ok = c.end && c.mem_len == 0x1000 && c.gsi == irq && c.gsi_flags == 0x03 &&
				  d->uid == k && mmio_read32(base) == VIRTIO_MMIO_MAGIC;
			printf("kvm-guest acpi: %s: LNRO0005 _UID %lu at 0x%x+0x%x, GSI %u (flags 0x%x): %s\n",
			       d->name, d->uid, c.mem_base, c.mem_len, c.gsi, c.gsi_flags,
			       ok ? "virtio-mmio magic there" : "MISMATCH");
			matched += ok;
		}
	}
	unsigned want = 0;
	while (find_virtio_device(&base, &irq, want))
		want++;
	CHECK_EQ(lnro, want, "DSDT: one LNRO0005 device per virtio_mmio.device= entry");
	CHECK_EQ(matched, want, "LNRO0005 _CRS: window, GSI (edge, high) and _UID of each device; magic read there");
	CHECK_EQ(com, 1, "DSDT: COM1 is PNP0501 at I/O 0x3f8, IRQ 4");
	CHECK_EQ(kbd, 1, "DSDT: the i8042 is PNP0303 at I/O 0x60 and 0x64, IRQ 1");
	check(cpus > 0, "DSDT: processor devices");
}

/* --- the tests ------------------------------------------------------------------------------ */

void acpi_test_tables(const uint8_t *zp)
{
	struct acpi_found f;
	char val[16];
	unsigned cpus = cmdline_get("cpus", val, sizeof(val)) ? (unsigned)parse_dec(val, NULL) : 1;

	if (!find_tables(zp, &f, true))
		return;
	check_fadt(f.fadt);
	check_madt(f.madt, cpus);
	check_dsdt(f.dsdt);
}

/* Power off the way Linux's acpi_power_off does on a hardware-reduced
 * platform: clear WAK_STS, then SLP_TYP(\_S5) | SLP_EN to sleep control. */
void acpi_test_poweroff(const uint8_t *zp)
{
	struct acpi_found f;
	static struct dsdt_view v;

	if (!find_tables(zp, &f, false)) {
		check(false, "tables found");
		return;
	}
	read_dsdt(f.dsdt, &v);
	uint16_t ctl = (uint16_t)rd64(f.fadt + 248), sts = (uint16_t)rd64(f.fadt + 260);
	check(inb(sts) & 0x80, "sleep status reads WAK_STS (the VM never sleeps)");
	printf("kvm-guest acpi-poweroff: S5 (SLP_TYP %ld) through port 0x%x next\n", v.s5, ctl);
	outb(sts, 0x80);
	outb(ctl, (uint8_t)(((v.s5 & 7) << 2) | 0x20));
	check(false, "the VM ended at the S5 request");
}

/* Reboot through the FADT's reset register, as Linux's acpi_reboot does. */
void acpi_test_reset(const uint8_t *zp)
{
	struct acpi_found f;

	if (!find_tables(zp, &f, false)) {
		check(false, "tables found");
		return;
	}
	uint16_t port = (uint16_t)rd64(f.fadt + 120);
	printf("kvm-guest acpi-reset: writing 0x%x to port 0x%x next\n", f.fadt[128], port);
	outb(port, f.fadt[128]);
	check(false, "the VM ended at the reset register write");
}
