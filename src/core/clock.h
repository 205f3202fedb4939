/* The monotonic clock, for timeouts, rate limits, token expiry and boot
 * timing: never stepped by the wall clock. */
#ifndef KVMINI_CORE_CLOCK_H
#define KVMINI_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_now_ms(void)
{
	return clock_now_ns() / 1000000u;
}

#endif
