/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conn.c: client connections: accept, TLS handshake (ALPN h2 hands the
 * connection to h2.c), read a request head, hand the request to the proxy,
 * then keep the connection alive (holding no buffer while idle), serve
 * pipelined requests in order, or close it. The HTTP/1.1 downstream calls
 * (struct sy_downstream_ops) are here, and the responses the gateway
 * writes itself (errors, 404) for either protocol.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "balance.h"
#include "compress.h"
#include "conn.h"
#include "core/log.h"
#include "core/metrics.h"
#include "h2.h"
#include "http.h"
#include "modules.h"
#include "tls.h"

static void client_on_read(evutil_socket_t fd, short what, void *arg);
static void client_on_write(evutil_socket_t fd, short what, void *arg);
static const struct sy_downstream_ops h1_downstream;

static struct timeval ms_tv(int64_t ms)
{
    if (ms < 0)
        ms = 0;
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
}

int sy_event_arm(struct event *ev, int64_t timeout_ms)
{
    if (timeout_ms > 0) {
        struct timeval tv = ms_tv(timeout_ms);
        return event_add(ev, &tv);
    }
    if (event_add(ev, NULL) < 0)
        return -1;
    return event_remove_timer(ev);
}

static int client_read_ready(struct sy_client *c, int64_t timeout_ms)
{
    return sy_io_wait(&c->io, &c->rev, EV_READ, timeout_ms);
}

static int client_write_ready(struct sy_client *c, int64_t timeout_ms)
{
    return sy_io_wait(&c->io, &c->req->client_wev, EV_WRITE, timeout_ms);
}

/* ---- requests ---------------------------------------------------------- */

/* Request objects kept for reuse per worker; a burst beyond goes back to malloc. */
#define REQUESTS_CACHED 64

static void destroy_request(struct sy_request *req)
{
    free(req->headers);
    free(req->resp_headers);
    free(req->out.iov);
    free(req->extra);
    free(req);
}

struct sy_request *sy_request_new(struct sy_client *c, const struct sy_downstream_ops *ds)
{
    struct sy_http_worker *hw = c->hw;
    struct sy_request *req = hw->free_requests;

    if (req) {
        hw->free_requests = req->next_free;
        hw->nfree_requests--;
    } else {
        req = calloc(1, sizeof(*req));
        if (!req)
            return NULL;
    }
    struct sy_header *headers = req->headers, *resp_headers = req->resp_headers;
    uint32_t cap = req->headers_cap;
    struct sy_iovq out = req->out;
    char *extra = req->extra;
    size_t extra_cap = req->extra_cap;

    memset(req, 0, sizeof(*req));
    req->conf = sy_worker_conf_acquire(hw->w);
    uint32_t need = (uint32_t)req->conf->limits.max_headers;
    if (cap < need) {
        free(headers);
        free(resp_headers);
        headers = malloc(need * sizeof(*headers));
        resp_headers = malloc(need * sizeof(*resp_headers));
        cap = need;
        if (!headers || !resp_headers) {
            free(headers);
            free(resp_headers);
            headers = resp_headers = NULL;
            cap = 0;
        }
    }
    req->headers = headers;
    req->resp_headers = resp_headers;
    req->headers_cap = cap;
    out.n = out.pos = 0;
    req->out = out;
    req->extra = extra;
    req->extra_cap = extra_cap;
    req->client = c;
    req->ds = ds;
    req->hw = hw;
    req->state = SY_REQ_READING_HEAD;
    req->start_us = sy_now_us();
    req->start_wall_ms = sy_worker_now_ms(hw->w);
    event_assign(&req->client_wev, hw->w->base, c->io.fd, EV_WRITE, client_on_write, c);
    sy_addr_ip_text(&c->peer.sa, req->peer_ip, sizeof(req->peer_ip));
    req->head.headers = headers;
    sy_http_head_reset(&req->head);
    req->resp.headers = resp_headers;
    sy_http_head_reset(&req->resp);
    if (!headers) {
        sy_worker_conf_release(hw->w, req->conf);
        req->conf = NULL;
        destroy_request(req);
        return NULL;
    }
    return req;
}

