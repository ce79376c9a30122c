/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_cidr.c: prefix parsing (host bits zeroed, errors), matching of IPv4,
 * IPv6 and IPv4-mapped IPv6 addresses, longest-prefix choice in a list,
 * sy_cidr_ip_from_text(), and the compiled table (sy_cidr_table_*): edge
 * cases, then a seeded cross-check against the linear sy_cidr_list_match.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "core/cidr.h"
#include "test_util.h"

static struct sy_cidr
cidr(const char *text)
{
    struct sy_cidr c;
    char err[128] = "";

    if (sy_cidr_parse(text, &c, err, sizeof(err)) != 0)
        fail_msg("%s: %s", text, err);
    return c;
}

static bool
matches(const char *prefix, const char *ip)
{
    struct sockaddr_storage ss;
    struct sy_cidr c = cidr(prefix);

    assert_int_equal(sy_cidr_ip_from_text(ip, strlen(ip), &ss), 0);
    return sy_cidr_match(&c, (struct sockaddr *)&ss);
}

static void
test_parse(void **state)
{
    struct sy_cidr c;
    const uint8_t net[4] = {10, 1, 0, 0};
    uint8_t v6[16];

    (void)state;
    c = cidr("10.1.2.3/16");
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 16);
    assert_memory_equal(c.addr, net, 4);
    c = cidr("192.168.1.7");
    assert_int_equal(c.prefix, 32);
    c = cidr("2001:db8:ffff::1/33");
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.prefix, 33);
    inet_pton(AF_INET6, "2001:db8:8000::", v6);
    assert_memory_equal(c.addr, v6, 16);
    c = cidr("::1");
    assert_int_equal(c.prefix, 128);
    c = cidr("0.0.0.0/0");
    assert_int_equal(c.prefix, 0);
}

static void
parse_err(const char *text, const char *expect)
{
    struct sy_cidr c;
    char err[128] = "";

    assert_int_equal(sy_cidr_parse(text, &c, err, sizeof(err)), -1);
    assert_string_equal(err, expect);
}

static void
test_parse_errors(void **state)
{
    (void)state;
    parse_err("10.0.0.0/33", "invalid prefix length 33");
    parse_err("::/129", "invalid prefix length 129");
    parse_err("10.0.0.0/", "invalid prefix length \"\"");
    parse_err("10.0.0.0/x", "invalid prefix length \"x\"");
    parse_err("10.0.0.0/-1", "invalid prefix length \"-1\"");
    parse_err("10.0.0/8", "invalid address \"10.0.0\"");
    parse_err("example.com", "invalid address \"example.com\"");
}

static void
test_match_v4(void **state)
{
    (void)state;
    assert_true(matches("10.0.0.0/8", "10.200.3.4"));
    assert_false(matches("10.0.0.0/8", "11.0.0.1"));
    assert_true(matches("192.168.1.0/25", "192.168.1.127"));
    assert_false(matches("192.168.1.0/25", "192.168.1.128"));
    assert_true(matches("0.0.0.0/0", "8.8.8.8"));
    assert_true(matches("1.2.3.4", "1.2.3.4"));
    assert_false(matches("1.2.3.4", "1.2.3.5"));
}

static void
test_match_v6(void **state)
{
    (void)state;
    assert_true(matches("2001:db8::/32", "2001:db8:1::5"));
    assert_false(matches("2001:db8::/32", "2001:db9::5"));
    assert_true(matches("::1", "::1"));
    assert_false(matches("2001:db8::/32", "10.0.0.1"));
    assert_false(matches("10.0.0.0/8", "2001:db8::1"));
}

static void
test_match_mapped(void **state)
{
    (void)state;
    assert_true(matches("10.0.0.0/8", "::ffff:10.9.9.9"));
    assert_false(matches("10.0.0.0/8", "::ffff:11.9.9.9"));
    assert_true(matches("::ffff:0:0/96", "10.9.9.9"));
    assert_true(matches("127.0.0.1/32", "::ffff:127.0.0.1"));
}

