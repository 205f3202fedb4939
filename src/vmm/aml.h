/*
 * A small AML byte emitter (ACPI 6.5, chapter 20 "ACPI Machine Language
 * Specification", and section 6.4 "Resource Data Types"): just what a
 * microVM's DSDT needs: names, integers, strings, EISA IDs, scopes,
 * devices, packages, buffers and resource templates.
 *
 * Usage: aml_init() on a caller's buffer, emit, close every opened scope
 * with aml_end(), then aml_finish(). Objects with a package length
 * (Scope, Device, Package, Buffer) are opened and closed: the length is
 * known only at the close, where it is inserted in front of the contents.
 *
 * Errors are sticky: the first one (-ENOSPC: the buffer is full, -EINVAL:
 * a bad name, string or nesting) is kept, later calls do nothing, and
 * aml_finish() returns it. So a builder emits straight through and checks
 * once.
 */
#ifndef KVMINI_VMM_AML_H
#define KVMINI_VMM_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 8u
#define AML_PKG_LENGTH_MAX 0x0fffffffu    /* 28 bits, the length bytes included */

struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int err;                     /* first error, 0 if none */
	unsigned depth;
	struct {
		size_t start;            /* where the contents begin */
		uint8_t kind;
	} open[AML_MAX_DEPTH];
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* 0 and the length in *@len when everything was emitted and closed, else
 * the first error (-EINVAL when a scope is still open). */
int aml_finish(struct aml *a, size_t *len);

/*
 * Encode the package length of an object whose contents (after the
 * length) are @content bytes: 1 to 4 bytes into @out, their count
 * returned; -EINVAL above AML_PKG_LENGTH_MAX. The encoded value counts the
 * length bytes themselves.
 */
int aml_pkg_length(size_t content, uint8_t out[4]);

void aml_bytes(struct aml *a, const void *p, size_t n);
/* A NameString: "\\_SB_.VR00", "^FOO", "_HID"; segments of 1 to 4 characters
 * ([A-Z_] then [A-Z0-9_]) are padded with '_'. */
void aml_name_string(struct aml *a, const char *path);
/* The shortest encoding: Zero, One, Ones, or Byte/Word/DWord/QWord prefix. */
void aml_integer(struct aml *a, uint64_t v);
/* A String (printable ASCII). */
void aml_string(struct aml *a, const char *s);
/* EisaId("PNP0501"): three capitals and four hex digits, as a DWord. */
void aml_eisa_id(struct aml *a, const char *id);
/* Name(NAME, ...): the data object (integer, string, package, ...) follows. */
void aml_name(struct aml *a, const char *name);

/* Opened objects, each closed by aml_end(). */
void aml_scope(struct aml *a, const char *path);
void aml_device(struct aml *a, const char *name);
void aml_package(struct aml *a, uint8_t elements);
/* Buffer(){...}: the BufferSize is inserted at the close. */
void aml_buffer(struct aml *a);
/* ResourceTemplate(){...}: a buffer whose close appends the End Tag. */
void aml_resource_template(struct aml *a);
void aml_end(struct aml *a);

/* Resource descriptors, inside a resource template. */
/* IO(Decode16, port, port, 1, len): a fixed range of ports. */
void aml_res_io(struct aml *a, uint16_t port, uint8_t len);
/* IRQ(Edge, ActiveHigh, Exclusive){irq}: an ISA line, 0..15. */
void aml_res_irq(struct aml *a, unsigned irq);
/* Memory32Fixed(ReadWrite or ReadOnly, base, len). */
void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len, bool writable);
/* Interrupt(ResourceConsumer, Edge/Level, ActiveHigh/Low, Exclusive){gsi}. */
void aml_res_interrupt(struct aml *a, uint32_t gsi, bool level, bool active_low);

#endif
