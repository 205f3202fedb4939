/*
 * A VM configured before it starts (see run.h): the pre-boot API's
 * requests fill the same run_args the command line does (boot source,
 * machine size, interfaces on taps), and InstanceStart builds and starts
 * the machine from them the way a command-line boot does. Each request
 * after the start is refused with -EEXIST.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/run.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "vmm/vm.h"

/* A copy of @s in @slot of the boot strings (NULL stays NULL). */
static int keep(struct run_ctx *ctx, unsigned slot, const char *s, const char **out)
{
	free(ctx->boot_strings[slot]);
	ctx->boot_strings[slot] = s ? strdup(s) : NULL;
	if (s && !ctx->boot_strings[slot])
		return -ENOMEM;
	*out = ctx->boot_strings[slot];
	return 0;
}

int run_set_boot_source(void *opaque, const struct api_boot_source *bs, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct run_args *a = ctx->args;

	if (ctx->machine_tried)
		return -EEXIST;
	int r = run_readable("kernel_image_path", bs->kernel_image_path, eb);
	if (!r)
		r = run_readable("initrd_path", bs->initrd_path, eb);
	if (!r && bs->boot_args && strlen(bs->boot_args) >= LAYOUT_CMDLINE_MAX) {
		errbuf_set(eb, "boot_args: longer than %u bytes", LAYOUT_CMDLINE_MAX - 1);
		r = -EINVAL;
	}
	if (r < 0)
		return r;
	const char *cmdline = a->cmdline;
	r = keep(ctx, 0, bs->kernel_image_path, &a->kernel);
	if (!r)
		r = keep(ctx, 1, bs->initrd_path, &a->initrd);
	if (!r && bs->boot_args)
		r = keep(ctx, 2, bs->boot_args, &cmdline);
	a->cmdline = cmdline;
	ctx->api_configured = true;
	return r;
}

void run_get_machine_config(void *opaque, struct api_machine_config *mc)
{
	const struct run_args *a = ((struct run_ctx *)opaque)->args;

	*mc = (struct api_machine_config){ .vcpu_count = a->cpus, .mem_size_mib = a->mem_mib,
					   .track_dirty_pages = a->track_dirty_pages };
}

int run_set_machine_config(void *opaque, const struct api_machine_config *mc,
			   struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct run_args *a = ctx->args;

	if (ctx->machine_tried)
		return -EEXIST;
	if (mc->vcpu_count < 1 || mc->vcpu_count > VM_MAX_VCPUS) {
		errbuf_set(eb, "vcpu_count %llu: kvmini runs 1 to %u vCPUs",
			   (unsigned long long)mc->vcpu_count, VM_MAX_VCPUS);
		return -EINVAL;
	}
	if (mc->mem_size_mib < RUN_MEM_MIN_MIB || mc->mem_size_mib > RUN_MEM_MAX_MIB) {
		errbuf_set(eb, "mem_size_mib %llu: kvmini runs %lu to %lu MiB",
			   (unsigned long long)mc->mem_size_mib, RUN_MEM_MIN_MIB, RUN_MEM_MAX_MIB);
		return -EINVAL;
	}
	if (a->balloon && mc->mem_size_mib < a->balloon_opts.amount_mib) {
		errbuf_set(eb, "The memory size (MiB) is smaller than the previously set balloon "
			   "device target size.");
		return -EINVAL;
	}
	a->cpus = (unsigned long)mc->vcpu_count;
	a->mem_mib = (unsigned long)mc->mem_size_mib;
	a->track_dirty_pages = mc->track_dirty_pages;
	ctx->api_configured = true;
	return 0;
}

/* Whether MMDS, once on, answers on interface @i: one named by
 * --mmds-iface or PUT /mmds/config, else the first (as
 * cli_net_controls_check decides at the start). */
static bool mmds_answers_on(const struct cli_net_controls *c, unsigned i)
{
	if (!c->n_mmds_iface)
		return i == 0;
	for (unsigned k = 0; k < c->n_mmds_iface; k++)
		if (!strcmp(c->mmds_iface[k], c->ifaces[i].id))
			return true;
	return false;
}

