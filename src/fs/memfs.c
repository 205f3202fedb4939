/*
 * memfs: see memfs.h. Order of this file: nodes and the node table, handles,
 * directories, data, then the operations in the order of fs_backend_ops.
 * Every operation takes the one mutex (mfs->lock) for its whole duration.
 */
#include "fs/memfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/fuse.h>
#include <sys/xattr.h>

#include "core/compiler.h"
#include "core/guest_mem.h"
#include "fs/fs_policy.h"
#include "fs/id_table.h"

#define MEMFS_ROOT_ID FUSE_ROOT_ID
#define MEMFS_MAX_FILE_SIZE (1ull << 40)
#define MEMFS_XATTR_MAX (64u << 10)
#define MEMFS_MAX_XATTRS 1024u         /* per node */
#define MEMFS_MAX_HANDLES 65536u
/* What names cost against max_bytes, so links and xattrs cannot grow
 * memory without bound. */
#define DIRENT_COST(namelen) ((namelen) + 1 + sizeof(struct mdirent))
#define XATTR_COST(namelen) ((namelen) + 1 + sizeof(struct mxattr))
/* Readdir cookies: "." is 1, ".." is 2, entries from 3 up. */
#define MEMFS_FIRST_COOKIE 3u

struct mdirent {
	char *name;
	size_t namelen;
	uint64_t cookie;              /* stable across inserts and removals */
	struct mnode *node;
};

struct mxattr {
	char *name;
	void *value;
	size_t size;
};

struct mnode {
	uint64_t id;                  /* slot index = node id = st_ino */
	struct stat st;
	uint64_t lookups;             /* references the client holds */
	unsigned opens;               /* open handles */
	/* Regular files: bytes [0, len) are stored, [len, st_size) read as zeros. */
	uint8_t *data;
	size_t len, cap;
	char *target;                 /* symbolic links */
	/* Directories, entries in cookie order. */
	struct mdirent *ents;
	size_t nents, cap_ents;
	uint64_t next_cookie;
	struct mnode *parent;
	struct mxattr *xattrs;
	size_t nxattrs;
};

struct mhandle {
	uint64_t fh;                  /* its id in memfs.handles */
	struct mnode *node;
	bool dir;
	uint32_t flags;               /* open(2) flags */
};

struct memfs {
	struct fs_backend be;
	pthread_mutex_t lock;
	struct memfs_opts o;
	/* All below protected by @lock. */
	/* Node ids are bare slots of this table (the id is st_ino too); the
	 * slot's generation goes to the client beside the id, plus one so
	 * that the first is 1 as FUSE clients expect of a fresh node. */
	struct id_table nodes_tab;
	struct id_table handles;        /* struct mhandle */
	uint64_t nodes, bytes, nhandles_open;
};

static struct memfs *to_mfs(struct fs_backend *be)
{
	return container_of(be, struct memfs, be);
}

static struct timespec now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

static void touch_mc(struct mnode *n)
{
	n->st.st_mtim = n->st.st_ctim = now();
}

/* Grow an array of @size-byte elements to hold @need; 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t ncap = MAX(need, *cap ? *cap * 2 : 8);
	void *p = realloc(*arr, ncap * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* Account @delta bytes against max_bytes; -ENOSPC when over. */
static int charge(struct memfs *m, size_t delta)
{
	if (delta > m->o.max_bytes - m->bytes)
		return -ENOSPC;
	m->bytes += delta;
	return 0;
}

/* --- nodes ---------------------------------------------------------------- */

static struct mnode *node_get(struct memfs *m, uint64_t id)
{
	if (id > UINT32_MAX)
		return NULL;
	return id_table_slot(&m->nodes_tab, (uint32_t)id);
}

/* A new node of type/mode @mode owned by the caller (or the squashed owner);
 * setgid directories pass their group on. */
static struct mnode *node_new(struct memfs *m, const struct fs_ctx *ctx, struct mnode *parent,
			      mode_t mode, dev_t rdev)
{
	if (m->nodes >= m->o.max_nodes)
		return NULL;
	struct mnode *n = calloc(1, sizeof(*n));
	uint64_t id;
	if (!n || id_table_alloc(&m->nodes_tab, n, &id)) {
		free(n);
		return NULL;
	}
	n->id = (uint32_t)id;
	n->st.st_ino = n->id;
	n->st.st_mode = mode;
	n->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
	n->st.st_uid = m->o.squash ? m->o.squash_uid : ctx->uid;
	n->st.st_gid = m->o.squash ? m->o.squash_gid : ctx->gid;
	if (parent && (parent->st.st_mode & S_ISGID)) {
		n->st.st_gid = parent->st.st_gid;
		if (S_ISDIR(mode))
			n->st.st_mode |= S_ISGID;
	}
	n->st.st_rdev = rdev;
	n->st.st_blksize = 4096;
	n->st.st_atim = n->st.st_mtim = n->st.st_ctim = now();
	n->next_cookie = MEMFS_FIRST_COOKIE;
	n->parent = parent ? parent : n;
	m->nodes++;
	return n;
}

static void node_free(struct memfs *m, struct mnode *n)
{
	m->bytes -= n->cap;
	free(n->data);
	if (n->target)
		m->bytes -= strlen(n->target) + 1;
	free(n->target);
	for (size_t i = 0; i < n->nents; i++) {
		m->bytes -= DIRENT_COST(n->ents[i].namelen);
		free(n->ents[i].name);
	}
	free(n->ents);
	for (size_t i = 0; i < n->nxattrs; i++) {
		m->bytes -= n->xattrs[i].size + XATTR_COST(strlen(n->xattrs[i].name));
		free(n->xattrs[i].name);
		free(n->xattrs[i].value);
	}
	free(n->xattrs);
	id_table_release(&m->nodes_tab, id_table_id(&m->nodes_tab, (uint32_t)n->id));
	m->nodes--;
	free(n);
}

