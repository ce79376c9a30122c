/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_cidr.c: the compiled prefix table (sy_cidr_table_*) against the linear
 * sy_cidr_list_match, for blocklist-like lists of 10 to 100,000 IPv4 or IPv6
 * prefixes: ns per lookup (median of RUNS runs), build time and bytes. "chained"
 * makes each lookup's address depend on the last answer, so lookups cannot overlap
 * in the CPU: the latency one request sees; "independent" is the throughput.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/cidr.h"
#include "bench_util.h"
#include "../unit/test_util.h"

#define RUNS     7
#define NADDR    4096u          /* addresses cycled through: half inside a prefix */
#define LOOKUPS  2000000u       /* per run of the table */
#define LINEAR_WORK 40000000u   /* prefixes compared per run of the linear scan */

static volatile long sink;

/* Blocklist-like lengths: mostly single hosts and /24s (v4), /128s and /64s (v6). */
static unsigned
random_length(uint64_t *rs, int family)
{
    unsigned r = (unsigned)(rnd(rs) % 100);

    if (family == AF_INET)
        return r < 60 ? 32 : r < 85 ? 24 : r < 95 ? 16 + (unsigned)(rnd(rs) % 8)
                                                  : 8 + (unsigned)(rnd(rs) % 8);
    return r < 40 ? 128 : r < 70 ? 64 : r < 90 ? 48 : 32 + (unsigned)(rnd(rs) % 16);
}

/* Random addresses: IPv4 anywhere, IPv6 in 2000::/3 (global unicast). */
static void
random_bytes(uint64_t *rs, int family, uint8_t *addr)
{
    for (int i = 0; i < 16; i++)
        addr[i] = (uint8_t)rnd(rs);
    if (family == AF_INET6)
        addr[0] = (uint8_t)(0x20 | (addr[0] & 0x1f));
}

static void
make_prefixes(uint64_t *rs, int family, struct sy_cidr *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char err[64];
        char text[INET6_ADDRSTRLEN + 4];
        uint8_t a[16];
        size_t len;

        random_bytes(rs, family, a);
        inet_ntop(family, a, text, INET6_ADDRSTRLEN);
        len = strlen(text);
        snprintf(text + len, sizeof(text) - len, "/%u", random_length(rs, family));
        if (sy_cidr_parse(text, &list[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "bench_cidr: %s: %s\n", text, err);
            exit(1);
        }
    }
}

