/* The options of a shared filesystem, one table (see fs_options.h). */
#include "cli/fs_options.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "core/compiler.h"
#include "core/log.h"
#include "fs/dax_window.h"
#include "fuse/fuse_compat.h"
#include "fuse/fuse_dev.h"

#define ALL_DOORS (CLI_FS_VHOST | CLI_FS_FUSE | CLI_FS_RUN_SHARE)

/* Which backend an option is for. */
enum fs_option_scope { FOR_ANY, FOR_PASSTHROUGH, FOR_MEMFS };

/* A number option: the field of struct cli_fs_args it sets (4 or 8 bytes),
 * its bounds, and how many bits the value is shifted (MiB to bytes: 20). */
struct fs_number {
	size_t off, size;
	unsigned long min, max;
	unsigned shift;
	const char *unit;            /* "bytes", "MiB", or NULL */
};

/* An option: a flag or a value parsed by @take, or a number (@take NULL). */
struct fs_option {
	const char *name;
	const char *value;           /* what a valid value is, for messages; NULL: a
	                              * flag, or a number (described from its bounds) */
	unsigned doors;              /* enum cli_fs_door */
	enum fs_option_scope scope;
	int (*take)(struct cli_fs_args *a, const char *val);
	struct fs_number number;
};

/* virtio-fs workers and /dev/fuse readers have the same bound. */
static_assert(VIRTIO_FS_MAX_THREADS == FUSE_DEV_MAX_THREADS, "one --threads bound");

static int take_number(struct cli_fs_args *a, const struct fs_number *n, const char *val)
{
	unsigned long v;

	if (cli_parse_uint(val, n->min, n->max, &v))
		return -EINVAL;
	uint64_t wide = (uint64_t)v << n->shift;
	uint32_t narrow = (uint32_t)wide;
	memcpy((char *)a + n->off, n->size == sizeof(wide) ? (void *)&wide : (void *)&narrow,
	       n->size);
	return 0;
}

static int take_backend(struct cli_fs_args *a, const char *val)
{
	if (!strcmp(val, "passthrough"))
		a->share.backend = FS_SHARE_PASSTHROUGH;
	else if (!strcmp(val, "memfs"))
		a->share.backend = FS_SHARE_MEMFS;
	else
		return -EINVAL;
	return 0;
}

static int take_cache(struct cli_fs_args *a, const char *val)
{
	return fuse_cache_policy_parse(val, &a->share.server.cache);
}




/* dax=SIZE: a number with a unit, K, M or G (binary), a power of two the
 * window accepts (fs/dax_window.h). */
static int take_dax(struct cli_fs_args *a, const char *val)
{
	static const char units[] = "KMG";
	size_t len = strlen(val);
	char digits[24];
	unsigned long n;

	const char *u = len > 1 ? strchr(units, val[len - 1]) : NULL;
	if (!u || !val[len - 1] || len - 1 >= sizeof(digits))
		return -EINVAL;
	memcpy(digits, val, len - 1);
	digits[len - 1] = '\0';
	if (cli_parse_uint(digits, 1, 1ul << 30, &n))
		return -EINVAL;
	uint64_t bytes = (uint64_t)n << (10 * (unsigned)(u - units + 1));
	if (!dax_window_size_valid(bytes))
		return -EINVAL;
	a->dev.dax_bytes = bytes;
	return 0;
}

static int take_squash(struct cli_fs_args *a, const char *val)
{
	struct passthrough_opts *pt = &a->share.pt;

	if (cli_parse_owner(val, &pt->squash_uid, &pt->squash_gid))
		return -EINVAL;
	pt->squash = true;
	return 0;
}



static int take_xattr_all(struct cli_fs_args *a, const char *val)
{
	a->share.pt.xattr_all = true;
	return 0;
}

static int take_dev_nodes(struct cli_fs_args *a, const char *val)
{
	a->share.pt.dev_nodes = true;
	return 0;
}

static int take_no_notify(struct cli_fs_args *a, const char *val)
{
	a->share.no_notify = true;
	return 0;
}

/* watch=dirs (the default) or files: what the host watcher places its
 * inotify watches on (fs/host_watch.h). */
static int take_watch(struct cli_fs_args *a, const char *val)
{
	if (!strcmp(val, "dirs"))
		a->share.watch.scheme = HOST_WATCH_DIRS;
	else if (!strcmp(val, "files"))
		a->share.watch.scheme = HOST_WATCH_FILES;
	else
		return -EINVAL;
	return 0;
}



static int take_no_passthrough(struct cli_fs_args *a, const char *val)
{
	a->share.server.extra_init_flags &= ~(uint64_t)FUSE_PASSTHROUGH;
	return 0;
}

