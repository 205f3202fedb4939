/* The mapped ranges of a DAX window (see dax_ranges.h). */
#include "fuse/dax_ranges.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int dax_ranges_reserve(struct dax_ranges *t, size_t more)
{
	if (t->n + more > DAX_RANGES_MAX)
		return -ENOMEM;
	if (t->n + more <= t->cap)
		return 0;
	size_t cap = t->cap ? t->cap * 2 : 16;
	while (cap < t->n + more)
		cap *= 2;
	struct dax_range *v = realloc(t->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->v = v;
	t->cap = cap;
	return 0;
}

static uint64_t end_of(const struct dax_range *r)
{
	return r->moffset + r->len;
}

/* Open a slot at @i (room reserved). */
static void insert_at(struct dax_ranges *t, size_t i, const struct dax_range *r)
{
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*r));
	t->v[i] = *r;
	t->n++;
}

static void delete_at(struct dax_ranges *t, size_t i)
{
	memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(t->v[0]));
	t->n--;
}

/* Keep the part of v[i] from @at on: its file offset moves with it. */
static void cut_front(struct dax_range *r, uint64_t at)
{
	uint64_t d = at - r->moffset;

	r->moffset = at;
	r->foffset += d;
	r->len -= d;
}

void dax_ranges_remove(struct dax_ranges *t, uint64_t moffset, uint64_t len)
{
	uint64_t end = moffset + len;
	size_t i = 0;

	while (i < t->n && end_of(&t->v[i]) <= moffset)
		i++;
	while (i < t->n && t->v[i].moffset < end) {
		struct dax_range *r = &t->v[i];
		if (r->moffset < moffset && end_of(r) > end) {
			/* Cut in two: the tail becomes its own entry. */
			struct dax_range tail = *r;
			cut_front(&tail, end);
			r->len = moffset - r->moffset;
			insert_at(t, i + 1, &tail);
			return;
		}
		if (r->moffset < moffset) {
			r->len = moffset - r->moffset;
			i++;
		} else if (end_of(r) > end) {
			cut_front(r, end);
			return;
		} else {
			delete_at(t, i);
		}
	}
}

void dax_ranges_add(struct dax_ranges *t, const struct dax_range *r)
{
	size_t i = 0;

	dax_ranges_remove(t, r->moffset, r->len);
	while (i < t->n && t->v[i].moffset < r->moffset)
		i++;
	insert_at(t, i, r);
}

void dax_ranges_clear(struct dax_ranges *t)
{
	t->n = 0;
}

void dax_ranges_free(struct dax_ranges *t)
{
	free(t->v);
	*t = (struct dax_ranges){ 0 };
}
