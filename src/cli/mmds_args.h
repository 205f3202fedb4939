/*
 * The metadata-service options shared by the subcommands that serve a
 * virtio-net device (`kvmini vhost net`, and `kvmini run --net` through
 * net_controls.h):
 *   --mmds[=ADDR]        enable MMDS at ADDR (link-local, 169.254.169.254)
 *   --mmds-version 1|2   V1 (tokens optional, the default) or V2
 *   --mmds-data FILE     fill the store from a JSON object in FILE
 *   --mmds-size-limit N  the store's limit in bytes (Firecracker's flag)
 */
#ifndef KVMINI_CLI_MMDS_ARGS_H
#define KVMINI_CLI_MMDS_ARGS_H

#include <getopt.h>
#include <stdbool.h>

#include "mmds/mmds.h"

/* getopt_long codes of the options (outside the letters' range). */
enum { CLI_OPT_MMDS = 0x4d00, CLI_OPT_MMDS_VERSION, CLI_OPT_MMDS_DATA, CLI_OPT_MMDS_SIZE_LIMIT };

/* --mmds-size-limit's range: a store of {} up to 1 GiB. */
#define CLI_MMDS_SIZE_LIMIT_MAX (1ul << 30)

#define CLI_MMDS_LONG_OPTIONS \
	{ "mmds", optional_argument, NULL, CLI_OPT_MMDS }, \
	{ "mmds-version", required_argument, NULL, CLI_OPT_MMDS_VERSION }, \
	{ "mmds-data", required_argument, NULL, CLI_OPT_MMDS_DATA }, \
	{ "mmds-size-limit", required_argument, NULL, CLI_OPT_MMDS_SIZE_LIMIT }

#define CLI_MMDS_USAGE \
	"  --mmds[=ADDR]        answer the metadata service (MMDS) at ADDR, a link-local\n" \
	"                       address (default 169.254.169.254); its frames never reach\n" \
	"                       the backend\n" \
	"  --mmds-version 1|2   MMDS V1 (tokens optional, default) or V2 (session tokens)\n" \
	"  --mmds-data FILE     fill the MMDS store from the JSON object in FILE\n" \
	"  --mmds-size-limit N  the MMDS store's limit in bytes of its JSON (default\n" \
	"                       51200, Firecracker's; a larger PUT /mmds is refused 413)\n"

struct cli_mmds_args {
	bool enabled;
	struct mmds_config cfg;
	const char *data_file;
	bool version_set;
};

void cli_mmds_args_init(struct cli_mmds_args *a);
/* Take one of the options above. 1 when @opt is not one of them, 0 when
 * taken, -EINVAL (with a message logged) for a bad value. */
int cli_mmds_take(struct cli_mmds_args *a, int opt, const char *optarg);
/* After parsing: -EINVAL (logged) for --mmds-* without --mmds. */
int cli_mmds_check(const struct cli_mmds_args *a);

/* The store when enabled (filled from --mmds-data), else NULL, in *@out;
 * 0, or -errno with a message logged. */
int cli_mmds_new_store(const struct cli_mmds_args *a, struct mmds **out);

#endif
