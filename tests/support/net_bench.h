/*
 * In-process virtio-net bench world for the benches in bench/: the test
 * driver (vdriver) plays the guest against a net device whose backend is the
 * loopback (optionally wrapped by the bench), so every frame the guest sends
 * comes back on its RX queue. Kicks go straight to dev->ops->queue_notify;
 * interrupts are only counted. Any misbehaviour of the data path (a stall, a
 * frame out of order or of the wrong length, counters that disagree) ends
 * the process with status 1, after "<name>: <what>" on stderr.
 */
#ifndef KVMINI_TESTS_NET_BENCH_H
#define KVMINI_TESTS_NET_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/errbuf.h"
#include "core/event_loop.h"
#include "net/backend.h"
#include "net/net_device.h"
#include "count_transport.h"
#include "vdriver.h"

#define NB_QSIZE 256u
/* A TSO4 frame's headers (Ethernet, IPv4, TCP without options) and MSS. */
#define NB_TSO4_HDR_LEN 54u
#define NB_TSO4_MSS 1448u

struct nb_world;

/* Wraps the loopback backend @be (e.g. in an interceptor); returns the
 * backend the device is to use, or NULL (with @eb set) on failure. */
typedef struct net_backend *nb_wrap_fn(struct nb_world *w, struct net_backend *be,
				       struct errbuf *eb);

/* What differs between the benches that share the world. */
struct nb_opts {
	const char *name;        /* prefix of the messages on stderr */
	clockid_t clock;         /* what run_frames measures time in */
	uint32_t seq_off;        /* where in the buffer the sequence number goes
				  * (within the first RX buffer) */
	uint64_t features;       /* acked besides VERSION_1 and EVENT_IDX (offloads,
				  * MRG_RXBUF) */
	uint32_t rx_buf;         /* bytes per RX buffer, header included; 0: header
				  * + frame. Smaller needs MRG_RXBUF */
	bool tso4;               /* frames are TCP/IPv4 (Ethernet, IPv4 and TCP
				  * headers, NB_TSO4_HDR_LEN bytes) sent as one GSO
				  * frame: NEEDS_CSUM, GSO_TCPV4, gso_size NB_TSO4_MSS */
	nb_wrap_fn *wrap;        /* NULL: the plain loopback */
	void *wrap_ctx;          /* for @wrap's own use */
};

/* One benchmark world: memory, device, driver queues, buffers. */
struct nb_world {
	struct nb_opts o;
	struct vd_mem mem;
	struct event_loop loop;
	struct net_device net;
	struct count_transport transport;   /* counts interrupts */
	struct vd_queue rxq, txq;
	uint32_t frame;                  /* payload bytes per frame */
	uint32_t rx_len;                 /* bytes per RX buffer, header included */
	uint64_t rx_gpa[NB_QSIZE], tx_gpa[NB_QSIZE];
	uint8_t *rx_host[NB_QSIZE], *tx_host[NB_QSIZE];
	uint64_t tx_seq, rx_seq;         /* frames stamped / checked */
	uint32_t rx_bufs_left;           /* buffers of the frame being reaped (MRG_RXBUF) */
	uint64_t rx_got_len;             /* their bytes so far */
};

/* Print "<name>: @what" to stderr and exit(1). */
void nb_die(const struct nb_world *w, const char *what) __attribute__((noreturn));

/* Seconds on @w's clock. */
double nb_now(const struct nb_world *w);

/* Set up @w (zeroed first) for frames of @frame payload bytes: memory,
 * device with EVENT_IDX and @o's features, both queues, one buffer per
 * descriptor (a zero header and a 0x5a payload; with @o->tso4 a GSO header
 * and TCP/IPv4 headers before the 0x5a), active. */
void nb_world_up(struct nb_world *w, const struct nb_opts *o, uint32_t frame);

/* Tear down what nb_world_up set up, the backend included. */
void nb_world_down(struct nb_world *w);

/* Frames per second over @seconds of steady loopback traffic. */
double nb_run_frames(struct nb_world *w, double seconds);

/* Stop sending, let everything in flight come back, and check that every
 * frame the device counted was seen once, in order. */
void nb_drain_and_check(struct nb_world *w);

/* The seconds per run the command line asks for: 0.5, or 0.05 with --quick
 * (short runs, for CI). Anything else: usage on stderr and exit(2). */
double nb_seconds_arg(int argc, char **argv);

/* The median of @v[0..n) (sorts @v). */
double nb_median(double *v, unsigned n);

#endif
