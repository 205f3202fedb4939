/*
 * Guest memory map: region table rules, translation to iovecs at every edge
 * (crossings, gaps, wrap-around, iovec limits), and the iovec copy helpers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/guest_mem.h"
#include "vdriver.h"

static uint8_t host_a[8192], host_b[8192], host_c[8192];

/* Three regions: [0x10000, +8K) [0x12000, +8K) adjacent, then a gap, then
 * [0x20000, +8K). */
static void three_regions(struct guest_mem *m)
{
	guest_mem_init(m);
	CHECK_EQ(guest_mem_add(m, 0x10000, 8192, 0, host_a, NULL, 0), 0);
	CHECK_EQ(guest_mem_add(m, 0x12000, 8192, 0, host_b, NULL, 0), 0);
	CHECK_EQ(guest_mem_add(m, 0x20000, 8192, 0, host_c, NULL, 0), 0);
}

static void test_add_rejects_bad_regions(void)
{
	struct guest_mem m;

	guest_mem_init(&m);
	CHECK_EQ(guest_mem_add(&m, 0x1000, 0, 0, host_a, NULL, 0), -EINVAL);
	CHECK_EQ(guest_mem_add(&m, UINT64_MAX - 100, 4096, 0, host_a, NULL, 0), -EINVAL);
	CHECK_EQ(guest_mem_add(&m, 0x1000, 4096, UINT64_MAX - 100, host_a, NULL, 0), -EINVAL);
	CHECK_EQ(guest_mem_add(&m, 0x1000, 4096, 0, NULL, NULL, 0), -EINVAL);
	CHECK_EQ(m.nregions, 0);
	/* Right below the top of the address space is fine. */
	CHECK_EQ(guest_mem_add(&m, UINT64_MAX - 8192, 4096, 0, host_a, NULL, 0), 0);
	CHECK_EQ(m.nregions, 1);
}

static void test_add_overlaps(void)
{
	struct guest_mem m;

	guest_mem_init(&m);
	CHECK_EQ(guest_mem_add(&m, 0x10000, 0x2000, 0x7000000, host_a, NULL, 0), 0);
	/* Same start, inside, straddling either end, containing. */
	CHECK_EQ(guest_mem_add(&m, 0x10000, 0x1000, 0, host_b, NULL, 0), -EINVAL);
	CHECK_EQ(guest_mem_add(&m, 0x11000, 0x800, 0, host_b, NULL, 0), -EINVAL);
	CHECK_EQ(guest_mem_add(&m, 0xf000, 0x1001, 0, host_b, NULL, 0), -EINVAL);
	CHECK_EQ(guest_mem_add(&m, 0x11fff, 0x2000, 0, host_b, NULL, 0), -EINVAL);
	CHECK_EQ(guest_mem_add(&m, 0x8000, 0x10000, 0, host_b, NULL, 0), -EINVAL);
	/* Touching either end is not an overlap. */
	CHECK_EQ(guest_mem_add(&m, 0xf000, 0x1000, 0, host_b, NULL, 0), 0);
	CHECK_EQ(guest_mem_add(&m, 0x12000, 0x1000, 0, host_c, NULL, 0), 0);
	/* Frontend addresses may not overlap either, but 0 means "none". */
	CHECK_EQ(guest_mem_add(&m, 0x40000, 0x1000, 0x7001000, host_c, NULL, 0), -EINVAL);
	CHECK_EQ(guest_mem_add(&m, 0x40000, 0x1000, 0x7002000, host_c, NULL, 0), 0);
	CHECK_EQ(m.nregions, 4);
}

static void test_add_full_table(void)
{
	struct guest_mem m;

	guest_mem_init(&m);
	for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
		CHECK_EQ(guest_mem_add(&m, 0x100000ull * i, 4096, 0, host_a, NULL, 0), 0);
	CHECK_EQ(guest_mem_add(&m, 0x100000ull * 100, 4096, 0, host_a, NULL, 0), -ENOSPC);
	CHECK_EQ(m.nregions, GUEST_MEM_MAX_REGIONS);
	/* clear empties the table (nothing owned here, nothing unmapped). */
	guest_mem_clear(&m);
	CHECK_EQ(m.nregions, 0);
	CHECK_EQ(guest_mem_add(&m, 0, 4096, 0, host_a, NULL, 0), 0);
}

