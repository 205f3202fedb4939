/*
 * Token buckets with an injected clock: size, one-time burst spent first,
 * continuous refill, oversize frames, the ops bucket, reconfiguration while
 * blocked, the RX admit/charge pair, the long-run rate, the real loop timer,
 * and the command-line spelling.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "core/rate_limiter.h"

#define MS 1000000ull

struct fake_clock {
	struct rl_clock clock;
	uint64_t now;
};

static uint64_t fake_now(const struct rl_clock *c)
{
	return ((const struct fake_clock *)c)->now;
}

static struct fake_clock fclock = { .clock = { .now_ns = fake_now }, .now = 1000 * MS };
static int wakes;

static void on_wake(struct rate_limiter *rl)
{
	wakes++;
}

static void setup(struct rate_limiter *rl, uint64_t size, uint64_t burst, uint64_t refill_ms)
{
	struct rate_limiter_config cfg = {
		.bandwidth = { .size = size, .one_time_burst = burst, .refill_time = refill_ms },
	};

	CHECK_EQ(rate_limiter_init(rl, NULL, &fclock.clock, on_wake), 0);
	CHECK_EQ(rate_limiter_configure(rl, &cfg), 0);
	wakes = 0;
}

static void test_unlimited_by_default(void)
{
	struct rate_limiter rl;

	CHECK_EQ(rate_limiter_init(&rl, NULL, &fclock.clock, on_wake), 0);
	CHECK(!rate_limiter_active(&rl));
	for (int i = 0; i < 1000; i++)
		CHECK(rate_limiter_consume(&rl, 65536));
	CHECK(rate_limiter_admit(&rl));
	rate_limiter_destroy(&rl);
}

static void test_size_limits(void)
{
	struct rate_limiter rl;

	setup(&rl, 1000, 0, 100);
	CHECK(rate_limiter_active(&rl));
	CHECK(rate_limiter_consume(&rl, 600));
	CHECK(rate_limiter_consume(&rl, 400));
	CHECK(!rate_limiter_consume(&rl, 1));
	CHECK(rate_limiter_blocked(&rl));
	/* 1 byte of 1000 per 100 ms: 100 us. */
	CHECK_EQ(rl.wait_ns, 100000);
	/* Blocked: refused without looking, even after time passed. */
	fclock.now += 50 * MS;
	CHECK(!rate_limiter_consume(&rl, 1));
	rate_limiter_expire(&rl);
	CHECK_EQ(wakes, 1);
	CHECK(rate_limiter_consume(&rl, 500));
	CHECK(!rate_limiter_consume(&rl, 1));
	rate_limiter_destroy(&rl);
}

static void test_burst_spent_first(void)
{
	struct rate_limiter rl;

	setup(&rl, 1000, 5000, 100);
	/* 5000 of burst and 1000 of budget: 6000 bytes up front. */
	for (int i = 0; i < 6; i++)
		CHECK(rate_limiter_consume(&rl, 1000));
	CHECK(!rate_limiter_consume(&rl, 1));
	rate_limiter_expire(&rl);
	/* The burst never comes back: after a full refill only 1000 again. */
	fclock.now += 1000 * MS;
	CHECK(rate_limiter_consume(&rl, 1000));
	CHECK(!rate_limiter_consume(&rl, 1));
	rate_limiter_destroy(&rl);

	/* The burst is spent before the budget: with burst 500, a 700-byte
	 * frame leaves 800 of budget. */
	setup(&rl, 1000, 500, 100);
	CHECK(rate_limiter_consume(&rl, 700));
	CHECK_EQ(rl.bw.burst, 0);
	CHECK_EQ(rl.bw.budget, 800);
	rate_limiter_destroy(&rl);
}

static void test_refill_is_continuous(void)
{
	struct rate_limiter rl;

	setup(&rl, 1000, 0, 100);
	CHECK(rate_limiter_consume(&rl, 1000));
	/* 10 ms earn 100 bytes; 101 do not fit and the wait is 10 us. */
	fclock.now += 10 * MS;
	CHECK(!rate_limiter_consume(&rl, 101));
	CHECK_EQ(rl.wait_ns, 100000);
	rate_limiter_expire(&rl);
	CHECK(rate_limiter_consume(&rl, 100));
	/* Trickles of less than a token are not lost. */
	for (int i = 0; i < 10; i++)
		fclock.now += 50000;        /* 50 us = half a byte */
	CHECK(rate_limiter_consume(&rl, 5));
	/* Refill stops at the size. */
	fclock.now += 10000 * MS;
	CHECK(rate_limiter_consume(&rl, 1000));
	CHECK(!rate_limiter_consume(&rl, 1));
	rate_limiter_destroy(&rl);
}

