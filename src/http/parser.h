/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * parser.h: strict HTTP/1.1 message heads and chunked bodies (RFC 9112).
 * The parser never copies: it records spans (offset, length) into the
 * caller's buffer. It is the security boundary of the proxy: anything
 * ambiguous is an error with a status and a reason, never a guess.
 */
#ifndef SY_HTTP_PARSER_H
#define SY_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sy_span {
    uint32_t off;               /* from the start of the buffer given to the parser */
    uint32_t len;
};

enum sy_method {
    SY_METHOD_OTHER,            /* a valid token we do not know */
    SY_METHOD_GET,
    SY_METHOD_HEAD,
    SY_METHOD_POST,
    SY_METHOD_PUT,
    SY_METHOD_DELETE,
    SY_METHOD_CONNECT,
    SY_METHOD_OPTIONS,
    SY_METHOD_TRACE,
    SY_METHOD_PATCH,
};

/* Headers the proxy acts on, recognised case-insensitively while parsing. */
enum sy_header_id {
    SY_HDR_OTHER,
    SY_HDR_HOST,
    SY_HDR_CONTENT_LENGTH,
    SY_HDR_TRANSFER_ENCODING,
    SY_HDR_CONNECTION,
    SY_HDR_KEEP_ALIVE,
    SY_HDR_PROXY_CONNECTION,
    SY_HDR_TE,
    SY_HDR_TRAILER,
    SY_HDR_UPGRADE,
    SY_HDR_EXPECT,
    SY_HDR_X_FORWARDED_FOR,
    SY_HDR_X_FORWARDED_PROTO,
    SY_HDR_X_FORWARDED_HOST,
    SY_HDR_X_REQUEST_ID,
    SY_HDR_USER_AGENT,
    SY_HDR_COOKIE,
    SY_HDR_UNDERSCORE_TWIN,     /* X_Forwarded_For & co.: see header_id() */
};

struct sy_header {
    struct sy_span name;
    struct sy_span value;       /* leading and trailing whitespace excluded */
    uint32_t line_end;          /* offset just past this header line's CRLF */
    uint8_t id;                 /* enum sy_header_id */
    bool hop_by_hop;            /* named in Connection, or hop-by-hop by RFC 9110 7.6.1 */
};

enum sy_body_kind {
    SY_BODY_NONE,
    SY_BODY_LENGTH,             /* content_length bytes */
    SY_BODY_CHUNKED,
    SY_BODY_UNTIL_CLOSE,        /* responses only */
};

enum sy_parse_status {
    SY_PARSE_DONE,              /* a complete head; head->head_len bytes */
    SY_PARSE_AGAIN,             /* need more bytes */
    SY_PARSE_ERROR,             /* head->error_status and head->error_reason set */
};

struct sy_parse_limits {
    uint32_t max_head_bytes;    /* 431 (requests) / error (responses) beyond */
    uint32_t max_uri_bytes;     /* 414 beyond */
    uint32_t max_headers;       /* 431 beyond; also the capacity of head->headers */
};

/*
 * One parsed head. The caller provides headers[] with room for
 * limits->max_headers entries and zeroes nothing else: the parser
 * initialises every other field.
 */
struct sy_http_head {
    struct sy_header *headers;
    uint32_t nheaders;
    uint32_t head_len;          /* bytes of the head including the empty line */

    /* request line */
    enum sy_method method;
    struct sy_span method_text;
    struct sy_span target;      /* as sent */
    struct sy_span path;        /* origin-form path (from an absolute-form target too) */
    struct sy_span query;       /* after '?', without it; len 0 when none */
    bool absolute_form;

    /* status line */
    int status;
    struct sy_span reason;

    int version_minor;          /* HTTP/1.x */
    struct sy_span host;        /* Host value (or the absolute-form authority), lower case not guaranteed */
    enum sy_body_kind body;
    uint64_t content_length;    /* SY_BODY_LENGTH */
    bool keep_alive;            /* version default, overridden by Connection */
    bool expect_continue;       /* Expect: 100-continue */
    bool upgrade;               /* Connection: upgrade with an Upgrade header */

