/*
 * The FUSE session: INIT negotiation and cache policy, DESTROY.
 */
#include "fuse/fuse_server_internal.h"

/* ---- session ---- */

/*
 * init_flags_wanted() - the INIT flags this server takes when offered.
 * HANDLE_KILLPRIV_V2, with --cache none only: the server clears set-id bits
 * on write, truncate and open with O_TRUNC (kill_suidgid), so the client
 * marks inodes S_NOSEC and stops asking GETXATTR("security.capability")
 * before every write. Not where attributes are cached: the client would go
 * on seeing (and exec honouring) a set-id bit the server just cleared until
 * its attributes expire. Not with passthrough either (writes never reach
 * the server; fuse_op_init drops it).
 * With --cache metadata file data goes direct too (no passthrough), but
 * attributes are cached, so HANDLE_KILLPRIV_V2 stays off: direct writes
 * carry FUSE_WRITE_KILL_SUIDGID anyway (the client sets it on every
 * direct write by a caller without CAP_FSETID, with or without the flag).
 * ATOMIC_O_TRUNC, with --cache none only: the client then truncates in
 * OPEN, and Linux's client drops the set-id clearing it computed for that
 * truncation (fuse_do_setattr skips ATTR_OPEN), so only a server that is
 * asked to clear (HANDLE_KILLPRIV_V2) may take it. Without it the client
 * sends the truncation as a SETATTR with the new mode, as the host does
 * it: one more request per open(O_TRUNC) of an existing file.
 * Left out on purpose: WRITEBACK_CACHE (the client would own file sizes and
 * times, and stop seeing the host's changes), POSIX_ACL (the client kernel
 * does ACL checks itself), HANDLE_KILLPRIV v1, EXPORT_SUPPORT (needs lookups
 * of "." and "..", which are refused), SETXATTR_EXT (only meaningful with
 * POSIX_ACL), locks (handled locally by the client).
 */
static bool data_cached(const struct fuse_server *s)
{
	return s->opts.cache != FUSE_CACHE_NONE && s->opts.cache != FUSE_CACHE_METADATA;
}

uint64_t fuse_init_flags_wanted(const struct fuse_server *s)
{
	uint64_t f = FUSE_ASYNC_READ | FUSE_BIG_WRITES |
		     FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS |
		     FUSE_MAX_PAGES | FUSE_ASYNC_DIO;
	uint64_t extra = s->opts.extra_init_flags;

	if (s->opts.cache != FUSE_CACHE_NONE)
		f |= FUSE_CACHE_SYMLINKS | FUSE_AUTO_INVAL_DATA;
	else
		f |= FUSE_HANDLE_KILLPRIV_V2 | FUSE_ATOMIC_O_TRUNC;
	/* Passthrough only where the client caches file data: with none and
	 * metadata every byte is meant to reach the server. */
	if (!data_cached(s))
		extra &= ~FUSE_PASSTHROUGH;
	/* A DAX window: the client may map file ranges into it, at the
	 * alignment INIT's reply states. */
	if (s->dax)
		f |= FUSE_MAP_ALIGNMENT;
	return f | extra;
}

int fuse_op_init(struct fuse_req *r)
{
	struct fuse_server *s = r->s;
	struct fuse_init_in in = { 0 };
	struct fuse_init_out out = { .major = FUSE_KERNEL_VERSION,
				     .minor = FUSE_KERNEL_MINOR_VERSION };

	/* Clients before 7.36 send only up to flags. */
	memcpy(&in, r->arg, MIN(r->arg_len, sizeof(in)));
	if (in.major > FUSE_KERNEL_VERSION) {
		/* Ask for our major: the client sends INIT again. */
		fuse_reply_data(r, &out, sizeof(out));
		return 0;
	}
	if (in.major < FUSE_KERNEL_VERSION || in.minor < FUSE_SERVER_MIN_MINOR)
		return -EPROTO;
	if (load_relaxed(&s->initialized)) {
		BE(r)->ops->reset(BE(r));
		fuse_backing_clear(s->backing);
		fuse_server_dax_clear(s);
	}

	/* Flags past bit 31 travel in flags2 when the client sets INIT_EXT. */
	uint64_t offered = in.flags;
	if (in.flags & FUSE_INIT_EXT)
		offered |= (uint64_t)in.flags2 << 32;
	uint64_t flags = offered & fuse_init_flags_wanted(s);
	if (flags & FUSE_PASSTHROUGH)
		flags &= ~(uint64_t)FUSE_HANDLE_KILLPRIV_V2;
	out.minor = MIN(in.minor, (uint32_t)FUSE_KERNEL_MINOR_VERSION);
	out.flags = (uint32_t)flags;
	if (in.flags & FUSE_INIT_EXT) {
		out.flags |= FUSE_INIT_EXT;
		out.flags2 = (uint32_t)(flags >> 32);
	}
	if (flags & FUSE_PASSTHROUGH)
		FUSE_INIT_OUT_MAX_STACK_DEPTH(&out) = 1;   /* backing files on plain filesystems */
	store_relaxed(&s->passthrough, (flags & FUSE_PASSTHROUGH) != 0);
	store_relaxed(&s->killpriv, (flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
	if (flags & FUSE_MAP_ALIGNMENT)
		out.map_alignment = FUSE_DAX_MAP_SHIFT;
	out.max_readahead = MIN(in.max_readahead, s->opts.max_readahead);
	out.max_background = 64;
	out.congestion_threshold = 48;
	out.time_gran = 1;
	out.max_write = s->opts.max_write;
	if (out.flags & FUSE_MAX_PAGES)
		out.max_pages = (uint16_t)(out.max_write / PAGE_SZ);
	else
		out.max_write = MIN(out.max_write, 32 * PAGE_SZ);  /* the kernel's default pages */

	store_relaxed(&s->init_flags, flags);
	store_relaxed(&s->max_readahead, out.max_readahead);
	store_relaxed(&s->proto_minor, out.minor);
	store_relaxed(&s->max_write, out.max_write);
	store_release(&s->initialized, true);
	fuse_reply_data(r, &out, sizeof(out));
	return 0;
}

int fuse_op_destroy(struct fuse_req *r)
{
	BE(r)->ops->reset(BE(r));
	fuse_backing_clear(r->s->backing);
	fuse_server_dax_clear(r->s);
	store_release(&r->s->initialized, false);
	return 0;
}

int fuse_op_interrupt(struct fuse_req *r)
{
	/* Requests are not cancellable once running: the original reply is
	 * the answer. */
	return NO_REPLY;
}

int fuse_op_forget(struct fuse_req *r)
{
	struct fuse_forget_in in;

	ARG(r, in);
	BE(r)->ops->forget(BE(r), r->hdr.nodeid, in.nlookup);
	return NO_REPLY;
}

/* Entries are read one at a time from the request so a large batch needs no
 * buffer; a count larger than the entries present is clipped to them. */
int fuse_op_batch_forget(struct fuse_req *r)
{
	struct fuse_batch_forget_in in;
	size_t off = sizeof(struct fuse_in_header) + sizeof(in);
	size_t avail = (r->payload_len - sizeof(in)) / sizeof(struct fuse_forget_one);

	ARG(r, in);
	for (size_t i = 0; i < MIN((size_t)in.count, avail); i++) {
		struct fuse_forget_one one;

		if (iov_to_buf(r->in, r->in_cnt, off, &one, sizeof(one)) != sizeof(one))
			break;
		BE(r)->ops->forget(BE(r), one.nodeid, one.nlookup);
		off += sizeof(one);
	}
	return NO_REPLY;
}
