/*
 * Unit tests of a snapshot's device configuration ("DEVC",
 * src/machine/device_config_state.c): the interfaces and shares a machine
 * was built with come back as the configuration a restore builds from; a
 * section with a bad count, id, spec, path, tag, option or backend is
 * refused with why, and never half-read; a clone's overrides change a
 * tap's name and a MAC, and refuse what they cannot change. The vsock
 * device ("DEVV") and the drives ("DEVB") likewise, and a drive's image
 * checked at its path: gone, or of another size, refused with why. The
 * balloon's configuration ("DEVL") comes back as PUT /balloon gave it,
 * between the vsock device and the drives; a flag that is not 0 or 1
 * is refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "machine/device_config_state.h"

struct sample {
	struct net_iface_config nets[MACHINE_MAX_NETS];
	struct machine_fs_config fs[MACHINE_MAX_FS];
	struct machine_drive_config drives[MACHINE_MAX_DRIVES];
	struct virtio_vsock_opts vsock;
	struct virtio_balloon_opts balloon;
	struct machine_config cfg;
};

/* Each drive's size as the machine would give it at the snapshot. */
static const uint64_t sample_sectors[MACHINE_MAX_DRIVES] = { 128, 2048, 7 };

/* Two interfaces (a tap with MMDS and an MTU, libslirp) and one share
 * with every option away from its default. */
static void sample_init(struct sample *s)
{
	memset(s, 0, sizeof(*s));
	s->nets[0] = (struct net_iface_config){ .backend = "tap:tap0", .id = "eth0", .mtu = 9000,
						.mmds = true };
	s->nets[1] = (struct net_iface_config){ .backend = "user:hostfwd=tcp::2222-:22",
						.id = "wan" };
	s->fs[0] = (struct machine_fs_config){ .share = FS_SHARE_CONFIG_DEFAULT };
	s->fs[0].share.dir = "/srv/share";
	s->fs[0].dev = (struct virtio_fs_opts){ .tag = "data", .request_queues = 2, .threads = 4 };
	s->fs[0].share.server.cache = FUSE_CACHE_NONE;
	s->fs[0].share.server.max_write = 65536;
	s->fs[0].share.pt = (struct passthrough_opts){ .max_fds = 100, .squash = true,
						       .squash_uid = 1000, .squash_gid = 100,
						       .xattr_all = true, .dev_nodes = true };
	s->fs[0].share.no_notify = true;
	s->fs[0].share.watch.max_watches = 77;
	s->cfg = (struct machine_config){ .nets = s->nets, .n_nets = 2, .fs = s->fs, .n_fs = 1 };
}

/* Two drives (the root first, a limiter on the other) and a vsock device. */
static void sample_devices(struct sample *s)
{
	s->drives[0] = (struct machine_drive_config){ .id = "rootfs", .path = "/img/root.ext4",
						      .root = true, .partuuid = "abc-1" };
	s->drives[1] = (struct machine_drive_config){
		.id = "data", .path = "/img/data.raw", .read_only = true,
		.limit = { .bandwidth = { .size = 1 << 20, .refill_time = 100 } } };
	s->vsock = (struct virtio_vsock_opts){ .guest_cid = 42, .uds_path = "/run/v.sock" };
	s->cfg.drives = s->drives;
	s->cfg.n_drives = 2;
	s->cfg.vsock = &s->vsock;
}

/* Save @cfg's section and read it back; NULL-safe message in @why. */
static bool round_trip(const struct machine_config *cfg, struct saved_devices *d, char *why,
		       size_t why_len)
{
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };

	state_writer_init(&w);
	device_config_save(cfg, sample_sectors, &w);
	CHECK(!w.failed);
	state_reader_init(&r, w.buf, w.len, &eb);
	bool ok = device_config_load(&r, d);
	snprintf(why, why_len, "%s", eb.msg);
	state_writer_free(&w);
	return ok;
}

