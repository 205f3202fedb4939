/*
 * The `firecracker` personality: kvmini run under Firecracker's name (the
 * build's build/firecracker symlink) takes Firecracker's command line, so
 * launchers that exec `firecracker` (Kata's driver, firectl, the Go SDK)
 * work unchanged. Each flag is passed to `kvmini run`, which takes the
 * ones it shares with Firecracker (--api-sock, --config-file, --no-api,
 * --id, --level, --log-path, --metrics-path, --http-api-max-payload-size,
 * --mmds-size-limit) itself; --boot-timer is its --boot-timing; harmless
 * flags are taken and ignored; flags for what kvmini does not have are
 * refused. Anything else (kvmini's own options included) is refused too:
 * the personality is Firecracker's command line, nothing more.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "core/compiler.h"
#include "core/log.h"
#include "jail/jail_args.h"

/* --- the flags `kvmini run` shares with Firecracker -------------------------------------- */

int run_take_fc_option(struct run_args *a, int opt, const char *val)
{
	enum log_level level;

	switch (opt) {
	case RUN_OPT_ID:
		if (jail_id_ok(val)) {   /* the jailer's rule is Firecracker's */
			a->instance_id = val;
			return 0;
		}
		log_err("--id: \"%s\" is not an instance id (1 to 64 letters, digits or '-')", val);
		return -EINVAL;
	case RUN_OPT_LEVEL:
		if (log_level_parse(val, &level) == 0) {
			log_threshold = level;
			return 0;
		}
		log_err("--level: \"%s\" is not Error, Warning, Info, Debug, Trace or Off", val);
		return -EINVAL;
	case RUN_OPT_LOG_PATH: a->log_path = val; return 0;
	case RUN_OPT_METRICS_PATH: a->metrics_path = val; return 0;
	case RUN_OPT_MAX_PAYLOAD:
		if (!cli_parse_uint(val, 1, API_MAX_PAYLOAD_LIMIT, &a->max_payload))
			return 0;
		log_err("--http-api-max-payload-size: \"%s\" is not a number of bytes from 1 to %lu",
			val, (unsigned long)API_MAX_PAYLOAD_LIMIT);
		return -EINVAL;
	}
	return 1;
}

int run_apply_fc_options(const struct run_args *a)
{
	if (a->instance_id)
		log_set_instance_id(a->instance_id);
	if (!a->log_path)
		return 0;
	int r = log_set_path(a->log_path);
	if (r < 0)
		log_err("--log-path %s: %s", a->log_path, strerror(-r));
	return r;
}

/* --- the personality --------------------------------------------------------------------- */

static const char fc_usage[] =
	"usage: firecracker [--api-sock PATH | --no-api --config-file FILE] [options]\n"
	"\n"
	"kvmini " KVMINI_VERSION " under Firecracker's name: Firecracker's command line, run by\n"
	"`kvmini run` (its control API follows Firecracker v" KVMINI_FC_COMPAT_VERSION "'s).\n"
	"\n"
	"  --api-sock PATH     the API socket (default " FC_DEFAULT_API_SOCK "; a stale\n"
	"                      socket file there is replaced)\n"
	"  --config-file FILE  Firecracker's JSON configuration, applied, then the VM starts\n"
	"  --no-api            no API socket (needs --config-file)\n"
	"  --id ID             the instance id (GET /'s \"id\", the log lines'), 1 to 64\n"
	"                      letters, digits or '-'\n"
	"  --boot-timer        kvmini's --boot-timing: the boot milestones at exit\n"
	"  --level LEVEL       Error, Warning, Info, Debug, Trace or Off (any case)\n"
	"  --log-path PATH     append the log lines to PATH (a file or a FIFO, opened\n"
	"                      non-blocking) instead of stderr\n"
	"  --metrics-path PATH the metrics file, as PUT /metrics sets it\n"
	"  --http-api-max-payload-size N   the largest API request body (bytes)\n"
	"  --mmds-size-limit N the MMDS store's limit (bytes)\n"
	"  --start-time-us N, --start-time-cpu-us N, --parent-cpu-time-us N,\n"
	"  --no-seccomp        kvmini run --seccomp off (unsafe: no filters)\n"
	"  --show-level, --show-log-origin   accepted, ignored\n"
	"  --seccomp-filter, --module, --describe-snapshot, --snapshot-version   refused\n"
	"  --version           the version (Firecracker's form, then kvmini's)\n"
	"  --help              this text\n";

enum fc_kind { FC_PASS, FC_RENAME, FC_IGNORE, FC_REFUSE };

struct fc_flag {
	const char *name;                 /* without the dashes */
	bool value;                       /* takes a value */
	enum fc_kind kind;
	const char *run_name;             /* FC_RENAME: kvmini run's option; FC_REFUSE: why */
};

