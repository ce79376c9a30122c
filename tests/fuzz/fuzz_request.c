/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_request.c: libFuzzer target for sy_http_parse_request. The input
 * is a raw request (the seeds are the malformed-request table); a hash of it
 * picks the limits and the split points. It is parsed whole and as growing
 * prefixes (each an exact-size copy, so that ASan sees any read past the
 * bytes given), and both results must agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 100

static const struct sy_parse_limits default_limits = { 16384, 8192, MAX_HEADERS };
static const struct sy_parse_limits small_limits = { 300, 40, 6 };

static bool
span_in(struct sy_span s, uint32_t end)
{
    return (uint64_t)s.off + s.len <= end;
}

static void
check_head(const struct sy_http_head *h, enum sy_parse_status st, size_t size,
           const struct sy_parse_limits *lim)
{
    if (st == SY_PARSE_ERROR) {
        int e = h->error_status;
        if (!h->error_reason || (e != 400 && e != 414 && e != 417 && e != 431 && e != 501 &&
                                 e != 505))
            abort();
        return;
    }
    if (st != SY_PARSE_DONE)
        return;
    if (h->head_len > size || h->head_len > lim->max_head_bytes || h->nheaders > lim->max_headers)
        abort();
    if (!span_in(h->target, h->head_len) || !span_in(h->host, h->head_len) ||
        !span_in(h->path, h->target.off + h->target.len) ||
        !span_in(h->query, h->target.off + h->target.len) || h->target.len > lim->max_uri_bytes)
        abort();
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct sy_header *hd = &h->headers[i];
        if (!span_in(hd->name, hd->line_end) || !span_in(hd->value, hd->line_end) ||
            hd->line_end > h->head_len - 2 || hd->name.len == 0)
            abort();
    }
    if ((h->body == SY_BODY_LENGTH) != (h->content_length > 0) ||
        h->content_length > INT64_MAX || h->body == SY_BODY_UNTIL_CLOSE)
        abort();
}

static enum sy_parse_status
parse_split(struct sy_http_head *h, const uint8_t *data, size_t size, uint32_t seed,
            const struct sy_parse_limits *lim)
{
    enum sy_parse_status st = SY_PARSE_AGAIN;
    size_t at = 0;

    while (st == SY_PARSE_AGAIN && at < size) {
        seed = seed * 1103515245u + 12345u;
        at += 1 + (seed >> 16) % (size / 8 + 2);
        if (at > size)
            at = size;
        char *copy = malloc(at);
        memcpy(copy, data, at);
        st = sy_http_parse_request(h, copy, at, lim);
        free(copy);
    }
    return st;
}

static void
compare(const struct sy_http_head *a, const struct sy_http_head *b, enum sy_parse_status sa,
        enum sy_parse_status sb)
{
    if (sa != sb)
        abort();
    if (sa == SY_PARSE_ERROR &&
        (a->error_status != b->error_status || strcmp(a->error_reason, b->error_reason) != 0))
        abort();
    if (sa == SY_PARSE_DONE &&
        (a->head_len != b->head_len || a->nheaders != b->nheaders || a->body != b->body ||
         a->content_length != b->content_length || a->host.off != b->host.off ||
         a->host.len != b->host.len || a->keep_alive != b->keep_alive ||
         memcmp(a->headers, b->headers, a->nheaders * sizeof(*a->headers)) != 0))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sy_header ha[MAX_HEADERS], hb[MAX_HEADERS];
    struct sy_http_head a = { .headers = ha }, b = { .headers = hb };

    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 16777619u;
    const struct sy_parse_limits *lim = seed % 4 == 0 ? &small_limits : &default_limits;

    memset(ha, 0, sizeof(ha));
    memset(hb, 0, sizeof(hb));
    sy_http_head_reset(&a);
    sy_http_head_reset(&b);
    enum sy_parse_status sa = sy_http_parse_request(&a, (const char *)data, size, lim);
    check_head(&a, sa, size, lim);
    enum sy_parse_status sb = parse_split(&b, data, size, seed, lim);
    if (sa != SY_PARSE_AGAIN || sb != SY_PARSE_AGAIN)
        compare(&a, &b, sa, sb);
    return 0;
}
