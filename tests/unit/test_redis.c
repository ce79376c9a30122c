/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_redis.c: redis.url into its parts (src/core/redis_url.c): TCP and
 * unix forms, user and password (percent-decoded), db, IPv6 in brackets;
 * rediss:// refused with its own message; every malformed URL refused
 * with a message that never repeats the URL (it may hold a password); and
 * the display form logs use, which carries no secret.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/redis.h"

static struct sy_redis_url
parse_ok(const char *text)
{
    struct sy_redis_url u;
    char err[256] = "";

    if (sy_redis_url_parse(text, &u, err, sizeof(err)) != 0)
        fail_msg("%s refused: %s", text, err);
    return u;
}

static void
test_tcp(void **state)
{
    struct sy_redis_url u;
    char shown[300];

    (void)state;
    u = parse_ok("redis://127.0.0.1:6379");
    assert_int_equal(u.transport, SY_REDIS_TCP);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_string_equal(u.user, "");

    u = parse_ok("redis://:s3cret@cache.internal:6380/2");
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s3cret");
    sy_redis_url_display(&u, shown, sizeof(shown));
    assert_string_equal(shown, "cache.internal:6380");

    u = parse_ok("redis://gateway:p%40ss%2Fw%3Ard@10.0.0.5:1/15");
    assert_string_equal(u.user, "gateway");
    assert_string_equal(u.password, "p@ss/w:rd");
    assert_int_equal(u.db, 15);

    u = parse_ok("redis://[::1]:6379/0");
    assert_string_equal(u.host, "::1");
    sy_redis_url_display(&u, shown, sizeof(shown));
    assert_string_equal(shown, "[::1]:6379");
}

static void
test_unix(void **state)
{
    struct sy_redis_url u;
    char shown[300];

    (void)state;
    u = parse_ok("unix:/run/redis/redis.sock");
    assert_int_equal(u.transport, SY_REDIS_UNIX);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_int_equal(u.db, 0);
    u = parse_ok("unix:/tmp/r.sock?db=3");
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_int_equal(u.db, 3);
    sy_redis_url_display(&u, shown, sizeof(shown));
    assert_string_equal(shown, "unix:/tmp/r.sock");
}

static void
test_refused(void **state)
{
    static const char *const bad[] = {
        "http://h:1", "redis://h", "redis://:secret@h", "redis://h:0", "redis://h:65536",
        "redis://h:6379/x", "redis://h:6379/", "redis://secret@h:1", "redis://h_x:1",
        "redis://[::1:6379", "redis://[zz]:1", "unix:relative.sock", "unix:/", "unix:/s?db=x",
        "unix:/s?x=1", "redis://:pw%zz@h:1", "redis://:pw%4@h:1", "redis://:%00@h:1", "",
    };
    char err[256];
    struct sy_redis_url u;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (sy_redis_url_parse(bad[i], &u, err, sizeof(err)) == 0)
            fail_msg("%s accepted", bad[i]);
        assert_string_equal(err, "invalid redis url (expected "
                            "redis://[:password@]host:port[/db] or unix:/path[?db=N])");
    }
}

static void
test_rediss_and_long_paths(void **state)
{
    char err[256], path[200];
    struct sy_redis_url u;

    (void)state;
    assert_int_equal(sy_redis_url_parse("rediss://:secret@h:6380", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "rediss:// (TLS to Redis) is not supported"));
    assert_null(strstr(err, "secret"));
    memset(path, 'a', sizeof(path));
    memcpy(path, "unix:/", 6);
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(sy_redis_url_parse(path, &u, err, sizeof(err)), -1);
    assert_string_equal(err, "unix socket path longer than 107 bytes");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_rediss_and_long_paths),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
