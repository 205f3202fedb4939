/*
 * The machine builder: a whole microVM (KVM, memory, vCPUs, serial console,
 * legacy ports, ACPI, and the virtio devices behind virtio-mmio) put
 * together from one configuration. `kvmini run` fills the configuration from
 * its command line; Firecracker's config file and pre-boot API calls will
 * fill the same struct.
 *
 * Threads: the one calling machine_run() runs the machine's event loop
 * (devices, console input, the stop request; an API started on machine_loop()
 * shares it, so its calls into the devices never race their queue work);
 * each vCPU has its own thread, its device accesses handed to the loop.
 */
#ifndef KVMINI_MACHINE_MACHINE_H
#define KVMINI_MACHINE_MACHINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "balloon/virtio_balloon.h"
#include "core/event_loop.h"
#include "fs/dax_window.h"
#include "fs/virtio_fs.h"
#include "machine/fs_share.h"
#include "machine/net_iface.h"
#include "mmds/mmds.h"
#include "blk/virtio_blk.h"
#include "rng/virtio_rng.h"
#include "vsock/virtio_vsock.h"
#include "vmm/acpi_pm.h"
#include "vmm/layout.h"
#include "vmm/legacy.h"
#include "vmm/serial.h"
#include "vmm/virtio_slot.h"
#include "vmm/vm.h"

#define MACHINE_MAX_NETS 8u
#define MACHINE_MAX_FS 4u
#define MACHINE_MAX_DRIVES 8u

/* One virtio-blk device on a raw image. */
struct machine_drive_config {
	const char *id;                   /* the drive's name: its serial (GET_ID) */
	const char *path;                 /* the image: a file or a block device */
	bool read_only;
	bool root;                        /* the root drive (first): kept for a restore */
	const char *partuuid;             /* the root's root=PARTUUID=, NULL or "": none */
	struct rate_limiter_config limit; /* all zero: none */
};

/* One virtio-fs device: the share and the device serving it. */
struct machine_fs_config {
	struct fs_share_config share;     /* share.dir: the host directory */
	struct virtio_fs_opts dev;        /* dev.tag: what the guest mounts */
	/* The share's names, in the front door's words: in the messages
	 * about it ("--fs /srv:data") and over its counters ("--fs data"). */
	const char *what;
	const char *counters_name;
};

struct machine_config {
	const char *kernel;               /* ELF vmlinux or bzImage */
	const char *initrd;               /* NULL: none */
	const char *cmdline;              /* the device entries are appended */
	uint64_t mem_bytes;
	unsigned cpus;
	bool compat;                      /* nested-PVM workarounds (vmm/compat/) */
	bool host_decompress;
	bool no_acpi;
	int console_in, console_out;      /* the serial console's descriptors */
	const struct net_iface_config *nets;
	unsigned n_nets;
	struct mmds *mmds;                /* the store the nets' MMDS answers from; not owned */
	const struct machine_fs_config *fs;
	unsigned n_fs;
	/* The entropy device (virtio-rng, after the nets and shares) with its
	 * limiter; NULL: none. */
	const struct rate_limiter_config *entropy;
	/* The vsock device (after the entropy device), NULL: none. */
	const struct virtio_vsock_opts *vsock;
	/* The balloon device (after the vsock device), NULL: none. */
	const struct virtio_balloon_opts *balloon;
	/* The drives, after every other device, in this order: the guest names
	 * them vda, vdb, ... as it finds them, so a root drive goes first. */
	const struct machine_drive_config *drives;
	unsigned n_drives;
	/* How messages name the settings, in the words of the front door that
	 * took them (the command line's options, a config file's keys): the
	 * machine serves them all, so it names none itself. */
	const char *cmdline_what;         /* "--cmdline" */
	struct net_iface_names net_names;
	/* Restore instead of boot: a snapshot's memory, its Full image then
	 * each Diff in order, mapped as guest RAM; no kernel is loaded, and
	 * machine_restore_load (machine_snapshot.h) loads the state before
	 * machine_run. */
	const char *const *mem_files;
	unsigned n_mem_files;
	/* Track dirty pages (vmm/vm_dirty.h): Diff snapshots become possible. */
	bool track_dirty_pages;
};

struct machine_fs {
	struct fs_share share;
	struct virtio_fs *dev;
	struct dax_window *dax;      /* its DAX window, or NULL */
};

