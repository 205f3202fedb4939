/*
 * Host-change notifications: the inotify event mapping, the bound on
 * watches, the FUSE server's notification messages (exact bytes, the INIT
 * and in-request rules), and the watcher end to end on a real inotify
 * descriptor and a real directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "check.h"
#include "fuse_req.h"
#include "core/compiler.h"
#include "core/log.h"
#include "fuse/fuse_server.h"
#include "fs/host_watch.h"
#include "fs/memfs.h"
#include "fs/passthrough.h"

/* ---- a transport that records what the server sends ---- */

#define REC_MAX 64

struct recorder {
	struct fuse_notify_transport t;
	pthread_mutex_t lock;
	unsigned n;
	size_t len[REC_MAX];
	uint8_t msg[REC_MAX][320];
	int ret;                     /* what send returns */
};

static int rec_send(struct fuse_notify_transport *t, const void *msg, size_t len)
{
	struct recorder *r = container_of(t, struct recorder, t);

	pthread_mutex_lock(&r->lock);
	if (r->n < REC_MAX && len <= sizeof(r->msg[0])) {
		memcpy(r->msg[r->n], msg, len);
		r->len[r->n++] = len;
	}
	pthread_mutex_unlock(&r->lock);
	return r->ret;
}

static void rec_init(struct recorder *r)
{
	memset(r, 0, sizeof(*r));
	r->t.send = rec_send;
	pthread_mutex_init(&r->lock, NULL);
}

static unsigned rec_count(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	unsigned n = r->n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* The exact bytes of INVAL_INODE(@ino, @off, 0) and INVAL_ENTRY(@parent,
 * @name); returns the length. */
static size_t want_inode(uint8_t *buf, uint64_t ino, int64_t off)
{
	struct fuse_out_header oh = { .len = 40, .error = FUSE_NOTIFY_INVAL_INODE, .unique = 0 };
	struct fuse_notify_inval_inode_out a = { .ino = ino, .off = off, .len = 0 };

	memcpy(buf, &oh, 16);
	memcpy(buf + 16, &a, 24);
	return 40;
}

static size_t want_entry(uint8_t *buf, uint64_t parent, const char *name)
{
	size_t n = strlen(name);
	struct fuse_out_header oh = { .len = (uint32_t)(32 + n + 1),
				      .error = FUSE_NOTIFY_INVAL_ENTRY, .unique = 0 };
	struct fuse_notify_inval_entry_out a = { .parent = parent, .namelen = (uint32_t)n };

	memcpy(buf, &oh, 16);
	memcpy(buf + 16, &a, 16);
	memcpy(buf + 32, name, n + 1);
	return 32 + n + 1;
}

static bool rec_has(struct recorder *r, const uint8_t *want, size_t len)
{
	bool found = false;

	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < r->n && !found; i++)
		found = r->len[i] == len && !memcmp(r->msg[i], want, len);
	pthread_mutex_unlock(&r->lock);
	return found;
}

/* ---- a server over memfs, after a FUSE_INIT ---- */

struct srv {
	struct fs_backend *be;
	struct fuse_server *s;
};

static size_t request(struct fuse_server *s, uint32_t opcode, uint64_t nodeid, const void *arg,
		      size_t len, void *reply, size_t reply_len)
{
	uint8_t in[256] __attribute__((aligned(8)));
	struct frq q = { .buf = in, .cap = sizeof(in) };
	uint32_t in_len = frq_build(&q, opcode, nodeid, arg, len, NULL, 0);
	struct iovec iv = { in, in_len }, ov = { reply, reply_len };
	return fuse_server_handle(s, &iv, 1, &ov, 1);
}

static void srv_up(struct srv *v, bool init)
{
	int err;

	v->be = memfs_new(NULL, &err);
	CHECK(v->be != NULL);
	v->s = fuse_server_new(v->be, NULL);
	CHECK(v->s != NULL);
	if (!init)
		return;
	struct fuse_init_in ii = { .major = 7, .minor = 38, .max_readahead = 65536 };
	uint8_t out[256];
	CHECK(request(v->s, FUSE_INIT, 0, &ii, sizeof(ii), out, sizeof(out)) > 16);
	CHECK_EQ(fuse_server_proto_minor(v->s), 38);
}

