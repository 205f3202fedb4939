/*
 * LD_PRELOAD shim for the UML kernel (tests/uml/lib.sh builds it into
 * build/uml/uml-xstate-shim.so when this file is newer).
 *
 * UML 6.1 hands ptrace(PTRACE_SETREGSET, NT_X86_XSTATE) an 832-byte buffer;
 * hosts whose XSAVE area is larger (AVX-512, AMX) refuse anything but the
 * full size with EFAULT, and UML panics at its first user process ("ptrace
 * set fp regs failed, errno = 14"). This keeps, per UML register buffer, the
 * full host area and hands the kernel whole buffers; UML sees its 832 bytes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#define SLOTS 4096
#define XMAX 65536
/* Keyed by UML's per-task register buffer, so each task keeps its own upper
 * state. Static, never on the stack: UML calls ptrace on small kernel stacks. */
static struct { void *key; unsigned char *full; } slots[SLOTS];
static unsigned char scratch[XMAX];
static size_t xsize;
static long (*real_ptrace)(int, ...);

static long raw(int req, pid_t pid, void *addr, void *data)
{
	if (!real_ptrace)
		real_ptrace = (long (*)(int, ...))dlsym(RTLD_NEXT, "ptrace");
	return real_ptrace(req, pid, addr, data);
}

/* The host's full XSAVE size: what GETREGSET reports for a large buffer. */
static size_t host_size(pid_t pid)
{
	struct iovec iov = { scratch, XMAX };

	if (!xsize && raw(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov) == 0)
		xsize = iov.iov_len;
	return xsize;
}

static unsigned char *slot(void *key, int create)
{
	size_t h = ((uintptr_t)key >> 4) % SLOTS;

	for (size_t i = 0; i < SLOTS; i++) {
		size_t j = (h + i) % SLOTS;
		if (slots[j].key == key)
			return slots[j].full;
		if (slots[j].key)
			continue;
		if (!create || !(slots[j].full = malloc(xsize)))
			return NULL;
		slots[j].key = key;
		return slots[j].full;
	}
	return NULL;
}

long ptrace(enum __ptrace_request req, ...)
{
	va_list ap;
	va_start(ap, req);
	pid_t pid = va_arg(ap, pid_t);
	void *addr = va_arg(ap, void *);
	struct iovec *uiov = va_arg(ap, void *);
	va_end(ap);

	if ((req != PTRACE_GETREGSET && req != PTRACE_SETREGSET) ||
	    (uintptr_t)addr != NT_X86_XSTATE || !uiov)
		return raw(req, pid, addr, uiov);
	size_t n = host_size(pid);
	if (!n || uiov->iov_len >= n)
		return raw(req, pid, addr, uiov);
	unsigned char *full = slot(uiov->iov_base, req == PTRACE_GETREGSET);
	struct iovec iov = { full ? full : scratch, n };
	if (req == PTRACE_GETREGSET) {
		long r = raw(req, pid, addr, &iov);
		if (r == 0)
			memcpy(uiov->iov_base, iov.iov_base, uiov->iov_len);
		return r;
	}
	/* A task never read (a fresh fork) starts from the stub's current state. */
	if (!full && raw(PTRACE_GETREGSET, pid, addr, &iov) < 0)
		return -1;
	memcpy(iov.iov_base, uiov->iov_base, uiov->iov_len);
	return raw(req, pid, addr, &iov);
}
