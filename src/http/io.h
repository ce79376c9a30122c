/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * io.h: a connection's socket, plain or TLS, behind one set of calls with
 * read(2)/writev(2) semantics, so that the proxy's state machines do not
 * care which it is. Plain sockets cost one branch per call.
 *
 * TLS can need the other direction to make progress (a read that must
 * first write, a handshake that waits for either). sy_io_wait() hides it:
 * the caller waits for the direction it wants on its own event, and when
 * OpenSSL needs the other one the wait goes to a private event that
 * re-activates the caller's when it fires.
 */
#ifndef SY_HTTP_IO_H
#define SY_HTTP_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "tls.h"

struct sy_io_tls;

struct sy_io {
    int fd;
    struct sy_io_tls *tls;      /* NULL: plain TCP */
};

/* Takes c (freed by sy_io_close). -1 on allocation failure (c is freed). */
int sy_io_start_tls(struct sy_io *io, struct event_base *base, struct sy_tls_conn *c);
/* The TLS connection, or NULL on a plain socket. */
struct sy_tls_conn *sy_io_tls(const struct sy_io *io);

/* As sy_tls_handshake; SY_TLS_OK at once on a plain socket. */
enum sy_tls_status sy_io_handshake(struct sy_io *io);

ssize_t sy_io_read(struct sy_io *io, void *buf, size_t n);
ssize_t sy_io_write(struct sy_io *io, const void *buf, size_t n);
ssize_t sy_io_writev(struct sy_io *io, const struct iovec *iov, int iovcnt);

/*
 * Arms ev (the caller's event for dir, EV_READ or EV_WRITE, on io->fd) to
 * fire when the last operation in that direction can go on, with a timeout
 * (<= 0: none). ev fires with EV_TIMEOUT when the timeout passes.
 */
int sy_io_wait(struct sy_io *io, struct event *ev, short dir, int64_t timeout_ms);

/* ev is going away (or stops waiting): no wait of io may activate it any more. */
void sy_io_forget(struct sy_io *io, const struct event *ev);

/* End of our side of the stream: close_notify on TLS, then a TCP half-close. */
int sy_io_shutdown_write(struct sy_io *io);

/* Frees the TLS state (sending close_notify unless failed) and closes the socket. */
void sy_io_close(struct sy_io *io);

#endif
