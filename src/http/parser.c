/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * parser.c: the strict HTTP/1.1 head parser and chunked-body decoder
 * (RFC 9112, RFC 9110). It is the proxy's defence against request
 * smuggling: every ambiguity (bare CR or LF, obs-fold, duplicate framing
 * headers, odd Transfer-Encoding) is an error, never a guess.
 */
#include <stdint.h>
#include <string.h>

#include "http/parser.h"

/* Character classes (RFC 9110 5.6.2 tchar, 5.5 field content, RFC 3986 host). */
enum {
    C_TCHAR = 1,        /* token character */
    C_VALUE = 2,        /* field-vchar, obs-text, SP, HTAB: field values and reasons */
    C_TARGET = 4,       /* visible ASCII but '#': request-target */
    C_HOST = 8,         /* reg-name: unreserved, sub-delims, '%' */
    C_HEX = 16,
    C_QDTEXT = 32,      /* quoted-string text */
};

static const uint8_t cls[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0, 34,  0,  0,  0,  0,  0,  0,  /* 0x00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    34, 47,  6, 35, 47, 47, 47, 47, 46, 46, 47, 47, 46, 47, 47, 38,  /* 0x20 */
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 38, 46, 38, 46, 38, 38,  /* 0x30 */
    38, 63, 63, 63, 63, 63, 63, 47, 47, 47, 47, 47, 47, 47, 47, 47,  /* 0x40 */
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 38,  6, 38, 39, 47,  /* 0x50 */
    39, 63, 63, 63, 63, 63, 63, 47, 47, 47, 47, 47, 47, 47, 47, 47,  /* 0x60 */
    47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 38, 39, 38, 47,  0,  /* 0x70 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,  /* 0x80 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,  /* 0x90 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,  /* 0xa0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,  /* 0xb0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,  /* 0xc0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,  /* 0xd0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,  /* 0xe0 */
    34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,  /* 0xf0 */
};

static const char *const method_names[] = {
    [SY_METHOD_OTHER] = "OTHER",
    [SY_METHOD_GET] = "GET",
    [SY_METHOD_HEAD] = "HEAD",
    [SY_METHOD_POST] = "POST",
    [SY_METHOD_PUT] = "PUT",
    [SY_METHOD_DELETE] = "DELETE",
    [SY_METHOD_CONNECT] = "CONNECT",
    [SY_METHOD_OPTIONS] = "OPTIONS",
    [SY_METHOD_TRACE] = "TRACE",
    [SY_METHOD_PATCH] = "PATCH",
};

/* One parse call: the head, its bytes and limits; responses fail with 502. */
struct parse {
    struct sy_http_head *h;
    const uint8_t *p;
    const struct sy_parse_limits *lim;
    bool response;
};

/* What the field lines said about framing and the connection. */
struct fields {
    int host;                   /* header index, -1 when absent */
    int content_length;
    int transfer_encoding;
    bool conn_close;
    bool conn_keep_alive;
    bool conn_upgrade;
    bool conn_other;            /* Connection names other headers */
    bool has_upgrade;
    bool expect_continue;
};

#define IS_WS(c) ((c) == ' ' || (c) == '\t')

static inline uint8_t
lower(uint8_t c)
{
    return (uint8_t)((unsigned)c - 'A' < 26u ? c + 32 : c);
}

static inline bool
is_digit(uint8_t c)
{
    return (unsigned)c - '0' < 10u;
}

/* s[0..n) equals the lower-case literal, ignoring ASCII case. */
static bool
eq_lower(const uint8_t *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower(s[i]) != (uint8_t)lit[i])
            return false;
    }
    return true;
}

/* As eq_lower, but true only when some '-' of lit was written '_' in s. */
static bool
eq_lower_underscored(const uint8_t *s, const char *lit, size_t n)
{
    bool underscored = false;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_' && lit[i] == '-')
            underscored = true;
        else if (lower(s[i]) != (uint8_t)lit[i])
            return false;
    }
    return underscored;
}

static bool
eq_nocase(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

static bool
is_token(const uint8_t *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!(cls[s[i]] & C_TCHAR))
            return false;
    }
    return true;
}

static struct sy_span
span(size_t off, size_t len)
{
    return (struct sy_span){ (uint32_t)off, (uint32_t)len };
}

static enum sy_parse_status
fail(const struct parse *ps, int status, const char *reason)
{
    ps->h->error_status = ps->response ? 502 : status;
    ps->h->error_reason = reason;
    return SY_PARSE_ERROR;
}

static enum sy_method
method_id(const uint8_t *s, size_t n)
{
    int first, last;

    switch (n) {
    case 3: first = SY_METHOD_GET; last = SY_METHOD_PUT; break;
    case 4: first = SY_METHOD_HEAD; last = SY_METHOD_POST; break;
    case 5: first = SY_METHOD_TRACE; last = SY_METHOD_PATCH; break;
    case 6: first = last = SY_METHOD_DELETE; break;
    case 7: first = SY_METHOD_CONNECT; last = SY_METHOD_OPTIONS; break;
    default: return SY_METHOD_OTHER;
    }
    /* methods are case-sensitive (RFC 9110 9.1) */
    for (int m = first; m <= last; m++) {
        if (strlen(method_names[m]) == n && memcmp(s, method_names[m], n) == 0)
            return (enum sy_method)m;
    }
    return SY_METHOD_OTHER;
}

