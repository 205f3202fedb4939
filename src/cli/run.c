/*
 * `kvmini run`: boot a guest on KVM with a serial console and kvmini's
 * virtio devices in-process behind virtio-mmio.
 *
 * Threads: this one builds the VM, then runs the event loop (devices,
 * console input, signals, the stop request, the control API: the API's
 * calls into a net device thus run on that device's loop thread); each
 * vCPU has its own thread (its device accesses are handed to the loop).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/fs_watch_args.h"
#include "cli/net_controls.h"
#include "cli/default_guest.h"
#include "cli/signals.h"
#include "core/atomics.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "mmds/mmds.h"
#include "fuse/fuse_server.h"
#include "fs/passthrough.h"
#include "fs/virtio_fs.h"
#include "net/net_device.h"
#include "vmm/acpi_pm.h"
#include "vmm/boot.h"
#include "vmm/layout.h"
#include "vmm/legacy.h"
#include "vmm/serial.h"
#include "vmm/virtio_slot.h"
#include "vmm/vm_counters.h"
#include "vmm/vm.h"

#define RUN_MAX_NETS CLI_NET_MAX_IFACES
#define RUN_MAX_FS 4u
#define RUN_MEM_MIN_MIB 16ul
#define RUN_MEM_MAX_MIB (1ul << 20)
#define RUN_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1 pci=off"

static const char run_usage[] =
	"usage: kvmini run [--kernel FILE] [options]\n"
	"\n"
	"Boot a guest on KVM with a serial console (ttyS0 on stdin/stdout) and\n"
	"kvmini's virtio devices behind virtio-mmio.\n"
	"\n"
	"  --kernel FILE      the guest kernel: an ELF vmlinux (loaded at its physical\n"
	"                     addresses) or a bzImage (entered at its 64-bit entry point);\n"
	"                     default: the project's guest that scripts/build-guest.sh\n"
	"                     builds (guest/vmlinux and guest/initramfs.cpio beside the\n"
	"                     kvmini binary, or in $KVMINI_GUEST_DIR)\n"
	"  --host-decompress  with a bzImage: decompress its payload in kvmini (gzip,\n"
	"                     xz, lzma, zstd, lz4, bzip2 or lzo, through their libraries;\n"
	"                     no program is started) and boot the vmlinux inside,\n"
	"                     instead of letting the guest decompress itself\n"
	"  --initrd FILE      an initramfs, loaded at the top of guest memory\n"
	"  --cmdline TEXT     kernel command line, default\n"
	"                     \"" RUN_DEFAULT_CMDLINE "\"; kvmini appends one\n"
	"                     virtio_mmio.device= entry per device\n"
	"  --mem MIB          guest memory in MiB, 16..1048576 (default 256)\n"
	"  --cpus N           vCPUs, 1..64 (default 1)\n"
	"  --net BACKEND      a virtio-net device (repeatable, up to 8); BACKEND is\n"
	"                     tap:NAME | user[:OPTIONS] | stream:PATH | loopback, as for\n"
	"                     `kvmini vhost net --backend`; ids eth0, eth1, ... in order\n"
	"                     (the control API's iface_id)\n"
	"  --iface-id ID      the id of the --net before it (default ethN)\n"
	"  --mac MAC          the MAC of the --net before it (unicast); default: random,\n"
	"                     locally administered, new for every NIC and every start,\n"
	"                     so VMs on one bridge differ; logged as \"ethN: MAC ...\"\n"
	"  --mtu N            the MTU of the --net before it, 68..65535, offered to the\n"
	"                     guest (VIRTIO_NET_F_MTU); default: a tap's own MTU, else\n"
	"                     1500; a tap's MTU must be at least --mtu\n"
	"  --tx-rate-limit SPEC, --rx-rate-limit SPEC\n"
	"                     limit the --net before it, guest->host (tx) or host->guest\n"
	"                     (rx), as for `kvmini vhost net` (bw=SIZE/REFILL_MS,\n"
	"                     bw_burst=N, ops=SIZE/REFILL_MS, ops_burst=N)\n"
	"  --mmds[=ADDR]      answer the metadata service (MMDS) at ADDR (link-local,\n"
	"                     default 169.254.169.254); its frames never reach the backend\n"
	"  --mmds-iface ID    the interface MMDS answers on (repeatable; default eth0)\n"
	"  --mmds-version 1|2, --mmds-data FILE   as for `kvmini vhost net`\n"
	"  --api-sock PATH    serve the control API (Firecracker's paths: /mmds,\n"
	"                     /mmds/config, /network-interfaces/ID, /metrics, /actions)\n"
	"                     over HTTP on the unix socket PATH\n"
	"  --fs DIR:TAG       a virtio-fs device sharing the host directory DIR; the\n"
	"                     guest mounts it with `mount -t virtiofs TAG /mnt` (repeatable,\n"
	"                     up to 4; the guest cannot reach outside DIR)\n"
	"  --no-notify        do not watch the --fs directories for host changes (by\n"
	"                     default they become FUSE invalidations for a driver that\n"
	"                     negotiates VIRTIO_FS_F_NOTIFICATION)\n"
	"  --max-watches N    most inotify watches per --fs directory (default 65536)\n"
	"  --compat           for hosts where KVM emulates guest kernel code (nested\n"
	"                     PVM): step over int3/fwait KVM cannot emulate (injecting\n"
	"                     #BP for int3), hide CX16, and append to the command line\n"
	"                     \"noxsave clearcpuid=...\" for the instructions it lacks;\n"
	"                     on kvm_pvm, also relay SYSCALL and INT n from guest user\n"
	"                     mode to the guest kernel (which that host fails to do)\n"
	"  --no-acpi          no ACPI tables (the guest finds CPUs and devices through\n"
	"                     the MP table and the command line only)\n"
	"  --boot-timing      print when the guest reached each boot milestone, from\n"
	"                     kvmini's start: first guest instruction, first console\n"
	"                     output, Linux's \"Run /init\" console line, and userspace:\n"
	"                     the guest's init writing 123 to port 0x3f0 (the boot\n"
	"                     marker, as in Firecracker)\n"
	"  --counters         print every device's counters at exit\n"
	"  -v, --verbose      log more (unhandled guest accesses, ...)\n"
	"  -q, --quiet        log errors only\n"
	"  -h, --help         this text\n"
	"\n"
	"On a terminal the console is raw: Ctrl-A x ends the VM. Console input waits\n"
	"in a 4 KiB buffer until the guest enables UART receive interrupts; when the\n"
	"buffer is full kvmini stops reading stdin, so nothing is dropped.\n"
	"\n"
	"Exit status: 0 when the guest rebooted (reboot=k: the i8042 reset line) or KVM\n"
	"reported a shutdown, 1 for a kvmini failure, 2 for bad usage, 3 for a triple\n"
	"fault, 4 when KVM cannot run the guest (the instruction is reported), 5 for a\n"
	"guest crash, 128+N after signal N.\n"
	"\n"
	"Debug exit (always on, QEMU's isa-debug-exit): a guest write of v to port\n"
	"0x501 ends the VM with exit status (v << 1) | 1 (its low 8 bits: always odd,\n"
	"so 1, 3 and 5 may also come from the guest; the message on stderr says which).\n";

struct run_args {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned long mem_mib;
	unsigned long cpus;
	struct cli_net_controls net;     /* --net devices, ids, limits, MMDS, API */
	struct cli_fs_watch_args watch;  /* --no-notify, --max-watches */
	struct run_fs_spec {
		char dir[4096];
		char tag[VIRTIO_FS_TAG_LEN + 1];
	} fs[RUN_MAX_FS];
	unsigned nfs;
	bool boot_timing;
	bool counters;
	bool compat;
	bool host_decompress;
	bool no_acpi;
};

