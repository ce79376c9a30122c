/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fleet.c: the fleet's main-thread service (fleet.h; the keys, scripts and
 * failure cases are docs/fleet.md's). Two connections on the main loop: one
 * for commands (three scripts), one subscribed to the state channel.
 *
 * Versions. Each service's shared state carries a version; a store is one
 * script that writes only when the stored version is lower than the new
 * one, then publishes. A change made here is stored as the version it was
 * made from plus one: when another gateway stored that version first, ours
 * is refused and theirs applied (the first change stored wins). Only one
 * store per service is in flight at a time; a change made meanwhile is
 * stored when it returns. A gateway that holds a newer version than Redis
 * (Redis restarted empty, or failed over and lost writes) writes it back.
 * Versions are whole numbers up to SY_FLEET_VERSION_MAX (fleet_doc.h):
 * Redis's Lua compares doubles, and a larger one would stop every store.
 *
 * Content, not only versions. A store whose answer never came may still
 * have been applied: Redis then holds a version of ours that is not what
 * this gateway holds now. Whenever Redis holds a document of ours (or of
 * another gateway at our version), its core is compared with ours: ours
 * differs, it is stored as the next version (theirs differs, it applies),
 * so that no two gateways stay at one version with two states.
 *
 * What counts as a change: the canonical text of a service's split,
 * maintenance and rollout (fleet_doc.h) differs from the one last noticed.
 * deploy.c tells at once (sy_fleet_changed); a reload's edits are noticed
 * when it happens, and every second anything else.
 *
 * Every reply finds its service by name in the current snapshot (a reload
 * may have come between); callbacks get a struct fleet_svc, which lives as
 * long as the fleet. Freed connections call no callback.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "clock.h"
#include "fleet.h"
#include "fleet_doc.h"
#include "live.h"
#include "log.h"
#include "process.h"
#include "redis.h"
#include "state.h"
#include "sy_auto.h"

#if SY_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#else
/*
 * A build without hiredis: no connection ever comes up (redis.c) and the
 * fleet never starts, so no reply comes; these stand in for hiredis's reply
 * so that the handlers compile.
 */
typedef struct redisReply {
    int type;
    long long integer;
    size_t len;
    char *str;
    size_t elements;
    struct redisReply **element;
} redisReply;
enum { REDIS_REPLY_STRING = 1, REDIS_REPLY_ARRAY, REDIS_REPLY_INTEGER, REDIS_REPLY_ERROR = 6 };
#endif

/* The fleet's commands wait this long: nothing waits on them but the next second. */
#define FLEET_TIMEOUT_MS    1000
/* A lease is taken as ours until this long before Redis lets it expire. */
#define LEASE_MARGIN_MS     500
/* Other gateways' figures older than this are not judged. */
#define FIGURES_FRESH_MS    3000
/* The figures hash of a step outlives its last write by this. */
#define FIGURES_TTL_MS      10000
/* Reading the shared state at start waits this long for Redis. */
#define START_READ_MS       1000

/* ---- the scripts ---------------------------------------------------------- */

/*
 * Every second: this gateway shows up (a sorted set scored by Redis's
 * clock, members older than a minute dropped), counts the fleet, and reads
 * every service's stored state (the truth the channel may have missed).
 * ARGV[2] "leave": a graceful stop, the gateway goes from the set.
 */
static const struct sy_redis_script heartbeat_script = {
    .name = "fleet heartbeat",
    .source =
        "if redis.replicate_commands then redis.replicate_commands() end\n"
        "if ARGV[2] == 'leave' then return redis.call('ZREM', KEYS[1], ARGV[1]) end\n"
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
        "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)\n"
        "redis.call('PEXPIRE', KEYS[1], 120000)\n"
        "local recent = redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[3]), '+inf')\n"
        "local kind = redis.call('TYPE', KEYS[2]).ok\n"
        "local state = {}\n"
        "if kind == 'hash' then state = redis.call('HGETALL', KEYS[2]) end\n"
        "return {recent, redis.call('ZCARD', KEYS[1]), kind, state}\n",
};

/*
 * Every second, per service: this gateway's figures for the step under way
 * (ARGV[3], "" when no rollout runs), then the lease: held or free, it is
 * taken or renewed ("claim"); "leave" gives it up. Returns the holder ("":
 * none). The holder then reads every gateway's figures with a plain
 * HGETALL: a large reply costs Redis a quarter as much outside Lua.
 */
static const struct sy_redis_script service_script = {
    .name = "fleet service",
    .source =
        "if ARGV[3] ~= '' then\n"
        "  local kind = redis.call('TYPE', KEYS[2]).ok\n"
        "  if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[2]) end\n"
        "  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
        "  redis.call('PEXPIRE', KEYS[2], ARGV[5])\n"
        "end\n"
        "local holder = redis.call('GET', KEYS[1])\n"
        "if holder == ARGV[1] and ARGV[4] ~= 'claim' then\n"
        "  redis.call('DEL', KEYS[1])\n"
        "  holder = false\n"
        "elseif holder == ARGV[1] or (not holder and ARGV[4] == 'claim') then\n"
        "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
        "  holder = ARGV[1]\n"
        "end\n"
        "return holder or ''\n",
};

/*
 * A service's state, stored only over an older version (a document that is
 * not JSON, or whose version is no whole number 1..2^53-1, counts as
 * version 0, as sy_fleet_doc_decode reads it; a key that is not a hash is
 * replaced), then published. Returns {1, ''} stored, or {0, the stored
 * document}.
 */
static const struct sy_redis_script store_script = {
    .name = "fleet store",
    .source =
        "local kind = redis.call('TYPE', KEYS[1]).ok\n"
        "if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end\n"
        "local have = 0\n"
        "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
        "if cur then\n"
        "  local ok, doc = pcall(cjson.decode, cur)\n"
        "  if ok and type(doc) == 'table' then\n"
        "    local v = doc.version\n"
        "    if type(v) == 'number' and v >= 1 and v <= 9007199254740991 and\n"
        "       v == math.floor(v) then have = v end\n"
        "  end\n"
        "end\n"
        "local new = tonumber(ARGV[2])\n"
        "if not new or new <= have then return {0, cur} end\n"
        "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
        "redis.call('PUBLISH', ARGV[4], ARGV[3])\n"
        "return {1, ''}\n",
};

