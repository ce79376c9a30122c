/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_hist.c: the latency histogram. The layout (every bucket edge, powers
 * of two, 0, 600 s and beyond), quantiles against an exact sort of the same
 * samples (random and adversarial sets) within the stated 1 %, count_le at
 * SPEC's default bounds, merge, and readers racing a writer. The windows
 * built on it are tested in test_metrics.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>

#include <cmocka.h>

#include "core/hist.h"
#include "test_util.h"

#define TOP (SY_HIST_BUCKETS - 1)

/* SPEC.md, Metrics: the default latency buckets, in microseconds. */
static const uint64_t spec_bounds[] = {
    5000, 10000, 25000, 50000, 100000, 200000, 300000, 500000,
    1000000, 2000000, 2500000, 5000000, 10000000,
};
#define NSPEC (sizeof(spec_bounds) / sizeof(spec_bounds[0]))

static const double qs[] = {
    0, 1e-6, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1,
};
#define NQS (sizeof(qs) / sizeof(qs[0]))

static struct sy_hist *
hist_new(void)
{
    struct sy_hist *h = calloc(1, sizeof(*h));

    assert_non_null(h);
    return h;
}

/* Whether got is within pct % of want; values up to 100 us must be exact. */
static void
assert_close(uint64_t got, uint64_t want, unsigned pct, const char *what, double at)
{
    uint64_t diff = got > want ? got - want : want - got;
    if (want <= 100 && pct == 1 ? diff == 0 : diff * 100 <= want * pct)
        return;
    fail_msg("%s at %g: got %llu, exact %llu (more than %u %%)", what, at,
             (unsigned long long)got, (unsigned long long)want, pct);
}

/* The nearest-rank quantile of sorted[0..n): rank ceil(q n), at least 1. */
static uint64_t
exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    double r = ceil(q * (double)n);
    size_t rank = r < 1 ? 1 : (size_t)r;
    return sorted[(rank > n ? n : rank) - 1];
}

/* Values beyond SY_HIST_MAX_US are reported as SY_HIST_MAX_US: compare so. */
static uint64_t
clamped(uint64_t v)
{
    return v > SY_HIST_MAX_US ? SY_HIST_MAX_US : v;
}

/*
 * Records values into a histogram and checks count, sum, max, every quantile
 * of qs[] and count_le at SPEC's bounds against the sorted values.
 */
static void
check_against_sort(const uint64_t *values, size_t n, const char *what)
{
    struct sy_hist *h = hist_new();
    uint64_t *sorted = malloc(n * sizeof(*sorted)), sum = 0;

    assert_non_null(sorted);
    for (size_t i = 0; i < n; i++) {
        sy_hist_record(h, values[i]);
        sum += values[i];
    }
    memcpy(sorted, values, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_u64);
    assert_int_equal(sy_hist_count(h), n);
    assert_int_equal(sy_hist_sum_us(h), sum);
    assert_int_equal(sy_hist_max(h), sorted[n - 1]);
    for (size_t i = 0; i < NQS; i++)
        assert_close(sy_hist_quantile(h, qs[i]), clamped(exact_quantile(sorted, n, qs[i])), 1,
                     what, qs[i]);
    for (size_t i = 0; i < NSPEC; i++) {
        size_t le = 0;
        while (le < n && sorted[le] <= spec_bounds[i])
            le++;
        assert_int_equal(sy_hist_count_le(h, spec_bounds[i]), le);
    }
    free(sorted);
    free(h);
}

/* --- layout --------------------------------------------------------------- */

static void
test_small_values_exact(void **state)
{
    (void)state;
    for (uint64_t v = 0; v <= 100; v++) {
        assert_int_equal(sy_hist_bucket(v), v);
        assert_int_equal(sy_hist_bucket_max(v), v);
        assert_int_equal(sy_hist_bucket_value(v), v);
    }
    assert_int_equal(sy_hist_bucket(101), 101);
    assert_int_equal(sy_hist_bucket(102), 101);     /* (100, 102]: steps of 2 us from here */
    assert_int_equal(sy_hist_bucket(103), 102);
}

/* Every bucket: its edges map to it, the next value to the next bucket, and
 * its width is at most 2 % of its lower edge. */
