/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * h2.h: HTTP/2 toward clients (RFC 9113) on TLS connections that chose
 * "h2" by ALPN (h2.c, nghttp2). Each stream becomes a request that takes
 * the same phases as an HTTP/1.1 one; the upstream side stays HTTP/1.1.
 * conn.c calls these for connections in state SY_CLIENT_H2. Built without
 * nghttp2 (SY_HAVE_NGHTTP2 0), ALPN never offers h2 and none is called.
 */
#ifndef SY_HTTP_H2_H
#define SY_HTTP_H2_H

#include <stdbool.h>
#include <stdint.h>

#include "sy_auto.h"

struct sy_client;

/* The handshake chose h2: the connection becomes an HTTP/2 server session. */
void sy_h2_start(struct sy_client *c);

/* The socket is readable (c->rev). */
void sy_h2_on_read(struct sy_client *c, short what);

/*
 * Graceful GOAWAY: streams in flight finish, then the connection closes.
 * A stop closes an idle connection at once; a reload (the client should
 * reconnect to the new configuration) always sends the shutdown notice
 * first, so that a request already on its way is still served.
 */
void sy_h2_drain(struct sy_client *c, bool reload);

/*
 * The worker's configuration changed (conn.c counts generations, hw->conf_gen):
 * a connection begun on an older one gets the reload's GOAWAY.
 */
void sy_h2_conf_changed(struct sy_client *c, uint32_t conf_gen);

/* The metrics' series (main thread, before the workers record into them). */
void sy_h2_metrics_init(void);

/* From sy_client_close(): the streams' requests end as aborted, the session goes. */
void sy_h2_free(struct sy_client *c);

#endif