static void
test_list_longest(void **state)
{
    struct sy_cidr list[4];
    struct sockaddr_storage ss;

    (void)state;
    list[0] = cidr("10.0.0.0/8");
    list[1] = cidr("10.1.0.0/16");
    list[2] = cidr("2001:db8::/32");
    list[3] = cidr("10.1.2.0/24");
    sy_cidr_ip_from_text("10.1.2.3", 8, &ss);
    assert_int_equal(sy_cidr_list_match(list, 4, (struct sockaddr *)&ss), 3);
    sy_cidr_ip_from_text("10.1.9.3", 8, &ss);
    assert_int_equal(sy_cidr_list_match(list, 4, (struct sockaddr *)&ss), 1);
    sy_cidr_ip_from_text("::ffff:10.2.0.1", 15, &ss);
    assert_int_equal(sy_cidr_list_match(list, 4, (struct sockaddr *)&ss), 0);
    sy_cidr_ip_from_text("2001:db8::1", 11, &ss);
    assert_int_equal(sy_cidr_list_match(list, 4, (struct sockaddr *)&ss), 2);
    sy_cidr_ip_from_text("192.0.2.1", 9, &ss);
    assert_int_equal(sy_cidr_list_match(list, 4, (struct sockaddr *)&ss), -1);
    assert_int_equal(sy_cidr_list_match(list, 0, (struct sockaddr *)&ss), -1);
}

