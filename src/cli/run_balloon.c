/*
 * `kvmini run`'s balloon as the control API sees it (api_vm_ops, see
 * run.h): PUT /balloon fills run_args before the start, the rest reads or
 * changes the built machine's device. Loop thread, as every API call.
 */
#include <errno.h>
#include <string.h>

#include "cli/run.h"
#include "core/compiler.h"

_Static_assert(API_BALLOON_STAT_TAGS == VIRTIO_BALLOON_STAT_TAGS,
	       "the API shows every statistic the device keeps");

/* The built machine's balloon; NULL before the start or without one. */
static struct virtio_balloon *device_of(struct run_ctx *ctx)
{
	return ctx->machine_tried ? ctx->machine.balloon : NULL;
}

int run_set_balloon(void *opaque, const struct api_balloon_config *bc, struct errbuf *eb)
{
	struct run_ctx *ctx = opaque;
	struct run_args *a = ctx->args;

	if (ctx->machine_tried)
		return -EEXIST;
	/* Firecracker's rule: the target fits in the memory configured now. */
	if (bc->amount_mib > a->mem_mib) {
		errbuf_set(eb, "Amount of pages requested is too large.");
		return -EINVAL;
	}
	a->balloon = true;
	a->balloon_opts = (struct virtio_balloon_opts){
		.amount_mib = bc->amount_mib, .deflate_on_oom = bc->deflate_on_oom,
		.stats_polling_interval_s = bc->stats_polling_interval_s };
	ctx->api_configured = true;
	return 0;
}

int run_get_balloon(void *opaque, struct api_balloon_config *out)
{
	struct run_ctx *ctx = opaque;
	const struct virtio_balloon *b = device_of(ctx);
	const struct virtio_balloon_opts *o = &ctx->args->balloon_opts;

	if (!ctx->args->balloon)
		return -ENODEV;
	*out = (struct api_balloon_config){ .amount_mib = o->amount_mib,
					    .deflate_on_oom = o->deflate_on_oom,
					    .stats_polling_interval_s = o->stats_polling_interval_s };
	if (b) {             /* what PATCH made of it since */
		out->amount_mib = b->num_pages / VIRTIO_BALLOON_PAGES_PER_MIB;
		out->stats_polling_interval_s = b->stats_interval_s;
	}
	return 0;
}

/* The running machine's balloon: 0, -EAGAIN before the start, -ENODEV. */
static int running_balloon(struct run_ctx *ctx, struct virtio_balloon **b)
{
	if (!ctx->machine.running)
		return -EAGAIN;
	*b = device_of(ctx);
	return *b ? 0 : -ENODEV;
}

int run_patch_balloon(void *opaque, uint32_t amount_mib, struct errbuf *eb)
{
	struct virtio_balloon *b;
	int r = running_balloon(opaque, &b);

	if (r < 0)
		return r;
	r = virtio_balloon_set_target(b, amount_mib);
	if (r == -EAGAIN)
		errbuf_set(eb, "Balloon: Device not activated yet.");
	else if (r < 0)
		errbuf_set(eb, "Balloon: Requested memory should be less than %lluMiB",
			   (unsigned long long)(b->mem_bytes >> 20));
	return r == -EAGAIN ? -EBUSY : r;
}

int run_get_balloon_stats(void *opaque, struct api_balloon_stats *out, struct errbuf *eb)
{
	struct virtio_balloon *b;
	int r = running_balloon(opaque, &b);

	if (r < 0)
		return r;
	if (!virtio_balloon_stats_enabled(b)) {
		errbuf_set(eb, "Balloon: Received stats query when stats are disabled.");
		return -EPERM;
	}
	*out = (struct api_balloon_stats){ .target_pages = b->num_pages,
					   .actual_pages = b->actual, .seen = b->stats.seen };
	memcpy(out->val, b->stats.val, sizeof(out->val));
	return 0;
}

int run_patch_balloon_stats(void *opaque, uint16_t interval_s, struct errbuf *eb)
{
	struct virtio_balloon *b;
	int r = running_balloon(opaque, &b);

	if (r < 0)
		return r;
	r = virtio_balloon_set_stats_interval(b, interval_s);
	if (r < 0)
		errbuf_set(eb, "Balloon: Statistics cannot be enabled/disabled after activation.");
	return r;
}
