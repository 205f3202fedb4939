/* Snapshots of a whole machine (see machine_snapshot.h). */
#include "machine/machine_snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ids.h>

#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "machine/machine.h"
#include "vmm/ram_file.h"
#include "vmm/vm_dirty.h"
#include "vmm/vm_state.h"

/* --- "MACH": what machine the state is of ------------------------------------- */

static void save_info(struct machine *m, unsigned mem_layers, struct state_writer *w)
{
	state_begin(w, "MACH");
	state_put_u64(w, m->vm.mem_bytes);
	state_put_u32(w, m->vm.ncpus);
	state_put_bool(w, m->cfg->no_acpi);
	state_put_bool(w, m->cfg->compat);
	state_put_bool(w, m->cfg->mmds != NULL);
	state_put_u32(w, m->n_slots);
	for (unsigned i = 0; i < m->n_slots; i++)
		state_put_u32(w, m->slots[i].mmio.dev->ops->device_id);
	state_put_u32(w, mem_layers);
	state_end(w);
}

static bool parse_info(struct state_reader *r, struct machine_snapshot_info *info)
{
	struct state_reader sec;

	if (!state_section(r, "MACH", &sec))
		return false;
	info->mem_bytes = state_get_u64(&sec);
	info->cpus = state_get_u32(&sec);
	info->no_acpi = state_get_bool(&sec);
	info->compat = state_get_bool(&sec);
	info->mmds = state_get_bool(&sec);
	info->n_slots = state_get_u32(&sec);
	if (!sec.failed && (info->mem_bytes < (1u << 20) || info->mem_bytes % 4096))
		state_fail(&sec, "guest memory of %llu bytes", (unsigned long long)info->mem_bytes);
	if (!sec.failed && (!info->cpus || info->cpus > VM_MAX_VCPUS))
		state_fail(&sec, "%u vCPUs (1 to %u)", info->cpus, VM_MAX_VCPUS);
	if (!sec.failed && info->n_slots > MACHINE_SNAPSHOT_MAX_SLOTS)
		state_fail(&sec, "%u devices (at most %u)", info->n_slots, MACHINE_SNAPSHOT_MAX_SLOTS);
	for (unsigned i = 0; !sec.failed && i < info->n_slots; i++)
		info->device_ids[i] = state_get_u32(&sec);
	info->mem_layers = state_get_u32(&sec);
	if (!sec.failed && (!info->mem_layers || info->mem_layers > MACHINE_SNAPSHOT_MAX_LAYERS))
		state_fail(&sec, "memory of %u layers (1 to %u)", info->mem_layers,
			   MACHINE_SNAPSHOT_MAX_LAYERS);
	return state_section_done(r, &sec);
}

static const char *device_name(uint32_t id)
{
	switch (id) {
	case VIRTIO_ID_NET: return "virtio-net";
	case VIRTIO_ID_FS: return "virtio-fs";
	case VIRTIO_ID_RNG: return "virtio-rng";
	case VIRTIO_ID_VSOCK: return "virtio-vsock";
	case VIRTIO_ID_BLOCK: return "virtio-blk";
	case VIRTIO_ID_BALLOON: return "virtio-balloon";
	default: return "another device";
	}
}

/* The machine built here has the snapshot's devices, in its order. */
static int check_devices(struct machine *m, const struct machine_snapshot_info *info,
			 struct errbuf *eb)
{
	if (info->mmds != (m->cfg->mmds != NULL)) {
		errbuf_set(eb, "the snapshot's VM %s the metadata service (MMDS), this one %s",
			   info->mmds ? "has" : "does not have", info->mmds ? "does not" : "does");
		return -EINVAL;
	}
	if (m->n_slots != info->n_slots) {
		errbuf_set(eb, "the snapshot has %u virtio devices, this machine %u: restore with "
			   "the same --net, --fs, --vsock and --drive options it was taken with "
			   "(the balloon comes from the snapshot)",
			   info->n_slots,
			   m->n_slots);
		return -EINVAL;
	}
	for (unsigned i = 0; i < m->n_slots; i++) {
		uint32_t here = m->slots[i].mmio.dev->ops->device_id;
		if (here != info->device_ids[i]) {
			errbuf_set(eb, "device %u is %s in the snapshot, %s here: the devices must "
				   "come in the order they had", i, device_name(info->device_ids[i]),
				   device_name(here));
			return -EINVAL;
		}
	}
	return 0;
}

/* What slot @i holds when the machine has @d's devices, in the order it
 * adds them: the nets, the shares, the entropy device, the vsock device,
 * the balloon, the drives. */
