/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * h2.c: HTTP/2 toward clients (RFC 9113) with nghttp2, on TLS connections
 * that chose "h2" by ALPN. nghttp2 does the framing, HPACK, flow control
 * and most of the validation; this file turns each stream into a request
 * and is its downstream (struct sy_downstream_ops). A stream's head is
 * written as HTTP/1.1 text into the request's own buffer (h2_fields.c) and
 * parsed by the same strict parser, so every later phase is the one
 * HTTP/1.1 takes.
 * The one rule: nghttp2 is never re-entered from its own callbacks. The
 * downstream calls only queue frames and ask for a flush; the connection's
 * events (read, write, timers) run the session and may close it. Trailers
 * pass both ways (a request's into its chunked body upstream, an app's as
 * a HEADERS frame after the last DATA); a reload or a stop ends each
 * connection with a graceful GOAWAY. What a connection may hold is bounded
 * (Memory, below).
 *
 * Ownership: the connection (struct sy_h2_conn, c->h2) owns its streams;
 * a stream owns its request, which is logged when its response is done or
 * given up, and freed when nghttp2 closes the stream (its last response
 * bytes may still be framed from the stream's own buffer until then).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2.h"

#if SY_HAVE_NGHTTP2

#include "core/log.h"
#include "core/metrics.h"
#include "h2_internal.h"
#include "http.h"

/*
 * Memory. Request body bytes in flight per stream: the protocol's default
 * window, which a client may use before it has our SETTINGS; per
 * connection: H2_CONN_WINDOW. Both windows are given back only as the
 * proxy moves the bytes on, so a slow app stalls its own stream, and the
 * DATA a connection may have the gateway hold is H2_CONN_WINDOW in all. A
 * stream's staging buffer grows with what it holds (doubling, from 4 KiB
 * to the window) and goes once the proxy took it all.
 * Response bodies are framed from the proxy's own buffer (zero copy): a
 * stream takes more from its app only once the last bytes were framed
 * into the connection's one output buffer, which the socket drains. So an
 * HTTP/2 connection holds at most, besides nghttp2's own state (HPACK
 * tables, a stream object each):
 *   per stream: its request (~6 KiB with max_headers 100), its head
 *     buffer and one more (the upstream's while its app answers, then the
 *     response's last bytes until they are framed), each a pool buffer:
 *     16 KiB or max_header_bytes + 4 KiB, whichever is more; with
 *     trailers, up to max_header_bytes more;
 *   per connection: H2_CONN_WINDOW of request DATA (twice that allocated
 *     at worst) and one output buffer.
 * With the defaults (128 streams, 20 KiB buffers): 128 x 46 KiB + 2 MiB
 * + 20 KiB, under 8 MiB, of which a stream waiting for its app uses 26 KiB.
 */
#define H2_STREAM_WINDOW 65535
#define H2_STAGING_MIN 4096
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

/*
 * Metrics (per-worker counters, metrics.h): every stream that had a
 * request once it closes, by how it ended, and every GOAWAY by why.
 */
enum h2_result {
    RES_OK,                     /* closed normally: its response went out whole */
    RES_CLIENT_RESET,           /* the client sent RST_STREAM */
    RES_MALFORMED,              /* we reset it by the RFC: PROTOCOL_ERROR, FLOW_CONTROL_ERROR */
    RES_ERROR,                  /* we reset it: the response failed (INTERNAL_ERROR) */
    RES_REFUSED,                /* never processed (REFUSED_STREAM, past a GOAWAY) */
    RES_CONNECTION_CLOSED,      /* the connection ended under it */
    RES_COUNT,
};
static const char *const result_names[RES_COUNT] = {
    "ok", "client_reset", "malformed", "error", "refused", "connection_closed",
};

enum h2_goaway {
    GA_RELOAD,                  /* a new configuration: reconnect */
    GA_SHUTDOWN,                /* graceful stop */
    GA_IDLE,                    /* keep-alive timeout with no stream open */
    GA_HEADER_TIMEOUT,          /* a header block that never ended */
    GA_FLOOD,                   /* ENHANCE_YOUR_CALM: resets, CONTINUATION, control frames */
    GA_PROTOCOL_ERROR,          /* a connection error (nghttp2's own GOAWAY included) */
    GA_COUNT,
};
static const char *const goaway_names[GA_COUNT] = {
    "reload", "shutdown", "idle", "header_timeout", "flood", "protocol_error",
};

/* Interned once on the main thread (sy_h2_metrics_init) before any worker runs. */
static uint32_t result_series[RES_COUNT], goaway_series[GA_COUNT];
static bool series_ready;

/* A token bucket, in thousandths of a token. */
struct h2_budget {
    int64_t tokens_milli;
    int64_t at_ms;
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
    uint32_t conf_gen;                  /* the worker's reloads when it began (conn.c) */
    bool goaway_counted;                /* its GOAWAY is in the metrics */
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

static void count(const struct sy_h2_conn *h2, uint32_t series)
{
    if (series_ready)
        sy_metrics_count_event(h2->c->hw->metrics, series, 1);
}

/* The connection's GOAWAY, once (a graceful one is two frames: notice and final). */
static void count_goaway(struct sy_h2_conn *h2, enum h2_goaway why)
{
    if (h2->goaway_counted)
        return;
    h2->goaway_counted = true;
    count(h2, goaway_series[why]);
}

static enum h2_result stream_result(const struct sy_h2_stream *st)
{
    if (st->client_reset)
        return RES_CLIENT_RESET;
    if (st->rst_sent == NGHTTP2_INTERNAL_ERROR)
        return RES_ERROR;
    if (st->rst_sent == NGHTTP2_REFUSED_STREAM || st->close_code == NGHTTP2_REFUSED_STREAM)
        return RES_REFUSED;
    if (st->rst_sent != NGHTTP2_NO_ERROR)
        return RES_MALFORMED;
    if (!st->end_sent)
        return RES_CONNECTION_CLOSED;
    return RES_OK;
}

void sy_h2_metrics_init(void)
{
    if (series_ready)
        return;
    for (int i = 0; i < RES_COUNT; i++)
        result_series[i] = sy_metrics_counter("switchyard_h2_streams_total", result_names[i],
                                              NULL);
    for (int i = 0; i < GA_COUNT; i++)
        goaway_series[i] = sy_metrics_counter("switchyard_h2_goaway_total", goaway_names[i],
                                              NULL);
    series_ready = true;
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
    count_goaway(h2, GA_FLOOD);
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

/*
 * Room for len more bytes in the stream's staging buffer, which grows by
 * doubling up to the stream's window. -1: no memory, or more than the
 * window allows (nghttp2 checks that first; this is a second lock).
 */
static int staging_room(struct sy_h2_stream *st, size_t len)
{
    struct sy_buf *b = st->body;
    size_t held = b ? sy_buf_len(b) : 0, cap = b ? b->cap : 0;

    if (b)
        make_room(b, len);
    if (cap - (b ? b->end : 0) >= len)
        return 0;
    if (held + len > H2_STREAM_WINDOW)
        return -1;
    while (cap < held + len)
        cap = cap ? cap * 2 : H2_STAGING_MIN;
    if (cap > H2_STREAM_WINDOW)
        cap = H2_STREAM_WINDOW;
    struct sy_buf *grown = realloc(b, sizeof(*grown) + cap);
    if (!grown)
        return -1;
    if (!b)
        *grown = (struct sy_buf){.cap = 0};
    grown->cap = (uint32_t)cap;
    st->body = grown;
    return 0;
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

    count(h2, result_series[stream_result(st)]);
    if (req) {
        sy_request_log_end(req, true);     /* nothing when it was already logged */
        sy_buf_put(bufs_of(h2), req->in);
        req->in = NULL;
        sy_request_free(req);
        st->req = NULL;
    }
    discard_body(st);
    sy_h2_head_parts_free(st);
    free(st->trailers);
    free(st->resp_trailers);
    sy_buf_put(bufs_of(h2), st->out);
    st->prev->next = st->next;
    st->next->prev = st->prev;
    free(st);
    if (--h2->nstreams == 0 && !h2->dead)
        sy_event_arm(&h2->idle, h2->c->hw->w->conf->limits.keepalive_timeout_ms);
}

/* ---- the request head (translated in h2_fields.c) -------------------------- */

/* A field of a request's head or trailers; a malformed one resets the stream. */
static int on_header(nghttp2_session *session, const nghttp2_frame *frame, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value, uint8_t flags, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st;
    (void)flags;

    if (h2->dead || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (!(st = stream_of(session, frame->hd.stream_id)) || !st->req || st->reset)
        return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
        sy_h2_trailer_field(st, name, value);
        return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    const char *malformed = sy_h2_head_field(st, name, value);
    if (malformed)
        stream_error(st, NGHTTP2_PROTOCOL_ERROR, malformed);
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
    st->in_ended = end_stream;
    sy_h2_head_finish(st, end_stream);
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
    case NGHTTP2_RST_STREAM:
        st->client_reset = true;
        return 0;
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
    if (staging_room(st, len) < 0) {
        bool over = (st->body ? sy_buf_len(st->body) : 0) + len > H2_STREAM_WINDOW;
        nghttp2_session_consume(session, id, len);
        stream_error(st, over ? NGHTTP2_FLOW_CONTROL_ERROR : NGHTTP2_INTERNAL_ERROR,
                     over ? "HTTP/2 flow control violated" : "out of memory");
        return 0;
    }
    st->got_data = true;
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

    if (h2->dead || !(st = stream_of(session, id)))
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    st->close_code = error_code;
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

/* Response body bytes ready to frame: a local body queued in req->out, the span, the tail. */
static size_t body_ready(const struct sy_h2_stream *st)
{
    const struct sy_iovq *q = &st->req->out;
    size_t n = st->span_len + (st->out ? sy_buf_len(st->out) : 0);

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
    size_t k = n < st->span_len ? n : st->span_len;
    if (k) {
        memcpy(dst, st->span, k);
        dst += k;
        n -= k;
        st->span += k;
        st->span_len -= k;
        st->taken += k;
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
    (void)id, (void)buf, (void)user;

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
    if (st->out_eof && n == ready) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        /* the trailers end the stream instead (nghttp2 allows submitting them from here) */
        if (st->resp_trailers && nghttp2_submit_trailer(session, st->id, st->resp_trailers,
                                                        st->nresp_trailers) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        free(st->resp_trailers);
        st->resp_trailers = NULL;
    }
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
    /*
     * A frame nghttp2 sized earlier and kept while the socket was full
     * (WOULDBLOCK) may outlive the bytes it counted on: the request was
     * aborted meanwhile (a body timeout, the app gone mid-body) and its
     * span dropped. Such a frame is never sent: the stream is reset.
     */
    if (!st->req || st->reset || body_ready(st) < length)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    make_room(out, 9 + length);
    if (sy_buf_room(out) < 9 + length)
        return NGHTTP2_ERR_WOULDBLOCK;
    memcpy(out->data + out->end, framehd, 9);
    body_take(st, (uint8_t *)out->data + out->end + 9, length);
    out->end += (uint32_t)(9 + length);
    if (st->want_write && st->req) {
        if (st->span_len == 0 && (!st->out || sy_buf_len(st->out) <= st->out->cap / 2))
            wake(st, EV_WRITE);         /* what it offered is framed: the proxy goes on */
        else                            /* a slow reader that reads still reads */
            sy_event_arm(&st->req->client_wev, st->req->conf->limits.client_body_timeout_ms);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct sy_h2_conn *h2 = user;
    struct sy_h2_stream *st;

    if (!h2->dead && frame->hd.type == NGHTTP2_GOAWAY)
        count_goaway(h2, GA_PROTOCOL_ERROR);    /* nghttp2's own; ours were counted */
    if (h2->dead || frame->hd.stream_id == 0 || !(st = stream_of(session, frame->hd.stream_id)))
        return 0;
    if (frame->hd.type == NGHTTP2_RST_STREAM)
        st->rst_sent = frame->rst_stream.error_code;
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

    if (h2->nstreams == 0) {
        count_goaway(h2, GA_IDLE);
        nghttp2_session_terminate_session(h2->session, NGHTTP2_NO_ERROR);
    }
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
                count_goaway(h2, rv == NGHTTP2_ERR_FLOODED ? GA_FLOOD : GA_PROTOCOL_ERROR);
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
    size_t nnv = sy_h2_response_fields(text, len, nva);
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

/*
 * Zero copy: the bytes are framed from where they are, the proxy's buffer,
 * which it leaves alone until this says they were taken. The first call
 * offers them (0: waiting); the call after the wake-up, with what is left
 * of the same bytes, hears how many went. Meanwhile the proxy reads no
 * more from its app: the stream holds one buffer of response, no more.
 * The last bytes are copied (as many as fit), so that the request can end
 * before they are framed (see struct sy_h2_stream).
 */
static ssize_t h2_send_body(struct sy_request *req, const char *p, size_t len, bool last)
{
    struct sy_h2_stream *st = req->stream;
    struct sy_h2_conn *h2 = st->h2;
    size_t n = 0;

    if (st->reset)
        return -1;
    if (st->taken) {
        n = st->taken;
        st->taken = 0;
        return (ssize_t)n;
    }
    if (st->span_len == 0 && len && last) {
        if (!st->out && !(st->out = sy_buf_get(bufs_of(h2))))
            return -1;
        make_room(st->out, len);
        n = sy_buf_room(st->out) < len ? sy_buf_room(st->out) : len;
        memcpy(st->out->data + st->out->end, p, n);
        st->out->end += (uint32_t)n;
    } else if (st->span_len == 0 && len) {
        st->span = p;
        st->span_len = len;
    }
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(h2->session, st->id);
    }
    schedule_flush(h2);
    if (n)
        return (ssize_t)n;
    /* framed as the client's window and the socket allow */
    st->want_write = true;
    sy_event_arm(&req->client_wev, req->conf->limits.client_body_timeout_ms);
    return 0;
}

/* DATA received into req->in: as is, or as one chunk when the length is unknown. */
static ssize_t h2_read_body(struct sy_request *req)
{
    struct sy_h2_stream *st = req->stream;
    struct sy_buf *in = req->in, *b = st->body;
    size_t room = sy_buf_room(in);

    if (st->reset)
        return -1;
    if (b && sy_buf_len(b) == 0) {
        free(b);                /* drained: a stream that waits holds no staging */
        st->body = b = NULL;
    }
    if (b) {
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
        size_t n = st->chunked ? sy_h2_body_tail(st, in->data + in->end, room) : 0;
        if (n == 0)
            return -1;          /* ended short of its length (nghttp2 resets those first) */
        in->end += (uint32_t)n;
        return (ssize_t)n;
    }
    st->want_read = true;
    sy_event_arm(&req->client_wev, req->conf->limits.client_body_timeout_ms);
    return 0;
}

/* The response's trailer fields, submitted with the last DATA (on_data_read). */
static void h2_send_trailers(struct sy_request *req, const char *fields, size_t len)
{
    struct sy_h2_stream *st = req->stream;

    if (!st->resp_trailers)
        st->resp_trailers = sy_h2_trailer_fields(fields, len, &st->nresp_trailers);
}

static int h2_send_continue(struct sy_request *req)
{
    struct sy_h2_stream *st = req->stream;
    static const nghttp2_nv cont = {(uint8_t *)":status", (uint8_t *)"100", 7, 3,
                                    NGHTTP2_NV_FLAG_NONE};

    if (!req->head.expect_continue || st->got_data || st->in_ended)
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
    st->span_len = 0;           /* all was taken: the proxy's buffer goes now */
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
    st->span_len = 0;           /* the proxy's buffer goes with its upstream */
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
            count_goaway(h2, GA_HEADER_TIMEOUT);
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
    .send_trailers = h2_send_trailers,
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
    h2->conf_gen = c->hw->conf_gen;
    c->h2 = h2;
    c->state = SY_CLIENT_H2;
    /* the first request is due by the handshake's deadline, later ones within keep-alive */
    int64_t left = c->head_deadline_ms - sy_worker_now_ms(w);
    sy_event_arm(&h2->idle, left > 0 ? left : 1);
    if (c->hw->draining) {
        sy_h2_drain(c, false);  /* may close it */
        return;
    }
    sy_h2_on_read(c, EV_READ);
}

void sy_h2_drain(struct sy_client *c, bool reload)
{
    struct sy_h2_conn *h2 = c->h2;

    if (!h2 || h2->draining || h2->closing)
        return;
    h2->draining = true;
    count_goaway(h2, reload ? GA_RELOAD : GA_SHUTDOWN);
    if (h2->nstreams == 0 && !reload) {
        /* nothing in flight: GOAWAY now (a request racing it is refused, safe to retry) */
        nghttp2_session_terminate_session(h2->session, NGHTTP2_NO_ERROR);
    } else {
        /* RFC 9113 6.8: streams the client opens before it reads this are still served */
        nghttp2_submit_shutdown_notice(h2->session);
        sy_event_arm(&h2->grace, H2_GOAWAY_GRACE_MS);
    }
    after_event(h2);
}

void sy_h2_conf_changed(struct sy_client *c, uint32_t conf_gen)
{
    if (c->h2 && c->h2->conf_gen != conf_gen)
        sy_h2_drain(c, true);
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

void sy_h2_drain(struct sy_client *c, bool reload)
{
    (void)c, (void)reload;
}

void sy_h2_conf_changed(struct sy_client *c, uint32_t conf_gen)
{
    (void)c, (void)conf_gen;
}

void sy_h2_metrics_init(void)
{
}

void sy_h2_free(struct sy_client *c)
{
    (void)c;
}

#endif
