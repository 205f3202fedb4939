/*
 * The passthrough backend in a snapshot: the nodes and open handles the
 * client holds, saved so that a new kvmini over the same share answers the
 * client's old node ids and file handles as before.
 *
 * Section "FSPT" (little-endian, state_io.h):
 *   u32 mount id of the share (the handles' name_to_handle_at mount id, -1)
 *   u32 node count, then per node in rising slot order, the root first:
 *     u64 node id, u64 lookup count, u32 file type (S_IFMT), u64 st_dev,
 *     u64 st_ino, u8 gone (1: unlinked or not found at save time),
 *     u32 handle bytes (0: none, at most MAX_HANDLE_SZ), u32 handle type,
 *     the handle bytes, str path relative to the share ("" for the root, or
 *     when unknown)
 *   u32 handle count, then per handle in rising slot order:
 *     u64 fh, u64 node id (0 when stale), u32 open(2) flags, u8 directory,
 *     u8 stale
 *
 * Finding a node again (resolve()): the saved path, opened beneath the
 * share (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so neither ".."
 * nor a symlink leaves it), when it is still the same file: its file handle
 * (name_to_handle_at, unprivileged) equal to the saved one when the share
 * is the same mount, else the same (st_dev, st_ino). Else the saved handle
 * (the file was renamed on the host), opened with open_by_handle_at (it
 * needs CAP_DAC_READ_SEARCH); the inode it gives must be the saved one,
 * linked, and its /proc path beneath the share (a handle could otherwise
 * name any file of that filesystem; a disconnected one fails the check,
 * closed). Else, only when nothing could tell (no usable handle: another
 * mount, a copy of the share, a filesystem without handles), the path's
 * file of the same type. Else the node is stale: kept in the table under
 * its id with its lookup count, every request on it -ESTALE (fs_backend.h:
 * the answer for a node the backend no longer has; the client drops it),
 * its handles too; FORGET and RELEASE free them. A node unlinked but open
 * at save time (nlink 0) has no name to be found by: stale as well. The
 * restore logs one line per stale node, with its path, and counts it
 * (passthrough_stats.stale).
 *
 * Directory handles are reopened at offset 0 with an empty buffer: the
 * client's READDIR carries the cookie (d_off) to resume from, and the
 * backend seeks there (pt_readdir), as after any out-of-order read.
 * Regular files are reopened through the node's /proc/self/fd link with
 * their saved flags, O_TRUNC / O_CREAT / O_EXCL never among them.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/fuse.h>
#include <linux/openat2.h>

#include "core/compiler.h"
#include "core/log.h"
#include "fs/passthrough_internal.h"

#define PT_STATE_TAG "FSPT"
/* Bounds on what a section may ask for: ids are slots of tables that only
 * grow as far as the client's live references ever reached. */
#define PT_STATE_MAX_NODES (1u << 20)
#define PT_STATE_MAX_FILES (1u << 20)
#define PT_STATE_MAX_SLOT (1u << 22)
#define PT_STATE_MAX_NLOOKUP (1ull << 48)
/* The fewest bytes one saved node and one saved handle take. */
#define NODE_MIN_BYTES (8u + 8u + 4u + 8u + 8u + 1u + 4u + 4u + 4u)
#define FILE_MIN_BYTES (8u + 8u + 4u + 1u + 1u)
/* The flags a saved handle may carry (open_flags() minus O_TRUNC). */
#define FILE_FLAGS_OK ((uint32_t)(O_ACCMODE | O_APPEND | O_SYNC | O_DSYNC | O_NOATIME))

struct saved_node {
	uint64_t id, nlookup, dev, ino;
	uint32_t type;
	bool gone;
	uint32_t hbytes;
	int32_t htype;
	uint8_t *handle;             /* hbytes of them, or NULL */
	char *path;
};

struct saved_file {
	uint64_t fh, nodeid;
	uint32_t flags;
	bool dir, stale;
};

struct saved_state {
	int32_t mnt_id;
	uint32_t nnodes, nfiles;
	struct saved_node *nodes;
	struct saved_file *files;
};

