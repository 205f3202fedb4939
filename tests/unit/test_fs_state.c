/*
 * Snapshots of the FUSE side: a session with nodes looked up and files and
 * directories open is saved, a fresh server and passthrough backend over
 * the same directory load it, and the old node ids and handles work with no
 * new INIT. Then what cannot come back (a file deleted on the host) answers
 * ESTALE for that node alone, a file moved on the host is found by its
 * handle, a recreated one by its path when handles cannot be used, and
 * every malformed section is refused with nothing applied. Also the
 * virtio-fs device's own section, with a DAX window's mappings made again,
 * and memfs being refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "check.h"
#include "fuse_req.h"
#include "core/event_loop.h"
#include "core/state_io.h"
#include "fs/dax_window.h"
#include "fs/memfs.h"
#include "fs/passthrough.h"
#include "fs/virtio_fs.h"
#include "fuse/fuse_server.h"

static char tmpdir[64];
static char rootdir[96];

static struct fuse_server *srv;
static struct fs_backend *be;

static uint8_t outbuf[(1u << 20) + 4096] __attribute__((aligned(8)));
static uint8_t qbuf[65536] __attribute__((aligned(8)));
static struct frq q = { .buf = qbuf, .cap = sizeof(qbuf) };

/* --- requests ---------------------------------------------------------------- */

/* The reply's error, 1 when there was none; *@len the reply length. */
static int call(size_t *len)
{
	struct iovec in = { q.buf, q.len }, out = { outbuf, sizeof(outbuf) };
	size_t n = fuse_server_handle(srv, &in, 1, &out, 1);
	struct fuse_out_header oh;

	if (len)
		*len = n;
	if (n == 0)
		return 1;
	memcpy(&oh, outbuf, sizeof(oh));
	CHECK_EQ(oh.unique, q.unique);
	return oh.error;
}

static void *payload(void)
{
	return outbuf + sizeof(struct fuse_out_header);
}

static int do_init(void)
{
	struct fuse_init_in in = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION,
				   .max_readahead = 1 << 20, .flags = 0xffffffffu & ~FUSE_INIT_EXT };

	frq_build(&q, FUSE_INIT, 0, &in, sizeof(in), NULL, 0);
	return call(NULL);
}

static uint64_t lookup(uint64_t parent, const char *name)
{
	frq_start(&q, FUSE_LOOKUP, parent);
	frq_str(&q, name);
	frq_end(&q);
	if (call(NULL) != 0)
		return 0;
	return ((struct fuse_entry_out *)payload())->nodeid;
}

static int getattr(uint64_t nodeid)
{
	struct fuse_getattr_in in = { 0 };

	frq_build(&q, FUSE_GETATTR, nodeid, &in, sizeof(in), NULL, 0);
	return call(NULL);
}

static void forget(uint64_t nodeid, uint64_t n)
{
	struct fuse_forget_in in = { .nlookup = n };

	frq_build(&q, FUSE_FORGET, nodeid, &in, sizeof(in), NULL, 0);
	CHECK_EQ(call(NULL), 1);
}

static uint64_t do_open(uint32_t op, uint64_t nodeid, uint32_t flags)
{
	struct fuse_open_in in = { .flags = flags };

	frq_build(&q, op, nodeid, &in, sizeof(in), NULL, 0);
	if (call(NULL) != 0)
		return 0;
	return ((struct fuse_open_out *)payload())->fh;
}

static int do_release(uint32_t op, uint64_t nodeid, uint64_t fh)
{
	struct fuse_release_in in = { .fh = fh };

	frq_build(&q, op, nodeid, &in, sizeof(in), NULL, 0);
	return call(NULL);
}

static int do_write(uint64_t nodeid, uint64_t fh, uint64_t off, const char *data)
{
	struct fuse_write_in in = { .fh = fh, .offset = off, .size = (uint32_t)strlen(data) };

	frq_build(&q, FUSE_WRITE, nodeid, &in, sizeof(in), data, strlen(data));
	return call(NULL);
}

