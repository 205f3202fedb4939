/*
 * libFuzzer target: the snapshot state loader's parsers, the part a state
 * file reaches before anything is applied: the header check
 * (core/state_io.c) on the input as a file, and, on the same bytes as a
 * payload of sections, the device configuration's (machine/
 * device_config_state.c), the chips' parser, the vCPU parser and the whole
 * VM's (vmm/vm_state.c, vmm/vcpu_state.c) for a VM of one vCPU on a host
 * with 4 KiB of XSAVE and XCRs; when the input is a whole valid file, its
 * payload goes through the same parsers too.
 *
 * Checked besides ASan/UBSan: a failure says why; a success consumed whole
 * sections (the reader stands at a section boundary it can account for)
 * and writing the parsed state back gives exactly the bytes parsed: the
 * format has one encoding, so nothing was read that is not kept.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/state_io.h"
#include "machine/device_config_state.h"
#include "vmm/vcpu_state.h"
#include "vmm/vm_state.h"

static const struct vcpu_state_caps caps = { .xsave_size = sizeof(struct kvm_xsave), .xcrs = true };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_header(const uint8_t *data, size_t size)
{
	struct errbuf eb = { 0 };
	const uint8_t *payload;
	size_t len;

	if (state_check_header(data, size, &payload, &len, &eb) < 0) {
		if (!eb.msg[0])
			abort();
		return;
	}
	if (payload != data + STATE_HEADER_SIZE || len != size - STATE_HEADER_SIZE)
		abort();
}

/* What a success wrote back must be the bytes from @from to where @r is. */
static void check_rewrite(const struct state_reader *r, size_t from, const struct state_writer *w)
{
	if (w->failed || w->len != r->off - from || memcmp(w->buf, r->p + from, w->len))
		abort();
}

static void parse_chip(const uint8_t *data, size_t size)
{
	struct errbuf eb = { 0 };
	struct state_reader r;
	struct state_writer w;
	struct vm_chip_state st;

	state_reader_init(&r, data, size, &eb);
	if (vm_chip_state_parse(&r, &st) < 0) {
		if (!r.failed || !eb.msg[0])
			abort();
		return;
	}
	state_writer_init(&w);
	vm_chip_state_write(&st, &w);
	check_rewrite(&r, 0, &w);
	state_writer_free(&w);
}

/* Parse a vCPU section from where @r stands, as vCPU 0's. */
static void parse_vcpu(struct state_reader *r, const struct errbuf *eb)
{
	size_t from = r->off;
	struct vcpu_state st;
	struct state_writer w;

	if (vcpu_state_parse(r, &caps, 0, &st) < 0) {
		if (!r->failed || !eb->msg[0])
			abort();
		vcpu_state_free(&st);
		return;
	}
	state_writer_init(&w);
	vcpu_state_write(&st, &w);
	check_rewrite(r, from, &w);
	state_writer_free(&w);
	vcpu_state_free(&st);
}

/* The whole VM's sections (chips, count, one vCPU) as vm_state_load reads them. */
static void parse_vm(const uint8_t *data, size_t size)
{
	struct errbuf eb = { 0 };
	struct state_reader r;
	struct state_writer w;
	struct vm_saved_state saved;

	state_reader_init(&r, data, size, &eb);
	if (vm_state_parse(&r, &caps, 1, &saved) < 0) {
		if (!r.failed || !eb.msg[0])
			abort();
		vm_saved_state_free(&saved);
		return;
	}
	state_writer_init(&w);
	vm_chip_state_write(&saved.chip, &w);
	state_begin(&w, "NCPU");
	state_put_u32(&w, 1);
	state_end(&w);
	vcpu_state_write(&saved.cpus[0], &w);
	check_rewrite(&r, 0, &w);
	state_writer_free(&w);
	vm_saved_state_free(&saved);
}

/* The drives, the vsock device and the balloon of @d into @cfg, as the
 * front door's lists give them to a restored machine (cli/run_restore.c). */
static void apply_drives_vsock(const struct saved_devices *d, struct machine_config *cfg,
			       uint64_t *sectors)
{
	static struct machine_drive_config drives[MACHINE_MAX_DRIVES];
	static struct virtio_vsock_opts vsock;
	static struct virtio_balloon_opts balloon;

	for (unsigned i = 0; i < d->n_drives; i++) {
		const struct saved_drive *sd = &d->drives[i];
		drives[i] = (struct machine_drive_config){ .id = sd->id, .path = sd->path,
			.read_only = sd->read_only, .root = sd->root, .partuuid = sd->partuuid,
			.limit = sd->limit };
		sectors[i] = sd->sectors;
	}
	cfg->drives = drives;
	cfg->n_drives = d->n_drives;
	vsock = (struct virtio_vsock_opts){ .guest_cid = d->vsock_cid, .uds_path = d->vsock_path };
	cfg->vsock = d->has_vsock ? &vsock : NULL;
	balloon = d->balloon;
	cfg->balloon = d->has_balloon ? &balloon : NULL;
}

/* Load device sections from @r and write back what they become through
 * the machine configuration; false when the load refused them (with why). */
static bool devices_rewrite(struct state_reader *r, struct state_writer *w)
{
	static struct saved_devices d;
	uint64_t sectors[MACHINE_MAX_DRIVES];
	struct machine_config cfg = { 0 };

	if (!device_config_load(r, &d)) {
		if (!r->failed || !r->eb->msg[0])
			abort();
		return false;
	}
	device_config_apply(&d, &cfg);
	apply_drives_vsock(&d, &cfg, sectors);
	state_writer_init(w);
	device_config_save(&cfg, sectors, w);
	return true;
}

/* "DEVC" (and "DEVR", "DEVV", "DEVL", "DEVB", "DEVX"): what parses writes
 * back the same through the machine configuration it becomes. A section
 * of an older kvmini's (DEVC without the shares' dev-nodes flags) is
 * written in today's form instead: that form must then read back and
 * write the same bytes again. */
static void parse_devices(const uint8_t *data, size_t size)
{
	struct errbuf eb = { 0 }, eb2 = { 0 };
	struct state_reader r, r2;
	struct state_writer w, w2;

	state_reader_init(&r, data, size, &eb);
	if (!devices_rewrite(&r, &w))
		return;
	if (w.failed)
		abort();
	if (w.len != r.off || memcmp(w.buf, r.p, w.len)) {
		state_reader_init(&r2, w.buf, w.len, &eb2);
		if (!devices_rewrite(&r2, &w2))
			abort();
		check_rewrite(&r2, 0, &w2);
		state_writer_free(&w2);
	}
	state_writer_free(&w);
}

static void parse_payload(const uint8_t *data, size_t size)
{
	struct errbuf eb = { 0 };
	struct state_reader r;

	parse_devices(data, size);
	parse_chip(data, size);
	parse_vm(data, size);
	state_reader_init(&r, data, size, &eb);
	parse_vcpu(&r, &eb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errbuf eb = { 0 };
	const uint8_t *payload;
	size_t len;

	check_header(data, size);
	parse_payload(data, size);
	/* A whole file: its payload too. */
	if (state_check_header(data, size, &payload, &len, &eb) == 0)
		parse_payload(payload, len);
	return 0;
}
