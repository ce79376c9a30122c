/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tunnel.c: after a 101 Switching Protocols (WebSocket), the request
 * becomes a two-way byte tunnel between the client and the app. Each
 * direction moves through the buffer its side already has; a direction
 * that cannot write stops reading its source (backpressure), and the
 * tunnel ends when both directions are closed, on an error, or after
 * limits.tunnel_idle_timeout_ms without a byte either way.
 *
 * Open tunnels stay on the slot they were opened on. Once that slot has
 * lost its traffic (a switch or a rollback) for services.NAME.tunnel_drain_ms,
 * a per-worker sweep closes them the WebSocket way: each direction relays
 * up to the end of the frame it is in (it follows the frame headers of
 * what it sends), then sends a close frame 1001 (going away) and shuts its
 * write side; the tunnel ends when both peers have closed, or on a time
 * limit.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "balance.h"
#include "core/live.h"
#include "core/log.h"
#include "http.h"

/* How often a worker with open tunnels looks for slots that lost their traffic. */
#define SWEEP_MS 1000
/* How long a closing direction may wait for the end of a peer's frame. */
#define CLOSE_BOUNDARY_WAIT_MS 2000
/* Once the close frames are out, how long the peers get to close their side. */
#define CLOSE_GRACE_MS 1000
/* Reads in one go while discarding, so that a flood cannot hold the worker. */
#define DISCARD_READS 64

enum pump_result {
    PUMP_WAIT_READ,
    PUMP_WAIT_WRITE,
    PUMP_EOF,
    PUMP_ERROR,
    PUMP_BOUNDARY,              /* closing: at a frame boundary, the close may go */
};

/* ---- WebSocket frame boundaries ------------------------------------------ */

static bool ws_at_boundary(const struct sy_ws_track *w)
{
    return w->head_got == 0 && w->payload_left == 0;
}

/*
 * Follows n bytes of a WebSocket stream (RFC 6455 5.2: a byte of FIN and
 * opcode; a byte of MASK and a 7-bit length; 0, 2 or 8 bytes of extended
 * length; 0 or 4 bytes of masking key; the payload). A payload costs one
 * subtraction however long. With stop, it stops at the first frame boundary
 * it reaches. Returns the bytes it took.
 */
static size_t ws_follow(struct sy_ws_track *w, const void *data, size_t n, bool stop)
{
    const uint8_t *p = data;
    size_t i = 0;

    while (i < n) {
        if (w->payload_left) {
            uint64_t take = n - i < w->payload_left ? n - i : w->payload_left;
            w->payload_left -= take;
            i += (size_t)take;
            if (stop && w->payload_left == 0)
                break;
            continue;
        }
        uint8_t b = p[i++];
        if (w->head_got == 0) {
            w->head_need = 2;
        } else if (w->head_got == 1) {
            uint8_t len7 = b & 0x7f;
            w->length_end = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
            w->head_need = w->length_end + (b & 0x80 ? 4 : 0);
            w->length = len7 < 126 ? len7 : 0;
        } else if (w->head_got < w->length_end) {
            w->length = w->length << 8 | b;
        }
        if (++w->head_got == w->head_need) {
            w->head_got = 0;
            w->payload_left = w->length;
            if (stop && w->payload_left == 0)
                break;
        }
    }
    return i;
}

/* ---- moving bytes --------------------------------------------------------- */

/*
 * The length of the next write from buf[start..end). While closing it
 * stops at the frame boundary. A write that waited is retried at least as
 * long: OpenSSL holds a record made of those bytes and refuses a shorter
 * retry, and they go out whatever happens (the tracker follows them).
 */
static size_t write_len(const struct sy_tunnel_dir *d, const struct sy_buf *buf)
{
    size_t len = buf->end - d->start;

    if (d->flow == SY_FLOW_CLOSING) {
        struct sy_ws_track probe = d->ws;
        size_t to_boundary = ws_follow(&probe, buf->data + d->start, len, true);
        len = to_boundary > d->retry_len ? to_boundary : d->retry_len;
    }
    return len;
}