/*
 * Switch on the length, then one comparison: names are tokens here.
 * CGI-style apps (PHP, WSGI, Rack) read X_Forwarded_For and
 * X-Forwarded-For as one variable, so a client could pass its own copy of
 * a header the gateway sets under the underscore spelling: such twins get
 * an id of their own and are not forwarded. (nginx drops every name with
 * an underscore; that breaks apps that use them and protects nothing more.)
 */
static uint8_t
header_id(const uint8_t *s, size_t n)
{
    const char *name;
    uint8_t id;

    switch (n) {
    case 2: name = "te"; id = SY_HDR_TE; break;
    case 4: name = "host"; id = SY_HDR_HOST; break;
    case 6:
        if (lower(s[0]) == 'e') {
            name = "expect"; id = SY_HDR_EXPECT;
        } else {
            name = "cookie"; id = SY_HDR_COOKIE;
        }
        break;
    case 7:
        if (lower(s[0]) == 't') {
            name = "trailer"; id = SY_HDR_TRAILER;
        } else {
            name = "upgrade"; id = SY_HDR_UPGRADE;
        }
        break;
    case 10:
        switch (lower(s[0])) {
        case 'c': name = "connection"; id = SY_HDR_CONNECTION; break;
        case 'k': name = "keep-alive"; id = SY_HDR_KEEP_ALIVE; break;
        default: name = "user-agent"; id = SY_HDR_USER_AGENT; break;
        }
        break;
    case 12: name = "x-request-id"; id = SY_HDR_X_REQUEST_ID; break;
    case 14: name = "content-length"; id = SY_HDR_CONTENT_LENGTH; break;
    case 15: name = "x-forwarded-for"; id = SY_HDR_X_FORWARDED_FOR; break;
    case 16:
        if (lower(s[0]) == 'p') {
            name = "proxy-connection"; id = SY_HDR_PROXY_CONNECTION;
        } else {
            name = "x-forwarded-host"; id = SY_HDR_X_FORWARDED_HOST;
        }
        break;
    case 17:
        if (lower(s[0]) == 't') {
            name = "transfer-encoding"; id = SY_HDR_TRANSFER_ENCODING;
        } else {
            name = "x-forwarded-proto"; id = SY_HDR_X_FORWARDED_PROTO;
        }
        break;
    default:
        return SY_HDR_OTHER;
    }
    if (eq_lower(s, name, n))
        return id;
    if ((id == SY_HDR_X_FORWARDED_FOR || id == SY_HDR_X_FORWARDED_PROTO ||
         id == SY_HDR_X_FORWARDED_HOST || id == SY_HDR_X_REQUEST_ID) &&
        eq_lower_underscored(s, name, n))
        return SY_HDR_UNDERSCORE_TWIN;
    return SY_HDR_OTHER;
}

/* RFC 9110 7.6.1: connection-specific fields a proxy never forwards. */
static bool
hop_by_hop_id(uint8_t id)
{
    switch (id) {
    case SY_HDR_CONNECTION:
    case SY_HDR_KEEP_ALIVE:
    case SY_HDR_PROXY_CONNECTION:
    case SY_HDR_TE:
    case SY_HDR_TRAILER:
    case SY_HDR_TRANSFER_ENCODING:
    case SY_HDR_UPGRADE:
        return true;
    default:
        return false;
    }
}

/*
 * uri-host [ ":" port ] (RFC 3986 3.2.2): a reg-name or IPv4 address, or
 * an IP literal in brackets. CONNECT's authority-form needs the port.
 */
static bool
valid_authority(const uint8_t *s, size_t n, bool need_port)
{
    size_t i = 0;

    if (n == 0)
        return false;
    if (s[0] == '[') {
        for (i = 1; i < n && ((cls[s[i]] & C_HEX) || s[i] == ':' || s[i] == '.'); i++)
            continue;
        if (i == 1 || i == n || s[i] != ']')
            return false;
        i++;
    } else {
        while (i < n && (cls[s[i]] & C_HOST))
            i++;
        if (i == 0)
            return false;
    }
    if (i == n)
        return !need_port;
    if (s[i++] != ':' || (need_port && i == n))
        return false;
    for (; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
    }
    return true;
}

