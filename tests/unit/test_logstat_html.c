/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_logstat_html.c: switchyard-logstat's --html page (html.c) rendered into memory from
 * tests/data/logstat/report.json and from documents built here: hostile strings escaped
 * everywhere (the page's markup is the same whatever the strings hold), an <svg> per chart,
 * the timeline with 0, 1, 2,000 and 5,000 points (geometry inside the drawing, spikes kept
 * when points merge, gaps where p95 is null), absent sections absent, documents of the wrong
 * types (and seeded random mutations of the fixture) rendered without "(null)" or a crash, no
 * external resource, figures formatted, and a failed write returning -1 with errno.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
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

#include "test_util.h"
#include "tools/switchyard-logstat/html.h"

#define VIEW_W  960         /* the charts' viewBox: every coordinate must fall inside */
#define VIEW_H  240

static json_t *fixture;

/* ---- helpers ------------------------------------------------------------------------ */

/* tests/data/logstat/report.json from the repository root, found from the binary
 * (build/tests/NAME) wherever the test is run from. */
static json_t *load_fixture(void)
{
    char exe[PATH_MAX], path[PATH_MAX + 64];
    json_error_t err;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    json_t *doc = NULL;

    if (n > 0) {
        exe[n] = '\0';
        snprintf(path, sizeof(path), "%s/../../tests/data/logstat/report.json", dirname(exe));
        doc = json_load_file(path, 0, &err);
    }
    if (doc == NULL)
        doc = json_load_file("tests/data/logstat/report.json", 0, &err);
    if (doc == NULL)
        fail_msg("tests/data/logstat/report.json: %s (line %d)", err.text, err.line);
    return doc;
}

static int setup(void **state)
{
    (void)state;
    fixture = load_fixture();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(fixture);
    return 0;
}

/* The page for doc, NUL-terminated; the caller frees it. */
static char *render(const json_t *doc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    assert_int_equal(ls_html_write(f, doc), 0);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    assert_int_equal(strlen(buf), len);      /* no NUL byte in the page */
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);

    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

/* Elements the page may contain, and whether each has a closing tag. */
static const struct {
    const char *name;
    bool closed;
} elements[] = {
    {"html", true}, {"head", true}, {"meta", false}, {"title", true}, {"style", true},
    {"body", true}, {"main", true}, {"header", true}, {"nav", true}, {"ul", true},
    {"li", true}, {"a", true}, {"section", true}, {"div", true}, {"p", true}, {"h1", true},
    {"h2", true}, {"h3", true}, {"h4", true}, {"b", true}, {"i", true}, {"span", true},
    {"code", true}, {"table", true}, {"thead", true}, {"tbody", true}, {"tr", true},
    {"th", true}, {"td", true}, {"figure", true}, {"figcaption", true}, {"svg", true},
    {"text", true}, {"rect", true}, {"line", false}, {"path", false}, {"circle", false},
};

static bool tag_at(const char *p, const char *name)
{
    size_t len = strlen(name);

    return strncmp(p, name, len) == 0 && (p[len] == ' ' || p[len] == '>' || p[len] == '/');
}

/* Every '<' opens or closes one of the page's own elements, and each element closes as often
 * as it opens: a string that escaped the escaper would break one or the other. */
static void assert_markup(const char *page)
{
    size_t opened[sizeof(elements) / sizeof(elements[0])] = {0};
    size_t closed[sizeof(elements) / sizeof(elements[0])] = {0};

    assert_true(strncmp(page, "<!DOCTYPE html>\n", 16) == 0);
    for (const char *p = strchr(page + 1, '<'); p; p = strchr(p + 1, '<')) {
        bool close = p[1] == '/', known = false;

        for (size_t e = 0; e < sizeof(elements) / sizeof(elements[0]) && !known; e++) {
            if (!tag_at(p + 1 + close, elements[e].name))
                continue;
            known = true;
            (close ? closed : opened)[e]++;
        }
        if (!known)
            fail_msg("unknown markup at: %.60s", p);
    }
    for (size_t e = 0; e < sizeof(elements) / sizeof(elements[0]); e++)
        if (elements[e].closed && opened[e] != closed[e])
            fail_msg("<%s> opened %zu times, closed %zu", elements[e].name, opened[e], closed[e]);
    assert_null(strstr(page, "(null)"));
}

/* No external resource: no script; in the tags (assert_markup showed that text holds no '<'),
 * no src=, no URL, every href a fragment of the page itself; no url() or @import in the
 * style sheet. Escaped text may say "src=" or "http://": that is a log's content, not a
 * reference. */
static void assert_self_contained(const char *page)
{
    const char *style = strstr(page, "<style>"), *style_end = strstr(page, "</style>");

    assert_null(strstr(page, "<script"));
    for (const char *p = strchr(page, '<'); p; p = strchr(p + 1, '<')) {
        const char *end = strchr(p, '>');
        char tag[4096];

        assert_non_null(end);
        snprintf(tag, sizeof(tag), "%.*s", (int)(end - p), p);
        assert_null(strstr(tag, "nan"));        /* a coordinate or size gone wrong */
        assert_null(strstr(tag, "inf"));
        assert_null(strstr(tag, "src="));
        assert_null(strstr(tag, "://"));
        if (strstr(tag, "href=") != NULL)
            assert_non_null(strstr(tag, "href=\"#"));
    }
    assert_non_null(style);
    assert_non_null(style_end);
    for (const char *p = style; p < style_end; p++) {
        assert_false(strncmp(p, "url(", 4) == 0);
        assert_false(strncmp(p, "@import", 7) == 0);
    }
}

/* The number of <svg> elements between <section id="ID"> and its </section>. */
static size_t svgs_in(const char *page, const char *id)
{
    char open[64];
    const char *start, *end;
    size_t n = 0;

    snprintf(open, sizeof(open), "<section id=\"%s\">", id);
    start = strstr(page, open);
    if (start == NULL)
        return 0;
    end = strstr(start, "</section>");
    assert_non_null(end);
    for (const char *p = strstr(start, "<svg"); p && p < end; p = strstr(p + 1, "<svg"))
        n++;
    return n;
}

/* The numbers of the d attribute of the first <path class="CLS"> (an exact class). */
static size_t path_coords(const char *page, const char *cls, double *xy, size_t max)
{
    char open[64];
    const char *p;
    size_t n = 0;

    snprintf(open, sizeof(open), "<path class=\"%s\" d=\"", cls);
    p = strstr(page, open);
    if (p == NULL)
        return 0;
    p += strlen(open);
    while (*p != '"' && n < max) {
        char *end;

        if (*p == 'M' || *p == 'L' || *p == ',' || *p == 'Z') {
            p++;
            continue;
        }
        xy[n++] = strtod(p, &end);
        assert_true(end > p);
        p = end;
    }
    return n;
}

/* A timeline of n points, one a minute from 2026-11-23T00:00Z; p95 null at the indices in
 * [gap_from, gap_to); errors 0 but at spike_at (999). */
static json_t *timeline_doc(size_t n, size_t gap_from, size_t gap_to, size_t spike_at)
{
    json_t *points = json_array();

    for (size_t i = 0; i < n; i++) {
        char ts[48];

        snprintf(ts, sizeof(ts), "2026-11-%02zuT%02zu:%02zu:00.000Z", 23 + i / 1440,
                 i / 60 % 24, i % 60);
        json_array_append_new(points, json_pack("{s:s, s:I, s:I, s:I, s:o}", "start", ts,
            "requests", (json_int_t)(100 + i % 7), "errors", (json_int_t)(i == spike_at ? 999 : 0),
            "rate_limited", (json_int_t)(i % 10 == 0), "p95_ms",
            i >= gap_from && i < gap_to ? json_null() : json_real(20.0 + (double)(i % 13))));
    }
    return json_pack("{s:i, s:{s:i, s:o}}", "version", 1, "timeline", "interval_s", 60,
                     "points", points);
}

/* ---- the fixture -------------------------------------------------------------------- */

static void test_fixture_page(void **state)
{
    static const char *const ids[] = {"overview", "services", "timeline", "top",
                                      "rate_limiting", "denials", "admin", "changes",
                                      "suspects"};
    char *page = render(fixture);

    (void)state;
    assert_markup(page);
    assert_self_contained(page);
    assert_non_null(strstr(page, "<title>Switchyard log report</title>"));
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char open[64];

        snprintf(open, sizeof(open), "<section id=\"%s\">", ids[i]);
        assert_int_equal(count(page, open), 1);
    }
    /* One chart in the overview (latency distribution), two in the timeline. */
    assert_int_equal(svgs_in(page, "overview"), 1);
    assert_int_equal(svgs_in(page, "timeline"), 2);
    assert_int_equal(count(page, "<svg"), 3);
    /* The hostile strings of the fixture, as text. */
    assert_non_null(strstr(page, "/&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(page, "&quot;&gt;&lt;img src=x onerror=alert(&#39;ua&#39;)&gt;"
                                 "&amp;amp;"));
    assert_non_null(strstr(page, "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;h1&gt;pwned"));
    assert_non_null(strstr(page, "&lt;svg onload=alert(429)&gt;"));
    assert_non_null(strstr(page, "&lt;b&gt;api&lt;/b&gt;"));
    assert_non_null(strstr(page, "logs/&lt;evil&gt;&amp;.log"));
    /* The input summary: the first bad line, the approximate notice, a flag that fired. */
    assert_non_null(strstr(page, "logs/access.log.1.gz:17"));
    assert_non_null(strstr(page, "not JSON: &lt;html&gt;"));
    assert_non_null(strstr(page, "class=\"notice\""));
    assert_non_null(strstr(page, "<td class=\"n hit\">288</td>"));
    /* The long user agent is cut in its cell and whole in the title. */
    assert_non_null(strstr(page, "\xe2\x80\xa6</td>"));
    assert_non_null(strstr(page, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\""));
    free(page);
}

/* ---- escaping everywhere ------------------------------------------------------------ */

#define HOSTILE "<x'\"&>"   /* six bytes, every character that matters */
#define BENIGN  "Ab_cd:"    /* six bytes, none of them */

/* A copy of v with marker put before every string, and in every object of the events and
 * of the top tables a key of its own made of marker. */
static json_t *marked(const json_t *v, const char *marker)
{
    const char *key;
    json_t *out, *item;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_STRING: {
        size_t len = strlen(marker) + json_string_length(v);
        char *s = malloc(len + 1);

        assert_non_null(s);
        memcpy(s, marker, strlen(marker));
        memcpy(s + strlen(marker), json_string_value(v), json_string_length(v));
        s[len] = '\0';
        out = json_stringn(s, len);
        free(s);
        return out;
    }
    case JSON_ARRAY:
        out = json_array();
        json_array_foreach((json_t *)v, i, item)
            json_array_append_new(out, marked(item, marker));
        return out;
    case JSON_OBJECT:
        out = json_object();
        json_object_foreach((json_t *)v, key, item)
            json_object_set_new(out, key, marked(item, marker));
        if (json_object_get(v, "ts") || json_object_get(v, "by_requests"))
            json_object_set_new(out, marker, json_string(marker));
        return out;
    default:
        return json_deep_copy(v);
    }
}

