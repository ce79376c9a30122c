/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_ratelimit_redis.c: the GCRA script of src/core/ratelimit_redis.c
 * run by a real redis-server (started on a free loopback port; the tests
 * skip when there is none), against the local engine (ratelimit.c): for
 * several rules and random request times, both must decide every request
 * alike and give the same remaining, reset and retry-after, to the
 * millisecond. Also: keys expire by themselves once their budget is full
 * again, and the script on Redis's own clock allows burst + 1 at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/ratelimit.h"
#include "core/ratelimit_redis.h"
#include "sy_auto.h"
#include "test_util.h"

#if SY_HAVE_HIREDIS
#include <hiredis/hiredis.h>

static pid_t server;
static redisContext *rc;

static int
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* redis-server on a free port, and a blocking connection to it; skipped without one. */
static int
setup(void **state)
{
    char port[16];
    int p = free_port();

    (void)state;
    if (p < 0 || system("command -v redis-server >/dev/null 2>&1") != 0)
        return 0;
    snprintf(port, sizeof(port), "%d", p);
    server = fork();
    if (server == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(127);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && server > 0; i++) {
        rc = redisConnect("127.0.0.1", p);
        if (rc && !rc->err)
            return 0;
        if (rc)
            redisFree(rc);
        rc = NULL;
        usleep(20000);
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (rc)
        redisFree(rc);
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    return 0;
}

static void
need_redis(void)
{
    if (!rc)
        skip();
}

static struct sy_rl_rule
rule(int64_t rate, int64_t per_ms, int64_t burst)
{
    struct sy_rl_rule r;
    char err[256];

    if (sy_rl_rule_init(&r, rate, per_ms, burst, err, sizeof(err)) != 0)
        fail_msg("rule refused: %s", err);
    return r;
}

/* One EVALSHA (EVAL the first time) of the script; now_us 0: Redis's clock. */
static struct sy_rl_result
script(const struct sy_rl_rule *r, const char *key, uint64_t now_us)
{
    char t[24], tau[24], now[24];
    struct sy_rl_result out;
    redisReply *rep;

    snprintf(t, sizeof(t), "%llu", (unsigned long long)r->interval_us);
    snprintf(tau, sizeof(tau), "%llu", (unsigned long long)r->tolerance_us);
    snprintf(now, sizeof(now), "%llu", (unsigned long long)now_us);
    const char *argv[] = {"EVAL", sy_rl_redis_script.source, "1", key, t, tau, now};
    rep = redisCommandArgv(rc, now_us ? 7 : 6, argv, NULL);
    assert_non_null(rep);
    if (rep->type == REDIS_REPLY_ERROR)
        fail_msg("script error: %s", rep->str);
    assert_int_equal(sy_rl_redis_result(rep, r, &out), 0);
    freeReplyObject(rep);
    return out;
}

static void
flush(void)
{
    freeReplyObject(redisCommand(rc, "FLUSHALL"));
}

static uint64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Random request times, each decided by the script and by the local
 * table. The simulated clock runs at least as fast as the real one, so a
 * key that Redis expired (PX, real time) has a tat the simulation has
 * passed too.
 */
static void
compare(const struct sy_rl_rule *r, uint64_t seed, int steps)
{
    struct sy_rl_table *t = sy_rl_table_new(1024);
    uint64_t rs = seed, start = mono_us(), jumps = 0;
    const uint64_t base = 1700000000ull * 1000000;     /* a Unix time in us, as TIME gives */
    static const char *const keys[] = {"alice", "bob", ""};
    int allowed = 0, denied = 0;

    assert_non_null(t);
    flush();
    for (int i = 0; i < steps; i++) {
        uint64_t pick = rnd(&rs) % 10;
        /* mostly bursts at one instant, sometimes a wait of up to T, rarely a long one */
        if (pick >= 8)
            jumps += rnd(&rs) % (r->interval_us + 1);
        if (pick == 9 && rnd(&rs) % 10 == 0)
            jumps += r->tolerance_us + r->interval_us;
        uint64_t now = base + (mono_us() - start) + jumps;
        const char *key = keys[rnd(&rs) % 3];
        char full[64];
        struct sy_rl_result local, remote;

        snprintf(full, sizeof(full), "test:rl:l:%s", key);
        sy_rl_check(t, r, 7, key, strlen(key), now, &local);
        remote = script(r, full, now);
        if (local.allowed != remote.allowed || local.remaining != remote.remaining ||
            local.reset_ms != remote.reset_ms || local.retry_after_ms != remote.retry_after_ms ||
            local.limit != remote.limit)
            fail_msg("step %d key '%s' at +%llu us: local %d/%u/%llu/%llu, script %d/%u/%llu/%llu",
                     i, key, (unsigned long long)(now - base), local.allowed, local.remaining,
                     (unsigned long long)local.reset_ms, (unsigned long long)local.retry_after_ms,
                     remote.allowed, remote.remaining, (unsigned long long)remote.reset_ms,
                     (unsigned long long)remote.retry_after_ms);
        remote.allowed ? allowed++ : denied++;
    }
    /* both kinds of decision were compared */
    if (allowed < 50 || denied < 50)
        fail_msg("T %llu us: only %d allowed, %d denied", (unsigned long long)r->interval_us,
                 allowed, denied);
    sy_rl_table_free(t);
}

static void
test_script_matches_local_engine(void **state)
{
    struct sy_rl_rule rules[] = {
        rule(50, 1000, 10), rule(1, 1000, 0), rule(3, 1000, 2), rule(100, 60000, 5),
        rule(100, 1000, 0), rule(7, 100, 3),
    };

    (void)state;
    need_redis();
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        compare(&rules[i], 1000 + i, 600);
}

static void
test_keys_expire_when_full_again(void **state)
{
    struct sy_rl_rule r = rule(10, 1000, 4);    /* T = 100 ms */
    redisReply *rep;
    uint64_t now = 1700000000ull * 1000000;

    (void)state;
    need_redis();
    flush();
    for (int i = 0; i < 3; i++)
        assert_true(script(&r, "test:exp", now).allowed);
    /* three requests owe 300 ms: the key lives that long, no more */
    rep = redisCommand(rc, "PTTL test:exp");
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_in_range(rep->integer, 1, 300);
    freeReplyObject(rep);
}

static void
test_redis_clock_burst(void **state)
{
    struct sy_rl_rule r = rule(1, 60000, 2);
    struct sy_rl_result res;

    (void)state;
    need_redis();
    flush();
    for (int i = 0; i < 3; i++) {
        res = script(&r, "test:clock", 0);
        assert_true(res.allowed);
        assert_int_equal(res.remaining, 2 - i);
    }
    res = script(&r, "test:clock", 0);
    assert_false(res.allowed);
    assert_int_equal(res.remaining, 0);
    assert_in_range(res.retry_after_ms, 59000, 60000);
}

#else

static int setup(void **state) { (void)state; return 0; }
static int teardown(void **state) { (void)state; return 0; }
static void test_script_matches_local_engine(void **state) { (void)state; skip(); }
static void test_keys_expire_when_full_again(void **state) { (void)state; skip(); }
static void test_redis_clock_burst(void **state) { (void)state; skip(); }

#endif

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_matches_local_engine),
        cmocka_unit_test(test_keys_expire_when_full_again),
        cmocka_unit_test(test_redis_clock_burst),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
