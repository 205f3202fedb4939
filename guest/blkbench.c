/*
 * kvmini-blkbench: 4 KiB block I/O from inside a guest, for
 * bench/nested_blk.sh (fio would bring some sixty libraries into the
 * initramfs; this is what that bench needs of it).
 *
 *   kvmini-blkbench MODE DEVICE SECONDS [MIB]
 *
 * MODE is read, write, randread or randwrite: one 4 KiB request at a time
 * with O_DIRECT (the guest's page cache bypassed: the device is measured),
 * sequential or at random 4 KiB-aligned offsets, over the device's first
 * MIB MiB (default 64, at most the device). Prints one line:
 *   blkbench: MODE ops N iops X MiB/s Y
 * Exit status 1 on any failed request (with why), 2 on bad arguments.
 */
#define _GNU_SOURCE    /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define BLOCK 4096u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64: random offsets without libc's locking. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fputs("usage: kvmini-blkbench read|write|randread|randwrite DEVICE SECONDS [MIB]\n", stderr);
		return 2;
	}
	const char *mode = argv[1];
	int writes = !strcmp(mode, "write") || !strcmp(mode, "randwrite");
	int random = !strncmp(mode, "rand", 4);
	if (!writes && strcmp(mode, "read") && strcmp(mode, "randread")) {
		fprintf(stderr, "kvmini-blkbench: unknown mode %s\n", mode);
		return 2;
	}
	double seconds = atof(argv[3]);
	uint64_t span = (argc == 5 ? strtoull(argv[4], NULL, 10) : 64) << 20, size;
	int fd = open(argv[2], (writes ? O_RDWR : O_RDONLY) | O_DIRECT);
	void *buf;

	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) < 0) {
		fprintf(stderr, "kvmini-blkbench: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	span = span < size ? span : size;
	uint64_t blocks = span / BLOCK, seed = 0x9e3779b97f4a7c15ull, ops = 0;
	if (!blocks || seconds <= 0 || posix_memalign(&buf, BLOCK, BLOCK)) {
		fputs("kvmini-blkbench: nothing to do (device, SECONDS or memory)\n", stderr);
		return 2;
	}
	memset(buf, 0x5a, BLOCK);
	double start = now(), end = start + seconds, t = start;
	while (t < end) {
		uint64_t block = random ? next_random(&seed) % blocks : ops % blocks;
		off_t off = (off_t)(block * BLOCK);
		ssize_t n = writes ? pwrite(fd, buf, BLOCK, off) : pread(fd, buf, BLOCK, off);
		if (n != (ssize_t)BLOCK) {
			fprintf(stderr, "kvmini-blkbench: %s at %lld: %s\n", mode, (long long)off,
				n < 0 ? strerror(errno) : "short");
			return 1;
		}
		ops++;
		if (!(ops & 63))
			t = now();
	}
	t = now() - start;
	printf("blkbench: %s ops %llu iops %.0f MiB/s %.2f\n", mode, (unsigned long long)ops,
	       (double)ops / t, (double)ops * BLOCK / t / (1 << 20));
	return 0;
}
