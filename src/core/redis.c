/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * redis.c: one asynchronous Redis connection on an event base (redis.h),
 * and the process-wide counters and outage log that all of them share.
 *
 * Ownership. A call (one command) belongs to hiredis from the moment it is
 * sent until hiredis hands it back to on_reply, with a reply or with NULL
 * when the context goes (hiredis runs every pending callback then): only
 * there is it recycled, so a late reply always finds it. What the caller
 * sees is separate: call->fn is called at most once (reply, timeout or
 * loss) and cleared, or cleared by sy_redis_cancel.
 *
 * Re-entrancy. The context may be dropped from inside one of its own
 * callbacks (an error reply that means "reconnect"); hiredis then frees it
 * when the callback returns. So whoever drops a context first clears
 * r->ac and ac->data: callbacks of a context that is no longer r->ac only
 * recycle their calls.
 *
 * Closing. sy_redis_close drops the context as a reconnect does (callers
 * hear LOST); sy_redis_free sets r->freeing first, so that on_reply only
 * recycles: nothing may wait on that connection any more.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <openssl/evp.h>

#include "log.h"
#include "redis.h"
#include "sy_auto.h"

#if SY_HAVE_HIREDIS
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#endif

/* Scripts one connection knows (the gateway runs one; part of a fixed table). */
#define MAX_SCRIPTS     4
/* Recycled calls a connection keeps; a burst beyond goes back to malloc. */
#define CALLS_CACHED    256
/* Arguments of one command, EVALSHA's own three included. */
#define MAX_ARGS        16

/*
 * Kinds of error reply, by their first word, each logged at most once per
 * SY_REDIS_ERROR_LOG_MS; any other word shares the last slot.
 */
static const char *const error_kinds[] = {
    "ERR", "OOM", "NOPERM", "BUSY", "NOSCRIPT", "WRONGTYPE", "MISCONF", "EXECABORT",
    "NOREPLICAS", "CROSSSLOT", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN",
};
#define ERROR_KINDS (sizeof(error_kinds) / sizeof(error_kinds[0]) + 1)

/* ---- the process-wide view ---------------------------------------------- */

static struct {
    atomic_uint connections;
    atomic_uint ready;
    _Atomic uint64_t commands;
    _Atomic uint64_t errors;
    atomic_bool outage;             /* its line was written; its end was not */
    atomic_bool ever_ready;
    _Atomic int64_t outage_since_ms;
    struct {
        _Atomic int64_t logged_ms;  /* monotonic: its last line; 0 never */
        _Atomic uint64_t left_out;  /* since then */
    } error_log[ERROR_KINDS];
} shared;

void sy_redis_stats(struct sy_redis_stats *out)
{
    out->connections = atomic_load_explicit(&shared.connections, memory_order_relaxed);
    out->ready = atomic_load_explicit(&shared.ready, memory_order_relaxed);
    out->commands = atomic_load_explicit(&shared.commands, memory_order_relaxed);
    out->errors = atomic_load_explicit(&shared.errors, memory_order_relaxed);
}

const char *sy_redis_state_name(enum sy_redis_state state)
{
    static const char *const names[] = {"down", "resolving", "connecting", "ready"};
    return names[state];
}

void sy_redis_script_sha(const struct sy_redis_script *script, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(script->source, strlen(script->source), md, &n, EVP_sha1(), NULL) != 1)
        n = 0;
    for (unsigned int i = 0; i < n && i < 20; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[n < 20 ? 2 * n : 40] = '\0';
}

/* What the rate limits stored in Redis do meanwhile, for the outage's line. */
static const char *fallback_text(enum sy_redis_failure mode)
{
    switch (mode) {
    case SY_REDIS_FAIL_DENY:
        return "rate limits stored in Redis answer 429 (on_failure deny)";
    case SY_REDIS_FAIL_LOCAL:
        return "rate limits stored in Redis are enforced by this gateway alone "
               "(on_failure local)";
    case SY_REDIS_FAIL_ALLOW:
        break;
    }
    return "rate limits stored in Redis are not enforced (on_failure allow)";
}

#if SY_HAVE_HIREDIS