static void
test_ip_from_text(void **state)
{
    struct sockaddr_storage ss;
    const char *text = "10.0.0.1, 10.0.0.2";

    (void)state;
    assert_int_equal(sy_cidr_ip_from_text(text, 8, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(sy_cidr_ip_from_text("fe80::1", 7, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(sy_cidr_ip_from_text(text, strlen(text), &ss), -1);
    assert_int_equal(sy_cidr_ip_from_text("", 0, &ss), -1);
    assert_int_equal(sy_cidr_ip_from_text("unknown", 7, &ss), -1);
}

/* --- compiled table ------------------------------------------------------ */

/* The table's bound on its size, from cidr.h. */
static void
assert_bytes_bounded(const struct sy_cidr_table *t, size_t n)
{
    assert_true(sy_cidr_table_bytes(t) > 0);
    assert_true(sy_cidr_table_bytes(t) <= 3072 + 52 * n);
}

/* Builds a table from text prefixes and values (values NULL: the indexes). */
static struct sy_cidr_table *
table(const char *const *text, const int *values, size_t n)
{
    struct sy_cidr list[16];
    struct sy_cidr_table *t;

    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        list[i] = cidr(text[i]);
    t = sy_cidr_table_build(list, values, n);
    assert_non_null(t);
    assert_bytes_bounded(t, n);
    return t;
}

/* Looks ip up; checks the value and, when one matched, the prefix length. */
static void
expect(const struct sy_cidr_table *t, const char *ip, int value, unsigned prefix_len)
{
    struct sockaddr_storage ss;
    unsigned len = 999;

    if (sy_cidr_ip_from_text(ip, strlen(ip), &ss) != 0)
        fail_msg("bad address %s", ip);
    if (sy_cidr_table_lookup(t, (struct sockaddr *)&ss, &len) != value)
        fail_msg("%s: value %d, expected %d", ip,
                 sy_cidr_table_lookup(t, (struct sockaddr *)&ss, NULL), value);
    assert_int_equal(len, value >= 0 ? prefix_len : 0);
}

static void
test_table_v4(void **state)
{
    static const char *const list[] = {
        "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3", "192.168.0.0/16",
        "255.255.255.255/32", "0.0.0.0/32", "172.16.0.0/12",
    };
    static const int values[] = {1, 0, 1, 0, 1, 0, 1, 0};
    struct sy_cidr_table *t = table(list, values, 8);

    (void)state;
    expect(t, "10.9.9.9", 1, 8);
    expect(t, "10.1.9.9", 0, 16);
    expect(t, "10.1.2.4", 1, 24);
    expect(t, "10.1.2.3", 0, 32);
    expect(t, "10.1.2.2", 1, 24);
    expect(t, "10.1.3.0", 0, 16);
    expect(t, "10.1.1.255", 0, 16);
    expect(t, "10.255.255.255", 1, 8);
    expect(t, "11.0.0.0", -1, 0);
    expect(t, "9.255.255.255", -1, 0);
    expect(t, "255.255.255.255", 0, 32);
    expect(t, "255.255.255.254", -1, 0);
    expect(t, "0.0.0.0", 1, 32);
    expect(t, "0.0.0.1", -1, 0);
    expect(t, "172.31.255.255", 0, 12);
    expect(t, "172.32.0.0", -1, 0);
    /* IPv4 prefixes do not match IPv6 addresses outside the mapped window */
    expect(t, "::a01:203", -1, 0);
    expect(t, "2001:db8::1", -1, 0);
    sy_cidr_table_free(t);

    /* 0.0.0.0/0 under everything else */
    static const char *const slash0[] = {"0.0.0.0/0", "8.8.8.0/24"};
    t = table(slash0, NULL, 2);
    expect(t, "1.2.3.4", 0, 0);
    expect(t, "8.8.8.8", 1, 24);
    expect(t, "255.255.255.255", 0, 0);
    expect(t, "::ffff:8.8.8.8", 1, 24);
    expect(t, "::1", -1, 0);
    sy_cidr_table_free(t);
}

static void
test_table_v6(void **state)
{
    static const char *const list[] = {
        "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64", "2001:db8:1:2::7",
        "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10", "::/128",
    };
    struct sy_cidr_table *t = table(list, NULL, 8);

    (void)state;
    expect(t, "2001:db8:ffff::1", 0, 32);
    expect(t, "2001:db8:1:ffff::1", 1, 48);
    expect(t, "2001:db8:1:2::8", 2, 64);
    expect(t, "2001:db8:1:2::7", 3, 128);
    expect(t, "2001:db8:1:2::6", 2, 64);
    expect(t, "2001:db9::", -1, 0);
    expect(t, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", -1, 0);
    expect(t, "::1", 4, 128);
    expect(t, "::2", -1, 0);
    expect(t, "::", 7, 128);
    expect(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 5, 128);
    expect(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", -1, 0);
    expect(t, "febf:ffff::1", 6, 10);
    expect(t, "fec0::", -1, 0);
    /* IPv6 prefixes outside the window do not match IPv4 addresses */
    expect(t, "0.0.0.1", -1, 0);
    expect(t, "10.0.0.1", -1, 0);
    sy_cidr_table_free(t);

    static const char *const slash0[] = {"2001:db8::/32", "::/0"};
    t = table(slash0, NULL, 2);
    expect(t, "2001:db8::1", 0, 32);
    expect(t, "2001:db9::1", 1, 0);
    expect(t, "::", 1, 0);
    /* ::/0 holds ::ffff:0:0/96, so every IPv4 address too */
    expect(t, "10.1.2.3", 1, 0);
    expect(t, "::ffff:10.1.2.3", 1, 0);
    sy_cidr_table_free(t);
}

static void
test_table_mapped(void **state)
{
    static const char *const list[] = {
        "10.0.0.0/8", "::ffff:10.1.0.0/112", "::ffff:0:0/96", "::fffe:0:0/95",
        "::1:0:0:0/128",
    };
    struct sy_cidr_table *t = table(list, NULL, 5);
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    unsigned len;

    (void)state;
    expect(t, "10.9.9.9", 0, 8);
    expect(t, "::ffff:10.9.9.9", 0, 8);
    expect(t, "10.1.9.9", 1, 112);
    expect(t, "::ffff:10.1.9.9", 1, 112);
    expect(t, "11.0.0.1", 2, 96);
    expect(t, "::ffff:11.0.0.1", 2, 96);
    expect(t, "0.0.0.0", 2, 96);
    expect(t, "255.255.255.255", 2, 96);
    /* ::fffe:0:0/95 holds the window too but is shorter than ::ffff:0:0/96 */
    expect(t, "::fffe:ffff:ffff", 3, 95);
    expect(t, "::fffe:0:0", 3, 95);
    /* the addresses on either side of the window */
    expect(t, "::fffd:ffff:ffff", -1, 0);
    expect(t, "::1:0:0:0", 4, 128);
    expect(t, "::1:0:0:1", -1, 0);
    sy_cidr_table_free(t);

    /* a prefix from the window's first address, and the range past the window gets the
     * answer of the window's end, not of its start */
    static const char *const from_start[] = {"::/0", "0.0.0.0/8", "::ffff:0:0/97"};
    t = table(from_start, NULL, 3);
    expect(t, "0.1.2.3", 1, 8);
    expect(t, "1.2.3.4", 2, 97);
    expect(t, "200.2.3.4", 0, 0);
    expect(t, "::1:0:0:0", 0, 0);
    expect(t, "ffff::1", 0, 0);
    expect(t, "::fffe:ffff:ffff", 0, 0);
    sy_cidr_table_free(t);

    /* the window's own edges, reached through struct sockaddr_in directly */
    static const char *const edges[] = {"0.0.0.0/32", "255.255.255.255/32"};
    t = table(edges, NULL, 2);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0);
    assert_int_equal(sy_cidr_table_lookup(t, (struct sockaddr *)&sin, &len), 0);
    assert_int_equal(len, 32);
    sin.sin_addr.s_addr = htonl(UINT32_MAX);
    assert_int_equal(sy_cidr_table_lookup(t, (struct sockaddr *)&sin, &len), 1);
    sin.sin_addr.s_addr = htonl(UINT32_MAX - 1);
    assert_int_equal(sy_cidr_table_lookup(t, (struct sockaddr *)&sin, &len), -1);
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:255.255.255.255", &sin6.sin6_addr);
    assert_int_equal(sy_cidr_table_lookup(t, (struct sockaddr *)&sin6, NULL), 1);
    inet_pton(AF_INET6, "::ffff:0.0.0.0", &sin6.sin6_addr);
    assert_int_equal(sy_cidr_table_lookup(t, (struct sockaddr *)&sin6, NULL), 0);
    sy_cidr_table_free(t);
}

static void
test_table_duplicates(void **state)
{
    static const char *const list[] = {
        "10.0.0.0/8", "10.0.0.0/8", "10.9.9.9/8", "::ffff:10.0.0.0/104", "2001:db8::/32",
        "2001:db8:0:0:1::/32", "::ffff:192.168.0.0/112", "192.168.0.0/16",
    };
    static const int values[] = {3, 4, 5, 6, 7, 8, 9, 10};
    struct sy_cidr_table *t = table(list, values, 8);
    struct sy_cidr c[2];

    (void)state;
    /* the first wins, IPv4 and mapped forms alike; its length is reported as written */
    expect(t, "10.1.1.1", 3, 8);
    expect(t, "::ffff:10.1.1.1", 3, 8);
    expect(t, "2001:db8::5", 7, 32);
    expect(t, "192.168.3.4", 9, 112);
    sy_cidr_table_free(t);

    /* host bits set in a hand-built prefix are ignored, as sy_cidr_match does */
    c[0] = cidr("10.0.0.0/8");
    c[0].addr[3] = 77;
    c[1] = cidr("10.0.0.0/8");
    t = sy_cidr_table_build(c, (const int[]){1, 2}, 2);
    assert_non_null(t);
    expect(t, "10.200.0.1", 1, 8);
    sy_cidr_table_free(t);
}

/* n /24s (every other one from 10.0.0.0) with values 0, 1, 2, 0, ..., each whole or as
 * two /25s with its value. */
static struct sy_cidr_table *
blocks(size_t n, bool halves)
{
    struct sy_cidr list[128];
    int values[128];
    struct sy_cidr_table *t;
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        for (size_t h = 0; h < (halves ? 2u : 1u); h++) {
            list[k] = cidr("10.0.0.0/24");
            list[k].addr[1] = (uint8_t)(i >> 7);
            list[k].addr[2] = (uint8_t)(2 * i);
            list[k].addr[3] = (uint8_t)(128 * h);
            list[k].prefix = halves ? 25 : 24;
            values[k++] = (int)(i % 3);
        }
    }
    t = sy_cidr_table_build(list, values, k);
    assert_non_null(t);
    return t;
}

static void
test_table_merges(void **state)
{
    struct sy_cidr_table *whole = blocks(64, false), *halves = blocks(64, true);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    unsigned len;

    (void)state;
    /* two /25s with the same value are one range: as small as the /24s */
    assert_int_equal(sy_cidr_table_bytes(halves), sy_cidr_table_bytes(whole));
    for (uint32_t a = 0x0a000000; a < 0x0a008000; a += 64) {
        int want = (a >> 8) % 2 == 0 ? (int)((a >> 9) % 64 % 3) : -1;

        sin.sin_addr.s_addr = htonl(a);
        assert_int_equal(sy_cidr_table_lookup(halves, (struct sockaddr *)&sin, &len), want);
        assert_int_equal(len, want >= 0 ? 25 : 0);
        assert_int_equal(sy_cidr_table_lookup(whole, (struct sockaddr *)&sin, &len), want);
        assert_int_equal(len, want >= 0 ? 24 : 0);
    }
    sy_cidr_table_free(whole);
    sy_cidr_table_free(halves);
}

/* Every length on one address: 129 prefixes nested in each other, 33 for IPv4. An address
 * that first differs from it at bit p is held by the /p and nothing longer. */
static void
test_table_all_lengths(void **state)
{
    struct sy_cidr list[129 + 33];
    struct sy_cidr_table *t;
    struct sockaddr_in6 sin6;
    struct sockaddr_in sin;
    const uint8_t v4[4] = {203, 0, 113, 77};
    unsigned len;

    (void)state;
    for (unsigned p = 0; p <= 128; p++) {
        list[p] = cidr("2001:db8::1");
        list[p].prefix = p;
        if (p <= 32) {
            list[129 + p] = cidr("203.0.113.77");
            list[129 + p].prefix = p;
        }
    }
    t = sy_cidr_table_build(list, NULL, 129 + 33);
    assert_non_null(t);
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    for (unsigned p = 0; p <= 128; p++) {
        memcpy(&sin6.sin6_addr, list[128].addr, 16);
        if (p < 128)
            sin6.sin6_addr.s6_addr[p / 8] ^= (uint8_t)(0x80 >> (p % 8));
        assert_int_equal(sy_cidr_table_lookup(t, (struct sockaddr *)&sin6, &len), (int)p);
        assert_int_equal(len, p);
    }
    for (unsigned p = 0; p <= 32; p++) {
        uint8_t a[4];

        memcpy(a, v4, 4);
        if (p < 32)
            a[p / 8] ^= (uint8_t)(0x80 >> (p % 8));
        memcpy(&sin.sin_addr, a, 4);
        assert_int_equal(sy_cidr_table_lookup(t, (struct sockaddr *)&sin, &len), 129 + (int)p);
        assert_int_equal(len, p);
    }
    sy_cidr_table_free(t);
}

/* The most ranges n prefixes make, 2n + 1 (single addresses with gaps between), in trees
 * 4 (IPv4) and 5 (IPv6) levels deep: every address on and around them, and the size. */
static void
test_table_large(void **state)
{
    enum { N = 5000 };
    struct sy_cidr *list = calloc(N, sizeof(*list));
    struct sy_cidr_table *t4, *t6;
    const uint32_t base4 = 0xc6120000;    /* 198.18.0.0 */

    (void)state;
    assert_non_null(list);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t a = htonl(base4 + 2 * i);

        list[i].family = AF_INET;
        list[i].prefix = 32;
        memcpy(list[i].addr, &a, 4);
    }
    t4 = sy_cidr_table_build(list, NULL, N);
    assert_non_null(t4);
    for (uint32_t i = 0; i < N; i++) {
        list[i] = cidr("2001:db8::");
        list[i].addr[14] = (uint8_t)((2 * i) >> 8);
        list[i].addr[15] = (uint8_t)(2 * i);
    }
    t6 = sy_cidr_table_build(list, NULL, N);
    assert_non_null(t6);
    assert_bytes_bounded(t4, N);
    assert_bytes_bounded(t6, N);
    /* the sizes cidr.h gives: about 24 and 52 bytes a prefix */
    assert_true(sy_cidr_table_bytes(t4) <= 1024 + 25 * N);
    assert_true(sy_cidr_table_bytes(t6) <= 2048 + 52 * N);
    for (uint32_t a = 0; a <= 2 * N + 1; a++) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(base4 - 1 + a)};
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
        int want = a % 2 == 1 && a < 2 * N ? (int)(a / 2) : -1;
        uint32_t a6 = a - 1;

        assert_int_equal(sy_cidr_table_lookup(t4, (struct sockaddr *)&sin, NULL), want);
        memcpy(&sin6.sin6_addr, list[0].addr, 16);
        sin6.sin6_addr.s6_addr[14] = (uint8_t)(a6 >> 8);
        sin6.sin6_addr.s6_addr[15] = (uint8_t)a6;
        if (a == 0)
            inet_pton(AF_INET6, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", &sin6.sin6_addr);
        assert_int_equal(sy_cidr_table_lookup(t6, (struct sockaddr *)&sin6, NULL), want);
    }
    sy_cidr_table_free(t4);
    sy_cidr_table_free(t6);
    free(list);
}

/* Every list length from 1 to 330 single addresses with gaps (3 to 661 ranges), so every
 * way of filling the last node of a layer turns up: the first two IPv6 layers (8 and 72
 * ranges a node) and the first IPv4 one (16, then 272). Every address on and around them. */
static void
test_table_sizes(void **state)
{
    enum { N = 330 };
    struct sy_cidr list[N];
    uint8_t base[16];

    (void)state;
    inet_pton(AF_INET6, "2001:db8::", base);
    for (size_t n = 1; n <= N; n++) {
        for (int family = AF_INET; family != 0; family = family == AF_INET ? AF_INET6 : 0) {
            struct sy_cidr_table *t;

            for (size_t i = 0; i < n; i++) {
                memset(&list[i], 0, sizeof(list[i]));
                list[i].family = family;
                list[i].prefix = family == AF_INET ? 32 : 128;
                if (family == AF_INET6)
                    memcpy(list[i].addr, base, 16);
                list[i].addr[family == AF_INET ? 2 : 14] = (uint8_t)((2 * i + 2) >> 8);
                list[i].addr[family == AF_INET ? 3 : 15] = (uint8_t)(2 * i + 2);
            }
            t = sy_cidr_table_build(list, NULL, n);
            assert_non_null(t);
            for (size_t a = 1; a <= 2 * n + 2; a++) {
                struct sockaddr_in sin = {.sin_family = AF_INET};
                struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
                const struct sockaddr *sa = family == AF_INET ? (struct sockaddr *)&sin
                                                              : (struct sockaddr *)&sin6;
                int want = a % 2 == 0 && a <= 2 * n ? (int)(a / 2 - 1) : -1;

                sin.sin_addr.s_addr = htonl((uint32_t)a);
                memcpy(&sin6.sin6_addr, base, 16);
                sin6.sin6_addr.s6_addr[14] = (uint8_t)(a >> 8);
                sin6.sin6_addr.s6_addr[15] = (uint8_t)a;
                if (sy_cidr_table_lookup(t, sa, NULL) != want)
                    fail_msg("family %d, n %zu, address %zu: %d, expected %d", family, n, a,
                             sy_cidr_table_lookup(t, sa, NULL), want);
            }
            sy_cidr_table_free(t);
        }
    }
}

static void
test_table_empty(void **state)
{
    struct sy_cidr_table *t = sy_cidr_table_build(NULL, NULL, 0);
    struct sockaddr_un sun;
    static const char *const one[] = {"0.0.0.0/0"};

    (void)state;
    assert_non_null(t);
    assert_bytes_bounded(t, 0);
    expect(t, "10.0.0.1", -1, 0);
    expect(t, "::ffff:10.0.0.1", -1, 0);
    expect(t, "::", -1, 0);
    expect(t, "2001:db8::1", -1, 0);
    sy_cidr_table_free(t);
    sy_cidr_table_free(NULL);

    /* a family that has no address matches nothing */
    t = table(one, NULL, 1);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_int_equal(sy_cidr_table_lookup(t, (struct sockaddr *)&sun, NULL), -1);
    sy_cidr_table_free(t);
}

static void
test_table_errors(void **state)
{
    struct sy_cidr c[2];

    (void)state;
    c[0] = cidr("10.0.0.0/8");
    c[1] = cidr("::/0");
    errno = 0;
    assert_null(sy_cidr_table_build(c, (const int[]){0, -1}, 2));
    assert_int_equal(errno, EINVAL);
    c[1].prefix = 129;
    errno = 0;
    assert_null(sy_cidr_table_build(c, NULL, 2));
    assert_int_equal(errno, EINVAL);
    c[0].prefix = 33;
    c[1].prefix = 0;
    errno = 0;
    assert_null(sy_cidr_table_build(c, NULL, 2));
    assert_int_equal(errno, EINVAL);
    c[0].prefix = 8;
    c[1].family = AF_UNIX;
    errno = 0;
    assert_null(sy_cidr_table_build(c, NULL, 2));
    assert_int_equal(errno, EINVAL);
}

/*
 * Random prefixes and addresses, answers compared with sy_cidr_list_match. Prefixes grow
 * from a few seeds (flipping random low bits, random lengths, host bits left set) so that
 * they nest, overlap and repeat; addresses are inside prefixes, on their first and last
 * addresses and one beyond, near the mapped window, or anywhere.
 */
static const uint8_t seeds[][16] = {
    {0x20, 0x01, 0x0d, 0xb8},                                   /* 2001:db8:: */
    {0xfe, 0x80},                                               /* fe80:: */
    {0},                                                        /* :: */
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10},             /* ::ffff:10.0.0.0 */
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168},       /* ::ffff:192.168.0.0 */
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff}, /* below window */
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 1},                             /* ::1:0:0:0, above it */
    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},           /* the top address */
};
#define NSEEDS (sizeof(seeds) / sizeof(seeds[0]))