/* Moves bytes from one socket to the other through buf[base..]. */
static enum pump_result pump(struct sy_io *from, struct sy_io *to, struct sy_buf *buf,
                             uint32_t base, struct sy_tunnel_dir *d, uint64_t *moved)
{
    for (;;) {
        if (d->flow == SY_FLOW_CLOSING && ws_at_boundary(&d->ws) && d->retry_len == 0)
            return PUMP_BOUNDARY;
        if (d->start < buf->end) {
            size_t len = write_len(d, buf);
            ssize_t n = sy_io_write(to, buf->data + d->start, len);
            if (n < 0) {
                d->retry_len = (uint32_t)len;
                return errno == EAGAIN ? PUMP_WAIT_WRITE : PUMP_ERROR;
            }
            d->retry_len = 0;
            ws_follow(&d->ws, buf->data + d->start, (size_t)n, false);
            d->start += (uint32_t)n;
            *moved += (uint64_t)n;
            continue;
        }
        d->start = buf->end = base;
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

/* After the close frame: input goes nowhere, until the source closes. */
static enum pump_result discard(struct sy_io *from, struct sy_buf *buf, uint32_t base)
{
    for (int i = 0; i < DISCARD_READS; i++) {
        ssize_t n = sy_io_read(from, buf->data + base, buf->cap - base);
        if (n == 0)
            return PUMP_EOF;
        if (n < 0)
            return errno == EAGAIN ? PUMP_WAIT_READ : PUMP_ERROR;
    }
    return PUMP_WAIT_READ;      /* level-triggered: the read event fires again */
}

/* At a frame boundary: the close frame, then the end of our side of the stream. */
static enum pump_result send_close(struct sy_io *from, struct sy_io *to, struct sy_buf *buf,
                                   uint32_t base, struct sy_tunnel_dir *d)
{
    while (d->close_sent < d->close_len) {
        ssize_t n = sy_io_write(to, d->close_frame + d->close_sent,
                                d->close_len - d->close_sent);
        if (n < 0)
            return errno == EAGAIN ? PUMP_WAIT_WRITE : PUMP_ERROR;
        d->close_sent += (uint8_t)n;
    }
    sy_io_shutdown_write(to);
    d->flow = SY_FLOW_DISCARD;
    d->start = buf->end = base;     /* what the peer sent past its frame goes nowhere */
    return discard(from, buf, base);
}

static void tunnel_unlist(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;
    struct sy_http_worker *hw = req->hw;

    if (!t->listed)
        return;
    t->listed = false;
    if (t->prev)
        t->prev->tunnel.next = t->next;
    else
        hw->tunnels = t->next;
    if (t->next)
        t->next->tunnel.prev = t->prev;
    t->prev = t->next = NULL;
    if (!hw->tunnels)
        event_del(&hw->tunnel_sweep);
    if (req->service)
        atomic_fetch_sub_explicit(&req->service->live->tunnels[req->slot], 1,
                                  memory_order_relaxed);
}

static void tunnel_end(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;

    if (t->timer) {
        event_free(t->timer);
        t->timer = NULL;
    }
    tunnel_unlist(req);
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
    struct sy_tunnel_dir *d = to_app ? &t->to_app : &t->to_client;
    struct sy_io *src = to_app ? &c->io : &up->io, *dst = to_app ? &up->io : &c->io;
    struct event *src_read = to_app ? &c->rev : &up->rev;
    struct event *dst_write = to_app ? &up->wev : &req->client_wev;
    struct sy_buf *buf = to_app ? c->in : up->in;
    uint32_t base = to_app ? req->head.head_len : 0;
    uint64_t *moved = to_app ? &t->to_app_bytes : &t->to_client_bytes;
    uint64_t before = *moved;
    enum pump_result r;

    switch (d->flow) {
    case SY_FLOW_RELAY:
    case SY_FLOW_CLOSING:
        r = pump(src, dst, buf, base, d, moved);
        if (r == PUMP_BOUNDARY)
            r = send_close(src, dst, buf, base, d);
        break;
    case SY_FLOW_DISCARD:
        r = discard(src, buf, base);
        break;
    case SY_FLOW_DONE:
    default:
        return true;
    }
    if (*moved != before)
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
        event_del(src_read);
        if (d->flow != SY_FLOW_DISCARD)
            sy_io_shutdown_write(dst);      /* pass the half-close on */
        d->flow = SY_FLOW_DONE;
        return true;
    case PUMP_ERROR:
    case PUMP_BOUNDARY:
        break;
    }
    if (!t->closing)
        return false;
    /* Closing anyway: a peer that is gone leaves the other its close. */
    event_del(src_read);
    event_del(dst_write);
    d->flow = SY_FLOW_DONE;
    return true;
}

void sy_tunnel_step(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;

    if (!step_direction(req, true) || !step_direction(req, false) ||
        (t->to_app.flow == SY_FLOW_DONE && t->to_client.flow == SY_FLOW_DONE)) {
        tunnel_end(req);
        return;
    }
    if (t->closing && !t->closes_sent && t->to_app.flow != SY_FLOW_CLOSING &&
        t->to_client.flow != SY_FLOW_CLOSING) {
        t->closes_sent = true;
        sy_event_arm(t->timer, CLOSE_GRACE_MS);
    }
}

static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_request *req = arg;
    int64_t idle_ms = req->conf->limits.tunnel_idle_timeout_ms;
    int64_t left = req->tunnel.last_active_ms + idle_ms - sy_worker_now_ms(req->hw->w);
    (void)fd, (void)what;

    if (req->tunnel.closing) {
        if (!req->tunnel.closes_sent)
            sy_log_error(SY_LOG_INFO, "proxy", "tunnel of request %s: close frames not "
                         "out within %d ms (mid-frame or not writable), closed without",
                         req->request_id, CLOSE_BOUNDARY_WAIT_MS);
        tunnel_end(req);
        return;
    }
    if (left > 0) {
        sy_event_arm(req->tunnel.timer, left);
        return;
    }
    sy_log_error(SY_LOG_INFO, "proxy", "tunnel of request %s idle for %lld ms, closed",
                 req->request_id, (long long)idle_ms);
    tunnel_end(req);
}

