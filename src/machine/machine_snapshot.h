/*
 * Snapshots of a whole machine: its state file (core/state_io.h) and its
 * memory file (vmm/ram_file.h), and a new machine built from them.
 *
 * The state file is, in this order: "MACH" (what machine this is: memory
 * size, vCPUs, ACPI, compat, each virtio-mmio slot's device type, and how
 * many layers its memory has), "DEVC" (how the host opened each device:
 * device_config_state.h; with "DEVV", "DEVL" and "DEVB" the vsock device,
 * the balloon and the drives, whose images a restore reopens by path), the
 * VM's in-kernel state and every vCPU (vmm/vm_state.h), the UART and the
 * legacy ports, then each slot's transport and device, each net
 * interface's backend (libslirp's state for "user"), and the metadata
 * service's store and token key when it has one. A restore builds
 * the machine the same way a boot does, from a configuration with the same
 * devices (their backends are opened anew: a tap by its name, a share by
 * its directory, a drive by its image's path; a vsock device has no
 * connection and tells the guest so at resume), maps the memory file instead of loading a kernel, and
 * loads every section onto what it built; any section that does not fit
 * that machine ends the restore before a vCPU runs.
 *
 * Memory layers: a Full snapshot's memory is one file (layer 1). A Diff
 * snapshot's is the memory below it plus one file of the pages written
 * since (vmm/ram_file.h): a Diff after k layers has k + 1, and a restore
 * maps all of them, Full first. "Below it" is the last snapshot this
 * process took, or the memory it was restored from; with neither (a
 * fresh boot: there is no file to layer on) a Diff is refused, as it is
 * without dirty tracking (machine_config.track_dirty_pages), which is
 * what knows the written pages. A Full snapshot starts a new chain.
 *
 * What a clone (a second VM from one snapshot) must change is what the
 * host sees: its tap (each VM needs its own) and MAC; the configuration of
 * the restoring process gives both (see README "Snapshots").
 *
 * Threads: the machine's loop thread, with the VM paused (snapshot) or not
 * yet started (restore).
 */
#ifndef KVMINI_MACHINE_MACHINE_SNAPSHOT_H
#define KVMINI_MACHINE_MACHINE_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "core/state_io.h"
#include "machine/device_config_state.h"

struct machine;

enum machine_snapshot_type {
	MACHINE_SNAPSHOT_FULL,
	MACHINE_SNAPSHOT_DIFF,
};

struct machine_snapshot_req {
	enum machine_snapshot_type type;
	const char *state_path;
	const char *mem_path;
};

struct machine_snapshot_stats {
	uint64_t state_bytes;        /* the state file's payload */
	uint64_t mem_bytes;          /* the memory image: all of RAM */
	uint64_t mem_written;        /* of which written (Full: pages not all zero; Diff: dirty) */
	unsigned mem_layers;         /* the memory's layers, this file the last */
	uint64_t ns;                 /* time taken */
};

/*
 * Write the paused machine's state to req->state_path and its RAM (Full)
 * or the RAM written since the last snapshot (Diff) to req->mem_path.
 * -EAGAIN when the VM is not paused (the state would move under the
 * writer), -EINVAL for a Diff with nothing to go on (see above, with
 * why), else 0 or -errno with why in @eb.
 */
int machine_snapshot(struct machine *m, const struct machine_snapshot_req *req,
		     struct machine_snapshot_stats *st, struct errbuf *eb);

/* The machine a state file describes ("MACH"), read before building it. */
#define MACHINE_SNAPSHOT_MAX_SLOTS 32u
/* Most memory layers: a Full image and 15 Diffs (each is a mapping per
 * data range at restore; a long chain wants a new Full snapshot). */
#define MACHINE_SNAPSHOT_MAX_LAYERS 16u

struct machine_snapshot_info {
	uint64_t mem_bytes;
	unsigned cpus;
	bool no_acpi;
	bool compat;
	bool mmds;                   /* the metadata service ("MMDS" follows the devices) */
	unsigned n_slots;
	uint32_t device_ids[MACHINE_SNAPSHOT_MAX_SLOTS];   /* VIRTIO_ID_* per slot */
	unsigned mem_layers;         /* memory files to map, Full first: 1..MAX_LAYERS */
};

/* An opened state file: the sections after "MACH" and "DEVC", not yet
 * loaded. */
struct machine_restore {
	uint8_t *data;               /* the whole file */
	struct state_reader r;       /* positioned after "DEVC" */
	struct errbuf eb;            /* the reader's failures */
	struct machine_snapshot_info info;
	/* How the snapshot's machine opened its devices: a restore told
	 * nothing else builds these (device_config_apply), a clone's
	 * overrides on top. */
	struct saved_devices devices;
};

/* Read and check @path's header, "MACH" and "DEVC". 0 or -errno with why. */
int machine_restore_open(struct machine_restore *rs, const char *path, struct errbuf *eb);
void machine_restore_close(struct machine_restore *rs);

/*
 * Load every section onto @m, built (machine_build) from a configuration
 * that matches rs->info with the snapshot's rs->info.mem_layers memory
 * files as its mem_files;
 * before machine_run, which then starts the devices and vCPUs where they
 * were. 0 or -errno with why.
 */
int machine_restore_load(struct machine *m, struct machine_restore *rs, struct errbuf *eb);

#endif