/* The seeds a round draws from (a bit each): a few, so that prefixes crowd together. */
static unsigned seed_set;

/* A copy of a seed with some of its last `span` bits flipped. */
static void
near_seed(uint64_t *rs, uint8_t out[16])
{
    unsigned span = (unsigned)(rnd(rs) % 129), seed;

    do
        seed = (unsigned)(rnd(rs) % NSEEDS);
    while ((seed_set & 1u << seed) == 0);
    memcpy(out, seeds[seed], 16);
    for (unsigned flips = (unsigned)(rnd(rs) % 6); flips > 0 && span > 0; flips--) {
        unsigned bit = 127 - (unsigned)(rnd(rs) % span);

        out[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
    }
    if (rnd(rs) % 4 == 0)
        for (unsigned i = 16 - (unsigned)(rnd(rs) % 17); i < 16; i++)
            out[i] = (uint8_t)rnd(rs);
}

static bool
is_mapped(const uint8_t a[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    return memcmp(a, mapped, 12) == 0;
}

static struct sy_cidr
random_prefix(uint64_t *rs)
{
    struct sy_cidr c;
    uint8_t a[16];

    memset(&c, 0, sizeof(c));
    near_seed(rs, a);
    if (is_mapped(a) && rnd(rs) % 2 == 0) {
        c.family = AF_INET;
        memcpy(c.addr, a + 12, 4);
        c.prefix = (unsigned)(rnd(rs) % 33);
    } else {
        c.family = AF_INET6;
        memcpy(c.addr, a, 16);
        c.prefix = (unsigned)(rnd(rs) % 129);
    }
    /* favour long prefixes, as blocklists do */
    if (rnd(rs) % 3 == 0)
        c.prefix = c.family == AF_INET ? 32 : 128;
    return c;
}

/* The 16-byte form of c's first (or last) address, offset by delta (-1, 0, +1). */
static void
prefix_edge(const struct sy_cidr *c, bool last, int delta, uint8_t out[16])
{
    unsigned bits = c->prefix + (c->family == AF_INET ? 96 : 0);

    if (c->family == AF_INET) {
        memcpy(out, seeds[3], 12);
        memcpy(out + 12, c->addr, 4);
    } else {
        memcpy(out, c->addr, 16);
    }
    for (unsigned bit = bits; bit < 128; bit++) {
        uint8_t m = (uint8_t)(0x80 >> (bit % 8));

        out[bit / 8] = last ? out[bit / 8] | m : out[bit / 8] & ~m;
    }
    for (int i = 15; delta != 0 && i >= 0; i--) {
        out[i] = (uint8_t)(out[i] + delta);
        if (out[i] != (delta > 0 ? 0 : 0xff))
            break;
    }
}

/* An address as AF_INET when it is in the window (usually), else AF_INET6. */
static void
to_sockaddr(const uint8_t a[16], bool prefer_v4, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (is_mapped(a) && prefer_v4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a + 12, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a, 16);
    }
}

static void
random_address(uint64_t *rs, const struct sy_cidr *list, size_t n, struct sockaddr_storage *ss)
{
    uint8_t a[16];
    unsigned kind = (unsigned)(rnd(rs) % 4);

    if (n > 0 && kind < 2) {
        const struct sy_cidr *c = &list[rnd(rs) % n];

        prefix_edge(c, rnd(rs) % 2 == 0, kind == 0 ? 0 : (int)(rnd(rs) % 3) - 1, a);
        if (kind == 0 && rnd(rs) % 2 == 0) {
            /* anywhere inside c: random host bits */
            unsigned bits = c->prefix + (c->family == AF_INET ? 96 : 0);

            for (unsigned bit = bits; bit < 128; bit++)
                if (rnd(rs) % 2 == 0)
                    a[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
        }
    } else if (kind == 2) {
        near_seed(rs, a);
    } else {
        for (int i = 0; i < 16; i++)
            a[i] = (uint8_t)rnd(rs);
        if (rnd(rs) % 2 == 0)
            memcpy(a, seeds[3], 12);
    }
    to_sockaddr(a, rnd(rs) % 4 != 0, ss);
}

/* One round: n random prefixes, naddr addresses, two tables (indexes and values 0-2). */
static void
cross_check(uint64_t *rs, size_t n, size_t naddr)
{
    struct sy_cidr *list = calloc(n > 0 ? n : 1, sizeof(*list));
    int *values = calloc(n > 0 ? n : 1, sizeof(*values));
    struct sy_cidr_table *by_index, *by_value;

    assert_non_null(list);
    assert_non_null(values);
    for (size_t i = 0; i < n; i++) {
        /* some exact duplicates of earlier prefixes */
        list[i] = i > 0 && rnd(rs) % 8 == 0 ? list[rnd(rs) % i] : random_prefix(rs);
        values[i] = (int)(rnd(rs) % 3);
    }
    by_index = sy_cidr_table_build(list, NULL, n);
    by_value = sy_cidr_table_build(list, values, n);
    assert_non_null(by_index);
    assert_non_null(by_value);
    assert_bytes_bounded(by_index, n);
    assert_bytes_bounded(by_value, n);
    for (size_t k = 0; k < naddr; k++) {
        struct sockaddr_storage ss;
        const struct sockaddr *sa = (const struct sockaddr *)&ss;
        unsigned len = 999, vlen = 999;
        long want;
        int got, vgot;

        random_address(rs, list, n, &ss);
        want = sy_cidr_list_match(list, n, sa);
        got = sy_cidr_table_lookup(by_index, sa, &len);
        vgot = sy_cidr_table_lookup(by_value, sa, &vlen);
        if (got != want) {
            char text[INET6_ADDRSTRLEN] = "?";

            inet_ntop(ss.ss_family,
                      ss.ss_family == AF_INET
                          ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                          : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr,
                      text, sizeof(text));
            fail_msg("n %zu, %s: table %d, list %ld", n, text, got, want);
        }
        assert_int_equal(vgot, want >= 0 ? values[want] : -1);
        assert_int_equal(len, want >= 0 ? list[want].prefix : 0);
        assert_int_equal(vlen, len);
    }
    sy_cidr_table_free(by_index);
    sy_cidr_table_free(by_value);
    free(list);
    free(values);
}

static void
test_table_random(void **state)
{
    uint64_t rs = 0x5eed0c1d5eedull;

    (void)state;
    /* many small lists, where every boundary case turns up, then two big ones */
    for (int round = 0; round < 400; round++) {
        do
            seed_set = (unsigned)rnd(&rs) & ((1u << NSEEDS) - 1);
        while (seed_set == 0);
        cross_check(&rs, (size_t)(rnd(&rs) % 40), 300);
    }
    seed_set = (1u << NSEEDS) - 1;
    cross_check(&rs, 1000, 4000);
    cross_check(&rs, 4000, 2500);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_match_v4),
        cmocka_unit_test(test_match_v6),
        cmocka_unit_test(test_match_mapped),
        cmocka_unit_test(test_list_longest),
        cmocka_unit_test(test_ip_from_text),
        cmocka_unit_test(test_table_v4),
        cmocka_unit_test(test_table_v6),
        cmocka_unit_test(test_table_mapped),
        cmocka_unit_test(test_table_duplicates),
        cmocka_unit_test(test_table_merges),
        cmocka_unit_test(test_table_all_lengths),
        cmocka_unit_test(test_table_large),
        cmocka_unit_test(test_table_sizes),
        cmocka_unit_test(test_table_empty),
        cmocka_unit_test(test_table_errors),
        cmocka_unit_test(test_table_random),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
