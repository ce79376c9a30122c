/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_logstat_scan.c: switchyard-logstat's field extraction. The fast
 * scanner and the jansson fallback must read every line alike: each line
 * of a corpus (the gateway's own layouts, reordered keys, escapes, odd
 * numbers, garbage) goes through both and the records are compared field
 * by field. Then the time parsers, the duration parser and the --status
 * filter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tools/switchyard-logstat/logstat.h"
#include "test_util.h"

static const char *const corpus[] = {
    /* the access log as access_log.c writes it */
    "{\"ts\":\"2026-11-23T10:00:00.123Z\",\"request_id\":\"a1b2\",\"client_ip\":\"192.0.2.7\","
    "\"country\":\"DE\",\"method\":\"GET\",\"host\":\"shop.example\",\"path\":\"/cart?x=1\","
    "\"status\":200,\"bytes_in\":312,\"bytes_out\":5120,\"duration_ms\":12.345,"
    "\"upstream_ms\":11.002,\"upstream\":\"10.0.0.5:8080\",\"service\":\"shop\","
    "\"slot\":\"blue\",\"pool\":\"shop-blue\",\"route\":\"shop.example/\",\"user_agent\":"
    "\"curl/8.0\",\"tls\":true,\"proto\":\"http/1.1\"}",
    /* a rejected head: empty strings, null upstream_ms */
    "{\"ts\":\"2026-11-23T10:00:01.000Z\",\"request_id\":\"x\",\"client_ip\":\"::1\","
    "\"country\":\"\",\"method\":\"\",\"host\":\"\",\"path\":\"\",\"status\":400,"
    "\"bytes_in\":0,\"bytes_out\":120,\"duration_ms\":0.017,\"upstream_ms\":null,"
    "\"upstream\":\"\",\"service\":\"\",\"slot\":\"\",\"pool\":\"\",\"route\":\"\","
    "\"user_agent\":\"\",\"tls\":false,\"proto\":\"http/1.1\"}",
    /* security events */
    "{\"ts\":\"2026-11-23T10:00:02.500Z\",\"event\":\"rate_limited\",\"client_ip\":\"192.0.2.9\","
    "\"country\":\"FR\",\"reason\":\"over 10/s\",\"limit\":\"api\",\"route\":\"*/api\","
    "\"suppressed\":41}",
    "{\"ts\":\"2026-11-23T10:00:03.000Z\",\"event\":\"rollout\",\"client_ip\":\"\",\"country\":"
    "\"\",\"reason\":\"p95 ratio 3.1\",\"action\":\"rollback\",\"service\":\"shop\",\"step\":2,"
    "\"canary_error_rate\":0.2,\"p95_ratio\":3.1}",
    /* keys in another order, spaces, CRLF */
    " { \"status\" : 503 , \"ts\" : \"2026-11-23T10:00:04Z\" , \"path\" : \"/a\" } \r",
    /* escapes: the fallback reads these */
    "{\"ts\":\"2026-11-23T10:00:05.000Z\",\"status\":404,\"path\":\"/a\\\"b\\u00e9\","
    "\"user_agent\":\"x\\\\y\"}",
    "{\"ts\":\"2026-11-23T10:00:05.000Z\",\"event\":\"bad_request\",\"client_ip\":\"1.2.3.4\","
    "\"reason\":\"bad\\tchar\"}",
    /* numbers the fast scanner leaves alone */
    "{\"ts\":\"2026-11-23T10:00:06.000Z\",\"status\":2e2,\"duration_ms\":1.5}",
    "{\"ts\":\"2026-11-23T10:00:06.000Z\",\"status\":200,\"duration_ms\":1.23456}",
    "{\"ts\":\"2026-11-23T10:00:06.000Z\",\"status\":200.5}",
    "{\"ts\":\"2026-11-23T10:00:06.000Z\",\"status\":-200}",
    "{\"ts\":\"2026-11-23T10:00:06.000Z\",\"status\":200,\"bytes_in\":-1}",
    "{\"ts\":\"2026-11-23T10:00:06.000Z\",\"status\":200,\"bytes_in\":12345678901234567890}",
    /* nested and unknown values */
    "{\"ts\":\"2026-11-23T10:00:07.000Z\",\"status\":200,\"extra\":{\"a\":[1,2]}}",
    "{\"ts\":\"2026-11-23T10:00:07.000Z\",\"status\":200,\"extra\":true,\"more\":null,"
    "\"n\":-3.25}",
    /* wrong types */
    "{\"ts\":\"2026-11-23T10:00:08.000Z\",\"status\":\"200\"}",
    "{\"ts\":1234,\"status\":200}",
    "{\"ts\":\"2026-11-23T10:00:08.000Z\",\"status\":200,\"path\":17}",
    "{\"ts\":\"2026-11-23T10:00:08.000Z\",\"status\":200,\"path\":null}",
    "{\"ts\":\"2026-11-23T10:00:08.000Z\",\"status\":200,\"path\":true}",
    /* missing or bad required fields */
    "{\"status\":200}",
    "{\"ts\":\"yesterday\",\"status\":200}",
    "{\"ts\":\"2026-11-23T10:00:09.000Z\",\"status\":999}",
    "{\"ts\":\"2026-11-23T10:00:09.000Z\",\"path\":\"/\"}",
    "{}",
    /* not JSON, or not an object */
    "",
    "hello world",
    "[1,2,3]",
    "{\"ts\":\"2026-11-23T10:00:10.000Z\",\"status\":200",
    "{\"ts\":\"2026-11-23T10:00:10.000Z\",\"status\":200}}",
    "{\"ts\":\"2026-11-23T10:00:10.000Z\",\"status\":200,}",
    "{\"ts\":\"2026-11-23T10:00:10.000Z\" \"status\":200}",
    "{\"ts\":\"2026-11-23T10:00:10.000Z\",\"status\":200,\"path\":\"/\x01\"}",
    "{\"ts\":\"2026-11-23T10:00:10.000Z\",\"status\":200} trailing",
    /* a key given twice: the last one counts, for both */
    "{\"ts\":\"2026-11-23T10:00:11.000Z\",\"status\":200,\"status\":500}",
};

