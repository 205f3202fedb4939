/* seccomp allowlists per thread kind and the SIGSYS reporter (see the header). */
#include "core/seccomp_filter.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/compiler.h"
#include "core/log.h"

/* Filters on unless `--seccomp off`: set once at start, read by every thread. */
static bool filters_on = true;

void seccomp_filter_set_enabled(bool on)
{
	filters_on = on;
}

bool seccomp_filter_enabled(void)
{
	return filters_on;
}

int seccomp_filter_parse(const char *text)
{
	if (!strcmp(text, "on"))
		seccomp_filter_set_enabled(true);
	else if (!strcmp(text, "off"))
		seccomp_filter_set_enabled(false);
	else
		return -EINVAL;
	return 0;
}

/* Linux 6.6's fchmodat2, which passthrough.c calls by number on older
 * headers too (ENOSYS there, then it falls back). */
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

static const char *const kind_names[SECCOMP_KIND_COUNT] = {
	[SECCOMP_MAIN] = "main",           [SECCOMP_VCPU] = "vcpu",
	[SECCOMP_NET_QUEUE] = "net-queue", [SECCOMP_NET_SOCKETS] = "net-sockets",
	[SECCOMP_FS_WORKER] = "fs-worker",
	[SECCOMP_HOST_WATCH] = "host-watch", [SECCOMP_BLK_WORKER] = "blk-worker",
	[SECCOMP_FUSE_MAIN] = "fuse-main",
};

const char *seccomp_kind_name(enum seccomp_kind kind)
{
	return kind < SECCOMP_KIND_COUNT ? kind_names[kind] : "?";
}

/* Every thread: memory, locks, logging, leaving. */
static const int base_list[] = {
	SCMP_SYS(read),            /* eventfds, the tap, pipes */
	SCMP_SYS(write),           /* log lines, eventfds, the serial console */
	SCMP_SYS(readv),           /* frames and requests in batches */
	SCMP_SYS(writev),          /* frames and replies in batches */
	SCMP_SYS(close),           /* descriptors a request or a peer gave up */
	SCMP_SYS(futex),           /* pthread mutexes and conditions (pause gates) */
	SCMP_SYS(mmap),            /* malloc of large blocks */
	SCMP_SYS(munmap),          /* free of large blocks */
	SCMP_SYS(mprotect),        /* malloc arenas of a new thread */
	SCMP_SYS(madvise),         /* glibc returns freed arena memory; the balloon frees guest pages */
	SCMP_SYS(brk),             /* malloc on the main heap */
	SCMP_SYS(mremap),          /* realloc of large blocks */
	SCMP_SYS(rt_sigprocmask),  /* pthread_sigmask around waits */
	SCMP_SYS(rt_sigreturn),    /* return from the kick and SIGSYS handlers */
	SCMP_SYS(exit),            /* a thread ends */
	SCMP_SYS(exit_group),      /* the process ends */
	SCMP_SYS(clock_gettime),   /* timestamps when the vDSO falls back */
	SCMP_SYS(clock_nanosleep), /* back-off sleeps */
	SCMP_SYS(nanosleep),       /* back-off sleeps */
	SCMP_SYS(gettid),          /* log lines */
	SCMP_SYS(getpid),          /* log lines, raise() */
	SCMP_SYS(tgkill),          /* raise()/abort() on an internal error */
	SCMP_SYS(sched_yield),     /* spin-then-wait loops */
	SCMP_SYS(restart_syscall), /* a wait interrupted by a signal */
	SCMP_SYS(getrandom),       /* glibc malloc's tcache randomisation */
};

/* A loop's waits and timers (main and queue pairs). */
static const int loop_list[] = {
	SCMP_SYS(epoll_wait),      /* the event loop's wait */
	SCMP_SYS(epoll_pwait),     /* the event loop's wait (newer glibc) */
	SCMP_SYS(epoll_ctl),       /* handlers added and removed */
	SCMP_SYS(timerfd_settime), /* rate-limiter refills */
	SCMP_SYS(timerfd_gettime), /* rate-limiter state */
	SCMP_SYS(recvfrom),        /* stream backend, slirp sockets */
	SCMP_SYS(sendto),          /* stream backend, slirp sockets */
	SCMP_SYS(recvmsg),         /* vhost-user messages with descriptors */
	SCMP_SYS(sendmsg),         /* vhost-user replies, slirp UDP */
	SCMP_SYS(recvmmsg),        /* batched datagrams */
	SCMP_SYS(sendmmsg),        /* batched datagrams */
	SCMP_SYS(poll),            /* libslirp's and glib's polls */
	SCMP_SYS(ppoll),           /* the same, newer glibc */
	SCMP_SYS(fcntl),           /* O_NONBLOCK on accepted descriptors */
};

