/*
 * `kvmini run`'s parts (see run.c): the options as parsed, the run's
 * context, and what its files call in each other. run.c parses and runs;
 * run_restore.c builds a machine from a snapshot (for --restore and PUT
 * /snapshot/load alike); run_api.c is the VM as the control API sees it.
 * Everything here runs on the thread that builds the machine and then
 * runs its loop.
 */
#ifndef KVMINI_CLI_RUN_H
#define KVMINI_CLI_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "cli/fs_options.h"
#include "cli/net_controls.h"
#include "cli/signals.h"
#include "core/errbuf.h"
#include "core/event_loop.h"
#include "fs/virtio_fs.h"
#include "machine/machine.h"
#include "machine/machine_snapshot.h"

#define RUN_MAX_NETS CLI_NET_MAX_IFACES
#define RUN_MAX_FS MACHINE_MAX_FS
#define RUN_MAX_DRIVES MACHINE_MAX_DRIVES
#define RUN_MEM_MIN_MIB 16ul
#define RUN_MEM_MAX_MIB (1ul << 20)
#define RUN_DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=1 pci=off"

struct run_args {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned long mem_mib;
	unsigned long cpus;
	struct cli_net_controls net;     /* --net devices, ids, limits, MMDS, API */
	struct cli_fs_args fs_defaults;  /* --no-notify, --max-watches */
	struct run_fs_spec {
		char dir[4096];
		char tag[VIRTIO_FS_TAG_LEN + 1];
		struct cli_fs_args opts;
	} fs[RUN_MAX_FS];
	unsigned nfs;
	/* --drive, PUT /drives/{id}: in the order given (the machine gets the
	 * root drive first). */
	struct run_drive {
		char id[65];
		char path[4096];
		char partuuid[65];       /* "": root=/dev/vda */
		bool read_only;
		bool root;
		struct rate_limiter_config limit;   /* all zero: none */
	} drives[RUN_MAX_DRIVES];
	unsigned n_drives;
	bool entropy;                    /* --entropy, PUT /entropy: a virtio-rng device */
	struct rate_limiter_config entropy_limit;
	/* --vsock CID:PATH, PUT /vsock: a virtio-vsock device. */
	struct run_vsock {
		bool on;
		uint64_t cid;
		char path[108];
		int listen_fd;           /* PUT /vsock made the socket; -1: the machine makes it */
	} vsock;
	bool balloon;                    /* --balloon, PUT /balloon: a virtio-balloon device */
	struct virtio_balloon_opts balloon_opts;
	bool boot_timing;
	bool counters;
	bool compat;
	bool host_decompress;
	bool no_acpi;
	const char *restore;             /* --restore STATE */
	const char *mem_files[MACHINE_SNAPSHOT_MAX_LAYERS];   /* --mem-file FILE, in order */
	unsigned n_mem_files;
	bool track_dirty_pages;
	bool mmds_new_key;               /* --mmds-new-token-key */
	/* Options a restore takes from the snapshot, when given: the first. */
	const char *boot_option;
	const char *config_file;         /* --config-file: Firecracker's JSON */
	bool no_api;                     /* --no-api (with --config-file) */
	/* --api-sock with nothing to boot, or --config-file: the VM is
	 * configured through the API (the file's requests go through it). */
	bool preboot;
	/* Firecracker's flags (firecracker.c), also `kvmini run`'s. */
	const char *instance_id;         /* --id: GET /'s "id", the log lines' */
	const char *log_path;            /* --log-path: log lines there, not stderr */
	const char *metrics_path;        /* --metrics-path: PUT /metrics from the start */
	unsigned long max_payload;       /* --http-api-max-payload-size; 0: the API's */
};

/* getopt_long codes of Firecracker's flags that `kvmini run` takes too. */
enum {
	RUN_OPT_ID = 0x4600, RUN_OPT_LEVEL, RUN_OPT_LOG_PATH, RUN_OPT_METRICS_PATH,
	RUN_OPT_MAX_PAYLOAD,
};