struct run_net {
	struct net_backend *backend;
	struct net_device *dev;
};

struct run_fs {
	struct host_watch *watch;
	struct fs_backend *backend;
	struct fuse_server *server;
	struct virtio_fs *dev;
};

struct run_ctx {
	const struct run_args *args;
	struct event_loop loop;
	struct vm vm;
	struct serial serial;
	bool serial_ready;
	struct legacy_devices legacy;
	bool legacy_ready;
	struct acpi_pm acpi_pm;
	struct run_net nets[RUN_MAX_NETS];
	unsigned nnets;
	struct run_fs fs[RUN_MAX_FS];
	unsigned nfs;
	struct mmds *mmds;
	struct api *api;
	struct vm_virtio_slot slots[LAYOUT_MMIO_MAX_DEVS];
	unsigned nslots;
	struct event_source stop_src;
	struct cli_signals sig;
	char cmdline[LAYOUT_CMDLINE_MAX];
};

/* --- arguments ------------------------------------------------------------- */

static int check_readable(const char *opt, const char *path)
{
	if (access(path, R_OK) == 0)
		return 0;
	log_err("%s %s: %s", opt, path, strerror(errno));
	return -EINVAL;
}

/* Split DIR:TAG at the last colon (a directory may hold colons, a tag
 * should not) and check both halves. */
