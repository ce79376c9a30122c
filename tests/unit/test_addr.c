/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_addr.c: sy_addr_parse() on IPv4, bracketed IPv6, "*", host names,
 * and each error it reports; sy_addr_ip_text() for both families.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "core/addr.h"

static void
parse_ok(const char *text, int family, const char *ip, int port)
{
    struct sy_addr a;
    char err[128] = "", buf[64];

    assert_int_equal(sy_addr_parse(text, &a, err, sizeof(err)), 0);
    assert_string_equal(a.text, text);
    assert_int_equal(a.ss.ss_family, family);
    assert_int_equal(sy_addr_ip_text((struct sockaddr *)&a.ss, buf, sizeof(buf)), strlen(ip));
    assert_string_equal(buf, ip);
    if (family == AF_INET) {
        assert_int_equal(a.len, sizeof(struct sockaddr_in));
        assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), port);
    } else {
        assert_int_equal(a.len, sizeof(struct sockaddr_in6));
        assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), port);
    }
}

static void
parse_err(const char *text, const char *expect)
{
    struct sy_addr a;
    char err[128] = "";

    assert_int_equal(sy_addr_parse(text, &a, err, sizeof(err)), -1);
    assert_string_equal(err, expect);
}

static void
test_ipv4(void **state)
{
    (void)state;
    parse_ok("127.0.0.1:8080", AF_INET, "127.0.0.1", 8080);
    parse_ok("10.1.2.3:1", AF_INET, "10.1.2.3", 1);
    parse_ok("0.0.0.0:65535", AF_INET, "0.0.0.0", 65535);
}

static void
test_wildcard(void **state)
{
    (void)state;
    parse_ok("*:80", AF_INET, "0.0.0.0", 80);
}

static void
test_ipv6(void **state)
{
    (void)state;
    parse_ok("[::1]:9901", AF_INET6, "::1", 9901);
    parse_ok("[2001:db8::5]:443", AF_INET6, "2001:db8::5", 443);
    parse_ok("[::ffff:10.0.0.1]:80", AF_INET6, "::ffff:10.0.0.1", 80);
}

static void
test_hostname(void **state)
{
    struct sy_addr a;
    char err[128];

    (void)state;
    assert_int_equal(sy_addr_parse("localhost:80", &a, err, sizeof(err)), 0);
    assert_string_equal(a.text, "localhost:80");
    assert_true(a.ss.ss_family == AF_INET || a.ss.ss_family == AF_INET6);
}

/* RFC 1123 names, as routes' hosts and redis.url's host are checked. */
static void
test_is_hostname(void **state)
{
    static const char *const good[] = {"localhost", "cache.internal", "a-b.example.COM",
                                       "x1", "0.example"};
    static const char *const bad[] = {"", ".", "a..b", "-a.example", "a-.example",
                                      "a.example.", "a_b.example", "a b", "caf\xc3\xa9.example"};
    char label[80], name[300];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(sy_addr_is_hostname(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sy_addr_is_hostname(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    memset(label, 'a', 64);
    label[63] = '\0';
    assert_true(sy_addr_is_hostname(label));        /* 63 bytes a label */
    label[63] = 'a';
    label[64] = '\0';
    assert_false(sy_addr_is_hostname(label));
    memset(name, 'a', sizeof(name));
    for (size_t i = 63; i < sizeof(name); i += 64)
        name[i] = '.';
    name[253] = '\0';                                /* 253 bytes a name */
    assert_true(sy_addr_is_hostname(name));
    name[253] = 'a';
    name[254] = '\0';
    assert_false(sy_addr_is_hostname(name));
}

static void
test_errors(void **state)
{
    (void)state;
    parse_err("127.0.0.1:99999", "invalid port 99999");
    parse_err("127.0.0.1:0", "invalid port 0");
    parse_err("127.0.0.1:http", "invalid port \"http\"");
    parse_err("127.0.0.1", "missing port");
    parse_err("127.0.0.1:", "missing port");
    parse_err("[::1]", "missing port");
    parse_err(":80", "missing host");
    parse_err("::1:80", "IPv6 address needs brackets: \"[addr]:port\"");
    parse_err("[::1:80", "invalid address \"[::1:80\"");
    parse_err("[nothex]:80", "invalid IPv6 address \"nothex\"");
    parse_err("no-such-host.invalid:80", "cannot resolve host \"no-such-host.invalid\"");
    parse_err("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1",
              "address too long");
}

static void
test_ip_text_other_family(void **state)
{
    struct sockaddr_storage ss = {.ss_family = AF_UNIX};
    char buf[64] = "x";

    (void)state;
    assert_int_equal(sy_addr_ip_text((struct sockaddr *)&ss, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_wildcard),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_hostname),
        cmocka_unit_test(test_is_hostname),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ip_text_other_family),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
