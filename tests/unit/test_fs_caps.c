/*
 * The passthrough backend's caps on what a FUSE client can make it hold
 * (issue 14, item 3): live nodes (--max-inodes, lookups past it answer
 * ENFILE) and open file and directory handles (--max-handles, opens past
 * it answer EMFILE). Each refusal is counted; forgetting or releasing
 * makes room again, and everything else keeps working at the cap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "check.h"
#include "fs/passthrough.h"

#define FILES 20

static char dir[] = "/tmp/kvmini-fs-caps-XXXXXX";

static struct fs_ctx caller(void)
{
	return (struct fs_ctx){ .uid = getuid(), .gid = getgid() };
}

/* make_share - a directory with FILES empty files f0..f19; 0 or -1. */
static int make_share(void)
{
	char path[96];

	if (!mkdtemp(dir))
		return -1;
	for (int i = 0; i < FILES; i++) {
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		close(fd);
	}
	return 0;
}

static void remove_share(void)
{
	char path[96];

	for (int i = 0; i < FILES; i++) {
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		unlink(path);
	}
	rmdir(dir);
}

static struct fs_backend *open_share(unsigned max_inodes, unsigned max_handles)
{
	struct passthrough_opts po = { .root = dir, .max_inodes = max_inodes,
				       .max_handles = max_handles };
	int err = 0;
	struct fs_backend *be = passthrough_new(&po, &err);

	CHECK_EQ(err, 0);
	return be;
}

static int lookup(struct fs_backend *be, int i, struct fs_entry *e)
{
	struct fs_ctx ctx = caller();
	char name[16];

	snprintf(name, sizeof(name), "f%d", i);
	return be->ops->lookup(be, &ctx, FUSE_ROOT_ID, name, e);
}

/* 16 nodes, the root one of them: the 16th file finds the cap. */
static void test_max_inodes(void)
{
	struct fs_backend *be = open_share(16, 0);
	struct passthrough_stats st;
	struct fs_entry e[FILES];
	struct stat sb;
	struct fs_ctx ctx = caller();

	if (!be)
		return;
	for (int i = 0; i < 15; i++)
		CHECK_EQ(lookup(be, i, &e[i]), 0);
	CHECK_EQ(lookup(be, 15, &e[15]), -ENFILE);
	CHECK_EQ(lookup(be, 16, &e[16]), -ENFILE);
	CHECK_EQ(lookup(be, 3, &e[3]), 0);   /* a known node: no new slot */
	CHECK_EQ(be->ops->getattr(be, &ctx, e[0].nodeid, &sb), 0);
	passthrough_get_stats(be, &st);
	CHECK_EQ(st.nodes, 16);
	CHECK_EQ(st.nodes_refused, 2);
	be->ops->forget(be, e[0].nodeid, 1);
	CHECK_EQ(lookup(be, 15, &e[15]), 0);
	passthrough_get_stats(be, &st);
	CHECK_EQ(st.nodes_refused, 2);
	fs_backend_destroy(be);
}

/* 16 handles: files and directories share the cap. */
static void test_max_handles(void)
{
	struct fs_backend *be = open_share(0, 16);
	struct passthrough_stats st;
	struct fs_entry e;
	struct fs_ctx ctx = caller();
	uint64_t fh[FILES], dh;

	if (!be)
		return;
	CHECK_EQ(lookup(be, 0, &e), 0);
	for (int i = 0; i < 15; i++)
		CHECK_EQ(be->ops->open(be, &ctx, e.nodeid, O_RDONLY, &fh[i]), 0);
	CHECK_EQ(be->ops->opendir(be, &ctx, FUSE_ROOT_ID, O_RDONLY, &dh), 0);
	CHECK_EQ(be->ops->open(be, &ctx, e.nodeid, O_RDONLY, &fh[15]), -EMFILE);
	CHECK_EQ(be->ops->opendir(be, &ctx, FUSE_ROOT_ID, O_RDONLY, &fh[15]), -EMFILE);
	passthrough_get_stats(be, &st);
	CHECK_EQ(st.files, 16);
	CHECK_EQ(st.handles_refused, 2);
	CHECK_EQ(be->ops->read(be, fh[0], 0, NULL, 0), 0);   /* handles still work */
	CHECK_EQ(be->ops->release(be, fh[0]), 0);
	CHECK_EQ(be->ops->open(be, &ctx, e.nodeid, O_RDONLY, &fh[0]), 0);
	for (int i = 0; i < 15; i++)
		CHECK_EQ(be->ops->release(be, fh[i]), 0);
	CHECK_EQ(be->ops->releasedir(be, dh), 0);
	passthrough_get_stats(be, &st);
	CHECK_EQ(st.files, 0);
	fs_backend_destroy(be);
}

int main(void)
{
	if (make_share()) {
		CHECK(0);
		return CHECK_DONE();
	}
	RUN_TEST(test_max_inodes);
	RUN_TEST(test_max_handles);
	remove_share();
	return CHECK_DONE();
}