/* RFC 9110 8.6: 1*DIGIT, and we refuse values that do not fit in an int64. */
static bool
parse_length(const uint8_t *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)s[i] - '0';
        if (d > 9 || v > ((uint64_t)INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Next element of a comma list in p[*pos, end), OWS trimmed; false when done. */
static bool
list_next(const uint8_t *p, size_t *pos, size_t end, struct sy_span *el)
{
    size_t i = *pos;

    if (i > end)
        return false;
    const uint8_t *comma = memchr(p + i, ',', end - i);
    size_t e = comma ? (size_t)(comma - p) : end;
    *pos = e + 1;
    while (i < e && IS_WS(p[i]))
        i++;
    while (e > i && IS_WS(p[e - 1]))
        e--;
    *el = span(i, e - i);
    return true;
}

/* ---- incremental search for the end of the head ------------------------ */

/* Why a request-line scan stopped at p[i]; NULL while a CR awaits its next byte. */
static const char *
stop_reason(const uint8_t *p, size_t i, size_t n, const char *otherwise)
{
    if (p[i] == '\n')
        return "bare LF line ending";
    if (p[i] != '\r')
        return otherwise;
    if (i + 1 == n)
        return NULL;
    return p[i + 1] == '\n' ? "invalid request line" : "bare CR";
}

/*
 * The method, up to its SP. While it is empty, CRLF pairs are skipped
 * (RFC 9112 2.2 lets a server ignore empty lines before the request line).
 */
static enum sy_parse_status
scan_method(const struct parse *ps, size_t n)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *p = ps->p;
    size_t i = h->scan_off;

    for (;;) {
        while (i < n && (cls[p[i]] & C_TCHAR))
            i++;
        if (i == n)
            break;
        if (p[i] == ' ' && i > h->method_text.off) {
            h->method_text.len = (uint32_t)(i - h->method_text.off);
            h->target.off = (uint32_t)(i + 1);
            h->scan_off = (uint32_t)(i + 1);
            return SY_PARSE_DONE;
        }
        if (p[i] != '\r' || i > h->method_text.off) {
            const char *reason = stop_reason(p, i, n, "invalid method");
            if (!reason)
                break;
            return fail(ps, 400, reason);
        }
        if (i + 1 == n)
            break;
        if (p[i + 1] != '\n')
            return fail(ps, 400, "bare CR");
        i += 2;
        h->method_text.off = (uint32_t)i;
    }
    h->scan_off = (uint32_t)i;
    return SY_PARSE_AGAIN;
}

/* The request-target, up to its SP; 414 as soon as it is too long. */
static enum sy_parse_status
scan_target(const struct parse *ps, size_t n)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *p = ps->p;
    size_t i = h->scan_off;

    while (i < n && (cls[p[i]] & C_TARGET))
        i++;
    if (i - h->target.off > ps->lim->max_uri_bytes)
        return fail(ps, 414, "request target too long");
    h->scan_off = (uint32_t)i;
    if (i == n)
        return SY_PARSE_AGAIN;
    if (p[i] == ' ' && i > h->target.off) {
        h->target.len = (uint32_t)(i - h->target.off);
        h->scan_off = (uint32_t)(i + 1);
        return SY_PARSE_DONE;
    }
    const char *reason = stop_reason(p, i, n, "invalid request target");
    return reason ? fail(ps, 400, reason) : SY_PARSE_AGAIN;
}

/*
 * Resumes at scan_off. Every LF must follow a CR, so "\n\r\n" marks the
 * empty line; head_len is set when it is found.
 */
static enum sy_parse_status
scan_end(const struct parse *ps, size_t n)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *p = ps->p;
    size_t i = h->scan_off;

    while (i < n) {
        const uint8_t *lf = memchr(p + i, '\n', n - i);
        if (!lf)
            break;
        size_t at = (size_t)(lf - p);
        if (at == 0 || p[at - 1] != '\r')
            return fail(ps, 400, "bare LF line ending");
        i = at + 1;
        if (at >= 2 && p[at - 2] == '\n') {
            h->head_len = h->scan_off = (uint32_t)i;
            return SY_PARSE_DONE;
        }
    }
    h->scan_off = (uint32_t)n;
    return SY_PARSE_AGAIN;
}

/* ---- field lines ---------------------------------------------------------- */

/* Why a field name stopped at p[i] (s: the line start) without a colon. */
static const char *
name_error(const uint8_t *p, size_t i, size_t s)
{
    if (IS_WS(p[i]) && i > s) {
        while (IS_WS(p[i]))
            i++;
        return p[i] == ':' ? "whitespace before colon" : "invalid header name";
    }
    if (p[i] == '\r' && p[i + 1] != '\n')
        return "bare CR";
    return "invalid header name";
}

/*
 * Skips field-value bytes eight at a time while none is a CTL or DEL;
 * the byte loop after it finishes the value and classifies the stop.
 */
static size_t
skip_value_words(const uint8_t *p, size_t i, size_t end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

    while (i + 8 <= end) {
        uint64_t w, del;
        memcpy(&w, p + i, 8);
        del = w ^ (ones * 0x7f);
        if ((((w - ones * 0x20) & ~w) | ((del - ones) & ~del)) & highs)
            break;
        i += 8;
    }
    return i;
}

/*
 * One field line at *pos (RFC 9112 5). The head is known to end with
 * CRLF CRLF and to hold no bare LF, so the loops stop at a CR at the latest.
 */
static enum sy_parse_status
parse_field_line(const struct parse *ps, size_t *pos, struct sy_header *hd)
{
    const uint8_t *p = ps->p;
    size_t s = *pos, i = s;

    if (IS_WS(p[i]))
        return fail(ps, 400, "obsolete line folding");
    while (cls[p[i]] & C_TCHAR)
        i++;
    if (p[i] != ':' || i == s)
        return fail(ps, 400, name_error(p, i, s));
    hd->name = span(s, i - s);
    hd->id = header_id(p + s, i - s);
    hd->hop_by_hop = hop_by_hop_id(hd->id);
    i++;
    while (IS_WS(p[i]))
        i++;
    size_t vs = i;
    i = skip_value_words(p, i, ps->h->head_len);
    while (cls[p[i]] & C_VALUE)
        i++;
    if (p[i] != '\r')
        return fail(ps, 400, "control character in header value");
    if (p[i + 1] != '\n')
        return fail(ps, 400, "bare CR");
    size_t ve = i;
    while (ve > vs && IS_WS(p[ve - 1]))
        ve--;
    hd->value = span(vs, ve - vs);
    hd->line_end = (uint32_t)(i + 2);
    *pos = i + 2;
    return SY_PARSE_DONE;
}

