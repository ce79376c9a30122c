/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_fleet_doc.c: the documents gateways exchange through Redis
 * (core/fleet_doc.c). A service's state comes back as it was encoded and
 * applies as the same state on another gateway, its step's start moved
 * onto that gateway's clock; the canonical text tells a change from none;
 * every malformed document is refused whole with a reason, and the version
 * Redis's script would read is still found; a version no double holds
 * exactly, or no whole number, is version 0 (garbage); a decoded document's
 * core is the one its state has; a running rollout at a step the service
 * does not have is no state of it. A gateway's figures add up
 * into the fleet's window (requests, errors, quantiles, max) only for the
 * step they were read for, and malformed ones change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/fleet_doc.h"
#include "core/live.h"

struct fixture {
    int steps[3];
    struct sy_service a, b;     /* two gateways' entries of one service */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->steps[0] = 10, f->steps[1] = 50, f->steps[2] = 100;
    f->a.name = f->b.name = "app";
    f->a.rollout.steps = f->b.rollout.steps = f->steps;
    f->a.rollout.nsteps = f->b.rollout.nsteps = 3;
    /* two registry entries: names differ, the service's name is the same */
    f->a.live = sy_live_service_get("app-a", SY_SLOT_BLUE, 0);
    f->b.live = sy_live_service_get("app-b", SY_SLOT_BLUE, 0);
    assert_non_null(f->a.live);
    assert_non_null(f->b.live);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    sy_live_service_put(f->a.live);
    sy_live_service_put(f->b.live);
    free(f);
    return 0;
}

/* A running rollout at its second step, with an analysis that failed. */
static void running(struct sy_service *svc)
{
    struct sy_rollout_live *ro = &svc->live->rollout;

    sy_live_service_set(svc->live, SY_SLOT_BLUE, 50, 1);
    atomic_store(&svc->live->maintenance, true);
    memset(ro, 0, sizeof(*ro));
    ro->state = SY_ROLLOUT_RUNNING;
    ro->paused_from = SY_ROLLOUT_RUNNING;
    ro->step = 1;
    ro->canary_slot = SY_SLOT_GREEN;
    ro->started_wall_ms = 1700000000000;
    ro->step_started_wall_ms = 1700000060000;
    ro->last.at_ms = 1700000061000;
    ro->last.step = 1;
    ro->last.weight = 50;
    ro->last.window_ms = 1000;
    ro->last.verdict = "fail";
    ro->last.canary = (struct sy_rollout_side){.requests = 40, .errors = 20, .error_rate = 0.5,
                                               .p95_ms = 12.5};
    ro->last.baseline = (struct sy_rollout_side){.requests = 40, .p95_ms = 10};
    ro->last.p95_ratio = 1.25;
    snprintf(ro->last.reason, sizeof(ro->last.reason), "canary error rate 0.5");
}

static void test_state_round_trip(void **state)
{
    struct fixture *f = *state;
    struct sy_fleet_doc doc;
    int64_t version;
    char err[256];

    running(&f->a);
    char *text = sy_fleet_doc_encode(&f->a, 7, "web1:42:abcd", 1700000062000);
    assert_non_null(text);
    assert_int_equal(sy_fleet_doc_decode(text, strlen(text), &doc, &version, err,
                                         sizeof(err)), 0);
    assert_string_equal(doc.service, "app");
    assert_int_equal(doc.version, 7);
    assert_int_equal(version, 7);
    assert_string_equal(doc.by, "web1:42:abcd");
    assert_int_equal(doc.at_ms, 1700000062000);
    assert_int_equal(doc.active, SY_SLOT_BLUE);
    assert_int_equal(doc.weight, 50);
    assert_true(doc.maintenance);
    assert_int_equal(doc.rollout.state, SY_ROLLOUT_RUNNING);
    assert_int_equal(doc.rollout.step, 1);
    assert_int_equal(doc.rollout.canary_slot, SY_SLOT_GREEN);
    assert_int_equal(doc.rollout.step_started_wall_ms, 1700000060000);
    assert_true(doc.has_analysis);
    assert_string_equal(doc.rollout.last.verdict, "fail");
    assert_int_equal(doc.rollout.last.canary.errors, 20);
    assert_true(doc.rollout.last.canary.error_rate == 0.5);

    /* applied on another gateway: the same state, 4 s into the step by its clock */
    assert_int_equal(f->b.live->fleet.version, 0);
    f->b.live->fleet.pending = true;
    sy_fleet_doc_apply(&f->b, &doc, 100000, 1700000064000);
    char *core_a = sy_fleet_doc_core(&f->a), *core_b = sy_fleet_doc_core(&f->b);
    assert_string_equal(core_a, core_b);
    assert_int_equal(f->b.live->rollout.step_started_ms, 96000);
    assert_int_equal(f->b.live->fleet.version, 7);
    assert_false(f->b.live->fleet.pending);
    assert_string_equal(f->b.live->rollout.last.reason, "canary error rate 0.5");
    assert_int_equal(sy_live_canary_weight(&f->b), 50);
    assert_true(sy_live_maintenance(&f->b));
    /* a step that starts later than this gateway's clock says: it starts now */
    doc.rollout.step_started_wall_ms = 1700000070000;
    sy_fleet_doc_apply(&f->b, &doc, 100000, 1700000064000);
    assert_int_equal(f->b.live->rollout.step_started_ms, 100000);
    free(text);
    free(core_a);
    free(core_b);
}

