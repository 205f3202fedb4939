/*
 * Unit tests of the snapshot's KVM state parsers (src/vmm/vcpu_state.c,
 * src/vmm/vm_state.c), no KVM needed: sections built field by field with
 * core/state_io, as the format in vcpu_state.h and vm_state.h describes
 * them; each bad one is refused with a message saying what was wrong, and
 * a good one comes back field for field (and writes back byte for byte).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/compiler.h"
#include "core/state_io.h"
#include "vmm/vcpu_state.h"
#include "vmm/vm_state.h"

#define XSAVE_SIZE 4096u

/* This "host": 4 KiB of XSAVE, XCRs available. */
static const struct vcpu_state_caps caps = { .xsave_size = XSAVE_SIZE, .xcrs = true };

/* What to put into a hand-built "VCPU" section, and what to get wrong. */
struct vcpu_spec {
	const char *tag;
	uint32_t index, ncpuid, xsave_size, nxcrs, nmsrs, regs_size;
	unsigned msrs_written;       /* entries written (fewer: the section ends there) */
	bool trailing;               /* a field this kvmini does not know */
};

static struct vcpu_spec good_spec(void)
{
	return (struct vcpu_spec){ .tag = "VCPU", .index = 0, .ncpuid = 3,
				   .xsave_size = XSAVE_SIZE, .nxcrs = 1, .nmsrs = 2,
				   .regs_size = sizeof(struct kvm_regs), .msrs_written = 2 };
}

static void put_blob(struct state_writer *w, const void *p, uint32_t size)
{
	state_put_u32(w, size);
	state_put_bytes(w, p, size);
}

/* A blob of @size bytes of @fill (more than @p has only with a wrong size). */
static void put_filled(struct state_writer *w, uint32_t size, uint8_t fill)
{
	uint8_t *b = malloc(size ? size : 1);

	memset(b, fill, size);
	put_blob(w, b, size);
	free(b);
}

static void put_vcpu_tail(struct state_writer *w, const struct vcpu_spec *s)
{
	struct kvm_debugregs dbg = { .dr7 = 0x400 };
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev = { .nmi = { .pending = 1 } };

	memset(&lapic, 0x5a, sizeof(lapic));
	put_blob(w, &dbg, sizeof(dbg));
	put_blob(w, &lapic, sizeof(lapic));
	state_put_u32(w, s->nmsrs);
	for (uint32_t i = 0; i < s->msrs_written; i++) {
		state_put_u32(w, 0x10 + i);
		state_put_u64(w, 0x1000000000ull + i);
	}
	if (s->msrs_written < s->nmsrs)
		return;              /* the section ends inside the MSRs */
	put_blob(w, &ev, sizeof(ev));
	if (s->trailing)
		state_put_u32(w, 0xdead);
}

static void put_vcpu(struct state_writer *w, const struct vcpu_spec *s)
{
	struct kvm_sregs sregs = { .cr3 = 0x9000, .efer = 0x500 };

	state_begin(w, s->tag);
	state_put_u32(w, s->index);
	state_put_u32(w, s->ncpuid);
	for (uint32_t i = 0; i < s->ncpuid; i++)
		for (uint32_t k = 0; k < 7; k++)
			state_put_u32(w, i * 16 + k);
	state_put_u32(w, KVM_MP_STATE_RUNNABLE);
	struct kvm_regs regs = { .rip = 0x100000, .rax = 42 };
	state_put_u32(w, s->regs_size);
	state_put_bytes(w, &regs, MIN(s->regs_size, sizeof(regs)));
	put_blob(w, &sregs, sizeof(sregs));
	put_filled(w, s->xsave_size, 0xa5);
	state_put_u32(w, s->nxcrs);
	state_put_u32(w, 0);
	for (uint32_t i = 0; i < s->nxcrs; i++) {
		state_put_u32(w, i);
		state_put_u64(w, 7);
	}
	put_vcpu_tail(w, s);
	state_end(w);
}

/* Parse @w's bytes as vCPU 0's section; returns the parser's result, its
 * message in @eb. */
