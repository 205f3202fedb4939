/* The machine builder (see machine.h). */
#include "machine/machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "core/atomics.h"
#include "core/clock.h"
#include "core/compiler.h"
#include "core/log.h"
#include "vmm/boot.h"
#include "vmm/vm_counters.h"

/* --- devices ------------------------------------------------------------------ */

static int add_slot(struct machine *m, struct virtio_device *dev)
{
	int r = vm_virtio_slot_init(&m->slots[m->n_slots], &m->vm, &m->loop, dev, m->n_slots);
	if (r < 0) {
		log_err("%s: cannot attach to the VM: %s", dev->ops->name, strerror(-r));
		return r;
	}
	m->n_slots++;
	return 0;
}

/* A net interface (backend behind MMDS where it answers, the virtio-net
 * device with its limits) and its slot. */
static int add_net(struct machine *m, const struct net_iface_config *cfg)
{
	int r = net_iface_open(&m->nets[m->n_nets], cfg, &m->loop, m->cfg->mmds,
			       &m->cfg->net_names);
	if (r < 0)
		return r;
	return add_slot(m, &m->nets[m->n_nets++].dev->vdev);
}

/* The share's DAX window: reserved, placed above RAM, given to the device. */
static int add_dax(struct machine *m, struct machine_fs *f, uint64_t bytes, const char *what)
{
	uint64_t gpa;
	int r;

	f->dax = dax_window_new(bytes, &r);
	if (!f->dax) {
		log_err("%s: DAX window: %s", what, strerror(-r));
		return r;
	}
	r = vm_add_device_memory(&m->vm, f->dax->host, bytes, &gpa);
	if (r < 0) {
		log_err("%s: DAX window: cannot give it to the VM: %s", what, strerror(-r));
		return r;
	}
	virtio_fs_set_dax(f->dev, &f->dax->fuse, gpa);
	log_info("%s: DAX window of %llu MiB at 0x%llx", what,
		 (unsigned long long)(bytes >> 20), (unsigned long long)gpa);
	return 0;
}

/* A share (backend, FUSE server, watcher), a virtio-fs device serving it,
 * its slot. */
static int add_fs(struct machine *m, const struct machine_fs_config *cfg)
{
	struct machine_fs *f = &m->fs[m->n_fs];
	struct virtio_fs_opts opts = cfg->dev;
	int r = fs_share_open(&f->share, &cfg->share, cfg->what);

	if (r < 0)
		return r;
	m->n_fs++;
	/* The notification queue only when there is something to send. */
	opts.offer_notification = f->share.watch != NULL;
	f->dev = calloc(1, sizeof(*f->dev));
	r = f->dev ? virtio_fs_init(f->dev, &opts, f->share.server, &m->loop) : -ENOMEM;
	if (r < 0) {
		log_err("%s: virtio-fs device: %s", cfg->what, strerror(-r));
		free(f->dev);
		f->dev = NULL;
		return r;
	}
	if (opts.dax_bytes && (r = add_dax(m, f, opts.dax_bytes, cfg->what)) < 0)
		return r;
	/* Signals are blocked (inherited); the device is the server's transport. */
	fs_share_start_watch(&f->share, cfg->what);
	return add_slot(m, &f->dev->vdev);
}

/* The entropy device (virtio-rng) with its limiter, and its slot. */
static int add_rng(struct machine *m, const struct rate_limiter_config *limit)
{
	m->rng = calloc(1, sizeof(*m->rng));
	int r = m->rng ? virtio_rng_init(m->rng, &m->loop, limit) : -ENOMEM;

	if (r < 0) {
		log_err("entropy device: %s", r == -EINVAL ? "rate limiter out of range" : strerror(-r));
		free(m->rng);
		m->rng = NULL;
		return r;
	}
	log_info("entropy: virtio-rng, device %u%s", m->n_slots,
		 rate_limiter_active(&m->rng->limiter) ? ", rate-limited" : "");
	return add_slot(m, &m->rng->vdev);
}

/* The vsock device (its socket made, or taken from the configuration) and
 * its slot. */
