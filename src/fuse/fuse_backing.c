/*
 * FUSE passthrough backing ids: two chained hash tables under one mutex,
 * nodes (node id -> backing id, count of handles) and handles (file handle
 * -> its node).
 */
#include "fuse/fuse_backing.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define BUCKETS 1024u

struct backing_node {
	uint64_t nodeid;
	int32_t id;
	unsigned handles;
	struct backing_node *next;
};

struct backing_handle {
	uint64_t fh;
	struct backing_node *node;
	struct backing_handle *next;
};

struct fuse_backing_table {
	pthread_mutex_t lock;
	/* Both protected by @lock. */
	struct backing_node *nodes[BUCKETS];
	struct backing_handle *handles[BUCKETS];
	unsigned count;
};

static unsigned bucket(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (unsigned)(key & (BUCKETS - 1));
}

struct fuse_backing_table *fuse_backing_new(void)
{
	struct fuse_backing_table *t = calloc(1, sizeof(*t));

	if (t && pthread_mutex_init(&t->lock, NULL)) {
		free(t);
		return NULL;
	}
	return t;
}

void fuse_backing_free(struct fuse_backing_table *t)
{
	if (!t)
		return;
	fuse_backing_clear(t);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct backing_node *node_find(struct fuse_backing_table *t, uint64_t nodeid)
{
	struct backing_node *n = t->nodes[bucket(nodeid)];

	while (n && n->nodeid != nodeid)
		n = n->next;
	return n;
}

static struct backing_handle **handle_slot(struct fuse_backing_table *t, uint64_t fh)
{
	struct backing_handle **p = &t->handles[bucket(fh)];

	while (*p && (*p)->fh != fh)
		p = &(*p)->next;
	return p;
}

/* A node entry with a freshly registered id, linked in; NULL on failure
 * with *@err set. */
static struct backing_node *node_add(struct fuse_backing_table *t, uint64_t nodeid, int fd,
				     const struct fuse_backing_ops *ops, void *ctx, int *err)
{
	struct backing_node *n = calloc(1, sizeof(*n));

	*err = -ENOMEM;
	if (!n)
		return NULL;
	*err = ops->open(ctx, fd, &n->id);
	if (*err) {
		free(n);
		return NULL;
	}
	n->nodeid = nodeid;
	n->next = t->nodes[bucket(nodeid)];
	t->nodes[bucket(nodeid)] = n;
	t->count++;
	return n;
}

static void node_drop(struct fuse_backing_table *t, struct backing_node *n,
		      const struct fuse_backing_ops *ops, void *ctx)
{
	struct backing_node **p = &t->nodes[bucket(n->nodeid)];

	while (*p != n)
		p = &(*p)->next;
	*p = n->next;
	if (ops)
		ops->close(ctx, n->id);
	t->count--;
	free(n);
}

int fuse_backing_attach(struct fuse_backing_table *t, uint64_t nodeid, uint64_t fh, int fd,
			const struct fuse_backing_ops *ops, void *ctx, int32_t *id)
{
	struct backing_handle *h = malloc(sizeof(*h));
	int err = 0;

	if (!h)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	struct backing_handle **slot = handle_slot(t, fh);
	struct backing_node *n = NULL;
	if (*slot)
		err = -EEXIST;
	else if (!(n = node_find(t, nodeid)))
		n = node_add(t, nodeid, fd, ops, ctx, &err);
	if (n) {
		n->handles++;
		*h = (struct backing_handle){ .fh = fh, .node = n, .next = NULL };
		*slot = h;
		*id = n->id;
		h = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	free(h);
	return n ? 0 : err;
}

void fuse_backing_detach(struct fuse_backing_table *t, uint64_t fh,
			 const struct fuse_backing_ops *ops, void *ctx)
{
	pthread_mutex_lock(&t->lock);
	struct backing_handle **slot = handle_slot(t, fh);
	struct backing_handle *h = *slot;
	if (h) {
		*slot = h->next;
		if (--h->node->handles == 0)
			node_drop(t, h->node, ops, ctx);
		free(h);
	}
	pthread_mutex_unlock(&t->lock);
}

void fuse_backing_clear(struct fuse_backing_table *t)
{
	pthread_mutex_lock(&t->lock);
	for (unsigned b = 0; b < BUCKETS; b++) {
		while (t->handles[b]) {
			struct backing_handle *h = t->handles[b];
			t->handles[b] = h->next;
			free(h);
		}
		while (t->nodes[b])
			node_drop(t, t->nodes[b], NULL, NULL);
	}
	pthread_mutex_unlock(&t->lock);
}

unsigned fuse_backing_count(struct fuse_backing_table *t)
{
	pthread_mutex_lock(&t->lock);
	unsigned n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}