/* ---- state ---------------------------------------------------------------- */

/* One service's fleet business; lives as long as the fleet (replies point to it). */
struct fleet_svc {
    char *name;
    /* storing */
    char *seen_core;                /* the state's canonical text last noticed */
    uint64_t changes;               /* changes noticed here */
    bool storing;                   /* a store in flight, */
    int64_t storing_version;        /* of this version, */
    uint64_t storing_changes;       /* sent when changes was this */
    bool garbage_logged;            /* the stored document was garbage: said once */
    bool last_version_logged;       /* no version after SY_FLEET_VERSION_MAX: said once */
    /* the lease */
    bool ticking;                   /* a service script in flight, */
    int64_t tick_sent_ms;           /* sent then (monotonic), */
    int64_t tick_from;              /* for the step that started then (wall), */
    char *figures_key;              /* whose figures are there */
    bool reading;                   /* the holder's read of them in flight */
    char holder[128];               /* the lease's holder as last told; "" none */
    int64_t lease_until_ms;         /* monotonic: this gateway leads until then */
    /* other gateways' figures for the step that started at others_from */
    int64_t others_from, others_at_ms;
    struct sy_metrics_window *others;   /* [2], by slot */
};

static struct {
    bool enabled;                   /* started, with redis configured */
    bool stopping;                  /* stop began: leases given back */
    bool holding;                   /* an upgrade: lead nothing */
    struct event_base *base;
    const struct sy_conf *conf;
    struct sy_redis *cmd, *sub;
    struct event *timer;
    char id[128];
    char *prefix;                   /* key_prefix the keys below were made of */
    char *state_key, *gateways_key;
    bool heartbeat_inflight;
    bool state_key_logged;          /* the state key holds no hash: said once */
    int64_t ignored_log_ms;         /* last line about an ignored message */
    unsigned ignored_suppressed;
    struct fleet_svc **svcs;
    size_t nsvcs;
    _Atomic int64_t gateways, minute;
} fleet;

static const char *const slot_names[] = {"blue", "green"};

static int64_t mono_ms(void)
{
    return sy_clock_ms(CLOCK_MONOTONIC);
}

static int64_t wall_ms(void)
{
    return sy_clock_ms(CLOCK_REALTIME);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);

    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

static struct fleet_svc *svc_entry(const char *name)
{
    for (size_t i = 0; i < fleet.nsvcs; i++)
        if (strcmp(fleet.svcs[i]->name, name) == 0)
            return fleet.svcs[i];
    struct fleet_svc **grown = realloc(fleet.svcs, (fleet.nsvcs + 1) * sizeof(*grown));
    struct fleet_svc *fs = calloc(1, sizeof(*fs));
    if (grown)
        fleet.svcs = grown;
    if (!grown || !fs || !(fs->name = strdup(name)) ||
        !(fs->others = calloc(2, sizeof(*fs->others)))) {
        if (fs)
            free(fs->name);
        free(fs);
        return NULL;
    }
    fleet.svcs[fleet.nsvcs++] = fs;
    return fs;
}

static struct fleet_svc *svc_find(const char *name)
{
    for (size_t i = 0; i < fleet.nsvcs; i++)
        if (strcmp(fleet.svcs[i]->name, name) == 0)
            return fleet.svcs[i];
    return NULL;
}

/* The service named so in the snapshot serving now; NULL once a reload removed it. */
static const struct sy_service *conf_svc(const char *name)
{
    return fleet.conf ? sy_conf_service(fleet.conf, name) : NULL;
}

/* ---- the public view -------------------------------------------------------- */

bool sy_fleet_enabled(void)
{
    return fleet.enabled;
}

const char *sy_fleet_gateway_id(void)
{
    return fleet.enabled ? fleet.id : "";
}

int64_t sy_fleet_gateways(void)
{
    return atomic_load_explicit(&fleet.gateways, memory_order_relaxed);
}

int64_t sy_fleet_gateways_minute(void)
{
    int64_t n = atomic_load_explicit(&fleet.minute, memory_order_relaxed);

    return n > 1 ? n : 1;
}

static bool leads(const struct fleet_svc *fs)
{
    return fs && !fleet.holding && mono_ms() < fs->lease_until_ms;
}

/* A stopping gateway leads nothing, even once its fleet is gone (free_all): it drains. */
bool sy_fleet_leads(const struct sy_service *svc)
{
    if (fleet.stopping)
        return false;
    return !fleet.enabled || leads(svc_find(svc->name));
}

const char *sy_fleet_leader(const struct sy_service *svc)
{
    const struct fleet_svc *fs = fleet.enabled ? svc_find(svc->name) : NULL;

    /* told more than a lease ago: no longer known */
    if (!fs || !fs->holder[0] || mono_ms() - fs->tick_sent_ms > SY_FLEET_LEASE_MS)
        return NULL;
    return fs->holder;
}

int64_t sy_fleet_service_window(const struct sy_service *svc, enum sy_slot slot,
                                int64_t span_ms, struct sy_metrics_window *out)
{
    int64_t covered = sy_metrics_service_window(svc->metric_id[slot], span_ms, out);
    const struct fleet_svc *fs = fleet.enabled ? svc_find(svc->name) : NULL;

    if (leads(fs) && fs->others_from == svc->live->rollout.step_started_wall_ms &&
        mono_ms() - fs->others_at_ms < FIGURES_FRESH_MS)
        sy_fleet_window_add(out, &fs->others[slot]);
    return covered;
}

/* ---- logging ---------------------------------------------------------------- */