/* Free @n once nothing refers to it any more. */
static void node_maybe_free(struct memfs *m, struct mnode *n)
{
	if (n->id != MEMFS_ROOT_ID && n->st.st_nlink == 0 && n->lookups == 0 && n->opens == 0)
		node_free(m, n);
}

/* Hand @n to the client: one more lookup. */
static void fill_entry(struct memfs *m, struct mnode *n, struct fs_entry *e)
{
	n->lookups++;
	e->nodeid = n->id;
	e->generation = (id_table_id(&m->nodes_tab, (uint32_t)n->id) >> 32) + 1;
	e->st = n->st;
	e->st.st_blocks = (blkcnt_t)((n->cap + 511) / 512);
}

static void fill_stat(const struct mnode *n, struct stat *st)
{
	*st = n->st;
	st->st_blocks = (blkcnt_t)((n->cap + 511) / 512);
}

/* --- handles --------------------------------------------------------------- */

static int handle_new(struct memfs *m, struct mnode *n, bool dir, uint32_t flags, uint64_t *fh)
{
	struct mhandle *h = malloc(sizeof(*h));

	if (!h)
		return -ENOMEM;
	int rc = id_table_alloc(&m->handles, h, &h->fh);
	if (rc) {
		free(h);
		return rc;
	}
	h->node = n;
	h->dir = dir;
	h->flags = flags;
	n->opens++;
	m->nhandles_open++;
	*fh = h->fh;
	return 0;
}

static struct mhandle *handle_get(struct memfs *m, uint64_t fh, bool dir)
{
	struct mhandle *h = id_table_get(&m->handles, fh);

	return h && h->dir == dir ? h : NULL;
}

static void handle_close(struct memfs *m, struct mhandle *h)
{
	struct mnode *n = h->node;

	id_table_release(&m->handles, h->fh);
	free(h);
	m->nhandles_open--;
	n->opens--;
	node_maybe_free(m, n);
}

/* --- directories ----------------------------------------------------------- */

static struct mdirent *dir_find(struct mnode *dir, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < dir->nents; i++) {
		struct mdirent *d = &dir->ents[i];
		if (d->namelen == len && !memcmp(d->name, name, len))
			return d;
	}
	return NULL;
}

/* Charge an entry named @name and make room for it; returns a copy of the
 * name for dir_insert, or NULL with *@err set (nothing charged then). */
static char *dir_reserve(struct memfs *m, struct mnode *dir, const char *name, int *err)
{
	size_t len = strlen(name);
	char *copy;

	*err = -EINVAL;
	if (len == 0 || len > NAME_MAX)
		return NULL;
	*err = charge(m, DIRENT_COST(len));
	if (*err)
		return NULL;
	*err = -ENOMEM;
	if (grow((void **)&dir->ents, &dir->cap_ents, dir->nents + 1, sizeof(*dir->ents)) ||
	    !(copy = strdup(name))) {
		m->bytes -= DIRENT_COST(len);
		return NULL;
	}
	*err = 0;
	return copy;
}

/* Append an entry owning @name; room was reserved. A subdirectory's ".."
 * is a link of @dir. */
static void dir_insert(struct mnode *dir, char *name, struct mnode *n)
{
	dir->ents[dir->nents++] = (struct mdirent){
		.name = name, .namelen = strlen(name), .cookie = dir->next_cookie++, .node = n,
	};
	if (S_ISDIR(n->st.st_mode)) {
		n->parent = dir;
		dir->st.st_nlink++;
	}
	touch_mc(dir);
}

static int dir_add(struct memfs *m, struct mnode *dir, const char *name, struct mnode *n)
{
	int err;
	char *copy = dir_reserve(m, dir, name, &err);

	if (copy)
		dir_insert(dir, copy, n);
	return err;
}

/* Take entry @d out of @dir without touching its node's own links. */
static void dir_detach(struct memfs *m, struct mnode *dir, struct mdirent *d)
{
	struct mnode *n = d->node;

	m->bytes -= DIRENT_COST(d->namelen);
	free(d->name);
	memmove(d, d + 1, (size_t)(dir->ents + dir->nents - (d + 1)) * sizeof(*d));
	dir->nents--;
	touch_mc(dir);
	if (S_ISDIR(n->st.st_mode))
		dir->st.st_nlink--;
}

/* Remove entry @d of @dir: the node loses its link (a directory all of
 * them: its entry and its "."). */
static void dir_remove(struct memfs *m, struct mnode *dir, struct mdirent *d)
{
	struct mnode *n = d->node;

	dir_detach(m, dir, d);
	if (S_ISDIR(n->st.st_mode))
		n->st.st_nlink = 0;
	else if (n->st.st_nlink)
		n->st.st_nlink--;
	n->st.st_ctim = now();
	node_maybe_free(m, n);
}

static struct mnode *dir_get(struct memfs *m, uint64_t id, int *err)
{
	struct mnode *n = node_get(m, id);

	*err = !n ? -ESTALE : !S_ISDIR(n->st.st_mode) ? -ENOTDIR : 0;
	/* A removed directory takes no new entries. */
	if (!*err && n->st.st_nlink == 0)
		*err = -ENOENT;
	return *err ? NULL : n;
}

/* Is @a an ancestor of (or equal to) @b? */
static bool is_ancestor(const struct mnode *a, const struct mnode *b)
{
	for (;;) {
		if (a == b)
			return true;
		if (b->parent == b)
			return false;
		b = b->parent;
	}
}