static uint32_t slot_device(const struct saved_devices *d, unsigned i)
{
	unsigned at = d->n_nets + d->n_fs;     /* the next one-of-a-kind device's slot */

	if (i < d->n_nets)
		return VIRTIO_ID_NET;
	if (i < at)
		return VIRTIO_ID_FS;
	if (d->has_entropy && i == at)
		return VIRTIO_ID_RNG;
	at += d->has_entropy ? 1 : 0;
	if (d->has_vsock && i == at)
		return VIRTIO_ID_VSOCK;
	at += d->has_vsock ? 1 : 0;
	if (d->has_balloon && i == at)
		return VIRTIO_ID_BALLOON;
	return VIRTIO_ID_BLOCK;
}

/* The balloon's first target fits the snapshot's guest memory, as PUT
 * /balloon checks it against the machine's. */
static bool balloon_fits(struct state_reader *r, const struct machine_snapshot_info *info,
			 const struct saved_devices *d)
{
	if (!d->has_balloon || (uint64_t)d->balloon.amount_mib << 20 <= info->mem_bytes)
		return true;
	return state_fail(r, "the balloon's amount_mib %u is beyond guest memory's %llu MiB",
			  d->balloon.amount_mib, (unsigned long long)(info->mem_bytes >> 20));
}

/* "DEVC" (and "DEVR") has what "MACH" says the slots hold. */
static bool devices_fit_slots(struct state_reader *r, const struct machine_snapshot_info *info,
			      const struct saved_devices *d)
{
	unsigned n_rng = d->has_entropy ? 1 : 0, n_vsock = d->has_vsock ? 1 : 0;
	unsigned n_balloon = d->has_balloon ? 1 : 0;

	if (d->n_nets + d->n_fs + n_rng + n_vsock + n_balloon + d->n_drives != info->n_slots)
		return state_fail(r, "%u interfaces, %u shares, %u entropy devices, %u vsock devices, "
				  "%u balloons and %u drives for %u devices", d->n_nets, d->n_fs,
				  n_rng, n_vsock, n_balloon, d->n_drives, info->n_slots);
	for (unsigned i = 0; i < info->n_slots; i++) {
		uint32_t want = slot_device(d, i);
		if (info->device_ids[i] != want)
			return state_fail(r, "device %u is %s, its configuration that of %s", i,
					  device_name(info->device_ids[i]), device_name(want));
	}
	return balloon_fits(r, info, d);
}

/* --- snapshot --------------------------------------------------------------------- */

static void save_sections(struct machine *m, unsigned mem_layers, struct state_writer *w,
			  struct errbuf *eb, int *r)
{
	uint64_t sectors[MACHINE_MAX_DRIVES];

	for (unsigned i = 0; i < m->n_drives; i++)
		sectors[i] = m->drives[i].img.sectors;
	save_info(m, mem_layers, w);
	device_config_save(m->cfg, sectors, w);
	*r = vm_state_save(&m->vm, w, eb);
	if (*r < 0)
		return;
	serial_state_save(&m->serial, w);
	legacy_state_save(&m->legacy, w);
	for (unsigned i = 0; !*r && i < m->n_slots; i++)
		*r = virtio_mmio_state_save(&m->slots[i].mmio, w, eb);
	for (unsigned i = 0; !*r && i < m->n_nets; i++)
		*r = net_backend_state_save(m->nets[i].backend, w, eb);
	if (!*r && m->cfg->mmds)
		mmds_state_save(m->cfg->mmds, w);
}

/* How many layers the snapshot's memory will have; a Diff must have a
 * chain to go on (machine_snapshot.h). 0 or -EINVAL with why. */
static int count_layers(const struct machine *m, enum machine_snapshot_type type,
			unsigned *layers, struct errbuf *eb)
{
	*layers = 1;
	if (type == MACHINE_SNAPSHOT_FULL)
		return 0;
	if (!m->vm.track_dirty) {
		errbuf_set(eb, "a Diff snapshot saves the pages written since the last one, which "
			   "only dirty page tracking knows: start kvmini run with --track-dirty-pages");
		return -EINVAL;
	}
	if (!m->mem_layers) {
		errbuf_set(eb, "a Diff snapshot goes on top of an earlier snapshot, and this VM has "
			   "neither taken one nor been restored from one: take a Full snapshot first");
		return -EINVAL;
	}
	if (m->mem_layers >= MACHINE_SNAPSHOT_MAX_LAYERS) {
		errbuf_set(eb, "the memory has %u layers already (a Full and %u Diffs), the most "
			   "a restore maps: take a Full snapshot", m->mem_layers, m->mem_layers - 1);
		return -EINVAL;
	}
	*layers = m->mem_layers + 1;
	return 0;
}

/* The pages written since the last snapshot, to @path; given back to the
 * log when the file cannot be written, so the next Diff still has them. */
static int save_diff(struct machine *m, const char *path, struct ram_file_stats *mem,
		     struct errbuf *eb)
{
	struct vm_dirty d;
	int r = vm_dirty_take(&m->vm, &d);