/* A message on the channel we cannot use: one line a second at most, the rest counted. */
static void log_ignored(const char *fmt, ...)
{
    char text[512];
    va_list ap;
    int64_t now = mono_ms();

    if (fleet.ignored_log_ms && now - fleet.ignored_log_ms < 1000) {
        fleet.ignored_suppressed++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (fleet.ignored_suppressed)
        sy_log_error(SY_LOG_WARN, "fleet", "%s (and %u more ignored since the last line)", text,
                     fleet.ignored_suppressed);
    else
        sy_log_error(SY_LOG_WARN, "fleet", "%s", text);
    fleet.ignored_log_ms = now;
    fleet.ignored_suppressed = 0;
}

/* ---- applying what other gateways stored ------------------------------------ */

/* The canonical text of svc's state now becomes what this gateway has seen. */
static void seen_now(struct fleet_svc *fs, const struct sy_service *svc)
{
    char *core = sy_fleet_doc_core(svc);

    if (core) {
        free(fs->seen_core);
        fs->seen_core = core;
    }
}

/* Another gateway's state, newer than ours, becomes this gateway's. */
static void adopt(struct fleet_svc *fs, const struct sy_service *svc,
                  const struct sy_fleet_doc *doc, const char *how)
{
    struct sy_fleet_live was = svc->live->fleet;

    sy_fleet_doc_apply(svc, doc, mono_ms(), wall_ms());
    seen_now(fs, svc);
    sy_state_save(fleet.conf);
    if (was.pending)
        sy_log_error(SY_LOG_WARN, "fleet", "service %s: the change made here to version %lld "
                     "was not stored: %s stored version %lld first, which applies", svc->name,
                     (long long)was.version + 1, doc->by[0] ? doc->by : "another gateway",
                     (long long)doc->version);
    sy_log_error(SY_LOG_INFO, "fleet", "service %s: version %lld from %s (%s): active %s, "
                 "canary weight %d, rollout %s, step %d%s", svc->name,
                 (long long)doc->version, doc->by[0] ? doc->by : "another gateway", how,
                 slot_names[doc->active], doc->weight,
                 sy_rollout_state_name(doc->rollout.state), doc->rollout.step + 1,
                 doc->maintenance ? ", maintenance on" : "");
}

/* ---- storing this gateway's changes ------------------------------------------ */

static void store(struct fleet_svc *fs, const struct sy_service *svc, int64_t version);

/* Whether svc's state changed since last noticed; a change is pending until stored. */
static bool notice(struct fleet_svc *fs, const struct sy_service *svc)
{
    char *core = sy_fleet_doc_core(svc);

    if (!core || (fs->seen_core && strcmp(core, fs->seen_core) == 0)) {
        free(core);
        return false;
    }
    free(fs->seen_core);
    fs->seen_core = core;
    fs->changes++;
    svc->live->fleet.pending = true;
    return true;
}

/* A pending change goes out as the next version, unless a store is in flight. */
static void store_pending(struct fleet_svc *fs, const struct sy_service *svc)
{
    if (svc->live->fleet.pending && !fs->storing)
        store(fs, svc, svc->live->fleet.version + 1);
}

void sy_fleet_changed(const struct sy_service *svc)
{
    struct fleet_svc *fs;

    if (!fleet.enabled || fleet.stopping || !(fs = svc_entry(svc->name)))
        return;
    if (notice(fs, svc))
        store_pending(fs, svc);
}

/* Our store of version was answered: stored. */
static void ours_stored(struct fleet_svc *fs, const struct sy_service *svc, int64_t version)
{
    struct sy_fleet_live *fl = &svc->live->fleet;

    if (version <= fl->version)
        return;
    fl->version = version;
    if (fs->storing_changes == fs->changes)
        fl->pending = false;
    sy_state_save(fleet.conf);
}

/* Whether doc's split, maintenance and rollout are what svc has now. */
static bool holds_ours(const struct sy_service *svc, const struct sy_fleet_doc *doc)
{
    char *theirs = sy_fleet_doc_core_of(doc), *ours = sy_fleet_doc_core(svc);
    bool same = theirs && ours && strcmp(theirs, ours) == 0;

    free(theirs);
    free(ours);
    return same;
}

/*
 * Redis holds doc, stored by this gateway, at our version or newer: a store
 * whose answer never came (a timeout) was applied after all. It is ours
 * from then on; when it is not what this gateway holds now (a change made
 * since, whose own store Redis refused over it), that goes out as the next
 * version, rather than leave Redis and the other gateways on the older.
 */
static void ours_found(const struct sy_service *svc, const struct sy_fleet_doc *doc)
{
    struct sy_fleet_live *fl = &svc->live->fleet;
    bool same = holds_ours(svc, doc);

    if (doc->version < fl->version || (doc->version == fl->version && (same || fl->pending)))
        return;
    if (!same)
        sy_log_error(SY_LOG_INFO, "fleet", "service %s: Redis holds version %lld of this "
                     "gateway's, not its state now: storing that as version %lld", svc->name,
                     (long long)doc->version, (long long)doc->version + 1);
    fl->version = doc->version;
    fl->pending = !same;
    sy_state_save(fleet.conf);
}

/*
 * A document from Redis, for svc: 0, or -1 with why in err (garbage: not a
 * document, another service's, or a state this configuration cannot be
 * in); *version as sy_fleet_doc_decode tells it.
 */
static int decode_for(const struct sy_service *svc, const char *text, size_t len,
                      struct sy_fleet_doc *doc, int64_t *version, char *err, size_t errlen)
{
    if (sy_fleet_doc_decode(text, len, doc, version, err, errlen) < 0)
        return -1;
    if (strcmp(doc->service, svc->name) != 0) {
        snprintf(err, errlen, "it is service %.64s's", doc->service);
        return -1;
    }
    return sy_fleet_doc_fits(svc, doc, err, errlen);
}

/* The store was refused: Redis holds stored (its text), as new or newer. */
static void store_refused(struct fleet_svc *fs, const struct sy_service *svc,
                          const char *stored, size_t len)
{
    struct sy_fleet_doc doc;
    int64_t version;
    char err[256];

    if (decode_for(svc, stored, len, &doc, &version, err, sizeof(err)) == 0) {
        if (strcmp(doc.by, fleet.id) == 0)
            ours_found(svc, &doc);
        else if (doc.version > svc->live->fleet.version)
            adopt(fs, svc, &doc, "stored first");
        return;
    }
    /* garbage with a number in it: ours goes over it as the next version */
    if (version > svc->live->fleet.version)
        svc->live->fleet.version = version;
    svc->live->fleet.pending = true;
}

static void on_stored(void *arg, enum sy_redis_status status, const struct redisReply *reply)
{
    struct fleet_svc *fs = arg;
    const struct sy_service *svc = conf_svc(fs->name);
    const redisReply *rep = reply;

    fs->storing = false;
    if (!svc)
        return;
    if (status != SY_REDIS_OK || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        /* tried again within a second; a store that went through anyway is found then */
        sy_log_error(SY_LOG_DEBUG, "fleet", "service %s: storing version %lld failed (%s)",
                     svc->name, (long long)fs->storing_version,
                     status == SY_REDIS_ERROR ? rep->str : "no answer");
        return;
    }
    if (rep->element[0]->integer == 1) {
        ours_stored(fs, svc, fs->storing_version);
        sy_log_error(SY_LOG_DEBUG, "fleet", "service %s: stored version %lld", svc->name,
                     (long long)fs->storing_version);
    } else if (rep->element[1]->type == REDIS_REPLY_STRING) {
        store_refused(fs, svc, rep->element[1]->str, rep->element[1]->len);
    }
    store_pending(fs, svc);
}

static void store(struct fleet_svc *fs, const struct sy_service *svc, int64_t version)
{
    char number[24], *channel = fleet.state_key;
    char *doc;

    if (version > SY_FLEET_VERSION_MAX) {
        /* only a hand-written document can bring a service this far */
        if (!fs->last_version_logged)
            sy_log_error(SY_LOG_ERROR, "fleet", "service %s: version %lld is the last one: "
                         "no change is stored any more (delete the field %s of %s in Redis, "
                         "and the state files, to start over)", svc->name,
                         (long long)SY_FLEET_VERSION_MAX, svc->name, fleet.state_key);
        fs->last_version_logged = true;
        return;
    }
    if (!(doc = sy_fleet_doc_encode(svc, version, fleet.id, wall_ms())) ||
        !sy_redis_ready(fleet.cmd)) {
        free(doc);
        return;
    }
    snprintf(number, sizeof(number), "%lld", (long long)version);
    const char *argv[] = {fleet.state_key, svc->name, number, doc, channel};
    const size_t lens[] = {strlen(argv[0]), strlen(argv[1]), strlen(number), strlen(doc),
                           strlen(channel)};
    if (sy_redis_eval(fleet.cmd, &store_script, 1, 5, argv, lens, on_stored, fs)) {
        fs->storing = true;
        fs->storing_version = version;
        fs->storing_changes = fs->changes;
    }
    free(doc);
}

/* ---- what Redis holds: the hash each second, and the channel ------------------ */

/*
 * The stored document of svc (NULL: none) against this gateway's version:
 * a newer one applies; an older one, none, or garbage gets ours written
 * back (over garbage's version, if it had one).
 */
static void reconcile(struct fleet_svc *fs, const struct sy_service *svc, const char *text,
                      size_t len)
{
    const struct sy_fleet_live *fl = &svc->live->fleet;
    struct sy_fleet_doc doc;
    int64_t version = 0;
    char err[256] = "";

    if (fs->storing)
        return;                 /* its answer decides */
    if (text && decode_for(svc, text, len, &doc, &version, err, sizeof(err)) < 0 && !err[0])
        snprintf(err, sizeof(err), "not a state document");
    if (text && err[0]) {
        if (!fs->garbage_logged)
            sy_log_error(SY_LOG_WARN, "fleet", "service %s: the state stored in Redis (%s, "
                         "field %s) is not its state document (%s): ignored, version %lld "
                         "holds and is written over it", svc->name, fleet.state_key, svc->name,
                         err, (long long)fl->version);
        fs->garbage_logged = true;
        if (!fl->pending)
            store(fs, svc, (version > fl->version ? version : fl->version) + 1);
        return;
    }
    if (text) {
        fs->garbage_logged = false;
        bool mine = strcmp(doc.by, fleet.id) == 0;
        if (doc.version > fl->version) {
            if (mine)
                ours_found(svc, &doc);
            else
                adopt(fs, svc, &doc, "read from Redis");
            store_pending(fs, svc);
            return;
        }
        if (doc.version == fl->version) {
            /*
             * One version, two states: Redis's applies, unless it is an older
             * one of ours, or a change of ours (noticed now, if not yet) goes
             * out as the next version anyway.
             */
            if (!notice(fs, svc) && !fl->pending && !holds_ours(svc, &doc)) {
                if (mine)
                    ours_found(svc, &doc);
                else
                    adopt(fs, svc, &doc, "read from Redis, at this gateway's version");
            }
            store_pending(fs, svc);
            return;
        }
    }
    /* Redis lacks what this gateway has (restarted empty, a failover that lost writes) */
    if (!fl->pending) {
        sy_log_error(text || fl->version > 0 ? SY_LOG_INFO : SY_LOG_DEBUG, "fleet",
                     "service %s: Redis holds version %lld, this gateway %lld: writing it "
                     "back", svc->name, (long long)(text ? doc.version : 0),
                     (long long)fl->version);
        store(fs, svc, fl->version > 0 ? fl->version : 1);
    }
}

/* The stored hash, as HGETALL answers it: every service of ours finds its field or none. */
static void reconcile_all(const redisReply *fields)
{
    for (size_t i = 0; fleet.conf && i < fleet.conf->nservices; i++) {
        const struct sy_service *svc = &fleet.conf->services[i];
        struct fleet_svc *fs = svc_entry(svc->name);
        const redisReply *value = NULL;
        for (size_t j = 0; fields && j + 1 < fields->elements; j += 2)
            if (fields->element[j]->type == REDIS_REPLY_STRING &&
                strcmp(fields->element[j]->str, svc->name) == 0)
                value = fields->element[j + 1];
        if (!fs)
            continue;
        if (value && value->type == REDIS_REPLY_STRING)
            reconcile(fs, svc, value->str, value->len);
        else
            reconcile(fs, svc, NULL, 0);
    }
}

static void on_heartbeat(void *arg, enum sy_redis_status status,
                         const struct redisReply *reply)
{
    const redisReply *rep = reply;

    (void)arg;
    fleet.heartbeat_inflight = false;
    if (status != SY_REDIS_OK || rep->type != REDIS_REPLY_ARRAY || rep->elements < 4 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER)
        return;
    atomic_store_explicit(&fleet.gateways, rep->element[0]->integer, memory_order_relaxed);
    atomic_store_explicit(&fleet.minute, rep->element[1]->integer, memory_order_relaxed);
    const redisReply *kind = rep->element[2], *fields = rep->element[3];
    bool hash = kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "hash") == 0;
    bool none = kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "none") == 0;
    if (!hash && !none && !fleet.state_key_logged)
        sy_log_error(SY_LOG_WARN, "fleet", "the key %s holds a %s, not the state hash: "
                     "ignored; the gateways' states are written over it", fleet.state_key,
                     kind->type == REDIS_REPLY_STRING ? kind->str : "value");
    fleet.state_key_logged = !hash && !none;
    reconcile_all(hash && fields->type == REDIS_REPLY_ARRAY ? fields : NULL);
}

