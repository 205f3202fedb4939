/*
 * `kvmini run`'s restores (see run.h): the machine a snapshot describes,
 * with its memory files and devices (the snapshot's own, or the command
 * line's), a clone's overrides on top, built and loaded. --restore and
 * PUT /snapshot/load both come here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/mmds_args.h"
#include "cli/run.h"
#include "core/clock.h"
#include "machine/device_config_state.h"
#include "mmds/mmds.h"
#include "vmm/ram_file.h"

/* The snapshot's balloon into the run's own configuration (the command
 * line gives none beside --restore): GET /balloon finds it there. */
static void restore_balloon(struct run_ctx *ctx)
{
	const struct saved_devices *d = &ctx->restore.devices;

	ctx->args->balloon = d->has_balloon;
	ctx->args->balloon_opts = d->balloon;
}

/* The snapshot's drives and vsock device into the run's own lists, unless
 * the command line gives its own (then the devices' sections check them):
 * the machine is built from those lists, and GET /vm/config and PATCH
 * /drives find them there as they would after a boot. */
static void restore_drives_vsock(struct run_ctx *ctx)
{
	const struct saved_devices *d = &ctx->restore.devices;
	struct run_args *a = ctx->args;

	if (!a->n_drives) {
		for (unsigned i = 0; i < d->n_drives; i++) {
			const struct saved_drive *sd = &d->drives[i];
			struct run_drive *rd = &a->drives[i];
			*rd = (struct run_drive){ .read_only = sd->read_only, .root = sd->root,
						  .limit = sd->limit };
			snprintf(rd->id, sizeof(rd->id), "%s", sd->id);
			snprintf(rd->path, sizeof(rd->path), "%s", sd->path);
			snprintf(rd->partuuid, sizeof(rd->partuuid), "%s", sd->partuuid);
		}
		a->n_drives = d->n_drives;
	}
	if (!a->vsock.on && d->has_vsock) {
		a->vsock.on = true;
		a->vsock.cid = d->vsock_cid;
		a->vsock.listen_fd = -1;
		snprintf(a->vsock.path, sizeof(a->vsock.path), "%s", d->vsock_path);
	}
}

/* A restore's machine: the snapshot's, with its memory files; its devices
 * the command line's when it gives any, else the snapshot's own. */
static void configure_restore(struct run_ctx *ctx, const struct run_restore *rr)
{
	const struct machine_snapshot_info *info = &ctx->restore.info;

	restore_drives_vsock(ctx);
	restore_balloon(ctx);
	run_configure(ctx);
	ctx->cfg.kernel = ctx->cfg.initrd = NULL;
	ctx->cfg.mem_bytes = info->mem_bytes;
	ctx->cfg.cpus = info->cpus;
	ctx->cfg.no_acpi = info->no_acpi;
	ctx->cfg.compat = info->compat;
	ctx->cfg.mem_files = rr->mem_files;
	ctx->cfg.n_mem_files = rr->n_mem_files;
	ctx->cfg.track_dirty_pages = rr->track_dirty_pages;
	if (ctx->args->net.n_ifaces || ctx->args->nfs)
		return;
	device_config_apply(&ctx->restore.devices, &ctx->cfg);
	run_name_shares(ctx, ctx->restore.devices.fs, ctx->restore.devices.n_fs);
}

/* --- restore ------------------------------------------------------------------ */

/* As many memory files as the snapshot's memory has layers, before any is
 * mapped: a missing Diff would restore stale pages without a word. */
static int check_layers(const struct run_restore *rr, const struct machine_snapshot_info *info,
			struct errbuf *eb)
{