static const struct fc_flag fc_flags[] = {
	{ "api-sock", true, FC_PASS, NULL },
	{ "config-file", true, FC_PASS, NULL },
	{ "no-api", false, FC_PASS, NULL },
	{ "id", true, FC_PASS, NULL },
	{ "level", true, FC_PASS, NULL },
	{ "log-path", true, FC_PASS, NULL },
	{ "metrics-path", true, FC_PASS, NULL },
	{ "http-api-max-payload-size", true, FC_PASS, NULL },
	{ "mmds-size-limit", true, FC_PASS, NULL },
	{ "boot-timer", false, FC_RENAME, "--boot-timing" },
	{ "start-time-us", true, FC_IGNORE, NULL },
	{ "start-time-cpu-us", true, FC_IGNORE, NULL },
	{ "parent-cpu-time-us", true, FC_IGNORE, NULL },
	{ "show-level", false, FC_IGNORE, NULL },
	{ "show-log-origin", false, FC_IGNORE, NULL },
	{ "no-seccomp", false, FC_RENAME, "--seccomp=off" },
	{ "seccomp-filter", true, FC_REFUSE, "kvmini builds its own filters per thread (--no-seccomp turns them off)" },
	{ "module", true, FC_REFUSE, "kvmini logs every module's lines; there is no filter" },
	{ "describe-snapshot", true, FC_REFUSE, "kvmini cannot describe a snapshot file" },
	{ "snapshot-version", false, FC_REFUSE, "kvmini's snapshots have their own format" },
};

static const struct fc_flag *find_flag(const char *arg, size_t len)
{
	for (unsigned i = 0; i < ARRAY_SIZE(fc_flags); i++)
		if (strlen(fc_flags[i].name) == len && !strncmp(fc_flags[i].name, arg, len))
			return &fc_flags[i];
	return NULL;
}

/* A start-time flag's value: Firecracker's is a number of microseconds. */
static int check_ignored(const struct fc_flag *f, const char *val)
{
	unsigned long unused;

	if (!f->value || cli_parse_uint(val, 0, ~0ul, &unused) == 0)
		return 0;
	log_err("--%s: \"%s\" is not a number", f->name, val);
	return -EINVAL;
}

/* One flag at argv[*i] (and its value) onto @out. 0, 1 after --help or
 * --version (printed), or -EINVAL (logged). */
static int translate_one(char **argv, int argc, int *i, char **out, int *n)
{
	const char *arg = argv[*i];

	if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
		fputs(fc_usage, stdout);
		return 1;
	}
	if (!strcmp(arg, "--version") || !strcmp(arg, "-V")) {
		printf("Firecracker v" KVMINI_FC_COMPAT_VERSION "\n\nkvmini %s (Firecracker's "
		       "command line and API v" KVMINI_FC_COMPAT_VERSION ")\n", KVMINI_VERSION);
		return 1;
	}
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) - 2 : strlen(arg) - 2;
	const struct fc_flag *f = strncmp(arg, "--", 2) ? NULL : find_flag(arg + 2, len);
	if (!f) {
		log_err("firecracker: unknown %s \"%s\" (see firecracker --help)",
			strncmp(arg, "-", 1) ? "argument" : "flag", arg);
		return -EINVAL;
	}
	const char *val = eq ? eq + 1 : NULL;
	if (f->value && !val && *i + 1 >= argc) {
		log_err("firecracker: --%s needs a value", f->name);
		return -EINVAL;
	}
	if (f->value && !val)
		val = argv[++*i];
	if (!f->value && eq) {
		log_err("firecracker: --%s takes no value", f->name);
		return -EINVAL;
	}
	switch (f->kind) {
	case FC_REFUSE:
		log_err("firecracker: --%s is not supported: %s", f->name, f->run_name);
		return -EINVAL;
	case FC_IGNORE:
		return check_ignored(f, val);
	case FC_RENAME:
		out[(*n)++] = (char *)f->run_name;
		return 0;
	case FC_PASS:
		out[(*n)++] = argv[*i - (f->value && !eq ? 1 : 0)];
		if (f->value && !eq)
			out[(*n)++] = argv[*i];
		return 0;
	}
	return -EINVAL;
}

int cmd_firecracker(int argc, char **argv)
{
	/* "run", every flag, "--api-sock" and its default, NULL. */
	char **run_argv = calloc((size_t)argc + 4, sizeof(*run_argv));
	int n = 0, r = 0;
	bool sock = false, no_api = false;

	if (!run_argv) {
		log_err("firecracker: out of memory");
		return EXIT_RUNTIME;
	}
	run_argv[n++] = "run";
	for (int i = 1; i < argc && r == 0; i++) {
		sock |= !strncmp(argv[i], "--api-sock", 10);
		no_api |= !strcmp(argv[i], "--no-api");
		r = translate_one(argv, argc, &i, run_argv, &n);
	}
	if (r == 0 && !sock && !no_api) {
		run_argv[n++] = "--api-sock";
		run_argv[n++] = FC_DEFAULT_API_SOCK;
	}
	if (r == 0)
		r = cmd_run(n, run_argv);
	else
		r = r > 0 ? 0 : EXIT_USAGE;
	free(run_argv);
	return r;
}
