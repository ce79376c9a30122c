/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * h2_fields.c: HTTP/2 fields as HTTP/1.1 text and back, for h2.c. A
 * request's head is written field by field into its own buffer as the text
 * an HTTP/1.1 client would have sent (the strict parser then reads it), its
 * trailers into the trailer section of its chunked body; a response head
 * and trailer section, HTTP/1.1 text as the proxy builds them, become
 * nghttp2 field lists. The rules are RFC 9113 8.2-8.3 and RFC 9110 6.5.1.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sy_auto.h"

#if SY_HAVE_NGHTTP2

#include "h2_internal.h"
#include "http.h"

/* ---- the request head ---------------------------------------------------- */

static void refuse_head(struct sy_h2_stream *st, int status, const char *reason)
{
    if (!st->fail_status) {
        st->fail_status = status;
        st->fail_reason = reason;
    }
}

/* Appends to the head text, refusing the head (431) past max_header_bytes. */
static void head_put(struct sy_h2_stream *st, const void *p, size_t n)
{
    struct sy_buf *in = st->req->in;
    /* room is kept for the empty line that ends the head */
    size_t limit = (size_t)st->req->conf->limits.max_header_bytes - 2;

    if (st->fail_status)
        return;
    if (in->end + n > limit || in->end + n > in->cap) {
        refuse_head(st, 431, "request head too large");
        return;
    }
    memcpy(in->data + in->end, p, n);
    in->end += (uint32_t)n;
}

#define HEAD_LIT(st, lit) head_put((st), (lit), sizeof(lit) - 1)

static void head_put_rcbuf(struct sy_h2_stream *st, nghttp2_rcbuf *rc)
{
    nghttp2_vec v = nghttp2_rcbuf_get_buf(rc);
    head_put(st, v.base, v.len);
}

/* A request target as HTTP/1.1 carries it: visible ASCII only (RFC 9112 3.2). */
static bool valid_target(nghttp2_vec v)
{
    if (v.len == 0)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if (v.base[i] <= 0x20 || v.base[i] >= 0x7f)
            return false;
    return true;
}

/* The request line and Host, once the pseudo-header fields are all in. */
static void write_request_line(struct sy_h2_stream *st)
{
    nghttp2_rcbuf **ps = st->pseudo;

    st->line_written = true;
    if (!ps[PS_METHOD]) {
        refuse_head(st, 400, "HTTP/2 request without :method");
        return;
    }
    nghttp2_vec method = nghttp2_rcbuf_get_buf(ps[PS_METHOD]);
    if (method.len == 7 && memcmp(method.base, "CONNECT", 7) == 0) {
        refuse_head(st, 501, "CONNECT over HTTP/2 is not supported");
        return;
    }
    if (!ps[PS_PATH] || !valid_target(nghttp2_rcbuf_get_buf(ps[PS_PATH]))) {
        refuse_head(st, 400, "invalid :path");
        return;
    }
    head_put_rcbuf(st, ps[PS_METHOD]);
    HEAD_LIT(st, " ");
    head_put_rcbuf(st, ps[PS_PATH]);
    HEAD_LIT(st, " HTTP/1.1\r\n");
    if (ps[PS_AUTHORITY]) {
        /* RFC 9113 8.3.1: :authority stands for Host */
        HEAD_LIT(st, "host: ");
        head_put_rcbuf(st, ps[PS_AUTHORITY]);
        HEAD_LIT(st, "\r\n");
    }
}

static int pseudo_index(nghttp2_vec name)
{
    static const char *const names[PS_COUNT] = {":method", ":path", ":authority", ":scheme"};

    for (int i = 0; i < PS_COUNT; i++)
        if (name.len == strlen(names[i]) && memcmp(name.base, names[i], name.len) == 0)
            return i;
    return -1;
}

static bool name_is(nghttp2_vec name, const char *lit)
{
    return name.len == strlen(lit) && memcmp(name.base, lit, name.len) == 0;
}

/* RFC 9113 8.2.2: connection-specific fields make a request malformed. */
static bool connection_specific(nghttp2_vec name)
{
    return name_is(name, "connection") || name_is(name, "keep-alive") ||
           name_is(name, "proxy-connection") || name_is(name, "transfer-encoding") ||
           name_is(name, "upgrade");
}

static void keep_cookie(struct sy_h2_stream *st, nghttp2_rcbuf *value)
{
    if (st->ncookies == st->cookies_cap) {
        uint32_t cap = st->cookies_cap ? st->cookies_cap * 2 : 4;
        nghttp2_rcbuf **p = realloc(st->cookies, cap * sizeof(*p));
        if (!p) {
            refuse_head(st, 503, "out of memory");
            return;
        }
        st->cookies = p;
        st->cookies_cap = cap;
    }
    nghttp2_rcbuf_incref(value);
    st->cookies[st->ncookies++] = value;
}

