/*
 * Passthrough backend: a host directory, confined to it (see passthrough.h
 * for the model). Order: node table, open files, credentials,
 * then the operations in the order of struct fs_backend_ops.
 */
#include "fs/passthrough_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/fuse.h>
#include <linux/openat2.h>
#include <linux/securebits.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/guest_mem.h"
#include "core/log.h"
#include "fs/fs_policy.h"
#include "fs/id_table.h"
#include "fs/node_observer.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

#define ROOT_NODEID FUSE_ROOT_ID
#define DIRBUF_SIZE 32768u
/* Descriptors evicted at once when an open fails for lack of them. */
#define EVICT_BATCH 16u
/* Largest xattr name list fetched when filtering namespaces. */
#define XATTR_LIST_BUF 65536u

/* ---- nodes ---- */

struct passthrough *pt_of(struct fs_backend *be)
{
	return container_of(be, struct passthrough, be);
}

static size_t hash_key(const struct passthrough *pt, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)ino ^ ((uint64_t)dev << 40 | (uint64_t)dev >> 24)) *
		     0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 32) & (pt->nbuckets - 1);
}

struct pt_inode *pt_hash_find(struct passthrough *pt, dev_t dev, ino_t ino)
{
	struct pt_inode *n = pt->buckets[hash_key(pt, dev, ino)];

	while (n && (n->dev != dev || n->ino != ino))
		n = n->hnext;
	return n;
}

void pt_hash_add(struct passthrough *pt, struct pt_inode *n)
{
	size_t b = hash_key(pt, n->dev, n->ino);

	n->hnext = pt->buckets[b];
	pt->buckets[b] = n;
}

static void hash_del(struct passthrough *pt, struct pt_inode *n)
{
	struct pt_inode **pp = &pt->buckets[hash_key(pt, n->dev, n->ino)];

	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
}

/* Double the buckets when the table outgrows them; failure only slows it. */
void pt_hash_grow(struct passthrough *pt)
{
	if (pt->nodes.live <= pt->nbuckets)
		return;
	size_t nb = pt->nbuckets * 2;
	struct pt_inode **old = pt->buckets;
	size_t oldn = pt->nbuckets;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): a table of pointers, sized per pointer */
	struct pt_inode **nv = calloc(nb, sizeof(*nv));

	if (!nv)
		return;
	pt->buckets = nv;
	pt->nbuckets = nb;
	for (size_t i = 0; i < oldn; i++) {
		for (struct pt_inode *n = old[i], *next; n; n = next) {
			next = n->hnext;
			pt_hash_add(pt, n);
		}
	}
	free(old);
}

static void lru_del(struct passthrough *pt, struct pt_inode *n)
{
	if (!n->in_lru)
		return;
	if (n->lru_prev)
		n->lru_prev->lru_next = n->lru_next;
	else
		pt->lru_head = n->lru_next;
	if (n->lru_next)
		n->lru_next->lru_prev = n->lru_prev;
	else
		pt->lru_tail = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
	n->in_lru = false;
}

static void lru_add(struct passthrough *pt, struct pt_inode *n)
{
	if (n->in_lru || n->fd < 0 || n->no_handle || n == pt->root)
		return;
	n->lru_prev = pt->lru_tail;
	n->lru_next = NULL;
	if (pt->lru_tail)
		pt->lru_tail->lru_next = n;
	else
		pt->lru_head = n;
	pt->lru_tail = n;
	n->in_lru = true;
}

/* Make @n's file handle if it has none; false when it cannot have one. */
bool pt_inode_make_handle(struct passthrough *pt, struct pt_inode *n)
{
	struct file_handle *h;
	int mnt_id;

	if (n->handle)
		return true;
	h = malloc(sizeof(*h) + PT_HANDLE_MAX);
	if (!h)
		return false;
	h->handle_bytes = PT_HANDLE_MAX;
	if (name_to_handle_at(n->fd, "", h, &mnt_id, AT_EMPTY_PATH) < 0 ||
	    mnt_id != pt->root_mnt_id || n->dev != pt->root_dev) {
		free(h);
		n->no_handle = true;
		return false;
	}
	n->handle = h;
	return true;
}

/* Give up descriptors of unused nodes until at most @target remain (or no
 * node can give one up). Called with pt->lock held. */
static void evict_to(struct passthrough *pt, unsigned target)
{
	while (pt->nfds > target && pt->lru_head) {
		struct pt_inode *n = pt->lru_head;

		lru_del(pt, n);
		if (!pt_inode_make_handle(pt, n))
			continue;
		close(n->fd);
		n->fd = -1;
		pt->nfds--;
		pt->evictions++;
	}
}

