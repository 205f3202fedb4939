/*
 * Host-change watcher (see host_watch.h). Order: watch table, adding and
 * removing watches, event mapping, the event loop, lifecycle.
 */
#include "fs/host_watch.h"
#include "core/seccomp_filter.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "core/atomics.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "fuse/fuse_server.h"

/* What a directory's watch reports: its entries and its own attributes,
 * and its children's attributes (IN_ATTRIB comes for both). In the
 * directory scheme also its children's data (IN_MODIFY), since most files
 * have no watch of their own there. */
/* No IN_DONT_FOLLOW: the path is the /proc/self/fd magic link, which must
 * be followed to reach the node (never a symlink: those are not watched). */
#define DIR_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | \
		  IN_MOVE_SELF | IN_DELETE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)
#define DIR_MASK_CHILDREN (DIR_MASK | IN_MODIFY)
/* No IN_CLOSE_WRITE: every client file closed after writing would invalidate
 * itself; IN_MODIFY already reports write(2) and truncate. */
#define FILE_MASK (IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)
#define ENTRY_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)
/* A node's own events the client's changes cause (see host_watch_expect_node). */
#define NODE_EVENTS (IN_ATTRIB | IN_MODIFY | IN_MOVE_SELF)
#define READ_BUF_SIZE 65536u
/* After the first event of a burst, the thread waits this long before it
 * reads: a burst of changes (a client unlinking thousands of files, each
 * an event on its directory's watch) is read in one wake-up instead of one
 * per event, each a thread switch on the client's cores. A host change
 * reaches the guest this much later. */
#define BURST_GATHER_NS 1000000L
/* How many queued notifications a new one is compared with for repeats. */
#define DEDUP_WINDOW 16u
/* Entry changes the client makes itself, remembered so their events are not
 * sent back to it: how many, and for how long. */
#define EXPECT_SLOTS 256u
#define EXPECT_TTL_MS 2000u
/* Changes to nodes themselves: one slot per node, found by its id (a
 * collision only sends the older node's event). */
#define NODE_EXPECT_SLOTS 256u

struct expect {
	uint64_t token;              /* 0: free */
	uint64_t nodeid;
	uint32_t mask;
	uint64_t deadline_ms;
	char name[NAME_MAX + 1];
};

/* The kinds of a node's own events, in the order of node_expect.busy. */
#define NODE_KINDS 3
static const uint32_t node_kinds[NODE_KINDS] = { IN_ATTRIB, IN_MODIFY, IN_MOVE_SELF };

/*
 * The kinds of a node's own events the client's changes will cause. A kind
 * is taken by the batch of events that has it (the kernel merges repeats
 * still queued, so one event may stand for several changes, and one batch
 * may hold several), once every change of that kind ended before the batch
 * was read (settle_node_expects): a change still under way, or announced
 * since, has its event still to come.
 */
struct node_expect {
	uint64_t nodeid;             /* 0: free */
	uint32_t mask;
	uint32_t matched;            /* kinds the batch being handled has */
	uint16_t busy[NODE_KINDS];   /* changes announced, not yet ended */
	/* host_watch.node_seq at each kind's last announcement or end */
	uint64_t last_seq[NODE_KINDS];
	uint64_t deadline_ms;
};

/* A child's event on its directory's watch (the directory scheme), its
 * node found by name once the watcher's lock is dropped (resolve_children). */
struct child_event {
	uint64_t parent;
	const char *name;            /* points into the event; namelen bytes */
	size_t namelen;
	uint32_t kind;               /* the node's own event it stands for */
	uint64_t nodeid;             /* 0: no node the client knows, or one with its own watch */
};

struct watch_entry {
	int wd;
	bool dir;
	/* The node forgot it; its inotify_rm_watch waits for the thread. */
	bool forgotten;
	uint64_t nodeid;
	struct watch_entry *next;
};

struct host_watch {
	struct fs_node_observer obs; /* what the backend calls: observer_ops */
	int ifd;                     /* inotify, non-blocking */
	int stop_fd;                 /* eventfd: the thread must end */
	int wake_fd;                 /* eventfd: watches to remove (deferred) */
	unsigned max_watches;
	enum host_watch_scheme scheme;
	pthread_t thread;
	bool started;
	/* Set by start; read by the thread and by adds (atomic). */
	struct fuse_server *server;

	pthread_mutex_t lock;        /* the table, the watch counters */
	struct watch_entry **buckets;
	size_t nbuckets;             /* power of two */
	size_t count;
	unsigned reserved;           /* adds in progress, counted against the bound */
	bool running;                /* the thread takes removals (deferred) */
	int *deferred;               /* watches forgotten, removed by the thread */
	size_t ndeferred, deferred_cap;
	uint64_t watches_added, watches_refused, watches_failed, watches_skipped;
	struct expect expect[EXPECT_SLOTS];
	uint64_t expect_next;        /* next token; slot = token % EXPECT_SLOTS */
	uint64_t node_seq;           /* counts node announcements and their ends */
	struct node_expect node_expect[NODE_EXPECT_SLOTS];
	uint64_t events_own, unwatch_failed;