static void count_error(void)
{
    atomic_fetch_add_explicit(&shared.errors, 1, memory_order_relaxed);
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

struct script_slot {
    const struct sy_redis_script *script;
    char sha[41];
    bool loaded;                /* SCRIPT LOAD went out on this connection */
};

struct sy_redis_call {
    struct sy_redis *r;
    sy_redis_reply_fn fn;       /* NULL once told or cancelled */
    void *arg;
    struct event timer;         /* the caller's deadline, then the stall check */
    bool stalling;              /* the timer now runs the stall check */
    bool retried;               /* resent once after NOSCRIPT */
    struct script_slot *script; /* an EVALSHA's script, for NOSCRIPT */
    char *buf;                  /* the command in RESP, kept for a retry */
    size_t len, cap;
    struct sy_redis_call *next_free;
};

/*
 * A resolution under way. evdns runs its callbacks deferred, even a
 * cancelled one's, so the connection may be gone when it comes: the
 * callback frees this and does nothing when r is NULL (and frees the
 * resolver the connection left behind, which the callback still uses).
 */
struct resolving {
    struct sy_redis *r;
    struct evdns_getaddrinfo_request *req;
    struct evdns_base *orphan_dns;
};

struct sy_redis {
    struct event_base *base;
    char who[32];
    char *url_text;             /* as configured: a change reconnects */
    struct sy_redis_url url;
    char display[300];          /* host:port, no secrets */
    enum sy_redis_failure on_failure;
    enum sy_redis_state state;
    bool counted_ready;         /* counted in shared.ready */
    bool freeing;
    redisAsyncContext *ac;
    struct evdns_base *dns;
    struct resolving *resolving;    /* the name's resolution under way */
    struct event *timer;        /* DOWN: the retry; RESOLVING, CONNECTING: the deadline */
    const struct timeval *call_tv, *stall_tv;   /* common timeouts (O(1) queues) */
    int64_t backoff_ms;
    uint64_t rng;
    unsigned inflight;
    struct sy_redis_call *free_calls;
    unsigned nfree_calls;
    struct script_slot scripts[MAX_SCRIPTS];
    size_t nscripts;
    /* the subscription (sy_redis_subscribe), made again at every connect */
    char *sub_channel;
    sy_redis_message_fn on_message;
    sy_redis_subscribed_fn on_subscribed;
    void *sub_arg;
    bool sub_confirmed;         /* this connect's SUBSCRIBE was confirmed */
    struct event *probe;        /* the link's check (SY_REDIS_PROBE_MS) */
    bool probe_waiting;         /* a SUBSCRIBE sent, its confirmation not back */
    int64_t probe_sent_ms;      /* monotonic */
};

static void attempt(struct sy_redis *r);
static void subscribe_now(struct sy_redis *r);
static int load_script(struct sy_redis *r, struct script_slot *slot);

static struct timeval ms_tv(int64_t ms)
{
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
}

static void arm(struct sy_redis *r, int64_t ms)
{
    struct timeval tv = ms_tv(ms);

    evtimer_add(r->timer, &tv);
}

/* ---- becoming ready, failing, closing ------------------------------------ */

static void became_ready(struct sy_redis *r)
{
    r->state = SY_REDIS_READY;
    r->backoff_ms = SY_REDIS_BACKOFF_MIN_MS;
    evtimer_del(r->timer);
    r->counted_ready = true;
    unsigned ready = atomic_fetch_add(&shared.ready, 1) + 1;
    bool was_out = true, never = false;
    if (ready >= atomic_load(&shared.connections) &&
        atomic_compare_exchange_strong(&shared.outage, &was_out, false)) {
        int64_t since = atomic_load(&shared.outage_since_ms);
        atomic_store(&shared.ever_ready, true);
        sy_log_error(SY_LOG_WARN, "redis", "%s reachable again after %.1f s: rate limits "
                     "stored in Redis are global again", r->display,
                     (double)(wall_ms() - since) / 1000.0);
    } else if (!atomic_load(&shared.outage) &&
               atomic_compare_exchange_strong(&shared.ever_ready, &never, true)) {
        sy_log_error(SY_LOG_INFO, "redis", "connected to %s (db %d)", r->display, r->url.db);
    }
    sy_log_error(SY_LOG_DEBUG, "redis", "%s: connected to %s", r->who, r->display);
    if (r->sub_channel)
        subscribe_now(r);
}

static void uncount_ready(struct sy_redis *r)
{
    if (r->counted_ready) {
        r->counted_ready = false;
        atomic_fetch_sub(&shared.ready, 1);
    }
}

/* Drops the context (hiredis frees it now, or when its callback returns). */
static void drop_context(struct sy_redis *r)
{
    redisAsyncContext *ac = r->ac;

    if (r->resolving) {
        struct resolving *res = r->resolving;
        r->resolving = NULL;
        res->r = NULL;
        evdns_getaddrinfo_cancel(res->req);
    }
    if (!ac)
        return;
    r->ac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* Equal jitter: half the backoff, plus a random part of the other half. */
static int64_t next_delay(struct sy_redis *r)
{
    int64_t b = r->backoff_ms;

    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    r->backoff_ms = b * 2 > SY_REDIS_BACKOFF_MAX_MS ? SY_REDIS_BACKOFF_MAX_MS : b * 2;
    return b / 2 + (int64_t)(r->rng % (uint64_t)(b / 2 + 1));
}

/*
 * An attempt failed or a ready connection was lost (the context is gone or
 * being dropped): count it, write the outage's one line if no other
 * connection has, and retry after the backoff.
 */
static void failed(struct sy_redis *r, const char *why)
{
    bool was_ready = r->state == SY_REDIS_READY, calm = false;

    /* not ready before the context goes: its callbacks may try to send */
    r->state = SY_REDIS_DOWN;
    uncount_ready(r);
    count_error();
    drop_context(r);
    if (atomic_compare_exchange_strong(&shared.outage, &calm, true)) {
        atomic_store(&shared.outage_since_ms, wall_ms());
        sy_log_error(SY_LOG_WARN, "redis", "%s %s: %s; %s until it is back (retrying)",
                     r->display, was_ready ? "lost" : "unreachable", why,
                     fallback_text(r->on_failure));
    } else {
        sy_log_error(SY_LOG_DEBUG, "redis", "%s: %s: %s", r->who, r->display, why);
    }
    arm(r, next_delay(r));
}

/* A deliberate close (reconfiguration): no error, no outage. */
static void close_quietly(struct sy_redis *r)
{
    r->state = SY_REDIS_DOWN;
    uncount_ready(r);
    drop_context(r);
    evtimer_del(r->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_redis *r = arg;
    char why[64];

    (void)fd, (void)what;
    if (r->state == SY_REDIS_DOWN) {
        attempt(r);
        return;
    }
    snprintf(why, sizeof(why), "%s took over %d ms", r->state == SY_REDIS_RESOLVING
             ? "resolving the host" : "connecting and handshake", SY_REDIS_CONNECT_MS);
    failed(r, why);
}

/* ---- connecting ---------------------------------------------------------- */

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct sy_redis *r = ac->data;

    /* REDIS_OK: the handshake's replies decide; REDIS_ERR: hiredis frees ac next */
    if (!r || status == REDIS_OK || r->ac != ac)
        return;
    r->ac = NULL;
    failed(r, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct sy_redis *r = ac->data;

    (void)status;
    if (!r || r->ac != ac)
        return;                 /* we dropped it */
    r->ac = NULL;
    failed(r, ac->errstr[0] ? ac->errstr : "connection closed by Redis");
}

/* AUTH and SELECT: an error reply fails the attempt (NULL: the context went). */
static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sy_redis *r = privdata;
    const redisReply *rep = reply;

    if (!rep || r->ac != ac)
        return;
    if (rep->type == REDIS_REPLY_ERROR)
        failed(r, rep->str);
}

/* PING, the handshake's last command: its answer makes the connection ready. */
static void on_ping(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sy_redis *r = privdata;
    const redisReply *rep = reply;

    if (!rep || r->ac != ac || r->state != SY_REDIS_CONNECTING)
        return;
    if (rep->type == REDIS_REPLY_ERROR)
        failed(r, rep->str);
    else
        became_ready(r);
}

static int send_handshake(struct sy_redis *r)
{
    char db[16];
    const char *argv[3];
    size_t lens[3];
    int n = 0, rc = REDIS_OK;

    if (r->url.password[0]) {
        argv[n] = "AUTH", lens[n++] = 4;
        if (r->url.user[0])
            argv[n] = r->url.user, lens[n] = strlen(r->url.user), n++;
        argv[n] = r->url.password, lens[n] = strlen(r->url.password), n++;
        rc |= redisAsyncCommandArgv(r->ac, on_handshake, r, n, argv, lens);
        atomic_fetch_add_explicit(&shared.commands, 1, memory_order_relaxed);
    }
    if (r->url.db != 0) {
        snprintf(db, sizeof(db), "%d", r->url.db);
        argv[0] = "SELECT", lens[0] = 6;
        argv[1] = db, lens[1] = strlen(db);
        rc |= redisAsyncCommandArgv(r->ac, on_handshake, r, 2, argv, lens);
        atomic_fetch_add_explicit(&shared.commands, 1, memory_order_relaxed);
    }
    /* the scripts this connection ran before: ready only once Redis holds them again */
    for (size_t i = 0; i < r->nscripts; i++)
        if (load_script(r, &r->scripts[i]) < 0)
            rc = REDIS_ERR;
    rc |= redisAsyncCommand(r->ac, on_ping, r, "PING");
    atomic_fetch_add_explicit(&shared.commands, 1, memory_order_relaxed);
    return rc == REDIS_OK ? 0 : -1;
}

/* host: an address as text (TCP) or NULL (the URL's unix path). */
static void connect_to(struct sy_redis *r, const char *host)
{
    redisAsyncContext *ac = host ? redisAsyncConnect(host, r->url.port)
                                 : redisAsyncConnectUnix(r->url.path);
    char why[160];

    if (!ac) {
        failed(r, "out of memory");
        return;
    }
    if (ac->err) {
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        failed(r, why);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->state = SY_REDIS_CONNECTING;
    for (size_t i = 0; i < r->nscripts; i++)
        r->scripts[i].loaded = false;
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        failed(r, "cannot watch the socket");
        return;
    }
    /* a link that died silently (no FIN, no RST) is noticed in about 30 s */
    if (host)
        redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* pipelined behind the connect: hiredis writes them once the socket is up */
    if (send_handshake(r) < 0)
        failed(r, "cannot queue the handshake");
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct resolving *ticket = arg;
    struct sy_redis *r = ticket->r;
    char ip[INET6_ADDRSTRLEN], why[320];

    if (ticket->orphan_dns)
        evdns_base_free(ticket->orphan_dns, 0);
    free(ticket);
    if (r)
        r->resolving = NULL;
    if (!r || result == EVUTIL_EAI_CANCEL) {
        /* abandoned: the connection closed or moved on */
    } else if (result != 0 || !res) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", r->url.host,
                 evutil_gai_strerror(result));
        failed(r, why);
    } else {
        const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        inet_ntop(res->ai_family, a, ip, sizeof(ip));
        connect_to(r, ip);
    }
    if (res)
        evutil_freeaddrinfo(res);
}

