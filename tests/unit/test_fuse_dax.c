/*
 * FUSE_SETUPMAPPING and FUSE_REMOVEMAPPING through the FUSE server over the
 * passthrough backend, with a real DAX window (fs/dax_window.h: host address
 * space reserved by the test process): after a mapping the window's bytes
 * are the file's, a write through a writable mapping reaches the file, a
 * removed range is inaccessible again, INIT and DESTROY empty the window,
 * and every refusal answers its errno and is counted. Snapshots: the
 * mappings saved and made again in a fresh server and window; a corrupt or
 * inconsistent section, or a file truncated since, refused by name with
 * nothing left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "check.h"
#include "fuse_req.h"
#include "core/compiler.h"
#include "fs/dax_window.h"
#include "fs/passthrough.h"
#include "core/state_io.h"
#include "fuse/dax_ranges.h"
#include "fuse/fuse_server.h"

#define PG 4096ull
#define FILE_SIZE (4 * PG)
#define NO_FH UINT64_MAX

static char tmpdir[64];
static char rootdir[96];
static struct fs_backend *be;
static struct fuse_server *srv;
static struct dax_window *win;

static uint8_t qbuf[16384] __attribute__((aligned(8)));
static struct frq q = { .buf = qbuf, .cap = sizeof(qbuf) };
static uint8_t outbuf[8192] __attribute__((aligned(8)));

/* The reply's error; the reply is checked to be a bare header. */
static int call(void)
{
	struct iovec in = { q.buf, q.len }, out = { outbuf, sizeof(outbuf) };
	size_t n = fuse_server_handle(srv, &in, 1, &out, 1);
	struct fuse_out_header oh;

	CHECK(n >= sizeof(oh));
	memcpy(&oh, outbuf, sizeof(oh));
	CHECK_EQ(oh.len, n);
	CHECK_EQ(oh.unique, q.unique);
	return oh.error;
}

static struct fuse_init_out init(void)
{
	struct fuse_init_in in = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
				   .max_readahead = 1 << 20, .flags = FUSE_MAP_ALIGNMENT };
	struct fuse_init_out out = { 0 };

	frq_build(&q, FUSE_INIT, 0, &in, sizeof(in), NULL, 0);
	CHECK_EQ(call(), 0);
	memcpy(&out, outbuf + sizeof(struct fuse_out_header), sizeof(out));
	return out;
}

static uint64_t lookup(const char *name)
{
	struct fuse_entry_out eo = { 0 };

	frq_start(&q, FUSE_LOOKUP, FUSE_ROOT_ID);
	frq_str(&q, name);
	frq_end(&q);
	CHECK_EQ(call(), 0);
	memcpy(&eo, outbuf + sizeof(struct fuse_out_header), sizeof(eo));
	return eo.nodeid;
}

static uint64_t open_file(uint64_t node, uint32_t flags)
{
	struct fuse_open_in in = { .flags = flags };
	struct fuse_open_out oo = { 0 };

	frq_build(&q, FUSE_OPEN, node, &in, sizeof(in), NULL, 0);
	CHECK_EQ(call(), 0);
	memcpy(&oo, outbuf + sizeof(struct fuse_out_header), sizeof(oo));
	return oo.fh;
}

static int setup(uint64_t node, uint64_t fh, uint64_t foff, uint64_t len, uint64_t flags,
		 uint64_t moff)
{
	struct fuse_setupmapping_in in = { .fh = fh, .foffset = foff, .len = len,
					   .flags = flags, .moffset = moff };

	frq_build(&q, FUSE_SETUPMAPPING, node, &in, sizeof(in), NULL, 0);
	return call();
}

/* REMOVEMAPPING claiming @count entries, @n of them present. */
static int removem(uint32_t count, const struct fuse_removemapping_one *one, unsigned n)
{
	struct fuse_removemapping_in in = { .count = count };

	frq_build(&q, FUSE_REMOVEMAPPING, FUSE_ROOT_ID, &in, sizeof(in), one, n * sizeof(*one));
	return call();
}

static struct fuse_server_counters counters(void)
{
	struct fuse_server_counters c;

	fuse_server_get_counters(srv, &c);
	return c;
}

/* Can this process read @len bytes at @p? (A pipe write copies them: EFAULT
 * when the range is not readable, without a signal.) */