/* Connection options (RFC 9110 7.6.1); empty list elements are allowed. */
static enum sy_parse_status
note_connection(const struct parse *ps, const struct sy_header *hd, struct fields *f)
{
    const uint8_t *p = ps->p;
    size_t pos = hd->value.off, end = pos + hd->value.len;
    struct sy_span el;

    while (list_next(p, &pos, end, &el)) {
        const uint8_t *t = p + el.off;
        if (el.len == 0)
            continue;
        if (!is_token(t, el.len))
            return fail(ps, 400, "invalid Connection header");
        if (el.len == 5 && eq_lower(t, "close", 5))
            f->conn_close = true;
        else if (el.len == 10 && eq_lower(t, "keep-alive", 10))
            f->conn_keep_alive = true;
        else if (el.len == 7 && eq_lower(t, "upgrade", 7))
            f->conn_upgrade = true;
        else
            f->conn_other = true;
    }
    return SY_PARSE_DONE;
}

static enum sy_parse_status
note_field(const struct parse *ps, int idx, struct fields *f)
{
    const struct sy_header *hd = &ps->h->headers[idx];

    switch (hd->id) {
    case SY_HDR_HOST:
        if (f->host >= 0 && !ps->response)
            return fail(ps, 400, "several Host headers");
        f->host = idx;
        break;
    case SY_HDR_CONTENT_LENGTH:
        /* RFC 9112 6.3 lets equal copies merge; a proxy that must agree with every peer refuses */
        if (f->content_length >= 0)
            return fail(ps, 400, "several Content-Length headers");
        f->content_length = idx;
        break;
    case SY_HDR_TRANSFER_ENCODING:
        if (f->transfer_encoding >= 0)
            return fail(ps, 400, "several Transfer-Encoding headers");
        f->transfer_encoding = idx;
        break;
    case SY_HDR_CONNECTION:
        return note_connection(ps, hd, f);
    case SY_HDR_UPGRADE:
        f->has_upgrade = true;
        break;
    case SY_HDR_EXPECT:
        if (ps->response)
            break;
        if (hd->value.len != 12 || !eq_lower(ps->p + hd->value.off, "100-continue", 12))
            return fail(ps, 417, "unsupported expectation");
        f->expect_continue = true;
        break;
    default:
        break;
    }
    return SY_PARSE_DONE;
}

/* Field lines from offset i to the empty line. */
static enum sy_parse_status
parse_fields(const struct parse *ps, size_t i, struct fields *f)
{
    struct sy_http_head *h = ps->h;
    size_t end = h->head_len - 2;

    *f = (struct fields){ .host = -1, .content_length = -1, .transfer_encoding = -1 };
    while (i < end) {
        if (h->nheaders >= ps->lim->max_headers)
            return fail(ps, 431, "too many headers");
        enum sy_parse_status st = parse_field_line(ps, &i, &h->headers[h->nheaders]);
        if (st != SY_PARSE_DONE)
            return st;
        st = note_field(ps, (int)h->nheaders++, f);
        if (st != SY_PARSE_DONE)
            return st;
    }
    return SY_PARSE_DONE;
}

/*
 * Marks the headers that Connection names as hop-by-hop. Host and
 * Content-Length are never dropped this way: the proxy frames and routes
 * with them, and dropping them is a known desynchronisation trick.
 */
static void
mark_connection_named(const struct parse *ps)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *p = ps->p;

    for (uint32_t c = 0; c < h->nheaders; c++) {
        if (h->headers[c].id != SY_HDR_CONNECTION)
            continue;
        size_t pos = h->headers[c].value.off, end = pos + h->headers[c].value.len;
        struct sy_span el;
        while (list_next(p, &pos, end, &el)) {
            for (uint32_t j = 0; j < h->nheaders; j++) {
                struct sy_header *hd = &h->headers[j];
                if (hd->name.len == el.len && hd->id != SY_HDR_HOST &&
                    hd->id != SY_HDR_CONTENT_LENGTH &&
                    eq_nocase(p + hd->name.off, p + el.off, el.len))
                    hd->hop_by_hop = true;
            }
        }
    }
}

/* ---- framing -------------------------------------------------------------- */

static bool
known_coding(const uint8_t *s, size_t n)
{
    return (n == 4 && eq_lower(s, "gzip", 4)) || (n == 6 && eq_lower(s, "x-gzip", 6)) ||
           (n == 7 && eq_lower(s, "deflate", 7)) || (n == 8 && eq_lower(s, "compress", 8)) ||
           (n == 8 && eq_lower(s, "identity", 8));
}

/*
 * Transfer-Encoding must be exactly "chunked". A well-formed list of
 * codings we know, ending in chunked, is valid HTTP we do not decode (501);
 * anything else is malformed (RFC 9112 6.1, 400).
 */
static enum sy_parse_status
check_transfer_encoding(const struct parse *ps, const struct sy_header *hd)
{
    const uint8_t *p = ps->p;
    size_t pos = hd->value.off, end = pos + hd->value.len;
    bool seen_chunked = false, known = true;
    struct sy_span el;

    if (hd->value.len == 7 && eq_lower(p + pos, "chunked", 7))
        return SY_PARSE_DONE;
    while (list_next(p, &pos, end, &el)) {
        const uint8_t *t = p + el.off;
        if (!is_token(t, el.len))
            return fail(ps, 400, "invalid Transfer-Encoding");
        if (seen_chunked)
            known = false;
        if (el.len == 7 && eq_lower(t, "chunked", 7))
            seen_chunked = true;
        else if (!known_coding(t, el.len))
            known = false;
    }
    if (known && seen_chunked)
        return fail(ps, 501, "unsupported Transfer-Encoding");
    return fail(ps, 400, "invalid Transfer-Encoding");
}