	/* The backend's node source (node_observer.h): held by the thread
	 * while it maps children's names, taken back by the backend before
	 * it goes. Lock order: src_lock, then w->lock (the backend's lookup
	 * may drop a node and so call host_watch_remove); never the reverse. */
	pthread_mutex_t src_lock;
	struct fs_node_source *src;
	bool resolve_off;            /* stopped: the stop's last reads map no names */

	/* Atomic: updated by the thread, read by anyone. */
	uint64_t events, events_unknown, events_gone, overflows, invals, invals_failed;
	uint64_t file_watches_spared, child_events, child_unmapped;
};

/* ---- watch table: wd -> node, under w->lock ---- */

static size_t bucket_of(const struct host_watch *w, int wd)
{
	return ((unsigned)wd * 0x9e3779b1u) & (w->nbuckets - 1);
}

static struct watch_entry *table_find(struct host_watch *w, int wd)
{
	struct watch_entry *e = w->buckets[bucket_of(w, wd)];

	while (e && e->wd != wd)
		e = e->next;
	return e;
}

/* Double the buckets when the table outgrows them; failure only slows it. */
static void table_grow(struct host_watch *w)
{
	if (w->count <= w->nbuckets)
		return;
	size_t oldn = w->nbuckets;
	struct watch_entry **old = w->buckets;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): a table of pointers, sized per pointer */
	struct watch_entry **nv = calloc(oldn * 2, sizeof(*nv));

	if (!nv)
		return;
	w->buckets = nv;
	w->nbuckets = oldn * 2;
	for (size_t i = 0; i < oldn; i++) {
		for (struct watch_entry *e = old[i], *next; e; e = next) {
			next = e->next;
			size_t b = bucket_of(w, e->wd);
			e->next = w->buckets[b];
			w->buckets[b] = e;
		}
	}
	free(old);
}

/* Record @wd for @nodeid. The kernel hands the same wd for an inode it
 * already watches: then the entry now belongs to @nodeid. */
static int table_set(struct host_watch *w, int wd, uint64_t nodeid, bool dir)
{
	struct watch_entry *e = table_find(w, wd);

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		size_t b = bucket_of(w, wd);
		e->wd = wd;
		e->next = w->buckets[b];
		w->buckets[b] = e;
		w->count++;
		w->watches_added++;
		table_grow(w);
	}
	e->nodeid = nodeid;
	e->dir = dir;
	e->forgotten = false;
	return 0;
}

static void table_del(struct host_watch *w, struct watch_entry *e)
{
	struct watch_entry **pp = &w->buckets[bucket_of(w, e->wd)];

	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp)
		*pp = e->next;
	free(e);
	w->count--;
}

/* ---- adding and removing watches (request workers) ---- */

/* Reserve room under the bound; false (counted) when there is none. */
static bool reserve(struct host_watch *w)
{
	bool ok;

	pthread_mutex_lock(&w->lock);
	ok = w->count + w->reserved < w->max_watches;
	if (ok)
		w->reserved++;
	else
		w->watches_refused++;
	pthread_mutex_unlock(&w->lock);
	return ok;
}

/* Nobody to tell (a virtio-fs driver without the notification queue): no
 * watch, counted. A new driver sends a new INIT, which drops every node
 * but the root, so nodes are watched again as the new client looks them up. */
static bool nobody_to_tell(struct host_watch *w)
{
	struct fuse_server *s = load_acquire(&w->server);

	if (!s || fuse_server_notify_possible(s))
		return false;
	pthread_mutex_lock(&w->lock);
	w->watches_skipped++;
	pthread_mutex_unlock(&w->lock);
	return true;
}

