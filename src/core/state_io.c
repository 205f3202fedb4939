/* The snapshot state format (see state_io.h). */
#include "core/state_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/file_replace.h"

#define SECTION_HEADER 8u

/* STATE_MAGIC's eight bytes, without a terminator. */
static const uint8_t state_magic[8] = { 'K', 'V', 'M', 'I', 'N', 'I', 'S', 'T' };

/* --- writing ------------------------------------------------------------------- */

void state_writer_init(struct state_writer *w)
{
	memset(w, 0, sizeof(*w));
}

void state_writer_free(struct state_writer *w)
{
	free(w->buf);
	state_writer_init(w);
}

static bool reserve(struct state_writer *w, size_t n)
{
	if (w->failed)
		return false;
	if (n <= w->cap - w->len)
		return true;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap - w->len < n) {
		if (cap > STATE_MAX_PAYLOAD) {
			w->failed = true;
			return false;
		}
		cap *= 2;
	}
	uint8_t *p = realloc(w->buf, cap);
	if (!p) {
		w->failed = true;
		return false;
	}
	w->buf = p;
	w->cap = cap;
	return true;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_int(struct state_writer *w, uint64_t v, unsigned n)
{
	if (!reserve(w, n))
		return;
	put_le(w->buf + w->len, v, n);
	w->len += n;
}

void state_put_u8(struct state_writer *w, uint8_t v) { put_int(w, v, 1); }
void state_put_u16(struct state_writer *w, uint16_t v) { put_int(w, v, 2); }
void state_put_u32(struct state_writer *w, uint32_t v) { put_int(w, v, 4); }
void state_put_u64(struct state_writer *w, uint64_t v) { put_int(w, v, 8); }
void state_put_bool(struct state_writer *w, bool v) { put_int(w, v ? 1 : 0, 1); }