static void test_oversize_frame_leaves_debt(void)
{
	struct rate_limiter rl;

	setup(&rl, 1000, 0, 100);
	/* 1500 > size: passes on a full bucket, then 500 of debt. */
	CHECK(rate_limiter_consume(&rl, 1500));
	CHECK_EQ(rl.bw.budget, -500);
	CHECK(!rate_limiter_consume(&rl, 1500));
	/* It waits for a full bucket again: 1500 bytes of refill = 150 ms. */
	CHECK_EQ(rl.wait_ns, 150 * MS);
	rate_limiter_expire(&rl);
	fclock.now += 150 * MS;
	CHECK(rate_limiter_consume(&rl, 1500));
	rate_limiter_destroy(&rl);
}

static void test_ops_bucket(void)
{
	struct rate_limiter rl;
	struct rate_limiter_config cfg = { .ops = { .size = 2, .refill_time = 1000 } };

	CHECK_EQ(rate_limiter_init(&rl, NULL, &fclock.clock, on_wake), 0);
	CHECK_EQ(rate_limiter_configure(&rl, &cfg), 0);
	CHECK(rate_limiter_consume(&rl, 60000));
	CHECK(rate_limiter_consume(&rl, 1));
	CHECK(!rate_limiter_consume(&rl, 1));
	CHECK_EQ(rl.wait_ns, 500 * MS);
	rate_limiter_destroy(&rl);

	/* Both buckets: a refusal by one takes nothing from the other. */
	cfg.bandwidth = (struct token_bucket_config){ .size = 1000, .refill_time = 100 };
	CHECK_EQ(rate_limiter_init(&rl, NULL, &fclock.clock, on_wake), 0);
	CHECK_EQ(rate_limiter_configure(&rl, &cfg), 0);
	CHECK(rate_limiter_consume(&rl, 100));
	CHECK(rate_limiter_consume(&rl, 100));
	CHECK(!rate_limiter_consume(&rl, 100));
	CHECK_EQ(rl.bw.budget, 800);
	rate_limiter_refund(&rl, 100);
	CHECK_EQ(rl.bw.budget, 900);
	CHECK_EQ(rl.ops.budget, 1);
	rate_limiter_destroy(&rl);
}

static void test_reconfigure_while_blocked(void)
{
	struct rate_limiter rl;
	struct rate_limiter_config bigger = {
		.bandwidth = { .size = 10000, .refill_time = 100 },
	};

	setup(&rl, 1000, 0, 100);
	CHECK(rate_limiter_consume(&rl, 1000));
	CHECK(!rate_limiter_consume(&rl, 1000));
	CHECK_EQ(rate_limiter_configure(&rl, &bigger), 0);
	/* The owner is woken to retry, and the new bucket starts full. */
	CHECK_EQ(wakes, 1);
	CHECK(!rate_limiter_blocked(&rl));
	for (int i = 0; i < 10; i++)
		CHECK(rate_limiter_consume(&rl, 1000));
	CHECK(!rate_limiter_consume(&rl, 1000));
	/* Removing every bucket lifts the limit. */
	struct rate_limiter_config none = { 0 };
	CHECK_EQ(rate_limiter_configure(&rl, &none), 0);
	CHECK(!rate_limiter_active(&rl));
	CHECK(rate_limiter_consume(&rl, 1u << 30));
	/* Out-of-range values are refused and change nothing. */
	struct rate_limiter_config bad = { .bandwidth = { .size = 1ull << 60, .refill_time = 1 } };
	CHECK_EQ(rate_limiter_configure(&rl, &bad), -EINVAL);
	CHECK(!rate_limiter_active(&rl));
	rate_limiter_destroy(&rl);
}