/* RFC 9112 6.3 items 3-5: the framing that Transfer-Encoding or Content-Length gives. */
static enum sy_parse_status
framing(const struct parse *ps, const struct fields *f, enum sy_body_kind *kind)
{
    struct sy_http_head *h = ps->h;

    if (f->transfer_encoding >= 0) {
        if (f->content_length >= 0)
            return fail(ps, 400, "both Content-Length and Transfer-Encoding");
        if (h->version_minor == 0)
            return fail(ps, 400, "Transfer-Encoding on HTTP/1.0");
        *kind = SY_BODY_CHUNKED;
        return check_transfer_encoding(ps, &h->headers[f->transfer_encoding]);
    }
    if (f->content_length >= 0) {
        const struct sy_header *hd = &h->headers[f->content_length];
        if (!parse_length(ps->p + hd->value.off, hd->value.len, &h->content_length))
            return fail(ps, 400, "invalid Content-Length");
        *kind = h->content_length ? SY_BODY_LENGTH : SY_BODY_NONE;
        return SY_PARSE_DONE;
    }
    *kind = ps->response ? SY_BODY_UNTIL_CLOSE : SY_BODY_NONE;
    return SY_PARSE_DONE;
}

static void
connection_flags(struct sy_http_head *h, const struct fields *f)
{
    if (h->version_minor == 1)
        h->keep_alive = !f->conn_close;
    else
        h->keep_alive = f->conn_keep_alive && !f->conn_close;
}

/* ---- requests ------------------------------------------------------------- */

static enum sy_parse_status
parse_version(const struct parse *ps, size_t v, size_t cr, int bad_status)
{
    const uint8_t *s = ps->p + v;
    size_t n = cr - v;

    if (n == 8 && memcmp(s, "HTTP/", 5) == 0 && is_digit(s[5]) && s[6] == '.' &&
        is_digit(s[7])) {
        if (s[5] == '1' && (s[7] == '0' || s[7] == '1')) {
            ps->h->version_minor = s[7] - '0';
            return SY_PARSE_DONE;
        }
        return fail(ps, 505, "unsupported HTTP version");
    }
    if (memchr(s, '\r', n))
        return fail(ps, 400, "bare CR");
    return fail(ps, bad_status, "invalid HTTP version");
}

static void
split_path(struct sy_http_head *h, const uint8_t *p, size_t off, size_t end)
{
    const uint8_t *q = memchr(p + off, '?', end - off);
    size_t path_end = q ? (size_t)(q - p) : end;

    h->path = span(off, path_end - off);
    if (q)
        h->query = span(path_end + 1, end - path_end - 1);
}

/* absolute-form (RFC 9112 3.2.2): http:// or https://, authority, then path and query. */
static enum sy_parse_status
parse_absolute(const struct parse *ps)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *p = ps->p;
    const uint8_t *t = p + h->target.off;
    size_t n = h->target.len, skip;

    if (n > 7 && eq_lower(t, "http://", 7))
        skip = 7;
    else if (n > 8 && eq_lower(t, "https://", 8))
        skip = 8;
    else
        return fail(ps, 400, "invalid request target");
    size_t a = h->target.off + skip, end = h->target.off + n, ae = a;
    while (ae < end && p[ae] != '/' && p[ae] != '?')
        ae++;
    if (!valid_authority(p + a, ae - a, false))
        return fail(ps, 400, "invalid authority in request target");
    h->absolute_form = true;
    h->host = span(a, ae - a);
    split_path(h, p, ae, end);
    return SY_PARSE_DONE;
}

/* The four target forms of RFC 9112 3.2, each allowed only where it belongs. */
static enum sy_parse_status
parse_target(const struct parse *ps)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *t = ps->p + h->target.off;
    size_t n = h->target.len;

    if (h->method == SY_METHOD_CONNECT) {
        if (!valid_authority(t, n, true))
            return fail(ps, 400, "CONNECT needs an authority-form target");
        h->host = h->target;
        return SY_PARSE_DONE;
    }
    if (t[0] == '/') {
        split_path(h, ps->p, h->target.off, h->target.off + n);
        return SY_PARSE_DONE;
    }
    if (n == 1 && t[0] == '*') {
        if (h->method != SY_METHOD_OPTIONS)
            return fail(ps, 400, "asterisk-form only with OPTIONS");
        h->path = h->target;
        return SY_PARSE_DONE;
    }
    return parse_absolute(ps);
}

/* RFC 9112 3.2: exactly one valid Host on HTTP/1.1, agreeing with the target. */
static enum sy_parse_status
check_host(const struct parse *ps, const struct fields *f)
{
    struct sy_http_head *h = ps->h;

    if (f->host < 0)
        return h->version_minor == 1 ? fail(ps, 400, "missing Host") : SY_PARSE_DONE;
    const struct sy_span v = h->headers[f->host].value;
    if (!valid_authority(ps->p + v.off, v.len, false))
        return fail(ps, 400, "invalid Host");
    if ((h->absolute_form || h->method == SY_METHOD_CONNECT) &&
        (v.len != h->host.len || !eq_nocase(ps->p + v.off, ps->p + h->host.off, v.len)))
        return fail(ps, 400, "Host conflicts with request target");
    h->host = v;
    return SY_PARSE_DONE;
}