static void heartbeat(const char *mode)
{
    char seen[24];

    if (fleet.heartbeat_inflight && strcmp(mode, "leave") != 0)
        return;
    snprintf(seen, sizeof(seen), "%d", SY_FLEET_SEEN_MS);
    const char *argv[] = {fleet.gateways_key, fleet.state_key, fleet.id, mode, seen};
    const size_t lens[] = {strlen(argv[0]), strlen(argv[1]), strlen(fleet.id), strlen(mode),
                           strlen(seen)};
    if (sy_redis_eval(fleet.cmd, &heartbeat_script, 2, 5, argv, lens,
                      strcmp(mode, "leave") ? on_heartbeat : NULL, NULL) &&
        strcmp(mode, "leave") != 0)
        fleet.heartbeat_inflight = true;
}

/* A message on the channel: another gateway stored a state. */
static void on_message(void *arg, const char *payload, size_t len)
{
    struct sy_fleet_doc doc;
    const struct sy_service *svc;
    struct fleet_svc *fs;
    int64_t version;
    char err[256];

    (void)arg;
    if (sy_fleet_doc_decode(payload, len, &doc, &version, err, sizeof(err)) < 0) {
        log_ignored("ignored a message on the channel %s: not a state document (%s)",
                    fleet.state_key, err);
        return;
    }
    if (strcmp(doc.by, fleet.id) == 0)
        return;                 /* ours: the store's answer tells */
    if (!(svc = conf_svc(doc.service)) || !(fs = svc_entry(svc->name))) {
        sy_log_error(SY_LOG_DEBUG, "fleet", "a state of service %s, which this gateway does "
                     "not have: ignored", doc.service);
        return;
    }
    if (sy_fleet_doc_fits(svc, &doc, err, sizeof(err)) < 0) {
        log_ignored("ignored a message on the channel %s: not a state of this gateway's "
                    "configuration (%s)", fleet.state_key, err);
        return;
    }
    if (doc.version <= svc->live->fleet.version) {
        log_ignored("service %s: ignored version %lld from %s on the channel: this gateway "
                    "has version %lld", svc->name, (long long)doc.version,
                    doc.by[0] ? doc.by : "an unnamed gateway",
                    (long long)svc->live->fleet.version);
        return;
    }
    adopt(fs, svc, &doc, "published");
}