	if (r < 0) {
		errbuf_set(eb, "reading the dirty page logs: %s", strerror(-r));
		return r;
	}
	r = ram_file_save_diff(&m->vm.mem, path, (const uint64_t *const *)d.bits, mem, eb);
	if (r < 0)
		vm_dirty_give_back(&m->vm, &d);
	vm_dirty_free(&d);
	return r;
}

static int save_memory(struct machine *m, const struct machine_snapshot_req *req,
		       struct ram_file_stats *mem, struct errbuf *eb)
{
	if (req->type == MACHINE_SNAPSHOT_DIFF)
		return save_diff(m, req->mem_path, mem, eb);
	return ram_file_save(&m->vm.mem, req->mem_path, mem, eb);
}

/* A snapshot was taken: the next Diff goes on top of it. After a Full,
 * the logs start over (a Diff before it saved and cleared them). */
static void chain_on(struct machine *m, enum machine_snapshot_type type, unsigned layers)
{
	if (!m->vm.track_dirty)
		return;
	m->mem_layers = layers;
	if (type == MACHINE_SNAPSHOT_FULL && vm_dirty_clear(&m->vm) < 0) {
		/* The image is good; only a Diff over it is not possible. */
		m->mem_layers = 0;
		log_warn("snapshot: the dirty page logs did not clear: a Diff needs a new Full "
			 "snapshot first");
	}
}

int machine_snapshot(struct machine *m, const struct machine_snapshot_req *req,
		     struct machine_snapshot_stats *st, struct errbuf *eb)
{
	uint64_t start = clock_now_ns();
	struct state_writer w;
	struct ram_file_stats mem;
	unsigned layers;

	*st = (struct machine_snapshot_stats){ 0 };
	if (!m->paused) {
		errbuf_set(eb, "the VM must be paused first");
		return -EAGAIN;
	}
	int r = count_layers(m, req->type, &layers, eb);
	if (r < 0)
		return r;
	state_writer_init(&w);
	save_sections(m, layers, &w, eb, &r);
	if (!r)
		r = state_file_write(req->state_path, &w, eb);
	st->state_bytes = w.len;
	state_writer_free(&w);
	if (!r)
		r = save_memory(m, req, &mem, eb);
	if (!r) {
		st->mem_bytes = mem.bytes;
		st->mem_written = mem.written;
		st->mem_layers = layers;
		chain_on(m, req->type, layers);
	}
	st->ns = clock_now_ns() - start;
	return r;
}

/* --- restore ------------------------------------------------------------------------ */

int machine_restore_open(struct machine_restore *rs, const char *path, struct errbuf *eb)
{
	const uint8_t *payload;
	size_t len;

	memset(rs, 0, sizeof(*rs));
	int r = state_file_read(path, &rs->data, &payload, &len, eb);
	if (r < 0)
		return r;
	state_reader_init(&rs->r, payload, len, &rs->eb);
	if (!parse_info(&rs->r, &rs->info) || !device_config_load(&rs->r, &rs->devices) ||
	    !devices_fit_slots(&rs->r, &rs->info, &rs->devices)) {
		errbuf_set(eb, "%s: %s", path, rs->eb.msg);
		machine_restore_close(rs);
		return -EINVAL;
	}
	return 0;
}

void machine_restore_close(struct machine_restore *rs)
{
	free(rs->data);
	rs->data = NULL;
}

static bool load_sections(struct machine *m, struct machine_restore *rs)
{
	struct state_reader *r = &rs->r;

	if (vm_state_load(&m->vm, r, &rs->eb) < 0)
		return false;
	if (serial_state_load(&m->serial, r) < 0 || legacy_state_load(&m->legacy, r) < 0)
		return false;
	for (unsigned i = 0; i < m->n_slots; i++)
		if (virtio_mmio_state_load(&m->slots[i].mmio, r) < 0)
			return false;
	for (unsigned i = 0; i < m->n_nets; i++)
		if (!net_backend_state_load(m->nets[i].backend, r))
			return false;
	if (m->cfg->mmds && !mmds_state_load(m->cfg->mmds, r))
		return false;
	return state_at_end(r);
}

int machine_restore_load(struct machine *m, struct machine_restore *rs, struct errbuf *eb)
{
	int r = check_devices(m, &rs->info, eb);

	if (r < 0)
		return r;
	if (!load_sections(m, rs)) {
		errbuf_set(eb, "%s", rs->eb.msg[0] ? rs->eb.msg : "the state does not load");
		return -EINVAL;
	}
	m->restored = true;
	/* A Diff from here goes on top of the layers restored. */
	m->mem_layers = m->vm.track_dirty ? rs->info.mem_layers : 0;
	return 0;
}
