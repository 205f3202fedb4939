/*
 * The "DEVC" section of a snapshot: how the host opened each device of
 * the machine (net: id, backend spec, configured MTU, MMDS on it; fs: the
 * shared directory, tag and the options that shape the share), in the
 * order the machine built them (nets first, then shares); then "DEVR",
 * the entropy device's rate limiter, when the machine has one (absent from
 * snapshots made before the device existed, and from those without it);
 * then "DEVV", the vsock device's CID and socket path, "DEVL", the
 * balloon's configuration (amount_mib, deflate_on_oom, the statistics
 * interval, as PUT /balloon gave them), and "DEVB", the
 * drives (id, image path, read-only, root, partuuid, rate limiter and the
 * image's size in sectors at the snapshot), each only when the machine has
 * them; last "DEVX", each share's DAX window size, when one has a window
 * (the window's mappings are in the share's own device section). A
 * restore reopens every drive's image at its path and refuses one
 * that is gone or of another size before anything is built
 * (Firecracker reopens drives by path too).
 *
 * What the guest sees of a device (MAC, MTU, features, queues) is in the
 * device's own section; this is what a restore needs to open the same
 * devices again when nothing else says (Firecracker's PUT /snapshot/load
 * gives only files), and what a clone changes on top (its tap, its MAC).
 */
#ifndef KVMINI_MACHINE_DEVICE_CONFIG_STATE_H
#define KVMINI_MACHINE_DEVICE_CONFIG_STATE_H

#include <limits.h>
#include <stdbool.h>

#include "core/state_io.h"
#include "machine/machine.h"
#include "vsock/vsock_uds.h"

/* Longest backend spec kept ("user:" options, "stream:" paths). */
#define DEVICE_CONFIG_SPEC_MAX 1024u
/* Longest drive id and partuuid (Firecracker's drive ids: 64). */
#define DEVICE_CONFIG_DRIVE_ID_MAX 64u

/* As the machine configuration takes them (arrays of configurations),
 * with the strings they point at. */
struct saved_devices {
	struct net_iface_config nets[MACHINE_MAX_NETS];   /* backend: net_backend[i] */
	char net_backend[MACHINE_MAX_NETS][DEVICE_CONFIG_SPEC_MAX];
	unsigned n_nets;
	/* share.dir and dev.tag point at fs_dir[i] and fs_tag[i]; what and
	 * counters_name are the caller's to fill. */
	struct machine_fs_config fs[MACHINE_MAX_FS];
	char fs_dir[MACHINE_MAX_FS][PATH_MAX];
	char fs_tag[MACHINE_MAX_FS][VIRTIO_FS_TAG_LEN + 1];
	unsigned n_fs;
	bool has_entropy;
	struct rate_limiter_config entropy;
	bool has_vsock;
	uint64_t vsock_cid;
	char vsock_path[VSOCK_UDS_PATH_MAX + 1];
	bool has_balloon;
	struct virtio_balloon_opts balloon;
	struct saved_drive {
		char id[DEVICE_CONFIG_DRIVE_ID_MAX + 1];
		char path[PATH_MAX];
		char partuuid[DEVICE_CONFIG_DRIVE_ID_MAX + 1];
		bool read_only, root;
		struct rate_limiter_config limit;
		uint64_t sectors;            /* the image's size when the snapshot was taken */
	} drives[MACHINE_MAX_DRIVES];
	unsigned n_drives;
};

/* Write "DEVC" (and "DEVR", "DEVV", "DEVL", "DEVB") for @cfg's devices;
 * @drive_sectors[i] is drive i's size now (NULL without drives). */
void device_config_save(const struct machine_config *cfg, const uint64_t *drive_sectors,
			struct state_writer *w);

/* Read "DEVC" (and "DEVR", "DEVV", "DEVL", "DEVB" when they follow, in that order)
 * into @out, checking every field (counts, ids, specs, paths,
 * tags, option ranges); false with why in @r. The MACs are left zero (the
 * devices' sections have them) and mac_given false. */
bool device_config_load(struct state_reader *r, struct saved_devices *out);

/* Point @cfg's nets, shares and entropy device at @d's (the drives, the
 * vsock device and the balloon go through the front door's own lists:
 * run_restore.c). */
void device_config_apply(struct saved_devices *d, struct machine_config *cfg);

/* A clone's change to interface @id: another tap (@tap: its name) and/or
 * MAC (@mac non-NULL). -ENOENT when no interface is called @id, -EINVAL
 * when @tap is given for an interface that is no tap or is not a valid
 * name; 0 otherwise. */
int device_config_override_net(struct saved_devices *d, const char *id, const char *tap,
			       const uint8_t *mac);

/* A clone's share @tag served from @dir instead (its own copy). -ENOENT
 * when no share has @tag, -EINVAL when @dir is not an absolute path that
 * fits; 0 otherwise. */
int device_config_override_fs(struct saved_devices *d, const char *tag, const char *dir);

/* Drive @i's image at its saved path, as the snapshot had it: it opens
 * (read-only as the drive was) and has the sectors it had. 0, or -errno
 * with why in @eb (the drive's id, the path, and what differs). */
int device_config_check_drive(const struct saved_devices *d, unsigned i, struct errbuf *eb);

#endif
