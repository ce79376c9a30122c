/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * redis.h: the gateway's Redis client (hiredis, asynchronous, on a
 * libevent base). One struct sy_redis is one connection owned by one
 * thread: each worker has its own on its own event base (worker.c), and
 * the main thread may open one more on its base; no call ever blocks.
 *
 * A connection connects by itself: a name is resolved with evdns (never
 * getaddrinfo on a loop), then AUTH, SELECT and PING are pipelined; it is
 * ready when PING answers. Lost, refused or stalled (a command unanswered
 * for SY_REDIS_STALL_MS), it reconnects with exponential backoff
 * (100 ms doubling to 5 s, with jitter). Commands are pipelined; each has
 * a deadline (SY_REDIS_TIMEOUT_MS) after which its caller hears TIMEOUT
 * and the late reply is dropped. A command is refused at once (NULL)
 * while the connection is not ready, so that callers decide without
 * waiting during an outage. Scripts a connection has run are loaded again
 * in the handshake of each connect: a Redis that refuses to load them (an
 * ACL without script|load, out of memory) leaves the connection down, an
 * outage like any other, rather than up and useless.
 *
 * The process-wide view (switchyard_redis_up, the error and command
 * counters, and the one log line an outage gets, and the one its end
 * gets) is kept here with atomics, whatever thread the connections run on.
 * An error reply (OOM, NOPERM, BUSY, ...) is its caller's to decide on; the
 * log gets one line per kind of error (its first word) per
 * SY_REDIS_ERROR_LOG_MS, the next one counting those left out.
 */
#ifndef SY_REDIS_H
#define SY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "conf.h"

/* A command not answered within this counts as failed for its caller. */
#define SY_REDIS_TIMEOUT_MS     100
/* A command still unanswered after this means Redis is stuck: reconnect. */
#define SY_REDIS_STALL_MS       1000
/* Connect, resolve and handshake must be done within this. */
#define SY_REDIS_CONNECT_MS     1000
/* Reconnect backoff: from the first to the last, doubling. */
#define SY_REDIS_BACKOFF_MIN_MS 100
#define SY_REDIS_BACKOFF_MAX_MS 5000
/* Commands a connection holds unanswered at once; past it, refused. */
#define SY_REDIS_MAX_INFLIGHT   4096
/* Error replies of one kind are logged once per this, with a count. */
#define SY_REDIS_ERROR_LOG_MS   10000
/*
 * A subscriber checks its link this often (a SUBSCRIBE of its channel
 * again, which Redis confirms); a check unanswered by the next one means a
 * dead link (a NAT or proxy that forgot it, a peer gone without a FIN):
 * reconnect. Every TCP connection also has TCP keepalive (15 s).
 */
#define SY_REDIS_PROBE_MS       10000

/* ---- URLs --------------------------------------------------------------- */

enum sy_redis_transport {
    SY_REDIS_TCP,
    SY_REDIS_UNIX,
};

/*
 * redis://[[user]:password@]host:port[/db] or unix:/path[?db=N]. user and
 * password are percent-decoded; host is a name, an IPv4 address or an
 * IPv6 address in brackets (kept without them). rediss:// (TLS) is
 * refused: hiredis is built without TLS here.
 */
struct sy_redis_url {
    enum sy_redis_transport transport;
    char host[256];
    int port;
    char path[108];             /* sizeof(sun_path) */
    char user[128];             /* "": the default user */
    char password[256];         /* "": no AUTH */
    int db;
};

/*
 * Parses url into out. 0, or -1 with a message in err that never repeats
 * the URL (it may hold a password); the caller prefixes the JSON path.
 */
int sy_redis_url_parse(const char *url, struct sy_redis_url *out, char *err, size_t errlen);
/* "host:port" or "unix:/path" (no secrets), for logs. */
void sy_redis_url_display(const struct sy_redis_url *u, char *out, size_t len);

/* ---- connections -------------------------------------------------------- */

struct sy_redis;
struct sy_redis_call;
struct redisReply;              /* hiredis's reply, for callers that read one */

enum sy_redis_state {
    SY_REDIS_DOWN,              /* waiting to retry */
    SY_REDIS_RESOLVING,
    SY_REDIS_CONNECTING,        /* TCP connect and handshake */
    SY_REDIS_READY,
};
const char *sy_redis_state_name(enum sy_redis_state state);

/*
 * A connection on base, named by who in logs ("worker 1"), for conf (its
 * url and on_failure, which the outage's log line names). It starts
 * connecting from base's loop (not within this call). NULL when out of
 * memory. Owned by the caller; sy_redis_free on the thread that runs base,
 * or once base no longer runs.
 */
struct sy_redis *sy_redis_new(struct event_base *base, const char *who,
                              const struct sy_redis_conf *conf);
/*
 * A new configuration: a changed url reconnects (commands in flight hear
 * DOWN), an unchanged one keeps the connection. Called on base's thread.
 */