    int error_status;           /* 400, 413, 414, 417, 431, 501, 505; 502 for responses */
    const char *error_reason;   /* static text for logs, such as "both Content-Length and Transfer-Encoding" */

    uint32_t scan_off;          /* resume point of the end-of-head search: internal */
};

/* Call before the first parse of each new message. */
void sy_http_head_reset(struct sy_http_head *head);

/*
 * Parses the request head at the start of buf[0..len). Call again with the
 * same head and a longer buffer (same start) after SY_PARSE_AGAIN: the work
 * done is linear in the bytes received, not in the number of calls.
 */
enum sy_parse_status sy_http_parse_request(struct sy_http_head *head, const char *buf,
                                           size_t len, const struct sy_parse_limits *lim);

/*
 * Parses a response head. request_method decides whether a body follows
 * (HEAD, and CONNECT 2xx, have none); 1xx, 204 and 304 have none either.
 */
enum sy_parse_status sy_http_parse_response(struct sy_http_head *head, const char *buf,
                                            size_t len, const struct sy_parse_limits *lim,
                                            enum sy_method request_method);

/* Finds a header by id; returns its index or -1. */
int sy_http_find(const struct sy_http_head *head, enum sy_header_id id);

/*
 * The longest trailer field line, CRLF included. A relay holds the line in
 * progress in its buffer until it ends (relay.c), and every buffer keeps
 * SY_BUF_BODY_ROOM (4096) bytes beyond the largest head: the line fits.
 */
#define SY_CHUNK_MAX_TRAILER_LINE 4000

/* Incremental chunked-body decoder (RFC 9112 7.1). */
struct sy_chunked {
    int state;                  /* internal */
    uint64_t chunk_left;        /* data bytes left in the current chunk */
    uint64_t total;             /* data bytes decoded so far */
    uint32_t line_len;          /* bytes of the current size line, for limits */
    const char *error_reason;
    uint32_t trailer_bytes;     /* bytes of the trailer section so far, for limits */
    uint32_t trailer_fields;    /* field lines of the trailer section so far */
    /* the trailer section's limits: sy_chunked_init sets 16384 bytes and 100 fields */
    uint32_t max_trailer_bytes;
    uint32_t max_trailer_fields;
    bool report_trailers;       /* return SY_CHUNK_TRAILER at the end of each field line */
    uint32_t field_len;         /* bytes of the trailer field line in progress; 0 between */
    uint32_t field_name_len;    /* its name's length (of the line just reported, too) */
};

enum sy_chunk_status {
    SY_CHUNK_DATA,              /* *data_off, *data_len: a piece of body data */
    SY_CHUNK_AGAIN,             /* everything given was consumed; need more */
    SY_CHUNK_DONE,              /* last chunk and trailers consumed */
    SY_CHUNK_ERROR,             /* c->error_reason set */
    /*
     * report_trailers only: a trailer field line ended with the last byte
     * consumed. It is the *data_len bytes before *consumed, CRLF included
     * (earlier calls may have consumed some of them: the caller kept them);
     * its name is its first c->field_name_len bytes. *data_off is 0.
     */
    SY_CHUNK_TRAILER,
};

void sy_chunked_init(struct sy_chunked *c);

/*
 * Decodes from buf[0..len). *consumed is set to the number of bytes used
 * (including the returned data span, which lies inside them). Trailer
 * fields are validated (header rules, the limits above, at most
 * SY_CHUNK_MAX_TRAILER_LINE bytes a line) and, unless report_trailers,
 * dropped.
 */
enum sy_chunk_status sy_chunked_decode(struct sy_chunked *c, const char *buf, size_t len,
                                       size_t *consumed, size_t *data_off, size_t *data_len);

/*
 * Whether a field may travel in a trailer section (name[0..len), any case).
 * RFC 9110 6.5.1: fields that frame the message, route, authenticate,
 * modify the request or control the response do not belong there; nor do
 * connection-specific ones, nor those the gateway sets itself (an app that
 * merges trailers into the head must not see a forged X-Forwarded-For).
 */
bool sy_trailer_allowed(const char *name, size_t len);

const char *sy_method_name(enum sy_method m);

#endif
