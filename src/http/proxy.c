/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * proxy.c: one request's exchange with an app instance: route, pick an
 * instance, connect (or reuse an idle connection), write the head as one
 * writev of spans of the client's own bytes plus the headers we add,
 * relay the bodies both ways with backpressure, and finish or fail.
 * proxy_step() is the one place that moves a request between states. The
 * client is reached only through the request's downstream calls (req->ds,
 * http.h): an HTTP/1.1 connection or an HTTP/2 stream, the same phases.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "balance.h"
#include "compress.h"
#include "core/live.h"
#include "core/cidr.h"
#include "core/log.h"
#include "core/metrics.h"
#include "forwarded.h"
#include "http.h"
#include "modules.h"
#include "request.h"
#include "route.h"
#include "split.h"
#include "tls.h"

/* The longest Location the redirect writes: a request target is at most this. */
#define SY_HTTPS_LOCATION_MAX (64 * 1024)

enum failure {
    FAIL_CONNECT,               /* nothing reached the app: always retryable */
    FAIL_SEND,                  /* writing the request failed */
    FAIL_NO_RESPONSE,           /* closed or reset before any response byte */
    FAIL_TIMEOUT,               /* no answer within read_timeout_ms */
    FAIL_BAD_RESPONSE,          /* not HTTP, or ambiguous framing */
};

static void proxy_step(struct sy_request *req);
static void connect_upstream(struct sy_request *req);
static int upstream_handshake(struct sy_request *req);
static int begin_sending(struct sy_request *req);
static int read_response_head(struct sy_request *req, bool waiting);

const char *sy_req_state_name(enum sy_req_state state)
{
    static const char *const names[] = {
        "reading_head", "waiting_module", "connecting", "sending_head", "sending_body",
        "waiting_response", "sending_response_head", "sending_response_body", "local_response",
        "tunnel", "done",
    };
    return names[state];
}

/* ---- output queue ------------------------------------------------------- */

int sy_iovq_push(struct sy_iovq *q, const void *base, size_t len)
{
    if (len == 0)
        return 0;
    if (q->n == q->cap) {
        int cap = q->cap ? q->cap * 2 : 32;
        struct iovec *iov = realloc(q->iov, (size_t)cap * sizeof(*iov));
        if (!iov)
            return -1;
        q->iov = iov;
        q->cap = cap;
    }
    q->iov[q->n++] = (struct iovec){(void *)base, len};
    return 0;
}

ssize_t sy_iovq_write(struct sy_iovq *q, struct sy_io *io)
{
    while (q->pos < q->n) {
        int cnt = q->n - q->pos < 1024 ? q->n - q->pos : 1024;
        ssize_t n = sy_io_writev(io, q->iov + q->pos, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && q->pos < q->n) {
            struct iovec *v = &q->iov[q->pos];
            if ((size_t)n >= v->iov_len) {
                n -= (ssize_t)v->iov_len;
                q->pos++;
            } else {
                v->iov_base = (char *)v->iov_base + n;
                v->iov_len -= (size_t)n;
                n = 0;
            }
        }
    }
    return 0;
}

/* ---- who the client is -------------------------------------------------- */

static bool valid_request_id(const char *p, size_t len)
{
    if (len == 0 || len > SY_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
            return false;
    }
    return true;
}

static bool trusted(const struct sy_conf *conf, const struct sockaddr *sa)
{
    return conf->ntrusted_proxies &&
           sy_cidr_list_match(conf->trusted_proxies, conf->ntrusted_proxies, sa) >= 0;
}

/* The client: the peer, or the address trusted proxies forwarded for (forwarded.h). */
static void find_client_ip(struct sy_request *req, const char *data)
{
    const struct sy_http_head *h = &req->head;
    struct sy_client_id id;

    memcpy(id.ip, req->peer_ip, sizeof(id.ip));
    memcpy(&id.addr, &req->client->peer, sizeof(req->client->peer));
    for (int i = (int)h->nheaders - 1; req->peer_trusted && i >= 0; i--) {
        const struct sy_header *hd = &h->headers[i];
        if (hd->id == SY_HDR_X_FORWARDED_FOR &&
            !sy_forwarded_walk(data + hd->value.off, hd->value.len, req->conf->trusted_proxies,
                               req->conf->ntrusted_proxies, &id))
            break;
    }
    memcpy(req->client_ip, id.ip, sizeof(req->client_ip));
    req->client_addr = id.addr;
}

static void identify_client(struct sy_request *req)
{
    const char *data = req->in->data;
    const struct sy_http_head *h = &req->head;

    req->peer_trusted = trusted(req->conf, &req->client->peer.sa);
    find_client_ip(req, data);
    int i = sy_http_find(h, SY_HDR_X_REQUEST_ID);
    if (req->peer_trusted && i >= 0 &&
        valid_request_id(data + h->headers[i].value.off, h->headers[i].value.len)) {
        memcpy(req->request_id, data + h->headers[i].value.off, h->headers[i].value.len);
        req->request_id[h->headers[i].value.len] = '\0';
    } else {
        sy_request_new_id(req);
    }
}

/* ---- the request head toward the app ------------------------------------ */

static int extra_reserve(struct sy_request *req, size_t need)
{
    if (req->extra_cap >= need)
        return 0;
    char *p = realloc(req->extra, need);
    if (!p)
        return -1;
    req->extra = p;
    req->extra_cap = need;
    return 0;
}

static void extra_add(struct sy_request *req, const char *s, size_t len)
{
    memcpy(req->extra + req->extra_len, s, len);
    req->extra_len += len;
}

#define EXTRA_LIT(req, lit) extra_add((req), (lit), sizeof(lit) - 1)

/* Values of every header with this id joined by ", " (a list header split over lines). */
static void extra_add_joined(struct sy_request *req, const char *data, enum sy_header_id id)
{
    bool first = true;
    for (uint32_t i = 0; i < req->head.nheaders; i++) {
        const struct sy_header *hd = &req->head.headers[i];
        if (hd->id != id)
            continue;
        if (!first)
            EXTRA_LIT(req, ", ");
        extra_add(req, data + hd->value.off, hd->value.len);
        first = false;
    }
}

static size_t header_bytes(const struct sy_request *req, enum sy_header_id id)
{
    size_t n = 0;
    for (uint32_t i = 0; i < req->head.nheaders; i++)
        if (req->head.headers[i].id == id)
            n += req->head.headers[i].value.len + 2;
    return n;
}

/* ---- a route's header edits (routes[].headers) --------------------------- */

static bool name_in(char *const *names, size_t n, const char *data, const struct sy_header *hd)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == hd->name.len &&
            strncasecmp(names[i], data + hd->name.off, hd->name.len) == 0)
            return true;
    return false;
}