static void test_admit_and_charge(void)
{
	struct rate_limiter rl;

	setup(&rl, 1000, 0, 100);
	CHECK(rate_limiter_admit(&rl));
	rate_limiter_charge(&rl, 1500);
	CHECK(!rate_limiter_admit(&rl));
	/* Until 1 byte above zero: 501 bytes of refill = 50.1 ms. */
	CHECK_EQ(rl.wait_ns, 50100000);
	rate_limiter_expire(&rl);
	fclock.now += 50100000;
	CHECK(rate_limiter_admit(&rl));
	rate_limiter_destroy(&rl);
}

/* Ten simulated seconds of 1514-byte frames sent whenever admitted: the
 * total is the refill rate times the time plus the size and the burst. */
static void test_long_run_rate(void)
{
	struct rate_limiter rl;
	uint64_t sent = 0;
	const uint64_t rate = 1250000;   /* bytes/s: 10 Mbit/s */

	setup(&rl, rate / 10, 2000000, 100);
	for (uint64_t t = 0; t < 10000; t++) {
		fclock.now += MS;
		if (rate_limiter_blocked(&rl))
			rate_limiter_expire(&rl);   /* the timer's job */
		while (rate_limiter_consume(&rl, 1514))
			sent += 1514;
	}
	uint64_t expect = 10 * rate + rate / 10 + 2000000;
	CHECK(sent <= expect && sent + 1514 >= expect);
	rate_limiter_destroy(&rl);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_timer_on_event_loop(void)
{
	struct event_loop loop;
	struct rate_limiter rl;
	struct rate_limiter_config cfg = { .bandwidth = { .size = 1000, .refill_time = 100 } };

	CHECK_EQ(event_loop_init(&loop), 0);
	CHECK_EQ(rate_limiter_init(&rl, &loop, NULL, on_wake), 0);
	CHECK_EQ(rate_limiter_configure(&rl, &cfg), 0);
	wakes = 0;
	CHECK(rate_limiter_consume(&rl, 1000));
	CHECK(!rate_limiter_consume(&rl, 500));        /* about 50 ms */
	uint64_t t0 = mono_ms();
	while (!wakes && mono_ms() - t0 < 1000)
		event_loop_once(&loop, 100);
	uint64_t waited = mono_ms() - t0;
	CHECK_EQ(wakes, 1);
	CHECK(waited >= 45 && waited < 300);
	CHECK(rate_limiter_consume(&rl, 500));
	/* Nothing else fires: the timer was one-shot. */
	CHECK_EQ(event_loop_once(&loop, 120), 0);
	rate_limiter_destroy(&rl);
	event_loop_destroy(&loop);
}

static void test_parse(void)
{
	struct rate_limiter_config cfg;
	struct errbuf eb = { 0 };

	CHECK_EQ(rate_limiter_parse("bw=1250000/100,bw_burst=5000000,ops=1000/1000", &cfg, &eb),
		 0);
	CHECK_EQ(cfg.bandwidth.size, 1250000);
	CHECK_EQ(cfg.bandwidth.refill_time, 100);
	CHECK_EQ(cfg.bandwidth.one_time_burst, 5000000);
	CHECK_EQ(cfg.ops.size, 1000);
	CHECK_EQ(cfg.ops.refill_time, 1000);
	CHECK_EQ(cfg.ops.one_time_burst, 0);
	const char *bad[] = { "bw=1", "bw=/100", "bw=1/", "bw=-1/100", "speed=1/1", "bw=1/100,",
			      "bw=1x/100", "ops_burst=", "bw=1/99999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(rate_limiter_parse(bad[i], &cfg, &eb), -EINVAL);
	CHECK(strstr(eb.msg, "2^"));
}

int main(void)
{
	RUN_TEST(test_unlimited_by_default);
	RUN_TEST(test_size_limits);
	RUN_TEST(test_burst_spent_first);
	RUN_TEST(test_refill_is_continuous);
	RUN_TEST(test_oversize_frame_leaves_debt);
	RUN_TEST(test_ops_bucket);
	RUN_TEST(test_reconfigure_while_blocked);
	RUN_TEST(test_admit_and_charge);
	RUN_TEST(test_long_run_rate);
	RUN_TEST(test_timer_on_event_loop);
	RUN_TEST(test_parse);
	return CHECK_DONE();
}
