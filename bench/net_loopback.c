/*
 * In-process virtio-net benchmark: the test driver (tests/support/vdriver)
 * plays the guest against the net device and its loopback backend, so every
 * frame the guest sends comes back on its RX queue. No socket, no VMM: kicks
 * go straight to dev->ops->queue_notify, and interrupts are only counted.
 *
 * For 64-byte, 1500-byte and 65536-byte frames it reports frames per second
 * (RX kept full, TX kept fed), and the bandwidth of a plain memcpy of the
 * same size between the same TX and RX buffers, in the same run; then the
 * 64 KiB frames' bandwidth as a fraction of memcpy's. Every figure is the
 * median of 5 runs. Targets: >= 4 M 64-byte frames/s on one core, and 64 KiB
 * frames at >= 70% of memcpy.
 *
 * Usage: net_loopback [--quick]   (--quick: short runs, for CI)
 * Exit status 1 only when the data path misbehaves (a stall, a frame out of
 * order or of the wrong length, counters that disagree); missing a target
 * is reported, not failed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "core/compiler.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "net/net_device.h"
#include "virtio/device.h"
#include "count_transport.h"
#include "vdriver.h"

#define QSIZE     256u
#define RUNS      5
#define MEM_BASE  (1ull << 30)
#define MEM_SIZE  (80ull << 20)

static const uint32_t frame_sizes[] = { 64, 1500, 65536 };

/* ---- one benchmark world: memory, device, driver queues, buffers ---- */

struct world {
	struct vd_mem mem;
	struct event_loop loop;
	struct net_device net;
	struct count_transport transport;   /* counts interrupts */
	struct vd_queue rxq, txq;
	uint32_t frame;                  /* payload bytes per frame */
	uint64_t rx_gpa[QSIZE], tx_gpa[QSIZE];
	uint8_t *rx_host[QSIZE], *tx_host[QSIZE];
	uint64_t tx_seq, rx_seq;         /* frames stamped / checked */
};

static struct world w;               /* the net device is too big for the stack */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
	fprintf(stderr, "net_loopback: %s\n", what);
	exit(1);
}

/* One buffer per descriptor: the head of a one-descriptor chain picks it. */
static void alloc_buffers(void)
{
	uint64_t len = NET_HDR_LEN + w.frame;

	for (unsigned i = 0; i < QSIZE; i++) {
		w.tx_gpa[i] = vd_alloc(&w.mem, len, 64);
		w.rx_gpa[i] = vd_alloc(&w.mem, len, 64);
		if (w.tx_gpa[i] == VD_NO_GPA || w.rx_gpa[i] == VD_NO_GPA)
			die("guest memory too small for the buffers");
		w.tx_host[i] = vd_ptr(&w.mem, w.tx_gpa[i], len);
		w.rx_host[i] = vd_ptr(&w.mem, w.rx_gpa[i], len);
		/* A zero header (no offloads) and a recognisable payload. */
		memset(w.tx_host[i], 0, NET_HDR_LEN);
		memset(w.tx_host[i] + NET_HDR_LEN, 0x5a, w.frame);
	}
}

static void setup_queue(struct vd_queue *q, struct virtqueue *vq)
{
	struct vd_queue_opts o = { .size = QSIZE, .event_idx = true };

	if (vd_queue_init(q, &w.mem, &o))
		die("cannot lay out the rings");
	vq->size = q->size;
	vq->desc_gpa = q->desc_gpa;
	vq->avail_gpa = q->avail_gpa;
	vq->used_gpa = q->used_gpa;
}

static void world_up(uint32_t frame)
{
	char err[128];
	struct net_config_opts opts = { .mac = { 0x52, 0x54, 0, 0xbe, 0x4c, 1 }, .mtu = 1500 };

	memset(&w, 0, sizeof(w));
	w.frame = frame;
	if (vd_mem_init(&w.mem, MEM_BASE, MEM_SIZE, 0) || event_loop_init(&w.loop))
		die("cannot set up guest memory or the event loop");
	struct net_backend *be = net_loopback_create(&w.loop, NULL, err, sizeof(err));
	if (!be || net_device_init(&w.net, &opts, be, &w.loop))
		die("cannot create the loopback net device");
	count_transport_attach(&w.transport, &w.net.vdev);
	uint64_t features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX);
	if (virtio_device_set_features(&w.net.vdev, features))
		die("features refused");
	setup_queue(&w.rxq, &w.net.vqs[NET_RX_QUEUE]);
	setup_queue(&w.txq, &w.net.vqs[NET_TX_QUEUE]);
	alloc_buffers();
	w.net.vdev.mem = &w.mem.gm;
	if (virtio_device_activate(&w.net.vdev))
		die("activate failed");
}

