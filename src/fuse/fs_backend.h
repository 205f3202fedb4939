/*
 * The filesystem backend interface: what the FUSE dispatcher (fuse_server.c)
 * calls to act on files. A backend knows nothing of the FUSE wire format or
 * of the transport (virtio-fs or /dev/fuse): it gets decoded, checked
 * arguments and returns 0 or -errno.
 *
 * Identifiers the backend hands out (node ids, file handles) come back from
 * the client, which may be hostile: the backend must look every one of them
 * up and answer -ESTALE (unknown node) or -EBADF (unknown or wrong-kind
 * handle) rather than trust it. Names are already checked by the dispatcher:
 * NUL-terminated, 1..NAME_MAX bytes, no '/', never "." or "..".
 *
 * Concurrency: every operation may be called from several threads at once,
 * for the same or different nodes and handles; a backend serialises what it
 * must itself. The one exception is reset(), which the dispatcher calls only
 * for FUSE_DESTROY and FUSE_INIT, when the client has no request in flight.
 */
#ifndef KVMINI_FUSE_FS_BACKEND_H
#define KVMINI_FUSE_FS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "core/errbuf.h"
#include "core/state_io.h"

struct fs_backend;

/* Who asks: the caller's ids as the client reports them (fuse_in_header). */
struct fs_ctx {
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
};

/* A node made known to the client: LOOKUP, MKNOD, MKDIR, SYMLINK, LINK,
 * CREATE, READDIRPLUS. Each successful return counts one lookup, which the
 * client gives back with forget(). */
struct fs_entry {
	uint64_t nodeid;
	uint64_t generation;
	struct stat st;
};

/* SETATTR, decoded: @valid holds the FATTR_* bits of <linux/fuse.h> that
 * the backend is asked to apply. */
struct fs_setattr {
	uint32_t valid;
	uint64_t fh;             /* an open handle of the node, when FATTR_FH */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t size;
	struct timespec atime;   /* tv_nsec may be UTIME_NOW */
	struct timespec mtime;
};

/* One directory entry for readdir. @off is the cookie that resumes the
 * listing just after this entry. */
struct fs_dirent {
	uint64_t ino;
	uint64_t off;
	uint32_t type;           /* DT_* */
	const char *name;
	size_t namelen;
};

/*
 * Where readdir puts entries: the dispatcher's reply buffer. A backend
 * checks room() before doing any work for an entry (for READDIRPLUS the
 * lookup that add() then consumes), and stops when it says no.
 */
struct fs_dir_sink {
	bool plus;               /* READDIRPLUS: pass an entry to add() */
	bool (*room)(struct fs_dir_sink *sink, size_t namelen);
	/* @entry is NULL for plain READDIR, and for READDIRPLUS entries that
	 * were not looked up ("." and "..", or a lookup that failed). */
	void (*add)(struct fs_dir_sink *sink, const struct fs_dirent *de,
		    const struct fs_entry *entry);
};

/*
 * Operations. All but destroy return 0 or -errno unless said otherwise.
 * Optional ones may be NULL: the dispatcher answers -ENOSYS, except flush
 * (NULL means there is nothing to flush: FLUSH succeeds and opens carry
 * FOPEN_NOFLUSH).
 */
struct fs_backend_ops {
	const char *name;

	/* Drop every node and handle the client holds (DESTROY, a new INIT). */
	void (*reset)(struct fs_backend *be);
	void (*destroy)(struct fs_backend *be);