static int parse_vcpu(const struct state_writer *w, size_t len, struct vcpu_state *st,
		      struct errbuf *eb)
{
	struct state_reader r;

	state_reader_init(&r, w->buf, len, eb);
	int ret = vcpu_state_parse(&r, &caps, 0, st);
	CHECK_EQ(ret < 0, r.failed);
	return ret;
}

/* @s is refused, with a message that has @why in it. */
static void expect_refused(const struct vcpu_spec *s, const char *why)
{
	struct state_writer w;
	struct vcpu_state st;
	struct errbuf eb = { 0 };

	state_writer_init(&w);
	put_vcpu(&w, s);
	CHECK(!w.failed);
	CHECK_EQ(parse_vcpu(&w, w.len, &st, &eb), -EINVAL);
	if (!strstr(eb.msg, why))
		fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", eb.msg, why);
	CHECK(strstr(eb.msg, why) != NULL);
	vcpu_state_free(&st);
	state_writer_free(&w);
}

static void check_good_fields(const struct vcpu_state *st)
{
	CHECK_EQ(st->index, 0);
	CHECK_EQ(st->cpuid->nent, 3);
	CHECK_EQ(st->cpuid->entries[2].function, 32);
	CHECK_EQ(st->cpuid->entries[2].edx, 38);
	CHECK_EQ(st->mp_state.mp_state, KVM_MP_STATE_RUNNABLE);
	CHECK_EQ(st->regs.rip, 0x100000);
	CHECK_EQ(st->regs.rax, 42);
	CHECK_EQ(st->sregs.cr3, 0x9000);
	CHECK_EQ(st->sregs.efer, 0x500);
	CHECK_EQ(st->xsave_size, XSAVE_SIZE);
	CHECK_EQ(((const uint8_t *)st->xsave)[XSAVE_SIZE - 1], 0xa5);
	CHECK_EQ(st->xcrs.nr_xcrs, 1);
	CHECK_EQ(st->xcrs.xcrs[0].value, 7);
	CHECK_EQ(st->debugregs.dr7, 0x400);
	CHECK_EQ((uint8_t)st->lapic.regs[1023], 0x5a);
	CHECK_EQ(st->msrs->nmsrs, 2);
	CHECK_EQ(st->msrs->entries[1].index, 0x11);
	CHECK_EQ(st->msrs->entries[1].data, 0x1000000001ull);
	CHECK_EQ(st->events.nmi.pending, 1);
}

static void test_vcpu_good_round_trips(void)
{
	struct state_writer w, again;
	struct vcpu_state st;
	struct errbuf eb = { 0 };
	const struct vcpu_spec s = good_spec();

	state_writer_init(&w);
	state_writer_init(&again);
	put_vcpu(&w, &s);
	CHECK_EQ(parse_vcpu(&w, w.len, &st, &eb), 0);
	CHECK_EQ(eb.msg[0], '\0');
	if (st.cpuid && st.msrs && st.xsave) {
		check_good_fields(&st);
		/* The writer puts back exactly the bytes the parser took. */
		vcpu_state_write(&st, &again);
		CHECK_EQ(again.len, w.len);
		CHECK(again.len == w.len && !memcmp(again.buf, w.buf, w.len));
	}
	CHECK(st.cpuid && st.msrs && st.xsave);
	vcpu_state_free(&st);
	state_writer_free(&w);
	state_writer_free(&again);
}

static void test_vcpu_truncated(void)
{
	struct state_writer w;
	struct vcpu_state st;
	struct errbuf eb = { 0 };
	const struct vcpu_spec s = good_spec();

	state_writer_init(&w);
	put_vcpu(&w, &s);
	/* The section's length says more than there is. */
	CHECK_EQ(parse_vcpu(&w, w.len - 1, &st, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "section VCPU") && strstr(eb.msg, "truncated"));
	vcpu_state_free(&st);
	/* Nothing at all. */
	CHECK_EQ(parse_vcpu(&w, 0, &st, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "VCPU missing") != NULL);
	vcpu_state_free(&st);
	state_writer_free(&w);

	/* An honest section length, but fewer MSRs in it than its count. */
	struct vcpu_spec cut = good_spec();
	cut.nmsrs = 3;
	expect_refused(&cut, "truncated");
}

