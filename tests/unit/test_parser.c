/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_parser.c: the HTTP/1.1 parser. Valid requests of every form, a
 * table of malformed requests (each parsed whole, byte by byte and in random
 * splits), limits, responses and their framing, and the chunked decoder fed
 * at every split. "--write-catalogue ROOT" writes the malformed table as
 * ROOT/tests/integration/data/malformed_requests.txt and as fuzz seeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "http/parser.h"

#define MAX_HEADERS 128
#define S(lit) lit, sizeof(lit) - 1

static const struct sy_parse_limits limits = {
    .max_head_bytes = 16384, .max_uri_bytes = 8192, .max_headers = 100,
};

static struct sy_header headers[MAX_HEADERS];
static struct sy_header headers2[MAX_HEADERS];

/* ---- helpers ------------------------------------------------------------- */

static enum sy_parse_status
parse_req_lim(struct sy_http_head *h, struct sy_header *hs, const char *s, size_t n,
              const struct sy_parse_limits *lim)
{
    h->headers = hs;
    sy_http_head_reset(h);
    return sy_http_parse_request(h, s, n, lim);
}

static enum sy_parse_status
parse_req(struct sy_http_head *h, const char *s, size_t n)
{
    return parse_req_lim(h, headers, s, n, &limits);
}

/* Feeds growing prefixes ending at the given cut points, then the whole. */
static enum sy_parse_status
parse_req_cuts(struct sy_http_head *h, struct sy_header *hs, const char *s, size_t n,
               const size_t *cuts, size_t ncuts, const struct sy_parse_limits *lim)
{
    enum sy_parse_status st = SY_PARSE_AGAIN;
    char *copy = malloc(n ? n : 1);

    /* a private copy, so that a read past the prefix shows under ASan as past the data */
    memcpy(copy, s, n);
    h->headers = hs;
    sy_http_head_reset(h);
    for (size_t i = 0; i < ncuts && st == SY_PARSE_AGAIN; i++)
        st = sy_http_parse_request(h, copy, cuts[i], lim);
    if (st == SY_PARSE_AGAIN)
        st = sy_http_parse_request(h, copy, n, lim);
    free(copy);
    return st;
}

static void
assert_same_head(const struct sy_http_head *a, const struct sy_http_head *b, enum sy_parse_status sa,
                 enum sy_parse_status sb)
{
    assert_int_equal(sa, sb);
    if (sa == SY_PARSE_ERROR) {
        assert_int_equal(a->error_status, b->error_status);
        assert_string_equal(a->error_reason, b->error_reason);
        return;
    }
    if (sa != SY_PARSE_DONE)
        return;
    assert_int_equal(a->head_len, b->head_len);
    assert_int_equal(a->nheaders, b->nheaders);
    assert_int_equal(a->method, b->method);
    assert_int_equal(a->target.off, b->target.off);
    assert_int_equal(a->target.len, b->target.len);
    assert_int_equal(a->path.len, b->path.len);
    assert_int_equal(a->host.off, b->host.off);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->keep_alive, b->keep_alive);
    for (uint32_t i = 0; i < a->nheaders; i++) {
        assert_int_equal(a->headers[i].value.off, b->headers[i].value.off);
        assert_int_equal(a->headers[i].value.len, b->headers[i].value.len);
        assert_int_equal(a->headers[i].hop_by_hop, b->headers[i].hop_by_hop);
    }
}

/* Whole buffer, one byte at a time, and random splits all agree. */
static enum sy_parse_status
parse_req_all_ways(struct sy_http_head *h, const char *s, size_t n, const struct sy_parse_limits *lim)
{
    struct sy_http_head b;
    size_t *cuts = malloc((n + 1) * sizeof(*cuts));
    enum sy_parse_status st = parse_req_lim(h, headers, s, n, lim);

    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    assert_same_head(h, &b, st, parse_req_cuts(&b, headers2, s, n, cuts, n, lim));
    for (int round = 0; round < 4; round++) {
        size_t k = 0, at = 0;
        while (at < n) {
            at += 1 + (size_t)rand() % 64;
            cuts[k++] = at < n ? at : n;
        }
        assert_same_head(h, &b, st, parse_req_cuts(&b, headers2, s, n, cuts, k, lim));
    }
    free(cuts);
    return st;
}

static bool
span_is(const char *buf, struct sy_span sp, const char *want)
{
    return sp.len == strlen(want) && memcmp(buf + sp.off, want, sp.len) == 0;
}

#define assert_span(buf, sp, want)                                                     \
    do {                                                                               \
        if (!span_is((buf), (sp), (want)))                                             \
            fail_msg("span \"%.*s\" != \"%s\"", (int)(sp).len, (buf) + (sp).off, (want)); \
    } while (0)

/* ---- valid requests -------------------------------------------------------- */

static void
test_origin_form(void **state)
{
    (void)state;
    static const char req[] = "GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com\r\n"
                              "User-Agent: t\r\nX-Empty:\r\nX-Pad: \t v a l \t \r\n\r\nBODY";
    struct sy_http_head h;

    assert_int_equal(parse_req_all_ways(&h, S(req), &limits), SY_PARSE_DONE);
    assert_int_equal(h.head_len, sizeof(req) - 1 - 4);
    assert_int_equal(h.method, SY_METHOD_GET);
    assert_span(req, h.method_text, "GET");
    assert_span(req, h.target, "/a/b?x=1&y");
    assert_span(req, h.path, "/a/b");
    assert_span(req, h.query, "x=1&y");
    assert_false(h.absolute_form);
    assert_int_equal(h.version_minor, 1);
    assert_span(req, h.host, "example.com");
    assert_int_equal(h.body, SY_BODY_NONE);
    assert_true(h.keep_alive);
    assert_false(h.upgrade);
    assert_false(h.expect_continue);
    assert_int_equal(h.nheaders, 4);
    assert_span(req, h.headers[0].name, "Host");
    assert_int_equal(h.headers[0].id, SY_HDR_HOST);
    assert_int_equal(h.headers[0].line_end, strstr(req, "User-Agent") - req);
    assert_int_equal(h.headers[1].id, SY_HDR_USER_AGENT);
    assert_span(req, h.headers[2].value, "");
    assert_span(req, h.headers[3].value, "v a l");
    assert_int_equal(h.headers[3].line_end, h.head_len - 2);
    assert_int_equal(sy_http_find(&h, SY_HDR_USER_AGENT), 1);
    assert_int_equal(sy_http_find(&h, SY_HDR_COOKIE), -1);
}

static void
test_absolute_form(void **state)
{
    (void)state;
    static const char req[] = "GET http://Example.com:8080/p/q?z HTTP/1.1\r\n"
                              "Host: example.COM:8080\r\n\r\n";
    static const char req10[] = "GET HTTPS://a.example HTTP/1.0\r\n\r\n";
    static const char req_q[] = "GET http://a.example?q=1 HTTP/1.0\r\n\r\n";
    struct sy_http_head h;

    assert_int_equal(parse_req_all_ways(&h, S(req), &limits), SY_PARSE_DONE);
    assert_true(h.absolute_form);
    assert_span(req, h.path, "/p/q");
    assert_span(req, h.query, "z");
    assert_span(req, h.host, "example.COM:8080");

    assert_int_equal(parse_req_all_ways(&h, S(req10), &limits), SY_PARSE_DONE);
    assert_true(h.absolute_form);
    assert_span(req10, h.host, "a.example");
    assert_int_equal(h.path.len, 0);
    assert_int_equal(h.query.len, 0);
    assert_false(h.keep_alive);

    assert_int_equal(parse_req(&h, S(req_q)), SY_PARSE_DONE);
    assert_int_equal(h.path.len, 0);
    assert_span(req_q, h.query, "q=1");
}