static void
test_every_bucket_edge(void **state)
{
    (void)state;
    for (size_t b = 1; b < TOP; b++) {
        uint64_t lo = sy_hist_bucket_max(b - 1), hi = sy_hist_bucket_max(b);
        assert_true(lo < hi);
        assert_int_equal(sy_hist_bucket(lo + 1), b);
        assert_int_equal(sy_hist_bucket(hi), b);
        assert_int_equal(sy_hist_bucket(hi + 1), b + 1);
        if (b > 100)
            assert_true((hi - lo) * 50 <= lo);
    }
    assert_int_equal(sy_hist_bucket_max(TOP - 1), SY_HIST_MAX_US);
    assert_int_equal(sy_hist_bucket_max(TOP), UINT64_MAX);
    assert_int_equal(sy_hist_bucket(SY_HIST_MAX_US), TOP - 1);
    assert_int_equal(sy_hist_bucket(SY_HIST_MAX_US + 1), TOP);
    assert_int_equal(sy_hist_bucket(UINT64_MAX), TOP);
    assert_int_equal(sy_hist_bucket_value(TOP), SY_HIST_MAX_US);
}

static void
check_in_bucket(uint64_t v)
{
    size_t b = sy_hist_bucket(v);

    if (v > SY_HIST_MAX_US) {
        assert_int_equal(b, TOP);
        return;
    }
    assert_true(v <= sy_hist_bucket_max(b));
    assert_true(b == 0 || v > sy_hist_bucket_max(b - 1));
}

static void
test_powers_of_two(void **state)
{
    (void)state;
    for (unsigned k = 0; k < 64; k++) {
        uint64_t p = 1ull << k;
        check_in_bucket(p - 1);
        check_in_bucket(p);
        check_in_bucket(p + 1);
    }
    check_in_bucket(UINT64_MAX);
}

/* Bucket indexes never skip or go back: exhaustively up to 2.5 s, then at
 * random; with the edges above, each value lands in the right bucket. */
static void
test_monotonic(void **state)
{
    (void)state;
    size_t prev = sy_hist_bucket(0);
    for (uint64_t v = 1; v <= 2500000; v++) {
        size_t b = sy_hist_bucket(v);
        if (b != prev && b != prev + 1)
            fail_msg("bucket(%llu) = %zu after %zu", (unsigned long long)v, b, prev);
        prev = b;
    }
    uint64_t seed = 1;
    for (int i = 0; i < 1000000; i++) {
        uint64_t v = rnd(&seed) % (SY_HIST_MAX_US + 10);
        assert_true(sy_hist_bucket(v) <= sy_hist_bucket(v + 1));
        check_in_bucket(v);
    }
}

/* The value a bucket reports is within 1 % of every value it holds: checked
 * on both edges of every bucket (the worst cases) and exhaustively to 2.5 s. */
static void
test_bucket_value_precision(void **state)
{
    (void)state;
    for (size_t b = 1; b < TOP; b++) {
        uint64_t lo = sy_hist_bucket_max(b - 1) + 1, hi = sy_hist_bucket_max(b);
        assert_close(sy_hist_bucket_value(b), lo, 1, "low edge of bucket", (double)b);
        assert_close(sy_hist_bucket_value(b), hi, 1, "high edge of bucket", (double)b);
        assert_true(sy_hist_bucket_value(b) >= lo && sy_hist_bucket_value(b) <= hi);
    }
    for (uint64_t v = 0; v <= 2500000; v++) {
        uint64_t rep = sy_hist_bucket_value(sy_hist_bucket(v));
        uint64_t diff = rep > v ? rep - v : v - rep;
        if (v <= 100 ? diff != 0 : diff * 100 >= v)
            fail_msg("value %llu reported as %llu", (unsigned long long)v,
                     (unsigned long long)rep);
    }
}

/* SPEC's defaults and every two-significant-digit bound are bucket edges. */
static void
test_decimal_bounds_are_edges(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSPEC; i++)
        assert_int_equal(sy_hist_bucket_max(sy_hist_bucket(spec_bounds[i])), spec_bounds[i]);
    for (uint64_t scale = 10; scale <= 10000000; scale *= 10)
        for (uint64_t m = 10; m <= 99; m++) {
            uint64_t bound = m * scale;
            if (bound <= SY_HIST_MAX_US)
                assert_int_equal(sy_hist_bucket_max(sy_hist_bucket(bound)), bound);
        }
    assert_int_equal(sy_hist_bucket_max(sy_hist_bucket(2500)), 2500);  /* and x.5 below 5 */
}

/* --- quantiles against an exact sort ------------------------------------- */

#define NSAMPLES 200001

