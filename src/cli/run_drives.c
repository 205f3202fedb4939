/*
 * kvmini run's drives (see run.h): `--drive` on the command line and
 * Firecracker's PUT /drives/{id} before the start fill the same list; the
 * machine gets the root drive first, so the guest names it vda, as
 * Firecracker promises ("the root drive is /dev/vda even when PUT last"),
 * the others in the order given; a root drive adds root=/dev/vda (or
 * root=PARTUUID=...) and rw or ro to the boot arguments, unless they name
 * a root already. PATCH /drives/{id} on the running VM swaps a drive's
 * image (machine_replace_drive).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/run.h"
#include "core/log.h"

/* The drive called @id, else a new slot; NULL (why in @eb) when full. */
static struct run_drive *drive_slot(struct run_args *a, const char *id, struct errbuf *eb)
{
	for (unsigned i = 0; i < a->n_drives; i++)
		if (!strcmp(a->drives[i].id, id))
			return &a->drives[i];
	if (a->n_drives < RUN_MAX_DRIVES)
		return &a->drives[a->n_drives];
	errbuf_set(eb, "kvmini runs at most %u drives", RUN_MAX_DRIVES);
	return NULL;
}

/* Another drive than @self is the root already. */
static bool other_root(const struct run_args *a, const struct run_drive *self)
{
	for (unsigned i = 0; i < a->n_drives; i++)
		if (&a->drives[i] != self && a->drives[i].root)
			return true;
	return false;
}

static bool fits(const char *s, size_t size)
{
	return strlen(s) < size;
}

/* Firecracker's checks of a Drive, in its words where it has them. */
static int drive_check(const struct api_drive_config *dc, struct errbuf *eb)
{
	if (!*dc->drive_id || strchr(dc->drive_id, '/') || !fits(dc->drive_id, API_DRIVE_ID_MAX + 1)) {
		errbuf_set(eb, "drive_id \"%s\": 1 to %u characters, no '/'", dc->drive_id,
			   API_DRIVE_ID_MAX);
		return -EINVAL;
	}
	if (!fits(dc->path_on_host, sizeof(((struct run_drive *)0)->path)) ||
	    (dc->partuuid && !fits(dc->partuuid, sizeof(((struct run_drive *)0)->partuuid)))) {
		errbuf_set(eb, "path_on_host or partuuid too long");
		return -EINVAL;
	}
	if (access(dc->path_on_host, dc->is_read_only ? R_OK : R_OK | W_OK) < 0) {
		errbuf_set(eb, "Unable to open the block device backing file %s: %s", dc->path_on_host,
			   strerror(errno));
		return -EINVAL;
	}
	return 0;
}

int run_drive_put(struct run_args *a, const struct api_drive_config *dc, struct errbuf *eb)
{
	int r = drive_check(dc, eb);
	struct run_drive *d = r ? NULL : drive_slot(a, dc->drive_id, eb);

	if (!d)
		return -EINVAL;
	if (dc->is_root_device && other_root(a, d)) {
		errbuf_set(eb, "A root block device already exists!");
		return -EINVAL;
	}
	if (d == &a->drives[a->n_drives])
		a->n_drives++;
	*d = (struct run_drive){ .read_only = dc->is_read_only, .root = dc->is_root_device,
				 .limit = dc->limit };
	snprintf(d->id, sizeof(d->id), "%s", dc->drive_id);
	snprintf(d->path, sizeof(d->path), "%s", dc->path_on_host);
	snprintf(d->partuuid, sizeof(d->partuuid), "%s", dc->partuuid ? dc->partuuid : "");
	return 0;
}

/* PUT /drives/{id} before the start. */
int run_add_drive(void *opaque, const struct api_drive_config *dc, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;

	if (ctx->machine_tried)
		return -EEXIST;
	int r = run_drive_put(ctx->args, dc, eb);
	if (!r)
		ctx->api_configured = true;
	return r;
}

/* PATCH /drives/{id} on the running VM: the machine's drive of that id
 * served from @path and/or behind @limit (NULL: unchanged), which GET
 * /vm/config shows from then on. The file first: a file that does not
 * open changes nothing. */