/* A name is resolved on this loop (evdns): getaddrinfo would block it. */
static void resolve(struct sy_redis *r)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct resolving *ticket;

    if (!r->dns && !(r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE))) {
        failed(r, "cannot start the DNS resolver");
        return;
    }
    if (!(ticket = calloc(1, sizeof(*ticket)))) {
        failed(r, "out of memory");
        return;
    }
    ticket->r = r;
    r->state = SY_REDIS_RESOLVING;
    r->resolving = ticket;
    /* NULL when it answered at once (a hosts-file name): on_resolved ran and freed it */
    struct evdns_getaddrinfo_request *req = evdns_getaddrinfo(r->dns, r->url.host, NULL, &hints,
                                                              on_resolved, ticket);
    if (req && r->resolving == ticket)
        ticket->req = req;
}

static bool numeric_host(const char *host)
{
    unsigned char a[16];

    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static void attempt(struct sy_redis *r)
{
    arm(r, SY_REDIS_CONNECT_MS);    /* the deadline of the whole attempt */
    if (r->url.transport == SY_REDIS_UNIX)
        connect_to(r, NULL);
    else if (numeric_host(r->url.host))
        connect_to(r, r->url.host);
    else
        resolve(r);
}

/* ---- calls ---------------------------------------------------------------- */

static void on_call_timer(evutil_socket_t fd, short what, void *arg);

static struct sy_redis_call *call_get(struct sy_redis *r)
{
    struct sy_redis_call *call = r->free_calls;

    if (call) {
        r->free_calls = call->next_free;
        r->nfree_calls--;
        return call;
    }
    if (!(call = calloc(1, sizeof(*call))))
        return NULL;
    call->r = r;
    event_assign(&call->timer, r->base, -1, 0, on_call_timer, call);
    return call;
}

static void call_put(struct sy_redis *r, struct sy_redis_call *call)
{
    event_del(&call->timer);
    call->fn = NULL;
    call->stalling = call->retried = false;
    call->script = NULL;
    if (r->nfree_calls >= CALLS_CACHED) {
        free(call->buf);
        free(call);
        return;
    }
    call->next_free = r->free_calls;
    r->free_calls = call;
    r->nfree_calls++;
}

/* The command in RESP (an array of bulk strings) into call->buf. */
static int format(struct sy_redis_call *call, int argc, const char *const *argv,
                  const size_t *lens)
{
    size_t need = 16;

    for (int i = 0; i < argc; i++)
        need += lens[i] + 32;
    if (need > call->cap) {
        char *p = realloc(call->buf, need);
        if (!p)
            return -1;
        call->buf = p;
        call->cap = need;
    }
    size_t at = (size_t)snprintf(call->buf, call->cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        at += (size_t)snprintf(call->buf + at, call->cap - at, "$%zu\r\n", lens[i]);
        memcpy(call->buf + at, argv[i], lens[i]);
        at += lens[i];
        call->buf[at++] = '\r';
        call->buf[at++] = '\n';
    }
    call->len = at;
    return 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static int send_call(struct sy_redis *r, struct sy_redis_call *call)
{
    if (redisAsyncFormattedCommand(r->ac, on_reply, call, call->buf, call->len) != REDIS_OK)
        return -1;
    atomic_fetch_add_explicit(&shared.commands, 1, memory_order_relaxed);
    return 0;
}

/*
 * A script Redis will not load (an ACL without script|load, out of memory)
 * leaves every EVALSHA of it answered NOSCRIPT: the connection is of no
 * use. It fails, as a lost connection: the outage's one line names why,
 * switchyard_redis_up is 0, callers decide at once (on_failure) and the
 * handshake of each reconnect, which loads the script again, tells when it
 * is over. (slot is in r: read only while r holds this context.)
 */
static void on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sy_redis *r = ac->data;
    const redisReply *rep = reply;
    const struct script_slot *slot = privdata;
    char why[320];

    if (!rep || rep->type != REDIS_REPLY_ERROR || !r || r->ac != ac || r->freeing)
        return;
    snprintf(why, sizeof(why), "SCRIPT LOAD of %s refused: %s", slot->script->name, rep->str);
    failed(r, why);
}

/* SCRIPT LOAD, pipelined: the EVALSHA queued after it finds the script. */
static int load_script(struct sy_redis *r, struct script_slot *slot)
{
    const char *argv[] = {"SCRIPT", "LOAD", slot->script->source};
    const size_t lens[] = {6, 4, strlen(slot->script->source)};

    if (redisAsyncCommandArgv(r->ac, on_script_loaded, slot, 3, argv, lens) != REDIS_OK)
        return -1;
    atomic_fetch_add_explicit(&shared.commands, 1, memory_order_relaxed);
    slot->loaded = true;
    return 0;
}

/* Error replies that say this server cannot serve us now: reconnect (a failover). */
static bool reconnect_error(const char *msg)
{
    return strncmp(msg, "READONLY", 8) == 0 || strncmp(msg, "LOADING", 7) == 0 ||
           strncmp(msg, "MASTERDOWN", 10) == 0 || strncmp(msg, "NOAUTH", 6) == 0;
}

/* The slot of error_kinds that text (an error reply) is of. */
static size_t error_kind(const char *text)
{
    size_t n = strcspn(text, " ");

    for (size_t i = 0; i < ERROR_KINDS - 1; i++)
        if (strlen(error_kinds[i]) == n && strncmp(text, error_kinds[i], n) == 0)
            return i;
    return ERROR_KINDS - 1;
}

/* What call sent, for a log line: "EVALSHA of SCRIPT" or the command's name. */
static void call_name(const struct sy_redis_call *call, char *out, size_t len)
{
    const char *p = call->buf ? memchr(call->buf, '\n', call->len) : NULL;
    const char *name = p ? memchr(p + 1, '\n', call->len - (size_t)(p + 1 - call->buf)) : NULL;

    if (call->script)
        snprintf(out, len, "EVALSHA of %s", call->script->script->name);
    else if (name)
        snprintf(out, len, "%.*s", (int)strcspn(name + 1, "\r"), name + 1);
    else
        snprintf(out, len, "a command");
}

/*
 * An error reply (OOM, NOPERM, BUSY, ...): its caller decides, as for an
 * outage, but Redis is up, so neither redis_up nor the outage's line tells.
 * One line per kind per SY_REDIS_ERROR_LOG_MS, whatever the thread; those
 * left out meanwhile are counted in the next one.
 */
static void log_error_reply(const struct sy_redis *r, const struct sy_redis_call *call,
                            const char *text)
{
    size_t kind = error_kind(text);
    int64_t now = clock_ms(CLOCK_MONOTONIC), last;
    char what[96];

    last = atomic_load(&shared.error_log[kind].logged_ms);
    if ((last && now - last < SY_REDIS_ERROR_LOG_MS) ||
        !atomic_compare_exchange_strong(&shared.error_log[kind].logged_ms, &last, now)) {
        atomic_fetch_add_explicit(&shared.error_log[kind].left_out, 1, memory_order_relaxed);
        return;
    }
    uint64_t more = atomic_exchange(&shared.error_log[kind].left_out, 0);
    call_name(call, what, sizeof(what));
    if (more)
        sy_log_error(SY_LOG_WARN, "redis", "%s: %s answered %s with an error: %.240s (and %llu "
                     "more error replies of this kind in the last %.0f s)", r->who, r->display,
                     what, text, (unsigned long long)more, (double)(now - last) / 1000.0);
    else
        sy_log_error(SY_LOG_WARN, "redis", "%s: %s answered %s with an error: %.240s", r->who,
                     r->display, what, text);
}

/* NOSCRIPT: the server lost the script (restart, flush, failover); load and resend once. */
static bool retry_noscript(struct sy_redis *r, redisAsyncContext *ac, struct sy_redis_call *call,
                           const redisReply *rep)
{
    if (!rep || rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8) != 0 ||
        call->retried || !call->script || !call->fn || r->ac != ac ||
        r->state != SY_REDIS_READY)
        return false;
    call->retried = true;
    return load_script(r, call->script) == 0 && send_call(r, call) == 0;
}

