/*
 * In-process virtio-net bench world: see net_bench.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "core/compiler.h"
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

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The one's-complement sum of big-endian 16-bit words, not complemented. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t acc)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		acc += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return acc;
}

/* A TSO4 frame's vnet header and its Ethernet, IPv4 and TCP headers, as
 * Linux sends one: the IPv4 checksum complete, the TCP checksum field
 * holding the pseudo-header's sum (NEEDS_CSUM finishes it). */
static void stamp_tso4(uint8_t *buf, uint32_t frame)
{
	struct virtio_net_hdr_v1 h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = NB_TSO4_HDR_LEN,
		.gso_size = NB_TSO4_MSS,
		.csum_start = 14 + 20,
		.csum_offset = 16,
	};
	uint8_t *eth = buf + NET_HDR_LEN, *ip = eth + 14, *tcp = ip + 20;
	static const uint8_t macs[12] = { 0x52, 0x54, 0, 0xbe, 0x4c, 1,
					  0x52, 0x54, 0, 0xbe, 0x4c, 2 };

	memcpy(buf, &h, sizeof(h));
	memcpy(eth, macs, sizeof(macs));
	put_be16(eth + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put_be16(ip + 2, (uint16_t)(frame - 14));
	put_be16(ip + 4, 1);                          /* id */
	put_be16(ip + 6, 0x4000);                     /* DF */
	ip[8] = 64;
	ip[9] = 6;                                    /* TCP */
	static const uint8_t addrs[8] = { 10, 0, 0, 2, 10, 0, 0, 1 };
	memcpy(ip + 12, addrs, sizeof(addrs));
	put_be16(ip + 10, (uint16_t)~sum16(ip, 20, 0));
	memset(tcp, 0, 20);
	put_be16(tcp, 40000);
	put_be16(tcp + 2, 5201);
	tcp[7] = 1;                                   /* seq 1 */
	tcp[11] = 1;                                  /* ack 1 */
	tcp[12] = 5 << 4;                             /* data offset: 20 bytes */
	tcp[13] = 0x18;                               /* PSH, ACK */
	put_be16(tcp + 14, 0xffff);
	/* Pseudo-header: addresses, protocol, TCP length. */
	uint32_t ps = sum16(ip + 12, 8, 6 + (frame - 34));
	put_be16(tcp + 16, (uint16_t)ps);
}

/* One buffer per descriptor: the head of a one-descriptor chain picks it. */
static void alloc_buffers(struct nb_world *w)
{
	uint64_t len = NET_HDR_LEN + w->frame;

	for (unsigned i = 0; i < NB_QSIZE; i++) {
		w->tx_gpa[i] = vd_alloc(&w->mem, len, 64);
		w->rx_gpa[i] = vd_alloc(&w->mem, w->rx_len, 64);
		if (w->tx_gpa[i] == VD_NO_GPA || w->rx_gpa[i] == VD_NO_GPA)
			nb_die(w, "guest memory too small for the buffers");
		w->tx_host[i] = vd_ptr(&w->mem, w->tx_gpa[i], len);
		w->rx_host[i] = vd_ptr(&w->mem, w->rx_gpa[i], w->rx_len);
		/* A zero header (no offloads) and a recognisable payload. */
		memset(w->tx_host[i], 0, NET_HDR_LEN);
		memset(w->tx_host[i] + NET_HDR_LEN, 0x5a, w->frame);
		if (w->o.tso4)
			stamp_tso4(w->tx_host[i], w->frame);
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
	w->rx_len = o->rx_buf ? o->rx_buf : NET_HDR_LEN + frame;
	if (w->rx_len < NET_HDR_LEN + frame && !(o->features & (1ull << VIRTIO_NET_F_MRG_RXBUF)))
		nb_die(w, "RX buffers smaller than a frame need MRG_RXBUF");
	if (o->seq_off + sizeof(uint64_t) > MIN(w->rx_len, NET_HDR_LEN + frame) ||
	    (o->tso4 && (o->seq_off < NET_HDR_LEN + NB_TSO4_HDR_LEN || frame > 65535 + 14)))
		nb_die(w, "sequence number outside the frame's payload or first RX buffer");
	if (vd_mem_init(&w->mem, NB_MEM_BASE, NB_MEM_SIZE, 0) || event_loop_init(&w->loop))
		nb_die(w, "cannot set up guest memory or the event loop");
	struct net_backend *be = net_loopback_create(&w->loop, NULL, &eb);
	if (be && o->wrap)
		be = o->wrap(w, be, &eb);
	if (!be || net_device_init(&w->net, &opts, be, &w->loop))
		nb_die(w, "cannot create the loopback net device");
	count_transport_attach(&w->transport, &w->net.vdev);
	uint64_t features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
			    o->features;
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
	struct vd_buf b = { 0, w->rx_len, true };

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

/* One RX buffer of @len bytes completed: the first of a frame carries the
 * header (num_buffers with MRG_RXBUF, the GSO type the frame was sent
 * with) and the sequence number. True when it completes a frame. */
static bool reap_rx_buf(struct nb_world *w, uint32_t id, uint32_t len)
{
	if (!w->rx_bufs_left) {
		struct virtio_net_hdr_v1 h;
		uint64_t seq;
		memcpy(&h, w->rx_host[id], sizeof(h));
		if (h.gso_type != (w->o.tso4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_NONE) ||
		    (w->o.tso4 && h.gso_size != NB_TSO4_MSS))
			nb_die(w, "RX frame with the wrong vnet header");
		w->rx_bufs_left = w->o.features & (1ull << VIRTIO_NET_F_MRG_RXBUF) ? h.num_buffers : 1;
		if (!w->rx_bufs_left)
			nb_die(w, "RX frame in 0 buffers");
		w->rx_got_len = 0;
		memcpy(&seq, w->rx_host[id] + w->o.seq_off, sizeof(seq));
		if (seq != w->rx_seq)
			nb_die(w, "RX frame out of order or corrupted");
	} else if (!len) {
		nb_die(w, "RX frame's further buffer empty");
	}
	w->rx_got_len += len;
	if (--w->rx_bufs_left)
		return false;
	if (w->rx_got_len != NET_HDR_LEN + w->frame)
		nb_die(w, "RX frame of the wrong length");
	w->rx_seq++;
	return true;
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
	while ((r = vd_get_used(&w->rxq, &id, &len)) == 1)
		got += reap_rx_buf(w, id, len);
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
	struct net_counters before = net_device_totals(&w->net);
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
	struct net_counters after = net_device_totals(&w->net);
	if (after.rx_dropped_no_buffer != before.rx_dropped_no_buffer ||
	    after.rx_dropped_too_big != before.rx_dropped_too_big ||
	    after.tx_chain_invalid != before.tx_chain_invalid ||
	    after.tx_hdr_invalid != before.tx_hdr_invalid ||
	    after.rx_hdr_refused != before.rx_hdr_refused)
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
	if (w->rx_bufs_left)
		nb_die(w, "RX frame left incomplete (fewer buffers than num_buffers)");
	struct net_counters c = net_device_totals(&w->net);
	if (c.tx_packets != w->rx_seq || c.rx_packets != w->rx_seq)
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
