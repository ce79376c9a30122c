/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_balance.c: the pick algorithms of balance.c (smooth weighted round
 * robin, least_conn, rendezvous ip_hash), skipping of tried and unusable
 * instances, panic mode and per-worker state. Pools are built by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/live.h"
#include "http/balance.h"

#define NOW_MS 1000000

/* A conf with one pool of n instances with the given weights, each with live state. */
static struct sy_conf *
conf_new(enum sy_balance balance, const int *weights, size_t n, unsigned nworkers)
{
    struct sy_conf *conf = calloc(1, sizeof(*conf));
    struct sy_pool *pool;

    assert_non_null(conf);
    conf->pools = pool = calloc(1, sizeof(*pool));
    assert_non_null(pool);
    conf->npools = 1;
    pool->balance = balance;
    pool->ninstances = n;
    pool->instances = calloc(n > 0 ? n : 1, sizeof(*pool->instances));
    assert_non_null(pool->instances);
    for (size_t i = 0; i < n; i++) {
        struct sy_instance *inst = &pool->instances[i];

        inst->weight = weights != NULL ? weights[i] : 1;
        inst->index = i;
        snprintf(inst->addr.text, sizeof(inst->addr.text), "10.0.%zu.%zu:8080", i / 250, i % 250);
        inst->live = calloc(1, sizeof(*inst->live));
        assert_non_null(inst->live);
    }
    assert_int_equal(sy_balance_prepare(conf, nworkers), 0);
    return conf;
}

/* Frees what conf_new allocated; balance_state with free(), as the snapshot does. */
static void
conf_free(struct sy_conf *conf)
{
    struct sy_pool *pool = &conf->pools[0];

    for (size_t i = 0; i < pool->ninstances; i++)
        free(pool->instances[i].live);
    free(pool->instances);
    free(pool->balance_state);
    free(conf->pools);
    free(conf);
}

/* Index of a pick released at once, or -1 when none. */
static long
pick_done(struct sy_pool *pool, unsigned worker, uint64_t tried, uint32_t hash)
{
    struct sy_instance *inst = sy_balance_pick(pool, worker, tried, hash, NOW_MS, NULL);

    if (inst == NULL)
        return -1;
    sy_balance_done(pool, worker, inst);
    return (long)inst->index;
}

static void
set_down(struct sy_instance *inst)
{
    atomic_store(&inst->live->health, SY_HEALTH_DOWN);
}

static void
test_usable(void **state)
{
    struct sy_instance_live live = {0};
    struct sy_instance inst = {.weight = 1, .live = &live};

    (void)state;
    assert_true(sy_instance_usable(&inst, NOW_MS));     /* unknown counts as usable */
    atomic_store(&live.health, SY_HEALTH_UP);
    assert_true(sy_instance_usable(&inst, NOW_MS));
    atomic_store(&live.health, SY_HEALTH_DOWN);
    assert_false(sy_instance_usable(&inst, NOW_MS));
    atomic_store(&live.health, SY_HEALTH_UP);
    atomic_store(&live.drained, true);
    assert_false(sy_instance_usable(&inst, NOW_MS));
    atomic_store(&live.drained, false);
    atomic_store(&live.ejected_until_ms, NOW_MS + 1);
    assert_false(sy_instance_usable(&inst, NOW_MS));
    atomic_store(&live.ejected_until_ms, NOW_MS);
    assert_true(sy_instance_usable(&inst, NOW_MS));
    atomic_store(&live.ejected_until_ms, NOW_MS - 5000);
    assert_true(sy_instance_usable(&inst, NOW_MS));
}

static void
test_rr_smooth_sequence(void **state)
{
    static const int weights[] = {5, 1, 1};
    static const long expect[] = {0, 0, 1, 0, 2, 0, 0};
    struct sy_conf *conf = conf_new(SY_BALANCE_ROUND_ROBIN, weights, 3, 1);
    long count[3] = {0};

    (void)state;
    for (size_t i = 0; i < 7 * 3; i++)
        assert_int_equal(pick_done(&conf->pools[0], 0, 0, 0), expect[i % 7]);
    for (size_t i = 0; i < 7000; i++)
        count[pick_done(&conf->pools[0], 0, 0, 0)]++;
    assert_int_equal(count[0], 5000);
    assert_int_equal(count[1], 1000);
    assert_int_equal(count[2], 1000);
    conf_free(conf);
}

static void
test_rr_equal_weights(void **state)
{
    struct sy_conf *conf = conf_new(SY_BALANCE_ROUND_ROBIN, NULL, 4, 1);
    long count[4] = {0};

    (void)state;
    for (size_t round = 0; round < 1000; round++) {
        unsigned seen = 0;

        for (size_t k = 0; k < 4; k++) {
            long i = pick_done(&conf->pools[0], 0, 0, 0);

            count[i]++;
            seen |= 1u << i;
        }
        assert_int_equal(seen, 0xf);    /* every round visits each instance once */
    }
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(count[i], 1000);
    conf_free(conf);
}

