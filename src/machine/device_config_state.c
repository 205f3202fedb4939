/* A snapshot's device configuration, "DEVC" (see device_config_state.h). */
#include "machine/device_config_state.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "blk/blk_image.h"
#include "fs/dax_window.h"
#include "fs/virtio_fs.h"

/* --- save ------------------------------------------------------------------ */

static void save_net(const struct net_iface_config *n, struct state_writer *w)
{
	state_put_str(w, n->id);
	state_put_str(w, n->backend);
	state_put_u16(w, n->mtu);
	state_put_bool(w, n->mmds);
}

static void save_fs(const struct machine_fs_config *f, struct state_writer *w)
{
	const struct fs_share_config *s = &f->share;

	state_put_u32(w, (uint32_t)s->backend);
	state_put_str(w, s->dir ? s->dir : "");
	state_put_str(w, f->dev.tag);
	state_put_u32(w, f->dev.request_queues);
	state_put_u32(w, f->dev.threads);
	state_put_u32(w, (uint32_t)s->server.cache);
	state_put_u32(w, s->server.max_write);
	state_put_u32(w, s->server.max_readahead);
	state_put_u32(w, s->pt.max_fds);
	state_put_bool(w, s->pt.squash);
	state_put_u32(w, s->pt.squash_uid);
	state_put_u32(w, s->pt.squash_gid);
	state_put_bool(w, s->pt.xattr_all);
	state_put_bool(w, s->no_notify);
	state_put_u32(w, s->watch.max_watches);
}

static void save_bucket(const struct token_bucket_config *b, struct state_writer *w)
{
	state_put_u64(w, b->size);
	state_put_u64(w, b->one_time_burst);
	state_put_u64(w, b->refill_time);
}

static void save_entropy(const struct rate_limiter_config *limit, struct state_writer *w)
{
	state_begin(w, "DEVR");
	save_bucket(&limit->bandwidth, w);
	save_bucket(&limit->ops, w);
	state_end(w);
}

static void save_vsock(const struct virtio_vsock_opts *v, struct state_writer *w)
{
	state_begin(w, "DEVV");
	state_put_u64(w, v->guest_cid);
	state_put_str(w, v->uds_path);
	state_end(w);
}

/* The balloon as configured (PUT /balloon, --balloon); its target and
 * interval as PATCH left them are the device's own section's ("VBAL"). */
static void save_balloon(const struct virtio_balloon_opts *o, struct state_writer *w)
{
	state_begin(w, "DEVL");
	state_put_u32(w, o->amount_mib);
	state_put_bool(w, o->deflate_on_oom);
	state_put_u16(w, o->stats_polling_interval_s);
	state_end(w);
}

static void save_drives(const struct machine_config *cfg, const uint64_t *sectors,
			struct state_writer *w)
{
	state_begin(w, "DEVB");
	state_put_u32(w, cfg->n_drives);
	for (unsigned i = 0; i < cfg->n_drives; i++) {
		const struct machine_drive_config *d = &cfg->drives[i];
		state_put_str(w, d->id);
		state_put_str(w, d->path);
		state_put_str(w, d->partuuid);
		state_put_bool(w, d->read_only);
		state_put_bool(w, d->root);
		save_bucket(&d->limit.bandwidth, w);
		save_bucket(&d->limit.ops, w);
		state_put_u64(w, sectors[i]);
	}
	state_end(w);
}

/* "DEVX": each share's DAX window size (0: none), when one has a window.
 * A section of its own so that snapshots without windows read as before. */
static void save_dax(const struct machine_config *cfg, struct state_writer *w)
{
	bool any = false;

	for (unsigned i = 0; i < cfg->n_fs; i++)
		any |= cfg->fs[i].dev.dax_bytes != 0;
	if (!any)
		return;
	state_begin(w, "DEVX");
	state_put_u32(w, cfg->n_fs);
	for (unsigned i = 0; i < cfg->n_fs; i++)
		state_put_u64(w, cfg->fs[i].dev.dax_bytes);
	state_end(w);
}

