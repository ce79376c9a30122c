/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf.c: sy_conf_load() and the life of a snapshot. Loading merges the
 * layers (conf_layers.c), then fills a struct sy_conf section by section,
 * collecting every error; a snapshot with any error is freed, never
 * returned. The last sy_conf_unref() frees everything below the snapshot.
 */
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"
#include "live.h"

#define DEFAULT_FILE "conf/switchyard.json"

/* Defaults of the process-wide sections; nested ones are set by their parsers. */
static void
set_defaults(struct sy_conf *conf)
{
    conf->shutdown_timeout_ms = 30000;
    conf->limits = (struct sy_limits){
        .max_connections = 10000,
        .max_connections_per_ip = 0,
        .max_header_bytes = 16384,
        .max_headers = 100,
        .max_uri_bytes = 8192,
        .max_body_bytes = 104857600,
        .client_header_timeout_ms = 10000,
        .client_body_timeout_ms = 60000,
        .keepalive_timeout_ms = 5000,
        .tunnel_idle_timeout_ms = 600000,
        .rate_limit_keys = 1 << 18,
        .http2_max_concurrent_streams = 128,
    };
    conf->log.level = SY_LOG_INFO;
    conf->redis.on_failure = SY_REDIS_FAIL_ALLOW;
}

/* A listen list that the document emptied with null: the built-in listener. */
static void
default_listener(struct conf_ctx *ctx)
{
    struct sy_conf *conf = ctx->conf;

    if (conf->nlisten > 0 || json_object_get(conf->json, "listen") != NULL)
        return;
    if ((conf->listen = conf_calloc(ctx, 1, sizeof(*conf->listen))) == NULL)
        return;
    conf->nlisten = 1;
    sy_addr_parse("0.0.0.0:8080", &conf->listen[0].addr, NULL, 0);
}

static void
redis_defaults(struct conf_ctx *ctx)
{
    struct sy_redis_conf *r = &ctx->conf->redis;

    if (r->enabled && r->key_prefix == NULL)
        r->key_prefix = conf_dup(ctx, "switchyard:");
}

int
sy_conf_load(const struct sy_conf_source *src, struct sy_conf **out,
             struct sy_conf_errors *errs)
{
    struct sy_conf_errors local = {0};
    struct conf_ctx ctx = {.errs = errs != NULL ? errs : &local};
    size_t before = ctx.errs->count;
    struct sy_conf *conf;

    *out = NULL;
    ctx.file = src->file != NULL ? src->file : DEFAULT_FILE;
    ctx.conf = conf = conf_calloc(&ctx, 1, sizeof(*conf));
    if (conf == NULL || (conf->file = conf_dup(&ctx, ctx.file)) == NULL)
        goto fail;
    atomic_init(&conf->refs, 1);
    set_defaults(conf);
    if ((conf->json = sy_conf_layers_load(&ctx, src)) == NULL || ctx.errs->count > before)
        goto fail;
    conf_parse_main(&ctx, conf->json);
    default_listener(&ctx);
    redis_defaults(&ctx);
    conf_parse_rate_limits(&ctx, conf->json);
    conf_parse_pools(&ctx, conf->json);
    conf_parse_services(&ctx, conf->json);
    conf_parse_routes(&ctx, conf->json);
    conf_parse_admin(&ctx, conf->json);
    if (ctx.errs->count > before)
        goto fail;
    *out = conf;
    return 0;
fail:
    sy_conf_unref(conf);
    sy_conf_errors_free(&local);
    return -1;
}

void
sy_conf_errors_free(struct sy_conf_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        free(errs->lines[i]);
    free(errs->lines);
    errs->lines = NULL;
    errs->count = 0;
}

static void
free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void
free_header_edit(struct sy_header_edit *e)
{
    free_strings(e->set_names, e->nset);
    free_strings(e->set_values, e->nset);
    free_strings(e->remove, e->nremove);
}

static void
free_pool(struct sy_pool *pool)
{
    for (size_t i = 0; i < pool->ninstances; i++)
        sy_live_put(pool->instances[i].live);
    free(pool->instances);
    free(pool->name);
    free(pool->tls_ca_file);
    free(pool->health.path);
    free(pool->health.expect);
    /* allocated as one block by sy_balance_prepare() */
    free(pool->balance_state);
}

static void
free_service(struct sy_service *svc)
{
    sy_live_service_put(svc->live);
    free(svc->name);
    free(svc->canary.sticky_header);
    free(svc->canary.force_header);
    free(svc->rollout.steps);
    free(svc->maintenance.body_file);
}

static void
free_route(struct sy_route *r)
{
    free(r->host);
    free(r->path);
    free(r->label);
    free_header_edit(&r->request_headers);
    free_header_edit(&r->response_headers);
    free_strings(r->cors.origins, r->cors.norigins);
    free_strings(r->cors.methods, r->cors.nmethods);
}

static void
free_sections(struct sy_conf *conf)
{
    for (size_t i = 0; i < conf->nlisten; i++) {
        for (size_t j = 0; j < conf->listen[i].ncerts; j++) {
            free(conf->listen[i].certs[j].cert);
            free(conf->listen[i].certs[j].key);
        }
        free(conf->listen[i].certs);
    }
    free(conf->listen);
    free(conf->trusted_proxies);
    free(conf->admin.token_file);
    free_strings(conf->admin.tokens, conf->admin.ntokens);
    free(conf->access.allow);
    free(conf->access.deny);
    free(conf->access.deny_countries);
    free(conf->geoip_database);
    free(conf->redis.url);
    free(conf->redis.key_prefix);
    free(conf->log.access);
    free(conf->log.security);
    free(conf->log.error);
    free(conf->state_file);
}

static void
conf_free(struct sy_conf *conf)
{
    if (conf->free_prepared)
        conf->free_prepared(conf);
    for (size_t i = 0; i < conf->npools; i++)
        free_pool(&conf->pools[i]);
    free(conf->pools);
    for (size_t i = 0; i < conf->nservices; i++)
        free_service(&conf->services[i]);
    free(conf->services);
    for (size_t i = 0; i < conf->nroutes; i++)
        free_route(&conf->routes[i]);
    free(conf->routes);
    for (size_t i = 0; i < conf->nrate_limits; i++) {
        free(conf->rate_limits[i].name);
        free(conf->rate_limits[i].key_header);
    }
    free(conf->rate_limits);
    free_sections(conf);
    json_decref(conf->json);
    free(conf->file);
    free(conf);
}

struct sy_conf *
sy_conf_ref(struct sy_conf *conf)
{
    if (conf != NULL)
        atomic_fetch_add_explicit(&conf->refs, 1, memory_order_relaxed);
    return conf;
}

void
sy_conf_unref(struct sy_conf *conf)
{
    /* acq_rel: every reader's last use happens before the free */
    if (conf != NULL && atomic_fetch_sub_explicit(&conf->refs, 1, memory_order_acq_rel) == 1)
        conf_free(conf);
}

const struct sy_pool *
sy_conf_pool(const struct sy_conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->npools; i++) {
        if (strcmp(conf->pools[i].name, name) == 0)
            return &conf->pools[i];
    }
    return NULL;
}

const struct sy_service *
sy_conf_service(const struct sy_conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->nservices; i++) {
        if (strcmp(conf->services[i].name, name) == 0)
            return &conf->services[i];
    }
    return NULL;
}
