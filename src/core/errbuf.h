/*
 * One error type for constructors and parsers: besides its NULL or -errno,
 * a function that can fail for reasons a user must read says why in a
 * struct errbuf its caller owns (usually `struct errbuf eb = {0}` on the
 * stack), and the caller prints eb.msg. One fixed size, so no function
 * takes a buffer and its length that could disagree.
 */
#ifndef KVMINI_CORE_ERRBUF_H
#define KVMINI_CORE_ERRBUF_H

/* Room for one sentence with a path or two in it; longer ones are cut. */
#define ERRBUF_LEN 256

struct errbuf {
	char msg[ERRBUF_LEN];
};

/* Replace @eb's message with the formatted one (truncated to fit). */
void errbuf_set(struct errbuf *eb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
