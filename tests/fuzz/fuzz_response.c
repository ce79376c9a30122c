/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_response.c: libFuzzer target for sy_http_parse_response. The first
 * byte picks the request method, the limits and the split points; the rest
 * is parsed whole and as growing prefixes (exact-size copies), which must agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 100

static const struct sy_parse_limits default_limits = { 16384, 8192, MAX_HEADERS };
static const struct sy_parse_limits small_limits = { 200, 40, 5 };

static void
check_head(const struct sy_http_head *h, enum sy_parse_status st, size_t size,
           enum sy_method m)
{
    if (st == SY_PARSE_ERROR) {
        if (h->error_status != 502 || !h->error_reason)
            abort();
        return;
    }
    if (st != SY_PARSE_DONE)
        return;
    if (h->head_len > size || h->status < 100 || h->status > 599 ||
        (uint64_t)h->reason.off + h->reason.len > h->head_len)
        abort();
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct sy_header *hd = &h->headers[i];
        if ((uint64_t)hd->value.off + hd->value.len > hd->line_end || hd->line_end > h->head_len)
            abort();
    }
    bool bodiless = m == SY_METHOD_HEAD || h->status < 200 || h->status == 204 ||
                    h->status == 304 || (m == SY_METHOD_CONNECT && h->status < 300);
    if (bodiless && h->body != SY_BODY_NONE)
        abort();
    if (h->body == SY_BODY_UNTIL_CLOSE && h->keep_alive)
        abort();
    if ((h->body == SY_BODY_LENGTH) != (h->content_length > 0))
        abort();
}

static enum sy_parse_status
parse_split(struct sy_http_head *h, const uint8_t *data, size_t size, uint32_t seed,
            const struct sy_parse_limits *lim, enum sy_method m)
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
        st = sy_http_parse_response(h, copy, at, lim, m);
        free(copy);
    }
    return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sy_header ha[MAX_HEADERS], hb[MAX_HEADERS];
    struct sy_http_head a = { .headers = ha }, b = { .headers = hb };

    if (size == 0)
        return 0;
    enum sy_method m = (enum sy_method)(data[0] % 10);
    const struct sy_parse_limits *lim = data[0] & 0x80 ? &small_limits : &default_limits;
    uint32_t seed = data[0];
    data++;
    size--;

    sy_http_head_reset(&a);
    sy_http_head_reset(&b);
    enum sy_parse_status sa = sy_http_parse_response(&a, (const char *)data, size, lim, m);
    check_head(&a, sa, size, m);
    enum sy_parse_status sb = parse_split(&b, data, size, seed, lim, m);
    if (sa != sb && (sa != SY_PARSE_AGAIN || sb != SY_PARSE_AGAIN))
        abort();
    if (sa == SY_PARSE_ERROR && strcmp(a.error_reason, b.error_reason) != 0)
        abort();
    if (sa == SY_PARSE_DONE &&
        (a.head_len != b.head_len || a.status != b.status || a.body != b.body ||
         a.nheaders != b.nheaders || a.content_length != b.content_length ||
         memcmp(ha, hb, a.nheaders * sizeof(ha[0])) != 0))
        abort();
    return 0;
}