/* hiredis hands a call back: its reply, or NULL when the context went. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sy_redis_call *call = privdata;
    struct sy_redis *r = call->r;
    const redisReply *rep = reply;

    if (retry_noscript(r, ac, call, rep))
        return;                 /* still hiredis's, under the same deadline */
    r->inflight--;
    sy_redis_reply_fn fn = r->freeing ? NULL : call->fn;
    void *arg = call->arg;
    enum sy_redis_status status = !rep ? SY_REDIS_LOST
                                  : rep->type == REDIS_REPLY_ERROR ? SY_REDIS_ERROR : SY_REDIS_OK;
    bool reconnect = status == SY_REDIS_ERROR && reconnect_error(rep->str);
    if (status == SY_REDIS_ERROR && !reconnect && !r->freeing)
        log_error_reply(r, call, rep->str);
    /* recycled before the callback, which may send a command that reuses it */
    call_put(r, call);
    if (status != SY_REDIS_OK && (fn || status == SY_REDIS_ERROR))
        count_error();
    if (fn)
        fn(arg, status, rep);
    if (reconnect && r->ac == ac && !r->freeing)
        failed(r, rep->str);
}

/*
 * The caller's deadline passed: it hears TIMEOUT and the call waits on for
 * its reply. If none comes by SY_REDIS_STALL_MS, Redis is stuck (stopped,
 * or a partition that TCP has not noticed): reconnect.
 */
