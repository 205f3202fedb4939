/*
 * What the MMDS frame interceptor costs ordinary traffic, in process: the
 * virtio-net device and its loopback backend (as bench/net_loopback.c), once
 * as is and once with the backend wrapped by mmds_intercept_create (the
 * whole MMDS path: HTTP server, libslirp endpoint, interceptor). The frames
 * are Ethernet + IPv4 to another host, so every one is looked at and passed
 * on; the loopback's RX comes back through the interceptor's sink. Runs of
 * the two set-ups alternate; for 64-, 1500- and 65536-byte frames it prints
 * the medians of RUNS runs (frames per second of CPU time of the thread), and the median of the per-pair ratios
 * (target >= 0.98).
 *
 * Usage: mmds_overhead [--quick]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
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
#include "mmds/intercept.h"
#include "mmds/mmds.h"
#include "net/net_device.h"
#include "virtio/device.h"
#include "count_transport.h"
#include "vdriver.h"

#define QSIZE     256u
#define RUNS      9
#define MEM_BASE  (1ull << 30)
#define MEM_SIZE  (80ull << 20)

static const uint32_t frame_sizes[] = { 64, 1500, 65536 };
/* Where the driver stamps its sequence number: after the IPv4 header. */
#define SEQ_OFF (NET_HDR_LEN + 40u)

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
	struct mmds *mmds;               /* with the interceptor only */
};

static struct world w;               /* the net device is too big for the stack */

/* This thread's CPU time: the machine is shared, and what the interceptor
 * costs is CPU per frame, which other processes' load does not change
 * (wall time would count their time slices as ours). */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
	fprintf(stderr, "mmds_overhead: %s\n", what);
	exit(1);
}

/* stamp_ipv4 - Ethernet and IPv4 headers of a frame to 10.0.0.1. */
static void stamp_ipv4(uint8_t *f)
{
	static const uint8_t eth[14] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00 };
	static const uint8_t ip[20] = { 0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0,
					10, 0, 0, 2, 10, 0, 0, 1 };

	memcpy(f, eth, sizeof(eth));
	memcpy(f + 14, ip, sizeof(ip));
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
		/* A zero header (no offloads), then Ethernet + IPv4 to 10.0.0.1:
		 * ordinary traffic, which the interceptor must look at and pass. */
		memset(w.tx_host[i], 0, NET_HDR_LEN);
		memset(w.tx_host[i] + NET_HDR_LEN, 0x5a, w.frame);
		stamp_ipv4(w.tx_host[i] + NET_HDR_LEN);
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

static void world_up(uint32_t frame, bool with_mmds)
{
	char err[128];
	struct net_config_opts opts = { .mac = { 0x52, 0x54, 0, 0xbe, 0x4c, 1 }, .mtu = 1500 };

	memset(&w, 0, sizeof(w));
	w.frame = frame;
	if (vd_mem_init(&w.mem, MEM_BASE, MEM_SIZE, 0) || event_loop_init(&w.loop))
		die("cannot set up guest memory or the event loop");
	struct net_backend *be = net_loopback_create(&w.loop, NULL, err, sizeof(err));
	if (be && with_mmds) {
		struct mmds_config cfg = { .version = MMDS_V1 };
		inet_pton(AF_INET, "169.254.169.254", &cfg.ipv4);
		w.mmds = mmds_new(&cfg);
		be = w.mmds ? mmds_intercept_create(&w.loop, be, w.mmds, err, sizeof(err)) : NULL;
	}
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
	mmds_free(w.mmds);
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
		memcpy(w.tx_host[h] + SEQ_OFF, &w.tx_seq, sizeof(w.tx_seq));
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
		memcpy(&seq, w.rx_host[id] + SEQ_OFF, sizeof(seq));
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

/* bench_once - frames/s of one world over @seconds (after a warm-up). */
static double bench_once(uint32_t frame, bool with_mmds, double seconds)
{
	world_up(frame, with_mmds);
	run_frames(seconds / 4);
	double fps = run_frames(seconds);
	drain_and_check();
	world_down();
	return fps;
}

int main(int argc, char **argv)
{
	double seconds = 0.5;
	bool ok = true;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			seconds = 0.05;
		} else {
			fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
			return 2;
		}
	}
	log_threshold = LOG_WARN;
	printf("mmds_overhead: virtio-net + loopback, without and with the MMDS interceptor, "
	       "median of %d alternating runs of %.2f s\n", RUNS, seconds);
	for (unsigned i = 0; i < ARRAY_SIZE(frame_sizes); i++) {
		double plain[RUNS], mmds[RUNS];
		for (unsigned r = 0; r < RUNS; r++) {
			plain[r] = bench_once(frame_sizes[i], false, seconds);
			mmds[r] = bench_once(frame_sizes[i], true, seconds);
		}
		/* The ratio of each pair of neighbouring runs, then their median:
		 * steadier than a ratio of medians on a shared machine. */
		double ratio[RUNS];
		for (unsigned r = 0; r < RUNS; r++)
			ratio[r] = mmds[r] / plain[r];
		double p = median(plain, RUNS), m = median(mmds, RUNS), q = median(ratio, RUNS);
		printf("  %5u-byte frames: plain %8.3f M frames/CPU-s   with MMDS %8.3f M frames/CPU-s   "
		       "ratio %.3f (%s)\n", frame_sizes[i], p / 1e6, m / 1e6, q,
		       q >= 0.98 ? "target >= 0.98 met" : "target >= 0.98 NOT met");
		ok &= q >= 0.98;
		fflush(stdout);
	}
	printf("  target: interceptor >= 98%% of plain at every size -> %s\n", ok ? "met" : "NOT met");
	return 0;
}
