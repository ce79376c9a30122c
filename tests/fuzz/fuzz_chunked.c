/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_chunked.c: libFuzzer target for sy_chunked_decode. The first byte
 * seeds the split points; the rest is decoded whole and in random pieces
 * (each in an exact-size copy), and the data, the end and the error must agree.
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
    size_t consumed;
    const char *reason;
};

/* Decodes one piece; false once the body ended or failed. */
static bool
feed(struct sy_chunked *c, const uint8_t *piece, size_t n, struct result *r)
{
    size_t pos = 0;

    while (pos < n) {
        size_t used, off, len;
        r->st = sy_chunked_decode(c, (const char *)piece + pos, n - pos, &used, &off, &len);
        if (used > n - pos || off + len > used || (r->st != SY_CHUNK_DATA && len))
            abort();
        memcpy(r->data + r->data_len, piece + pos + off, len);
        r->data_len += len;
        pos += used;
        r->consumed += used;
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
    r->data_len = r->consumed = 0;
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
        bool more = feed(&c, copy, n, r);
        free(copy);
        at += n;
        if (!more)
            break;
    }
    if (r->st == SY_CHUNK_DATA)
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
    decode(data, size, seed, false, &a);
    decode(data, size, seed, true, &b);
    if (a.st != b.st || a.data_len != b.data_len || memcmp(a.data, b.data, a.data_len) != 0)
        abort();
    if ((a.st == SY_CHUNK_DONE || a.st == SY_CHUNK_ERROR) && a.consumed != b.consumed)
        abort();
    if (a.st == SY_CHUNK_ERROR && strcmp(a.reason, b.reason) != 0)
        abort();
    free(a.data);
    free(b.data);
    return 0;
}
