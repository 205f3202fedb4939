/*
 * In-process virtio-net benchmark: the test driver (tests/support/vdriver)
 * plays the guest against the net device and its loopback backend, so every
 * frame the guest sends comes back on its RX queue (the world is
 * tests/support/net_bench). No socket, no VMM: kicks go straight to
 * dev->ops->queue_notify, and interrupts are only counted.
 *
 * Cases: 64-byte, 1500-byte and 65536-byte plain frames (a zero virtio-net
 * header, no offloads acked); then 64 KiB TCP/IPv4 GSO frames (CSUM,
 * GUEST_CSUM, HOST_TSO4 and GUEST_TSO4 acked; NEEDS_CSUM, GSO_TCPV4, MSS
 * 1448), which loopback hands back whole, once into RX buffers that hold
 * one (header + NET_OFFLOAD_FRAME_MAX) and once with MRG_RXBUF into 4 KiB
 * RX buffers, as Linux posts them, so the device gathers 17 per frame;
 * and 64-byte plain frames with those features and buffers (information).
 * Each reports frames per second (RX kept full, TX kept fed) and the
 * bandwidth of a plain memcpy of the same frame between the same TX and RX
 * buffers (in 4 KiB pieces for the 4 KiB buffers), in the same run. Every
 * figure is the median of 5 runs. Targets (the issue's): >= 4 M 64-byte
 * frames/s on one core, and 64 KiB GSO frames at >= 80% of memcpy; the
 * plain 64 KiB frames' fraction is printed for information.
 *
 * Last, the cost of the seccomp filters: 64-byte frames moved by a thread
 * that installed the queue-pair thread's filter (SECCOMP_NET_QUEUE, as
 * `vhost net` does) against a thread without, interleaved, RUNS each; the
 * loop's own syscalls go through the filter. They are few here (an
 * epoll_wait per idle pass of the loop: about 30 thousand in a --quick run
 * against tens of millions of frames), so this bounds the filter's cost on
 * the device's own code; bench/uml_iperf.sh --seccomp measures it with a
 * real driver, where every kick and interrupt is a syscall. What the filter
 * adds to one syscall is measured too: an eventfd write and read (a kick
 * and its wake-up), 200 thousand pairs, on a thread with the filter and one
 * without, interleaved.
 * Target (the confinement issue's): filtered >= 97% of unfiltered.
 *
 * Usage: net_loopback [--quick]   (--quick: short runs, for CI)
 * Exit status 1 only when the data path misbehaves (a stall, a frame out of
 * order or of the wrong length or header, counters that disagree); missing
 * a target is reported, not failed.
 */
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/compiler.h"
#include "core/log.h"
#include "core/seccomp_filter.h"
#include "net/offload.h"
#include "net_bench.h"

#define RUNS      5
#define MRG_RX_BUF 4096u      /* what Linux posts with MRG_RXBUF: a page */
#define TSO4_FEATURES (NET_F(VIRTIO_NET_F_CSUM) | NET_F(VIRTIO_NET_F_GUEST_CSUM) | \
		       NET_F(VIRTIO_NET_F_HOST_TSO4) | NET_F(VIRTIO_NET_F_GUEST_TSO4))

struct bench_case {
	const char *label;
	uint32_t frame;
	struct nb_opts opts;
};

enum { C_64, C_1500, C_64K, C_GSO, C_GSO_MRG, C_64_MRG, N_CASES };

static const struct bench_case cases[N_CASES] = {
	[C_64] = { "   64-byte frames", 64,
		   { .name = "net_loopback", .clock = CLOCK_MONOTONIC, .seq_off = NET_HDR_LEN } },
	[C_1500] = { " 1500-byte frames", 1500,
		     { .name = "net_loopback", .clock = CLOCK_MONOTONIC, .seq_off = NET_HDR_LEN } },
	[C_64K] = { "65536-byte frames", 65536,
		    { .name = "net_loopback", .clock = CLOCK_MONOTONIC, .seq_off = NET_HDR_LEN } },
	/* The sequence number goes past the Ethernet, IPv4 and TCP headers. */
	[C_GSO] = { "65536-byte GSO TCPv4, 64 KiB RX buffers", 65536,
		    { .name = "net_loopback", .clock = CLOCK_MONOTONIC,
		      .seq_off = NET_HDR_LEN + NB_TSO4_HDR_LEN, .features = TSO4_FEATURES,
		      .rx_buf = NET_HDR_LEN + NET_OFFLOAD_FRAME_MAX, .tso4 = true } },
	[C_GSO_MRG] = { "65536-byte GSO TCPv4, MRG_RXBUF 4 KiB RX buffers", 65536,
			{ .name = "net_loopback", .clock = CLOCK_MONOTONIC,
			  .seq_off = NET_HDR_LEN + NB_TSO4_HDR_LEN,
			  .features = TSO4_FEATURES | NET_F(VIRTIO_NET_F_MRG_RXBUF),
			  .rx_buf = MRG_RX_BUF, .tso4 = true } },
	/* Small frames with what Linux acks (offloads, mergeable 4 KiB buffers):
	 * each still takes one buffer. */
	[C_64_MRG] = { "   64-byte frames, offloads + MRG_RXBUF 4 KiB RX buffers", 64,
		       { .name = "net_loopback", .clock = CLOCK_MONOTONIC, .seq_off = NET_HDR_LEN,
			 .features = TSO4_FEATURES | NET_F(VIRTIO_NET_F_MRG_RXBUF),
			 .rx_buf = MRG_RX_BUF } },
};

