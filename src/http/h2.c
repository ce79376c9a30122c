/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * h2.c: HTTP/2 toward clients (RFC 9113) with nghttp2, on TLS connections
 * that chose "h2" by ALPN. nghttp2 does the framing, HPACK, flow control
 * and most of the validation; this file turns each stream into a request
 * and is its downstream (struct sy_downstream_ops). A stream's head is
 * written as HTTP/1.1 text into the request's own buffer and parsed by the
 * same strict parser, so every later phase is the one HTTP/1.1 takes.
 * The one rule: nghttp2 is never re-entered from its own callbacks. The
 * downstream calls only queue frames and ask for a flush; the connection's
 * events (read, write, timers) run the session and may close it.
 *
 * Ownership: the connection (struct sy_h2_conn, c->h2) owns its streams;
 * a stream owns its request, which is logged when its response is done or
 * given up, and freed when nghttp2 closes the stream (its response bytes
 * may still be framed from the request's memory until then).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h2.h"

#if SY_HAVE_NGHTTP2

#include <nghttp2/nghttp2.h>

#include "core/log.h"
#include "http.h"

/*
 * Request body bytes in flight per stream: the protocol's default window,
 * which a client may use before it has our SETTINGS. A stream's staging
 * buffer (allocated while a body arrives) holds that much, because the
 * window is given back only as the proxy moves the bytes on: a slow app
 * stalls its own stream, not the connection (whose window is larger).
 */
#define H2_STREAM_WINDOW 65535
#define H2_CONN_WINDOW (1 << 20)
/* A DATA frame and its header fit an empty output buffer (every buffer holds 16 KiB). */
#define H2_DATA_MAX (16384 - 64)
/* Reads per readable event before other connections get their turn. */
#define H2_READ_BURST 8
/* Between the shutdown notice and the final GOAWAY (RFC 9113 6.8: a round trip or more). */
#define H2_GOAWAY_GRACE_MS 1000
/*
 * Floods (CVE-2023-44487 rapid reset, CVE-2024-27316 CONTINUATION, SETTINGS
 * and PING floods, empty frames) are answered with GOAWAY ENHANCE_YOUR_CALM
 * and a bad_request security-log line. Resets: a bucket of twice the stream
 * limit, refilled H2_RESETS_PER_S a second; control and empty frames: a
 * bucket of H2_CONTROL_BURST refilled H2_CONTROL_PER_S a second.
 */
#define H2_RESETS_PER_S 50
#define H2_CONTROL_BURST 500
#define H2_CONTROL_PER_S 100
#define H2_MAX_CONTINUATIONS 4

/* A token bucket, in thousandths of a token. */
struct h2_budget {
    int64_t tokens_milli;
    int64_t at_ms;
};

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

    /* the request body */
    struct sy_buf *body;                /* DATA received, not yet in req->in (malloc'd) */
    bool in_ended;                      /* END_STREAM received */
    bool chunked;                       /* goes upstream chunked: no content-length */
    bool last_chunk;                    /* the last chunk went into req->in */
    bool discard;                       /* the body is not wanted any more */
    bool want_read, want_write;         /* the proxy waits on this stream */

    /* the response */
    bool head_sent;
    bool out_eof;                       /* the whole response was handed over */
    bool deferred;                      /* nghttp2 waits for data (resume_data) */
    bool end_sent;                      /* END_STREAM went out */
    struct sy_buf *out;                 /* body bytes not yet framed */
};

struct sy_h2_conn {
    struct sy_client *c;
    nghttp2_session *session;
    struct event wev;                   /* socket writable; flush requests (event_active) */
    struct event idle;                  /* no stream open: keep-alive (or first request) timeout */
    struct event grace;                 /* drain: the final GOAWAY is due */
    struct sy_buf *out;                 /* frames not yet written */
    struct sy_h2_stream streams;        /* list head (sentinel) */
    unsigned nstreams;
    uint32_t continuations;             /* in the current header block */
    struct h2_budget resets, control;
    bool flush_queued;
    bool write_blocked;                 /* waiting for the socket (wev armed) */
    bool draining;
    bool closing;                       /* GOAWAY on an error: read no more */
    bool dead;                          /* being freed: callbacks do nothing */
};

static void schedule_flush(struct sy_h2_conn *h2);
static void stream_on_event(evutil_socket_t fd, short what, void *arg);

static const struct sy_downstream_ops h2_downstream;

/* ---- small helpers ------------------------------------------------------ */

static struct sy_buf_pool *bufs_of(const struct sy_h2_conn *h2)
{
    return &h2->c->hw->w->bufs;
}

static int64_t now_ms(const struct sy_h2_conn *h2)
{
    return sy_worker_now_ms(h2->c->hw->w);
}

