/*
 * One vCPU's KVM state for snapshots (see vcpu_state.h): read with the
 * KVM_GET_* ioctls, written as one "VCPU" section, parsed back with every
 * count and size checked, and put into a fresh vCPU in the order KVM's
 * checks need.
 */
#include "vmm/vcpu_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/compiler.h"
#include "core/log.h"

/* MSR numbers (Intel SDM vol. 4; KVM's paravirtual ones from
 * Documentation/virt/kvm/x86/msr.rst). */
#define MSR_IA32_TSC             0x10u
#define MSR_KVM_WALL_CLOCK       0x11u
#define MSR_KVM_SYSTEM_TIME      0x12u
#define MSR_IA32_MISC_ENABLE     0x1a0u
#define MSR_MTRR_PHYS_BASE0      0x200u
#define MSR_MTRR_FIX64K_00000    0x250u
#define MSR_MTRR_FIX16K_80000    0x258u
#define MSR_MTRR_FIX16K_A0000    0x259u
#define MSR_MTRR_FIX4K_C0000     0x268u
#define MSR_IA32_CR_PAT          0x277u
#define MSR_MTRR_DEF_TYPE        0x2ffu
#define MSR_IA32_TSC_DEADLINE    0x6e0u
#define MSR_KVM_WALL_CLOCK_NEW   0x4b564d00u
#define MSR_KVM_ASYNC_PF_INT     0x4b564d06u

/* KVM refuses KVM_GET/SET_MSRS of 256 entries or more (MAX_IO_MSRS). */
#define MSR_CHUNK 128u

/*
 * MSRs saved besides KVM_GET_MSR_INDEX_LIST's, where that list leaves them
 * out: KVM emulates them whatever the host CPU has. The MTRRs (8 variable
 * pairs, the fixed ranges, the default type) and PAT because a guest sets
 * them once at boot and relies on them after; the kvmclock, async-PF,
 * steal-time, PV-EOI and poll-control MSRs (0x4b564d00..06) because they
 * point KVM at guest memory the guest keeps using.
 */
static const struct { uint32_t first; unsigned count; } extra_msrs[] = {
	{ MSR_IA32_TSC, 1 }, { MSR_KVM_WALL_CLOCK, 2 }, { MSR_IA32_MISC_ENABLE, 1 },
	{ MSR_MTRR_PHYS_BASE0, 16 }, { MSR_MTRR_FIX64K_00000, 1 },
	{ MSR_MTRR_FIX16K_80000, 2 }, { MSR_MTRR_FIX4K_C0000, 8 }, { MSR_IA32_CR_PAT, 1 },
	{ MSR_MTRR_DEF_TYPE, 1 }, { MSR_IA32_TSC_DEADLINE, 1 },
	{ MSR_KVM_WALL_CLOCK_NEW, MSR_KVM_ASYNC_PF_INT - MSR_KVM_WALL_CLOCK_NEW + 1 },
};

/* --- what this host saves --------------------------------------------------------- */

static int probe_xsave(int vm_fd, struct vcpu_state_caps *caps, struct errbuf *eb)
{
	/* KVM_CAP_XSAVE2 answers the buffer size this VM's XSAVE features need. */
	int size = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	if (size > (int)sizeof(struct kvm_xsave)) {
		caps->xsave_size = (size_t)size;
		caps->xsave2 = true;
	} else if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
		caps->xsave_size = sizeof(struct kvm_xsave);
	} else {
		errbuf_set(eb, "KVM lacks KVM_CAP_XSAVE: kvmini cannot save the FPU state");
		return -ENOTSUP;
	}
	if (caps->xsave_size > VCPU_STATE_MAX_XSAVE) {
		errbuf_set(eb, "KVM's XSAVE state is %zu bytes, kvmini saves at most %u",
			   caps->xsave_size, VCPU_STATE_MAX_XSAVE);
		return -ENOTSUP;
	}
	return 0;
}

/* KVM_GET_MSR_INDEX_LIST into a malloc'd list (the first call says how many). */
static int msr_index_list(int kvm_fd, struct kvm_msr_list **out, struct errbuf *eb)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
		errbuf_set(eb, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		return -errno;
	}
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int e = errno;
		free(l);
		errbuf_set(eb, "KVM_GET_MSR_INDEX_LIST: %s", strerror(e));
		return -e;
	}
	*out = l;
	return 0;
}