/* Reopen an evicted node from its handle. Called with pt->lock held. */
int pt_inode_reopen(struct passthrough *pt, struct pt_inode *n)
{
	struct stat st;
	int fd = open_by_handle_at(pt->mount_fd, n->handle, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
		evict_to(pt, pt->nfds > EVICT_BATCH ? pt->nfds - EVICT_BATCH : 0);
		fd = open_by_handle_at(pt->mount_fd, n->handle, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == EMFILE || errno == ENFILE ? -errno : -ESTALE;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_dev != n->dev || st.st_ino != n->ino) {
		close(fd);
		return -ESTALE;
	}
	n->fd = fd;
	pt->nfds++;
	pt->reopens++;
	evict_to(pt, pt->opts.max_fds);
	return 0;
}

/* Take @n out of the tables and onto *@dead, for inode_bury() once
 * pt->lock is dropped. Called with pt->lock held. */
static void inode_free(struct passthrough *pt, struct pt_inode *n, struct pt_inode **dead)
{
	lru_del(pt, n);
	hash_del(pt, n);
	id_table_release(&pt->nodes, n->nodeid);
	if (n->fd >= 0)
		pt->nfds--;
	if (n->wd >= 0 && n->type != S_IFDIR)
		store_relaxed(&pt->file_watches, pt->file_watches - 1);
	n->hnext = *dead;
	*dead = n;
}

/* Tell the observer that the nodes on @dead are gone, then close and free
 * them: in that order, so that a watch placed through the descriptor is
 * removed before closing it can make the kernel drop the watch itself
 * (node_observer.h). Called without pt->lock. */
static void inode_bury(struct passthrough *pt, struct pt_inode *dead)
{
	while (dead) {
		struct pt_inode *n = dead;

		dead = n->hnext;
		if (n->wd >= 0)
			pt->obs->ops->on_node_forgotten(pt->obs, n->nodeid, n->wd, n->fd >= 0);
		if (n->fd >= 0)
			close(n->fd);
		free(n->handle);
		free(n);
	}
}

/* @n just got its descriptor. With an observer it is pinned (refs) for
 * pt_inode_watch() to call once pt->lock is dropped, and returned; without,
 * it is free to lose the descriptor again. Called with pt->lock held. */
struct pt_inode *pt_inode_attached(struct passthrough *pt, struct pt_inode *n)
{
	if (pt->obs) {
		n->refs++;
		return n;
	}
	lru_add(pt, n);
	evict_to(pt, pt->opts.max_fds);
	return NULL;
}

/*
 * pt_inode_get() - take a reference on a node the client names.
 * Returns the node with an open descriptor, or NULL with *@err -ESTALE for
 * an unknown id (or a node whose handle no longer opens).
 */
struct pt_inode *pt_inode_get(struct passthrough *pt, uint64_t nodeid, int *err)
{
	pthread_mutex_lock(&pt->lock);
	struct pt_inode *n = id_table_get(&pt->nodes, nodeid);

	if (!n || n->stale) {
		pthread_mutex_unlock(&pt->lock);
		*err = -ESTALE;
		return NULL;
	}
	if (n->fd < 0) {
		int rc = pt_inode_reopen(pt, n);
		if (rc) {
			pthread_mutex_unlock(&pt->lock);
			*err = rc;
			return NULL;
		}
	}
	n->refs++;
	lru_del(pt, n);
	pthread_mutex_unlock(&pt->lock);
	return n;
}

void pt_inode_put(struct passthrough *pt, struct pt_inode *n)
{
	struct pt_inode *dead = NULL;

	if (!n)
		return;
	pthread_mutex_lock(&pt->lock);
	if (--n->refs == 0) {
		if (n->nlookup == 0 && n != pt->root) {
			inode_free(pt, n, &dead);
		} else {
			lru_add(pt, n);
			/* Pinned by pt_inode_attached() past the bound, maybe. */
			evict_to(pt, pt->opts.max_fds);
		}
	}
	pthread_mutex_unlock(&pt->lock);
	inode_bury(pt, dead);
}

/*
 * pt_inode_watch() - tell the observer of @n, pinned by pt_inode_attached(), then
 * unpin it. A node keeps at most one token (watch), for the inode its
 * descriptor is now. A refused add (the bound, usually for the very inode
 * already watched) keeps the token it has: had the number been reused, the
 * old inode is gone and its watch with it. Called without pt->lock.
 */
void pt_inode_watch(struct passthrough *pt, struct pt_inode *n)
{
	int wd = pt->obs->ops->on_node_added(pt->obs, n->nodeid, n->fd, n->type, n->links);
	int old = -1;

	pthread_mutex_lock(&pt->lock);
	if (wd >= 0) {
		if (n->wd >= 0 && n->wd != wd)
			old = n->wd;
		if (n->wd < 0 && n->type != S_IFDIR)
			store_relaxed(&pt->file_watches, pt->file_watches + 1);
		n->wd = wd;
	}
	pthread_mutex_unlock(&pt->lock);
	if (old >= 0)
		pt->obs->ops->on_node_forgotten(pt->obs, n->nodeid, old, false);
	pt_inode_put(pt, n);
}

/* A node that must be a directory (a parent in a name operation). */
static struct pt_inode *dir_get(struct passthrough *pt, uint64_t nodeid, int *err)
{
	struct pt_inode *n = pt_inode_get(pt, nodeid, err);

	if (n && n->type != S_IFDIR) {
		pt_inode_put(pt, n);
		*err = -ENOTDIR;
		return NULL;
	}
	return n;
}

/* cap_refused - count a refusal at a table's cap (under the table's lock),
 * and say so once per backend: a client at its cap would otherwise fill
 * the log. */
static void cap_refused(uint64_t *count, bool *logged, const char *what, const char *option,
			unsigned cap)
{
	(*count)++;
	if (*logged)
		return;
	*logged = true;
	log_warn("passthrough: %u %s live, the cap (%s): more refused and counted", cap, what,
		 option);
}

/* A file without a token whose link count rose past 1: the observer is
 * told again, since the host watcher's directory scheme keeps a watch of
 * a file's own only for one reachable under another name (host_watch.h).
 * Called with pt->lock held. */
static bool relinked(const struct passthrough *pt, const struct pt_inode *n, nlink_t nlink)
{
	return pt->obs && n->type == S_IFREG && n->wd < 0 && nlink > 1 && n->links <= 1;
}

/*
 * inode_insert() - count one lookup of the node open as @fd (O_PATH).
 * Takes @fd; fills @e. An existing node for (dev, ino) gains a lookup; a new
 * one enters the table. Returns 0 or -errno.
 */
static int inode_insert(struct passthrough *pt, int fd, const struct stat *st, struct fs_entry *e)
{
	struct pt_inode *watch = NULL;
	int rc = 0;

	pthread_mutex_lock(&pt->lock);
	struct pt_inode *n = pt_hash_find(pt, st->st_dev, st->st_ino);
	if (n) {
		n->nlookup++;
		if (n->fd >= 0 && relinked(pt, n, st->st_nlink))
			watch = pt_inode_attached(pt, n);
		n->links = st->st_nlink;
		if (n->fd < 0) {
			/* Evicted: this descriptor is the node as it is now (the
			 * number may have been reused), so the old handle goes. */
			free(n->handle);
			n->handle = NULL;
			n->no_handle = false;
			n->type = st->st_mode & S_IFMT;
			n->fd = fd;
			fd = -1;
			pt->nfds++;
			watch = pt_inode_attached(pt, n);
		}
	} else {
		n = calloc(1, sizeof(*n));
		rc = n ? id_table_alloc(&pt->nodes, n, &n->nodeid) : -ENOMEM;
		if (rc) {
			free(n);
			if (rc == -ENFILE)
				cap_refused(&pt->nodes_refused, &pt->nodes_cap_logged, "nodes",
					    "--max-inodes", pt->opts.max_inodes);
			goto out;
		}
		n->dev = st->st_dev;
		n->ino = st->st_ino;
		n->type = st->st_mode & S_IFMT;
		n->fd = fd;
		fd = -1;
		n->nlookup = 1;
		n->wd = -1;
		n->links = st->st_nlink;
		pt_hash_add(pt, n);
		pt_hash_grow(pt);
		pt->nfds++;
		watch = pt_inode_attached(pt, n);
	}
	e->nodeid = n->nodeid;
	e->generation = n->nodeid >> 32;
	e->st = *st;
out:
	pthread_mutex_unlock(&pt->lock);
	if (fd >= 0)
		close(fd);
	if (watch)
		pt_inode_watch(pt, watch);
	return rc;
}

/* openat2 confined to @dirfd: no "..", no absolute paths, no magic links.
 * Names are single components, so with O_NOFOLLOW no symlink is followed. */
static int open_beneath(struct passthrough *pt, int dirfd, const char *name, int flags,
			mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));

	if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
		pthread_mutex_lock(&pt->lock);
		evict_to(pt, pt->nfds > EVICT_BATCH ? pt->nfds - EVICT_BATCH : 0);
		pthread_mutex_unlock(&pt->lock);
		fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	}
	return fd < 0 ? -errno : (int)fd;
}

/* Look @name up under @dirfd and count it: the common tail of LOOKUP, the
 * creating operations and READDIRPLUS. */
static int lookup_at(struct passthrough *pt, int dirfd, const char *name, struct fs_entry *e)
{
	struct stat st;
	int fd = open_beneath(pt, dirfd, name, O_PATH, 0);

	if (fd < 0)
		return fd;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return inode_insert(pt, fd, &st, e);
}

