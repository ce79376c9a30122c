/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_route.c: host specificity, path prefixes on segment boundaries,
 * fallback to less specific hosts and ties of sy_route_match(). Routes
 * are built by hand; the loader is not involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/route.h"

/* Builds a conf whose routes are the (host, path) pairs of spec, in order. */
static struct sy_conf *
conf_new(const char *const spec[][2], size_t n)
{
    struct sy_conf *conf = calloc(1, sizeof(*conf));

    assert_non_null(conf);
    conf->routes = calloc(n > 0 ? n : 1, sizeof(*conf->routes));
    assert_non_null(conf->routes);
    conf->nroutes = n;
    for (size_t i = 0; i < n; i++) {
        conf->routes[i].index = i;
        conf->routes[i].host = strdup(spec[i][0]);
        conf->routes[i].path = strdup(spec[i][1]);
        assert_non_null(conf->routes[i].host);
        assert_non_null(conf->routes[i].path);
        conf->routes[i].path_len = strlen(spec[i][1]);
    }
    return conf;
}

static void
conf_free(struct sy_conf *conf)
{
    for (size_t i = 0; i < conf->nroutes; i++) {
        free(conf->routes[i].host);
        free(conf->routes[i].path);
    }
    free(conf->routes);
    free(conf);
}

/* The index of the matching route, or -1 for none. */
static long
match(const struct sy_conf *conf, const char *host, const char *path)
{
    const struct sy_route *r = sy_route_match(conf, host, host != NULL ? strlen(host) : 0,
                                              path, strlen(path));

    return r != NULL ? (long)r->index : -1;
}

static void
test_exact_wildcard_any(void **state)
{
    static const char *const spec[][2] = {
        {"*", "/"},
        {"*.example.com", "/"},
        {"api.example.com", "/"},
    };
    struct sy_conf *conf = conf_new(spec, 3);

    (void)state;
    assert_int_equal(match(conf, "api.example.com", "/"), 2);
    assert_int_equal(match(conf, "www.example.com", "/x"), 1);
    assert_int_equal(match(conf, "example.com", "/"), 0);
    assert_int_equal(match(conf, "xexample.com", "/"), 0);
    assert_int_equal(match(conf, ".example.com", "/"), 0);
    assert_int_equal(match(conf, "other.org", "/"), 0);
    conf_free(conf);
}

static void
test_multi_level_wildcard(void **state)
{
    static const char *const spec[][2] = {
        {"*.example.com", "/"},
        {"*.b.example.com", "/"},
        {"*", "/"},
    };
    struct sy_conf *conf = conf_new(spec, 3);

    (void)state;
    assert_int_equal(match(conf, "a.c.example.com", "/"), 0);
    assert_int_equal(match(conf, "x.y.z.example.com", "/"), 0);
    assert_int_equal(match(conf, "a.b.example.com", "/"), 1);
    assert_int_equal(match(conf, "x.a.b.example.com", "/"), 1);
    /* "*.b.example.com" does not match "b.example.com" itself */
    assert_int_equal(match(conf, "b.example.com", "/"), 0);
    assert_int_equal(match(conf, "example.com", "/"), 2);
    conf_free(conf);
}

static void
test_port_and_case(void **state)
{
    static const char *const spec[][2] = {
        {"*", "/"},
        {"*.example.com", "/"},
        {"api.example.com", "/"},
    };
    struct sy_conf *conf = conf_new(spec, 3);

    (void)state;
    assert_int_equal(match(conf, "API.Example.COM", "/"), 2);
    assert_int_equal(match(conf, "api.example.com:8080", "/"), 2);
    assert_int_equal(match(conf, "Api.Example.Com:443", "/"), 2);
    assert_int_equal(match(conf, "WWW.EXAMPLE.COM:80", "/"), 1);
    assert_int_equal(match(conf, "api.example.com.evil:80", "/"), 0);
    conf_free(conf);
}

static void
test_trailing_dot(void **state)
{
    static const char *const spec[][2] = {
        {"*", "/"},
        {"*.example.com", "/"},
        {"api.example.com", "/"},
    };
    struct sy_conf *conf = conf_new(spec, 3);

    (void)state;
    assert_int_equal(match(conf, "api.example.com.", "/"), 2);
    assert_int_equal(match(conf, "api.example.com.:8080", "/"), 2);
    assert_int_equal(match(conf, "www.example.com.", "/"), 1);
    conf_free(conf);
}

static void
test_segment_boundary(void **state)
{
    static const char *const spec[][2] = {
        {"*", "/"},
        {"*", "/api"},
        {"*", "/static/"},
    };
    struct sy_conf *conf = conf_new(spec, 3);

    (void)state;
    assert_int_equal(match(conf, "h", "/api"), 1);
    assert_int_equal(match(conf, "h", "/api/"), 1);
    assert_int_equal(match(conf, "h", "/api/x/y"), 1);
    assert_int_equal(match(conf, "h", "/apix"), 0);
    assert_int_equal(match(conf, "h", "/ap"), 0);
    assert_int_equal(match(conf, "h", "/static/"), 2);
    assert_int_equal(match(conf, "h", "/static/app.js"), 2);
    assert_int_equal(match(conf, "h", "/static"), 0);
    assert_int_equal(match(conf, "h", "/staticx"), 0);
    /* byte-wise and case-sensitive */
    assert_int_equal(match(conf, "h", "/API"), 0);
    /* "/" takes every path, the asterisk-form of OPTIONS too */
    assert_int_equal(match(conf, "h", "/"), 0);
    assert_int_equal(match(conf, "h", "*"), 0);
    conf_free(conf);
}