static void test_round_trip(void)
{
	static struct sample s;
	static struct saved_devices d;
	char why[256];

	sample_init(&s);
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK_EQ(d.n_nets, 2);
	CHECK(!strcmp(d.nets[0].id, "eth0") && d.nets[0].id_given);
	CHECK(!strcmp(d.nets[0].backend, "tap:tap0") && d.nets[0].mtu == 9000 && d.nets[0].mmds);
	CHECK(!strcmp(d.nets[1].backend, "user:hostfwd=tcp::2222-:22") && !d.nets[1].mmds);
	CHECK(!d.nets[0].mac_given);
	CHECK_EQ(d.n_fs, 1);
	const struct machine_fs_config *f = &d.fs[0];
	CHECK(!strcmp(f->share.dir, "/srv/share") && !strcmp(f->dev.tag, "data"));
	CHECK_EQ(f->dev.request_queues, 2);
	CHECK_EQ(f->dev.threads, 4);
	CHECK_EQ(f->share.server.cache, FUSE_CACHE_NONE);
	CHECK_EQ(f->share.server.max_write, 65536);
	CHECK(f->share.pt.squash && f->share.pt.squash_uid == 1000 && f->share.pt.squash_gid == 100);
	CHECK(f->share.pt.xattr_all && f->share.no_notify && f->share.pt.max_fds == 100);
	CHECK(f->share.pt.dev_nodes);
	CHECK_EQ(f->share.watch.max_watches, 77);

	/* The machine configuration points at them. */
	struct machine_config cfg = { 0 };
	device_config_apply(&d, &cfg);
	CHECK(cfg.nets == d.nets && cfg.n_nets == 2 && cfg.fs == d.fs && cfg.n_fs == 1);

	/* No devices at all is a machine too. */
	struct machine_config none = { 0 };
	CHECK(round_trip(&none, &d, why, sizeof(why)));
	CHECK(d.n_nets == 0 && d.n_fs == 0);
}

/* Each bad field is refused, and the message names it. */
/* The entropy device's "DEVR": its limiter back whole; without one, none
 * (and a snapshot from before the section has none either). */
static void test_entropy(void)
{
	static struct sample s;
	static struct saved_devices d;
	struct rate_limiter_config lim = { .bandwidth = { .size = 4096, .one_time_burst = 7,
							  .refill_time = 100 },
					   .ops = { .size = 10, .refill_time = 1000 } };
	struct machine_config applied = { 0 };
	char why[256];

	sample_init(&s);
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK(!d.has_entropy);
	device_config_apply(&d, &applied);
	CHECK(applied.entropy == NULL);
	s.cfg.entropy = &lim;
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK(d.has_entropy);
	CHECK(!memcmp(&d.entropy, &lim, sizeof(lim)));
	device_config_apply(&d, &applied);
	CHECK(applied.entropy == &d.entropy);
	/* A limiter out of range is refused with why. */
	lim.bandwidth.refill_time = UINT64_MAX;
	CHECK(!round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK(strstr(why, "entropy device's rate limiter") != NULL);
}

static void test_refusals(void)
{
	static struct sample s;
	static struct saved_devices d;
	char why[256];
	char long_tag[64];

	memset(long_tag, 't', sizeof(long_tag) - 1);
	long_tag[sizeof(long_tag) - 1] = '\0';
#define REFUSED(change, needle) do { \
		sample_init(&s); \
		change; \
		why[0] = '\0'; \
		CHECK(!round_trip(&s.cfg, &d, why, sizeof(why))); \
		CHECK(strstr(why, needle) != NULL); \
		if (!strstr(why, needle)) \
			fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", needle, why); \
	} while (0)
	REFUSED(strcpy(s.nets[1].id, "a/b"), "holds a '/'");
	REFUSED(strcpy(s.nets[1].id, "eth0"), "two interfaces are called \"eth0\"");
	REFUSED(s.nets[1].backend = "", "no backend");
	REFUSED(s.nets[0].mtu = 20, "MTU 20");
	REFUSED(s.fs[0].share.dir = "relative/dir", "not absolute");
	REFUSED(s.fs[0].dev.tag = long_tag, "DEVC");
	REFUSED(s.fs[0].dev.request_queues = 99, "99 request queues");
	REFUSED(s.fs[0].dev.threads = 1000, "1000 threads");
	REFUSED(s.fs[0].share.server.cache = (enum fuse_cache_policy)9, "cache policy 9");
	REFUSED(s.fs[0].share.backend = FS_SHARE_MEMFS, "only host directories");
#undef REFUSED
}

/* Counts past the machine's limits, before any entry is read. */
static void test_counts(void)
{
	static struct saved_devices d;
	const uint32_t counts[][2] = { { MACHINE_MAX_NETS + 1, 0 }, { 0, MACHINE_MAX_FS + 1 },
				       { 0xffffffffu, 0 } };
	const char *needles[] = { "interfaces (at most", "shares (at most", "interfaces (at most" };

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct state_writer w;
		struct state_reader r;
		struct errbuf eb = { 0 };

		state_writer_init(&w);
		state_begin(&w, "DEVC");
		state_put_u32(&w, counts[i][0]);
		state_put_u32(&w, counts[i][1]);
		state_end(&w);
		state_reader_init(&r, w.buf, w.len, &eb);
		CHECK(!device_config_load(&r, &d));
		CHECK(strstr(eb.msg, needles[i]) != NULL);
		state_writer_free(&w);
	}
}

/* A section cut anywhere is refused, never read past its end. A cut
 * between whole sections (or in the next one's 8-byte header) reads as a
 * machine without the optional ones after it ("DEVV", "DEVB"): the slots
 * of "MACH" catch that at a restore, the file's length and CRC before. */
