/*
 * Split virtqueue, device side, against the test driver: every hostile ring
 * the guest can build, the used ring after push/publish, interrupt and kick
 * suppression (with and without EVENT_IDX), index wrap-around and chains
 * crossing a guest memory region boundary.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "core/compiler.h"
#include "core/guest_mem.h"
#include "virtio/virtqueue.h"
#include "vdriver.h"

/* Guest memory at a non-zero address, split in two regions. */
#define MEM_BASE  0x40000000ull
#define MEM_SIZE  (8ull << 20)
#define MEM_SPLIT (4ull << 20)

struct fixture {
	struct vd_mem mem;
	struct vd_queue q;
	struct virtqueue vq;
};

static struct vq_chain chain;   /* 16 KiB: not on the stack */

/* Memory, driver rings of @size and a started device queue. */
static int setup_opts(struct fixture *f, const struct vd_queue_opts *o, bool indirect)
{
	int r = vd_mem_init(&f->mem, MEM_BASE, MEM_SIZE, MEM_SPLIT);
	if (r)
		return r;
	r = vd_queue_init(&f->q, &f->mem, o);
	if (r)
		return r;
	vq_reset(&f->vq);
	vd_queue_to_vq(&f->q, &f->vq, indirect);
	return vq_start(&f->vq, &f->mem.gm);
}

static int setup(struct fixture *f, uint16_t size, bool event_idx, bool indirect)
{
	struct vd_queue_opts o = {
		.size = size, .event_idx = event_idx, .indirect_max = indirect ? 64 : 0,
	};
	return setup_opts(f, &o, indirect);
}

static void teardown(struct fixture *f)
{
	vd_queue_destroy(&f->q);
	vd_mem_destroy(&f->mem);
}

/* Offer a raw chain starting at @head and pop it. */
static enum vq_pop_result offer_and_pop(struct fixture *f, uint16_t head)
{
	vd_raw_offer(&f->q, head);
	return vq_pop(&f->vq, &chain);
}

/* Pop, expecting a malformed chain for @why; the head must come back. */
static void expect_bad_chain(struct fixture *f, uint16_t head, enum vq_chain_error why)
{
	CHECK_EQ(offer_and_pop(f, head), VQ_POP_BAD_CHAIN);
	CHECK_EQ(chain.head, head);
	CHECK_EQ(f->vq.faults.last_chain_error, why);
	CHECK_EQ(chain.n_out + chain.n_in, 0);
	CHECK_EQ(chain.out_len + chain.in_len, 0);
	CHECK_EQ(f->vq.faults.poisoned, VQ_POISON_NONE);
	/* Completed, as a device does with a bad chain, and published: the
	 * driver may offer the head again. */
	CHECK_EQ(vq_push(&f->vq, head, 0), 0);
	vq_publish(&f->vq);
}

static uint64_t buf(struct fixture *f, uint64_t len)
{
	return vd_alloc(&f->mem, len, 8);
}

/* ---- valid chains ---- */

static void test_pop_direct_chain(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 16, false, false), 0);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_EMPTY);
	CHECK(!vq_has_avail(&f.vq));
	struct vd_buf b[3] = {
		{ buf(&f, 10), 10, false }, { buf(&f, 20), 20, false }, { buf(&f, 300), 300, true },
	};
	int head = vd_add_chain(&f.q, b, 3, false);
	CHECK(head >= 0);
	/* Not visible before publish. */
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_EMPTY);
	vd_publish(&f.q);
	CHECK(vq_has_avail(&f.vq));
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, head);
	CHECK_EQ(chain.n_out, 2);
	CHECK_EQ(chain.n_in, 1);
	CHECK_EQ(chain.out_len, 30);
	CHECK_EQ(chain.in_len, 300);
	CHECK(chain.iov[0].iov_base == vd_ptr(&f.mem, b[0].gpa, 10));
	CHECK(chain.iov[1].iov_base == vd_ptr(&f.mem, b[1].gpa, 20));
	CHECK(vq_chain_in(&chain)->iov_base == vd_ptr(&f.mem, b[2].gpa, 300));
	CHECK_EQ(vq_chain_in(&chain)->iov_len, 300);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_EMPTY);
	CHECK(!vq_has_avail(&f.vq));
	teardown(&f);
}

static void test_pop_indirect_chain(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 16, false, true), 0);
	struct vd_buf b[4] = {
		{ buf(&f, 12), 12, false }, { buf(&f, 64), 64, true },
		{ buf(&f, 0), 0, true }, { buf(&f, 1500), 1500, true },
	};
	b[2].gpa = b[1].gpa;
	int head = vd_add_chain(&f.q, b, 4, true);
	CHECK(head >= 0);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, head);
	CHECK_EQ(chain.n_out, 1);
	CHECK_EQ(chain.n_in, 2);     /* the empty buffer adds no iovec */
	CHECK_EQ(chain.out_len, 12);
	CHECK_EQ(chain.in_len, 1564);
	CHECK(vq_chain_in(&chain)[1].iov_base == vd_ptr(&f.mem, b[3].gpa, 1500));
	teardown(&f);
}

/* A direct chain may end in an indirect descriptor (no NEXT on it). */
static void test_pop_direct_then_indirect(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, true), 0);
	uint64_t table = vd_alloc(&f.mem, 32, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 32);
	t[0] = (struct vring_desc){ buf(&f, 8), 8, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ buf(&f, 100), 100, VRING_DESC_F_WRITE, 0 };
	vd_raw_desc(&f.q, 2, buf(&f, 14), 14, VRING_DESC_F_NEXT, 5);
	vd_raw_desc(&f.q, 5, table, 32, VRING_DESC_F_INDIRECT, 0);
	CHECK_EQ(offer_and_pop(&f, 2), VQ_POP_OK);
	CHECK_EQ(chain.n_out, 2);
	CHECK_EQ(chain.n_in, 1);
	CHECK_EQ(chain.out_len, 22);
	CHECK_EQ(chain.in_len, 100);
	teardown(&f);
}

/* A chain through every descriptor of the ring is the longest legal one. */
static void test_chain_using_whole_ring(void)
{
	struct fixture f;
	struct vd_buf b[32];

	CHECK_EQ(setup(&f, 32, false, false), 0);
	for (unsigned i = 0; i < 32; i++)
		b[i] = (struct vd_buf){ buf(&f, 4), 4, i >= 16 };
	CHECK(vd_add_chain(&f.q, b, 32, false) >= 0);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.n_out, 16);
	CHECK_EQ(chain.n_in, 16);
	teardown(&f);
}

static void test_zero_length_buffers(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	/* Zero bytes need no memory, wherever they point. */
	vd_raw_desc(&f.q, 0, 0xdead0000ull, 0, VRING_DESC_F_NEXT, 1);
	vd_raw_desc(&f.q, 1, UINT64_MAX, 0, VRING_DESC_F_WRITE, 0);
	CHECK_EQ(offer_and_pop(&f, 0), VQ_POP_OK);
	CHECK_EQ(chain.n_out + chain.n_in, 0);
	CHECK_EQ(chain.out_len + chain.in_len, 0);
	teardown(&f);
}

/* ---- malformed chains: completed with 0, the queue goes on ---- */

static void test_loop_self(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	vd_raw_desc(&f.q, 3, buf(&f, 4), 4, VRING_DESC_F_NEXT, 3);
	expect_bad_chain(&f, 3, VQ_CHAIN_ERR_TOO_LONG);
	/* Zero-length descriptors cost no iovec, yet the loop still ends. */
	vd_raw_desc(&f.q, 4, 0, 0, VRING_DESC_F_NEXT, 4);
	expect_bad_chain(&f, 4, VQ_CHAIN_ERR_TOO_LONG);
	teardown(&f);
}

