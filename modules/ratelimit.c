/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ratelimit.c: the ratelimit module, rate_limits and the routes that name
 * them (SPEC.md). Decisions come from one GCRA table shared by every
 * worker (core/ratelimit.h), so a client's budget is the configured one
 * whichever worker serves it. The table lives for the process, sized by
 * limits.rate_limit_keys at start; a limit is known in it by a hash of its
 * name, so a reload that keeps a limit keeps every client's budget.
 *
 * The key of a request: client_ip, header:NAME (an absent header counts
 * under the empty key: every request without it shares one budget),
 * route (one budget for the route), or country ("" unknown shares one).
 * An over-limit request gets 429 with Retry-After and the configured
 * RateLimit headers; an allowed request of a limited route gets the
 * headers on its response.
 *
 * store "redis": the same GCRA in Redis (core/ratelimit_redis.h), one
 * EVALSHA per request on the worker's connection; the request waits for
 * the answer (SY_PHASE_WAIT) and resumes or gets its 429 when it comes.
 * Without an answer (Redis down, or no reply in SY_REDIS_TIMEOUT_MS)
 * redis.on_failure decides: allow, deny (429 naming the outage), or local
 * (this gateway's table, at the limit's share of the fleet).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fleet.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "core/ratelimit_redis.h"
#include "core/redis.h"
#include "core/sy_module.h"
#include "http/request.h"

struct limit {
    const struct sy_rate_limit *conf;
    struct sy_rl_rule rule;
    char *redis_prefix;         /* store "redis": key_prefix "rl:" name ":" */
    uint32_t id;                /* the name's hash: the same across reloads */
    /*
     * A 429's reasons. The request keeps the pointer until it ends (its
     * logs), so they live with the snapshot it holds, not on a stack.
     */
    char *reason_limited;       /* "rate limit NAME exceeded" */
    char *reason_down;          /* "rate limit NAME: its store (Redis) is unreachable" */
};

struct rl_state {
    struct limit *limits;       /* by the configuration's index */
    size_t nlimits;
    uint32_t *limited;          /* switchyard_rate_limited_total series, by route index */
    uint64_t max_tolerance_us;  /* for the sweep */
    enum sy_redis_failure on_failure;
};

/* What on_route decided, for on_response; and while Redis decides, the wait. */
struct rl_scratch {
    const struct limit *limit;  /* NULL: the route has no limit */
    struct sy_rl_result result;
    struct sy_redis_call *call; /* the decision Redis is making (SY_PHASE_WAIT) */
    struct sy_request *req;     /* the request that waits on it, */
    const struct rl_state *st;  /* and its snapshot's state */
};

/* The process's table (main thread creates it; workers share it). */
static struct sy_rl_table *table;