#define RUN_FC_LONG_OPTIONS \
	{ "id", required_argument, NULL, RUN_OPT_ID }, \
	{ "level", required_argument, NULL, RUN_OPT_LEVEL }, \
	{ "log-path", required_argument, NULL, RUN_OPT_LOG_PATH }, \
	{ "metrics-path", required_argument, NULL, RUN_OPT_METRICS_PATH }, \
	{ "http-api-max-payload-size", required_argument, NULL, RUN_OPT_MAX_PAYLOAD }

/* "--fs DIR:TAG" with room for the longest DIR and TAG. */
#define RUN_FS_WHAT_LEN 4200

struct run_ctx {
	struct run_args *args;           /* the API's pre-boot requests change it */
	struct machine_config cfg;
	struct machine_fs_config fs[RUN_MAX_FS];
	struct machine_drive_config drives[RUN_MAX_DRIVES];
	struct virtio_vsock_opts vsock;
	char cmdline[LAYOUT_CMDLINE_MAX];    /* the boot arguments with root= of a root drive */
	/* The shares' names in the machine's messages and counters. */
	char fs_what[RUN_MAX_FS][RUN_FS_WHAT_LEN];
	char fs_counters_name[RUN_MAX_FS][VIRTIO_FS_TAG_LEN + 8];
	struct machine machine;
	bool machine_tried;              /* machine_build was called */
	struct machine_restore restore;  /* the restore's state, opened */
	char *load_paths[1 + API_SNAPSHOT_MAX_LAYERS];   /* an API load's files, copied */
	/* The pre-boot API's configuration: PUT /boot-source's paths and
	 * arguments (copied; args points at them), each new interface's
	 * "tap:NAME", and whether anything was configured (a snapshot load
	 * is refused then, as Firecracker does). */
	char *boot_strings[3];
	char api_backends[RUN_MAX_NETS][32];
	bool api_configured;
	const char *load_mem[API_SNAPSHOT_MAX_LAYERS];   /* its memory files among them */
	uint64_t start_ns;               /* kvmini's start, or a load's: --boot-timing's zero */
	/* The metadata store. A VM configured through the API always has one,
	 * so /mmds answers before PUT /mmds/config (Firecracker's store exists
	 * from the start); it serves the machine only once MMDS is on (--mmds,
	 * PUT /mmds/config, or a snapshot that had it). */
	struct mmds *mmds;
	bool mmds_on;
	struct api *api;
	struct api_iface api_ifaces[RUN_MAX_NETS];
	char api_block_names[RUN_MAX_DRIVES][80];   /* "block_<drive_id>" in the metrics */
	struct cli_signals sig;
	/* A run that ends before it has a VM (a signal while waiting): its
	 * status; and the loop's end after a load that broke the machine. */
	int status_without_vm;
	struct event_deferred quit_work;
};

/* A restore, as --restore or PUT /snapshot/load asks for it. */
struct run_restore {
	bool from_api;                   /* PUT /snapshot/load (else --restore), for messages */
	const char *state;
	const char *const *mem_files;
	unsigned n_mem_files;
	bool track_dirty_pages;
	bool mmds_new_key;
	const struct api_net_override *overrides;   /* onto the snapshot's devices */
	unsigned n_overrides;
	const struct api_fs_override *fs_overrides;
	unsigned n_fs_overrides;
	const char *vsock_uds_path;      /* vsock_override.uds_path; NULL: the snapshot's */
};

/* --- run.c --- */

/* The machine's configuration from the command line (ctx->cfg, ctx->fs). */
void run_configure(struct run_ctx *ctx);
/* Build the machine ctx->cfg describes (machine_build; the vCPUs do not
 * run yet), --boot-timing counting from ctx->start_ns. 0 or -errno, logged. */
int run_build_machine(struct run_ctx *ctx);
/* @path readable (NULL is): 0, or -errno with "WHAT PATH: why" in @eb. */
int run_readable(const char *what, const char *path, struct errbuf *eb);
/* Name @n shares in messages and counters as --fs would. */
void run_name_shares(struct run_ctx *ctx, struct machine_fs_config *fs, unsigned n);