/* Whether the edit drops this header: removed, or set (the set value replaces it). */
static bool edited_away(const struct sy_header_edit *e, const char *data,
                        const struct sy_header *hd)
{
    return (e->nremove && name_in(e->remove, e->nremove, data, hd)) ||
           (e->nset && name_in(e->set_names, e->nset, data, hd));
}

static size_t set_bytes(const struct sy_header_edit *e)
{
    size_t n = 0;

    for (size_t i = 0; i < e->nset; i++)
        n += strlen(e->set_names[i]) + strlen(e->set_values[i]) + 4;
    return n;
}

/* The edit's set headers as lines in req->extra (reserved by the caller). */
static void add_set_headers(struct sy_request *req, const struct sy_header_edit *e)
{
    for (size_t i = 0; i < e->nset; i++) {
        extra_add(req, e->set_names[i], strlen(e->set_names[i]));
        EXTRA_LIT(req, ": ");
        extra_add(req, e->set_values[i], strlen(e->set_values[i]));
        EXTRA_LIT(req, "\r\n");
    }
}

/* The X-Forwarded-* and X-Request-ID lines, built in req->extra. */
static int build_added_headers(struct sy_request *req, const char *data)
{
    const struct sy_http_head *h = &req->head;
    bool t = req->peer_trusted;
    size_t need = 512 + strlen(req->request_id) + h->host.len + header_bytes(req, SY_HDR_X_FORWARDED_FOR) +
                  header_bytes(req, SY_HDR_X_FORWARDED_PROTO) + header_bytes(req, SY_HDR_X_FORWARDED_HOST) +
                  sizeof(req->instance->addr.text) + set_bytes(&req->route->request_headers);

    if (extra_reserve(req, need) < 0)
        return -1;
    req->extra_len = 0;
    EXTRA_LIT(req, "X-Forwarded-For: ");
    if (t && sy_http_find(h, SY_HDR_X_FORWARDED_FOR) >= 0) {
        extra_add_joined(req, data, SY_HDR_X_FORWARDED_FOR);
        EXTRA_LIT(req, ", ");
    }
    extra_add(req, req->peer_ip, strlen(req->peer_ip));
    EXTRA_LIT(req, "\r\nX-Forwarded-Proto: ");
    if (t && sy_http_find(h, SY_HDR_X_FORWARDED_PROTO) >= 0)
        extra_add_joined(req, data, SY_HDR_X_FORWARDED_PROTO);
    else if (req->client->io.tls)
        EXTRA_LIT(req, "https");
    else
        EXTRA_LIT(req, "http");
    EXTRA_LIT(req, "\r\nX-Forwarded-Host: ");
    if (t && sy_http_find(h, SY_HDR_X_FORWARDED_HOST) >= 0)
        extra_add_joined(req, data, SY_HDR_X_FORWARDED_HOST);
    else
        extra_add(req, data + h->host.off, h->host.len);
    EXTRA_LIT(req, "\r\nX-Request-ID: ");
    extra_add(req, req->request_id, strlen(req->request_id));
    EXTRA_LIT(req, "\r\n");
    if (h->host.len == 0) {
        /* An HTTP/1.0 request without Host: HTTP/1.1 upstream requires one. */
        EXTRA_LIT(req, "Host: ");
        extra_add(req, req->instance->addr.text, strlen(req->instance->addr.text));
        EXTRA_LIT(req, "\r\n");
    }
    if (req->req_relay.mode == SY_RELAY_CHUNKED)
        EXTRA_LIT(req, "Transfer-Encoding: chunked\r\n");
    if (req->websocket)
        EXTRA_LIT(req, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
    else if (req->pool->keepalive == 0)
        EXTRA_LIT(req, "Connection: close\r\n");
    add_set_headers(req, &req->route->request_headers);
    EXTRA_LIT(req, "\r\n");
    return 0;
}

static bool forwarded_to_app(const struct sy_header *hd)
{
    if (hd->hop_by_hop)
        return false;
    switch (hd->id) {
    case SY_HDR_X_FORWARDED_FOR:
    case SY_HDR_X_FORWARDED_PROTO:
    case SY_HDR_X_FORWARDED_HOST:
    case SY_HDR_X_REQUEST_ID:
    case SY_HDR_UNDERSCORE_TWIN:
    case SY_HDR_EXPECT:         /* the gateway answers 100-continue itself */
        return false;
    default:
        return true;
    }
}

/* Queues header lines to keep, merging neighbours into one iovec. */
static int push_kept_lines(struct sy_iovq *q, const char *data, const struct sy_http_head *h,
                           bool (*keep)(const struct sy_header *),
                           const struct sy_header_edit *edit)
{
    uint32_t run_start = 0, run_end = 0;
    bool edits = edit->nset || edit->nremove;

    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct sy_header *hd = &h->headers[i];
        if (!keep(hd) || (edits && edited_away(edit, data, hd)))
            continue;
        if (run_end != hd->name.off) {
            if (sy_iovq_push(q, data + run_start, run_end - run_start) < 0)
                return -1;
            run_start = hd->name.off;
        }
        run_end = hd->line_end;
    }
    return sy_iovq_push(q, data + run_start, run_end - run_start);
}

static int build_request_head(struct sy_request *req)
{
    const char *data = req->in->data;
    const struct sy_http_head *h = &req->head;
    struct sy_iovq *q = &req->out;

    q->n = q->pos = 0;
    if (build_added_headers(req, data) < 0)
        return -1;
    int rc = sy_iovq_push(q, data + h->method_text.off, h->method_text.len + 1);
    if (h->absolute_form) {
        /* "http://host/p?q" goes upstream as "/p?q"; "http://host?q" as "/?q". */
        if (h->path.len)
            rc |= sy_iovq_push(q, data + h->path.off, h->path.len);
        else
            rc |= sy_iovq_push(q, "/", 1);
        if (h->query.len) {
            rc |= sy_iovq_push(q, "?", 1);
            rc |= sy_iovq_push(q, data + h->query.off, h->query.len);
        }
    } else {
        rc |= sy_iovq_push(q, data + h->target.off, h->target.len);
    }
    rc |= sy_iovq_push(q, " HTTP/1.1\r\n", 11);
    rc |= push_kept_lines(q, data, h, forwarded_to_app, &req->route->request_headers);
    rc |= sy_iovq_push(q, req->extra, req->extra_len);
    return rc ? -1 : 0;
}

/* ---- the response head toward the client -------------------------------- */

static bool forwarded_to_client(const struct sy_header *hd)
{
    return !hd->hop_by_hop && hd->id != SY_HDR_X_REQUEST_ID;
}