static uint32_t name_id(const char *name)
{
    uint32_t h = 2166136261u;

    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

/*
 * Gateways that share a Redis limit while it cannot be reached: those seen
 * in the last minute as Redis last told (core/fleet.h), at least 1. Read
 * on each decision taken without Redis, so a fleet that grew or shrank
 * before the outage shares the rate as it stood then.
 */
static int64_t fleet_gateways(void)
{
    return sy_fleet_gateways_minute();
}

/*
 * A limit's share for one of n gateways: rate / n with burst / n, as one
 * interval n times as long. n = 1 is the rule itself.
 */
static void share_rule(const struct sy_rl_rule *r, int64_t n, struct sy_rl_rule *out)
{
    *out = *r;
    if (n <= 1 || r->interval_us * (uint64_t)n > SY_RL_MAX_SPAN_US)
        return;
    out->interval_us = r->interval_us * (uint64_t)n;
    out->limit = (r->limit - 1) / (uint32_t)n + 1;
    out->tolerance_us = (uint64_t)(out->limit - 1) * out->interval_us;
}

static void free_limits(struct rl_state *st)
{
    for (size_t i = 0; st->limits && i < st->nlimits; i++) {
        free(st->limits[i].redis_prefix);
        free(st->limits[i].reason_limited);
        free(st->limits[i].reason_down);
    }
    free(st->limits);
}

static char *text_of(const char *fmt, const char *name)
{
    size_t n = strlen(fmt) + strlen(name);
    char *s = malloc(n);

    if (s)
        snprintf(s, n, fmt, name);
    return s;
}

/* "PREFIXrl:NAME:" for a Redis limit's keys (ratelimit_redis.h). */
static char *redis_prefix(const struct sy_conf *conf, const char *name)
{
    const char *p = conf->redis.key_prefix ? conf->redis.key_prefix : "";
    size_t n = strlen(p) + strlen(name) + 5;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%srl:%s:", p, name);
    return s;
}

static int ratelimit_prepare(const struct sy_conf *conf, void **state, char *err,
                             size_t errlen)
{
    char why[256];

    *state = NULL;
    if (conf->nrate_limits == 0)
        return 0;
    struct rl_state *st = calloc(1, sizeof(*st));
    if (!st || !(st->limits = calloc(conf->nrate_limits, sizeof(*st->limits))) ||
        !(st->limited = calloc(conf->nroutes ? conf->nroutes : 1, sizeof(*st->limited))))
        goto nomem;
    st->nlimits = conf->nrate_limits;
    st->on_failure = conf->redis.on_failure;
    for (size_t i = 0; i < conf->nrate_limits; i++) {
        const struct sy_rate_limit *c = &conf->rate_limits[i];
        struct limit *l = &st->limits[i];
        l->conf = c;
        l->id = name_id(c->name);
        if (sy_rl_rule_init(&l->rule, c->rate, c->per_ms, c->burst, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "rate_limits.%s: %s", c->name, why);
            free(st->limited);
            free_limits(st);
            free(st);
            return -1;
        }
        if ((c->store_redis && !(l->redis_prefix = redis_prefix(conf, c->name))) ||
            !(l->reason_limited = text_of("rate limit %s exceeded", c->name)) ||
            !(l->reason_down = text_of("rate limit %s: its store (Redis) is unreachable",
                                       c->name)))
            goto nomem;
        if (l->rule.tolerance_us + l->rule.interval_us > st->max_tolerance_us)
            st->max_tolerance_us = l->rule.tolerance_us + l->rule.interval_us;
    }
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct sy_route *r = &conf->routes[i];
        st->limited[i] = r->rate_limit ? sy_metrics_counter("switchyard_rate_limited_total",
                                                            r->rate_limit->name, r->label)
                                       : SY_METRICS_NONE;
    }
    if (!table) {
        if (!(table = sy_rl_table_new((size_t)conf->limits.rate_limit_keys)))
            goto nomem;
        sy_log_error(SY_LOG_INFO, "ratelimit", "rate-limit table: %lld keys, %zu bytes",
                     (long long)conf->limits.rate_limit_keys, sy_rl_table_bytes(table));
    } else if ((size_t)conf->limits.rate_limit_keys > sy_rl_table_slots(table)) {
        /* the budgets live in the table: resizing it would forget them all */
        sy_log_error(SY_LOG_WARN, "ratelimit", "limits.rate_limit_keys %lld: the table keeps "
                     "its %zu keys until a restart", (long long)conf->limits.rate_limit_keys,
                     sy_rl_table_slots(table));
    }
    *state = st;
    return 0;
nomem:
    if (st) {
        free(st->limited);
        free_limits(st);
    }
    free(st);
    snprintf(err, errlen, "rate_limits: out of memory");
    return -1;
}

static void ratelimit_release(void *state)
{
    struct rl_state *st = state;

    free(st->limited);
    free_limits(st);
    free(st);
}

/* The request's key under this limit; "" when it has none (documented above). */
static const char *request_key(struct sy_request *req, const struct sy_rate_limit *c,
                               size_t *len)
{
    const char *k = NULL;

    switch (c->key) {
    case SY_RL_KEY_CLIENT_IP:
        k = sy_req_client_ip(req);
        *len = strlen(k);
        return k;
    case SY_RL_KEY_HEADER:
        k = sy_req_header(req, c->key_header, len);
        break;
    case SY_RL_KEY_ROUTE:
        k = sy_req_route(req)->label;
        *len = strlen(k);
        return k;
    case SY_RL_KEY_COUNTRY:
        k = sy_req_country(req);
        *len = strlen(k);
        return k;
    }
    if (!k)
        *len = 0;
    return k ? k : "";
}