void sy_redis_configure(struct sy_redis *r, const struct sy_redis_conf *conf);
/*
 * Closes the connection and frees it. Every call not answered yet hears
 * SY_REDIS_LOST first, within this call (so a request waiting on it is
 * decided by its caller's fallback, not left waiting): for a connection a
 * reload removes. Called on base's thread, outside r's own callbacks.
 */
void sy_redis_close(struct sy_redis *r);
/*
 * Frees the connection without calling a callback: only once nothing can
 * wait on it any more (at exit, after the requests went), or for a caller
 * that forgets its calls itself. A call's handle is invalid afterwards.
 */
void sy_redis_free(struct sy_redis *r);

enum sy_redis_state sy_redis_state(const struct sy_redis *r);
static inline bool sy_redis_ready(const struct sy_redis *r)
{
    return r && sy_redis_state(r) == SY_REDIS_READY;
}

enum sy_redis_status {
    SY_REDIS_OK,                /* reply: Redis's answer (not an error reply) */
    SY_REDIS_ERROR,             /* reply: Redis's error reply (type REDIS_REPLY_ERROR) */
    SY_REDIS_TIMEOUT,           /* no answer within SY_REDIS_TIMEOUT_MS; reply NULL */
    SY_REDIS_LOST,              /* the connection went before answering; reply NULL */
};

/*
 * A command's outcome, called once on the connection's thread, unless the
 * call was cancelled first. reply lives until the callback returns. After
 * the callback the call is gone: the caller forgets its handle.
 */
typedef void (*sy_redis_reply_fn)(void *arg, enum sy_redis_status status,
                                  const struct redisReply *reply);

/*
 * Sends one command of argc arguments (argv[i] of lens[i] bytes). Returns
 * the call, or NULL when the connection is not ready (or holds
 * SY_REDIS_MAX_INFLIGHT): then fn is never called. No allocation once warm.
 */
struct sy_redis_call *sy_redis_command(struct sy_redis *r, int argc, const char *const *argv,
                                       const size_t *lens, sy_redis_reply_fn fn, void *arg);

/*
 * A Lua script, run with EVALSHA. The connection sends SCRIPT LOAD the
 * first time it runs a script (pipelined before the EVALSHA: no extra round
 * trip), and in the handshake of every later connect; a NOSCRIPT answer
 * (SCRIPT FLUSH, a failover) loads it again and retries the call once. A
 * SCRIPT LOAD refused drops the connection as failed. Scripts are static
 * data.
 */
struct sy_redis_script {
    const char *name;           /* for logs */
    const char *source;
};

/* EVALSHA of script with nkeys keys then the other arguments, as sy_redis_command. */
struct sy_redis_call *sy_redis_eval(struct sy_redis *r, const struct sy_redis_script *script,
                                    int nkeys, int argc, const char *const *argv,
                                    const size_t *lens, sy_redis_reply_fn fn, void *arg);

/*
 * The call's callback will not be called (its reply, if any, is dropped).
 * Only for a call whose callback has not been called yet: once called (or
 * after sy_redis_free) the handle is gone.
 */
void sy_redis_cancel(struct sy_redis_call *call);

/*
 * A connection on which nothing waits (the main thread's): its commands'
 * deadline is timeout_ms instead of SY_REDIS_TIMEOUT_MS, and it is
 * dropped as stuck after SY_REDIS_STALL_MS, or twice timeout_ms when that
 * is longer. Called on base's thread, before its first command.
 */
void sy_redis_set_timeout(struct sy_redis *r, int64_t timeout_ms);

/* ---- publish/subscribe --------------------------------------------------- */

/* One message published on the channel: payload of len bytes (not NUL-terminated). */
typedef void (*sy_redis_message_fn)(void *arg, const char *payload, size_t len);
/* The subscription is in force: after each connect, the moment to read what was missed. */
typedef void (*sy_redis_subscribed_fn)(void *arg);

/*
 * Makes r a subscriber of channel: SUBSCRIBE follows the handshake of
 * every connect (now, when r is ready), and r sends nothing else from
 * then on (use another connection for commands). A subscription has no
 * deadline (a quiet channel is not a stuck Redis), but its link is checked
 * every SY_REDIS_PROBE_MS. Called once per connection; 0, or -1 when out
 * of memory.
 */
int sy_redis_subscribe(struct sy_redis *r, const char *channel, sy_redis_message_fn on_message,
                       sy_redis_subscribed_fn on_subscribed, void *arg);

/* ---- the process-wide view (any thread) --------------------------------- */

struct sy_redis_stats {
    unsigned connections;       /* connections that exist (want to be up) */
    unsigned ready;             /* of them, ready now */
    uint64_t commands;          /* commands sent, since start */
    uint64_t errors;            /* failed connects, lost connections, timeouts, error replies,
                                 * scripts Redis refused to load */
};
void sy_redis_stats(struct sy_redis_stats *out);

/* Hex SHA-1 of a script's source (41 bytes with the NUL), as EVALSHA names it. */
void sy_redis_script_sha(const struct sy_redis_script *script, char out[41]);

#endif