static void test_truncated(void)
{
	static struct sample s;
	static struct saved_devices d;
	struct state_writer w;

	sample_init(&s);
	sample_devices(&s);
	unsigned boundaries = 0;
	state_writer_init(&w);
	device_config_save(&s.cfg, sample_sectors, &w);
	for (size_t cut = 0; cut < w.len; cut++) {
		struct state_reader r;
		struct errbuf eb = { 0 };
		/* A copy of exactly @cut bytes, so ASan sees a read past it. */
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, w.buf, cut);
		state_reader_init(&r, copy, cut, &eb);
		if (device_config_load(&r, &d)) {
			/* Less than a section's header after the last whole one
			 * is no section: the next reader refuses it. */
			CHECK(cut && cut - r.off < 8);
			boundaries += r.off == cut;
		}
		free(copy);
	}
	state_writer_free(&w);
}

static void test_drives_vsock(void)
{
	static struct sample s;
	static struct saved_devices d;
	char why[256];

	sample_init(&s);
	sample_devices(&s);
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK(d.has_vsock && d.vsock_cid == 42 && !strcmp(d.vsock_path, "/run/v.sock"));
	CHECK_EQ(d.n_drives, 2);
	CHECK(!strcmp(d.drives[0].id, "rootfs") && !strcmp(d.drives[0].path, "/img/root.ext4"));
	CHECK(d.drives[0].root && !d.drives[0].read_only && !strcmp(d.drives[0].partuuid, "abc-1"));
	CHECK_EQ(d.drives[0].sectors, 128);
	CHECK(!strcmp(d.drives[1].id, "data") && d.drives[1].read_only && !d.drives[1].root);
	CHECK(!memcmp(&d.drives[1].limit, &s.drives[1].limit, sizeof(s.drives[1].limit)));
	CHECK_EQ(d.drives[1].sectors, 2048);
	/* Still the nets and shares before them. */
	CHECK(d.n_nets == 2 && d.n_fs == 1);
	/* Without them: none. */
	sample_init(&s);
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK(!d.has_vsock && d.n_drives == 0);
#define REFUSED(change, needle) do { \
		sample_init(&s); \
		sample_devices(&s); \
		change; \
		why[0] = '\0'; \
		CHECK(!round_trip(&s.cfg, &d, why, sizeof(why))); \
		CHECK(strstr(why, needle) != NULL); \
		if (!strstr(why, needle)) \
			fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", needle, why); \
	} while (0)
	REFUSED(s.vsock.guest_cid = 2, "DEVV: the vsock device's guest CID 2");
	REFUSED(s.vsock.uds_path = "", "DEVV: the vsock device has no socket path");
	REFUSED(s.drives[1].id = "a/b", "DEVB: a drive's id \"a/b\"");
	REFUSED(s.drives[1].id = "rootfs", "two drives are called \"rootfs\"");
	REFUSED(s.drives[1].path = "", "drive data: no image path");
	REFUSED(s.drives[1].root = true, "drive data is the root but not the first");
	REFUSED(s.drives[1].limit.bandwidth.refill_time = UINT64_MAX, "drive data: the rate limiter");
#undef REFUSED
}

/* A drive's image at its path: the same size passes; gone or resized is
 * refused with the drive, the path and what differs. */
/* A share's DAX window size in "DEVX" (none without a window: earlier
 * snapshots read the same); a size the window refuses is refused. */
static void test_dax(void)
{
	static struct sample s;
	static struct saved_devices d;
	char why[256];

	sample_init(&s);
	sample_devices(&s);
	s.fs[0].dev.dax_bytes = 1ull << 30;
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK_EQ(d.fs[0].dev.dax_bytes, 1ull << 30);
	CHECK(d.has_vsock && d.n_drives == 2);      /* the sections before it */
	s.fs[0].dev.dax_bytes = 0;
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK_EQ(d.fs[0].dev.dax_bytes, 0);

	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };
	s.fs[0].dev.dax_bytes = 2ull << 20;
	state_writer_init(&w);
	device_config_save(&s.cfg, sample_sectors, &w);
	uint8_t *devx = memmem(w.buf, w.len, "DEVX", 4);
	CHECK(devx != NULL);
	devx[8 + 4] = 1;                            /* 2 MiB + 1 byte */
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(!device_config_load(&r, &d));
	CHECK(strstr(eb.msg, "DEVX") && strstr(eb.msg, "a DAX window of 2097153 bytes"));
	state_writer_free(&w);
}