static void assert_same_str(struct ls_str a, struct ls_str b, const char *field, const char *line)
{
    if (a.n != b.n || (a.n && memcmp(a.p, b.p, a.n) != 0))
        fail_msg("%s differs on %s: '%.*s' vs '%.*s'", field, line, (int)a.n, a.p ? a.p : "",
                 (int)b.n, b.p ? b.p : "");
}

static void assert_same_record(const struct ls_record *a, const struct ls_record *b,
                               const char *line)
{
#define SAME_STR(f) assert_same_str(a->f, b->f, #f, line)
#define SAME_NUM(f) if (a->f != b->f) fail_msg(#f " differs on %s: %lld vs %lld", line, \
                                               (long long)a->f, (long long)b->f)
    SAME_NUM(kind);
    SAME_NUM(ts_ms);
    SAME_NUM(status);
    SAME_NUM(bytes_in);
    SAME_NUM(bytes_out);
    SAME_NUM(duration_us);
    SAME_NUM(upstream_us);
    SAME_NUM(suppressed);
    SAME_STR(client_ip);
    SAME_STR(country);
    SAME_STR(route);
    SAME_STR(service);
    SAME_STR(method);
    SAME_STR(host);
    SAME_STR(path);
    SAME_STR(user_agent);
    SAME_STR(upstream);
    SAME_STR(slot);
    SAME_STR(pool);
    SAME_STR(proto);
    SAME_STR(event);
    SAME_STR(reason);
    SAME_STR(limit);
#undef SAME_STR
#undef SAME_NUM
}

/* What a line means: the fast scanner's record, or the fallback's when the
 * fast one declines. */
static enum ls_scan_result scan_either(const char *line, struct ls_record *r, json_t **holder,
                                       bool *fast)
{
    const char *why = NULL;
    enum ls_scan_result res = ls_scan_fast(line, strlen(line), r, &why);

    *holder = NULL;
    *fast = res != LS_SCAN_FALLBACK;
    if (res == LS_SCAN_FALLBACK)
        res = ls_scan_json(line, strlen(line), r, holder, &why);
    if (res == LS_SCAN_BAD)
        assert_non_null(why);
    return res;
}

