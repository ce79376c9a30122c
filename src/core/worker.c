/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * worker.c: the worker thread's loop, its listening sockets and its view of
 * the configuration. Snapshots in use are counted per worker without
 * atomics; only adopting or dropping a snapshot touches its shared count.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "redis.h"
#include "worker.h"

#define ACCEPTS_PER_EVENT 64
/* Enough for the requests in flight at once on a busy worker; a burst beyond
 * it goes back to malloc rather than stay resident. */
#define BUFS_CACHED       64

/*
 * Admission: max_connections is one count for the process; when it is
 * reached, workers stop accepting and the kernel's backlog holds new
 * connections until one closes (as nginx and HAProxy do).
 * max_connections_per_ip counts connections per client address in a
 * fixed table shared by all workers, indexed by a hash of the address:
 * two addresses that collide share one budget, which is rare with 65,536
 * slots and only ever errs toward refusing. Counting always runs, so a
 * reload that sets a limit applies it to connections already open.
 */
#define PER_IP_SLOTS     65536
#define CAPACITY_RECHECK_MS 100

static atomic_long connections_open;
static _Atomic uint32_t per_ip_open[PER_IP_SLOTS];

long sy_connections_active(void)
{
    return atomic_load_explicit(&connections_open, memory_order_relaxed);
}