/* ---- closing tunnels on a slot that lost its traffic ---------------------- */

/* The close frame 1001 (going away), RFC 6455 5.5.1 and 7.4.1. */
static void set_close_frame(struct sy_tunnel_dir *d, bool masked, uint32_t key)
{
    static const uint8_t code[2] = {1001 >> 8, 1001 & 0xff};
    uint8_t *f = d->close_frame;

    f[0] = 0x88;                /* FIN, opcode close */
    if (!masked) {              /* server to client: never masked */
        f[1] = 2;
        memcpy(f + 2, code, 2);
        d->close_len = 4;
        return;
    }
    /* client to server: always masked (5.3) */
    f[1] = 0x80 | 2;
    memcpy(f + 2, &key, 4);
    f[6] = code[0] ^ f[2];
    f[7] = code[1] ^ f[3];
    d->close_len = 8;
}

/*
 * A masking key for the close toward the app. 5.3 asks for keys a payload's
 * author cannot predict, against cache poisoning through the payload; this
 * payload is ours and fixed, so the worker's xorshift generator will do.
 */
static uint32_t mask_key(struct sy_http_worker *hw)
{
    uint64_t x = hw->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    hw->rng = x;
    return (uint32_t)(x >> 32);
}

static void tunnel_close_begin(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;

    t->closing = true;
    if (t->to_app.flow == SY_FLOW_RELAY) {
        t->to_app.flow = SY_FLOW_CLOSING;
        set_close_frame(&t->to_app, true, mask_key(req->hw));
    }
    if (t->to_client.flow == SY_FLOW_RELAY) {
        t->to_client.flow = SY_FLOW_CLOSING;
        set_close_frame(&t->to_client, false, 0);
    }
    sy_event_arm(t->timer, CLOSE_BOUNDARY_WAIT_MS);
    sy_tunnel_step(req);
}

/*
 * When the tunnel is due to close, in wall-clock ms; 0: not due. Tunnels
 * opened before their slot lost its traffic close tunnel_drain_ms after
 * (in the same millisecond counts as before: a request that started then
 * went to the slot that still had the traffic, or to the new one anyway).
 */
static int64_t drain_due_ms(const struct sy_request *req)
{
    const struct sy_service *svc = req->service;

    if (req->tunnel.closing || !svc || svc->tunnel_drain_ms <= 0)
        return 0;
    int64_t lost = atomic_load_explicit(&svc->live->slot_lost_ms[req->slot],
                                        memory_order_relaxed);
    if (lost == 0 || req->tunnel.opened_ms > lost)
        return 0;
    return lost + svc->tunnel_drain_ms;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct sy_http_worker *hw = arg;
    int64_t now = sy_worker_now_ms(hw->w), next = now + SWEEP_MS;
    unsigned closed = 0;
    (void)fd, (void)what;

    for (struct sy_request *req = hw->tunnels, *after; req; req = after) {
        after = req->tunnel.next;   /* req may end right here */
        int64_t due = drain_due_ms(req);
        if (due == 0)
            continue;
        if (now < due) {
            next = due < next ? due : next;
            continue;
        }
        closed++;
        tunnel_close_begin(req);
    }
    if (closed)
        sy_log_error(SY_LOG_INFO, "proxy", "worker %u: closing %u WebSocket tunnel(s) on "
                     "slots that lost their traffic", hw->w->id, closed);
    if (hw->tunnels)
        sy_event_arm(&hw->tunnel_sweep, next - now > 0 ? next - now : 1);
}

static void tunnel_list(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;
    struct sy_http_worker *hw = req->hw;

    if (!event_initialized(&hw->tunnel_sweep))
        evtimer_assign(&hw->tunnel_sweep, hw->w->base, on_sweep, hw);
    if (!hw->tunnels)
        sy_event_arm(&hw->tunnel_sweep, SWEEP_MS);
    t->prev = NULL;
    t->next = hw->tunnels;
    if (hw->tunnels)
        hw->tunnels->tunnel.prev = req;
    hw->tunnels = req;
    t->listed = true;
    if (req->service)
        atomic_fetch_add_explicit(&req->service->live->tunnels[req->slot], 1,
                                  memory_order_relaxed);
}

/* ---- life ----------------------------------------------------------------- */

/*
 * The wall-clock ms the request started, when its slot was about to be
 * picked: a 101 that comes after a switch still belongs to a request routed
 * before it. Read from the precise clocks: the worker's cached time can run
 * a clock tick ahead, which would hide a tunnel opened just before a switch.
 */
static int64_t request_start_wall_ms(const struct sy_request *req)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    return (now_us - (sy_now_us() - req->start_us)) / 1000;
}

void sy_tunnel_start(struct sy_request *req)
{
    struct sy_tunnel *t = &req->tunnel;

    memset(t, 0, sizeof(*t));
    t->to_app.start = req->head.head_len;
    t->to_client.start = req->resp.head_len;    /* frames that came behind the 101 head */
    t->last_active_ms = sy_worker_now_ms(req->hw->w);
    t->opened_ms = request_start_wall_ms(req);
    tunnel_list(req);
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
    tunnel_unlist(req);
}