/* Every string of the document (and keys of events, and a top dimension) holds & < > " ':
 * the page has exactly the markup it has with harmless strings of the same length. */
static void test_escaping_everywhere(void **state)
{
    json_t *hostile = marked(fixture, HOSTILE), *benign = marked(fixture, BENIGN);
    char *bad, *good;

    (void)state;
    json_object_set_new(json_object_get(hostile, "top"), HOSTILE,
                        marked(json_object_get(json_object_get(fixture, "top"), "paths"),
                               HOSTILE));
    json_object_set_new(json_object_get(benign, "top"), BENIGN,
                        marked(json_object_get(json_object_get(fixture, "top"), "paths"),
                               BENIGN));
    bad = render(hostile);
    good = render(benign);
    assert_markup(bad);
    assert_self_contained(bad);
    assert_null(strstr(bad, "<x"));
    /* Each string shown once per place in both pages ("&lt;x&#39;": JSON inside a cell, an
     * event's nested object, writes the quote as \&quot;). */
    assert_true(count(bad, "&lt;x&#39;&quot;&amp;&gt;") > 100);
    assert_int_equal(count(bad, "&lt;x&#39;"), count(good, BENIGN));
    assert_int_equal(count_char(bad, '<'), count_char(good, '<'));
    assert_int_equal(count_char(bad, '>'), count_char(good, '>'));
    assert_int_equal(count_char(bad, '"'), count_char(good, '"'));
    assert_int_equal(count_char(bad, '\''), count_char(good, '\''));
    free(bad);
    free(good);
    json_decref(hostile);
    json_decref(benign);
}