static void
test_quantiles_random(void **state)
{
    (void)state;
    uint64_t *v = malloc(NSAMPLES * sizeof(*v)), seed = 42;

    assert_non_null(v);
    for (size_t i = 0; i < NSAMPLES; i++)
        v[i] = rnd(&seed) % 1000001;
    check_against_sort(v, NSAMPLES, "uniform 0..1 s");
    for (size_t i = 0; i < NSAMPLES; i++)     /* log-uniform over the whole range */
        v[i] = (uint64_t)exp(rnd01(&seed) * log((double)SY_HIST_MAX_US));
    check_against_sort(v, NSAMPLES, "log-uniform 1 us..600 s");
    for (size_t i = 0; i < NSAMPLES; i++)     /* exponential, mean 50 ms */
        v[i] = (uint64_t)(-50000.0 * log(1.0 - rnd01(&seed)));
    check_against_sort(v, NSAMPLES, "exponential 50 ms");
    for (size_t i = 0; i < NSAMPLES; i++)     /* log-uniform past the top: clamped */
        v[i] = (uint64_t)exp(rnd01(&seed) * log(1e12));
    check_against_sort(v, NSAMPLES, "log-uniform to 11 days");
    free(v);
}

static void
test_quantiles_adversarial(void **state)
{
    (void)state;
    uint64_t *v = malloc(2 * SY_HIST_BUCKETS * sizeof(*v));
    const uint64_t equal[] = { 0, 1, 100, 101, 12345, 99999, SY_HIST_MAX_US, UINT64_MAX / 4 };

    assert_non_null(v);
    for (size_t k = 0; k < sizeof(equal) / sizeof(equal[0]); k++) {
        for (size_t i = 0; i < 1000; i++)
            v[i] = equal[k];
        check_against_sort(v, 1000, "all equal");
    }
    for (size_t i = 0; i < 1000; i++)       /* two clusters, 1 us and 500 s */
        v[i] = i % 2 ? 500000000 : 1;
    check_against_sort(v, 1000, "two clusters");
    for (size_t i = 0; i < 1000; i++)       /* one outlier far above the rest */
        v[i] = i == 999 ? 1000000000000ull : 1000 + i % 7;
    check_against_sort(v, 1000, "outlier beyond range");
    v[999] = 599999999;
    check_against_sort(v, 1000, "outlier in range");
    size_t n = 0;                           /* both edges of every bucket */
    for (size_t b = 1; b < TOP; b++) {
        v[n++] = sy_hist_bucket_max(b);
        v[n++] = sy_hist_bucket_max(b - 1) + 1;
    }
    check_against_sort(v, n, "bucket edges");
    free(v);
}

static void
test_quantile_edges(void **state)
{
    (void)state;
    struct sy_hist *h = hist_new();

    assert_int_equal(sy_hist_quantile(h, 0.5), 0);      /* empty */
    assert_int_equal(sy_hist_count_le(h, 1000), 0);
    for (uint64_t v = 1; v <= 100; v++)
        sy_hist_record(h, v);
    assert_int_equal(sy_hist_quantile(h, 0), 1);
    assert_int_equal(sy_hist_quantile(h, -1), 1);
    assert_int_equal(sy_hist_quantile(h, NAN), 1);
    assert_int_equal(sy_hist_quantile(h, 0.5), 50);     /* rank 50 of 100 */
    assert_int_equal(sy_hist_quantile(h, 0.501), 51);
    assert_int_equal(sy_hist_quantile(h, 0.95), 95);
    assert_int_equal(sy_hist_quantile(h, 1), 100);
    assert_int_equal(sy_hist_quantile(h, 7), 100);
    /* the middle of (5000, 5100] is 5050, but nothing above 5001 was recorded */
    sy_hist_reset(h);
    sy_hist_record(h, 5001);
    assert_int_equal(sy_hist_quantile(h, 0.5), 5001);
    sy_hist_record(h, 5100);
    assert_int_equal(sy_hist_quantile(h, 1), 5050);
    /* beyond 10 min: reads 10 min; the max stays true */
    sy_hist_record(h, 1000000000);
    assert_int_equal(sy_hist_quantile(h, 1), SY_HIST_MAX_US);
    assert_int_equal(sy_hist_max(h), 1000000000);
    free(h);
}

/* --- count_le ------------------------------------------------------------- */

static void
test_count_le(void **state)
{
    (void)state;
    struct sy_hist *h = hist_new();

    for (size_t i = 0; i < NSPEC; i++) {
        sy_hist_record(h, spec_bounds[i] - 1);
        sy_hist_record(h, spec_bounds[i]);
        sy_hist_record(h, spec_bounds[i] + 1);
    }
    for (size_t i = 0; i < NSPEC; i++)
        assert_int_equal(sy_hist_count_le(h, spec_bounds[i]), 3 * i + 2);
    /* 5001 lies inside (5000, 5100]: rounded down, it counts what 5000 does */
    assert_int_equal(sy_hist_count_le(h, 5001), 2);
    assert_int_equal(sy_hist_count_le(h, 5099), 2);
    assert_int_equal(sy_hist_count_le(h, 5100), 3);
    assert_int_equal(sy_hist_count_le(h, 0), 0);
    assert_int_equal(sy_hist_count_le(h, 10000001), 3 * NSPEC);   /* >= the largest */
    assert_int_equal(sy_hist_count_le(h, UINT64_MAX), 3 * NSPEC);
    sy_hist_record(h, 0);
    assert_int_equal(sy_hist_count_le(h, 0), 1);
    /* above 600 s: only bounds at or past the largest sample see it */
    sy_hist_record(h, 700000000);
    assert_int_equal(sy_hist_count_le(h, SY_HIST_MAX_US), 3 * NSPEC + 1);
    assert_int_equal(sy_hist_count_le(h, 650000000), 3 * NSPEC + 1);
    assert_int_equal(sy_hist_count_le(h, 700000000), 3 * NSPEC + 2);
    free(h);
}

