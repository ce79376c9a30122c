/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_metrics.c: the metrics registry (core/metrics.c) and the /metrics
 * text (admin/metrics.c). Interning (ids stable across "reloads"),
 * per-worker recording and the main thread's merge (also while two writer
 * threads record), status counters past one block, the windows with an
 * injected clock (every span against the samples of the interval it says
 * it covers, tiers, idle rings, quantiles within 5 % of an exact sort), and
 * the text: escaping, bucket edges, the families read from a snapshot.
 * The registry is process-wide: each test uses names of its own.
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
#include <event2/buffer.h>

#include "admin/metrics.h"
#include "core/live.h"
#include "core/metrics.h"
#include "test_util.h"

#define START_MS    1000000
static int64_t fake_now = START_MS;

static int64_t
fake_clock(void)
{
    return fake_now;
}

static struct sy_worker_metrics *
worker_new(void)
{
    struct sy_worker_metrics *wm = sy_metrics_worker_new();

    assert_non_null(wm);
    return wm;
}

static struct sy_metrics_window *
window_new(void)
{
    struct sy_metrics_window *w = malloc(sizeof(*w));

    assert_non_null(w);
    return w;
}

/* --- interning ------------------------------------------------------------ */

/* The young process first (before any test moves the clock): a window
 * cannot reach before the registry started. */
static void
test_window_young_process(void **state)
{
    (void)state;
    struct sy_metrics_window *w = window_new();
    uint32_t id = sy_metrics_service_slot("young", "blue");

    fake_now += 2000;
    assert_int_equal(sy_metrics_service_window(id, 60000, w), 2000);
    assert_int_equal(w->requests, 0);
    assert_int_equal(sy_hist_count(&w->hist), 0);
    free(w);
}

static void
test_interning_stable(void **state)
{
    (void)state;
    const char *const *l = sy_metrics_labels(SY_METRICS_ROUTE, SY_METRICS_UNROUTED);

    assert_non_null(l);
    assert_string_equal(l[0], "");
    assert_string_equal(l[1], "");
    assert_string_equal(l[2], "");

    uint32_t ss = sy_metrics_count(SY_METRICS_SERVICE_SLOT);
    uint32_t a = sy_metrics_service_slot("intern-a", "blue");
    uint32_t b = sy_metrics_service_slot("intern-a", "green");
    uint32_t c = sy_metrics_service_slot("intern-b", "blue");
    assert_int_equal(a, ss);                    /* dense, in interning order */
    assert_int_equal(b, ss + 1);
    assert_int_equal(c, ss + 2);
    uint32_t r1 = sy_metrics_route("intern-a", "blue", "*/api");
    uint32_t r2 = sy_metrics_route("", "", "*/api");
    uint32_t u1 = sy_metrics_upstream("intern-pool", "10.0.0.1:80");
    uint32_t u2 = sy_metrics_upstream("intern-pool", "10.0.0.2:80");
    assert_int_not_equal(r1, r2);
    assert_int_not_equal(u1, u2);
    /* labels that concatenate alike stay apart */
    assert_int_not_equal(sy_metrics_service_slot("intern-ab", "c"),
                         sy_metrics_service_slot("intern-a", "bc"));

    /* a "reload": the same names in another order, plus a new one */
    assert_int_equal(sy_metrics_upstream("intern-pool", "10.0.0.3:80"), u2 + 1);
    assert_int_equal(sy_metrics_upstream("intern-pool", "10.0.0.2:80"), u2);
    assert_int_equal(sy_metrics_upstream("intern-pool", "10.0.0.1:80"), u1);
    assert_int_equal(sy_metrics_route("", "", "*/api"), r2);
    assert_int_equal(sy_metrics_route("intern-a", "blue", "*/api"), r1);
    assert_int_equal(sy_metrics_service_slot("intern-b", "blue"), c);
    assert_int_equal(sy_metrics_service_slot("intern-a", "green"), b);
    assert_int_equal(sy_metrics_service_slot("intern-a", "blue"), a);

    l = sy_metrics_labels(SY_METRICS_ROUTE, r1);
    assert_string_equal(l[0], "intern-a");
    assert_string_equal(l[1], "blue");
    assert_string_equal(l[2], "*/api");
    assert_null(l[3]);
    l = sy_metrics_labels(SY_METRICS_UPSTREAM, u2);
    assert_string_equal(l[0], "intern-pool");
    assert_string_equal(l[1], "10.0.0.2:80");
    assert_null(sy_metrics_labels(SY_METRICS_UPSTREAM, sy_metrics_count(SY_METRICS_UPSTREAM)));
}