/* Control characters and NUL (which HTML does not allow) show as U+FFFD. */
static void test_control_characters(void **state)
{
    json_t *doc = json_pack("{s:[{s:s#, s:i, s:i}]}", "inputs", "name", "a\0b\x01" "c\x7f", 6,
                            "lines", 1, "bad", 0);
    char *page = render(doc);

    (void)state;
    assert_markup(page);
    assert_non_null(strstr(page, ">a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd</td>"));
    free(page);
    json_decref(doc);
}

/* ---- the timeline ------------------------------------------------------------------- */

static void assert_inside(const double *xy, size_t n)
{
    assert_true(n % 2 == 0);
    for (size_t i = 0; i < n; i += 2) {
        assert_true(xy[i] >= 0 && xy[i] <= VIEW_W);
        assert_true(xy[i + 1] >= 0 && xy[i + 1] <= VIEW_H);
    }
}

static void test_timeline_empty(void **state)
{
    json_t *doc = timeline_doc(0, 0, 0, 0);
    char *page = render(doc);

    (void)state;
    assert_markup(page);
    assert_int_equal(count(page, "<section id=\"timeline\">"), 1);
    assert_int_equal(count(page, "<svg"), 0);
    assert_non_null(strstr(page, "No requests in the period"));
    free(page);
    json_decref(doc);
}