/* A value parsed by @take_, a flag (@value_ NULL), or a number. */
#define TAKES(name_, value_, doors_, scope_, take_)                                      \
	{ .name = (name_), .value = (value_), .doors = (doors_), .scope = (scope_), .take = (take_) }
#define NUMBER(name_, doors_, scope_, field, lo, hi, shift_, unit_)                       \
	{ .name = (name_), .doors = (doors_), .scope = (scope_),                            \
	  .number = { offsetof(struct cli_fs_args, field),                                 \
		      sizeof(((struct cli_fs_args *)0)->field), (lo), (hi), (shift_), (unit_) } }

static const struct fs_option fs_options[] = {
	TAKES("backend", "passthrough or memfs", CLI_FS_VHOST, FOR_ANY, take_backend),
	TAKES("cache", "none, metadata, auto or always", ALL_DOORS, FOR_ANY, take_cache),
	NUMBER("threads", ALL_DOORS, FOR_ANY, threads, 1, VIRTIO_FS_MAX_THREADS, 0, NULL),
	NUMBER("queues", CLI_FS_VHOST | CLI_FS_RUN_SHARE, FOR_ANY, dev.request_queues, 1,
	       VIRTIO_FS_MAX_REQUEST_QUEUES, 0, NULL),
	NUMBER("poll-us", CLI_FS_VHOST | CLI_FS_RUN_SHARE, FOR_ANY, dev.poll_us, 0,
	       VIRTIO_FS_MAX_POLL_US, 0, "microseconds"),
	TAKES("squash-owner", "UID:GID (numbers)", ALL_DOORS, FOR_ANY, take_squash),
	NUMBER("max-fds", ALL_DOORS, FOR_PASSTHROUGH, share.pt.max_fds, 16, 1ul << 30, 0, NULL),
	NUMBER("max-inodes", ALL_DOORS, FOR_PASSTHROUGH, share.pt.max_inodes, 16, 1ul << 30, 0,
	       NULL),
	NUMBER("max-handles", ALL_DOORS, FOR_PASSTHROUGH, share.pt.max_handles, 16, 1ul << 30, 0,
	       NULL),
	NUMBER("max-write", ALL_DOORS, FOR_ANY, share.server.max_write, 4096, 1ul << 20, 0,
	       "bytes"),
	TAKES("xattr-all", NULL, ALL_DOORS, FOR_PASSTHROUGH, take_xattr_all),
	TAKES("dev-nodes", NULL, ALL_DOORS, FOR_PASSTHROUGH, take_dev_nodes),
	TAKES("no-notify", NULL, ALL_DOORS | CLI_FS_RUN, FOR_ANY, take_no_notify),
	NUMBER("max-watches", ALL_DOORS | CLI_FS_RUN, FOR_PASSTHROUGH, share.watch.max_watches, 1,
	       1ul << 24, 0, NULL),
	TAKES("watch", "dirs or files", ALL_DOORS, FOR_PASSTHROUGH, take_watch),
	NUMBER("memfs-size", CLI_FS_VHOST, FOR_MEMFS, share.mem.max_bytes, 1, 65536, 20, "MiB"),
	TAKES("no-passthrough", NULL, CLI_FS_FUSE, FOR_ANY, take_no_passthrough),
	TAKES("dax", "a window size with a unit, a power of two from 2M to 64G (e.g. 1G)",
	      CLI_FS_RUN_SHARE, FOR_PASSTHROUGH, take_dax),
};
static_assert(ARRAY_SIZE(fs_options) <= CLI_FS_MAX_LONG_OPTIONS, "room for the options");
static_assert(ARRAY_SIZE(fs_options) <= 32, "one bit of cli_fs_args.given each");

static bool takes_value(const struct fs_option *o)
{
	return o->value || !o->take;
}

/* What a valid value of @o is, in @buf, for messages. */
static const char *valid_value(const struct fs_option *o, char *buf, size_t len)
{
	const struct fs_number *n = &o->number;

	if (o->take)
		return o->value;
	snprintf(buf, len, "a number%s%s from %lu to %lu", n->unit ? " of " : "",
		 n->unit ? n->unit : "", n->min, n->max);
	return buf;
}

void cli_fs_args_init(struct cli_fs_args *a)
{
	*a = (struct cli_fs_args){ .share = FS_SHARE_CONFIG_DEFAULT,
				   .dev = { .request_queues = 1 } };
}

unsigned cli_fs_long_options(struct option *opts, enum cli_fs_door door)
{
	unsigned n = 0;

	for (unsigned i = 0; i < ARRAY_SIZE(fs_options); i++)
		if (fs_options[i].doors & door)
			opts[n++] = (struct option){ fs_options[i].name,
						     takes_value(&fs_options[i]) ? required_argument
										 : no_argument,
						     NULL, CLI_FS_OPT_BASE + (int)i };
	return n;
}