static _Atomic uint32_t *per_ip_slot(const struct sockaddr *sa)
{
    const unsigned char *p;
    size_t n;
    uint32_t h = 2166136261u;

    if (sa->sa_family == AF_INET6) {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        n = 16;
    } else {
        p = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = 4;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return &per_ip_open[h % PER_IP_SLOTS];
}

int64_t sy_worker_now_ms(struct sy_worker *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static struct snapshot_use *find_use(struct sy_worker *w, const struct sy_conf *conf)
{
    for (size_t i = 0; i < w->nuses; i++)
        if (w->uses[i].conf == conf)
            return &w->uses[i];
    return NULL;
}

/* Drops snapshots that are neither current nor used by a request. */
static void collect_uses(struct sy_worker *w)
{
    size_t keep = 0;
    for (size_t i = 0; i < w->nuses; i++) {
        struct snapshot_use *u = &w->uses[i];
        if (u->users == 0 && u->conf != w->conf) {
            sy_conf_unref(u->conf);
            continue;
        }
        w->uses[keep++] = *u;
    }
    w->nuses = keep;
}

struct sy_conf *sy_worker_conf_acquire(struct sy_worker *w)
{
    struct snapshot_use *u = find_use(w, w->conf);
    u->users++;
    return w->conf;
}

void sy_worker_conf_release(struct sy_worker *w, struct sy_conf *conf)
{
    struct snapshot_use *u = find_use(w, conf);
    if (--u->users == 0 && conf != w->conf)
        collect_uses(w);
}

/*
 * The worker's Redis connection follows the snapshot: made when "redis"
 * appears, reconnected when its url changes, closed when it goes. Its
 * first connect runs from the worker's loop, on the worker's thread.
 * Closed, it tells the requests that wait on it (LOST: their module's
 * fallback decides), with w->redis already NULL, so that none of them
 * sends to it again meanwhile.
 */
static void adopt_redis(struct sy_worker *w, const struct sy_conf *conf)
{
    char who[32];

    if (!conf->redis.enabled) {
        struct sy_redis *gone = w->redis;
        w->redis = NULL;
        sy_redis_close(gone);
    } else if (w->redis) {
        sy_redis_configure(w->redis, &conf->redis);
    } else {
        snprintf(who, sizeof(who), "worker %u", w->id);
        w->redis = sy_redis_new(w->base, who, &conf->redis);
    }
}

/* Returns -1 when out of memory: the worker then keeps its current snapshot. */
static int adopt_conf(struct sy_worker *w, struct sy_conf *conf)
{
    if (w->nuses == w->uses_cap) {
        /* Long requests can pin many old snapshots: bounded by requests, not by us. */
        size_t cap = w->uses_cap ? w->uses_cap * 2 : 8;
        struct snapshot_use *uses = realloc(w->uses, cap * sizeof(*uses));
        if (!uses)
            return -1;
        w->uses = uses;
        w->uses_cap = cap;
    }
    w->conf = conf;
    w->uses[w->nuses++] = (struct snapshot_use){conf, 0};
    /*
     * A request head stays in its buffer until the request ends (the access
     * log reads it), so the body always needs room beyond the largest head.
     */
    uint32_t cap = (uint32_t)conf->limits.max_header_bytes + SY_BUF_BODY_ROOM;
    sy_buf_pool_set_cap(&w->bufs, cap < 16384 ? 16384 : cap);
    adopt_redis(w, conf);
    collect_uses(w);
    return 0;
}

static void on_capacity_timer(evutil_socket_t fd, short what, void *arg);

/* Stops accepting at max_connections; the backlog holds new connections meanwhile. */
static void pause_accept(struct sy_worker *w, bool paused)
{
    static const struct timeval recheck = {0, CAPACITY_RECHECK_MS * 1000};

    if (paused == w->accept_paused)
        return;
    w->accept_paused = paused;
    for (size_t i = 0; i < w->nlisten; i++) {
        if (!w->listen_events[i])
            continue;
        if (paused)
            event_del(w->listen_events[i]);
        else
            event_add(w->listen_events[i], NULL);
    }
    if (paused) {
        sy_log_error(SY_LOG_WARN, "worker", "worker %u: max_connections (%lld) reached, "
                     "not accepting until a connection closes", w->id,
                     (long long)w->conf->limits.max_connections);
        if (!w->capacity_timer)
            w->capacity_timer = event_new(w->base, -1, EV_PERSIST, on_capacity_timer, w);
        event_add(w->capacity_timer, &recheck);
    } else if (w->capacity_timer) {
        event_del(w->capacity_timer);
    }
}

/* Other workers' closes free capacity too: look again now and then. */
static void on_capacity_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_worker *w = arg;
    (void)fd, (void)what;

    if (sy_connections_active() < w->conf->limits.max_connections)
        pause_accept(w, false);
}

static bool admit_peer(struct sy_worker *w, const struct sockaddr *peer)
{
    _Atomic uint32_t *slot = per_ip_slot(peer);
    uint32_t before = atomic_fetch_add_explicit(slot, 1, memory_order_relaxed);
    int64_t limit = w->conf->limits.max_connections_per_ip;

    if (limit > 0 && before >= (uint64_t)limit) {
        atomic_fetch_sub_explicit(slot, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

/* Over max_connections_per_ip: a short 429 and close; one warning a second says how many. */
static void refuse_peer(struct sy_worker *w, int fd, const struct sockaddr *peer)
{
    static const char answer[] = "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n"
                                 "Content-Length: 0\r\n\r\n";
    char ip[64];
    int64_t now = sy_worker_now_ms(w);

    if (write(fd, answer, sizeof(answer) - 1) < 0) {
        /* nothing more to do: the connection is refused either way */
    }
    close(fd);
    atomic_fetch_sub_explicit(&connections_open, 1, memory_order_relaxed);
    w->refused_per_ip++;
    if (now - w->refused_logged_ms >= 1000) {
        sy_addr_ip_text(peer, ip, sizeof(ip));
        sy_log_error(SY_LOG_WARN, "worker", "worker %u: refused %llu connection(s) over "
                     "max_connections_per_ip (%lld), latest from %s", w->id,
                     (unsigned long long)w->refused_per_ip,
                     (long long)w->conf->limits.max_connections_per_ip, ip);
        w->refused_per_ip = 0;
        w->refused_logged_ms = now;
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct sy_worker *w = arg;
    size_t index = 0;
    (void)what;

    while (index < w->nlisten && w->listen_fds[index] != fd)
        index++;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        if (sy_connections_active() >= w->conf->limits.max_connections) {
            pause_accept(w, true);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int c = accept4(fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE)
                sy_log_error(SY_LOG_ERROR, "worker", "accept on %s: %s",
                             w->conf->listen[index].addr.text, strerror(errno));
            return;
        }
        atomic_fetch_add_explicit(&connections_open, 1, memory_order_relaxed);
        if (!admit_peer(w, (struct sockaddr *)&peer)) {
            refuse_peer(w, c, (struct sockaddr *)&peer);
            continue;
        }
        w->hooks->accept(w, c, (struct sockaddr *)&peer, len, index);
    }
}

static void close_listeners(struct sy_worker *w)
{
    for (size_t i = 0; i < w->nlisten; i++) {
        if (w->listen_events && w->listen_events[i]) {
            event_free(w->listen_events[i]);
            w->listen_events[i] = NULL;
        }
        if (w->listen_fds[i] >= 0) {
            close(w->listen_fds[i]);
            w->listen_fds[i] = -1;
        }
    }
}

void sy_worker_connection_closed(struct sy_worker *w, const struct sockaddr *peer)
{
    atomic_fetch_sub_explicit(per_ip_slot(peer), 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&connections_open, 1, memory_order_relaxed);
    if (w->accept_paused && sy_connections_active() < w->conf->limits.max_connections)
        pause_accept(w, false);
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_worker *w = arg;
    (void)fd, (void)what;

    if (w->hooks->active(w) == 0 || sy_worker_now_ms(w) >= w->drain_deadline_ms)
        event_base_loopbreak(w->base);
}

static void begin_drain(struct sy_worker *w, bool close_idle)
{
    static const struct timeval tick = {0, 50000};

    close_listeners(w);
    w->drain_deadline_ms = sy_worker_now_ms(w) + w->conf->shutdown_timeout_ms;
    w->hooks->drain(w, close_idle);
    w->drain_timer = event_new(w->base, -1, EV_PERSIST, on_drain_timer, w);
    event_add(w->drain_timer, &tick);
    on_drain_timer(-1, 0, w);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct sy_worker *w = arg;
    uint64_t n;
    (void)what;

    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        sy_log_error(SY_LOG_ERROR, "worker", "wake-up read: %s", strerror(errno));
    struct sy_conf *conf = atomic_exchange(&w->next_conf, NULL);
    if (conf && adopt_conf(w, conf) < 0) {
        sy_log_error(SY_LOG_ERROR, "worker", "worker %u: out of memory, keeping the previous "
                     "configuration", w->id);
        sy_conf_unref(conf);
    }
    int cmd = atomic_load(&w->command);
    if (cmd == SY_WORKER_STOP)
        event_base_loopbreak(w->base);
    else if ((cmd == SY_WORKER_DRAIN || cmd == SY_WORKER_HAND_OVER) && !w->drain_timer)
        begin_drain(w, cmd == SY_WORKER_DRAIN);
}

static void wake(struct sy_worker *w)
{
    uint64_t one = 1;
    if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        sy_log_error(SY_LOG_ERROR, "worker", "wake-up write: %s", strerror(errno));
}

void sy_worker_publish_conf(struct sy_worker *w, struct sy_conf *conf)
{
    struct sy_conf *old = atomic_exchange(&w->next_conf, sy_conf_ref(conf));
    if (old)
        sy_conf_unref(old);     /* superseded before the worker saw it */
    wake(w);
}

void sy_worker_command(struct sy_worker *w, enum sy_worker_command cmd)
{
    atomic_store(&w->command, cmd);
    wake(w);
}

struct sy_worker *sy_worker_create(unsigned id, struct sy_conf *conf, int *listen_fds,
                                   size_t nlisten, const struct sy_worker_hooks *hooks)
{
    struct sy_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        for (size_t i = 0; i < nlisten; i++)
            close(listen_fds[i]);
        free(listen_fds);
        return NULL;
    }
    w->id = id;
    w->hooks = hooks;
    w->listen_fds = listen_fds;
    w->nlisten = nlisten;
    w->listen_events = calloc(nlisten ? nlisten : 1, sizeof(*w->listen_events));
    /*
     * One thread per base, so no locking; the changelist folds a delete and
     * an add of the same fd within one loop turn into no system call.
     */
    struct event_config *cfg = event_config_new();
    if (cfg) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        w->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!w->listen_events || !w->base || w->wake_fd < 0) {
        sy_worker_join_and_free(w);
        return NULL;
    }
    sy_buf_pool_init(&w->bufs, 16384, BUFS_CACHED);
    w->conf = NULL;
    if (adopt_conf(w, sy_conf_ref(conf)) < 0) {
        sy_conf_unref(conf);
        sy_worker_join_and_free(w);
        return NULL;
    }
    w->wake_event = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
    for (size_t i = 0; i < nlisten; i++) {
        w->listen_events[i] = event_new(w->base, listen_fds[i], EV_READ | EV_PERSIST,
                                        on_accept, w);
        event_add(w->listen_events[i], NULL);
    }
    event_add(w->wake_event, NULL);
    return w;
}

static void *worker_main(void *arg)
{
    struct sy_worker *w = arg;

    sy_log_attach(w->id + 1);
    event_base_dispatch(w->base);
    close_listeners(w);
    w->hooks->fini(w);
    atomic_store(&w->exited, true);
    return NULL;
}

int sy_worker_start(struct sy_worker *w)
{
    if (w->hooks->init(w) < 0)
        return -1;
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void sy_worker_join_and_free(struct sy_worker *w)
{
    if (w->thread)
        pthread_join(w->thread, NULL);
    if (w->drain_timer)
        event_free(w->drain_timer);
    if (w->capacity_timer)
        event_free(w->capacity_timer);
    if (w->wake_event)
        event_free(w->wake_event);
    close_listeners(w);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    struct sy_conf *pending = atomic_exchange(&w->next_conf, NULL);
    if (pending)
        sy_conf_unref(pending);
    sy_redis_free(w->redis);    /* after the protocol's fini: no request waits on it */
    for (size_t i = 0; i < w->nuses; i++)
        sy_conf_unref(w->uses[i].conf);
    free(w->uses);
    sy_buf_pool_fini(&w->bufs);
    if (w->base)
        event_base_free(w->base);
    free(w->listen_events);
    free(w->listen_fds);
    free(w);
}