/* First entry with a cookie above @off (entries are in cookie order). */
static size_t dir_seek(const struct mnode *dir, uint64_t off)
{
	size_t lo = 0, hi = dir->nents;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dir->ents[mid].cookie <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* --- data ------------------------------------------------------------------ */

/* Make bytes [0, end) of a file stored (zero-filled when new). */
static int data_reserve(struct memfs *m, struct mnode *n, uint64_t end)
{
	if (end > MEMFS_MAX_FILE_SIZE)
		return -EFBIG;
	if (end <= n->len)
		return 0;
	if (end > n->cap) {
		size_t ncap = MAX((size_t)end, MIN(n->cap * 2, (size_t)end + (8u << 20)));
		if (charge(m, ncap - n->cap) < 0) {
			ncap = (size_t)end;
			if (charge(m, ncap - n->cap) < 0)
				return -ENOSPC;
		}
		uint8_t *p = realloc(n->data, ncap);
		if (!p) {
			m->bytes -= ncap - n->cap;
			return -ENOMEM;
		}
		n->data = p;
		n->cap = ncap;
	}
	memset(n->data + n->len, 0, (size_t)end - n->len);
	n->len = (size_t)end;
	return 0;
}

static int data_truncate(struct memfs *m, struct mnode *n, uint64_t size)
{
	if (size > MEMFS_MAX_FILE_SIZE)
		return -EFBIG;
	if (size < n->len) {
		n->len = (size_t)size;
		/* Give memory back when most of it is no longer needed. */
		if (n->cap > 2 * n->len + 4096) {
			uint8_t *p = n->len ? realloc(n->data, n->len) : (free(n->data), NULL);
			if (p || !n->len) {
				m->bytes -= n->cap - n->len;
				n->data = p;
				n->cap = n->len;
			}
		}
	}
	n->st.st_size = (off_t)size;
	touch_mc(n);
	return 0;
}

/* Write zeros into @iov from @off on. */
static void iov_zero(const struct iovec *iov, unsigned cnt, size_t off, size_t len)
{
	static const uint8_t zeros[4096];

	while (len) {
		size_t n = MIN(len, sizeof(zeros));
		if (iov_from_buf(iov, cnt, off, zeros, n) != n)
			return;
		off += n;
		len -= n;
	}
}

/* --- operations ---------------------------------------------------------- */

#define LOCKED(m, expr) ({ pthread_mutex_lock(&(m)->lock); __auto_type _r = (expr); \
			  pthread_mutex_unlock(&(m)->lock); _r; })

static void drop_client_state(struct memfs *m)
{
	for (uint32_t i = 1; i < id_table_end(&m->handles); i++) {
		struct mhandle *h = id_table_slot(&m->handles, i);
		if (h)
			handle_close(m, h);
	}
	for (uint32_t i = 1; i < id_table_end(&m->nodes_tab); i++) {
		struct mnode *n = id_table_slot(&m->nodes_tab, i);
		if (n) {
			n->lookups = 0;
			node_maybe_free(m, n);
		}
	}
}

static void memfs_reset(struct fs_backend *be)
{
	struct memfs *m = to_mfs(be);

	pthread_mutex_lock(&m->lock);
	drop_client_state(m);
	pthread_mutex_unlock(&m->lock);
}

static void memfs_destroy(struct fs_backend *be)
{
	struct memfs *m = to_mfs(be);

	drop_client_state(m);
	for (uint32_t i = 1; i < id_table_end(&m->nodes_tab); i++) {
		struct mnode *n = id_table_slot(&m->nodes_tab, i);
		if (n)
			node_free(m, n);
	}
	id_table_free(&m->nodes_tab);
	id_table_free(&m->handles);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static int do_lookup(struct memfs *m, uint64_t parent, const char *name, struct fs_entry *out)
{
	int err;
	struct mnode *dir = dir_get(m, parent, &err);

	if (!dir)
		return err;
	struct mdirent *d = dir_find(dir, name);
	if (!d)
		return -ENOENT;
	fill_entry(m, d->node, out);
	return 0;
}

static int memfs_lookup(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
			const char *name, struct fs_entry *out)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_lookup(m, parent, name, out));
}

static void memfs_forget(struct fs_backend *be, uint64_t nodeid, uint64_t nlookup)
{
	struct memfs *m = to_mfs(be);

	pthread_mutex_lock(&m->lock);
	struct mnode *n = node_get(m, nodeid);
	if (n) {
		n->lookups -= MIN(n->lookups, nlookup);
		node_maybe_free(m, n);
	}
	pthread_mutex_unlock(&m->lock);
}

static int do_getattr(struct memfs *m, uint64_t nodeid, struct stat *st)
{
	struct mnode *n = node_get(m, nodeid);

	if (!n)
		return -ESTALE;
	fill_stat(n, st);
	return 0;
}

static int memfs_getattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			 struct stat *st)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_getattr(m, nodeid, st));
}

static void set_time(struct timespec *dst, const struct timespec *src)
{
	*dst = src->tv_nsec == UTIME_NOW ? now() : *src;
}

static int do_setattr(struct memfs *m, uint64_t nodeid, const struct fs_setattr *sa,
		      struct stat *st)
{
	struct mnode *n = node_get(m, nodeid);

	if (!n)
		return -ESTALE;
	if ((sa->valid & FATTR_FH) && !handle_get(m, sa->fh, false))
		return -EBADF;
	if (sa->valid & FATTR_SIZE) {
		if (S_ISDIR(n->st.st_mode))
			return -EISDIR;
		if (!S_ISREG(n->st.st_mode))
			return -EINVAL;
		int r = data_truncate(m, n, sa->size);
		if (r < 0)
			return r;
	}
	if (sa->valid & FATTR_MODE)
		n->st.st_mode = (n->st.st_mode & S_IFMT) | (sa->mode & 07777);
	if ((sa->valid & FATTR_UID) && !m->o.squash)
		n->st.st_uid = sa->uid;
	if ((sa->valid & FATTR_GID) && !m->o.squash)
		n->st.st_gid = sa->gid;
	if (sa->valid & FATTR_ATIME)
		set_time(&n->st.st_atim, &sa->atime);
	if (sa->valid & FATTR_MTIME)
		set_time(&n->st.st_mtim, &sa->mtime);
	n->st.st_ctim = now();
	fill_stat(n, st);
	return 0;
}

