/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_split.c: the canary split (src/http/split.c) on real parsed heads.
 * The bucket rule (a sticky client keeps its slot while the weight stays,
 * a higher weight moves clients only toward the canary), the random
 * share, the force header, the slot cookie's parsing and its Set-Cookie.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/live.h"
#include "http/parser.h"
#include "http/split.h"

#define MAX_HEADERS 64

struct req {
    struct sy_http_head head;
    struct sy_header headers[MAX_HEADERS];
    char buf[8192];
};

/* Parses "GET / HTTP/1.1", a Host line, then lines (each "Name: value\r\n"). */
static void
parse(struct req *r, const char *lines)
{
    static const struct sy_parse_limits lim = {
        .max_head_bytes = 8192, .max_uri_bytes = 1024, .max_headers = MAX_HEADERS,
    };
    int n = snprintf(r->buf, sizeof(r->buf), "GET / HTTP/1.1\r\nHost: app\r\n%s\r\n", lines);

    assert_true(n > 0 && (size_t)n < sizeof(r->buf));
    r->head.headers = r->headers;
    sy_http_head_reset(&r->head);
    assert_int_equal(sy_http_parse_request(&r->head, r->buf, (size_t)n, &lim), SY_PARSE_DONE);
}

struct svc {
    struct sy_service svc;
    struct sy_service_live live;
};

static void
svc_init(struct svc *s, const char *name, enum sy_sticky sticky, const char *header,
         const char *force_header)
{
    memset(s, 0, sizeof(*s));
    s->svc.name = (char *)name;
    s->svc.canary.sticky = sticky;
    s->svc.canary.sticky_header = (char *)header;
    s->svc.canary.force_header = (char *)force_header;
    s->svc.live = &s->live;
}

static void
set_split(struct svc *s, enum sy_slot active, int weight)
{
    sy_live_service_set(&s->live, active, weight, 1);
}

static struct sy_split
pick(struct svc *s, const struct req *r, const char *ip, uint64_t *rng)
{
    return sy_split_pick(&s->svc, &r->head, r->buf, ip, rng);
}

/* ---- weight, random share, active slot ---------------------------------- */

static void
test_weight_zero_is_the_active_slot(void **state)
{
    static const enum sy_sticky modes[] = {SY_STICKY_NONE, SY_STICKY_COOKIE,
                                           SY_STICKY_CLIENT_IP, SY_STICKY_HEADER};
    struct svc s;
    struct req r;
    (void)state;

    parse(&r, "X-User: u1\r\nCookie: sy_slot_app=green.3\r\n");
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        svc_init(&s, "app", modes[m], "X-User", NULL);
        for (int active = 0; active < 2; active++) {
            uint64_t rng = 42;
            set_split(&s, (enum sy_slot)active, 0);
            for (int i = 0; i < 100; i++) {
                struct sy_split sp = pick(&s, &r, "10.0.0.1", &rng);
                assert_int_equal(sp.slot, active);
                assert_false(sp.set_cookie);
            }
            assert_int_equal(rng, 42);     /* nothing drawn at weight 0 */
        }
    }
}

static void
test_random_share_follows_the_weight(void **state)
{
    struct svc s;
    struct req r;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    (void)state;

    parse(&r, "Accept: */*\r\n");
    svc_init(&s, "app", SY_STICKY_NONE, NULL, NULL);
    for (int weight = 1; weight <= 100; weight += 11) {
        for (int active = 0; active < 2; active++) {
            int canary = 0, n = 200000;
            set_split(&s, (enum sy_slot)active, weight);
            for (int i = 0; i < n; i++) {
                struct sy_split sp = pick(&s, &r, "10.0.0.1", &rng);
                canary += sp.slot != (enum sy_slot)active;
                assert_false(sp.set_cookie);
            }
            double share = 100.0 * canary / n;
            assert_true(share > weight - 0.5 && share < weight + 0.5);
        }
    }
    set_split(&s, SY_SLOT_BLUE, 100);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(pick(&s, &r, "10.0.0.1", &rng).slot, SY_SLOT_GREEN);
}

/* ---- hash stickiness ---------------------------------------------------- */

/*
 * For 1,000 clients: at each weight every client gets the same slot on
 * every request; the canary's share is near the weight; and the clients on
 * the canary at a lower weight are still on it at a higher one.
 */
