/*
 * `kvmini run`: boot a guest on KVM with a serial console and kvmini's
 * virtio devices in-process behind virtio-mmio. The command line becomes a
 * machine configuration (machine/machine.h), which the machine builder
 * puts together; this file parses the options, decides what to do (boot,
 * restore a snapshot, or wait on --api-sock for PUT /snapshot/load), adds
 * the signals and the report at the end. Restores are in run_restore.c,
 * the VM as the control API sees it in run_api.c (run.h joins them).
 *
 * Threads: this one builds the machine, then runs its event loop (devices,
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
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/default_guest.h"
#include "cli/fs_options.h"
#include "cli/net_controls.h"
#include "cli/run.h"
#include "cli/signals.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "fs/virtio_fs.h"
#include "machine/machine.h"
#include "machine/machine_snapshot.h"
#include "mmds/mmds.h"
#include "vmm/vm.h"

static const char run_usage[] =
	"usage: kvmini run [--kernel FILE] [options]\n"
	"       kvmini run --restore STATE --mem-file FILE [options]\n"
	"       kvmini run --api-sock PATH   (wait for the API's configuration)\n"
	"       kvmini run --config-file FILE [--api-sock PATH | --no-api]\n"
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
	"                     tap:NAME | tap-fd:N | user[:OPTIONS] | stream:PATH |\n"
	"                     loopback, as for `kvmini vhost net --backend`; ids eth0,\n"
	"                     eth1, ... in order (the control API's iface_id)\n"
	"  --iface-id ID      the id of the --net before it (default ethN)\n"
	"  --mac MAC          the MAC of the --net before it (unicast); default: random,\n"
	"                     locally administered, new for every NIC and every start,\n"
	"                     so VMs on one bridge differ; logged as \"ethN: MAC ...\"\n"
	"  --offloads on|off  checksum and segmentation offloads of the --net before it\n"
	"                     (default on)\n"
	"  --queues N         queue pairs of the --net before it, 1..16 (default 1;\n"
	"                     VIRTIO_NET_F_MQ): a thread and a backend queue each (a tap\n"
	"                     opened N times with multi_queue, N tap-fd descriptors, or\n"
	"                     N loopbacks); user and stream have one\n"
	"  --tx-coalesce-us N a kick's TX drain of the --net before it waits N us\n"
	"                     (0..1000, default 0: at once) for the frames queued\n"
	"                     after it: fewer kicks and interrupts, N us more latency\n"
	"  --poll-us N        the --net before it: its queue pairs' threads poll for an\n"
	"                     adaptive window of at most N us (0..1000, default 200;\n"
	"                     0: never) after moving frames before sleeping\n"
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
	"                     /mmds/config, /network-interfaces/ID, /metrics, /actions,\n"
	"                     /vm, /snapshot/create, /snapshot/load) over HTTP on the unix\n"
	"                     socket PATH; without --kernel and --restore, wait there for\n"
	"                     PUT /snapshot/load, which brings the machine and its devices\n"
	"  --fs DIR:TAG[,OPTION...]\n"
	"                     a virtio-fs device sharing the host directory DIR; the\n"
	"                     guest mounts it with `mount -t virtiofs TAG /mnt` (repeatable,\n"
	"                     up to 4; the guest cannot reach outside DIR). OPTIONs, as\n"
	"                     `kvmini vhost fs` takes them: cache=MODE, threads=N,\n"
	"                     queues=N, poll-us=N, squash-owner=U:G, max-fds=N, max-inodes=N,\n"
	"                     max-handles=N, max-write=BYTES, xattr-all, dev-nodes,\n"
	"                     no-notify, max-watches=N, watch=dirs|files; and dax=SIZE\n"
	"                     (e.g. 1G): a DAX window for `mount -t virtiofs -o dax=always`\n"
	"                     (e.g. --fs /srv:data,cache=none,threads=4)\n"
	"  --drive PATH[,ro][,root][,id=ID][,partuuid=UUID]\n"
	"                     a virtio-blk device on the raw image PATH (a file or a\n"
	"                     block device; repeatable, up to 8): ro read-only; root\n"
	"                     the root drive, /dev/vda in the guest, and root=/dev/vda\n"
	"                     (or root=PARTUUID=UUID) rw|ro added to the command line\n"
	"                     unless it names a root; id its name and serial (driveN)\n"
	"  --entropy[=LIMIT]  a virtio-rng device (Firecracker's entropy device) filled\n"
	"                     from the host's getrandom; LIMIT as --tx-rate-limit's\n"
	"                     (bw=SIZE/REFILL_MS,bw_burst=N,ops=SIZE/REFILL_MS,ops_burst=N)\n"
	"  --vsock CID:PATH   a virtio-vsock device (Firecracker's hybrid vsock): the guest\n"
	"                     is CID (3 or more); a host process connects to the unix\n"
	"                     socket PATH and writes \"CONNECT <port>\\n\" to reach a guest\n"
	"                     listener, and a guest connection to CID 2 port N reaches\n"
	"                     the host process listening on PATH_N\n"
	"  --balloon AMOUNT_MIB[,deflate-on-oom][,stats=SECONDS]\n"
	"                     a virtio-balloon device (Firecracker's balloon, as PUT\n"
	"                     /balloon makes it): the guest is asked to give back\n"
	"                     AMOUNT_MIB (at most --mem; PATCH /balloon changes it);\n"
	"                     deflate-on-oom lets it take pages back under memory\n"
	"                     pressure; stats=SECONDS polls its statistics (GET\n"
	"                     /balloon/statistics), 0 (default) none\n"
	"  --no-notify        do not watch the --fs directories for host changes (by\n"
	"                     default they become FUSE invalidations for a driver that\n"
	"                     negotiates VIRTIO_FS_F_NOTIFICATION)\n"
	"  --max-watches N    most inotify watches per --fs directory (default 65536)\n"
	"  --restore STATE    resume a snapshot instead of booting: STATE is the state\n"
	"                     file PUT /snapshot/create wrote; memory size, vCPUs,\n"
	"                     --no-acpi, --compat and the devices come from it; --net and\n"
	"                     --fs options, when given, replace the devices and must be\n"
	"                     the same kinds in the same order (a clone gives its own tap\n"
	"                     and --mac)\n"
	"  --config-file FILE Firecracker's JSON configuration (boot-source,\n"
	"                     machine-config, network-interfaces, metrics): its\n"
	"                     sections become the API's pre-boot requests, then\n"
	"                     InstanceStart; with or without --api-sock\n"
	"  --no-api           with --config-file: no API socket (Firecracker's flag)\n"
	"  --mmds-new-token-key\n"
	"                     with --restore: a new MMDS token key (tokens issued before\n"
	"                     the snapshot no longer open the metadata)\n"
	"  --mem-file FILE    with --restore: the snapshot's memory file, mapped\n"
	"                     privately (pages are read when the guest touches them);\n"
	"                     for a Diff snapshot, once per layer in order: the Full\n"
	"                     snapshot's file first, then each Diff's as they were taken\n"
	"                     (the state says how many; other counts are refused)\n"
	"  --track-dirty-pages\n"
	"                     track the pages the guest and the devices write, so that\n"
	"                     PUT /snapshot/create can take \"Diff\" snapshots (only the\n"
	"                     pages written since the last snapshot, taken or restored);\n"
	"                     the guest's memory then gets 4 KiB pages, no huge ones\n"
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
	"  --id ID            the instance id (GET /'s \"id\", and \"kvmini[ID]:\" in\n"
	"                     the log lines): 1 to 64 letters, digits or '-'\n"
	"  --level LEVEL      log threshold: Error, Warning, Info, Debug, Trace (= Debug)\n"
	"                     or Off, any case (Firecracker's; -v and -q are Debug, Error)\n"
	"  --log-path PATH    append the log lines to PATH instead of stderr (a file,\n"
	"                     created if absent, or a FIFO: opened non-blocking; lines a\n"
	"                     full FIFO cannot take are dropped)\n"
	"  --metrics-path PATH  the metrics file, as PUT /metrics would set it: a line\n"
	"                     every 60 s, on FlushMetrics and at exit\n"
	"  --http-api-max-payload-size N\n"
	"                     the API's largest request body in bytes (default 1048576);\n"
	"                     a larger one is refused 400\n"
	"  --mmds-size-limit N  the MMDS store's limit in bytes (default 51200)\n"
	CLI_SECCOMP_USAGE
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

/* --- arguments ------------------------------------------------------------- */