static enum sy_relay_mode response_relay_mode(struct sy_request *req)
{
    switch (req->resp.body) {
    case SY_BODY_NONE:
        return SY_RELAY_NONE;
    case SY_BODY_LENGTH:
        return SY_RELAY_LENGTH;
    case SY_BODY_CHUNKED:
        if (req->ds->framed_body)
            return SY_RELAY_DECHUNK;        /* HTTP/2 frames plain data itself */
        if (req->head.version_minor == 0) {
            req->client_keepalive = false;  /* HTTP/1.0: plain data, end at close */
            return SY_RELAY_DECHUNK;
        }
        return SY_RELAY_CHUNKED;
    case SY_BODY_UNTIL_CLOSE:
        req->client_keepalive = false;
        return SY_RELAY_UNTIL_CLOSE;
    }
    return SY_RELAY_NONE;
}

static void drop_gzip(struct sy_request *req)
{
    sy_gzip_free(req->gzip, &req->hw->w->bufs);
    req->gzip = NULL;
}

/*
 * The route's compress policy (compress.h): a gzip stream when this
 * response qualifies. The body then enters zlib as plain data (chunked
 * input decoded) and leaves chunked, or close-delimited to HTTP/1.0.
 */
static bool start_gzip(struct sy_request *req, enum sy_relay_mode *mode, int *etag)
{
    const struct sy_http_head *r = &req->resp;
    struct sy_buf_pool *bufs = &req->hw->w->bufs;
    bool chunked = req->head.version_minor == 1 && !req->ds->framed_body;
    struct sy_buf *out;

    drop_gzip(req);             /* an earlier attempt's */
    if (!req->route->compress ||
        !sy_compress_wanted(&req->head, req->in->data, r, req->up->in->data, etag))
        return false;
    if (!(out = sy_buf_get(bufs)))
        return false;           /* no memory: the body goes as it is */
    req->gzip = sy_gzip_new(out, r->body == SY_BODY_LENGTH ? r->content_length : 0, chunked);
    if (!req->gzip) {
        sy_buf_put(bufs, out);
        return false;
    }
    if (*mode == SY_RELAY_CHUNKED)
        *mode = SY_RELAY_DECHUNK;
    if (!chunked && !req->ds->framed_body)
        req->client_keepalive = false;
    return true;
}

/*
 * On a route whose CORS the gateway answers, the app's own Access-Control-*
 * response headers go (marked hop-by-hop, so push_kept_lines drops them):
 * a second Access-Control-Allow-Origin makes browsers refuse the response.
 */
static void drop_app_cors(struct sy_request *req)
{
    struct sy_http_head *r = &req->resp;
    const char *data = req->up->in->data;

    for (uint32_t i = 0; i < r->nheaders; i++)
        if (r->headers[i].name.len > 15 &&
            strncasecmp(data + r->headers[i].name.off, "Access-Control-", 15) == 0)
            r->headers[i].hop_by_hop = true;
}

/*
 * The gzip response's headers. Content-Length and a strong ETag are
 * marked hop-by-hop, so that push_kept_lines drops them: the length is
 * unknown now, and the bytes are no longer the app's (RFC 9110 8.8.3).
 */
static void add_gzip_headers(struct sy_request *req, int etag)
{
    struct sy_http_head *r = &req->resp;
    const char *data = req->up->in->data;

    EXTRA_LIT(req, "Content-Encoding: gzip\r\n");
    if (!sy_compress_vary_covered(r, data))
        EXTRA_LIT(req, "Vary: Accept-Encoding\r\n");
    if (etag >= 0) {
        r->headers[etag].hop_by_hop = true;
        EXTRA_LIT(req, "ETag: W/");
        extra_add(req, data + r->headers[etag].value.off, r->headers[etag].value.len);
        EXTRA_LIT(req, "\r\n");
    }
    for (uint32_t i = 0; i < r->nheaders; i++)
        if (r->headers[i].id == SY_HDR_CONTENT_LENGTH)
            r->headers[i].hop_by_hop = true;
}