static int add_vsock(struct machine *m, const struct virtio_vsock_opts *opts)
{
	struct errbuf eb = { 0 };

	m->vsock = calloc(1, sizeof(*m->vsock));
	int r = m->vsock ? virtio_vsock_init(m->vsock, &m->loop, opts, &eb) : -ENOMEM;
	if (r < 0) {
		log_err("vsock: %s", m->vsock ? eb.msg : strerror(-r));
		free(m->vsock);
		m->vsock = NULL;
		return r;
	}
	log_info("vsock: guest CID %llu, socket %s, device %u",
		 (unsigned long long)opts->guest_cid, opts->uds_path, m->n_slots);
	return add_slot(m, &m->vsock->vdev);
}

/* The balloon device and its slot. */
static int add_balloon(struct machine *m, const struct virtio_balloon_opts *opts)
{
	m->balloon = calloc(1, sizeof(*m->balloon));
	int r = m->balloon ? virtio_balloon_init(m->balloon, &m->loop, opts, m->cfg->mem_bytes)
			   : -ENOMEM;
	if (r < 0) {
		log_err("balloon: %s", r == -EINVAL ? "amount_mib above guest memory" : strerror(-r));
		free(m->balloon);
		m->balloon = NULL;
		return r;
	}
	log_info("balloon: target %u MiB%s, statistics %s, device %u", opts->amount_mib,
		 opts->deflate_on_oom ? ", deflate on OOM" : "",
		 opts->stats_polling_interval_s ? "polled" : "off", m->n_slots);
	m->balloon_slot = m->n_slots;
	return add_slot(m, &m->balloon->vdev);
}

/* A drive: its image opened, a virtio-blk device on it, its slot. */
static int add_drive(struct machine *m, const struct machine_drive_config *cfg)
{
	struct machine_drive *d = &m->drives[m->n_drives];
	struct errbuf eb = { 0 };
	int r = blk_image_open(&d->img, cfg->path, cfg->read_only, cfg->id, &eb);

	if (r < 0) {
		log_err("drive %s: %s", cfg->id, eb.msg);
		return r;
	}
	m->n_drives++;
	d->dev = calloc(1, sizeof(*d->dev));
	r = d->dev ? virtio_blk_init(d->dev, &d->img, &m->loop) : -ENOMEM;
	if (r < 0) {
		log_err("drive %s: virtio-blk device: %s", cfg->id, strerror(-r));
		free(d->dev);
		d->dev = NULL;
		return r;
	}
	r = virtio_blk_set_limit(d->dev, &cfg->limit);
	if (r < 0) {
		log_err("drive %s: rate limiter out of range", cfg->id);
		return r;
	}
	log_info("drive %s: %s, %llu sectors%s%s, device %u", cfg->id, cfg->path,
		 (unsigned long long)d->img.sectors, cfg->read_only ? ", read-only" : "",
		 rate_limiter_active(&d->dev->limiter) ? ", rate-limited" : "", m->n_slots);
	return add_slot(m, &d->dev->vdev);
}

int machine_replace_drive(struct machine *m, unsigned i, const char *path, struct errbuf *eb)
{
	struct machine_drive *d = i < m->n_drives ? &m->drives[i] : NULL;
	char serial[BLK_SERIAL_LEN + 1] = { 0 };
	struct blk_image next;

	if (!d || !d->dev) {
		errbuf_set(eb, "no drive %u", i);
		return -ENODEV;
	}
	memcpy(serial, d->img.serial, BLK_SERIAL_LEN);
	int r = blk_image_open(&next, path, d->img.read_only, serial, eb);
	if (r < 0)
		return r;
	r = virtio_blk_swap_image(d->dev, &next);
	blk_image_close(&next);      /* the old image, or the new one refused */
	if (r < 0) {
		errbuf_set(eb, "%s: the drive's read-only setting cannot change", path);
		return r;
	}
	return 0;
}

int machine_set_drive_limit(struct machine *m, unsigned i, const struct rate_limiter_config *cfg)
{
	if (i >= m->n_drives || !m->drives[i].dev)
		return -ENODEV;
	return virtio_blk_set_limit(m->drives[i].dev, cfg);
}

