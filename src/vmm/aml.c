/*
 * AML byte emitter (see aml.h). Opcode values: ACPI 6.5 section 20.3;
 * resource descriptors: section 6.4.
 */
#include "vmm/aml.h"

#include <errno.h>
#include <string.h>

#define AML_ZERO          0x00u
#define AML_ONE           0x01u
#define AML_ONES          0xffu
#define AML_BYTE_PREFIX   0x0au
#define AML_WORD_PREFIX   0x0bu
#define AML_DWORD_PREFIX  0x0cu
#define AML_STRING_PREFIX 0x0du
#define AML_QWORD_PREFIX  0x0eu
#define AML_NAME_OP       0x08u
#define AML_SCOPE_OP      0x10u
#define AML_BUFFER_OP     0x11u
#define AML_PACKAGE_OP    0x12u
#define AML_EXT_PREFIX    0x5bu
#define AML_DEVICE_OP     0x82u       /* after AML_EXT_PREFIX */
#define AML_ROOT_CHAR     '\\'
#define AML_PARENT_CHAR   '^'
#define AML_DUAL_NAME     0x2eu
#define AML_MULTI_NAME    0x2fu
#define AML_NULL_NAME     0x00u

#define AML_MAX_SEGS      16u
#define AML_NAME_MAX      (1u + 255u + 2u + AML_MAX_SEGS * 4u)

/* Resource descriptor tags: small items are (type << 3 | length). */
#define RES_IRQ_TAG       0x23u       /* IRQ, 3 bytes (with flags) */
#define RES_IO_TAG        0x47u       /* I/O port, 7 bytes */
#define RES_END_TAG       0x79u       /* End Tag, 1 byte (checksum) */
#define RES_MEM32_FIXED   0x86u       /* large item 0x06 */
#define RES_EXT_IRQ       0x89u       /* large item 0x09 */
#define RES_IRQ_EDGE      0x01u       /* IRQ flags: _HE */
#define RES_EXT_CONSUMER  0x01u       /* Extended Interrupt flags */
#define RES_EXT_EDGE      0x02u
#define RES_EXT_LOW       0x04u

enum aml_kind { KIND_PKG, KIND_BUFFER, KIND_TEMPLATE };

static void fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = cap;
}

int aml_finish(struct aml *a, size_t *len)
{
	if (!a->err && a->depth)
		fail(a, -EINVAL);
	if (!a->err)
		*len = a->len;
	return a->err;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->err)
		return;
	if (n > a->cap - a->len) {
		fail(a, -ENOSPC);
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void put_le(uint8_t *out, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

int aml_pkg_length(size_t content, uint8_t out[4])
{
	/* One byte holds 6 bits; 2..4 bytes hold 4 bits plus 8 per extra byte. */
	static const size_t max[5] = { 0, 0x3f, 0xfff, 0xfffff, AML_PKG_LENGTH_MAX };

	for (unsigned n = 1; n <= 4; n++) {
		if (content > max[n] - n)
			continue;
		size_t total = content + n;
		if (n == 1) {
			out[0] = (uint8_t)total;
			return 1;
		}
		out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
		for (unsigned i = 1; i < n; i++)
			out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
		return (int)n;
	}
	return -EINVAL;
}

/* The shortest encoding of @v into @out (up to 9 bytes); returns its length. */
static size_t encode_integer(uint64_t v, uint8_t out[9])
{
	if (v == 0 || v == 1) {
		out[0] = (uint8_t)v;     /* ZeroOp, OneOp */
		return 1;
	}
	if (v == UINT64_MAX) {
		out[0] = AML_ONES;
		return 1;
	}
	static const struct { uint64_t max; uint8_t prefix; unsigned n; } forms[] = {
		{ 0xff, AML_BYTE_PREFIX, 1 },
		{ 0xffff, AML_WORD_PREFIX, 2 },
		{ 0xffffffff, AML_DWORD_PREFIX, 4 },
		{ UINT64_MAX, AML_QWORD_PREFIX, 8 },
	};
	unsigned i = 0;
	while (v > forms[i].max)
		i++;
	out[0] = forms[i].prefix;
	put_le(out + 1, v, forms[i].n);
	return 1 + forms[i].n;
}

void aml_integer(struct aml *a, uint64_t v)
{
	uint8_t enc[9];

	aml_bytes(a, enc, encode_integer(v, enc));
}

/* One name segment of 1..4 characters at @s (ending at '.', NUL), padded
 * with '_' into @seg; returns the characters consumed or -EINVAL. */
static int parse_seg(const char *s, uint8_t seg[4])
{
	int n = 0;

	while (s[n] && s[n] != '.') {
		char c = s[n];
		bool lead = (c >= 'A' && c <= 'Z') || c == '_';
		if (n >= 4 || !(lead || (n > 0 && c >= '0' && c <= '9')))
			return -EINVAL;
		seg[n++] = (uint8_t)c;
	}
	if (!n)
		return -EINVAL;
	for (int i = n; i < 4; i++)
		seg[i] = '_';
	return n;
}

/* Encode @path as a NameString into @out; returns its length or -EINVAL. */
static int encode_name(const char *path, uint8_t *out)
{
	uint8_t segs[AML_MAX_SEGS][4];
	unsigned nsegs = 0;
	int len = 0;

	if (*path == AML_ROOT_CHAR)
		out[len++] = (uint8_t)*path++;
	else
		while (*path == AML_PARENT_CHAR && len < 255)
			out[len++] = (uint8_t)*path++;
	while (*path) {
		int n = nsegs < AML_MAX_SEGS ? parse_seg(path, segs[nsegs]) : -EINVAL;
		if (n < 0)
			return n;
		nsegs++;
		path += n;
		if (*path == '.' && !*++path)
			return -EINVAL;      /* a trailing dot */
	}
	if (nsegs == 0 && len == 0)
		return -EINVAL;          /* nothing at all */
	if (nsegs == 0)
		out[len++] = AML_NULL_NAME;
	else if (nsegs == 2)
		out[len++] = AML_DUAL_NAME;
	else if (nsegs > 2) {
		out[len++] = AML_MULTI_NAME;
		out[len++] = (uint8_t)nsegs;
	}
	memcpy(out + len, segs, nsegs * 4);
	return len + (int)nsegs * 4;
}

void aml_name_string(struct aml *a, const char *path)
{
	uint8_t enc[AML_NAME_MAX];
	int n = encode_name(path, enc);

	if (n < 0)
		fail(a, n);
	else
		aml_bytes(a, enc, (size_t)n);
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			fail(a, -EINVAL);
			return;
		}
	}
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Three letters of 5 bits each (A = 1) and a 16-bit product number, stored
 * most significant byte first. */
void aml_eisa_id(struct aml *a, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7) {
		fail(a, -EINVAL);
		return;
	}
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			fail(a, -EINVAL);
			return;
		}
		v = (v << 5) | (uint32_t)(id[i] - '@');
	}
	for (int i = 3; i < 7; i++) {
		int d = hex_digit(id[i]);
		if (d < 0) {
			fail(a, -EINVAL);
			return;
		}
		v = (v << 4) | (uint32_t)d;
	}
	aml_integer(a, __builtin_bswap32(v));
}