static void request_free(struct sy_request *req)
{
    struct sy_http_worker *hw = req->hw;

    sy_io_forget(&req->client->io, &req->client_wev);
    event_del(&req->client_wev);
    sy_worker_conf_release(hw->w, req->conf);
    req->conf = NULL;
    if (hw->nfree_requests >= REQUESTS_CACHED) {
        destroy_request(req);
        return;
    }
    req->next_free = hw->free_requests;
    hw->free_requests = req;
    hw->nfree_requests++;
}

static void free_request_list(struct sy_http_worker *hw)
{
    while (hw->free_requests) {
        struct sy_request *req = hw->free_requests;
        hw->free_requests = req->next_free;
        destroy_request(req);
    }
    hw->nfree_requests = 0;
}

/* ---- reading a request head --------------------------------------------- */

static void read_head(struct sy_client *c);

static void dispatch(struct sy_client *c)
{
    struct sy_request *req = c->req;

    c->state = SY_CLIENT_BUSY;
    sy_event_arm(&c->rev, 0);   /* stays registered (no epoll_ctl); the head timeout goes */
    req->client_keepalive = req->head.keep_alive && !c->hw->draining;
    req->in = c->in;
    sy_proxy_start(req);
}

static void security_bad_request(const struct sy_request *req, const char *reason, int status)
{
    const struct sy_log_field status_field = {.name = "status", .num = status};

    sy_log_security("bad_request", req->peer_ip, "", reason, &status_field, 1);
}

void sy_request_reject(struct sy_request *req, int status, const char *reason)
{
    security_bad_request(req, reason, status);
    req->client_keepalive = false;
    sy_respond_local(req, status, reason);
}

static void reject_head(struct sy_client *c, int status, const char *reason)
{
    c->state = SY_CLIENT_BUSY;
    event_del(&c->rev);
    c->req->in = c->in;
    sy_request_reject(c->req, status, reason);
}

static int parse_head(struct sy_client *c)
{
    struct sy_request *req = c->req;
    const struct sy_limits *lim = &req->conf->limits;
    struct sy_parse_limits pl = {
        .max_head_bytes = (uint32_t)lim->max_header_bytes,
        .max_uri_bytes = (uint32_t)lim->max_uri_bytes,
        .max_headers = req->headers_cap,
    };

    enum sy_parse_status st = sy_http_parse_request(&req->head, c->in->data, c->in->end, &pl);
    if (st == SY_PARSE_DONE) {
        dispatch(c);
        return 1;
    }
    if (st == SY_PARSE_ERROR) {
        reject_head(c, req->head.error_status, req->head.error_reason);
        return 1;
    }
    if (sy_buf_room(c->in) == 0) {
        reject_head(c, 431, "request head too large");
        return 1;
    }
    return 0;
}