/* Reopen a node's O_PATH descriptor as a real file description. */
int pt_inode_open(struct passthrough *pt, const struct pt_inode *n, int flags)
{
	char name[16];

	snprintf(name, sizeof(name), "%d", n->fd);
	int fd = openat(pt->proc_fd, name, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* "/proc/self/fd/N" of a node, for the calls that have no *at() form. */
static void inode_proc_path(const struct pt_inode *n, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", n->fd);
}

/* ---- open files ---- */

/* Enter @fd, opened from node @nodeid with open(2) @flags, as a new handle. */
static int file_add(struct passthrough *pt, int fd, bool dir, uint64_t nodeid, int flags,
		    uint64_t *fh)
{
	struct pt_file *f = calloc(1, sizeof(*f));

	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	f->dir = dir;
	f->nodeid = nodeid;
	f->flags = flags & ~(O_TRUNC | O_CREAT | O_EXCL);
	f->refs = 1;
	pthread_mutex_init(&f->dlock, NULL);
	pthread_mutex_lock(&pt->flock);
	int rc = id_table_alloc(&pt->files, f, fh);
	if (rc == -ENFILE) {
		cap_refused(&pt->handles_refused, &pt->handles_cap_logged, "open handles",
			    "--max-handles", pt->opts.max_handles);
		rc = -EMFILE;
	}
	pthread_mutex_unlock(&pt->flock);
	if (rc) {
		pthread_mutex_destroy(&f->dlock);
		close(fd);
		free(f);
	}
	return rc;
}

void pt_file_free(struct pt_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->dbuf);
	pthread_mutex_destroy(&f->dlock);
	free(f);
}

/* The open file behind @fh if it is of the wanted kind, with a reference;
 * NULL for anything stale, forged or of the other kind (-EBADF). */
static struct pt_file *file_get(struct passthrough *pt, uint64_t fh, bool dir)
{
	pthread_mutex_lock(&pt->flock);
	struct pt_file *f = id_table_get(&pt->files, fh);

	if (f && f->dir == dir && !f->stale)
		f->refs++;
	else
		f = NULL;
	pthread_mutex_unlock(&pt->flock);
	return f;
}

/* Why file_get() found nothing for @fh: -ESTALE for a handle restored from
 * a snapshot without its file, -EBADF for anything else. */
static int file_bad(struct passthrough *pt, uint64_t fh)
{
	pthread_mutex_lock(&pt->flock);
	const struct pt_file *f = id_table_get(&pt->files, fh);
	bool stale = f && f->stale;
	pthread_mutex_unlock(&pt->flock);
	return stale ? -ESTALE : -EBADF;
}

static void file_put(struct passthrough *pt, struct pt_file *f)
{
	pthread_mutex_lock(&pt->flock);
	bool last = --f->refs == 0;
	pthread_mutex_unlock(&pt->flock);
	if (last)
		pt_file_free(f);
}

/* RELEASE / RELEASEDIR: the id dies now, the descriptor when the last
 * request using it is done. */
static int file_release(struct passthrough *pt, uint64_t fh, bool dir)
{
	pthread_mutex_lock(&pt->flock);
	struct pt_file *f = id_table_get(&pt->files, fh);

	if (!f || f->dir != dir) {
		pthread_mutex_unlock(&pt->flock);
		return -EBADF;
	}
	id_table_release(&pt->files, fh);
	bool last = --f->refs == 0;
	pthread_mutex_unlock(&pt->flock);
	if (last)
		pt_file_free(f);
	return 0;
}

/* ---- credentials ---- */

/* Per thread: 0 not set up, 1 may switch fsuid/fsgid, -1 may not. */
static __thread signed char thread_creds;

/*
 * thread_setup() - give the calling thread its own umask 0 and, as root,
 * keep capabilities across fsuid changes (SECBIT_NO_SETUID_FIXUP): the
 * client already checked permissions, the ids only decide ownership.
 */
static bool thread_setup(void)
{
	if (thread_creds)
		return thread_creds > 0;
	thread_creds = -1;
	if (unshare(CLONE_FS) == 0) {
		umask(0);
	} else {
		log_warn("passthrough: unshare(CLONE_FS): %s; using umask 0 for the process",
			 strerror(errno));
		umask(0);
	}
	if (geteuid() == 0) {
		int bits = prctl(PR_GET_SECUREBITS);
		if (bits >= 0 && prctl(PR_SET_SECUREBITS, bits | SECBIT_NO_SETUID_FIXUP) == 0)
			thread_creds = 1;
	}
	return thread_creds > 0;
}

struct creds {
	bool switched;
};

static void creds_enter(struct passthrough *pt, const struct fs_ctx *ctx, struct creds *c)
{
	c->switched = false;
	if (!thread_setup())
		return;
	uid_t uid = pt->opts.squash ? pt->opts.squash_uid : ctx->uid;
	gid_t gid = pt->opts.squash ? pt->opts.squash_gid : ctx->gid;

	/* (uid_t)-1 would make setfsuid a query and leave root in place. */
	if (uid == (uid_t)-1)
		uid = 65534;
	if (gid == (gid_t)-1)
		gid = 65534;
	/* creds_leave put the thread back to kvmini's own: a caller who is
	 * kvmini's user and group (root, usually) costs no switch. */
	if (uid == pt->run_uid && gid == pt->run_gid)
		return;
	setfsgid(gid);
	setfsuid(uid);
	c->switched = true;
}

static void creds_leave(struct passthrough *pt, const struct creds *c)
{
	int saved = errno;

	if (c->switched) {
		setfsuid(pt->run_uid);
		setfsgid(pt->run_gid);
	}
	errno = saved;
}

/* ---- operations: session and nodes ---- */

/* Offer the source to the observer (@on), or take it back before the
 * tables go. Called without pt->lock: the observer may be using it. */
static void bind_source(struct passthrough *pt, bool on)
{
	if (pt->obs && pt->obs->ops->bind_source)
		pt->obs->ops->bind_source(pt->obs, on ? &pt->source : NULL);
}

static void pt_reset(struct fs_backend *be)
{
	struct passthrough *pt = pt_of(be);

	pthread_mutex_lock(&pt->flock);
	for (uint32_t i = 1; i < id_table_end(&pt->files); i++) {
		struct pt_file *f = id_table_slot(&pt->files, i);
		if (!f)
			continue;
		id_table_release(&pt->files, id_table_id(&pt->files, i));
		if (--f->refs == 0)
			pt_file_free(f);
	}
	pthread_mutex_unlock(&pt->flock);

	struct pt_inode *dead = NULL;
	pthread_mutex_lock(&pt->lock);
	for (uint32_t i = 1; i < id_table_end(&pt->nodes); i++) {
		struct pt_inode *n = id_table_slot(&pt->nodes, i);
		if (!n || n == pt->root)
			continue;
		n->nlookup = 0;
		if (n->refs == 0)
			inode_free(pt, n, &dead);
	}
	pthread_mutex_unlock(&pt->lock);
	inode_bury(pt, dead);
}

static void pt_destroy(struct fs_backend *be)
{
	struct passthrough *pt = pt_of(be);

	struct pt_inode *dead = NULL;

	if (pt->source.ops)
		bind_source(pt, false);
	pt_reset(be);
	pthread_mutex_lock(&pt->lock);
	if (pt->root)
		inode_free(pt, pt->root, &dead);
	pthread_mutex_unlock(&pt->lock);
	inode_bury(pt, dead);
	id_table_free(&pt->nodes);
	id_table_free(&pt->files);
	free(pt->buckets);
	if (pt->proc_fd >= 0)
		close(pt->proc_fd);
	if (pt->mount_fd >= 0)
		close(pt->mount_fd);
	pthread_mutex_destroy(&pt->lock);
	pthread_mutex_destroy(&pt->flock);
	free(pt);
}

static int pt_lookup(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name, struct fs_entry *out)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *dir = dir_get(pt, parent, &rc);

	if (!dir)
		return rc;
	rc = lookup_at(pt, dir->fd, name, out);
	pt_inode_put(pt, dir);
	return rc;
}

static void pt_forget(struct fs_backend *be, uint64_t nodeid, uint64_t nlookup)
{
	struct passthrough *pt = pt_of(be);

	struct pt_inode *dead = NULL;

	pthread_mutex_lock(&pt->lock);
	struct pt_inode *n = id_table_get(&pt->nodes, nodeid);
	if (n && n != pt->root) {
		n->nlookup -= MIN(nlookup, n->nlookup);
		if (n->nlookup == 0 && n->refs == 0)
			inode_free(pt, n, &dead);
	}
	pthread_mutex_unlock(&pt->lock);
	inode_bury(pt, dead);
}

static int stat_node(const struct pt_inode *n, struct stat *st)
{
	return fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int pt_getattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		      struct stat *st)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);

	if (!n)
		return rc;
	rc = stat_node(n, st);
	pt_inode_put(pt, n);
	return rc;
}