/* Many series: the table grows and every id still maps back. */
static void
test_interning_many(void **state)
{
    (void)state;
    char name[32];
    uint32_t first = 0;

    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "many-%d", i);
        uint32_t id = sy_metrics_upstream("many", name);
        if (i == 0)
            first = id;
        assert_int_equal(id, first + (uint32_t)i);
    }
    for (int i = 4999; i >= 0; i--) {
        snprintf(name, sizeof(name), "many-%d", i);
        assert_int_equal(sy_metrics_upstream("many", name), first + (uint32_t)i);
    }
}

/* --- recording and merging ------------------------------------------------ */

static uint64_t
status_count(uint32_t route, int status)
{
    static struct sy_metrics_status st[SY_METRICS_MAX_STATUS + 1];
    size_t n = sy_metrics_statuses(route, st);

    for (size_t i = 0; i < n; i++)
        if (st[i].status == status)
            return st[i].count;
    return 0;
}

static void
test_record_and_merge(void **state)
{
    (void)state;
    struct sy_worker_metrics *w1 = worker_new(), *w2 = worker_new();
    uint32_t ss = sy_metrics_service_slot("merge", "blue");
    uint32_t route = sy_metrics_route("merge", "blue", "*/");
    uint32_t up = sy_metrics_upstream("merge-pool", "10.1.0.1:80");
    struct sy_metrics_buckets b;

    /* both sides of 5 ms and of 100 ms, 0 and beyond 10 s, on two workers */
    sy_metrics_record_request(w1, ss, route, 200, 5000, false);
    sy_metrics_record_request(w2, ss, route, 200, 5001, false);
    sy_metrics_record_request(w1, ss, route, 503, 100000, true);
    sy_metrics_record_request(w2, ss, route, 404, 100001, false);
    sy_metrics_record_request(w2, ss, route, 200, 0, false);
    sy_metrics_record_request(w1, ss, route, 200, 20000000, false);
    sy_metrics_record_request(w1, ss, route, 101, 90000000, false);   /* counted, not timed */
    sy_metrics_record_upstream(w2, up, 250, false);
    sy_metrics_record_upstream(w1, up, 2500000, true);

    sy_metrics_histogram(SY_METRICS_SERVICE_SLOT, ss, &b);
    assert_int_equal(b.le[0], 2);               /* 0.005: 0 and 5000 */
    assert_int_equal(b.le[1], 3);               /* 0.01 */
    assert_int_equal(b.le[3], 3);               /* 0.05 */
    assert_int_equal(b.le[4], 4);               /* 0.1: 100000 included */
    assert_int_equal(b.le[5], 5);               /* 0.2 */
    assert_int_equal(b.le[12], 5);              /* 10 */
    assert_int_equal(b.le[13], 6);              /* +Inf */
    assert_int_equal(b.sum_us, 5000 + 5001 + 100000 + 100001 + 0 + 20000000);
    assert_int_equal(status_count(route, 200), 4);
    assert_int_equal(status_count(route, 503), 1);
    assert_int_equal(status_count(route, 404), 1);
    assert_int_equal(status_count(route, 101), 1);
    static struct sy_metrics_status st[SY_METRICS_MAX_STATUS + 1];
    assert_int_equal(sy_metrics_statuses(route, st), 4);
    assert_int_equal(st[0].status, 101);        /* ascending */
    assert_int_equal(st[3].status, 503);

    sy_metrics_histogram(SY_METRICS_UPSTREAM, up, &b);
    assert_int_equal(b.le[0], 1);
    assert_int_equal(b.le[9], 1);               /* 2 s */
    assert_int_equal(b.le[10], 2);              /* 2.5 s: on the edge */
    assert_int_equal(b.sum_us, 2500250);

    /* nothing recorded for NONE, an unknown id, or no storage */
    sy_metrics_record_request(w1, SY_METRICS_NONE, SY_METRICS_NONE, 200, 1, false);
    sy_metrics_record_request(NULL, ss, route, 200, 1, false);
    sy_metrics_record_upstream(w1, SY_METRICS_NONE, 1, false);
    sy_metrics_histogram(SY_METRICS_SERVICE_SLOT, ss, &b);
    assert_int_equal(b.le[13], 6);
    sy_metrics_histogram(SY_METRICS_SERVICE_SLOT, SY_METRICS_NONE, &b);
    assert_int_equal(b.le[13], 0);
    assert_int_equal(sy_metrics_statuses(SY_METRICS_NONE, st), 0);
    sy_metrics_worker_free(w1);
    sy_metrics_worker_free(w2);
}