const char *sy_h2_head_field(struct sy_h2_stream *st, nghttp2_rcbuf *name, nghttp2_rcbuf *value)
{
    nghttp2_vec n = nghttp2_rcbuf_get_buf(name), v = nghttp2_rcbuf_get_buf(value);

    if (n.len > 0 && n.base[0] == ':') {
        int i = pseudo_index(n);
        if (i < 0 || st->line_written || st->pseudo[i])
            return "invalid HTTP/2 pseudo-header field";
        nghttp2_rcbuf_incref(value);
        st->pseudo[i] = value;
        return NULL;
    }
    if (!st->line_written)
        write_request_line(st);
    if (connection_specific(n))
        return "connection-specific field in an HTTP/2 request";
    if (name_is(n, "host") && st->pseudo[PS_AUTHORITY]) {
        nghttp2_vec a = nghttp2_rcbuf_get_buf(st->pseudo[PS_AUTHORITY]);
        if (a.len != v.len || strncasecmp((const char *)a.base, (const char *)v.base, v.len))
            return "HTTP/2 :authority and Host disagree";
        return NULL;            /* the same: Host is written already */
    }
    if (name_is(n, "cookie")) {
        keep_cookie(st, value);
        return NULL;
    }
    if (name_is(n, "content-length"))
        st->has_length = true;
    head_put(st, n.base, n.len);
    HEAD_LIT(st, ": ");
    head_put(st, v.base, v.len);
    HEAD_LIT(st, "\r\n");
    return NULL;
}

void sy_h2_head_finish(struct sy_h2_stream *st, bool end_stream)
{
    struct sy_buf *in = st->req->in;

    if (!st->line_written)
        write_request_line(st);
    if (st->ncookies) {
        /* RFC 9113 8.2.3: the crumbs joined into one line */
        HEAD_LIT(st, "cookie: ");
        for (uint32_t i = 0; i < st->ncookies; i++) {
            if (i)
                HEAD_LIT(st, "; ");
            head_put_rcbuf(st, st->cookies[i]);
        }
        HEAD_LIT(st, "\r\n");
    }
    if (!end_stream && !st->has_length) {
        /* a body of unknown length goes upstream chunked; read_body frames it */
        st->chunked = true;
        HEAD_LIT(st, "transfer-encoding: chunked\r\n");
    }
    sy_h2_head_parts_free(st);
    if (!st->fail_status) {
        in->data[in->end++] = '\r';     /* head_put kept room for these two */
        in->data[in->end++] = '\n';
    }
}

void sy_h2_head_parts_free(struct sy_h2_stream *st)
{
    for (int i = 0; i < PS_COUNT; i++) {
        if (st->pseudo[i])
            nghttp2_rcbuf_decref(st->pseudo[i]);
        st->pseudo[i] = NULL;
    }
    for (uint32_t i = 0; i < st->ncookies; i++)
        nghttp2_rcbuf_decref(st->cookies[i]);
    free(st->cookies);
    st->cookies = NULL;
    st->ncookies = st->cookies_cap = 0;
}

/* ---- request trailers ---------------------------------------------------- */

/* A value the HTTP/1.1 parser takes: HTAB, SP, visible ASCII, obs-text (RFC 9110 5.5). */
static bool valid_value(nghttp2_vec v)
{
    for (size_t i = 0; i < v.len; i++)
        if ((v.base[i] < 0x20 && v.base[i] != '\t') || v.base[i] == 0x7f)
            return false;
    return true;
}

/*
 * nghttp2 refused pseudo-fields and the connection-specific ones. A field
 * goes upstream in the chunked body's trailer section, within the limits
 * the relay checks there (the head's), if it may travel at all; a body
 * with a content-length has no trailer section in HTTP/1.1, so its
 * trailers are dropped (RFC 9110 6.5.1 lets a recipient).
 */
