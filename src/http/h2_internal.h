/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * h2_internal.h: what h2.c (the connection, its streams, the downstream
 * calls) and h2_fields.c (HTTP/2 fields as HTTP/1.1 text and back) share:
 * the stream, and the translations h2.c calls. Only those two include it.
 */
#ifndef SY_HTTP_H2_INTERNAL_H
#define SY_HTTP_H2_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

struct sy_buf;
struct sy_h2_conn;
struct sy_request;

enum pseudo { PS_METHOD, PS_PATH, PS_AUTHORITY, PS_SCHEME, PS_COUNT };

struct sy_h2_stream {
    int32_t id;
    struct sy_h2_conn *h2;
    struct sy_request *req;             /* freed when the stream closes */
    struct sy_h2_stream *prev, *next;   /* the connection's streams */

    /* the head, as it is written into req->in */
    nghttp2_rcbuf *pseudo[PS_COUNT];    /* held until the request line is written */
    nghttp2_rcbuf **cookies;            /* joined into one line (RFC 9113 8.2.3) */
    uint32_t ncookies, cookies_cap;
    int fail_status;                    /* the head is refused with this status */
    const char *fail_reason;
    const char *reset_reason;           /* why we reset it (a stream error) */
    bool line_written;
    bool has_length;                    /* a content-length came */
    bool reset;                         /* RST_STREAM sent or queued */
    bool client_reset;                  /* RST_STREAM received */
    uint32_t rst_sent;                  /* the code of the RST_STREAM that went out, if one did */
    uint32_t close_code;                /* nghttp2's, when it closed the stream */

    /* the request body */
    struct sy_buf *body;                /* DATA received, not yet in req->in (malloc'd) */
    bool got_data;                      /* DATA came (the body is on its way: no 100) */
    bool in_ended;                      /* END_STREAM received */
    bool chunked;                       /* goes upstream chunked: no content-length */
    bool discard;                       /* the body is not wanted any more */
    bool want_read, want_write;         /* the proxy waits on this stream */
    /* its trailer fields as HTTP/1.1 lines (malloc'd, max_header_bytes), chunked only */
    char *trailers;
    uint32_t trailers_len, trailer_fields;
    uint32_t tail_at;                   /* of "0\r\n", trailers, "\r\n": how much is in req->in */

    /* the response */
    bool head_sent;
    bool out_eof;                       /* the whole response was handed over */
    bool deferred;                      /* nghttp2 waits for data (resume_data) */
    bool end_sent;                      /* END_STREAM went out */
    /*
     * Response body bytes the proxy offered (send_body): they stay put in
     * its buffer until it hears they were taken; framed straight from there.
     * The body's last bytes are copied to out instead (a pool buffer), so
     * that the request ends, and END_STREAM rides on the last DATA frame.
     */
    const char *span;
    size_t span_len;                    /* not yet framed */
    size_t taken;                       /* framed, not yet reported to the proxy */
    struct sy_buf *out;
    nghttp2_nv *resp_trailers;          /* after the last DATA (one malloc'd block, text too) */
    size_t nresp_trailers;
};

/*
 * A field of a request's head (HTTP2 HCAT_REQUEST) into the head's text
 * in req->in (a refused head sets fail_status). Returns NULL, or why the
 * request is malformed (RFC 9113 8.1.1: the caller resets the stream).
 */
const char *sy_h2_head_field(struct sy_h2_stream *st, nghttp2_rcbuf *name, nghttp2_rcbuf *value);

/*
 * The end of the head: the request line if no regular field wrote it, the
 * cookies joined, transfer-encoding chunked for a body of unknown length
 * (st->chunked), the empty line; the fields' buffers go.
 */
void sy_h2_head_finish(struct sy_h2_stream *st, bool end_stream);

/* Drops what the head held on to (pseudo-header fields, cookies). */
void sy_h2_head_parts_free(struct sy_h2_stream *st);

/* A request trailer field: kept for the chunked body's trailer section when it may travel. */
void sy_h2_trailer_field(struct sy_h2_stream *st, nghttp2_rcbuf *name, nghttp2_rcbuf *value);

/* The end of a chunked request body into dst: as much as fits in room; 0 once all went. */
size_t sy_h2_body_tail(struct sy_h2_stream *st, char *dst, size_t room);

/*
 * A response head, HTTP/1.1 text beginning "HTTP/1.1 NNN " (len >= 12), as
 * HTTP/2 fields into nva (room for one more than its lines), pointing into
 * text; returns how many.
 */
size_t sy_h2_response_fields(char *text, size_t len, nghttp2_nv *nva);

/* Trailer fields (HTTP/1.1 lines, checked by the parser) as one malloc'd block of fields. */
nghttp2_nv *sy_h2_trailer_fields(const char *fields, size_t len, size_t *n);

#endif
