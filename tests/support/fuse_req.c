/*
 * FUSE request building for tests: see fuse_req.h.
 */
#include "fuse_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fuse_in_header *frq_hdr(struct frq *q)
{
	return (struct fuse_in_header *)(void *)q->buf;
}

void frq_start(struct frq *q, uint32_t opcode, uint64_t nodeid)
{
	struct fuse_in_header h = { .opcode = opcode, .unique = ++q->last_unique,
				    .nodeid = nodeid };

	q->len = 0;
	q->unique = h.unique;
	frq_put(q, &h, sizeof(h));
}

void frq_put(struct frq *q, const void *p, size_t n)
{
	if (n > q->cap - q->len) {
		fprintf(stderr, "frq_put: request over %zu bytes\n", q->cap);
		abort();
	}
	if (n)
		memcpy(q->buf + q->len, p, n);
	q->len += n;
}

void frq_str(struct frq *q, const char *s)
{
	frq_put(q, s, strlen(s) + 1);
}

void frq_ids(struct frq *q, uint32_t uid, uint32_t gid)
{
	frq_hdr(q)->uid = uid;
	frq_hdr(q)->gid = gid;
}

void frq_extlen(struct frq *q, uint16_t units)
{
	frq_hdr(q)->total_extlen = units;
}

uint32_t frq_end(struct frq *q)
{
	frq_hdr(q)->len = (uint32_t)q->len;
	return (uint32_t)q->len;
}

uint32_t frq_build(struct frq *q, uint32_t opcode, uint64_t nodeid, const void *a1, size_t l1,
		   const void *a2, size_t l2)
{
	frq_start(q, opcode, nodeid);
	frq_put(q, a1, l1);
	frq_put(q, a2, l2);
	return frq_end(q);
}
