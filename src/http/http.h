/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * http.h: the HTTP layer's own types. A client connection (struct
 * sy_client) carries one request at a time (struct sy_request) over
 * HTTP/1.1, or many over HTTP/2 (h2.c, one per stream); the request owns
 * everything about one exchange - its snapshot, head, route, upstream
 * connection and relays - and reaches its client only through its
 * downstream calls (struct sy_downstream_ops).
 * Ownership: the worker's sy_http_worker owns clients, idle upstream
 * connections and freelists; an HTTP/1.1 client owns its current request,
 * an HTTP/2 connection its streams and their requests.
 */
#ifndef SY_HTTP_HTTP_H
#define SY_HTTP_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/buf.h"
#include "core/conf.h"
#include "core/sy_module.h"
#include "core/worker.h"
#include "io.h"
#include "parser.h"
#include "relay.h"

struct sy_request;
struct sy_worker_metrics;
struct sy_gzip;
struct sy_h2_conn;
struct sy_h2_stream;

/* A request id from a trusted proxy is kept up to this length. */
#define SY_REQUEST_ID_MAX 128

/* Idle keep-alive connections to one upstream address, on one worker (LIFO). */
struct sy_peer {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *tls_name;             /* TLS toward this name; NULL: plain TCP */
    struct sy_upstream *idle;
    unsigned nidle;
};

struct sy_upstream {
    struct sy_io io;
    struct event rev, wev;
    struct sy_http_worker *hw;
    struct sy_peer *peer;
    struct sy_upstream *next_idle;
    struct sy_request *req;     /* NULL while idle */
    struct sy_buf *in;          /* response bytes; NULL while idle */
    bool connected;             /* TCP connected and, for TLS, handshake done */
    unsigned requests;          /* served on this connection */
};

enum sy_client_state {
    SY_CLIENT_HANDSHAKE,        /* TLS handshake, before the first request */
    SY_CLIENT_IDLE,             /* keep-alive, waiting for a request; holds no buffer */
    SY_CLIENT_READING_HEAD,
    SY_CLIENT_BUSY,             /* a request is being served */
    SY_CLIENT_LINGERING,        /* response sent, discarding unread input before close */
    SY_CLIENT_H2,               /* HTTP/2 (ALPN h2): streams are requests (h2.c) */
};

/*
 * Kept small: an idle keep-alive connection costs this struct and nothing
 * else (no buffer, no request; the write event lives in the request).
 */
struct sy_client {
    struct sy_io io;
    struct event rev;
    struct sy_http_worker *hw;
    enum sy_client_state state;
    struct sy_buf *in;
    struct sy_request *req;     /* HTTP/1.1 only */
    struct sy_h2_conn *h2;      /* SY_CLIENT_H2: the session and its streams */
    struct sy_client *prev, *next;   /* the worker's list, for drain */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer;
    uint32_t listen_index;
    int64_t head_deadline_ms;   /* also the end of lingering */
    uint32_t lingered_bytes;
    unsigned requests;
};

enum sy_req_state {
    SY_REQ_READING_HEAD,
    SY_REQ_WAITING_MODULE,      /* a module waits (SY_PHASE_WAIT), on Redis say */
    SY_REQ_CONNECTING,          /* waiting for the upstream connect */
    SY_REQ_SENDING_HEAD,        /* request head to the upstream */
    SY_REQ_SENDING_BODY,        /* request body to the upstream */
    SY_REQ_WAITING_RESPONSE,    /* request sent; reading the response head */
    SY_REQ_SENDING_RESPONSE_HEAD,
    SY_REQ_SENDING_RESPONSE_BODY,
    SY_REQ_LOCAL_RESPONSE,      /* writing a response the gateway made */
    SY_REQ_TUNNEL,              /* after 101: bytes both ways (WebSocket) */
    SY_REQ_DONE,
};

/*
 * Where a relayed WebSocket stream stands (RFC 6455 5.2), so that the
 * gateway puts a frame of its own only between two of the peer's frames.
 * At a frame boundary when head_got and payload_left are both 0.
 */
struct sy_ws_track {
    uint64_t payload_left;      /* bytes of the current frame's payload still to pass */
    uint64_t length;            /* the payload length, while its header is read */
    uint8_t head_got;           /* header bytes of the next frame seen so far */
    uint8_t head_need;          /* that header's length, known from its second byte */
    uint8_t length_end;         /* where its extended length ends (the mask key follows) */
};