static void test_core_tells_a_change(void **state)
{
    struct fixture *f = *state;

    running(&f->a);
    char *before = sy_fleet_doc_core(&f->a);
    /* the analysis and the version are not the state */
    f->a.live->rollout.last.p95_ratio = 3;
    f->a.live->fleet.version = 99;
    char *same = sy_fleet_doc_core(&f->a);
    assert_string_equal(before, same);
    sy_live_service_set(f->a.live, SY_SLOT_BLUE, 51, 1);
    char *changed = sy_fleet_doc_core(&f->a);
    assert_string_not_equal(before, changed);
    free(before);
    free(same);
    free(changed);
}

static void refused(const char *text, int64_t want_version, const char *reason)
{
    struct sy_fleet_doc doc;
    int64_t version = -1;
    char err[256] = "";

    if (sy_fleet_doc_decode(text, strlen(text), &doc, &version, err, sizeof(err)) == 0)
        fail_msg("accepted: %s", text);
    if (!strstr(err, reason))
        fail_msg("%s: reason \"%s\", not \"%s\"", text, err, reason);
    assert_int_equal(version, want_version);
}

#define GOOD_ROLLOUT "\"rollout\": {\"state\": \"idle\", \"step\": 0, \"canary\": \"blue\", " \
                     "\"paused_from\": \"idle\", \"started\": 0, \"step_started\": 0}"

static void test_garbage_is_refused(void **state)
{
    struct sy_fleet_doc doc;
    int64_t version;
    char err[256];
    char *big = calloc(1, SY_FLEET_DOC_MAX + 64);

    (void)state;
    refused("", 0, "not JSON");
    refused("{not json", 0, "not JSON");
    refused("[1, 2]", 0, "not a JSON object");
    refused("\"app\"", 0, "not JSON");     /* jansson decodes only arrays and objects */
    refused("{\"service\": \"app\", \"version\": 3}", 3, "not found");
    refused("{\"service\": \"app\", \"version\": 3, \"active\": \"purple\", \"canary_weight\": 0,"
            " \"maintenance\": false, " GOOD_ROLLOUT "}", 3, "out of range");
    refused("{\"service\": \"app\", \"version\": 3, \"active\": \"blue\", \"canary_weight\": 101,"
            " \"maintenance\": false, " GOOD_ROLLOUT "}", 3, "out of range");
    refused("{\"service\": \"app\", \"version\": 0, \"active\": \"blue\", \"canary_weight\": 1,"
            " \"maintenance\": false, " GOOD_ROLLOUT "}", 0, "out of range");
    refused("{\"service\": \"app\", \"version\": \"9\", \"active\": \"blue\", "
            "\"canary_weight\": 1, \"maintenance\": false, " GOOD_ROLLOUT "}", 0, "integer");
    refused("{\"service\": \"app\", \"version\": 4, \"active\": \"blue\", \"canary_weight\": 1,"
            " \"maintenance\": false, \"rollout\": {\"state\": \"paused\", \"step\": 0, "
            "\"canary\": \"blue\", \"paused_from\": \"idle\", \"started\": 0, "
            "\"step_started\": 0}}", 4, "paused_from");
    refused("{\"service\": \"app\", \"version\": 4, \"active\": \"blue\", \"canary_weight\": 1,"
            " \"maintenance\": false, \"rollout\": {\"state\": \"running\", \"step\": -1, "
            "\"canary\": \"blue\", \"paused_from\": \"idle\", \"started\": 0, "
            "\"step_started\": 0}}", 4, "out of range");
    refused("{\"service\": \"app\", \"version\": 5, \"active\": \"blue\", \"canary_weight\": 1,"
            " \"maintenance\": false, " GOOD_ROLLOUT ", \"analysis\": {\"verdict\": \"meh\"}}",
            5, "analysis");
    refused("{\"service\": \"app\", \"service\": \"x\", \"version\": 5}", 0, "duplicate");
    memset(big, ' ', SY_FLEET_DOC_MAX + 10);
    assert_int_equal(sy_fleet_doc_decode(big, SY_FLEET_DOC_MAX + 10, &doc, &version, err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "bytes"));
    free(big);
    /* the smallest good one: keys a newer gateway may add are ignored */
    const char *ok = "{\"service\": \"app\", \"version\": 2, \"active\": \"green\", "
                     "\"canary_weight\": 0, \"maintenance\": false, \"shiny\": [1], "
                     GOOD_ROLLOUT "}";
    assert_int_equal(sy_fleet_doc_decode(ok, strlen(ok), &doc, &version, err, sizeof(err)), 0);
    assert_int_equal(doc.active, SY_SLOT_GREEN);
    assert_false(doc.has_analysis);
    assert_string_equal(doc.by, "");
}