static int chmod_node(struct passthrough *pt, const struct pt_inode *n, struct pt_file *f,
		      mode_t mode)
{
	char name[16];

	if (f)
		return fchmod(f->fd, mode) < 0 ? -errno : 0;
	if (n->type == S_IFLNK)
		return -EOPNOTSUPP;
	if (syscall(SYS_fchmodat2, n->fd, "", mode, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOSYS && errno != EINVAL)
		return -errno;
	/* Before Linux 6.6: through the node's own /proc link. */
	snprintf(name, sizeof(name), "%d", n->fd);
	return fchmodat(pt->proc_fd, name, mode, 0) < 0 ? -errno : 0;
}

static int truncate_node(struct passthrough *pt, const struct pt_inode *n, struct pt_file *f,
			 uint64_t size)
{
	if (size > INT64_MAX)
		return -EFBIG;
	if (f)
		return ftruncate(f->fd, (off_t)size) < 0 ? -errno : 0;
	if (n->type != S_IFREG)
		return n->type == S_IFDIR ? -EISDIR : -EINVAL;
	int fd = pt_inode_open(pt, n, O_WRONLY);
	if (fd < 0)
		return fd;
	int rc = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int utimes_node(const struct pt_inode *n, const struct fs_setattr *sa)
{
	struct timespec ts[2] = {
		(sa->valid & FATTR_ATIME) ? sa->atime : (struct timespec){ .tv_nsec = UTIME_OMIT },
		(sa->valid & FATTR_MTIME) ? sa->mtime : (struct timespec){ .tv_nsec = UTIME_OMIT },
	};

	return utimensat(n->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* What a SETATTR can change; a request with none of them is a chown to
 * (-1, -1), the client's only change that is a new ctime alone. */
#define SETATTR_CHANGES (FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME | FATTR_MTIME)

static int setattr_node(struct passthrough *pt, struct pt_inode *n, struct pt_file *f,
			const struct fs_setattr *sa)
{
	int rc = 0;

	/* The same chown on the host: its ctime moves, as the client's did. */
	if (!(sa->valid & SETATTR_CHANGES))
		return fchownat(n->fd, "", (uid_t)-1, (gid_t)-1,
				AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;

	if (sa->valid & FATTR_MODE)
		rc = chmod_node(pt, n, f, sa->mode);
	if (!rc && (sa->valid & (FATTR_UID | FATTR_GID)) && !pt->opts.squash) {
		uid_t uid = (sa->valid & FATTR_UID) ? sa->uid : (uid_t)-1;
		gid_t gid = (sa->valid & FATTR_GID) ? sa->gid : (gid_t)-1;
		if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
	}
	if (!rc && (sa->valid & FATTR_SIZE))
		rc = truncate_node(pt, n, f, sa->size);
	if (!rc && (sa->valid & (FATTR_ATIME | FATTR_MTIME)))
		rc = utimes_node(n, sa);
	return rc;
}

/* The events a setattr causes on the node's own watch (fsnotify_change):
 * both times set is a utimes (IN_ATTRIB), the mtime alone a modification,
 * the atime alone nothing watched. */
static uint32_t setattr_events(const struct passthrough *pt, const struct fs_setattr *sa)
{
	uint32_t mask = 0;
	bool times = (sa->valid & (FATTR_ATIME | FATTR_MTIME)) == (FATTR_ATIME | FATTR_MTIME);

	if ((sa->valid & FATTR_MODE) || times || !(sa->valid & SETATTR_CHANGES))
		mask |= IN_ATTRIB;
	if ((sa->valid & (FATTR_UID | FATTR_GID)) && !pt->opts.squash)
		mask |= IN_ATTRIB;
	if ((sa->valid & FATTR_SIZE) || (!times && (sa->valid & FATTR_MTIME)))
		mask |= IN_MODIFY;
	return mask;
}

static int pt_setattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		      const struct fs_setattr *sa, struct stat *st)
{
	struct passthrough *pt = pt_of(be);
	struct pt_file *f = NULL;
	int rc;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);

	if (!n)
		return rc;
	if ((sa->valid & FATTR_FH) && !(f = file_get(pt, sa->fh, false))) {
		pt_inode_put(pt, n);
		return file_bad(pt, sa->fh);
	}
	/* The watcher need not tell the client of its own change. */
	uint32_t own = setattr_events(pt, sa);
	host_watch_expect_node(pt->opts.watch, nodeid, own);
	rc = setattr_node(pt, n, f, sa);
	host_watch_expect_node_end(pt->opts.watch, nodeid, own, !rc);
	if (!rc)
		rc = stat_node(n, st);
	if (f)
		file_put(pt, f);
	pt_inode_put(pt, n);
	return rc;
}

static ssize_t pt_readlink(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			   char *buf, size_t size)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);

	if (!n)
		return rc;
	ssize_t len = n->type == S_IFLNK ? readlinkat(n->fd, "", buf, size) : -1;
	if (n->type != S_IFLNK)
		len = -EINVAL;
	else if (len < 0)
		len = -errno;
	else if ((size_t)len >= size)
		len = -ENAMETOOLONG;
	pt_inode_put(pt, n);
	return len;
}

/* Devices would give host access to whoever can open them on the host,
 * so they need the share's dev_nodes; whiteouts (char 0:0, overlayfs) are
 * harmless. The thread making nodes keeps the server's capabilities, so
 * the host kernel would not ask CAP_MKNOD of the caller: a device also
 * needs the client's root, as mknod(2) needs it on any host (a client
 * kernel has checked CAP_MKNOD already; this is for one that did not). */
static bool mknod_allowed(const struct passthrough *pt, const struct fs_ctx *ctx, mode_t mode,
			  dev_t rdev)
{
	bool devices = pt->opts.dev_nodes && ctx->uid == 0;

	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	case S_IFCHR:
		return rdev == 0 || devices;
	case S_IFBLK:
		return devices;
	default:
		return false;
	}
}

/* The creating operations share their shape: act under the caller's ids in
 * the parent directory, then look the new name up. */
enum make_kind { MAKE_NOD, MAKE_DIR, MAKE_SYMLINK };

struct make_args {
	enum make_kind kind;
	const char *name;
	mode_t mode;
	dev_t rdev;
	const char *target;
};

static int make_node(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		     const struct make_args *a, struct fs_entry *out)
{
	struct passthrough *pt = pt_of(be);
	struct creds c;
	int rc;
	struct pt_inode *dir = dir_get(pt, parent, &rc);

	if (!dir)
		return rc;
	/* The watcher need not tell the client of its own change. */
	uint64_t own = host_watch_expect(pt->opts.watch, dir->nodeid, IN_CREATE, a->name);
	creds_enter(pt, ctx, &c);
	switch (a->kind) {
	case MAKE_NOD:
		rc = mknodat(dir->fd, a->name, a->mode, a->rdev);
		break;
	case MAKE_DIR:
		rc = mkdirat(dir->fd, a->name, a->mode);
		break;
	case MAKE_SYMLINK:
		rc = symlinkat(a->target, dir->fd, a->name);
		break;
	}
	rc = rc < 0 ? -errno : 0;
	creds_leave(pt, &c);
	if (rc)
		host_watch_unexpect(pt->opts.watch, own);
	if (!rc)
		rc = lookup_at(pt, dir->fd, a->name, out);
	pt_inode_put(pt, dir);
	return rc;
}

static int pt_mknod(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		    const char *name, mode_t mode, dev_t rdev, struct fs_entry *out)
{
	if (!mknod_allowed(pt_of(be), ctx, mode, rdev))
		return -EPERM;
	struct make_args a = { .kind = MAKE_NOD, .name = name, .mode = mode, .rdev = rdev };
	return make_node(be, ctx, parent, &a, out);
}

static int pt_mkdir(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		    const char *name, mode_t mode, struct fs_entry *out)
{
	struct make_args a = { .kind = MAKE_DIR, .name = name, .mode = mode & 07777 };

	return make_node(be, ctx, parent, &a, out);
}

static int pt_symlink(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		      const char *name, const char *target, struct fs_entry *out)
{
	struct make_args a = { .kind = MAKE_SYMLINK, .name = name, .target = target };

	return make_node(be, ctx, parent, &a, out);
}

/* Does @n have a watch of its own? Only then do the events of its link
 * count and its moves reach the watcher: the kernel reports those on the
 * inode alone, not to its directory's watch. */
static bool watched(struct passthrough *pt, const struct pt_inode *n)
{
	pthread_mutex_lock(&pt->lock);
	bool yes = n->wd >= 0;
	pthread_mutex_unlock(&pt->lock);
	return yes;
}

