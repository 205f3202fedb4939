/*
 * VM lifecycle: /dev/kvm, memory, irqchip, vCPU threads, stop requests.
 */
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/log.h"
#include "vmm/exit_events.h"
#include "vmm/layout.h"
#include "vmm/ram_file.h"

/* Open /dev/kvm with an operator-readable reason when that fails. */
static int open_kvm(struct vm *vm)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;
		if (e == ENOENT)
			log_err("/dev/kvm does not exist: KVM is not available on this host");
		else if (e == EACCES || e == EPERM)
			log_err("/dev/kvm: permission denied (run as root or join the group that owns it)");
		else
			log_err("/dev/kvm: %s", strerror(e));
		return -e;
	}
	int version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		log_err("/dev/kvm: API version %d, kvmini needs %d", version, KVM_API_VERSION);
		return -ENOTSUP;
	}
	return 0;
}

/* Every capability kvmini relies on, checked up front with its name. */
static int check_caps(struct vm *vm)
{
	static const struct { int cap; const char *name; } needed[] = {
		{ KVM_CAP_IRQCHIP, "IRQCHIP" },
		{ KVM_CAP_USER_MEMORY, "USER_MEMORY" },
		{ KVM_CAP_IOEVENTFD, "IOEVENTFD" },
		{ KVM_CAP_IRQFD, "IRQFD" },
		{ KVM_CAP_PIT2, "PIT2" },
		{ KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR" },
		{ KVM_CAP_EXT_CPUID, "EXT_CPUID" },
		{ KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT" },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(needed); i++) {
		if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0) {
			log_err("KVM lacks KVM_CAP_%s, which kvmini needs", needed[i].name);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int vm_ioctl(struct vm *vm, unsigned long req, void *arg, const char *what)
{
	if (ioctl(vm->vm_fd, req, arg) < 0) {
		int e = errno;
		log_err("KVM %s: %s", what, strerror(e));
		return -e;
	}
	return 0;
}

/* TSS and identity-map pages, in-kernel irqchip and PIT, emulation-failure exits. */
static int create_chipset(struct vm *vm)
{
	uint64_t identity = LAYOUT_IDENTITY_MAP;
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_TSS) < 0) {
		log_err("KVM_SET_TSS_ADDR: %s", strerror(errno));
		return -errno;
	}
	int r = vm_ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity, "SET_IDENTITY_MAP_ADDR");
	if (!r)
		r = vm_ioctl(vm, KVM_CREATE_IRQCHIP, NULL, "CREATE_IRQCHIP");
	if (!r)
		r = vm_ioctl(vm, KVM_CREATE_PIT2, &pit, "CREATE_PIT2");
	/* Optional: report emulation failures with the instruction bytes
	 * instead of injecting #UD (needed to say what the guest tripped on). */
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE, .args = { 1 } };
	if (!r && ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0 &&
	    ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		log_debug("KVM_CAP_EXIT_ON_EMULATION_FAILURE: %s", strerror(errno));
	return r;
}

/* Add [gpa, gpa + size) of guest RAM at @host to kvmini and to KVM; one
 * region owns the mapping (@map_base, @map_len bytes), the other NULL. */
static int add_ram(struct vm *vm, unsigned slot, uint64_t gpa, uint64_t size, uint8_t *host,
		   void *map_base, size_t map_len)
{
	int r = guest_mem_add(&vm->mem, gpa, size, 0, host, map_base, map_len);
	if (r < 0)
		return r;
	struct kvm_userspace_memory_region region = {
		.slot = slot,
		.flags = vm->track_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	return vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "SET_USER_MEMORY_REGION");
}

/*
 * @bytes of anonymous memory starting on a 2 MiB boundary, below it an
 * inaccessible guard of at least a page; *@guard says how big. Aligned
 * because a huge page backs guest memory only where host and guest address
 * are both 2 MiB-aligned, and mmap promises 4 KiB (before Linux 6.7). The
 * guard also keeps the next mapping (a thread's stack) from ending on that
 * boundary, where a host with THP "always" would give the stack's first
 * touch a 2 MiB page. NULL with errno set on failure.
 */
static uint8_t *map_ram(uint64_t bytes, size_t *guard)
{
	const size_t huge = 2u << 20, page = 4096;

	if (bytes > SIZE_MAX - huge - page) {
		errno = ENOMEM;
		return NULL;
	}
	size_t len = (size_t)bytes + huge + page;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uint8_t *ram = (uint8_t *)(((uintptr_t)p + page + huge - 1) & ~(uintptr_t)(huge - 1));
	*guard = (size_t)(ram - p);
	size_t tail = len - *guard - (size_t)bytes;
	mprotect(p, *guard, PROT_NONE);
	if (tail)
		munmap(ram + bytes, tail);
	return ram;
}

/* A snapshot's layers over the reservation at @ram: the Full image whole,
 * then each Diff's data (ram_file.h). */
static int map_snapshot(uint8_t *ram, uint64_t bytes, const struct vm_config *cfg)
{
	struct errbuf eb;
	int r = ram_file_map(ram, bytes, cfg->mem_files[0], &eb);

	for (unsigned i = 1; !r && i < cfg->n_mem_files; i++)
		r = ram_file_map_layer(ram, bytes, cfg->mem_files[i], &eb);
	if (r < 0)
		log_err("%s", eb.msg);
	return r;
}

/*
 * Guest RAM: one private anonymous mapping, split into up to two regions
 * around the 32-bit hole. Anonymous memory gets transparent huge pages
 * where the host allows them (a memfd only where shmem_enabled says so,
 * which it rarely does): on the nested platform, where every 4 KiB page
 * the guest touches costs a nested page fault, 2 MiB pages took Debian's
 * kernel to userspace from 6.08 s to 5.21 s (bench/boot_vs_qemu). Named
 * where the kernel names anonymous mappings, so smaps says what it is.
 */
static int create_memory(struct vm *vm, uint64_t bytes, const struct vm_config *cfg)
{
	size_t guard;
	uint8_t *ram = map_ram(bytes, &guard);
	if (!ram) {
		log_err("guest memory of %llu MiB: %s", (unsigned long long)(bytes >> 20),
			strerror(errno));
		return -errno;
	}
	/* A snapshot's RAM: the files mapped over the reservation (private
	 * pages of a file get no huge pages, but nothing is read up front). */
	int r = cfg->n_mem_files ? map_snapshot(ram, bytes, cfg) : 0;
	if (r < 0) {
		munmap(ram - guard, guard + (size_t)bytes);
		return r;
	}
	if (!cfg->n_mem_files)
		madvise(ram, (size_t)bytes, MADV_HUGEPAGE);   /* a hint: 4 KiB pages work too */
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)ram, (unsigned long)bytes,
	      (unsigned long)"kvmini-guest-ram");     /* a name for operators; optional */
	vm->mem_bytes = bytes;
	vm->low_ram_end = MIN(bytes, LAYOUT_LOW_RAM_MAX);
	r = add_ram(vm, 0, 0, vm->low_ram_end, ram, ram - guard, guard + (size_t)bytes);
	if (r < 0) {
		munmap(ram - guard, guard + (size_t)bytes);
		return r;
	}
	if (bytes > vm->low_ram_end)
		r = add_ram(vm, 1, LAYOUT_HIGH_RAM, bytes - vm->low_ram_end, ram + vm->low_ram_end,
			    NULL, 0);
	/* A snapshot's file under the RAM: a balloon's discard must not show
	 * the file's page again (guest_mem_discard). */
	for (unsigned i = 0; !r && cfg->n_mem_files && i < vm->mem.nregions; i++)
		guest_mem_set_backing(&vm->mem, i, GUEST_MEM_FILE_PRIVATE);
	if (!r && vm->track_dirty && guest_mem_track_dirty(&vm->mem) < 0) {
		log_err("dirty page bitmaps: %s", strerror(ENOMEM));
		r = -ENOMEM;
	}
	return r;
}