static void tick(void);

/* Subscribed again after a connect: what the channel missed meanwhile is in the hash. */
static void on_subscribed(void *arg)
{
    (void)arg;
    tick();
}

/* ---- the lease and the figures ---------------------------------------------- */

static void lead_changed(struct fleet_svc *fs, const char *svc_name, bool was, bool now,
                         const char *holder)
{
    if (now && !was)
        sy_log_error(SY_LOG_INFO, "fleet", "service %s: this gateway (%s) leads its rollout "
                     "controller now", svc_name, fleet.id);
    else if (was && !now)
        sy_log_error(SY_LOG_INFO, "fleet", "service %s: this gateway no longer leads its "
                     "rollout controller (%s)", svc_name, holder[0]
                     ? holder : "the lease lapsed");
    else if (!now && strcmp(fs->holder, holder) != 0 && holder[0])
        sy_log_error(SY_LOG_INFO, "fleet", "service %s: %s leads its rollout controller",
                     svc_name, holder);
}

/* The holder's share: every other gateway's figures for the step, summed. */
static void on_figures(void *arg, enum sy_redis_status status, const struct redisReply *reply)
{
    struct fleet_svc *fs = arg;
    const redisReply *fields = reply;
    char err[256];

    fs->reading = false;
    if (status != SY_REDIS_OK || fields->type != REDIS_REPLY_ARRAY)
        return;
    memset(fs->others, 0, 2 * sizeof(*fs->others));
    for (size_t j = 0; j + 1 < fields->elements; j += 2) {
        const redisReply *who = fields->element[j], *text = fields->element[j + 1];
        if (who->type != REDIS_REPLY_STRING || text->type != REDIS_REPLY_STRING ||
            strcmp(who->str, fleet.id) == 0)
            continue;
        if (sy_fleet_figures_add(text->str, text->len, fs->tick_from, fs->others, err,
                                 sizeof(err)) < 0)
            log_ignored("service %s: ignored the figures of %s: %s", fs->name, who->str, err);
    }
    fs->others_from = fs->tick_from;
    fs->others_at_ms = mono_ms();
}

static void read_figures(struct fleet_svc *fs)
{
    const char *argv[] = {"HGETALL", fs->figures_key};
    const size_t lens[] = {7, strlen(fs->figures_key)};

    if (!fs->reading && sy_redis_command(fleet.cmd, 2, argv, lens, on_figures, fs))
        fs->reading = true;
}

static void on_service(void *arg, enum sy_redis_status status, const struct redisReply *reply)
{
    struct fleet_svc *fs = arg;
    const redisReply *rep = reply;

    fs->ticking = false;
    if (status != SY_REDIS_OK || rep->type != REDIS_REPLY_STRING)
        return;
    const char *holder = rep->str;
    bool was = leads(fs), ours = strcmp(holder, fleet.id) == 0;
    fs->lease_until_ms = ours ? fs->tick_sent_ms + SY_FLEET_LEASE_MS - LEASE_MARGIN_MS : 0;
    lead_changed(fs, fs->name, was, leads(fs), holder);
    snprintf(fs->holder, sizeof(fs->holder), "%s", holder);
    if (ours && fs->tick_from > 0 && fs->figures_key)
        read_figures(fs);
}

/* This gateway's figures for the rollout's step under way; NULL when none runs. */
static char *own_figures(const struct sy_service *svc, int64_t now_wall)
{
    const struct sy_rollout_live *ro = &svc->live->rollout;
    struct sy_metrics_window *w;
    char *text;

    if (!sy_rollout_active(ro->state) || ro->step_started_wall_ms <= 0 ||
        !(w = calloc(2, sizeof(*w))))
        return NULL;
    int64_t span = now_wall - ro->step_started_wall_ms;
    span = span < 1000 ? 1000 : span;
    for (int s = 0; s < 2; s++)
        sy_metrics_service_window(svc->metric_id[s], span, &w[s]);
    text = sy_fleet_figures_encode(w, ro->step_started_wall_ms, now_wall);
    free(w);
    return text;
}