/* READ into @buf; returns the bytes read or -errno. */
static int do_read(uint64_t nodeid, uint64_t fh, char *buf, size_t size)
{
	struct fuse_read_in in = { .fh = fh, .size = (uint32_t)size };
	size_t len;

	frq_build(&q, FUSE_READ, nodeid, &in, sizeof(in), NULL, 0);
	int rc = call(&len);
	if (rc)
		return rc;
	size_t n = len - sizeof(struct fuse_out_header);
	memcpy(buf, payload(), n);
	return (int)n;
}

/* READDIR from offset 0: does the listing hold @name? -errno on error. */
static int dir_has(uint64_t nodeid, uint64_t fh, const char *name)
{
	struct fuse_read_in in = { .fh = fh, .size = 65536 };
	size_t len;

	frq_build(&q, FUSE_READDIR, nodeid, &in, sizeof(in), NULL, 0);
	int rc = call(&len);
	if (rc)
		return rc;
	const uint8_t *p = payload(), *end = outbuf + len;
	while (p + FUSE_NAME_OFFSET <= end) {
		const struct fuse_dirent *d = (const struct fuse_dirent *)p;
		if (d->namelen == strlen(name) && !memcmp(d->name, name, d->namelen))
			return 1;
		p += FUSE_DIRENT_SIZE(d);
	}
	return 0;
}

/* --- host files and servers ---------------------------------------------------- */

static void host_write(const char *name, const char *data)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", rootdir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static void host_read(const char *name, char *buf, size_t size)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", rootdir, name);
	int fd = open(p, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

static void host_unlink(const char *name)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", rootdir, name);
	CHECK_EQ(unlink(p), 0);
}

static void host_rename(const char *from, const char *to)
{
	char a[256], b[256];

	snprintf(a, sizeof(a), "%s/%s", rootdir, from);
	snprintf(b, sizeof(b), "%s/%s", rootdir, to);
	CHECK_EQ(rename(a, b), 0);
}

static void pair_free(void)
{
	fuse_server_free(srv);
	fs_backend_destroy(be);
	srv = NULL;
	be = NULL;
}

/* A fresh server and backend over the share, not initialized. */
static void pair_new(enum fuse_cache_policy cache)
{
	struct passthrough_opts po = { .root = rootdir };
	struct fuse_server_opts so = { .cache = cache };
	int err = 0;

	pair_free();
	be = passthrough_new(&po, &err);
	CHECK(be != NULL);
	srv = be ? fuse_server_new(be, &so) : NULL;
	CHECK(srv != NULL);
}

static struct passthrough_stats stats(void)
{
	struct passthrough_stats st;

	passthrough_get_stats(be, &st);
	return st;
}

/* Save the current server into @w (fresh). */
static void save(struct state_writer *w)
{
	struct errbuf eb = { 0 };

	state_writer_init(w);
	CHECK_EQ(fuse_server_state_save(srv, w, &eb), 0);
	CHECK(!w->failed);
}

/* Load @len bytes into a fresh pair; the reader's verdict, @eb the why. */
static bool load_bytes(const uint8_t *p, size_t len, struct errbuf *eb)
{
	struct state_reader r;

	pair_new(FUSE_CACHE_AUTO);
	state_reader_init(&r, p, len, eb);
	bool ok = fuse_server_state_load(srv, &r) && state_at_end(&r);
	return ok;
}

static bool load(const struct state_writer *w)
{
	struct errbuf eb = { 0 };
	bool ok = load_bytes(w->buf, w->len, &eb);

	if (!ok)
		fprintf(stderr, "  load: %s\n", eb.msg);
	return ok;
}

/* --- the round trip ---------------------------------------------------------- */

