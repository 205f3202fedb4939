/* The `vhost` subcommands' counters dump (see counters_dump.h). */
#include "cli/counters_dump.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static void dump_to_stderr(cli_counters_visit_fn visit, void *opaque)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	if (!m) {
		log_warn("counters: %s", strerror(errno));
		return;
	}
	fputs("kvmini: counters\n", m);
	visit(opaque, COUNTER_SINK_FILE(m));
	fclose(m);
	/* One write: whoever reads the log while kvmini runs (the tests do)
	 * sees the whole dump or none of it, and no line a device thread
	 * logs lands inside it. */
	fwrite(text, 1, len, stderr);
	free(text);
}

void cli_counters_dump(cli_counters_visit_fn visit, void *opaque, const char *counters_file)
{
	dump_to_stderr(visit, opaque);
	if (!counters_file)
		return;
	FILE *f = fopen(counters_file, "w");
	if (!f) {
		log_warn("--counters-file %s: %s", counters_file, strerror(errno));
		return;
	}
	visit(opaque, COUNTER_SINK_FILE(f));
	fclose(f);
}