static void srv_down(struct srv *v)
{
	fuse_server_free(v->s);
	fs_backend_destroy(v->be);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- tests ---- */

static void expect_inode(const struct host_watch_inval *iv, uint64_t id, int64_t off)
{
	CHECK(!iv->entry);
	CHECK_EQ(iv->nodeid, id);
	CHECK_EQ(iv->off, off);
}

static void expect_entry(const struct host_watch_inval *iv, uint64_t id, const char *name)
{
	CHECK(iv->entry);
	CHECK_EQ(iv->nodeid, id);
	CHECK_EQ(iv->namelen, strlen(name));
	CHECK(!memcmp(iv->name, name, iv->namelen));
}

static void test_map_event(void)
{
	struct host_watch_inval v[HOST_WATCH_MAX_INVALS];
	static const uint32_t entry_events[] = { IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO,
						 IN_CREATE | IN_ISDIR, IN_DELETE | IN_ISDIR };

	/* A child comes or goes: its entry, and the directory's listing. */
	for (unsigned i = 0; i < ARRAY_SIZE(entry_events); i++) {
		CHECK_EQ(host_watch_map_event(5, true, entry_events[i], "abc", 3, v), 2);
		expect_entry(&v[0], 5, "abc");
		expect_inode(&v[1], 5, 0);
	}
	/* A child's own attributes are left to its own watch. */
	CHECK_EQ(host_watch_map_event(5, true, IN_ATTRIB, "abc", 3, v), 0);
	CHECK_EQ(host_watch_map_event(5, true, IN_MODIFY, "abc", 3, v), 0);
	/* The directory itself: attributes only. */
	CHECK_EQ(host_watch_map_event(5, true, IN_ATTRIB | IN_ISDIR, "", 0, v), 1);
	expect_inode(&v[0], 5, -1);
	CHECK_EQ(host_watch_map_event(5, true, IN_MOVE_SELF, "", 0, v), 1);
	expect_inode(&v[0], 5, -1);
	/* Deleted: the parent's INVAL_ENTRY covers it, no name leads to it. */
	CHECK_EQ(host_watch_map_event(5, true, IN_DELETE_SELF, "", 0, v), 0);
	CHECK_EQ(host_watch_map_event(9, false, IN_DELETE_SELF, "", 0, v), 0);
	/* A file: data and attributes when written, attributes otherwise. */
	CHECK_EQ(host_watch_map_event(9, false, IN_MODIFY, "", 0, v), 1);
	expect_inode(&v[0], 9, 0);
	CHECK_EQ(host_watch_map_event(9, false, IN_CLOSE_WRITE, "", 0, v), 1);
	expect_inode(&v[0], 9, 0);
	CHECK_EQ(host_watch_map_event(9, false, IN_ATTRIB, "", 0, v), 1);
	expect_inode(&v[0], 9, -1);
	/* Nothing for the rest. */
	CHECK_EQ(host_watch_map_event(9, false, IN_OPEN, "", 0, v), 0);
	CHECK_EQ(host_watch_map_event(9, false, IN_ACCESS, "", 0, v), 0);
	CHECK_EQ(host_watch_map_event(9, false, IN_IGNORED, "", 0, v), 0);
	CHECK_EQ(host_watch_map_event(5, true, IN_CLOSE_NOWRITE, "abc", 3, v), 0);
}

static void test_server_notify_bytes(void)
{
	struct srv v;
	struct recorder r;
	uint8_t want[320];
	char name[NAME_MAX + 2];
	struct fuse_server_counters c;

	rec_init(&r);
	srv_up(&v, false);
	fuse_server_set_notify(v.s, &r.t);
	/* Before INIT nothing is sent. */
	CHECK_EQ(fuse_server_notify_inval_inode(v.s, 1, 0, 0), -EAGAIN);
	srv_down(&v);

	srv_up(&v, true);
	/* No transport yet. */
	CHECK_EQ(fuse_server_notify_inval_inode(v.s, 1, 0, 0), -ENOTCONN);
	fuse_server_set_notify(v.s, &r.t);
	CHECK_EQ(fuse_server_notify_inval_inode(v.s, 42, 0, 0), 0);
	CHECK_EQ(fuse_server_notify_inval_inode(v.s, 43, -1, 0), 0);
	CHECK_EQ(fuse_server_notify_inval_entry(v.s, 7, "abc", 3), 0);
	memset(name, 'n', sizeof(name));
	name[NAME_MAX] = '\0';
	CHECK_EQ(fuse_server_notify_inval_entry(v.s, 8, name, NAME_MAX), 0);
	CHECK_EQ(r.n, 4);
	CHECK_EQ(r.len[0], want_inode(want, 42, 0));
	CHECK(!memcmp(r.msg[0], want, 40));
	CHECK_EQ(r.len[1], want_inode(want, 43, -1));
	CHECK(!memcmp(r.msg[1], want, 40));
	CHECK_EQ(r.len[2], want_entry(want, 7, "abc"));
	CHECK(!memcmp(r.msg[2], want, r.len[2]));
	CHECK_EQ(r.len[3], want_entry(want, 8, name));
	CHECK_EQ(r.len[3], 288);                /* virtio-fs notify_buf_size */
	CHECK(!memcmp(r.msg[3], want, r.len[3]));
	/* Bad names never reach the transport. */
	CHECK_EQ(fuse_server_notify_inval_entry(v.s, 7, "", 0), -EINVAL);
	CHECK_EQ(fuse_server_notify_inval_entry(v.s, 7, "a\0b", 3), -EINVAL);
	memset(name, 'n', sizeof(name));
	CHECK_EQ(fuse_server_notify_inval_entry(v.s, 7, name, NAME_MAX + 1), -EINVAL);
	CHECK_EQ(r.n, 4);
	/* The client had nothing cached: counted apart, not a failure. */
	r.ret = -ENOENT;
	CHECK_EQ(fuse_server_notify_inval_inode(v.s, 44, 0, 0), -ENOENT);
	r.ret = -ENOBUFS;
	CHECK_EQ(fuse_server_notify_inval_inode(v.s, 44, 0, 0), -ENOBUFS);
	fuse_server_get_counters(v.s, &c);
	CHECK_EQ(c.notify_sent, 4);
	CHECK_EQ(c.notify_unknown, 1);
	CHECK_EQ(c.notify_failed, 1);
	CHECK_EQ(c.notify_dropped, 4);           /* no transport, three bad names */
	fuse_server_set_notify(v.s, NULL);
	srv_down(&v);
}

/* A backend whose GETATTR tries to notify, as a request worker would. */
static struct {
	struct fuse_server *s;
	const struct fs_backend_ops *real;
	struct fs_backend_ops ops;
	int rc;
} inner;

static int notifying_getattr(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			     struct stat *st)
{
	inner.rc = fuse_server_notify_inval_entry(inner.s, nodeid, "x", 1);
	return inner.real->getattr(be, ctx, nodeid, st);
}

static void test_refused_inside_request(void)
{
	struct srv v;
	struct recorder r;
	struct fuse_getattr_in gi = { 0 };
	uint8_t out[256];

	rec_init(&r);
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	inner.s = v.s;
	inner.real = v.be->ops;
	inner.ops = *v.be->ops;
	inner.ops.getattr = notifying_getattr;
	inner.rc = 1;
	v.be->ops = &inner.ops;
	CHECK(request(v.s, FUSE_GETATTR, FUSE_ROOT_ID, &gi, sizeof(gi), out, sizeof(out)) > 16);
	CHECK_EQ(inner.rc, -EDEADLK);
	CHECK_EQ(r.n, 0);
	/* The same thread, out of the request: allowed again. */
	CHECK_EQ(fuse_server_notify_inval_entry(v.s, 1, "x", 1), 0);
	CHECK_EQ(r.n, 1);
	v.be->ops = inner.real;
	srv_down(&v);
}

/* A temporary directory with files f0..f3 and a symlink. */
static void make_tree(char *dir)
{
	char p[PATH_MAX];

	CHECK(mkdtemp(dir) != NULL);
	for (int i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/f%d", dir, i);
		int fd = open(p, O_CREAT | O_WRONLY, 0644);
		CHECK(fd >= 0);
		close(fd);
	}
	snprintf(p, sizeof(p), "%s/link", dir);
	CHECK_EQ(symlink("f0", p), 0);
}

static void remove_tree(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ(system(cmd), 0);
}

static int opath(const char *dir, const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return open(p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

static void test_watch_bound(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	struct host_watch_opts o = { .max_watches = 3 };
	struct host_watch_counters c;
	int err, fds[6];

	make_tree(dir);
	struct host_watch *w = host_watch_new(&o, &err);
	CHECK(w != NULL);
	fds[0] = opath(dir, ".");
	static const char *const files[] = { "f0", "f1", "f2", "f3" };
	for (unsigned i = 0; i < ARRAY_SIZE(files); i++)
		fds[1 + i] = opath(dir, files[i]);
	fds[5] = opath(dir, "link");
	for (int i = 0; i < 6; i++)
		CHECK(fds[i] >= 0);
	int wd_dir = host_watch_add(w, 1, fds[0], S_IFDIR);
	int wd_f0 = host_watch_add(w, 2, fds[1], S_IFREG);
	int wd_f1 = host_watch_add(w, 3, fds[2], S_IFREG);
	CHECK(wd_dir >= 0 && wd_f0 >= 0 && wd_f1 >= 0);
	/* Over the bound: no watch, no error beyond the return. */
	CHECK_EQ(host_watch_add(w, 4, fds[3], S_IFREG), -ENOSPC);
	/* Symlinks, special files, no descriptor: never watched. */
	CHECK_EQ(host_watch_add(w, 5, fds[5], S_IFLNK), -EOPNOTSUPP);
	CHECK_EQ(host_watch_add(w, 5, fds[3], S_IFIFO), -EOPNOTSUPP);
	CHECK_EQ(host_watch_add(w, 5, -1, S_IFREG), -EOPNOTSUPP);
	CHECK_EQ(host_watch_add(NULL, 5, fds[3], S_IFREG), -EOPNOTSUPP);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 3);
	CHECK_EQ(c.watches_refused, 1);
	/* The same inode again at the bound is refused too: the node keeps the
	 * watch it has (passthrough.c inode_watch). */
	CHECK_EQ(host_watch_add(w, 3, fds[2], S_IFREG), -ENOSPC);
	/* Removing with another node's id leaves the watch. */
	host_watch_remove(w, wd_f0, 99, true);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 3);
	host_watch_remove(w, wd_f0, 2, true);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 2);
	int wd_f2 = host_watch_add(w, 4, fds[3], S_IFREG);
	CHECK(wd_f2 >= 0);
	CHECK(wd_f2 != wd_f1 && wd_f2 != wd_dir);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 3);
	CHECK_EQ(c.watches_added, 4);
	for (int i = 0; i < 6; i++)
		close(fds[i]);
	host_watch_free(w);
	remove_tree(dir);
}