/* The node of @dir's child @name when the watcher watches it, else 0: the
 * client's change to its link count or place is announced to the watcher
 * by node. */
static uint64_t watched_child(struct passthrough *pt, const struct pt_inode *dir,
			      const char *name)
{
	struct stat st;
	uint64_t id = 0;

	if (!pt->opts.watch || fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	pthread_mutex_lock(&pt->lock);
	struct pt_inode *n = pt_hash_find(pt, st.st_dev, st.st_ino);
	if (n && n->wd >= 0)
		id = n->nodeid;
	pthread_mutex_unlock(&pt->lock);
	return id;
}

static int unlink_common(struct fs_backend *be, uint64_t parent, const char *name, int flags)
{
	struct passthrough *pt = pt_of(be);
	struct host_watch *w = pt->opts.watch;
	int rc;
	struct pt_inode *dir = dir_get(pt, parent, &rc);

	if (!dir)
		return rc;
	uint64_t own = host_watch_expect(w, dir->nodeid, IN_DELETE, name);
	/* A file's link count drops (IN_ATTRIB); a directory only goes. With
	 * no file watched by itself (the default --watch dirs, no hard links
	 * seen) there is no node to look for: no fstatat. */
	bool may_be_watched = !flags && load_relaxed(&pt->file_watches);
	uint64_t victim = may_be_watched ? watched_child(pt, dir, name) : 0;
	host_watch_expect_node(w, victim, IN_ATTRIB);
	rc = unlinkat(dir->fd, name, flags) < 0 ? -errno : 0;
	if (rc)
		host_watch_unexpect(w, own);
	host_watch_expect_node_end(w, victim, IN_ATTRIB, !rc);
	pt_inode_put(pt, dir);
	return rc;
}

static int pt_unlink(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name)
{
	return unlink_common(be, parent, name, 0);
}

static int pt_rmdir(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		    const char *name)
{
	return unlink_common(be, parent, name, AT_REMOVEDIR);
}

/* The nodes a rename changes, announced to the watcher: the one moved
 * (IN_MOVE_SELF), and the one replaced (its link count: IN_ATTRIB) or, in an
 * exchange, moved as well. */
struct rename_nodes {
	uint64_t id[2];
	uint32_t mask[2];
};

static void rename_expect_nodes(struct passthrough *pt, const struct pt_inode *dir,
				const char *name, const struct pt_inode *newdir,
				const char *newname, unsigned flags, struct rename_nodes *r)
{
	r->id[0] = watched_child(pt, dir, name);
	r->mask[0] = IN_MOVE_SELF;
	r->id[1] = watched_child(pt, newdir, newname);
	r->mask[1] = (flags & RENAME_EXCHANGE) ? IN_MOVE_SELF : IN_ATTRIB;
	for (unsigned i = 0; i < 2; i++)
		host_watch_expect_node(pt->opts.watch, r->id[i], r->mask[i]);
}

/* renameat2, with its entry events announced to the watcher (both names
 * move both ways in an exchange). */
static int rename_own(struct passthrough *pt, const struct pt_inode *dir, const char *name,
		      const struct pt_inode *newdir, const char *newname, unsigned flags)
{
	struct host_watch *w = pt->opts.watch;
	struct rename_nodes nodes;
	uint64_t own[4] = {
		host_watch_expect(w, dir->nodeid, IN_MOVED_FROM, name),
		host_watch_expect(w, newdir->nodeid, IN_MOVED_TO, newname),
	};

	if (flags & RENAME_EXCHANGE) {
		own[2] = host_watch_expect(w, dir->nodeid, IN_MOVED_TO, name);
		own[3] = host_watch_expect(w, newdir->nodeid, IN_MOVED_FROM, newname);
	}
	rename_expect_nodes(pt, dir, name, newdir, newname, flags, &nodes);
	int rc = renameat2(dir->fd, name, newdir->fd, newname, flags) < 0 ? -errno : 0;
	for (unsigned i = 0; rc && i < ARRAY_SIZE(own); i++)
		host_watch_unexpect(w, own[i]);
	for (unsigned i = 0; i < 2; i++)
		host_watch_expect_node_end(w, nodes.id[i], nodes.mask[i], !rc);
	return rc;
}

static int pt_rename(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name, uint64_t newparent, const char *newname, unsigned flags)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *dir = dir_get(pt, parent, &rc);

	if (!dir)
		return rc;
	struct pt_inode *newdir = dir_get(pt, newparent, &rc);
	if (newdir) {
		rc = rename_own(pt, dir, name, newdir, newname, flags);
		pt_inode_put(pt, newdir);
	}
	pt_inode_put(pt, dir);
	return rc;
}

static int link_node(struct passthrough *pt, const struct pt_inode *n, const struct pt_inode *dir,
		     const char *newname)
{
	char name[16];

	if (linkat(n->fd, "", dir->fd, newname, AT_EMPTY_PATH) == 0)
		return 0;
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc link does not. */
	if ((errno != ENOENT && errno != EPERM) || n->type == S_IFLNK)
		return -errno;
	snprintf(name, sizeof(name), "%d", n->fd);
	return linkat(pt->proc_fd, name, dir->fd, newname, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

static int pt_link(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		   uint64_t newparent, const char *newname, struct fs_entry *out)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);

	if (!n)
		return rc;
	struct pt_inode *dir = dir_get(pt, newparent, &rc);
	if (dir) {
		uint64_t own = host_watch_expect(pt->opts.watch, dir->nodeid, IN_CREATE, newname);
		/* Its link count goes up: seen on its own watch only. */
		uint64_t self = watched(pt, n) ? nodeid : 0;
		host_watch_expect_node(pt->opts.watch, self, IN_ATTRIB);
		rc = link_node(pt, n, dir, newname);
		if (rc)
			host_watch_unexpect(pt->opts.watch, own);
		host_watch_expect_node_end(pt->opts.watch, self, IN_ATTRIB, !rc);
		if (!rc)
			rc = lookup_at(pt, dir->fd, newname, out);
		pt_inode_put(pt, dir);
	}
	pt_inode_put(pt, n);
	return rc;
}

/* ---- operations: files ---- */

/* The open(2) flags honoured; O_DIRECT is not (the client's buffers need
 * not be aligned), O_CREAT/O_EXCL belong to CREATE only. */
static int open_flags(uint32_t flags)
{
	const uint32_t keep = O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME;

	return (int)(flags & keep);
}

/* Open @n's file, a truncation (IN_MODIFY) announced to the watcher. */
static int open_own(struct passthrough *pt, const struct pt_inode *n, int flags)
{
	uint32_t own = (flags & O_TRUNC) ? IN_MODIFY : 0;

	host_watch_expect_node(pt->opts.watch, n->nodeid, own);
	int fd = pt_inode_open(pt, n, flags);
	host_watch_expect_node_end(pt->opts.watch, n->nodeid, own, fd >= 0);
	return fd;
}

static int pt_open(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		   uint32_t flags, uint64_t *fh)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);

	if (!n)
		return rc;
	/* Only regular files: opening a FIFO or a device here could block a
	 * worker or reach the host's devices. */
	if (n->type != S_IFREG)
		rc = n->type == S_IFDIR ? -EISDIR : -EINVAL;
	else if ((rc = open_own(pt, n, open_flags(flags))) >= 0)
		rc = file_add(pt, rc, false, nodeid, open_flags(flags), fh);
	pt_inode_put(pt, n);
	return rc;
}