/* Take option @i with @val; @prefix is how it was spelled ("--", or the
 * share's name and a comma). 0 or -EINVAL (logged). */
static int take(struct cli_fs_args *a, unsigned i, const char *val, const char *prefix)
{
	const struct fs_option *o = &fs_options[i];
	char buf[80];

	if ((o->take ? o->take(a, val) : take_number(a, &o->number, val)) < 0) {
		log_err("%s%s: \"%s\" is not %s", prefix, o->name, val,
			valid_value(o, buf, sizeof(buf)));
		return -EINVAL;
	}
	a->given |= 1u << i;
	return 0;
}

int cli_fs_take(struct cli_fs_args *a, int opt, const char *val)
{
	if (opt < CLI_FS_OPT_BASE || opt >= CLI_FS_OPT_BASE + (int)ARRAY_SIZE(fs_options))
		return 1;
	return take(a, (unsigned)(opt - CLI_FS_OPT_BASE), val, "--");
}

static int find_option(const char *name, size_t len, unsigned door)
{
	for (unsigned i = 0; i < ARRAY_SIZE(fs_options); i++)
		if ((fs_options[i].doors & door) && strlen(fs_options[i].name) == len &&
		    !strncmp(fs_options[i].name, name, len))
			return (int)i;
	return -1;
}

/* One NAME[=VALUE] of a list, @item_len bytes long. */
static int take_item(struct cli_fs_args *a, const char *item, size_t item_len, const char *what)
{
	const char *eq = memchr(item, '=', item_len);
	size_t name_len = eq ? (size_t)(eq - item) : item_len;
	int i = find_option(item, name_len, CLI_FS_RUN_SHARE);
	char val[256], prefix[300];

	if (i < 0) {
		log_err("%s: unknown option \"%.*s\"", what, (int)name_len, item);
		return -EINVAL;
	}
	if (takes_value(&fs_options[i]) != !!eq) {
		log_err("%s: %.*s %s", what, (int)name_len, item,
			eq ? "takes no value" : "needs a value (NAME=VALUE)");
		return -EINVAL;
	}
	size_t val_len = eq ? item_len - name_len - 1 : 0;
	if (val_len >= sizeof(val)) {
		log_err("%s: the value of %.*s is too long", what, (int)name_len, item);
		return -EINVAL;
	}
	memcpy(val, eq ? eq + 1 : "", val_len);
	val[val_len] = '\0';
	snprintf(prefix, sizeof(prefix), "%s: ", what);
	return take(a, (unsigned)i, val, prefix);
}

int cli_fs_take_list(struct cli_fs_args *a, const char *list, const char *what)
{
	while (*list) {
		const char *comma = strchrnul(list, ',');

		if (take_item(a, list, (size_t)(comma - list), what) < 0)
			return -EINVAL;
		list = *comma ? comma + 1 : comma;
	}
	return 0;
}

bool cli_fs_given(const struct cli_fs_args *a, const char *name)
{
	int i = find_option(name, strlen(name), ~0u);

	return i >= 0 && (a->given & (1u << i));
}

void cli_fs_inherit(struct cli_fs_args *a, const struct cli_fs_args *defaults)
{
	if (cli_fs_given(defaults, "no-notify") && !cli_fs_given(a, "no-notify"))
		a->share.no_notify = defaults->share.no_notify;
	if (cli_fs_given(defaults, "max-watches") && !cli_fs_given(a, "max-watches"))
		a->share.watch.max_watches = defaults->share.watch.max_watches;
}

/* The first option given that is for the other backend, or NULL. */
static const char *misplaced(const struct cli_fs_args *a, enum fs_option_scope wrong)
{
	for (unsigned i = 0; i < ARRAY_SIZE(fs_options); i++)
		if (fs_options[i].scope == wrong && (a->given & (1u << i)))
			return fs_options[i].name;
	return NULL;
}

int cli_fs_check(struct cli_fs_args *a)
{
	bool memfs = a->share.backend == FS_SHARE_MEMFS;
	const char *name = misplaced(a, memfs ? FOR_PASSTHROUGH : FOR_MEMFS);

	if (name) {
		log_err("--%s is for the %s backend", name, memfs ? "passthrough" : "memfs");
		return -EINVAL;
	}
	a->dev.threads = a->threads;
	/* memfs takes the owner from its own options. */
	a->share.mem.squash = a->share.pt.squash;
	a->share.mem.squash_uid = a->share.pt.squash_uid;
	a->share.mem.squash_gid = a->share.pt.squash_gid;
	return 0;
}