static void test_loop_back(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	uint64_t b = buf(&f, 4);
	vd_raw_desc(&f.q, 0, b, 4, VRING_DESC_F_NEXT, 1);
	vd_raw_desc(&f.q, 1, b, 4, VRING_DESC_F_NEXT, 2);
	vd_raw_desc(&f.q, 2, b, 4, VRING_DESC_F_NEXT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_TOO_LONG);
	/* Entering the loop from a different head. */
	vd_raw_desc(&f.q, 7, b, 4, VRING_DESC_F_NEXT, 1);
	expect_bad_chain(&f, 7, VQ_CHAIN_ERR_TOO_LONG);
	/* The queue still works: a good chain after the bad ones. */
	vd_raw_desc(&f.q, 5, b, 4, 0, 0);
	CHECK_EQ(offer_and_pop(&f, 5), VQ_POP_OK);
	teardown(&f);
}

/* One descriptor more than the ring holds can only be a loop; an indirect
 * table longer than itself likewise. */
static void test_chain_longer_than_queue(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 4, false, true), 0);
	uint64_t b = buf(&f, 4);
	for (uint16_t i = 0; i < 4; i++)
		vd_raw_desc(&f.q, i, b, 4, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % 4));
	expect_bad_chain(&f, 2, VQ_CHAIN_ERR_TOO_LONG);
	uint64_t table = vd_alloc(&f.mem, 16 * 8, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 16 * 8);
	for (uint16_t i = 0; i < 8; i++)
		t[i] = (struct vring_desc){ b, 4, VRING_DESC_F_NEXT, (uint16_t)((i + 3) % 8) };
	vd_raw_desc(&f.q, 0, table, 16 * 8, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_TOO_LONG);
	teardown(&f);
}

static void test_next_out_of_range(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, true), 0);
	uint64_t b = buf(&f, 4);
	vd_raw_desc(&f.q, 0, b, 4, VRING_DESC_F_NEXT, 8);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_NEXT_RANGE);
	vd_raw_desc(&f.q, 1, b, 4, VRING_DESC_F_NEXT, 0xffff);
	expect_bad_chain(&f, 1, VQ_CHAIN_ERR_NEXT_RANGE);
	/* Without NEXT, the next field is ignored. */
	vd_raw_desc(&f.q, 2, b, 4, 0, 0xffff);
	CHECK_EQ(offer_and_pop(&f, 2), VQ_POP_OK);
	/* Inside an indirect table the bound is the table's own size. */
	uint64_t table = vd_alloc(&f.mem, 32, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 32);
	t[0] = (struct vring_desc){ b, 4, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ b, 4, VRING_DESC_F_NEXT, 2 };
	vd_raw_desc(&f.q, 3, table, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 3, VQ_CHAIN_ERR_NEXT_RANGE);
	teardown(&f);
}

static void test_indirect_in_indirect(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, true), 0);
	uint64_t inner = vd_alloc(&f.mem, 16, 16), outer = vd_alloc(&f.mem, 32, 16);
	struct vring_desc *ti = vd_ptr(&f.mem, inner, 16), *to = vd_ptr(&f.mem, outer, 32);
	ti[0] = (struct vring_desc){ buf(&f, 4), 4, 0, 0 };
	to[0] = (struct vring_desc){ buf(&f, 4), 4, VRING_DESC_F_NEXT, 1 };
	to[1] = (struct vring_desc){ inner, 16, VRING_DESC_F_INDIRECT, 0 };
	vd_raw_desc(&f.q, 0, outer, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_INDIRECT);
	/* A table pointing at itself. */
	to[0] = (struct vring_desc){ outer, 32, VRING_DESC_F_INDIRECT, 0 };
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_INDIRECT);
	teardown(&f);
}

static void test_indirect_not_negotiated(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	uint64_t table = vd_alloc(&f.mem, 16, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 16);
	t[0] = (struct vring_desc){ buf(&f, 4), 4, 0, 0 };
	vd_raw_desc(&f.q, 0, table, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_INDIRECT);
	teardown(&f);
}

static void test_indirect_bad_length(void)
{
	static const uint32_t lens[] = {
		0, 1, 8, 15, 17, 24, 0xfffffff0u, 0xffffffffu, (VQ_MAX_SIZE + 1) * 16,
	};
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, true), 0);
	uint64_t table = vd_alloc(&f.mem, 64, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 64);
	for (unsigned i = 0; i < 4; i++)
		t[i] = (struct vring_desc){ buf(&f, 4), 4, i < 3 ? VRING_DESC_F_NEXT : 0,
					    (uint16_t)(i + 1) };
	for (unsigned i = 0; i < ARRAY_SIZE(lens); i++) {
		vd_raw_desc(&f.q, 1, table, lens[i], VRING_DESC_F_INDIRECT, 0);
		expect_bad_chain(&f, 1, VQ_CHAIN_ERR_INDIRECT);
	}
	/* The largest legal table is accepted when it is in memory. */
	uint64_t big = vd_alloc(&f.mem, VQ_MAX_SIZE * 16, 16);
	CHECK(big != VD_NO_GPA);
	vd_fill(&f.mem, big, 0, VQ_MAX_SIZE * 16);
	vd_raw_desc(&f.q, 1, big, VQ_MAX_SIZE * 16, VRING_DESC_F_INDIRECT, 0);
	CHECK_EQ(offer_and_pop(&f, 1), VQ_POP_OK);
	teardown(&f);
}