/* One point: a dot per series at the middle of its minute, labelled ticks inside it. */
static void test_timeline_one_point(void **state)
{
    json_t *doc = timeline_doc(1, 0, 0, 5);
    char *page = render(doc), *p;
    double cx = -1;

    (void)state;
    assert_markup(page);
    assert_int_equal(svgs_in(page, "timeline"), 2);
    assert_int_equal(count(page, "<circle"), 4);
    for (p = strstr(page, "<circle"); p; p = strstr(p + 1, "<circle")) {
        double x = strtod(strstr(p, "cx=\"") + 4, NULL);

        assert_true(x > 0 && x < VIEW_W);
        if (cx >= 0)
            assert_true(x == cx);
        cx = x;
    }
    assert_true(cx > VIEW_W * 0.4 && cx < VIEW_W * 0.6);
    assert_non_null(strstr(page, ">00:00:00</text>"));
    assert_in_range(count(page, "class=\"xt\""), 2 * 2, 2 * 8);
    free(page);
    json_decref(doc);
}

/* 2,000 points: merged to at most 600 drawn, each the max of its group (the one spike of
 * 5xx still reaches the top of the chart), p95 broken where it is null, few labelled ticks,
 * every coordinate inside the drawing and x never going back. */
static void test_timeline_many_points(void **state)
{
    static double xy[4096];
    json_t *doc = timeline_doc(2000, 1000, 1100, 1234);
    char *page = render(doc);
    double top = VIEW_H;
    size_t n;

    (void)state;
    assert_markup(page);
    assert_int_equal(svgs_in(page, "timeline"), 2);
    assert_non_null(strstr(page, "highest of 4 intervals"));
    assert_in_range(count(page, "class=\"xt\""), 2 * 2, 2 * 8);
    assert_non_null(strstr(page, ">11-23 06:00</text>"));

    n = path_coords(page, "s-req", xy, 4096);
    assert_in_range(n, 2 * 400, 2 * 600);
    assert_inside(xy, n);
    for (size_t i = 2; i < n; i += 2)
        assert_true(xy[i] >= xy[i - 2]);

    n = path_coords(page, "s-5xx", xy, 4096);
    assert_inside(xy, n);
    for (size_t i = 1; i < n; i += 2)
        top = xy[i] < top ? xy[i] : top;
    assert_true(top < VIEW_H * 0.2);         /* 999 of a scale to 1000 */

    n = path_coords(page, "s-p95", xy, 4096);
    assert_inside(xy, n);
    {
        const char *d = strstr(page, "<path class=\"s-p95\" d=\"");
        const char *end = strchr(d + 23, '"');
        size_t moves = 0;

        for (const char *c = d + 23; c < end; c++)
            moves += *c == 'M';
        assert_int_equal(moves, 2);          /* one gap: 1000 .. 1099 */
    }
    assert_true(strlen(page) < 256 * 1024);
    free(page);
    json_decref(doc);
}