static void test_add_fd_unaligned_offset(void)
{
	struct guest_mem m;
	int fd = memfd_create("gm-test", MFD_CLOEXEC);

	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, 3 * 4096), 0);
	uint8_t pattern[64];
	for (unsigned i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 1);
	CHECK_EQ(pwrite(fd, pattern, sizeof(pattern), 4096 + 100), (ssize_t)sizeof(pattern));
	guest_mem_init(&m);
	/* The region starts 100 bytes into the second page of the file. */
	CHECK_EQ(guest_mem_add_fd(&m, 0x80000, 4096, 0, fd, 4096 + 100), 0);
	uint8_t *p = guest_mem_ptr(&m, 0x80000, sizeof(pattern));
	CHECK(p != NULL);
	if (p)
		CHECK(memcmp(p, pattern, sizeof(pattern)) == 0);
	CHECK_EQ(guest_mem_add_fd(&m, 0x90000, 0, 0, fd, 0), -EINVAL);
	CHECK_EQ(guest_mem_add_fd(&m, 0x90000, 4096, 0, fd, UINT64_MAX - 10), -EINVAL);
	/* An overlap is refused and its mapping released. */
	CHECK_EQ(guest_mem_add_fd(&m, 0x80800, 4096, 0, fd, 0), -EINVAL);
	CHECK_EQ(guest_mem_add_fd(&m, 0x80000, 4096, 0, -1, 0), -EBADF);
	CHECK_EQ(m.nregions, 1);
	guest_mem_clear(&m);
	CHECK_EQ(m.nregions, 0);
	close(fd);
}

static void test_to_iov_one_region(void)
{
	struct guest_mem m;
	struct iovec iov[4];

	three_regions(&m);
	CHECK_EQ(guest_mem_to_iov(&m, 0x10010, 100, iov, 4), 1);
	CHECK(iov[0].iov_base == host_a + 0x10);
	CHECK_EQ(iov[0].iov_len, 100);
	/* The last byte of a region, and a whole region. */
	CHECK_EQ(guest_mem_to_iov(&m, 0x21fff, 1, iov, 4), 1);
	CHECK(iov[0].iov_base == host_c + 8191);
	CHECK_EQ(guest_mem_to_iov(&m, 0x20000, 8192, iov, 1), 1);
	CHECK_EQ(iov[0].iov_len, 8192);
}

static void test_to_iov_across_regions(void)
{
	struct guest_mem m;
	struct iovec iov[4];

	three_regions(&m);
	CHECK_EQ(guest_mem_to_iov(&m, 0x11ff0, 0x20, iov, 4), 2);
	CHECK(iov[0].iov_base == host_a + 8192 - 16);
	CHECK_EQ(iov[0].iov_len, 16);
	CHECK(iov[1].iov_base == host_b);
	CHECK_EQ(iov[1].iov_len, 16);
	/* Both regions whole. */
	CHECK_EQ(guest_mem_to_iov(&m, 0x10000, 16384, iov, 4), 2);
	CHECK_EQ(iov_length(iov, 2), 16384);
}

static void test_to_iov_outside(void)
{
	struct guest_mem m;
	struct iovec iov[4];

	three_regions(&m);
	CHECK_EQ(guest_mem_to_iov(&m, 0x0, 1, iov, 4), -EFAULT);
	CHECK_EQ(guest_mem_to_iov(&m, 0xffff, 2, iov, 4), -EFAULT);      /* starts before */
	CHECK_EQ(guest_mem_to_iov(&m, 0x13fff, 2, iov, 4), -EFAULT);     /* runs into the gap */
	CHECK_EQ(guest_mem_to_iov(&m, 0x14000, 1, iov, 4), -EFAULT);     /* in the gap */
	CHECK_EQ(guest_mem_to_iov(&m, 0x21fff, 2, iov, 4), -EFAULT);     /* past the end */
	CHECK_EQ(guest_mem_to_iov(&m, 0x10000, UINT64_MAX, iov, 4), -EFAULT);
	CHECK_EQ(guest_mem_to_iov(&m, 0x10000, 1ull << 40, iov, 4), -EFAULT);
}