/* A node that gave up its descriptor and is looked up again, with the
 * watches at their bound, keeps the watch it has (the inode is the same;
 * a refused add must not cost it the watch). */
static void test_reattached_node_keeps_watch(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	struct host_watch_opts wo = { .max_watches = 2, .scheme = HOST_WATCH_FILES };
	struct host_watch_counters c;
	struct fs_entry e0, e1, again;
	const struct fs_ctx ctx = { 0 };
	int err = 0;

	make_tree(dir);
	struct host_watch *w = host_watch_new(&wo, &err);
	CHECK(w != NULL);
	/* Two descriptors: the root and one file. */
	struct passthrough_opts po = { .root = dir, .max_fds = 2, .watch = w };
	struct fs_backend *be = passthrough_new(&po, &err);
	CHECK(be != NULL);
	/* Root and f0 watched: the bound. */
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f0", &e0), 0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 2);
	/* f1 gets no watch and takes f0's descriptor. */
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f1", &e1), 0);
	/* f0 again: re-attached to a fresh descriptor, still watched. */
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f0", &again), 0);
	CHECK_EQ(again.nodeid, e0.nodeid);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 2);
	fs_backend_destroy(be);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 0);
	host_watch_free(w);
	remove_tree(dir);
}

/* An observer in front of the watcher that records what removal answered,
 * and calls the backend back to show it holds none of its locks. */
struct spy_observer {
	struct fs_node_observer obs;
	struct host_watch *w;
	struct fs_backend *be;
	unsigned added, forgotten;
	int rm_errors;
	int last_rm;
};

static void spy_calls_back(struct spy_observer *spy)
{
	struct stat st;
	const struct fs_ctx ctx = { 0 };

	/* Under the backend's node lock this would never return. */
	if (spy->be)
		CHECK_EQ(spy->be->ops->getattr(spy->be, &ctx, FUSE_ROOT_ID, &st), 0);
}

static int spy_added(struct fs_node_observer *obs, uint64_t nodeid, int fd, mode_t type,
		     nlink_t nlink)
{
	struct spy_observer *spy = container_of(obs, struct spy_observer, obs);

	spy->added++;
	spy_calls_back(spy);
	return host_watch_add(spy->w, nodeid, fd, type);
}

static void spy_forgotten(struct fs_node_observer *obs, uint64_t nodeid, int token, bool held)
{
	struct spy_observer *spy = container_of(obs, struct spy_observer, obs);

	spy->forgotten++;
	spy_calls_back(spy);
	spy->last_rm = host_watch_remove(spy->w, token, nodeid, held);
	if (spy->last_rm)
		spy->rm_errors++;
}

static const struct fs_node_observer_ops spy_ops = {
	.on_node_added = spy_added,
	.on_node_forgotten = spy_forgotten,
};

/*
 * FORGET of a file deleted on the host: the backend's descriptor is the
 * last reference, and closing it makes the kernel drop the watch. The
 * observer hears of the forget first, so inotify_rm_watch still finds the
 * watch (it failed with EINVAL when the descriptor was closed first), and
 * hears of it with no backend lock held.
 */
