/*
 * The id table both filesystem backends hand out FUSE ids from: node ids
 * and file handles. An id is generation << 32 | slot; slot 0 is never used
 * (node id 0 means "none" in FUSE), and a slot's generation moves on each
 * time it is freed, so an id the client kept after a release, or made up,
 * finds nothing (id_table_get) rather than whatever took the slot since.
 *
 * Freeing never allocates and never fails: the free list is threaded
 * through the slots themselves. Not thread-safe: the owner serialises
 * (the fields say under which lock in each backend).
 */
#ifndef KVMINI_FS_ID_TABLE_H
#define KVMINI_FS_ID_TABLE_H

#include <stdint.h>

struct id_slot {
	void *p;                     /* NULL: free */
	uint32_t gen;
	uint32_t next_free;
};

struct id_table {
	struct id_slot *v;
	uint32_t cap;
	uint32_t used;               /* slots ever handed out, slot 0 included */
	uint32_t free_head;          /* UINT32_MAX: none */
	uint32_t live;
	uint32_t max_live;           /* most live ids; past it -ENFILE */
};

/* @max_live: 0 for no bound but memory. Returns 0 or -ENOMEM. */
int id_table_init(struct id_table *t, uint32_t max_live);
void id_table_free(struct id_table *t);

/* Give @p (not NULL) an id. Returns 0 or -ENOMEM / -ENFILE. */
int id_table_alloc(struct id_table *t, void *p, uint64_t *id);

/*
 * Give @p (not NULL) exactly @id, the way a snapshot restore puts back the
 * ids a client still holds: slot and generation as in @id. The slot must be
 * free (never used, or on the free list); slots skipped on the way up go on
 * the free list with generation 0. Returns 0, -EINVAL for slot 0 or beyond
 * @max_slot, -EEXIST for a live slot, -ENOMEM / -ENFILE. Inserting in
 * rising slot order costs O(1) each; a slot on the free list costs a walk
 * of that list.
 */
int id_table_insert(struct id_table *t, uint64_t id, void *p, uint32_t max_slot);

/* The live object behind @id, or NULL for anything stale or made up. */
void *id_table_get(const struct id_table *t, uint64_t id);

/* The object in slot @slot whatever its generation (NULL when free or out
 * of range): for walking the table, and for memfs, whose node ids are bare
 * slots with the generation handed out beside them. */
void *id_table_slot(const struct id_table *t, uint32_t slot);

/* The current id of slot @slot (live or not). */
uint64_t id_table_id(const struct id_table *t, uint32_t slot);

/* Free @id, which must be live. */
void id_table_release(struct id_table *t, uint64_t id);

/* One past the highest slot ever used: walk slots 1 .. id_table_end() - 1. */
static inline uint32_t id_table_end(const struct id_table *t)
{
	return t->used;
}

#endif
