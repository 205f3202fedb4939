/*
 * Snapshot state of the device side (transport/mmio_state.c,
 * virtio/device_state.c, net/net_state.c) without KVM: a virtio-net device
 * behind a virtio-mmio transport (vm_fd -1) is brought up through its
 * registers by the test driver, moves frames over the loopback backend, is
 * paused and saved; a second transport and device, built fresh on the same
 * guest memory as a new process would, loads the state, resumes, and must
 * go on where the first stopped: same ring indices, same counters, the
 * frame queued while paused sent, the owed interrupt raised at resume.
 * Then every refusal: another device type, another queue count, a bad
 * queue size, a ring outside memory, an illegal status, a truncated
 * state, unknown trailing bytes in a section, a bad device section after
 * good transport ones; each leaves the fresh device untouched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>

#include "check.h"
#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/state_io.h"
#include "net/net_device.h"
#include "transport/mmio.h"
#include "vdriver.h"

#define MEM_BASE 0x100000ull
#define MEM_SIZE (8u << 20)
#define QSIZE    64u
#define ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define DRV VIRTIO_CONFIG_S_DRIVER
#define FOK VIRTIO_CONFIG_S_FEATURES_OK
#define DOK VIRTIO_CONFIG_S_DRIVER_OK

static const uint8_t mac_a[6] = { 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0, 0x11, 0x22, 0x33 };

struct slot {
	struct net_device net;
	struct net_backend *be;
	struct virtio_mmio t;
};

struct rig {
	struct event_loop loop;
	struct vd_mem mem;
	struct vd_queue rxq, txq;
	uint64_t pool;
	struct slot *a, *b;
	struct state_writer w;
	struct errbuf eb;            /* why a save failed */
	unsigned frames;             /* TX frames sent so far (pool slots) */
};

static struct slot *slot_up(struct rig *r, const uint8_t mac[6])
{
	struct errbuf eb = { 0 };
	struct net_config_opts no = { .mtu = 1500 };
	struct virtio_mmio_opts mo = { .vm_fd = -1, .base = 0xd0000000, .gsi = 5, .queue_num_max = 1024 };
	struct slot *s = calloc(1, sizeof(*s));

	memcpy(no.mac, mac, 6);
	s->be = net_loopback_create(&r->loop, NULL, &eb);
	CHECK(s->be != NULL);
	CHECK_EQ(net_device_init(&s->net, &no, s->be, &r->loop), 0);
	CHECK_EQ(virtio_mmio_init(&s->t, &s->net.vdev, &r->loop, &r->mem.gm, &mo), 0);
	return s;
}

static void slot_down(struct slot *s)
{
	if (!s)
		return;
	virtio_mmio_destroy(&s->t);
	net_device_destroy(&s->net);
	s->be->ops->destroy(s->be);
	free(s);
}

static uint32_t rd32(struct slot *s, uint32_t off)
{
	uint32_t v = 0xdeadbeef;

	virtio_mmio_access(&s->t, off, &v, 4, false);
	return v;
}

static void wr32(struct slot *s, uint32_t off, uint32_t v)
{
	virtio_mmio_access(&s->t, off, &v, 4, true);
}

static void wr64(struct slot *s, uint32_t low, uint64_t v)
{
	wr32(s, low, (uint32_t)v);
	wr32(s, low + 4, (uint32_t)(v >> 32));
}

static void setup_queue(struct slot *s, unsigned q, const struct vd_queue *vq)
{
	wr32(s, VIRTIO_MMIO_QUEUE_SEL, q);
	wr32(s, VIRTIO_MMIO_QUEUE_NUM, vq->size);
	wr64(s, VIRTIO_MMIO_QUEUE_DESC_LOW, vq->desc_gpa);
	wr64(s, VIRTIO_MMIO_QUEUE_AVAIL_LOW, vq->avail_gpa);
	wr64(s, VIRTIO_MMIO_QUEUE_USED_LOW, vq->used_gpa);
	wr32(s, VIRTIO_MMIO_QUEUE_READY, 1);
}