static int build_response_head(struct sy_request *req)
{
    struct sy_buf *in = req->up->in;
    const struct sy_http_head *r = &req->resp;
    struct sy_iovq *q = &req->out;
    uint32_t status_line_end = r->nheaders ? r->headers[0].name.off : r->head_len - 2;

    enum sy_relay_mode mode = response_relay_mode(req);
    int etag = -1;
    bool gzip = start_gzip(req, &mode, &etag);
    bool switching = r->status == 101;
    if (!req->req_relay.complete || req->hw->draining || switching)
        req->client_keepalive = false;  /* unread body bytes: no request boundary */
    sy_relay_init(&req->resp_relay, mode, r->content_length, r->head_len, 0);
    sy_relay_trailer_limits(&req->resp_relay, (uint32_t)req->conf->limits.max_header_bytes,
                            (uint32_t)req->conf->limits.max_headers);
    if (req->ds->send_trailers && !gzip)
        sy_relay_keep_trailers(&req->resp_relay);      /* HTTP/2: a HEADERS frame after the data */
    req->upstream_reusable = r->keep_alive && mode != SY_RELAY_UNTIL_CLOSE && !req->websocket;

    size_t need = 256 + strlen(req->request_id) + set_bytes(&req->route->response_headers);
    if (req->set_cookie)
        need += SY_SPLIT_SET_COOKIE_MAX(strlen(req->service->name));
    if (gzip)
        need += 96 + (etag >= 0 ? r->headers[etag].value.len : 0);
    if (extra_reserve(req, need) < 0)
        return -1;
    req->extra_len = 0;
    if (mode == SY_RELAY_CHUNKED || (gzip && req->gzip->chunked))
        EXTRA_LIT(req, "Transfer-Encoding: chunked\r\n");
    if (gzip)
        add_gzip_headers(req, etag);
    if (switching)
        EXTRA_LIT(req, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
    else if (!req->client_keepalive)
        EXTRA_LIT(req, "Connection: close\r\n");
    else if (req->head.version_minor == 0)
        EXTRA_LIT(req, "Connection: keep-alive\r\n");
    EXTRA_LIT(req, "X-Request-ID: ");
    extra_add(req, req->request_id, strlen(req->request_id));
    EXTRA_LIT(req, "\r\n");
    add_set_headers(req, &req->route->response_headers);
    struct sy_header_out mods = {.req = req, .tail = 2};
    if (req->set_cookie)
        mods.tail += SY_SPLIT_SET_COOKIE_MAX(strlen(req->service->name));
    sy_modules_response(req, &mods);
    if (req->set_cookie) {
        struct sy_split split = {.slot = req->slot, .set_cookie = true,
                                 .bucket = req->cookie_bucket};
        req->extra_len += sy_split_set_cookie(req->extra + req->extra_len, req->service, &split,
                                              req->client->io.tls != NULL);
    }
    EXTRA_LIT(req, "\r\n");

    q->n = q->pos = 0;
    /* "HTTP/1.x " is 9 bytes; we answer as HTTP/1.1 whatever the app spoke. */
    int rc = sy_iovq_push(q, "HTTP/1.1 ", 9);
    rc |= sy_iovq_push(q, in->data + 9, status_line_end - 9);
    if (req->route->cors.enabled)
        drop_app_cors(req);
    rc |= push_kept_lines(q, in->data, r, forwarded_to_client, &req->route->response_headers);
    rc |= sy_iovq_push(q, req->extra, req->extra_len);
    for (int i = 0; i < q->n; i++)
        req->bytes_out += q->iov[i].iov_len;
    req->status = r->status;
    req->response_started = true;
    return rc ? -1 : 0;
}

void sy_header_out_add(struct sy_header_out *out, const char *name, const char *value)
{
    struct sy_request *req = out->req;
    size_t n = strlen(name), v = strlen(value);

    if (out->failed || extra_reserve(req, req->extra_len + n + v + 4 + out->tail) < 0) {
        out->failed = true;
        return;
    }
    extra_add(req, name, n);
    EXTRA_LIT(req, ": ");
    extra_add(req, value, v);
    EXTRA_LIT(req, "\r\n");
}

/* ---- events and failures ------------------------------------------------ */

static void up_wait_read(struct sy_request *req, int64_t timeout_ms)
{
    sy_io_wait(&req->up->io, &req->up->rev, EV_READ, timeout_ms);
}

static void up_wait_write(struct sy_request *req, int64_t timeout_ms)
{
    sy_io_wait(&req->up->io, &req->up->wev, EV_WRITE, timeout_ms);
}

/*
 * The scaling signal's queue (live.h, connecting[]): a request counts from
 * the moment it starts a new upstream connection until that connection is
 * up (TCP and, for TLS, the handshake) or given up. A fresh connection is
 * the only kind not yet up, so the count ends either in mark_connected()
 * or in detach_upstream(), which every failure, retry and abort passes.
 */
static void connect_wait(const struct sy_request *req, int delta)
{
    atomic_fetch_add_explicit(&req->service->live->connecting[req->slot], delta,
                              memory_order_relaxed);
}

static void mark_connected(struct sy_request *req)
{
    req->up->connected = true;
    connect_wait(req, -1);
}

static void detach_upstream(struct sy_request *req, bool reusable)
{
    struct sy_upstream *up = req->up;
    if (!up)
        return;
    req->up = NULL;
    if (!up->connected)
        connect_wait(req, -1);
    sy_balance_done(req->pool, req->hw->w->id, req->instance);
    if (reusable)
        sy_upstream_release(up, true, (unsigned)req->pool->keepalive);
    else
        sy_upstream_close(up);
}

void sy_proxy_abort(struct sy_request *req)
{
    sy_modules_abandon(req);
    drop_gzip(req);
    sy_tunnel_abort(req);
    detach_upstream(req, false);
}

void sy_proxy_detach(struct sy_request *req)
{
    detach_upstream(req, false);
}

static bool idempotent(enum sy_method m)
{
    return m == SY_METHOD_GET || m == SY_METHOD_HEAD || m == SY_METHOD_OPTIONS ||
           m == SY_METHOD_PUT || m == SY_METHOD_DELETE || m == SY_METHOD_TRACE;
}

/* Whether sending the request again cannot do what the client did not ask twice. */
static bool can_resend(const struct sy_request *req, enum failure f)
{
    if (req->response_started)
        return false;
    if (f == FAIL_CONNECT)
        return true;
    /* Nothing of the body may be lost: it was relayed from a buffer since reused. */
    if (req->req_relay.body_bytes > 0)
        return false;
    return (f == FAIL_SEND || f == FAIL_NO_RESPONSE) && idempotent(req->head.method);
}

static bool retryable(const struct sy_request *req, enum failure f)
{
    return req->attempts <= req->pool->retries && can_resend(req, f);
}

/* Passive health: an upstream-origin failure of req's instance. */
static void passive_failure(struct sy_request *req, const char *why)
{
    const struct sy_pool *pool = req->pool;
    int64_t ms = sy_live_failure(pool, req->instance, sy_worker_now_ms(req->hw->w));

    if (ms <= 0)
        return;
    sy_log_error(SY_LOG_WARN, "health", "pool %s instance %s ejected for %lld ms after %d "
                 "failures in a row (last: %s)", pool->name, req->instance->addr.text,
                 (long long)ms, pool->passive.max_fails, why);
    const struct sy_log_field fields[] = {
        {.name = "pool", .str = pool->name},
        {.name = "instance", .str = req->instance->addr.text},
        {.name = "health", .str = "ejected"},
        {.name = "eject_ms", .num = ms},
    };
    sy_log_security("health_change", "", "", why, fields, sizeof(fields) / sizeof(fields[0]));
}

static void upstream_failed(struct sy_request *req, enum failure f, const char *why)
{
    bool stale = req->up && req->up->requests > 1 && (f == FAIL_SEND || f == FAIL_NO_RESPONSE);

    detach_upstream(req, false);
    if (stale && can_resend(req, f)) {
        /*
         * A reused keep-alive connection the app had already closed: not
         * the instance's fault, so it neither counts as an attempt nor
         * excludes the instance.
         */
        req->attempts--;
        if (req->instance->index < 64)
            req->tried &= ~(1ULL << req->instance->index);
        connect_upstream(req);
        return;
    }
    sy_log_error(SY_LOG_WARN, "proxy", "pool %s instance %s: %s (request %s)", req->pool->name,
                 req->instance->addr.text, why, req->request_id);
    passive_failure(req, why);
    if (retryable(req, f)) {
        connect_upstream(req);
        return;
    }
    if (req->response_started) {
        req->client_keepalive = false;
        req->ds->abort(req);
        return;
    }
    req->client_keepalive = req->client_keepalive && req->req_relay.complete;
    sy_respond_local(req, f == FAIL_TIMEOUT ? 504 : 502, why);
}

static void up_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct sy_upstream *up = arg;
    struct sy_request *req = up->req;
    (void)fd;

    if (req->state == SY_REQ_TUNNEL) {
        sy_tunnel_step(req);
        return;
    }
    if (what & EV_TIMEOUT) {
        if (req->state == SY_REQ_CONNECTING)
            upstream_failed(req, FAIL_CONNECT, "connect timed out");
        else
            upstream_failed(req, FAIL_TIMEOUT, "timed out sending the request");
        return;
    }
    if (req->state == SY_REQ_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(up->io.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            char why[128];
            snprintf(why, sizeof(why), "connect failed: %s", strerror(err));
            upstream_failed(req, FAIL_CONNECT, why);
            return;
        }
        if (req->pool->tls_client && upstream_handshake(req) <= 0)
            return;
        mark_connected(req);
        if (begin_sending(req) < 0) {
            upstream_failed(req, FAIL_BAD_RESPONSE, "out of memory");
            return;
        }
    }
    proxy_step(req);
}

