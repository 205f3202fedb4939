/*
 * The backends' shared policy (src/fs/fs_policy.c) and each backend's use
 * of it: FUSE_ACCESS for the owner, the group, others and root, and the
 * extended-attribute namespaces each backend lets through. Every case here
 * fails if the check it names is removed or loosened.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "check.h"
#include "fs/fs_policy.h"
#include "fs/memfs.h"
#include "fs/passthrough.h"

#define OWNER 1000u
#define GROUP 2000u

static const struct fs_ctx owner = { .uid = OWNER, .gid = 1 };
static const struct fs_ctx grp = { .uid = 1, .gid = GROUP };
static const struct fs_ctx other = { .uid = 1, .gid = 1 };
static const struct fs_ctx root = { .uid = 0, .gid = 0 };

static struct stat node(mode_t mode)
{
	struct stat st = { .st_mode = mode, .st_uid = OWNER, .st_gid = GROUP };

	return st;
}

/* Which of R, W, X @ctx gets on @st, as an rwx bit set. */
static unsigned granted(const struct fs_ctx *ctx, const struct stat *st)
{
	unsigned bits = 0;

	bits |= fs_policy_access(ctx, st, R_OK) ? 0 : 4;
	bits |= fs_policy_access(ctx, st, W_OK) ? 0 : 2;
	bits |= fs_policy_access(ctx, st, X_OK) ? 0 : 1;
	return bits;
}

static void test_access_classes(void)
{
	struct stat st = node(S_IFREG | 0751);

	/* Each class gets its own bits, and only the first class that matches
	 * counts: an owner is not also judged as group or other. */
	CHECK_EQ(granted(&owner, &st), 7);
	CHECK_EQ(granted(&grp, &st), 5);
	CHECK_EQ(granted(&other, &st), 1);
	st = node(S_IFREG | 0077);
	CHECK_EQ(granted(&owner, &st), 0);
	CHECK_EQ(granted(&(struct fs_ctx){ .uid = OWNER, .gid = GROUP }, &st), 0);
	st = node(S_IFREG | 0707);
	CHECK_EQ(granted(&grp, &st), 0);
	CHECK_EQ(granted(&other, &st), 7);
	/* Several bits at once: all must be granted. */
	st = node(S_IFREG | 0640);
	CHECK_EQ(fs_policy_access(&owner, &st, R_OK | W_OK), 0);
	CHECK_EQ(fs_policy_access(&grp, &st, R_OK | W_OK), -EACCES);
	CHECK_EQ(fs_policy_access(&grp, &st, R_OK), 0);
	/* F_OK: existence only. */
	st = node(S_IFREG);
	CHECK_EQ(fs_policy_access(&other, &st, F_OK), 0);
	/* Bits other than R, W and X are no request. */
	CHECK_EQ(fs_policy_access(&other, &st, 8), 0);
}

static void test_access_root(void)
{
	struct stat st = node(S_IFREG | 0000);

	CHECK_EQ(granted(&root, &st), 6);
	st = node(S_IFREG | 0001);
	CHECK_EQ(granted(&root, &st), 7);
	st = node(S_IFREG | 0010);
	CHECK_EQ(granted(&root, &st), 7);
	/* Any directory can be searched by root. */
	st = node(S_IFDIR | 0000);
	CHECK_EQ(granted(&root, &st), 7);
}