int run_readable(const char *what, const char *path, struct errbuf *eb)
{
	if (!path || access(path, R_OK) == 0)
		return 0;
	int r = -errno;
	errbuf_set(eb, "%s %s: %s", what, path, strerror(-r));
	return r;
}

/* The same for an option's file, logged: a usage error. */
static int check_readable(const char *opt, const char *path)
{
	struct errbuf eb = { 0 };

	if (run_readable(opt, path, &eb) == 0)
		return 0;
	log_err("%s", eb.msg);
	return -EINVAL;
}

/* The share's directory exists and is one: a usage error, not a run one. */
static int check_fs_dir(const char *spec, const char *dir)
{
	struct stat st;

	errno = 0;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("--fs %s: %s is not a directory%s%s", spec, dir, errno ? ": " : "",
			errno ? strerror(errno) : "");
		return -EINVAL;
	}
	return 0;
}

/* The colon between DIR and TAG: a directory may hold colons, a tag may
 * not, and an option's value may (squash-owner=U:G); so the last colon
 * before the first '=', or without one there, the last colon. */
static const char *dir_tag_colon(const char *spec)
{
	const char *eq = strchrnul(spec, '=');
	const char *colon = memrchr(spec, ':', (size_t)(eq - spec));

	return colon ? colon : strrchr(spec, ':');
}