static void read_head(struct sy_client *c)
{
    struct sy_http_worker *hw = c->hw;

    if (!c->in && !(c->in = sy_buf_get(&hw->w->bufs))) {
        sy_client_close(c);
        return;
    }
    if (!c->req) {
        if (!(c->req = sy_request_new(c, &h1_downstream))) {
            sy_client_close(c);
            return;
        }
        c->state = SY_CLIENT_READING_HEAD;
        c->head_deadline_ms = sy_worker_now_ms(hw->w) + c->req->conf->limits.client_header_timeout_ms;
    }
    for (;;) {
        if (c->in->end > 0 && parse_head(c))
            return;
        ssize_t n = sy_io_read(&c->io, c->in->data + c->in->end, sy_buf_room(c->in));
        if (n > 0) {
            c->in->end += (uint32_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            int64_t left = c->head_deadline_ms - sy_worker_now_ms(hw->w);
            client_read_ready(c, left > 0 ? left : 1);
            return;
        }
        /* EOF or error between requests is a normal close; inside a head it is an abort. */
        sy_client_close(c);
        return;
    }
}

/* ---- local responses ---------------------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 204: return "No Content";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* 32 hex digits: the worker's random prefix, then its request counter. */
void sy_request_new_id(struct sy_request *req)
{
    static const char hex[] = "0123456789abcdef";
    struct sy_http_worker *hw = req->hw;
    uint64_t seq = ++hw->request_seq;

    memcpy(req->request_id, hw->request_id_prefix, 16);
    for (int i = 31; i >= 16; i--, seq >>= 4)
        req->request_id[i] = hex[seq & 15];
    req->request_id[32] = '\0';
}

static void ensure_request_id(struct sy_request *req)
{
    if (!req->request_id[0])
        sy_request_new_id(req);
}

static void continue_local(struct sy_request *req)
{
    int rc = req->ds->send_head(req);

    if (rc == 0)
        return;
    if (rc < 0)
        req->client_keepalive = false;
    req->ds->done(req);
}

void sy_request_writable(struct sy_request *req)
{
    if (req->state == SY_REQ_LOCAL_RESPONSE)
        continue_local(req);
    else
        sy_proxy_on_client_writable(req);
}

/*
 * The head of a local response into req->extra, then the body: copied
 * after the head when copy (a small one), else queued as it is (the
 * caller keeps it in place until the request ends); either way the body
 * is an iovec of its own, as framed_body needs. A HEAD request gets the
 * head only, with the Content-Length the body would have had. The
 * connection is kept only when the request was read to its end.
 */
static void respond(struct sy_request *req, int status, const char *reason,
                    const char *content_type, const char *body, size_t blen, bool copy,
                    const char *headers)
{
    bool head_only = req->head.method == SY_METHOD_HEAD;

    ensure_request_id(req);
    if (!req->req_relay.complete)
        req->client_keepalive = false;
    if (!headers)
        headers = "";
    /* RFC 9110 8.6: no Content-Length (and no body) with a 204 */
    bool bodiless = status == 204;
    char framing[96];
    if (bodiless)
        framing[0] = '\0';
    else
        snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", blen);
    if (bodiless)
        blen = 0;
    size_t need = 512 + (content_type ? strlen(content_type) : 0) + strlen(headers) +
                  (copy ? blen : 0);
    if (req->extra_cap < need) {
        char *p = realloc(req->extra, need);
        if (!p) {
            req->ds->abort(req);
            return;
        }
        req->extra = p;
        req->extra_cap = need;
    }
    int hlen = snprintf(req->extra, req->extra_cap,
                        "HTTP/1.1 %d %s\r\n%s%s%s%sX-Request-ID: %s\r\n%sConnection: %s"
                        "\r\n\r\n",
                        status, status_text(status), content_type ? "Content-Type: " : "",
                        content_type ? content_type : "", content_type ? "\r\n" : "", framing,
                        req->request_id, headers, req->client_keepalive ? "keep-alive" : "close");
    size_t len = (size_t)hlen;
    if (head_only)
        blen = 0;
    if (copy) {
        memcpy(req->extra + len, body, blen);
        body = req->extra + len;
    }
    req->extra_len = len + (copy ? blen : 0);
    req->status = status;
    req->error_reason = reason;
    req->state = SY_REQ_LOCAL_RESPONSE;
    req->response_started = true;
    req->out.n = req->out.pos = 0;
    req->bytes_out += (uint64_t)len + blen;
    if (sy_iovq_push(&req->out, req->extra, len) < 0 ||
        sy_iovq_push(&req->out, body, blen) < 0) {
        req->ds->abort(req);
        return;
    }
    continue_local(req);
}

/* Answers with a small JSON body naming the reason and the request id. */
void sy_respond_local(struct sy_request *req, int status, const char *reason)
{
    sy_respond_local_with(req, status, reason, NULL);
}

void sy_respond_local_with(struct sy_request *req, int status, const char *reason,
                           const char *headers)
{
    char body[512];

    ensure_request_id(req);
    int blen = snprintf(body, sizeof(body),
                        "{\"error\":\"%s\",\"status\":%d,\"reason\":\"%s\",\"request_id\":\"%s\"}\n",
                        status_text(status), status, reason ? reason : "", req->request_id);
    respond(req, status, reason, "application/json", body,
            blen < (int)sizeof(body) ? (size_t)blen : sizeof(body) - 1, true, headers);
}

void sy_respond_local_body(struct sy_request *req, int status, const char *content_type,
                           const void *body, size_t len, const char *headers)
{
    respond(req, status, NULL, content_type, body, len, false, headers);
}

/* ---- the end of a request, keep-alive and close ------------------------- */

/*
 * Closing a socket with unread input makes the kernel send a reset, which
 * can destroy the response before the client has read it (RFC 9112 9.6).
 * So after answering a request whose body was not read, the gateway stops
 * writing and discards what still arrives, for a bounded time and amount.
 */
#define LINGER_MS        2000
#define LINGER_MAX_BYTES (8u << 20)

void sy_client_linger(struct sy_client *c)
{
    c->state = SY_CLIENT_LINGERING;
    c->head_deadline_ms = sy_worker_now_ms(c->hw->w) + LINGER_MS;
    c->lingered_bytes = 0;
    sy_buf_put(&c->hw->w->bufs, c->in);
    c->in = NULL;
    if (sy_io_shutdown_write(&c->io) < 0 || sy_event_arm(&c->rev, LINGER_MS) < 0)
        sy_client_close(c);
}

static void linger_read(struct sy_client *c)
{
    char sink[4096];

    /* Raw bytes, TLS or not: nothing more is decrypted after close_notify. */
    for (;;) {
        ssize_t n = read(c->io.fd, sink, sizeof(sink));
        if (n > 0) {
            c->lingered_bytes += (uint32_t)n;
            if (c->lingered_bytes > LINGER_MAX_BYTES)
                break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            int64_t left = c->head_deadline_ms - sy_worker_now_ms(c->hw->w);
            if (left > 0) {
                sy_event_arm(&c->rev, left);
                return;
            }
        }
        break;
    }
    sy_client_close(c);
}

static void go_idle(struct sy_client *c)
{
    sy_buf_put(&c->hw->w->bufs, c->in);
    c->in = NULL;
    c->state = SY_CLIENT_IDLE;
    client_read_ready(c, c->hw->w->conf->limits.keepalive_timeout_ms);
}

/*
 * A finished request into the metrics; a response cut short counts as an
 * error. A request the gateway answered before it picked a slot (a 429,
 * the maintenance page) belongs to its route but to neither slot: it must
 * not move a slot's latency or error rate, which rollouts are judged on.
 */
static void record_request(const struct sy_request *req, bool cut_short)
{
    bool split = req->service && req->pool;
    uint32_t service_slot = split ? req->service->metric_id[req->slot] : SY_METRICS_NONE;
    uint32_t route = req->route ? req->route->metric_route_id[split ? (int)req->slot
                                                                    : SY_ROUTE_SERIES_UNSPLIT]
                                : SY_METRICS_UNROUTED;

    sy_metrics_record_request(req->hw->metrics, service_slot, route, req->status,
                              (uint64_t)(sy_now_us() - req->start_us),
                              req->status >= 500 || cut_short);
}

void sy_request_log_end(struct sy_request *req, bool aborted)
{
    if (req->state == SY_REQ_READING_HEAD || req->state == SY_REQ_DONE)
        return;
    if (aborted) {
        sy_proxy_abort(req);
        if (!req->status)
            req->status = 499;      /* client closed first, as nginx logs it */
    }
    ensure_request_id(req);
    req->state = SY_REQ_DONE;
    sy_access_log(req);
    record_request(req, aborted && req->response_started && req->status != 101);
}

void sy_request_free(struct sy_request *req)
{
    request_free(req);
}

void sy_request_end(struct sy_request *req, bool aborted)
{
    sy_request_log_end(req, aborted);
    request_free(req);
}

void sy_client_request_done(struct sy_request *req)
{
    struct sy_client *c = req->client;
    /* A hand-over keeps the keep-alive a response head promised: the client may be sending. */
    bool keep = req->client_keepalive && !(c->hw->draining && c->hw->drain_closes_idle);
    bool unread_input = !req->req_relay.complete;
    uint32_t consumed = req->req_relay.scan ? req->req_relay.scan : req->head.head_len;

    c->req = NULL;
    c->requests++;
    sy_request_end(req, false);
    if (!keep) {
        if (unread_input && !c->hw->draining)
            sy_client_linger(c);
        else
            sy_client_close(c);
        return;
    }
    uint32_t left = c->in->end > consumed ? c->in->end - consumed : 0;
    if (left == 0) {
        go_idle(c);
        return;
    }
    /* Pipelined bytes: the next head starts at the buffer's beginning. */
    memmove(c->in->data, c->in->data + consumed, left);
    c->in->end = left;
    c->state = SY_CLIENT_READING_HEAD;
    event_active(&c->rev, EV_READ, 1);   /* from the loop, not by recursion */
}

void sy_client_close(struct sy_client *c)
{
    struct sy_http_worker *hw = c->hw;

    if (c->req) {
        struct sy_request *req = c->req;
        c->req = NULL;
        sy_request_end(req, true);
    }
    if (c->h2)
        sy_h2_free(c);          /* its streams' requests end as aborted */
    event_del(&c->rev);
    sy_io_close(&c->io);
    sy_buf_put(&hw->w->bufs, c->in);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    hw->nclients--;
    sy_worker_connection_closed(hw->w, &c->peer.sa);
    free(c);
}

/* ---- the HTTP/1.1 downstream -------------------------------------------- */

/* The response head as queued, body bytes behind it: one writev (framed_body false). */
static int h1_send_head(struct sy_request *req)
{
    struct sy_client *c = req->client;

    if (sy_iovq_write(&req->out, &c->io) == 0)
        return 1;
    if (errno != EAGAIN)
        return -1;
    client_write_ready(c, req->conf->limits.client_body_timeout_ms);
    return 0;
}

static ssize_t h1_send_body(struct sy_request *req, const char *p, size_t len, bool last)
{
    struct sy_client *c = req->client;
    (void)last;
    ssize_t n = sy_io_write(&c->io, p, len);

    if (n > 0)
        return n;
    if (n < 0 && errno == EAGAIN) {
        client_write_ready(c, req->conf->limits.client_body_timeout_ms);
        return 0;
    }
    return -1;
}

static ssize_t h1_read_body(struct sy_request *req)
{
    struct sy_client *c = req->client;
    ssize_t n = sy_io_read(&c->io, c->in->data + c->in->end, sy_buf_room(c->in));

    if (n > 0) {
        c->in->end += (uint32_t)n;
        return n;
    }
    if (n < 0 && errno == EAGAIN) {
        client_read_ready(c, req->conf->limits.client_body_timeout_ms);
        return 0;
    }
    return -1;                  /* the client went away in the middle of its body */
}

/* 100-continue is answered when the app is connected and the body is wanted. */
static int h1_send_continue(struct sy_request *req)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct sy_client *c = req->client;

    if (!req->head.expect_continue || c->in->end > req->head.head_len)
        return 0;
    ssize_t n = sy_io_write(&c->io, cont, sizeof(cont) - 1);
    return n == (ssize_t)sizeof(cont) - 1 ? 0 : -1;
}