static void test_forget_removes_watch_before_close(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	char p[PATH_MAX];
	struct host_watch_counters c;
	struct fs_entry e;
	const struct fs_ctx ctx = { 0 };
	int err = 0;

	make_tree(dir);
	struct host_watch *w = host_watch_new(NULL, &err);
	CHECK(w != NULL);
	struct spy_observer spy = { .obs.ops = &spy_ops, .w = w };
	struct passthrough_opts po = { .root = dir, .watch = w, .observer = &spy.obs };
	struct fs_backend *be = passthrough_new(&po, &err);
	CHECK(be != NULL);
	spy.be = be;
	alarm(30);
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f1", &e), 0);
	CHECK_EQ(spy.added, 2);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 2);
	snprintf(p, sizeof(p), "%s/f1", dir);
	CHECK_EQ(unlink(p), 0);
	be->ops->forget(be, e.nodeid, 1);
	CHECK_EQ(spy.forgotten, 1);
	CHECK_EQ(spy.last_rm, 0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 1);
	/* The root's watch goes at destroy, removed as well. */
	spy.be = NULL;
	fs_backend_destroy(be);
	alarm(0);
	CHECK_EQ(spy.forgotten, 2);
	CHECK_EQ(spy.rm_errors, 0);
	host_watch_free(w);
	remove_tree(dir);
}

/* Append one inotify event to @buf at *@off (name padded as the kernel pads). */
static void put_event(uint8_t *buf, size_t *off, int wd, uint32_t mask, const char *name)
{
	struct inotify_event ev = { .wd = wd, .mask = mask };
	size_t n = name ? strlen(name) + 1 : 0;

	ev.len = (uint32_t)((n + 15) & ~(size_t)15);
	memcpy(buf + *off, &ev, sizeof(ev));
	memset(buf + *off + sizeof(ev), 0, ev.len);
	if (n)
		memcpy(buf + *off + sizeof(ev), name, n);
	*off += sizeof(ev) + ev.len;
}

static void test_events_to_notifications(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	struct host_watch_counters c;
	struct recorder r;
	struct srv v;
	uint8_t want[320];
	_Alignas(8) uint8_t buf[1024];
	size_t off = 0;
	int err;

	make_tree(dir);
	rec_init(&r);
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	struct host_watch *w = host_watch_new(NULL, &err);
	CHECK(w != NULL);
	int dfd = opath(dir, "."), ffd = opath(dir, "f1");
	int wd_dir = host_watch_add(w, 5, dfd, S_IFDIR);
	int wd_file = host_watch_add(w, 9, ffd, S_IFREG);
	CHECK(wd_dir >= 0 && wd_file >= 0);

	put_event(buf, &off, wd_dir, IN_CREATE, "newname");
	put_event(buf, &off, wd_file, IN_MODIFY, NULL);
	put_event(buf, &off, wd_file, IN_MODIFY, NULL);      /* a repeat: sent once */
	put_event(buf, &off, wd_dir, IN_ATTRIB, "f1");        /* the child's own business */
	put_event(buf, &off, 9999, IN_MODIFY, NULL);          /* no such watch */
	CHECK_EQ(host_watch_handle_events(w, v.s, buf, off), 3);
	CHECK_EQ(r.n, 3);
	CHECK(rec_has(&r, want, want_entry(want, 5, "newname")));
	CHECK(rec_has(&r, want, want_inode(want, 5, 0)));
	CHECK(rec_has(&r, want, want_inode(want, 9, 0)));
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.events, 5);
	CHECK_EQ(c.events_unknown, 1);

	/* Lost events: every watched node is invalidated. */
	r.n = 0;
	off = 0;
	put_event(buf, &off, -1, IN_Q_OVERFLOW, NULL);
	CHECK_EQ(host_watch_handle_events(w, v.s, buf, off), 2);
	CHECK_EQ(r.n, 2);
	CHECK(rec_has(&r, want, want_inode(want, 5, 0)));
	CHECK(rec_has(&r, want, want_inode(want, 9, 0)));

	/* The kernel ended a watch: forgotten. A truncated event stops the
	 * walk without reading past the buffer. */
	r.n = 0;
	off = 0;
	put_event(buf, &off, wd_file, IN_IGNORED, NULL);
	put_event(buf, &off, wd_dir, IN_DELETE, "gone");
	CHECK_EQ(host_watch_handle_events(w, v.s, buf, off - 4), 0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 1);
	CHECK_EQ(r.n, 0);

	fuse_server_set_notify(v.s, NULL);
	host_watch_free(w);
	close(dfd);
	close(ffd);
	srv_down(&v);
	remove_tree(dir);
}

/* Entry changes the client announced are not sent back to it: once, by
 * directory, name and kind of event; withdrawn ones are sent. */
static void test_own_changes_not_sent(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	struct host_watch_counters c;
	struct recorder r;
	struct srv v;
	uint8_t want[320];
	_Alignas(8) uint8_t buf[1024];
	size_t off = 0;
	int err;

	make_tree(dir);
	rec_init(&r);
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	struct host_watch *w = host_watch_new(NULL, &err);
	CHECK(w != NULL);
	int dfd = opath(dir, ".");
	int wd = host_watch_add(w, 5, dfd, S_IFDIR);
	CHECK(wd >= 0);
	CHECK(host_watch_expect(w, 5, IN_CREATE, "mine") != 0);
	CHECK(host_watch_expect(w, 5, IN_CREATE, "other") != 0);
	CHECK(host_watch_expect(w, 6, IN_DELETE, "mine") != 0);
	uint64_t gone = host_watch_expect(w, 5, IN_DELETE, "failed");
	host_watch_unexpect(w, gone);
	CHECK_EQ(host_watch_expect(NULL, 5, IN_CREATE, "x"), 0);
	put_event(buf, &off, wd, IN_CREATE, "mine");        /* the client's: not sent */
	put_event(buf, &off, wd, IN_CREATE, "mine");        /* again: the host's, sent */
	put_event(buf, &off, wd, IN_DELETE, "other");       /* another kind: sent */
	put_event(buf, &off, wd, IN_DELETE, "failed");      /* withdrawn: sent */
	CHECK_EQ(host_watch_handle_events(w, v.s, buf, off), 4);
	CHECK(rec_has(&r, want, want_entry(want, 5, "mine")));
	CHECK(rec_has(&r, want, want_entry(want, 5, "other")));
	CHECK(rec_has(&r, want, want_entry(want, 5, "failed")));
	CHECK_EQ(r.n, 4);                                   /* the directory's inval once */
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.events_own, 1);
	fuse_server_set_notify(v.s, NULL);
	host_watch_free(w);
	close(dfd);
	srv_down(&v);
	remove_tree(dir);
}

