/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_metrics.c: what the metrics registry costs. A worker's cost per
 * finished request (sy_metrics_record_request on a series it has seen);
 * then 10,000 series recorded by two worker threads and what the main
 * thread pays for them: a whole GET /metrics text (sy_admin_metrics_write)
 * when every series changed since the last scrape, when none did, a window
 * snapshot round (sy_metrics_tick), and a scrape while both workers keep
 * recording (their rate during scrapes beside their rate alone).
 *
 * usage: bench_metrics [mix|hist]
 *   mix (default): 1,000 service slots and 1,000 instances (histograms,
 *     16 lines each) and 2,000 routes x 4 statuses (8,000 counters)
 *   hist: 10,000 histogram series (5,000 service slots, 5,000 instances)
 * Build with optimisation. Prints one line per figure.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "admin/metrics.h"
#include "core/metrics.h"
#include "bench_util.h"

#define ROUNDS 11

static const int statuses[] = {200, 404, 500, 503};

static struct {
    uint32_t nslots, nups, nroutes;
    uint32_t *slot_ids, *up_ids, *route_ids, *route_slot;
    pthread_barrier_t round_start, round_done;
    atomic_int stop;            /* 1: leave; set before a round_start */
    atomic_int free_run;        /* record until it drops to 0 */
    atomic_ullong free_records;
} b;

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p)
        abort();
    return p;
}

static void intern_all(bool hist_only)
{
    char a[64], c[64];

    b.nslots = hist_only ? 5000 : 1000;
    b.nups = hist_only ? 5000 : 1000;
    b.nroutes = hist_only ? 0 : 2000;
    b.slot_ids = xcalloc(b.nslots, sizeof(uint32_t));
    b.up_ids = xcalloc(b.nups, sizeof(uint32_t));
    b.route_ids = xcalloc(b.nroutes + 1, sizeof(uint32_t));
    b.route_slot = xcalloc(b.nroutes + 1, sizeof(uint32_t));
    for (uint32_t i = 0; i < b.nslots; i++) {
        snprintf(a, sizeof(a), "service-%u", i / 2);
        b.slot_ids[i] = sy_metrics_service_slot(a, i % 2 ? "green" : "blue");
    }
    for (uint32_t i = 0; i < b.nups; i++) {
        snprintf(a, sizeof(a), "pool-%u", i / 10);
        snprintf(c, sizeof(c), "10.%u.%u.%u:8080", i / 65536, i / 256 % 256, i % 256);
        b.up_ids[i] = sy_metrics_upstream(a, c);
    }
    for (uint32_t i = 0; i < b.nroutes; i++) {
        snprintf(a, sizeof(a), "service-%u", i % (b.nslots / 2));
        snprintf(c, sizeof(c), "*.example.com/api/v%u", i);
        b.route_ids[i] = sy_metrics_route(a, "blue", c);
        b.route_slot[i] = b.slot_ids[2 * (i % (b.nslots / 2))];
    }
}

/* One request into every series: each service slot and route, each instance. */
static uint64_t record_round(struct sy_worker_metrics *wm, uint64_t seed)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < b.nslots; i++, n++)
        sy_metrics_record_request(wm, b.slot_ids[i], SY_METRICS_NONE, 200,
                                  1000 + (seed * 7919 + i) % 400000, false);
    for (uint32_t i = 0; i < b.nroutes; i++, n++)
        sy_metrics_record_request(wm, SY_METRICS_NONE, b.route_ids[i],
                                  statuses[(seed + i) % 4], 0, false);
    for (uint32_t i = 0; i < b.nups; i++, n++)
        sy_metrics_record_upstream(wm, b.up_ids[i], 500 + (seed * 104729 + i) % 300000, false);
    return n;
}

static void *worker_main(void *arg)
{
    struct sy_worker_metrics *wm = sy_metrics_worker_new();
    uint64_t seed = (uint64_t)(uintptr_t)arg;

    if (!wm)
        abort();
    for (;;) {
        pthread_barrier_wait(&b.round_start);
        if (atomic_load(&b.stop))
            break;
        if (atomic_load(&b.free_run)) {
            uint64_t n = 0;
            while (atomic_load_explicit(&b.free_run, memory_order_relaxed))
                n += record_round(wm, seed++);
            atomic_fetch_add(&b.free_records, n);
        } else {
            for (int k = 0; k < 4; k++)     /* every route sees its 4 statuses */
                record_round(wm, seed++);
        }
        pthread_barrier_wait(&b.round_done);
    }
    sy_metrics_worker_free(wm);
    return NULL;
}

