/* The one atomics vocabulary of kvmini.
 *
 * Every operation is a GCC __atomic builtin with its memory order in its name,
 * so a reader sees the ordering at the call site.  The builtins, not C11
 * <stdatomic.h>, because they work on plain types: the guest's ring fields
 * (avail->idx, used->idx) live in guest memory and cannot be declared _Atomic,
 * and one vocabulary must serve them and the host's own fields alike.
 *
 * Why each ordering exists in kvmini:
 *   relaxed  - counters and statistics (read by a metrics dump, ordered
 *              against nothing), dirty-page bits (read once the writers
 *              are paused), guest ring fields whose ordering comes from
 *              an index access or a fence next to them, and first-wins marks.
 *   acquire/ - guest-shared ring indices published against the driver (we
 *   release    acquire avail->idx, release used->idx), and host thread
 *              handoffs: a pointer or flag published after the data it
 *              guards (fuse session init, the watch's server, stop requests).
 *   seq_cst  - transport registers and flags shared between a vCPU thread and
 *              a device thread where both sides store then load (interrupt
 *              status, needs_reset, irq_pending), the device threads'
 *              stop/ended flags, and the full fence of the virtio
 *              "publish then check notification" idiom.
 */
#ifndef KVMINI_CORE_ATOMICS_H
#define KVMINI_CORE_ATOMICS_H

#include <stdbool.h>

#define load_relaxed(p)            __atomic_load_n((p), __ATOMIC_RELAXED)
#define store_relaxed(p, v)        __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define fetch_add_relaxed(p, n)    __atomic_fetch_add((p), (n), __ATOMIC_RELAXED)
#define add_fetch_relaxed(p, n)    __atomic_add_fetch((p), (n), __ATOMIC_RELAXED)
#define fetch_or_relaxed(p, v)     __atomic_fetch_or((p), (v), __ATOMIC_RELAXED)
/* First-wins: stores v only if *p still holds *expected. */
#define cas_relaxed(p, expected, v) \
	__atomic_compare_exchange_n((p), (expected), (v), false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)

#define load_acquire(p)            __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_release(p, v)        __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* Acquire-release on success, acquire on failure. */
#define cas_acq_rel(p, expected, v) \
	__atomic_compare_exchange_n((p), (expected), (v), false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

#define load_seq_cst(p)            __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_seq_cst(p, v)        __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define exchange_seq_cst(p, v)     __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define fetch_add_seq_cst(p, n)    __atomic_fetch_add((p), (n), __ATOMIC_SEQ_CST)
#define fetch_or_seq_cst(p, v)     __atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)
#define fetch_and_seq_cst(p, v)    __atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST)
#define fence_seq_cst()            __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* In a spin-wait loop: tells the CPU (and a hypervisor's pause-loop
 * exiting) that this thread only waits. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif
