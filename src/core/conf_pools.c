/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_pools.c: "pools" (instances, balancing, active and passive health)
 * and "services" (blue/green slots naming pools, canary, rollout, scaling,
 * maintenance). Pools are parsed first: a service points into conf->pools.
 * Each instance gets its live state from the registry (core/live.h).
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"
#include "live.h"

static void
pool_defaults(struct sy_pool *pool)
{
    pool->balance = SY_BALANCE_ROUND_ROBIN;
    pool->keepalive = 64;
    pool->connect_timeout_ms = 1000;
    pool->read_timeout_ms = 30000;
    pool->retries = 1;
    pool->passive.max_fails = 5;
    pool->passive.eject_ms = 30000;
    pool->passive.max_eject_percent = 10;
}

static void
parse_instance(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_pool *pool,
               size_t i)
{
    static const char *const keys[] = {"addr", "weight", NULL};
    struct sy_instance *inst = &pool->instances[i];
    char p[CONF_PATH_MAX];

    inst->index = i;
    inst->weight = 1;
    if (!conf_object(ctx, v, path, keys))
        return;
    conf_int32(ctx, v, path, "weight", 1, 1000, &inst->weight);
    if (!conf_required(ctx, v, path, "addr") || !conf_addr(ctx, v, path, "addr", &inst->addr))
        return;
    for (size_t j = 0; j < i; j++) {
        const struct sy_addr *other = &pool->instances[j].addr;

        if (other->len == inst->addr.len && memcmp(&other->ss, &inst->addr.ss, other->len) == 0) {
            conf_err(ctx, conf_path(p, path, "addr"), "duplicate address \"%s\" (also instances[%zu])",
                     inst->addr.text, j);
            return;
        }
    }
}

static void
parse_instances(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_pool *pool)
{
    char base[CONF_PATH_MAX], p[CONF_PATH_MAX];
    json_t *arr, *inst;
    size_t n, i;

    if (!conf_required(ctx, v, path, "instances"))
        return;
    n = conf_array(ctx, v, path, "instances", &arr);
    conf_path(base, path, "instances");
    if (arr != NULL && n == 0)
        conf_err(ctx, base, "must not be empty");
    if (n == 0 || (pool->instances = conf_calloc(ctx, n, sizeof(*pool->instances))) == NULL)
        return;
    pool->ninstances = n;
    json_array_foreach(arr, i, inst)
        parse_instance(ctx, inst, conf_path_index(p, base, i), pool, i);
}

/* "200-399" or "200,204,300-399": each status 100..599, lo <= hi */
static int
parse_expect(const char *s, struct sy_status_range *out, size_t *n)
{
    const char *p = s;

    *n = 0;
    do {
        char *end;
        long lo = strtol(p, &end, 10), hi;

        if (!isdigit((unsigned char)*p) || end - p != 3)
            return -1;
        hi = lo;
        p = end;
        if (*p == '-') {
            if (!isdigit((unsigned char)p[1]))
                return -1;
            hi = strtol(p + 1, &end, 10);
            if (end - p - 1 != 3)
                return -1;
            p = end;
        }
        if (lo < 100 || hi > 599 || lo > hi || (*p != ',' && *p != '\0'))
            return -1;
        out[*n].lo = (int)lo;
        out[(*n)++].hi = (int)hi;
    } while (*p++ == ',');
    return 0;
}

static void
parse_expect_status(struct conf_ctx *ctx, const json_t *v, const char *path,
                    struct sy_health_conf *h)
{
    const char *s = conf_string(ctx, v, path, "expect_status");
    struct sy_status_range *ranges;
    char p[CONF_PATH_MAX];
    size_t n = 1;

    if (s == NULL)
        return;
    for (const char *c = s; *c != '\0'; c++)
        n += *c == ',';
    if ((ranges = conf_calloc(ctx, n, sizeof(*ranges))) == NULL)
        return;
    if (parse_expect(s, ranges, &n) < 0) {
        conf_err(ctx, conf_path(p, path, "expect_status"), "invalid status list \"%s\""
                 " (expected like \"200-399\" or \"200,204,300-399\", each 100..599)", s);
        free(ranges);
        return;
    }
    free(h->expect);
    h->expect = ranges;
    h->nexpect = n;
}

static void
parse_health(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_health_conf *h)
{
    static const char *const keys[] = {
        "path", "interval_ms", "timeout_ms", "rise", "fall", "expect_status", NULL,
    };
    char p[CONF_PATH_MAX];

    h->enabled = true;
    h->path = conf_dup(ctx, "/health");
    h->interval_ms = 2000;
    h->timeout_ms = 1000;
    h->rise = 2;
    h->fall = 3;
    h->expect = conf_calloc(ctx, 1, sizeof(*h->expect));
    if (h->expect != NULL) {
        h->expect[0] = (struct sy_status_range){200, 399};
        h->nexpect = 1;
    }
    if (!conf_object(ctx, v, path, keys))
        return;
    if (conf_strdup(ctx, v, path, "path", &h->path) && h->path[0] != '/')
        conf_err(ctx, conf_path(p, path, "path"), "must start with '/'");
    conf_duration(ctx, v, path, "interval_ms", 100, &h->interval_ms);
    if (conf_duration(ctx, v, path, "timeout_ms", 1, &h->timeout_ms)
        && h->timeout_ms >= h->interval_ms)
        conf_err(ctx, conf_path(p, path, json_object_get(v, "timeout_s") ? "timeout_s" : "timeout_ms"),
                 "must be less than interval_ms (%lld)", (long long)h->interval_ms);
    conf_int32(ctx, v, path, "rise", 1, 100, &h->rise);
    conf_int32(ctx, v, path, "fall", 1, 100, &h->fall);
    parse_expect_status(ctx, v, path, h);
}

static void
parse_passive(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_passive_conf *p)
{
    static const char *const keys[] = {"max_fails", "eject_ms", "max_eject_percent", NULL};

    if (!conf_object(ctx, v, path, keys))
        return;
    conf_int32(ctx, v, path, "max_fails", 0, 1000, &p->max_fails);
    conf_duration(ctx, v, path, "eject_ms", 0, &p->eject_ms);
    conf_int32(ctx, v, path, "max_eject_percent", 0, 100, &p->max_eject_percent);
}

/* "tls": false, true, or {"ca_file": path} */
static void
parse_pool_tls(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_pool *pool)
{
    static const char *const keys[] = {"ca_file", NULL};
    char p[CONF_PATH_MAX];

    if (json_is_boolean(v)) {
        pool->tls = json_is_true(v);
        return;
    }
    if (!json_is_object(v)) {
        conf_err(ctx, path, "expected a boolean or an object");
        return;
    }
    pool->tls = true;
    conf_object(ctx, v, path, keys);
    if (conf_strdup(ctx, v, path, "ca_file", &pool->tls_ca_file))
        conf_readable(ctx, conf_path(p, path, "ca_file"), pool->tls_ca_file);
}

static void
parse_pool(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_pool *pool)
{
    static const char *const keys[] = {
        "instances", "balance", "keepalive", "connect_timeout_ms", "read_timeout_ms", "retries",
        "tls", "health", "passive", NULL,
    };
    static const char *const balances[] = {"round_robin", "least_conn", "ip_hash", NULL};
    const json_t *sub;
    char p[CONF_PATH_MAX];
    int balance;

    pool_defaults(pool);
    if (!conf_object(ctx, v, path, keys))
        return;
    parse_instances(ctx, v, path, pool);
    if (conf_enum(ctx, v, path, "balance", balances, &balance))
        pool->balance = (enum sy_balance)balance;
    conf_int32(ctx, v, path, "keepalive", 0, 10000, &pool->keepalive);
    conf_duration(ctx, v, path, "connect_timeout_ms", 1, &pool->connect_timeout_ms);
    conf_duration(ctx, v, path, "read_timeout_ms", 1, &pool->read_timeout_ms);
    conf_int32(ctx, v, path, "retries", 0, 10, &pool->retries);
    if ((sub = json_object_get(v, "tls")) != NULL)
        parse_pool_tls(ctx, sub, conf_path(p, path, "tls"), pool);
    if ((sub = json_object_get(v, "health")) != NULL)
        parse_health(ctx, sub, conf_path(p, path, "health"), &pool->health);
    if ((sub = json_object_get(v, "passive")) != NULL)
        parse_passive(ctx, sub, conf_path(p, path, "passive"), &pool->passive);
    for (size_t i = 0; i < pool->ninstances && pool->name; i++) {
        struct sy_instance *inst = &pool->instances[i];
        if (inst->addr.len == 0)
            continue;           /* already reported */
        if (!(inst->live = sy_live_get(pool->name, inst->addr.text, pool->health.enabled)))
            conf_err(ctx, path, "out of memory");
    }
}

void
conf_parse_pools(struct conf_ctx *ctx, const json_t *root)
{
    struct sy_conf *conf = ctx->conf;
    const json_t *pools = json_object_get(root, "pools");
    const char *name;
    json_t *v;
    char p[CONF_PATH_MAX];
    size_t n;

    if (pools == NULL || !conf_map(ctx, pools, "pools"))
        return;
    n = json_object_size(pools);
    if (n == 0 || (conf->pools = conf_calloc(ctx, n, sizeof(*conf->pools))) == NULL)
        return;
    json_object_foreach((json_t *)pools, name, v) {
        struct sy_pool *pool = &conf->pools[conf->npools];

        pool->index = conf->npools++;
        pool->name = conf_dup(ctx, name);
        conf_path(p, "pools", name);
        conf_name(ctx, p, name);
        parse_pool(ctx, v, p, pool);
    }
}

