/*
 * Snapshot memory files: a Full image (zero pages as holes), a Diff of
 * exactly the dirty pages (zero ones as data), and the two mapped as
 * layers: each page from the Diff where it was written, from the Full
 * image elsewhere, a dirty page of zeros over a page that was not zero.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/errbuf.h"
#include "core/guest_mem.h"
#include "vmm/ram_file.h"

#define PG GUEST_MEM_PAGE
#define PAGES 64u
#define SPLIT 32u           /* two regions, as guest RAM around the 32-bit hole */
#define BYTES ((uint64_t)PAGES * PG)

static char dir[] = "/tmp/kvmini-test-ram-file-XXXXXX";
static char base_path[64], diff_path[64];

static uint8_t *map_anon(void)
{
	void *p = mmap(NULL, BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* RAM as guest_mem sees it: [0, SPLIT) at 0, the rest at 4 GiB. */
static void two_regions(struct guest_mem *m, uint8_t *ram)
{
	guest_mem_init(m);
	CHECK_EQ(guest_mem_add(m, 0, SPLIT * PG, 0, ram, NULL, 0), 0);
	CHECK_EQ(guest_mem_add(m, 1ull << 32, (PAGES - SPLIT) * PG, 0, ram + SPLIT * PG, NULL, 0),
		 0);
}

/* Page @pg's first byte, and whether all of it holds that byte. */
static int page_byte(const uint8_t *ram, unsigned pg)
{
	const uint8_t *p = ram + (size_t)pg * PG;

	for (unsigned i = 1; i < PG; i++)
		if (p[i] != p[0])
			return -1;
	return p[0];
}

static void set_dirty(uint64_t *bits[2], unsigned pg)
{
	unsigned r = pg >= SPLIT, i = pg - r * SPLIT;

	bits[r][i / 64] |= 1ull << (i % 64);
}

/* The base: page p holds p + 1, except the zero pages 5 and 50. */
static void fill_base(uint8_t *ram)
{
	for (unsigned pg = 0; pg < PAGES; pg++)
		memset(ram + (size_t)pg * PG, pg == 5 || pg == 50 ? 0 : (int)pg + 1, PG);
}

static void test_full_keeps_zero_pages_as_holes(void)
{
	struct guest_mem m;
	struct ram_file_stats st;
	struct errbuf eb = { 0 };
	struct stat sb;
	uint8_t *ram = map_anon();

	CHECK(ram != NULL);
	fill_base(ram);
	two_regions(&m, ram);
	CHECK_EQ(ram_file_save(&m, base_path, &st, &eb), 0);
	CHECK_EQ(st.bytes, BYTES);
	CHECK_EQ(st.written, BYTES - 2 * PG);
	CHECK_EQ(stat(base_path, &sb), 0);
	CHECK_EQ(sb.st_size, (long long)BYTES);
	munmap(ram, BYTES);
}

static void test_diff_over_base(void)
{
	uint64_t b0[1] = { 0 }, b1[1] = { 0 };
	uint64_t *bits[2] = { b0, b1 };
	struct guest_mem m;
	struct ram_file_stats st;
	struct errbuf eb = { 0 };
	uint8_t *ram = map_anon(), *back = map_anon();

	CHECK(ram && back);
	fill_base(ram);
	two_regions(&m, ram);
	/* Changed and dirty: 3 (new data), 5 (was a hole), 10 (now all zero:
	 * must win over the base's 11), 40 (the second region). Changed but
	 * not marked: 20 (the Diff must not carry it). */
	memset(ram + 3 * PG, 0xaa, PG);
	memset(ram + 5 * PG, 0xbb, PG);
	memset(ram + 10 * PG, 0, PG);
	memset(ram + 40 * PG, 0xcc, PG);
	memset(ram + 20 * PG, 0xdd, PG);
	static const unsigned dirty[] = { 3, 5, 10, 40 };
	for (unsigned i = 0; i < 4; i++)
		set_dirty(bits, dirty[i]);
	CHECK_EQ(b0[0], (1ull << 3) | (1ull << 5) | (1ull << 10));
	CHECK_EQ(b1[0], 1ull << 8);
	CHECK_EQ(ram_file_save_diff(&m, diff_path, (const uint64_t *const *)bits, &st, &eb), 0);
	if (eb.msg[0])
		fprintf(stderr, "  %s\n", eb.msg);
	CHECK_EQ(st.bytes, BYTES);
	CHECK_EQ(st.written, 4 * PG);

	/* Restore: the base whole, the Diff's data over it. */
	CHECK_EQ(ram_file_map(back, BYTES, base_path, &eb), 0);
	CHECK_EQ(ram_file_map_layer(back, BYTES, diff_path, &eb), 0);
	for (unsigned pg = 0; pg < PAGES; pg++) {
		int want = pg == 3 ? 0xaa : pg == 5 ? 0xbb : pg == 10 ? 0 : pg == 40 ? 0xcc :
			   pg == 50 ? 0 : (int)pg + 1;
		if (page_byte(back, pg) != want) {
			fprintf(stderr, "  page %u: %d, wanted %d\n", pg, page_byte(back, pg), want);
			CHECK(0);
		}
	}
	/* Private: writing the restored RAM leaves both files as they were. */
	memset(back + 3 * PG, 0x11, PG);
	memset(back + 4 * PG, 0x22, PG);
	munmap(ram, BYTES);
	ram = map_anon();
	CHECK_EQ(ram_file_map(ram, BYTES, base_path, &eb), 0);
	CHECK_EQ(ram_file_map_layer(ram, BYTES, diff_path, &eb), 0);
	CHECK_EQ(page_byte(ram, 3), 0xaa);
	CHECK_EQ(page_byte(ram, 4), 5);
	munmap(ram, BYTES);
	munmap(back, BYTES);
}

static void test_layer_of_another_size_refused(void)
{
	struct errbuf eb = { 0 };
	uint8_t *ram = map_anon();

	CHECK(ram != NULL);
	CHECK_EQ(ram_file_map_layer(ram, BYTES - PG, diff_path, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "not this snapshot's memory file") != NULL);
	CHECK_EQ(ram_file_map_layer(ram, BYTES, "/nonexistent/diff", &eb), -ENOENT);
	munmap(ram, BYTES);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(base_path, sizeof(base_path), "%s/base", dir);
	snprintf(diff_path, sizeof(diff_path), "%s/diff", dir);
	RUN_TEST(test_full_keeps_zero_pages_as_holes);
	RUN_TEST(test_diff_over_base);
	RUN_TEST(test_layer_of_another_size_refused);
	unlink(base_path);
	unlink(diff_path);
	rmdir(dir);
	return CHECK_DONE();
}
