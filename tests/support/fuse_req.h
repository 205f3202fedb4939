/*
 * Building FUSE requests in tests: a header and its argument parts, laid
 * out as a client sends them, in a buffer the caller owns. The unit tests
 * of the FUSE server, the virtio-fs device and the host watcher build
 * their requests with it, so a request means the same in each.
 */
#ifndef KVMINI_TESTS_FUSE_REQ_H
#define KVMINI_TESTS_FUSE_REQ_H

#include <stddef.h>
#include <stdint.h>
#include <linux/fuse.h>

struct frq {
	uint8_t *buf;            /* the caller's, 8-byte aligned */
	size_t cap;
	size_t len;              /* built so far */
	uint64_t unique;         /* of the request being built */
	uint64_t last_unique;    /* frq_start hands out last_unique + 1 */
};

/* Start a request: a header with a fresh unique id, uid, gid and pid 0. */
void frq_start(struct frq *q, uint32_t opcode, uint64_t nodeid);
/* Append @n bytes of arguments; a request past @cap aborts the test. */
void frq_put(struct frq *q, const void *p, size_t n);
/* Append a NUL-terminated name. */
void frq_str(struct frq *q, const char *s);
/* The header being built, for the fields tests vary. */
struct fuse_in_header *frq_hdr(struct frq *q);
void frq_ids(struct frq *q, uint32_t uid, uint32_t gid);
/* Claim the last @units * 8 bytes as extensions (total_extlen). */
void frq_extlen(struct frq *q, uint16_t units);
/* Set the header's length to what was built; returns it. */
uint32_t frq_end(struct frq *q);

/* The common case in one call: header and up to two parts (NULL/0 for
 * none). Returns the length. */
uint32_t frq_build(struct frq *q, uint32_t opcode, uint64_t nodeid, const void *a1, size_t l1,
		   const void *a2, size_t l2);

#endif