	if (rr->n_mem_files == info->mem_layers)
		return 0;
	if (info->mem_layers == 1)
		errbuf_set(eb, "a Full snapshot: give its one memory file%s, not %u",
			   rr->from_api ? "" : " (--mem-file)", rr->n_mem_files);
	else if (rr->from_api)
		errbuf_set(eb, "a Diff snapshot whose memory has %u layers: give %u memory files, "
			   "the Full snapshot's as mem_backend.backend_path, then each Diff's in "
			   "mem_backend.diff_paths in the order they were taken, this one's last "
			   "(%u given)", info->mem_layers, info->mem_layers, rr->n_mem_files);
	else
		errbuf_set(eb, "a Diff snapshot whose memory has %u layers: give --mem-file %u "
			   "times, the Full snapshot's memory file first, then each Diff's in the "
			   "order they were taken, this one's last (%u given)", info->mem_layers,
			   info->mem_layers, rr->n_mem_files);
	return -EINVAL;
}

/* A clone's own copy of a share: a directory, named by the share's tag. */
static int apply_fs_override(struct run_ctx *ctx, const struct api_fs_override *o,
			     struct errbuf *eb)
{
	struct stat st;

	if (stat(o->shared_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		errbuf_set(eb, "fs_overrides: %s: \"%s\" is not a directory", o->tag, o->shared_dir);
		return -EINVAL;
	}
	int r = device_config_override_fs(&ctx->restore.devices, o->tag, o->shared_dir);
	if (r == -ENOENT)
		errbuf_set(eb, "fs_overrides: the snapshot has no share with the tag \"%s\"", o->tag);
	else if (r < 0)
		errbuf_set(eb, "fs_overrides: %s: \"%s\" is not an absolute path", o->tag,
			   o->shared_dir);
	return r;
}

/* A clone's changes onto the snapshot's devices (an API load's). */
static int apply_overrides(struct run_ctx *ctx, const struct run_restore *rr, struct errbuf *eb)
{
	for (unsigned i = 0; i < rr->n_fs_overrides; i++) {
		int r = apply_fs_override(ctx, &rr->fs_overrides[i], eb);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < rr->n_overrides; i++) {
		const struct api_net_override *o = &rr->overrides[i];
		int r = device_config_override_net(&ctx->restore.devices, o->iface_id,
						   o->host_dev_name, o->mac_given ? o->mac : NULL);
		if (r == -ENOENT)
			errbuf_set(eb, "network_overrides: the snapshot has no interface \"%s\"",
				   o->iface_id);
		else if (r < 0)
			errbuf_set(eb, "network_overrides: %s: host_dev_name \"%s\": the interface "
				   "is no tap, or that is no interface name", o->iface_id,
				   o->host_dev_name);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The metadata store a snapshot's devices need when the command line made
 * none: its configuration and contents come with the state. A monitor
 * that waited for its configuration has one already, not yet on. */
static int restore_mmds(struct run_ctx *ctx, struct errbuf *eb)
{
	struct cli_mmds_args defaults;

	if (!ctx->restore.info.mmds || ctx->mmds_on || ctx->args->net.n_ifaces)
		return 0;
	if (!ctx->mmds) {
		cli_mmds_args_init(&defaults);
		defaults.enabled = true;
		defaults.cfg.store_limit = ctx->args->net.mmds.cfg.store_limit; /* --mmds-size-limit */
		int r = cli_mmds_new_store(&defaults, &ctx->mmds);
		if (r < 0) {
			errbuf_set(eb, "the metadata service: %s", strerror(-r));
			return r;
		}
	}
	ctx->mmds_on = true;
	return 0;
}

/* Every drive's image is where the snapshot says and as large as it was
 * (the guest's driver holds its capacity), before anything is built; a
 * command line with drives of its own gives those instead. */
static int check_drives(struct run_ctx *ctx, struct errbuf *eb)
{
	for (unsigned i = 0; !ctx->args->n_drives && i < ctx->restore.devices.n_drives; i++) {
		int r = device_config_check_drive(&ctx->restore.devices, i, eb);
		if (r < 0)
			return r;
	}
	return 0;
}

/* vsock_override: the vsock device listens on another path (a clone
 * beside the VM it was taken from, which holds the old one). */
static int apply_vsock_override(struct run_ctx *ctx, const char *path, struct errbuf *eb)
{
	struct saved_devices *d = &ctx->restore.devices;

	if (!path)
		return 0;
	if (!d->has_vsock) {
		errbuf_set(eb, "vsock_override: the snapshot has no vsock device");
		return -EINVAL;
	}
	if (!*path || strlen(path) > VSOCK_UDS_PATH_MAX) {
		errbuf_set(eb, "vsock_override: uds_path must be 1 to %zu bytes", VSOCK_UDS_PATH_MAX);
		return -EINVAL;
	}
	snprintf(d->vsock_path, sizeof(d->vsock_path), "%s", path);
	return 0;
}

/* The vsock socket can be made where the restore will make it: a failure
 * there would come after the machine is built. */
static int check_vsock_path(struct run_ctx *ctx, struct errbuf *eb)
{
	const struct saved_devices *d = &ctx->restore.devices;
	char dir[sizeof(d->vsock_path)];
	struct stat st;

	if (ctx->args->vsock.on || !d->has_vsock)
		return 0;
	if (lstat(d->vsock_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		errbuf_set(eb, "vsock: %s exists and is not a socket", d->vsock_path);
		return -EINVAL;        /* -EEXIST is the API's "a VM exists already" */
	}
	snprintf(dir, sizeof(dir), "%s", d->vsock_path);
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir] = '\0';   /* "/s" keeps "/" */
	if (stat(slash ? dir : ".", &st) < 0 || !S_ISDIR(st.st_mode)) {
		errbuf_set(eb, "vsock: the socket %s has no directory to be made in", d->vsock_path);
		return -ENOENT;
	}
	return 0;
}

/* Open the snapshot and check it against the request: nothing is built
 * yet, so a refusal here leaves the monitor as it was. */
int run_restore_prepare(struct run_ctx *ctx, const struct run_restore *rr, struct errbuf *eb)
{
	int r = machine_restore_open(&ctx->restore, rr->state, eb);

	if (!r)
		r = check_layers(rr, &ctx->restore.info, eb);
	for (unsigned i = 0; !r && i < rr->n_mem_files; i++)
		r = ram_file_check(rr->mem_files[i], ctx->restore.info.mem_bytes, eb);
	if (!r && (rr->n_overrides || rr->n_fs_overrides) &&
	    (ctx->args->net.n_ifaces || ctx->args->nfs)) {
		errbuf_set(eb, "network_overrides and fs_overrides change the snapshot's devices, "
			   "and this kvmini has its own from the command line");
		r = -EINVAL;
	}
	if (!r)
		r = apply_overrides(ctx, rr, eb);
	if (!r)
		r = apply_vsock_override(ctx, rr->vsock_uds_path, eb);
	if (!r)
		r = check_drives(ctx, eb);
	if (!r)
		r = check_vsock_path(ctx, eb);
	if (!r)
		r = restore_mmds(ctx, eb);
	if (r < 0)
		machine_restore_close(&ctx->restore);
	return r;
}

/* Build the snapshot's machine and load its state onto it. */
int run_restore_build(struct run_ctx *ctx, const struct run_restore *rr, struct errbuf *eb)
{
	configure_restore(ctx, rr);
	int r = run_build_machine(ctx);
	if (r < 0) {
		errbuf_set(eb, "the machine could not be built (the log says why)");
		return r;
	}
	r = machine_restore_load(&ctx->machine, &ctx->restore, eb);
	if (r < 0)
		return r;
	if (rr->mmds_new_key && ctx->mmds)
		mmds_new_key(ctx->mmds);
	/* --boot-timing's "kernel loaded" of a restore: the state loaded. */
	ctx->machine.vm.timing.kernel_loaded = clock_now_ns();
	return 0;
}