/* What the vCPUs do with each exit: ports and MMIO go to the buses, the
 * run's events end or resume it, and compat mode's workarounds come in
 * front of those where they apply. */
static int build_exit_table(struct vm *vm, bool compat)
{
	int r = exit_io_init(&vm->exit_io, &vm->exit_table, &vm->pio, &vm->mmio);
	if (!r)
		r = exit_events_init(&vm->exit_table);
	if (!r)
		r = compat_init(&vm->compat, compat, vm->vm_fd, &vm->exit_table);
	return r;
}

static int create_vcpus(struct vm *vm, unsigned ncpus)
{
	const struct vcpu_links links = {
		.kvm_fd = vm->kvm_fd, .vm_fd = vm->vm_fd, .mem = &vm->mem,
		.run_state = &vm->run_state, .pause = &vm->pause, .timing = &vm->timing,
		.exit_table = &vm->exit_table,
	};

	for (unsigned i = 0; i < ncpus; i++) {
		int r = vcpu_create(&vm->vcpus[i], i, &links);
		if (r < 0)
			return r;
		vm->ncpus++;
	}
	return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->run_state.stop_fd = -1;
	guest_mem_init(&vm->mem);
	/* Set before anything can fail: --counters says "compat mode" even
	 * for a VM that was never made. compat_init sets it again. */
	vm->compat.enabled = cfg->compat;
	vm->track_dirty = cfg->track_dirty;
	if (!cfg->ncpus || cfg->ncpus > VM_MAX_VCPUS)
		return -EINVAL;
	int r = run_state_init(&vm->run_state);
	if (r < 0)
		return r;
	r = vcpu_pause_init(&vm->pause);
	if (r < 0)
		return r;
	vm->pause_ready = true;
	r = open_kvm(vm);
	if (r < 0)
		return r;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		log_err("KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus > 0 && cfg->ncpus > (unsigned)max_vcpus) {
		log_err("%u vCPUs asked, KVM allows %d", cfg->ncpus, max_vcpus);
		return -EINVAL;
	}
	r = check_caps(vm);
	/* Memory before the irqchip: here the first memory slot made after
	 * KVM_CREATE_IRQCHIP cost 5 to 13 ms, the same slot made before it
	 * well under 1 ms (nested PVM; measured, cause not traced). */
	if (!r)
		r = create_memory(vm, cfg->mem_bytes, cfg);
	if (!r)
		r = create_chipset(vm);
	if (!r)
		r = build_exit_table(vm, cfg->compat);
	if (!r)
		r = cpu_supported_cpuid(vm->kvm_fd, &vm->supported_cpuid);
	if (!r)
		r = create_vcpus(vm, cfg->ncpus);
	return r;
}

