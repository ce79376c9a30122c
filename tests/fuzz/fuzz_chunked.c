/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_chunked.c: libFuzzer target for sy_chunked_decode. The first byte
 * seeds the split points, and its low bit turns trailer reporting on; the
 * rest is decoded whole and in random pieces (each in an exact-size copy),
 * and the data, the trailer field lines, the end and the error must agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
    enum sy_chunk_status st;
    uint8_t *data;
    size_t data_len;
    uint8_t *lines;             /* reported trailer field lines, back to back */
    size_t lines_len;
    size_t consumed;
    const char *reason;
};

/*
 * A reported field line: the len bytes of the input before its end, which
 * must be a name of field_name_len token bytes, ':', a value and CRLF.
 */
static void
check_line(const struct sy_chunked *c, const uint8_t *all, size_t end, size_t len,
           struct result *r)
{
    if (len > end || len < c->field_name_len + 3 || len > SY_CHUNK_MAX_TRAILER_LINE ||
        c->field_len != 0)
        abort();
    const uint8_t *line = all + end - len;
    if (line[c->field_name_len] != ':' || line[len - 2] != '\r' || line[len - 1] != '\n')
        abort();
    memcpy(r->lines + r->lines_len, line, len);
    r->lines_len += len;
}

/* Decodes one piece; false once the body ended or failed. */
static bool
feed(struct sy_chunked *c, const uint8_t *all, const uint8_t *piece, size_t n, struct result *r)
{
    size_t pos = 0;

    while (pos < n) {
        size_t used, off, len;
        r->st = sy_chunked_decode(c, (const char *)piece + pos, n - pos, &used, &off, &len);
        if (used > n - pos)
            abort();
        pos += used;
        r->consumed += used;
        if (r->st == SY_CHUNK_TRAILER) {
            if (!c->report_trailers || off != 0)
                abort();
            check_line(c, all, r->consumed, len, r);
            continue;
        }
        if (off + len > used || (r->st != SY_CHUNK_DATA && len))
            abort();
        memcpy(r->data + r->data_len, piece + pos - used + off, len);
        r->data_len += len;
        if (r->st == SY_CHUNK_DONE || r->st == SY_CHUNK_ERROR) {
            r->reason = c->error_reason;
            return false;
        }
        if (r->st == SY_CHUNK_AGAIN && pos != n)
            abort();
    }
    return true;
}

static void
decode(const uint8_t *data, size_t size, uint32_t seed, bool split, struct result *r)
{
    struct sy_chunked c;
    size_t at = 0;

    sy_chunked_init(&c);
    c.report_trailers = seed & 1;
    r->data_len = r->lines_len = r->consumed = 0;
    r->st = SY_CHUNK_AGAIN;
    while (at < size) {
        size_t n = size - at;
        if (split) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 17;
            if (n > size - at)
                n = size - at;
        }
        uint8_t *copy = malloc(n);
        memcpy(copy, data + at, n);
        bool more = feed(&c, data, copy, n, r);
        free(copy);
        at += n;
        if (!more)
            break;
    }
    if (r->st == SY_CHUNK_DATA || r->st == SY_CHUNK_TRAILER)
        r->st = SY_CHUNK_AGAIN;
    if (r->st != SY_CHUNK_ERROR && c.total != r->data_len)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct result a, b;

    if (size == 0)
        return 0;
    uint32_t seed = data[0];
    data++;
    size--;
    a.data = malloc(size + 1);
    b.data = malloc(size + 1);
    a.lines = malloc(size + 1);
    b.lines = malloc(size + 1);
    decode(data, size, seed, false, &a);
    decode(data, size, seed, true, &b);
    if (a.st != b.st || a.data_len != b.data_len || memcmp(a.data, b.data, a.data_len) != 0)
        abort();
    if (a.lines_len != b.lines_len || memcmp(a.lines, b.lines, a.lines_len) != 0)
        abort();
    if ((a.st == SY_CHUNK_DONE || a.st == SY_CHUNK_ERROR) && a.consumed != b.consumed)
        abort();
    if (a.st == SY_CHUNK_ERROR && strcmp(a.reason, b.reason) != 0)
        abort();
    free(a.data);
    free(b.data);
    free(a.lines);
    free(b.lines);
    return 0;
}