/* mode: "claim" (take or renew the lease) or "leave" (give it up). */
static void service_tick(struct fleet_svc *fs, const struct sy_service *svc, const char *mode)
{
    char lease[24], ttl[24], from[24];
    bool leaving = strcmp(mode, "leave") == 0;

    if (fs->ticking && !leaving)
        return;
    int64_t now_wall = wall_ms();
    char *figures = leaving ? NULL : own_figures(svc, now_wall);
    int64_t step_from = svc->live->rollout.step_started_wall_ms;
    snprintf(from, sizeof(from), ":%lld", (long long)(sy_rollout_active(
        svc->live->rollout.state) ? step_from : 0));
    char *leader_key = join(fleet.prefix, "leader:"), *lk = leader_key ? join(leader_key,
                                                                             svc->name) : NULL;
    char *figures_base = join(fleet.prefix, "figures:"), *fb = figures_base
                                                               ? join(figures_base, svc->name)
                                                               : NULL;
    char *fk = fb ? join(fb, from) : NULL;
    snprintf(lease, sizeof(lease), "%d", SY_FLEET_LEASE_MS);
    snprintf(ttl, sizeof(ttl), "%d", FIGURES_TTL_MS);
    if (lk && fk) {
        const char *f = figures ? figures : "";
        const char *argv[] = {lk, fk, fleet.id, lease, f, mode, ttl};
        const size_t lens[] = {strlen(lk), strlen(fk), strlen(fleet.id), strlen(lease),
                               strlen(f), strlen(mode), strlen(ttl)};
        int64_t sent = mono_ms();
        if (sy_redis_eval(fleet.cmd, &service_script, 2, 7, argv, lens,
                          leaving ? NULL : on_service, fs) && !leaving) {
            fs->ticking = true;
            fs->tick_sent_ms = sent;
            fs->tick_from = sy_rollout_active(svc->live->rollout.state) ? step_from : 0;
            free(fs->figures_key);
            fs->figures_key = fk;
            fk = NULL;
        }
    }
    if (leaving)
        fs->lease_until_ms = 0;
    free(figures);
    free(leader_key);
    free(lk);
    free(figures_base);
    free(fb);
    free(fk);
}

/* ---- the second ------------------------------------------------------------------ */

static void lapse_leases(void)
{
    for (size_t i = 0; i < fleet.nsvcs; i++) {
        struct fleet_svc *fs = fleet.svcs[i];
        if (fs->lease_until_ms && !leads(fs)) {
            fs->lease_until_ms = 0;
            lead_changed(fs, fs->name, true, false, "");
        }
    }
}

static void tick(void)
{
    lapse_leases();
    if (!sy_redis_ready(fleet.cmd) || !fleet.conf)
        return;
    heartbeat("beat");
    for (size_t i = 0; i < fleet.conf->nservices; i++) {
        const struct sy_service *svc = &fleet.conf->services[i];
        struct fleet_svc *fs = svc_entry(svc->name);
        if (!fs)
            continue;
        notice(fs, svc);
        store_pending(fs, svc);
        service_tick(fs, svc, fleet.holding ? "leave" : "claim");
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    tick();
}

/* ---- connections ------------------------------------------------------------ */

static int make_keys(const struct sy_conf *conf)
{
    free(fleet.prefix);
    free(fleet.state_key);
    free(fleet.gateways_key);
    fleet.prefix = strdup(conf->redis.key_prefix);
    fleet.state_key = join(conf->redis.key_prefix, "state");
    fleet.gateways_key = join(conf->redis.key_prefix, "gateways");
    return fleet.prefix && fleet.state_key && fleet.gateways_key ? 0 : -1;
}

static void close_connections(void)
{
    sy_redis_free(fleet.sub);
    sy_redis_free(fleet.cmd);
    fleet.sub = fleet.cmd = NULL;
    fleet.heartbeat_inflight = false;
    for (size_t i = 0; i < fleet.nsvcs; i++) {
        /* freed connections answer nothing: nothing is in flight any more */
        fleet.svcs[i]->storing = fleet.svcs[i]->ticking = fleet.svcs[i]->reading = false;
    }
}

static int open_connections(const struct sy_conf *conf)
{
    if (make_keys(conf) < 0 || !(fleet.cmd = sy_redis_new(fleet.base, "fleet", &conf->redis)))
        return -1;
    sy_redis_set_timeout(fleet.cmd, FLEET_TIMEOUT_MS);
    if (!(fleet.sub = sy_redis_new(fleet.base, "fleet subscriber", &conf->redis)) ||
        sy_redis_subscribe(fleet.sub, fleet.state_key, on_message, on_subscribed, NULL) < 0) {
        close_connections();
        return -1;
    }
    return 0;
}

/* "host:pid:xxxx": readable in logs and status, unique though a pid comes again. */
static void make_id(void)
{
    char host[64] = "localhost";
    uint16_t salt = 0;

    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    if (getrandom(&salt, sizeof(salt), 0) != sizeof(salt))
        salt = (uint16_t)(mono_ms() ^ getpid());
    snprintf(fleet.id, sizeof(fleet.id), "%s:%ld:%04x", host, (long)getpid(), salt);
}

/* Every service's state now is what this gateway has seen: later differences are changes. */
static void see_all(const struct sy_conf *conf)
{
    for (size_t i = 0; i < conf->nservices; i++) {
        struct fleet_svc *fs = svc_entry(conf->services[i].name);
        if (fs && !fs->seen_core)
            seen_now(fs, &conf->services[i]);
    }
}

/* ---- reading the shared state at start (before the workers serve) ------------- */

#if SY_HAVE_HIREDIS

/* What is left of the start's read, as a command's timeout; false once it is spent. */
static bool time_left(redisContext *c, int64_t deadline_ms)
{
    int64_t left = deadline_ms - mono_ms();
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000 * 1000)};

    return left > 0 && redisSetTimeout(c, tv) == REDIS_OK;
}