static int memfs_setattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			 const struct fs_setattr *sa, struct stat *st)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_setattr(m, nodeid, sa, st));
}

static ssize_t do_readlink(struct memfs *m, uint64_t nodeid, char *buf, size_t size)
{
	struct mnode *n = node_get(m, nodeid);

	if (!n)
		return -ESTALE;
	if (!S_ISLNK(n->st.st_mode))
		return -EINVAL;
	size_t len = strlen(n->target);
	if (len > size)
		return -ENAMETOOLONG;
	memcpy(buf, n->target, len);
	return (ssize_t)len;
}

static ssize_t memfs_readlink(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			      char *buf, size_t size)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_readlink(m, nodeid, buf, size));
}

/* Create node @mode named @name in @parent; with @target a symbolic link. */
static int do_make(struct memfs *m, const struct fs_ctx *ctx, uint64_t parent, const char *name,
		   mode_t mode, dev_t rdev, const char *target, struct fs_entry *out,
		   struct mnode **made)
{
	int err;
	struct mnode *dir = dir_get(m, parent, &err);

	if (!dir)
		return err;
	if (dir_find(dir, name))
		return -EEXIST;
	struct mnode *n = node_new(m, ctx, dir, mode, rdev);
	if (!n)
		return -ENOSPC;
	err = 0;
	if (target) {
		err = charge(m, strlen(target) + 1);
		n->target = err ? NULL : strdup(target);
		if (!err && !n->target) {
			m->bytes -= strlen(target) + 1;
			err = -ENOMEM;
		}
		n->st.st_size = (off_t)strlen(target);
	}
	if (!err)
		err = dir_add(m, dir, name, n);
	if (err) {
		n->st.st_nlink = 0;
		node_maybe_free(m, n);
		return err;
	}
	fill_entry(m, n, out);
	if (made)
		*made = n;
	return 0;
}

static int memfs_mknod(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		       const char *name, mode_t mode, dev_t rdev, struct fs_entry *out)
{
	struct memfs *m = to_mfs(be);

	if (S_ISDIR(mode) || S_ISLNK(mode) || !(mode & S_IFMT))
		return -EINVAL;
	return LOCKED(m, do_make(m, ctx, parent, name, mode, rdev, NULL, out, NULL));
}

static int memfs_mkdir(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		       const char *name, mode_t mode, struct fs_entry *out)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_make(m, ctx, parent, name, S_IFDIR | (mode & 07777), 0, NULL, out,
				 NULL));
}

static int memfs_symlink(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
			 const char *name, const char *target, struct fs_entry *out)
{
	struct memfs *m = to_mfs(be);

	if (!*target || strlen(target) >= PATH_MAX)
		return -EINVAL;
	return LOCKED(m, do_make(m, ctx, parent, name, S_IFLNK | 0777, 0, target, out, NULL));
}

static int do_unlink(struct memfs *m, uint64_t parent, const char *name, bool rmdir)
{
	int err;
	struct mnode *dir = dir_get(m, parent, &err);

	if (!dir)
		return err;
	struct mdirent *d = dir_find(dir, name);
	if (!d)
		return -ENOENT;
	bool is_dir = S_ISDIR(d->node->st.st_mode);
	if (rmdir && !is_dir)
		return -ENOTDIR;
	if (!rmdir && is_dir)
		return -EISDIR;
	if (rmdir && d->node->nents)
		return -ENOTEMPTY;
	dir_remove(m, dir, d);
	return 0;
}

static int memfs_unlink(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
			const char *name)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_unlink(m, parent, name, false));
}

static int memfs_rmdir(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		       const char *name)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_unlink(m, parent, name, true));
}

/* RENAME_EXCHANGE: swap the nodes two entries name. */
static int rename_exchange(struct mnode *od, struct mdirent *a, struct mnode *nd,
			   struct mdirent *b)
{
	struct mnode *an = a->node, *bn = b->node;

	if ((S_ISDIR(an->st.st_mode) && is_ancestor(an, nd)) ||
	    (S_ISDIR(bn->st.st_mode) && is_ancestor(bn, od)))
		return -EINVAL;
	a->node = bn;
	b->node = an;
	if (S_ISDIR(an->st.st_mode) != S_ISDIR(bn->st.st_mode) && od != nd) {
		struct mnode *gains = S_ISDIR(an->st.st_mode) ? nd : od;
		struct mnode *loses = gains == nd ? od : nd;
		gains->st.st_nlink++;
		loses->st.st_nlink--;
	}
	if (S_ISDIR(an->st.st_mode))
		an->parent = nd;
	if (S_ISDIR(bn->st.st_mode))
		bn->parent = od;
	touch_mc(od);
	touch_mc(nd);
	an->st.st_ctim = bn->st.st_ctim = now();
	return 0;
}

/* May @src replace the existing entry @dst? */
static int rename_replace_ok(const struct mnode *src, const struct mnode *dst)
{
	if (S_ISDIR(src->st.st_mode) && !S_ISDIR(dst->st.st_mode))
		return -ENOTDIR;
	if (!S_ISDIR(src->st.st_mode) && S_ISDIR(dst->st.st_mode))
		return -EISDIR;
	if (S_ISDIR(dst->st.st_mode) && dst->nents)
		return -ENOTEMPTY;
	return 0;
}

/* Plain rename (or NOREPLACE) of entry @a (named @name) of @od to @newname
 * in @nd, replacing @b when there is one. Everything that can fail happens
 * first. The entry gets a new cookie, as a new entry would. */