void device_config_save(const struct machine_config *cfg, const uint64_t *drive_sectors,
			struct state_writer *w)
{
	state_begin(w, "DEVC");
	state_put_u32(w, cfg->n_nets);
	for (unsigned i = 0; i < cfg->n_nets; i++)
		save_net(&cfg->nets[i], w);
	state_put_u32(w, cfg->n_fs);
	for (unsigned i = 0; i < cfg->n_fs; i++)
		save_fs(&cfg->fs[i], w);
	/* Later fields, after every share so that a section without them
	 * (an older kvmini's) still reads: each share's dev-nodes. */
	for (unsigned i = 0; i < cfg->n_fs; i++)
		state_put_bool(w, cfg->fs[i].share.pt.dev_nodes);
	state_end(w);
	if (cfg->entropy)
		save_entropy(cfg->entropy, w);
	if (cfg->vsock)
		save_vsock(cfg->vsock, w);
	if (cfg->balloon)
		save_balloon(cfg->balloon, w);
	if (cfg->n_drives)
		save_drives(cfg, drive_sectors, w);
	save_dax(cfg, w);
}

/* --- load ------------------------------------------------------------------ */

static bool id_valid(const char *id)
{
	return *id && !strchr(id, '/');
}

static void load_bucket(struct state_reader *sec, struct token_bucket_config *b);

static bool load_net(struct state_reader *sec, unsigned i, struct saved_devices *d)
{
	struct net_iface_config *c = &d->nets[i];
	char *backend = d->net_backend[i];

	*c = (struct net_iface_config){ 0 };
	if (!state_get_str(sec, c->id, sizeof(c->id)) ||
	    !state_get_str(sec, backend, DEVICE_CONFIG_SPEC_MAX))
		return false;
	c->backend = backend;
	c->id_given = true;
	c->mtu = state_get_u16(sec);
	c->mmds = state_get_bool(sec);
	if (sec->failed)
		return false;
	if (!id_valid(c->id))
		return state_fail(sec, "interface %u: the id \"%s\" is empty or holds a '/'", i, c->id);
	if (!backend[0])
		return state_fail(sec, "interface %s: no backend", c->id);
	if (c->mtu && c->mtu < NET_IFACE_MTU_MIN)
		return state_fail(sec, "interface %s: MTU %u (at least %u)", c->id, c->mtu,
				  NET_IFACE_MTU_MIN);
	return true;
}

/* The numbers of a share, each in the range its option takes. */
static bool check_fs_numbers(struct state_reader *sec, const struct machine_fs_config *f)
{
	if (f->dev.request_queues > VIRTIO_FS_MAX_REQUEST_QUEUES)
		return state_fail(sec, "share %s: %u request queues (at most %u)", f->dev.tag,
				  f->dev.request_queues, VIRTIO_FS_MAX_REQUEST_QUEUES);
	if (f->dev.threads > VIRTIO_FS_MAX_THREADS)
		return state_fail(sec, "share %s: %u threads (at most %u)", f->dev.tag,
				  f->dev.threads, VIRTIO_FS_MAX_THREADS);
	if (f->share.server.cache > FUSE_CACHE_ALWAYS)
		return state_fail(sec, "share %s: cache policy %u", f->dev.tag,
				  (unsigned)f->share.server.cache);
	return true;
}