/* How messages name a share: "--fs DIR:TAG", without its options. */
static void fs_what(char what[RUN_FS_WHAT_LEN], const char *dir, const char *tag)
{
	snprintf(what, RUN_FS_WHAT_LEN, "--fs %s:%s", dir, tag);
}

/* DIR:TAG[,OPTION...]: split at that colon, the tag at its first comma,
 * and check each. */
static int parse_fs_spec(const char *spec, struct run_fs_spec *f)
{
	const char *colon = dir_tag_colon(spec);
	char what[RUN_FS_WHAT_LEN];

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(f->dir)) {
		log_err("--fs %s: expected DIR:TAG", spec);
		return -EINVAL;
	}
	memcpy(f->dir, spec, (size_t)(colon - spec));
	f->dir[colon - spec] = '\0';
	const char *tag = colon + 1, *opts = strchrnul(tag, ',');
	if ((size_t)(opts - tag) > VIRTIO_FS_TAG_LEN || opts == tag) {
		log_err("--fs %s: the tag must be 1 to %u bytes", spec, VIRTIO_FS_TAG_LEN);
		return -EINVAL;
	}
	snprintf(f->tag, sizeof(f->tag), "%.*s", (int)(opts - tag), tag);
	if (virtio_fs_check_tag(f->tag) < 0) {
		log_err("--fs %s: the tag must be 1 to %u bytes", spec, VIRTIO_FS_TAG_LEN);
		return -EINVAL;
	}
	fs_what(what, f->dir, f->tag);
	cli_fs_args_init(&f->opts);
	f->opts.share.dir = f->dir;
	f->opts.dev.tag = f->tag;
	if (*opts && cli_fs_take_list(&f->opts, opts + 1, what) < 0)
		return -EINVAL;
	return check_fs_dir(spec, f->dir);
}

/* One option with a value; 0 or -errno with the reason logged. */
/* --entropy[=LIMIT]: the device, with its limiter when one is given. */
static int take_entropy(struct run_args *a, const char *val)
{
	struct errbuf eb = { 0 };

	a->entropy = true;
	a->entropy_limit = (struct rate_limiter_config){ 0 };
	if (!val || rate_limiter_parse(val, &a->entropy_limit, &eb) == 0)
		return 0;
	log_err("--entropy=%s: %s", val, eb.msg);
	return -EINVAL;
}

