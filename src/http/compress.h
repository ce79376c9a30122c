/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * compress.h: a route's `compress` policy. Decides whether a response is
 * gzipped (the client's Accept-Encoding, the app's Content-Type,
 * Content-Encoding, Cache-Control and length) and runs one response's gzip
 * stream, framed as chunks, through an output buffer from the worker's
 * freelist. Owner: the request (req->gzip), freed when the request ends.
 */
#ifndef SY_HTTP_COMPRESS_H
#define SY_HTTP_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "core/buf.h"
#include "parser.h"

/* Smaller bodies (by Content-Length) are sent as they are: gzip would gain little or grow them. */
#define SY_GZIP_MIN_LENGTH 256
/* nginx's gzip_comp_level default: the fastest level, most of the gain on text. */
#define SY_GZIP_LEVEL 1

enum sy_gzip_flush {
    SY_GZIP_MORE,               /* more input follows: zlib may hold output back */
    SY_GZIP_SYNC,               /* the app paused: push out what it sent so far */
    SY_GZIP_FINISH,             /* the input ended: trailer and last chunk */
};

struct sy_gzip {
    z_stream zs;
    int wbits;                  /* the window it was made with (its size class) */
    struct sy_buf *out;         /* unsent output: out->data[start..end) */
    bool chunked;               /* frame the output as chunks (HTTP/1.1 client) */
    bool dirty;                 /* input went in since the last completed flush */
    bool finished;              /* the end of the stream is in out */
};

/* RFC 9110 12.5.3: whether an Accept-Encoding value accepts gzip (unparsable: no). */
bool sy_compress_accepts_gzip(const char *v, size_t len);
/* Whether a Content-Type value names a type worth compressing (text, JSON, JS, XML, SVG). */
bool sy_compress_type_ok(const char *v, size_t len);
/* Whether a Cache-Control value holds the no-transform directive (RFC 9111 5.2.2.6). */
bool sy_compress_no_transform(const char *v, size_t len);

/*
 * Whether the response in resp (spans into resp_data) to the request in
 * req (spans into req_data) is gzipped, the route asking for it. Returns
 * in *etag the index of a strong ETag header to weaken, or -1.
 */
bool sy_compress_wanted(const struct sy_http_head *req, const char *req_data,
                        const struct sy_http_head *resp, const char *resp_data, int *etag);

/* Whether the app's Vary already covers Accept-Encoding ("*" or the name itself). */
bool sy_compress_vary_covered(const struct sy_http_head *resp, const char *data);

/*
 * A gzip stream writing into out (taken from the caller's freelist; freed
 * with the stream). length: the body's Content-Length, 0 when unknown,
 * which shrinks zlib's window and memory for small bodies. NULL: no memory.
 */
struct sy_gzip *sy_gzip_new(struct sy_buf *out, uint64_t length, bool chunked);
/* Lets go of the stream; its zlib state stays with the thread for the next response. */
void sy_gzip_free(struct sy_gzip *gz, struct sy_buf_pool *bufs);
/* Frees the streams the calling thread keeps (a worker, when it stops). */
void sy_gzip_cache_clear(void);

/*
 * Compresses from in[0..len) into gz->out, which must be empty; *used
 * tells how much input went in. Output may be empty (zlib buffers it).
 * Returns 0, or -1 on a zlib error.
 */
int sy_gzip_fill(struct sy_gzip *gz, const char *in, size_t len, enum sy_gzip_flush flush,
                 size_t *used);

#endif