static bool load_fs(struct state_reader *sec, unsigned i, struct saved_devices *d)
{
	struct machine_fs_config *f = &d->fs[i];
	struct fs_share_config *s = &f->share;
	char *dir = d->fs_dir[i], *tag = d->fs_tag[i];
	uint32_t backend = state_get_u32(sec);

	*f = (struct machine_fs_config){ .share = FS_SHARE_CONFIG_DEFAULT };
	if (!state_get_str(sec, dir, PATH_MAX) || !state_get_str(sec, tag, VIRTIO_FS_TAG_LEN + 1))
		return false;
	s->dir = dir;
	f->dev.tag = tag;
	f->dev.request_queues = state_get_u32(sec);
	f->dev.threads = state_get_u32(sec);
	s->server.cache = (enum fuse_cache_policy)state_get_u32(sec);
	s->server.max_write = state_get_u32(sec);
	s->server.max_readahead = state_get_u32(sec);
	s->pt.max_fds = state_get_u32(sec);
	s->pt.squash = state_get_bool(sec);
	s->pt.squash_uid = state_get_u32(sec);
	s->pt.squash_gid = state_get_u32(sec);
	s->pt.xattr_all = state_get_bool(sec);
	s->no_notify = state_get_bool(sec);
	s->watch.max_watches = state_get_u32(sec);
	if (sec->failed)
		return false;
	/* A memfs share's files live in kvmini's memory, not in the snapshot. */
	if (backend != FS_SHARE_PASSTHROUGH)
		return state_fail(sec, "share %s: backend %u (only host directories are restored)",
				  tag, backend);
	if (dir[0] != '/')
		return state_fail(sec, "share %s: the directory \"%s\" is not absolute", tag, dir);
	if (virtio_fs_check_tag(tag) < 0)
		return state_fail(sec, "a share's tag \"%s\" is not 1 to %u bytes", tag,
				  VIRTIO_FS_TAG_LEN);
	return check_fs_numbers(sec, f);
}

/* No two interfaces share an id: the API finds them by it. */
static bool ids_unique(struct state_reader *sec, const struct saved_devices *d)
{
	for (unsigned i = 0; i < d->n_nets; i++)
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(d->nets[i].id, d->nets[j].id))
				return state_fail(sec, "two interfaces are called \"%s\"",
						  d->nets[i].id);
	return true;
}

static void load_bucket(struct state_reader *sec, struct token_bucket_config *b)
{
	b->size = state_get_u64(sec);
	b->one_time_burst = state_get_u64(sec);
	b->refill_time = state_get_u64(sec);
}

/* "DEVR", when the next section is it: the entropy device's limiter. */
static bool load_entropy(struct state_reader *r, struct saved_devices *out)
{
	struct state_reader sec;
	char tag[5];

	state_peek_tag(r, tag);
	if (strcmp(tag, "DEVR"))
		return true;
	if (!state_section(r, "DEVR", &sec))
		return false;
	load_bucket(&sec, &out->entropy.bandwidth);
	load_bucket(&sec, &out->entropy.ops);
	if (!sec.failed && !rate_limiter_config_valid(&out->entropy))
		state_fail(&sec, "the entropy device's rate limiter is out of range");
	out->has_entropy = !sec.failed;
	return state_section_done(r, &sec);
}

/* The next section is @tag (an optional one that is present). */
static bool next_is(struct state_reader *r, const char *tag)
{
	char next[5];

	state_peek_tag(r, next);
	return !strcmp(next, tag);
}

/* "DEVV", when the next section is it: the vsock device. */
static bool load_vsock(struct state_reader *r, struct saved_devices *out)
{
	struct state_reader sec;

	if (!next_is(r, "DEVV"))
		return true;
	if (!state_section(r, "DEVV", &sec))
		return false;
	out->vsock_cid = state_get_u64(&sec);
	state_get_str(&sec, out->vsock_path, sizeof(out->vsock_path));
	if (!sec.failed && !virtio_vsock_cid_valid(out->vsock_cid))
		state_fail(&sec, "the vsock device's guest CID %llu (3 to %u)",
			   (unsigned long long)out->vsock_cid, UINT32_MAX);
	if (!sec.failed && !out->vsock_path[0])
		state_fail(&sec, "the vsock device has no socket path");
	out->has_vsock = !sec.failed;
	return state_section_done(r, &sec);
}

/* "DEVL", when the next section is it: the balloon. Its target against
 * guest memory is checked with "MACH" (machine_snapshot.c). */