/* Takes a token from a bucket of burst tokens gaining per_s a second; false when empty. */
static bool budget_take(struct h2_budget *b, int64_t now, int64_t burst, int64_t per_s)
{
    if (b->at_ms == 0) {
        b->tokens_milli = burst * 1000;
        b->at_ms = now;
    }
    if (now > b->at_ms) {
        b->tokens_milli += (now - b->at_ms) * per_s;
        b->at_ms = now;
    }
    if (b->tokens_milli > burst * 1000)
        b->tokens_milli = burst * 1000;
    if (b->tokens_milli < 1000)
        return false;
    b->tokens_milli -= 1000;
    return true;
}

/* Moves the unsent bytes to the front when fewer than want bytes of room are left. */
static void make_room(struct sy_buf *b, size_t want)
{
    if (b->start == 0 || sy_buf_room(b) >= want)
        return;
    memmove(b->data, b->data + b->start, b->end - b->start);
    b->end -= b->start;
    b->start = 0;
}

static void security_event(const struct sy_h2_conn *h2, const char *reason)
{
    const struct sy_log_field proto = {.name = "proto", .str = "h2"};
    char ip[48];

    sy_addr_ip_text(&h2->c->peer.sa, ip, sizeof(ip));
    sy_log_security("bad_request", ip, "", reason, &proto, 1);
}