static void
test_longest_prefix(void **state)
{
    static const char *const spec[][2] = {
        {"*", "/api"},
        {"*", "/"},
        {"*", "/api/v1"},
        {"*", "/api/v1/users/"},
    };
    struct sy_conf *conf = conf_new(spec, 4);

    (void)state;
    assert_int_equal(match(conf, "h", "/api/v1/users"), 2);
    assert_int_equal(match(conf, "h", "/api/v1/users/7"), 3);
    assert_int_equal(match(conf, "h", "/api/v1"), 2);
    assert_int_equal(match(conf, "h", "/api/v2"), 0);
    assert_int_equal(match(conf, "h", "/api/v10"), 0);
    assert_int_equal(match(conf, "h", "/home"), 1);
    conf_free(conf);
}

static void
test_fallback_less_specific(void **state)
{
    static const char *const spec[][2] = {
        {"*", "/"},
        {"*.example.com", "/"},
        {"*.api.example.com", "/v2"},
        {"api.example.com", "/admin"},
        {"*", "/only-any"},
    };
    struct sy_conf *conf = conf_new(spec, 5);

    (void)state;
    assert_int_equal(match(conf, "api.example.com", "/admin/x"), 3);
    /* exact host has no route for the path: the wildcard takes it */
    assert_int_equal(match(conf, "api.example.com", "/x"), 1);
    /* longest wildcard has no route for the path: a shorter one takes it */
    assert_int_equal(match(conf, "eu.api.example.com", "/v2/x"), 2);
    assert_int_equal(match(conf, "eu.api.example.com", "/v1"), 1);
    /* host specificity beats path length */
    assert_int_equal(match(conf, "www.example.com", "/only-any"), 1);
    assert_int_equal(match(conf, "other.org", "/only-any"), 4);
    conf_free(conf);
}

static void
test_fallback_to_any(void **state)
{
    static const char *const spec[][2] = {
        {"api.example.com", "/admin"},
        {"*", "/"},
    };
    struct sy_conf *conf = conf_new(spec, 2);

    (void)state;
    assert_int_equal(match(conf, "api.example.com", "/admin"), 0);
    assert_int_equal(match(conf, "api.example.com", "/"), 1);
    conf_free(conf);
}

static void
test_ties_first_wins(void **state)
{
    static const char *const spec[][2] = {
        {"*", "/"},
        {"a.example.com", "/x"},
        {"*.example.com", "/x"},
        {"a.example.com", "/x"},
        {"*.example.com", "/x"},
        {"*", "/"},
    };
    struct sy_conf *conf = conf_new(spec, 6);

    (void)state;
    assert_int_equal(match(conf, "a.example.com", "/x/1"), 1);
    assert_int_equal(match(conf, "b.example.com", "/x/1"), 2);
    assert_int_equal(match(conf, "other.org", "/x/1"), 0);
    conf_free(conf);
}

static void
test_no_match(void **state)
{
    static const char *const spec[][2] = {
        {"api.example.com", "/"},
        {"*.example.com", "/app"},
    };
    struct sy_conf *conf = conf_new(spec, 2);
    struct sy_conf *empty = conf_new(spec, 0);

    (void)state;
    assert_int_equal(match(conf, "other.org", "/"), -1);
    assert_int_equal(match(conf, "www.example.com", "/other"), -1);
    assert_int_equal(match(conf, "", "/"), -1);
    assert_int_equal(match(conf, NULL, "/"), -1);
    assert_int_equal(match(empty, "api.example.com", "/"), -1);
    conf_free(conf);
    conf_free(empty);
}

static void
test_empty_host_takes_any(void **state)
{
    static const char *const spec[][2] = {
        {"*.example.com", "/"},
        {"*", "/"},
    };
    struct sy_conf *conf = conf_new(spec, 2);

    (void)state;
    assert_int_equal(match(conf, "", "/"), 1);
    assert_int_equal(match(conf, NULL, "/"), 1);
    assert_int_equal(match(conf, ":8080", "/"), 1);
    assert_int_equal(match(conf, ".", "/"), 1);
    conf_free(conf);
}

static void
test_ipv6_literal(void **state)
{
    static const char *const spec[][2] = {
        {"*", "/"},
        {"[::1]", "/"},
        {"[fe80::1]", "/"},
        {"192.0.2.1", "/"},
    };
    struct sy_conf *conf = conf_new(spec, 4);

    (void)state;
    assert_int_equal(match(conf, "[::1]", "/"), 1);
    assert_int_equal(match(conf, "[::1]:8080", "/"), 1);
    assert_int_equal(match(conf, "[FE80::1]:443", "/"), 2);
    assert_int_equal(match(conf, "[::2]:8080", "/"), 0);
    assert_int_equal(match(conf, "192.0.2.1:80", "/"), 3);
    /* an unclosed bracket is compared whole, so it matches no literal */
    assert_int_equal(match(conf, "[::1", "/"), 0);
    conf_free(conf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_wildcard_any),
        cmocka_unit_test(test_multi_level_wildcard),
        cmocka_unit_test(test_port_and_case),
        cmocka_unit_test(test_trailing_dot),
        cmocka_unit_test(test_segment_boundary),
        cmocka_unit_test(test_longest_prefix),
        cmocka_unit_test(test_fallback_less_specific),
        cmocka_unit_test(test_fallback_to_any),
        cmocka_unit_test(test_ties_first_wins),
        cmocka_unit_test(test_no_match),
        cmocka_unit_test(test_empty_host_takes_any),
        cmocka_unit_test(test_ipv6_literal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