int host_watch_add(struct host_watch *w, uint64_t nodeid, int fd, mode_t type)
{
	char path[32];
	bool dir = type == S_IFDIR;

	if (!w || (type != S_IFDIR && type != S_IFREG) || fd < 0)
		return -EOPNOTSUPP;
	if (nobody_to_tell(w))
		return -EOPNOTSUPP;
	if (!reserve(w))
		return -ENOSPC;
	/* The magic link is the node's own inode: nothing else gets watched. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	uint32_t dmask = w->scheme == HOST_WATCH_DIRS ? DIR_MASK_CHILDREN : DIR_MASK;
	int wd = inotify_add_watch(w->ifd, path, dir ? dmask : FILE_MASK);
	int err = wd < 0 ? -errno : 0;

	pthread_mutex_lock(&w->lock);
	w->reserved--;
	if (wd >= 0) {
		err = table_set(w, wd, nodeid, dir);
		if (err)
			inotify_rm_watch(w->ifd, wd);
	}
	if (err)
		w->watches_failed++;
	pthread_mutex_unlock(&w->lock);
	if (err == -ENOSPC)
		log_debug("watch: fs.inotify.max_user_watches reached; node %llu unwatched",
			  (unsigned long long)nodeid);
	return err ? err : wd;
}

/* Under w->lock: end watch @e. Under the lock: an add of the same inode
 * would get this wd. */
static int unwatch(struct host_watch *w, struct watch_entry *e)
{
	int wd = e->wd;

	table_del(w, e);
	if (inotify_rm_watch(w->ifd, wd) == 0)
		return 0;
	w->unwatch_failed++;
	return -errno;
}

/* Under w->lock: leave @e's removal to the thread; false when it cannot. */
static bool defer_unwatch(struct host_watch *w, struct watch_entry *e)
{
	if (!w->running)
		return false;
	if (w->ndeferred == w->deferred_cap) {
		size_t cap = MAX(w->deferred_cap * 2, (size_t)64);
		int *nv = realloc(w->deferred, cap * sizeof(*nv));
		if (!nv)
			return false;
		w->deferred = nv;
		w->deferred_cap = cap;
	}
	w->deferred[w->ndeferred++] = e->wd;
	e->forgotten = true;
	return true;
}

/*
 * Unless the node's descriptor is still open (@held), the kernel may have
 * ended the watch already: a file deleted while the node had no descriptor
 * (evicted) goes with its last dentry, and its IN_IGNORED is queued before
 * the client could forget the node. Only the thread, having read the queue
 * empty, knows; so with the thread running the removal waits for it, and
 * the node's events meanwhile map to nothing.
 */
int host_watch_remove(struct host_watch *w, int wd, uint64_t nodeid, bool held)
{
	int rc = 0;
	bool wake = false;

	if (!w || wd < 0)
		return 0;
	pthread_mutex_lock(&w->lock);
	struct watch_entry *e = table_find(w, wd);
	if (e && e->nodeid == nodeid && !e->forgotten) {
		wake = !held && defer_unwatch(w, e);
		if (!wake)
			rc = unwatch(w, e);
	}
	pthread_mutex_unlock(&w->lock);
	if (wake && eventfd_write(w->wake_fd, 1) < 0)
		log_warn("watch: eventfd: %s", strerror(errno));
	return rc;
}

/* Under w->lock: the first @k deferred removals, of watches the kernel has
 * not ended (no IN_IGNORED read) and no new node took again. */
static void unwatch_deferred(struct host_watch *w, size_t k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k; i++) {
		struct watch_entry *e = table_find(w, w->deferred[i]);
		if (e && e->forgotten)
			unwatch(w, e);
	}
	w->ndeferred -= k;
	memmove(w->deferred, w->deferred + k, w->ndeferred * sizeof(*w->deferred));
}

/*
 * In the directory scheme a file with one link is left to its directory's
 * watch: its events come there with its name. A file with more links may
 * change under a name in a directory nobody watches (or outside the
 * share), and its link count changes reach no directory's watch at all:
 * it keeps a watch of its own.
 */
static int observer_added(struct fs_node_observer *obs, uint64_t nodeid, int fd, mode_t type,
			  nlink_t nlink)
{
	struct host_watch *w = container_of(obs, struct host_watch, obs);

	if (w->scheme == HOST_WATCH_DIRS && type == S_IFREG && nlink <= 1) {
		/* Counted as skipped first, as in the other scheme. */
		if (!nobody_to_tell(w))
			fetch_add_relaxed(&w->file_watches_spared, 1);
		return -EOPNOTSUPP;
	}
	return host_watch_add(w, nodeid, fd, type);
}

static void observer_forgotten(struct fs_node_observer *obs, uint64_t nodeid, int token,
			       bool held)
{
	host_watch_remove(container_of(obs, struct host_watch, obs), token, nodeid, held);
}

/* Waits for the thread to finish mapping names when the source goes. */
static void observer_bind(struct fs_node_observer *obs, struct fs_node_source *src)
{
	struct host_watch *w = container_of(obs, struct host_watch, obs);

	pthread_mutex_lock(&w->src_lock);
	w->src = src;
	pthread_mutex_unlock(&w->src_lock);
}

static const struct fs_node_observer_ops observer_ops = {
	.on_node_added = observer_added,
	.on_node_forgotten = observer_forgotten,
	.bind_source = observer_bind,
};

struct fs_node_observer *host_watch_observer(struct host_watch *w)
{
	return w ? &w->obs : NULL;
}

/* ---- the client's own entry changes ---- */

uint64_t host_watch_expect(struct host_watch *w, uint64_t parent, uint32_t mask,
			   const char *name)
{
	size_t len = strnlen(name, NAME_MAX + 1);

	if (!w || len > NAME_MAX)
		return 0;
	pthread_mutex_lock(&w->lock);
	uint64_t token = ++w->expect_next;
	struct expect *x = &w->expect[token % EXPECT_SLOTS];
	/* The oldest is overwritten: its event, if it comes, is sent. */
	*x = (struct expect){ .token = token, .nodeid = parent, .mask = mask,
			      .deadline_ms = clock_now_ms() + EXPECT_TTL_MS };
	memcpy(x->name, name, len + 1);
	pthread_mutex_unlock(&w->lock);
	return token;
}