/* A name's resolution at start: its answer, or none yet. */
struct start_lookup {
    bool done;
    int result;
    char ip[INET6_ADDRSTRLEN];
};

static void on_start_lookup(int result, struct evutil_addrinfo *res, void *arg)
{
    struct start_lookup *lookup = arg;

    lookup->done = true;
    lookup->result = result;
    if (result == 0 && res) {
        const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        if (!inet_ntop(res->ai_family, a, lookup->ip, sizeof(lookup->ip)))
            lookup->result = EVUTIL_EAI_FAIL;
    } else if (result == 0) {
        lookup->result = EVUTIL_EAI_FAIL;
    }
    if (res)
        evutil_freeaddrinfo(res);
}

/*
 * host as an address, resolved by the deadline: getaddrinfo (what hiredis
 * would call) may block for as long as the resolver's timeouts and
 * retries, far past the start's budget. So a name is resolved as the
 * connections resolve it (evdns: /etc/hosts, then resolv.conf's servers),
 * on an event base of its own, given up at the deadline. 0, or -1 with why.
 */
static int resolve_by(const char *host, int64_t deadline_ms, char *ip, size_t iplen,
                      char *why, size_t len)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct start_lookup lookup = {0};
    unsigned char a[16];
    struct event_base *base;
    struct evdns_base *dns = NULL;

    if (inet_pton(AF_INET, host, a) == 1)
        return inet_ntop(AF_INET, a, ip, (socklen_t)iplen) ? 0 : -1;
    if (inet_pton(AF_INET6, host, a) == 1)
        return inet_ntop(AF_INET6, a, ip, (socklen_t)iplen) ? 0 : -1;
    if (!(base = event_base_new()) || !(dns = evdns_base_new(base,
                                                             EVDNS_BASE_INITIALIZE_NAMESERVERS))) {
        snprintf(why, len, "cannot start a resolver");
        if (base)
            event_base_free(base);
        return -1;
    }
    /* NULL when it answered at once (a hosts-file name): the callback ran */
    struct evdns_getaddrinfo_request *req = evdns_getaddrinfo(dns, host, NULL, &hints,
                                                              on_start_lookup, &lookup);
    int64_t left = deadline_ms - mono_ms();
    if (!lookup.done && left > 0) {
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000 * 1000)};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    if (!lookup.done && req) {
        /*
         * Its callback, deferred, frees the request: the next turns deliver
         * it. (One still pending when base goes is dropped with it, never
         * run: lookup may live on this stack.)
         */
        evdns_getaddrinfo_cancel(req);
        for (int turn = 0; turn < 16 && !lookup.done; turn++)
            event_base_loop(base, EVLOOP_NONBLOCK);
    }
    evdns_base_free(dns, 0);
    event_base_free(base);
    if (lookup.result != 0 || !lookup.ip[0]) {
        snprintf(why, len, "cannot resolve %.128s within %d ms: %s", host, START_READ_MS,
                 lookup.result == EVUTIL_EAI_CANCEL || !lookup.done
                 ? "no answer" : evutil_gai_strerror(lookup.result));
        return -1;
    }
    snprintf(ip, iplen, "%s", lookup.ip);
    return 0;
}