/* Starts that do not parse: x by index, labelled with the strings themselves (escaped). */
static void test_timeline_bad_starts(void **state)
{
    json_t *doc = timeline_doc(30, 0, 0, 3);
    json_t *points = json_object_get(json_object_get(doc, "timeline"), "points");
    char *page;

    (void)state;
    json_object_set_new(json_array_get(points, 0), "start", json_string("<soon>"));
    json_object_set_new(json_array_get(points, 7), "start", json_integer(7));
    page = render(doc);
    assert_markup(page);
    assert_int_equal(svgs_in(page, "timeline"), 2);
    assert_non_null(strstr(page, ">&lt;soon&gt;</text>"));
    free(page);
    json_decref(doc);
}

/* Absurd figures (an interval of 1e308 s or of 1e-300 s, counts of 1.7e308, negative ones)
 * end, with few ticks and gridlines and no "nan" or "inf" among the coordinates. */
static void test_timeline_absurd_figures(void **state)
{
    static const double intervals[] = {1e308, 1e-300, -60, 0, 1e15};
    static double xy[64];

    (void)state;
    for (size_t k = 0; k < sizeof(intervals) / sizeof(intervals[0]); k++) {
        json_t *doc = timeline_doc(3, 0, 0, 1);
        json_t *tl = json_object_get(doc, "timeline");
        json_t *points = json_object_get(tl, "points");
        char *page;
        size_t n;

        json_object_set_new(tl, "interval_s", json_real(intervals[k]));
        json_object_set_new(json_array_get(points, 0), "requests", json_real(1.7e308));
        json_object_set_new(json_array_get(points, 1), "requests", json_real(-1e308));
        json_object_set_new(json_array_get(points, 2), "p95_ms", json_real(1e-300));
        json_object_set_new(json_array_get(points, 1), "p95_ms", json_real(1.7e308));
        page = render(doc);
        assert_markup(page);
        assert_int_equal(svgs_in(page, "timeline"), 2);
        assert_true(count(page, "class=\"xt\"") <= 2 * 12);
        assert_true(count(page, "<line class=\"gl\"") <= 2 * 12);
        n = path_coords(page, "s-req", xy, 64);
        assert_int_equal(n, 6);
        assert_inside(xy, n);
        assert_null(strstr(page, "nan"));
        free(page);
        json_decref(doc);
    }
}

/* ---- sections absent, types wrong ----------------------------------------------------- */