static int parse_fs_spec(const char *spec, struct run_fs_spec *f)
{
	const char *colon = strrchr(spec, ':');
	struct stat st;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(f->dir)) {
		log_err("--fs %s: expected DIR:TAG", spec);
		return -EINVAL;
	}
	memcpy(f->dir, spec, (size_t)(colon - spec));
	f->dir[colon - spec] = '\0';
	if (virtio_fs_check_tag(colon + 1) < 0) {
		log_err("--fs %s: the tag must be 1 to %u bytes", spec, VIRTIO_FS_TAG_LEN);
		return -EINVAL;
	}
	snprintf(f->tag, sizeof(f->tag), "%s", colon + 1);
	errno = 0;
	if (stat(f->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("--fs %s: %s is not a directory%s%s", spec, f->dir, errno ? ": " : "",
			errno ? strerror(errno) : "");
		return -EINVAL;
	}
	return 0;
}

/* One option with a value; 0 or -errno with the reason logged. */
static int parse_value(int c, const char *val, struct run_args *a)
{
	switch (c) {
	case 'k': a->kernel = val; return 0;
	case 'i': a->initrd = val; return 0;
	case 'c': a->cmdline = val; return 0;
	case 'm':
		if (!cli_parse_uint(val, RUN_MEM_MIN_MIB, RUN_MEM_MAX_MIB, &a->mem_mib))
			return 0;
		log_err("--mem: \"%s\" is not a number of MiB from %lu to %lu", val, RUN_MEM_MIN_MIB,
			RUN_MEM_MAX_MIB);
		return -EINVAL;
	case 'p':
		if (!cli_parse_uint(val, 1, VM_MAX_VCPUS, &a->cpus))
			return 0;
		log_err("--cpus: \"%s\" is not a number from 1 to %u", val, VM_MAX_VCPUS);
		return -EINVAL;
	case 'n':
		return cli_net_controls_add(&a->net, val);
	case 'f':
		if (a->nfs < RUN_MAX_FS)
			return parse_fs_spec(val, &a->fs[a->nfs++]);
		log_err("--fs: at most %u shared directories", RUN_MAX_FS);
		return -EINVAL;
	}
	return -EINVAL;
}