static void test_vcpu_wrong_tag(void)
{
	struct vcpu_spec s = good_spec();

	s.tag = "VCPX";
	expect_refused(&s, "section VCPU expected, VCPX found");
}

static void test_vcpu_wrong_index(void)
{
	struct vcpu_spec s = good_spec();

	s.index = 1;
	expect_refused(&s, "vCPU 1's state where vCPU 0's was expected");
}

static void test_vcpu_too_many_entries(void)
{
	struct vcpu_spec s = good_spec();

	s.ncpuid = VCPU_STATE_MAX_CPUID + 1;
	expect_refused(&s, "257 CPUID entries, at most 256");
	s = good_spec();
	s.nmsrs = s.msrs_written = VCPU_STATE_MAX_MSRS + 1;
	expect_refused(&s, "1025 MSRs, at most 1024");
	s = good_spec();
	s.nxcrs = KVM_MAX_XCRS + 1;
	expect_refused(&s, "17 XCRs, at most 16");
}

static void test_vcpu_xsave_size(void)
{
	struct vcpu_spec s = good_spec();

	s.xsave_size = 2 * XSAVE_SIZE;
	expect_refused(&s, "XSAVE state of 8192 bytes; this host's KVM uses 4096");
	s.xsave_size = VCPU_STATE_MAX_XSAVE + 1;
	expect_refused(&s, "XSAVE state of 65537 bytes, at most 65536");
}

static void test_vcpu_struct_size(void)
{
	struct vcpu_spec s = good_spec();

	s.regs_size = 100;
	expect_refused(&s, "kvm_regs of 100 bytes; this kvmini's is 144");
}

static void test_vcpu_trailing_bytes(void)
{
	struct vcpu_spec s = good_spec();

	s.trailing = true;
	expect_refused(&s, "4 bytes this kvmini does not know");
}

/* XCRs in a state are refused by a host without KVM_CAP_XCRS. */
static void test_vcpu_xcrs_need_cap(void)
{
	const struct vcpu_state_caps no_xcrs = { .xsave_size = XSAVE_SIZE };
	const struct vcpu_spec s = good_spec();
	struct state_writer w;
	struct state_reader r;
	struct vcpu_state st;
	struct errbuf eb = { 0 };

	state_writer_init(&w);
	put_vcpu(&w, &s);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(vcpu_state_parse(&r, &no_xcrs, 0, &st), -EINVAL);
	CHECK(strstr(eb.msg, "no KVM_CAP_XCRS") != NULL);
	vcpu_state_free(&st);
	state_writer_free(&w);
}

/* --- the chips and the whole VM -------------------------------------------------- */

static void put_chip(struct state_writer *w, uint32_t pit_size, bool clock)
{
	struct kvm_pic_state pic = { .irq_base = 0x20 };
	struct kvm_ioapic_state ioapic = { .base_address = 0xfec00000, .id = 1 };

	state_begin(w, "IRQC");
	put_blob(w, &pic, sizeof(pic));
	pic.irq_base = 0x28;
	put_blob(w, &pic, sizeof(pic));
	put_blob(w, &ioapic, sizeof(ioapic));
	state_end(w);
	state_begin(w, "PIT2");
	put_filled(w, pit_size, 0);
	state_end(w);
	if (!clock)
		return;
	state_begin(w, "CLCK");
	state_put_u64(w, 123456789);
	state_put_u32(w, KVM_CLOCK_TSC_STABLE);
	state_end(w);
}

static void put_vm(struct state_writer *w, uint32_t ncpus, unsigned nwritten)
{
	put_chip(w, sizeof(struct kvm_pit_state2), true);
	state_begin(w, "NCPU");
	state_put_u32(w, ncpus);
	state_end(w);
	for (unsigned i = 0; i < nwritten; i++) {
		struct vcpu_spec s = good_spec();
		s.index = i;
		put_vcpu(w, &s);
	}
}