static enum sy_parse_status
parse_request_head(const struct parse *ps)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *p = ps->p;
    size_t v = (size_t)h->target.off + h->target.len + 1;
    const uint8_t *lf = memchr(p + v, '\n', h->head_len - v);
    size_t line_end = (size_t)(lf - p) + 1;
    struct fields f;
    enum sy_body_kind kind;

    enum sy_parse_status st = parse_version(ps, v, line_end - 2, 400);
    if (st != SY_PARSE_DONE)
        return st;
    h->method = method_id(p + h->method_text.off, h->method_text.len);
    if ((st = parse_target(ps)) != SY_PARSE_DONE ||
        (st = parse_fields(ps, line_end, &f)) != SY_PARSE_DONE ||
        (st = check_host(ps, &f)) != SY_PARSE_DONE ||
        (st = framing(ps, &f, &kind)) != SY_PARSE_DONE)
        return st;
    h->body = kind;
    connection_flags(h, &f);
    h->upgrade = f.conn_upgrade && f.has_upgrade;
    /* RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored */
    h->expect_continue = f.expect_continue && h->version_minor == 1;
    if (f.conn_other)
        mark_connection_named(ps);
    return SY_PARSE_DONE;
}

enum sy_parse_status
sy_http_parse_request(struct sy_http_head *head, const char *buf, size_t len,
                      const struct sy_parse_limits *lim)
{
    const struct parse ps = { head, (const uint8_t *)buf, lim, false };
    size_t n = len < lim->max_head_bytes ? len : lim->max_head_bytes;
    enum sy_parse_status st = SY_PARSE_DONE;

    if (head->error_status)
        return SY_PARSE_ERROR;
    if (head->head_len)
        return SY_PARSE_DONE;
    if (head->scan_off > n)
        return SY_PARSE_AGAIN;  /* a shorter buffer than last time: nothing new */
    if (head->target.off == 0)
        st = scan_method(&ps, n);
    if (st == SY_PARSE_DONE && head->target.len == 0)
        st = scan_target(&ps, n);
    if (st == SY_PARSE_DONE)
        st = scan_end(&ps, n);
    /* not found within max_head_bytes: the head can only be longer */
    if (st == SY_PARSE_AGAIN && n == lim->max_head_bytes)
        return fail(&ps, 431, "request head too large");
    if (st != SY_PARSE_DONE)
        return st;
    return parse_request_head(&ps);
}

/* ---- responses ------------------------------------------------------------ */

/*
 * status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ] (RFC 9112 4);
 * a missing SP after the code is tolerated, as most clients do.
 */
static enum sy_parse_status
parse_status_line(const struct parse *ps, size_t cr)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *p = ps->p;

    if (cr < 8)
        return fail(ps, 502, "invalid status line");
    enum sy_parse_status st = parse_version(ps, 0, 8, 502);
    if (st != SY_PARSE_DONE)
        return st;
    if (cr < 12 || p[8] != ' ' || !is_digit(p[9]) || !is_digit(p[10]) ||
        !is_digit(p[11]))
        return fail(ps, 502, "invalid status line");
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (h->status < 100 || h->status > 599)
        return fail(ps, 502, "invalid status code");
    if (cr == 12) {
        h->reason = span(12, 0);
        return SY_PARSE_DONE;
    }
    if (p[12] != ' ')
        return fail(ps, 502, "invalid status line");
    for (size_t i = 13; i < cr; i++) {
        if (!(cls[p[i]] & C_VALUE))
            return fail(ps, 502, p[i] == '\r' ? "bare CR" : "invalid reason phrase");
    }
    h->reason = span(13, cr - 13);
    return SY_PARSE_DONE;
}

/* RFC 9112 6.3 items 1-2: responses that never have content. */
static bool
bodiless(int status, enum sy_method request_method)
{
    return request_method == SY_METHOD_HEAD || status < 200 || status == 204 ||
           status == 304 || (request_method == SY_METHOD_CONNECT && status < 300);
}

static enum sy_parse_status
parse_response_head(const struct parse *ps, enum sy_method request_method)
{
    struct sy_http_head *h = ps->h;
    const uint8_t *lf = memchr(ps->p, '\n', h->head_len);
    size_t line_end = (size_t)(lf - ps->p) + 1;
    struct fields f;
    enum sy_body_kind kind;
    enum sy_parse_status st;

    if ((st = parse_status_line(ps, line_end - 2)) != SY_PARSE_DONE ||
        (st = parse_fields(ps, line_end, &f)) != SY_PARSE_DONE ||
        (st = framing(ps, &f, &kind)) != SY_PARSE_DONE)
        return st;
    if (bodiless(h->status, request_method)) {
        kind = SY_BODY_NONE;
        h->content_length = 0;
    }
    h->body = kind;
    connection_flags(h, &f);
    if (kind == SY_BODY_UNTIL_CLOSE)
        h->keep_alive = false;
    h->upgrade = h->status == 101 && f.conn_upgrade && f.has_upgrade;
    if (f.conn_other)
        mark_connection_named(ps);
    return SY_PARSE_DONE;
}

enum sy_parse_status
sy_http_parse_response(struct sy_http_head *head, const char *buf, size_t len,
                       const struct sy_parse_limits *lim, enum sy_method request_method)
{
    const struct parse ps = { head, (const uint8_t *)buf, lim, true };
    size_t n = len < lim->max_head_bytes ? len : lim->max_head_bytes;

    if (head->error_status)
        return SY_PARSE_ERROR;
    if (head->head_len)
        return SY_PARSE_DONE;
    if (head->scan_off > n)
        return SY_PARSE_AGAIN;
    enum sy_parse_status st = scan_end(&ps, n);
    if (st == SY_PARSE_AGAIN && n == lim->max_head_bytes)
        return fail(&ps, 502, "response head too large");
    if (st != SY_PARSE_DONE)
        return st;
    return parse_response_head(&ps, request_method);
}

/* ---- heads: helpers ------------------------------------------------------- */