/* More statuses than one block holds, odd codes, and 0 for out of range. */
static void
test_statuses_chain(void **state)
{
    (void)state;
    struct sy_worker_metrics *w1 = worker_new(), *w2 = worker_new();
    uint32_t route = sy_metrics_route("chain", "green", "example.com/");
    static struct sy_metrics_status st[SY_METRICS_MAX_STATUS + 1];

    for (int code = 599; code >= 100; code -= 7)
        for (int k = 0; k < code % 5 + 1; k++)
            sy_metrics_record_request(code % 2 ? w1 : w2, SY_METRICS_NONE, route, code, 1, false);
    sy_metrics_record_request(w1, SY_METRICS_NONE, route, 1000, 1, false);
    sy_metrics_record_request(w2, SY_METRICS_NONE, route, -1, 1, false);
    sy_metrics_record_request(w2, SY_METRICS_NONE, route, 999, 1, false);
    size_t n = sy_metrics_statuses(route, st);
    assert_int_equal(n, 72 + 2);                /* 599, 592, ... 102; 0; 999 */
    assert_int_equal(st[0].status, 0);
    assert_int_equal(st[0].count, 2);
    assert_int_equal(st[n - 1].status, 999);
    for (size_t i = 1; i + 1 < n; i++) {
        assert_true(st[i].status > st[i - 1].status);
        assert_int_equal(st[i].count, (uint64_t)(st[i].status % 5 + 1));
    }
    sy_metrics_worker_free(w1);
    sy_metrics_worker_free(w2);
}

/* --- two writer threads and a reader -------------------------------------- */

#define RACE_SERIES     300         /* past one page of 256 ids */
#define RACE_ROUNDS     2000

struct racer {
    uint32_t first_ss, route;
    int parity;
    pthread_barrier_t *go;
    struct sy_worker_metrics *wm;
};

static void *
racer_run(void *arg)
{
    struct racer *r = arg;

    r->wm = sy_metrics_worker_new();   /* on its own thread, as a worker does */
    pthread_barrier_wait(r->go);
    for (int round = 0; round < RACE_ROUNDS; round++)
        for (uint32_t i = 0; i < RACE_SERIES; i++)
            sy_metrics_record_request(r->wm, r->first_ss + i, r->route,
                                      200 + (int)((round + r->parity) % 3), 1000 + i, false);
    return NULL;
}

/* Reads while two workers record into fresh series never go back nor past
 * what was recorded, and end exact. */