/* --- paths ------------------------------------------------------------------- */

/* Where descriptor @fd is, as /proc shows it: 0 or -errno. */
static int fd_path(int fd, char *buf, size_t size)
{
	char link[32];

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, size - 1);
	if (n < 0)
		return -errno;
	if ((size_t)n >= size - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

/* @full's part below @root ("a/b" of "/share/a/b"), or NULL when @full is
 * not beneath it. */
static const char *below(const char *root, const char *full)
{
	size_t n = strcmp(root, "/") ? strlen(root) : 0;

	if (strncmp(full, root, n) || full[n] != '/' || !full[n + 1])
		return NULL;
	return full + n + 1;
}

/* --- saving ------------------------------------------------------------------ */

/* The node's handle, or none: bytes 0. Called with pt->lock held. */
static void put_handle(struct passthrough *pt, struct pt_inode *n, struct state_writer *w)
{
	if (n->fd < 0 || n == pt->root || !pt_inode_make_handle(pt, n)) {
		state_put_u32(w, 0);
		state_put_u32(w, 0);
		return;
	}
	state_put_u32(w, n->handle->handle_bytes);
	state_put_u32(w, (uint32_t)n->handle->handle_type);
	state_put_bytes(w, n->handle->f_handle, n->handle->handle_bytes);
}

/* Is @n a node whose inode has no name left (unlinked while open)? */
static bool node_unlinked(const struct pt_inode *n)
{
	struct stat st;

	/* A removed directory has no links either. */
	return fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
	       st.st_nlink == 0;
}

/* One node; a node that cannot be reached now is saved gone. Called with
 * pt->lock held. */
static void save_node(struct passthrough *pt, struct pt_inode *n, const char *root,
		      struct state_writer *w)
{
	char full[PATH_MAX];
	const char *rel = NULL;
	bool gone = n->stale || (n->fd < 0 && pt_inode_reopen(pt, n) < 0);

	if (!gone && n != pt->root) {
		gone = node_unlinked(n);
		if (!gone && fd_path(n->fd, full, sizeof(full)) == 0)
			rel = below(root, full);
	}
	state_put_u64(w, n->nodeid);
	state_put_u64(w, n->nlookup);
	state_put_u32(w, (uint32_t)n->type);
	state_put_u64(w, (uint64_t)n->dev);
	state_put_u64(w, (uint64_t)n->ino);
	state_put_u8(w, gone);
	if (gone) {
		state_put_u32(w, 0);
		state_put_u32(w, 0);
	} else {
		put_handle(pt, n, w);
	}
	state_put_str(w, rel);
}

static void save_nodes(struct passthrough *pt, struct state_writer *w)
{
	char root[PATH_MAX];

	if (fd_path(pt->root->fd, root, sizeof(root)) < 0)
		root[0] = '\0';     /* no paths then: handles only */
	pthread_mutex_lock(&pt->lock);
	state_put_u32(w, (uint32_t)pt->root_mnt_id);
	state_put_u32(w, pt->nodes.live);
	for (uint32_t i = 1; i < id_table_end(&pt->nodes); i++) {
		struct pt_inode *n = id_table_slot(&pt->nodes, i);
		if (n)
			save_node(pt, n, root[0] ? root : "\x01", w);
	}
	pthread_mutex_unlock(&pt->lock);
}

/* A handle whose node the client forgot (a hostile client can) or that is
 * stale already is saved stale: there is nothing to open it from. */
static bool file_node_live(struct passthrough *pt, const struct pt_file *f)
{
	pthread_mutex_lock(&pt->lock);
	const struct pt_inode *n = id_table_get(&pt->nodes, f->nodeid);
	bool live = n && !n->stale;
	pthread_mutex_unlock(&pt->lock);
	return live;
}

static void save_files(struct passthrough *pt, struct state_writer *w)
{
	pthread_mutex_lock(&pt->flock);
	state_put_u32(w, pt->files.live);
	for (uint32_t i = 1; i < id_table_end(&pt->files); i++) {
		const struct pt_file *f = id_table_slot(&pt->files, i);
		if (!f)
			continue;
		bool stale = f->stale || !file_node_live(pt, f);
		state_put_u64(w, id_table_id(&pt->files, i));
		state_put_u64(w, stale ? 0 : f->nodeid);
		state_put_u32(w, (uint32_t)f->flags);
		state_put_u8(w, f->dir);
		state_put_u8(w, stale);
	}
	pthread_mutex_unlock(&pt->flock);
}

/* The client has no request in flight (the device's pause gate). */
int pt_state_save(struct fs_backend *be, struct state_writer *w, struct errbuf *eb)
{
	struct passthrough *pt = pt_of(be);

	state_begin(w, PT_STATE_TAG);
	save_nodes(pt, w);
	save_files(pt, w);
	state_end(w);
	return 0;
}

/* --- parsing and checking ---------------------------------------------------- */

static void saved_free(struct saved_state *s)
{
	for (uint32_t i = 0; s->nodes && i < s->nnodes; i++) {
		free(s->nodes[i].handle);
		free(s->nodes[i].path);
	}
	free(s->nodes);
	free(s->files);
}

static bool type_known(uint32_t t)
{
	return t == S_IFREG || t == S_IFDIR || t == S_IFLNK || t == S_IFIFO || t == S_IFSOCK ||
	       t == S_IFCHR || t == S_IFBLK;
}

/* Relative, no "." or ".." or empty component (NULs are the reader's). */
static bool path_ok(const char *p)
{
	if (p[0] == '/')
		return false;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/' && !*++p)
			return false;   /* a trailing slash */
	}
	return true;
}