static void test_indirect_with_next(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, true), 0);
	uint64_t table = vd_alloc(&f.mem, 16, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 16);
	t[0] = (struct vring_desc){ buf(&f, 4), 4, 0, 0 };
	vd_raw_desc(&f.q, 0, table, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	vd_raw_desc(&f.q, 1, buf(&f, 4), 4, 0, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_INDIRECT);
	/* The WRITE flag on the indirect descriptor itself is ignored. */
	vd_raw_desc(&f.q, 0, table, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
	CHECK_EQ(offer_and_pop(&f, 0), VQ_POP_OK);
	CHECK_EQ(chain.n_out, 1);
	CHECK_EQ(chain.n_in, 0);
	teardown(&f);
}

static void test_indirect_table_outside_memory(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, true), 0);
	vd_raw_desc(&f.q, 0, 0x1000, 16, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	vd_raw_desc(&f.q, 0, MEM_BASE + MEM_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	vd_raw_desc(&f.q, 0, UINT64_MAX - 15, 32, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	/* In memory but across the region boundary: a table must be contiguous. */
	uint64_t across = vd_alloc_crossing(&f.mem, 64, 32);
	CHECK(across != VD_NO_GPA);
	vd_fill(&f.mem, across, 0, 64);
	vd_raw_desc(&f.q, 0, across, 64, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	teardown(&f);
}

static void test_buffer_outside_memory(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	vd_raw_desc(&f.q, 0, 0, 1, 0, 0);                            /* below the base */
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	vd_raw_desc(&f.q, 0, MEM_BASE - 1, 2, 0, 0);                 /* straddles the start */
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	vd_raw_desc(&f.q, 0, MEM_BASE + MEM_SIZE - 4, 5, VRING_DESC_F_WRITE, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	vd_raw_desc(&f.q, 0, MEM_BASE + MEM_SIZE, 1, VRING_DESC_F_WRITE, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	/* addr + len wraps around 2^64. */
	vd_raw_desc(&f.q, 0, UINT64_MAX - 3, 16, VRING_DESC_F_WRITE, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	vd_raw_desc(&f.q, 0, MEM_BASE + 16, 0xffffffffu, 0, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	/* A bad buffer late in an otherwise good chain. */
	vd_raw_desc(&f.q, 0, buf(&f, 4), 4, VRING_DESC_F_NEXT, 1);
	vd_raw_desc(&f.q, 1, 0x10, 4, VRING_DESC_F_WRITE, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);
	teardown(&f);
}

/* Lengths whose 32-bit sum overflows. The buffers overlap in one big region
 * that is reserved but never touched. */
static void test_length_overflow(void)
{
	struct fixture f;
	const uint64_t big_gpa = 1ull << 40, big_len = 3ull << 29;   /* 1.5 GiB */

	CHECK_EQ(setup(&f, 8, false, true), 0);
	void *big = mmap(NULL, big_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);
	CHECK(big != MAP_FAILED);
	CHECK_EQ(guest_mem_add(&f.mem.gm, big_gpa, big_len, 0, big, NULL, 0), 0);
	/* Three writable pieces of 1.5 GiB: in_len 4.5 GiB. */
	for (uint16_t i = 0; i < 3; i++)
		vd_raw_desc(&f.q, i, big_gpa, (uint32_t)big_len,
			    VRING_DESC_F_WRITE | (i < 2 ? VRING_DESC_F_NEXT : 0), (uint16_t)(i + 1));
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_LEN);
	/* The readable side too. */
	for (uint16_t i = 0; i < 3; i++)
		vd_raw_desc(&f.q, i, big_gpa, (uint32_t)big_len,
			    i < 2 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_LEN);
	/* Exactly UINT32_MAX is still representable. */
	for (uint16_t i = 0; i < 3; i++)
		vd_raw_desc(&f.q, i, big_gpa, 0x55555555u,
			    VRING_DESC_F_WRITE | (i < 2 ? VRING_DESC_F_NEXT : 0), (uint16_t)(i + 1));
	CHECK_EQ(offer_and_pop(&f, 0), VQ_POP_OK);
	CHECK_EQ(chain.in_len, 0xffffffffu);
	/* Through an indirect table as well. */
	uint64_t table = vd_alloc(&f.mem, 48, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 48);
	for (uint16_t i = 0; i < 3; i++)
		t[i] = (struct vring_desc){ big_gpa, (uint32_t)big_len,
			VRING_DESC_F_WRITE | (i < 2 ? VRING_DESC_F_NEXT : 0), (uint16_t)(i + 1) };
	vd_raw_desc(&f.q, 4, table, 48, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 4, VQ_CHAIN_ERR_LEN);
	guest_mem_clear(&f.mem.gm);   /* unowned regions: nothing unmapped */
	munmap(big, big_len);
	teardown(&f);
}

static void test_readable_after_writable(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, true), 0);
	vd_raw_desc(&f.q, 0, buf(&f, 4), 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vd_raw_desc(&f.q, 1, buf(&f, 4), 4, 0, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ORDER);
	uint64_t table = vd_alloc(&f.mem, 48, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 48);
	t[0] = (struct vring_desc){ buf(&f, 4), 4, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ buf(&f, 4), 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2 };
	t[2] = (struct vring_desc){ buf(&f, 4), 4, VRING_DESC_F_NEXT, 0 };
	t[2].flags = 0;
	vd_raw_desc(&f.q, 2, table, 48, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 2, VQ_CHAIN_ERR_ORDER);
	teardown(&f);
}

/* A zero-length writable descriptor still ends the readable part. */
static void test_readable_after_empty_writable(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	vd_raw_desc(&f.q, 0, buf(&f, 4), 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vd_raw_desc(&f.q, 1, buf(&f, 4), 4, 0, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ORDER);
	teardown(&f);
}

/* A ring handed over with kicks suppressed asks for kicks again at start. */
static void test_start_reenables_notify(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	vq_disable_notify(&f.vq);
	CHECK(vd_used_flags(&f.q) & VRING_USED_F_NO_NOTIFY);
	vq_stop(&f.vq);
	CHECK_EQ(vq_start(&f.vq, &f.mem.gm), 0);
	CHECK(!(vd_used_flags(&f.q) & VRING_USED_F_NO_NOTIFY));
	teardown(&f);

	CHECK_EQ(setup(&f, 8, true, false), 0);
	f.vq.last_avail_idx = 5;
	vd_queue_set_start_idx(&f.q, 5);
	vq_stop(&f.vq);
	CHECK_EQ(vq_start(&f.vq, &f.mem.gm), 0);
	CHECK_EQ(vd_avail_event(&f.q), 5);
	teardown(&f);
}

/* More pieces than VQ_CHAIN_MAX_IOV: an indirect table of one-byte buffers,
 * and a direct chain whose buffers each cross the region boundary. */
static void test_too_many_iovecs(void)
{
	struct fixture f;
	const unsigned n = VQ_CHAIN_MAX_IOV + 1;

	CHECK_EQ(setup(&f, 1024, false, true), 0);
	uint64_t b = buf(&f, 4096);
	uint64_t table = vd_alloc(&f.mem, 16ull * n, 16);
	struct vring_desc *t = vd_ptr(&f.mem, table, 16ull * n);
	for (unsigned i = 0; i < n; i++)
		t[i] = (struct vring_desc){ b + i % 4096, 1, VRING_DESC_F_WRITE |
					    (i + 1 < n ? VRING_DESC_F_NEXT : 0), (uint16_t)(i + 1) };
	vd_raw_desc(&f.q, 0, table, 16 * n, VRING_DESC_F_INDIRECT, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_TOO_MANY_IOV);
	/* Exactly the limit is fine. */
	t[n - 2].flags = VRING_DESC_F_WRITE;
	vd_raw_desc(&f.q, 0, table, 16 * (n - 1), VRING_DESC_F_INDIRECT, 0);
	CHECK_EQ(offer_and_pop(&f, 0), VQ_POP_OK);
	CHECK_EQ(chain.n_in, VQ_CHAIN_MAX_IOV);
	/* 513 descriptors of two pieces each. */
	uint64_t across = vd_alloc_crossing(&f.mem, 8, 4);
	for (uint16_t i = 0; i < 513; i++)
		vd_raw_desc(&f.q, i, across, 8, i < 512 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_TOO_MANY_IOV);
	vd_raw_desc(&f.q, 511, across, 8, 0, 0);
	CHECK_EQ(offer_and_pop(&f, 0), VQ_POP_OK);
	CHECK_EQ(chain.n_out, VQ_CHAIN_MAX_IOV);
	teardown(&f);
}

/* ---- broken avail rings: poisoned until reset ---- */

/* Descriptors 0..7 of a queue of 8 in avail slots 0..7 (avail->idx not moved). */
static void fill_ring(struct fixture *f)
{
	uint64_t b = buf(f, 4);

	for (uint16_t i = 0; i < 8; i++) {
		vd_raw_desc(&f->q, i, b, 4, 0, 0);
		vd_raw_avail(&f->q, i, i);
	}
}

static void test_avail_idx_jump_poisons(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	fill_ring(&f);
	/* Exactly a full ring ahead is legal. */
	vd_raw_avail_idx(&f.q, 8);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_EMPTY);
	for (uint16_t i = 0; i < 8; i++)
		CHECK_EQ(vq_push(&f.vq, i, 0), 0);
	vq_publish(&f.vq);
	/* size + 1 ahead is not. */
	vd_raw_avail_idx(&f.q, 8 + 9);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_POISONED);
	CHECK_EQ(f.vq.faults.poisoned, VQ_POISON_AVAIL_IDX);
	CHECK(strcmp(vq_poison_str(f.vq.faults.poisoned), "not poisoned") != 0);
	/* Putting the index back does not heal the queue. */
	vd_raw_avail_idx(&f.q, 9);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_POISONED);
	CHECK(!vq_has_avail(&f.vq));
	CHECK(!vq_enable_notify(&f.vq));
	/* Neither does a stop / start. */
	vq_stop(&f.vq);
	CHECK_EQ(vq_start(&f.vq, &f.mem.gm), 0);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_POISONED);
	/* Only a reset does. */
	uint16_t last = f.vq.last_avail_idx;
	vq_reset(&f.vq);
	CHECK_EQ(f.vq.faults.poisoned, VQ_POISON_NONE);
	vd_queue_to_vq(&f.q, &f.vq, false);
	f.vq.last_avail_idx = last;
	CHECK_EQ(vq_start(&f.vq, &f.mem.gm), 0);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_EMPTY);
	teardown(&f);
}

/* A ring of 8 whose 8 chains the device has all taken. */
static void take_full_ring(struct fixture *f)
{
	CHECK_EQ(setup(f, 8, false, false), 0);
	fill_ring(f);
	vd_raw_avail_idx(&f->q, 8);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(vq_pop(&f->vq, &chain), VQ_POP_OK);
}

/* Chains taken and not yet used are outstanding too, and so are used ones
 * the driver cannot have seen (not published): a driver that offers one
 * more while the device holds a full ring's worth (the same heads again)
 * breaks the ring, and the device never holds more than size, nor writes
 * more than size used entries ahead of the published index. */
static void test_taken_chains_count_as_outstanding(void)
{
	struct fixture f;

	take_full_ring(&f);
	/* One used but not yet published: the driver cannot have reused it. */
	CHECK_EQ(vq_push(&f.vq, 3, 0), 0);
	vd_raw_avail(&f.q, 8, 3);
	vd_raw_avail_idx(&f.q, 9);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_POISONED);
	CHECK_EQ(f.vq.faults.poisoned, VQ_POISON_AVAIL_IDX);
	teardown(&f);

	take_full_ring(&f);
	/* Used and published: one more may come. */
	CHECK_EQ(vq_push(&f.vq, 3, 0), 0);
	vq_publish(&f.vq);
	CHECK_EQ(f.vq.published_idx, 1);
	vd_raw_avail(&f.q, 8, 3);
	vd_raw_avail_idx(&f.q, 9);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, 3);
	/* None used since: a tenth is one too many. */
	vd_raw_avail(&f.q, 9, 3);
	vd_raw_avail_idx(&f.q, 10);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_POISONED);
	CHECK_EQ(f.vq.faults.poisoned, VQ_POISON_AVAIL_IDX);
	teardown(&f);
}