static void
service_defaults(struct conf_ctx *ctx, struct sy_service *svc)
{
    static const int steps[] = {5, 25, 50, 100};

    svc->active = SY_SLOT_BLUE;
    svc->rollout.steps = conf_calloc(ctx, 4, sizeof(*svc->rollout.steps));
    if (svc->rollout.steps != NULL) {
        memcpy(svc->rollout.steps, steps, sizeof(steps));
        svc->rollout.nsteps = 4;
    }
    svc->rollout.step_interval_ms = 60000;
    svc->rollout.min_requests = 100;
    svc->rollout.max_error_rate = 0.10;
    svc->rollout.max_p95_ms = 5000;
    svc->rollout.max_p95_ratio = 2.5;
    svc->scaling.max_p95_ms = 2000;
    svc->scaling.max_queue = 100;
    svc->scaling.max_error_rate = 0.05;
    svc->maintenance.status = 503;
    svc->maintenance.retry_after_ms = 300000;
}

static void
parse_slot(struct conf_ctx *ctx, const json_t *v, const char *path, const char *key,
           struct sy_pool **out)
{
    const char *name;
    char p[CONF_PATH_MAX];

    if (!conf_required(ctx, v, path, key) || (name = conf_string(ctx, v, path, key)) == NULL)
        return;
    for (size_t i = 0; i < ctx->conf->npools; i++) {
        if (strcmp(ctx->conf->pools[i].name, name) == 0) {
            *out = &ctx->conf->pools[i];
            return;
        }
    }
    conf_err(ctx, conf_path(p, path, key), "unknown pool \"%s\"", name);
}

/* "none", "cookie", "client_ip" or "header:NAME" */
static void
parse_sticky(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_canary *c)
{
    const char *s = conf_string(ctx, v, path, "sticky");
    char p[CONF_PATH_MAX];

    if (s == NULL)
        return;
    if (strcmp(s, "none") == 0) {
        c->sticky = SY_STICKY_NONE;
    } else if (strcmp(s, "cookie") == 0) {
        c->sticky = SY_STICKY_COOKIE;
    } else if (strcmp(s, "client_ip") == 0) {
        c->sticky = SY_STICKY_CLIENT_IP;
    } else if (strncmp(s, "header:", 7) == 0 && conf_is_token(s + 7)) {
        c->sticky = SY_STICKY_HEADER;
        c->sticky_header = conf_dup(ctx, s + 7);
    } else {
        conf_err(ctx, conf_path(p, path, "sticky"),
                 "invalid value \"%s\" (expected one of none, cookie, client_ip, header:NAME)", s);
    }
}

