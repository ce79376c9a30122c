/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_compress.c: the compress policy (compress.c): Accept-Encoding,
 * Content-Type and Cache-Control parsing, the whole qualification on
 * parsed heads, and gzip round trips through a small output buffer, chunked
 * and plain, with pauses (sync flushes) in the middle; zlib inflates them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "http/compress.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static void test_accept_encoding(void **state)
{
    (void)state;
    assert_true(sy_compress_accepts_gzip(S("gzip")));
    assert_true(sy_compress_accepts_gzip(S("GZip")));
    assert_true(sy_compress_accepts_gzip(S("gzip, deflate, br")));
    assert_true(sy_compress_accepts_gzip(S("br;q=1.0, gzip;q=0.8, *;q=0.1")));
    assert_true(sy_compress_accepts_gzip(S("deflate , gzip ; q=0.001")));
    assert_true(sy_compress_accepts_gzip(S("x-gzip")));
    assert_true(sy_compress_accepts_gzip(S("*")));
    assert_true(sy_compress_accepts_gzip(S(", ,gzip,")));
    assert_true(sy_compress_accepts_gzip(S("gzip;q=1")));
    assert_true(sy_compress_accepts_gzip(S("gzip;q=1.000")));
    /* refused */
    assert_false(sy_compress_accepts_gzip(S("gzip;q=0")));
    assert_false(sy_compress_accepts_gzip(S("gzip;q=0.000")));
    assert_false(sy_compress_accepts_gzip(S("*;q=1, gzip;q=0")));
    assert_false(sy_compress_accepts_gzip(S("*;q=0")));
    assert_false(sy_compress_accepts_gzip(S("identity")));
    assert_false(sy_compress_accepts_gzip(S("br, deflate")));
    assert_false(sy_compress_accepts_gzip(S("")));
    assert_false(sy_compress_accepts_gzip(S("gzipx")));
    /* garbage: no compression, never an error */
    assert_false(sy_compress_accepts_gzip(S("gzip;q=2")));
    assert_false(sy_compress_accepts_gzip(S("gzip;q=1.5")));
    assert_false(sy_compress_accepts_gzip(S("gzip;level=9")));
    assert_false(sy_compress_accepts_gzip(S("gzip;q=")));
    assert_false(sy_compress_accepts_gzip(S("gzip deflate")));
    assert_false(sy_compress_accepts_gzip(S("\"gzip\"")));
    assert_false(sy_compress_accepts_gzip(S("gzip;q=0.5x")));
    assert_false(sy_compress_accepts_gzip(S("@@@, gzip")));
}

static void test_content_type(void **state)
{
    (void)state;
    assert_true(sy_compress_type_ok(S("text/html")));
    assert_true(sy_compress_type_ok(S("text/plain; charset=utf-8")));
    assert_true(sy_compress_type_ok(S("TEXT/CSS")));
    assert_true(sy_compress_type_ok(S("application/json")));
    assert_true(sy_compress_type_ok(S("application/json;charset=UTF-8")));
    assert_true(sy_compress_type_ok(S("application/problem+json")));
    assert_true(sy_compress_type_ok(S("application/javascript")));
    assert_true(sy_compress_type_ok(S("application/xml")));
    assert_true(sy_compress_type_ok(S("application/atom+xml")));
    assert_true(sy_compress_type_ok(S("image/svg+xml")));
    assert_false(sy_compress_type_ok(S("image/png")));
    assert_false(sy_compress_type_ok(S("application/octet-stream")));
    assert_false(sy_compress_type_ok(S("application/gzip")));
    assert_false(sy_compress_type_ok(S("application/jsonx")));
    assert_false(sy_compress_type_ok(S("application/+json")));
    assert_false(sy_compress_type_ok(S("text")));
    assert_false(sy_compress_type_ok(S("text/")));
    assert_false(sy_compress_type_ok(S("/json")));
    assert_false(sy_compress_type_ok(S("text/html garbage")));
    assert_false(sy_compress_type_ok(S("")));
}

static void test_no_transform(void **state)
{
    (void)state;
    assert_true(sy_compress_no_transform(S("no-transform")));
    assert_true(sy_compress_no_transform(S("public, max-age=60, No-Transform")));
    assert_true(sy_compress_no_transform(S("private=\"a, b\",no-transform")));
    assert_false(sy_compress_no_transform(S("no-transformx")));
    assert_false(sy_compress_no_transform(S("max-age=60")));
    assert_false(sy_compress_no_transform(S("private=\"no-transform\"")));
    assert_false(sy_compress_no_transform(S("private=\"x, no-transform\"")));
    assert_false(sy_compress_no_transform(S("")));
}

