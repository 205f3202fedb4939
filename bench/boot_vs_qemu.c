/*
 * Boot latency and memory overhead of `kvmini run` beside QEMU's microvm
 * machine, with the same guest in the same run.
 *
 * The guest (bench/boot_guest) is one ELF both VMMs boot: kvmini enters it
 * in long mode at e_entry; QEMU (-M microvm -kernel) runs its firmware
 * (qboot), which enters it through its PVH note. Either way its first
 * instructions write 'K' to COM1 (port 0x3f8), which both VMMs pass to their
 * stdout at once, and then it halts for good.
 *
 * For each VMM, each run:
 *  - time to first instruction: from just before posix_spawn of the VMM to
 *    the moment the 'K' is read from its stdout pipe. It includes the exec
 *    and start of the VMM, building the VM, loading the kernel, for QEMU its
 *    firmware, the guest's three instructions and one exit to the VMM with
 *    its write to the pipe (tens of microseconds);
 *  - memory, read from /proc/PID/smaps 300 ms after that (the VM idle, the
 *    guest halted): total Rss, the Rss of the guest RAM mapping (both VMMs
 *    back guest RAM with a memfd: kvmini always, QEMU through
 *    memory-backend-memfd, so the mapping is found by name, /memfd:...),
 *    and the VMM's overhead = total - guest RAM touched. Rss counts the
 *    resident pages of shared libraries too (as `ps` does).
 * Then the VMM is killed (SIGKILL, both alike). Runs alternate between the
 * two VMMs; every figure is the median of the runs.
 *
 * Targets (issue 4): first instruction within 5 ms and an overhead of at
 * most 5 MiB, each better than QEMU. Missing one is reported, not failed.
 *
 * Usage: boot_vs_qemu [--quick] [--runs N] [--kvmini PATH] [--qemu PATH]
 *                     [--guest ELF] [--mem MIB]
 * Skips (exit 0, a SKIP line) without /dev/kvm, QEMU or kvmini. Exit
 * status 1 when a VMM fails to boot the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 51
#define BOOT_TIMEOUT_MS 20000
#define SETTLE_MS 300
#define GUEST_RAM_MIN_KIB (16u * 1024)   /* a memfd mapping this big is guest RAM */
#define TARGET_FIRST_MS 5.0
#define TARGET_OVERHEAD_MIB 5.0

extern char **environ;

struct sample {
	double first_ms;
	double rss_mib, guest_mib, overhead_mib;
};

struct vmm {
	const char *name;
	char *argv[40];
	struct sample s[MAX_RUNS];
	unsigned n;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Total Rss and the Rss of the guest RAM mappings (memfd, at least
 * GUEST_RAM_MIN_KIB big) of @pid, in KiB. */
static int read_smaps(pid_t pid, double *total_kib, double *guest_kib)
{
	char path[64], line[512];
	bool guest = false;
	unsigned long size = 0, kib;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	*total_kib = *guest_kib = 0;
	while (fgets(line, sizeof(line), f)) {
		char name[256] = "";
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &lo, &hi, name) >= 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			size = (hi - lo) / 1024;
			guest = !strncmp(name, "/memfd:", 7) && size >= GUEST_RAM_MIN_KIB;
		} else if (sscanf(line, "Rss: %lu kB", &kib) == 1) {
			*total_kib += (double)kib;
			if (guest)
				*guest_kib += (double)kib;
		}
	}
	fclose(f);
	return 0;
}

/* Wait for the guest's 'K' on @fd; returns 0, or -ETIMEDOUT / -EPIPE. */
static int wait_marker(int fd, double deadline)
{
	char buf[256];

	for (;;) {
		double left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, (int)left + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ETIMEDOUT;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return -EPIPE;
		if (memchr(buf, 'K', (size_t)n))
			return 0;
	}
}

