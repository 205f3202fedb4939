/*
 * The AML emitter's encodings (package lengths at every size boundary,
 * integers, names, strings, EISA IDs, buffers, resource descriptors,
 * errors) and the ACPI tables kvmini builds: lengths, checksums, the XSDT's
 * entries, the FADT's fields, the MADT per vCPU count, the DSDT's devices;
 * and the same tables disassembled by ACPICA's own iasl, which must name
 * every LNRO0005 device with its window and interrupt and report no error.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "vmm/acpi.h"
#include "vmm/aml.h"
#include "vmm/layout.h"

#define GPA 0xe0000ull
#define CAP 0x10000u

static uint8_t tables[CAP];

/* --- AML ---------------------------------------------------------------------------- */

/* Independent decoder of a PkgLength: its value, and its size in *@n. */
static size_t decode_pkg_length(const uint8_t *p, unsigned *n)
{
	unsigned follow = p[0] >> 6;
	size_t v;

	if (!follow) {
		*n = 1;
		return p[0] & 0x3f;
	}
	v = p[0] & 0x0f;
	for (unsigned i = 1; i <= follow; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	*n = follow + 1;
	return v;
}

static void expect_pkg(size_t content, const uint8_t *want, int n)
{
	uint8_t out[4] = { 0 };
	unsigned dn;

	CHECK_EQ(aml_pkg_length(content, out), n);
	CHECK(!memcmp(out, want, (size_t)n));
	CHECK_EQ(decode_pkg_length(out, &dn), content + (size_t)n);
	CHECK_EQ(dn, n);
}

static void test_pkg_length_boundaries(void)
{
	/* The value counts its own bytes: 63 is the most one byte holds,
	 * 0xfff two, 0xfffff three, 0xfffffff four. */
	expect_pkg(0, (const uint8_t[]){ 0x01 }, 1);
	expect_pkg(62, (const uint8_t[]){ 0x3f }, 1);
	expect_pkg(63, (const uint8_t[]){ 0x41, 0x04 }, 2);           /* 65 */
	expect_pkg(4093, (const uint8_t[]){ 0x4f, 0xff }, 2);         /* 0xfff */
	expect_pkg(4094, (const uint8_t[]){ 0x81, 0x00, 0x01 }, 3);   /* 0x1001 */
	expect_pkg(0xfffff - 3, (const uint8_t[]){ 0x8f, 0xff, 0xff }, 3);
	expect_pkg(0xfffff - 2, (const uint8_t[]){ 0xc1, 0x00, 0x00, 0x01 }, 4);
	expect_pkg(0xfffffff - 4, (const uint8_t[]){ 0xcf, 0xff, 0xff, 0xff }, 4);
	uint8_t out[4];
	CHECK_EQ(aml_pkg_length(0xfffffff - 3, out), -EINVAL);
	CHECK_EQ(aml_pkg_length(SIZE_MAX, out), -EINVAL);
	/* Every content length up to past the 3-byte boundary round-trips. */
	for (size_t c = 0; c < 0x101000; c += (c < 0x2000 ? 1 : 97)) {
		unsigned n;
		int r = aml_pkg_length(c, out);
		if (r < 1 || decode_pkg_length(out, &n) != c + (size_t)r || n != (unsigned)r) {
			CHECK_EQ(c, -1);
			break;
		}
	}
}

/* A Scope around @content filler bytes: the length bytes land between the
 * opcode and the contents, at each of the 1/2/3/4-byte sizes. */
static void test_pkg_length_in_scope(void)
{
	static const size_t sizes[] = { 0, 58, 59, 4089, 4090, 0xffff8, 0xffff9 };
	static const int want[] = { 1, 1, 2, 2, 3, 3, 4 };
	size_t cap = 0x100100;
	uint8_t *buf = malloc(cap), *fill = calloc(1, 0x100000);

	CHECK(buf && fill);
	for (unsigned i = 0; buf && fill && i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct aml a;
		size_t len = 0;
		unsigned n;
		aml_init(&a, buf, cap);
		aml_scope(&a, "_SB");                 /* name: 4 bytes of contents */
		aml_bytes(&a, fill, sizes[i]);
		aml_end(&a);
		CHECK_EQ(aml_finish(&a, &len), 0);
		CHECK_EQ(buf[0], 0x10);
		size_t v = decode_pkg_length(buf + 1, &n);
		CHECK_EQ(n, want[i]);
		CHECK_EQ(v, 4 + sizes[i] + n);
		CHECK_EQ(len, 1 + v);
		CHECK(!memcmp(buf + 1 + n, "_SB_", 4));
	}
	free(buf);
	free(fill);
}

/* Emit with @fn into a fresh buffer and compare with @want. */
#define EXPECT_AML(stmts, ...) do { \
	static const uint8_t want_[] = { __VA_ARGS__ }; \
	uint8_t buf_[64]; \
	struct aml a_; \
	size_t len_ = 0; \
	aml_init(&a_, buf_, sizeof(buf_)); \
	{ struct aml *a = &a_; stmts; } \
	CHECK_EQ(aml_finish(&a_, &len_), 0); \
	CHECK_EQ(len_, sizeof(want_)); \
	CHECK(!memcmp(buf_, want_, sizeof(want_))); \
} while (0)

