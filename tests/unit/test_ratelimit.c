/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_ratelimit.c: the local rate-limit engine (src/core/ratelimit.c) and
 * its keyed hash (src/core/keyhash.c). SipHash against the reference
 * vectors; rule validation; GCRA arithmetic at exact instants (the burst
 * convention: burst + 1 at once; refill; Remaining, Reset, Retry-After);
 * budgets over simulated spans; clocks that step back; the 40-bit time
 * field wrapping, with and without the sweeper; eviction in a full table;
 * and threads racing on one key and on one new key, which must count every
 * request exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "core/keyhash.h"
#include "core/ratelimit.h"
#include "test_util.h"

#define MS      1000ull                 /* microseconds */
#define SEC     1000000ull
#define DAY     (86400ull * SEC)
#define WRAP    (1ull << 40)            /* the tat field's modulus */

static struct sy_rl_rule
rule(int64_t rate, int64_t per_ms, int64_t burst)
{
    struct sy_rl_rule r;
    char err[256];

    if (sy_rl_rule_init(&r, rate, per_ms, burst, err, sizeof(err)) != 0)
        fail_msg("rule %lld/%lld burst %lld refused: %s", (long long)rate, (long long)per_ms,
                 (long long)burst, err);
    return r;
}

static struct sy_rl_table *
table_new(size_t keys)
{
    struct sy_rl_table *t = sy_rl_table_new(keys);

    assert_non_null(t);
    return t;
}

static struct sy_rl_result
check_at(struct sy_rl_table *t, const struct sy_rl_rule *r, const char *key, uint64_t now)
{
    struct sy_rl_result res;

    memset(&res, 0xa5, sizeof(res));        /* every field must be written */
    sy_rl_check(t, r, 1, key, strlen(key), now, &res);
    return res;
}

static void
expect(struct sy_rl_result res, bool allowed, uint32_t remaining, uint64_t reset_ms,
       uint64_t retry_after_ms, const char *what)
{
    if (res.allowed == allowed && res.remaining == remaining && res.reset_ms == reset_ms &&
        res.retry_after_ms == retry_after_ms)
        return;
    fail_msg("%s: got %s remaining %u reset %llu ms retry %llu ms; want %s %u %llu %llu",
             what, res.allowed ? "allowed" : "denied", res.remaining,
             (unsigned long long)res.reset_ms, (unsigned long long)res.retry_after_ms,
             allowed ? "allowed" : "denied", remaining, (unsigned long long)reset_ms,
             (unsigned long long)retry_after_ms);
}

/* --- SipHash ---------------------------------------------------------------- */

/* github.com/veorq/SipHash vectors.h: SipHash-2-4, key 00..0f, message
 * 00..len-1, for len 0..15 (every tail length, one and two words). */
static const uint64_t sip24_vectors[16] = {
    0x726fdb47dd0e0e31ull, 0x74f839c593dc67fdull, 0x0d6c8009d9a94f5aull, 0x85676696d7fb7e2dull,
    0xcf2794e0277187b7ull, 0x18765564cd99a68dull, 0xcbc9466e58fee3ceull, 0xab0200f58b01d137ull,
    0x93f5f5799a932462ull, 0x9e0082df0ba9e4b0ull, 0x7a5dbbc594ddb9f3ull, 0xf4b32f46226bada7ull,
    0x751e8fbc860ee5fbull, 0x14ea5627c0843d90ull, 0xf723ca908e7af2eeull, 0xa129ca6149be45e5ull,
};

/* SipHash-1-3 from the same reference code with rounds 1 and 3, key all
 * zero, message 00..len-1 (as OCaml's runtime tests carry them). */
static const uint64_t sip13_vectors[20] = {
    0xd1fba762150c532cull, 0x68a914128e01e473ull, 0x010bac45c41e3669ull, 0x4d4c9a4a8ef6e0adull,
    0x7cc43f98813e4dbdull, 0x5abe2169dff36275ull, 0xe3c25f87624f1cdbull, 0x2f098ab0c751325aull,
    0xead411e67ebe2eeaull, 0x75927f9d95124362ull, 0xaf9f77a65ab51a1dull, 0xfe64ce8b6617fcffull,
    0xa6baf4fb0f9fe1c2ull, 0xa0cf3211850f8e0dull, 0x7f86049379fbfe67ull, 0xf30eb725bb91c9eaull,
    0x8972188433a5c5b7ull, 0x4883c49a2c009c1dull, 0xadc2c0b63044067dull, 0x091f4a3329f87d19ull,
};

