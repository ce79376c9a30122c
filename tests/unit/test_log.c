/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_log.c: the security log's flood control, through the real logger
 * (writer thread, rings, a file in a temporary folder) on an injected wall
 * clock. Keyed events: one line per key per second plus its count at the
 * tick, keys apart, seconds apart, a client rotating keys held to the cap,
 * eviction; and that no event is lost: lines + the sum of "suppressed" is
 * what was logged. Non-keyed events keep their per-event cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/log.h"

#define MAX_LINES 8192
#define T0_S      1700000000            /* a second far from any other test's */

static int64_t fake_ms;

static int64_t fake_clock(void)
{
    return fake_ms;
}

struct logged {
    char dir[64];
    char path[96];
    json_t *lines[MAX_LINES];
    size_t nlines;
    uint64_t dropped_before;    /* the count is the process's, not reset by a start */
};

static int setup(void **state)
{
    struct logged *lg = calloc(1, sizeof(*lg));
    char err[256];

    assert_non_null(lg);
    strcpy(lg->dir, "/tmp/sy_test_log.XXXXXX");
    assert_non_null(mkdtemp(lg->dir));
    snprintf(lg->path, sizeof(lg->path), "%s/security.log", lg->dir);
    struct sy_log_conf conf = {.security = lg->path, .level = SY_LOG_INFO};
    sy_log_set_clock(fake_clock);
    if (sy_log_start(&conf, 1, err, sizeof(err)) < 0)
        fail_msg("sy_log_start: %s", err);
    sy_log_attach(0);
    lg->dropped_before = sy_log_dropped(SY_LOG_SECURITY);
    *state = lg;
    return 0;
}

static int teardown(void **state)
{
    struct logged *lg = *state;

    sy_log_stop();
    for (size_t i = 0; i < lg->nlines; i++)
        json_decref(lg->lines[i]);
    unlink(lg->path);
    rmdir(lg->dir);
    free(lg);
    return 0;
}

/* Stops the logger (which writes everything queued) and parses each line. */
static void collect(struct logged *lg)
{
    char buf[4096];
    FILE *f;

    sy_log_stop();
    assert_int_equal(sy_log_dropped(SY_LOG_SECURITY), lg->dropped_before);
    f = fopen(lg->path, "r");
    assert_non_null(f);
    while (fgets(buf, sizeof(buf), f)) {
        json_error_t jerr;
        assert_true(strlen(buf) > 0 && buf[strlen(buf) - 1] == '\n');
        assert_true(lg->nlines < MAX_LINES);
        json_t *j = json_loads(buf, 0, &jerr);
        if (!j)
            fail_msg("not JSON (%s): %s", jerr.text, buf);
        lg->lines[lg->nlines++] = j;
    }
    fclose(f);
}

