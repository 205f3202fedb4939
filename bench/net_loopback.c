/*
 * In-process virtio-net benchmark: the test driver (tests/support/vdriver)
 * plays the guest against the net device and its loopback backend, so every
 * frame the guest sends comes back on its RX queue (the world is
 * tests/support/net_bench). No socket, no VMM: kicks go straight to
 * dev->ops->queue_notify, and interrupts are only counted.
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
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "net_bench.h"

#define RUNS      5

static const uint32_t frame_sizes[] = { 64, 1500, 65536 };

static const struct nb_opts opts = {
	.name = "net_loopback",
	.clock = CLOCK_MONOTONIC,
	.seq_off = NET_HDR_LEN,
};

static struct nb_world w;            /* the net device is too big for the stack */

/* memcpy of the same size between the same buffer pairs, rotating like the
 * rings do. Returns bytes per second. */
static double run_memcpy(double seconds)
{
	uint64_t copies = 0;
	double start = nb_now(&w), end = start + seconds, t = start;

	while (t < end) {
		for (unsigned i = 0; i < NB_QSIZE; i++) {
			memcpy(w.rx_host[i] + NET_HDR_LEN, w.tx_host[i] + NET_HDR_LEN, w.frame);
			/* Keep the copy from being optimised away. */
			__asm__ volatile("" : : "r"(w.rx_host[i]) : "memory");
		}
		copies += NB_QSIZE;
		t = nb_now(&w);
	}
	return (double)copies * w.frame / (t - start);
}

struct result {
	double fps, memcpy_bps;
	uint64_t rx_irqs, tx_irqs, frames;
};

static struct result bench_size(uint32_t frame, double seconds)
{
	double fps[RUNS], bps[RUNS];
	struct result res;

	nb_world_up(&w, &opts, frame);
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

int main(int argc, char **argv)
{
	double seconds = nb_seconds_arg(argc, argv);
	struct result res[3];

	log_threshold = LOG_WARN;
	printf("net_loopback: virtio-net + loopback backend, queues of %u, EVENT_IDX, "
	       "median of %d runs of %.2f s\n", NB_QSIZE, RUNS, seconds);
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