static int rename_move(struct memfs *m, struct mnode *od, struct mdirent *a, const char *name,
		       struct mnode *nd, struct mdirent *b, const char *newname)
{
	struct mnode *n = a->node;
	int err;

	if (b && b->node == n)
		return 0;   /* two links of one file: POSIX says do nothing */
	if (b && (err = rename_replace_ok(n, b->node)))
		return err;
	char *copy = dir_reserve(m, nd, newname, &err);
	if (!copy)
		return err;
	/* Making room may have moved @nd's entries. */
	if (b)
		dir_remove(m, nd, dir_find(nd, newname));
	/* Entries may have moved under @a. */
	dir_detach(m, od, dir_find(od, name));
	dir_insert(nd, copy, n);
	n->st.st_ctim = now();
	return 0;
}

static int do_rename(struct memfs *m, uint64_t parent, const char *name, uint64_t newparent,
		     const char *newname, unsigned flags)
{
	int err;
	struct mnode *od = dir_get(m, parent, &err);
	struct mnode *nd = od ? dir_get(m, newparent, &err) : NULL;

	if (!nd)
		return err;
	struct mdirent *a = dir_find(od, name), *b = dir_find(nd, newname);
	if (!a)
		return -ENOENT;
	if (flags & RENAME_EXCHANGE)
		return b ? rename_exchange(od, a, nd, b) : -ENOENT;
	if (b && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (S_ISDIR(a->node->st.st_mode) && is_ancestor(a->node, nd))
		return -EINVAL;
	return rename_move(m, od, a, name, nd, b, newname);
}

static int memfs_rename(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
			const char *name, uint64_t newparent, const char *newname, unsigned flags)
{
	struct memfs *m = to_mfs(be);

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	return LOCKED(m, do_rename(m, parent, name, newparent, newname, flags));
}

static int do_link(struct memfs *m, uint64_t nodeid, uint64_t newparent, const char *newname,
		   struct fs_entry *out)
{
	int err;
	struct mnode *n = node_get(m, nodeid);
	struct mnode *dir = dir_get(m, newparent, &err);

	if (!n)
		return -ESTALE;
	if (!dir)
		return err;
	if (S_ISDIR(n->st.st_mode))
		return -EPERM;
	if (n->st.st_nlink == 0)
		return -ENOENT;
	if (dir_find(dir, newname))
		return -EEXIST;
	err = dir_add(m, dir, newname, n);
	if (err)
		return err;
	n->st.st_nlink++;
	n->st.st_ctim = now();
	fill_entry(m, n, out);
	return 0;
}

static int memfs_link(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		      uint64_t newparent, const char *newname, struct fs_entry *out)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_link(m, nodeid, newparent, newname, out));
}

static int open_node(struct memfs *m, struct mnode *n, uint32_t flags, uint64_t *fh)
{
	if (S_ISDIR(n->st.st_mode))
		return -EISDIR;
	if (!S_ISREG(n->st.st_mode))
		return -ENXIO;    /* special files have no data here */
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY)
		data_truncate(m, n, 0);
	return handle_new(m, n, false, flags, fh);
}

static int do_open(struct memfs *m, uint64_t nodeid, uint32_t flags, uint64_t *fh)
{
	struct mnode *n = node_get(m, nodeid);

	return n ? open_node(m, n, flags, fh) : -ESTALE;
}

static int memfs_open(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		      uint32_t flags, uint64_t *fh)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_open(m, nodeid, flags, fh));
}

static int do_create(struct memfs *m, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name, mode_t mode, uint32_t flags, struct fs_entry *out,
		     uint64_t *fh)
{
	int err;
	struct mnode *dir = dir_get(m, parent, &err);
	struct mnode *n;

	if (!dir)
		return err;
	struct mdirent *d = dir_find(dir, name);
	if (d) {
		if (flags & O_EXCL)
			return -EEXIST;
		n = d->node;
		err = open_node(m, n, flags, fh);
		if (!err)
			fill_entry(m, n, out);
		return err;
	}
	err = do_make(m, ctx, parent, name, S_IFREG | (mode & 07777), 0, NULL, out, &n);
	if (err)
		return err;
	err = handle_new(m, n, false, flags, fh);
	if (err) {
		/* Undo the lookup the entry counted; the file stays, empty. */
		n->lookups--;
	}
	return err;
}

static int memfs_create(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
			const char *name, mode_t mode, uint32_t flags, struct fs_entry *out,
			uint64_t *fh)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_create(m, ctx, parent, name, mode, flags, out, fh));
}

static ssize_t do_read(struct memfs *m, uint64_t fh, uint64_t off, const struct iovec *iov,
		       unsigned iovcnt)
{
	struct mhandle *h = handle_get(m, fh, false);

	if (!h)
		return -EBADF;
	if ((h->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	struct mnode *n = h->node;
	uint64_t size = (uint64_t)n->st.st_size;
	if (off >= size)
		return 0;
	size_t want = (size_t)MIN(iov_length(iov, iovcnt), size - off);
	size_t stored = off < n->len ? MIN(want, n->len - (size_t)off) : 0;
	if (stored)
		iov_from_buf(iov, iovcnt, 0, n->data + off, stored);
	iov_zero(iov, iovcnt, stored, want - stored);
	return (ssize_t)want;
}

static ssize_t memfs_read(struct fs_backend *be, uint64_t fh, uint64_t off,
			  const struct iovec *iov, unsigned iovcnt)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_read(m, fh, off, iov, iovcnt));
}

