/*
 * vCPU threads: KVM_RUN, then the exit that brought us back, handed to the
 * exit table; everything that ends the guest goes through the run state.
 * A guest's mistakes end its VM with a report, never kvmini itself.
 */
#include "vmm/vcpu.h"
#include "core/seccomp_filter.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/atomics.h"
#include "core/compiler.h"
#include "core/log.h"

/* The page of @gva through this vCPU's page tables (guest_virt.h). */
static int vcpu_translate(struct guest_virt *gv, uint64_t gva, struct guest_virt_page *out)
{
	struct vcpu *v = container_of(gv, struct vcpu, virt);
	struct kvm_translation tr = { .linear_address = gva };

	if (ioctl(v->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return -EFAULT;
	out->gpa = tr.physical_address;
	out->writable = tr.writeable;
	return 0;
}

int vcpu_create(struct vcpu *v, unsigned index, const struct vcpu_links *links)
{
	memset(v, 0, sizeof(*v));
	v->index = index;
	v->unhandled_budget = VCPU_UNHANDLED_LOG_BUDGET;
	v->virt = (struct guest_virt){ .translate = vcpu_translate, .mem = links->mem };
	v->run_state = links->run_state;
	v->pause = links->pause;
	v->timing = links->timing;
	v->exit_table = links->exit_table;
	v->fd = ioctl(links->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		log_err("KVM_CREATE_VCPU %u: %s", index, strerror(errno));
		return -errno;
	}
	int size = ioctl(links->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run)) {
		log_err("KVM_GET_VCPU_MMAP_SIZE: %s", size < 0 ? strerror(errno) : "too small");
		return size < 0 ? -errno : -EINVAL;
	}
	v->run_size = (size_t)size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		log_err("vCPU %u: mmap kvm_run: %s", index, strerror(errno));
		return -errno;
	}
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	v->run = NULL;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

/* Hand one exit to the table and act on its verdict; returns false when
 * this vCPU must stop. */
static bool handle_exit(struct vcpu *v)
{
	uint32_t reason = v->run->exit_reason;

	switch (exit_table_dispatch(v->exit_table, reason, v)) {
	case EXIT_RESUME:
		return true;
	case EXIT_PASS:
		/* No handler took it: the guest did something we do not emulate. */
		run_state_request_stop(v->run_state, VM_EXIT_GUEST_ERROR,
				       "vCPU %u: unexpected KVM exit %u", v->index, reason);
		return false;
	case EXIT_STOP:
		break;      /* the handler has asked the run to end */
	}
	return false;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	seccomp_filter_enter(SECCOMP_VCPU);
	if (v->index == 0)
		vm_timing_mark(&v->timing->first_run);
	while (!run_state_stop_requested(v->run_state)) {
		if (vcpu_pause_pending(v->pause)) {
			/* The last exit is handled and the next KVM_RUN not
			 * begun: a clean point. */
			vcpu_pause_park(v->pause);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* A kick: its reason (stop, pause) is set before
				 * its immediate_exit and checked above, so clearing
				 * it here loses none; a pause released before it
				 * was seen must not leave KVM_RUN failing. */
				store_seq_cst(&v->run->immediate_exit, 0);
				continue;
			}
			run_state_request_stop(v->run_state, 1, "vCPU %u: KVM_RUN: %s", v->index,
					       strerror(errno));
			break;
		}
		v->exits++;
		vm_timing_mark(&v->timing->first_exit);
		if (!handle_exit(v))
			break;
	}
	return NULL;
}

/* The signal that interrupts KVM_RUN. */
static int kick_signal(void)
{
	return SIGRTMIN;
}

static void on_kick_signal(int sig)
{
	/* Only there so the signal interrupts KVM_RUN instead of killing us. */
}

int vcpu_install_kick(void)
{
	struct sigaction sa = { .sa_handler = on_kick_signal };
	sigset_t set;

	sigemptyset(&sa.sa_mask);
	if (sigaction(kick_signal(), &sa, NULL) < 0)
		return -errno;
	/* vCPU threads inherit the mask: the kick must not be blocked there. */
	sigemptyset(&set);
	sigaddset(&set, kick_signal());
	return -pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int vcpu_start(struct vcpu *v)
{
	int r = -pthread_create(&v->thread, NULL, vcpu_thread, v);

	v->started = !r;
	return r;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->started)
		return;
	/* immediate_exit covers a thread about to enter KVM_RUN; the signal
	 * covers one inside it. */
	store_seq_cst(&v->run->immediate_exit, 1);
	pthread_kill(v->thread, kick_signal());
}

void vcpu_join(struct vcpu *v)
{
	if (v->started)
		pthread_join(v->thread, NULL);
	v->started = false;
}
