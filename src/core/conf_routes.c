/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * conf_routes.c: "rate_limits" and "routes" with their policies (header
 * edits, CORS, HTTPS redirect). Routes come last: they point at services
 * and rate limits, and https_redirect needs to know the TLS listeners.
 * Header edits never touch the headers that frame a message.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_internal.h"

/* RFC 9112 framing and hop-by-hop headers: editing them would desync the two sides */
static const char *const framing_headers[] = {
    "Content-Length", "Transfer-Encoding", "Connection", "Host", "Keep-Alive", "Upgrade", "TE",
    "Trailer", "Proxy-Connection", NULL,
};

/* Headers the gateway writes itself: an edit would duplicate them or do nothing */
static const char *const gateway_headers[] = {
    "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-ID", NULL,
};

static void
parse_rl_key(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_rate_limit *rl)
{
    const char *s = conf_string(ctx, v, path, "key");
    char p[CONF_PATH_MAX];

    if (s == NULL)
        return;
    conf_path(p, path, "key");
    if (strcmp(s, "client_ip") == 0) {
        rl->key = SY_RL_KEY_CLIENT_IP;
    } else if (strcmp(s, "route") == 0) {
        rl->key = SY_RL_KEY_ROUTE;
    } else if (strcmp(s, "country") == 0) {
        rl->key = SY_RL_KEY_COUNTRY;
        if (ctx->conf->geoip_database == NULL)
            conf_err(ctx, p, "country rules need geoip.database");
    } else if (strncmp(s, "header:", 7) == 0 && conf_is_token(s + 7)) {
        rl->key = SY_RL_KEY_HEADER;
        rl->key_header = conf_dup(ctx, s + 7);
    } else {
        conf_err(ctx, p, "invalid value \"%s\" (expected one of client_ip, route, country,"
                 " header:NAME)", s);
    }
}

static void
parse_rate_limit(struct conf_ctx *ctx, const json_t *v, const char *path,
                 struct sy_rate_limit *rl)
{
    static const char *const keys[] = {"key", "rate", "per_ms", "burst", "store", "headers", NULL};
    static const char *const stores[] = {"local", "redis", NULL};
    static const char *const headers[] = {"legacy", "draft", "both", "none", NULL};
    char p[CONF_PATH_MAX];
    int store, mode;

    rl->key = SY_RL_KEY_CLIENT_IP;
    rl->per_ms = 1000;
    rl->burst = -1;
    if (!conf_object(ctx, v, path, keys))
        return;
    parse_rl_key(ctx, v, path, rl);
    if (conf_required(ctx, v, path, "rate"))
        conf_int(ctx, v, path, "rate", 1, INT64_MAX, &rl->rate);
    conf_duration(ctx, v, path, "per_ms", 1, &rl->per_ms);
    conf_int(ctx, v, path, "burst", 0, INT64_MAX, &rl->burst);
    if (rl->burst < 0)
        rl->burst = rl->rate;
    if (conf_enum(ctx, v, path, "store", stores, &store)) {
        rl->store_redis = store == 1;
        if (rl->store_redis && !ctx->conf->redis.enabled)
            conf_err(ctx, conf_path(p, path, "store"), "store \"redis\" needs a \"redis\" section");
    }
    if (conf_enum(ctx, v, path, "headers", headers, &mode))
        rl->headers = (enum sy_rl_headers)mode;
}

void
conf_parse_rate_limits(struct conf_ctx *ctx, const json_t *root)
{
    struct sy_conf *conf = ctx->conf;
    const json_t *limits = json_object_get(root, "rate_limits");
    const char *name;
    json_t *v;
    char p[CONF_PATH_MAX];
    size_t n;

    if (limits == NULL || !conf_map(ctx, limits, "rate_limits"))
        return;
    n = json_object_size(limits);
    if (n == 0 || (conf->rate_limits = conf_calloc(ctx, n, sizeof(*conf->rate_limits))) == NULL)
        return;
    json_object_foreach((json_t *)limits, name, v) {
        struct sy_rate_limit *rl = &conf->rate_limits[conf->nrate_limits];

        rl->index = conf->nrate_limits++;
        rl->name = conf_dup(ctx, name);
        conf_path(p, "rate_limits", name);
        conf_name(ctx, p, name);
        parse_rate_limit(ctx, v, p, rl);
    }
}

