/*
 * kvmini's FUSE server: decodes requests of the protocol in <linux/fuse.h>,
 * checks them, calls a filesystem backend (fs_backend.h) and encodes the
 * replies. It is transport-independent: /dev/fuse (fuse_dev.c) and
 * virtio-fs both hand it one request as readable iovecs and a place for the
 * reply as writable iovecs.
 *
 * The request iovecs may point into guest memory that the guest keeps
 * changing (virtio-fs). So each header and argument struct is copied once
 * into a local before it is checked and used; names are copied and checked
 * for their terminating NUL in the copy; only WRITE data is used in place
 * (handed to pwritev as it is). A request shorter than its headers, one whose
 * header claims more bytes than are there, or one larger than
 * FUSE_SERVER_MAX_REQUEST is refused with an error reply, without reading or
 * allocating past the cap. A reply is never larger than the writable iovecs:
 * fixed-size replies that do not fit become -EOVERFLOW before the operation
 * runs, variable ones (READ, READDIR, GETXATTR...) are limited to the room.
 *
 * Negotiation (FUSE_INIT): major 7, minor up to FUSE_KERNEL_MINOR_VERSION of
 * the uapi header, at least FUSE_SERVER_MIN_MINOR. Every other request before
 * INIT gets -EIO. DESTROY (or a new INIT) resets the backend's node and
 * handle tables.
 *
 * Concurrency: fuse_server_handle may run on any number of threads at once;
 * counters are atomic, negotiated values are written only by INIT, which the
 * client sends alone. Each call uses about 24 KiB of stack (argument copy and
 * an iovec view), up to 40 KiB when the passthrough backend finishes a short
 * transfer; handlers allocate only for xattr values.
 */
#ifndef KVMINI_FUSE_FUSE_SERVER_H
#define KVMINI_FUSE_FUSE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#include "core/counters.h"
#include "core/errbuf.h"
#include "core/state_io.h"
#include "fuse/fs_backend.h"

/* The largest request accepted, headers included (FUSE max_write fits). */
#define FUSE_SERVER_MAX_REQUEST (8u << 20)
/* The most iovecs a request or a reply may come in (virtqueue chain limit). */
#define FUSE_SERVER_MAX_IOV 1024u
/* Oldest protocol minor accepted: from 7.23 on, every struct the server
 * exchanges has its current size (no FUSE_COMPAT_* layouts). */
#define FUSE_SERVER_MIN_MINOR 23u

/* What the client may cache, and for how long. */
enum fuse_cache_policy {
	FUSE_CACHE_NONE,     /* no attribute or entry caching, direct I/O */
	FUSE_CACHE_METADATA, /* auto's 1 s timeouts for attributes and entries,
			      * direct I/O for file data */
	FUSE_CACHE_AUTO,     /* 1 s timeouts, page cache dropped at open */
	FUSE_CACHE_ALWAYS,   /* long timeouts, page cache kept across opens */
};

struct fuse_server_opts {
	enum fuse_cache_policy cache;
	/* Largest WRITE payload (and READ size) offered at INIT; rounded down
	 * to pages, 4 KiB..FUSE_SERVER_MAX_REQUEST - 4 KiB. 0: 1 MiB. */
	uint32_t max_write;
	/* Upper bound for the readahead the client asks for. 0: 1 MiB. */
	uint32_t max_readahead;
	/* INIT flags (64-bit, as flags | flags2 << 32) the transport can
	 * honour on top of the server's own, e.g. FUSE_PASSTHROUGH for
	 * /dev/fuse (then its reply sink must have the backing hooks); 0 for
	 * none. */
	uint64_t extra_init_flags;
};

/*
 * Counters, all monotonic, printed "fuse_<name>"; requests come from the
 * client, replies and notifications go to it. Besides these, one
 * "fuse_requests_<opcode>" per opcode seen.
 */
#define FUSE_SERVER_COUNTERS(X) \
	X(requests,             "calls of fuse_server_handle: requests taken") \
	X(replies_ok,           "replies with error 0") \
	X(replies_error,        "replies carrying -errno") \
	X(replies_none,         "requests answered with no reply (FORGET, INTERRUPT, unanswerable)") \
	X(requests_malformed,   "requests short, lying about their length or over the size cap") \
	X(requests_unknown,     "requests of an opcode the server lacks, answered -ENOSYS") \
	X(requests_before_init, "requests other than INIT before INIT, refused") \
	X(replies_overflow,     "fixed-size replies larger than the writable buffers, not sent") \
	X(read_bytes,           "READ payload bytes returned") \
	X(read_bytes_sink,      "READ payload bytes of those sent through a reply sink") \
	X(write_bytes,          "WRITE payload bytes accepted") \
	X(opens_passthrough,    "OPEN and CREATE answered with FOPEN_PASSTHROUGH") \
	X(passthrough_failed,   "OPEN and CREATE that could not pass through, answered cached") \
	X(notify_sent,          "notifications taken by the transport") \
	X(notify_unknown,       "notifications the client refused: it caches nothing of the node") \
	X(notify_dropped,       "notifications not sent: no transport, not negotiated, or from a request") \
	X(notify_failed,        "notifications the transport could not send (no buffer, error)") \
	X(rx_mappings_set,      "SETUPMAPPING ranges mapped into the DAX window") \
	X(rx_mappings_removed,  "REMOVEMAPPING ranges taken out of the DAX window") \
	X(rx_mappings_refused,  "SETUPMAPPING and REMOVEMAPPING requests refused (range, file, mode, no window)")