/* A count of entries at least @min bytes each that the section can hold. */
static bool get_count(struct state_reader *r, uint32_t max, size_t min, uint32_t *n,
		      const char *what)
{
	*n = state_get_u32(r);
	if (r->failed)
		return false;
	if (*n > max)
		return state_fail(r, "%u %s, at most %u", *n, what, max);
	if ((size_t)*n * min > r->len - r->off)
		return state_fail(r, "%u %s do not fit in the %zu bytes left: truncated", *n, what,
				  r->len - r->off);
	return true;
}

static bool get_handle(struct state_reader *r, struct saved_node *sn)
{
	char path[PATH_MAX];

	sn->hbytes = state_get_u32(r);
	sn->htype = (int32_t)state_get_u32(r);
	if (sn->hbytes > PT_HANDLE_MAX)
		return state_fail(r, "node %#llx: a file handle of %u bytes, at most %u",
				  (unsigned long long)sn->id, sn->hbytes, PT_HANDLE_MAX);
	if (sn->hbytes && !r->failed) {
		if (!(sn->handle = malloc(sn->hbytes)))
			return state_fail(r, "out of memory");
		state_get_bytes(r, sn->handle, sn->hbytes);
	}
	if (!state_get_str(r, path, sizeof(path)))
		return false;
	if (path[0] && !path_ok(path))
		return state_fail(r, "node %#llx: path \"%s\" is not a plain relative path",
				  (unsigned long long)sn->id, path);
	if (!(sn->path = strdup(path)))
		return state_fail(r, "out of memory");
	return true;
}

static bool get_node(struct state_reader *r, struct saved_node *sn, uint64_t prev_slot)
{
	sn->id = state_get_u64(r);
	sn->nlookup = state_get_u64(r);
	sn->type = state_get_u32(r);
	sn->dev = state_get_u64(r);
	sn->ino = state_get_u64(r);
	sn->gone = state_get_bool(r);
	if (r->failed)
		return false;
	uint32_t slot = (uint32_t)sn->id;
	if (slot == 0 || slot > PT_STATE_MAX_SLOT || slot <= prev_slot)
		return state_fail(r, "node id %#llx: zero, past the bound or not after the one before "
				  "(ids must rise and be unique)", (unsigned long long)sn->id);
	if (!type_known(sn->type))
		return state_fail(r, "node %#llx: unknown file type %#o",
				  (unsigned long long)sn->id, sn->type);
	if ((sn->id != FUSE_ROOT_ID && sn->nlookup == 0) || sn->nlookup > PT_STATE_MAX_NLOOKUP)
		return state_fail(r, "node %#llx: lookup count %llu", (unsigned long long)sn->id,
				  (unsigned long long)sn->nlookup);
	return get_handle(r, sn);
}

