/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_cidr.c: prefix parsing (host bits zeroed, errors), matching of IPv4,
 * IPv6 and IPv4-mapped IPv6 addresses, longest-prefix choice in a list,
 * and sy_cidr_ip_from_text().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "core/cidr.h"

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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