static void test_sections_absent(void **state)
{
    static const char *const ids[] = {"overview", "services", "timeline", "top",
                                      "rate_limiting", "denials", "admin", "changes",
                                      "suspects"};
    const size_t nids = sizeof(ids) / sizeof(ids[0]);

    (void)state;
    for (size_t keep = 0; keep <= nids; keep++) {
        json_t *doc = json_deep_copy(fixture);
        char *page;

        for (size_t i = 0; i < nids; i++)
            if (i != keep)
                json_object_del(doc, ids[i]);
        if (keep < nids && keep % 2)        /* null is absent too */
            json_object_set_new(doc, ids[(keep + 1) % nids], json_null());
        page = render(doc);
        assert_markup(page);
        assert_self_contained(page);
        for (size_t i = 0; i < nids; i++) {
            char open[64], link[64];

            snprintf(open, sizeof(open), "<section id=\"%s\">", ids[i]);
            snprintf(link, sizeof(link), "href=\"#%s\"", ids[i]);
            assert_int_equal(count(page, open), i == keep);
            assert_int_equal(count(page, link), i == keep);
        }
        assert_int_equal(count(page, "<svg"), keep == 0 ? 1 : keep == 2 ? 2 : 0);
        free(page);
        json_decref(doc);
    }
}

static void test_empty_and_null_documents(void **state)
{
    json_t *empty = json_object(), *array = json_array();
    char *page;

    (void)state;
    page = render(NULL);
    assert_markup(page);
    assert_null(strstr(page, "<section"));
    free(page);
    page = render(empty);
    assert_markup(page);
    assert_null(strstr(page, "<section"));
    assert_non_null(strstr(page, "<h1>Switchyard log report</h1>"));
    free(page);
    page = render(array);
    assert_markup(page);
    free(page);
    json_decref(empty);
    json_decref(array);
}

static void test_wrong_types(void **state)
{
    json_error_t err;
    json_t *doc = json_loads(
        "{\"version\": \"one\", \"generated\": 5, \"approximate\": \"yes\","
        " \"inputs\": [1, null, {\"name\": 5, \"lines\": \"many\", \"error\": [1]}],"
        " \"lines\": {\"total\": \"x\", \"first_bad\": {\"file\": null, \"line\": \"17\"}},"
        " \"filters\": {\"since\": 3, \"service\": {\"a\": 1}},"
        " \"period\": {\"first\": 7, \"last\": \"2026-13-45T99:00:00Z\"},"
        " \"overview\": {\"requests\": 1e300, \"bytes_in\": -5, \"status\": [],"
        "   \"error_rate\": \"high\", \"duration_ms\": 3,"
        "   \"duration_buckets\": [{\"le_ms\": \"5\", \"count\": \"x\"}, 7, null,"
        "                          {\"le_ms\": null, \"count\": -3}]},"
        " \"services\": {\"web\": 1},"
        " \"timeline\": {\"interval_s\": \"60\", \"points\": [1, {\"start\": 5},"
        "   {\"requests\": -7, \"p95_ms\": \"fast\"}]},"
        " \"top\": {\"n\": \"ten\", \"paths\": [], \"clients\": {\"by_requests\": 3,"
        "   \"by_errors\": [7, {\"key\": 5, \"overcount\": \"x\"}]}, \"x\": {\"approximate\": 1}},"
        " \"rate_limiting\": {\"responses\": 3, \"events\": {\"total\": null,"
        "   \"by_client\": [{\"key\": null}], \"by_limit\": \"x\"}},"
        " \"denials\": [],"
        " \"admin\": {\"auth_failures\": {\"events\": [1, \"x\", {\"ts\": 5, \"path\": []}]},"
        "   \"admin_actions\": []},"
        " \"changes\": {\"rollouts\": {\"total\": 1, \"omitted\": -1, \"events\": {}}},"
        " \"suspects\": {\"thresholds\": [], \"clients\": [{\"flags\": \"peak_rps\"}, 5,"
        "   {\"client_ip\": 1, \"flags\": [1, null, \"peak_rps\"]}]}}", 0, &err);
    char *page;

    (void)state;
    if (doc == NULL)
        fail_msg("document: %s", err.text);
    page = render(doc);
    assert_markup(page);
    assert_self_contained(page);
    assert_int_equal(count(page, "<section"), 9);
    free(page);
    json_decref(doc);
}

