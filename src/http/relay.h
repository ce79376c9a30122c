/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * relay.h: moves a message body through one fixed buffer. It decides
 * which buffered bytes belong to the body (by Content-Length, chunked
 * framing, or until close) and marks them ready to send; bytes past the
 * end of the body stay in the buffer (a pipelined request). Trailer
 * fields that must not travel (sy_trailer_allowed) are cut out of a
 * chunked body; a field line is held in the buffer until it ends.
 */
#ifndef SY_HTTP_RELAY_H
#define SY_HTTP_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "parser.h"

enum sy_relay_mode {
    SY_RELAY_NONE,              /* no body */
    SY_RELAY_LENGTH,            /* `remaining` bytes, passed through */
    SY_RELAY_CHUNKED,           /* chunked, validated and passed through as is */
    SY_RELAY_DECHUNK,           /* chunked in, plain data out (HTTP/1.0 client) */
    SY_RELAY_UNTIL_CLOSE,       /* everything until the source closes */
};

enum sy_relay_status {
    SY_RELAY_MORE,              /* need more input */
    SY_RELAY_COMPLETE,          /* the whole body is scanned (may still be unsent) */
    SY_RELAY_INVALID,           /* framing error: reason in relay->error */
    SY_RELAY_TOO_LARGE,         /* past max_bytes */
};

struct sy_relay {
    enum sy_relay_mode mode;
    uint32_t base;              /* body bytes live in buf->data[base..]; the head stays below */
    uint32_t scan;              /* next byte not yet examined */
    uint32_t out_start;         /* bytes [out_start, out_end) are ready to send */
    uint32_t out_end;
    uint64_t remaining;         /* SY_RELAY_LENGTH */
    uint64_t max_bytes;         /* 0: no limit */
    uint64_t body_bytes;        /* body bytes scanned so far (wire bytes for chunked) */
    bool complete;
    /*
     * SY_RELAY_DECHUNK: the trailer fields are kept for the downstream
     * (HTTP/2 sends them as a HEADERS frame), else dropped. Kept, they lie
     * at data[out_end..out_end + trailer_len) as HTTP/1.1 field lines.
     */
    bool keep_trailers;
    uint32_t trailer_len;
    struct sy_chunked chunked;
    const char *error;
};

void sy_relay_init(struct sy_relay *r, enum sy_relay_mode mode, uint64_t length,
                   uint32_t base, uint64_t max_bytes);

/*
 * The trailer section's limits (the head's: limits.max_header_bytes and
 * max_headers). Kept trailers (keep_trailers) wait in the buffer with the
 * line in progress: max_bytes must leave room in it.
 */
void sy_relay_trailer_limits(struct sy_relay *r, uint32_t max_bytes, uint32_t max_fields);

/* SY_RELAY_DECHUNK: keep the trailer fields that may travel (keep_trailers). */
void sy_relay_keep_trailers(struct sy_relay *r);

/* Examines newly read bytes buf->data[scan..buf->end). */
enum sy_relay_status sy_relay_scan(struct sy_relay *r, struct sy_buf *buf);

/* The source closed; for SY_RELAY_UNTIL_CLOSE that completes the body. */
enum sy_relay_status sy_relay_eof(struct sy_relay *r);

/*
 * After everything ready was sent: reclaim buffer space for the next read
 * (what the trailer section holds back moves to the front).
 */
void sy_relay_rewind(struct sy_relay *r, struct sy_buf *buf);

static inline uint32_t sy_relay_pending(const struct sy_relay *r)
{
    return r->out_end - r->out_start;
}

#endif