/* Half the addresses inside a random prefix of the list (random host bits), half anywhere. */
static void
make_addresses(uint64_t *rs, int family, const struct sy_cidr *list, size_t n,
               struct sockaddr_in *v4, struct sockaddr_in6 *v6)
{
    for (size_t k = 0; k < NADDR; k++) {
        uint8_t a[16];

        random_bytes(rs, family, a);
        if (k % 2 == 0) {
            const struct sy_cidr *c = &list[rnd(rs) % n];

            for (unsigned bit = 0; bit < c->prefix; bit++) {
                uint8_t m = (uint8_t)(0x80 >> (bit % 8));

                a[bit / 8] = (uint8_t)((a[bit / 8] & ~m) | (c->addr[bit / 8] & m));
            }
        }
        if (family == AF_INET) {
            memset(&v4[k], 0, sizeof(v4[k]));
            v4[k].sin_family = AF_INET;
            memcpy(&v4[k].sin_addr, a, 4);
        } else {
            memset(&v6[k], 0, sizeof(v6[k]));
            v6[k].sin6_family = AF_INET6;
            memcpy(&v6[k].sin6_addr, a, 16);
        }
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* The address of lookup k: struct sockaddr_in or _in6, whichever array is in use. */
static const struct sockaddr *
address(const struct sockaddr_in *v4, const struct sockaddr_in6 *v6, size_t k)
{
    return v4 != NULL ? (const struct sockaddr *)&v4[k % NADDR]
                      : (const struct sockaddr *)&v6[k % NADDR];
}

/* ns per table lookup, median of RUNS. */
static double
time_table(const struct sy_cidr_table *t, const struct sockaddr_in *v4,
           const struct sockaddr_in6 *v6, int chained)
{
    double ns[RUNS];

    for (int r = 0; r < RUNS; r++) {
        size_t k = 0;
        long sum = 0;
        double start = now_ns();

        for (uint32_t i = 0; i < LOOKUPS; i++) {
            unsigned len;
            int v = sy_cidr_table_lookup(t, address(v4, v6, k), &len);

            sum += v + (long)len;
            /* v < -1 never holds, but the compiler cannot know: the next address waits */
            k += 1 + (chained ? (size_t)(v < -1) : 0);
        }
        ns[r] = (now_ns() - start) / LOOKUPS;
        sink += sum;
    }
    return median(ns, RUNS);
}

static double
time_linear(const struct sy_cidr *list, size_t n, const struct sockaddr_in *v4,
            const struct sockaddr_in6 *v6)
{
    uint32_t lookups = (uint32_t)(LINEAR_WORK / n < 1000 ? 1000 : LINEAR_WORK / n);
    double ns[RUNS];

    for (int r = 0; r < RUNS; r++) {
        long sum = 0;
        double start = now_ns();

        for (uint32_t i = 0; i < lookups; i++)
            sum += sy_cidr_list_match(list, n, address(v4, v6, i));
        ns[r] = (now_ns() - start) / lookups;
        sink += sum;
    }
    return median(ns, RUNS);
}

static void
bench(int family, size_t n)
{
    static struct sockaddr_in v4[NADDR];
    static struct sockaddr_in6 v6[NADDR];
    uint64_t rs = 0xc1d7ab1e0000ull + n * 2 + (family == AF_INET6);
    struct sy_cidr *list = malloc(n * sizeof(*list));
    struct sy_cidr_table *t = NULL;
    double build[RUNS], chained, independent, linear = 0;
    const char *name = family == AF_INET ? "v4" : "v6";

    if (list == NULL) {
        fprintf(stderr, "bench_cidr: out of memory\n");
        exit(1);
    }
    make_prefixes(&rs, family, list, n);
    make_addresses(&rs, family, list, n, v4, v6);
    for (int r = 0; r < RUNS; r++) {
        double start = now_ns();

        sy_cidr_table_free(t);
        t = sy_cidr_table_build(list, NULL, n);
        build[r] = now_ns() - start;
        if (t == NULL) {
            fprintf(stderr, "bench_cidr: out of memory\n");
            exit(1);
        }
    }
    chained = time_table(t, family == AF_INET ? v4 : NULL, family == AF_INET6 ? v6 : NULL, 1);
    independent = time_table(t, family == AF_INET ? v4 : NULL, family == AF_INET6 ? v6 : NULL,
                             0);
    if (n <= 10000)
        linear = time_linear(list, n, family == AF_INET ? v4 : NULL,
                             family == AF_INET6 ? v6 : NULL);
    printf("%s %7zu prefixes: table %6.1f ns chained, %6.1f ns independent; ", name, n,
           chained, independent);
    if (linear > 0)
        printf("linear %9.1f ns; ", linear);
    else
        printf("linear       n/a   ; ");
    printf("build %8.3f ms, %9zu bytes (%.1f/prefix)\n", median(build, RUNS) / 1e6,
           sy_cidr_table_bytes(t), (double)sy_cidr_table_bytes(t) / (double)n);
    sy_cidr_table_free(t);
    free(list);
}

int
main(void)
{
    /* 1 and 3: where a trusted_proxies list sits, to see if the table pays there too */
    static const size_t sizes[] = {1, 3, 10, 1000, 10000, 100000};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        bench(AF_INET, sizes[i]);
        bench(AF_INET6, sizes[i]);
    }
    return 0;
}