static void
test_tried_skipped(void **state)
{
    static const int weights[] = {5, 1, 1};
    enum sy_balance algs[] = {SY_BALANCE_ROUND_ROBIN, SY_BALANCE_LEAST_CONN, SY_BALANCE_IP_HASH};

    (void)state;
    for (size_t a = 0; a < 3; a++) {
        struct sy_conf *conf = conf_new(algs[a], weights, 3, 1);
        struct sy_pool *pool = &conf->pools[0];

        for (uint32_t h = 0; h < 100; h++) {
            long i = pick_done(pool, 0, 1u << 0, h);

            assert_true(i == 1 || i == 2);
            assert_int_equal(pick_done(pool, 0, (1u << 0) | (1u << 2), h), 1);
        }
        assert_int_equal(pick_done(pool, 0, 0x7, 0), -1);
        conf_free(conf);
    }
}

static void
test_tried_beyond_64(void **state)
{
    struct sy_conf *conf = conf_new(SY_BALANCE_ROUND_ROBIN, NULL, 66, 1);
    struct sy_pool *pool = &conf->pools[0];

    (void)state;
    /* instances 64 and 65 have no bit in `tried`: never skipped by it */
    for (size_t k = 0; k < 10; k++) {
        long i = pick_done(pool, 0, UINT64_MAX, 0);

        assert_true(i == 64 || i == 65);
    }
    conf_free(conf);
}

static void
test_unusable_skipped(void **state)
{
    struct sy_conf *conf = conf_new(SY_BALANCE_ROUND_ROBIN, NULL, 5, 1);
    struct sy_instance *inst = conf->pools[0].instances;
    long count[5] = {0};

    (void)state;
    set_down(&inst[0]);
    atomic_store(&inst[1].live->drained, true);
    atomic_store(&inst[2].live->ejected_until_ms, NOW_MS + 30000);
    atomic_store(&inst[3].live->ejected_until_ms, NOW_MS - 30000);
    atomic_store(&inst[4].live->health, SY_HEALTH_UP);
    for (size_t k = 0; k < 1000; k++)
        count[pick_done(&conf->pools[0], 0, 0, 0)]++;
    assert_int_equal(count[0] + count[1] + count[2], 0);
    assert_int_equal(count[3], 500);
    assert_int_equal(count[4], 500);
    conf_free(conf);
}

static void
test_panic_mode(void **state)
{
    static const int weights[] = {3, 1, 1};
    enum sy_balance algs[] = {SY_BALANCE_ROUND_ROBIN, SY_BALANCE_LEAST_CONN, SY_BALANCE_IP_HASH};

    (void)state;
    for (size_t a = 0; a < 3; a++) {
        struct sy_conf *conf = conf_new(algs[a], weights, 3, 1);
        struct sy_pool *pool = &conf->pools[0];

        bool panic = false;
        struct sy_instance *inst;

        for (size_t i = 0; i < 3; i++)
            set_down(&pool->instances[i]);
        assert_non_null(inst = sy_balance_pick(pool, 0, 0, 7, NOW_MS, &panic));
        assert_true(panic);
        sy_balance_done(pool, 0, inst);
        assert_int_not_equal(pick_done(pool, 0, 0, 7), -1);
        assert_int_not_equal(pick_done(pool, 0, 0x1, 7), 0);
        assert_int_equal(pick_done(pool, 0, 0x3, 7), 2);
        assert_int_equal(pick_done(pool, 0, 0x7, 7), -1);
        /* drained instances stay out even in panic mode */
        atomic_store(&pool->instances[0].live->drained, true);
        for (int k = 0; k < 10; k++)
            assert_int_not_equal(pick_done(pool, 0, 0, 7), 0);
        assert_int_equal(pick_done(pool, 0, 0x6, 7), -1);
        atomic_store(&pool->instances[0].live->drained, false);
        /* a usable instance exists but was tried: no panic, the retry gives up */
        atomic_store(&pool->instances[1].live->health, SY_HEALTH_UP);
        assert_int_equal(pick_done(pool, 0, 0, 7), 1);
        assert_int_equal(pick_done(pool, 0, 0x2, 7), -1);
        conf_free(conf);
    }
}

static void
test_panic_rr_weights(void **state)
{
    static const int weights[] = {5, 1, 1};
    static const long expect[] = {0, 0, 1, 0, 2, 0, 0};
    struct sy_conf *conf = conf_new(SY_BALANCE_ROUND_ROBIN, weights, 3, 1);

    (void)state;
    for (size_t i = 0; i < 3; i++)
        set_down(&conf->pools[0].instances[i]);
    for (size_t i = 0; i < 14; i++)
        assert_int_equal(pick_done(&conf->pools[0], 0, 0, 0), expect[i % 7]);
    conf_free(conf);
}