static redisContext *connect_blocking(const struct sy_redis_conf *rc, int64_t deadline_ms,
                                      char *why, size_t len)
{
    struct timeval tv = {START_READ_MS / 1000, (START_READ_MS % 1000) * 1000};
    struct sy_redis_url u;
    redisContext *c;
    redisReply *rep = NULL;
    char db[16], ip[INET6_ADDRSTRLEN];

    if (sy_redis_url_parse(rc->url, &u, why, len) < 0)
        return NULL;
    if (u.transport == SY_REDIS_TCP) {
        if (resolve_by(u.host, deadline_ms, ip, sizeof(ip), why, len) < 0)
            return NULL;
        int64_t left = deadline_ms - mono_ms();
        if (left <= 0) {
            snprintf(why, len, "no answer within 1 s");
            return NULL;
        }
        tv = (struct timeval){(time_t)(left / 1000), (suseconds_t)(left % 1000 * 1000)};
    }
    c = u.transport == SY_REDIS_UNIX ? redisConnectUnixWithTimeout(u.path, tv)
                                     : redisConnectWithTimeout(ip, u.port, tv);
    if (!c || c->err) {
        snprintf(why, len, "%s", c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    if (u.password[0] && time_left(c, deadline_ms))
        rep = u.user[0] ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                        : redisCommand(c, "AUTH %s", u.password);
    if ((!u.password[0] || (rep && rep->type != REDIS_REPLY_ERROR)) &&
        time_left(c, deadline_ms)) {
        freeReplyObject(rep);
        snprintf(db, sizeof(db), "%d", u.db);
        rep = u.db ? redisCommand(c, "SELECT %s", db) : redisCommand(c, "PING");
    }
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, len, "%s", rep ? rep->str : c->err ? c->errstr : "no answer within 1 s");
        freeReplyObject(rep);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(rep);
    return c;
}

/* What other gateways stored and is newer than the state file applies before the first request. */
static void read_at_start(struct sy_conf *conf)
{
    char why[256];
    int64_t deadline = mono_ms() + START_READ_MS;
    redisContext *c = connect_blocking(&conf->redis, deadline, why, sizeof(why));
    redisReply *rep = c && time_left(c, deadline) ? redisCommand(c, "HGETALL %s",
                                                                 fleet.state_key) : NULL;
    int applied = 0;

    if (!c || !rep || rep->type != REDIS_REPLY_ARRAY) {
        sy_log_error(SY_LOG_WARN, "fleet", "cannot read the shared state at start (%s): "
                     "starting from %s; it is read once Redis answers",
                     !c ? why : rep && rep->type == REDIS_REPLY_ERROR ? rep->str
                     : c->err ? c->errstr : "no answer within 1 s",
                     conf->state_file ? "the state file" : "the configuration");
        freeReplyObject(rep);
        redisFree(c);
        return;
    }
    for (size_t j = 0; j + 1 < rep->elements; j += 2) {
        const redisReply *field = rep->element[j], *value = rep->element[j + 1];
        const struct sy_service *svc = field->type == REDIS_REPLY_STRING
                                       ? sy_conf_service(conf, field->str) : NULL;
        struct sy_fleet_doc doc;
        int64_t version;
        if (!svc || value->type != REDIS_REPLY_STRING ||
            decode_for(svc, value->str, value->len, &doc, &version, why, sizeof(why)) < 0 ||
            doc.version <= svc->live->fleet.version)
            continue;           /* garbage and older versions: the first second tells */
        struct fleet_svc *fs = svc_entry(svc->name);
        if (fs)
            adopt(fs, svc, &doc, "read from Redis at start");
        applied++;
    }
    sy_log_error(SY_LOG_INFO, "fleet", "read the shared state at start: %d of %zu service(s) "
                 "newer in Redis than here", applied, conf->nservices);
    freeReplyObject(rep);
    redisFree(c);
}

#else

static void read_at_start(struct sy_conf *conf)
{
    (void)conf;
}

#endif

/* ---- the main-thread service ---------------------------------------------------- */

static int fleet_prepare(struct sy_conf *conf, char *err, size_t errlen)
{
    fleet.conf = conf;
    if (!conf->redis.enabled || !SY_HAVE_HIREDIS)
        return 0;
    make_id();
    if (make_keys(conf) < 0) {
        snprintf(err, errlen, "fleet: out of memory");
        return -1;
    }
    read_at_start(conf);
    see_all(conf);
    return 0;
}

static int begin(const struct sy_conf *conf)
{
    static const struct timeval second = {1, 0};

    if (!fleet.id[0])
        make_id();
    if (open_connections(conf) < 0)
        return -1;
    fleet.timer = event_new(fleet.base, -1, EV_PERSIST, on_timer, NULL);
    if (!fleet.timer || event_add(fleet.timer, &second) < 0) {
        close_connections();
        return -1;
    }
    fleet.enabled = true;
    see_all(conf);
    sy_log_error(SY_LOG_INFO, "fleet", "this gateway is %s in the fleet of key prefix \"%s\"",
                 fleet.id, fleet.prefix);
    return 0;
}

static void end(void)
{
    if (fleet.timer)
        event_free(fleet.timer);
    fleet.timer = NULL;
    close_connections();
    fleet.enabled = false;
    for (size_t i = 0; i < fleet.nsvcs; i++)
        fleet.svcs[i]->lease_until_ms = 0;
    atomic_store(&fleet.gateways, 0);
    atomic_store(&fleet.minute, 0);
}

static int fleet_start(struct event_base *base, struct sy_conf *conf, char *err, size_t errlen)
{
    fleet.base = base;
    fleet.conf = conf;
    if (!SY_HAVE_HIREDIS)
        return 0;               /* redis.c said once that this build has no Redis */
    if (conf->redis.enabled && begin(conf) < 0) {
        snprintf(err, errlen, "fleet: cannot start (out of memory)");
        return -1;
    }
    return 0;
}

/* A reload: redis may come, go, or move (url, key_prefix); its edits of a split are changes. */
static void fleet_reconfigure(struct sy_conf *conf)
{
    fleet.conf = conf;
    if (fleet.stopping)
        return;
    if (!conf->redis.enabled || !SY_HAVE_HIREDIS) {
        if (fleet.enabled) {
            end();
            sy_log_error(SY_LOG_INFO, "fleet", "redis left the configuration: this gateway "
                         "leaves the fleet");
        }
        return;
    }
    if (fleet.enabled && strcmp(fleet.prefix, conf->redis.key_prefix) != 0)
        end();
    if (!fleet.enabled) {
        if (begin(conf) < 0)
            sy_log_error(SY_LOG_ERROR, "fleet", "cannot join the fleet: out of memory");
        return;
    }
    sy_redis_configure(fleet.cmd, &conf->redis);
    sy_redis_configure(fleet.sub, &conf->redis);
    for (size_t i = 0; i < conf->nservices; i++) {
        struct fleet_svc *fs = svc_entry(conf->services[i].name);
        if (fs && !fs->seen_core)
            seen_now(fs, &conf->services[i]);
        else if (fs && notice(fs, &conf->services[i]))
            store_pending(fs, &conf->services[i]);
    }
}

/* An upgrade: the new process leads; this one gives its leases back meanwhile. */
static void fleet_hold(bool held)
{
    fleet.holding = held;
    if (!held || !fleet.enabled || !fleet.conf || !sy_redis_ready(fleet.cmd))
        return;
    for (size_t i = 0; i < fleet.conf->nservices; i++) {
        struct fleet_svc *fs = svc_find(fleet.conf->services[i].name);
        if (fs && fs->lease_until_ms)
            service_tick(fs, &fleet.conf->services[i], "leave");
    }
}

static void free_all(void)
{
    end();
    for (size_t i = 0; i < fleet.nsvcs; i++) {
        free(fleet.svcs[i]->name);
        free(fleet.svcs[i]->seen_core);
        free(fleet.svcs[i]->figures_key);
        free(fleet.svcs[i]->others);
        free(fleet.svcs[i]);
    }
    free(fleet.svcs);
    fleet.svcs = NULL;
    fleet.nsvcs = 0;
    free(fleet.prefix);
    free(fleet.state_key);
    free(fleet.gateways_key);
    fleet.prefix = fleet.state_key = fleet.gateways_key = NULL;
}

/*
 * The first stop (graceful or fast) gives the leases back and leaves the
 * gateways' set, so that another gateway leads at its next second; the
 * connections stay until the second call (at exit), for those commands to
 * go out. With nothing sent, everything goes at once.
 */
static void fleet_stop(void)
{
    bool sent = false;

    if (fleet.stopping || !fleet.enabled) {
        free_all();
        return;
    }
    fleet.stopping = fleet.holding = true;
    if (fleet.timer)
        event_del(fleet.timer);
    if (sy_redis_ready(fleet.cmd) && fleet.conf) {
        for (size_t i = 0; i < fleet.conf->nservices; i++) {
            struct fleet_svc *fs = svc_find(fleet.conf->services[i].name);
            if (fs && fs->lease_until_ms)
                service_tick(fs, &fleet.conf->services[i], "leave");
        }
        heartbeat("leave");
        sent = true;
    }
    if (!sent)
        free_all();
}

const struct sy_main_service sy_fleet_service = {
    .prepare = fleet_prepare,
    .start = fleet_start,
    .reconfigure = fleet_reconfigure,
    .stop = fleet_stop,
    .hold = fleet_hold,
};