/* What one direction of a tunnel does with the bytes it reads (tunnel.c). */
enum sy_tunnel_flow {
    SY_FLOW_RELAY,              /* passes them on */
    SY_FLOW_CLOSING,            /* passes them up to a frame boundary, then sends a close */
    SY_FLOW_DISCARD,            /* the close went out, the write side is shut: drops input */
    SY_FLOW_DONE,               /* the source ended (its EOF passed on) or failed closing */
};

struct sy_tunnel_dir {
    enum sy_tunnel_flow flow;
    uint32_t start;             /* unsent bytes in the source's buffer begin here */
    uint32_t retry_len;         /* a write that waits must be retried this long at least */
    struct sy_ws_track ws;      /* frame boundaries of the bytes sent */
    uint8_t close_frame[8];     /* SY_FLOW_CLOSING: close_len bytes, close_sent of them sent */
    uint8_t close_len, close_sent;
};

/*
 * The two directions of a WebSocket tunnel (tunnel.c). An open tunnel is
 * on its worker's list and counted in its service's live tunnels[slot]
 * (listed) until it ends, whichever way it ends.
 */
struct sy_tunnel {
    struct sy_tunnel_dir to_app;        /* source client->in, from head_len */
    struct sy_tunnel_dir to_client;     /* source up->in, from 0 */
    uint64_t to_app_bytes, to_client_bytes;
    int64_t last_active_ms;
    int64_t opened_ms;          /* wall clock; the request's start, when its slot was picked */
    struct event *timer;        /* idle timeout; while closing, the close's time limit */
    bool listed;
    bool closing;               /* its slot lost its traffic: close frames are on their way */
    bool closes_sent;           /* every close frame went out: the peers' grace runs */
    struct sy_request *prev, *next;     /* the worker's open tunnels */
};

const char *sy_req_state_name(enum sy_req_state state);

/* A queue of bytes to write: iovecs over buffers that stay put until written. */
struct sy_iovq {
    struct iovec *iov;
    int n, cap, pos;
};

/*
 * The downstream side of a request: what carries it from and to its
 * client. An HTTP/1.1 connection (conn.c) carries one request at a time,
 * an HTTP/2 stream (h2.c) one of many; the proxy and the gateway's own
 * responses reach the client only through these calls. Heads cross as
 * HTTP/1.1 text in req->out (the proxy builds them so, h2.c translates),
 * bodies as bytes. A call that waits arms its own wake-up: the request
 * then hears sy_proxy_on_client_readable() or sy_request_writable(), or
 * sy_proxy_on_client_timeout(). A call that fails (-1) leaves the request
 * alive: the caller ends it with abort.
 */
struct sy_downstream_ops {
    const char *proto;          /* the access log's "proto"; NULL: the request line's version */
    /*
     * The protocol frames bodies itself (HTTP/2): the response body goes as
     * plain data (never chunked, never queued behind the head) and the
     * request body comes chunked when its length is unknown.
     */
    bool framed_body;
    /* req->out from its pos (unless framed_body, body bytes follow the head): 1 sent, 0 waiting */
    int (*send_head)(struct sy_request *req);
    /*
     * Response body bytes: how many were taken (> 0), or 0 waiting, -1 the
     * client is gone. Bytes not yet taken stay where they are until taken
     * (HTTP/2 frames them from there). last: they end the body.
     */
    ssize_t (*send_body)(struct sy_request *req, const char *p, size_t len, bool last);
    /* Request body bytes into req->in behind in->end: how many (> 0), 0 waiting, -1 gone. */
    ssize_t (*read_body)(struct sy_request *req);
    /* An interim 100 (Continue) when the client waits for one before its body; -1 gone. */
    int (*send_continue)(struct sy_request *req);
    /* Stops waiting on the client for EV_READ or EV_WRITE: the app is the one to wait for. */
    void (*pause)(struct sy_request *req, short what);
    /*
     * framed_body only (else NULL: HTTP/1.1 carries them in the chunked
     * body): the response's trailer fields, HTTP/1.1 field lines that may
     * travel (sy_trailer_allowed), to follow the body; before its last
     * bytes. They are copied; without memory they are dropped.
     */
    void (*send_trailers)(struct sy_request *req, const char *fields, size_t len);
    /* The request body is all read: its timeout no longer applies. */
    void (*body_read)(struct sy_request *req);
    /* The response went out whole: log the request, then keep or close the connection. */
    void (*done)(struct sy_request *req);
    /* Gives up: closes the connection (HTTP/1.1) or resets the stream (HTTP/2); logs it. */
    void (*abort)(struct sy_request *req);
};

