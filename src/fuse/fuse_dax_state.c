/*
 * The DAX window's mappings in a snapshot (see fuse_server.h): which range
 * of the window maps which file range, never the window's bytes (they are
 * the host files themselves).
 *
 * Section "FDAX" (little-endian, state_io.h), written after the backend's
 * section and only by a server with a window:
 *   u32 version (1), u64 window size, u32 count, then per mapping in
 *   window order: u64 window offset, u64 length, u64 node id, u64 file
 *   offset, u8 flags (bit 0: writable)
 *
 * A mapping names its file by node id, the way the backend's own section
 * names every node and handle: the backend restores the nodes first (by
 * file handle, so a replaced file is not taken for the saved one), then
 * each range is mapped again from its node's file, opened read-only or
 * read-write as saved, before any vCPU runs.
 *
 * A mapping of a node the client has forgotten (a client that follows the
 * protocol removes its mappings first, as Linux does before FORGET) could
 * not be made again, since a node id, once forgotten, names nothing: such
 * a snapshot is refused when it is taken, naming the mapping, while the VM
 * still runs, rather than when it is restored.
 *
 * A file changed since the snapshot is mapped as it is now: a DAX mapping
 * is the host file, so the guest sees the host's later writes whether or
 * not a snapshot came between (as it would had the VM run on). A file that
 * shrank below a mapping's start, or is no longer a regular file, is
 * refused with the mapping named: SETUPMAPPING refuses that range today,
 * and the guest's next touch of it would end the VM.
 */
#include "fuse/fuse_server_internal.h"

#include <sys/stat.h>

#define DAX_STATE_TAG "FDAX"
#define DAX_STATE_VERSION 1u
#define DAX_FLAG_WRITE 1u
/* Bytes of one saved mapping: four u64 and the flags. */
#define DAX_MAPPING_BYTES 33u

/* The first recorded mapping whose node the backend no longer knows
 * (-ESTALE: forgotten, or gone and not to be reopened), in
 * @m; false when there is none. The record is copied first, so the
 * backend is asked without the window's lock held. */
static bool forgotten_mapping(struct fuse_server *s, struct dax_range *m)
{
	const struct fs_ctx server = { 0 };
	struct dax_ranges copy = { 0 };
	bool found = false;

	pthread_mutex_lock(&s->dax_lock);
	if (s->dax_ranges.n && !dax_ranges_reserve(&copy, s->dax_ranges.n)) {
		memcpy(copy.v, s->dax_ranges.v, s->dax_ranges.n * sizeof(*copy.v));
		copy.n = s->dax_ranges.n;
	}
	pthread_mutex_unlock(&s->dax_lock);
	for (size_t i = 0; i < copy.n && !found; i++) {
		struct stat st;
		int rc = s->be->ops->getattr(s->be, &server, copy.v[i].nodeid, &st);
		if (rc == -ESTALE || rc == -ENOENT) {
			*m = copy.v[i];
			found = true;
		}
	}
	dax_ranges_free(&copy);
	return found;
}

int fuse_dax_state_check(struct fuse_server *s, struct errbuf *eb)
{
	struct dax_range m;

	if (!s->dax || !s->be->ops->getattr || !forgotten_mapping(s, &m))
		return 0;
	errbuf_set(eb, "the DAX window maps %#llx bytes at window offset %#llx from node %llu, "
		   "which the share no longer knows (the guest forgot it without removing "
		   "the mapping, or its file is gone and its descriptor was closed): a "
		   "restore could not make it again; the guest's REMOVEMAPPING of that "
		   "range (or a new FUSE session) allows a snapshot",
		   (unsigned long long)m.len, (unsigned long long)m.moffset,
		   (unsigned long long)m.nodeid);
	return -ESTALE;
}

void fuse_dax_state_save(struct fuse_server *s, struct state_writer *w)
{
	if (!s->dax)
		return;
	pthread_mutex_lock(&s->dax_lock);
	state_begin(w, DAX_STATE_TAG);
	state_put_u32(w, DAX_STATE_VERSION);
	state_put_u64(w, s->dax->size);
	state_put_u32(w, (uint32_t)s->dax_ranges.n);
	for (size_t i = 0; i < s->dax_ranges.n; i++) {
		const struct dax_range *m = &s->dax_ranges.v[i];
		state_put_u64(w, m->moffset);
		state_put_u64(w, m->len);
		state_put_u64(w, m->nodeid);
		state_put_u64(w, m->foffset);
		state_put_u8(w, m->write ? DAX_FLAG_WRITE : 0);
	}
	state_end(w);
	pthread_mutex_unlock(&s->dax_lock);
}

/* One mapping, checked as SETUPMAPPING checks a request, and against the
 * one before it: the window's record never overlaps and is in order. */