static void add_msr(struct vcpu_state_caps *caps, uint32_t index)
{
	for (unsigned i = 0; i < caps->nmsrs; i++)
		if (caps->msrs[i] == index)
			return;
	caps->msrs[caps->nmsrs++] = index;
}

/* MSR_IA32_TSC first: KVM arms a TSC deadline against the guest's TSC,
 * so the TSC must be restored before MSR_IA32_TSC_DEADLINE is. */
static int probe_msrs(int kvm_fd, struct vcpu_state_caps *caps, struct errbuf *eb)
{
	struct kvm_msr_list *list = NULL;
	unsigned extra = 0;
	int r = msr_index_list(kvm_fd, &list, eb);

	if (r < 0)
		return r;
	for (unsigned i = 0; i < ARRAY_SIZE(extra_msrs); i++)
		extra += extra_msrs[i].count;
	if (list->nmsrs + extra > VCPU_STATE_MAX_MSRS) {
		errbuf_set(eb, "KVM lists %u MSRs, kvmini saves at most %u", list->nmsrs,
			   VCPU_STATE_MAX_MSRS - extra);
		free(list);
		return -ENOTSUP;
	}
	caps->msrs = calloc(list->nmsrs + extra, sizeof(caps->msrs[0]));
	if (caps->msrs) {
		add_msr(caps, MSR_IA32_TSC);
		for (unsigned i = 0; i < list->nmsrs; i++)
			add_msr(caps, list->indices[i]);
		for (unsigned i = 0; i < ARRAY_SIZE(extra_msrs); i++)
			for (unsigned k = 0; k < extra_msrs[i].count; k++)
				add_msr(caps, extra_msrs[i].first + k);
	}
	free(list);
	return caps->msrs ? 0 : -ENOMEM;
}

int vcpu_state_caps_probe(int kvm_fd, int vm_fd, struct vcpu_state_caps *caps,
			  struct errbuf *eb)
{
	memset(caps, 0, sizeof(*caps));
	caps->xcrs = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
	int r = probe_xsave(vm_fd, caps, eb);
	if (!r)
		r = probe_msrs(kvm_fd, caps, eb);
	if (r == -ENOMEM)
		errbuf_set(eb, "the list of MSRs to save: out of memory");
	return r;
}

void vcpu_state_caps_free(struct vcpu_state_caps *caps)
{
	free(caps->msrs);
	memset(caps, 0, sizeof(*caps));
}

/* --- reading a vCPU --------------------------------------------------------------- */

static int vcpu_ioctl(struct vcpu *v, unsigned long req, void *arg, const char *name,
		      struct errbuf *eb)
{
	if (ioctl(v->fd, req, arg) < 0) {
		int e = errno;
		errbuf_set(eb, "vCPU %u: %s: %s", v->index, name, strerror(e));
		return -e;
	}
	return 0;
}

static struct kvm_msrs *alloc_msrs(unsigned n)
{
	return calloc(1, sizeof(struct kvm_msrs) + n * sizeof(struct kvm_msr_entry));
}

/*
 * Append the values of @idx[0..@n) that KVM can read to @out. KVM_GET_MSRS
 * stops at the first MSR it cannot read and returns how many it read: that
 * one is left out (a guest cannot have used it either) and the read goes on
 * after it. @buf has room for @n entries.
 */
static int get_msr_chunk(struct vcpu *v, const uint32_t *idx, unsigned n, struct kvm_msrs *buf,
			 struct kvm_msrs *out, struct errbuf *eb)
{
	unsigned done = 0;

	while (done < n) {
		buf->nmsrs = n - done;
		for (unsigned i = 0; i < buf->nmsrs; i++)
			buf->entries[i] = (struct kvm_msr_entry){ .index = idx[done + i] };
		int got = ioctl(v->fd, KVM_GET_MSRS, buf);
		if (got < 0) {
			int e = errno;
			errbuf_set(eb, "vCPU %u: KVM_GET_MSRS: %s", v->index, strerror(e));
			return -e;
		}
		memcpy(&out->entries[out->nmsrs], buf->entries, (size_t)got * sizeof(buf->entries[0]));
		out->nmsrs += (unsigned)got;
		done += (unsigned)got;
		if (done < n)
			log_debug("vCPU %u: MSR 0x%x unreadable, not saved", v->index, idx[done++]);
	}
	return 0;
}

static int get_msrs(struct vcpu *v, const struct vcpu_state_caps *caps, struct vcpu_state *st,
		    struct errbuf *eb)
{
	struct kvm_msrs *buf = alloc_msrs(MSR_CHUNK);
	int r = 0;