void
sy_http_head_reset(struct sy_http_head *head)
{
    struct sy_header *headers = head->headers;

    memset(head, 0, sizeof(*head));
    head->headers = headers;
}

int
sy_http_find(const struct sy_http_head *head, enum sy_header_id id)
{
    for (uint32_t i = 0; i < head->nheaders; i++) {
        if (head->headers[i].id == id)
            return (int)i;
    }
    return -1;
}

const char *
sy_method_name(enum sy_method m)
{
    if ((unsigned)m > SY_METHOD_PATCH)
        return "OTHER";
    return method_names[m];
}

/* ---- chunked bodies (RFC 9112 7.1) ---------------------------------------- */

#define MAX_SIZE_LINE 4096      /* chunk-size and extensions, CRLF included */
#define MAX_TRAILER 16384       /* the whole trailer section, by default */
#define MAX_TRAILER_FIELDS 100  /* its field lines, by default (limits.max_headers') */

/*
 * One state per position in the grammar, so that input split anywhere
 * resumes exactly: nothing is buffered between calls.
 */
enum chunk_state {
    CH_SIZE,                    /* chunk-size digits */
    CH_EXT_WS,                  /* BWS after the size or a value: ';' must follow */
    CH_EXT_NAME_START,          /* after ';' */
    CH_EXT_NAME,
    CH_EXT_NAME_WS,             /* BWS after a name: '=' or ';' must follow */
    CH_EXT_VALUE_START,         /* after '=' */
    CH_EXT_VALUE,               /* token value */
    CH_EXT_QUOTED,
    CH_EXT_QUOTED_PAIR,
    CH_EXT_END,                 /* after a closing quote */
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START,           /* start of a field line or of the final CRLF */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_LAST_LF,
    CH_DONE,
    CH_ERROR,
};

static void
chunk_fail(struct sy_chunked *c, uint8_t ch, const char *reason)
{
    c->state = CH_ERROR;
    c->error_reason = ch == '\n' ? "bare LF line ending" : reason;
}

/* After a size, an extension name or value: ';', BWS or the line's CR. */
static void
after_item(struct sy_chunked *c, uint8_t ch, const char *reason)
{
    if (ch == ';')
        c->state = CH_EXT_NAME_START;
    else if (IS_WS(ch))
        c->state = CH_EXT_WS;
    else if (ch == '\r')
        c->state = CH_SIZE_LF;
    else
        chunk_fail(c, ch, reason);
}

static void
size_digit(struct sy_chunked *c, uint8_t ch)
{
    if (c->chunk_left >> 59) {
        chunk_fail(c, ch, "chunk size overflow");
        return;
    }
    unsigned d = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
    c->chunk_left = c->chunk_left << 4 | d;
}

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
static void
ext_step(struct sy_chunked *c, uint8_t ch)
{
    static const char bad[] = "invalid chunk extension";

    switch (c->state) {
    case CH_EXT_WS:
        if (ch == ';')
            c->state = CH_EXT_NAME_START;
        else if (!IS_WS(ch))
            chunk_fail(c, ch, bad);
        break;
    case CH_EXT_NAME_START:
        if (cls[ch] & C_TCHAR)
            c->state = CH_EXT_NAME;
        else if (!IS_WS(ch))
            chunk_fail(c, ch, bad);
        break;
    case CH_EXT_NAME:
        if (ch == '=')
            c->state = CH_EXT_VALUE_START;
        else if (IS_WS(ch))
            c->state = CH_EXT_NAME_WS;
        else if (!(cls[ch] & C_TCHAR))
            after_item(c, ch, bad);
        break;
    case CH_EXT_NAME_WS:
        if (ch == '=')
            c->state = CH_EXT_VALUE_START;
        else if (ch == ';')
            c->state = CH_EXT_NAME_START;
        else if (!IS_WS(ch))
            chunk_fail(c, ch, bad);
        break;
    case CH_EXT_VALUE_START:
        if (cls[ch] & C_TCHAR)
            c->state = CH_EXT_VALUE;
        else if (ch == '"')
            c->state = CH_EXT_QUOTED;
        else if (!IS_WS(ch))
            chunk_fail(c, ch, bad);
        break;
    case CH_EXT_VALUE:
        if (!(cls[ch] & C_TCHAR))
            after_item(c, ch, bad);
        break;
    case CH_EXT_QUOTED:
        if (ch == '"')
            c->state = CH_EXT_END;
        else if (ch == '\\')
            c->state = CH_EXT_QUOTED_PAIR;
        else if (!(cls[ch] & C_QDTEXT))
            chunk_fail(c, ch, bad);
        break;
    case CH_EXT_QUOTED_PAIR:
        if (cls[ch] & C_VALUE)
            c->state = CH_EXT_QUOTED;
        else
            chunk_fail(c, ch, bad);
        break;
    default:                    /* CH_EXT_END */
        after_item(c, ch, bad);
        break;
    }
}

/* One byte of a chunk-size line: size, extensions, CRLF. */
static void
size_line_step(struct sy_chunked *c, uint8_t ch)
{
    if (++c->line_len > MAX_SIZE_LINE) {
        chunk_fail(c, ch, "chunk size line too long");
        return;
    }
    if (c->state == CH_SIZE) {
        if (cls[ch] & C_HEX)
            size_digit(c, ch);
        else if (c->line_len == 1 && (ch == ';' || ch == '\r' || IS_WS(ch)))
            chunk_fail(c, ch, "empty chunk size");
        else if (c->line_len == 1)
            chunk_fail(c, ch, "invalid chunk size");
        else
            after_item(c, ch, "invalid chunk size");
    } else if (c->state == CH_SIZE_LF) {
        if (ch != '\n') {
            chunk_fail(c, ch, "bare CR");
            return;
        }
        c->line_len = 0;
        c->state = c->chunk_left ? CH_DATA : CH_TRAILER_START;
    } else {
        ext_step(c, ch);
    }
}