/* A watcher of file f1 (node 9) of a fresh tree, its notifications
 * recorded: the set-up of the tests of a node's own changes. */
struct file_fx {
	char dir[32];
	struct recorder r;
	struct srv v;
	struct host_watch *w;
	int ffd, wd;
};

static void file_fx_up(struct file_fx *fx)
{
	int err;

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/kvmini-watch-XXXXXX");
	make_tree(fx->dir);
	rec_init(&fx->r);
	srv_up(&fx->v, true);
	fuse_server_set_notify(fx->v.s, &fx->r.t);
	fx->w = host_watch_new(NULL, &err);
	CHECK(fx->w != NULL);
	fx->ffd = opath(fx->dir, "f1");
	fx->wd = host_watch_add(fx->w, 9, fx->ffd, S_IFREG);
	CHECK(fx->wd >= 0);
}

static void file_fx_down(struct file_fx *fx)
{
	fuse_server_set_notify(fx->v.s, NULL);
	host_watch_free(fx->w);
	close(fx->ffd);
	srv_down(&fx->v);
	remove_tree(fx->dir);
}

/* Changes the client announced for a node itself are not sent back: each
 * kind once, never a kind not announced, withdrawn ones sent. Deleted nodes
 * and ended watches send nothing, and a watch the kernel ended is not
 * removed again (no failing inotify_rm_watch). */
static void test_own_node_changes_not_sent(void)
{
	struct host_watch_counters c;
	struct file_fx fx;
	uint8_t want[320];
	_Alignas(8) uint8_t buf[1024];
	size_t off = 0;

	file_fx_up(&fx);
	struct host_watch *w = fx.w;
	int wd = fx.wd;
	host_watch_expect_node(w, 9, IN_ATTRIB);
	host_watch_expect_node_end(w, 9, IN_ATTRIB, true);
	host_watch_expect_node(w, 9, IN_MODIFY);
	host_watch_expect_node_end(w, 9, IN_MODIFY, true);
	put_event(buf, &off, wd, IN_ATTRIB, NULL);           /* the client's chmod */
	put_event(buf, &off, wd, IN_MODIFY, NULL);           /* the client's write */
	put_event(buf, &off, wd, IN_DELETE_SELF, NULL);      /* gone: nothing */
	CHECK_EQ(host_watch_handle_events(w, fx.v.s, buf, off), 0);
	CHECK_EQ(fx.r.n, 0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.events_own, 2);
	CHECK_EQ(c.rx_events_gone, 1);

	/* Each kind was taken once: the host's chmod now is sent; so is a
	 * write next to an announced chmod, and a withdrawn one. */
	off = 0;
	put_event(buf, &off, wd, IN_ATTRIB, NULL);
	CHECK_EQ(host_watch_handle_events(w, fx.v.s, buf, off), 1);
	CHECK(rec_has(&fx.r, want, want_inode(want, 9, -1)));
	host_watch_expect_node(w, 9, IN_ATTRIB);
	host_watch_expect_node_end(w, 9, IN_ATTRIB, true);
	off = 0;
	put_event(buf, &off, wd, IN_MODIFY | IN_ATTRIB, NULL);
	CHECK_EQ(host_watch_handle_events(w, fx.v.s, buf, off), 1);
	CHECK(rec_has(&fx.r, want, want_inode(want, 9, 0)));
	host_watch_expect_node(w, 9, IN_MODIFY);
	host_watch_expect_node_end(w, 9, IN_MODIFY, false);
	host_watch_expect_node(w, 10, IN_MODIFY);            /* another node's */
	off = 0;
	put_event(buf, &off, wd, IN_MODIFY, NULL);
	CHECK_EQ(host_watch_handle_events(w, fx.v.s, buf, off), 1);
	CHECK_EQ(fx.r.n, 3);

	/* The kernel ends the watch: nothing sent, and the forget that
	 * follows makes no inotify_rm_watch (it would fail with EINVAL). */
	off = 0;
	put_event(buf, &off, wd, IN_IGNORED, NULL);
	CHECK_EQ(host_watch_handle_events(w, fx.v.s, buf, off), 0);
	CHECK_EQ(host_watch_remove(w, wd, 9, false), 0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.rx_events_gone, 2);
	CHECK_EQ(c.watches, 0);
	CHECK_EQ(c.tx_unwatch_failed, 0);
	CHECK_EQ(c.tx_invals_failed, 0);
	CHECK_EQ(fx.r.n, 3);
	file_fx_down(&fx);
}

/* handle_events on one event of @mask on watch @wd: what was sent. */
static unsigned one_event(struct host_watch *w, struct srv *v, int wd, uint32_t mask)
{
	_Alignas(8) uint8_t buf[256];
	size_t off = 0;

	put_event(buf, &off, wd, mask, NULL);
	return host_watch_handle_events(w, v->s, buf, off);
}

/* A change still under way, or announced after the events were read, keeps
 * its kind announced: the event read may be an earlier change's (a
 * truncate's, read between the next write's announcement and its system
 * call), and the later change's own event still comes. A withdrawn change
 * leaves the kind to another one under way, and a kind whose changes have
 * all ended is taken by the batch that has it, so the host's next change
 * is sent. */