static void
test_merge_while_recording(void **state)
{
    (void)state;
    char name[32];
    pthread_barrier_t go;
    pthread_t t[2];
    struct racer r[2];
    struct sy_metrics_buckets b;
    uint64_t last_hist = 0, last_route = 0;

    uint32_t first = 0;
    for (uint32_t i = 0; i < RACE_SERIES; i++) {
        snprintf(name, sizeof(name), "race-%u", i);
        uint32_t id = sy_metrics_service_slot(name, "blue");
        if (i == 0)
            first = id;
        assert_int_equal(id, first + i);
    }
    uint32_t route = sy_metrics_route("race", "blue", "*/");
    pthread_barrier_init(&go, NULL, 3);
    for (int i = 0; i < 2; i++) {
        r[i] = (struct racer){.first_ss = first, .route = route, .parity = i, .go = &go};
        assert_int_equal(pthread_create(&t[i], NULL, racer_run, &r[i]), 0);
    }
    pthread_barrier_wait(&go);
    for (int i = 0; i < 300; i++) {
        uint32_t id = first + (uint32_t)(i * 7) % RACE_SERIES;
        sy_metrics_histogram(SY_METRICS_SERVICE_SLOT, first + RACE_SERIES - 1, &b);
        assert_true(b.le[SY_METRICS_NBOUNDS] >= last_hist);
        assert_true(b.le[SY_METRICS_NBOUNDS] <= 2 * RACE_ROUNDS);
        last_hist = b.le[SY_METRICS_NBOUNDS];
        sy_metrics_histogram(SY_METRICS_SERVICE_SLOT, id, &b);
        assert_true(b.le[0] == b.le[SY_METRICS_NBOUNDS]);   /* all 1..1.3 ms */
        uint64_t total = status_count(route, 200) + status_count(route, 201) +
                         status_count(route, 202);
        assert_true(total >= last_route && total <= 2ull * RACE_ROUNDS * RACE_SERIES);
        last_route = total;
        sy_metrics_tick();
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (uint32_t i = 0; i < RACE_SERIES; i++) {
        sy_metrics_histogram(SY_METRICS_SERVICE_SLOT, first + i, &b);
        assert_int_equal(b.le[SY_METRICS_NBOUNDS], 2 * RACE_ROUNDS);
        assert_int_equal(b.sum_us, 2ull * RACE_ROUNDS * (1000 + i));
    }
    uint64_t per_status = 2ull * RACE_ROUNDS * RACE_SERIES / 3;
    assert_int_equal(status_count(route, 200) + status_count(route, 201) +
                     status_count(route, 202), 2ull * RACE_ROUNDS * RACE_SERIES);
    assert_true(status_count(route, 200) >= per_status - RACE_SERIES);
    pthread_barrier_destroy(&go);
    sy_metrics_worker_free(r[0].wm);
    sy_metrics_worker_free(r[1].wm);
}

/* --- windows -------------------------------------------------------------- */

#define WIN_SECONDS 400

/* What one simulated second recorded, ticked at its end. */
struct second {
    int64_t tick_ms;
    uint64_t requests, errors, sum_us, timed;
};

static void
sum_seconds(const struct second *s, size_t n, int64_t after_ms, struct second *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        if (s[i].tick_ms <= after_ms)
            continue;
        out->requests += s[i].requests;
        out->errors += s[i].errors;
        out->sum_us += s[i].sum_us;
        out->timed += s[i].timed;
    }
}

/* The granularity a span may be rounded up by (metrics.h: the tiers). */
static int64_t
slack_ms(int64_t span_ms)
{
    return span_ms <= 15000 ? 1000 : span_ms <= 60000 ? 5000 : 20000;
}

/* Every span's figures are exactly those of the seconds after now - covered. */
static void
check_spans(uint32_t id, const struct second *secs, size_t n, const char *when)
{
    static const int64_t spans[] = {
        0, 1, 999, 1000, 1500, 5000, 10000, 14999, 15000, 15001, 20000, 30000, 59000,
        60000, 61000, 65000, 100000, 200000, 299000, 300000, 400000, -5,
    };
    struct sy_metrics_window *w = window_new();
    struct second want;

    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
        int64_t span = spans[i] < 0 ? 0 : spans[i] > 300000 ? 300000 : spans[i];
        int64_t covered = sy_metrics_service_window(id, spans[i], w);
        sum_seconds(secs, n, fake_now - covered, &want);
        if (covered < span || covered > span + slack_ms(span) ||
            w->requests != want.requests || w->errors != want.errors ||
            sy_hist_count(&w->hist) != want.timed || sy_hist_sum_us(&w->hist) != want.sum_us)
            fail_msg("%s: span %lld covered %lld: requests %llu/%llu errors %llu/%llu "
                     "timed %llu/%llu sum %llu/%llu", when, (long long)spans[i],
                     (long long)covered, (unsigned long long)w->requests,
                     (unsigned long long)want.requests, (unsigned long long)w->errors,
                     (unsigned long long)want.errors,
                     (unsigned long long)sy_hist_count(&w->hist),
                     (unsigned long long)want.timed, (unsigned long long)sy_hist_sum_us(&w->hist),
                     (unsigned long long)want.sum_us);
    }
    free(w);
}

