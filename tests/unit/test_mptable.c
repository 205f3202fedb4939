/*
 * Unit tests of the MP table kvmini writes into guest memory (mptable.c):
 * where Linux scans for it, and checksums it accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "core/log.h"
#include "vmm/boot.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

#define MEM_SIZE LAYOUT_HIMEM

static struct vm vm;

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* Floating pointer and configuration table both sum to zero, the pointer
 * names the table, and the IOAPIC comes after the vCPUs' APIC IDs. */
static void test_checksums_and_layout(void)
{
	uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(mem != MAP_FAILED);
	if (mem == MAP_FAILED)
		return;
	vm.supported_cpuid = calloc(1, sizeof(*vm.supported_cpuid) + sizeof(struct kvm_cpuid_entry2));
	CHECK(vm.supported_cpuid != NULL);
	if (!vm.supported_cpuid)
		return;
	vm.supported_cpuid->nent = 1;
	vm.supported_cpuid->entries[0] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x806f8 };
	guest_mem_init(&vm.mem);
	CHECK_EQ(guest_mem_add(&vm.mem, 0, MEM_SIZE, (uint64_t)(uintptr_t)mem, mem, mem, MEM_SIZE), 0);
	for (unsigned ncpus = 1; ncpus <= 4; ncpus++) {
		vm.ncpus = ncpus;
		memset(mem, 0xa5, MEM_SIZE);
		CHECK_EQ(mptable_write(&vm), 0);
		const uint8_t *mpf = mem + LAYOUT_MPTABLE;
		CHECK(memcmp(mpf, "_MP_", 4) == 0);
		CHECK_EQ(mpf[8], 1);                           /* length in 16-byte units */
		CHECK_EQ(sum8(mpf, 16), 0);
		uint32_t cfg_addr;
		memcpy(&cfg_addr, mpf + 4, 4);
		CHECK_EQ(cfg_addr, LAYOUT_MPTABLE + 16);
		const uint8_t *cfg = mem + cfg_addr;
		uint16_t len;
		memcpy(&len, cfg + 4, 2);
		CHECK(memcmp(cfg, "PCMP", 4) == 0);
		CHECK(len > 44 && cfg_addr + len <= LAYOUT_HIMEM);
		CHECK_EQ(sum8(cfg, len), 0);
		/* The IOAPIC entry (type 2) follows the processors (20 bytes each)
		 * and the bus (8): its ID is LAYOUT_IOAPIC_ID. */
		const uint8_t *io = cfg + 44 + ncpus * 20 + 8;
		CHECK_EQ(io[0], 2);
		CHECK_EQ(io[1], LAYOUT_IOAPIC_ID(ncpus));
		uint32_t signature;
		memcpy(&signature, cfg + 44 + 4, 4);
		CHECK_EQ(signature, 0x806f8u);
	}
	guest_mem_clear(&vm.mem);
	free(vm.supported_cpuid);
}

int main(void)
{
	log_threshold = LOG_ERROR;
	RUN_TEST(test_checksums_and_layout);
	return CHECK_DONE();
}
