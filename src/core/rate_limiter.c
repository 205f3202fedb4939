/*
 * Token buckets and the limiter that pairs a byte bucket with a frame
 * bucket. Order of this file: clock, one bucket, the limiter and its timer,
 * the command-line spelling.
 */
#include "core/rate_limiter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/compiler.h"

#define NS_PER_MS 1000000ull
/* Bounds that keep the 128-bit arithmetic below far from overflow and a
 * timer wait below a day: 2^52 tokens, refill up to 2^32 ms. */
#define TB_MAX_SIZE (1ull << 52)
#define TB_MAX_REFILL_MS (1ull << 32)

static uint64_t monotonic_now(const struct rl_clock *clock)
{
	return clock_now_ns();
}

const struct rl_clock rl_monotonic_clock = { .now_ns = monotonic_now };

/* --- one bucket --------------------------------------------------------------- */

static bool tb_present(const struct token_bucket *tb)
{
	return tb->cfg.size && tb->cfg.refill_time;
}

static uint64_t tb_refill_ns(const struct token_bucket *tb)
{
	return tb->cfg.refill_time * NS_PER_MS;
}

static void tb_reset(struct token_bucket *tb, const struct token_bucket_config *cfg, uint64_t now)
{
	tb->cfg = *cfg;
	tb->budget = (int64_t)cfg->size;
	tb->burst = cfg->one_time_burst;
	tb->last_ns = now;
}

/* Credit the tokens earned since last_ns. Time is consumed only for whole
 * tokens credited, so slow trickles are not rounded away. */
static void tb_replenish(struct token_bucket *tb, uint64_t now)
{
	uint64_t size = tb->cfg.size, refill = tb_refill_ns(tb);

	if (now <= tb->last_ns)
		return;
	if (tb->budget >= (int64_t)size) {
		tb->last_ns = now;
		return;
	}
	unsigned __int128 add = (unsigned __int128)(now - tb->last_ns) * size / refill;
	if (!add)
		return;
	if ((unsigned __int128)((int64_t)size - tb->budget) <= add) {
		tb->budget = (int64_t)size;
		tb->last_ns = now;
		return;
	}
	tb->budget += (int64_t)add;
	tb->last_ns += (uint64_t)((add * refill + size - 1) / size);
}

/* Tokens that can be spent now: the budget plus what is left of the burst. */
static int64_t tb_available(const struct token_bucket *tb)
{
	return tb->budget + (int64_t)tb->burst;
}

/* Whether @tokens fit; an oversize request fits a full bucket. */
static bool tb_fits(const struct token_bucket *tb, uint64_t tokens)
{
	if (tokens <= (uint64_t)MAX(tb_available(tb), 0))
		return true;
	return tokens > tb->cfg.size && tb->budget >= (int64_t)tb->cfg.size;
}

/* Spend @tokens, burst first; the budget may go below zero. */
static void tb_take(struct token_bucket *tb, uint64_t tokens)
{
	uint64_t from_burst = MIN(tb->burst, tokens);

	tb->burst -= from_burst;
	tb->budget -= (int64_t)(tokens - from_burst);
}

/* Nanoseconds until the budget reaches @target tokens. */
static uint64_t tb_wait_ns(const struct token_bucket *tb, int64_t target)
{
	if (tb->budget >= target)
		return 0;
	unsigned __int128 need = (unsigned __int128)(target - tb->budget);
	unsigned __int128 ns = (need * tb_refill_ns(tb) + tb->cfg.size - 1) / tb->cfg.size;
	return (uint64_t)ns;
}

/* Wait until @tokens fit (tb_fits): the budget must cover what the burst
 * does not, or be full for an oversize request. */
static uint64_t tb_wait_for(const struct token_bucket *tb, uint64_t tokens)
{
	int64_t target = MIN((int64_t)tokens - (int64_t)tb->burst, (int64_t)tb->cfg.size);
	return tb_wait_ns(tb, MAX(target, 1));
}