static void
test_no_instances(void **state)
{
    struct sy_conf *conf = conf_new(SY_BALANCE_ROUND_ROBIN, NULL, 0, 2);

    (void)state;
    assert_null(sy_balance_pick(&conf->pools[0], 1, 0, 0, NOW_MS, NULL));
    conf_free(conf);
}

static void
test_least_conn_prefers_lower_load(void **state)
{
    struct sy_conf *conf = conf_new(SY_BALANCE_LEAST_CONN, NULL, 3, 1);
    struct sy_pool *pool = &conf->pools[0];
    struct sy_instance *held[3];
    unsigned seen = 0;

    (void)state;
    for (size_t k = 0; k < 3; k++) {
        held[k] = sy_balance_pick(pool, 0, 0, 0, NOW_MS, NULL);
        seen |= 1u << held[k]->index;
    }
    assert_int_equal(seen, 0x7);
    /* releasing one makes it the least loaded */
    sy_balance_done(pool, 0, held[1]);
    assert_ptr_equal(sy_balance_pick(pool, 0, 0, 0, NOW_MS, NULL), held[1]);
    sy_balance_done(pool, 0, held[2]);
    assert_ptr_equal(sy_balance_pick(pool, 0, 0, 0, NOW_MS, NULL), held[2]);
    sy_balance_done(pool, 0, held[0]);
    sy_balance_done(pool, 0, held[1]);
    sy_balance_done(pool, 0, held[2]);
    /* everything released: equal load again, so turns resume */
    seen = 0;
    for (size_t k = 0; k < 3; k++)
        seen |= 1u << pick_done(pool, 0, 0, 0);
    assert_int_equal(seen, 0x7);
    conf_free(conf);
}

static void
test_least_conn_weights(void **state)
{
    static const int weights[] = {3, 1};
    struct sy_conf *conf = conf_new(SY_BALANCE_LEAST_CONN, weights, 2, 1);
    struct sy_pool *pool = &conf->pools[0];
    long count[2] = {0};

    (void)state;
    /* held requests fill the instances in proportion to their weights */
    for (size_t k = 0; k < 400; k++)
        count[sy_balance_pick(pool, 0, 0, 0, NOW_MS, NULL)->index]++;
    assert_int_equal(count[0], 300);
    assert_int_equal(count[1], 100);
    for (size_t i = 0; i < 2; i++) {
        while (count[i]-- > 0)
            sy_balance_done(pool, 0, &pool->instances[i]);
    }
    /* all idle again: an equal load (0) takes turns */
    assert_int_not_equal(pick_done(pool, 0, 0, 0), pick_done(pool, 0, 0, 0));
    conf_free(conf);
}

static void
test_least_conn_ties_rotate(void **state)
{
    struct sy_conf *conf = conf_new(SY_BALANCE_LEAST_CONN, NULL, 4, 1);
    long count[4] = {0};

    (void)state;
    for (size_t k = 0; k < 4000; k++)
        count[pick_done(&conf->pools[0], 0, 0, 0)]++;
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(count[i], 1000);
    conf_free(conf);
}

static void
test_ip_hash_stable(void **state)
{
    static const int weights[] = {1, 2, 3, 1, 1};
    struct sy_conf *eq = conf_new(SY_BALANCE_IP_HASH, NULL, 5, 1);
    struct sy_conf *wt = conf_new(SY_BALANCE_IP_HASH, weights, 5, 1);

    (void)state;
    for (uint32_t h = 0; h < 1000; h++) {
        uint32_t hash = h * 2654435761u;

        long first_eq = pick_done(&eq->pools[0], 0, 0, hash);
        long first_wt = pick_done(&wt->pools[0], 0, 0, hash);

        assert_int_equal(pick_done(&eq->pools[0], 0, 0, hash), first_eq);
        assert_int_equal(pick_done(&wt->pools[0], 0, 0, hash), first_wt);
    }
    conf_free(eq);
    conf_free(wt);
}

/* Counts picks of hashes 0..9999 and checks each against weight/total within 15%. */
static void
check_spread(struct sy_pool *pool, const int *weights, size_t n)
{
    long count[8] = {0};
    long total_weight = 0;

    for (size_t i = 0; i < n; i++)
        total_weight += weights[i];
    for (uint32_t h = 0; h < 10000; h++)
        count[pick_done(pool, 0, 0, h)]++;
    for (size_t i = 0; i < n; i++) {
        double fair = 10000.0 * weights[i] / (double)total_weight;

        assert_true(count[i] > fair * 0.85 && count[i] < fair * 1.15);
    }
}