/* A document of version (as JSON text) that is otherwise good. */
static void with_version(const char *version, char *out, size_t len)
{
    snprintf(out, len, "{\"service\": \"app\", \"version\": %s, \"active\": \"blue\", "
             "\"canary_weight\": 1, \"maintenance\": false, " GOOD_ROLLOUT "}", version);
}

static void test_versions_beyond_a_double_are_garbage(void **state)
{
    static const struct {
        const char *text;
        int64_t version;        /* what the store script orders by; 0: garbage */
        bool valid;
    } cases[] = {
        {"1", 1, true},
        {"9007199254740991", 9007199254740991LL, true},        /* 2^53 - 1 */
        {"9007199254740992", 0, false},                        /* 2^53 */
        {"4611686018427387904", 0, false},                     /* 2^62 */
        {"9223372036854775807", 0, false},                     /* 2^63 - 1 */
        {"1e300", 0, false},
        {"1e400", 0, false},                                   /* jansson: not JSON */
        {"5.0", 5, false},                                     /* cjson reads 5: so do we */
        {"5.5", 0, false},
        {"-3", 0, false},
    };
    struct sy_fleet_doc doc;
    int64_t version;
    char text[512], err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        with_version(cases[i].text, text, sizeof(text));
        int rc = sy_fleet_doc_decode(text, strlen(text), &doc, &version, err, sizeof(err));
        if ((rc == 0) != cases[i].valid || version != cases[i].version)
            fail_msg("version %s: rc %d, version %lld (%s)", cases[i].text, rc,
                     (long long)version, err);
    }
    assert_int_equal(SY_FLEET_VERSION_MAX, (1LL << 53) - 1);
}

static void test_a_documents_core_is_its_states(void **state)
{
    struct fixture *f = *state;
    struct sy_fleet_doc doc;
    int64_t version;
    char err[256];

    running(&f->a);
    char *text = sy_fleet_doc_encode(&f->a, 3, "web1:42:abcd", 1700000062000);
    assert_int_equal(sy_fleet_doc_decode(text, strlen(text), &doc, &version, err,
                                         sizeof(err)), 0);
    char *core = sy_fleet_doc_core(&f->a), *of = sy_fleet_doc_core_of(&doc);
    assert_string_equal(core, of);
    /* another weight: another state */
    doc.weight = 20;
    char *other = sy_fleet_doc_core_of(&doc);
    assert_string_not_equal(core, other);
    free(text);
    free(core);
    free(of);
    free(other);
}

static void test_a_step_past_the_services_is_no_state_of_it(void **state)
{
    struct fixture *f = *state;
    struct sy_fleet_doc doc;
    int64_t version;
    char err[256] = "";

    running(&f->a);
    char *text = sy_fleet_doc_encode(&f->a, 3, "web1:42:abcd", 1700000062000);
    assert_int_equal(sy_fleet_doc_decode(text, strlen(text), &doc, &version, err,
                                         sizeof(err)), 0);
    doc.rollout.step = 2;                       /* the last of 3 */
    assert_int_equal(sy_fleet_doc_fits(&f->a, &doc, err, sizeof(err)), 0);
    doc.rollout.step = 3;
    assert_int_equal(sy_fleet_doc_fits(&f->a, &doc, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "step"));
    doc.rollout.state = SY_ROLLOUT_PAUSED;
    assert_int_equal(sy_fleet_doc_fits(&f->a, &doc, err, sizeof(err)), -1);
    /* promoted, it went past the last step: no longer a step to run */
    doc.rollout.state = SY_ROLLOUT_PROMOTED;
    assert_int_equal(sy_fleet_doc_fits(&f->a, &doc, err, sizeof(err)), 0);
    /* a service without steps runs no rollout */
    f->a.rollout.nsteps = 0;
    doc.rollout.state = SY_ROLLOUT_RUNNING;
    doc.rollout.step = 0;
    assert_int_equal(sy_fleet_doc_fits(&f->a, &doc, err, sizeof(err)), -1);
    free(text);
}