struct fuse_server_counters {
	FUSE_SERVER_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set fuse_server_counter_set;

struct fuse_server;

/* Create a server over @be (not owned). @o may be NULL for defaults.
 * Returns NULL on allocation failure. */
struct fuse_server *fuse_server_new(struct fs_backend *be, const struct fuse_server_opts *o);
void fuse_server_free(struct fuse_server *s);

/*
 * fuse_server_handle() - answer one request.
 * @in/@in_cnt:   readable iovecs holding the request (fuse_in_header and its
 *                payload); at most FUSE_SERVER_MAX_IOV of them.
 * @out/@out_cnt: writable iovecs for the reply; at most FUSE_SERVER_MAX_IOV.
 *
 * Returns the reply length written into @out (a fuse_out_header and its
 * payload), never more than their total size. 0 means no reply: FORGET,
 * BATCH_FORGET and INTERRUPT have none, and neither has a request too short
 * to carry a header or one whose writable part cannot hold a
 * fuse_out_header. The caller completes the request either way.
 */
size_t fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
			  const struct iovec *out, unsigned out_cnt);

/*
 * What a transport can do with the backend's host descriptors (/dev/fuse).
 * Each hook may be NULL.
 *  - reply_fd: the zero-copy path for READ replies (splice from the file
 *    into a pipe, then into the device). The server uses it for reads of at
 *    least @min_len bytes when the backend can lend its descriptor
 *    (fs_backend_ops.with_fd); otherwise replies go through the reply buffer.
 *  - backing_open/backing_close: FUSE passthrough (FUSE_DEV_IOC_BACKING_*),
 *    used when FUSE_PASSTHROUGH was negotiated: the kernel then reads and
 *    writes the file itself, through the descriptor the backend opened
 *    (confined like every other), and the server sees OPEN and RELEASE only.
 */
struct fuse_reply_sink {
	/* Reply to request @unique with up to @len bytes of @fd from @off.
	 * Returns the data bytes sent (the reply went out, short only at end of
	 * file), or -errno when nothing was sent and the server must reply the
	 * ordinary way. */
	ssize_t (*reply_fd)(struct fuse_reply_sink *sink, uint64_t unique, int fd,
			    uint64_t off, size_t len);
	size_t min_len;
	/* Register @fd as a backing file: 0 with *@id set, or -errno. */
	int (*backing_open)(struct fuse_reply_sink *sink, int fd, int32_t *id);
	void (*backing_close)(struct fuse_reply_sink *sink, int32_t id);
};

/* fuse_server_handle() with a reply sink (may be NULL). Returns 0 also when
 * the reply went out through @sink: there is nothing left to send. */
size_t fuse_server_handle_sink(struct fuse_server *s, const struct iovec *in, unsigned in_cnt,
			       const struct iovec *out, unsigned out_cnt,
			       struct fuse_reply_sink *sink);

/*
 * A DAX window (virtio-fs's shared memory region 0): guest-visible memory
 * the server maps host file ranges into for FUSE_SETUPMAPPING and takes
 * them out of for FUSE_REMOVEMAPPING. Only a transport with such a region
 * installs one (virtio-fs with --fs ...,dax=SIZE); without one both opcodes
 * answer -ENOSYS and INIT does not offer FUSE_MAP_ALIGNMENT.
 *  - size: bytes, a multiple of the host page size.
 *  - map: map @len bytes of @fd from @foffset at @moffset of the window,
 *    readable, and writable when @writable; replaces what was there.
 *  - unmap: make [@moffset, @moffset + @len) inaccessible again.
 * Both return 0 or -errno. The server has checked alignment and bounds.
 */
struct fuse_dax_window {
	uint64_t size;
	int (*map)(struct fuse_dax_window *w, int fd, uint64_t foffset, uint64_t moffset,
		   uint64_t len, bool writable);
	int (*unmap)(struct fuse_dax_window *w, uint64_t moffset, uint64_t len);
};

/* Install @w (not owned; NULL: none) before the first request. INIT and
 * DESTROY empty it along with the backend's tables. */
void fuse_server_set_dax(struct fuse_server *s, struct fuse_dax_window *w);
/* Empty the window and its record of mappings (INIT, DESTROY, a device
 * reset). Any thread; no request may map meanwhile. */