/* A flood: GOAWAY ENHANCE_YOUR_CALM, nothing more is read from the client. */
static void flood(struct sy_h2_conn *h2, const char *reason)
{
    if (h2->closing)
        return;
    h2->closing = true;
    security_event(h2, reason);
    nghttp2_session_terminate_session(h2->session, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* A stream error (RFC 9113 5.4.2): RST_STREAM with code; nothing of it goes upstream. */
static void stream_error(struct sy_h2_stream *st, uint32_t code, const char *reason)
{
    if (st->reset)
        return;
    st->reset = true;
    st->reset_reason = reason;
    st->discard = true;
    if (st->req && st->req->state == SY_REQ_READING_HEAD)
        event_del(&st->req->client_wev);        /* no head timeout for a refused head */
    nghttp2_submit_rst_stream(st->h2->session, NGHTTP2_FLAG_NONE, st->id, code);
    schedule_flush(st->h2);
}

static struct sy_h2_stream *stream_of(nghttp2_session *session, int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

/* ---- streams ------------------------------------------------------------ */

static void drop_head_parts(struct sy_h2_stream *st)
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

/* The request body that came and is not wanted: its window goes back. */
static void discard_body(struct sy_h2_stream *st)
{
    st->discard = true;
    if (st->body) {
        if (!st->h2->dead)
            nghttp2_session_consume(st->h2->session, st->id, sy_buf_len(st->body));
        free(st->body);
        st->body = NULL;
    }
}

/* A staging buffer for a stream's window of request body (not from the pool: larger). */
static struct sy_buf *staging_new(void)
{
    struct sy_buf *b = malloc(sizeof(*b) + H2_STREAM_WINDOW);

    if (b)
        *b = (struct sy_buf){.cap = H2_STREAM_WINDOW};
    return b;
}

static struct sy_h2_stream *stream_new(struct sy_h2_conn *h2, int32_t id)
{
    struct sy_client *c = h2->c;
    struct sy_h2_stream *st = calloc(1, sizeof(*st));
    struct sy_request *req;

    if (!st)
        return NULL;
    if (!(req = sy_request_new(c, &h2_downstream))) {
        free(st);
        return NULL;
    }
    if (!(req->in = sy_buf_get(bufs_of(h2)))) {
        sy_request_free(req);
        free(st);
        return NULL;
    }
    st->id = id;
    st->h2 = h2;
    st->req = req;
    req->stream = st;
    req->client_keepalive = true;
    event_assign(&req->client_wev, c->hw->w->base, -1, 0, stream_on_event, req);
    /* the whole head is due within the header timeout, as on HTTP/1.1 */
    sy_event_arm(&req->client_wev, req->conf->limits.client_header_timeout_ms);
    st->next = h2->streams.next;
    st->prev = &h2->streams;
    st->next->prev = st;
    h2->streams.next = st;
    if (h2->nstreams++ == 0)
        event_del(&h2->idle);
    return st;
}

/* The stream is gone: its request ends (as aborted unless its response was done). */
static void stream_free(struct sy_h2_stream *st)
{
    struct sy_h2_conn *h2 = st->h2;
    struct sy_request *req = st->req;

    if (req) {
        sy_request_log_end(req, true);     /* nothing when it was already logged */
        sy_buf_put(bufs_of(h2), req->in);
        req->in = NULL;
        sy_request_free(req);
        st->req = NULL;
    }
    discard_body(st);
    drop_head_parts(st);
    sy_buf_put(bufs_of(h2), st->out);
    st->prev->next = st->next;
    st->next->prev = st->prev;
    free(st);
    if (--h2->nstreams == 0 && !h2->dead)
        sy_event_arm(&h2->idle, h2->c->hw->w->conf->limits.keepalive_timeout_ms);
}

/* ---- the request head: HTTP/2 fields as HTTP/1.1 text --------------------- */

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

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value, uint8_t flags, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st;
    (void)flags;

    if (h2->dead || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;               /* trailers are not passed on (yet) */
    if (!(st = stream_of(session, frame->hd.stream_id)) || !st->req || st->reset)
        return 0;
    nghttp2_vec n = nghttp2_rcbuf_get_buf(name), v = nghttp2_rcbuf_get_buf(value);
    if (n.len > 0 && n.base[0] == ':') {
        int i = pseudo_index(n);
        if (i < 0 || st->line_written || st->pseudo[i]) {
            stream_error(st, NGHTTP2_PROTOCOL_ERROR, "invalid HTTP/2 pseudo-header field");
            return 0;
        }
        nghttp2_rcbuf_incref(value);
        st->pseudo[i] = value;
        return 0;
    }
    if (!st->line_written)
        write_request_line(st);
    if (connection_specific(n)) {
        stream_error(st, NGHTTP2_PROTOCOL_ERROR, "connection-specific field in an HTTP/2 request");
        return 0;
    }
    if (name_is(n, "host") && st->pseudo[PS_AUTHORITY]) {
        nghttp2_vec a = nghttp2_rcbuf_get_buf(st->pseudo[PS_AUTHORITY]);
        if (a.len != v.len || strncasecmp((const char *)a.base, (const char *)v.base, v.len))
            stream_error(st, NGHTTP2_PROTOCOL_ERROR, "HTTP/2 :authority and Host disagree");
        return 0;               /* the same: Host is written already */
    }
    if (name_is(n, "cookie")) {
        keep_cookie(st, value);
        return 0;
    }
    if (name_is(n, "content-length"))
        st->has_length = true;
    head_put(st, n.base, n.len);
    HEAD_LIT(st, ": ");
    head_put(st, v.base, v.len);
    HEAD_LIT(st, "\r\n");
    return 0;
}

/* Header fields nghttp2 would drop (invalid characters): the request is malformed. */
static int on_invalid_header(nghttp2_session *session, const nghttp2_frame *frame,
                             nghttp2_rcbuf *name, nghttp2_rcbuf *value, uint8_t flags, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st = stream_of(session, frame->hd.stream_id);
    (void)name, (void)value, (void)flags;

    if (!h2->dead && st)
        stream_error(st, NGHTTP2_PROTOCOL_ERROR, "invalid HTTP/2 header field");
    return 0;
}

/* The head ends: cookies, framing, the empty line; then it is parsed and dispatched. */
static void head_complete(struct sy_h2_stream *st, bool end_stream)
{
    struct sy_request *req = st->req;
    const struct sy_limits *lim = &req->conf->limits;
    struct sy_parse_limits pl = {
        .max_head_bytes = (uint32_t)lim->max_header_bytes,
        .max_uri_bytes = (uint32_t)lim->max_uri_bytes,
        .max_headers = req->headers_cap,
    };

    event_del(&req->client_wev);            /* the header timeout */
    if (!st->line_written)
        write_request_line(st);
    if (st->ncookies) {
        HEAD_LIT(st, "cookie: ");
        for (uint32_t i = 0; i < st->ncookies; i++) {
            if (i)
                HEAD_LIT(st, "; ");
            head_put_rcbuf(st, st->cookies[i]);
        }
        HEAD_LIT(st, "\r\n");
    }
    st->in_ended = end_stream;
    if (!end_stream && !st->has_length) {
        /* a body of unknown length goes upstream chunked; read_body frames it */
        st->chunked = true;
        HEAD_LIT(st, "transfer-encoding: chunked\r\n");
    }
    drop_head_parts(st);
    if (!st->fail_status) {
        req->in->data[req->in->end++] = '\r';   /* head_put kept room for these two */
        req->in->data[req->in->end++] = '\n';
    }
    if (st->fail_status) {
        sy_request_reject(req, st->fail_status, st->fail_reason);
        return;
    }
    enum sy_parse_status ps = sy_http_parse_request(&req->head, req->in->data, req->in->end, &pl);
    if (ps != SY_PARSE_DONE) {
        sy_request_reject(req, ps == SY_PARSE_ERROR ? req->head.error_status : 400,
                          ps == SY_PARSE_ERROR ? req->head.error_reason : "incomplete head");
        return;
    }
    sy_proxy_start(req);
}

/* ---- nghttp2 callbacks: frames in ---------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct sy_h2_conn *h2 = user;

    if (h2->dead || h2->closing || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct sy_h2_stream *st = stream_new(h2, frame->hd.stream_id);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  /* RST_STREAM INTERNAL_ERROR */
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
    return 0;
}

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    struct sy_h2_conn *h2 = user;
    (void)session;

    if (hd->type == NGHTTP2_HEADERS)
        h2->continuations = 0;
    else if (hd->type == NGHTTP2_CONTINUATION && ++h2->continuations > H2_MAX_CONTINUATIONS)
        flood(h2, "HTTP/2 CONTINUATION flood");
    return 0;
}

/* Control and empty frames spend the connection's budget (floods). */
static void count_control(struct sy_h2_conn *h2, const nghttp2_frame *frame)
{
    bool counted = false;

    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        counted = !(frame->hd.flags & NGHTTP2_FLAG_ACK);
        break;
    case NGHTTP2_PRIORITY:
        counted = true;
        break;
    case NGHTTP2_DATA:
        counted = frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
        break;
    case NGHTTP2_RST_STREAM: {
        int64_t burst = 2 * h2->c->hw->w->conf->limits.http2_max_concurrent_streams;
        if (!budget_take(&h2->resets, now_ms(h2), burst, H2_RESETS_PER_S))
            flood(h2, "HTTP/2 rapid reset");
        return;
    }
    default:
        return;
    }
    if (counted && !budget_take(&h2->control, now_ms(h2), H2_CONTROL_BURST, H2_CONTROL_PER_S))
        flood(h2, "HTTP/2 control frame flood");
}

