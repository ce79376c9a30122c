/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_ratelimit.c: nanoseconds per local rate-limit decision (sy_rl_check):
 * one hot key allowed (a CAS each time) and denied (a flood: reads only);
 * existing keys spread over a large table (cache misses); new keys in a full
 * table (each one evicts); then two threads on one hot key (the CAS line
 * moves between cores) and on keys of their own. Keys are 16 bytes (an IPv6
 * address's size) unless said. Build with optimisation; optional argument:
 * millions of decisions per run (default 2). Each line: median of RUNS runs
 * (min-max), per decision as one thread sees it.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/keyhash.h"
#include "core/ratelimit.h"
#include "bench_util.h"
#include "../unit/test_util.h"

#define RUNS        7
#define SEC         1000000ull
#define BIG_KEYS    (1u << 20)      /* 8 MiB of slots: beyond L2, like a busy gateway */
#define SMALL_KEYS  (1u << 16)      /* 512 KiB: in L2 */

static unsigned long n_calls;
static volatile uint64_t sink;

struct key16 {
    unsigned char b[16];
};

static void
make_key(struct key16 *k, uint64_t id)
{
    memset(k->b, 0x20, 8);                  /* 2001:db8::/32-like prefix */
    memcpy(k->b + 8, &id, 8);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void
report(const char *what, double *ns)
{
    qsort(ns, RUNS, sizeof(*ns), cmp_double);
    printf("%-58s %7.1f ns  (%.1f-%.1f)\n", what, ns[RUNS / 2], ns[0], ns[RUNS - 1]);
}

static struct sy_rl_rule
rule(int64_t rate, int64_t per_ms, int64_t burst)
{
    struct sy_rl_rule r;
    char err[256];

    if (sy_rl_rule_init(&r, rate, per_ms, burst, err, sizeof(err)) != 0) {
        fprintf(stderr, "rule: %s\n", err);
        exit(1);
    }
    return r;
}

static struct sy_rl_table *
table(size_t keys)
{
    struct sy_rl_table *t = sy_rl_table_new(keys);

    if (t == NULL)
        abort();
    return t;
}

/* --- one thread ----------------------------------------------------------------- */

/* One key over and over: allowed every time (T 1 us, now advancing 1 us a
 * call) or denied every time (budget spent, now still). */
static void
bench_hot(const void *key, size_t keylen, bool allowed, const char *what)
{
    struct sy_rl_table *t = table(BIG_KEYS);
    struct sy_rl_rule r = allowed ? rule(1000000, 1000, 100) : rule(10, 1000, 5);
    struct sy_rl_result res;
    double ns[RUNS];
    uint64_t now = 10 * SEC;

    for (int run = 0; run < RUNS; run++) {
        uint64_t yes = 0;
        double start = now_ns();
        for (unsigned long i = 0; i < n_calls; i++) {
            sy_rl_check(t, &r, 1, key, keylen, allowed ? now++ : now, &res);
            yes += res.allowed;
        }
        ns[run] = (now_ns() - start) / (double)n_calls;
        if (yes != (allowed ? n_calls : run == 0 ? 6 : 0))
            abort();
        sink += yes;
    }
    report(what, ns);
    sy_rl_table_free(t);
}

/*
 * Existing keys, half as many live as the table holds, taken in a random
 * order: in a table beyond the caches most decisions miss on their bucket
 * (the key itself is computed, as a request carries it in cache). For
 * scale, the same random order of plain loads from an array of the table's
 * size: the miss alone.
 */
static void
bench_spread(size_t table_keys, const char *what, const char *scale)
{
    const size_t nkeys = table_keys / 2;
    struct sy_rl_table *t = table(table_keys);
    struct sy_rl_rule r = rule(1000, 1000, 1000000);
    uint64_t *array = malloc(table_keys * sizeof(*array));
    struct sy_rl_result res;
    struct key16 k;
    uint64_t now = 10 * SEC;
    double ns[RUNS];

    if (array == NULL)
        abort();
    memset(array, 1, table_keys * sizeof(*array));  /* real pages, not the zero page */
    for (size_t i = 0; i < nkeys; i++) {
        make_key(&k, i);
        sy_rl_check(t, &r, 1, k.b, 16, now, &res);
    }
    for (int run = 0; run < RUNS; run++) {
        uint64_t x = (uint64_t)run, yes = 0;
        double start = now_ns();
        for (unsigned long i = 0; i < n_calls; i++) {
            make_key(&k, rnd(&x) & (nkeys - 1));
            sy_rl_check(t, &r, 1, k.b, 16, now, &res);
            yes += res.allowed;
        }
        ns[run] = (now_ns() - start) / (double)n_calls;
        sink += yes;
    }
    report(what, ns);
    for (int run = 0; run < RUNS; run++) {
        uint64_t x = (uint64_t)run, sum = 0;
        double start = now_ns();
        for (unsigned long i = 0; i < n_calls; i++)
            sum += array[(rnd(&x) + (sum & 1)) & (table_keys - 1)];  /* each waits */
        ns[run] = (now_ns() - start) / (double)n_calls;
        sink += sum;
    }
    report(scale, ns);
    free(array);
    sy_rl_table_free(t);
}

/* New keys into a table already full of live keys: every decision inserts
 * and evicts the least owing entry of its bucket. */
static void
bench_insert(size_t table_keys, const char *what)
{
    struct sy_rl_table *t = table(table_keys);
    struct sy_rl_rule r = rule(1, 60000, 10);           /* entries stay live for minutes */
    struct sy_rl_result res;
    struct key16 k;
    uint64_t id = 0, now = 10 * SEC;
    double ns[RUNS];

    for (size_t i = 0; i < 4 * table_keys; i++) {       /* fill: every slot taken */
        make_key(&k, id++);
        sy_rl_check(t, &r, 1, k.b, 16, now++, &res);
    }
    if (sy_rl_sweep(t, now, r.tolerance_us) != sy_rl_table_slots(t))
        abort();
    for (int run = 0; run < RUNS; run++) {
        uint64_t yes = 0;
        double start = now_ns();
        for (unsigned long i = 0; i < n_calls; i++) {
            make_key(&k, id++);
            sy_rl_check(t, &r, 1, k.b, 16, now++, &res);
            yes += res.allowed;
        }
        ns[run] = (now_ns() - start) / (double)n_calls;
        if (yes != n_calls)
            abort();
    }
    report(what, ns);
    sy_rl_table_free(t);
}

/* --- two threads ------------------------------------------------------------------ */

struct worker {
    pthread_t thread;
    struct sy_rl_table *t;
    const struct sy_rl_rule *r;
    pthread_barrier_t *start;
    struct key16 key;
    double ns;
    uint64_t allowed;
};

static void *
worker_run(void *arg)
{
    struct worker *w = arg;
    struct sy_rl_result res;
    const uint64_t now = 10 * SEC;
    uint64_t yes = 0;
    double start;

    pthread_barrier_wait(w->start);
    start = now_ns();
    for (unsigned long i = 0; i < n_calls; i++) {
        sy_rl_check(w->t, w->r, 1, w->key.b, 16, now, &res);
        yes += res.allowed;
    }
    w->ns = (now_ns() - start) / (double)n_calls;
    w->allowed = yes;
    return NULL;
}

/*
 * Two threads, each n_calls decisions: on one key (shared) or a key each.
 * allowed: a budget no run exhausts, so every decision writes; else the key
 * is spent first and every decision only reads.
 */
static void
bench_two(bool shared, bool allowed, const char *what)
{
    /* T 1 us and room for 2^32 requests at a fixed instant */
    struct sy_rl_rule big = rule(1000000, 1000, 4294967294ll), spent = rule(10, 1000, 0);
    const struct sy_rl_rule *r = allowed ? &big : &spent;
    double ns[RUNS];

    for (int run = 0; run < RUNS; run++) {
        struct sy_rl_table *t = table(BIG_KEYS);
        struct worker w[2];
        pthread_barrier_t start;
        struct sy_rl_result res;

        pthread_barrier_init(&start, NULL, 2);
        for (int i = 0; i < 2; i++) {
            w[i] = (struct worker){ .t = t, .r = r, .start = &start };
            make_key(&w[i].key, shared ? 7 : 7 + (uint64_t)i);
            if (!allowed)
                sy_rl_check(t, r, 1, w[i].key.b, 16, 10 * SEC, &res);
        }
        for (int i = 0; i < 2; i++)
            if (pthread_create(&w[i].thread, NULL, worker_run, &w[i]) != 0)
                abort();
        for (int i = 0; i < 2; i++)
            pthread_join(w[i].thread, NULL);
        if (w[0].allowed + w[1].allowed != (allowed ? 2 * n_calls : 0))
            abort();
        ns[run] = (w[0].ns + w[1].ns) / 2;
        pthread_barrier_destroy(&start);
        sy_rl_table_free(t);
    }
    report(what, ns);
}

/* --- the hash alone ----------------------------------------------------------------- */

static void
bench_hash(size_t len, const char *what)
{
    struct sy_sipkey k;
    unsigned char key[64] = "203.0.113.7";
    double ns[RUNS];

    if (sy_sipkey_random(&k) != 0)
        abort();
    for (int run = 0; run < RUNS; run++) {
        uint64_t h = 0;
        double start = now_ns();
        for (unsigned long i = 0; i < n_calls; i++) {
            key[0] = (unsigned char)h;          /* each hash waits for the last */
            h += sy_siphash13_u32(&k, 1, key, len);
        }
        ns[run] = (now_ns() - start) / (double)n_calls;
        sink += h;
    }
    report(what, ns);
}

int
main(int argc, char **argv)
{
    struct key16 k16;
    static const char ip4[] = "203.0.113.7";

    n_calls = 1000000ul * (argc > 1 ? strtoul(argv[1], NULL, 10) : 2);
    if (n_calls == 0)
        n_calls = 1000000ul;
    make_key(&k16, 42);
    {
        struct sy_rl_table *t = table(BIG_KEYS);
        printf("table for %u keys: %zu bytes; %lu decisions a run, median of %d runs\n",
               BIG_KEYS, sy_rl_table_bytes(t), n_calls, RUNS);
        sy_rl_table_free(t);
    }
    bench_hash(16, "SipHash-1-3 of limit id + 16-byte key (alone)");
    bench_hash(11, "SipHash-1-3 of limit id + 11-byte key (alone)");
    bench_hot(k16.b, 16, true, "hot key, allowed (CAS)");
    bench_hot(ip4, sizeof(ip4) - 1, true, "hot key \"203.0.113.7\" (11 bytes), allowed");
    bench_hot(k16.b, 16, false, "hot key, denied (flood: no write)");
    bench_spread(SMALL_KEYS * 2, "existing key, random of 65,536 live (1 MiB table)",
                 "  for scale: one random load from a 1 MiB array");
    bench_spread(BIG_KEYS, "existing key, random of 524,288 live (8 MiB table)",
                 "  for scale: one random load from an 8 MiB array");
    bench_insert(SMALL_KEYS, "new key, full 65,536-key table (evicts)");
    bench_insert(BIG_KEYS, "new key, full 1,048,576-key table (evicts)");
    bench_two(true, true, "2 threads, one hot key, allowed (contended CAS)");
    bench_two(true, false, "2 threads, one hot key, denied (shared reads)");
    bench_two(false, true, "2 threads, a key each, allowed");
    return 0;
}