void fuse_server_dax_clear(struct fuse_server *s);

/* The negotiated max_write and protocol minor (0 before INIT). */
uint32_t fuse_server_max_write(const struct fuse_server *s);
uint32_t fuse_server_proto_minor(const struct fuse_server *s);
/* The reply buffer size that fits any reply this server sends. */
size_t fuse_server_max_reply(const struct fuse_server *s);

void fuse_server_get_counters(const struct fuse_server *s, struct fuse_server_counters *c);
/* Hand the counters to @sink as "fuse_<name>" (any thread: atomic), then
 * the per-opcode request counts that are not zero. */
void fuse_server_visit_counters(const struct fuse_server *s, const struct counter_sink *sink);
/* Print counters, one "fuse_<name> value" per line. */
void fuse_server_dump_counters(const struct fuse_server *s, FILE *out);

/*
 * Notifications: messages the server sends unasked (FUSE_NOTIFY_*), written
 * as a fuse_out_header with unique 0 and error set to the notify code, then
 * the payload. The transport that carries the server sets how they go out.
 *
 * Never send one from a thread that is answering a request: the Linux FUSE
 * client holds inode locks while it waits for replies, and INVAL_ENTRY takes
 * the parent's lock, so a worker that notifies before answering the request
 * holding that lock waits for itself. The server refuses (and counts) a
 * notification made from inside fuse_server_handle*. A dedicated thread
 * (host_watch.c) is the caller; it may block while the client holds a lock,
 * which the workers release by answering.
 */
struct fuse_notify_transport {
	/* Send one whole message of @len bytes (header included). Returns 0,
	 * -ENOENT when the client has no such node or entry cached (normal),
	 * or another -errno (-ENOBUFS: no buffer, -EOPNOTSUPP: not negotiated). */
	int (*send)(struct fuse_notify_transport *t, const void *msg, size_t len);
	/* Optional: false while nothing sent could arrive (a virtio-fs driver
	 * that did not negotiate notifications), so watching is wasted. */
	bool (*can_send)(struct fuse_notify_transport *t);
};

/* Set (or clear with NULL) the transport. Clear it before freeing the
 * transport, with no notification in flight (stop the watcher first). */
void fuse_server_set_notify(struct fuse_server *s, struct fuse_notify_transport *t);

/* Could a notification reach the client now? A transport is set, it can
 * send, and INIT (when it came) negotiated notifications. Any thread. */
bool fuse_server_notify_possible(struct fuse_server *s);

/* FUSE_NOTIFY_INVAL_INODE: the client drops its attributes of @nodeid and,
 * when @off >= 0, its cached data from @off for @len bytes (len <= 0: to
 * the end). Returns 0, -ENOENT (nothing cached), -EAGAIN before INIT or
 * when the negotiated minor lacks it, -EDEADLK from a request thread, or
 * the transport's -errno. Every outcome is counted. */
int fuse_server_notify_inval_inode(struct fuse_server *s, uint64_t nodeid, int64_t off,
				   int64_t len);
/* FUSE_NOTIFY_INVAL_ENTRY: the client drops the entry @name (1..NAME_MAX
 * bytes, no NUL inside) of directory @parent. Returns as above, -EINVAL for
 * a bad name. */
int fuse_server_notify_inval_entry(struct fuse_server *s, uint64_t parent, const char *name,
				   size_t namelen);

/*
 * Snapshots (fuse_state.c). The server's section "FUSE" holds the session
 * INIT negotiated (initialized or not, protocol minor, the flags agreed,
 * max_write, max_readahead) and the options it was negotiated under (cache
 * policy, max_write offered), followed by the backend's own section
 * (fs_backend_ops.state_save) and, with a DAX window, "FDAX": each
 * mapping's window range, node, file offset and access (fuse_dax_state.c),
 * mapped again from the restored node's file by the load.
 *
 * fuse_server_state_save() - append both sections to @w. Call with no
 * request in flight (the transport paused at a request boundary). Returns
 * 0, or -errno with why in @eb: -EOPNOTSUPP for a backend that cannot be
 * saved (memfs) or a session with FUSE passthrough (its backing ids belong
 * to the /dev/fuse of this process).
 *
 * fuse_server_state_load() - read both into a server and backend built
 * fresh with the same options over the same share, never initialized (no
 * INIT seen), before any request, with the same DAX window (or none).
 * Everything is checked first: on false (@r failed, why in its errbuf)
 * neither server nor backend nor window changed (a mapping that cannot be
 * made again, its file truncated since, empties both). On
 * true the server answers as the saved one did, without a new INIT.
 */
int fuse_server_state_save(struct fuse_server *s, struct state_writer *w, struct errbuf *eb);
bool fuse_server_state_load(struct fuse_server *s, struct state_reader *r);

/* "none", "auto", "always" -> policy; -EINVAL otherwise. */
int fuse_cache_policy_parse(const char *text, enum fuse_cache_policy *policy);

#endif