/* An index that goes backwards is a jump of almost 65536. */
static void test_avail_idx_backwards_poisons(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 256, false, false), 0);
	vd_raw_desc(&f.q, 0, buf(&f, 4), 4, 0, 0);
	CHECK_EQ(offer_and_pop(&f, 0), VQ_POP_OK);
	vd_raw_avail_idx(&f.q, 0);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_POISONED);
	CHECK_EQ(f.vq.faults.poisoned, VQ_POISON_AVAIL_IDX);
	teardown(&f);
}

static void test_head_out_of_range_poisons(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	vd_raw_desc(&f.q, 7, buf(&f, 4), 4, 0, 0);
	CHECK_EQ(offer_and_pop(&f, 7), VQ_POP_OK);         /* size - 1 is a head */
	uint16_t before = f.vq.last_avail_idx;
	CHECK_EQ(offer_and_pop(&f, 8), VQ_POP_POISONED);
	CHECK_EQ(f.vq.faults.poisoned, VQ_POISON_HEAD_RANGE);
	CHECK_EQ(f.vq.last_avail_idx, before);             /* nothing consumed */
	/* The next entry is fine, but the queue stays dead. */
	vd_raw_offer(&f.q, 7);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_POISONED);
	teardown(&f);
}

/* A malformed chain is BAD_CHAIN (completable), a broken ring POISONED. */
static void test_bad_chain_vs_poisoned(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	vd_raw_desc(&f.q, 0, 0, 4, 0, 0);
	expect_bad_chain(&f, 0, VQ_CHAIN_ERR_ADDR);    /* and completed */
	vq_publish(&f.vq);
	CHECK_EQ(vd_used_pending(&f.q), 1);
	CHECK_EQ(vd_raw_used(&f.q, 0).id, 0);
	CHECK_EQ(vd_raw_used(&f.q, 0).len, 0);
	vd_raw_desc(&f.q, 1, buf(&f, 4), 4, 0, 0);
	CHECK_EQ(offer_and_pop(&f, 1), VQ_POP_OK);
	CHECK_EQ(offer_and_pop(&f, 0xffff), VQ_POP_POISONED);
	CHECK_EQ(f.vq.faults.poisoned, VQ_POISON_HEAD_RANGE);
	teardown(&f);
}

/* ---- vq_start ---- */

static void test_start_rejections(void)
{
	static const uint16_t bad_sizes[] = { 0, 3, 6, 100, 32767, 32769, 49152, 65535 };
	struct fixture f;

	CHECK_EQ(setup(&f, 256, false, false), 0);
	struct virtqueue good = f.vq;
	vq_stop(&good);
	struct virtqueue vq;
	for (unsigned i = 0; i < ARRAY_SIZE(bad_sizes); i++) {
		vq = good;
		vq.size = bad_sizes[i];
		CHECK_EQ(vq_start(&vq, &f.mem.gm), -EINVAL);
		CHECK(!vq.started);
	}
	/* Spec 2.7 alignment: desc 16, avail 2, used 4. */
	vq = good, vq.desc_gpa += 8;
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EINVAL);
	vq = good, vq.avail_gpa += 1;
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EINVAL);
	vq = good, vq.used_gpa += 2;
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EINVAL);
	/* Outside memory, running off its end, across the region boundary. */
	vq = good, vq.desc_gpa = 0x1000;
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EFAULT);
	CHECK(!vq.started && !vq.desc && !vq.avail && !vq.used);
	vq = good, vq.avail_gpa = MEM_BASE + MEM_SIZE - 256;
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EFAULT);
	vq = good, vq.used_gpa = MEM_BASE + MEM_SIZE - 2048;
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EFAULT);
	vq = good, vq.desc_gpa = MEM_BASE + MEM_SPLIT - 2048;
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EFAULT);
	vq = good, vq.used_gpa = UINT64_MAX - 3;
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EFAULT);
	/* The event fields count: an avail ring whose used_event is off the end. */
	vq = good, vq.avail_gpa = MEM_BASE + MEM_SIZE - (4 + 2 * 256);
	CHECK_EQ(vq_start(&vq, &f.mem.gm), -EFAULT);
	/* And the good one starts; pops on a stopped queue find nothing. */
	vq = good;
	CHECK_EQ(vq_pop(&vq, &chain), VQ_POP_EMPTY);
	CHECK_EQ(vq_push(&vq, 0, 0), -EIO);
	CHECK(!vq_publish(&vq));
	CHECK_EQ(vq_start(&vq, &f.mem.gm), 0);
	CHECK(vq.started);
	teardown(&f);
}

static void test_start_sizes(void)
{
	for (unsigned size = 1; size <= VQ_MAX_SIZE; size *= 2) {
		struct fixture f;
		CHECK_EQ(setup(&f, (uint16_t)size, false, false), 0);
		CHECK(f.vq.started);
		vd_raw_desc(&f.q, (uint16_t)(size - 1), buf(&f, 4), 4, 0, 0);
		CHECK_EQ(offer_and_pop(&f, (uint16_t)(size - 1)), VQ_POP_OK);
		teardown(&f);
	}
}

/* vq_start takes the used index from the ring (a queue handed over). */
static void test_start_continues_used_idx(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	vq_stop(&f.vq);
	vd_queue_set_start_idx(&f.q, 1234);
	vd_queue_to_vq(&f.q, &f.vq, false);
	CHECK_EQ(vq_start(&f.vq, &f.mem.gm), 0);
	CHECK_EQ(f.vq.used_idx, 1234);
	struct vd_buf b = { buf(&f, 8), 8, true };
	int head = vd_add_chain(&f.q, &b, 1, false);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vq_push(&f.vq, chain.head, 8), 0);
	vq_publish(&f.vq);
	CHECK_EQ(vd_used_idx(&f.q), 1235);
	uint32_t id = 0, len = 0;
	CHECK_EQ(vd_get_used(&f.q, &id, &len), 1);
	CHECK_EQ(id, head);
	CHECK_EQ(len, 8);
	teardown(&f);
}