/* GET /vm/config: what the command line and the pre-boot requests set. */
void run_get_vm_config(void *opaque, struct api_vm_config *out)
{
	const struct run_args *a = ((struct run_ctx *)opaque)->args;
	const struct cli_net_controls *c = &a->net;

	out->boot = (struct api_boot_source){ .kernel_image_path = a->kernel,
					      .initrd_path = a->initrd, .boot_args = a->cmdline };
	out->n_ifaces = MIN(c->n_ifaces, (unsigned)API_MAX_IFACES);
	out->mmds_on = ((struct run_ctx *)opaque)->mmds_on;
	out->entropy = a->entropy;
	out->entropy_limit = a->entropy_limit;
	run_get_balloon(opaque, &out->balloon_cfg);
	out->balloon = a->balloon;
	out->vsock = a->vsock.on;
	out->vsock_cfg = (struct api_vsock_config){ .guest_cid = a->vsock.cid,
						    .uds_path = a->vsock.path };
	out->n_drives = MIN(a->n_drives, (unsigned)ARRAY_SIZE(out->drives));
	for (unsigned i = 0; i < out->n_drives; i++) {
		const struct run_drive *d = &a->drives[i];
		out->drives[i] = (struct api_drive_config){
			.drive_id = d->id, .path_on_host = d->path, .is_root_device = d->root,
			.is_read_only = d->read_only, .partuuid = d->partuuid[0] ? d->partuuid : NULL,
			.limit = d->limit };
	}
	for (unsigned i = 0; i < out->n_ifaces; i++) {
		const struct net_iface_config *ifc = &c->ifaces[i];
		struct api_net_config *nc = &out->ifaces[i];
		*nc = (struct api_net_config){ .iface_id = ifc->id,
					       .host_dev_name = net_iface_host_dev_name(ifc),
					       .mac_given = ifc->mac_given,
					       .mmds = out->mmds_on && mmds_answers_on(c, i) };
		memcpy(nc->mac, ifc->mac, sizeof(nc->mac));
		nc->limit[NET_RX_QUEUE] = ifc->limit[NET_RX_QUEUE];
		nc->limit[NET_TX_QUEUE] = ifc->limit[NET_TX_QUEUE];
	}
}

/* --- interfaces --------------------------------------------------------------------- */

/* The interface @nc may become: the one with its id (a PUT replaces it, as
 * in Firecracker), else a new one; NULL with why when it cannot. */
static struct net_iface_config *iface_slot(struct cli_net_controls *c,
					   const struct api_net_config *nc, unsigned *index,
					   struct errbuf *eb)
{
	for (unsigned i = 0; i < c->n_ifaces; i++) {
		struct net_iface_config *ifc = &c->ifaces[i];
		if (!strcmp(ifc->id, nc->iface_id)) {
			*index = i;
			return ifc;
		}
	}
	if (c->n_ifaces >= RUN_MAX_NETS) {
		errbuf_set(eb, "kvmini runs at most %u network interfaces", RUN_MAX_NETS);
		return NULL;
	}
	*index = c->n_ifaces;
	return &c->ifaces[c->n_ifaces];
}

/* Another interface already on @nc's tap or with its MAC: refused, as
 * Firecracker does (two devices on one tap would steal each other's frames). */
static bool clashes(const struct run_ctx *ctx, const struct api_net_config *nc, unsigned self,
		    struct errbuf *eb)
{
	const struct cli_net_controls *c = &ctx->args->net;

	for (unsigned i = 0; i < c->n_ifaces; i++) {
		const struct net_iface_config *o = &c->ifaces[i];
		if (i == self)
			continue;
		const char *tap = net_iface_host_dev_name(o);
		if (tap && !strcmp(tap, nc->host_dev_name)) {
			errbuf_set(eb, "the host device %s is already used by %s", nc->host_dev_name,
				   o->id);
			return true;
		}
		if (nc->mac_given && o->mac_given && !memcmp(o->mac, nc->mac, 6)) {
			errbuf_set(eb, "the guest MAC address is already used by %s", o->id);
			return true;
		}
	}
	return false;
}

int run_add_iface(void *opaque, const struct api_net_config *nc, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct cli_net_controls *c = &ctx->args->net;
	unsigned i;

	if (ctx->machine_tried)
		return -EEXIST;
	if (strlen(nc->iface_id) > NET_IFACE_ID_MAX) {
		errbuf_set(eb, "iface_id: longer than %u characters", NET_IFACE_ID_MAX);
		return -EINVAL;
	}
	const char *dev = nc->host_dev_name;
	if (!*dev || strlen(dev) >= IFNAMSIZ || strchr(dev, '/')) {
		errbuf_set(eb, "host_dev_name \"%s\": not an interface name (1 to %u bytes)", dev,
			   IFNAMSIZ - 1);
		return -EINVAL;
	}
	struct net_iface_config *ifc = iface_slot(c, nc, &i, eb);
	if (!ifc || clashes(ctx, nc, i, eb))
		return -EINVAL;
	snprintf(ctx->api_backends[i], sizeof(ctx->api_backends[i]), "tap:%s", dev);
	*ifc = (struct net_iface_config){ .backend = ctx->api_backends[i], .id_given = true,
					  .mac_given = nc->mac_given };
	snprintf(ifc->id, sizeof(ifc->id), "%s", nc->iface_id);
	memcpy(ifc->mac, nc->mac, sizeof(ifc->mac));
	memcpy(ifc->limit, nc->limit, sizeof(ifc->limit));
	if (i == c->n_ifaces)
		c->n_ifaces++;
	ctx->api_configured = true;
	return 0;
}

/* --- the metadata service -------------------------------------------------------------- */

/* The interface of the VM with id @id, NULL when it has none. */
static const struct net_iface_config *iface_named(const struct cli_net_controls *c,
						  const char *id)
{
	for (unsigned i = 0; i < c->n_ifaces; i++)
		if (!strcmp(c->ifaces[i].id, id))
			return &c->ifaces[i];
	return NULL;
}

