/*
 * `kvmini run`'s VM as the control API sees it (see run.h and api/api.h):
 * pause, resume and state, snapshots taken, and PUT /snapshot/load into a
 * kvmini that waits for one (the pre-boot configuration and InstanceStart
 * are in run_preboot.c). Every call runs on the machine's loop thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/run.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"

/* --- the VM as the API sees it ------------------------------------------------ */

static int api_pause(void *opaque)
{
	struct run_ctx *ctx = opaque;
	bool was = ctx->machine.paused;
	int r = machine_pause(&ctx->machine);

	if (!r && !was)
		log_info("VM paused");
	return r;
}

static int api_resume(void *opaque)
{
	struct run_ctx *ctx = opaque;
	bool was = ctx->machine.paused;
	int r = machine_resume(&ctx->machine);

	if (!r && was)
		log_info("VM resumed");
	return r;
}

static const char *api_state(void *opaque)
{
	const struct machine *m = &((struct run_ctx *)opaque)->machine;

	return m->paused ? "Paused" : m->running ? "Running" : "Not started";
}

static int api_snapshot_create(void *opaque, const struct api_snapshot_create *req,
			       struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	const struct machine_snapshot_req mr = {
		.type = req->diff ? MACHINE_SNAPSHOT_DIFF : MACHINE_SNAPSHOT_FULL,
		.state_path = req->snapshot_path, .mem_path = req->mem_file_path,
	};
	struct machine_snapshot_stats st;

	if (!ctx->machine.running) {
		errbuf_set(eb, "there is no VM yet");
		return -EINVAL;
	}
	int r = machine_snapshot(&ctx->machine, &mr, &st, eb);
	if (!r)
		log_info("snapshot: state %llu bytes to %s, %s memory %llu MiB to %s (%llu KiB "
			 "written, layer %u) in %.1f ms", (unsigned long long)st.state_bytes,
			 req->snapshot_path, req->diff ? "Diff" : "Full",
			 (unsigned long long)(st.mem_bytes >> 20), req->mem_file_path,
			 (unsigned long long)(st.mem_written >> 10), st.mem_layers, (double)st.ns / 1e6);
	return r;
}

static void visit_device(void *opaque, const struct counter_sink *sink)
{
	struct virtio_device *dev = opaque;

	dev->ops->visit_counters(dev, sink);
}

/* The balloon's own counters and its transport's, whose activation
 * failures are Firecracker's balloon activate_fails. */
static void visit_balloon(void *opaque, const struct counter_sink *sink)
{
	struct machine *m = opaque;

	visit_device(&m->balloon->vdev, sink);
	virtio_mmio_visit_counters(&m->slots[m->balloon_slot].mmio, sink);
}

/* The drives ("block_<id>"), the entropy, vsock and balloon devices in
 * the metrics, under Firecracker's names for them. */
static void attach_device_counters(struct run_ctx *ctx)
{
	struct machine *m = &ctx->machine;

	for (unsigned i = 0; i < m->n_drives && i < RUN_MAX_DRIVES; i++) {
		if (!m->drives[i].dev)
			continue;
		snprintf(ctx->api_block_names[i], sizeof(ctx->api_block_names[i]), "block_%s",
			 ctx->cfg.drives[i].id);
		api_add_source(ctx->api, &(struct api_counter_source){
			ctx->api_block_names[i], visit_device, &m->drives[i].dev->vdev });
	}
	if (m->rng)
		api_add_source(ctx->api, &(struct api_counter_source){
			"entropy", visit_device, &m->rng->vdev });
	if (m->vsock)
		api_add_source(ctx->api, &(struct api_counter_source){
			"vsock", visit_device, &m->vsock->vdev });
	if (m->balloon)
		api_add_source(ctx->api, &(struct api_counter_source){
			"balloon", visit_balloon, m });
}

