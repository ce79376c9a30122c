/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * worker.h: a worker thread: one libevent base, its own SO_REUSEPORT
 * listening sockets, and everything its connections use. A request lives
 * its whole life on one worker. The protocol layer plugs in through
 * struct sy_worker_hooks (the core knows nothing of HTTP).
 */
#ifndef SY_WORKER_H
#define SY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "buf.h"
#include "conf.h"

struct sy_worker;
struct sy_http_worker;          /* owned by the protocol layer */
struct sy_redis;                /* redis.h */

struct sy_worker_hooks {
    int (*init)(struct sy_worker *w);
    /*
     * A new client socket (non-blocking) accepted on listener `listen_index`.
     * The worker has counted it (limits.max_connections and
     * max_connections_per_ip); the protocol layer calls
     * sy_worker_connection_closed() exactly once when it closes it.
     */
    void (*accept)(struct sy_worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen,
                   size_t listen_index);
    /*
     * Graceful stop began: finish the connections in flight. close_idle:
     * close idle keep-alive connections now (a stop). Else (an upgrade: a
     * new process serves) close each after its next response or its
     * keep-alive timeout, never while the client may be sending on it.
     */
    void (*drain)(struct sy_worker *w, bool close_idle);
    /* Connections still open (the worker exits when this reaches 0). */
    size_t (*active)(struct sy_worker *w);
    /* Last call, on the worker thread, after the loop ended. */
    void (*fini)(struct sy_worker *w);
};

struct snapshot_use {
    struct sy_conf *conf;
    unsigned users;             /* requests of this worker using it */
};

enum sy_worker_command {
    SY_WORKER_RUN,
    SY_WORKER_DRAIN,            /* graceful stop */
    SY_WORKER_HAND_OVER,        /* graceful stop after an upgrade: idle connections linger */
    SY_WORKER_STOP,             /* stop now */
};

struct sy_worker {
    unsigned id;
    pthread_t thread;
    struct event_base *base;
    const struct sy_worker_hooks *hooks;

    struct sy_conf *conf;       /* current snapshot; the worker holds one reference */
    struct snapshot_use *uses;  /* the current snapshot first among those in use */
    size_t nuses, uses_cap;
    _Atomic(struct sy_conf *) next_conf;   /* handed over by the main thread */

    int *listen_fds;            /* one per conf->listen entry; -1 once closed */
    struct event **listen_events;
    size_t nlisten;

    int wake_fd;                /* eventfd: the main thread has news */
    struct event *wake_event;
    struct event *drain_timer;
    _Atomic int command;        /* enum sy_worker_command */
    _Atomic bool exited;
    int64_t drain_deadline_ms;
    bool accept_paused;         /* max_connections reached */
    struct event *capacity_timer;   /* rechecks while paused */
    uint64_t refused_per_ip;    /* since the last warning */
    int64_t refused_logged_ms;

    struct sy_buf_pool bufs;
    struct sy_http_worker *http;
    struct sy_redis *redis;     /* this worker's Redis connection; NULL without "redis" */
};

/*
 * Creates a worker (not started) owning listen_fds, with one reference on
 * conf taken for it.
 */
struct sy_worker *sy_worker_create(unsigned id, struct sy_conf *conf, int *listen_fds,
                                   size_t nlisten, const struct sy_worker_hooks *hooks);
int sy_worker_start(struct sy_worker *w);
void sy_worker_join_and_free(struct sy_worker *w);

/* From the main thread: adopt conf (a reference is taken for the worker). */
void sy_worker_publish_conf(struct sy_worker *w, struct sy_conf *conf);
void sy_worker_command(struct sy_worker *w, enum sy_worker_command cmd);

/* On the worker thread: the snapshot a new request runs on, counted until released. */
struct sy_conf *sy_worker_conf_acquire(struct sy_worker *w);
void sy_worker_conf_release(struct sy_worker *w, struct sy_conf *conf);

/* A connection counted at accept has closed. */
void sy_worker_connection_closed(struct sy_worker *w, const struct sockaddr *peer);

/* Wall-clock milliseconds of the current loop turn (cached). */
int64_t sy_worker_now_ms(struct sy_worker *w);

/* Client connections open across all workers. */
long sy_connections_active(void);

#endif