static void
test_ip_hash_even(void **state)
{
    static const int equal[] = {1, 1, 1, 1, 1, 1, 1, 1};
    static const int weighted[] = {1, 2, 3, 2};
    struct sy_conf *eq = conf_new(SY_BALANCE_IP_HASH, equal, 8, 1);
    struct sy_conf *wt = conf_new(SY_BALANCE_IP_HASH, weighted, 4, 1);

    (void)state;
    check_spread(&eq->pools[0], equal, 8);
    check_spread(&wt->pools[0], weighted, 4);
    conf_free(eq);
    conf_free(wt);
}

/* Marks instance `gone` down and checks that only its clients moved. */
static void
check_minimal_move(struct sy_pool *pool, size_t gone)
{
    static long before[10000];
    long moved = 0;

    for (uint32_t h = 0; h < 10000; h++)
        before[h] = pick_done(pool, 0, 0, h);
    set_down(&pool->instances[gone]);
    for (uint32_t h = 0; h < 10000; h++) {
        long now = pick_done(pool, 0, 0, h);

        assert_int_not_equal(now, gone);
        if (before[h] != (long)gone)
            assert_int_equal(now, before[h]);
        else
            moved++;
    }
    assert_true(moved > 0);
}

static void
test_ip_hash_removal_moves_own_clients(void **state)
{
    static const int weighted[] = {1, 2, 3, 2, 1};
    struct sy_conf *eq = conf_new(SY_BALANCE_IP_HASH, NULL, 5, 1);
    struct sy_conf *wt = conf_new(SY_BALANCE_IP_HASH, weighted, 5, 1);

    (void)state;
    check_minimal_move(&eq->pools[0], 2);
    check_minimal_move(&wt->pools[0], 3);
    conf_free(eq);
    conf_free(wt);
}

static void
test_workers_independent(void **state)
{
    static const int weights[] = {5, 1, 1};
    static const long expect[] = {0, 0, 1, 0, 2, 0, 0};
    struct sy_conf *rr = conf_new(SY_BALANCE_ROUND_ROBIN, weights, 3, 3);
    struct sy_conf *lc = conf_new(SY_BALANCE_LEAST_CONN, NULL, 2, 2);
    struct sy_instance *held;

    (void)state;
    assert_int_equal((uintptr_t)rr->pools[0].balance_state % 64, 0);
    for (size_t k = 0; k < 3; k++)
        pick_done(&rr->pools[0], 0, 0, 0);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(pick_done(&rr->pools[0], 2, 0, 0), expect[i]);
    for (size_t i = 3; i < 7; i++)
        assert_int_equal(pick_done(&rr->pools[0], 0, 0, 0), expect[i]);

    /* worker 0's in-flight request does not load instance 0 for worker 1 */
    held = sy_balance_pick(&lc->pools[0], 0, 0, 0, NOW_MS, NULL);
    assert_int_equal(held->index, 0);
    assert_int_equal(pick_done(&lc->pools[0], 1, 0, 0), 0);
    assert_int_equal(pick_done(&lc->pools[0], 0, 0, 0), 1);
    sy_balance_done(&lc->pools[0], 0, held);
    conf_free(rr);
    conf_free(lc);
}

static void
test_prepare_again_and_zero_workers(void **state)
{
    struct sy_conf *conf = conf_new(SY_BALANCE_ROUND_ROBIN, NULL, 3, 2);

    (void)state;
    assert_int_equal(sy_balance_prepare(conf, 4), 0);   /* replaces (frees) the old state */
    assert_int_equal(pick_done(&conf->pools[0], 3, 0, 0), 0);
    assert_int_equal(sy_balance_prepare(conf, 0), -1);
    conf_free(conf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usable),
        cmocka_unit_test(test_rr_smooth_sequence),
        cmocka_unit_test(test_rr_equal_weights),
        cmocka_unit_test(test_tried_skipped),
        cmocka_unit_test(test_tried_beyond_64),
        cmocka_unit_test(test_unusable_skipped),
        cmocka_unit_test(test_panic_mode),
        cmocka_unit_test(test_panic_rr_weights),
        cmocka_unit_test(test_no_instances),
        cmocka_unit_test(test_least_conn_prefers_lower_load),
        cmocka_unit_test(test_least_conn_weights),
        cmocka_unit_test(test_least_conn_ties_rotate),
        cmocka_unit_test(test_ip_hash_stable),
        cmocka_unit_test(test_ip_hash_even),
        cmocka_unit_test(test_ip_hash_removal_moves_own_clients),
        cmocka_unit_test(test_workers_independent),
        cmocka_unit_test(test_prepare_again_and_zero_workers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