/* One slot's window of n samples of value_us, errors of them failed. */
static void fill(struct sy_metrics_window *w, int n, uint64_t value_us, int errors)
{
    for (int i = 0; i < n; i++)
        sy_hist_record(&w->hist, value_us);
    w->requests += (uint64_t)n;
    w->errors += (uint64_t)errors;
}

static void test_figures_add_up_for_their_step(void **state)
{
    struct sy_metrics_window *w = calloc(2, sizeof(*w)), *sum = calloc(2, sizeof(*sum));
    char err[256];

    (void)state;
    assert_non_null(w);
    assert_non_null(sum);
    fill(&w[SY_SLOT_BLUE], 90, 10000, 0);
    fill(&w[SY_SLOT_GREEN], 30, 40000, 12);
    fill(&w[SY_SLOT_GREEN], 10, 900000, 0);
    char *text = sy_fleet_figures_encode(w, 1700000060000, 1700000064000);
    assert_non_null(text);
    /* another step's figures: not added */
    assert_int_equal(sy_fleet_figures_add(text, strlen(text), 1700000000000, sum, err,
                                          sizeof(err)), 0);
    assert_int_equal(sum[SY_SLOT_GREEN].requests, 0);
    /* twice, as two gateways with the same traffic */
    for (int i = 0; i < 2; i++)
        assert_int_equal(sy_fleet_figures_add(text, strlen(text), 1700000060000, sum, err,
                                              sizeof(err)), 1);
    assert_int_equal(sum[SY_SLOT_BLUE].requests, 180);
    assert_int_equal(sum[SY_SLOT_GREEN].requests, 80);
    assert_int_equal(sum[SY_SLOT_GREEN].errors, 24);
    assert_int_equal(sy_hist_count(&sum[SY_SLOT_GREEN].hist), 80);
    assert_int_equal(sy_hist_quantile(&sum[SY_SLOT_GREEN].hist, 0.5),
                     sy_hist_quantile(&w[SY_SLOT_GREEN].hist, 0.5));
    assert_int_equal(sy_hist_quantile(&sum[SY_SLOT_GREEN].hist, 0.95),
                     sy_hist_quantile(&w[SY_SLOT_GREEN].hist, 0.95));
    assert_int_equal(sy_hist_max(&sum[SY_SLOT_GREEN].hist), 900000);
    assert_int_equal(sy_hist_sum_us(&sum[SY_SLOT_BLUE].hist), 2 * 90 * 10000);

    /* malformed: refused whole, the sum unchanged */
    static const char *const bad[] = {
        "{nope",
        "{\"from\": 1700000060000, \"at\": 1}",
        "{\"from\": 1700000060000, \"at\": 1, \"blue\": {\"n\": 1, \"e\": 2, \"s\": 0, "
        "\"m\": 0, \"b\": []}, \"green\": {\"n\": 0, \"e\": 0, \"s\": 0, \"m\": 0, \"b\": []}}",
        "{\"from\": 1700000060000, \"at\": 1, \"blue\": {\"n\": 1, \"e\": 0, \"s\": 0, "
        "\"m\": 0, \"b\": [[0, 1]]}, \"green\": {\"n\": 1, \"e\": 0, \"s\": 0, \"m\": 0, "
        "\"b\": [[99999, 1]]}}",
        "{\"from\": 1700000060000, \"at\": 1, \"blue\": {\"n\": 1, \"e\": 0, \"s\": 0, "
        "\"m\": 0, \"b\": [[0, 1, 2]]}, \"green\": {\"n\": 0, \"e\": 0, \"s\": 0, \"m\": 0, "
        "\"b\": []}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(sy_fleet_figures_add(bad[i], strlen(bad[i]), 1700000060000, sum, err,
                                              sizeof(err)), -1);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(sum[SY_SLOT_BLUE].requests, 180);
    assert_int_equal(sy_hist_count(&sum[SY_SLOT_BLUE].hist), 180);
    free(text);
    free(w);
    free(sum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_core_tells_a_change, setup, teardown),
        cmocka_unit_test(test_garbage_is_refused),
        cmocka_unit_test(test_versions_beyond_a_double_are_garbage),
        cmocka_unit_test_setup_teardown(test_a_documents_core_is_its_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_step_past_the_services_is_no_state_of_it, setup,
                                        teardown),
        cmocka_unit_test(test_figures_add_up_for_their_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
