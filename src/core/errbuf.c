/* The error buffer's one writer (errbuf.h). */
#include "core/errbuf.h"

#include <stdarg.h>
#include <stdio.h>

void errbuf_set(struct errbuf *eb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
	va_end(ap);
}