static void test_own_node_change_under_way(void)
{
	struct host_watch_counters c;
	struct file_fx fx;

	file_fx_up(&fx);
	struct host_watch *w = fx.w;
	int wd = fx.wd;

	host_watch_expect_node(w, 9, IN_MODIFY);            /* the truncate */
	host_watch_expect_node_end(w, 9, IN_MODIFY, true);
	host_watch_expect_node(w, 9, IN_MODIFY);            /* the write, announced */
	CHECK_EQ(one_event(w, &fx.v, wd, IN_MODIFY), 0);        /* the truncate's */
	host_watch_expect_node_end(w, 9, IN_MODIFY, true);
	CHECK_EQ(one_event(w, &fx.v, wd, IN_MODIFY), 0);        /* the write's */
	CHECK_EQ(one_event(w, &fx.v, wd, IN_MODIFY), 1);        /* the host's */

	host_watch_expect_node(w, 9, IN_ATTRIB);            /* a chmod, under way */
	host_watch_expect_node(w, 9, IN_ATTRIB);            /* another, which fails */
	host_watch_expect_node_end(w, 9, IN_ATTRIB, false);
	host_watch_expect_node(w, 9, IN_MODIFY);            /* a write, which fails */
	host_watch_expect_node_end(w, 9, IN_MODIFY, false);
	CHECK_EQ(one_event(w, &fx.v, wd, IN_MODIFY), 1);        /* the host's */
	host_watch_expect_node_end(w, 9, IN_ATTRIB, true);
	CHECK_EQ(one_event(w, &fx.v, wd, IN_ATTRIB), 0);        /* the chmod's */
	CHECK_EQ(one_event(w, &fx.v, wd, IN_ATTRIB), 1);        /* the host's */
	CHECK_EQ(fx.r.n, 3);

	/* A write's event read, then a setattr of the same kind announced and
	 * done (another worker) before the batch is handled: its event comes
	 * in the next batch and is the client's too. */
	_Alignas(8) uint8_t buf[256];
	size_t off = 0;
	host_watch_expect_node(w, 9, IN_MODIFY);
	host_watch_expect_node_end(w, 9, IN_MODIFY, true);
	uint64_t mark = host_watch_read_mark(w);
	put_event(buf, &off, wd, IN_MODIFY, NULL);           /* the write's, read */
	host_watch_expect_node(w, 9, IN_MODIFY);
	host_watch_expect_node_end(w, 9, IN_MODIFY, true);
	CHECK_EQ(host_watch_handle_events_read_at(w, fx.v.s, buf, off, mark), 0);
	CHECK_EQ(one_event(w, &fx.v, wd, IN_MODIFY), 0);        /* the setattr's */
	CHECK_EQ(one_event(w, &fx.v, wd, IN_MODIFY), 1);        /* the host's */

	/* Repeats of an announced kind in one batch, apart: all the client's. */
	host_watch_expect_node(w, 9, IN_ATTRIB);
	host_watch_expect_node_end(w, 9, IN_ATTRIB, true);
	host_watch_expect_node(w, 9, IN_MODIFY);
	host_watch_expect_node_end(w, 9, IN_MODIFY, true);
	off = 0;
	put_event(buf, &off, wd, IN_ATTRIB, NULL);
	put_event(buf, &off, wd, IN_MODIFY, NULL);
	put_event(buf, &off, wd, IN_ATTRIB, NULL);
	CHECK_EQ(host_watch_handle_events(w, fx.v.s, buf, off), 0);
	CHECK_EQ(one_event(w, &fx.v, wd, IN_ATTRIB), 1);        /* the host's */
	CHECK_EQ(fx.r.n, 5);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.events_own, 8);

	file_fx_down(&fx);
}

/* Wait until the watcher has recognised @n events as the client's own (or
 * 3 s). */
static void wait_own(struct host_watch *w, uint64_t n)
{
	struct host_watch_counters c;
	uint64_t end = now_ms() + 3000;

	do {
		host_watch_get_counters(w, &c);
		if (c.events_own >= n)
			return;
		usleep(2000);
	} while (now_ms() < end);
}

/*
 * The passthrough backend with a running watcher on a real directory: a
 * chmod, a write, a link and the unlink of watched files through the
 * backend's operations send no invalidation, and forgetting the nodes
 * makes no failing inotify_rm_watch. Each operation's events are read
 * before the next one, as the client's round trips let the watcher do
 * (two of one kind still queued on one node count once: see
 * host_watch_expect_node). The per-file scheme: every file watched.
 */
static void test_backend_own_changes_send_nothing(void)
{
	const struct host_watch_opts wo = { .scheme = HOST_WATCH_FILES };
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	char data[] = "data";
	struct host_watch_counters c;
	struct fs_entry e, l;
	struct stat st;
	struct recorder r;
	struct srv v;
	const struct fs_ctx ctx = { 0 };
	const struct fs_setattr sa = { .valid = FATTR_MODE, .mode = 0600 };
	struct iovec iov = { data, 4 };
	uint64_t fh;
	int err = 0;

	make_tree(dir);
	rec_init(&r);
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	struct host_watch *w = host_watch_new(&wo, &err);
	CHECK(w != NULL);
	struct passthrough_opts po = { .root = dir, .watch = w };
	struct fs_backend *be = passthrough_new(&po, &err);
	CHECK(be != NULL);
	CHECK_EQ(host_watch_start(w, v.s), 0);
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f1", &e), 0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 2);
	CHECK_EQ(be->ops->setattr(be, &ctx, e.nodeid, &sa, &st), 0);
	wait_own(w, 1);
	CHECK_EQ(be->ops->open(be, &ctx, e.nodeid, O_WRONLY, &fh), 0);
	CHECK_EQ(be->ops->write(be, &ctx, fh, 0, &iov, 1), 4);
	CHECK_EQ(be->ops->release(be, fh), 0);
	wait_own(w, 2);
	/* Its link count: IN_ATTRIB, with the directory's IN_CREATE. */
	CHECK_EQ(be->ops->link(be, &ctx, e.nodeid, FUSE_ROOT_ID, "f1b", &l), 0);
	CHECK_EQ(l.nodeid, e.nodeid);
	wait_own(w, 4);
	CHECK_EQ(be->ops->unlink(be, &ctx, FUSE_ROOT_ID, "f1b"), 0);
	wait_own(w, 6);
	CHECK_EQ(be->ops->unlink(be, &ctx, FUSE_ROOT_ID, "f1"), 0);
	wait_own(w, 8);
	/* The thread removes the watch; stopping it makes it do so now. */
	be->ops->forget(be, e.nodeid, 2);
	host_watch_stop(w);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.events_own, 8);
	CHECK_EQ(c.invals, 0);
	CHECK_EQ(c.tx_unwatch_failed, 0);
	CHECK_EQ(c.watches, 1);
	CHECK_EQ(rec_count(&r), 0);
	fs_backend_destroy(be);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.tx_unwatch_failed, 0);
	CHECK_EQ(c.watches, 0);
	fuse_server_set_notify(v.s, NULL);
	host_watch_free(w);
	srv_down(&v);
	remove_tree(dir);
}