static ssize_t do_write(struct memfs *m, uint64_t fh, uint64_t off, const struct iovec *iov,
			unsigned iovcnt)
{
	struct mhandle *h = handle_get(m, fh, false);

	if (!h || (h->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	struct mnode *n = h->node;
	size_t len = iov_length(iov, iovcnt);
	if (h->flags & O_APPEND)
		off = (uint64_t)n->st.st_size;
	if (!len)
		return 0;
	if (off > MEMFS_MAX_FILE_SIZE || len > MEMFS_MAX_FILE_SIZE - off)
		return -EFBIG;
	int r = data_reserve(m, n, off + len);
	if (r < 0)
		return r;
	iov_to_buf(iov, iovcnt, 0, n->data + off, len);
	if (off + len > (uint64_t)n->st.st_size)
		n->st.st_size = (off_t)(off + len);
	touch_mc(n);
	return (ssize_t)len;
}

static ssize_t memfs_write(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t fh,
			   uint64_t off, const struct iovec *iov, unsigned iovcnt)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_write(m, fh, off, iov, iovcnt));
}

static int do_fsync(struct memfs *m, uint64_t fh, bool dir)
{
	return handle_get(m, fh, dir) ? 0 : -EBADF;
}

static int memfs_fsync(struct fs_backend *be, uint64_t fh, bool datasync)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_fsync(m, fh, false));
}

static int do_release(struct memfs *m, uint64_t fh, bool dir)
{
	struct mhandle *h = handle_get(m, fh, dir);

	if (!h)
		return -EBADF;
	handle_close(m, h);
	return 0;
}

static int memfs_release(struct fs_backend *be, uint64_t fh)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_release(m, fh, false));
}

static int do_fallocate(struct memfs *m, uint64_t fh, uint32_t mode, uint64_t off, uint64_t len)
{
	struct mhandle *h = handle_get(m, fh, false);

	if (!h || (h->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	struct mnode *n = h->node;
	if (off > MEMFS_MAX_FILE_SIZE || len > MEMFS_MAX_FILE_SIZE - off || !len)
		return len ? -EFBIG : -EINVAL;
	if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
		if (off < n->len)
			memset(n->data + off, 0, (size_t)MIN(len, n->len - off));
		touch_mc(n);
		return 0;
	}
	if (mode & ~(uint32_t)FALLOC_FL_KEEP_SIZE)
		return -EOPNOTSUPP;
	int r = data_reserve(m, n, off + len);
	if (r < 0)
		return r;
	if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > (uint64_t)n->st.st_size)
		n->st.st_size = (off_t)(off + len);
	n->st.st_ctim = now();
	return 0;
}

static int memfs_fallocate(struct fs_backend *be, uint64_t fh, uint32_t mode, uint64_t off,
			   uint64_t len)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_fallocate(m, fh, mode, off, len));
}

/* Every stored or implied byte is data; the only hole is the end. */
static int do_lseek(struct memfs *m, uint64_t fh, uint64_t off, uint32_t whence,
		    uint64_t *result)
{
	struct mhandle *h = handle_get(m, fh, false);

	if (!h)
		return -EBADF;
	uint64_t size = (uint64_t)h->node->st.st_size;
	switch (whence) {
	case SEEK_SET:
		*result = off;
		return 0;
	case SEEK_DATA:
	case SEEK_HOLE:
		if (off >= size)
			return -ENXIO;
		*result = whence == SEEK_DATA ? off : size;
		return 0;
	}
	return -EINVAL;
}

static int memfs_lseek(struct fs_backend *be, uint64_t fh, uint64_t off, uint32_t whence,
		       uint64_t *result)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_lseek(m, fh, off, whence, result));
}

static ssize_t do_copy(struct memfs *m, uint64_t fh_in, uint64_t off_in, uint64_t fh_out,
		       uint64_t off_out, size_t len)
{
	struct mhandle *hi = handle_get(m, fh_in, false), *ho = handle_get(m, fh_out, false);

	if (!hi || !ho || (hi->flags & O_ACCMODE) == O_WRONLY ||
	    (ho->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	struct mnode *src = hi->node, *dst = ho->node;
	uint64_t size = (uint64_t)src->st.st_size;
	if (off_in >= size)
		return 0;
	len = (size_t)MIN((uint64_t)len, size - off_in);
	if (!len)
		return 0;
	if (off_out > MEMFS_MAX_FILE_SIZE || len > MEMFS_MAX_FILE_SIZE - off_out)
		return -EFBIG;
	int r = data_reserve(m, dst, off_out + len);
	if (r < 0)
		return r;
	/* The source may be the destination: move, then zero what lies past
	 * the source's stored bytes. */
	size_t stored = off_in < src->len ? MIN(len, src->len - (size_t)off_in) : 0;
	if (stored)
		memmove(dst->data + off_out, src->data + off_in, stored);
	memset(dst->data + off_out + stored, 0, len - stored);
	if (off_out + len > (uint64_t)dst->st.st_size)
		dst->st.st_size = (off_t)(off_out + len);
	touch_mc(dst);
	return (ssize_t)len;
}

static ssize_t memfs_copy_file_range(struct fs_backend *be, uint64_t fh_in, uint64_t off_in,
				     uint64_t fh_out, uint64_t off_out, size_t len)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_copy(m, fh_in, off_in, fh_out, off_out, len));
}

static int do_opendir(struct memfs *m, uint64_t nodeid, uint64_t *fh)
{
	struct mnode *n = node_get(m, nodeid);

	if (!n)
		return -ESTALE;
	if (!S_ISDIR(n->st.st_mode))
		return -ENOTDIR;
	return handle_new(m, n, true, O_RDONLY, fh);
}

static int memfs_opendir(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			 uint32_t flags, uint64_t *fh)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_opendir(m, nodeid, fh));
}

static bool emit(struct memfs *m, struct fs_dir_sink *sink, struct mnode *n, const char *name,
		 uint64_t cookie, bool count_lookup)
{
	struct fs_dirent de = {
		.ino = n->id, .off = cookie, .type = IFTODT(n->st.st_mode),
		.name = name, .namelen = strlen(name),
	};
	struct fs_entry e;

	if (!sink->room(sink, de.namelen))
		return false;
	if (sink->plus && count_lookup)
		fill_entry(m, n, &e);
	sink->add(sink, &de, sink->plus && count_lookup ? &e : NULL);
	return true;
}