/* A device thread telling the driver about used buffers: the vhost-user call
 * fd (an eventfd written with write, in base_list, or a socket under UML,
 * written with send) or the in-band VRING_CALL message on the back-end
 * channel. */
static const int call_list[] = {
	SCMP_SYS(sendto),  /* send() on a socket call fd */
	SCMP_SYS(sendmsg), /* VHOST_USER_BACKEND_VRING_CALL */
};

/* Data of a file already open: virtio-fs READ/WRITE/FSYNC/FALLOCATE, and
 * virtio-blk's requests on its image (FLUSH, DISCARD, WRITE_ZEROES). */
static const int file_io_list[] = {
	SCMP_SYS(pread64),   /* reads */
	SCMP_SYS(pwrite64),  /* writes */
	SCMP_SYS(preadv),    /* reads into several buffers */
	SCMP_SYS(pwritev),   /* writes from several buffers */
	SCMP_SYS(preadv2),   /* the same (glibc's preadv) */
	SCMP_SYS(pwritev2),  /* the same (glibc's pwritev) */
	SCMP_SYS(fsync),     /* FSYNC, FLUSH */
	SCMP_SYS(fdatasync), /* FSYNC with datasync, FLUSH */
	SCMP_SYS(fallocate), /* FALLOCATE, DISCARD, WRITE_ZEROES */
};

/* Files under the shared directory (virtio-fs, fuse-mount workers). */
static const int fs_list[] = {
	SCMP_SYS(openat),            /* LOOKUP/OPEN/CREATE below the root fd */
	SCMP_SYS(openat2),           /* RESOLVE_BENEATH: confined to the share */
	SCMP_SYS(newfstatat),        /* GETATTR, LOOKUP */
	SCMP_SYS(fstat),             /* GETATTR on an open file */
	SCMP_SYS(statx),             /* GETATTR (newer glibc) */
	SCMP_SYS(fstatfs),           /* STATFS */
	SCMP_SYS(statfs),            /* STATFS */
	SCMP_SYS(getdents64),        /* READDIR */
	SCMP_SYS(lseek),             /* READDIR offsets, LSEEK */
	SCMP_SYS(ftruncate),         /* SETATTR size */
	SCMP_SYS(renameat2),         /* RENAME2 */
	SCMP_SYS(renameat),          /* RENAME */
	SCMP_SYS(unlinkat),          /* UNLINK, RMDIR */
	SCMP_SYS(mkdirat),           /* MKDIR */
	SCMP_SYS(mknodat),           /* MKNOD */
	SCMP_SYS(symlinkat),         /* SYMLINK */
	SCMP_SYS(linkat),            /* LINK */
	SCMP_SYS(readlinkat),        /* READLINK */
	SCMP_SYS(fchmodat),          /* SETATTR mode by path */
	SCMP_SYS(fchmod),            /* SETATTR mode */
	SCMP_SYS(fchownat),          /* SETATTR owner */
	SCMP_SYS(fchown),            /* SETATTR owner */
	SCMP_SYS(utimensat),         /* SETATTR times */
	SCMP_SYS(fgetxattr),         /* GETXATTR */
	SCMP_SYS(fsetxattr),         /* SETXATTR */
	SCMP_SYS(flistxattr),        /* LISTXATTR */
	SCMP_SYS(fremovexattr),      /* REMOVEXATTR */
	SCMP_SYS(getxattr),          /* GETXATTR through /proc/self/fd */
	SCMP_SYS(setxattr),          /* SETXATTR through /proc/self/fd */
	SCMP_SYS(listxattr),         /* LISTXATTR through /proc/self/fd */
	SCMP_SYS(removexattr),       /* REMOVEXATTR through /proc/self/fd */
	SCMP_SYS(lgetxattr),         /* xattrs of a symlink */
	SCMP_SYS(llistxattr),        /* xattrs of a symlink */
	SCMP_SYS(flock),             /* SETLK with FUSE_LK_FLOCK */
	SCMP_SYS(fcntl),             /* SETLK/GETLK, descriptor flags */
	SCMP_SYS(dup),               /* reopening a directory for READDIR */
	SCMP_SYS(copy_file_range),   /* COPY_FILE_RANGE */
	SCMP_SYS(faccessat),         /* ACCESS */
	SCMP_SYS(faccessat2),        /* ACCESS (newer glibc) */
	SCMP_SYS(setfsuid),          /* CREATE as the caller */
	SCMP_SYS(setfsgid),          /* CREATE as the caller */
	SCMP_SYS(ioctl),             /* FS_IOC flags reads (open files only) */
	SCMP_SYS(inotify_add_watch), /* a directory looked up is watched */
	SCMP_SYS(inotify_rm_watch),  /* a directory forgotten */
	SCMP_SYS(geteuid),           /* the access check: who the server runs as */
	SCMP_SYS(getegid),           /* the same, its group */
	SCMP_SYS(unshare),           /* the worker's own umask (CLONE_FS), once */
	SCMP_SYS(umask),             /* CREATE with the caller's umask */
	SCMP_SYS(prctl),             /* SECBIT_NO_SETUID_FIXUP, once per worker */
	SCMP_SYS(name_to_handle_at), /* a node's handle, to close its fd and reopen */
	SCMP_SYS(open_by_handle_at), /* an evicted node reopened from its handle */
	SYS_fchmodat2,               /* SETATTR mode on an O_PATH fd (passthrough.c) */
	SCMP_SYS(syncfs),            /* SYNCFS */
	SCMP_SYS(splice),            /* READ spliced from the file to /dev/fuse */
	SCMP_SYS(pipe2),             /* the worker's splice pipe */
};