static void
test_siphash_reference(void **state)
{
    (void)state;
    const struct sy_sipkey counting = { 0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull };
    const struct sy_sipkey zero = { 0, 0 };
    unsigned char msg[32];

    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)i;
    for (size_t len = 0; len < 16; len++)
        assert_int_equal(sy_siphash24(&counting, msg, len), sip24_vectors[len]);
    for (size_t len = 0; len < 20; len++)
        assert_int_equal(sy_siphash13(&zero, msg, len), sip13_vectors[len]);
    assert_int_equal(sy_siphash13(&zero, NULL, 0), sip13_vectors[0]);
}

/* The prefixed form equals the hash of the concatenation, at every length. */
static void
test_siphash_prefix(void **state)
{
    (void)state;
    struct sy_sipkey k;
    unsigned char buf[4 + 64], data[64];
    uint64_t seed = 3;

    assert_int_equal(sy_sipkey_random(&k), 0);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)rnd(&seed);
    for (size_t len = 0; len <= sizeof(data); len++) {
        uint32_t prefix = (uint32_t)rnd(&seed);
        for (int i = 0; i < 4; i++)
            buf[i] = (unsigned char)(prefix >> (8 * i));
        memcpy(buf + 4, data, len);
        assert_int_equal(sy_siphash13_u32(&k, prefix, data, len),
                         sy_siphash13(&k, buf, len + 4));
    }
    assert_int_equal(sy_siphash13_u32(&k, 7, NULL, 0), sy_siphash13(&k, "\7\0\0\0", 4));
}

/* --- rules ------------------------------------------------------------------ */

static void
test_rule_values(void **state)
{
    (void)state;
    struct sy_rl_rule r = rule(50, 1000, 10);

    assert_int_equal(r.interval_us, 20000);
    assert_int_equal(r.tolerance_us, 200000);
    assert_int_equal(r.limit, 11);
    r = rule(100, 1000, 200);                   /* SPEC.md's example */
    assert_int_equal(r.interval_us, 10000);
    assert_int_equal(r.tolerance_us, 2000000);
    assert_int_equal(r.limit, 201);
    r = rule(1, 60000, 0);
    assert_int_equal(r.interval_us, 60000000);
    assert_int_equal(r.tolerance_us, 0);
    assert_int_equal(r.limit, 1);
    r = rule(3, 1000, 2);                       /* truncated: 3.000003 per second */
    assert_int_equal(r.interval_us, 333333);
    r = rule(1000000, 1000, 0);                 /* one per microsecond: the finest */
    assert_int_equal(r.interval_us, 1);
    r = rule(1, 86400000, 2);                   /* 3 x 1 day < 2^38 us */
    assert_int_equal(r.tolerance_us, 2 * DAY);
}

static void
expect_refused(int64_t rate, int64_t per_ms, int64_t burst, const char *needle)
{
    struct sy_rl_rule r;
    char err[256] = "";

    assert_int_equal(sy_rl_rule_init(&r, rate, per_ms, burst, err, sizeof(err)), -1);
    if (strstr(err, needle) == NULL)
        fail_msg("%lld/%lld burst %lld: \"%s\" lacks \"%s\"", (long long)rate,
                 (long long)per_ms, (long long)burst, err, needle);
}