/* --- firecracker.c --- */

/* One of RUN_FC_LONG_OPTIONS: 0 taken, 1 not one of them, -EINVAL (logged). */
int run_take_fc_option(struct run_args *a, int opt, const char *val);
/* After parsing: the log's destination and the instance id in its lines.
 * 0 or -errno (logged). */
int run_apply_fc_options(const struct run_args *a);

/* --- run_restore.c --- */

/* Open the snapshot and check it against the request: nothing is built
 * yet, so a refusal leaves the monitor as it was. 0 or -errno with why. */
int run_restore_prepare(struct run_ctx *ctx, const struct run_restore *rr, struct errbuf *eb);
/* Build the snapshot's machine and load its state onto it (the vCPUs do
 * not run yet). 0 or -errno with why. */
int run_restore_build(struct run_ctx *ctx, const struct run_restore *rr, struct errbuf *eb);

/* --- run_api.c --- */

/* The control API on the machine's loop (when --api-sock was given), with
 * the machine's interfaces if it is built. 0 or -errno (logged). */
int run_start_api(struct run_ctx *ctx);
/* Give back what the API's requests kept (a load's paths, the boot source). */
void run_api_free(struct run_ctx *ctx);
/* The built machine's interfaces and metadata store, to the API. */
void run_attach_api_devices(struct run_ctx *ctx);
/* A start (load, InstanceStart) failed after the machine's build began:
 * log @what and why, and end kvmini with status 1 once the API's answer is
 * out; a half-built VM is neither run nor reused. */
void run_end_after_failed_build(struct run_ctx *ctx, const char *what, const struct errbuf *eb);

/* --- run_preboot.c: the api_vm_ops of a VM configured before it starts --- */

int run_set_boot_source(void *ctx, const struct api_boot_source *bs, struct errbuf *eb);
void run_get_machine_config(void *ctx, struct api_machine_config *mc);
void run_get_vm_config(void *ctx, struct api_vm_config *out);
int run_set_machine_config(void *ctx, const struct api_machine_config *mc, struct errbuf *eb);
int run_add_iface(void *ctx, const struct api_net_config *nc, struct errbuf *eb);
int run_set_mmds_config(void *ctx, const struct api_mmds_config *mc, struct errbuf *eb);
int run_set_entropy(void *ctx, const struct rate_limiter_config *limit, struct errbuf *eb);
int run_set_vsock(void *ctx, const struct api_vsock_config *vc, struct errbuf *eb);
/* The balloon (run_balloon.c): api_vm_ops' set_balloon .. patch_balloon_stats. */
int run_set_balloon(void *ctx, const struct api_balloon_config *bc, struct errbuf *eb);
int run_get_balloon(void *ctx, struct api_balloon_config *out);
int run_patch_balloon(void *ctx, uint32_t amount_mib, struct errbuf *eb);
int run_get_balloon_stats(void *ctx, struct api_balloon_stats *out, struct errbuf *eb);
int run_patch_balloon_stats(void *ctx, uint16_t interval_s, struct errbuf *eb);
int run_add_drive(void *ctx, const struct api_drive_config *dc, struct errbuf *eb);
/* PATCH /drives/{id}: 0, -EAGAIN before the start, -ENODEV for no drive
 * @id, else -errno with why in @eb (the old image serves on). */
int run_patch_drive(void *ctx, const char *id, const char *path,
		    const struct rate_limiter_config *limit, struct errbuf *eb);
/* --drive PATH[,ro][,root][,id=ID][,partuuid=UUID]: 0 or -EINVAL (logged). */
int run_take_drive(struct run_args *a, const char *spec);
/* The machine configuration's drives (root first) and boot arguments. */
void run_configure_drives(struct run_ctx *ctx);
/* A drive into @a (--drive, PUT /drives/{id}): the same id again replaces
 * it; a second root drive is refused. 0 or -EINVAL with why in @eb. */
int run_drive_put(struct run_args *a, const struct api_drive_config *dc, struct errbuf *eb);
int run_instance_start(void *ctx, struct errbuf *eb);

#endif
