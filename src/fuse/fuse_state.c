/*
 * The FUSE session in a snapshot (see fuse_server.h): what INIT agreed on,
 * so that a server restored in a new process answers the client that never
 * saw it go exactly as before, with no new INIT.
 *
 * Section "FUSE" (little-endian, state_io.h):
 *   u8 initialized, u32 protocol minor, u64 flags agreed (flags | flags2
 *   << 32), u32 max_write agreed, u32 max_readahead agreed, u8 cache policy,
 *   u32 max_write offered, u32 max_readahead offered, u64 extra INIT flags
 * then the backend's section, then with a DAX window its mappings'
 * (fuse_dax_state.c).
 *
 * The options are saved to be compared, not applied: they come from the
 * command line of the new process, and a server restored under other ones
 * (another cache policy, another max_write) would answer otherwise than
 * the client agreed to, so that is refused by name. Counters are not
 * saved: they count this process's work.
 */
#include "fuse/fuse_server_internal.h"

#define FUSE_STATE_TAG "FUSE"

struct fuse_session_state {
	bool initialized;
	uint32_t minor;
	uint64_t flags;
	uint32_t max_write;
	uint32_t max_readahead;
	uint8_t cache;
	uint32_t opt_max_write;
	uint32_t opt_max_readahead;
	uint64_t opt_extra;
};

static void session_put(const struct fuse_server *s, struct state_writer *w)
{
	struct fuse_server *m = (struct fuse_server *)s;

	state_begin(w, FUSE_STATE_TAG);
	state_put_bool(w, load_acquire(&m->initialized));
	state_put_u32(w, load_relaxed(&m->proto_minor));
	state_put_u64(w, load_relaxed(&m->init_flags));
	state_put_u32(w, load_relaxed(&m->max_write));
	state_put_u32(w, load_relaxed(&m->max_readahead));
	state_put_u8(w, (uint8_t)s->opts.cache);
	state_put_u32(w, s->opts.max_write);
	state_put_u32(w, s->opts.max_readahead);
	state_put_u64(w, s->opts.extra_init_flags);
	state_end(w);
}

int fuse_server_state_save(struct fuse_server *s, struct state_writer *w, struct errbuf *eb)
{
	if (!s->be->ops->state_save) {
		errbuf_set(eb, "the %s filesystem backend cannot be saved in a snapshot",
			   s->be->ops->name);
		return -EOPNOTSUPP;
	}
	if (load_relaxed(&s->passthrough)) {
		errbuf_set(eb, "a FUSE session with passthrough (backing files of /dev/fuse) "
			   "cannot be saved in a snapshot");
		return -EOPNOTSUPP;
	}
	int rc = fuse_dax_state_check(s, eb);
	if (rc)
		return rc;
	session_put(s, w);
	rc = s->be->ops->state_save(s->be, w, eb);
	if (!rc)
		fuse_dax_state_save(s, w);
	return rc;
}

static bool session_get(struct state_reader *sec, struct fuse_session_state *st)
{
	st->initialized = state_get_bool(sec);
	st->minor = state_get_u32(sec);
	st->flags = state_get_u64(sec);
	st->max_write = state_get_u32(sec);
	st->max_readahead = state_get_u32(sec);
	st->cache = state_get_u8(sec);
	st->opt_max_write = state_get_u32(sec);
	st->opt_max_readahead = state_get_u32(sec);
	st->opt_extra = state_get_u64(sec);
	return !sec->failed;
}

/* The options the session was agreed under must be this server's. */
static bool session_same_opts(struct state_reader *sec, const struct fuse_server *s,
			      const struct fuse_session_state *st)
{
	if (st->cache != (uint8_t)s->opts.cache)
		return state_fail(sec, "saved with cache policy %u, this server has %u", st->cache,
				  (unsigned)s->opts.cache);
	if (st->opt_max_write != s->opts.max_write ||
	    st->opt_max_readahead != s->opts.max_readahead || st->opt_extra != s->opts.extra_init_flags)
		return state_fail(sec, "saved with max_write %u, max_readahead %u, extra flags %#llx; "
				  "this server has %u, %u, %#llx", st->opt_max_write,
				  st->opt_max_readahead, (unsigned long long)st->opt_extra,
				  s->opts.max_write, s->opts.max_readahead,
				  (unsigned long long)s->opts.extra_init_flags);
	return true;
}

/* What fuse_op_init could have agreed with these options. */
static bool session_check(struct state_reader *sec, const struct fuse_server *s,
			  const struct fuse_session_state *st)
{
	if (!session_same_opts(sec, s, st))
		return false;
	if (!st->initialized)
		return st->minor == 0 && st->flags == 0 ? true :
		       state_fail(sec, "a session not initialized with negotiated values");
	if (st->minor < FUSE_SERVER_MIN_MINOR || st->minor > FUSE_KERNEL_MINOR_VERSION)
		return state_fail(sec, "protocol minor %u, this server speaks 7.%u..7.%u", st->minor,
				  FUSE_SERVER_MIN_MINOR, FUSE_KERNEL_MINOR_VERSION);
	if ((st->flags & FUSE_MAP_ALIGNMENT) && !s->dax)
		return state_fail(sec, "the session was agreed with a DAX window (dax=); this "
				  "share has none");
	if (st->flags & ~fuse_init_flags_wanted(s))
		return state_fail(sec, "flags %#llx that this server never agrees to",
				  (unsigned long long)(st->flags & ~fuse_init_flags_wanted(s)));
	if (st->flags & FUSE_PASSTHROUGH)
		return state_fail(sec, "a session with FUSE passthrough cannot be restored");
	if (st->max_write < PAGE_SZ || st->max_write > s->opts.max_write ||
	    st->max_write % PAGE_SZ || st->max_readahead > s->opts.max_readahead)
		return state_fail(sec, "max_write %u / max_readahead %u out of range",
				  st->max_write, st->max_readahead);
	return true;
}

static void session_apply(struct fuse_server *s, const struct fuse_session_state *st)
{
	pthread_rwlock_wrlock(&s->lifecycle);
	store_relaxed(&s->passthrough, false);
	store_relaxed(&s->killpriv, (st->flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
	store_relaxed(&s->init_flags, st->flags);
	store_relaxed(&s->max_readahead, st->max_readahead);
	store_relaxed(&s->proto_minor, st->minor);
	store_relaxed(&s->max_write, st->max_write);
	store_release(&s->initialized, st->initialized);
	pthread_rwlock_unlock(&s->lifecycle);
}

bool fuse_server_state_load(struct fuse_server *s, struct state_reader *r)
{
	struct fuse_session_state st;
	struct state_reader sec;

	if (!state_section(r, FUSE_STATE_TAG, &sec))
		return false;
	if (session_get(&sec, &st))
		session_check(&sec, s, &st);
	if (!state_section_done(r, &sec))
		return false;
	if (load_acquire(&s->initialized))
		return state_fail(r, "section %s: the server has a session already; a restore "
				  "needs a fresh one", FUSE_STATE_TAG);
	if (!s->be->ops->state_load)
		return state_fail(r, "section %s: the %s backend cannot be restored",
				  FUSE_STATE_TAG, s->be->ops->name);
	/* The backend checks its whole section before it changes anything; the
	 * session is applied only once it did. */
	if (!s->be->ops->state_load(s->be, r))
		return false;
	/* The mappings name the nodes just restored; if they cannot be made
	 * again, the backend goes back to empty too. */
	if (!fuse_dax_state_load(s, r)) {
		s->be->ops->reset(s->be);
		return false;
	}
	session_apply(s, &st);
	return true;
}