static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_redis_call *call = arg;
    struct sy_redis *r = call->r;
    char why[64];

    (void)fd, (void)what;
    if (call->stalling) {
        snprintf(why, sizeof(why), "no answer for %d ms", SY_REDIS_STALL_MS);
        failed(r, why);         /* hands this call back to on_reply: do not touch it after */
        return;
    }
    call->stalling = true;
    event_add(&call->timer, r->stall_tv);
    sy_redis_reply_fn fn = call->fn;
    call->fn = NULL;
    if (fn) {
        count_error();
        fn(call->arg, SY_REDIS_TIMEOUT, NULL);
    }
}

static struct sy_redis_call *start_call(struct sy_redis *r, struct script_slot *script,
                                        int argc, const char *const *argv, const size_t *lens,
                                        sy_redis_reply_fn fn, void *arg)
{
    struct sy_redis_call *call;

    if (!sy_redis_ready(r) || !r->ac || r->inflight >= SY_REDIS_MAX_INFLIGHT ||
        !(call = call_get(r)))
        return NULL;
    if (format(call, argc, argv, lens) < 0 ||
        (script && !script->loaded && load_script(r, script) < 0) || send_call(r, call) < 0) {
        call_put(r, call);
        return NULL;
    }
    call->fn = fn;
    call->arg = arg;
    call->script = script;
    r->inflight++;
    event_add(&call->timer, r->call_tv);
    return call;
}