void host_watch_unexpect(struct host_watch *w, uint64_t token)
{
	if (!w || !token)
		return;
	pthread_mutex_lock(&w->lock);
	struct expect *x = &w->expect[token % EXPECT_SLOTS];
	if (x->token == token)
		x->token = 0;
	pthread_mutex_unlock(&w->lock);
}

/* Under w->lock: is this entry event the client's own? Consumes the match.
 * Kinds must agree, so a remembered create never hides a host's delete. */
static bool expected(struct host_watch *w, uint64_t nodeid, uint32_t mask, const char *name,
		     size_t namelen)
{
	uint64_t now = 0;

	for (unsigned i = 0; i < EXPECT_SLOTS; i++) {
		struct expect *x = &w->expect[i];

		if (!x->token || x->nodeid != nodeid || !(x->mask & mask) ||
		    strlen(x->name) != namelen || memcmp(x->name, name, namelen))
			continue;
		if (!now)
			now = clock_now_ms();
		bool live = now <= x->deadline_ms;
		x->token = 0;
		if (live)
			return true;
	}
	return false;
}

static struct node_expect *node_slot(struct host_watch *w, uint64_t nodeid)
{
	return &w->node_expect[(nodeid * 0x9e3779b97f4a7c15ull) >> 56 & (NODE_EXPECT_SLOTS - 1)];
}

void host_watch_expect_node(struct host_watch *w, uint64_t nodeid, uint32_t mask)
{
	if (!w || !nodeid || !(mask & NODE_EVENTS))
		return;
	uint64_t now = clock_now_ms();
	pthread_mutex_lock(&w->lock);
	struct node_expect *x = node_slot(w, nodeid);
	if (x->nodeid != nodeid)
		*x = (struct node_expect){ .nodeid = nodeid };
	else if (now > x->deadline_ms)
		x->mask = 0;           /* changes still under way stay counted */
	x->mask |= mask & NODE_EVENTS;
	w->node_seq++;
	for (unsigned k = 0; k < NODE_KINDS; k++) {
		if (!(mask & node_kinds[k]))
			continue;
		if (x->busy[k] < UINT16_MAX)
			x->busy[k]++;
		x->last_seq[k] = w->node_seq;
	}
	x->deadline_ms = now + EXPECT_TTL_MS;
	pthread_mutex_unlock(&w->lock);
}

void host_watch_expect_node_end(struct host_watch *w, uint64_t nodeid, uint32_t mask,
				bool happened)
{
	if (!w || !nodeid || !(mask & NODE_EVENTS))
		return;
	pthread_mutex_lock(&w->lock);
	struct node_expect *x = node_slot(w, nodeid);
	w->node_seq++;
	for (unsigned k = 0; x->nodeid == nodeid && k < NODE_KINDS; k++) {
		if (!(mask & node_kinds[k]))
			continue;
		if (x->busy[k])
			x->busy[k]--;
		x->last_seq[k] = w->node_seq;
		/* Withdrawn, unless another change of the kind still comes. */
		if (!happened && !x->busy[k])
			x->mask &= ~node_kinds[k];
	}
	pthread_mutex_unlock(&w->lock);
}

/* Under w->lock: are all of this node event's kinds the client's own? The
 * batch notes them (taken when it is settled). A kind not announced (a
 * host's write next to the client's chmod, in one event) sends the whole
 * event. */
static bool expected_node(struct host_watch *w, uint64_t nodeid, uint32_t mask)
{
	struct node_expect *x = node_slot(w, nodeid);

	if (!mask || x->nodeid != nodeid || (mask & ~x->mask))
		return false;
	if (clock_now_ms() > x->deadline_ms) {
		x->mask = 0;
		return false;
	}
	x->matched |= mask;
	return true;
}

/*
 * Under w->lock, once a batch read at @read_seq is handled: the kinds it
 * matched are taken, so the host's next change of that kind is sent, except
 * a kind with a change under way or announced since the read. Such a
 * change's event may still come (the batch held a truncate's event, read
 * between the next write's announcement and its system call); should it
 * have been in the batch after all, the kind stays until its deadline, and
 * a host change of that kind to that node within EXPECT_TTL_MS is not sent:
 * the price of never sending the client its own change back.
 */
static void settle_node_expects(struct host_watch *w, uint64_t read_seq)
{
	for (unsigned i = 0; i < NODE_EXPECT_SLOTS; i++) {
		struct node_expect *x = &w->node_expect[i];

		for (unsigned k = 0; x->matched && k < NODE_KINDS; k++) {
			if ((x->matched & node_kinds[k]) && !x->busy[k] &&
			    x->last_seq[k] <= read_seq)
				x->mask &= ~node_kinds[k];
		}
		x->matched = 0;
	}
}

/* Under w->lock: is event @ev on @e's watch the client's own change? */
static bool own_event(struct host_watch *w, const struct watch_entry *e,
		      const struct inotify_event *ev, size_t namelen)
{
	if (namelen)
		return e->dir && (ev->mask & ENTRY_EVENTS) &&
		       expected(w, e->nodeid, ev->mask & ENTRY_EVENTS, ev->name, namelen);
	return expected_node(w, e->nodeid, ev->mask & NODE_EVENTS);
}