static bool get_one(struct state_reader *sec, const struct fuse_server *s, uint64_t prev_end,
		    struct dax_range *m)
{
	m->moffset = state_get_u64(sec);
	m->len = state_get_u64(sec);
	m->nodeid = state_get_u64(sec);
	m->foffset = state_get_u64(sec);
	uint8_t flags = state_get_u8(sec);
	m->write = flags & DAX_FLAG_WRITE;
	if (sec->failed)
		return false;
	if (!fuse_dax_range_ok(s->dax, m->moffset, m->len))
		return state_fail(sec, "a mapping of %#llx bytes at %#llx is not page-aligned "
				  "inside the window", (unsigned long long)m->len,
				  (unsigned long long)m->moffset);
	if (m->moffset < prev_end)
		return state_fail(sec, "the mapping at %#llx overlaps or precedes the one before",
				  (unsigned long long)m->moffset);
	if ((m->foffset & (FUSE_DAX_GRANULE - 1)) || m->foffset > (uint64_t)INT64_MAX - m->len)
		return state_fail(sec, "the mapping at %#llx has file offset %#llx",
				  (unsigned long long)m->moffset, (unsigned long long)m->foffset);
	if (!m->nodeid || (flags & ~DAX_FLAG_WRITE))
		return state_fail(sec, "the mapping at %#llx has node %llu and flags %#x",
				  (unsigned long long)m->moffset, (unsigned long long)m->nodeid, flags);
	return true;
}

static bool get_all(struct state_reader *sec, const struct fuse_server *s, struct dax_ranges *t)
{
	uint32_t version = state_get_u32(sec);
	uint64_t size = state_get_u64(sec);
	uint32_t n = state_get_u32(sec);

	if (sec->failed)
		return false;
	if (version != DAX_STATE_VERSION)
		return state_fail(sec, "version %u, this kvmini reads %u", version,
				  DAX_STATE_VERSION);
	if (size != s->dax->size)
		return state_fail(sec, "a window of %llu bytes, this share's is %llu",
				  (unsigned long long)size, (unsigned long long)s->dax->size);
	/* Bounded by what the section holds before anything is allocated. */
	if (n > (sec->len - sec->off) / DAX_MAPPING_BYTES)
		return state_fail(sec, "%u mappings in %zu bytes: truncated", n, sec->len - sec->off);
	if (n > DAX_RANGES_MAX || dax_ranges_reserve(t, n))
		return state_fail(sec, "%u mappings (at most %u)", n, DAX_RANGES_MAX);
	for (uint32_t i = 0; i < n; i++) {
		struct dax_range *m = &t->v[i];
		uint64_t prev_end = i ? m[-1].moffset + m[-1].len : 0;
		if (!get_one(sec, s, prev_end, m))
			return false;
		t->n++;
	}
	return true;
}

static const char *why_not_mapped(int rc)
{
	if (rc == -EINVAL)
		return "the file no longer reaches the mapping's file offset (truncated since "
		       "the snapshot) or is not a regular file";
	if (rc == -ESTALE || rc == -ENOENT)
		return "its file is gone on the host or the node was not in the snapshot";
	return strerror(-rc);
}

/* Every saved range mapped again; on the first failure the window is
 * emptied (a restore is all or nothing). */
static bool remap_all(struct fuse_server *s, struct state_reader *r, const struct dax_ranges *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct dax_range *m = &t->v[i];
		int rc = fuse_dax_map_node(s, m);
		if (!rc)
			continue;
		fuse_server_dax_clear(s);
		return state_fail(r, "section %s: the DAX mapping of node %llu (file offset %#llx, "
				  "%#llx bytes at window offset %#llx, %s) cannot be made again: %s",
				  DAX_STATE_TAG, (unsigned long long)m->nodeid,
				  (unsigned long long)m->foffset, (unsigned long long)m->len,
				  (unsigned long long)m->moffset, m->write ? "read-write" : "read-only",
				  why_not_mapped(rc));
	}
	return true;
}

bool fuse_dax_state_load(struct fuse_server *s, struct state_reader *r)
{
	struct dax_ranges t = { 0 };
	struct state_reader sec;
	char next[5];

	state_peek_tag(r, next);
	if (!s->dax)
		return strcmp(next, DAX_STATE_TAG) ? true :
		       state_fail(r, "section %s: the snapshot's share had a DAX window (dax=), "
				  "this one has none", DAX_STATE_TAG);
	if (!state_section(r, DAX_STATE_TAG, &sec))
		return false;
	get_all(&sec, s, &t);
	bool ok = state_section_done(r, &sec) && remap_all(s, r, &t);
	dax_ranges_free(&t);
	return ok;
}