static void
parse_canary(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_canary *c)
{
    static const char *const keys[] = {"weight", "sticky", "force_header", NULL};
    char p[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    conf_int32(ctx, v, path, "weight", 0, 100, &c->weight);
    parse_sticky(ctx, v, path, c);
    if (conf_strdup(ctx, v, path, "force_header", &c->force_header)
        && !conf_is_token(c->force_header))
        conf_err(ctx, conf_path(p, path, "force_header"), "invalid header name \"%s\"",
                 c->force_header);
}

static void
parse_steps(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_rollout_conf *r)
{
    char base[CONF_PATH_MAX], p[CONF_PATH_MAX];
    json_t *arr, *step;
    size_t n = conf_array(ctx, v, path, "steps", &arr), i;
    int *steps;

    conf_path(base, path, "steps");
    if (arr != NULL && n == 0)
        conf_err(ctx, base, "must not be empty");
    if (n == 0 || (steps = conf_calloc(ctx, n, sizeof(*steps))) == NULL)
        return;
    free(r->steps);
    r->steps = steps;
    r->nsteps = n;
    json_array_foreach(arr, i, step) {
        conf_path_index(p, base, i);
        if (!json_is_integer(step))
            conf_err(ctx, p, "expected an integer");
        else if (json_integer_value(step) < 1 || json_integer_value(step) > 100)
            conf_err(ctx, p, "must be between 1 and 100");
        else if (i > 0 && json_integer_value(step) <= steps[i - 1])
            conf_err(ctx, p, "must be greater than the step before it");
        steps[i] = (int)json_integer_value(step);
    }
}

static void
parse_rollout(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_rollout_conf *r)
{
    static const char *const keys[] = {
        "steps", "step_interval_ms", "min_requests", "rollback", NULL,
    };
    static const char *const rollback_keys[] = {
        "max_error_rate", "max_p95_ms", "max_p95_ratio", NULL,
    };
    const json_t *rb;
    char p[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    parse_steps(ctx, v, path, r);
    conf_duration(ctx, v, path, "step_interval_ms", 1, &r->step_interval_ms);
    conf_int(ctx, v, path, "min_requests", 0, INT64_MAX, &r->min_requests);
    rb = json_object_get(v, "rollback");
    conf_path(p, path, "rollback");
    if (rb == NULL || !conf_object(ctx, rb, p, rollback_keys))
        return;
    conf_double(ctx, rb, p, "max_error_rate", 0, 1, false, &r->max_error_rate);
    conf_duration(ctx, rb, p, "max_p95_ms", 1, &r->max_p95_ms);
    conf_double(ctx, rb, p, "max_p95_ratio", 0, INFINITY, true, &r->max_p95_ratio);
}

static void
parse_scaling(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_scaling_conf *s)
{
    static const char *const keys[] = {"max_p95_ms", "max_queue", "max_error_rate", NULL};

    if (!conf_object(ctx, v, path, keys))
        return;
    conf_duration(ctx, v, path, "max_p95_ms", 1, &s->max_p95_ms);
    conf_int(ctx, v, path, "max_queue", 0, INT64_MAX, &s->max_queue);
    conf_double(ctx, v, path, "max_error_rate", 0, 1, false, &s->max_error_rate);
}

static void
parse_maintenance(struct conf_ctx *ctx, const json_t *v, const char *path,
                  struct sy_maintenance_conf *m)
{
    static const char *const keys[] = {"enabled", "status", "retry_after_s", "body_file", NULL};
    char p[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    conf_bool(ctx, v, path, "enabled", &m->enabled);
    conf_int32(ctx, v, path, "status", 400, 599, &m->status);
    conf_duration(ctx, v, path, "retry_after_ms", 0, &m->retry_after_ms);
    if (conf_strdup(ctx, v, path, "body_file", &m->body_file))
        conf_readable(ctx, conf_path(p, path, "body_file"), m->body_file);
}

static void
parse_service(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_service *svc)
{
    static const char *const keys[] = {
        "blue", "green", "active", "canary", "rollout", "scaling", "maintenance",
        "tunnel_drain_ms", NULL,
    };
    static const char *const slots[] = {"blue", "green", NULL};
    const json_t *sub;
    char p[CONF_PATH_MAX];
    int active;

    service_defaults(ctx, svc);
    if (!conf_object(ctx, v, path, keys))
        return;
    parse_slot(ctx, v, path, "blue", &svc->slot_pool[SY_SLOT_BLUE]);
    parse_slot(ctx, v, path, "green", &svc->slot_pool[SY_SLOT_GREEN]);
    if (conf_enum(ctx, v, path, "active", slots, &active))
        svc->active = (enum sy_slot)active;
    if ((sub = json_object_get(v, "canary")) != NULL)
        parse_canary(ctx, sub, conf_path(p, path, "canary"), &svc->canary);
    if ((sub = json_object_get(v, "rollout")) != NULL)
        parse_rollout(ctx, sub, conf_path(p, path, "rollout"), &svc->rollout);
    if ((sub = json_object_get(v, "scaling")) != NULL)
        parse_scaling(ctx, sub, conf_path(p, path, "scaling"), &svc->scaling);
    if ((sub = json_object_get(v, "maintenance")) != NULL)
        parse_maintenance(ctx, sub, conf_path(p, path, "maintenance"), &svc->maintenance);
    conf_duration(ctx, v, path, "tunnel_drain_ms", 0, &svc->tunnel_drain_ms);
    if (svc->name && !(svc->live = sy_live_service_get(svc->name, svc->active, svc->canary.weight)))
        conf_err(ctx, path, "out of memory");
}

void
conf_parse_services(struct conf_ctx *ctx, const json_t *root)
{
    struct sy_conf *conf = ctx->conf;
    const json_t *services = json_object_get(root, "services");
    const char *name;
    json_t *v;
    char p[CONF_PATH_MAX];
    size_t n;

    if (services == NULL || !conf_map(ctx, services, "services"))
        return;
    n = json_object_size(services);
    if (n == 0 || (conf->services = conf_calloc(ctx, n, sizeof(*conf->services))) == NULL)
        return;
    json_object_foreach((json_t *)services, name, v) {
        struct sy_service *svc = &conf->services[conf->nservices];

        svc->index = conf->nservices++;
        svc->name = conf_dup(ctx, name);
        conf_path(p, "services", name);
        conf_name(ctx, p, name);
        parse_service(ctx, v, p, svc);
    }
}
