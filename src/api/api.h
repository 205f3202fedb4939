/*
 * The control API: HTTP/1.1 with JSON bodies on a unix socket, in
 * Firecracker's paths and shapes for what kvmini has, so Firecracker
 * tooling can drive it (the route table is in api_routes.c):
 *
 *   PUT|PATCH|GET /mmds            the metadata store (replace, RFC 7396 merge, read)
 *   PUT /mmds/config               {"version":"V1"|"V2","ipv4_address":..,"network_interfaces":[..]}
 *   PUT|PATCH /network-interfaces/{id}   rx_rate_limiter / tx_rate_limiter
 *   PUT /metrics                   {"metrics_path": ...}
 *   PUT /logger                    {"log_path", "level", ...} before boot (api_logger.c)
 *   PUT /drives/{id}               a drive before boot (api_drives.c)
 *   PATCH /drives/{id}             {"drive_id", "path_on_host"}: its file swapped after boot
 *   PUT /vsock                     {"guest_cid", "uds_path"}: a vsock device before boot
 *   PUT|GET|PATCH /balloon         a balloon before boot; its target after (api_balloon.c)
 *   GET|PATCH /balloon/statistics  the guest's memory statistics; their interval
 *   PUT /actions                   {"action_type": "FlushMetrics"|"InstanceStart"|"SendCtrlAltDel"}
 *   PATCH /vm                      {"state": "Paused"|"Resumed"}
 *   PUT /snapshot/create           of a paused VM (api_snapshot.c)
 *   PUT /snapshot/load             into a monitor with no VM yet
 *   PUT /boot-source, GET|PUT|PATCH /machine-config, PUT /network-interfaces/{id}
 *   (new ones), PUT /actions InstanceStart: a VM configured before it starts
 *   (api_boot.c); GET /version; GET /vm/config (api_vm_config.c)
 *   GET /                          instance information (the VM's state)
 * and, as kvmini extensions, GET /network-interfaces/{id} (the current
 * limits) and GET /metrics (the metrics line, directly).
 * Success is 204 (or 200 with a JSON body); anything malformed or not
 * supported is 400 with {"fault_message": "..."}, as Firecracker answers.
 */
#ifndef KVMINI_API_API_H
#define KVMINI_API_API_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/counters.h"
#include "core/errbuf.h"
#include "core/event_loop.h"
#include "http/http.h"
#include "mmds/mmds.h"
#include "core/rate_limiter.h"

struct net_device;
struct mmds;

/* Counters beside the interfaces' (a transport's), shown in the metrics
 * as one JSON object: @visit hands them to the sink (core/counters.h). */
struct api_counter_source {
	const char *name;                 /* the metrics key: "vhost_user" */
	void (*visit)(void *opaque, const struct counter_sink *sink);
	void *opaque;
};

#define API_MAX_SOURCES 16
#define API_MAX_IFACES 8
#define API_MAX_BODY_BYTES (1u << 20)
/* The most --http-api-max-payload-size may allow. */
#define API_MAX_PAYLOAD_LIMIT (1ul << 30)
#define API_MAX_HEADER_BYTES 8192u
#define API_MAX_CONNECTIONS 16u
/* Timeouts (struct http_limits). A request up to API_MAX_BODY_BYTES on a
 * local socket takes milliseconds; 10 s leaves room for a loaded host and
 * a client that writes its body in steps (curl with Expect: 100-continue).
 * Orchestrators (the Firecracker SDKs, firectl) keep one connection
 * between calls, which may be a minute apart while a VM boots: idle ones
 * are kept 120 s. Output unread for 10 s: the client is gone or stuck. */
#define API_REQUEST_TIMEOUT_MS 10000u
#define API_IDLE_TIMEOUT_MS 120000u
#define API_SEND_TIMEOUT_MS 10000u
/* Metrics are also flushed on their own this often once configured. */
#define API_METRICS_PERIOD_S 60u

/* One network interface. Every call the API makes on @net happens on the
 * thread running the api_start() loop, which must be the device's loop. */
struct api_iface {
	struct net_device *net;
	const char *iface_id;             /* its id in paths and bodies ("eth0") */
	const char *host_dev_name;        /* the tap's name, or NULL when the backend has none */
	bool mmds;                        /* MMDS frames are intercepted on it */
};

