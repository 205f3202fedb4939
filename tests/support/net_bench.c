/*
 * In-process virtio-net bench world: see net_bench.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "virtio/device.h"
#include "net_bench.h"

#define NB_MEM_BASE  (1ull << 30)
#define NB_MEM_SIZE  (80ull << 20)

void nb_die(const struct nb_world *w, const char *what)
{
	fprintf(stderr, "%s: %s\n", w->o.name, what);
	exit(1);
}

double nb_now(const struct nb_world *w)
{
	struct timespec ts;

	clock_gettime(w->o.clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One buffer per descriptor: the head of a one-descriptor chain picks it. */
static void alloc_buffers(struct nb_world *w)
{
	uint64_t len = NET_HDR_LEN + w->frame;

	for (unsigned i = 0; i < NB_QSIZE; i++) {
		w->tx_gpa[i] = vd_alloc(&w->mem, len, 64);
		w->rx_gpa[i] = vd_alloc(&w->mem, len, 64);
		if (w->tx_gpa[i] == VD_NO_GPA || w->rx_gpa[i] == VD_NO_GPA)
			nb_die(w, "guest memory too small for the buffers");
		w->tx_host[i] = vd_ptr(&w->mem, w->tx_gpa[i], len);
		w->rx_host[i] = vd_ptr(&w->mem, w->rx_gpa[i], len);
		/* A zero header (no offloads) and a recognisable payload. */
		memset(w->tx_host[i], 0, NET_HDR_LEN);
		memset(w->tx_host[i] + NET_HDR_LEN, 0x5a, w->frame);
	}
}

static void setup_queue(struct nb_world *w, struct vd_queue *q, struct virtqueue *vq)
{
	struct vd_queue_opts o = { .size = NB_QSIZE, .event_idx = true };

	if (vd_queue_init(q, &w->mem, &o))
		nb_die(w, "cannot lay out the rings");
	vq->size = q->size;
	vq->desc_gpa = q->desc_gpa;
	vq->avail_gpa = q->avail_gpa;
	vq->used_gpa = q->used_gpa;
}

void nb_world_up(struct nb_world *w, const struct nb_opts *o, uint32_t frame)
{
	struct errbuf eb = { 0 };
	struct net_config_opts opts = { .mac = { 0x52, 0x54, 0, 0xbe, 0x4c, 1 }, .mtu = 1500 };

	memset(w, 0, sizeof(*w));
	w->o = *o;
	w->frame = frame;
	if (vd_mem_init(&w->mem, NB_MEM_BASE, NB_MEM_SIZE, 0) || event_loop_init(&w->loop))
		nb_die(w, "cannot set up guest memory or the event loop");
	struct net_backend *be = net_loopback_create(&w->loop, NULL, &eb);
	if (be && o->wrap)
		be = o->wrap(w, be, &eb);
	if (!be || net_device_init(&w->net, &opts, be, &w->loop))
		nb_die(w, "cannot create the loopback net device");
	count_transport_attach(&w->transport, &w->net.vdev);
	uint64_t features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX);
	if (virtio_device_set_features(&w->net.vdev, features))
		nb_die(w, "features refused");
	setup_queue(w, &w->rxq, &w->net.vqs[NET_RX_QUEUE]);
	setup_queue(w, &w->txq, &w->net.vqs[NET_TX_QUEUE]);
	alloc_buffers(w);
	w->net.vdev.mem = &w->mem.gm;
	if (virtio_device_activate(&w->net.vdev))
		nb_die(w, "activate failed");
}

void nb_world_down(struct nb_world *w)
{
	struct net_backend *be = w->net.backend;

	virtio_device_reset(&w->net.vdev);
	net_device_destroy(&w->net);
	be->ops->destroy(be);
	vd_queue_destroy(&w->rxq);
	vd_queue_destroy(&w->txq);
	event_loop_destroy(&w->loop);
	vd_mem_destroy(&w->mem);
}

/* ---- the driver's side of the data path ---- */