static void world_down(void)
{
	struct net_backend *be = w.net.backend;

	virtio_device_reset(&w.net.vdev);
	net_device_destroy(&w.net);
	be->ops->destroy(be);
	vd_queue_destroy(&w.rxq);
	vd_queue_destroy(&w.txq);
	event_loop_destroy(&w.loop);
	vd_mem_destroy(&w.mem);
}

/* ---- the driver's side of the data path ---- */

static void refill_rx(void)
{
	struct vd_buf b = { 0, NET_HDR_LEN + w.frame, true };

	while (w.rxq.num_free) {
		b.gpa = w.rx_gpa[w.rxq.free_head];
		if (vd_add_chain(&w.rxq, &b, 1, false) < 0)
			die("RX add failed");
	}
	if (vd_publish(&w.rxq))
		w.net.vdev.ops->queue_notify(&w.net.vdev, NET_RX_QUEUE);
}

static void feed_tx(void)
{
	struct vd_buf b = { 0, NET_HDR_LEN + w.frame, false };

	while (w.txq.num_free) {
		uint16_t h = w.txq.free_head;
		/* The guest writes each frame: here a sequence number. */
		memcpy(w.tx_host[h] + NET_HDR_LEN, &w.tx_seq, sizeof(w.tx_seq));
		w.tx_seq++;
		b.gpa = w.tx_gpa[h];
		if (vd_add_chain(&w.txq, &b, 1, false) < 0)
			die("TX add failed");
	}
	if (vd_publish(&w.txq))
		w.net.vdev.ops->queue_notify(&w.net.vdev, NET_TX_QUEUE);
}

/* Read back completions; returns the frames received. */
static unsigned reap(void)
{
	uint32_t id, len;
	unsigned got = 0;
	int r;

	while ((r = vd_get_used(&w.txq, &id, &len)) == 1)
		;
	if (r < 0)
		die("TX completion for a head not outstanding");
	while ((r = vd_get_used(&w.rxq, &id, &len)) == 1) {
		uint64_t seq;
		if (len != NET_HDR_LEN + w.frame)
			die("RX frame of the wrong length");
		memcpy(&seq, w.rx_host[id] + NET_HDR_LEN, sizeof(seq));
		if (seq != w.rx_seq)
			die("RX frame out of order or corrupted");
		w.rx_seq++;
		got++;
	}
	if (r < 0)
		die("RX completion for a head not outstanding or too long");
	/* Interrupts back on, as a driver leaving its poll loop would. */
	vd_set_used_event(&w.txq, w.txq.last_used);
	vd_set_used_event(&w.rxq, w.rxq.last_used);
	return got;
}

/* Frames per second over @seconds of steady loopback traffic. */
static double run_frames(double seconds)
{
	uint64_t frames = 0;
	unsigned idle = 0;
	struct net_counters before = w.net.counters;
	double start = now_s(), end = start + seconds, t = start;

	while (t < end) {
		for (unsigned i = 0; i < 16; i++) {
			refill_rx();
			feed_tx();
			unsigned got = reap();
			frames += got;
			/* The device's own deferred work (a drain that used its budget). */
			if (!got && event_loop_once(&w.loop, 0) == 0 && ++idle > 100000)
				die("stalled: no frames move");
			if (got)
				idle = 0;
		}
		t = now_s();
	}
	if (w.net.counters.rx_dropped_no_buffer != before.rx_dropped_no_buffer ||
	    w.net.counters.rx_dropped_too_big != before.rx_dropped_too_big ||
	    w.net.counters.tx_chain_invalid != before.tx_chain_invalid)
		die("frames were dropped");
	return (double)frames / (t - start);
}