/* PUT /snapshot/create's request, checked for shape by the API. */
struct api_snapshot_create {
	bool diff;                        /* "snapshot_type": "Diff" (default "Full") */
	const char *snapshot_path;        /* the state file */
	const char *mem_file_path;        /* the memory image */
};

/* Most memory files of one snapshot: a Full image and its Diffs. */
#define API_SNAPSHOT_MAX_LAYERS 16u

/* One interface of a snapshot changed for this VM (a clone's): its tap
 * (Firecracker's network_overrides) and, as a kvmini extension, its MAC. */
struct api_net_override {
	const char *iface_id;
	const char *host_dev_name;        /* NULL: the snapshot's */
	uint8_t mac[6];
	bool mac_given;
};

/* A share of a snapshot served from another host directory (a clone's
 * own copy): kvmini's extension, fs_overrides. */
struct api_fs_override {
	const char *tag;
	const char *shared_dir;
};

#define API_MAX_FS_OVERRIDES 8u

/* PUT /snapshot/load's request, checked for shape by the API. */
struct api_snapshot_load {
	const char *snapshot_path;        /* the state file */
	/* mem_backend.backend_path (or the older mem_file_path), then the
	 * Diffs over it in order (kvmini's mem_backend.diff_paths). */
	const char *mem_paths[API_SNAPSHOT_MAX_LAYERS];
	unsigned n_mem_paths;
	bool resume_vm;                   /* run it at once, else it stays Paused */
	bool track_dirty_pages;           /* (enable_diff_snapshots, its old name) */
	bool mmds_new_token_key;          /* kvmini: tokens issued before are void */
	struct api_net_override overrides[API_MAX_IFACES];
	unsigned n_overrides;
	struct api_fs_override fs_overrides[API_MAX_FS_OVERRIDES];
	unsigned n_fs_overrides;
	const char *vsock_uds_path;       /* vsock_override.uds_path; NULL: none */
};

/* PUT /boot-source: what InstanceStart boots. */
struct api_boot_source {
	const char *kernel_image_path;
	const char *initrd_path;          /* NULL: none */
	const char *boot_args;            /* NULL: kvmini's default command line */
};

/* GET|PUT|PATCH /machine-config. */
struct api_machine_config {
	uint64_t vcpu_count;
	uint64_t mem_size_mib;
	bool smt;                         /* always false: kvmini has no SMT topology */
	bool track_dirty_pages;
};

/* PUT /network-interfaces/{id} before boot: a new interface on a tap. */
struct api_net_config {
	const char *iface_id;
	const char *host_dev_name;
	uint8_t mac[6];
	bool mac_given;
	struct rate_limiter_config limit[2];   /* by queue: NET_RX_QUEUE, NET_TX_QUEUE */
	bool mmds;                             /* the metadata service answers on it */
};

/* A drive as PUT /drives/{id} configures it (Firecracker's Drive). */
#define API_DRIVE_ID_MAX 64u
#define API_MAX_DRIVES 8u
struct api_drive_config {
	const char *drive_id;
	const char *path_on_host;
	bool is_root_device;
	bool is_read_only;
	const char *partuuid;             /* NULL: root=/dev/vda */
	struct rate_limiter_config limit; /* rate_limiter; all zero: none */
};

/* PUT /vsock (Firecracker's VsockDeviceConfig; vsock_id is taken and
 * dropped, as Firecracker keeps it only to name the device). */
struct api_vsock_config {
	uint64_t guest_cid;
	const char *uds_path;
};

/* PUT and GET /balloon (Firecracker's BalloonDeviceConfig; its free page
 * hinting and reporting are not offered: false only). */
struct api_balloon_config {
	uint32_t amount_mib;
	bool deflate_on_oom;
	uint16_t stats_polling_interval_s;
};

/* GET /balloon/statistics: the target and what the guest holds, and the
 * statistics it last sent (bit t of @seen: val[t] came, tag t). */
#define API_BALLOON_STAT_TAGS 16u
struct api_balloon_stats {
	uint32_t target_pages, actual_pages;
	uint32_t seen;
	uint64_t val[API_BALLOON_STAT_TAGS];
};

/* GET /vm/config: what the VM was configured with (the machine comes
 * from get_machine_config). Strings belong to the VM, valid until its next
 * configuration call. */