static void wake(struct sy_h2_stream *st, short what)
{
    if (st->req)
        event_active(&st->req->client_wev, what, 1);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st;

    if (h2->dead)
        return 0;
    count_control(h2, frame);
    if (h2->closing || frame->hd.stream_id == 0 ||
        !(st = stream_of(session, frame->hd.stream_id)) || !st->req)
        return 0;
    bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            if (!st->reset)
                head_complete(st, end_stream);
            return 0;
        }
        break;                  /* trailers: they may end the body */
    case NGHTTP2_DATA:
        break;
    default:
        return 0;
    }
    if (end_stream) {
        st->in_ended = true;
        if (st->want_read)
            wake(st, EV_READ);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st = h2->dead ? NULL : stream_of(session, id);
    (void)flags;

    if (h2->dead)
        return 0;
    if (!st || !st->req || st->discard) {
        nghttp2_session_consume(session, id, len);
        return 0;
    }
    if (!st->body && !(st->body = staging_new())) {
        nghttp2_session_consume(session, id, len);
        stream_error(st, NGHTTP2_INTERNAL_ERROR, "out of buffers");
        return 0;
    }
    make_room(st->body, len);
    if (sy_buf_room(st->body) < len) {
        /* more than the window allows: nghttp2 checks it, this is a second lock */
        nghttp2_session_consume(session, id, len);
        stream_error(st, NGHTTP2_FLOW_CONTROL_ERROR, "HTTP/2 flow control violated");
        return 0;
    }
    memcpy(st->body->data + st->body->end, data, len);
    st->body->end += (uint32_t)len;
    if (st->want_read)
        wake(st, EV_READ);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st;
    (void)error_code;

    if (h2->dead || !(st = stream_of(session, id)))
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    stream_free(st);
    return 0;
}

/* ---- nghttp2 callbacks: frames out --------------------------------------- */

static struct sy_buf *out_buf(struct sy_h2_conn *h2)
{
    if (!h2->out)
        h2->out = sy_buf_get(bufs_of(h2));
    return h2->out;
}

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_buf *out = out_buf(h2);
    (void)session, (void)flags;

    if (!out)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    make_room(out, len);
    size_t n = sy_buf_room(out) < len ? sy_buf_room(out) : len;
    if (n == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    memcpy(out->data + out->end, data, n);
    out->end += (uint32_t)n;
    return (ssize_t)n;
}

/* Bytes of the response body ready to frame: a local body queued in req->out, then st->out. */
static size_t body_ready(const struct sy_h2_stream *st)
{
    const struct sy_iovq *q = &st->req->out;
    size_t n = st->out ? sy_buf_len(st->out) : 0;

    for (int i = q->pos; i < q->n; i++)
        n += q->iov[i].iov_len;
    return n;
}

/* Copies n ready body bytes to dst (n <= body_ready). */
static void body_take(struct sy_h2_stream *st, uint8_t *dst, size_t n)
{
    struct sy_iovq *q = &st->req->out;

    while (n && q->pos < q->n) {
        struct iovec *v = &q->iov[q->pos];
        size_t k = v->iov_len < n ? v->iov_len : n;
        memcpy(dst, v->iov_base, k);
        dst += k;
        n -= k;
        v->iov_base = (char *)v->iov_base + k;
        if ((v->iov_len -= k) == 0)
            q->pos++;
    }
    if (n) {
        memcpy(dst, st->out->data + st->out->start, n);
        st->out->start += (uint32_t)n;
        if (st->out->start == st->out->end)
            st->out->start = st->out->end = 0;
    }
}