static double scrape_ms(size_t *bytes, size_t *lines)
{
    static const struct sy_conf conf;   /* no pools, services or listeners */
    struct evbuffer *out = evbuffer_new();
    double start = now_ns();

    if (!out || sy_admin_metrics_write(out, &conf, 0) < 0)
        abort();
    double ms = (now_ns() - start) / 1e6;
    if (bytes) {
        size_t len = evbuffer_get_length(out);
        const char *text = (const char *)evbuffer_pullup(out, -1);
        *bytes = len;
        *lines = 0;
        for (size_t i = 0; i < len; i++)
            *lines += text[i] == '\n';
    }
    evbuffer_free(out);
    return ms;
}

static double tick_ms(void)
{
    double start = now_ns();

    sy_metrics_tick();
    return (now_ns() - start) / 1e6;
}

static void report(const char *what, double *ms, int n)
{
    qsort(ms, (size_t)n, sizeof(*ms), cmp_double);
    printf("%-52s median %7.2f ms, max %7.2f ms (%d runs)\n", what, ms[n / 2], ms[n - 1], n);
}

/* Both workers record one round into every series, then stop. */
static void workers_round(void)
{
    pthread_barrier_wait(&b.round_start);
    pthread_barrier_wait(&b.round_done);
}

static void bench_record_cost(void)
{
    struct sy_worker_metrics *wm = sy_metrics_worker_new();
    const unsigned long n = 20000000;
    uint32_t hot = b.nslots < 64 ? b.nslots : 64;

    if (!wm)
        abort();
    for (uint32_t i = 0; i < hot; i++)         /* first sight: the allocations */
        sy_metrics_record_request(wm, b.slot_ids[i], b.route_ids[i % (b.nroutes + 1)], 200,
                                  1, false);
    double start = now_ns();
    for (unsigned long i = 0; i < n; i++)
        sy_metrics_record_request(wm, b.slot_ids[i % hot],
                                  b.nroutes ? b.route_ids[i % hot] : SY_METRICS_NONE,
                                  i % 97 ? 200 : 503, 1000 + i % 250000, i % 97 == 0);
    printf("%-52s %7.2f ns/request\n", "sy_metrics_record_request, 64 hot series:",
           (now_ns() - start) / (double)n);
    sy_metrics_worker_free(wm);
}

int main(int argc, char **argv)
{
    bool hist_only = argc > 1 && strcmp(argv[1], "hist") == 0;
    pthread_t t[2];
    double ms[ROUNDS];
    size_t bytes = 0, lines = 0;

    intern_all(hist_only);
    printf("series: %u service slots, %u instances (histograms), %u routes x 4 statuses "
           "(counters): %u in all\n", b.nslots, b.nups, b.nroutes,
           b.nslots + b.nups + 4 * b.nroutes);
    bench_record_cost();

    pthread_barrier_init(&b.round_start, NULL, 3);
    pthread_barrier_init(&b.round_done, NULL, 3);
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, worker_main, (void *)(uintptr_t)(i + 1)) != 0)
            abort();
    workers_round();            /* first sight on both workers: their allocations */
    scrape_ms(&bytes, &lines);
    printf("exposition: %zu lines, %zu bytes\n", lines, bytes);

    for (int r = 0; r < ROUNDS; r++) {
        workers_round();
        ms[r] = scrape_ms(NULL, NULL);
    }
    report("scrape, every series changed since the last:", ms, ROUNDS);
    for (int r = 0; r < ROUNDS; r++)
        ms[r] = scrape_ms(NULL, NULL);
    report("scrape, nothing changed:", ms, ROUNDS);
    for (int r = 0; r < ROUNDS; r++) {
        workers_round();
        ms[r] = tick_ms();
    }
    report("window snapshot round (tick), every series changed:", ms, ROUNDS);
    for (int r = 0; r < ROUNDS; r++)
        ms[r] = tick_ms();
    report("window snapshot round (tick), nothing changed:", ms, ROUNDS);

    /* workers alone, then while the main thread scrapes without pause */
    double rate[2];
    for (int phase = 0; phase < 2; phase++) {
        atomic_store(&b.free_records, 0);
        atomic_store(&b.free_run, 1);
        pthread_barrier_wait(&b.round_start);
        double start = now_ns();
        int n = 0;
        while (now_ns() - start < 2e9) {
            if (phase == 1 && n < ROUNDS)
                ms[n++] = scrape_ms(NULL, NULL);
            else if (phase == 1)
                scrape_ms(NULL, NULL);
            else
                sched_yield();
        }
        atomic_store(&b.free_run, 0);
        pthread_barrier_wait(&b.round_done);
        rate[phase] = (double)atomic_load(&b.free_records) / ((now_ns() - start) / 1e9);
        if (phase == 1)
            report("scrape while both workers record (2 cores, 3 threads):", ms, n);
    }
    printf("%-52s %.1f M/s alone, %.1f M/s while scraped (%.0f %%)\n",
           "workers' requests recorded:", rate[0] / 1e6, rate[1] / 1e6, 100 * rate[1] / rate[0]);

    atomic_store(&b.stop, 1);
    pthread_barrier_wait(&b.round_start);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return 0;
}