struct api_vm_config {
	struct api_boot_source boot;      /* kernel_image_path NULL: none yet */
	/* The interfaces configured; the API shows the running devices'
	 * current MACs and limits instead once they exist. */
	struct api_net_config ifaces[API_MAX_IFACES];
	unsigned n_ifaces;
	bool mmds_on;                     /* the metadata service is configured */
	bool entropy;                     /* an entropy device, with entropy_limit */
	struct rate_limiter_config entropy_limit;
	struct api_drive_config drives[API_MAX_DRIVES];
	unsigned n_drives;
	bool vsock;                       /* a vsock device, as vsock_cfg says */
	struct api_vsock_config vsock_cfg;
	bool balloon;                     /* a balloon, as balloon_cfg says (now) */
	struct api_balloon_config balloon_cfg;
};

/* PUT /mmds/config before the start: where the metadata service will
 * answer and how. The names are the request's, valid for the call. */
struct api_mmds_config {
	struct mmds_config cfg;           /* store_limit: left as the store has it */
	const char *ifaces[API_MAX_IFACES];
	unsigned n_ifaces;
};

/* The VM behind the API (kvmini run; vhost net has none). Each call runs
 * on the api_start() loop's thread, the VM's loop thread. */
struct api_vm_ops {
	/* 0, or -errno: -EAGAIN before the VM runs, -ESHUTDOWN while it ends,
	 * -ETIMEDOUT when a vCPU did not stop (the VM runs on). */
	int (*pause)(void *ctx);
	int (*resume)(void *ctx);
	/* Firecracker's instance states: "Not started", "Running", "Paused". */
	const char *(*state)(void *ctx);
	/* Write a snapshot of the paused VM: 0, or -errno with why in @eb
	 * (-EAGAIN: not paused). NULL: snapshots are refused. */
	int (*snapshot_create)(void *ctx, const struct api_snapshot_create *req,
			       struct errbuf *eb);
	/* Build the VM from a snapshot, in a monitor that has none yet:
	 * 0, -EEXIST when it has one (booted or loaded), else -errno with
	 * why in @eb. NULL: loads are refused. */
	int (*snapshot_load)(void *ctx, const struct api_snapshot_load *req, struct errbuf *eb);
	/*
	 * The configuration of a VM not started yet (a kvmini waiting on its
	 * socket), and InstanceStart, which builds and runs it. Each returns
	 * 0, -EEXIST once the VM exists (Firecracker's "not supported after
	 * starting"), or -errno with why in @eb. NULL: refused.
	 */
	int (*set_boot_source)(void *ctx, const struct api_boot_source *bs, struct errbuf *eb);
	void (*get_machine_config)(void *ctx, struct api_machine_config *mc);
	int (*set_machine_config)(void *ctx, const struct api_machine_config *mc,
				  struct errbuf *eb);
	int (*add_iface)(void *ctx, const struct api_net_config *nc, struct errbuf *eb);
	int (*set_mmds_config)(void *ctx, const struct api_mmds_config *mc, struct errbuf *eb);
	/* PUT /drives/{id}: a drive, or a new configuration of one. */
	int (*add_drive)(void *ctx, const struct api_drive_config *dc, struct errbuf *eb);
	/* PATCH /drives/{id} on the running VM: the drive served from @path
	 * (the same path too: a file grown on the host), the guest told its
	 * new capacity, and/or behind @limit; NULL: that one unchanged. 0,
	 * -EAGAIN before the start, -ENODEV for no drive @id, else -errno with
	 * why in @eb; on failure the old file serves on. */
	int (*patch_drive)(void *ctx, const char *id, const char *path,
			   const struct rate_limiter_config *limit, struct errbuf *eb);
	/* PUT /entropy: an entropy device (virtio-rng) behind @limit. */
	int (*set_entropy)(void *ctx, const struct rate_limiter_config *limit, struct errbuf *eb);
	/* PUT /vsock: a vsock device; its socket file is made now (a second
	 * PUT replaces the first and makes the file again). */
	int (*set_vsock)(void *ctx, const struct api_vsock_config *vc, struct errbuf *eb);
	/*
	 * The balloon. set_balloon (PUT /balloon) before the start: 0, -EEXIST
	 * after it, -EINVAL with why. get_balloon: 0, or -ENODEV without one.
	 * After the start only: patch_balloon (a new target, when the guest's
	 * driver has the device), get_balloon_stats (-EPERM when statistics
	 * are off), patch_balloon_stats (-EPERM to switch them on or off):
	 * 0, -EAGAIN before the start, -ENODEV without one, else -errno with
	 * why in @eb. NULL: refused.
	 */
	int (*set_balloon)(void *ctx, const struct api_balloon_config *bc, struct errbuf *eb);
	int (*get_balloon)(void *ctx, struct api_balloon_config *out);
	int (*patch_balloon)(void *ctx, uint32_t amount_mib, struct errbuf *eb);
	int (*get_balloon_stats)(void *ctx, struct api_balloon_stats *out, struct errbuf *eb);
	int (*patch_balloon_stats)(void *ctx, uint16_t interval_s, struct errbuf *eb);
	int (*start)(void *ctx, struct errbuf *eb);
	/* SendCtrlAltDel: the keys on the guest's i8042. 0, -EAGAIN before
	 * the VM runs, -ENOSPC when the controller's buffer is full. NULL:
	 * refused. */
	int (*send_ctrl_alt_del)(void *ctx);
	/* GET /vm/config. NULL: refused. */
	void (*get_vm_config)(void *ctx, struct api_vm_config *out);
};