void sy_h2_trailer_field(struct sy_h2_stream *st, nghttp2_rcbuf *name, nghttp2_rcbuf *value)
{
    const struct sy_limits *lim = &st->req->conf->limits;
    nghttp2_vec n = nghttp2_rcbuf_get_buf(name), v = nghttp2_rcbuf_get_buf(value);
    size_t line = n.len + 2 + v.len + 2;

    if (!st->chunked || st->discard || !sy_trailer_allowed((const char *)n.base, n.len) ||
        !valid_value(v) || line > SY_CHUNK_MAX_TRAILER_LINE ||
        st->trailer_fields >= (uint32_t)lim->max_headers ||
        st->trailers_len + line > (uint32_t)lim->max_header_bytes)
        return;
    if (!st->trailers && !(st->trailers = malloc((size_t)lim->max_header_bytes)))
        return;
    char *p = st->trailers + st->trailers_len;
    memcpy(p, n.base, n.len);
    memcpy(p + n.len, ": ", 2);
    memcpy(p + n.len + 2, v.base, v.len);
    memcpy(p + n.len + 2 + v.len, "\r\n", 2);
    st->trailers_len += (uint32_t)line;
    st->trailer_fields++;
}

/*
 * The last chunk, the trailer section, the empty line. The relay holds a
 * trailer field line in its buffer until it ends, and has room for one
 * (SY_CHUNK_MAX_TRAILER_LINE): what does not fit now comes at the next call.
 */
size_t sy_h2_body_tail(struct sy_h2_stream *st, char *dst, size_t room)
{
    const struct {
        const char *p;
        size_t n;
    } parts[] = {{"0\r\n", 3}, {st->trailers, st->trailers_len}, {"\r\n", 2}};
    size_t at = st->tail_at, done = 0;

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && done < room; i++) {
        if (at >= parts[i].n) {
            at -= parts[i].n;
            continue;
        }
        size_t k = parts[i].n - at < room - done ? parts[i].n - at : room - done;
        memcpy(dst + done, parts[i].p + at, k);
        done += k;
        at = 0;
    }
    st->tail_at += (uint32_t)done;
    return done;
}

/* ---- responses ----------------------------------------------------------- */

/* The value of a field line from colon to eol (its CR LF), without its OWS. */
static void field_value(char *colon, char *eol, char **v, char **ve)
{
    *v = colon + 1;
    *ve = eol - 1;              /* the CR */
    while (*v < *ve && (**v == ' ' || **v == '\t'))
        (*v)++;
    while (*ve > *v && ((*ve)[-1] == ' ' || (*ve)[-1] == '\t'))
        (*ve)--;
}

/*
 * Names are lowered as nghttp2 copies them (RFC 9113 8.2.1); the
 * connection-specific fields and TE go (8.2.2).
 */
size_t sy_h2_response_fields(char *text, size_t len, nghttp2_nv *nva)
{
    size_t nnv = 0;
    char *p = memchr(text, '\n', len), *limit = text + len;

    nva[nnv++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)text + 9, 7, 3,
                              NGHTTP2_NV_FLAG_NONE};
    while (p && p + 1 < limit) {
        char *line = p + 1, *eol = memchr(line, '\n', (size_t)(limit - line));
        if (!eol || eol - line <= 1)
            break;                          /* the empty line */
        char *colon = memchr(line, ':', (size_t)(eol - line)), *v, *ve;
        p = eol;
        if (!colon)
            continue;
        field_value(colon, eol, &v, &ve);
        nghttp2_vec name = {(uint8_t *)line, (size_t)(colon - line)};
        char lower[32];
        if (name.len < sizeof(lower)) {
            for (size_t i = 0; i < name.len; i++)
                lower[i] = (char)(line[i] >= 'A' && line[i] <= 'Z' ? line[i] + 32 : line[i]);
            nghttp2_vec ln = {(uint8_t *)lower, name.len};
            if (connection_specific(ln) || name_is(ln, "te"))
                continue;
        }
        nva[nnv++] = (nghttp2_nv){(uint8_t *)line, (uint8_t *)v, name.len, (size_t)(ve - v),
                                  NGHTTP2_NV_FLAG_NONE};
    }
    return nnv;
}

nghttp2_nv *sy_h2_trailer_fields(const char *fields, size_t len, size_t *n)
{
    size_t lines = 0;

    *n = 0;
    for (size_t i = 0; i < len; i++)
        lines += fields[i] == '\n';
    if (lines == 0)
        return NULL;
    nghttp2_nv *nva = malloc(lines * sizeof(*nva) + len);
    if (!nva)
        return NULL;            /* without memory the trailers are dropped */
    char *text = (char *)(nva + lines), *p = text, *end = text + len;
    memcpy(text, fields, len);
    while (p < end && *n < lines) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *colon = memchr(p, ':', (size_t)(eol - p)), *v, *ve;
        field_value(colon, eol, &v, &ve);
        nva[(*n)++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, (size_t)(colon - p),
                                   (size_t)(ve - v), NGHTTP2_NV_FLAG_NONE};
        p = eol + 1;
    }
    return nva;
}

#endif /* SY_HAVE_NGHTTP2 */