/* ---- event mapping ---- */

static struct host_watch_inval inval_inode(uint64_t nodeid, int64_t off)
{
	return (struct host_watch_inval){ .nodeid = nodeid, .off = off };
}

unsigned host_watch_map_event(uint64_t nodeid, bool dir, uint32_t mask, const char *name,
			      size_t namelen, struct host_watch_inval out[HOST_WATCH_MAX_INVALS])
{
	if (dir && namelen) {
		/* A child: only its coming and going concern the directory. */
		if (!(mask & ENTRY_EVENTS))
			return 0;
		out[0] = (struct host_watch_inval){ .entry = true, .nodeid = nodeid,
						    .name = name, .namelen = namelen };
		/* The listing (readdir cache) and mtime changed too. */
		out[1] = inval_inode(nodeid, 0);
		return 2;
	}
	if (namelen)
		return 0;
	if (mask & (IN_MODIFY | IN_CLOSE_WRITE)) {
		out[0] = inval_inode(nodeid, 0);
		return 1;
	}
	if (mask & (IN_ATTRIB | IN_MOVE_SELF)) {
		out[0] = inval_inode(nodeid, -1);
		return 1;
	}
	return 0;
}

static bool inval_equal(const struct host_watch_inval *a, const struct host_watch_inval *b)
{
	if (a->nodeid != b->nodeid)
		return false;
	if (!a->entry || !b->entry)
		return !a->entry && !b->entry && a->off == b->off;
	return a->namelen == b->namelen && !memcmp(a->name, b->name, a->namelen);
}

/* Notifications gathered from one buffer of events. */
struct inval_list {
	struct host_watch_inval *v;
	size_t n, cap;
};

static void list_add(struct inval_list *l, const struct host_watch_inval *iv)
{
	for (size_t i = l->n > DEDUP_WINDOW ? l->n - DEDUP_WINDOW : 0; i < l->n; i++) {
		if (inval_equal(&l->v[i], iv))
			return;
	}
	if (l->n < l->cap)
		l->v[l->n++] = *iv;
}

/* What one buffer of events comes to: notifications, children to map by
 * name, and whether events were lost. */
struct batch {
	struct inval_list l;
	struct child_event *c;
	size_t nc, ccap;
	bool overflow;
};

/* The node event a child's event on its directory's watch stands for, or
 * 0 for none. A subdirectory reports on its own watch; a name created or
 * moved in may be another link to, or the new place of, a known file. */
static uint32_t child_kind(uint32_t mask)
{
	if (mask & IN_ISDIR)
		return 0;
	if (mask & IN_CREATE)
		return IN_ATTRIB;            /* its link count */
	if (mask & IN_MOVED_TO)
		return IN_MOVE_SELF;
	return mask & (IN_MODIFY | IN_ATTRIB);
}

/* Queue a child's event for resolve_children; repeats in the batch once. */
static void child_add(struct batch *b, uint64_t parent, uint32_t mask, const char *name,
		      size_t namelen)
{
	struct child_event c = { .parent = parent, .name = name, .namelen = namelen,
				 .kind = child_kind(mask) };

	if (!c.kind || b->nc == b->ccap)
		return;
	for (size_t i = b->nc > DEDUP_WINDOW ? b->nc - DEDUP_WINDOW : 0; i < b->nc; i++) {
		const struct child_event *o = &b->c[i];
		if (o->parent == parent && o->kind == c.kind && o->namelen == namelen &&
		    !memcmp(o->name, name, namelen))
			return;
	}
	b->c[b->nc++] = c;
}

/* One event, under w->lock: forget ended watches, map the others. */
static void take_event(struct host_watch *w, const struct inotify_event *ev, struct batch *b)
{
	struct host_watch_inval iv[HOST_WATCH_MAX_INVALS];

	fetch_add_relaxed(&w->events, 1);
	if (ev->mask & IN_Q_OVERFLOW) {
		b->overflow = true;
		return;
	}
	struct watch_entry *e = table_find(w, ev->wd);
	if (!e) {
		fetch_add_relaxed(&w->events_unknown, 1);
		return;
	}
	/* The kernel dropped the watch (inode gone, filesystem unmounted):
	 * forgotten here, so removing it later makes no failing call. */
	if (ev->mask & IN_IGNORED) {
		table_del(w, e);
		fetch_add_relaxed(&w->events_gone, 1);
		return;
	}
	/* The client forgot the node: nothing to tell it. */
	if (e->forgotten) {
		fetch_add_relaxed(&w->events_unknown, 1);
		return;
	}
	/* Deleted: the parent's INVAL_ENTRY covered the name, and no name
	 * leads to the inode any more. */
	if (ev->mask & IN_DELETE_SELF) {
		fetch_add_relaxed(&w->events_gone, 1);
		return;
	}
	size_t namelen = strnlen(ev->name, ev->len);
	if (own_event(w, e, ev, namelen)) {
		/* The client made this change: its kernel knows already. */
		fetch_add_relaxed(&w->events_own, 1);
		return;
	}
	unsigned n = host_watch_map_event(e->nodeid, e->dir, ev->mask, ev->name, namelen, iv);
	if (n)
		log_debug("watch: node %llu event 0x%x%s%.*s: not the client's, sent",
			  (unsigned long long)e->nodeid, ev->mask, namelen ? " on " : "",
			  (int)namelen, ev->name);
	for (unsigned i = 0; i < n; i++)
		list_add(&b->l, &iv[i]);
	if (e->dir && namelen && w->scheme == HOST_WATCH_DIRS)
		child_add(b, e->nodeid, ev->mask, ev->name, namelen);
}