static void
check_sticky(struct svc *s, void (*client)(int i, struct req *r, char *ip, size_t iplen))
{
    static const int weights[] = {5, 30, 60, 100};
    enum { N = 1000 };
    static bool was_canary[N];
    uint64_t rng = 7;

    memset(was_canary, 0, sizeof(was_canary));
    for (size_t w = 0; w < sizeof(weights) / sizeof(weights[0]); w++) {
        int canary = 0;
        set_split(s, SY_SLOT_GREEN, weights[w]);
        for (int i = 0; i < N; i++) {
            struct req r;
            char ip[48];
            client(i, &r, ip, sizeof(ip));
            enum sy_slot first = pick(s, &r, ip, &rng).slot;
            for (int k = 0; k < 5; k++)
                assert_int_equal(pick(s, &r, ip, &rng).slot, first);
            bool is_canary = first == SY_SLOT_BLUE;
            if (was_canary[i])
                assert_true(is_canary);     /* only ever toward the canary */
            was_canary[i] = is_canary;
            canary += is_canary;
        }
        double share = 100.0 * canary / N;
        assert_true(share > weights[w] - 6 && share < weights[w] + 6);
    }
    assert_int_equal(rng, 7);       /* every client had a key: nothing drawn */
}

static void
client_by_ip(int i, struct req *r, char *ip, size_t iplen)
{
    parse(r, "User-Agent: t\r\n");
    snprintf(ip, iplen, "10.%d.%d.%d", i / 65536, i / 256 % 256, i % 256);
}

static void
client_by_header(int i, struct req *r, char *ip, size_t iplen)
{
    char lines[128];

    snprintf(lines, sizeof(lines), "Accept: */*\r\nx-user: user-%d\r\nCookie: a=b\r\n", i);
    parse(r, lines);
    snprintf(ip, iplen, "192.0.2.1");   /* one address for all: the header decides */
}

static void
test_sticky_client_ip(void **state)
{
    struct svc s;
    (void)state;

    svc_init(&s, "app", SY_STICKY_CLIENT_IP, NULL, NULL);
    check_sticky(&s, client_by_ip);
}

static void
test_sticky_header(void **state)
{
    struct svc s;
    struct req r;
    uint64_t rng = 99;
    (void)state;

    svc_init(&s, "app", SY_STICKY_HEADER, "X-User", NULL);
    check_sticky(&s, client_by_header);
    /* without the header the split is drawn per request */
    parse(&r, "Accept: */*\r\n");
    set_split(&s, SY_SLOT_BLUE, 50);
    int green = 0;
    for (int i = 0; i < 1000; i++)
        green += pick(&s, &r, "192.0.2.1", &rng).slot == SY_SLOT_GREEN;
    assert_true(green > 400 && green < 600);
}

/* ---- force header --------------------------------------------------------- */

static void
test_force_header(void **state)
{
    static const struct {
        const char *line;
        int want;               /* 1 canary, 0 active, -1 the weight decides */
    } cases[] = {
        {"X-Canary: always\r\n", 1},
        {"x-canary: ALWAYS\r\n", 1},
        {"X-CANARY: never\r\n", 0},
        {"X-Canary: Never\r\n", 0},
        {"X-Canary: maybe\r\n", -1},
        {"X-Canary: always1\r\n", -1},
        {"X-Canary: \r\n", -1},
        {"X-Canaries: always\r\n", -1},
        {"", -1},
    };
    static const enum sy_sticky modes[] = {SY_STICKY_NONE, SY_STICKY_COOKIE,
                                           SY_STICKY_CLIENT_IP};
    struct svc s;
    (void)state;

    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        svc_init(&s, "app", modes[m], NULL, "X-Canary");
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            for (int weight = 0; weight <= 100; weight += 100) {
                struct req r;
                char lines[256];
                uint64_t rng = 5;
                snprintf(lines, sizeof(lines), "%sCookie: sy_slot_app=green.50\r\n",
                         cases[i].line);
                parse(&r, lines);
                set_split(&s, SY_SLOT_GREEN, weight);
                struct sy_split sp = pick(&s, &r, "10.0.0.1", &rng);
                int want = cases[i].want >= 0 ? cases[i].want : weight == 100;
                assert_int_equal(sp.slot, want ? SY_SLOT_BLUE : SY_SLOT_GREEN);
                if (cases[i].want >= 0)
                    assert_false(sp.set_cookie);   /* a forced request leaves the cookie */
            }
        }
    }
}

