/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_live.c: the live-state registry (entries shared across snapshots,
 * freed with the last reference) and passive health: ejection after
 * max_fails in a row, the back-off and its cap, max_eject_percent, and
 * never ejecting the last usable instance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/live.h"

#define NOW 1000000

static struct sy_pool *
pool_new(size_t n, int max_fails, int64_t eject_ms, int max_pct)
{
    struct sy_pool *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    p->name = "p";
    p->ninstances = n;
    p->instances = calloc(n, sizeof(*p->instances));
    assert_non_null(p->instances);
    p->passive.max_fails = max_fails;
    p->passive.eject_ms = eject_ms;
    p->passive.max_eject_percent = max_pct;
    for (size_t i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.0.0.%zu:80", i);
        p->instances[i].index = i;
        assert_non_null(p->instances[i].live = sy_live_get("test-pool", addr, false));
    }
    return p;
}

static void
pool_free(struct sy_pool *p)
{
    for (size_t i = 0; i < p->ninstances; i++)
        sy_live_put(p->instances[i].live);
    free(p->instances);
    free(p);
}

static int64_t
fail_n(struct sy_pool *p, size_t i, int n, int64_t now)
{
    int64_t ms = 0;
    for (int k = 0; k < n; k++)
        ms = sy_live_failure(p, &p->instances[i], now);
    return ms;
}

static void
test_registry_shares_and_frees(void **state)
{
    (void)state;
    struct sy_instance_live *a = sy_live_get("pool-a", "127.0.0.1:1", true);
    struct sy_instance_live *b = sy_live_get("pool-a", "127.0.0.1:1", false);
    struct sy_instance_live *c = sy_live_get("pool-b", "127.0.0.1:1", false);

    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_int_equal(atomic_load(&a->health), SY_HEALTH_UNKNOWN);   /* the first get decides */
    assert_int_equal(atomic_load(&c->health), SY_HEALTH_UP);
    atomic_store(&a->drained, true);
    sy_live_put(a);
    assert_true(atomic_load(&b->drained));     /* survives while referenced */
    sy_live_put(b);
    sy_live_put(c);
    a = sy_live_get("pool-a", "127.0.0.1:1", false);  /* a fresh entry after the last put */
    assert_false(atomic_load(&a->drained));
    assert_int_equal(atomic_load(&a->health), SY_HEALTH_UP);
    sy_live_put(a);
}

static void
test_eject_after_max_fails_and_success_resets(void **state)
{
    (void)state;
    struct sy_pool *p = pool_new(4, 3, 1000, 50);

    assert_int_equal(fail_n(p, 0, 2, NOW), 0);
    sy_live_success(&p->instances[0], NOW);     /* not in a row any more */
    assert_int_equal(fail_n(p, 0, 2, NOW), 0);
    assert_true(sy_live_usable(p->instances[0].live, NOW));
    assert_int_equal(sy_live_failure(p, &p->instances[0], NOW), 1000);
    assert_false(sy_live_usable(p->instances[0].live, NOW));
    assert_false(sy_live_usable(p->instances[0].live, NOW + 999));
    assert_true(sy_live_usable(p->instances[0].live, NOW + 1000));
    /* failures while ejected do not eject again */
    assert_int_equal(fail_n(p, 0, 5, NOW + 10), 0);
    pool_free(p);
}

static void
test_backoff_grows_and_caps(void **state)
{
    (void)state;
    struct sy_pool *p = pool_new(4, 1, 100000, 50);
    int64_t now = NOW;

    assert_int_equal(sy_live_failure(p, &p->instances[0], now), 100000);
    now += 100000;
    assert_int_equal(sy_live_failure(p, &p->instances[0], now), 200000);
    now += 200000;
    assert_int_equal(sy_live_failure(p, &p->instances[0], now), 300000);   /* capped */
    now += 300000;
    assert_int_equal(sy_live_failure(p, &p->instances[0], now), 300000);
    now += 300000;
    /* a success after it came back ends the streak */
    sy_live_success(&p->instances[0], now);
    assert_int_equal(sy_live_failure(p, &p->instances[0], now), 100000);
    pool_free(p);
}

static void
test_max_eject_percent(void **state)
{
    (void)state;
    struct sy_pool *p = pool_new(10, 1, 1000, 20);     /* at most 2 of 10 */

    assert_int_equal(sy_live_failure(p, &p->instances[0], NOW), 1000);
    assert_int_equal(sy_live_failure(p, &p->instances[1], NOW), 1000);
    assert_int_equal(sy_live_failure(p, &p->instances[2], NOW), 0);
    assert_true(sy_live_usable(p->instances[2].live, NOW));
    pool_free(p);

    p = pool_new(3, 1, 1000, 10);   /* 10 % of 3 rounds to 0: still one may go */
    assert_int_equal(sy_live_failure(p, &p->instances[0], NOW), 1000);
    assert_int_equal(sy_live_failure(p, &p->instances[1], NOW), 0);
    pool_free(p);
}