	st->msrs = alloc_msrs(caps->nmsrs);
	if (!buf || !st->msrs) {
		free(buf);
		errbuf_set(eb, "vCPU %u: MSRs: out of memory", v->index);
		return -ENOMEM;
	}
	for (unsigned at = 0; !r && at < caps->nmsrs; at += MSR_CHUNK)
		r = get_msr_chunk(v, caps->msrs + at, MIN(MSR_CHUNK, caps->nmsrs - at), buf,
				  st->msrs, eb);
	free(buf);
	return r;
}

static int get_cpuid(struct vcpu *v, struct vcpu_state *st, struct errbuf *eb)
{
	st->cpuid = calloc(1, sizeof(*st->cpuid) +
				  VCPU_STATE_MAX_CPUID * sizeof(st->cpuid->entries[0]));
	if (!st->cpuid) {
		errbuf_set(eb, "vCPU %u: CPUID: out of memory", v->index);
		return -ENOMEM;
	}
	st->cpuid->nent = VCPU_STATE_MAX_CPUID;
	return vcpu_ioctl(v, KVM_GET_CPUID2, st->cpuid, "KVM_GET_CPUID2", eb);
}

static int get_xsave(struct vcpu *v, const struct vcpu_state_caps *caps, struct vcpu_state *st,
		     struct errbuf *eb)
{
	st->xsave_size = caps->xsave_size;
	st->xsave = calloc(1, st->xsave_size);
	if (!st->xsave) {
		errbuf_set(eb, "vCPU %u: XSAVE: out of memory", v->index);
		return -ENOMEM;
	}
	if (caps->xsave2)
		return vcpu_ioctl(v, KVM_GET_XSAVE2, st->xsave, "KVM_GET_XSAVE2", eb);
	return vcpu_ioctl(v, KVM_GET_XSAVE, st->xsave, "KVM_GET_XSAVE", eb);
}

/*
 * KVM finishes an exit (an IN's value into RAX, an OUT's or MMIO's RIP
 * past the instruction) only when KVM_RUN is entered again, and a vCPU
 * parked by a pause has handled its last exit but not re-entered. Entering
 * once with immediate_exit set completes that and returns EINTR before the
 * guest runs (Documentation/virt/kvm/api.rst, "immediate_exit").
 */
static int complete_last_exit(struct vcpu *v, struct errbuf *eb)
{
	uint8_t was = v->run->immediate_exit;

	v->run->immediate_exit = 1;
	int r = ioctl(v->fd, KVM_RUN, 0) < 0 && errno != EINTR ? -errno : 0;
	v->run->immediate_exit = was;
	if (r < 0)
		errbuf_set(eb, "vCPU %u: KVM_RUN to complete its last exit: %s", v->index,
			   strerror(-r));
	return r;
}

int vcpu_state_get(struct vcpu *v, const struct vcpu_state_caps *caps, struct vcpu_state *st,
		   struct errbuf *eb)
{
	memset(st, 0, sizeof(*st));
	st->index = v->index;
	int r = complete_last_exit(v, eb);
	if (!r)
		r = get_cpuid(v, st, eb);
	if (!r)
		r = vcpu_ioctl(v, KVM_GET_MP_STATE, &st->mp_state, "KVM_GET_MP_STATE", eb);
	if (!r)
		r = vcpu_ioctl(v, KVM_GET_REGS, &st->regs, "KVM_GET_REGS", eb);
	if (!r)
		r = vcpu_ioctl(v, KVM_GET_SREGS, &st->sregs, "KVM_GET_SREGS", eb);
	if (!r)
		r = get_xsave(v, caps, st, eb);
	if (!r && caps->xcrs)
		r = vcpu_ioctl(v, KVM_GET_XCRS, &st->xcrs, "KVM_GET_XCRS", eb);
	if (!r)
		r = vcpu_ioctl(v, KVM_GET_DEBUGREGS, &st->debugregs, "KVM_GET_DEBUGREGS", eb);
	if (!r)
		r = vcpu_ioctl(v, KVM_GET_LAPIC, &st->lapic, "KVM_GET_LAPIC", eb);
	if (!r)
		r = get_msrs(v, caps, st, eb);
	if (!r)
		r = vcpu_ioctl(v, KVM_GET_VCPU_EVENTS, &st->events, "KVM_GET_VCPU_EVENTS", eb);
	if (!r && st->xcrs.nr_xcrs > KVM_MAX_XCRS) {
		errbuf_set(eb, "vCPU %u: KVM_GET_XCRS: %u XCRs", v->index, st->xcrs.nr_xcrs);
		r = -EIO;
	}
	if (r < 0)
		vcpu_state_free(st);
	return r;
}