static int do_readdir(struct memfs *m, uint64_t fh, uint64_t off, struct fs_dir_sink *sink)
{
	struct mhandle *h = handle_get(m, fh, true);

	if (!h)
		return -EBADF;
	struct mnode *dir = h->node;
	if (off < 1 && !emit(m, sink, dir, ".", 1, false))
		return 0;
	if (off < 2 && !emit(m, sink, dir->parent, "..", 2, false))
		return 0;
	for (size_t i = dir_seek(dir, off); i < dir->nents; i++) {
		struct mdirent *d = &dir->ents[i];
		if (!emit(m, sink, d->node, d->name, d->cookie, true))
			break;
	}
	return 0;
}

static int memfs_readdir(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t fh,
			 uint64_t off, struct fs_dir_sink *sink)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_readdir(m, fh, off, sink));
}

static int memfs_releasedir(struct fs_backend *be, uint64_t fh)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_release(m, fh, true));
}

static int memfs_fsyncdir(struct fs_backend *be, uint64_t fh, bool datasync)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_fsync(m, fh, true));
}

static int do_statfs(struct memfs *m, uint64_t nodeid, struct statvfs *st)
{
	if (!node_get(m, nodeid))
		return -ESTALE;
	memset(st, 0, sizeof(*st));
	st->f_bsize = st->f_frsize = 4096;
	st->f_blocks = m->o.max_bytes / 4096;
	st->f_bfree = st->f_bavail = (m->o.max_bytes - m->bytes) / 4096;
	st->f_files = m->o.max_nodes;
	st->f_ffree = st->f_favail = m->o.max_nodes - m->nodes;
	st->f_namemax = NAME_MAX;
	return 0;
}

static int memfs_statfs(struct fs_backend *be, uint64_t nodeid, struct statvfs *st)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_statfs(m, nodeid, st));
}

static int memfs_syncfs(struct fs_backend *be)
{
	return 0;
}

static int do_access(struct memfs *m, const struct fs_ctx *ctx, uint64_t nodeid, uint32_t mask)
{
	struct mnode *n = node_get(m, nodeid);

	return n ? fs_policy_access(ctx, &n->st, mask) : -ESTALE;
}

static int memfs_access(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			uint32_t mask)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_access(m, ctx, nodeid, mask));
}

/* --- extended attributes --------------------------------------------------- */

/* memfs keeps what it is given in these; "system." names (ACLs) would need
 * their semantics implemented, so they are refused like unknown ones. */
#define MEMFS_XATTR_NS (FS_XATTR_USER | FS_XATTR_TRUSTED | FS_XATTR_SECURITY)

static bool xattr_ns_ok(const char *name)
{
	return fs_xattr_allowed(name, MEMFS_XATTR_NS);
}

static struct mxattr *xattr_find(struct mnode *n, const char *name)
{
	for (size_t i = 0; i < n->nxattrs; i++) {
		if (!strcmp(n->xattrs[i].name, name))
			return &n->xattrs[i];
	}
	return NULL;
}

/* Replace @x's value by a copy of @value. */
static int xattr_set_value(struct memfs *m, struct mxattr *x, const void *value, size_t size)
{
	void *copy = malloc(size ? size : 1);

	if (!copy)
		return -ENOMEM;
	if (size > x->size && charge(m, size - x->size) < 0) {
		free(copy);
		return -ENOSPC;
	}
	if (size < x->size)
		m->bytes -= x->size - size;
	memcpy(copy, value, size);
	free(x->value);
	x->value = copy;
	x->size = size;
	return 0;
}

static int xattr_add(struct memfs *m, struct mnode *n, const char *name, const void *value,
		     size_t size)
{
	size_t cap = n->nxattrs;

	if (n->nxattrs >= MEMFS_MAX_XATTRS || charge(m, XATTR_COST(strlen(name))) < 0)
		return -ENOSPC;
	int r = -ENOMEM;
	if (grow((void **)&n->xattrs, &cap, n->nxattrs + 1, sizeof(*n->xattrs)))
		goto uncharge;
	struct mxattr *x = &n->xattrs[n->nxattrs];
	*x = (struct mxattr){ .name = strdup(name) };
	if (!x->name)
		goto uncharge;
	r = xattr_set_value(m, x, value, size);
	if (r < 0) {
		free(x->name);
		goto uncharge;
	}
	n->nxattrs++;
	return 0;
uncharge:
	m->bytes -= XATTR_COST(strlen(name));
	return r;
}

static int do_setxattr(struct memfs *m, uint64_t nodeid, const char *name, const void *value,
		       size_t size, uint32_t flags)
{
	struct mnode *n = node_get(m, nodeid);

	if (!n)
		return -ESTALE;
	struct mxattr *x = xattr_find(n, name);
	if (x && (flags & XATTR_CREATE))
		return -EEXIST;
	if (!x && (flags & XATTR_REPLACE))
		return -ENODATA;
	int r = x ? xattr_set_value(m, x, value, size) : xattr_add(m, n, name, value, size);
	if (!r)
		n->st.st_ctim = now();
	return r;
}