static bool get_nodes(struct state_reader *r, struct saved_state *s)
{
	s->mnt_id = (int32_t)state_get_u32(r);
	if (!get_count(r, PT_STATE_MAX_NODES, NODE_MIN_BYTES, &s->nnodes, "nodes"))
		return false;
	if (s->nnodes == 0)
		return state_fail(r, "no nodes: the root (node 1) must be there");
	if (!(s->nodes = calloc(s->nnodes, sizeof(*s->nodes))))
		return state_fail(r, "out of memory");
	uint64_t prev = 0;
	for (uint32_t i = 0; i < s->nnodes; i++) {
		if (!get_node(r, &s->nodes[i], prev))
			return false;
		prev = (uint32_t)s->nodes[i].id;
	}
	const struct saved_node *root = &s->nodes[0];
	if (root->id != FUSE_ROOT_ID || root->type != S_IFDIR || !root->path || root->path[0] ||
	    root->gone)
		return state_fail(r, "the first node is not the root directory, id 1");
	return true;
}

/* The saved node @id (nodes rise by slot), or NULL. */
static const struct saved_node *find_node(const struct saved_state *s, uint64_t id)
{
	uint32_t lo = 0, hi = s->nnodes;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if ((uint32_t)s->nodes[mid].id < (uint32_t)id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nnodes && s->nodes[lo].id == id ? &s->nodes[lo] : NULL;
}

static bool check_file(struct state_reader *r, const struct saved_state *s,
		       const struct saved_file *sf)
{
	const struct saved_node *sn = find_node(s, sf->nodeid);
	uint32_t allowed = sf->dir ? (uint32_t)(O_RDONLY | O_DIRECTORY) : FILE_FLAGS_OK;

	if ((sf->flags & ~allowed) || (sf->flags & O_ACCMODE) == O_ACCMODE ||
	    (sf->dir && sf->flags != (uint32_t)(O_RDONLY | O_DIRECTORY)))
		return state_fail(r, "handle %#llx: open flags %#x", (unsigned long long)sf->fh,
				  sf->flags);
	if (sf->stale)
		return sf->nodeid == 0 || state_fail(r, "stale handle %#llx names a node",
						     (unsigned long long)sf->fh);
	if (!sn)
		return state_fail(r, "handle %#llx: node %#llx is not in the state",
				  (unsigned long long)sf->fh, (unsigned long long)sf->nodeid);
	if (sn->type != (sf->dir ? (uint32_t)S_IFDIR : (uint32_t)S_IFREG))
		return state_fail(r, "handle %#llx: a %s handle on a node of type %#o",
				  (unsigned long long)sf->fh, sf->dir ? "directory" : "file", sn->type);
	return true;
}

static bool get_files(struct state_reader *r, struct saved_state *s)
{
	if (!get_count(r, PT_STATE_MAX_FILES, FILE_MIN_BYTES, &s->nfiles, "handles"))
		return false;
	if (s->nfiles && !(s->files = calloc(s->nfiles, sizeof(*s->files))))
		return state_fail(r, "out of memory");
	uint32_t prev = 0;
	for (uint32_t i = 0; i < s->nfiles; i++) {
		struct saved_file *sf = &s->files[i];
		sf->fh = state_get_u64(r);
		sf->nodeid = state_get_u64(r);
		sf->flags = state_get_u32(r);
		sf->dir = state_get_bool(r);
		sf->stale = state_get_bool(r);
		if (r->failed)
			return false;
		uint32_t slot = (uint32_t)sf->fh;
		if (slot == 0 || slot > PT_STATE_MAX_SLOT || slot <= prev)
			return state_fail(r, "handle %#llx: zero, past the bound or not after the one "
					  "before (handles must rise and be unique)",
					  (unsigned long long)sf->fh);
		if (!check_file(r, s, sf))
			return false;
		prev = slot;
	}
	return true;
}

/* Phase one: the whole section, checked; nothing touched. */
static bool parse(struct state_reader *r, struct saved_state *s)
{
	struct state_reader sec;

	memset(s, 0, sizeof(*s));
	if (!state_section(r, PT_STATE_TAG, &sec))
		return false;
	if (get_nodes(&sec, s))
		get_files(&sec, s);
	return state_section_done(r, &sec);
}

/* --- finding nodes again ----------------------------------------------------- */

static bool same_inode(const struct saved_node *sn, const struct stat *st)
{
	return (uint64_t)st->st_dev == sn->dev && (uint64_t)st->st_ino == sn->ino &&
	       (st->st_mode & S_IFMT) == sn->type;
}

/* Still linked somewhere (a directory that was removed has no links). */
static bool linked(const struct stat *st)
{
	return st->st_nlink > 0;
}

/* Can the saved handle be compared with, or opened on, this share? */
static bool handle_usable(const struct passthrough *pt, int32_t mnt_id,
			  const struct saved_node *sn)
{
	return sn->hbytes && sn->handle && mnt_id != -1 && mnt_id == pt->root_mnt_id;
}

/* The saved path, confined beneath the share; -errno. */
static int open_saved_path(struct passthrough *pt, const struct saved_node *sn, struct stat *st)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};

	if (!sn->path || !sn->path[0])
		return -ENOENT;
	long fd = syscall(SYS_openat2, pt->root->fd, sn->path, &how, sizeof(how));
	if (fd < 0)
		return -errno;
	if (fstatat((int)fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int rc = -errno;
		close((int)fd);
		return rc;
	}
	return (int)fd;
}