/* Stop sending, let everything in flight come back, and check that every
 * frame the device counted was seen once, in order. */
static void drain_and_check(void)
{
	for (unsigned quiet = 0; quiet < 100;) {
		refill_rx();
		event_loop_once(&w.loop, 0);
		quiet = reap() ? 0 : quiet + 1;
	}
	if (w.net.counters.tx_packets != w.rx_seq || w.net.counters.rx_packets != w.rx_seq)
		die("device counters disagree with the frames seen");
}

/* memcpy of the same size between the same buffer pairs, rotating like the
 * rings do. Returns bytes per second. */
static double run_memcpy(double seconds)
{
	uint64_t copies = 0;
	double start = now_s(), end = start + seconds, t = start;

	while (t < end) {
		for (unsigned i = 0; i < QSIZE; i++) {
			memcpy(w.rx_host[i] + NET_HDR_LEN, w.tx_host[i] + NET_HDR_LEN, w.frame);
			/* Keep the copy from being optimised away. */
			__asm__ volatile("" : : "r"(w.rx_host[i]) : "memory");
		}
		copies += QSIZE;
		t = now_s();
	}
	return (double)copies * w.frame / (t - start);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

struct result {
	double fps, memcpy_bps;
	uint64_t rx_irqs, tx_irqs, frames;
};

static struct result bench_size(uint32_t frame, double seconds)
{
	double fps[RUNS], bps[RUNS];
	struct result res;

	world_up(frame);
	run_frames(seconds / 4);                  /* warm up: fault in, settle the rings */
	run_memcpy(seconds / 4);
	uint64_t rx_irq0 = w.transport.used[NET_RX_QUEUE];
	uint64_t tx_irq0 = w.transport.used[NET_TX_QUEUE];
	uint64_t seq0 = w.rx_seq;
	for (unsigned r = 0; r < RUNS; r++) {
		fps[r] = run_frames(seconds);
		bps[r] = run_memcpy(seconds);
	}
	res.rx_irqs = w.transport.used[NET_RX_QUEUE] - rx_irq0;
	res.tx_irqs = w.transport.used[NET_TX_QUEUE] - tx_irq0;
	res.frames = w.rx_seq - seq0;
	res.fps = median(fps, RUNS);
	res.memcpy_bps = median(bps, RUNS);
	drain_and_check();
	world_down();
	return res;
}

int main(int argc, char **argv)
{
	double seconds = 0.5;
	struct result res[3];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			seconds = 0.05;
		} else {
			fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
			return 2;
		}
	}
	log_threshold = LOG_WARN;
	printf("net_loopback: virtio-net + loopback backend, queues of %u, EVENT_IDX, "
	       "median of %d runs of %.2f s\n", QSIZE, RUNS, seconds);
	for (unsigned i = 0; i < 3; i++) {
		res[i] = bench_size(frame_sizes[i], seconds);
		double gbps = res[i].fps * frame_sizes[i] * 8 / 1e9;
		printf("  %5u-byte frames: %8.3f M frames/s (%7.2f Gbit/s)   memcpy %7.2f GB/s "
		       "(%8.3f M copies/s)   interrupts per 1k frames: rx %.2f tx %.2f\n",
		       frame_sizes[i], res[i].fps / 1e6, gbps, res[i].memcpy_bps / 1e9,
		       res[i].memcpy_bps / frame_sizes[i] / 1e6,
		       res[i].frames ? 1000.0 * res[i].rx_irqs / res[i].frames : 0.0,
		       res[i].frames ? 1000.0 * res[i].tx_irqs / res[i].frames : 0.0);
		fflush(stdout);
	}
	double frac = res[2].fps * 65536 / res[2].memcpy_bps;
	printf("  64 KiB frames: %.2f GB/s = %.1f%% of memcpy\n", res[2].fps * 65536 / 1e9,
	       100 * frac);
	printf("  target: >= 4 M 64-byte frames/s on one core: %.3f M -> %s\n",
	       res[0].fps / 1e6, res[0].fps >= 4e6 ? "met" : "NOT met");
	printf("  target: 64 KiB frames >= 70%% of memcpy: %.1f%% -> %s\n", 100 * frac,
	       frac >= 0.70 ? "met" : "NOT met");
	return 0;
}