static void up_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct sy_upstream *up = arg;
    struct sy_request *req = up->req;
    (void)fd;

    if (!req) {
        /*
         * Idle in the keep-alive pool: the app closed it, sent junk, or it
         * aged out - or, on TLS, sent a record with no data (a session
         * ticket), which leaves the connection as good as before.
         */
        char byte;
        if (!(what & EV_TIMEOUT) && up->io.tls && sy_io_read(&up->io, &byte, 1) < 0 &&
            errno == EAGAIN)
            return;
        sy_upstream_close(up);
        return;
    }
    if (req->state == SY_REQ_TUNNEL) {
        sy_tunnel_step(req);
        return;
    }
    if (what & EV_TIMEOUT) {
        if (req->state == SY_REQ_SENDING_RESPONSE_BODY) {
            sy_log_error(SY_LOG_WARN, "proxy", "pool %s instance %s: response body timed out "
                         "(request %s)", req->pool->name, req->instance->addr.text, req->request_id);
            passive_failure(req, "response body timed out");
            req->ds->abort(req);
        } else {
            upstream_failed(req, FAIL_TIMEOUT, "upstream timed out");
        }
        return;
    }
    if (req->state == SY_REQ_SENDING_HEAD || req->state == SY_REQ_SENDING_BODY) {
        /*
         * The app speaks before it has the whole request. Interim replies
         * (103) are dropped and sending goes on; a final answer (say, a 413)
         * ends the upload, and then neither connection can be reused.
         */
        if (read_response_head(req, false) <= 0)
            return;
        req->ds->pause(req, EV_READ);
        event_del(&up->wev);
        req->state = SY_REQ_WAITING_RESPONSE;
    }
    proxy_step(req);
}

static void attach_upstream(struct sy_request *req, struct sy_upstream *up)
{
    struct event_base *base = req->hw->w->base;

    req->up = up;
    up->req = req;
    if (up->requests++ == 0) {
        /* Assigned once: the read event stays registered while the connection lives. */
        event_assign(&up->rev, base, up->io.fd, EV_READ | EV_PERSIST, up_on_read, up);
        event_assign(&up->wev, base, up->io.fd, EV_WRITE, up_on_write, up);
    }
}

/* Queues body bytes already buffered behind a head, so both leave in one writev. */
static int queue_ready_body(struct sy_iovq *q, struct sy_relay *r, struct sy_buf *buf)
{
    enum sy_relay_status st = sy_relay_scan(r, buf);
    if (st == SY_RELAY_INVALID || st == SY_RELAY_TOO_LARGE)
        return 0;               /* the body relay reports it once the head is out */
    return sy_iovq_push(q, buf->data + r->out_start, sy_relay_pending(r));
}

/* Each attempt writes a fresh head (the instance may differ) and parses a fresh response. */
static int begin_sending(struct sy_request *req)
{
    req->resp.headers = req->resp_headers;
    sy_http_head_reset(&req->resp);
    req->state = SY_REQ_SENDING_HEAD;
    req->upstream_start_us = sy_now_us();
    if (build_request_head(req) < 0)
        return -1;
    return queue_ready_body(&req->out, &req->req_relay, req->in);
}

/*
 * Idle connections are shared by address and, for TLS, by the name sent
 * and verified: a connection to the same address under another name (or
 * in plain text) is not interchangeable.
 */
static struct sy_peer *find_peer(struct sy_request *req)
{
    const struct sy_addr *a = &req->instance->addr;
    char name[256];

    if (req->pool->tls_client && sy_tls_addr_host(a, name, sizeof(name)) < 0)
        return NULL;
    return sy_peer_get(req->hw, (const struct sockaddr *)&a->ss, a->len,
                       req->pool->tls_client ? name : NULL);
}

/*
 * TLS toward the instance, within its connect timeout. Returns 1 when the
 * handshake is done, 0 when it waits, -1 when the attempt failed.
 */
static int upstream_handshake(struct sy_request *req)
{
    struct sy_upstream *up = req->up;
    char why[320], reason[256];

    if (!sy_io_tls(&up->io)) {
        struct sy_tls_conn *t = sy_tls_connect(req->pool->tls_client, up->io.fd,
                                               up->peer->tls_name);
        if (!t || sy_io_start_tls(&up->io, req->hw->w->base, t) < 0) {
            upstream_failed(req, FAIL_CONNECT, "out of memory starting TLS");
            return -1;
        }
    }
    switch (sy_io_handshake(&up->io)) {
    case SY_TLS_OK:
        return 1;
    case SY_TLS_WANT_READ:
    case SY_TLS_WANT_WRITE:
        up_wait_write(req, req->pool->connect_timeout_ms);
        return 0;
    case SY_TLS_ERROR:
        break;
    }
    sy_tls_error_text(reason, sizeof(reason));
    snprintf(why, sizeof(why), "TLS handshake failed: %s", reason);
    upstream_failed(req, FAIL_CONNECT, why);
    return -1;
}

/* Panic mode is worth a line, but not one per request: one per worker per 10 s. */
static void log_panic(struct sy_request *req)
{
    int64_t now = sy_worker_now_ms(req->hw->w);

    if (now - req->hw->panic_logged_ms < 10000)
        return;
    req->hw->panic_logged_ms = now;
    sy_log_error(SY_LOG_WARN, "health", "pool %s has no usable instance: panic mode, serving "
                 "from all of them", req->pool->name);
}

static void connect_upstream(struct sy_request *req)
{
    struct sy_http_worker *hw = req->hw;

    for (;;) {
        uint32_t hash = 0;
        for (const char *p = req->client_ip; *p; p++)
            hash = hash * 31 + (unsigned char)*p;
        bool panic = false;
        req->instance = sy_balance_pick(req->pool, hw->w->id, req->tried, hash,
                                        sy_worker_now_ms(hw->w), &panic);
        if (!req->instance) {
            sy_respond_local(req, 502, "no instance of the pool could take the request");
            return;
        }
        if (panic)
            log_panic(req);
        if (req->instance->index < 64)
            req->tried |= 1ULL << req->instance->index;
        req->attempts++;
        struct sy_peer *peer = find_peer(req);
        struct sy_upstream *up = peer ? sy_upstream_take_idle(peer) : NULL;
        if (up) {
            attach_upstream(req, up);
            if (begin_sending(req) < 0) {
                upstream_failed(req, FAIL_BAD_RESPONSE, "out of memory");
                return;
            }
            proxy_step(req);
            return;
        }
        up = peer ? sy_upstream_connect(hw, peer) : NULL;
        if (up) {
            attach_upstream(req, up);
            connect_wait(req, 1);
            req->state = SY_REQ_CONNECTING;
            up_wait_write(req, req->pool->connect_timeout_ms);
            return;
        }
        sy_balance_done(req->pool, hw->w->id, req->instance);
        sy_log_error(SY_LOG_WARN, "proxy", "pool %s instance %s: connect failed: %s",
                     req->pool->name, req->instance->addr.text, strerror(errno));
        if (errno != EMFILE && errno != ENFILE && errno != ENOMEM && errno != ENOBUFS)
            passive_failure(req, "connect failed");
        if (!retryable(req, FAIL_CONNECT)) {
            sy_respond_local(req, 502, "connect failed");
            return;
        }
    }
}

