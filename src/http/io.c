/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * io.c: plain or TLS socket I/O for client and upstream connections.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "io.h"

enum { DIR_READ, DIR_WRITE };

struct sy_io_tls {
    struct sy_tls_conn *conn;
    /*
     * Per direction: what the last operation that could not go on waits
     * for (0: it did go on), and the caller's event that a wait on the
     * other direction must wake.
     */
    short needs[2];
    struct event *target[2];
    struct event cross;         /* that wait, for the direction(s) OpenSSL needs */
};

static void cross_fired(evutil_socket_t fd, short what, void *arg)
{
    struct sy_io_tls *t = arg;
    struct event *rd = t->target[DIR_READ], *wr = t->target[DIR_WRITE];
    (void)fd;

    t->target[DIR_READ] = t->target[DIR_WRITE] = NULL;
    if (rd)
        event_active(rd, (what & EV_TIMEOUT) ? EV_TIMEOUT : EV_READ, 1);
    if (wr)
        event_active(wr, (what & EV_TIMEOUT) ? EV_TIMEOUT : EV_WRITE, 1);
}

int sy_io_start_tls(struct sy_io *io, struct event_base *base, struct sy_tls_conn *c)
{
    struct sy_io_tls *t = calloc(1, sizeof(*t));

    if (!t) {
        sy_tls_free(c);
        return -1;
    }
    t->conn = c;
    event_assign(&t->cross, base, io->fd, EV_READ, cross_fired, t);
    io->tls = t;
    return 0;
}

struct sy_tls_conn *sy_io_tls(const struct sy_io *io)
{
    return io->tls ? io->tls->conn : NULL;
}

/* Records what a TLS call that returned n needs before it can go on. */
static ssize_t note(struct sy_io_tls *t, int dir, ssize_t n)
{
    t->needs[dir] = (n < 0 && errno == EAGAIN) ? sy_tls_wants(t->conn) : 0;
    return n;
}

enum sy_tls_status sy_io_handshake(struct sy_io *io)
{
    struct sy_io_tls *t = io->tls;

    if (!t)
        return SY_TLS_OK;
    enum sy_tls_status st = sy_tls_handshake(t->conn);
    short needs = st == SY_TLS_WANT_READ ? EV_READ : st == SY_TLS_WANT_WRITE ? EV_WRITE : 0;
    t->needs[DIR_READ] = t->needs[DIR_WRITE] = needs;
    return st;
}

ssize_t sy_io_read(struct sy_io *io, void *buf, size_t n)
{
    if (!io->tls)
        return read(io->fd, buf, n);
    return note(io->tls, DIR_READ, sy_tls_read(io->tls->conn, buf, n));
}

ssize_t sy_io_write(struct sy_io *io, const void *buf, size_t n)
{
    if (!io->tls)
        return write(io->fd, buf, n);
    struct iovec v = {(void *)buf, n};
    return note(io->tls, DIR_WRITE, sy_tls_writev(io->tls->conn, &v, 1));
}

ssize_t sy_io_writev(struct sy_io *io, const struct iovec *iov, int iovcnt)
{
    if (!io->tls)
        return writev(io->fd, iov, iovcnt);
    return note(io->tls, DIR_WRITE, sy_tls_writev(io->tls->conn, iov, iovcnt));
}

int sy_io_wait(struct sy_io *io, struct event *ev, short dir, int64_t timeout_ms)
{
    struct sy_io_tls *t = io->tls;
    int d = dir == EV_WRITE ? DIR_WRITE : DIR_READ;

    if (!t)
        return sy_event_arm(ev, timeout_ms);
    if (t->target[d] == ev)
        sy_io_forget(io, ev);
    if (d == DIR_READ && sy_tls_pending(t->conn)) {
        /* Decrypted bytes wait inside OpenSSL: the socket will not say so. */
        if (sy_event_arm(ev, timeout_ms) < 0)
            return -1;
        event_active(ev, EV_READ, 1);
        return 0;
    }
    if (!t->needs[d] || t->needs[d] == dir)
        return sy_event_arm(ev, timeout_ms);
    /*
     * OpenSSL must first move bytes the other way: waiting on ev would spin
     * (or sleep) on the wrong readiness, so ev rests until the cross event fires.
     */
    event_del(ev);
    t->target[d] = ev;
    short what = 0;
    for (int i = DIR_READ; i <= DIR_WRITE; i++)
        if (t->target[i])
            what |= t->needs[i];
    event_del(&t->cross);
    event_assign(&t->cross, event_get_base(ev), io->fd, what, cross_fired, t);
    return sy_event_arm(&t->cross, timeout_ms);
}

void sy_io_forget(struct sy_io *io, const struct event *ev)
{
    struct sy_io_tls *t = io->tls;

    if (!t)
        return;
    for (int i = DIR_READ; i <= DIR_WRITE; i++)
        if (t->target[i] == ev)
            t->target[i] = NULL;
    if (!t->target[DIR_READ] && !t->target[DIR_WRITE])
        event_del(&t->cross);
}

int sy_io_shutdown_write(struct sy_io *io)
{
    if (io->tls)
        sy_tls_shutdown(io->tls->conn);
    return shutdown(io->fd, SHUT_WR);
}

void sy_io_close(struct sy_io *io)
{
    struct sy_io_tls *t = io->tls;

    if (t) {
        event_del(&t->cross);
        sy_tls_shutdown(t->conn);
        sy_tls_free(t->conn);
        free(t);
        io->tls = NULL;
    }
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
}