static void test_restore_round_trip(void)
{
	struct state_writer w;
	char buf[256];

	host_write("a.txt", "hello");
	host_write("log.txt", "one\n");
	host_write("sub/b.txt", "bee");
	host_write("sub/c.txt", "sea");
	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	uint64_t a = lookup(FUSE_ROOT_ID, "a.txt"), log = lookup(FUSE_ROOT_ID, "log.txt");
	uint64_t sub = lookup(FUSE_ROOT_ID, "sub"), b = lookup(sub, "b.txt");
	CHECK_EQ(lookup(sub, "b.txt"), b);                   /* b: two lookups */
	CHECK(a && log && sub && b);
	uint64_t fa = do_open(FUSE_OPEN, a, O_RDONLY);
	uint64_t flog = do_open(FUSE_OPEN, log, O_WRONLY | O_APPEND);
	uint64_t dsub = do_open(FUSE_OPENDIR, sub, O_RDONLY);
	CHECK(fa && flog && dsub);
	uint32_t minor = fuse_server_proto_minor(srv), max_write = fuse_server_max_write(srv);
	save(&w);

	CHECK(load(&w));
	/* No INIT: the session is the saved one. */
	CHECK_EQ(fuse_server_proto_minor(srv), minor);
	CHECK_EQ(fuse_server_max_write(srv), max_write);
	CHECK_EQ(stats().nodes, 5);
	CHECK_EQ(stats().files, 3);
	CHECK_EQ(stats().stale, 0);
	/* O_APPEND came back: offset 0 still appends; nothing was truncated. */
	CHECK_EQ(do_write(log, flog, 0, "two\n"), 0);
	host_read("log.txt", buf, sizeof(buf));
	CHECK(!strcmp(buf, "one\ntwo\n"));
	CHECK_EQ(do_read(a, fa, buf, sizeof(buf)), 5);
	CHECK(!memcmp(buf, "hello", 5));
	CHECK_EQ(getattr(a), 0);
	CHECK_EQ(getattr(b), 0);
	CHECK_EQ(getattr(sub), 0);
	CHECK_EQ(dir_has(sub, dsub, "c.txt"), 1);
	/* Lookup counts came back: two forgets of b's one and one drop it. */
	forget(b, 1);
	CHECK_EQ(getattr(b), 0);
	forget(b, 1);
	CHECK_EQ(getattr(b), -ESTALE);
	CHECK_EQ(stats().nodes, 4);
	/* Handles release normally; new lookups get the old node back. */
	CHECK_EQ(do_release(FUSE_RELEASE, a, fa), 0);
	CHECK_EQ(do_release(FUSE_RELEASEDIR, sub, dsub), 0);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "a.txt"), a);
	CHECK_EQ(stats().files, 1);
	state_writer_free(&w);
	pair_free();
}

/* A save of a saved-and-restored server is the same state. */
static void test_restore_twice(void)
{
	struct state_writer w1, w2;

	host_write("t.txt", "t");
	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	uint64_t t = lookup(FUSE_ROOT_ID, "t.txt");
	CHECK(do_open(FUSE_OPEN, t, O_RDWR) != 0);
	save(&w1);
	CHECK(load(&w1));
	save(&w2);
	CHECK_EQ(w1.len, w2.len);
	CHECK(w1.len == w2.len && !memcmp(w1.buf, w2.buf, w1.len));
	state_writer_free(&w1);
	state_writer_free(&w2);
	pair_free();
}

/* --- nodes that do not come back as they were --------------------------------- */

static void test_restore_deleted_file(void)
{
	struct state_writer w;
	char buf[16];

	host_write("keep.txt", "k");
	host_write("gone.txt", "g");
	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	uint64_t keep = lookup(FUSE_ROOT_ID, "keep.txt"), gone = lookup(FUSE_ROOT_ID, "gone.txt");
	uint64_t fg = do_open(FUSE_OPEN, gone, O_RDONLY), fk = do_open(FUSE_OPEN, keep, O_RDONLY);
	save(&w);
	pair_free();                  /* the old process is gone, its descriptors too */
	host_unlink("gone.txt");

	CHECK(load(&w));
	CHECK_EQ(stats().stale, 1);
	CHECK_EQ(getattr(gone), -ESTALE);
	CHECK_EQ(do_read(gone, fg, buf, sizeof(buf)), -ESTALE);
	CHECK_EQ(getattr(keep), 0);
	CHECK_EQ(do_read(keep, fk, buf, sizeof(buf)), 1);
	/* A stale handle still releases, a stale node is still forgotten. */
	CHECK_EQ(do_release(FUSE_RELEASE, gone, fg), 0);
	CHECK_EQ(do_read(gone, fg, buf, sizeof(buf)), -EBADF);
	forget(gone, 1);
	CHECK_EQ(stats().nodes, 2);
	/* The name is free again: a new file gets a new node. */
	host_write("gone.txt", "new");
	uint64_t again = lookup(FUSE_ROOT_ID, "gone.txt");
	CHECK(again != 0 && again != gone);
	state_writer_free(&w);
	pair_free();
}