static void test_to_iov_len0_and_wrap(void)
{
	struct guest_mem m;
	struct iovec iov[4];

	three_regions(&m);
	CHECK_EQ(guest_mem_to_iov(&m, 0x10000, 0, iov, 4), 0);
	CHECK_EQ(guest_mem_to_iov(&m, 0x10000, 0, iov, 0), 0);
	/* Zero bytes touch no memory, wherever they are. */
	CHECK_EQ(guest_mem_to_iov(&m, 0xdead0000, 0, iov, 4), 0);
	CHECK_EQ(guest_mem_to_iov(&m, UINT64_MAX - 4, 10, iov, 4), -EFAULT);
	CHECK_EQ(guest_mem_to_iov(&m, 0x10000, UINT64_MAX - 0x8000, iov, 4), -EFAULT);
	/* A region at the top of the address space: a range running off its
	 * end wraps and is refused, not translated from address 0. */
	static uint8_t top[4096];
	struct guest_mem t;
	guest_mem_init(&t);
	CHECK_EQ(guest_mem_add(&t, 0, 4096, 0, host_a, NULL, 0), 0);
	CHECK_EQ(guest_mem_add(&t, UINT64_MAX - 4096 - 4095, 4096, 0, top, NULL, 0), 0);
	CHECK_EQ(guest_mem_to_iov(&t, UINT64_MAX - 4096 - 10, 4096 + 20, iov, 4), -EFAULT);
	CHECK_EQ(guest_mem_to_iov(&t, UINT64_MAX - 10, 20, iov, 4), -EFAULT);
}

static void test_to_iov_max_iov(void)
{
	struct guest_mem m;
	struct iovec iov[4];

	three_regions(&m);
	CHECK_EQ(guest_mem_to_iov(&m, 0x11ff0, 0x20, iov, 1), -ENOBUFS);
	CHECK_EQ(guest_mem_to_iov(&m, 0x10000, 1, iov, 0), -ENOBUFS);
	CHECK_EQ(guest_mem_to_iov(&m, 0x11ff0, 0x20, iov, 2), 2);
	/* Outside memory wins over the iovec limit. */
	CHECK_EQ(guest_mem_to_iov(&m, 0x14000, 1, iov, 0), -EFAULT);
}

static void test_ptr(void)
{
	struct guest_mem m;

	three_regions(&m);
	CHECK(guest_mem_ptr(&m, 0x10000, 8192) == host_a);
	CHECK(guest_mem_ptr(&m, 0x11fff, 1) == host_a + 8191);
	CHECK(guest_mem_ptr(&m, 0x11fff, 0) == host_a + 8191);
	CHECK(guest_mem_ptr(&m, 0x10000, 8193) == NULL);       /* contiguous in guest, not one region */
	CHECK(guest_mem_ptr(&m, 0x11ff0, 32) == NULL);
	CHECK(guest_mem_ptr(&m, 0x14000, 1) == NULL);
	CHECK(guest_mem_ptr(&m, 0x14000, 0) == NULL);
	CHECK(guest_mem_ptr(&m, 0x10001, UINT64_MAX) == NULL);
	CHECK(guest_mem_ptr(&m, UINT64_MAX, 2) == NULL);
}