/*
 * 400 simulated seconds of traffic, ticked each second, then idle: every
 * span right after a tick, between ticks with fresh samples, after the
 * ring is dropped, and when traffic comes back.
 */
static void
test_window_spans(void **state)
{
    (void)state;
    struct sy_worker_metrics *w1 = worker_new(), *w2 = worker_new();
    uint32_t id = sy_metrics_service_slot("window", "blue");
    uint32_t route = sy_metrics_route("window", "blue", "*/");
    struct second *secs = calloc(WIN_SECONDS + 400, sizeof(*secs));
    struct sy_metrics_window *w = window_new();
    size_t n = 0;

    assert_non_null(secs);
    fake_now += 400000;         /* well past the registry's start */
    sy_metrics_tick();
    /* never used: an empty window that covers the span */
    assert_int_equal(sy_metrics_service_window(id, 60000, w), 60000);
    assert_int_equal(w->requests, 0);

    for (int k = 0; k < WIN_SECONDS; k++, n++) {
        struct second *s = &secs[n];
        for (int i = 0; i < k % 5 + 1; i++) {
            int status = i == 0 && k % 3 == 0 ? 502 : k % 11 == 0 ? 101 : 200;
            uint64_t us = 1000 * (uint64_t)(k % 7 + 1) + (uint64_t)i;
            sy_metrics_record_request(i % 2 ? w1 : w2, id, route, status, us, status == 502);
            s->requests++;
            s->errors += status == 502;
            if (status != 101) {
                s->timed++;
                s->sum_us += us;
            }
        }
        fake_now += 1000;
        s->tick_ms = fake_now;
        sy_metrics_tick();
        if (k == 7 || k == 70)
            check_spans(id, secs, n + 1, "young series");
    }
    check_spans(id, secs, n, "right after a tick");

    /* between ticks: fresh samples are in, the start stays on a snapshot */
    fake_now += 500;
    sy_metrics_record_request(w1, id, route, 500, 123456, true);
    secs[n++] = (struct second){.tick_ms = fake_now, .requests = 1, .errors = 1,
                                .sum_us = 123456, .timed = 1};
    check_spans(id, secs, n, "between ticks");

    /* idle past 5 minutes: the ring goes; windows read empty, full span */
    for (int k = 0; k < 330; k++) {
        fake_now += 1000;
        sy_metrics_tick();
    }
    check_spans(id, secs, n, "idle");
    assert_int_equal(sy_metrics_service_window(id, 300000, w), 300000);
    assert_int_equal(w->requests, 0);

    /* traffic again, read before any tick: the idle value is the start */
    fake_now += 300;
    sy_metrics_record_request(w2, id, route, 200, 777, false);
    secs[n++] = (struct second){.tick_ms = fake_now, .requests = 1, .sum_us = 777, .timed = 1};
    assert_int_equal(sy_metrics_service_window(id, 10000, w), 10000);
    assert_int_equal(w->requests, 1);
    for (int k = 0; k < 30; k++) {
        fake_now += 1000;
        sy_metrics_tick();
    }
    check_spans(id, secs, n, "awake again");

    free(w);
    free(secs);
    sy_metrics_worker_free(w1);
    sy_metrics_worker_free(w2);
}

/* Window quantiles within 5 % of an exact sort of the same samples (two
 * workers), SPEC's bounds exact, upstream windows with their errors. */