void vm_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	vm->ncpus = 0;
	free(vm->supported_cpuid);
	vm->supported_cpuid = NULL;
	guest_mem_clear(&vm->mem);
	run_state_destroy(&vm->run_state);
	if (vm->pause_ready)
		vcpu_pause_destroy(&vm->pause);
	vm->pause_ready = false;
	int *fds[] = { &vm->vm_fd, &vm->kvm_fd };
	for (unsigned i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* The first guest-physical address above RAM (and above the 32-bit hole). */
static uint64_t ram_top(const struct vm *vm)
{
	return LAYOUT_HIGH_RAM + (vm->mem_bytes - vm->low_ram_end);
}

int vm_add_device_memory(struct vm *vm, void *host, uint64_t size, uint64_t *gpa)
{
	uint64_t align = MAX(size, LAYOUT_DEVICE_MEM_ALIGN);
	uint64_t base = vm->device_mem_top ? vm->device_mem_top : ram_top(vm);

	if (vm->n_device_slots >= LAYOUT_DEVICE_MEM_MAX_SLOTS || !size || (align & (align - 1)))
		return -EINVAL;
	base = (base + align - 1) & ~(align - 1);
	/* No KVM_MEM_LOG_DIRTY_PAGES and no guest_mem region: the window is
	 * the host files' memory, never guest RAM to save or to track. */
	struct kvm_userspace_memory_region region = {
		.slot = LAYOUT_DEVICE_MEM_FIRST_SLOT + vm->n_device_slots,
		.guest_phys_addr = base,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	int r = vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "SET_USER_MEMORY_REGION");
	if (r < 0)
		return r;
	vm->n_device_slots++;
	vm->device_mem_top = base + size;
	*gpa = base;
	return 0;
}

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&vm->mem, gpa, len);
}

int vm_ioapic_pin(struct vm *vm, unsigned pin, uint64_t *entry, bool *irr)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };

	if (pin >= KVM_IOAPIC_NUM_PINS)
		return -EINVAL;
	if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
		return -errno;
	*entry = chip.chip.ioapic.redirtbl[pin].bits;
	*irr = chip.chip.ioapic.irr >> pin & 1;
	return 0;
}

int vm_set_irq_line(struct vm *vm, unsigned irq, bool level)
{
	struct kvm_irq_level line = { .irq = irq, .level = level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &line) < 0 ? -errno : 0;
}

int vm_start(struct vm *vm)
{
	const struct cpu_config cpu = { .supported_cpuid = vm->supported_cpuid, .ncpus = vm->ncpus,
					.compat = vm->compat.enabled, .entry = &vm->entry };
	int r = vcpu_install_kick();
	if (r < 0) {
		log_err("vCPU kick signal: %s", strerror(-r));
		return r;
	}
	for (unsigned i = 0; !vm->restored && i < vm->ncpus; i++) {
		r = cpu_setup(&vm->vcpus[i], &cpu);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		r = vcpu_start(&vm->vcpus[i]);
		if (r < 0) {
			log_err("vCPU %u thread: %s", i, strerror(-r));
			run_state_request_stop(&vm->run_state, 1, "cannot start vCPU %u", i);
			return r;
		}
	}
	return 0;
}

void vm_join(struct vm *vm)
{
	/* Threads check this before each KVM_RUN; parked ones wake to see it. */
	run_state_stop(&vm->run_state);
	vcpu_pause_end(&vm->pause);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_join(&vm->vcpus[i]);
}

static unsigned started_vcpus(const struct vm *vm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < vm->ncpus; i++)
		n += vm->vcpus[i].started;
	return n;
}

void vm_pause_vcpus(struct vm *vm)
{
	vcpu_pause_request(&vm->pause);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

bool vm_vcpus_parked(struct vm *vm, int timeout_ms)
{
	return vcpu_pause_wait(&vm->pause, started_vcpus(vm), timeout_ms);
}

void vm_resume_vcpus(struct vm *vm)
{
	vcpu_pause_release(&vm->pause);
}