int run_patch_drive(void *opaque, const char *id, const char *path,
		    const struct rate_limiter_config *limit, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct run_args *a = ctx->args;
	unsigned i = 0;

	if (!ctx->machine.running)
		return -EAGAIN;
	while (i < ctx->cfg.n_drives && strcmp(ctx->cfg.drives[i].id, id))
		i++;
	struct run_drive *d = a->drives;
	while (d < a->drives + a->n_drives && strcmp(d->id, id))
		d++;
	if (i == ctx->cfg.n_drives || d == a->drives + a->n_drives)
		return -ENODEV;
	if (path && !fits(path, sizeof(d->path))) {
		errbuf_set(eb, "path_on_host longer than %zu bytes", sizeof(d->path) - 1);
		return -EINVAL;
	}
	if (limit && !rate_limiter_config_valid(limit)) {
		errbuf_set(eb, "rate_limiter out of range");
		return -EINVAL;
	}
	int r = path ? machine_replace_drive(&ctx->machine, i, path, eb) : 0;
	if (r < 0)
		return r;
	if (path) {
		snprintf(d->path, sizeof(d->path), "%s", path);
		log_info("drive %s: now %s, %llu sectors", id, path,
			 (unsigned long long)ctx->machine.drives[i].img.sectors);
	}
	if (limit) {
		machine_set_drive_limit(&ctx->machine, i, limit);   /* checked above */
		d->limit = *limit;
		ctx->drives[i].limit = *limit;   /* what a snapshot saves */
		log_info("drive %s: rate limiter %s", id,
			 rate_limiter_active(&ctx->machine.drives[i].dev->limiter) ? "set" : "off");
	}
	return 0;
}

/* --drive PATH[,ro][,root][,id=ID][,partuuid=UUID]: the id defaults to
 * driveN, N its place among the drives. */
int run_take_drive(struct run_args *a, const char *spec)
{
	char buf[4200], id[32];
	struct api_drive_config dc = { 0 };
	struct errbuf eb = { 0 };

	if (!fits(spec, sizeof(buf))) {
		log_err("--drive: too long");
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	snprintf(id, sizeof(id), "drive%u", a->n_drives);
	char *save = NULL, *opt;
	dc.path_on_host = strtok_r(buf, ",", &save);
	dc.drive_id = id;
	while (dc.path_on_host && (opt = strtok_r(NULL, ",", &save))) {
		if (!strcmp(opt, "ro"))
			dc.is_read_only = true;
		else if (!strcmp(opt, "root"))
			dc.is_root_device = true;
		else if (!strncmp(opt, "id=", 3))
			dc.drive_id = opt + 3;
		else if (!strncmp(opt, "partuuid=", 9))
			dc.partuuid = opt + 9;
		else {
			log_err("--drive %s: unknown option \"%s\" (ro, root, id=ID, partuuid=UUID)",
				spec, opt);
			return -EINVAL;
		}
	}
	if (!dc.path_on_host || run_drive_put(a, &dc, &eb) < 0) {
		log_err("--drive %s: %s", spec, dc.path_on_host ? eb.msg : "no image");
		return -EINVAL;
	}
	return 0;
}

/* A word of @cmdline is root=...: not a word that ends in it (blk_root=1). */
static bool names_root(const char *cmdline)
{
	for (const char *p = strstr(cmdline, "root="); p; p = strstr(p + 1, "root="))
		if (p == cmdline || p[-1] == ' ')
			return true;
	return false;
}

/* The boot arguments with the root drive's root= (Firecracker's rule),
 * unless they name one. */
static void root_cmdline(struct run_ctx *ctx, const struct run_drive *root)
{
	const char *base = ctx->args->cmdline ? ctx->args->cmdline : "";
	const char *mode = root->read_only ? "ro" : "rw";

	if (names_root(base)) {
		snprintf(ctx->cmdline, sizeof(ctx->cmdline), "%s", base);
		return;
	}
	if (root->partuuid[0])
		snprintf(ctx->cmdline, sizeof(ctx->cmdline), "%s root=PARTUUID=%s %s", base,
			 root->partuuid, mode);
	else
		snprintf(ctx->cmdline, sizeof(ctx->cmdline), "%s root=/dev/vda %s", base, mode);
}

/* The machine's drives, the root first; the boot arguments with its root=. */
void run_configure_drives(struct run_ctx *ctx)
{
	const struct run_args *a = ctx->args;
	const struct run_drive *root = NULL;
	unsigned n = 0;

	for (unsigned i = 0; i < a->n_drives; i++)
		if (a->drives[i].root)
			root = &a->drives[i];
	for (unsigned pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < a->n_drives; i++) {
			const struct run_drive *d = &a->drives[i];
			if ((pass == 0) != (d == root))
				continue;
			ctx->drives[n++] = (struct machine_drive_config){
				.id = d->id, .path = d->path, .read_only = d->read_only,
				.root = d->root, .partuuid = d->partuuid, .limit = d->limit };
		}
	ctx->cfg.drives = ctx->drives;
	ctx->cfg.n_drives = n;
	if (root) {
		root_cmdline(ctx, root);
		ctx->cfg.cmdline = ctx->cmdline;
	}
}
