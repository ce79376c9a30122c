/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_geoip.c: nanoseconds per sy_geoip_country, the cost a worker pays per
 * request, on build/test-data/geoip/bench.mmdb (1,024 GeoLite2-Country-shaped
 * networks: 512 IPv4 /24, 512 IPv6 /48; make geoip-test-data writes it, with
 * bench.txt listing them). Addresses inside the networks (hits, each answer
 * checked against bench.txt), IPv4-mapped IPv6 hits, and random IPv4 (misses,
 * mostly). Each figure is the median over ROUNDS rounds of the mean of one
 * round. Optional argument: the database folder. Skips (status 0) when the
 * database or libmaxminddb is missing.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_auto.h"
#include "core/geoip.h"
#include "bench_util.h"

#define NADDR 4096              /* addresses per set, cycled through */
#define ROUNDS 21
#define PER_ROUND (NADDR * 32)

struct target {
    struct sockaddr_storage sa;
    char want[3];               /* "" when not checked */
};

static volatile unsigned sink;
static uint64_t rng = 88172645463325252ull;

static uint32_t
next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over ROUNDS of the ns per lookup of one round; checks every answer once. */
static void
bench(const struct sy_geoip *g, const struct target *t, const char *what)
{
    double rounds[ROUNDS];
    unsigned found = 0;
    char out[3];

    for (size_t i = 0; i < NADDR; i++) {
        sy_geoip_country(g, (const struct sockaddr *)&t[i].sa, out);
        if (t[i].want[0] != '\0' && strcmp(out, t[i].want) != 0) {
            fprintf(stderr, "bench_geoip: %s: address %zu: got \"%s\", want %s\n", what, i,
                    out, t[i].want);
            exit(1);
        }
        found += out[0] != '\0';
    }
    for (int r = 0; r < ROUNDS; r++) {
        double start = now_ns();
        for (size_t i = 0; i < PER_ROUND; i++) {
            sy_geoip_country(g, (const struct sockaddr *)&t[i % NADDR].sa, out);
            sink += (unsigned char)out[0];
        }
        rounds[r] = (now_ns() - start) / PER_ROUND;
    }
    qsort(rounds, ROUNDS, sizeof(rounds[0]), cmp_double);
    printf("%-44s %8.1f ns/lookup (min %.1f, max %.1f; %u%% found)\n", what,
           rounds[ROUNDS / 2], rounds[0], rounds[ROUNDS - 1], found * 100 / NADDR);
}

struct network {
    int family;
    unsigned char addr[16];
    char cc[3];
};

/* bench.txt: "1.2.3.0/24 DE" or "2a01:2:3::/48 FR" a line. */
static size_t
read_networks(const char *path, struct network **out)
{
    FILE *fp = fopen(path, "r");
    struct network *nets = NULL;
    size_t n = 0, cap = 0;
    char line[128], net[64], cc[8];

    if (fp == NULL)
        return 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (sscanf(line, "%63[^/]/%*u %7s", net, cc) != 2 || strlen(cc) != 2)
            continue;
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 1024;
            nets = realloc(nets, cap * sizeof(*nets));
            if (nets == NULL)
                abort();
        }
        nets[n].family = strchr(net, ':') != NULL ? AF_INET6 : AF_INET;
        if (inet_pton(nets[n].family, net, nets[n].addr) != 1)
            continue;
        memcpy(nets[n].cc, cc, 3);
        n++;
    }
    fclose(fp);
    *out = nets;
    return n;
}

/* NADDR addresses inside the networks of family (hosts random within /24 or /48). */
static void
fill_hits(struct target *t, const struct network *nets, size_t n, int family, bool mapped)
{
    size_t k = 0;

    while (k < NADDR) {
        const struct network *net = &nets[next_rand() % n];
        struct target *x = &t[k];

        if (net->family != family)
            continue;
        memset(x, 0, sizeof(*x));
        memcpy(x->want, net->cc, 3);
        if (family == AF_INET && !mapped) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&x->sa;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, net->addr, 4);
            ((unsigned char *)&sin->sin_addr)[3] = (unsigned char)next_rand();
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&x->sa;
            unsigned char *a = sin6->sin6_addr.s6_addr;
            sin6->sin6_family = AF_INET6;
            if (mapped) {
                a[10] = a[11] = 0xff;
                memcpy(a + 12, net->addr, 4);
                a[15] = (unsigned char)next_rand();
            } else {
                memcpy(a, net->addr, 6);
                for (int i = 6; i < 16; i++)
                    a[i] = (unsigned char)next_rand();
            }
        }
        k++;
    }
}

static void
fill_random_v4(struct target *t)
{
    for (size_t k = 0; k < NADDR; k++) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&t[k].sa;
        uint32_t ip = next_rand();

        memset(&t[k], 0, sizeof(t[k]));
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, &ip, 4);
    }
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/test-data/geoip";
    char db[4096], list[4096], err[512];
    struct target *t = calloc(NADDR, sizeof(*t));
    struct network *nets = NULL;
    struct sy_geoip *g;
    size_t n;
    double start;

    if (t == NULL)
        abort();
    snprintf(db, sizeof(db), "%s/bench.mmdb", dir);
    snprintf(list, sizeof(list), "%s/bench.txt", dir);
    if (!SY_HAVE_MAXMINDDB) {
        printf("bench_geoip: skipped: built without libmaxminddb\n");
        return 0;
    }
    n = read_networks(list, &nets);
    start = now_ns();
    g = sy_geoip_open(db, err, sizeof(err));
    if (g == NULL || n == 0) {
        printf("bench_geoip: skipped: %s (make geoip-test-data; it needs "
               "libmaxmind-db-writer-perl)\n", g == NULL ? err : list);
        return 0;
    }
    printf("%-44s %8.3f ms (%zu networks)\n", "sy_geoip_open, bench.mmdb:",
           (now_ns() - start) / 1e6, n);
    fill_hits(t, nets, n, AF_INET, false);
    bench(g, t, "IPv4, inside a network:");
    fill_hits(t, nets, n, AF_INET6, false);
    bench(g, t, "IPv6, inside a network:");
    fill_hits(t, nets, n, AF_INET, true);
    bench(g, t, "IPv4-mapped IPv6, inside a network:");
    fill_random_v4(t);
    bench(g, t, "IPv4, random (mostly not found):");
    sy_geoip_unref(g);
    free(nets);
    free(t);
    return 0;
}
