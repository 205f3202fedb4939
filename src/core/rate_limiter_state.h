/*
 * A rate limiter's buckets in a device's snapshot section: each bucket's
 * configuration, tokens, burst left and the time since its refill was
 * credited, six u64 fields (size, one_time_burst, refill_time, budget,
 * burst, age), the bandwidth bucket first. One layout for every device
 * with a limiter (net's VNET twice, blk's VBLK once); only the debt a
 * bucket may carry differs, and the device says it. Read into a
 * rate_limiter_state and checked before anything of the device changes.
 */
#ifndef KVMINI_CORE_RATE_LIMITER_STATE_H
#define KVMINI_CORE_RATE_LIMITER_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rate_limiter.h"
#include "core/state_io.h"

struct rl_bucket_state {
	struct token_bucket_config cfg;
	int64_t budget;
	uint64_t burst;
	uint64_t age_ns;                 /* since the refill was credited */
};

struct rate_limiter_state {
	struct rl_bucket_state bw, ops;
};

/* Both buckets, under whatever lock the owner keeps its limiter under. */
void rate_limiter_save_state(const struct rate_limiter *rl, struct state_writer *w);
/* Both buckets' fields, unchecked: a short section fails @sec. */
void rate_limiter_read_state(struct state_reader *sec, struct rate_limiter_state *s);
/* False (with @sec failed, its message naming @name's limiter) unless the
 * buckets are a configuration rate_limiter_configure takes, each at most
 * full and at most @max_debt beyond empty, the burst at most its start.
 * False at once when @sec failed already. */
bool rate_limiter_check_state(struct state_reader *sec, const char *name,
			      const struct rate_limiter_state *s, int64_t max_debt);
/* Put checked buckets in place, not blocked. */
void rate_limiter_apply_state(struct rate_limiter *rl, const struct rate_limiter_state *s);

#endif