/* One boot of @v: spawn, time the marker, sample memory, kill. */
static int run_once(struct vmm *v, struct sample *s)
{
	int out[2], r;
	pid_t pid;
	posix_spawn_file_actions_t fa;

	if (pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	double t0 = now_ms();
	r = posix_spawnp(&pid, v->argv[0], &fa, NULL, v->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	if (r) {
		close(out[0]);
		return -r;
	}
	r = wait_marker(out[0], t0 + BOOT_TIMEOUT_MS);
	s->first_ms = now_ms() - t0;
	if (!r) {
		double total = 0, guest = 0;
		sleep_ms(SETTLE_MS);
		r = read_smaps(pid, &total, &guest);
		s->rss_mib = total / 1024;
		s->guest_mib = guest / 1024;
		s->overhead_mib = (total - guest) / 1024;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(out[0]);
	return r;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of the field at @off of @v's samples. */
static double median(const struct vmm *v, size_t off)
{
	double xs[MAX_RUNS];

	for (unsigned i = 0; i < v->n; i++)
		memcpy(&xs[i], (const char *)&v->s[i] + off, sizeof(double));
	qsort(xs, v->n, sizeof(double), cmp_double);
	return v->n % 2 ? xs[v->n / 2] : (xs[v->n / 2 - 1] + xs[v->n / 2]) / 2;
}

static void print_row(const char *what, const struct vmm *k, const struct vmm *q, size_t off)
{
	double a = median(k, off), b = median(q, off);

	printf("  %-30s %10.2f %14.2f %12.3f\n", what, a, b, b > 0 ? a / b : 0);
}

/* The guest ELF: bench/boot_guest/build.sh builds it (and prints its path). */
static int default_guest(char *path, size_t len)
{
	FILE *p = popen("bench/boot_guest/build.sh", "r");

	if (!p)
		return -errno;
	bool ok = fgets(path, (int)len, p) != NULL;
	if (pclose(p) != 0 || !ok)
		return -ENOENT;
	path[strcspn(path, "\n")] = '\0';
	return 0;
}

static bool have_program(const char *name)
{
	char cmd[512];

	if (strchr(name, '/'))
		return access(name, X_OK) == 0;
	snprintf(cmd, sizeof(cmd), "command -v '%s' >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

static void setup_argv(struct vmm *k, struct vmm *q, const char *kvmini, const char *qemu,
		       const char *guest, const char *mem)
{
	static char memdev[64], memmib[32];

	snprintf(memdev, sizeof(memdev), "memory-backend-memfd,id=ram,size=%sM", mem);
	snprintf(memmib, sizeof(memmib), "%sM", mem);
	k->name = "kvmini";
	char *ka[] = { (char *)kvmini, "run", "--kernel", (char *)guest, "--mem", (char *)mem, NULL };
	memcpy(k->argv, ka, sizeof(ka));
	q->name = "qemu microvm";
	char *qa[] = { (char *)qemu, "-M", "microvm,memory-backend=ram", "-object", memdev,
		       "-m", memmib, "-enable-kvm", "-cpu", "host", "-smp", "1", "-nodefaults",
		       "-no-user-config", "-display", "none", "-serial", "stdio",
		       "-kernel", (char *)guest, NULL };
	memcpy(q->argv, qa, sizeof(qa));
}

static void print_cmd(const struct vmm *v)
{
	printf("  %s:", v->name);
	for (unsigned i = 0; v->argv[i]; i++)
		printf(" %s", v->argv[i]);
	printf("\n");
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--quick] [--runs N] [--kvmini PATH] [--qemu PATH] "
		"[--guest ELF] [--mem MIB]\n", prog);
	return 2;
}

static void print_results(const struct vmm *k, const struct vmm *q)
{
	printf("medians of %u runs each            kvmini   qemu microvm  kvmini/qemu\n", k->n);
	print_row("first instruction (ms)", k, q, offsetof(struct sample, first_ms));
	print_row("RSS total (MiB)", k, q, offsetof(struct sample, rss_mib));
	print_row("guest RAM touched (MiB)", k, q, offsetof(struct sample, guest_mib));
	print_row("VMM overhead (MiB)", k, q, offsetof(struct sample, overhead_mib));
	double kf = median(k, offsetof(struct sample, first_ms));
	double qf = median(q, offsetof(struct sample, first_ms));
	double ko = median(k, offsetof(struct sample, overhead_mib));
	double qo = median(q, offsetof(struct sample, overhead_mib));
	printf("target: first instruction <= %.0f ms and better than QEMU: %s (%.2f ms vs %.2f ms)\n",
	       TARGET_FIRST_MS, kf <= TARGET_FIRST_MS && kf < qf ? "met" : "MISSED", kf, qf);
	printf("target: VMM overhead <= %.0f MiB and better than QEMU: %s (%.2f MiB vs %.2f MiB)\n",
	       TARGET_OVERHEAD_MIB, ko <= TARGET_OVERHEAD_MIB && ko < qo ? "met" : "MISSED", ko, qo);
}

int main(int argc, char **argv)
{
	const char *kvmini = "build/kvmini", *qemu = "qemu-system-x86_64", *guest = NULL;
	const char *mem = "256";
	char guest_buf[4096];
	unsigned runs = 11;
	static struct vmm k, q;

	for (int i = 1; i < argc; i++) {
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(argv[i], "--quick"))
			runs = 3;
		else if (!strcmp(argv[i], "--runs") && next && atoi(next) > 0 && atoi(next) <= MAX_RUNS)
			runs = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--kvmini") && next)
			kvmini = argv[++i];
		else if (!strcmp(argv[i], "--qemu") && next)
			qemu = argv[++i];
		else if (!strcmp(argv[i], "--guest") && next)
			guest = argv[++i];
		else if (!strcmp(argv[i], "--mem") && next && atoi(next) >= 16)
			mem = argv[++i];
		else
			return usage(argv[0]);
	}
	if (access("/dev/kvm", R_OK | W_OK) < 0 || !have_program(qemu) || !have_program(kvmini)) {
		printf("SKIP: boot_vs_qemu needs /dev/kvm, %s and %s\n", qemu, kvmini);
		return 0;
	}
	if (!guest) {
		if (default_guest(guest_buf, sizeof(guest_buf)) < 0) {
			fprintf(stderr, "boot_vs_qemu: cannot build the guest (bench/boot_guest/build.sh)\n");
			return 1;
		}
		guest = guest_buf;
	}
	setup_argv(&k, &q, kvmini, qemu, guest, mem);
	printf("boot_vs_qemu: guest %s, %s MiB, 1 vCPU\n", guest, mem);
	print_cmd(&k);
	print_cmd(&q);
	for (unsigned i = 0; i < runs; i++) {
		/* Alternate which goes first, so neither always runs on a warmer cache. */
		struct vmm *order[2] = { i % 2 ? &q : &k, i % 2 ? &k : &q };
		for (unsigned j = 0; j < 2; j++) {
			struct vmm *v = order[j];
			int r = run_once(v, &v->s[v->n]);
			if (r < 0) {
				fprintf(stderr, "boot_vs_qemu: %s did not boot the guest: %s\n", v->name,
					strerror(-r));
				return 1;
			}
			v->n++;
		}
	}
	print_results(&k, &q);
	return 0;
}