static void test_xattr_namespaces(void)
{
	CHECK_EQ(fs_xattr_ns("user.x"), FS_XATTR_USER);
	CHECK_EQ(fs_xattr_ns("trusted.x"), FS_XATTR_TRUSTED);
	CHECK_EQ(fs_xattr_ns("security.capability"), FS_XATTR_SECURITY);
	CHECK_EQ(fs_xattr_ns("system.posix_acl_access"), FS_XATTR_SYSTEM);
	CHECK_EQ(fs_xattr_ns("user"), FS_XATTR_OTHER);
	CHECK_EQ(fs_xattr_ns("User.x"), FS_XATTR_OTHER);
	CHECK_EQ(fs_xattr_ns(""), FS_XATTR_OTHER);
	CHECK(fs_xattr_allowed("user.a", FS_XATTR_USER));
	CHECK(!fs_xattr_allowed("security.capability", FS_XATTR_USER));
	CHECK(fs_xattr_allowed("odd", FS_XATTR_ALL));

	char list[] = "security.selinux\0user.a\0trusted.b\0user.c\0";
	size_t len = fs_xattr_filter(list, sizeof(list) - 1, FS_XATTR_USER);
	CHECK_EQ(len, sizeof("user.a") + sizeof("user.c"));
	CHECK(!memcmp(list, "user.a\0user.c\0", len));
	/* A list cut inside its last name keeps only the whole names. */
	char cut[] = "user.a\0user.b";
	CHECK_EQ(fs_xattr_filter(cut, sizeof(cut) - 1, FS_XATTR_ALL), sizeof("user.a"));
}

/* ---- each backend's FUSE_ACCESS and xattr namespaces ---- */

/* A node @mode of OWNER:GROUP made as root through @be; returns its id. */
static uint64_t make_owned(struct fs_backend *be, const char *name, mode_t mode)
{
	const struct fs_backend_ops *op = be->ops;
	struct fs_entry e;
	struct stat st;
	struct fs_setattr sa = { .valid = FATTR_MODE | FATTR_UID | FATTR_GID, .mode = mode,
				 .uid = OWNER, .gid = GROUP };

	CHECK_EQ(op->mknod(be, &root, FUSE_ROOT_ID, name, S_IFREG | 0600, 0, &e), 0);
	CHECK_EQ(op->setattr(be, &root, e.nodeid, &sa, &st), 0);
	return e.nodeid;
}

static void check_backend_access(struct fs_backend *be)
{
	const struct fs_backend_ops *op = be->ops;
	uint64_t n = make_owned(be, "f", 0640);

	CHECK_EQ(op->access(be, &owner, n, R_OK | W_OK), 0);
	CHECK_EQ(op->access(be, &owner, n, X_OK), -EACCES);
	CHECK_EQ(op->access(be, &grp, n, R_OK), 0);
	CHECK_EQ(op->access(be, &grp, n, W_OK), -EACCES);
	CHECK_EQ(op->access(be, &other, n, R_OK), -EACCES);
	CHECK_EQ(op->access(be, &other, n, F_OK), 0);
	CHECK_EQ(op->access(be, &root, n, R_OK | W_OK), 0);
	CHECK_EQ(op->access(be, &root, n, X_OK), -EACCES);
	CHECK_EQ(op->access(be, &root, 12345, F_OK), -ESTALE);
}

static void test_memfs_policy(void)
{
	int err;
	struct fs_backend *be = memfs_new(NULL, &err);
	const struct fs_backend_ops *op = be->ops;

	check_backend_access(be);
	/* memfs keeps user., trusted. and security. names, nothing else. */
	CHECK_EQ(op->setxattr(be, &root, FUSE_ROOT_ID, "user.a", "1", 1, 0), 0);
	CHECK_EQ(op->setxattr(be, &root, FUSE_ROOT_ID, "trusted.a", "1", 1, 0), 0);
	CHECK_EQ(op->setxattr(be, &root, FUSE_ROOT_ID, "security.a", "1", 1, 0), 0);
	CHECK_EQ(op->setxattr(be, &root, FUSE_ROOT_ID, "system.a", "1", 1, 0), -EOPNOTSUPP);
	CHECK_EQ(op->setxattr(be, &root, FUSE_ROOT_ID, "other.a", "1", 1, 0), -EOPNOTSUPP);
	CHECK_EQ(op->getxattr(be, &root, FUSE_ROOT_ID, "system.a", NULL, 0), -EOPNOTSUPP);
	CHECK_EQ(op->removexattr(be, &root, FUSE_ROOT_ID, "system.a"), -EOPNOTSUPP);
	fs_backend_destroy(be);
}