/* ---- used ring ---- */

static void test_push_publish_used_ring(void)
{
	struct fixture f;
	struct vd_buf b = { 0, 64, true };
	int heads[3];

	CHECK_EQ(setup(&f, 4, false, false), 0);
	for (unsigned i = 0; i < 3; i++) {
		b.gpa = buf(&f, 64);
		heads[i] = vd_add_chain(&f.q, &b, 1, false);
	}
	vd_publish(&f.q);
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
		CHECK_EQ(vq_push(&f.vq, chain.head, 10 * (i + 1)), 0);
	}
	/* Written, but not visible until published. */
	CHECK_EQ(vd_used_idx(&f.q), 0);
	CHECK_EQ(vd_raw_used(&f.q, 1).id, heads[1]);
	CHECK_EQ(vd_raw_used(&f.q, 1).len, 20);
	vq_publish(&f.vq);
	CHECK_EQ(vd_used_idx(&f.q), 3);
	for (unsigned i = 0; i < 3; i++) {
		uint32_t id = 99, len = 99;
		CHECK_EQ(vd_get_used(&f.q, &id, &len), 1);
		CHECK_EQ(id, heads[i]);
		CHECK_EQ(len, 10 * (i + 1));
	}
	CHECK_EQ(vd_used_pending(&f.q), 0);
	/* Out-of-order completion is fine. */
	int h1 = vd_add_chain(&f.q, &b, 1, false), h2 = vd_add_chain(&f.q, &b, 1, false);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vq_push(&f.vq, (uint16_t)h2, 1), 0);
	CHECK_EQ(vq_push(&f.vq, (uint16_t)h1, 2), 0);
	vq_publish(&f.vq);
	uint32_t id, len;
	CHECK_EQ(vd_get_used(&f.q, &id, &len), 1);
	CHECK_EQ(id, h2);
	CHECK_EQ(vd_get_used(&f.q, &id, &len), 1);
	CHECK_EQ(id, h1);
	/* Bad heads are refused, not written. */
	CHECK_EQ(vq_push(&f.vq, 4, 0), -EINVAL);
	CHECK_EQ(vq_push(&f.vq, 0xffff, 0), -EINVAL);
	CHECK(!vq_publish(&f.vq));
	CHECK_EQ(vd_used_idx(&f.q), 5);
	teardown(&f);
}

/* ---- interrupt suppression ---- */

/* Offer one chain, let the device pop and push it; returns vq_publish. */
static bool one_round(struct fixture *f)
{
	struct vd_buf b = { buf(f, 16), 16, true };
	uint32_t id, len;

	if (vd_add_chain(&f->q, &b, 1, false) < 0)
		return false;
	vd_publish(&f->q);
	if (vq_pop(&f->vq, &chain) != VQ_POP_OK)
		CHECK(0);
	CHECK_EQ(vq_push(&f->vq, chain.head, 16), 0);
	bool irq = vq_publish(&f->vq);
	while (vd_get_used(&f->q, &id, &len) == 1)
		;
	return irq;
}

static void test_publish_interrupt_no_event_idx(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	CHECK(!vq_publish(&f.vq));          /* nothing new: no interrupt */
	CHECK(one_round(&f));
	vd_set_avail_flags(&f.q, VRING_AVAIL_F_NO_INTERRUPT);
	CHECK(!one_round(&f));
	CHECK(!one_round(&f));
	vd_set_avail_flags(&f.q, 0);
	CHECK(one_round(&f));
	/* used_event is ignored without EVENT_IDX. */
	vd_set_used_event(&f.q, 1000);
	CHECK(one_round(&f));
	teardown(&f);
}

static void test_publish_interrupt_event_idx(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, true, false), 0);
	/* First publish always interrupts: nothing is known yet. */
	vd_set_used_event(&f.q, 100);
	CHECK(one_round(&f));                /* used idx 1 */
	vd_set_used_event(&f.q, 3);          /* "interrupt when entry 3 is used" */
	CHECK(!one_round(&f));               /* 2 */
	CHECK(!one_round(&f));               /* 3 */
	CHECK(one_round(&f));                /* 4: entry 3 is now used */
	CHECK(!one_round(&f));               /* 5: event already passed */
	/* A batch crossing the event in the middle interrupts once. */
	vd_set_used_event(&f.q, 6);
	struct vd_buf b = { buf(&f, 16), 16, true };
	for (unsigned i = 0; i < 3; i++)
		vd_add_chain(&f.q, &b, 1, false);
	vd_publish(&f.q);
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
		vq_push(&f.vq, chain.head, 1);
	}
	CHECK(vq_publish(&f.vq));            /* 5 -> 8 crosses 6 */
	uint32_t id, len;
	while (vd_get_used(&f.q, &id, &len) == 1)
		;
	/* NO_INTERRUPT is ignored with EVENT_IDX (spec 2.7.7.2). */
	vd_set_avail_flags(&f.q, VRING_AVAIL_F_NO_INTERRUPT);
	vd_set_used_event(&f.q, 8);
	CHECK(one_round(&f));                /* 9 */
	teardown(&f);
}

static void test_publish_interrupt_event_idx_wrap(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, true, false), 0);
	vq_stop(&f.vq);
	vd_queue_set_start_idx(&f.q, 65533);
	vd_queue_to_vq(&f.q, &f.vq, false);
	CHECK_EQ(vq_start(&f.vq, &f.mem.gm), 0);
	CHECK(one_round(&f));                /* 65534, first */
	vd_set_used_event(&f.q, 0);          /* entry 0 of the next lap */
	CHECK(!one_round(&f));               /* 65535 */
	CHECK(!one_round(&f));               /* 0 */
	CHECK(one_round(&f));                /* 1 */
	vd_set_used_event(&f.q, 65535);      /* far behind: not crossed again */
	CHECK(!one_round(&f));
	teardown(&f);
}

/* ---- kick suppression ---- */

static void test_notify_no_event_idx(void)
{
	struct fixture f;
	struct vd_buf b;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	b = (struct vd_buf){ buf(&f, 16), 16, true };
	CHECK_EQ(vd_used_flags(&f.q) & VRING_USED_F_NO_NOTIFY, 0);
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(vd_publish(&f.q));                  /* kicks wanted */
	vq_disable_notify(&f.vq);
	CHECK(vd_used_flags(&f.q) & VRING_USED_F_NO_NOTIFY);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(!vd_publish(&f.q));                 /* suppressed */
	/* Enable: a chain slipped in meanwhile, so drain again. */
	CHECK(vq_enable_notify(&f.vq));
	CHECK_EQ(vd_used_flags(&f.q) & VRING_USED_F_NO_NOTIFY, 0);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK(!vq_enable_notify(&f.vq));
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(vd_publish(&f.q));
	teardown(&f);
}

/* Suppressed for a poller: with EVENT_IDX avail_event moves behind the
 * chains already made, so not even the next chain kicks (a plain disable
 * lets that one through); enabling brings kicks back. */
static void test_suppress_notify(void)
{
	for (int event_idx = 0; event_idx <= 1; event_idx++) {
		struct fixture f;
		struct vd_buf b;

		CHECK_EQ(setup(&f, 8, event_idx, false), 0);
		b = (struct vd_buf){ buf(&f, 16), 16, true };
		CHECK(!vq_enable_notify(&f.vq));
		vq_suppress_notify(&f.vq);
		CHECK(!vq_has_avail(&f.vq));
		uint16_t seen = vq_avail_idx(&f.vq);
		vd_add_chain(&f.q, &b, 1, false);
		CHECK(!vd_publish(&f.q));             /* the first chain: no kick */
		CHECK(vq_avail_idx(&f.vq) != seen);   /* what the poller sees */
		vd_add_chain(&f.q, &b, 1, false);
		CHECK(!vd_publish(&f.q));
		CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
		CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
		CHECK(!vq_enable_notify(&f.vq));
		vd_add_chain(&f.q, &b, 1, false);
		CHECK(vd_publish(&f.q));              /* kicks are back */
		teardown(&f);
	}
}

