/*
 * FUSE request dispatch on crafted requests, against the passthrough
 * backend over a temporary directory: negotiation, requests shorter than
 * their headers or lying about their length, the 8 MiB cap, unknown
 * opcodes, replies that must fit tiny or scattered buffers, forged node ids
 * and file handles, names that try to leave the directory, complete
 * directory listings, the descriptor bound, ownership, and concurrency.
 *
 * Every call goes through call(), which checks the contract of
 * fuse_server_handle: a reply is never larger than the buffers, carries the
 * request's unique id and a length equal to what was returned, and an error
 * reply is a bare header.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "check.h"
#include "fuse_req.h"
#include "core/compiler.h"
#include "fuse/fuse_compat.h"
#include "fuse/fuse_server.h"
#include "fs/passthrough.h"

#define NO_REPLY 1000

static char tmpdir[64];
static char rootdir[96];

/* --- the call contract ------------------------------------------------------ */

static struct fuse_server *srv;
static struct fs_backend *be;

/*
 * call_iov() - hand a request to the server and check the reply contract.
 * Returns the reply's error (0 or -errno), or NO_REPLY when nothing was
 * written; *@outlen gets the reply length.
 */
static int call_iov(const struct iovec *in, unsigned in_cnt, const struct iovec *out,
		    unsigned out_cnt, uint64_t unique, size_t *outlen)
{
	size_t cap = 0;
	uint8_t hdr[sizeof(struct fuse_out_header)];

	for (unsigned i = 0; i < out_cnt; i++)
		cap += out[i].iov_len;
	size_t n = fuse_server_handle(srv, in, in_cnt, out, out_cnt);
	if (outlen)
		*outlen = n;
	CHECK(n <= cap);
	if (n == 0)
		return NO_REPLY;
	CHECK(n >= sizeof(struct fuse_out_header));
	size_t got = 0;
	for (unsigned i = 0; i < out_cnt && got < sizeof(hdr); i++) {
		size_t k = MIN(out[i].iov_len, sizeof(hdr) - got);
		memcpy(hdr + got, out[i].iov_base, k);
		got += k;
	}
	struct fuse_out_header oh;
	memcpy(&oh, hdr, sizeof(oh));
	CHECK_EQ(oh.len, n);
	CHECK_EQ(oh.unique, unique);
	CHECK(oh.error <= 0 && oh.error > -4096);
	if (oh.error)
		CHECK_EQ(n, sizeof(struct fuse_out_header));
	return oh.error;
}

static uint8_t outbuf[(1u << 20) + 65536] __attribute__((aligned(8)));

/* The common case: one request buffer, one big reply buffer. */
static int call(struct frq *q, size_t *outlen)
{
	struct iovec in = { q->buf, q->len }, out = { outbuf, sizeof(outbuf) };

	return call_iov(&in, 1, &out, 1, q->unique, outlen);
}

static void *reply_payload(void)
{
	return outbuf + sizeof(struct fuse_out_header);
}

static uint8_t qbuf[(1u << 20) + 8192] __attribute__((aligned(8)));
static struct frq q = { .buf = qbuf, .cap = sizeof(qbuf) };

static int do_init(uint32_t major, uint32_t minor, struct fuse_init_out *out)
{
	struct fuse_init_in in = { .major = major, .minor = minor, .max_readahead = 1 << 20,
				   .flags = 0xffffffffu & ~FUSE_INIT_EXT };

	frq_start(&q, FUSE_INIT, 0);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	int rc = call(&q, NULL);
	if (rc == 0 && out)
		memcpy(out, reply_payload(), sizeof(*out));
	return rc;
}

static int lookup(uint64_t parent, const char *name, struct fuse_entry_out *eo)
{
	frq_start(&q, FUSE_LOOKUP, parent);
	frq_str(&q, name);
	frq_end(&q);
	int rc = call(&q, NULL);
	if (rc == 0 && eo)
		memcpy(eo, reply_payload(), sizeof(*eo));
	return rc;
}

static int getattr(uint64_t nodeid, struct fuse_attr_out *ao)
{
	struct fuse_getattr_in in = { 0 };

	frq_start(&q, FUSE_GETATTR, nodeid);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	int rc = call(&q, NULL);
	if (rc == 0 && ao)
		memcpy(ao, reply_payload(), sizeof(*ao));
	return rc;
}

static int forget(uint64_t nodeid, uint64_t n)
{
	struct fuse_forget_in in = { .nlookup = n };

	frq_start(&q, FUSE_FORGET, nodeid);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	return call(&q, NULL);
}

static int do_open(uint32_t op, uint64_t nodeid, uint32_t flags, uint64_t *fh)
{
	struct fuse_open_in in = { .flags = flags };

	frq_start(&q, op, nodeid);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	int rc = call(&q, NULL);
	if (rc == 0)
		*fh = ((struct fuse_open_out *)reply_payload())->fh;
	return rc;
}

static int do_release(uint32_t op, uint64_t nodeid, uint64_t fh)
{
	struct fuse_release_in in = { .fh = fh };

	frq_start(&q, op, nodeid);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	return call(&q, NULL);
}

static int create(uint64_t parent, const char *name, uint32_t mode, uint32_t uid, uint32_t gid,
		  struct fuse_entry_out *eo, uint64_t *fh)
{
	struct fuse_create_in in = { .flags = O_RDWR | O_CREAT, .mode = mode };

	frq_start(&q, FUSE_CREATE, parent);
	frq_ids(&q, uid, gid);
	frq_put(&q, &in, sizeof(in));
	frq_str(&q, name);
	frq_end(&q);
	int rc = call(&q, NULL);
	if (rc == 0) {
		if (eo)
			memcpy(eo, reply_payload(), sizeof(*eo));
		*fh = ((struct fuse_open_out *)((uint8_t *)reply_payload() +
						sizeof(struct fuse_entry_out)))->fh;
	}
	return rc;
}

static void read_req(uint64_t fh, uint64_t off, uint32_t size)
{
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };

	frq_start(&q, FUSE_READ, 2);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
}

static void host_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", rootdir, name);
}

static void host_write(const char *name, const void *data, size_t len)
{
	char p[256];

	host_path(p, sizeof(p), name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* --- setup ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static struct fs_backend *make_backend(unsigned max_fds)
{
	struct passthrough_opts o = { .root = rootdir, .max_fds = max_fds };
	int err = 0;
	struct fs_backend *b = passthrough_new(&o, &err);

	if (!b)
		fprintf(stderr, "passthrough_new: %s\n", strerror(-err));
	return b;
}

/* A fresh server over the same directory, initialised. */
static void restart(unsigned max_fds)
{
	if (srv)
		fuse_server_free(srv);
	fs_backend_destroy(be);
	be = make_backend(max_fds);
	struct fuse_server_opts o = { .cache = FUSE_CACHE_AUTO };
	srv = fuse_server_new(be, &o);
	if (srv)
		do_init(7, FUSE_KERNEL_MINOR_VERSION, NULL);
}

/* --- negotiation ------------------------------------------------------------ */

static void test_init_negotiation(void)
{
	struct fuse_init_out out;

	fuse_server_free(srv);
	srv = fuse_server_new(be, NULL);
	/* Anything before INIT is refused. */
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), -EIO);
	CHECK_EQ(do_init(7, 22, NULL), -EPROTO);
	CHECK_EQ(do_init(6, 40, NULL), -EPROTO);
	/* A newer major is answered with ours, for the client to retry. */
	CHECK_EQ(do_init(8, 0, &out), 0);
	CHECK_EQ(out.major, 7);
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), -EIO);
	/* A client newer than our header gets our minor. */
	CHECK_EQ(do_init(7, FUSE_KERNEL_MINOR_VERSION + 5, &out), 0);
	CHECK_EQ(out.major, 7);
	CHECK_EQ(out.minor, FUSE_KERNEL_MINOR_VERSION);
	CHECK(out.flags & FUSE_MAX_PAGES);
	CHECK(out.flags & FUSE_DO_READDIRPLUS);
	/* Cached attributes: the client's own O_TRUNC SETATTR clears set-id. */
	CHECK(!(out.flags & FUSE_ATOMIC_O_TRUNC));
	CHECK(!(out.flags & FUSE_POSIX_ACL));
	CHECK(!(out.flags & FUSE_WRITEBACK_CACHE));
	CHECK(!(out.flags & FUSE_HANDLE_KILLPRIV_V2));
	CHECK_EQ(out.max_write, 1u << 20);
	CHECK_EQ(out.max_pages, 256);
	CHECK_EQ(out.max_readahead, 1u << 20);
	CHECK_EQ(fuse_server_max_write(srv), 1u << 20);
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), 0);
	/* The old, short INIT (before 7.36) without MAX_PAGES: 128 KiB writes. */
	struct { uint32_t major, minor, ra, flags; } old = { 7, 31, 65536, FUSE_ASYNC_READ };
	frq_start(&q, FUSE_INIT, 0);
	frq_put(&q, &old, sizeof(old));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	memcpy(&out, reply_payload(), sizeof(out));
	CHECK_EQ(out.minor, 31);
	CHECK_EQ(out.flags, FUSE_ASYNC_READ);
	CHECK_EQ(out.max_write, 128u << 10);
	CHECK_EQ(out.max_readahead, 65536);
}

