/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_seclog.c: nanoseconds per security-log event under a flood, the
 * cost a worker pays for each request it refuses: a keyed event of one key
 * (counted, not written), of 400 keys in turn (the table's working set),
 * of ever new keys past the cap (the overflow), and sy_log_security's
 * per-event cap for comparison. The logger runs for real, writing to
 * /dev/null. Optional argument: millions of events per run (default 2);
 * each line is the best of REPEATS runs.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "bench_util.h"

/* The best of REPEATS runs: the machine is shared, and noise only ever adds. */
#define REPEATS 5
#define NKEYS   400

static char keys[NKEYS][64];
static size_t keylens[NKEYS];

static const struct sy_log_field fields[] = {
    {.name = "limit", .str = "api"},
    {.name = "route", .str = "/api/v1/orders"},
    {.name = "key", .str = "203.0.113.77"},
};

enum mode { ONE_KEY, WORKING_SET, NEW_KEYS, NOT_KEYED };

static void
event(enum mode mode, unsigned long i)
{
    char key[64];
    size_t n;

    switch (mode) {
    case ONE_KEY:
        sy_log_security_keyed("rate_limited", keys[0], keylens[0], "203.0.113.77", "NL",
                              "over limit", fields, 3);
        break;
    case WORKING_SET:
        sy_log_security_keyed("rate_limited", keys[i % NKEYS], keylens[i % NKEYS],
                              "203.0.113.77", "NL", "over limit", fields, 3);
        break;
    case NEW_KEYS:
        n = (size_t)snprintf(key, sizeof(key), "rate_limited|api|10.%lu.%lu.%lu", i >> 16 & 255,
                             i >> 8 & 255, i & 255);
        sy_log_security_keyed("rate_limited", key, n, "203.0.113.77", "NL", "over limit",
                              fields, 3);
        break;
    case NOT_KEYED:
        sy_log_security("rate_limited", "203.0.113.77", "NL", "over limit", fields, 3);
        break;
    }
}

static void
bench(const char *name, enum mode mode, unsigned long n)
{
    double best = 0;

    for (int r = 0; r < REPEATS; r++) {
        double start = now_ns();
        for (unsigned long i = 0; i < n; i++)
            event(mode, i);
        double ns = (now_ns() - start) / (double)n;
        if (r == 0 || ns < best)
            best = ns;
    }
    printf("%-44s %7.1f ns/event\n", name, best);
}

int
main(int argc, char **argv)
{
    unsigned long n = (argc > 1 ? strtoul(argv[1], NULL, 10) : 2) * 1000000ul;
    struct sy_log_conf conf = {.security = "/dev/null", .level = SY_LOG_INFO};
    char err[256];

    if (sy_log_start(&conf, 1, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_seclog: %s\n", err);
        return 1;
    }
    sy_log_attach(0);
    for (int k = 0; k < NKEYS; k++)
        keylens[k] = (size_t)snprintf(keys[k], sizeof(keys[k]), "rate_limited|api|198.51.%d.%d",
                                      k / 256, k % 256);
    bench("keyed, one key (counted)", ONE_KEY, n);
    bench("keyed, 400 keys in turn (counted)", WORKING_SET, n);
    bench("keyed, a new key each (overflow, +snprintf)", NEW_KEYS, n);
    bench("not keyed, per-event cap (sy_log_security)", NOT_KEYED, n);

    /* A tick that writes 400 keys' counts (50 lines, the rest to the overflow). */
    double start = now_ns();
    sy_log_security_tick(INT64_MAX);
    printf("%-44s %7.1f us\n", "tick with 400 keys pending", (now_ns() - start) / 1e3);
    start = now_ns();
    sy_log_security_tick(INT64_MAX);
    printf("%-44s %7.1f us\n", "tick with nothing pending", (now_ns() - start) / 1e3);
    sy_log_stop();
    return 0;
}