static void h1_pause(struct sy_request *req, short what)
{
    if (what & EV_READ)
        event_del(&req->client->rev);
    if (what & EV_WRITE)
        event_del(&req->client_wev);
}

static void h1_body_read(struct sy_request *req)
{
    /* the read event stays registered (no epoll_ctl), without the body's timeout */
    if (event_pending(&req->client->rev, EV_READ, NULL))
        event_remove_timer(&req->client->rev);
}

static void h1_abort(struct sy_request *req)
{
    sy_client_close(req->client);
}

static const struct sy_downstream_ops h1_downstream = {
    .proto = NULL,
    .framed_body = false,
    .send_head = h1_send_head,
    .send_body = h1_send_body,
    .read_body = h1_read_body,
    .send_continue = h1_send_continue,
    .pause = h1_pause,
    .body_read = h1_body_read,
    .done = sy_client_request_done,
    .abort = h1_abort,
};

/* ---- TLS handshake ------------------------------------------------------ */

/* The handshake and the first request head share client_header_timeout_ms. */
static void handshake(struct sy_client *c)
{
    char why[256], ip[48];
    enum sy_tls_status st = sy_io_handshake(&c->io);

    if (st == SY_TLS_OK) {
        c->state = SY_CLIENT_IDLE;
        const char *alpn = sy_tls_alpn(sy_io_tls(&c->io));
        if (alpn && strcmp(alpn, "h2") == 0) {
            sy_h2_start(c);
            return;
        }
        if (sy_tls_pending(sy_io_tls(&c->io))) {
            read_head(c);
            return;
        }
    }
    if (st != SY_TLS_ERROR) {
        /* the first request is due by the same deadline */
        int64_t left = c->head_deadline_ms - sy_worker_now_ms(c->hw->w);
        if (client_read_ready(c, left > 0 ? left : 1) < 0)
            sy_client_close(c);
        return;
    }
    /* Scanners and old clients fail handshakes all day: a debug line, not an error. */
    sy_tls_error_text(why, sizeof(why));
    sy_addr_ip_text(&c->peer.sa, ip, sizeof(ip));
    sy_log_error(SY_LOG_DEBUG, "tls", "handshake with %s failed: %s", ip, why);
    sy_client_close(c);
}