#define EXPECT_AML_ERR(stmts, err) do { \
	uint8_t buf_[64]; \
	struct aml a_; \
	size_t len_ = 0; \
	aml_init(&a_, buf_, sizeof(buf_)); \
	{ struct aml *a = &a_; stmts; } \
	CHECK_EQ(aml_finish(&a_, &len_), err); \
} while (0)

static void test_integers(void)
{
	EXPECT_AML(aml_integer(a, 0), 0x00);
	EXPECT_AML(aml_integer(a, 1), 0x01);
	EXPECT_AML(aml_integer(a, 2), 0x0a, 0x02);
	EXPECT_AML(aml_integer(a, 0xff), 0x0a, 0xff);
	EXPECT_AML(aml_integer(a, 0x100), 0x0b, 0x00, 0x01);
	EXPECT_AML(aml_integer(a, 0xffff), 0x0b, 0xff, 0xff);
	EXPECT_AML(aml_integer(a, 0x10000), 0x0c, 0x00, 0x00, 0x01, 0x00);
	EXPECT_AML(aml_integer(a, 0xd0000000), 0x0c, 0x00, 0x00, 0x00, 0xd0);
	EXPECT_AML(aml_integer(a, 0x100000000ull), 0x0e, 0, 0, 0, 0, 1, 0, 0, 0);
	EXPECT_AML(aml_integer(a, UINT64_MAX - 1), 0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	EXPECT_AML(aml_integer(a, UINT64_MAX), 0xff);
}

static void test_names(void)
{
	EXPECT_AML(aml_name_string(a, "_HID"), '_', 'H', 'I', 'D');
	EXPECT_AML(aml_name_string(a, "_SB"), '_', 'S', 'B', '_');
	EXPECT_AML(aml_name_string(a, "\\_S5"), '\\', '_', 'S', '5', '_');
	EXPECT_AML(aml_name_string(a, "\\"), '\\', 0x00);
	EXPECT_AML(aml_name_string(a, "^^A"), '^', '^', 'A', '_', '_', '_');
	EXPECT_AML(aml_name_string(a, "\\_SB.VR00"), '\\', 0x2e, '_', 'S', 'B', '_', 'V', 'R', '0', '0');
	EXPECT_AML(aml_name_string(a, "A.B.C"), 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_',
		   'C', '_', '_', '_');
	EXPECT_AML(aml_name(a, "_UID"), 0x08, '_', 'U', 'I', 'D');
	EXPECT_AML_ERR(aml_name_string(a, ""), -EINVAL);
	EXPECT_AML_ERR(aml_name_string(a, "1ABC"), -EINVAL);
	EXPECT_AML_ERR(aml_name_string(a, "ABCDE"), -EINVAL);
	EXPECT_AML_ERR(aml_name_string(a, "abc"), -EINVAL);
	EXPECT_AML_ERR(aml_name_string(a, "A..B"), -EINVAL);
	EXPECT_AML_ERR(aml_name_string(a, "A."), -EINVAL);
	EXPECT_AML_ERR(aml_name_string(a, "\\^A"), -EINVAL);
}

static void test_strings_and_ids(void)
{
	EXPECT_AML(aml_string(a, "LNRO0005"), 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0);
	EXPECT_AML(aml_string(a, ""), 0x0d, 0);
	/* iasl compiles EisaId("PNP0501") to DWord 0x0105D041. */
	EXPECT_AML(aml_eisa_id(a, "PNP0501"), 0x0c, 0x41, 0xd0, 0x05, 0x01);
	EXPECT_AML(aml_eisa_id(a, "PNP0A03"), 0x0c, 0x41, 0xd0, 0x0a, 0x03);
	EXPECT_AML_ERR(aml_string(a, "bad\nline"), -EINVAL);
	EXPECT_AML_ERR(aml_eisa_id(a, "pnp0501"), -EINVAL);
	EXPECT_AML_ERR(aml_eisa_id(a, "PNP050"), -EINVAL);
	EXPECT_AML_ERR(aml_eisa_id(a, "PNP050G"), -EINVAL);
}

static void test_objects(void)
{
	/* Package(2){5, 0}: PkgLength counts itself, NumElements and elements. */
	EXPECT_AML(aml_package(a, 2); aml_integer(a, 5); aml_integer(a, 0); aml_end(a),
		   0x12, 0x05, 0x02, 0x0a, 0x05, 0x00);
	/* Buffer(){1,2,3}: BufferSize comes first inside the package. */
	EXPECT_AML(aml_buffer(a); aml_bytes(a, "\x01\x02\x03", 3); aml_end(a),
		   0x11, 0x06, 0x0a, 0x03, 0x01, 0x02, 0x03);
	/* Device(VR00){} */
	EXPECT_AML(aml_device(a, "VR00"); aml_end(a), 0x5b, 0x82, 0x05, 'V', 'R', '0', '0');
	/* An empty resource template is the End Tag alone: Buffer(2). */
	EXPECT_AML(aml_resource_template(a); aml_end(a), 0x11, 0x05, 0x0a, 0x02, 0x79, 0x00);
}

static void test_resource_descriptors(void)
{
	/* IO(Decode16, 0x3F8, 0x3F8, 0x01, 0x08) */
	EXPECT_AML(aml_res_io(a, 0x3f8, 8), 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08);
	/* IRQ(Edge, ActiveHigh, Exclusive){4} */
	EXPECT_AML(aml_res_irq(a, 4), 0x23, 0x10, 0x00, 0x01);
	/* Memory32Fixed(ReadWrite, 0xD0001000, 0x1000) */
	EXPECT_AML(aml_res_memory32_fixed(a, 0xd0001000, 0x1000, true),
		   0x86, 0x09, 0x00, 0x01, 0x00, 0x10, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00);
	/* Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive){6} */
	EXPECT_AML(aml_res_interrupt(a, 6, false, false),
		   0x89, 0x06, 0x00, 0x03, 0x01, 0x06, 0x00, 0x00, 0x00);
	/* Interrupt(ResourceConsumer, Level, ActiveLow, Exclusive){9} */
	EXPECT_AML(aml_res_interrupt(a, 9, true, true),
		   0x89, 0x06, 0x00, 0x05, 0x01, 0x09, 0x00, 0x00, 0x00);
	EXPECT_AML_ERR(aml_res_irq(a, 16), -EINVAL);
}

static void test_errors(void)
{
	uint8_t small[6];
	/* A close without an open, a finish with one still open. */
	EXPECT_AML_ERR(aml_end(a), -EINVAL);
	EXPECT_AML_ERR(aml_scope(a, "_SB"), -EINVAL);
	/* Nesting deeper than AML_MAX_DEPTH. */
	EXPECT_AML_ERR(for (unsigned i = 0; i <= AML_MAX_DEPTH; i++) aml_package(a, 0), -EINVAL);
	struct aml a;
	size_t len = 0;

	/* Out of room while emitting, and while inserting the length at the close. */
	aml_init(&a, small, sizeof(small));
	aml_string(&a, "TOOLONG");
	CHECK_EQ(aml_finish(&a, &len), -ENOSPC);
	aml_init(&a, small, sizeof(small));
	aml_scope(&a, "_SB");
	aml_bytes(&a, "x", 1);                   /* 6 of 6 bytes: full */
	CHECK_EQ(a.err, 0);
	aml_end(&a);
	CHECK_EQ(aml_finish(&a, &len), -ENOSPC);
	/* Sticky: after an error nothing more is written. */
	aml_init(&a, small, sizeof(small));
	aml_name_string(&a, "1BAD");
	aml_integer(&a, 7);
	CHECK_EQ(a.len, 0);
	CHECK_EQ(aml_finish(&a, &len), -EINVAL);
}

/* --- tables ------------------------------------------------------------------------- */

static const uint8_t *at(uint64_t gpa)
{
	return tables + (gpa - GPA);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* A table at @gpa with signature @sig: inside the buffer, summing to zero. */
static const uint8_t *table(uint64_t gpa, const char *sig, const struct acpi_tables *t)
{
	CHECK(gpa >= GPA && gpa + 36 <= GPA + t->size);
	const uint8_t *p = at(gpa);
	CHECK(!memcmp(p, sig, 4));
	uint32_t len = le32(p + 4);
	CHECK(len >= 36 && gpa + len <= GPA + t->size);
	CHECK_EQ(sum(p, len), 0);
	CHECK(!memcmp(p + 10, "KVMINI", 6));
	return p;
}

static struct acpi_mmio_device devs[LAYOUT_MMIO_MAX_DEVS];

static void make_devs(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		devs[i] = (struct acpi_mmio_device){ .base = LAYOUT_MMIO_BASE + i * LAYOUT_MMIO_SIZE,
						     .size = LAYOUT_MMIO_SIZE,
						     .gsi = LAYOUT_IRQ_FIRST_DEV + i };
}

static void check_rsdp_xsdt(const struct acpi_tables *t)
{
	const uint8_t *r = at(t->rsdp);

	CHECK_EQ(t->rsdp, GPA);
	CHECK(!memcmp(r, "RSD PTR ", 8));
	CHECK_EQ(sum(r, 20), 0);
	CHECK_EQ(sum(r, 36), 0);
	CHECK_EQ(r[15], 2);                      /* revision */
	CHECK_EQ(le32(r + 16), 0);               /* no RSDT */
	CHECK_EQ(le32(r + 20), 36);
	CHECK_EQ(le64(r + 24), t->xsdt);
	const uint8_t *x = table(t->xsdt, "XSDT", t);
	CHECK_EQ(le32(x + 4), 36 + 2 * 8);
	CHECK_EQ(le64(x + 36), t->fadt);
	CHECK_EQ(le64(x + 44), t->madt);
}

static void check_fadt(const struct acpi_tables *t)
{
	const uint8_t *f = table(t->fadt, "FACP", t);

	CHECK_EQ(le32(f + 4), 276);
	CHECK_EQ(f[8], 6);                       /* revision */
	CHECK_EQ(f[131], 3);                     /* minor: ACPI 6.3 */
	CHECK_EQ(le32(f + 40), t->dsdt);
	CHECK_EQ(le64(f + 140), t->dsdt);
	uint32_t flags = le32(f + 112);
	CHECK(flags & (1u << 20));               /* HW_REDUCED_ACPI */
	CHECK(flags & (1u << 10));               /* RESET_REG_SUP */
	CHECK_EQ(f[109] & 0x2, 0x2);             /* an i8042 (8042 flag) */
	CHECK_EQ(f[108], 0x32);                  /* RTC century index */
	/* Reset register: I/O 0x64, 8 bits, value 0xfe. */
	CHECK_EQ(f[116], 1);
	CHECK_EQ(f[117], 8);
	CHECK_EQ(le64(f + 120), 0x64);
	CHECK_EQ(f[128], 0xfe);
	/* Sleep control and status: I/O ports. */
	CHECK_EQ(f[244], 1);
	CHECK_EQ(le64(f + 248), LAYOUT_PORT_ACPI_SLEEP_CTL);
	CHECK_EQ(f[256], 1);
	CHECK_EQ(le64(f + 260), LAYOUT_PORT_ACPI_SLEEP_STS);
	/* No PM1, PM timer, GPE blocks, no SCI. */
	for (unsigned off = 56; off < 88; off += 4)
		CHECK_EQ(le32(f + off), 0);
	CHECK_EQ(f[46] | f[47], 0);
}

static void check_madt(const struct acpi_tables *t, unsigned ncpus)
{
	const uint8_t *m = table(t->madt, "APIC", t);
	uint32_t len = le32(m + 4);
	unsigned lapics = 0, ioapics = 0, nmis = 0, other = 0;

	CHECK_EQ(len, 44 + 8 * ncpus + 12 + 6);
	CHECK_EQ(le32(m + 36), LAYOUT_LAPIC);
	CHECK_EQ(le32(m + 40), 1);               /* PCAT_COMPAT */
	for (uint32_t off = 44; off + 2 <= len; off += m[off + 1]) {
		const uint8_t *e = m + off;
		if (e[1] < 2 || off + e[1] > len) {
			CHECK_EQ(e[1], -1);
			break;
		}
		if (e[0] == 0) {
			CHECK_EQ(e[1], 8);
			CHECK_EQ(e[2], lapics);          /* processor UID */
			CHECK_EQ(e[3], lapics);          /* APIC ID = vCPU index */
			CHECK_EQ(le32(e + 4), 1);        /* enabled */
			lapics++;
		} else if (e[0] == 1) {
			CHECK_EQ(e[1], 12);
			CHECK_EQ(e[2], ncpus);           /* the MP table's IOAPIC ID */
			CHECK_EQ(le32(e + 4), LAYOUT_IOAPIC);
			CHECK_EQ(le32(e + 8), 0);        /* GSI base */
			ioapics++;
		} else if (e[0] == 4) {
			CHECK_EQ(e[2], 0xff);
			CHECK_EQ(e[5], 1);               /* LINT1 */
			nmis++;
		} else {
			other++;
		}
	}
	CHECK_EQ(lapics, ncpus);
	CHECK_EQ(ioapics, 1);
	CHECK_EQ(nmis, 1);
	CHECK_EQ(other, 0);
}

/* Count occurrences of @needle (@n bytes) in the DSDT. */
static unsigned dsdt_count(const struct acpi_tables *t, const void *needle, size_t n)
{
	const uint8_t *d = at(t->dsdt);
	uint32_t len = le32(d + 4);
	unsigned count = 0;

	for (uint32_t i = 36; i + n <= len; i++)
		count += !memcmp(d + i, needle, n);
	return count;
}

static void check_dsdt(const struct acpi_tables *t, unsigned ncpus, unsigned ndevs)
{
	const uint8_t *d = table(t->dsdt, "DSDT", t);

	CHECK_EQ(d[8], 2);
	CHECK_EQ(dsdt_count(t, "\x0dLNRO0005", 10), ndevs);
	CHECK_EQ(dsdt_count(t, "\x0d" "ACPI0007", 10), ncpus);
	CHECK_EQ(dsdt_count(t, "\x0c\x41\xd0\x05\x01", 5), 1);        /* PNP0501 */
	CHECK_EQ(dsdt_count(t, "\x0c\x41\xd0\x03\x03", 5), 1);        /* PNP0303 */
	for (unsigned i = 0; i < ndevs; i++) {
		uint8_t mem[12] = { 0x86, 9, 0, 1 };
		uint8_t irq[9] = { 0x89, 6, 0, 3, 1 };
		uint32_t base = (uint32_t)devs[i].base, size = (uint32_t)devs[i].size;
		memcpy(mem + 4, &base, 4);
		memcpy(mem + 8, &size, 4);
		memcpy(irq + 5, &devs[i].gsi, 4);
		CHECK_EQ(dsdt_count(t, mem, sizeof(mem)), 1);
		CHECK_EQ(dsdt_count(t, irq, sizeof(irq)), 1);
	}
	CHECK_EQ(dsdt_count(t, "\x08\\_S5_\x12", 7), 1);
}

static void test_tables(void)
{
	static const unsigned cpus[] = { 1, 2, 3, 64 };
	static const unsigned ndevs[] = { 0, 1, 2, LAYOUT_MMIO_MAX_DEVS };

	for (unsigned c = 0; c < sizeof(cpus) / sizeof(cpus[0]); c++) {
		for (unsigned d = 0; d < sizeof(ndevs) / sizeof(ndevs[0]); d++) {
			struct acpi_config cfg = { .ncpus = cpus[c], .devs = devs, .ndevs = ndevs[d] };
			struct acpi_tables t;
			make_devs(ndevs[d]);
			CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), 0);
			CHECK(t.size > 0 && t.size <= CAP);
			check_rsdp_xsdt(&t);
			check_fadt(&t);
			check_madt(&t, cpus[c]);
			check_dsdt(&t, cpus[c], ndevs[d]);
		}
	}
}