/* --- the section -------------------------------------------------------------------- */

static void put_blob(struct state_writer *w, const void *p, size_t n)
{
	state_put_u32(w, (uint32_t)n);
	state_put_bytes(w, p, n);
}

static void write_cpuid(const struct kvm_cpuid2 *c, struct state_writer *w)
{
	state_put_u32(w, c->nent);
	for (unsigned i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		const uint32_t f[] = { e->function, e->index, e->flags, e->eax, e->ebx, e->ecx,
				       e->edx };
		for (unsigned k = 0; k < ARRAY_SIZE(f); k++)
			state_put_u32(w, f[k]);
	}
}

static void write_xcrs(const struct kvm_xcrs *x, struct state_writer *w)
{
	state_put_u32(w, x->nr_xcrs);
	state_put_u32(w, x->flags);
	for (unsigned i = 0; i < x->nr_xcrs && i < KVM_MAX_XCRS; i++) {
		state_put_u32(w, x->xcrs[i].xcr);
		state_put_u64(w, x->xcrs[i].value);
	}
}

static void write_msrs(const struct kvm_msrs *m, struct state_writer *w)
{
	state_put_u32(w, m->nmsrs);
	for (unsigned i = 0; i < m->nmsrs; i++) {
		state_put_u32(w, m->entries[i].index);
		state_put_u64(w, m->entries[i].data);
	}
}

void vcpu_state_write(const struct vcpu_state *st, struct state_writer *w)
{
	state_begin(w, "VCPU");
	state_put_u32(w, st->index);
	write_cpuid(st->cpuid, w);
	state_put_u32(w, st->mp_state.mp_state);
	put_blob(w, &st->regs, sizeof(st->regs));
	put_blob(w, &st->sregs, sizeof(st->sregs));
	put_blob(w, st->xsave, st->xsave_size);
	write_xcrs(&st->xcrs, w);
	put_blob(w, &st->debugregs, sizeof(st->debugregs));
	put_blob(w, &st->lapic, sizeof(st->lapic));
	write_msrs(st->msrs, w);
	put_blob(w, &st->events, sizeof(st->events));
	state_end(w);
}

int vcpu_state_save(struct vcpu *v, const struct vcpu_state_caps *caps, struct state_writer *w,
		    struct errbuf *eb)
{
	struct vcpu_state st;
	int r = vcpu_state_get(v, caps, &st, eb);

	if (r < 0)
		return r;
	vcpu_state_write(&st, w);
	vcpu_state_free(&st);
	return 0;
}

/* --- parsing -------------------------------------------------------------------------- */

/* A kvm.h struct of exactly @n bytes (its size is stored first). */
static bool get_blob(struct state_reader *r, void *out, size_t n, const char *what)
{
	uint32_t size = state_get_u32(r);

	if (!r->failed && size != n)
		return state_fail(r, "%s of %u bytes; this kvmini's is %zu", what, size, n);
	return state_get_bytes(r, out, n);
}

static bool parse_cpuid(struct state_reader *r, struct vcpu_state *st)
{
	uint32_t n = state_get_u32(r);

	if (r->failed)
		return false;
	if (n > VCPU_STATE_MAX_CPUID)
		return state_fail(r, "%u CPUID entries, at most %u", n, VCPU_STATE_MAX_CPUID);
	st->cpuid = calloc(1, sizeof(*st->cpuid) + n * sizeof(st->cpuid->entries[0]));
	if (!st->cpuid)
		return state_fail(r, "CPUID: out of memory");
	st->cpuid->nent = n;
	for (unsigned i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 *e = &st->cpuid->entries[i];
		uint32_t *f[] = { &e->function, &e->index, &e->flags, &e->eax, &e->ebx, &e->ecx,
				  &e->edx };
		for (unsigned k = 0; k < ARRAY_SIZE(f); k++)
			*f[k] = state_get_u32(r);
	}
	return !r->failed;
}

static bool parse_xsave(struct state_reader *r, const struct vcpu_state_caps *caps,
			struct vcpu_state *st)
{
	uint32_t size = state_get_u32(r);