/* A file unlinked on the host while the client had it open: nothing names
 * it at save time, so it comes back stale. */
static void test_restore_unlinked_open(void)
{
	struct state_writer w;

	host_write("tmp.txt", "x");
	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	uint64_t t = lookup(FUSE_ROOT_ID, "tmp.txt");
	CHECK(do_open(FUSE_OPEN, t, O_RDWR) != 0);
	host_unlink("tmp.txt");
	save(&w);
	CHECK(load(&w));
	CHECK_EQ(stats().stale, 1);
	CHECK_EQ(getattr(t), -ESTALE);
	CHECK_EQ(getattr(FUSE_ROOT_ID), 0);
	state_writer_free(&w);
	pair_free();
}

/* Renamed on the host: the path misses, the file handle finds it (needs
 * CAP_DAC_READ_SEARCH; without it the node is stale, also checked). */
static void test_restore_moved_by_handle(void)
{
	struct state_writer w;

	host_write("moved.txt", "m");
	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	uint64_t m = lookup(FUSE_ROOT_ID, "moved.txt");
	save(&w);
	pair_free();
	host_rename("moved.txt", "sub/moved2.txt");
	CHECK(load(&w));
	if (geteuid() == 0) {
		CHECK_EQ(getattr(m), 0);
		CHECK_EQ(stats().stale, 0);
	} else {
		CHECK_EQ(getattr(m), -ESTALE);
	}
	state_writer_free(&w);
	pair_free();
	host_unlink("sub/moved2.txt");
}

/* The FSPT section's mount id, so a test can make handles unusable. */
static uint8_t *fspt_mount_id(struct state_writer *w)
{
	for (size_t i = 0; i + 12 <= w->len; i++) {
		if (!memcmp(w->buf + i, "FSPT", 4))
			return w->buf + i + 8;
	}
	return NULL;
}

/* Deleted and made again on the host: with the handle usable it is
 * another file (stale); on another mount (a copy of the share) the path
 * alone finds the new file. */
static void test_restore_path_fallback(void)
{
	struct state_writer w;
	char buf[16];

	host_write("re.txt", "old");
	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	uint64_t re = lookup(FUSE_ROOT_ID, "re.txt");
	uint64_t fre = do_open(FUSE_OPEN, re, O_RDONLY);
	save(&w);
	pair_free();
	host_unlink("re.txt");
	host_write("re.txt", "new");
	if (geteuid() == 0) {
		CHECK(load(&w));
		CHECK_EQ(getattr(re), -ESTALE);
	}
	uint8_t *mnt = fspt_mount_id(&w);
	CHECK(mnt != NULL);
	if (mnt)
		memset(mnt, 0xfe, 4);       /* not this share's mount */
	CHECK(load(&w));
	CHECK_EQ(getattr(re), 0);
	CHECK_EQ(do_read(re, fre, buf, sizeof(buf)), 3);
	CHECK(!memcmp(buf, "new", 3));
	state_writer_free(&w);
	pair_free();
}

/* A clone restores onto a copy of the share (another directory on the
 * same filesystem): the saved handles name the original's files, so the
 * paths find the copy's; writes through an old handle land in the copy
 * and the original is left alone. */