static void test_destroy_resets(void)
{
	struct fuse_entry_out eo;

	host_write("destroyme", "x", 1);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "destroyme", &eo), 0);
	frq_start(&q, FUSE_DESTROY, 0);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), -EIO);
	CHECK_EQ(do_init(7, FUSE_KERNEL_MINOR_VERSION, NULL), 0);
	/* The node of the previous session is gone. */
	CHECK_EQ(getattr(eo.nodeid, NULL), -ESTALE);
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), 0);
}

/* --- malformed requests ------------------------------------------------------ */

static void test_short_requests(void)
{
	struct fuse_in_header h = { .opcode = FUSE_GETATTR, .unique = 77, .nodeid = 1 };
	struct iovec out = { outbuf, sizeof(outbuf) };
	size_t n;

	/* Shorter than a header: nothing can be answered. */
	struct iovec in = { &h, sizeof(h) - 1 };
	CHECK_EQ(call_iov(&in, 1, &out, 1, 77, &n), NO_REPLY);
	CHECK_EQ(call_iov(&in, 0, &out, 1, 77, &n), NO_REPLY);
	/* A header claiming more than is there. */
	h.len = sizeof(h) + sizeof(struct fuse_getattr_in);
	in.iov_len = sizeof(h);
	CHECK_EQ(call_iov(&in, 1, &out, 1, 77, &n), -EINVAL);
	/* A header claiming less than itself. */
	h.len = 10;
	CHECK_EQ(call_iov(&in, 1, &out, 1, 77, &n), -EINVAL);
	/* Complete header, argument too short for GETATTR. */
	h.len = sizeof(h);
	CHECK_EQ(call_iov(&in, 1, &out, 1, 77, &n), -EINVAL);
	/* Extensions longer than the payload. */
	uint8_t buf[sizeof(h) + 16] = { 0 };
	h.len = sizeof(buf);
	h.total_extlen = 3;
	memcpy(buf, &h, sizeof(h));
	in = (struct iovec){ buf, sizeof(buf) };
	CHECK_EQ(call_iov(&in, 1, &out, 1, 77, &n), -EINVAL);
	/* ... and extensions that fit are skipped. */
	h.total_extlen = 0;
	h.len = sizeof(buf);
	memcpy(buf, &h, sizeof(h));
	CHECK_EQ(call_iov(&in, 1, &out, 1, 77, &n), 0);
	/* The header split byte by byte over iovecs still reads right. */
	struct iovec pieces[sizeof(buf)];
	for (unsigned i = 0; i < sizeof(buf); i++)
		pieces[i] = (struct iovec){ buf + i, 1 };
	CHECK_EQ(call_iov(pieces, sizeof(buf), &out, 1, 77, &n), 0);
	CHECK_EQ(n, sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out));
}

static void test_request_cap(void)
{
	struct fuse_in_header h = { .opcode = FUSE_WRITE, .unique = 5, .nodeid = 2,
				    .len = FUSE_SERVER_MAX_REQUEST + 1 };
	struct iovec out = { outbuf, sizeof(outbuf) };
	/* The header claims 8 MiB + 1 but only 40 bytes exist: refused
	 * without reading on (ASan would catch a read past the header). */
	uint8_t *hb = malloc(sizeof(h));
	memcpy(hb, &h, sizeof(h));
	struct iovec in = { hb, sizeof(h) };
	CHECK_EQ(call_iov(&in, 1, &out, 1, 5, NULL), -EINVAL);
	/* Even when the buffer really is that large. */
	size_t big = FUSE_SERVER_MAX_REQUEST + 4096;
	uint8_t *bb = calloc(1, big);
	memcpy(bb, &h, sizeof(h));
	in = (struct iovec){ bb, big };
	CHECK_EQ(call_iov(&in, 1, &out, 1, 5, NULL), -EINVAL);
	/* A SETXATTR larger than any xattr: refused, nothing allocated for it. */
	struct fuse_in_header sh = { .opcode = FUSE_SETXATTR, .unique = 6, .nodeid = 1,
				     .len = 8u << 20 };
	memcpy(bb, &sh, sizeof(sh));
	CHECK_EQ(call_iov(&in, 1, &out, 1, 6, NULL), -EINVAL);
	/* More iovecs than the limit: no reply, nothing read. */
	CHECK_EQ(call_iov(&in, FUSE_SERVER_MAX_IOV + 1, &out, 1, 6, NULL), NO_REPLY);
	free(bb);
	free(hb);
}

static void test_unknown_opcode(void)
{
	const uint32_t ops[] = { 0, 7, 19, FUSE_GETLK, FUSE_IOCTL, FUSE_POLL, FUSE_BMAP,
				 FUSE_NOTIFY_REPLY, 52, 53, 999, CUSE_INIT,
				 FUSE_INIT_BSWAP_RESERVED, 0xffffffffu };
	struct fuse_server_counters before, after;

	fuse_server_get_counters(srv, &before);
	for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
		frq_start(&q, ops[i], 1);
		frq_put(&q, "0123456789abcdef", 16);
		frq_end(&q);
		CHECK_EQ(call(&q, NULL), -ENOSYS);
	}
	fuse_server_get_counters(srv, &after);
	CHECK_EQ(after.requests_unknown - before.requests_unknown, ARRAY_SIZE(ops));
}

/* fs_backend.h promises that a NULL optional op is answered -ENOSYS by the
 * dispatcher: a backend without them must get -ENOSYS, not a jump to 0. */
static void test_missing_backend_ops(void)
{
	const struct fs_backend_ops *real = be->ops;
	struct fs_backend_ops sparse = *real;
	struct fuse_open_in oi = { .flags = O_RDONLY };
	struct fuse_fallocate_in fa = { .length = 1 };
	struct fuse_syncfs_in sy = { 0 };
	struct fuse_lseek_in ls = { .whence = SEEK_SET };
	struct fuse_copy_file_range_in cr = { .len = 1 };
	struct fuse_access_in ac = { .mask = R_OK };

	sparse.opendir = NULL;
	sparse.readlink = NULL;
	sparse.fallocate = NULL;
	sparse.syncfs = NULL;
	sparse.lseek = NULL;
	sparse.copy_file_range = NULL;
	sparse.access = NULL;
	sparse.flush = NULL;      /* NULL flush: nothing to flush, FLUSH succeeds */
	be->ops = &sparse;
	frq_start(&q, FUSE_OPENDIR, 1);
	frq_put(&q, &oi, sizeof(oi));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -ENOSYS);
	frq_start(&q, FUSE_READLINK, 1);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -ENOSYS);
	frq_start(&q, FUSE_FALLOCATE, 1);
	frq_put(&q, &fa, sizeof(fa));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -ENOSYS);
	frq_start(&q, FUSE_SYNCFS, 1);
	frq_put(&q, &sy, sizeof(sy));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -ENOSYS);
	frq_start(&q, FUSE_LSEEK, 1);
	frq_put(&q, &ls, sizeof(ls));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -ENOSYS);
	frq_start(&q, FUSE_COPY_FILE_RANGE, 1);
	frq_put(&q, &cr, sizeof(cr));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -ENOSYS);
	frq_start(&q, FUSE_ACCESS, 1);
	frq_put(&q, &ac, sizeof(ac));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -ENOSYS);
	be->ops = real;
	/* The real table answers the same request. */
	uint64_t fh;
	CHECK_EQ(do_open(FUSE_OPENDIR, 1, O_RDONLY, &fh), 0);
	CHECK_EQ(do_release(FUSE_RELEASEDIR, 1, fh), 0);
}