static struct nb_world w;            /* the net device is too big for the stack */

/* Copy TX buffer @i's frame into the RX buffers from *@next on, after a
 * header's room in the first, as many as it fills (one when they hold a
 * frame), rotating like the ring does. */
static void copy_frame(unsigned i, unsigned *next)
{
	const uint8_t *src = w.tx_host[i] + NET_HDR_LEN;
	uint32_t left = w.frame, off = NET_HDR_LEN;

	while (left) {
		uint32_t n = MIN(left, w.rx_len - off);
		memcpy(w.rx_host[*next] + off, src, n);
		/* Keep the copy from being optimised away. */
		__asm__ volatile("" : : "r"(w.rx_host[*next]) : "memory");
		src += n;
		left -= n;
		off = 0;
		*next = (*next + 1) % NB_QSIZE;
	}
}

/* memcpy of the same size between the same buffers, rotating like the
 * rings do. Returns bytes per second. */
static double run_memcpy(double seconds)
{
	uint64_t copies = 0;
	unsigned next = 0;
	double start = nb_now(&w), end = start + seconds, t = start;

	while (t < end) {
		for (unsigned i = 0; i < NB_QSIZE; i++)
			copy_frame(i, &next);
		copies += NB_QSIZE;
		t = nb_now(&w);
	}
	return (double)copies * w.frame / (t - start);
}

struct result {
	double fps, memcpy_bps;
	uint64_t rx_irqs, tx_irqs, frames;
};

static struct result bench_case(const struct bench_case *c, double seconds)
{
	double fps[RUNS], bps[RUNS];
	struct result res;

	nb_world_up(&w, &c->opts, c->frame);
	nb_run_frames(&w, seconds / 4);                 /* warm up: fault in, settle the rings */
	run_memcpy(seconds / 4);
	uint64_t rx_irq0 = w.transport.used[NET_RX_QUEUE];
	uint64_t tx_irq0 = w.transport.used[NET_TX_QUEUE];
	uint64_t seq0 = w.rx_seq;
	for (unsigned r = 0; r < RUNS; r++) {
		fps[r] = nb_run_frames(&w, seconds);
		bps[r] = run_memcpy(seconds);
	}
	res.rx_irqs = w.transport.used[NET_RX_QUEUE] - rx_irq0;
	res.tx_irqs = w.transport.used[NET_TX_QUEUE] - tx_irq0;
	res.frames = w.rx_seq - seq0;
	res.fps = nb_median(fps, RUNS);
	res.memcpy_bps = nb_median(bps, RUNS);
	nb_drain_and_check(&w);
	nb_world_down(&w);
	return res;
}

#define SYSCALL_PAIRS 200000

struct filtered_run {
	bool filter, syscalls;      /* syscalls: time eventfd pairs, not frames */
	double seconds, result;     /* frames/s, or ns per write+read pair */
};