static void test_restore_onto_copy(void)
{
	struct state_writer w;
	char orig[sizeof(rootdir)], buf[32];

	host_write("cl.txt", "base");
	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	uint64_t cl = lookup(FUSE_ROOT_ID, "cl.txt");
	uint64_t fcl = do_open(FUSE_OPEN, cl, O_WRONLY | O_APPEND);
	save(&w);
	pair_free();
	memcpy(orig, rootdir, sizeof(orig));
	snprintf(rootdir, sizeof(rootdir), "%s/copy", tmpdir);
	mkdir(rootdir, 0755);
	host_write("cl.txt", "base");
	CHECK(load(&w));
	CHECK_EQ(getattr(cl), 0);
	CHECK_EQ(do_write(cl, fcl, 0, "+c"), 0);
	host_read("cl.txt", buf, sizeof(buf));
	CHECK(!strcmp(buf, "base+c"));
	pair_free();
	memcpy(rootdir, orig, sizeof(orig));
	host_read("cl.txt", buf, sizeof(buf));
	CHECK(!strcmp(buf, "base"));
	state_writer_free(&w);
}

/* The host watcher is a node observer: restored nodes are told to it as
 * looked-up ones are, so their watches come back; stale ones are not. */
struct count_obs {
	struct fs_node_observer obs;
	unsigned added, forgotten;
};

static int obs_added(struct fs_node_observer *o, uint64_t nodeid, int fd, mode_t type,
		     nlink_t nlink)
{
	struct count_obs *c = (struct count_obs *)o;

	c->added++;
	return (int)c->added;
}

static void obs_forgotten(struct fs_node_observer *o, uint64_t nodeid, int token, bool held)
{
	((struct count_obs *)o)->forgotten++;
}

static const struct fs_node_observer_ops count_ops = { obs_added, obs_forgotten, NULL };

static void test_restore_watches(void)
{
	static struct count_obs c = { .obs.ops = &count_ops };
	struct passthrough_opts po = { .root = rootdir, .observer = &c.obs };
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };
	int err;

	host_write("w1.txt", "1");
	host_write("w2.txt", "2");
	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	uint64_t w1 = lookup(FUSE_ROOT_ID, "w1.txt");
	CHECK(lookup(FUSE_ROOT_ID, "w2.txt") != 0);
	CHECK(lookup(FUSE_ROOT_ID, "sub") != 0);
	save(&w);
	pair_free();
	host_unlink("w2.txt");

	be = passthrough_new(&po, &err);
	srv = be ? fuse_server_new(be, NULL) : NULL;
	CHECK(srv != NULL);
	CHECK_EQ(c.added, 1);                        /* the root */
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(fuse_server_state_load(srv, &r));
	CHECK_EQ(c.added, 3);                        /* w1 and sub; w2 is stale */
	forget(w1, 1);
	CHECK_EQ(c.forgotten, 1);
	state_writer_free(&w);
	pair_free();
	host_write("w2.txt", "2");
}

/* --- refusals ----------------------------------------------------------------- */

/* The FUSE section of an initialized fresh server, as saved. */
static void put_session(struct state_writer *w)
{
	struct state_writer full;
	struct errbuf eb = { 0 };

	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	state_writer_init(&full);
	CHECK_EQ(fuse_server_state_save(srv, &full, &eb), 0);
	/* The first section: tag, length, body. */
	uint32_t len;
	memcpy(&len, full.buf + 4, 4);
	state_writer_init(w);
	state_put_bytes(w, full.buf, 8 + len);
	state_writer_free(&full);
}

struct node_spec {
	uint64_t id, nlookup;
	uint32_t type;
	uint32_t hbytes;
	const char *path;
};

static void put_node(struct state_writer *w, const struct node_spec *n)
{
	uint8_t h[256] = { 0 };

	state_put_u64(w, n->id);
	state_put_u64(w, n->nlookup);
	state_put_u32(w, n->type);
	state_put_u64(w, 1);
	state_put_u64(w, 1);
	state_put_u8(w, 0);
	state_put_u32(w, n->hbytes);
	state_put_u32(w, 1);
	state_put_bytes(w, h, n->hbytes);
	state_put_str(w, n->path);
}