static void test_uva_to_gpa(void)
{
	struct guest_mem m;
	uint64_t gpa = 0;

	guest_mem_init(&m);
	CHECK_EQ(guest_mem_add(&m, 0x10000, 8192, 0x7f0000000000ull, host_a, NULL, 0), 0);
	CHECK_EQ(guest_mem_add(&m, 0x12000, 8192, 0, host_b, NULL, 0), 0);
	CHECK_EQ(guest_mem_uva_to_gpa(&m, 0x7f0000000010ull, 16, &gpa), 0);
	CHECK_EQ(gpa, 0x10010);
	CHECK_EQ(guest_mem_uva_to_gpa(&m, 0x7f0000001ff0ull, 16, &gpa), 0);
	CHECK_EQ(gpa, 0x11ff0);
	CHECK_EQ(guest_mem_uva_to_gpa(&m, 0x7f0000001ff0ull, 17, &gpa), -EFAULT);
	CHECK_EQ(guest_mem_uva_to_gpa(&m, 0x7f0000002000ull, 1, &gpa), -EFAULT);
	CHECK_EQ(guest_mem_uva_to_gpa(&m, 0x7effffffffffull, 1, &gpa), -EFAULT);
	CHECK_EQ(guest_mem_uva_to_gpa(&m, 0x7f0000000000ull, UINT64_MAX, &gpa), -EFAULT);
	/* A region without a frontend address never matches, not even 0. */
	CHECK_EQ(guest_mem_uva_to_gpa(&m, 0, 1, &gpa), -EFAULT);
	CHECK_EQ(guest_mem_uva_to_gpa(&m, 0x100, 1, &gpa), -EFAULT);
}

/* The vdriver's split memory as the device sees it: two regions adjacent in
 * guest space, apart on the host. */
static void test_vdriver_split_memory(void)
{
	struct vd_mem vm;
	struct iovec iov[4];

	CHECK_EQ(vd_mem_init(&vm, 0x40000000, 64 * 4096, 16 * 4096), 0);
	uint64_t split = vd_mem_split_gpa(&vm);
	CHECK_EQ(split, 0x40000000 + 16 * 4096);
	CHECK_EQ(vm.gm.nregions, 2);
	CHECK_EQ(guest_mem_to_iov(&vm.gm, split - 8, 16, iov, 4), 2);
	CHECK((uint8_t *)iov[0].iov_base + 8 != iov[1].iov_base);
	CHECK_EQ(vd_write(&vm, split - 8, "0123456789abcdef", 16), 0);
	char back[17] = { 0 };
	CHECK_EQ(iov_to_buf(iov, 2, 0, back, 16), 16);
	CHECK(strcmp(back, "0123456789abcdef") == 0);
	CHECK(guest_mem_ptr(&vm.gm, split - 8, 16) == NULL);
	CHECK_EQ(guest_mem_to_iov(&vm.gm, 0x40000000 - 1, 2, iov, 4), -EFAULT);
	CHECK_EQ(guest_mem_to_iov(&vm.gm, 0x40000000 + 64 * 4096 - 1, 2, iov, 4), -EFAULT);
	/* Frontend addresses translate back. */
	uint64_t gpa = 0;
	CHECK_EQ(guest_mem_uva_to_gpa(&vm.gm, (uint64_t)(uintptr_t)vm.regions[1].host + 5, 1,
				      &gpa), 0);
	CHECK_EQ(gpa, split + 5);
	vd_mem_destroy(&vm);
}

/* ---- iovec helpers ---- */

static void test_iov_length(void)
{
	char a[3], b[5];
	struct iovec iov[] = { { a, 3 }, { NULL, 0 }, { b, 5 }, { b, 0 } };

	CHECK_EQ(iov_length(iov, 4), 8);
	CHECK_EQ(iov_length(iov, 0), 0);
}