static void test_fast_and_fallback_agree(void **state)
{
    (void)state;
    unsigned fast_ok = 0, via_json = 0;

    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        const char *line = corpus[i];
        struct ls_record a, b;
        json_t *ha, *hb = NULL;
        bool fast;
        const char *why = NULL;
        enum ls_scan_result ra = scan_either(line, &a, &ha, &fast);
        enum ls_scan_result rb = ls_scan_json(line, strlen(line), &b, &hb, &why);

        if (ra != rb)
            fail_msg("line %zu: fast path says %d, jansson %d (%s): %s", i, ra, rb,
                     why ? why : "", line);
        if (ra == LS_SCAN_OK)
            assert_same_record(&a, &b, line);
        fast_ok += fast && ra == LS_SCAN_OK;
        via_json += !fast;
        json_decref(ha);
        json_decref(hb);
    }
    /* The corpus exercises both paths. */
    assert_true(fast_ok >= 4);
    assert_true(via_json >= 10);
}

/* Random mutations of real lines: whatever the bytes, both paths agree. */
static void test_agree_on_mutations(void **state)
{
    (void)state;
    uint64_t seed = 42;
    char buf[1024];

    for (int round = 0; round < 20000; round++) {
        const char *base = corpus[rnd(&seed) % 5];
        size_t n = strlen(base);
        memcpy(buf, base, n + 1);
        int edits = 1 + (int)(rnd(&seed) % 3);
        for (int e = 0; e < edits; e++) {
            static const char alphabet[] = "{}[]\":,\\ 0123456789.-eEtrufalsn\x01\xc3\xa9";
            size_t at = rnd(&seed) % n;
            switch (rnd(&seed) % 3) {
            case 0: buf[at] = alphabet[rnd(&seed) % (sizeof(alphabet) - 1)]; break;
            case 1: memmove(buf + at, buf + at + 1, n - at); n--; break;
            default:
                if (n + 2 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at + 1);
                    buf[at] = alphabet[rnd(&seed) % (sizeof(alphabet) - 1)];
                    n++;
                }
            }
        }
        struct ls_record a, b;
        json_t *ha, *hb = NULL;
        bool fast;
        const char *why = NULL;
        enum ls_scan_result ra = scan_either(buf, &a, &ha, &fast);
        enum ls_scan_result rb = ls_scan_json(buf, strlen(buf), &b, &hb, &why);
        if (ra != rb)
            fail_msg("round %d: fast %d vs jansson %d: %s", round, ra, rb, buf);
        if (ra == LS_SCAN_OK)
            assert_same_record(&a, &b, buf);
        json_decref(ha);
        json_decref(hb);
    }
}

static void test_fields(void **state)
{
    (void)state;
    struct ls_record r;
    const char *why;

    assert_int_equal(ls_scan_fast(corpus[0], strlen(corpus[0]), &r, &why), LS_SCAN_OK);
    assert_int_equal(r.kind, LS_ACCESS);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.duration_us, 12345);
    assert_int_equal(r.upstream_us, 11002);
    assert_int_equal(r.bytes_in, 312);
    assert_int_equal(r.bytes_out, 5120);
    assert_int_equal(r.ts_ms, ls_parse_rfc3339("2026-11-23T10:00:00.123Z", 24));
    assert_int_equal(r.path.n, 9);
    assert_memory_equal(r.path.p, "/cart?x=1", 9);
    assert_memory_equal(r.slot.p, "blue", 4);

    assert_int_equal(ls_scan_fast(corpus[1], strlen(corpus[1]), &r, &why), LS_SCAN_OK);
    assert_int_equal(r.upstream_us, -1);
    assert_int_equal(r.duration_us, 17);
    assert_int_equal(r.path.n, 0);

    assert_int_equal(ls_scan_fast(corpus[2], strlen(corpus[2]), &r, &why), LS_SCAN_OK);
    assert_int_equal(r.kind, LS_SECURITY);
    assert_int_equal(r.suppressed, 41);
    assert_memory_equal(r.limit.p, "api", 3);
    assert_memory_equal(r.event.p, "rate_limited", 12);

    /* the fallback unescapes */
    json_t *h = NULL;
    assert_int_equal(ls_scan_json(corpus[5], strlen(corpus[5]), &r, &h, &why), LS_SCAN_OK);
    assert_int_equal(r.path.n, strlen("/a\"b\xc3\xa9"));
    assert_memory_equal(r.path.p, "/a\"b\xc3\xa9", r.path.n);
    json_decref(h);
}

