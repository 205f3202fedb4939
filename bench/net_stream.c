/*
 * In-process benchmark of the stream backend's TX path: frames handed to
 * send() as the device's TX drain hands them (a drain of DRAIN frames,
 * then flush() when the backend has it), to a peer thread that reads the
 * unix socket and checks the framing. Reports frames/s and Mbit/s of
 * frame bytes for 64-, 1514- and 65550-byte frames kept in place, and
 * 1514-byte frames from scratch memory (NET_TOKEN_COPY: the device's
 * checksummed or segmented frames, copied), median of RUNS runs,
 * and the send/sendmsg calls per frame when the backend counts them.
 * Builds against a tree without flush too (the per-frame sendmsg of
 * before), to compare.
 *
 * Usage: net_stream [--quick]
 * Exit status 1 when a record arrives with the wrong length or the peer
 * sees fewer frames than were taken.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/event_loop.h"
#include "net/backend.h"

#define RUNS  5
#define DRAIN 64u

static struct event_loop loop;
static bool unblocked;
static uint64_t done;
static atomic_uint_fast64_t peer_frames;
static atomic_bool peer_bad;
static atomic_uint frame_len;
static bool scratch;      /* frames as the device's software offloads give them */
static uint8_t frames[DRAIN][65550];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void ev_rx_pending(void *ctx) { (void)ctx; }
static void ev_tx_unblocked(void *ctx) { (void)ctx; unblocked = true; }
static void ev_tx_done(void *ctx, uint32_t token) { (void)ctx; (void)token; done++; }

static const struct net_backend_events events = {
	.rx_pending = ev_rx_pending, .tx_unblocked = ev_tx_unblocked, .tx_done = ev_tx_done,
};

/* The peer: read everything, walk the records, check their lengths. */
static void *peer_main(void *arg)
{
	int fd = *(int *)arg;
	static uint8_t buf[1 << 20];
	size_t have = 0;

	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			return NULL;
		have += (size_t)n;
		size_t off = 0;
		uint64_t got = 0;
		while (have - off >= 4) {
			uint32_t len = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 |
				       (uint32_t)buf[off + 2] << 8 | buf[off + 3];
			if (len != atomic_load(&frame_len))
				atomic_store(&peer_bad, true);
			if (have - off < 4 + (size_t)len)
				break;
			off += 4 + len;
			got++;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
		atomic_fetch_add(&peer_frames, got);
	}
}

static long long calls;

static void count_calls(void *ctx, const char *prefix, const char *name, uint64_t value)
{
	(void)ctx;
	(void)prefix;
	if (strstr(name, "tx_sendmsg_calls"))
		calls = (long long)value;
}

/* The backend's send/sendmsg calls so far, or -1 when it does not count them. */
static long long sendmsg_calls(struct net_backend *be)
{
	calls = -1;
	struct counter_sink sink = { .fn = count_calls };
	be->ops->visit_counters(be, &sink);
	return calls;
}

/* One drain: up to DRAIN frames, then the flush. Returns frames taken. */
static unsigned drain(struct net_backend *be)
{
	unsigned taken = 0;

	for (unsigned i = 0; i < DRAIN; i++) {
		struct iovec iov = { frames[i], atomic_load(&frame_len) };
#ifdef NET_TOKEN_COPY
		int r = be->ops->send(be, &iov, 1, scratch ? NET_TOKEN_COPY : i);
#else
		int r = be->ops->send(be, &iov, 1, i);
#endif
		if (r == -EAGAIN)
			break;
		taken++;
	}
#ifdef NET_TOKEN_COPY
	be->ops->flush(be);
#endif
	return taken;
}

/* Frames/s for @seconds of drains, the loop run between them. */
static double run(struct net_backend *be, double seconds, uint64_t *taken_total)
{
	uint64_t taken = 0;
	double start = now(), t = start;

	while (t < start + seconds) {
		unblocked = false;
		unsigned n = drain(be);
		taken += n;
		if (n < DRAIN) {
			while (!unblocked)
				event_loop_once(&loop, 10);
		} else {
			event_loop_once(&loop, 0);
		}
		t = now();
	}
	*taken_total += taken;
	return (double)taken / (t - start);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	/* The last: 1514 bytes from scratch memory (NET_TOKEN_COPY). */
	static const uint32_t sizes[] = { 64, 1514, 65550, 1514 };
	double seconds = argc > 1 && !strcmp(argv[1], "--quick") ? 0.2 : 1.0;
	char dir[] = "/tmp/kvmini-netstream.XXXXXX", path[64], spec[80];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct errbuf eb = { 0 };
	uint64_t taken = 0;
	pthread_t peer;
	int rc = 0;

	if (!mkdtemp(dir) || event_loop_init(&loop))
		return 1;
	snprintf(path, sizeof(path), "%s/peer.sock", dir);
	snprintf(spec, sizeof(spec), "stream:%s", path);
	strcpy(a.sun_path, path);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1))
		return 1;
	struct net_backend *be = net_backend_create(spec, &loop, &eb);
	if (!be) {
		fprintf(stderr, "net_stream: %s\n", eb.msg);
		return 1;
	}
	net_backend_attach(be, &events, NULL);
	int pfd = accept(lfd, NULL, NULL);
	if (pfd < 0 || pthread_create(&peer, NULL, peer_main, &pfd))
		return 1;
	for (unsigned s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		double fps[RUNS];
		atomic_store(&frame_len, sizes[s]);
		scratch = s == 3;
		long long calls0 = sendmsg_calls(be);
		uint64_t taken0 = taken;
		for (unsigned r = 0; r < RUNS; r++)
			fps[r] = run(be, seconds, &taken);
		/* The peer takes every frame before the size changes. */
		while (atomic_load(&peer_frames) < taken)
			event_loop_once(&loop, 1);
		qsort(fps, RUNS, sizeof(fps[0]), cmp_double);
		long long calls1 = sendmsg_calls(be);
		printf("%5u-byte frames%s: %10.0f frames/s %8.0f Mbit/s", sizes[s],
		       scratch ? " (scratch)" : "",
		       fps[RUNS / 2], fps[RUNS / 2] * sizes[s] * 8 / 1e6);
		if (calls0 >= 0)
			printf("  %.3f sendmsg per frame", (double)(calls1 - calls0) /
			       (double)(taken - taken0));
		printf("\n");
	}
	if (atomic_load(&peer_bad) || atomic_load(&peer_frames) != taken) {
		fprintf(stderr, "net_stream: peer saw %llu frames of %llu, bad lengths: %d\n",
			(unsigned long long)atomic_load(&peer_frames), (unsigned long long)taken,
			(int)atomic_load(&peer_bad));
		rc = 1;
	}
	be->ops->destroy(be);
	close(pfd);
	pthread_join(peer, NULL);
	close(lfd);
	unlink(path);
	rmdir(dir);
	event_loop_destroy(&loop);
	return rc;
}