static struct sy_header req_hs[32], resp_hs[32];
static struct sy_http_head req_head, resp_head;
static const struct sy_parse_limits limits = {8192, 4096, 32};

static bool wanted(const char *request, const char *response, int *etag)
{
    req_head.headers = req_hs;
    sy_http_head_reset(&req_head);
    assert_int_equal(sy_http_parse_request(&req_head, request, strlen(request), &limits),
                     SY_PARSE_DONE);
    resp_head.headers = resp_hs;
    sy_http_head_reset(&resp_head);
    assert_int_equal(sy_http_parse_response(&resp_head, response, strlen(response), &limits,
                                            req_head.method), SY_PARSE_DONE);
    return sy_compress_wanted(&req_head, request, &resp_head, response, etag);
}

#define GET_GZ "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n"
#define JSON_1K "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"

static void test_wanted(void **state)
{
    int etag;
    (void)state;

    assert_true(wanted(GET_GZ, JSON_1K "\r\n", &etag));
    assert_int_equal(etag, -1);
    assert_true(wanted(GET_GZ, JSON_1K "ETag: \"v1\"\r\n\r\n", &etag));
    assert_int_equal(etag, 2);
    assert_true(wanted(GET_GZ, JSON_1K "ETag: W/\"v1\"\r\n\r\n", &etag));
    assert_int_equal(etag, -1);
    assert_true(wanted(GET_GZ, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n", &etag));
    /* the request's lines together: the later one refuses gzip */
    assert_false(wanted("GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n"
                        "Accept-Encoding: gzip;q=0\r\n\r\n", JSON_1K "\r\n", &etag));
    assert_false(wanted("GET / HTTP/1.1\r\nHost: a\r\n\r\n", JSON_1K "\r\n", &etag));
    assert_false(wanted("GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: ;;;\r\n\r\n",
                        JSON_1K "\r\n", &etag));
    assert_false(wanted("HEAD / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n",
                        JSON_1K "\r\n", &etag));
    assert_false(wanted(GET_GZ, JSON_1K "Content-Encoding: br\r\n\r\n", &etag));
    assert_false(wanted(GET_GZ, JSON_1K "Cache-Control: no-transform\r\n\r\n", &etag));
    assert_false(wanted(GET_GZ, JSON_1K "Content-Range: bytes 0-999/2000\r\n\r\n", &etag));
    assert_false(wanted(GET_GZ, "HTTP/1.1 206 Partial\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 1000\r\n\r\n", &etag));
    assert_false(wanted(GET_GZ, "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n",
                        &etag));
    assert_false(wanted(GET_GZ, "HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\n\r\n",
                        &etag));
    assert_false(wanted(GET_GZ, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 1000\r\n\r\n", &etag));
    assert_false(wanted(GET_GZ, "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
                        "Content-Length: 1000\r\n\r\n", &etag));
    assert_false(wanted(GET_GZ, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", &etag));
    assert_false(wanted(GET_GZ, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 255\r\n\r\n", &etag));
    assert_true(wanted(GET_GZ, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 256\r\n\r\n", &etag));
}

static void test_vary(void **state)
{
    int etag;
    (void)state;

    wanted(GET_GZ, JSON_1K "Vary: Origin\r\n\r\n", &etag);
    assert_false(sy_compress_vary_covered(&resp_head, JSON_1K "Vary: Origin\r\n\r\n"));
    wanted(GET_GZ, JSON_1K "Vary: Origin, accept-encoding\r\n\r\n", &etag);
    assert_true(sy_compress_vary_covered(&resp_head,
                                         JSON_1K "Vary: Origin, accept-encoding\r\n\r\n"));
    wanted(GET_GZ, JSON_1K "Vary: *\r\n\r\n", &etag);
    assert_true(sy_compress_vary_covered(&resp_head, JSON_1K "Vary: *\r\n\r\n"));
}

/* ---- round trips -------------------------------------------------------- */

struct sink {
    unsigned char *data;
    size_t len, cap;
};

static void sink_add(struct sink *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->data = realloc(s->data, s->cap);
        assert_non_null(s->data);
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
}

/* Strips chunked framing, checking it; the last chunk must end the input. */
static void dechunk(const struct sink *wire, struct sink *plain)
{
    size_t i = 0;

    for (;;) {
        char *end;
        unsigned long n = strtoul((const char *)wire->data + i, &end, 16);
        i = (size_t)((unsigned char *)end - wire->data);
        assert_memory_equal(wire->data + i, "\r\n", 2);
        i += 2;
        if (n == 0) {
            assert_memory_equal(wire->data + i, "\r\n", 2);
            assert_int_equal(i + 2, wire->len);
            return;
        }
        sink_add(plain, wire->data + i, n);
        i += n;
        assert_memory_equal(wire->data + i, "\r\n", 2);
        i += 2;
    }
}

static void gunzip_equal(const struct sink *gz, const unsigned char *want, size_t want_len)
{
    unsigned char *got = malloc(want_len + 1);
    z_stream zs = {0};

    assert_non_null(got);
    assert_int_equal(inflateInit2(&zs, 31), Z_OK);
    zs.next_in = gz->data;
    zs.avail_in = (uInt)gz->len;
    zs.next_out = got;
    zs.avail_out = (uInt)want_len + 1;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, want_len);
    assert_int_equal(zs.avail_in, 0);
    assert_memory_equal(got, want, want_len);
    inflateEnd(&zs);
    free(got);
}

/* Drains gz->out into the sink, as the relay writes it to the client. */
static void drain(struct sy_gzip *gz, struct sink *wire)
{
    sink_add(wire, gz->out->data + gz->out->start, sy_buf_len(gz->out));
    gz->out->start = gz->out->end;
}

static void round_trip(bool chunked, size_t len, size_t piece, size_t sync_every)
{
    unsigned char *body = malloc(len + 1);
    struct sy_buf_pool pool;
    struct sink wire = {0}, plain = {0};
    uint64_t rng = 88172645463325252ull;

    assert_non_null(body);
    for (size_t i = 0; i < len; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        /* text-like: compressible, with some noise */
        body[i] = rng % 8 == 0 ? (unsigned char)('a' + rng % 26)
                               : (unsigned char)"{\"k\": 1}, "[i % 10];
    }
    sy_buf_pool_init(&pool, 1024, 4);          /* small: many full output buffers */
    struct sy_buf *out = sy_buf_get(&pool);
    struct sy_gzip *gz = sy_gzip_new(out, len, chunked);
    assert_non_null(gz);
    size_t at = 0, pieces = 0;
    while (at < len) {
        size_t n = len - at < piece ? len - at : piece, used;
        assert_int_equal(sy_gzip_fill(gz, (const char *)body + at, n, SY_GZIP_MORE, &used), 0);
        at += used;
        drain(gz, &wire);
        if (sync_every && ++pieces % sync_every == 0) {
            do {
                assert_int_equal(sy_gzip_fill(gz, NULL, 0, SY_GZIP_SYNC, &used), 0);
                drain(gz, &wire);
            } while (gz->dirty);
        }
    }
    do {
        size_t used;
        assert_int_equal(sy_gzip_fill(gz, NULL, 0, SY_GZIP_FINISH, &used), 0);
        drain(gz, &wire);
    } while (!gz->finished);
    if (chunked) {
        dechunk(&wire, &plain);
        gunzip_equal(&plain, body, len);
    } else {
        gunzip_equal(&wire, body, len);
    }
    sy_gzip_free(gz, &pool);
    assert_int_equal(pool.outstanding, 0);
    sy_buf_pool_fini(&pool);
    free(wire.data);
    free(plain.data);
    free(body);
}

static void test_round_trip_chunked(void **state)
{
    (void)state;
    round_trip(true, 1 << 20, 16384, 0);
    round_trip(true, 300, 7, 0);
}

static void test_round_trip_plain(void **state)
{
    (void)state;
    round_trip(false, 1 << 20, 65536, 0);
}

static void test_round_trip_with_pauses(void **state)
{
    (void)state;
    round_trip(true, 200000, 999, 3);
    round_trip(false, 200000, 4096, 1);
}

static void test_empty_body(void **state)
{
    (void)state;
    round_trip(true, 0, 1, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_encoding),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_no_transform),
        cmocka_unit_test(test_wanted),
        cmocka_unit_test(test_vary),
        cmocka_unit_test(test_round_trip_chunked),
        cmocka_unit_test(test_round_trip_plain),
        cmocka_unit_test(test_round_trip_with_pauses),
        cmocka_unit_test(test_empty_body),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