/* Seconds a client reads: rounded up, so that waiting that long is enough. */
static unsigned long long ceil_s(uint64_t ms)
{
    return (unsigned long long)((ms + 999) / 1000);
}

/* The RateLimit headers of the limit's form (SPEC.md): up to 5 of them. */
struct rl_headers {
    int n;
    const char *name[5];
    char value[5][160];
};

static void rate_headers(const struct limit *l, const struct sy_rl_result *r,
                         struct rl_headers *h)
{
    enum sy_rl_headers form = l->conf->headers;

    h->n = 0;
    if (form == SY_RL_HEADERS_LEGACY || form == SY_RL_HEADERS_BOTH) {
        h->name[h->n] = "RateLimit-Limit";
        snprintf(h->value[h->n++], sizeof(h->value[0]), "%u", r->limit);
        h->name[h->n] = "RateLimit-Remaining";
        snprintf(h->value[h->n++], sizeof(h->value[0]), "%u", r->remaining);
        h->name[h->n] = "RateLimit-Reset";
        snprintf(h->value[h->n++], sizeof(h->value[0]), "%llu", ceil_s(r->reset_ms));
    }
    if (form == SY_RL_HEADERS_DRAFT || form == SY_RL_HEADERS_BOTH) {
        /* draft-ietf-httpapi-ratelimit-headers: the policy, then what is left of it */
        h->name[h->n] = "RateLimit-Policy";
        snprintf(h->value[h->n++], sizeof(h->value[0]), "\"%.64s\";q=%u;w=%llu",
                 l->conf->name, r->limit, ceil_s((uint64_t)l->conf->per_ms));
        h->name[h->n] = "RateLimit";
        snprintf(h->value[h->n++], sizeof(h->value[0]), "\"%.64s\";r=%u;t=%llu",
                 l->conf->name, r->remaining, ceil_s(r->reset_ms));
    }
}

static enum sy_phase_result limited(struct sy_request *req, const struct rl_state *st,
                                    const struct limit *l, const char *key, size_t keylen,
                                    const struct sy_rl_result *r)
{
    const struct sy_route *route = sy_req_route(req);
    const char *reason = l->reason_limited;
    char headers[1024], logkey[160];
    const char *ip = sy_req_client_ip(req);
    char shown[129];

    /* a header key is the client's text: the log gets at most 128 bytes of it */
    snprintf(shown, sizeof(shown), "%.*s", (int)(keylen < 128 ? keylen : 128), key);
    const struct sy_log_field fields[] = {
        {.name = "limit", .str = l->conf->name},
        {.name = "route", .str = route->label},
        {.name = "key", .str = shown},
    };
    int n = snprintf(logkey, sizeof(logkey), "%s|%s", l->conf->name, shown);
    sy_log_security_keyed("rate_limited", logkey, (size_t)n < sizeof(logkey) ? (size_t)n
                          : sizeof(logkey) - 1, ip, sy_req_country(req), reason, fields,
                          sizeof(fields) / sizeof(fields[0]));
    sy_metrics_count_event(sy_req_metrics(req), st->limited[route->index], 1);
    struct rl_headers h;
    rate_headers(l, r, &h);
    size_t at = (size_t)snprintf(headers, sizeof(headers), "Retry-After: %llu\r\n",
                                 ceil_s(r->retry_after_ms) ? ceil_s(r->retry_after_ms) : 1);
    for (int i = 0; i < h.n && at < sizeof(headers); i++)
        at += (size_t)snprintf(headers + at, sizeof(headers) - at, "%s: %s\r\n", h.name[i],
                               h.value[i]);
    sy_req_respond(req, 429, reason, headers);
    return SY_PHASE_DONE;
}

/* The decision's end: a 429, or the headers for on_response and the next phase. */
static enum sy_phase_result decided(struct sy_request *req, const struct rl_state *st,
                                    struct rl_scratch *sc, const struct limit *l)
{
    size_t keylen;
    const char *key;

    if (sc->result.allowed) {
        sc->limit = l;
        return SY_PHASE_CONTINUE;
    }
    key = request_key(req, l->conf, &keylen);
    return limited(req, st, l, key, keylen, &sc->result);
}

