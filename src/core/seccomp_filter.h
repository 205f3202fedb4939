/*
 * seccomp filters per thread kind (libseccomp), default deny.
 *
 * Each kind of thread kvmini runs has its own allowlist (seccomp_filter.c,
 * one line of why per syscall). A thread installs its filter itself, at its
 * start, before it touches guest or peer input: a vCPU before its first
 * KVM_RUN, a queue-pair or worker thread before its first request, the main
 * thread after set-up (devices opened, sockets bound) and before its run loop.
 *
 * Order: seccomp filters stack and a new thread inherits its creator's. The
 * main thread creates threads after its own filter is on (vhost-user queue
 * pairs start at DRIVER_OK, vCPUs may start from the API), so each thread's
 * effective filter is (main's list) AND (its own list). Every thread kind's
 * list is therefore a subset of the main thread's; the main list carries what
 * creating a thread needs (clone with CLONE_THREAD; clone3 answers ENOSYS so
 * glibc falls back to clone, whose flags a filter can see). A thread started
 * before the main filter (vCPUs booted from the command line) simply ends with
 * its own list.
 *
 * A forbidden syscall traps (SCMP_ACT_TRAP), not SCMP_ACT_KILL_PROCESS: the
 * SIGSYS handler writes one line naming the thread kind and the syscall
 * (number and name, resolved at install time) to stderr, then _exit()s with
 * 128 + SIGSYS. KILL_PROCESS would only leave an audit record in the host's
 * kernel log, which an operator running kvmini under a test harness or an
 * orchestrator often cannot read; the trap costs nothing on allowed calls.
 */
#ifndef KVMINI_CORE_SECCOMP_FILTER_H
#define KVMINI_CORE_SECCOMP_FILTER_H

#include <stdbool.h>

#include "core/errbuf.h"

enum seccomp_kind {
	SECCOMP_MAIN,        /* event loop: devices, slirp, API, MMDS, vhost-user */
	SECCOMP_VCPU,        /* KVM_RUN and the exits handled in place */
	SECCOMP_NET_QUEUE,   /* a virtio-net queue pair's loop */
	SECCOMP_NET_SOCKETS, /* the same, its backend opening host sockets (libslirp) */
	SECCOMP_FS_WORKER,   /* virtio-fs / fuse-mount workers: the passthrough */
	SECCOMP_HOST_WATCH,  /* inotify on the shared directory */
	SECCOMP_BLK_WORKER,  /* virtio-blk requests on the image */
	SECCOMP_FUSE_MAIN,   /* fuse-mount's main thread: waits, then unmounts */
	SECCOMP_KIND_COUNT,
};

/* The exit status of a process killed by a forbidden syscall. */
#define SECCOMP_EXIT_STATUS (128 + 31)

/* Process-wide: `--seccomp off` sets this before any thread starts. */
void seccomp_filter_set_enabled(bool on);
bool seccomp_filter_enabled(void);
/* "on"/"off" to the setting; -EINVAL otherwise. */
int seccomp_filter_parse(const char *text);

const char *seccomp_kind_name(enum seccomp_kind kind);

/*
 * Install KIND's filter on the calling thread (no-op when disabled). The first
 * call also installs the SIGSYS handler and resolves syscall names.
 * 0 or -errno with a message in EB.
 */
int seccomp_filter_install(enum seccomp_kind kind, struct errbuf *eb);

/* For threads: install or log and end the process (a thread that cannot be
 * confined must not serve the guest). */
void seccomp_filter_enter(enum seccomp_kind kind);

#endif