/* ---- the slot cookie ------------------------------------------------------ */

static void
test_cookie_parsing(void **state)
{
    static const struct {
        const char *lines;
        int bucket;             /* -1: absent or malformed */
        enum sy_slot slot;
    } cases[] = {
        {"Cookie: sy_slot_app=green.37\r\n", 37, SY_SLOT_GREEN},
        {"Cookie: sy_slot_app=blue.0\r\n", 0, SY_SLOT_BLUE},
        {"Cookie: sy_slot_app=blue.99\r\n", 99, SY_SLOT_BLUE},
        {"Cookie: a=1; sy_slot_app=blue.5; b=2\r\n", 5, SY_SLOT_BLUE},
        {"Cookie: a=1;sy_slot_app=green.12\r\n", 12, SY_SLOT_GREEN},
        {"Cookie: a=1 ;  sy_slot_app = green.8 ; b\r\n", 8, SY_SLOT_GREEN},
        {"Cookie: a=1;\tsy_slot_app=green.8\t\r\n", 8, SY_SLOT_GREEN},
        {"Cookie: x=\"q;\"; sy_slot_app=blue.1\r\n", 1, SY_SLOT_BLUE},
        {"Cookie: a=1\r\nCookie: sy_slot_app=blue.12\r\n", 12, SY_SLOT_BLUE},
        {"Cookie: sy_slot_app=blue.12\r\nAccept: */*\r\nCookie: a=1\r\n", 12, SY_SLOT_BLUE},
        /* the first cookie of the name decides, valid or not */
        {"Cookie: sy_slot_app=green.3; sy_slot_app=blue.4\r\n", 3, SY_SLOT_GREEN},
        {"Cookie: sy_slot_app=green.3\r\nCookie: sy_slot_app=blue.4\r\n", 3, SY_SLOT_GREEN},
        {"Cookie: sy_slot_app=bad; sy_slot_app=blue.4\r\n", -1, 0},
        /* other services' cookies and near names */
        {"Cookie: sy_slot_ap=green.5\r\n", -1, 0},
        {"Cookie: sy_slot_app2=green.5\r\n", -1, 0},
        {"Cookie: xsy_slot_app=green.5\r\n", -1, 0},
        {"Cookie: sy_slot_App=green.5\r\n", -1, 0},
        {"Cookie: SY_SLOT_app=green.5\r\n", -1, 0},
        {"Cookie: sy_slot_other=green.5; sy_slot_app=blue.6\r\n", 6, SY_SLOT_BLUE},
        /* malformed values */
        {"Cookie: sy_slot_app=green.07\r\n", -1, 0},
        {"Cookie: sy_slot_app=green.100\r\n", -1, 0},
        {"Cookie: sy_slot_app=green.\r\n", -1, 0},
        {"Cookie: sy_slot_app=green\r\n", -1, 0},
        {"Cookie: sy_slot_app=green.-1\r\n", -1, 0},
        {"Cookie: sy_slot_app=green.+5\r\n", -1, 0},
        {"Cookie: sy_slot_app=green.5x\r\n", -1, 0},
        {"Cookie: sy_slot_app=green.5 x\r\n", -1, 0},
        {"Cookie: sy_slot_app=green.37=\r\n", -1, 0},
        {"Cookie: sy_slot_app=Green.5\r\n", -1, 0},
        {"Cookie: sy_slot_app=red.5\r\n", -1, 0},
        {"Cookie: sy_slot_app=\"green.5\"\r\n", -1, 0},
        {"Cookie: sy_slot_app=\r\n", -1, 0},
        {"Cookie: sy_slot_app\r\n", -1, 0},
        {"Cookie: =green.5\r\n", -1, 0},
        {"Cookie: ;;; ;\r\n", -1, 0},
        {"Cookie:\r\n", -1, 0},
        {"X-Cookie: sy_slot_app=green.5\r\n", -1, 0},
        {"", -1, 0},
    };
    struct svc s;
    (void)state;

    svc_init(&s, "app", SY_STICKY_COOKIE, NULL, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct req r;
        enum sy_slot slot = SY_SLOT_BLUE;
        parse(&r, cases[i].lines);
        int bucket = sy_split_cookie(&s.svc, &r.head, r.buf, &slot);
        if (bucket != cases[i].bucket)
            fail_msg("case %zu (%s): bucket %d, want %d", i, cases[i].lines, bucket,
                     cases[i].bucket);
        if (bucket >= 0)
            assert_int_equal(slot, cases[i].slot);
    }
    /* names with '.', '-' and '_' (all that a service name may hold) */
    struct req r;
    enum sy_slot slot;
    svc_init(&s, "web-2.eu_1", SY_STICKY_COOKIE, NULL, NULL);
    parse(&r, "Cookie: sy_slot_web-2.eu_1=green.42\r\n");
    assert_int_equal(sy_split_cookie(&s.svc, &r.head, r.buf, &slot), 42);
    assert_int_equal(slot, SY_SLOT_GREEN);
    /* a long cookie line with ours at its end */
    char lines[6000];
    size_t n = (size_t)snprintf(lines, sizeof(lines), "Cookie: ");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(lines + n, sizeof(lines) - n, "c%d=v%d; ", i, i);
    snprintf(lines + n, sizeof(lines) - n, "sy_slot_web-2.eu_1=blue.61\r\n");
    parse(&r, lines);
    assert_int_equal(sy_split_cookie(&s.svc, &r.head, r.buf, &slot), 61);
    assert_int_equal(slot, SY_SLOT_BLUE);
}

