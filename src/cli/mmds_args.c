/* The metadata-service options (see mmds_args.h). */
#include "cli/mmds_args.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "core/log.h"

/* Largest --mmds-data file read: far above any store limit. */
#define MMDS_DATA_MAX (16u << 20)

void cli_mmds_args_init(struct cli_mmds_args *a)
{
	*a = (struct cli_mmds_args){ .cfg = { .version = MMDS_V1 } };
	inet_pton(AF_INET, "169.254.169.254", &a->cfg.ipv4);
}

static int take_size_limit(struct cli_mmds_args *a, const char *text)
{
	unsigned long v;

	if (cli_parse_uint(text, 2, CLI_MMDS_SIZE_LIMIT_MAX, &v) < 0) {
		log_err("--mmds-size-limit: \"%s\" is not a number of bytes from 2 to %lu", text,
			CLI_MMDS_SIZE_LIMIT_MAX);
		return -EINVAL;
	}
	a->cfg.store_limit = v;
	return 0;
}

int cli_mmds_take(struct cli_mmds_args *a, int opt, const char *optarg)
{
	switch (opt) {
	case CLI_OPT_MMDS:
		a->enabled = true;
		/* The same test as mmds_new's, so a refusal is explained here. */
		if (optarg && (inet_pton(AF_INET, optarg, &a->cfg.ipv4) != 1 ||
			       !mmds_address_ok(a->cfg.ipv4))) {
			log_err("--mmds: \"%s\" is not a link-local IPv4 address (169.254.x.y, "
				"not .0.0 or .255.255)", optarg);
			return -EINVAL;
		}
		return 0;
	case CLI_OPT_MMDS_VERSION:
		if (!strcmp(optarg, "1") || !strcasecmp(optarg, "V1")) {
			a->cfg.version = MMDS_V1;
		} else if (!strcmp(optarg, "2") || !strcasecmp(optarg, "V2")) {
			a->cfg.version = MMDS_V2;
		} else {
			log_err("--mmds-version: \"%s\" is not 1 or 2", optarg);
			return -EINVAL;
		}
		a->version_set = true;
		return 0;
	case CLI_OPT_MMDS_DATA:
		a->data_file = optarg;
		return 0;
	case CLI_OPT_MMDS_SIZE_LIMIT:
		return take_size_limit(a, optarg);
	default:
		return 1;
	}
}

int cli_mmds_check(const struct cli_mmds_args *a)
{
	if (!a->enabled && (a->data_file || a->version_set)) {
		log_err("--mmds-data and --mmds-version need --mmds");
		return -EINVAL;
	}
	return 0;
}

/* read_file - the whole of @path, malloc'd; NULL (errno set) on failure. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n = 0;

	if (!f)
		return NULL;
	buf = malloc(MMDS_DATA_MAX + 1);
	if (buf)
		n = fread(buf, 1, MMDS_DATA_MAX + 1, f);
	if (buf && (ferror(f) || n > MMDS_DATA_MAX)) {
		free(buf);
		buf = NULL;
		errno = ferror(f) ? EIO : EFBIG;
	}
	fclose(f);
	*len = n;
	return buf;
}

static size_t mmds_store_limit(const struct mmds *m)
{
	struct mmds_config cfg;

	mmds_get_config(m, &cfg);
	return cfg.store_limit;
}

/* fill_store - --mmds-data into the store. */
static int fill_store(struct mmds *m, const char *path)
{
	size_t len;
	char *json = read_file(path, &len);

	if (!json) {
		log_err("--mmds-data %s: %s", path, strerror(errno));
		return -errno;
	}
	int r = mmds_put(m, json, len);
	free(json);
	if (r == -EINVAL)
		log_err("--mmds-data %s: not JSON", path);
	else if (r == -EFBIG)
		log_err("--mmds-data %s: larger than the store limit (%zu bytes)", path,
			mmds_store_limit(m));
	else if (r < 0)
		log_err("--mmds-data %s: %s", path, strerror(-r));
	return r;
}

int cli_mmds_new_store(const struct cli_mmds_args *a, struct mmds **out)
{
	struct mmds *m;

	*out = NULL;
	if (!a->enabled)
		return 0;
	m = mmds_new(&a->cfg);
	if (!m) {
		log_err("--mmds: cannot start the metadata service");
		return -ENOMEM;
	}
	if (a->data_file && fill_store(m, a->data_file) < 0) {
		mmds_free(m);
		return -EINVAL;
	}
	*out = m;
	return 0;
}