/*
 * Without w->lock: each queued child's node, asked of the backend by
 * (directory, name). The name is looked up as it is now: a child renamed
 * or deleted since its event maps to what has the name now, or to
 * nothing (a deleted file's name is gone from the client by its
 * directory's INVAL_ENTRY; a renamed one's new place invalidates it, data
 * included, through its IN_MOVED_TO).
 */
static void resolve_children(struct host_watch *w, struct batch *b)
{
	char name[NAME_MAX + 1];
	struct fs_node_child ch;

	pthread_mutex_lock(&w->src_lock);
	for (size_t i = 0; i < b->nc; i++) {
		struct child_event *c = &b->c[i];
		bool found = false;

		fetch_add_relaxed(&w->child_events, 1);
		if (w->src && !w->resolve_off && c->namelen <= NAME_MAX) {
			memcpy(name, c->name, c->namelen);
			name[c->namelen] = '\0';
			found = !w->src->ops->child(w->src, c->parent, name, &ch) && !ch.has_token;
		}
		c->nodeid = found ? ch.nodeid : 0;
		if (!found)
			fetch_add_relaxed(&w->child_unmapped, 1);
	}
	pthread_mutex_unlock(&w->src_lock);
}

/* Under w->lock: the resolved children's notifications, as their own
 * watches' events would map (own changes not sent). A file moved in loses
 * its data too: a write before the move was reported under its old name,
 * which no longer led to it. */
static void map_children(struct host_watch *w, struct batch *b)
{
	for (size_t i = 0; i < b->nc; i++) {
		const struct child_event *c = &b->c[i];

		if (!c->nodeid)
			continue;
		if (expected_node(w, c->nodeid, c->kind)) {
			w->events_own++;
			continue;
		}
		log_debug("watch: node %llu event 0x%x (on its directory's watch): not the client's, sent",
			  (unsigned long long)c->nodeid, c->kind);
		struct host_watch_inval iv = inval_inode(c->nodeid, c->kind == IN_ATTRIB ? -1 : 0);
		list_add(&b->l, &iv);
	}
}

static int send_one(struct host_watch *w, struct fuse_server *s, const struct host_watch_inval *iv)
{
	int rc;

	fetch_add_relaxed(&w->invals, 1);
	if (iv->entry)
		rc = fuse_server_notify_inval_entry(s, iv->nodeid, iv->name, iv->namelen);
	else
		rc = fuse_server_notify_inval_inode(s, iv->nodeid, iv->off, 0);
	if (rc)
		fetch_add_relaxed(&w->invals_failed, 1);
	return rc;
}

/* Every node the client knows, from the backend: in the directory scheme
 * most files have no watch. -ENOENT when there is no source to ask. */
static long source_ids(struct host_watch *w, uint64_t **ids)
{
	long k = -ENOENT;

	pthread_mutex_lock(&w->src_lock);
	if (w->src && !w->resolve_off && w->scheme == HOST_WATCH_DIRS)
		k = w->src->ops->list(w->src, ids);
	pthread_mutex_unlock(&w->src_lock);
	return k;
}

static void send_all(struct host_watch *w, struct fuse_server *s, const uint64_t *ids, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		struct host_watch_inval iv = inval_inode(ids[i], 0);
		send_one(w, s, &iv);
	}
}

/* Events were lost: every known (else every watched) node's attributes
 * and data go. */
static unsigned send_overflow(struct host_watch *w, struct fuse_server *s)
{
	uint64_t *ids = NULL;

	fetch_add_relaxed(&w->overflows, 1);
	long known = source_ids(w, &ids);
	if (known >= 0) {
		send_all(w, s, ids, (size_t)known);
		free(ids);
		return (unsigned)known;
	}
	pthread_mutex_lock(&w->lock);
	size_t n = w->count;
	ids = malloc(MAX(n, (size_t)1) * sizeof(*ids));
	size_t k = 0;
	for (size_t b = 0; ids && b < w->nbuckets; b++) {
		for (struct watch_entry *e = w->buckets[b]; e && k < n; e = e->next)
			ids[k++] = e->nodeid;
	}
	pthread_mutex_unlock(&w->lock);
	if (!ids) {
		/* No memory for the list: the root at least. */
		struct host_watch_inval root = inval_inode(FUSE_ROOT_ID, 0);
		send_one(w, s, &root);
		return 1;
	}
	send_all(w, s, ids, k);
	free(ids);
	return (unsigned)k;
}

