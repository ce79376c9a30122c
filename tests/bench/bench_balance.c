/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_balance.c: nanoseconds per instance pick (pick + done) for each
 * balancing algorithm over 8 instances, and per route match over 20
 * routes. Build with optimisation; prints one line per measurement.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/live.h"
#include "http/balance.h"
#include "http/route.h"
#include "bench_util.h"

#define NINSTANCES 8
#define PICKS      20000000u
#define MATCHES    5000000u

static volatile size_t sink;

static void
bench_pick(const char *name, enum sy_balance balance, const int *weights)
{
    struct sy_instance_live live[NINSTANCES];
    struct sy_instance inst[NINSTANCES];
    struct sy_pool pool = {.instances = inst, .ninstances = NINSTANCES, .balance = balance};
    struct sy_conf conf = {.pools = &pool, .npools = 1};
    double start;

    memset(live, 0, sizeof(live));
    memset(inst, 0, sizeof(inst));
    for (size_t i = 0; i < NINSTANCES; i++) {
        inst[i].weight = weights[i];
        inst[i].index = i;
        inst[i].live = &live[i];
        snprintf(inst[i].addr.text, sizeof(inst[i].addr.text), "10.0.0.%zu:8080", i + 1);
    }
    if (sy_balance_prepare(&conf, 1) == -1) {
        fprintf(stderr, "bench_balance: out of memory\n");
        exit(1);
    }
    start = now_ns();
    for (uint32_t k = 0; k < PICKS; k++) {
        struct sy_instance *picked = sy_balance_pick(&pool, 0, 0, k * 2654435761u, 0, NULL);

        sink += picked->index;
        sy_balance_done(&pool, 0, picked);
    }
    printf("%-28s %6.1f ns/pick\n", name, (now_ns() - start) / PICKS);
    free(pool.balance_state);
}

static void
bench_route(void)
{
    static const char *const spec[20][2] = {
        {"api.example.com", "/v1"}, {"api.example.com", "/v2"},
        {"api.example.com", "/admin"}, {"www.example.com", "/"},
        {"www.example.com", "/static/"}, {"shop.example.com", "/"},
        {"shop.example.com", "/cart"}, {"shop.example.com", "/checkout"},
        {"*.example.com", "/"}, {"*.example.com", "/health"},
        {"*.eu.example.com", "/"}, {"*.us.example.com", "/"},
        {"blog.example.org", "/"}, {"blog.example.org", "/wp-admin"},
        {"*.example.org", "/"}, {"status.example.net", "/"},
        {"[::1]", "/"}, {"*", "/metrics"}, {"*", "/api"}, {"*", "/"},
    };
    static const char *const req[][2] = {
        {"API.example.com:443", "/v2/users/42"},
        {"x.eu.example.com", "/page"},
        {"unknown.test", "/api/thing"},
        {"shop.example.com", "/checkout/pay"},
    };
    struct sy_route routes[20];
    struct sy_conf conf = {.routes = routes, .nroutes = 20};
    size_t hostlen[4], pathlen[4];
    double start;

    memset(routes, 0, sizeof(routes));
    for (size_t i = 0; i < 20; i++) {
        routes[i].index = i;
        routes[i].host = (char *)spec[i][0];
        routes[i].path = (char *)spec[i][1];
        routes[i].path_len = strlen(spec[i][1]);
    }
    for (size_t i = 0; i < 4; i++) {
        hostlen[i] = strlen(req[i][0]);
        pathlen[i] = strlen(req[i][1]);
    }
    start = now_ns();
    for (uint32_t k = 0; k < MATCHES; k++) {
        size_t r = k & 3;

        sink += sy_route_match(&conf, req[r][0], hostlen[r], req[r][1], pathlen[r])->index;
    }
    printf("%-28s %6.1f ns/match\n", "route (20 routes, 4 mixed)", (now_ns() - start) / MATCHES);
}

int
main(void)
{
    static const int equal[NINSTANCES] = {1, 1, 1, 1, 1, 1, 1, 1};
    static const int mixed[NINSTANCES] = {5, 1, 1, 2, 3, 1, 4, 2};

    bench_pick("round_robin (weighted)", SY_BALANCE_ROUND_ROBIN, mixed);
    bench_pick("round_robin (equal)", SY_BALANCE_ROUND_ROBIN, equal);
    bench_pick("least_conn (weighted)", SY_BALANCE_LEAST_CONN, mixed);
    bench_pick("ip_hash (equal weights)", SY_BALANCE_IP_HASH, equal);
    bench_pick("ip_hash (weighted)", SY_BALANCE_IP_HASH, mixed);
    bench_route();
    return 0;
}