/* ---- starting a request ------------------------------------------------- */

static bool upgrade_is_websocket(const struct sy_http_head *h, const char *data)
{
    int i = sy_http_find(h, SY_HDR_UPGRADE);
    return i >= 0 && h->headers[i].value.len == 9 &&
           strncasecmp(data + h->headers[i].value.off, "websocket", 9) == 0;
}

static enum sy_relay_mode request_relay_mode(const struct sy_http_head *h)
{
    switch (h->body) {
    case SY_BODY_LENGTH: return SY_RELAY_LENGTH;
    case SY_BODY_CHUNKED: return SY_RELAY_CHUNKED;
    default: return SY_RELAY_NONE;
    }
}

/*
 * routes[].https_redirect on a plain connection: 308 to the same target on
 * the TLS listener. Only for a host one of its certificates names, so the
 * gateway never redirects to a host it does not serve (421 then).
 */
static void redirect_https(struct sy_request *req, const char *data)
{
    const struct sy_http_head *h = &req->head;
    const struct sy_conf *conf = req->conf;
    const struct sy_listen *tls = NULL;
    char host[256], location[SY_HTTPS_LOCATION_MAX + 32], port[16] = "";

    for (size_t i = 0; !tls && i < conf->nlisten; i++)
        if (conf->listen[i].tls_server)
            tls = &conf->listen[i];
    /* the host without its port; an IP literal in brackets is never in a certificate */
    size_t n = h->host.len;
    const char *colon = memchr(data + h->host.off, ':', n);
    if (colon)
        n = (size_t)(colon - (data + h->host.off));
    if (!tls || n == 0 || n >= sizeof(host)) {
        sy_respond_local(req, 421, "host not served over https");
        return;
    }
    memcpy(host, data + h->host.off, n);
    host[n] = '\0';
    if (!sy_tls_server_serves(tls->tls_server, host)) {
        sy_respond_local(req, 421, "host not served over https");
        return;
    }
    unsigned tls_port = ntohs(tls->addr.ss.ss_family == AF_INET6
                              ? ((const struct sockaddr_in6 *)&tls->addr.ss)->sin6_port
                              : ((const struct sockaddr_in *)&tls->addr.ss)->sin_port);
    if (tls_port != 443)
        snprintf(port, sizeof(port), ":%u", tls_port);
    /* origin-form as sent; absolute-form ("http://h/p?q") as its path and query */
    const char *path = data + (h->absolute_form ? h->path.off : h->target.off);
    size_t path_len = h->absolute_form ? h->path.len : h->target.len;
    const char *q = h->absolute_form && h->query.len ? data + h->query.off : "";
    size_t q_len = h->absolute_form && h->query.len ? h->query.len : 0;
    int len = snprintf(location, sizeof(location), "Location: https://%s%s%s%.*s%s%.*s\r\n",
                       host, port, path_len ? "" : "/", (int)path_len, path,
                       q_len ? "?" : "", (int)q_len, q);
    if (len < 0 || (size_t)len >= sizeof(location)) {
        sy_respond_local(req, 414, "target too long to redirect");
        return;
    }
    sy_respond_local_with(req, 308, "use https", location);
}

void sy_proxy_start(struct sy_request *req)
{
    const struct sy_http_head *h = &req->head;
    const struct sy_conf *conf = req->conf;
    const char *data = req->in->data;
    uint64_t max_body = (uint64_t)conf->limits.max_body_bytes;

    sy_relay_init(&req->req_relay, request_relay_mode(h), h->content_length, h->head_len,
                  max_body);
    sy_relay_trailer_limits(&req->req_relay, (uint32_t)conf->limits.max_header_bytes,
                            (uint32_t)conf->limits.max_headers);
    identify_client(req);
    /* matched first so that the modules' logs name it; a 404 waits for access control */
    req->route = sy_route_match(conf, data + h->host.off, h->host.len, data + h->path.off,
                                h->path.len);
    if (sy_modules_client(req) == SY_PHASE_DONE)
        return;
    if (h->body == SY_BODY_LENGTH && max_body && h->content_length > max_body) {
        sy_respond_local(req, 413, "request body too large");
        return;
    }
    if (!req->route || !req->route->service) {
        sy_respond_local(req, 404, "no route for this host and path");
        return;
    }
    /* RFC 6455: a GET over HTTP/1.1 with Connection: upgrade and Upgrade: websocket. */
    req->websocket = h->upgrade && h->method == SY_METHOD_GET && h->version_minor == 1 &&
                     h->body == SY_BODY_NONE && upgrade_is_websocket(h, data);
    if (req->route->https_redirect && !req->client->io.tls) {
        redirect_https(req, data);
        return;
    }
    req->service = req->route->service;
    if (sy_modules_route(req) != SY_PHASE_CONTINUE)     /* answered, or a module waits */
        return;
    sy_proxy_continue(req);
}

void sy_proxy_continue(struct sy_request *req)
{
    const struct sy_http_head *h = &req->head;
    const char *data = req->in->data;

    struct sy_split split = sy_split_pick(req->service, h, data, req->client_ip, &req->hw->rng);
    req->slot = split.slot;
    req->set_cookie = split.set_cookie;
    req->cookie_bucket = split.bucket;
    req->pool = req->service->slot_pool[req->slot];
    connect_upstream(req);
}

/* ---- moving bytes ------------------------------------------------------- */

/*
 * Returns 1 to go on, 0 when waiting for an event, -1 when the request ended.
 * 100-continue is answered when the app is connected and the body is wanted.
 */