static bool load_balloon(struct state_reader *r, struct saved_devices *out)
{
	struct state_reader sec;

	if (!next_is(r, "DEVL"))
		return true;
	if (!state_section(r, "DEVL", &sec))
		return false;
	out->balloon.amount_mib = state_get_u32(&sec);
	out->balloon.deflate_on_oom = state_get_bool(&sec);
	out->balloon.stats_polling_interval_s = state_get_u16(&sec);
	out->has_balloon = !sec.failed;
	return state_section_done(r, &sec);
}

static bool load_drive(struct state_reader *sec, struct saved_drive *d)
{
	if (!state_get_str(sec, d->id, sizeof(d->id)) ||
	    !state_get_str(sec, d->path, sizeof(d->path)) ||
	    !state_get_str(sec, d->partuuid, sizeof(d->partuuid)))
		return false;
	d->read_only = state_get_bool(sec);
	d->root = state_get_bool(sec);
	load_bucket(sec, &d->limit.bandwidth);
	load_bucket(sec, &d->limit.ops);
	d->sectors = state_get_u64(sec);
	if (sec->failed)
		return false;
	if (!id_valid(d->id))
		return state_fail(sec, "a drive's id \"%s\" is empty or holds a '/'", d->id);
	if (!d->path[0])
		return state_fail(sec, "drive %s: no image path", d->id);
	if (!rate_limiter_config_valid(&d->limit))
		return state_fail(sec, "drive %s: the rate limiter is out of range", d->id);
	return true;
}

/* The root drive, if any, comes first (the machine's order); ids unique. */
static bool drives_consistent(struct state_reader *sec, const struct saved_devices *d)
{
	for (unsigned i = 0; i < d->n_drives; i++) {
		if (d->drives[i].root && i)
			return state_fail(sec, "drive %s is the root but not the first",
					  d->drives[i].id);
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(d->drives[i].id, d->drives[j].id))
				return state_fail(sec, "two drives are called \"%s\"",
						  d->drives[i].id);
	}
	return true;
}

/* "DEVB", when the next section is it: the drives. */
static bool load_drives(struct state_reader *r, struct saved_devices *out)
{
	struct state_reader sec;

	if (!next_is(r, "DEVB"))
		return true;
	if (!state_section(r, "DEVB", &sec))
		return false;
	uint32_t n = state_get_u32(&sec);
	if (!sec.failed && (!n || n > MACHINE_MAX_DRIVES))
		state_fail(&sec, "%u drives (1 to %u)", n, MACHINE_MAX_DRIVES);
	for (unsigned i = 0; !sec.failed && i < n; i++)
		if (load_drive(&sec, &out->drives[i]))
			out->n_drives++;
	if (!sec.failed)
		drives_consistent(&sec, out);
	return state_section_done(r, &sec);
}

/* "DEVX", when the next section is it: the shares' DAX windows, one per
 * share of DEVC, each 0 or a size the window takes. */
static bool load_dax(struct state_reader *r, struct saved_devices *out)
{
	struct state_reader sec;

	if (!next_is(r, "DEVX"))
		return true;
	if (!state_section(r, "DEVX", &sec))
		return false;
	uint32_t n = state_get_u32(&sec);
	bool any = false;

	if (!sec.failed && n != out->n_fs)
		state_fail(&sec, "DAX windows for %u shares, the snapshot has %u", n, out->n_fs);
	for (unsigned i = 0; !sec.failed && i < n; i++) {
		uint64_t bytes = state_get_u64(&sec);
		if (!sec.failed && bytes && !dax_window_size_valid(bytes))
			state_fail(&sec, "share %s: a DAX window of %llu bytes", out->fs_tag[i],
				   (unsigned long long)bytes);
		out->fs[i].dev.dax_bytes = bytes;
		any |= bytes != 0;
	}
	/* Written only when a share has a window: one encoding of "none". */
	if (!sec.failed && !any)
		state_fail(&sec, "no share has a DAX window");
	return state_section_done(r, &sec);
}