/* A header name a route may edit: a token, and not one that frames the message. */
static bool
editable_header(struct conf_ctx *ctx, const char *path, const char *name, const char *verb)
{
    if (!conf_is_token(name)) {
        conf_err(ctx, path, "invalid header name \"%s\"", name);
        return false;
    }
    for (size_t i = 0; framing_headers[i] != NULL; i++) {
        if (strcasecmp(name, framing_headers[i]) == 0) {
            conf_err(ctx, path, "cannot %s framing header %s", verb, name);
            return false;
        }
    }
    for (size_t i = 0; gateway_headers[i] != NULL; i++) {
        if (strcasecmp(name, gateway_headers[i]) == 0) {
            conf_err(ctx, path, "cannot %s %s: the gateway writes it (trusted_proxies decides "
                     "what it keeps)", verb, name);
            return false;
        }
    }
    return true;
}

/* RFC 9110 field-value: no control characters but horizontal tab */
static bool
valid_header_value(const char *s)
{
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    }
    return true;
}

static void
parse_header_set(struct conf_ctx *ctx, const json_t *set, const char *path,
                 struct sy_header_edit *e)
{
    size_t n = json_object_size(set);
    const char *name;
    json_t *value;
    char p[CONF_PATH_MAX];

    if (!conf_map(ctx, set, path) || n == 0)
        return;
    e->set_names = conf_calloc(ctx, n, sizeof(*e->set_names));
    e->set_values = conf_calloc(ctx, n, sizeof(*e->set_values));
    if (e->set_names == NULL || e->set_values == NULL)
        return;
    json_object_foreach((json_t *)set, name, value) {
        conf_path(p, path, name);
        if (!editable_header(ctx, p, name, "set"))
            continue;
        if (!json_is_string(value)) {
            conf_err(ctx, p, "expected a string");
        } else if (!valid_header_value(json_string_value(value))) {
            conf_err(ctx, p, "invalid header value (control character)");
        } else {
            e->set_names[e->nset] = conf_dup(ctx, name);
            e->set_values[e->nset++] = conf_dup(ctx, json_string_value(value));
        }
    }
}