static void test_notify_event_idx(void)
{
	struct fixture f;
	struct vd_buf b;

	CHECK_EQ(setup(&f, 8, true, false), 0);
	b = (struct vd_buf){ buf(&f, 16), 16, true };
	CHECK(!vq_enable_notify(&f.vq));
	CHECK_EQ(vd_avail_event(&f.q), 0);
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(vd_publish(&f.q));                  /* entry 0 crosses avail_event 0 */
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vd_avail_event(&f.q), 1);        /* kept current while enabled */
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(vd_publish(&f.q));
	/* Disabled: avail_event goes stale, so after one more kick the driver
	 * stops kicking; the used flags are not touched. */
	vq_disable_notify(&f.vq);
	CHECK_EQ(vd_used_flags(&f.q), 0);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vd_avail_event(&f.q), 1);
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(!vd_publish(&f.q));
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(!vd_publish(&f.q));
	/* Enable: avail_event catches up and the recheck sees the chains. */
	CHECK(vq_enable_notify(&f.vq));
	CHECK_EQ(vd_avail_event(&f.q), 2);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_EMPTY);
	CHECK(!vq_enable_notify(&f.vq));
	CHECK_EQ(vd_avail_event(&f.q), 4);
	/* Drained and enabled: the next chain kicks. */
	uint32_t id, len;
	for (unsigned i = 0; i < 4; i++) {
		vq_push(&f.vq, (uint16_t)i, 0);
	}
	vq_publish(&f.vq);
	while (vd_get_used(&f.q, &id, &len) == 1)
		;
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(vd_publish(&f.q));
	teardown(&f);
}

/* The disable / drain / enable / recheck idiom as a device runs it. */
static unsigned drain(struct fixture *f)
{
	unsigned n = 0;

	do {
		vq_disable_notify(&f->vq);
		while (vq_pop(&f->vq, &chain) == VQ_POP_OK) {
			vq_push(&f->vq, chain.head, 0);
			n++;
		}
	} while (vq_enable_notify(&f->vq));
	vq_publish(&f->vq);
	return n;
}

static void test_notify_idiom(void)
{
	for (int ev = 0; ev < 2; ev++) {
		struct fixture f;
		CHECK_EQ(setup(&f, 16, ev, false), 0);
		struct vd_buf b = { buf(&f, 16), 16, true };
		uint32_t id, len;
		unsigned total = 0, offered = 0;
		for (unsigned round = 0; round < 100; round++) {
			unsigned k = round % 5 + 1;
			bool kick = false;
			for (unsigned i = 0; i < k; i++) {
				if (vd_add_chain(&f.q, &b, 1, false) >= 0)
					offered++;
				kick |= vd_publish(&f.q);
			}
			/* Every batch after a full drain must be announced. */
			CHECK(kick);
			total += drain(&f);
			while (vd_get_used(&f.q, &id, &len) == 1)
				;
		}
		CHECK_EQ(total, offered);
		teardown(&f);
	}
}

/* A queue the device pops rarely (vsock's events): with chains still
 * waiting untaken, vq_notify_on_next asks for a kick on the driver's next
 * buffer, where vq_enable_notify's avail_event (the next to take) lies
 * behind the driver's index and would let it stay silent. */
static void test_notify_on_next(void)
{
	struct fixture f;
	struct vd_buf b;

	CHECK_EQ(setup(&f, 8, true, false), 0);
	b = (struct vd_buf){ buf(&f, 16), 16, true };
	for (unsigned i = 0; i < 3; i++)
		vd_add_chain(&f.q, &b, 1, false);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	vq_push(&f.vq, chain.head, 4);
	vq_publish(&f.vq);
	vq_enable_notify(&f.vq);
	CHECK_EQ(vd_avail_event(&f.q), 1);
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(!vd_publish(&f.q));                 /* 3 -> 4 does not cross 1 */
	vq_notify_on_next(&f.vq);
	CHECK_EQ(vd_avail_event(&f.q), 4);
	vd_add_chain(&f.q, &b, 1, false);
	CHECK(vd_publish(&f.q));                  /* 4 -> 5 crosses 4: a kick */
	teardown(&f);
}

/* ---- unpop ---- */

static void test_unpop(void)
{
	struct fixture f;
	struct vd_buf b;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	b = (struct vd_buf){ buf(&f, 16), 16, true };
	int h1 = vd_add_chain(&f.q, &b, 1, false);
	int h2 = vd_add_chain(&f.q, &b, 1, false);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, h1);
	vq_unpop(&f.vq);
	CHECK(vq_has_avail(&f.vq));
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, h1);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, h2);
	vq_unpop(&f.vq);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, h2);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_EMPTY);
	teardown(&f);
}

/* ---- configure, hold, drain ---- */

static void test_configure(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	struct vq_config cfg = { .size = 8, .desc_gpa = f.q.desc_gpa, .avail_gpa = f.q.avail_gpa,
				 .used_gpa = f.q.used_gpa, .base = 3 };
	/* A started queue is not reconfigured under the device's feet. */
	CHECK_EQ(vq_configure(&f.vq, &cfg), -EBUSY);
	CHECK_EQ(vq_base(&f.vq), 0);
	vq_stop(&f.vq);
	CHECK_EQ(vq_configure(&f.vq, &cfg), 0);
	CHECK_EQ(vq_base(&f.vq), 3);
	CHECK_EQ(f.vq.size, 8);
	CHECK_EQ(f.vq.desc_gpa, f.q.desc_gpa);
	teardown(&f);
}

/* A held chain comes back from the next pop unchanged (same buffer), is
 * not counted as taken by vq_base, and goes back to the ring on stop. */
static void test_hold(void)
{
	struct fixture f;
	static struct vq_chain other;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	struct vd_buf b = { buf(&f, 16), 16, true };
	int h1 = vd_add_chain(&f.q, &b, 1, false);
	int h2 = vd_add_chain(&f.q, &b, 1, false);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	vq_hold(&f.vq, &chain);
	CHECK_EQ(vq_base(&f.vq), 0);
	CHECK(vq_has_avail(&f.vq));
	chain.in_len = 12345;   /* untouched: the held chain is not walked again */
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, h1);
	CHECK_EQ(chain.in_len, 12345);
	CHECK_EQ(vq_base(&f.vq), 1);
	/* Held, then popped into another buffer: walked again there. */
	vq_hold(&f.vq, &chain);
	CHECK_EQ(vq_pop(&f.vq, &other), VQ_POP_OK);
	CHECK_EQ(other.head, h1);
	CHECK_EQ(other.in_len, 16);
	/* Held across a stop: given back, so a restart takes it again. */
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, h2);
	vq_hold(&f.vq, &chain);
	vq_stop(&f.vq);
	CHECK_EQ(vq_base(&f.vq), 1);
	CHECK_EQ(vq_start(&f.vq, &f.mem.gm), 0);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(chain.head, h2);
	CHECK_EQ(chain.in_len, 16);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_EMPTY);
	teardown(&f);
}

struct drain_ctx {
	unsigned seen, bad, hold_at;
	uint64_t bytes_each;
};

static enum vq_verdict count_chain(void *ctx, struct vq_chain *c, enum vq_pop_result r,
				   uint64_t *bytes)
{
	struct drain_ctx *d = ctx;

	if (r == VQ_POP_BAD_CHAIN) {
		d->bad++;
		return VQ_CONSUMED;
	}
	if (d->hold_at && d->seen + 1 == d->hold_at) {
		d->hold_at = 0;   /* hold once, then take it */
		return VQ_HOLD;
	}
	d->seen++;
	*bytes += d->bytes_each;
	return VQ_CONSUMED;
}