struct sy_redis_call *sy_redis_command(struct sy_redis *r, int argc, const char *const *argv,
                                       const size_t *lens, sy_redis_reply_fn fn, void *arg)
{
    return start_call(r, NULL, argc, argv, lens, fn, arg);
}

static struct script_slot *script_slot(struct sy_redis *r, const struct sy_redis_script *s)
{
    for (size_t i = 0; i < r->nscripts; i++)
        if (r->scripts[i].script == s)
            return &r->scripts[i];
    if (r->nscripts == MAX_SCRIPTS)
        return NULL;
    struct script_slot *slot = &r->scripts[r->nscripts++];
    slot->script = s;
    slot->loaded = false;
    sy_redis_script_sha(s, slot->sha);
    return slot;
}

struct sy_redis_call *sy_redis_eval(struct sy_redis *r, const struct sy_redis_script *script,
                                    int nkeys, int argc, const char *const *argv,
                                    const size_t *lens, sy_redis_reply_fn fn, void *arg)
{
    const char *all[MAX_ARGS];
    size_t all_lens[MAX_ARGS];
    char nk[16];
    struct script_slot *slot;

    if (!sy_redis_ready(r) || argc + 3 > MAX_ARGS || !(slot = script_slot(r, script)))
        return NULL;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    all[0] = "EVALSHA", all_lens[0] = 7;
    all[1] = slot->sha, all_lens[1] = 40;
    all[2] = nk, all_lens[2] = strlen(nk);
    for (int i = 0; i < argc; i++)
        all[3 + i] = argv[i], all_lens[3 + i] = lens[i];
    return start_call(r, slot, argc + 3, all, all_lens, fn, arg);
}

void sy_redis_cancel(struct sy_redis_call *call)
{
    if (call)
        call->fn = NULL;
}

void sy_redis_set_timeout(struct sy_redis *r, int64_t timeout_ms)
{
    int64_t stall_ms = timeout_ms < SY_REDIS_STALL_MS ? SY_REDIS_STALL_MS - timeout_ms
                                                      : timeout_ms;
    struct timeval call_tv = ms_tv(timeout_ms), stall_tv = ms_tv(stall_ms);
    const struct timeval *call = event_base_init_common_timeout(r->base, &call_tv);
    const struct timeval *stall = event_base_init_common_timeout(r->base, &stall_tv);

    if (call && stall) {
        r->call_tv = call;
        r->stall_tv = stall;
    }
}

/* ---- publish/subscribe ---------------------------------------------------- */

/*
 * hiredis calls this for the subscription's confirmation and for each
 * message, and with NULL when the context goes (then ac->data is NULL: we
 * dropped it first, or r->ac is another context).
 */