/* A value of another type, or of the same type with awkward content. */
static json_t *random_value(uint64_t *rs)
{
    switch (rnd(rs) % 9) {
    case 0: return json_null();
    case 1: return json_integer((json_int_t)(rnd(rs) % 2000001) - 1000000);
    case 2: return json_real(rnd01(rs) < 0.3 ? -1e300 : rnd01(rs) < 0.5 ? 1.7e308
                             : 1e300 * rnd01(rs));
    case 3: return json_string("<i>'\"&");
    case 4: return json_string("");
    case 5: return json_array();
    case 6: return json_object();
    case 7: return json_true();
    default: return json_pack("[{s:s}]", "key", "<k>");
    }
}

/* Replaces about one node in twenty by a random value. */
static void mutate(json_t *v, uint64_t *rs)
{
    const char *key;
    json_t *item;
    size_t i;
    void *tmp;

    if (json_is_array(v)) {
        json_array_foreach(v, i, item) {
            if (rnd(rs) % 20 == 0)
                json_array_set_new(v, i, random_value(rs));
            else
                mutate(item, rs);
        }
    } else if (json_is_object(v)) {
        json_object_foreach_safe(v, tmp, key, item) {
            if (rnd(rs) % 20 == 0)
                json_object_set_new(v, key, random_value(rs));
            else if (rnd(rs) % 40 == 0)
                json_object_del(v, key);
            else
                mutate(item, rs);
        }
    }
}

static void test_random_mutations(void **state)
{
    uint64_t rs = 0x6c6f67737461ull;

    (void)state;
    for (int round = 0; round < 500; round++) {
        json_t *doc = json_deep_copy(fixture);
        char *page;

        mutate(doc, &rs);
        page = render(doc);
        assert_markup(page);
        assert_self_contained(page);
        free(page);
        json_decref(doc);
    }
}

/* ---- figures and errors ------------------------------------------------------------- */

static void test_figures(void **state)
{
    json_t *doc = json_pack("{s:{s:I, s:f, s:I, s:I, s:{s:f, s:f, s:f, s:f}}}", "overview",
                            "requests", (json_int_t)1234567, "error_rate", 0.0123,
                            "bytes_in", (json_int_t)1536, "bytes_out", (json_int_t)999,
                            "duration_ms", "p50", 0.1234, "p95", 61.94, "p99", 1234.5,
                            "max", 12345.6);
    char *page = render(doc);

    (void)state;
    assert_non_null(strstr(page, ">1\xe2\x80\xaf" "234\xe2\x80\xaf" "567<"));
    assert_non_null(strstr(page, ">1.23%<"));
    assert_non_null(strstr(page, ">1.5 KiB<"));
    assert_non_null(strstr(page, ">999 B<"));
    assert_non_null(strstr(page, ">0.123<"));
    assert_non_null(strstr(page, ">61.9<"));
    assert_non_null(strstr(page, ">1235<"));
    assert_non_null(strstr(page, ">12\xe2\x80\xaf" "346<"));
    free(page);
    json_decref(doc);
}

static void test_write_error(void **state)
{
    FILE *f = fopen("/dev/full", "w");

    (void)state;
    if (f == NULL)
        skip();
    errno = 0;
    assert_int_equal(ls_html_write(f, fixture), -1);
    assert_int_equal(errno, ENOSPC);
    fclose(f);

    f = fopen("/dev/null", "r");            /* a stream that cannot be written at all */
    assert_non_null(f);
    errno = 0;
    assert_int_equal(ls_html_write(f, fixture), -1);
    assert_int_equal(errno, EBADF);
    fclose(f);

    errno = 0;
    assert_int_equal(ls_html_write(NULL, fixture), -1);
    assert_int_equal(errno, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_page),
        cmocka_unit_test(test_escaping_everywhere),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_timeline_empty),
        cmocka_unit_test(test_timeline_one_point),
        cmocka_unit_test(test_timeline_many_points),
        cmocka_unit_test(test_timeline_bad_starts),
        cmocka_unit_test(test_timeline_absurd_figures),
        cmocka_unit_test(test_sections_absent),
        cmocka_unit_test(test_empty_and_null_documents),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_figures),
        cmocka_unit_test(test_write_error),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