static int add_devices(struct machine *m)
{
	const struct machine_config *cfg = m->cfg;
	unsigned n_single = (cfg->entropy ? 1 : 0) + (cfg->vsock ? 1 : 0) + (cfg->balloon ? 1 : 0);
	int r = 0;

	if (cfg->n_nets > MACHINE_MAX_NETS || cfg->n_fs > MACHINE_MAX_FS ||
	    cfg->n_drives > MACHINE_MAX_DRIVES ||
	    cfg->n_nets + cfg->n_fs + n_single + cfg->n_drives > LAYOUT_MMIO_MAX_DEVS) {
		log_err("too many devices (at most %u nets and %u shares)", MACHINE_MAX_NETS,
			MACHINE_MAX_FS);
		return -E2BIG;
	}
	for (unsigned i = 0; !r && i < cfg->n_nets; i++)
		r = add_net(m, &cfg->nets[i]);
	for (unsigned i = 0; !r && i < cfg->n_fs; i++)
		r = add_fs(m, &cfg->fs[i]);
	if (!r && cfg->entropy)
		r = add_rng(m, cfg->entropy);
	if (!r && cfg->vsock)
		r = add_vsock(m, cfg->vsock);
	if (!r && cfg->balloon)
		r = add_balloon(m, cfg->balloon);
	for (unsigned i = 0; !r && i < cfg->n_drives; i++)
		r = add_drive(m, &cfg->drives[i]);
	return r;
}

static void destroy_devices(struct machine *m)
{
	/* The watchers first: they send through the devices. Then the slots:
	 * their reset stops each device's queues (virtio-fs waits for requests
	 * in flight) before the devices go. */
	for (unsigned i = 0; i < m->n_fs; i++)
		fs_share_stop_watch(&m->fs[i].share);
	for (unsigned i = 0; i < m->n_slots; i++)
		vm_virtio_slot_destroy(&m->slots[i]);
	for (unsigned i = 0; i < m->n_nets; i++)
		net_iface_close(&m->nets[i]);
	for (unsigned i = 0; i < m->n_fs; i++) {
		struct machine_fs *f = &m->fs[i];
		if (f->dev)
			virtio_fs_destroy(f->dev);
		free(f->dev);
		fs_share_close(&f->share);
		/* Its KVM slot stays until the VM goes: an unmapped window is
		 * only an empty one to KVM (the guest's vCPUs are stopped). */
		dax_window_free(f->dax);
		f->dax = NULL;
	}
	if (m->rng) {
		virtio_rng_destroy(m->rng);
		free(m->rng);
		m->rng = NULL;
	}
	if (m->vsock) {
		virtio_vsock_destroy(m->vsock);
		free(m->vsock);
		m->vsock = NULL;
	}
	if (m->balloon) {
		virtio_balloon_destroy(m->balloon);
		free(m->balloon);
		m->balloon = NULL;
	}
	for (unsigned i = 0; i < m->n_drives; i++) {
		struct machine_drive *d = &m->drives[i];
		if (d->dev)
			virtio_blk_destroy(d->dev);
		free(d->dev);
		blk_image_close(&d->img);
	}
	m->n_slots = m->n_nets = m->n_fs = m->n_drives = 0;
}

/* --- counters ----------------------------------------------------------------- */

/* The VM's own counters (vmm/vm_counters.h), from the fields that keep them. */
static void dump_vm_counters(struct machine *m, FILE *out)
{
	const struct counter_sink *sink = COUNTER_SINK_FILE(out);
	const struct vm_console_counters con = {
		.tx_serial_bytes = m->serial.tx_bytes,
		.rx_serial_bytes = m->serial.rx_bytes,
	};

	fputs("kvmini: counters of the console\n", out);
	counters_visit(&vm_console_counter_set, &con, "", sink);
	/* Why --boot-timing's "userspace" may be missing: a marker of another
	 * value or width was written. */
	if (m->legacy_ready) {
		const struct vm_legacy_counters leg = {
			.rx_boot_marker_ignored = load_relaxed(&m->legacy.boot_marker_ignored),
		};
		fputs("kvmini: counters of the legacy ports\n", out);
		counters_visit(&vm_legacy_counter_set, &leg, "", sink);
	}
	compat_dump_counters(&m->vm.compat, out);
}