static void
test_window_quantiles(void **state)
{
    (void)state;
    enum { N = 100001 };
    static const double qs[] = {0, 0.001, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1};
    struct sy_worker_metrics *w1 = worker_new(), *w2 = worker_new();
    uint32_t up = sy_metrics_upstream("quantiles", "10.2.0.1:80");
    uint64_t *v = malloc(N * sizeof(*v)), seed = 5, sum = 0, errors = 0;
    struct sy_metrics_window *w = window_new();

    assert_non_null(v);
    sy_metrics_tick();
    for (size_t i = 0; i < N; i++) {
        v[i] = (uint64_t)exp(rnd01(&seed) * log(2.0 * (double)SY_HIST_MAX_US));
        sum += v[i];
        errors += i % 20 == 0;
        sy_metrics_record_upstream(i % 2 ? w1 : w2, up, v[i], i % 20 == 0);
    }
    fake_now += 1000;
    sy_metrics_tick();
    assert_int_equal(sy_metrics_upstream_window(up, 10000, w), 10000);
    assert_int_equal(w->requests, N);
    assert_int_equal(w->errors, errors);
    assert_int_equal(sy_hist_count(&w->hist), N);
    assert_int_equal(sy_hist_sum_us(&w->hist), sum);
    qsort(v, N, sizeof(*v), cmp_u64);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        double r = ceil(qs[i] * N);
        size_t rank = r < 1 ? 1 : (size_t)r;
        uint64_t want = v[rank - 1] > SY_HIST_MAX_US ? SY_HIST_MAX_US : v[rank - 1];
        uint64_t got = sy_hist_quantile(&w->hist, qs[i]);
        uint64_t diff = got > want ? got - want : want - got;
        if (diff * 100 > want * 5)
            fail_msg("q %g: got %llu, exact %llu", qs[i], (unsigned long long)got,
                     (unsigned long long)want);
    }
    for (size_t i = 0; i < SY_METRICS_NBOUNDS; i++) {
        size_t le = 0;
        while (le < N && v[le] <= sy_metrics_bounds_us[i])
            le++;
        assert_int_equal(sy_hist_count_le(&w->hist, sy_metrics_bounds_us[i]), le);
    }
    free(v);
    free(w);
    sy_metrics_worker_free(w1);
    sy_metrics_worker_free(w2);
}

/* Each value alone reads back within 5 %: both edges of every histogram
 * bucket, so of every window bucket. The exported "le" counts agree. */
static void
test_window_precision(void **state)
{
    (void)state;
    struct sy_worker_metrics *wm = worker_new();
    uint32_t up = sy_metrics_upstream("precision", "10.3.0.1:80");
    struct sy_metrics_window *w = window_new();

    sy_metrics_tick();
    for (size_t b = 0; b + 1 < SY_HIST_BUCKETS; b++) {
        const uint64_t edges[] = {b ? sy_hist_bucket_max(b - 1) + 1 : 0, sy_hist_bucket_max(b)};
        for (int k = 0; k < 2; k++) {
            sy_metrics_record_upstream(wm, up, edges[k], false);
            sy_metrics_upstream_window(up, 0, w);
            assert_int_equal(sy_hist_count(&w->hist), 1);
            uint64_t got = sy_hist_quantile(&w->hist, 0.5), want = edges[k];
            uint64_t diff = got > want ? got - want : want - got;
            if (diff * 100 > want * 5)
                fail_msg("bucket %zu: %llu reads %llu", b, (unsigned long long)want,
                         (unsigned long long)got);
            fake_now += 1000;
            sy_metrics_tick();
        }
    }
    free(w);
    sy_metrics_worker_free(wm);
}

/* --- the text ------------------------------------------------------------- */

static char *
scrape(const struct sy_conf *conf)
{
    struct evbuffer *buf = evbuffer_new();

    assert_non_null(buf);
    assert_int_equal(sy_admin_metrics_write(buf, conf, 0), 0);
    size_t len = evbuffer_get_length(buf);
    char *text = malloc(len + 1);
    assert_non_null(text);
    evbuffer_remove(buf, text, len);
    text[len] = '\0';
    evbuffer_free(buf);
    return text;
}

static void
assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    fail_msg("no line %s", line);
}