/* PUT /mmds/config before the start, as Firecracker takes it: the
 * interfaces must be configured already; MMDS is then on for them (the
 * interceptor goes in front of each when the machine is built), at any
 * link-local address. */
int run_set_mmds_config(void *opaque, const struct api_mmds_config *mc, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct cli_net_controls *c = &ctx->args->net;
	const char *names[CLI_NET_MAX_IFACES];

	if (ctx->machine_tried)
		return -EEXIST;
	for (unsigned i = 0; i < mc->n_ifaces; i++) {
		const struct net_iface_config *ifc =
			i < CLI_NET_MAX_IFACES ? iface_named(c, mc->ifaces[i]) : NULL;
		if (!ifc) {
			errbuf_set(eb, "network_interfaces[%u]: no interface \"%s\" (PUT "
				   "/network-interfaces/{id} first)", i, mc->ifaces[i]);
			return -EINVAL;
		}
		names[i] = ifc->id;             /* the interface's own copy of its name */
	}
	struct mmds_config cur, cfg = mc->cfg;
	mmds_get_config(ctx->mmds, &cur);
	cfg.store_limit = cur.store_limit;         /* --mmds-size-limit's, not the API's */
	if (mmds_set_config(ctx->mmds, &cfg) < 0) {
		errbuf_set(eb, "the MMDS configuration was refused");
		return -EINVAL;
	}
	c->mmds.enabled = true;
	c->mmds.cfg = cfg;
	memcpy(c->mmds_iface, names, mc->n_ifaces * sizeof(names[0]));
	c->n_mmds_iface = mc->n_ifaces;
	ctx->mmds_on = true;
	ctx->api_configured = true;
	return 0;
}

/* --- the entropy device ------------------------------------------------------------------- */

/* PUT /entropy before the start: a virtio-rng device behind @limit (a second
 * PUT replaces the first, as in Firecracker). */
int run_set_entropy(void *opaque, const struct rate_limiter_config *limit, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct run_args *a = ctx->args;

	if (ctx->machine_tried)
		return -EEXIST;
	if (!rate_limiter_config_valid(limit)) {
		errbuf_set(eb, "rate_limiter: a bucket out of range");
		return -EINVAL;
	}
	a->entropy = true;
	a->entropy_limit = *limit;
	ctx->api_configured = true;
	return 0;
}

/* --- the vsock device ---------------------------------------------------------------------- */

/* PUT /vsock before the start: the socket file is made now, as Firecracker
 * makes it; a second PUT replaces the first (its socket closed, its file
 * removed) and makes the file again. */
int run_set_vsock(void *opaque, const struct api_vsock_config *vc, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct run_vsock *v = &ctx->args->vsock;

	if (ctx->machine_tried)
		return -EEXIST;
	if (!virtio_vsock_cid_valid(vc->guest_cid)) {
		errbuf_set(eb, "guest_cid %llu: must be 3 to %u",
			   (unsigned long long)vc->guest_cid, UINT32_MAX);
		return -EINVAL;
	}
	if (!*vc->uds_path) {
		errbuf_set(eb, "uds_path is empty");
		return -EINVAL;
	}
	int fd = vsock_uds_listen(vc->uds_path, eb);
	if (fd < 0)                  /* -EEXIST would read as "after the start" */
		return fd == -EEXIST ? -EINVAL : fd;
	if (v->listen_fd >= 0) {
		close(v->listen_fd);
		if (strcmp(v->path, vc->uds_path))
			unlink(v->path);
	}
	*v = (struct run_vsock){ .on = true, .cid = vc->guest_cid, .listen_fd = fd };
	snprintf(v->path, sizeof(v->path), "%s", vc->uds_path);
	ctx->api_configured = true;
	return 0;
}

/* --- InstanceStart ---------------------------------------------------------------------- */

int run_instance_start(void *opaque, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct run_args *a = ctx->args;

	if (ctx->machine_tried)
		return -EEXIST;
	if (!a->kernel) {
		errbuf_set(eb, "no kernel to boot: PUT /boot-source {\"kernel_image_path\": ...} "
			   "first");
		return -EINVAL;
	}
	/* Random MACs for the interfaces that named none, unique ids. */
	if (cli_net_controls_check(&a->net) < 0) {
		errbuf_set(eb, "the interfaces do not fit together (the log says why)");
		return -EINVAL;
	}
	ctx->start_ns = clock_now_ns();
	run_configure(ctx);
	int r = run_build_machine(ctx);
	if (!r) {
		run_attach_api_devices(ctx);
		r = cli_confine_main();
		r = r ? r : machine_start(&ctx->machine, false);
	}
	if (r < 0) {
		errbuf_set(eb, "the machine could not be built or started (the log says why)");
		run_end_after_failed_build(ctx, "InstanceStart", eb);
		return r;
	}
	log_info("InstanceStart: %s, %lu vCPU%s, %lu MiB, %u interface%s", a->kernel, a->cpus,
		 a->cpus == 1 ? "" : "s", a->mem_mib, a->net.n_ifaces, a->net.n_ifaces == 1 ? "" : "s");
	return 0;
}
