/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_forwarded.c: the client behind trusted proxies (http/forwarded.c):
 * the rightmost untrusted address wins; trust stops at a field that is not
 * an address; spaces and tabs around fields; IPv6; several lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/forwarded.h"

static struct sy_cidr trusted[2];

static int setup(void **state)
{
    char err[128];

    (void)state;
    assert_int_equal(sy_cidr_parse("10.50.0.0/16", &trusted[0], err, sizeof(err)), 0);
    assert_int_equal(sy_cidr_parse("2001:db8:ffff::/48", &trusted[1], err, sizeof(err)), 0);
    return 0;
}

/* The client after walking value with "127.0.0.1" as the peer; *more: the walk goes on. */
static const char *walk(const char *value, bool *more)
{
    static struct sy_client_id id;

    strcpy(id.ip, "127.0.0.1");
    *more = sy_forwarded_walk(value, strlen(value), trusted, 2, &id);
    return id.ip;
}

static void test_rightmost_untrusted_wins(void **state)
{
    bool more;

    (void)state;
    assert_string_equal(walk("203.0.113.7", &more), "203.0.113.7");
    assert_false(more);
    /* a spoofed address to the left of the real client is never reached */
    assert_string_equal(walk("6.6.6.6, 203.0.113.7", &more), "203.0.113.7");
    /* trusted hops are walked back */
    assert_string_equal(walk("198.51.100.1, 10.50.1.1, 10.50.2.2", &more), "198.51.100.1");
    assert_false(more);
    /* all trusted: the previous line continues the walk */
    assert_string_equal(walk("10.50.1.1,10.50.2.2", &more), "10.50.1.1");
    assert_true(more);
}

static void test_fields_that_are_not_addresses_stop_trust(void **state)
{
    bool more;

    (void)state;
    /* the client stays what the last good field said */
    assert_string_equal(walk("unknown, 10.50.0.9", &more), "10.50.0.9");
    assert_false(more);
    assert_string_equal(walk("garbage", &more), "127.0.0.1");
    assert_string_equal(walk("1.2.3.4,,10.50.0.1", &more), "10.50.0.1");
    assert_string_equal(walk("1.2.3.4:80", &more), "127.0.0.1");
    assert_string_equal(walk("", &more), "127.0.0.1");
    assert_true(more);
    /* longer than any address */
    assert_string_equal(walk("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb", &more),
                        "127.0.0.1");
}

static void test_spaces_ipv6_and_mapped(void **state)
{
    bool more;

    (void)state;
    assert_string_equal(walk(" \t203.0.113.9 \t", &more), "203.0.113.9");
    assert_string_equal(walk("2001:db8::1, 2001:db8:ffff::2", &more), "2001:db8::1");
    assert_string_equal(walk("::ffff:198.51.100.4", &more), "::ffff:198.51.100.4");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rightmost_untrusted_wins),
        cmocka_unit_test(test_fields_that_are_not_addresses_stop_trust),
        cmocka_unit_test(test_spaces_ipv6_and_mapped),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