static void put_file(struct state_writer *w, uint64_t fh, uint64_t node, uint32_t flags, bool dir)
{
	state_put_u64(w, fh);
	state_put_u64(w, node);
	state_put_u32(w, flags);
	state_put_u8(w, dir);
	state_put_u8(w, 0);
}

static const struct node_spec ROOT = { 1, 1, S_IFDIR, 0, "" };

/* Load @w and expect a refusal that applied nothing. */
static void refused(struct state_writer *w, const char *what)
{
	struct errbuf eb = { 0 };

	CHECK(!w->failed);
	CHECK(!load_bytes(w->buf, w->len, &eb));
	CHECK(eb.msg[0] != '\0');
	fprintf(stderr, "  refused (%s): %s\n", what, eb.msg);
	CHECK_EQ(getattr(FUSE_ROOT_ID), -EIO);     /* still not initialized */
	CHECK_EQ(stats().nodes, 1);
	CHECK_EQ(stats().files, 0);
	state_writer_free(w);
}

/* A section with the root and @extra nodes, then @nfiles handles of the
 * file node 2. */
static void build(struct state_writer *w, const struct node_spec *extra, unsigned n,
		  unsigned nfiles, uint32_t flags)
{
	put_session(w);
	state_begin(w, "FSPT");
	state_put_u32(w, 0);
	state_put_u32(w, 1 + n);
	put_node(w, &ROOT);
	for (unsigned i = 0; i < n; i++)
		put_node(w, &extra[i]);
	state_put_u32(w, nfiles);
	for (unsigned i = 0; i < nfiles; i++)
		put_file(w, 1 + i, 2, flags, false);
	state_end(w);
}

static void test_refusals(void)
{
	struct state_writer w;
	const struct node_spec file = { 2, 1, S_IFREG, 0, "f.txt" };
	struct node_spec bad[2];

	host_write("f.txt", "f");
	/* The well-formed one loads: the builder is right. */
	build(&w, &file, 1, 1, O_RDWR);
	CHECK(load(&w));
	CHECK_EQ(getattr(2), 0);
	state_writer_free(&w);

	build(&w, &file, 1, 1, O_RDWR);
	w.len -= 1;
	refused(&w, "truncated");

	bad[0] = file;
	bad[1] = file;
	build(&w, bad, 2, 0, 0);
	refused(&w, "duplicate id");

	bad[1].id = (1ull << 32) | 2;                /* same slot, other generation */
	build(&w, bad, 2, 0, 0);
	refused(&w, "duplicate slot");

	bad[0] = file;
	bad[0].id = 0;
	build(&w, bad, 1, 0, 0);
	refused(&w, "id zero");

	const char *paths[] = { "../etc/passwd", "/etc/passwd", "a//b", "a/../b", "./f.txt", "f/" };
	for (unsigned i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		bad[0] = file;
		bad[0].path = paths[i];
		build(&w, bad, 1, 0, 0);
		refused(&w, paths[i]);
	}

	bad[0] = file;
	bad[0].hbytes = 129;
	build(&w, bad, 1, 0, 0);
	refused(&w, "handle too large");

	bad[0] = file;
	bad[0].nlookup = 0;
	build(&w, bad, 1, 0, 0);
	refused(&w, "lookup count 0");

	bad[0] = file;
	bad[0].type = 0170000;
	build(&w, bad, 1, 0, 0);
	refused(&w, "unknown type");

	build(&w, &file, 1, 1, O_RDWR | O_TRUNC);
	refused(&w, "O_TRUNC handle");

	/* A handle of a node not in the state. */
	put_session(&w);
	state_begin(&w, "FSPT");
	state_put_u32(&w, 0);
	state_put_u32(&w, 1);
	put_node(&w, &ROOT);
	state_put_u32(&w, 1);
	put_file(&w, 1, 7, O_RDONLY, false);
	state_end(&w);
	refused(&w, "handle of an unknown node");

	/* No root first. */
	put_session(&w);
	state_begin(&w, "FSPT");
	state_put_u32(&w, 0);
	state_put_u32(&w, 1);
	put_node(&w, &file);
	state_put_u32(&w, 0);
	state_end(&w);
	refused(&w, "no root");

	/* Too many nodes. */
	put_session(&w);
	state_begin(&w, "FSPT");
	state_put_u32(&w, 0);
	state_put_u32(&w, 1u << 21);
	state_end(&w);
	refused(&w, "too many nodes");

	/* Bytes after the handles, inside the section. */
	build(&w, &file, 1, 0, 0);
	state_put_u8(&w, 0);                         /* lengthens the last section */
	{
		uint8_t *p = NULL;
		for (size_t i = 0; i + 8 <= w.len; i++)
			if (!memcmp(w.buf + i, "FSPT", 4))
				p = w.buf + i + 4;
		uint32_t len;
		memcpy(&len, p, 4);
		len++;
		memcpy(p, &len, 4);
	}
	refused(&w, "trailing bytes");
}