/* Open the just-created file's node descriptor and count the lookup. */
static int create_entry(struct passthrough *pt, int fd, struct fs_entry *e)
{
	char name[16];
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EEXIST;
	snprintf(name, sizeof(name), "%d", fd);
	int pfd = openat(pt->proc_fd, name, O_PATH | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	return inode_insert(pt, pfd, &st, e);
}

/* The node (its lookup counted, its stat in @out) and the open handle for
 * a file CREATE or TMPFILE just opened as @fd, which this takes over. */
static int add_entry_and_handle(struct fs_backend *be, int fd, uint32_t flags,
				struct fs_entry *out, uint64_t *fh)
{
	struct passthrough *pt = pt_of(be);
	int rc = create_entry(pt, fd, out);

	if (rc) {
		close(fd);
		return rc;
	}
	rc = file_add(pt, fd, false, out->nodeid, open_flags(flags), fh);
	if (rc)
		pt_forget(be, out->nodeid, 1);
	return rc;
}

static int pt_create(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name, mode_t mode, uint32_t flags, struct fs_entry *out,
		     uint64_t *fh)
{
	struct passthrough *pt = pt_of(be);
	struct creds c;
	int rc;
	struct pt_inode *dir = dir_get(pt, parent, &rc);

	if (!dir)
		return rc;
	/* O_NONBLOCK: an existing FIFO under the name must not block us. */
	int oflags = open_flags(flags) | O_CREAT | (int)(flags & O_EXCL) | O_NONBLOCK;
	/* An existing file makes no event: the remembered one only expires. */
	uint64_t own = host_watch_expect(pt->opts.watch, dir->nodeid, IN_CREATE, name);
	creds_enter(pt, ctx, &c);
	int fd = open_beneath(pt, dir->fd, name, oflags, mode & 07777);
	creds_leave(pt, &c);
	pt_inode_put(pt, dir);
	if (fd < 0) {
		host_watch_unexpect(pt->opts.watch, own);
		return fd;
	}
	/* O_NONBLOCK was for the open only (a FIFO is refused next): the
	 * client's handle blocks unless it asked otherwise. F_SETFL takes only
	 * the status flags of oflags (O_APPEND, O_DIRECT...): no F_GETFL. */
	if (!(flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, oflags & ~O_NONBLOCK);
	return add_entry_and_handle(be, fd, flags, out, fh);
}

/* O_TMPFILE in the directory, under the caller's ids: a node with no name
 * (its link count 0) that LINK can name later, since it is opened without
 * O_EXCL; the client's kernel keeps O_EXCL's rule itself. */
static int pt_tmpfile(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		      mode_t mode, uint32_t flags, struct fs_entry *out, uint64_t *fh)
{
	struct passthrough *pt = pt_of(be);
	struct creds c;
	int rc;
	struct pt_inode *dir = dir_get(pt, parent, &rc);

	if (!dir)
		return rc;
	int oflags = (open_flags(flags) & ~(O_ACCMODE | O_TRUNC)) | O_RDWR | O_TMPFILE;
	creds_enter(pt, ctx, &c);
	int fd = open_beneath(pt, dir->fd, ".", oflags, mode & 07777);
	creds_leave(pt, &c);
	pt_inode_put(pt, dir);
	if (fd < 0)
		return fd;
	return add_entry_and_handle(be, fd, flags, out, fh);
}

/* Finish a vectored transfer cut short (a signal, a short write); rare, so
 * its iovec view lives in this frame only. */
static ssize_t io_rest(int fd, bool write, const struct iovec *iov, unsigned cnt, size_t done,
		       uint64_t off)
{
	struct iovec view[IOV_MAX];
	unsigned n = iov_skip(iov, cnt, done, view, IOV_MAX);

	return write ? pwritev(fd, view, (int)n, (off_t)off) : preadv(fd, view, (int)n, (off_t)off);
}

/* All of @iov at @off, short only at end of file. Bytes moved or -errno. */
static ssize_t io_full(int fd, bool write, const struct iovec *iov, unsigned cnt, uint64_t off)
{
	size_t want = iov_length(iov, cnt), done = 0;

	if (off > (uint64_t)INT64_MAX - want)
		return -EINVAL;
	cnt = MIN(cnt, (unsigned)IOV_MAX);
	ssize_t n = write ? pwritev(fd, iov, (int)cnt, (off_t)off) : preadv(fd, iov, (int)cnt, (off_t)off);
	while (n > 0 && (done += (size_t)n) < want)
		n = io_rest(fd, write, iov, cnt, done, off + done);
	if (n < 0 && done == 0)
		return -errno;
	return (ssize_t)done;
}

static ssize_t pt_read(struct fs_backend *be, uint64_t fh, uint64_t off,
		       const struct iovec *iov, unsigned iovcnt)
{
	struct passthrough *pt = pt_of(be);
	struct pt_file *f = file_get(pt, fh, false);

	if (!f)
		return file_bad(pt, fh);
	ssize_t n = io_full(f->fd, false, iov, iovcnt, off);
	file_put(pt, f);
	return n;
}

static ssize_t pt_write(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t fh,
			uint64_t off, const struct iovec *iov, unsigned iovcnt)
{
	struct passthrough *pt = pt_of(be);
	struct pt_file *f = file_get(pt, fh, false);

	if (!f)
		return file_bad(pt, fh);
	/* The watcher need not tell the client of its own write. */
	host_watch_expect_node(pt->opts.watch, f->nodeid, IN_MODIFY);
	ssize_t n = io_full(f->fd, true, iov, iovcnt, off);
	host_watch_expect_node_end(pt->opts.watch, f->nodeid, IN_MODIFY, n > 0);
	file_put(pt, f);
	return n;
}

static int sync_file(struct passthrough *pt, uint64_t fh, bool dir, bool datasync)
{
	struct pt_file *f = file_get(pt, fh, dir);

	if (!f)
		return file_bad(pt, fh);
	int rc = (datasync ? fdatasync(f->fd) : fsync(f->fd)) < 0 ? -errno : 0;
	file_put(pt, f);
	return rc;
}

static int pt_fsync(struct fs_backend *be, uint64_t fh, bool datasync)
{
	return sync_file(pt_of(be), fh, false, datasync);
}

static int pt_release(struct fs_backend *be, uint64_t fh)
{
	return file_release(pt_of(be), fh, false);
}

static int pt_fallocate(struct fs_backend *be, uint64_t fh, uint32_t mode, uint64_t off,
			uint64_t len)
{
	struct passthrough *pt = pt_of(be);

	if (off > INT64_MAX || len > INT64_MAX)
		return -EINVAL;
	struct pt_file *f = file_get(pt, fh, false);
	if (!f)
		return file_bad(pt, fh);
	host_watch_expect_node(pt->opts.watch, f->nodeid, IN_MODIFY);
	int rc = fallocate(f->fd, (int)mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
	host_watch_expect_node_end(pt->opts.watch, f->nodeid, IN_MODIFY, !rc);
	file_put(pt, f);
	return rc;
}

static int pt_lseek(struct fs_backend *be, uint64_t fh, uint64_t off, uint32_t whence,
		    uint64_t *result)
{
	struct passthrough *pt = pt_of(be);

	if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END &&
	    whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	struct pt_file *f = file_get(pt, fh, false);
	if (!f)
		return file_bad(pt, fh);
	/* The descriptor's position is never used for I/O (pread/pwrite), so
	 * moving it here disturbs nothing. */
	off_t r = lseek(f->fd, (off_t)off, (int)whence);
	int rc = r < 0 ? -errno : 0;
	if (r >= 0)
		*result = (uint64_t)r;
	file_put(pt, f);
	return rc;
}

static ssize_t pt_copy_file_range(struct fs_backend *be, uint64_t fh_in, uint64_t off_in,
				  uint64_t fh_out, uint64_t off_out, size_t len)
{
	struct passthrough *pt = pt_of(be);

	if (off_in > INT64_MAX || off_out > INT64_MAX)
		return -EINVAL;
	struct pt_file *in = file_get(pt, fh_in, false);
	if (!in)
		return file_bad(pt, fh_in);
	struct pt_file *out = file_get(pt, fh_out, false);
	if (!out) {
		file_put(pt, in);
		return file_bad(pt, fh_out);
	}
	loff_t oi = (loff_t)off_in, oo = (loff_t)off_out;
	host_watch_expect_node(pt->opts.watch, out->nodeid, IN_MODIFY);
	ssize_t n = copy_file_range(in->fd, &oi, out->fd, &oo, len, 0);
	if (n < 0)
		n = -errno;
	host_watch_expect_node_end(pt->opts.watch, out->nodeid, IN_MODIFY, n > 0);
	file_put(pt, out);
	file_put(pt, in);
	return n;
}

/* ---- operations: directories ---- */

static int pt_opendir(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		      uint32_t flags, uint64_t *fh)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *n = dir_get(pt, nodeid, &rc);

	if (!n)
		return rc;
	rc = pt_inode_open(pt, n, O_RDONLY | O_DIRECTORY);
	if (rc >= 0)
		rc = file_add(pt, rc, true, nodeid, O_RDONLY | O_DIRECTORY, fh);
	pt_inode_put(pt, n);
	return rc;
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Hand one entry to the sink; READDIRPLUS looks it up first ("." and ".."
 * are never looked up: the client does not link them). */
static void emit_entry(struct passthrough *pt, struct pt_file *f, const struct dirent64 *d,
		       size_t namelen, struct fs_dir_sink *sink)
{
	struct fs_dirent de = { .ino = d->d_ino, .off = (uint64_t)d->d_off, .type = d->d_type,
				.name = d->d_name, .namelen = namelen };
	struct fs_entry e;
	const struct fs_entry *ep = NULL;

	if (sink->plus && !is_dot_or_dotdot(d->d_name) && lookup_at(pt, f->fd, d->d_name, &e) == 0)
		ep = &e;
	sink->add(sink, &de, ep);
}

/* Position the stream at cookie @off unless it is already there. */
static int dir_seek(struct pt_file *f, uint64_t off)
{
	if (!f->dbuf && !(f->dbuf = malloc(DIRBUF_SIZE)))
		return -ENOMEM;
	if (off == f->next_off)
		return 0;
	if (off > INT64_MAX || lseek(f->fd, (off_t)off, SEEK_SET) < 0)
		return -EINVAL;
	f->dlen = f->dpos = 0;
	f->next_off = off;
	return 0;
}

static int read_dir(struct passthrough *pt, struct pt_file *f, uint64_t off,
		    struct fs_dir_sink *sink)
{
	int rc = dir_seek(f, off);

	while (!rc) {
		if (f->dpos >= f->dlen) {
			ssize_t n = getdents64(f->fd, f->dbuf, DIRBUF_SIZE);
			if (n <= 0) {
				rc = n < 0 ? -errno : 0;
				break;
			}
			f->dlen = (size_t)n;
			f->dpos = 0;
		}
		const struct dirent64 *d = (const struct dirent64 *)(f->dbuf + f->dpos);
		size_t namelen = strlen(d->d_name);
		if (!sink->room(sink, namelen))
			break;
		emit_entry(pt, f, d, namelen, sink);
		f->dpos += d->d_reclen;
		f->next_off = (uint64_t)d->d_off;
	}
	return rc;
}

static int pt_readdir(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t fh,
		      uint64_t off, struct fs_dir_sink *sink)
{
	struct passthrough *pt = pt_of(be);
	struct pt_file *f = file_get(pt, fh, true);

	if (!f)
		return file_bad(pt, fh);
	pthread_mutex_lock(&f->dlock);
	int rc = read_dir(pt, f, off, sink);
	pthread_mutex_unlock(&f->dlock);
	file_put(pt, f);
	return rc;
}

static int pt_releasedir(struct fs_backend *be, uint64_t fh)
{
	return file_release(pt_of(be), fh, true);
}

static int pt_fsyncdir(struct fs_backend *be, uint64_t fh, bool datasync)
{
	return sync_file(pt_of(be), fh, true, datasync);
}

/* ---- operations: filesystem ---- */

static int pt_statfs(struct fs_backend *be, uint64_t nodeid, struct statvfs *st)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);

	if (!n)
		return rc;
	rc = fstatvfs(n->fd, st) < 0 ? -errno : 0;
	pt_inode_put(pt, n);
	return rc;
}

static int pt_syncfs(struct fs_backend *be)
{
	return syncfs(pt_of(be)->mount_fd) < 0 ? -errno : 0;
}

static int pt_access(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		     uint32_t mask)
{
	struct stat st;
	int rc = pt_getattr(be, ctx, nodeid, &st);

	return rc ? rc : fs_policy_access(ctx, &st, mask);
}

/* ---- operations: extended attributes ---- */

/* Without --xattr-all only "user." names reach the host. */
static bool xattr_allowed(const struct passthrough *pt, const char *name)
{
	return fs_xattr_allowed(name, pt->opts.xattr_all ? FS_XATTR_ALL : FS_XATTR_USER);
}

static int pt_setxattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		       const char *name, const void *value, size_t size, uint32_t flags)
{
	struct passthrough *pt = pt_of(be);
	char path[32];
	int rc;

	if (!xattr_allowed(pt, name))
		return -EOPNOTSUPP;
	if (flags & ~(uint32_t)(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);
	if (!n)
		return rc;
	/* The /proc link of a symlink node would name the link in /proc. */
	if (n->type == S_IFLNK) {
		rc = -EPERM;
	} else {
		inode_proc_path(n, path, sizeof(path));
		rc = setxattr(path, name, value, size, (int)flags) < 0 ? -errno : 0;
	}
	pt_inode_put(pt, n);
	return rc;
}

static ssize_t pt_getxattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			   const char *name, void *buf, size_t size)
{
	struct passthrough *pt = pt_of(be);
	char path[32];
	int rc;

	if (!xattr_allowed(pt, name))
		return -ENODATA;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);
	if (!n)
		return rc;
	ssize_t len = -ENODATA;
	if (n->type != S_IFLNK) {
		inode_proc_path(n, path, sizeof(path));
		len = getxattr(path, name, buf, size);
		if (len < 0)
			len = -errno;
	}
	pt_inode_put(pt, n);
	return len;
}