/*
 * A Redis limit decided without Redis (redis.on_failure). deny answers
 * 429 with Retry-After: 1 and no RateLimit headers (there is no budget to
 * tell of); it is the gateway's failure, not the client's, so no security
 * event. allow lets the request through without headers.
 */
static enum sy_phase_result fallback(struct sy_request *req, const struct rl_state *st,
                                     struct rl_scratch *sc, const struct limit *l)
{
    struct sy_rl_rule share;
    size_t keylen;
    const char *key;

    switch (st->on_failure) {
    case SY_REDIS_FAIL_DENY:
        sy_req_respond(req, 429, l->reason_down, "Retry-After: 1\r\n");
        return SY_PHASE_DONE;
    case SY_REDIS_FAIL_LOCAL:
        key = request_key(req, l->conf, &keylen);
        share_rule(&l->rule, fleet_gateways(), &share);
        sy_rl_check(table, &share, l->id, key, keylen, sy_rl_now_us(), &sc->result);
        return decided(req, st, sc, l);
    case SY_REDIS_FAIL_ALLOW:
        break;
    }
    return SY_PHASE_CONTINUE;
}

/* Redis answered, or did not in time: the request waiting on it goes on or gets its 429. */
static void on_redis_reply(void *arg, enum sy_redis_status status, const struct redisReply *reply)
{
    struct rl_scratch *sc = arg;
    struct sy_request *req = sc->req;
    const struct limit *l = sc->limit;
    const struct rl_state *st = sc->st;
    enum sy_phase_result r;

    sc->call = NULL;
    sc->limit = NULL;
    if (status == SY_REDIS_OK && sy_rl_redis_result(reply, &l->rule, &sc->result) == 0)
        r = decided(req, st, sc, l);
    else
        r = fallback(req, st, sc, l);
    if (r == SY_PHASE_CONTINUE)
        sy_req_resume(req);
}

static enum sy_phase_result ratelimit_on_route(struct sy_request *req, void *state,
                                               void *scratch)
{
    const struct rl_state *st = state;
    struct rl_scratch *sc = scratch;
    const struct sy_route *route = sy_req_route(req);
    size_t keylen;

    if (!st || !route->rate_limit)
        return SY_PHASE_CONTINUE;
    const struct limit *l = &st->limits[route->rate_limit->index];
    const char *key = request_key(req, l->conf, &keylen);
    if (l->conf->store_redis) {
        sc->req = req;
        sc->st = st;
        sc->limit = l;
        sc->call = sy_rl_redis_check(sy_req_redis(req), &l->rule, l->redis_prefix, key, keylen,
                                     on_redis_reply, sc);
        if (sc->call)
            return SY_PHASE_WAIT;
        sc->limit = NULL;
        return fallback(req, st, sc, l);
    }
    sy_rl_check(table, &l->rule, l->id, key, keylen, sy_rl_now_us(), &sc->result);
    return decided(req, st, sc, l);
}

/* The client left while Redis decided: its answer, when it comes, goes nowhere. */
static void ratelimit_on_abandon(struct sy_request *req, void *state, void *scratch)
{
    struct rl_scratch *sc = scratch;

    (void)req, (void)state;
    sy_redis_cancel(sc->call);
    sc->call = NULL;
}

static void ratelimit_on_response(struct sy_request *req, void *state, void *scratch,
                                  struct sy_header_out *out)
{
    const struct rl_scratch *sc = scratch;
    struct rl_headers h;

    (void)req, (void)state;
    if (!sc->limit)
        return;
    rate_headers(sc->limit, &sc->result, &h);
    for (int i = 0; i < h.n; i++)
        sy_header_out_add(out, h.name[i], h.value[i]);
}

static void ratelimit_tick(const struct sy_conf *conf, void *state)
{
    const struct rl_state *st = state;

    (void)conf;
    if (st && table)
        sy_rl_sweep(table, sy_rl_now_us(), st->max_tolerance_us);
}

const struct sy_module sy_ratelimit_module = {
    .name = "ratelimit",
    .request_bytes = sizeof(struct rl_scratch),
    .conf_prepare = ratelimit_prepare,
    .conf_release = ratelimit_release,
    .on_route = ratelimit_on_route,
    .on_abandon = ratelimit_on_abandon,
    .on_response = ratelimit_on_response,
    .tick = ratelimit_tick,
};