static void test_iov_from_to_buf(void)
{
	char a[4] = { 0 }, b[4] = { 0 }, c[4] = { 0 };
	char z[1];
	struct iovec iov[] = { { a, 4 }, { z, 0 }, { b, 4 }, { z, 0 }, { c, 4 } };

	CHECK_EQ(iov_from_buf(iov, 5, 0, "ABCDEFGHIJKL", 12), 12);
	CHECK(memcmp(a, "ABCD", 4) == 0 && memcmp(b, "EFGH", 4) == 0 && memcmp(c, "IJKL", 4) == 0);
	/* Offsets landing on a boundary, and inside a piece. */
	CHECK_EQ(iov_from_buf(iov, 5, 4, "xy", 2), 2);
	CHECK(memcmp(b, "xyGH", 4) == 0);
	CHECK_EQ(iov_from_buf(iov, 5, 7, "123456789", 9), 5);
	CHECK(memcmp(b, "xyG1", 4) == 0 && memcmp(c, "2345", 4) == 0);
	/* At or past the end: nothing. */
	CHECK_EQ(iov_from_buf(iov, 5, 12, "q", 1), 0);
	CHECK_EQ(iov_from_buf(iov, 5, 1000, "q", 1), 0);
	CHECK_EQ(iov_from_buf(iov, 5, 0, "q", 0), 0);
	char out[16] = { 0 };
	CHECK_EQ(iov_to_buf(iov, 5, 3, out, sizeof(out)), 9);
	CHECK(memcmp(out, "DxyG12345", 9) == 0);
	CHECK_EQ(iov_to_buf(iov, 5, 11, out, 1), 1);
	CHECK_EQ(out[0], '5');
	CHECK_EQ(iov_to_buf(iov, 5, 12, out, 4), 0);
	CHECK_EQ(iov_to_buf(iov, 0, 0, out, 4), 0);
}

static void test_iov_copy(void)
{
	char s1[5] = "abcde", s2[3] = "fgh", d1[2], d2[7], d3[10];
	char z[1];
	struct iovec src[] = { { z, 0 }, { s1, 5 }, { z, 0 }, { z, 0 }, { s2, 3 } };
	struct iovec dst[] = { { d1, 2 }, { z, 0 }, { d2, 7 }, { d3, 10 } };

	memset(d1, '.', 2), memset(d2, '.', 7), memset(d3, '.', 10);
	CHECK_EQ(iov_copy(dst, 4, 0, src, 5, 0, 100), 8);
	CHECK(memcmp(d1, "ab", 2) == 0 && memcmp(d2, "cdefgh.", 7) == 0);
	/* With offsets on both sides and a length limit. */
	memset(d2, '.', 7), memset(d3, '.', 10);
	CHECK_EQ(iov_copy(dst, 4, 8, src, 5, 4, 3), 3);
	CHECK(memcmp(d2, "......e", 7) == 0 && memcmp(d3, "fg", 2) == 0);
	/* Destination shorter than the source. */
	CHECK_EQ(iov_copy(dst, 1, 0, src, 5, 0, 8), 2);
	/* Offsets past either end, and zero counts. */
	CHECK_EQ(iov_copy(dst, 4, 19, src, 5, 0, 8), 0);
	CHECK_EQ(iov_copy(dst, 4, 0, src, 5, 8, 8), 0);
	CHECK_EQ(iov_copy(dst, 0, 0, src, 5, 0, 8), 0);
	CHECK_EQ(iov_copy(dst, 4, 0, src, 0, 0, 8), 0);
	/* Only zero-length pieces. */
	struct iovec zeros[] = { { z, 0 }, { z, 0 } };
	CHECK_EQ(iov_copy(dst, 4, 0, zeros, 2, 0, 8), 0);
	CHECK_EQ(iov_copy(zeros, 2, 0, src, 5, 0, 8), 0);
}

static void test_iov_skip(void)
{
	char a[4], b[4];
	char z[1];
	struct iovec iov[] = { { a, 4 }, { z, 0 }, { b, 4 } };
	struct iovec out[4];

	CHECK_EQ(iov_skip(iov, 3, 0, out, 4), 3);
	CHECK(out[0].iov_base == a && out[0].iov_len == 4);
	CHECK_EQ(iov_skip(iov, 3, 2, out, 4), 3);
	CHECK(out[0].iov_base == a + 2 && out[0].iov_len == 2);
	/* On a boundary: the empty piece is skipped too. */
	CHECK_EQ(iov_skip(iov, 3, 4, out, 4), 1);
	CHECK(out[0].iov_base == b && out[0].iov_len == 4);
	CHECK_EQ(iov_skip(iov, 3, 7, out, 4), 1);
	CHECK(out[0].iov_base == b + 3 && out[0].iov_len == 1);
	CHECK_EQ(iov_skip(iov, 3, 8, out, 4), 0);
	CHECK_EQ(iov_skip(iov, 3, 9999, out, 4), 0);
	/* The output limit truncates. */
	CHECK_EQ(iov_skip(iov, 3, 1, out, 1), 1);
	CHECK_EQ(out[0].iov_len, 3);
	CHECK_EQ(iov_skip(iov, 3, 1, out, 0), 0);
}