void state_put_bytes(struct state_writer *w, const void *p, size_t n)
{
	if (!n || !reserve(w, n))
		return;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void state_put_str(struct state_writer *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	state_put_u32(w, (uint32_t)n);
	state_put_bytes(w, s, n);
}

void state_begin(struct state_writer *w, const char tag[4])
{
	/* A section left open is a bug in the writer, not in the data. */
	if (w->in_section)
		state_end(w);
	w->section_at = w->len;
	w->in_section = true;
	state_put_u32(w, STATE_TAG(tag));
	state_put_u32(w, 0);             /* length, filled in by state_end */
}

void state_end(struct state_writer *w)
{
	if (!w->in_section)
		return;
	w->in_section = false;
	if (w->failed)
		return;
	size_t body = w->len - w->section_at - SECTION_HEADER;
	if (body > UINT32_MAX) {
		w->failed = true;
		return;
	}
	put_le(w->buf + w->section_at + 4, body, 4);
}

static void fill_header(uint8_t h[STATE_HEADER_SIZE], const uint8_t *payload, size_t len)
{
	memcpy(h, state_magic, sizeof(state_magic));
	put_le(h + 8, STATE_FORMAT_VERSION, 4);
	put_le(h + 12, STATE_HEADER_SIZE, 4);
	put_le(h + 16, len, 8);
	put_le(h + 24, crc32(crc32(0, NULL, 0), payload, (uInt)len), 4);
	put_le(h + 28, crc32(crc32(0, NULL, 0), h, 28), 4);
}

int state_file_write(const char *path, const struct state_writer *w, struct errbuf *eb)
{
	uint8_t header[STATE_HEADER_SIZE];
	struct file_replace rf;

	if (w->failed || w->in_section) {
		errbuf_set(eb, "%s: the state could not be put together (out of memory)", path);
		return -ENOMEM;
	}
	int r = file_replace_open(&rf, path, eb);
	if (r < 0)
		return r;
	fill_header(header, w->buf, w->len);
	r = file_pwrite_all(rf.fd, header, sizeof(header), 0);
	if (!r)
		r = file_pwrite_all(rf.fd, w->buf, w->len, STATE_HEADER_SIZE);
	if (r < 0)
		errbuf_set(eb, "%s: %s", path, strerror(-r));
	return file_replace_finish(&rf, r, eb);
}

/* --- reading ------------------------------------------------------------------- */

int state_check_header(const uint8_t *data, size_t len, const uint8_t **payload,
		       size_t *payload_len, struct errbuf *eb)
{
	if (len < STATE_HEADER_SIZE || memcmp(data, state_magic, sizeof(state_magic)) != 0) {
		errbuf_set(eb, "not a kvmini snapshot state (no \"%s\" header)", STATE_MAGIC);
		return -EINVAL;
	}
	if (get_le(data + 28, 4) != crc32(crc32(0, NULL, 0), data, 28)) {
		errbuf_set(eb, "the state's header is corrupt (checksum mismatch)");
		return -EINVAL;
	}
	uint32_t version = (uint32_t)get_le(data + 8, 4);
	if (version != STATE_FORMAT_VERSION) {
		errbuf_set(eb, "state format version %u; this kvmini reads version %u", version,
			   STATE_FORMAT_VERSION);
		return -EINVAL;
	}
	uint64_t hsize = get_le(data + 12, 4), plen = get_le(data + 16, 8);
	if (hsize != STATE_HEADER_SIZE || plen > STATE_MAX_PAYLOAD ||
	    plen != len - STATE_HEADER_SIZE) {
		errbuf_set(eb, "the state is %zu bytes, its header says %llu: truncated or padded",
			   len, (unsigned long long)plen + hsize);
		return -EINVAL;
	}
	if (get_le(data + 24, 4) != crc32(crc32(0, NULL, 0), data + STATE_HEADER_SIZE, (uInt)plen)) {
		errbuf_set(eb, "the state is corrupt (payload checksum mismatch)");
		return -EINVAL;
	}
	*payload = data + STATE_HEADER_SIZE;
	*payload_len = (size_t)plen;
	return 0;
}

/* The file whole, refusing what cannot be a state before reading it. */
static int slurp(const char *path, uint8_t **data, size_t *len, struct errbuf *eb)
{
	struct stat st = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r = fd < 0 || fstat(fd, &st) < 0 ? -errno : 0;

	if (!r && (!S_ISREG(st.st_mode) ||
		   (uint64_t)st.st_size > (uint64_t)STATE_MAX_PAYLOAD + STATE_HEADER_SIZE))
		r = -EINVAL;
	*data = NULL;
	if (!r && !(*data = malloc((size_t)st.st_size + 1)))
		r = -ENOMEM;
	size_t got = 0;
	while (!r && got < (size_t)st.st_size) {
		ssize_t k = read(fd, *data + got, (size_t)st.st_size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			r = k < 0 ? -errno : -EIO;
		else
			got += (size_t)k;
	}
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		free(*data);
		*data = NULL;
		errbuf_set(eb, "%s: %s", path,
			   r == -EINVAL ? "not a regular file of a state's size" : strerror(-r));
		return r;
	}
	*len = got;
	return 0;
}

int state_file_read(const char *path, uint8_t **data, const uint8_t **payload,
		    size_t *payload_len, struct errbuf *eb)
{
	size_t len;
	int r = slurp(path, data, &len, eb);

	if (r < 0)
		return r;
	r = state_check_header(*data, len, payload, payload_len, eb);
	if (r < 0) {
		struct errbuf why = *eb;
		errbuf_set(eb, "%s: %s", path, why.msg);
		free(*data);
		*data = NULL;
	}
	return r;
}

void state_reader_init(struct state_reader *r, const uint8_t *p, size_t len, struct errbuf *eb)
{
	memset(r, 0, sizeof(*r));
	r->p = p;
	r->len = len;
	r->eb = eb;
}

bool state_fail(struct state_reader *r, const char *fmt, ...)
{
	if (r->failed)
		return false;
	r->failed = true;
	char why[ERRBUF_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (r->eb) {
		if (r->section[0])
			errbuf_set(r->eb, "section %s: %s", r->section, why);
		else
			errbuf_set(r->eb, "%s", why);
	}
	return false;
}

/* @n more bytes, or fail: the field at r->off is cut short. */
static const uint8_t *take(struct state_reader *r, size_t n)
{
	if (r->failed)
		return NULL;
	if (n > r->len - r->off) {
		state_fail(r, "truncated: %zu bytes wanted at offset %zu of %zu", n, r->off, r->len);
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

static void tag_text(uint32_t tag, char out[5])
{
	for (unsigned i = 0; i < 4; i++) {
		uint8_t c = (uint8_t)(tag >> (8 * i));
		out[i] = '?';
		if (c >= 0x20 && c < 0x7f)
			out[i] = (char)c;
	}
	out[4] = '\0';
}

void state_peek_tag(const struct state_reader *r, char tag[5])
{
	tag[0] = '\0';
	if (!r->failed && r->len - r->off >= SECTION_HEADER)
		tag_text((uint32_t)get_le(r->p + r->off, 4), tag);
}

bool state_section(struct state_reader *r, const char tag[4], struct state_reader *sec)
{
	char want[5] = { tag[0], tag[1], tag[2], tag[3], '\0' }, found[5];

	state_reader_init(sec, NULL, 0, r->eb);
	memcpy(sec->section, want, sizeof(want));
	if (r->failed) {
		sec->failed = true;
		return false;
	}
	if (r->len - r->off < SECTION_HEADER) {
		sec->failed = true;
		return state_fail(r, "section %s missing: the state ends before it", want);
	}
	uint32_t got = (uint32_t)get_le(r->p + r->off, 4);
	if (got != STATE_TAG(tag)) {
		tag_text(got, found);
		sec->failed = true;
		return state_fail(r, "section %s expected, %s found: the state is of another machine",
				  want, found);
	}
	uint32_t len = (uint32_t)get_le(r->p + r->off + 4, 4);
	if (len > r->len - r->off - SECTION_HEADER) {
		sec->failed = true;
		return state_fail(r, "section %s: %u bytes, only %zu left: truncated", want, len,
				  r->len - r->off - SECTION_HEADER);
	}
	sec->p = r->p + r->off + SECTION_HEADER;
	sec->len = len;
	r->off += SECTION_HEADER + len;
	return true;
}

bool state_section_done(struct state_reader *r, struct state_reader *sec)
{
	if (!sec->failed && sec->off != sec->len)
		state_fail(sec, "%zu bytes this kvmini does not know at its end", sec->len - sec->off);
	if (sec->failed) {
		/* The message is in the shared errbuf already. */
		r->failed = true;
		return false;
	}
	return !r->failed;
}

bool state_at_end(struct state_reader *r)
{
	char tag[5];

	if (r->failed)
		return false;
	if (r->off == r->len)
		return true;
	state_peek_tag(r, tag);
	return state_fail(r, "unexpected data after the last section (%s)", tag[0] ? tag : "?");
}

uint8_t state_get_u8(struct state_reader *r)
{
	const uint8_t *p = take(r, 1);
	return p ? *p : 0;
}

uint16_t state_get_u16(struct state_reader *r)
{
	const uint8_t *p = take(r, 2);
	return p ? (uint16_t)get_le(p, 2) : 0;
}

uint32_t state_get_u32(struct state_reader *r)
{
	const uint8_t *p = take(r, 4);
	return p ? (uint32_t)get_le(p, 4) : 0;
}

uint64_t state_get_u64(struct state_reader *r)
{
	const uint8_t *p = take(r, 8);
	return p ? get_le(p, 8) : 0;
}

bool state_get_bool(struct state_reader *r)
{
	uint8_t v = state_get_u8(r);

	if (v > 1)
		state_fail(r, "a flag of value %u (0 or 1 expected)", v);
	return v == 1;
}

bool state_get_bytes(struct state_reader *r, void *out, size_t n)
{
	const uint8_t *p = take(r, n);

	if (!p) {
		memset(out, 0, n);
		return false;
	}
	memcpy(out, p, n);
	return true;
}

const uint8_t *state_get_blob(struct state_reader *r, size_t max, size_t *len)
{
	uint32_t n = state_get_u32(r);

	*len = 0;
	if (r->failed)
		return NULL;
	if (n > max) {
		state_fail(r, "%u bytes where at most %zu fit", n, max);
		return NULL;
	}
	const uint8_t *p = take(r, n);
	if (p)
		*len = n;
	return p;
}

bool state_get_str(struct state_reader *r, char *out, size_t size)
{
	uint32_t n = state_get_u32(r);

	out[0] = '\0';
	if (r->failed)
		return false;
	if (n >= size)
		return state_fail(r, "a string of %u bytes, at most %zu expected", n, size - 1);
	const uint8_t *p = take(r, n);
	if (!p)
		return false;
	if (memchr(p, '\0', n))
		return state_fail(r, "a string with a NUL byte inside");
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}