void run_attach_api_devices(struct run_ctx *ctx)
{
	struct net_device *devs[RUN_MAX_NETS];

	if (!ctx->api)
		return;
	for (unsigned i = 0; i < ctx->machine.n_nets; i++)
		devs[i] = ctx->machine.nets[i].dev;
	cli_api_ifaces(ctx->cfg.nets, ctx->machine.n_nets, devs, ctx->mmds, ctx->api_ifaces);
	api_attach_devices(ctx->api, ctx->api_ifaces, ctx->machine.n_nets, ctx->mmds);
	attach_device_counters(ctx);
}

static void quit_loop(struct event_deferred *d)
{
	struct run_ctx *ctx = container_of(d, struct run_ctx, quit_work);

	event_loop_quit(&ctx->machine.loop);
}

void run_end_after_failed_build(struct run_ctx *ctx, const char *what, const struct errbuf *eb)
{
	log_err("%s: %s", what, eb->msg);
	ctx->status_without_vm = EXIT_RUNTIME;
	event_loop_defer(&ctx->machine.loop, &ctx->quit_work, quit_loop);
}

/* The request's files, kept past the request (the machine names them). */
static int copy_load_paths(struct run_ctx *ctx, const struct api_snapshot_load *req,
			   struct run_restore *rr)
{
	ctx->load_paths[0] = strdup(req->snapshot_path);
	for (unsigned i = 0; i < req->n_mem_paths; i++)
		ctx->load_paths[1 + i] = strdup(req->mem_paths[i]);
	for (unsigned i = 0; i <= req->n_mem_paths; i++)
		if (!ctx->load_paths[i])
			return -ENOMEM;
	rr->state = ctx->load_paths[0];
	for (unsigned i = 0; i < req->n_mem_paths; i++)
		ctx->load_mem[i] = ctx->load_paths[1 + i];
	return 0;
}

static void free_load_paths(struct run_ctx *ctx)
{
	for (unsigned i = 0; i < ARRAY_SIZE(ctx->load_paths); i++) {
		free(ctx->load_paths[i]);
		ctx->load_paths[i] = NULL;
	}
}

void run_api_free(struct run_ctx *ctx)
{
	free_load_paths(ctx);
	for (unsigned i = 0; i < ARRAY_SIZE(ctx->boot_strings); i++) {
		free(ctx->boot_strings[i]);
		ctx->boot_strings[i] = NULL;
	}
}

/* PUT /snapshot/load into the waiting monitor. A refusal before anything
 * is built leaves it waiting; a failure after (a tap that does not open,
 * a section that does not fit) ends kvmini with status 1 once the answer
 * is out: a half-built VM is neither run nor reused. */
static int api_snapshot_load(void *opaque, const struct api_snapshot_load *req,
			     struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct run_restore rr = {
		.from_api = true, .mem_files = ctx->load_mem, .n_mem_files = req->n_mem_paths,
		.track_dirty_pages = req->track_dirty_pages || ctx->args->track_dirty_pages,
		.mmds_new_key = req->mmds_new_token_key,
		.overrides = req->overrides, .n_overrides = req->n_overrides,
		.fs_overrides = req->fs_overrides, .n_fs_overrides = req->n_fs_overrides,
		.vsock_uds_path = req->vsock_uds_path,
	};

	if (ctx->machine_tried)
		return -EEXIST;
	if (ctx->api_configured) {
		errbuf_set(eb, "Loading a microVM snapshot not allowed after configuring "
			   "boot-specific resources.");
		return -EINVAL;
	}
	ctx->start_ns = clock_now_ns();
	int r = copy_load_paths(ctx, req, &rr);
	if (!r)
		r = run_restore_prepare(ctx, &rr, eb);
	if (r < 0) {
		free_load_paths(ctx);
		return r;
	}
	r = run_restore_build(ctx, &rr, eb);
	if (!r) {
		run_attach_api_devices(ctx);
		r = cli_confine_main();
		r = r ? r : machine_start(&ctx->machine, !req->resume_vm);
		if (r < 0)
			errbuf_set(eb, "the VM did not start (the log says why)");
	}
	if (r < 0) {
		run_end_after_failed_build(ctx, "snapshot load", eb);
		return r;
	}
	log_info("snapshot %s loaded (%u memory file%s), VM %s", rr.state, rr.n_mem_files,
		 rr.n_mem_files == 1 ? "" : "s", req->resume_vm ? "running" : "paused");
	return 0;
}