static void test_no_reply_ops(void)
{
	struct fuse_interrupt_in ii = { .unique = 1 };
	struct fuse_batch_forget_in bf = { .count = 1000000 };
	struct fuse_forget_one one = { .nodeid = 12345, .nlookup = 1 };
	struct iovec out = { outbuf, 0 };

	/* No reply even with no room for one (hiprio chains have none). */
	frq_start(&q, FUSE_INTERRUPT, 0);
	frq_put(&q, &ii, sizeof(ii));
	frq_end(&q);
	struct iovec in = { q.buf, q.len };
	CHECK_EQ(call_iov(&in, 1, &out, 1, q.unique, NULL), NO_REPLY);
	CHECK_EQ(forget(999, 1), NO_REPLY);
	CHECK_EQ(forget(FUSE_ROOT_ID, 1000), NO_REPLY);
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), 0);
	/* A batch claiming a million entries but carrying two. */
	frq_start(&q, FUSE_BATCH_FORGET, 0);
	frq_put(&q, &bf, sizeof(bf));
	frq_put(&q, &one, sizeof(one));
	frq_put(&q, &one, sizeof(one));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), NO_REPLY);
	/* A request with a reply but no room for a header: none. */
	frq_start(&q, FUSE_GETATTR, 1);
	frq_put(&q, &(struct fuse_getattr_in){ 0 }, sizeof(struct fuse_getattr_in));
	frq_end(&q);
	in = (struct iovec){ q.buf, q.len };
	out.iov_len = sizeof(struct fuse_out_header) - 1;
	CHECK_EQ(call_iov(&in, 1, &out, 1, q.unique, NULL), NO_REPLY);
	/* Room for a header but not the attributes: an error that fits. */
	out.iov_len = sizeof(struct fuse_out_header) + 8;
	CHECK_EQ(call_iov(&in, 1, &out, 1, q.unique, NULL), -EOVERFLOW);
}

/* --- reads and writes into odd buffers ---------------------------------------- */

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 8));
}

static void test_read_small_buffers(void)
{
	enum { LEN = 100000 };
	uint8_t *data = malloc(LEN);
	struct fuse_entry_out eo;
	uint64_t fh;

	for (size_t i = 0; i < LEN; i++)
		data[i] = pattern(i);
	host_write("readme", data, LEN);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "readme", &eo), 0);
	CHECK_EQ(eo.attr.size, LEN);
	CHECK_EQ(do_open(FUSE_OPEN, eo.nodeid, O_RDONLY, &fh), 0);

	/* Out buffer of 16 + 10 bytes for a 64 KiB read: 10 bytes come back. */
	read_req(fh, 1000, 65536);
	struct iovec in = { q.buf, q.len };
	uint8_t small[26];
	struct iovec out = { small, sizeof(small) };
	size_t n;
	CHECK_EQ(call_iov(&in, 1, &out, 1, q.unique, &n), 0);
	CHECK_EQ(n, 26);
	CHECK(!memcmp(small + 16, data + 1000, 10));

	/* The reply scattered over 7-byte pieces. */
	enum { PIECES = 200 };
	static uint8_t scatter[PIECES * 7];
	struct iovec outs[PIECES];
	for (unsigned i = 0; i < PIECES; i++)
		outs[i] = (struct iovec){ scatter + 7 * i, 7 };
	read_req(fh, 5000, 1000);
	in = (struct iovec){ q.buf, q.len };
	CHECK_EQ(call_iov(&in, 1, outs, PIECES, q.unique, &n), 0);
	CHECK_EQ(n, 16 + 1000);
	CHECK(!memcmp(scatter + 16, data + 5000, 1000));

	/* Near the end of the file the read is short; past it, empty. */
	read_req(fh, LEN - 10, 4096);
	CHECK_EQ(call(&q, &n), 0);
	CHECK_EQ(n, 16 + 10);
	CHECK(!memcmp(reply_payload(), data + LEN - 10, 10));
	read_req(fh, (uint64_t)LEN + 5000, 4096);
	CHECK_EQ(call(&q, &n), 0);
	CHECK_EQ(n, 16);
	read_req(fh, UINT64_MAX - 5, 4096);
	CHECK_EQ(call(&q, &n), -EINVAL);
	/* Size 0. */
	read_req(fh, 0, 0);
	CHECK_EQ(call(&q, &n), 0);
	CHECK_EQ(n, 16);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	CHECK_EQ(forget(eo.nodeid, 1), NO_REPLY);
	free(data);
}

static void test_write_scattered(void)
{
	enum { LEN = 3000 };
	uint8_t data[LEN], back[LEN];
	struct fuse_entry_out eo;
	uint64_t fh;
	char p[256];

	for (size_t i = 0; i < LEN; i++)
		data[i] = pattern(i + 3);
	CHECK_EQ(create(FUSE_ROOT_ID, "writeme", 0644, 0, 0, &eo, &fh), 0);
	struct fuse_write_in wi = { .fh = fh, .offset = 100, .size = LEN };
	frq_start(&q, FUSE_WRITE, eo.nodeid);
	frq_put(&q, &wi, sizeof(wi));
	frq_put(&q, data, LEN);
	frq_end(&q);
	/* Split the request into 13-byte pieces, header included. */
	struct iovec in[1024];
	unsigned cnt = 0;
	for (size_t off = 0; off < q.len && cnt < ARRAY_SIZE(in); off += 13, cnt++)
		in[cnt] = (struct iovec){ q.buf + off, MIN((size_t)13, q.len - off) };
	struct iovec out = { outbuf, sizeof(outbuf) };
	CHECK_EQ(call_iov(in, cnt, &out, 1, q.unique, NULL), 0);
	CHECK_EQ(((struct fuse_write_out *)reply_payload())->size, LEN);
	host_path(p, sizeof(p), "writeme");
	int fd = open(p, O_RDONLY);
	CHECK_EQ(pread(fd, back, LEN, 100), LEN);
	CHECK(!memcmp(back, data, LEN));
	close(fd);

	/* A write claiming more data than it carries. */
	wi.size = 100;
	frq_start(&q, FUSE_WRITE, eo.nodeid);
	frq_put(&q, &wi, sizeof(wi));
	frq_put(&q, data, 50);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EINVAL);
	/* A write at an offset beyond what a file can have. */
	wi = (struct fuse_write_in){ .fh = fh, .offset = UINT64_MAX - 10, .size = 50 };
	frq_start(&q, FUSE_WRITE, eo.nodeid);
	frq_put(&q, &wi, sizeof(wi));
	frq_put(&q, data, 50);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EINVAL);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	CHECK_EQ(forget(eo.nodeid, 1), NO_REPLY);
}

/*
 * The extension-length check: total_extlen * 8 bytes at the end of the
 * request are extensions, never arguments. Extensions longer than what
 * follows the header are refused with -EINVAL (without the check the
 * payload length would wrap and this WRITE would be taken whole), and
 * extensions that fit are cut off the arguments (a WRITE whose data would
 * reach into them is refused; one that stops short writes only its data).
 */
static void test_extension_length(void)
{
	struct fuse_entry_out eo;
	uint64_t fh;
	char p[256], back[16];
	static const char data[16] = "0123456789abcdef";

	CHECK_EQ(create(FUSE_ROOT_ID, "ext", 0644, 0, 0, &eo, &fh), 0);
	struct fuse_write_in wi = { .fh = fh, .offset = 0, .size = 8 };
	/* 40 + 8 bytes after the header, 56 claimed as extensions. */
	frq_start(&q, FUSE_WRITE, eo.nodeid);
	frq_put(&q, &wi, sizeof(wi));
	frq_put(&q, data, 8);
	frq_extlen(&q, 7);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EINVAL);
	/* All of the payload claimed: refused too (no room for the args). */
	frq_extlen(&q, 6);
	CHECK_EQ(call(&q, NULL), -EINVAL);
	/* 16 bytes follow the arguments, the last 8 an extension: a WRITE of
	 * 16 would read the extension as data. */
	wi.size = 16;
	frq_start(&q, FUSE_WRITE, eo.nodeid);
	frq_put(&q, &wi, sizeof(wi));
	frq_put(&q, data, 16);
	frq_extlen(&q, 1);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EINVAL);
	/* The same with size 8: the data only. */
	wi.size = 8;
	memcpy(q.buf + sizeof(struct fuse_in_header), &wi, sizeof(wi));
	CHECK_EQ(call(&q, NULL), 0);
	CHECK_EQ(((struct fuse_write_out *)reply_payload())->size, 8);
	host_path(p, sizeof(p), "ext");
	int fd = open(p, O_RDONLY);
	CHECK_EQ(pread(fd, back, sizeof(back), 0), 8);
	CHECK(!memcmp(back, data, 8));
	close(fd);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	CHECK_EQ(forget(eo.nodeid, 1), NO_REPLY);
}

/* A reply sink that records what it was asked to send, or refuses. */
struct fake_sink {
	struct fuse_reply_sink sink;
	int fail;                  /* -errno to return, 0 to "send" */
	unsigned calls;
	uint64_t unique, off;
	size_t len;
	uint8_t data[8192];
	ssize_t sent;
};