/*
 * readv/writev accept { NULL, 0 } pieces, so the helpers must too. Run in a
 * child: under UBSan a memcpy to NULL (even of 0 bytes) aborts the process,
 * and the other cases should still report.
 */
static int null_piece_child(void)
{
	char a[4], b[4], c[4], d[4], out[8];
	struct iovec iov[] = { { a, 4 }, { NULL, 0 }, { b, 4 } };
	struct iovec iov2[] = { { c, 4 }, { NULL, 0 }, { NULL, 0 }, { d, 4 } };

	if (iov_from_buf(iov, 3, 0, "ABCDEFGH", 8) != 8)
		return 1;
	if (iov_to_buf(iov, 3, 0, out, 8) != 8 || memcmp(out, "ABCDEFGH", 8))
		return 1;
	if (iov_copy(iov2, 4, 0, iov, 3, 0, 8) != 8)
		return 1;
	return memcmp(c, "ABCD", 4) || memcmp(d, "EFGH", 4);
}

static void run_in_child(int (*fn)(void));

static void test_iov_null_zero_length_pieces(void)
{
	run_in_child(null_piece_child);
}

/*
 * A hostile guest can hand the device a TX buffer and an RX buffer that
 * overlap (the loopback backend copies one into the other with iov_copy):
 * the copy must be defined behaviour, whatever bytes it leaves. Found by
 * fuzz_virtq_net (ASan memcpy-param-overlap). In a child for the same reason
 * as above.
 */
static int overlap_child(void)
{
	static uint8_t guest[256];
	struct iovec src = { guest + 8, 100 }, dst = { guest + 40, 100 };

	for (unsigned i = 0; i < sizeof(guest); i++)
		guest[i] = (uint8_t)i;
	/* Which bytes land is the guest's problem; a defined copy is ours. */
	return iov_copy(&dst, 1, 0, &src, 1, 0, 100) == 100 ? 0 : 1;
}