static void
test_cookie_split(void **state)
{
    struct svc s;
    struct req r;
    uint64_t rng = 1234;
    (void)state;

    svc_init(&s, "app", SY_STICKY_COOKIE, NULL, NULL);
    set_split(&s, SY_SLOT_BLUE, 30);
    /* bucket 37 >= 30: the active slot; the cookie named the other, so it is set again */
    parse(&r, "Cookie: sy_slot_app=green.37\r\n");
    struct sy_split sp = pick(&s, &r, "10.0.0.1", &rng);
    assert_int_equal(sp.slot, SY_SLOT_BLUE);
    assert_true(sp.set_cookie);
    assert_int_equal(sp.bucket, 37);
    assert_int_equal(rng, 1234);
    parse(&r, "Cookie: sy_slot_app=blue.37\r\n");
    sp = pick(&s, &r, "10.0.0.1", &rng);
    assert_int_equal(sp.slot, SY_SLOT_BLUE);
    assert_false(sp.set_cookie);
    /* bucket 29 < 30: the canary */
    parse(&r, "Cookie: sy_slot_app=green.29\r\n");
    sp = pick(&s, &r, "10.0.0.1", &rng);
    assert_int_equal(sp.slot, SY_SLOT_GREEN);
    assert_false(sp.set_cookie);
    /* the bucket, not the slot named, decides: after a switch it still holds */
    set_split(&s, SY_SLOT_GREEN, 30);
    sp = pick(&s, &r, "10.0.0.1", &rng);
    assert_int_equal(sp.slot, SY_SLOT_BLUE);
    assert_true(sp.set_cookie);
    assert_int_equal(sp.bucket, 29);
    assert_int_equal(rng, 1234);
    /* without a valid cookie: a drawn bucket, the rule, and a cookie to set */
    set_split(&s, SY_SLOT_BLUE, 40);
    int canary = 0;
    for (int i = 0; i < 10000; i++) {
        parse(&r, i % 2 ? "Cookie: sy_slot_app=green.7x\r\n" : "Accept: */*\r\n");
        sp = pick(&s, &r, "10.0.0.1", &rng);
        assert_true(sp.set_cookie);
        assert_true(sp.bucket < 100);
        assert_int_equal(sp.slot, sp.bucket < 40 ? SY_SLOT_GREEN : SY_SLOT_BLUE);
        canary += sp.slot == SY_SLOT_GREEN;
    }
    assert_true(canary > 3700 && canary < 4300);
}