/* The main thread's own work on top of a loop's. */
/* libslirp's host side (the "user" backend, the MMDS endpoint), on top of
 * the socket families add_sockets allows. */
static const int slirp_list[] = {
	SCMP_SYS(bind),           /* host forwards, outbound UDP */
	SCMP_SYS(listen),         /* host forwards */
	SCMP_SYS(accept),         /* a connection to a host forward */
	SCMP_SYS(accept4),        /* the same (newer glibc) */
	SCMP_SYS(connect),        /* outbound TCP, the MMDS endpoint's socket */
	SCMP_SYS(getsockopt),     /* SO_ERROR of a connect in progress */
	SCMP_SYS(setsockopt),     /* SO_REUSEADDR, SO_OOBINLINE, TCP_NODELAY */
	SCMP_SYS(getsockname),    /* local addresses of forwards */
	SCMP_SYS(getpeername),    /* peer addresses */
	SCMP_SYS(shutdown),       /* half-closes the guest asked for */
	SCMP_SYS(uname),          /* the DHCP host name */
};

static const int main_list[] = {
	SCMP_SYS(accept4),        /* API, MMDS and vhost-user connections */
	SCMP_SYS(shutdown),       /* the API's half-closes */
	SCMP_SYS(epoll_create1),  /* a queue pair's loop */
	SCMP_SYS(eventfd2),       /* a queue pair's wake-ups */
	SCMP_SYS(timerfd_create), /* rate limiters, timeouts */
	SCMP_SYS(pipe2),          /* glib's wake-ups under libslirp */
	SCMP_SYS(dup),            /* descriptors handed to devices */
	SCMP_SYS(dup3),           /* descriptors handed to devices */
	SCMP_SYS(ioctl),          /* KVM VM/vCPU control for the API, snapshots and
	                           * pauses, TUN offloads at feature negotiation:
	                           * too many numbers to list, not filtered here */
	SCMP_SYS(rt_sigaction),   /* signal set-up at a late device start */
	SCMP_SYS(set_robust_list), /* a new thread's start */
	SCMP_SYS(rseq),           /* a new thread's start */
	SCMP_SYS(sched_getaffinity), /* glibc sizing a new thread */
	SCMP_SYS(prctl),          /* thread names; no_new_privs before a thread's filter */
	SCMP_SYS(seccomp),        /* a thread started later narrows to its own list */
	SCMP_SYS(unlink),         /* the API and vhost-user sockets at exit */
	SCMP_SYS(rmdir),          /* MMDS's private socket directory at exit */
	SCMP_SYS(unlinkat),       /* the same (newer glibc) */
	SCMP_SYS(rename),         /* counters and snapshot files replaced */
	SCMP_SYS(umask),          /* sockets created with a mode */
	SCMP_SYS(memfd_create),   /* guest memory backing for snapshots */
	SCMP_SYS(getuid),         /* GET of /vm/config, logs */
	SCMP_SYS(getgid),         /* the same */
	SCMP_SYS(geteuid),        /* the same */
	SCMP_SYS(getegid),        /* the same */
	SCMP_SYS(sysinfo),        /* glib */
	SCMP_SYS(kill),           /* SIGTERM forwarded to the process */
	SCMP_SYS(sigaltstack),    /* a new thread's alternate stack */
	SCMP_SYS(getcwd),         /* relative paths in logs */
	SCMP_SYS(access),         /* a kernel, initrd or drive path checked as the API
	                           * names it, before the start */
	SCMP_SYS(faccessat),      /* the same (newer glibc) */
	SCMP_SYS(faccessat2),     /* the same */
	SCMP_SYS(setitimer),      /* glib timers */
	SCMP_SYS(wait4),          /* nothing starts children after set-up, but glibc's
	                           * system() is not used: harmless */
};