/* The saved handle, when it still names the saved inode beneath the share;
 * -ESTALE when the filesystem says the file is gone, other -errno when the
 * handle could not be tried. */
static int open_saved_handle(struct passthrough *pt, int32_t mnt_id,
			     const struct saved_node *sn, const char *root, struct stat *st)
{
	struct {
		struct file_handle h;
		unsigned char bytes[PT_HANDLE_MAX];
	} fh = { .h.handle_bytes = sn->hbytes, .h.handle_type = sn->htype };
	char full[PATH_MAX];

	/* Another mount (a remount, another host): the handle means nothing. */
	if (!sn->handle || !handle_usable(pt, mnt_id, sn) || !root[0])
		return -EOPNOTSUPP;
	memcpy(fh.h.f_handle, sn->handle, sn->hbytes);
	int fd = open_by_handle_at(pt->mount_fd, &fh.h, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 || !same_inode(sn, st) ||
	    !linked(st) || fd_path(fd, full, sizeof(full)) < 0 || !below(root, full)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

enum verdict { V_SAME, V_OTHER, V_UNKNOWN };

/* Is the inode open as @fd (@st) the saved one? Its file handle says for
 * sure (inode numbers are reused, handles carry a generation); without a
 * usable one, (st_dev, st_ino) equal is the same and anything else is
 * unknown (a copy of the share, a filesystem without handles). */
static enum verdict same_file(const struct passthrough *pt, int32_t mnt_id,
			      const struct saved_node *sn, int fd, const struct stat *st)
{
	struct {
		struct file_handle h;
		unsigned char bytes[PT_HANDLE_MAX];
	} fh = { .h.handle_bytes = PT_HANDLE_MAX };
	int mnt;

	if ((st->st_mode & S_IFMT) != sn->type || !linked(st))
		return V_OTHER;
	if (handle_usable(pt, mnt_id, sn) &&
	    name_to_handle_at(fd, "", &fh.h, &mnt, AT_EMPTY_PATH) == 0)
		return fh.h.handle_bytes == sn->hbytes && fh.h.handle_type == sn->htype &&
		       !memcmp(fh.h.f_handle, sn->handle, sn->hbytes) ? V_SAME : V_OTHER;
	return same_inode(sn, st) ? V_SAME : V_UNKNOWN;
}

/*
 * resolve() - find saved node @sn on the host again (see the top of this
 * file for the order). Returns an O_PATH descriptor with *@st, or -errno
 * with *@why saying what became of it.
 */
static int resolve(struct passthrough *pt, int32_t mnt_id, const struct saved_node *sn,
		   const char *root, struct stat *st, const char **why)
{
	struct stat pst;
	int pfd = open_saved_path(pt, sn, &pst);
	enum verdict v = pfd >= 0 ? same_file(pt, mnt_id, sn, pfd, &pst) : V_OTHER;

	if (v == V_SAME) {
		*st = pst;
		return pfd;
	}
	int hfd = open_saved_handle(pt, mnt_id, sn, root, st);
	if (hfd >= 0) {
		if (pfd >= 0)
			close(pfd);
		return hfd;
	}
	if (v == V_UNKNOWN) {
		*st = pst;
		return pfd;
	}
	if (pfd >= 0)
		close(pfd);
	*why = pfd >= 0 ? "replaced by another file" :
	       hfd == -ESTALE || pfd == -ENOENT ? "gone on the host" : strerror(-pfd);
	return -ESTALE;
}

/* --- applying ---------------------------------------------------------------- */

/* The backend as passthrough_new left it: only the root, no handle. */
static bool fresh(struct passthrough *pt)
{
	pthread_mutex_lock(&pt->lock);
	bool nodes = pt->nodes.live == 1;
	pthread_mutex_unlock(&pt->lock);
	pthread_mutex_lock(&pt->flock);
	bool files = pt->files.live == 0;
	pthread_mutex_unlock(&pt->flock);
	return nodes && files;
}

static void log_stale(const struct saved_node *sn, const char *why)
{
	log_warn("passthrough: snapshot node %#llx \"%s\" is %s: requests on it answer ESTALE",
		 (unsigned long long)sn->id, sn->path && sn->path[0] ? sn->path : "(no path)", why);
}

/* A node of the restored table: found again as @fd, or stale (fd < 0). */
static struct pt_inode *new_node(const struct saved_node *sn, int fd, const struct stat *st)
{
	struct pt_inode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->nodeid = sn->id;
	n->nlookup = sn->nlookup;
	n->type = sn->type;
	n->fd = fd;
	n->wd = -1;
	n->stale = fd < 0;
	if (fd >= 0) {
		n->dev = st->st_dev;
		n->ino = st->st_ino;
		n->links = st->st_nlink;
	} else {
		n->no_handle = true;    /* nothing to reopen: never evicted */
	}
	return n;
}

/* Enter @n under its saved id; a node found as an inode another node has
 * already (a path that now names that one) is made stale: one inode, one
 * node. Returns 0 or -errno (@n not entered). */
static int enter_node(struct passthrough *pt, struct pt_inode *n)
{
	struct pt_inode *watch = NULL;

	pthread_mutex_lock(&pt->lock);
	if (!n->stale && pt_hash_find(pt, n->dev, n->ino)) {
		close(n->fd);
		n->fd = -1;
		n->stale = n->no_handle = true;
	}
	int rc = id_table_insert(&pt->nodes, n->nodeid, n, PT_STATE_MAX_SLOT);
	if (!rc && n->stale) {
		pt->restored_stale++;
	} else if (!rc) {
		pt_hash_add(pt, n);
		pt_hash_grow(pt);
		pt->nfds++;
		watch = pt_inode_attached(pt, n);
	}
	pthread_mutex_unlock(&pt->lock);
	if (watch)
		pt_inode_watch(pt, watch);   /* the host watcher's watch, as for a lookup */
	return rc;
}

static bool apply_node(struct passthrough *pt, int32_t mnt_id, const struct saved_node *sn,
		       const char *root)
{
	const char *why = "unlinked or unreachable when the snapshot was taken";
	struct stat st = { 0 };
	int fd = sn->gone ? -ESTALE : resolve(pt, mnt_id, sn, root, &st, &why);
	struct pt_inode *n = new_node(sn, fd, &st);

	if (!n || enter_node(pt, n)) {
		if (n && n->fd >= 0)
			close(n->fd);
		else if (!n && fd >= 0)
			close(fd);
		free(n);
		return false;
	}
	if (n->stale)
		log_stale(sn, fd < 0 ? why : "the same file as another node");
	return true;
}

/* Open handle @sf again from its node, or keep it stale. */
static int reopen_file(struct passthrough *pt, const struct saved_file *sf)
{
	int rc;
	struct pt_inode *n = sf->stale ? NULL : pt_inode_get(pt, sf->nodeid, &rc);

	if (!n)
		return -ESTALE;
	rc = pt_inode_open(pt, n, (int)sf->flags);
	pt_inode_put(pt, n);
	if (rc < 0)
		log_warn("passthrough: snapshot handle %#llx of node %#llx cannot be opened again: "
			 "%s; requests on it answer ESTALE", (unsigned long long)sf->fh,
			 (unsigned long long)sf->nodeid, strerror(-rc));
	return rc;
}

static bool apply_file(struct passthrough *pt, const struct saved_file *sf)
{
	struct pt_file *f = calloc(1, sizeof(*f));

	if (!f)
		return false;
	pthread_mutex_init(&f->dlock, NULL);
	f->dir = sf->dir;
	f->nodeid = sf->nodeid;
	f->flags = (int)sf->flags;
	f->refs = 1;
	f->fd = reopen_file(pt, sf);
	f->stale = f->fd < 0;
	pthread_mutex_lock(&pt->flock);
	int rc = id_table_insert(&pt->files, sf->fh, f, PT_STATE_MAX_SLOT);
	pthread_mutex_unlock(&pt->flock);
	if (rc)
		pt_file_free(f);
	return rc == 0;
}

/* Phase two: the checked state into the fresh backend. Only memory can
 * fail here; the caller then resets the backend to its fresh state. */
static bool apply(struct passthrough *pt, const struct saved_state *s)
{
	char root[PATH_MAX];
	const struct saved_node *sr = s->nodes;

	if (!sr)
		return false;           /* parse() never lets this through */
	if (fd_path(pt->root->fd, root, sizeof(root)) < 0)
		root[0] = '\0';
	/* Another directory (a clone's copy of the share): the saved handles
	 * name the snapshot's files, never this directory's, so they identify
	 * nothing here; the paths (and types) do. */
	int32_t mnt_id = s->mnt_id;
	if ((uint64_t)pt->root_dev != sr->dev || (uint64_t)pt->root->ino != sr->ino) {
		log_warn("passthrough: the share is another directory than when the snapshot was "
			 "taken: nodes are found by their paths");
		mnt_id = -1;
	}
	for (uint32_t i = 1; i < s->nnodes; i++) {
		if (!apply_node(pt, mnt_id, &s->nodes[i], root))
			return false;
	}
	for (uint32_t i = 0; i < s->nfiles; i++) {
		if (!apply_file(pt, &s->files[i]))
			return false;
	}
	return true;
}

/* Into a backend fresh from passthrough_new, before the client runs. */
bool pt_state_load(struct fs_backend *be, struct state_reader *r)
{
	struct passthrough *pt = pt_of(be);
	struct saved_state s;
	bool ok = parse(r, &s);

	if (ok && !fresh(pt))
		ok = state_fail(r, "section %s: the backend has nodes or handles already; a restore "
				"needs a fresh one", PT_STATE_TAG);
	if (ok && !apply(pt, &s)) {
		be->ops->reset(be);
		ok = state_fail(r, "section %s: out of memory rebuilding the node table",
				PT_STATE_TAG);
	}
	if (ok)
		log_info("passthrough: restored %u nodes and %u handles; %llu nodes stale",
			 s.nnodes, s.nfiles, (unsigned long long)pt->restored_stale);
	saved_free(&s);
	return ok;
}
