#include "cli/args.h"
#include "cli/cli.h"
#include "core/log.h"
#include "core/seccomp_filter.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_uint(const char *text, unsigned long min, unsigned long max,
		   unsigned long *out)
{
	char *end;

	/* strtoul would accept a sign and leading spaces, and wrap "-1". */
	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_parse_owner(const char *text, uid_t *uid, gid_t *gid)
{
	char buf[64];
	unsigned long u, g;

	if (strlen(text) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, text);
	char *colon = strchr(buf, ':');
	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (cli_parse_uint(buf, 0, UINT32_MAX - 1, &u) ||
	    cli_parse_uint(colon + 1, 0, UINT32_MAX - 1, &g))
		return -EINVAL;
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 0;
}

int cli_confine_main(void)
{
	static bool confined;
	struct errbuf eb = { 0 };
	int r;

	if (confined)
		return 0;
	r = seccomp_filter_install(SECCOMP_MAIN, &eb);
	if (r < 0)
		log_err("%s", eb.msg);
	confined = r == 0;
	return r;
}

int cli_seccomp_option(const char *val)
{
	if (seccomp_filter_parse(val) == 0)
		return 0;
	log_err("--seccomp: \"%s\" is not on or off", val);
	return -EINVAL;
}