/* The driver's handshake, every offered feature accepted (EVENT_IDX too)
 * but the control queue, which this driver does not set up. */
static void bring_up(struct rig *r, struct slot *s)
{
	wr32(s, VIRTIO_MMIO_STATUS, ACK);
	wr32(s, VIRTIO_MMIO_STATUS, ACK | DRV);
	for (uint32_t half = 0; half < 2; half++) {
		wr32(s, VIRTIO_MMIO_DEVICE_FEATURES_SEL, half);
		uint32_t f = rd32(s, VIRTIO_MMIO_DEVICE_FEATURES);
		if (half == 0)
			f &= ~(1u << VIRTIO_NET_F_CTRL_VQ);
		wr32(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, half);
		wr32(s, VIRTIO_MMIO_DRIVER_FEATURES, f);
	}
	wr32(s, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	setup_queue(s, NET_RX_QUEUE, &r->rxq);
	setup_queue(s, NET_TX_QUEUE, &r->txq);
	wr32(s, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	CHECK_EQ(rd32(s, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
	CHECK(s->net.vdev.active);
}

static void settle(struct rig *r)
{
	for (int i = 0; i < 32 && event_loop_once(&r->loop, 0) > 0; i++)
		;
}

static void rig_up(struct rig *r)
{
	struct vd_queue_opts qo = { .size = QSIZE, .event_idx = true };

	memset(r, 0, sizeof(*r));
	log_threshold = LOG_ERROR;
	CHECK_EQ(event_loop_init(&r->loop), 0);
	CHECK_EQ(vd_mem_init(&r->mem, MEM_BASE, MEM_SIZE, 0), 0);
	CHECK_EQ(vd_queue_init(&r->rxq, &r->mem, &qo), 0);
	CHECK_EQ(vd_queue_init(&r->txq, &r->mem, &qo), 0);
	r->pool = vd_alloc(&r->mem, 4 << 20, 4096);
	CHECK(r->pool != VD_NO_GPA);
	state_writer_init(&r->w);
}

static void rig_down(struct rig *r)
{
	slot_down(r->a);
	slot_down(r->b);
	state_writer_free(&r->w);
	vd_queue_destroy(&r->rxq);
	vd_queue_destroy(&r->txq);
	vd_mem_destroy(&r->mem);
	event_loop_destroy(&r->loop);
}

static void offer_rx(struct rig *r, struct slot *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct vd_buf b = { .gpa = r->pool + (uint64_t)i * 2048, .len = 2048, .writable = true };
		CHECK(vd_add_chain(&r->rxq, &b, 1, false) >= 0);
	}
	vd_publish(&r->rxq);
	wr32(s, VIRTIO_MMIO_QUEUE_NOTIFY, NET_RX_QUEUE);
	settle(r);
}

/* Queue one frame of 100 bytes; kick and settle when @s is given. */
static void send_tx(struct rig *r, struct slot *s)
{
	uint64_t hdr = r->pool + 0x200000 + (uint64_t)(r->frames++ % 32) * 2048;

	vd_fill(&r->mem, hdr, 0, NET_HDR_LEN);
	vd_fill(&r->mem, hdr + NET_HDR_LEN, 0x40 + (int)r->frames, 100);
	struct vd_buf bufs[2] = { { hdr, NET_HDR_LEN, false }, { hdr + NET_HDR_LEN, 100, false } };
	CHECK(vd_add_chain(&r->txq, bufs, 2, false) >= 0);
	vd_publish(&r->txq);
	if (!s)
		return;
	wr32(s, VIRTIO_MMIO_QUEUE_NOTIFY, NET_TX_QUEUE);
	settle(r);
}

static unsigned take_used(struct vd_queue *q)
{
	uint32_t id, len;
	unsigned n = 0;

	while (vd_get_used(q, &id, &len) == 1)
		n++;
	return n;
}

static uint64_t irq_take(struct slot *s)
{
	uint64_t v = 0;

	if (read(s->t.irq_fd, &v, sizeof(v)) < 0)
		return 0;
	return v;
}

/* Slot a up, 3 frames through, one more queued while paused; saved in r->w. */
static void make_state(struct rig *r)
{
	r->a = slot_up(r, mac_a);
	bring_up(r, r->a);
	offer_rx(r, r->a, 8);
	for (int i = 0; i < 3; i++)
		send_tx(r, r->a);
	CHECK_EQ(take_used(&r->txq), 3);
	CHECK_EQ(take_used(&r->rxq), 3);
	CHECK_EQ(net_device_totals(&r->a->net).tx_packets, 3);
	CHECK(rd32(r->a, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING);
	virtio_device_pause(&r->a->net.vdev);
	send_tx(r, r->a);            /* waits in the ring: the device is paused */
	CHECK_EQ(net_device_totals(&r->a->net).tx_packets, 3);
	CHECK_EQ(virtio_mmio_state_save(&r->a->t, &r->w, &r->eb), 0);
	CHECK(!r->w.failed);
}

/* Load @len bytes of @buf into slot b; 0 or -errno, why in *@eb. */
static int load_b(struct rig *r, const uint8_t *buf, size_t len, struct errbuf *eb)
{
	struct state_reader rd;

	state_reader_init(&rd, buf, len, eb);
	return virtio_mmio_state_load(&r->b->t, &rd);
}

static void test_net_roundtrip_continues(void)
{
	struct rig r;
	struct errbuf eb = { 0 };

	rig_up(&r);
	make_state(&r);
	struct virtqueue va_rx = r.a->net.vqs[NET_RX_QUEUE], va_tx = r.a->net.vqs[NET_TX_QUEUE];
	struct net_counters ca = net_device_totals(&r.a->net);
	uint32_t st = rd32(r.a, VIRTIO_MMIO_STATUS);
	slot_down(r.a);              /* the old process is gone */
	r.a = NULL;

	r.b = slot_up(&r, mac_b);
	CHECK_EQ(load_b(&r, r.w.buf, r.w.len, &eb), 0);
	if (eb.msg[0])
		fprintf(stderr, "  load: %s\n", eb.msg);
	struct net_device *nb = &r.b->net;
	CHECK_EQ(rd32(r.b, VIRTIO_MMIO_STATUS), st);
	CHECK(nb->vdev.active);
	CHECK(nb->vdev.paused);
	/* RX held a chain waiting for a frame: saved as not taken. */
	CHECK(va_rx.held != NULL);
	CHECK_EQ(nb->vqs[NET_RX_QUEUE].last_avail_idx, vq_base(&va_rx));
	CHECK_EQ(nb->vqs[NET_RX_QUEUE].last_avail_idx, (uint16_t)(va_rx.last_avail_idx - 1));
	CHECK_EQ(nb->vqs[NET_RX_QUEUE].used_idx, va_rx.used_idx);
	CHECK_EQ(nb->vqs[NET_TX_QUEUE].last_avail_idx, va_tx.last_avail_idx);
	CHECK_EQ(nb->vqs[NET_TX_QUEUE].published_idx, va_tx.published_idx);
	CHECK_EQ(nb->vqs[NET_TX_QUEUE].signalled_idx, va_tx.signalled_idx);
	struct net_counters cb = net_device_totals(nb);
	CHECK(memcmp(&cb, &ca, sizeof(ca)) == 0);
	CHECK(memcmp(nb->opts.mac, mac_a, 6) == 0);     /* the state's MAC wins by default */
	/* Nothing moves and no interrupt before resume. */
	settle(&r);
	CHECK_EQ(take_used(&r.txq), 0);
	CHECK_EQ(irq_take(r.b), 0);
	virtio_mmio_state_resume(&r.b->t);
	CHECK(irq_take(r.b) >= 1);    /* the owed interrupt */
	settle(&r);
	CHECK_EQ(take_used(&r.txq), 1);   /* the frame queued while paused */
	CHECK_EQ(take_used(&r.rxq), 1);
	send_tx(&r, r.b);
	CHECK_EQ(take_used(&r.txq), 1);
	CHECK_EQ(take_used(&r.rxq), 1);
	CHECK_EQ(net_device_totals(nb).tx_packets, 5);
	CHECK_EQ(net_device_totals(nb).rx_packets, 5);
	CHECK_EQ(net_device_totals(nb).tx_bytes, 500);
	CHECK_EQ(nb->vqs[NET_TX_QUEUE].used_idx, (uint16_t)(va_tx.used_idx + 2));
	rig_down(&r);
}

static void test_net_keeps_configured_mac(void)
{
	struct rig r;
	struct errbuf eb = { 0 };
	uint8_t cfg[6];

	rig_up(&r);
	make_state(&r);
	r.b = slot_up(&r, mac_b);
	r.b->net.keep_configured_mac = true;
	CHECK_EQ(load_b(&r, r.w.buf, r.w.len, &eb), 0);
	CHECK(memcmp(r.b->net.opts.mac, mac_b, 6) == 0);
	CHECK_EQ(virtio_device_config_read(&r.b->net.vdev, 0, cfg, 6), 0);
	CHECK(memcmp(cfg, mac_b, 6) == 0);
	rig_down(&r);
}

/* --- refusals ------------------------------------------------------------- */

/* Offset of the body of section @tag in a payload, or 0 when absent. */
static size_t find_section(const uint8_t *p, size_t len, const char *tag)
{
	size_t off = 0;

	while (off + 8 <= len) {
		uint32_t n;
		memcpy(&n, p + off + 4, 4);
		if (!memcmp(p + off, tag, 4))
			return off + 8;
		off += 8 + n;
	}
	CHECK(!"section not found");
	return 0;
}

/* Where queue @q's registers start in the MMIO section's body. */
static size_t mmio_queue_at(const uint8_t *p, size_t body, unsigned q)
{
	uint32_t name_len;

	memcpy(&name_len, p + body + 4, 4);
	/* id, name, nqueues, status, 3 selectors, driver features, isr, generation, needs_reset */
	return body + 8 + name_len + 4 * 5 + 8 + 4 + 4 + 1 + (size_t)q * 27;
}

static size_t mmio_status_at(const uint8_t *p, size_t body)
{
	uint32_t name_len;

	memcpy(&name_len, p + body + 4, 4);
	return body + 8 + name_len + 4;
}

/* The fresh device is as built: nothing of a refused state in it. */
static void check_untouched(struct rig *r)
{
	struct net_device *n = &r->b->net;
	static const struct net_counters zero;

	CHECK_EQ(r->b->t.status, 0);
	CHECK_EQ(rd32(r->b, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	CHECK(!n->vdev.active);
	CHECK(!n->vdev.paused);
	CHECK_EQ(n->vdev.features, 0);
	for (unsigned q = 0; q < NET_NUM_QUEUES; q++) {
		CHECK_EQ(n->vqs[q].size, 0);
		CHECK_EQ(n->vqs[q].last_avail_idx, 0);
		CHECK(!r->b->t.queues[q].ready);
	}
	CHECK(memcmp(&n->counters, &zero, sizeof(zero)) == 0);
	CHECK(memcmp(n->opts.mac, mac_b, 6) == 0);
}

typedef size_t (*mutate_fn)(uint8_t *p, size_t len);

/* Save, mutate a copy, load into a fresh device: refused with @want in the
 * message, and nothing applied. */
static void check_refused(mutate_fn mutate, const char *want)
{
	struct rig r;
	struct errbuf eb = { 0 };

	rig_up(&r);
	make_state(&r);
	uint8_t *copy = malloc(r.w.len + 16);
	memcpy(copy, r.w.buf, r.w.len);
	size_t len = mutate(copy, r.w.len);
	r.b = slot_up(&r, mac_b);
	CHECK_EQ(load_b(&r, copy, len, &eb), -EINVAL);
	if (!strstr(eb.msg, want)) {
		fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", eb.msg, want);
		CHECK(!"message");
	}
	check_untouched(&r);
	free(copy);
	rig_down(&r);
}

static size_t bad_queue_size(uint8_t *p, size_t len)
{
	uint16_t n = 300;

	memcpy(p + mmio_queue_at(p, find_section(p, len, "MMIO"), 1), &n, 2);
	return len;
}

static size_t ring_outside_memory(uint8_t *p, size_t len)
{
	uint64_t gpa = MEM_BASE + MEM_SIZE + 0x1000;

	memcpy(p + mmio_queue_at(p, find_section(p, len, "MMIO"), 0) + 3, &gpa, 8);
	return len;
}

static size_t illegal_status(uint8_t *p, size_t len)
{
	uint32_t st = ACK | DOK;

	memcpy(p + mmio_status_at(p, find_section(p, len, "MMIO")), &st, 4);
	return len;
}

static size_t truncated(uint8_t *p, size_t len)
{
	return len - 5;
}

/* Three bytes more in the last section, its length grown to match. */
static size_t trailing_bytes(uint8_t *p, size_t len)
{
	size_t body = find_section(p, len, "VNET");
	uint32_t n;

	memcpy(&n, p + body - 4, 4);
	n += 3;
	memcpy(p + body - 4, &n, 4);
	memset(p + len, 0xab, 3);
	return len + 3;
}

/* A bad VNET section after good MMIO and VDEV ones: nothing applied. */
static size_t bad_net_section(uint8_t *p, size_t len)
{
	uint32_t n = 3;

	memcpy(p + find_section(p, len, "VNET") + 8, &n, 4);
	return len;
}


static void test_refuses_bad_queue_size(void)
{
	check_refused(bad_queue_size, "queue 1: size 300 is not a power of two");
}

static void test_refuses_ring_outside_memory(void)
{
	check_refused(ring_outside_memory, "queue 0 (ready");
	check_refused(ring_outside_memory, "descriptor table outside guest memory");
}

static void test_refuses_illegal_status(void)
{
	check_refused(illegal_status, "status 0x5 skips a step");
}

static void test_refuses_truncated(void)
{
	check_refused(truncated, "truncated");
}

static void test_refuses_trailing_bytes(void)
{
	check_refused(trailing_bytes, "3 bytes this kvmini does not know");
}

static void test_refuses_bad_device_section(void)
{
	check_refused(bad_net_section, "section VNET: 3 counters");
}

/* Guest memory that is not the snapshot's: its used index differs. */
static void test_refuses_other_memory(void)
{
	struct rig r;
	struct errbuf eb = { 0 };

	rig_up(&r);
	make_state(&r);
	r.txq.used->idx = (uint16_t)(r.txq.used->idx + 1);
	r.b = slot_up(&r, mac_b);
	CHECK_EQ(load_b(&r, r.w.buf, r.w.len, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "queue 1: the used index in guest memory is") != NULL);
	check_untouched(&r);
	rig_down(&r);
}

/* --- another device in the slot ------------------------------------------------ */

struct fake {
	struct virtio_device vdev;
	struct virtqueue vqs[3];
	struct virtio_mmio t;
};

static uint64_t fake_features(struct virtio_device *dev) { return 1ull << VIRTIO_F_VERSION_1; }
static int fake_set_features(struct virtio_device *dev, uint64_t f) { return 0; }
static void fake_config_read(struct virtio_device *dev, void *c) { memset(c, 0, 8); }
static int fake_activate(struct virtio_device *dev) { return 0; }
static void fake_notify(struct virtio_device *dev, unsigned q) { }
static void fake_reset(struct virtio_device *dev) { }

static const struct virtio_device_ops fake_fs_ops = {
	.name = "fake-fs", .device_id = VIRTIO_ID_FS, .config_size = 8,
	.features = fake_features, .set_features = fake_set_features,
	.config_read = fake_config_read, .activate = fake_activate,
	.queue_notify = fake_notify, .reset = fake_reset,
};

static const struct virtio_device_ops fake_net_ops = {
	.name = "fake-net", .device_id = VIRTIO_ID_NET, .config_size = 8,
	.features = fake_features, .set_features = fake_set_features,
	.config_read = fake_config_read, .activate = fake_activate,
	.queue_notify = fake_notify, .reset = fake_reset,
};

static void check_other_device(const struct virtio_device_ops *ops, unsigned nq, const char *want)
{
	struct rig r;
	struct errbuf eb = { 0 };
	struct virtio_mmio_opts mo = { .vm_fd = -1, .base = 0xd0000000, .gsi = 5 };
	struct fake f = { 0 };
	struct state_reader rd;

	rig_up(&r);
	make_state(&r);
	f.vdev.ops = ops;
	f.vdev.loop = &r.loop;
	f.vdev.vqs = f.vqs;
	f.vdev.num_queues = nq;
	for (unsigned q = 0; q < nq; q++)
		vq_reset(&f.vqs[q]);
	CHECK_EQ(virtio_mmio_init(&f.t, &f.vdev, &r.loop, &r.mem.gm, &mo), 0);
	state_reader_init(&rd, r.w.buf, r.w.len, &eb);
	CHECK_EQ(virtio_mmio_state_load(&f.t, &rd), -EINVAL);
	if (!strstr(eb.msg, want)) {
		fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", eb.msg, want);
		CHECK(!"message");
	}
	CHECK_EQ(f.t.status, 0);
	CHECK(!f.vdev.active);
	CHECK_EQ(f.vdev.features, 0);
	virtio_mmio_destroy(&f.t);
	rig_down(&r);
}

static void test_refuses_other_device_type(void)
{
	check_other_device(&fake_fs_ops, 2,
			   "the state has a virtio-net device (id 1) in this slot, this machine has fake-fs (id 26)");
}

static void test_refuses_other_queue_count(void)
{
	check_other_device(&fake_net_ops, 2, "the state's virtio-net has 3 queues, this machine's 2");
}

/* A device a driver has used takes no state. */
static void test_refuses_used_device(void)
{
	struct rig r;
	struct errbuf eb = { 0 };

	rig_up(&r);
	make_state(&r);
	r.b = slot_up(&r, mac_b);
	wr32(r.b, VIRTIO_MMIO_STATUS, ACK);
	CHECK_EQ(load_b(&r, r.w.buf, r.w.len, &eb), -EBUSY);
	CHECK_EQ(r.b->t.status, ACK);
	CHECK(!r.b->net.vdev.active);
	rig_down(&r);
}

/* A running device is not saved. */
static void test_save_needs_pause(void)
{
	struct rig r;

	rig_up(&r);
	r.a = slot_up(&r, mac_a);
	bring_up(&r, r.a);
	CHECK_EQ(virtio_mmio_state_save(&r.a->t, &r.w, &r.eb), -EBUSY);
	CHECK_EQ(r.w.len, 0);
	virtio_device_pause(&r.a->net.vdev);
	CHECK_EQ(virtio_mmio_state_save(&r.a->t, &r.w, &r.eb), 0);
	CHECK(r.w.len > 0);
	rig_down(&r);
}

int main(void)
{
	RUN_TEST(test_net_roundtrip_continues);
	RUN_TEST(test_net_keeps_configured_mac);
	RUN_TEST(test_refuses_bad_queue_size);
	RUN_TEST(test_refuses_ring_outside_memory);
	RUN_TEST(test_refuses_illegal_status);
	RUN_TEST(test_refuses_truncated);
	RUN_TEST(test_refuses_trailing_bytes);
	RUN_TEST(test_refuses_bad_device_section);
	RUN_TEST(test_refuses_other_memory);
	RUN_TEST(test_refuses_other_device_type);
	RUN_TEST(test_refuses_other_queue_count);
	RUN_TEST(test_refuses_used_device);
	RUN_TEST(test_save_needs_pause);
	return CHECK_DONE();
}