/* Wait until @r has recorded @want (or 3 s). */
static bool wait_msg(struct recorder *r, const uint8_t *want, size_t len)
{
	uint64_t end = now_ms() + 3000;

	while (!rec_has(r, want, len) && now_ms() < end)
		usleep(2000);
	return rec_has(r, want, len);
}

static void host_file(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX + 16];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/*
 * The directory scheme (the default) with the passthrough backend: a file
 * with one link gets no watch, yet a host change to it comes on its
 * directory's watch and is sent for its node; a file with a second link in
 * a directory nobody watches keeps a watch of its own, so a write through
 * that link is seen; a file the client links gets one at its next lookup;
 * and the client's own unlink sends nothing and makes no failing call.
 */
static void test_dir_scheme_backend(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	char p[PATH_MAX + 16], q[PATH_MAX + 16];
	struct host_watch_counters c;
	struct fs_entry e1, e2, e3, l;
	struct recorder r;
	struct srv v;
	uint8_t want[320];
	const struct fs_ctx ctx = { 0 };
	int err = 0;

	make_tree(dir);
	snprintf(p, sizeof(p), "%s/hidden", dir);
	CHECK_EQ(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/f2", dir);
	snprintf(q, sizeof(q), "%s/hidden/f2b", dir);
	CHECK_EQ(link(p, q), 0);
	rec_init(&r);
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	struct host_watch *w = host_watch_new(NULL, &err);
	CHECK(w != NULL);
	struct passthrough_opts po = { .root = dir, .watch = w };
	struct fs_backend *be = passthrough_new(&po, &err);
	CHECK(be != NULL);
	CHECK_EQ(host_watch_start(w, v.s), 0);
	alarm(30);

	/* f1: one link, no watch of its own; f2: two, its own watch. */
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f1", &e1), 0);
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f2", &e2), 0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 2);
	CHECK_EQ(c.tx_file_watches_spared, 1);

	/* The host writes f1: on the root's watch, by name, sent for f1. */
	host_file(dir, "f1", "host");
	CHECK(wait_msg(&r, want, want_inode(want, e1.nodeid, 0)));
	/* The host writes f2 through the link the client never saw. */
	host_file(dir, "hidden/f2b", "host");
	CHECK(wait_msg(&r, want, want_inode(want, e2.nodeid, 0)));
	/* A chmod of f1: attributes only. */
	snprintf(p, sizeof(p), "%s/f1", dir);
	CHECK_EQ(chmod(p, 0600), 0);
	CHECK(wait_msg(&r, want, want_inode(want, e1.nodeid, -1)));

	/* The client links f3: its next lookup (the link's) watches it. */
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f3", &e3), 0);
	CHECK_EQ(be->ops->link(be, &ctx, e3.nodeid, FUSE_ROOT_ID, "f3b", &l), 0);
	CHECK_EQ(l.nodeid, e3.nodeid);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 3);
	wait_own(w, 1);

	/* The client unlinks f1: nothing sent, no inotify call at all. */
	unsigned before = rec_count(&r);
	host_watch_get_counters(w, &c);
	uint64_t own = c.events_own, added = c.watches_added;
	CHECK_EQ(be->ops->unlink(be, &ctx, FUSE_ROOT_ID, "f1"), 0);
	wait_own(w, own + 1);
	be->ops->forget(be, e1.nodeid, 1);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.events_own, own + 1);
	CHECK_EQ(c.watches_added, added);
	CHECK_EQ(c.watches, 3);
	CHECK_EQ(rec_count(&r), before);

	host_watch_stop(w);
	fs_backend_destroy(be);
	alarm(0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 0);
	CHECK_EQ(c.tx_unwatch_failed, 0);
	CHECK_EQ(c.tx_watches_failed, 0);
	CHECK_EQ(c.tx_invals_failed, 0);
	fuse_server_set_notify(v.s, NULL);
	host_watch_free(w);
	srv_down(&v);
	remove_tree(dir);
}

/* Lost events in the directory scheme: every node the backend knows is
 * invalidated, the unwatched files too. */
static void test_dir_scheme_overflow(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	struct fs_entry e;
	struct recorder r;
	struct srv v;
	uint8_t want[320];
	_Alignas(8) uint8_t buf[256];
	const struct fs_ctx ctx = { 0 };
	size_t off = 0;
	int err = 0;

	make_tree(dir);
	rec_init(&r);
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	struct host_watch *w = host_watch_new(NULL, &err);
	CHECK(w != NULL);
	struct passthrough_opts po = { .root = dir, .watch = w };
	struct fs_backend *be = passthrough_new(&po, &err);
	CHECK(be != NULL);
	CHECK_EQ(be->ops->lookup(be, &ctx, FUSE_ROOT_ID, "f0", &e), 0);
	put_event(buf, &off, -1, IN_Q_OVERFLOW, NULL);
	CHECK_EQ(host_watch_handle_events(w, v.s, buf, off), 2);
	CHECK(rec_has(&r, want, want_inode(want, FUSE_ROOT_ID, 0)));
	CHECK(rec_has(&r, want, want_inode(want, e.nodeid, 0)));
	fs_backend_destroy(be);
	fuse_server_set_notify(v.s, NULL);
	host_watch_free(w);
	srv_down(&v);
	remove_tree(dir);
}