static bool readable(const void *p, size_t len)
{
	int fds[2];

	if (pipe(fds) < 0)
		return false;
	ssize_t n = write(fds[1], p, len);
	close(fds[0]);
	close(fds[1]);
	return n == (ssize_t)len;
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static void make_file(const char *name, uint64_t size)
{
	char path[160];
	uint8_t *buf = malloc(size);

	for (uint64_t i = 0; i < size; i++)
		buf[i] = pattern(i);
	snprintf(path, sizeof(path), "%s/%s", rootdir, name);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	CHECK(fd >= 0 && write(fd, buf, size) == (ssize_t)size);
	close(fd);
	free(buf);
}

static void test_init_offers_alignment(void)
{
	struct fuse_init_out out = init();

	CHECK(out.flags & FUSE_MAP_ALIGNMENT);
	CHECK_EQ(out.map_alignment, 12);
}

/* Linux's way: no handle, the node; read and write through the window. */
static void test_map_read_write(void)
{
	uint64_t node = lookup("data");
	struct fuse_server_counters before = counters();
	uint8_t *w = win->host + 64 * PG;

	CHECK_EQ(setup(node, NO_FH, 0, FILE_SIZE, FUSE_SETUPMAPPING_FLAG_READ |
		       FUSE_SETUPMAPPING_FLAG_WRITE, 64 * PG), 0);
	CHECK(readable(w, FILE_SIZE));
	for (uint64_t i = 0; i < FILE_SIZE; i++)
		if (w[i] != pattern(i)) {
			CHECK_EQ(w[i], pattern(i));
			break;
		}
	/* The byte written in the window is the file's. */
	w[PG + 5] = 0xab;
	CHECK_EQ(msync(w, FILE_SIZE, MS_SYNC), 0);
	char path[160];
	uint8_t b = 0;
	snprintf(path, sizeof(path), "%s/data", rootdir);
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, &b, 1, PG + 5) == 1);
	close(fd);
	CHECK_EQ(b, 0xab);
	/* Neighbours stay reserved. */
	CHECK(!readable(w - PG, 1));
	CHECK(!readable(w + FILE_SIZE, 1));
	CHECK_EQ(counters().rx_mappings_set - before.rx_mappings_set, 1);

	/* A part of the file further on, at another place in the window. */
	CHECK_EQ(setup(node, NO_FH, 2 * PG, PG, FUSE_SETUPMAPPING_FLAG_READ, 8 * PG), 0);
	CHECK_EQ(win->host[8 * PG + 1], pattern(2 * PG + 1));

	struct fuse_removemapping_one one[2] = { { 64 * PG, FILE_SIZE }, { 8 * PG, PG } };
	CHECK_EQ(removem(2, one, 2), 0);
	CHECK(!readable(w, 1));
	CHECK(!readable(win->host + 8 * PG, 1));
	CHECK_EQ(counters().rx_mappings_removed - before.rx_mappings_removed, 2);
}

/* A handle opened read-only maps read-only; write is refused. */
static void test_handle_modes(void)
{
	uint64_t node = lookup("data");
	uint64_t ro = open_file(node, O_RDONLY), rw = open_file(node, O_RDWR);
	uint64_t wo = open_file(node, O_WRONLY);
	struct fuse_server_counters before = counters();

	CHECK_EQ(setup(node, ro, 0, PG, FUSE_SETUPMAPPING_FLAG_WRITE, 0), -EACCES);
	CHECK_EQ(setup(node, wo, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 0), -EACCES);
	CHECK_EQ(setup(node, ro, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 0), 0);
	CHECK_EQ(win->host[3], pattern(3));
	CHECK_EQ(setup(node, rw, PG, PG, FUSE_SETUPMAPPING_FLAG_WRITE, PG), 0);
	win->host[PG] = pattern(PG);   /* writable: no fault */
	CHECK_EQ(setup(node, 9999, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 0), -EBADF);
	struct fuse_server_counters after = counters();
	CHECK_EQ(after.rx_mappings_refused - before.rx_mappings_refused, 3);
	CHECK_EQ(after.rx_mappings_set - before.rx_mappings_set, 2);
	struct fuse_removemapping_one one = { 0, 2 * PG };
	CHECK_EQ(removem(1, &one, 1), 0);
}

