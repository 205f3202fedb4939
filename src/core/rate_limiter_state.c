/*
 * A rate limiter's buckets in a snapshot (see rate_limiter_state.h).
 */
#include "core/rate_limiter_state.h"

#include "core/compiler.h"

/* A bucket's refill time relative to now: the new process's monotonic
 * clock has nothing to do with the old one's. */
static void save_bucket(const struct token_bucket *tb, uint64_t now, struct state_writer *w)
{
	state_put_u64(w, tb->cfg.size);
	state_put_u64(w, tb->cfg.one_time_burst);
	state_put_u64(w, tb->cfg.refill_time);
	state_put_u64(w, (uint64_t)tb->budget);
	state_put_u64(w, tb->burst);
	state_put_u64(w, now > tb->last_ns ? now - tb->last_ns : 0);
}

void rate_limiter_save_state(const struct rate_limiter *rl, struct state_writer *w)
{
	uint64_t now = rl->clock->now_ns(rl->clock);

	save_bucket(&rl->bw, now, w);
	save_bucket(&rl->ops, now, w);
}

static void read_bucket(struct state_reader *sec, struct rl_bucket_state *b)
{
	b->cfg.size = state_get_u64(sec);
	b->cfg.one_time_burst = state_get_u64(sec);
	b->cfg.refill_time = state_get_u64(sec);
	b->budget = (int64_t)state_get_u64(sec);
	b->burst = state_get_u64(sec);
	b->age_ns = state_get_u64(sec);
}

void rate_limiter_read_state(struct state_reader *sec, struct rate_limiter_state *s)
{
	read_bucket(sec, &s->bw);
	read_bucket(sec, &s->ops);
}

/* Tokens a bucket can hold: at most full; below empty only by what one
 * charge after an admission can take (the device's @max_debt); the burst
 * at most what it started with. */
static bool check_bucket(struct state_reader *sec, const char *name, const char *bucket,
			 const struct rl_bucket_state *b, int64_t max_debt)
{
	int64_t size = (int64_t)b->cfg.size;

	if (b->budget > size || b->budget < -size - max_debt)
		return state_fail(sec, "%s %s bucket: %lld tokens in a bucket of %llu", name,
				  bucket, (long long)b->budget, (unsigned long long)b->cfg.size);
	if (b->burst > b->cfg.one_time_burst)
		return state_fail(sec, "%s %s bucket: burst %llu left of %llu", name, bucket,
				  (unsigned long long)b->burst,
				  (unsigned long long)b->cfg.one_time_burst);
	return true;
}

bool rate_limiter_check_state(struct state_reader *sec, const char *name,
			      const struct rate_limiter_state *s, int64_t max_debt)
{
	struct rate_limiter_config cfg = { .bandwidth = s->bw.cfg, .ops = s->ops.cfg };

	if (sec->failed)
		return false;
	if (!rate_limiter_config_valid(&cfg))
		return state_fail(sec, "%s rate limiter: a bucket out of range", name);
	return check_bucket(sec, name, "bandwidth", &s->bw, max_debt) &&
	       check_bucket(sec, name, "ops", &s->ops, max_debt);
}

static void apply_bucket(struct token_bucket *tb, const struct rl_bucket_state *b, uint64_t now)
{
	tb->cfg = b->cfg;
	tb->budget = b->budget;
	tb->burst = b->burst;
	tb->last_ns = now - MIN(b->age_ns, now);
}

/* Not blocked: the owner asks again at resume for what waited, and the
 * limiter blocks anew, with its timer, if the tokens are still short. */
void rate_limiter_apply_state(struct rate_limiter *rl, const struct rate_limiter_state *s)
{
	uint64_t now = rl->clock->now_ns(rl->clock);

	apply_bucket(&rl->bw, &s->bw, now);
	apply_bucket(&rl->ops, &s->ops, now);
	rl->blocked = false;
}