/* nghttp2 asks for up to length bytes of a DATA frame; they are copied in on_send_data. */
static ssize_t on_data_read(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *user)
{
    struct sy_h2_stream *st = source->ptr;
    (void)session, (void)id, (void)buf, (void)user;

    if (!st->req)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t ready = body_ready(st);
    if (length > H2_DATA_MAX)
        length = H2_DATA_MAX;
    if (ready == 0 && !st->out_eof) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = ready < length ? ready : length;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (st->out_eof && n == ready)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st = source->ptr;
    struct sy_buf *out = out_buf(h2);
    (void)session, (void)frame;

    if (!out)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    make_room(out, 9 + length);
    if (sy_buf_room(out) < 9 + length)
        return NGHTTP2_ERR_WOULDBLOCK;
    memcpy(out->data + out->end, framehd, 9);
    body_take(st, (uint8_t *)out->data + out->end + 9, length);
    out->end += (uint32_t)(9 + length);
    /* the proxy refills once half the stream's buffer is free */
    if (st->want_write && (!st->out || sy_buf_len(st->out) <= st->out->cap / 2))
        wake(st, EV_WRITE);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st;

    if (h2->dead || frame->hd.stream_id == 0 || !(st = stream_of(session, frame->hd.stream_id)))
        return 0;
    if (frame->hd.type == NGHTTP2_RST_STREAM &&
        frame->rst_stream.error_code == NGHTTP2_PROTOCOL_ERROR) {
        /* ours or nghttp2's (a malformed request): nothing of it went upstream */
        security_event(h2, st->reset_reason ? st->reset_reason : "malformed HTTP/2 request");
        return 0;
    }
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        st->end_sent = true;
        /* RFC 9113 8.1: a complete response before the whole request; the rest is not wanted */
        if (!st->in_ended && !st->reset) {
            st->reset = true;
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        }
    }
    return 0;
}

/* ---- the connection's events -------------------------------------------- */

/* Frames out: nghttp2 fills h2->out, which goes to the socket. -1: the connection is dead. */
static int flush(struct sy_h2_conn *h2)
{
    struct sy_client *c = h2->c;

    for (;;) {
        if (nghttp2_session_send(h2->session) != 0)
            return -1;
        struct sy_buf *out = h2->out;
        if (!out || sy_buf_len(out) == 0) {
            sy_buf_put(bufs_of(h2), out);       /* an idle connection holds no buffer */
            h2->out = NULL;
            return 0;
        }
        ssize_t n = sy_io_write(&c->io, out->data + out->start, sy_buf_len(out));
        if (n > 0) {
            out->start += (uint32_t)n;
            if (out->start == out->end)
                out->start = out->end = 0;
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            h2->write_blocked = true;
            sy_io_wait(&c->io, &h2->wev, EV_WRITE, c->hw->w->conf->limits.client_body_timeout_ms);
            return 0;
        }
        return -1;
    }
}

static void schedule_flush(struct sy_h2_conn *h2)
{
    if (h2->flush_queued || h2->write_blocked || h2->dead)
        return;
    h2->flush_queued = true;
    event_active(&h2->wev, EV_WRITE, 1);
}

/*
 * The end of every connection event: frames out, then close when the
 * session is over (GOAWAY both ways or sent, no stream left). The last
 * frames are not lost to a reset for input left unread: the socket lingers.
 */
static void after_event(struct sy_h2_conn *h2)
{
    struct sy_client *c = h2->c;

    if (h2->flush_queued && !h2->write_blocked) {
        event_del(&h2->wev);            /* this flush does what was asked */
        h2->flush_queued = false;
    }
    if (!h2->write_blocked && flush(h2) < 0) {
        sy_client_close(c);
        return;
    }
    if (nghttp2_session_want_read(h2->session) || nghttp2_session_want_write(h2->session) ||
        h2->write_blocked)
        return;
    sy_h2_free(c);
    sy_client_linger(c);
}

static void h2_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct sy_h2_conn *h2 = arg;
    (void)fd;

    h2->flush_queued = false;
    if ((what & EV_TIMEOUT) && h2->write_blocked) {
        sy_client_close(h2->c);         /* the client reads nothing any more */
        return;
    }
    h2->write_blocked = false;
    after_event(h2);
}

static void h2_on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct sy_h2_conn *h2 = arg;
    (void)fd, (void)what;

    if (h2->nstreams == 0)
        nghttp2_session_terminate_session(h2->session, NGHTTP2_NO_ERROR);
    after_event(h2);
}

static void h2_on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct sy_h2_conn *h2 = arg;
    (void)fd, (void)what;

    nghttp2_submit_goaway(h2->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h2->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
    after_event(h2);
}