static void
test_rule_errors(void **state)
{
    (void)state;
    struct sy_rl_rule r;
    char small[8];

    expect_refused(0, 1000, 1, "rate must be at least 1");
    expect_refused(-5, 1000, 1, "rate must be at least 1 (got -5)");
    expect_refused(1, 0, 1, "per_ms must be at least 1");
    expect_refused(1, 1000, -1, "burst must be between 0 and 4294967294");
    expect_refused(1000000, 1000, 4294967295, "burst must be between");
    expect_refused(1, 274877907, 0, "per_ms 274877907 is too long");
    expect_refused(1000001, 1000, 0, "more than one request per microsecond");
    expect_refused(INT64_MAX, 1, 0, "more than one request per microsecond");
    expect_refused(30000, 1000, 0, "one request every 33 us, over 1 %");
    expect_refused(1, 86400000, 3, "burst 3 at rate 1 per 86400000 ms");
    expect_refused(1000, 1000, 274877906, "longer than 2^38 us");
    /* the largest that fit: (burst + 1) x T <= 2^38 us */
    assert_int_equal(sy_rl_rule_init(&r, 1, 274877906, 0, small, sizeof(small)), 0);
    assert_int_equal(sy_rl_rule_init(&r, 1000, 1000, 274877905, small, sizeof(small)), 0);
    /* a short buffer gets a truncated, terminated message */
    assert_int_equal(sy_rl_rule_init(&r, 0, 1000, 1, small, sizeof(small)), -1);
    assert_string_equal(small, "rate mu");
}

/* --- GCRA arithmetic ---------------------------------------------------------- */

/* burst = requests beyond the first allowed at once: burst + 1 in all. */
static void
test_fresh_key_gets_burst_plus_one(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(1024);
    struct sy_rl_rule r = rule(50, 1000, 10);       /* T 20 ms, tau 200 ms */
    const uint64_t now = 1000 * SEC;

    for (uint32_t i = 1; i <= 11; i++) {
        struct sy_rl_result res = check_at(t, &r, "10.0.0.1", now);
        expect(res, true, 11 - i, 20 * i, 0, "burst");
        assert_int_equal(res.limit, 11);
    }
    for (int i = 0; i < 100; i++) {     /* hammering while denied moves nothing */
        struct sy_rl_result res = check_at(t, &r, "10.0.0.1", now);
        expect(res, false, 0, 20, 20, "over the burst");
        assert_int_equal(res.limit, 11);
    }
    /* burst 0: one at a time */
    r = rule(1, 1000, 0);
    expect(check_at(t, &r, "burst0", now), true, 0, 1000, 0, "burst 0, first");
    expect(check_at(t, &r, "burst0", now), false, 0, 1000, 1000, "burst 0, second");
    sy_rl_table_free(t);
}

/* Exhausted at 0: the next request is allowed T later, exactly; the whole
 * budget after (burst + 1) T. */
static void
test_refill(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(64);
    struct sy_rl_rule r = rule(50, 1000, 10);
    const uint64_t t0 = 5 * SEC;

    for (int i = 0; i < 11; i++)
        assert_true(check_at(t, &r, "k", t0).allowed);
    expect(check_at(t, &r, "k", t0 + 20 * MS - 1), false, 0, 1, 1, "1 us early");
    expect(check_at(t, &r, "k", t0 + 20 * MS), true, 0, 220, 0, "after T");
    expect(check_at(t, &r, "k", t0 + 20 * MS), false, 0, 20, 20, "T spent");
    expect(check_at(t, &r, "k", t0 + 30 * MS), false, 0, 10, 10, "half T");
    /* full again (220 ms after the last allowed): 11 at once */
    for (uint32_t i = 1; i <= 11; i++)
        expect(check_at(t, &r, "k", t0 + 240 * MS), true, 11 - i, 20 * i, 0, "refilled");
    assert_false(check_at(t, &r, "k", t0 + 240 * MS).allowed);
    sy_rl_table_free(t);
}

/*
 * remaining, reset and retry-after at chosen instants, rate 10/s burst 4
 * (T 100 ms, tau 400 ms, limit 5), the instants offset by base: a base near
 * 2^40 makes the sequence cross the wrap of the time field.
 */