static void
test_text(void **state)
{
    (void)state;
    static const char odd[] = "q\"b\\s\nn";
    struct sy_worker_metrics *wm = worker_new();
    struct sy_service svc = {.name = (char *)odd, .active = SY_SLOT_GREEN, .canary = {.weight = 7}};
    struct sy_conf conf = {.services = &svc, .nservices = 1};
    uint32_t ss = sy_metrics_service_slot(odd, "green");

    assert_non_null(svc.live = sy_live_service_get(odd, SY_SLOT_GREEN, 7));
    uint32_t route = sy_metrics_route(odd, "green", "*/x\"y");
    uint32_t up = sy_metrics_upstream("text-pool", "[::1]:8080");

    sy_metrics_record_request(wm, ss, route, 200, 1234, false);
    sy_metrics_record_request(wm, ss, route, 200, 100000, false);
    sy_metrics_record_request(wm, ss, route, 504, 10000000, true);
    sy_metrics_record_upstream(wm, up, 300000, false);
    char *text = scrape(&conf);

    assert_line(text, "# TYPE switchyard_http_requests_total counter");
    assert_line(text, "switchyard_http_requests_total{service=\"q\\\"b\\\\s\\nn\",slot=\"green\","
                "route=\"*/x\\\"y\",status=\"200\"} 2");
    assert_line(text, "switchyard_http_requests_total{service=\"q\\\"b\\\\s\\nn\",slot=\"green\","
                "route=\"*/x\\\"y\",status=\"504\"} 1");
    assert_line(text, "# TYPE switchyard_http_request_duration_seconds histogram");
    static const char *const les[] = {
        "0.005\"} 1", "0.01\"} 1", "0.025\"} 1", "0.05\"} 1", "0.1\"} 2", "0.2\"} 2",
        "0.3\"} 2", "0.5\"} 2", "1\"} 2", "2\"} 2", "2.5\"} 2", "5\"} 2", "10\"} 3",
        "+Inf\"} 3",
    };
    for (size_t i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
        char line[256];
        snprintf(line, sizeof(line), "switchyard_http_request_duration_seconds_bucket{service="
                 "\"q\\\"b\\\\s\\nn\",slot=\"green\",le=\"%s", les[i]);
        assert_line(text, line);
    }
    assert_line(text, "switchyard_http_request_duration_seconds_sum{service=\"q\\\"b\\\\s\\nn\","
                "slot=\"green\"} 10.101234");
    assert_line(text, "switchyard_http_request_duration_seconds_count{service="
                "\"q\\\"b\\\\s\\nn\",slot=\"green\"} 3");
    assert_line(text, "switchyard_upstream_response_seconds_bucket{pool=\"text-pool\","
                "instance=\"[::1]:8080\",le=\"0.2\"} 0");
    assert_line(text, "switchyard_upstream_response_seconds_bucket{pool=\"text-pool\","
                "instance=\"[::1]:8080\",le=\"0.3\"} 1");
    assert_line(text, "switchyard_upstream_response_seconds_sum{pool=\"text-pool\","
                "instance=\"[::1]:8080\"} 0.3");
    assert_line(text, "switchyard_service_active_slot{service=\"q\\\"b\\\\s\\nn\",slot=\"blue\"} 0");
    assert_line(text, "switchyard_service_active_slot{service=\"q\\\"b\\\\s\\nn\",slot=\"green\"} 1");
    assert_line(text, "switchyard_service_canary_weight{service=\"q\\\"b\\\\s\\nn\"} 7");
    assert_line(text, "switchyard_log_dropped_total{log=\"access\"} 0");
    assert_line(text, "# TYPE switchyard_tls_certificate_expiry_timestamp_seconds gauge");
    assert_line(text, "switchyard_connections_active 0");
    assert_line(text, "switchyard_config_reloads_total{result=\"failure\"} 0");
    /* no raw newline inside a sample: every line is a comment or name{...} value */
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        assert_true(line[0] == '#' || strncmp(line, "switchyard_", 11) == 0);
    free(text);
    sy_metrics_worker_free(wm);
    sy_live_service_put(svc.live);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_young_process),
        cmocka_unit_test(test_interning_stable),
        cmocka_unit_test(test_interning_many),
        cmocka_unit_test(test_record_and_merge),
        cmocka_unit_test(test_statuses_chain),
        cmocka_unit_test(test_merge_while_recording),
        cmocka_unit_test(test_window_spans),
        cmocka_unit_test(test_window_quantiles),
        cmocka_unit_test(test_window_precision),
        cmocka_unit_test(test_text),
    };

    sy_metrics_set_clock(fake_clock);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