/* Returns 0, 1 after --help, or -EINVAL. */
static int parse_run_args(int argc, char **argv, struct run_args *a)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'p' },
		{ "net", required_argument, NULL, 'n' },
		{ "fs", required_argument, NULL, 'f' },
		{ "boot-timing", no_argument, NULL, 'T' },
		{ "compat", no_argument, NULL, 'P' },
		{ "host-decompress", no_argument, NULL, 'D' },
		{ "no-acpi", no_argument, NULL, 'A' },
		{ "counters", no_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		CLI_NET_CONTROLS_LONG_OPTIONS,
		CLI_FS_WATCH_LONG_OPTIONS,
		{ 0 },
	};
	const char *unused_initrd;
	int c;

	*a = (struct run_args){ .mem_mib = 256, .cpus = 1, .cmdline = RUN_DEFAULT_CMDLINE };
	cli_net_controls_init(&a->net, "kvmini run", "--net", 0);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", opts, NULL)) != -1) {
		int shared = cli_net_controls_take(&a->net, c, optarg);
		if (shared > 0)
			shared = cli_fs_watch_take(&a->watch, c, optarg);
		if (shared < 0)
			return -EINVAL;
		if (shared == 0)
			continue;
		switch (c) {
		case 'T': a->boot_timing = true; break;
		case 'P': a->compat = true; break;
		case 'D': a->host_decompress = true; break;
		case 'A': a->no_acpi = true; break;
		case 'C': a->counters = true; break;
		case 'v': log_threshold = LOG_DEBUG; break;
		case 'q': log_threshold = LOG_ERROR; break;
		case 'h': fputs(run_usage, stdout); return 1;
		case ':':
			log_err("option %s needs a value", argv[optind - 1]);
			return -EINVAL;
		case '?':
			log_err("unknown option \"%s\" (see kvmini run --help)", argv[optind - 1]);
			return -EINVAL;
		default:
			if (parse_value(c, optarg, a) < 0)
				return -EINVAL;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument \"%s\" (see kvmini run --help)", argv[optind]);
		return -EINVAL;
	}
	/* No --kernel: the project's own guest (scripts/build-guest.sh). */
	if (!a->kernel && default_guest_find(&a->kernel, a->initrd ? &unused_initrd : &a->initrd) < 0)
		return -EINVAL;
	if (check_readable("--kernel", a->kernel) || (a->initrd && check_readable("--initrd", a->initrd)))
		return -EINVAL;
	if ((a->watch.no_notify || a->watch.max_given) && !a->nfs) {
		log_err("--no-notify and --max-watches are for --fs shares");
		return -EINVAL;
	}
	return cli_net_controls_check(&a->net);
}

/* --- devices --------------------------------------------------------------- */

static int add_slot(struct run_ctx *ctx, struct virtio_device *dev)
{
	int r = vm_virtio_slot_init(&ctx->slots[ctx->nslots], &ctx->vm, &ctx->loop, dev, ctx->nslots);
	if (r < 0) {
		log_err("%s: cannot attach to the VM: %s", dev->ops->name, strerror(-r));
		return r;
	}
	ctx->nslots++;
	return 0;
}

/* --net BACKEND: the backend (behind MMDS where it answers), a virtio-net
 * device on it with its rate limits, and its slot. */
static int add_net(struct run_ctx *ctx, unsigned i)
{
	struct run_net *n = &ctx->nets[ctx->nnets];
	struct net_config_opts opts = { 0 };
	const char *spec = ctx->args->net.ifaces[i].backend;

	n->backend = cli_net_controls_backend(&ctx->args->net, i, &ctx->loop, ctx->mmds, &opts);
	if (!n->backend)
		return -EINVAL;
	n->dev = calloc(1, sizeof(*n->dev));
	int r = n->dev ? net_device_init(n->dev, &opts, n->backend, &ctx->loop) : -ENOMEM;
	if (r < 0) {
		log_err("--net %s: virtio-net device: %s", spec, strerror(-r));
		free(n->dev);
		n->backend->ops->destroy(n->backend);
		return r;
	}
	cli_net_controls_apply_limits(&ctx->args->net, i, n->dev);
	ctx->nnets++;
	return add_slot(ctx, &n->dev->vdev);
}

/* --fs DIR:TAG: a passthrough backend, its FUSE server, a virtio-fs device, its slot. */
static int add_fs(struct run_ctx *ctx, const struct run_fs_spec *spec)
{
	struct run_fs *f = &ctx->fs[ctx->nfs];
	struct passthrough_opts pt = { .root = spec->dir };
	struct fuse_server_opts so = { .cache = FUSE_CACHE_AUTO };
	struct virtio_fs_opts opts = { .tag = spec->tag, .request_queues = 1, .threads = 2 };
	int err = 0;

	f->watch = cli_fs_watch_open(&ctx->args->watch, spec->dir, so.cache);
	pt.watch = f->watch;
	opts.offer_notification = f->watch != NULL;
	f->backend = passthrough_new(&pt, &err);
	if (!f->backend) {
		log_err("--fs %s:%s: %s", spec->dir, spec->tag, strerror(-err));
		host_watch_free(f->watch);
		f->watch = NULL;
		return err ? err : -EINVAL;
	}
	ctx->nfs++;
	f->server = fuse_server_new(f->backend, &so);
	f->dev = calloc(1, sizeof(*f->dev));
	int r = f->server && f->dev ? virtio_fs_init(f->dev, &opts, f->server, &ctx->loop) : -ENOMEM;
	if (r < 0) {
		log_err("--fs %s:%s: virtio-fs device: %s", spec->dir, spec->tag, strerror(-r));
		free(f->dev);
		f->dev = NULL;
		return r;
	}
	/* Signals are blocked (inherited); the device is the server's transport. */
	if (f->watch && host_watch_start(f->watch, f->server) < 0)
		log_warn("--fs %s:%s: not watching for host changes", spec->dir, spec->tag);
	return add_slot(ctx, &f->dev->vdev);
}