/* Every range, offset and flag the server must refuse. */
static void test_setup_refusals(void)
{
	const uint64_t size = win->fuse.size, rd = FUSE_SETUPMAPPING_FLAG_READ;
	uint64_t node = lookup("data");
	struct {
		uint64_t node, fh, foff, len, flags, moff;
		int err;
	} cases[] = {
		{ node, NO_FH, 0, PG, rd, 1, -EINVAL },                  /* moffset unaligned */
		{ node, NO_FH, 0, 0, rd, 0, -EINVAL },                   /* empty */
		{ node, NO_FH, 0, PG + 1, rd, 0, -EINVAL },              /* len unaligned */
		{ node, NO_FH, 1, PG, rd, 0, -EINVAL },                  /* foffset unaligned */
		{ node, NO_FH, 0, PG, rd, size, -EINVAL },               /* past the window */
		{ node, NO_FH, 0, 2 * PG, rd, size - PG, -EINVAL },      /* over its end */
		{ node, NO_FH, 0, size + PG, rd, 0, -EINVAL },           /* larger than it */
		{ node, NO_FH, 0, 2 * PG, rd, UINT64_MAX - PG + 1, -EINVAL }, /* wraps */
		{ node, NO_FH, UINT64_MAX - PG + 1, PG, rd, 0, -EINVAL }, /* foffset wraps */
		{ node, NO_FH, FILE_SIZE, PG, rd, 0, -EINVAL },          /* outside the file */
		{ node, NO_FH, 1ull << 40, PG, rd, 0, -EINVAL },         /* far outside */
		{ node, NO_FH, 0, PG, 4, 0, -EINVAL },                   /* unknown flag */
		{ FUSE_ROOT_ID, NO_FH, 0, PG, rd, 0, -EISDIR },          /* a directory */
		{ 123456, NO_FH, 0, PG, rd, 0, -ESTALE },                /* no such node */
	};
	struct fuse_server_counters before = counters();

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc = setup(cases[i].node, cases[i].fh, cases[i].foff, cases[i].len,
			       cases[i].flags, cases[i].moff);
		if (rc != cases[i].err)
			fprintf(stderr, "  case %u: %d\n", i, rc);
		if (cases[i].err == -ESTALE)
			CHECK(rc < 0);
		else
			CHECK_EQ(rc, cases[i].err);
	}
	struct fuse_server_counters after = counters();
	CHECK_EQ(after.rx_mappings_refused - before.rx_mappings_refused, ARRAY_SIZE(cases));
	CHECK_EQ(after.rx_mappings_set, before.rx_mappings_set);
	CHECK(!readable(win->host, 1));
	/* A request shorter than its argument. */
	frq_build(&q, FUSE_SETUPMAPPING, node, "short", 5, NULL, 0);
	CHECK_EQ(call(), -EINVAL);
}

/* REMOVEMAPPING: the count bounded by the request, every range checked
 * before any is removed. */
static void test_remove_refusals(void)
{
	uint64_t node = lookup("data");
	struct fuse_removemapping_one good = { 16 * PG, PG }, bad = { win->fuse.size, PG };
	struct fuse_removemapping_one both[2] = { good, bad };
	struct fuse_server_counters before = counters();

	CHECK_EQ(setup(node, NO_FH, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 16 * PG), 0);
	CHECK_EQ(removem(0, NULL, 0), -EINVAL);
	CHECK_EQ(removem(2, &good, 1), -EINVAL);           /* claims more than it holds */
	CHECK_EQ(removem(1000000, &good, 1), -EINVAL);
	CHECK_EQ(removem(2, both, 2), -EINVAL);            /* one bad: none removed */
	struct fuse_removemapping_one odd = { 16 * PG + 1, PG }, wrap = { UINT64_MAX - PG + 1, 2 * PG };
	CHECK_EQ(removem(1, &odd, 1), -EINVAL);
	CHECK_EQ(removem(1, &wrap, 1), -EINVAL);
	CHECK(readable(win->host + 16 * PG, PG));
	CHECK_EQ(counters().rx_mappings_refused - before.rx_mappings_refused, 6);
	CHECK_EQ(removem(1, &good, 1), 0);
	CHECK(!readable(win->host + 16 * PG, 1));
	/* Removing what is not mapped is harmless. */
	CHECK_EQ(removem(1, &good, 1), 0);
}

