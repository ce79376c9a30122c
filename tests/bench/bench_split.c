/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_split.c: nanoseconds per canary split decision (sy_split_pick) on a
 * parsed ~600-byte browser request head with 13 headers, for weight 0 and
 * for a 10 % canary under each stickiness; and per Set-Cookie line written.
 * Build with optimisation; optional argument: millions of decisions per
 * run (default 2); each line is the best of REPEATS runs.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/live.h"
#include "http/parser.h"
#include "http/split.h"
#include "bench_util.h"

#define REQUEST_HEAD(cookie)                                                                  \
    "GET /products/item.html?id=1234&ref=home HTTP/1.1\r\n"                                   \
    "Host: shop.example.com\r\n"                                                              \
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"  \
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"             \
    "Accept-Language: en-US,en;q=0.5\r\n"                                                     \
    "Accept-Encoding: gzip, deflate, br\r\n"                                                  \
    "Referer: https://shop.example.com/\r\n"                                                  \
    "Connection: keep-alive\r\n"                                                              \
    "Cookie: session=4f2a9c1e7b8d; theme=dark; _ga=GA1.2.1234567890.1700000000; "             \
    "consent=yes" cookie "\r\n"                                                               \
    "Upgrade-Insecure-Requests: 1\r\n"                                                        \
    "Sec-Fetch-Dest: document\r\n"                                                            \
    "Sec-Fetch-Mode: navigate\r\n"                                                            \
    "X-User: customer-4711\r\n"                                                               \
    "Priority: u=0, i\r\n"                                                                    \
    "\r\n"

static const char with_cookie[] = REQUEST_HEAD("; sy_slot_shop=blue.37");
static const char without_cookie[] = REQUEST_HEAD("");

/* The best of REPEATS runs: the machine is shared, and noise only ever adds. */
#define REPEATS 5

static volatile size_t sink;

struct parsed {
    struct sy_http_head head;
    struct sy_header headers[32];
};

static void
parse(struct parsed *p, const char *text, size_t len)
{
    static const struct sy_parse_limits lim = {16384, 8192, 32};

    p->head.headers = p->headers;
    sy_http_head_reset(&p->head);
    if (sy_http_parse_request(&p->head, text, len, &lim) != SY_PARSE_DONE)
        abort();
}

static void
bench_pick(const char *name, unsigned long n, enum sy_sticky sticky, int weight,
           const char *force_header, const struct parsed *p, const char *data)
{
    struct sy_service_live live;
    struct sy_service svc = {.name = "shop", .live = &live};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t canary = 0;

    memset(&live, 0, sizeof(live));
    sy_live_service_set(&live, SY_SLOT_BLUE, weight, 1);
    svc.canary.sticky = sticky;
    svc.canary.sticky_header = "X-User";
    svc.canary.force_header = (char *)force_header;
    double best = 0;
    for (int r = 0; r < REPEATS; r++) {
        double start = now_ns();
        for (unsigned long i = 0; i < n; i++) {
            struct sy_split s = sy_split_pick(&svc, &p->head, data, "203.0.113.57", &rng);
            canary += s.slot == SY_SLOT_GREEN;
            sink += s.set_cookie;
        }
        double ns = (now_ns() - start) / (double)n;
        if (r == 0 || ns < best)
            best = ns;
    }
    printf("%-42s %6.1f ns/decision  (%4.1f %% canary)\n", name, best,
           100.0 * (double)canary / ((double)n * REPEATS));
}

static void
bench_set_cookie(unsigned long n)
{
    struct sy_service svc = {.name = "shop"};
    struct sy_split s = {.slot = SY_SLOT_GREEN, .set_cookie = true};
    char buf[SY_SPLIT_SET_COOKIE_MAX(4)];
    double best = 0;

    for (int r = 0; r < REPEATS; r++) {
        double start = now_ns();
        for (unsigned long i = 0; i < n; i++) {
            s.bucket = (uint8_t)(i % 100);
            sink += sy_split_set_cookie(buf, &svc, &s, i & 1);
        }
        double ns = (now_ns() - start) / (double)n;
        if (r == 0 || ns < best)
            best = ns;
    }
    printf("%-42s %6.1f ns/line\n", "Set-Cookie line written", best);
}

int
main(int argc, char **argv)
{
    unsigned long n = (argc > 1 ? strtoul(argv[1], NULL, 10) : 2) * 1000000ul;
    struct parsed pc, pn;

    parse(&pc, with_cookie, sizeof(with_cookie) - 1);
    parse(&pn, without_cookie, sizeof(without_cookie) - 1);
    printf("request head %zu bytes, %u headers\n", sizeof(with_cookie) - 1, pc.head.nheaders);
    bench_pick("weight 0", n, SY_STICKY_NONE, 0, NULL, &pc, with_cookie);
    bench_pick("weight 0, force_header set (absent)", n, SY_STICKY_COOKIE, 0, "X-Canary", &pc,
               with_cookie);
    bench_pick("10 %, sticky none (random)", n, SY_STICKY_NONE, 10, NULL, &pc, with_cookie);
    bench_pick("10 %, sticky client_ip", n, SY_STICKY_CLIENT_IP, 10, NULL, &pc, with_cookie);
    bench_pick("10 %, sticky header:X-User", n, SY_STICKY_HEADER, 10, NULL, &pc, with_cookie);
    bench_pick("10 %, sticky cookie (has its cookie)", n, SY_STICKY_COOKIE, 10, NULL, &pc,
               with_cookie);
    bench_pick("10 %, sticky cookie (no cookie yet)", n, SY_STICKY_COOKIE, 10, NULL, &pn,
               without_cookie);
    bench_pick("10 %, sticky cookie, force_header (absent)", n, SY_STICKY_COOKIE, 10, "X-Canary",
               &pc, with_cookie);
    bench_set_cookie(n);
    return 0;
}