static void
test_connect_options_other(void **state)
{
    (void)state;
    static const char conn[] = "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n";
    static const char conn6[] = "CONNECT [::1]:443 HTTP/1.0\r\n\r\n";
    static const char opt[] = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char other[] = "PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char lower[] = "get / HTTP/1.1\r\nHost: h\r\n\r\n";
    struct sy_http_head h;

    assert_int_equal(parse_req_all_ways(&h, S(conn), &limits), SY_PARSE_DONE);
    assert_int_equal(h.method, SY_METHOD_CONNECT);
    assert_span(conn, h.host, "a.example:443");
    assert_int_equal(h.path.len, 0);
    assert_int_equal(parse_req(&h, S(conn6)), SY_PARSE_DONE);
    assert_span(conn6, h.host, "[::1]:443");
    assert_int_equal(parse_req_all_ways(&h, S(opt), &limits), SY_PARSE_DONE);
    assert_int_equal(h.method, SY_METHOD_OPTIONS);
    assert_span(opt, h.path, "*");
    assert_int_equal(parse_req(&h, S(other)), SY_PARSE_DONE);
    assert_int_equal(h.method, SY_METHOD_OTHER);
    assert_span(other, h.method_text, "PURGE");
    assert_int_equal(parse_req(&h, S(lower)), SY_PARSE_DONE);
    assert_int_equal(h.method, SY_METHOD_OTHER);
}

static void
test_methods(void **state)
{
    (void)state;
    static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT",
                                         "OPTIONS", "TRACE", "PATCH" };
    char buf[128];
    struct sy_http_head h;

    for (int m = SY_METHOD_GET; m <= SY_METHOD_PATCH; m++) {
        const char *target = m == SY_METHOD_CONNECT ? "h:1" : "/";
        int n = snprintf(buf, sizeof(buf), "%s %s HTTP/1.1\r\nHost: h:1\r\n\r\n", names[m - 1],
                         target);
        assert_int_equal(parse_req(&h, buf, (size_t)n), SY_PARSE_DONE);
        assert_int_equal(h.method, m);
        assert_string_equal(sy_method_name((enum sy_method)m), names[m - 1]);
    }
    assert_string_equal(sy_method_name(SY_METHOD_OTHER), "OTHER");
}

static void
test_leading_crlf_and_http10(void **state)
{
    (void)state;
    static const char req[] = "\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    static const char req2[] = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n";
    struct sy_http_head h;

    assert_int_equal(parse_req_all_ways(&h, S(req), &limits), SY_PARSE_DONE);
    assert_int_equal(h.method_text.off, 4);
    assert_int_equal(h.version_minor, 0);
    assert_int_equal(h.host.len, 0);
    assert_true(h.keep_alive);
    assert_int_equal(h.head_len, sizeof(req) - 1);
    assert_int_equal(parse_req(&h, S(req2)), SY_PARSE_DONE);
    assert_false(h.keep_alive);
}

static void
test_header_ids(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nhOST: h\r\nCONTENT-length: 0\r\n"
                              "connection: keep-alive\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\n"
                              "te: trailers\r\ntrailer: x\r\nupgrade: y\r\nExpect: 100-Continue\r\n"
                              "x-forwarded-for: 1\r\nX-Forwarded-Proto: a\r\nX-FORWARDED-HOST: b\r\n"
                              "x-request-id: 1\r\nuser-agent: u\r\nCookie: c\r\nX-Other: 1\r\n"
                              "Hosts: 1\r\nTE_: 1\r\nX_Forwarded_For: 1\r\n"
                              "x-forwarded_PROTO: 1\r\nX_Forwarded-Host: 1\r\nX_Request_Id: 1\r\n"
                              "Content_Length: 1\r\nX_Forwarded_Fox: 1\r\n\r\n";
    static const uint8_t want[] = {
        SY_HDR_HOST, SY_HDR_CONTENT_LENGTH, SY_HDR_CONNECTION, SY_HDR_KEEP_ALIVE,
        SY_HDR_PROXY_CONNECTION, SY_HDR_TE, SY_HDR_TRAILER, SY_HDR_UPGRADE, SY_HDR_EXPECT,
        SY_HDR_X_FORWARDED_FOR, SY_HDR_X_FORWARDED_PROTO, SY_HDR_X_FORWARDED_HOST,
        SY_HDR_X_REQUEST_ID, SY_HDR_USER_AGENT, SY_HDR_COOKIE, SY_HDR_OTHER, SY_HDR_OTHER,
        SY_HDR_OTHER, SY_HDR_UNDERSCORE_TWIN, SY_HDR_UNDERSCORE_TWIN, SY_HDR_UNDERSCORE_TWIN,
        SY_HDR_UNDERSCORE_TWIN, SY_HDR_OTHER, SY_HDR_OTHER,
    };
    static const bool hop[] = { 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                0, 0, 0, 0, 0, 0 };
    struct sy_http_head h;

    assert_int_equal(parse_req(&h, S(req)), SY_PARSE_DONE);
    assert_int_equal(h.nheaders, sizeof(want));
    for (size_t i = 0; i < sizeof(want); i++) {
        assert_int_equal(h.headers[i].id, want[i]);
        assert_int_equal(h.headers[i].hop_by_hop, hop[i]);
    }
    assert_true(h.expect_continue);
    assert_false(h.upgrade);
}

