/* Snapshots of a whole machine (see machine_snapshot.h). */
#include "machine/machine_snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "machine/machine.h"
#include "vmm/ram_file.h"
#include "vmm/vm_state.h"

/* --- "MACH": what machine the state is of ------------------------------------- */

static void save_info(struct machine *m, struct state_writer *w)
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
	return state_section_done(r, &sec);
}

static const char *device_name(uint32_t id)
{
	switch (id) {
	case 1: return "virtio-net";
	case 26: return "virtio-fs";
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
			   "the same --net and --fs options it was taken with", info->n_slots,
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

/* --- snapshot --------------------------------------------------------------------- */

static void save_sections(struct machine *m, struct state_writer *w, struct errbuf *eb, int *r)
{
	save_info(m, w);
	*r = vm_state_save(&m->vm, w, eb);
	if (*r < 0)
		return;
	serial_state_save(&m->serial, w);
	legacy_state_save(&m->legacy, w);
	for (unsigned i = 0; !*r && i < m->n_slots; i++)
		*r = virtio_mmio_state_save(&m->slots[i].mmio, w, eb);
	if (!*r && m->cfg->mmds)
		mmds_state_save(m->cfg->mmds, w);
}

int machine_snapshot(struct machine *m, const struct machine_snapshot_req *req,
		     struct machine_snapshot_stats *st, struct errbuf *eb)
{
	uint64_t start = clock_now_ns();
	struct state_writer w;
	struct ram_file_stats mem;
	int r = 0;

	*st = (struct machine_snapshot_stats){ 0 };
	if (!m->paused) {
		errbuf_set(eb, "the VM must be paused first");
		return -EAGAIN;
	}
	if (req->type == MACHINE_SNAPSHOT_DIFF) {
		errbuf_set(eb, "Diff snapshots are not supported yet: take a Full one");
		return -EOPNOTSUPP;
	}
	state_writer_init(&w);
	save_sections(m, &w, eb, &r);
	if (!r)
		r = state_file_write(req->state_path, &w, eb);
	st->state_bytes = w.len;
	state_writer_free(&w);
	if (!r)
		r = ram_file_save(&m->vm.mem, req->mem_path, &mem, eb);
	if (!r) {
		st->mem_bytes = mem.bytes;
		st->mem_written = mem.written;
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
	if (!parse_info(&rs->r, &rs->info)) {
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
	return 0;
}