static void refill_rx(struct nb_world *w)
{
	struct vd_buf b = { 0, NET_HDR_LEN + w->frame, true };

	while (w->rxq.num_free) {
		b.gpa = w->rx_gpa[w->rxq.free_head];
		if (vd_add_chain(&w->rxq, &b, 1, false) < 0)
			nb_die(w, "RX add failed");
	}
	if (vd_publish(&w->rxq))
		w->net.vdev.ops->queue_notify(&w->net.vdev, NET_RX_QUEUE);
}

static void feed_tx(struct nb_world *w)
{
	struct vd_buf b = { 0, NET_HDR_LEN + w->frame, false };

	while (w->txq.num_free) {
		uint16_t h = w->txq.free_head;
		/* The guest writes each frame: here a sequence number. */
		memcpy(w->tx_host[h] + w->o.seq_off, &w->tx_seq, sizeof(w->tx_seq));
		w->tx_seq++;
		b.gpa = w->tx_gpa[h];
		if (vd_add_chain(&w->txq, &b, 1, false) < 0)
			nb_die(w, "TX add failed");
	}
	if (vd_publish(&w->txq))
		w->net.vdev.ops->queue_notify(&w->net.vdev, NET_TX_QUEUE);
}

/* Read back completions; returns the frames received. */
static unsigned reap(struct nb_world *w)
{
	uint32_t id, len;
	unsigned got = 0;
	int r;

	while ((r = vd_get_used(&w->txq, &id, &len)) == 1)
		;
	if (r < 0)
		nb_die(w, "TX completion for a head not outstanding");
	while ((r = vd_get_used(&w->rxq, &id, &len)) == 1) {
		uint64_t seq;
		if (len != NET_HDR_LEN + w->frame)
			nb_die(w, "RX frame of the wrong length");
		memcpy(&seq, w->rx_host[id] + w->o.seq_off, sizeof(seq));
		if (seq != w->rx_seq)
			nb_die(w, "RX frame out of order or corrupted");
		w->rx_seq++;
		got++;
	}
	if (r < 0)
		nb_die(w, "RX completion for a head not outstanding or too long");
	/* Interrupts back on, as a driver leaving its poll loop would. */
	vd_set_used_event(&w->txq, w->txq.last_used);
	vd_set_used_event(&w->rxq, w->rxq.last_used);
	return got;
}

double nb_run_frames(struct nb_world *w, double seconds)
{
	uint64_t frames = 0;
	unsigned idle = 0;
	struct net_counters before = w->net.counters;
	double start = nb_now(w), end = start + seconds, t = start;

	while (t < end) {
		for (unsigned i = 0; i < 16; i++) {
			refill_rx(w);
			feed_tx(w);
			unsigned got = reap(w);
			frames += got;
			/* The device's own deferred work (a drain that used its budget). */
			if (!got && event_loop_once(&w->loop, 0) == 0 && ++idle > 100000)
				nb_die(w, "stalled: no frames move");
			if (got)
				idle = 0;
		}
		t = nb_now(w);
	}
	/* Let the device finish and publish what it took (its drains run as
	 * deferred work), so no buffer it still owns is touched after this. */
	for (unsigned quiet = 0; quiet < 2;) {
		bool ran = event_loop_once(&w->loop, 0) > 0;
		quiet = reap(w) || ran ? 0 : quiet + 1;
	}
	if (w->net.counters.rx_dropped_no_buffer != before.rx_dropped_no_buffer ||
	    w->net.counters.rx_dropped_too_big != before.rx_dropped_too_big ||
	    w->net.counters.tx_chain_invalid != before.tx_chain_invalid)
		nb_die(w, "frames were dropped");
	return (double)frames / (t - start);
}

void nb_drain_and_check(struct nb_world *w)
{
	for (unsigned quiet = 0; quiet < 100;) {
		refill_rx(w);
		event_loop_once(&w->loop, 0);
		quiet = reap(w) ? 0 : quiet + 1;
	}
	if (w->net.counters.tx_packets != w->rx_seq || w->net.counters.rx_packets != w->rx_seq)
		nb_die(w, "device counters disagree with the frames seen");
}

double nb_seconds_arg(int argc, char **argv)
{
	double seconds = 0.5;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			seconds = 0.05;
		} else {
			fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
			exit(2);
		}
	}
	return seconds;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double nb_median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}