/* A vCPU: KVM_RUN and the ioctls its exits use, nothing else. */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN,         /* run the guest */
	KVM_IRQ_LINE,    /* legacy devices raise interrupts on their exit */
	KVM_GET_REGS,    /* the exit log and port I/O of string instructions */
	KVM_GET_SREGS,   /* the same */
	KVM_SET_REGS,    /* the same */
	KVM_TRANSLATE,   /* guest virtual addresses of string port I/O */
	/* --compat's relay of user-mode SYSCALL/IRET/#PF and the debug exit
	 * rewrite this vCPU's own state in place: */
	KVM_SET_SREGS, KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_VCPU_EVENTS,
	KVM_SET_VCPU_EVENTS, KVM_SET_GUEST_DEBUG, KVM_GET_DEBUGREGS,
	KVM_SET_DEBUGREGS, KVM_GET_MP_STATE, KVM_SET_MP_STATE,
	KVM_IRQFD,       /* device interrupts wired at DRIVER_OK */
	KVM_IOEVENTFD,   /* queue notifications wired at DRIVER_OK */
	KVM_SET_USER_MEMORY_REGION, /* dirty logging switched during a pause */
};

/* A queue pair's loop: its own descriptors, already opened. */
static const int net_queue_list[] = {
	SCMP_SYS(ioctl), /* TUNSETOFFLOAD when the guest changes offloads */
};

/* The host watcher: inotify on the share. */
static const int host_watch_list[] = {
	SCMP_SYS(inotify_add_watch), /* a directory the guest looked up */
	SCMP_SYS(inotify_rm_watch),  /* a directory forgotten */
	SCMP_SYS(poll),              /* the inotify fd and the stop eventfd */
	SCMP_SYS(ppoll),             /* the same, newer glibc */
	SCMP_SYS(openat),            /* a directory reopened to watch */
	SCMP_SYS(newfstatat),        /* a watched node's identity; a child's name mapped to its node */
	SCMP_SYS(fstat),             /* the same */
	SCMP_SYS(open_by_handle_at), /* that child's directory reopened when it gave up its fd */
	SCMP_SYS(name_to_handle_at), /* and, over --max-fds, another node giving its fd up */
	SCMP_SYS(statx),             /* newfstatat in newer glibc */
};

/* A virtio-blk worker: the image is open already. */
static const int blk_list[] = {
	SCMP_SYS(ioctl),     /* BLKDISCARD/BLKZEROOUT on a block device */
};

/* fuse-mount's main thread once its workers and watcher run: it waits for
 * a stop signal or the unmount, then stops them and unmounts. */
static const int fuse_main_list[] = {
	SCMP_SYS(signalfd4),   /* the stop signals, waited for with the session's end */
	SCMP_SYS(poll),        /* that wait */
	SCMP_SYS(ppoll),       /* the same, newer glibc */
	SCMP_SYS(umount2),     /* MNT_DETACH at a stop signal */
	SCMP_SYS(inotify_rm_watch), /* the watcher's watches dropped as the share closes */
	SCMP_SYS(fstat),       /* stdio sizing stderr for the counters */
	SCMP_SYS(newfstatat),  /* the same (newer glibc) */
};

/*
 * The sanitizer runtime (ASan/UBSan builds only): its allocator, its report
 * path (reads /proc/self/maps, writes stderr, tries the symbolizer) and its
 * thread bookkeeping.
 */
