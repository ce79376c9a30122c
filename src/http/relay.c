/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * relay.c: body framing on a fixed buffer. Chunked bodies are validated
 * by the strict decoder and, toward HTTP/1.1 peers, passed through byte for
 * byte but for trailer fields that must not travel; decoded (HTTP/1.0
 * clients, HTTP/2, gzip) the data is compacted in place (the output never
 * overtakes the input, so memmove within the buffer is safe), and so are
 * the trailer fields kept for HTTP/2.
 */
#include <string.h>

#include "relay.h"

_Static_assert(SY_CHUNK_MAX_TRAILER_LINE < SY_BUF_BODY_ROOM,
               "a trailer field line in progress fits the room a buffer keeps beyond its head");

void sy_relay_init(struct sy_relay *r, enum sy_relay_mode mode, uint64_t length,
                   uint32_t base, uint64_t max_bytes)
{
    memset(r, 0, sizeof(*r));
    r->mode = mode;
    r->base = r->scan = r->out_start = r->out_end = base;
    r->remaining = length;
    r->max_bytes = max_bytes;
    r->complete = mode == SY_RELAY_NONE || (mode == SY_RELAY_LENGTH && length == 0);
    if (mode == SY_RELAY_CHUNKED || mode == SY_RELAY_DECHUNK) {
        sy_chunked_init(&r->chunked);
        r->chunked.report_trailers = mode == SY_RELAY_CHUNKED;
    }
}

void sy_relay_keep_trailers(struct sy_relay *r)
{
    if (r->mode != SY_RELAY_DECHUNK)
        return;
    r->keep_trailers = true;
    r->chunked.report_trailers = true;
}

void sy_relay_trailer_limits(struct sy_relay *r, uint32_t max_bytes, uint32_t max_fields)
{
    r->chunked.max_trailer_bytes = max_bytes;
    r->chunked.max_trailer_fields = max_fields;
}

/*
 * A trailer field line ended at r->scan, len bytes held in the buffer
 * since it began. Passed through (chunked), it is now ready unless it must
 * not travel; decoded (keep_trailers), it joins the kept ones after the
 * data, or goes. A line that goes is cut out: the bytes not yet scanned
 * move down.
 */
static void trailer_line(struct sy_relay *r, struct sy_buf *buf, uint32_t len)
{
    uint32_t start = r->scan - len, to;
    bool allowed = sy_trailer_allowed(buf->data + start, r->chunked.field_name_len);

    if (r->mode == SY_RELAY_CHUNKED) {
        if (allowed) {
            r->out_end = r->scan;
            return;
        }
        /*
         * What came before the line (the last-chunk line, scanned in the
         * same call) is ready now: a rewind must not take it for scratch.
         */
        r->out_end = to = start;
    } else {
        to = r->out_end + r->trailer_len;
        if (allowed) {
            memmove(buf->data + to, buf->data + start, len);
            r->trailer_len += len;
            to += len;
        }
    }
    memmove(buf->data + to, buf->data + r->scan, buf->end - r->scan);
    buf->end -= r->scan - to;
    r->scan = to;
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
        if (st == SY_CHUNK_TRAILER) {
            trailer_line(r, buf, (uint32_t)data_len);
            continue;
        }
        if (r->mode == SY_RELAY_CHUNKED) {
            r->out_end = r->scan - r->chunked.field_len;    /* a field line waits for its end */
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
    uint32_t kept = r->trailer_len, held = r->chunked.report_trailers ? r->chunked.field_len : 0;

    if (r->out_start != r->out_end || r->scan != buf->end)
        return;
    /* the kept trailer fields, then the field line in progress (0 and 0 but in trailers) */
    if (kept)
        memmove(buf->data + r->base, buf->data + r->out_end, kept);
    if (held)
        memmove(buf->data + r->base + kept, buf->data + r->scan - held, held);
    buf->end = r->base + kept + held;
    r->scan = buf->end;
    r->out_start = r->out_end = r->base;
}