/* ---- events ------------------------------------------------------------- */

static void client_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct sy_client *c = arg;
    (void)fd;

    switch (c->state) {
    case SY_CLIENT_HANDSHAKE:
        if (what & EV_TIMEOUT)
            sy_client_close(c);
        else
            handshake(c);
        return;
    case SY_CLIENT_IDLE:
        if (what & EV_TIMEOUT) {
            sy_client_close(c);
            return;
        }
        read_head(c);
        return;
    case SY_CLIENT_READING_HEAD:
        if (what & EV_TIMEOUT) {
            if (c->req && c->in && c->in->end > 0) {
                reject_head(c, 408, "client header timeout");
            } else {
                sy_client_close(c);
            }
            return;
        }
        read_head(c);
        return;
    case SY_CLIENT_BUSY:
        if (what & EV_TIMEOUT)
            sy_proxy_on_client_timeout(c->req, what);
        else
            sy_proxy_on_client_readable(c->req);
        return;
    case SY_CLIENT_LINGERING:
        if (what & EV_TIMEOUT)
            sy_client_close(c);
        else
            linger_read(c);
        return;
    case SY_CLIENT_H2:
        sy_h2_on_read(c, what);
        return;
    }
}

static void client_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct sy_client *c = arg;
    (void)fd;

    if (!c->req)
        return;
    if (what & EV_TIMEOUT) {
        sy_client_close(c);
        return;
    }
    sy_request_writable(c->req);
}