	if (r->failed)
		return false;
	if (size > VCPU_STATE_MAX_XSAVE)
		return state_fail(r, "XSAVE state of %u bytes, at most %u", size,
				  VCPU_STATE_MAX_XSAVE);
	if (size != caps->xsave_size)
		return state_fail(r, "XSAVE state of %u bytes; this host's KVM uses %zu (another CPU?)",
				  size, caps->xsave_size);
	st->xsave = calloc(1, size);
	if (!st->xsave)
		return state_fail(r, "XSAVE: out of memory");
	st->xsave_size = size;
	return state_get_bytes(r, st->xsave, size);
}

static bool parse_xcrs(struct state_reader *r, const struct vcpu_state_caps *caps,
		       struct kvm_xcrs *x)
{
	x->nr_xcrs = state_get_u32(r);
	x->flags = state_get_u32(r);
	if (r->failed)
		return false;
	if (x->nr_xcrs > KVM_MAX_XCRS)
		return state_fail(r, "%u XCRs, at most %u", x->nr_xcrs, KVM_MAX_XCRS);
	if (x->nr_xcrs && !caps->xcrs)
		return state_fail(r, "XCRs saved, but this host's KVM has no KVM_CAP_XCRS");
	for (unsigned i = 0; i < x->nr_xcrs; i++) {
		x->xcrs[i].xcr = state_get_u32(r);
		x->xcrs[i].value = state_get_u64(r);
	}
	return !r->failed;
}

static bool parse_msrs(struct state_reader *r, struct vcpu_state *st)
{
	uint32_t n = state_get_u32(r);

	if (r->failed)
		return false;
	if (n > VCPU_STATE_MAX_MSRS)
		return state_fail(r, "%u MSRs, at most %u", n, VCPU_STATE_MAX_MSRS);
	st->msrs = alloc_msrs(n);
	if (!st->msrs)
		return state_fail(r, "MSRs: out of memory");
	st->msrs->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		st->msrs->entries[i].index = state_get_u32(r);
		st->msrs->entries[i].data = state_get_u64(r);
	}
	return !r->failed;
}

/* The fields of one "VCPU" section, in the order vcpu_state_write puts them. */
static bool parse_fields(struct state_reader *sec, const struct vcpu_state_caps *caps,
			 unsigned index, struct vcpu_state *st)
{
	st->index = state_get_u32(sec);
	if (!sec->failed && st->index != index)
		return state_fail(sec, "vCPU %u's state where vCPU %u's was expected", st->index,
				  index);
	if (!parse_cpuid(sec, st))
		return false;
	st->mp_state.mp_state = state_get_u32(sec);
	get_blob(sec, &st->regs, sizeof(st->regs), "kvm_regs");
	get_blob(sec, &st->sregs, sizeof(st->sregs), "kvm_sregs");
	if (!parse_xsave(sec, caps, st) || !parse_xcrs(sec, caps, &st->xcrs))
		return false;
	get_blob(sec, &st->debugregs, sizeof(st->debugregs), "kvm_debugregs");
	get_blob(sec, &st->lapic, sizeof(st->lapic), "kvm_lapic_state");
	if (!parse_msrs(sec, st))
		return false;
	return get_blob(sec, &st->events, sizeof(st->events), "kvm_vcpu_events");
}

int vcpu_state_parse(struct state_reader *r, const struct vcpu_state_caps *caps, unsigned index,
		     struct vcpu_state *st)
{
	struct state_reader sec;

	memset(st, 0, sizeof(*st));
	if (state_section(r, "VCPU", &sec))
		parse_fields(&sec, caps, index, st);
	return state_section_done(r, &sec) ? 0 : -EINVAL;
}

/* --- applying ----------------------------------------------------------------------- */

/*
 * KVM takes a host write of MSR_IA32_TSC that lands within a second of
 * where the VM's last TSC write would be by now as the vCPUs being
 * synchronized, and keeps that last write's offset instead of the value
 * (kvm_synchronize_tsc, Linux 6.1 at least). For the first vCPU restored,
 * the last write is KVM's own at vCPU creation (0): a guest saved within a
 * second of its start would get its TSC back near 0, behind where it was.
 * A write far from both first makes KVM take the saved value as it is. The
 * other vCPUs' TSCs, saved within a second of vCPU 0's, are then
 * synchronized to it by the same rule, as a firmware's writes would be.
 */