static void
instants_from(uint64_t base)
{
    struct sy_rl_table *t = table_new(64);
    struct sy_rl_rule r = rule(10, 1000, 4);
    char what[64];

    snprintf(what, sizeof(what), "base %llu", (unsigned long long)base);
    expect(check_at(t, &r, "c", base), true, 4, 100, 0, what);
    expect(check_at(t, &r, "c", base), true, 3, 200, 0, what);
    /* 50 ms later it owes 150 ms; after this one 250: (400 - 250) / 100 + 1 */
    expect(check_at(t, &r, "c", base + 50 * MS), true, 2, 250, 0, what);
    expect(check_at(t, &r, "c", base + 50 * MS), true, 1, 350, 0, what);
    expect(check_at(t, &r, "c", base + 50 * MS), true, 0, 450, 0, what);
    /* owes 450 ms > tau: next allowed when it owes 400, 50 ms on */
    expect(check_at(t, &r, "c", base + 50 * MS), false, 0, 50, 50, what);
    expect(check_at(t, &r, "c", base + 50 * MS + 1), false, 0, 50, 50, what);   /* 49.999 */
    expect(check_at(t, &r, "c", base + 99 * MS + 999), false, 0, 1, 1, what);
    expect(check_at(t, &r, "c", base + 100 * MS), true, 0, 500, 0, what);
    /* owing 499.999 ms after it: Reset rounds up */
    expect(check_at(t, &r, "c", base + 200 * MS + 1), true, 0, 500, 0, what);
    expect(check_at(t, &r, "c", base + 1000 * MS), true, 4, 100, 0, what);
    sy_rl_table_free(t);
}

static void
test_values_at_instants(void **state)
{
    (void)state;
    instants_from(0);
    instants_from(123456789);
    instants_from(WRAP - 120 * MS);         /* wraps between two checks */
    instants_from(WRAP - 50 * MS);          /* wraps at a check's own instant */
    instants_from(3 * WRAP - 1);
    instants_from(UINT64_MAX - 150 * MS);   /* the caller's clock wraps too */
}

/*
 * Requests arriving faster than the rate, with random gaps up to 2 g, over a
 * simulated span S. GCRA never allows more than burst + 1 + floor(S / T).
 * When tau >= 2 g the key stays in debt, so it allows that many, less one;
 * with a smaller tau each allowed request may come up to 2 g after its time
 * and the lost time is not made up: at least S / (T + 2 g), less one.
 */
static void
span(int64_t rate, int64_t per_ms, int64_t burst, uint64_t mean_gap_us, uint64_t span_us,
     uint64_t seed)
{
    struct sy_rl_table *t = table_new(64);
    struct sy_rl_rule r = rule(rate, per_ms, burst);
    const uint64_t t0 = 777 * SEC;
    uint64_t now = t0, allowed = 0, last_allowed = 0, budget, least;

    while (now - t0 <= span_us) {
        struct sy_rl_result res = check_at(t, &r, "span", now);
        if (res.allowed) {
            allowed++;
            last_allowed = now;
        }
        now += rnd(&seed) % (2 * mean_gap_us + 1);
    }
    budget = (uint64_t)burst + 1 + (last_allowed - t0) / r.interval_us;
    least = r.tolerance_us >= 2 * mean_gap_us ? (uint64_t)burst + 1 + span_us / r.interval_us
                                              : span_us / (r.interval_us + 2 * mean_gap_us);
    if (allowed > budget || allowed + 1 < least)
        fail_msg("rate %lld/%lld ms burst %lld: %llu allowed in %llu us, budget %llu",
                 (long long)rate, (long long)per_ms, (long long)burst,
                 (unsigned long long)allowed, (unsigned long long)span_us,
                 (unsigned long long)budget);
    sy_rl_table_free(t);
}

static void
test_budget_over_span(void **state)
{
    (void)state;
    span(50, 1000, 10, 1000, 20 * SEC, 1);      /* the 50/s burst 10 */
    span(50, 1000, 10, 5000, 20 * SEC, 2);
    span(3, 1000, 2, 10000, 60 * SEC, 3);       /* T = 333333 us, inexact */
    span(100, 1000, 200, 2000, 30 * SEC, 4);
    span(1, 1000, 0, 100000, 100 * SEC, 5);
    span(7, 60000, 5, 1000000, 3600 * SEC, 6);
    span(20000, 1000, 100, 10, 2 * SEC, 7);     /* T = 50 us */
}

