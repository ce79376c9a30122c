/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_logstat_sketch.c: the Space-Saving table against exact counts.
 * Until the table is full its figures are exact; past it, every kept key's
 * weight bounds its true count from above and weight - overcount from
 * below, every key above total/cap is kept, and a skewed stream's top ten
 * come out right. Then the distinct-value estimate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tools/switchyard-logstat/logstat.h"
#include "test_util.h"

static const struct sy_sipkey key = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};

static struct ls_entry *add(struct ls_table *t, const char *k, uint64_t w)
{
    return ls_table_add(t, k, strlen(k), ls_table_hash(t, k, strlen(k)), w);
}

static struct ls_entry *find(struct ls_table *t, const char *k)
{
    return ls_table_find(t, k, strlen(k), ls_table_hash(t, k, strlen(k)));
}

static void test_exact_until_full(void **state)
{
    (void)state;
    struct ls_table t;
    char k[32];

    ls_table_init(&t, 1000, &key);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 1000; i++) {
            snprintf(k, sizeof(k), "/path/%d", i);
            add(&t, k, (uint64_t)(i % 7 + 1));
        }
    assert_int_equal(t.n, 1000);
    assert_int_equal(t.evictions, 0);
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "/path/%d", i);
        struct ls_entry *e = find(&t, k);
        assert_non_null(e);
        assert_int_equal(e->weight, 3 * (uint64_t)(i % 7 + 1));
        assert_int_equal(e->overcount, 0);
        assert_string_equal(e->key, k);
    }
    assert_null(find(&t, "/path/1000"));
    ls_table_free(&t);
}

/* Zipf-like: key i with probability ~ 1/(i+1), over 20,000 keys. */
static unsigned zipf(uint64_t *seed, const double *cdf, unsigned n)
{
    double u = rnd01(seed);
    unsigned lo = 0, hi = n - 1;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int by_weight(const void *a, const void *b)
{
    const struct ls_entry *x = *(struct ls_entry *const *)a, *y = *(struct ls_entry *const *)b;
    return x->weight < y->weight ? 1 : x->weight > y->weight ? -1 : 0;
}

static void test_bounds_after_evictions(void **state)
{
    (void)state;
    enum { NKEYS = 20000, CAP = 500, STREAM = 400000 };
    static double cdf[NKEYS];
    static uint64_t exact[NKEYS];
    uint64_t seed = 1;
    double sum = 0;
    struct ls_table t;
    char k[32];

    for (unsigned i = 0; i < NKEYS; i++)
        sum += 1.0 / (i + 1);
    for (unsigned i = 0; i < NKEYS; i++) {
        cdf[i] = (i ? cdf[i - 1] : 0) + 1.0 / (i + 1) / sum;
    }
    ls_table_init(&t, CAP, &key);
    for (unsigned s = 0; s < STREAM; s++) {
        unsigned i = zipf(&seed, cdf, NKEYS);
        exact[i]++;
        snprintf(k, sizeof(k), "client-%u", i);
        add(&t, k, 1);
    }
    assert_int_equal(t.n, CAP);
    assert_true(t.evictions > 0);
    assert_int_equal(t.total, STREAM);

    /* Every kept key: weight - overcount <= true <= weight. */
    for (size_t e = 0; e < t.n; e++) {
        const struct ls_entry *en = &t.entries[e];
        unsigned i = (unsigned)strtoul(en->key + 7, NULL, 10);
        if (exact[i] > en->weight || en->weight - en->overcount > exact[i])
            fail_msg("%s: true %llu, weight %llu, overcount %llu", en->key,
                     (unsigned long long)exact[i], (unsigned long long)en->weight,
                     (unsigned long long)en->overcount);
    }
    /* Every key above total / cap is kept. */
    for (unsigned i = 0; i < NKEYS; i++) {
        if (exact[i] <= STREAM / CAP)
            continue;
        snprintf(k, sizeof(k), "client-%u", i);
        if (!find(&t, k))
            fail_msg("%s (%llu of %d) was evicted", k, (unsigned long long)exact[i], STREAM);
    }
    /* The heavy hitters rank as they should. */
    struct ls_entry **sorted = ls_table_sorted(&t, by_weight);
    for (unsigned r = 0; r < 10; r++) {
        snprintf(k, sizeof(k), "client-%u", r);
        assert_string_equal(sorted[r]->key, k);
    }
    free(sorted);
    ls_table_free(&t);
}

/* Keys evicted and re-added many times keep the index consistent. */
static void test_churn(void **state)
{
    (void)state;
    struct ls_table t;
    uint64_t seed = 9;
    char k[32];

    ls_table_init(&t, 16, &key);
    for (int s = 0; s < 200000; s++) {
        snprintf(k, sizeof(k), "%llu", (unsigned long long)(rnd(&seed) % 64));
        struct ls_entry *e = add(&t, k, 1 + rnd(&seed) % 3);
        assert_string_equal(e->key, k);
        assert_ptr_equal(find(&t, k), e);
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < t.n; i++) {
        assert_ptr_equal(find(&t, t.entries[i].key), &t.entries[i]);
        sum += t.entries[i].weight;
    }
    assert_int_equal(sum, t.total);     /* Space-Saving keeps the total */
    ls_table_free(&t);
}

static void test_long_keys_cut(void **state)
{
    (void)state;
    struct ls_table t;
    char *big = malloc(4 * LS_KEY_MAX);

    memset(big, 'a', 4 * LS_KEY_MAX);
    ls_table_init(&t, 4, &key);
    struct ls_entry *e = ls_table_add(&t, big, 4 * LS_KEY_MAX,
                                      ls_table_hash(&t, big, 4 * LS_KEY_MAX), 1);
    assert_int_equal(e->keylen, LS_KEY_MAX);
    /* A longer key with the same first LS_KEY_MAX bytes is the same key. */
    e = ls_table_add(&t, big, 2 * LS_KEY_MAX, ls_table_hash(&t, big, 2 * LS_KEY_MAX), 1);
    assert_int_equal(t.n, 1);
    assert_int_equal(e->weight, 2);
    ls_table_free(&t);
    free(big);
}

static void test_distinct(void **state)
{
    (void)state;
    struct ls_table t;
    uint64_t seed = 3;

    ls_table_init(&t, 4, &key);
    struct ls_entry *e = add(&t, "scanner", 1);
    assert_int_equal(ls_entry_distinct(e), 0);
    for (int n = 1; n <= 800; n++) {
        ls_entry_mark_distinct(e, rnd(&seed));
        if (n == 1 || n == 20 || n == 100 || n == 400 || n == 800) {
            uint64_t est = ls_entry_distinct(e);
            double err = (double)est / n - 1;
            if (err > 0.1 || err < -0.1)
                fail_msg("%d distinct estimated as %llu", n, (unsigned long long)est);
        }
    }
    /* The same value again adds nothing. */
    uint64_t before = ls_entry_distinct(e);
    seed = 3;
    for (int n = 0; n < 100; n++)
        ls_entry_mark_distinct(e, rnd(&seed));
    assert_int_equal(ls_entry_distinct(e), before);
    ls_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_until_full),
        cmocka_unit_test(test_bounds_after_evictions),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_long_keys_cut),
        cmocka_unit_test(test_distinct),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
