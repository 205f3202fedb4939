/*
 * libFuzzer target: arbitrary bytes loaded as the FUSE server's snapshot
 * sections ("FUSE", the passthrough backend's "FSPT", then with a DAX
 * window "FDAX", see src/fuse/fuse_state.c, src/fs/passthrough_state.c
 * and src/fuse/fuse_dax_state.c) into a fresh server and backend over a
 * small temporary directory, once without a DAX window and once with one
 * (2 MiB, as dax=2M makes).
 *
 * The directory is made once (files "a" and "d/b", directory "d") and only
 * read: a restore opens nodes O_PATH and files without O_TRUNC or O_CREAT,
 * and the requests sent after it read. Each input gets a fresh server and
 * backend, so every crash reproduces from its input alone.
 *
 * Checked besides ASan/UBSan:
 *  - a refused load applied nothing: the server still answers -EIO (no
 *    session), the backend holds the root alone, no handle, and no page
 *    of the window is mapped (mincore: the tree's files are in the page
 *    cache, the bare reservation has no page);
 *  - an accepted load answers: GETATTR on the root works (or is -EIO for a
 *    session saved before INIT), and GETATTR on
 *    every id the state could name replies with a bare header or an
 *    attribute reply, nothing else;
 *  - loading the same bytes twice gives the same verdict (nothing of one
 *    load leaks into the next).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "core/log.h"
#include "core/state_io.h"
#include "fs/dax_window.h"
#include "fs/passthrough.h"
#include "fuse/fuse_server.h"
#include "fuse_req.h"

static char rootdir[96];
static uint8_t qbuf[4096] __attribute__((aligned(8)));
static uint8_t outbuf[65536] __attribute__((aligned(8)));

static void make_tree(void)
{
	char tmp[64] = "/tmp/kvmini-fuzz-fs-state.XXXXXX", p[160];

	if (!mkdtemp(tmp))
		abort();
	snprintf(rootdir, sizeof(rootdir), "%s", tmp);
	snprintf(p, sizeof(p), "%s/d", rootdir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/a", rootdir);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "aaaa", 4) != 4)
		abort();
	close(fd);
	snprintf(p, sizeof(p), "%s/d/b", rootdir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		abort();
	close(fd);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* libFuzzer ends with exit(): the tree goes with it, not left in /tmp. */
static void remove_tree(void)
{
	nftw(rootdir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_threshold = LOG_ERROR;      /* stale nodes log a warning each */
	make_tree();
	atexit(remove_tree);
	return 0;
}

/* GETATTR @nodeid: the reply's error. */
static int getattr(struct fuse_server *s, uint64_t nodeid)
{
	struct frq q = { .buf = qbuf, .cap = sizeof(qbuf) };
	struct fuse_getattr_in in = { 0 };
	struct fuse_out_header oh;

	frq_build(&q, FUSE_GETATTR, nodeid, &in, sizeof(in), NULL, 0);
	struct iovec iv = { q.buf, q.len }, ov = { outbuf, sizeof(outbuf) };
	size_t n = fuse_server_handle(s, &iv, 1, &ov, 1);
	if (n < sizeof(oh))
		abort();
	memcpy(&oh, outbuf, sizeof(oh));
	if (oh.len != n || (oh.error && n != sizeof(oh)) ||
	    (!oh.error && n != sizeof(oh) + sizeof(struct fuse_attr_out)))
		abort();
	return oh.error;
}

/* Does any page of @w hold a mapping? */
static bool window_mapped(const struct dax_window *w)
{
	static unsigned char vec[DAX_WINDOW_MIN_SIZE / 4096];

	if (mincore(w->host, w->fuse.size, vec) < 0)
		abort();
	for (size_t i = 0; i < sizeof(vec); i++)
		if (vec[i] & 1)
			return true;
	return false;
}

/* One load into a fresh pair (with a DAX window when @dax); its verdict,
 * with the properties checked. */
static bool load_once(const uint8_t *data, size_t size, bool dax)
{
	struct passthrough_opts po = { .root = rootdir };
	struct fuse_server_opts so = { .cache = FUSE_CACHE_AUTO };
	struct passthrough_stats st;
	struct state_reader r;
	struct errbuf eb = { 0 };
	int err;
	struct fs_backend *be = passthrough_new(&po, &err);
	struct fuse_server *s = be ? fuse_server_new(be, &so) : NULL;
	struct dax_window *win = dax ? dax_window_new(DAX_WINDOW_MIN_SIZE, &err) : NULL;

	if (!s || (dax && !win))
		abort();
	if (win)
		fuse_server_set_dax(s, &win->fuse);
	state_reader_init(&r, data, size, &eb);
	bool ok = fuse_server_state_load(s, &r);
	passthrough_get_stats(be, &st);
	if (!ok) {
		if (!eb.msg[0] || getattr(s, FUSE_ROOT_ID) != -EIO || st.nodes != 1 || st.files)
			abort();
		if (win && window_mapped(win))
			abort();
	} else {
		/* A session saved before INIT is restored as one. */
		int want = fuse_server_proto_minor(s) ? 0 : -EIO;
		if (getattr(s, FUSE_ROOT_ID) != want)
			abort();
		for (uint64_t id = 2; id < 8; id++)
			getattr(s, id);
	}
	fuse_server_free(s);
	fs_backend_destroy(be);
	dax_window_free(win);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The reader must not rely on anything past @size: an exact copy. */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	for (int dax = 0; dax < 2; dax++) {
		bool first = load_once(copy, size, dax);
		if (load_once(copy, size, dax) != first)
			abort();
	}
	free(copy);
	return 0;
}