/* The keys reach a paused guest when it resumes. */
static int api_send_ctrl_alt_del(void *opaque)
{
	struct run_ctx *ctx = opaque;

	if (!ctx->machine.running)
		return -EAGAIN;
	int r = legacy_ctrl_alt_del(&ctx->machine.legacy);
	if (!r)
		log_info("Ctrl+Alt+Del sent to the guest");
	return r;
}

static const struct api_vm_ops api_vm = {
	.pause = api_pause, .resume = api_resume, .state = api_state,
	.snapshot_create = api_snapshot_create, .snapshot_load = api_snapshot_load,
	.set_boot_source = run_set_boot_source, .get_machine_config = run_get_machine_config,
	.set_machine_config = run_set_machine_config, .add_iface = run_add_iface,
	.set_mmds_config = run_set_mmds_config, .set_entropy = run_set_entropy,
	.set_vsock = run_set_vsock,
	.set_balloon = run_set_balloon, .get_balloon = run_get_balloon,
	.patch_balloon = run_patch_balloon, .get_balloon_stats = run_get_balloon_stats,
	.patch_balloon_stats = run_patch_balloon_stats,
	.add_drive = run_add_drive, .patch_drive = run_patch_drive,
	.start = run_instance_start, .send_ctrl_alt_del = api_send_ctrl_alt_del,
	.get_vm_config = run_get_vm_config,
};

/* --metrics-path: the API's metrics file from the start. */
static int start_metrics(struct run_ctx *ctx)
{
	struct errbuf eb = { 0 };

	if (!ctx->args->metrics_path || !ctx->api)
		return 0;
	int r = api_metrics_open_path(ctx->api, ctx->args->metrics_path, &eb);
	if (r < 0)
		log_err("--metrics-path: %s", eb.msg);
	return r;
}

/* The control API on the machine's loop, which every net device runs on,
 * so its calls into the devices never race their queue work. */
int run_start_api(struct run_ctx *ctx)
{
	struct net_device *devs[RUN_MAX_NETS];
	const struct run_args *a = ctx->args;
	const struct api_opts extra = { .vm = &api_vm, .vm_ctx = ctx,
					.vmm_version = KVMINI_VERSION,
					.fc_version = KVMINI_FC_COMPAT_VERSION,
					.instance_id = a->instance_id,
					.max_body_bytes = a->max_payload };
	int r;

	/* --config-file or --metrics-path without a socket: an API all the same
	 * (the file's requests go through it, the metrics come from it). */
	if (!a->net.api_sock && (a->config_file || a->metrics_path)) {
		struct errbuf eb = { 0 };
		ctx->api = api_start(&ctx->machine.loop, &extra, &eb);
		if (!ctx->api)
			log_err("%s: %s", a->config_file ? "--config-file" : "--metrics-path", eb.msg);
		r = ctx->api ? 0 : -ENOMEM;
	} else {
		for (unsigned i = 0; i < ctx->machine.n_nets; i++)
			devs[i] = ctx->machine.nets[i].dev;
		r = cli_net_controls_start_api(&a->net, &ctx->machine.loop, ctx->cfg.nets,
					       ctx->machine.n_nets, devs, ctx->mmds, &extra, &ctx->api);
	}
	/* A VM built from the command line has its devices already. */
	if (r >= 0 && ctx->api && !a->preboot && !a->config_file)
		attach_device_counters(ctx);
	return r < 0 ? r : start_metrics(ctx);
}