/* A new session, or the end of one, empties the window. */
static void test_session_clears(void)
{
	uint64_t node = lookup("data");

	CHECK_EQ(setup(node, NO_FH, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 0), 0);
	init();
	CHECK(!readable(win->host, 1));
	node = lookup("data");
	CHECK_EQ(setup(node, NO_FH, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 0), 0);
	frq_build(&q, FUSE_DESTROY, 0, NULL, 0, NULL, 0);
	CHECK_EQ(call(), 0);
	CHECK(!readable(win->host, 1));
	init();
	node = lookup("data");
	CHECK_EQ(setup(node, NO_FH, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 0), 0);
	CHECK_EQ(dax_window_clear(win), 0);
	CHECK(!readable(win->host, 1));
}

/* Without a window (fuse-mount): ENOSYS, and INIT offers no alignment. */
static void test_no_window(void)
{
	fuse_server_set_dax(srv, NULL);
	struct fuse_init_out out = init();
	CHECK(!(out.flags & FUSE_MAP_ALIGNMENT));
	CHECK_EQ(setup(lookup("data"), NO_FH, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 0), -ENOSYS);
	struct fuse_removemapping_one one = { 0, PG };
	CHECK_EQ(removem(1, &one, 1), -ENOSYS);
	fuse_server_set_dax(srv, &win->fuse);
}

static void test_window_sizes(void)
{
	int err = 0;

	CHECK(dax_window_size_valid(2ull << 20));
	CHECK(dax_window_size_valid(1ull << 30));
	CHECK(!dax_window_size_valid(1ull << 20));
	CHECK(!dax_window_size_valid(3ull << 20));
	CHECK(!dax_window_size_valid(128ull << 30));
	CHECK(!dax_window_new(3ull << 20, &err));
	CHECK_EQ(err, -EINVAL);
}

/* The table of mapped ranges: overlaps replaced, a range cut in two by a
 * removal in its middle, file offsets moved with the cut. */
static void test_ranges_table(void)
{
	struct dax_ranges t = { 0 };
	struct dax_range a = { .moffset = 0, .len = 8 * PG, .nodeid = 5, .foffset = 0 };
	struct dax_range b = { .moffset = 2 * PG, .len = PG, .nodeid = 6, .foffset = 4 * PG,
			       .write = true };

	CHECK_EQ(dax_ranges_reserve(&t, 2), 0);
	dax_ranges_add(&t, &a);
	CHECK_EQ(dax_ranges_reserve(&t, 2), 0);
	dax_ranges_add(&t, &b);
	CHECK_EQ(t.n, 3);
	CHECK_EQ(t.v[0].len, 2 * PG);
	CHECK_EQ(t.v[1].nodeid, 6);
	CHECK_EQ(t.v[2].moffset, 3 * PG);
	CHECK_EQ(t.v[2].foffset, 3 * PG);
	CHECK_EQ(t.v[2].len, 5 * PG);
	CHECK_EQ(dax_ranges_reserve(&t, 1), 0);
	dax_ranges_remove(&t, PG, 3 * PG);          /* a's head's tail, b, a's tail's head */
	CHECK_EQ(t.n, 2);
	CHECK_EQ(t.v[0].len, PG);
	CHECK_EQ(t.v[1].moffset, 4 * PG);
	CHECK_EQ(t.v[1].foffset, 4 * PG);
	dax_ranges_remove(&t, 0, 64 * PG);
	CHECK_EQ(t.n, 0);
	CHECK_EQ(dax_ranges_reserve(&t, DAX_RANGES_MAX + 1), -ENOMEM);
	dax_ranges_free(&t);
}

/* A server, backend and window built fresh over the same share, as a
 * restore builds them. */
struct pair {
	struct fs_backend *be;
	struct fuse_server *s;
	struct dax_window *w;
};

static struct pair pair_new(bool with_window)
{
	struct passthrough_opts o = { .root = rootdir };
	struct pair p = { 0 };
	int err = 0;

	p.be = passthrough_new(&o, &err);
	p.s = p.be ? fuse_server_new(p.be, NULL) : NULL;
	p.w = with_window ? dax_window_new(DAX_WINDOW_MIN_SIZE, &err) : NULL;
	CHECK(p.s && (p.w || !with_window));
	if (p.w)
		fuse_server_set_dax(p.s, &p.w->fuse);
	return p;
}

static void pair_free(struct pair *p)
{
	fuse_server_free(p->s);
	fs_backend_destroy(p->be);
	dax_window_free(p->w);
}

