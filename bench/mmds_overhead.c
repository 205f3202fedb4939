/*
 * What the MMDS frame interceptor costs ordinary traffic, in process: the
 * virtio-net device and its loopback backend (as bench/net_loopback.c), once
 * as is and once with the backend wrapped by mmds_intercept_create (the
 * whole MMDS path: HTTP server, libslirp endpoint, interceptor). The frames
 * are Ethernet + IPv4 to another host, so every one is looked at and passed
 * on; the loopback's RX comes back through the interceptor's sink. Runs of
 * the two set-ups alternate; for 64-, 1500- and 65536-byte frames it prints
 * the medians of RUNS runs (frames per second of CPU time of the thread),
 * and the median of the per-pair ratios (target >= 0.98). The world is
 * tests/support/net_bench.
 *
 * Usage: mmds_overhead [--quick]
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/compiler.h"
#include "core/log.h"
#include "mmds/intercept.h"
#include "mmds/mmds.h"
#include "net_bench.h"

#define RUNS      9

static const uint32_t frame_sizes[] = { 64, 1500, 65536 };

/* stamp_ipv4 - Ethernet and IPv4 headers of a frame to 10.0.0.1. */
static void stamp_ipv4(uint8_t *f)
{
	static const uint8_t eth[14] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00 };
	static const uint8_t ip[20] = { 0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0,
					10, 0, 0, 2, 10, 0, 0, 1 };

	memcpy(f, eth, sizeof(eth));
	memcpy(f + 14, ip, sizeof(ip));
}

/* wrap_mmds - the loopback behind the whole MMDS path; the mmds goes to
 * *ctx, for the caller to free after the world is down. */
static struct net_backend *wrap_mmds(struct nb_world *w, struct net_backend *be,
				     struct errbuf *eb)
{
	struct mmds **m = w->o.wrap_ctx;
	struct mmds_config cfg = { .version = MMDS_V1 };

	inet_pton(AF_INET, "169.254.169.254", &cfg.ipv4);
	*m = mmds_new(&cfg);
	return *m ? mmds_intercept_create(&w->loop, be, *m, eb) : NULL;
}

static struct nb_world w;            /* the net device is too big for the stack */
static struct mmds *w_mmds;          /* with the interceptor only */

/* This thread's CPU time: the machine is shared, and what the interceptor
 * costs is CPU per frame, which other processes' load does not change
 * (wall time would count their time slices as ours). The sequence number
 * goes after the IPv4 header. */
static const struct nb_opts plain_opts = {
	.name = "mmds_overhead",
	.clock = CLOCK_THREAD_CPUTIME_ID,
	.seq_off = NET_HDR_LEN + 40u,
};

static const struct nb_opts mmds_opts = {
	.name = "mmds_overhead",
	.clock = CLOCK_THREAD_CPUTIME_ID,
	.seq_off = NET_HDR_LEN + 40u,
	.wrap = wrap_mmds,
	.wrap_ctx = &w_mmds,
};

/* bench_once - frames/s of one world over @seconds (after a warm-up). */
static double bench_once(uint32_t frame, bool with_mmds, double seconds)
{
	w_mmds = NULL;
	nb_world_up(&w, with_mmds ? &mmds_opts : &plain_opts, frame);
	/* Ethernet + IPv4 to 10.0.0.1: ordinary traffic, which the
	 * interceptor must look at and pass. */
	for (unsigned i = 0; i < NB_QSIZE; i++)
		stamp_ipv4(w.tx_host[i] + NET_HDR_LEN);
	nb_run_frames(&w, seconds / 4);
	double fps = nb_run_frames(&w, seconds);
	nb_drain_and_check(&w);
	nb_world_down(&w);
	mmds_free(w_mmds);
	return fps;
}

int main(int argc, char **argv)
{
	double seconds = nb_seconds_arg(argc, argv);
	bool ok = true;

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
		double p = nb_median(plain, RUNS), m = nb_median(mmds, RUNS);
		double q = nb_median(ratio, RUNS);
		printf("  %5u-byte frames: plain %8.3f M frames/CPU-s   with MMDS %8.3f M frames/CPU-s   "
		       "ratio %.3f (%s)\n", frame_sizes[i], p / 1e6, m / 1e6, q,
		       q >= 0.98 ? "target >= 0.98 met" : "target >= 0.98 NOT met");
		ok &= q >= 0.98;
		fflush(stdout);
	}
	printf("  target: interceptor >= 98%% of plain at every size -> %s\n", ok ? "met" : "NOT met");
	return 0;
}