static void test_bad_configs(void)
{
	struct acpi_config cfg = { .ncpus = 2, .devs = devs, .ndevs = 1 };
	struct acpi_tables t;

	make_devs(1);
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), 0);
	size_t need = t.size;
	/* Every buffer too small is refused, never overrun (ASan watches). */
	for (size_t cap = 0; cap < need; cap++) {
		uint8_t *b = malloc(cap ? cap : 1);
		CHECK_EQ(acpi_build(&cfg, b, cap, GPA, &t), -ENOSPC);
		free(b);
	}
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA + 8, &t), -EINVAL);
	CHECK_EQ(acpi_build(&cfg, tables, CAP, 0xffff8000ull, &t), -EINVAL);   /* past 4 GiB */
	cfg.ncpus = 0;
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), -EINVAL);
	/* APIC ID 255 is the broadcast ID: the IOAPIC (ID ncpus) cannot have it. */
	cfg.ncpus = 254;
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), 0);
	cfg.ncpus = 255;
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), -EINVAL);
	cfg.ncpus = 1;
	devs[0].base = 0x100000000ull;
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), -EINVAL);
	devs[0].base = 0xfffff000ull;
	devs[0].size = 0x2000;
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), -EINVAL);
	make_devs(1);
	devs[0].gsi = LAYOUT_IOAPIC_PINS;
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), -EINVAL);
}

