/*
 * Token-bucket rate limiting, with Firecracker's semantics: a limiter has
 * up to two buckets, one counting bytes (bandwidth) and one counting
 * frames (ops). Each bucket holds at most `size` tokens, refills `size`
 * tokens every `refill_time` milliseconds (continuously, not in steps), and
 * starts with an extra `one_time_burst` that is spent first and never
 * refilled. A bucket with size 0 or refill_time 0 is absent (no limit).
 *
 * When a limiter refuses, it arms a timer on the event loop for the
 * moment enough tokens will be there and calls its owner's wake function
 * then: the owner stops working that queue meanwhile (no busy loop).
 */
#ifndef KVMINI_CORE_RATE_LIMITER_H
#define KVMINI_CORE_RATE_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "core/event_loop.h"

/* The shortest wait the timer is armed for. */
#define RL_MIN_WAIT_NS 1000000ull

struct token_bucket_config {
	uint64_t size;               /* tokens; 0: no bucket */
	uint64_t one_time_burst;     /* extra tokens spent first, once */
	uint64_t refill_time;        /* ms to refill `size` tokens; 0: no bucket */
};

struct rate_limiter_config {
	struct token_bucket_config bandwidth;   /* bytes */
	struct token_bucket_config ops;         /* frames */
};

/* Monotonic nanoseconds; tests inject their own. */
struct rl_clock {
	uint64_t (*now_ns)(const struct rl_clock *clock);
};
extern const struct rl_clock rl_monotonic_clock;

struct token_bucket {
	struct token_bucket_config cfg;
	int64_t budget;              /* may go below 0 after an oversize frame or a charge */
	uint64_t burst;              /* what is left of one_time_burst */
	uint64_t last_ns;            /* time up to which refill was credited */
};

struct rate_limiter;
typedef void (*rate_limiter_wake_fn)(struct rate_limiter *rl);

struct rate_limiter {
	struct token_bucket bw, ops;
	const struct rl_clock *clock;
	rate_limiter_wake_fn wake;
	struct event_loop *loop;     /* NULL: no timer (the caller polls) */
	struct event_timer timer;
	bool blocked;                /* refused; the timer will end it */
	uint64_t wait_ns;            /* until the refused tokens are there (tests) */
};

/* Unlimited until configured. @loop may be NULL (no timer). Returns 0. */
int rate_limiter_init(struct rate_limiter *rl, struct event_loop *loop,
		      const struct rl_clock *clock, rate_limiter_wake_fn wake);
void rate_limiter_destroy(struct rate_limiter *rl);

/* Replace both buckets (new buckets start full, burst included). Ends a
 * block in progress and calls wake, so traffic resumes at the new rate.
 * 0, or -EINVAL for a value out of range (nothing changed then). */
int rate_limiter_configure(struct rate_limiter *rl, const struct rate_limiter_config *cfg);
/* Whether rate_limiter_configure would take @cfg. */
bool rate_limiter_config_valid(const struct rate_limiter_config *cfg);
void rate_limiter_get_config(const struct rate_limiter *rl, struct rate_limiter_config *cfg);
bool rate_limiter_active(const struct rate_limiter *rl);

/* Exact admission (TX, where the size is known first): take one op and
 * @bytes if every bucket has them and return true; otherwise take nothing,
 * block, arm the timer, return false. A frame larger than the bandwidth
 * bucket passes when the bucket is full and leaves it in debt. */
bool rate_limiter_consume_limited(struct rate_limiter *rl, uint64_t bytes);
/* Give back what consume took for a frame that was not sent after all. */
void rate_limiter_refund(struct rate_limiter *rl, uint64_t bytes);

/* Admission before the size is known (RX): true when every bucket has a
 * token; otherwise block and arm the timer. */
bool rate_limiter_admit_limited(struct rate_limiter *rl);
/* Charge a frame already delivered; buckets may go into debt. */
void rate_limiter_charge_limited(struct rate_limiter *rl, uint64_t bytes);

/* No bucket has a size: nothing to count. The data path asks this inline
 * for every frame, so an unlimited device pays no call (a bucket with a
 * size and no refill time is unlimited too: the _limited calls say so). */
static inline bool rate_limiter_unlimited(const struct rate_limiter *rl)
{
	return !rl->bw.cfg.size && !rl->ops.cfg.size;
}

static inline bool rate_limiter_consume(struct rate_limiter *rl, uint64_t bytes)
{
	return rate_limiter_unlimited(rl) || rate_limiter_consume_limited(rl, bytes);
}

static inline bool rate_limiter_admit(struct rate_limiter *rl)
{
	return rate_limiter_unlimited(rl) || rate_limiter_admit_limited(rl);
}

static inline void rate_limiter_charge(struct rate_limiter *rl, uint64_t bytes)
{
	if (!rate_limiter_unlimited(rl))
		rate_limiter_charge_limited(rl, bytes);
}

static inline bool rate_limiter_blocked(const struct rate_limiter *rl)
{
	return rl->blocked;
}

/* The timer's work, for callers without a loop and for tests: end the
 * block and call wake. */
void rate_limiter_expire(struct rate_limiter *rl);

/* Parse the command-line spelling
 *   bw=SIZE/REFILL_MS[,bw_burst=N][,ops=SIZE/REFILL_MS][,ops_burst=N]
 * e.g. "bw=1250000/100,bw_burst=5000000". 0 or -EINVAL with @eb filled. */
int rate_limiter_parse(const char *text, struct rate_limiter_config *cfg, struct errbuf *eb);

#endif
