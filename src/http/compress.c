/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * compress.c: the `compress` route policy (compress.h). The parsers are
 * strict: a value that does not parse means "do not compress", never an
 * error, since sending the body as it is stays correct. The stream writes
 * gzip into one fixed buffer, leaving room for a chunk-size line before
 * the data and the chunk's CRLF (and the last chunk) after it, so a chunk
 * leaves in one write without copying.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compress.h"

#define CHUNK_HEAD 10           /* room for a chunk-size line: 8 hex digits and CRLF */
#define CHUNK_TAIL 7            /* the data's CRLF and the last chunk "0\r\n\r\n" */

/* ---- parsing (RFC 9110 5.6) --------------------------------------------- */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static size_t skip_ows(const char *v, size_t len, size_t i)
{
    while (i < len && is_ows(v[i]))
        i++;
    return i;
}

static size_t token_end(const char *v, size_t len, size_t i)
{
    while (i < len && is_tchar((unsigned char)v[i]))
        i++;
    return i;
}

static bool token_is(const char *v, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(v, word, len) == 0;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths. */
static int parse_qvalue(const char *v, size_t len, size_t *i)
{
    size_t p = *i;
    int q;

    if (p >= len || (v[p] != '0' && v[p] != '1'))
        return -1;
    q = (v[p++] - '0') * 1000;
    if (p < len && v[p] == '.') {
        p++;
        for (int scale = 100, n = 0; n < 3 && p < len && v[p] >= '0' && v[p] <= '9'; n++) {
            q += (v[p++] - '0') * scale;
            scale /= 10;
        }
    }
    if (q > 1000)
        return -1;
    *i = p;
    return q;
}

/*
 * Accept-Encoding = #( codings [ weight ] ), weight = OWS ";" OWS "q=" qvalue
 * (RFC 9110 12.5.3). Records the weights of gzip (x-gzip is the same coding,
 * 8.4.1.3) and of "*"; -1 where absent. Returns -1 when the value does not parse.
 */
static int parse_accept_encoding(const char *v, size_t len, int *q_gzip, int *q_star)
{
    size_t i = 0;

    for (;;) {
        i = skip_ows(v, len, i);
        if (i < len && v[i] == ',') {           /* empty list elements are allowed */
            i++;
            continue;
        }
        if (i == len)
            return 0;
        size_t start = i;
        i = token_end(v, len, i);
        if (i == start)
            return -1;
        const char *name = v + start;
        size_t nlen = i - start;
        int q = 1000;
        i = skip_ows(v, len, i);
        if (i < len && v[i] == ';') {
            i = skip_ows(v, len, i + 1);
            if (i + 2 > len || (v[i] != 'q' && v[i] != 'Q') || v[i + 1] != '=')
                return -1;
            i += 2;
            if ((q = parse_qvalue(v, len, &i)) < 0)
                return -1;
            i = skip_ows(v, len, i);
        }
        if (i < len && v[i] != ',')
            return -1;
        if (token_is(name, nlen, "gzip") || token_is(name, nlen, "x-gzip"))
            *q_gzip = q;
        else if (token_is(name, nlen, "*"))
            *q_star = q;
    }
}

static bool gzip_accepted(int q_gzip, int q_star)
{
    return q_gzip >= 0 ? q_gzip > 0 : q_star > 0;
}

bool sy_compress_accepts_gzip(const char *v, size_t len)
{
    int q_gzip = -1, q_star = -1;

    return parse_accept_encoding(v, len, &q_gzip, &q_star) == 0 && gzip_accepted(q_gzip, q_star);
}

static bool suffix_is(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len > n && strncasecmp(s + len - n, suffix, n) == 0;
}

/* media-type = type "/" subtype parameters (RFC 9110 8.3.1); parameters do not matter here. */
bool sy_compress_type_ok(const char *v, size_t len)
{
    size_t i = skip_ows(v, len, 0), t0 = i;

    i = token_end(v, len, i);
    size_t tlen = i - t0;
    if (tlen == 0 || i >= len || v[i] != '/')
        return false;
    size_t s0 = ++i;
    i = token_end(v, len, i);
    size_t slen = i - s0;
    i = skip_ows(v, len, i);
    if (slen == 0 || (i < len && v[i] != ';'))
        return false;
    const char *type = v + t0, *sub = v + s0;
    if (token_is(type, tlen, "text"))
        return true;
    if (token_is(type, tlen, "image"))
        return token_is(sub, slen, "svg+xml");
    if (!token_is(type, tlen, "application"))
        return false;
    return token_is(sub, slen, "json") || token_is(sub, slen, "javascript") ||
           token_is(sub, slen, "x-javascript") || token_is(sub, slen, "ecmascript") ||
           token_is(sub, slen, "xml") || suffix_is(sub, slen, "+json") ||
           suffix_is(sub, slen, "+xml");
}

/* Cache-Control = #cache-directive, token [ "=" ( token / quoted-string ) ]. */
bool sy_compress_no_transform(const char *v, size_t len)
{
    size_t i = 0;

    while (i < len) {
        i = skip_ows(v, len, i);
        size_t start = i;
        i = token_end(v, len, i);
        if (token_is(v + start, i - start, "no-transform") &&
            (skip_ows(v, len, i) == len || v[skip_ows(v, len, i)] == ','))
            return true;
        /* skip the rest of this directive; a comma inside quotes is not a separator */
        bool quoted = false;
        for (; i < len && (quoted || v[i] != ','); i++) {
            if (quoted && v[i] == '\\' && i + 1 < len)
                i++;
            else if (v[i] == '"')
                quoted = !quoted;
        }
        i++;
    }
    return false;
}

static bool name_is(const struct sy_header *hd, const char *data, const char *name)
{
    return token_is(data + hd->name.off, hd->name.len, name);
}

/* Whether the request's Accept-Encoding lines, taken together, accept gzip. */
static bool request_accepts_gzip(const struct sy_http_head *req, const char *data)
{
    int q_gzip = -1, q_star = -1;
    bool seen = false;

    for (uint32_t i = 0; i < req->nheaders; i++) {
        const struct sy_header *hd = &req->headers[i];
        if (hd->id != SY_HDR_OTHER || !name_is(hd, data, "accept-encoding"))
            continue;
        if (parse_accept_encoding(data + hd->value.off, hd->value.len, &q_gzip, &q_star) < 0)
            return false;
        seen = true;
    }
    return seen && gzip_accepted(q_gzip, q_star);
}

/* The response's own headers: a type worth it, no coding, no range, transforms allowed. */
static bool response_compressible(const struct sy_http_head *resp, const char *data, int *etag)
{
    bool typed = false;

    for (uint32_t i = 0; i < resp->nheaders; i++) {
        const struct sy_header *hd = &resp->headers[i];
        const char *v = data + hd->value.off;
        size_t vlen = hd->value.len;
        if (hd->id != SY_HDR_OTHER)
            continue;
        if (name_is(hd, data, "content-encoding") || name_is(hd, data, "content-range"))
            return false;
        if (name_is(hd, data, "cache-control") && sy_compress_no_transform(v, vlen))
            return false;
        if (name_is(hd, data, "content-type")) {
            if (!sy_compress_type_ok(v, vlen))
                return false;
            typed = true;
        }
        if (name_is(hd, data, "etag") && vlen > 0 && v[0] == '"')
            *etag = (int)i;
    }
    return typed;
}

bool sy_compress_wanted(const struct sy_http_head *req, const char *req_data,
                        const struct sy_http_head *resp, const char *resp_data, int *etag)
{
    *etag = -1;
    /* 206 is a range of the identity body: compressing it would mix codings. */
    if (req->method == SY_METHOD_HEAD || resp->status < 200 || resp->status > 299 ||
        resp->status == 204 || resp->status == 206 || resp->body == SY_BODY_NONE)
        return false;
    if (resp->body == SY_BODY_LENGTH && resp->content_length < SY_GZIP_MIN_LENGTH)
        return false;
    return request_accepts_gzip(req, req_data) && response_compressible(resp, resp_data, etag);
}

bool sy_compress_vary_covered(const struct sy_http_head *resp, const char *data)
{
    for (uint32_t i = 0; i < resp->nheaders; i++) {
        const struct sy_header *hd = &resp->headers[i];
        if (hd->id != SY_HDR_OTHER || !name_is(hd, data, "vary"))
            continue;
        const char *v = data + hd->value.off;
        size_t len = hd->value.len, j = 0;
        while (j < len) {
            j = skip_ows(v, len, j);
            size_t start = j;
            j = token_end(v, len, j);
            if (token_is(v + start, j - start, "*") ||
                token_is(v + start, j - start, "accept-encoding"))
                return true;
            while (j < len && v[j] != ',')
                j++;
            j++;
        }
    }
    return false;
}

/* ---- the stream --------------------------------------------------------- */

/*
 * A finished stream per window size, kept by the thread that used it and
 * reset for the next response: zlib's init allocates and zeroes up to
 * 256 KiB, which cost more than compressing an 8 KiB answer (about 4 us of
 * the ~39 us a request took beside nginx's 35).
 */
#define WBITS_MIN 9
#define WBITS_MAX 15
static __thread struct sy_gzip *spare[WBITS_MAX - WBITS_MIN + 1];

struct sy_gzip *sy_gzip_new(struct sy_buf *out, uint64_t length, bool chunked)
{
    struct sy_gzip *gz;
    int wbits = WBITS_MAX, memlevel = 8;
    /*
     * zlib takes (1 << (wbits + 2)) + (1 << (memlevel + 9)) bytes, 256 KiB
     * at 15 and 8; a window larger than the body buys nothing (as nginx
     * sizes it). 9 is the smallest window deflate supports.
     */
    while (length > 0 && wbits > WBITS_MIN && length < (1u << (wbits - 1)) - 262) {
        wbits--;
        memlevel--;
    }
    if (memlevel < 1)
        memlevel = 1;
    if ((gz = spare[wbits - WBITS_MIN]) != NULL) {
        spare[wbits - WBITS_MIN] = NULL;
        gz->dirty = gz->finished = false;
    } else {
        if (!(gz = calloc(1, sizeof(*gz))))
            return NULL;
        if (deflateInit2(&gz->zs, SY_GZIP_LEVEL, Z_DEFLATED, wbits + 16, memlevel,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            free(gz);
            return NULL;
        }
        gz->wbits = wbits;
    }
    gz->out = out;
    gz->chunked = chunked;
    out->start = out->end = 0;
    return gz;
}

void sy_gzip_free(struct sy_gzip *gz, struct sy_buf_pool *bufs)
{
    if (!gz)
        return;
    sy_buf_put(bufs, gz->out);
    gz->out = NULL;
    struct sy_gzip **slot = &spare[gz->wbits - WBITS_MIN];
    if (!*slot && deflateReset(&gz->zs) == Z_OK) {
        *slot = gz;
        return;
    }
    deflateEnd(&gz->zs);
    free(gz);
}

void sy_gzip_cache_clear(void)
{
    for (size_t i = 0; i < sizeof(spare) / sizeof(spare[0]); i++) {
        if (spare[i]) {
            deflateEnd(&spare[i]->zs);
            free(spare[i]);
            spare[i] = NULL;
        }
    }
}

/* Frames the deflate output out->data[CHUNK_HEAD..+n) as a chunk in place. */
static void frame_chunk(struct sy_gzip *gz, size_t n)
{
    struct sy_buf *out = gz->out;
    char head[CHUNK_HEAD + 1];

    out->start = out->end = CHUNK_HEAD;
    if (n) {
        int hlen = snprintf(head, sizeof(head), "%zx\r\n", n);
        out->start = CHUNK_HEAD - (uint32_t)hlen;
        memcpy(out->data + out->start, head, (size_t)hlen);
        out->end += (uint32_t)n;
        memcpy(out->data + out->end, "\r\n", 2);
        out->end += 2;
    }
    if (gz->finished) {
        memcpy(out->data + out->end, "0\r\n\r\n", 5);
        out->end += 5;
    }
}

int sy_gzip_fill(struct sy_gzip *gz, const char *in, size_t len, enum sy_gzip_flush flush,
                 size_t *used)
{
    struct sy_buf *out = gz->out;
    uint32_t at = gz->chunked ? CHUNK_HEAD : 0;
    uint32_t room = out->cap - at - (gz->chunked ? CHUNK_TAIL : 0);
    static const int zflush[] = {
        [SY_GZIP_MORE] = Z_NO_FLUSH, [SY_GZIP_SYNC] = Z_SYNC_FLUSH, [SY_GZIP_FINISH] = Z_FINISH,
    };

    gz->zs.next_in = (Bytef *)in;
    gz->zs.avail_in = (uInt)len;
    gz->zs.next_out = (Bytef *)out->data + at;
    gz->zs.avail_out = room;
    int rc = deflate(&gz->zs, zflush[flush]);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        return -1;
    *used = len - gz->zs.avail_in;
    size_t n = room - gz->zs.avail_out;
    if (*used)
        gz->dirty = true;
    /* A flush is complete once deflate left output space unused. */
    if (flush == SY_GZIP_SYNC && gz->zs.avail_out != 0)
        gz->dirty = false;
    gz->finished = rc == Z_STREAM_END;
    gz->zs.next_in = NULL;
    gz->zs.avail_in = 0;
    if (gz->chunked) {
        frame_chunk(gz, n);
    } else {
        out->start = 0;
        out->end = (uint32_t)n;
    }
    return 0;
}