static const char *str_of(json_t *line, const char *name)
{
    json_t *v = json_object_get(line, name);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static uint64_t suppressed_of(json_t *line)
{
    json_t *v = json_object_get(line, "suppressed");
    if (!v)
        return 0;
    assert_true(json_is_integer(v));
    assert_true(json_integer_value(v) > 0);     /* "suppressed": 0 is never written */
    return (uint64_t)json_integer_value(v);
}

static int64_t num_of(json_t *line, const char *name)
{
    json_t *v = json_object_get(line, name);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* Events the lines stand for: one each, plus "suppressed". */
static uint64_t accounted(struct logged *lg, const char *client_ip)
{
    uint64_t n = 0;

    for (size_t i = 0; i < lg->nlines; i++)
        if (!client_ip || strcmp(str_of(lg->lines[i], "client_ip"), client_ip) == 0)
            n += 1 + suppressed_of(lg->lines[i]);
    return n;
}

/* rate_limited for client ip, keyed by it, with the event's number as "seq". */
static void limited(const char *ip, int64_t seq)
{
    char key[96];
    struct sy_log_field fields[] = {
        {.name = "limit", .str = "api"},
        {.name = "seq", .num = seq},
    };
    int n = snprintf(key, sizeof(key), "rate_limited|api|%s", ip);

    sy_log_security_keyed("rate_limited", key, (size_t)n, ip, "NL", "over limit", fields, 2);
}

static void one_key_flood(void **state)
{
    struct logged *lg = *state;

    fake_ms = (int64_t)T0_S * 1000 + 100;
    for (int i = 0; i < 20000; i++) {
        fake_ms = (int64_t)T0_S * 1000 + 100 + i / 40;     /* 100..599 ms */
        limited("192.0.2.1", i);
    }
    sy_log_security_tick((int64_t)T0_S * 1000 + 900);     /* same second: nothing yet */
    fake_ms = (int64_t)(T0_S + 1) * 1000 + 3;
    sy_log_security_tick(fake_ms);
    sy_log_security_tick(fake_ms + 1000);                   /* nothing more to write */
    collect(lg);

    assert_int_equal(lg->nlines, 2);
    assert_int_equal(num_of(lg->lines[0], "seq"), 0);
    assert_int_equal(suppressed_of(lg->lines[0]), 0);
    assert_string_equal(str_of(lg->lines[0], "ts"), "2023-11-14T22:13:20.100Z");
    /* The last line is the last event, at its own time, standing for the rest. */
    assert_int_equal(num_of(lg->lines[1], "seq"), 19999);
    assert_string_equal(str_of(lg->lines[1], "ts"), "2023-11-14T22:13:20.599Z");
    assert_string_equal(str_of(lg->lines[1], "event"), "rate_limited");
    assert_string_equal(str_of(lg->lines[1], "client_ip"), "192.0.2.1");
    assert_string_equal(str_of(lg->lines[1], "country"), "NL");
    assert_string_equal(str_of(lg->lines[1], "reason"), "over limit");
    assert_string_equal(str_of(lg->lines[1], "limit"), "api");
    assert_int_equal(suppressed_of(lg->lines[1]), 19998);
    assert_null(json_object_get(lg->lines[1], "many_keys"));
    assert_int_equal(accounted(lg, NULL), 20000);
    /* Field order as SPEC.md says: ts, event, client_ip, country, reason, fields, suppressed. */
    const char *want[] = {"ts", "event", "client_ip", "country", "reason", "limit", "seq",
                          "suppressed"};
    size_t k = 0;
    json_t *last = lg->lines[1];
    for (void *it = json_object_iter(last); it; it = json_object_iter_next(last, it))
        assert_string_equal(json_object_iter_key(it), want[k++]);
    assert_int_equal(k, 8);
}

static void two_keys_apart(void **state)
{
    struct logged *lg = *state;

    for (int i = 0; i < 3000; i++) {
        fake_ms = (int64_t)(T0_S + 10) * 1000 + i / 10;
        limited(i % 3 ? "192.0.2.1" : "2001:db8::7", i);
    }
    fake_ms = (int64_t)(T0_S + 11) * 1000;
    sy_log_security_tick(fake_ms);
    collect(lg);

    assert_int_equal(lg->nlines, 4);
    assert_int_equal(accounted(lg, "192.0.2.1"), 2000);
    assert_int_equal(accounted(lg, "2001:db8::7"), 1000);
    /* Each key's last line is that key's last event. */
    for (size_t i = 2; i < 4; i++) {
        int64_t want = strcmp(str_of(lg->lines[i], "client_ip"), "192.0.2.1") == 0 ? 2999 : 2997;
        assert_int_equal(num_of(lg->lines[i], "seq"), want);
    }
}

/* One line per key per second, and its count at the tick after that second. */
static void seconds_with_ticks(void **state)
{
    struct logged *lg = *state;

    for (int s = 0; s < 10; s++) {
        for (int i = 0; i < 100; i++) {
            fake_ms = (int64_t)(T0_S + 20 + s) * 1000 + 5 * i;
            limited("192.0.2.1", s * 100 + i);
        }
        fake_ms = (int64_t)(T0_S + 21 + s) * 1000 + 1;     /* the event loop's timer */
        sy_log_security_tick(fake_ms);
    }
    collect(lg);

    assert_int_equal(lg->nlines, 20);
    for (size_t i = 0; i < 20; i += 2) {
        assert_int_equal(num_of(lg->lines[i], "seq"), (int64_t)i / 2 * 100);
        assert_int_equal(suppressed_of(lg->lines[i]), 0);
        assert_int_equal(num_of(lg->lines[i + 1], "seq"), (int64_t)i / 2 * 100 + 99);
        assert_int_equal(suppressed_of(lg->lines[i + 1]), 98);
    }
    assert_int_equal(accounted(lg, NULL), 1000);
}

/* Without a tick, the count of a second rides on the key's first line of the next. */
static void seconds_without_ticks(void **state)
{
    struct logged *lg = *state;

    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 100; i++) {
            fake_ms = (int64_t)(T0_S + 40 + s) * 1000 + 5 * i;
            limited("192.0.2.1", s * 100 + i);
        }
    fake_ms = (int64_t)(T0_S + 44) * 1000;
    sy_log_security_tick(fake_ms);
    collect(lg);

    assert_int_equal(lg->nlines, 4);
    assert_int_equal(suppressed_of(lg->lines[0]), 0);
    assert_int_equal(num_of(lg->lines[1], "seq"), 100);
    assert_int_equal(suppressed_of(lg->lines[1]), 99);
    assert_int_equal(num_of(lg->lines[2], "seq"), 200);
    assert_int_equal(suppressed_of(lg->lines[2]), 99);
    assert_int_equal(num_of(lg->lines[3], "seq"), 299);
    assert_int_equal(suppressed_of(lg->lines[3]), 98);
    assert_int_equal(accounted(lg, NULL), 300);
}

static size_t count_many_keys(struct logged *lg, uint64_t *events)
{
    size_t n = 0;

    *events = 0;
    for (size_t i = 0; i < lg->nlines; i++)
        if (json_is_true(json_object_get(lg->lines[i], "many_keys"))) {
            n++;
            *events += 1 + suppressed_of(lg->lines[i]);
        }
    return n;
}

/*
 * A client rotating 5,000 keys (forged X-Forwarded-For) four times a second
 * for three seconds. One cap of 50 lines a second covers first lines and the
 * ticks' lines alike, so the 50 keys of second 0 written at the tick of second
 * 1 leave second 1 no line: its events all go to the overflow. At most 50
 * lines per second (0..3) plus one overflow line per tick, and every event
 * counted.
 */
static void rotating_keys_capped(void **state)
{
    struct logged *lg = *state;
    char ip[48];
    uint64_t total = 0;

    for (int s = 0; s < 3; s++) {
        for (int round = 0; round < 4; round++)
            for (int k = 0; k < 5000; k++) {
                fake_ms = (int64_t)(T0_S + 60 + s) * 1000 + round * 200 + k / 100;
                snprintf(ip, sizeof(ip), "10.%d.%d.%d", s, k / 256, k % 256);
                limited(ip, total++);
            }
        fake_ms = (int64_t)(T0_S + 61 + s) * 1000 + 2;
        sy_log_security_tick(fake_ms);
    }
    collect(lg);

    uint64_t overflowed;
    size_t overflow_lines = count_many_keys(lg, &overflowed);
    print_message("rotation: %zu lines for %llu events, %zu overflow lines for %llu\n",
                  lg->nlines, (unsigned long long)total, overflow_lines,
                  (unsigned long long)overflowed);
    assert_true(lg->nlines <= 4 * 50 + 3);
    assert_int_equal(overflow_lines, 3);
    assert_true(overflowed >= total - 4 * 50 * 4);    /* a key with lines has 4 events */
    assert_int_equal(accounted(lg, NULL), total);
    /* First lines of keys (no "suppressed"), by the second of their ts. */
    size_t firsts = 0;
    for (int s = 0; s < 3; s++) {
        char prefix[32];
        size_t n = 0;
        snprintf(prefix, sizeof(prefix), "2023-11-14T22:14:%02d", 20 + s);
        for (size_t i = 0; i < lg->nlines; i++)
            if (strncmp(str_of(lg->lines[i], "ts"), prefix, strlen(prefix)) == 0 &&
                !suppressed_of(lg->lines[i]))
                n++;
        assert_true(n <= 50);
        firsts += n;
    }
    assert_true(firsts >= 50);
}

/*
 * 25 new keys a second for 40 seconds, three events each, no tick until the
 * end: 1,000 keys through a table of 512, so keys with a pending count are
 * evicted. Their counts are written (or go to the overflow), none is lost.
 */
static void eviction_keeps_counts(void **state)
{
    struct logged *lg = *state;
    char ip[48];
    int nkeys = 0;

    for (int s = 0; s < 40; s++)
        for (int k = 0; k < 25; k++, nkeys++)
            for (int e = 0; e < 3; e++) {
                fake_ms = (int64_t)(T0_S + 100 + s) * 1000 + k * 10 + e;
                snprintf(ip, sizeof(ip), "198.51.%d.%d", nkeys / 256, nkeys % 256);
                limited(ip, e);
            }
    fake_ms = (int64_t)(T0_S + 141) * 1000;
    sy_log_security_tick(fake_ms);
    collect(lg);

    uint64_t overflowed;
    count_many_keys(lg, &overflowed);
    assert_int_equal(accounted(lg, NULL), 3 * (uint64_t)nkeys);
    /* Every key's first event is its own line; evicted keys' last events are too. */
    size_t firsts = 0, evicted_lasts = 0;
    for (size_t i = 0; i < lg->nlines; i++) {
        if (json_object_get(lg->lines[i], "many_keys"))
            continue;
        int64_t seq = num_of(lg->lines[i], "seq");
        firsts += seq == 0;
        /* written before the final tick's lines: by an eviction */
        evicted_lasts += seq == 2 && i < lg->nlines - 60;
    }
    print_message("eviction: %zu lines, %zu evicted keys written, %llu in overflow\n",
                  lg->nlines, evicted_lasts, (unsigned long long)overflowed);
    assert_int_equal(firsts, nkeys);
    assert_true(evicted_lasts >= 400);
    for (size_t i = 0; i < lg->nlines; i++)
        if (!json_object_get(lg->lines[i], "many_keys"))
            assert_true(suppressed_of(lg->lines[i]) <= 1);
}

/* A thousand cap-worth of different events: each has its own cap and overflow. */
static void events_apart(void **state)
{
    struct logged *lg = *state;
    char ip[48];
    const char *events[] = {"rate_limited", "denied"};

    for (int k = 0; k < 200; k++)
        for (int e = 0; e < 2; e++) {
            fake_ms = (int64_t)(T0_S + 200) * 1000 + k;
            snprintf(ip, sizeof(ip), "203.0.113.%d", k);
            sy_log_security_keyed(events[e], ip, strlen(ip), ip, "", "rule", NULL, 0);
        }
    fake_ms = (int64_t)(T0_S + 201) * 1000;
    sy_log_security_tick(fake_ms);
    collect(lg);

    for (int e = 0; e < 2; e++) {
        size_t lines = 0;
        uint64_t n = 0;
        for (size_t i = 0; i < lg->nlines; i++)
            if (strcmp(str_of(lg->lines[i], "event"), events[e]) == 0) {
                lines++;
                n += 1 + suppressed_of(lg->lines[i]);
            }
        assert_int_equal(lines, 51);
        assert_int_equal(n, 200);
    }
}

/* Long keys that differ past the kept bytes, long and broken UTF-8 values. */
static void long_values(void **state)
{
    struct logged *lg = *state;
    char key_a[300], key_b[300], reason[600], field[400];

    memset(key_a, 'k', sizeof(key_a));
    memcpy(key_b, key_a, sizeof(key_b));
    key_b[250] = 'x';
    /* 95 bytes of 'r', then a 2-byte character across the 96-byte cut, then more */
    memset(reason, 'r', sizeof(reason));
    memcpy(reason + 95, "\xc3\xa9", 2);
    reason[sizeof(reason) - 1] = '\0';
    memset(field, '"', sizeof(field));
    field[sizeof(field) - 1] = '\0';
    struct sy_log_field fields[] = {
        {.name = "key", .str = field},
        {.name = "control", .str = "a\x01\xff"},
        {.name = "n", .num = -42},
    };

    fake_ms = (int64_t)(T0_S + 300) * 1000;
    for (int i = 0; i < 4; i++) {
        sy_log_security_keyed("denied", key_a, sizeof(key_a), "192.0.2.9", "NL", reason, fields,
                              3);
        sy_log_security_keyed("denied", key_b, sizeof(key_b), "192.0.2.9", "NL", reason, fields,
                              3);
    }
    fake_ms = (int64_t)(T0_S + 301) * 1000;
    sy_log_security_tick(fake_ms);
    collect(lg);

    assert_int_equal(lg->nlines, 4);
    assert_int_equal(accounted(lg, NULL), 8);
    assert_int_equal(strlen(str_of(lg->lines[0], "reason")), sizeof(reason) - 1);
    assert_int_equal(strlen(str_of(lg->lines[0], "key")), sizeof(field) - 1);
    for (size_t i = 2; i < 4; i++) {
        assert_int_equal(suppressed_of(lg->lines[i]), 2);
        assert_int_equal(strlen(str_of(lg->lines[i], "reason")), 95);     /* cut before é */
        assert_int_equal(strlen(str_of(lg->lines[i], "key")), 96);
        assert_string_equal(str_of(lg->lines[i], "control"), "a\x01\xef\xbf\xbd");
        assert_int_equal(num_of(lg->lines[i], "n"), -42);
    }
}

/* A line too long for the line buffer is written cut, with its count, not dropped. */
static void too_long_still_counted(void **state)
{
    struct logged *lg = *state;
    char reason[3000];

    memset(reason, 'r', sizeof(reason));
    reason[sizeof(reason) - 1] = '\0';
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 5; i++) {
            fake_ms = (int64_t)(T0_S + 500 + s) * 1000 + i;
            sy_log_security_keyed("denied", "k", 1, "192.0.2.5", "", reason, NULL, 0);
        }
    fake_ms = (int64_t)(T0_S + 502) * 1000;
    sy_log_security_tick(fake_ms);
    collect(lg);

    assert_int_equal(lg->nlines, 3);
    assert_int_equal(suppressed_of(lg->lines[1]), 4);
    assert_int_equal(suppressed_of(lg->lines[2]), 3);
    assert_int_equal(accounted(lg, NULL), 10);
    for (size_t i = 0; i < lg->nlines; i++)
        assert_int_equal(strlen(str_of(lg->lines[i], "reason")), 96);
}