void machine_dump_counters(struct machine *m, FILE *out)
{
	const struct counter_sink *sink = COUNTER_SINK_FILE(out);

	for (unsigned i = 0; i < m->n_slots; i++) {
		struct virtio_device *dev = m->slots[i].mmio.dev;
		fprintf(out, "kvmini: counters of device %u (%s)\n", i, dev->ops->name);
		if (dev->ops->visit_counters)
			dev->ops->visit_counters(dev, sink);
		virtio_mmio_visit_counters(&m->slots[i].mmio, sink);
	}
	for (unsigned i = 0; i < m->n_fs; i++)
		if (m->fs[i].share.watch) {
			fprintf(out, "kvmini: counters of the host watch of %s\n",
				m->cfg->fs[i].counters_name);
			host_watch_visit_counters(m->fs[i].share.watch, sink);
		}
	dump_vm_counters(m, out);
}

/* --- command line and boot ------------------------------------------------- */

/* The configured command line, the compat additions, one entry per device. */
static int build_cmdline(struct machine *m)
{
	const struct machine_config *cfg = m->cfg;
	size_t off = (size_t)snprintf(m->cmdline, sizeof(m->cmdline), "%s%s%s", cfg->cmdline,
				      cfg->compat ? " " : "", cfg->compat ? VM_COMPAT_CMDLINE : "");

	for (unsigned i = 0; i < m->n_slots && off < sizeof(m->cmdline); i++) {
		off += (size_t)snprintf(m->cmdline + off, sizeof(m->cmdline) - off, " ");
		if (off < sizeof(m->cmdline))
			off += (size_t)vm_virtio_slot_cmdline(&m->slots[i], m->cmdline + off,
							      sizeof(m->cmdline) - off);
	}
	if (off >= sizeof(m->cmdline)) {
		log_err("%s: too long with the device entries (over %u bytes)", cfg->cmdline_what,
			LAYOUT_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	return 0;
}

static int load_guest(struct machine *m)
{
	struct acpi_mmio_device devs[LAYOUT_MMIO_MAX_DEVS];
	struct boot_config bc = { .kernel_path = m->cfg->kernel, .initrd_path = m->cfg->initrd,
				  .cmdline = m->cmdline, .host_decompress = m->cfg->host_decompress,
				  .no_acpi = m->cfg->no_acpi, .devs = devs, .ndevs = m->n_slots };
	struct errbuf eb = { 0 };

	for (unsigned i = 0; i < m->n_slots; i++)
		vm_virtio_slot_describe(&m->slots[i], &devs[i]);

	int r = build_cmdline(m);
	if (r < 0)
		return r;
	r = boot_load(&m->vm, &bc, &eb);
	if (r < 0)
		log_err("%s", eb.msg);
	return r;
}

/* --- build, run, stop ---------------------------------------------------------- */

/* The serial console, the legacy ports and ACPI's power management. */
static int add_platform_devices(struct machine *m)
{
	int r = serial_init(&m->serial, &m->vm, m->cfg->console_out);

	m->serial_ready = !r;
	if (!r) {
		r = legacy_init(&m->legacy, &m->vm);
		m->legacy_ready = !r;
	}
	if (!r && !m->cfg->no_acpi)
		r = acpi_pm_init(&m->acpi_pm, &m->vm);
	if (r < 0)
		log_err("legacy devices: %s", strerror(-r));
	return r;
}

int machine_init_loop(struct machine *m)
{
	if (m->loop_ready)
		return 0;
	int r = event_loop_init(&m->loop);
	if (r < 0) {
		log_err("event loop: %s", strerror(-r));
		return r;
	}
	m->loop_ready = true;
	return 0;
}

int machine_build(struct machine *m, const struct machine_config *cfg)
{
	struct vm_config vc = { .mem_bytes = cfg->mem_bytes, .ncpus = cfg->cpus,
				.compat = cfg->compat, .mem_files = cfg->mem_files,
				.n_mem_files = cfg->n_mem_files, .track_dirty = cfg->track_dirty_pages };

	m->cfg = cfg;
	int r = machine_init_loop(m);
	if (r < 0)
		return r;
	m->vm_tried = true;
	r = vm_create(&m->vm, &vc);
	if (r < 0)
		return r;
	m->vm.timing.vm_created = clock_now_ns();
	r = add_platform_devices(m);
	if (!r)
		r = add_devices(m);
	if (!r)
		r = cfg->n_mem_files ? 0 : load_guest(m);
	if (!r)
		m->vm.timing.kernel_loaded = clock_now_ns();
	return r;
}

/* Start the devices of a restored machine, held since their state loaded. */
static void release_restored(struct machine *m)
{
	for (unsigned i = 0; m->restore_held && i < m->n_slots; i++)
		virtio_mmio_state_resume(&m->slots[i].mmio);
	m->restore_held = false;
}

static void on_stop(struct event_source *src, uint32_t events)
{
	struct machine *m = container_of(src, struct machine, stop_src);

	event_loop_quit(&m->loop);
}

int machine_start(struct machine *m, bool paused)
{
	int r = event_loop_watch(&m->loop, &m->stop_src, m->vm.run_state.stop_fd, EPOLLIN,
				 on_stop, "vm stop");
	if (r < 0) {
		log_err("stop request: %s", strerror(-r));
		return r;
	}
	r = serial_attach_input(&m->serial, &m->loop, m->cfg->console_in);
	if (r < 0) {
		log_err("console input: %s", strerror(-r));
		return r;
	}
	/* A restored machine's devices were loaded held (the interrupts
	 * they owe are raised when they start, over the restored irqchip);
	 * the vCPUs start where they were. Paused: both wait for
	 * machine_resume, the vCPUs parked before their first KVM_RUN. */
	m->restore_held = m->restored;
	if (paused)
		vm_pause_vcpus(&m->vm);
	else
		release_restored(m);
	r = vm_start(&m->vm);
	m->running = !r;
	m->paused = !r && paused;
	return r;
}

int machine_run(struct machine *m)
{
	int r = machine_start(m, false);

	return r < 0 ? r : event_loop_run(&m->loop);
}

/* --- pause, resume --------------------------------------------------------------- */

/* Wait for the vCPUs to park. One in an exit may be waiting for this
 * thread (a virtio-mmio status or config access): serve it between waits. */
static int wait_vcpus_parked(struct machine *m)
{
	uint64_t deadline = clock_now_ns() + (uint64_t)MACHINE_PAUSE_TIMEOUT_MS * 1000000u;

	while (!vm_vcpus_parked(&m->vm, 2)) {
		for (unsigned i = 0; i < m->n_slots; i++)
			virtio_mmio_serve_call(&m->slots[i].mmio);
		if (run_state_stop_requested(&m->vm.run_state))
			return -ESHUTDOWN;
		if (clock_now_ns() > deadline) {
			log_err("pause: the vCPUs did not stop within %u ms",
				MACHINE_PAUSE_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

int machine_pause(struct machine *m)
{
	if (!m->running)
		return -EAGAIN;
	if (m->paused)
		return 0;
	if (run_state_stop_requested(&m->vm.run_state))
		return -ESHUTDOWN;
	vm_pause_vcpus(&m->vm);
	int r = wait_vcpus_parked(m);
	if (r < 0) {
		vm_resume_vcpus(&m->vm);
		return r;
	}
	/* The vCPUs make the kicks: with them parked the devices can settle. */
	for (unsigned i = 0; i < m->n_slots; i++)
		virtio_device_pause(m->slots[i].mmio.dev);
	m->paused = true;
	return 0;
}

int machine_resume(struct machine *m)
{
	if (!m->paused)
		return 0;
	if (m->restore_held)
		release_restored(m);
	else
		for (unsigned i = 0; i < m->n_slots; i++)
			virtio_device_resume(m->slots[i].mmio.dev);
	vm_resume_vcpus(&m->vm);
	m->paused = false;
	return 0;
}

void machine_stop(struct machine *m)
{
	for (unsigned i = 0; i < m->n_slots; i++)
		vm_virtio_slot_close(&m->slots[i]);
	if (m->vm_tried)
		vm_join(&m->vm);
}

void machine_destroy(struct machine *m)
{
	if (!m->loop_ready)
		return;
	event_loop_unwatch(&m->loop, &m->stop_src);
	destroy_devices(m);
	if (m->serial_ready)
		serial_destroy(&m->serial);
	if (m->legacy_ready)
		legacy_destroy(&m->legacy);
	if (m->vm_tried)
		vm_destroy(&m->vm);
	m->vm_tried = false;
	event_loop_destroy(&m->loop);
	m->loop_ready = false;
}