void sy_h2_on_read(struct sy_client *c, short what)
{
    struct sy_h2_conn *h2 = c->h2;
    uint8_t buf[16384];
    (void)what;

    for (int i = 0; i < H2_READ_BURST && !h2->closing; i++) {
        ssize_t n = sy_io_read(&c->io, buf, sizeof(buf));
        if (n > 0) {
            ssize_t rv = nghttp2_session_mem_recv(h2->session, buf, (size_t)n);
            if (rv < 0) {
                /* a fatal protocol error (bad preface, a flood nghttp2 caught itself) */
                char reason[96];
                snprintf(reason, sizeof(reason), "HTTP/2: %s", nghttp2_strerror((int)rv));
                h2->closing = true;
                security_event(h2, reason);
                nghttp2_session_terminate_session(h2->session,
                                                  rv == NGHTTP2_ERR_FLOODED
                                                  ? NGHTTP2_ENHANCE_YOUR_CALM
                                                  : NGHTTP2_PROTOCOL_ERROR);
            }
            continue;
        }
        if (n < 0 && errno == EAGAIN)
            break;
        sy_client_close(c);     /* the client closed or the connection broke */
        return;
    }
    if (h2->closing)
        event_del(&c->rev);     /* GOAWAY is on its way: nothing more is read */
    else
        sy_io_wait(&c->io, &c->rev, EV_READ, 0);
    after_event(h2);
}

/* ---- the downstream calls ------------------------------------------------ */

/*
 * The response head from req->out (HTTP/1.1 text, as the proxy and the
 * local responses build it) as HTTP/2 fields: names lower case (nghttp2
 * lowers them as it copies), connection-specific ones dropped. For a local
 * response the head is the first iovec and the rest is its body; a
 * proxied one has its body sent with send_body.
 */
static int h2_send_head(struct sy_request *req)
{
    struct sy_h2_stream *st = req->stream;
    struct sy_iovq *q = &req->out;
    bool local = req->state == SY_REQ_LOCAL_RESPONSE;
    int end = local ? q->pos + 1 : q->n;
    size_t len = 0, lines = 0;

    /* a common head fits these; a larger one goes to the heap */
    char text_local[4096];
    nghttp2_nv nva_local[64];

    if (st->head_sent || st->reset)
        return st->head_sent ? 1 : -1;
    for (int i = q->pos; i < end && i < q->n; i++)
        len += q->iov[i].iov_len;
    char *text = len < sizeof(text_local) ? text_local : malloc(len);
    if (!text)
        return -1;
    size_t at = 0;
    for (int i = q->pos; i < end && i < q->n; i++, q->pos++) {
        memcpy(text + at, q->iov[i].iov_base, q->iov[i].iov_len);
        at += q->iov[i].iov_len;
    }
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    nghttp2_nv *nva = lines < 64 ? nva_local : malloc((lines + 1) * sizeof(*nva));
    if (!nva || len < 12 || memcmp(text, "HTTP/1.1 ", 9) != 0) {
        if (nva != nva_local)
            free(nva);
        if (text != text_local)
            free(text);
        return -1;
    }
    size_t nnv = 0;
    nva[nnv++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)text + 9, 7, 3,
                              NGHTTP2_NV_FLAG_NONE};
    char *p = memchr(text, '\n', len);
    char *limit = text + len;
    while (p && p + 1 < limit) {
        char *line = p + 1, *eol = memchr(line, '\n', (size_t)(limit - line));
        if (!eol || eol - line <= 1)
            break;                          /* the empty line */
        char *colon = memchr(line, ':', (size_t)(eol - line));
        p = eol;
        if (!colon)
            continue;
        char *v = colon + 1, *ve = eol - 1;  /* CR */
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
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
    bool has_body = local ? body_ready(st) > 0 : !(req->resp_relay.complete && !req->gzip);
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = on_data_read};
    int rv = nghttp2_submit_response(st->h2->session, st->id, nva, nnv, has_body ? &prd : NULL);
    if (nva != nva_local)
        free(nva);
    if (text != text_local)
        free(text);
    if (rv != 0)
        return -1;
    st->head_sent = true;
    schedule_flush(st->h2);
    return 1;
}

static ssize_t h2_send_body(struct sy_request *req, const char *p, size_t len)
{
    struct sy_h2_stream *st = req->stream;
    struct sy_h2_conn *h2 = st->h2;

    if (st->reset)
        return -1;
    if (!st->out && !(st->out = sy_buf_get(bufs_of(h2))))
        return -1;
    make_room(st->out, len);
    size_t n = sy_buf_room(st->out) < len ? sy_buf_room(st->out) : len;
    if (st->deferred && (n || sy_buf_len(st->out))) {
        st->deferred = false;
        nghttp2_session_resume_data(h2->session, st->id);
        schedule_flush(h2);
    }
    if (n == 0) {
        /* full: the client's window or the connection holds it back */
        st->want_write = true;
        sy_event_arm(&req->client_wev, req->conf->limits.client_body_timeout_ms);
        return 0;
    }
    memcpy(st->out->data + st->out->end, p, n);
    st->out->end += (uint32_t)n;
    schedule_flush(h2);
    return (ssize_t)n;
}