#if defined(__SANITIZE_ADDRESS__)
#define KVMINI_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVMINI_SANITIZER 1
#endif
#endif
#ifdef KVMINI_SANITIZER
static const int sanitizer_list[] = {
	SCMP_SYS(sigaltstack),    /* the runtime's own signal stacks */
	SCMP_SYS(prctl),          /* PR_GET_DUMPABLE before a report */
	SCMP_SYS(openat),         /* /proc/self/maps for a report */
	SCMP_SYS(readlink),       /* /proc/self/exe for a report */
	SCMP_SYS(readlinkat),     /* the same */
	SCMP_SYS(newfstatat),     /* module sizes for a report */
	SCMP_SYS(fstat),          /* the same */
	SCMP_SYS(rt_sigaction),   /* the report path's deadly-signal handlers */
	SCMP_SYS(sched_getaffinity), /* the allocator's sizing */
	SCMP_SYS(getrlimit),      /* stack bounds of a thread */
	SCMP_SYS(prlimit64),      /* stack bounds of a thread */
	SCMP_SYS(pipe2),          /* the symbolizer's pipes (fails later: fine) */
	SCMP_SYS(set_robust_list), /* thread start under the interceptors */
	SCMP_SYS(rseq),            /* the same */
	SCMP_SYS(lseek),           /* reading /proc files */
	/* LeakSanitizer's check at exit: a tracer task (clone without
	 * CLONE_THREAD) that stops and reads every thread with ptrace. */
	SCMP_SYS(clone),           /* the tracer task */
	SCMP_SYS(ptrace),          /* the tracer attaches to each thread */
	SCMP_SYS(wait4),           /* the tracer and the attached threads */
	SCMP_SYS(getppid),         /* the tracer watches its parent */
	SCMP_SYS(getdents64),      /* /proc/self/task: the threads to stop */
	SCMP_SYS(getdents),        /* the same, the runtime's x86-64 call */
	SCMP_SYS(open),            /* the runtime opens /proc files with open(2) */
	SCMP_SYS(stat),            /* the runtime's file checks */
	SCMP_SYS(kill),            /* the tracer ends */
	SCMP_SYS(process_vm_readv), /* reading thread registers and stacks */
};
#endif

/* The SIGSYS handler's view: names by number, filled once before any trap. */
#define NAME_TABLE_SIZE 512
static char *syscall_names[NAME_TABLE_SIZE];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;
static __thread int thread_kind = -1;

static void resolve_names(void)
{
	for (int nr = 0; nr < NAME_TABLE_SIZE; nr++)
		syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
}

static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, long n)
{
	char digits[24];
	int len = 0;

	if (n < 0) {
		at = put(buf, at, cap, "-");
		n = -n;
	}
	do
		digits[len++] = (char)('0' + n % 10);
	while ((n /= 10) && len < (int)sizeof(digits));
	while (len && at < cap)
		buf[at++] = digits[--len];
	return at;
}

/* Async-signal-safe: formats into a stack buffer, one write(2), _exit(2). */
static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	char line[160];
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < NAME_TABLE_SIZE && syscall_names[nr]
		? syscall_names[nr] : "unknown";
	size_t n = put(line, 0, sizeof(line), "kvmini: seccomp: thread ");
	ssize_t w;

	n = put(line, n, sizeof(line), thread_kind >= 0 ? kind_names[thread_kind] : "?");
	n = put(line, n, sizeof(line), " made forbidden syscall ");
	n = put_num(line, n, sizeof(line), nr);
	n = put(line, n, sizeof(line), " (");
	n = put(line, n, sizeof(line), name);
	n = put(line, n, sizeof(line), "); killing the process\n");
	w = write(STDERR_FILENO, line, n);
	(void)w;
	_exit(SECCOMP_EXIT_STATUS);
}

static int install_handler(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };

	pthread_once(&names_once, resolve_names);
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}

static int add_list(scmp_filter_ctx ctx, const int *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, list[i], 0);

		if (r < 0)
			return r;
	}
	return 0;
}

#define ADD(ctx, list) add_list((ctx), (list), ARRAY_SIZE(list))

static int add_vcpu(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_ioctls); i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					 SCMP_A1(SCMP_CMP_EQ, vcpu_ioctls[i]));

		if (r < 0)
			return r;
	}
	return 0;
}

/* Threads only (CLONE_THREAD): no child process from the main thread. clone3
 * hides its flags in memory, so it answers ENOSYS and glibc uses clone. */
static int add_clone(scmp_filter_ctx ctx)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));

	return r ? r : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

