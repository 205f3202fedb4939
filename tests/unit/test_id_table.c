/*
 * The backends' id table (src/fs/id_table.c): ids never 0, stale and
 * made-up ids find nothing, slots are reused with a new generation, the
 * bound on live ids holds, and frees need no memory.
 */
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "fs/id_table.h"

static void test_alloc_get_release(void)
{
	struct id_table t;
	int a, b;
	uint64_t ia, ib, ic;

	CHECK_EQ(id_table_init(&t, 0), 0);
	CHECK_EQ(id_table_alloc(&t, &a, &ia), 0);
	CHECK_EQ(id_table_alloc(&t, &b, &ib), 0);
	/* The first id is slot 1, generation 0: FUSE's root id. */
	CHECK_EQ(ia, 1);
	CHECK(ib != ia && (uint32_t)ib != 0);
	CHECK(id_table_get(&t, ia) == &a);
	CHECK(id_table_get(&t, ib) == &b);
	CHECK(id_table_get(&t, 0) == NULL);
	CHECK(id_table_get(&t, 999) == NULL);
	CHECK(id_table_get(&t, ia | 1ull << 32) == NULL);
	id_table_release(&t, ia);
	CHECK(id_table_get(&t, ia) == NULL);
	/* The slot comes back with a new generation; the old id stays dead. */
	CHECK_EQ(id_table_alloc(&t, &b, &ic), 0);
	CHECK_EQ((uint32_t)ic, (uint32_t)ia);
	CHECK(ic != ia);
	CHECK(id_table_get(&t, ia) == NULL);
	CHECK(id_table_get(&t, ic) == &b);
	CHECK(id_table_slot(&t, (uint32_t)ic) == &b);
	CHECK(id_table_slot(&t, 0) == NULL);
	CHECK(id_table_slot(&t, 12345) == NULL);
	CHECK_EQ(t.live, 2);
	id_table_free(&t);
}

static void test_bound_and_growth(void)
{
	struct id_table t;
	int x;
	uint64_t id, first = 0;

	CHECK_EQ(id_table_init(&t, 1000), 0);
	for (int i = 0; i < 1000; i++) {
		CHECK_EQ(id_table_alloc(&t, &x, &id), 0);
		if (!first)
			first = id;
	}
	CHECK_EQ(id_table_alloc(&t, &x, &id), -ENFILE);
	CHECK(id_table_get(&t, first) == &x);
	id_table_release(&t, first);
	CHECK_EQ(id_table_alloc(&t, &x, &id), 0);
	CHECK_EQ(id_table_end(&t), 1001);
	id_table_free(&t);
}

/* Ids put back at given slots and generations, as a snapshot restore does:
 * the gaps are free for later allocations, taken slots refused. */
static void test_insert_at(void)
{
	struct id_table t;
	int a, b, c, d;
	uint64_t id;

	CHECK_EQ(id_table_init(&t, 0), 0);
	CHECK_EQ(id_table_insert(&t, (7ull << 32) | 5, &a, 100), 0);
	CHECK(id_table_get(&t, (7ull << 32) | 5) == &a);
	CHECK(id_table_get(&t, 5) == NULL);                   /* generation kept */
	CHECK_EQ(id_table_insert(&t, 5, &b, 100), -EEXIST);
	CHECK_EQ(id_table_insert(&t, 0, &b, 100), -EINVAL);
	CHECK_EQ(id_table_insert(&t, 101, &b, 100), -EINVAL);
	/* Slot 3 was skipped: on the free list, insertable, then gone from it. */
	CHECK_EQ(id_table_insert(&t, 3, &b, 100), 0);
	CHECK_EQ(t.live, 2);
	/* Allocation reuses the other gaps (1, 2, 4) before growing. */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(id_table_alloc(&t, &c, &id), 0);
		CHECK((uint32_t)id != 3 && (uint32_t)id != 5 && (uint32_t)id < 5);
	}
	CHECK_EQ(id_table_alloc(&t, &d, &id), 0);
	CHECK_EQ((uint32_t)id, 6);
	/* Far past the first capacity: the table grows to it. */
	CHECK_EQ(id_table_insert(&t, 1000, &d, 5000), 0);
	CHECK(id_table_get(&t, 1000) == &d);
	id_table_release(&t, 1000);
	CHECK_EQ(id_table_insert(&t, (1ull << 32) | 1000, &d, 5000), 0);
	id_table_free(&t);
}

int main(void)
{
	RUN_TEST(test_alloc_get_release);
	RUN_TEST(test_bound_and_growth);
	RUN_TEST(test_insert_at);
	return CHECK_DONE();
}