static int memfs_setxattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			  const char *name, const void *value, size_t size, uint32_t flags)
{
	struct memfs *m = to_mfs(be);

	if (!xattr_ns_ok(name))
		return -EOPNOTSUPP;
	if (size > MEMFS_XATTR_MAX)
		return -E2BIG;
	if (flags & ~(uint32_t)(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	return LOCKED(m, do_setxattr(m, nodeid, name, value, size, flags));
}

static ssize_t do_getxattr(struct memfs *m, uint64_t nodeid, const char *name, void *buf,
			   size_t size)
{
	struct mnode *n = node_get(m, nodeid);

	if (!n)
		return -ESTALE;
	struct mxattr *x = xattr_find(n, name);
	if (!x)
		return -ENODATA;
	if (!size)
		return (ssize_t)x->size;
	if (x->size > size)
		return -ERANGE;
	memcpy(buf, x->value, x->size);
	return (ssize_t)x->size;
}

static ssize_t memfs_getxattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			      const char *name, void *buf, size_t size)
{
	struct memfs *m = to_mfs(be);

	if (!xattr_ns_ok(name))
		return -EOPNOTSUPP;
	return LOCKED(m, do_getxattr(m, nodeid, name, buf, size));
}

static ssize_t do_listxattr(struct memfs *m, uint64_t nodeid, char *buf, size_t size)
{
	struct mnode *n = node_get(m, nodeid);
	size_t total = 0;

	if (!n)
		return -ESTALE;
	for (size_t i = 0; i < n->nxattrs; i++)
		total += strlen(n->xattrs[i].name) + 1;
	if (!size)
		return (ssize_t)total;
	if (total > size)
		return -ERANGE;
	for (size_t i = 0, off = 0; i < n->nxattrs; i++) {
		size_t len = strlen(n->xattrs[i].name) + 1;
		memcpy(buf + off, n->xattrs[i].name, len);
		off += len;
	}
	return (ssize_t)total;
}

static ssize_t memfs_listxattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			       char *buf, size_t size)
{
	struct memfs *m = to_mfs(be);

	return LOCKED(m, do_listxattr(m, nodeid, buf, size));
}

static int do_removexattr(struct memfs *m, uint64_t nodeid, const char *name)
{
	struct mnode *n = node_get(m, nodeid);

	if (!n)
		return -ESTALE;
	struct mxattr *x = xattr_find(n, name);
	if (!x)
		return -ENODATA;
	m->bytes -= x->size + XATTR_COST(strlen(x->name));
	free(x->name);
	free(x->value);
	*x = n->xattrs[--n->nxattrs];
	n->st.st_ctim = now();
	return 0;
}

static int memfs_removexattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			     const char *name)
{
	struct memfs *m = to_mfs(be);

	if (!xattr_ns_ok(name))
		return -EOPNOTSUPP;
	return LOCKED(m, do_removexattr(m, nodeid, name));
}

static const struct fs_backend_ops memfs_ops = {
	.name = "memfs",
	.reset = memfs_reset,
	.destroy = memfs_destroy,
	.lookup = memfs_lookup,
	.forget = memfs_forget,
	.getattr = memfs_getattr,
	.setattr = memfs_setattr,
	.readlink = memfs_readlink,
	.mknod = memfs_mknod,
	.mkdir = memfs_mkdir,
	.symlink = memfs_symlink,
	.unlink = memfs_unlink,
	.rmdir = memfs_rmdir,
	.rename = memfs_rename,
	.link = memfs_link,
	.open = memfs_open,
	.create = memfs_create,
	.read = memfs_read,
	.write = memfs_write,
	.fsync = memfs_fsync,
	.release = memfs_release,
	.fallocate = memfs_fallocate,
	.lseek = memfs_lseek,
	.copy_file_range = memfs_copy_file_range,
	.opendir = memfs_opendir,
	.readdir = memfs_readdir,
	.releasedir = memfs_releasedir,
	.fsyncdir = memfs_fsyncdir,
	.statfs = memfs_statfs,
	.syncfs = memfs_syncfs,
	.access = memfs_access,
	.setxattr = memfs_setxattr,
	.getxattr = memfs_getxattr,
	.listxattr = memfs_listxattr,
	.removexattr = memfs_removexattr,
};

/* --- setup ------------------------------------------------------------------ */

#define X(name, doc) COUNTER_DESC(struct memfs_stats, name, doc)
const struct counter_set memfs_stats_set = COUNTER_LEVELS("memfs", MEMFS_STATS(X));
#undef X

void memfs_get_stats(struct fs_backend *be, struct memfs_stats *st)
{
	struct memfs *m = to_mfs(be);

	pthread_mutex_lock(&m->lock);
	st->nodes = m->nodes;
	st->bytes = m->bytes;
	st->handles = m->nhandles_open;
	st->lookups = 0;
	for (uint32_t i = 1; i < id_table_end(&m->nodes_tab); i++) {
		struct mnode *n = id_table_slot(&m->nodes_tab, i);
		if (n)
			st->lookups += n->lookups;
	}
	pthread_mutex_unlock(&m->lock);
}

struct fs_backend *memfs_new(const struct memfs_opts *o, int *err)
{
	struct memfs *m = calloc(1, sizeof(*m));
	struct fs_ctx owner = { .uid = geteuid(), .gid = getegid() };

	*err = -ENOMEM;
	if (!m)
		return NULL;
	m->be.ops = &memfs_ops;
	if (o)
		m->o = *o;
	if (!m->o.max_bytes)
		m->o.max_bytes = 256u << 20;
	if (!m->o.max_nodes)
		m->o.max_nodes = 65536;
	pthread_mutex_init(&m->lock, NULL);
	/* The table never hands out slot 0: node id 0 means "none" in FUSE. */
	struct mnode *root = NULL;
	if (!id_table_init(&m->nodes_tab, 0) && !id_table_init(&m->handles, MEMFS_MAX_HANDLES))
		root = node_new(m, &owner, NULL,
				S_IFDIR | (m->o.root_mode ? m->o.root_mode & 07777 : 0755), 0);
	if (!root || root->id != MEMFS_ROOT_ID) {
		memfs_destroy(&m->be);
		return NULL;
	}
	*err = 0;
	return &m->be;
}