/*
 * A reload gave the worker a new snapshot: HTTP/2 connections begun on an
 * older one get GOAWAY (as nginx's old workers send it), so that their
 * clients reconnect to the new listeners' settings and certificates. Seen
 * at the next accept or the next housekeeping second, whichever is first.
 */
static void notice_reload(struct sy_http_worker *hw)
{
    if (hw->w->conf == hw->conf_seen)
        return;
    hw->conf_seen = hw->w->conf;
    hw->conf_gen++;
    for (struct sy_client *c = hw->clients.next, *next; c != &hw->clients; c = next) {
        next = c->next;
        if (c->state == SY_CLIENT_H2)
            sy_h2_conf_changed(c, hw->conf_gen);
    }
}

static void http_accept(struct sy_worker *w, int fd, const struct sockaddr *peer,
                        socklen_t peerlen, size_t listen_index)
{
    struct sy_http_worker *hw = w->http;
    struct sy_tls_server *tls = w->conf->listen[listen_index].tls_server;
    static const int one = 1;

    notice_reload(hw);

    struct sy_client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        sy_worker_connection_closed(w, peer);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->io.fd = fd;
    c->hw = hw;
    c->listen_index = (uint32_t)listen_index;
    memcpy(&c->peer, peer, peerlen < sizeof(c->peer) ? peerlen : sizeof(c->peer));
    c->state = SY_CLIENT_IDLE;
    if (tls) {
        struct sy_tls_conn *t = sy_tls_accept(tls, fd);
        if (!t || sy_io_start_tls(&c->io, w->base, t) < 0) {
            close(fd);
            sy_worker_connection_closed(w, peer);
            free(c);
            return;
        }
        c->state = SY_CLIENT_HANDSHAKE;
        c->head_deadline_ms = sy_worker_now_ms(w) + w->conf->limits.client_header_timeout_ms;
    }
    c->next = hw->clients.next;
    c->prev = &hw->clients;
    c->next->prev = c;
    hw->clients.next = c;
    hw->nclients++;
    /*
     * Persistent: registered with epoll once for the connection's life and
     * deleted only when reading must pause, which saves two epoll_ctl calls
     * per request.
     */
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, client_on_read, c);
    /* The first request must arrive within the header timeout. */
    client_read_ready(c, w->conf->limits.client_header_timeout_ms);
}

