/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * relay.c: body framing on a fixed buffer. Chunked bodies are validated
 * by the strict decoder and, toward HTTP/1.1 peers, passed through byte for
 * byte; toward HTTP/1.0 clients the data is compacted in place (the output
 * never overtakes the input, so memmove within the buffer is safe).
 */
#include <string.h>

#include "relay.h"

void sy_relay_init(struct sy_relay *r, enum sy_relay_mode mode, uint64_t length,
                   uint32_t base, uint64_t max_bytes)
{
    memset(r, 0, sizeof(*r));
    r->mode = mode;
    r->base = r->scan = r->out_start = r->out_end = base;
    r->remaining = length;
    r->max_bytes = max_bytes;
    r->complete = mode == SY_RELAY_NONE || (mode == SY_RELAY_LENGTH && length == 0);
    if (mode == SY_RELAY_CHUNKED || mode == SY_RELAY_DECHUNK)
        sy_chunked_init(&r->chunked);
}

static enum sy_relay_status scan_chunked(struct sy_relay *r, struct sy_buf *buf)
{
    while (r->scan < buf->end) {
        size_t used, data_off, data_len;
        uint32_t at = r->scan;
        enum sy_chunk_status st = sy_chunked_decode(&r->chunked, buf->data + at, buf->end - at,
                                                    &used, &data_off, &data_len);
        if (st == SY_CHUNK_ERROR) {
            r->error = r->chunked.error_reason;
            return SY_RELAY_INVALID;
        }
        r->scan += (uint32_t)used;
        r->body_bytes += used;
        if (r->mode == SY_RELAY_CHUNKED) {
            r->out_end = r->scan;
        } else if (data_len) {
            memmove(buf->data + r->out_end, buf->data + at + data_off, data_len);
            r->out_end += (uint32_t)data_len;
        }
        if (r->max_bytes && r->chunked.total > r->max_bytes)
            return SY_RELAY_TOO_LARGE;
        if (st == SY_CHUNK_DONE) {
            r->complete = true;
            return SY_RELAY_COMPLETE;
        }
        if (st == SY_CHUNK_AGAIN)
            break;
    }
    return SY_RELAY_MORE;
}

enum sy_relay_status sy_relay_scan(struct sy_relay *r, struct sy_buf *buf)
{
    if (r->complete)
        return SY_RELAY_COMPLETE;
    uint32_t avail = buf->end - r->scan;

    switch (r->mode) {
    case SY_RELAY_LENGTH: {
        uint32_t take = avail < r->remaining ? avail : (uint32_t)r->remaining;
        r->scan += take;
        r->out_end = r->scan;
        r->remaining -= take;
        r->body_bytes += take;
        r->complete = r->remaining == 0;
        return r->complete ? SY_RELAY_COMPLETE : SY_RELAY_MORE;
    }
    case SY_RELAY_UNTIL_CLOSE:
        r->scan = r->out_end = buf->end;
        r->body_bytes += avail;
        return SY_RELAY_MORE;
    case SY_RELAY_CHUNKED:
    case SY_RELAY_DECHUNK:
        return scan_chunked(r, buf);
    case SY_RELAY_NONE:
        break;
    }
    return SY_RELAY_COMPLETE;
}

enum sy_relay_status sy_relay_eof(struct sy_relay *r)
{
    if (r->complete)
        return SY_RELAY_COMPLETE;
    if (r->mode == SY_RELAY_UNTIL_CLOSE) {
        r->complete = true;
        return SY_RELAY_COMPLETE;
    }
    r->error = "connection closed before the end of the body";
    return SY_RELAY_INVALID;
}

void sy_relay_rewind(struct sy_relay *r, struct sy_buf *buf)
{
    if (r->out_start != r->out_end || r->scan != buf->end)
        return;
    buf->end = r->base;
    r->scan = r->out_start = r->out_end = r->base;
}