struct sy_request {
    enum sy_req_state state;
    const struct sy_downstream_ops *ds;
    struct sy_client *client;   /* the connection that carries it (HTTP/2: one of many) */
    struct sy_h2_stream *stream;    /* HTTP/2: its stream (h2.c); NULL on HTTP/1.1 */
    struct sy_buf *in;          /* its head and body bytes: client->in on HTTP/1.1 */
    struct sy_http_worker *hw;
    struct sy_conf *conf;       /* the snapshot this request started on */
    struct event client_wev;    /* HTTP/1.1: the socket's write event; HTTP/2: the stream's timer */
    char peer_ip[48];           /* the client socket's peer, as text */

    struct sy_http_head head;   /* request head, spans into in */
    struct sy_header *headers;  /* capacity max_headers */
    uint32_t headers_cap;

    const struct sy_route *route;
    const struct sy_service *service;
    enum sy_slot slot;
    bool set_cookie;            /* the response pins the client: slot, cookie_bucket (split.h) */
    uint8_t cookie_bucket;
    struct sy_pool *pool;
    struct sy_instance *instance;
    uint64_t tried;             /* instances tried (bit per index) */
    int attempts;

    struct sy_upstream *up;
    struct sy_relay req_relay;  /* request body, in in */
    struct sy_relay resp_relay; /* response body, in up->in */
    struct sy_http_head resp;   /* response head, spans into up->in */
    struct sy_header *resp_headers;
    struct sy_gzip *gzip;       /* the route's compress policy at work (compress.h), or NULL */

    struct sy_iovq out;         /* head being written (upstream or client) */
    char *extra;                /* headers the gateway adds (owned, reused) */
    size_t extra_len, extra_cap;

    char request_id[SY_REQUEST_ID_MAX + 1];
    char client_ip[48];
    struct sockaddr_storage client_addr;    /* client_ip as an address */
    char country[3];            /* ISO 3166 alpha-2 of the client; "" unknown (geoip module) */
    bool peer_trusted;
    bool client_keepalive;      /* keep the client connection after this response */
    bool upstream_reusable;
    bool response_started;      /* a response head went to the client */
    bool request_sent;          /* head and whole body written to the app */
    bool websocket;             /* a WebSocket upgrade was asked for and forwarded */
    struct sy_tunnel tunnel;
    bool continue_sent;
    bool trailers_sent;         /* the response's trailers went to send_trailers */
    int status;                 /* sent to the client */
    const char *error_reason;   /* for logs */
    uint64_t bytes_in, bytes_out;
    int64_t start_us, upstream_start_us, upstream_head_us;   /* monotonic */
    int64_t start_wall_ms;
    int64_t response_deadline_ms;   /* the app's response head is due by then */
    struct sy_request *next_free;
    uint8_t waiting_module;     /* SY_REQ_WAITING_MODULE: the module's index (modules.c) */
    /* the modules' scratch (sy_module.h), zeroed when a request starts */
    unsigned char module_scratch[SY_MODULE_SCRATCH_MAX] __attribute__((aligned(8)));
};

struct sy_http_worker {
    struct sy_worker *w;
    struct sy_client clients;   /* list head (sentinel) */
    size_t nclients;
    struct sy_peer **peers;     /* open addressing by address */
    size_t npeers, peers_cap;
    struct sy_request *free_requests;
    size_t nfree_requests;
    uint64_t request_seq;
    char request_id_prefix[17];
    int64_t panic_logged_ms;
    uint64_t rng;               /* canary split (xorshift64; never 0) */
    bool draining;
    bool drain_closes_idle;     /* a stop; false for an upgrade's hand-over (worker.h) */
    const struct sy_conf *conf_seen;    /* w->conf when last looked at (a reload changes it) */
    uint32_t conf_gen;                  /* reloads seen: HTTP/2 connections of older ones go */
    struct sy_worker_metrics *metrics;  /* core/metrics.h */
    struct event housekeeping;          /* once a second: the security log's summaries */
    struct sy_request *tunnels;         /* open WebSocket tunnels (tunnel.c) */
    struct event tunnel_sweep;          /* pending while tunnels is not empty */
};