/* --- the limiter ------------------------------------------------------------------ */

static void on_timer(struct event_timer *t)
{
	rate_limiter_expire(container_of(t, struct rate_limiter, timer));
}

int rate_limiter_init(struct rate_limiter *rl, struct event_loop *loop,
		      const struct rl_clock *clock, rate_limiter_wake_fn wake)
{
	memset(rl, 0, sizeof(*rl));
	rl->clock = clock ? clock : &rl_monotonic_clock;
	rl->wake = wake;
	rl->loop = loop;
	return 0;
}

void rate_limiter_destroy(struct rate_limiter *rl)
{
	if (rl->loop)
		event_loop_timer_cancel(rl->loop, &rl->timer);
	rl->loop = NULL;
}

static void arm_timer(struct rate_limiter *rl, uint64_t ns)
{
	rl->wait_ns = ns;
	/* At least RL_MIN_WAIT_NS: one wake-up then moves a batch of frames
	 * rather than one (a bucket holds at least 1 ms of refill, since
	 * refill_time is whole milliseconds, so no rate is lost). */
	if (rl->loop)
		event_loop_timer_arm(rl->loop, &rl->timer, on_timer, MAX(ns, RL_MIN_WAIT_NS));
}

static void disarm_timer(struct rate_limiter *rl)
{
	if (rl->loop)
		event_loop_timer_cancel(rl->loop, &rl->timer);
}

static void block(struct rate_limiter *rl, uint64_t wait_ns)
{
	rl->blocked = true;
	arm_timer(rl, wait_ns);
}

void rate_limiter_expire(struct rate_limiter *rl)
{
	if (!rl->blocked)
		return;
	rl->blocked = false;
	if (rl->wake)
		rl->wake(rl);
}

static bool config_ok(const struct token_bucket_config *c)
{
	if (!c->size || !c->refill_time)
		return true;     /* absent */
	return c->size <= TB_MAX_SIZE && c->one_time_burst <= TB_MAX_SIZE &&
	       c->refill_time <= TB_MAX_REFILL_MS;
}

bool rate_limiter_config_valid(const struct rate_limiter_config *cfg)
{
	return config_ok(&cfg->bandwidth) && config_ok(&cfg->ops);
}

int rate_limiter_configure(struct rate_limiter *rl, const struct rate_limiter_config *cfg)
{
	if (!rate_limiter_config_valid(cfg))
		return -EINVAL;
	uint64_t now = rl->clock->now_ns(rl->clock);
	tb_reset(&rl->bw, &cfg->bandwidth, now);
	tb_reset(&rl->ops, &cfg->ops, now);
	disarm_timer(rl);
	rate_limiter_expire(rl);
	return 0;
}

void rate_limiter_get_config(const struct rate_limiter *rl, struct rate_limiter_config *cfg)
{
	cfg->bandwidth = rl->bw.cfg;
	cfg->ops = rl->ops.cfg;
}

bool rate_limiter_active(const struct rate_limiter *rl)
{
	return tb_present(&rl->bw) || tb_present(&rl->ops);
}

static void replenish(struct rate_limiter *rl)
{
	uint64_t now = rl->clock->now_ns(rl->clock);

	if (tb_present(&rl->bw))
		tb_replenish(&rl->bw, now);
	if (tb_present(&rl->ops))
		tb_replenish(&rl->ops, now);
}

bool rate_limiter_consume_limited(struct rate_limiter *rl, uint64_t bytes)
{
	bool has_bw = tb_present(&rl->bw), has_ops = tb_present(&rl->ops);

	if (!has_bw && !has_ops)
		return true;
	if (rl->blocked)
		return false;
	replenish(rl);
	bool bw_ok = !has_bw || tb_fits(&rl->bw, bytes);
	bool ops_ok = !has_ops || tb_fits(&rl->ops, 1);
	if (bw_ok && ops_ok) {
		if (has_bw)
			tb_take(&rl->bw, bytes);
		if (has_ops)
			tb_take(&rl->ops, 1);
		return true;
	}
	uint64_t wait = 0;
	if (!bw_ok)
		wait = tb_wait_for(&rl->bw, bytes);
	if (!ops_ok)
		wait = MAX(wait, tb_wait_for(&rl->ops, 1));
	block(rl, wait);
	return false;
}