/* More event names than a thread keeps apart: they share a cap; no count is lost. */
static void many_event_names(void **state)
{
    struct logged *lg = *state;
    static const char *const names[] = {"e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8",
                                        "e9", "e10", "e11"};
    char key[32];
    uint64_t total = 0;

    for (int k = 0; k < 200; k++)
        for (size_t e = 0; e < sizeof(names) / sizeof(names[0]); e++) {
            fake_ms = (int64_t)(T0_S + 600) * 1000 + k;
            snprintf(key, sizeof(key), "%d", k % 120);
            sy_log_security_keyed(names[e], key, strlen(key), key, "", "", NULL, 0);
            total++;
        }
    fake_ms = (int64_t)(T0_S + 601) * 1000;
    sy_log_security_tick(fake_ms);
    collect(lg);

    print_message("many names: %zu lines for %llu events\n", lg->nlines,
                  (unsigned long long)total);
    assert_int_equal(accounted(lg, NULL), total);
}

/* sy_log_security: 50 lines of an event a second, the next line carries the rest. */
static void non_keyed_cap(void **state)
{
    struct logged *lg = *state;
    struct sy_log_field f = {.name = "status", .num = 400};

    fake_ms = (int64_t)(T0_S + 400) * 1000;
    for (int i = 0; i < 60; i++) {
        sy_log_security("bad_request", "192.0.2.3", "", "bad header", &f, 1);
        sy_log_security("health_change", "", "", "down", NULL, 0);
    }
    fake_ms += 1000;
    sy_log_security("bad_request", "192.0.2.3", "", "bad header", &f, 1);
    collect(lg);

    size_t bad = 0, health = 0;
    for (size_t i = 0; i < lg->nlines; i++) {
        const char *event = str_of(lg->lines[i], "event");
        bad += strcmp(event, "bad_request") == 0;
        health += strcmp(event, "health_change") == 0;
    }
    assert_int_equal(bad, 51);
    assert_int_equal(health, 60);
    assert_int_equal(suppressed_of(lg->lines[lg->nlines - 1]), 10);
    assert_int_equal(num_of(lg->lines[lg->nlines - 1], "status"), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_key_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(two_keys_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(seconds_with_ticks, setup, teardown),
        cmocka_unit_test_setup_teardown(seconds_without_ticks, setup, teardown),
        cmocka_unit_test_setup_teardown(rotating_keys_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(eviction_keeps_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(events_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(long_values, setup, teardown),
        cmocka_unit_test_setup_teardown(too_long_still_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(many_event_names, setup, teardown),
        cmocka_unit_test_setup_teardown(non_keyed_cap, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