/*
 * A node without its descriptor (evicted) whose file is deleted: closing the
 * last reference made the kernel end the watch. Its removal, told the
 * descriptor is gone, waits for the thread to read the queue, so no
 * inotify_rm_watch fails; the held one is removed at once.
 */
static void test_forget_after_kernel_ended_watch(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	char p[PATH_MAX + 16];
	struct host_watch_counters c;
	struct recorder r;
	struct srv v;
	int err;

	make_tree(dir);
	rec_init(&r);
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	struct host_watch *w = host_watch_new(NULL, &err);
	CHECK(w != NULL);
	int f1 = opath(dir, "f1"), f2 = opath(dir, "f2");
	int wd1 = host_watch_add(w, 9, f1, S_IFREG), wd2 = host_watch_add(w, 10, f2, S_IFREG);
	CHECK(wd1 >= 0 && wd2 >= 0);
	CHECK_EQ(host_watch_start(w, v.s), 0);
	snprintf(p, sizeof(p), "%s/f1", dir);
	CHECK_EQ(unlink(p), 0);
	close(f1);                                  /* the kernel ends wd1 */
	CHECK_EQ(host_watch_remove(w, wd1, 9, false), 0);
	CHECK_EQ(host_watch_remove(w, wd2, 10, true), 0);
	uint64_t end = now_ms() + 3000;
	do {
		host_watch_get_counters(w, &c);
		if (!c.watches)
			break;
		usleep(2000);
	} while (now_ms() < end);
	CHECK_EQ(c.watches, 0);
	CHECK_EQ(c.tx_unwatch_failed, 0);
	host_watch_stop(w);
	fuse_server_set_notify(v.s, NULL);
	host_watch_free(w);
	close(f2);
	srv_down(&v);
	remove_tree(dir);
}

static bool cannot_send(struct fuse_notify_transport *t)
{
	(void)t;
	return false;
}

/* Nodes are not watched while nothing could reach the client. */
static void test_no_watch_without_receiver(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	struct host_watch_counters c;
	struct recorder r;
	struct srv v;
	int err;

	make_tree(dir);
	rec_init(&r);
	r.t.can_send = cannot_send;
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	CHECK(!fuse_server_notify_possible(v.s));
	struct host_watch *w = host_watch_new(NULL, &err);
	CHECK(w != NULL);
	int dfd = opath(dir, "."), ffd = opath(dir, "f0");
	CHECK(host_watch_add(w, 1, dfd, S_IFDIR) >= 0);      /* not started: the root */
	CHECK_EQ(host_watch_start(w, v.s), 0);
	CHECK_EQ(host_watch_add(w, 2, ffd, S_IFREG), -EOPNOTSUPP);
	r.t.can_send = NULL;
	CHECK(fuse_server_notify_possible(v.s));
	CHECK(host_watch_add(w, 2, ffd, S_IFREG) >= 0);
	host_watch_get_counters(w, &c);
	CHECK_EQ(c.watches, 2);
	CHECK_EQ(c.watches_skipped, 1);
	host_watch_stop(w);
	fuse_server_set_notify(v.s, NULL);
	CHECK(!fuse_server_notify_possible(v.s));
	host_watch_free(w);
	close(dfd);
	close(ffd);
	srv_down(&v);
	remove_tree(dir);
}

/* The real thing: a watched directory changed by this process, seen by the
 * watcher's thread and sent through the server. */
static void test_thread_sees_host_changes(void)
{
	char dir[] = "/tmp/kvmini-watch-XXXXXX";
	char p[PATH_MAX + 16];
	struct recorder r;
	struct srv v;
	uint8_t want[320];
	int err;

	make_tree(dir);
	rec_init(&r);
	srv_up(&v, true);
	fuse_server_set_notify(v.s, &r.t);
	struct host_watch *w = host_watch_new(NULL, &err);
	CHECK(w != NULL);
	int dfd = opath(dir, "."), ffd = opath(dir, "f2");
	CHECK(host_watch_add(w, 5, dfd, S_IFDIR) >= 0);
	CHECK(host_watch_add(w, 9, ffd, S_IFREG) >= 0);
	CHECK_EQ(host_watch_start(w, v.s), 0);

	snprintf(p, sizeof(p), "%s/hello", dir);
	int fd = open(p, O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/f2", dir);
	CHECK_EQ(chmod(p, 0600), 0);
	size_t le = want_entry(want, 5, "hello");
	uint8_t want2[64];
	size_t li = want_inode(want2, 9, -1);
	uint64_t end = now_ms() + 3000;
	while ((!rec_has(&r, want, le) || !rec_has(&r, want2, li)) && now_ms() < end)
		usleep(2000);
	CHECK(rec_has(&r, want, le));
	CHECK(rec_has(&r, want2, li));
	host_watch_stop(w);
	unsigned n = rec_count(&r);
	CHECK_EQ(unlink(p), 0);
	usleep(50 * 1000);
	CHECK_EQ(rec_count(&r), n);              /* stopped: nothing more */
	fuse_server_set_notify(v.s, NULL);
	host_watch_free(w);
	close(dfd);
	close(ffd);
	srv_down(&v);
	remove_tree(dir);
}

int main(void)
{
	log_threshold = LOG_ERROR;
	RUN_TEST(test_map_event);
	RUN_TEST(test_server_notify_bytes);
	RUN_TEST(test_refused_inside_request);
	RUN_TEST(test_watch_bound);
	RUN_TEST(test_reattached_node_keeps_watch);
	RUN_TEST(test_forget_removes_watch_before_close);
	RUN_TEST(test_events_to_notifications);
	RUN_TEST(test_own_changes_not_sent);
	RUN_TEST(test_own_node_changes_not_sent);
	RUN_TEST(test_own_node_change_under_way);
	RUN_TEST(test_backend_own_changes_send_nothing);
	RUN_TEST(test_dir_scheme_backend);
	RUN_TEST(test_dir_scheme_overflow);
	RUN_TEST(test_forget_after_kernel_ended_watch);
	RUN_TEST(test_no_watch_without_receiver);
	RUN_TEST(test_thread_sees_host_changes);
	return CHECK_DONE();
}
