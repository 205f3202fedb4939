/*
 * Internals of the passthrough backend shared by its files: the node,
 * open-file and backend structs, and the node-table helpers the snapshot
 * state (passthrough_state.c) rebuilds the tables with. Not for use
 * outside src/fs/passthrough*.c.
 */
#ifndef KVMINI_FS_PASSTHROUGH_INTERNAL_H
#define KVMINI_FS_PASSTHROUGH_INTERNAL_H

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "core/state_io.h"
#include "fs/id_table.h"
#include "fs/passthrough.h"

struct pt_inode {
	uint64_t nodeid;             /* immutable */
	dev_t dev;                   /* immutable */
	ino_t ino;                   /* immutable */
	/* Everything below is protected by passthrough.lock. */
	mode_t type;                 /* S_IFMT bits */
	int fd;                      /* O_PATH, -1 while evicted */
	struct file_handle *handle;  /* kept once made, for reopening */
	bool no_handle;              /* the filesystem gives none: never evicted */
	/* Restored from a snapshot but not found again on the host: no fd, no
	 * handle, not in the hash; every request on it is -ESTALE until the
	 * client forgets it (immutable once in the table). */
	bool stale;
	uint64_t nlookup;            /* client references */
	unsigned refs;               /* requests using fd right now */
	struct pt_inode *hnext;
	struct pt_inode *lru_prev, *lru_next;
	bool in_lru;                 /* has fd, refs == 0 */
	int wd;                      /* host_watch descriptor, -1 for none */
	nlink_t links;               /* st_nlink at the last lookup */
};

struct pt_file {
	int fd;                      /* immutable while refs > 0; -1 when stale */
	bool dir;
	/* What a snapshot needs to open it again (immutable): the node it was
	 * opened from and the open(2) flags, O_TRUNC, O_CREAT, O_EXCL left out
	 * (reopening must not truncate again). */
	uint64_t nodeid;
	int flags;
	/* Restored from a snapshot without its file: requests get -ESTALE,
	 * RELEASE frees it (immutable). */
	bool stale;
	unsigned refs;               /* table's own + requests; under passthrough.flock */
	/* Directory stream; under dlock. */
	pthread_mutex_t dlock;
	char *dbuf;
	size_t dlen, dpos;
	uint64_t next_off;           /* cookie of the entry at dbuf + dpos */
};

struct passthrough {
	struct fs_backend be;
	struct passthrough_opts opts;
	int proc_fd;                 /* /proc/self/fd, to reopen node descriptors */
	int mount_fd;                /* the root, readable: open_by_handle_at, syncfs */
	int root_mnt_id;
	dev_t root_dev;
	uid_t run_uid;
	gid_t run_gid;

	pthread_mutex_t lock;        /* nodes: table, hash, LRU, node fields */
	struct id_table nodes;
	struct pt_inode **buckets;
	size_t nbuckets;             /* power of two */
	struct pt_inode *lru_head, *lru_tail;
	struct pt_inode *root;
	unsigned nfds;
	/* Non-directory nodes with a watch of their own (changed under lock,
	 * read without: an unlink with none skips looking for its node). */
	unsigned file_watches;
	uint64_t evictions, reopens;
	uint64_t restored_stale;     /* nodes a restore could not find again */
	uint64_t nodes_refused;      /* lookups refused at max_inodes (ENFILE) */
	bool nodes_cap_logged;       /* the first refusal is logged, the rest counted */

	pthread_mutex_t flock;       /* open files: table and refs */
	struct id_table files;
	uint64_t handles_refused;    /* opens refused at max_handles (EMFILE) */
	bool handles_cap_logged;

	/* Told of node life outside pt->lock (node_observer.h); NULL: none. */
	struct fs_node_observer *obs;
	/* What the observer asks back (node_observer.h), bound while built. */
	struct fs_node_source source;
};

/* The O_PATH descriptors' file handles (name_to_handle_at). */
#define PT_HANDLE_MAX 128u

struct passthrough *pt_of(struct fs_backend *be);

/* passthrough.c, with pt->lock held */
struct pt_inode *pt_hash_find(struct passthrough *pt, dev_t dev, ino_t ino);
void pt_hash_add(struct passthrough *pt, struct pt_inode *n);
void pt_hash_grow(struct passthrough *pt);
bool pt_inode_make_handle(struct passthrough *pt, struct pt_inode *n);
int pt_inode_reopen(struct passthrough *pt, struct pt_inode *n);
struct pt_inode *pt_inode_attached(struct passthrough *pt, struct pt_inode *n);
/* passthrough.c, without pt->lock: a reference on the node @nodeid with
 * its descriptor open (NULL with -ESTALE for an unknown or stale one), and
 * its release. */
struct pt_inode *pt_inode_get(struct passthrough *pt, uint64_t nodeid, int *err);
void pt_inode_put(struct passthrough *pt, struct pt_inode *n);
/* passthrough.c, without pt->lock */
void pt_inode_watch(struct passthrough *pt, struct pt_inode *n);
int pt_inode_open(struct passthrough *pt, const struct pt_inode *n, int flags);
void pt_file_free(struct pt_file *f);

/* passthrough_state.c: fs_backend_ops.state_save / state_load. */
int pt_state_save(struct fs_backend *be, struct state_writer *w, struct errbuf *eb);
bool pt_state_load(struct fs_backend *be, struct state_reader *r);

#endif