/* A session saved under one cache policy is not restored under another,
 * and a server that had INIT already is not overwritten. */
static void test_refused_mismatch(void)
{
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };

	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	save(&w);
	pair_new(FUSE_CACHE_NONE);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(!fuse_server_state_load(srv, &r));
	CHECK(strstr(eb.msg, "cache policy") != NULL);
	CHECK_EQ(getattr(FUSE_ROOT_ID), -EIO);

	pair_new(FUSE_CACHE_AUTO);
	CHECK_EQ(do_init(), 0);
	CHECK(lookup(FUSE_ROOT_ID, "f.txt") != 0);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(!fuse_server_state_load(srv, &r));
	CHECK_EQ(stats().nodes, 2);
	state_writer_free(&w);
	pair_free();
}

static void test_memfs_refused(void)
{
	struct state_writer w;
	struct errbuf eb = { 0 };
	int err = 0;
	struct fs_backend *m = memfs_new(NULL, &err);
	struct fuse_server *s = m ? fuse_server_new(m, NULL) : NULL;

	CHECK(s != NULL);
	if (!s)
		return;
	state_writer_init(&w);
	CHECK_EQ(fuse_server_state_save(s, &w, &eb), -EOPNOTSUPP);
	CHECK(strstr(eb.msg, "memfs") != NULL);
	state_writer_free(&w);
	fuse_server_free(s);
	fs_backend_destroy(m);
}

/* --- the virtio-fs device ------------------------------------------------------- */

struct fs_dev {
	struct event_loop loop;
	struct virtio_fs fs;
};

static void dev_new(struct fs_dev *d, const char *tag)
{
	struct virtio_fs_opts o = { .tag = tag, .offer_notification = true };

	CHECK_EQ(event_loop_init(&d->loop), 0);
	CHECK_EQ(virtio_fs_init(&d->fs, &o, srv, &d->loop), 0);
}

static void dev_free(struct fs_dev *d)
{
	virtio_fs_destroy(&d->fs);
	event_loop_destroy(&d->loop);
}

static void test_virtio_fs_device(void)
{
	static struct fs_dev d;
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };

	host_write("v.txt", "v");
	pair_new(FUSE_CACHE_AUTO);
	dev_new(&d, "share");
	CHECK_EQ(do_init(), 0);
	uint64_t v = lookup(FUSE_ROOT_ID, "v.txt");
	/* A never-activated device holds its gate: at a request boundary. */
	d.fs.notify_negotiated = true;
	d.fs.counters.rx_requests = 42;
	state_writer_init(&w);
	CHECK_EQ(virtio_fs_state_save(&d.fs, &w, &eb), 0);
	/* An open gate with nobody inside is not a pause. */
	virtio_fs_resume(&d.fs);
	struct state_writer w2;
	state_writer_init(&w2);
	CHECK_EQ(virtio_fs_state_save(&d.fs, &w2, &eb), -EBUSY);
	virtio_fs_pause(&d.fs);
	virtio_fs_wait_idle(&d.fs);
	state_writer_free(&w2);
	dev_free(&d);

	/* Another tag: refused, nothing applied. */
	pair_new(FUSE_CACHE_AUTO);
	dev_new(&d, "other");
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(!virtio_fs_state_load(&d.fs, &r));
	CHECK(strstr(eb.msg, "tagged") != NULL);
	CHECK_EQ(getattr(FUSE_ROOT_ID), -EIO);
	dev_free(&d);

	pair_new(FUSE_CACHE_AUTO);
	dev_new(&d, "share");
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(virtio_fs_state_load(&d.fs, &r));
	CHECK(state_at_end(&r));
	CHECK(d.fs.notify_negotiated);
	CHECK_EQ(d.fs.req_base, 2);
	CHECK_EQ(d.fs.vdev.num_queues, 3);
	CHECK_EQ(d.fs.counters.rx_requests, 42);
	CHECK_EQ(getattr(v), 0);
	dev_free(&d);
	state_writer_free(&w);
	pair_free();
}

