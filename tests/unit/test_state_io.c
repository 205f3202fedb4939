/*
 * Unit tests of the snapshot state format (src/core/state_io.c): fields
 * round-trip through a file; the header refuses what is not a state, is
 * corrupt, of another version, or cut short; sections are taken in order
 * and by name; a reader never reads past its bounds and reports the first
 * thing that was wrong, with its section.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/state_io.h"

static char dir[] = "/tmp/kvmini-state-io-XXXXXX";

/* Two sections: "ONE " with every field kind, "TWO " with a string. */
static void write_sample(struct state_writer *w)
{
	state_writer_init(w);
	state_begin(w, "ONE ");
	state_put_u8(w, 0xab);
	state_put_u16(w, 0xbeef);
	state_put_u32(w, 0xdeadbeef);
	state_put_u64(w, 0x0123456789abcdefull);
	state_put_bool(w, true);
	state_put_bytes(w, "raw", 3);
	state_end(w);
	state_begin(w, "TWO ");
	state_put_str(w, "tap0");
	state_end(w);
}

static int save_sample(const char *path)
{
	struct state_writer w;
	struct errbuf eb = { 0 };

	write_sample(&w);
	int r = state_file_write(path, &w, &eb);
	state_writer_free(&w);
	return r;
}

static void test_round_trip(void)
{
	char path[64], s[16], raw[3];
	uint8_t *data;
	const uint8_t *payload;
	size_t len;
	struct errbuf eb = { 0 };
	struct state_reader r, sec;

	snprintf(path, sizeof(path), "%s/rt", dir);
	CHECK_EQ(save_sample(path), 0);
	CHECK_EQ(state_file_read(path, &data, &payload, &len, &eb), 0);
	state_reader_init(&r, payload, len, &eb);
	CHECK(state_section(&r, "ONE ", &sec));
	CHECK_EQ(state_get_u8(&sec), 0xab);
	CHECK_EQ(state_get_u16(&sec), 0xbeef);
	CHECK_EQ(state_get_u32(&sec), 0xdeadbeef);
	CHECK(state_get_u64(&sec) == 0x0123456789abcdefull);
	CHECK(state_get_bool(&sec));
	CHECK(state_get_bytes(&sec, raw, 3) && !memcmp(raw, "raw", 3));
	CHECK(state_section_done(&r, &sec));
	CHECK(state_section(&r, "TWO ", &sec));
	CHECK(state_get_str(&sec, s, sizeof(s)) && !strcmp(s, "tap0"));
	CHECK(state_section_done(&r, &sec));
	CHECK(state_at_end(&r));
	CHECK(!r.failed);
	free(data);
}

/* Read @path and expect a refusal whose message contains @why. */
static void expect_refused(const char *path, const char *why)
{
	uint8_t *data = (uint8_t *)"x";
	const uint8_t *payload;
	size_t len;
	struct errbuf eb = { 0 };

	CHECK(state_file_read(path, &data, &payload, &len, &eb) < 0);
	CHECK(data == NULL);
	if (!strstr(eb.msg, why))
		fprintf(stderr, "  message: %s (wanted \"%s\")\n", eb.msg, why);
	CHECK(strstr(eb.msg, why) != NULL);
}

/* Flip one byte at @at of the sample file, or cut it to @cut bytes. */
static void damage(const char *path, long at, long cut)
{
	FILE *f = fopen(path, "r+b");

	CHECK(f != NULL);
	if (!f)
		return;
	if (at >= 0) {
		fseek(f, at, SEEK_SET);
		int c = fgetc(f);
		fseek(f, at, SEEK_SET);
		fputc(c ^ 0x40, f);
	}
	fclose(f);
	if (cut >= 0)
		CHECK_EQ(truncate(path, cut), 0);
}

static void test_header_refusals(void)
{
	char path[64];

	snprintf(path, sizeof(path), "%s/bad", dir);
	save_sample(path);
	damage(path, 0, -1);
	expect_refused(path, "not a kvmini snapshot state");
	save_sample(path);
	damage(path, 9, -1);                       /* version: the header checksum sees it */
	expect_refused(path, "header is corrupt");
	save_sample(path);
	damage(path, STATE_HEADER_SIZE + 9, -1);   /* a field of section ONE */
	expect_refused(path, "payload checksum mismatch");
	save_sample(path);
	damage(path, -1, STATE_HEADER_SIZE + 5);
	expect_refused(path, "truncated or padded");
	save_sample(path);
	damage(path, -1, 10);
	expect_refused(path, "not a kvmini snapshot state");
	snprintf(path, sizeof(path), "%s/absent", dir);
	expect_refused(path, "No such file");
	expect_refused(dir, "not a regular file");
}