static void test_balloon(void)
{
	static struct sample s;
	static struct saved_devices d;
	char why[256];

	sample_init(&s);
	sample_devices(&s);
	s.balloon = (struct virtio_balloon_opts){ .amount_mib = 64, .deflate_on_oom = true,
						  .stats_polling_interval_s = 65535 };
	s.cfg.balloon = &s.balloon;
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK(d.has_balloon && d.balloon.amount_mib == 64 && d.balloon.deflate_on_oom);
	CHECK_EQ(d.balloon.stats_polling_interval_s, 65535);
	CHECK(d.has_vsock && d.n_drives == 2);      /* the sections around it */
	s.cfg.balloon = NULL;
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK(!d.has_balloon && d.n_drives == 2);
	/* deflate_on_oom of 2: refused, with the section named. */
	struct state_writer w;
	struct state_reader r;
	struct errbuf eb = { 0 };
	s.cfg.balloon = &s.balloon;
	state_writer_init(&w);
	device_config_save(&s.cfg, sample_sectors, &w);
	uint8_t *devl = memmem(w.buf, w.len, "DEVL", 4);
	CHECK(devl != NULL);
	devl[8 + 4] = 2;
	state_reader_init(&r, w.buf, w.len, &eb);
	CHECK(!device_config_load(&r, &d));
	CHECK(strstr(eb.msg, "DEVL") && strstr(eb.msg, "a flag of value 2"));
	state_writer_free(&w);
}

static void test_check_drive(void)
{
	static struct saved_devices d;
	char path[] = "/tmp/kvmini-test-devb.XXXXXX";
	struct errbuf eb = { 0 };
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, 64 * 512), 0);
	close(fd);
	memset(&d, 0, sizeof(d));
	d.n_drives = 1;
	snprintf(d.drives[0].id, sizeof(d.drives[0].id), "disk1");
	snprintf(d.drives[0].path, sizeof(d.drives[0].path), "%s", path);
	d.drives[0].sectors = 64;
	CHECK_EQ(device_config_check_drive(&d, 0, &eb), 0);
	d.drives[0].sectors = 65;
	CHECK_EQ(device_config_check_drive(&d, 0, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "drive disk1: the image") && strstr(eb.msg, "has 64 sectors, the "
		"snapshot's drive had 65"));
	unlink(path);
	CHECK(device_config_check_drive(&d, 0, &eb) == -ENOENT);
	CHECK(strstr(eb.msg, "drive disk1: its image cannot be reopened") &&
	      strstr(eb.msg, "No such file"));
}

static void test_overrides(void)
{
	static struct sample s;
	static struct saved_devices d;
	const uint8_t mac[6] = { 0x52, 0x54, 0, 0, 0, 9 };
	char why[256];

	sample_init(&s);
	CHECK(round_trip(&s.cfg, &d, why, sizeof(why)));
	CHECK_EQ(device_config_override_net(&d, "eth0", "tap9", NULL), 0);
	CHECK(!strcmp(d.nets[0].backend, "tap:tap9") && !d.nets[0].mac_given);
	CHECK_EQ(device_config_override_net(&d, "wan", NULL, mac), 0);
	CHECK(d.nets[1].mac_given && !memcmp(d.nets[1].mac, mac, 6));
	CHECK(!strcmp(d.nets[1].backend, "user:hostfwd=tcp::2222-:22"));
	/* libslirp has no tap to change; names the kernel would refuse. */
	CHECK_EQ(device_config_override_net(&d, "wan", "tap1", NULL), -EINVAL);
	CHECK_EQ(device_config_override_net(&d, "eth0", "a-name-far-too-long", NULL), -EINVAL);
	CHECK_EQ(device_config_override_net(&d, "eth0", "", NULL), -EINVAL);
	CHECK_EQ(device_config_override_net(&d, "eth0", "a/b", NULL), -EINVAL);
	CHECK_EQ(device_config_override_net(&d, "eth5", "tap1", NULL), -ENOENT);
	CHECK(!strcmp(d.nets[0].backend, "tap:tap9"));

	/* A share's directory, by its tag. */
	CHECK_EQ(device_config_override_fs(&d, "data", "/srv/clone1"), 0);
	CHECK(!strcmp(d.fs[0].share.dir, "/srv/clone1"));
	CHECK_EQ(device_config_override_fs(&d, "data", "relative"), -EINVAL);
	CHECK_EQ(device_config_override_fs(&d, "other", "/srv"), -ENOENT);
	CHECK(!strcmp(d.fs[0].share.dir, "/srv/clone1"));
}

int main(void)
{
	RUN_TEST(test_round_trip);
	RUN_TEST(test_entropy);
	RUN_TEST(test_refusals);
	RUN_TEST(test_counts);
	RUN_TEST(test_truncated);
	RUN_TEST(test_overrides);
	RUN_TEST(test_drives_vsock);
	RUN_TEST(test_check_drive);
	RUN_TEST(test_balloon);
	RUN_TEST(test_dax);
	return CHECK_DONE();
}