uint64_t host_watch_read_mark(struct host_watch *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t seq = w->node_seq;
	pthread_mutex_unlock(&w->lock);
	return seq;
}

unsigned host_watch_handle_events(struct host_watch *w, struct fuse_server *s,
				  const void *buf, size_t len)
{
	return host_watch_handle_events_read_at(w, s, buf, len, host_watch_read_mark(w));
}

unsigned host_watch_handle_events_read_at(struct host_watch *w, struct fuse_server *s,
					  const void *buf, size_t len, uint64_t mark)
{
	const size_t hdr = sizeof(struct inotify_event);
	const size_t most = len / hdr + 1;
	/* Each event maps to at most HOST_WATCH_MAX_INVALS, or a child's one. */
	struct batch b = { .l.cap = most * HOST_WATCH_MAX_INVALS, .ccap = most };
	unsigned sent = 0;

	b.l.v = malloc(b.l.cap * sizeof(*b.l.v));
	b.c = malloc(b.ccap * sizeof(*b.c));
	if (!b.l.v || !b.c) {
		free(b.l.v);
		free(b.c);
		return send_overflow(w, s);
	}
	pthread_mutex_lock(&w->lock);
	for (size_t off = 0; off + hdr <= len;) {
		struct inotify_event ev_hdr;
		memcpy(&ev_hdr, (const char *)buf + off, hdr);
		if (ev_hdr.len > len - off - hdr)
			break;
		take_event(w, (const struct inotify_event *)((const char *)buf + off), &b);
		off += hdr + ev_hdr.len;
	}
	if (!b.nc)
		settle_node_expects(w, mark);
	pthread_mutex_unlock(&w->lock);
	if (b.nc) {
		/* The backend takes its own locks and may call remove. */
		resolve_children(w, &b);
		pthread_mutex_lock(&w->lock);
		map_children(w, &b);
		settle_node_expects(w, mark);
		pthread_mutex_unlock(&w->lock);
	}
	/* Unlocked: a send may wait for a request a worker is answering. */
	for (size_t i = 0; i < b.l.n; i++, sent++)
		send_one(w, s, &b.l.v[i]);
	free(b.l.v);
	free(b.c);
	if (b.overflow)
		sent += send_overflow(w, s);
	return sent;
}

/* ---- the thread ---- */

/* Read and handle events until the queue is empty. Returns 0, or -1 when
 * the descriptor failed. A read that leaves room for another event emptied
 * the queue: no read is made to hear EAGAIN. */
static int drain(struct host_watch *w, void *buf)
{
	const size_t room = sizeof(struct inotify_event) + NAME_MAX + 1;

	for (;;) {
		uint64_t mark = host_watch_read_mark(w);
		ssize_t n = read(w->ifd, buf, READ_BUF_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			log_err("watch: reading inotify: %s", n ? strerror(errno) : "end of file");
			return -1;
		}
		host_watch_handle_events_read_at(w, w->server, buf, (size_t)n, mark);
		if ((size_t)n + room <= READ_BUF_SIZE)
			return 0;
	}
}

static size_t deferred_count(struct host_watch *w)
{
	pthread_mutex_lock(&w->lock);
	size_t k = w->ndeferred;
	pthread_mutex_unlock(&w->lock);
	return k;
}

/* Is there anything to read now? */
static bool readable_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/*
 * One wake-up: events read, then the removals deferred so far made. Those
 * were deferred after their IN_IGNORED, if any, was queued (see
 * host_watch_remove), so the queue is read, empty, first. Returns -1 when
 * the thread must end.
 */
static int wake_up(struct host_watch *w, const struct pollfd pfd[3], void *buf)
{
	eventfd_t v;
	bool events = pfd[0].revents;

	if (pfd[1].revents)
		return -1;
	if (pfd[2].revents && eventfd_read(w->wake_fd, &v) < 0 && errno != EAGAIN)
		return -1;
	size_t k = deferred_count(w);
	if (k && !events)
		events = readable_now(w->ifd);
	if (events)
		nanosleep(&(struct timespec){ .tv_nsec = BURST_GATHER_NS }, NULL);
	if (events && drain(w, buf) < 0)
		return -1;
	pthread_mutex_lock(&w->lock);
	unwatch_deferred(w, k);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static void *watch_main(void *arg)
{
	struct host_watch *w = arg;
	void *buf = NULL;

	seccomp_filter_enter(SECCOMP_HOST_WATCH);
	/* inotify_event holds an int: the buffer is aligned for it. */
	if (posix_memalign(&buf, 8, READ_BUF_SIZE))
		return NULL;
	struct pollfd pfd[3] = { { .fd = w->ifd, .events = POLLIN },
				 { .fd = w->stop_fd, .events = POLLIN },
				 { .fd = w->wake_fd, .events = POLLIN } };
	for (;;) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("watch: poll: %s", strerror(errno));
			break;
		}
		if (wake_up(w, pfd, buf) < 0)
			break;
	}
	free(buf);
	return NULL;
}

/* ---- lifecycle ---- */