/* Load @len bytes of state into a fresh pair; the verdict, why in @eb. */
static bool load_into(struct pair *p, const uint8_t *buf, size_t len, struct errbuf *eb)
{
	struct state_reader r;

	state_reader_init(&r, buf, len, eb);
	return fuse_server_state_load(p->s, &r);
}

/* The state of the test's server with two mappings of "snap": read-only
 * (file page 1 at window page 0) and read-write (file pages 0-1 at window
 * pages 4-5). */
static void save_two_mappings(struct state_writer *w, uint64_t *node)
{
	struct errbuf eb = { 0 };

	make_file("snap", FILE_SIZE);
	init();
	*node = lookup("snap");
	CHECK_EQ(setup(*node, NO_FH, PG, PG, FUSE_SETUPMAPPING_FLAG_READ, 0), 0);
	CHECK_EQ(setup(*node, NO_FH, 0, 2 * PG, FUSE_SETUPMAPPING_FLAG_READ |
		       FUSE_SETUPMAPPING_FLAG_WRITE, 4 * PG), 0);
	state_writer_init(w);
	CHECK_EQ(fuse_server_state_save(srv, w, &eb), 0);
	CHECK(!w->failed);
}

/* Save -> load: the same ranges mapped to the same file bytes, the
 * writable one still writable, and the restored server saves the same. */
static void test_snapshot_roundtrip(void)
{
	struct state_writer w, again;
	struct errbuf eb = { 0 };
	uint64_t node;

	save_two_mappings(&w, &node);
	struct pair p = pair_new(true);
	CHECK(load_into(&p, w.buf, w.len, &eb));
	CHECK(readable(p.w->host, PG));
	CHECK(!memcmp(p.w->host, win->host, PG));
	CHECK(!memcmp(p.w->host + 4 * PG, win->host + 4 * PG, 2 * PG));
	CHECK_EQ(p.w->host[1], pattern(PG + 1));
	CHECK(!readable(p.w->host + PG, 1));
	p.w->host[4 * PG + 9] = 0x5a;               /* the new window writes the file */
	CHECK_EQ(win->host[4 * PG + 9], 0x5a);
	state_writer_init(&again);
	CHECK_EQ(fuse_server_state_save(p.s, &again, &eb), 0);
	CHECK_EQ(again.len, w.len);
	CHECK(!memcmp(again.buf, w.buf, w.len));
	state_writer_free(&again);
	pair_free(&p);
	state_writer_free(&w);
	fuse_server_dax_clear(srv);
}

/* Where "FDAX" starts in @buf (its tag). */
static size_t fdax_at(const uint8_t *buf, size_t len)
{
	for (size_t i = len - 8; i > 0; i--)
		if (!memcmp(buf + i, "FDAX", 4))
			return i;
	CHECK(0);
	return 0;
}