/* A clock that steps back never grants budget, and nothing breaks. */
static void
test_clock_steps_back(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(64);
    struct sy_rl_rule r = rule(10, 1000, 4);            /* T 100 ms, tau 400 ms */
    const uint64_t t0 = 50 * SEC;
    uint64_t seed = 9, allowed = 0;

    for (int i = 0; i < 5; i++)
        assert_true(check_at(t, &r, "b", t0).allowed);
    /* 1 s back: it owes 1.5 s, 1.1 s over tau */
    expect(check_at(t, &r, "b", t0 - SEC), false, 0, 1100, 1100, "1 s back");
    expect(check_at(t, &r, "b", t0 - 10 * MS), false, 0, 110, 110, "10 ms back");
    expect(check_at(t, &r, "b", t0 + 100 * MS), true, 0, 500, 0, "forward again");
    /* A fresh key first seen at a later instant, then at an earlier one. */
    expect(check_at(t, &r, "f", t0 + SEC), true, 4, 100, 0, "fresh");
    expect(check_at(t, &r, "f", t0 + 800 * MS), true, 1, 400, 0, "fresh, 200 ms back");
    expect(check_at(t, &r, "f", t0), false, 0, 800, 800, "fresh, 1 s back");
    /* Jitter of +-5 ms around a clock advancing 1 ms a step for 10 s: never
     * more than the budget for the largest instant seen. */
    for (uint64_t i = 0; i < 10000; i++) {
        uint64_t now = t0 + 10 * SEC + i * MS + rnd(&seed) % (10 * MS) - 5 * MS;
        allowed += check_at(t, &r, "j", now).allowed;
    }
    assert_true(allowed <= 5 + (10 * SEC + 5 * MS) / (100 * MS));
    assert_true(allowed >= 5 + (10 * SEC - 10 * MS) / (100 * MS) - 1);
    /* extreme instants are just instants */
    check_at(t, &r, "x", 0);
    check_at(t, &r, "x", UINT64_MAX);
    check_at(t, &r, "x", 1ull << 63);
    sy_rl_table_free(t);
}

/* --- the 40-bit field and the sweeper ------------------------------------------ */

/*
 * A key last seen 8.5 days ago: its age exceeds 2^39 us, so the signed
 * 40-bit difference reads it as 3.3 days in the future. The sweeper, run
 * every simulated hour, clears it long before: the key comes back fresh.
 */
static void
test_wrap_with_sweeper(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(64);
    struct sy_rl_rule r = rule(1, 1000, 1);             /* T 1 s, tau 1 s, limit 2 */
    const uint64_t t0 = WRAP - 3600 * SEC;
    uint64_t now;

    expect(check_at(t, &r, "old", t0), true, 1, 1000, 0, "first");
    expect(check_at(t, &r, "old", t0), true, 0, 2000, 0, "second");
    /* entries within max_tolerance of now stay, older ones go */
    assert_int_equal(sy_rl_sweep(t, t0, r.tolerance_us), 1);
    assert_int_equal(sy_rl_sweep(t, t0 + 2 * SEC + r.tolerance_us, r.tolerance_us), 1);
    assert_int_equal(sy_rl_sweep(t, t0 + 2 * SEC + r.tolerance_us + 1, r.tolerance_us), 0);
    expect(check_at(t, &r, "old", t0 + 4 * SEC), true, 1, 1000, 0, "after sweep");
    expect(check_at(t, &r, "old", t0 + 4 * SEC), true, 0, 2000, 0, "after sweep");
    for (now = t0 + 4 * SEC; now < t0 + 8 * DAY + DAY / 2; now += 3600 * SEC)
        sy_rl_sweep(t, now, r.tolerance_us);
    expect(check_at(t, &r, "old", now), true, 1, 1000, 0, "8.5 days on, swept");
    sy_rl_table_free(t);
}

/* Without a sweep, an entry old enough that its difference wrapped into the
 * range no rule can reach (beyond 1.5 x 2^38 us ahead) still reads as old. */
static void
test_wrap_safety_net(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(64);
    struct sy_rl_rule r = rule(1, 1000, 1);
    const uint64_t t0 = 10 * SEC;

    assert_true(check_at(t, &r, "old", t0).allowed);
    assert_true(check_at(t, &r, "old", t0).allowed);
    assert_true(check_at(t, &r, "old2", t0).allowed);
    /* 7 days on: tat - now = 2 s - 7 days = +4.7 days mod 2^40 */
    expect(check_at(t, &r, "old", t0 + 7 * DAY), true, 1, 1000, 0, "7 days on");
    /* and the sweeper clears such an entry whatever max_tolerance says */
    assert_int_equal(sy_rl_sweep(t, t0 + 7 * DAY + 5 * SEC, UINT64_MAX), 1);
    sy_rl_table_free(t);
}