static void destroy_devices(struct run_ctx *ctx)
{
	/* The watchers first: they send through the devices. Then the slots:
	 * their reset stops each device's queues (virtio-fs waits for requests
	 * in flight) before the devices go. */
	for (unsigned i = 0; i < ctx->nfs; i++)
		host_watch_stop(ctx->fs[i].watch);
	for (unsigned i = 0; i < ctx->nslots; i++)
		vm_virtio_slot_destroy(&ctx->slots[i]);
	for (unsigned i = 0; i < ctx->nnets; i++) {
		net_device_destroy(ctx->nets[i].dev);
		free(ctx->nets[i].dev);
		ctx->nets[i].backend->ops->destroy(ctx->nets[i].backend);
	}
	for (unsigned i = 0; i < ctx->nfs; i++) {
		struct run_fs *f = &ctx->fs[i];
		if (f->dev)
			virtio_fs_destroy(f->dev);
		free(f->dev);
		if (f->server)
			fuse_server_free(f->server);
		fs_backend_destroy(f->backend);
		host_watch_free(f->watch);
	}
	ctx->nslots = ctx->nnets = ctx->nfs = 0;
}

/* The VM's own counters (vmm/vm_counters.h), from the fields that keep them. */
static void dump_vm_counters(struct run_ctx *ctx, FILE *out)
{
	const struct counter_sink *sink = COUNTER_SINK_FILE(out);
	const struct vm_console_counters con = {
		.tx_serial_bytes = ctx->serial.tx_bytes,
		.rx_serial_bytes = ctx->serial.rx_bytes,
	};

	fputs("kvmini: counters of the console\n", out);
	counters_visit(&vm_console_counter_set, &con, "", sink);
	/* Why --boot-timing's "userspace" may be missing: a marker of another
	 * value or width was written. */
	if (ctx->legacy_ready) {
		const struct vm_legacy_counters leg = {
			.rx_boot_marker_ignored = load_relaxed(&ctx->legacy.boot_marker_ignored),
		};
		fputs("kvmini: counters of the legacy ports\n", out);
		counters_visit(&vm_legacy_counter_set, &leg, "", sink);
	}
	compat_dump_counters(&ctx->vm.compat, out);
}

/* Every device's and transport's counters, then the VM's (loop thread). */
static void dump_counters(struct run_ctx *ctx, FILE *out)
{
	const struct counter_sink *sink = COUNTER_SINK_FILE(out);

	for (unsigned i = 0; i < ctx->nslots; i++) {
		struct virtio_device *dev = ctx->slots[i].mmio.dev;
		fprintf(out, "kvmini: counters of device %u (%s)\n", i, dev->ops->name);
		if (dev->ops->visit_counters)
			dev->ops->visit_counters(dev, sink);
		virtio_mmio_visit_counters(&ctx->slots[i].mmio, sink);
	}
	for (unsigned i = 0; i < ctx->nfs; i++)
		if (ctx->fs[i].watch) {
			fprintf(out, "kvmini: counters of the host watch of --fs %s\n", ctx->args->fs[i].tag);
			host_watch_visit_counters(ctx->fs[i].watch, sink);
		}
	dump_vm_counters(ctx, out);
}

/* --- command line and boot ------------------------------------------------- */

