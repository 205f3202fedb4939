/*
 * Unit tests of the guest-virtual reader (src/vmm/guest_virt.c) with a
 * page table of its own instead of KVM_TRANSLATE: a copy that crosses a
 * page boundary takes each page from where that page maps, and a page
 * without a mapping (or outside guest RAM, or read-only for a write) ends
 * the copy there.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/compiler.h"
#include "core/guest_mem.h"
#include "vmm/guest_virt.h"

#define PAGE GUEST_VIRT_PAGE
#define RAM_GPA 0x100000ull
#define RAM_PAGES 4u

static uint8_t ram[RAM_PAGES * PAGE];

/* Virtual pages from VA_BASE on, mapped to these guest-physical pages of
 * ram[] (in that order: not adjacent, and backwards); UINT64_MAX: none. */
#define VA_BASE 0x7f0000000000ull
static const uint64_t page_table[] = {
	RAM_GPA + 3 * PAGE,
	RAM_GPA + 1 * PAGE,
	UINT64_MAX,
	RAM_GPA + 64 * PAGE,         /* mapped, but not guest RAM */
};
static const bool page_writable[] = { true, false, false, true };

static int fake_translate(struct guest_virt *gv, uint64_t gva, struct guest_virt_page *out)
{
	uint64_t n = (gva - VA_BASE) / PAGE;

	if (gva < VA_BASE || n >= ARRAY_SIZE(page_table) || page_table[n] == UINT64_MAX)
		return -EFAULT;
	out->gpa = page_table[n] + (gva & (PAGE - 1));
	out->writable = page_writable[n];
	return 0;
}

static void setup(struct guest_mem *mem, struct guest_virt *gv)
{
	/* Each byte of RAM says which page it is on and where. */
	for (size_t i = 0; i < sizeof(ram); i++)
		ram[i] = (uint8_t)((i / PAGE) << 5 ^ (i & 0x1f));
	guest_mem_init(mem);
	CHECK_EQ(guest_mem_add(mem, RAM_GPA, sizeof(ram), 0, ram, NULL, 0), 0);
	*gv = (struct guest_virt){ .translate = fake_translate, .mem = mem };
}

/* 32 bytes across the boundary of virtual pages 0 and 1: the first 16 from
 * the end of physical page 3, the next 16 from the start of physical page 1
 * (a copy of physically contiguous bytes would read page 4, or past RAM). */
static void test_read_across_page_boundary(void)
{
	struct guest_mem mem;
	struct guest_virt gv;
	uint8_t buf[32];

	setup(&mem, &gv);
	CHECK_EQ(guest_virt_read(&gv, VA_BASE + PAGE - 16, buf, sizeof(buf)), 0);
	CHECK(memcmp(buf, &ram[4 * PAGE - 16], 16) == 0);
	CHECK(memcmp(buf + 16, &ram[1 * PAGE], 16) == 0);
	CHECK_EQ(guest_virt_copy(&gv, VA_BASE + PAGE - 16, buf, sizeof(buf), false), 32);
}

/* A read running into an unmapped page fails as a whole; the partial copy
 * says how far it got (what the instruction dump of an error report uses). */
static void test_unmapped_page_is_an_error(void)
{
	struct guest_mem mem;
	struct guest_virt gv;
	uint8_t buf[32];

	setup(&mem, &gv);
	CHECK_EQ(guest_virt_read(&gv, VA_BASE + 2 * PAGE - 8, buf, sizeof(buf)), -EFAULT);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(guest_virt_copy(&gv, VA_BASE + 2 * PAGE - 8, buf, sizeof(buf), false), 8);
	CHECK(memcmp(buf, &ram[2 * PAGE - 8], 8) == 0);
	CHECK_EQ(guest_virt_copy(&gv, VA_BASE + 2 * PAGE, buf, 1, false), 0);
	CHECK_EQ(guest_virt_read(&gv, VA_BASE - 1, buf, 2), -EFAULT);
	/* Mapped to guest-physical memory that is not RAM. */
	CHECK_EQ(guest_virt_read(&gv, VA_BASE + 3 * PAGE, buf, 1), -EFAULT);
	/* Nothing to read is no error. */
	CHECK_EQ(guest_virt_read(&gv, VA_BASE + 2 * PAGE, buf, 0), 0);
}

/* A write goes to each page where it maps, and stops at a read-only page. */
static void test_write_respects_pages(void)
{
	struct guest_mem mem;
	struct guest_virt gv;
	uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	setup(&mem, &gv);
	CHECK_EQ(guest_virt_write(&gv, VA_BASE + 8, data, sizeof(data)), 0);
	CHECK(memcmp(&ram[3 * PAGE + 8], data, sizeof(data)) == 0);
	uint8_t before = ram[1 * PAGE];
	CHECK_EQ(guest_virt_write(&gv, VA_BASE + PAGE - 4, data, sizeof(data)), -EFAULT);
	CHECK(memcmp(&ram[4 * PAGE - 4], data, 4) == 0);     /* the writable page took its part */
	CHECK_EQ(ram[1 * PAGE], before);                     /* the read-only one nothing */
}

int main(void)
{
	RUN_TEST(test_read_across_page_boundary);
	RUN_TEST(test_unmapped_page_is_an_error);
	RUN_TEST(test_write_respects_pages);
	return CHECK_DONE();
}
