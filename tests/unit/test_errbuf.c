/*
 * Unit tests of the error buffer (src/core/errbuf.c): a message replaces the
 * one before it, and one longer than the buffer is cut short but still a
 * string, so a caller can always print eb.msg.
 */
#include <string.h>

#include "check.h"
#include "core/errbuf.h"

static void test_set_replaces(void)
{
	struct errbuf eb = { 0 };

	CHECK_EQ(strlen(eb.msg), 0);
	errbuf_set(&eb, "tap %s: dup: %s", "tap0", "Bad file descriptor");
	CHECK(!strcmp(eb.msg, "tap tap0: dup: Bad file descriptor"));
	errbuf_set(&eb, "out of memory");
	CHECK(!strcmp(eb.msg, "out of memory"));
}

static void test_long_message_truncated(void)
{
	struct errbuf eb;
	char path[2 * ERRBUF_LEN];

	memset(&eb, 'x', sizeof(eb));
	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	errbuf_set(&eb, "--kernel %s: not found", path);
	CHECK_EQ(strlen(eb.msg), ERRBUF_LEN - 1);
	CHECK(!strncmp(eb.msg, "--kernel ppp", 12));
}

int main(void)
{
	RUN_TEST(test_set_replaces);
	RUN_TEST(test_long_message_truncated);
	return CHECK_DONE();
}