static ssize_t list_node_xattrs(struct passthrough *pt, const struct pt_inode *n, char *buf,
				size_t size)
{
	char path[32];

	if (n->type == S_IFLNK)
		return 0;
	inode_proc_path(n, path, sizeof(path));
	if (pt->opts.xattr_all) {
		ssize_t len = listxattr(path, buf, size);
		return len < 0 ? -errno : len;
	}
	char *tmp = malloc(XATTR_LIST_BUF);
	if (!tmp)
		return -ENOMEM;
	ssize_t len = listxattr(path, tmp, XATTR_LIST_BUF);
	if (len < 0) {
		len = -errno;
	} else {
		len = (ssize_t)fs_xattr_filter(tmp, (size_t)len, FS_XATTR_USER);
		if (size && (size_t)len > size)
			len = -ERANGE;
		else if (size)
			memcpy(buf, tmp, (size_t)len);
	}
	free(tmp);
	return len;
}

static ssize_t pt_listxattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			    char *buf, size_t size)
{
	struct passthrough *pt = pt_of(be);
	int rc;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);

	if (!n)
		return rc;
	ssize_t len = list_node_xattrs(pt, n, buf, size);
	pt_inode_put(pt, n);
	return len;
}

static int pt_removexattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			  const char *name)
{
	struct passthrough *pt = pt_of(be);
	char path[32];
	int rc;

	if (!xattr_allowed(pt, name))
		return -EOPNOTSUPP;
	struct pt_inode *n = pt_inode_get(pt, nodeid, &rc);
	if (!n)
		return rc;
	if (n->type == S_IFLNK) {
		rc = -ENODATA;
	} else {
		inode_proc_path(n, path, sizeof(path));
		rc = removexattr(path, name) < 0 ? -errno : 0;
	}
	pt_inode_put(pt, n);
	return rc;
}