/* A client that keeps the cookies it is given stays put, and only moves toward the canary. */
static void
test_cookie_client_keeps_its_slot(void **state)
{
    enum { N = 500 };
    static char jar[N][32];
    static bool was_canary[N];
    struct svc s;
    uint64_t rng = 77;
    (void)state;

    svc_init(&s, "app", SY_STICKY_COOKIE, NULL, NULL);
    memset(jar, 0, sizeof(jar));
    memset(was_canary, 0, sizeof(was_canary));
    for (int weight = 10; weight <= 100; weight += 30) {
        set_split(&s, SY_SLOT_BLUE, weight);
        for (int i = 0; i < N; i++) {
            enum sy_slot first = SY_SLOT_BLUE;
            for (int k = 0; k < 3; k++) {
                struct req r;
                char lines[96];
                snprintf(lines, sizeof(lines), "%s%.31s%s", jar[i][0] ? "Cookie: " : "", jar[i],
                         jar[i][0] ? "\r\n" : "");
                parse(&r, lines);
                struct sy_split sp = pick(&s, &r, "10.0.0.1", &rng);
                if (k == 0)
                    first = sp.slot;
                assert_int_equal(sp.slot, first);
                assert_true(sp.set_cookie == (k == 0 && (!jar[i][0] || sp.slot !=
                            (strstr(jar[i], "green") ? SY_SLOT_GREEN : SY_SLOT_BLUE))));
                if (sp.set_cookie) {
                    char line[128];
                    size_t len = sy_split_set_cookie(line, &s.svc, &sp, false);
                    line[len] = '\0';
                    /* "Set-Cookie: NAME=VALUE; ..." into the jar as "NAME=VALUE" */
                    snprintf(jar[i], sizeof(jar[i]), "%.*s", (int)strcspn(line + 12, ";"),
                             line + 12);
                }
            }
            if (was_canary[i])
                assert_int_equal(first, SY_SLOT_GREEN);
            was_canary[i] = first == SY_SLOT_GREEN;
        }
    }
    for (int i = 0; i < N; i++)
        assert_true(was_canary[i]);     /* weight 100 */
}

static void
test_set_cookie_text(void **state)
{
    struct svc s;
    char buf[SY_SPLIT_SET_COOKIE_MAX(3) + 1];
    struct sy_split sp = {.slot = SY_SLOT_GREEN, .set_cookie = true, .bucket = 37};
    (void)state;

    svc_init(&s, "app", SY_STICKY_COOKIE, NULL, NULL);
    size_t n = sy_split_set_cookie(buf, &s.svc, &sp, false);
    buf[n] = '\0';
    assert_string_equal(buf, "Set-Cookie: sy_slot_app=green.37; Path=/; HttpOnly; "
                        "SameSite=Lax\r\n");
    sp.slot = SY_SLOT_BLUE;
    sp.bucket = 0;
    n = sy_split_set_cookie(buf, &s.svc, &sp, true);
    buf[n] = '\0';
    assert_string_equal(buf, "Set-Cookie: sy_slot_app=blue.0; Path=/; HttpOnly; SameSite=Lax; "
                        "Secure\r\n");
    sp.slot = SY_SLOT_GREEN;
    sp.bucket = 99;
    n = sy_split_set_cookie(buf, &s.svc, &sp, true);
    assert_true(n <= SY_SPLIT_SET_COOKIE_MAX(3));
    /* what we write, we read back */
    struct req r;
    char lines[160];
    enum sy_slot slot;
    buf[n] = '\0';
    snprintf(lines, sizeof(lines), "Cookie: %.*s\r\n", (int)strcspn(buf + 12, ";"), buf + 12);
    parse(&r, lines);
    assert_int_equal(sy_split_cookie(&s.svc, &r.head, r.buf, &slot), 99);
    assert_int_equal(slot, SY_SLOT_GREEN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_zero_is_the_active_slot),
        cmocka_unit_test(test_random_share_follows_the_weight),
        cmocka_unit_test(test_sticky_client_ip),
        cmocka_unit_test(test_sticky_header),
        cmocka_unit_test(test_force_header),
        cmocka_unit_test(test_cookie_parsing),
        cmocka_unit_test(test_cookie_split),
        cmocka_unit_test(test_cookie_client_keeps_its_slot),
        cmocka_unit_test(test_set_cookie_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