/* A payload built in memory, read without a header. */
static void reader_over(struct state_writer *w, struct state_reader *r, struct errbuf *eb)
{
	state_reader_init(r, w->buf, w->len, eb);
}

static void test_section_order_and_names(void)
{
	struct state_writer w;
	struct state_reader r, sec;
	struct errbuf eb = { 0 };
	char tag[5];

	write_sample(&w);
	reader_over(&w, &r, &eb);
	state_peek_tag(&r, tag);
	CHECK(!strcmp(tag, "ONE "));
	CHECK(!state_section(&r, "TWO ", &sec));
	CHECK(sec.failed && r.failed);
	CHECK(strstr(eb.msg, "section TWO  expected, ONE  found") != NULL);
	/* A failed reader stays failed and gives zeros. */
	CHECK(!state_section(&r, "ONE ", &sec));
	CHECK_EQ(state_get_u32(&sec), 0);
	state_writer_free(&w);
}

static void test_field_bounds(void)
{
	struct state_writer w;
	struct state_reader r, sec;
	struct errbuf eb = { 0 };
	char s[4];

	write_sample(&w);
	/* Reading past a section's end fails inside the section. */
	reader_over(&w, &r, &eb);
	CHECK(state_section(&r, "ONE ", &sec));
	uint8_t big[64];
	CHECK(!state_get_bytes(&sec, big, sizeof(big)));
	CHECK(strstr(eb.msg, "section ONE : truncated") != NULL);
	CHECK(!state_section_done(&r, &sec));
	CHECK(r.failed);
	/* Bytes left unread are refused too. */
	eb.msg[0] = '\0';
	reader_over(&w, &r, &eb);
	CHECK(state_section(&r, "ONE ", &sec));
	state_get_u8(&sec);
	CHECK(!state_section_done(&r, &sec));
	CHECK(strstr(eb.msg, "does not know") != NULL);
	/* A string longer than its buffer. */
	reader_over(&w, &r, &eb);
	CHECK(state_section(&r, "ONE ", &sec));
	CHECK(state_section(&r, "TWO ", &sec));
	CHECK(!state_get_str(&sec, s, sizeof(s)));
	CHECK(strstr(eb.msg, "a string of 4 bytes") != NULL);
	state_writer_free(&w);
}

static void test_bad_flag_and_trailing(void)
{
	struct state_writer w;
	struct state_reader r, sec;
	struct errbuf eb = { 0 };

	state_writer_init(&w);
	state_begin(&w, "FLAG");
	state_put_u8(&w, 2);
	state_end(&w);
	state_put_u8(&w, 0);              /* not a section */
	reader_over(&w, &r, &eb);
	CHECK(state_section(&r, "FLAG", &sec));
	state_get_bool(&sec);
	CHECK(sec.failed);
	CHECK(strstr(eb.msg, "a flag of value 2") != NULL);
	reader_over(&w, &r, &eb);
	CHECK(state_section(&r, "FLAG", &sec));
	state_get_u8(&sec);
	CHECK(state_section_done(&r, &sec));
	CHECK(!state_at_end(&r));
	CHECK(strstr(eb.msg, "after the last section") != NULL);
	/* A section that claims more bytes than there are. */
	w.buf[4] = 0xff;
	reader_over(&w, &r, &eb);
	CHECK(!state_section(&r, "FLAG", &sec));
	CHECK(strstr(eb.msg, "truncated") != NULL);
	state_writer_free(&w);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN_TEST(test_round_trip);
	RUN_TEST(test_header_refusals);
	RUN_TEST(test_section_order_and_names);
	RUN_TEST(test_field_bounds);
	RUN_TEST(test_bad_flag_and_trailing);
	static const char *const made[] = { "rt", "bad" };
	for (unsigned i = 0; i < 2; i++) {
		char path[64];
		snprintf(path, sizeof(path), "%s/%s", dir, made[i]);
		unlink(path);
	}
	rmdir(dir);
	return CHECK_DONE();
}
