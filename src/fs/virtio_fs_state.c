/*
 * The virtio-fs device in a snapshot (see virtio_fs.h).
 *
 * Section "VFSD" (little-endian, state_io.h):
 *   str tag, u32 request queues, u8 notification offered,
 *   u8 notification negotiated, u32 counter count, u64 per counter (in
 *   the order of VIRTIO_FS_COUNTERS)
 * then the FUSE server's sections (with a DAX window, its mappings last:
 * fuse_dax_state.c).
 */
#include <errno.h>
#include <string.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "fs/virtio_fs.h"

#define VFS_STATE_TAG "VFSD"

/* The counters are all u64 (COUNTER_FIELD). */
enum { VFS_NCOUNTERS = sizeof(struct virtio_fs_counters) / sizeof(uint64_t) };

struct vfs_saved {
	char tag[VIRTIO_FS_TAG_LEN + 1];
	uint32_t request_queues;
	bool offered, negotiated;
	uint64_t counters[VFS_NCOUNTERS];
};

/* Paused at a request boundary: a hold on the gate and no worker inside. */
static bool at_boundary(struct virtio_fs *fs)
{
	pause_gate_lock(&fs->gate);
	bool ok = fs->gate.holds > 0 && fs->gate.busy == 0;
	pause_gate_unlock(&fs->gate);
	return ok;
}

static void put_device(struct virtio_fs *fs, struct state_writer *w)
{
	char tag[VIRTIO_FS_TAG_LEN + 1] = { 0 };
	struct virtio_fs_counters c;

	memcpy(tag, fs->tag, VIRTIO_FS_TAG_LEN);
	virtio_fs_get_counters(fs, &c);
	state_begin(w, VFS_STATE_TAG);
	state_put_str(w, tag);
	state_put_u32(w, fs->request_queues);
	state_put_bool(w, fs->offer_notification);
	state_put_bool(w, load_relaxed(&fs->notify_negotiated));
	state_put_u32(w, VFS_NCOUNTERS);
#define X(name, doc) state_put_u64(w, c.name);
	VIRTIO_FS_COUNTERS(X)
#undef X
	state_end(w);
}

int virtio_fs_state_save(struct virtio_fs *fs, struct state_writer *w, struct errbuf *eb)
{
	if (!at_boundary(fs)) {
		errbuf_set(eb, "virtio-fs %.36s: not paused at a request boundary: pause the "
			   "device before saving it", fs->tag);
		return -EBUSY;
	}
	put_device(fs, w);
	return fuse_server_state_save(fs->server, w, eb);
}

static bool get_device(struct state_reader *sec, const struct virtio_fs *fs, struct vfs_saved *v)
{
	char tag[VIRTIO_FS_TAG_LEN + 1] = { 0 };

	memcpy(tag, fs->tag, VIRTIO_FS_TAG_LEN);
	state_get_str(sec, v->tag, sizeof(v->tag));
	v->request_queues = state_get_u32(sec);
	v->offered = state_get_bool(sec);
	v->negotiated = state_get_bool(sec);
	uint32_t n = state_get_u32(sec);
	if (sec->failed)
		return false;
	if (strcmp(v->tag, tag))
		return state_fail(sec, "the share was tagged \"%s\", this one is \"%s\"", v->tag, tag);
	if (v->request_queues != fs->request_queues || v->offered != fs->offer_notification)
		return state_fail(sec, "saved with %u request queues and notifications %s; this "
				  "device has %u and %s", v->request_queues,
				  v->offered ? "offered" : "not offered", fs->request_queues,
				  fs->offer_notification ? "offered" : "not offered");
	if (v->negotiated && !v->offered)
		return state_fail(sec, "notifications negotiated without being offered");
	if (n != VFS_NCOUNTERS)
		return state_fail(sec, "%u counters, this kvmini has %u", n, (unsigned)VFS_NCOUNTERS);
	for (unsigned i = 0; i < VFS_NCOUNTERS; i++)
		v->counters[i] = state_get_u64(sec);
	return !sec->failed;
}

static void apply_device(struct virtio_fs *fs, const struct vfs_saved *v)
{
	unsigned i = 0;

	/* As fs_set_features does for the saved features. */
	store_relaxed(&fs->notify_negotiated, v->negotiated);
	fs->req_base = v->negotiated ? 2 : 1;
	fs->vdev.num_queues = fs->req_base + fs->request_queues;
#define X(name, doc) store_relaxed(&fs->counters.name, v->counters[i++]);
	VIRTIO_FS_COUNTERS(X)
#undef X
}

bool virtio_fs_state_load(struct virtio_fs *fs, struct state_reader *r)
{
	struct vfs_saved v;
	struct state_reader sec;

	memset(&v, 0, sizeof(v));
	if (!state_section(r, VFS_STATE_TAG, &sec))
		return false;
	get_device(&sec, fs, &v);
	if (!state_section_done(r, &sec))
		return false;
	/* Whether or not the core activated it already, no worker may serve
	 * the guest's requests while the tables are rebuilt. */
	if (!at_boundary(fs))
		return state_fail(r, "section %s: the device is not paused; a restore needs it held "
				  "at a request boundary", VFS_STATE_TAG);
	if (!fuse_server_state_load(fs->server, r))
		return false;
	apply_device(fs, &v);
	return true;
}