/* ns per eventfd write + read, the calls a kick and its wake-up make. */
static double time_eventfd_pairs(int fd)
{
	uint64_t v = 1;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (unsigned i = 0; i < SYSCALL_PAIRS; i++) {
		if (write(fd, &v, sizeof(v)) != sizeof(v) || read(fd, &v, sizeof(v)) != sizeof(v)) {
			fprintf(stderr, "net_loopback: eventfd write/read failed\n");
			exit(1);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) /
	       SYSCALL_PAIRS;
}

static void *filtered_run_main(void *arg)
{
	struct filtered_run *run = arg;
	/* Made before the filter: a queue pair's thread creates no descriptor. */
	int fd = run->syscalls ? eventfd(0, EFD_CLOEXEC) : -1;

	if (run->syscalls && fd < 0) {
		fprintf(stderr, "net_loopback: eventfd failed\n");
		exit(1);
	}
	/* As a queue pair's thread of `vhost net` has them: started after the
	 * main thread's filter, it runs under both. */
	if (run->filter) {
		seccomp_filter_enter(SECCOMP_MAIN);
		seccomp_filter_enter(SECCOMP_NET_QUEUE);
	}
	run->result = run->syscalls ? time_eventfd_pairs(fd) : nb_run_frames(&w, run->seconds);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* One run on a thread of its own, with or without the queue-pair filter
 * (a thread's filter ends with the thread). */
static double run_on_thread(bool filter, bool syscalls, double seconds)
{
	struct filtered_run run = { .filter = filter, .syscalls = syscalls, .seconds = seconds };
	pthread_t t;

	if (pthread_create(&t, NULL, filtered_run_main, &run) != 0) {
		fprintf(stderr, "net_loopback: pthread_create failed\n");
		exit(1);
	}
	pthread_join(t, NULL);
	return run.result;
}

/* ns per eventfd write + read pair with the filter and without, medians of
 * RUNS interleaved runs. */
static void syscall_cost(double *on_ns, double *off_ns)
{
	double on[RUNS], off[RUNS];

	for (unsigned r = 0; r < RUNS; r++) {
		off[r] = run_on_thread(false, true, 0);
		on[r] = run_on_thread(true, true, 0);
	}
	*on_ns = nb_median(on, RUNS);
	*off_ns = nb_median(off, RUNS);
}

/* Filtered over unfiltered 64-byte frames per second, medians of RUNS
 * interleaved runs each. */
static double seccomp_cost(double seconds, double *on_fps, double *off_fps)
{
	double on[RUNS], off[RUNS];

	nb_world_up(&w, &cases[C_64].opts, cases[C_64].frame);
	nb_run_frames(&w, seconds / 4);
	for (unsigned r = 0; r < RUNS; r++) {
		off[r] = run_on_thread(false, false, seconds);
		on[r] = run_on_thread(true, false, seconds);
	}
	nb_drain_and_check(&w);
	nb_world_down(&w);
	*on_fps = nb_median(on, RUNS);
	*off_fps = nb_median(off, RUNS);
	return *on_fps / *off_fps;
}

/* The bandwidth of case @r's frames as a fraction of its memcpy's. */
static double of_memcpy(const struct result *r, uint32_t frame)
{
	return r->fps * frame / r->memcpy_bps;
}

int main(int argc, char **argv)
{
	double seconds = nb_seconds_arg(argc, argv);
	struct result res[N_CASES];

	log_threshold = LOG_WARN;
	printf("net_loopback: virtio-net + loopback backend, queues of %u, EVENT_IDX, "
	       "median of %d runs of %.2f s\n", NB_QSIZE, RUNS, seconds);
	for (unsigned i = 0; i < N_CASES; i++) {
		const struct bench_case *c = &cases[i];
		res[i] = bench_case(c, seconds);
		double gbps = res[i].fps * c->frame * 8 / 1e9;
		printf("  %s: %8.3f M frames/s (%7.2f Gbit/s)   memcpy %7.2f GB/s "
		       "(%8.3f M copies/s)   interrupts per 1k frames: rx %.2f tx %.2f\n",
		       c->label, res[i].fps / 1e6, gbps, res[i].memcpy_bps / 1e9,
		       res[i].memcpy_bps / c->frame / 1e6,
		       res[i].frames ? 1000.0 * res[i].rx_irqs / res[i].frames : 0.0,
		       res[i].frames ? 1000.0 * res[i].tx_irqs / res[i].frames : 0.0);
		fflush(stdout);
	}
	double plain = of_memcpy(&res[C_64K], 65536);
	double gso = of_memcpy(&res[C_GSO], 65536), mrg = of_memcpy(&res[C_GSO_MRG], 65536);
	printf("  64 KiB frames (plain, information): %.2f GB/s = %.1f%% of memcpy\n",
	       res[C_64K].fps * 65536 / 1e9, 100 * plain);
	printf("  64 KiB GSO frames, 64 KiB RX buffers: %.2f GB/s = %.1f%% of memcpy\n",
	       res[C_GSO].fps * 65536 / 1e9, 100 * gso);
	printf("  64 KiB GSO frames, MRG_RXBUF 4 KiB RX buffers: %.2f GB/s = %.1f%% of memcpy\n",
	       res[C_GSO_MRG].fps * 65536 / 1e9, 100 * mrg);
	printf("  64-byte frames, offloads + MRG_RXBUF 4 KiB RX buffers (information): "
	       "%.3f M frames/s\n", res[C_64_MRG].fps / 1e6);
	double on_fps, off_fps, cost = seccomp_cost(seconds, &on_fps, &off_fps);
	printf("  64-byte frames, queue-pair seccomp filter on: %.3f M frames/s, off: %.3f M "
	       "(interleaved)\n", on_fps / 1e6, off_fps / 1e6);
	double on_ns, off_ns;
	syscall_cost(&on_ns, &off_ns);
	printf("  eventfd write + read (a kick and its wake-up): %.0f ns with the queue-pair "
	       "filter, %.0f ns without: %.0f ns per syscall (information)\n",
	       on_ns, off_ns, (on_ns - off_ns) / 2);
	printf("  target: >= 4 M 64-byte frames/s on one core: %.3f M -> %s\n",
	       res[C_64].fps / 1e6, res[C_64].fps >= 4e6 ? "met" : "NOT met");
	printf("  target: 64 KiB GSO frames >= 80%% of memcpy, 64 KiB RX buffers: %.1f%% -> %s\n",
	       100 * gso, gso >= 0.80 ? "met" : "NOT met");
	printf("  target: 64 KiB GSO frames >= 80%% of memcpy, MRG_RXBUF 4 KiB RX buffers: "
	       "%.1f%% -> %s\n", 100 * mrg, mrg >= 0.80 ? "met" : "NOT met");
	printf("  target: seccomp filter on >= 97%% of off: %.1f%% -> %s\n", 100 * cost,
	       cost >= 0.97 ? "met" : "NOT met");
	return 0;
}