/* ---- worker hooks ------------------------------------------------------- */

/* Once a second on each worker: what the worker's logging owes (log.h), a reload unseen. */
static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    struct sy_http_worker *hw = arg;

    (void)fd, (void)what;
    sy_log_security_tick(sy_worker_now_ms(hw->w));
    notice_reload(hw);
}

static int http_worker_init(struct sy_worker *w)
{
    static const struct timeval second = {1, 0};
    struct sy_http_worker *hw = calloc(1, sizeof(*hw));
    uint64_t seed = 0;

    if (!hw)
        return -1;
    hw->w = w;
    hw->clients.next = hw->clients.prev = &hw->clients;
    if (!(hw->metrics = sy_metrics_worker_new())) {
        free(hw);
        return -1;
    }
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)sy_now_us() ^ ((uint64_t)getpid() << 32);
    snprintf(hw->request_id_prefix, sizeof(hw->request_id_prefix), "%016llx",
             (unsigned long long)(seed ^ w->id));
    hw->rng = (seed ^ w->id) | 1;
    hw->conf_seen = w->conf;
    event_assign(&hw->housekeeping, w->base, -1, EV_PERSIST, on_housekeeping, hw);
    event_add(&hw->housekeeping, &second);
    w->http = hw;
    return 0;
}

static void http_drain(struct sy_worker *w, bool close_idle)
{
    struct sy_http_worker *hw = w->http;

    hw->draining = true;
    hw->drain_closes_idle = close_idle;
    sy_upstream_close_all_idle(hw);
    /* HTTP/2 either way: GOAWAY, streams in flight finish, then the connection closes */
    for (struct sy_client *c = hw->clients.next, *next; c != &hw->clients; c = next) {
        next = c->next;
        if (c->state == SY_CLIENT_H2)
            sy_h2_drain(c, false);
    }
    if (!close_idle)
        return;         /* each closes after its next response, or idle at keepalive_timeout_ms */
    for (struct sy_client *c = hw->clients.next, *next; c != &hw->clients; c = next) {
        next = c->next;
        if (c->state == SY_CLIENT_HANDSHAKE || c->state == SY_CLIENT_IDLE ||
            c->state == SY_CLIENT_LINGERING)
            sy_client_close(c);
    }
}

