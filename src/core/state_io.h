/*
 * The snapshot state format: what every piece of VM and device state is
 * written with and read back through. One idea: a file is a header and a
 * payload of sections; a section is a tag, a length and little-endian
 * fields; a reader never reads past what it was given and remembers the
 * first thing that was wrong, in words, with the section it was in.
 *
 * File layout (all integers little-endian; see README "Snapshot format"):
 *
 *   offset  size  field
 *        0     8  magic "KVMINIST"
 *        8     4  format version (STATE_FORMAT_VERSION)
 *       12     4  header size (STATE_HEADER_SIZE)
 *       16     8  payload length in bytes
 *       24     4  CRC-32 (zlib) of the payload
 *       28     4  CRC-32 of bytes 0..27
 *       32     .. payload: sections, one after the other
 *
 *   section: 4-byte tag (four ASCII letters, "VCPU"), u32 length, then
 *   length bytes of fields.
 *
 * Sections are read in the order they were written: the state of a VM is
 * a fixed sequence for a given machine, so a section of another kind
 * where one was expected (another device, another vCPU count) is refused
 * by name rather than guessed around. A field that is out of range is the
 * reader of that section's business: it calls state_fail with why.
 *
 * Writers grow a buffer in memory (the state is small: kilobytes per vCPU
 * and device); a failed allocation is remembered and reported by
 * state_file_write, so writing code does not check every field.
 */
#ifndef KVMINI_CORE_STATE_IO_H
#define KVMINI_CORE_STATE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

#define STATE_MAGIC "KVMINIST"
#define STATE_FORMAT_VERSION 3u
#define STATE_HEADER_SIZE 32u
/* A state file is small; anything larger is not one of ours. */
#define STATE_MAX_PAYLOAD (64u << 20)

/* "VCPU" -> the tag as stored. */
#define STATE_TAG(s) ((uint32_t)(s)[0] | (uint32_t)(s)[1] << 8 | \
		      (uint32_t)(s)[2] << 16 | (uint32_t)(s)[3] << 24)

struct state_writer {
	uint8_t *buf;
	size_t len, cap;
	size_t section_at;           /* offset of the open section's header */
	bool in_section;
	bool failed;                 /* an allocation failed: the state is incomplete */
};

void state_writer_init(struct state_writer *w);
void state_writer_free(struct state_writer *w);

/* Sections do not nest: begin, fields, end. */
void state_begin(struct state_writer *w, const char tag[4]);
void state_end(struct state_writer *w);

void state_put_u8(struct state_writer *w, uint8_t v);
void state_put_u16(struct state_writer *w, uint16_t v);
void state_put_u32(struct state_writer *w, uint32_t v);
void state_put_u64(struct state_writer *w, uint64_t v);
void state_put_bool(struct state_writer *w, bool v);
void state_put_bytes(struct state_writer *w, const void *p, size_t n);
/* A length (u32) and the bytes, no terminator; NULL is the empty string. */
void state_put_str(struct state_writer *w, const char *s);

/* Header and payload, written to @path through a temporary file renamed
 * into place, so a reader never sees half a state. 0 or -errno with why. */
int state_file_write(const char *path, const struct state_writer *w, struct errbuf *eb);

struct state_reader {
	const uint8_t *p;
	size_t len, off;
	char section[5];             /* the section being read, for messages */
	bool failed;
	struct errbuf *eb;           /* the first failure's message */
};

/* Check a whole file's header (magic, version, sizes, both checksums) and
 * point *@payload into @data. 0 or -EINVAL with why. */
int state_check_header(const uint8_t *data, size_t len, const uint8_t **payload,
		       size_t *payload_len, struct errbuf *eb);

/* Read @path whole and check its header; *@data is the file (free() it),
 * *@payload the sections inside it. 0 or -errno with why. */
int state_file_read(const char *path, uint8_t **data, const uint8_t **payload,
		    size_t *payload_len, struct errbuf *eb);

/* A reader of @len bytes at @p that writes its first failure into @eb. */
void state_reader_init(struct state_reader *r, const uint8_t *p, size_t len, struct errbuf *eb);

/* The next section of @r must be @tag: *@sec reads its fields. False (and
 * @r failed) when it is another, is cut short, or @r failed already. */
bool state_section(struct state_reader *r, const char tag[4], struct state_reader *sec);
/* The tag of the next section without taking it ("" at the end). */
void state_peek_tag(const struct state_reader *r, char tag[5]);
/* Every byte of @sec was read (else it fails: a field this version does
 * not know); then @sec's failure, if any, becomes @r's. */
bool state_section_done(struct state_reader *r, struct state_reader *sec);
/* Nothing follows the last section. */
bool state_at_end(struct state_reader *r);

/* Fields: a reader that failed, or runs out, gives zeros and stays failed. */
uint8_t state_get_u8(struct state_reader *r);
uint16_t state_get_u16(struct state_reader *r);
uint32_t state_get_u32(struct state_reader *r);
uint64_t state_get_u64(struct state_reader *r);
/* 0 or 1, anything else fails. */
bool state_get_bool(struct state_reader *r);
bool state_get_bytes(struct state_reader *r, void *out, size_t n);
/* A string stored by state_put_str, into @out of @size bytes with a NUL;
 * longer, or holding a NUL, fails. */
bool state_get_str(struct state_reader *r, char *out, size_t size);

/* A length-prefixed run of bytes (state_put_str's layout) left in place:
 * a pointer into the state and its length, or NULL when cut short or
 * longer than @max. */
const uint8_t *state_get_blob(struct state_reader *r, size_t max, size_t *len);

/* Mark @r failed with why (only the first failure is kept), prefixed with
 * the section's tag. Returns false, so `return state_fail(...)` reads. */
bool state_fail(struct state_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