static ssize_t fake_reply_fd(struct fuse_reply_sink *sink, uint64_t unique, int fd, uint64_t off,
			     size_t len)
{
	struct fake_sink *fs = (struct fake_sink *)sink;

	fs->calls++;
	fs->unique = unique;
	fs->off = off;
	fs->len = len;
	if (fs->fail)
		return fs->fail;
	fs->sent = pread(fd, fs->data, MIN(len, sizeof(fs->data)), (off_t)off);
	return fs->sent;
}

static void test_reply_sink(void)
{
	enum { LEN = 6000 };
	uint8_t data[LEN];
	struct fuse_entry_out eo;
	struct fake_sink fs = { .sink = { .reply_fd = fake_reply_fd, .min_len = 1024 } };
	uint64_t fh;
	size_t n;

	for (size_t i = 0; i < LEN; i++)
		data[i] = pattern(i + 11);
	host_write("sinkme", data, LEN);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "sinkme", &eo), 0);
	CHECK_EQ(do_open(FUSE_OPEN, eo.nodeid, O_RDONLY, &fh), 0);
	struct iovec out = { outbuf, sizeof(outbuf) };

	/* Large enough: the sink sends it, nothing is left for the caller. */
	read_req(fh, 100, 4096);
	struct iovec in = { q.buf, q.len };
	n = fuse_server_handle_sink(srv, &in, 1, &out, 1, &fs.sink);
	CHECK_EQ(n, 0);
	CHECK_EQ(fs.calls, 1);
	CHECK_EQ(fs.unique, q.unique);
	CHECK_EQ(fs.off, 100);
	CHECK_EQ(fs.len, 4096);
	CHECK_EQ(fs.sent, 4096);
	CHECK(!memcmp(fs.data, data + 100, 4096));
	/* Never asked for more than the reply buffers could hold. */
	uint8_t small[16 + 2000];
	struct iovec sout = { small, sizeof(small) };
	read_req(fh, 0, 4096);
	in = (struct iovec){ q.buf, q.len };
	CHECK_EQ(fuse_server_handle_sink(srv, &in, 1, &sout, 1, &fs.sink), 0);
	CHECK_EQ(fs.len, 2000);
	/* Below min_len: the ordinary reply. */
	read_req(fh, 0, 100);
	in = (struct iovec){ q.buf, q.len };
	CHECK_EQ(call_iov(&in, 1, &out, 1, q.unique, &n), 0);
	CHECK_EQ(n, 16 + 100);
	CHECK_EQ(fs.calls, 2);
	/* The sink refuses: the server replies the ordinary way. */
	fs.fail = -EIO;
	read_req(fh, 10, 4096);
	in = (struct iovec){ q.buf, q.len };
	n = fuse_server_handle_sink(srv, &in, 1, &out, 1, &fs.sink);
	CHECK_EQ(fs.calls, 3);
	CHECK_EQ(n, 16 + 4096);
	CHECK(!memcmp(outbuf + 16, data + 10, 4096));
	/* A forged handle never reaches the sink. */
	fs.fail = 0;
	read_req(fh + 1, 0, 4096);
	in = (struct iovec){ q.buf, q.len };
	n = fuse_server_handle_sink(srv, &in, 1, &out, 1, &fs.sink);
	CHECK_EQ(fs.calls, 3);
	CHECK_EQ(n, 16);
	CHECK_EQ(((struct fuse_out_header *)outbuf)->error, -EBADF);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	CHECK_EQ(forget(eo.nodeid, 1), NO_REPLY);
}

/* --- passthrough: backing ids handed to the transport ------------------------- */

struct fake_backing {
	struct fuse_reply_sink sink;
	int opens, closes, fail;
	int32_t next_id, closed_id;
};

static int fake_backing_open(struct fuse_reply_sink *sink, int fd, int32_t *id)
{
	struct fake_backing *fb = (struct fake_backing *)sink;

	CHECK(fcntl(fd, F_GETFD) >= 0);   /* a live descriptor of the file */
	if (fb->fail)
		return fb->fail;
	fb->opens++;
	*id = fb->next_id++;
	return 0;
}

static void fake_backing_close(struct fuse_reply_sink *sink, int32_t id)
{
	struct fake_backing *fb = (struct fake_backing *)sink;

	fb->closes++;
	fb->closed_id = id;
}

/* INIT offering everything, flags2 included when @ext. */
static int init_ext(bool ext, struct fuse_init_out *out)
{
	struct fuse_init_in in = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION,
				   .max_readahead = 1 << 20, .flags = 0xffffffffu };

	if (!ext)
		in.flags &= ~FUSE_INIT_EXT;
	in.flags2 = 0xffffffffu;
	frq_start(&q, FUSE_INIT, 0);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	int rc = call(&q, NULL);
	if (rc == 0)
		memcpy(out, reply_payload(), sizeof(*out));
	return rc;
}

/* OPEN (or RELEASE) through @fb's sink; the open reply in *@oo. */
static size_t via_sink(struct fake_backing *fb)
{
	struct iovec in = { q.buf, q.len }, out = { outbuf, sizeof(outbuf) };

	return fuse_server_handle_sink(srv, &in, 1, &out, 1, &fb->sink);
}

static int open_sink(struct fake_backing *fb, uint64_t nodeid, struct fuse_open_out *oo)
{
	struct fuse_open_in in = { .flags = O_RDWR };

	frq_start(&q, FUSE_OPEN, nodeid);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	size_t n = via_sink(fb);
	struct fuse_out_header *oh = (struct fuse_out_header *)outbuf;
	CHECK(n >= sizeof(*oh));
	if (oh->error == 0) {
		CHECK_EQ(n, sizeof(*oh) + sizeof(*oo));
		memcpy(oo, reply_payload(), sizeof(*oo));
	}
	return oh->error;
}

static void release_sink(struct fake_backing *fb, uint64_t nodeid, uint64_t fh)
{
	struct fuse_release_in in = { .fh = fh };

	frq_start(&q, FUSE_RELEASE, nodeid);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	CHECK_EQ(via_sink(fb), sizeof(struct fuse_out_header));
}

static void server_with(enum fuse_cache_policy cache, uint64_t extra)
{
	struct fuse_server_opts o = { .cache = cache, .extra_init_flags = extra };

	fuse_server_free(srv);
	srv = fuse_server_new(be, &o);
	CHECK(srv != NULL);
}

static void test_passthrough(void)
{
	struct fake_backing fb = { .sink = { .backing_open = fake_backing_open,
					     .backing_close = fake_backing_close },
				   .next_id = 7 };
	struct fuse_server_counters c;
	struct fuse_init_out init;
	struct fuse_entry_out a, b;
	struct fuse_open_out o1, o2, o3;

	host_write("pt-a", "a", 1);
	host_write("pt-b", "b", 1);
	/* Offered in flags2 (bit 37), taken with a stack depth of 1. */
	server_with(FUSE_CACHE_AUTO, FUSE_PASSTHROUGH);
	CHECK_EQ(init_ext(true, &init), 0);
	CHECK(init.flags & FUSE_INIT_EXT);
	CHECK(init.flags2 & (uint32_t)(FUSE_PASSTHROUGH >> 32));
	CHECK_EQ(FUSE_INIT_OUT_MAX_STACK_DEPTH(&init), 1);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "pt-a", &a), 0);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "pt-b", &b), 0);
	/* Two opens of one node share one id; another node gets its own. */
	CHECK_EQ(open_sink(&fb, a.nodeid, &o1), 0);
	CHECK_EQ(open_sink(&fb, a.nodeid, &o2), 0);
	CHECK_EQ(open_sink(&fb, b.nodeid, &o3), 0);
	CHECK(o1.open_flags & FOPEN_PASSTHROUGH);
	CHECK(!(o1.open_flags & (FOPEN_KEEP_CACHE | FOPEN_DIRECT_IO)));
	CHECK_EQ((int32_t)FUSE_OPEN_OUT_BACKING_ID(&o1), 7);
	CHECK_EQ((int32_t)FUSE_OPEN_OUT_BACKING_ID(&o2), 7);
	CHECK_EQ((int32_t)FUSE_OPEN_OUT_BACKING_ID(&o3), 8);
	CHECK_EQ(fb.opens, 2);
	/* The id is closed with the last handle that used it, once. */
	release_sink(&fb, a.nodeid, o1.fh);
	CHECK_EQ(fb.closes, 0);
	release_sink(&fb, a.nodeid, o2.fh);
	CHECK_EQ(fb.closes, 1);
	CHECK_EQ(fb.closed_id, 7);
	release_sink(&fb, a.nodeid, o2.fh);      /* again: unknown, ignored */
	CHECK_EQ(fb.closes, 1);
	/* The kernel refuses the descriptor: a cached open, counted. */
	fb.fail = -EPERM;
	CHECK_EQ(open_sink(&fb, a.nodeid, &o1), 0);
	CHECK(!(o1.open_flags & FOPEN_PASSTHROUGH));
	CHECK_EQ(FUSE_OPEN_OUT_BACKING_ID(&o1), 0);
	release_sink(&fb, a.nodeid, o1.fh);
	fb.fail = 0;
	/* Without a sink (virtio-fs) nothing changes. */
	uint64_t fh;
	CHECK_EQ(do_open(FUSE_OPEN, a.nodeid, O_RDONLY, &fh), 0);
	CHECK(!(((struct fuse_open_out *)reply_payload())->open_flags & FOPEN_PASSTHROUGH));
	CHECK_EQ(do_release(FUSE_RELEASE, a.nodeid, fh), 0);
	fuse_server_get_counters(srv, &c);
	CHECK_EQ(c.opens_passthrough, 3);
	CHECK_EQ(c.passthrough_failed, 1);
	/* DESTROY forgets the ids without closing them (the session is gone). */
	frq_start(&q, FUSE_DESTROY, 0);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	CHECK_EQ(fb.closes, 1);

	/* No INIT_EXT: no flags2, no passthrough. */
	server_with(FUSE_CACHE_AUTO, FUSE_PASSTHROUGH);
	CHECK_EQ(init_ext(false, &init), 0);
	CHECK(!(init.flags & FUSE_INIT_EXT));
	CHECK_EQ(init.flags2, 0);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "pt-a", &a), 0);
	CHECK_EQ(open_sink(&fb, a.nodeid, &o1), 0);
	CHECK(!(o1.open_flags & FOPEN_PASSTHROUGH));
	release_sink(&fb, a.nodeid, o1.fh);
	/* --cache none never asks for it; nor does a server not told to. */
	server_with(FUSE_CACHE_NONE, FUSE_PASSTHROUGH);
	CHECK_EQ(init_ext(true, &init), 0);
	CHECK(!(init.flags2 & (uint32_t)(FUSE_PASSTHROUGH >> 32)));
	server_with(FUSE_CACHE_AUTO, 0);
	CHECK_EQ(init_ext(true, &init), 0);
	CHECK(!(init.flags2 & (uint32_t)(FUSE_PASSTHROUGH >> 32)));
	CHECK_EQ(fb.opens, 2);
	restart(0);
}