/* DATA received into req->in: as is, or as one chunk when the length is unknown. */
static ssize_t h2_read_body(struct sy_request *req)
{
    struct sy_h2_stream *st = req->stream;
    struct sy_buf *in = req->in, *b = st->body;
    size_t room = sy_buf_room(in);

    if (st->reset)
        return -1;
    if (b && sy_buf_len(b)) {
        size_t n = sy_buf_len(b), at = in->end;
        if (st->chunked) {
            if (room < 32)
                return -1;
            if (n > room - 16)
                n = room - 16;
            at += (size_t)snprintf(in->data + at, 16, "%zx\r\n", n);
        } else if (n > room) {
            n = room;
        }
        memcpy(in->data + at, b->data + b->start, n);
        at += n;
        if (st->chunked) {
            memcpy(in->data + at, "\r\n", 2);
            at += 2;
        }
        b->start += (uint32_t)n;
        if (b->start == b->end)
            b->start = b->end = 0;
        ssize_t added = (ssize_t)(at - in->end);
        in->end = (uint32_t)at;
        nghttp2_session_consume(st->h2->session, st->id, n);   /* the window moves on */
        schedule_flush(st->h2);
        return added;
    }
    if (st->in_ended) {
        if (!st->chunked || st->last_chunk || room < 5)
            return -1;          /* ended short of its length (nghttp2 resets those first) */
        memcpy(in->data + in->end, "0\r\n\r\n", 5);
        in->end += 5;
        st->last_chunk = true;
        return 5;
    }
    st->want_read = true;
    sy_event_arm(&req->client_wev, req->conf->limits.client_body_timeout_ms);
    return 0;
}

static int h2_send_continue(struct sy_request *req)
{
    struct sy_h2_stream *st = req->stream;
    static const nghttp2_nv cont = {(uint8_t *)":status", (uint8_t *)"100", 7, 3,
                                    NGHTTP2_NV_FLAG_NONE};

    if (!req->head.expect_continue || st->body || st->in_ended)
        return 0;
    if (nghttp2_submit_headers(st->h2->session, NGHTTP2_FLAG_NONE, st->id, NULL, &cont, 1,
                               NULL) < 0)
        return -1;
    schedule_flush(st->h2);
    return 0;
}

static void h2_pause(struct sy_request *req, short what)
{
    struct sy_h2_stream *st = req->stream;

    if ((what & EV_READ) && st->want_read) {
        st->want_read = false;
        event_del(&req->client_wev);
    }
    if ((what & EV_WRITE) && st->want_write) {
        st->want_write = false;
        event_del(&req->client_wev);
    }
}

static void h2_body_read(struct sy_request *req)
{
    h2_pause(req, EV_READ);
}

static void h2_done(struct sy_request *req)
{
    struct sy_h2_stream *st = req->stream;

    st->want_read = st->want_write = false;
    event_del(&req->client_wev);
    sy_request_log_end(req, false);
    discard_body(st);
    st->out_eof = true;
    if (!st->head_sent) {
        stream_error(st, NGHTTP2_INTERNAL_ERROR, NULL);
        return;
    }
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->h2->session, st->id);
    }
    schedule_flush(st->h2);
}

static void h2_abort(struct sy_request *req)
{
    struct sy_h2_stream *st = req->stream;

    st->want_read = st->want_write = false;
    event_del(&req->client_wev);
    sy_request_log_end(req, true);
    discard_body(st);
    stream_error(st, NGHTTP2_INTERNAL_ERROR, NULL);
}

/* The stream's timer and wake-ups (req->client_wev). */
static void stream_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct sy_request *req = arg;
    struct sy_h2_stream *st = req->stream;
    struct sy_h2_conn *h2 = st->h2;
    (void)fd;

    if (what & EV_TIMEOUT) {
        if (req->state == SY_REQ_READING_HEAD) {
            /* a header block that never ends holds the whole connection */
            security_event(h2, "client header timeout");
            h2->closing = true;
            nghttp2_session_terminate_session(h2->session, NGHTTP2_NO_ERROR);
        } else if (st->want_read) {
            st->want_read = false;
            sy_proxy_on_client_timeout(req, what);
        } else if (st->want_write) {
            st->want_write = false;
            h2_abort(req);      /* the client stopped reading this stream */
        }
        schedule_flush(h2);
        return;
    }
    if ((what & EV_READ) && st->want_read) {
        st->want_read = false;
        sy_proxy_on_client_readable(req);
    }
    if ((what & EV_WRITE) && st->want_write && req->state != SY_REQ_DONE) {
        st->want_write = false;
        sy_request_writable(req);
    }
    schedule_flush(h2);
}