/*
 * Arms ev with a timeout of timeout_ms, or with none when timeout_ms <= 0.
 * (event_add with a NULL timeout would keep an earlier timeout armed.)
 */
int sy_event_arm(struct event *ev, int64_t timeout_ms);

/* conn.c */
void sy_request_new_id(struct sy_request *req);
/* A request on c, carried as ds says; NULL when memory is short. */
struct sy_request *sy_request_new(struct sy_client *c, const struct sy_downstream_ops *ds);
/*
 * The end of a request, whichever way: logged (access log, metrics, rollout
 * samples) unless it ended while its head was read, then freed. aborted:
 * the client went away or gave up, or the response was cut short (the
 * upstream side is let go). sy_request_log_end logs once (state DONE);
 * HTTP/2 frees later, when its stream closes.
 */
void sy_request_end(struct sy_request *req, bool aborted);
void sy_request_log_end(struct sy_request *req, bool aborted);
void sy_request_free(struct sy_request *req);
/* The client can take more of a response (the downstream's wake-up). */
void sy_request_writable(struct sy_request *req);
/* A request head the gateway refuses: a security-log line and a local answer. */
void sy_request_reject(struct sy_request *req, int status, const char *reason);
void sy_client_request_done(struct sy_request *req);
void sy_client_close(struct sy_client *c);
/*
 * Closes our side (shutdown) and discards what still arrives for a
 * bounded time before closing: the last bytes sent (a response, a GOAWAY)
 * are not destroyed by a reset for unread input (RFC 9112 9.6).
 */
void sy_client_linger(struct sy_client *c);
void sy_respond_local(struct sy_request *req, int status, const char *reason);
/* The same with headers ("Name: value\r\n" lines) before Connection. */
void sy_respond_local_with(struct sy_request *req, int status, const char *reason,
                           const char *headers);
/* With a body of its own (left in place until the request ends, not copied). */
void sy_respond_local_body(struct sy_request *req, int status, const char *content_type,
                           const void *body, size_t len, const char *headers);

/* proxy.c */
void sy_proxy_start(struct sy_request *req);
/* After the route's modules let it through (at once, or resumed): split, balance, connect. */
void sy_proxy_continue(struct sy_request *req);
void sy_proxy_abort(struct sy_request *req);
void sy_proxy_on_client_readable(struct sy_request *req);
void sy_proxy_on_client_writable(struct sy_request *req);
void sy_proxy_on_client_timeout(struct sy_request *req, short what);

/* proxy.c: lets go of the upstream connection (closed, never reused). */
void sy_proxy_detach(struct sy_request *req);

/* tunnel.c */
void sy_tunnel_start(struct sy_request *req);
void sy_tunnel_step(struct sy_request *req);
void sy_tunnel_abort(struct sy_request *req);

/* upstream.c */
struct sy_peer *sy_peer_get(struct sy_http_worker *hw, const struct sockaddr *sa, socklen_t len,
                            const char *tls_name);
struct sy_upstream *sy_upstream_take_idle(struct sy_peer *peer);
struct sy_upstream *sy_upstream_connect(struct sy_http_worker *hw, struct sy_peer *peer);
void sy_upstream_release(struct sy_upstream *up, bool reusable, unsigned keepalive);
void sy_upstream_close(struct sy_upstream *up);
void sy_upstream_close_all_idle(struct sy_http_worker *hw);
void sy_upstream_free_peers(struct sy_http_worker *hw);

/* iovq.c-style helpers (proxy.c) */
int sy_iovq_push(struct sy_iovq *q, const void *base, size_t len);
ssize_t sy_iovq_write(struct sy_iovq *q, struct sy_io *io);   /* -1 with errno; 0 when all written */

/* access_log.c */
void sy_access_log(const struct sy_request *req);
int64_t sy_now_us(void);

#endif