/* --- set-id bits cleared by the server (HANDLE_KILLPRIV_V2) ------------------- */

static mode_t host_mode(const char *name)
{
	char p[256];
	struct stat st;

	host_path(p, sizeof(p), name);
	CHECK_EQ(stat(p, &st), 0);
	return st.st_mode & 07777;
}

static void host_chmod(const char *name, mode_t mode)
{
	char p[256];

	host_path(p, sizeof(p), name);
	CHECK_EQ(chmod(p, mode), 0);
}

static int write_flags(uint64_t nodeid, uint64_t fh, uint32_t write_flags)
{
	struct fuse_write_in wi = { .fh = fh, .size = 1, .write_flags = write_flags };

	frq_start(&q, FUSE_WRITE, nodeid);
	frq_put(&q, &wi, sizeof(wi));
	frq_put(&q, "z", 1);
	frq_end(&q);
	return call(&q, NULL);
}

static void test_killpriv(void)
{
	struct fuse_init_out init;
	struct fuse_entry_out eo;
	uint64_t fh;

	/* Cached modes leave it to the client (its cached mode would lie). */
	server_with(FUSE_CACHE_AUTO, 0);
	CHECK_EQ(init_ext(true, &init), 0);
	CHECK(!(init.flags & FUSE_HANDLE_KILLPRIV_V2));
	CHECK(!(init.flags & FUSE_ATOMIC_O_TRUNC));
	server_with(FUSE_CACHE_NONE, 0);
	CHECK_EQ(init_ext(true, &init), 0);
	CHECK(init.flags & FUSE_HANDLE_KILLPRIV_V2);
	/* The server clears on OPEN's truncation: it may truncate there. */
	CHECK(init.flags & FUSE_ATOMIC_O_TRUNC);

	host_write("kp", "a", 1);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "kp", &eo), 0);
	CHECK_EQ(do_open(FUSE_OPEN, eo.nodeid, O_RDWR, &fh), 0);
	/* Without the flag (a caller with CAP_FSETID) the bits stay. */
	host_chmod("kp", 06777);
	CHECK_EQ(write_flags(eo.nodeid, fh, 0), 0);
	CHECK_EQ(host_mode("kp"), 06777);
	/* With it: suid goes, sgid goes when group-executable. */
	CHECK_EQ(write_flags(eo.nodeid, fh, FUSE_WRITE_KILL_SUIDGID), 0);
	CHECK_EQ(host_mode("kp"), 0777);
	host_chmod("kp", 06767);
	CHECK_EQ(write_flags(eo.nodeid, fh, FUSE_WRITE_KILL_SUIDGID), 0);
	CHECK_EQ(host_mode("kp"), 02767);
	/* Truncation asking for it. */
	host_chmod("kp", 04755);
	struct fuse_setattr_in sa = { .valid = FATTR_SIZE | FATTR_KILL_SUIDGID, .size = 0 };
	frq_start(&q, FUSE_SETATTR, eo.nodeid);
	frq_put(&q, &sa, sizeof(sa));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	CHECK_EQ(((struct fuse_attr_out *)reply_payload())->attr.mode & 07777, 0755);
	CHECK_EQ(host_mode("kp"), 0755);
	/* Open with O_TRUNC asking for it. */
	host_chmod("kp", 04755);
	struct fuse_open_in oi = { .flags = O_WRONLY | O_TRUNC,
				   .open_flags = FUSE_OPEN_KILL_SUIDGID };
	uint64_t fh2;
	frq_start(&q, FUSE_OPEN, eo.nodeid);
	frq_put(&q, &oi, sizeof(oi));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	fh2 = ((struct fuse_open_out *)reply_payload())->fh;
	CHECK_EQ(host_mode("kp"), 0755);
	/* A forged node id changes nothing and breaks nothing. */
	host_chmod("kp", 04755);
	CHECK_EQ(write_flags(eo.nodeid + 1000, fh, FUSE_WRITE_KILL_SUIDGID), 0);
	CHECK_EQ(host_mode("kp"), 04755);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh2), 0);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	restart(0);
}

/* --cache metadata: attributes and entries cached as auto does, file data
 * direct; no passthrough, no HANDLE_KILLPRIV_V2, and a direct write asking
 * for set-id bits to go is obeyed all the same. */
static void test_cache_metadata(void)
{
	struct fuse_init_out init;
	struct fuse_entry_out eo;
	uint64_t fh;
	enum fuse_cache_policy p;

	CHECK_EQ(fuse_cache_policy_parse("metadata", &p), 0);
	CHECK_EQ(p, FUSE_CACHE_METADATA);
	CHECK_EQ(fuse_cache_policy_parse("meta", &p), -EINVAL);
	server_with(FUSE_CACHE_METADATA, FUSE_PASSTHROUGH);
	CHECK_EQ(init_ext(true, &init), 0);
	CHECK(!(init.flags2 & (uint32_t)(FUSE_PASSTHROUGH >> 32)));
	CHECK(!(init.flags & FUSE_HANDLE_KILLPRIV_V2));
	CHECK(init.flags & FUSE_CACHE_SYMLINKS);
	host_write("md", "a", 1);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "md", &eo), 0);
	CHECK_EQ(eo.entry_valid, 1);
	CHECK_EQ(eo.attr_valid, 1);
	CHECK_EQ(do_open(FUSE_OPEN, eo.nodeid, O_RDWR, &fh), 0);
	uint32_t of = ((struct fuse_open_out *)reply_payload())->open_flags;
	CHECK(of & FOPEN_DIRECT_IO);
	CHECK(!(of & (FOPEN_KEEP_CACHE | FOPEN_PASSTHROUGH)));
	host_chmod("md", 04755);
	CHECK_EQ(write_flags(eo.nodeid, fh, FUSE_WRITE_KILL_SUIDGID), 0);
	CHECK_EQ(host_mode("md"), 0755);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	restart(0);
}

/* --- names and confinement ------------------------------------------------------ */