/* A device with a DAX window: the guest's mapping is saved with the device
 * and made again in a new device and window, the same file bytes at the
 * same window offset, writable as before; the window's bytes are not in
 * the state (it stays a few hundred bytes). */
static void test_virtio_fs_dax(void)
{
	static struct fs_dev d;
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };
	int err = 0;
	struct dax_window *win = dax_window_new(DAX_WINDOW_MIN_SIZE, &err);
	char text[4096] = "dax bytes from the host";

	host_write("dax.txt", text);
	pair_new(FUSE_CACHE_AUTO);
	dev_new(&d, "share");
	virtio_fs_set_dax(&d.fs, &win->fuse, 1ull << 32);
	CHECK_EQ(do_init(), 0);
	uint64_t n = lookup(FUSE_ROOT_ID, "dax.txt");
	struct fuse_setupmapping_in in = { .fh = UINT64_MAX, .len = 4096, .moffset = 1 << 20,
					   .flags = FUSE_SETUPMAPPING_FLAG_READ |
						    FUSE_SETUPMAPPING_FLAG_WRITE };
	frq_build(&q, FUSE_SETUPMAPPING, n, &in, sizeof(in), NULL, 0);
	CHECK_EQ(call(NULL), 0);
	state_writer_init(&w);
	CHECK_EQ(virtio_fs_state_save(&d.fs, &w, &eb), 0);
	CHECK(w.len < 1024);
	dev_free(&d);
	dax_window_free(win);

	win = dax_window_new(DAX_WINDOW_MIN_SIZE, &err);
	pair_new(FUSE_CACHE_AUTO);
	dev_new(&d, "share");
	virtio_fs_set_dax(&d.fs, &win->fuse, 1ull << 32);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(virtio_fs_state_load(&d.fs, &r));
	CHECK(state_at_end(&r));
	CHECK(!memcmp(win->host + (1 << 20), text, strlen(text)));
	memcpy(win->host + (1 << 20), "DAX", 3);
	host_read("dax.txt", text, sizeof(text));
	CHECK(!strncmp(text, "DAX bytes", 9));
	dev_free(&d);
	dax_window_free(win);
	state_writer_free(&w);
	pair_free();
}

/* --- setup ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	char sub[128];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvmini-fs-state.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(rootdir, sizeof(rootdir), "%s/share", tmpdir);
	snprintf(sub, sizeof(sub), "%s/sub", rootdir);
	mkdir(rootdir, 0755);
	mkdir(sub, 0755);

	RUN_TEST(test_restore_round_trip);
	RUN_TEST(test_restore_twice);
	RUN_TEST(test_restore_deleted_file);
	RUN_TEST(test_restore_unlinked_open);
	RUN_TEST(test_restore_moved_by_handle);
	RUN_TEST(test_restore_path_fallback);
	RUN_TEST(test_restore_onto_copy);
	RUN_TEST(test_restore_watches);
	RUN_TEST(test_refusals);
	RUN_TEST(test_refused_mismatch);
	RUN_TEST(test_memfs_refused);
	RUN_TEST(test_virtio_fs_device);
	RUN_TEST(test_virtio_fs_dax);

	pair_free();
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return CHECK_DONE();
}