/*
 * Trailer fields follow the header rules (RFC 9112 7.1.2) within the
 * section's limits. Returns the length of the field line that this byte
 * ended, else 0.
 */
static uint32_t
trailer_step(struct sy_chunked *c, uint8_t ch)
{
    /* a limit is named as such whatever the byte (0: never the bare-LF reason) */
    if (++c->trailer_bytes > c->max_trailer_bytes) {
        chunk_fail(c, 0, "trailer section too large");
        return 0;
    }
    if (c->state != CH_LAST_LF && (c->state != CH_TRAILER_START || ch != '\r') &&
        ++c->field_len > SY_CHUNK_MAX_TRAILER_LINE) {
        chunk_fail(c, 0, "trailer field too long");
        return 0;
    }
    switch (c->state) {
    case CH_TRAILER_START:
        if (ch == '\r') {
            c->state = CH_LAST_LF;
        } else if (cls[ch] & C_TCHAR) {
            if (++c->trailer_fields > c->max_trailer_fields) {
                chunk_fail(c, 0, "too many trailer fields");
                break;
            }
            c->state = CH_TRAILER_NAME;
            c->field_name_len = 1;
        } else {
            chunk_fail(c, ch, IS_WS(ch) ? "obsolete line folding" : "invalid header name");
        }
        break;
    case CH_TRAILER_NAME:
        if (ch == ':')
            c->state = CH_TRAILER_VALUE;
        else if (cls[ch] & C_TCHAR)
            c->field_name_len++;
        else
            chunk_fail(c, ch, IS_WS(ch) ? "whitespace before colon" : "invalid header name");
        break;
    case CH_TRAILER_VALUE:
        if (ch == '\r')
            c->state = CH_TRAILER_LF;
        else if (!(cls[ch] & C_VALUE))
            chunk_fail(c, ch, "control character in header value");
        break;
    case CH_TRAILER_LF:
        if (ch == '\n') {
            uint32_t line = c->field_len;
            c->state = CH_TRAILER_START;
            c->field_len = 0;
            return line;
        }
        chunk_fail(c, ch, "bare CR");
        break;
    default:                    /* CH_LAST_LF */
        if (ch == '\n')
            c->state = CH_DONE;
        else
            chunk_fail(c, ch, "bare CR");
        break;
    }
    return 0;
}

/* The CRLF that must close every chunk's data. */
static void
data_end_step(struct sy_chunked *c, uint8_t ch)
{
    if (c->state == CH_DATA_CR && ch == '\r') {
        c->state = CH_DATA_LF;
    } else if (c->state == CH_DATA_LF && ch == '\n') {
        c->state = CH_SIZE;
        c->chunk_left = 0;
    } else {
        c->state = CH_ERROR;
        c->error_reason = "missing CRLF after chunk data";
    }
}

void
sy_chunked_init(struct sy_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
    c->max_trailer_bytes = MAX_TRAILER;
    c->max_trailer_fields = MAX_TRAILER_FIELDS;
}

enum sy_chunk_status
sy_chunked_decode(struct sy_chunked *c, const char *buf, size_t len,
                  size_t *consumed, size_t *data_off, size_t *data_len)
{
    const uint8_t *p = (const uint8_t *)buf;
    size_t i = 0;

    *data_off = *data_len = 0;
    while (i < len && c->state != CH_DONE && c->state != CH_ERROR) {
        if (c->state == CH_DATA) {
            size_t take = len - i < c->chunk_left ? len - i : (size_t)c->chunk_left;
            *data_off = i;
            *data_len = take;
            c->chunk_left -= take;
            c->total += take;
            if (c->chunk_left == 0)
                c->state = CH_DATA_CR;
            *consumed = i + take;
            return SY_CHUNK_DATA;
        }
        uint8_t ch = p[i++];
        if (c->state <= CH_SIZE_LF) {
            size_line_step(c, ch);
        } else if (c->state <= CH_DATA_LF) {
            data_end_step(c, ch);
        } else {
            uint32_t line = trailer_step(c, ch);
            if (line && c->report_trailers) {
                *data_len = line;
                *consumed = i;
                return SY_CHUNK_TRAILER;
            }
        }
    }
    *consumed = i;
    if (c->state == CH_DONE)
        return SY_CHUNK_DONE;
    return c->state == CH_ERROR ? SY_CHUNK_ERROR : SY_CHUNK_AGAIN;
}

/* Compared after header_id(): every field the gateway acts on is refused too. */
static const char *const trailer_refused[] = {
    "age", "authorization", "cache-control", "content-encoding", "content-location",
    "content-range", "content-type", "date", "expires", "forwarded", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "realm",
    "retry-after", "set-cookie", "vary", "www-authenticate",
};

bool
sy_trailer_allowed(const char *name, size_t len)
{
    const uint8_t *s = (const uint8_t *)name;

    if (len == 0 || header_id(s, len) != SY_HDR_OTHER)
        return false;
    for (size_t i = 0; i < sizeof(trailer_refused) / sizeof(trailer_refused[0]); i++)
        if (strlen(trailer_refused[i]) == len && eq_lower(s, trailer_refused[i], len))
            return false;
    return true;
}