/* A refused load leaves the pair as built: no node, no mapping. */
static void expect_refused(const uint8_t *buf, size_t len, bool with_window, const char *why)
{
	struct errbuf eb = { 0 };
	struct pair p = pair_new(with_window);

	CHECK(!load_into(&p, buf, len, &eb));
	if (!strstr(eb.msg, why)) {
		printf("  message: %s (wanted %s)\n", eb.msg, why);
		CHECK(0);
	}
	if (p.w)
		CHECK(!readable(p.w->host, 1) && !readable(p.w->host + 4 * PG, 1));
	struct passthrough_stats st;
	passthrough_get_stats(p.be, &st);
	CHECK_EQ(st.nodes, 1);
	pair_free(&p);
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A corrupt or inconsistent FDAX, a missing or unexpected one, and a file
 * truncated below a mapping since the snapshot: each refused by name. */
static void test_snapshot_refusals(void)
{
	struct state_writer w;
	uint64_t node;

	save_two_mappings(&w, &node);
	size_t at = fdax_at(w.buf, w.len) + 8, n = w.len;
	uint8_t *b = malloc(n);
	struct { size_t off; uint64_t v; unsigned bytes; const char *why; } bad[] = {
		{ 0, 2, 4, "version 2" },
		{ 4, 4ull << 20, 8, "a window of" },
		{ 12, 3, 4, "truncated" },
		{ 16 + 0, 1, 8, "not page-aligned" },
		{ 16 + 8, 1ull << 40, 8, "not page-aligned" },
		{ 49 + 0, 0, 8, "overlaps or precedes" },
		{ 16 + 24, 5, 8, "file offset" },
		{ 16 + 16, 0, 8, "node 0" },
		{ 16 + 32, 2, 1, "flags 0x2" },
		{ 16 + 16, 999, 8, "node 999" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(b, w.buf, n);
		put_le(b + at + bad[i].off, bad[i].v, bad[i].bytes);
		expect_refused(b, n, true, bad[i].why);
	}
	/* Without a window the session's FUSE_MAP_ALIGNMENT is refused first. */
	expect_refused(w.buf, n, false, "agreed with a DAX window");
	expect_refused(w.buf, at - 8, true, "section FDAX missing");
	char path[160];
	snprintf(path, sizeof(path), "%s/snap", rootdir);
	CHECK_EQ(truncate(path, PG), 0);               /* the first mapping starts at PG */
	expect_refused(w.buf, n, true, "truncated since the snapshot");
	free(b);
	state_writer_free(&w);
	fuse_server_dax_clear(srv);
}

/* FORGET of @node's @nlookup lookups (no reply). */
static void forget(uint64_t node, uint64_t nlookup)
{
	struct fuse_forget_in in = { .nlookup = nlookup };
	struct iovec iin, out = { outbuf, sizeof(outbuf) };

	frq_build(&q, FUSE_FORGET, node, &in, sizeof(in), NULL, 0);
	iin = (struct iovec){ q.buf, q.len };
	CHECK_EQ(fuse_server_handle(srv, &iin, 1, &out, 1), 0);
}

/* A guest that forgets a node it still maps (Linux removes the mapping
 * first): the snapshot is refused when taken, naming the range, and the
 * mapping stays; once the guest removes it, the snapshot is taken. */
static void test_snapshot_forgotten_node(void)
{
	struct state_writer w;
	struct errbuf eb = { 0 };
	struct fuse_removemapping_one one = { .moffset = 2 * PG, .len = PG };

	make_file("gone", FILE_SIZE);
	init();
	uint64_t node = lookup("gone");
	CHECK_EQ(setup(node, NO_FH, 0, PG, FUSE_SETUPMAPPING_FLAG_READ, 2 * PG), 0);
	forget(node, 1);
	state_writer_init(&w);
	CHECK_EQ(fuse_server_state_save(srv, &w, &eb), -ESTALE);
	if (!strstr(eb.msg, "at window offset 0x2000") || !strstr(eb.msg, "forgot it")) {
		printf("  message: %s\n", eb.msg);
		CHECK(0);
	}
	CHECK_EQ(win->host[0 + 2 * PG], pattern(0));   /* still mapped */
	state_writer_free(&w);
	CHECK_EQ(removem(1, &one, 1), 0);
	state_writer_init(&w);
	memset(&eb, 0, sizeof(eb));
	CHECK_EQ(fuse_server_state_save(srv, &w, &eb), 0);
	state_writer_free(&w);
	fuse_server_dax_clear(srv);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

int main(void)
{
	struct passthrough_opts o = { 0 };
	int err = 0;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvmini-dax-unit.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(rootdir, sizeof(rootdir), "%s/share", tmpdir);
	mkdir(rootdir, 0755);
	make_file("data", FILE_SIZE);
	o.root = rootdir;
	be = passthrough_new(&o, &err);
	srv = be ? fuse_server_new(be, NULL) : NULL;
	win = dax_window_new(DAX_WINDOW_MIN_SIZE, &err);
	if (!srv || !win) {
		printf("FAIL: setup\n");
		return 1;
	}
	fuse_server_set_dax(srv, &win->fuse);

	RUN_TEST(test_init_offers_alignment);
	RUN_TEST(test_map_read_write);
	RUN_TEST(test_handle_modes);
	RUN_TEST(test_setup_refusals);
	RUN_TEST(test_remove_refusals);
	RUN_TEST(test_session_clears);
	RUN_TEST(test_no_window);
	RUN_TEST(test_window_sizes);
	RUN_TEST(test_ranges_table);
	RUN_TEST(test_snapshot_roundtrip);
	RUN_TEST(test_snapshot_refusals);
	RUN_TEST(test_snapshot_forgotten_node);

	fuse_server_free(srv);
	fs_backend_destroy(be);
	dax_window_free(win);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return CHECK_DONE();
}