static int relay_request_body(struct sy_request *req)
{
    struct sy_relay *r = &req->req_relay;

    if (!req->continue_sent) {
        req->continue_sent = true;
        if (req->ds->send_continue(req) < 0) {
            req->ds->abort(req);
            return -1;
        }
    }
    for (;;) {
        enum sy_relay_status st = sy_relay_scan(r, req->in);
        if (st == SY_RELAY_INVALID || st == SY_RELAY_TOO_LARGE) {
            req->client_keepalive = false;
            detach_upstream(req, false);
            sy_respond_local(req, st == SY_RELAY_TOO_LARGE ? 413 : 400,
                             st == SY_RELAY_TOO_LARGE ? "request body too large" : r->error);
            return -1;
        }
        if (sy_relay_pending(r)) {
            ssize_t n = sy_io_write(&req->up->io, req->in->data + r->out_start,
                                    sy_relay_pending(r));
            if (n < 0 && errno == EAGAIN) {
                req->ds->pause(req, EV_READ);
                up_wait_write(req, req->pool->read_timeout_ms);
                up_wait_read(req, 0);
                return 0;
            }
            if (n < 0) {
                upstream_failed(req, FAIL_SEND, "request body write failed");
                return -1;
            }
            r->out_start += (uint32_t)n;
            continue;
        }
        if (r->complete)
            return 1;
        sy_relay_rewind(r, req->in);
        ssize_t n = req->ds->read_body(req);
        if (n > 0)
            continue;
        if (n == 0) {
            event_del(&req->up->wev);
            up_wait_read(req, 0);
            return 0;
        }
        req->ds->abort(req);    /* the client went away in the middle of its body */
        return -1;
    }
}

/*
 * Reads and parses the response head, dropping interim (1xx) replies.
 * Returns 1 with a final head, 0 when more bytes are needed (waiting: the
 * read event is armed up to the response deadline; while still sending, it
 * is left as the sender set it), -1 when the request failed.
 */
static int read_response_head(struct sy_request *req, bool waiting)
{
    struct sy_upstream *up = req->up;
    struct sy_buf *in = up->in;
    const struct sy_limits *lim = &req->conf->limits;
    struct sy_parse_limits pl = {
        .max_head_bytes = (uint32_t)lim->max_header_bytes,
        .max_uri_bytes = (uint32_t)lim->max_uri_bytes,
        .max_headers = req->headers_cap,
    };

    if (!in && !(in = up->in = sy_buf_get(&req->hw->w->bufs))) {
        upstream_failed(req, FAIL_BAD_RESPONSE, "out of buffers");
        return -1;
    }
    for (;;) {
        if (in->end > 0) {
            enum sy_parse_status st = sy_http_parse_response(&req->resp, in->data, in->end, &pl,
                                                             req->head.method);
            if (st == SY_PARSE_ERROR) {
                upstream_failed(req, FAIL_BAD_RESPONSE, req->resp.error_reason);
                return -1;
            }
            if (st == SY_PARSE_DONE && req->resp.status == 101) {
                if (req->websocket && req->resp.upgrade && upgrade_is_websocket(&req->resp, in->data))
                    return 1;
                /* Only a WebSocket upgrade we forwarded may be answered with 101. */
                upstream_failed(req, FAIL_BAD_RESPONSE, "unexpected 101 Switching Protocols");
                return -1;
            }
            if (st == SY_PARSE_DONE && req->resp.status >= 100 && req->resp.status < 200) {
                /* Interim responses are not relayed; 100-continue is ours. */
                uint32_t rest = in->end - req->resp.head_len;
                memmove(in->data, in->data + req->resp.head_len, rest);
                in->end = rest;
                sy_http_head_reset(&req->resp);
                continue;
            }
            if (st == SY_PARSE_DONE)
                return 1;
            if (sy_buf_room(in) == 0) {
                upstream_failed(req, FAIL_BAD_RESPONSE, "response head too large");
                return -1;
            }
        }
        ssize_t n = sy_io_read(&up->io, in->data + in->end, sy_buf_room(in));
        if (n > 0) {
            in->end += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            if (waiting) {
                /* A deadline, so that a stream of 1xx replies cannot hold the request forever. */
                int64_t left = req->response_deadline_ms - sy_worker_now_ms(req->hw->w);
                up_wait_read(req, left > 0 ? left : 1);
            }
            return 0;
        }
        upstream_failed(req, in->end ? FAIL_BAD_RESPONSE : FAIL_NO_RESPONSE,
                        in->end ? "connection closed inside the response head"
                                : "connection closed before any response");
        return -1;
    }
}

static void bad_response_body(struct sy_request *req, const char *why)
{
    sy_log_error(SY_LOG_WARN, "proxy", "pool %s instance %s: bad response body: %s "
                 "(request %s)", req->pool->name, req->instance->addr.text, why,
                 req->request_id);
    req->ds->abort(req);
}

/*
 * Response body bytes to the client. Returns how many went (> 0); 0 when
 * the client is full, and then the app is not read until it drains
 * (backpressure: one buffer each way); -1 when the client went away.
 */
static ssize_t body_to_client(struct sy_request *req, const char *p, size_t len, bool last)
{
    ssize_t n = req->ds->send_body(req, p, len, last);

    if (n == 0) {
        event_del(&req->up->rev);
        return 0;
    }
    if (n < 0) {
        req->ds->abort(req);
        return -1;
    }
    req->bytes_out += (uint64_t)n;
    return n;
}

/*
 * More of the body from the app into up->in. Returns 1 when bytes came or
 * the body ended with the connection, 0 when none are there yet (nothing
 * armed: the caller may flush first, then wait_for_app), -1 on failure.
 */
static int body_from_app(struct sy_request *req)
{
    struct sy_upstream *up = req->up;
    struct sy_relay *r = &req->resp_relay;

    sy_relay_rewind(r, up->in);
    ssize_t n = sy_io_read(&up->io, up->in->data + up->in->end, sy_buf_room(up->in));
    if (n > 0) {
        up->in->end += (uint32_t)n;
        return 1;
    }
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (sy_relay_eof(r) == SY_RELAY_COMPLETE)
        return 1;
    sy_log_error(SY_LOG_WARN, "proxy", "pool %s instance %s: %s (request %s)",
                 req->pool->name, req->instance->addr.text, r->error, req->request_id);
    req->ds->abort(req);
    return -1;
}

static void wait_for_app(struct sy_request *req)
{
    req->ds->pause(req, EV_WRITE);
    up_wait_read(req, req->pool->read_timeout_ms);
}

/* Runs the gzip stream on what the relay has ready; at the end of the body, finishes it. */
static int gzip_step(struct sy_request *req, enum sy_gzip_flush flush)
{
    struct sy_relay *r = &req->resp_relay;
    size_t used;

    if (r->complete)
        flush = SY_GZIP_FINISH;
    if (sy_gzip_fill(req->gzip, req->up->in->data + r->out_start, sy_relay_pending(r), flush,
                     &used) < 0) {
        bad_response_body(req, "gzip failed");
        return -1;
    }
    r->out_start += (uint32_t)used;
    return 0;
}

/*
 * The body through the gzip stream: plain body bytes from up->in go into
 * zlib, its output to the client from gzip->out, with the backpressure of
 * relay_response_body. When the app pauses, what it sent so far is
 * flushed, so that a slow stream still arrives as it comes.
 */