/* --- eviction ------------------------------------------------------------------ */

/*
 * One bucket of 8 slots, full of live keys: a new key evicts the one owing
 * the least (the least recently used at one rule); a busy key and the keys
 * seen since keep their state.
 */
static void
test_eviction(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(8);
    struct sy_rl_rule r = rule(1, 1000, 9);             /* T 1 s, limit 10 */
    const uint64_t t0 = 100 * SEC;
    char key[16];

    assert_int_equal(sy_rl_table_slots(t), 8);
    for (int i = 0; i < 8; i++) {                       /* k0 at t0, ..., k7 at t0 + 7 ms */
        snprintf(key, sizeof(key), "k%d", i);
        expect(check_at(t, &r, key, t0 + (uint64_t)i * MS), true, 9, 1000, 0, "fill");
    }
    for (int i = 0; i < 5; i++)                         /* k0 is busy */
        assert_true(check_at(t, &r, "k0", t0 + 8 * MS).allowed);
    assert_int_equal(sy_rl_sweep(t, t0 + 9 * MS, r.tolerance_us), 8);
    /* k8 evicts k1, the one owing the least */
    expect(check_at(t, &r, "k8", t0 + 10 * MS), true, 9, 1000, 0, "k8 new");
    assert_int_equal(sy_rl_sweep(t, t0 + 10 * MS, r.tolerance_us), 8);
    /* k0 and k2..k7 kept theirs */
    expect(check_at(t, &r, "k0", t0 + 10 * MS), true, 3, 6990, 0, "k0 kept its debt");
    for (int i = 2; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        uint64_t owed_us = 2 * SEC - 10 * MS + (uint64_t)i * MS;
        expect(check_at(t, &r, key, t0 + 10 * MS), true, 8, (owed_us + 999) / 1000, 0,
               "second request of a kept key");
    }
    /* k1 comes back fresh (evicting k8, now the least owing) */
    expect(check_at(t, &r, "k1", t0 + 11 * MS), true, 9, 1000, 0, "k1 was evicted");
    expect(check_at(t, &r, "k8", t0 + 12 * MS), true, 9, 1000, 0, "k8 was evicted");
    /* a churn of 1,000 new keys never evicts the busy one */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "new%d", i);
        assert_true(check_at(t, &r, key, t0 + 20 * MS + (uint64_t)i).allowed);
    }
    expect(check_at(t, &r, "k0", t0 + 30 * MS), true, 2, 7970, 0, "k0 through the churn");
    assert_int_equal(sy_rl_fail_open(t), 0);
    sy_rl_table_free(t);
}

/* Expired and empty slots go before any live one. */
static void
test_eviction_prefers_expired(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(8);
    struct sy_rl_rule slow = rule(1, 10000, 0);         /* T 10 s */
    struct sy_rl_rule fast = rule(1, 1, 0);             /* T 1 ms */
    const uint64_t t0 = SEC;
    char key[16];

    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "slow%d", i);
        assert_true(check_at(t, &slow, key, t0).allowed);
        snprintf(key, sizeof(key), "fast%d", i);
        assert_true(check_at(t, &fast, key, t0).allowed);
    }
    /* 2 ms on the fast keys' entries carry nothing: 4 new keys take them */
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "new%d", i);
        assert_true(check_at(t, &slow, key, t0 + 2 * MS).allowed);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "slow%d", i);
        assert_false(check_at(t, &slow, key, t0 + 3 * MS).allowed);
    }
    sy_rl_table_free(t);
}

/* --- keys, ids, sizes ------------------------------------------------------------- */

