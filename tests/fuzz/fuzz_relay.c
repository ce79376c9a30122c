/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fuzz_relay.c: libFuzzer target for sy_relay_* over chunked bodies, the
 * code that cuts refused trailer fields out of the buffer and holds a
 * field line in progress across rewinds. The first byte picks the mode
 * (chunked passed through, or decoded with its trailers kept for HTTP/2)
 * and seeds the pieces; the rest is the wire. It is relayed whole from one
 * large buffer, then through a buffer of 8 KiB (a head of up to 63 bytes
 * below the body) in random pieces with random partial sends and rewinds,
 * as proxy.c does: the outcome, the bytes sent and the trailers kept must
 * agree, and the relay must never stall with a full buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_CAP 8192
#define TRAILER_MAX 4096        /* kept trailers and the line in progress fit beside the head */

struct outcome {
    enum sy_relay_status st;
    uint8_t *out;
    size_t out_len;
    uint8_t trailers[TRAILER_MAX];
    uint32_t trailer_len;
};

static struct sy_buf *
buf_new(size_t cap)
{
    struct sy_buf *b = calloc(1, sizeof(*b) + cap);
    b->cap = (uint32_t)cap;
    return b;
}

static void
relay_start(struct sy_relay *r, bool decode, uint32_t base)
{
    sy_relay_init(r, decode ? SY_RELAY_DECHUNK : SY_RELAY_CHUNKED, 0, base, 0);
    sy_relay_trailer_limits(r, TRAILER_MAX, 50);
    if (decode)
        sy_relay_keep_trailers(r);
}

static void
take(struct sy_relay *r, struct sy_buf *b, struct outcome *o, uint32_t n)
{
    memcpy(o->out + o->out_len, b->data + r->out_start, n);
    o->out_len += n;
    r->out_start += n;
}

static void
finish(struct sy_relay *r, struct sy_buf *b, struct outcome *o)
{
    if (o->st == SY_RELAY_COMPLETE) {
        if (r->trailer_len > TRAILER_MAX || (!r->keep_trailers && r->trailer_len))
            abort();
        memcpy(o->trailers, b->data + r->out_end, r->trailer_len);
        o->trailer_len = r->trailer_len;
    }
}

static void
whole(const uint8_t *wire, size_t n, bool decode, struct outcome *o)
{
    struct sy_buf *b = buf_new(n + 1);
    struct sy_relay r;

    memcpy(b->data, wire, n);
    b->end = (uint32_t)n;
    relay_start(&r, decode, 0);
    o->st = sy_relay_scan(&r, b);
    take(&r, b, o, sy_relay_pending(&r));
    finish(&r, b, o);
    free(b);
}

static void
pieces(const uint8_t *wire, size_t n, bool decode, uint32_t seed, struct outcome *o)
{
    struct sy_buf *b = buf_new(SMALL_CAP);
    struct sy_relay r;
    uint32_t base = seed % 64;
    size_t at = 0;

    memset(b->data, 'H', base);
    b->end = base;
    relay_start(&r, decode, base);
    o->st = SY_RELAY_MORE;
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        o->st = sy_relay_scan(&r, b);
        if (o->st == SY_RELAY_INVALID)
            break;
        uint32_t pending = sy_relay_pending(&r);
        uint32_t send = (seed >> 8) % 4 == 0 ? pending : (uint32_t)((seed >> 12) % (pending + 1));
        take(&r, b, o, send);
        if (o->st == SY_RELAY_COMPLETE) {
            take(&r, b, o, sy_relay_pending(&r));
            break;
        }
        if (at == n) {
            take(&r, b, o, sy_relay_pending(&r));   /* the wire ended short */
            break;
        }
        sy_relay_rewind(&r, b);
        size_t room = sy_buf_room(b);
        if (room == 0 && sy_relay_pending(&r) == 0)
            abort();            /* stalled: nothing to send, no room to read */
        size_t k = 1 + (seed >> 16) % 300;
        if (k > room)
            k = room;
        if (k > n - at)
            k = n - at;
        memcpy(b->data + b->end, wire + at, k);
        b->end += (uint32_t)k;
        at += k;
    }
    finish(&r, b, o);
    for (uint32_t i = 0; i < base; i++)
        if (b->data[i] != 'H')
            abort();            /* the head below the body is never touched */
    free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome a = {0}, b = {0};

    if (size == 0)
        return 0;
    uint32_t seed = data[0];
    bool decode = seed & 1;
    data++;
    size--;
    a.out = malloc(size + 1);
    b.out = malloc(size + 1);
    whole(data, size, decode, &a);
    pieces(data, size, decode, seed, &b);
    if (a.st != b.st)
        abort();
    if (a.st != SY_RELAY_INVALID &&
        (a.out_len != b.out_len || memcmp(a.out, b.out, a.out_len) != 0))
        abort();
    if (a.trailer_len != b.trailer_len || memcmp(a.trailers, b.trailers, a.trailer_len) != 0)
        abort();
    free(a.out);
    free(b.out);
    return 0;
}