static void test_bad_names(void)
{
	char longname[300];

	CHECK_EQ(lookup(FUSE_ROOT_ID, "..", NULL), -EINVAL);
	CHECK_EQ(lookup(FUSE_ROOT_ID, ".", NULL), -EINVAL);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "", NULL), -EINVAL);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "../etc", NULL), -EINVAL);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "/etc", NULL), -EINVAL);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "a/b", NULL), -EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_EQ(lookup(FUSE_ROOT_ID, longname, NULL), -ENAMETOOLONG);
	/* A name without its NUL. */
	frq_start(&q, FUSE_LOOKUP, FUSE_ROOT_ID);
	frq_put(&q, "abc", 3);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EINVAL);
	/* Missing names get a cacheable negative entry (node id 0). */
	CHECK_EQ(lookup(FUSE_ROOT_ID, "no-such-file", NULL), 0);
	CHECK_EQ(((struct fuse_entry_out *)reply_payload())->nodeid, 0);
	/* RENAME with the second name missing. */
	struct fuse_rename_in ri = { .newdir = FUSE_ROOT_ID };
	frq_start(&q, FUSE_RENAME, FUSE_ROOT_ID);
	frq_put(&q, &ri, sizeof(ri));
	frq_str(&q, "x");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EINVAL);
	/* MKDIR of "..". */
	struct fuse_mkdir_in mi = { .mode = 0755 };
	frq_start(&q, FUSE_MKDIR, FUSE_ROOT_ID);
	frq_put(&q, &mi, sizeof(mi));
	frq_str(&q, "..");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EINVAL);
}

static void test_symlinks_not_followed(void)
{
	char p[300], canary[256];
	struct fuse_entry_out eo;
	uint64_t fh;

	/* A directory outside the share, and links to it from inside. */
	snprintf(canary, sizeof(canary), "%s/outside", tmpdir);
	mkdir(canary, 0755);
	host_path(p, sizeof(p), "abs-out");
	CHECK_EQ(symlink(canary, p), 0);
	host_path(p, sizeof(p), "rel-out");
	CHECK_EQ(symlink("../outside", p), 0);
	host_path(p, sizeof(p), "proc-out");
	CHECK_EQ(symlink("/proc/self/cwd", p), 0);

	const char *links[] = { "abs-out", "rel-out", "proc-out" };
	for (unsigned i = 0; i < ARRAY_SIZE(links); i++) {
		CHECK_EQ(lookup(FUSE_ROOT_ID, links[i], &eo), 0);
		CHECK(S_ISLNK(eo.attr.mode));
		/* Nothing can be looked up, opened or listed through it. */
		CHECK_EQ(lookup(eo.nodeid, "x", NULL), -ENOTDIR);
		CHECK_EQ(do_open(FUSE_OPEN, eo.nodeid, O_RDONLY, &fh), -EINVAL);
		CHECK_EQ(do_open(FUSE_OPENDIR, eo.nodeid, O_RDONLY, &fh), -ENOTDIR);
		struct fuse_mkdir_in mi = { .mode = 0755 };
		frq_start(&q, FUSE_MKDIR, eo.nodeid);
		frq_put(&q, &mi, sizeof(mi));
		frq_str(&q, "escaped");
		frq_end(&q);
		CHECK_EQ(call(&q, NULL), -ENOTDIR);
		CHECK_EQ(forget(eo.nodeid, 1), NO_REPLY);
	}
	/* Creating over a symlink does not follow it either. */
	CHECK_EQ(create(FUSE_ROOT_ID, "abs-out", 0644, 0, 0, NULL, &fh), -ELOOP);
	snprintf(p, sizeof(p), "%s/escaped", canary);
	CHECK(access(p, F_OK) != 0);
}

static void test_forged_ids(void)
{
	struct fuse_entry_out eo;
	uint64_t fh, dfh;
	size_t n;

	host_write("forged", "data", 4);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "forged", &eo), 0);
	/* Node ids that were never handed out. */
	CHECK_EQ(getattr(0, NULL), -ESTALE);
	CHECK_EQ(getattr(eo.nodeid + 1000, NULL), -ESTALE);
	CHECK_EQ(getattr(eo.nodeid ^ (1ull << 32), NULL), -ESTALE);
	CHECK_EQ(getattr(UINT64_MAX, NULL), -ESTALE);
	CHECK_EQ(lookup(0x4141414141414141ull, "forged", NULL), -ESTALE);
	/* File handles: made up, of the wrong kind, released. */
	CHECK_EQ(do_open(FUSE_OPEN, eo.nodeid, O_RDONLY, &fh), 0);
	CHECK_EQ(do_open(FUSE_OPENDIR, FUSE_ROOT_ID, O_RDONLY, &dfh), 0);
	read_req(fh + 1, 0, 10);
	CHECK_EQ(call(&q, NULL), -EBADF);
	read_req(fh ^ (1ull << 40), 0, 10);
	CHECK_EQ(call(&q, NULL), -EBADF);
	read_req(dfh, 0, 10);
	CHECK_EQ(call(&q, NULL), -EBADF);
	read_req(fh, 0, 10);
	CHECK_EQ(call(&q, &n), 0);
	CHECK_EQ(n, 16 + 4);
	CHECK_EQ(do_release(FUSE_RELEASEDIR, FUSE_ROOT_ID, fh), -EBADF);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), -EBADF);
	read_req(fh, 0, 10);
	CHECK_EQ(call(&q, NULL), -EBADF);
	/* A new open reuses the slot with another generation: the old id
	 * stays dead. */
	uint64_t fh2;
	CHECK_EQ(do_open(FUSE_OPEN, eo.nodeid, O_RDONLY, &fh2), 0);
	CHECK(fh2 != fh);
	read_req(fh, 0, 10);
	CHECK_EQ(call(&q, NULL), -EBADF);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh2), 0);
	CHECK_EQ(do_release(FUSE_RELEASEDIR, FUSE_ROOT_ID, dfh), 0);
	/* After the last forget the node id is dead too. */
	CHECK_EQ(forget(eo.nodeid, 1), NO_REPLY);
	CHECK_EQ(getattr(eo.nodeid, NULL), -ESTALE);
	/* LINK of a forged node into the share. */
	struct fuse_link_in li = { .oldnodeid = 0xdeadbeefull };
	frq_start(&q, FUSE_LINK, FUSE_ROOT_ID);
	frq_put(&q, &li, sizeof(li));
	frq_str(&q, "linked");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -ESTALE);
}

/* --- directories ---------------------------------------------------------------- */

/* Read the whole listing of @nodeid with replies of @size bytes; returns the
 * number of names seen (each must be a distinct one of the expected). */
static unsigned list_dir(uint64_t nodeid, bool plus, uint32_t size, unsigned nfiles, bool *seen)
{
	uint64_t fh, off = 0;
	unsigned names = 0, dots = 0;
	uint8_t *buf = malloc(1 << 16);

	CHECK_EQ(do_open(FUSE_OPENDIR, nodeid, O_RDONLY, &fh), 0);
	for (int rounds = 0; rounds < 100000; rounds++) {
		struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
		size_t n;
		frq_start(&q, plus ? FUSE_READDIRPLUS : FUSE_READDIR, nodeid);
		frq_put(&q, &in, sizeof(in));
		frq_end(&q);
		if (call(&q, &n) != 0)
			break;
		n -= 16;
		CHECK(n <= size);
		if (n == 0)
			break;
		memcpy(buf, reply_payload(), n);
		for (size_t pos = 0; pos < n;) {
			struct fuse_dirent *d;
			size_t rec;
			if (plus) {
				struct fuse_direntplus *dp = (struct fuse_direntplus *)(buf + pos);
				d = &dp->dirent;
				rec = FUSE_DIRENTPLUS_SIZE(dp);
				if (dp->entry_out.nodeid)
					forget(dp->entry_out.nodeid, 1);
			} else {
				d = (struct fuse_dirent *)(buf + pos);
				rec = FUSE_DIRENT_SIZE(d);
			}
			CHECK(pos + rec <= n);
			char name[256];
			memcpy(name, d->name, d->namelen);
			name[d->namelen] = '\0';
			unsigned idx;
			if (!strcmp(name, ".") || !strcmp(name, ".."))
				dots++;
			else if (sscanf(name, "f%u", &idx) == 1 && idx < nfiles && !seen[idx]) {
				seen[idx] = true;
				names++;
			} else {
				CHECK(!"unexpected or repeated name");
			}
			off = d->off;
			pos += rec;
		}
	}
	CHECK_EQ(dots, 2);
	CHECK_EQ(do_release(FUSE_RELEASEDIR, nodeid, fh), 0);
	free(buf);
	return names;
}