static void
parse_header_edit(struct conf_ctx *ctx, const json_t *v, const char *path,
                  struct sy_header_edit *e)
{
    static const char *const keys[] = {"set", "remove", NULL};
    const json_t *set;
    char p[CONF_PATH_MAX], base[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    if ((set = json_object_get(v, "set")) != NULL)
        parse_header_set(ctx, set, conf_path(p, path, "set"), e);
    if (!conf_strings(ctx, v, path, "remove", &e->remove, &e->nremove))
        return;
    conf_path(base, path, "remove");
    for (size_t i = 0; i < e->nremove; i++)
        editable_header(ctx, conf_path_index(p, base, i), e->remove[i], "remove");
}

static void
parse_headers(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_route *r)
{
    static const char *const keys[] = {"request", "response", NULL};
    const json_t *sub;
    char p[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    if ((sub = json_object_get(v, "request")) != NULL)
        parse_header_edit(ctx, sub, conf_path(p, path, "request"), &r->request_headers);
    if ((sub = json_object_get(v, "response")) != NULL)
        parse_header_edit(ctx, sub, conf_path(p, path, "response"), &r->response_headers);
}

/* "*" or scheme://host[:port] as browsers send it in Origin (RFC 6454), http or https */
static bool
valid_origin(const char *s)
{
    const char *host, *colon;
    char name[256];
    size_t n;

    if (strcmp(s, "*") == 0)
        return true;
    if (strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        host = s + 7;
    else
        return false;
    colon = strchr(host, ':');
    n = colon != NULL ? (size_t)(colon - host) : strlen(host);
    if (n == 0 || n >= sizeof(name))
        return false;
    memcpy(name, host, n);
    name[n] = '\0';
    if (colon != NULL) {
        size_t digits = strspn(colon + 1, "0123456789");

        if (digits == 0 || digits > 5 || colon[1 + digits] != '\0' || atoi(colon + 1) < 1
            || atoi(colon + 1) > 65535)
            return false;
    }
    return sy_addr_is_hostname(name);
}

static void
parse_cors(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_cors *c)
{
    static const char *const keys[] = {"origins", "methods", "max_age_ms", NULL};
    char p[CONF_PATH_MAX], base[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    c->enabled = true;
    if (conf_strings(ctx, v, path, "origins", &c->origins, &c->norigins)) {
        conf_path(base, path, "origins");
        for (size_t i = 0; i < c->norigins; i++) {
            if (!valid_origin(c->origins[i]))
                conf_err(ctx, conf_path_index(p, base, i), "invalid origin \"%s\" (expected"
                         " \"*\" or \"https://host[:port]\")", c->origins[i]);
        }
    }
    if (conf_strings(ctx, v, path, "methods", &c->methods, &c->nmethods)) {
        conf_path(base, path, "methods");
        for (size_t i = 0; i < c->nmethods; i++) {
            if (!conf_is_token(c->methods[i]))
                conf_err(ctx, conf_path_index(p, base, i), "invalid method \"%s\"",
                         c->methods[i]);
        }
    }
    conf_duration(ctx, v, path, "max_age_ms", 0, &c->max_age_ms);
}

/* "*", "*.example.com" or a host name, stored lower case */
static void
parse_host(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_route *r)
{
    const char *s = conf_string(ctx, v, path, "host");
    char p[CONF_PATH_MAX];

    if (s == NULL)
        return;
    if (strcmp(s, "*") != 0 && !sy_addr_is_hostname(strncmp(s, "*.", 2) == 0 ? s + 2 : s)) {
        conf_err(ctx, conf_path(p, path, "host"), "invalid host \"%s\"", s);
        return;
    }
    free(r->host);
    if ((r->host = conf_dup(ctx, s)) == NULL)
        return;
    for (char *c = r->host; *c != '\0'; c++)
        *c = (char)tolower((unsigned char)*c);
}

/* The object of conf's named array (services or rate limits) called name, or NULL. */
static void *
find_named(void *items, size_t n, size_t size, size_t name_offset, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        char *item = (char *)items + i * size;

        if (strcmp(*(char **)(item + name_offset), name) == 0)
            return item;
    }
    return NULL;
}

static void
parse_refs(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_route *r)
{
    struct sy_conf *conf = ctx->conf;
    const char *name;
    char p[CONF_PATH_MAX];

    if (conf_required(ctx, v, path, "service")
        && (name = conf_string(ctx, v, path, "service")) != NULL) {
        r->service = find_named(conf->services, conf->nservices, sizeof(*conf->services),
                                offsetof(struct sy_service, name), name);
        if (r->service == NULL)
            conf_err(ctx, conf_path(p, path, "service"), "unknown service \"%s\"", name);
    }
    if ((name = conf_string(ctx, v, path, "rate_limit")) != NULL) {
        r->rate_limit = find_named(conf->rate_limits, conf->nrate_limits,
                                   sizeof(*conf->rate_limits),
                                   offsetof(struct sy_rate_limit, name), name);
        if (r->rate_limit == NULL)
            conf_err(ctx, conf_path(p, path, "rate_limit"), "unknown rate limit \"%s\"", name);
    }
}

static bool
has_tls_listener(const struct sy_conf *conf)
{
    for (size_t i = 0; i < conf->nlisten; i++) {
        if (conf->listen[i].tls)
            return true;
    }
    return false;
}

static void
parse_route_fields(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_route *r)
{
    static const char *const keys[] = {
        "host", "path", "service", "rate_limit", "https_redirect", "compress", "headers", "cors",
        NULL,
    };
    const json_t *sub;
    char p[CONF_PATH_MAX];

    if (!conf_object(ctx, v, path, keys))
        return;
    parse_host(ctx, v, path, r);
    if (conf_strdup(ctx, v, path, "path", &r->path) && r->path[0] != '/')
        conf_err(ctx, conf_path(p, path, "path"), "must start with '/'");
    parse_refs(ctx, v, path, r);
    if (conf_bool(ctx, v, path, "https_redirect", &r->https_redirect) && r->https_redirect
        && !has_tls_listener(ctx->conf))
        conf_err(ctx, conf_path(p, path, "https_redirect"), "https_redirect needs a TLS listener");
    conf_bool(ctx, v, path, "compress", &r->compress);
    if ((sub = json_object_get(v, "headers")) != NULL)
        parse_headers(ctx, sub, conf_path(p, path, "headers"), r);
    if ((sub = json_object_get(v, "cors")) != NULL)
        parse_cors(ctx, sub, conf_path(p, path, "cors"), &r->cors);
}

static void
parse_route(struct conf_ctx *ctx, const json_t *v, const char *path, struct sy_route *r)
{
    r->host = conf_dup(ctx, "*");
    r->path = conf_dup(ctx, "/");
    parse_route_fields(ctx, v, path, r);
    r->path_len = r->path != NULL ? strlen(r->path) : 0;
    if (r->host && r->path && asprintf(&r->label, "%s%s", r->host, r->path) < 0) {
        r->label = NULL;
        conf_err(ctx, path, "out of memory");
    }
}

void
conf_parse_routes(struct conf_ctx *ctx, const json_t *root)
{
    struct sy_conf *conf = ctx->conf;
    char p[CONF_PATH_MAX];
    json_t *arr, *v;
    size_t n = conf_array(ctx, root, "", "routes", &arr), i;

    if (n == 0 || (conf->routes = conf_calloc(ctx, n, sizeof(*conf->routes))) == NULL)
        return;
    conf->nroutes = n;
    json_array_foreach(arr, i, v) {
        conf->routes[i].index = i;
        parse_route(ctx, v, conf_path_index(p, "routes", i), &conf->routes[i]);
    }
}
