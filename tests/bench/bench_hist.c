/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_hist.c: nanoseconds per sy_hist_record (random values spread over
 * the whole 1 us..10 min range, so every run of the layout is hit, and one
 * constant value), the worker's cost per request; then what the main thread
 * pays per histogram: a merge, a quantile (bench_metrics.c measures the
 * registry and its windows). Build with optimisation; optional argument:
 * millions of samples (default 20). Prints one line per figure.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/hist.h"
#include "bench_util.h"

#define NVALUES 65536           /* 512 KiB of values: in L2, like a worker's hot data */

static volatile uint64_t sink;

static void
report(const char *what, double ns, const char *per)
{
    printf("%-42s %8.2f ns/%s\n", what, ns, per);
}

static void
fill_log_uniform(uint64_t *values)
{
    uint64_t x = 88172645463325252ull;      /* xorshift64 */

    for (size_t i = 0; i < NVALUES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values[i] = (uint64_t)exp((double)(x >> 11) / 9007199254740992.0 * log(6e8));
    }
}

static void
bench_record(struct sy_hist *h, const uint64_t *values, size_t mask, unsigned long n,
             const char *what)
{
    sy_hist_reset(h);
    double start = now_ns();
    for (unsigned long i = 0; i < n; i++)
        sy_hist_record(h, values[i & mask]);
    report(what, (now_ns() - start) / (double)n, "sample");
    sink += sy_hist_count(h);
}

static void
bench_reader(const struct sy_hist *full)
{
    struct sy_hist *dst = calloc(1, sizeof(*dst));
    const int rounds = 20000;
    double start;

    if (dst == NULL)
        abort();
    start = now_ns();
    for (int i = 0; i < rounds; i++)
        sy_hist_merge(dst, full);
    report("sy_hist_merge, all buckets in use:", (now_ns() - start) / rounds, "merge");
    start = now_ns();
    for (int i = 0; i < rounds; i++)
        sink += sy_hist_quantile(full, 0.99);
    report("sy_hist_quantile, p99:", (now_ns() - start) / rounds, "call");
    free(dst);
}

int
main(int argc, char **argv)
{
    unsigned long n = 1000000ul * (argc > 1 ? strtoul(argv[1], NULL, 10) : 20);
    uint64_t *values = malloc(NVALUES * sizeof(*values)), constant = 12345;
    struct sy_hist *h = calloc(1, sizeof(*h));

    if (n == 0)
        n = 1000000ul;
    if (values == NULL || h == NULL)
        abort();
    fill_log_uniform(values);
    printf("sizes: struct sy_hist %zu bytes\n", sizeof(struct sy_hist));
    bench_record(h, &constant, 0, n, "sy_hist_record, constant 12.345 ms:");
    bench_record(h, values, NVALUES - 1, n, "sy_hist_record, random 1 us..10 min:");
    bench_reader(h);
    free(values);
    free(h);
    return 0;
}