static void test_readdir_complete(void)
{
	enum { N = 3000 };
	struct fuse_entry_out eo;
	char p[256];
	static bool seen[N];

	host_path(p, sizeof(p), "big");
	mkdir(p, 0755);
	for (unsigned i = 0; i < N; i++) {
		snprintf(p, sizeof(p), "%s/big/f%u", rootdir, i);
		int fd = open(p, O_CREAT | O_WRONLY, 0644);
		close(fd);
	}
	CHECK_EQ(lookup(FUSE_ROOT_ID, "big", &eo), 0);
	const uint32_t sizes[] = { 4096, 300, 65536 };
	for (unsigned s = 0; s < ARRAY_SIZE(sizes); s++) {
		for (int plus = 0; plus < 2; plus++) {
			memset(seen, 0, sizeof(seen));
			CHECK_EQ(list_dir(eo.nodeid, plus, sizes[s], N, seen), N);
		}
	}
	/* A reply too small for any entry is empty, not an overflow. */
	uint64_t fh;
	size_t n;
	CHECK_EQ(do_open(FUSE_OPENDIR, eo.nodeid, O_RDONLY, &fh), 0);
	struct fuse_read_in in = { .fh = fh, .size = 20 };
	frq_start(&q, FUSE_READDIR, eo.nodeid);
	frq_put(&q, &in, sizeof(in));
	frq_end(&q);
	CHECK_EQ(call(&q, &n), 0);
	CHECK_EQ(n, 16);
	CHECK_EQ(do_release(FUSE_RELEASEDIR, eo.nodeid, fh), 0);
	/* Only the lookups of "big" itself remain counted. */
	struct passthrough_stats st;
	passthrough_get_stats(be, &st);
	CHECK(st.nodes < 10);
	CHECK_EQ(forget(eo.nodeid, 1), NO_REPLY);
}

/* --- the descriptor bound ---------------------------------------------------------- */

static void test_max_fds(void)
{
	enum { N = 300 };
	static uint64_t ids[N];
	struct passthrough_stats st;
	struct fuse_entry_out eo;
	char name[32];

	restart(16);
	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "fd%u", i);
		host_write(name, name, strlen(name));
		CHECK_EQ(lookup(FUSE_ROOT_ID, name, &eo), 0);
		ids[i] = eo.nodeid;
	}
	passthrough_get_stats(be, &st);
	CHECK(st.node_fds <= 16);
	CHECK(st.evictions >= N - 16);
	CHECK_EQ(st.nodes, N + 1);
	/* Every node still works: reopened from its handle. */
	for (unsigned i = 0; i < N; i++) {
		struct fuse_attr_out ao;
		uint64_t fh;
		size_t n;
		CHECK_EQ(getattr(ids[i], &ao), 0);
		CHECK(S_ISREG(ao.attr.mode));
		CHECK_EQ(do_open(FUSE_OPEN, ids[i], O_RDONLY, &fh), 0);
		read_req(fh, 0, 64);
		CHECK_EQ(call(&q, &n), 0);
		snprintf(name, sizeof(name), "fd%u", i);
		CHECK_EQ(n, 16 + strlen(name));
		CHECK(!memcmp(reply_payload(), name, strlen(name)));
		CHECK_EQ(do_release(FUSE_RELEASE, ids[i], fh), 0);
	}
	passthrough_get_stats(be, &st);
	CHECK(st.node_fds <= 16);
	CHECK(st.reopens >= N - 16);
	/* A file replaced on the host: the old node is stale, a new lookup
	 * finds the new file. */
	char p[256];
	host_path(p, sizeof(p), "fd0");
	unlink(p);
	host_write("fd0", "new", 3);
	struct fuse_attr_out ao;
	int rc = getattr(ids[0], &ao);
	CHECK(rc == -ESTALE || rc == 0);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "fd0", &eo), 0);
	CHECK_EQ(eo.attr.size, 3);
	restart(0);
}

/* --- ownership, modes, renames, xattrs ----------------------------------------------- */

static void *owner_and_mode(void *unused)
{
	struct fuse_entry_out eo;
	struct stat st;
	uint64_t fh;
	char p[256];

	CHECK_EQ(create(FUSE_ROOT_ID, "owned", 0666, 1234, 5678, &eo, &fh), 0);
	host_path(p, sizeof(p), "owned");
	CHECK_EQ(stat(p, &st), 0);
	CHECK_EQ(st.st_mode & 07777, 0666);
	if (geteuid() == 0) {
		CHECK_EQ(st.st_uid, 1234);
		CHECK_EQ(st.st_gid, 5678);
		CHECK_EQ(eo.attr.uid, 1234);
	}
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	/* MKDIR and SYMLINK too. */
	struct fuse_mkdir_in mi = { .mode = 0775 };
	frq_start(&q, FUSE_MKDIR, FUSE_ROOT_ID);
	frq_ids(&q, 4321, 8765);
	frq_put(&q, &mi, sizeof(mi));
	frq_str(&q, "owned-dir");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	host_path(p, sizeof(p), "owned-dir");
	CHECK_EQ(stat(p, &st), 0);
	CHECK_EQ(st.st_mode & 07777, 0775);
	if (geteuid() == 0)
		CHECK_EQ(st.st_uid, 4321);
	/* The server's own ids are back after the call. */
	CHECK_EQ(setfsuid((uid_t)-1), geteuid());
	/* SETATTR mode, owner and size. */
	struct fuse_setattr_in si = { .valid = FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE,
				      .mode = S_IFREG | 0600, .uid = 42, .gid = 43, .size = 12345 };
	frq_start(&q, FUSE_SETATTR, eo.nodeid);
	frq_put(&q, &si, sizeof(si));
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	struct fuse_attr_out *ao = reply_payload();
	CHECK_EQ(ao->attr.mode & 07777, 0600);
	CHECK_EQ(ao->attr.size, 12345);
	host_path(p, sizeof(p), "owned");
	CHECK_EQ(stat(p, &st), 0);
	CHECK_EQ(st.st_size, 12345);
	CHECK_EQ(st.st_uid, 42);
	/* Device nodes are refused, FIFOs are fine. */
	struct fuse_mknod_in mk = { .mode = S_IFBLK | 0600, .rdev = (8 << 8) | 0 };
	frq_start(&q, FUSE_MKNOD, FUSE_ROOT_ID);
	frq_put(&q, &mk, sizeof(mk));
	frq_str(&q, "disk");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EPERM);
	mk.mode = S_IFIFO | 0600;
	frq_start(&q, FUSE_MKNOD, FUSE_ROOT_ID);
	frq_put(&q, &mk, sizeof(mk));
	frq_str(&q, "fifo");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	/* Opening the FIFO through the server is refused (it would block). */
	uint64_t ffh;
	CHECK_EQ(do_open(FUSE_OPEN, ((struct fuse_entry_out *)reply_payload())->nodeid,
			 O_RDONLY, &ffh), -EINVAL);
	/* CREATE over the FIFO does not block either. */
	CHECK_EQ(create(FUSE_ROOT_ID, "fifo", 0644, 0, 0, NULL, &ffh), -EEXIST);
	return NULL;
}

/* On a thread new to the server, started under a umask that must not
 * matter: the client's mode is final. */
static void test_create_owner_and_mode(void)
{
	pthread_t t;
	mode_t old = umask(022);

	pthread_create(&t, NULL, owner_and_mode, NULL);
	pthread_join(t, NULL);
	umask(old);
}

/* TMPFILE: a file with no name (link count 0, nothing new in the shared
 * directory) until a LINK names it; the name the request carries is the
 * client's "/" placeholder, and taken. */
static void test_tmpfile(void)
{
	struct fuse_create_in in = { .flags = O_WRONLY, .mode = 0640 };
	struct fuse_link_in li;
	struct fuse_entry_out eo;
	struct stat st;
	char p[256];

	frq_start(&q, FUSE_TMPFILE, FUSE_ROOT_ID);
	frq_put(&q, &in, sizeof(in));
	frq_str(&q, "/");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	memcpy(&eo, reply_payload(), sizeof(eo));
	uint64_t fh = ((struct fuse_open_out *)((uint8_t *)reply_payload() + sizeof(eo)))->fh;
	CHECK_EQ(eo.attr.nlink, 0u);
	CHECK_EQ(eo.attr.mode, S_IFREG | 0640u);
	li.oldnodeid = eo.nodeid;
	frq_start(&q, FUSE_LINK, FUSE_ROOT_ID);
	frq_put(&q, &li, sizeof(li));
	frq_str(&q, "named-tmpfile");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	host_path(p, sizeof(p), "named-tmpfile");
	CHECK_EQ(stat(p, &st), 0);
	CHECK_EQ(st.st_nlink, 1u);
	CHECK_EQ(do_release(FUSE_RELEASE, eo.nodeid, fh), 0);
	/* A file as the directory: refused as open(2) refuses it. */
	frq_start(&q, FUSE_TMPFILE, eo.nodeid);
	frq_put(&q, &in, sizeof(in));
	frq_str(&q, "/");
	frq_end(&q);
	CHECK(call(&q, NULL) < 0);
	CHECK_EQ(forget(eo.nodeid, 2), NO_REPLY);
	unlink(p);
}