/* --vsock CID:PATH. */
static int take_vsock(struct run_args *a, const char *val)
{
	const char *colon = strchr(val, ':');
	char *end = NULL;
	unsigned long long cid = colon ? strtoull(val, &end, 10) : 0;

	if (!colon || end != colon || !virtio_vsock_cid_valid(cid) || !colon[1] ||
	    strlen(colon + 1) > VSOCK_UDS_PATH_MAX) {
		log_err("--vsock %s: give CID:PATH, CID from 3 to %u and PATH a unix socket path "
			"of at most %zu bytes", val, UINT32_MAX, VSOCK_UDS_PATH_MAX);
		return -EINVAL;
	}
	a->vsock.on = true;
	a->vsock.cid = cid;
	snprintf(a->vsock.path, sizeof(a->vsock.path), "%s", colon + 1);
	return 0;
}

/* One option of --balloon's after the amount: deflate-on-oom, or
 * stats=SECONDS (0 to 65535, Firecracker's stats_polling_interval_s). */
static int take_balloon_option(struct virtio_balloon_opts *o, const char *opt, const char *spec)
{
	unsigned long v;

	if (!strcmp(opt, "deflate-on-oom")) {
		o->deflate_on_oom = true;
		return 0;
	}
	if (strncmp(opt, "stats=", 6)) {
		log_err("--balloon %s: unknown option \"%s\" (deflate-on-oom, stats=SECONDS)", spec,
			opt);
		return -EINVAL;
	}
	if (cli_parse_uint(opt + 6, 0, UINT16_MAX, &v) < 0) {
		log_err("--balloon %s: stats=\"%s\" is not a number of seconds from 0 to %u (0: no "
			"statistics)", spec, opt + 6, UINT16_MAX);
		return -EINVAL;
	}
	o->stats_polling_interval_s = (uint16_t)v;
	return 0;
}

/* --balloon AMOUNT_MIB[,deflate-on-oom][,stats=SECONDS]: what PUT /balloon
 * (or a config file's "balloon") sets; the amount against --mem is
 * checked once every option is read (check_boot). */