static void on_subscription(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sy_redis *r = ac->data;
    const redisReply *rep = reply;

    (void)privdata;
    if (!r || r->ac != ac || !rep || r->freeing)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        failed(r, rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    const redisReply *payload = rep->element[2];
    if (strcmp(kind, "subscribe") == 0) {
        r->probe_waiting = false;
        if (r->sub_confirmed)
            return;             /* a check of the link (on_probe) */
        r->sub_confirmed = true;
        sy_log_error(SY_LOG_DEBUG, "redis", "%s: subscribed to %s", r->who, r->sub_channel);
        if (r->on_subscribed)
            r->on_subscribed(r->sub_arg);
    } else if (strcmp(kind, "message") == 0 && payload->type == REDIS_REPLY_STRING &&
               r->on_message) {
        r->on_message(r->sub_arg, payload->str, payload->len);
    }
}

/* SUBSCRIBE: the subscription after a connect, and each check of its link. */
static int send_subscribe(struct sy_redis *r)
{
    const char *argv[] = {"SUBSCRIBE", r->sub_channel};
    const size_t lens[] = {9, strlen(r->sub_channel)};

    if (redisAsyncCommandArgv(r->ac, on_subscription, NULL, 2, argv, lens) != REDIS_OK)
        return -1;
    atomic_fetch_add_explicit(&shared.commands, 1, memory_order_relaxed);
    r->probe_waiting = true;
    r->probe_sent_ms = clock_ms(CLOCK_MONOTONIC);
    return 0;
}

static void subscribe_now(struct sy_redis *r)
{
    r->sub_confirmed = false;
    if (send_subscribe(r) < 0)
        failed(r, "cannot queue SUBSCRIBE");
}

/*
 * Every SY_REDIS_PROBE_MS: a subscriber hears nothing on a quiet channel,
 * so a dead link would go unnoticed (TCP keepalive takes 30 s, and never
 * notices a proxy that still acknowledges). Subscribing to the channel
 * again is answered at once by a live Redis (a PING would be too, but
 * hiredis 0.14 drops a PONG in subscribed mode without its callback);
 * still unanswered at the next check: reconnect.
 */
static void on_probe(evutil_socket_t fd, short what, void *arg)
{
    struct sy_redis *r = arg;
    char why[96];

    (void)fd, (void)what;
    if (r->state != SY_REDIS_READY || !r->ac)
        return;
    if (r->probe_waiting) {
        /* half the period: a timer that fired a little early still counts */
        if (clock_ms(CLOCK_MONOTONIC) - r->probe_sent_ms < SY_REDIS_PROBE_MS / 2)
            return;
        snprintf(why, sizeof(why), "the subscriber had no answer for %d s",
                 SY_REDIS_PROBE_MS / 1000);
        failed(r, why);
        return;
    }
    if (send_subscribe(r) < 0)
        failed(r, "cannot queue SUBSCRIBE");
}

int sy_redis_subscribe(struct sy_redis *r, const char *channel, sy_redis_message_fn on_message,
                       sy_redis_subscribed_fn on_subscribed, void *arg)
{
    struct timeval every = ms_tv(SY_REDIS_PROBE_MS);
    char *copy = strdup(channel);

    if (!copy || (!r->probe && !(r->probe = event_new(r->base, -1, EV_PERSIST, on_probe, r))) ||
        event_add(r->probe, &every) < 0) {
        free(copy);
        return -1;
    }
    free(r->sub_channel);
    r->sub_channel = copy;
    r->on_message = on_message;
    r->on_subscribed = on_subscribed;
    r->sub_arg = arg;
    if (sy_redis_ready(r) && r->ac)
        subscribe_now(r);
    return 0;
}

/* ---- life ---------------------------------------------------------------- */

static int set_url(struct sy_redis *r, const char *url)
{
    char err[256];
    char *copy = strdup(url);

    if (!copy || sy_redis_url_parse(url, &r->url, err, sizeof(err)) < 0) {
        free(copy);
        return -1;
    }
    free(r->url_text);
    r->url_text = copy;
    sy_redis_url_display(&r->url, r->display, sizeof(r->display));
    return 0;
}

struct sy_redis *sy_redis_new(struct event_base *base, const char *who,
                              const struct sy_redis_conf *conf)
{
    static const struct timeval zero = {0, 0};
    struct timeval call_tv = ms_tv(SY_REDIS_TIMEOUT_MS);
    struct timeval stall_tv = ms_tv(SY_REDIS_STALL_MS - SY_REDIS_TIMEOUT_MS);
    struct sy_redis *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->base = base;
    snprintf(r->who, sizeof(r->who), "%s", who);
    r->on_failure = conf->on_failure;
    r->backoff_ms = SY_REDIS_BACKOFF_MIN_MS;
    if (getrandom(&r->rng, sizeof(r->rng), 0) != sizeof(r->rng))
        r->rng = (uint64_t)(uintptr_t)r ^ (uint64_t)wall_ms();
    r->rng |= 1;
    r->call_tv = event_base_init_common_timeout(base, &call_tv);
    r->stall_tv = event_base_init_common_timeout(base, &stall_tv);
    if (!r->call_tv || !r->stall_tv || set_url(r, conf->url) < 0 ||
        !(r->timer = evtimer_new(base, on_timer, r))) {
        free(r->url_text);
        free(r);
        return NULL;
    }
    atomic_fetch_add(&shared.connections, 1);
    r->state = SY_REDIS_DOWN;
    evtimer_add(r->timer, &zero);   /* the first attempt, from base's loop */
    return r;
}

void sy_redis_configure(struct sy_redis *r, const struct sy_redis_conf *conf)
{
    static const struct timeval zero = {0, 0};

    r->on_failure = conf->on_failure;
    if (strcmp(conf->url, r->url_text) == 0)
        return;
    close_quietly(r);
    if (set_url(r, conf->url) < 0) {
        failed(r, "out of memory");
        return;
    }
    sy_log_error(SY_LOG_DEBUG, "redis", "%s: url changed: connecting to %s", r->who,
                 r->display);
    r->backoff_ms = SY_REDIS_BACKOFF_MIN_MS;
    evtimer_add(r->timer, &zero);
}

void sy_redis_free(struct sy_redis *r)
{
    if (!r)
        return;
    r->freeing = true;
    uncount_ready(r);
    struct resolving *pending = r->resolving;
    drop_context(r);            /* every call comes back through on_reply */
    if (pending)
        pending->orphan_dns = r->dns;   /* its callback still needs the resolver */
    else if (r->dns)
        evdns_base_free(r->dns, 0);
    if (r->timer)
        event_free(r->timer);
    if (r->probe)
        event_free(r->probe);
    while (r->free_calls) {
        struct sy_redis_call *call = r->free_calls;
        r->free_calls = call->next_free;
        free(call->buf);
        free(call);
    }
    atomic_fetch_sub(&shared.connections, 1);
    free(r->sub_channel);
    free(r->url_text);
    free(r);
}

void sy_redis_close(struct sy_redis *r)
{
    redisAsyncContext *ac;

    if (!r)
        return;
    r->state = SY_REDIS_DOWN;
    uncount_ready(r);
    /* not freeing yet: every call comes back through on_reply, its caller hears LOST */
    if ((ac = r->ac)) {
        r->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    sy_redis_free(r);           /* a resolution under way is left to it */
}

enum sy_redis_state sy_redis_state(const struct sy_redis *r)
{
    return r->state;
}

#else /* !SY_HAVE_HIREDIS */

/* A build without hiredis: no connection ever comes up; on_failure decides. */
struct sy_redis {
    enum sy_redis_state state;
};

struct sy_redis *sy_redis_new(struct event_base *base, const char *who,
                              const struct sy_redis_conf *conf)
{
    static atomic_bool logged;
    bool no = false;

    (void)base, (void)who;
    if (atomic_compare_exchange_strong(&logged, &no, true))
        sy_log_error(SY_LOG_WARN, "redis", "this build has no Redis support (hiredis): %s",
                     fallback_text(conf->on_failure));
    return NULL;
}

void sy_redis_configure(struct sy_redis *r, const struct sy_redis_conf *conf)
{
    (void)r, (void)conf;
}

void sy_redis_free(struct sy_redis *r)
{
    (void)r;
}

void sy_redis_close(struct sy_redis *r)
{
    (void)r;
}

enum sy_redis_state sy_redis_state(const struct sy_redis *r)
{
    return r->state;
}

struct sy_redis_call *sy_redis_command(struct sy_redis *r, int argc, const char *const *argv,
                                       const size_t *lens, sy_redis_reply_fn fn, void *arg)
{
    (void)r, (void)argc, (void)argv, (void)lens, (void)fn, (void)arg;
    return NULL;
}

struct sy_redis_call *sy_redis_eval(struct sy_redis *r, const struct sy_redis_script *script,
                                    int nkeys, int argc, const char *const *argv,
                                    const size_t *lens, sy_redis_reply_fn fn, void *arg)
{
    (void)r, (void)script, (void)nkeys, (void)argc, (void)argv, (void)lens, (void)fn, (void)arg;
    return NULL;
}

void sy_redis_cancel(struct sy_redis_call *call)
{
    (void)call;
}

void sy_redis_set_timeout(struct sy_redis *r, int64_t timeout_ms)
{
    (void)r, (void)timeout_ms;
}

int sy_redis_subscribe(struct sy_redis *r, const char *channel, sy_redis_message_fn on_message,
                       sy_redis_subscribed_fn on_subscribed, void *arg)
{
    (void)r, (void)channel, (void)on_message, (void)on_subscribed, (void)arg;
    return -1;
}

#endif
