/*
 * The backends' id table: see id_table.h.
 */
#include "fs/id_table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ID_TABLE_FIRST_CAP 64u

int id_table_init(struct id_table *t, uint32_t max_live)
{
	t->cap = ID_TABLE_FIRST_CAP;
	t->v = calloc(t->cap, sizeof(*t->v));
	t->used = 1;
	t->free_head = UINT32_MAX;
	t->live = 0;
	t->max_live = max_live ? max_live : UINT32_MAX;
	return t->v ? 0 : -ENOMEM;
}

void id_table_free(struct id_table *t)
{
	free(t->v);
	t->v = NULL;
	t->cap = t->used = t->live = 0;
}

/* Room for one more slot at the end; 0 or -errno. */
static int id_table_grow(struct id_table *t)
{
	if (t->used < t->cap)
		return 0;
	if (t->cap >= UINT32_MAX / 2)
		return -ENFILE;
	struct id_slot *nv = realloc(t->v, 2 * (size_t)t->cap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	memset(nv + t->cap, 0, t->cap * sizeof(*nv));
	t->v = nv;
	t->cap *= 2;
	return 0;
}

int id_table_alloc(struct id_table *t, void *p, uint64_t *id)
{
	uint32_t idx = t->free_head;

	if (t->live >= t->max_live)
		return -ENFILE;
	if (idx != UINT32_MAX) {
		t->free_head = t->v[idx].next_free;
	} else {
		int rc = id_table_grow(t);
		if (rc)
			return rc;
		idx = t->used++;
	}
	t->v[idx].p = p;
	t->live++;
	*id = id_table_id(t, idx);
	return 0;
}

/* Take free slot @idx off the free list; false when it is not on it. */
static bool unlink_free(struct id_table *t, uint32_t idx)
{
	for (uint32_t *pp = &t->free_head; *pp != UINT32_MAX; pp = &t->v[*pp].next_free) {
		if (*pp == idx) {
			*pp = t->v[idx].next_free;
			return true;
		}
	}
	return false;
}

/* Extend the table to hold slot @idx, the slots skipped on the free list. */
static int grow_to(struct id_table *t, uint32_t idx)
{
	while (t->used <= idx) {
		int rc = id_table_grow(t);
		if (rc)
			return rc;
		uint32_t k = t->used++;
		if (k == idx)
			break;
		t->v[k].next_free = t->free_head;
		t->free_head = k;
	}
	return 0;
}

int id_table_insert(struct id_table *t, uint64_t id, void *p, uint32_t max_slot)
{
	uint32_t idx = (uint32_t)id;

	if (idx == 0 || idx > max_slot)
		return -EINVAL;
	if (t->live >= t->max_live)
		return -ENFILE;
	if (idx < t->used) {
		if (t->v[idx].p)
			return -EEXIST;
		if (!unlink_free(t, idx))
			return -EINVAL;
	} else {
		int rc = grow_to(t, idx);
		if (rc)
			return rc;
	}
	t->v[idx].p = p;
	t->v[idx].gen = (uint32_t)(id >> 32);
	t->live++;
	return 0;
}

void *id_table_get(const struct id_table *t, uint64_t id)
{
	uint32_t idx = (uint32_t)id;

	if (idx == 0 || idx >= t->used || !t->v[idx].p || t->v[idx].gen != (uint32_t)(id >> 32))
		return NULL;
	return t->v[idx].p;
}

void *id_table_slot(const struct id_table *t, uint32_t slot)
{
	return slot && slot < t->used ? t->v[slot].p : NULL;
}

uint64_t id_table_id(const struct id_table *t, uint32_t slot)
{
	return (uint64_t)t->v[slot].gen << 32 | slot;
}

void id_table_release(struct id_table *t, uint64_t id)
{
	uint32_t idx = (uint32_t)id;

	t->v[idx].p = NULL;
	t->v[idx].gen++;
	t->v[idx].next_free = t->free_head;
	t->free_head = idx;
	t->live--;
}
