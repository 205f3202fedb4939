/*
 * The passthrough backing-id table (fs/fuse_backing.c) against a fake
 * transport that records registrations: one id per node shared by its
 * handles, closed exactly once with the last handle, failures leaving no
 * trace, unknown and repeated handles ignored, many threads at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "fuse/fuse_backing.h"

#define MAX_IDS 65536

struct fake {
	pthread_mutex_t lock;
	int fail;                 /* error for open, 0 to succeed */
	int32_t next;
	int opens, closes, bad_closes;
	bool live[MAX_IDS];
	int last_fd;
};

static int fake_open(void *ctx, int fd, int32_t *id)
{
	struct fake *f = ctx;
	int rc = 0;

	pthread_mutex_lock(&f->lock);
	f->last_fd = fd;
	if (f->fail || f->next >= MAX_IDS) {
		rc = f->fail ? f->fail : -ENOSPC;
	} else {
		*id = f->next++;
		f->live[*id] = true;
		f->opens++;
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static void fake_close(void *ctx, int32_t id)
{
	struct fake *f = ctx;

	pthread_mutex_lock(&f->lock);
	if (id < 0 || id >= f->next || !f->live[id])
		f->bad_closes++;
	else
		f->live[id] = false;
	f->closes++;
	pthread_mutex_unlock(&f->lock);
}

static const struct fuse_backing_ops ops = { .open = fake_open, .close = fake_close };

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	pthread_mutex_init(&f->lock, NULL);
	f->next = 1;
	return f;
}

static void test_shared_per_node(void)
{
	struct fuse_backing_table *t = fuse_backing_new();
	struct fake *f = fake_new();
	int32_t a, b, c;

	CHECK_EQ(fuse_backing_attach(t, 5, 100, 7, &ops, f, &a), 0);
	CHECK_EQ(f->last_fd, 7);
	CHECK_EQ(fuse_backing_attach(t, 5, 101, 8, &ops, f, &b), 0);
	CHECK_EQ(fuse_backing_attach(t, 6, 102, 9, &ops, f, &c), 0);
	CHECK_EQ(a, b);
	CHECK(a != c);
	CHECK_EQ(f->opens, 2);
	CHECK_EQ(fuse_backing_count(t), 2);
	/* A handle attached twice is refused, and counts nothing. */
	CHECK_EQ(fuse_backing_attach(t, 5, 100, 7, &ops, f, &b), -EEXIST);
	fuse_backing_detach(t, 100, &ops, f);
	CHECK_EQ(f->closes, 0);
	fuse_backing_detach(t, 101, &ops, f);
	CHECK_EQ(f->closes, 1);
	fuse_backing_detach(t, 101, &ops, f);       /* again: ignored */
	fuse_backing_detach(t, 999, &ops, f);       /* never attached: ignored */
	CHECK_EQ(f->closes, 1);
	CHECK_EQ(fuse_backing_count(t), 1);
	/* The node comes back: a fresh id. */
	CHECK_EQ(fuse_backing_attach(t, 5, 103, 7, &ops, f, &b), 0);
	CHECK(b != a);
	CHECK_EQ(f->bad_closes, 0);
	/* Clear forgets without closing (the session is gone). */
	fuse_backing_clear(t);
	CHECK_EQ(fuse_backing_count(t), 0);
	CHECK_EQ(f->closes, 1);
	fuse_backing_detach(t, 102, &ops, f);
	CHECK_EQ(f->closes, 1);
	fuse_backing_free(t);
	free(f);
}

static void test_open_failure(void)
{
	struct fuse_backing_table *t = fuse_backing_new();
	struct fake *f = fake_new();
	int32_t id = -1;

	f->fail = -EPERM;
	CHECK_EQ(fuse_backing_attach(t, 5, 100, 7, &ops, f, &id), -EPERM);
	CHECK_EQ(fuse_backing_count(t), 0);
	/* The handle was not recorded: its release closes nothing. */
	fuse_backing_detach(t, 100, &ops, f);
	CHECK_EQ(f->closes, 0);
	/* And it may be attached once the kernel agrees. */
	f->fail = 0;
	CHECK_EQ(fuse_backing_attach(t, 5, 100, 7, &ops, f, &id), 0);
	fuse_backing_detach(t, 100, &ops, f);
	CHECK_EQ(f->closes, 1);
	CHECK_EQ(f->bad_closes, 0);
	fuse_backing_free(t);
	free(f);
}

struct hammer_arg {
	struct fuse_backing_table *t;
	struct fake *f;
	unsigned thread;
	int mismatches;
};

/* Each thread opens and releases handles of a few shared nodes. */
static void *hammer(void *p)
{
	struct hammer_arg *a = p;

	for (unsigned i = 0; i < 2000; i++) {
		uint64_t fh = ((uint64_t)a->thread << 32) | i;
		uint64_t node = i % 7;
		int32_t id;

		if (fuse_backing_attach(a->t, node, fh, 3, &ops, a->f, &id) != 0)
			a->mismatches++;
		fuse_backing_detach(a->t, fh, &ops, a->f);
	}
	return NULL;
}

static void test_concurrent(void)
{
	struct fuse_backing_table *t = fuse_backing_new();
	struct fake *f = fake_new();
	struct hammer_arg args[4];
	pthread_t th[4];

	f->next = 1;
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct hammer_arg){ .t = t, .f = f, .thread = i };
		pthread_create(&th[i], NULL, hammer, &args[i]);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(args[i].mismatches, 0);
	}
	/* Every id opened was closed once, none twice. */
	CHECK_EQ(fuse_backing_count(t), 0);
	CHECK_EQ(f->opens, f->closes);
	CHECK_EQ(f->bad_closes, 0);
	fuse_backing_free(t);
	free(f);
}

int main(void)
{
	RUN_TEST(test_shared_per_node);
	RUN_TEST(test_open_failure);
	RUN_TEST(test_concurrent);
	return CHECK_DONE();
}
