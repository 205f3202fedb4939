/*
 * A file written whole under a temporary name beside it and renamed into
 * place, so a reader never sees half of it and a process that still maps
 * the old file (a VM restored from it) keeps what it mapped.
 */
#ifndef KVMINI_CORE_FILE_REPLACE_H
#define KVMINI_CORE_FILE_REPLACE_H

#include <stddef.h>
#include <sys/types.h>

#include "core/errbuf.h"

struct file_replace {
	const char *path;            /* where the file ends up */
	char tmp[4096];              /* "<path>.tmp-<pid>" meanwhile */
	int fd;
};

/* Create the temporary file; rf->fd is open for writing. 0 or -errno with
 * why in @eb. */
int file_replace_open(struct file_replace *rf, const char *path, struct errbuf *eb);

/* Write all @n bytes of @p at @at in @fd (short writes and EINTR taken
 * up). 0 or -errno. */
int file_pwrite_all(int fd, const void *p, size_t n, off_t at);

/*
 * End it: when @r is 0 (the writing went well), fsync, close and rename
 * into place; otherwise (or when one of those fails) close and remove the
 * temporary file. Returns @r or the first error; a new error is described
 * in @eb (an @r of the caller's keeps the caller's message).
 */
int file_replace_finish(struct file_replace *rf, int r, struct errbuf *eb);

#endif
