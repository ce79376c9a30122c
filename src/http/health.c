/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * health.c: active health checks (SPEC.md pools.*.health) on the main
 * thread's event loop. Each instance of a checked pool has one struct check:
 * one event (the timer between checks, the socket's wait during one) and,
 * per check, a socket of its own - never a proxied connection. A check keeps
 * a fixed phase (a random offset in the first interval, then every
 * interval_ms), so checks neither fire together nor drift. Results and the
 * rise/fall state machine go to the instance's live state (core/live.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/clock.h"
#include "core/live.h"
#include "core/log.h"
#include "health.h"
#include "http.h"

/* Bytes after the head read (and dropped) while waiting for the app to close first. */
#define DRAIN_MAX 65536

/*
 * Timer slack: a check starts on the next multiple of this many ms (of the
 * monotonic clock), at most 1/50 of its interval late. Checks due close
 * together then start in one wake-up of the loop, which costs less than
 * one wake-up each, and stay spread over the interval.
 */
#define SLACK_MAX_MS 20

/*
 * A check: IDLE -> CONNECTING -> [HANDSHAKE] -> SENDING -> READING, the
 * result, then DRAINING until the app closes (it answered Connection:
 * close), so that the reset release() ends with never cuts a response the
 * app is still writing; then IDLE again. A failure before the result goes
 * straight back to IDLE.
 */
enum check_state {
    CHECK_IDLE,
    CHECK_CONNECTING,
    CHECK_HANDSHAKE,
    CHECK_SENDING,
    CHECK_READING,
    CHECK_DRAINING,
};

/* For "timed out after N ms STATE". */
static const char *const state_names[] = {
    [CHECK_IDLE] = "idle",
    [CHECK_CONNECTING] = "connecting",
    [CHECK_HANDSHAKE] = "in the TLS handshake",
    [CHECK_SENDING] = "sending the request",
    [CHECK_READING] = "waiting for the response",
    [CHECK_DRAINING] = "reading the body",
};

/* One instance's checker; owned by the check list (struct checker). */
struct check {
    struct event ev;            /* timer while idle; the socket's wait during a check */
    short ev_what;              /* what ev is assigned for: 0 (timer), EV_READ or EV_WRITE */
    enum check_state state;
    struct sy_io io;            /* fd -1 between checks */
    const struct sy_pool *pool; /* in checker.conf */
    const struct sy_instance *inst;
    int64_t next_ms;            /* monotonic: start of the next check (the phase) */
    int64_t deadline_ms;        /* monotonic: end of the current check */
    char *request;              /* built once per snapshot (owned) */
    uint32_t request_len, sent;
    char *partial;              /* a head that came in pieces (owned); NULL: none */
    uint32_t partial_len;
    uint32_t drained;
};

/*
 * The main thread's checker: the list of the current snapshot, which it
 * holds a reference to. Checks read into one shared scratch buffer (one
 * callback runs at a time); only a head split over several reads gets a
 * buffer of its own.
 */
struct checker {
    struct event_base *base;    /* NULL: not started, or stopped */
    struct sy_conf *conf;       /* referenced; NULL when there is no list */
    struct check *checks;
    size_t nchecks;
    char *scratch;              /* limits.max_head_bytes */
    struct sy_header *headers;  /* limits.max_headers */
    struct sy_parse_limits limits;
    uint64_t rng;
    int64_t local_error_ms;     /* monotonic: when the last one was logged */
};

static struct checker checker;

static void on_event(evutil_socket_t fd, short what, void *arg);

/* xorshift64*: spreading checks needs no cryptographic randomness. */
static uint64_t random_u64(void)
{
    uint64_t x = checker.rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    checker.rng = x;
    return x * 2685821657736338717ULL;
}

/* ---- results -------------------------------------------------------------- */

static void health_changed(const struct sy_pool *p, const struct sy_instance *inst, int old,
                           int now_health, const char *text, int64_t wall_ms)
{
    struct sy_instance_live *live = inst->live;
    const char *pool = p->name, *addr = inst->addr.text;

    atomic_store_explicit(&live->health, now_health, memory_order_relaxed);
    live->check.changed_ms = wall_ms;
    const struct sy_log_field fields[] = {
        {.name = "pool", .str = pool},
        {.name = "instance", .str = addr},
        {.name = "health", .str = sy_health_name(now_health)},
        {.name = "previous", .str = sy_health_name(old)},
    };
    sy_log_security("health_change", "", "", text, fields, sizeof(fields) / sizeof(fields[0]));
    if (now_health == SY_HEALTH_DOWN)
        sy_log_error(SY_LOG_WARN, "health", "pool %s instance %s is down (was %s) after %d "
                     "failed check(s) in a row: %s", pool, addr, sy_health_name(old),
                     live->check.failures, text);
    else
        sy_log_error(SY_LOG_INFO, "health", "pool %s instance %s is up (was %s) after %d "
                     "passed check(s) in a row: %s", pool, addr, sy_health_name(old),
                     live->check.successes, text);
}

/*
 * One check's outcome: the counters, then rise/fall. UNKNOWN goes up at
 * the first success (an instance that answers should not wait for rise
 * at start), and down after fall failures, like UP.
 */
static void record(struct check *c, bool ok, int status, const char *text)
{
    struct sy_instance_live *live = c->inst->live;
    struct sy_check_status *st = &live->check;
    const struct sy_health_conf *h = &c->pool->health;

    st->last_ms = sy_clock_ms(CLOCK_REALTIME);
    st->last_status = status;
    if (ok) {
        st->successes += st->successes < INT_MAX;
        st->failures = 0;
        st->total_ok++;
        st->last_error[0] = '\0';
    } else {
        st->failures += st->failures < INT_MAX;
        st->successes = 0;
        st->total_failed++;
        snprintf(st->last_error, sizeof(st->last_error), "%s", text);
    }
    int old = atomic_load_explicit(&live->health, memory_order_relaxed);
    int now_health = old;
    if (ok && (old == SY_HEALTH_UNKNOWN || (old == SY_HEALTH_DOWN && st->successes >= h->rise)))
        now_health = SY_HEALTH_UP;
    else if (!ok && old != SY_HEALTH_DOWN && st->failures >= h->fall)
        now_health = SY_HEALTH_DOWN;
    if (now_health != old)
        health_changed(c->pool, c->inst, old, now_health, text, st->last_ms);
}

/* ---- one check's connection ----------------------------------------------- */

/*
 * Lets go of the check's connection and buffer; ev rests, unarmed. The
 * socket goes with a reset, as HAProxy's checks do: after the app closed
 * first there is nothing left to say, and a reset costs fewer packets than
 * a FIN and leaves no TIME_WAIT on either side; otherwise the check is
 * being abandoned anyway.
 */
static void release(struct check *c)
{
    static const struct linger reset = {.l_onoff = 1, .l_linger = 0};

    sy_io_forget(&c->io, &c->ev);
    event_del(&c->ev);
    if (c->io.fd >= 0)
        setsockopt(c->io.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    if (c->io.fd >= 0 || c->io.tls)
        sy_io_close(&c->io);
    free(c->partial);
    c->partial = NULL;
    c->partial_len = c->sent = c->drained = 0;
}

/* Arms ev as the timer of the next check, at c->next_ms (plus slack). */
static void arm_timer(struct check *c)
{
    int64_t slack = c->pool->health.interval_ms / 50;
    if (slack > SLACK_MAX_MS)
        slack = SLACK_MAX_MS;
    else if (slack < 1)
        slack = 1;
    int64_t left = (c->next_ms + slack - 1) / slack * slack - sy_clock_ms(CLOCK_MONOTONIC);

    if (c->ev_what != 0) {
        event_del(&c->ev);
        event_assign(&c->ev, checker.base, -1, 0, on_event, c);
        c->ev_what = 0;
    }
    c->state = CHECK_IDLE;
    sy_event_arm(&c->ev, left > 0 ? left : 1);     /* 0 would mean no timeout */
}

/* The check is over (its result recorded, or cancelled): wait for the next one. */
static void end_check(struct check *c)
{
    release(c);
    arm_timer(c);
}

static void fail(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct check *c, const char *fmt, ...)
{
    char text[sizeof(c->inst->live->check.last_error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    record(c, false, 0, text);
    end_check(c);
}

/*
 * The gateway, not the instance, could not check (no file descriptor, no
 * memory, no local port): no result, so that this cannot mark instances
 * down; one error line per 10 s at most.
 */
static bool local_error(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS ||
           err == EADDRNOTAVAIL;
}

static void skip(struct check *c, const char *what, int err)
{
    int64_t now = sy_clock_ms(CLOCK_MONOTONIC);

    if (checker.local_error_ms == 0 || now - checker.local_error_ms >= 10000) {
        checker.local_error_ms = now;
        sy_log_error(SY_LOG_ERROR, "health", "pool %s instance %s: check skipped, %s: %s",
                     c->pool->name, c->inst->addr.text, what, strerror(err));
    }
    end_check(c);
}

/* Waits for dir on the socket until the check's deadline. */
static void await(struct check *c, short dir)
{
    int64_t left = c->deadline_ms - sy_clock_ms(CLOCK_MONOTONIC);

    if (c->ev_what != dir) {
        sy_io_forget(&c->io, &c->ev);
        event_del(&c->ev);
        event_assign(&c->ev, checker.base, c->io.fd, dir, on_event, c);
        c->ev_what = dir;
    }
    if (sy_io_wait(&c->io, &c->ev, dir, left > 0 ? left : 1) < 0)
        fail(c, "cannot wait for the socket: %s", strerror(errno));
}

static void connect_failed(struct check *c, int err)
{
    if (local_error(err))
        skip(c, "connect", err);
    else if (err == ECONNREFUSED)
        fail(c, "connect refused");
    else
        fail(c, "connect failed: %s", strerror(err));
}

/*
 * Also called while CONNECTING on a plain socket: the write waits (EAGAIN)
 * until the connection is up, or reports why it failed (sk_err), so a
 * connection that is already up - loopback, a near LAN - costs no wait.
 */
static void send_request(struct check *c)
{
    while (c->sent < c->request_len) {
        ssize_t n = sy_io_write(&c->io, c->request + c->sent, c->request_len - c->sent);
        if (n > 0) {
            c->sent += (uint32_t)n;
            c->state = CHECK_SENDING;
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            await(c, EV_WRITE);
            return;
        }
        int err = n < 0 ? errno : EPIPE;
        if (c->state == CHECK_CONNECTING)
            connect_failed(c, err);
        else if (err == EPIPE || err == ECONNRESET)
            fail(c, "closed before a response");
        else
            fail(c, "send failed: %s", strerror(err));
        return;
    }
    c->state = CHECK_READING;
    await(c, EV_READ);
}

static void handshake(struct check *c)
{
    char why[256];

    switch (sy_io_handshake(&c->io)) {
    case SY_TLS_OK:
        c->state = CHECK_SENDING;
        send_request(c);
        return;
    case SY_TLS_WANT_READ:
        await(c, EV_READ);
        return;
    case SY_TLS_WANT_WRITE:
        await(c, EV_WRITE);
        return;
    case SY_TLS_ERROR:
        break;
    }
    sy_tls_error_text(why, sizeof(why));
    fail(c, "TLS handshake failed: %s", why);
}

static void connected(struct check *c)
{
    char host[256];

    if (!c->pool->tls_client) {
        c->state = CHECK_SENDING;
        send_request(c);
        return;
    }
    if (sy_tls_addr_host(&c->inst->addr, host, sizeof(host)) < 0) {
        fail(c, "TLS: no host name in %s", c->inst->addr.text);
        return;
    }
    struct sy_tls_conn *t = sy_tls_connect(c->pool->tls_client, c->io.fd, host);
    if (!t || sy_io_start_tls(&c->io, checker.base, t) < 0) {
        skip(c, "starting TLS", ENOMEM);
        return;
    }
    c->state = CHECK_HANDSHAKE;
    handshake(c);
}

static void connect_done(struct check *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err)
        connect_failed(c, err);
    else
        connected(c);
}

static void begin(struct check *c)
{
    const struct sy_health_conf *h = &c->pool->health;
    const struct sy_addr *a = &c->inst->addr;
    int64_t now = sy_clock_ms(CLOCK_MONOTONIC);

    /*
     * The next start is one interval after this one's due time, not after
     * now: no drift. Always at least one interval on (a timer may fire a
     * little early); ticks missed during a stall are skipped, not caught up.
     */
    c->next_ms += h->interval_ms;
    if (c->next_ms <= now)
        c->next_ms += ((now - c->next_ms) / h->interval_ms + 1) * h->interval_ms;
    c->deadline_ms = now + h->timeout_ms;
    c->io.fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->io.fd < 0) {
        skip(c, "socket", errno);
        return;
    }
    if (connect(c->io.fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
        connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        connect_failed(c, errno);
        return;
    }
    c->state = CHECK_CONNECTING;
    if (c->pool->tls_client)
        await(c, EV_WRITE);
    else
        send_request(c);
}

/* ---- the response --------------------------------------------------------- */

static bool expected(const struct sy_health_conf *h, int status)
{
    for (size_t i = 0; i < h->nexpect; i++)
        if (status >= h->expect[i].lo && status <= h->expect[i].hi)
            return true;
    return false;
}

/* Reads to the end of the stream (bounded): the app closes first. */
static void drain(struct check *c)
{
    for (;;) {
        ssize_t n = sy_io_read(&c->io, checker.scratch, checker.limits.max_head_bytes);
        if (n > 0 && (c->drained += (uint32_t)n) <= DRAIN_MAX)
            continue;
        if (n < 0 && errno == EAGAIN) {
            await(c, EV_READ);
            return;
        }
        break;                  /* the end, an error, or too much: close */
    }
    end_check(c);
}

static void read_failed(struct check *c, int err)
{
    char why[256];

    if (err == ECONNRESET) {
        fail(c, c->partial ? "connection reset inside the response head"
                           : "connection reset before a response");
    } else if (err == EPROTO && c->io.tls) {
        sy_tls_error_text(why, sizeof(why));
        fail(c, "TLS error: %s", why);
    } else {
        fail(c, "read failed: %s", strerror(err));
    }
}

/* The head was parsed: its status decides. */
static void head_done(struct check *c, int status)
{
    char text[32];

    snprintf(text, sizeof(text), "status %d", status);
    record(c, expected(&c->pool->health, status), status, text);
    free(c->partial);
    c->partial = NULL;
    c->state = CHECK_DRAINING;
    drain(c);
}

static void read_head(struct check *c)
{
    const uint32_t max = checker.limits.max_head_bytes;
    struct sy_http_head head = {.headers = checker.headers};

    for (;;) {
        /* A head in one read (the common case) needs no buffer of the check's own. */
        char *buf = c->partial ? c->partial : checker.scratch;
        uint32_t have = c->partial_len;
        ssize_t n = sy_io_read(&c->io, buf + have, max - have);
        if (n < 0) {
            if (errno == EAGAIN)
                await(c, EV_READ);
            else
                read_failed(c, errno);
            return;
        }
        if (n == 0) {
            fail(c, have ? "closed inside the response head" : "closed before a response");
            return;
        }
        uint32_t len = have + (uint32_t)n;
        sy_http_head_reset(&head);
        switch (sy_http_parse_response(&head, buf, len, &checker.limits, SY_METHOD_GET)) {
        case SY_PARSE_DONE:
            head_done(c, head.status);
            return;
        case SY_PARSE_ERROR:
            fail(c, "bad response: %s", head.error_reason);
            return;
        case SY_PARSE_AGAIN:
            break;
        }
        if (!c->partial) {
            if (!(c->partial = malloc(max))) {
                fail(c, "out of memory");
                return;
            }
            memcpy(c->partial, buf, len);
        }
        c->partial_len = len;
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    struct check *c = arg;
    (void)fd;

    if (c->state == CHECK_IDLE) {
        begin(c);
        return;
    }
    if (what & EV_TIMEOUT) {
        if (c->state == CHECK_DRAINING)
            end_check(c);
        else
            fail(c, "timed out after %lld ms %s", (long long)c->pool->health.timeout_ms,
                 state_names[c->state]);
        return;
    }
    switch (c->state) {
    case CHECK_CONNECTING: connect_done(c); break;
    case CHECK_HANDSHAKE: handshake(c); break;
    case CHECK_SENDING: send_request(c); break;
    case CHECK_READING: read_head(c); break;
    case CHECK_DRAINING: drain(c); break;
    case CHECK_IDLE: break;
    }
}

/* ---- the check list --------------------------------------------------------- */

static void free_checks(struct check *checks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        release(&checks[i]);
        free(checks[i].request);
    }
    free(checks);
}

/* A new list for conf's checked instances, timers not armed yet. */
static struct check *build(const struct sy_conf *conf, size_t *n)
{
    size_t count = 0, k = 0;

    for (size_t p = 0; p < conf->npools; p++)
        if (conf->pools[p].health.enabled)
            count += conf->pools[p].ninstances;
    *n = count;
    struct check *checks = calloc(count ? count : 1, sizeof(*checks));
    if (!checks)
        return NULL;
    for (size_t p = 0; p < conf->npools; p++) {
        const struct sy_pool *pool = &conf->pools[p];
        for (size_t i = 0; pool->health.enabled && i < pool->ninstances; i++, k++) {
            struct check *c = &checks[k];
            c->pool = pool;
            c->inst = &pool->instances[i];
            c->io.fd = -1;
            event_assign(&c->ev, checker.base, -1, 0, on_event, c);
            int len = asprintf(&c->request, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
                               "switchyard-health\r\nConnection: close\r\n\r\n",
                               pool->health.path, c->inst->addr.text);
            if (len < 0) {
                c->request = NULL;
                free_checks(checks, k + 1);
                return NULL;
            }
            c->request_len = (uint32_t)len;
        }
    }
    return checks;
}

static int by_live(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(const struct check *const *)a)->inst->live;
    uintptr_t y = (uintptr_t)(*(const struct check *const *)b)->inst->live;
    return x < y ? -1 : x > y;
}

/*
 * Phases for a new list: an instance the old list checked at the same
 * interval keeps its phase (the same live entry: same pool, same
 * address); any other starts at a random point of its first interval.
 */
static void schedule_new(struct check *checks, size_t n)
{
    struct check **old = malloc((checker.nchecks ? checker.nchecks : 1) * sizeof(*old));
    int64_t now = sy_clock_ms(CLOCK_MONOTONIC);

    for (size_t i = 0; old && i < checker.nchecks; i++)
        old[i] = &checker.checks[i];
    if (old)
        qsort(old, checker.nchecks, sizeof(*old), by_live);
    for (size_t i = 0; i < n; i++) {
        struct check *c = &checks[i], *key = c, **found = NULL;
        int64_t interval = c->pool->health.interval_ms;
        if (old)
            found = bsearch(&key, old, checker.nchecks, sizeof(*old), by_live);
        if (found && (*found)->pool->health.interval_ms == interval)
            c->next_ms = (*found)->next_ms;
        else
            c->next_ms = now + (int64_t)(random_u64() % (uint64_t)interval);
        arm_timer(c);
    }
    free(old);
}

/*
 * Instances of pools without checks are up: a reload that removes a
 * pool's "health" must not leave them down (or unknown) for good.
 */
static void unchecked_up(const struct sy_conf *conf)
{
    for (size_t p = 0; p < conf->npools; p++) {
        const struct sy_pool *pool = &conf->pools[p];
        for (size_t i = 0; !pool->health.enabled && i < pool->ninstances; i++) {
            struct sy_instance_live *live = pool->instances[i].live;
            int old = atomic_load_explicit(&live->health, memory_order_relaxed);
            live->check.successes = live->check.failures = 0;
            if (old == SY_HEALTH_UP)
                continue;
            health_changed(pool, &pool->instances[i], old, SY_HEALTH_UP,
                           "health checks removed from the pool", sy_clock_ms(CLOCK_REALTIME));
        }
    }
}

/* Scratch space for conf's limits; the old one goes (no check is reading now). */
static int size_scratch(const struct sy_conf *conf)
{
    struct sy_parse_limits lim = {
        .max_head_bytes = (uint32_t)conf->limits.max_header_bytes,
        .max_uri_bytes = (uint32_t)conf->limits.max_uri_bytes,
        .max_headers = (uint32_t)conf->limits.max_headers,
    };
    char *scratch = malloc(lim.max_head_bytes);
    struct sy_header *headers = calloc(lim.max_headers, sizeof(*headers));

    if (!scratch || !headers) {
        free(scratch);
        free(headers);
        return -1;
    }
    free(checker.scratch);
    free(checker.headers);
    checker.scratch = scratch;
    checker.headers = headers;
    checker.limits = lim;
    return 0;
}

/*
 * Replaces the list with one for conf. Checks in flight are cancelled (the
 * old snapshot may go right after); on failure the old list goes on.
 */
static int rebuild(struct sy_conf *conf)
{
    size_t n;
    struct check *checks = build(conf, &n);

    if (!checks)
        return -1;
    for (size_t i = 0; i < checker.nchecks; i++)
        release(&checker.checks[i]);
    if (size_scratch(conf) < 0) {
        free_checks(checks, n);
        for (size_t i = 0; i < checker.nchecks; i++)
            arm_timer(&checker.checks[i]);
        return -1;
    }
    schedule_new(checks, n);
    free_checks(checker.checks, checker.nchecks);
    if (n > 0 || checker.nchecks > 0)
        sy_log_error(SY_LOG_INFO, "health", "checking %zu instance(s)", n);
    checker.checks = checks;
    checker.nchecks = n;
    sy_conf_ref(conf);
    if (checker.conf)
        sy_conf_unref(checker.conf);
    checker.conf = conf;
    unchecked_up(conf);
    return 0;
}

/* ---- the service -------------------------------------------------------------- */

static int health_start(struct event_base *base, struct sy_conf *conf, char *err, size_t errlen)
{
    checker.base = base;
    checker.rng = (uint64_t)sy_clock_ms(CLOCK_REALTIME) * 0x9E3779B97F4A7C15ULL ^
                  (uint64_t)getpid() << 32 ^ (uint64_t)sy_clock_ms(CLOCK_MONOTONIC);
    if (checker.rng == 0)
        checker.rng = 1;
    if (rebuild(conf) < 0) {
        snprintf(err, errlen, "health checks: out of memory");
        checker.base = NULL;
        return -1;
    }
    return 0;
}

static void health_reconfigure(struct sy_conf *conf)
{
    if (!checker.base)
        return;
    if (rebuild(conf) < 0)
        sy_log_error(SY_LOG_ERROR, "health", "out of memory: health checks keep the "
                     "previous configuration");
}

static void health_stop(void)
{
    free_checks(checker.checks, checker.nchecks);
    free(checker.scratch);
    free(checker.headers);
    if (checker.conf)
        sy_conf_unref(checker.conf);
    checker = (struct checker){0};
}

const struct sy_main_service sy_health_service = {
    .start = health_start,
    .reconfigure = health_reconfigure,
    .stop = health_stop,
};