/* The families the monitor speaks: unix (API, vhost-user, stream), IP (slirp,
 * MMDS), netlink (slirp's and glib's interface queries). */
static int add_sockets(scmp_filter_ctx ctx)
{
	static const int families[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK };

	for (size_t i = 0; i < ARRAY_SIZE(families); i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
					 SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));

		if (r < 0)
			return r;
	}
	return 0;
}

/* The main thread runs every device's work that has no thread of its own, so
 * its list holds each kind's (see the header's note on order). */
static int add_main(scmp_filter_ctx ctx)
{
	int r = ADD(ctx, loop_list);

	r = r ? r : ADD(ctx, main_list);
	r = r ? r : ADD(ctx, slirp_list);
	r = r ? r : ADD(ctx, fs_list);
	r = r ? r : ADD(ctx, file_io_list);
	r = r ? r : ADD(ctx, host_watch_list);
	r = r ? r : ADD(ctx, blk_list);
	r = r ? r : add_clone(ctx);
	return r ? r : add_sockets(ctx);
}

static int add_kind(scmp_filter_ctx ctx, enum seccomp_kind kind)
{
	switch (kind) {
	case SECCOMP_MAIN:
		return add_main(ctx);
	case SECCOMP_VCPU:
		return add_vcpu(ctx);
	case SECCOMP_NET_QUEUE: {
		int r = ADD(ctx, loop_list);

		return r ? r : ADD(ctx, net_queue_list);
	}
	case SECCOMP_NET_SOCKETS: {
		int r = ADD(ctx, loop_list);

		r = r ? r : ADD(ctx, net_queue_list);
		r = r ? r : ADD(ctx, slirp_list);
		return r ? r : add_sockets(ctx);
	}
	case SECCOMP_FS_WORKER: {
		int r = ADD(ctx, fs_list);

		r = r ? r : ADD(ctx, file_io_list);
		return r ? r : ADD(ctx, call_list);
	}
	case SECCOMP_HOST_WATCH: {
		int r = ADD(ctx, host_watch_list);

		return r ? r : ADD(ctx, call_list);
	}
	case SECCOMP_BLK_WORKER: {
		int r = ADD(ctx, blk_list);

		r = r ? r : ADD(ctx, file_io_list);
		return r ? r : ADD(ctx, call_list);
	}
	case SECCOMP_FUSE_MAIN:
		return ADD(ctx, fuse_main_list);
	default:
		return -EINVAL;
	}
}

static int build_and_load(enum seccomp_kind kind)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int r;

	if (!ctx)
		return -ENOMEM;
	/* A binary tree over the syscall numbers rather than a list: every
	 * allowed call then costs a few comparisons, whichever it is (the main
	 * list is long, and later threads run under it too). */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	r = r ? r : ADD(ctx, base_list);
	r = r ? r : add_kind(ctx, kind);
#ifdef KVMINI_SANITIZER
	r = r ? r : ADD(ctx, sanitizer_list);
#endif
	r = r ? r : seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

#ifdef KVMINI_TEST_HOOKS
/* Test builds only: KVMINI_TEST_SECCOMP_PROBE=KIND makes a thread of that kind
 * call acct(2), on no list, right after its filter is on. */
static void test_probe(enum seccomp_kind kind)
{
	const char *want = getenv("KVMINI_TEST_SECCOMP_PROBE");

	if (want && !strcmp(want, kind_names[kind]))
		syscall(SYS_acct, NULL);
}
#else
static void test_probe(enum seccomp_kind kind)
{
}
#endif

int seccomp_filter_install(enum seccomp_kind kind, struct errbuf *eb)
{
	int r;

	if (!filters_on)
		return 0;
	if ((unsigned)kind >= SECCOMP_KIND_COUNT) {
		errbuf_set(eb, "seccomp: no thread kind %d", kind);
		return -EINVAL;
	}
	r = install_handler();
	if (r == 0) {
		thread_kind = (int)kind;
		r = build_and_load(kind);
	}
	if (r < 0) {
		errbuf_set(eb, "seccomp: %s thread's filter: %s", kind_names[kind], strerror(-r));
		return r;
	}
	test_probe(kind);
	return 0;
}

void seccomp_filter_enter(enum seccomp_kind kind)
{
	struct errbuf eb = { 0 };

	if (seccomp_filter_install(kind, &eb) < 0) {
		log_err("%s", eb.msg);
		_exit(SECCOMP_EXIT_STATUS);
	}
}
