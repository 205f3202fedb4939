/* Parsing of command-line values shared by the subcommands. */
#ifndef KVMINI_CLI_ARGS_H
#define KVMINI_CLI_ARGS_H

#include <sys/types.h>

/* A decimal number from @min to @max, nothing before or after it (no sign,
 * no spaces, no suffix). Returns 0 or -EINVAL. */
int cli_parse_uint(const char *text, unsigned long min, unsigned long max,
		   unsigned long *out);

/* "UID:GID", two such numbers below 2^32 - 1 (which means "no id").
 * Returns 0 or -EINVAL. */
int cli_parse_owner(const char *text, uid_t *uid, gid_t *gid);

#endif