static int build_cmdline(struct run_ctx *ctx)
{
	size_t off = (size_t)snprintf(ctx->cmdline, sizeof(ctx->cmdline), "%s%s%s", ctx->args->cmdline,
				      ctx->args->compat ? " " : "",
				      ctx->args->compat ? VM_COMPAT_CMDLINE : "");

	for (unsigned i = 0; i < ctx->nslots && off < sizeof(ctx->cmdline); i++) {
		off += (size_t)snprintf(ctx->cmdline + off, sizeof(ctx->cmdline) - off, " ");
		if (off < sizeof(ctx->cmdline))
			off += (size_t)vm_virtio_slot_cmdline(&ctx->slots[i], ctx->cmdline + off,
							      sizeof(ctx->cmdline) - off);
	}
	if (off >= sizeof(ctx->cmdline)) {
		log_err("--cmdline: too long with the device entries (over %u bytes)",
			LAYOUT_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	return 0;
}

static int load_guest(struct run_ctx *ctx)
{
	struct acpi_mmio_device devs[LAYOUT_MMIO_MAX_DEVS];
	struct boot_config cfg = { .kernel_path = ctx->args->kernel,
				   .initrd_path = ctx->args->initrd, .cmdline = ctx->cmdline,
				   .host_decompress = ctx->args->host_decompress,
				   .no_acpi = ctx->args->no_acpi, .devs = devs, .ndevs = ctx->nslots };
	char err[256];

	for (unsigned i = 0; i < ctx->nslots; i++)
		vm_virtio_slot_describe(&ctx->slots[i], &devs[i]);

	int r = build_cmdline(ctx);
	if (r < 0)
		return r;
	r = boot_load(&ctx->vm, &cfg, err, sizeof(err));
	if (r < 0)
		log_err("%s", err);
	return r;
}

/* --- event loop: stop request and signals ----------------------------------- */

static void on_stop(struct event_source *src, uint32_t events)
{
	struct run_ctx *ctx = container_of(src, struct run_ctx, stop_src);

	event_loop_quit(&ctx->loop);
}

static void on_signal(struct cli_signals *cs, int signo)
{
	struct run_ctx *ctx = container_of(cs, struct run_ctx, sig);

	if (signo == SIGUSR1)
		dump_counters(ctx, stderr);
	else
		run_state_request_stop(&ctx->vm.run_state, 128 + signo, "signal %d", signo);
}

static int watch_signals(struct run_ctx *ctx)
{
	int r = cli_signals_watch(&ctx->sig, &ctx->loop, on_signal);
	if (!r)
		r = event_loop_watch(&ctx->loop, &ctx->stop_src, ctx->vm.run_state.stop_fd, EPOLLIN,
				     on_stop, "vm stop");
	return r;
}

/* --- timing ------------------------------------------------------------------ */

static void print_ms(const char *what, uint64_t t, uint64_t start)
{
	if (t)
		fprintf(stderr, "kvmini: boot timing: %-28s %9.3f ms\n", what, (double)(t - start) / 1e6);
	else
		fprintf(stderr, "kvmini: boot timing: %-28s %12s\n", what, "not reached");
}

static void print_timing(const struct vm_timing *t, uint64_t end)
{
	print_ms("VM created", t->vm_created, t->start);
	print_ms("kernel loaded", t->kernel_loaded, t->start);
	print_ms("first guest instruction", t->first_run, t->start);
	print_ms("first exit to kvmini", t->first_exit, t->start);
	print_ms("first console output", t->first_console, t->start);
	print_ms("kernel runs /init (console)", t->kernel_runs_init, t->start);
	print_ms("userspace (boot marker)", t->userspace, t->start);
	print_ms("end of run", end, t->start);
}

/* --- run ---------------------------------------------------------------------- */

/* The control API on the loop every net device runs on (this thread's),
 * so its calls into the devices never race their queue work. */
static int start_api(struct run_ctx *ctx)
{
	struct net_device *devs[RUN_MAX_NETS];

	for (unsigned i = 0; i < ctx->nnets; i++)
		devs[i] = ctx->nets[i].dev;
	return cli_net_controls_start_api(&ctx->args->net, &ctx->loop, devs, ctx->mmds, NULL, 0,
					  &ctx->api) < 0 ? -EINVAL : 0;
}

static int build_vm(struct run_ctx *ctx)
{
	const struct run_args *a = ctx->args;
	struct vm_config cfg = { .mem_bytes = (uint64_t)a->mem_mib << 20, .ncpus = (unsigned)a->cpus,
				 .compat = a->compat };

	int r = vm_create(&ctx->vm, &cfg);
	if (r < 0)
		return r;
	ctx->vm.timing.vm_created = clock_now_ns();
	r = serial_init(&ctx->serial, &ctx->vm, STDOUT_FILENO);
	ctx->serial_ready = !r;
	if (!r) {
		r = legacy_init(&ctx->legacy, &ctx->vm);
		ctx->legacy_ready = !r;
	}
	if (!r && !a->no_acpi)
		r = acpi_pm_init(&ctx->acpi_pm, &ctx->vm);
	if (r < 0) {
		log_err("legacy devices: %s", strerror(-r));
		return r;
	}
	if (!r)
		r = cli_net_controls_mmds(&a->net, &ctx->mmds);
	for (unsigned i = 0; !r && i < a->net.n_ifaces; i++)
		r = add_net(ctx, i);
	for (unsigned i = 0; !r && i < a->nfs; i++)
		r = add_fs(ctx, &a->fs[i]);
	if (!r)
		r = start_api(ctx);
	if (!r)
		r = load_guest(ctx);
	if (!r)
		ctx->vm.timing.kernel_loaded = clock_now_ns();
	return r;
}

/* Start the vCPUs and run the event loop until something stops the VM. */
static int run_vm(struct run_ctx *ctx)
{
	int r = watch_signals(ctx);
	if (r < 0) {
		log_err("signals: %s", strerror(-r));
		return r;
	}
	r = serial_attach_input(&ctx->serial, &ctx->loop, STDIN_FILENO);
	if (r < 0) {
		log_err("console input: %s", strerror(-r));
		return r;
	}
	r = vm_start(&ctx->vm);
	if (!r)
		r = event_loop_run(&ctx->loop);
	return r;
}

static void stop_vm(struct run_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->nslots; i++)
		vm_virtio_slot_close(&ctx->slots[i]);
	vm_join(&ctx->vm);
}

/* Report how the VM ended (and counters, timing); returns the exit status. */
static int finish(struct run_ctx *ctx, int r)
{
	uint64_t end = clock_now_ns();
	int status = r < 0 ? EXIT_RUNTIME : ctx->vm.run_state.exit_status;

	if (r == 0 && ctx->vm.run_state.exit_reason[0]) {
		if (status == 0)
			log_info("%s", ctx->vm.run_state.exit_reason);
		else
			log_warn("%s (exit status %d)", ctx->vm.run_state.exit_reason, status);
	}
	if (ctx->args->counters)
		dump_counters(ctx, stderr);
	if (ctx->args->boot_timing)
		print_timing(&ctx->vm.timing, end);
	return status;
}

static void teardown(struct run_ctx *ctx)
{
	cli_signals_close(&ctx->sig, &ctx->loop);
	event_loop_unwatch(&ctx->loop, &ctx->stop_src);
	api_stop(ctx->api);
	destroy_devices(ctx);
	mmds_free(ctx->mmds);
	if (ctx->serial_ready)
		serial_destroy(&ctx->serial);
	if (ctx->legacy_ready)
		legacy_destroy(&ctx->legacy);
	vm_destroy(&ctx->vm);
	event_loop_destroy(&ctx->loop);
}

/* Room for descriptors: the passthrough backend takes half the limit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int cmd_run(int argc, char **argv)
{
	uint64_t start = clock_now_ns();
	struct run_args args;
	int r = parse_run_args(argc, argv, &args);

	if (r > 0)
		return 0;
	if (r < 0)
		return EXIT_USAGE;
	struct run_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx || event_loop_init(&ctx->loop) < 0) {
		log_err("cannot set up: %s", strerror(errno));
		free(ctx);
		return EXIT_RUNTIME;
	}
	ctx->args = &args;
	if (args.nfs)
		raise_fd_limit();
	/* Before any thread exists (device workers, vCPUs). */
	r = cli_signals_block();
	if (!r)
		r = build_vm(ctx);
	ctx->vm.timing.start = start;
	if (!r)
		r = run_vm(ctx);
	stop_vm(ctx);
	int status = finish(ctx, r);
	teardown(ctx);
	free(ctx);
	return status;
}