static const struct sy_downstream_ops h2_downstream = {
    .proto = "h2",
    .framed_body = true,
    .send_head = h2_send_head,
    .send_body = h2_send_body,
    .read_body = h2_read_body,
    .send_continue = h2_send_continue,
    .pause = h2_pause,
    .body_read = h2_body_read,
    .done = h2_done,
    .abort = h2_abort,
};

/* ---- the connection ------------------------------------------------------ */

static nghttp2_session_callbacks *callbacks_new(void)
{
    nghttp2_session_callbacks *cb;

    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_send_data_callback(cb, on_send_data);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_header_callback2(cb, on_header);
    nghttp2_session_callbacks_set_on_invalid_header_callback2(cb, on_invalid_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    return cb;
}

static int session_new(struct sy_h2_conn *h2, const struct sy_limits *lim)
{
    nghttp2_session_callbacks *callbacks = callbacks_new();    /* the session copies them */
    nghttp2_option *opt = NULL;
    int rv = -1;

    if (callbacks && nghttp2_option_new(&opt) == 0) {
        /* the window is given back as the proxy moves request bytes on, not as they arrive */
        nghttp2_option_set_no_auto_window_update(opt, 1);
        nghttp2_option_set_no_closed_streams(opt, 1);
        rv = nghttp2_session_server_new2(&h2->session, callbacks, h2, opt);
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0)
        return -1;
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)lim->http2_max_concurrent_streams},
        /* RFC 9113 6.5.2 counts 32 bytes a field on top of name and value */
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         (uint32_t)(lim->max_header_bytes + 32 * lim->max_headers)},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (nghttp2_submit_settings(h2->session, NGHTTP2_FLAG_NONE, settings,
                                sizeof(settings) / sizeof(settings[0])) != 0 ||
        nghttp2_session_set_local_window_size(h2->session, NGHTTP2_FLAG_NONE, 0,
                                              H2_CONN_WINDOW) != 0)
        return -1;
    return 0;
}

void sy_h2_start(struct sy_client *c)
{
    struct sy_worker *w = c->hw->w;
    struct sy_h2_conn *h2 = calloc(1, sizeof(*h2));

    if (!h2) {
        sy_client_close(c);
        return;
    }
    h2->c = c;
    h2->streams.next = h2->streams.prev = &h2->streams;
    if (session_new(h2, &w->conf->limits) < 0) {
        if (h2->session)
            nghttp2_session_del(h2->session);
        free(h2);
        sy_client_close(c);
        return;
    }
    event_assign(&h2->wev, w->base, c->io.fd, EV_WRITE, h2_on_write, h2);
    evtimer_assign(&h2->idle, w->base, h2_on_idle, h2);
    evtimer_assign(&h2->grace, w->base, h2_on_grace, h2);
    c->h2 = h2;
    c->state = SY_CLIENT_H2;
    /* the first request is due by the handshake's deadline, later ones within keep-alive */
    int64_t left = c->head_deadline_ms - sy_worker_now_ms(w);
    sy_event_arm(&h2->idle, left > 0 ? left : 1);
    if (c->hw->draining) {
        sy_h2_drain(c);         /* may close it */
        return;
    }
    sy_h2_on_read(c, EV_READ);
}

void sy_h2_drain(struct sy_client *c)
{
    struct sy_h2_conn *h2 = c->h2;

    if (!h2 || h2->draining)
        return;
    h2->draining = true;
    if (h2->nstreams == 0) {
        /* nothing in flight: GOAWAY now (a request racing it is refused, safe to retry) */
        nghttp2_session_terminate_session(h2->session, NGHTTP2_NO_ERROR);
    } else {
        nghttp2_submit_shutdown_notice(h2->session);
        sy_event_arm(&h2->grace, H2_GOAWAY_GRACE_MS);
    }
    after_event(h2);
}

void sy_h2_free(struct sy_client *c)
{
    struct sy_h2_conn *h2 = c->h2;

    if (!h2)
        return;
    c->h2 = NULL;
    h2->dead = true;
    while (h2->streams.next != &h2->streams)
        stream_free(h2->streams.next);
    sy_io_forget(&c->io, &h2->wev);
    event_del(&h2->wev);
    event_del(&h2->idle);
    event_del(&h2->grace);
    nghttp2_session_del(h2->session);
    sy_buf_put(bufs_of(h2), h2->out);
    free(h2);
}

#else /* !SY_HAVE_NGHTTP2: ALPN never offers h2 (conn.c), so none of these is reached */

#include "http.h"

void sy_h2_start(struct sy_client *c)
{
    sy_client_close(c);
}

void sy_h2_on_read(struct sy_client *c, short what)
{
    (void)what;
    sy_client_close(c);
}

void sy_h2_drain(struct sy_client *c)
{
    (void)c;
}

void sy_h2_free(struct sy_client *c)
{
    (void)c;
}

#endif