struct api_opts {
	const char *socket_path;          /* NULL: no server (tests drive api_http_handler) */
	struct api_iface ifaces[API_MAX_IFACES];
	unsigned n_ifaces;                /* at least 1 */
	struct mmds *mmds;                /* NULL: the /mmds routes answer that MMDS is off */
	struct api_counter_source sources[API_MAX_SOURCES];
	unsigned n_sources;
	const struct api_vm_ops *vm;      /* NULL: no VM (PATCH /vm is refused) */
	void *vm_ctx;
	const char *vmm_version;          /* GET / (and GET /version without the next); NULL: unknown */
	const char *fc_version;           /* GET /version's firecracker_version; NULL: vmm_version */
	const char *instance_id;          /* GET /'s "id"; NULL: "anonymous-instance" */
	size_t max_body_bytes;            /* a request body's cap; 0: API_MAX_BODY_BYTES */
};

#define API_COUNTERS(X) \
	X(requests,             "requests handled") \
	X(faults,               "requests answered with an error") \
	X(metrics_flushes,      "metrics lines written") \
	X(tx_metrics_flush_failed, "metrics lines that could not be written") \
	X(rx_requests_deprecated, "requests in a form Firecracker deprecates (answered with " \
				  "\"Deprecation: true\"; its deprecated_api.deprecated_http_api_calls)")

struct api_counters {
	API_COUNTERS(COUNTER_FIELD)
};
extern const struct counter_set api_counter_set;

struct api;

/* Serve opts->socket_path (if set) on @loop. NULL with @eb filled. */
struct api *api_start(struct event_loop *loop, const struct api_opts *opts, struct errbuf *eb);
void api_stop(struct api *api);
/*
 * Firecracker's --config-file at @path: its sections applied as the same
 * pre-boot requests (api_config_file.c), then InstanceStart. 0, or -errno
 * with why in @eb ("boot-source: ..."); requests that succeeded stay done.
 */
int api_apply_config_file(struct api *api, const char *path, struct errbuf *eb);
/* The VM's interfaces and metadata store, once it is built: a monitor that
 * waited for its configuration had none when its API started. Replaces
 * the ones given at start (loop thread). */
/* Open @path as the metrics file (PUT /metrics's metrics_path, from the
 * command line): 0, or -errno with why in @eb. */
int api_metrics_open_path(struct api *api, const char *path, struct errbuf *eb);
void api_attach_devices(struct api *api, const struct api_iface *ifaces, unsigned n,
			struct mmds *m);
/* One more object of counters in the metrics (a device the VM was built
 * with: "block_<drive_id>", "entropy"); @src->name must outlive the API.
 * 0, or -ENOSPC past API_MAX_SOURCES. */
int api_add_source(struct api *api, const struct api_counter_source *src);

/* The http_handler_fn and http_error_fn of the API (opaque: struct api *). */
void api_http_handler(void *opaque, const struct http_request *req, struct http_response *resp);
void api_http_error(void *opaque, int status, const char *message, struct http_response *resp);

/* The metrics as one JSON line (malloc'd, NUL terminated, ends in '\n'). */
char *api_metrics_line(struct api *api);
const struct api_counters *api_counters(const struct api *api);

#endif