static int relay_gzip_body(struct sy_request *req)
{
    struct sy_relay *r = &req->resp_relay;
    struct sy_gzip *gz = req->gzip;

    for (;;) {
        if (sy_buf_len(gz->out)) {
            ssize_t n = body_to_client(req, gz->out->data + gz->out->start, sy_buf_len(gz->out),
                                       gz->finished);
            if (n <= 0)
                return (int)n;
            gz->out->start += (uint32_t)n;
            continue;
        }
        if (gz->finished)
            return 1;
        if (sy_relay_scan(r, req->up->in) == SY_RELAY_INVALID) {
            bad_response_body(req, r->error);
            return -1;
        }
        if (sy_relay_pending(r) || r->complete) {
            if (gzip_step(req, SY_GZIP_MORE) < 0)
                return -1;
            continue;
        }
        int got = body_from_app(req);
        if (got < 0)
            return -1;
        if (got == 0 && gz->dirty) {
            if (gzip_step(req, SY_GZIP_SYNC) < 0)
                return -1;
            continue;
        }
        if (got == 0) {
            wait_for_app(req);
            return 0;
        }
    }
}

static int relay_response_body(struct sy_request *req)
{
    struct sy_upstream *up = req->up;
    struct sy_relay *r = &req->resp_relay;

    if (req->gzip)
        return relay_gzip_body(req);
    for (;;) {
        if (sy_relay_scan(r, up->in) == SY_RELAY_INVALID) {
            bad_response_body(req, r->error);
            return -1;
        }
        if (r->complete && r->trailer_len && !req->trailers_sent) {
            /* before the last bytes: HTTP/2 ends the stream with them */
            req->trailers_sent = true;
            req->ds->send_trailers(req, up->in->data + r->out_end, r->trailer_len);
        }
        if (sy_relay_pending(r)) {
            ssize_t n = body_to_client(req, up->in->data + r->out_start, sy_relay_pending(r),
                                       r->complete);
            if (n <= 0)
                return (int)n;
            r->out_start += (uint32_t)n;
            continue;
        }
        if (r->complete)
            return 1;
        int got = body_from_app(req);
        if (got == 0)
            wait_for_app(req);
        if (got <= 0)
            return got;
    }
}

/*
 * Either connection is reused only at a message boundary: the app's only
 * if it got the whole request and sent nothing past its response, the
 * client's only if its whole body was read.
 */
static void finish(struct sy_request *req)
{
    struct sy_upstream *up = req->up;
    bool reusable = req->upstream_reusable && req->request_sent &&
                    req->resp_relay.scan == up->in->end;

    if (!req->req_relay.complete)
        req->client_keepalive = false;
    drop_gzip(req);
    detach_upstream(req, reusable);
    req->ds->done(req);
}

/*
 * Advances the request as far as it can without blocking. Each state
 * either completes and falls to the next, or arms the event it waits for.
 */
static void proxy_step(struct sy_request *req)
{
    int rc;

    for (;;) {
        switch (req->state) {
        case SY_REQ_SENDING_HEAD:
            if (sy_iovq_write(&req->out, &req->up->io) < 0) {
                if (errno == EAGAIN) {
                    up_wait_write(req, req->pool->read_timeout_ms);
                    return;
                }
                upstream_failed(req, FAIL_SEND, "request head write failed");
                return;
            }
            req->out.n = 0;
            req->req_relay.out_start = req->req_relay.out_end;   /* went with the head */
            req->state = SY_REQ_SENDING_BODY;
            break;
        case SY_REQ_SENDING_BODY:
            if ((rc = relay_request_body(req)) <= 0)
                return;
            event_del(&req->up->wev);
            req->ds->body_read(req);    /* the body timeout no longer applies */
            req->request_sent = true;
            req->state = SY_REQ_WAITING_RESPONSE;
            req->response_deadline_ms = sy_worker_now_ms(req->hw->w) + req->pool->read_timeout_ms;
            /* The answer cannot be there yet: wait for epoll rather than try a read. */
            up_wait_read(req, req->pool->read_timeout_ms);
            return;
        case SY_REQ_WAITING_RESPONSE:
            if ((rc = read_response_head(req, true)) <= 0)
                return;
            req->upstream_head_us = sy_now_us();
            sy_metrics_record_upstream(req->hw->metrics, req->instance->metric_id,
                                       (uint64_t)(req->upstream_head_us - req->upstream_start_us),
                                       req->resp.status >= 500);
            if (req->resp.status >= 502 && req->resp.status <= 504)
                passive_failure(req, "the app answered 502, 503 or 504");
            else
                sy_live_success(req->instance, sy_worker_now_ms(req->hw->w));
            /* a gzip body is not sent with the head: it goes through zlib first */
            if (build_response_head(req) < 0 ||
                (!req->gzip && !req->ds->framed_body &&
                 queue_ready_body(&req->out, &req->resp_relay, req->up->in) < 0)) {
                upstream_failed(req, FAIL_BAD_RESPONSE, "out of memory");
                return;
            }
            req->state = SY_REQ_SENDING_RESPONSE_HEAD;
            break;
        case SY_REQ_SENDING_RESPONSE_HEAD:
            if ((rc = req->ds->send_head(req)) <= 0) {
                if (rc == 0)
                    event_del(&req->up->rev);   /* backpressure: stop reading the app */
                else
                    req->ds->abort(req);
                return;
            }
            req->bytes_out += sy_relay_pending(&req->resp_relay);
            req->resp_relay.out_start = req->resp_relay.out_end;  /* went with the head */
            req->resp_relay.base = 0;   /* the head is sent: the body may use the whole buffer */
            if (req->resp.status == 101) {
                sy_tunnel_start(req);
                return;
            }
            req->state = SY_REQ_SENDING_RESPONSE_BODY;
            break;
        case SY_REQ_SENDING_RESPONSE_BODY:
            if ((rc = relay_response_body(req)) <= 0)
                return;
            finish(req);
            return;
        default:
            return;
        }
    }
}

void sy_proxy_on_client_readable(struct sy_request *req)
{
    if (req->state == SY_REQ_TUNNEL)
        sy_tunnel_step(req);
    else if (req->state == SY_REQ_SENDING_BODY)
        proxy_step(req);
    else
        req->ds->pause(req, EV_READ);   /* pipelined bytes or a close: read them later */
}

void sy_proxy_on_client_writable(struct sy_request *req)
{
    if (req->state == SY_REQ_TUNNEL)
        sy_tunnel_step(req);
    else if (req->state == SY_REQ_SENDING_RESPONSE_HEAD || req->state == SY_REQ_SENDING_RESPONSE_BODY)
        proxy_step(req);
}

void sy_proxy_on_client_timeout(struct sy_request *req, short what)
{
    (void)what;
    if (req->state == SY_REQ_SENDING_BODY && !req->response_started) {
        req->client_keepalive = false;
        detach_upstream(req, false);
        sy_respond_local(req, 408, "client body timeout");
        return;
    }
    req->ds->abort(req);
}