static ssize_t pt_with_fd(struct fs_backend *be, uint64_t fh,
			  ssize_t (*fn)(void *arg, int fd), void *arg)
{
	struct passthrough *pt = pt_of(be);
	struct pt_file *f = file_get(pt, fh, false);

	if (!f)
		return file_bad(pt, fh);
	ssize_t n = fn(arg, f->fd);
	file_put(pt, f);
	return n;
}

/* ---- the node source (node_observer.h): the watcher's thread ---- */

/* The inode @parent's entry @name names now, stat'ed through @parent's
 * descriptor (reopened if evicted), then found in the node table. */
static int source_child(struct fs_node_source *src, uint64_t parent, const char *name,
			struct fs_node_child *out)
{
	struct passthrough *pt = container_of(src, struct passthrough, source);
	struct stat st;
	int rc;
	struct pt_inode *dir = dir_get(pt, parent, &rc);

	if (!dir)
		return rc;
	rc = fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	pt_inode_put(pt, dir);
	if (rc)
		return rc;
	pthread_mutex_lock(&pt->lock);
	struct pt_inode *n = pt_hash_find(pt, st.st_dev, st.st_ino);
	rc = n && n->nlookup ? 0 : -ENOENT;
	if (!rc)
		*out = (struct fs_node_child){ .nodeid = n->nodeid, .has_token = n->wd >= 0 };
	pthread_mutex_unlock(&pt->lock);
	return rc;
}

static long source_list(struct fs_node_source *src, uint64_t **ids)
{
	struct passthrough *pt = container_of(src, struct passthrough, source);
	long k = 0;

	pthread_mutex_lock(&pt->lock);
	uint64_t *v = malloc(MAX((size_t)pt->nodes.live, (size_t)1) * sizeof(*v));
	for (uint32_t i = 1; v && i < id_table_end(&pt->nodes) && k < (long)pt->nodes.live; i++) {
		struct pt_inode *n = id_table_slot(&pt->nodes, i);
		if (n && (n->nlookup || n == pt->root))
			v[k++] = n->nodeid;
	}
	pthread_mutex_unlock(&pt->lock);
	*ids = v;
	return v ? k : -ENOMEM;
}

static const struct fs_node_source_ops source_ops = {
	.child = source_child,
	.list = source_list,
};

static const struct fs_backend_ops passthrough_ops = {
	.name = "passthrough",
	.reset = pt_reset,
	.destroy = pt_destroy,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.symlink = pt_symlink,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.link = pt_link,
	.open = pt_open,
	.create = pt_create,
	.tmpfile = pt_tmpfile,
	.read = pt_read,
	.write = pt_write,
	.flush = NULL,               /* nothing buffered: FOPEN_NOFLUSH */
	.fsync = pt_fsync,
	.release = pt_release,
	.fallocate = pt_fallocate,
	.lseek = pt_lseek,
	.copy_file_range = pt_copy_file_range,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.statfs = pt_statfs,
	.syncfs = pt_syncfs,
	.access = pt_access,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	.with_fd = pt_with_fd,
	.state_save = pt_state_save,
	.state_load = pt_state_load,
};

/* ---- setup ---- */

static unsigned default_max_fds(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 4096;
	return (unsigned)MAX(rl.rlim_cur / 2, (rlim_t)16);
}

static bool have_openat2(void)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_BENEATH };
	long fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));

	if (fd >= 0)
		close((int)fd);
	return fd >= 0 || errno != ENOSYS;
}

/* The root node: slot 1 of a fresh table, so its id is FUSE_ROOT_ID. */
static int add_root(struct passthrough *pt, int fd, const struct stat *st)
{
	struct pt_inode *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	if (id_table_alloc(&pt->nodes, n, &n->nodeid) || n->nodeid != ROOT_NODEID) {
		free(n);
		return -ENOMEM;
	}
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->type = S_IFDIR;
	n->fd = fd;
	n->nlookup = 1;
	n->wd = -1;
	pt_hash_add(pt, n);
	pt->root = n;
	pt->nfds = 1;
	/* Nothing else runs yet: pinning is only for form's sake. */
	if (pt->obs) {
		n->refs++;
		pt_inode_watch(pt, n);
	}
	return 0;
}

static int open_root(struct passthrough *pt, const char *root)
{
	struct stat st, mst;
	struct {
		struct file_handle h;
		unsigned char bytes[PT_HANDLE_MAX];
	} fh = { .h.handle_bytes = PT_HANDLE_MAX };
	int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	pt->mount_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pt->mount_fd < 0 || fstat(fd, &st) < 0 || fstat(pt->mount_fd, &mst) < 0 ||
	    st.st_dev != mst.st_dev || st.st_ino != mst.st_ino) {
		int rc = pt->mount_fd < 0 ? -errno : -EAGAIN;
		close(fd);
		return rc;
	}
	pt->root_dev = st.st_dev;
	if (name_to_handle_at(fd, "", &fh.h, &pt->root_mnt_id, AT_EMPTY_PATH) < 0)
		pt->root_mnt_id = -1;
	int rc = add_root(pt, fd, &st);
	if (rc)
		close(fd);
	return rc;
}

static int pt_init(struct passthrough *pt, const struct passthrough_opts *o)
{
	if (!have_openat2())
		return -ENOSYS;
	pt->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pt->proc_fd < 0)
		return -errno;
	pt->nbuckets = 1024;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): a table of pointers, sized per pointer */
	pt->buckets = calloc(pt->nbuckets, sizeof(*pt->buckets));
	if (!pt->buckets || id_table_init(&pt->nodes, pt->opts.max_inodes) ||
	    id_table_init(&pt->files, pt->opts.max_handles))
		return -ENOMEM;
	pt->obs = o->observer ? o->observer : host_watch_observer(o->watch);
	int rc = open_root(pt, o->root);
	if (rc)
		return rc;
	pt->source.ops = &source_ops;
	bind_source(pt, true);
	return 0;
}

struct fs_backend *passthrough_new(const struct passthrough_opts *o, int *err)
{
	struct passthrough *pt = calloc(1, sizeof(*pt));

	if (!pt) {
		*err = -ENOMEM;
		return NULL;
	}
	pt->be.ops = &passthrough_ops;
	pt->opts = *o;
	pt->opts.root = NULL;
	pt->proc_fd = pt->mount_fd = -1;
	pt->run_uid = geteuid();
	pt->run_gid = getegid();
	if (!pt->opts.max_fds)
		pt->opts.max_fds = default_max_fds();
	pt->opts.max_fds = MAX(pt->opts.max_fds, 2u);
	pt->opts.max_inodes = pt->opts.max_inodes ? pt->opts.max_inodes : PT_MAX_INODES_DEFAULT;
	pt->opts.max_handles = pt->opts.max_handles ? pt->opts.max_handles : PT_MAX_HANDLES_DEFAULT;
	pthread_mutex_init(&pt->lock, NULL);
	pthread_mutex_init(&pt->flock, NULL);
	int rc = pt_init(pt, o);
	if (rc) {
		pt_destroy(&pt->be);
		*err = rc;
		return NULL;
	}
	return &pt->be;
}

#define X(name, doc) COUNTER_DESC(struct passthrough_stats, name, doc)
const struct counter_set passthrough_stats_set = COUNTER_LEVELS("passthrough", PASSTHROUGH_STATS(X));
#undef X

void passthrough_get_stats(struct fs_backend *be, struct passthrough_stats *st)
{
	struct passthrough *pt = pt_of(be);

	pthread_mutex_lock(&pt->lock);
	st->nodes = pt->nodes.live;
	st->node_fds = pt->nfds;
	st->evictions = pt->evictions;
	st->reopens = pt->reopens;
	st->stale = pt->restored_stale;
	st->nodes_refused = pt->nodes_refused;
	pthread_mutex_unlock(&pt->lock);
	pthread_mutex_lock(&pt->flock);
	st->files = pt->files.live;
	st->handles_refused = pt->handles_refused;
	pthread_mutex_unlock(&pt->flock);
	st->max_fds = pt->opts.max_fds;
}