struct host_watch *host_watch_new(const struct host_watch_opts *o, int *err)
{
	struct host_watch *w = calloc(1, sizeof(*w));

	if (!w) {
		*err = -ENOMEM;
		return NULL;
	}
	w->obs.ops = &observer_ops;
	w->ifd = w->stop_fd = w->wake_fd = -1;
	w->max_watches = o && o->max_watches ? o->max_watches : HOST_WATCH_DEFAULT_MAX;
	w->scheme = o ? o->scheme : HOST_WATCH_DIRS;
	w->nbuckets = 256;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): a table of pointers, sized per pointer */
	w->buckets = calloc(w->nbuckets, sizeof(*w->buckets));
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	*err = w->ifd < 0 ? -errno : 0;
	w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!*err && w->stop_fd < 0)
		*err = -errno;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!*err && w->wake_fd < 0)
		*err = -errno;
	if (!*err && !w->buckets)
		*err = -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->src_lock, NULL);
	if (*err) {
		host_watch_free(w);
		return NULL;
	}
	return w;
}

int host_watch_start(struct host_watch *w, struct fuse_server *server)
{
	if (w->started)
		return -EBUSY;
	store_release(&w->server, server);
	pthread_mutex_lock(&w->src_lock);
	w->resolve_off = false;
	pthread_mutex_unlock(&w->src_lock);
	pthread_mutex_lock(&w->lock);
	w->running = true;
	pthread_mutex_unlock(&w->lock);
	int r = pthread_create(&w->thread, NULL, watch_main, w);
	if (r) {
		pthread_mutex_lock(&w->lock);
		w->running = false;
		pthread_mutex_unlock(&w->lock);
		return -r;
	}
	pthread_setname_np(w->thread, "kvmini-watch");
	w->started = true;
	return 0;
}

void host_watch_stop(struct host_watch *w)
{
	uint64_t one = 1;

	if (!w || !w->started)
		return;
	/* Removals from now on are made at once. */
	pthread_mutex_lock(&w->lock);
	w->running = false;
	pthread_mutex_unlock(&w->lock);
	if (write(w->stop_fd, &one, sizeof(one)) < 0)
		log_warn("watch: eventfd: %s", strerror(errno));
	pthread_join(w->thread, NULL);
	w->started = false;
	/* The thread's last removals: after the events it left, as it would,
	 * but mapping no names: this thread may not call the backend (its
	 * system call filter), and nobody is told any more anyway. */
	pthread_mutex_lock(&w->src_lock);
	w->resolve_off = true;
	pthread_mutex_unlock(&w->src_lock);
	void *buf = malloc(READ_BUF_SIZE);
	if (buf && w->ndeferred && readable_now(w->ifd))
		drain(w, buf);
	free(buf);
	pthread_mutex_lock(&w->lock);
	unwatch_deferred(w, w->ndeferred);
	pthread_mutex_unlock(&w->lock);
}

void host_watch_free(struct host_watch *w)
{
	if (!w)
		return;
	host_watch_stop(w);
	for (size_t b = 0; w->buckets && b < w->nbuckets; b++) {
		for (struct watch_entry *e = w->buckets[b], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(w->buckets);
	if (w->ifd >= 0)
		close(w->ifd);
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	free(w->deferred);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->src_lock);
	free(w);
}

void host_watch_get_counters(struct host_watch *w, struct host_watch_counters *c)
{
	pthread_mutex_lock(&w->lock);
	c->watches = w->count;
	c->watches_added = w->watches_added;
	c->watches_refused = w->watches_refused;
	c->tx_watches_failed = w->watches_failed;
	c->watches_skipped = w->watches_skipped;
	c->events_own = w->events_own;
	c->tx_unwatch_failed = w->unwatch_failed;
	pthread_mutex_unlock(&w->lock);
	c->events = load_relaxed(&w->events);
	c->events_unknown = load_relaxed(&w->events_unknown);
	c->rx_overflows = load_relaxed(&w->overflows);
	c->invals = load_relaxed(&w->invals);
	c->rx_events_gone = load_relaxed(&w->events_gone);
	c->tx_invals_failed = load_relaxed(&w->invals_failed);
	c->tx_file_watches_spared = load_relaxed(&w->file_watches_spared);
	c->rx_child_events = load_relaxed(&w->child_events);
	c->rx_child_unmapped = load_relaxed(&w->child_unmapped);
}

#define X(name, doc) COUNTER_DESC(struct host_watch_counters, name, doc)
const struct counter_set host_watch_counter_set = COUNTER_SET("watch", HOST_WATCH_COUNTERS(X));
#undef X

void host_watch_visit_counters(struct host_watch *w, const struct counter_sink *sink)
{
	struct host_watch_counters c;

	/* A copy: half of them live under the lock, half are atomic. */
	host_watch_get_counters(w, &c);
	counters_visit(&host_watch_counter_set, &c, "watch_", sink);
}

void host_watch_dump_counters(struct host_watch *w, FILE *out)
{
	host_watch_visit_counters(w, COUNTER_SINK_FILE(out));
}