	int (*lookup)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		      const char *name, struct fs_entry *out);
	/* The client drops @nlookup references; never fails. */
	void (*forget)(struct fs_backend *be, uint64_t nodeid, uint64_t nlookup);
	int (*getattr)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		       struct stat *st);
	/* Apply @sa, then return the new attributes in @st. */
	int (*setattr)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		       const struct fs_setattr *sa, struct stat *st);
	/* Returns the target's length (not NUL-terminated) or -errno;
	 * -ENAMETOOLONG when it does not fit in @size. */
	ssize_t (*readlink)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			    char *buf, size_t size);
	/* New nodes are owned by ctx's uid/gid (or the squashed owner). @mode
	 * carries the file type (S_IFREG, S_IFIFO, ...) and the permission bits
	 * exactly as they must end up on disk. */
	int (*mknod)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name, mode_t mode, dev_t rdev, struct fs_entry *out);
	int (*mkdir)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name, mode_t mode, struct fs_entry *out);
	int (*symlink)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		       const char *name, const char *target, struct fs_entry *out);
	int (*unlink)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		      const char *name);
	int (*rmdir)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name);
	/* @flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. */
	int (*rename)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		      const char *name, uint64_t newparent, const char *newname,
		      unsigned flags);
	int (*link)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		    uint64_t newparent, const char *newname, struct fs_entry *out);

	/* @flags are open(2) flags from the client; the backend drops those it
	 * does not honour. */
	int (*open)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		    uint32_t flags, uint64_t *fh);
	/* CREATE: make and open a regular file (O_CREAT semantics, O_EXCL
	 * honoured). */
	int (*create)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		      const char *name, mode_t mode, uint32_t flags,
		      struct fs_entry *out, uint64_t *fh);
	/* TMPFILE: make and open a regular file with no name in directory
	 * @parent (open(2)'s O_TMPFILE); a LINK may give it one later. */
	int (*tmpfile)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t parent,
		       mode_t mode, uint32_t flags, struct fs_entry *out, uint64_t *fh);
	/* Read up to iov_length(@iov) bytes at @off straight into @iov.
	 * Returns the bytes read (short only at end of file) or -errno. */
	ssize_t (*read)(struct fs_backend *be, uint64_t fh, uint64_t off,
			const struct iovec *iov, unsigned iovcnt);
	/* Write all of @iov at @off. Returns bytes written or -errno. */
	ssize_t (*write)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t fh,
			 uint64_t off, const struct iovec *iov, unsigned iovcnt);
	int (*flush)(struct fs_backend *be, uint64_t fh);
	int (*fsync)(struct fs_backend *be, uint64_t fh, bool datasync);
	int (*release)(struct fs_backend *be, uint64_t fh);
	int (*fallocate)(struct fs_backend *be, uint64_t fh, uint32_t mode,
			 uint64_t off, uint64_t len);
	/* SEEK_DATA / SEEK_HOLE (and the classic whences); *@result is the new
	 * offset. */
	int (*lseek)(struct fs_backend *be, uint64_t fh, uint64_t off, uint32_t whence,
		     uint64_t *result);
	/* Returns bytes copied or -errno. */
	ssize_t (*copy_file_range)(struct fs_backend *be, uint64_t fh_in, uint64_t off_in,
				   uint64_t fh_out, uint64_t off_out, size_t len);

	int (*opendir)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		       uint32_t flags, uint64_t *fh);
	/* Emit entries after cookie @off (0: from the start) into @sink until it
	 * is full or the directory ends. */
	int (*readdir)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t fh,
		       uint64_t off, struct fs_dir_sink *sink);
	int (*releasedir)(struct fs_backend *be, uint64_t fh);
	int (*fsyncdir)(struct fs_backend *be, uint64_t fh, bool datasync);

	int (*statfs)(struct fs_backend *be, uint64_t nodeid, struct statvfs *st);
	int (*syncfs)(struct fs_backend *be);
	/* @mask: R_OK | W_OK | X_OK, or F_OK. */
	int (*access)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
		      uint32_t mask);

	/* @flags: XATTR_CREATE / XATTR_REPLACE. */
	int (*setxattr)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			const char *name, const void *value, size_t size, uint32_t flags);
	/* With @size 0 return the value's length; else copy it into @buf and
	 * return its length, -ERANGE when larger than @size. */
	ssize_t (*getxattr)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			    const char *name, void *buf, size_t size);
	/* NUL-separated names, same size convention as getxattr. */
	ssize_t (*listxattr)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			     char *buf, size_t size);
	int (*removexattr)(struct fs_backend *be, const struct fs_ctx *ctx, uint64_t nodeid,
			   const char *name);

	/* Optional, for transports that move file data themselves (splice on
	 * /dev/fuse): call @fn with the host descriptor behind the regular-file
	 * handle @fh, valid for the duration of the call only. Returns what @fn
	 * returns, or -EBADF for an unknown handle. */
	ssize_t (*with_fd)(struct fs_backend *be, uint64_t fh,
			   ssize_t (*fn)(void *arg, int fd), void *arg);

	/*
	 * Snapshots (optional: NULL means the backend cannot be saved, and a
	 * snapshot of a machine using it is refused). Called by the FUSE server
	 * (fuse_state.c) with no request in flight.
	 *  - state_save: append the backend's section (the nodes and handles
	 *    the client holds) to @w. 0, or -errno with why in @eb.
	 *  - state_load: read that section from @r into a backend built fresh
	 *    (never used by a client) over the same share. All of it is checked
	 *    before anything is applied: false (and @r failed, with why) leaves
	 *    the backend as fresh as it was. Nodes that cannot be found again
	 *    are not a failure: they answer -ESTALE (the backend says how).
	 */
	int (*state_save)(struct fs_backend *be, struct state_writer *w, struct errbuf *eb);
	bool (*state_load)(struct fs_backend *be, struct state_reader *r);
};

/* Embedded in each backend's own struct (container_of). */
struct fs_backend {
	const struct fs_backend_ops *ops;
};

static inline void fs_backend_destroy(struct fs_backend *be)
{
	if (be)
		be->ops->destroy(be);
}

#endif