struct machine {
	const struct machine_config *cfg;
	struct event_loop loop;
	bool loop_ready;
	struct vm vm;
	bool vm_tried;               /* vm_create was called: vm_join, vm_destroy are safe */
	struct serial serial;
	bool serial_ready;
	struct legacy_devices legacy;
	bool legacy_ready;
	struct acpi_pm acpi_pm;
	struct net_iface nets[MACHINE_MAX_NETS];
	unsigned n_nets;
	struct machine_fs fs[MACHINE_MAX_FS];
	unsigned n_fs;
	struct virtio_rng *rng;      /* the entropy device, when there is one */
	struct virtio_vsock *vsock;  /* the vsock device, when there is one */
	struct virtio_balloon *balloon;   /* the balloon device, when there is one */
	unsigned balloon_slot;       /* its slot (its transport's counters) */
	struct machine_drive {
		struct blk_image img;
		struct virtio_blk *dev;
	} drives[MACHINE_MAX_DRIVES];
	unsigned n_drives;
	struct vm_virtio_slot slots[LAYOUT_MMIO_MAX_DEVS];
	unsigned n_slots;
	struct event_source stop_src;
	bool running;                /* the vCPUs were started */
	bool paused;                 /* machine_pause .. machine_resume */
	bool restored;               /* machine_restore_load: the devices wait for the start */
	bool restore_held;           /* ... and still wait: started paused */
	/* Layers of the memory a Diff snapshot would go on top of: those of
	 * the last snapshot taken, or of the image restored; 0 when there is
	 * none (a boot, or tracking is off). machine_snapshot.c's. */
	unsigned mem_layers;
	char cmdline[LAYOUT_CMDLINE_MAX];
};

/*
 * Build everything @cfg describes and load the guest; the vCPUs do not run
 * yet. Signals must already be blocked (device workers inherit the mask).
 * 0 or -errno, logged; machine_destroy() undoes a partial build too.
 */
int machine_build(struct machine *m, const struct machine_config *cfg);
/* The machine's event loop alone, before there is a machine to build on
 * it (a monitor waiting for its configuration serves its API there);
 * machine_build makes it when this was not called. 0 or -errno, logged. */
int machine_init_loop(struct machine *m);
/* Start the devices and vCPUs of a built machine, or with @paused hold
 * both (the vCPUs parked before their first instruction, a restored
 * machine's devices not started) until machine_resume: a snapshot loaded
 * without resuming it. The caller runs the loop. 0 or -errno, logged. */
int machine_start(struct machine *m, bool paused);
/* machine_start, then run the event loop until something stops the VM
 * (vm.run_state says what and with which status). 0 or -errno, logged. */
int machine_run(struct machine *m);
/* Stop the devices' transports and join the vCPUs. */
void machine_stop(struct machine *m);

/* How long machine_pause waits for the vCPUs to reach a clean point. */
#define MACHINE_PAUSE_TIMEOUT_MS 5000

/*
 * Pause a running VM: every vCPU parked between two KVM_RUNs, then every
 * device held at a request boundary (virtio_device_pause): nothing moves
 * in guest memory until machine_resume. Kicks, frames in the tap or
 * socket and console input wait; interrupts owed are raised for the
 * irqchip to keep. 0 (also when already paused), -EAGAIN before the vCPUs
 * run, -ESHUTDOWN when the run is ending, -ETIMEDOUT (logged) when a vCPU
 * did not park in time (the VM runs on). Loop thread.
 */
int machine_pause(struct machine *m);
/* Drive @i (in machine_config.drives' order) served from @path from now on
 * (virtio_blk_swap_image): opened with the drive's read-only setting and
 * serial, the old image closed once the request in flight is answered, the
 * guest told the new capacity. Loop thread. 0, or -errno with why in @eb
 * (-ENODEV for no drive @i): then the old image serves on. */
int machine_replace_drive(struct machine *m, unsigned i, const char *path, struct errbuf *eb);
/* Drive @i's rate limiter from now on (virtio_blk_set_limit). 0, -ENODEV,
 * or -EINVAL for a limit out of range. */
int machine_set_drive_limit(struct machine *m, unsigned i, const struct rate_limiter_config *cfg);
/* Devices first, then the vCPUs. 0, also when not paused. Loop thread. */
int machine_resume(struct machine *m);
void machine_destroy(struct machine *m);

/* Every device's and transport's counters, then the VM's (loop thread). */
void machine_dump_counters(struct machine *m, FILE *out);

#endif