static void
test_bodies(void **state)
{
    (void)state;
    static const char cl[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0012\r\n\r\n";
    static const char cl0[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    static const char clmax[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n";
    static const char te[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\t ChUnKeD \t\r\n\r\n";
    struct sy_http_head h;

    assert_int_equal(parse_req(&h, S(cl)), SY_PARSE_DONE);
    assert_int_equal(h.body, SY_BODY_LENGTH);
    assert_int_equal(h.content_length, 12);
    assert_int_equal(parse_req(&h, S(cl0)), SY_PARSE_DONE);
    assert_int_equal(h.body, SY_BODY_NONE);
    assert_int_equal(parse_req(&h, S(clmax)), SY_PARSE_DONE);
    assert_true(h.content_length == INT64_MAX);
    assert_int_equal(parse_req_all_ways(&h, S(te), &limits), SY_PARSE_DONE);
    assert_int_equal(h.body, SY_BODY_CHUNKED);
    assert_true(h.headers[1].hop_by_hop);
}

static void
test_connection_and_upgrade(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Foo: 1\r\nContent-Length: 0\r\n"
                              "Connection: ,close ,, x-foo, Content-Length, Host\r\nx-bar: 2\r\n"
                              "Connection: X-BAR\r\n\r\n";
    static const char up[] = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n";
    static const char noup[] = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n";
    static const char exp10[] = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    struct sy_http_head h;

    assert_int_equal(parse_req_all_ways(&h, S(req), &limits), SY_PARSE_DONE);
    assert_false(h.keep_alive);
    assert_false(h.headers[0].hop_by_hop);      /* Host is never dropped */
    assert_true(h.headers[1].hop_by_hop);
    assert_false(h.headers[2].hop_by_hop);      /* nor Content-Length */
    assert_true(h.headers[3].hop_by_hop);
    assert_true(h.headers[4].hop_by_hop);
    assert_int_equal(parse_req(&h, S(up)), SY_PARSE_DONE);
    assert_true(h.upgrade);
    assert_true(h.keep_alive);
    assert_true(h.headers[2].hop_by_hop);
    assert_int_equal(parse_req(&h, S(noup)), SY_PARSE_DONE);
    assert_false(h.upgrade);
    assert_int_equal(parse_req(&h, S(exp10)), SY_PARSE_DONE);
    assert_false(h.expect_continue);
}

static void
test_value_bytes(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nX: \x80\xff caf\xc3\xa9 \"q\"\t!~\r\n\r\n";
    struct sy_http_head h;

    assert_int_equal(parse_req(&h, S(req)), SY_PARSE_DONE);
    assert_span(req, h.headers[1].value, "\x80\xff caf\xc3\xa9 \"q\"\t!~");
}

/* ---- malformed requests ------------------------------------------------------ */

struct bad_case {
    const char *name;
    const char *raw;
    size_t len;
    int status;
    const char *reason;
};

#define BAD(name, raw, status, reason) { name, raw, sizeof(raw) - 1, status, reason }
#define HOST "Host: h\r\n"

static const struct bad_case bad_cases[] = {
    BAD("bare-lf-request-line", "GET / HTTP/1.1\n" HOST "\r\n", 400, "bare LF line ending"),
    BAD("bare-lf-header", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400, "bare LF line ending"),
    BAD("bare-lf-end-of-head", "GET / HTTP/1.1\r\n" HOST "\n", 400, "bare LF line ending"),
    BAD("bare-lf-leading", "\nGET / HTTP/1.1\r\n" HOST "\r\n", 400, "bare LF line ending"),
    BAD("bare-lf-after-method", "GET\n/ HTTP/1.1\r\n" HOST "\r\n", 400, "bare LF line ending"),
    BAD("bare-cr-header-value", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400, "bare CR"),
    BAD("bare-cr-request-line", "GET / HTTP/1.1\r" HOST "\r\n", 400, "bare CR"),
    BAD("bare-cr-in-target", "GET /a\rb HTTP/1.1\r\n" HOST "\r\n", 400, "bare CR"),
    BAD("bare-cr-leading", "\rGET / HTTP/1.1\r\n" HOST "\r\n", 400, "bare CR"),
    BAD("bare-cr-header-name", "GET / HTTP/1.1\r\n" HOST "X\rY: 1\r\n\r\n", 400, "bare CR"),
    BAD("invalid-method-char", "GE(T / HTTP/1.1\r\n" HOST "\r\n", 400, "invalid method"),
    BAD("empty-method", " / HTTP/1.1\r\n" HOST "\r\n", 400, "invalid method"),
    BAD("tab-after-method", "GET\t/ HTTP/1.1\r\n" HOST "\r\n", 400, "invalid method"),
    BAD("two-spaces-after-method", "GET  / HTTP/1.1\r\n" HOST "\r\n", 400,
        "invalid request target"),
    BAD("two-spaces-before-version", "GET /  HTTP/1.1\r\n" HOST "\r\n", 400,
        "invalid HTTP version"),
    BAD("ctl-in-target", "GET /\x01 HTTP/1.1\r\n" HOST "\r\n", 400, "invalid request target"),
    BAD("nul-in-target", "GET /a\0b HTTP/1.1\r\n" HOST "\r\n", 400, "invalid request target"),
    BAD("del-in-target", "GET /\x7f HTTP/1.1\r\n" HOST "\r\n", 400, "invalid request target"),
    BAD("high-byte-in-target", "GET /\xff HTTP/1.1\r\n" HOST "\r\n", 400,
        "invalid request target"),
    BAD("fragment-in-target", "GET /a#b HTTP/1.1\r\n" HOST "\r\n", 400,
        "invalid request target"),
    BAD("missing-version", "GET /\r\n" HOST "\r\n", 400, "invalid request line"),
    BAD("method-only", "GET\r\n" HOST "\r\n", 400, "invalid request line"),
    BAD("http-2-0", "GET / HTTP/2.0\r\n" HOST "\r\n", 505, "unsupported HTTP version"),
    BAD("http-1-2", "GET / HTTP/1.2\r\n" HOST "\r\n", 505, "unsupported HTTP version"),
    BAD("http-0-9-version", "GET / HTTP/0.9\r\n" HOST "\r\n", 505, "unsupported HTTP version"),
    BAD("lowercase-version", "GET / http/1.1\r\n" HOST "\r\n", 400, "invalid HTTP version"),
    BAD("version-trailing-space", "GET / HTTP/1.1 \r\n" HOST "\r\n", 400, "invalid HTTP version"),
    BAD("version-1-10", "GET / HTTP/1.10\r\n" HOST "\r\n", 400, "invalid HTTP version"),
    BAD("relative-target", "GET a/b HTTP/1.1\r\n" HOST "\r\n", 400, "invalid request target"),
    BAD("ftp-scheme", "GET ftp://h/ HTTP/1.1\r\n" HOST "\r\n", 400, "invalid request target"),
    BAD("absolute-userinfo", "GET http://u@h/ HTTP/1.1\r\n" HOST "\r\n", 400,
        "invalid authority in request target"),
    BAD("absolute-empty-authority", "GET http:///x HTTP/1.1\r\n" HOST "\r\n", 400,
        "invalid authority in request target"),
    BAD("absolute-host-conflict", "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
        400, "Host conflicts with request target"),
    BAD("absolute-missing-host", "GET http://a.example/ HTTP/1.1\r\n\r\n", 400, "missing Host"),
    BAD("authority-form-without-connect", "GET h:80 HTTP/1.1\r\n" HOST "\r\n", 400,
        "invalid request target"),
    BAD("connect-origin-form", "CONNECT / HTTP/1.1\r\n" HOST "\r\n", 400,
        "CONNECT needs an authority-form target"),
    BAD("connect-without-port", "CONNECT h HTTP/1.1\r\n" HOST "\r\n", 400,
        "CONNECT needs an authority-form target"),
    BAD("connect-host-conflict", "CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n\r\n", 400,
        "Host conflicts with request target"),
    BAD("asterisk-with-get", "GET * HTTP/1.1\r\n" HOST "\r\n", 400,
        "asterisk-form only with OPTIONS"),
    BAD("obs-fold", "GET / HTTP/1.1\r\n" HOST "X: y\r\n z\r\n\r\n", 400, "obsolete line folding"),
    BAD("obs-fold-tab", "GET / HTTP/1.1\r\n" HOST "X: y\r\n\tz\r\n\r\n", 400,
        "obsolete line folding"),
    BAD("space-before-first-header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400,
        "obsolete line folding"),
    BAD("space-before-colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400,
        "whitespace before colon"),
    BAD("tab-before-colon", "GET / HTTP/1.1\r\n" HOST "Content-Length\t: 5\r\n\r\n", 400,
        "whitespace before colon"),
    BAD("space-in-header-name", "GET / HTTP/1.1\r\n" HOST "X Y: 1\r\n\r\n", 400,
        "invalid header name"),
    BAD("bad-char-in-header-name", "GET / HTTP/1.1\r\n" HOST "X(y): 1\r\n\r\n", 400,
        "invalid header name"),
    BAD("high-byte-in-header-name", "GET / HTTP/1.1\r\n" HOST "X\xff: 1\r\n\r\n", 400,
        "invalid header name"),
    BAD("header-without-colon", "GET / HTTP/1.1\r\n" HOST "Foo\r\n\r\n", 400,
        "invalid header name"),
    BAD("empty-header-name", "GET / HTTP/1.1\r\n" HOST ": v\r\n\r\n", 400, "invalid header name"),
    BAD("nul-in-header-value", "GET / HTTP/1.1\r\n" HOST "X: a\0b\r\n\r\n", 400,
        "control character in header value"),
    BAD("ctl-in-header-value", "GET / HTTP/1.1\r\n" HOST "X: a\x01\r\n\r\n", 400,
        "control character in header value"),
    BAD("del-in-header-value", "GET / HTTP/1.1\r\n" HOST "X: a\x7f\r\n\r\n", 400,
        "control character in header value"),
    BAD("vtab-in-transfer-encoding", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\x0b\r\n\r\n",
        400, "control character in header value"),
    BAD("missing-host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "missing Host"),
    BAD("several-host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400,
        "several Host headers"),
    BAD("empty-host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400, "invalid Host"),
    BAD("host-with-space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"),
    BAD("host-with-slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"),
    BAD("host-with-userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "invalid Host"),
    BAD("host-with-query", "GET / HTTP/1.1\r\nHost: a?b\r\n\r\n", 400, "invalid Host"),
    BAD("host-bad-port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, "invalid Host"),
    BAD("host-open-ipv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "invalid Host"),
    BAD("content-length-negative", "POST / HTTP/1.1\r\n" HOST "Content-Length: -1\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("content-length-plus", "POST / HTTP/1.1\r\n" HOST "Content-Length: +1\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("content-length-list", "POST / HTTP/1.1\r\n" HOST "Content-Length: 1, 1\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("content-length-empty", "POST / HTTP/1.1\r\n" HOST "Content-Length:\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("content-length-inner-space", "POST / HTTP/1.1\r\n" HOST "Content-Length: 1 2\r\n\r\n",
        400, "invalid Content-Length"),
    BAD("content-length-hex", "POST / HTTP/1.1\r\n" HOST "Content-Length: 0x10\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("content-length-overflow",
        "POST / HTTP/1.1\r\n" HOST "Content-Length: 9223372036854775808\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("content-length-huge",
        "POST / HTTP/1.1\r\n" HOST "Content-Length: 184467440737095516160\r\n\r\n", 400,
        "invalid Content-Length"),
    BAD("several-content-length-equal",
        "POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400,
        "several Content-Length headers"),
    BAD("several-content-length-differ",
        "POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\ncontent-length: 6\r\n\r\n", 400,
        "several Content-Length headers"),
    BAD("te-and-cl", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400, "both Content-Length and Transfer-Encoding"),
    BAD("cl-and-te", "POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400, "both Content-Length and Transfer-Encoding"),
    BAD("te-on-http-1-0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "Transfer-Encoding on HTTP/1.0"),
    BAD("several-te",
        "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400, "several Transfer-Encoding headers"),
    BAD("te-xchunked", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: xchunked\r\n\r\n", 400,
        "invalid Transfer-Encoding"),
    BAD("te-chunked-identity", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, identity\r\n\r\n",
        400, "invalid Transfer-Encoding"),
    BAD("te-chunked-param", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked;x\r\n\r\n", 400,
        "invalid Transfer-Encoding"),
    BAD("te-chunked-twice", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, chunked\r\n\r\n",
        400, "invalid Transfer-Encoding"),
    BAD("te-trailing-comma", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked,\r\n\r\n", 400,
        "invalid Transfer-Encoding"),
    BAD("te-quoted", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: \"chunked\"\r\n\r\n", 400,
        "invalid Transfer-Encoding"),
    BAD("te-inner-space", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chun ked\r\n\r\n", 400,
        "invalid Transfer-Encoding"),
    BAD("te-gzip-only", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip\r\n\r\n", 400,
        "invalid Transfer-Encoding"),
    BAD("te-gzip-chunked", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\n\r\n",
        501, "unsupported Transfer-Encoding"),
    BAD("te-deflate-chunked", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: deflate,chunked\r\n\r\n",
        501, "unsupported Transfer-Encoding"),
    BAD("te-space-before-colon", "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding : chunked\r\n\r\n",
        400, "whitespace before colon"),
    BAD("expect-other", "PUT / HTTP/1.1\r\n" HOST "Expect: 200-ok\r\n\r\n", 417,
        "unsupported expectation"),
    BAD("expect-list", "PUT / HTTP/1.1\r\n" HOST "Expect: 100-continue, x\r\n\r\n", 417,
        "unsupported expectation"),
    BAD("connection-bad-token", "GET / HTTP/1.1\r\n" HOST "Connection: close, a b\r\n\r\n", 400,
        "invalid Connection header"),
};

#define NBAD (sizeof(bad_cases) / sizeof(bad_cases[0]))
#define NBIG 4

static char big_raw[NBIG][20000];
static struct bad_case big_cases[NBIG];

/* Cases over the default limits, too big to write as literals. */
static const struct bad_case *
big_case(int i)
{
    char *b = big_raw[i];
    size_t n = 0;

    if (big_cases[i].name)
        return &big_cases[i];
    switch (i) {
    case 0:
        n = (size_t)sprintf(b, "GET /");
        memset(b + n, 'a', 8192);
        n += 8192;
        n += (size_t)sprintf(b + n, " HTTP/1.1\r\n" HOST "\r\n");
        big_cases[i] = (struct bad_case){ "target-too-long", b, n, 414, "request target too long" };
        break;
    case 1:
        n = (size_t)sprintf(b, "GET / HTTP/1.1\r\n" HOST);
        for (int k = 0; k < 100; k++)
            n += (size_t)sprintf(b + n, "X-%d: 1\r\n", k);
        n += (size_t)sprintf(b + n, "\r\n");
        big_cases[i] = (struct bad_case){ "too-many-headers", b, n, 431, "too many headers" };
        break;
    case 2:
        n = (size_t)sprintf(b, "GET / HTTP/1.1\r\n" HOST "X-Big: ");
        memset(b + n, 'v', 16384);
        n += 16384;
        n += (size_t)sprintf(b + n, "\r\n\r\n");
        big_cases[i] = (struct bad_case){ "head-too-large", b, n, 431, "request head too large" };
        break;
    default:
        n = (size_t)sprintf(b, "GET / HTTP/1.1\r\n" HOST "X-Many: ");
        while (n < 17000)
            n += (size_t)sprintf(b + n, "a, ");
        n += (size_t)sprintf(b + n, "\r\n\r\n");
        big_cases[i] = (struct bad_case){ "head-too-large-list", b, n, 431, "request head too large" };
        break;
    }
    return &big_cases[i];
}

static const struct bad_case *
any_case(size_t i)
{
    return i < NBAD ? &bad_cases[i] : big_case((int)(i - NBAD));
}

static void
test_malformed_requests(void **state)
{
    (void)state;
    assert_true(NBAD + NBIG >= 45);
    for (size_t i = 0; i < NBAD + NBIG; i++) {
        const struct bad_case *bc = any_case(i);
        struct sy_http_head h;
        enum sy_parse_status st = parse_req_all_ways(&h, bc->raw, bc->len, &limits);
        if (st != SY_PARSE_ERROR || h.error_status != bc->status ||
            strcmp(h.error_reason, bc->reason) != 0)
            fail_msg("%s: got %d %d \"%s\", want %d \"%s\"", bc->name, st, h.error_status,
                     st == SY_PARSE_ERROR ? h.error_reason : "", bc->status, bc->reason);
    }
}

/* ---- the catalogue for the integration suite ----------------------------- */

/* Escapes one case: printable ASCII as is, line breaks after each \n escape. */
static void
write_escaped(FILE *f, const char *raw, size_t n)
{
    bool line_start = true;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        bool edge_ws = c == ' ' && (line_start || i + 1 == n || raw[i + 1] == '\n');
        if (c == '\r')
            fputs("\\r", f);
        else if (c == '\n')
            fputs("\\n\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\0')
            fputs("\\0", f);
        else if (c == '\\')
            fputs("\\\\", f);
        else if (c < 0x20 || c >= 0x7f || edge_ws)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
        line_start = c == '\n';
    }
    if (!line_start)
        fputc('\n', f);
}

static const char catalogue_intro[] =
    "# malformed_requests.txt: malformed HTTP/1.1 request heads and the status the\n"
    "# gateway must answer (with its default limits: max_header_bytes 16384,\n"
    "# max_uri_bytes 8192, max_headers 100), then close the connection.\n"
    "# Written by `build/tests/test_parser --write-catalogue .` from the table in\n"
    "# tests/unit/test_parser.c; change the table, not this file.\n"
    "#\n"
    "# Format: lines starting with '#' before the first case are comments. Each\n"
    "# case is a block: a line \"### NAME | STATUS\", then the request bytes on one\n"
    "# or more lines. The line breaks of the file are not part of the bytes (the\n"
    "# lines of a block are joined as they are); every byte is written as itself\n"
    "# or as one of the escapes \\r \\n \\t \\0 \\\\ \\xHH. Blocks are separated\n"
    "# by one empty line.\n";

static int
write_seed(const char *dir, const char *name, const char *raw, size_t n)
{
    char path[1100];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(raw, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

static int
write_catalogue(const char *root)
{
    char path[512], seeds[512];

    snprintf(path, sizeof(path), "%s/tests/integration/data/malformed_requests.txt", root);
    snprintf(seeds, sizeof(seeds), "%s/tests/fuzz/corpus/request", root);
    mkdir(seeds, 0777);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fputs(catalogue_intro, f);
    for (size_t i = 0; i < NBAD + NBIG; i++) {
        const struct bad_case *bc = any_case(i);
        fprintf(f, "\n### %s | %d\n", bc->name, bc->status);
        write_escaped(f, bc->raw, bc->len);
        if (i < NBAD && write_seed(seeds, bc->name, bc->raw, bc->len) < 0)
            return 1;
    }
    return fclose(f) == 0 ? 0 : 1;
}

/* Decodes one block's escapes into out; returns the length. */
static size_t
unescape_block(const char *text, char *out)
{
    size_t n = 0;

    for (const char *s = text; *s; s++) {
        if (*s == '\n')
            continue;
        if (*s != '\\') {
            out[n++] = *s;
            continue;
        }
        switch (*++s) {
        case 'r': out[n++] = '\r'; break;
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case '0': out[n++] = '\0'; break;
        case '\\': out[n++] = '\\'; break;
        case 'x': {
            char hex[3] = { s[1], s[2], 0 };
            out[n++] = (char)strtol(hex, NULL, 16);
            s += 2;
            break;
        }
        default:
            fail_msg("bad escape \\%c", *s);
        }
    }
    return n;
}

/* The catalogue in the tree matches the table, case by case. */
static void
test_catalogue_file(void **state)
{
    (void)state;
    const char *path = getenv("SY_MALFORMED_CATALOGUE");
    FILE *f = fopen(path ? path : "tests/integration/data/malformed_requests.txt", "r");
    static char text[200000], raw[40000];
    char line[256];
    size_t ncases = 0;

    if (!f)
        fail_msg("cannot open the catalogue (run from the repository root, as tests/run does, "
                 "or set SY_MALFORMED_CATALOGUE)");
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    for (char *at = strstr(text, "\n### "); at; ncases++) {
        char *body = strchr(at + 1, '\n') + 1;
        char *next = strstr(body, "\n\n### ");
        int status = 0;
        snprintf(line, sizeof(line), "%.*s", (int)(body - at - 2), at + 1);
        assert_int_equal(sscanf(strchr(line, '|') + 1, "%d", &status), 1);
        if (next)
            next[1] = '\0';
        size_t n = unescape_block(body, raw);
        const struct bad_case *bc = any_case(ncases);
        if (n != bc->len || memcmp(raw, bc->raw, n) != 0 || status != bc->status)
            fail_msg("catalogue case %s differs from the table: regenerate it", line);
        at = next ? next + 1 : NULL;
    }
    assert_int_equal(ncases, NBAD + NBIG);
}

/* ---- limits ---------------------------------------------------------------- */

static void
test_limits(void **state)
{
    (void)state;
    static const char req[] = "GET /abcdef HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    struct sy_parse_limits lim = { sizeof(req) - 1, 7, 3 };
    struct sy_http_head h;

    assert_int_equal(parse_req_all_ways(&h, S(req), &lim), SY_PARSE_DONE);
    lim.max_head_bytes--;
    assert_int_equal(parse_req_all_ways(&h, S(req), &lim), SY_PARSE_ERROR);
    assert_int_equal(h.error_status, 431);
    /* reported as soon as max_head_bytes arrived without the end */
    assert_int_equal(parse_req_lim(&h, headers, req, lim.max_head_bytes, &lim), SY_PARSE_ERROR);
    assert_int_equal(parse_req_lim(&h, headers, req, lim.max_head_bytes - 1, &lim), SY_PARSE_AGAIN);
    lim.max_head_bytes++;
    lim.max_headers = 2;
    assert_int_equal(parse_req_all_ways(&h, S(req), &lim), SY_PARSE_ERROR);
    assert_int_equal(h.error_status, 431);
    assert_string_equal(h.error_reason, "too many headers");
    lim.max_headers = 3;
    lim.max_uri_bytes = 6;
    assert_int_equal(parse_req_all_ways(&h, S(req), &lim), SY_PARSE_ERROR);
    assert_int_equal(h.error_status, 414);
    /* 414 before the request line ends */
    assert_int_equal(parse_req_lim(&h, headers, req, 4 + 7, &lim), SY_PARSE_ERROR);
    assert_int_equal(h.error_status, 414);
    assert_int_equal(parse_req_lim(&h, headers, req, 4 + 6, &lim), SY_PARSE_AGAIN);
}

/* A partial head is AGAIN, then the same head completes; calls after the end are stable. */
static void
test_incremental(void **state)
{
    (void)state;
    static const char req[] = "\r\nPOST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
    struct sy_http_head h;

    h.headers = headers;
    sy_http_head_reset(&h);
    for (size_t n = 0; n < sizeof(req) - 4; n++)
        assert_int_equal(sy_http_parse_request(&h, req, n, &limits), SY_PARSE_AGAIN);
    assert_int_equal(sy_http_parse_request(&h, S(req), &limits), SY_PARSE_DONE);
    assert_int_equal(h.head_len, sizeof(req) - 4);
    assert_int_equal(h.body, SY_BODY_LENGTH);
    assert_int_equal(sy_http_parse_request(&h, S(req), &limits), SY_PARSE_DONE);
    assert_ptr_equal(h.headers, headers);
}

/* ---- responses ----------------------------------------------------------- */

static enum sy_parse_status
parse_resp(struct sy_http_head *h, const char *s, size_t n, enum sy_method m)
{
    struct sy_http_head b;
    enum sy_parse_status sb = SY_PARSE_AGAIN;

    h->headers = headers;
    sy_http_head_reset(h);
    enum sy_parse_status st = sy_http_parse_response(h, s, n, &limits, m);
    b.headers = headers2;
    sy_http_head_reset(&b);
    for (size_t i = 1; i <= n && sb == SY_PARSE_AGAIN; i++)
        sb = sy_http_parse_response(&b, s, i, &limits, m);
    assert_same_head(h, &b, st, sb);
    if (st == SY_PARSE_DONE)
        assert_int_equal(h->status, b.status);
    return st;
}

static void
test_response_basic(void **state)
{
    (void)state;
    static const char r[] = "HTTP/1.1 200 OK fine\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
    static const char r_sp[] = "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n";
    static const char r_nosp[] = "HTTP/1.0 503\r\n\r\n";
    static const char r_10ka[] = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n";
    static const char r_close[] = "HTTP/1.1 200 OK\r\nConnection: close, X-A\r\nX-A: 1\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n";
    struct sy_http_head h;

    assert_int_equal(parse_resp(&h, S(r), SY_METHOD_GET), SY_PARSE_DONE);
    assert_int_equal(h.status, 200);
    assert_span(r, h.reason, "OK fine");
    assert_int_equal(h.version_minor, 1);
    assert_int_equal(h.body, SY_BODY_LENGTH);
    assert_int_equal(h.content_length, 5);
    assert_true(h.keep_alive);
    assert_int_equal(h.head_len, sizeof(r) - 1 - 5);
    assert_int_equal(h.headers[0].name.off, 22);

    assert_int_equal(parse_resp(&h, S(r_sp), SY_METHOD_GET), SY_PARSE_DONE);
    assert_int_equal(h.status, 404);
    assert_int_equal(h.reason.len, 0);
    assert_int_equal(h.body, SY_BODY_NONE);
    assert_int_equal(parse_resp(&h, S(r_nosp), SY_METHOD_GET), SY_PARSE_DONE);
    assert_int_equal(h.status, 503);
    assert_int_equal(h.body, SY_BODY_UNTIL_CLOSE);
    assert_false(h.keep_alive);
    assert_int_equal(parse_resp(&h, S(r_10ka), SY_METHOD_GET), SY_PARSE_DONE);
    assert_true(h.keep_alive);
    assert_int_equal(parse_resp(&h, S(r_close), SY_METHOD_POST), SY_PARSE_DONE);
    assert_int_equal(h.body, SY_BODY_CHUNKED);
    assert_false(h.keep_alive);
    assert_true(h.headers[1].hop_by_hop);
    assert_true(h.headers[2].hop_by_hop);
}

static void
test_response_framing(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        enum sy_method method;
        enum sy_body_kind body;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", SY_METHOD_HEAD, SY_BODY_NONE },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", SY_METHOD_HEAD, SY_BODY_NONE },
        { "HTTP/1.1 100 Continue\r\n\r\n", SY_METHOD_POST, SY_BODY_NONE },
        { "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", SY_METHOD_GET, SY_BODY_NONE },
        { "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", SY_METHOD_GET, SY_BODY_NONE },
        { "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", SY_METHOD_GET, SY_BODY_NONE },
        { "HTTP/1.1 200 Connection established\r\n\r\n", SY_METHOD_CONNECT, SY_BODY_NONE },
        { "HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", SY_METHOD_CONNECT, SY_BODY_LENGTH },
        { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", SY_METHOD_GET, SY_BODY_NONE },
        { "HTTP/1.1 500 Oops\r\n\r\n", SY_METHOD_GET, SY_BODY_UNTIL_CLOSE },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", SY_METHOD_GET, SY_BODY_CHUNKED },
        { "HTTP/1.1 599 X\r\nContent-Length: 1\r\n\r\n", SY_METHOD_GET, SY_BODY_LENGTH },
    };
    struct sy_http_head h;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum sy_parse_status st = parse_resp(&h, cases[i].head, strlen(cases[i].head),
                                             cases[i].method);
        if (st != SY_PARSE_DONE || h.body != cases[i].body)
            fail_msg("case %zu: status %d body %d", i, st, h.body);
        if (h.body != SY_BODY_LENGTH)
            assert_int_equal(h.content_length, 0);
    }
}

static void
test_response_upgrade(void **state)
{
    (void)state;
    static const char r[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                            "Upgrade: websocket\r\n\r\n";
    static const char r2[] = "HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                             "Content-Length: 0\r\n\r\n";
    struct sy_http_head h;

    assert_int_equal(parse_resp(&h, S(r), SY_METHOD_GET), SY_PARSE_DONE);
    assert_true(h.upgrade);
    assert_int_equal(h.body, SY_BODY_NONE);
    assert_int_equal(parse_resp(&h, S(r2), SY_METHOD_GET), SY_PARSE_DONE);
    assert_false(h.upgrade);
}

static void
test_response_errors(void **state)
{
    (void)state;
#define R(lit) { lit, sizeof(lit) - 1 }
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        R("HTTP/1.1 20 OK\r\n\r\n"),
        R("HTTP/1.1 2000 OK\r\n\r\n"),
        R("HTTP/1.1 099 X\r\n\r\n"),
        R("HTTP/1.1 600 X\r\n\r\n"),
        R("HTTP/1.1 200OK\r\n\r\n"),
        R("HTTP/1.1  200 OK\r\n\r\n"),
        R("HTTP/2 200 OK\r\n\r\n"),
        R("HTTP/2.0 200 OK\r\n\r\n"),
        R("http/1.1 200 OK\r\n\r\n"),
        R("HTTP/1.1\r\n\r\n"),
        R("\r\n\r\n"),
        R("\r\nHTTP/1.1 200 OK\r\n\r\n"),
        R("HTTP/1.1 200 OK\n\r\n"),
        R("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"),
        R("HTTP/1.1 200 O\x01K\r\n\r\n"),
        R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
        R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        R("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
        R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
        R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        R("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        R("HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n"),
        R("HTTP/1.1 200 OK\r\nX : 1\r\n\r\n"),
        R("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n"),
    };
#undef R
    struct sy_http_head h;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_resp(&h, bad[i].s, bad[i].n, SY_METHOD_GET) != SY_PARSE_ERROR ||
            h.error_status != 502)
            fail_msg("response case %zu accepted", i);
        assert_non_null(h.error_reason);
    }
}

static void
test_response_limits(void **state)
{
    (void)state;
    static const char r[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    struct sy_parse_limits lim = { sizeof(r) - 1, 1, 2 };
    struct sy_http_head h = { .headers = headers };

    sy_http_head_reset(&h);
    assert_int_equal(sy_http_parse_response(&h, S(r), &lim, SY_METHOD_GET), SY_PARSE_DONE);
    lim.max_head_bytes--;
    sy_http_head_reset(&h);
    assert_int_equal(sy_http_parse_response(&h, S(r), &lim, SY_METHOD_GET), SY_PARSE_ERROR);
    assert_int_equal(h.error_status, 502);
    assert_string_equal(h.error_reason, "response head too large");
    lim.max_head_bytes++;
    lim.max_headers = 1;
    sy_http_head_reset(&h);
    assert_int_equal(sy_http_parse_response(&h, S(r), &lim, SY_METHOD_GET), SY_PARSE_ERROR);
    assert_int_equal(h.error_status, 502);
}

/* ---- chunked ------------------------------------------------------------- */

struct decoded {
    enum sy_chunk_status st;
    char data[8192];
    size_t data_len;
    size_t consumed;            /* bytes used up to DONE or ERROR */
    const char *reason;
};

/* Feeds in[0..len) in pieces ending at cuts[], collecting the data. */
static void
decode_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, struct decoded *out)
{
    struct sy_chunked c;
    size_t pos = 0;

    sy_chunked_init(&c);
    memset(out, 0, sizeof(*out));
    out->st = SY_CHUNK_AGAIN;
    for (size_t k = 0; k <= ncuts && out->st != SY_CHUNK_DONE && out->st != SY_CHUNK_ERROR; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        while (pos < end) {
            size_t used, off, dl;
            out->st = sy_chunked_decode(&c, in + pos, end - pos, &used, &off, &dl);
            assert_true(used <= end - pos);
            assert_true(off + dl <= used);
            assert_true(out->data_len + dl <= sizeof(out->data));
            memcpy(out->data + out->data_len, in + pos + off, dl);
            out->data_len += dl;
            pos += used;
            if (out->st == SY_CHUNK_DONE || out->st == SY_CHUNK_ERROR)
                break;
            if (out->st == SY_CHUNK_AGAIN)
                assert_int_equal(pos, end);
        }
    }
    if (out->st == SY_CHUNK_DATA)
        out->st = SY_CHUNK_AGAIN;   /* the input ended with data: more is needed */
    out->consumed = pos;
    out->reason = c.error_reason;
    if (out->st != SY_CHUNK_ERROR)
        assert_int_equal(c.total, out->data_len);
}

static void
assert_same_decoded(const struct decoded *a, const struct decoded *b)
{
    assert_int_equal(a->st, b->st);
    assert_int_equal(a->data_len, b->data_len);
    assert_memory_equal(a->data, b->data, a->data_len);
    if (a->st == SY_CHUNK_DONE || a->st == SY_CHUNK_ERROR)
        assert_int_equal(a->consumed, b->consumed);
    if (a->st == SY_CHUNK_ERROR)
        assert_string_equal(a->reason, b->reason);
}

/* Whole, byte by byte, and random splits must agree. */
static void
decode_all_ways(const char *in, size_t len, struct decoded *out)
{
    static struct decoded other;
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));

    decode_cuts(in, len, NULL, 0, out);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    decode_cuts(in, len, cuts, len, &other);
    assert_same_decoded(out, &other);
    for (int round = 0; round < 8; round++) {
        size_t k = 0, at = 0;
        while (at < len) {
            at += 1 + (size_t)rand() % 9;
            cuts[k++] = at < len ? at : len;
        }
        decode_cuts(in, len, cuts, k, &other);
        assert_same_decoded(out, &other);
    }
    free(cuts);
}

static void
test_chunked_valid(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *data;
    } cases[] = {
        { "5\r\nhello\r\n0\r\n\r\n", "hello" },
        { "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello world" },
        { "A\r\n0123456789\r\n0\r\n\r\n", "0123456789" },
        { "000a\r\n0123456789\r\n00\r\n\r\n", "0123456789" },
        { "00000000000000000000001\r\nx\r\n0\r\n\r\n", "x" },
        { "3;a=b;c=\"x\\\"y;\" ;d\r\nabc\r\n0;last\r\n\r\n", "abc" },
        { "3 ; a = b\t;\tc = \"\"\r\nabc\r\n0\r\n\r\n", "abc" },
        { "3;a=\"\x80\\\xff\"\r\nabc\r\n0\r\n\r\n", "abc" },
        { "1\r\n\n\r\n0\r\nX-Trailer: 1\r\nX-Empty:\r\nY: a \x80 b\r\n\r\n", "\n" },
        { "0\r\n\r\n", "" },
    };
    struct decoded d;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i].in;
        decode_all_ways(in, strlen(in), &d);
        if (d.st != SY_CHUNK_DONE)
            fail_msg("case %zu: %d %s", i, d.st, d.reason ? d.reason : "");
        assert_int_equal(d.data_len, strlen(cases[i].data));
        assert_memory_equal(d.data, cases[i].data, d.data_len);
        const char *tail = strstr(in, "GET");
        assert_int_equal(d.consumed, tail ? (size_t)(tail - in) : strlen(in));
    }
}

static void
test_chunked_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *reason;
    } cases[] = {
        { "\r\n", "empty chunk size" },
        { ";a\r\n", "empty chunk size" },
        { "g\r\n", "invalid chunk size" },
        { "-5\r\n", "invalid chunk size" },
        { "0x5\r\n", "invalid chunk size" },
        { "5x\r\n", "invalid chunk size" },
        { "+5\r\n", "invalid chunk size" },
        { "8000000000000000\r\n", "chunk size overflow" },
        { "10000000000000000\r\n", "chunk size overflow" },
        { "fffffffffffffffffff\r\n", "chunk size overflow" },
        { "5\nhello\r\n", "bare LF line ending" },
        { "5\rhello\r\n", "bare CR" },
        { "5 \r\nhello\r\n", "invalid chunk extension" },
        { "5;\r\nhello\r\n", "invalid chunk extension" },
        { "5;a=\r\nhello\r\n", "invalid chunk extension" },
        { "5;a=b c\r\nhello\r\n", "invalid chunk extension" },
        { "5;a b\r\nhello\r\n", "invalid chunk extension" },
        { "5;\"a\"\r\nhello\r\n", "invalid chunk extension" },
        { "5;a=\"x\r\nhello\r\n", "invalid chunk extension" },
        { "5;a=\"\x01\"\r\nhello\r\n", "invalid chunk extension" },
        { "5;a=\"x\"y\r\nhello\r\n", "invalid chunk extension" },
        { "5;a=b\r\r\nhello\r\n", "bare CR" },
        { "5;a=b\nhello\r\n", "bare LF line ending" },
        { "5\r\nhelloX\r\n0\r\n\r\n", "missing CRLF after chunk data" },
        { "5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data" },
        { "5\r\nhello\r0\r\n\r\n", "missing CRLF after chunk data" },
        { "5\r\nhello\r\n\r\n", "empty chunk size" },
        { "0\r\n x: 1\r\n\r\n", "obsolete line folding" },
        { "0\r\nx : 1\r\n\r\n", "whitespace before colon" },
        { "0\r\nx\r\n\r\n", "invalid header name" },
        { "0\r\n: 1\r\n\r\n", "invalid header name" },
        { "0\r\nx: \x01\r\n\r\n", "control character in header value" },
        { "0\r\nx: 1\n\r\n", "bare LF line ending" },
        { "0\r\nx: 1\rx\r\n", "bare CR" },
        { "0\r\n\rx", "bare CR" },
        { "0\r\n\n", "bare LF line ending" },
    };
    struct decoded d;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        decode_all_ways(cases[i].in, strlen(cases[i].in), &d);
        if (d.st != SY_CHUNK_ERROR || strcmp(d.reason, cases[i].reason) != 0)
            fail_msg("case %zu (%s): %d %s", i, cases[i].in, d.st, d.reason ? d.reason : "");
    }
}

static void
test_chunked_limits(void **state)
{
    (void)state;
    static char in[40000];
    struct decoded d;
    size_t n;

    /* the largest size accepted */
    n = (size_t)sprintf(in, "7fffffffffffffff\r\nabc");
    decode_all_ways(in, n, &d);
    assert_int_equal(d.st, SY_CHUNK_AGAIN);
    assert_int_equal(d.data_len, 3);

    n = (size_t)sprintf(in, "1;a=");
    memset(in + n, 'b', 4090 - n);
    n = 4090;
    n += (size_t)sprintf(in + n, "\r\nx\r\n0\r\n\r\n");
    decode_all_ways(in, n, &d);
    assert_int_equal(d.st, SY_CHUNK_DONE);
    memcpy(in + 4090, "bbbbbbb", 7);
    n = 4097 + (size_t)sprintf(in + 4097, "\r\nx\r\n0\r\n\r\n");
    decode_all_ways(in, n, &d);
    assert_int_equal(d.st, SY_CHUNK_ERROR);
    assert_string_equal(d.reason, "chunk size line too long");

    n = (size_t)sprintf(in, "0\r\n");
    while (n < 16384) {     /* 200-byte lines: the section's bytes run out before its fields */
        n += (size_t)sprintf(in + n, "X-T: ");
        memset(in + n, 'v', 193);
        n += 193 + (size_t)sprintf(in + n + 193, "\r\n");
    }
    n += (size_t)sprintf(in + n, "\r\n");
    decode_all_ways(in, n, &d);
    assert_int_equal(d.st, SY_CHUNK_ERROR);
    assert_string_equal(d.reason, "trailer section too large");

    /* 100 fields pass, the 101st does not */
    n = (size_t)sprintf(in, "0\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t)sprintf(in + n, "X-%d: v\r\n", i);
    decode_all_ways(in, n + (size_t)sprintf(in + n, "\r\n"), &d);
    assert_int_equal(d.st, SY_CHUNK_DONE);
    n += (size_t)sprintf(in + n, "X-last: v\r\n\r\n");
    decode_all_ways(in, n, &d);
    assert_int_equal(d.st, SY_CHUNK_ERROR);
    assert_string_equal(d.reason, "too many trailer fields");

    /* a field line of SY_CHUNK_MAX_TRAILER_LINE bytes passes, one more does not */
    for (int extra = 0; extra < 2; extra++) {
        n = (size_t)sprintf(in, "0\r\nX: ");
        size_t value = SY_CHUNK_MAX_TRAILER_LINE - 5 + (size_t)extra;
        memset(in + n, 'v', value);
        n += value;
        n += (size_t)sprintf(in + n, "\r\n\r\n");
        decode_all_ways(in, n, &d);
        assert_int_equal(d.st, extra ? SY_CHUNK_ERROR : SY_CHUNK_DONE);
        if (extra)
            assert_string_equal(d.reason, "trailer field too long");
    }

    /* after DONE nothing more is consumed */
    struct sy_chunked c;
    size_t used, off, dl;
    sy_chunked_init(&c);
    assert_int_equal(sy_chunked_decode(&c, S("0\r\n\r\nX"), &used, &off, &dl), SY_CHUNK_DONE);
    assert_int_equal(used, 5);
    assert_int_equal(sy_chunked_decode(&c, S("X"), &used, &off, &dl), SY_CHUNK_DONE);
    assert_int_equal(used, 0);
}

/*
 * report_trailers: each field line is reported once it ends, whole and
 * split anywhere, with its length and its name's; the lines the caller
 * puts back together from the bytes it kept are the wire's.
 */
static void
test_chunked_reports_trailers(void **state)
{
    static const char wire[] = "3\r\nabc\r\n0;e=1\r\nX-A: 1\r\nGrpc-Status:  0 \r\nE:\r\n\r\nNEXT";
    static const char *const lines[] = {"X-A: 1\r\n", "Grpc-Status:  0 \r\n", "E:\r\n"};
    static const size_t names[] = {3, 11, 1};
    size_t len = sizeof(wire) - 1 - 4;
    (void)state;

    for (size_t step = 1; step <= len; step++) {
        struct sy_chunked c;
        size_t pos = 0, nlines = 0, used, off, dl;
        enum sy_chunk_status st = SY_CHUNK_AGAIN;

        sy_chunked_init(&c);
        c.report_trailers = true;
        while (st != SY_CHUNK_DONE) {
            size_t end = pos + step < sizeof(wire) - 1 ? pos + step : sizeof(wire) - 1;
            st = sy_chunked_decode(&c, wire + pos, end - pos, &used, &off, &dl);
            assert_int_not_equal(st, SY_CHUNK_ERROR);
            pos += used;
            if (st != SY_CHUNK_TRAILER)
                continue;
            assert_true(nlines < 3);
            assert_int_equal(dl, strlen(lines[nlines]));
            assert_memory_equal(wire + pos - dl, lines[nlines], dl);
            assert_int_equal(c.field_name_len, names[nlines]);
            assert_int_equal(c.field_len, 0);
            nlines++;
        }
        assert_int_equal(nlines, 3);
        assert_int_equal(pos, len);
    }
}

static void
test_trailer_allowed(void **state)
{
    static const char *const allowed[] = {
        "grpc-status", "Grpc-Message", "X-Checksum", "Server-Timing", "ETag", "Digest",
        "X-Forwarded", "user-agents",
    };
    static const char *const refused[] = {
        "Content-Length", "transfer-encoding", "HOST", "te", "Trailer", "Connection",
        "Keep-Alive", "proxy-connection", "Upgrade", "Expect", "Authorization",
        "proxy-authorization", "WWW-Authenticate", "Proxy-Authenticate", "Cookie", "Set-Cookie",
        "Content-Type", "Content-Encoding", "Content-Range", "Range", "Cache-Control", "Pragma",
        "Max-Forwards", "If-Match", "If-None-Match", "Location", "Retry-After", "Vary", "Age",
        "Expires", "Date", "X-Forwarded-For", "x_forwarded_for", "X-Forwarded-Proto",
        "X-Forwarded-Host", "X-Request-ID", "Forwarded", "User-Agent", "",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (!sy_trailer_allowed(allowed[i], strlen(allowed[i])))
            fail_msg("%s refused", allowed[i]);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (sy_trailer_allowed(refused[i], strlen(refused[i])))
            fail_msg("%s allowed", refused[i]);
}

/* Random bodies of random chunks, split randomly, decode to the same data. */
static void
test_chunked_random(void **state)
{
    (void)state;
    static char in[8192], want[8192];

    for (int round = 0; round < 200; round++) {
        size_t n = 0, wn = 0;
        while (n < 6000) {
            size_t sz = (size_t)rand() % 300 + 1;
            n += (size_t)sprintf(in + n, rand() % 2 ? "%zx" : "%zX", sz);
            if (rand() % 4 == 0)
                n += (size_t)sprintf(in + n, ";ext=\"v\"");
            n += (size_t)sprintf(in + n, "\r\n");
            for (size_t k = 0; k < sz; k++)
                in[n++] = want[wn++] = (char)(rand() % 256);
            n += (size_t)sprintf(in + n, "\r\n");
        }
        n += (size_t)sprintf(in + n, "0\r\nT: v\r\n\r\n");
        struct decoded *d = malloc(sizeof(*d));
        decode_all_ways(in, n, d);
        assert_int_equal(d->st, SY_CHUNK_DONE);
        assert_int_equal(d->data_len, wn);
        assert_memory_equal(d->data, want, wn);
        assert_int_equal(d->consumed, n);
        free(d);
    }
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_form),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_connect_options_other),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_leading_crlf_and_http10),
        cmocka_unit_test(test_header_ids),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_connection_and_upgrade),
        cmocka_unit_test(test_value_bytes),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_catalogue_file),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_response_basic),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_response_upgrade),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_response_limits),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_invalid),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_reports_trailers),
        cmocka_unit_test(test_trailer_allowed),
        cmocka_unit_test(test_chunked_random),
    };

    if (argc == 3 && strcmp(argv[1], "--write-catalogue") == 0)
        return write_catalogue(argv[2]);
    srand(12345);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