bool device_config_load(struct state_reader *r, struct saved_devices *out)
{
	struct state_reader sec;

	out->n_nets = out->n_fs = out->n_drives = 0;
	out->has_entropy = out->has_vsock = out->has_balloon = false;
	if (!state_section(r, "DEVC", &sec))
		return false;
	uint32_t n = state_get_u32(&sec);
	if (!sec.failed && n > MACHINE_MAX_NETS)
		state_fail(&sec, "%u interfaces (at most %u)", n, MACHINE_MAX_NETS);
	for (unsigned i = 0; !sec.failed && i < n; i++)
		if (load_net(&sec, i, out))
			out->n_nets++;
	n = state_get_u32(&sec);
	if (!sec.failed && n > MACHINE_MAX_FS)
		state_fail(&sec, "%u shares (at most %u)", n, MACHINE_MAX_FS);
	for (unsigned i = 0; !sec.failed && i < n; i++)
		if (load_fs(&sec, i, out))
			out->n_fs++;
	/* Absent in an older kvmini's section: no device nodes then. */
	for (unsigned i = 0; !sec.failed && sec.off < sec.len && i < out->n_fs; i++)
		out->fs[i].share.pt.dev_nodes = state_get_bool(&sec);
	if (!sec.failed)
		ids_unique(&sec, out);
	return state_section_done(r, &sec) && load_entropy(r, out) && load_vsock(r, out) &&
	       load_balloon(r, out) && load_drives(r, out) && load_dax(r, out);
}

/* --- use --------------------------------------------------------------------- */

void device_config_apply(struct saved_devices *d, struct machine_config *cfg)
{
	cfg->nets = d->nets;
	cfg->n_nets = d->n_nets;
	cfg->fs = d->fs;
	cfg->n_fs = d->n_fs;
	cfg->entropy = d->has_entropy ? &d->entropy : NULL;
}

/* A tap's name as the kernel takes it. */
static bool tap_name_valid(const char *name)
{
	return *name && strlen(name) < IFNAMSIZ && !strchr(name, '/') && !strchr(name, ' ');
}

int device_config_override_net(struct saved_devices *d, const char *id, const char *tap,
			       const uint8_t *mac)
{
	for (unsigned i = 0; i < d->n_nets; i++) {
		struct net_iface_config *n = &d->nets[i];
		if (strcmp(n->id, id))
			continue;
		if (tap && (strncmp(n->backend, "tap:", 4) || !tap_name_valid(tap)))
			return -EINVAL;
		if (tap)
			snprintf(d->net_backend[i], DEVICE_CONFIG_SPEC_MAX, "tap:%s", tap);
		if (mac) {
			memcpy(n->mac, mac, sizeof(n->mac));
			n->mac_given = true;
		}
		return 0;
	}
	return -ENOENT;
}

int device_config_override_fs(struct saved_devices *d, const char *tag, const char *dir)
{
	for (unsigned i = 0; i < d->n_fs; i++) {
		if (strcmp(d->fs_tag[i], tag))
			continue;
		if (dir[0] != '/' || strlen(dir) >= sizeof(d->fs_dir[i]))
			return -EINVAL;
		snprintf(d->fs_dir[i], sizeof(d->fs_dir[i]), "%s", dir);
		return 0;
	}
	return -ENOENT;
}

int device_config_check_drive(const struct saved_devices *d, unsigned i, struct errbuf *eb)
{
	const struct saved_drive *sd = &d->drives[i];
	struct blk_image img;
	struct errbuf why = { 0 };

	int r = blk_image_open(&img, sd->path, sd->read_only, sd->id, &why);
	if (r < 0) {
		errbuf_set(eb, "drive %s: its image cannot be reopened: %s", sd->id, why.msg);
		return r;
	}
	uint64_t now = img.sectors;
	blk_image_close(&img);
	if (now != sd->sectors) {
		/* The guest's driver holds the old capacity; its file system
		 * would read past the end or miss what it wrote. */
		errbuf_set(eb, "drive %s: the image %s has %llu sectors, the snapshot's drive had "
			   "%llu: it is not the image the snapshot was taken with", sd->id, sd->path,
			   (unsigned long long)now, (unsigned long long)sd->sectors);
		return -EINVAL;
	}
	return 0;
}