static void test_passthrough_policy(void)
{
	char dir[] = "/tmp/kvmini-fs-policy-XXXXXX";
	int err;

	if (!mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	if (getuid() != 0) {
		/* setattr to OWNER:GROUP needs root: judge what we own instead. */
		printf("  (not root: passthrough access judged on the caller's own ids)\n");
	}
	struct passthrough_opts po = { .root = dir };
	struct fs_backend *be = passthrough_new(&po, &err);
	if (!be) {
		CHECK_EQ(err, 0);
		rmdir(dir);
		return;
	}
	if (getuid() == 0)
		check_backend_access(be);
	/* Only user. passes without xattr_all; get answers ENODATA. */
	const struct fs_backend_ops *op = be->ops;
	CHECK_EQ(op->setxattr(be, &root, FUSE_ROOT_ID, "trusted.a", "1", 1, 0), -EOPNOTSUPP);
	CHECK_EQ(op->getxattr(be, &root, FUSE_ROOT_ID, "security.a", NULL, 0), -ENODATA);
	CHECK_EQ(op->removexattr(be, &root, FUSE_ROOT_ID, "system.a"), -EOPNOTSUPP);
	fs_backend_destroy(be);
	char path[96];
	snprintf(path, sizeof(path), "%s/f", dir);
	unlink(path);
	rmdir(dir);
}

/* mknod of @mode in a fresh share: the backend's answer. With @dev_nodes
 * and as root, the host node must then carry the device asked for. */
static int mknod_in_share(bool dev_nodes, mode_t mode, dev_t rdev, const struct fs_ctx *ctx)
{
	char dir[] = "/tmp/kvmini-fs-devnodes-XXXXXX", path[96];
	struct passthrough_opts po = { .root = dir, .dev_nodes = dev_nodes };
	struct fs_entry e;
	struct stat st;
	int err, rc;

	if (!mkdtemp(dir))
		return -errno;
	struct fs_backend *be = passthrough_new(&po, &err);
	if (!be) {
		rmdir(dir);
		return err;
	}
	rc = be->ops->mknod(be, ctx, FUSE_ROOT_ID, "n", mode, rdev, &e);
	snprintf(path, sizeof(path), "%s/n", dir);
	if (!rc) {
		CHECK_EQ(lstat(path, &st), 0);
		CHECK_EQ(st.st_mode, mode);
		CHECK_EQ(st.st_rdev, rdev);
		CHECK_EQ(st.st_uid, ctx->uid);
		be->ops->forget(be, e.nodeid, 1);
	}
	fs_backend_destroy(be);
	unlink(path);
	rmdir(dir);
	return rc;
}

/* Devices are refused unless the share asks for them; whiteouts, fifos
 * and sockets never are. With dev-nodes the host kernel still decides:
 * the caller's ids make the node, so only a caller with CAP_MKNOD (root
 * here) gets one. */
static void test_passthrough_dev_nodes(void)
{
	dev_t blk = makedev(7, 200), chr = makedev(1, 3);

	CHECK_EQ(mknod_in_share(false, S_IFBLK | 0600, blk, &root), -EPERM);
	CHECK_EQ(mknod_in_share(false, S_IFCHR | 0644, chr, &root), -EPERM);
	CHECK_EQ(mknod_in_share(false, S_IFIFO | 0644, 0, &root), 0);
	if (getuid() != 0) {
		printf("  (not root: devices with dev-nodes not tried)\n");
		return;
	}
	CHECK_EQ(mknod_in_share(false, S_IFCHR | 0600, 0, &root), 0);
	CHECK_EQ(mknod_in_share(true, S_IFBLK | 0600, blk, &root), 0);
	CHECK_EQ(mknod_in_share(true, S_IFCHR | 0644, chr, &root), 0);
	CHECK_EQ(mknod_in_share(true, S_IFCHR | 0644, chr, &other), -EPERM);
}

int main(void)
{
	RUN_TEST(test_access_classes);
	RUN_TEST(test_access_root);
	RUN_TEST(test_xattr_namespaces);
	RUN_TEST(test_memfs_policy);
	RUN_TEST(test_passthrough_policy);
	RUN_TEST(test_passthrough_dev_nodes);
	return CHECK_DONE();
}