static int rename2(const char *a, const char *b, uint32_t flags)
{
	struct fuse_rename2_in in = { .newdir = FUSE_ROOT_ID, .flags = flags };

	frq_start(&q, FUSE_RENAME2, FUSE_ROOT_ID);
	frq_put(&q, &in, sizeof(in));
	frq_str(&q, a);
	frq_str(&q, b);
	frq_end(&q);
	return call(&q, NULL);
}

static void test_rename2(void)
{
	char p[256], buf[8] = { 0 };

	host_write("ra", "A", 1);
	host_write("rb", "B", 1);
	CHECK_EQ(rename2("ra", "rb", RENAME_NOREPLACE), -EEXIST);
	CHECK_EQ(rename2("ra", "rb", RENAME_EXCHANGE), 0);
	host_path(p, sizeof(p), "ra");
	int fd = open(p, O_RDONLY);
	CHECK_EQ(read(fd, buf, sizeof(buf)), 1);
	CHECK_EQ(buf[0], 'B');
	close(fd);
	CHECK_EQ(rename2("ra", "rb", RENAME_EXCHANGE | RENAME_NOREPLACE), -EINVAL);
	CHECK_EQ(rename2("ra", "rb", RENAME_WHITEOUT), -EINVAL);
	CHECK_EQ(rename2("ra", "rc", 0), 0);
	CHECK_EQ(rename2("ra", "rc", 0), -ENOENT);
}

static int setxattr_req(const char *name, const void *val, uint32_t size, uint32_t flags)
{
	struct { uint32_t size, flags; } in = { size, flags };

	frq_start(&q, FUSE_SETXATTR, FUSE_ROOT_ID);
	frq_put(&q, &in, sizeof(in));
	frq_str(&q, name);
	frq_put(&q, val, size);
	frq_end(&q);
	return call(&q, NULL);
}

static int getxattr_req(const char *name, uint32_t size, size_t *n)
{
	struct fuse_getxattr_in in = { .size = size };

	frq_start(&q, FUSE_GETXATTR, FUSE_ROOT_ID);
	frq_put(&q, &in, sizeof(in));
	frq_str(&q, name);
	frq_end(&q);
	return call(&q, n);
}

static void test_xattrs(void)
{
	size_t n;
	static char big[20000];

	CHECK_EQ(setxattr_req("user.kvmini", "value", 5, 0), 0);
	CHECK_EQ(setxattr_req("user.kvmini", "value", 5, XATTR_CREATE), -EEXIST);
	CHECK_EQ(setxattr_req("trusted.x", "v", 1, 0), -EOPNOTSUPP);
	CHECK_EQ(setxattr_req("security.capability", "v", 1, 0), -EOPNOTSUPP);
	CHECK_EQ(getxattr_req("user.kvmini", 0, &n), 0);
	CHECK_EQ(((struct fuse_getxattr_out *)reply_payload())->size, 5);
	CHECK_EQ(getxattr_req("user.kvmini", 64, &n), 0);
	CHECK_EQ(n, 16 + 5);
	CHECK(!memcmp(reply_payload(), "value", 5));
	CHECK_EQ(getxattr_req("user.kvmini", 3, &n), -ERANGE);
	CHECK_EQ(getxattr_req("user.none", 64, &n), -ENODATA);
	/* A value larger than the argument buffer goes through the heap. */
	memset(big, 'x', sizeof(big));
	int rc = setxattr_req("user.big", big, sizeof(big), 0);
	CHECK(rc == 0 || rc == -ENOSPC || rc == -E2BIG);
	/* The size claims more value than the payload carries. */
	struct { uint32_t size, flags; } in = { 100, 0 };
	frq_start(&q, FUSE_SETXATTR, FUSE_ROOT_ID);
	frq_put(&q, &in, sizeof(in));
	frq_str(&q, "user.short");
	frq_put(&q, "abc", 3);
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), -EINVAL);
	/* The list holds user.* only. */
	struct fuse_getxattr_in li = { .size = 4096 };
	frq_start(&q, FUSE_LISTXATTR, FUSE_ROOT_ID);
	frq_put(&q, &li, sizeof(li));
	frq_end(&q);
	CHECK_EQ(call(&q, &n), 0);
	CHECK(memmem(reply_payload(), n - 16, "user.kvmini", 12) != NULL);
	for (size_t i = 16; i < n;) {
		const char *name = (const char *)outbuf + i;
		CHECK(!strncmp(name, "user.", 5));
		i += strlen(name) + 1;
	}
	frq_start(&q, FUSE_REMOVEXATTR, FUSE_ROOT_ID);
	frq_str(&q, "user.kvmini");
	frq_end(&q);
	CHECK_EQ(call(&q, NULL), 0);
	CHECK_EQ(getxattr_req("user.kvmini", 64, &n), -ENODATA);
}

/* --- concurrency ----------------------------------------------------------------------- */

struct worker_arg {
	unsigned id;
	unsigned errors;
};

/* Each thread does its own lookups and forgets of shared names and checks
 * each reply: the tables must stay consistent under contention. */
static void *hammer(void *p)
{
	struct worker_arg *a = p;
	static __thread uint8_t buf[4096], out[4096];

	for (unsigned i = 0; i < 2000; i++) {
		char name[16];
		snprintf(name, sizeof(name), "fd%u", (i * 7 + a->id) % 50);
		struct fuse_in_header h = { .opcode = FUSE_LOOKUP, .unique = i + 1, .nodeid = 1 };
		size_t len = sizeof(h) + strlen(name) + 1;
		h.len = (uint32_t)len;
		memcpy(buf, &h, sizeof(h));
		memcpy(buf + sizeof(h), name, strlen(name) + 1);
		struct iovec in = { buf, len }, o = { out, sizeof(out) };
		size_t n = fuse_server_handle(srv, &in, 1, &o, 1);
		struct fuse_out_header oh;
		memcpy(&oh, out, sizeof(oh));
		struct fuse_entry_out eo;
		memcpy(&eo, out + sizeof(oh), sizeof(eo));
		if (n != sizeof(oh) + sizeof(eo) || oh.error || oh.unique != i + 1 || !eo.nodeid) {
			a->errors++;
			continue;
		}
		struct { struct fuse_in_header h; struct fuse_forget_in f; } fg = {
			.h = { .len = sizeof(fg), .opcode = FUSE_FORGET, .nodeid = eo.nodeid },
			.f = { .nlookup = 1 },
		};
		in = (struct iovec){ &fg, sizeof(fg) };
		if (fuse_server_handle(srv, &in, 1, &o, 1) != 0)
			a->errors++;
	}
	return NULL;
}

static void test_concurrent(void)
{
	pthread_t t[4];
	struct worker_arg args[4];
	struct passthrough_stats st;

	restart(8);   /* a small bound: evictions race with lookups too */
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct worker_arg){ .id = i };
		pthread_create(&t[i], NULL, hammer, &args[i]);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(args[i].errors, 0);
	}
	passthrough_get_stats(be, &st);
	CHECK_EQ(st.nodes, 1);   /* every lookup was forgotten */
	restart(0);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvmini-fuse-unit.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(rootdir, sizeof(rootdir), "%s/share", tmpdir);
	mkdir(rootdir, 0755);
	be = make_backend(0);
	srv = be ? fuse_server_new(be, NULL) : NULL;
	if (!srv) {
		printf("FAIL: setup\n");
		return 1;
	}

	RUN_TEST(test_init_negotiation);
	RUN_TEST(test_destroy_resets);
	RUN_TEST(test_short_requests);
	RUN_TEST(test_request_cap);
	RUN_TEST(test_unknown_opcode);
	RUN_TEST(test_missing_backend_ops);
	RUN_TEST(test_no_reply_ops);
	RUN_TEST(test_read_small_buffers);
	RUN_TEST(test_write_scattered);
	RUN_TEST(test_extension_length);
	RUN_TEST(test_reply_sink);
	RUN_TEST(test_passthrough);
	RUN_TEST(test_killpriv);
	RUN_TEST(test_cache_metadata);
	RUN_TEST(test_bad_names);
	RUN_TEST(test_symlinks_not_followed);
	RUN_TEST(test_forged_ids);
	RUN_TEST(test_readdir_complete);
	RUN_TEST(test_max_fds);
	RUN_TEST(test_create_owner_and_mode);
	RUN_TEST(test_rename2);
	RUN_TEST(test_tmpfile);
	RUN_TEST(test_xattrs);
	RUN_TEST(test_concurrent);

	fuse_server_free(srv);
	fs_backend_destroy(be);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return CHECK_DONE();
}