static size_t http_active(struct sy_worker *w)
{
    return w->http->nclients;
}

static void http_fini(struct sy_worker *w)
{
    struct sy_http_worker *hw = w->http;

    while (hw->clients.next != &hw->clients)
        sy_client_close(hw->clients.next);
    event_del(&hw->housekeeping);
    sy_gzip_cache_clear();
    sy_log_security_tick(INT64_MAX);    /* the last summaries */
    sy_upstream_free_peers(hw);
    free_request_list(hw);
    sy_metrics_worker_free(hw->metrics);
    free(hw);
    w->http = NULL;
}

const struct sy_worker_hooks sy_http_worker_hooks = {
    .init = http_worker_init,
    .accept = http_accept,
    .drain = http_drain,
    .active = http_active,
    .fini = http_fini,
};

static void free_prepared(struct sy_conf *conf)
{
    sy_modules_release(conf);
    for (size_t i = 0; i < conf->nlisten; i++)
        sy_tls_server_free(conf->listen[i].tls_server);
    for (size_t i = 0; i < conf->npools; i++)
        sy_tls_client_free(conf->pools[i].tls_client);
}

/* Series ids for the snapshot's services, routes and instances (metrics.h). */
static int intern_metrics(struct sy_conf *conf)
{
    static const char *const slots[2] = {"blue", "green"};

    for (size_t i = 0; i < conf->nservices; i++)
        for (int s = 0; s < 2; s++)
            conf->services[i].metric_id[s] = sy_metrics_service_slot(conf->services[i].name,
                                                                      slots[s]);
    for (size_t i = 0; i < conf->nroutes; i++) {
        struct sy_route *r = &conf->routes[i];
        for (int s = 0; s < 2; s++)
            r->metric_route_id[s] = r->service
                                    ? sy_metrics_route(r->service->name, slots[s], r->label)
                                    : sy_metrics_route("", "", r->label);
        r->metric_route_id[SY_ROUTE_SERIES_UNSPLIT] =
            sy_metrics_route(r->service ? r->service->name : "", "", r->label);
    }
    for (size_t i = 0; i < conf->npools; i++)
        for (size_t j = 0; j < conf->pools[i].ninstances; j++)
            conf->pools[i].instances[j].metric_id =
                sy_metrics_upstream(conf->pools[i].name, conf->pools[i].instances[j].addr.text);
    return 0;
}

/*
 * Builds what serving the snapshot needs beyond its parsed form. TLS
 * contexts read their files here, so a reload picks up renewed
 * certificates, and a bad one refuses the reload with the old ones serving.
 */
int sy_http_prepare_conf(struct sy_conf *conf, unsigned nworkers, char *err, size_t errlen)
{
    char why[512];

    conf->free_prepared = free_prepared;
    for (size_t i = 0; i < conf->nlisten; i++) {
        struct sy_listen l = conf->listen[i];
        if (!l.tls)
            continue;
        l.http2 = l.http2 && SY_HAVE_NGHTTP2;   /* ALPN offers h2 only when built with it */
        if (!(conf->listen[i].tls_server = sy_tls_server_new(&l, why, sizeof(why)))) {
            snprintf(err, errlen, "%s: listen[%zu].%s", conf->file, i, why);
            return -1;
        }
    }
    for (size_t i = 0; i < conf->npools; i++) {
        struct sy_pool *p = &conf->pools[i];
        if (p->tls && !(p->tls_client = sy_tls_client_new(p, why, sizeof(why)))) {
            snprintf(err, errlen, "%s: pools.%s.%s", conf->file, p->name, why);
            return -1;
        }
    }
    if (sy_balance_prepare(conf, nworkers) < 0) {
        snprintf(err, errlen, "out of memory preparing the pools");
        return -1;
    }
    sy_h2_metrics_init();
    if (intern_metrics(conf) < 0) {
        snprintf(err, errlen, "out of memory preparing the metrics");
        return -1;
    }
    return sy_modules_prepare(conf, err, errlen);
}