static void
test_keys_and_ids_independent(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(4096);
    struct sy_rl_rule r = rule(1, 1000, 2);
    struct sy_rl_result res;
    const uint64_t now = 42 * SEC;
    const char nul_key[3] = { 'a', '\0', 'b' }, nul_key2[3] = { 'a', '\0', 'c' };

    for (int i = 0; i < 3; i++)
        assert_true(check_at(t, &r, "client", now).allowed);
    assert_false(check_at(t, &r, "client", now).allowed);
    /* another key, another limit id with the same key: budgets of their own */
    assert_true(check_at(t, &r, "client2", now).allowed);
    for (uint32_t id = 2; id < 50; id++) {
        sy_rl_check(t, &r, id, "client", 6, now, &res);
        expect(res, true, 2, 1000, 0, "other limit id");
    }
    /* bytes after a NUL count; an empty key is a key (absent header) */
    for (int i = 0; i < 3; i++) {
        sy_rl_check(t, &r, 1, nul_key, 3, now, &res);
        assert_true(res.allowed);
    }
    sy_rl_check(t, &r, 1, nul_key2, 3, now, &res);
    expect(res, true, 2, 1000, 0, "a\\0c");
    sy_rl_check(t, &r, 1, NULL, 0, now, &res);
    expect(res, true, 2, 1000, 0, "empty key");
    sy_rl_check(t, &r, 1, "", 0, now, &res);
    expect(res, true, 1, 2000, 0, "empty key again");
    /* two tables hash differently (random keys) but decide the same */
    struct sy_rl_table *t2 = table_new(4096);
    for (int i = 0; i < 3; i++)
        assert_true(check_at(t2, &r, "client", now).allowed);
    assert_false(check_at(t2, &r, "client", now).allowed);
    sy_rl_table_free(t2);
    sy_rl_table_free(t);
}

/* Many keys, no two sharing a budget, in a table just big enough. */
static void
test_many_keys(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(262144);       /* no bucket overflows */
    struct sy_rl_rule r = rule(1, 1000, 1);
    const uint64_t now = 7 * SEC;
    char key[32];
    size_t shared = 0;

    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 16384; i++) {
            snprintf(key, sizeof(key), "192.168.%d.%d", i >> 8, i & 255);
            struct sy_rl_result res = check_at(t, &r, key, now);
            assert_true(res.allowed);
            shared += res.remaining != (uint32_t)(1 - pass);
        }
    /* a tag collision (2^-24 a pair within a bucket) could share one: allow 1 */
    assert_true(shared <= 1);
    assert_int_equal(sy_rl_sweep(t, now, r.tolerance_us), 16384 - shared);
    sy_rl_table_free(t);
}

static void
test_table_sizes(void **state)
{
    (void)state;
    struct { size_t keys, slots; } cases[] = {
        {0, 8}, {1, 8}, {8, 8}, {9, 16}, {1000, 1024}, {1024, 1024}, {1025, 2048},
        {100000, 131072},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sy_rl_table *t = table_new(cases[i].keys);
        assert_int_equal(sy_rl_table_slots(t), cases[i].slots);
        assert_true(sy_rl_table_bytes(t) >= cases[i].slots * 8);
        assert_true(sy_rl_table_bytes(t) <= cases[i].slots * 8 + 256);
        assert_int_equal(sy_rl_sweep(t, 0, 0), 0);
        sy_rl_table_free(t);
    }
    errno = 0;
    assert_null(sy_rl_table_new(SIZE_MAX / 2));
    assert_int_equal(errno, ENOMEM);
    sy_rl_table_free(NULL);
    uint64_t a = sy_rl_now_us(), b = sy_rl_now_us();
    assert_true(a > 0 && b >= a);
}

/* --- threads --------------------------------------------------------------------- */

#define HAMMER_CALLS    100000
#define HAMMER_BUDGET   10000

struct hammer {
    struct sy_rl_table *t;
    const struct sy_rl_rule *r;
    uint64_t now;
    atomic_int *go;
    uint64_t allowed;
};

static void *
hammer(void *arg)
{
    struct hammer *h = arg;

    atomic_fetch_add(h->go, 1);
    while (atomic_load(h->go) < 2)
        sched_yield();
    for (int i = 0; i < HAMMER_CALLS; i++) {
        struct sy_rl_result res;
        sy_rl_check(h->t, h->r, 9, "hot", 3, h->now, &res);
        h->allowed += res.allowed;
    }
    return NULL;
}

/* Two threads on one key at one instant: exactly the budget in total (a lost
 * update would allow more). */