void aml_name(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME_OP);
	aml_name_string(a, name);
}

static void open_obj(struct aml *a, enum aml_kind kind)
{
	if (a->err)
		return;
	if (a->depth >= AML_MAX_DEPTH) {
		fail(a, -EINVAL);
		return;
	}
	a->open[a->depth].start = a->len;
	a->open[a->depth].kind = (uint8_t)kind;
	a->depth++;
}

void aml_scope(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE_OP);
	open_obj(a, KIND_PKG);
	aml_name_string(a, path);
}

void aml_device(struct aml *a, const char *name)
{
	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	open_obj(a, KIND_PKG);
	aml_name_string(a, name);
}

void aml_package(struct aml *a, uint8_t elements)
{
	aml_byte(a, AML_PACKAGE_OP);
	open_obj(a, KIND_PKG);
	aml_byte(a, elements);
}

void aml_buffer(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	open_obj(a, KIND_BUFFER);
}

void aml_resource_template(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	open_obj(a, KIND_TEMPLATE);
}

/* Insert @n bytes of @p at @at, moving what follows. */
static void insert(struct aml *a, size_t at, const uint8_t *p, size_t n)
{
	if (n > a->cap - a->len) {
		fail(a, -ENOSPC);
		return;
	}
	memmove(a->buf + at + n, a->buf + at, a->len - at);
	memcpy(a->buf + at, p, n);
	a->len += n;
}

void aml_end(struct aml *a)
{
	if (a->err)
		return;
	if (!a->depth) {
		fail(a, -EINVAL);
		return;
	}
	unsigned kind = a->open[a->depth - 1].kind;
	if (kind == KIND_TEMPLATE) {
		static const uint8_t end_tag[] = { RES_END_TAG, 0 };   /* checksum 0: not computed */
		aml_bytes(a, end_tag, sizeof(end_tag));
		if (a->err)
			return;
	}
	size_t start = a->open[--a->depth].start;
	uint8_t head[4 + 9];
	size_t size_len = 0;
	if (kind != KIND_PKG)         /* a buffer's contents begin with BufferSize */
		size_len = encode_integer(a->len - start, head + 4);
	int n = aml_pkg_length(a->len - start + size_len, head);
	if (n < 0) {
		fail(a, n);
		return;
	}
	memmove(head + n, head + 4, size_len);
	insert(a, start, head, (size_t)n + size_len);
}

void aml_res_io(struct aml *a, uint16_t port, uint8_t len)
{
	uint8_t d[8] = { RES_IO_TAG, 0x01 /* 16-bit decode */ };

	put_le(d + 2, port, 2);
	put_le(d + 4, port, 2);
	d[6] = 1;                     /* alignment */
	d[7] = len;
	aml_bytes(a, d, sizeof(d));
}

void aml_res_irq(struct aml *a, unsigned irq)
{
	uint8_t d[4] = { RES_IRQ_TAG, 0, 0, RES_IRQ_EDGE };

	if (irq > 15) {
		fail(a, -EINVAL);
		return;
	}
	put_le(d + 1, 1u << irq, 2);
	aml_bytes(a, d, sizeof(d));
}

void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable)
{
	uint8_t d[12] = { RES_MEM32_FIXED, 9, 0, writable ? 1 : 0 };

	put_le(d + 4, base, 4);
	put_le(d + 8, len, 4);
	aml_bytes(a, d, sizeof(d));
}

void aml_res_interrupt(struct aml *a, uint32_t gsi, bool level, bool active_low)
{
	uint8_t d[9] = { RES_EXT_IRQ, 6, 0, RES_EXT_CONSUMER, 1 };

	d[3] |= (uint8_t)((level ? 0 : RES_EXT_EDGE) | (active_low ? RES_EXT_LOW : 0));
	put_le(d + 5, gsi, 4);
	aml_bytes(a, d, sizeof(d));
}