static void set_tsc_unsynchronized(struct vcpu *v, const struct kvm_msrs *m)
{
	union {
		struct kvm_msrs hdr;
		uint8_t room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} one = { .hdr.nmsrs = 1 };

	if (v->index != 0 || !m->nmsrs || m->entries[0].index != MSR_IA32_TSC)
		return;
	one.hdr.entries[0] = (struct kvm_msr_entry){ .index = MSR_IA32_TSC,
						     .data = m->entries[0].data + (1ull << 62) };
	if (ioctl(v->fd, KVM_SET_MSRS, &one) != 1)
		log_debug("vCPU %u: the TSC write before the saved one failed", v->index);
}

/* KVM_SET_MSRS returns how many it set: fewer is an error naming the first refused. */
static int set_msrs(struct vcpu *v, const struct kvm_msrs *m, struct errbuf *eb)
{
	struct kvm_msrs *buf = alloc_msrs(MSR_CHUNK);
	int r = 0;

	if (!buf) {
		errbuf_set(eb, "vCPU %u: MSRs: out of memory", v->index);
		return -ENOMEM;
	}
	set_tsc_unsynchronized(v, m);
	for (unsigned at = 0; !r && at < m->nmsrs; at += MSR_CHUNK) {
		buf->nmsrs = MIN(MSR_CHUNK, m->nmsrs - at);
		memcpy(buf->entries, &m->entries[at], buf->nmsrs * sizeof(buf->entries[0]));
		int set = ioctl(v->fd, KVM_SET_MSRS, buf);
		if (set < 0) {
			r = -errno;
			errbuf_set(eb, "vCPU %u: KVM_SET_MSRS: %s", v->index, strerror(-r));
		} else if ((unsigned)set < buf->nmsrs) {
			r = -EINVAL;
			errbuf_set(eb, "vCPU %u: KVM refused MSR 0x%x = 0x%llx", v->index,
				   buf->entries[set].index,
				   (unsigned long long)buf->entries[set].data);
		}
	}
	free(buf);
	return r;
}

/*
 * Firecracker's and cloud-hypervisor's order: CPUID first (KVM checks MSR
 * and XSAVE values against it), then MP state, registers (sregs sets the
 * APIC base, which decides how KVM_SET_LAPIC reads the APIC), XSAVE, XCRs,
 * debug registers, the LAPIC (before the MSRs: a TSC deadline is only
 * armed in the LAPIC's TSC-deadline mode), the MSRs, and the pending
 * events last, so that nothing set after them drops them.
 */
int vcpu_state_apply(struct vcpu *v, const struct vcpu_state *st, struct errbuf *eb)
{
	const struct { unsigned long req; const void *arg; const char *name; } steps[] = {
		{ KVM_SET_CPUID2, st->cpuid, "KVM_SET_CPUID2" },
		{ KVM_SET_MP_STATE, &st->mp_state, "KVM_SET_MP_STATE" },
		{ KVM_SET_REGS, &st->regs, "KVM_SET_REGS" },
		{ KVM_SET_SREGS, &st->sregs, "KVM_SET_SREGS" },
		{ KVM_SET_XSAVE, st->xsave, "KVM_SET_XSAVE" },
		{ st->xcrs.nr_xcrs ? KVM_SET_XCRS : 0, &st->xcrs, "KVM_SET_XCRS" },
		{ KVM_SET_DEBUGREGS, &st->debugregs, "KVM_SET_DEBUGREGS" },
		{ KVM_SET_LAPIC, &st->lapic, "KVM_SET_LAPIC" },
	};
	/* KVM_GET_VCPU_EVENTS does not flag these, but what it returned in
	 * them is valid: without the flags KVM_SET would drop a pending NMI. */
	struct kvm_vcpu_events events = st->events;
	events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;

	for (unsigned i = 0; i < ARRAY_SIZE(steps); i++) {
		if (!steps[i].req)
			continue;
		int r = vcpu_ioctl(v, steps[i].req, (void *)steps[i].arg, steps[i].name, eb);
		if (r < 0)
			return r;
	}
	int r = set_msrs(v, st->msrs, eb);
	if (!r)
		r = vcpu_ioctl(v, KVM_SET_VCPU_EVENTS, &events, "KVM_SET_VCPU_EVENTS", eb);
	return r;
}

void vcpu_state_free(struct vcpu_state *st)
{
	free(st->cpuid);
	free(st->xsave);
	free(st->msrs);
	st->cpuid = NULL;
	st->xsave = NULL;
	st->msrs = NULL;
}
