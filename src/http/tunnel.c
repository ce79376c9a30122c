/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tunnel.c: after a 101 Switching Protocols (WebSocket), the request
 * becomes a two-way byte tunnel between the client and the app. Each
 * direction moves through the buffer its side already has; a direction
 * that cannot write stops reading its source (backpressure), and the
 * tunnel ends when both directions are closed, on an error, or after
 * limits.tunnel_idle_timeout_ms without a byte either way.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balance.h"
#include "core/log.h"
#include "http.h"

enum pump_result {
    PUMP_WAIT_READ,
    PUMP_WAIT_WRITE,
    PUMP_EOF,
    PUMP_ERROR,
};

/* Moves bytes from one socket to the other through buf[base..]. */
static enum pump_result pump(struct sy_io *from, struct sy_io *to, struct sy_buf *buf,
                             uint32_t base, uint32_t *start, uint64_t *moved)
{
    for (;;) {
        if (*start < buf->end) {
            ssize_t n = sy_io_write(to, buf->data + *start, buf->end - *start);
            if (n < 0)
                return errno == EAGAIN ? PUMP_WAIT_WRITE : PUMP_ERROR;
            *start += (uint32_t)n;
            *moved += (uint64_t)n;
            continue;
        }
        *start = buf->end = base;
        ssize_t n = sy_io_read(from, buf->data + buf->end, buf->cap - buf->end);
        if (n > 0) {
            buf->end += (uint32_t)n;
            continue;
        }
        if (n == 0)
            return PUMP_EOF;
        return errno == EAGAIN ? PUMP_WAIT_READ : PUMP_ERROR;
    }
}

static void tunnel_end(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;

    if (t->timer) {
        event_free(t->timer);
        t->timer = NULL;
    }
    req->client_keepalive = false;
    sy_proxy_detach(req);
    sy_client_request_done(req);
}

/*
 * One direction's next step. src_read is the source's persistent read
 * event; dst_write the destination's one-shot write event.
 */
static bool step_direction(struct sy_request *req, bool to_app)
{
    struct sy_tunnel *t = &req->tunnel;
    struct sy_client *c = req->client;
    struct sy_upstream *up = req->up;
    bool *done = to_app ? &t->to_app_done : &t->to_client_done;
    struct sy_io *src = to_app ? &c->io : &up->io, *dst = to_app ? &up->io : &c->io;
    struct event *src_read = to_app ? &c->rev : &up->rev;
    struct event *dst_write = to_app ? &up->wev : &req->client_wev;
    uint64_t before = to_app ? t->to_app_bytes : t->to_client_bytes;
    enum pump_result r;

    if (*done)
        return true;
    if (to_app)
        r = pump(src, dst, c->in, req->head.head_len, &t->to_app_start, &t->to_app_bytes);
    else
        r = pump(src, dst, up->in, 0, &t->to_client_start, &t->to_client_bytes);
    if ((to_app ? t->to_app_bytes : t->to_client_bytes) != before)
        t->last_active_ms = sy_worker_now_ms(req->hw->w);
    switch (r) {
    case PUMP_WAIT_READ:
        sy_io_wait(src, src_read, EV_READ, 0);
        event_del(dst_write);
        return true;
    case PUMP_WAIT_WRITE:
        event_del(src_read);    /* backpressure: read again once the other side drains */
        sy_io_wait(dst, dst_write, EV_WRITE, 0);
        return true;
    case PUMP_EOF:
        *done = true;
        event_del(src_read);
        sy_io_shutdown_write(dst);      /* pass the half-close on */
        return true;
    case PUMP_ERROR:
        break;
    }
    return false;
}

void sy_tunnel_step(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;

    if (!step_direction(req, true) || !step_direction(req, false) ||
        (t->to_app_done && t->to_client_done))
        tunnel_end(req);
}

static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_request *req = arg;
    int64_t idle_ms = req->conf->limits.tunnel_idle_timeout_ms;
    int64_t left = req->tunnel.last_active_ms + idle_ms - sy_worker_now_ms(req->hw->w);
    (void)fd, (void)what;

    if (left > 0) {
        sy_event_arm(req->tunnel.timer, left);
        return;
    }
    sy_log_error(SY_LOG_INFO, "proxy", "tunnel of request %s idle for %lld ms, closed",
                 req->request_id, (long long)idle_ms);
    tunnel_end(req);
}

void sy_tunnel_start(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;

    memset(t, 0, sizeof(*t));
    t->to_app_start = req->head.head_len;
    t->to_client_start = req->resp.head_len;    /* frames that came behind the 101 head */
    t->last_active_ms = sy_worker_now_ms(req->hw->w);
    t->timer = evtimer_new(req->hw->w->base, on_idle_timer, req);
    if (!t->timer) {
        tunnel_end(req);
        return;
    }
    sy_event_arm(t->timer, req->conf->limits.tunnel_idle_timeout_ms);
    req->state = SY_REQ_TUNNEL;
    sy_tunnel_step(req);
}

void sy_tunnel_abort(struct sy_request *req)
{
    if (req->tunnel.timer) {
        event_free(req->tunnel.timer);
        req->tunnel.timer = NULL;
    }
}