static void test_chip_good_round_trips(void)
{
	struct state_writer w, again;
	struct state_reader r;
	struct vm_chip_state st;
	struct errbuf eb = { 0 };

	state_writer_init(&w);
	state_writer_init(&again);
	put_chip(&w, sizeof(struct kvm_pit_state2), true);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(vm_chip_state_parse(&r, &st), 0);
	CHECK(state_at_end(&r));
	CHECK_EQ(st.pic[0].irq_base, 0x20);
	CHECK_EQ(st.pic[1].irq_base, 0x28);
	CHECK_EQ(st.ioapic.base_address, 0xfec00000);
	CHECK_EQ(st.clock.clock, 123456789);
	CHECK_EQ(st.clock.flags, KVM_CLOCK_TSC_STABLE);
	vm_chip_state_write(&st, &again);
	CHECK(again.len == w.len && !memcmp(again.buf, w.buf, w.len));
	state_writer_free(&w);
	state_writer_free(&again);
}

static void expect_chip_refused(uint32_t pit_size, bool clock, const char *why)
{
	struct state_writer w;
	struct state_reader r;
	struct vm_chip_state st;
	struct errbuf eb = { 0 };

	state_writer_init(&w);
	put_chip(&w, pit_size, clock);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(vm_chip_state_parse(&r, &st), -EINVAL);
	if (!strstr(eb.msg, why))
		fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", eb.msg, why);
	CHECK(strstr(eb.msg, why) != NULL);
	state_writer_free(&w);
}

static void test_chip_refused(void)
{
	expect_chip_refused(sizeof(struct kvm_pit_state2) - 8, true,
			    "section PIT2: kvm_pit_state2 of 104 bytes; this kvmini's is 112");
	expect_chip_refused(sizeof(struct kvm_pit_state2), false,
			    "section CLCK missing: the state ends before it");
}

/* The whole VM's sections parse for a VM of as many vCPUs, and only for one. */
static void test_vm_vcpu_count(void)
{
	struct state_writer w;
	struct state_reader r;
	struct vm_saved_state saved;
	struct errbuf eb = { 0 };

	state_writer_init(&w);
	put_vm(&w, 2, 2);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(vm_state_parse(&r, &caps, 2, &saved), 0);
	CHECK(state_at_end(&r));
	CHECK_EQ(saved.ncpus, 2);
	CHECK(saved.cpus && saved.cpus[1].index == 1 && saved.cpus[1].regs.rax == 42);
	vm_saved_state_free(&saved);

	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(vm_state_parse(&r, &caps, 3, &saved), -EINVAL);
	CHECK(strstr(eb.msg, "section NCPU: the state has 2 vCPUs, this VM 3") != NULL);
	vm_saved_state_free(&saved);
	state_writer_free(&w);

	/* A count that says 2 over one vCPU's section. */
	state_writer_init(&w);
	put_vm(&w, 2, 1);
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK_EQ(vm_state_parse(&r, &caps, 2, &saved), -EINVAL);
	CHECK(strstr(eb.msg, "section VCPU missing") != NULL);
	vm_saved_state_free(&saved);
	state_writer_free(&w);
}

int main(void)
{
	RUN_TEST(test_vcpu_good_round_trips);
	RUN_TEST(test_vcpu_truncated);
	RUN_TEST(test_vcpu_wrong_tag);
	RUN_TEST(test_vcpu_wrong_index);
	RUN_TEST(test_vcpu_too_many_entries);
	RUN_TEST(test_vcpu_xsave_size);
	RUN_TEST(test_vcpu_struct_size);
	RUN_TEST(test_vcpu_trailing_bytes);
	RUN_TEST(test_vcpu_xcrs_need_cap);
	RUN_TEST(test_chip_good_round_trips);
	RUN_TEST(test_chip_refused);
	RUN_TEST(test_vm_vcpu_count);
	return CHECK_DONE();
}