/* --- merge ---------------------------------------------------------------- */

static void
assert_hist_equal(const struct sy_hist *a, const struct sy_hist *b)
{
    assert_int_equal(sy_hist_count(a), sy_hist_count(b));
    assert_int_equal(sy_hist_sum_us(a), sy_hist_sum_us(b));
    assert_int_equal(sy_hist_max(a), sy_hist_max(b));
    for (size_t i = 0; i < SY_HIST_BUCKETS; i++)
        assert_int_equal(atomic_load(&a->buckets[i]), atomic_load(&b->buckets[i]));
}

static void
test_merge_equals_one(void **state)
{
    (void)state;
    struct sy_hist *all = hist_new(), *merged = hist_new(), *parts[4];
    uint64_t seed = 7;

    for (int p = 0; p < 4; p++)
        parts[p] = hist_new();
    for (int i = 0; i < 100000; i++) {
        int p = (int)(rnd(&seed) % 4);
        /* each part its own scale: 0..1 ms, 0..1 s, 0..100 s, beyond range */
        static const uint64_t scale[] = { 1000, 1000000, 100000000, 1000000000000ull };
        uint64_t v = rnd(&seed) % scale[p];
        sy_hist_record(parts[p], v);
        sy_hist_record(all, v);
    }
    for (int p = 0; p < 4; p++)
        sy_hist_merge(merged, parts[p]);
    assert_hist_equal(merged, all);
    struct sy_hist *empty = hist_new();
    sy_hist_merge(merged, empty);
    assert_hist_equal(merged, all);
    sy_hist_merge(empty, all);
    assert_hist_equal(empty, all);
    sy_hist_reset(empty);
    assert_int_equal(sy_hist_count(empty), 0);
    assert_int_equal(sy_hist_max(empty), 0);
    assert_int_equal(sy_hist_quantile(empty, 0.5), 0);
    for (int p = 0; p < 4; p++)
        free(parts[p]);
    free(empty);
    free(merged);
    free(all);
}

/* --- readers racing the writer -------------------------------------------- */

#define RACE_SAMPLES 2000000

static void *
race_writer(void *arg)
{
    struct sy_hist *h = arg;
    uint64_t seed = 11;

    for (int i = 0; i < RACE_SAMPLES; i++)
        sy_hist_record(h, rnd(&seed) % 1000000);
    return NULL;
}

/* Snapshots taken while the writer runs never shrink and never exceed what
 * was recorded. */
static void
test_readers_race_writer(void **state)
{
    (void)state;
    struct sy_hist *h = hist_new(), *snap = hist_new();
    pthread_t t;
    uint64_t last = 0;

    assert_int_equal(pthread_create(&t, NULL, race_writer, h), 0);
    for (int i = 0; i < 2000 && last < RACE_SAMPLES; i++) {
        sy_hist_reset(snap);
        sy_hist_merge(snap, h);
        uint64_t n = sy_hist_count(snap);
        assert_true(n >= last && n <= RACE_SAMPLES);
        assert_true(sy_hist_count_le(snap, UINT64_MAX) == n);
        last = n;
    }
    pthread_join(t, NULL);
    sy_hist_reset(snap);
    sy_hist_merge(snap, h);
    assert_hist_equal(snap, h);
    assert_int_equal(sy_hist_count(snap), RACE_SAMPLES);
    free(h);
    free(snap);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_every_bucket_edge),
        cmocka_unit_test(test_powers_of_two),
        cmocka_unit_test(test_monotonic),
        cmocka_unit_test(test_bucket_value_precision),
        cmocka_unit_test(test_decimal_bounds_are_edges),
        cmocka_unit_test(test_quantiles_random),
        cmocka_unit_test(test_quantiles_adversarial),
        cmocka_unit_test(test_quantile_edges),
        cmocka_unit_test(test_count_le),
        cmocka_unit_test(test_merge_equals_one),
        cmocka_unit_test(test_readers_race_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