static int take_balloon(struct run_args *a, const char *spec)
{
	struct virtio_balloon_opts o = { 0 };
	char buf[64];
	unsigned long mib;

	if (a->balloon) {
		log_err("--balloon %s: a VM has one balloon, given already", spec);
		return -EINVAL;
	}
	if (strlen(spec) >= sizeof(buf)) {
		log_err("--balloon %s: too long", spec);
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	char *save = NULL, *amount = strtok_r(buf, ",", &save), *opt;
	if (!amount || spec[0] == ',' || cli_parse_uint(amount, 0, RUN_MEM_MAX_MIB, &mib) < 0) {
		log_err("--balloon %s: the amount must come first, a number of MiB from 0 to %lu",
			spec, RUN_MEM_MAX_MIB);
		return -EINVAL;
	}
	o.amount_mib = (uint32_t)mib;
	while ((opt = strtok_r(NULL, ",", &save)))
		if (take_balloon_option(&o, opt, spec) < 0)
			return -EINVAL;
	a->balloon = true;
	a->balloon_opts = o;
	return 0;
}

static int parse_value(int c, const char *val, struct run_args *a)
{
	switch (c) {
	case 'R': a->restore = val; return 0;
	case 'J': a->config_file = val; return 0;
	case 'F':
		if (a->n_mem_files < MACHINE_SNAPSHOT_MAX_LAYERS) {
			a->mem_files[a->n_mem_files++] = val;
			return 0;
		}
		log_err("--mem-file: at most %u (a Full snapshot's and %u Diffs')",
			MACHINE_SNAPSHOT_MAX_LAYERS, MACHINE_SNAPSHOT_MAX_LAYERS - 1);
		return -EINVAL;
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
	case 'E':
		return take_entropy(a, val);
	case 'B':
		return run_take_drive(a, val);
	case 'V':
		return take_vsock(a, val);
	case 'L':
		return take_balloon(a, val);
	case 'f':
		if (a->nfs < RUN_MAX_FS)
			return parse_fs_spec(val, &a->fs[a->nfs++]);
		log_err("--fs: at most %u shared directories", RUN_MAX_FS);
		return -EINVAL;
	}
	return -EINVAL;
}

/* The options that say how to boot: a restore takes all that from the
 * snapshot (getopt's values for --kernel, --initrd, --cmdline, --mem,
 * --cpus, --compat, --host-decompress, --no-acpi, and --balloon: what the
 * guest's driver negotiated with it is in the snapshot, and the API's VM
 * gets its balloon from PUT /balloon). */
#define RUN_BOOT_OPTIONS "kicmpPDAL"

static int check_restore(const struct run_args *a)
{
	if (!a->restore || !a->n_mem_files) {
		log_err("%s needs %s", a->restore ? "--restore" : "--mem-file",
			a->restore ? "--mem-file (the snapshot's memory)" : "--restore");
		return -EINVAL;
	}
	if (a->boot_option) {
		log_err("--%s: with --restore this comes from the snapshot", a->boot_option);
		return -EINVAL;
	}
	for (unsigned i = 0; i < a->n_mem_files; i++)
		if (check_readable("--mem-file", a->mem_files[i]))
			return -EINVAL;
	return check_readable("--restore", a->restore);
}

/* A VM configured through the API (a monitor waiting on --api-sock, or
 * --config-file's requests): the API brings the machine and its devices,
 * as Firecracker, which takes no devices on its command line. */
static int check_preboot(const struct run_args *a)
{
	if (a->no_api && (!a->config_file || a->net.api_sock)) {
		log_err("--no-api runs the VM of --config-file without a socket: give --config-file "
			"and no --api-sock");
		return -EINVAL;
	}
	if (a->boot_option || a->net.n_ifaces || a->nfs || a->entropy || a->n_drives ||
	    a->vsock.on) {
		log_err("--%s: kvmini run --api-sock or --config-file without --kernel or --restore "
			"takes its machine from the API (PUT /boot-source, /machine-config, "
			"/network-interfaces, or PUT /snapshot/load) or the file; give --kernel to "
			"boot with these options", a->boot_option ? a->boot_option
				      : a->net.n_ifaces ? "net" : a->nfs ? "fs"
				      : a->entropy ? "entropy" : a->vsock.on ? "vsock" : "drive");
		return -EINVAL;
	}
	return 0;
}

/* The kernel to boot: --kernel's, else the project's own guest
 * (scripts/build-guest.sh). */
static int check_boot(struct run_args *a)
{
	const char *unused_initrd;

	if (!a->kernel && default_guest_find(&a->kernel, a->initrd ? &unused_initrd : &a->initrd) < 0)
		return -EINVAL;
	if (check_readable("--kernel", a->kernel) || (a->initrd && check_readable("--initrd", a->initrd)))
		return -EINVAL;
	if (a->balloon && a->balloon_opts.amount_mib > a->mem_mib) {
		log_err("--balloon %u: the balloon's amount is above guest memory (--mem %lu MiB)",
			a->balloon_opts.amount_mib, a->mem_mib);
		return -EINVAL;
	}
	return 0;
}

/* Each share's options, with the defaults given for all of them. */
static int check_fs(struct run_args *a)
{
	if (a->fs_defaults.given && !a->nfs) {
		log_err("--no-notify and --max-watches are for --fs shares");
		return -EINVAL;
	}
	for (unsigned i = 0; i < a->nfs; i++) {
		cli_fs_inherit(&a->fs[i].opts, &a->fs_defaults);
		if (cli_fs_check(&a->fs[i].opts) < 0)
			return -EINVAL;
	}
	return 0;
}

/* After parsing: what to do (boot, restore, wait) and whether the options
 * fit it. 0 or -EINVAL (logged). */
static int check_args(struct run_args *a)
{
	if (a->mmds_new_key && !a->restore) {
		log_err("--mmds-new-token-key is for --restore (PUT /snapshot/load takes "
			"\"mmds_new_token_key\")");
		return -EINVAL;
	}
	bool booting = a->kernel || a->initrd || a->restore || a->n_mem_files;
	if (a->config_file && booting) {
		log_err("--config-file: the file configures the VM (its boot-source); give no "
			"--kernel, --initrd or --restore beside it");
		return -EINVAL;
	}
	if (a->config_file && check_readable("--config-file", a->config_file))
		return -EINVAL;
	a->preboot = (a->net.api_sock || a->config_file || a->no_api) && !booting;
	int r = a->preboot ? check_preboot(a)
		: a->restore || a->n_mem_files ? check_restore(a) : check_boot(a);
	if (!r)
		r = check_fs(a);
	if (r < 0)
		return -EINVAL;
	return cli_net_controls_check(&a->net);
}

/* An option the run shares with other commands (net controls, fs
 * watches) or with Firecracker: 0 taken, 1 not one, -EINVAL (logged). */
static int take_shared(struct run_args *a, int c, const char *val)
{
	int r = cli_net_controls_take(&a->net, c, val);

	if (r > 0)
		r = cli_fs_take(&a->fs_defaults, c, val);
	if (r > 0)
		r = run_take_fc_option(a, c, val);
	if (r > 0 && c == CLI_OPT_SECCOMP)
		r = cli_seccomp_option(val);
	return r;
}

/* What a run has before its options. */
static void run_args_defaults(struct run_args *a)
{
	*a = (struct run_args){ .mem_mib = 256, .cpus = 1, .cmdline = RUN_DEFAULT_CMDLINE,
				.vsock.listen_fd = -1 };
	cli_net_controls_init(&a->net, "kvmini run", "--net", 0);
	cli_fs_args_init(&a->fs_defaults);
}

/* Returns 0, 1 after --help, or -EINVAL. */
static int parse_run_args(int argc, char **argv, struct run_args *a)
{
	static const struct option own[] = {
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
		{ "seccomp", required_argument, NULL, CLI_OPT_SECCOMP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "restore", required_argument, NULL, 'R' },
		{ "mem-file", required_argument, NULL, 'F' },
		{ "track-dirty-pages", no_argument, NULL, 'W' },
		{ "mmds-new-token-key", no_argument, NULL, 'K' },
		{ "config-file", required_argument, NULL, 'J' },
		{ "no-api", no_argument, NULL, 'N' },
		{ "entropy", optional_argument, NULL, 'E' },
		{ "drive", required_argument, NULL, 'B' },
		{ "vsock", required_argument, NULL, 'V' },
		{ "balloon", required_argument, NULL, 'L' },
		CLI_NET_CONTROLS_LONG_OPTIONS,
		RUN_FC_LONG_OPTIONS,
	};
	struct option opts[ARRAY_SIZE(own) + CLI_FS_MAX_LONG_OPTIONS + 1] = { 0 };
	int c;

	memcpy(opts, own, sizeof(own));
	cli_fs_long_options(opts + ARRAY_SIZE(own), CLI_FS_RUN);

	run_args_defaults(a);
	optind = 1;
	opterr = 0;
	int li = -1;
	while ((c = getopt_long(argc, argv, ":vqh", opts, &li)) != -1) {
		/* Long options past ASCII (the shared ones) are never boot options:
		 * strchr would match their low byte. */
		if (li >= 0 && c > 0 && c < 128 && strchr(RUN_BOOT_OPTIONS, c) && !a->boot_option)
			a->boot_option = opts[li].name;
		li = -1;
		int shared = take_shared(a, c, optarg);
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
		case 'W': a->track_dirty_pages = true; break;
		case 'K': a->mmds_new_key = true; break;
		case 'N': a->no_api = true; break;
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
	return check_args(a);
}

/* --- signals ------------------------------------------------------------------ */

static void on_signal(struct cli_signals *cs, int signo)
{
	struct run_ctx *ctx = container_of(cs, struct run_ctx, sig);

	if (signo == SIGUSR1) {
		if (ctx->machine.running)
			machine_dump_counters(&ctx->machine, stderr);
	} else if (ctx->machine.running) {
		run_state_request_stop(&ctx->machine.vm.run_state, 128 + signo, "signal %d", signo);
	} else {
		/* Waiting for a load: nothing to stop but the loop. */
		ctx->status_without_vm = 128 + signo;
		log_info("signal %d: ending before a VM was started", signo);
		event_loop_quit(&ctx->machine.loop);
	}
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

/* Name the shares in messages and counters as --fs would. */
void run_name_shares(struct run_ctx *ctx, struct machine_fs_config *fs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		fs_what(ctx->fs_what[i], fs[i].share.dir, fs[i].dev.tag);
		snprintf(ctx->fs_counters_name[i], sizeof(ctx->fs_counters_name[i]), "--fs %s",
			 fs[i].dev.tag);
		fs[i].what = ctx->fs_what[i];
		fs[i].counters_name = ctx->fs_counters_name[i];
	}
}

int run_build_machine(struct run_ctx *ctx)
{
	ctx->machine_tried = true;
	int r = machine_build(&ctx->machine, &ctx->cfg);
	if (ctx->machine.vsock)
		ctx->args->vsock.listen_fd = -1;      /* the device's now */
	/* vm_create zeroed the timing: its zero is kvmini's start, or a load's. */
	ctx->machine.vm.timing.start = ctx->start_ns;
	return r;
}

/* The machine's configuration from the command line. */
void run_configure(struct run_ctx *ctx)
{
	const struct run_args *a = ctx->args;

	for (unsigned i = 0; i < a->nfs; i++)
		ctx->fs[i] = (struct machine_fs_config){ .share = a->fs[i].opts.share,
							 .dev = a->fs[i].opts.dev };
	run_name_shares(ctx, ctx->fs, a->nfs);
	ctx->vsock = (struct virtio_vsock_opts){ .guest_cid = a->vsock.cid,
						 .uds_path = a->vsock.path,
						 .listen_fd = a->vsock.listen_fd };
	ctx->cfg = (struct machine_config){
		.kernel = a->kernel, .initrd = a->initrd, .cmdline = a->cmdline,
		.mem_bytes = (uint64_t)a->mem_mib << 20, .cpus = (unsigned)a->cpus,
		.compat = a->compat, .host_decompress = a->host_decompress, .no_acpi = a->no_acpi,
		.console_in = STDIN_FILENO, .console_out = STDOUT_FILENO,
		.nets = a->net.ifaces, .n_nets = a->net.n_ifaces,
		.mmds = ctx->mmds_on ? ctx->mmds : NULL,
		.fs = ctx->fs, .n_fs = a->nfs,
		.entropy = a->entropy ? &a->entropy_limit : NULL,
		.vsock = a->vsock.on ? &ctx->vsock : NULL,
		.balloon = a->balloon ? &a->balloon_opts : NULL,
		.cmdline_what = "--cmdline", .net_names = cli_net_controls_names(&a->net),
		.track_dirty_pages = a->track_dirty_pages,
	};
	run_configure_drives(ctx);
}

/* --- build ------------------------------------------------------------------------ */

/* --restore: the same steps as an API load, logged. */
static int build_restore(struct run_ctx *ctx)
{
	const struct run_args *a = ctx->args;
	const struct run_restore rr = {
		.state = a->restore, .mem_files = a->mem_files,
		.n_mem_files = a->n_mem_files, .track_dirty_pages = a->track_dirty_pages,
		.mmds_new_key = a->mmds_new_key,
	};
	struct errbuf eb = { 0 };
	int r = run_restore_prepare(ctx, &rr, &eb);

	if (!r)
		r = run_restore_build(ctx, &rr, &eb);
	if (r < 0)
		log_err("--restore: %s", eb.msg);
	return r;
}

/* --config-file: its sections as the API's pre-boot requests, then
 * InstanceStart (api_config_file.c). */
static int apply_config_file(struct run_ctx *ctx)
{
	struct errbuf eb = { 0 };
	int r = api_apply_config_file(ctx->api, ctx->args->config_file, &eb);

	if (r < 0)
		log_err("--config-file %s: %s", ctx->args->config_file, eb.msg);
	return r;
}

/* A monitor that waits for its configuration has a metadata store from
 * the start, as Firecracker has: PUT /mmds may come before PUT
 * /mmds/config, or without it. It serves the machine only once on. */
static int waiting_store(struct run_ctx *ctx)
{
	if (ctx->mmds)
		return 0;
	ctx->mmds = mmds_new(&ctx->args->net.mmds.cfg);
	if (!ctx->mmds) {
		log_err("the metadata store: out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int build(struct run_ctx *ctx)
{
	const struct run_args *a = ctx->args;
	int r = cli_net_controls_mmds(&a->net, &ctx->mmds);

	ctx->mmds_on = ctx->mmds != NULL;
	if (!r && a->preboot)
		r = waiting_store(ctx);

	if (!r && a->preboot) {
		r = machine_init_loop(&ctx->machine);
	} else if (!r && a->restore) {
		r = build_restore(ctx);
	} else if (!r) {
		run_configure(ctx);
		r = run_build_machine(ctx);
	}
	if (!r)
		r = run_start_api(ctx);
	/* Before the config file's InstanceStart, which confines this thread. */
	if (!r) {
		r = cli_signals_watch(&ctx->sig, &ctx->machine.loop, on_signal);
		if (r < 0)
			log_err("signals: %s", strerror(-r));
	}
	if (!r && a->config_file)
		r = apply_config_file(ctx);
	else if (!r && a->preboot)
		log_info("waiting on %s for the VM's configuration (PUT /boot-source, "
			 "/machine-config, /network-interfaces, then InstanceStart; or PUT "
			 "/snapshot/load)", a->net.api_sock);
	return r;
}

/* Run what was built; a waiting monitor runs its loop until a load
 * starts the VM and the VM ends, or a signal comes first. */
static int run(struct run_ctx *ctx)
{
	/* Waiting, the main thread answers only the operator's API socket
	 * and does what set-up asks (files opened, taps attached, memory
	 * mapped, a snapshot read): its filter goes on when InstanceStart or
	 * a load has built the VM, before the first guest instruction
	 * (run_preboot.c, run_api.c), as Firecracker's VMM thread's does. */
	if (ctx->args->preboot)
		return event_loop_run(&ctx->machine.loop);
	if (cli_confine_main() < 0)
		return -EPERM;
	return machine_run(&ctx->machine);
}

/* Report how the VM ended (and counters, timing); returns the exit status. */
static int finish(struct run_ctx *ctx, int r)
{
	const struct run_state *rs = &ctx->machine.vm.run_state;
	uint64_t end = clock_now_ns();

	if (r == 0 && !ctx->machine.running)
		return ctx->status_without_vm;
	int status = r < 0 ? EXIT_RUNTIME : rs->exit_status;
	if (r == 0 && rs->exit_reason[0]) {
		if (status == 0)
			log_info("%s", rs->exit_reason);
		else
			log_warn("%s (exit status %d)", rs->exit_reason, status);
	}
	if (ctx->args->counters)
		machine_dump_counters(&ctx->machine, stderr);
	if (ctx->args->boot_timing)
		print_timing(&ctx->machine.vm.timing, end);
	return status;
}

static void teardown(struct run_ctx *ctx)
{
	if (ctx->machine.loop_ready) {
		event_loop_cancel(&ctx->machine.loop, &ctx->quit_work);
		cli_signals_close(&ctx->sig, &ctx->machine.loop);
		api_stop(ctx->api);
	}
	machine_destroy(&ctx->machine);
	if (ctx->args->vsock.listen_fd >= 0) {     /* PUT /vsock's, never built */
		close(ctx->args->vsock.listen_fd);
		unlink(ctx->args->vsock.path);
	}
	machine_restore_close(&ctx->restore);
	run_api_free(ctx);
	mmds_free(ctx->mmds);
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
	if (run_apply_fc_options(&args) < 0)
		return EXIT_RUNTIME;
	struct run_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		log_err("cannot set up: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	ctx->args = &args;
	ctx->start_ns = start;
	/* Before any thread exists (device workers, vCPUs). */
	r = cli_signals_block();
	if (!r)
		r = build(ctx);
	if (!r)
		r = run(ctx);
	if (ctx->machine_tried)
		machine_stop(&ctx->machine);
	int status = finish(ctx, r);
	teardown(ctx);
	free(ctx);
	return status;
}