static void
test_two_threads_one_key(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(1024);
    /* T 20 s: no refill can matter; burst + 1 = 10,000 */
    struct sy_rl_rule r = rule(1, 20000, HAMMER_BUDGET - 1);
    atomic_int go = 0;
    struct hammer h[2] = {
        { t, &r, 1000 * SEC, &go, 0 }, { t, &r, 1000 * SEC, &go, 0 },
    };
    pthread_t th[2];
    struct sy_rl_result res;

    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(h[0].allowed + h[1].allowed, HAMMER_BUDGET);
    assert_int_equal(sy_rl_fail_open(t), 0);
    sy_rl_check(t, &r, 9, "hot", 3, 1000 * SEC, &res);
    expect(res, false, 0, 20000, 20000, "after the hammering");
    sy_rl_table_free(t);
}

#define RACE_KEYS   4000

struct racer {
    struct sy_rl_table *t;
    const struct sy_rl_rule *r;
    uint64_t now;
    atomic_int *turn;           /* both threads take key i once both reach it */
    int self;
    uint64_t allowed;
};

static void *
racer(void *arg)
{
    struct racer *rc = arg;
    char key[16];

    for (int i = 0; i < RACE_KEYS; i++) {
        struct sy_rl_result res;
        int len = snprintf(key, sizeof(key), "new%d", i);
        /* a two-thread barrier per key, so that both insert it at once */
        atomic_fetch_add(rc->turn, 1);
        for (int spin = 0; atomic_load(rc->turn) < 2 * (i + 1); spin++)
            if (spin > 100)
                sched_yield();
        sy_rl_check(rc->t, rc->r, 3, key, (size_t)len, rc->now, &res);
        rc->allowed += res.allowed;
    }
    return NULL;
}

/*
 * Two threads insert the same new keys at the same moment, their clocks 5 us
 * apart, into buckets whose other entries expire between the two instants:
 * each thread sees a different slot as free, so both CASes can succeed in
 * different slots. The insert must still count each key once: burst 0 and
 * no refill, so exactly one of the two requests per key is allowed.
 */
static void
test_racing_inserts(void **state)
{
    (void)state;
    struct sy_rl_table *t = table_new(16 * RACE_KEYS);
    struct sy_rl_rule one = rule(1, 20000, 0);              /* T 20 s */
    struct sy_rl_rule tiny = rule(1000000, 1000, 0);        /* T 1 us */
    const uint64_t now = 3000 * SEC;
    atomic_int turn = 0;
    struct racer rc[2] = {
        { t, &one, now, &turn, 0, 0 }, { t, &one, now + 5, &turn, 1, 0 },
    };
    pthread_t th[2];
    char key[16];
    uint64_t seed = 5;

    /* Noise: tat = now + 3 us, live for thread 0, expired for thread 1. */
    for (int i = 0; i < 8 * RACE_KEYS; i++) {
        snprintf(key, sizeof(key), "noise%llu", (unsigned long long)rnd(&seed));
        struct sy_rl_result res;
        sy_rl_check(t, &tiny, 4, key, strlen(key), now + 2, &res);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer, &rc[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(rc[0].allowed + rc[1].allowed, RACE_KEYS);
    assert_int_equal(sy_rl_fail_open(t), 0);
    /* and the table holds each key once, owing one request */
    for (int i = 0; i < RACE_KEYS; i++) {
        struct sy_rl_result res;
        int len = snprintf(key, sizeof(key), "new%d", i);
        sy_rl_check(t, &one, 3, key, (size_t)len, now + 10, &res);
        assert_false(res.allowed);
    }
    sy_rl_table_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_reference),
        cmocka_unit_test(test_siphash_prefix),
        cmocka_unit_test(test_rule_values),
        cmocka_unit_test(test_rule_errors),
        cmocka_unit_test(test_fresh_key_gets_burst_plus_one),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_values_at_instants),
        cmocka_unit_test(test_budget_over_span),
        cmocka_unit_test(test_clock_steps_back),
        cmocka_unit_test(test_wrap_with_sweeper),
        cmocka_unit_test(test_wrap_safety_net),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_eviction_prefers_expired),
        cmocka_unit_test(test_keys_and_ids_independent),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_table_sizes),
        cmocka_unit_test(test_two_threads_one_key),
        cmocka_unit_test(test_racing_inserts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