/* vq_drain stops at the chain budget, at the byte budget (whichever comes
 * first), when a chain is held, and when the ring is empty (kicks on). */
static void test_drain_budgets(void)
{
	struct fixture f;
	struct drain_ctx d = { .bytes_each = 1000 };

	CHECK_EQ(setup(&f, 16, false, false), 0);
	struct vd_buf b = { buf(&f, 16), 16, true };
	for (int i = 0; i < 10; i++)
		CHECK(vd_add_chain(&f.q, &b, 1, false) >= 0);
	vd_publish(&f.q);
	struct vq_budget by_chains = { .chains = 4, .bytes = UINT64_MAX };
	CHECK_EQ(vq_drain(&f.vq, &chain, &by_chains, count_chain, &d), VQ_DRAIN_BUDGET);
	CHECK_EQ(d.seen, 4);
	CHECK(!f.vq.notify_enabled);        /* more may wait: no kicks meanwhile */
	struct vq_budget by_bytes = { .chains = 100, .bytes = 2500 };
	CHECK_EQ(vq_drain(&f.vq, &chain, &by_bytes, count_chain, &d), VQ_DRAIN_BUDGET);
	CHECK_EQ(d.seen, 7);                /* 3000 bytes >= 2500 after the third */
	d.hold_at = 8;
	CHECK_EQ(vq_drain(&f.vq, &chain, &by_chains, count_chain, &d), VQ_DRAIN_HELD);
	CHECK_EQ(d.seen, 7);
	CHECK_EQ(vq_base(&f.vq), 7);
	CHECK_EQ(vq_drain(&f.vq, &chain, &by_chains, count_chain, &d), VQ_DRAIN_EMPTY);
	CHECK_EQ(d.seen, 10);
	CHECK(f.vq.notify_enabled);
	/* A bad chain reaches the handler as such and is counted by the core. */
	vd_raw_desc(&f.q, 0, f.q.desc_gpa, 16, VRING_DESC_F_NEXT, 99);
	vd_raw_offer(&f.q, 0);
	CHECK_EQ(vq_drain(&f.vq, &chain, &by_chains, count_chain, &d), VQ_DRAIN_EMPTY);
	CHECK_EQ(d.bad, 1);
	CHECK_EQ(f.vq.faults.chains_invalid, 1);
	CHECK_EQ(f.vq.faults.last_chain_error, VQ_CHAIN_ERR_NEXT_RANGE);
	/* A broken avail ring ends the drain and is reported new exactly once. */
	vd_raw_avail_idx(&f.q, (uint16_t)(f.vq.last_avail_idx + 17));
	CHECK_EQ(vq_drain(&f.vq, &chain, &by_chains, count_chain, &d), VQ_DRAIN_POISONED);
	CHECK(vq_poison_is_new(&f.vq));
	CHECK(!vq_poison_is_new(&f.vq));
	teardown(&f);
}

/* vq_push failures are counted by the core. */
static void test_push_failures_counted(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, false), 0);
	CHECK_EQ(vq_push(&f.vq, 8, 0), -EINVAL);
	vq_stop(&f.vq);
	CHECK_EQ(vq_push(&f.vq, 0, 0), -EIO);
	CHECK_EQ(f.vq.faults.used_add_failed, 2);
	teardown(&f);
}

/* ---- wrap-around ---- */

/* More than 65536 chains through a small queue, in batches of varying size,
 * direct and indirect: both 16-bit indices wrap and every completion matches. */
static void test_used_idx_wrap(void)
{
	struct fixture f;
	const unsigned total = 70000;
	unsigned done = 0, sent = 0, bad = 0;
	uint32_t id, len;

	CHECK_EQ(setup(&f, 4, true, true), 0);
	struct vd_buf b[2] = { { buf(&f, 8), 8, false }, { buf(&f, 32), 32, true } };
	while (done < total) {
		unsigned batch = sent % 4 + 1;
		for (unsigned i = 0; i < batch && sent < total; i++) {
			if (vd_add_chain(&f.q, b, 2, sent % 3 == 0) < 0)
				break;
			sent++;
		}
		vd_publish(&f.q);
		while (vq_pop(&f.vq, &chain) == VQ_POP_OK)
			vq_push(&f.vq, chain.head, (uint32_t)(chain.in_len - (chain.head & 1)));
		vq_publish(&f.vq);
		int r;
		while ((r = vd_get_used(&f.q, &id, &len)) != 0) {
			if (r < 0 || len != 32u - (id & 1))
				bad++;
			done++;
		}
		vd_set_used_event(&f.q, f.q.last_used);
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(done, total);
	CHECK_EQ(f.q.completed, total);
	CHECK_EQ(vd_used_idx(&f.q), (uint16_t)total);
	CHECK_EQ(f.vq.last_avail_idx, (uint16_t)total);
	CHECK_EQ(f.q.num_free, 4);
	CHECK(!f.vq.faults.poisoned);
	teardown(&f);
}

/* ---- region crossings ---- */

static void test_chain_crosses_region_boundary(void)
{
	struct fixture f;
	char text[33] = "0123456789abcdefghijklmnopqrstuv", back[33] = { 0 };

	CHECK_EQ(setup(&f, 8, false, true), 0);
	uint64_t across = vd_alloc_crossing(&f.mem, 32, 10);
	CHECK(across != VD_NO_GPA);
	CHECK_EQ(vd_write(&f.mem, across, text, 32), 0);
	struct vd_buf b[2] = { { across, 32, false }, { across, 32, true } };
	for (int indirect = 0; indirect < 2; indirect++) {
		int head = vd_add_chain(&f.q, b, 2, indirect);
		vd_publish(&f.q);
		CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
		CHECK_EQ(chain.head, head);
		CHECK_EQ(chain.n_out, 2);
		CHECK_EQ(chain.n_in, 2);
		CHECK_EQ(chain.iov[0].iov_len, 10);
		CHECK_EQ(chain.iov[1].iov_len, 22);
		CHECK_EQ(chain.out_len, 32);
		CHECK_EQ(iov_to_buf(chain.iov, chain.n_out, 0, back, 32), 32);
		CHECK(memcmp(back, text, 32) == 0);
		/* Writing through the writable side lands in both regions. */
		CHECK_EQ(iov_from_buf(vq_chain_in(&chain), chain.n_in, 0, "ZYXWVUTSRQPONMLKJIHGFEDCBA987654",
				      32), 32);
		CHECK_EQ(vd_read(&f.mem, across, back, 32), 0);
		CHECK(memcmp(back, "ZYXWVUTSRQPONMLKJIHGFEDCBA987654", 32) == 0);
		vd_write(&f.mem, across, text, 32);
		vq_push(&f.vq, chain.head, 32);
		vq_publish(&f.vq);
		uint32_t id, len;
		CHECK_EQ(vd_get_used(&f.q, &id, &len), 1);
	}
	teardown(&f);
}

/* ---- dirty tracking (for Diff snapshots) ---- */

/* Whether guest_mem's bitmap has the page holding @gpa. */
static bool page_dirty(const struct guest_mem *gm, uint64_t gpa)
{
	for (unsigned i = 0; i < gm->nregions; i++) {
		const struct guest_mem_region *r = &gm->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			uint64_t pg = (gpa - r->gpa) / GUEST_MEM_PAGE;
			return r->dirty && (r->dirty[pg / 64] >> (pg % 64) & 1);
		}
	}
	return false;
}

static bool in_range(uint64_t gpa, uint64_t start, uint64_t len)
{
	uint64_t first = start & ~(uint64_t)(GUEST_MEM_PAGE - 1);

	return gpa >= first && gpa < start + len;
}

/* Every page of the memory is dirty exactly when it holds a byte of
 * [a, a + alen) or [b, b + blen); the count of mismatches. */