static void
test_last_usable_never_ejected(void **state)
{
    (void)state;
    struct sy_pool *p = pool_new(2, 1, 1000, 100);

    atomic_store(&p->instances[1].live->health, SY_HEALTH_DOWN);
    assert_int_equal(fail_n(p, 0, 10, NOW), 0);
    assert_true(sy_live_usable(p->instances[0].live, NOW));
    atomic_store(&p->instances[1].live->health, SY_HEALTH_UP);
    atomic_store(&p->instances[1].live->drained, true);
    assert_int_equal(fail_n(p, 0, 1, NOW), 0);
    atomic_store(&p->instances[1].live->drained, false);
    assert_int_equal(fail_n(p, 0, 1, NOW), 1000);
    pool_free(p);
}

static void
test_passive_off(void **state)
{
    (void)state;
    struct sy_pool *p = pool_new(3, 0, 1000, 100);

    assert_int_equal(fail_n(p, 0, 100, NOW), 0);
    assert_true(sy_live_usable(p->instances[0].live, NOW));
    pool_free(p);
}

static void
test_healthy(void **state)
{
    (void)state;
    struct sy_pool *p = pool_new(2, 1, 1000, 100);

    assert_true(sy_pool_healthy(p, NOW));
    atomic_store(&p->instances[0].live->health, SY_HEALTH_UNKNOWN);
    atomic_store(&p->instances[1].live->health, SY_HEALTH_DOWN);
    assert_true(sy_live_usable(p->instances[0].live, NOW));     /* unknown takes traffic */
    assert_false(sy_live_healthy(p->instances[0].live, NOW));   /* but is not "healthy" */
    assert_false(sy_pool_healthy(p, NOW));
    atomic_store(&p->instances[1].live->health, SY_HEALTH_UP);
    assert_true(sy_pool_healthy(p, NOW));
    atomic_store(&p->instances[1].live->ejected_until_ms, NOW + 1);
    assert_false(sy_pool_healthy(p, NOW));
    pool_free(p);
}

static void
test_service_adopt(void **state)
{
    (void)state;
    struct sy_service svc = {.name = "svc", .active = SY_SLOT_BLUE, .canary.weight = 0};
    struct sy_conf conf = {.services = &svc, .nservices = 1};

    svc.live = sy_live_service_get("svc", SY_SLOT_BLUE, 0);
    assert_non_null(svc.live);
    assert_int_equal(sy_live_active(&svc), SY_SLOT_BLUE);
    /* a run-time switch survives a configuration that did not change its own values */
    sy_live_service_set(svc.live, SY_SLOT_GREEN, 30, 1000);
    sy_live_services_adopt(&conf, 1000);
    assert_int_equal(sy_live_active(&svc), SY_SLOT_GREEN);
    assert_int_equal(sy_live_canary_weight(&svc), 30);
    /* the file's active slot changed: it wins; its weight did not: the run-time one stays */
    svc.active = SY_SLOT_GREEN;
    sy_live_service_set(svc.live, SY_SLOT_BLUE, 30, 1000);
    sy_live_services_adopt(&conf, 1000);
    assert_int_equal(sy_live_active(&svc), SY_SLOT_GREEN);
    assert_int_equal(sy_live_canary_weight(&svc), 30);
    svc.canary.weight = 5;
    sy_live_services_adopt(&conf, 1000);
    assert_int_equal(sy_live_canary_weight(&svc), 5);
    /* while a rollout owns the split, the file's weight is ignored, then and later */
    svc.live->rollout.state = SY_ROLLOUT_RUNNING;
    svc.canary.weight = 9;
    sy_live_services_adopt(&conf, 1000);
    assert_int_equal(sy_live_canary_weight(&svc), 5);
    svc.live->rollout.state = SY_ROLLOUT_PROMOTED;
    sy_live_services_adopt(&conf, 1000);
    assert_int_equal(sy_live_canary_weight(&svc), 5);
    /* the file's active slot changing under a rollout ends it, with the file's weight */
    svc.live->rollout.state = SY_ROLLOUT_RUNNING;
    svc.active = SY_SLOT_BLUE;
    sy_live_services_adopt(&conf, 1000);
    assert_int_equal(svc.live->rollout.state, SY_ROLLOUT_ABORTED);
    assert_int_equal(sy_live_active(&svc), SY_SLOT_BLUE);
    assert_int_equal(sy_live_canary_weight(&svc), 9);
    sy_live_service_set(svc.live, SY_SLOT_GREEN, 5, 1000);
    /* a second get shares the entry and keeps its state */
    struct sy_service_live *again = sy_live_service_get("svc", SY_SLOT_BLUE, 0);
    assert_ptr_equal(again, svc.live);
    assert_int_equal(atomic_load(&again->split) & 1, SY_SLOT_GREEN);
    sy_live_service_put(again);
    sy_live_service_put(svc.live);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_shares_and_frees),
        cmocka_unit_test(test_eject_after_max_fails_and_success_resets),
        cmocka_unit_test(test_backoff_grows_and_caps),
        cmocka_unit_test(test_max_eject_percent),
        cmocka_unit_test(test_last_usable_never_ejected),
        cmocka_unit_test(test_passive_off),
        cmocka_unit_test(test_healthy),
        cmocka_unit_test(test_service_adopt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