/* --- the tables through ACPICA's disassembler ----------------------------------------- */

static char tmpdir[64];

static int write_file(const char *name, const void *p, size_t len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = fwrite(p, 1, len, f);
	return fclose(f) == 0 && n == len ? 0 : -1;
}

/* The whole of @name in tmpdir, NUL-terminated (caller frees), or NULL. */
static char *read_file(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = 0;
	return buf;
}

/* Run iasl with @args in tmpdir, its output in @log; its exit status. */
static int iasl(const char *args, const char *log)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cd %s && iasl %s >%s 2>&1", tmpdir, args, log);
	int r = system(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static int write_table(const char *name, uint64_t gpa)
{
	return write_file(name, at(gpa), le32(at(gpa) + 4));
}

/* In @dsl, the text of Device(@name) up to the next device. */
static char *device_text(char *dsl, const char *name)
{
	char key[32];
	snprintf(key, sizeof(key), "Device (%s)", name);
	char *p = strstr(dsl, key);
	if (!p)
		return NULL;
	char *end = strstr(p + 1, "Device (");
	size_t n = end ? (size_t)(end - p) : strlen(p);
	char *out = strndup(p, n);
	return out;
}

static void check_virtio_disassembly(char *dsl, unsigned i)
{
	char name[16], want[128];
	snprintf(name, sizeof(name), "VR%02u", i);
	char *dev = device_text(dsl, name);
	CHECK(dev != NULL);
	if (!dev)
		return;
	CHECK(strstr(dev, "Name (_HID, \"LNRO0005\")") != NULL);
	snprintf(want, sizeof(want), "Name (_UID, %s)", i == 0 ? "Zero" : i == 1 ? "One" : "");
	if (i > 1)
		snprintf(want, sizeof(want), "Name (_UID, 0x%02X)", i);
	CHECK(strstr(dev, want) != NULL);
	snprintf(want, sizeof(want), "Memory32Fixed (ReadWrite,\n");
	CHECK(strstr(dev, want) != NULL);
	snprintf(want, sizeof(want), "0x%08llX,         // Address Base",
		 (unsigned long long)devs[i].base);
	CHECK(strstr(dev, want) != NULL);
	CHECK(strstr(dev, "0x00001000,         // Address Length") != NULL);
	CHECK(strstr(dev, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )") != NULL);
	snprintf(want, sizeof(want), "0x%08X,\n", devs[i].gsi);
	CHECK(strstr(dev, want) != NULL);
	if (check_case_failed)
		fprintf(stderr, "  device %s as iasl printed it:\n%s\n", name, dev);
	free(dev);
}

static void test_iasl_disassembly(void)
{
	struct acpi_config cfg = { .ncpus = 2, .devs = devs, .ndevs = 3 };
	struct acpi_tables t;

	make_devs(3);
	CHECK_EQ(acpi_build(&cfg, tables, CAP, GPA, &t), 0);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvmini-acpi-XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);
	CHECK_EQ(write_table("dsdt.dat", t.dsdt), 0);
	CHECK_EQ(write_table("facp.dat", t.fadt), 0);
	CHECK_EQ(write_table("apic.dat", t.madt), 0);
	CHECK_EQ(write_table("xsdt.dat", t.xsdt), 0);

	if (iasl("-v", "version.log") != 0) {
		fprintf(stderr, "  iasl is not installed (acpica-tools; scripts/setup.sh installs it)\n");
		CHECK(0);
		return;
	}
	CHECK_EQ(iasl("-d dsdt.dat", "dsdt.log"), 0);
	/* The disassembly must compile back without errors. */
	CHECK_EQ(iasl("-p recompiled dsdt.dsl", "recompile.log"), 0);
	char *dsl = read_file("dsdt.dsl"), *relog = read_file("recompile.log");
	CHECK(dsl != NULL && relog != NULL);
	if (dsl && relog) {
		CHECK(strstr(relog, "Compilation successful. 0 Errors") != NULL);
		for (unsigned i = 0; i < cfg.ndevs; i++)
			check_virtio_disassembly(dsl, i);
		char *com = device_text(dsl, "COM1");
		CHECK(com && strstr(com, "EisaId (\"PNP0501\")"));
		CHECK(com && strstr(com, "IO (Decode16,\n"));
		CHECK(com && strstr(com, "0x03F8,             // Range Minimum"));
		CHECK(com && strstr(com, "IRQ (Edge, ActiveHigh, Exclusive, )\n"));
		CHECK(com && strstr(com, "{4}"));
		free(com);
		char *kbd = device_text(dsl, "PS2K");
		CHECK(kbd && strstr(kbd, "EisaId (\"PNP0303\")"));
		CHECK(kbd && strstr(kbd, "0x0060,             // Range Minimum"));
		CHECK(kbd && strstr(kbd, "0x0064,             // Range Minimum"));
		CHECK(kbd && strstr(kbd, "IRQ (Edge, ActiveHigh, Exclusive, )\n"));
		CHECK(kbd && strstr(kbd, "{1}"));
		free(kbd);
		CHECK(strstr(dsl, "Name (\\_S5, Package (0x02)") != NULL);
		CHECK(strstr(dsl, "Device (C001)") != NULL);
		if (check_case_failed)
			fprintf(stderr, "  iasl: %s\n", relog);
	}
	free(dsl);
	free(relog);

	/* The data tables: iasl flags a bad checksum or length in its output.
	 * (It takes no raw RSDP: test_tables checks that one.) */
	static const char *const names[] = { "facp", "apic", "xsdt" };
	for (unsigned i = 0; i < 3; i++) {
		char args[64], dslname[32], logname[32];
		snprintf(args, sizeof(args), "-d %s.dat", names[i]);
		snprintf(logname, sizeof(logname), "%s.log", names[i]);
		snprintf(dslname, sizeof(dslname), "%s.dsl", names[i]);
		CHECK_EQ(iasl(args, logname), 0);
		char *text = read_file(dslname), *log = read_file(logname);
		CHECK(text != NULL && log != NULL);
		if (text && log) {
			CHECK(!strstr(text, "Incorrect") && !strstr(log, "Incorrect"));
			CHECK(!strstr(text, "Invalid") && !strstr(log, "Error"));
			if (check_case_failed)
				fprintf(stderr, "  %s:\n%s\n%s\n", names[i], log, text);
		}
		free(text);
		free(log);
	}
	char *fadt = read_file("facp.dsl"), *madt = read_file("apic.dsl");
	CHECK(fadt && strstr(fadt, "Hardware Reduced (V5) : 1"));
	CHECK(fadt && strstr(fadt, "Reset Register Supported (V2) : 1"));
	CHECK(madt && strstr(madt, "Local Apic ID : 01"));
	CHECK(madt && strstr(madt, "Address : FEC00000"));
	free(fadt);
	free(madt);
	if (!check_case_failed) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "  could not remove %s\n", tmpdir);
	} else {
		fprintf(stderr, "  iasl files kept in %s\n", tmpdir);
	}
}

int main(void)
{
	RUN_TEST(test_pkg_length_boundaries);
	RUN_TEST(test_pkg_length_in_scope);
	RUN_TEST(test_integers);
	RUN_TEST(test_names);
	RUN_TEST(test_strings_and_ids);
	RUN_TEST(test_objects);
	RUN_TEST(test_resource_descriptors);
	RUN_TEST(test_errors);
	RUN_TEST(test_tables);
	RUN_TEST(test_bad_configs);
	RUN_TEST(test_iasl_disassembly);
	return CHECK_DONE();
}