static void run_in_child(int (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn());
	int status = 0;
	CHECK(pid > 0);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_iov_copy_overlapping_guest_buffers(void)
{
	run_in_child(overlap_child);
}

/* ---- dirty bitmaps (Diff snapshots) ---- */

static bool bit(const struct guest_mem *m, unsigned region, uint64_t page)
{
	return m->regions[region].dirty[page / 64] >> (page % 64) & 1;
}

/* Pages set in region @region's bitmap. */
static unsigned count_dirty(const struct guest_mem *m, unsigned region)
{
	unsigned n = 0;

	for (uint64_t pg = 0; pg * GUEST_MEM_PAGE < m->regions[region].size; pg++)
		n += bit(m, region, pg);
	return n;
}

static void test_dirty_off_by_default(void)
{
	struct guest_mem m;

	three_regions(&m);
	CHECK(!m.tracking);
	guest_mem_mark_dirty(&m, 0x10000, 100);     /* nothing to mark, no fault */
	for (unsigned i = 0; i < m.nregions; i++)
		CHECK(m.regions[i].dirty == NULL);
	guest_mem_clear(&m);
}

static void test_dirty_page_edges(void)
{
	struct guest_mem m;

	three_regions(&m);
	CHECK_EQ(guest_mem_track_dirty(&m), 0);
	CHECK(m.tracking);
	/* The last byte of page 0 only; then the first byte of page 1. */
	guest_mem_mark_dirty(&m, 0x10fff, 1);
	CHECK(bit(&m, 0, 0) && !bit(&m, 0, 1));
	guest_mem_mark_dirty(&m, 0x11000, 1);
	CHECK(bit(&m, 0, 1));
	CHECK_EQ(count_dirty(&m, 0), 2);
	/* Two bytes across a page edge mark both pages. */
	guest_mem_mark_dirty(&m, 0x20fff, 2);
	CHECK(bit(&m, 2, 0) && bit(&m, 2, 1));
	CHECK_EQ(count_dirty(&m, 2), 2);
	CHECK_EQ(count_dirty(&m, 1), 0);
	/* Length 0 marks nothing. */
	guest_mem_mark_dirty(&m, 0x12000, 0);
	CHECK_EQ(count_dirty(&m, 1), 0);
	guest_mem_clear(&m);
	CHECK(!m.tracking);
}

static void test_dirty_across_regions(void)
{
	struct guest_mem m;

	three_regions(&m);
	CHECK_EQ(guest_mem_track_dirty(&m), 0);
	/* From region a's last page into region b's first, through the gap
	 * into c: the bytes outside guest memory are ignored. */
	guest_mem_mark_dirty(&m, 0x11ff0, 0x20001 - 0x11ff0);
	CHECK(!bit(&m, 0, 0) && bit(&m, 0, 1));
	CHECK(bit(&m, 1, 0) && bit(&m, 1, 1));
	CHECK(bit(&m, 2, 0) && !bit(&m, 2, 1));
	/* Wholly outside, or wrapping: nothing. */
	guest_mem_mark_dirty(&m, 0x30000, 0x1000);
	guest_mem_mark_dirty(&m, UINT64_MAX - 10, 100);
	CHECK_EQ(count_dirty(&m, 0) + count_dirty(&m, 1) + count_dirty(&m, 2), 4);
	guest_mem_clear(&m);
}

static void test_dirty_take_clears(void)
{
	struct guest_mem m;
	uint64_t out[1] = { 0x100 };    /* a bit already there stays */

	three_regions(&m);
	CHECK_EQ(guest_mem_track_dirty(&m), 0);
	CHECK_EQ(guest_mem_dirty_words(8192), 1);
	CHECK_EQ(guest_mem_dirty_words(64 * 4096 + 1), 2);
	guest_mem_mark_dirty(&m, 0x12000, 8192);
	guest_mem_take_dirty(&m, 1, out);
	CHECK_EQ(out[0], 0x103);
	CHECK_EQ(count_dirty(&m, 1), 0);
	out[0] = 0;
	guest_mem_take_dirty(&m, 1, out);
	CHECK_EQ(out[0], 0);
	guest_mem_clear(&m);
}

/* A bitmap word shared by threads marking different pages at once loses
 * no bit (the virtio-fs workers and the loop thread mark concurrently). */
static void *mark_odd_or_even(void *arg)
{
	struct guest_mem *m = *(struct guest_mem **)arg;
	uint64_t parity = (uint64_t)(uintptr_t)((void **)arg)[1];

	for (int round = 0; round < 2000; round++)
		for (uint64_t pg = parity; pg < 64; pg += 2)
			guest_mem_mark_dirty(m, 0x40000 + pg * GUEST_MEM_PAGE, 1);
	return NULL;
}

static void test_dirty_concurrent_marks(void)
{
	static uint8_t big[64 * 4096];
	struct guest_mem m;
	pthread_t t[2];
	void *args[2][2];

	guest_mem_init(&m);
	CHECK_EQ(guest_mem_add(&m, 0x40000, sizeof(big), 0, big, NULL, 0), 0);
	CHECK_EQ(guest_mem_track_dirty(&m), 0);
	for (int round = 0; round < 20; round++) {
		uint64_t out[1] = { 0 };
		for (uintptr_t i = 0; i < 2; i++) {
			args[i][0] = &m;
			args[i][1] = (void *)i;
			CHECK_EQ(pthread_create(&t[i], NULL, mark_odd_or_even, args[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		guest_mem_take_dirty(&m, 0, out);
		CHECK_EQ(out[0], (long long)~0ull);
	}
	guest_mem_clear(&m);
}

/* guest_mem_discard for each backing: the range reads zero afterwards (a
 * privately mapped file's page too, not the file's bytes again), the file
 * itself is untouched, the pages count as dirty; refusals for a range
 * outside guest memory, across a region's end and unaligned. */
static void test_discard_backings(void)
{
	const size_t len = 4 * 4096;
	char path[] = "/tmp/kvmini-test-discard.XXXXXX";
	int fd = mkstemp(path);
	uint8_t pattern[4 * 4096];
	struct guest_mem m;

	CHECK(fd >= 0);
	unlink(path);
	memset(pattern, 0x77, sizeof(pattern));
	CHECK_EQ(write(fd, pattern, len), (ssize_t)len);
	uint8_t *anon = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *priv = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(anon != MAP_FAILED && priv != MAP_FAILED);
	memset(anon, 0x55, len);
	priv[4096] = 0x66;                              /* a private copy of page 1 */
	guest_mem_init(&m);
	CHECK_EQ(guest_mem_add(&m, 0, len, 0, anon, anon, len), 0);
	CHECK_EQ(guest_mem_add(&m, 0x100000, len, 0, priv, priv, len), 0);
	guest_mem_set_backing(&m, 1, GUEST_MEM_FILE_PRIVATE);
	CHECK_EQ(guest_mem_add_fd(&m, 0x200000, len, 0, fd, 0), 0);
	CHECK_EQ(m.regions[2].backing, GUEST_MEM_SHARED);
	CHECK_EQ(guest_mem_track_dirty(&m), 0);

	CHECK_EQ(guest_mem_discard(&m, 4096, 4096), 0);
	CHECK(anon[4096] == 0 && anon[8191] == 0 && anon[0] == 0x55 && anon[8192] == 0x55);
	CHECK_EQ(guest_mem_discard(&m, 0x100000, 2 * 4096), 0);
	CHECK(priv[0] == 0 && priv[4096] == 0 && priv[8192] == 0x77);
	uint8_t *shared = m.regions[2].host;
	CHECK_EQ(shared[4096 * 3], 0x77);
	CHECK_EQ(guest_mem_discard(&m, 0x200000 + 3 * 4096, 4096), 0);
	CHECK_EQ(shared[4096 * 3], 0);                  /* punched in the file */
	uint8_t back[4096];
	CHECK_EQ(pread(fd, back, sizeof(back), 0), (ssize_t)sizeof(back));
	CHECK_EQ(back[0], 0x77);                        /* the private discard left it */
	uint64_t bits[1] = { 0 };
	guest_mem_take_dirty(&m, 0, bits);
	CHECK_EQ(bits[0], 1u << 1);

	CHECK_EQ(guest_mem_discard(&m, 0x50000, 4096), -EFAULT);
	CHECK_EQ(guest_mem_discard(&m, 3 * 4096, 2 * 4096), -EFAULT);   /* past the end */
	CHECK_EQ(guest_mem_discard(&m, 100, 4096), -EINVAL);
	CHECK_EQ(guest_mem_discard(&m, 0, 100), -EINVAL);
	CHECK_EQ(guest_mem_discard(&m, 0, 0), -EFAULT);
	guest_mem_clear(&m);
	close(fd);
}

int main(void)
{
	RUN_TEST(test_add_rejects_bad_regions);
	RUN_TEST(test_add_overlaps);
	RUN_TEST(test_add_full_table);
	RUN_TEST(test_add_fd_unaligned_offset);
	RUN_TEST(test_to_iov_one_region);
	RUN_TEST(test_to_iov_across_regions);
	RUN_TEST(test_to_iov_outside);
	RUN_TEST(test_to_iov_len0_and_wrap);
	RUN_TEST(test_to_iov_max_iov);
	RUN_TEST(test_ptr);
	RUN_TEST(test_uva_to_gpa);
	RUN_TEST(test_vdriver_split_memory);
	RUN_TEST(test_iov_length);
	RUN_TEST(test_iov_from_to_buf);
	RUN_TEST(test_iov_copy);
	RUN_TEST(test_iov_skip);
	RUN_TEST(test_iov_null_zero_length_pieces);
	RUN_TEST(test_iov_copy_overlapping_guest_buffers);
	RUN_TEST(test_dirty_off_by_default);
	RUN_TEST(test_dirty_page_edges);
	RUN_TEST(test_dirty_across_regions);
	RUN_TEST(test_dirty_take_clears);
	RUN_TEST(test_dirty_concurrent_marks);
	RUN_TEST(test_discard_backings);
	return CHECK_DONE();
}