static unsigned dirty_mismatches(const struct fixture *f, uint64_t a, uint64_t alen, uint64_t b,
				 uint64_t blen)
{
	unsigned bad = 0;

	for (uint64_t gpa = MEM_BASE; gpa < MEM_BASE + MEM_SIZE; gpa += GUEST_MEM_PAGE) {
		bool want = in_range(gpa, a, alen) || in_range(gpa, b, blen);
		bad += page_dirty(&f->mem.gm, gpa) != want;
	}
	return bad;
}

static void clear_dirty(struct fixture *f)
{
	uint64_t sink[(MEM_SIZE / GUEST_MEM_PAGE + 63) / 64];

	for (unsigned i = 0; i < f->mem.gm.nregions; i++)
		guest_mem_take_dirty(&f->mem.gm, i, sink);
}

static void test_dirty_marks_writable_buffers(void)
{
	struct fixture f;

	CHECK_EQ(setup(&f, 8, false, true), 0);
	CHECK_EQ(guest_mem_track_dirty(&f.mem.gm), 0);
	clear_dirty(&f);
	/* A readable buffer on pages of its own, a writable one across the
	 * region boundary and a page edge: only the writable one's pages. */
	uint64_t ro = vd_alloc(&f.mem, 3 * GUEST_MEM_PAGE, GUEST_MEM_PAGE);
	uint64_t rw = vd_alloc_crossing(&f.mem, 2 * GUEST_MEM_PAGE, 100);
	struct vd_buf b[2] = { { ro, 3 * GUEST_MEM_PAGE, false }, { rw, 2 * GUEST_MEM_PAGE, true } };
	for (int indirect = 0; indirect < 2; indirect++) {
		vd_add_chain(&f.q, b, 2, indirect);
		vd_publish(&f.q);
		CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
		CHECK_EQ(dirty_mismatches(&f, rw, 2 * GUEST_MEM_PAGE, 0, 0), 0);
		CHECK(page_dirty(&f.mem.gm, rw) && page_dirty(&f.mem.gm, rw + 2 * GUEST_MEM_PAGE - 1));
		CHECK(!page_dirty(&f.mem.gm, ro));
		/* Completing it writes the used ring: its pages too. */
		CHECK_EQ(vq_push(&f.vq, chain.head, 0), 0);
		vq_publish(&f.vq);
		CHECK_EQ(dirty_mismatches(&f, rw, 2 * GUEST_MEM_PAGE, f.vq.used_gpa, 4 + 8 * 8 + 2), 0);
		clear_dirty(&f);
		CHECK_EQ(dirty_mismatches(&f, 0, 0, 0, 0), 0);
	}
	teardown(&f);
}

static void test_dirty_used_ring_writes(void)
{
	struct fixture f;
	struct vd_buf b = { 0, 64, false };

	/* EVENT_IDX: popping writes avail_event, in the used ring. */
	CHECK_EQ(setup(&f, 16, true, false), 0);
	CHECK_EQ(guest_mem_track_dirty(&f.mem.gm), 0);
	clear_dirty(&f);
	b.gpa = vd_alloc(&f.mem, 64, GUEST_MEM_PAGE);
	vd_add_chain(&f.q, &b, 1, false);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(dirty_mismatches(&f, f.vq.used_gpa, 4 + 8 * 16 + 2, 0, 0), 0);
	clear_dirty(&f);
	/* Restarting the queue rewrites avail_event: marked again. */
	vq_stop(&f.vq);
	CHECK_EQ(vq_start(&f.vq, &f.mem.gm), 0);
	CHECK(page_dirty(&f.mem.gm, f.vq.used_gpa));
	CHECK(!page_dirty(&f.mem.gm, b.gpa));
	teardown(&f);
}

static void test_dirty_off_marks_nothing(void)
{
	struct fixture f;
	struct vd_buf b = { 0, 64, true };

	CHECK_EQ(setup(&f, 8, true, false), 0);
	b.gpa = vd_alloc(&f.mem, 64, 8);
	vd_add_chain(&f.q, &b, 1, false);
	vd_publish(&f.q);
	CHECK_EQ(vq_pop(&f.vq, &chain), VQ_POP_OK);
	CHECK_EQ(vq_push(&f.vq, chain.head, 64), 0);
	vq_publish(&f.vq);
	CHECK(!f.mem.gm.tracking);
	for (unsigned i = 0; i < f.mem.gm.nregions; i++)
		CHECK(f.mem.gm.regions[i].dirty == NULL);
	CHECK_EQ(dirty_mismatches(&f, 0, 0, 0, 0), 0);
	teardown(&f);
}

static void test_error_strings(void)
{
	for (int e = VQ_CHAIN_ERR_NONE; e <= VQ_CHAIN_ERR_LEN; e++)
		CHECK(strcmp(vq_chain_error_str(e), "unknown") != 0);
	CHECK(strcmp(vq_chain_error_str((enum vq_chain_error)999), "unknown") == 0);
	for (int p = VQ_POISON_NONE; p <= VQ_POISON_HEAD_RANGE; p++)
		CHECK(strcmp(vq_poison_str(p), "unknown") != 0);
	CHECK(strcmp(vq_poison_str((enum vq_poison_reason)-1), "unknown") == 0);
}

int main(void)
{
	RUN_TEST(test_pop_direct_chain);
	RUN_TEST(test_pop_indirect_chain);
	RUN_TEST(test_pop_direct_then_indirect);
	RUN_TEST(test_chain_using_whole_ring);
	RUN_TEST(test_zero_length_buffers);
	RUN_TEST(test_loop_self);
	RUN_TEST(test_loop_back);
	RUN_TEST(test_chain_longer_than_queue);
	RUN_TEST(test_next_out_of_range);
	RUN_TEST(test_indirect_in_indirect);
	RUN_TEST(test_indirect_not_negotiated);
	RUN_TEST(test_indirect_bad_length);
	RUN_TEST(test_indirect_with_next);
	RUN_TEST(test_indirect_table_outside_memory);
	RUN_TEST(test_buffer_outside_memory);
	RUN_TEST(test_length_overflow);
	RUN_TEST(test_readable_after_writable);
	RUN_TEST(test_readable_after_empty_writable);
	RUN_TEST(test_start_reenables_notify);
	RUN_TEST(test_too_many_iovecs);
	RUN_TEST(test_avail_idx_jump_poisons);
	RUN_TEST(test_taken_chains_count_as_outstanding);
	RUN_TEST(test_avail_idx_backwards_poisons);
	RUN_TEST(test_head_out_of_range_poisons);
	RUN_TEST(test_bad_chain_vs_poisoned);
	RUN_TEST(test_start_rejections);
	RUN_TEST(test_start_sizes);
	RUN_TEST(test_start_continues_used_idx);
	RUN_TEST(test_push_publish_used_ring);
	RUN_TEST(test_publish_interrupt_no_event_idx);
	RUN_TEST(test_publish_interrupt_event_idx);
	RUN_TEST(test_publish_interrupt_event_idx_wrap);
	RUN_TEST(test_notify_no_event_idx);
	RUN_TEST(test_notify_event_idx);
	RUN_TEST(test_suppress_notify);
	RUN_TEST(test_notify_idiom);
	RUN_TEST(test_notify_on_next);
	RUN_TEST(test_unpop);
	RUN_TEST(test_configure);
	RUN_TEST(test_hold);
	RUN_TEST(test_drain_budgets);
	RUN_TEST(test_push_failures_counted);
	RUN_TEST(test_used_idx_wrap);
	RUN_TEST(test_chain_crosses_region_boundary);
	RUN_TEST(test_dirty_marks_writable_buffers);
	RUN_TEST(test_dirty_used_ring_writes);
	RUN_TEST(test_dirty_off_marks_nothing);
	RUN_TEST(test_error_strings);
	return CHECK_DONE();
}