void rate_limiter_refund(struct rate_limiter *rl, uint64_t bytes)
{
	/* Back into the budget (not the burst); never above a full bucket. */
	if (tb_present(&rl->bw))
		rl->bw.budget = MIN(rl->bw.budget + (int64_t)bytes, (int64_t)rl->bw.cfg.size);
	if (tb_present(&rl->ops))
		rl->ops.budget = MIN(rl->ops.budget + 1, (int64_t)rl->ops.cfg.size);
}

bool rate_limiter_admit_limited(struct rate_limiter *rl)
{
	bool has_bw = tb_present(&rl->bw), has_ops = tb_present(&rl->ops);

	if (!has_bw && !has_ops)
		return true;
	if (rl->blocked)
		return false;
	replenish(rl);
	uint64_t wait = 0;
	if (has_bw && tb_available(&rl->bw) <= 0)
		wait = tb_wait_for(&rl->bw, 1);
	if (has_ops && tb_available(&rl->ops) <= 0)
		wait = MAX(wait, tb_wait_for(&rl->ops, 1));
	if (!wait)
		return true;
	block(rl, wait);
	return false;
}

void rate_limiter_charge_limited(struct rate_limiter *rl, uint64_t bytes)
{
	if (tb_present(&rl->bw))
		tb_take(&rl->bw, bytes);
	if (tb_present(&rl->ops))
		tb_take(&rl->ops, 1);
}

/* --- command line ------------------------------------------------------------------ */

static int parse_u64(const char *text, const char *end, uint64_t *out)
{
	char *stop;

	if (text == end || *text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(text, &stop, 10);
	if (errno || stop != end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "SIZE/REFILL_MS" into @tb. */
static int parse_bucket(const char *val, const char *end, struct token_bucket_config *tb)
{
	const char *slash = memchr(val, '/', (size_t)(end - val));

	if (!slash || parse_u64(val, slash, &tb->size) || parse_u64(slash + 1, end, &tb->refill_time))
		return -EINVAL;
	return 0;
}

static int parse_item(const char *item, const char *end, struct rate_limiter_config *cfg)
{
	const char *eq = memchr(item, '=', (size_t)(end - item));

	if (!eq)
		return -EINVAL;
	size_t klen = (size_t)(eq - item);
	const char *val = eq + 1;
#define KEY(k) (klen == sizeof(k) - 1 && !memcmp(item, k, klen))
	if (KEY("bw"))
		return parse_bucket(val, end, &cfg->bandwidth);
	if (KEY("ops"))
		return parse_bucket(val, end, &cfg->ops);
	if (KEY("bw_burst"))
		return parse_u64(val, end, &cfg->bandwidth.one_time_burst);
	if (KEY("ops_burst"))
		return parse_u64(val, end, &cfg->ops.one_time_burst);
#undef KEY
	return -EINVAL;
}

int rate_limiter_parse(const char *text, struct rate_limiter_config *cfg, struct errbuf *eb)
{
	memset(cfg, 0, sizeof(*cfg));
	for (const char *p = text, *end;; p = end + 1) {
		end = strchrnul(p, ',');
		if (parse_item(p, end, cfg) < 0) {
			errbuf_set(eb, "\"%.*s\" is not bw=SIZE/REFILL_MS, ops=SIZE/REFILL_MS, "
				   "bw_burst=N or ops_burst=N", (int)(end - p), p);
			return -EINVAL;
		}
		if (!*end)
			break;
	}
	if (!rate_limiter_config_valid(cfg)) {
		errbuf_set(eb, "a size or burst above 2^52 or a refill time above 2^32 ms");
		return -EINVAL;
	}
	return 0;
}