static void test_rfc3339(void **state)
{
    (void)state;
    assert_int_equal(ls_parse_rfc3339("1970-01-01T00:00:00Z", 20), 0);
    assert_int_equal(ls_parse_rfc3339("1970-01-01T00:00:01.5Z", 22), 1500);
    assert_int_equal(ls_parse_rfc3339("2026-11-23T17:19:50.123Z", 24), 1795454390123ll);
    /* an offset: the same instant */
    assert_int_equal(ls_parse_rfc3339("2026-11-23T18:19:50.123+01:00", 29), 1795454390123ll);
    assert_int_equal(ls_parse_rfc3339("2026-11-23T16:49:50.123-00:30", 29), 1795454390123ll);
    assert_int_equal(ls_parse_rfc3339("2024-02-29T00:00:00Z", 20), 1709164800000ll);
    assert_int_equal(ls_parse_rfc3339("2000-03-01T00:00:00Z", 20), 951868800000ll);
    static const char *const bad[] = {
        "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-23T24:00:00Z",
        "2026-11-23T10:00:00", "2026-11-23T10:00:00.Z", "2026-11-23T10:00:00Zx",
        "2026-11-23", "26-11-23T10:00:00Z", "2026-11-23T10:00:00+1:00", "garbage",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ls_parse_rfc3339(bad[i], strlen(bad[i])) != LS_NO_TIME)
            fail_msg("accepted %s", bad[i]);

    char buf[32];
    ls_format_ts(buf, 1795454390123ll);
    assert_string_equal(buf, "2026-11-23T17:19:50.123Z");
    ls_format_ts(buf, 0);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
}

static void test_time_args(void **state)
{
    (void)state;
    int64_t now = 1795454390123ll;

    assert_int_equal(ls_parse_duration_ms("90s"), 90000);
    assert_int_equal(ls_parse_duration_ms("15m"), 900000);
    assert_int_equal(ls_parse_duration_ms("2h"), 7200000);
    assert_int_equal(ls_parse_duration_ms("1d"), 86400000);
    assert_int_equal(ls_parse_duration_ms("1h30m"), 5400000);
    assert_int_equal(ls_parse_duration_ms("250ms"), 250);
    assert_int_equal(ls_parse_duration_ms("30"), 30000);
    assert_int_equal(ls_parse_duration_ms(""), -1);
    assert_int_equal(ls_parse_duration_ms("-5m"), -1);
    assert_int_equal(ls_parse_duration_ms("5x"), -1);
    assert_int_equal(ls_parse_duration_ms("1h30"), -1);

    assert_int_equal(ls_parse_time_arg("2h", now), now - 7200000);
    assert_int_equal(ls_parse_time_arg("2026-11-23T17:19:50.123Z", now), now);
    assert_int_equal(ls_parse_time_arg("2026-11-23", now),
                     ls_parse_rfc3339("2026-11-23T00:00:00Z", 20));
    assert_int_equal(ls_parse_time_arg("last tuesday", now), LS_NO_TIME);
}

static void test_status_filter(void **state)
{
    (void)state;
    struct ls_filter f;

    memset(&f, 0, sizeof(f));
    assert_int_equal(ls_filter_set_status(&f, "404"), 0);
    assert_true(f.status[404]);
    assert_false(f.status[403]);
    assert_int_equal(ls_filter_set_status(&f, "429,5xx"), 0);
    assert_true(f.status[429]);
    assert_true(f.status[500]);
    assert_true(f.status[599]);
    assert_false(f.status[404]);
    assert_false(f.status[499]);
    static const char *const bad[] = {"", "4", "40", "4040", "6xx", "0xx", "404,", ",404",
                                      "abc", "4x4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ls_filter_set_status(&f, bad[i]) == 0)
            fail_msg("accepted '%s'", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_and_fallback_agree),
        cmocka_unit_test(test_agree_on_mutations),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_time_args),
        cmocka_unit_test(test_status_filter),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
